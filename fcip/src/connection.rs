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

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use fc_frames::els::{ElsCode, ElsReply, ElsRequest};
use fc_frames::encap::{emit_encapsulated, encapsulable, Timestamp};
use fc_frames::{FCtl, FcFrame, FcId, FcType, FrameError, FrameHeaderRepr, RCtl, Wwn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::engine::{Output, Receiver, ReceiverConfig, ReceiverCounters};
use crate::fsf::{Mismatch, SpecialFrame, FSF_LEN};
use crate::time::sntp_from_system_time;

/// How long the Special Frame exchange may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most frames written with one system call.
const BATCH: usize = 256;

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

/// What a connection hands up.
#[derive(Debug, Clone)]
pub enum Event {
    /// An FC frame.
    Frame(FcFrame),
    /// A frame that was framed right but did not decode (bad FC CRC): counted, not used.
    Malformed {
        /// Bytes of the FC frame.
        bytes: usize,
        /// Why.
        error: FrameError,
    },
    /// The connection ended.
    Closed(Closed),
}

/// Counters of one connection, in the FCIP MIB's terms (RFC 4404) plus traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounters {
    /// The receive engine's counters: frames, bytes, encapsulation errors, FC sync losses, ...
    pub rx: ReceiverCounters,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes sent (encapsulated).
    pub tx_bytes: u64,
    /// LKAs sent.
    pub lka_sent: u64,
    /// LKAs answered.
    pub lka_answered: u64,
    /// Connections declared dead for want of traffic within K_A_TOV.
    pub lka_timeouts: u64,
}

/// An open FCIP connection: send frames with [`tx`](Self::tx), receive [`Event`]s on
/// [`rx`](Self::rx). Dropping both ends closes it.
#[derive(Debug)]
pub struct Connection {
    /// Frames to send.
    pub tx: mpsc::UnboundedSender<FcFrame>,
    /// What arrived.
    pub rx: mpsc::UnboundedReceiver<Event>,
    /// The peer's Special Frame (as it sent it, or as it echoed ours).
    pub peer: SpecialFrame,
    counters: Arc<Mutex<ConnectionCounters>>,
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
}

fn lock(m: &Mutex<ConnectionCounters>) -> MutexGuard<'_, ConnectionCounters> {
    // Counters are plain numbers: a panic elsewhere leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> Timestamp {
    sntp_from_system_time(SystemTime::now())
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
    stream.write_all(&sent.emit()).await?;
    let echo = read_fsf(&mut stream).await?;
    echo.echo_matches(&sent).map_err(SetupError::EchoMismatch)?;
    Ok(start(stream, local, echo))
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
    let fsf = read_fsf(&mut stream).await?;
    if !peers.contains(&fsf.source_fabric) {
        return Err(SetupError::UnknownPeer(fsf.source_fabric));
    }
    if fsf.destination_fabric != local.fabric {
        return Err(SetupError::WrongDestination(fsf.destination_fabric));
    }
    // Echoed unchanged: we accept every field as the originator set it.
    stream.write_all(&fsf.emit()).await?;
    Ok(start(stream, local, fsf))
}

async fn read_fsf(stream: &mut TcpStream) -> Result<SpecialFrame, SetupError> {
    let mut buf = [0u8; FSF_LEN];
    match timeout(SETUP_TIMEOUT, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(SpecialFrame::parse(&buf)?),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(SetupError::NoSpecialFrame),
    }
}

