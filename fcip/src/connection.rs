//! One FCIP connection over TCP (an FCIP_DE and its TCP connection, RFC 3821 §5.6, §7, §8):
//! the Special Frame exchange that opens it, then FC frames both ways through the
//! [`Receiver`](crate::engine::Receiver) and the encapsulation of `fc_frames::encap`, with
//! link keep-alive.
//!
//! ```text
//!  originator                                acceptor
//!   connect ──────── TCP ────────────────────► accept
//!   FSF (nonce, source, destination, K_A_TOV) ► checks source is a configured peer
//!   ◄──────────────────────────── FSF echoed    (else: close, log, count)
//!   checks the echo (nonce, WWNs)
//!   FC frames ◄──────────────────────────────► FC frames
//!   LKA after K_A_TOV/2 of silence ──────────► LS_ACC
//! ```
//!
//! A connection with nothing received for K_A_TOV is dead: it closes and reports why. The
//! clauses are cited from memory of RFC 3821 and FC-BB-5; the behaviour follows PROTOCOLS.md.
//! An LKA is answered here, in the class it came in (SOFf for one sent in class F), and
//! never handed up.
//!
//! Once open ([`originate`], [`accept`]), a [`Connection`] is started with the queue its
//! frames go to ([`Connection::start`]); two tasks then run it:
//!
//! - the **writer** takes frames from its bounded queue ([`Running::tx`], [`QUEUE`] frames) a
//!   batch at a time and writes each batch with `writev`; while TCP does not take them, the
//!   queue fills and its senders wait or are refused;
//! - the **reader** reads into the receive engine, and queues what it cut into the queue it was
//!   started with, a batch a read, waiting for room: while that queue is full it reads
//!   nothing, the socket's buffer fills and TCP's window closes on the peer.
//!
//! With [`Endpoint::capture`] set, every frame the connection sends or receives — both
//! Special Frames, FC frames, LKAs and their LS_ACCs — is recorded as its own TCP segment
//! between the connection's real addresses ([`crate::capture`]), by the capture's own thread:
//! the connection hands it the bytes and never waits for it. Frames are handed over just
//! before they are written (received ones before they are queued up), so that a capture never
//! shows an answer before its request.
//! Received bytes the engine could not frame (encapsulation errors, skipped bytes, frames
//! dropped by the transit check) are recorded as they came, in segments of their own.
//! Without a capture the data path does no capture work beyond testing an `Option`.
//!
//! At debug level (`RUST_LOG=fcip::connection=debug`) the connection logs each LKA it sends,
//! each LS_ACC it writes in answer to the peer's ("LKA answered") and each LS_ACC to its own
//! ("LKA acknowledged").

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use fc_frames::els::{ElsCode, ElsReply, ElsRequest};
use fc_frames::encap::{emit_encapsulated, encapsulable, Gather, Timestamp, MAX_IOVECS};
use fc_frames::{Eof, FCtl, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};
use fc_link::{self as link, Link, LinkRx, LinkTx, Received};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::{timeout, Instant};

use crate::capture::{CaptureSink, Flow};
use crate::engine::{Output, Receiver, ReceiverConfig, ReceiverCounters};
use crate::fsf::{Mismatch, SpecialFrame, FSF_LEN};
use crate::time::sntp_from_system_time;

/// How long the Special Frame exchange may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most frames written with one system call.
const BATCH: usize = 256;
/// Frames a connection's send queue holds (and the queue [`Connection::into_link`] receives
/// into).
pub const QUEUE: usize = fc_link::DEFAULT_CAPACITY;
/// LKA answers waiting for the writer.
const ANSWERS: usize = 16;
/// Largest capture record of received bytes that were not a frame (an IPv6 packet's payload
/// is at most 64 KiB).
const MAX_UNFRAMED_SEGMENT: usize = 32 << 10;

/// What one end of a connection is.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Our FC Fabric Entity WWN (the switch's name).
    pub fabric: Wwn,
    /// Our FC/FCIP Entity Identifier.
    pub entity: [u8; 8],
    /// K_A_TOV we announce and keep.
    pub k_a_tov: Duration,
    /// The receive engine's settings.
    pub receiver: ReceiverConfig,
    /// Where to record every frame sent and received, if anywhere.
    pub capture: Option<CaptureSink>,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// TCP failed.
    #[error("TCP: {0}")]
    Io(#[from] io::Error),
    /// No Special Frame (or no echo) within [`SETUP_TIMEOUT`].
    #[error("no Special Frame within {SETUP_TIMEOUT:?}")]
    NoSpecialFrame,
    /// The first bytes were not a valid Special Frame.
    #[error("bad Special Frame: {0}")]
    BadSpecialFrame(#[from] crate::fsf::FsfError),
    /// The echo differs from what was sent.
    #[error("Special Frame echo mismatch: {0}")]
    EchoMismatch(Mismatch),
    /// The originator's Source Fabric WWN is not a configured peer.
    #[error("{0} is not a configured peer")]
    UnknownPeer(Wwn),
    /// The originator wants another fabric than ours.
    #[error("the Special Frame is for fabric {0}, not ours")]
    WrongDestination(Wwn),
}

/// Connection set-ups that failed, counted as the FCIP MIB (RFC 4404) counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetupCounters {
    /// No Special Frame (or no echo) arrived in time.
    pub sf_not_received: u64,
    /// The echo differed from the Special Frame sent (any field).
    pub sf_response_mismatches: u64,
    /// Of those, an echo with another Connection Nonce.
    pub invalid_nonces: u64,
    /// A Special Frame naming a fabric that is not a configured peer or not ours, or an echo
    /// with other WWNs.
    pub invalid_wwns: u64,
    /// First bytes that were not a valid Special Frame.
    pub bad_special_frames: u64,
    /// TCP failures while setting up.
    pub tcp_failures: u64,
}

