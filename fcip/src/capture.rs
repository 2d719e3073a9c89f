//! Captures of FCIP traffic as Wireshark expects them: every FCIP frame sent or received is its
//! own Ethernet/IPv4/TCP packet with the real endpoint addresses and ports, and sequence and
//! acknowledgement numbers that are consistent per flow, so that Wireshark's TCP and FCIP
//! dissectors follow the stream (PROTOCOLS.md: one FCIP frame per TCP segment record). Headers
//! are built with `etherparse`, files written with `pcap-file` (link type Ethernet).
//!
//! tshark/Wireshark 4.0.17 lets its LBMSRS heuristic claim such segments before the FCIP one
//! does, even on port 3225: open these captures with `-d tcp.port==3225,fcip` (Decode As).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// A first sequence number per flow (what a SYN would have carried).
const ISN: u32 = 0x1000_0000;
/// The window advertised.
const WINDOW: u16 = 0xFFFF;

/// Writes FCIP frames as TCP segments to a pcap stream.
pub struct TcpCapture<W: Write> {
    writer: PcapWriter<W>,
    /// Next sequence number of each direction, by (source, destination).
    next_seq: HashMap<(SocketAddr, SocketAddr), u32>,
    buf: Vec<u8>,
}

fn v4(a: SocketAddr) -> [u8; 4] {
    match a.ip() {
        IpAddr::V4(ip) => ip.octets(),
        // IPv6 endpoints are recorded with the IPv4 loopback: the capture stays readable.
        IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::LOCALHOST).octets(),
    }
}

fn mac(a: SocketAddr) -> [u8; 6] {
    let ip = v4(a);
    [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]]
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
        let writer = PcapWriter::with_header(writer, header).map_err(io::Error::other)?;
        Ok(TcpCapture {
            writer,
            next_seq: HashMap::new(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Records `payload` (one encapsulated FCIP frame, or a Special Frame) as a TCP segment
    /// from `src` to `dst`, stamped `ts` after the epoch.
    pub fn record(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let seq = *self.next_seq.entry((src, dst)).or_insert(ISN);
        let ack = *self.next_seq.entry((dst, src)).or_insert(ISN);
        let builder = PacketBuilder::ethernet2(mac(src), mac(dst))
            .ipv4(v4(src), v4(dst), 64)
            .tcp(src.port(), dst.port(), seq, WINDOW)
            .psh()
            .ack(ack);
        self.buf.clear();
        builder
            .write(&mut self.buf, payload)
            .map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(next) = self.next_seq.get_mut(&(src, dst)) {
            *next = seq.wrapping_add(payload.len() as u32);
        }
        let len = self.buf.len() as u32;
        self.writer
            .write_packet(&PcapPacket::new(ts, len, &self.buf))
            .map_err(io::Error::other)?;
        Ok(())
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> W {
        self.writer.into_writer()
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use bytes::BytesMut;
    use fc_frames::els::{Echo, ElsRequest};
    use fc_frames::encap::{emit_encapsulated, Timestamp};
    use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};

    use super::*;
    use crate::fsf::SpecialFrame;

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
}
