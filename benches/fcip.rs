//! The FCIP data path, with its references measured in the same run.
//!
//! ```text
//!  sender ─ switch A ─ ISL ══ FcipLink ══ TCP (loopback, or the relay) ══ FcipLink ══ ISL ─ switch B ─ receiver
//!                             └──────────── fcip_link_*: the links alone ─────────────┘
//! ```
//!
//! Everything runs in one process on a multi-threaded tokio runtime of two workers. Measured,
//! one way, each figure after the last with nothing else running:
//!
//! - `raw_tcp_*`, the reference: one loopback TCP connection with the socket options of an
//!   FCIP connection (TCP_NODELAY, buffers left to the kernel's autotuning, as
//!   `fcip::connection` leaves them), one task writing 256 KiB buffers and one reading them,
//!   moving exactly the bytes the FCIP stream carries for the same frames: 28-byte
//!   encapsulation header, SOF word, FC header, payload, CRC, EOF word per frame;
//! - `fcip_link_*`: frames handed to one `FcipLink` (it dials the other over loopback, with
//!   [`LOOPBACK_CONNECTIONS`] connection, like the one raw TCP connection) and taken from the
//!   other, with no switch;
//! - `gateway_*`: two `gateway::Gateway`s over loopback, a sender N_Port logged in to A's
//!   switch and a receiver N_Port to B's, each on an in-process link;
//! - `*_full`: 2112-byte payloads (2176 bytes on the wire), MB/s of those bytes; `*_small`:
//!   64-byte payloads (128 bytes on the wire), frames/s;
//! - `relay_*`: the same through [`wan_relay::Relay`] at 10 ms each way (20 ms round trip)
//!   and 1 Gbit/s, with [`RELAY_CONNECTIONS`] FCIP connections and [`RELAY_EXCHANGES`]
//!   exchanges spread over them; the reference is one raw TCP connection through its own relay
//!   of the same impairment, and every relay figure is also shown as a share of the cap (which
//!   the relay's burst allowance, 2 ms at the cap, lets a figure pass by about 0.1%).
//!
//! Frames carry their number in the parameter field, their exchange's frame count in SEQ_CNT
//! and one of [`PAYLOADS`] payloads chosen by their number. The receiver checks every frame
//! against the one it expects next on its exchange (frames of one exchange keep their order,
//! exchanges may overtake each other), compares the payload of every [`SAMPLE`]th frame, and
//! counts: a figure is reported only when every frame arrived once, unchanged. The sender keeps
//! at most a window of frames ahead of the receiver, as exchanges with credit would.
//!
//! Throughput is timed from the first frame (or byte) the receiver gets to the last, so that
//! neither the set-up nor the relay's first one-way delay counts; the frames of that first
//! batch are left out of the count. Beside it goes the CPU time the whole process used
//! meanwhile (user + system, as `getrusage` counts it, from `/proc/self/stat`): on a machine shared with other work the wall-time
//! figures move with the cores left over, the CPU time per frame much less. Each loopback
//! figure runs [`ROUNDS`] times, interleaved with its reference, and the table shows the
//! median run and the range.
//!
//! Run with `cargo bench --bench fcip`. `cargo bench --bench fcip -- fcip_link_full` (or any
//! other figure's name) runs that figure alone with [`PROFILE_FACTOR`] times the frames, to
//! profile it.

