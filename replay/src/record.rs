//! `fcsan pcap record DIR`: runs the canonical scenarios in-process with the topology builder,
//! captures on, and writes each capture to DIR (what `captures/` holds). Every node's seed is
//! its port name, so the frames are the same from run to run; only time stamps differ.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use controller::api::BuildSpec;
use controller::model::{MediaType, VolumeName};
use fc_frames::scsi::Lun;
use fc_node::fcp::discovery;
use fc_node::scsi::Tier;
use topology::{ArraySpec, ControllerId, HostId, LinkId, SiteId, Topology};

/// The captures the scenarios write, each with the role to replay it as and what it shows.
pub const CAPTURES: [(&str, &str, &str); 8] = [
    (
        "switch-login.pcapng",
        "switch",
        "fabric login (FLOGI), name server registration (RFT_ID, RFF_ID, RNN_ID, RSPN_ID), \
         SCR, RSCNs, a host's name-server lookup (GID_FT, GPN_ID...) and port logins routed \
         through the switch",
    ),
    (
        "array-login-io.pcapng",
        "array",
        "a disk array's fabric and name server login, a host's PLOGI/PRLI, REPORT LUNS, \
         INQUIRY, READ CAPACITY, a WRITE and a READ of 8 blocks, the array's shutdown LOGO",
    ),
    (
        "controller-build-propagation.pcapng",
        "controller",
        "two sites joined by FCIP; site B's controller finds A's through the name server \
         (GID_FT, GPN_ID), heartbeats and pulls; a 1 MiB volume built at A: A's CLAIM and \
         UPDATE, and B's answers",
    ),
    (
        "controller-heartbeat-loss.pcapng",
        "controller",
        "two sites, the WAN cut: site B's controller stops hearing A's heartbeats and declares \
         it down; a volume is built at A meanwhile; the WAN heals, A's heartbeat comes back and \
         B catches up by PULL",
    ),
    (
        "controller-remote-read-cache.pcapng",
        "controller",
        "a host at site B reads 4 KiB of a volume owned by A through B's controller: B asks A \
         for a LEASE, forwards the read over FCIP to A's controller (FCP), caches the data; the \
         same read again is a cache hit (no frame leaves B's SAN)",
    ),
    (
        "controller-invalidation.pcapng",
        "controller",
        "B caches 4 KiB of A's volume under a lease; a host at A writes it: A sends B an \
         INVALIDATE before it acknowledges the write; B's next read misses and is forwarded",
    ),
    (
        "controller-replica-switch.pcapng",
        "controller",
        "A's volume gets a replica on B's array (RESERVE at B, UPDATE); B reads it under a \
         lease; a load at A moves its reads to the replica: A sends B a ROUTE to read the \
         replica directly, and another back when the load stops",
    ),
    (
        "gateway-link-bringup.pcapng",
        "gateway",
        "an FCIP gateway's WAN side: the Special Frame exchange, SW_ILS EFP, name-server reads \
         across the link (GA_NXT, GFF_ID) for a disk array behind the peer gateway, an LKA",
    ),
];

/// The controllers' key in the scenarios: a test key, stored in their captures' metadata so
/// that they replay without `--key-file`.
pub const TEST_KEY: &[u8] = b"fcsan pcap record test key";

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(String);

/// Runs the scenarios, writing the captures to `dir`; returns the files written.
pub fn record(dir: &Path) -> Result<Vec<PathBuf>, RecordError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RecordError(format!("cannot create {}: {e}", dir.display())))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RecordError(format!("runtime: {e}")))?;
    let mut files = rt.block_on(login_and_io(dir))?;
    files.push(rt.block_on(controller_build_propagation(dir))?);
    files.push(rt.block_on(controller_heartbeat_loss(dir))?);
    files.push(rt.block_on(controller_lease(dir, false))?);
    files.push(rt.block_on(controller_lease(dir, true))?);
    files.push(rt.block_on(controller_replica_switch(dir))?);
    files.push(rt.block_on(gateway_link_bringup(dir))?);
    Ok(files)
}

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(30);

