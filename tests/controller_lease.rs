//! A forwarding controller's cache outlives pauses in the reads: its lease is renewed in the
//! background while the volume was read lately, so a host that pauses for longer than a lease
//! still reads from its own SAN afterwards.

use std::time::{Duration, Instant};

use controller::api::BuildSpec;
use controller::core::PeerState;
use controller::io::IoConfig;
use controller::model::{MediaType, VolumeName};
use fc_frames::scsi::Lun;
use fc_frames::FcId;
use fc_node::fcp::initiator::{Initiator, ScsiError};
use topology::Topology;

#[path = "support/sites.rs"]
mod sites;
use sites::{wait_for, WAIT};

const MIB: u64 = 1 << 20;
/// Short leases, so that a pause of several lease lengths is short.
const LEASE: Duration = Duration::from_millis(400);

/// The host's way to the port `wwpn`, and TEST UNIT READY until its unit attentions are
/// consumed.
async fn target(init: &Initiator, wwpn: fc_frames::Wwn, lun: Lun) -> FcId {
    let start = Instant::now();
    let id = loop {
        if let Some(t) = init
            .node()
            .targets()
            .into_iter()
            .find(|t| t.port_name == wwpn)
        {
            break t.port_id;
        }
        assert!(start.elapsed() < WAIT, "host never logged in with {wwpn}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..8 {
        match init.test_unit_ready(id, lun).await {
            Ok(()) => return id,
            Err(ScsiError::CheckCondition(_)) => continue,
            Err(e) => panic!("TEST UNIT READY: {e}"),
        }
    }
    panic!("LUN never ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_the_lease_keeps_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let ([a, b], _) = sites::two_ssd_sites(&mut t);
    t.controller_io(IoConfig {
        lease: LEASE,
        ..IoConfig::default()
    });
    let ca = t.controller(a);
    let cb = t.controller(b);
    let hb = t.host(b);
    let san = t.start(dir.path()).await.expect("topology starts");
    for c in [ca, cb] {
        let ctl = &san.controller(c).controller;
        wait_for("controllers ready with their arrays", || {
            !ctl.real_volumes().is_empty()
                && ctl.inspect(|core| {
                    core.is_ready() && core.peers().any(|p| p.state == PeerState::Up)
                })
        })
        .await;
    }
    let (ctl_a, ctl_b) = (
        &san.controller(ca).controller,
        &san.controller(cb).controller,
    );
    let name = VolumeName::new("paused").unwrap();
    ctl_a
        .build(BuildSpec {
            name: Some(name.clone()),
            media: MediaType::Ssd,
            capacity: 4 * MIB,
        })
        .await
        .expect("built on A");
    wait_for("the volume served at B", || ctl_b.lun_of(&name).is_some()).await;
    let lun = ctl_b.lun_of(&name).unwrap();
    let init = san.host(hb).initiator.clone();
    let id = target(&init, san.controller(cb).port_name, lun).await;

    // A miss asks for the lease; once it is held, a read fills the cache and the next hits.
    let start = Instant::now();
    loop {
        let before = ctl_b.io_counters(&name).unwrap().cache_hits;
        init.read(id, lun, 0, 128, 512).await.unwrap();
        if ctl_b.io_counters(&name).unwrap().cache_hits > before {
            break;
        }
        assert!(start.elapsed() < WAIT, "B's reads never hit its cache");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A pause of several lease lengths: the lease is renewed meanwhile, the cache kept.
    tokio::time::sleep(LEASE * 4).await;
    let before = ctl_b.io_counters(&name).unwrap();
    init.read(id, lun, 0, 128, 512).await.unwrap();
    let after = ctl_b.io_counters(&name).unwrap();
    assert_eq!(after.cache_hits, before.cache_hits + 1, "{after:?}");
    assert_eq!(
        after.wan_bytes, before.wan_bytes,
        "the read stayed on B's SAN"
    );
    san.shutdown().await;
}
