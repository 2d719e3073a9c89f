//! A SAN in one process: a switch (fabric's driver), disk arrays and hosts on in-process
//! links, driven through the node stack as a user would: fabric login, discovery, SCSI over
//! FCP, link loss, a disk array that goes away and comes back.

use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use fabric::driver::SwitchHandle;
use fabric::{Config, DefaultZone, PortId, Switch, Zone, ZoneSet, Zoning};
use fc_frames::scsi::data::Peripheral;
use fc_frames::scsi::{AdditionalSense, Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::disk::{DiskArray, LunSpec, TapeSpec};
use fc_node::fcp::initiator::{Initiator, ScsiError};
use fc_node::node::{Node, NodeConfig, NodeError, NodeState, Services};
use fc_node::scsi::Tier;

const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee01);
const HOST: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
const OUTSIDER: Wwn = Wwn::from_u64(0x2100_0000_0000_0009);
const SSD: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
const HDD: Wwn = Wwn::from_u64(0x2200_0000_0000_0002);
const BLOCK: u32 = 512;
const LUN_BYTES: u64 = 8 << 20;
const WAIT: Duration = Duration::from_secs(10);

fn lun(n: u16) -> Lun {
    Lun::from_index(n).expect("small LUN")
}

fn switch() -> SwitchHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = Config::new(1, SWITCH, (1..=8).map(PortId));
    config.zoning = Zoning {
        active: Some(ZoneSet {
            name: "production".into(),
            zones: vec![Zone::new("host", [HOST, SSD, HDD])],
        }),
        default_zone: DefaultZone::NoAccess,
    };
    SwitchHandle::spawn(Switch::new(config).expect("valid config"))
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

fn start_disk(sw: &SwitchHandle, dir: &Path, name: Wwn, tier: Tier) -> DiskArray {
    let luns = [LunSpec {
        lun: lun(0),
        path: dir.join(format!("{name}.img").replace(':', "")),
        bytes: LUN_BYTES,
        block_size: BLOCK,
        tier,
        serial: format!("S{:x}", name.to_u64() & 0xFF),
    }];
    let tapes = [TapeSpec {
        lun: lun(1),
        serial: "TAPE0".into(),
    }];
    DiskArray::start(node_config(name), connector(sw), &luns, &tapes).expect("disk array")
}

