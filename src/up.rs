//! `fcsan up`: two SANs joined by an FCIP link, in one process on loopback TCP.
//!
//! ```text
//!  site A (domain 01)                                   site B (domain 02)
//!  host ─┐                                                ┌─ array "hdd" (15k, 7200 rpm LUNs)
//!        ├─ gateway A ══ FCIP link, 2 TCP connections ══ gateway B
//!  array "ssd" (2 SSD LUNs, tape) ─┘                      └
//! ```
//!
//! The host on site A finds both arrays with the name server (the one on site B through the
//! gateways' name server exchange), lists every LUN with its tier, writes a file to a LUN on
//! site B and reads it back verified, then prints both name servers, the switches' counters,
//! the FCIP link's counters and where the FCIP capture went.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fabric::{Config, DefaultZone, PortId, Zone, ZoneSet, Zoning};
use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::disk::{DiskArray, LunSpec, TapeSpec};
use fc_node::fcp::initiator::Initiator;
use fc_node::node::{Node, NodeConfig};
use fc_node::scsi::Tier;
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::net::TcpListener;

use crate::host;
use crate::san::{
    capture_line, counters_table, links_table, name_server_table, start_switch_tap, tcp_connector,
    write_random,
};

/// Options of `fcsan up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Size of the file the host writes and reads back.
    pub file_bytes: u64,
    /// Where the LUN files go (a temporary folder when `None`).
    pub data_dir: Option<PathBuf>,
    /// Where to write site A's switch traffic as FC frames (pcap link type 225), if anywhere.
    pub capture: Option<PathBuf>,
    /// Where gateway A writes every FCIP frame of the link, as Ethernet/IPv4/TCP packets.
    pub fcip_capture: PathBuf,
    /// Show progress bars.
    pub progress: bool,
}

const GATEWAY_A: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee01);
const GATEWAY_B: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee02);
const HOST_WWPN: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
const SSD_WWPN: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
const HDD_WWPN: Wwn = Wwn::from_u64(0x2200_0000_0000_0002);
const LUN_BYTES: u64 = 256 << 20;
/// The inter-switch port each gateway gives the link to the other.
const ISL: PortId = PortId(100);
/// TCP connections of the FCIP link.
const CONNECTIONS: usize = 2;

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

/// One site: its gateway and the address its switch takes nodes on.
struct Site {
    gateway: Gateway,
    addr: SocketAddr,
}

