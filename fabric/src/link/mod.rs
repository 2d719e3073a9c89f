//! Links that carry FC frames between a node and a switch port, or between two switches.
//!
//! The link type is [`fc_link`]'s, re-exported here: a [`Link`] is one end, [`LinkTx`] sends
//! frames to the other end through a bounded queue (waiting for room, or refusing with
//! [`TrySendError::Full`]), [`LinkRx`] receives what the other end sent. Every kind of link —
//! an in-process pair ([`pair`]), TCP with the RFC 3643 framing ([`tcp`]), an FCIP link of
//! several connections (`fcip::link`) — hands out the same two halves, so the switch and the
//! node stack never know what carries their frames.
//!
//! A link is down when [`LinkRx::recv`] returns `None`: the other end dropped its half, the
//! TCP connection closed, a framing error ended it, or an FCIP link lost its last connection.

pub use fc_link::{
    channel, lanes, pair, pair_with_capacity, LaneSet, Link, LinkDown, LinkRx, LinkTx, Received,
    TrySendError, WaitReady, DEFAULT_CAPACITY,
};

pub mod tcp;
