//! The I/O path (PATENT.md figure 6, [0073]-[0080], [0086]-[0088], [0090]-[0103]): the
//! controller is an FCP target whose logical units are the common virtual volumes.
//!
//! - [`volume`]: one volume as a block device — to the arrays when owned here, forwarded to the
//!   owner's virtual LUN otherwise; held while its mapping changes.
//! - [`cache`] and [`coherence`]: the remote-read cache and the leases and invalidations that
//!   keep it from ever returning data older than an acknowledged write.
//! - [`replica`]: a replica synchronized in the background, then mirrored; load switching
//!   (`balance`).
//! - `lost`: arrays that left the fabric, noticed from RSCNs, so that a command to one fails
//!   at once and another copy takes over before any host gives up.
//!
//! Every live volume of the mapping is a LUN here, with the same identity at every controller
//! (VPD page 0x83 NAA name and page 0x80 serial derived from the record's owner, name and
//! claim time), so multipath software sees one volume with a path through each controller.
//! LUN numbers are the identity's hash (1..=16383, the next free one on a collision): the same
//! at every controller unless two volumes collide, which a forwarding controller survives
//! because it finds the owner's LUN by its identity, not by its number. A volume whose mapping
//! lists hosts (masking) is visible to those hosts and to the other controllers only.

pub mod cache;
pub mod coherence;
pub mod counters;
mod lost;
pub(crate) mod progress;
pub mod replica;
pub mod volume;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::fcp::target::Target;
use fc_node::scsi::{DeviceError, DiskConfig, LunMask, ScsiEngine, TargetPort};
use sha2::{Digest, Sha256};

use crate::core::Core;
use crate::driver::Shared;
use crate::model::{RecordKey, VolumeBody, VolumeName, VolumeState};

pub use counters::IoCounters;

use cache::Cache;
use coherence::Coherence;
use volume::VirtualVolume;

/// How the I/O path is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct IoConfig {
    /// Bytes of remote data a controller caches (0: no cache).
    pub cache_bytes: u64,
    /// How long a cache lease lasts; an owner that cannot reach a holder waits this long at
    /// most before it acknowledges a write.
    pub lease: Duration,
    /// Commands in flight on a volume at its owner, averaged over about a second, past which
    /// its reads go to the replica (load switching); back below half of it. The count is of
    /// every command, whichever copy serves it: counting only the primary's would send the
    /// reads back as soon as moving them had relieved it, and flap.
    pub switch_outstanding: u32,
    /// The replica copier's rate limit in bytes per second (0: none); see [`replica`].
    pub replica_rate: u64,
}

impl Default for IoConfig {
    /// 256 MiB of cache, 3 s leases, switching at 16 commands in flight, replicas copied at
    /// 200 MiB/s at most.
    fn default() -> Self {
        IoConfig {
            cache_bytes: 256 << 20,
            lease: Duration::from_secs(3),
            switch_outstanding: 16,
            replica_rate: 200 << 20,
        }
    }
}

