//! The disk array's logical units: block devices backed by real files.

pub mod file;

pub use file::FileLun;
