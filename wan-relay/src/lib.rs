//! A WAN impairment relay: a TCP relay on loopback that delays and rate-limits what it passes,
//! so FCIP tests and benchmarks can put a long, narrow link between a gateway and its peer on a
//! machine without kernel netem.
//!
//! A [`Relay`] listens on one address; every connection it accepts gets its own connection to
//! the upstream address, and bytes are relayed both ways. Each direction of each connection
//! runs a reader and a writer joined by a queue:
//!
//! ```text
//!  source ─read ≤ 64 KiB─► pacing ─stamp now + delay─► queue ─at the stamp─► write ─► destination
//!                          (token bucket per         (≤ 1024 chunks)
//!                           direction, shared by
//!                           all connections)
//! ```
//!
//! - **Delay**: a chunk is written to the destination no earlier than the time it was read
//!   plus [`Impairment::one_way_delay`], in order. The reader keeps reading while chunks wait,
//!   so the delay is latency, not a throughput limit; the queue holds at most [`QUEUE_CHUNKS`]
//!   chunks of at most [`CHUNK`] bytes, which bounds its memory.
//! - **Bandwidth**: [`Impairment::bandwidth_bps`] is a token bucket per direction (client to
//!   upstream, upstream to client) shared by every connection of the relay, with a burst
//!   allowance of 64 KiB or 2 ms worth, whichever is larger. The reader takes the tokens for a
//!   chunk before stamping it, so delivery is paced at the cap; it reads on while what it has
//!   taken tokens for ends less than [`READ_AHEAD`] from now, and waits otherwise, so a sender
//!   faster than the cap is held back by TCP flow control instead of filling the queue, and a
//!   reader that wakes up late (a busy machine) does not leave the link idle.
//! - **Failures**: [`Relay::sever`] resets every current connection on both sides, like a link
//!   that broke; [`Relay::set_refuse`] keeps the link down by closing new connections at once.
//!   An end of stream is passed on (after the delay) as a half-close; an error on either side
//!   resets both.
//!
//! What it does not emulate: loss, jitter and reordering; and the delay sits in user space, so
//! the TCP connections on either side see a loopback round trip (their congestion windows never
//! feel the WAN). The protocols above TCP — FCIP keep-alives, FCP exchanges in flight — see the
//! full delay, which is what the FCIP tests need.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Most bytes the relay reads, queues and writes as one chunk.
pub const CHUNK: usize = 64 << 10;
/// Most chunks queued in one direction of one connection (64 MiB of full chunks).
pub const QUEUE_CHUNKS: usize = 1024;
/// Longest one-way delay the relay applies; longer ones are cut to this.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Socket send and receive buffer size asked of the kernel. The relay reads eagerly, so on
/// loopback this covers well over 1 Gbit/s; bigger buffers would only add queueing in front of
/// a bandwidth cap, latency the emulated link doesn't have.
const SOCKET_BUFFER: usize = 1 << 20;
/// Size of each read buffer; chunks are cut out of it without copying.
const READ_BUF: usize = 256 << 10;
/// Burst allowance of the token bucket, in time at the capped rate (at least [`CHUNK`] bytes).
/// Tokio's timers fire on millisecond ticks, and a reader that wakes up a tick late loses the
/// tokens that overflowed the bucket meanwhile, so the bucket holds more than a tick: with
/// 1 ms, one connection filled ~85% of 1 Gbit/s at 20 ms round trip, with 2 ms ~95%.
const BURST_TIME: Duration = Duration::from_millis(2);
/// How far ahead of the link's schedule a reader may read: the chunks it has taken tokens for
/// may end up to this long from now (at least the burst allowance). A reader sleeps until its
/// chunk is that close; waking up later than that by less than this leaves the link busy.
/// With none (the reader sleeping until its chunk may go), one connection filled only ~88% of
/// 1 Gbit/s at 20 ms round trip on a loaded two-core machine, where timers fire several
/// milliseconds late.
const READ_AHEAD: Duration = Duration::from_millis(10);
/// Pause after a failed accept (descriptor exhaustion, aborted handshake) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Backlog of the listening socket.
const BACKLOG: u32 = 1024;

