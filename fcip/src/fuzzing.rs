//! Fuzzing oracles, shared by the cargo-fuzz targets in `fuzz/` (`fsf`, `engine`) and by the
//! test that replays their checked-in corpora (`fcip/tests/fuzz_corpus.rs`). Each function
//! takes arbitrary bytes and panics on a finding.
//!
//! [`engine`] reads its input as a receiver configuration, a list of read sizes and a byte
//! stream ([`engine_input`] writes one):
//!
//! ```text
//! byte 0      flags: 0x01 OnError::Close (else Resync); 0x02 max_buffered MIN_BUFFERED (else
//!             the default); 0x04 a transit limit of 1 s, with `now` in the next 8 bytes
//!             (else no limit, and `now` is Timestamp::ZERO)
//! [8 bytes]   now: SNTP seconds and fraction, big-endian (flag 0x04 only)
//! byte        n, the number of read sizes
//! 2n bytes    read sizes, u16 big-endian, used in turn (0 reads 1 byte)
//! the rest    the byte stream
//! ```
//!
//! Every input is a valid one: a field the input ends in reads as the bytes there are (none
//! read as zero), and the stream is whatever follows the fields.

use std::time::Duration;

use bytes::{BufMut, Bytes};
use fc_frames::encap::{
    encapsulable, encapsulate_len, parse_delimiters, parse_encapsulated, EncapHeader,
    EncapHeaderRepr, PFlags, Protocol, Timestamp, HEADER_LEN, VERSION_1,
};
use fc_frames::frame::Frame;

use crate::engine::{
    OnError, Output, Receiver, ReceiverConfig, ReceiverCounters, SyncError, MAX_ENCAPSULATED_LEN,
    MIN_BUFFERED,
};
use crate::fsf::{SpecialFrame, FSF_LEN};
use crate::time::sntp_diff;

/// Special Frames: parse, emit, reparse. The value must survive exactly, and the emitted bytes
/// must equal the received ones everywhere but where [`SpecialFrame::parse`] ignores what it
/// reads: pFlags bits other than SF and Ch (and their complement), CRCV and the CRC field, and
/// the reserved byte of word 14. A Special Frame must also come out of a [`Receiver`] as such.
pub fn fsf(data: &[u8]) {
    let Ok(v) = SpecialFrame::parse(data) else {
        return;
    };
    let b = v.emit();
    assert_eq!(SpecialFrame::parse(&b), Ok(v), "FSF: own encoding {b:02x?}");
    let crcv = data.get(12).is_some_and(|&x| x & 0x04 != 0);
    for (i, (&sent, &got)) in b.iter().zip(data).enumerate() {
        let ignored = match i {
            8 | 10 => 0x7e,
            12 | 14 => 0x04,
            24..=27 if crcv => 0xff,
            57 => 0xff,
            _ => 0,
        };
        assert!(
            (sent ^ got) & !ignored == 0,
            "FSF: byte {i} emitted {sent:#04x}, received {got:#04x}"
        );
    }
    assert_eq!(v.echo_matches(&v), Ok(()), "FSF: not its own echo");
    let mut rx = Receiver::new(ReceiverConfig::default());
    assert_eq!(rx.push(data), data.len());
    assert_eq!(rx.poll(Timestamp::ZERO), Some(Output::Special(v)));
    assert_eq!(rx.poll(Timestamp::ZERO), None);
}

/// The transit limit flag 0x04 sets.
const TRANSIT_LIMIT: Duration = Duration::from_secs(1);

/// An input for [`engine`]: `flags` (see the module docs), `now` (with flag 0x04), read
/// sizes and the stream.
pub fn engine_input(flags: u8, now: Timestamp, reads: &[u16], stream: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    if flags & 0x04 != 0 {
        v.put_u32(now.seconds);
        v.put_u32(now.fraction);
    }
    let reads = reads.get(..reads.len().min(255)).unwrap_or_default();
    v.push(reads.len() as u8);
    for r in reads {
        v.put_u16(*r);
    }
    v.extend_from_slice(stream);
    v
}

/// An [`engine`] input, decoded.
#[derive(Clone)]
struct EngineInput<'a> {
    config: ReceiverConfig,
    now: Timestamp,
    reads: Vec<usize>,
    stream: &'a [u8],
}

