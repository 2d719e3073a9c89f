//! Two SANs joined by FCIP over real loopback TCP, each a gateway with a disk array and a host:
//! the host on SAN A finds the array on SAN B by the name server (GID_FT across the link),
//! writes a file to its LUN and reads it back byte-exact; a link bounced in the middle of a
//! write comes back, and the write either completes or fails saying how much was
//! acknowledged — at least what was acknowledged before the bounce — and that much reads back
//! exact.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::transfer;
use fc_node::scsi::Tier;
use tokio::time::timeout;
use topology::{write_random, ArrayId, ArraySpec, GatewayId, HostId, LinkId, Running, Topology};

const WAIT: Duration = Duration::from_secs(30);

/// Site A (domain 1) dials site B (domain 2); each has a disk array of one 64 MiB LUN and a
/// host whose commands time out after 4 s.
struct TwoSans {
    san: Running,
    a: GatewayId,
    b: GatewayId,
    link: LinkId,
    host_a: HostId,
    host_b: HostId,
    disk_a: ArrayId,
    disk_b: ArrayId,
}

impl TwoSans {
    async fn start(dir: &Path, connections: usize) -> TwoSans {
        let mut t = Topology::new();
        let a = t.gateway("A", 1);
        let b = t.gateway("B", 2);
        let link = t.link(a, b, connections);
        let disk_a = t.array(a, ArraySpec::new("a").disk(Tier::Ssd, 64 << 20));
        let disk_b = t.array(b, ArraySpec::new("b").disk(Tier::Ssd, 64 << 20));
        let (host_a, host_b) = (t.host(a), t.host(b));
        for h in [host_a, host_b] {
            t.command_timeout(h, Duration::from_secs(4));
        }
        let san = t.start(dir).await.unwrap();
        TwoSans {
            san,
            a,
            b,
            link,
            host_a,
            host_b,
            disk_a,
            disk_b,
        }
    }

    fn host(&self, h: HostId) -> &Initiator {
        &self.san.host(h).initiator
    }

    fn disk(&self, d: ArrayId) -> Wwn {
        self.san.array(d).port_name
    }
}

/// Waits until `host` has a session with `wwpn`, and returns its N_Port ID.
async fn target(host: &Initiator, wwpn: Wwn) -> FcId {
    timeout(WAIT, async {
        loop {
            if let Some(t) = host.node().targets().iter().find(|t| t.port_name == wwpn) {
                return t.port_id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never found {wwpn}: {:?}", host.node().targets()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_on_san_a_writes_and_reads_a_lun_on_san_b() {
    let dir = tempfile::tempdir().unwrap();
    let s = TwoSans::start(dir.path(), 2).await;
    let (host_a, host_b) = (s.host(s.host_a), s.host(s.host_b));
    for h in [host_a, host_b] {
        h.node().wait_online(WAIT).await.unwrap();
    }
    // Each host finds both arrays: its own and the one across the link.
    let remote = target(host_a, s.disk(s.disk_b)).await;
    assert_eq!(remote.domain(), 2);
    assert_eq!(target(host_a, s.disk(s.disk_a)).await.domain(), 1);
    assert_eq!(target(host_b, s.disk(s.disk_a)).await.domain(), 1);
    // The switches' name servers hold the other site's N_Ports, at the inter-switch port.
    let snap = s.san.site(s.a).switch.snapshot();
    let e = snap
        .name_server
        .iter()
        .find(|e| e.port_name == s.disk(s.disk_b))
        .expect("B's array in A's name server");
    assert_eq!(e.port, s.san.link(s.link).dialer_port);

    let src = dir.path().join("file.bin");
    let back = dir.path().join("file.back");
    write_random(&src, 8 << 20).unwrap();
    let w = transfer::write_file(host_a, remote, Lun::ZERO, &src, false, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(w.bytes, 8 << 20);
    transfer::read_file(host_a, remote, Lun::ZERO, &back, w.bytes, &mut |_, _| {})
        .await
        .unwrap();
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&back).unwrap());
    let local = target(host_b, s.disk(s.disk_b)).await;
    transfer::verify_file(host_b, local, Lun::ZERO, &src, &mut |_, _| {})
        .await
        .unwrap();

    let gateway_a = s.san.gateway(s.a);
    let (peer, c) = gateway_a.link_counters()[0];
    assert_eq!(peer, s.san.site(s.b).switch_name);
    assert_eq!(c.connections_up, 2);
    assert_eq!(c.dropped_no_connection, 0);
    let conns = gateway_a.links()[0].connections.clone();
    assert_eq!(conns.len(), 2);
    // 8 MiB each way went through; nothing was malformed.
    let tx: u64 = conns.iter().map(|c| c.tx_bytes).sum();
    let rx: u64 = conns.iter().map(|c| c.rx.bytes).sum();
    assert!(tx > 8 << 20 && rx > 8 << 20, "tx {tx} rx {rx}");
    assert!(conns.iter().all(|c| c.rx.encapsulation_errors == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_bounced_mid_write_comes_back_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = TwoSans::start(dir.path(), 2).await;
    let host = s.host(s.host_a).clone();
    host.node().wait_online(WAIT).await.unwrap();
    let remote = target(&host, s.disk(s.disk_b)).await;
    let src = dir.path().join("big.bin");
    write_random(&src, 48 << 20).unwrap();
    let data = std::fs::read(&src).unwrap();

    // What the host has had acknowledged so far, as the write reports it.
    let acked = Arc::new(Mutex::new(transfer::Acked::default()));
    let write = {
        let (host, path, acked) = (host.clone(), src.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            let mut progress = |at: u64, n: u64| acked.lock().unwrap().add(at, n);
            transfer::write_file(&host, remote, Lun::ZERO, &path, true, &mut progress).await
        })
    };
    // Bounce once the first MiB is acknowledged (with FUA: durable on B's LUN).
    timeout(WAIT, async {
        while acked.lock().unwrap().prefix() < 1 << 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the write never had its first MiB acknowledged");
    let before = acked.lock().unwrap().prefix();
    s.san.bounce(s.link);

    // The write ends either way, well within its commands' time-outs: never a hang. It
    // completes, or fails saying how much was acknowledged — never less than before the
    // bounce.
    let result = timeout(Duration::from_secs(120), write)
        .await
        .expect("the write hung")
        .unwrap();
    let len = match &result {
        Ok(t) => t.bytes,
        Err(e) => e
            .acknowledged()
            .unwrap_or_else(|| panic!("no acknowledged count in: {e}")),
    };
    assert!(
        len >= before && len <= data.len() as u64,
        "{len} bytes acknowledged in the end, {before} before the bounce"
    );

    // The link came back (its connections were dialled again), and the counters say so.
    let gateway_a = s.san.gateway(s.a);
    timeout(WAIT, async {
        loop {
            let c = gateway_a.link_counters()[0].1;
            if c.connections_up == 2 && c.connections_closed >= 2 && c.connections_opened >= 4 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("link never came back: {:?}", gateway_a.link_counters()));

    // The host finds B's array again, and every acknowledged byte is there.
    let remote = target(&host, s.disk(s.disk_b)).await;
    let back = dir.path().join("back.bin");
    timeout(
        WAIT,
        transfer::read_file(&host, remote, Lun::ZERO, &back, len, &mut |_, _| {}),
    )
    .await
    .expect("read hung")
    .unwrap();
    let read = std::fs::read(&back).unwrap();
    assert_eq!(read.len() as u64, len);
    assert!(read[..] == data[..read.len()], "acknowledged data lost");
    if let Err(e) = result {
        eprintln!("the write failed, as it may: {e:?}");
    }
}
