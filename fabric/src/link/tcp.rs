//! TCP links: FC frames over a TCP connection in the encapsulation of RFC 3643 §3, as FCIP
//! frames them (RFC 3821 §5.6), so that a node and a switch can be separate processes.
//!
//! This is the framing of FCIP without the rest of FCIP: no Special Frame exchange when the
//! connection opens (RFC 3821 §7), no keep-alive, and no resynchronization after a bad header
//! (RFC 3821 §5.6.2): an encapsulation error closes the connection. The `fcip` crate adds
//! those.
//!
//! Each connection runs two tasks, each with a bounded queue of [`DEFAULT_CAPACITY`] frames:
//!
//! - the **writer** takes frames from the link's queue in batches (up to [`BATCH`] at a time)
//!   and writes the whole batch with one vectored write (`writev`): headers, delimiters, CRCs
//!   and short payloads gathered in one buffer, long payloads as slices of their own, so many
//!   small frames share a system call and no long payload is copied in user space. While it
//!   waits for the socket, the queue fills and senders wait ([`LinkTx::send`](super::LinkTx))
//!   or are refused ([`TrySendError::Full`](super::TrySendError)). It ends, shutting down the
//!   socket's write half, when every [`LinkTx`] clone is dropped, when the
//!   reader ends, or on a write error.
//! - the **reader** reads into a large buffer and cuts whole encapsulated frames out of it with
//!   `split_to` (no copy: each frame's payload points into the read buffer), then queues them
//!   for the local [`LinkRx`], waiting for room: while the queue is full it
//!   reads nothing, so the kernel's receive buffer fills and TCP's window closes on the peer.
//!   A frame that is framed right but does not decode (bad FC CRC) is handed up as
//!   [`Received::Malformed`]; a bad encapsulation header ends the
//!   connection. On end of stream, a read error, or when the local `LinkRx` is dropped, it
//!   ends, and the local `LinkRx` then returns `None`: the link is down.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;

use bytes::BytesMut;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;
use tracing::Instrument;

use fc_frames::encap::{
    encapsulable, parse_encapsulated, EncapError, EncapHeader, EncapHeaderRepr, Gather, Timestamp,
    DELIMITER_WORD_LEN, HEADER_LEN, MAX_IOVECS,
};

use super::{channel, Link, LinkRx, LinkTx, Received, DEFAULT_CAPACITY};

/// Most frames the writer encodes into one write.
pub const BATCH: usize = 256;
/// Socket send and receive buffer size asked of the kernel (it may grant less).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Size of each read buffer the reader allocates.
const READ_BUF: usize = 512 << 10;
/// The reader starts a new buffer when less than this is free in the current one.
const MIN_READ_SPACE: usize = 64 << 10;
/// Bytes around the FC frame in an encapsulated frame: header, SOF word, EOF word.
const ENCAP_OVERHEAD: usize = HEADER_LEN + 2 * DELIMITER_WORD_LEN;

/// Connects to `addr` and starts a link over the connection. Must be called inside a tokio
/// runtime.
pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Link> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Before connect, so the window scale offered in the SYN fits the buffers.
        if let Err(e) = SockRef::from(&socket)
            .set_recv_buffer_size(SOCKET_BUFFER)
            .and_then(|()| SockRef::from(&socket).set_send_buffer_size(SOCKET_BUFFER))
        {
            tracing::debug!(addr = %a, error = %e, "could not size socket buffers");
        }
        match socket.connect(a).await {
            Ok(stream) => return Ok(spawn(stream)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

/// Starts a link over a connected stream: sets TCP_NODELAY and large socket buffers and
/// spawns the writer and reader tasks. Must be called inside a tokio runtime.
pub fn spawn(stream: TcpStream) -> Link {
    let peer = Peer(stream.peer_addr().ok());
    tune(&stream, peer);
    let (rd, wr) = stream.into_split();
    let (out_tx, out_rx) = channel(DEFAULT_CAPACITY);
    let (in_tx, in_rx) = channel(DEFAULT_CAPACITY);
    // The reader holds `stop_tx`: when it ends, the writer ends too. The writer holds
    // `failed_tx` and sends on it after a write error, which ends the reader.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (failed_tx, failed_rx) = oneshot::channel::<()>();
    let span = tracing::debug_span!("tcp_link", %peer);
    tokio::spawn(write_loop(wr, out_rx, stop_rx, failed_tx, peer).instrument(span.clone()));
    tokio::spawn(
        async move {
            let end = read_loop(rd, &in_tx, failed_rx).await;
            match end {
                ReadEnd::Encap(e) => {
                    tracing::warn!(%peer, error = %e, "encapsulation error, closing connection");
                }
                ReadEnd::Io(e) => tracing::info!(%peer, error = %e, "TCP link read error"),
                ReadEnd::Eof => tracing::debug!(%peer, "TCP link closed by peer"),
                ReadEnd::LocalClosed => tracing::debug!(%peer, "TCP link dropped locally"),
                ReadEnd::WriterFailed => tracing::debug!(%peer, "TCP link ended by write error"),
            }
            drop(stop_tx);
        }
        .instrument(span),
    );
    Link::new(out_tx, in_rx)
}

/// The remote address, for log lines.
#[derive(Debug, Clone, Copy)]
struct Peer(Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("unknown peer"),
        }
    }
}

