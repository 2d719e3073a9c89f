//! `fc-link`: the one frame link every Fibre Channel link here presents — an in-process pair,
//! a node's TCP link (`fabric::link::tcp`), an FCIP link of one to eight TCP connections
//! (`fcip::link`) — to a switch port or to a node.
//!
//! ```text
//!   LinkTx ──► bounded queue (capacity frames) ──► LinkRx
//!   LinkTx of lanes ──┬─► lane 0 queue ──► (an FCIP connection's writer)
//!                     ├─► lane 1 queue ──► ...            picked by exchange
//!                     └─► lane n queue
//! ```
//!
//! A [`Link`] is one end: [`LinkTx`] sends frames to the other end, [`LinkRx`] receives what the
//! other end sent. Every queue is bounded: its capacity, in frames, plays the part of FC's
//! buffer-to-buffer credit.
//!
//! - **Back-pressure.** [`LinkTx::send`] waits for room; [`LinkTx::try_send`] never waits and
//!   answers [`TrySendError::Full`] or [`TrySendError::Down`], handing the frame back.
//!   [`LinkTx::has_room`] and [`LinkTx::ready`] let a sender that must not wait (a state
//!   machine's driver) leave frames where they are until there is room. A transport's reader
//!   that finds the queue above it full waits ([`LinkTx::send_all`]) and so stops reading its
//!   socket: TCP's window closes and the peer's writer stops in turn.
//! - **Lanes.** A link of several parallel paths (an FCIP link's TCP connections) sends through
//!   a [`LinkTx`] made by [`lanes`]: each frame goes to the lane its exchange (S_ID, D_ID,
//!   OX_ID) hashes to, so an exchange keeps its lane, and its order, while that lane is up;
//!   while it is down, the next lane up takes the exchange's frames. The frame goes straight
//!   into that lane's queue: no task sits between the sender and the lanes. A full lane is
//!   [`Full`](TrySendError::Full) even when another lane has room, so that an exchange's frames
//!   never overtake each other.
//! - **Down.** A link is down when [`LinkRx::recv`] returns `None`: every sender of its queue
//!   (the other end, or the transport's reader) is gone, and everything queued before was
//!   taken. Sending fails with [`LinkDown`] once the receiving end is gone, or, for lanes,
//!   once the [`LaneSet`] is closed.
//!
//! Each queue is a `VecDeque` behind a mutex that moves frames a batch at a time and wakes a
//! side only when it waits (see `queue.rs`): a transport pushes what it received with
//! [`LinkTx::send_all`], a batch with one lock, and a receiver takes a batch with one lock
//! with [`LinkRx::recv_many`] or, polling many links from one task,
//! [`LinkRx::poll_recv_many`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod lanes;
mod queue;

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use fc_frames::{FcFrame, FrameError};

pub use lanes::LaneSet;

/// Frames a link's queue holds unless its maker asks for another capacity.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What arrived on a link.
#[derive(Debug, Clone)]
pub enum Received {
    /// A frame that decoded, CRC checked.
    Frame(FcFrame),
    /// Bytes that arrived framed but did not decode as an FC frame (bad CRC, bad length):
    /// counted by the receiver, never acted on.
    Malformed {
        /// Bytes of the encapsulated frame.
        bytes: usize,
        /// Why it did not decode.
        error: FrameError,
    },
}

/// The link is down: nothing can be sent on it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link down")]
pub struct LinkDown;

/// Why [`LinkTx::try_send`] did not take a frame; the frame comes back.
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue (the frame's lane) is full: try again when there is room.
    Full(T),
    /// The link is down.
    Down(T),
}

impl<T> TrySendError<T> {
    /// The frame that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(t) | TrySendError::Down(t) => t,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Down(_) => "Down(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "link queue full",
            TrySendError::Down(_) => "link down",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// The sending half of a link: one bounded queue, or [`lanes`] of them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkTx {
    path: Path,
}

#[derive(Debug, Clone)]
enum Path {
    Queue(queue::Sender),
    Lanes(Arc<lanes::Lanes>),
}

