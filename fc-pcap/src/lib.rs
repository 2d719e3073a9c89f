//! Fibre Channel frames in pcap files, for Wireshark and for `fcsan pcap`: [`capture`] writes
//! and reads them (link type 225, FC-2 with SOF/EOF and CRC; 224 for reading), [`decode`] reads
//! a trace the way an analyzer does (replies against their requests, one line a frame), and
//! [`catalogue`] is the scripted conversation of every message kind `fc-frames` encodes,
//! checked in as `captures/fc-frames.pcap`. (`fcsan pcap inspect`, which needs the FCIP receive
//! engine and the controller's codec, is the `replay` crate's `inspect`.)
//!
//! A switch's capture tap, `fcsan pcap show`, the tshark agreement test and the fuzz seeds all
//! use it; none of it touches a socket.

#![forbid(unsafe_code)]

pub mod capture;
pub mod catalogue;
pub mod decode;
