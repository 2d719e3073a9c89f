//! What a controller keeps durable, and the changes to it ([`Persist`]) the core hands its
//! driver to commit — each one transaction — before it sends or acknowledges anything that
//! depends on it.

use std::collections::BTreeMap;

use fc_frames::Wwn;

use crate::model::{Record, RecordKey, Stamp, VersionVector};

/// A controller's durable state: what its database holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    /// This controller's generation; 0 in a database never used (or lost).
    pub generation: u32,
    /// The common mapping: every record, live or tombstone, of every owner.
    pub records: BTreeMap<RecordKey, Record>,
    /// Per owner, the highest stamp applied (this controller's own included).
    pub versions: VersionVector,
    /// This controller's own changes not yet acknowledged by every peer that is up, by
    /// version (of the current generation): what must still be sent.
    pub log: BTreeMap<u64, Record>,
    /// Per peer, the highest own stamp it acknowledged.
    pub acked: BTreeMap<Wwn, Stamp>,
    /// Since the last new generation, not every known peer has answered a pull for all of
    /// this controller's own records (what a lost database held comes back from them).
    pub regaining: bool,
}

/// One change to the durable state: one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persist {
    /// A new generation (after the database was lost, or on first start).
    Generation(u32),
    /// Records applied (own or a peer's), vector entries raised, own changes logged.
    Apply {
        /// Records written (replacing the record of the same key).
        records: Vec<Record>,
        /// Vector entries raised.
        versions: Vec<(Wwn, Stamp)>,
        /// Own changes to keep until every up peer acknowledged them.
        log: Vec<Record>,
    },
    /// A peer acknowledged own changes up to a stamp.
    Acked {
        /// The peer.
        peer: Wwn,
        /// What it has.
        stamp: Stamp,
    },
    /// Own log entries up to and including this version are no longer needed.
    Truncate {
        /// The last version removed.
        through: u64,
    },
    /// Every known peer has answered a pull for all own records since the new generation.
    Regained,
}

impl Durable {
    /// Applies `p` (what a store does in its transaction, in memory).
    pub fn apply(&mut self, p: &Persist) {
        match p {
            Persist::Generation(g) => {
                self.generation = *g;
                self.log.clear();
                self.regaining = true;
            }
            Persist::Regained => self.regaining = false,
            Persist::Apply {
                records,
                versions,
                log,
            } => {
                for r in records {
                    self.records.insert(r.key.clone(), r.clone());
                }
                for (o, s) in versions {
                    self.versions.raise(*o, *s);
                }
                for r in log {
                    self.log.insert(r.stamp.version, r.clone());
                }
            }
            Persist::Acked { peer, stamp } => {
                let e = self.acked.entry(*peer).or_insert(Stamp::ZERO);
                if *stamp > *e {
                    *e = *stamp;
                }
            }
            Persist::Truncate { through } => {
                self.log = self.log.split_off(&(through + 1));
            }
        }
    }
}
