//! Replicas: a copy of a volume on another real volume, here or on another SAN, brought in
//! sync by a background copy while the volume stays in use, then mirrored synchronously
//! (PATENT.md \[0069\], \[0098\]-\[0100\]).
//!
//! Adding one (`add`, which [`Controller::add_replica`](crate::driver::Controller::add_replica)
//! calls), at the volume's owner:
//!
//! 1. Space: the volume's capacity of the type asked (the volume's by default) is reserved
//!    the way the builder reserves it (figure 7, S703-S711, the same functions): from the
//!    site asked for, or this SAN first and then the others by priority. The arrays that
//!    already hold a copy are passed over while other space will do; only when it will not are
//!    they taken too. The reservations are renewed while the copy runs and are not committed:
//!    until the replica is in the mapping its extents are only reserved, so that nothing that
//!    re-marks the volume's extents from the mapping frees them, and a controller that stops
//!    leaves nothing behind (its own reservations die with it, the peers' expire).
//! 2. The replica's rows (copy = the highest copy + 1) are *not* put in the mapping. They
//!    become the volume's `syncing` rows: from then on every host write goes to them too.
//! 3. The copier copies the primary (copy 0) to them in 1 MiB chunks, each under the volume's
//!    copy gate held exclusively, so that no host write interleaves with a chunk (a write is
//!    wholly before a chunk, which then reads it from the primary, or wholly after it, and
//!    writes the replica itself). Writes are FUA. Its speed is held under
//!    [`IoConfig::replica_rate`](super::IoConfig::replica_rate) by pacing: chunk *n* starts
//!    no earlier than *n* MiB / rate after the first, so the average never passes the rate and
//!    a burst is one chunk.
//! 4. Done: the volume's commands are drained and held (\[0088\]), the rows go into the mapping
//!    (recorded and propagated like any change), the held commands run against the new
//!    mapping, and from then on every write is mirrored before it is acknowledged. The
//!    reservations are committed.
//!
//! A failure of the copy, of a host write to the replica (`Io::abandon_sync`), of a
//! renewal, or the volume's deletion stops it: host writes to the replica end first (the copy
//! gate), then the extents are released, and the state says why. A restart of the controller
//! leaves the replica out of the mapping: nothing acknowledged ever depended on it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fc_node::scsi::DeviceError;

use crate::api::views::{MapRowView, ReplicaPhase, ReplicaSpec, ReplicaState};
use crate::driver::{found, rows_of, BuildError, Held, San, Shared};
use crate::model::{MapRow, MediaType, VolumeBody, VolumeName, VolumeState};
use crate::wire::MAX_LIST_LEN;

use super::progress::Progress;
use super::volume::{block_size_of, copies, pieces, write_piece, Syncing, VirtualVolume};

/// Bytes the copier moves at a time.
pub const CHUNK: u64 = 1 << 20;

/// The replicas being made or last made, by volume (owner only).
#[derive(Debug, Default)]
pub(crate) struct Replicas {
    jobs: Mutex<HashMap<VolumeName, Arc<Job>>>,
    /// Volumes whose replica is being reserved (one change at a time).
    starting: Mutex<HashSet<VolumeName>>,
}

/// One replica being made.
#[derive(Debug)]
struct Job {
    copy: u8,
    rows: Vec<MapRow>,
    total: u64,
    copied: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    started: Instant,
    end: Mutex<Option<End>>,
}

#[derive(Debug, Clone)]
enum End {
    InSync { took: Duration, copy: u8 },
    Failed(String),
}

impl Job {
    fn end(&self) -> Option<End> {
        self.end.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_end(&self, end: End) {
        *self.end.lock().unwrap_or_else(|e| e.into_inner()) = Some(end);
    }
}

impl Replicas {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<VolumeName, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn starting(&self) -> std::sync::MutexGuard<'_, HashSet<VolumeName>> {
        self.starting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes `name` out of [`Replicas::starting`] when dropped.
struct Starting<'a>(&'a Replicas, VolumeName);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.starting().remove(&self.1);
    }
}

