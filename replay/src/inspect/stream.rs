//! The FCIP side of one direction of a TCP connection: whether the bytes are FCIP at all, and
//! then the receive engine ([`fcip::Receiver`], RFC 3821 §5.6.2) over them, restarted at the
//! next valid header after bytes the capture lost.
//!
//! A flow is FCIP when the receive engine, fed its bytes from the start (a SYN was seen) or
//! from any `01 01 FE FE 01 01 FE FE` in its first [`SEEK_LIMIT`] bytes (the capture began in
//! the middle of the connection), delivers an FC frame or a Special Frame. After a gap, a
//! fresh engine is started the same way at the first offset where one does.

use fc_frames::encap::Timestamp;
use fc_frames::{FcFrame, FrameError};
use fcip::{Output, Receiver, ReceiverConfig, SpecialFrame};

use super::tcp::Origin;

/// Bytes of a flow looked through for a first FCIP header before it is taken for something
/// else; after a gap, bytes looked through before they are given up on.
pub const SEEK_LIMIT: usize = 64 * 1024;

/// FCIP's word 0 and its copy in word 1: where a header may start.
const SYNC: [u8; 8] = [0x01, 0x01, 0xFE, 0xFE, 0x01, 0x01, 0xFE, 0xFE];

/// What the FCIP side of a flow gives.
#[derive(Debug)]
pub enum Out {
    /// An FC frame, completed by this record.
    Frame(Origin, FcFrame),
    /// A Special Frame.
    Fsf(Origin, Box<SpecialFrame>),
    /// Framed right, the FC frame bad (its CRC, nearly always).
    Malformed(Origin, usize, FrameError),
    /// An encapsulation error.
    EncapError(Origin, String),
    /// Back in sync after skipping this many bytes, for this reason.
    Resync(Origin, u64, &'static str),
    /// Bytes not captured; and bytes of a frame that the gap cut, dropped.
    Gap(Origin, u64, usize),
    /// The stream ended with this many bytes that make no whole frame.
    Unfinished(Origin, usize),
}

/// Why a seek is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seek {
    /// The flow's first bytes; `exact`: they are the connection's first (a SYN was seen).
    Start { exact: bool },
    /// After a gap.
    AfterGap,
}

#[derive(Debug)]
enum State {
    Seeking {
        why: Seek,
        chunks: Vec<(Origin, Vec<u8>)>,
        len: usize,
        /// Candidate offsets before this one were found bad.
        bad_before: usize,
    },
    Decoding {
        rx: Box<Receiver>,
        /// An encapsulation error was reported and no frame came since.
        lost: bool,
        /// The engine's skipped bytes at the last frame.
        mark: u64,
    },
    NotFcip,
}

/// The FCIP side of one flow direction.
#[derive(Debug)]
pub struct FcipStream {
    state: State,
    /// Whether it was found to be FCIP.
    pub is_fcip: bool,
    /// Encapsulation errors, as the receive engines counted them.
    pub encapsulation_errors: u64,
}

/// The verdict on the bytes looked through.
enum Verdict {
    Found(usize),
    Wait(usize),
    NotFound,
}

/// Looks for the first offset of `buf` (from `from`) where the receive engine delivers a frame.
fn seek(buf: &[u8], exact: bool, from: usize) -> Verdict {
    let mut at = from;
    loop {
        if at > 0 {
            if exact {
                return Verdict::NotFound;
            }
            match buf
                .get(at..)
                .and_then(|rest| rest.windows(SYNC.len()).position(|w| w == SYNC))
            {
                Some(i) => at += i,
                None => return Verdict::Wait(buf.len().saturating_sub(SYNC.len() - 1).max(at)),
            }
        }
        // The least buffer: room for the first frame and more, which is all the verdict needs.
        let mut rx = Receiver::new(ReceiverConfig {
            max_buffered: 0,
            ..ReceiverConfig::default()
        });
        let _ = rx.push(&buf[at..]);
        match rx.poll(Timestamp::ZERO) {
            Some(Output::Frame { .. } | Output::Special(_)) => return Verdict::Found(at),
            // Framed right, the FC frame bad: the framing is FCIP.
            Some(Output::Malformed { .. }) if at == 0 => return Verdict::Found(0),
            Some(_) => at += 1,
            None => return Verdict::Wait(at),
        }
    }
}

impl FcipStream {
    /// A flow direction whose first byte is the connection's first when `from_syn`.
    pub fn new(from_syn: bool) -> FcipStream {
        FcipStream {
            state: State::Seeking {
                why: Seek::Start { exact: from_syn },
                chunks: Vec::new(),
                len: 0,
                bad_before: 0,
            },
            is_fcip: false,
            encapsulation_errors: 0,
        }
    }

    /// Whether it was given up on as not FCIP.
    pub fn not_fcip(&self) -> bool {
        matches!(self.state, State::NotFcip)
    }

