//! FC-4 services at a node, across two SANs joined by FCIP: a server node on SAN B serves a
//! vendor CT service (GS_TYPE 0xE0), a vendor ELS code and FCP at once; a client on SAN A finds
//! it by GID_FT for both FC-4 TYPEs and calls each service through both gateways. Unknown
//! services get the rejects FC-GS and FC-LS give, a caller that never logged in is sent LOGO,
//! RSCNs reach the node's user as events, and a dual-role node keeps the image pair a host
//! made with it when an RSCN names that host.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use fabric::{Config, PortId};
use fc_frames::ct::ns::{Fc4Features, Fc4Types, NsAccept, NsRequest, NsResponseBody};
use fc_frames::ct::{CtCommand, CtPreambleRepr, CtReason, GsSubtype, GsType};
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::els::{ElsCode, ElsReply, LsRjt, RscnPage};
use fc_frames::scsi::Lun;
use fc_frames::{FcId, FcType, RCtl, Wwn};
use fc_node::exchange::Outbound;
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::target::Target;
use fc_node::node::service::{self, ct_reject};
use fc_node::node::{
    Access, Node, NodeConfig, NodeError, NodeEvent, Registration, Requests, ServiceKey, Services,
    SessionEvent,
};
use fc_node::scsi::{DiskConfig, MemLun, ScsiEngine, TargetPort, Tier};
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::time::timeout;
use topology::tcp_connector;

const SW_A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
const SW_B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
const SERVER: Wwn = Wwn::from_u64(0x2300_0000_0000_0b01);
const CLIENT: Wwn = Wwn::from_u64(0x2100_0000_0000_0a01);
const ISL: PortId = PortId(100);
const WAIT: Duration = Duration::from_secs(30);

/// The vendor FC-4 TYPE and CT server of the test.
const VENDOR_TYPE: u8 = 0xE0;
const VENDOR_GS: GsType = GsType(0xE0);
const VENDOR_SUB: GsSubtype = GsSubtype(0x01);
/// A vendor ELS code the server takes.
const VENDOR_ELS: ElsCode = ElsCode(0x7F);
/// CT commands of the vendor server.
const CMD_ECHO: CtCommand = CtCommand(0x0101);
const CMD_TWO_PARTS: CtCommand = CtCommand(0x0102);
const CMD_PING_PONG: CtCommand = CtCommand(0x0103);

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

/// Site B accepts, site A dials: the two switches' TCP addresses for nodes.
async fn two_sites() -> (Gateway, SocketAddr, Gateway, SocketAddr) {
    let (gb, addr_b) = gateway(
        2,
        SW_B,
        PeerConfig {
            fabric: SW_A,
            dial: None,
            domains: Vec::new(),
            port: ISL,
            connections: 1,
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
            connections: 1,
        },
    )
    .await;
    (ga, addr_a, gb, addr_b)
}

fn ct_request(command: CtCommand, body: &[u8]) -> Vec<u8> {
    let mut p = CtPreambleRepr::name_server_request(command);
    p.gs_type = VENDOR_GS;
    p.gs_subtype = VENDOR_SUB;
    let mut v = p.to_vec();
    v.extend_from_slice(body);
    v
}

fn ct_accept(req: &CtPreambleRepr, body: &[u8]) -> Vec<u8> {
    let mut p = *req;
    p.command = CtCommand::FS_ACC;
    p.max_size = 0;
    let mut v = p.to_vec();
    v.extend_from_slice(body);
    v
}

/// The server's vendor CT service: ECHO answers the body back; TWO_PARTS answers in two
/// sequences (the first holds the initiative); PING_PONG passes the initiative back, takes the
/// client's next sequence and answers it; anything else is FS_RJT command not supported.
async fn serve_ct(mut requests: Requests) {
    while let Some(mut req) = requests.next().await {
        tokio::spawn(async move {
            let first = req.take().expect("first sequence");
            let pre = CtPreambleRepr::parse(&first.payload).expect("a CT_IU");
            let body = first.payload.slice(16..);
            match pre.command {
                CMD_ECHO => req.reply(Outbound::new(
                    RCtl::SOLICITED_CONTROL,
                    ct_accept(&pre, &body),
                )),
                CMD_TWO_PARTS => {
                    req.send(
                        Outbound::new(RCtl::SOLICITED_CONTROL, ct_accept(&pre, b"part one"))
                            .hold_initiative(),
                    );
                    req.reply(Outbound::new(RCtl::SOLICITED_DATA, &b"part two"[..]));
                }
                CMD_PING_PONG => {
                    req.send(Outbound::new(
                        RCtl::SOLICITED_CONTROL,
                        ct_accept(&pre, b"ping"),
                    ));
                    let pong = req.next().await.expect("the client's second sequence");
                    let mut answer = b"got ".to_vec();
                    answer.extend_from_slice(&pong.payload);
                    req.reply(Outbound::new(RCtl::SOLICITED_DATA, answer));
                }
                _ => req.reply(Outbound::new(
                    RCtl::SOLICITED_CONTROL,
                    ct_reject(&pre, CtReason::COMMAND_NOT_SUPPORTED, 0),
                )),
            }
        });
    }
}

