//! An in-memory [`Management`] backend for the tests of the HTTP layer and of `fcsan volume`
//! (shared by path with the root crate's `tests/volume_cli.rs`): controller `ctl-a` on site `a`
//! with three real volumes, the volumes of PATENT.md's figure 4 example (`vol1` with a replica
//! on this site, `vol2` owned by `ctl-b` on site `b`), two peers and a few counters. Builds take
//! space from the first real volume of the type with room (a bump allocator: a delete does not
//! give space back); `fail_next` makes the next build, delete, replica or masking change fail
//! with the error put there. A replica added stays syncing, half copied, at 100 MiB/s.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use controller::api::views::{
    CountersView, FoundView, FreeView, MapRowView, PeerState, PeerView, RealVolumeView,
    RealVolumesView, ReplicaPhase, ReplicaState, UseView, VersionView, VolumeIoView, VolumeView,
};
use controller::api::{ApiError, BuildSpec, Management, MaskingSpec, ReplicaSpec};
use controller::io::IoCounters;
use controller::model::{MediaType, VolumeName, VolumeState};
use fc_frames::{FcId, Wwn};

pub const CTL_A: Wwn = Wwn::from_u64(0x2000_0025_b50a_0001);
pub const CTL_B: Wwn = Wwn::from_u64(0x2000_0025_b50b_0001);
pub const CTL_C: Wwn = Wwn::from_u64(0x2000_0025_b50c_0001);

/// A real volume of site `a`.
struct Lun {
    array: Wwn,
    fc_id: u32,
    lun: u64,
    media: MediaType,
    blocks: u64,
    block_size: u32,
    /// The first block not given out.
    next: u64,
}

struct State {
    volumes: BTreeMap<VolumeName, VolumeView>,
    luns: Vec<Lun>,
    built: u32,
    /// Replicas being made: volume → (copy, rows).
    syncing: BTreeMap<VolumeName, (u8, Vec<MapRowView>)>,
}

pub struct Memory {
    state: Mutex<State>,
    /// The error the next build or delete answers instead of doing it.
    pub fail_next: Mutex<Option<ApiError>>,
}

fn fc(id: u32) -> FcId {
    FcId::try_new(id).expect("a test address")
}

fn name(s: &str) -> VolumeName {
    VolumeName::new(s).expect("a test name")
}

fn row(lun: &Lun, virtual_start: u64, start: u64, blocks: u64, copy: u8) -> MapRowView {
    MapRowView {
        virtual_start,
        sectors: blocks * u64::from(lun.block_size) / 512,
        array: lun.array,
        array_fc_id: fc(lun.fc_id),
        lun: lun.lun,
        real_start: start,
        blocks,
        block_size: lun.block_size,
        copy,
    }
}

