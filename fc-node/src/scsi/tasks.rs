//! The task set of one logical unit (SAM-5 §8): which tasks exist, in the order the task
//! manager received them, which may run, and which were told to abort.
//!
//! Task attributes (SAM-5 §8.6), as this module applies them:
//!
//! | attribute | enters the enabled state when |
//! |---|---|
//! | HEAD OF QUEUE | at once |
//! | SIMPLE (and UNTAGGED) | no HEAD OF QUEUE task is in the set, and no ORDERED task received before it |
//! | ORDERED | no HEAD OF QUEUE task is in the set, and no task received before it |
//!
//! So SIMPLE tasks overlap each other (the Control mode page reports QUEUE ALGORITHM MODIFIER
//! 1, unrestricted reordering), an ORDERED task waits for every earlier task and holds every
//! later one back until it ends, and a HEAD OF QUEUE task starts at once and holds back the
//! tasks that were not yet enabled. An enabled task stays enabled.
//!
//! A task is *entered* when the command is received (before its data-out arrives), *waiting*
//! once it asks to run, *enabled* while it runs. Aborting a task that is entered removes it at
//! once (nothing runs it); aborting a waiting or enabled one signals it, and it leaves the set
//! when it has stopped. Plain data: the engine holds the set behind its logical unit's lock.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::engine::Nexus;

/// How a task is ordered among the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    /// SIMPLE or UNTAGGED.
    Simple,
    /// ORDERED.
    Ordered,
    /// HEAD OF QUEUE.
    HeadOfQueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Entered,
    Waiting,
    Enabled,
}

/// One task in the set.
#[derive(Debug)]
pub(crate) struct Entry {
    pub nexus: Nexus,
    pub tag: u64,
    attr: Attr,
    phase: Phase,
    /// Taken (and fired) when the task is told to abort.
    abort: Option<oneshot::Sender<()>>,
}

/// The tasks of one logical unit, by the order they were received.
#[derive(Debug, Default)]
pub(crate) struct TaskSet {
    entries: BTreeMap<u64, Entry>,
    next: u64,
}

/// What aborting some tasks did.
#[derive(Debug, Default)]
pub(crate) struct Aborted {
    /// Tasks told to abort (including those removed at once).
    pub count: usize,
    /// The tasks still in the set, to wait for.
    pub running: Vec<u64>,
    /// The nexuses whose tasks were aborted.
    pub nexuses: Vec<Nexus>,
}

impl TaskSet {
    /// Enters a task; its number in the set and the receiver that fires (or closes) when it is
    /// to abort.
    pub fn enter(&mut self, nexus: Nexus, tag: u64, attr: Attr) -> (u64, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let seq = self.next;
        self.next += 1;
        self.entries.insert(
            seq,
            Entry {
                nexus,
                tag,
                attr,
                phase: Phase::Entered,
                abort: Some(tx),
            },
        );
        (seq, rx)
    }

    /// Number of tasks in the set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Asks for task `seq` to run; true when it is enabled now (it stays enabled). False
    /// when it must wait, or when it is gone or aborted.
    pub fn try_enable(&mut self, seq: u64) -> bool {
        let Some(me) = self.entries.get(&seq) else {
            return false;
        };
        if me.abort.is_none() {
            return false;
        }
        let attr = me.attr;
        let phase = me.phase;
        let enabled = phase == Phase::Enabled
            || match attr {
                Attr::HeadOfQueue => true,
                Attr::Simple | Attr::Ordered => {
                    let hoq = self
                        .entries
                        .iter()
                        .any(|(&s, e)| s != seq && e.attr == Attr::HeadOfQueue);
                    let blocked_by_older = self
                        .entries
                        .range(..seq)
                        .any(|(_, e)| attr == Attr::Ordered || e.attr == Attr::Ordered);
                    !hoq && !blocked_by_older
                }
            };
        if let Some(me) = self.entries.get_mut(&seq) {
            me.phase = if enabled {
                Phase::Enabled
            } else {
                Phase::Waiting
            };
        }
        enabled
    }

    /// Removes task `seq`, which has ended; true when it ended on its own, false when it had
    /// been told to abort (or was already removed).
    pub fn finish(&mut self, seq: u64) -> bool {
        self.entries.remove(&seq).is_some_and(|e| e.abort.is_some())
    }

