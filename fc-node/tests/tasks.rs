//! Tasks over a real switch: a target whose logical units are slow or fast, an initiator that
//! aborts commands (ABTS, task management) and sees logical units come and go; and a file
//! LUN whose storage UNMAP gives back.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fabric::driver::SwitchHandle;
use fabric::{Config, PortId, Switch};
use fc_frames::fcp::TmFlags;
use fc_frames::scsi::{AdditionalSense, Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::disk::{DiskArray, LunSpec};
use fc_node::fcp::initiator::{Initiator, ScsiError, TmfResponse};
use fc_node::fcp::target::Target;
use fc_node::node::{Node, NodeConfig, Services};
use fc_node::scsi::{BlockDevice, DeviceError, DiskConfig, MemLun, ScsiEngine, TargetPort, Tier};

const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee02);
const HOST: Wwn = Wwn::from_u64(0x2100_0000_0000_0011);
const ARRAY: Wwn = Wwn::from_u64(0x2200_0000_0000_0011);
const BLOCK: u32 = 512;
const WAIT: Duration = Duration::from_secs(10);
/// How long each command to the slow LUN takes.
const SLOW: Duration = Duration::from_secs(2);

fn lun(n: u16) -> Lun {
    Lun::from_index(n).expect("small LUN")
}

fn switch() -> SwitchHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    SwitchHandle::spawn(Switch::new(Config::new(1, SWITCH, (1..=8).map(PortId))).expect("config"))
}

fn connector(
    sw: &SwitchHandle,
) -> impl FnMut() -> std::future::Ready<io::Result<fabric::link::Link>> + Send + 'static {
    let sw = sw.clone();
    move || std::future::ready(sw.connect_node().map_err(io::Error::other))
}

fn node_config(port_name: Wwn) -> NodeConfig {
    let mut c = NodeConfig::new(
        port_name,
        Wwn::from_u64(port_name.to_u64() ^ 0x0100_0000_0000_0000),
    );
    c.els_timeout = Duration::from_secs(2);
    c.exchange.r_a_tov = Duration::from_millis(500);
    c
}

/// What the slow device did: operations started and ended, by LBA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Start(u64),
    End(u64),
}

/// A RAM disk whose every operation takes [`SLOW`] first, as a remote device would: its
/// futures wait, and a dropped one never completes.
struct Delayed {
    inner: MemLun,
    log: Mutex<Vec<Ev>>,
}

impl Delayed {
    fn log(&self) -> Vec<Ev> {
        self.log.lock().unwrap().clone()
    }

    async fn around<T>(&self, lba: u64, op: impl std::future::Future<Output = T>) -> T {
        self.log.lock().unwrap().push(Ev::Start(lba));
        tokio::time::sleep(SLOW).await;
        let r = op.await;
        self.log.lock().unwrap().push(Ev::End(lba));
        r
    }
}

#[async_trait::async_trait]
impl BlockDevice for Delayed {
    fn block_size(&self) -> u32 {
        BLOCK
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn tier(&self) -> Tier {
        Tier::SlowHdd
    }
    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        self.around(lba, self.inner.read(lba, blocks)).await
    }
    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        self.around(lba, self.inner.write(lba, data, fua)).await
    }
    async fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.around(lba, self.inner.unmap(lba, blocks)).await
    }
}

/// A target with a fast RAM disk at LUN 0 and a [`Delayed`] one at LUN 1, and an initiator
/// logged in to it.
struct San {
    _sw: SwitchHandle,
    host: Initiator,
    t: FcId,
    target: Target,
    _array: Node,
    slow: Arc<Delayed>,
}

