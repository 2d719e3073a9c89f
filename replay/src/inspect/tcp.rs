//! TCP reassembly of one direction of a connection, by sequence number: bytes come out once,
//! in order, each attributed to the record that carried it; segments that arrive early wait
//! for the ones before them; repeated bytes (retransmissions, overlaps) are dropped; a hole
//! that never fills is reported as a gap of bytes not captured.
//!
//! A hole is given up on when the other direction acknowledges a segment waiting behind it,
//! when the segments waiting behind it hold more than [`MAX_WAITING`] bytes, when a segment cut
//! by the snapshot length says its bytes are missing, or when the stream ends (RST, a new
//! connection, the end of the capture). Sequence numbers are followed across
//! their 2^32 wrap as 64-bit stream offsets.

use std::collections::BTreeMap;
use std::time::Duration;

/// Most bytes kept waiting behind a hole before it is declared a gap.
pub const MAX_WAITING: usize = 4 << 20;

/// Where bytes came from: a record's number and time stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The record's number.
    pub number: usize,
    /// Its time stamp.
    pub ts: Duration,
}

/// What reassembly gives, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes, next in the stream, from this record.
    Data(Origin, Vec<u8>),
    /// This many bytes of the stream were not captured; `at` is the record that made it
    /// certain.
    Gap(Origin, u64),
    /// The stream ended here (FIN reached); nothing more comes in this direction.
    End(Origin),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    Data(Origin, Vec<u8>),
    /// Bytes the capture cut off.
    Missing(Origin, u64),
}

impl Waiting {
    fn len(&self) -> u64 {
        match self {
            Waiting::Data(_, b) => b.len() as u64,
            Waiting::Missing(_, n) => *n,
        }
    }
}

/// One direction of a TCP connection being reassembled.
#[derive(Debug, Default)]
pub struct HalfStream {
    /// Stream offset and sequence number of the next byte expected, once known.
    next: Option<(u64, u32)>,
    /// The SYN's sequence number, when one was seen.
    isn: Option<u32>,
    /// Segments past a hole, by stream offset.
    waiting: BTreeMap<u64, Waiting>,
    waiting_bytes: usize,
    /// Stream offset of the FIN, once seen.
    fin: Option<u64>,
    ended: bool,
    /// Bytes received more than once.
    pub repeated: u64,
}

impl HalfStream {
    /// Whether the stream started with a SYN (so its first byte is known).
    pub fn from_syn(&self) -> bool {
        self.isn.is_some()
    }

    /// Whether a SYN with sequence number `seq` starts another connection than this one.
    pub fn is_new_connection(&self, seq: u32) -> bool {
        match self.isn {
            Some(isn) => isn != seq,
            // Data seen, no SYN: a SYN now starts a new connection.
            None => self.next.is_some(),
        }
    }