/// Adds a replica to own volume `name` (see the module doc); answers its state, syncing.
pub(crate) async fn add(
    shared: &Arc<Shared>,
    name: &VolumeName,
    spec: ReplicaSpec,
) -> Result<ReplicaState, BuildError> {
    shared.usable()?;
    shared.wait_scanned(Duration::from_secs(5)).await;
    let (rec, me) = {
        let inner = shared.lock();
        (inner.core.volume(name).cloned(), inner.core.identity().wwpn)
    };
    let rec = rec.ok_or_else(|| BuildError::NotFound(name.clone()))?;
    let body = rec
        .body
        .clone()
        .ok_or_else(|| BuildError::NotFound(name.clone()))?;
    if rec.key.owner != me {
        return Err(BuildError::NotOwner {
            name: name.clone(),
            owner: body.owner.name.clone(),
        });
    }
    let vol = shared
        .io
        .volume(name)
        .filter(|v| v.key == rec.key)
        .ok_or(BuildError::NotReady)?;
    let media = spec.media.unwrap_or(body.media);
    if media == MediaType::Tape {
        return Err(BuildError::Bad {
            field: "type",
            reason: "a replica is written at random like the volume; a tape cannot hold one \
                     (ssd, fast-hdd or slow-hdd)"
                .into(),
        });
    }
    let replicas = &shared.io.replicas;
    if !replicas.starting().insert(name.clone()) {
        return Err(BuildError::Busy {
            name: name.clone(),
            reason: "a replica is being added to it".into(),
        });
    }
    let _starting = Starting(replicas, name.clone());
    if let Some(job) = replicas.jobs().get(name) {
        if job.end().is_none() {
            return Err(BuildError::Busy {
                name: name.clone(),
                reason: format!(
                    "its replica (copy {}) is being synchronized, {} of {} bytes; wait for it",
                    job.copy,
                    job.copied.load(Ordering::Relaxed),
                    job.total
                ),
            });
        }
    }
    let copy = copies(&body)
        .last()
        .map_or(Some(0), |c| c.checked_add(1))
        .ok_or_else(|| BuildError::Bad {
            field: "name",
            reason: format!("volume {name} has as many copies as the mapping can list"),
        })?;
    let sans = sans_for(shared, spec.site.as_deref())?;
    let avoid: BTreeSet<_> = body.rows.iter().map(|r| r.real.array).collect();
    let held = reserve(shared, &sans, media, body.capacity, &avoid).await?;
    let rows = rows_of(&held, copy);
    let vbs = block_size_of(&body);
    let misfit = rows
        .iter()
        .map(|r| r.real.block_size)
        .find(|bs| *bs == 0 || vbs % bs != 0);
    if let Some(bs) = misfit {
        shared.release_all(&held).await;
        return Err(BuildError::Bad {
            field: if spec.site.is_some() { "site" } else { "type" },
            reason: format!(
                "the space found has {bs}-byte blocks, which the volume's {vbs}-byte blocks \
                 cannot be split into"
            ),
        });
    }
    if body.rows.len() + rows.len() > MAX_LIST_LEN {
        shared.release_all(&held).await;
        return Err(BuildError::Bad {
            field: "name",
            reason: format!(
                "volume {name} would have more than {MAX_LIST_LEN} rows in its sector map"
            ),
        });
    }
    let total = body.capacity / u64::from(vbs) * u64::from(vbs);
    let job = Arc::new(Job {
        copy,
        rows: rows.clone(),
        total,
        copied: Arc::new(AtomicU64::new(0)),
        failed: Arc::new(AtomicBool::new(false)),
        started: Instant::now(),
        end: Mutex::new(None),
    });
    let set = {
        let mut syncing = vol.syncing.lock().unwrap_or_else(|e| e.into_inner());
        let free = syncing.is_none();
        if free {
            *syncing = Some(Syncing {
                rows,
                copied: job.copied.clone(),
                failed: job.failed.clone(),
            });
        }
        free
    };
    if !set {
        shared.release_all(&held).await;
        return Err(BuildError::Busy {
            name: name.clone(),
            reason: "another replica is being synchronized".into(),
        });
    }
    replicas.jobs().insert(name.clone(), job.clone());
    tracing::info!(volume = %name, copy, bytes = total, "replica synchronization starts");
    tokio::spawn(copier(Arc::downgrade(shared), vol, job, held));
    state(shared, name).ok_or_else(|| BuildError::NotFound(name.clone()))
}

