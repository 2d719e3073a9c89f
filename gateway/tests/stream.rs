//! Streams through two gateways over real loopback TCP, four FCIP connections between them.
//!
//! - 100k frames of mixed sizes (0..=2112 bytes), 50k each way at once over 256 exchanges each
//!   way: every frame arrives byte-exact and in order within its exchange.
//! - A TCP proxy of the test's own between A's dialler and B's listener flips bytes at seeded
//!   random offsets of the A→B stream after the Special Frame: B's receive engine counts
//!   encapsulation errors and resynchronizes — the default, `OnError::Resync`, under which no
//!   connection is closed — frames keep flowing, and every frame B delivers is byte-identical
//!   to one A was sent: frames are lost, never corrupted.
//! - With `OnError::Close` configured instead, a broken encapsulation header closes its
//!   connection; A dials again and traffic resumes on the new connections.
//!
//! A gateway whose fabric is not a configured peer being refused is in `two_sites.rs`
//! (`a_gateway_that_is_not_a_peer_is_refused`) and, at the wire level, in `interop.rs`.
//!
//! Everything is seeded; the only timeouts turn hangs into failures.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::until;
use fabric::link::{Link, LinkRx, LinkTx, Received};
use fabric::{Config, PortId};
use fc_frames::els::{ElsCode, ElsRequest, LoginRepr};
use fc_frames::{Eof, FCtl, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};
use fcip::engine::{OnError, ReceiverConfig};
use fcip::link::LinkCounters;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Turns a hang into a failure; nothing here is timed for speed.
const WAIT: Duration = Duration::from_secs(60);
const SW_A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
const SW_B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
const ISL: PortId = PortId(100);
const CONNECTIONS: usize = 4;
/// Bytes of a Special Frame: the proxy passes the first ones untouched.
const FSF_LEN: usize = 76;
/// Encapsulation header, SOF word and EOF word around an FC frame.
const ENCAP_OVERHEAD: usize = 28 + 4 + 4;

/// xorshift64*, seeded: every test's randomness comes from here.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// splitmix64's finalizer: spreads a seed's bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One direction's traffic: frame `seq` of exchange `ox` is a function of the seed alone, so
/// the receiver knows what each frame must be without keeping what was sent.
#[derive(Clone, Copy)]
struct Flow {
    s: FcId,
    d: FcId,
    seed: u64,
}

/// Frames per sequence: SOFi3 starts one, EOFt ends it.
const SEQUENCE: u32 = 16;

impl Flow {
    fn frame(&self, ox: u16, seq: u32) -> FcFrame {
        let mut rng = Rng::new(self.seed ^ (u64::from(ox) << 32) ^ u64::from(seq));
        // 0..=2112 bytes: multiples of four and not.
        let len = rng.below(2113) as usize;
        let mut payload = Vec::with_capacity(len + 8);
        while payload.len() < len {
            payload.extend_from_slice(&rng.next().to_le_bytes());
        }
        payload.truncate(len);
        let cnt = seq % SEQUENCE;
        let mut h =
            FrameHeaderRepr::request(RCtl::UNSOLICITED_DATA, FcType::FCP, self.d, self.s, ox);
        let mut f_ctl = if seq < SEQUENCE {
            FCtl::FIRST_SEQUENCE
        } else {
            FCtl::empty()
        };
        if cnt == SEQUENCE - 1 {
            f_ctl |= FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
        }
        h.f_ctl = f_ctl.with_fill_bytes((4 - len % 4) % 4);
        h.seq_id = (seq / SEQUENCE) as u8;
        h.seq_cnt = cnt as u16;
        h.parameter = seq;
        let sof = if cnt == 0 { Sof::I3 } else { Sof::N3 };
        let eof = if cnt == SEQUENCE - 1 { Eof::T } else { Eof::N };
        FcFrame::new(sof, h, payload.into(), eof)
    }
}

