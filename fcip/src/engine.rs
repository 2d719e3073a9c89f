//! The receive side of the FCIP Data Engine for one TCP connection (RFC 3821 §5.6, §5.6.2),
//! without I/O.
//!
//! ```text
//!   TCP bytes ──push──▶ Receiver ──poll(now)──▶ Output::Frame    FC frame + time stamp
//!                       (buffer, framing,       Output::Special  FCIP Special Frame
//!                        resynchronization,     Output::Malformed framed right, FC CRC bad
//!                        transit check)         Output::SyncLost  encapsulation error
//! ```
//!
//! **Framing.** The stream is a sequence of encapsulated frames (RFC 3643 §3) one after the
//! other. Each header is validated with [`EncapHeaderRepr::parse`], must say Protocol FCIP
//! version 1, and its Frame Length must land on a valid EOF word with a valid SOF word after
//! the header ([`parse_delimiters`]) before the frame is cut out. Frames come out as
//! zero-copy [`bytes::Bytes`] slices of the receive buffer.
//!
//! **Encapsulation errors** (RFC 3821 §5.6.2, from memory: "a frame that fails the checks is
//! not forwarded to the FC side; the receiver either closes the TCP connection or skips
//! forward to the next valid header"). A header or delimiter that fails is counted in
//! [`ReceiverCounters::encapsulation_errors`] and reported once as [`Output::SyncLost`]; its
//! bytes never reach the FC side. With [`OnError::Close`] the receiver then stops
//! ([`Receiver::is_closed`]). With [`OnError::Resync`] it scans forward for the next offset
//! that holds `01 01 FE FE 01 01 FE FE` (FCIP's word 0 and its copy in word 1) and where,
//! as PROTOCOLS.md lists, the header validates, the SOF and EOF words are valid where the
//! Frame Length says, and the FC CRC checks out. It does not also look for a valid header
//! after the frame (one more of the tests RFC 3821 §5.6.2 offers, from memory): those bytes
//! may not have arrived yet, and judging with them when they happen to be there made the
//! frames and counters depend on how the stream was cut into reads; waiting for them would
//! hold the frame until the peer sends again. The skipped bytes are counted in
//! [`ReceiverCounters::bytes_skipped`], the loss once in [`ReceiverCounters::fc_sync_losses`].
//!
//! **Special Frames.** A frame with pFlags SF is parsed as a [`SpecialFrame`] and handed up
//! as [`Output::Special`] wherever it appears; whether one is welcome after connection setup
//! is the link state machine's decision, not the framing's. An SF that fails
//! [`SpecialFrame::parse`] is an encapsulation error.
//!
//! **FC errors.** A frame framed right whose FC part fails to decode (bad FC CRC, bad fill
//! count) leaves the stream in sync: it is counted in [`ReceiverCounters::crc_errors`] and
//! reported as [`Output::Malformed`], never as a frame.
//!
//! **Time stamps** (RFC 3821 §5.6.1, the transit-time check of its §5.6.2 from memory). With
//! [`ReceiverConfig::transit_limit`] set, a frame whose stamp and the caller's `now` are both
//! non-zero and whose age `now − stamp` exceeds the limit is discarded and counted in
//! [`ReceiverCounters::transit_discards`]. A zero stamp means the sender has no clock and is
//! never discarded. The stamp is not covered by any CRC (CRCV is clear in FCIP), so a
//! corrupted stamp can only cause a wrong discard, not a wrong frame.
//!
//! **Bounds.** [`Receiver::push`] and [`Receiver::read_buf`] take at most [`Receiver::room`]
//! bytes, so the buffer never
//! holds more than [`ReceiverConfig::max_buffered`] (raised to [`MIN_BUFFERED`], two full-size
//! frames, so that a frame and the header after it always fit). Frame Length is 10 bits and
//! checked against 16..=544 words before anything is waited for: no input makes it allocate
//! more.
//!
//! **Bytes in.** A driver reads the socket straight into the receive buffer
//! ([`Receiver::read_buf`], what `fcip::connection` does), or hands over a copy
//! ([`Receiver::push`], for tests and other sources). Either way delivered frames share the
//! receive buffer's memory: no frame is copied after the read.

use std::time::Duration;

use bytes::buf::Limit;
use bytes::{Buf, BufMut, BytesMut};
use fc_frames::encap::{
    parse_delimiters, EncapError, EncapHeader, EncapHeaderRepr, PFlags, Protocol, Timestamp,
    HEADER_LEN, MAX_FRAME_WORDS, VERSION_1,
};
use fc_frames::frame::Frame;
use fc_frames::{Eof, FcFrame, FrameError, Sof};

use crate::fsf::{FsfError, SpecialFrame};
use crate::time::sntp_diff;

/// Longest encapsulated frame, in bytes.
pub const MAX_ENCAPSULATED_LEN: usize = MAX_FRAME_WORDS as usize * 4;
/// The least [`ReceiverConfig::max_buffered`] can be: two full-size encapsulated frames.
pub const MIN_BUFFERED: usize = 2 * MAX_ENCAPSULATED_LEN;
/// The default [`ReceiverConfig::max_buffered`]: 256 KiB.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024;
/// Space [`Receiver::read_buf`] makes sure of before a read.
const MIN_READ: usize = 64 * 1024;

