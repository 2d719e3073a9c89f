//! The bounded queue under every link: a `VecDeque` behind a mutex, with the waker of a
//! receiver that found it empty and of senders that found it full.
//!
//! It moves frames a batch at a time — a sender puts many in with one lock
//! ([`Sender::poll_push_all`]), the receiver takes many with one lock
//! ([`Receiver::poll_recv_many`]) — and wakes a side only when that side is waiting: a sender
//! that queues behind frames the receiver has not taken yet wakes nobody. Every change of
//! state and every waker registration happens under the lock; wakers are woken after it is
//! released.
//!
//! The receiver takes part in tokio's cooperative scheduling (each batch taken costs budget),
//! so that a task which always finds frames waiting still yields to the others on its thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use crate::{LinkDown, Received, TrySendError};

pub(crate) struct Queue {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    items: VecDeque<Received>,
    /// The receiver's waker, while it waits for an item.
    rx_waker: Option<Waker>,
    /// Senders waiting for room.
    room_waiters: Vec<Waker>,
    /// Tasks waiting for the receiver to go.
    close_waiters: Vec<Waker>,
    senders: usize,
    /// False once the receiver is gone.
    open: bool,
}

/// Adds `w` to `list` unless a waker of the same task is there already.
fn register(list: &mut Vec<Waker>, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

fn wake_all(list: Vec<Waker>) {
    for w in list {
        w.wake();
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock leaves the state whole: a panicking holder (only a
        // waker's clone could panic) leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        !self.lock().open
    }

    /// Room now (0 once the receiver is gone).
    pub(crate) fn room(&self) -> usize {
        let s = self.lock();
        if s.open {
            self.capacity.saturating_sub(s.items.len())
        } else {
            0
        }
    }

    /// Ready when there is room (`Ok`) or the receiver is gone (`Err`).
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), LinkDown>> {
        let mut s = self.lock();
        if !s.open {
            return Poll::Ready(Err(LinkDown));
        }
        if s.items.len() < self.capacity {
            return Poll::Ready(Ok(()));
        }
        register(&mut s.room_waiters, cx.waker());
        Poll::Pending
    }

    /// Ready once the receiver is gone.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if !s.open {
            return Poll::Ready(());
        }
        register(&mut s.close_waiters, cx.waker());
        Poll::Pending
    }
}

/// A sending handle; the receiver sees the end once every one is dropped.
pub(crate) struct Sender {
    q: Arc<Queue>,
}

/// The receiving handle; senders see the link down once it is dropped.
pub(crate) struct Receiver {
    q: Arc<Queue>,
}

/// A queue of `capacity` items (at least one).
pub(crate) fn queue(capacity: usize) -> (Sender, Receiver) {
    let q = Arc::new(Queue {
        state: Mutex::new(State {
            items: VecDeque::new(),
            rx_waker: None,
            room_waiters: Vec::new(),
            close_waiters: Vec::new(),
            senders: 1,
            open: true,
        }),
        capacity: capacity.max(1),
    });
    (Sender { q: Arc::clone(&q) }, Receiver { q })
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.q.capacity)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.q.capacity)
            .finish_non_exhaustive()
    }
}