/// The order frames are sent in: `(exchange, seq)`, exchanges picked at random among
/// `exchanges` starting at OX_ID `first_ox`.
fn schedule(n: usize, first_ox: u16, exchanges: u16, seed: u64) -> Vec<(u16, u32)> {
    let mut rng = Rng::new(seed);
    let mut next = vec![0u32; usize::from(exchanges)];
    (0..n)
        .map(|_| {
            let x = rng.below(u64::from(exchanges)) as u16;
            let seq = next[usize::from(x)];
            next[usize::from(x)] += 1;
            (first_ox + x, seq)
        })
        .collect()
}

/// What a receiver makes of one flow.
struct Checker {
    flow: Flow,
    first_ox: u16,
    /// Per exchange: which of its frames arrived (as many as it will have been sent in all).
    seen: Vec<Vec<bool>>,
    /// Per exchange: one past the highest frame delivered.
    next: Vec<u32>,
    /// Per exchange: from this frame on, none may be lost (0: lossless).
    must_arrive_from: Vec<u32>,
    /// Per exchange: the first frame from `must_arrive_from` on that has not arrived.
    first_missing: Vec<usize>,
    /// Frames that may not be lost and have not arrived yet.
    missing: usize,
    /// Whether each exchange's frames must arrive in the order they were sent (with losses
    /// allowed before `must_arrive_from`).
    ordered: bool,
    delivered: u64,
}

impl Checker {
    /// Checks frames of `flow` on the exchanges from `first_ox` that `sent` lists.
    fn new(flow: Flow, first_ox: u16, exchanges: u16, sent: &[(u16, u32)]) -> Self {
        let mut total = vec![0usize; usize::from(exchanges)];
        for &(ox, _) in sent {
            total[usize::from(ox - first_ox)] += 1;
        }
        Checker {
            flow,
            first_ox,
            seen: total.iter().map(|n| vec![false; *n]).collect(),
            next: vec![0; usize::from(exchanges)],
            must_arrive_from: vec![0; usize::from(exchanges)],
            first_missing: vec![0; usize::from(exchanges)],
            missing: total.iter().sum(),
            ordered: true,
            delivered: 0,
        }
    }

    /// Frames before `from[x]` of exchange `x` may be lost; with `ordered` false, they may
    /// also arrive in any order (the frames from `from[x]` on still arrive in order).
    fn lossy_before(mut self, from: &[u32], ordered: bool) -> Self {
        self.must_arrive_from = from.to_vec();
        self.first_missing = from.iter().map(|f| *f as usize).collect();
        self.missing = self
            .seen
            .iter()
            .zip(from)
            .map(|(s, f)| s.len() - *f as usize)
            .sum();
        self.ordered = ordered;
        self
    }

    /// Checks a delivered frame: one that was sent, byte for byte, not delivered before, in
    /// order, and with no frame missing before it that may not be lost.
    fn deliver(&mut self, f: &FcFrame) {
        let ox = f.header.ox_id;
        let x = usize::from(ox.wrapping_sub(self.first_ox));
        let seq = f.header.parameter;
        let i = seq as usize;
        assert!(
            self.seen.get(x).is_some_and(|s| i < s.len()),
            "a frame that was never sent: {f}"
        );
        let want = self.flow.frame(ox, seq);
        let (got, sent) = (f.to_vec(), want.to_vec());
        if *f != want || got != sent {
            let at = got.iter().zip(&sent).position(|(g, s)| g != s);
            panic!(
                "frame {seq} of exchange {ox:04x} is not the frame sent: first differing byte \
                 {at:?} of {} (sent {}), SOF/EOF {:?}/{:?} (sent {:?}/{:?}): {f}",
                got.len(),
                sent.len(),
                f.sof,
                f.eof,
                want.sof,
                want.eof
            );
        }
        let seen = &mut self.seen[x];
        assert!(!seen[i], "frame {seq} of exchange {ox:04x} twice");
        if self.ordered {
            assert!(
                seq >= self.next[x],
                "exchange {ox:04x}: frame {seq} after {}",
                self.next[x] - 1
            );
        }
        let lost = self.first_missing[x];
        assert!(
            lost >= i,
            "exchange {ox:04x}: frame {seq} arrived, frame {lost} never will"
        );
        seen[i] = true;
        if i >= self.must_arrive_from[x] as usize {
            self.missing -= 1;
        }
        while seen.get(self.first_missing[x]) == Some(&true) {
            self.first_missing[x] += 1;
        }
        self.next[x] = self.next[x].max(seq + 1);
        self.delivered += 1;
    }