// The receivers drop frames as fast as they come; an allocator with per-thread caches keeps
// the frame queues' allocations off a shared lock (as `benches/san.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use fabric::link::{Link, LinkRx, LinkTx, Received};
use fabric::{Config, PortId};
use fc_frames::els::{ElsCode, ElsRequest, LoginRepr};
use fc_frames::encap::encapsulate_len;
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use fcip::connection::{accept, Endpoint};
use fcip::engine::ReceiverConfig;
use fcip::link::{FcipLink, LinkConfig, LinkEvent};
use gateway::{Gateway, GatewayConfig, PeerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::timeout;
use wan_relay::{Impairment, Relay};

const SW_A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
const SW_B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
const SENDER: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
const RECEIVER: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
const ISL: PortId = PortId(100);
/// N_Port IDs for the link-alone figures, where no switch assigns any.
const LINK_S_ID: FcId = FcId::from_parts(1, 1, 0);
const LINK_D_ID: FcId = FcId::from_parts(2, 1, 0);

const FULL: usize = 2112;
const SMALL: usize = 64;
/// Full-size frames per loopback figure (653 MB on the wire).
const FULL_FRAMES: u64 = 300_000;
/// Small frames per loopback figure (256 MB on the wire).
const SMALL_FRAMES: u64 = 2_000_000;
/// Full-size frames per relay figure (261 MB on the wire, about 2.1 s at the cap).
const RELAY_FRAMES: u64 = 120_000;
/// FCIP connections of the loopback links.
const LOOPBACK_CONNECTIONS: usize = 1;
/// Exchanges the loopback frames are spread over.
const LOOPBACK_EXCHANGES: u16 = 64;
/// FCIP connections of the links through the relay.
const RELAY_CONNECTIONS: usize = 4;
/// Exchanges the relay frames are spread over (by (S_ID, D_ID, OX_ID) over the connections).
const RELAY_EXCHANGES: u16 = 256;
/// The emulated WAN: one-way delay and bandwidth cap.
const RELAY_DELAY: Duration = Duration::from_millis(10);
const RELAY_BPS: u64 = 1_000_000_000;
/// Most bytes the sender keeps ahead of the receiver: well over what the relay holds in flight
/// (10 ms at 1 Gbit/s is 1.25 MB).
const WINDOW_BYTES: u64 = 16 << 20;
/// Frames the sender sends between looks at the window, and the receiver takes at a time.
const BURST: u64 = 256;
/// Distinct payloads per size; frame `i` carries payload `i % PAYLOADS`.
const PAYLOADS: u64 = 61;
/// Every SAMPLE-th frame's payload is compared byte for byte.
const SAMPLE: u64 = 16;
/// Bytes per write and read of the raw TCP references.
const RAW_BUF: usize = 256 << 10;
/// Runs of each loopback figure; the table shows the median.
const ROUNDS: usize = 5;
/// Longest wait for anything (a frame, a connection) before the run fails.
const WAIT: Duration = Duration::from_secs(20);
/// Frames of a figure run alone, as a multiple of its frames in the full run.
const PROFILE_FACTOR: u64 = 5;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let pool = Arc::new(Payloads::new());
    if let Some(figure) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        let f = rt.block_on(rt.spawn(profile(pool, figure)))??;
        println!(
            "{} {:.1} {} ({:.2} cores, {:.0} ns CPU per frame)",
            f.name,
            f.value(),
            f.unit(),
            f.cores().unwrap_or(f64::NAN),
            f.cpu_ns_per_frame().unwrap_or(f64::NAN)
        );
        return Ok(());
    }
    // Rounds interleave the figures, so that each one and its reference see the machine alike.
    let mut runs: Vec<Vec<Figure>> = Which::ALL.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (which, runs) in Which::ALL.into_iter().zip(&mut runs) {
            if round >= which.rounds() {
                continue;
            }
            let f = rt.block_on(rt.spawn(run(which, pool.clone(), 1)))??;
            eprintln!(
                "  round {} {} {:.1} {} ({:.2} cores)",
                round + 1,
                f.name,
                f.value(),
                f.unit(),
                f.cores().unwrap_or(f64::NAN)
            );
            runs.push(f);
            // Let the last figure's connections and tasks wind down.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let summaries: Vec<Summary> = runs.into_iter().filter_map(Summary::of).collect();
    report(&summaries);
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every figure, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    RawTcpFull,
    LinkFull,
    GatewayFull,
    RawTcpSmall,
    LinkSmall,
    GatewaySmall,
    RelayRawTcp,
    RelayLink,
    RelayGateway,
}

impl Which {
    const ALL: [Which; 9] = [
        Which::RawTcpFull,
        Which::LinkFull,
        Which::GatewayFull,
        Which::RawTcpSmall,
        Which::LinkSmall,
        Which::GatewaySmall,
        Which::RelayRawTcp,
        Which::RelayLink,
        Which::RelayGateway,
    ];

    /// Runs of the figure: the loopback ones vary with what else the machine runs, the relay
    /// ones are held to the cap.
    fn rounds(self) -> usize {
        match self {
            Which::RelayRawTcp | Which::RelayLink | Which::RelayGateway => 1,
            _ => ROUNDS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Which::RawTcpFull => "raw_tcp_full",
            Which::LinkFull => "fcip_link_full",
            Which::GatewayFull => "gateway_full",
            Which::RawTcpSmall => "raw_tcp_small",
            Which::LinkSmall => "fcip_link_small",
            Which::GatewaySmall => "gateway_small",
            Which::RelayRawTcp => "relay_raw_tcp",
            Which::RelayLink => "relay_fcip_link",
            Which::RelayGateway => "relay_gateway",
        }
    }