/// The conditions of the emulated link. The default is a perfect link: no delay, no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impairment {
    /// Time each chunk takes from one side to the other (half the added round trip). At most
    /// [`MAX_DELAY`].
    pub one_way_delay: Duration,
    /// Bits per second in each direction, shared by all connections of the relay; `None` for
    /// no cap. `Some(0)` is taken as 1 bit/s.
    pub bandwidth_bps: Option<u64>,
}

/// A bandwidth in bits per second (for [`Impairment::bandwidth_bps`]) from `1Gbit`, `100Mbit`, `64kbit`, `1Gbit/s` or a plain number.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a rate: {s:?} (e.g. 1Gbit, 100Mbit)"))?;
    let mult: u64 = match unit.trim() {
        "" | "bit" | "bps" => 1,
        "kbit" | "Kbit" => 1_000,
        "Mbit" => 1_000_000,
        "Gbit" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} (use bit, kbit, Mbit or Gbit)"
            ))
        }
    };
    match n.checked_mul(mult) {
        Some(0) => Err("a rate of 0 passes nothing".into()),
        Some(bps) => Ok(bps),
        None => Err(format!("{s} is too large")),
    }
}

/// What a relay has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Connections accepted, including refused ones.
    pub accepted: u64,
    /// Connections closed at once because refusal was set.
    pub refused: u64,
    /// Connections closed by [`Relay::sever`].
    pub severed: u64,
    /// Connections closed because the upstream address could not be reached.
    pub upstream_failed: u64,
    /// Bytes written to upstream (client to upstream).
    pub bytes_to_upstream: u64,
    /// Bytes written to clients (upstream to client).
    pub bytes_to_client: u64,
}

/// A running relay. Cloning gives another handle to the same relay; when the last handle is
/// dropped the relay stops accepting and closes every connection.
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl Relay {
    /// Listens on `listen` (port 0 picks a free port) and relays every connection it accepts
    /// to a new connection to `upstream`, under `impairment`. Must be called inside a tokio
    /// runtime.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        impairment: Impairment,
    ) -> io::Result<Relay> {
        let socket = new_socket(listen)?;
        socket.set_reuseaddr(true)?;
        // Accepted sockets inherit the listener's buffers, and with them the window scale.
        size_buffers(SockRef::from(&socket));
        socket.bind(listen)?;
        let listener = socket.listen(BACKLOG)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(impairment));
        let span = tracing::debug_span!("relay", listen = %local_addr, %upstream);
        let accept_task =
            tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)).instrument(span));
        tracing::debug!(listen = %local_addr, %upstream, ?impairment, "relay started");
        Ok(Relay {
            inner: Arc::new(Inner {
                shared,
                local_addr,
                accept_task,
            }),
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Changes the link's conditions for data read from now on. Chunks already queued keep
    /// the delay they were stamped with, and a chunk already waiting for tokens the time it
    /// was given; the token buckets start full at the new rate.
    pub fn set_impairment(&self, impairment: Impairment) {
        let mut link = self.inner.shared.link();
        link.impairment = impairment;
        link.busy_until = [None; 2];
        tracing::debug!(listen = %self.inner.local_addr, ?impairment, "impairment changed");
    }

    /// Resets every current connection, both its client and its upstream side, at once (TCP
    /// RST, unsent data discarded), as a broken link would. New connections are still
    /// accepted.
    pub fn sever(&self) {
        tracing::info!(listen = %self.inner.local_addr, "severing every connection");
        self.inner
            .shared
            .sever
            .send_modify(|generation| *generation += 1);
    }

    /// While `refuse` is true, connections are accepted and reset at once without dialling
    /// upstream, so the link stays down. Current connections are not touched; see
    /// [`sever`](Self::sever).
    pub fn set_refuse(&self, refuse: bool) {
        tracing::info!(listen = %self.inner.local_addr, refuse, "refusal changed");
        self.inner.shared.refuse.store(refuse, Ordering::Relaxed);
    }

    /// What the relay has done so far.
    pub fn counters(&self) -> RelayCounters {
        let c = &self.inner.shared.counters;
        RelayCounters {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            severed: c.severed.load(Ordering::Relaxed),
            upstream_failed: c.upstream_failed.load(Ordering::Relaxed),
            bytes_to_upstream: c.bytes[Direction::ToUpstream.index()].load(Ordering::Relaxed),
            bytes_to_client: c.bytes[Direction::ToClient.index()].load(Ordering::Relaxed),
        }
    }
}

/// What the handles share; dropped with the last one.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.shared.sever.send_modify(|generation| *generation += 1);
    }
}