impl EngineInput<'_> {
    fn decode(data: &[u8]) -> EngineInput<'_> {
        let mut rest = data;
        let mut take = |n: usize| {
            let (a, b) = rest.split_at(n.min(rest.len()));
            rest = b;
            a
        };
        let be = |b: &[u8]| b.iter().fold(0u32, |acc, &x| acc << 8 | u32::from(x));
        let flags = take(1).first().copied().unwrap_or(0);
        let mut config = ReceiverConfig::default();
        if flags & 0x01 != 0 {
            config.on_error = OnError::Close;
        }
        if flags & 0x02 != 0 {
            config.max_buffered = MIN_BUFFERED;
        }
        let mut now = Timestamp::ZERO;
        if flags & 0x04 != 0 {
            config.transit_limit = Some(TRANSIT_LIMIT);
            now = Timestamp {
                seconds: be(take(4)),
                fraction: be(take(4)),
            };
        }
        let n = take(1).first().copied().unwrap_or(0);
        let reads = (0..n)
            .map(|_| (be(take(2)) as usize).max(1))
            .collect::<Vec<_>>();
        EngineInput {
            config,
            now,
            reads,
            stream: rest,
        }
    }
}

/// What one run of a receiver over the whole stream gave.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    outputs: Vec<Output>,
    /// The time stamp of each output that has one (frames, malformed frames).
    stamps: Vec<Option<Timestamp>>,
    counters: ReceiverCounters,
    buffered: usize,
    closed: bool,
}

/// How bytes reach the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Push,
    ReadBuf,
}

/// The FCIP receive engine ([`Receiver`]) fed a byte stream in reads of arbitrary sizes.
///
/// - Everything it delivers is right where it says it is in the stream: every frame is there
///   encapsulated and passes the encapsulation decoders' checks (header, FCIP version 1,
///   Frame Length, SOF and EOF words, FC CRC), every Special Frame parses, every malformed
///   frame fails with the FC error reported, every loss of sync starts at bytes that fail the
///   check reported; nothing overlaps, nothing is out of order.
/// - Its counters agree with what it delivered, and with the bytes it was given.
/// - It never buffers more than its `max_buffered`, nor allocates more; after `poll` returned
///   `None` it always takes more bytes.
/// - The same stream gives the same outputs and counters in one piece, a byte at a time, in
///   the input's read sizes, and read through [`Receiver::read_buf`] instead of pushed.
/// - With a transit limit it gives what it gives without one, less the frames (and malformed
///   frames) stamped too long before `now`, which it counts as transit discards.
pub fn engine(data: &[u8]) {
    let input = EngineInput::decode(data);
    let whole = [input.stream.len().max(1)];
    let reads = if input.reads.is_empty() {
        &whole[..]
    } else {
        &input.reads[..]
    };
    let one_piece = run(&input, &whole, Via::Push);
    let byte_by_byte = run(&input, &[1], Via::Push);
    assert_eq!(
        byte_by_byte, one_piece,
        "a byte at a time differs from one piece"
    );
    let pushed = run(&input, reads, Via::Push);
    assert_eq!(
        pushed, one_piece,
        "reads of {reads:?} differ from one piece"
    );
    let read_buf = run(&input, reads, Via::ReadBuf);
    assert_eq!(read_buf, one_piece, "read_buf differs from push");
    if input.config.transit_limit.is_some() {
        let mut unlimited = input.clone();
        unlimited.config.transit_limit = None;
        let all = run(&unlimited, &whole, Via::Push);
        let (mut kept, mut discarded) = (Vec::new(), 0);
        for (out, stamp) in all.outputs.iter().zip(&all.stamps) {
            if stamp.is_some_and(|t| too_old(&input, t)) {
                discarded += 1;
            } else {
                kept.push(out.clone());
            }
        }
        assert_eq!(
            one_piece.outputs, kept,
            "transit limit: not the old frames dropped"
        );
        let (c, a) = (one_piece.counters, all.counters);
        assert_eq!(c.transit_discards, discarded, "transit discards");
        assert_eq!(
            (c.bytes_skipped, c.encapsulation_errors, c.special_frames),
            (a.bytes_skipped, a.encapsulation_errors, a.special_frames),
            "transit limit changed more than the old frames"
        );
    }
}