/// The SANs to ask for space: `site` alone, or the builder's order.
fn sans_for(shared: &Arc<Shared>, site: Option<&str>) -> Result<Vec<San>, BuildError> {
    let all = shared.sans_in_priority();
    let Some(site) = site else {
        return Ok(all);
    };
    let chosen: Vec<San> = all.iter().filter(|s| s.site == site).cloned().collect();
    if !chosen.is_empty() {
        return Ok(chosen);
    }
    let inner = shared.lock();
    if let Some(p) = inner.core.peers().find(|p| p.site == site) {
        return Err(BuildError::Unreachable(format!(
            "controller {} of site {site}",
            if p.name.is_empty() {
                p.wwpn.to_string()
            } else {
                p.name.clone()
            }
        )));
    }
    let mut known: Vec<&str> = all.iter().map(|s| s.site.as_str()).collect();
    known.sort_unstable();
    known.dedup();
    Err(BuildError::Bad {
        field: "site",
        reason: format!(
            "no controller of site {site:?} is known (the sites are {})",
            known.join(", ")
        ),
    })
}

/// Reserves `bytes` of `media` from `sans`, off the arrays of `avoid` when that is enough;
/// all or nothing.
async fn reserve(
    shared: &Arc<Shared>,
    sans: &[San],
    media: MediaType,
    bytes: u64,
    avoid: &BTreeSet<fc_frames::Wwn>,
) -> Result<Vec<Held>, BuildError> {
    let (held, left) = shared.reserve_from(sans, media, bytes, avoid).await;
    if left == 0 {
        return Ok(held);
    }
    shared.release_all(&held).await;
    let (held, left) = shared
        .reserve_from(sans, media, bytes, &BTreeSet::new())
        .await;
    if left == 0 {
        tracing::warn!(media = %media, "no room for the replica off the arrays of the volume's copies; it shares one");
        return Ok(held);
    }
    let found = found(&held, media);
    shared.release_all(&held).await;
    Err(BuildError::Insufficient { found })
}

/// Copies the primary into the job's rows, then puts them into the mapping; or gives up and
/// releases them.
async fn copier(weak: Weak<Shared>, vol: Arc<VirtualVolume>, job: Arc<Job>, held: Vec<Held>) {
    let progress = Progress::start(format!("replica of {}", vol.key.name), job.total);
    let result = copy_all(&weak, &vol, &job, &held, progress).await;
    let Some(shared) = weak.upgrade() else {
        // The controller stopped: its own reservations are gone with it, the peers' expire.
        return;
    };
    let result = match result {
        Ok(()) => complete(&shared, &vol, &job).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(copy) => {
            shared.commit_all(&held, &vol.key.name);
            let took = job.started.elapsed();
            job.set_end(End::InSync { took, copy });
            tracing::info!(volume = %vol.key.name, copy, seconds = took.as_secs_f64(), "replica in sync; writes are mirrored");
        }
        Err(reason) => {
            job.failed.store(true, Ordering::Relaxed);
            {
                // Host writes that may still be writing the replica end first.
                let _no_writes = vol.copy_gate.write().await;
                let mut s = vol.syncing.lock().unwrap_or_else(|e| e.into_inner());
                if s.as_ref()
                    .is_some_and(|s| Arc::ptr_eq(&s.failed, &job.failed))
                {
                    *s = None;
                }
            }
            shared.release_all(&held).await;
            tracing::warn!(volume = %vol.key.name, copy = job.copy, %reason, "replica not made; its extents are free again");
            job.set_end(End::Failed(reason));
        }
    }
}

/// The copy loop: every chunk of the primary into the job's rows, paced, the reservations
/// renewed as it goes.
async fn copy_all(
    weak: &Weak<Shared>,
    vol: &Arc<VirtualVolume>,
    job: &Job,
    held: &[Held],
    mut progress: Progress,
) -> Result<(), String> {
    let result = copy_chunks(weak, vol, job, held, &mut progress).await;
    progress.end(result.as_ref().map(|_| ()).map_err(String::as_str));
    result
}