/// FCIP's word 0 and word 1 (a copy of word 0): Protocol 1, Version 1, complements. A header
/// can only start where these eight bytes are.
const SYNC_PATTERN: [u8; 8] = [0x01, 0x01, 0xFE, 0xFE, 0x01, 0x01, 0xFE, 0xFE];
/// The SOF word's length, and the EOF word's.
const DELIMITER: usize = fc_frames::encap::DELIMITER_WORD_LEN;

/// What the receiver does after an encapsulation error (RFC 3821 §5.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// Skip forward to the next valid header and go on.
    #[default]
    Resync,
    /// Stop: the driver closes the TCP connection.
    Close,
}

/// How a [`Receiver`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiverConfig {
    /// What to do after an encapsulation error.
    pub on_error: OnError,
    /// Discard frames older than this (by their time stamp); `None` keeps every frame.
    pub transit_limit: Option<Duration>,
    /// Most bytes buffered; raised to [`MIN_BUFFERED`] if smaller.
    pub max_buffered: usize,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            on_error: OnError::Resync,
            transit_limit: None,
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }
}

/// The receive side of one FCIP TCP connection. See the module docs.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    buf: BytesMut,
    hunting: bool,
    closed: bool,
    counters: ReceiverCounters,
}

/// Something the receiver decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An FC frame, CRC checked, and the time stamp it was encapsulated with.
    Frame {
        /// The frame; its payload shares the receive buffer's memory.
        frame: FcFrame,
        /// The encapsulation header's time stamp ([`Timestamp::ZERO`]: no clock).
        timestamp: Timestamp,
    },
    /// An FCIP Special Frame.
    Special(SpecialFrame),
    /// An encapsulated frame framed right whose FC frame failed to decode: counted, dropped.
    Malformed {
        /// Bytes of the encapsulated frame, header through EOF word.
        bytes: usize,
        /// Why the FC frame failed.
        error: FrameError,
    },
    /// An encapsulation error: the stream lost FC synchronization here. The receiver is now
    /// resynchronizing, or closed with [`OnError::Close`].
    SyncLost {
        /// What was wrong with the header.
        error: SyncError,
    },
}

/// An encapsulation error: why a header could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The encapsulation header or a delimiter word failed.
    #[error(transparent)]
    Encap(#[from] EncapError),
    /// A well-formed header of another protocol or version.
    #[error("{protocol} version {version} where FCIP version 1 was expected")]
    NotFcip {
        /// Protocol#.
        protocol: Protocol,
        /// Version.
        version: u8,
    },
    /// pFlags SF set, but not a valid Special Frame.
    #[error(transparent)]
    Special(#[from] FsfError),
}

/// What a [`Receiver`] has seen (the RFC 4404 MIB's per-connection counters, in part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReceiverCounters {
    /// FC frames delivered as [`Output::Frame`].
    pub frames: u64,
    /// Bytes of those frames, encapsulated (header through EOF word).
    pub bytes: u64,
    /// Special Frames delivered.
    pub special_frames: u64,
    /// Headers (or delimiters) that failed while the stream was in sync.
    pub encapsulation_errors: u64,
    /// Times the receiver had to resynchronize ([`OnError::Resync`] only).
    pub fc_sync_losses: u64,
    /// Bytes skipped while resynchronizing.
    pub bytes_skipped: u64,
    /// Frames framed right whose FC frame failed to decode (nearly always a bad FC CRC).
    pub crc_errors: u64,
    /// Frames discarded for exceeding the transit limit.
    pub transit_discards: u64,
}

/// The result of checking the bytes at the start of a slice as an encapsulated frame.
enum Check {
    /// More bytes are needed to decide.
    Incomplete,
    /// Not a valid frame.
    Bad(SyncError),
    /// An FC frame of `total` bytes with valid header and delimiters (FC CRC not yet checked).
    Frame {
        total: usize,
        sof: Sof,
        eof: Eof,
        timestamp: Timestamp,
    },
    /// A valid Special Frame of [`crate::fsf::FSF_LEN`] bytes.
    Special(SpecialFrame),
}

/// What one decoding step did.
enum Step {
    NeedMore,
    Out(Output),
    Again,
}

impl Receiver {
    /// A receiver at the start of a connection's byte stream.
    pub fn new(mut config: ReceiverConfig) -> Receiver {
        config.max_buffered = config.max_buffered.max(MIN_BUFFERED);
        Receiver {
            config,
            buf: BytesMut::with_capacity(config.max_buffered.min(DEFAULT_MAX_BUFFERED)),
            hunting: false,
            closed: false,
            counters: ReceiverCounters::default(),
        }
    }