/// The server's vendor ELS: LS_ACC with the request's bytes after the command word.
async fn serve_els(mut requests: Requests) {
    while let Some(mut req) = requests.next().await {
        let first = req.take().expect("first sequence");
        let mut acc = vec![0x02, 0, 0, 0];
        acc.extend_from_slice(first.payload.get(4..).unwrap_or_default());
        req.reply(Outbound::new(RCtl::ELS_REPLY, acc));
    }
}

/// A node on SAN B: FCP target (one RAM LUN) and initiator, vendor CT server, vendor ELS.
fn server(addr: SocketAddr) -> Node {
    let port = TargetPort {
        port_name: SERVER,
        node_name: SERVER,
        relative_port: 1,
    };
    let engine = ScsiEngine::new(port);
    let lun = MemLun::new(2048, 512, Tier::Ssd).unwrap();
    engine
        .add_disk(
            Lun::ZERO,
            std::sync::Arc::new(lun),
            DiskConfig::new("SRV0", Wwn::from_u64(0x6000_0000_0000_0b01)),
        )
        .unwrap();
    let mut services = Services::new();
    Target::new(std::sync::Arc::new(engine)).install(&mut services);
    let (ct, ct_requests) = service::channel(
        ServiceKey::Ct(VENDOR_GS, VENDOR_SUB),
        Some(Registration {
            fc4_type: VENDOR_TYPE,
            features: Fc4Features::from_bits_retain(0x10),
        }),
        64,
    );
    services.add(
        [ServiceKey::Ct(VENDOR_GS, VENDOR_SUB)],
        Access::LoggedIn,
        ct,
    );
    let (els, els_requests) = service::channel(ServiceKey::Els(VENDOR_ELS), None, 64);
    services.add([ServiceKey::Els(VENDOR_ELS)], Access::LoggedIn, els);
    tokio::spawn(serve_ct(ct_requests));
    tokio::spawn(serve_els(els_requests));
    let mut nc = NodeConfig::new(SERVER, SERVER);
    nc.symbolic_name = "fcsan test server".into();
    nc.initiator = true;
    nc.target = true;
    Node::spawn(nc, tcp_connector(addr), services)
}

fn client(addr: SocketAddr, wwpn: Wwn) -> Initiator {
    let mut nc = NodeConfig::new(wwpn, wwpn);
    nc.initiator = true;
    nc.els_timeout = Duration::from_secs(3);
    Initiator::new(Node::spawn(nc, tcp_connector(addr), Services::new()))
        .with_timeout(Duration::from_secs(5))
}

async fn gid_ft(node: &Node, fc4_type: u8) -> Vec<FcId> {
    match node.name_server(&NsRequest::gid_ft(fc4_type)).await {
        Ok(r) => match r.body {
            NsResponseBody::Accept(NsAccept::GidFt(ports)) => ports,
            _ => Vec::new(),
        },
        Err(e) => panic!("GID_FT: {e}"),
    }
}

/// Calls a CT or ELS service: every sequence of the answer.
async fn call(
    node: &Node,
    to: FcId,
    fc_type: FcType,
    r_ctl: RCtl,
    payload: Vec<u8>,
) -> Result<Vec<Bytes>, NodeError> {
    let mut x = node.exchange(
        to,
        fc_type,
        Outbound::new(r_ctl, payload),
        Duration::from_secs(3),
    );
    let mut seqs = Vec::new();
    loop {
        let s = x.next().await?;
        let last = s.is_last();
        seqs.push(s.payload);
        if last {
            return Ok(seqs);
        }
    }
}

