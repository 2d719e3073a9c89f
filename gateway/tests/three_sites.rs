//! Three sites in a chain over loopback FCIP, A — B — C, where gateway B has a link to each of
//! the others: A learns of domain 3 through B (EFP), its name server learns C's N_Port
//! (the walk of FFFC03 crosses B), and frames go end to end both ways.

use std::time::Duration;

use fabric::link::{Link, Received};
use fabric::{Config, PortId};
use fc_frames::els::{ElsCode, ElsRequest, LoginRepr};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

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

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

async fn recv(link: &mut Link) -> FcFrame {
    loop {
        match timeout(WAIT, link.rx.recv()).await.expect("a frame") {
            // RSCNs from the fabric controller are not what this test waits for.
            Some(Received::Frame(f)) if f.header.r_ctl == RCtl::ELS_REQUEST => {}
            Some(Received::Frame(f)) => return f,
            other => panic!("{other:?}"),
        }
    }
}

async fn flogi(link: &mut Link, wwpn: Wwn) -> FcId {
    let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::F_PORT_CONTROLLER,
        FcId::UNIDENTIFIED,
        1,
    );
    link.tx.send(FcFrame::single(h, req.to_vec())).unwrap();
    recv(link).await.header.d_id
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
        na.tx.send(data(ida, idc, ox)).unwrap();
    }
    let mut got: Vec<u16> = Vec::new();
    for _ in 0..100 {
        let f = recv(&mut nc).await;
        assert_eq!(f, data(ida, idc, f.header.ox_id));
        got.push(f.header.ox_id);
    }
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<u16>>());
    nc.tx.send(data(idc, ida, 7)).unwrap();
    assert_eq!(recv(&mut na).await, data(idc, ida, 7));
}
