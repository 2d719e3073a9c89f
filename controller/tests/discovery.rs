//! The controller finds its SAN's real volumes (PATENT.md figure 3) through a real fabric in
//! one process: a switch, disk arrays with LUNs of every tier and a tape, two peer
//! controllers it must leave out, and the controller's own FCP initiator. Then the SAN
//! changes under the watcher: a LUN is added at run time, an array goes away.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use controller::extents::Extents;
use controller::model::{MediaType, VolumeName};
use controller::real::{self, RealVolume};
use controller::wire::{FC4_TYPE, GS_SUBTYPE, GS_TYPE, SYMBOLIC_PREFIX};
use fabric::driver::SwitchHandle;
use fabric::{Config, PortId, Switch};
use fc_frames::ct::ns::Fc4Features;
use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::disk::{array, DiskArray, LunSpec, TapeSpec};
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::target::Target;
use fc_node::node::service::{self, Registration, ServiceKey};
use fc_node::node::{Node, NodeConfig, Services};
use fc_node::scsi::{DiskConfig, MemLun, Tier};

const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee01);
const CONTROLLER: Wwn = Wwn::from_u64(0x2000_0000_0000_0c01);
const ARRAY_1: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
const ARRAY_2: Wwn = Wwn::from_u64(0x2200_0000_0000_0002);
/// A peer controller known by its symbolic name only.
const PEER_BY_NAME: Wwn = Wwn::from_u64(0x2000_0000_0000_0c02);
/// A peer controller known by its FC-4 TYPE only.
const PEER_BY_TYPE: Wwn = Wwn::from_u64(0x2000_0000_0000_0c03);
const WAIT: Duration = Duration::from_secs(10);
/// How soon the watcher must publish a change.
const SOON: Duration = Duration::from_secs(5);
const MIB: u64 = 1 << 20;

fn lun(n: u16) -> Lun {
    Lun::from_index(n).expect("small LUN")
}

fn switch() -> SwitchHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let config = Config::new(1, SWITCH, (1..=8).map(PortId));
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

fn disk(dir: &Path, array: Wwn, n: u16, bytes: u64, block_size: u32, tier: Tier) -> LunSpec {
    LunSpec {
        lun: lun(n),
        path: dir.join(format!("{:x}-{n}.img", array.to_u64())),
        bytes,
        block_size,
        tier,
        serial: format!("S{:x}{n}", array.to_u64() & 0xFF),
    }
}

/// An array of one ssd, one fast and one slow disk and a tape.
fn start_array_1(sw: &SwitchHandle, dir: &Path) -> DiskArray {
    let luns = [
        disk(dir, ARRAY_1, 0, 8 * MIB, 512, Tier::Ssd),
        disk(dir, ARRAY_1, 1, 16 * MIB, 4096, Tier::FastHdd),
        disk(dir, ARRAY_1, 2, 4 * MIB, 512, Tier::SlowHdd),
    ];
    let tapes = [TapeSpec {
        lun: lun(3),
        serial: "TAPE1".into(),
    }];
    DiskArray::start(node_config(ARRAY_1), connector(sw), &luns, &tapes).expect("array 1")
}

fn start_array_2(sw: &SwitchHandle, dir: &Path) -> DiskArray {
    let luns = [disk(dir, ARRAY_2, 0, 2 * MIB, 512, Tier::SlowHdd)];
    DiskArray::start(node_config(ARRAY_2), connector(sw), &luns, &[]).expect("array 2")
}

/// A controller that serves an FCP target (its virtual LUNs) and says so in its symbolic name.
fn start_peer_by_name(sw: &SwitchHandle, dir: &Path) -> DiskArray {
    let mut c = node_config(PEER_BY_NAME);
    c.symbolic_name = format!("{SYMBOLIC_PREFIX}peer-b");
    let luns = [disk(dir, PEER_BY_NAME, 0, MIB, 512, Tier::Ssd)];
    DiskArray::start(c, connector(sw), &luns, &[]).expect("peer by name")
}

