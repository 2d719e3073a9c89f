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
//!    answer. A holder that does not answer loses its right: the owner refuses it any renewal
//!    (it is fenced), waits until the lease it holds has run out (after which it caches nothing
//!    it had: a lease answered after the last one ran out starts an empty cache) and forgets
//!    it. So a partition delays writes by at most one lease; it never leaves stale data
//!    readable, even when only the invalidation is lost and the holder's renewals get through.
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
    leases: Mutex<Leases>,
    ttl: Duration,
    started: Instant,
}

/// Owner: the leases granted, and the holders refused any until their lease ran out.
#[derive(Debug, Default)]
struct Leases {
    /// Volume → holder → when its lease runs out here.
    holders: HashMap<VolumeName, HashMap<Wwn, Instant>>,
    /// Holders that did not answer an invalidation, refused a lease until then.
    fenced: HashMap<(VolumeName, Wwn), Instant>,
    /// Volumes losing a copy: no lease while that goes on (`None`) and until the instant
    /// after it, so that a ROUTE to the replica sent before the revoke finds no lease to be
    /// honoured under when it arrives late.
    frozen: HashMap<VolumeName, Option<Instant>>,
}

/// Owner: while it lives, [`Coherence::grant`] refuses leases of its volume (see
/// [`Leases::frozen`]); one lease length more after it is dropped.
pub(crate) struct Freeze<'a> {
    coherence: &'a Coherence,
    name: VolumeName,
}

impl Drop for Freeze<'_> {
    fn drop(&mut self) {
        let until = Instant::now() + self.coherence.ttl;
        self.coherence
            .lock()
            .frozen
            .insert(self.name.clone(), Some(until));
    }
}

impl Coherence {
    pub(crate) fn new(ttl: Duration) -> Coherence {
        Coherence {
            leases: Mutex::new(Leases::default()),
            ttl,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owner: a LEASE request from `from` for own volume `name`; the ttl granted (0: refused,
    /// to a holder fenced after an invalidation it did not answer).
    pub(crate) fn grant(&self, from: Wwn, lease: &Lease) -> u32 {
        let now = Instant::now();
        let mut l = self.lock();
        if lease.release {
            if let Some(h) = l.holders.get_mut(&lease.name) {
                h.remove(&from);
            }
            return 0;
        }
        l.fenced.retain(|_, until| *until > now);
        l.frozen.retain(|_, until| until.is_none_or(|t| t > now));
        if l.fenced.contains_key(&(lease.name.clone(), from)) || l.frozen.contains_key(&lease.name)
        {
            return 0;
        }
        l.holders
            .entry(lease.name.clone())
            .or_default()
            .insert(from, now + self.ttl);
        u32::try_from(self.ttl.as_millis()).unwrap_or(u32::MAX)
    }

    /// Owner: the controllers that may cache `name` now.
    pub(crate) fn holders(&self, name: &VolumeName) -> Vec<(Wwn, Instant)> {
        let now = Instant::now();
        let mut l = self.lock();
        let Some(h) = l.holders.get_mut(name) else {
            return Vec::new();
        };
        h.retain(|_, t| *t > now);
        h.iter().map(|(w, t)| (*w, *t)).collect()
    }

    /// Owner: refuses every lease of `name` while the guard lives, and one lease length after.
    pub(crate) fn freeze(&self, name: &VolumeName) -> Freeze<'_> {
        self.lock().frozen.insert(name.clone(), None);
        Freeze {
            coherence: self,
            name: name.clone(),
        }
    }

    /// Owner: refuses `who` any new lease of `name` until the one it holds has run out; when
    /// that is (at least `until`).
    fn fence(&self, name: &VolumeName, who: Wwn, until: Instant) -> Instant {
        let mut l = self.lock();
        let held = l
            .holders
            .get(name)
            .and_then(|h| h.get(&who))
            .map_or(until, |t| (*t).max(until));
        let fence = l.fenced.entry((name.clone(), who)).or_insert(held);
        *fence = (*fence).max(held);
        *fence
    }

    /// Owner: forgets a holder once its lease has run out.
    fn drop_holder(&self, name: &VolumeName, who: Wwn, until: Instant) {
        if let Some(h) = self.lock().holders.get_mut(name) {
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
                // Its renewals may still get through: it gets none until its lease is over.
                let until = self.fence(&vol.key.name, who, until);
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
            v.direct.store(0, Ordering::Relaxed);
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

/// Holder: a ROUTE from the volume's owner. Reading the replica directly is bound to the lease
/// held now: without one the notice is ignored (it may be older than a revoke; the owner tells
/// a holder again on its next switch).
pub(crate) fn on_route(shared: &Shared, key: &RecordKey, route: &Route) {
    let Some(v) = shared.io.volume(&route.name) else {
        return;
    };
    let lease = if route.replica {
        match shared.io.cache.lease_id(key) {
            Some(id) => id,
            None => {
                tracing::debug!(volume = %route.name, "ROUTE to the replica without a lease; ignored");
                return;
            }
        }
    } else {
        0
    };
    if v.direct.swap(lease, Ordering::Relaxed) != lease {
        v.counters.route_changes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(volume = %route.name, replica = route.replica, "owner changed the read route");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &VolumeName) -> Lease {
        Lease {
            name: name.clone(),
            release: false,
        }
    }

    /// A holder that did not answer an invalidation gets no renewal until the lease it held
    /// has run out, however often it asks; after that it may hold one again.
    #[test]
    fn test_a_fenced_holder_is_refused_renewals_until_its_lease_ran_out() {
        // Long enough that a busy machine does not let a lease run out between two steps.
        let ttl = Duration::from_millis(500);
        let c = Coherence::new(ttl);
        let name = VolumeName::new("v").unwrap();
        let h = Wwn::from_u64(0x2300_0000_0000_0002);
        let other = Wwn::from_u64(0x2300_0000_0000_0003);
        assert_eq!(c.grant(h, &lease(&name)), 500);
        let (_, until) = c.holders(&name)[0];
        // A renewal gets through while the invalidation does not.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.grant(h, &lease(&name)), 500);
        let fence = c.fence(&name, h, until);
        assert!(fence > until, "the fence covers the renewal");
        assert_eq!(c.grant(h, &lease(&name)), 0, "fenced");
        assert_eq!(c.grant(other, &lease(&name)), 500, "others are not");
        std::thread::sleep(fence.saturating_duration_since(Instant::now()));
        c.drop_holder(&name, h, fence);
        assert!(c.holders(&name).iter().all(|(w, _)| *w != h));
        assert_eq!(c.grant(h, &lease(&name)), 500, "after its lease, a new one");
    }

    /// While a volume loses a copy, and one lease length after, nobody gets a lease of it.
    #[test]
    fn test_no_lease_while_a_copy_is_taken_out_and_one_lease_after() {
        let ttl = Duration::from_millis(500);
        let c = Coherence::new(ttl);
        let (name, other) = (VolumeName::new("v").unwrap(), VolumeName::new("w").unwrap());
        let h = Wwn::from_u64(0x2300_0000_0000_0002);
        let frozen = c.freeze(&name);
        assert_eq!(c.grant(h, &lease(&name)), 0);
        assert_eq!(c.grant(h, &lease(&other)), 500, "other volumes are not");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.grant(h, &lease(&name)), 0, "as long as it goes on");
        drop(frozen);
        assert_eq!(c.grant(h, &lease(&name)), 0, "and one lease length after");
        std::thread::sleep(ttl + Duration::from_millis(10));
        assert_eq!(c.grant(h, &lease(&name)), 500);
    }
}