impl SetupCounters {
    /// Counts one failed set-up.
    pub fn count(&mut self, e: &SetupError) {
        match e {
            SetupError::Io(_) => self.tcp_failures += 1,
            SetupError::NoSpecialFrame => self.sf_not_received += 1,
            SetupError::BadSpecialFrame(_) => self.bad_special_frames += 1,
            SetupError::EchoMismatch(m) => {
                self.sf_response_mismatches += 1;
                match m {
                    Mismatch::Nonce { .. } => self.invalid_nonces += 1,
                    Mismatch::SourceFabric { .. } | Mismatch::DestinationFabric { .. } => {
                        self.invalid_wwns += 1
                    }
                    _ => {}
                }
            }
            SetupError::UnknownPeer(_) | SetupError::WrongDestination(_) => self.invalid_wwns += 1,
        }
    }
}

/// Why an open connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed the TCP connection.
    Eof,
    /// Reading or writing failed.
    Io(String),
    /// Nothing arrived for K_A_TOV.
    KeepAliveTimeout,
    /// The receive engine gave up on the stream ([`OnError::Close`](crate::engine::OnError)).
    LostSync,
    /// Every local sender was dropped.
    Local,
}

/// Counters of one connection, in the FCIP MIB's terms (RFC 4404) plus traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounters {
    /// The receive engine's counters: frames, bytes, encapsulation errors, FC sync losses, ...
    pub rx: ReceiverCounters,
    /// Frames sent (handed to TCP; a batch that was being written when the connection broke
    /// counts).
    pub tx_frames: u64,
    /// Bytes sent (encapsulated), as `tx_frames` counts.
    pub tx_bytes: u64,
    /// LKAs sent.
    pub lka_sent: u64,
    /// LKAs answered.
    pub lka_answered: u64,
    /// Connections declared dead for want of traffic within K_A_TOV.
    pub lka_timeouts: u64,
}

/// An FCIP connection whose Special Frame exchange is done, not yet carrying frames: give it
/// the queue its frames go to with [`start`](Self::start) (an [`FcipLink`](crate::link) does,
/// for each of its connections), or make it a link of its own with
/// [`into_link`](Self::into_link).
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    /// The peer's Special Frame (as it sent it, or as it echoed ours).
    pub peer: SpecialFrame,
    k_a_tov: Duration,
    receiver: ReceiverConfig,
    flow: Option<Flow>,
    counters: Arc<Mutex<ConnectionCounters>>,
}

/// A connection in its data phase: its reader and writer tasks run.
#[derive(Debug)]
pub struct Running {
    /// Frames to send: the writer's bounded queue ([`QUEUE`] frames). Full while TCP does not
    /// take what the writer has; every clone dropped ends the connection.
    pub tx: LinkTx,
    reader: AbortHandle,
    writer: AbortHandle,
    counters: Arc<Mutex<ConnectionCounters>>,
}

impl Running {
    /// Ends the connection now: both tasks stop and the socket closes. What is queued to send
    /// is dropped, and `done` is not called.
    pub fn close(&self) {
        self.reader.abort();
        self.writer.abort();
    }

    /// The counters so far.
    pub fn counters(&self) -> ConnectionCounters {
        *lock(&self.counters)
    }

    /// A handle on the counters that outlives the connection.
    pub fn counters_handle(&self) -> Arc<Mutex<ConnectionCounters>> {
        self.counters.clone()
    }
}

impl Connection {
    /// The counters so far.
    pub fn counters(&self) -> ConnectionCounters {
        *lock(&self.counters)
    }

    /// A handle on the counters that outlives the connection.
    pub fn counters_handle(&self) -> Arc<Mutex<ConnectionCounters>> {
        self.counters.clone()
    }