/// TCP_NODELAY (frames are latency-bound requests as often as bulk data) and large buffers.
/// Failures only cost speed, so they are logged, not returned.
fn tune(stream: &TcpStream, peer: Peer) {
    let sock = SockRef::from(stream);
    let r = stream
        .set_nodelay(true)
        .and_then(|()| sock.set_recv_buffer_size(SOCKET_BUFFER))
        .and_then(|()| sock.set_send_buffer_size(SOCKET_BUFFER));
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "could not tune socket");
    }
}

/// Why a reader ended.
#[derive(Debug)]
enum ReadEnd {
    /// The peer closed the connection.
    Eof,
    /// Reading failed.
    Io(io::Error),
    /// A bad encapsulation header or delimiter word: the stream can't be trusted.
    Encap(EncapError),
    /// The local `LinkRx` was dropped.
    LocalClosed,
    /// The writer failed: the connection is broken.
    WriterFailed,
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: LinkRx,
    mut stop: oneshot::Receiver<()>,
    failed: oneshot::Sender<()>,
    peer: Peer,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut out = Gather::default();
    loop {
        // Biased: frames queued before the link was dropped still go out before the writer
        // heeds the stop.
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, BATCH) => n,
            _ = &mut stop => return,
        };
        if n == 0 {
            // Every LinkTx is gone: tell the peer we are done sending.
            let _ = wr.shutdown().await;
            return;
        }
        out.clear();
        for item in batch.drain(..) {
            match item {
                Received::Frame(f) if encapsulable(&f) => out.push(f, Timestamp::ZERO),
                Received::Frame(f) => {
                    tracing::warn!(%peer, frame = %f, "dropping a frame that cannot be encapsulated");
                }
                // Only `LinkTx::send` feeds this queue, and it sends frames.
                Received::Malformed { .. } => {}
            }
        }
        if out.is_empty() {
            continue;
        }
        let r = tokio::select! {
            biased;
            r = write_gather(&mut wr, &out) => r,
            _ = &mut stop => return,
        };
        if let Err(e) = r {
            tracing::info!(%peer, error = %e, "TCP link write error");
            let _ = failed.send(());
            return;
        }
    }
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
    tx: &LinkTx,
    mut writer_failed: oneshot::Receiver<()>,
) -> ReadEnd {
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let mut items = Vec::with_capacity(BATCH);
    let mut writer_done = false;
    loop {
        let cut = cut_frames(&mut buf, &mut items);
        if !items.is_empty() {
            // Waits for room above: meanwhile nothing is read, and TCP pushes back.
            tokio::select! {
                r = tx.send_all(&mut items) => {
                    if r.is_err() {
                        return ReadEnd::LocalClosed;
                    }
                }
                () = writer_failure(&mut writer_failed, &mut writer_done) => {
                    return ReadEnd::WriterFailed;
                }
            }
        }
        if let Err(end) = cut {
            return end;
        }
        if buf.capacity() - buf.len() < MIN_READ_SPACE {
            // Frames cut from the old buffer keep it alive; the partial frame at its end moves.
            buf.reserve(READ_BUF);
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return ReadEnd::Eof,
                Ok(_) => {}
                Err(e) => return ReadEnd::Io(e),
            },
            () = tx.closed() => return ReadEnd::LocalClosed,
            () = writer_failure(&mut writer_failed, &mut writer_done) => {
                return ReadEnd::WriterFailed;
            }
        }
    }
}

/// Resolves if the writer failed; never, once it ended normally (every `LinkTx` dropped: the
/// reader keeps receiving), which it notes in `done`.
async fn writer_failure(failed: &mut oneshot::Receiver<()>, done: &mut bool) {
    if !*done {
        match failed.await {
            Ok(()) => return,
            Err(_) => *done = true,
        }
    }
    std::future::pending().await
}

/// Cuts every whole encapsulated frame off the front of `buf` into `items`.
fn cut_frames(buf: &mut BytesMut, items: &mut Vec<Received>) -> Result<(), ReadEnd> {
    loop {
        let Ok(view) = EncapHeader::new_checked(&buf[..]) else {
            return Ok(()); // not a whole header yet
        };
        // Check the header as soon as it is here, before waiting for the frame it announces.
        let total = EncapHeaderRepr::parse(&view)
            .map_err(ReadEnd::Encap)?
            .total_len();
        if buf.len() < total {
            return Ok(());
        }
        let bytes = buf.split_to(total).freeze();
        let (_, frame) = parse_encapsulated(bytes).map_err(ReadEnd::Encap)?;
        let item = match frame {
            Ok(f) => Received::Frame(f),
            Err(error) => Received::Malformed {
                bytes: total - ENCAP_OVERHEAD,
                error,
            },
        };
        items.push(item);
    }
}
