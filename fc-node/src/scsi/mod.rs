//! The SCSI target device an FCP target (or any other transport) serves: [`ScsiEngine`] takes
//! a command (I_T nexus, tag, task attribute, LUN, CDB, FCP_DL, data-out) and returns what
//! goes into FCP_DATA and FCP_RSP ([`ScsiResponse`]), or that the task was aborted
//! ([`Outcome`]). It is the task manager too: task sets ordered by task attribute, unit
//! attentions per I_T nexus, and the task management functions. Logical units are
//! [`BlockDevice`]s (disks) or tape drives that only identify themselves; a [`LunMask`] hides
//! one from the initiator ports it refuses (LUN masking by initiator port name).
//!
//! The engine does no I/O of its own: the devices do theirs, asynchronously, and the engine
//! awaits them with no lock held, so commands to different logical units, and SIMPLE commands
//! to one, run at the same time. The clauses cited here are from memory of SPC-4 r37, SBC-3
//! r35, SAM-5 and FCP-4 (the standards' text was not at hand); the MUST sentences are
//! paraphrased above the checks that enforce them.
//!
//! # Residuals (FCP-4 §9.4.2, FCP_RSP FCP_RESID_UNDER / FCP_RESID_OVER)
//! The target compares FCP_DL with the bytes the command would move (`needed`):
//! - data-in: at most `min(needed, FCP_DL)` bytes are sent; `needed < FCP_DL` is
//!   `Residual::Under`, `needed > FCP_DL` is `Residual::Over`. For commands with an allocation
//!   length, `needed` is the response cut at the allocation length (SPC-4 §4.2.5.6). A READ
//!   whose FCP_DL is short is executed, the first FCP_DL bytes are sent and the overrun is
//!   reported with GOOD status (what LIO does);
//! - data-out of a WRITE (or a VERIFY with BYTCHK): FCP_DL smaller than the transfer would leave blocks half-written,
//!   so the command is not executed: CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN
//!   COMMAND INFORMATION UNIT (0E/03), `Residual::Over` (LIO rejects the same case). FCP_DL
//!   larger than the transfer is an underrun: the blocks are written, `Residual::Under`;
//! - parameter lists (UNMAP, MODE SELECT) are read from the first `min(FCP_DL, PARAMETER LIST
//!   LENGTH)` bytes, residual against FCP_DL as for data-in;
//! - a command that ends in CHECK CONDITION moved nothing: `Residual::Under(FCP_DL)`.
//!
//! [`ScsiEngine::data_out_len`] says how many data-out bytes to solicit (FCP_XFER_RDY) before
//! [`ScsiEngine::execute`].

mod commands;
pub mod device;
mod engine;
pub mod in_flight;
mod tasks;

pub use device::{BlockDevice, DeviceError, MemLun, Tier};
pub use engine::{
    current_initiator, DiskConfig, LunError, LunMask, Nexus, Outcome, ScsiCommand, ScsiEngine,
    ScsiResponse, TapeConfig, TargetPort, Task, TmfError,
};