/// Waits (at most 30 s) until `cond` holds.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), RecordError> {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > WAIT {
            return Err(RecordError(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Two gateway sites A and B with a controller each (heartbeat 200 ms, the test key), an SSD
/// array at A, B's controller captured to `file`; running once both are ready and up.
async fn two_sites(
    data: &Path,
    file: &Path,
    relay: bool,
    setup: impl FnOnce(&mut Topology, [SiteId; 2]),
) -> Result<(topology::Running, [ControllerId; 2], LinkId), RecordError> {
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let l = t.link(a, b, 1);
    if relay {
        t.relay(l, wan_relay::Impairment::default());
    }
    t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 4 * MIB));
    t.controller_heartbeat(Duration::from_millis(200));
    t.controller_key(TEST_KEY);
    let ca = t.controller(a);
    let cb = t.controller(b);
    t.capture_controller(cb, file);
    setup(&mut t, [a.into(), b.into()]);
    let san = t
        .start(data)
        .await
        .map_err(|e| RecordError(format!("start: {e}")))?;
    for c in [ca, cb] {
        let ctl = san.controller(c).controller.clone();
        wait_for("the controllers ready and each other's peer", || {
            ctl.inspect(|core| core.is_ready() && peers_up(core) == 1)
        })
        .await?;
    }
    let ctl_a = san.controller(ca).controller.clone();
    wait_for("site A's array found", || !ctl_a.real_volumes().is_empty()).await?;
    // Each has heard the other's generation in a heartbeat: the first UPDATE then follows
    // on what the receiver knows (no gap, no PULL racing it).
    for (c, other) in [(ca, cb), (cb, ca)] {
        let ctl = san.controller(c).controller.clone();
        let peer = san.controller(other).controller.clone();
        let w = san.controller(other).port_name;
        wait_for("each controller knows the other's generation", || {
            let theirs = peer.inspect(|core| core.own_stamp());
            ctl.inspect(|core| core.peer(w).map(|p| p.versions.get(w)) == Some(theirs))
        })
        .await?;
    }
    Ok((san, [ca, cb], l))
}

fn peers_up(core: &controller::core::Core) -> usize {
    core.peers()
        .filter(|p| p.state == controller::core::PeerState::Up)
        .count()
}

fn volume_name(s: &str) -> Result<VolumeName, RecordError> {
    VolumeName::new(s).map_err(|e| RecordError(format!("volume name {s}: {e}")))
}

/// Builds 1 MiB of SSD named `name` at `c`.
async fn build(san: &topology::Running, c: ControllerId, name: &str) -> Result<(), RecordError> {
    san.controller(c)
        .controller
        .build(BuildSpec {
            name: Some(volume_name(name)?),
            media: MediaType::Ssd,
            capacity: MIB,
        })
        .await
        .map(|_| ())
        .map_err(|e| RecordError(format!("build {name}: {e}")))
}

/// Waits until `c` knows volume `name`.
async fn wait_volume(
    san: &topology::Running,
    c: ControllerId,
    name: &str,
) -> Result<(), RecordError> {
    let n = volume_name(name)?;
    let ctl = san.controller(c).controller.clone();
    wait_for(&format!("{name} at site B"), || {
        ctl.inspect(|core| core.volume(&n).is_some())
    })
    .await
}

/// Stops the captured controller (B) first, so that its capture ends with its own leaving,
/// then the rest; adds the test key and the controller clock's offset to the metadata.
async fn finish(san: topology::Running, b: ControllerId, file: &Path) -> Result<(), RecordError> {
    // A heartbeat's round trip more, so that the capture does not end inside one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    san.controller(b).controller.shutdown().await;
    san.shutdown().await;
    let offset =
        controller::driver::now_ms() as i64 - topology::capture::wall_clock().as_millis() as i64;
    let hex: String = TEST_KEY.iter().map(|b| format!("{b:02x}")).collect();
    add_metadata(
        file,
        [
            (crate::controller::TEST_KEY_FIELD, hex.into()),
            (crate::controller::CLOCK_OFFSET_FIELD, offset.into()),
        ],
    )
}

/// Rewrites the capture at `file` with `fields` added to its metadata.
fn add_metadata<const N: usize>(
    file: &Path,
    fields: [(&str, serde_json::Value); N],
) -> Result<(), RecordError> {
    let err = |e: &dyn std::fmt::Display| RecordError(format!("{}: {e}", file.display()));
    let c = fc_pcap::capture::read_pcapng_file(file).map_err(|e| err(&e))?;
    let mut meta = match c.metadata() {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(err(&e)),
        None => return Err(err(&"no metadata")),
    };
    for (k, v) in fields {
        meta.extra.insert(k.to_owned(), v);
    }
    let mut bytes = Vec::new();
    let mut w = fc_pcap::capture::RoleCaptureWriter::new(
        &mut bytes,
        &meta,
        pcap_file::DataLink::FC_2_WITH_FRAME_DELIMS,
    )
    .map_err(|e| err(&e))?;
    for p in &c.packets {
        let dir = p
            .direction
            .ok_or_else(|| err(&format!("frame {} has no direction", p.number)))?;
        w.write_packet(&c.interfaces[p.interface].name, p.ts, dir, &p.data)
            .map_err(|e| err(&e))?;
    }
    drop(w);
    std::fs::write(file, bytes).map_err(|e| err(&e))
}