fn start_host(sw: &SwitchHandle, name: Wwn) -> Initiator {
    let mut c = node_config(name);
    c.initiator = true;
    Initiator::new(Node::spawn(c, connector(sw), Services::new()))
        .with_timeout(Duration::from_secs(3))
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

async fn target_named(host: &Initiator, name: Wwn) -> FcId {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = host.node().targets().iter().find(|t| t.port_name == name) {
            return t.port_id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "target {name} never logged in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn check(e: &ScsiError) -> (SenseKey, AdditionalSense) {
    let s = e
        .sense()
        .unwrap_or_else(|| panic!("not CHECK CONDITION: {e}"));
    (s.key, s.additional)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_host_finds_tiered_luns_and_moves_data() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let _ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let _hdd = start_disk(&sw, dir.path(), HDD, Tier::SlowHdd);
    let host = start_host(&sw, HOST);
    host.node().wait_online(WAIT).await.unwrap();
    host.node().wait_targets(2, WAIT).await.unwrap();
    let ssd = target_named(&host, SSD).await;
    let hdd = target_named(&host, HDD).await;

    assert_eq!(host.report_luns(ssd).await.unwrap(), vec![lun(0), lun(1)]);
    assert_eq!(host.tier(ssd, lun(0)).await.unwrap(), Some(Tier::Ssd));
    assert_eq!(host.tier(hdd, lun(0)).await.unwrap(), Some(Tier::SlowHdd));
    let cap = host.read_capacity(hdd, lun(0)).await.unwrap();
    assert_eq!((cap.blocks(), cap.block_size()), (LUN_BYTES / 512, 512));
    let inq = host.inquiry(ssd, lun(0)).await.unwrap();
    assert_eq!(inq.peripheral, Peripheral::default());

    // 1 MiB through XFER_RDY and back, at the start and at the end of the LUN.
    let data = pattern(1 << 20, 7);
    let last = LUN_BYTES / 512 - 2048;
    for lba in [0, last] {
        host.write(ssd, lun(0), lba, data.clone(), BLOCK, false)
            .await
            .unwrap();
        let back = host.read(ssd, lun(0), lba, 2048, BLOCK).await.unwrap();
        assert!(back == data, "data differs at LBA {lba}");
    }
    host.synchronize_cache(ssd, lun(0)).await.unwrap();
    // 32 commands in flight at once.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..32u64 {
        let host = host.clone();
        set.spawn(async move { (i, host.read(ssd, lun(0), i * 8, 8, BLOCK).await) });
    }
    while let Some(r) = set.join_next().await {
        let (i, r) = r.unwrap();
        let i = i as usize;
        assert_eq!(r.unwrap(), data.slice(i * 4096..(i + 1) * 4096));
    }
    // The tape drive: a sequential-access device that rejects block commands.
    let tape = host.inquiry(ssd, lun(1)).await.unwrap();
    assert_eq!(tape.peripheral.device_type().0, 0x01);
    host.test_unit_ready(ssd, lun(1)).await.unwrap();
    let e = host.read(ssd, lun(1), 0, 1, BLOCK).await.unwrap_err();
    assert_eq!(
        check(&e),
        (
            SenseKey::ILLEGAL_REQUEST,
            AdditionalSense::INVALID_COMMAND_OPERATION_CODE
        )
    );
}

/// What an array LUN of 8 MiB in 512-byte blocks answers to each edge case
/// ([`fc_node::fcp::conformance`]); a virtual volume's LUN answers the same (the controller's
/// tests compare the two).
const EDGE_CASES: [(&str, &str); 18] = [
    ("READ 1 block at end", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("WRITE 1 block at end", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("READ 1 block at 2^31", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("WRITE 1 block at 2^31", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("READ 1 block at u64::MAX", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("WRITE 1 block at u64::MAX", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 512"),
    ("READ 2 blocks from the last", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00), underrun 1024"),
    ("READ 0 blocks at the last block", "GOOD, 0 bytes"),
    ("WRITE 0 blocks at the last block", "GOOD, 0 bytes"),
    ("READ 0 blocks at end", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)"),
    ("WRITE 0 blocks at end", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00)"),
    ("opcode C7h", "CHECK CONDITION ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (20/00)"),
    ("READ with RDPROTECT", "CHECK CONDITION ILLEGAL REQUEST / INVALID FIELD IN CDB (24/00), underrun 512"),
    ("READ 1 block, FCP_DL 2 blocks", "GOOD, 512 bytes, underrun 512"),
    ("READ 2 blocks, FCP_DL 1 block", "GOOD, 512 bytes, overrun 512"),
    ("WRITE 1 block, FCP_DL 2 blocks", "GOOD, 0 bytes, underrun 512"),
    ("WRITE 2 blocks, FCP_DL 1 block", "CHECK CONDITION ILLEGAL REQUEST / INVALID FIELD IN COMMAND INFORMATION UNIT (0E/03), overrun 512"),
    ("READ of a LUN that does not exist", "CHECK CONDITION ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED (25/00), underrun 512"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_scsi_edge_cases_through_fcp() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let _ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let host = start_host(&sw, HOST);
    let t = target_named(&host, SSD).await;
    let cases = fc_node::fcp::conformance::edge_cases(&host, t, lun(0), lun(7))
        .await
        .unwrap();
    let got: Vec<(String, String)> = cases.into_iter().map(|c| (c.case, c.outcome)).collect();
    for (g, want) in got.iter().zip(EDGE_CASES.iter()) {
        assert_eq!((g.0.as_str(), g.1.as_str()), *want);
    }
    assert_eq!(got.len(), EDGE_CASES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_link_drop_relogin_and_io_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let _ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let host = start_host(&sw, HOST);
    let t = target_named(&host, SSD).await;
    host.write(t, lun(0), 100, pattern(4096, 9), BLOCK, true)
        .await
        .unwrap();

    let port = sw
        .snapshot()
        .name_server
        .iter()
        .find(|e| e.port_name == HOST)
        .map(|e| e.port)
        .expect("host registered");
    let before = host.node().state().generation().expect("link up");
    sw.disconnect(port);
    // The node sees its link go, connects again and logs in again: a new link generation.
    let mut state = host.node().watch_state();
    let relogin = state
        .wait_for(|s| matches!(s, NodeState::Online { generation, .. } if *generation > before));
    tokio::time::timeout(WAIT, relogin).await.unwrap().unwrap();
    let t = target_named(&host, SSD).await;
    assert_eq!(
        host.read(t, lun(0), 100, 8, BLOCK).await.unwrap(),
        pattern(4096, 9)
    );
    assert!(host.node().counters().links >= 2);
    assert!(host.node().counters().fabric_logins >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_disk_gone_times_out_then_comes_back_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let host = start_host(&sw, HOST);
    let t = target_named(&host, SSD).await;
    let acked = pattern(64 << 10, 5);
    host.write(t, lun(0), 0, acked.clone(), BLOCK, true)
        .await
        .unwrap();

    // The array stops answering: its node goes away without a word.
    let port = sw
        .snapshot()
        .name_server
        .iter()
        .find(|e| e.port_name == SSD)
        .map(|e| e.port)
        .expect("disk registered");
    drop(ssd);
    sw.disconnect(port);
    let e = host.read(t, lun(0), 0, 8, BLOCK).await.unwrap_err();
    assert!(
        matches!(e, ScsiError::Node(NodeError::TimedOut)),
        "expected a time-out, got {e}"
    );
    // The timed-out exchange was aborted (ABTS, unanswered) and freed after R_A_TOV: nothing
    // is left open once the fabric's RSCN has been answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    while host.node().counters().open_exchanges > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "exchanges left open: {:?}",
            host.node().counters()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(host.node().counters().timeouts >= 1);

    // It comes back on the same files: the host logs in again (RSCN) and finds the data.
    let _ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let deadline = tokio::time::Instant::now() + WAIT;
    let back = loop {
        let t = target_named(&host, SSD).await;
        match host.read(t, lun(0), 0, 128, BLOCK).await {
            Ok(b) => break b,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no I/O after restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(back == acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_host_outside_the_zone_sees_nothing_and_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let _ssd = start_disk(&sw, dir.path(), SSD, Tier::Ssd);
    let host = start_host(&sw, HOST);
    let t = target_named(&host, SSD).await;
    let outsider = start_host(&sw, OUTSIDER);
    outsider.node().wait_online(WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(outsider.node().targets().is_empty());

    // Frames sent anyway are dropped by hard zoning and counted.
    let before: u64 = sw
        .snapshot()
        .ports
        .iter()
        .map(|p| p.counters.discards.unzoned)
        .sum();
    let e = outsider
        .clone()
        .with_timeout(Duration::from_millis(300))
        .test_unit_ready(t, lun(0))
        .await
        .unwrap_err();
    assert!(matches!(e, ScsiError::Node(NodeError::TimedOut)), "{e}");
    let after: u64 = sw
        .snapshot()
        .ports
        .iter()
        .map(|p| p.counters.discards.unzoned)
        .sum();
    assert!(after > before, "unzoned discards {before} -> {after}");
}
