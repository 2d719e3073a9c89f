//! A link of several lanes: each frame goes to the lane of its exchange.
//!
//! The lane is picked by a hash of (S_ID, D_ID, OX_ID) over the configured lanes, so an
//! exchange keeps its lane, whatever happens to the others, while that lane is up; while it is
//! down (not set, or its queue's receiver gone) the next lane up, counting on from it, takes the
//! exchange. The table of lanes sits behind a read-write lock that senders only read; the
//! [`LaneSet`] writes it when a lane comes or goes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use fc_frames::{FcFrame, FrameHeaderRepr};
use tokio::sync::Notify;

use crate::{LinkDown, LinkTx, TrySendError};

/// The lane an exchange goes to among `n` (a multiplicative hash of its identifiers: cheap,
/// and consecutive OX_IDs spread).
pub(crate) fn lane_of(h: &FrameHeaderRepr, n: usize) -> usize {
    let key = (u64::from(h.s_id.to_u32()) << 40)
        ^ (u64::from(h.d_id.to_u32()) << 16)
        ^ u64::from(h.ox_id);
    let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (mixed % n.max(1) as u64) as usize
}

/// [`LinkTx::ready`] of a lane, boxed: a lane may itself be a link of lanes.
fn boxed_ready(lane: &LinkTx) -> Pin<Box<dyn Future<Output = Result<(), LinkDown>> + Send + '_>> {
    Box::pin(lane.ready())
}

pub(crate) struct Lanes {
    table: RwLock<Vec<Option<LinkTx>>>,
    closed: AtomicBool,
    /// Told when a lane is set or cleared, or the lanes are closed.
    changed: Notify,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("up", &self.read().iter().flatten().count())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Lanes {
    pub(crate) fn new(n: usize, dropped: Arc<AtomicU64>) -> Lanes {
        Lanes {
            table: RwLock::new(vec![None; n]),
            closed: AtomicBool::new(false),
            changed: Notify::new(),
            dropped,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Option<LinkTx>>> {
        // Every write replaces one slot whole: a panicking writer leaves the table usable.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The lanes up from `h`'s own, in the order they take its exchange.
    fn candidates<'a>(
        table: &'a [Option<LinkTx>],
        h: &FrameHeaderRepr,
    ) -> impl Iterator<Item = &'a LinkTx> + 'a {
        let n = table.len();
        let first = lane_of(h, n);
        (0..n).filter_map(move |i| table.get((first + i) % n).and_then(Option::as_ref))
    }

    pub(crate) fn try_send(&self, frame: FcFrame) -> Result<(), TrySendError<FcFrame>> {
        if self.is_closed() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(TrySendError::Down(frame));
        }
        let table = self.read();
        let mut frame = frame;
        for lane in Self::candidates(&table, &frame.header) {
            match lane.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(f)) => return Err(TrySendError::Full(f)),
                // Its transport is gone and the lane not cleared yet: the next one takes it.
                Err(TrySendError::Down(f)) => frame = f,
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        Err(TrySendError::Down(frame))
    }

    /// The lane `h`'s exchange goes to now.
    fn pick(&self, h: &FrameHeaderRepr) -> Result<LinkTx, LinkDown> {
        if self.is_closed() {
            return Err(LinkDown);
        }
        let table = self.read();
        let lane = Self::candidates(&table, h)
            .find(|l| !l.is_closed())
            .cloned();
        lane.ok_or(LinkDown)
    }

    /// Waits until the table no longer holds `gone` (whose transport ended) or the lanes close.
    async fn lane_gone(&self, gone: &LinkTx) {
        let changed = self.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let still = self.read().iter().flatten().any(|l| l.same_link(gone));
        if still && !self.is_closed() {
            changed.await;
        }
    }

    pub(crate) async fn send(&self, frame: FcFrame) -> Result<(), LinkDown> {
        let mut frame = frame;
        loop {
            let Ok(lane) = self.pick(&frame.header) else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(LinkDown);
            };
            match lane.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(f)) => {
                    frame = f;
                    if boxed_ready(&lane).await.is_err() {
                        self.lane_gone(&lane).await;
                    }
                }
                Err(TrySendError::Down(f)) => {
                    frame = f;
                    self.lane_gone(&lane).await;
                }
            }
        }
    }

    pub(crate) async fn ready_for(&self, h: &FrameHeaderRepr) -> Result<(), LinkDown> {
        loop {
            let lane = self.pick(h)?;
            match boxed_ready(&lane).await {
                Ok(()) => return Ok(()),
                Err(LinkDown) => self.lane_gone(&lane).await,
            }
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        let table = self.read();
        !self.is_closed()
            && table.iter().flatten().any(|l| !l.is_closed())
            && table
                .iter()
                .flatten()
                .all(|l| l.is_closed() || l.has_room())
    }

    pub(crate) async fn ready(&self) -> Result<(), LinkDown> {
        loop {
            if self.is_closed() {
                return Err(LinkDown);
            }
            let lanes: Vec<LinkTx> = self.read().iter().flatten().cloned().collect();
            if lanes.iter().all(LinkTx::is_closed) {
                return Err(LinkDown);
            }
            for l in &lanes {
                // A lane that went meanwhile needs no room.
                let _ = boxed_ready(l).await;
            }
            if self.has_room() {
                return Ok(());
            }
        }
    }

    pub(crate) async fn closed(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_closed() {
                return;
            }
            changed.await;
        }
    }

    fn write(&self, lane: usize, tx: Option<LinkTx>) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = table.get_mut(lane) {
            *slot = tx;
        }
        drop(table);
        self.changed.notify_waiters();
    }
}

/// Puts the lanes of a [`lanes`](crate::lanes) link up and down (an FCIP link, as its TCP
/// connections come and go). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LaneSet {
    lanes: Arc<Lanes>,
}

impl LaneSet {
    pub(crate) fn new(lanes: Arc<Lanes>) -> LaneSet {
        LaneSet { lanes }
    }

    /// Lane `lane` (counted from 0) sends into `tx` from now on. Out of range: ignored.
    pub fn set(&self, lane: usize, tx: LinkTx) {
        self.lanes.write(lane, Some(tx));
    }

    /// Lane `lane` is down: its exchanges go to the next lane up.
    pub fn clear(&self, lane: usize) {
        self.lanes.write(lane, None);
    }

    /// The link is down for good: every lane is cleared and sending fails from now on.
    pub fn close(&self) {
        self.lanes.closed.store(true, Ordering::Release);
        let n = self.lanes.read().len();
        for lane in 0..n {
            self.lanes.write(lane, None);
        }
        self.lanes.changed.notify_waiters();
    }

    /// Lanes configured.
    pub fn len(&self) -> usize {
        self.lanes.read().len()
    }

    /// Always false: a lane set has at least one lane.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lanes up now.
    pub fn up(&self) -> usize {
        self.lanes.read().iter().flatten().count()
    }
}