async fn copy_chunks(
    weak: &Weak<Shared>,
    vol: &Arc<VirtualVolume>,
    job: &Job,
    held: &[Held],
    progress: &mut Progress,
) -> Result<(), String> {
    let (rate, ttl) = match weak.upgrade() {
        Some(s) => (s.io.config.replica_rate, s.config.reserve_ttl),
        None => return Err("the controller stopped".into()),
    };
    let renew_every = (ttl / 4).max(Duration::from_millis(50));
    let mut renew_at = Instant::now() + renew_every;
    let mut off = 0u64;
    while off < job.total {
        let due = if rate == 0 {
            job.started
        } else {
            job.started + Duration::from_secs_f64(off as f64 / rate as f64)
        };
        loop {
            let shared = weak.upgrade().ok_or("the controller stopped")?;
            if job.failed.load(Ordering::Relaxed) {
                return Err("a host write to the replica failed".into());
            }
            if !shared
                .io
                .volume(&vol.key.name)
                .is_some_and(|v| Arc::ptr_eq(&v, vol))
            {
                return Err("the volume was deleted".into());
            }
            let now = Instant::now();
            if now >= renew_at {
                shared.renew_all(held).await?;
                renew_at = Instant::now() + renew_every;
            }
            if now >= due {
                break;
            }
            drop(shared);
            tokio::time::sleep_until(due.min(renew_at).into()).await;
        }
        let shared = weak.upgrade().ok_or("the controller stopped")?;
        let len = CHUNK.min(job.total - off);
        {
            let _chunk = vol.copy_gate.write().await;
            let body = vol.body();
            let primary = copies(&body).first().copied().unwrap_or(0);
            let data = vol
                .read_copy(&shared, &body.rows, primary, off, len)
                .await
                .map_err(|e| format!("reading the primary at byte {off}: {e}"))?;
            write_copy(&shared, &job.rows, job.copy, off, data)
                .await
                .map_err(|e| format!("writing the replica at byte {off}: {e}"))?;
        }
        off += len;
        job.copied.store(off, Ordering::Relaxed);
        progress.at(off);
    }
    Ok(())
}

/// Writes `data` at byte `off` of copy `copy` laid out by `rows`, FUA, the pieces concurrently.
async fn write_copy(
    shared: &Arc<Shared>,
    rows: &[MapRow],
    copy: u8,
    off: u64,
    data: Bytes,
) -> Result<(), DeviceError> {
    let len = data.len() as u64;
    let ps = pieces(rows, copy, off, len).ok_or(DeviceError::OutOfRange {
        lba: off,
        blocks: len,
    })?;
    let mut set = tokio::task::JoinSet::new();
    for p in ps {
        let shared = shared.clone();
        let piece = data.slice(p.at..p.at + p.len);
        set.spawn(async move { write_piece(&shared, p, piece).await });
    }
    let mut err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => err = Some(e),
            Err(e) => err = Some(DeviceError::Blocking(std::io::Error::other(e))),
        }
    }
    err.map_or(Ok(()), Err)
}

/// The copy is whole: with the volume's commands drained and held, the replica's rows go
/// into the mapping (durably, propagated) and the held commands run against it. The copy
/// number it got.
async fn complete(shared: &Arc<Shared>, vol: &VirtualVolume, job: &Job) -> Result<u8, String> {
    let _held = vol.gate.write().await;
    if job.failed.load(Ordering::Relaxed) {
        return Err("a host write to the replica failed".into());
    }
    if !shared
        .io
        .volume(&vol.key.name)
        .is_some_and(|v| std::ptr::eq(Arc::as_ptr(&v), vol))
    {
        return Err("the volume was deleted".into());
    }
    let name = vol.key.name.clone();
    let key = vol.key.clone();
    let put = shared.with(|inner, now| {
        let rec = inner
            .core
            .volume(&name)
            .filter(|r| r.key == key)
            .cloned()
            .ok_or("the volume was deleted")?;
        let mut body: VolumeBody = rec.body.ok_or("the volume was deleted")?;
        // A copy lost meanwhile renumbered the others: the replica comes after them.
        let copy = copies(&body)
            .last()
            .map_or(Some(0), |c| c.checked_add(1))
            .ok_or("the mapping lists as many copies as it can")?;
        body.rows
            .extend(job.rows.iter().map(|r| MapRow { copy, ..*r }));
        if body.state == VolumeState::Degraded && every_row_present(inner, &body) {
            body.state = VolumeState::Online;
        }
        inner
            .core
            .put(now, name.clone(), body.clone())
            .map(|_| (body, copy))
            .map_err(|e| match e {
                crate::core::ChangeError::NotReady => "the controller is not ready",
                _ => "the volume is no longer this controller's",
            })
    });
    let (body, copy) = put.map_err(str::to_owned)?;
    shared.usable().map_err(|e| e.to_string())?;
    vol.set_body(body);
    *vol.syncing.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Ok(copy)
}