    /// Bytes next in the stream, from record `at`.
    pub fn data(&mut self, at: Origin, bytes: Vec<u8>, out: &mut Vec<Out>) {
        match &mut self.state {
            State::NotFcip => {}
            State::Decoding { .. } => self.feed(at, &bytes, out),
            State::Seeking {
                why,
                chunks,
                len,
                bad_before,
            } => {
                *len += bytes.len();
                chunks.push((at, bytes));
                let buf: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
                let exact = *why == (Seek::Start { exact: true });
                match seek(&buf, exact, *bad_before) {
                    Verdict::Found(o) => {
                        let why = *why;
                        let chunks = std::mem::take(chunks);
                        self.found(at, why, o, chunks, out);
                    }
                    Verdict::Wait(from) if buf.len() <= SEEK_LIMIT => *bad_before = from,
                    Verdict::Wait(from) if *why == Seek::AfterGap => {
                        // Give up on what was looked through; keep looking in what follows.
                        let keep = buf.len() - from.min(buf.len());
                        out.push(Out::Resync(
                            at,
                            (buf.len() - keep) as u64,
                            "skipped, no FCIP header in them",
                        ));
                        *chunks = vec![(at, buf[buf.len() - keep..].to_vec())];
                        *len = keep;
                        *bad_before = 0;
                    }
                    Verdict::Wait(_) | Verdict::NotFound => {
                        if *why == Seek::AfterGap {
                            // Exact seeks only start flows; an after-gap seek waits.
                            *bad_before = 0;
                        } else {
                            self.state = State::NotFcip;
                        }
                    }
                }
            }
        }
    }

    /// A valid frame starts at `offset` of the bytes in `chunks`: decode from there.
    fn found(
        &mut self,
        at: Origin,
        why: Seek,
        offset: usize,
        chunks: Vec<(Origin, Vec<u8>)>,
        out: &mut Vec<Out>,
    ) {
        self.is_fcip = true;
        if offset > 0 {
            let reason = match why {
                Seek::Start { .. } => {
                    "before the first FCIP header (the capture began mid-connection)"
                }
                Seek::AfterGap => "after the gap, to the next valid FCIP header",
            };
            out.push(Out::Resync(at, offset as u64, reason));
        }
        self.state = State::Decoding {
            rx: Box::new(Receiver::new(ReceiverConfig::default())),
            lost: false,
            mark: 0,
        };
        let mut skip = offset;
        for (origin, bytes) in chunks {
            let cut = skip.min(bytes.len());
            skip -= cut;
            if cut < bytes.len() {
                self.feed(origin, &bytes[cut..], out);
            }
        }
    }

    /// Bytes into the receive engine; what it decodes out.
    fn feed(&mut self, at: Origin, bytes: &[u8], out: &mut Vec<Out>) {
        let State::Decoding { rx, lost, mark } = &mut self.state else {
            return;
        };
        let mut rest = bytes;
        loop {
            let n = rx.push(rest);
            rest = &rest[n..];
            while let Some(o) = rx.poll(Timestamp::ZERO) {
                if let Output::SyncLost { error } = o {
                    self.encapsulation_errors += 1;
                    *lost = true;
                    out.push(Out::EncapError(at, error.to_string()));
                    continue;
                }
                let skipped = rx.counters().bytes_skipped;
                if *lost {
                    out.push(Out::Resync(
                        at,
                        skipped - *mark,
                        "after the encapsulation error",
                    ));
                    *lost = false;
                }
                *mark = skipped;
                out.push(match o {
                    Output::Frame { frame, .. } => Out::Frame(at, frame),
                    Output::Special(fsf) => Out::Fsf(at, Box::new(fsf)),
                    Output::Malformed { bytes, error } => Out::Malformed(at, bytes, error),
                    Output::SyncLost { .. } => continue,
                });
            }
            if rest.is_empty() || n == 0 && rx.is_closed() {
                break;
            }
        }
    }

    /// `n` bytes of the stream were not captured.
    pub fn gap(&mut self, at: Origin, n: u64, out: &mut Vec<Out>) {
        match &mut self.state {
            State::NotFcip => {}
            State::Seeking {
                why: Seek::Start { .. },
                ..
            } => {
                // Not known to be FCIP yet: look again after the gap.
                self.state = State::Seeking {
                    why: Seek::Start { exact: false },
                    chunks: Vec::new(),
                    len: 0,
                    bad_before: 0,
                };
            }
            State::Seeking {
                why: Seek::AfterGap,
                chunks,
                len,
                bad_before,
            } => {
                out.push(Out::Gap(at, n, *len));
                chunks.clear();
                *len = 0;
                *bad_before = 0;
            }
            State::Decoding { rx, .. } => {
                out.push(Out::Gap(at, n, rx.buffered()));
                self.state = State::Seeking {
                    why: Seek::AfterGap,
                    chunks: Vec::new(),
                    len: 0,
                    bad_before: 0,
                };
            }
        }
    }

    /// The stream ended (FIN, RST, a new connection, the end of the capture).
    pub fn end(&mut self, at: Origin, out: &mut Vec<Out>) {
        let left = match &self.state {
            State::Decoding { rx, .. } => rx.buffered(),
            State::Seeking {
                why: Seek::AfterGap,
                len,
                ..
            } => *len,
            State::Seeking { .. } => {
                self.state = State::NotFcip;
                0
            }
            State::NotFcip => 0,
        };
        if left > 0 {
            out.push(Out::Unfinished(at, left));
        }
        if self.is_fcip {
            self.state = State::Seeking {
                why: Seek::AfterGap,
                chunks: Vec::new(),
                len: 0,
                bad_before: 0,
            };
        }
    }
}
