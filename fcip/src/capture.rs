//! Captures of FCIP traffic as Wireshark expects them: every FCIP frame sent or received is its
//! own Ethernet/IPv4 (or IPv6)/TCP packet with the real endpoint addresses and ports, and
//! sequence and acknowledgement numbers that are consistent per flow, so that Wireshark's TCP
//! and FCIP dissectors follow the stream (PROTOCOLS.md: one FCIP frame per TCP segment
//! record). Headers are built with `etherparse`, files written with `pcap-file` (link type
//! Ethernet).
//!
//! - [`TcpCapture`] writes records to any [`Write`]r, stamped by the caller.
//! - [`CaptureSink`] is one capture shared by every connection of a gateway, stamped with the
//!   system clock; [`CaptureSink::flow`] gives a connection its [`Flow`], which records what
//!   it sends and receives with its own endpoints.
//! - [`CaptureSink::create_pcapng`] writes the same packets as pcapng instead: the gateway's
//!   metadata in the Section Header Block (as the FC roles' captures,
//!   [`fc_pcap::capture::Metadata`]) and each packet's direction, what `fcsan pcap replay
//!   --as gateway` reads.
//!
//! The capture is off the data path. A connection hands each batch of segments (its bytes as
//! `Bytes`, no copy) to the sink's own thread, which builds the packets and writes them; the
//! queue between them holds at most [`QUEUE_BYTES`] bytes. A batch that does not fit is
//! dropped, never waited for: a connection never stalls on its capture, and the sink counts
//! the segments it dropped ([`CaptureSink::stats`]). Sequence numbers are taken when a
//! segment is handed over, so a dropped one leaves its gap in the flow (Wireshark shows
//! "previous segment not captured"), and the segments that are written stay consistent.
//!
//! tshark/Wireshark 4.0.17 lets its LBMSRS heuristic claim such segments before the FCIP one
//! does, even on port 3225: open these captures with `captures/fcsan.lua`, whose own FCIP
//! dissector finds them on any port, or with `-d tcp.port==PORT,fcip` (Decode As).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, Ipv6Header, TcpHeader};
use fc_pcap::capture::{Direction, Metadata, RoleCaptureWriter};
use pcap_file::pcap::{PcapHeader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use tokio::sync::mpsc;

/// A first sequence number per flow (what a SYN would have carried).
const ISN: u32 = 0x1000_0000;
/// The window advertised.
const WINDOW: u16 = 0xFFFF;
/// Hop limit (TTL) of the IP headers.
const HOP_LIMIT: u8 = 64;

/// Writes FCIP frames as TCP segments to a pcap stream.
///
/// Each record is the pcap record header and the Ethernet, IP and TCP headers, written
/// together, then the payload, written as it is: the payload is copied once, into the writer.
/// The IPv4 header checksum is set; the TCP checksum is left zero, as a capture of a NIC that
/// offloads checksums shows it (Wireshark does not check TCP checksums unless asked), so that
/// the capture does not read every payload byte a second time.
pub struct TcpCapture<W: Write> {
    writer: W,
    /// Next sequence number of each direction, by (source, destination).
    next_seq: HashMap<(SocketAddr, SocketAddr), u32>,
}

/// An address as IPv6: itself, or an IPv4 address mapped (`::ffff:a.b.c.d`).
fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
        IpAddr::V6(ip) => ip.octets(),
    }
}

/// A locally administered MAC address made from the IP address's last four bytes, so that
/// each endpoint keeps one MAC address.
fn mac(a: SocketAddr) -> [u8; 6] {
    let ip = v6(a.ip());
    [0x02, 0x00, ip[12], ip[13], ip[14], ip[15]]
}

/// Longest Ethernet + IP + TCP headers of a segment.
const HEADERS_MAX: usize = Ethernet2Header::LEN + Ipv6Header::LEN + TcpHeader::MIN_LEN;

