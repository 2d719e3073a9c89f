//! The switch driver with real links: nodes over TCP and in-process log in, talk to each other,
//! show up in the snapshot, and go away when their link does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use fabric::link::{self, tcp, Link, Received};
use fabric::{
    Config, Direction, DriverConfig, Event, LogoutCause, PortId, Snapshot, Switch, SwitchError,
    SwitchHandle,
};
use fc_frames::els::{ElsCode, ElsReply, ElsRequest, LoginRepr};
use fc_frames::encap::{emit_encapsulated, Timestamp};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

const WAIT: Duration = Duration::from_secs(10);
const DOMAIN: u8 = 0x0a;
const SWITCH: Wwn = Wwn::from_u64(0x1000_0005_1e00_0001);
const WA: Wwn = Wwn::from_u64(0x2100_0024_ff4a_000a);
const WB: Wwn = Wwn::from_u64(0x5006_0160_3ea0_000b);
const WC: Wwn = Wwn::from_u64(0x2100_0024_ff4a_000c);

fn switch(ports: impl IntoIterator<Item = u8>) -> SwitchHandle {
    let config = Config::new(DOMAIN, SWITCH, ports.into_iter().map(PortId));
    SwitchHandle::spawn(Switch::new(config).expect("valid config"))
}

fn flogi_frame(wwpn: Wwn, ox: u16) -> FcFrame {
    let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
    FcFrame::single(
        FrameHeaderRepr::request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            FcId::F_PORT_CONTROLLER,
            FcId::UNIDENTIFIED,
            ox,
        ),
        req.to_vec(),
    )
}

fn fcp_frame(s: FcId, d: FcId, ox: u16) -> FcFrame {
    FcFrame::single(
        FrameHeaderRepr::request(RCtl::UNSOLICITED_COMMAND, FcType::FCP, d, s, ox),
        vec![0x28; 32],
    )
}

async fn recv(link: &mut Link) -> Option<Received> {
    timeout(WAIT, link.rx.recv()).await.expect("timed out")
}

