//! SCSI as FCP carries it: LUNs (SAM-5), CDBs (SPC-4, SBC-3, SSC-3), status, sense data and
//! the parameter data targets return.

pub mod cdb;
pub mod data;
pub mod lun;
pub mod sense;
pub mod status;

pub use lun::Lun;
pub use sense::{AdditionalSense, Sense, SenseKey};
pub use status::ScsiStatus;