/// What the accept loop and every connection share.
#[derive(Debug)]
struct Shared {
    link: Mutex<LinkState>,
    refuse: AtomicBool,
    /// Bumped to sever every connection that subscribed before.
    sever: watch::Sender<u64>,
    counters: Counters,
}

impl Shared {
    fn new(impairment: Impairment) -> Shared {
        Shared {
            link: Mutex::new(LinkState {
                impairment,
                busy_until: [None; 2],
            }),
            refuse: AtomicBool::new(false),
            sever: watch::Sender::new(0),
            counters: Counters::default(),
        }
    }

    /// The link state. Never held across an await; a panic while holding it can't leave it
    /// inconsistent (every update is a single assignment), so poisoning is ignored.
    fn link(&self) -> MutexGuard<'_, LinkState> {
        self.link
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the tokens for `len` bytes read at `read_at` in direction `dir`, waiting for
    /// them if the bucket is short, and returns when the bytes are to be delivered.
    async fn schedule(&self, dir: Direction, read_at: Instant, len: usize) -> Instant {
        let (slot, delay) = {
            let mut link = self.link();
            let impairment = link.impairment;
            let slot = match impairment.bandwidth_bps {
                Some(bps) => link.reserve(dir, read_at, len, bps.max(1)),
                None => Reserved {
                    send_at: read_at,
                    resume_at: read_at,
                },
            };
            (slot, impairment.one_way_delay.min(MAX_DELAY))
        };
        if slot.resume_at > Instant::now() {
            tokio::time::sleep_until(slot.resume_at).await;
        }
        slot.send_at + delay
    }
}

/// The emulated link: its conditions and the token buckets.
#[derive(Debug)]
struct LinkState {
    impairment: Impairment,
    /// Per direction, when the link will have sent everything reserved so far (the bucket is
    /// full again); `None` when never used at this rate. A bucket that holds `burst` of time
    /// lets a chunk go once what is reserved ahead of it, and the chunk, fit in the burst.
    busy_until: [Option<Instant>; 2],
}

/// A chunk's place on the link, from [`LinkState::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reserved {
    /// When the chunk may go (its delivery is this plus the delay).
    send_at: Instant,
    /// When the reader may read the next chunk.
    resume_at: Instant,
}

impl LinkState {
    /// Reserves the link in direction `dir` for `len` bytes at `bps`, asked at `now`: when
    /// they may go, and when the reader may go on.
    fn reserve(&mut self, dir: Direction, now: Instant, len: usize, bps: u64) -> Reserved {
        let slot = &mut self.busy_until[dir.index()];
        let start = slot.map_or(now, |busy| busy.max(now));
        let end = start + transmit_time(len, bps);
        *slot = Some(end);
        let burst = BURST_TIME.max(transmit_time(CHUNK, bps));
        let before_end = |d: Duration| end.checked_sub(d).map_or(now, |t| t.max(now));
        Reserved {
            send_at: before_end(burst),
            resume_at: before_end(READ_AHEAD.max(burst)),
        }
    }
}

/// Time `len` bytes take at `bps` bits per second (`bps` > 0). At 1 bit/s a whole chunk takes
/// about six days, which an `Instant` holds easily.
fn transmit_time(len: usize, bps: u64) -> Duration {
    let nanos = (len as u128 * 8 * 1_000_000_000) / u128::from(bps);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Event counts, read by [`Relay::counters`].
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    severed: AtomicU64,
    upstream_failed: AtomicU64,
    /// Indexed by [`Direction::index`].
    bytes: [AtomicU64; 2],
}

