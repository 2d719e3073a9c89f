//! The SAN roles put together: starting a switch with its TCP listener and capture, connecting
//! nodes to it over TCP, the reports the roles print, and `fcsan up` — a whole SAN on loopback
//! in one process.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use fabric::driver::{Direction, Snapshot, SwitchHandle};
use fabric::link::{self, Link};
use fabric::{Config, DefaultZone, PortId, Switch, Zone, ZoneSet, Zoning};
use fc_frames::ct::ns::Fc4Features;
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::disk::{DiskArray, LunSpec, TapeSpec};
use fc_node::fcp::initiator::Initiator;
use fc_node::node::{Node, NodeConfig};
use fc_node::scsi::Tier;
use tokio::net::TcpListener;

use crate::capture::FcPcapWriter;
use crate::host;

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
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create capture {}", path.display()))?;
        // Unbuffered: every record reaches the file at once, so a capture survives a kill.
        let writer = Arc::new(Mutex::new(FcPcapWriter::new(file)?));
        handle.set_tap(Some(Box::new(move |_port, dir, frame| {
            // Each frame once: as the switch received it, plus what the switch itself says.
            if dir == Direction::Rx || frame.header.s_id.is_well_known() {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = w.write(ts, frame) {
                    tracing::warn!(error = %e, "capture write failed");
                }
            }
        })));
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

/// Options of `fcsan up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Size of the file the host writes and reads back.
    pub file_bytes: u64,
    /// Where the LUN files go (a temporary folder when `None`).
    pub data_dir: Option<PathBuf>,
    /// Where to write the switch's FC capture, if anywhere.
    pub capture: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
}

const SWITCH_NAME: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee01);
const HOST_WWPN: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
const SSD_WWPN: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
const HDD_WWPN: Wwn = Wwn::from_u64(0x2200_0000_0000_0002);
const LUN_BYTES: u64 = 256 << 20;

/// The node name of a port of `up`: as in configs/, `20:..` with the port's last byte, hosts
/// from 0x11.
fn node_name(port_name: Wwn) -> Wwn {
    let low = port_name.to_u64() & 0xFF;
    let host = if port_name == HOST_WWPN { 0x10 } else { 0 };
    Wwn::from_u64(0x2000_0000_0000_0000 | (low + host))
}

fn lun(n: u16) -> Lun {
    Lun::from_index(n).unwrap_or(Lun::ZERO)
}

/// `fcsan up`: a switch, two disk arrays of different tiers and a host on loopback TCP; the
/// host finds the LUNs, writes a file, reads it back verified; prints what it saw.
pub async fn up(opts: UpOptions, out: &mut dyn io::Write) -> Result<()> {
    let tmp;
    let dir = match &opts.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut config = Config::new(1, SWITCH_NAME, (1..=16).map(PortId));
    config.zoning = Zoning {
        active: Some(ZoneSet {
            name: "production".into(),
            zones: vec![Zone::new("host-a", [HOST_WWPN, SSD_WWPN, HDD_WWPN])],
        }),
        default_zone: DefaultZone::NoAccess,
    };
    let sw = start_switch(config, "127.0.0.1:0".parse()?, opts.capture.as_deref()).await?;
    writeln!(out, "switch: domain 01, {} on {}", SWITCH_NAME, sw.addr)?;

    let arrays = [
        (SSD_WWPN, Tier::Ssd, Tier::Ssd, "ssd"),
        (HDD_WWPN, Tier::FastHdd, Tier::SlowHdd, "hdd"),
    ];
    let mut running = Vec::new();
    for (wwpn, t0, t1, name) in arrays {
        let luns: Vec<LunSpec> = [(0, t0), (1, t1)]
            .into_iter()
            .map(|(n, tier)| LunSpec {
                lun: lun(n),
                path: dir.join(format!("{name}{n}.img")),
                bytes: LUN_BYTES,
                block_size: 512,
                tier,
                serial: format!("{}{n}", name.to_uppercase()),
            })
            .collect();
        let tapes: Vec<TapeSpec> = if name == "ssd" {
            vec![TapeSpec {
                lun: lun(2),
                serial: "TAPE0".into(),
            }]
        } else {
            Vec::new()
        };
        let mut nc = NodeConfig::new(wwpn, node_name(wwpn));
        nc.symbolic_name = format!("fcsan disk array {name}");
        running.push(DiskArray::start(nc, tcp_connector(sw.addr), &luns, &tapes)?);
    }

    let mut nc = NodeConfig::new(HOST_WWPN, node_name(HOST_WWPN));
    nc.initiator = true;
    nc.symbolic_name = "fcsan host".into();
    let host = Initiator::new(Node::spawn(nc, tcp_connector(sw.addr), None));
    let port_id = host.node().wait_online(Duration::from_secs(10)).await?;
    writeln!(out, "host {HOST_WWPN} logged in as {port_id}")?;
    host.node()
        .wait_targets(2, Duration::from_secs(10))
        .await
        .context("the host did not find both disk arrays")?;

    writeln!(out, "\nLUNs the host sees (tier from VPD page 0xB1):")?;
    for l in host::list(&host).await? {
        writeln!(out, "  {}", l.line())?;
    }

    // A file of pseudo-random bytes, to the SSD LUN and back.
    let src = dir.join("host-file.bin");
    let back = dir.join("host-file.readback");
    write_random(&src, opts.file_bytes)?;
    let target = host::find_target(&host, Some(SSD_WWPN))?;
    let w = host::write_file(&host, target.port_id, lun(0), &src, false, opts.progress).await?;
    writeln!(
        out,
        "\nwrote {} to {} LUN 0 in {:.2} s ({:.0} MiB/s), SYNCHRONIZE CACHE done",
        host::human(w.bytes),
        target.port_name,
        w.elapsed.as_secs_f64(),
        w.mib_per_s()
    )?;
    let r = host::read_file(&host, target.port_id, lun(0), &back, w.bytes, opts.progress).await?;
    if std::fs::read(&src)? != std::fs::read(&back)? {
        bail!("the data read back differs from the data written");
    }
    writeln!(
        out,
        "read it back in {:.2} s ({:.0} MiB/s): identical",
        r.elapsed.as_secs_f64(),
        r.mib_per_s()
    )?;

    let snap = sw.handle.snapshot();
    writeln!(out, "\nName server:\n{}", name_server_table(&snap))?;
    writeln!(out, "Switch port counters:\n{}", counters_table(&snap))?;
    if let Some(c) = &opts.capture {
        writeln!(
            out,
            "FC capture: {} (open it in Wireshark, or: fcsan pcap show {})",
            c.display(),
            c.display()
        )?;
    }
    host.node().shutdown().await;
    for a in running {
        a.node.shutdown().await;
    }
    Ok(())
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