impl Memory {
    pub fn new() -> Arc<Memory> {
        let mut luns = vec![
            Lun {
                array: Wwn::from_u64(0x5006_0e80_0000_0a01),
                fc_id: 0x01_13_00,
                lun: 0,
                media: MediaType::Ssd,
                blocks: (64 << 20) / 512,
                block_size: 512,
                next: 0,
            },
            Lun {
                array: Wwn::from_u64(0x5006_0e80_0000_0a02),
                fc_id: 0x02_1a_00,
                lun: 3,
                media: MediaType::FastHdd,
                blocks: (120 << 20) / 512,
                block_size: 512,
                next: 0,
            },
            Lun {
                array: Wwn::from_u64(0x5006_0e80_0000_0a03),
                fc_id: 0x05_1c_00,
                lun: 8,
                media: MediaType::FastHdd,
                blocks: (50 << 20) / 4096,
                block_size: 4096,
                next: 0,
            },
        ];
        // vol1: 8 MiB of fast disk on 021a00 LUN 3, its replica on 051c00 LUN 8.
        let vol1_rows = vec![row(&luns[1], 0, 0, 16384, 0), row(&luns[2], 0, 0, 2048, 1)];
        luns[1].next = 16384;
        luns[2].next = 2048;
        let vol1 = VolumeView {
            name: name("vol1"),
            owner: "ctl-a".into(),
            owner_wwpn: CTL_A,
            owner_fc_id: fc(0x01_02_00),
            site: "a".into(),
            local_name: "A-0001".into(),
            capacity: 8 << 20,
            media: MediaType::FastHdd,
            state: VolumeState::Online,
            generation: 1,
            version: 3,
            claimed_at: 1_700_000_000_000,
            rows: vol1_rows,
            masking: vec![],
        };
        let vol2_lun = Lun {
            array: Wwn::from_u64(0x5006_0e80_0000_0b01),
            fc_id: 0x06_1f_00,
            lun: 10,
            media: MediaType::Ssd,
            blocks: (300 << 20) / 512,
            block_size: 512,
            next: 0,
        };
        let vol2 = VolumeView {
            name: name("vol2"),
            owner: "ctl-b".into(),
            owner_wwpn: CTL_B,
            owner_fc_id: fc(0x02_02_00),
            site: "b".into(),
            local_name: "B-0001".into(),
            capacity: 16 << 20,
            media: MediaType::Ssd,
            state: VolumeState::Degraded,
            generation: 2,
            version: 5,
            claimed_at: 1_700_000_001_000,
            rows: vec![row(&vol2_lun, 0, 0, 32768, 0)],
            masking: vec![Wwn::from_u64(0x2100_0024_ff00_0001)],
        };
        let volumes = [vol1, vol2]
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect();
        Arc::new(Memory {
            state: Mutex::new(State {
                volumes,
                luns,
                built: 1,
                syncing: BTreeMap::new(),
            }),
            fail_next: Mutex::new(None),
        })
    }

    pub fn fail_next(&self, e: ApiError) {
        *self.fail_next.lock().unwrap() = Some(e);
    }

    /// Volume `name`, when `ctl-a` (this backend) owns it.
    fn owned(&self, name: &VolumeName) -> Result<VolumeView, ApiError> {
        let st = self.state.lock().unwrap();
        let view = st
            .volumes
            .get(name)
            .ok_or_else(|| ApiError::NotFound(name.clone()))?;
        if view.owner != "ctl-a" {
            return Err(ApiError::NotOwner {
                name: name.clone(),
                owner: view.owner.clone(),
            });
        }
        Ok(view.clone())
    }

