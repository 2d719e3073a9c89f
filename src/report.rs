//! What the `fcsan` binary prints about a SAN: the name server, per-port counters, FCIP links
//! and their connections, and the LUNs a host sees, as aligned tables and lines.

use std::fmt::Write as _;

use fabric::driver::Snapshot;
use fc_frames::ct::ns::Fc4Features;
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::scsi::data::DeviceType;
use fc_node::fcp::discovery::LunInfo;
use fc_node::scsi::Tier;
use fcip::capture::CaptureStats;
use fcip::connection::{ConnectionCounters, SetupCounters};
use gateway::LinkStatus;

/// The name server table, one line a port.
pub fn name_server_table(s: &Snapshot) -> String {
    let mut out = String::from("N_Port ID  port  WWPN                     WWNN                     FC-4 features  symbolic name\n");
    for e in &s.name_server {
        let features = e
            .fc4_features
            .iter()
            .find(|(t, _)| *t == TYPE_FCP)
            .map_or(Fc4Features::empty(), |(_, f)| f);
        let _ = writeln!(
            out,
            "{}     {:<5} {}  {}  FCP {:<10} {}",
            e.port_id,
            e.port.0,
            e.port_name,
            e.node_name,
            features.to_string(),
            String::from_utf8_lossy(e.symbolic_port_name.as_bytes())
        );
    }
    out
}

/// Per-port counters, one line a port that is up or has moved a frame.
pub fn counters_table(s: &Snapshot) -> String {
    let mut out = String::from(
        "port  up   rx frames      rx bytes  tx frames      tx bytes  discards (unzoned, unroutable, not logged in, malformed, port down)  held past hold time\n",
    );
    for p in &s.ports {
        let c = &p.counters;
        if !p.up && c.rx_frames == 0 && c.tx_frames == 0 {
            continue;
        }
        let d = &c.discards;
        let _ = writeln!(
            out,
            "{:<5} {:<4} {:>9} {:>13} {:>10} {:>13}  {} ({}, {}, {}, {}, {})  {}",
            p.port.0,
            if p.up { "yes" } else { "no" },
            c.rx_frames,
            c.rx_bytes,
            c.tx_frames,
            c.tx_bytes,
            d.total(),
            d.unzoned,
            d.unroutable,
            d.not_logged_in,
            d.malformed,
            d.port_down,
            c.tx_discards
        );
    }
    out
}

/// Each peer link: its state, then a line per open connection and the closed ones' sum.
pub fn links_table(links: &[LinkStatus]) -> String {
    let mut out = String::from(
        "peer                     port  up   connections up/configured  opened  closed  dial failures  dropped (no connection)\n",
    );
    for l in links {
        let c = &l.counters;
        let _ = writeln!(
            out,
            "{}  {:<5} {:<4} {:>25}  {:>6}  {:>6}  {:>13}  {}",
            l.peer,
            l.port.0,
            if c.connections_up > 0 { "yes" } else { "no" },
            format!("{}/{}", c.connections_up, l.configured),
            c.connections_opened,
            c.connections_closed,
            c.dial_failures,
            c.dropped_no_connection
        );
        let _ = writeln!(
            out,
            "  connection  tx frames      tx bytes  rx frames      rx bytes  encap errors  \
             sync losses  bytes skipped  CRC errors  transit discards  LKA sent  LKA answered  \
             LKA time-outs"
        );
        for (i, k) in l.connections.iter().enumerate() {
            connection_row(&mut out, &format!("{}", i + 1), k);
        }
        connection_row(&mut out, "closed", &c.closed_totals);
        let _ = writeln!(out, "  dials failed: {}", setup_line(&c.setup_failures));
    }
    out
}

fn connection_row(out: &mut String, label: &str, k: &ConnectionCounters) {
    let r = &k.rx;
    let _ = writeln!(
        out,
        "  {label:<10} {:>10} {:>13} {:>10} {:>13} {:>13} {:>12} {:>14} {:>11} {:>17} {:>9} {:>13} {:>14}",
        k.tx_frames,
        k.tx_bytes,
        r.frames,
        r.bytes,
        r.encapsulation_errors,
        r.fc_sync_losses,
        r.bytes_skipped,
        r.crc_errors,
        r.transit_discards,
        k.lka_sent,
        k.lka_answered,
        k.lka_timeouts
    );
}

/// What the FCIP capture wrote and dropped.
pub fn capture_line(c: &CaptureStats) -> String {
    let mut line = format!("{} packets written, {} dropped", c.recorded, c.dropped);
    if c.dropped > 0 {
        line.push_str(" (the capture did not keep up with the link)");
    }
    line
}

/// Failed connection set-ups, in the FCIP MIB's terms.
pub fn setup_line(c: &SetupCounters) -> String {
    format!(
        "{} no Special Frame, {} Special Frame response mismatches ({} invalid nonces), \
         {} invalid WWNs, {} bad Special Frames, {} TCP failures",
        c.sf_not_received,
        c.sf_response_mismatches,
        c.invalid_nonces,
        c.invalid_wwns,
        c.bad_special_frames,
        c.tcp_failures
    )
}

/// One LUN a host sees: `22:00:..:01 (010200) LUN 0  disk  ssd  8388608 x 512 B (4.0 GiB)  FCSAN FILE DISK`.
pub fn lun_line(l: &LunInfo) -> String {
    let mut s = format!(
        "{} ({}) LUN {:<3} {:<5}",
        l.target.port_name,
        l.target.port_id,
        l.lun
            .index()
            .map_or_else(|| "?".to_string(), |i| i.to_string()),
        match l.device_type {
            DeviceType::DIRECT_ACCESS => "disk",
            DeviceType::SEQUENTIAL_ACCESS => "tape",
            _ => "other",
        }
    );
    let _ = write!(s, " {:<9}", l.tier.map_or("-", Tier::name));
    match l.capacity {
        Some(c) => {
            let _ = write!(
                s,
                " {} x {} B ({})",
                c.blocks(),
                c.block_size(),
                human(c.bytes().unwrap_or(u64::MAX))
            );
        }
        None => s.push_str(" no capacity"),
    }
    let _ = write!(s, "  {} {}", l.vendor, l.product);
    s
}

/// `64.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_human() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
