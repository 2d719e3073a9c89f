//! Interoperability with an FCIP peer that shares no code with this one: `interop_peer.py`,
//! written in Python from the byte layouts of PROTOCOLS.md (RFC 3643 encapsulation, the RFC 3821
//! Special Frame, FC-FS header and CRC). It dials the gateway, checks the Special Frame echo,
//! exchanges LKAs both ways (one in class F, whose answer must come in class F), ECHOes an
//! `fc_node::Node` logged in on the gateway's SAN across the FCIP link, ECHOes the gateway
//! switch's fabric controller FFFFFD (class 3 and class F, each answer in its request's class)
//! and checks it refuses an ELS it does not serve; it validates every header, delimiter and FC
//! CRC it receives.
//!
//! python3 is required: a machine without it fails these tests (it does not skip them).

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fabric::{Config, PortId, SwitchHandle};
use fc_frames::encap::{EncapHeaderRepr, Timestamp};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use fc_node::node::{Node, NodeConfig, Services};
use fcip::engine::ReceiverConfig;
use fcip::link::LinkCounters;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// Turns a hang into a failure; nothing here is timed for speed.
const WAIT: Duration = Duration::from_secs(30);
const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_0000_0001);
/// The Python peer's Source FC Fabric Entity WWN.
const PEER: Wwn = Wwn::from_u64(0x1000_0000_0000_00a2);
const ISL: PortId = PortId(100);
/// The Python peer's N_Port, in its domain 2.
const PEER_PORT: FcId = FcId::from_parts(2, 1, 0);

fn gateway_config(peer: Wwn) -> GatewayConfig {
    GatewayConfig {
        switch: Config::new(1, SWITCH, (1..=4).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().unwrap(),
        peers: vec![PeerConfig {
            fabric: peer,
            dial: None,
            domains: vec![2],
            port: ISL,
            connections: 1,
        }],
        // The gateway sends an LKA after K_A_TOV/2 without sending; long enough that a busy
        // machine does not make it declare the Python peer dead.
        k_a_tov: Duration::from_secs(4),
        receiver: ReceiverConfig::default(),
        capture: None,
    }
}

fn connector(
    sw: &SwitchHandle,
) -> impl FnMut() -> std::future::Ready<io::Result<fabric::link::Link>> + Send + 'static {
    let sw = sw.clone();
    move || std::future::ready(sw.connect_node().map_err(io::Error::other))
}

fn hex(w: Wwn) -> String {
    format!("{:016x}", w.to_u64())
}

/// What the Python peer printed, and how it ended.
struct PeerRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `interop_peer.py` with `args` to its end (it has a deadline on every read; `WAIT`
/// bounds the whole run anyway).
async fn run_peer(args: Vec<String>) -> PeerRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop_peer.py");
    let mut child = match Command::new("python3")
        .arg(&script)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "python3 is needed to run the interop peer {} and was not found: install it \
             (Debian/Ubuntu: `apt-get install python3`)",
            script.display()
        ),
        Err(e) => panic!("cannot start python3: {e}"),
    };
    let ended = timeout(WAIT, async {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => panic!("waiting for python3: {e}"),
            }
        }
    })
    .await;
    if ended.is_err() {
        let _ = child.kill();
    }
    // Exited (or killed): its output is small and already in the pipes.
    let out = child.wait_with_output().expect("python3's output");
    assert!(ended.is_ok(), "the interop peer hung: {out:?}");
    PeerRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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