    /// The configuration, `max_buffered` as raised.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Appends received bytes; returns how many it took, at most [`Self::room`]. Bytes it did
    /// not take must be pushed again after [`Self::poll`] has returned `None`. Once closed it
    /// takes (and drops) everything.
    #[must_use = "bytes beyond room() are not taken"]
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        if self.closed {
            return bytes.len();
        }
        let (taken, _) = bytes.split_at(bytes.len().min(self.room()));
        self.make_room(taken.len());
        self.buf.extend_from_slice(taken);
        taken.len()
    }

    /// Makes room for `additional` more bytes: in the buffer's own allocation when no frame
    /// handed out shares it any more, else in a new buffer of the usual size, to which only
    /// the undecoded bytes (less than a frame, after `poll` returned `None`) move.
    /// `BytesMut::reserve` may instead grow the allocation by doubling, copying all of it, or
    /// start buffers of a smaller size of its own.
    fn make_room(&mut self, additional: usize) {
        if self.buf.capacity() - self.buf.len() >= additional || self.buf.try_reclaim(additional) {
            return;
        }
        let size = self.config.max_buffered.min(DEFAULT_MAX_BUFFERED);
        let mut fresh = BytesMut::with_capacity(size.max(self.buf.len() + additional));
        fresh.extend_from_slice(&self.buf);
        self.buf = fresh;
    }

    /// Where to read received bytes straight into, instead of [`Self::push`]ing a copy of
    /// them: room for [`Self::room`] more bytes after those buffered. Read into it with
    /// something that appends (tokio's `read_buf`), then [`Self::poll`]. A closed receiver
    /// offers no room.
    pub fn read_buf(&mut self) -> Limit<&mut BytesMut> {
        let room = if self.closed { 0 } else { self.room() };
        // Space for a good read, not all of `room`: a new buffer only when less than that is
        // left (frames still queued downstream keep the old one alive).
        self.make_room(room.min(MIN_READ));
        let spare = self.buf.capacity() - self.buf.len();
        (&mut self.buf).limit(room.min(spare))
    }

    /// The last `n` bytes buffered (what a read into [`Self::read_buf`] just appended), for a
    /// capture.
    pub fn tail(&self, n: usize) -> &[u8] {
        self.buf
            .get(self.buf.len().saturating_sub(n)..)
            .unwrap_or(&[])
    }

    /// Bytes [`Self::push`] takes now. After `poll` has returned `None` this is at least
    /// `max_buffered - MAX_ENCAPSULATED_LEN`.
    pub fn room(&self) -> usize {
        self.config.max_buffered.saturating_sub(self.buf.len())
    }

    /// Bytes buffered, not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the receive buffer holds without allocating, counted from the first byte not yet
    /// decoded: never more than [`ReceiverConfig::max_buffered`].
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next thing decoded from the bytes pushed so far, or `None` when more are needed
    /// (or the receiver is closed). `now` is the current SNTP time for the transit check;
    /// [`Timestamp::ZERO`] when there is no synchronized clock.
    #[must_use]
    pub fn poll(&mut self, now: Timestamp) -> Option<Output> {
        loop {
            if self.closed {
                return None;
            }
            let step = if self.hunting {
                self.hunt()
            } else {
                self.decode(now)
            };
            match step {
                Step::NeedMore => return None,
                Step::Out(out) => return Some(out),
                Step::Again => {}
            }
        }
    }

    /// What the receiver has seen.
    pub fn counters(&self) -> &ReceiverCounters {
        &self.counters
    }

    /// True after an encapsulation error with [`OnError::Close`].
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// In sync: decodes the frame at the start of the buffer.
    fn decode(&mut self, now: Timestamp) -> Step {
        match check(&self.buf) {
            Check::Incomplete => Step::NeedMore,
            Check::Bad(error) => {
                self.counters.encapsulation_errors += 1;
                match self.config.on_error {
                    OnError::Close => {
                        self.closed = true;
                        self.buf = BytesMut::new();
                    }
                    OnError::Resync => {
                        self.counters.fc_sync_losses += 1;
                        self.hunting = true;
                        // The bad header's first byte is not a header start.
                        self.skip(1);
                    }
                }
                Step::Out(Output::SyncLost { error })
            }
            Check::Special(fsf) => {
                self.buf.advance(crate::fsf::FSF_LEN);
                self.counters.special_frames += 1;
                Step::Out(Output::Special(fsf))
            }
            Check::Frame {
                total,
                sof,
                eof,
                timestamp,
            } => {
                let mut fc = self.buf.split_to(total);
                if self.too_old(timestamp, now) {
                    self.counters.transit_discards += 1;
                    return Step::Again;
                }
                // `check` found the SOF and EOF words inside `total`, so both cuts fit.
                fc.advance(HEADER_LEN + DELIMITER);
                fc.truncate(total.saturating_sub(HEADER_LEN + 2 * DELIMITER));
                match FcFrame::parse(sof, fc.freeze(), eof) {
                    Ok(frame) => {
                        self.counters.frames += 1;
                        self.counters.bytes += total as u64;
                        Step::Out(Output::Frame { frame, timestamp })
                    }
                    Err(error) => {
                        self.counters.crc_errors += 1;
                        Step::Out(Output::Malformed {
                            bytes: total,
                            error,
                        })
                    }
                }
            }
        }
    }

    /// Out of sync: looks for the next offset where a trustworthy frame starts, skips to it
    /// and goes back in sync; or skips what can't hold one and waits for more bytes.
    fn hunt(&mut self) -> Step {
        let mut at = 0;
        loop {
            let rest = self.buf.get(at..).unwrap_or_default();
            let Some(found) = find_sync_pattern(rest) else {
                // A pattern may still start in the last 7 bytes.
                let keep = self.buf.len().min(SYNC_PATTERN.len() - 1);
                self.skip(self.buf.len() - keep);
                return Step::NeedMore;
            };
            at += found;
            match candidate(self.buf.get(at..).unwrap_or_default()) {
                Candidate::Incomplete => {
                    self.skip(at);
                    return Step::NeedMore;
                }
                Candidate::Bad => at += 1,
                Candidate::Good => {
                    self.skip(at);
                    self.hunting = false;
                    return Step::Again;
                }
            }
        }
    }

    /// Drops `n` buffered bytes as skipped.
    fn skip(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.counters.bytes_skipped += n as u64;
    }

    /// True when the transit limit says a frame stamped `stamp` is too old at `now`.
    fn too_old(&self, stamp: Timestamp, now: Timestamp) -> bool {
        let Some(limit) = self.config.transit_limit else {
            return false;
        };
        if stamp == Timestamp::ZERO || now == Timestamp::ZERO {
            return false;
        }
        sntp_diff(now, stamp).is_some_and(|age| age > limit)
    }
}