    /// Whether the FIN was reached.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes one segment; appends what is now in order to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        at: Origin,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        missing: usize,
        out: &mut Vec<Piece>,
    ) {
        if self.ended {
            self.repeated += payload.len() as u64;
            return;
        }
        let mut seq = seq;
        if syn {
            if self.next.is_none() {
                self.isn = Some(seq);
                self.next = Some((0, seq.wrapping_add(1)));
            }
            seq = seq.wrapping_add(1);
        }
        let (next, next_seq) = *self.next.get_or_insert((0, seq));
        // Offset of this segment's first byte; before the stream's start only when repeated.
        let start = next as i128 + i128::from(seq.wrapping_sub(next_seq) as i32);
        let len = payload.len() as i128;
        let wire_end = start + len + missing as i128;
        if fin {
            if let Ok(f) = u64::try_from(wire_end) {
                self.fin.get_or_insert(f);
            }
        }
        if !payload.is_empty() {
            self.put(start, Waiting::Data(at, payload.to_vec()));
        }
        if missing > 0 {
            self.put(start + len, Waiting::Missing(at, missing as u64));
        }
        self.drain(at, true, out);
    }

    /// Files a piece at stream offset `start` (trimming what is before the next byte).
    fn put(&mut self, start: i128, w: Waiting) {
        let (next, _) = self.next.unwrap_or((0, 0));
        let end = start + i128::from(w.len() as i64);
        if end <= i128::from(next) {
            if let Waiting::Data(_, b) = &w {
                self.repeated += b.len() as u64;
            }
            return;
        }
        let (start, w) = if start < i128::from(next) {
            let cut = (i128::from(next) - start) as usize;
            (i128::from(next), trim(w, cut, &mut self.repeated))
        } else {
            (start, w)
        };
        let start = start as u64;
        match self.waiting.get(&start) {
            Some(old) if old.len() >= w.len() => {
                if let Waiting::Data(_, b) = &w {
                    self.repeated += b.len() as u64;
                }
            }
            _ => {
                self.waiting_bytes += w.len() as usize;
                if let Some(old) = self.waiting.insert(start, w) {
                    self.waiting_bytes -= old.len() as usize;
                    if let Waiting::Data(_, b) = &old {
                        self.repeated += b.len() as u64;
                    }
                }
            }
        }
    }

    /// Hands over whatever is in order now; gives up on the hole when too much waits. Bytes that
    /// waited come out as from record `at` when it is `completes` them (the segment that filled
    /// the hole), else as from their own.
    fn drain(&mut self, at: Origin, completes: bool, out: &mut Vec<Piece>) {
        loop {
            let Some((next, next_seq)) = self.next else {
                return;
            };
            let Some((&start, _)) = self.waiting.first_key_value() else {
                break;
            };
            if start > next {
                if self.waiting_bytes <= MAX_WAITING {
                    break;
                }
                out.push(Piece::Gap(at, start - next));
                self.advance(start - next, next, next_seq);
                continue;
            }
            let Some((_, w)) = self.waiting.pop_first() else {
                break;
            };
            self.waiting_bytes -= w.len() as usize;
            let end = start + w.len();
            if end <= next {
                if let Waiting::Data(_, b) = &w {
                    self.repeated += b.len() as u64;
                }
                continue;
            }
            let w = trim(w, (next - start) as usize, &mut self.repeated);
            let n = w.len();
            match w {
                Waiting::Data(o, b) => {
                    let o = if completes && o.number < at.number {
                        at
                    } else {
                        o
                    };
                    out.push(Piece::Data(o, b))
                }
                Waiting::Missing(o, n) => out.push(Piece::Gap(o, n)),
            }
            self.advance(n, next, next_seq);
        }
        self.check_fin(at, out);
    }

    fn advance(&mut self, n: u64, next: u64, next_seq: u32) {
        self.next = Some((next + n, next_seq.wrapping_add(n as u32)));
    }

    fn check_fin(&mut self, at: Origin, out: &mut Vec<Piece>) {
        if let (Some(fin), Some((next, _))) = (self.fin, self.next) {
            if next >= fin && !self.ended {
                self.ended = true;
                out.push(Piece::End(at));
            }
        }
    }

    /// The other direction acknowledged the bytes before sequence number `ack`: the peer
    /// received them, so a hole before a segment that waits and is acknowledged was lost by the
    /// capture, not by the network: a gap now, rather than when too much waits behind it.
    pub fn acked(&mut self, at: Origin, ack: u32, out: &mut Vec<Piece>) {
        while let (Some((next, next_seq)), Some((&start, _))) =
            (self.next, self.waiting.first_key_value())
        {
            let delta = ack.wrapping_sub(next_seq) as i32;
            if delta <= 0 || start <= next || start > next + delta as u64 {
                break;
            }
            out.push(Piece::Gap(at, start - next));
            self.advance(start - next, next, next_seq);
            self.drain(at, true, out);
        }
    }

    /// The stream stops here (RST, a new connection, the end of the capture): every hole
    /// left is a gap, everything waiting comes out.
    pub fn close(&mut self, at: Origin, out: &mut Vec<Piece>) {
        while let Some((&start, _)) = self.waiting.first_key_value() {
            let Some((next, next_seq)) = self.next else {
                break;
            };
            if start > next {
                out.push(Piece::Gap(at, start - next));
                self.advance(start - next, next, next_seq);
            }
            self.drain(at, false, out);
        }
        self.waiting_bytes = 0;
        self.ended = true;
    }
}