/// The Ethernet, IP and TCP headers of a segment of `payload_len` bytes from `src` to `dst`,
/// and how many bytes of the array they take. Two IPv4 endpoints make an IPv4 packet;
/// otherwise it is IPv6, an IPv4 endpoint written IPv4-mapped.
fn segment_headers(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    payload_len: usize,
) -> io::Result<([u8; HEADERS_MAX], usize)> {
    let mut tcp = TcpHeader::new(src.port(), dst.port(), seq, WINDOW);
    tcp.acknowledgment_number = ack;
    tcp.ack = true;
    tcp.psh = true;
    let ip_payload = tcp.header_len() + payload_len;
    let too_long = || io::Error::other(format!("a segment of {payload_len} bytes"));
    let ip_payload16 = u16::try_from(ip_payload).map_err(|_| too_long())?;
    let mut headers = [0u8; HEADERS_MAX];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(d) = headers.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
            at += bytes.len();
        }
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let eth = Ethernet2Header {
                source: mac(src),
                destination: mac(dst),
                ether_type: EtherType::IPV4,
            };
            let mut ip = Ipv4Header::new(
                ip_payload16,
                HOP_LIMIT,
                IpNumber::TCP,
                s.octets(),
                d.octets(),
            )
            .map_err(|_| too_long())?;
            ip.header_checksum = ip.calc_header_checksum();
            put(&eth.to_bytes());
            put(&ip.to_bytes());
        }
        (s, d) => {
            let eth = Ethernet2Header {
                source: mac(src),
                destination: mac(dst),
                ether_type: EtherType::IPV6,
            };
            let ip = Ipv6Header {
                payload_length: ip_payload16,
                next_header: IpNumber::TCP,
                hop_limit: HOP_LIMIT,
                source: v6(s),
                destination: v6(d),
                ..Ipv6Header::default()
            };
            put(&eth.to_bytes());
            put(&ip.to_bytes());
        }
    }
    put(&tcp.to_bytes());
    Ok((headers, at))
}

impl<W: Write> TcpCapture<W> {
    /// Starts a capture: the pcap file header (Ethernet, microseconds).
    pub fn new(writer: W) -> io::Result<TcpCapture<W>> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        // The file header; records are written here, little-endian, microseconds.
        let writer = PcapWriter::with_header(writer, header)
            .map_err(io::Error::other)?
            .into_writer();
        Ok(TcpCapture {
            writer,
            next_seq: HashMap::new(),
        })
    }

    /// Records `payload` (one encapsulated FCIP frame, or a Special Frame) as a TCP segment
    /// from `src` to `dst`, stamped `ts` after the epoch. Two IPv4 endpoints make an IPv4
    /// packet; otherwise it is IPv6, an IPv4 endpoint written IPv4-mapped.
    pub fn record(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let seq = *self.next_seq.entry((src, dst)).or_insert(ISN);
        let ack = *self.next_seq.entry((dst, src)).or_insert(ISN);
        self.record_segment(ts, src, dst, seq, ack, payload)?;
        if let Some(next) = self.next_seq.get_mut(&(src, dst)) {
            // TCP sequence numbers count bytes modulo 2^32.
            *next = seq.wrapping_add(payload.len() as u32);
        }
        Ok(())
    }

    /// Records `payload` as a TCP segment from `src` to `dst` with the sequence and
    /// acknowledgement numbers given (the caller keeps them consistent), stamped `ts`.
    pub fn record_segment(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let (headers, at) = segment_headers(src, dst, seq, ack, payload.len())?;
        let headers = headers.get(..at).unwrap_or(&[]);
        let len = u32::try_from(headers.len() + payload.len())
            .map_err(|_| io::Error::other(format!("a segment of {} bytes", payload.len())))?;
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        record[4..8].copy_from_slice(&ts.subsec_micros().to_le_bytes());
        record[8..12].copy_from_slice(&len.to_le_bytes());
        record[12..16].copy_from_slice(&len.to_le_bytes());
        self.writer.write_all(&record)?;
        self.writer.write_all(headers)?;
        self.writer.write_all(payload)
    }

    /// Returns the writer (flush it if it buffers).
    pub fn into_inner(self) -> W {
        self.writer
    }
}

/// Most bytes of segments waiting for the capture's thread; a batch that would go over is
/// dropped (and counted).
pub const QUEUE_BYTES: usize = 64 << 20;