/// Site B's controller sees a volume built at site A arrive (CLAIM, UPDATE) and answers.
async fn controller_build_propagation(dir: &Path) -> Result<PathBuf, RecordError> {
    let data = tempfile::tempdir().map_err(|e| RecordError(format!("temporary folder: {e}")))?;
    let file = dir.join(CAPTURES[2].0);
    let (san, [a, b], _) = two_sites(data.path(), &file, false, |_, _| ()).await?;
    build(&san, a, "vol1").await?;
    wait_volume(&san, b, "vol1").await?;
    finish(san, b, &file).await?;
    Ok(file)
}

/// The WAN is cut: B declares A down; A builds a volume; the WAN heals and B catches up.
async fn controller_heartbeat_loss(dir: &Path) -> Result<PathBuf, RecordError> {
    let data = tempfile::tempdir().map_err(|e| RecordError(format!("temporary folder: {e}")))?;
    let file = dir.join(CAPTURES[3].0);
    let (san, [a, b], l) = two_sites(data.path(), &file, true, |_, _| ()).await?;
    let relay = san
        .link(l)
        .relay
        .clone()
        .ok_or_else(|| RecordError("the link has no relay".into()))?;
    relay.set_refuse(true);
    relay.sever();
    for c in [a, b] {
        let ctl = san.controller(c).controller.clone();
        wait_for("the peers down across the cut", || {
            ctl.inspect(|core| peers_up(core) == 0)
        })
        .await?;
    }
    build(&san, a, "during-cut").await?;
    relay.set_refuse(false);
    wait_volume(&san, b, "during-cut").await?;
    finish(san, b, &file).await?;
    Ok(file)
}

/// One switch, one array (1 MiB SSD LUN), one host: logins, discovery, a write and a read.
async fn login_and_io(dir: &Path) -> Result<Vec<PathBuf>, RecordError> {
    let err = |what: &str, e: &dyn std::fmt::Display| RecordError(format!("{what}: {e}"));
    let data = tempfile::tempdir().map_err(|e| err("temporary folder", &e))?;
    let switch_file = dir.join(CAPTURES[0].0);
    let array_file = dir.join(CAPTURES[1].0);
    let mut t = Topology::new();
    let s = t.switch("A", 1);
    t.capture(s, &switch_file);
    let a = t.array(s, ArraySpec::new("ssd").disk(Tier::Ssd, 1 << 20));
    t.capture_array(a, &array_file);
    let h = t.host(s);
    let running = t.start(data.path()).await.map_err(|e| err("start", &e))?;
    let init = &running.host(h).initiator;
    let wait = Duration::from_secs(10);
    running
        .array(a)
        .array
        .node
        .wait_online(wait)
        .await
        .map_err(|e| err("array login", &e))?;
    init.node()
        .wait_online(wait)
        .await
        .map_err(|e| err("host login", &e))?;
    init.node()
        .wait_targets(1, wait)
        .await
        .map_err(|e| err("discovery of the array", &e))?;
    let luns = discovery::list_luns(init)
        .await
        .map_err(|e| err("list LUNs", &e))?;
    let target = luns
        .first()
        .map(|l| l.target.port_id)
        .ok_or_else(|| RecordError("the host sees no LUN".into()))?;
    let lun = Lun::from_index(0).ok_or_else(|| RecordError("LUN 0".into()))?;
    let block: Vec<u8> = (0..8 * 512).map(|i| (i * 7 % 251) as u8).collect();
    init.write(target, lun, 16, Bytes::from(block.clone()), 512, true)
        .await
        .map_err(|e| err("write", &e))?;
    let back = init
        .read(target, lun, 16, 8, 512)
        .await
        .map_err(|e| err("read", &e))?;
    if back[..] != block[..] {
        return Err(RecordError(
            "the read did not return what was written".into(),
        ));
    }
    // The switch's capture ends here: its ports going down are link events, which a switch
    // capture does not hold.
    running.site(s).switch.set_tap(None);
    // The array first, so that its capture ends with its own LOGO and not with a race between
    // its shutdown and the RSCN of the host's leaving.
    running.array(a).array.node.shutdown().await;
    init.node().shutdown().await;
    Ok(vec![switch_file, array_file])
}

