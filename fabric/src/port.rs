//! Switch ports and their counters.

use core::fmt;

/// A switch port. For an F_Port the number is also the area byte of the N_Port IDs it
/// assigns (`DD pp nn`), which is why it is one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PortId(pub u8);

/// `port 3`.
impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// Why the switch discarded a frame it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiscardReason {
    /// Source and destination share no zone (hard zoning).
    Unzoned,
    /// No N_Port with that ID here, no route to its domain, or a well-known address this
    /// switch does not serve. Class 3: discarded, no F_RJT (FC-FS-4 §12).
    Unroutable,
    /// The source is not logged in with the fabric on this port.
    NotLoggedIn,
    /// The frame failed to decode (CRC, length) or ended with an invalid/abort EOF.
    Malformed,
    /// The frame arrived on a port that is not up.
    PortDown,
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiscardReason::Unzoned => "unzoned",
            DiscardReason::Unroutable => "unroutable",
            DiscardReason::NotLoggedIn => "not logged in",
            DiscardReason::Malformed => "malformed",
            DiscardReason::PortDown => "port down",
        })
    }
}

/// Frames discarded on receipt, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Discards {
    /// Hard zoning drops.
    pub unzoned: u64,
    /// Unroutable frames.
    pub unroutable: u64,
    /// Frames from an N_Port that has not logged in.
    pub not_logged_in: u64,
    /// CRC errors and undecodable frames.
    pub malformed: u64,
    /// Frames on a port that is down.
    pub port_down: u64,
}

impl Discards {
    /// All discards.
    pub fn total(&self) -> u64 {
        self.unzoned + self.unroutable + self.not_logged_in + self.malformed + self.port_down
    }

    pub(crate) fn count(&mut self, reason: DiscardReason) {
        let c = match reason {
            DiscardReason::Unzoned => &mut self.unzoned,
            DiscardReason::Unroutable => &mut self.unroutable,
            DiscardReason::NotLoggedIn => &mut self.not_logged_in,
            DiscardReason::Malformed => &mut self.malformed,
            DiscardReason::PortDown => &mut self.port_down,
        };
        *c = c.saturating_add(1);
    }
}

/// A port's counters. Bytes are those of header, payload, fill and CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames handed out to send.
    pub tx_frames: u64,
    /// Bytes handed out to send.
    pub tx_bytes: u64,
    /// Frames handed out to send (counted in `tx_frames`) that never went: they waited the
    /// hold time for room on the port's link, or the link was down (see `crate::driver`).
    pub tx_discards: u64,
    /// Frames received and discarded.
    pub discards: Discards,
}

impl PortCounters {
    pub(crate) fn rx(&mut self, bytes: usize) {
        self.rx_frames = self.rx_frames.saturating_add(1);
        self.rx_bytes = self.rx_bytes.saturating_add(bytes as u64);
    }

    pub(crate) fn tx(&mut self, bytes: usize) {
        self.tx_frames = self.tx_frames.saturating_add(1);
        self.tx_bytes = self.tx_bytes.saturating_add(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discards_count_by_reason() {
        let mut d = Discards::default();
        d.count(DiscardReason::Unzoned);
        d.count(DiscardReason::Unzoned);
        d.count(DiscardReason::Malformed);
        assert_eq!(d.unzoned, 2);
        assert_eq!(d.malformed, 1);
        assert_eq!(d.total(), 3);
    }

    #[test]
    fn counters_add_frames_and_bytes() {
        let mut c = PortCounters::default();
        c.rx(64);
        c.tx(28);
        c.tx(32);
        assert_eq!(
            (c.rx_frames, c.rx_bytes, c.tx_frames, c.tx_bytes),
            (1, 64, 2, 60)
        );
    }
}
