//! Coherence of the remote-read caches: once a write has been acknowledged anywhere, no
//! controller returns older data for its sectors.
//!
//! The scheme is leases plus invalidation before acknowledgement (CONTROLLER.md, the way
//! NFSv4 delegations or Gray and Cheriton's leases work):
//!
//! 1. A forwarding controller caches a volume's data (or reads its replica directly) only while
//!    it holds a lease from the volume's owner: LEASE → `Leased { ttl_ms }`. The owner records
//!    the holder until its receipt time + ttl; the holder counts from its send time, so it
//!    always gives up first.
//! 2. Before the owner acknowledges a write, and after every copy has it, it sends INVALIDATE
//!    for the written range to every holder whose lease has not run out, and waits for each
//!    answer. A holder that does not answer loses its right: the owner waits until that
//!    holder's lease has run out (after which it caches nothing it had) and forgets it. So a
//!    partition delays writes by at most one lease; it never leaves stale data readable.
//! 3. An owner that (re)starts does not know who holds leases: it acknowledges no write until
//!    one lease length has passed since it started.
//! 4. A change of the mapping that a holder's direct replica reads depend on (a replica taken
//!    out) is preceded by INVALIDATE with `revoke`: the holder drops everything and the lease.
//!
//! This is at least as strong as the issue asks: no read anywhere returns data older than the
//! last write acknowledged anywhere, partitions included, with no synchronized clocks (only
//! clocks that run at about the same rate: the holder keeps 95% of the lease).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fc_frames::Wwn;
use tokio::task::JoinSet;

use crate::driver::Shared;
use crate::model::{RecordKey, VolumeName, SECTOR};
use crate::wire::{Invalidate, Lease, Reply, Request, Route};

use super::cache::{Lease as LeaseStep, Ticket};
use super::volume::VirtualVolume;

/// The owner's side (who may cache what) and the holder's lease requests.
#[derive(Debug)]
pub(crate) struct Coherence {
    /// Owner: volume → holder → when its lease runs out here.
    holders: Mutex<HashMap<VolumeName, HashMap<Wwn, Instant>>>,
    ttl: Duration,
    started: Instant,
}