/// Which way data goes through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToUpstream,
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToUpstream => 0,
            Direction::ToClient => 1,
        }
    }
}

/// Accepts connections until the relay is dropped, each in a task of its own.
async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.refuse.load(Ordering::Relaxed) {
            tracing::debug!(%peer, "refusing connection");
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            reset(client);
            continue;
        }
        // Subscribed here, so a sever from now on reaches this connection.
        let severed = shared.sever.subscribe();
        let span = tracing::debug_span!("relay_connection", %peer);
        tokio::spawn(connection(client, upstream, Arc::clone(&shared), severed).instrument(span));
    }
}

/// How a relayed connection ended.
#[derive(Debug)]
enum End {
    /// Both directions passed their end of stream.
    Closed,
    Severed,
    Failed(io::Error),
}

/// Dials upstream for `client` and relays between the two until both directions end, one
/// fails, or the relay severs them.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut severed: watch::Receiver<u64>,
) {
    tune(&client);
    let mut server = tokio::select! {
        r = connect(upstream) => match r {
            Ok(server) => server,
            Err(e) => {
                tracing::warn!(error = %e, "could not connect upstream");
                shared.counters.upstream_failed.fetch_add(1, Ordering::Relaxed);
                reset(client);
                return;
            }
        },
        Ok(()) = severed.changed() => {
            shared.counters.severed.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return;
        }
    };
    tracing::debug!("connection relayed");
    let end = {
        let (client_rd, client_wr) = client.split();
        let (server_rd, server_wr) = server.split();
        let both = async {
            tokio::try_join!(
                pump(client_rd, server_wr, &shared, Direction::ToUpstream),
                pump(server_rd, client_wr, &shared, Direction::ToClient),
            )
        };
        tokio::select! {
            r = both => match r {
                Ok(_) => End::Closed,
                Err(e) => End::Failed(e),
            },
            Ok(()) = severed.changed() => End::Severed,
        }
    };
    match end {
        End::Closed => tracing::debug!("connection closed"),
        End::Severed => {
            tracing::debug!("connection severed");
            shared.counters.severed.fetch_add(1, Ordering::Relaxed);
            reset(client);
            reset(server);
        }
        End::Failed(e) => {
            tracing::debug!(error = %e, "connection failed, resetting both sides");
            reset(client);
            reset(server);
        }
    }
}

/// A chunk on its way: its bytes, or `None` for the end of stream, and when to deliver it.
#[derive(Debug)]
struct Chunk {
    deliver_at: Instant,
    data: Option<Bytes>,
}

/// Relays one direction until its end of stream has been passed on as a half-close.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    dir: Direction,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE_CHUNKS);
    let read = async move {
        let mut buf = BytesMut::with_capacity(READ_BUF);
        loop {
            // After `split`, `capacity` is what is left free in the current buffer.
            if buf.capacity() < CHUNK {
                buf = BytesMut::with_capacity(READ_BUF);
            }
            let n = from.read_buf(&mut (&mut buf).limit(CHUNK)).await?;
            let deliver_at = shared.schedule(dir, Instant::now(), n).await;
            let data = (n > 0).then(|| buf.split().freeze());
            if tx.send(Chunk { deliver_at, data }).await.is_err() || n == 0 {
                // The writer is gone only after an error, which the join reports.
                return Ok::<(), io::Error>(());
            }
        }
    };
    let write = async move {
        while let Some(chunk) = rx.recv().await {
            if chunk.deliver_at > Instant::now() {
                tokio::time::sleep_until(chunk.deliver_at).await;
            }
            match chunk.data {
                Some(data) => {
                    to.write_all(&data).await?;
                    shared.counters.bytes[dir.index()]
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                None => {
                    to.shutdown().await?;
                    break;
                }
            }
        }
        Ok::<(), io::Error>(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Connects to `addr` with the relay's socket options.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = new_socket(addr)?;
    // Before connect, so the window scale offered in the SYN fits the buffers.
    size_buffers(SockRef::from(&socket));
    let stream = socket.connect(addr).await?;
    tune(&stream);
    Ok(stream)
}

/// A TCP socket of `addr`'s family.
fn new_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
}

/// Asks for [`SOCKET_BUFFER`]-sized buffers. Failures only cost speed, so they are logged.
fn size_buffers(sock: SockRef<'_>) {
    if let Err(e) = sock
        .set_recv_buffer_size(SOCKET_BUFFER)
        .and_then(|()| sock.set_send_buffer_size(SOCKET_BUFFER))
    {
        tracing::debug!(error = %e, "could not size socket buffers");
    }
}

/// TCP_NODELAY (a delayed small write would add to the emulated latency) and the buffers.
fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    size_buffers(SockRef::from(stream));
}