async fn san() -> San {
    let sw = switch();
    let engine = ScsiEngine::new(TargetPort {
        port_name: ARRAY,
        node_name: Wwn::ZERO,
        relative_port: 1,
    });
    let fast = Arc::new(MemLun::new(4096, BLOCK, Tier::Ssd).unwrap());
    engine
        .add_disk(lun(0), fast, DiskConfig::new("FAST", Wwn::from_u64(1)))
        .unwrap();
    let slow = Arc::new(Delayed {
        inner: MemLun::new(4096, BLOCK, Tier::SlowHdd).unwrap(),
        log: Mutex::new(Vec::new()),
    });
    engine
        .add_disk(
            lun(1),
            slow.clone(),
            DiskConfig::new("SLOW", Wwn::from_u64(2)),
        )
        .unwrap();
    let target = Target::new(Arc::new(engine));
    let mut config = node_config(ARRAY);
    config.target = true;
    let mut services = Services::new();
    target.install(&mut services);
    let array = Node::spawn(config, connector(&sw), services);
    let mut config = node_config(HOST);
    config.initiator = true;
    let host = Initiator::new(Node::spawn(config, connector(&sw), Services::new()))
        .with_timeout(Duration::from_secs(10));
    let t = host.node().wait_targets(1, WAIT).await.unwrap()[0].port_id;
    San {
        _sw: sw,
        host,
        t,
        target,
        _array: array,
        slow,
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Waits until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn check(e: &ScsiError) -> (SenseKey, AdditionalSense) {
    let s = e
        .sense()
        .unwrap_or_else(|| panic!("not CHECK CONDITION: {e}"));
    (s.key, s.additional)
}

/// 32 commands in flight to the fast LUN all finish while a command to the slow LUN of the
/// same target is still busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_slow_lun_does_not_slow_the_fast_one() {
    let s = san().await;
    let data = pattern(32 * 4096, 1);
    s.host
        .write(s.t, lun(0), 0, data.clone(), BLOCK, false)
        .await
        .unwrap();
    let slow = tokio::spawn({
        let host = s.host.clone();
        let t = s.t;
        async move { host.read(t, lun(1), 7, 1, BLOCK).await }
    });
    let dev = s.slow.clone();
    until("the slow read started", || {
        dev.log().contains(&Ev::Start(7))
    })
    .await;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32u64 {
        let host = s.host.clone();
        let t = s.t;
        set.spawn(async move { (i, host.read(t, lun(0), i * 8, 8, BLOCK).await) });
    }
    while let Some(r) = set.join_next().await {
        let (i, r) = r.unwrap();
        let i = i as usize;
        assert_eq!(r.unwrap(), data.slice(i * 4096..(i + 1) * 4096));
    }
    let fast = started.elapsed();
    assert!(
        !s.slow.log().contains(&Ev::End(7)),
        "the 32 fast reads took {fast:?}: the slow one finished first"
    );
    assert!(fast < SLOW, "32 fast reads took {fast:?}");
    assert_eq!(slow.await.unwrap().unwrap().len(), 512);
    assert!(s.target.counters().commands >= 34);
}

/// Dropping a command's future aborts its exchange (ABTS): the target aborts the task, whose
/// write never reaches the medium, not even after the device's delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_abts_aborts_a_stuck_command() {
    let s = san().await;
    let write = s
        .host
        .write(s.t, lun(1), 100, pattern(512, 9), BLOCK, false);
    let dev = s.slow.clone();
    let dropped = tokio::time::timeout(Duration::from_millis(500), write).await;
    assert!(dropped.is_err(), "the write cannot have finished");
    assert!(dev.log().contains(&Ev::Start(100)), "it reached the device");
    let target = s.target.clone();
    until("the target aborted the task", || {
        target.counters().aborted == 1
    })
    .await;
    // Past the device's delay: the write never completed, and the medium is unchanged.
    tokio::time::sleep(SLOW + Duration::from_millis(500)).await;
    assert!(!dev.log().contains(&Ev::End(100)), "{:?}", dev.log());
    assert!(dev
        .inner
        .read(100, 1)
        .await
        .unwrap()
        .iter()
        .all(|&b| b == 0));
    // The aborted command sent no status: only the two commands below are counted.
    let before = s.target.counters().commands;
    s.host.test_unit_ready(s.t, lun(1)).await.unwrap();
    s.host.test_unit_ready(s.t, lun(0)).await.unwrap();
    assert_eq!(s.target.counters().commands, before + 2);
    // Nothing lingers (the node's count is refreshed as its core runs; discovery may still be
    // finishing an exchange of its own).
    let host = s.host.clone();
    until("no exchange left open at the host", || {
        host.node().counters().open_exchanges == 0
    })
    .await;
}

/// LOGICAL UNIT RESET aborts a command stuck in the slow device: the reset completes, the
/// command fails as aborted, and it never completes at the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_logical_unit_reset_aborts_a_stuck_command() {
    let s = san().await;
    let stuck = tokio::spawn({
        let host = s.host.clone();
        let t = s.t;
        async move { host.read(t, lun(1), 55, 1, BLOCK).await }
    });
    let dev = s.slow.clone();
    until("the read reached the device", || {
        dev.log().contains(&Ev::Start(55))
    })
    .await;
    let started = Instant::now();
    let r = s.host.logical_unit_reset(s.t, lun(1)).await.unwrap();
    assert_eq!(r, TmfResponse::Complete);
    assert!(
        started.elapsed() < SLOW,
        "the reset waited for the slow device"
    );
    let e = stuck.await.unwrap().unwrap_err();
    assert!(matches!(e, ScsiError::Aborted), "{e}");
    assert_eq!(s.target.counters().aborted, 1);
    tokio::time::sleep(SLOW + Duration::from_millis(500)).await;
    assert!(!dev.log().contains(&Ev::End(55)), "{:?}", dev.log());
    // The initiator terminated the aborted exchange (ABTS); nothing is left open.
    let host = s.host.clone();
    until("no exchange left open", || {
        host.node().counters().open_exchanges == 0
    })
    .await;
    // The resetting initiator gets no unit attention; the LUN works.
    s.host.test_unit_ready(s.t, lun(1)).await.unwrap();
    // The other answers: a LUN that does not exist, a function that is not supported.
    let r = s.host.logical_unit_reset(s.t, lun(9)).await.unwrap();
    assert_eq!(r, TmfResponse::IncorrectLun);
    let r = s
        .host
        .task_management(s.t, lun(0), TmFlags::CLEAR_ACA, Some(lun(0)))
        .await
        .unwrap();
    assert_eq!(r, TmfResponse::NotSupported);
    let both = TmFlags::ABORT_TASK_SET | TmFlags::LOGICAL_UNIT_RESET;
    let r = s
        .host
        .task_management(s.t, lun(0), both, Some(lun(0)))
        .await
        .unwrap();
    assert_eq!(r, TmfResponse::NotSupported);
    assert_eq!(
        s.host.abort_task_set(s.t, lun(0)).await.unwrap(),
        TmfResponse::Complete
    );
    assert_eq!(
        s.host.clear_task_set(s.t, lun(0)).await.unwrap(),
        TmfResponse::Complete
    );
    assert_eq!(
        s.host.target_reset(s.t).await.unwrap(),
        TmfResponse::Complete
    );
}

