//! Two gateways joined by an FCIP link over loopback TCP: a node on SAN A reaches a node on
//! SAN B by N_Port ID, the link's connections come back after a bounce, and a gateway that is
//! not a configured peer is refused.

mod common;

use std::time::Duration;

use common::{flogi, recv, until};
use fabric::{Config, PortId};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};

const SW_A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
const SW_B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
const ISL: PortId = PortId(100);

fn config(domain: u8, name: Wwn, peer: PeerConfig) -> GatewayConfig {
    GatewayConfig {
        switch: Config::new(domain, name, (1..=4).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().unwrap(),
        peers: vec![peer],
        k_a_tov: Duration::from_secs(6),
        receiver: ReceiverConfig::default(),
        capture: None,
    }
}

async fn two_sites(connections: usize) -> (Gateway, Gateway) {
    let b = Gateway::start(
        config(
            2,
            SW_B,
            PeerConfig {
                fabric: SW_A,
                dial: None,
                domains: vec![1],
                port: ISL,
                connections,
            },
        ),
        2,
    )
    .await
    .unwrap();
    let a = Gateway::start(
        config(
            1,
            SW_A,
            PeerConfig {
                fabric: SW_B,
                dial: Some(b.fcip_addr()),
                domains: vec![2],
                port: ISL,
                connections,
            },
        ),
        1,
    )
    .await
    .unwrap();
    (a, b)
}

fn data(s: FcId, d: FcId, ox: u16, len: usize) -> FcFrame {
    let mut h = FrameHeaderRepr::request(RCtl::UNSOLICITED_DATA, FcType::FCP, d, s, ox);
    h.f_ctl = h.f_ctl.with_fill_bytes((4 - len % 4) % 4);
    FcFrame::single(h, vec![(ox & 0xFF) as u8; len])
}

fn link_up(g: &Gateway, n: u64) -> bool {
    g.link_counters().iter().all(|(_, c)| c.connections_up == n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_a_reaches_node_on_b_through_the_tunnel() {
    let (a, b) = two_sites(2).await;
    until("link up", || link_up(&a, 2) && link_up(&b, 2)).await;
    let mut host = a.switch.connect_node().unwrap();
    let mut disk = b.switch.connect_node().unwrap();
    let h = flogi(&mut host, Wwn::from_u64(0x2100_0000_0000_0001)).await;
    let d = flogi(&mut disk, Wwn::from_u64(0x2200_0000_0000_0001)).await;
    assert_eq!((h.domain(), d.domain()), (1, 2));
    until("routes", || {
        a.switch.snapshot().port(ISL).is_some_and(|p| p.up)
    })
    .await;

    for ox in 0..500u16 {
        host.tx
            .send(data(h, d, ox, usize::from(ox) * 7 % 2113))
            .await
            .unwrap();
    }
    // Each frame is an exchange of its own: exchanges may overtake each other on different
    // connections, so compare the set.
    let mut got = Vec::new();
    for _ in 0..500 {
        got.push(recv(&mut disk).await);
    }
    got.sort_by_key(|f| f.header.ox_id);
    for (ox, f) in (0..500u16).zip(&got) {
        assert_eq!(*f, data(h, d, ox, usize::from(ox) * 7 % 2113));
    }
    disk.tx.send(data(d, h, 9, 2112)).await.unwrap();
    assert_eq!(recv(&mut host).await, data(d, h, 9, 2112));

    // Bounced: the link comes back and frames flow again.
    a.bounce(SW_B);
    until("connections closed", || {
        a.link_counters()
            .iter()
            .all(|(_, c)| c.connections_closed >= 2)
    })
    .await;
    until("link back", || link_up(&a, 2) && link_up(&b, 2)).await;
    until("port back", || {
        a.switch.snapshot().port(ISL).is_some_and(|p| p.up)
    })
    .await;
    until("port back at B", || {
        b.switch.snapshot().port(ISL).is_some_and(|p| p.up)
    })
    .await;
    host.tx.send(data(h, d, 77, 100)).await.unwrap();
    assert_eq!(recv(&mut disk).await, data(h, d, 77, 100));
    let (_, c) = a.link_counters()[0];
    assert!(c.connections_opened >= 4, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_is_not_a_peer_is_refused() {
    let (_a, b) = two_sites(1).await;
    // C dials B, but B knows only A.
    let c = Gateway::start(
        config(
            3,
            Wwn::from_u64(0x1000_0000_0000_000c),
            PeerConfig {
                fabric: SW_B,
                dial: Some(b.fcip_addr()),
                domains: vec![2],
                port: ISL,
                connections: 1,
            },
        ),
        3,
    )
    .await
    .unwrap();
    until("C's dials fail", || {
        c.link_counters().iter().all(|(_, k)| k.dial_failures >= 2)
    })
    .await;
    assert!(c.link_counters().iter().all(|(_, k)| k.connections_up == 0));
    // B counted them as the FCIP MIB does: a Source Fabric WWN that is not a peer.
    until("B counts invalid WWNs", || b.refused().invalid_wwns >= 2).await;
    // C saw its Special Frame go unanswered.
    let (_, k) = c.link_counters()[0];
    assert!(
        k.setup_failures.sf_not_received + k.setup_failures.tcp_failures >= 2,
        "{k:?}"
    );
}
