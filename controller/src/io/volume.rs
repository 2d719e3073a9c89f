//! A common volume as a logical unit of the controller's FCP target (figure 6): a
//! [`BlockDevice`] whose blocks live where the mapping says.
//!
//! - Owned here: the command is split at the sector map's extents and the pieces go to the
//!   arrays concurrently, as FCP through the controller's initiator. Reads take one copy (the
//!   primary, or the replica while the primary is over its load threshold); writes go to every
//!   copy with FUA, and to a replica being synchronized, and are acknowledged only when all are
//!   durable and every other controller that may cache the range has dropped it
//!   ([`super::coherence`]). A copy that fails while another holds the data is taken out of the
//!   mapping (recorded, durable) before the write is acknowledged; a failure of the only copy
//!   is the CHECK CONDITION of the array.
//! - Owned by another controller: the whole command is forwarded to the owner's virtual LUN
//!   (this controller is an FCP initiator to it, through the gateways), and data and status are
//!   relayed. Reads are served from the remote-read cache while this controller holds a lease.
//!
//! Holding during a change of the mapping ([0088]): every command holds the volume's gate
//! shared for as long as it runs; a change takes it exclusively, so it waits for the commands
//! of the old mapping to drain and the commands that arrive meanwhile wait for the new one.
//! No command runs against half a mapping.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use fc_frames::scsi::{Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::{past_attentions, Initiator, ScsiError};
use fc_node::node::NodeError;
use fc_node::scsi::{BlockDevice, DeviceError, Tier};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::driver::Shared;
use crate::model::{MapRow, MediaType, RecordKey, VolumeBody, SECTOR};
use crate::real::scsi_lun;

use super::cache::Span;
use super::counters::VolumeCounters;

/// Unit attentions a command of this controller's own (to an array, or to the owner's LUN)
/// goes past: they are news for its I_T nexus (a LUN added there, a power on), not for the
/// host whose command this is.
const ATTENTIONS: usize = 4;

/// Longest piece one array command moves (the arrays take 8 MiB of 512-byte blocks).
const MAX_PIECE_BYTES: u64 = 4 << 20;

/// One piece of a command: `len` bytes at `at` of the command's buffer live at `lba` of
/// `row`'s LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) row: MapRow,
    pub(crate) lba: u64,
    pub(crate) blocks: u64,
    pub(crate) at: usize,
    pub(crate) len: usize,
}

/// The pieces of bytes `[off, off + len)` of copy `copy` of a volume whose map is `rows`; `None`
/// when the copy does not cover the range whole, or an extent boundary cuts a real block.
pub(crate) fn pieces(rows: &[MapRow], copy: u8, off: u64, len: u64) -> Option<Vec<Piece>> {
    let mut out: Vec<Piece> = Vec::new();
    let mut covered = 0u64;
    let end = off.checked_add(len)?;
    let mut sorted: Vec<&MapRow> = rows.iter().filter(|r| r.copy == copy).collect();
    sorted.sort_by_key(|r| r.virtual_start);
    for row in sorted {
        let start = row.virtual_start.checked_mul(SECTOR)?;
        let stop = start.checked_add(row.real.bytes())?;
        let a = off.max(start);
        let b = end.min(stop);
        if a >= b {
            continue;
        }
        let bs = u64::from(row.real.block_size);
        if bs == 0 || (a - start) % bs != 0 || (b - a) % bs != 0 {
            return None;
        }
        let mut p = a;
        while p < b {
            let n = (b - p).min(MAX_PIECE_BYTES);
            out.push(Piece {
                row: *row,
                lba: row.real.start + (p - start) / bs,
                blocks: n / bs,
                at: (p - off) as usize,
                len: n as usize,
            });
            p += n;
        }
        covered += b - a;
    }
    (covered == len).then_some(out)
}

/// The block size a volume presents: the largest of its extents' (every one divides it, as
/// extents are whole allocation units). The same at every controller: it comes from the record.
pub(crate) fn block_size_of(body: &VolumeBody) -> u32 {
    body.rows
        .iter()
        .map(|r| r.real.block_size)
        .max()
        .filter(|b| *b > 0)
        .unwrap_or(512)
}