/// A LUN added while the initiator is logged in is announced once with REPORTED LUNS DATA
/// HAS CHANGED (the nexus is known from PRLI, before any command), and so is its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lun_added_at_run_time_is_announced_once() {
    let s = san().await;
    let engine = s.target.engine();
    let new = Arc::new(MemLun::new(64, BLOCK, Tier::FastHdd).unwrap());
    engine
        .add_disk(lun(5), new, DiskConfig::new("NEW", Wwn::from_u64(5)))
        .unwrap();
    let changed = (
        SenseKey::UNIT_ATTENTION,
        AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED,
    );
    let e = s.host.test_unit_ready(s.t, lun(0)).await.unwrap_err();
    assert_eq!(check(&e), changed);
    s.host.test_unit_ready(s.t, lun(0)).await.unwrap();
    s.host.test_unit_ready(s.t, lun(5)).await.unwrap();
    assert_eq!(
        s.host.report_luns(s.t).await.unwrap(),
        vec![lun(0), lun(1), lun(5)]
    );
    assert_eq!(s.host.tier(s.t, lun(5)).await.unwrap(), Some(Tier::FastHdd));
    assert_eq!(engine.remove_lun(lun(5)).await, Ok(0));
    let e = s.host.test_unit_ready(s.t, lun(1)).await.unwrap_err();
    assert_eq!(check(&e), changed);
    s.host.test_unit_ready(s.t, lun(1)).await.unwrap();
    assert_eq!(s.host.report_luns(s.t).await.unwrap(), vec![lun(0), lun(1)]);
}

/// A 64 MiB file LUN written full over FCP, then UNMAPped: the file gives its blocks back,
/// and the unmapped range reads as zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_unmap_frees_the_file_blocks() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thin.img");
    let sw = switch();
    let spec = LunSpec {
        lun: lun(0),
        path: path.clone(),
        bytes: 64 * MIB,
        block_size: BLOCK,
        tier: Tier::Ssd,
        serial: "THIN".into(),
    };
    let _array = DiskArray::start(node_config(ARRAY), connector(&sw), &[spec], &[]).unwrap();
    let mut config = node_config(HOST);
    config.initiator = true;
    let host = Initiator::new(Node::spawn(config, connector(&sw), Services::new()));
    let t = host.node().wait_targets(1, WAIT).await.unwrap()[0].port_id;
    let blocks_per_mib = (MIB / u64::from(BLOCK)) as u32;
    for i in 0..64u64 {
        let data = pattern(MIB as usize, i as u8 | 1);
        host.write(t, lun(0), i * u64::from(blocks_per_mib), data, BLOCK, false)
            .await
            .unwrap();
    }
    host.synchronize_cache(t, lun(0)).await.unwrap();
    let full = std::fs::metadata(&path).unwrap().blocks() * 512;
    assert!(full >= 64 * MIB, "written full, yet {full} bytes allocated");

    // Everything but the first and the last MiB.
    let first = u64::from(blocks_per_mib);
    let count = 62 * blocks_per_mib;
    host.unmap(t, lun(0), &[(first, count)]).await.unwrap();
    host.synchronize_cache(t, lun(0)).await.unwrap();
    let md = std::fs::metadata(&path).unwrap();
    let after = md.blocks() * 512;
    assert_eq!(md.len(), 64 * MIB, "the file keeps its size");
    assert!(
        full - after >= 60 * MIB,
        "UNMAP freed only {} bytes ({full} -> {after})",
        full - after
    );
    for lba in [
        first,
        first + u64::from(count) / 2,
        first + u64::from(count) - 16,
    ] {
        let back = host.read(t, lun(0), lba, 16, BLOCK).await.unwrap();
        assert!(back.iter().all(|&b| b == 0), "LBA {lba} not zero");
    }
    // The data around the hole is intact.
    let head = host.read(t, lun(0), 0, 16, BLOCK).await.unwrap();
    assert_eq!(head, pattern(MIB as usize, 1).slice(..16 * 512));
    let tail_lba = 63 * u64::from(blocks_per_mib);
    let tail = host.read(t, lun(0), tail_lba, 16, BLOCK).await.unwrap();
    assert_eq!(tail, pattern(MIB as usize, 63 | 1).slice(..16 * 512));
}