    /// Payload size and frames.
    fn load(self) -> (usize, u64) {
        match self {
            Which::RawTcpFull | Which::LinkFull | Which::GatewayFull => (FULL, FULL_FRAMES),
            Which::RawTcpSmall | Which::LinkSmall | Which::GatewaySmall => (SMALL, SMALL_FRAMES),
            Which::RelayRawTcp | Which::RelayLink | Which::RelayGateway => (FULL, RELAY_FRAMES),
        }
    }
}

/// A figure's runs: the median run (by throughput) and the range of their values.
struct Summary {
    median: Figure,
    low: f64,
    high: f64,
    runs: usize,
}

impl Summary {
    fn of(mut runs: Vec<Figure>) -> Option<Summary> {
        runs.sort_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()));
        let low = runs.first()?.value();
        let high = runs.last()?.value();
        let n = runs.len();
        let median = runs.into_iter().nth(n / 2)?;
        Some(Summary {
            median,
            low,
            high,
            runs: n,
        })
    }
}

/// What one run of a figure measured.
struct Figure {
    name: &'static str,
    payload: usize,
    /// Bytes of the FCIP stream counted (for raw TCP: the bytes themselves), and the time
    /// they took.
    bytes: u64,
    measured: Measured,
}

impl Figure {
    fn secs(&self) -> f64 {
        self.measured.elapsed.as_secs_f64()
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs()
    }

    /// Frames per second, or for raw TCP the frames' worth of bytes per second.
    fn frames_per_s(&self) -> f64 {
        self.bytes as f64 / wire_len(self.payload) as f64 / self.secs()
    }

    /// CPU cores the process kept busy, on average.
    fn cores(&self) -> Option<f64> {
        Some(self.measured.cpu?.as_secs_f64() / self.secs())
    }

    /// CPU time per frame (for raw TCP: per frame's worth of bytes), in nanoseconds.
    fn cpu_ns_per_frame(&self) -> Option<f64> {
        let frames = self.bytes as f64 / wire_len(self.payload) as f64;
        Some(self.measured.cpu?.as_secs_f64() * 1e9 / frames)
    }

    /// CPU time per 1000 bytes of the FCIP stream moved (for raw TCP: per 1000 bytes), in
    /// nanoseconds.
    fn cpu_ns_per_kb(&self) -> Option<f64> {
        Some(self.measured.cpu?.as_secs_f64() * 1e12 / self.bytes as f64)
    }

    /// The figure in its unit: MB/s for full-size frames, frames/s for small ones.
    fn value(&self) -> f64 {
        if self.payload == SMALL {
            self.frames_per_s()
        } else {
            self.mb_per_s()
        }
    }

    fn unit(&self) -> &'static str {
        if self.payload == SMALL {
            "fr/s"
        } else {
            "MB/s"
        }
    }
}

async fn profile(pool: Arc<Payloads>, figure: String) -> Result<Figure> {
    let which = Which::ALL
        .into_iter()
        .find(|w| w.name() == figure)
        .ok_or_else(|| anyhow!("no figure named {figure}"))?;
    run(which, pool, PROFILE_FACTOR).await
}

async fn run(which: Which, pool: Arc<Payloads>, factor: u64) -> Result<Figure> {
    let (payload, frames) = which.load();
    let frames = frames * factor;
    let wan = Impairment {
        one_way_delay: RELAY_DELAY,
        bandwidth_bps: Some(RELAY_BPS),
    };
    let load = Load {
        payload,
        frames,
        exchanges: LOOPBACK_EXCHANGES,
        pool,
    };
    let relay_load = Load {
        exchanges: RELAY_EXCHANGES,
        ..load.clone()
    };
    let wire = wire_len(payload) as u64;
    let frames_in = |(n, m): (u64, Measured)| (n * wire, m);
    let (bytes, measured) = match which {
        Which::RawTcpFull | Which::RawTcpSmall => raw_tcp(frames * wire, None).await?,
        Which::RelayRawTcp => raw_tcp(frames * wire, Some(wan)).await?,
        Which::LinkFull | Which::LinkSmall => {
            frames_in(link_alone(load, LOOPBACK_CONNECTIONS, None).await?)
        }
        Which::RelayLink => frames_in(link_alone(relay_load, RELAY_CONNECTIONS, Some(wan)).await?),
        Which::GatewayFull | Which::GatewaySmall => {
            frames_in(through_gateways(load, LOOPBACK_CONNECTIONS, None).await?)
        }
        Which::RelayGateway => {
            frames_in(through_gateways(relay_load, RELAY_CONNECTIONS, Some(wan)).await?)
        }
    };
    Ok(Figure {
        name: which.name(),
        payload,
        bytes,
        measured,
    })
}