    /// True once every frame that may not be lost has arrived.
    fn complete(&self) -> bool {
        self.missing == 0
    }
}

/// The next frame of `flow`'s sender on `rx`; the fabric's own frames (RSCNs and the like from
/// well-known addresses) are skipped.
async fn next_frame(rx: &mut LinkRx, from: FcId) -> FcFrame {
    loop {
        match timeout(WAIT, rx.recv()).await.expect("frames keep coming") {
            Some(Received::Frame(f)) if f.header.s_id == from => return f,
            Some(Received::Frame(f)) => {
                assert!(
                    f.header.s_id.is_well_known(),
                    "a frame from a stranger: {f}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

fn config(domain: u8, name: Wwn, peer: PeerConfig, receiver: ReceiverConfig) -> GatewayConfig {
    GatewayConfig {
        switch: Config::new(domain, name, (1..=4).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().unwrap(),
        peers: vec![peer],
        k_a_tov: Duration::from_secs(6),
        receiver,
        capture: None,
    }
}

/// B (domain 2) listens; A (domain 1) dials `via(B's address)`. Both receive with `receiver`.
async fn two_sites(
    receiver: ReceiverConfig,
    via: impl FnOnce(SocketAddr) -> SocketAddr,
) -> (Gateway, Gateway) {
    let b = Gateway::start(
        config(
            2,
            SW_B,
            PeerConfig {
                fabric: SW_A,
                dial: None,
                domains: vec![1],
                port: ISL,
                connections: CONNECTIONS,
            },
            receiver,
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
                dial: Some(via(b.fcip_addr())),
                domains: vec![2],
                port: ISL,
                connections: CONNECTIONS,
            },
            receiver,
        ),
        1,
    )
    .await
    .unwrap();
    let n = CONNECTIONS as u64;
    until("link up", || {
        counters(&a).connections_up == n && counters(&b).connections_up == n
    })
    .await;
    until("inter-switch ports up", || {
        [&a, &b]
            .iter()
            .all(|g| g.switch.snapshot().port(ISL).is_some_and(|p| p.up))
    })
    .await;
    (a, b)
}

fn counters(g: &Gateway) -> LinkCounters {
    g.link_counters()
        .first()
        .map(|(_, c)| *c)
        .expect("one peer link")
}

/// A raw N_Port on a free F_Port of `g`, logged in.
async fn n_port(g: &Gateway, wwpn: u64) -> (LinkTx, LinkRx, FcId) {
    let Link { tx, mut rx } = g.switch.connect_node().unwrap();
    let wwpn = Wwn::from_u64(wwpn);
    let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::F_PORT_CONTROLLER,
        FcId::UNIDENTIFIED,
        1,
    );
    tx.send(FcFrame::single(h, req.to_vec())).await.unwrap();
    let acc = next_frame(&mut rx, FcId::F_PORT_CONTROLLER).await;
    assert_eq!(
        acc.payload.first(),
        Some(&ElsCode::LS_ACC.0),
        "FLOGI: {acc}"
    );
    (tx, rx, acc.header.d_id)
}

/// Bounces `g`'s link to `peer` and waits for its connections to close, so that their
/// counters are final and added up in the link's closed totals.
async fn fold_counters(g: &Gateway, peer: Wwn) -> LinkCounters {
    let closed = counters(g).connections_closed;
    g.bounce(peer);
    until("connections closed", || {
        counters(g).connections_closed >= closed + CONNECTIONS as u64
    })
    .await;
    counters(g)
}

/// Frames in a window: at most `window` sent and not yet delivered.
async fn send_paced(tx: LinkTx, flow: Flow, order: Vec<(u16, u32)>, credit: Arc<Semaphore>) {
    for (ox, seq) in order {
        credit.acquire().await.expect("credit").forget();
        tx.send(flow.frame(ox, seq))
            .await
            .expect("the N_Port's link is up");
    }
}

async fn receive_all(mut rx: LinkRx, mut check: Checker, credit: Arc<Semaphore>) -> Checker {
    while !check.complete() {
        let f = next_frame(&mut rx, check.flow.s).await;
        check.deliver(&f);
        credit.add_permits(1);
    }
    check
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_frames_both_ways_byte_exact_and_in_order_per_exchange() {
    let (a, b) = two_sites(ReceiverConfig::default(), |b| b).await;
    let (host_tx, host_rx, host) = n_port(&a, 0x2100_0000_0000_0001).await;
    let (disk_tx, disk_rx, disk) = n_port(&b, 0x2200_0000_0000_0001).await;
    assert_eq!((host.domain(), disk.domain()), (1, 2));

    // 50k each way, at once, over 256 exchanges each way.
    let (n, exchanges, window) = (50_000, 256, 2048);
    let ab = Flow {
        s: host,
        d: disk,
        seed: 0xab,
    };
    let ba = Flow {
        s: disk,
        d: host,
        seed: 0xba,
    };
    let ab_order = schedule(n, 0x1000, exchanges, 1);
    let ba_order = schedule(n, 0x2000, exchanges, 2);
    let ab_check = Checker::new(ab, 0x1000, exchanges, &ab_order);
    let ba_check = Checker::new(ba, 0x2000, exchanges, &ba_order);
    let (ab_credit, ba_credit) = (
        Arc::new(Semaphore::new(window)),
        Arc::new(Semaphore::new(window)),
    );
    let tasks = (
        // Clones: an N_Port whose last sender is dropped has its link go down.
        tokio::spawn(send_paced(host_tx.clone(), ab, ab_order, ab_credit.clone())),
        tokio::spawn(send_paced(disk_tx.clone(), ba, ba_order, ba_credit.clone())),
        tokio::spawn(receive_all(disk_rx, ab_check, ab_credit)),
        tokio::spawn(receive_all(host_rx, ba_check, ba_credit)),
    );
    // A receiver that panics leaves its sender without credit: the time-outs end the test.
    let ab_check = timeout(WAIT, tasks.2).await.expect("A to B").unwrap();
    let ba_check = timeout(WAIT, tasks.3).await.expect("B to A").unwrap();
    tasks.0.await.unwrap();
    tasks.1.await.unwrap();
    assert_eq!(
        (ab_check.delivered, ba_check.delivered),
        (n as u64, n as u64)
    );
    drop((host_tx, disk_tx));

    // The link saw them all (its open connections' counters, published after each write and
    // read, catch up), and nothing went wrong on it.
    let totals = |g: &Gateway| {
        let l = &g.links()[0];
        let mut t = l.counters.closed_totals;
        for k in &l.connections {
            t.tx_frames += k.tx_frames;
            t.rx.frames += k.rx.frames;
            t.rx.encapsulation_errors += k.rx.encapsulation_errors;
            t.rx.fc_sync_losses += k.rx.fc_sync_losses;
            t.rx.bytes_skipped += k.rx.bytes_skipped;
            t.rx.crc_errors += k.rx.crc_errors;
        }
        (t, l.counters)
    };
    until("counters caught up", || {
        let (t, _) = totals(&a);
        t.tx_frames >= n as u64 && t.rx.frames >= n as u64
    })
    .await;
    let (t, c) = totals(&a);
    assert_eq!(
        (
            t.rx.encapsulation_errors,
            t.rx.fc_sync_losses,
            t.rx.bytes_skipped,
            t.rx.crc_errors
        ),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.dropped_no_connection, 0, "{c:?}");
    assert_eq!(c.connections_closed, 0, "{c:?}");
}

/// What the proxy does to the dialler-to-listener direction (after the Special Frame).
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// While `corrupting`, XORs one byte in about every `mean_gap` with a random non-zero
    /// value, at seeded random offsets.
    Random { mean_gap: u64 },
    /// On each of the first `connections` connections, breaks the Protocol# complement
    /// (byte 2) of the encapsulation header of frame `nth` (counting from 0).
    Header { nth: usize, connections: u64 },
}

/// A TCP proxy between gateway A's dialler and gateway B's listener that damages the A→B
/// stream as [`Damage`] says (never the Special Frame that opens each connection).
struct Proxy {
    addr: SocketAddr,
    corrupting: Arc<AtomicBool>,
    flips: Arc<AtomicU64>,
    /// Bytes passed dialler-to-listener after the Special Frames.
    forwarded: Arc<AtomicU64>,
}

/// The proxy's shared state, as each connection's task holds it.
#[derive(Clone)]
struct Shared {
    corrupting: Arc<AtomicBool>,
    flips: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on loopback; each connection goes on to `to`. Connection `k`'s randomness comes
    /// from `seed` and `k`.
    fn start(to: SocketAddr, seed: u64, damage: Damage) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            corrupting: Arc::new(AtomicBool::new(true)),
            flips: Arc::new(AtomicU64::new(0)),
            forwarded: Arc::new(AtomicU64::new(0)),
        };
        let shared = Shared {
            corrupting: proxy.corrupting.clone(),
            flips: proxy.flips.clone(),
            forwarded: proxy.forwarded.clone(),
        };
        let k = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            while let Ok((dialler, _)) = listener.accept().await {
                let (shared, k) = (shared.clone(), k.clone());
                tokio::spawn(async move {
                    let Some((dr, lw)) = join(dialler, to).await else {
                        return;
                    };
                    let k = k.fetch_add(1, Ordering::SeqCst);
                    match damage {
                        Damage::Random { mean_gap } => {
                            let rng = Rng::new(seed ^ mix(k));
                            flip_random(dr, lw, rng, mean_gap, shared).await;
                        }
                        Damage::Header { nth, connections } => {
                            let nth = (k < connections).then_some(nth);
                            break_header(dr, lw, nth, shared).await;
                        }
                    }
                });
            }
        });
        proxy
    }
}