/// Closes `stream` with a reset (SO_LINGER 0), discarding what is unsent, as a broken link
/// would leave it.
fn reset(stream: TcpStream) {
    if let Err(e) = SockRef::from(&stream).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %e, "could not set SO_LINGER, closing normally");
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio::time::{timeout, Instant};

    use super::*;

    /// Guard against a hang; never a claim about speed.
    const HANG: Duration = Duration::from_secs(30);

    #[test]
    fn test_parse_rate() {
        assert_eq!(parse_rate("1Gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("100Mbit/s"), Ok(100_000_000));
        assert_eq!(parse_rate("64kbit"), Ok(64_000));
        assert_eq!(parse_rate("9600"), Ok(9600));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("1GB").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("99999999999999999999Gbit").is_err());
    }

    /// How an upstream echo connection ended.
    #[derive(Debug, PartialEq, Eq)]
    enum EchoEnd {
        Eof,
        Error,
    }

    /// An echo server on loopback; reports how each of its connections ended.
    async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<EchoEnd>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 << 10];
                    let end = loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => {
                                let _ = stream.shutdown().await;
                                break EchoEnd::Eof;
                            }
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break EchoEnd::Error;
                                }
                            }
                            Err(_) => break EchoEnd::Error,
                        }
                    };
                    let _ = tx.send(end);
                });
            }
        });
        (addr, rx)
    }

    /// An echo server and a relay in front of it.
    async fn relay_to_echo(impairment: Impairment) -> (Relay, mpsc::UnboundedReceiver<EchoEnd>) {
        let (echo, ends) = echo_server().await;
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo, impairment)
            .await
            .unwrap();
        (relay, ends)
    }

    /// `len` pseudo-random bytes (splitmix64).
    fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Sends `data` through `stream` to the echo server in uneven writes, half-closes, and
    /// returns everything read back up to end of stream.
    async fn echo_through(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            let mut rest = &data[..];
            let mut size = 1;
            while !rest.is_empty() {
                let n = size.min(rest.len());
                wr.write_all(&rest[..n]).await.unwrap();
                rest = &rest[n..];
                size = size * 7 % 200_003 + 1;
            }
            wr.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        rd.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        back
    }

    /// One byte there and back; returns the time it took.
    async fn ping(stream: &mut TcpStream) -> Duration {
        let start = Instant::now();
        stream.write_all(&[0x5a]).await.unwrap();
        let mut byte = [0; 1];
        stream.read_exact(&mut byte).await.unwrap();
        assert_eq!(byte, [0x5a]);
        start.elapsed()
    }

    /// Whether `stream` was closed: reading gives end of stream or a reset.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0; 16];
        matches!(
            timeout(HANG, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Whether a connection to `addr` is closed at once: the reset may already be there when
    /// the connect completes, or come after.
    async fn connection_closed(addr: SocketAddr) -> bool {
        match TcpStream::connect(addr).await {
            Ok(mut stream) => closed(&mut stream).await,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_relays_byte_exact_both_ways() {
        let impairment = Impairment {
            one_way_delay: Duration::from_millis(2),
            bandwidth_bps: None,
        };
        let (relay, mut ends) = relay_to_echo(impairment).await;
        let data = random_bytes(8 << 20, 1);
        let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        let back = timeout(HANG, echo_through(stream, data.clone()))
            .await
            .unwrap();
        assert!(back == data, "echoed bytes differ");
        // The half-close went through the relay to upstream and back.
        assert_eq!(
            timeout(HANG, ends.recv()).await.unwrap(),
            Some(EchoEnd::Eof)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_delay_applies_each_way() {
        let impairment = Impairment {
            one_way_delay: Duration::from_millis(30),
            bandwidth_bps: None,
        };
        let (relay, _ends) = relay_to_echo(impairment).await;
        let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        for _ in 0..3 {
            let rtt = ping(&mut stream).await;
            assert!(rtt >= Duration::from_millis(60), "round trip {rtt:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_set_impairment_applies_to_new_data() {
        let (relay, _ends) = relay_to_echo(Impairment::default()).await;
        let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        ping(&mut stream).await;
        relay.set_impairment(Impairment {
            one_way_delay: Duration::from_millis(40),
            bandwidth_bps: None,
        });
        let rtt = ping(&mut stream).await;
        assert!(rtt >= Duration::from_millis(80), "round trip {rtt:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_bandwidth_cap_applies() {
        const BPS: u64 = 80_000_000;
        let impairment = Impairment {
            one_way_delay: Duration::ZERO,
            bandwidth_bps: Some(BPS),
        };
        let (relay, _ends) = relay_to_echo(impairment).await;
        let len = 4 << 20;
        let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        let start = Instant::now();
        let back = timeout(HANG, echo_through(stream, random_bytes(len, 2)))
            .await
            .unwrap();
        let took = start.elapsed();
        assert_eq!(back.len(), len);
        let at_cap = transmit_time(len, BPS);
        assert!(took >= at_cap.mul_f64(0.9), "took {took:?}, cap {at_cap:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_bandwidth_cap_is_shared_by_connections() {
        const BPS: u64 = 80_000_000;
        let impairment = Impairment {
            one_way_delay: Duration::ZERO,
            bandwidth_bps: Some(BPS),
        };
        let (relay, _ends) = relay_to_echo(impairment).await;
        let each = 2 << 20;
        let start = Instant::now();
        let mut transfers = Vec::new();
        for seed in 0..2 {
            let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
            transfers.push(tokio::spawn(echo_through(stream, random_bytes(each, seed))));
        }
        for t in transfers {
            assert_eq!(timeout(HANG, t).await.unwrap().unwrap().len(), each);
        }
        let took = start.elapsed();
        let at_cap = transmit_time(2 * each, BPS);
        assert!(took >= at_cap.mul_f64(0.9), "took {took:?}, cap {at_cap:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_sever_closes_both_sides_and_new_connections_work() {
        let (relay, mut ends) = relay_to_echo(Impairment::default()).await;
        let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        ping(&mut stream).await;
        relay.sever();
        assert!(closed(&mut stream).await, "client side still open");
        let upstream_end = timeout(HANG, ends.recv()).await.unwrap();
        assert!(upstream_end.is_some(), "upstream side still open");
        let mut again = TcpStream::connect(relay.local_addr()).await.unwrap();
        ping(&mut again).await;
        assert_eq!(relay.counters().severed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_sever_during_delay_discards_queued_data() {
        let impairment = Impairment {
            one_way_delay: Duration::from_millis(200),
            bandwidth_bps: None,
        };
        let (relay, mut ends) = relay_to_echo(impairment).await;
        let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        // A first ping makes sure the relay has the connection before it is severed.
        ping(&mut stream).await;
        stream.write_all(b"lost in flight").await.unwrap();
        relay.sever();
        assert!(closed(&mut stream).await, "client side still open");
        assert!(timeout(HANG, ends.recv()).await.unwrap().is_some());
        assert_eq!(relay.counters().bytes_to_upstream, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_refuse_closes_new_connections_until_cleared() {
        let (relay, _ends) = relay_to_echo(Impairment::default()).await;
        relay.set_refuse(true);
        for _ in 0..2 {
            let refused = connection_closed(relay.local_addr()).await;
            assert!(refused, "refused connection still open");
        }
        relay.set_refuse(false);
        let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        ping(&mut stream).await;
        let counters = relay.counters();
        assert_eq!((counters.accepted, counters.refused), (3, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_dropping_the_relay_closes_its_connections() {
        let (relay, mut ends) = relay_to_echo(Impairment::default()).await;
        let addr = relay.local_addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        ping(&mut stream).await;
        let clone = relay.clone();
        drop(relay);
        ping(&mut stream).await;
        drop(clone);
        assert!(closed(&mut stream).await, "client side still open");
        assert!(timeout(HANG, ends.recv()).await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_counters_count() {
        let (relay, _ends) = relay_to_echo(Impairment::default()).await;
        let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
        let back = timeout(HANG, echo_through(stream, random_bytes(300_000, 3)))
            .await
            .unwrap();
        assert_eq!(back.len(), 300_000);
        let mut open = TcpStream::connect(relay.local_addr()).await.unwrap();
        ping(&mut open).await;
        relay.sever();
        assert!(closed(&mut open).await);
        // The severed count is taken before the sockets are reset.
        assert_eq!(
            relay.counters(),
            RelayCounters {
                accepted: 2,
                refused: 0,
                severed: 1,
                upstream_failed: 0,
                bytes_to_upstream: 300_001,
                bytes_to_client: 300_001,
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_unreachable_upstream_resets_client() {
        // A port that was free a moment ago: bound, then released.
        let gone = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), gone, Impairment::default())
            .await
            .unwrap();
        assert!(connection_closed(relay.local_addr()).await);
        assert_eq!(relay.counters().upstream_failed, 1);
    }

    #[test]
    fn test_reserve_paces_after_burst() {
        let now = Instant::now();
        let mut link = LinkState {
            impairment: Impairment::default(),
            busy_until: [None; 2],
        };
        // 8 Mbit/s: a 64 KiB chunk takes 65.536 ms, which is also the burst and the read-ahead.
        let bps = 8_000_000;
        let chunk = Duration::from_micros(65_536);
        let dir = Direction::ToUpstream;
        let at = |t: Instant| Reserved {
            send_at: t,
            resume_at: t,
        };
        assert_eq!(link.reserve(dir, now, CHUNK, bps), at(now));
        assert_eq!(link.reserve(dir, now, CHUNK, bps), at(now + chunk));
        assert_eq!(link.reserve(dir, now, CHUNK, bps), at(now + 2 * chunk));
        // The other direction has a bucket of its own.
        assert_eq!(link.reserve(Direction::ToClient, now, CHUNK, bps), at(now));
        // An idle link fills its bucket again.
        let later = now + 10 * chunk;
        assert_eq!(link.reserve(dir, later, CHUNK, bps), at(later));
    }

    #[test]
    fn test_reader_reads_ahead_of_a_fast_link() {
        let now = Instant::now();
        let mut link = LinkState {
            impairment: Impairment::default(),
            busy_until: [None; 2],
        };
        // 1 Gbit/s: a 64 KiB chunk takes 0.524288 ms; the burst is 2 ms, the read-ahead 10 ms.
        let bps = 1_000_000_000;
        let chunk = Duration::from_nanos(524_288);
        let dir = Direction::ToUpstream;
        let mut last = None;
        for n in 1..=40u32 {
            last = Some(link.reserve(dir, now, CHUNK, bps));
            let ends = now + chunk * n;
            let r = last.unwrap();
            assert_eq!(r.send_at, ends.checked_sub(BURST_TIME).unwrap().max(now));
            assert_eq!(r.resume_at, ends.checked_sub(READ_AHEAD).unwrap().max(now));
        }
        // 40 chunks end 20.97 ms from now: the reader waits until 10 ms before that.
        assert!(last.unwrap().resume_at > now + Duration::from_millis(10));
    }
}