/// Bytes of one frame with `payload` bytes in the FCIP stream.
fn wire_len(payload: usize) -> usize {
    encapsulate_len(&FcFrame::single(
        FrameHeaderRepr::request(RCtl::SOLICITED_DATA, FcType::FCP, LINK_D_ID, LINK_S_ID, 0),
        vec![0; payload],
    ))
}

/// The payloads frames carry: [`PAYLOADS`] distinct ones of each size.
struct Payloads {
    full: Vec<Bytes>,
    small: Vec<Bytes>,
}

impl Payloads {
    fn new() -> Payloads {
        let make = |len: usize| {
            (0..PAYLOADS)
                .map(|k| {
                    (0..len)
                        .map(|j| (j as u64 * 7 + k * 31 + 1) as u8)
                        .collect::<Vec<u8>>()
                        .into()
                })
                .collect()
        };
        Payloads {
            full: make(FULL),
            small: make(SMALL),
        }
    }

    fn of(&self, len: usize, i: u64) -> &Bytes {
        let set = if len == FULL { &self.full } else { &self.small };
        &set[(i % PAYLOADS) as usize]
    }
}

/// What a sender sends: `frames` frames of `payload` bytes over `exchanges` exchanges.
#[derive(Clone)]
struct Load {
    payload: usize,
    frames: u64,
    exchanges: u16,
    pool: Arc<Payloads>,
}

impl Load {
    /// Frame `i`: exchange `i % exchanges`, its `i / exchanges`-th frame, parameter `i`.
    fn frame(&self, s_id: FcId, d_id: FcId, i: u64) -> FcFrame {
        let x = u64::from(self.exchanges);
        let mut h = FrameHeaderRepr::request(
            RCtl::SOLICITED_DATA,
            FcType::FCP,
            d_id,
            s_id,
            (i % x) as u16,
        );
        h.seq_cnt = (i / x) as u16;
        h.parameter = i as u32;
        FcFrame::single(h, self.pool.of(self.payload, i).clone())
    }

    /// Frames the sender may be ahead of the receiver.
    fn window(&self) -> u64 {
        (WINDOW_BYTES / wire_len(self.payload) as u64).max(2 * BURST)
    }
}

/// A measurement under way: wall time, and the CPU time every thread of the process used.
struct Timing {
    start: Instant,
    cpu: Option<Duration>,
}

/// What a [`Timing`] measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    elapsed: Duration,
    /// CPU time of the whole process meanwhile (user and system), where `/proc` tells it.
    cpu: Option<Duration>,
}