/// Checks the bytes at the start of `b` as one encapsulated frame.
fn check(b: &[u8]) -> Check {
    let Ok(view) = EncapHeader::new_checked(b) else {
        return Check::Incomplete;
    };
    let header = match EncapHeaderRepr::parse(&view) {
        Ok(h) => h,
        Err(e) => return Check::Bad(e.into()),
    };
    if header.protocol != Protocol::FCIP || header.version != VERSION_1 {
        return Check::Bad(SyncError::NotFcip {
            protocol: header.protocol,
            version: header.version,
        });
    }
    // Frame Length is 16..=544 words here: waiting for it is bounded.
    let total = header.total_len();
    let Some(whole) = b.get(..total) else {
        return Check::Incomplete;
    };
    if header.flags.contains(PFlags::SPECIAL_FRAME) {
        return match SpecialFrame::parse(whole) {
            Ok(fsf) => Check::Special(fsf),
            Err(e) => Check::Bad(e.into()),
        };
    }
    match parse_delimiters(whole) {
        Ok((sof, eof)) => Check::Frame {
            total,
            sof,
            eof,
            timestamp: header.timestamp,
        },
        Err(e) => Check::Bad(e.into()),
    }
}

/// The verdict on a resynchronization candidate.
enum Candidate {
    Incomplete,
    Bad,
    Good,
}

/// Whether a frame can be trusted to start at the start of `b`: header, delimiters, FC CRC.
/// Only the frame's own bytes count, so the verdict is the same however they arrived.
fn candidate(b: &[u8]) -> Candidate {
    match check(b) {
        Check::Incomplete => Candidate::Incomplete,
        Check::Bad(_) => Candidate::Bad,
        Check::Special(_) => Candidate::Good,
        Check::Frame { total, .. } => {
            let fc = b
                .get(HEADER_LEN + DELIMITER..total.saturating_sub(DELIMITER))
                .unwrap_or_default();
            if Frame::new_checked(fc).is_ok_and(|f| f.check_crc().is_ok()) {
                Candidate::Good
            } else {
                Candidate::Bad
            }
        }
    }
}

