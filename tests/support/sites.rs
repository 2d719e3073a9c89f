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
