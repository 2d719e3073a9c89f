//! The I/O path through the controllers, in one process: two SANs joined by FCIP gateways, an
//! array on A, a controller on each, a host on each. Hosts read and write a virtual volume
//! owned by A through their own site's controller — A's to the array, B's forwarded to A
//! through the gateways — and B's second read of the same data comes from its cache.

use std::time::{Duration, Instant};

use bytes::Bytes;
use controller::api::BuildSpec;
use controller::model::MediaType;
use fc_frames::scsi::data::{Association, DesignatorType, VpdPage};
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::conformance;
use fc_node::fcp::initiator::{Initiator, ScsiError};
use topology::{ArrayId, ControllerId, HostId, Running, Topology};

#[path = "support/sites.rs"]
mod sites;
use sites::{controllers_ready, name, wait_for, WAIT};

const MIB: u64 = 1 << 20;

struct Two {
    san: Running,
    ctl: [ControllerId; 2],
    host: [HostId; 2],
    array: ArrayId,
}

async fn two_sites(dir: &std::path::Path) -> Two {
    let mut t = Topology::new();
    let ([a, b], array) = sites::two_ssd_sites(&mut t);
    let ca = t.controller(a);
    let cb = t.controller(b);
    let ha = t.host(a);
    let hb = t.host(b);
    let san = t.start(dir).await.expect("topology starts");
    controllers_ready(&san, &[ca, cb]).await;
    Two {
        san,
        ctl: [ca, cb],
        host: [ha, hb],
        array,
    }
}

