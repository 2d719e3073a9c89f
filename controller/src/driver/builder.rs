//! The volume builder (PATENT.md figure 7, CONTROLLER.md "Reservations") and delete with
//! "keep data" ([0086]).
//!
//! Build: claim the name with every controller reachable (the lower (claim time, WWPN) wins);
//! take free extents of the type asked from this SAN (S703-S706), then from each other SAN in
//! priority order by RESERVE to its controller (S710-S711); capacity reached: write the mapping
//! (S707), which the core propagates (S708), then COMMIT the reservations and report success
//! (S709). Not reached: RELEASE every reservation, give the claim back, and report what was
//! found where (S712). A reservation whose builder dies expires at its ttl; one whose COMMIT is
//! lost becomes used anyway when the mapping arrives (the mapping is what marks extents used).
//!
//! Delete with keep data: hold the source's commands ([0088]), copy every virtual sector into
//! the target volume through the I/O path (as host I/O would: every copy of the target, its
//! caches invalidated, each write durable), and only then remove the mapping; an interruption
//! before the removal leaves the source whole, one after it finds the copy complete.

use std::collections::BTreeSet;
use std::sync::Arc;

use fc_frames::Wwn;

use crate::api::views::FoundView;
use crate::api::{ApiError, BuildSpec};
use crate::core::{ChangeError, ClaimOutcome};
use crate::extents::ReservationId;
use crate::io::progress::Progress;
use crate::model::{
    ControllerRef, MapRow, MediaType, RealExtent, Record, VolumeBody, VolumeName, VolumeState,
    SECTOR,
};
use crate::wire::{Reply, Request, Reserve};

use super::{reservation_request, CallError, Shared};

/// The largest volume a build takes (1 EiB): sector arithmetic stays far from overflow.
pub const MAX_CAPACITY: u64 = 1 << 60;

/// Why a build, a delete or another change of a volume (a replica, its masking) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The request itself is wrong.
    #[error("{field}: {reason}")]
    Bad {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The name is held by another controller's volume or claim.
    #[error("the name {name} is held by controller {holder}")]
    NameTaken {
        /// The name.
        name: VolumeName,
        /// Who holds it.
        holder: String,
    },
    /// Not enough free space of the type on the SANs asked.
    #[error("not enough free space")]
    Insufficient {
        /// What was found where.
        found: Vec<FoundView>,
    },
    /// No such volume.
    #[error("no volume named {0}")]
    NotFound(VolumeName),
    /// The volume is another controller's: only its owner changes it.
    #[error("volume {name} is owned by controller {owner}; ask that controller")]
    NotOwner {
        /// The volume.
        name: VolumeName,
        /// Its owner's name.
        owner: String,
    },
    /// The volume is in the middle of another change that must end first.
    #[error("volume {name} is busy: {reason}")]
    Busy {
        /// The volume.
        name: VolumeName,
        /// With what.
        reason: String,
    },
    /// The controller is still recovering.
    #[error("not ready")]
    NotReady,
    /// A controller or array the operation needed did not answer.
    #[error("{0} did not answer")]
    Unreachable(String),
    /// Copying data failed.
    #[error("copy failed: {0}")]
    Copy(String),
    /// The controller's database failed a write: it takes no more changes.
    #[error("this controller's database failed a write; it takes no changes until restarted")]
    Failed,
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> ApiError {
        match e {
            BuildError::Bad { field, reason } => ApiError::BadRequest { field, reason },
            BuildError::NameTaken { name, holder } => ApiError::NameTaken { name, holder },
            BuildError::Insufficient { found } => ApiError::Insufficient { found },
            BuildError::NotFound(n) => ApiError::NotFound(n),
            BuildError::NotOwner { name, owner } => ApiError::NotOwner { name, owner },
            BuildError::Busy { name, reason } => ApiError::Busy { name, reason },
            BuildError::NotReady => ApiError::NotReady,
            BuildError::Unreachable(peer) => ApiError::Unreachable { peer },
            BuildError::Copy(m) => ApiError::Internal(m),
            e @ BuildError::Failed => ApiError::Internal(e.to_string()),
        }
    }
}

/// A SAN space is asked of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct San {
    /// Its site.
    pub(crate) site: String,
    /// Its controller's name.
    pub(crate) controller: String,
    /// Its controller; `None`: this one, whose allocator is asked directly.
    pub(crate) peer: Option<Wwn>,
}