/// Offset of the first `01 01 FE FE 01 01 FE FE` in `b`.
fn find_sync_pattern(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let rest = b.get(from..)?;
        let i = rest.iter().position(|&x| x == SYNC_PATTERN[0])?;
        let at = from + i;
        if b.get(at..at + SYNC_PATTERN.len())? == SYNC_PATTERN {
            return Some(at);
        }
        from = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::encap::emit_encapsulated;
    use fc_frames::{FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
    use proptest::prelude::*;

    use super::*;

    /// A deterministic xorshift generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Frame `i`: its index in the payload and OX_ID, so every frame is distinct.
    fn frame(i: usize, payload_len: usize) -> FcFrame {
        let mut h = FrameHeaderRepr::request(
            RCtl::SOLICITED_DATA,
            FcType::FCP,
            FcId::from_parts(1, 2, 0),
            FcId::from_parts(1, 1, 0),
            i as u16,
        );
        h.parameter = i as u32;
        let mut payload: Vec<u8> = (i as u32).to_be_bytes().to_vec();
        payload.extend((0..payload_len.saturating_sub(4)).map(|k| (k * 7 + i) as u8));
        payload.truncate(payload_len);
        let mut f = FcFrame::single(h, payload);
        f.header.f_ctl = f.header.f_ctl.with_fill_bytes(f.fill_len());
        f
    }

    const SIZES: [usize; 8] = [0, 1, 5, 64, 100, 511, 2048, 2112];

    /// `n` frames of mixed sizes and their encapsulated stream.
    fn stream(n: usize, rng: &mut Rng, ts: Timestamp) -> (Vec<FcFrame>, Vec<u8>) {
        let frames: Vec<FcFrame> = (0..n)
            .map(|i| frame(i, SIZES[rng.below(SIZES.len())].max(4)))
            .collect();
        let mut buf = BytesMut::new();
        for f in &frames {
            emit_encapsulated(f, ts, &mut buf);
        }
        (frames, buf.to_vec())
    }

    fn fsf() -> SpecialFrame {
        SpecialFrame {
            changed: false,
            timestamp: Timestamp::ZERO,
            source_fabric: Wwn::from_u64(0x1000_0005_1e00_0001),
            source_entity: [1, 2, 3, 4, 5, 6, 7, 8],
            nonce: 0x1122_3344_5566_7788,
            usage_flags: 0,
            usage_code: 0,
            destination_fabric: Wwn::from_u64(0x1000_0005_1e00_0002),
            k_a_tov_ms: 5000,
        }
    }

    /// Feeds `bytes` in chunks whose sizes `chunk` picks, polling after each push.
    fn feed(rx: &mut Receiver, bytes: &[u8], mut chunk: impl FnMut() -> usize) -> Vec<Output> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let want = chunk().clamp(1, rest.len());
            let took = rx.push(&rest[..want]);
            rest = &rest[took..];
            assert!(rx.buffered() <= rx.config().max_buffered);
            while let Some(o) = rx.poll(Timestamp::ZERO) {
                out.push(o);
            }
        }
        out
    }

    fn frames_of(out: &[Output]) -> Vec<FcFrame> {
        out.iter()
            .filter_map(|o| match o {
                Output::Frame { frame, .. } => Some(frame.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every delivered frame is one of the originals, byte-exact, in order, none twice.
    fn assert_originals(delivered: &[FcFrame], originals: &[FcFrame]) {
        let mut last = None;
        for f in delivered {
            let i = f.header.parameter as usize;
            assert_eq!(Some(f), originals.get(i), "delivered a frame not sent");
            assert_eq!(f.to_vec(), originals[i].to_vec());
            assert!(last < Some(i), "out of order or twice: {i} after {last:?}");
            last = Some(i);
        }
    }

    #[test]
    fn test_one_frame() {
        let f = frame(1, 5);
        let ts = Timestamp {
            seconds: 0xe8b0_1234,
            fraction: 7,
        };
        let mut b = BytesMut::new();
        emit_encapsulated(&f, ts, &mut b);
        let mut rx = Receiver::new(ReceiverConfig::default());
        assert_eq!(rx.push(&b), b.len());
        assert_eq!(
            rx.poll(Timestamp::ZERO),
            Some(Output::Frame {
                frame: f,
                timestamp: ts
            })
        );
        assert_eq!(rx.poll(Timestamp::ZERO), None);
        assert_eq!(rx.counters().frames, 1);
        assert_eq!(rx.counters().bytes, b.len() as u64);
        assert_eq!(rx.buffered(), 0);
    }

    #[test]
    fn test_every_split_point() {
        let mut b = BytesMut::from(&fsf().emit()[..]);
        let frames = [frame(0, 0), frame(1, 5), frame(2, 100)];
        for f in &frames {
            emit_encapsulated(f, Timestamp::ZERO, &mut b);
        }
        for split in 0..=b.len() {
            let mut rx = Receiver::new(ReceiverConfig::default());
            let mut out = Vec::new();
            for part in [&b[..split], &b[split..]] {
                assert_eq!(rx.push(part), part.len());
                while let Some(o) = rx.poll(Timestamp::ZERO) {
                    out.push(o);
                }
            }
            assert_eq!(out.first(), Some(&Output::Special(fsf())), "split {split}");
            assert_eq!(frames_of(&out), frames, "split {split}");
            assert_eq!(out.len(), 4);
            assert_eq!(rx.counters().bytes_skipped, 0);
        }
    }

    #[test]
    fn test_10k_frames_random_chunks() {
        let mut rng = Rng(0x5eed);
        let (frames, bytes) = stream(10_000, &mut rng, Timestamp::ZERO);
        let mut rx = Receiver::new(ReceiverConfig::default());
        let mut chunk_rng = Rng(42);
        let out = feed(&mut rx, &bytes, || chunk_rng.below(70_000) + 1);
        assert_eq!(frames_of(&out), frames);
        assert_eq!(out.len(), frames.len());
        let c = rx.counters();
        assert_eq!(c.frames, 10_000);
        assert_eq!(c.bytes, bytes.len() as u64);
        assert_eq!(
            (c.encapsulation_errors, c.bytes_skipped, c.crc_errors),
            (0, 0, 0)
        );
    }

    #[test]
    fn test_frames_share_the_receive_buffer() {
        let (frames, bytes) = stream(2, &mut Rng(1), Timestamp::ZERO);
        let mut rx = Receiver::new(ReceiverConfig::default());
        assert_eq!(rx.push(&bytes), bytes.len());
        let Some(Output::Frame { frame: a, .. }) = rx.poll(Timestamp::ZERO) else {
            panic!("no frame")
        };
        let Some(Output::Frame { frame: b, .. }) = rx.poll(Timestamp::ZERO) else {
            panic!("no frame")
        };
        assert_eq!(
            [a.clone(), b.clone()],
            [frames[0].clone(), frames[1].clone()]
        );
        // The second payload lies after the first in the same allocation.
        let a_end = a.payload.as_ptr() as usize + a.payload.len();
        let b_start = b.payload.as_ptr() as usize;
        assert!(b_start > a_end && b_start - a_end < 128, "payloads copied");
    }

    #[test]
    fn test_buffer_stays_one_allocation_size() {
        // Frames dropped at once (the buffer is reclaimed in place) and frames kept (a new
        // buffer takes over): either way every frame comes out right and the buffer never
        // grows past its size.
        for keep in [false, true] {
            let (frames, bytes) = stream(3000, &mut Rng(7), Timestamp::ZERO);
            let mut rx = Receiver::new(ReceiverConfig::default());
            let mut kept = Vec::new();
            let mut n = 0;
            for chunk in bytes.chunks(60_000) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    rest = &rest[rx.push(rest)..];
                    assert!(rx.buf.capacity() <= DEFAULT_MAX_BUFFERED, "buffer grew");
                    while let Some(o) = rx.poll(Timestamp::ZERO) {
                        let Output::Frame { frame, .. } = o else {
                            panic!("{o:?}")
                        };
                        assert_eq!(frame, frames[n]);
                        n += 1;
                        if keep {
                            kept.push(frame);
                        }
                    }
                }
            }
            assert_eq!(n, frames.len());
        }
    }

    /// Applies `n` random corruptions to `bytes`: flip a byte, insert garbage, delete bytes.
    fn corrupt(bytes: &mut Vec<u8>, n: usize, rng: &mut Rng) {
        for _ in 0..n {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] ^= (rng.below(255) + 1) as u8,
                1 => {
                    let len = rng.below(300) + 1;
                    let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    bytes.splice(at..at, garbage);
                }
                _ => {
                    let end = (at + rng.below(40) + 1).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
    }

    #[test]
    fn test_corruption_resync() {
        let mut rng = Rng(0xC0FFEE);
        let (frames, mut bytes) = stream(2_000, &mut rng, Timestamp::ZERO);
        let k = 40;
        corrupt(&mut bytes, k, &mut rng);
        let mut rx = Receiver::new(ReceiverConfig::default());
        let mut chunk_rng = Rng(7);
        let out = feed(&mut rx, &bytes, || chunk_rng.below(5000) + 1);
        let delivered = frames_of(&out);
        assert_originals(&delivered, &frames);
        let c = *rx.counters();
        // Each corruption costs the frames it touches: at most two (a deletion across the
        // boundary between them).
        assert!(delivered.len() >= frames.len() - 2 * k, "{c:?}");
        assert!(delivered.len() < frames.len());
        assert!(c.encapsulation_errors + c.crc_errors > 0, "{c:?}");
        assert!(c.fc_sync_losses > 0 && c.bytes_skipped > 0, "{c:?}");
        assert_eq!(c.fc_sync_losses, c.encapsulation_errors);
        let sync_lost = out
            .iter()
            .filter(|o| matches!(o, Output::SyncLost { .. }))
            .count();
        assert_eq!(sync_lost as u64, c.fc_sync_losses);
    }

    #[test]
    fn test_garbage_before_first_frame() {
        let (frames, bytes) = stream(3, &mut Rng(3), Timestamp::ZERO);
        let mut b = b"GET / HTTP/1.1\r\n\x01\x01\xfe\xfe\x01\x01\xfe\xfe".to_vec();
        let garbage = b.len() as u64;
        b.extend_from_slice(&bytes);
        let mut rx = Receiver::new(ReceiverConfig::default());
        let out = feed(&mut rx, &b, || 1);
        assert_eq!(frames_of(&out), frames);
        assert_eq!(rx.counters().bytes_skipped, garbage);
        assert_eq!(rx.counters().fc_sync_losses, 1);
    }

    #[test]
    fn test_bad_fc_crc_is_malformed_and_stream_goes_on() {
        let (frames, mut bytes) = stream(3, &mut Rng(9), Timestamp::ZERO);
        let first_len = frames[0].buffer_len() + HEADER_LEN + 2 * DELIMITER;
        bytes[40] ^= 0x10; // Inside the FC header of frame 0.
        let mut rx = Receiver::new(ReceiverConfig::default());
        let out = feed(&mut rx, &bytes, || 1 << 20);
        assert!(matches!(
            out.first(),
            Some(Output::Malformed { bytes, error: FrameError::BadCrc { .. } }) if *bytes == first_len
        ));
        assert_eq!(frames_of(&out), frames[1..]);
        assert_eq!(rx.counters().crc_errors, 1);
        assert_eq!(rx.counters().encapsulation_errors, 0);
    }

    #[test]
    fn test_on_error_close() {
        let (frames, mut bytes) = stream(3, &mut Rng(4), Timestamp::ZERO);
        let second = frames[0].buffer_len() + 36;
        bytes[second + 2] = 0; // Protocol complement of frame 1.
        let mut rx = Receiver::new(ReceiverConfig {
            on_error: OnError::Close,
            ..ReceiverConfig::default()
        });
        assert_eq!(rx.push(&bytes), bytes.len());
        assert!(matches!(
            rx.poll(Timestamp::ZERO),
            Some(Output::Frame { .. })
        ));
        assert!(matches!(
            rx.poll(Timestamp::ZERO),
            Some(Output::SyncLost {
                error: SyncError::Encap(EncapError::ProtocolComplement { .. })
            })
        ));
        assert!(rx.is_closed());
        assert_eq!(rx.poll(Timestamp::ZERO), None);
        assert_eq!(rx.push(&bytes), bytes.len());
        assert_eq!(rx.poll(Timestamp::ZERO), None);
        assert_eq!(rx.counters().frames, 1);
        assert_eq!(rx.counters().encapsulation_errors, 1);
        assert_eq!(rx.counters().fc_sync_losses, 0);
    }

    #[test]
    fn test_bad_eof_is_encapsulation_error() {
        let (frames, mut bytes) = stream(2, &mut Rng(5), Timestamp::ZERO);
        let eof_at = frames[0].buffer_len() + 32;
        bytes[eof_at + 3] ^= 1;
        let mut rx = Receiver::new(ReceiverConfig::default());
        let out = feed(&mut rx, &bytes, || 1 << 20);
        assert!(matches!(
            out.first(),
            Some(Output::SyncLost {
                error: SyncError::Encap(EncapError::BadEof { .. })
            })
        ));
        assert_eq!(frames_of(&out), frames[1..]);
        assert_eq!(rx.counters().bytes_skipped, eof_at as u64 + 4);
    }

    #[test]
    fn test_resync_verdict_does_not_depend_on_reads() {
        // Found by the `engine` fuzz target: a bad header, a good frame, a bad header. When
        // resynchronizing also judged by the header after a frame if it was buffered, the good
        // frame was delivered when a read happened to end with it (the bad header then counted
        // as a second encapsulation error), and skipped when the bad header came in the same
        // read.
        let (frames, good) = stream(1, &mut Rng(8), Timestamp::ZERO);
        let mut b = SYNC_PATTERN.to_vec();
        b.extend_from_slice(&[0x00, 0x00, 0x00, 0xbd]); // ~pFlags wrong.
        let before = b.len();
        b.extend_from_slice(&good);
        let mut bad = SYNC_PATTERN.to_vec();
        bad.resize(HEADER_LEN, 0);
        b.extend_from_slice(&bad);
        for read in [b.len(), 1, before + good.len(), before + good.len() + 1] {
            let mut rx = Receiver::new(ReceiverConfig::default());
            let out = feed(&mut rx, &b, || read);
            assert!(
                matches!(
                    &out[..],
                    [
                        Output::SyncLost {
                            error: SyncError::Encap(EncapError::PFlagsComplement { .. })
                        },
                        Output::Frame { frame, .. },
                        Output::SyncLost {
                            error: SyncError::Encap(EncapError::PFlagsComplement { .. })
                        },
                    ] if *frame == frames[0]
                ),
                "reads of {read}: {out:?}"
            );
            let c = rx.counters();
            assert_eq!((c.encapsulation_errors, c.fc_sync_losses), (2, 2));
            assert_eq!(c.bytes_skipped, (before + HEADER_LEN - 7) as u64);
            assert_eq!(rx.buffered(), 7);
        }
    }

    #[test]
    fn test_other_protocol_is_encapsulation_error() {
        let (_, mut bytes) = stream(1, &mut Rng(5), Timestamp::ZERO);
        for w in [0, 4] {
            bytes[w..w + 4].copy_from_slice(&[0x02, 0x01, 0xfd, 0xfe]);
        }
        let mut rx = Receiver::new(ReceiverConfig::default());
        assert_eq!(rx.push(&bytes), bytes.len());
        assert_eq!(
            rx.poll(Timestamp::ZERO),
            Some(Output::SyncLost {
                error: SyncError::NotFcip {
                    protocol: Protocol::IFCP,
                    version: 1
                }
            })
        );
        assert_eq!(rx.poll(Timestamp::ZERO), None);
    }

    #[test]
    fn test_special_frame() {
        let mut b = fsf().emit().to_vec();
        let (frames, bytes) = stream(1, &mut Rng(6), Timestamp::ZERO);
        b.extend_from_slice(&bytes);
        let mut rx = Receiver::new(ReceiverConfig::default());
        let out = feed(&mut rx, &b, || 10);
        assert_eq!(out[0], Output::Special(fsf()));
        assert_eq!(frames_of(&out), frames);
        assert_eq!(rx.counters().special_frames, 1);
    }

    #[test]
    fn test_bad_special_frame_is_encapsulation_error() {
        let mut b = fsf().emit();
        b[30] = 0; // Word 7.
        let mut rx = Receiver::new(ReceiverConfig::default());
        assert_eq!(rx.push(&b), b.len());
        assert_eq!(
            rx.poll(Timestamp::ZERO),
            Some(Output::SyncLost {
                error: SyncError::Special(FsfError::Word7 { word: 0x0000_00ff })
            })
        );
    }

    #[test]
    fn test_transit_limit() {
        let now = Timestamp {
            seconds: 0xe8b0_1000,
            fraction: 0,
        };
        let fresh = Timestamp {
            seconds: 0xe8b0_0fff,
            fraction: 0x8000_0000,
        }; // 0.5 s old
        let old = Timestamp {
            seconds: 0xe8b0_0ffe,
            fraction: 0,
        }; // 2 s old
        let mut b = BytesMut::new();
        for (i, ts) in [fresh, old, Timestamp::ZERO, old].into_iter().enumerate() {
            emit_encapsulated(&frame(i, 8), ts, &mut b);
        }
        let cfg = ReceiverConfig {
            transit_limit: Some(Duration::from_secs(1)),
            ..ReceiverConfig::default()
        };
        let mut rx = Receiver::new(cfg);
        assert_eq!(rx.push(&b), b.len());
        let mut got = Vec::new();
        while let Some(Output::Frame { frame, .. }) = rx.poll(now) {
            got.push(frame.header.parameter);
        }
        assert_eq!(got, [0, 2]);
        assert_eq!(rx.counters().transit_discards, 2);
        // Without a clock nothing is discarded.
        let mut rx = Receiver::new(cfg);
        assert_eq!(rx.push(&b), b.len());
        let mut n = 0;
        while let Some(Output::Frame { .. }) = rx.poll(Timestamp::ZERO) {
            n += 1;
        }
        assert_eq!(n, 4);
        assert_eq!(rx.counters().transit_discards, 0);
    }

    #[test]
    fn test_bounded_buffer() {
        let mut rx = Receiver::new(ReceiverConfig {
            max_buffered: 10,
            ..ReceiverConfig::default()
        });
        assert_eq!(rx.config().max_buffered, MIN_BUFFERED);
        // A header that says 544 words, then no more: waits, within bounds.
        let mut h = EncapHeaderRepr::fcip(MAX_ENCAPSULATED_LEN, Timestamp::ZERO)
            .to_bytes()
            .to_vec();
        h.extend_from_slice(&[0x2e, 0x2e, 0xd1, 0xd1]);
        assert_eq!(rx.push(&h), h.len());
        assert_eq!(rx.poll(Timestamp::ZERO), None);
        let big = vec![0u8; 3 * MIN_BUFFERED];
        let took = rx.push(&big);
        assert_eq!(took, MIN_BUFFERED - h.len());
        assert_eq!(rx.buffered(), MIN_BUFFERED);
        // The zeros end the frame with a bad EOF word; then everything is skipped.
        assert!(matches!(
            rx.poll(Timestamp::ZERO),
            Some(Output::SyncLost { .. })
        ));
        assert_eq!(rx.poll(Timestamp::ZERO), None);
        assert!(rx.buffered() < SYNC_PATTERN.len());
        assert!(rx.room() >= MIN_BUFFERED - SYNC_PATTERN.len());
    }

    #[test]
    fn test_impossible_frame_length() {
        let mut h = EncapHeaderRepr::fcip(0x3FF * 4, Timestamp::ZERO).to_bytes();
        h[12..16].copy_from_slice(&[0x03, 0xff, 0xfc, 0x00]);
        let mut rx = Receiver::new(ReceiverConfig::default());
        assert_eq!(rx.push(&h), h.len());
        assert_eq!(
            rx.poll(Timestamp::ZERO),
            Some(Output::SyncLost {
                error: SyncError::Encap(EncapError::BadFrameLength { words: 0x3ff })
            })
        );
    }

    #[test]
    fn test_find_sync_pattern() {
        assert_eq!(find_sync_pattern(&SYNC_PATTERN), Some(0));
        let mut b = vec![1, 1, 1, 0xfe];
        b.extend_from_slice(&SYNC_PATTERN);
        assert_eq!(find_sync_pattern(&b), Some(4));
        assert_eq!(find_sync_pattern(&SYNC_PATTERN[..7]), None);
        assert_eq!(find_sync_pattern(&[]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_corrupted_stream_never_delivers_a_corrupted_frame(
            seed in 1u64..u64::MAX,
            n in 1usize..60,
            k in 0usize..6,
            max_chunk in 1usize..3000,
        ) {
            let mut rng = Rng(seed);
            let (frames, mut bytes) = stream(n, &mut rng, Timestamp::ZERO);
            corrupt(&mut bytes, k, &mut rng);
            let mut rx = Receiver::new(ReceiverConfig::default());
            let out = feed(&mut rx, &bytes, || rng.below(max_chunk) + 1);
            let delivered = frames_of(&out);
            assert_originals(&delivered, &frames);
            prop_assert!(delivered.len() + 2 * k >= frames.len());
            if k == 0 {
                prop_assert_eq!(delivered, frames);
            }
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..5000),
            chunk in 1usize..600,
        ) {
            let mut rx = Receiver::new(ReceiverConfig::default());
            for out in feed(&mut rx, &bytes, || chunk) {
                let is_frame = matches!(out, Output::Frame { .. });
                prop_assert!(!is_frame);
            }
        }

        #[test]
        fn prop_valid_headers_arbitrary_bodies_never_panic(
            words in 16u16..=544,
            body in proptest::collection::vec(any::<u8>(), 0..2300),
        ) {
            let mut b = EncapHeaderRepr::fcip(usize::from(words) * 4, Timestamp::ZERO).to_bytes().to_vec();
            b.extend_from_slice(&body);
            b.extend_from_slice(&b.clone());
            let mut rx = Receiver::new(ReceiverConfig::default());
            let _ = feed(&mut rx, &b, || 97);
        }
    }
}