/// A controller that serves an FCP target and registers the controllers' FC-4 TYPE.
fn start_peer_by_type(sw: &SwitchHandle, dir: &Path) -> (Node, service::Requests) {
    let mut c = node_config(PEER_BY_TYPE);
    c.target = true;
    let luns = [disk(dir, PEER_BY_TYPE, 0, MIB, 512, Tier::Ssd)];
    let engine = array::build_engine(c.port_name, c.node_name, &luns, &[]).expect("engine");
    let mut services = Services::new();
    Target::new(Arc::new(engine)).install(&mut services);
    let (ct, requests) = service::channel(
        ServiceKey::Ct(GS_TYPE, GS_SUBTYPE),
        Some(Registration {
            fc4_type: FC4_TYPE,
            features: Fc4Features::empty(),
        }),
        8,
    );
    services.add(
        [ServiceKey::Ct(GS_TYPE, GS_SUBTYPE)],
        service::Access::LoggedIn,
        ct,
    );
    (Node::spawn(c, connector(sw), services), requests)
}

fn start_controller(sw: &SwitchHandle) -> Initiator {
    let mut c = node_config(CONTROLLER);
    c.initiator = true;
    c.symbolic_name = format!("{SYMBOLIC_PREFIX}site-a");
    Initiator::new(Node::spawn(c, connector(sw), Services::new()))
        .with_timeout(Duration::from_secs(3))
}

fn expected(a1: &DiskArray, a2: Option<&DiskArray>) -> Vec<RealVolume> {
    let id1 = a1.node.port_id().expect("array 1 online");
    let v = |array, array_id, n, media, blocks, block_size, product: &str| RealVolume {
        array,
        array_id,
        lun: real::lun_code(lun(n)),
        media,
        block_size,
        blocks,
        vendor: "FCSAN".into(),
        product: product.into(),
    };
    let mut out = vec![
        v(
            ARRAY_1,
            id1,
            0,
            MediaType::Ssd,
            8 * MIB / 512,
            512,
            "FILE DISK SSD",
        ),
        v(
            ARRAY_1,
            id1,
            1,
            MediaType::FastHdd,
            16 * MIB / 4096,
            4096,
            "FILE DISK 15K",
        ),
        v(
            ARRAY_1,
            id1,
            2,
            MediaType::SlowHdd,
            4 * MIB / 512,
            512,
            "FILE DISK 7200",
        ),
        v(ARRAY_1, id1, 3, MediaType::Tape, 0, 0, "FILE TAPE"),
    ];
    if let Some(a2) = a2 {
        let id2 = a2.node.port_id().expect("array 2 online");
        out.push(v(
            ARRAY_2,
            id2,
            0,
            MediaType::SlowHdd,
            4096,
            512,
            "FILE DISK 7200",
        ));
    }
    out.sort();
    out
}

