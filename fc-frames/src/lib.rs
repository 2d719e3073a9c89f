//! Fibre Channel wire formats for fcsan.
//!
//! Everything here is bytes in, typed values out, and back — no I/O, no clocks, no allocation
//! that the input can drive without bound. Every format has two levels (after smoltcp `wire`):
//! a *view* over a byte buffer with a checked constructor, and an owned *repr* with
//! `parse`/`buffer_len`/`emit`.
//!
//! | module | standard | what |
//! |---|---|---|
//! | [`addr`] | FC-FS-4 §10, §19 | FC_ID, WWN |
//! | [`header`] | FC-FS-4 §9 | the 24-byte frame header, R_CTL, TYPE, F_CTL |
//! | [`frame`] | FC-FS-4 §9, §5 | SOF/EOF, payload and fill, FC CRC |
//! | [`encap`] | RFC 3643 §3, RFC 3821 §5.6 | the FC frame encapsulation header FCIP sends over TCP |
//! | [`els`] | FC-LS-3 §4 | FLOGI, FDISC, PLOGI, PRLI/PRLO, LOGO, LS_ACC, LS_RJT, RSCN, SCR, ECHO, LKA |
//! | [`bls`] | FC-LS-3 §3 | ABTS, BA_ACC, BA_RJT |
//! | [`ct`] | FC-GS-7 §4, §5 | CT_IU and the directory name server |
//! | [`fcp`] | FCP-4 §9 | FCP_CMND, FCP_XFER_RDY, FCP_DATA, FCP_RSP |
//! | [`scsi`] | SAM-5, SPC-4, SBC-3, SSC-3 | LUNs, CDBs, status, sense data, parameter data |
//! | [`sw_ils`] | FC-SW-6 §6.1 | SW_ACC, SW_RJT, EFP (the domain ID list) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// First, so that every module below can use the macro.
#[macro_use]
mod code_point;

pub mod addr;
pub mod bls;
pub mod ct;
pub mod els;
pub mod encap;
pub mod error;
pub mod fcp;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod scsi;
pub mod sw_ils;
mod wire;

pub use addr::{AddrError, FcId, Naa, Wwn};
pub use error::{Layer, LenError};
pub use frame::{Eof, FcFrame, Frame, FrameError, FrameParts, Sof};
pub use header::{FCtl, FcType, FrameHeader, FrameHeaderRepr, RCtl};