    fn failure(&self) -> Result<(), ApiError> {
        match self.fail_next.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Management for Memory {
    async fn volumes(&self) -> Vec<VolumeView> {
        self.state
            .lock()
            .unwrap()
            .volumes
            .values()
            .cloned()
            .collect()
    }

    async fn volume(&self, name: &VolumeName) -> Option<VolumeView> {
        self.state.lock().unwrap().volumes.get(name).cloned()
    }

    async fn build(&self, req: BuildSpec) -> Result<VolumeView, ApiError> {
        self.failure()?;
        let mut st = self.state.lock().unwrap();
        let n = st.built + 1;
        let vname = req
            .name
            .clone()
            .unwrap_or_else(|| name(&format!("vol-{n}")));
        if let Some(held) = st.volumes.get(&vname) {
            return Err(ApiError::NameTaken {
                name: vname,
                holder: held.owner.clone(),
            });
        }
        let fits = st.luns.iter().position(|l| {
            l.media == req.media
                && req.capacity % u64::from(l.block_size) == 0
                && (l.blocks - l.next) * u64::from(l.block_size) >= req.capacity
        });
        let Some(i) = fits else {
            let here: u64 = st
                .luns
                .iter()
                .filter(|l| l.media == req.media)
                .map(|l| (l.blocks - l.next) * u64::from(l.block_size))
                .sum();
            return Err(ApiError::Insufficient {
                found: vec![
                    FoundView {
                        site: "a".into(),
                        controller: "ctl-a".into(),
                        media: req.media,
                        bytes: here,
                    },
                    FoundView {
                        site: "b".into(),
                        controller: "ctl-b".into(),
                        media: req.media,
                        bytes: 0,
                    },
                ],
            });
        };
        let lun = &st.luns[i];
        let blocks = req.capacity / u64::from(lun.block_size);
        let rows = vec![row(lun, 0, lun.next, blocks, 0)];
        st.luns[i].next += blocks;
        st.built = n;
        let view = VolumeView {
            name: vname.clone(),
            owner: "ctl-a".into(),
            owner_wwpn: CTL_A,
            owner_fc_id: fc(0x01_02_00),
            site: "a".into(),
            local_name: format!("A-{n:04}"),
            capacity: req.capacity,
            media: req.media,
            state: VolumeState::Online,
            generation: 1,
            version: 3 + u64::from(n),
            claimed_at: 1_700_000_100_000,
            rows,
            masking: vec![],
        };
        st.volumes.insert(vname, view.clone());
        Ok(view)
    }

    async fn delete(&self, name: &VolumeName, keep_in: Option<VolumeName>) -> Result<(), ApiError> {
        self.failure()?;
        let mut st = self.state.lock().unwrap();
        if let Some(keep) = keep_in {
            if !st.volumes.contains_key(&keep) {
                return Err(ApiError::NotFound(keep));
            }
        }
        match st.volumes.remove(name) {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(name.clone())),
        }
    }

    async fn add_replica(
        &self,
        name: &VolumeName,
        spec: ReplicaSpec,
    ) -> Result<ReplicaState, ApiError> {
        self.failure()?;
        let view = self.owned(name)?;
        if self.state.lock().unwrap().syncing.contains_key(name) {
            return Err(ApiError::Busy {
                name: name.clone(),
                reason: "its replica (copy 2) is being synchronized; wait for it".into(),
            });
        }
        let media = spec.media.unwrap_or(view.media);
        if media == MediaType::Tape {
            return Err(ApiError::BadRequest {
                field: "type",
                reason: "a tape cannot hold a replica".into(),
            });
        }
        match spec.site.as_deref() {
            None | Some("a") | Some("b") => {}
            Some("c") => {
                return Err(ApiError::Unreachable {
                    peer: "ctl-c of site c".into(),
                })
            }
            Some(other) => {
                return Err(ApiError::BadRequest {
                    field: "site",
                    reason: format!(
                        "no controller of site {other:?} is known (the sites are a, b)"
                    ),
                })
            }
        }
        let copy = view.rows.iter().map(|r| r.copy).max().unwrap_or(0) + 1;
        let rows: Vec<MapRowView> = view
            .rows
            .iter()
            .filter(|r| r.copy == 0)
            .map(|r| MapRowView {
                copy,
                real_start: r.real_start + (1 << 20),
                ..r.clone()
            })
            .collect();
        self.state
            .lock()
            .unwrap()
            .syncing
            .insert(name.clone(), (copy, rows));
        self.replica(name).await
    }

    async fn replica(&self, name: &VolumeName) -> Result<ReplicaState, ApiError> {
        let st = self.state.lock().unwrap();
        let view = st
            .volumes
            .get(name)
            .ok_or_else(|| ApiError::NotFound(name.clone()))?;
        let copies = view.rows.iter().map(|r| r.copy).max().unwrap_or(0) + 1;
        let mut state = ReplicaState {
            volume: name.clone(),
            state: ReplicaPhase::None,
            copies,
            copy: None,
            copied: 0,
            total: view.capacity,
            rate: 0,
            rate_limit: 100 << 20,
            reason: None,
            rows: Vec::new(),
        };
        if let Some((copy, rows)) = st.syncing.get(name) {
            state.state = ReplicaPhase::Syncing;
            state.copy = Some(*copy);
            state.copied = view.capacity / 2;
            state.rate = 100 << 20;
            state.rows = rows.clone();
        } else if copies > 1 {
            state.state = ReplicaPhase::InSync;
            state.copy = Some(copies - 1);
            state.copied = view.capacity;
            state.rows = view.rows.iter().filter(|r| r.copy > 0).cloned().collect();
        }
        Ok(state)
    }

    async fn volume_io(&self, name: &VolumeName) -> Result<VolumeIoView, ApiError> {
        let replica = self.replica(name).await?;
        Ok(VolumeIoView {
            lun: Some(if name.as_str() == "vol1" { 5 } else { 9 }),
            counters: IoCounters {
                reads: 10,
                writes: 4,
                read_bytes: 10 << 16,
                write_bytes: 4 << 16,
                replica_reads: 3,
                route_changes: 2,
                ..IoCounters::default()
            },
            replica: Some(replica),
        })
    }

    async fn set_masking(
        &self,
        name: &VolumeName,
        spec: MaskingSpec,
    ) -> Result<VolumeView, ApiError> {
        self.failure()?;
        self.owned(name)?;
        let mut st = self.state.lock().unwrap();
        let view = st
            .volumes
            .get_mut(name)
            .ok_or_else(|| ApiError::NotFound(name.clone()))?;
        view.masking = spec.hosts;
        view.version += 1;
        Ok(view.clone())
    }

    async fn real_volumes(&self) -> RealVolumesView {
        let st = self.state.lock().unwrap();
        let volumes = st
            .luns
            .iter()
            .map(|l| RealVolumeView {
                array: l.array,
                array_fc_id: fc(l.fc_id),
                lun: l.lun,
                media: l.media,
                capacity: l.blocks * u64::from(l.block_size),
                block_size: l.block_size,
                vendor: "FCSAN".into(),
                product: "DISK".into(),
                present: true,
                used_by: st
                    .volumes
                    .values()
                    .flat_map(|v| {
                        v.rows
                            .iter()
                            .filter(|r| r.array == l.array && r.lun == l.lun)
                            .map(|r| UseView {
                                volume: v.name.clone(),
                                start: r.real_start,
                                blocks: r.blocks,
                            })
                    })
                    .collect(),
            })
            .collect();
        let free = st
            .luns
            .iter()
            .map(|l| FreeView {
                array: l.array,
                array_fc_id: fc(l.fc_id),
                media: l.media,
                free_bytes: (l.blocks - l.next) * u64::from(l.block_size),
                extents: 1,
            })
            .collect();
        RealVolumesView {
            controller: "ctl-a".into(),
            site: "a".into(),
            volumes,
            free,
        }
    }

    async fn peers(&self) -> Vec<PeerView> {
        let versions = vec![
            VersionView {
                owner: CTL_A,
                owner_name: Some("ctl-a".into()),
                generation: 1,
                version: 3,
            },
            VersionView {
                owner: CTL_B,
                owner_name: Some("ctl-b".into()),
                generation: 2,
                version: 5,
            },
        ];
        vec![
            PeerView {
                name: "ctl-a".into(),
                wwpn: CTL_A,
                fc_id: fc(0x01_02_00),
                site: "a".into(),
                state: PeerState::Myself,
                api: "http://127.0.0.1:7800".into(),
                last_heard_ms: None,
                versions: versions.clone(),
            },
            PeerView {
                name: "ctl-b".into(),
                wwpn: CTL_B,
                fc_id: fc(0x02_02_00),
                site: "b".into(),
                state: PeerState::Up,
                api: "http://127.0.0.1:7801".into(),
                last_heard_ms: Some(420),
                versions,
            },
            PeerView {
                name: "ctl-c".into(),
                wwpn: CTL_C,
                fc_id: fc(0x03_02_00),
                site: "c".into(),
                state: PeerState::Down,
                api: String::new(),
                last_heard_ms: None,
                versions: vec![VersionView {
                    owner: CTL_C,
                    owner_name: None,
                    generation: 1,
                    version: 9,
                }],
            },
        ]
    }

    async fn counters(&self) -> CountersView {
        CountersView {
            counters: [
                ("messages_sent.heartbeat", 120),
                ("messages_sent.update", 4),
                ("rejected.bad-mac", 1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        }
    }
}
