//! `fcsan pcap inspect`: every FC frame of any capture, one line (or one JSON object) a frame.
//!
//! ```text
//!  file ──reader──▶ records ──net──▶ FC frame (link types 224, 225)
//!  (pcap, pcapng)          │
//!                          └──────▶ TCP segment ──tcp──▶ bytes in order, gaps ──stream──▶
//!                                   (Ethernet+VLAN, raw IP,      (per direction)   FCIP receive
//!                                    Linux SLL, SLL2)                              engine: frames,
//!                                                                                  FSFs, errors
//!  frames ──frame──▶ decoded line: addresses, R_CTL/TYPE, exchange IDs, ELS/BLS/CT/FCP/SW_ILS/
//!                    controller messages, "reply to #N"
//! ```
//!
//! [`Inspector`] takes the packets of a capture in order and gives [`Event`]s; [`inspect`]
//! reads a file through it. Each event is one line of text ([`Event`]'s `Display`) or one JSON
//! object (`serde_json::to_string`), with the same fields. At the end a [`Summary`].
//!
//! The FCIP stream is decoded by the gateway's own receive engine ([`fcip::Receiver`]): an
//! encapsulation error is reported and counted exactly as a gateway receiving those bytes
//! would count it, and its resynchronization is the engine's. FC frames are decoded by
//! [`fc_pcap::decode::Decoder`], the controllers' CT messages by the controller's codec.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use controller::wire::Key;
use fc_frames::FcFrame;
use serde::Serialize;

pub mod frame;
pub mod net;
pub mod reader;
pub mod stream;
pub mod tcp;

use frame::{FrameDecoder, FrameInfo};
use net::{Content, FlowKey};
use reader::{CaptureReader, Direction, Packet, ReadError};
use stream::{FcipStream, Out};
use tcp::{HalfStream, Origin, Piece};

/// One line of the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The record (for a TCP stream: the one that completed the frame), from 1.
    pub number: usize,
    /// Seconds since the first record.
    pub time: f64,
    /// The record's time stamp, seconds since the Unix epoch.
    pub epoch: f64,
    /// `in` or `out`, when the capture says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// The TCP flow, `src > dst`, for FCIP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// What an [`Event`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// An FC frame.
    Frame(FrameInfo),
    /// An FCIP Special Frame.
    Fsf {
        /// Its fields in one line.
        summary: String,
    },
    /// A record or encapsulated frame whose FC frame does not decode (bad CRC...).
    Malformed {
        /// Its bytes.
        bytes: usize,
        /// Why.
        error: String,
    },
    /// An FCIP encapsulation error (RFC 3821 §5.6.2), counted as the receive engine counts it.
    EncapsulationError {
        /// What was wrong.
        error: String,
    },
    /// The stream is back in sync.
    Resync {
        /// Bytes skipped.
        skipped: u64,
        /// Why they were.
        reason: String,
    },
    /// Bytes of a TCP stream the capture does not hold.
    Gap {
        /// How many.
        bytes: u64,
        /// Bytes before it that made no whole frame, dropped.
        dropped: usize,
    },
    /// A stream ended with bytes that make no whole frame.
    Unfinished {
        /// How many.
        bytes: usize,
    },
}

