//! Replay protection per sender: the sliding window of RFC 4303 §3.4.3 (IPsec ESP's
//! anti-replay window) over the sender's sequence numbers, which rise with the sender's clock
//! across restarts and generations; a message of a generation older than one seen from the
//! sender is stale (generation 0, a controller recovering a lost database, is never stale:
//! the window alone guards it).

use crate::wire::Reason;

/// How many sequence numbers below the highest one seen are still accepted once.
pub const WINDOW: u64 = 64;

/// One sender's window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    generation: u32,
    highest: u64,
    /// Bit i: `highest - i` was seen.
    seen: u64,
    any: bool,
}

impl ReplayWindow {
    /// Checks a message's generation and sequence number without recording it.
    pub fn check(&self, generation: u32, seq: u64) -> Result<(), Reason> {
        if !self.any {
            return Ok(());
        }
        if generation != 0 && generation < self.generation {
            return Err(Reason::STALE);
        }
        if seq > self.highest {
            return Ok(());
        }
        let back = self.highest - seq;
        if back >= WINDOW || self.seen & (1 << back) != 0 {
            return Err(Reason::REPLAYED);
        }
        Ok(())
    }

    /// Records a message that passed [`ReplayWindow::check`] and was authenticated.
    pub fn record(&mut self, generation: u32, seq: u64) {
        self.generation = self.generation.max(generation);
        if !self.any {
            self.any = true;
            self.highest = seq;
            self.seen = 1;
            return;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = seq;
        } else {
            self.seen |= 1 << (self.highest - seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, g: u32, s: u64) -> Result<(), Reason> {
        w.check(g, s)?;
        w.record(g, s);
        Ok(())
    }

    #[test]
    fn test_replay_window() {
        let mut w = ReplayWindow::default();
        assert_eq!(accept(&mut w, 1, 100), Ok(()));
        assert_eq!(accept(&mut w, 1, 100), Err(Reason::REPLAYED));
        assert_eq!(accept(&mut w, 1, 98), Ok(()));
        assert_eq!(accept(&mut w, 1, 98), Err(Reason::REPLAYED));
        assert_eq!(accept(&mut w, 1, 99), Ok(()));
        assert_eq!(accept(&mut w, 1, 200), Ok(()));
        assert_eq!(accept(&mut w, 1, 200 - WINDOW), Err(Reason::REPLAYED));
        assert_eq!(accept(&mut w, 1, 200 - WINDOW + 1), Ok(()));
        assert_eq!(
            accept(&mut w, 0, 500),
            Ok(()),
            "generation 0 is never stale"
        );
        assert_eq!(accept(&mut w, 2, 1000), Ok(()));
        assert_eq!(accept(&mut w, 1, 2000), Err(Reason::STALE));
        assert_eq!(
            accept(&mut w, 0, 3000),
            Ok(()),
            "a controller recovering its database"
        );
        assert_eq!(accept(&mut w, 0, 3000), Err(Reason::REPLAYED));
    }
}