/// What a capture wrote and what it could not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Segments written.
    pub recorded: u64,
    /// Segments dropped: the capture's thread did not keep up (its queue was full), or the
    /// file failed.
    pub dropped: u64,
}

/// One capture shared by many connections: cheap to clone; records are written by a thread of
/// the sink's own, from a bounded queue, stamped with the system clock as they are handed
/// over. A write error is logged once and ends the capture; the connections go on.
///
/// [`finish`](Self::finish) writes what is queued, flushes and closes the file; records after
/// it are dropped. Dropping the last clone does the same, without a report.
#[derive(Clone)]
pub struct CaptureSink {
    inner: Arc<SinkInner>,
}

struct SinkInner {
    tx: mpsc::UnboundedSender<Message>,
    shared: Arc<SinkShared>,
}

/// What the sink's handles and its thread share.
struct SinkShared {
    /// Most bytes queued for the thread.
    limit: usize,
    /// Bytes of segments queued for the thread.
    queued: AtomicUsize,
    recorded: AtomicU64,
    dropped: AtomicU64,
    finished: AtomicBool,
}

enum Message {
    Segments(Vec<Segment>),
    Finish(std::sync::mpsc::SyncSender<io::Result<()>>),
}

/// One TCP segment to write.
struct Segment {
    ts: Duration,
    /// Sent by the capturing side (else received).
    sent: bool,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    payload: Bytes,
}

impl fmt::Debug for CaptureSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureSink")
            .field("stats", &self.stats())
            .finish()
    }
}

impl CaptureSink {
    /// A capture written to `writer` by a thread of its own (the pcap file header is written
    /// now).
    pub fn new(writer: impl Write + Send + 'static) -> io::Result<CaptureSink> {
        CaptureSink::with_queue(writer, QUEUE_BYTES)
    }

    /// [`new`](Self::new) with a queue of at most `queue_bytes` bytes for the thread.
    pub fn with_queue(
        writer: impl Write + Send + 'static,
        queue_bytes: usize,
    ) -> io::Result<CaptureSink> {
        let capture = TcpCapture::new(Box::new(writer) as Box<dyn Write + Send>)?;
        CaptureSink::spawn(Output::Pcap(capture), queue_bytes)
    }

    /// A capture written as pcapng (link type Ethernet) to a new file at `path` (replaced if
    /// it exists), buffered: `metadata` in the Section Header Block's comment, as the FC roles
    /// write it ([`fc_pcap::capture::Metadata`]), one interface named `fcip`, and each packet
    /// with its direction (`epb_flags`: inbound, received from a peer; outbound, sent). This is
    /// what `fcsan pcap replay --as gateway` reads.
    pub fn create_pcapng(path: &Path, metadata: &Metadata) -> io::Result<CaptureSink> {
        let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let writer = RoleCaptureWriter::new(
            Box::new(file) as Box<dyn Write + Send>,
            metadata,
            DataLink::ETHERNET,
        )
        .map_err(io::Error::other)?;
        CaptureSink::spawn(Output::Pcapng(writer), QUEUE_BYTES)
    }