    /// Starts the data phase. Every frame received goes to `inbound`, a batch at a time; while
    /// `inbound` has no room the reader waits and reads nothing more, so the peer's TCP window
    /// closes. Frames to send go into the returned [`Running::tx`]. LKAs are answered here
    /// and never reach `inbound`. `done` is called once, with why, when the connection ends by
    /// itself (not after [`Running::close`]).
    pub fn start(self, inbound: LinkTx, done: impl FnOnce(Closed) + Send + 'static) -> Running {
        let Connection {
            stream,
            k_a_tov,
            receiver,
            flow,
            counters,
            ..
        } = self;
        let (rd, wr) = stream.into_split();
        let (tx, out_rx) = link::channel(QUEUE);
        // The reader answers LKAs through a queue of the writer's own, so that the writer still
        // ends when every sender of its main queue is dropped. A peer that floods LKAs faster
        // than they are answered loses answers, not memory.
        let (answers, answers_rx) = mpsc::channel(ANSWERS);
        // The reader holds `stop_tx`: when it ends, the writer ends too.
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let writer = tokio::spawn(write_loop(
            wr,
            out_rx,
            answers_rx,
            stop_rx,
            counters.clone(),
            k_a_tov,
            flow.clone(),
        ));
        let read = read_loop(
            rd,
            Receiver::new(receiver),
            inbound,
            answers,
            counters.clone(),
            k_a_tov,
            flow.map(RxCapture::new),
        );
        let reader = tokio::spawn(async move {
            let why = read.await;
            drop(stop_tx);
            done(why);
        });
        Running {
            tx,
            reader: reader.abort_handle(),
            writer: writer.abort_handle(),
            counters,
        }
    }

    /// The connection as a link of its own (one lane): frames sent on the link go to the peer,
    /// frames from the peer arrive on it, with queues of [`QUEUE`] frames. The receiver says
    /// why the connection ended.
    pub fn into_link(self) -> (Link, oneshot::Receiver<Closed>) {
        let (in_tx, in_rx) = link::channel(QUEUE);
        let (closed_tx, closed_rx) = oneshot::channel();
        let running = self.start(in_tx, move |why| {
            let _ = closed_tx.send(why);
        });
        (Link::new(running.tx, in_rx), closed_rx)
    }
}

fn lock(m: &Mutex<ConnectionCounters>) -> MutexGuard<'_, ConnectionCounters> {
    // Counters are plain numbers: a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Timestamp {
    sntp_from_system_time(SystemTime::now())
}

/// Dials `addr` for an FCIP connection, with TCP_NODELAY.
///
/// The socket buffers are left to the kernel's autotuning, which grows them up to
/// `net.ipv4.tcp_rmem`/`tcp_wmem`'s maximum (6 MiB and 4 MiB by default): enough for the
/// 2.5 MB in flight on a gigabit link at 20 ms round trip (the relay bench fills it). Fixed
/// 4 MiB buffers (`SO_RCVBUF`/`SO_SNDBUF`, which turn autotuning off) measured 20% slower on
/// loopback and no faster through the relay.
pub async fn dial(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a connection on `stream` as its originator: sends our Special Frame for
/// `destination` with `nonce`, checks the echo, then starts the data phase.
pub async fn originate(
    mut stream: TcpStream,
    local: &Endpoint,
    destination: Wwn,
    nonce: u64,
) -> Result<Connection, SetupError> {
    stream.set_nodelay(true)?;
    let flow = flow(&stream, local.capture.as_ref());
    let sent = SpecialFrame {
        changed: false,
        timestamp: now(),
        source_fabric: local.fabric,
        source_entity: local.entity,
        nonce,
        usage_flags: 0,
        usage_code: 0,
        destination_fabric: destination,
        k_a_tov_ms: u32::try_from(local.k_a_tov.as_millis()).unwrap_or(u32::MAX),
    };
    let fsf = sent.emit();
    if let Some(flow) = &flow {
        flow.sent([Bytes::copy_from_slice(&fsf)]);
    }
    stream.write_all(&fsf).await?;
    let echo = read_fsf(&mut stream, flow.as_ref()).await?;
    echo.echo_matches(&sent).map_err(SetupError::EchoMismatch)?;
    Ok(opened(stream, local, echo, flow))
}

/// Accepts a connection on `stream`: reads the originator's Special Frame, checks that it is
/// for our fabric and from one of `peers`, echoes it, then starts the data phase. On an
/// error the stream is dropped (closed) without an answer.
pub async fn accept(
    mut stream: TcpStream,
    local: &Endpoint,
    peers: &[Wwn],
) -> Result<Connection, SetupError> {
    stream.set_nodelay(true)?;
    let flow = flow(&stream, local.capture.as_ref());
    let fsf = read_fsf(&mut stream, flow.as_ref()).await?;
    if !peers.contains(&fsf.source_fabric) {
        return Err(SetupError::UnknownPeer(fsf.source_fabric));
    }
    if fsf.destination_fabric != local.fabric {
        return Err(SetupError::WrongDestination(fsf.destination_fabric));
    }
    // Echoed unchanged: we accept every field as the originator set it.
    let echo = fsf.emit();
    if let Some(flow) = &flow {
        flow.sent([Bytes::copy_from_slice(&echo)]);
    }
    stream.write_all(&echo).await?;
    Ok(opened(stream, local, fsf, flow))
}

/// The capture's view of `stream`, when there is a capture (and the socket knows both its
/// addresses, which a connected one does).
fn flow(stream: &TcpStream, capture: Option<&CaptureSink>) -> Option<Flow> {
    let capture = capture?;
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => Some(capture.flow(local, peer)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "FCIP connection not captured: no socket address");
            None
        }
    }
}

