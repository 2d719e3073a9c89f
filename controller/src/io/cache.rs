//! The remote-read cache ([0102]-[0103], [0137]): data a forwarding controller fetched from
//! another SAN, kept in a bounded cache (quick_cache's CLOCK-Pro: recency and frequency,
//! weighed in bytes) so that repeated reads are served on this SAN.
//!
//! Data is cached in aligned chunks ([`CHUNK`] bytes); a read is a hit when every chunk it
//! covers is present. A volume's data may be cached only while this controller holds a lease
//! from the volume's owner ([`super::coherence`]). Every volume has a state here:
//!
//! - `expires`: when the lease runs out, counted from when this controller *sent* the request
//!   (the owner counts from when it received it, so this end always gives up first);
//! - `epoch`: raised by every invalidation of the volume. A read takes a [`Ticket`] (the epoch,
//!   and only while the lease is valid) before it asks the owner, and its data enters the cache
//!   only if the epoch is the same when it comes back: data that may predate a write the owner
//!   has invalidated is never kept;
//! - `id`: the volume's number in cache keys, replaced on a revocation or an expired lease, so
//!   that every old entry is unreachable at once (the cache evicts them as it needs room).
//!
//! Inserts and invalidations of a volume are serialized by one lock, so an invalidation never
//! passes an insert of older data.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quick_cache::sync::Cache as Quick;
use quick_cache::Weighter;

use crate::model::RecordKey;

/// The cache's unit: reads are cached in aligned 4 KiB chunks.
pub const CHUNK: u64 = 4096;

/// Bytes `[off, off + len)` of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) key: RecordKey,
    pub(crate) off: u64,
    pub(crate) len: u64,
}

impl Span {
    pub(crate) fn new(key: RecordKey, off: u64, len: u64) -> Span {
        Span { key, off, len }
    }
}

/// What to do about a lease ([`Cache::lease_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Send a request.
    Ask,
    /// One is on its way.
    Wait,
    /// Nothing.
    Neither,
}

/// What a read holds while it asks the owner: the volume's cache number and epoch when it
/// started, under a valid lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    id: u64,
    epoch: u64,
}

impl Ticket {
    /// The number of the lease it was taken under (never 0).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<(u64, u64), Bytes> for ByBytes {
    fn weight(&self, _key: &(u64, u64), val: &Bytes) -> u64 {
        val.len() as u64 + 32
    }
}

#[derive(Debug)]
struct VolumeState {
    id: u64,
    epoch: u64,
    expires: Option<Instant>,
    /// A lease request is on its way.
    asking: bool,
    /// No new request before this (the last one failed).
    retry_at: Option<Instant>,
    /// When a read last asked for a ticket.
    read_at: Option<Instant>,
}