/// The identity of a volume's LUN at every controller: its NAA name (NAA 5 form, the rest a
/// hash of owner, name and claim time) and serial number.
pub fn identity(key: &RecordKey, body: &VolumeBody) -> (Wwn, String) {
    let mut h = Sha256::new();
    h.update(key.owner.to_u64().to_be_bytes());
    h.update(key.name.as_str().as_bytes());
    h.update(body.claimed_at.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    let v = u64::from_be_bytes(b);
    let naa = Wwn::from_u64((0x5 << 60) | (v & 0x0FFF_FFFF_FFFF_FFFF));
    (naa, format!("FCSANV{:016X}", v))
}

/// The LUN a volume of this NAA name gets when no other takes it first.
pub fn lun_guess(naa: Wwn) -> Lun {
    let n = (naa.to_u64() % 16383) as u16 + 1;
    Lun::from_index(n).unwrap_or(Lun::from_index(1).expect("LUN 1"))
}

struct Exported {
    lun: Lun,
    volume: Arc<VirtualVolume>,
    masking: Vec<Wwn>,
}

/// The controller's FCP target and its volumes.
pub(crate) struct Io {
    pub(crate) config: IoConfig,
    pub(crate) target: Target,
    pub(crate) cache: Cache,
    pub(crate) coherence: Coherence,
    pub(crate) replicas: replica::Replicas,
    pub(crate) lost: lost::Lost,
    exported: Mutex<BTreeMap<VolumeName, Exported>>,
    /// The controllers this one knows: they see every volume, masked or not.
    controllers: Arc<RwLock<HashSet<Wwn>>>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Io {
    pub(crate) fn new(config: IoConfig, port_name: Wwn, node_name: Wwn) -> Io {
        let engine = ScsiEngine::new(TargetPort {
            port_name,
            node_name,
            relative_port: 1,
        });
        Io {
            target: Target::new(Arc::new(engine)),
            cache: Cache::new(config.cache_bytes),
            coherence: Coherence::new(config.lease),
            replicas: replica::Replicas::default(),
            lost: lost::Lost::default(),
            exported: Mutex::new(BTreeMap::new()),
            controllers: Arc::new(RwLock::new(HashSet::new())),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<VolumeName, Exported>> {
        self.exported.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The volume served under `name`.
    pub(crate) fn volume(&self, name: &VolumeName) -> Option<Arc<VirtualVolume>> {
        self.lock().get(name).map(|e| e.volume.clone())
    }

    /// Every volume served, with its LUN.
    pub(crate) fn volumes(&self) -> Vec<(Lun, Arc<VirtualVolume>)> {
        self.lock()
            .values()
            .map(|e| (e.lun, e.volume.clone()))
            .collect()
    }

    /// The LUN `name` is served at.
    pub(crate) fn lun_of(&self, name: &VolumeName) -> Option<Lun> {
        self.lock().get(name).map(|e| e.lun)
    }

    fn mask(&self, masking: &[Wwn]) -> Option<LunMask> {
        if masking.is_empty() {
            return None;
        }
        let hosts: HashSet<Wwn> = masking.iter().copied().collect();
        let controllers = self.controllers.clone();
        Some(Arc::new(move |w: Wwn| {
            hosts.contains(&w)
                || controllers
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&w)
        }))
    }

    /// Makes the LUNs match the mapping: a LUN for every live volume (the one its name means),
    /// none for a deleted one; a volume whose record changed runs on the new mapping (its
    /// owner made the change while holding the volume's commands).
    pub(crate) fn sync(&self, shared: &Arc<Shared>, core: &Core) {
        let peers: HashSet<Wwn> = core.peers().map(|p| p.wwpn).collect();
        let peers_changed = {
            let mut c = self.controllers.write().unwrap_or_else(|e| e.into_inner());
            let changed = *c != peers;
            *c = peers;
            changed
        };
        let mut want: Vec<(RecordKey, VolumeBody)> = Vec::new();
        let names: std::collections::BTreeSet<VolumeName> =
            core.records().map(|r| r.key.name.clone()).collect();
        for name in names {
            if let Some(rec) = core.volume(&name) {
                if let Some(body) = &rec.body {
                    want.push((rec.key.clone(), body.clone()));
                }
            }
        }
        want.sort_by(|a, b| {
            (a.1.claimed_at, a.0.owner, &a.0.name).cmp(&(b.1.claimed_at, b.0.owner, &b.0.name))
        });
        let engine = self.target.engine();
        let mut removed = Vec::new();
        let masked = {
            let mut map = self.lock();
            let wanted: HashSet<&VolumeName> = want.iter().map(|(k, _)| &k.name).collect();
            let gone: Vec<VolumeName> = map
                .iter()
                .filter(|(n, e)| {
                    !wanted.contains(n)
                        || want
                            .iter()
                            .any(|(k, _)| &k.name == *n && k.owner != e.volume.key.owner)
                })
                .map(|(n, _)| n.clone())
                .collect();
            for n in gone {
                if let Some(e) = map.remove(&n) {
                    e.volume.retire();
                    self.cache.forget(&e.volume.key);
                    removed.push(e.lun);
                }
            }
            let mut used: HashSet<Lun> = map.values().map(|e| e.lun).collect();
            for (key, body) in want {
                if let Some(e) = map.get_mut(&key.name) {
                    if e.masking != body.masking {
                        engine.set_mask(e.lun, self.mask(&body.masking));
                        e.masking = body.masking.clone();
                    }
                    if *e.volume.body() != body {
                        e.volume.set_body(body);
                    }
                    continue;
                }
                let (naa, serial) = identity(&key, &body);
                let mut index = lun_guess(naa).index().unwrap_or(1);
                let lun = loop {
                    let l = Lun::from_index(index).unwrap_or(Lun::from_index(1).expect("LUN 1"));
                    if !used.contains(&l) {
                        break l;
                    }
                    index = index % 16383 + 1;
                };
                let masking = body.masking.clone();
                let volume = Arc::new(VirtualVolume::new(
                    Arc::downgrade(shared) as Weak<Shared>,
                    key.clone(),
                    body,
                ));
                let config = DiskConfig {
                    product: "VIRTUAL VOLUME".into(),
                    max_transfer_blocks: (8 << 20) / volume_block(&volume),
                    ..DiskConfig::new(&serial, naa)
                };
                match engine.add_disk_masked(lun, volume.clone(), config, self.mask(&masking)) {
                    Ok(()) => {
                        used.insert(lun);
                        tracing::info!(volume = %key.name, lun = ?lun.index(), owner = %key.owner, "virtual LUN served");
                        map.insert(
                            key.name.clone(),
                            Exported {
                                lun,
                                volume,
                                masking,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(volume = %key.name, error = %e, "virtual LUN not served")
                    }
                }
            }
            map.values().any(|e| !e.masking.is_empty())
        };
        // Only masks consult the controllers: with none, a new peer changes no host's view,
        // and a unit attention to every host (REPORTED LUNS DATA HAS CHANGED) would be noise.
        if peers_changed && masked {
            engine.masks_changed();
        }
        for lun in removed {
            tokio::spawn(engine.remove_lun(lun));
        }
    }

    /// Takes copies `lost` of mapping `body` (the one the failed command ran against) out of
    /// own volume `vol`'s mapping (the rest renumbered from 0, the volume degraded), durably,
    /// after revoking every cache lease (a holder may read the replica directly). Commands
    /// need not be held: every copy left has every acknowledged write. The copies are found by
    /// their extents, not their numbers: another command's detach may have renumbered them
    /// since `body` was read (and then this one has nothing left to do).
    ///
    /// False when no copy the command did reach is whole in the mapping any more (another
    /// command's detach took it, for a failure of its own): then nothing that the mapping lists
    /// holds the write, which must not be acknowledged; and a mapping is never left without a
    /// copy.
    pub(crate) async fn detach(
        &self,
        shared: &Arc<Shared>,
        vol: &VirtualVolume,
        body: &VolumeBody,
        lost: &[u8],
    ) -> Result<bool, DeviceError> {
        let _one = vol.detaching.lock().await;
        let lost_rows: Vec<_> = body
            .rows
            .iter()
            .filter(|r| lost.contains(&r.copy))
            .map(|r| r.real)
            .collect();
        let without = |b: &VolumeBody| {
            let mut next = b.clone();
            next.rows.retain(|r| !lost_rows.contains(&r.real));
            next
        };
        let current = vol.body();
        let mut next = without(&current);
        let reached_one = volume::copies(body)
            .into_iter()
            .filter(|c| !lost.contains(c))
            .any(|c| {
                body.rows
                    .iter()
                    .filter(|r| r.copy == c)
                    .all(|r| next.rows.iter().any(|n| n.real == r.real))
            });
        if !reached_one || next.rows.is_empty() {
            tracing::error!(volume = %vol.key.name, "a write reached no copy the mapping still lists; it fails");
            return Ok(false);
        }
        if next.rows.len() == current.rows.len() {
            // Another command's detach took them out already; it recorded that durably, or
            // failed and left the controller unusable.
            shared.usable().map_err(|e| DeviceError::Unreachable {
                timed_out: false,
                source: std::io::Error::other(format!(
                    "the mapping could not record a lost copy: {e}"
                )),
            })?;
            return Ok(true);
        }
        // No lease from the revoke on until the mapping without the copy is in place: a holder
        // reads the replica directly only under a lease granted after it was told to.
        let _frozen = self.coherence.freeze(&vol.key.name);
        self.coherence
            .invalidate(shared, vol, (0, u64::MAX / 1024), true, None)
            .await;
        vol.switched.store(false, Ordering::Relaxed);
        let name = vol.key.name.clone();
        // From the record as it is now: the revoke may have waited out a lease, and the owner
        // may have changed other fields (the masking) meanwhile.
        let put = shared.with(|inner, now| {
            if let Some(body) = inner.core.volume(&name).and_then(|r| r.body.as_ref()) {
                next = without(body);
            }
            let left = volume::copies(&next);
            for r in &mut next.rows {
                r.copy = left.iter().position(|c| *c == r.copy).unwrap_or(0) as u8;
            }
            if next.state == VolumeState::Online {
                next.state = VolumeState::Degraded;
            }
            inner.core.put(now, name.clone(), next.clone())
        });
        if let Err(e) = put
            .map_err(|e| e.to_string())
            .and(shared.usable().map_err(|e| e.to_string()))
        {
            tracing::error!(volume = %name, error = %e, "could not record a lost copy");
            return Err(DeviceError::Unreachable {
                timed_out: false,
                source: std::io::Error::other(format!(
                    "the mapping could not record a lost copy: {e}"
                )),
            });
        }
        vol.set_body(next);
        tracing::warn!(volume = %name, "a copy was lost; the volume is degraded");
        Ok(true)
    }

    /// The replica being synchronized for `vol` failed a write: the synchronization stops (the
    /// replica never entered the mapping; nothing acknowledged depends on it).
    pub(crate) fn abandon_sync(&self, vol: &VirtualVolume) {
        if let Some(s) = vol.syncing.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.failed.store(true, Ordering::Relaxed);
            let copied = s.copied.load(Ordering::Relaxed);
            tracing::warn!(volume = %vol.key.name, copied, "replica write failed; its synchronization stops");
        }
    }

    /// The counters of volume `name` here.
    pub(crate) fn counters(&self, name: &VolumeName) -> Option<IoCounters> {
        self.volume(name).map(|v| v.counters.snapshot())
    }
}

fn volume_block(v: &VirtualVolume) -> u32 {
    use fc_node::scsi::BlockDevice;
    v.block_size().max(1)
}

/// Lease lengths after a volume's last read during which a forwarding controller keeps
/// renewing its cache lease; past that the lease lapses, and the owner's writes stop waiting
/// for this controller's invalidation.
const KEEP_LEASES: u32 = 10;

/// Load switching (PATENT.md [0074]-[0078], [0097]): every 100 ms the owner samples each own
/// volume's commands in flight (all of them, whichever copy serves them: see
/// [`IoConfig::switch_outstanding`]); past the threshold (averaged over about a second) its
/// reads go to the replica and forwarding controllers are told to read the replica directly;
/// below half of it, back. On the same tick a forwarding controller renews the cache leases of
/// the volumes read lately ([`KEEP_LEASES`]).
pub(crate) async fn balance(shared: Weak<Shared>) {
    let mut avg: std::collections::HashMap<VolumeName, f64> = std::collections::HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let threshold = f64::from(shared.io.config.switch_outstanding.max(1));
        let ttl = shared.io.coherence.ttl();
        for (_, v) in shared.io.volumes() {
            if v.key.owner != shared.config.port_name {
                // A holder renews its lease at half its life while the volume is read, even
                // from the cache alone, and for KEEP_LEASES lease lengths after the last read:
                // a lease that runs out drops everything cached under it.
                if shared.io.cache.holds(&v.key)
                    && shared.io.cache.read_within(&v.key, ttl * KEEP_LEASES)
                {
                    shared.io.coherence.renew(&shared, &v.key);
                }
                continue;
            }
            let now = v.outstanding.load(Ordering::Relaxed) as f64;
            let a = avg.entry(v.key.name.clone()).or_insert(0.0);
            *a = *a * 0.9 + now * 0.1;
            let two = volume::copies(&v.body()).len() > 1;
            let switched = v.switched.load(Ordering::Relaxed);
            let to = if !switched && two && *a >= threshold {
                Some(true)
            } else if switched && (!two || *a < threshold / 2.0) {
                Some(false)
            } else {
                None
            };
            if let Some(to) = to {
                v.switched.store(to, Ordering::Relaxed);
                v.counters.route_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(volume = %v.key.name, replica = to, load = *a, "load switching");
                shared.io.coherence.route(&shared, &v, to).await;
            }
        }
    }
}

/// Watches for arrays that leave the fabric (see `lost`), for the life of the controller.
pub(crate) async fn watch_arrays(shared: Weak<Shared>) {
    lost::watch(shared).await;
}