async fn read_fsf(stream: &mut TcpStream, flow: Option<&Flow>) -> Result<SpecialFrame, SetupError> {
    let mut buf = [0u8; FSF_LEN];
    match timeout(SETUP_TIMEOUT, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => {
            // Recorded before it is checked: a refused Special Frame is worth seeing.
            if let Some(flow) = flow {
                flow.received([Bytes::copy_from_slice(&buf)]);
            }
            Ok(SpecialFrame::parse(&buf)?)
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(SetupError::NoSpecialFrame),
    }
}

fn opened(
    stream: TcpStream,
    local: &Endpoint,
    peer: SpecialFrame,
    flow: Option<Flow>,
) -> Connection {
    Connection {
        stream,
        peer,
        k_a_tov: local.k_a_tov,
        receiver: local.receiver,
        flow,
        counters: Arc::new(Mutex::new(ConnectionCounters::default())),
    }
}

/// The LKA an FCIP entity sends to keep its connection alive: from and to the fabric
/// controllers (FFFFFD), class F-like in a class 3 frame.
fn lka(ox_id: u16) -> FcFrame {
    let h = FrameHeaderRepr::request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::FABRIC_CONTROLLER,
        FcId::FABRIC_CONTROLLER,
        ox_id,
    );
    FcFrame::single(h, ElsRequest::Lka.to_vec())
}

/// Whether `f` is an FCIP keep-alive (LKA from and to the fabric controllers).
pub fn is_lka(f: &FcFrame) -> bool {
    f.header.r_ctl == RCtl::ELS_REQUEST
        && f.header.fc_type == FcType::ELS
        && f.header.d_id == FcId::FABRIC_CONTROLLER
        && f.payload.first() == Some(&ElsCode::LKA.0)
}

/// Whether `f` is an ELS reply from and to the fabric controllers (an LKA's LS_ACC).
pub fn is_lka_reply(f: &FcFrame) -> bool {
    f.header.r_ctl == RCtl::ELS_REPLY
        && f.header.fc_type == FcType::ELS
        && f.header.s_id == FcId::FABRIC_CONTROLLER
        && f.header.d_id == FcId::FABRIC_CONTROLLER
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: LinkRx,
    mut answers: mpsc::Receiver<FcFrame>,
    mut stop: oneshot::Receiver<()>,
    counters: Arc<Mutex<ConnectionCounters>>,
    k_a_tov: Duration,
    flow: Option<Flow>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    // Where each frame of `out` is, when capturing.
    let mut cuts: Vec<Range<usize>> = Vec::new();
    let mut out = BytesMut::with_capacity(64 << 10);
    let mut gather = Gather::default();
    let idle = k_a_tov / 2;
    let mut ox: u16 = 0;
    loop {
        let next = async {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n > 0,
                Some(a) = answers.recv() => {
                    batch.push(Received::Frame(a));
                    true
                }
                // The reader ended: so does the connection.
                _ = &mut stop => false,
            }
        };
        match timeout(idle, next).await {
            Ok(false) => {
                // Every sender dropped, or the reader ended: the connection ends.
                let _ = wr.shutdown().await;
                return;
            }
            Ok(true) => {}
            Err(_) => {
                // K_A_TOV/2 without sending: keep the connection alive.
                ox = ox.wrapping_add(1);
                batch.push(Received::Frame(lka(ox)));
                lock(&counters).lka_sent += 1;
                tracing::debug!(ox_id = ox, "LKA sent");
            }
        }
        let ts = now();
        let mut answered = 0;
        // Counted as the batch goes to TCP, not after: the link adds up a connection's
        // counters when its reader sees the end, which may come before the write returns.
        let written = match &flow {
            // Captured: each frame's bytes in one piece, recorded as written.
            Some(flow) => {
                let mut frames = 0;
                for f in frames_of(&mut batch) {
                    answered += usize::from(is_lka_reply(&f));
                    if encapsulable(&f) {
                        let at = out.len();
                        emit_encapsulated(&f, ts, &mut out);
                        frames += 1;
                        cuts.push(at..out.len());
                    }
                }
                // The capture's thread gets the very bytes written, no copy; it never holds
                // the writer up (see `crate::capture`).
                let data = out.split().freeze();
                flow.sent(cuts.drain(..).map(|r| data.slice(r)));
                count_sent(&counters, frames, data.len());
                wr.write_all(&data).await
            }
            // Not captured: long payloads go to the kernel where they are, no copy.
            None => {
                gather.clear();
                for f in frames_of(&mut batch) {
                    answered += usize::from(is_lka_reply(&f));
                    if encapsulable(&f) {
                        gather.push(f, ts);
                    }
                }
                count_sent(&counters, gather.frames() as u64, gather.bytes());
                write_gather(&mut wr, &gather).await
            }
        };
        if written.is_err() {
            return;
        }
        if answered > 0 {
            // Logged once written (and recorded), for whoever waits to see it on the wire.
            tracing::debug!(answered, "LKA answered");
        }
    }
}