impl Timing {
    fn start() -> Timing {
        Timing {
            start: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn stop(&self) -> Measured {
        let elapsed = self.start.elapsed();
        let cpu = cpu_time()
            .zip(self.cpu)
            .map(|(end, start)| end.saturating_sub(start));
        Measured { elapsed, cpu }
    }
}

/// CPU time the process has used so far, user and system: what `getrusage(RUSAGE_SELF)`
/// reports, read from `/proc/self/stat` (fields 14 and 15, in clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis, where
    // field 3 (the state) comes first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// The receiver's side of the flow control: frames taken so far, and a wake-up for the sender.
#[derive(Default)]
struct Credit {
    received: AtomicU64,
    notify: Notify,
}

/// Where a receiver's frames come from: the receiving half of an FCIP link, or of an
/// N_Port's link to its switch, with a scratch vector for what it takes at a time.
struct Source(LinkRx, Vec<Received>);

impl Source {
    /// Frames into `buf`, at least one (waiting for it), at most [`BURST`] items' worth; 0
    /// once the source is gone. What the fabric sends the N_Port (RSCNs) and malformed frames
    /// are left out: a bad frame shows up as a frame missing.
    async fn frames(&mut self, buf: &mut Vec<FcFrame>) -> usize {
        let Source(rx, items) = self;
        loop {
            if rx.recv_many(items, BURST as usize).await == 0 {
                return 0;
            }
            buf.extend(items.drain(..).filter_map(|r| match r {
                Received::Frame(f) if !f.header.s_id.is_well_known() => Some(f),
                _ => None,
            }));
            if !buf.is_empty() {
                return buf.len();
            }
        }
    }
}

/// Sends `load`'s frames into `sink`, never more than the window ahead of `credit`.
async fn send_frames(
    load: Load,
    s_id: FcId,
    d_id: FcId,
    credit: Arc<Credit>,
    sink: LinkTx,
) -> Result<()> {
    let window = load.window();
    for i in 0..load.frames {
        if i % BURST == 0 {
            loop {
                // A notify_one without a waiter leaves a permit: no wake-up is lost.
                let woken = credit.notify.notified();
                if i + BURST <= credit.received.load(Ordering::Acquire) + window {
                    break;
                }
                timeout(WAIT, woken)
                    .await
                    .map_err(|_| anyhow!("no frame received for {WAIT:?} after {i} sent"))?;
            }
        }
        sink.send(load.frame(s_id, d_id, i))
            .await
            .map_err(|_| anyhow!("the link is down"))?;
    }
    Ok(())
}

/// Checks each frame against the one its exchange should bring next.
struct Checker {
    load: Load,
    s_id: FcId,
    d_id: FcId,
    /// Per exchange, the number of the frame it brings next.
    next: Vec<u64>,
    received: u64,
}

impl Checker {
    fn new(load: Load, s_id: FcId, d_id: FcId) -> Checker {
        Checker {
            next: (0..u64::from(load.exchanges)).collect(),
            load,
            s_id,
            d_id,
            received: 0,
        }
    }

    fn check(&mut self, f: &FcFrame) -> Result<()> {
        let h = &f.header;
        let x = usize::from(h.ox_id);
        let Some(want) = self.next.get(x).copied() else {
            bail!("frame on unknown exchange {:#06x}: {f}", h.ox_id);
        };
        let expected = self.load.frame(self.s_id, self.d_id, want);
        if h.parameter != expected.header.parameter
            || h.seq_cnt != expected.header.seq_cnt
            || h.s_id != self.s_id
            || h.d_id != self.d_id
            || f.payload.len() != self.load.payload
        {
            bail!(
                "exchange {x}: expected frame {want} (lost, reordered or changed), got {f} \
                 parameter {}",
                h.parameter
            );
        }
        if want % SAMPLE == 0 && f.payload != expected.payload {
            bail!("frame {want}: payload differs");
        }
        self.next[x] = want + u64::from(self.load.exchanges);
        self.received += 1;
        Ok(())
    }
}

/// Takes frames from `source` until `load.frames` have passed the checks; returns the frames
/// counted after the first batch and the time from the first batch to the last frame.
async fn receive_frames(
    load: Load,
    s_id: FcId,
    d_id: FcId,
    credit: Arc<Credit>,
    mut source: Source,
) -> (Result<(u64, Measured)>, Source) {
    let got = receive_into(load, s_id, d_id, credit, &mut source).await;
    (got, source)
}

async fn receive_into(
    load: Load,
    s_id: FcId,
    d_id: FcId,
    credit: Arc<Credit>,
    source: &mut Source,
) -> Result<(u64, Measured)> {
    let total = load.frames;
    let mut checker = Checker::new(load, s_id, d_id);
    let mut buf = Vec::with_capacity(BURST as usize);
    let mut first: Option<(Timing, u64)> = None;
    while checker.received < total {
        let n = timeout(WAIT, source.frames(&mut buf)).await.map_err(|_| {
            anyhow!(
                "{} of {total} frames arrived, then none for {WAIT:?}",
                checker.received
            )
        })?;
        if n == 0 {
            bail!(
                "the source ended after {} of {total} frames",
                checker.received
            );
        }
        for f in buf.drain(..) {
            checker.check(&f)?;
        }
        first.get_or_insert_with(|| (Timing::start(), checker.received));
        credit.received.store(checker.received, Ordering::Release);
        credit.notify.notify_one();
    }
    let (timing, before) = first.context("no frame")?;
    Ok((total - before, timing.stop()))
}

/// Runs a sender and a receiver, each a task of its own, and returns what the receiver timed,
/// and the source (a link's receiving half: dropping it takes the link down).
async fn sender_and_receiver(
    load: &Load,
    s_id: FcId,
    d_id: FcId,
    sink: LinkTx,
    source: Source,
) -> (Result<(u64, Measured)>, Option<Source>) {
    let credit = Arc::new(Credit::default());
    let receiver = tokio::spawn(receive_frames(
        load.clone(),
        s_id,
        d_id,
        credit.clone(),
        source,
    ));
    let sender = tokio::spawn(send_frames(load.clone(), s_id, d_id, credit, sink));
    let (got, source) = match receiver.await {
        Ok((got, source)) => (got, Some(source)),
        Err(e) => (Err(anyhow!("receiver panicked: {e}")), None),
    };
    if got.is_err() {
        // It would wait for credit that never comes.
        sender.abort();
        return (got, source);
    }
    let sent = match sender.await {
        Ok(r) => r,
        Err(e) => Err(anyhow!("sender panicked: {e}")),
    };
    (sent.and(got), source)
}

/// One TCP connection moving `bytes` one way, directly or through a relay with `wan`; returns
/// the bytes counted after the first read and the time from the first read to the last.
async fn raw_tcp(bytes: u64, wan: Option<Impairment>) -> Result<(u64, Measured)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let target = listener.local_addr()?;
    let relay = match wan {
        Some(w) => Some(Relay::start("127.0.0.1:0".parse()?, target, w).await?),
        None => None,
    };
    let dial = relay.as_ref().map_or(target, Relay::local_addr);
    let (client, accepted) = tokio::join!(TcpStream::connect(dial), listener.accept());
    let (mut tx, mut rx) = (client?, accepted?.0);
    // As an FCIP connection: TCP_NODELAY, buffers left to the kernel.
    tx.set_nodelay(true)?;
    rx.set_nodelay(true)?;
    let sent_at = Instant::now();
    let writer = tokio::spawn(async move {
        let buf = vec![0x5Au8; RAW_BUF];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(RAW_BUF as u64) as usize;
            tx.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        tx.shutdown().await
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; RAW_BUF];
        let mut got = 0u64;
        let mut first: Option<(Timing, u64)> = None;
        loop {
            let n = timeout(WAIT, rx.read(&mut buf))
                .await
                .map_err(|_| anyhow!("raw TCP: {got} of {bytes} bytes, then nothing"))??;
            if n == 0 {
                break;
            }
            got += n as u64;
            first.get_or_insert_with(|| (Timing::start(), got));
        }
        let (timing, before) = first.context("raw TCP: nothing arrived")?;
        let measured = timing.stop();
        if got != bytes {
            bail!("raw TCP: {got} of {bytes} bytes arrived");
        }
        // The relay's delay is in effect: the first bytes took at least the one-way delay.
        let latency = timing.start.duration_since(sent_at);
        if let Some(w) = wan.filter(|w| latency < w.one_way_delay) {
            bail!(
                "raw TCP: the first bytes came after {latency:?}, before the relay's delay of \
                 {:?}",
                w.one_way_delay
            );
        }
        Ok::<_, anyhow::Error>((got - before, measured))
    });
    let got = reader.await.context("reader panicked")??;
    writer.await.context("writer panicked")??;
    drop(relay);
    Ok(got)
}

