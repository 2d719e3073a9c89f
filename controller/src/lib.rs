//! The virtualization controller of PATENT.md (figure 8's variant): one per SAN, an ordinary FC
//! node behind its site's FCIP gateway. It keeps its SAN's real volumes (figure 3), a full copy
//! of the common mapping (figure 4) in an embedded database, and keeps that copy equal with
//! every other controller's by exchanging updates and heartbeats as FC exchanges (figure 5).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod catalogue;
pub mod core;
pub mod driver;
pub mod extents;
pub mod fuzzing;
pub mod io;
pub mod model;
pub mod real;
pub mod sim;
pub mod store;
pub mod wire;
