//! The progress of a long copy (a replica's sync, the copy before a delete that keeps the
//! data), in the controller's log at info: where it started, every few seconds how far it is,
//! and how it ended.

use std::time::{Duration, Instant};

/// How often a copy under way says how far it is.
const EVERY: Duration = Duration::from_secs(2);

/// One copy's progress reports.
#[derive(Debug)]
pub(crate) struct Progress {
    what: String,
    total: u64,
    started: Instant,
    next: Instant,
}

impl Progress {
    /// Starts reporting on `what` (e.g. "replica of vol1"), `total` bytes.
    pub(crate) fn start(what: String, total: u64) -> Progress {
        tracing::info!(copy = %what, total_mib = mib(total), "copy started");
        let started = Instant::now();
        Progress {
            what,
            total,
            started,
            next: started + EVERY,
        }
    }

    /// `done` bytes are copied: says so when a report is due.
    pub(crate) fn at(&mut self, done: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        let secs = now.duration_since(self.started).as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if rate > 0.0 {
            format!("{:.0} s", self.total.saturating_sub(done) as f64 / rate)
        } else {
            "-".into()
        };
        tracing::info!(
            copy = %self.what,
            percent = format_args!("{:.1}", percent(done, self.total)),
            copied_mib = mib(done),
            total_mib = mib(self.total),
            mib_per_s = format_args!("{:.1}", rate / (1u64 << 20) as f64),
            eta = %eta,
            "copying"
        );
    }

    /// The copy ended: `Ok` with every byte copied, or why not.
    pub(crate) fn end(self, outcome: Result<(), &str>) {
        let secs = self.started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => tracing::info!(
                copy = %self.what,
                total_mib = mib(self.total),
                seconds = format_args!("{secs:.1}"),
                "copy done"
            ),
            Err(e) => {
                tracing::warn!(copy = %self.what, seconds = format_args!("{secs:.1}"), error = %e, "copy failed")
            }
        }
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_percent_of_nothing_is_done() {
        assert_eq!(percent(0, 0), 100.0);
        assert_eq!(percent(1 << 20, 4 << 20), 25.0);
    }
}