async fn recv_frame(link: &mut Link) -> FcFrame {
    match recv(link).await {
        Some(Received::Frame(f)) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Sends FLOGI, checks the LS_ACC and returns the N_Port ID it assigns.
async fn flogi(link: &mut Link, wwpn: Wwn) -> FcId {
    link.tx
        .send(flogi_frame(wwpn, 0x100))
        .await
        .expect("link up");
    let f = recv_frame(link).await;
    assert_eq!(f.header.r_ctl, RCtl::ELS_REPLY);
    assert_eq!(f.header.s_id, FcId::F_PORT_CONTROLLER);
    assert_eq!(f.header.ox_id, 0x100);
    match ElsReply::parse(ElsCode::FLOGI, &f.payload).expect("reply parses") {
        ElsReply::Login(_) => {}
        other => panic!("expected LS_ACC, got {other}"),
    }
    assert_eq!(f.header.d_id.domain(), DOMAIN);
    f.header.d_id
}

/// Waits until the snapshot satisfies `pred`, and returns it.
async fn snapshot_until(sw: &SwitchHandle, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = sw.snapshot();
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot never matched: {s:#?}"
        );
        sleep(Duration::from_millis(10)).await;
    }
}

async fn serve(sw: &SwitchHandle) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sw = sw.clone();
    tokio::spawn(async move { sw.serve_tcp(listener).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_nodes_log_in_talk_and_leave() {
    let sw = switch([1, 2, 3]);
    let seen: Arc<Mutex<Vec<(PortId, Direction, RCtl)>>> = Arc::default();
    let tap_seen = Arc::clone(&seen);
    sw.set_tap(Some(Box::new(move |port, dir, f: &FcFrame| {
        tap_seen
            .lock()
            .expect("tap lock")
            .push((port, dir, f.header.r_ctl));
    })));
    let mut events = sw.events();
    let addr = serve(&sw).await;

    let mut a = tcp::connect(addr).await.expect("connect a");
    let a_id = flogi(&mut a, WA).await;
    let mut b = tcp::connect(addr).await.expect("connect b");
    let b_id = flogi(&mut b, WB).await;
    assert_eq!(a_id, FcId::from_parts(DOMAIN, 1, 0));
    assert_eq!(b_id, FcId::from_parts(DOMAIN, 2, 0));

    // A frame from one node reaches the other.
    a.tx.send(fcp_frame(a_id, b_id, 0x200)).await.expect("up");
    let f = recv_frame(&mut b).await;
    assert_eq!((f.header.s_id, f.header.d_id), (a_id, b_id));
    assert_eq!(f.header.r_ctl, RCtl::UNSOLICITED_COMMAND);
    assert_eq!(&f.payload[..], &[0x28; 32]);

    let snap = sw.snapshot();
    let names: Vec<(FcId, Wwn)> = snap
        .name_server
        .iter()
        .map(|e| (e.port_id, e.port_name))
        .collect();
    assert_eq!(names, [(a_id, WA), (b_id, WB)]);
    let pa = snap.port(PortId(1)).expect("port 1");
    let pb = snap.port(PortId(2)).expect("port 2");
    assert!(pa.up && pb.up);
    assert!(!snap.port(PortId(3)).expect("port 3").up);
    assert_eq!((pa.counters.rx_frames, pa.counters.tx_frames), (2, 1));
    assert_eq!((pb.counters.rx_frames, pb.counters.tx_frames), (1, 2));

    // Events: both logins.
    for (want_port, want_id, want_name) in [(PortId(1), a_id, WA), (PortId(2), b_id, WB)] {
        let e = timeout(WAIT, events.recv()).await.expect("timed out");
        match e.expect("event") {
            Event::Login {
                port,
                port_id,
                port_name,
                ..
            } => assert_eq!((port, port_id, port_name), (want_port, want_id, want_name)),
            other => panic!("expected Login, got {other:?}"),
        }
    }

    // A frame with a bad FC CRC on a third connection is counted as malformed on its port.
    let mut raw = TcpStream::connect(addr).await.expect("raw connect");
    let mut buf = BytesMut::new();
    emit_encapsulated(&flogi_frame(WC, 1), Timestamp::ZERO, &mut buf);
    buf[40] ^= 0x01;
    raw.write_all(&buf).await.expect("write");
    let snap = snapshot_until(&sw, |s| {
        s.port(PortId(3))
            .is_some_and(|p| p.counters.discards.malformed == 1)
    })
    .await;
    assert_eq!(snap.port(PortId(3)).expect("port 3").counters.rx_frames, 1);
    assert_eq!(snap.name_server.len(), 2);

    // Every F_Port is taken: a fourth connection is closed.
    let mut extra = TcpStream::connect(addr).await.expect("connect extra");
    let mut rest = Vec::new();
    let r = timeout(WAIT, extra.read_to_end(&mut rest))
        .await
        .expect("timed out");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");

    // Disconnecting port 1 takes A's link down and its name server entry away.
    sw.disconnect(PortId(1));
    assert!(recv(&mut a).await.is_none(), "A's link should be down");
    let snap = snapshot_until(&sw, |s| s.name_server.len() == 1).await;
    assert_eq!(snap.name_server[0].port_id, b_id);
    assert!(!snap.port(PortId(1)).expect("port 1").up);
    let e = timeout(WAIT, events.recv()).await.expect("timed out");
    assert!(
        matches!(
            e,
            Ok(Event::Logout { port: PortId(1), port_id, cause: LogoutCause::PortDown, .. })
                if port_id == a_id
        ),
        "{e:?}"
    );

    // The freed port takes the next connection.
    let mut c = tcp::connect(addr).await.expect("connect c");
    assert_eq!(flogi(&mut c, WC).await, FcId::from_parts(DOMAIN, 1, 0));

    // The tap saw both directions, in order: FLOGI in, LS_ACC out, on port 1 first.
    let seen = seen.lock().expect("tap lock").clone();
    assert_eq!(
        &seen[..2],
        &[
            (PortId(1), Direction::Rx, RCtl::ELS_REQUEST),
            (PortId(1), Direction::Tx, RCtl::ELS_REPLY)
        ]
    );
    assert!(seen.contains(&(PortId(1), Direction::Rx, RCtl::UNSOLICITED_COMMAND)));
    assert!(seen.contains(&(PortId(2), Direction::Tx, RCtl::UNSOLICITED_COMMAND)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_node_logs_in() {
    let sw = switch([5]);
    let mut node = sw.connect_node().expect("a free port");
    assert_eq!(flogi(&mut node, WA).await, FcId::from_parts(DOMAIN, 5, 0));
    assert_eq!(sw.connect_node().err(), Some(SwitchError::NoFreePort));
    let snap = sw.snapshot();
    assert_eq!(snap.name_server.len(), 1);
    assert_eq!(snap.name_server[0].port, PortId(5));

    // The node goes away: its port goes down and is free again.
    drop(node);
    snapshot_until(&sw, |s| {
        s.name_server.is_empty() && !s.port(PortId(5)).is_some_and(|p| p.up)
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut node = loop {
        match sw.connect_node() {
            Ok(l) => break l,
            Err(SwitchError::NoFreePort) if tokio::time::Instant::now() < deadline => {
                sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(flogi(&mut node, WB).await, FcId::from_parts(DOMAIN, 5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattaching_a_port_replaces_its_link() {
    let sw = switch([1]);
    let (near, mut old) = link::pair();
    sw.attach(PortId(1), near);
    let old_id = flogi(&mut old, WA).await;

    let (near, mut new) = link::pair();
    sw.attach(PortId(1), near);
    // The old link is down, and its going down does not take the new one with it.
    assert!(recv(&mut old).await.is_none());
    let new_id = flogi(&mut new, WB).await;
    assert_eq!(new_id, old_id);
    sleep(Duration::from_millis(50)).await;
    let snap = sw.snapshot();
    assert!(snap.port(PortId(1)).expect("port 1").up);
    let names: Vec<Wwn> = snap.name_server.iter().map(|e| e.port_name).collect();
    assert_eq!(names, [WB]);
    // Still answering on the new link.
    new.tx.send(flogi_frame(WB, 0x101)).await.expect("up");
    assert_eq!(recv_frame(&mut new).await.header.ox_id, 0x101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_switches_route_by_domain_over_an_inter_switch_link() {
    // Domain 0a and domain 0b, each with one node, joined port 9 to port 9 by a TCP link.
    let a = switch([1]);
    let config = Config::new(0x0b, Wwn::from_u64(0x1000_0005_1e00_0002), [PortId(1)]);
    let b = SwitchHandle::spawn(Switch::new(config).expect("valid config"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| tcp::spawn(s)) });
    a.attach(PortId(9), tcp::connect(addr).await.expect("connect"));
    b.attach(PortId(9), accept.await.expect("accept").expect("accepted"));
    // No static routes: each switch learns the other's domain from its EFP.

    let mut na = a.connect_node().expect("free port");
    let mut nb = b.connect_node().expect("free port");
    let ida = flogi(&mut na, WA).await;
    nb.tx.send(flogi_frame(WB, 0x100)).await.expect("link up");
    let idb = recv_frame(&mut nb).await.header.d_id;
    assert_eq!(idb.domain(), 0x0b);
    // Each name server learns the other's N_Port (the RSCN B sends A's controller on B's
    // fabric login has A walk B's name server).
    let snap = snapshot_until(&a, |s| s.name_server.iter().any(|e| e.port_id == idb)).await;
    let remote = snap
        .name_server
        .iter()
        .find(|e| e.port_id == idb)
        .expect("B's node");
    assert_eq!((remote.port_name, remote.port), (WB, PortId(9)));
    snapshot_until(&b, |s| s.name_server.iter().any(|e| e.port_id == ida)).await;

    // A to B and back, across the link.
    na.tx
        .send(fcp_frame(ida, idb, 0x77))
        .await
        .expect("link up");
    let f = recv_frame(&mut nb).await;
    assert_eq!(
        (f.header.s_id, f.header.d_id, f.header.ox_id),
        (ida, idb, 0x77)
    );
    nb.tx
        .send(fcp_frame(idb, ida, 0x78))
        .await
        .expect("link up");
    assert_eq!(recv_frame(&mut na).await.header.ox_id, 0x78);
    let snap = a.snapshot();
    let isl = snap.port(PortId(9)).expect("ISL port");
    assert!(isl.up && isl.counters.rx_frames >= 1 && isl.counters.tx_frames >= 1);

    // Without the inter-switch link, domain 0b and its entries are gone: a frame for it is
    // unroutable, discarded and counted.
    a.disconnect(PortId(9));
    let snap = snapshot_until(&a, |s| s.name_server.iter().all(|e| e.port_id != idb)).await;
    assert!(!snap.port(PortId(9)).expect("ISL port").up);
    na.tx
        .send(fcp_frame(ida, idb, 0x79))
        .await
        .expect("link up");
    snapshot_until(&a, |s| {
        s.port(PortId(1))
            .is_some_and(|p| p.counters.discards.unroutable == 1)
    })
    .await;
}

/// Receives FCP frames until none comes for `quiet`; their OX_IDs.
async fn drain_fcp(link: &mut Link, quiet: Duration) -> Vec<u16> {
    let mut got = Vec::new();
    while let Ok(Some(r)) = timeout(quiet, link.rx.recv()).await {
        if let Received::Frame(f) = r {
            if f.header.fc_type == FcType::FCP {
                got.push(f.header.ox_id);
            }
        }
    }
    got
}

/// A node that does not read: its port's queue fills, then its hold queue; the port whose
/// frames go there stops being read (its sender waits), other ports go on, and after the hold
/// time the held frames are discarded and counted, so the sender moves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_egress_port_holds_pushes_back_then_discards_without_stopping_the_others() {
    const HOLD: Duration = Duration::from_millis(800);
    const FRAMES: u16 = 150;
    let config = Config::new(DOMAIN, SWITCH, (1..=4).map(PortId));
    let sw = SwitchHandle::spawn_with(
        Switch::new(config).expect("valid config"),
        DriverConfig {
            hold_time: HOLD,
            hold_frames: 16,
        },
    );
    // Small queues both ways for the sender (port 1) and the sink that never reads (port 2).
    let (near, mut a) = link::pair_with_capacity(4);
    sw.attach(PortId(1), near);
    let (near, mut b) = link::pair_with_capacity(4);
    sw.attach(PortId(2), near);
    let mut c = sw.connect_node().expect("port 3");
    let mut d = sw.connect_node().expect("port 4");
    let (ida, idb) = (flogi(&mut a, WA).await, flogi(&mut b, WB).await);
    let (idc, idd) = (
        flogi(&mut c, WC).await,
        flogi(&mut d, Wwn::from_u64(0x2100_0024_ff4a_000d)).await,
    );

    let tx = a.tx.clone();
    let sender = tokio::spawn(async move {
        for ox in 0..FRAMES {
            tx.send(fcp_frame(ida, idb, ox)).await.expect("link up");
        }
    });
    // The sender is held back: at most B's queue, the hold queue and a batch from A's queue
    // got through, and it waits for room.
    sleep(HOLD / 4).await;
    assert!(!sender.is_finished(), "the sender was not held back");
    let taken = sw
        .snapshot()
        .port(PortId(1))
        .expect("port 1")
        .counters
        .rx_frames;
    assert!(taken < 4 + 16 + 4 + 2 + 4, "{taken} frames taken from A");
    // Meanwhile C and D talk as usual.
    for ox in 0..20 {
        c.tx.send(fcp_frame(idc, idd, 0x1000 + ox))
            .await
            .expect("up");
    }
    let got = drain_fcp(&mut d, Duration::from_millis(200)).await;
    assert_eq!(got, (0x1000..0x1014).collect::<Vec<u16>>());
    assert!(!sender.is_finished(), "C's traffic did not wait for A's");

    // After hold times the held frames go, counted, and the sender finishes.
    timeout(WAIT + HOLD * 12, sender)
        .await
        .expect("the sender finishes")
        .expect("sender");
    let discarded = snapshot_until(&sw, |s| {
        s.port(PortId(2))
            .is_some_and(|p| p.counters.tx_discards > 0)
    })
    .await
    .port(PortId(2))
    .expect("port 2")
    .counters
    .tx_discards;
    // What B reads now comes in order, and with the discards makes up every frame.
    let got = drain_fcp(&mut b, HOLD * 2).await;
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    let discarded = sw
        .snapshot()
        .port(PortId(2))
        .expect("port 2")
        .counters
        .tx_discards
        .max(discarded);
    assert_eq!(got.len() as u64 + discarded, u64::from(FRAMES), "{got:?}");
}
