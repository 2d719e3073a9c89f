//! The disk array: logical units backed by real files ([`FileLun`]) and the array that serves
//! them ([`DiskArray`]).

pub mod array;
pub mod file;

pub use array::{DiskArray, LunSpec, TapeSpec};
pub use file::FileLun;
