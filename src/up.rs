//! `fcsan up`: SANs joined by FCIP links, each with its virtualization controller, in one
//! process on loopback TCP.
//!
//! ```text
//!  site A (domain 01)                                   site B (domain 02)
//!  host ─┐                                                ┌─ array "hdd" (15k, 7200 rpm LUNs)
//!  ctl-a ┼─ gateway A ══ FCIP link, 2 TCP connections ══ gateway B ─ ctl-b
//!  array "ssd" (2 SSD LUNs, tape) ─┘                      └  (sites C.. with --sites N)
//! ```
//!
//! The host on site A finds both arrays with the name server (the one on site B through the
//! gateways' name server exchange), lists every LUN with its tier, writes a file to a LUN on
//! site B and reads it back verified, then prints both name servers, the switches' counters,
//! the FCIP link's counters and where the FCIP capture went. Then controller A builds a volume
//! from site A's SSD, and every controller shows it (PATENT.md figures 3 and 4). With
//! `--sites N` the sites are a chain (or a full mesh) of N gateways, each with a controller and
//! an array; `--stay` keeps everything running for `fcsan volume --api URL`. The sites are a
//! [`topology::Topology`], which names every port.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use controller::api::views::ReplicaPhase;
use controller::api::{BuildSpec, Management};
use controller::model::{MediaType, VolumeName};
use fc_frames::scsi::Lun;
use fc_frames::FcId;
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::{discovery, transfer};
use fc_node::scsi::Tier;
use topology::{write_random, ArraySpec, ControllerId, GatewayId, HostId, Running, Topology};

use crate::progress;
use crate::report::{
    capture_line, counters_table, human, links_table, lun_line, name_server_table,
};
use crate::volume::{map_table, peers_table, real_tables, volumes_table};

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
    /// Number of sites (2 or more).
    pub sites: usize,
    /// Join every site to every other (else a chain).
    pub mesh: bool,
    /// Keep running after the report until Ctrl-C.
    pub stay: bool,
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
    if !(2..=MAX_SITES).contains(&opts.sites) {
        bail!("--sites takes 2 to {MAX_SITES}, not {}", opts.sites);
    }
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let link = t.link(a, b, CONNECTIONS);
    let mut gateways = vec![a, b];
    for i in 2..opts.sites {
        let name = site_name(i);
        let g = t.gateway(&name, i as u8 + 1);
        // Each site dials the ones before it: a chain to the previous, or all of them.
        let dial: Vec<GatewayId> = if opts.mesh {
            gateways.clone()
        } else {
            vec![gateways[i - 1]]
        };
        for d in dial {
            t.link(g, d, 1);
        }
        gateways.push(g);
    }
    let controllers: Vec<ControllerId> = gateways.iter().map(|&g| t.controller(g)).collect();
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
    for (i, &g) in gateways.iter().enumerate().skip(2) {
        let tier = [Tier::Ssd, Tier::FastHdd, Tier::SlowHdd][i % 3];
        let name = format!("disk{}", site_name(i).to_lowercase());
        t.array(g, ArraySpec::new(name).disk(tier, LUN_BYTES));
    }
    let host = t.host(a);
    let host_b = t.host(b);
    t.zone("host-a", [host.into(), ssd.into(), hdd.into()]);
    // Hosts see the controllers' virtual LUNs.
    t.zone(
        "hosts",
        [host.into(), host_b.into()]
            .into_iter()
            .chain(controllers.iter().map(|&c| c.into())),
    );
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
        "FCIP capture: {p} ({})\n  every FCIP frame both ways: tshark -X lua_script:captures/fcsan.lua -r {p} \
         (finds FCIP on port {port}), or without the script: tshark -r {p} -d tcp.port=={port},fcip",
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
    controllers_report(&san, &controllers, out).await?;
    io_report(
        &san,
        [host, host_b],
        [controllers[0], controllers[1]],
        &dir,
        &opts,
        out,
    )
    .await?;
    writeln!(
        out,
        "\nFCIP link after the I/O path, gateway A's side:\n{}",
        links_table(&san.gateway(a).links())
    )?;
    if opts.stay {
        writeln!(
            out,
            "\nRunning until Ctrl-C. Management APIs (open one in a browser for the operator's page):"
        )?;
        for &c in &controllers {
            let rc = san.controller(c);
            writeln!(
                out,
                "  {} (site {}): http://{}",
                rc.name,
                san.site(rc.site).name,
                rc.api
            )?;
        }
        writeln!(
            out,
            "e.g. fcsan volume --api http://{} build --type ssd --capacity 16MiB --name vol2",
            san.controller(controllers[0]).api
        )?;
        out.flush()?;
        tokio::signal::ctrl_c().await?;
    }
    san.shutdown().await;
    Ok(())
}