/// Takes the dialler's Special Frame and, if it is gateway A's, connects to `to`, passes the
/// Special Frame on untouched and starts passing the listener's bytes back; returns the
/// dialler-to-listener halves. Anything else dialling the proxy's port (loopback ports are
/// shared with whatever else runs on the machine) is dropped without counting.
async fn join(dialler: TcpStream, to: SocketAddr) -> Option<(OwnedReadHalf, OwnedWriteHalf)> {
    let (mut dr, dw) = dialler.into_split();
    let mut fsf = [0u8; FSF_LEN];
    timeout(WAIT, dr.read_exact(&mut fsf)).await.ok()?.ok()?;
    // Words 8-9: the Source FC Fabric Entity WWN.
    if fsf.get(32..40) != Some(&SW_A.0[..]) {
        return None;
    }
    let listener_side = TcpStream::connect(to).await.ok()?;
    let _ = listener_side.set_nodelay(true);
    let (lr, mut lw) = listener_side.into_split();
    lw.write_all(&fsf).await.ok()?;
    tokio::spawn(pass(lr, dw));
    Some((dr, lw))
}

async fn pass(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

async fn flip_random(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut rng: Rng,
    mean_gap: u64,
    shared: Shared,
) {
    let gap = |rng: &mut Rng| rng.below(2 * mean_gap);
    // Bytes to pass before the next flip.
    let mut before_flip = gap(&mut rng);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        if shared.corrupting.load(Ordering::SeqCst) {
            let mut at = 0usize;
            while before_flip < (n - at) as u64 {
                at += before_flip as usize;
                chunk[at] ^= (1 + rng.below(255)) as u8;
                shared.flips.fetch_add(1, Ordering::SeqCst);
                at += 1;
                before_flip = gap(&mut rng);
            }
            before_flip -= (n - at) as u64;
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
        shared.forwarded.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

/// Cuts the clean stream into encapsulated frames by their Frame Length and breaks the
/// header of frame `nth` (if any); then passes the rest as it comes.
async fn break_header(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    nth: Option<usize>,
    shared: Shared,
) {
    if let Some(nth) = nth {
        let mut pending = Vec::new();
        let mut frames = 0usize;
        let mut buf = vec![0u8; 64 << 10];
        while frames <= nth {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while frames <= nth && pending.len() >= at + 16 {
                let words = u16::from_be_bytes([pending[at + 12], pending[at + 13]]) & 0x3ff;
                let len = usize::from(words) * 4;
                if pending.len() < at + len {
                    break;
                }
                if frames == nth {
                    pending[at + 2] ^= 0xff;
                    shared.flips.fetch_add(1, Ordering::SeqCst);
                }
                frames += 1;
                at += len;
            }
            if to.write_all(&pending[..at]).await.is_err() {
                return;
            }
            pending.drain(..at);
        }
        if to.write_all(&pending).await.is_err() {
            return;
        }
    }
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_stream_resynchronizes_and_never_delivers_a_corrupted_frame() {
    // B listens, the proxy dials B, A dials the proxy.
    let mut proxy = None;
    let (a, b) = two_sites(ReceiverConfig::default(), |b| {
        let p = Proxy::start(b, 0xc0ffee, Damage::Random { mean_gap: 16 << 10 });
        let addr = p.addr;
        proxy = Some(p);
        addr
    })
    .await;
    let proxy = proxy.expect("the proxy");
    let (host_tx, _host_rx, host) = n_port(&a, 0x2100_0000_0000_0001).await;
    let (_disk_tx, disk_rx, disk) = n_port(&b, 0x2200_0000_0000_0001).await;

    // Phase 1, through the corruption: 30k frames over 128 exchanges. Phase 2, once the proxy
    // has stopped corrupting: 8 more frames of every exchange, which must all arrive (each
    // exchange keeps to one connection, so they also show that phase 1 is over on it).
    let (n1, exchanges, tail) = (30_000, 128u16, 8u32);
    let flow = Flow {
        s: host,
        d: disk,
        seed: 0x5eed,
    };
    let mut order = schedule(n1, 0x100, exchanges, 3);
    let phase1_bytes: u64 = order
        .iter()
        .map(|&(ox, seq)| (flow.frame(ox, seq).buffer_len() + ENCAP_OVERHEAD) as u64)
        .sum();
    let mut sent1 = vec![0u32; usize::from(exchanges)];
    for &(ox, _) in &order {
        sent1[usize::from(ox - 0x100)] += 1;
    }
    let phase2: Vec<(u16, u32)> = (0..tail)
        .flat_map(|i| (0..exchanges).map(move |x| (x, i)))
        .map(|(x, i)| (0x100 + x, sent1[usize::from(x)] + i))
        .collect();
    order.extend_from_slice(&phase2);
    let check = Checker::new(flow, 0x100, exchanges, &order).lossy_before(&sent1, true);
    let receiver = tokio::spawn(receive_all(disk_rx, check, Arc::new(Semaphore::new(0))));

    for &(ox, seq) in &order[..n1] {
        host_tx.send(flow.frame(ox, seq)).await.unwrap();
    }
    until("phase 1 through the proxy", || {
        proxy.forwarded.load(Ordering::SeqCst) >= phase1_bytes
    })
    .await;
    proxy.corrupting.store(false, Ordering::SeqCst);
    for &(ox, seq) in &phase2 {
        host_tx.send(flow.frame(ox, seq)).await.unwrap();
    }
    let check = timeout(WAIT, receiver)
        .await
        .expect("every exchange's last frame arrives after the corruption stops")
        .unwrap();
    // Final: a chunk that was being damaged when corruption stopped has been passed on since.
    let flips = proxy.flips.load(Ordering::SeqCst);

    // Frames were lost, each flip costing at most the frame it hit and the one before it;
    // none was corrupted (Checker::deliver), and every phase-2 frame arrived.
    let total = order.len() as u64;
    assert!(flips > 100, "{flips} flips");
    assert!(check.delivered < total, "nothing lost to {flips} flips");
    assert!(
        check.delivered + 2 * flips >= total,
        "{} of {total} delivered, {flips} flips",
        check.delivered
    );

    // B resynchronized on each encapsulation error instead of closing (OnError::Resync).
    let before = counters(&b);
    assert_eq!(
        (before.connections_opened, before.connections_closed),
        (CONNECTIONS as u64, 0),
        "{before:?}"
    );
    let c = fold_counters(&b, SW_A).await;
    let rx = c.closed_totals.rx;
    assert!(rx.encapsulation_errors > 0, "{c:?}");
    assert_eq!(rx.fc_sync_losses, rx.encapsulation_errors, "{c:?}");
    assert!(rx.bytes_skipped > 0, "{c:?}");
    assert!(rx.crc_errors > 0, "{c:?}");
    assert!(
        rx.encapsulation_errors + rx.crc_errors <= flips,
        "{c:?} {flips} flips"
    );
    assert!(rx.frames >= check.delivered, "{c:?}");
    eprintln!(
        "{flips} flips; {} of {total} frames delivered; {rx:?}",
        check.delivered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_error_close_a_broken_header_closes_the_connection_and_the_link_recovers() {
    // Not the default: B's receive engine closes the connection on an encapsulation error.
    let receiver = ReceiverConfig {
        on_error: OnError::Close,
        ..ReceiverConfig::default()
    };
    let mut proxy = None;
    let (a, b) = two_sites(receiver, |b| {
        let damage = Damage::Header {
            nth: 200,
            connections: CONNECTIONS as u64,
        };
        let p = Proxy::start(b, 7, damage);
        let addr = p.addr;
        proxy = Some(p);
        addr
    })
    .await;
    let proxy = proxy.expect("the proxy");
    let (host_tx, _host_rx, host) = n_port(&a, 0x2100_0000_0000_0001).await;
    let (_disk_tx, disk_rx, disk) = n_port(&b, 0x2200_0000_0000_0001).await;

    // Phase 1 breaks each of the four connections once; phase 2 goes over the new ones.
    let (n1, exchanges, tail) = (4_000, 64u16, 8u32);
    let flow = Flow {
        s: host,
        d: disk,
        seed: 0xc105e,
    };
    let mut order = schedule(n1, 0x100, exchanges, 4);
    let mut sent1 = vec![0u32; usize::from(exchanges)];
    for &(ox, _) in &order {
        sent1[usize::from(ox - 0x100)] += 1;
    }
    let phase2: Vec<(u16, u32)> = (0..tail)
        .flat_map(|i| (0..exchanges).map(move |x| (x, i)))
        .map(|(x, i)| (0x100 + x, sent1[usize::from(x)] + i))
        .collect();
    order.extend_from_slice(&phase2);
    // While connections come and go, an exchange may move to another connection: phase 1's
    // frames may be lost and arrive out of order, but never damaged or twice.
    let check = Checker::new(flow, 0x100, exchanges, &order).lossy_before(&sent1, false);
    let receiver = tokio::spawn(receive_all(disk_rx, check, Arc::new(Semaphore::new(0))));
    for &(ox, seq) in &order[..n1] {
        host_tx.send(flow.frame(ox, seq)).await.unwrap();
    }

    let n = CONNECTIONS as u64;
    until(
        "each broken connection closed by B and dialled again by A",
        || {
            let (ca, cb) = (counters(&a), counters(&b));
            proxy.flips.load(Ordering::SeqCst) == n
                && cb.connections_closed == n
                && (ca.connections_opened, ca.connections_up) == (2 * n, n)
                && (cb.connections_opened, cb.connections_up) == (2 * n, n)
        },
    )
    .await;
    until("inter-switch ports up", || {
        [&a, &b]
            .iter()
            .all(|g| g.switch.snapshot().port(ISL).is_some_and(|p| p.up))
    })
    .await;
    let c = counters(&b);
    let rx = c.closed_totals.rx;
    // One encapsulation error per closed connection; nothing skipped, no resynchronization.
    assert_eq!(rx.encapsulation_errors, n, "{c:?}");
    assert_eq!((rx.fc_sync_losses, rx.bytes_skipped), (0, 0), "{c:?}");

    for &(ox, seq) in &phase2 {
        host_tx.send(flow.frame(ox, seq)).await.unwrap();
    }
    let check = timeout(WAIT, receiver)
        .await
        .expect("every frame sent after the link recovered arrives")
        .unwrap();
    let total = order.len() as u64;
    assert!(
        check.delivered < total,
        "nothing lost to {n} broken connections"
    );
    eprintln!("{} of {total} frames delivered; {c:?}", check.delivered);
}
