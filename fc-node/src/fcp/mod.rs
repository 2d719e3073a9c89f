//! FCP (FCP-4) on top of the node: the [`initiator`] that hosts and controllers use to send
//! SCSI commands, the [`target`] that serves a [`ScsiEngine`](crate::scsi::ScsiEngine), and
//! [`remote`], another node's LUN as a block device for that engine; [`discovery`] (the LUNs
//! an initiator sees, with their tiers) and [`transfer`] (files to and from a LUN) on top of
//! the initiator.
//!
//! One SCSI command is one exchange (FCP-4 §9):
//!
//! ```text
//!  read:   FCP_CMND ─►            ◄─ FCP_DATA (initiative held) ◄─ FCP_RSP (last)
//!  write:  FCP_CMND ─► ◄─ FCP_XFER_RDY   FCP_DATA ─►           ◄─ FCP_RSP (last)
//!  none:   FCP_CMND ─►                                         ◄─ FCP_RSP (last)
//! ```

pub mod conformance;
pub mod discovery;
pub mod initiator;
pub mod remote;
pub mod target;
pub mod transfer;