    fn spawn(capture: Output, queue_bytes: usize) -> io::Result<CaptureSink> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(SinkShared {
            limit: queue_bytes,
            queued: AtomicUsize::new(0),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fcip-capture".into())
            .spawn(move || write_segments(capture, rx, &thread_shared))?;
        Ok(CaptureSink {
            inner: Arc::new(SinkInner { tx, shared }),
        })
    }

    /// A capture written to a new file at `path` (replaced if it exists), buffered.
    pub fn create(path: &Path) -> io::Result<CaptureSink> {
        CaptureSink::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    }

    /// What the connection from `local` to `peer` records goes here.
    pub fn flow(&self, local: SocketAddr, peer: SocketAddr) -> Flow {
        Flow {
            sink: self.clone(),
            local,
            peer,
            seq: Arc::new(FlowSeq {
                sent: AtomicU32::new(ISN),
                received: AtomicU32::new(ISN),
            }),
        }
    }

    /// Segments written and dropped so far.
    pub fn stats(&self) -> CaptureStats {
        let s = &self.inner.shared;
        CaptureStats {
            recorded: s.recorded.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }

    /// Hands `segments` to the thread, or drops them (counted) if the queue has no room.
    fn queue(&self, segments: Vec<Segment>) {
        let s = &self.inner.shared;
        if segments.is_empty() || s.finished.load(Ordering::Acquire) {
            return;
        }
        let bytes: usize = segments.iter().map(|g| g.payload.len()).sum();
        if s.queued.fetch_add(bytes, Ordering::AcqRel) + bytes > s.limit {
            s.queued.fetch_sub(bytes, Ordering::AcqRel);
            s.dropped
                .fetch_add(segments.len() as u64, Ordering::Relaxed);
            return;
        }
        if self.inner.tx.send(Message::Segments(segments)).is_err() {
            s.queued.fetch_sub(bytes, Ordering::AcqRel);
        }
    }

    /// Writes what is queued, flushes and closes the capture; later records are dropped. The
    /// first call reports the flush's error (or the write error that ended the capture),
    /// later calls do nothing. Waits for the capture's thread.
    pub fn finish(&self) -> io::Result<()> {
        if self.inner.shared.finished.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        if self.inner.tx.send(Message::Finish(reply)).is_err() {
            return Ok(());
        }
        done.recv().unwrap_or(Ok(()))
    }
}

/// Where the capture's thread writes: classic pcap or pcapng with metadata.
enum Output {
    Pcap(TcpCapture<Box<dyn Write + Send>>),
    Pcapng(RoleCaptureWriter<Box<dyn Write + Send>>),
}

/// The interface of a pcapng FCIP capture.
pub const PCAPNG_INTERFACE: &str = "fcip";

impl Output {
    fn write(&mut self, g: &Segment) -> io::Result<()> {
        match self {
            Output::Pcap(c) => c.record_segment(g.ts, g.src, g.dst, g.seq, g.ack, &g.payload),
            Output::Pcapng(w) => {
                let (headers, at) = segment_headers(g.src, g.dst, g.seq, g.ack, g.payload.len())?;
                let mut packet = Vec::with_capacity(at + g.payload.len());
                packet.extend_from_slice(headers.get(..at).unwrap_or(&[]));
                packet.extend_from_slice(&g.payload);
                let direction = if g.sent {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                w.write_packet(PCAPNG_INTERFACE, g.ts, direction, &packet)
                    .map_err(io::Error::other)
            }
        }
    }

    fn flush(self) -> io::Result<()> {
        match self {
            Output::Pcap(c) => c.into_inner().flush(),
            Output::Pcapng(w) => w.into_inner().flush(),
        }
    }
}

/// The capture's thread: writes segments until told to finish or every handle is gone.
fn write_segments(capture: Output, mut rx: mpsc::UnboundedReceiver<Message>, shared: &SinkShared) {
    let mut capture = Some(capture);
    let mut failed: Option<io::Error> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Message::Segments(segments) => {
                let bytes: usize = segments.iter().map(|g| g.payload.len()).sum();
                let n = segments.len() as u64;
                let mut written = 0;
                if let Some(c) = capture.as_mut() {
                    for g in &segments {
                        if let Err(e) = c.write(g) {
                            tracing::warn!(error = %e, "FCIP capture failed: no more frames are recorded");
                            capture = None;
                            failed = Some(e);
                            break;
                        }
                        written += 1;
                    }
                }
                shared.recorded.fetch_add(written, Ordering::Relaxed);
                shared.dropped.fetch_add(n - written, Ordering::Relaxed);
                shared.queued.fetch_sub(bytes, Ordering::AcqRel);
            }
            Message::Finish(reply) => {
                let r = match (capture.take(), failed.take()) {
                    (Some(c), _) => c.flush(),
                    (None, Some(e)) => Err(e),
                    (None, None) => Ok(()),
                };
                let _ = reply.send(r);
            }
        }
    }
    if let Some(c) = capture {
        let _ = c.flush();
    }
}

/// The next sequence number each way of one flow.
#[derive(Debug)]
struct FlowSeq {
    /// Local to peer.
    sent: AtomicU32,
    /// Peer to local.
    received: AtomicU32,
}

/// One TCP connection's view of a [`CaptureSink`]: records what it sends and what it receives
/// with its real local and peer addresses. Never waits: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Flow {
    sink: CaptureSink,
    local: SocketAddr,
    peer: SocketAddr,
    seq: Arc<FlowSeq>,
}

