//! Per-volume I/O counters: what a forwarding controller saved on the WAN, what the owner's
//! copies served.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Counters of one volume at one controller (atomics: commands update them concurrently).
#[derive(Debug, Default)]
pub(crate) struct VolumeCounters {
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) read_bytes: AtomicU64,
    pub(crate) write_bytes: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) wan_bytes: AtomicU64,
    pub(crate) wan_bytes_saved: AtomicU64,
    pub(crate) replica_reads: AtomicU64,
    pub(crate) route_changes: AtomicU64,
}

/// A snapshot of a volume's counters at one controller (the management API's
/// `GET /v1/volumes/{name}/io`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    /// READ commands served.
    pub reads: u64,
    /// WRITE commands served.
    pub writes: u64,
    /// Bytes read by hosts.
    pub read_bytes: u64,
    /// Bytes written by hosts.
    pub write_bytes: u64,
    /// Reads served from this controller's remote-read cache.
    pub cache_hits: u64,
    /// Reads of a remote volume that went to its owner.
    pub cache_misses: u64,
    /// Invalidations received from the owner (or sent, at the owner).
    pub invalidations: u64,
    /// Bytes moved to or from the owner through the gateways.
    pub wan_bytes: u64,
    /// Bytes the cache kept off the WAN.
    pub wan_bytes_saved: u64,
    /// Reads served by a replica (load switching, a failed primary, a direct route).
    pub replica_reads: u64,
    /// Load switches: the owner moving reads to the replica and back.
    pub route_changes: u64,
}

impl VolumeCounters {
    pub(crate) fn snapshot(&self) -> IoCounters {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoCounters {
            reads: g(&self.reads),
            writes: g(&self.writes),
            read_bytes: g(&self.read_bytes),
            write_bytes: g(&self.write_bytes),
            cache_hits: g(&self.hits),
            cache_misses: g(&self.misses),
            invalidations: g(&self.invalidations),
            wan_bytes: g(&self.wan_bytes),
            wan_bytes_saved: g(&self.wan_bytes_saved),
            replica_reads: g(&self.replica_reads),
            route_changes: g(&self.route_changes),
        }
    }
}