/// What a whole capture held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records read.
    pub records: usize,
    /// FC frames.
    pub frames: u64,
    /// FCIP Special Frames.
    pub fsfs: u64,
    /// Frames that failed to decode (bad FC CRC).
    pub malformed: u64,
    /// FCIP encapsulation errors.
    pub encapsulation_errors: u64,
    /// Resynchronizations.
    pub resyncs: u64,
    /// Gaps in TCP streams.
    pub gaps: u64,
    /// Bytes in those gaps.
    pub bytes_not_captured: u64,
    /// TCP bytes seen more than once (retransmissions, overlaps), dropped.
    pub repeated_bytes: u64,
    /// Exchanges whose replies came with no request in the capture.
    pub unmatched_replies: u64,
    /// FCIP flow directions (TCP connection, one way).
    pub fcip_flows: u64,
    /// TCP flow directions with data that is not FCIP.
    pub other_tcp_flows: u64,
    /// Records neither FC nor TCP.
    pub other_records: u64,
    /// Records the snapshot length cut short.
    pub cut_records: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{} records: {}, {}, {}, {}, {} ({} bytes not captured), {}; {}, {} repeated TCP bytes, {} FCIP flows, {} other TCP flows, {} other records",
            self.records,
            s(self.frames, "frame", "frames"),
            s(self.fsfs, "FSF", "FSFs"),
            s(self.encapsulation_errors, "encapsulation error", "encapsulation errors"),
            s(self.resyncs, "resync", "resyncs"),
            s(self.gaps, "gap", "gaps"),
            self.bytes_not_captured,
            s(self.unmatched_replies, "unmatched reply", "unmatched replies"),
            s(self.malformed, "malformed frame", "malformed frames"),
            self.repeated_bytes,
            self.fcip_flows,
            self.other_tcp_flows,
            self.other_records,
        )?;
        if self.cut_records > 0 {
            write!(
                f,
                "; {} records cut short by the snapshot length",
                self.cut_records
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>5} {:>11.6}", self.number, self.time)?;
        if let Some(d) = self.direction {
            f.write_str(if d == "in" { " <-" } else { " ->" })?;
        }
        if let Some(flow) = &self.flow {
            write!(f, " [{flow}]")?;
        }
        match &self.what {
            What::Frame(i) => {
                write!(
                    f,
                    " {} -> {} {} ox={:04x} rx={:04x} {}",
                    i.s_id, i.d_id, i.routing, i.ox_id, i.rx_id, i.summary
                )?;
                if let Some(n) = i.reply_to {
                    write!(f, " (reply to #{n})")?;
                }
                Ok(())
            }
            What::Fsf { summary } => write!(f, " FCIP Special Frame: {summary}"),
            What::Malformed { bytes, error } => {
                write!(f, " malformed frame ({bytes} bytes): {error}")
            }
            What::EncapsulationError { error } => write!(f, " encapsulation error: {error}"),
            What::Resync { skipped, reason } => {
                write!(f, " resync: {skipped} bytes skipped {reason}")
            }
            What::Gap { bytes, dropped } => {
                write!(f, " gap: {bytes} bytes not captured")?;
                if *dropped > 0 {
                    write!(f, "; {dropped} bytes before it dropped (no whole frame)")?;
                }
                Ok(())
            }
            What::Unfinished { bytes } => {
                write!(
                    f,
                    " stream ends with {bytes} bytes that make no whole frame"
                )
            }
        }
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
struct Half {
    tcp: HalfStream,
    fcip: Option<FcipStream>,
}

/// Reads packets in capture order and says what they hold.
#[derive(Debug, Default)]
pub struct Inspector {
    frames: FrameDecoder,
    flows: BTreeMap<FlowKey, Half>,
    start: Option<Duration>,
    last: Option<Origin>,
    summary: Summary,
    /// Repeated bytes of flows closed and replaced.
    repeated_closed: u64,
}

impl Inspector {
    /// An inspector; with `key` (the installation's shared key) the controllers' MACs are
    /// checked, else their messages are decoded unchecked.
    pub fn new(key: Option<Key>) -> Inspector {
        Inspector {
            frames: FrameDecoder::new(key),
            ..Inspector::default()
        }
    }

    fn time(&self, ts: Duration) -> f64 {
        ts.saturating_sub(self.start.unwrap_or_default())
            .as_secs_f64()
    }

    /// The events of packet `p`, appended to `events`.
    pub fn packet(&mut self, p: &Packet, events: &mut Vec<Event>) {
        self.start.get_or_insert(p.ts);
        self.summary.records += 1;
        if p.data.len() < p.orig_len as usize {
            self.summary.cut_records += 1;
        }
        let at = Origin {
            number: p.number,
            ts: p.ts,
        };
        self.last = Some(at);
        match net::content(p) {
            Content::Fc { delimited, bytes } => {
                let data = Bytes::copy_from_slice(bytes);
                let frame = if delimited {
                    FcFrame::parse_delimited(data)
                } else {
                    fc_pcap::capture::undelimited(data)
                };
                let what = match frame {
                    Ok(f) => self.frame(p.number, &f, None),
                    Err(e) => {
                        self.summary.malformed += 1;
                        What::Malformed {
                            bytes: bytes.len(),
                            error: e.to_string(),
                        }
                    }
                };
                events.push(Event {
                    number: p.number,
                    time: self.time(p.ts),
                    epoch: p.ts.as_secs_f64(),
                    direction: p.direction.map(Direction::name),
                    flow: None,
                    what,
                });
            }
            Content::Tcp(seg, dir) => {
                let direction = p.direction.or(dir);
                let key = seg.flow;
                let mut half = self.flows.remove(&key).unwrap_or_default();
                if seg.syn && half.tcp.is_new_connection(seg.seq) {
                    // The same addresses and ports again: a new connection.
                    self.close(key, &mut half, at, direction, events);
                    self.retire(std::mem::take(&mut half));
                }
                if half.fcip.as_ref().is_some_and(FcipStream::not_fcip) && !seg.rst {
                    // Not FCIP: its bytes are not reassembled, nor kept.
                    self.flows.insert(key, half);
                    return;
                }
                let mut pieces = Vec::new();
                half.tcp.segment(
                    at,
                    seg.seq,
                    seg.syn,
                    seg.fin,
                    seg.payload,
                    seg.missing,
                    &mut pieces,
                );
                self.pieces(key, &mut half, pieces, direction, events);
                if seg.rst {
                    // A reset ends both directions.
                    self.close(key, &mut half, at, direction, events);
                    let back = key.reverse();
                    if let Some(mut other) = self.flows.remove(&back) {
                        self.close(back, &mut other, at, direction, events);
                        self.flows.insert(back, other);
                    }
                }
                self.flows.insert(key, half);
                // What this segment acknowledges, the other direction's capture should hold.
                let back = key.reverse();
                let other = seg
                    .ack
                    .and_then(|ack| Some((ack, self.flows.remove(&back)?)));
                if let Some((ack, mut other)) = other {
                    let mut pieces = Vec::new();
                    other.tcp.acked(at, ack, &mut pieces);
                    self.pieces(back, &mut other, pieces, direction, events);
                    self.flows.insert(back, other);
                }
            }
            Content::Other => self.summary.other_records += 1,
        }
    }

    /// Ends flow `key`'s stream: holes become gaps, what waited comes out, the FCIP side ends.
    fn close(
        &mut self,
        key: FlowKey,
        half: &mut Half,
        at: Origin,
        direction: Option<Direction>,
        events: &mut Vec<Event>,
    ) {
        let mut pieces = Vec::new();
        half.tcp.close(at, &mut pieces);
        pieces.push(Piece::End(at));
        self.pieces(key, half, pieces, direction, events);
    }

    /// Hands the reassembled pieces of flow `key` to its FCIP side.
    fn pieces(
        &mut self,
        key: FlowKey,
        half: &mut Half,
        pieces: Vec<Piece>,
        direction: Option<Direction>,
        events: &mut Vec<Event>,
    ) {
        let mut outs = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Data(o, bytes) => {
                    let from_syn = half.tcp.from_syn();
                    half.fcip
                        .get_or_insert_with(|| FcipStream::new(from_syn))
                        .data(o, bytes, &mut outs);
                }
                Piece::Gap(o, n) => {
                    if let Some(f) = &mut half.fcip {
                        f.gap(o, n, &mut outs);
                    }
                }
                Piece::End(o) => {
                    if let Some(f) = &mut half.fcip {
                        f.end(o, &mut outs);
                    }
                }
            }
        }
        let flow = Some(key.to_string());
        for out in outs {
            let (o, what) = match out {
                Out::Frame(o, f) => (o, self.frame(o.number, &f, Some((key.src, key.dst)))),
                Out::Fsf(o, fsf) => {
                    self.summary.fsfs += 1;
                    let summary = format!(
                        "from fabric {} entity {} to fabric {}, nonce {:016x}, K_A_TOV {} ms{}",
                        fsf.source_fabric,
                        fsf.source_entity
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                        fsf.destination_fabric,
                        fsf.nonce,
                        fsf.k_a_tov_ms,
                        if fsf.changed { ", changed (echo)" } else { "" }
                    );
                    (o, What::Fsf { summary })
                }
                Out::Malformed(o, bytes, e) => {
                    self.summary.malformed += 1;
                    (
                        o,
                        What::Malformed {
                            bytes,
                            error: e.to_string(),
                        },
                    )
                }
                Out::EncapError(o, error) => {
                    self.summary.encapsulation_errors += 1;
                    (o, What::EncapsulationError { error })
                }
                Out::Resync(o, skipped, reason) => {
                    self.summary.resyncs += 1;
                    (
                        o,
                        What::Resync {
                            skipped,
                            reason: reason.to_string(),
                        },
                    )
                }
                Out::Gap(o, bytes, dropped) => {
                    self.summary.gaps += 1;
                    self.summary.bytes_not_captured += bytes;
                    (o, What::Gap { bytes, dropped })
                }
                Out::Unfinished(o, bytes) => (o, What::Unfinished { bytes }),
            };
            events.push(Event {
                number: o.number,
                time: self.time(o.ts),
                epoch: o.ts.as_secs_f64(),
                direction: direction.map(Direction::name),
                flow: flow.clone(),
                what,
            });
        }
    }

    /// Adds a flow's counts to the summary.
    fn retire(&mut self, half: Half) {
        self.repeated_closed += half.tcp.repeated;
        match half.fcip {
            Some(f) if f.is_fcip => self.summary.fcip_flows += 1,
            Some(f) if f.not_fcip() => self.summary.other_tcp_flows += 1,
            _ => {}
        }
    }

    fn frame(
        &mut self,
        number: usize,
        f: &FcFrame,
        flow: Option<(SocketAddr, SocketAddr)>,
    ) -> What {
        self.summary.frames += 1;
        What::Frame(self.frames.frame(number, f, flow))
    }

    /// The end of the capture: every stream is closed; the events that gives, and the summary.
    pub fn finish(mut self, events: &mut Vec<Event>) -> Summary {
        let at = self.last.unwrap_or(Origin {
            number: 0,
            ts: Duration::ZERO,
        });
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            if let Some(mut half) = self.flows.remove(&key) {
                self.close(key, &mut half, at, None, events);
                self.retire(half);
            }
        }
        self.summary.repeated_bytes = self.repeated_closed;
        self.summary.unmatched_replies = self.frames.unmatched;
        self.summary
    }
}

