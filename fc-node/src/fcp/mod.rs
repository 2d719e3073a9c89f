//! FCP (FCP-4) on top of the node: the [`initiator`] that hosts and controllers use to send
//! SCSI commands, and the [`target`] that serves a [`ScsiEngine`](crate::scsi::ScsiEngine).
//!
//! One SCSI command is one exchange (FCP-4 §9):
//!
//! ```text
//!  read:   FCP_CMND ─►            ◄─ FCP_DATA (initiative held) ◄─ FCP_RSP (last)
//!  write:  FCP_CMND ─► ◄─ FCP_XFER_RDY   FCP_DATA ─►           ◄─ FCP_RSP (last)
//!  none:   FCP_CMND ─►                                         ◄─ FCP_RSP (last)
//! ```

pub mod discovery;
pub mod initiator;
pub mod target;
pub mod transfer;