impl LinkTx {
    /// Queues `frame` if its queue has room now; never waits.
    pub fn try_send(&self, frame: FcFrame) -> Result<(), TrySendError<FcFrame>> {
        match &self.path {
            Path::Queue(q) => q.try_push(frame, Received::Frame),
            Path::Lanes(l) => l.try_send(frame),
        }
    }

    /// Queues `frame`, waiting for room.
    pub async fn send(&self, frame: FcFrame) -> Result<(), LinkDown> {
        match &self.path {
            Path::Queue(q) => push(q, Received::Frame(frame)).await,
            Path::Lanes(l) => l.send(frame).await,
        }
    }

    /// Tells the other end that a frame arrived malformed (a transport that checks frames
    /// itself hands on what it found so the receiver counts it), waiting for room. Lanes carry
    /// frames to transports, which have nothing to count: there it does nothing.
    pub async fn send_malformed(&self, bytes: usize, error: FrameError) -> Result<(), LinkDown> {
        match &self.path {
            Path::Queue(q) => push(q, Received::Malformed { bytes, error }).await,
            Path::Lanes(_) => Ok(()),
        }
    }

    /// Queues every item of `items` in order, waiting for room as often as it must (a
    /// transport's reader does, and stops reading meanwhile); `items` is empty afterwards,
    /// with an allocation to reuse (its own, or the queue's it was swapped with when all of
    /// it went into an empty queue). On [`LinkDown`] the items not yet queued are dropped.
    pub async fn send_all(&self, items: &mut Vec<Received>) -> Result<(), LinkDown> {
        match &self.path {
            Path::Queue(q) => {
                let r = poll_fn(|cx| q.poll_push_all(cx, items)).await;
                items.clear();
                r
            }
            Path::Lanes(l) => {
                for item in items.drain(..) {
                    if let Received::Frame(f) = item {
                        l.send(f).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// True when [`try_send`](Self::try_send) of any frame would be taken now (for lanes:
    /// every lane up has room), as long as no other sender takes the room first.
    pub fn has_room(&self) -> bool {
        match &self.path {
            Path::Queue(q) => q.queue().room() > 0,
            Path::Lanes(l) => l.has_room(),
        }
    }

    /// Waits until [`has_room`](Self::has_room) would say so, or the link is down.
    pub async fn ready(&self) -> Result<(), LinkDown> {
        match &self.path {
            Path::Queue(q) => poll_fn(|cx| q.queue().poll_ready(cx)).await,
            Path::Lanes(l) => l.ready().await,
        }
    }

    /// A future, not tied to this handle, that resolves when the queue `frame` would go to
    /// has room (or the link is down): what a sender that keeps frames waiting polls.
    pub fn wait_ready(&self, frame: &FcFrame) -> WaitReady {
        let fut: BoxedReady = match &self.path {
            Path::Queue(q) => {
                // The queue, not a sender: waiting does not keep the link up.
                let q = Arc::clone(q.queue());
                Box::pin(poll_fn(move |cx| q.poll_ready(cx)))
            }
            Path::Lanes(l) => {
                let (l, h) = (Arc::clone(l), frame.header);
                Box::pin(async move { l.ready_for(&h).await })
            }
        };
        WaitReady(fut)
    }

    /// True once the link is down: the receiving end (or the transport behind it) is gone, or
    /// the lanes were closed.
    pub fn is_closed(&self) -> bool {
        match &self.path {
            Path::Queue(q) => q.queue().is_closed(),
            Path::Lanes(l) => l.is_closed(),
        }
    }

    /// Resolves once the link is down.
    pub async fn closed(&self) {
        match &self.path {
            Path::Queue(q) => poll_fn(|cx| q.queue().poll_closed(cx)).await,
            Path::Lanes(l) => l.closed().await,
        }
    }

    /// True when both handles send into the same queue (or the same lanes).
    pub fn same_link(&self, other: &LinkTx) -> bool {
        match (&self.path, &other.path) {
            (Path::Queue(a), Path::Queue(b)) => a.same_queue(b),
            (Path::Lanes(a), Path::Lanes(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Queues `item` into `q` once there is room.
async fn push(q: &queue::Sender, item: Received) -> Result<(), LinkDown> {
    let mut slot = Some(item);
    poll_fn(|cx| q.poll_push(cx, &mut slot)).await
}

type BoxedReady = Pin<Box<dyn Future<Output = Result<(), LinkDown>> + Send>>;

/// Resolves when a link's queue has room for a frame; see [`LinkTx::wait_ready`].
pub struct WaitReady(BoxedReady);

impl fmt::Debug for WaitReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WaitReady")
    }
}

impl Future for WaitReady {
    type Output = Result<(), LinkDown>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// The receiving half of a link.
#[derive(Debug)]
pub struct LinkRx {
    rx: queue::Receiver,
}

impl LinkRx {
    /// The next thing that arrived; `None` once the link is down and everything that arrived
    /// before has been taken.
    pub async fn recv(&mut self) -> Option<Received> {
        let mut one = Vec::with_capacity(1);
        match poll_fn(|cx| self.rx.poll_recv_many(cx, &mut one, 1)).await {
            0 => None,
            _ => one.pop(),
        }
    }

    /// Everything that arrived, up to `limit` items, appended to `buf` (waits for at least
    /// one); 0 once the link is down.
    pub async fn recv_many(&mut self, buf: &mut Vec<Received>, limit: usize) -> usize {
        poll_fn(|cx| self.rx.poll_recv_many(cx, buf, limit)).await
    }

    /// [`recv_many`](Self::recv_many) as a poll, for a task that watches many links itself:
    /// `Ready(0)` once the link is down, `Pending` (with `cx` woken later) while it is empty.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<Received>,
        limit: usize,
    ) -> Poll<usize> {
        self.rx.poll_recv_many(cx, buf, limit)
    }

    /// What arrived, without waiting; `None` when nothing is queued (or the link is down).
    pub fn try_recv(&mut self) -> Option<Received> {
        self.rx.try_recv()
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.len() == 0
    }
}

/// One end of a link.
#[derive(Debug)]
pub struct Link {
    /// Frames to the other end.
    pub tx: LinkTx,
    /// Frames from the other end.
    pub rx: LinkRx,
}

impl Link {
    /// A link end of two halves: `tx` carries what this end sends, `rx` what it receives.
    pub fn new(tx: LinkTx, rx: LinkRx) -> Link {
        Link { tx, rx }
    }
}

/// One bounded queue of `capacity` frames (at least one): what is sent on the [`LinkTx`]
/// arrives on the [`LinkRx`]. A transport makes two, one each way, and keeps the halves that
/// face its socket.
pub fn channel(capacity: usize) -> (LinkTx, LinkRx) {
    let (tx, rx) = queue::queue(capacity);
    (
        LinkTx {
            path: Path::Queue(tx),
        },
        LinkRx { rx },
    )
}

/// An in-process link: two connected ends, [`DEFAULT_CAPACITY`] frames each way. Dropping both
/// halves of one end takes the link down for the other.
pub fn pair() -> (Link, Link) {
    pair_with_capacity(DEFAULT_CAPACITY)
}

/// [`pair`] with queues of `capacity` frames.
pub fn pair_with_capacity(capacity: usize) -> (Link, Link) {
    let (a_tx, b_rx) = channel(capacity);
    let (b_tx, a_rx) = channel(capacity);
    (Link::new(a_tx, a_rx), Link::new(b_tx, b_rx))
}

/// A sending half over `n` lanes (at least one), none of them up yet, and the [`LaneSet`] that
/// puts lanes up and down. A frame offered while no lane is up is counted in `dropped` and
/// refused as [`Down`](TrySendError::Down).
pub fn lanes(n: usize, dropped: Arc<AtomicU64>) -> (LinkTx, LaneSet) {
    let l = Arc::new(lanes::Lanes::new(n.max(1), dropped));
    (
        LinkTx {
            path: Path::Lanes(Arc::clone(&l)),
        },
        LaneSet::new(l),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use fc_frames::{FcId, FcType, FrameHeaderRepr, RCtl};
    use tokio::time::timeout;

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    fn frame(ox: u16, seq: u16) -> FcFrame {
        let mut h = FrameHeaderRepr::request(
            RCtl::SOLICITED_DATA,
            FcType::FCP,
            FcId::from_parts(2, 1, 0),
            FcId::from_parts(1, 1, 0),
            ox,
        );
        h.seq_cnt = seq;
        FcFrame::single(h, vec![seq as u8; 8])
    }

    fn seq_of(r: Received) -> (u16, u16) {
        match r {
            Received::Frame(f) => (f.header.ox_id, f.header.seq_cnt),
            Received::Malformed { .. } => panic!("malformed"),
        }
    }

    #[test]
    fn test_try_send_is_full_at_capacity_then_down_once_the_receiver_goes() {
        let (tx, rx) = channel(2);
        assert!(tx.has_room());
        tx.try_send(frame(1, 0)).unwrap();
        tx.try_send(frame(1, 1)).unwrap();
        assert!(!tx.has_room());
        let back = tx.try_send(frame(1, 2));
        assert!(matches!(back, Err(TrySendError::Full(f)) if f.header.seq_cnt == 2));
        drop(rx);
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send(frame(1, 3)),
            Err(TrySendError::Down(_))
        ));
    }

    #[tokio::test]
    async fn test_send_waits_for_room_and_order_holds() {
        let (tx, mut rx) = channel(4);
        let sender = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(frame(1, i)).await.unwrap();
            }
        });
        for i in 0..100 {
            let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
            assert_eq!(seq_of(got), (1, i));
            // Never more than the capacity waits in the queue.
            assert!(rx.len() <= 4);
        }
        sender.await.unwrap();
        assert!(rx.recv().await.is_none(), "every sender gone: down");
    }

    #[tokio::test]
    async fn test_send_all_waits_for_room_in_batches() {
        let (tx, mut rx) = channel(8);
        let sender = tokio::spawn(async move {
            let mut items: Vec<Received> = (0..50).map(|i| Received::Frame(frame(2, i))).collect();
            tx.send_all(&mut items).await.unwrap();
            assert!(items.is_empty());
        });
        let mut buf = Vec::new();
        let mut next = 0;
        while next < 50 {
            let n = timeout(WAIT, rx.recv_many(&mut buf, 5)).await.unwrap();
            assert!(n > 0 && n <= 5);
            for r in buf.drain(..) {
                assert_eq!(seq_of(r), (2, next));
                next += 1;
            }
        }
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn test_wait_ready_resolves_when_room_appears() {
        let (tx, mut rx) = channel(1);
        tx.try_send(frame(1, 0)).unwrap();
        let mut ready = tx.wait_ready(&frame(1, 1));
        assert!(futures_poll_once(&mut ready).is_none(), "full: not ready");
        rx.recv().await.unwrap();
        timeout(WAIT, ready).await.unwrap().unwrap();
        drop(rx);
        assert_eq!(
            timeout(WAIT, tx.wait_ready(&frame(1, 1))).await.unwrap(),
            Err(LinkDown)
        );
    }

    /// Polls a future once with a no-op waker.
    fn futures_poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match Pin::new(f).poll(&mut cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn test_lanes_keep_an_exchange_on_its_lane_and_fall_over_while_it_is_down() {
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, set) = lanes(3, dropped.clone());
        assert!(matches!(
            tx.try_send(frame(1, 0)),
            Err(TrySendError::Down(_))
        ));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        let mut rxs = Vec::new();
        for lane in 0..3 {
            let (ltx, lrx) = channel(1000);
            set.set(lane, ltx);
            rxs.push(lrx);
        }
        for x in 0..60u16 {
            for seq in 0..3 {
                tx.try_send(frame(x, seq)).unwrap();
            }
        }
        // Each exchange on one lane only, in order; the exchanges spread over all three.
        let mut lane_of = std::collections::BTreeMap::new();
        for (lane, rx) in rxs.iter_mut().enumerate() {
            let mut next = std::collections::BTreeMap::new();
            while let Some(r) = rx.try_recv() {
                let (x, seq) = seq_of(r);
                assert_eq!(*lane_of.entry(x).or_insert(lane), lane, "exchange {x}");
                let n = next.entry(x).or_insert(0);
                assert_eq!(seq, *n);
                *n += 1;
            }
            assert!(!next.is_empty(), "lane {lane} unused");
        }
        // Lane of exchange 0 goes down: its frames go to the next lane up, and come back.
        let home = lane_of[&0];
        set.clear(home);
        tx.try_send(frame(0, 3)).unwrap();
        let other = (home + 1) % 3;
        assert_eq!(rxs[other].try_recv().map(seq_of), Some((0, 3)));
        let (ltx, lrx) = channel(1000);
        set.set(home, ltx);
        rxs[home] = lrx;
        tx.try_send(frame(0, 4)).unwrap();
        assert_eq!(rxs[home].try_recv().map(seq_of), Some((0, 4)));
        // Closed: down for good.
        set.close();
        assert!(tx.is_closed());
        timeout(WAIT, tx.closed()).await.unwrap();
        assert!(matches!(
            tx.try_send(frame(0, 5)),
            Err(TrySendError::Down(_))
        ));
    }

    #[tokio::test]
    async fn test_a_full_lane_is_full_even_when_another_has_room() {
        let (tx, set) = lanes(2, Arc::new(AtomicU64::new(0)));
        let (l0, mut r0) = channel(1);
        let (l1, _r1) = channel(100);
        set.set(0, l0);
        set.set(1, l1);
        // Exchanges that hash to lane 0.
        let on0: Vec<u16> = (0..100)
            .filter(|x| lanes::lane_of(&frame(*x, 0).header, 2) == 0)
            .take(2)
            .collect();
        tx.try_send(frame(on0[0], 0)).unwrap();
        assert!(!tx.has_room());
        assert!(matches!(
            tx.try_send(frame(on0[1], 0)),
            Err(TrySendError::Full(_))
        ));
        // send() waits for that lane's room.
        let t = tx.clone();
        let x = on0[1];
        let waiting = tokio::spawn(async move { t.send(frame(x, 0)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert_eq!(r0.recv().await.map(seq_of), Some((on0[0], 0)));
        timeout(WAIT, waiting).await.unwrap().unwrap().unwrap();
        assert_eq!(r0.recv().await.map(seq_of), Some((x, 0)));
    }

    /// Many senders into a small queue, each waiting for room again and again, and one
    /// receiver taking batches: nothing lost, nothing stuck, each sender's frames in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_many_senders_and_a_small_queue_lose_no_wake_up() {
        const SENDERS: u16 = 4;
        const EACH: u16 = 20_000;
        let (tx, mut rx) = channel(8);
        let mut tasks = Vec::new();
        for x in 0..SENDERS {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut batch = Vec::new();
                for seq in 0..EACH {
                    if seq % 3 == 0 {
                        tx.send(frame(x, seq)).await.unwrap();
                    } else {
                        batch.push(Received::Frame(frame(x, seq)));
                        if batch.len() == 2 {
                            tx.send_all(&mut batch).await.unwrap();
                        }
                    }
                }
                tx.send_all(&mut batch).await.unwrap();
            }));
        }
        drop(tx);
        let mut next = [0u16; SENDERS as usize];
        let mut buf = Vec::new();
        loop {
            let n = timeout(WAIT, rx.recv_many(&mut buf, 5)).await.unwrap();
            if n == 0 {
                break;
            }
            for r in buf.drain(..) {
                let (x, seq) = seq_of(r);
                assert_eq!(seq, next[usize::from(x)], "sender {x}");
                next[usize::from(x)] += 1;
            }
        }
        assert_eq!(next, [EACH; SENDERS as usize]);
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// The receiver going takes the link down for senders waiting for room and for `closed`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_dropping_the_receiver_wakes_waiting_senders() {
        let (tx, rx) = channel(1);
        tx.try_send(frame(1, 0)).unwrap();
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(frame(1, 1)).await })
        };
        let closed = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.closed().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished() && !closed.is_finished());
        drop(rx);
        assert_eq!(
            timeout(WAIT, waiting).await.unwrap().unwrap(),
            Err(LinkDown)
        );
        timeout(WAIT, closed).await.unwrap().unwrap();
        assert!(tx.is_closed());
        assert!(!tx.has_room());
    }
}