/// Feeds the whole stream in reads of `reads` sizes (in turn), polling after each, and checks
/// every output and the receiver's bounds as it goes.
fn run(input: &EngineInput<'_>, reads: &[usize], via: Via) -> Run {
    let mut rx = Receiver::new(input.config);
    let max = rx.config().max_buffered;
    let mut check = Checker {
        input,
        taken: 0,
        consumed: 0,
        frame_bytes: 0,
        other_bytes: 0,
        outputs: Vec::new(),
        stamps: Vec::new(),
        hunting_from: None,
    };
    let mut fed = 0;
    for &size in reads.iter().cycle() {
        let Some(mut read) = input.stream.get(fed..).filter(|r| !r.is_empty()) else {
            break;
        };
        read = read.get(..size).unwrap_or(read);
        fed += read.len();
        while !read.is_empty() {
            let took = match via {
                Via::Push => rx.push(read),
                Via::ReadBuf => {
                    let mut buf = rx.read_buf();
                    let n = read.len().min(buf.remaining_mut());
                    buf.put_slice(read.get(..n).unwrap_or_default());
                    if rx.is_closed() {
                        read.len()
                    } else {
                        n
                    }
                }
            };
            // After `poll` returned `None` there is always room (the receiver never stalls).
            assert!(took > 0, "took nothing with {} buffered", rx.buffered());
            read = read.get(took..).unwrap_or_default();
            check.taken += took;
            assert!(
                rx.buffered() <= max,
                "{} buffered, max {max}",
                rx.buffered()
            );
            assert!(
                rx.capacity() <= max,
                "capacity {}, max {max}",
                rx.capacity()
            );
            while let Some(out) = rx.poll(input.now) {
                check.output(&rx, out);
            }
            if !rx.is_closed() {
                assert!(
                    rx.room() >= max - MAX_ENCAPSULATED_LEN,
                    "room {} after poll, {} buffered",
                    rx.room(),
                    rx.buffered()
                );
            }
        }
    }
    check.finish(&rx);
    check.counters(&rx);
    Run {
        outputs: check.outputs,
        stamps: check.stamps,
        counters: *rx.counters(),
        buffered: rx.buffered(),
        closed: rx.is_closed(),
    }
}

/// Checks a run's outputs against the stream.
struct Checker<'a, 'b> {
    input: &'b EngineInput<'a>,
    /// Stream bytes the receiver took.
    taken: usize,
    /// Stream bytes the receiver took and no longer buffers: the end of the last output.
    consumed: usize,
    /// Bytes of delivered frames, encapsulated.
    frame_bytes: usize,
    /// Bytes of Special Frames and malformed frames.
    other_bytes: usize,
    outputs: Vec<Output>,
    stamps: Vec<Option<Timestamp>>,
    /// Resynchronizing since this offset (after a loss of sync, with [`OnError::Resync`]).
    hunting_from: Option<usize>,
}