impl Clone for Sender {
    fn clone(&self) -> Sender {
        self.q.lock().senders += 1;
        Sender {
            q: Arc::clone(&self.q),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut s = self.q.lock();
        s.senders = s.senders.saturating_sub(1);
        let w = if s.senders == 0 {
            s.rx_waker.take()
        } else {
            None
        };
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Sender {
    /// The queue itself, for a waiter that is not a sender.
    pub(crate) fn queue(&self) -> &Arc<Queue> {
        &self.q
    }

    pub(crate) fn same_queue(&self, other: &Sender) -> bool {
        Arc::ptr_eq(&self.q, &other.q)
    }

    /// Queues `wrap(value)` if there is room; gives `value` back if not.
    pub(crate) fn try_push<T>(
        &self,
        value: T,
        wrap: impl FnOnce(T) -> Received,
    ) -> Result<(), TrySendError<T>> {
        let mut s = self.q.lock();
        if !s.open {
            return Err(TrySendError::Down(value));
        }
        if s.items.len() >= self.q.capacity {
            return Err(TrySendError::Full(value));
        }
        s.items.push_back(wrap(value));
        let w = s.rx_waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }

    /// Queues what `slot` holds once there is room; `slot` is empty when this is ready with
    /// `Ok`.
    pub(crate) fn poll_push(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<Received>,
    ) -> Poll<Result<(), LinkDown>> {
        let mut s = self.q.lock();
        if !s.open {
            return Poll::Ready(Err(LinkDown));
        }
        if s.items.len() >= self.q.capacity {
            register(&mut s.room_waiters, cx.waker());
            return Poll::Pending;
        }
        if let Some(item) = slot.take() {
            s.items.push_back(item);
        }
        let w = s.rx_waker.take();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    /// Queues the items of `items`, from its front, as room allows, many with one lock; ready
    /// when all are queued (`items` is then empty, its allocation possibly swapped for the
    /// queue's) or the receiver is gone.
    pub(crate) fn poll_push_all(
        &self,
        cx: &mut Context<'_>,
        items: &mut Vec<Received>,
    ) -> Poll<Result<(), LinkDown>> {
        loop {
            if items.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut s = self.q.lock();
            if !s.open {
                return Poll::Ready(Err(LinkDown));
            }
            let room = self.q.capacity.saturating_sub(s.items.len());
            if room == 0 {
                register(&mut s.room_waiters, cx.waker());
                return Poll::Pending;
            }
            if s.items.is_empty() && items.len() <= room {
                // All of them into an empty queue: swap storage instead of moving each.
                let spare = Vec::from(std::mem::take(&mut s.items));
                s.items = VecDeque::from(std::mem::replace(items, spare));
            } else {
                let n = room.min(items.len());
                s.items.extend(items.drain(..n));
            }
            let w = s.rx_waker.take();
            drop(s);
            if let Some(w) = w {
                w.wake();
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut s = self.q.lock();
        s.open = false;
        let items = std::mem::take(&mut s.items);
        let room = std::mem::take(&mut s.room_waiters);
        let close = std::mem::take(&mut s.close_waiters);
        drop(s);
        // Outside the lock: what the items hold is freed, and the waiters see the link down.
        drop(items);
        wake_all(room);
        wake_all(close);
    }
}

impl Receiver {
    /// Up to `limit` items appended to `buf`: `Ready(n)` with n ≥ 1, `Ready(0)` once every
    /// sender is gone and nothing is left, `Pending` while the queue is empty.
    pub(crate) fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<Received>,
        limit: usize,
    ) -> Poll<usize> {
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let mut s = self.q.lock();
        if s.items.is_empty() {
            if s.senders == 0 {
                coop.made_progress();
                return Poll::Ready(0);
            }
            match &s.rx_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => s.rx_waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let n = s.items.len().min(limit.max(1));
        if n == s.items.len() && buf.is_empty() {
            // Everything, into an empty buffer: the two swap storage, nothing is moved one by
            // one (at most the queue's ring is straightened).
            let spare = VecDeque::from(std::mem::take(buf));
            *buf = Vec::from(std::mem::replace(&mut s.items, spare));
        } else {
            buf.extend(s.items.drain(..n));
        }
        let room = std::mem::take(&mut s.room_waiters);
        drop(s);
        coop.made_progress();
        wake_all(room);
        Poll::Ready(n)
    }

    /// The next item if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Received> {
        let mut s = self.q.lock();
        let item = s.items.pop_front()?;
        let room = std::mem::take(&mut s.room_waiters);
        drop(s);
        wake_all(room);
        Some(item)
    }

    pub(crate) fn len(&self) -> usize {
        self.q.lock().items.len()
    }
}
