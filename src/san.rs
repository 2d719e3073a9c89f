//! The SAN roles put together: starting a switch with its TCP listener and capture, connecting
//! nodes to it over TCP, and the reports the roles print (name server, port counters, FCIP
//! links).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use fabric::driver::{Direction, Snapshot, SwitchHandle};
use fabric::link::{self, Link};
use fabric::{Config, Switch};
use fc_frames::ct::ns::Fc4Features;
use fc_frames::els::prli::TYPE_FCP;
use fcip::capture::CaptureStats;
use fcip::connection::{ConnectionCounters, SetupCounters};
use gateway::LinkStatus;
use tokio::net::TcpListener;

use crate::capture::FcPcapWriter;

/// A connector that dials the switch at `addr` over TCP, again after every link loss.
pub fn tcp_connector(
    addr: SocketAddr,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Link>> + Send>>
       + Send
       + 'static {
    move || Box::pin(link::tcp::connect(addr))
}

/// A running switch: its handle and the address nodes dial.
pub struct RunningSwitch {
    /// The switch.
    pub handle: SwitchHandle,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts a switch listening on `listen`, writing every frame it receives and every frame it
/// originates to `capture` (pcap link type 225) when given.
pub async fn start_switch(
    config: Config,
    listen: SocketAddr,
    capture: Option<&Path>,
) -> Result<RunningSwitch> {
    let switch = Switch::new(config).context("switch configuration")?;
    let handle = SwitchHandle::spawn(switch);
    if let Some(path) = capture {
        start_switch_tap(&handle, path)?;
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let h = handle.clone();
    tokio::spawn(async move {
        if let Err(e) = h.serve_tcp(listener).await {
            tracing::error!(error = %e, "switch listener failed");
        }
    });
    Ok(RunningSwitch { handle, addr })
}

/// Writes every frame the switch receives and every frame it originates to a new pcap file
/// at `path` (link type 225).
pub fn start_switch_tap(handle: &SwitchHandle, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create capture {}", path.display()))?;
    // Unbuffered: every record reaches the file at once, so a capture survives a kill.
    let writer = Arc::new(Mutex::new(FcPcapWriter::new(file)?));
    handle.set_tap(Some(Box::new(move |_port, dir, frame| {
        // Each frame once: as the switch received it, plus what the switch itself says
        // (as a server, or as its domain controller to other switches).
        let s = frame.header.s_id;
        if dir == Direction::Rx || s.is_well_known() || s.is_domain_controller() {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = w.write(ts, frame) {
                tracing::warn!(error = %e, "capture write failed");
            }
        }
    })));
    Ok(())
}

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
        "port  up   rx frames      rx bytes  tx frames      tx bytes  discards (unzoned, unroutable, not logged in, malformed, port down)\n",
    );
    for p in &s.ports {
        let c = &p.counters;
        if !p.up && c.rx_frames == 0 && c.tx_frames == 0 {
            continue;
        }
        let d = &c.discards;
        let _ = writeln!(
            out,
            "{:<5} {:<4} {:>9} {:>13} {:>10} {:>13}  {} ({}, {}, {}, {}, {})",
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
            d.port_down
        );
    }
    out
}

/// Writes `len` pseudo-random bytes (xorshift64*) to `path`.
pub fn write_random(path: &Path, len: u64) -> Result<()> {
    use std::io::Write;
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
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
