//! Replicas through the controllers, in one process (PATENT.md [0069], [0074]-[0078],
//! [0097]-[0100]): two SANs joined by FCIP gateways, a controller on each, a host on A writing
//! and reading a volume owned by A through A's controller.
//!
//! - A replica is added on site B while four writers keep writing random 64 KiB blocks and
//!   reading them back: no command fails, and at the end the primary's and the replica's real
//!   extents, read straight from the arrays, are identical and hold what was acknowledged.
//! - Load past the threshold moves the owner's reads to the replica, and back once it stops.
//! - The primary's array dies mid-stream: no acknowledged write is lost, no write fails, the
//!   replica becomes copy 0 at every controller, the volume degraded; a new replica brings it
//!   back to two identical copies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use controller::api::views::{ReplicaPhase, ReplicaState};
use controller::api::{BuildSpec, ReplicaSpec};
use controller::io::IoConfig;
use controller::model::{MapRow, MediaType, Record, VolumeState};
use fc_frames::scsi::{Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::{past_attentions, Initiator, ScsiError};
use fc_node::scsi::Tier;
use topology::{ArrayId, ArraySpec, ControllerId, HostId, Running, Topology};

#[path = "support/sites.rs"]
mod sites;
use sites::{controllers_ready, name, wait_for, WAIT};

const MIB: u64 = 1 << 20;
/// The volume's size, and the writers' block.
const VOLUME: u64 = 16 * MIB;
const BLOCK: u64 = 64 * 1024;
const BS: u32 = 512;
const WRITERS: u64 = 4;

/// The system: sites A and B, controllers on both, the host on A; arrays as `arrays` says.
struct San {
    san: Running,
    ctl: [ControllerId; 2],
    host: HostId,
    arrays: Vec<ArrayId>,
}

impl San {
    /// Starts it, the replica copier held to `rate` bytes a second.
    async fn start(dir: &std::path::Path, arrays: &[(&str, bool)], rate: u64) -> San {
        let mut t = Topology::new();
        let a = t.gateway("A", 1);
        let b = t.gateway("B", 2);
        t.link(a, b, 1);
        let arrays = arrays
            .iter()
            .map(|(n, on_a)| {
                let site = if *on_a { a } else { b };
                t.array(site, ArraySpec::new(*n).disk(Tier::Ssd, 48 * MIB))
            })
            .collect();
        t.controller_heartbeat(Duration::from_millis(250));
        t.controller_io(IoConfig {
            switch_outstanding: 2,
            replica_rate: rate,
            ..IoConfig::default()
        });
        let ca = t.controller(a);
        let cb = t.controller(b);
        let host = t.host(a);
        let san = t.start(dir).await.expect("topology starts");
        controllers_ready(&san, &[ca, cb]).await;
        San {
            san,
            ctl: [ca, cb],
            host,
            arrays,
        }
    }

    fn ctl(&self, i: usize) -> &controller::driver::Controller {
        &self.san.controller(self.ctl[i]).controller
    }

    fn record(&self, i: usize, vol: &str) -> Option<Record> {
        self.ctl(i).inspect(|core| core.volume(&name(vol)).cloned())
    }

    /// The host's initiator and the N_Port_ID of port `wwpn` (a controller or an array).
    async fn port(&self, wwpn: Wwn) -> (Initiator, FcId) {
        let init = self.san.host(self.host).initiator.clone();
        let start = Instant::now();
        loop {
            if let Some(t) = init
                .node()
                .targets()
                .into_iter()
                .find(|t| t.port_name == wwpn)
            {
                return (init, t.port_id);
            }
            assert!(start.elapsed() < WAIT, "host never logged in with {wwpn}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Builds `vol` on A and finds its LUN at A's controller, ready for I/O.
    async fn volume(&self, vol: &str) -> Disk {
        self.ctl(0)
            .build(BuildSpec {
                name: Some(name(vol)),
                media: MediaType::Ssd,
                capacity: VOLUME,
            })
            .await
            .expect("built on A");
        wait_for("the volume served at both controllers", || {
            self.ctl(0).lun_of(&name(vol)).is_some() && self.ctl(1).lun_of(&name(vol)).is_some()
        })
        .await;
        let lun = self.ctl(0).lun_of(&name(vol)).unwrap();
        let (init, id) = self.port(self.san.controller(self.ctl[0]).port_name).await;
        for _ in 0..8 {
            if init.test_unit_ready(id, lun).await.is_ok() {
                break;
            }
        }
        Disk { init, id, lun }
    }

    /// Reads copy `copy` of `vol` straight from its arrays, as the record at A lists it.
    async fn read_copy(&self, vol: &str, copy: u8) -> Vec<u8> {
        let body = self
            .record(0, vol)
            .and_then(|r| r.body)
            .expect("the volume");
        let mut rows: Vec<MapRow> = body.rows.into_iter().filter(|r| r.copy == copy).collect();
        rows.sort_by_key(|r| r.virtual_start);
        let mut out = Vec::new();
        for r in rows {
            let (init, id) = self.port(r.real.array).await;
            let lun = controller::real::scsi_lun(r.real.lun);
            let bs = r.real.block_size;
            let per = (MIB / u64::from(bs)).max(1);
            let mut at = 0;
            while at < r.real.blocks {
                let n = per.min(r.real.blocks - at);
                let data =
                    past_attentions(8, || init.read(id, lun, r.real.start + at, n as u32, bs))
                        .await
                        .expect("read the array");
                out.extend_from_slice(&data);
                at += n;
            }
        }
        out.truncate(VOLUME as usize);
        out
    }

    /// Waits until the owner says the replica of `vol` is in sync with `copies` copies.
    async fn in_sync(&self, vol: &str, copies: u8) -> ReplicaState {
        let start = Instant::now();
        loop {
            let st = self.ctl(0).replica_state(&name(vol)).expect("the volume");
            assert_ne!(st.state, ReplicaPhase::Failed, "{st:?}");
            if st.state == ReplicaPhase::InSync && st.copies == copies {
                return st;
            }
            assert!(start.elapsed() < WAIT, "replica never in sync: {st:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A virtual LUN as the host reaches it.
#[derive(Clone)]
struct Disk {
    init: Initiator,
    id: FcId,
    lun: Lun,
}

/// A little xorshift: the tests' randomness, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Bytes {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        Bytes::from(v)
    }
}

/// What was last acknowledged of each block (absent: never written, zeros).
type Model = Arc<Mutex<BTreeMap<u64, Bytes>>>;

/// Four writers, each owning every fourth block: a random block of its own, written, then a
/// random block of its own read back and checked against what it last had acknowledged.
/// Until `stop`; every failure is recorded. Counts the writes acknowledged.
struct Stream {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    model: Model,
}

impl Stream {
    /// Starts the writers on a volume that holds `model`.
    fn start(disk: &Disk, seed: u64, model: BTreeMap<u64, Bytes>) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let model: Model = Arc::new(Mutex::new(model));
        let blocks = VOLUME / BLOCK;
        let tasks = (0..WRITERS)
            .map(|w| {
                let (disk, stop, writes, errors, model) = (
                    disk.clone(),
                    stop.clone(),
                    writes.clone(),
                    errors.clone(),
                    model.clone(),
                );
                tokio::spawn(async move {
                    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (w + 1));
                    let per = (BLOCK / u64::from(BS)) as u32;
                    while !stop.load(Ordering::Relaxed) {
                        let block = (rng.next() % (blocks / WRITERS)) * WRITERS + w;
                        let data = rng.bytes(BLOCK as usize);
                        let lba = block * BLOCK / u64::from(BS);
                        let r = past_attentions(8, || {
                            disk.init
                                .write(disk.id, disk.lun, lba, data.clone(), BS, false)
                        })
                        .await;
                        match r {
                            Ok(()) => {
                                model.lock().unwrap().insert(block, data);
                                writes.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.lock().unwrap().push(format!("write {block}: {e}"));
                                continue;
                            }
                        }
                        let block = (rng.next() % (blocks / WRITERS)) * WRITERS + w;
                        let lba = block * BLOCK / u64::from(BS);
                        let want = model.lock().unwrap().get(&block).cloned();
                        match past_attentions(8, || disk.init.read(disk.id, disk.lun, lba, per, BS))
                            .await
                        {
                            Ok(got) => {
                                let ok = match &want {
                                    Some(w) => got == *w,
                                    None => got.iter().all(|b| *b == 0),
                                };
                                if !ok {
                                    errors
                                        .lock()
                                        .unwrap()
                                        .push(format!("block {block} read back differs"));
                                }
                            }
                            Err(e) => errors.lock().unwrap().push(format!("read {block}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Stream {
            stop,
            writes,
            errors,
            tasks,
            model,
        }
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Waits for `n` more writes acknowledged; fails on the first error seen.
    async fn more_writes(&self, n: u64) {
        let to = self.writes() + n;
        wait_for("more writes acknowledged", || {
            let errors = self.errors.lock().unwrap();
            assert!(errors.is_empty(), "the host saw errors: {errors:?}");
            self.writes() >= to
        })
        .await;
    }

    /// Stops the writers; the model of what was acknowledged. Fails on any error seen.
    async fn stop(self) -> BTreeMap<u64, Bytes> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "the host saw errors: {errors:?}");
        let m = self.model.lock().unwrap().clone();
        m
    }
}

/// The volume's bytes the model says.
fn expected(model: &BTreeMap<u64, Bytes>) -> Vec<u8> {
    let mut v = vec![0u8; VOLUME as usize];
    for (block, data) in model {
        let at = (block * BLOCK) as usize;
        v[at..at + data.len()].copy_from_slice(data);
    }
    v
}

/// Every block read through the host equals the model.
async fn check_through_host(disk: &Disk, model: &BTreeMap<u64, Bytes>) {
    let want = expected(model);
    let per = (MIB / u64::from(BS)) as u32;
    for i in 0..VOLUME / MIB {
        let got = past_attentions(8, || {
            disk.init
                .read(disk.id, disk.lun, i * MIB / u64::from(BS), per, BS)
        })
        .await
        .expect("read through the controller");
        let at = (i * MIB) as usize;
        assert!(
            got[..] == want[at..at + MIB as usize],
            "MiB {i} of the volume differs from what was acknowledged"
        );
    }
}

/// The arrays (by port name) that hold copy `copy` of the record.
fn arrays_of(rec: &Record, copy: u8) -> Vec<Wwn> {
    let mut a: Vec<Wwn> = rec
        .body
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .filter(|r| r.copy == copy)
        .map(|r| r.real.array)
        .collect();
    a.dedup();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_added_under_load_then_reads_switch_to_it() {
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB take two seconds at least: long enough for the writers to race the copy.
    let s = San::start(dir.path(), &[("ssda", true), ("ssdb", false)], 8 * MIB).await;
    let ssda = s.san.array(s.arrays[0]).port_name;
    let ssdb = s.san.array(s.arrays[1]).port_name;
    let disk = s.volume("vol1").await;
    let none = s.ctl(0).replica_state(&name("vol1")).unwrap();
    assert_eq!((none.state, none.copies), (ReplicaPhase::None, 1));

    let stream = Stream::start(&disk, 1, BTreeMap::new());
    stream.more_writes(20).await;
    // Site B does not own the volume: only the owner adds a replica.
    let e = s
        .ctl(1)
        .add_replica(&name("vol1"), ReplicaSpec::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ctl-a"), "{e}");
    let st = s
        .ctl(0)
        .add_replica(
            &name("vol1"),
            ReplicaSpec {
                media: None,
                site: Some("B".into()),
            },
        )
        .await
        .expect("replica started");
    assert_eq!(st.state, ReplicaPhase::Syncing, "{st:?}");
    assert_eq!((st.copies, st.copy, st.total), (1, Some(1), VOLUME));
    assert!(st.rows.iter().all(|r| r.array == ssdb), "{st:?}");
    // Not in the mapping while it syncs.
    assert_eq!(
        arrays_of(&s.record(0, "vol1").unwrap(), 1),
        Vec::<Wwn>::new()
    );
    // One replica at a time.
    let busy = s
        .ctl(0)
        .add_replica(&name("vol1"), ReplicaSpec::default())
        .await
        .unwrap_err();
    assert!(busy.to_string().contains("synchronized"), "{busy}");
    let done = s.in_sync("vol1", 2).await;
    assert_eq!((done.copied, done.total), (VOLUME, VOLUME));
    stream.more_writes(40).await;
    let model = stream.stop().await;

    // Both copies in the mapping, at both controllers; identical, and what was acknowledged.
    for i in 0..2 {
        wait_for("the replica's rows at every controller", || {
            s.record(i, "vol1")
                .is_some_and(|r| arrays_of(&r, 1) == [ssdb] && arrays_of(&r, 0) == [ssda])
        })
        .await;
    }
    let primary = s.read_copy("vol1", 0).await;
    let replica = s.read_copy("vol1", 1).await;
    let want = expected(&model);
    assert!(primary == want, "the primary holds what was acknowledged");
    assert!(replica == want, "the replica holds what was acknowledged");
    check_through_host(&disk, &model).await;

    // Load switching: eight readers keep the owner's primary past two commands in flight.
    let before = s.ctl(0).io_counters(&name("vol1")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8u64)
        .map(|r| {
            let (disk, stop) = (disk.clone(), stop.clone());
            let want = want.clone();
            tokio::spawn(async move {
                let mut rng = Rng(r + 77);
                let per = (BLOCK / u64::from(BS)) as u32;
                while !stop.load(Ordering::Relaxed) {
                    let block = rng.next() % (VOLUME / BLOCK);
                    let got = past_attentions(8, || {
                        disk.init
                            .read(disk.id, disk.lun, block * BLOCK / u64::from(BS), per, BS)
                    })
                    .await
                    .expect("read under load");
                    let at = (block * BLOCK) as usize;
                    assert!(got[..] == want[at..at + BLOCK as usize], "block {block}");
                }
            })
        })
        .collect();
    let ctl = s.ctl(0);
    wait_for("reads moved to the replica", || {
        let c = ctl.io_counters(&name("vol1")).unwrap();
        c.route_changes > before.route_changes && c.replica_reads > before.replica_reads + 50
    })
    .await;
    // While the load lasts, the reads stay on the replica: its relief of the primary does not
    // send them back.
    let switched = ctl.io_counters(&name("vol1")).unwrap();
    wait_for("more reads on the replica", || {
        ctl.io_counters(&name("vol1")).unwrap().replica_reads > switched.replica_reads + 400
    })
    .await;
    let still = ctl.io_counters(&name("vol1")).unwrap();
    assert_eq!(
        still.route_changes,
        before.route_changes + 1,
        "the route flapped under a steady load: {still:?}"
    );
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    wait_for("reads back on the primary once the load stopped", || {
        ctl.io_counters(&name("vol1")).unwrap().route_changes >= before.route_changes + 2
    })
    .await;
    let quiet = ctl.io_counters(&name("vol1")).unwrap();
    let per = (BLOCK / u64::from(BS)) as u32;
    disk.init.read(disk.id, disk.lun, 0, per, BS).await.unwrap();
    assert_eq!(
        ctl.io_counters(&name("vol1")).unwrap().replica_reads,
        quiet.replica_reads,
        "a read with no load goes to the primary"
    );

    // Masking, recorded by the owner: every controller hides the volume from other hosts.
    let other = Wwn::from_u64(0x2100_0000_0000_00ff);
    let e = s
        .ctl(1)
        .set_masking(&name("vol1"), vec![other])
        .unwrap_err();
    assert!(e.to_string().contains("ctl-a"), "{e}");
    s.ctl(0).set_masking(&name("vol1"), vec![other]).unwrap();
    for i in 0..2 {
        wait_for("the masking at every controller", || {
            s.record(i, "vol1").unwrap().body.unwrap().masking == [other]
        })
        .await;
    }
    match disk.init.read(disk.id, disk.lun, 0, per, BS).await {
        Err(ScsiError::CheckCondition(sense)) => {
            assert_eq!(sense.key, SenseKey::ILLEGAL_REQUEST, "{sense:?}")
        }
        other => panic!("a masked volume answered {other:?}"),
    }
    let me = s.san.host(s.host).port_name;
    s.ctl(0)
        .set_masking(&name("vol1"), vec![other, me])
        .unwrap();
    let back = past_attentions(8, || disk.init.read(disk.id, disk.lun, 0, per, BS))
        .await
        .expect("visible again");
    assert!(back[..] == want[..BLOCK as usize]);
    s.san.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_array_dies_mid_stream_then_a_new_replica_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let s = San::start(
        dir.path(),
        &[("ssda", true), ("ssdb", false), ("ssdc", true)],
        8 * MIB,
    )
    .await;
    let [ssda, ssdb, ssdc] = [0, 1, 2].map(|i| s.san.array(s.arrays[i]).port_name);
    wait_for("A's two arrays found", || {
        s.ctl(0).real_volumes().len() == 2
    })
    .await;
    let disk = s.volume("vol2").await;
    assert_eq!(arrays_of(&s.record(0, "vol2").unwrap(), 0).len(), 1);
    // The primary went to one of A's arrays; kill that one, keep the other for the resync.
    let primary = arrays_of(&s.record(0, "vol2").unwrap(), 0)[0];
    let (dead, spare) = if primary == ssda {
        (s.arrays[0], ssdc)
    } else {
        (s.arrays[2], ssda)
    };
    s.ctl(0)
        .add_replica(
            &name("vol2"),
            ReplicaSpec {
                media: Some(MediaType::Ssd),
                site: Some("B".into()),
            },
        )
        .await
        .expect("replica started");
    s.in_sync("vol2", 2).await;

    let stream = Stream::start(&disk, 2, BTreeMap::new());
    stream.more_writes(40).await;
    s.san.array(dead).array.node.shutdown().await;
    stream.more_writes(80).await;
    let model = stream.stop().await;

    // The replica is copy 0 now, everywhere; the volume is degraded.
    for i in 0..2 {
        wait_for("the replica as copy 0 at every controller", || {
            s.record(i, "vol2").is_some_and(|r| {
                let b = r.body.as_ref().unwrap();
                b.state == VolumeState::Degraded
                    && b.rows.iter().all(|r| r.copy == 0 && r.real.array == ssdb)
            })
        })
        .await;
    }
    check_through_host(&disk, &model).await;
    assert!(s.read_copy("vol2", 0).await == expected(&model));

    // A new replica (by default off the surviving copy's array: this SAN's spare array).
    let stream = Stream::start(&disk, 3, model);
    stream.more_writes(10).await;
    let st = s
        .ctl(0)
        .add_replica(&name("vol2"), ReplicaSpec::default())
        .await
        .expect("new replica started");
    assert!(st.rows.iter().all(|r| r.array == spare), "{st:?}");
    s.in_sync("vol2", 2).await;
    stream.more_writes(20).await;
    let model2 = stream.stop().await;
    let rec = s.record(0, "vol2").unwrap();
    assert_eq!(arrays_of(&rec, 0), [ssdb]);
    assert_eq!(arrays_of(&rec, 1), [spare]);
    assert_eq!(rec.body.as_ref().unwrap().state, VolumeState::Online);
    let want = expected(&model2);
    assert!(s.read_copy("vol2", 0).await == want, "copy 0");
    assert!(s.read_copy("vol2", 1).await == want, "copy 1");
    check_through_host(&disk, &model2).await;
    s.san.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_whose_array_dies_while_syncing_is_dropped() {
    use controller::api::Management;

    let dir = tempfile::tempdir().unwrap();
    // 16 MiB take eight seconds at least: the replica's array dies well before the end.
    let s = San::start(dir.path(), &[("ssda", true), ("ssdb", false)], 2 * MIB).await;
    let ssda = s.san.array(s.arrays[0]).port_name;
    let disk = s.volume("vol3").await;
    let stream = Stream::start(&disk, 4, BTreeMap::new());
    stream.more_writes(10).await;
    let st = s
        .ctl(0)
        .add_replica(
            &name("vol3"),
            ReplicaSpec {
                media: None,
                site: Some("B".into()),
            },
        )
        .await
        .expect("replica started");
    assert_eq!(st.state, ReplicaPhase::Syncing);
    let reserved = |i: usize| {
        let backend = s.ctl(i).backend();
        async move { backend.counters().await.counters["extents.reserved_bytes"] }
    };
    assert_eq!(
        reserved(1).await,
        VOLUME,
        "B holds the replica's extents for A"
    );
    s.san.array(s.arrays[1]).array.node.shutdown().await;
    let start = Instant::now();
    let failed = loop {
        let st = s.ctl(0).replica_state(&name("vol3")).unwrap();
        if st.state == ReplicaPhase::Failed {
            break st;
        }
        assert_eq!(st.state, ReplicaPhase::Syncing, "{st:?}");
        assert!(start.elapsed() < WAIT, "the replica never failed: {st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(failed.copied < VOLUME, "{failed:?}");
    assert!(failed.reason.is_some(), "{failed:?}");
    // The host never noticed: the replica was not in the mapping.
    stream.more_writes(40).await;
    let model = stream.stop().await;
    for i in 0..2 {
        let r = s.record(i, "vol3").unwrap();
        assert_eq!(arrays_of(&r, 0), [ssda]);
        assert_eq!(arrays_of(&r, 1), Vec::<Wwn>::new());
        assert_eq!(r.body.unwrap().state, VolumeState::Online);
    }
    let start = Instant::now();
    while reserved(1).await != 0 {
        assert!(start.elapsed() < WAIT, "B's reservation never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check_through_host(&disk, &model).await;
    s.san.shutdown().await;
}