fn link_config(local: Wwn, peer: Wwn, connections: usize) -> LinkConfig {
    LinkConfig {
        local: endpoint(local),
        peer_fabric: peer,
        connections,
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(500),
    }
}

fn endpoint(fabric: Wwn) -> Endpoint {
    Endpoint {
        fabric,
        entity: fabric.0,
        k_a_tov: Duration::from_secs(10),
        receiver: ReceiverConfig::default(),
        capture: None,
    }
}

/// Two FCIP links with `connections` connections, A dialling B (through a relay with `wan`),
/// and `load` sent from A to B.
async fn link_alone(
    load: Load,
    connections: usize,
    wan: Option<Impairment>,
) -> Result<(u64, Measured)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let target = listener.local_addr()?;
    let b = FcipLink::accepting(link_config(SW_B, SW_A, connections));
    let adder = b.control.clone();
    let acceptor = tokio::spawn(async move {
        let local = endpoint(SW_B);
        while let Ok((s, _)) = listener.accept().await {
            if let Ok(c) = accept(s, &local, &[SW_A]).await {
                adder.add(c);
            }
        }
    });
    let relay = match wan {
        Some(w) => Some(Relay::start("127.0.0.1:0".parse()?, target, w).await?),
        None => None,
    };
    let dial = relay.as_ref().map_or(target, Relay::local_addr);
    let mut a = FcipLink::originate(link_config(SW_A, SW_B, connections), dial, 0x5eed);
    let mut b = b;
    let want = connections as u64;
    let la = next_up(&mut a).await?;
    let lb = next_up(&mut b).await?;
    until("the links' connections", || {
        a.counters().connections_up == want && b.counters().connections_up == want
    })
    .await?;
    let (got, source) = sender_and_receiver(
        &load,
        LINK_S_ID,
        LINK_D_ID,
        la.tx,
        Source(lb.rx, Vec::with_capacity(BURST as usize)),
    )
    .await;
    let (sent, received) = (a.counters(), b.counters());
    drop((a, b, source));
    acceptor.abort();
    drop(relay);
    if sent.dropped_no_connection > 0 || received.connections_closed > 0 {
        bail!("a connection went down: sent {sent:?}, received {received:?}");
    }
    got
}

