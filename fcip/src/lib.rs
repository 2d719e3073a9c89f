//! FCIP, Fibre Channel over TCP/IP (RFC 3821).
//!
//! The encapsulation header itself (RFC 3643 §3, RFC 3821 §5.6.1) lives in
//! [`fc_frames::encap`]; this crate adds what FCIP builds on it:
//!
//! | module | standard | what |
//! |---|---|---|
//! | [`fsf`] | RFC 3821 §7 | the FCIP Special Frame a new TCP connection starts with, and the echo check |
//! | [`engine`] | RFC 3821 §5.6, §5.6.2 | the receive side of the FCIP Data Engine: bytes in, frames out, resynchronization |
//! | [`time`] | RFC 3821 §5.6.1, RFC 2030 | SNTP time stamps: from the system clock, differences |
//! | [`connection`] | RFC 3821 §5.6, §7, §8 | the tokio driver of one FCIP connection: Special Frame exchange, data both ways, LKA keep-alive |
//! | [`capture`] | | FCIP frames as Ethernet/IPv4/TCP packets in a pcap, for Wireshark |
//! | [`link`] | RFC 3821 §5.5 | an FCIP link: 1-8 connections to one peer, exchanges spread over them, redial with backoff |
//!
//! `fsf`, `engine` and `time` touch no socket and no clock: bytes and the current time come in
//! as arguments (ARCHITECTURE.md, "sans-IO protocol cores"). `connection` and `link` are the thin
//! driver that owns the TCP connections and feeds them.
//!
//! Section numbers are cited from memory of RFC 3821; the byte layouts follow
//! `PROTOCOLS.md`, which was checked against Wireshark.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
pub mod connection;
pub mod engine;
pub mod fsf;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod time;

pub use engine::{OnError, Output, Receiver, ReceiverConfig, ReceiverCounters, SyncError};
pub use fsf::{FsfError, Mismatch, SpecialFrame};