fn counters(g: &Gateway) -> LinkCounters {
    g.link_counters()
        .first()
        .map(|(_, c)| *c)
        .expect("one peer link")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_handshakes_keeps_alive_and_echoes_a_node_through_the_gateway() {
    let gw = Gateway::start(gateway_config(PEER), 1).await.unwrap();
    let node = Node::spawn(
        NodeConfig::new(
            Wwn::from_u64(0x2100_0000_0000_0001),
            Wwn::from_u64(0x2000_0000_0000_0001),
        ),
        connector(&gw.switch),
        Services::new(),
    );
    let node_id = node.wait_online(WAIT).await.expect("the node logs in");
    assert_eq!(node_id.domain(), 1);
    let before = node.counters();

    let run = run_peer(vec![
        "--connect".into(),
        gw.fcip_addr().to_string(),
        "--wwn".into(),
        hex(PEER),
        "--dest-wwn".into(),
        hex(SWITCH),
        "--s-id".into(),
        format!("{:06x}", PEER_PORT.to_u32()),
        "--target".into(),
        format!("{:06x}", node_id.to_u32()),
        "--k-a-tov".into(),
        "4000".into(),
        "--echo-len".into(),
        "37".into(),
        "--class-f-lka".into(),
        "--fabric-echo".into(),
        "--gateway-lka".into(),
        "--timeout".into(),
        "15".into(),
    ])
    .await;
    eprintln!("interop peer's log:\n{}", run.stderr);
    assert!(
        run.success,
        "the interop peer failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    let steps: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        steps,
        [
            "fsf echoed",
            "lka answered",
            "echo answered",
            "class f lka answered",
            "fabric echo answered",
            "fabric adisc rejected",
            "gateway lka answered"
        ],
        "stderr:\n{}",
        run.stderr
    );
    // The ECHO went to the node and its LS_ACC came back from it.
    let after = node.counters();
    assert!(after.rx_frames > before.rx_frames, "{after:?}");
    assert!(after.tx_frames > before.tx_frames, "{after:?}");

    // The peer has closed its connection: its counters are in the link's closed totals.
    until("the peer's connection closed", || {
        counters(&gw).connections_closed == 1
    })
    .await;
    let c = counters(&gw);
    assert_eq!((c.connections_opened, c.connections_up), (1, 0), "{c:?}");
    let t = c.closed_totals;
    // In: the peer's two LKAs, its three ECHOs and its ADISC, its LS_ACC to our LKA. Out:
    // the answers to all of them, our LKA.
    assert!(t.rx.frames >= 7, "{c:?}");
    assert!(t.tx_frames >= 7, "{c:?}");
    assert!(t.lka_answered >= 2 && t.lka_sent >= 1, "{c:?}");
    // The fabric controller served the peer: nothing it sent was discarded as unroutable.
    let isl = gw.switch.snapshot().port(ISL).map(|p| p.counters);
    assert_eq!(isl.map(|c| c.discards.unroutable), Some(0), "{isl:?}");
    assert_eq!(t.lka_timeouts, 0, "{c:?}");
    assert_eq!(
        (
            t.rx.encapsulation_errors,
            t.rx.fc_sync_losses,
            t.rx.bytes_skipped,
            t.rx.crc_errors,
            t.rx.transit_discards
        ),
        (0, 0, 0, 0, 0),
        "{c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_that_is_not_configured_gets_no_echo() {
    // The gateway knows another peer; the Python peer's FSF names a fabric it does not.
    let gw = Gateway::start(gateway_config(Wwn::from_u64(0x1000_0000_0000_00ff)), 1)
        .await
        .unwrap();
    let run = run_peer(vec![
        "--connect".into(),
        gw.fcip_addr().to_string(),
        "--wwn".into(),
        hex(PEER),
        "--dest-wwn".into(),
        hex(SWITCH),
        "--expect-refused".into(),
    ])
    .await;
    assert!(
        run.success,
        "the interop peer failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout.trim(), "refused", "stderr:\n{}", run.stderr);
    let c = counters(&gw);
    assert_eq!((c.connections_opened, c.connections_up), (0, 0), "{c:?}");
}

/// What the fake gateway does to the Special Frame before echoing it.
type EchoFix = fn(&mut [u8; 76]);

/// An FCIP acceptor by hand: echoes the Special Frame through `echo`, then sends `frame`, then
/// waits for the peer to hang up.
async fn fake_gateway(echo: EchoFix, frame: Vec<u8>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Loopback ports are shared with whatever else runs on the machine: serve the first
        // connection whose Special Frame is the Python peer's (words 8-9, Source Fabric WWN).
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut fsf = [0u8; 76];
            if !matches!(timeout(WAIT, s.read_exact(&mut fsf)).await, Ok(Ok(_)))
                || fsf[32..40] != PEER.0
            {
                continue;
            }
            echo(&mut fsf);
            s.write_all(&fsf).await.unwrap();
            s.write_all(&frame).await.unwrap();
            let mut rest = Vec::new();
            let _ = timeout(WAIT, s.read_to_end(&mut rest)).await;
            return;
        }
    });
    addr
}

/// An LS_ACC from the fabric controller, encapsulated by the Rust side's own code.
fn encapsulated_ls_acc() -> Vec<u8> {
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REPLY,
        FcType::ELS,
        FcId::FABRIC_CONTROLLER,
        FcId::FABRIC_CONTROLLER,
        1,
    );
    let fc = FcFrame::single(h, vec![2, 0, 0, 0, 9, 9, 9, 9]).to_vec();
    let total = 28 + 4 + fc.len() + 4;
    let mut b = EncapHeaderRepr::fcip(total, Timestamp::ZERO)
        .to_bytes()
        .to_vec();
    b.extend_from_slice(&[0x2e, 0x2e, 0xd1, 0xd1]); // SOFi3
    b.extend_from_slice(&fc);
    b.extend_from_slice(&[0x42, 0x42, 0xbd, 0xbd]); // EOFt
    assert_eq!(b.len(), total);
    b
}

/// The peer's checks are not vacuous: each damaged echo or frame makes it fail, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_fails_on_a_damaged_echo_or_frame() {
    fn keep(_: &mut [u8; 76]) {}
    fn bad_nonce(fsf: &mut [u8; 76]) {
        fsf[55] ^= 1;
    }
    fn bad_destination(fsf: &mut [u8; 76]) {
        fsf[67] ^= 1;
    }
    let good = encapsulated_ls_acc();
    let last = good.len() - 1;
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 0x20;
        b
    };
    let cases: [(EchoFix, Vec<u8>, &str); 7] = [
        (bad_nonce, good.clone(), "FSF echo: nonce"),
        (
            bad_destination,
            good.clone(),
            "FSF echo: destination fabric WWN",
        ),
        (keep, flip(2), "protocol/version complements"),
        (keep, flip(14), "flags/length"),
        (keep, flip(26), "CRC field"),
        (keep, flip(28 + 4 + 24 + 5), "FC CRC"),
        (keep, flip(last), "bad EOF word"),
    ];
    for (echo, frame, why) in cases {
        let addr = fake_gateway(echo, frame).await;
        let run = run_peer(vec![
            "--connect".into(),
            addr.to_string(),
            "--wwn".into(),
            hex(PEER),
            "--dest-wwn".into(),
            hex(SWITCH),
            "--target".into(),
            "010100".into(),
            "--timeout".into(),
            "10".into(),
        ])
        .await;
        assert!(!run.success, "{why}: the peer passed:\n{}", run.stdout);
        assert!(
            run.stderr.contains("FAIL") && run.stderr.contains(why),
            "want {why:?}, got:\n{}",
            run.stderr
        );
    }
}
