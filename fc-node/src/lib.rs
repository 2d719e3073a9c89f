//! The Fibre Channel node stack that hosts, disk arrays and controllers share.
//!
//! So far: [`exchange`], the sans-IO exchange and sequence manager of an N_Port; [`scsi`], the
//! sans-IO SCSI block-device engine an FCP target runs for its logical units; and [`disk`], the
//! logical units a disk array serves from files.

#![forbid(unsafe_code)]

pub mod disk;
pub mod exchange;
pub mod fcp;
pub mod node;
pub mod scsi;
