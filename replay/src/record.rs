//! `fcsan pcap record DIR`: runs the canonical scenarios in-process with the topology builder,
//! captures on, and writes each capture to DIR (what `captures/` holds). Every node's seed is
//! its port name, so the frames are the same from run to run; only time stamps differ.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use fc_frames::scsi::Lun;
use fc_node::fcp::discovery;
use fc_node::scsi::Tier;
use topology::{ArraySpec, Topology};

/// The captures the scenarios write, each with the role to replay it as and what it shows.
pub const CAPTURES: [(&str, &str, &str); 3] = [
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
        "gateway-link-bringup.pcapng",
        "gateway",
        "an FCIP gateway's WAN side: the Special Frame exchange, SW_ILS EFP, name-server reads \
         across the link (GA_NXT, GFF_ID) for a disk array behind the peer gateway, an LKA",
    ),
];

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
    files.push(rt.block_on(gateway_link_bringup(dir))?);
    Ok(files)
}

/// Gateway A (domain 1, captured) dials gateway B (domain 2), behind which a disk array logs
/// in: the FSF exchange, EFP, A's name-server reads of B's array, then an idle link until an
/// LKA goes each way (after K_A_TOV/2 of silence).
async fn gateway_link_bringup(dir: &Path) -> Result<PathBuf, RecordError> {
    let err = |what: &str, e: &dyn std::fmt::Display| RecordError(format!("{what}: {e}"));
    let data = tempfile::tempdir().map_err(|e| err("temporary folder", &e))?;
    let file = dir.join(CAPTURES[2].0);
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