impl Checker<'_, '_> {
    /// Checks `out`, which `rx` just returned.
    fn output(&mut self, rx: &Receiver, out: Output) {
        let stream = self.input.stream;
        let taken = self.taken;
        // Where the receiver stands in the stream now: what it took less what it buffers.
        let end = taken - rx.buffered();
        assert!(end >= self.consumed, "went back in the stream");
        let bytes_before = |len: usize| {
            let start = end.checked_sub(len).expect("output longer than the stream");
            assert!(start >= self.consumed, "overlaps the output before");
            stream.get(start..end).expect("inside the stream")
        };
        let (stamp, len) = match &out {
            Output::Frame { frame, timestamp } => {
                let len = encapsulate_len(frame);
                let raw = bytes_before(len);
                let parsed = parse_encapsulated(Bytes::copy_from_slice(raw));
                let Ok((h, Ok(f))) = parsed else {
                    panic!("delivered {frame} from {raw:02x?}, which parses as {parsed:?}")
                };
                assert_eq!(&f, frame, "delivered a frame other than the one there");
                assert_eq!((h.protocol, h.version), (Protocol::FCIP, VERSION_1));
                assert!(!h.flags.contains(PFlags::SPECIAL_FRAME));
                assert_eq!(h.timestamp, *timestamp, "{frame}: time stamp");
                assert_eq!(parse_delimiters(raw), Ok((frame.sof, frame.eof)));
                let fc = raw.get(HEADER_LEN + 4..len - 4).unwrap_or_default();
                let crc = Frame::new_checked(fc).map(|f| f.check_crc());
                assert!(crc == Ok(Ok(())), "{frame}: {crc:?}");
                assert!(encapsulable(frame), "{frame}: not encapsulable");
                assert!(
                    !too_old(self.input, *timestamp),
                    "{frame}: older than the limit"
                );
                self.frame_bytes += len;
                (Some(*timestamp), Some(len))
            }
            Output::Special(fsf) => {
                let raw = bytes_before(FSF_LEN);
                assert_eq!(SpecialFrame::parse(raw).as_ref(), Ok(fsf), "Special Frame");
                self.other_bytes += FSF_LEN;
                (None, Some(FSF_LEN))
            }
            Output::Malformed { bytes, error } => {
                let raw = bytes_before(*bytes);
                let parsed = parse_encapsulated(Bytes::copy_from_slice(raw));
                let Ok((h, Err(e))) = parsed else {
                    panic!("reported {error} for {raw:02x?}, which parses as {parsed:?}")
                };
                assert_eq!(&e, error, "malformed frame: error");
                assert_eq!((h.protocol, h.version), (Protocol::FCIP, VERSION_1));
                assert!(
                    !too_old(self.input, h.timestamp),
                    "malformed, older than the limit"
                );
                self.other_bytes += bytes;
                (Some(h.timestamp), Some(*bytes))
            }
            Output::SyncLost { error } => {
                if self.input.config.on_error == OnError::Resync {
                    // The receiver skipped the first byte of the header that failed.
                    let at = end.checked_sub(1).expect("sync lost before any byte");
                    let rest = stream.get(at..taken).unwrap_or_default();
                    assert_eq!(
                        sync_error(rest).as_ref(),
                        Some(error),
                        "sync lost at {at}: {rest:02x?}"
                    );
                    self.hunting_from = Some(end);
                }
                (None, None)
            }
        };
        if let (Some(len), Some(from)) = (len, self.hunting_from) {
            self.hunting_from = None;
            self.resynchronized(from, end - len);
        }
        self.consumed = end;
        self.outputs.push(out);
        self.stamps.push(stamp);
    }

    /// The receiver skipped `from..to` resynchronizing, and went on at `to`: no frame in
    /// between could be trusted, and the one at `to` can (the resynchronization rules of
    /// [`crate::engine`]). With a transit limit frames may have been discarded in between;
    /// then this is not checked.
    fn resynchronized(&self, from: usize, to: usize) {
        if self.input.config.transit_limit.is_some() {
            return;
        }
        let stream = self.input.stream;
        let at = |p: usize| trustworthy(stream.get(p..).unwrap_or_default());
        for p in from..to {
            assert_eq!(at(p), Some(false), "skipped {p} resynchronizing");
        }
        assert_eq!(at(to), Some(true), "resynchronized at {to}");
    }

    /// At the end of the stream: when still resynchronizing, nothing it skipped could be
    /// trusted, and what it keeps is too short to tell.
    fn finish(&self, rx: &Receiver) {
        let Some(from) = self.hunting_from else {
            return;
        };
        let end = self.taken - rx.buffered();
        if self.input.config.transit_limit.is_none() {
            let stream = self.input.stream;
            for p in from..end {
                let verdict = trustworthy(stream.get(p..).unwrap_or_default());
                assert_eq!(verdict, Some(false), "skipped {p} resynchronizing");
            }
            if rx.buffered() > 0 {
                let verdict = trustworthy(stream.get(end..).unwrap_or_default());
                assert_eq!(verdict, None, "kept {end}.. resynchronizing");
            }
        }
    }

