//! The controller's database: its [`Durable`] state in a redb file. Each batch of
//! [`Persist`]s the core hands out is written in one write transaction, committed with
//! redb's default durability (fsync before `commit` returns), so a controller killed at any
//! instant restarts from a state the core once had, and nothing it sent or acknowledged
//! depended on a change the database lacks.
//!
//! Records are kept in the wire encoding of [`crate::wire::codec`] (one format to read in
//! dumps and captures alike).

use std::path::{Path, PathBuf};

use fc_frames::Wwn;
use redb::{Database, ReadableTable, TableDefinition};

use crate::core::{Durable, Persist};
use crate::model::{Record, Stamp};
use crate::wire::codec::{decode_record, encode_record};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key: owner WWPN (8 bytes) + name.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// Owner WWPN → (generation, version).
const VERSIONS: TableDefinition<u64, (u32, u64)> = TableDefinition::new("versions");
/// Own version → record.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Peer WWPN → acknowledged own (generation, version).
const ACKED: TableDefinition<u64, (u32, u64)> = TableDefinition::new("acked");

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb could not open, read or write it.
    #[error("database {}: {source}", path.display())]
    Db {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record in it does not decode.
    #[error("database {}: a record does not decode: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

fn record_key(r: &Record) -> Vec<u8> {
    let mut k = r.key.owner.0.to_vec();
    k.extend_from_slice(r.key.name.as_str().as_bytes());
    k
}

impl Store {
    /// Opens (or creates) the database at `path` and reads what it holds.
    pub fn open(path: &Path) -> Result<(Store, Durable), StoreError> {
        let err = |e: redb::Error| StoreError::Db {
            path: path.to_owned(),
            source: Box::new(e),
        };
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let store = Store {
            db,
            path: path.to_owned(),
        };
        // Create every table, so that a fresh database reads as empty.
        store.commit(&[])?;
        let durable = store.load().map_err(|e| match e {
            LoadError::Db(e) => err(*e),
            LoadError::Corrupt(reason) => StoreError::Corrupt {
                path: path.to_owned(),
                reason,
            },
        })?;
        Ok((store, durable))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Durable, LoadError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        let mut d = Durable::default();
        let meta = tx
            .open_table(META)
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        if let Some(g) = meta
            .get("generation")
            .map_err(|e| LoadError::Db(Box::new(e.into())))?
        {
            d.generation = u32::try_from(g.value()).unwrap_or(u32::MAX);
        }
        if let Some(r) = meta
            .get("regaining")
            .map_err(|e| LoadError::Db(Box::new(e.into())))?
        {
            d.regaining = r.value() != 0;
        }
        let records = tx
            .open_table(RECORDS)
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        for row in records
            .iter()
            .map_err(|e| LoadError::Db(Box::new(e.into())))?
        {
            let (_, v) = row.map_err(|e| LoadError::Db(Box::new(e.into())))?;
            let r = decode_record(v.value()).map_err(|e| LoadError::Corrupt(e.to_string()))?;
            d.records.insert(r.key.clone(), r);
        }
        let versions = tx
            .open_table(VERSIONS)
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        for row in versions
            .iter()
            .map_err(|e| LoadError::Db(Box::new(e.into())))?
        {
            let (k, v) = row.map_err(|e| LoadError::Db(Box::new(e.into())))?;
            let (g, n) = v.value();
            d.versions.raise(Wwn::from_u64(k.value()), Stamp::new(g, n));
        }
        let log = tx
            .open_table(LOG)
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        for row in log.iter().map_err(|e| LoadError::Db(Box::new(e.into())))? {
            let (k, v) = row.map_err(|e| LoadError::Db(Box::new(e.into())))?;
            let r = decode_record(v.value()).map_err(|e| LoadError::Corrupt(e.to_string()))?;
            d.log.insert(k.value(), r);
        }
        let acked = tx
            .open_table(ACKED)
            .map_err(|e| LoadError::Db(Box::new(e.into())))?;
        for row in acked
            .iter()
            .map_err(|e| LoadError::Db(Box::new(e.into())))?
        {
            let (k, v) = row.map_err(|e| LoadError::Db(Box::new(e.into())))?;
            let (g, n) = v.value();
            d.acked.insert(Wwn::from_u64(k.value()), Stamp::new(g, n));
        }
        Ok(d)
    }

    /// Writes `batch` in one transaction and waits until it is durable.
    pub fn commit(&self, batch: &[Persist]) -> Result<(), StoreError> {
        self.write(batch).map_err(|source| StoreError::Db {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&self, batch: &[Persist]) -> Result<(), Box<redb::Error>> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut meta = tx.open_table(META).map_err(db)?;
            let mut records = tx.open_table(RECORDS).map_err(db)?;
            let mut versions = tx.open_table(VERSIONS).map_err(db)?;
            let mut log = tx.open_table(LOG).map_err(db)?;
            let mut acked = tx.open_table(ACKED).map_err(db)?;
            for p in batch {
                match p {
                    Persist::Generation(g) => {
                        meta.insert("generation", u64::from(*g)).map_err(db)?;
                        meta.insert("regaining", 1).map_err(db)?;
                        log.retain(|_, _| false).map_err(db)?;
                    }
                    Persist::Apply {
                        records: rs,
                        versions: vs,
                        log: ls,
                    } => {
                        for r in rs {
                            records
                                .insert(record_key(r).as_slice(), encode_record(r).as_slice())
                                .map_err(db)?;
                        }
                        for (o, s) in vs {
                            let old = versions
                                .get(o.to_u64())
                                .map_err(db)?
                                .map(|v| {
                                    let (g, n) = v.value();
                                    Stamp::new(g, n)
                                })
                                .unwrap_or(Stamp::ZERO);
                            if *s > old {
                                versions
                                    .insert(o.to_u64(), (s.generation, s.version))
                                    .map_err(db)?;
                            }
                        }
                        for r in ls {
                            log.insert(r.stamp.version, encode_record(r).as_slice())
                                .map_err(db)?;
                        }
                    }
                    Persist::Regained => {
                        meta.insert("regaining", 0).map_err(db)?;
                    }
                    Persist::Acked { peer, stamp } => {
                        acked
                            .insert(peer.to_u64(), (stamp.generation, stamp.version))
                            .map_err(db)?;
                    }
                    Persist::Truncate { through } => {
                        let through = *through;
                        log.retain(|k, _| k > through).map_err(db)?;
                    }
                }
            }
        }
        tx.commit().map_err(db)?;
        Ok(())
    }
}

fn db<E: Into<redb::Error>>(e: E) -> Box<redb::Error> {
    Box::new(e.into())
}

enum LoadError {
    Db(Box<redb::Error>),
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ControllerRef, MapRow, MediaType, RealExtent, RecordKey, VolumeBody, VolumeName,
        VolumeState,
    };
    use fc_frames::FcId;

    fn record(owner: u64, name: &str, version: u64, live: bool) -> Record {
        Record {
            key: RecordKey {
                owner: Wwn::from_u64(owner),
                name: VolumeName::new(name).unwrap(),
            },
            stamp: Stamp::new(3, version),
            body: live.then(|| VolumeBody {
                owner: ControllerRef {
                    name: "a".into(),
                    wwpn: Wwn::from_u64(owner),
                    fc_id: FcId::from_parts(1, 2, 3),
                    site: "A".into(),
                },
                local_name: name.into(),
                capacity: 1 << 20,
                state: VolumeState::Online,
                claimed_at: 17,
                media: MediaType::Ssd,
                rows: vec![MapRow {
                    virtual_start: 0,
                    real: RealExtent {
                        array: Wwn::from_u64(9),
                        array_id: FcId::from_parts(1, 0, 9),
                        lun: 0,
                        start: 2048,
                        blocks: 2048,
                        block_size: 512,
                    },
                    copy: 0,
                }],
                masking: Vec::new(),
            }),
        }
    }

    /// What a batch does in memory is what the database holds after reopening.
    #[test]
    fn test_reopen_equals_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.redb");
        let (store, d0) = Store::open(&path).unwrap();
        assert_eq!(d0, Durable::default());
        let mut mem = Durable::default();
        let batches = vec![
            vec![Persist::Generation(3)],
            vec![Persist::Apply {
                records: vec![record(1, "v1", 1, true), record(2, "v2", 1, true)],
                versions: vec![(Wwn::from_u64(1), Stamp::new(3, 1))],
                log: vec![record(1, "v1", 1, true)],
            }],
            vec![
                Persist::Apply {
                    records: vec![record(1, "v1", 2, false)],
                    versions: vec![(Wwn::from_u64(1), Stamp::new(3, 2))],
                    log: vec![record(1, "v1", 2, false)],
                },
                Persist::Acked {
                    peer: Wwn::from_u64(2),
                    stamp: Stamp::new(3, 1),
                },
                Persist::Truncate { through: 1 },
                Persist::Regained,
            ],
        ];
        for b in &batches {
            store.commit(b).unwrap();
            for p in b {
                mem.apply(p);
            }
        }
        drop(store);
        let (_, d1) = Store::open(&path).unwrap();
        assert_eq!(d1, mem);
        assert_eq!(d1.log.len(), 1);
        assert!(d1.records.values().any(|r| r.is_tombstone()));
    }

    #[test]
    fn test_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-db");
        std::fs::write(&path, b"this is not a redb file at all, not even close").unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(e.to_string().contains("not-a-db"), "{e}");
    }
}