fn start(stream: TcpStream, local: &Endpoint, peer: SpecialFrame) -> Connection {
    let (rd, wr) = stream.into_split();
    let (tx, out_rx) = mpsc::unbounded_channel();
    let (in_tx, rx) = mpsc::unbounded_channel();
    // The reader answers LKAs through a queue of the writer's own, so that the writer still
    // ends when the connection's owner drops its sender.
    let (answers, answers_rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Mutex::new(ConnectionCounters::default()));
    let k_a_tov = local.k_a_tov;
    tokio::spawn(write_loop(
        wr,
        out_rx,
        answers_rx,
        counters.clone(),
        k_a_tov,
    ));
    tokio::spawn(read_loop(
        rd,
        Receiver::new(local.receiver),
        in_tx,
        answers,
        counters.clone(),
        k_a_tov,
    ));
    Connection {
        tx,
        rx,
        peer,
        counters,
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

fn is_lka(f: &FcFrame) -> bool {
    f.header.r_ctl == RCtl::ELS_REQUEST
        && f.header.fc_type == FcType::ELS
        && f.header.d_id == FcId::FABRIC_CONTROLLER
        && f.payload.first() == Some(&ElsCode::LKA.0)
}

fn is_lka_reply(f: &FcFrame) -> bool {
    f.header.r_ctl == RCtl::ELS_REPLY
        && f.header.fc_type == FcType::ELS
        && f.header.s_id == FcId::FABRIC_CONTROLLER
        && f.header.d_id == FcId::FABRIC_CONTROLLER
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<FcFrame>,
    mut answers: mpsc::UnboundedReceiver<FcFrame>,
    counters: Arc<Mutex<ConnectionCounters>>,
    k_a_tov: Duration,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut out = BytesMut::with_capacity(64 << 10);
    let idle = k_a_tov / 2;
    let mut ox: u16 = 0;
    loop {
        let next = async {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n > 0,
                Some(a) = answers.recv() => {
                    batch.push(a);
                    true
                }
            }
        };
        match timeout(idle, next).await {
            Ok(false) => {
                // The owner dropped its sender: the connection ends.
                let _ = wr.shutdown().await;
                return;
            }
            Ok(true) => {}
            Err(_) => {
                // K_A_TOV/2 without sending: keep the connection alive.
                ox = ox.wrapping_add(1);
                batch.push(lka(ox));
                lock(&counters).lka_sent += 1;
            }
        }
        let ts = now();
        let mut frames = 0;
        for f in batch.drain(..) {
            if encapsulable(&f) {
                emit_encapsulated(&f, ts, &mut out);
                frames += 1;
            }
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        let mut c = lock(&counters);
        c.tx_frames += frames;
        c.tx_bytes += out.len() as u64;
        drop(c);
        out.clear();
    }
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut engine: Receiver,
    up: mpsc::UnboundedSender<Event>,
    answers: mpsc::UnboundedSender<FcFrame>,
    counters: Arc<Mutex<ConnectionCounters>>,
    k_a_tov: Duration,
) {
    let mut buf = vec![0u8; 256 << 10];
    let closed = loop {
        let deadline = Instant::now() + k_a_tov;
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break Closed::Eof,
                Ok(n) => n,
                Err(e) => break Closed::Io(e.to_string()),
            },
            () = tokio::time::sleep_until(deadline) => {
                lock(&counters).lka_timeouts += 1;
                break Closed::KeepAliveTimeout;
            }
            () = up.closed() => break Closed::Local,
        };
        let mut chunk = buf.get(..n).unwrap_or(&[]);
        let mut lost = false;
        while !chunk.is_empty() {
            let taken = engine.push(chunk);
            chunk = chunk.get(taken..).unwrap_or(&[]);
            while let Some(out) = engine.poll(now()) {
                match out {
                    Output::Frame { frame, .. } if is_lka(&frame) => {
                        let acc = FrameHeaderRepr {
                            f_ctl: FCtl::EXCHANGE_CONTEXT
                                | FCtl::LAST_SEQUENCE
                                | FCtl::END_SEQUENCE
                                | FCtl::SEQUENCE_INITIATIVE,
                            ..FrameHeaderRepr::reply_to(&frame.header, RCtl::ELS_REPLY, 0xFFFF)
                        };
                        let _ = answers.send(FcFrame::single(acc, ElsReply::Acc.to_vec()));
                        lock(&counters).lka_answered += 1;
                    }
                    Output::Frame { frame, .. } if is_lka_reply(&frame) => {}
                    Output::Frame { frame, .. } => {
                        let _ = up.send(Event::Frame(frame));
                    }
                    Output::Malformed { bytes, error } => {
                        let _ = up.send(Event::Malformed { bytes, error });
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
            if engine.is_closed() {
                lost = true;
                break;
            }
            if taken == 0 && engine.room() == 0 {
                // Cannot happen: poll drains what push took. Guard against a stall anyway.
                lost = true;
                break;
            }
        }
        if lost {
            break Closed::LostSync;
        }
    };
    tracing::info!(?closed, "FCIP connection closed");
    let _ = up.send(Event::Closed(closed));
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    const A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
    const B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
    const WAIT: Duration = Duration::from_secs(10);

    fn endpoint(fabric: Wwn, k_a_tov: Duration) -> Endpoint {
        Endpoint {
            fabric,
            entity: [0, 0, 0, 0, 0, 0, 0, 1],
            k_a_tov,
            receiver: ReceiverConfig::default(),
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

    async fn next_frame(c: &mut Connection) -> FcFrame {
        match timeout(WAIT, c.rx.recv()).await {
            Ok(Some(Event::Frame(f))) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_handshake_then_frames_both_ways_in_order() {
        let (mut o, mut a) = pair(Duration::from_secs(10)).await.unwrap();
        assert_eq!(o.peer.nonce, 0x1234_5678_9abc_def0);
        assert_eq!(a.peer.source_fabric, A);
        for i in 0..2000u16 {
            o.tx.send(frame(i, usize::from(i) % 2113)).unwrap();
        }
        for i in 0..2000u16 {
            assert_eq!(next_frame(&mut a).await, frame(i, usize::from(i) % 2113));
        }
        a.tx.send(frame(7, 100)).unwrap();
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
        let (o, mut a) = pair(Duration::from_millis(800)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // Both still open: no Closed event; LKAs (from whichever side fell silent first) were
        // answered, and the answers kept the other side's writer busy.
        assert!(a.rx.try_recv().is_err());
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
        let mut o = originate(s, &endpoint(A, Duration::from_millis(200)), B, 9)
            .await
            .unwrap();
        let ev = timeout(WAIT, o.rx.recv()).await.unwrap();
        assert!(
            matches!(ev, Some(Event::Closed(Closed::KeepAliveTimeout))),
            "{ev:?}"
        );
        assert_eq!(o.counters().lka_timeouts, 1);
        peer.abort();
    }
}