    /// True when any of `seqs` is still in the set.
    pub fn any(&self, seqs: &[u64]) -> bool {
        seqs.iter().any(|s| self.entries.contains_key(s))
    }

    /// Tells every task `pick` chooses to abort.
    pub fn abort(&mut self, mut pick: impl FnMut(&Entry) -> bool) -> Aborted {
        let mut out = Aborted::default();
        let mut gone = Vec::new();
        for (&seq, e) in self.entries.iter_mut() {
            if e.abort.is_none() || !pick(e) {
                continue;
            }
            out.count += 1;
            if !out.nexuses.contains(&e.nexus) {
                out.nexuses.push(e.nexus);
            }
            if e.phase == Phase::Entered {
                gone.push(seq);
            } else {
                if let Some(tx) = e.abort.take() {
                    let _ = tx.send(());
                }
                out.running.push(seq);
            }
        }
        for seq in gone {
            // Dropping the sender closes the receiver: the task, if it is ever run, sees that
            // it was aborted.
            self.entries.remove(&seq);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::Wwn;

    use super::*;

    const A: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0, 0, 0, 0, 1]));
    const B: Nexus = Nexus::new(Wwn([0x21, 0, 0, 0, 0, 0, 0, 2]));

    #[test]
    fn test_simple_tasks_overlap() {
        let mut t = TaskSet::default();
        let (a, _ra) = t.enter(A, 1, Attr::Simple);
        let (b, _rb) = t.enter(B, 2, Attr::Simple);
        assert!(t.try_enable(b));
        assert!(t.try_enable(a));
    }

    #[test]
    fn test_ordered_waits_for_older_and_holds_newer() {
        let mut t = TaskSet::default();
        let (s1, _r1) = t.enter(A, 1, Attr::Simple);
        let (o, _r2) = t.enter(A, 2, Attr::Ordered);
        let (s2, _r3) = t.enter(A, 3, Attr::Simple);
        assert!(t.try_enable(s1));
        assert!(!t.try_enable(o));
        assert!(!t.try_enable(s2));
        assert!(t.finish(s1));
        assert!(t.try_enable(o));
        assert!(!t.try_enable(s2));
        assert!(t.finish(o));
        assert!(t.try_enable(s2));
    }

    #[test]
    fn test_head_of_queue_starts_at_once_and_holds_waiting_tasks() {
        let mut t = TaskSet::default();
        let (o, _r1) = t.enter(A, 1, Attr::Ordered);
        assert!(t.try_enable(o));
        let (s, _r2) = t.enter(A, 2, Attr::Simple);
        let (h, _r3) = t.enter(B, 3, Attr::HeadOfQueue);
        assert!(t.try_enable(h));
        assert!(t.finish(o));
        assert!(!t.try_enable(s), "held back by the head of queue task");
        assert!(t.finish(h));
        assert!(t.try_enable(s));
    }

    #[test]
    fn test_abort_removes_entered_and_signals_running() {
        let mut t = TaskSet::default();
        let (e, mut re) = t.enter(A, 1, Attr::Simple);
        let (r, mut rr) = t.enter(A, 2, Attr::Simple);
        let (other, _ro) = t.enter(B, 3, Attr::Simple);
        assert!(t.try_enable(r));
        let out = t.abort(|x| x.nexus == A);
        assert_eq!(out.count, 2);
        assert_eq!(out.running, vec![r]);
        assert_eq!(out.nexuses, vec![A]);
        assert!(!t.any(&[e]));
        assert!(t.any(&[r, other]));
        assert_eq!(
            re.try_recv(),
            Err(oneshot::error::TryRecvError::Closed),
            "entered task: sender dropped"
        );
        assert_eq!(rr.try_recv(), Ok(()));
        // An aborted task does not count as ending on its own, and is not enabled again.
        assert!(!t.try_enable(r));
        assert!(!t.finish(r));
        assert!(t.finish(other));
        assert_eq!(t.len(), 0);
        // Aborting twice does nothing more.
        assert_eq!(t.abort(|_| true).count, 0);
    }
}