/// One reservation a builder (or a replica being made) holds: extents of one SAN, reserved
/// under `id` until committed, released or expired.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) site: String,
    pub(crate) controller: String,
    /// `None`: this controller's own allocator.
    pub(crate) peer: Option<Wwn>,
    pub(crate) id: u64,
    pub(crate) media: MediaType,
    /// What was asked of this SAN (a renewal asks the same).
    pub(crate) asked: u64,
    pub(crate) extents: Vec<RealExtent>,
}

/// What the reservations found where, for an answer of "not enough" (S712).
pub(crate) fn found(held: &[Held], media: MediaType) -> Vec<FoundView> {
    held.iter()
        .map(|h| FoundView {
            site: h.site.clone(),
            controller: h.controller.clone(),
            media,
            bytes: h.extents.iter().map(RealExtent::bytes).sum(),
        })
        .collect()
}

/// The sector map of the reserved extents, in order from virtual sector 0, as copy `copy`.
pub(crate) fn rows_of(held: &[Held], copy: u8) -> Vec<MapRow> {
    let mut rows = Vec::new();
    let mut virtual_start = 0;
    for e in held.iter().flat_map(|h| h.extents.iter()) {
        rows.push(MapRow {
            virtual_start,
            real: *e,
            copy,
        });
        virtual_start += e.bytes() / SECTOR;
    }
    rows
}

impl Shared {
    fn holder_name(&self, w: Wwn) -> String {
        let inner = self.lock();
        inner
            .core
            .peer(w)
            .filter(|p| !p.name.is_empty())
            .map_or_else(|| w.to_string(), |p| p.name.clone())
    }

    pub(crate) async fn build(self: &Arc<Self>, spec: BuildSpec) -> Result<Record, BuildError> {
        if spec.capacity == 0 || spec.capacity > MAX_CAPACITY {
            return Err(BuildError::Bad {
                field: "capacity",
                reason: format!("a volume holds 1 byte to {MAX_CAPACITY} bytes (1 EiB)"),
            });
        }
        self.usable()?;
        self.wait_scanned(std::time::Duration::from_secs(5)).await;
        let name = match spec.name.clone() {
            Some(n) => n,
            None => self.fresh_name(),
        };
        // Claim the name (CONTROLLER.md "Names").
        let outcome = self.wait_claim(&name);
        let claimed = self.with(|inner, now| inner.core.claim(now, name.clone()));
        if claimed.is_err() {
            self.claims_lock().remove(&name);
        }
        match claimed {
            Ok(()) => {}
            Err(ChangeError::NotReady) => return Err(BuildError::NotReady),
            Err(ChangeError::NameTaken { name, holder }) => {
                let holder = self.holder_name(holder);
                return Err(BuildError::NameTaken { name, holder });
            }
            Err(ChangeError::NoSuchVolume(n)) => return Err(BuildError::NotFound(n)),
        }
        match tokio::time::timeout(self.request_timeout() * 2, outcome).await {
            Ok(Ok(ClaimOutcome::Won)) => {}
            Ok(Ok(ClaimOutcome::Lost { holder, .. })) => {
                let holder = self.holder_name(holder);
                return Err(BuildError::NameTaken { name, holder });
            }
            Ok(Ok(ClaimOutcome::Refused { peer })) => {
                self.with(|inner, now| inner.core.release_claim(now, &name));
                return Err(BuildError::Unreachable(format!(
                    "controller {} (it refused the name claim)",
                    self.holder_name(peer)
                )));
            }
            _ => {
                self.with(|inner, now| inner.core.release_claim(now, &name));
                return Err(BuildError::Unreachable("a peer asked for the name".into()));
            }
        }
        // Reserve (S703-S711).
        let sans = self.sans_in_priority();
        let (held, remaining) = self
            .reserve_from(&sans, spec.media, spec.capacity, &BTreeSet::new())
            .await;
        if remaining > 0 {
            let found = found(&held, spec.media);
            self.release_all(&held).await;
            self.with(|inner, now| inner.core.release_claim(now, &name));
            return Err(BuildError::Insufficient { found });
        }
        // The mapping (S707), propagated by the core (S708).
        let rows = rows_of(&held, 0);
        let body = VolumeBody {
            owner: self.me_ref(),
            local_name: name.to_string(),
            capacity: spec.capacity.div_ceil(SECTOR) * SECTOR,
            state: VolumeState::Online,
            claimed_at: 0,
            media: spec.media,
            rows,
            masking: Vec::new(),
        };
        let put = self.with(|inner, now| inner.core.put(now, name.clone(), body));
        self.usable()?;
        if let Err(e) = put {
            self.release_all(&held).await;
            self.with(|inner, now| inner.core.release_claim(now, &name));
            return Err(match e {
                ChangeError::NameTaken { name, holder } => BuildError::NameTaken {
                    holder: self.holder_name(holder),
                    name,
                },
                ChangeError::NotReady => BuildError::NotReady,
                ChangeError::NoSuchVolume(n) => BuildError::NotFound(n),
            });
        }
        // COMMIT (the mapping marks them used anyway; this ends the ttl early).
        self.commit_all(&held, &name);
        let rec = self.lock().core.volume(&name).cloned();
        rec.ok_or(BuildError::NotFound(name))
    }

