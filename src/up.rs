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
//! the FCIP link's counters and where the FCIP capture went. The two sites are a
//! [`topology::Topology`], which names every port.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fc_frames::scsi::Lun;
use fc_node::fcp::{discovery, transfer};
use fc_node::scsi::Tier;
use topology::{write_random, ArraySpec, Topology};

use crate::progress;
use crate::report::{
    capture_line, counters_table, human, links_table, lun_line, name_server_table,
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

/// Size of every LUN.
const LUN_BYTES: u64 = 256 << 20;
/// TCP connections of the FCIP link.
const CONNECTIONS: usize = 2;

/// `fcsan up`: the two sites, the host's discovery, the file to site B and back.
pub async fn up(opts: UpOptions, out: &mut dyn io::Write) -> Result<()> {
    let tmp;
    let dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let link = t.link(a, b, CONNECTIONS);
    if let Some(c) = &opts.capture {
        t.capture(a, c);
    }
    t.fcip_capture(a, &opts.fcip_capture);
    let ssd = t.array(
        a,
        ArraySpec::new("ssd")
            .disk(Tier::Ssd, LUN_BYTES)
            .disk(Tier::Ssd, LUN_BYTES)
            .tape(),
    );
    let hdd = t.array(
        b,
        ArraySpec::new("hdd")
            .disk(Tier::FastHdd, LUN_BYTES)
            .disk(Tier::SlowHdd, LUN_BYTES),
    );
    let host = t.host(a);
    t.zone("host-a", [host.into(), ssd.into(), hdd.into()]);
    let san = t.start(&dir).await?;

    for g in [a, b] {
        let s = san.site(g);
        writeln!(
            out,
            "site {}: gateway {}, domain {:02x}, switch on {}, FCIP on {}",
            s.name,
            s.switch_name,
            s.domain,
            s.addr,
            san.gateway(g).fcip_addr()
        )?;
    }
    let h = san.host(host);
    let init = &h.initiator;
    let port_id = init.node().wait_online(Duration::from_secs(10)).await?;
    writeln!(out, "host {} logged in to site A as {port_id}", h.port_name)?;
    init.node()
        .wait_targets(2, Duration::from_secs(20))
        .await
        .context("the host did not find both disk arrays (one on each site)")?;

    writeln!(
        out,
        "\nLUNs the host sees (tier from VPD page 0xB1; domain 02 is site B):"
    )?;
    for l in discovery::list_luns(init).await? {
        writeln!(out, "  {}", lun_line(&l))?;
    }

    // A file of pseudo-random bytes, to a LUN across the FCIP link and back.
    let src = dir.join("host-file.bin");
    let back = dir.join("host-file.readback");
    write_random(&src, opts.file_bytes)?;
    let target = discovery::find_target(init, Some(san.array(hdd).port_name))?;
    let bar = progress::bar(opts.file_bytes, opts.progress, "write");
    let w = transfer::write_file(init, target.port_id, Lun::ZERO, &src, false, &mut |_, n| {
        bar.inc(n)
    })
    .await;
    bar.finish_and_clear();
    let w = w?;
    writeln!(
        out,
        "\nwrote {} to {} LUN 0 on site B in {:.2} s ({:.0} MiB/s), SYNCHRONIZE CACHE done",
        human(w.bytes),
        target.port_name,
        w.elapsed.as_secs_f64(),
        w.mib_per_s()
    )?;
    let bar = progress::bar(w.bytes, opts.progress, "read");
    let r = transfer::read_file(
        init,
        target.port_id,
        Lun::ZERO,
        &back,
        w.bytes,
        &mut |_, n| bar.inc(n),
    )
    .await;
    bar.finish_and_clear();
    let r = r?;
    if std::fs::read(&src)? != std::fs::read(&back)? {
        bail!("the data read back differs from the data written");
    }
    writeln!(
        out,
        "read it back in {:.2} s ({:.0} MiB/s): identical",
        r.elapsed.as_secs_f64(),
        r.mib_per_s()
    )?;

    let l = san.link(link);
    for (s, isl) in [(san.site(a), l.dialer_port), (san.site(b), l.listener_port)] {
        let snap = s.switch.snapshot();
        writeln!(
            out,
            "\nSite {} name server (port {} is the FCIP link):\n{}",
            s.name,
            isl.0,
            name_server_table(&snap)
        )?;
        writeln!(
            out,
            "Site {} switch port counters:\n{}",
            s.name,
            counters_table(&snap)
        )?;
    }
    writeln!(
        out,
        "FCIP link, gateway A's side:\n{}",
        links_table(&san.gateway(a).links())
    )?;
    san.gateway(a)
        .finish_capture()
        .context("cannot write the FCIP capture")?;
    let p = opts.fcip_capture.display();
    let port = san.gateway(b).fcip_addr().port();
    let stats = san.gateway(a).capture_stats().unwrap_or_default();
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
    san.shutdown().await;
    Ok(())
}