async fn wait_for_event(
    events: &mut broadcast::Receiver<NodeEvent>,
    mut pred: impl FnMut(&NodeEvent) -> bool,
) -> NodeEvent {
    timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("the event never came")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_ct_and_els_beside_fcp_across_two_gateways() {
    let (_ga, addr_a, _gb, addr_b) = two_sites().await;
    let server = server(addr_b);
    let server_id = server.wait_online(WAIT).await.unwrap();
    let host = client(addr_a, CLIENT);
    host.node().wait_online(WAIT).await.unwrap();

    // The server registered both TYPEs before it said it was online: GID_FT finds it for
    // each, across the link, once the walk of B's name server reached A.
    timeout(WAIT, async {
        while !gid_ft(host.node(), VENDOR_TYPE).await.contains(&server_id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("GID_FT for the vendor TYPE finds the server");
    assert!(gid_ft(host.node(), TYPE_FCP).await.contains(&server_id));

    // FCP through the same node: the host logs in to the target and reads.
    timeout(WAIT, async {
        while !host.node().targets().iter().any(|t| t.port_id == server_id) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the host logs in to the server's FCP target");
    let cap = host.read_capacity(server_id, Lun::ZERO).await.unwrap();
    assert_eq!(cap.blocks(), 2048);

    // Vendor CT: echo, two sequences, ping-pong, an unknown command.
    let node = host.node();
    let r = call(
        node,
        server_id,
        FcType::CT,
        RCtl::UNSOLICITED_CONTROL,
        ct_request(CMD_ECHO, b"hello fabric"),
    )
    .await
    .unwrap();
    assert_eq!(r.len(), 1);
    let pre = CtPreambleRepr::parse(&r[0]).unwrap();
    assert_eq!(pre.command, CtCommand::FS_ACC);
    assert_eq!(&r[0][16..], b"hello fabric");

    let r = call(
        node,
        server_id,
        FcType::CT,
        RCtl::UNSOLICITED_CONTROL,
        ct_request(CMD_TWO_PARTS, b""),
    )
    .await
    .unwrap();
    assert_eq!(
        r.len(),
        2,
        "two sequences, the first holding the initiative"
    );
    assert_eq!(&r[0][16..], b"part one");
    assert_eq!(&r[1][..], b"part two");

    let mut x = node.exchange(
        server_id,
        FcType::CT,
        Outbound::new(RCtl::UNSOLICITED_CONTROL, ct_request(CMD_PING_PONG, b"")),
        Duration::from_secs(3),
    );
    let ping = x.next().await.unwrap();
    assert!(!ping.is_last());
    assert_eq!(&ping.payload[16..], b"ping");
    x.send(Outbound::new(RCtl::UNSOLICITED_DATA, &b"pong"[..]));
    let answer = x.next().await.unwrap();
    assert!(answer.is_last());
    assert_eq!(&answer.payload[..], b"got pong");

    let r = call(
        node,
        server_id,
        FcType::CT,
        RCtl::UNSOLICITED_CONTROL,
        ct_request(CtCommand(0x0999), b""),
    )
    .await
    .unwrap();
    let pre = CtPreambleRepr::parse(&r[0]).unwrap();
    assert_eq!(pre.command, CtCommand::FS_RJT);
    assert_eq!(pre.reason, CtReason::COMMAND_NOT_SUPPORTED);

    // A CT server the node does not have: FS_RJT, server not available, for that server.
    let mut other = CtPreambleRepr::name_server_request(CtCommand(0x0101));
    other.gs_type = GsType(0xE1);
    other.gs_subtype = GsSubtype(0x07);
    let r = call(
        node,
        server_id,
        FcType::CT,
        RCtl::UNSOLICITED_CONTROL,
        other.to_vec(),
    )
    .await
    .unwrap();
    let pre = CtPreambleRepr::parse(&r[0]).unwrap();
    assert_eq!(pre.command, CtCommand::FS_RJT);
    assert_eq!(pre.reason, CtReason::SERVER_NOT_AVAILABLE);
    assert_eq!(
        (pre.gs_type, pre.gs_subtype),
        (GsType(0xE1), GsSubtype(0x07))
    );
    // A CT_IU of another revision: FS_RJT, invalid version level.
    let mut bad = ct_request(CMD_ECHO, b"");
    bad[0] = 0x02;
    let r = call(node, server_id, FcType::CT, RCtl::UNSOLICITED_CONTROL, bad)
        .await
        .unwrap();
    let pre = CtPreambleRepr::parse(&r[0]).expect("the reject is a revision-1 CT_IU");
    assert_eq!(pre.command, CtCommand::FS_RJT);
    assert_eq!(pre.reason, CtReason::INVALID_VERSION);

    // Vendor ELS: LS_ACC with the data; an ELS nobody serves: LS_RJT command not supported.
    let mut els = vec![VENDOR_ELS.0, 0, 0, 0];
    els.extend_from_slice(b"vendor data");
    let r = call(node, server_id, FcType::ELS, RCtl::ELS_REQUEST, els)
        .await
        .unwrap();
    assert_eq!(r[0][0], 0x02);
    assert_eq!(&r[0][4..], b"vendor data");
    let r = call(
        node,
        server_id,
        FcType::ELS,
        RCtl::ELS_REQUEST,
        vec![0x7E, 0, 0, 0],
    )
    .await
    .unwrap();
    assert_eq!(
        ElsReply::parse(ElsCode(0x7E), &r[0]).unwrap(),
        ElsReply::Rjt(LsRjt::not_supported())
    );

    // A port that never logged in with the server: its CT request is discarded and it is
    // sent LOGO; it sees a time-out, the server counts it.
    let before = server.counters().without_login;
    let r = call(
        &plain(addr_a).await,
        server_id,
        FcType::CT,
        RCtl::UNSOLICITED_CONTROL,
        ct_request(CMD_ECHO, b"x"),
    )
    .await;
    assert_eq!(r.unwrap_err(), NodeError::TimedOut);
    assert_eq!(server.counters().without_login, before + 1);
}

/// A node that logs in with the fabric and nothing else (no FCP roles, no PLOGI anywhere).
async fn plain(addr: SocketAddr) -> Node {
    let wwpn = Wwn::from_u64(0x2100_0000_0000_0a02);
    let node = Node::spawn(
        NodeConfig::new(wwpn, wwpn),
        tcp_connector(addr),
        Services::new(),
    );
    node.wait_online(WAIT).await.unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rscn_reaches_the_user_and_spares_a_hosts_image_pair() {
    let (_ga, addr_a, _gb, addr_b) = two_sites().await;
    let server = server(addr_b);
    let server_id = server.wait_online(WAIT).await.unwrap();
    let mut events = server.events();
    let host = client(addr_a, CLIENT);
    let host_id = host.node().wait_online(WAIT).await.unwrap();
    // The host logs in to the server's target: the server sees the session open with an FCP
    // image pair the host made.
    wait_for_event(&mut events, |e| {
        matches!(e, NodeEvent::Session(SessionEvent::Opened(p))
            if p.port_id == host_id && p.is_fcp_initiator() && !p.originated)
    })
    .await;
    host.read_capacity(server_id, Lun::ZERO).await.unwrap();

    // The host changes its registration (one more FC-4 TYPE): the fabric sends RSCN naming it,
    // across the link. The server's user hears the RSCN; the server (an FCP initiator too)
    // must not tear down the host's image pair: no session closes, and the host's next
    // command works without a new login.
    while events.try_recv().is_ok() {}
    let types = Fc4Types::default().with(TYPE_FCP).with(0xE1);
    host.node()
        .name_server(&NsRequest::rft_id(host_id, types))
        .await
        .unwrap();
    let rscn = wait_for_event(
        &mut events,
        |e| matches!(e, NodeEvent::Rscn(pages) if pages.iter().any(|p| p.affected == host_id)),
    )
    .await;
    let NodeEvent::Rscn(pages) = rscn else {
        unreachable!()
    };
    assert!(pages.contains(&RscnPage::port(host_id)), "{pages:?}");
    // Give the server time to act on it, then look at what happened.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut closed = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let NodeEvent::Session(SessionEvent::Closed { port, reason }) = e {
            closed.push((port.port_id, reason));
        }
    }
    assert!(
        closed.is_empty(),
        "sessions closed after the RSCN: {closed:?}"
    );
    assert!(server
        .sessions()
        .iter()
        .any(|p| p.port_id == host_id && p.is_fcp_initiator()));
    let logins = host.node().counters();
    host.read_capacity(server_id, Lun::ZERO).await.unwrap();
    assert_eq!(host.node().counters().fabric_logins, logins.fabric_logins);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_queue_is_full_answers_busy() {
    let (_ga, addr_a, _gb, addr_b) = two_sites().await;
    // A node whose vendor ELS queue holds one request and nobody takes it.
    let (els, _requests) = service::channel(ServiceKey::Els(VENDOR_ELS), None, 1);
    let mut services = Services::new();
    services.add([ServiceKey::Els(VENDOR_ELS)], Access::Anyone, els);
    let busy = Node::spawn(
        NodeConfig::new(SERVER, SERVER),
        tcp_connector(addr_b),
        services,
    );
    let busy_id = busy.wait_online(WAIT).await.unwrap();
    let caller = plain(addr_a).await;
    timeout(WAIT, async {
        while caller.plogi(busy_id).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the caller reaches the node across the link");
    // The first request waits in the queue (unanswered); the second finds it full.
    let first = caller.exchange(
        busy_id,
        FcType::ELS,
        Outbound::new(RCtl::ELS_REQUEST, vec![VENDOR_ELS.0, 0, 0, 0]),
        Duration::from_secs(3),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = call(
        &caller,
        busy_id,
        FcType::ELS,
        RCtl::ELS_REQUEST,
        vec![VENDOR_ELS.0, 0, 0, 0],
    )
    .await
    .unwrap();
    assert_eq!(
        ElsReply::parse(VENDOR_ELS, &r[0]).unwrap(),
        ElsReply::Rjt(LsRjt::new(
            fc_frames::els::LsRjtReason::LOGICAL_BUSY,
            fc_frames::els::LsRjtExplanation::NONE
        ))
    );
    drop(first);
}