    fn me_ref(&self) -> ControllerRef {
        let inner = self.lock();
        let id = inner.core.identity();
        ControllerRef {
            name: id.name.clone(),
            wwpn: id.wwpn,
            fc_id: id.fc_id,
            site: id.site.clone(),
        }
    }

    fn fresh_name(&self) -> VolumeName {
        let inner = self.lock();
        let site: String = self
            .config
            .site
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        for n in 1u64.. {
            if let Ok(v) = VolumeName::new(format!("vol-{site}-{n}")) {
                if inner.core.volume(&v).is_none()
                    && !inner.core.is_claimed(&v)
                    && !inner.core.records().any(|r| r.key.name == v)
                {
                    return v;
                }
            }
        }
        unreachable!("some volume name is free")
    }

    /// This SAN first, then the up peers in the configured priority, then the rest by site.
    pub(crate) fn sans_in_priority(&self) -> Vec<San> {
        let inner = self.lock();
        let mut out = vec![San {
            site: self.config.site.clone(),
            controller: self.config.name.clone(),
            peer: None,
        }];
        let mut peers: Vec<(usize, String, String, Wwn)> = inner
            .core
            .peers()
            // A peer heard from before its first heartbeat has no domain yet: its extents
            // could not be checked as its SAN's, so it is not asked until it has one.
            .filter(|p| p.state == crate::core::PeerState::Up && p.fc_id.is_some())
            .map(|p| {
                let rank = self
                    .config
                    .priority
                    .iter()
                    .position(|s| *s == p.site)
                    .unwrap_or(usize::MAX);
                (rank, p.site.clone(), p.name.clone(), p.wwpn)
            })
            .collect();
        peers.sort();
        out.extend(peers.into_iter().map(|(_, site, controller, w)| San {
            site,
            controller,
            peer: Some(w),
        }));
        out
    }

    /// Reserves `bytes` of `media` from `sans` in their order (figure 7, S703-S711), each SAN
    /// asked for what is still missing. No extent on an array of `avoid`, or on an array that
    /// has left the fabric (the last scan may still list it), is taken: this SAN's allocator
    /// passes those arrays over, and a peer that answers with one has its reservation
    /// released and counts as having found nothing. What is held, and the bytes still missing
    /// (0: enough).
    pub(crate) async fn reserve_from(
        self: &Arc<Self>,
        sans: &[San],
        media: MediaType,
        bytes: u64,
        avoid: &BTreeSet<Wwn>,
    ) -> (Vec<Held>, u64) {
        let mut avoid = avoid.clone();
        avoid.extend(self.io.lost.all());
        let avoid = &avoid;
        let mut held: Vec<Held> = Vec::new();
        let mut remaining = bytes;
        for San {
            site,
            controller,
            peer,
        } in sans.iter().cloned()
        {
            if remaining == 0 {
                break;
            }
            let id = self.next_reservation();
            let extents = match peer {
                None => self.with(|inner, now| {
                    let me = inner.core.identity().wwpn;
                    let ttl = self.config.reserve_ttl.as_millis() as u64;
                    inner.extents.reserve_avoiding(
                        now,
                        ReservationId { builder: me, id },
                        media,
                        remaining,
                        ttl,
                        avoid,
                    )
                }),
                Some(w) => self.reserve_at(w, id, media, remaining).await,
            };
            let mut h = Held {
                site,
                controller,
                peer,
                id,
                media,
                asked: remaining,
                extents: Vec::new(),
            };
            h.extents = extents;
            if h.extents.iter().any(|e| avoid.contains(&e.array)) {
                self.release_all(std::slice::from_ref(&h)).await;
                h.extents.clear();
            }
            let got: u64 = h.extents.iter().map(RealExtent::bytes).sum();
            let got = if media == MediaType::Tape && !h.extents.is_empty() {
                remaining
            } else {
                got
            };
            remaining = remaining.saturating_sub(got);
            held.push(h);
        }
        (held, remaining)
    }

