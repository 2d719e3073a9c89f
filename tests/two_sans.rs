//! Two SANs joined by FCIP over real loopback TCP, each a gateway with a disk array and a host:
//! the host on SAN A finds the array on SAN B by the name server (GID_FT across the link),
//! writes a file to its LUN and reads it back byte-exact; a link bounced in the middle of a
//! write comes back, and the write either completes or fails saying how much was
//! acknowledged — and that much reads back exact.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use fabric::{Config, PortId};
use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::disk::{DiskArray, LunSpec};
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::transfer;
use fc_node::node::{Node, NodeConfig};
use fc_node::scsi::Tier;
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::net::TcpListener;
use tokio::time::timeout;
use topology::{tcp_connector, write_random};

const SW_A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
const SW_B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
const HOST_A: Wwn = Wwn::from_u64(0x2100_0000_0000_0a01);
const HOST_B: Wwn = Wwn::from_u64(0x2100_0000_0000_0b01);
const DISK_A: Wwn = Wwn::from_u64(0x2200_0000_0000_0a02);
const DISK_B: Wwn = Wwn::from_u64(0x2200_0000_0000_0b02);
const ISL: PortId = PortId(100);
const WAIT: Duration = Duration::from_secs(30);

struct Site {
    gateway: Gateway,
    /// Where its switch takes nodes over TCP.
    addr: SocketAddr,
    disk: DiskArray,
    host: Initiator,
}