/// The copies a mapping lists, ascending.
pub(crate) fn copies(body: &VolumeBody) -> Vec<u8> {
    let mut c: Vec<u8> = body.rows.iter().map(|r| r.copy).collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// What an array's (or the owner's) failed command means to the engine.
pub(crate) fn device_error(e: ScsiError) -> DeviceError {
    match e {
        ScsiError::CheckCondition(sense) => DeviceError::Check(sense),
        ScsiError::Node(NodeError::TimedOut) => DeviceError::Unreachable {
            timed_out: true,
            source: io::Error::new(io::ErrorKind::TimedOut, e),
        },
        other => DeviceError::Unreachable {
            timed_out: false,
            source: io::Error::other(other),
        },
    }
}

fn unreachable(what: String) -> DeviceError {
    DeviceError::Unreachable {
        timed_out: false,
        source: io::Error::other(what),
    }
}

/// One command counted in a volume's load for as long as it lives (dropped with it when the
/// command is cancelled too).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn new(n: &'a AtomicU64) -> InFlight<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A replica being brought in sync: its rows (not yet in the mapping) and how far the copy
/// has come (bytes from the start that it holds).
#[derive(Debug, Clone)]
pub(crate) struct Syncing {
    pub(crate) rows: Vec<MapRow>,
    pub(crate) copied: Arc<AtomicU64>,
    /// Set when a write to it failed: the copier stops.
    pub(crate) failed: Arc<AtomicBool>,
}

/// A common volume served as a LUN.
pub(crate) struct VirtualVolume {
    pub(crate) key: RecordKey,
    shared: Weak<Shared>,
    block_size: u32,
    blocks: u64,
    tier: Tier,
    /// The mapping commands run against.
    body: RwLock<Arc<VolumeBody>>,
    /// Commands hold it shared, changes of the mapping exclusively.
    pub(crate) gate: Arc<tokio::sync::RwLock<()>>,
    /// Host writes hold it shared; the replica copier exclusively, one chunk at a time.
    pub(crate) copy_gate: Arc<tokio::sync::RwLock<()>>,
    /// A replica being synchronized (owner only).
    pub(crate) syncing: Mutex<Option<Syncing>>,
    /// Deleted: commands that were held find no volume.
    retired: AtomicBool,
    /// One copy taken out of the mapping at a time.
    pub(crate) detaching: tokio::sync::Mutex<()>,
    /// The owner's LUN as this (forwarding) controller reached it.
    remote: Mutex<Option<(FcId, Lun)>>,
    /// Owner: array writes of host commands still running (see `owner_write`).
    pending: Arc<fc_node::scsi::in_flight::InFlight>,
    /// Forwarder: told by the owner to read the in-sync replica directly, under the cache lease
    /// of this number ([`super::cache::Ticket::id`]; 0: not told). Bound to the lease: a revoke
    /// or a lapsed lease ends it, and a ROUTE that arrives late, after a revoke, is not
    /// honoured under a lease granted later.
    pub(crate) direct: AtomicU64,
    /// Owner: reads go to the replica (the primary is over its load threshold).
    pub(crate) switched: AtomicBool,
    /// Commands running at the owner now, whichever copy serves them: the load the primary
    /// would carry were its reads not switched (so that switching them away does not by
    /// itself switch them back).
    pub(crate) outstanding: AtomicU64,
    /// Primary I/O completions in the current and last window (owner).
    pub(crate) load: Mutex<LoadWindow>,
    pub(crate) counters: VolumeCounters,
}

/// I/O per second on the primary over a one-second window.
#[derive(Debug)]
pub(crate) struct LoadWindow {
    pub(crate) since: Instant,
    pub(crate) count: u64,
    pub(crate) last_rate: u64,
}

impl std::fmt::Debug for VirtualVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualVolume")
            .field("key", &self.key)
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

impl VirtualVolume {
    pub(crate) fn new(shared: Weak<Shared>, key: RecordKey, body: VolumeBody) -> VirtualVolume {
        let block_size = block_size_of(&body);
        let blocks = (body.capacity / u64::from(block_size)).max(1);
        let tier = match body.media {
            MediaType::Ssd => Tier::Ssd,
            MediaType::FastHdd => Tier::FastHdd,
            MediaType::SlowHdd | MediaType::Tape => Tier::SlowHdd,
        };
        VirtualVolume {
            key,
            shared,
            block_size,
            blocks,
            tier,
            body: RwLock::new(Arc::new(body)),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            copy_gate: Arc::new(tokio::sync::RwLock::new(())),
            pending: Arc::default(),
            syncing: Mutex::new(None),
            detaching: tokio::sync::Mutex::new(()),
            retired: AtomicBool::new(false),
            remote: Mutex::new(None),
            direct: AtomicU64::new(0),
            switched: AtomicBool::new(false),
            outstanding: AtomicU64::new(0),
            load: Mutex::new(LoadWindow {
                since: Instant::now(),
                count: 0,
                last_rate: 0,
            }),
            counters: VolumeCounters::default(),
        }
    }

    /// The mapping commands run against now.
    pub(crate) fn body(&self) -> Arc<VolumeBody> {
        self.body.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes a new mapping of the volume (the caller holds the gate when it matters).
    pub(crate) fn set_body(&self, body: VolumeBody) {
        *self.body.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(body);
    }

    /// The volume is deleted: a command still waiting for it ends as one to no LUN.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    fn live(&self) -> Result<(), DeviceError> {
        if self.retired.load(Ordering::SeqCst) {
            Err(DeviceError::Check(
                fc_frames::scsi::Sense::lun_not_supported(),
            ))
        } else {
            Ok(())
        }
    }

    /// Reads bytes `[off, off + len)` of an own volume whose gate the caller holds.
    pub(crate) async fn read_held(
        &self,
        shared: &Arc<Shared>,
        off: u64,
        len: u64,
    ) -> Result<Bytes, DeviceError> {
        self.owner_read(shared, off, len).await
    }

    fn shared(&self) -> Result<Arc<Shared>, DeviceError> {
        self.shared
            .upgrade()
            .ok_or_else(|| unreachable("the controller is stopping".into()))
    }

    fn owned_here(&self, shared: &Shared) -> bool {
        self.key.owner == shared.config.port_name
    }

    fn check(&self, lba: u64, blocks: u64) -> Result<(u64, u64), DeviceError> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.blocks => Ok((
                lba * u64::from(self.block_size),
                blocks * u64::from(self.block_size),
            )),
            _ => Err(DeviceError::OutOfRange { lba, blocks }),
        }
    }

    /// Counts one primary I/O for the load window; the IOPS of the last whole window.
    fn tick_load(&self) {
        let mut w = self.load.lock().unwrap_or_else(|e| e.into_inner());
        let el = w.since.elapsed();
        if el >= Duration::from_secs(1) {
            w.last_rate = (w.count as f64 / el.as_secs_f64()) as u64;
            w.count = 0;
            w.since = Instant::now();
        }
        w.count += 1;
    }

    // ---- owner: the arrays ----

    /// Reads `len` bytes at `off` from copy `copy`'s arrays, the pieces concurrently.
    pub(crate) async fn read_copy(
        &self,
        shared: &Arc<Shared>,
        rows: &[MapRow],
        copy: u8,
        off: u64,
        len: u64,
    ) -> Result<Bytes, DeviceError> {
        let pieces = pieces(rows, copy, off, len).ok_or(DeviceError::OutOfRange {
            lba: off / u64::from(self.block_size),
            blocks: len / u64::from(self.block_size),
        })?;
        if let [p] = pieces.as_slice() {
            return read_piece(shared, *p).await;
        }
        let mut set = JoinSet::new();
        for p in pieces {
            let shared = shared.clone();
            set.spawn(async move { (p.at, read_piece(&shared, p).await) });
        }
        let mut out = BytesMut::zeroed(len as usize);
        while let Some(r) = set.join_next().await {
            let (at, data) = r.map_err(|e| DeviceError::Blocking(io::Error::other(e)))?;
            let data = data?;
            out[at..at + data.len()].copy_from_slice(&data);
        }
        Ok(out.freeze())
    }

    /// Reads at the owner: the primary, or the replica while switched; the other copy when the
    /// first fails.
    async fn owner_read(
        &self,
        shared: &Arc<Shared>,
        off: u64,
        len: u64,
    ) -> Result<Bytes, DeviceError> {
        let body = self.body();
        let copies = copies(&body);
        let first = if self.switched.load(Ordering::Relaxed) && copies.len() > 1 {
            copies[1]
        } else {
            copies.first().copied().unwrap_or(0)
        };
        let mut order = vec![first];
        order.extend(copies.iter().copied().filter(|c| *c != first));
        let _load = InFlight::new(&self.outstanding);
        self.tick_load();
        let mut last = None;
        for copy in order {
            let primary = copy == copies.first().copied().unwrap_or(0);
            let r = self.read_copy(shared, &body.rows, copy, off, len).await;
            match r {
                Ok(b) => {
                    if !primary {
                        self.counters.replica_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(b);
                }
                Err(e) => {
                    tracing::warn!(volume = %self.key.name, copy, error = %e, "read failed on a copy");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(DeviceError::OutOfRange {
            lba: off,
            blocks: len,
        }))
    }

    /// Writes at the owner: every copy (and a replica being synchronized) with FUA, then the
    /// caches of other controllers are invalidated, then it is acknowledged.
    ///
    /// The array writes are tasks of their own, each holding `held` (the volume's gates) and a
    /// ticket of [`Self::pending`]: when the command's future is dropped (aborted), they go on
    /// until their arrays have answered, and `settle` waits for them, so that no write of an
    /// aborted command lands after the abort was reported, over a newer one.
    async fn owner_write(
        &self,
        shared: &Arc<Shared>,
        off: u64,
        data: Bytes,
        held: Arc<Gates>,
    ) -> Result<(), DeviceError> {
        let writer = fc_node::scsi::current_initiator();
        shared.io.coherence.wait_for_old_leases().await;
        let body = self.body();
        let copies = copies(&body);
        if copies.is_empty() && !data.is_empty() {
            // detach never leaves a mapping without a copy; a write must never be GOOD with
            // nothing under it.
            return Err(unreachable(format!(
                "volume {} lists no copy to write to",
                self.key.name
            )));
        }
        let len = data.len() as u64;
        let syncing = self
            .syncing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut set = Detached(JoinSet::new());
        let mut spawn_copy =
            |rows: Vec<MapRow>, copy: u8, tag: Option<u8>| -> Result<(), DeviceError> {
                let ps = pieces(&rows, copy, off, len).ok_or(DeviceError::OutOfRange {
                    lba: off / u64::from(self.block_size),
                    blocks: len / u64::from(self.block_size),
                })?;
                for p in ps {
                    let shared = shared.clone();
                    let piece = data.slice(p.at..p.at + p.len);
                    let (held, ticket) = (held.clone(), self.pending.begin());
                    set.0.spawn(async move {
                        let r = write_piece(&shared, p, piece).await;
                        drop((held, ticket));
                        (tag, r)
                    });
                }
                Ok(())
            };
        for &c in &copies {
            spawn_copy(body.rows.clone(), c, Some(c))?;
        }
        if let Some(s) = &syncing {
            // The copier holds bytes below `copied`; above it, it will copy them itself, but
            // writing there too costs nothing and keeps the rule simple: every write reaches
            // the replica.
            let copy = s.rows.first().map_or(1, |r| r.copy);
            spawn_copy(s.rows.clone(), copy, None)?;
        }
        let load = InFlight::new(&self.outstanding);
        self.tick_load();
        let mut failed: Vec<(u8, DeviceError)> = Vec::new();
        let mut sync_failed = false;
        while let Some(r) = set.0.join_next().await {
            let (tag, res) = r.map_err(|e| DeviceError::Blocking(io::Error::other(e)))?;
            if let Err(e) = res {
                match tag {
                    Some(c) => {
                        if !failed.iter().any(|(f, _)| *f == c) {
                            failed.push((c, e));
                        }
                    }
                    None => sync_failed = true,
                }
            }
        }
        drop(load);
        if sync_failed {
            shared.io.abandon_sync(self);
        }
        if !failed.is_empty() {
            if failed.len() == copies.len() {
                // No copy holds it: the array's error, as it came.
                return Err(failed.swap_remove(0).1);
            }
            let lost: Vec<u8> = failed.iter().map(|(c, _)| *c).collect();
            for (c, e) in &failed {
                tracing::error!(volume = %self.key.name, copy = c, error = %e, "a copy failed a write; it leaves the mapping");
            }
            if !shared.io.detach(shared, self, &body, &lost).await? {
                return Err(failed.swap_remove(0).1);
            }
        }
        let sectors = len / SECTOR;
        shared
            .io
            .coherence
            .invalidate(shared, self, (off / SECTOR, sectors), false, writer)
            .await;
        Ok(())
    }

    // ---- forwarder: the owner ----

    /// The owner's LUN of this volume: found once by its identity (VPD page 0x83), as a
    /// multipath driver would.
    async fn owner_lun(&self, shared: &Arc<Shared>) -> Result<(FcId, Lun), DeviceError> {
        if let Some(a) = *self.remote.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(a);
        }
        let owner = self.key.owner;
        let id = shared
            .resolve_port(owner)
            .await
            .ok_or_else(|| unreachable(format!("owner controller {owner} is not reachable")))?;
        let want = super::identity(&self.key, &self.body()).0;
        let guess = super::lun_guess(want);
        let mut candidates = vec![guess];
        if let Ok(luns) = shared.initiator.report_luns(id).await {
            candidates.extend(luns.into_iter().filter(|l| *l != guess));
        }
        for lun in candidates {
            if let Ok(page) = shared.initiator.vpd(id, lun, 0x83).await {
                if lu_naa(&page) == Some(want) {
                    *self.remote.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, lun));
                    return Ok((id, lun));
                }
            }
        }
        Err(unreachable(format!(
            "owner controller {owner} does not serve volume {}",
            self.key.name
        )))
    }

    fn forget_owner(&self) {
        *self.remote.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs one command to the owner's LUN. A unit attention is news for this controller's
    /// own nexus and is retried; one that says the owner was reset or its LUNs changed (29h,
    /// 3Fh) first finds the volume's LUN again by its identity, so that a command never goes to
    /// whatever took the old number.
    async fn to_owner<T, F, Fut>(
        &self,
        shared: &Arc<Shared>,
        mut at: (FcId, Lun),
        f: F,
    ) -> Result<T, DeviceError>
    where
        F: Fn(Initiator, FcId, Lun) -> Fut,
        Fut: std::future::Future<Output = Result<T, ScsiError>>,
    {
        let mut left = 4;
        loop {
            match f(shared.initiator.clone(), at.0, at.1).await {
                Err(ScsiError::CheckCondition(s))
                    if s.key == SenseKey::UNIT_ATTENTION && left > 0 =>
                {
                    left -= 1;
                    if matches!(s.additional.asc(), 0x29 | 0x3F) {
                        self.forget_owner();
                        at = self.owner_lun(shared).await?;
                    }
                }
                other => return other.map_err(device_error),
            }
        }
    }

    async fn forward_read(
        &self,
        shared: &Arc<Shared>,
        lba: u64,
        blocks: u64,
    ) -> Result<Bytes, DeviceError> {
        let (id, lun) = self.owner_lun(shared).await?;
        let mut out = BytesMut::new();
        let mut at = lba;
        let per = (MAX_PIECE_BYTES / u64::from(self.block_size)).max(1);
        while at < lba + blocks {
            let n = per.min(lba + blocks - at);
            let bs = self.block_size;
            let part = self
                .to_owner(shared, (id, lun), |init, id, lun| async move {
                    init.read(id, lun, at, n as u32, bs).await
                })
                .await
                .inspect_err(|_| self.forget_owner())?;
            if n == blocks {
                return Ok(part);
            }
            out.extend_from_slice(&part);
            at += n;
        }
        Ok(out.freeze())
    }

    async fn forward_write(
        &self,
        shared: &Arc<Shared>,
        lba: u64,
        data: Bytes,
        fua: bool,
    ) -> Result<(), DeviceError> {
        let (id, lun) = self.owner_lun(shared).await?;
        let bs = u64::from(self.block_size);
        let per = (MAX_PIECE_BYTES / bs).max(1);
        let blocks = data.len() as u64 / bs;
        let mut pieces = FuturesUnordered::new();
        let mut at = 0;
        while at < blocks {
            let n = per.min(blocks - at);
            let part = data.slice((at * bs) as usize..((at + n) * bs) as usize);
            let block_size = self.block_size;
            pieces.push(self.to_owner(shared, (id, lun), move |init, id, lun| {
                let part = part.clone();
                async move { init.write(id, lun, lba + at, part, block_size, fua).await }
            }));
            at += n;
        }
        let mut err = None;
        while let Some(r) = pieces.next().await {
            if let Err(e) = r {
                err = Some(e);
            }
        }
        match err {
            Some(e) => {
                self.forget_owner();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// A forwarder told to read the replica reads its rows here directly.
    async fn direct_read(&self, shared: &Arc<Shared>, off: u64, len: u64) -> Option<Bytes> {
        let body = self.body();
        let copies = copies(&body);
        let replica = *copies.get(1)?;
        match self.read_copy(shared, &body.rows, replica, off, len).await {
            Ok(b) => {
                self.counters.replica_reads.fetch_add(1, Ordering::Relaxed);
                Some(b)
            }
            Err(e) => {
                tracing::warn!(volume = %self.key.name, error = %e, "direct replica read failed; back to the owner");
                self.direct.store(0, Ordering::Relaxed);
                None
            }
        }
    }
}

/// The volume's gates a host write holds (`gate`, `copy_gate`), shared by its array writes.
type Gates = (
    tokio::sync::OwnedRwLockReadGuard<()>,
    tokio::sync::OwnedRwLockReadGuard<()>,
);

/// A task set whose tasks go on when it is dropped.
struct Detached<T: 'static>(JoinSet<T>);

impl<T: 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        self.0.detach_all();
    }
}

/// The logical unit's NAA name in a VPD page 0x83.
fn lu_naa(page: &fc_frames::scsi::data::VpdPage) -> Option<Wwn> {
    use fc_frames::scsi::data::{Association, DesignatorType, VpdPage};
    let VpdPage::DeviceIdentification(ds) = page else {
        return None;
    };
    ds.iter()
        .find(|d| {
            d.association == Association::LOGICAL_UNIT && d.designator_type == DesignatorType::NAA
        })
        .and_then(|d| <[u8; 8]>::try_from(d.value.as_slice()).ok())
        .map(|b| Wwn::from_u64(u64::from_be_bytes(b)))
}

/// Runs `cmd` on array `array`, unless the array has left the fabric or until it does
/// ([`super::lost`]): then it fails at once, as unreachable.
async fn on_array<T>(
    shared: &Shared,
    array: Wwn,
    cmd: impl std::future::Future<Output = Result<T, ScsiError>>,
) -> Result<T, DeviceError> {
    let lost = &shared.io.lost;
    let gone = || unreachable(format!("array {array} has left the fabric"));
    if lost.is_lost(array) {
        return Err(gone());
    }
    tokio::select! {
        r = cmd => r.map_err(device_error),
        () = lost.wait(array) => Err(gone()),
    }
}

async fn read_piece(shared: &Arc<Shared>, p: Piece) -> Result<Bytes, DeviceError> {
    let real = p.row.real;
    on_array(shared, real.array, async {
        let id = shared.array_port(real.array, real.array_id).await;
        let init = &shared.initiator;
        past_attentions(ATTENTIONS, || {
            init.read(
                id,
                scsi_lun(real.lun),
                p.lba,
                p.blocks as u32,
                real.block_size,
            )
        })
        .await
    })
    .await
}

pub(crate) async fn write_piece(
    shared: &Arc<Shared>,
    p: Piece,
    data: Bytes,
) -> Result<(), DeviceError> {
    let real = p.row.real;
    on_array(shared, real.array, async {
        let id = shared.array_port(real.array, real.array_id).await;
        let init = &shared.initiator;
        past_attentions(ATTENTIONS, || {
            init.write(
                id,
                scsi_lun(real.lun),
                p.lba,
                data.clone(),
                real.block_size,
                true,
            )
        })
        .await
    })
    .await
}

impl VirtualVolume {
    /// A host read, in its volume span.
    async fn read_in_span(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        let (off, len) = self.check(lba, blocks)?;
        let shared = self.shared()?;
        let _held = self.gate.read().await;
        self.live()?;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        self.counters.read_bytes.fetch_add(len, Ordering::Relaxed);
        if self.owned_here(&shared) {
            return self.owner_read(&shared, off, len).await;
        }
        let cache = &shared.io.cache;
        let span = Span::new(self.key.clone(), off, len);
        let ticket = shared.io.coherence.ticket(&shared, &self.key).await;
        if ticket.is_some() {
            if let Some(hit) = cache.get(&span) {
                tracing::debug!("served from the cache");
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .wan_bytes_saved
                    .fetch_add(len, Ordering::Relaxed);
                return Ok(hit);
            }
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        if ticket.is_some_and(|t| t.id() == self.direct.load(Ordering::Relaxed)) {
            if let Some(b) = self.direct_read(&shared, off, len).await {
                return Ok(b);
            }
        }
        tracing::debug!("forwarded to the owner");
        let data = self.forward_read(&shared, lba, blocks).await?;
        self.counters.wan_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(t) = ticket {
            cache.insert(&span, data.clone(), t);
        }
        Ok(data)
    }

    /// A host write, in its volume span.
    async fn write_in_span(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        let blocks = data.len() as u64 / u64::from(self.block_size);
        if data.len() as u64 % u64::from(self.block_size) != 0 {
            return Err(DeviceError::BadBufferLength {
                len: data.len(),
                block_size: self.block_size,
            });
        }
        let (off, len) = self.check(lba, blocks)?;
        let shared = self.shared()?;
        let held = self.gate.clone().read_owned().await;
        self.live()?;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.counters.write_bytes.fetch_add(len, Ordering::Relaxed);
        if self.owned_here(&shared) {
            let copy = self.copy_gate.clone().read_owned().await;
            return self
                .owner_write(&shared, off, data, Arc::new((held, copy)))
                .await;
        }
        let r = self.forward_write(&shared, lba, data, fua).await;
        self.counters.wan_bytes.fetch_add(len, Ordering::Relaxed);
        // Whatever this controller cached of the range is older than what was written.
        shared.io.cache.invalidate(&self.key, off, len);
        r
    }
}

#[async_trait]
impl BlockDevice for VirtualVolume {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn tier(&self) -> Tier {
        self.tier
    }

    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        let span = tracing::debug_span!("volume", name = %self.key.name, op = "read", lba, blocks);
        self.read_in_span(lba, blocks).instrument(span).await
    }

    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        let blocks = data.len() as u64 / u64::from(self.block_size);
        let span =
            tracing::debug_span!("volume", name = %self.key.name, op = "write", lba, blocks, fua);
        self.write_in_span(lba, data, fua).instrument(span).await
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        // Every write is durable (FUA at every array) when it is acknowledged; a forwarded
        // SYNCHRONIZE CACHE would be answered the same at the owner.
        Ok(())
    }

    async fn settle(&self) {
        self.pending.settle().await;
    }

    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        // Deallocation is written as zeros (LBPRZ holds): the real extents stay the volume's.
        let bs = u64::from(self.block_size);
        let mut at = lba;
        let per = (MAX_PIECE_BYTES / bs).max(1);
        while at < lba + blocks {
            let n = per.min(lba + blocks - at);
            let zeros = Bytes::from(vec![0u8; (n * bs) as usize]);
            self.write(at, zeros, true).await?;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::FcId;

    use super::*;
    use crate::model::RealExtent;

    fn row(vs: u64, copy: u8, start: u64, blocks: u64, bs: u32) -> MapRow {
        MapRow {
            virtual_start: vs,
            real: RealExtent {
                array: Wwn::from_u64(0x5000_0000_0000_0001),
                array_id: FcId::from_parts(1, 0, 1),
                lun: 0,
                start,
                blocks,
                block_size: bs,
            },
            copy,
        }
    }

    #[test]
    fn test_pieces_split_at_extents_and_cover_whole() {
        // Two 1 MiB extents of 4096-byte blocks, the second elsewhere on the LUN.
        let rows = [row(0, 0, 100, 256, 4096), row(2048, 0, 1000, 256, 4096)];
        let p = pieces(&rows, 0, (1 << 20) - 8192, 16384).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].lba, p[0].blocks, p[0].at, p[0].len),
            (354, 2, 0, 8192)
        );
        assert_eq!(
            (p[1].lba, p[1].blocks, p[1].at, p[1].len),
            (1000, 2, 8192, 8192)
        );
        // Past the end, or cutting a block: no plan.
        assert!(pieces(&rows, 0, (2 << 20) - 4096, 8192).is_none());
        assert!(pieces(&rows, 0, 512, 4096).is_none());
        // Another copy is its own map.
        assert!(pieces(&rows, 1, 0, 4096).is_none());
    }

    #[test]
    fn test_long_pieces_are_cut() {
        let rows = [row(0, 0, 0, 4096, 4096)];
        let p = pieces(&rows, 0, 0, 16 << 20).unwrap();
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|p| p.len as u64 == MAX_PIECE_BYTES));
        assert_eq!(p[3].lba, 3072);
    }
}