/// The host's way to its controller: the controller's N_Port_ID (logged in as a target).
async fn controller_port(san: &Running, host: HostId, ctl: ControllerId) -> (Initiator, FcId) {
    let init = san.host(host).initiator.clone();
    let wwpn: Wwn = san.controller(ctl).port_name;
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

/// Sends TEST UNIT READY until the unit attentions (power on, LUNs changed) are consumed.
async fn ready(init: &Initiator, id: FcId, lun: Lun) {
    for _ in 0..8 {
        match init.test_unit_ready(id, lun).await {
            Ok(()) => return,
            Err(ScsiError::CheckCondition(_)) => continue,
            Err(e) => panic!("TEST UNIT READY: {e}"),
        }
    }
    panic!("LUN never ready");
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn naa(page: &VpdPage) -> Option<Vec<u8>> {
    let VpdPage::DeviceIdentification(ds) = page else {
        return None;
    };
    ds.iter()
        .find(|d| {
            d.association == Association::LOGICAL_UNIT && d.designator_type == DesignatorType::NAA
        })
        .map(|d| d.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_read_and_write_a_volume_owned_across_the_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let Two {
        san,
        ctl,
        host,
        array,
    } = two_sites(dir.path()).await;
    let [ca, cb] = ctl;
    let ctl_a = &san.controller(ca).controller;
    let ctl_b = &san.controller(cb).controller;
    ctl_a
        .build(BuildSpec {
            name: Some(name("vol1")),
            media: MediaType::Ssd,
            capacity: 16 * MIB,
        })
        .await
        .expect("built on A");
    wait_for("vol1 served at both controllers", || {
        ctl_a.lun_of(&name("vol1")).is_some() && ctl_b.lun_of(&name("vol1")).is_some()
    })
    .await;
    let lun_a = ctl_a.lun_of(&name("vol1")).unwrap();
    let lun_b = ctl_b.lun_of(&name("vol1")).unwrap();

    let (init_a, to_a) = controller_port(&san, host[0], ca).await;
    let (init_b, to_b) = controller_port(&san, host[1], cb).await;
    ready(&init_a, to_a, lun_a).await;
    ready(&init_b, to_b, lun_b).await;

    // One volume, two paths: the same identity at both controllers.
    let id_a = naa(&init_a.vpd(to_a, lun_a, 0x83).await.unwrap()).unwrap();
    let id_b = naa(&init_b.vpd(to_b, lun_b, 0x83).await.unwrap()).unwrap();
    assert_eq!(id_a, id_b);
    let sn_a = init_a.vpd(to_a, lun_a, 0x80).await.unwrap();
    let sn_b = init_b.vpd(to_b, lun_b, 0x80).await.unwrap();
    assert_eq!(sn_a, sn_b);
    let cap = init_b.read_capacity(to_b, lun_b).await.unwrap();
    assert_eq!(cap.blocks() * u64::from(cap.block_size()), 16 * MIB);
    let bs = cap.block_size();

    // B writes (forwarded to A, which writes the array), A reads it back locally.
    let data = pattern(2 * MIB as usize, 7);
    init_b
        .write(to_b, lun_b, 0, data.clone(), bs, false)
        .await
        .expect("write through B");
    let blocks = (data.len() / bs as usize) as u32;
    let back = init_a.read(to_a, lun_a, 0, blocks, bs).await.unwrap();
    assert_eq!(back, data, "A reads what B wrote");

    // B reads: a miss (to A), then hits from its cache, no WAN bytes.
    let first = init_b.read(to_b, lun_b, 0, blocks, bs).await.unwrap();
    assert_eq!(first, data);
    // The lease is asked for on the first miss; wait for it, then fill and hit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = init_b.read(to_b, lun_b, 0, blocks, bs).await.unwrap();
    let before = ctl_b.io_counters(&name("vol1")).unwrap();
    let hit = init_b.read(to_b, lun_b, 0, blocks, bs).await.unwrap();
    assert_eq!(hit, data);
    let after = ctl_b.io_counters(&name("vol1")).unwrap();
    assert_eq!(after.cache_hits, before.cache_hits + 1, "{after:?}");
    assert_eq!(after.wan_bytes, before.wan_bytes, "a hit crosses no WAN");
    assert!(after.wan_bytes_saved >= 2 * MIB);

    // A writes part of it: B's cache is invalidated before A acknowledges.
    let newer = pattern(64 * 1024, 99);
    init_a
        .write(to_a, lun_a, 8, newer.clone(), bs, false)
        .await
        .unwrap();
    let n = (newer.len() / bs as usize) as u32;
    let seen = init_b.read(to_b, lun_b, 8, n, bs).await.unwrap();
    assert_eq!(
        seen, newer,
        "B never reads data older than A's acknowledged write"
    );
    assert!(ctl_b.io_counters(&name("vol1")).unwrap().invalidations >= 1);

    // Bad input: past the end is a CHECK CONDITION, forwarded or not.
    let end = cap.blocks();
    for (init, id, lun) in [(&init_a, to_a, lun_a), (&init_b, to_b, lun_b)] {
        match init.read(id, lun, end, 1, bs).await {
            Err(ScsiError::CheckCondition(s)) => {
                assert_eq!(s, fc_frames::scsi::Sense::lba_out_of_range())
            }
            other => panic!("read past the end: {other:?}"),
        }
    }

    // The array's SCSI edge cases, against the virtual LUN owned here and the one forwarded:
    // the same answers, case by case.
    let array_port = san.array(array).port_name;
    let at_array = init_a
        .node()
        .targets()
        .into_iter()
        .find(|t| t.port_name == array_port)
        .expect("host A logged in with its array")
        .port_id;
    let unused = |ctl: &controller::driver::Controller| {
        (1..16383u16)
            .rev()
            .map(|i| Lun::from_index(i).unwrap())
            .find(|l| !ctl.target().engine().luns().contains(l))
            .unwrap()
    };
    let reference = conformance::edge_cases(
        &init_a,
        at_array,
        Lun::from_index(0).unwrap(),
        Lun::from_index(200).unwrap(),
    )
    .await
    .unwrap();
    for (init, id, lun, absent, path) in [
        (&init_a, to_a, lun_a, unused(ctl_a), "owned here"),
        (&init_b, to_b, lun_b, unused(ctl_b), "forwarded"),
    ] {
        let got = conformance::edge_cases(init, id, lun, absent)
            .await
            .unwrap();
        assert_eq!(got, reference, "virtual LUN {path}");
    }
    san.shutdown().await;
}
