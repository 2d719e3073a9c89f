//! `fabric`: the sans-IO core of a Fibre Channel switch (FC-SW-6, FC-LS-3, FC-GS-7).
//!
//! [`Switch`] is a state machine. It takes events — a port came up or went down, a frame
//! arrived on a port, a route to another domain appeared — and answers with frames to send
//! ([`Switch::poll_transmit`]) and notable happenings ([`Switch::poll_event`]). It never touches
//! a socket or a clock: the caller passes `now`, and a driver ([`SwitchHandle`], or the
//! gateway's) moves the frames.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | domain, names, time-out values, zoning |
//! | [`port`] | port identifiers and per-port counters |
//! | [`name_server`] | the directory name server table at FFFFFC and its CT requests |
//! | [`switch`] | fabric login, the fabric controller (SCR/RSCN), routing and hard zoning |
//! | [`link`] | links between a node and a port (the `fc-link` type, re-exported): in-process pairs, TCP (RFC 3643 framing) |
//! | [`driver`] | the tokio driver: a running switch with links on its ports |
//!
//! A port is whatever carries frames: an F_Port has a node behind it and is named in the
//! configuration ([`Config::f_ports`]); every other port is an inter-switch port (E_Port or
//! VE_Port: an in-process channel, a TCP connection, an FCIP link) that reaches the domains
//! its neighbour announces (EFP) or [`Switch::set_route`] points at it.
//!
//! The one thing the switch waits for is an answer from another switch's name server; its
//! deadline is [`Switch::poll_timeout`], and [`Switch::handle_timeout`] asks again.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod driver;
pub mod link;
pub mod name_server;
pub mod port;
pub mod switch;

pub use config::{Config, ConfigError, DefaultZone, Zone, ZoneSet, Zoning};
pub use driver::{Direction, DriverConfig, PortSnapshot, Snapshot, SwitchError, SwitchHandle, Tap};
pub use name_server::NsEntry;
pub use port::{DiscardReason, Discards, PortCounters, PortId};
pub use switch::{Event, LogoutCause, Switch};
