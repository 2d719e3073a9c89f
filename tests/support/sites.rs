//! What the in-process tests of the controllers' I/O path share: waiting for a condition,
//! volume names, controllers ready with their arrays and a peer.
#![allow(dead_code)] // Each test file uses what it needs of these.

use std::time::{Duration, Instant};

use controller::model::VolumeName;
use topology::{ControllerId, Running};

/// How long a condition may take on a busy two-core machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// A volume name the test knows is valid.
pub fn name(s: &str) -> VolumeName {
    VolumeName::new(s).unwrap()
}

/// Polls `cond` every 20 ms until it holds; fails naming `what` after [`WAIT`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until each of `controllers` has found its arrays, is ready and sees a peer up.
pub async fn controllers_ready(san: &Running, controllers: &[ControllerId]) {
    for &c in controllers {
        wait_for("controllers ready with their arrays and a peer", || {
            let ctl = &san.controller(c).controller;
            !ctl.real_volumes().is_empty()
                && ctl.inspect(|core| {
                    core.is_ready()
                        && core.peers().any(|p| {
                            p.state == controller::core::PeerState::Up && p.fc_id.is_some()
                        })
                })
        })
        .await;
    }
}

/// Two gateway sites, A (domain 1) dialing B (domain 2) with one connection, a 64 MiB SSD array
/// on each, controllers heartbeating every 250 ms: what the two-site I/O tests start from.
/// The sites, and site A's array.
pub fn two_ssd_sites(t: &mut topology::Topology) -> ([topology::GatewayId; 2], topology::ArrayId) {
    use topology::ArraySpec;
    const MIB: u64 = 1 << 20;
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    t.link(a, b, 1);
    let array = t.array(
        a,
        ArraySpec::new("ssda").disk(fc_node::scsi::Tier::Ssd, 64 * MIB),
    );
    t.array(
        b,
        ArraySpec::new("ssdb").disk(fc_node::scsi::Tier::Ssd, 64 * MIB),
    );
    t.controller_heartbeat(Duration::from_millis(250));
    ([a, b], array)
}