/// The FCP target that controller `c` is for host `h`, and volume `name`'s LUN there, ready
/// (TEST UNIT READY until its unit attentions are consumed).
async fn volume_lun(
    san: &topology::Running,
    h: HostId,
    c: ControllerId,
    name: &VolumeName,
) -> Result<(fc_node::fcp::initiator::Initiator, fc_frames::FcId, Lun), RecordError> {
    let ctl = san.controller(c).controller.clone();
    wait_for("the volume served", || ctl.lun_of(name).is_some()).await?;
    let lun = ctl
        .lun_of(name)
        .ok_or_else(|| RecordError("no LUN".into()))?;
    let init = san.host(h).initiator.clone();
    let wwpn = san.controller(c).port_name;
    let node = init.node().clone();
    wait_for("the host logged in with the controller", || {
        node.targets().iter().any(|t| t.port_name == wwpn)
    })
    .await?;
    let id = node
        .targets()
        .into_iter()
        .find(|t| t.port_name == wwpn)
        .map(|t| t.port_id)
        .ok_or_else(|| RecordError("no target".into()))?;
    for _ in 0..8 {
        if init.test_unit_ready(id, lun).await.is_ok() {
            return Ok((init, id, lun));
        }
    }
    Err(RecordError("the volume's LUN never became ready".into()))
}