/// Waits until the watcher publishes a list `ok` accepts; that list.
async fn published(
    rx: &mut tokio::sync::watch::Receiver<Vec<RealVolume>>,
    what: &str,
    ok: impl Fn(&[RealVolume]) -> bool,
) -> Vec<RealVolume> {
    let found = match tokio::time::timeout(SOON, rx.wait_for(|l| ok(l))).await {
        Ok(Ok(list)) => Some(list.clone()),
        Ok(Err(_)) => panic!("the watcher stopped before {what}"),
        Err(_) => None,
    };
    found.unwrap_or_else(|| panic!("no list with {what} within {SOON:?}: {:#?}", *rx.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_discover_finds_every_lun_and_leaves_out_controllers() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let a1 = start_array_1(&sw, dir.path());
    let a2 = start_array_2(&sw, dir.path());
    let _peer_name = start_peer_by_name(&sw, dir.path());
    let (_peer_type, _requests) = start_peer_by_type(&sw, dir.path());
    for n in [&a1.node, &a2.node] {
        n.wait_online(WAIT).await.unwrap();
    }
    let ctl = start_controller(&sw);
    ctl.node().wait_online(WAIT).await.unwrap();
    // Both arrays and both peers are FCP targets the node logs in with.
    ctl.node().wait_targets(4, WAIT).await.unwrap();

    let found = real::discover(&ctl).await.unwrap();
    assert_eq!(found, expected(&a1, Some(&a2)));
    let capacity: u64 = found.iter().map(RealVolume::bytes).sum();
    assert_eq!(capacity, (8 + 16 + 4 + 2) * MIB);

    // A LUN added: the next command to array 1 after REPORT LUNS meets REPORTED LUNS DATA HAS
    // CHANGED, and the walk of that array starts again rather than leaving it out.
    let added = Arc::new(MemLun::new(2048, 512, Tier::Ssd).expect("mem lun"));
    a1.target
        .engine()
        .add_disk(
            lun(5),
            added.clone(),
            DiskConfig::new("MEM5", array::lun_name(ARRAY_1, lun(5))),
        )
        .unwrap();
    let found = real::discover(&ctl).await.unwrap();
    assert_eq!(found.len(), 6, "{found:#?}");
    let at = |l: &[RealVolume]| l.iter().find(|v| v.lun == real::lun_code(lun(5))).cloned();
    assert_eq!(
        at(&found).map(|v| (v.media, v.blocks)),
        Some((MediaType::Ssd, 2048))
    );

    // It grows: READ CAPACITY meets CAPACITY DATA HAS CHANGED and is asked again.
    assert!(added.resize(4096));
    let found = real::discover(&ctl).await.unwrap();
    assert_eq!(found.len(), 6, "{found:#?}");
    assert_eq!(at(&found).map(|v| v.blocks), Some(4096));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_watcher_sees_a_new_lun_and_a_vanished_array() {
    let dir = tempfile::tempdir().unwrap();
    let sw = switch();
    let a1 = start_array_1(&sw, dir.path());
    let a2 = start_array_2(&sw, dir.path());
    for n in [&a1.node, &a2.node] {
        n.wait_online(WAIT).await.unwrap();
    }
    let ctl = start_controller(&sw);
    ctl.node().wait_online(WAIT).await.unwrap();
    // The new LUN comes with no RSCN: the fallback scan finds it (its commands meet the unit
    // attention); the array that leaves is seen at once, from the RSCN.
    let (mut rx, task) = real::watch(ctl.clone(), Duration::from_secs(2));
    let first = published(&mut rx, "both arrays", |l| l.len() == 5).await;
    assert_eq!(first, expected(&a1, Some(&a2)));

    let mut extents = Extents::new();
    assert_eq!(extents.set_volumes(&first), Default::default());
    let id = controller::extents::ReservationId {
        builder: CONTROLLER,
        id: 1,
    };
    let on_2 = extents.reserve(0, id, MediaType::SlowHdd, 2 * MIB, 60_000);
    assert_eq!(on_2[0].array, ARRAY_2, "best fit: array 2's 2 MiB LUN");
    let vol = VolumeName::new("vol-on-2").unwrap();
    assert!(extents.commit(id, &vol));

    // A LUN added while the array runs: REPORTED LUNS DATA HAS CHANGED to its nexuses.
    let blocks = 32 * MIB / 512;
    let added = MemLun::new(blocks, 512, Tier::FastHdd).expect("mem lun");
    a1.target
        .engine()
        .add_disk(
            lun(7),
            Arc::new(added),
            DiskConfig::new("MEM7", array::lun_name(ARRAY_1, lun(7))),
        )
        .unwrap();
    let with_new = published(&mut rx, "LUN 7", |l| {
        // No list on the way leaves array 1 out for the unit attention it answered with.
        assert!(l.len() >= 5, "{l:#?}");
        l.iter().any(|v| v.lun == real::lun_code(lun(7)))
    })
    .await;
    let new = with_new
        .iter()
        .find(|v| v.lun == real::lun_code(lun(7)))
        .unwrap();
    assert_eq!(
        (new.array, new.media, new.blocks, new.block_size),
        (ARRAY_1, MediaType::FastHdd, blocks, 512)
    );
    assert_eq!(with_new.len(), 6);
    extents.set_volumes(&with_new);
    assert_eq!(
        extents.free_by_media()[&MediaType::FastHdd].bytes,
        (16 + 32) * MIB
    );

    // Array 2 goes away: its logout reaches the controller as an RSCN.
    a2.node.shutdown().await;
    let without_2 = published(&mut rx, "no array 2", |l| {
        l.iter().all(|v| v.array != ARRAY_2)
    })
    .await;
    assert_eq!(without_2.len(), 5);
    let changes = extents.set_volumes(&without_2);
    assert_eq!(changes.degraded, vec![vol.clone()]);
    assert!(!extents.used()[0].present, "the volume stays mapped");

    drop(rx);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the watcher ends with its last receiver")
        .unwrap();
}