/// The `Link` of the FCIP link's next `Up`.
async fn next_up(link: &mut FcipLink) -> Result<Link> {
    loop {
        match timeout(WAIT, link.events.recv()).await {
            Ok(Some(LinkEvent::Up(l))) => return Ok(l),
            Ok(Some(LinkEvent::Down)) => {}
            Ok(None) => bail!("the FCIP link ended"),
            Err(_) => bail!("the FCIP link did not come up within {WAIT:?}"),
        }
    }
}

fn gateway_config(domain: u8, name: Wwn, peer: PeerConfig) -> GatewayConfig {
    GatewayConfig {
        switch: Config::new(domain, name, (1..=4).map(PortId)),
        fcip_listen: "127.0.0.1:0".parse().expect("a literal address"),
        peers: vec![peer],
        k_a_tov: Duration::from_secs(10),
        receiver: ReceiverConfig::default(),
        capture: None,
    }
}

/// Two gateways, A dialling B (through a relay with `wan`), a sender N_Port on A's switch and
/// a receiver N_Port on B's, and `load` sent from one to the other.
async fn through_gateways(
    load: Load,
    connections: usize,
    wan: Option<Impairment>,
) -> Result<(u64, Measured)> {
    let b = Gateway::start(
        gateway_config(
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
    .await?;
    let relay = match wan {
        Some(w) => Some(Relay::start("127.0.0.1:0".parse()?, b.fcip_addr(), w).await?),
        None => None,
    };
    let dial = relay.as_ref().map_or(b.fcip_addr(), Relay::local_addr);
    let a = Gateway::start(
        gateway_config(
            1,
            SW_A,
            PeerConfig {
                fabric: SW_B,
                dial: Some(dial),
                domains: vec![2],
                port: ISL,
                connections,
            },
        ),
        1,
    )
    .await?;
    let want = connections as u64;
    let isl_up = |g: &Gateway| g.switch.snapshot().port(ISL).is_some_and(|p| p.up);
    until("the gateways' link", || {
        let up = |g: &Gateway| {
            g.link_counters()
                .iter()
                .all(|(_, c)| c.connections_up == want)
        };
        up(&a) && up(&b) && isl_up(&a) && isl_up(&b)
    })
    .await?;
    let mut sender = a.switch.connect_node()?;
    let mut receiver = b.switch.connect_node()?;
    let s_id = flogi(&mut sender, SENDER).await?;
    let d_id = flogi(&mut receiver, RECEIVER).await?;
    let Link { tx, rx: sender_rx } = sender;
    let (got, _) = sender_and_receiver(
        &load,
        s_id,
        d_id,
        tx,
        Source(receiver.rx, Vec::with_capacity(BURST as usize)),
    )
    .await;
    // The sender's N_Port stays logged in (its link up) until every frame is in.
    drop(sender_rx);
    drop((a, b, relay));
    got
}

/// Logs `link`'s N_Port in with FLOGI; its N_Port ID.
async fn flogi(link: &mut Link, wwpn: Wwn) -> Result<FcId> {
    let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2112));
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::F_PORT_CONTROLLER,
        FcId::UNIDENTIFIED,
        1,
    );
    link.tx
        .send(FcFrame::single(h, req.to_vec()))
        .await
        .map_err(|_| anyhow!("the N_Port's link is down"))?;
    loop {
        match timeout(WAIT, link.rx.recv()).await {
            Ok(Some(Received::Frame(f))) if f.header.r_ctl == RCtl::ELS_REPLY => {
                if f.payload.first() != Some(&ElsCode::LS_ACC.0) {
                    bail!("FLOGI refused: {f}");
                }
                return Ok(f.header.d_id);
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("the N_Port's link went down during FLOGI"),
            Err(_) => bail!("no answer to FLOGI within {WAIT:?}"),
        }
    }
}

/// Waits until `f` holds, for at most [`WAIT`].
async fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .map_err(|_| anyhow!("{what} did not come up within {WAIT:?}"))
}