    /// Renews every reservation of `held` (the same id again: each SAN keeps the same
    /// extents for another ttl). An error names the SAN that did not renew them, or gave
    /// other extents (it forgot the reservation: a restart, or the ttl ran out).
    pub(crate) async fn renew_all(self: &Arc<Self>, held: &[Held]) -> Result<(), String> {
        for h in held.iter().filter(|h| !h.extents.is_empty()) {
            let now_have = match h.peer {
                None => self.with(|inner, now| {
                    let me = inner.core.identity().wwpn;
                    let ttl = self.config.reserve_ttl.as_millis() as u64;
                    inner.extents.reserve(
                        now,
                        ReservationId {
                            builder: me,
                            id: h.id,
                        },
                        h.media,
                        h.asked,
                        ttl,
                    )
                }),
                Some(w) => self.reserve_at(w, h.id, h.media, h.asked).await,
            };
            if now_have != h.extents {
                return Err(format!(
                    "controller {} of site {} no longer holds the reserved extents",
                    h.controller, h.site
                ));
            }
        }
        Ok(())
    }

    /// COMMITs every reservation of `held` to volume `name`, once the mapping lists their
    /// extents (the mapping marks them used anyway; this ends the ttl early). A peer's COMMIT
    /// goes in the background.
    pub(crate) fn commit_all(self: &Arc<Self>, held: &[Held], name: &VolumeName) {
        for h in held {
            match h.peer {
                None => self.with(|inner, _| {
                    let me = inner.core.identity().wwpn;
                    inner.extents.commit(
                        ReservationId {
                            builder: me,
                            id: h.id,
                        },
                        name,
                    );
                }),
                Some(_) if h.extents.is_empty() => {}
                Some(w) => {
                    let msg = self.with(|inner, _| {
                        reservation_request(
                            inner,
                            w,
                            Request::Commit {
                                id: h.id,
                                name: name.clone(),
                            },
                        )
                    });
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.call(w, &msg).await {
                            tracing::debug!(peer = %w, error = %e, "COMMIT failed; the mapping will mark the extents");
                        }
                    });
                }
            }
        }
    }

    async fn reserve_at(&self, w: Wwn, id: u64, media: MediaType, bytes: u64) -> Vec<RealExtent> {
        let ttl = u32::try_from(self.config.reserve_ttl.as_millis()).unwrap_or(u32::MAX);
        let msg = reservation_request(
            &mut self.lock(),
            w,
            Request::Reserve(Reserve {
                id,
                media,
                bytes,
                ttl_ms: ttl,
            }),
        );
        match self.call(w, &msg).await {
            Ok((_, _, Reply::Reserved(ex))) => {
                // Only extents on the answering controller's own SAN (its domain), none
                // overlapping another: anything else is not taken (and expires there).
                let domain = self
                    .lock()
                    .core
                    .peer(w)
                    .and_then(|p| p.fc_id)
                    .map(|id| id.domain());
                let mut ok: Vec<RealExtent> = Vec::new();
                for e in ex {
                    let overlaps = ok.iter().any(|o| {
                        o.array == e.array
                            && o.lun == e.lun
                            && o.start < e.start.saturating_add(e.blocks)
                            && e.start < o.start.saturating_add(o.blocks)
                    });
                    if Some(e.array_id.domain()) == domain && !overlaps {
                        ok.push(e);
                    } else {
                        tracing::warn!(peer = %w, extent = ?e, "RESERVE answered an extent not of its SAN, or twice; not taken");
                    }
                }
                ok
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(peer = %w, error = %e, "RESERVE failed");
                Vec::new()
            }
        }
    }

    /// Gives back every reservation of `held`.
    pub(crate) async fn release_all(self: &Arc<Self>, held: &[Held]) {
        for h in held {
            match h.peer {
                None => self.with(|inner, _| {
                    let me = inner.core.identity().wwpn;
                    inner.extents.release(ReservationId {
                        builder: me,
                        id: h.id,
                    });
                }),
                Some(w) if !h.extents.is_empty() => {
                    let msg =
                        reservation_request(&mut self.lock(), w, Request::Release { id: h.id });
                    if let Err(e) = self.call(w, &msg).await {
                        if !matches!(e, CallError::Rejected(_)) {
                            tracing::warn!(peer = %w, error = %e, "RELEASE failed; the reservation expires");
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    pub(crate) async fn delete(
        self: &Arc<Self>,
        name: &VolumeName,
        keep_in: Option<&VolumeName>,
    ) -> Result<(), BuildError> {
        let (rec, me) = {
            let inner = self.lock();
            (inner.core.volume(name).cloned(), inner.core.identity().wwpn)
        };
        let rec = rec.ok_or_else(|| BuildError::NotFound(name.clone()))?;
        self.usable()?;
        if rec.key.owner != me {
            let owner = rec
                .body
                .as_ref()
                .map_or_else(|| rec.key.owner.to_string(), |b| b.owner.name.clone());
            return Err(BuildError::NotOwner {
                name: name.clone(),
                owner,
            });
        }
        // The source's commands are held from here ([0088]): none runs against the copy or
        // the removal half done, and none runs after it (the volume is retired).
        let vol = self.io.volume(name);
        let _keeping = match keep_in {
            Some(_) => Some(self.keeping.lock().await),
            None => None,
        };
        let _held = match &vol {
            Some(v) => Some(v.gate.write().await),
            None => None,
        };
        if let Some(keep) = keep_in {
            if keep == name {
                return Err(BuildError::Bad {
                    field: "keep",
                    reason: "a volume cannot keep its data in itself".into(),
                });
            }
            let target = self
                .lock()
                .core
                .volume(keep)
                .cloned()
                .ok_or_else(|| BuildError::NotFound(keep.clone()))?;
            let (src, dst) = match (&rec.body, &target.body) {
                (Some(s), Some(d)) => (s, d),
                _ => return Err(BuildError::NotFound(keep.clone())),
            };
            if dst.capacity < src.capacity {
                return Err(BuildError::Bad {
                    field: "keep",
                    reason: format!(
                        "volume {keep} holds {} bytes, less than the {} of {name}",
                        dst.capacity, src.capacity
                    ),
                });
            }
            let v = vol
                .as_ref()
                .ok_or_else(|| BuildError::Copy(format!("volume {name} is not served here")))?;
            self.copy(v, keep).await?;
        }
        let removed = self
            .with(|inner, now| inner.core.remove(now, name))
            .map(|_| ())
            .map_err(|e| match e {
                ChangeError::NotReady => BuildError::NotReady,
                _ => BuildError::NotFound(name.clone()),
            });
        if removed.is_ok() {
            if let Some(v) = &vol {
                v.retire();
            }
        }
        removed
    }

    /// Copies every sector of own volume `name` into volume `keep` through the I/O path, 1 MiB
    /// at a time: reads from the source's copies as a host read would (the source's commands
    /// are held by the caller), writes to the target as a host write would (to every copy it
    /// has, its owner's caches invalidated, durable when it returns).
    async fn copy(
        self: &Arc<Self>,
        src: &crate::io::volume::VirtualVolume,
        dst: &VolumeName,
    ) -> Result<(), BuildError> {
        use fc_node::scsi::BlockDevice;
        const CHUNK: u64 = 1 << 20;
        let target = self
            .io
            .volume(dst)
            .ok_or_else(|| BuildError::NotFound(dst.clone()))?;
        let bs = u64::from(target.block_size());
        // What a host sees of the source: whole blocks of it (the capacity is kept to 512 bytes,
        // a block may be larger).
        let src_bs = u64::from(src.block_size().max(1));
        let capacity = src.body().capacity / src_bs * src_bs;
        if capacity % bs.max(1) != 0 {
            return Err(BuildError::Copy(format!(
                "the {capacity} bytes of {} are not whole blocks of {dst} ({bs} bytes)",
                src.key.name
            )));
        }
        let mut progress = Progress::start(format!("{} into {dst}", src.key.name), capacity);
        let mut off = 0;
        let copied = async {
            while off < capacity {
                let len = CHUNK.min(capacity - off);
                let data = src
                    .read_held(self, off, len)
                    .await
                    .map_err(|e| format!("reading {}: {e}", src.key.name))?;
                target
                    .write(off / bs, data, true)
                    .await
                    .map_err(|e| format!("writing {dst}: {e}"))?;
                off += len;
                progress.at(off);
            }
            Ok::<(), String>(())
        }
        .await;
        progress.end(copied.as_ref().map(|_| ()).map_err(String::as_str));
        copied.map_err(BuildError::Copy)
    }
}