/// Capacity of the volume `fcsan up` builds.
const VOL1_BYTES: u64 = 64 << 20;

/// The host's way to controller `ctl`'s virtual LUN of `name`, its unit attentions (the LUN
/// appeared at run time: REPORTED LUNS DATA HAS CHANGED) taken.
async fn virtual_lun(
    san: &Running,
    host: HostId,
    ctl: ControllerId,
    name: &VolumeName,
) -> Result<(Initiator, FcId, Lun)> {
    let rc = san.controller(ctl);
    let init = san.host(host).initiator.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let target = init
            .node()
            .targets()
            .into_iter()
            .find(|t| t.port_name == rc.port_name);
        if let (Some(t), Some(lun)) = (target, rc.controller.lun_of(name)) {
            for _ in 0..8 {
                if init.test_unit_ready(t.port_id, lun).await.is_ok() {
                    return Ok((init, t.port_id, lun));
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the host found no virtual LUN of {name} at {}", rc.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The I/O path (figure 6): host A writes vol1 through its controller (the owner: to the
/// array), host B reads it through its own (forwarded to A through the tunnel: a cache miss),
/// then again (a hit: nothing crosses the WAN).
async fn io_report(
    san: &Running,
    hosts: [HostId; 2],
    ctls: [ControllerId; 2],
    dir: &std::path::Path,
    opts: &UpOptions,
    out: &mut dyn io::Write,
) -> Result<()> {
    let name = VolumeName::new("vol1")?;
    let bytes = opts.file_bytes.min(VOL1_BYTES);
    let src = dir.join("vol1-file.bin");
    write_random(&src, bytes)?;
    let (init_a, at_a, lun_a) = virtual_lun(san, hosts[0], ctls[0], &name).await?;
    let a = san.controller(ctls[0]);
    let bar = progress::bar(bytes, opts.progress, "write vol1");
    let w = transfer::write_file(&init_a, at_a, lun_a, &src, false, &mut |_, n| bar.inc(n)).await;
    bar.finish_and_clear();
    let w = w?;
    writeln!(
        out,
        "
host on site A wrote {} to vol1 (LUN {} of {}, the owner) in {:.2} s ({:.0} MiB/s)",
        human(w.bytes),
        lun_a.index().unwrap_or(0),
        a.name,
        w.elapsed.as_secs_f64(),
        w.mib_per_s()
    )?;
    let (init_b, at_b, lun_b) = virtual_lun(san, hosts[1], ctls[1], &name).await?;
    let b = san.controller(ctls[1]);
    for pass in [
        "cache miss: forwarded to ctl-a through the tunnel",
        "cache hit",
    ] {
        let back = dir.join("vol1-file.readback");
        let bar = progress::bar(bytes, opts.progress, "read vol1");
        let r =
            transfer::read_file(&init_b, at_b, lun_b, &back, bytes, &mut |_, n| bar.inc(n)).await;
        bar.finish_and_clear();
        let r = r?;
        if std::fs::read(&src)? != std::fs::read(&back)? {
            bail!("vol1 read at site B differs from what site A wrote");
        }
        writeln!(
            out,
            "host on site B read vol1 (LUN {} of {}) in {:.2} s ({:.0} MiB/s), identical ({pass})",
            lun_b.index().unwrap_or(0),
            b.name,
            r.elapsed.as_secs_f64(),
            r.mib_per_s()
        )?;
        // The lease that lets B cache vol1 is asked for on the first miss.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A replica of vol1 on site B: copied in the background, then mirrored.
    let start = Instant::now();
    a.controller
        .add_replica(
            &name,
            controller::api::ReplicaSpec {
                // Site B has disks, no SSD.
                media: Some(MediaType::FastHdd),
                site: Some(san.site(b.site).name.clone()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("adding a replica of vol1 on site B: {e}"))?;
    loop {
        let st = a.controller.replica_state(&name).context("vol1 vanished")?;
        match st.state {
            ReplicaPhase::InSync => break,
            ReplicaPhase::Failed => bail!(
                "the replica of vol1 failed: {}",
                st.reason.unwrap_or_default()
            ),
            _ if start.elapsed() > Duration::from_secs(120) => {
                bail!("the replica of vol1 was not in sync after 2 minutes")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "\n{} added a replica of vol1 on site B's 15k disk: {} copied through the tunnel in {secs:.2} s ({:.0} MiB/s), then in the mapping; writes now go to both",
        a.name,
        human(VOL1_BYTES),
        VOL1_BYTES as f64 / (1 << 20) as f64 / secs,
    )?;
    writeln!(
        out,
        "Virtual volume sectors at {} (figure 4 (b)), with the replica:\n{}",
        a.name,
        map_table(&a.controller.backend().volumes().await)
    )?;
    let mut rows = Vec::new();
    for c in [a, b] {
        if let Some(k) = c.controller.io_counters(&name) {
            rows.push(vec![
                c.name.clone(),
                "vol1".to_owned(),
                k.reads.to_string(),
                k.writes.to_string(),
                k.cache_hits.to_string(),
                k.cache_misses.to_string(),
                k.invalidations.to_string(),
                human(k.wan_bytes),
                human(k.wan_bytes_saved),
                k.replica_reads.to_string(),
            ]);
        }
    }
    writeln!(
        out,
        "\nPer-volume I/O counters:\n{}",
        crate::volume::plain_table(
            &[
                "controller",
                "volume",
                "reads",
                "writes",
                "cache hits",
                "misses",
                "invalidations",
                "WAN bytes",
                "WAN saved",
                "replica reads",
            ],
            rows
        )
    )?;
    Ok(())
}

/// Most sites `--sites` takes.
pub const MAX_SITES: usize = 16;

/// The name of the `i`th site (from 0): A, B, ..., P.
fn site_name(i: usize) -> String {
    char::from(b'A' + i as u8).to_string()
}

/// The controllers' part: every controller ready with its peers, a volume built on site A and
/// shown by every controller, the figure 3 and figure 4 tables.
async fn controllers_report(
    san: &Running,
    controllers: &[ControllerId],
    out: &mut dyn io::Write,
) -> Result<()> {
    let n = controllers.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    for &c in controllers {
        let ctl = &san.controller(c).controller;
        loop {
            let (ready, up) = ctl.inspect(|core| {
                let up = core
                    .peers()
                    .filter(|p| p.state == controller::core::PeerState::Up)
                    .count();
                (core.is_ready(), up)
            });
            if ready && up == n - 1 && !ctl.real_volumes().is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "controller {} did not find its {} peers and its arrays",
                    san.controller(c).name,
                    n - 1
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let first = san.controller(controllers[0]);
    writeln!(
        out,
        "\n{n} controllers up, each heartbeating to the other {} as FC exchanges (CT GS_TYPE 0xE0)",
        n - 1
    )?;
    let spec = BuildSpec {
        name: Some(VolumeName::new("vol1")?),
        media: MediaType::Ssd,
        capacity: VOL1_BYTES,
    };
    let built = first
        .controller
        .build(spec)
        .await
        .map_err(|e| anyhow::anyhow!("building vol1 on site A: {e}"))?;
    let start = Instant::now();
    for &c in &controllers[1..] {
        let ctl = &san.controller(c).controller;
        while ctl.inspect(|core| core.volume(&built.key.name).cloned()) != Some(built.clone()) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("vol1 did not reach controller {}", san.controller(c).name);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writeln!(
        out,
        "{} built vol1 ({} of SSD on site A); every controller had it {:.1} ms later",
        first.name,
        human(VOL1_BYTES),
        start.elapsed().as_secs_f64() * 1000.0
    )?;
    for &c in controllers {
        let rc = san.controller(c);
        let backend = rc.controller.backend();
        writeln!(
            out,
            "\n{} (site {}), mapping information (figure 4 (a)):\n{}",
            rc.name,
            san.site(rc.site).name,
            volumes_table(&backend.volumes().await)
        )?;
    }
    let backend = first.controller.backend();
    writeln!(
        out,
        "\nVirtual volume sectors at {} (figure 4 (b)):\n{}",
        first.name,
        map_table(&backend.volumes().await)
    )?;
    let (used, free) = real_tables(&backend.real_volumes().await);
    writeln!(
        out,
        "\nReal volumes of site A at {} (figure 3 (a)):\n{used}\nFree space (figure 3 (b)):\n{free}",
        first.name
    )?;
    writeln!(
        out,
        "\nPeers of {}:\n{}",
        first.name,
        peers_table(&backend.peers().await)
    )?;
    Ok(())
}