    /// The counters agree with the outputs and with the bytes taken.
    fn counters(&self, rx: &Receiver) {
        let c = *rx.counters();
        let count = |f: fn(&Output) -> bool| self.outputs.iter().filter(|o| f(o)).count() as u64;
        assert_eq!(c.frames, count(|o| matches!(o, Output::Frame { .. })));
        assert_eq!(c.special_frames, count(|o| matches!(o, Output::Special(_))));
        assert_eq!(
            c.crc_errors,
            count(|o| matches!(o, Output::Malformed { .. }))
        );
        let lost = count(|o| matches!(o, Output::SyncLost { .. }));
        assert_eq!(c.encapsulation_errors, lost);
        assert_eq!(c.bytes, self.frame_bytes as u64);
        if self.input.config.transit_limit.is_none() {
            assert_eq!(c.transit_discards, 0);
        }
        match self.input.config.on_error {
            OnError::Resync => {
                assert_eq!(c.fc_sync_losses, lost);
                assert!(!rx.is_closed());
                // Every byte taken was delivered, skipped, discarded as too old, or is still
                // buffered; a discarded frame is 64 to 2176 bytes.
                let accounted =
                    self.frame_bytes + self.other_bytes + c.bytes_skipped as usize + rx.buffered();
                let discarded = self.taken.checked_sub(accounted);
                let discards = c.transit_discards as usize;
                assert!(
                    discarded.is_some_and(|d| {
                        (discards * 64..=discards * MAX_ENCAPSULATED_LEN).contains(&d)
                    }),
                    "took {} bytes, accounted for {accounted} and {discards} discards: {c:?}",
                    self.taken
                );
            }
            OnError::Close => {
                assert_eq!(c.fc_sync_losses, 0);
                assert_eq!(c.bytes_skipped, 0);
                assert!(lost <= 1);
                assert_eq!(rx.is_closed(), lost == 1);
            }
        }
    }
}

/// True when the input's transit limit makes a frame stamped `stamp` too old at its `now`
/// (RFC 3821 §5.6.2: a zero stamp, or a zero `now`, means no clock).
fn too_old(input: &EngineInput<'_>, stamp: Timestamp) -> bool {
    let Some(limit) = input.config.transit_limit else {
        return false;
    };
    stamp != Timestamp::ZERO
        && input.now != Timestamp::ZERO
        && sntp_diff(input.now, stamp).is_some_and(|age| age > limit)
}

/// Whether a frame can be trusted to start at the start of `b` while resynchronizing, or
/// `None` when `b` is too short to tell: it starts with FCIP's words 0 and 1, its header
/// validates, and it is a valid Special Frame or its SOF and EOF words are valid and its FC
/// CRC checks out.
fn trustworthy(b: &[u8]) -> Option<bool> {
    const SYNC: [u8; 8] = [0x01, 0x01, 0xFE, 0xFE, 0x01, 0x01, 0xFE, 0xFE];
    if b.get(..SYNC.len())? != SYNC {
        return Some(false);
    }
    let Ok(h) = EncapHeaderRepr::parse(&EncapHeader::new_checked(b).ok()?) else {
        return Some(false);
    };
    let whole = b.get(..h.total_len())?;
    if h.flags.contains(PFlags::SPECIAL_FRAME) {
        return Some(SpecialFrame::parse(whole).is_ok());
    }
    let fc = whole
        .get(HEADER_LEN + 4..whole.len() - 4)
        .unwrap_or_default();
    Some(
        parse_delimiters(whole).is_ok()
            && Frame::new_checked(fc).is_ok_and(|f| f.check_crc().is_ok()),
    )
}

/// The encapsulation error a receiver in sync reports for a frame at the start of `b`, if
/// `b` holds enough to tell and it is not a valid frame: the checks of
/// [`crate::engine`], made again with the decoders of `fc_frames::encap` and [`crate::fsf`].
fn sync_error(b: &[u8]) -> Option<SyncError> {
    let view = EncapHeader::new_checked(b).ok()?;
    let h = match EncapHeaderRepr::parse(&view) {
        Ok(h) => h,
        Err(e) => return Some(e.into()),
    };
    if (h.protocol, h.version) != (Protocol::FCIP, VERSION_1) {
        return Some(SyncError::NotFcip {
            protocol: h.protocol,
            version: h.version,
        });
    }
    let whole = b.get(..h.total_len())?;
    if h.flags.contains(PFlags::SPECIAL_FRAME) {
        return SpecialFrame::parse(whole).err().map(SyncError::from);
    }
    parse_delimiters(whole).err().map(SyncError::from)
}