/// The remote-read cache of one controller.
pub(crate) struct Cache {
    chunks: Quick<(u64, u64), Bytes, ByBytes>,
    /// Rises on every answer to a lease request: reads waiting for a lease watch it.
    answers: tokio::sync::watch::Sender<u64>,
    volumes: Mutex<HashMap<RecordKey, VolumeState>>,
    next_id: Mutex<u64>,
    capacity: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache of at most `capacity` bytes (0: nothing is cached).
    pub(crate) fn new(capacity: u64) -> Cache {
        let items = usize::try_from((capacity / CHUNK).max(16)).unwrap_or(usize::MAX);
        Cache {
            chunks: Quick::with_weighter(items, capacity.max(1), ByBytes),
            answers: tokio::sync::watch::channel(0).0,
            volumes: Mutex::new(HashMap::new()),
            next_id: Mutex::new(0),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RecordKey, VolumeState>> {
        self.volumes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh_id(&self) -> u64 {
        let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    }

    fn state<'a>(
        &self,
        map: &'a mut HashMap<RecordKey, VolumeState>,
        key: &RecordKey,
    ) -> &'a mut VolumeState {
        map.entry(key.clone()).or_insert_with(|| VolumeState {
            id: self.fresh_id(),
            epoch: 0,
            expires: None,
            asking: false,
            retry_at: None,
            read_at: None,
        })
    }

    /// A ticket for a read of `key` starting now: `None` without a valid lease (nothing of the
    /// volume may be served from or put into the cache).
    pub(crate) fn ticket(&self, key: &RecordKey) -> Option<Ticket> {
        if self.capacity == 0 {
            return None;
        }
        let now = Instant::now();
        let mut map = self.lock();
        let s = self.state(&mut map, key);
        s.read_at = Some(now);
        match s.expires {
            Some(t) if t > now => Some(Ticket {
                id: s.id,
                epoch: s.epoch,
            }),
            Some(_) => {
                // Run out: forget what was cached under it.
                s.expires = None;
                s.id = self.fresh_id();
                None
            }
            None => None,
        }
    }

    /// The bytes of `span` when every chunk of it is cached (a ticket was taken first).
    pub(crate) fn get(&self, span: &Span) -> Option<Bytes> {
        let id = self.lock().get(&span.key)?.id;
        let first = span.off / CHUNK;
        let last = (span.off + span.len).div_ceil(CHUNK);
        if last - first == 1 {
            let c = self.chunks.get(&(id, first))?;
            let from = (span.off - first * CHUNK) as usize;
            return c
                .get(from..from + span.len as usize)
                .map(|b| c.slice_ref(b));
        }
        let mut out = BytesMut::with_capacity(span.len as usize);
        for i in first..last {
            let c = self.chunks.get(&(id, i))?;
            let lo = span.off.max(i * CHUNK) - i * CHUNK;
            let hi = (span.off + span.len).min((i + 1) * CHUNK) - i * CHUNK;
            out.extend_from_slice(c.get(lo as usize..hi as usize)?);
        }
        Some(out.freeze())
    }

    /// Keeps the whole chunks of `data` (the bytes of `span`), if the lease still holds and no
    /// invalidation of the volume came since `ticket` was taken.
    ///
    /// Each chunk is a copy of its bytes, made before the lock is taken: a slice of `data` would
    /// keep the whole read's buffer (up to 4 MiB) alive as long as any one of its chunks stays,
    /// and the cache would hold far more memory than its weight says.
    pub(crate) fn insert(&self, span: &Span, data: Bytes, ticket: Ticket) {
        let first = span.off.div_ceil(CHUNK);
        let last = (span.off + span.len) / CHUNK;
        let chunks: Vec<(u64, Bytes)> = (first..last)
            .filter_map(|i| {
                let from = (i * CHUNK - span.off) as usize;
                let bytes = data.get(from..from + CHUNK as usize)?;
                Some((i, Bytes::copy_from_slice(bytes)))
            })
            .collect();
        let map = self.lock();
        let Some(s) = map.get(&span.key) else {
            return;
        };
        let valid = s.expires.is_some_and(|t| t > Instant::now());
        if !valid || s.id != ticket.id || s.epoch != ticket.epoch {
            tracing::debug!(volume = %span.key.name, valid, id = s.id, epoch = s.epoch, ?ticket, "read not cached");
            return;
        }
        for (i, chunk) in chunks {
            self.chunks.insert((s.id, i), chunk);
        }
    }

    /// Drops what is cached of `[off, off + len)` of `key`; reads already asking the owner will
    /// not keep what they get.
    pub(crate) fn invalidate(&self, key: &RecordKey, off: u64, len: u64) {
        let mut map = self.lock();
        let Some(s) = map.get_mut(key) else {
            return;
        };
        s.epoch += 1;
        let first = off / CHUNK;
        let last = off.saturating_add(len).div_ceil(CHUNK);
        if last - first > 1 << 16 {
            s.id = self.fresh_id();
            return;
        }
        for i in first..last {
            self.chunks.remove(&(s.id, i));
        }
    }

    /// Drops everything of `key` and the lease.
    pub(crate) fn revoke(&self, key: &RecordKey) {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(key) {
            s.epoch += 1;
            s.expires = None;
            s.id = self.fresh_id();
        }
    }

    /// What a read without a ticket does about the lease of `key`: ask for one (this read
    /// sends the request), wait for the answer to one on its way, or neither (no cache, or
    /// the last request failed a moment ago). With a valid lease that is past half its
    /// length, [`Lease::Ask`] renews it ahead.
    pub(crate) fn lease_step(&self, key: &RecordKey, ttl: Duration) -> Lease {
        if self.capacity == 0 {
            return Lease::Neither;
        }
        let now = Instant::now();
        let mut map = self.lock();
        let s = self.state(&mut map, key);
        if s.asking {
            return Lease::Wait;
        }
        if s.expires.is_some_and(|t| t > now + ttl / 2) || s.retry_at.is_some_and(|t| t > now) {
            return Lease::Neither;
        }
        s.asking = true;
        Lease::Ask
    }

    /// Answers to lease requests from now on ([`Cache::lease_step`]'s `Wait`: take this
    /// before the step, then wait for a change).
    pub(crate) fn answers(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut rx = self.answers.subscribe();
        rx.mark_unchanged();
        rx
    }

    /// The owner's answer to a lease request sent at `sent`: granted for `ttl` (zero: refused).
    pub(crate) fn leased(&self, key: &RecordKey, sent: Instant, ttl: Duration) {
        let mut map = self.lock();
        let s = self.state(&mut map, key);
        s.asking = false;
        self.answers.send_modify(|n| *n += 1);
        if ttl.is_zero() {
            s.retry_at = Some(Instant::now() + Duration::from_secs(1));
            return;
        }
        // A little less than granted: the two clocks may run at slightly different rates.
        let until = sent + ttl.mul_f64(0.95);
        if s.expires.is_none_or(|t| t <= Instant::now()) {
            // The lease had run out before this answer came (a renewal that took long, or the
            // first lease): the owner may have acknowledged writes meanwhile without telling
            // this controller, so nothing cached under the old lease may be served again.
            s.id = self.fresh_id();
            s.epoch += 1;
        }
        if s.expires.is_none_or(|t| t < until) {
            s.expires = Some(until);
        }
    }

    /// A lease request that got no answer.
    pub(crate) fn ask_failed(&self, key: &RecordKey) {
        if let Some(s) = self.lock().get_mut(key) {
            s.asking = false;
            s.retry_at = Some(Instant::now() + Duration::from_secs(1));
        }
        self.answers.send_modify(|n| *n += 1);
    }

    /// Forgets a volume that is no longer served.
    pub(crate) fn forget(&self, key: &RecordKey) {
        self.lock().remove(key);
    }

    /// Whether a read of `key` asked for a ticket within `within`.
    pub(crate) fn read_within(&self, key: &RecordKey, within: Duration) -> bool {
        self.lock()
            .get(key)
            .and_then(|s| s.read_at)
            .is_some_and(|t| t.elapsed() <= within)
    }

    /// The number of the lease held for `key` now, if one is.
    pub(crate) fn lease_id(&self, key: &RecordKey) -> Option<u64> {
        self.lock()
            .get(key)
            .filter(|s| s.expires.is_some_and(|t| t > Instant::now()))
            .map(|s| s.id)
    }

    /// Whether a lease is held for `key` now.
    pub(crate) fn holds(&self, key: &RecordKey) -> bool {
        self.lock()
            .get(key)
            .and_then(|s| s.expires)
            .is_some_and(|t| t > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::Wwn;

    use super::*;
    use crate::model::VolumeName;

    fn key() -> RecordKey {
        RecordKey {
            owner: Wwn::from_u64(0x2300_0000_0001_0001),
            name: VolumeName::new("v").unwrap(),
        }
    }

    fn data(len: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_add(seed))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn test_nothing_without_a_lease() {
        let c = Cache::new(1 << 20);
        assert!(c.ticket(&key()).is_none());
        let ttl = Duration::from_secs(3);
        assert_eq!(c.lease_step(&key(), ttl), Lease::Ask);
        assert_eq!(
            c.lease_step(&key(), ttl),
            Lease::Wait,
            "one request at a time"
        );
        c.ask_failed(&key());
        assert_eq!(
            c.lease_step(&key(), ttl),
            Lease::Neither,
            "a failed request backs off"
        );
        c.leased(&key(), Instant::now(), ttl);
        assert!(c.ticket(&key()).is_some());
        assert_eq!(c.lease_step(&key(), ttl), Lease::Neither, "fresh");
        let before = c.ticket(&key()).unwrap();
        // An older answer (sent earlier) neither shortens the lease nor drops the cache.
        c.leased(&key(), Instant::now() - ttl / 2, ttl);
        let after = c.ticket(&key()).unwrap();
        assert_eq!((after.id, after.epoch), (before.id, before.epoch));
        assert_eq!(c.lease_step(&key(), ttl), Lease::Neither, "still fresh");
    }

    /// A renewal whose answer comes after the lease ran out (the owner may have forgotten this
    /// holder and acknowledged writes without telling it) does not bring back what was cached.
    #[test]
    fn test_a_late_renewal_does_not_revive_the_cache() {
        let c = Cache::new(1 << 20);
        // Long enough that a busy machine does not let it run out before the first steps.
        let ttl = Duration::from_millis(400);
        c.leased(&key(), Instant::now(), ttl);
        let t = c.ticket(&key()).unwrap();
        let s = Span::new(key(), 0, 4096);
        c.insert(&s, data(4096, 7), t);
        assert!(c.get(&s).is_some());
        let sent = Instant::now();
        std::thread::sleep(ttl * 2);
        // A renewal sent while the lease held, answered after it ran out.
        c.leased(&key(), sent, ttl * 100);
        let again = c.ticket(&key()).expect("the new lease");
        assert_ne!(again.id, t.id);
        assert!(
            c.get(&s).is_none(),
            "data cached under the old lease came back"
        );
    }

    #[test]
    fn test_hit_after_insert_and_partial_chunks() {
        let c = Cache::new(1 << 20);
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        let t = c.ticket(&key()).unwrap();
        let s = Span::new(key(), 0, 16384);
        let d = data(16384, 1);
        c.insert(&s, d.clone(), t);
        assert_eq!(c.get(&s).unwrap(), d);
        assert_eq!(
            c.get(&Span::new(key(), 4096 + 512, 1024)).unwrap(),
            d.slice(4608..5632)
        );
        assert!(
            c.get(&Span::new(key(), 12288, 8192)).is_none(),
            "past what was read"
        );
        // A read not chunk-aligned keeps its whole chunks only.
        c.insert(&Span::new(key(), 20480 - 512, 4608), data(4608, 2), t);
        assert!(c.get(&Span::new(key(), 20480, 4096)).is_some());
    }

    #[test]
    fn test_invalidation_beats_a_read_in_flight() {
        let c = Cache::new(1 << 20);
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        let s = Span::new(key(), 0, 8192);
        c.insert(&s, data(8192, 1), c.ticket(&key()).unwrap());
        let t = c.ticket(&key()).unwrap();
        c.invalidate(&key(), 4096, 512);
        assert!(c.get(&s).is_none());
        assert!(
            c.get(&Span::new(key(), 0, 4096)).is_some(),
            "other chunks stay"
        );
        c.insert(&s, data(8192, 9), t);
        assert!(
            c.get(&s).is_none(),
            "data that may predate the write is not kept"
        );
    }

    #[test]
    fn test_revoke_and_expiry_drop_everything() {
        let c = Cache::new(1 << 20);
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        let s = Span::new(key(), 0, 4096);
        c.insert(&s, data(4096, 1), c.ticket(&key()).unwrap());
        c.revoke(&key());
        assert!(c.ticket(&key()).is_none());
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        c.ticket(&key()).unwrap();
        assert!(c.get(&s).is_none());
        c.leased(
            &key(),
            Instant::now() - Duration::from_secs(10),
            Duration::from_secs(3),
        );
        let k2 = RecordKey {
            name: VolumeName::new("w").unwrap(),
            ..key()
        };
        c.leased(
            &k2,
            Instant::now() - Duration::from_secs(10),
            Duration::from_secs(3),
        );
        assert!(c.ticket(&k2).is_none(), "an old grant is no lease");
    }

    #[test]
    fn test_reads_are_remembered() {
        let c = Cache::new(1 << 20);
        assert!(!c.read_within(&key(), Duration::from_secs(30)));
        assert!(c.ticket(&key()).is_none());
        assert!(
            c.read_within(&key(), Duration::from_secs(30)),
            "a read without a lease counts"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(!c.read_within(&key(), Duration::from_millis(1)));
    }

    #[test]
    fn test_a_chunk_does_not_pin_the_read() {
        let c = Cache::new(1 << 20);
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        let d = data(65536, 4);
        let t = c.ticket(&key()).unwrap();
        c.insert(&Span::new(key(), 0, 65536), d.clone(), t);
        let hit = c.get(&Span::new(key(), 8192, 4096)).unwrap();
        assert_eq!(hit, d.slice(8192..12288));
        let whole = d.as_ptr_range();
        assert!(
            !whole.contains(&hit.as_ptr()),
            "the cached chunk is a slice of the 64 KiB read, which it keeps alive"
        );
    }

    #[test]
    fn test_bounded() {
        let c = Cache::new(64 * 1024);
        c.leased(&key(), Instant::now(), Duration::from_secs(3));
        let t = c.ticket(&key()).unwrap();
        c.insert(&Span::new(key(), 0, 1 << 20), data(1 << 20, 3), t);
        assert!(c.chunks.weight() <= 64 * 1024);
    }
}