impl Flow {
    /// Records frames sent to the peer, each its own segment.
    pub fn sent(&self, frames: impl IntoIterator<Item = Bytes>) {
        self.record(true, frames);
    }

    /// Records frames received from the peer, each its own segment.
    pub fn received(&self, frames: impl IntoIterator<Item = Bytes>) {
        self.record(false, frames);
    }

    fn record(&self, sent: bool, frames: impl IntoIterator<Item = Bytes>) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (src, dst, own, other) = if sent {
            (self.local, self.peer, &self.seq.sent, &self.seq.received)
        } else {
            (self.peer, self.local, &self.seq.received, &self.seq.sent)
        };
        let segments: Vec<Segment> = frames
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|payload| Segment {
                ts,
                sent,
                src,
                dst,
                // TCP sequence numbers count bytes modulo 2^32; each way has one writer.
                seq: own.fetch_add(payload.len() as u32, Ordering::Relaxed),
                ack: other.load(Ordering::Relaxed),
                payload,
            })
            .collect();
        self.sink.queue(segments);
    }
}

/// What tests need to read captures back.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{self, Write};
    use std::net::{IpAddr, SocketAddr};
    use std::sync::{Arc, Mutex};

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use pcap_file::pcap::PcapReader;

    /// A writer whose bytes stay readable after it is handed away.
    #[derive(Clone, Default)]
    pub(crate) struct SharedBuf(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SharedBuf {
        pub(crate) fn bytes(&self) -> Vec<u8> {
            self.0.lock().expect("buffer").clone()
        }
    }

    /// One TCP segment of a capture.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Segment {
        pub(crate) src: SocketAddr,
        pub(crate) dst: SocketAddr,
        pub(crate) seq: u32,
        pub(crate) ack: u32,
        pub(crate) payload: Vec<u8>,
    }

    /// Every record of a pcap (Ethernet) as a TCP segment.
    pub(crate) fn segments(pcap: &[u8]) -> Vec<Segment> {
        let mut reader = PcapReader::new(pcap).expect("pcap header");
        let mut out = Vec::new();
        while let Some(p) = reader.next_packet() {
            let p = p.expect("pcap record");
            let packet = SlicedPacket::from_ethernet(&p.data).expect("Ethernet/IP/TCP");
            let (src, dst): (IpAddr, IpAddr) = match packet.net.expect("IP") {
                NetSlice::Ipv4(ip) => (
                    ip.header().source_addr().into(),
                    ip.header().destination_addr().into(),
                ),
                NetSlice::Ipv6(ip) => (
                    ip.header().source_addr().into(),
                    ip.header().destination_addr().into(),
                ),
                NetSlice::Arp(_) => panic!("ARP"),
            };
            let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
                panic!("not TCP");
            };
            out.push(Segment {
                src: SocketAddr::new(src, tcp.source_port()),
                dst: SocketAddr::new(dst, tcp.destination_port()),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                payload: tcp.payload().to_vec(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use bytes::BytesMut;
    use fc_frames::els::{Echo, ElsRequest};
    use fc_frames::encap::{emit_encapsulated, Timestamp};
    use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};

    use super::testing::{segments, SharedBuf};
    use super::*;
    use crate::fsf::SpecialFrame;

    /// A pcapng capture holds the metadata, link type Ethernet, and each packet's direction:
    /// what the gateway sent outbound, what it received inbound, the payload after the
    /// Ethernet/IPv4/TCP headers.
    #[test]
    fn test_pcapng_capture_has_metadata_and_directions() {
        use fc_pcap::capture::read_pcapng_file;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fcip.pcapng");
        let metadata = Metadata {
            role: "gateway".into(),
            seed: 42,
            clock_origin_ns: 1,
            config: Default::default(),
            extra: Default::default(),
        };
        let sink = CaptureSink::create_pcapng(&path, &metadata).expect("create");
        let a: SocketAddr = "127.0.0.1:51234".parse().expect("address");
        let b: SocketAddr = "127.0.0.2:3225".parse().expect("address");
        let flow = sink.flow(a, b);
        flow.sent([Bytes::from_static(b"out")]);
        flow.received([Bytes::from_static(b"in!!")]);
        sink.finish().expect("finish");
        let c = read_pcapng_file(&path).expect("read");
        assert_eq!(c.metadata().expect("metadata").expect("good"), metadata);
        assert_eq!(c.interfaces.len(), 1);
        assert_eq!(c.interfaces[0].name, PCAPNG_INTERFACE);
        assert_eq!(c.interfaces[0].linktype, DataLink::ETHERNET);
        let got: Vec<(Option<Direction>, &[u8])> = c
            .packets
            .iter()
            .map(|p| (p.direction, &p.data[14 + 20 + 20..]))
            .collect();
        assert_eq!(
            got,
            [
                (Some(Direction::Outbound), &b"out"[..]),
                (Some(Direction::Inbound), &b"in!!"[..])
            ]
        );
        // Received from b: b's address first in the IPv4 header.
        assert_eq!(&c.packets[1].data[14 + 12..14 + 16], &[127, 0, 0, 2]);
    }

    /// The FSF exchange and an ELS ECHO, as a gateway on 127.0.0.1:51234 talking to its peer
    /// on 127.0.0.2:3225 would capture them, read back by tshark.
    #[test]
    fn test_tshark_reads_the_special_frame_and_the_tunnelled_els() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fcip.pcap");
        let a: SocketAddr = "127.0.0.1:51234".parse().expect("address");
        let b: SocketAddr = "127.0.0.2:3225".parse().expect("address");
        let fsf = SpecialFrame {
            changed: false,
            timestamp: Timestamp::ZERO,
            source_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0a),
            source_entity: [0, 0, 0, 0, 0, 0, 0, 0x2a],
            nonce: 0x0123_4567_89ab_cdef,
            usage_flags: 0x40,
            usage_code: 0x0102,
            destination_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0b),
            k_a_tov_ms: 6000,
        };
        let echo = ElsRequest::Echo(Echo::request(b"fcsan".to_vec()));
        let h = FrameHeaderRepr::request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            FcId::from_parts(2, 1, 0),
            FcId::from_parts(1, 1, 0),
            0x42,
        );
        let mut frame = BytesMut::new();
        emit_encapsulated(
            &FcFrame::single(h, echo.to_vec()),
            Timestamp {
                seconds: 0xE000_0000,
                fraction: 0,
            },
            &mut frame,
        );
        let file = std::fs::File::create(&path).expect("create");
        let mut cap = TcpCapture::new(file).expect("pcap header");
        let t = Duration::from_secs(1_700_000_000);
        cap.record(t, a, b, &fsf.emit()).expect("record");
        cap.record(t, b, a, &fsf.emit()).expect("record");
        cap.record(t, a, b, &frame).expect("record");
        drop(cap.into_inner());

        let out = Command::new("tshark")
            .arg("-r")
            .arg(&path)
            // tshark 4.0.17's LBMSRS heuristic claims these segments before FCIP's does:
            // decode port 3225 as FCIP, as Wireshark's "Decode As" would.
            .args(["-d", "tcp.port==3225,fcip"])
            .args(["-T", "fields", "-E", "separator=|"])
            .args(["-e", "fcip.srcwwn", "-e", "fcip.srcid", "-e", "fcip.nonce"])
            .args([
                "-e",
                "fcip.connflags",
                "-e",
                "fcip.conncode",
                "-e",
                "fc.d_id",
            ])
            .args([
                "-e",
                "tcp.seq",
                "-e",
                "_ws.malformed",
                "-e",
                "_ws.expert.severity",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tshark ({e}). This test needs Wireshark's tshark 4.x: install it \
                     with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                     tshark`"
                )
            });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
        assert_eq!(rows.len(), 3, "{text}");
        for fsf_row in &rows[..2] {
            assert_eq!(fsf_row[0], "10:00:00:00:c0:ff:ee:0a", "{text}");
            assert_eq!(fsf_row[1], "000000000000002a", "{text}");
            assert_eq!(fsf_row[2], "0123456789abcdef", "{text}");
            assert_eq!(fsf_row[3], "0x40", "{text}");
            assert_eq!(fsf_row[4], "0x0102", "{text}");
        }
        // The tunnelled FC frame (tshark 4.0.17 shows an ECHO's body as data, so check the FC
        // header it decoded).
        assert_eq!(rows[2][5], "02.01.00", "the tunnelled ELS ECHO: {text}");
        // Consistent sequence numbers: the frame follows the 76-byte FSF in its flow.
        assert_eq!(rows[2][6], "77", "{text}");
        for r in &rows {
            assert!(r[7].is_empty(), "malformed: {text}");
            assert!(
                r[8].split(',').all(|s| s != "8388608"),
                "error item: {text}"
            );
        }
    }

    fn fsf(nonce: u64) -> SpecialFrame {
        SpecialFrame {
            changed: false,
            timestamp: Timestamp::ZERO,
            source_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0a),
            source_entity: [0, 0, 0, 0, 0, 0, 0, 0x2a],
            nonce,
            usage_flags: 0,
            usage_code: 0,
            destination_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0b),
            k_a_tov_ms: 6000,
        }
    }

    /// IPv6 endpoints are written as IPv6 packets, and tshark reads them.
    #[test]
    fn test_tshark_reads_ipv6_endpoints() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fcip6.pcap");
        let a: SocketAddr = "[2001:db8::a]:51234".parse().expect("address");
        let b: SocketAddr = "[2001:db8::b]:3225".parse().expect("address");
        let sink = CaptureSink::create(&path).expect("create");
        let flow = sink.flow(a, b);
        flow.sent([Bytes::copy_from_slice(&fsf(7).emit())]);
        flow.received([Bytes::copy_from_slice(&fsf(7).emit())]);
        sink.finish().expect("flush");

        let out = Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-d", "tcp.port==3225,fcip"])
            .args(["-T", "fields", "-E", "separator=|"])
            .args(["-e", "ipv6.src", "-e", "ipv6.dst", "-e", "tcp.srcport"])
            .args(["-e", "fcip.nonce", "-e", "tcp.seq", "-e", "tcp.ack"])
            .args(["-e", "_ws.malformed", "-e", "_ws.expert.severity"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tshark ({e}). This test needs Wireshark's tshark 4.x: install \
                     it with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install \
                     -y tshark`"
                )
            });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
        assert_eq!(
            rows,
            vec![
                vec![
                    "2001:db8::a",
                    "2001:db8::b",
                    "51234",
                    "0000000000000007",
                    "1",
                    "1",
                    "",
                    ""
                ],
                vec![
                    "2001:db8::b",
                    "2001:db8::a",
                    "3225",
                    "0000000000000007",
                    "1",
                    "77",
                    "",
                    ""
                ],
            ],
            "{text}"
        );
    }

    /// A mixed pair (an IPv4 address and an IPv6 one) is written as IPv6, the IPv4 side
    /// mapped.
    #[test]
    fn test_mixed_families_become_ipv4_mapped_ipv6() {
        let buf = SharedBuf::default();
        let mut cap = TcpCapture::new(buf.clone()).expect("header");
        let a: SocketAddr = "192.0.2.1:4000".parse().expect("address");
        let b: SocketAddr = "[2001:db8::b]:3225".parse().expect("address");
        cap.record(Duration::ZERO, a, b, b"abcd").expect("record");
        let segs = segments(&buf.bytes());
        assert_eq!(segs.len(), 1);
        assert_eq!(
            segs[0].src,
            "[::ffff:192.0.2.1]:4000"
                .parse::<SocketAddr>()
                .expect("address")
        );
        assert_eq!(segs[0].dst, b);
    }

    /// Each flow counts its own bytes; a segment acknowledges what the other way has sent.
    #[test]
    fn test_sequence_and_acknowledgement_numbers() {
        let buf = SharedBuf::default();
        let mut cap = TcpCapture::new(buf.clone()).expect("header");
        let a: SocketAddr = "127.0.0.1:4000".parse().expect("address");
        let b: SocketAddr = "127.0.0.1:3225".parse().expect("address");
        let c: SocketAddr = "127.0.0.1:4001".parse().expect("address");
        cap.record(Duration::ZERO, a, b, &[1; 76]).expect("record");
        cap.record(Duration::ZERO, b, a, &[2; 76]).expect("record");
        cap.record(Duration::ZERO, a, b, &[3; 100]).expect("record");
        cap.record(Duration::ZERO, c, b, &[4; 8]).expect("record");
        cap.record(Duration::ZERO, a, b, &[5; 4]).expect("record");
        let got: Vec<(u32, u32)> = segments(&buf.bytes())
            .iter()
            .map(|s| (s.seq, s.ack))
            .collect();
        assert_eq!(
            got,
            vec![
                (ISN, ISN),
                (ISN, ISN + 76),
                (ISN + 76, ISN + 76),
                (ISN, ISN), // another connection: its own numbers
                (ISN + 176, ISN + 76),
            ]
        );
    }

    /// The sink buffers; `finish` writes everything out, and records after it are dropped.
    #[test]
    fn test_sink_finish_flushes_and_ends_the_capture() {
        let buf = SharedBuf::default();
        let sink = CaptureSink::new(io::BufWriter::new(buf.clone())).expect("header");
        let flow = sink.flow(
            "127.0.0.1:4000".parse().expect("address"),
            "127.0.0.1:3225".parse().expect("address"),
        );
        flow.sent([Bytes::from(vec![1u8; 76]), Bytes::from(vec![2u8; 64])]);
        flow.received([Bytes::from(vec![3u8; 76])]);
        assert!(buf.bytes().is_empty(), "buffered until finished");
        sink.finish().expect("flush");
        let segs = segments(&buf.bytes());
        let lens: Vec<usize> = segs.iter().map(|s| s.payload.len()).collect();
        assert_eq!(lens, vec![76, 64, 76]);
        assert_eq!(segs[2].src.port(), 3225);
        let len = buf.bytes().len();
        flow.sent([Bytes::from(vec![4u8; 64])]);
        sink.finish().expect("a second finish does nothing");
        assert_eq!(buf.bytes().len(), len);
    }

    /// A writer that takes nothing until it is let go.
    struct Stalled {
        out: SharedBuf,
        go: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    }

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let (lock, cv) = &*self.go;
            let mut go = lock.lock().expect("lock");
            while !*go {
                go = cv.wait(go).expect("wait");
            }
            self.out.write(b)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A capture that cannot keep up drops segments, counts them, and never holds up the
    /// connection that records; what it writes keeps consistent sequence numbers, with the
    /// dropped segments' gaps.
    #[test]
    fn test_a_capture_that_cannot_keep_up_drops_and_counts() {
        let out = SharedBuf::default();
        let go = Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new()));
        let writer = Stalled {
            out: out.clone(),
            go: go.clone(),
        };
        // Room for 10 segments of 1000 bytes.
        let sink = CaptureSink::with_queue(writer, 10_000).expect("header");
        *go.0.lock().expect("lock") = false;
        let flow = sink.flow(
            "127.0.0.1:4000".parse().expect("address"),
            "127.0.0.1:3225".parse().expect("address"),
        );
        let started = std::time::Instant::now();
        for i in 0..100u8 {
            flow.sent([Bytes::from(vec![i; 1000])]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "recording waited for the capture"
        );
        let stats = sink.stats();
        assert!(stats.dropped >= 89, "{stats:?}");
        *go.0.lock().expect("lock") = true;
        go.1.notify_all();
        sink.finish().expect("flush");
        let stats = sink.stats();
        assert_eq!(stats.recorded + stats.dropped, 100, "{stats:?}");
        let segs = segments(&out.bytes());
        assert_eq!(segs.len() as u64, stats.recorded);
        // Each written segment sits at its place in the flow: byte i * 1000 for segment i.
        for s in &segs {
            let i = s.payload[0];
            assert_eq!(s.seq, ISN + u32::from(i) * 1000, "segment {i}");
        }
    }
}
