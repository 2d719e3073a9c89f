//! Arrays that left the fabric. A fabric discards frames it cannot deliver (FC-FS-4, class 3),
//! so a command to an array that is gone would fail only at its time-out (30 s) — after the
//! controller's own target has given up on the host's command (20 s responder time-out), and
//! so the host would see a failure even where another copy holds the data. Here the array's
//! going is noticed when it happens instead: on every RSCN (FC-LS-3 §4.2.27) the controller
//! asks the name server (GID_PN) for each array of the mapping that the RSCN covers, and one
//! the name server no longer knows is *lost* until it is back. A command to a lost array fails
//! at once, and one running when its array is lost fails then, as unreachable: a write that
//! another copy holds is acknowledged once the lost copy has left the mapping, a read goes to
//! the other copy.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use fc_frames::ct::ns::{NsAccept, NsRequest, NsResponseBody};
use fc_frames::els::RscnPage;
use fc_frames::{FcId, Wwn};
use fc_node::node::NodeEvent;
use tokio::sync::{broadcast, watch};

use crate::driver::Shared;

/// The arrays lost now.
#[derive(Debug)]
pub(crate) struct Lost {
    ports: Mutex<HashSet<Wwn>>,
    changed: watch::Sender<u64>,
}

impl Default for Lost {
    fn default() -> Lost {
        Lost {
            ports: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl Lost {
    fn ports(&self) -> std::sync::MutexGuard<'_, HashSet<Wwn>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether array `port` is lost.
    pub(crate) fn is_lost(&self, port: Wwn) -> bool {
        self.ports().contains(&port)
    }

    fn set(&self, port: Wwn, lost: bool) {
        let changed = if lost {
            self.ports().insert(port)
        } else {
            self.ports().remove(&port)
        };
        if changed {
            if lost {
                tracing::warn!(array = %port, "array left the fabric; its commands fail now");
            } else {
                tracing::info!(array = %port, "array is back in the fabric");
            }
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Every array lost now.
    pub(crate) fn all(&self) -> HashSet<Wwn> {
        self.ports().clone()
    }

    /// Resolves once array `port` is lost (at once if it is).
    pub(crate) async fn wait(&self, port: Wwn) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.is_lost(port) {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Watches the RSCNs of the controller's node for the whole of its life.
pub(crate) async fn watch(shared: Weak<Shared>) {
    let mut events = match shared.upgrade() {
        Some(s) => s.node.events(),
        None => return,
    };
    loop {
        let pages = match events.recv().await {
            Ok(NodeEvent::Rscn(pages)) => Some(pages),
            Ok(_) => continue,
            // Missed some: check every array.
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        check(&shared, pages.as_deref()).await;
    }
}

/// Asks the name server for every array of the mapping, and every port logged in with, that
/// `pages` cover (every one for `None`), and for every lost one.
async fn check(shared: &Arc<Shared>, pages: Option<&[RscnPage]>) {
    let arrays: BTreeMap<Wwn, FcId> = {
        let inner = shared.lock();
        let mut a = BTreeMap::new();
        for rec in inner.core.records() {
            for row in rec.body.iter().flat_map(|b| b.rows.iter()) {
                a.insert(row.real.array, row.real.array_id);
            }
        }
        for v in &inner.real {
            a.insert(v.array, v.array_id);
        }
        a
    };
    // And the arrays of the replicas being synchronized (the mapping does not list them yet),
    // and every port this node is logged in with.
    let mut arrays = arrays;
    for (_, v) in shared.io.volumes() {
        let syncing = v.syncing.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for row in syncing.iter().flat_map(|s| s.rows.iter()) {
            arrays.insert(row.real.array, row.real.array_id);
        }
    }
    for s in shared.node.sessions() {
        arrays.entry(s.port_name).or_insert(s.port_id);
    }
    let io = &shared.io;
    for (port, id) in arrays {
        let lost = io.lost.is_lost(port);
        let covered =
            pages.is_none_or(|p| p.iter().any(|page| page.format.covers(page.affected, id)));
        if !lost && !covered {
            continue;
        }
        match shared.node.name_server(&NsRequest::gid_pn(port)).await {
            Ok(r) => match r.body {
                NsResponseBody::Accept(NsAccept::GidPn(_)) => io.lost.set(port, false),
                _ => io.lost.set(port, true),
            },
            // No answer says nothing about the array.
            Err(e) => tracing::debug!(array = %port, error = %e, "GID_PN failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_wait_ends_when_lost() {
        let lost = Arc::new(Lost::default());
        let a = Wwn::from_u64(0x2200_0000_0000_0001);
        let b = Wwn::from_u64(0x2200_0000_0000_0002);
        let waiter = tokio::spawn({
            let lost = lost.clone();
            async move { lost.wait(a).await }
        });
        lost.set(b, true);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        lost.set(a, true);
        waiter.await.unwrap();
        assert!(lost.is_lost(a));
        lost.set(a, false);
        assert!(!lost.is_lost(a));
        // Lost already: at once.
        lost.wait(b).await;
    }
}