fn report(summaries: &[Summary]) {
    let get = |name: &str| summaries.iter().map(|s| &s.median).find(|f| f.name == name);
    let cap_mb = RELAY_BPS as f64 / 8e6;
    // Each figure's reference, and the ratio in bytes of the same frames (so frames/s of small
    // frames compare with raw TCP's bytes ÷ 128).
    let reference = |f: &Figure| -> Option<(&'static str, f64)> {
        let r = match f.name {
            "fcip_link_full" | "gateway_full" => get("raw_tcp_full"),
            "fcip_link_small" | "gateway_small" => get("raw_tcp_small"),
            "relay_fcip_link" | "relay_gateway" => get("relay_raw_tcp"),
            _ => None,
        }?;
        Some((r.name, f.mb_per_s() / r.mb_per_s()))
    };
    println!();
    println!(
        "{:<16} {:>11} {:<4} {:>23} {:>8} {:>10}  {:<14} {:>6} {:>5} {:>7} {:>7}",
        "figure",
        "median",
        "unit",
        "range (runs)",
        "MB/s",
        "frames/s",
        "÷ reference",
        "ratio",
        "cores",
        "cpu/fr",
        "cpu/kB"
    );
    for s in summaries {
        let f = &s.median;
        let (name, ratio) = reference(f).unwrap_or(("(reference)", 1.0));
        println!(
            "{:<16} {:>11.1} {:<4} {:>23} {:>8.1} {:>10.0}  {:<14} {:>6.3} {:>5} {:>7} {:>7}",
            f.name,
            f.value(),
            f.unit(),
            format!("{:.0}–{:.0} ({})", s.low, s.high, s.runs),
            f.mb_per_s(),
            f.frames_per_s(),
            name,
            ratio,
            f.cores().map_or("?".into(), |c| format!("{c:.2}")),
            f.cpu_ns_per_frame()
                .map_or("?".into(), |n| format!("{n:.0}ns")),
            f.cpu_ns_per_kb()
                .map_or("?".into(), |n| format!("{n:.0}ns")),
        );
    }
    println!(
        "MB/s: bytes of the FCIP stream ({} per full-size frame, {} per small one); raw TCP's \
         frames/s: its bytes ÷ a frame's;\ncores: CPU time of the process ÷ wall time (the \
         machine has {}); cpu/fr: CPU time (user + system) per frame; cpu/kB: per 1000 bytes moved",
        wire_len(FULL),
        wire_len(SMALL),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "\nthrough the relay ({} ms each way, {} Gbit/s = {cap_mb:.0} MB/s), share of the cap:",
        RELAY_DELAY.as_millis(),
        RELAY_BPS / 1_000_000_000
    );
    for f in summaries
        .iter()
        .map(|s| &s.median)
        .filter(|f| f.name.starts_with("relay_"))
    {
        println!("  {:<18} {:>6.1} %", f.name, 100.0 * f.mb_per_s() / cap_mb);
    }

    let mut targets = Vec::new();
    for name in ["fcip_link_full", "gateway_full"] {
        if let Some(f) = get(name) {
            let ratio = reference(f).map_or(0.0, |r| r.1);
            targets.push((
                format!("{name} ÷ raw_tcp_full"),
                ratio,
                "≥ 0.9",
                ratio >= 0.9,
            ));
        }
    }
    for name in ["fcip_link_small", "gateway_small"] {
        if let Some(f) = get(name) {
            let v = f.frames_per_s();
            targets.push((format!("{name} frames/s"), v, "≥ 1e6", v >= 1e6));
        }
    }
    for name in ["relay_fcip_link", "relay_gateway"] {
        if let Some(f) = get(name) {
            let share = f.mb_per_s() / cap_mb;
            targets.push((format!("{name} ÷ cap"), share, "≥ 0.8", share >= 0.8));
        }
    }
    println!("\ntargets:");
    for (name, value, target, met) in &targets {
        println!(
            "  {:<36} {:>12.3}  target {:<6} {}",
            name,
            value,
            target,
            if *met { "met" } else { "NOT met" }
        );
    }

    println!("\n# name value unit ratio (ratio: ÷ the reference named in the table)");
    for f in summaries.iter().map(|s| &s.median) {
        let ratio = reference(f).map_or(1.0, |r| r.1);
        println!("{} {:.1} {} {:.3}", f.name, f.value(), f.unit(), ratio);
    }
    for f in summaries
        .iter()
        .map(|s| &s.median)
        .filter(|f| f.name.starts_with("relay_"))
    {
        let share = f.mb_per_s() / cap_mb;
        println!("{}_of_cap {share:.3} ratio {share:.3}", f.name);
    }
}
