//! Replay as a switch: the sans-IO [`Switch`] core, driven directly on the capture's time.
//!
//! A port comes up when the capture first shows a frame on it (the capture records frames,
//! not link events: a port that went down and up again in the capture is not replayed as
//! such, and the RSCNs it caused show as a difference).

use std::time::{Duration, Instant};

use fabric::{PortId, Switch};
use fc_pcap::capture::Direction;

use crate::compare::{compare, Sent};
use crate::{frames, Loaded, Outcome, ReplayError, Role};

/// Replays `loaded` as a switch.
pub fn replay(loaded: &Loaded) -> Result<Outcome, ReplayError> {
    let config =
        topology::capture::switch_config_from_json(&loaded.metadata.config).map_err(|why| {
            ReplayError::Setup {
                role: "switch",
                why,
            }
        })?;
    let mut sw = Switch::new(config).map_err(|e| ReplayError::Setup {
        role: "switch",
        why: e.to_string(),
    })?;
    let frames = frames(loaded)?;
    let origin = Duration::from_nanos(loaded.metadata.clock_origin_ns);
    let base = Instant::now();
    let at = |ts: Duration| base + ts.saturating_sub(origin);
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut up = std::collections::BTreeSet::new();
    let mut fed = 0;
    let mut last = base;
    for (number, dir, iface, ts, frame) in frames {
        let port = iface
            .strip_prefix("port ")
            .and_then(|p| p.parse::<u8>().ok())
            .ok_or_else(|| ReplayError::BadFrame {
                number,
                why: format!("interface {iface:?} is not a switch port"),
            })?;
        let now = at(ts).max(last);
        last = now;
        advance(&mut sw, now, &mut got);
        match dir {
            Direction::Outbound => expected.push(Sent {
                number,
                port,
                frame,
            }),
            Direction::Inbound => {
                if up.insert(port) {
                    sw.port_up(now, PortId(port));
                }
                sw.handle_frame(now, PortId(port), frame);
                fed += 1;
                drain(&mut sw, &mut got);
            }
        }
    }
    advance(&mut sw, last, &mut got);
    Ok(Outcome {
        role: Role::Switch,
        fed,
        expected: expected.len(),
        sent: got.len(),
        difference: compare(&expected, &got),
        notes: Vec::new(),
    })
}

/// Handles every time-out due by `now`.
fn advance(sw: &mut Switch, now: Instant, got: &mut Vec<Sent>) {
    let mut previous = None;
    while let Some(due) = sw.poll_timeout().filter(|d| *d <= now) {
        if previous == Some(due) {
            // Handled and still due: handled at `now` instead, once.
            sw.handle_timeout(now);
            drain(sw, got);
            break;
        }
        previous = Some(due);
        sw.handle_timeout(due);
        drain(sw, got);
    }
}

/// What the switch sends of its own (as a server or domain controller).
fn drain(sw: &mut Switch, got: &mut Vec<Sent>) {
    while let Some((port, frame)) = sw.poll_transmit() {
        let s = frame.header.s_id;
        if s.is_well_known() || s.is_domain_controller() {
            got.push(Sent {
                number: 0,
                port: port.0,
                frame,
            });
        }
    }
    while sw.poll_event().is_some() {}
}
