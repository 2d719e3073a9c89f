//! Three sites in a chain over loopback FCIP, A — B — C, where gateway B has a link to each of
//! the others: A learns of domain 3 through B (EFP), its name server learns C's N_Port
//! (the walk of FFFC03 crosses B), and frames go end to end both ways.

mod common;

use std::time::Duration;

use common::{flogi, recv, until};
use fabric::{Config, PortId};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};

fn name(domain: u8) -> Wwn {
    Wwn::from_u64(0x1000_0000_0000_0000 | u64::from(domain))
}

fn peer(domain: u8, dial: Option<std::net::SocketAddr>, port: u8) -> PeerConfig {
    PeerConfig {
        fabric: name(domain),
        dial,
        domains: Vec::new(),
        port: PortId(port),
        connections: 1,
    }
}

async fn gateway(domain: u8, peers: Vec<PeerConfig>) -> Gateway {
    let config = GatewayConfig {
        switch: Config::new(domain, name(domain), (1..=4).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().unwrap(),
        peers,
        k_a_tov: Duration::from_secs(6),
        receiver: ReceiverConfig::default(),
        capture: None,
    };
    Gateway::start(config, u64::from(domain)).await.unwrap()
}

fn data(s: FcId, d: FcId, ox: u16) -> FcFrame {
    let h = FrameHeaderRepr::request(RCtl::UNSOLICITED_DATA, FcType::FCP, d, s, ox);
    FcFrame::single(h, vec![ox as u8; 64])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_sites_routes_and_names_end_to_end() {
    let b = gateway(2, vec![peer(1, None, 100), peer(3, None, 101)]).await;
    let a = gateway(1, vec![peer(2, Some(b.fcip_addr()), 100)]).await;
    let c = gateway(3, vec![peer(2, Some(b.fcip_addr()), 100)]).await;

    let mut na = a.switch.connect_node().unwrap();
    let mut nc = c.switch.connect_node().unwrap();
    let wa = Wwn::from_u64(0x2100_0000_0000_0001);
    let wc = Wwn::from_u64(0x2200_0000_0000_0003);
    let ida = flogi(&mut na, wa).await;
    let idc = flogi(&mut nc, wc).await;
    assert_eq!((ida.domain(), idc.domain()), (1, 3));

    // A's name server learns C's N_Port through B, and B's learns both.
    until("A knows C's N_Port", || {
        a.switch
            .snapshot()
            .name_server
            .iter()
            .any(|e| e.port_id == idc && e.port_name == wc && e.port == PortId(100))
    })
    .await;
    until("C knows A's N_Port", || {
        c.switch
            .snapshot()
            .name_server
            .iter()
            .any(|e| e.port_id == ida && e.port_name == wa)
    })
    .await;
    let snap = b.switch.snapshot();
    let at = |id| {
        snap.name_server
            .iter()
            .find(|e| e.port_id == id)
            .map(|e| e.port)
    };
    assert_eq!((at(ida), at(idc)), (Some(PortId(100)), Some(PortId(101))));

    // Frames end to end, both ways, through B.
    for ox in 0..100 {
        na.tx.send(data(ida, idc, ox)).await.unwrap();
    }
    let mut got: Vec<u16> = Vec::new();
    for _ in 0..100 {
        let f = recv(&mut nc).await;
        assert_eq!(f, data(ida, idc, f.header.ox_id));
        got.push(f.header.ox_id);
    }
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<u16>>());
    nc.tx.send(data(idc, ida, 7)).await.unwrap();
    assert_eq!(recv(&mut na).await, data(idc, ida, 7));
}