/// `w` without its first `cut` bytes (counted as repeated when they are data).
fn trim(w: Waiting, cut: usize, repeated: &mut u64) -> Waiting {
    match w {
        Waiting::Data(o, mut b) => {
            let cut = cut.min(b.len());
            *repeated += cut as u64;
            b.drain(..cut);
            Waiting::Data(o, b)
        }
        Waiting::Missing(o, n) => Waiting::Missing(o, n.saturating_sub(cut as u64)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(number: usize) -> Origin {
        Origin {
            number,
            ts: Duration::ZERO,
        }
    }

    /// Feeds (seq, bytes) segments; returns the bytes in order and the gaps.
    fn run(isn: u32, segs: &[(u32, &[u8])]) -> (Vec<u8>, Vec<u64>, Vec<usize>, HalfStream) {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        // A SYN first: the stream's start is known whatever order the data comes in.
        h.segment(at(0), isn.wrapping_sub(1), true, false, b"", 0, &mut out);
        for (i, (seq, b)) in segs.iter().enumerate() {
            h.segment(
                at(i + 1),
                isn.wrapping_add(*seq),
                false,
                false,
                b,
                0,
                &mut out,
            );
        }
        h.close(at(99), &mut out);
        let mut data = Vec::new();
        let mut gaps = Vec::new();
        let mut numbers = Vec::new();
        for p in out {
            match p {
                Piece::Data(o, b) => {
                    numbers.push(o.number);
                    data.extend_from_slice(&b)
                }
                Piece::Gap(_, n) => gaps.push(n),
                Piece::End(_) => {}
            }
        }
        (data, gaps, numbers, h)
    }

    #[test]
    fn test_in_order_swapped_repeated_overlapping() {
        let (d, g, n, h) = run(
            u32::MAX - 3, // wraps
            &[
                (0, b"abc"),
                (6, b"ghi"),
                (3, b"def"),
                (3, b"def"),
                (5, b"fghij"),
            ],
        );
        assert_eq!(d, b"abcdefghij");
        assert!(g.is_empty());
        // "ghi" waited for "def": record 3 completed it.
        assert_eq!(n, [1, 3, 3, 5]);
        assert_eq!(h.repeated, 3 + 4);
    }

    #[test]
    fn test_hole_is_a_gap_at_close() {
        let (d, g, _, _) = run(1000, &[(0, b"abc"), (10, b"xyz")]);
        assert_eq!(d, b"abcxyz");
        assert_eq!(g, [7]);
    }

    #[test]
    fn test_syn_fin_and_new_connection() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        h.segment(at(1), 500, true, false, b"", 0, &mut out);
        assert!(h.from_syn() && !h.is_new_connection(500) && h.is_new_connection(9));
        h.segment(at(2), 504, false, true, b"d", 0, &mut out);
        h.segment(at(3), 501, false, false, b"abc", 0, &mut out);
        assert_eq!(
            out,
            [
                Piece::Data(at(3), b"abc".to_vec()),
                Piece::Data(at(3), b"d".to_vec()),
                Piece::End(at(3)),
            ]
        );
        assert!(h.ended());
    }

    #[test]
    fn test_acknowledged_hole_is_a_gap_at_once() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        h.segment(at(1), 10, false, false, b"ab", 0, &mut out);
        h.segment(at(2), 15, false, false, b"fg", 0, &mut out);
        // Acknowledging only part of the hole proves nothing about the waiting bytes.
        h.acked(at(3), 14, &mut out);
        assert_eq!(out.len(), 1);
        h.acked(at(4), 17, &mut out);
        assert_eq!(
            out,
            [
                Piece::Data(at(1), b"ab".to_vec()),
                Piece::Gap(at(4), 3),
                Piece::Data(at(4), b"fg".to_vec()),
            ]
        );
    }

    #[test]
    fn test_cut_segment_is_a_gap_at_once() {
        let mut h = HalfStream::default();
        let mut out = Vec::new();
        h.segment(at(1), 0, false, false, b"ab", 3, &mut out);
        h.segment(at(2), 5, false, false, b"f", 0, &mut out);
        assert_eq!(
            out,
            [
                Piece::Data(at(1), b"ab".to_vec()),
                Piece::Gap(at(1), 3),
                Piece::Data(at(2), b"f".to_vec()),
            ]
        );
    }

    proptest! {
        #[test]
        fn prop_any_order_any_repeats_gives_the_stream_once(
            isn in any::<u32>(),
            cuts in proptest::collection::vec(1usize..50, 1..30),
            order in any::<prop::sample::Index>(),
            repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let total: usize = cuts.iter().sum();
            let stream: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let mut segs = Vec::new();
            let mut off = 0;
            for c in &cuts {
                segs.push((off as u32, &stream[off..off + c]));
                off += c;
            }
            for r in &repeats {
                let s = segs[r.index(segs.len())];
                segs.push(s);
            }
            // Rotate by a random amount, then swap neighbours: plenty of disorder.
            let k = order.index(segs.len());
            segs.rotate_left(k);
            let (d, g, _, _) = run(isn, &segs);
            prop_assert_eq!(d, stream);
            prop_assert!(g.is_empty());
        }
    }
}