/// A host at B reads 4 KiB of A's volume through B's controller until the read hits B's
/// cache; with `invalidate`, a host at A then writes it (A invalidates B's cache) and B
/// reads it again.
async fn controller_lease(dir: &Path, invalidate: bool) -> Result<PathBuf, RecordError> {
    let data = tempfile::tempdir().map_err(|e| RecordError(format!("temporary folder: {e}")))?;
    let file = dir.join(CAPTURES[if invalidate { 5 } else { 4 }].0);
    let mut hosts = Vec::new();
    let (san, [a, b], _) = two_sites(data.path(), &file, false, |t, [sa, sb]| {
        hosts.push(t.host(sa));
        hosts.push(t.host(sb));
    })
    .await?;
    let (ha, hb) = (hosts[0], hosts[1]);
    let name = volume_name("cached")?;
    build(&san, a, name.as_str()).await?;
    let (init_b, id_b, lun_b) = volume_lun(&san, hb, b, &name).await?;
    let ctl_b = san.controller(b).controller.clone();
    let hits =
        |c: &controller::driver::Controller| c.io_counters(&name).map_or(0, |k| k.cache_hits);
    let err = |what: &str, e: &dyn std::fmt::Display| RecordError(format!("{what}: {e}"));
    let start = std::time::Instant::now();
    loop {
        let before = hits(&ctl_b);
        init_b
            .read(id_b, lun_b, 0, 8, 512)
            .await
            .map_err(|e| err("read at B", &e))?;
        if hits(&ctl_b) > before {
            break;
        }
        if start.elapsed() > WAIT {
            return Err(RecordError("B's reads never hit its cache".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if invalidate {
        let invalidations = |c: &controller::driver::Controller| {
            c.io_counters(&name).map_or(0, |k| k.invalidations)
        };
        let before = invalidations(&ctl_b);
        let (init_a, id_a, lun_a) = volume_lun(&san, ha, a, &name).await?;
        let block: Vec<u8> = (0..8 * 512).map(|i| (i * 13 % 251) as u8).collect();
        init_a
            .write(id_a, lun_a, 0, Bytes::from(block.clone()), 512, true)
            .await
            .map_err(|e| err("write at A", &e))?;
        wait_for("B's cache invalidated", || invalidations(&ctl_b) > before).await?;
        let back = init_b
            .read(id_b, lun_b, 0, 8, 512)
            .await
            .map_err(|e| err("read at B", &e))?;
        if back[..] != block[..] {
            return Err(RecordError("B read stale data after A's write".into()));
        }
    }
    finish(san, b, &file).await?;
    Ok(file)
}

/// A's volume with a replica on B's array; B holds a lease on it; readers at A load its
/// primary past the switch threshold, then stop: A routes B to the replica and back.
async fn controller_replica_switch(dir: &Path) -> Result<PathBuf, RecordError> {
    use controller::api::views::ReplicaPhase;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let data = tempfile::tempdir().map_err(|e| RecordError(format!("temporary folder: {e}")))?;
    let file = dir.join(CAPTURES[6].0);
    let mut hosts = Vec::new();
    let (san, [a, b], _) = two_sites(data.path(), &file, false, |t, [sa, sb]| {
        t.array(sb, ArraySpec::new("ssdb").disk(Tier::Ssd, 4 * MIB));
        t.controller_io(controller::io::IoConfig {
            switch_outstanding: 1,
            ..controller::io::IoConfig::default()
        });
        hosts.push(t.host(sa));
        hosts.push(t.host(sb));
    })
    .await?;
    let (ha, hb) = (hosts[0], hosts[1]);
    let err = |what: &str, e: &dyn std::fmt::Display| RecordError(format!("{what}: {e}"));
    let ctl_a = san.controller(a).controller.clone();
    let ctl_b = san.controller(b).controller.clone();
    wait_for("site B's array found", || !ctl_b.real_volumes().is_empty()).await?;
    let name = volume_name("replicated")?;
    build(&san, a, name.as_str()).await?;
    ctl_a
        .add_replica(
            &name,
            controller::api::ReplicaSpec {
                media: None,
                site: Some("B".into()),
            },
        )
        .await
        .map_err(|e| err("add a replica", &e))?;
    for ctl in [&ctl_a, &ctl_b] {
        wait_for("the replica in sync at both controllers", || {
            ctl.replica_state(&name)
                .is_some_and(|s| s.state == ReplicaPhase::InSync)
        })
        .await?;
    }
    let (init_b, id_b, lun_b) = volume_lun(&san, hb, b, &name).await?;
    init_b
        .read(id_b, lun_b, 0, 8, 512)
        .await
        .map_err(|e| err("read at B", &e))?;
    let (init_a, id_a, lun_a) = volume_lun(&san, ha, a, &name).await?;
    let routes =
        |c: &controller::driver::Controller| c.io_counters(&name).map_or(0, |k| k.route_changes);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8u64)
        .map(|k| {
            let (init, stop) = (init_a.clone(), stop.clone());
            tokio::spawn(async move {
                let mut block = k;
                while !stop.load(Ordering::Relaxed) {
                    block = (block * 7 + 3) % 1024;
                    // A unit attention (the volume's mapping changed) is answered once.
                    let _ = init.read(id_a, lun_a, block * 8, 8, 512).await;
                }
            })
        })
        .collect();
    let routed = wait_for("A routes B to the replica", || routes(&ctl_b) >= 1).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    routed.map_err(|e| {
        RecordError(format!(
            "{e} (A: {:?}; B: {:?})",
            ctl_a.io_counters(&name),
            ctl_b.io_counters(&name)
        ))
    })?;
    wait_for("A routes B back to itself", || routes(&ctl_b) >= 2).await?;
    finish(san, b, &file).await?;
    Ok(file)
}

/// Gateway A (domain 1, captured) dials gateway B (domain 2), behind which a disk array logs
/// in: the FSF exchange, EFP, A's name-server reads of B's array, then an idle link until an
/// LKA goes each way (after K_A_TOV/2 of silence).
async fn gateway_link_bringup(dir: &Path) -> Result<PathBuf, RecordError> {
    let err = |what: &str, e: &dyn std::fmt::Display| RecordError(format!("{what}: {e}"));
    let data = tempfile::tempdir().map_err(|e| err("temporary folder", &e))?;
    let file = dir.join(CAPTURES[7].0);
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    t.fcip_capture(a, &file);
    t.link(a, b, 1);
    let array = t.array(b, ArraySpec::new("remote").disk(Tier::Ssd, 1 << 20));
    let array_name = t.port_name(array);
    let running = t.start(data.path()).await.map_err(|e| err("start", &e))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !running
        .site(a)
        .switch
        .snapshot()
        .name_server
        .iter()
        .any(|e| e.port_name == array_name)
    {
        if tokio::time::Instant::now() > deadline {
            return Err(RecordError(
                "gateway A never learnt the array behind gateway B".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle until the keep-alives: an LKA after K_A_TOV/2 without traffic.
    let idle = topology::K_A_TOV / 2 + Duration::from_millis(700);
    tokio::time::sleep(idle).await;
    let gw = running.gateway(a);
    let lkas = gw
        .links()
        .iter()
        .flat_map(|l| l.connections.iter().map(|c| c.lka_sent + c.lka_answered))
        .sum::<u64>();
    gw.finish_capture()
        .map_err(|e| err("the gateway's capture", &e))?;
    running.shutdown().await;
    if lkas == 0 {
        return Err(RecordError("no LKA went over the link".into()));
    }
    Ok(file)
}