async fn gateway(domain: u8, name: Wwn, peer: PeerConfig) -> (Gateway, SocketAddr) {
    let config = GatewayConfig {
        switch: Config::new(domain, name, (1..=8).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().unwrap(),
        peers: vec![peer],
        k_a_tov: Duration::from_secs(6),
        receiver: ReceiverConfig::default(),
        capture: None,
    };
    let gw = Gateway::start(config, u64::from(domain)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sw = gw.switch.clone();
    tokio::spawn(async move { sw.serve_tcp(listener).await });
    (gw, addr)
}

fn nodes(dir: &Path, addr: SocketAddr, disk: Wwn, host: Wwn) -> (DiskArray, Initiator) {
    let lun = LunSpec {
        lun: Lun::ZERO,
        path: dir.join(format!("{disk}.img").replace(':', "")),
        bytes: 64 << 20,
        block_size: 512,
        tier: Tier::Ssd,
        serial: format!("S{}", disk.to_u64() & 0xFFFF),
    };
    let mut nc = NodeConfig::new(disk, disk);
    nc.symbolic_name = "array".into();
    let array = DiskArray::start(nc, tcp_connector(addr), &[lun], &[]).unwrap();
    let mut nc = NodeConfig::new(host, host);
    nc.initiator = true;
    let init = Initiator::new(Node::spawn(nc, tcp_connector(addr), None))
        .with_timeout(Duration::from_secs(4));
    (array, init)
}

/// Site B (domain 2) accepts; site A (domain 1) dials it with `connections` connections.
async fn two_sans(dir: &Path, connections: usize) -> (Site, Site) {
    let (gb, addr_b) = gateway(
        2,
        SW_B,
        PeerConfig {
            fabric: SW_A,
            dial: None,
            domains: Vec::new(),
            port: ISL,
            connections,
        },
    )
    .await;
    let (ga, addr_a) = gateway(
        1,
        SW_A,
        PeerConfig {
            fabric: SW_B,
            dial: Some(gb.fcip_addr()),
            domains: Vec::new(),
            port: ISL,
            connections,
        },
    )
    .await;
    let (disk_a, host_a) = nodes(dir, addr_a, DISK_A, HOST_A);
    let (disk_b, host_b) = nodes(dir, addr_b, DISK_B, HOST_B);
    let a = Site {
        gateway: ga,
        addr: addr_a,
        disk: disk_a,
        host: host_a,
    };
    let b = Site {
        gateway: gb,
        addr: addr_b,
        disk: disk_b,
        host: host_b,
    };
    (a, b)
}

/// Waits until `host` has a session with `wwpn`, and returns its N_Port ID.
async fn target(host: &Initiator, wwpn: Wwn) -> fc_frames::FcId {
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
    let (a, b) = two_sans(dir.path(), 2).await;
    for s in [&a, &b] {
        s.host.node().wait_online(WAIT).await.unwrap();
    }
    // Each host finds both arrays: its own and the one across the link.
    let remote = target(&a.host, DISK_B).await;
    assert_eq!(remote.domain(), 2);
    assert_eq!(target(&a.host, DISK_A).await.domain(), 1);
    assert_eq!(target(&b.host, DISK_A).await.domain(), 1);
    // The switches' name servers hold the other site's N_Ports, at the inter-switch port.
    let snap = a.gateway.switch.snapshot();
    let e = snap
        .name_server
        .iter()
        .find(|e| e.port_name == DISK_B)
        .expect("B's array in A's name server");
    assert_eq!(e.port, ISL);

    let src = dir.path().join("file.bin");
    let back = dir.path().join("file.back");
    write_random(&src, 8 << 20).unwrap();
    let w = transfer::write_file(&a.host, remote, Lun::ZERO, &src, false, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(w.bytes, 8 << 20);
    transfer::read_file(&a.host, remote, Lun::ZERO, &back, w.bytes, &mut |_| {})
        .await
        .unwrap();
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&back).unwrap());
    transfer::verify_file(
        &b.host,
        target(&b.host, DISK_B).await,
        Lun::ZERO,
        &src,
        &mut |_| {},
    )
    .await
    .unwrap();

    let (peer, c) = a.gateway.link_counters()[0];
    assert_eq!(peer, SW_B);
    assert_eq!(c.connections_up, 2);
    assert_eq!(c.dropped_no_connection, 0);
    let conns = a.gateway.links()[0].connections.clone();
    assert_eq!(conns.len(), 2);
    // 8 MiB each way went through; nothing was malformed.
    let tx: u64 = conns.iter().map(|c| c.tx_bytes).sum();
    let rx: u64 = conns.iter().map(|c| c.rx.bytes).sum();
    assert!(tx > 8 << 20 && rx > 8 << 20, "tx {tx} rx {rx}");
    assert!(conns.iter().all(|c| c.rx.encapsulation_errors == 0));
    let _ = (&a.addr, &b.addr, &a.disk, &b.disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_bounced_mid_write_comes_back_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _b) = two_sans(dir.path(), 2).await;
    a.host.node().wait_online(WAIT).await.unwrap();
    let remote = target(&a.host, DISK_B).await;
    let src = dir.path().join("big.bin");
    write_random(&src, 48 << 20).unwrap();
    let data = std::fs::read(&src).unwrap();

    let host = a.host.clone();
    let path = src.clone();
    let write = tokio::spawn(async move {
        transfer::write_file(&host, remote, Lun::ZERO, &path, true, &mut |_| {}).await
    });
    // Bounce once the first MiB is on B's LUN.
    let lun_file = dir.path().join(format!("{DISK_B}.img").replace(':', ""));
    timeout(WAIT, async {
        loop {
            let b = std::fs::read(&lun_file).unwrap_or_default();
            if b.len() >= 1 << 20 && b[..1 << 20] == data[..1 << 20] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the write reached B");
    a.gateway.bounce(SW_B);

    // The write ends either way, well within its commands' time-outs: never a hang.
    let result = timeout(Duration::from_secs(120), write)
        .await
        .expect("the write hung")
        .unwrap();
    let acked = match &result {
        Ok(t) => t.bytes as usize,
        Err(e) => {
            let msg = format!("{e:#}");
            msg.split("the first ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no acknowledged count in: {msg}"))
        }
    };

    // The link came back (its connections were dialled again), and the counters say so.
    timeout(WAIT, async {
        loop {
            let c = a.gateway.link_counters()[0].1;
            if c.connections_up == 2 && c.connections_closed >= 2 && c.connections_opened >= 4 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("link never came back: {:?}", a.gateway.link_counters()));

    // The host finds B's array again, and every acknowledged byte is there.
    let remote = target(&a.host, DISK_B).await;
    let back = dir.path().join("back.bin");
    let len = if acked == 0 { 0 } else { acked as u64 };
    if len > 0 {
        let r = timeout(
            WAIT,
            transfer::read_file(&a.host, remote, Lun::ZERO, &back, len, &mut |_| {}),
        )
        .await
        .expect("read hung");
        r.unwrap();
        assert!(
            std::fs::read(&back).unwrap() == data[..acked],
            "acknowledged data lost"
        );
    }
    if let Err(e) = result {
        eprintln!("the write failed, as it may: {e:#}");
    }
}
