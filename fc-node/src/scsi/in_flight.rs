//! Operations that outlive their futures, for [`BlockDevice::settle`](super::BlockDevice::settle):
//! a blocking call on the pool, or a write a device sent on to another target, goes on when
//! the command's future is dropped. Each holds a [`Ticket`] until it has really ended;
//! [`InFlight::settle`] waits for every ticket taken before it was called (not for later ones,
//! so that other initiators' steady load does not hold an abort up).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The operations in progress that may still change the medium, by ticket number.
#[derive(Debug, Default)]
pub struct InFlight {
    ops: Mutex<Tickets>,
    done: Notify,
}

#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    live: BTreeSet<u64>,
}

/// Held by an operation until it has ended.
#[derive(Debug)]
pub struct Ticket {
    in_flight: Arc<InFlight>,
    id: u64,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        // The set stays a valid set across a panic.
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket for an operation starting now.
    pub fn begin(self: &Arc<Self>) -> Ticket {
        let mut ops = self.lock();
        let id = ops.next;
        ops.next += 1;
        ops.live.insert(id);
        Ticket {
            in_flight: self.clone(),
            id,
        }
    }

    /// Waits until every ticket taken before the call is returned.
    pub async fn settle(&self) {
        let upto = self.lock().next;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.lock().live.range(..upto).next().is_none() {
                return;
            }
            done.await;
        }
    }

    /// Whether no ticket is out.
    pub fn is_idle(&self) -> bool {
        self.lock().live.is_empty()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_flight.lock().live.remove(&self.id);
        self.in_flight.done.notify_waiters();
    }
}
