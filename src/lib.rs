//! fcsan: a software Fibre Channel SAN, an FCIP gateway and distributed virtualization
//! controllers. This library holds what the `fcsan` binary and the cross-crate tests share.

pub mod capture;
pub mod catalogue;
pub mod config;
pub mod decode;
pub mod host;
pub mod relay;
pub mod san;
pub mod up;