/// Why a capture could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The file could not be read as a capture.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ReadError,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Output(io::Error),
}

/// Inspects the capture at `path`: each event goes to `emit` as it is known, then the summary
/// is returned. A file that is not a capture, is cut short or holds a link type not read is
/// an error naming it; the events before a bad record have been emitted.
pub fn inspect(
    path: &Path,
    key: Option<Key>,
    emit: &mut dyn FnMut(&Event) -> io::Result<()>,
) -> Result<Summary, InspectError> {
    let in_file = |source| InspectError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| in_file(ReadError::Io(e)))?;
    let mut reader = CaptureReader::new(BufReader::new(file)).map_err(in_file)?;
    let mut inspector = Inspector::new(key);
    let mut events = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.map_err(in_file)?;
        inspector.packet(&p, &mut events);
        for e in events.drain(..) {
            emit(&e).map_err(InspectError::Output)?;
        }
    }
    let summary = inspector.finish(&mut events);
    for e in events.drain(..) {
        emit(&e).map_err(InspectError::Output)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use etherparse::PacketBuilder;
    use fc_frames::encap::{emit_encapsulated, Timestamp};
    use fc_frames::Wwn;
    use fcip::SpecialFrame;
    use proptest::prelude::*;

    use super::*;

    /// A raw-IPv4 TCP packet record from 10.0.0.1:3225 to 10.0.0.2:5000 (or back).
    fn tcp(number: usize, back: bool, seq: u32, flags: &str, payload: &[u8]) -> Packet {
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let (src, dst, sp, dp) = if back {
            (b, a, 5000, 3225)
        } else {
            (a, b, 3225, 5000)
        };
        let mut t = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 1000);
        if flags.contains('S') {
            t = t.syn();
        }
        if flags.contains('R') {
            t = t.rst();
        }
        let mut data = Vec::new();
        t.write(&mut data, payload).expect("build");
        Packet {
            number,
            ts: Duration::from_millis(number as u64),
            link: reader::link::RAW,
            direction: None,
            orig_len: data.len() as u32,
            data,
        }
    }

    fn stream(n: usize) -> (Vec<FcFrame>, Vec<u8>) {
        let frames: Vec<FcFrame> = fc_pcap::catalogue::conversation()
            .into_iter()
            .take(n)
            .collect();
        let mut b = BytesMut::new();
        for f in &frames {
            emit_encapsulated(f, Timestamp::ZERO, &mut b);
        }
        (frames, b.to_vec())
    }

    fn run(packets: &[Packet]) -> (Vec<Event>, Summary) {
        let mut i = Inspector::new(None);
        let mut events = Vec::new();
        for p in packets {
            i.packet(p, &mut events);
        }
        let s = i.finish(&mut events);
        (events, s)
    }

    #[test]
    fn test_capture_begun_mid_connection_finds_the_first_header() {
        let (frames, bytes) = stream(4);
        let cut = 30; // Inside frame 0.
        let (events, s) = run(&[tcp(1, false, 7, "", &bytes[cut..])]);
        assert_eq!(s.frames, 3);
        assert_eq!(s.resyncs, 1);
        assert_eq!(s.encapsulation_errors, 0);
        let What::Resync { skipped, reason } = &events[0].what else {
            panic!("{events:?}")
        };
        assert_eq!(
            *skipped as usize,
            fc_frames::encap::encapsulate_len(&frames[0]) - cut
        );
        assert!(reason.contains("mid-connection"), "{reason}");
    }

    #[test]
    fn test_fsf_rst_and_a_new_connection_on_the_same_ports() {
        let fsf = SpecialFrame {
            changed: false,
            timestamp: Timestamp::ZERO,
            source_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee01),
            source_entity: [1, 2, 3, 4, 5, 6, 7, 8],
            nonce: 0x1122_3344_5566_7788,
            usage_flags: 0,
            usage_code: 0,
            destination_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee02),
            k_a_tov_ms: 6000,
        }
        .emit();
        let (frames, bytes) = stream(2);
        // The first frame and 10 bytes of the second.
        let half = fc_frames::encap::encapsulate_len(&frames[0]) + 10;
        let packets = [
            tcp(1, false, 100, "S", b""),
            tcp(2, false, 101, "", &fsf),
            tcp(3, false, 101 + fsf.len() as u32, "", &bytes[..half]),
            // Reset with half a frame buffered.
            tcp(4, true, 9, "R", b""),
            // The same ports again: a new connection, its stream from its own SYN.
            tcp(5, false, 5000, "S", b""),
            tcp(6, false, 5001, "", &bytes),
        ];
        let (events, s) = run(&packets);
        assert_eq!((s.fsfs, s.frames), (1, 3), "{events:?}");
        assert!(
            matches!(&events[0].what, What::Fsf { summary } if summary.contains("K_A_TOV 6000 ms"))
        );
        assert!(events
            .iter()
            .any(|e| e.number == 4 && e.what == What::Unfinished { bytes: 10 }));
        assert_eq!(s.fcip_flows, 2);
        let numbers: Vec<usize> = events
            .iter()
            .filter(|e| matches!(e.what, What::Frame(_)))
            .map(|e| e.number)
            .collect();
        assert_eq!(numbers, [3, 6, 6]);
    }

    #[test]
    fn test_fc_records_224_and_225_with_direction() {
        let f = fc_pcap::catalogue::conversation().remove(0);
        let mut delimited = vec![0; f.delimited_len()];
        f.emit_delimited(&mut delimited);
        let parts = f.encode_parts();
        let mut bare = parts.header.to_vec();
        bare.extend_from_slice(parts.payload);
        let record = |number, link, direction, data: &Vec<u8>| Packet {
            number,
            ts: Duration::from_secs(10 + number as u64),
            link,
            direction,
            orig_len: data.len() as u32,
            data: data.clone(),
        };
        let (events, s) = run(&[
            record(
                1,
                reader::link::FC_2_WITH_FRAME_DELIMS,
                Some(Direction::Inbound),
                &delimited,
            ),
            record(2, reader::link::FC_2, None, &bare),
            record(3, reader::link::FC_2_WITH_FRAME_DELIMS, None, &bare),
        ]);
        assert_eq!((s.frames, s.malformed), (2, 1));
        let (What::Frame(a), What::Frame(b)) = (&events[0].what, &events[1].what) else {
            panic!("{events:?}")
        };
        assert_eq!(a.summary, b.summary);
        let line = events[0].to_string();
        assert!(
            line.starts_with("    1    0.000000 <- 000000 -> fffffe "),
            "{line}"
        );
        assert!(events[1]
            .to_string()
            .starts_with("    2    1.000000 000000"));
        assert!(matches!(events[2].what, What::Malformed { .. }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn prop_arbitrary_records_never_panic(
            records in proptest::collection::vec(
                (0usize..8, proptest::collection::vec(any::<u8>(), 0..300)),
                0..20,
            ),
        ) {
            let packets: Vec<Packet> = records
                .into_iter()
                .enumerate()
                .map(|(i, (link, data))| Packet {
                    number: i + 1,
                    ts: Duration::ZERO,
                    link: reader::link::ALL[link],
                    direction: None,
                    orig_len: data.len() as u32 + (i as u32 % 3) * 100,
                    data,
                })
                .collect();
            let _ = run(&packets);
        }

        #[test]
        fn prop_arbitrary_segments_never_panic(
            segs in proptest::collection::vec(
                (any::<bool>(), any::<u32>(), 0usize..4, proptest::collection::vec(any::<u8>(), 0..200)),
                0..30,
            ),
            fcip_first in any::<bool>(),
        ) {
            let mut packets = Vec::new();
            if fcip_first {
                let (_, bytes) = stream(3);
                packets.push(tcp(1, false, 0, "", &bytes));
            }
            for (i, (back, seq, f, data)) in segs.into_iter().enumerate() {
                let flags = ["", "S", "R", "SR"][f];
                let seq = if back { seq } else { seq % 4096 };
                packets.push(tcp(i + 2, back, seq, flags, &data));
            }
            let _ = run(&packets);
        }
    }
}