/// Whether every row of `body` on this SAN's arrays is on a real volume the last scan found
/// (rows on other SANs count as present: their controllers watch them).
fn every_row_present(inner: &crate::driver::Inner, body: &VolumeBody) -> bool {
    let Some(domain) = inner.real.first().map(|v| v.array_id.domain()) else {
        return false;
    };
    body.rows
        .iter()
        .filter(|r| r.real.array_id.domain() == domain)
        .all(|r| {
            inner
                .real
                .iter()
                .any(|v| v.array == r.real.array && v.lun == r.real.lun)
        })
}

/// The replica state of volume `name` as this controller knows it; `None` when it has no
/// live volume of that name.
pub(crate) fn state(shared: &Shared, name: &VolumeName) -> Option<ReplicaState> {
    let (key, body) = {
        let inner = shared.lock();
        let rec = inner.core.volume(name)?;
        (rec.key.clone(), rec.body.clone()?)
    };
    let in_map = copies(&body);
    let vbs = u64::from(block_size_of(&body));
    let total = body.capacity / vbs * vbs;
    let mut st = ReplicaState {
        volume: name.clone(),
        state: ReplicaPhase::None,
        copies: u8::try_from(in_map.len()).unwrap_or(u8::MAX),
        copy: None,
        copied: 0,
        total,
        rate: 0,
        rate_limit: shared.io.config.replica_rate,
        reason: None,
        rows: Vec::new(),
    };
    let job = (key.owner == shared.config.port_name)
        .then(|| shared.io.replicas.jobs().get(name).cloned())
        .flatten();
    let rate = |bytes: u64, took: Duration| {
        let s = took.as_secs_f64();
        if s > 0.0 {
            (bytes as f64 / s) as u64
        } else {
            0
        }
    };
    let replica_rows = |st: &mut ReplicaState| {
        st.rows = body
            .rows
            .iter()
            .filter(|r| r.copy != in_map.first().copied().unwrap_or(0))
            .map(MapRowView::from)
            .collect();
    };
    match job.as_ref().map(|j| (j, j.end())) {
        Some((j, None)) => {
            st.state = ReplicaPhase::Syncing;
            st.copy = Some(j.copy);
            st.copied = j.copied.load(Ordering::Relaxed);
            st.total = j.total;
            st.rate = rate(st.copied, j.started.elapsed());
            st.rows = j.rows.iter().map(MapRowView::from).collect();
        }
        Some((j, Some(End::Failed(reason)))) => {
            st.state = ReplicaPhase::Failed;
            st.copy = Some(j.copy);
            st.copied = j.copied.load(Ordering::Relaxed);
            st.total = j.total;
            st.reason = Some(reason);
            st.rows = j.rows.iter().map(MapRowView::from).collect();
        }
        Some((j, Some(End::InSync { took, copy }))) if in_map.len() > 1 => {
            st.state = ReplicaPhase::InSync;
            st.copy = Some(copy);
            st.copied = j.total;
            st.total = j.total;
            st.rate = rate(j.total, took);
            replica_rows(&mut st);
        }
        _ if in_map.len() > 1 => {
            st.state = ReplicaPhase::InSync;
            st.copy = in_map.last().copied();
            st.copied = total;
            replica_rows(&mut st);
        }
        _ => {}
    }
    Some(st)
}