/// Starts a gateway whose switch zones the host with both arrays and takes nodes over TCP.
async fn site(
    domain: u8,
    name: Wwn,
    peer: PeerConfig,
    capture: Option<&Path>,
    fcip_capture: Option<PathBuf>,
) -> Result<Site> {
    let mut switch = Config::new(domain, name, (1..=16).map(PortId));
    switch.zoning = Zoning {
        active: Some(ZoneSet {
            name: "production".into(),
            zones: vec![Zone::new("host-a", [HOST_WWPN, SSD_WWPN, HDD_WWPN])],
        }),
        default_zone: DefaultZone::NoAccess,
    };
    let config = GatewayConfig {
        switch,
        fcip_listen: "127.0.0.1:0".parse()?,
        peers: vec![peer],
        k_a_tov: Duration::from_secs(6),
        receiver: ReceiverConfig::default(),
        capture: fcip_capture,
    };
    let gateway = Gateway::start(config, u64::from(domain))
        .await
        .with_context(|| format!("gateway of domain {domain:02x}"))?;
    if let Some(path) = capture {
        start_switch_tap(&gateway.switch, path)?;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sw = gateway.switch.clone();
    tokio::spawn(async move {
        if let Err(e) = sw.serve_tcp(listener).await {
            tracing::error!(error = %e, "switch listener failed");
        }
    });
    Ok(Site { gateway, addr })
}

/// A disk array of two LUNs (and a tape drive on the SSD one) on files in `dir`.
fn array(
    dir: &Path,
    addr: SocketAddr,
    wwpn: Wwn,
    name: &str,
    tiers: [Tier; 2],
) -> Result<DiskArray> {
    let luns: Vec<LunSpec> = tiers
        .into_iter()
        .zip(0..)
        .map(|(tier, n)| LunSpec {
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
    Ok(DiskArray::start(nc, tcp_connector(addr), &luns, &tapes)?)
}

/// `fcsan up`: the two sites, the host's discovery, the file to site B and back.
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
    let b = site(
        2,
        GATEWAY_B,
        PeerConfig {
            fabric: GATEWAY_A,
            dial: None,
            domains: Vec::new(),
            port: ISL,
            connections: CONNECTIONS,
        },
        None,
        None,
    )
    .await?;
    let a = site(
        1,
        GATEWAY_A,
        PeerConfig {
            fabric: GATEWAY_B,
            dial: Some(b.gateway.fcip_addr()),
            domains: Vec::new(),
            port: ISL,
            connections: CONNECTIONS,
        },
        opts.capture.as_deref(),
        Some(opts.fcip_capture.clone()),
    )
    .await?;
    for (s, name, domain, wwn) in [(&a, "A", 1, GATEWAY_A), (&b, "B", 2, GATEWAY_B)] {
        writeln!(
            out,
            "site {name}: gateway {wwn}, domain {domain:02x}, switch on {}, FCIP on {}",
            s.addr,
            s.gateway.fcip_addr()
        )?;
    }

    let arrays = [
        array(&dir, a.addr, SSD_WWPN, "ssd", [Tier::Ssd, Tier::Ssd])?,
        array(
            &dir,
            b.addr,
            HDD_WWPN,
            "hdd",
            [Tier::FastHdd, Tier::SlowHdd],
        )?,
    ];
    let mut nc = NodeConfig::new(HOST_WWPN, node_name(HOST_WWPN));
    nc.initiator = true;
    nc.symbolic_name = "fcsan host".into();
    let host = Initiator::new(Node::spawn(nc, tcp_connector(a.addr), None));
    let port_id = host.node().wait_online(Duration::from_secs(10)).await?;
    writeln!(out, "host {HOST_WWPN} logged in to site A as {port_id}")?;
    host.node()
        .wait_targets(2, Duration::from_secs(20))
        .await
        .context("the host did not find both disk arrays (one on each site)")?;

    writeln!(
        out,
        "\nLUNs the host sees (tier from VPD page 0xB1; domain 02 is site B):"
    )?;
    for l in host::list(&host).await? {
        writeln!(out, "  {}", l.line())?;
    }

    // A file of pseudo-random bytes, to a LUN across the FCIP link and back.
    let src = dir.join("host-file.bin");
    let back = dir.join("host-file.readback");
    write_random(&src, opts.file_bytes)?;
    let target = host::find_target(&host, Some(HDD_WWPN))?;
    let w = host::write_file(&host, target.port_id, lun(0), &src, false, opts.progress).await?;
    writeln!(
        out,
        "\nwrote {} to {} LUN 0 on site B in {:.2} s ({:.0} MiB/s), SYNCHRONIZE CACHE done",
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

    for (s, name) in [(&a, "A"), (&b, "B")] {
        let snap = s.gateway.switch.snapshot();
        writeln!(
            out,
            "\nSite {name} name server (port {} is the FCIP link):\n{}",
            ISL.0,
            name_server_table(&snap)
        )?;
        writeln!(
            out,
            "Site {name} switch port counters:\n{}",
            counters_table(&snap)
        )?;
    }
    writeln!(
        out,
        "FCIP link, gateway A's side:\n{}",
        links_table(&a.gateway.links())
    )?;
    a.gateway
        .finish_capture()
        .context("cannot write the FCIP capture")?;
    let p = opts.fcip_capture.display();
    let port = b.gateway.fcip_addr().port();
    let stats = a.gateway.capture_stats().unwrap_or_default();
    writeln!(
        out,
        "FCIP capture: {p} ({})\n  every FCIP frame both ways; in Wireshark decode TCP port {port} as FCIP, \
         or: tshark -r {p} -d tcp.port=={port},fcip",
        capture_line(&stats)
    )?;
    if let Some(c) = &opts.capture {
        writeln!(
            out,
            "Site A FC capture: {} (open it in Wireshark, or: fcsan pcap show {})",
            c.display(),
            c.display()
        )?;
    }
    host.node().shutdown().await;
    for x in arrays {
        x.node.shutdown().await;
    }
    Ok(())
}