/// The frames of a batch taken from the send queue (which carries only frames).
fn frames_of(batch: &mut Vec<Received>) -> impl Iterator<Item = FcFrame> + '_ {
    batch.drain(..).filter_map(|r| match r {
        Received::Frame(f) => Some(f),
        Received::Malformed { .. } => None,
    })
}

fn count_sent(counters: &Mutex<ConnectionCounters>, frames: u64, bytes: usize) {
    let mut c = lock(counters);
    c.tx_frames += frames;
    c.tx_bytes += bytes as u64;
}

/// Writes a gathered batch with as few `writev` calls as the kernel allows.
async fn write_gather(wr: &mut OwnedWriteHalf, out: &Gather) -> io::Result<()> {
    let mut slices = out.slices();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(MAX_IOVECS);
        let written = wr.write_vectored(&rest[..n]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut engine: Receiver,
    inbound: LinkTx,
    answers: mpsc::Sender<FcFrame>,
    counters: Arc<Mutex<ConnectionCounters>>,
    k_a_tov: Duration,
    mut capture: Option<RxCapture>,
) -> Closed {
    let mut items: Vec<Received> = Vec::with_capacity(BATCH);
    let closed = loop {
        if engine.room() == 0 {
            // Cannot happen: poll drains what was read. Guard against a stall anyway.
            break Closed::LostSync;
        }
        let deadline = Instant::now() + k_a_tov;
        // Straight into the engine's buffer: no copy between the socket and the frames.
        let mut target = engine.read_buf();
        let n = tokio::select! {
            r = rd.read_buf(&mut target) => match r {
                Ok(0) => break Closed::Eof,
                Ok(n) => n,
                Err(e) => break Closed::Io(e.to_string()),
            },
            () = tokio::time::sleep_until(deadline) => {
                lock(&counters).lka_timeouts += 1;
                break Closed::KeepAliveTimeout;
            }
            () = inbound.closed() => break Closed::Local,
        };
        // One clock reading a read: its frames arrived together.
        let arrived = now();
        if let Some(c) = &mut capture {
            c.pushed(engine.tail(n));
        }
        loop {
            let before = capture.is_some().then(|| engine.counters().bytes);
            let Some(out) = engine.poll(arrived) else {
                if let Some(c) = &mut capture {
                    c.settled(&engine);
                }
                break;
            };
            if let (Some(c), Some(before)) = (&mut capture, before) {
                c.polled(&engine, before, &out);
            }
            match out {
                Output::Frame { frame, .. } if is_lka(&frame) => {
                    let acc = FrameHeaderRepr {
                        f_ctl: FCtl::EXCHANGE_CONTEXT
                            | FCtl::LAST_SEQUENCE
                            | FCtl::END_SEQUENCE
                            | FCtl::SEQUENCE_INITIATIVE,
                        ..FrameHeaderRepr::reply_to(&frame.header, RCtl::ELS_REPLY, 0xFFFF)
                    };
                    // The answer travels in the class of the LKA (SOFf for one sent in class F).
                    let answer = FcFrame::new(
                        reply_sof(frame.sof),
                        acc,
                        ElsReply::Acc.to_vec().into(),
                        Eof::T,
                    );
                    if answers.try_send(answer).is_ok() {
                        lock(&counters).lka_answered += 1;
                    }
                }
                Output::Frame { frame, .. } if is_lka_reply(&frame) => {
                    tracing::debug!(ox_id = frame.header.ox_id, "LKA acknowledged");
                }
                Output::Frame { frame, .. } => items.push(Received::Frame(frame)),
                Output::Malformed { bytes, error } => {
                    items.push(Received::Malformed { bytes, error });
                }
                Output::Special(fsf) => {
                    tracing::warn!(?fsf, "Special Frame in the data phase, ignored");
                }
                Output::SyncLost { error } => {
                    tracing::warn!(%error, "FCIP encapsulation error");
                }
            }
        }
        lock(&counters).rx = *engine.counters();
        if let Some(c) = &mut capture {
            c.flush();
        }
        // Waits for room above: meanwhile nothing is read, and TCP pushes back on the peer.
        if !items.is_empty() && inbound.send_all(&mut items).await.is_err() {
            break Closed::Local;
        }
        if engine.is_closed() {
            break Closed::LostSync;
        }
    };
    if let Some(c) = &mut capture {
        c.closed();
    }
    tracing::info!(?closed, "FCIP connection closed");
    closed
}

/// The SOF that opens the answer to a request that came with `request`: an answer travels in
/// the class of its request (class F stays SOFf, class 2 and 4 open with SOFi2 and SOFi4,
/// class 3 and unknown codes with SOFi3).
fn reply_sof(request: Sof) -> Sof {
    match request {
        Sof::F => Sof::F,
        Sof::I2 | Sof::N2 => Sof::I2,
        Sof::I4 | Sof::N4 | Sof::C4 => Sof::I4,
        _ => Sof::I3,
    }
}

/// Cuts the received byte stream into the pieces the engine made of it, for the capture: a
/// copy of every byte pushed into the engine and not yet recorded. The engine's buffer is
/// always the tail of what was pushed, so what it consumed is the copy less
/// [`Receiver::buffered`].
struct RxCapture {
    flow: Flow,
    pending: BytesMut,
    /// Segments cut since the last [`flush`](Self::flush).
    segments: Vec<Bytes>,
}

impl RxCapture {
    fn new(flow: Flow) -> RxCapture {
        RxCapture {
            flow,
            pending: BytesMut::with_capacity(64 << 10),
            segments: Vec::new(),
        }
    }

    /// `bytes` went into the engine.
    fn pushed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The engine gave `out`; `bytes_before` was its frame byte counter before the poll.
    fn polled(&mut self, engine: &Receiver, bytes_before: u64, out: &Output) {
        // The bytes of the item itself, at the end of what the engine consumed.
        let item = match out {
            Output::Frame { .. } => {
                usize::try_from(engine.counters().bytes.saturating_sub(bytes_before)).unwrap_or(0)
            }
            Output::Special(_) => FSF_LEN,
            Output::Malformed { bytes, .. } => *bytes,
            // Recorded with what comes next: the bad bytes are skipped until a frame is found.
            Output::SyncLost { .. } => return,
        };
        let consumed = self.pending.len().saturating_sub(engine.buffered());
        let mut taken = self.pending.split_to(consumed).freeze();
        let junk = taken.split_to(consumed.saturating_sub(item));
        self.record(junk);
        self.record(taken);
    }

    /// The engine wants more bytes: what it consumed without handing anything up was skipped.
    fn settled(&mut self, engine: &Receiver) {
        let consumed = self.pending.len().saturating_sub(engine.buffered());
        let skipped = self.pending.split_to(consumed).freeze();
        self.record(skipped);
    }

    /// The connection ended: what the engine still holds, unframed.
    fn closed(&mut self) {
        let rest = self.pending.split().freeze();
        self.record(rest);
        self.flush();
    }

    fn record(&mut self, bytes: Bytes) {
        // A run of skipped bytes can be longer than an IP packet holds.
        let mut rest = bytes;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(MAX_UNFRAMED_SEGMENT));
            self.segments.push(piece);
        }
    }

    /// Hands what was cut to the capture, in one batch (before the frames go up, so that a
    /// capture never shows an answer before its request).
    fn flush(&mut self) {
        if !self.segments.is_empty() {
            self.flow.received(self.segments.drain(..));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use fc_frames::encap::encapsulate_len;
    use tokio::net::TcpListener;

    use super::*;
    use crate::capture::testing::{segments, Segment, SharedBuf};

    const A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
    const B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
    const WAIT: Duration = Duration::from_secs(10);

    fn endpoint(fabric: Wwn, k_a_tov: Duration) -> Endpoint {
        Endpoint {
            fabric,
            entity: [0, 0, 0, 0, 0, 0, 0, 1],
            k_a_tov,
            receiver: ReceiverConfig::default(),
            capture: None,
        }
    }

    fn frame(ox: u16, len: usize) -> FcFrame {
        let mut h = FrameHeaderRepr::request(
            RCtl::UNSOLICITED_DATA,
            FcType::FCP,
            FcId::from_parts(2, 1, 0),
            FcId::from_parts(1, 1, 0),
            ox,
        );
        h.f_ctl = h.f_ctl.with_fill_bytes((4 - len % 4) % 4);
        FcFrame::single(h, vec![(ox & 0xFF) as u8; len])
    }

    async fn pair(k_a_tov: Duration) -> Result<(Connection, Connection), SetupError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio::spawn(async move {
            let (s, _) = listener.accept().await?;
            accept(s, &endpoint(B, k_a_tov), &[A]).await
        });
        let s = TcpStream::connect(addr).await?;
        let o = originate(s, &endpoint(A, k_a_tov), B, 0x1234_5678_9abc_def0).await?;
        let a = acceptor
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        Ok((o, a))
    }

    /// A connection in its data phase, as a link of its own.
    struct Live {
        link: Link,
        closed: oneshot::Receiver<Closed>,
        counters: Arc<Mutex<ConnectionCounters>>,
    }

    impl Live {
        fn counters(&self) -> ConnectionCounters {
            *lock(&self.counters)
        }
    }

    fn live(c: Connection) -> Live {
        let counters = c.counters_handle();
        let (link, closed) = c.into_link();
        Live {
            link,
            closed,
            counters,
        }
    }

    async fn next_frame(c: &mut Live) -> FcFrame {
        match timeout(WAIT, c.link.rx.recv()).await {
            Ok(Some(Received::Frame(f))) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_handshake_then_frames_both_ways_in_order() {
        let (o, a) = pair(Duration::from_secs(10)).await.unwrap();
        assert_eq!(o.peer.nonce, 0x1234_5678_9abc_def0);
        assert_eq!(a.peer.source_fabric, A);
        let (mut o, mut a) = (live(o), live(a));
        let tx = o.link.tx.clone();
        let sender = tokio::spawn(async move {
            for i in 0..2000u16 {
                tx.send(frame(i, usize::from(i) % 2113)).await.unwrap();
            }
        });
        for i in 0..2000u16 {
            assert_eq!(next_frame(&mut a).await, frame(i, usize::from(i) % 2113));
        }
        sender.await.unwrap();
        a.link.tx.send(frame(7, 100)).await.unwrap();
        assert_eq!(next_frame(&mut o).await, frame(7, 100));
        // The writer counts a batch once its write returns, which may be after the peer
        // has read it.
        timeout(WAIT, async {
            while o.counters().tx_frames < 2000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("tx counted");
        assert_eq!(o.counters().tx_frames, 2000);
        assert_eq!(a.counters().rx.frames, 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_unknown_peer_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            // Only C is a peer.
            accept(s, &endpoint(B, WAIT), &[Wwn::from_u64(0xC)]).await
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let o = originate(s, &endpoint(A, WAIT), B, 1).await;
        assert!(matches!(acceptor.await.unwrap(), Err(SetupError::UnknownPeer(w)) if w == A));
        // The originator's echo never comes: the connection is closed.
        assert!(matches!(o, Err(SetupError::Io(_))), "{o:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_idle_connection_kept_alive_by_lka() {
        // K_A_TOV with room for a loaded machine's scheduling delays.
        let (o, a) = pair(Duration::from_millis(800)).await.unwrap();
        let (o, mut a) = (live(o), live(a));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // Both still open: not closed, nothing handed up (LKAs are answered below the link);
        // LKAs (from whichever side fell silent first) were answered, and the answers kept
        // the other side's writer busy.
        assert!(a.link.rx.try_recv().is_none());
        assert!(a.closed.try_recv().is_err());
        let (oc, ac) = (o.counters(), a.counters());
        assert!(oc.lka_sent + ac.lka_sent >= 2, "{oc:?} {ac:?}");
        assert!(oc.lka_answered + ac.lka_answered >= 2, "{oc:?} {ac:?}");
        assert_eq!(oc.lka_timeouts + ac.lka_timeouts, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_silent_peer_declared_dead_after_k_a_tov() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that does the handshake by hand, then says nothing.
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut fsf = [0u8; FSF_LEN];
            s.read_exact(&mut fsf).await.unwrap();
            s.write_all(&fsf).await.unwrap();
            tokio::time::sleep(WAIT).await;
            drop(s);
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let o = originate(s, &endpoint(A, Duration::from_millis(200)), B, 9)
            .await
            .unwrap();
        let o = live(o);
        let why = timeout(WAIT, o.closed).await.unwrap();
        assert_eq!(why, Ok(Closed::KeepAliveTimeout));
        assert_eq!(lock(&o.counters).lka_timeouts, 1);
        peer.abort();
    }

    /// Every frame each way is its own segment between the connection's real addresses: the
    /// Special Frame and its echo, then the FC frames as encapsulated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_capture_records_every_frame_both_ways() {
        let buf = SharedBuf::default();
        let sink = CaptureSink::new(buf.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            accept(s, &endpoint(B, WAIT), &[A]).await.unwrap()
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let local = s.local_addr().unwrap();
        let mut ep = endpoint(A, WAIT);
        ep.capture = Some(sink.clone());
        let mut o = live(originate(s, &ep, B, 0x77).await.unwrap());
        let mut a = live(acceptor.await.unwrap());
        let sent = [frame(1, 0), frame(2, 5), frame(3, 2112)];
        for f in &sent {
            o.link.tx.send(f.clone()).await.unwrap();
        }
        for f in &sent {
            assert_eq!(next_frame(&mut a).await, *f);
        }
        a.link.tx.send(frame(4, 100)).await.unwrap();
        assert_eq!(next_frame(&mut o).await, frame(4, 100));
        sink.finish().unwrap();

        let segs = segments(&buf.bytes());
        let got: Vec<(SocketAddr, SocketAddr, usize)> = segs
            .iter()
            .map(|s| (s.src, s.dst, s.payload.len()))
            .collect();
        let mut want = vec![(local, addr, FSF_LEN), (addr, local, FSF_LEN)];
        want.extend(sent.iter().map(|f| (local, addr, encapsulate_len(f))));
        want.push((addr, local, encapsulate_len(&frame(4, 100))));
        assert_eq!(got, want);
        assert_eq!(segs[0].payload, segs[1].payload, "echoed unchanged");
        assert_eq!(SpecialFrame::parse(&segs[0].payload).unwrap().nonce, 0x77);
        // The FC frame inside each record is the one sent (after the header and SOF word).
        let fc = &segs[4].payload[32..];
        assert_eq!(&fc[..24], &frame(3, 2112).encode_parts().header[..]);
    }

    /// An accepting connection that records to `sink`, and its peer: a raw socket that has
    /// done the Special Frame exchange by hand.
    async fn hand_made_peer(sink: CaptureSink) -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut ep = endpoint(B, WAIT);
            ep.capture = Some(sink);
            accept(s, &ep, &[A]).await.unwrap()
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        let fsf = SpecialFrame {
            changed: false,
            timestamp: Timestamp::ZERO,
            source_fabric: A,
            source_entity: [1; 8],
            nonce: 5,
            usage_flags: 0,
            usage_code: 0,
            destination_fabric: B,
            k_a_tov_ms: 10_000,
        };
        s.write_all(&fsf.emit()).await.unwrap();
        let mut echo = [0u8; FSF_LEN];
        s.read_exact(&mut echo).await.unwrap();
        (s, acceptor.await.unwrap())
    }

    /// Sends `junk` bytes of 0xAA and then a frame from the hand-made peer, closes it, and
    /// returns what the accepting side recorded after the Special Frames, and the bytes sent.
    async fn junk_then_frame(junk: usize) -> (Vec<Segment>, BytesMut) {
        let buf = SharedBuf::default();
        let sink = CaptureSink::new(buf.clone()).unwrap();
        let (mut s, a) = hand_made_peer(sink.clone()).await;
        let mut a = live(a);
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&vec![0xAA; junk]);
        emit_encapsulated(&frame(9, 40), Timestamp::ZERO, &mut bytes);
        s.write_all(&bytes).await.unwrap();
        assert_eq!(next_frame(&mut a).await, frame(9, 40));
        drop(s);
        // The connection ends; what it held is recorded by then.
        let _ = timeout(WAIT, &mut a.closed).await.unwrap();
        // The counters are updated once a chunk is done, before the connection ends.
        assert_eq!(a.counters().rx.encapsulation_errors, 1);
        sink.finish().unwrap();
        let segs = segments(&buf.bytes());
        let lens: Vec<usize> = segs.iter().take(2).map(|s| s.payload.len()).collect();
        assert_eq!(lens, vec![FSF_LEN, FSF_LEN]);
        (segs.into_iter().skip(2).collect(), bytes)
    }

    /// Received bytes the engine skips are recorded as they came, apart from the frame after
    /// them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_capture_records_unframed_bytes_on_their_own() {
        let (segs, bytes) = junk_then_frame(10).await;
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert_eq!(segs[0].payload, vec![0xAA; 10]);
        assert_eq!(segs[1].payload, &bytes[10..]);
        // Consistent numbers: the frame follows the junk in its flow.
        assert_eq!(segs[1].seq, segs[0].seq.wrapping_add(10));
    }

    /// A long run of junk is recorded in pieces an IP packet holds, and the capture goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_capture_splits_long_runs_of_unframed_bytes() {
        let junk = 300 << 10;
        let (segs, bytes) = junk_then_frame(junk).await;
        let (frame, unframed) = segs.split_last().unwrap();
        assert!(unframed
            .iter()
            .all(|s| s.payload.len() <= MAX_UNFRAMED_SEGMENT));
        assert_eq!(
            unframed.iter().map(|s| s.payload.len()).sum::<usize>(),
            junk
        );
        assert_eq!(frame.payload, &bytes[junk..]);
    }

    /// Reads one encapsulated frame from a raw socket.
    async fn read_encapsulated(s: &mut TcpStream) -> FcFrame {
        let mut header = [0u8; 28];
        timeout(WAIT, s.read_exact(&mut header))
            .await
            .expect("a frame")
            .expect("read");
        let words = usize::from(u16::from_be_bytes([header[12], header[13]]) & 0x3FF);
        let mut bytes = header.to_vec();
        bytes.resize(words * 4, 0);
        s.read_exact(&mut bytes[28..]).await.expect("read");
        let (_, frame) =
            fc_frames::encap::parse_encapsulated(Bytes::from(bytes)).expect("encapsulated");
        frame.expect("a valid FC frame")
    }

    /// An LKA answers in its own class: one sent in class F (SOFf) gets its LS_ACC in class F,
    /// one in class 3 in class 3; neither reaches the link above.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_lka_is_answered_in_the_class_it_came_in() {
        let (mut s, a) = hand_made_peer(CaptureSink::new(SharedBuf::default()).unwrap()).await;
        let mut a = live(a);
        for (ox, sof) in [(0x10, Sof::F), (0x11, Sof::I3)] {
            let mut req = lka(ox);
            req.sof = sof;
            let mut bytes = BytesMut::new();
            emit_encapsulated(&req, Timestamp::ZERO, &mut bytes);
            s.write_all(&bytes).await.unwrap();
            let acc = read_encapsulated(&mut s).await;
            assert_eq!(acc.sof, sof, "LKA in {sof} answered in {}", acc.sof);
            assert_eq!(
                (acc.header.r_ctl, acc.header.ox_id, acc.header.d_id),
                (RCtl::ELS_REPLY, ox, FcId::FABRIC_CONTROLLER)
            );
            assert_eq!(acc.payload[0], ElsCode::LS_ACC.0);
        }
        assert!(a.link.rx.try_recv().is_none());
        assert_eq!(a.counters().lka_answered, 2);
        drop(s);
        let _ = timeout(WAIT, &mut a.closed).await;
    }
}