impl Coherence {
    pub(crate) fn new(ttl: Duration) -> Coherence {
        Coherence {
            holders: Mutex::new(HashMap::new()),
            ttl,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VolumeName, HashMap<Wwn, Instant>>> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owner: a LEASE request from `from` for own volume `name`; the ttl granted.
    pub(crate) fn grant(&self, from: Wwn, lease: &Lease) -> u32 {
        let mut map = self.lock();
        if lease.release {
            if let Some(h) = map.get_mut(&lease.name) {
                h.remove(&from);
            }
            return 0;
        }
        map.entry(lease.name.clone())
            .or_default()
            .insert(from, Instant::now() + self.ttl);
        u32::try_from(self.ttl.as_millis()).unwrap_or(u32::MAX)
    }

    /// Owner: the controllers that may cache `name` now.
    pub(crate) fn holders(&self, name: &VolumeName) -> Vec<(Wwn, Instant)> {
        let now = Instant::now();
        let mut map = self.lock();
        let Some(h) = map.get_mut(name) else {
            return Vec::new();
        };
        h.retain(|_, t| *t > now);
        h.iter().map(|(w, t)| (*w, *t)).collect()
    }

    /// Owner: forgets a holder once its lease has run out.
    fn drop_holder(&self, name: &VolumeName, who: Wwn, until: Instant) {
        if let Some(h) = self.lock().get_mut(name) {
            if h.get(&who).is_some_and(|t| *t <= until) {
                h.remove(&who);
            }
        }
    }

    /// Owner: waits until no lease granted before this controller started can still be held.
    pub(crate) async fn wait_for_old_leases(&self) {
        let until = self.started + self.ttl;
        if Instant::now() < until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Owner: makes every holder of `vol` but `except` drop sectors `[start, start + sectors)`
    /// (with `revoke`, everything and its lease); returns when each has answered or its lease
    /// has run out. `except` is the controller that forwarded the write: it drops the range
    /// itself before it acknowledges its host.
    pub(crate) async fn invalidate(
        &self,
        shared: &Arc<Shared>,
        vol: &VirtualVolume,
        (start, sectors): (u64, u64),
        revoke: bool,
        except: Option<Wwn>,
    ) {
        let mut holders = self.holders(&vol.key.name);
        holders.retain(|(w, _)| Some(*w) != except);
        if holders.is_empty() {
            return;
        }
        let mut set = JoinSet::new();
        for (who, until) in holders {
            let shared = shared.clone();
            let request = Request::Invalidate(Invalidate {
                name: vol.key.name.clone(),
                start,
                sectors,
                revoke,
            });
            set.spawn(async move {
                let ok = shared.send_request(who, request).await.is_ok();
                (who, until, ok)
            });
        }
        vol.counters
            .invalidations
            .fetch_add(set.len() as u64, Ordering::Relaxed);
        while let Some(r) = set.join_next().await {
            let Ok((who, until, ok)) = r else {
                continue;
            };
            if !ok {
                tracing::warn!(volume = %vol.key.name, holder = %who, "cache holder did not answer an invalidation; waiting out its lease");
                if Instant::now() < until {
                    tokio::time::sleep_until(until.into()).await;
                }
                self.drop_holder(&vol.key.name, who, until);
            }
        }
    }

    /// Owner: tells every holder of `vol` where to read from.
    pub(crate) async fn route(&self, shared: &Arc<Shared>, vol: &VirtualVolume, replica: bool) {
        for (who, _) in self.holders(&vol.key.name) {
            let request = Request::Route(Route {
                name: vol.key.name.clone(),
                replica,
            });
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = shared.send_request(who, request).await {
                    tracing::debug!(holder = %who, error = %e, "route notice failed");
                }
            });
        }
    }

    /// Holder: the ticket of a read of `key` starting now. Without a lease, it asks the owner
    /// for one and waits for the answer (one round trip, once a lease period: the reads of a
    /// burst wait for the same answer), so that what the first reads fetch is cached too; a
    /// lease past half its length is renewed in the background.
    pub(crate) async fn ticket(&self, shared: &Arc<Shared>, key: &RecordKey) -> Option<Ticket> {
        let cache = &shared.io.cache;
        let mut answers = cache.answers();
        let ticket = cache.ticket(key);
        let step = cache.lease_step(key, self.ttl);
        if step == LeaseStep::Ask {
            let shared = shared.clone();
            let key = key.clone();
            tokio::spawn(async move { ask(&shared, &key).await });
        }
        if ticket.is_some() || step == LeaseStep::Neither {
            return ticket;
        }
        let limit = self.ttl.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(limit, answers.changed()).await;
        cache.ticket(key)
    }
}

impl Coherence {
    /// Holder: renews the lease of `key` in the background when it is past half its life.
    pub(crate) fn renew(&self, shared: &Arc<Shared>, key: &RecordKey) {
        if shared.io.cache.lease_step(key, self.ttl) == LeaseStep::Ask {
            let shared = shared.clone();
            let key = key.clone();
            tokio::spawn(async move { ask(&shared, &key).await });
        }
    }

    /// The lease length.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Holder: one LEASE request to the owner of `key`.
async fn ask(shared: &Arc<Shared>, key: &RecordKey) {
    let sent = Instant::now();
    let request = Request::Lease(Lease {
        name: key.name.clone(),
        release: false,
    });
    let cache = &shared.io.cache;
    match shared.send_request(key.owner, request).await {
        Ok(Reply::Leased { ttl_ms }) => {
            tracing::debug!(volume = %key.name, ttl_ms, "cache lease");
            cache.leased(key, sent, Duration::from_millis(u64::from(ttl_ms)));
        }
        other => {
            tracing::debug!(volume = %key.name, owner = %key.owner, answer = ?other, "no cache lease");
            cache.ask_failed(key)
        }
    }
}

/// Holder: an INVALIDATE from `from` (checked to be the volume's owner by the caller).
pub(crate) fn on_invalidate(shared: &Shared, key: &RecordKey, inv: &Invalidate) {
    let cache = &shared.io.cache;
    if inv.revoke {
        cache.revoke(key);
        if let Some(v) = shared.io.volume(&key.name) {
            v.direct.store(false, Ordering::Relaxed);
        }
    } else {
        cache.invalidate(
            key,
            inv.start.saturating_mul(SECTOR),
            inv.sectors.saturating_mul(SECTOR),
        );
    }
    if let Some(v) = shared.io.volume(&key.name) {
        v.counters.invalidations.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holder: a ROUTE from the volume's owner.
pub(crate) fn on_route(shared: &Shared, route: &Route) {
    if let Some(v) = shared.io.volume(&route.name) {
        if v.direct.swap(route.replica, Ordering::Relaxed) != route.replica {
            v.counters.route_changes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(volume = %route.name, replica = route.replica, "owner changed the read route");
        }
    }
}
