//! The exchange and sequence manager of one N_Port (FC-FS-4 §9.6, §12; FC-LS-3 §3 for ABTS).
//!
//! Sans-IO: the manager takes received frames and the time, and hands back frames to send,
//! events for the upper layer (ELS, CT, FCP) and the next instant it wants to be woken at.
//!
//! ```text
//!  originate / send_sequence ──► frames (SOFi3 … SOFn3, EOFn … EOFt) ──► poll_transmit
//!  handle_frame ──► match (peer, OX_ID[, RX_ID]) ──► reassemble by SEQ_CNT ──► poll_event
//!  handle_timeout ──► E_D_TOV / exchange time-out ──► ABTS ──► BA_ACC, BA_RJT or R_A_TOV
//! ```
//!
//! Class 3 rules, as this module applies them:
//! - Every sequence passes the sequence initiative with its last frame; only the holder of the
//!   initiative sends the next sequence.
//! - The exchange ends with the sequence that has LAST_SEQUENCE set: once that sequence is sent,
//!   or received in full, the exchange's state is freed.
//! - A sequence that lacks a frame for E_D_TOV, an exchange that has not ended within its
//!   time-out, or a sequence that outgrows the reassembly bounds is aborted with ABTS; the
//!   exchange is freed on BA_ACC, BA_RJT or R_A_TOV after the ABTS, whichever comes first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fc_frames::bls::{BaAccRepr, BaRjt, BaRjtExplanation, BaRjtReason};
use fc_frames::frame::MAX_PAYLOAD;
use fc_frames::header::{DfCtl, Routing, UNASSIGNED_XID};
use fc_frames::{Eof, FCtl, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof};

/// Frames a sequence can have: SEQ_CNT is 16 bits.
const MAX_FRAMES_PER_SEQUENCE: usize = 1 << 16;

/// Tunables of an [`ExchangeManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest payload per frame sent: the receive data field size the peer gave at login.
    /// Clamped to `1..=2112` ([`MAX_PAYLOAD`]).
    pub max_payload: usize,
    /// Error detect time-out: a sequence that lacks a frame this long is aborted.
    pub e_d_tov: Duration,
    /// Resource allocation time-out: how long an aborted exchange waits for BA_ACC/BA_RJT.
    pub r_a_tov: Duration,
    /// Time-out of an exchange a peer opened with us (ours get theirs from
    /// [`ExchangeManager::originate`]).
    pub responder_timeout: Duration,
    /// Open exchanges at most; new ones from peers beyond this are dropped and counted.
    pub max_exchanges: usize,
    /// Sequences being reassembled at once in one exchange at most.
    pub max_open_sequences: usize,
    /// Bytes buffered for one sequence at most.
    pub max_sequence_bytes: usize,
    /// Bytes buffered for reassembly over all exchanges at most.
    pub max_buffered_bytes: usize,
    /// First exchange ID to hand out (randomness comes from the caller).
    pub xid_seed: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_payload: MAX_PAYLOAD,
            e_d_tov: Duration::from_secs(2),
            r_a_tov: Duration::from_secs(10),
            responder_timeout: Duration::from_secs(20),
            max_exchanges: 4096,
            max_open_sequences: 4,
            max_sequence_bytes: 16 << 20,
            max_buffered_bytes: 256 << 20,
            xid_seed: 0,
        }
    }
}

/// A handle on one exchange. Handles are never reused, so a stale one names no exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeId(u64);

impl ExchangeId {
    /// The handle as a number (unique within one manager).
    pub fn to_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ExchangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange #{}", self.0)
    }
}

/// Which end of an exchange this port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// This port opened the exchange and chose its OX_ID.
    Originator,
    /// A peer opened the exchange; this port chooses the RX_ID.
    Responder,
}

/// What is known about an open exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeInfo {
    /// Our end.
    pub role: Role,
    /// The other port.
    pub peer: FcId,
    /// TYPE of the exchange's frames.
    pub fc_type: FcType,
    /// OX_ID.
    pub ox_id: u16,
    /// RX_ID, [`UNASSIGNED_XID`] until the responder's first reply.
    pub rx_id: u16,
    /// Whether this port holds the sequence initiative.
    pub initiative: bool,
}

/// One sequence to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// R_CTL of its frames.
    pub r_ctl: RCtl,
    /// The sequence's payload, cut into frames without a copy.
    pub payload: Bytes,
    /// Whether this is the last sequence of the exchange (F_CTL LAST_SEQUENCE).
    pub last_sequence: bool,
    /// `Some(base)`: F_CTL RELATIVE_OFFSET, and each frame's Parameter is `base` plus the
    /// frame's offset in `payload` (FCP_DATA). `None`: Parameter zero.
    pub relative_offset: Option<u32>,
    /// Keep the sequence initiative after this sequence (FCP: the target's FCP_DATA before
    /// its FCP_RSP). Ignored on the last sequence.
    pub hold_initiative: bool,
}

impl Outbound {
    /// A sequence that is neither the last nor carries relative offsets.
    pub fn new(r_ctl: RCtl, payload: impl Into<Bytes>) -> Outbound {
        Outbound {
            r_ctl,
            payload: payload.into(),
            last_sequence: false,
            relative_offset: None,
            hold_initiative: false,
        }
    }

    /// Keeps the sequence initiative: the last frame goes without SEQUENCE_INITIATIVE, so
    /// this port sends the next sequence too.
    #[must_use]
    pub fn hold_initiative(mut self) -> Outbound {
        self.hold_initiative = true;
        self
    }

    /// Marks the sequence as the last of the exchange.
    #[must_use]
    pub fn last(mut self) -> Outbound {
        self.last_sequence = true;
        self
    }

    /// Puts relative offsets from `base` in the Parameter field.
    #[must_use]
    pub fn with_relative_offset(mut self, base: u32) -> Outbound {
        self.relative_offset = Some(base);
        self
    }
}

/// What the manager tells the upper layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sequence was received in full. A first sequence from a peer opens a new exchange
    /// (`header.f_ctl` has FIRST_SEQUENCE); one with LAST_SEQUENCE closed `id`.
    Sequence {
        /// The exchange.
        id: ExchangeId,
        /// Header of the sequence's first frame, with the F_CTL bits END_SEQUENCE,
        /// LAST_SEQUENCE and SEQUENCE_INITIATIVE as its last frame had them.
        header: FrameHeaderRepr,
        /// The frames' payloads in SEQ_CNT order.
        payload: Bytes,
    },
    /// A sequence lacked a frame for E_D_TOV, or the exchange outlived its time-out: ABTS sent.
    TimedOut {
        /// The exchange.
        id: ExchangeId,
    },
    /// A sequence outgrew the reassembly bounds of [`Config`]: ABTS sent.
    Overrun {
        /// The exchange.
        id: ExchangeId,
    },
    /// An exchange we aborted is freed: BA_ACC, BA_RJT, or R_A_TOV without an answer.
    Aborted {
        /// The exchange.
        id: ExchangeId,
    },
    /// The peer aborted the exchange with ABTS; we answered BA_ACC and freed it.
    AbortedByPeer {
        /// The exchange.
        id: ExchangeId,
    },
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// No open exchange has this handle (ended, aborted, or never existed).
    #[error("{0} is not open")]
    UnknownExchange(ExchangeId),
    /// The exchange is being aborted.
    #[error("{0} is being aborted")]
    Aborting(ExchangeId),
    /// The peer holds the sequence initiative.
    #[error("{0}: the peer holds the sequence initiative")]
    NoInitiative(ExchangeId),
    /// Every exchange ID is in use.
    #[error("no free exchange ID")]
    NoFreeXid,
    /// [`Config::max_exchanges`] exchanges are open.
    #[error("{open} exchanges open, the most allowed")]
    TooManyExchanges {
        /// Exchanges open.
        open: usize,
    },
    /// The payload needs more frames than SEQ_CNT can number.
    #[error("a {len}-byte sequence exceeds the {max} bytes SEQ_CNT can number")]
    SequenceTooLong {
        /// Payload length.
        len: usize,
        /// Longest sequence at the current frame size.
        max: usize,
    },
}

/// Frames dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames that are no first frame and belong to no open exchange.
    pub unknown_exchange: u64,
    /// Frames whose SEQ_CNT was already buffered.
    pub duplicate: u64,
    /// Frames for an exchange being aborted, and BLS frames nothing waited for.
    pub stale: u64,
    /// First frames of new exchanges refused because [`Config::max_exchanges`] were open.
    pub refused: u64,
}

#[derive(Debug)]
enum State {
    Open { deadline: Instant },
    Aborting { until: Instant },
}

#[derive(Debug)]
struct Exchange {
    role: Role,
    peer: FcId,
    fc_type: FcType,
    ox_id: u16,
    rx_id: u16,
    initiative: bool,
    /// The originator's first sequence is still to be sent (FIRST_SEQUENCE).
    first_pending: bool,
    state: State,
    rx: Vec<RxSequence>,
}

impl Exchange {
    fn info(&self) -> ExchangeInfo {
        ExchangeInfo {
            role: self.role,
            peer: self.peer,
            fc_type: self.fc_type,
            ox_id: self.ox_id,
            rx_id: self.rx_id,
            initiative: self.initiative,
        }
    }

    /// This port's exchange ID: the one it allocated.
    fn next_deadline(&self) -> Instant {
        match self.state {
            State::Aborting { until } => until,
            State::Open { deadline } => self
                .rx
                .iter()
                .map(|s| s.deadline)
                .fold(deadline, Instant::min),
        }
    }
}

/// A sequence being reassembled.
#[derive(Debug)]
struct RxSequence {
    seq_id: u8,
    frames: BTreeMap<u16, FcFrame>,
    /// SEQ_CNT of the SOFi frame.
    start: Option<u16>,
    /// SEQ_CNT of the END_SEQUENCE frame.
    end: Option<u16>,
    bytes: usize,
    /// E_D_TOV after the last frame received.
    deadline: Instant,
}

impl RxSequence {
    /// The number of frames, when every one from the first to the last is here.
    fn complete_len(&self) -> Option<usize> {
        let (start, end) = (self.start?, self.end?);
        let n = usize::from(end.wrapping_sub(start)) + 1;
        (self.frames.len() >= n
            && (0..n).all(|i| self.frames.contains_key(&start.wrapping_add(i as u16))))
        .then_some(n)
    }
}

/// Exchange IDs handed out in turn from a seed, skipping FFFF (unassigned) and those in use;
/// wrapping.
#[derive(Debug)]
struct XidPool {
    next: u16,
    used: HashMap<u16, ExchangeId>,
}

impl XidPool {
    fn starting_at(next: u16) -> XidPool {
        XidPool {
            next,
            used: HashMap::new(),
        }
    }

    /// The next ID not in use, now `id`'s; `None` when all are.
    fn allocate(&mut self, id: ExchangeId) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let xid = self.next;
            self.next = xid.wrapping_add(1);
            if xid != UNASSIGNED_XID && !self.used.contains_key(&xid) {
                self.used.insert(xid, id);
                return Some(xid);
            }
        }
        None
    }

    /// Frees `xid` if `id` holds it.
    fn release(&mut self, xid: u16, id: ExchangeId) {
        if self.used.get(&xid) == Some(&id) {
            self.used.remove(&xid);
        }
    }
}

/// The exchanges and sequences of one N_Port.
#[derive(Debug)]
pub struct ExchangeManager {
    config: Config,
    local_id: FcId,
    exchanges: HashMap<ExchangeId, Exchange>,
    /// The OX_IDs of the exchanges this port originated.
    originated: XidPool,
    /// The RX_IDs this port assigned to exchanges peers opened. A pool of its own, so that
    /// the IDs of what the port originates do not depend on when peers' exchanges came (a
    /// capture of it replays with the same IDs however its tasks interleaved).
    assigned: XidPool,
    /// Exchanges peers opened, by (peer, OX_ID).
    responders: HashMap<(FcId, u16), ExchangeId>,
    next_handle: u64,
    next_seq_id: u8,
    buffered: usize,
    transmit: VecDeque<FcFrame>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl ExchangeManager {
    /// A manager for a port whose FC_ID is still 000000 (before fabric login).
    pub fn new(mut config: Config) -> ExchangeManager {
        config.max_payload = config.max_payload.clamp(1, MAX_PAYLOAD);
        let originated = XidPool::starting_at(config.xid_seed);
        // Half the ID space away: an RX_ID reads differently from the OX_IDs near it.
        let assigned = XidPool::starting_at(config.xid_seed.wrapping_add(0x8000));
        ExchangeManager {
            config,
            local_id: FcId::UNIDENTIFIED,
            exchanges: HashMap::new(),
            originated,
            assigned,
            responders: HashMap::new(),
            next_handle: 0,
            next_seq_id: 0,
            buffered: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The port's FC_ID, the S_ID of what it sends.
    pub fn local_id(&self) -> FcId {
        self.local_id
    }

    /// Sets the port's FC_ID (after fabric login).
    pub fn set_local_id(&mut self, id: FcId) {
        self.local_id = id;
    }

    /// The frame size in use.
    pub fn max_payload(&self) -> usize {
        self.config.max_payload
    }

    /// Sets the frame size (the negotiated receive data field size), clamped to `1..=2112`.
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.config.max_payload = max_payload.clamp(1, MAX_PAYLOAD);
    }

    /// Exchanges open or being aborted.
    pub fn open_exchanges(&self) -> usize {
        self.exchanges.len()
    }

    /// Bytes buffered for reassembly.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Dropped frames, by reason.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What is known about an open exchange.
    pub fn exchange(&self, id: ExchangeId) -> Option<ExchangeInfo> {
        self.exchanges.get(&id).map(Exchange::info)
    }

    /// Opens an exchange with `d_id` and sends its first sequence; the exchange is aborted if
    /// it has not ended `timeout` from `now`.
    ///
    /// # Panics
    ///
    /// If `now + timeout` does not fit an [`Instant`] (as with [`Duration::MAX`]); the same holds
    /// for the time-outs of [`Config`].
    pub fn originate(
        &mut self,
        now: Instant,
        d_id: FcId,
        fc_type: FcType,
        seq: Outbound,
        timeout: Duration,
    ) -> Result<ExchangeId, ExchangeError> {
        self.check_len(seq.payload.len())?;
        if self.exchanges.len() >= self.config.max_exchanges {
            return Err(ExchangeError::TooManyExchanges {
                open: self.exchanges.len(),
            });
        }
        let id = self.new_handle();
        let ox_id = self
            .originated
            .allocate(id)
            .ok_or(ExchangeError::NoFreeXid)?;
        self.exchanges.insert(
            id,
            Exchange {
                role: Role::Originator,
                peer: d_id,
                fc_type,
                ox_id,
                rx_id: UNASSIGNED_XID,
                initiative: true,
                first_pending: true,
                state: State::Open {
                    deadline: now + timeout,
                },
                rx: Vec::new(),
            },
        );
        self.send_sequence(now, id, seq)?;
        Ok(id)
    }

    /// Sends the next sequence of an exchange whose initiative this port holds; a responder's
    /// first reply assigns the RX_ID. The last sequence frees the exchange. Sending starts no
    /// timer (class 3 has no ACKs), so `now` is taken only for the shape of the API.
    pub fn send_sequence(
        &mut self,
        _now: Instant,
        id: ExchangeId,
        seq: Outbound,
    ) -> Result<(), ExchangeError> {
        self.check_len(seq.payload.len())?;
        let x = self
            .exchanges
            .get(&id)
            .ok_or(ExchangeError::UnknownExchange(id))?;
        if matches!(x.state, State::Aborting { .. }) {
            return Err(ExchangeError::Aborting(id));
        }
        if !x.initiative {
            return Err(ExchangeError::NoInitiative(id));
        }
        if x.role == Role::Responder && x.rx_id == UNASSIGNED_XID {
            let rx_id = self.assigned.allocate(id).ok_or(ExchangeError::NoFreeXid)?;
            if let Some(x) = self.exchanges.get_mut(&id) {
                x.rx_id = rx_id;
            }
        }
        let seq_id = self.next_seq_id;
        self.next_seq_id = seq_id.wrapping_add(1);
        let Some(x) = self.exchanges.get_mut(&id) else {
            return Err(ExchangeError::UnknownExchange(id));
        };
        let mut f_ctl = FCtl::empty();
        if x.role == Role::Responder {
            f_ctl |= FCtl::EXCHANGE_CONTEXT;
        }
        if x.first_pending {
            f_ctl |= FCtl::FIRST_SEQUENCE;
        }
        if seq.last_sequence {
            f_ctl |= FCtl::LAST_SEQUENCE;
        }
        if seq.relative_offset.is_some() {
            f_ctl |= FCtl::RELATIVE_OFFSET;
        }
        let mut header = FrameHeaderRepr {
            r_ctl: seq.r_ctl,
            d_id: x.peer,
            cs_ctl: 0,
            s_id: self.local_id,
            fc_type: x.fc_type,
            f_ctl,
            seq_id,
            df_ctl: DfCtl(0),
            seq_cnt: 0,
            ox_id: x.ox_id,
            rx_id: x.rx_id,
            parameter: 0,
        };
        let hold = seq.hold_initiative && !seq.last_sequence;
        x.first_pending = false;
        x.initiative = hold;
        let end_f_ctl = if hold {
            f_ctl | FCtl::END_SEQUENCE
        } else {
            f_ctl | FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE
        };

        let len = seq.payload.len();
        let size = self.config.max_payload;
        let frames = len.div_ceil(size).max(1);
        for i in 0..frames {
            let (from, to) = (i * size, len.min((i + 1) * size));
            let last = i + 1 == frames;
            // Invariant: check_len bounds `frames` to 2^16, so `i` fits SEQ_CNT.
            header.seq_cnt = i as u16;
            header.f_ctl = if last { end_f_ctl } else { f_ctl };
            // Relative offsets wrap like the 32-bit field they go in.
            header.parameter = seq
                .relative_offset
                .map_or(0, |base| base.wrapping_add(from as u32));
            self.transmit.push_back(FcFrame::new(
                if i == 0 { Sof::I3 } else { Sof::N3 },
                header,
                seq.payload.slice(from..to),
                if last { Eof::T } else { Eof::N },
            ));
        }
        if seq.last_sequence {
            self.free(id);
        }
        Ok(())
    }

    /// Aborts an open exchange: sends ABTS; [`Event::Aborted`] follows on BA_ACC, BA_RJT or
    /// R_A_TOV.
    pub fn abort(&mut self, now: Instant, id: ExchangeId) -> Result<(), ExchangeError> {
        match self.exchanges.get(&id).map(|x| &x.state) {
            None => Err(ExchangeError::UnknownExchange(id)),
            Some(State::Aborting { .. }) => Err(ExchangeError::Aborting(id)),
            Some(State::Open { .. }) => {
                self.send_abts(now, id);
                Ok(())
            }
        }
    }

    /// Forgets an exchange without a word to the peer: class 3 discards what it cannot
    /// deliver (FC-FS-4 §20.3), so an exchange of a TYPE nobody serves, or from a port that
    /// must log in first, is dropped this way; a later frame of it is counted as unknown.
    pub fn discard(&mut self, id: ExchangeId) -> Result<(), ExchangeError> {
        if !self.exchanges.contains_key(&id) {
            return Err(ExchangeError::UnknownExchange(id));
        }
        self.free(id);
        Ok(())
    }

    /// Takes in a received frame.
    pub fn handle_frame(&mut self, now: Instant, frame: FcFrame) {
        let h = frame.header;
        if h.fc_type == FcType::BLS && h.r_ctl.routing() == Routing::BASIC_LINK_DATA {
            self.handle_bls(&h);
            return;
        }
        let id = match self.lookup(&h) {
            Some(id) => id,
            None => match self.open_responder(now, &h) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(x) = self.exchanges.get_mut(&id) else {
            return;
        };
        if matches!(x.state, State::Aborting { .. }) {
            self.counters.stale += 1;
            return;
        }
        if x.role == Role::Originator && x.rx_id == UNASSIGNED_XID {
            x.rx_id = h.rx_id;
        }
        let at = match x.rx.iter().position(|s| s.seq_id == h.seq_id) {
            Some(at) => at,
            None if x.rx.len() >= self.config.max_open_sequences => {
                self.abort_with(now, id, Event::Overrun { id });
                return;
            }
            None => {
                x.rx.push(RxSequence {
                    seq_id: h.seq_id,
                    frames: BTreeMap::new(),
                    start: None,
                    end: None,
                    bytes: 0,
                    deadline: now,
                });
                x.rx.len() - 1
            }
        };
        let Some(seq) = x.rx.get_mut(at) else {
            return;
        };
        if seq.frames.contains_key(&h.seq_cnt) {
            self.counters.duplicate += 1;
            return;
        }
        let len = frame.payload.len();
        if frame.sof.is_initiate() && seq.start.is_none() {
            seq.start = Some(h.seq_cnt);
        }
        if h.f_ctl.contains(FCtl::END_SEQUENCE) && seq.end.is_none() {
            seq.end = Some(h.seq_cnt);
        }
        seq.frames.insert(h.seq_cnt, frame);
        seq.bytes += len;
        seq.deadline = now + self.config.e_d_tov;
        self.buffered += len;
        if seq.bytes > self.config.max_sequence_bytes
            || self.buffered > self.config.max_buffered_bytes
        {
            self.abort_with(now, id, Event::Overrun { id });
            return;
        }
        if let Some(n) = seq.complete_len() {
            let seq = x.rx.swap_remove(at);
            self.deliver(id, seq, n);
        }
    }

    /// Acts on the time-outs due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<ExchangeId> = self
            .exchanges
            .iter()
            .filter(|(_, x)| x.next_deadline() <= now)
            .map(|(id, _)| *id)
            .collect();
        // Handle simultaneous time-outs in a fixed order, oldest exchange first.
        due.sort_unstable();
        for id in due {
            match self.exchanges.get(&id).map(|x| &x.state) {
                Some(State::Aborting { .. }) => {
                    self.free(id);
                    self.events.push_back(Event::Aborted { id });
                }
                Some(State::Open { .. }) => self.abort_with(now, id, Event::TimedOut { id }),
                None => {}
            }
        }
    }

    /// The next frame to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<FcFrame> {
        self.transmit.pop_front()
    }

    /// The next event for the upper layer.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, if anything waits.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.exchanges.values().map(Exchange::next_deadline).min()
    }

    fn check_len(&self, len: usize) -> Result<(), ExchangeError> {
        let max = MAX_FRAMES_PER_SEQUENCE * self.config.max_payload;
        if len > max {
            return Err(ExchangeError::SequenceTooLong { len, max });
        }
        Ok(())
    }

    fn new_handle(&mut self) -> ExchangeId {
        self.next_handle += 1;
        ExchangeId(self.next_handle)
    }

    /// The open exchange a frame belongs to: by OX_ID when we originated it (the sender set
    /// EXCHANGE_CONTEXT), by (S_ID, OX_ID) when the peer did; either way a known RX_ID must
    /// match unless the frame's is unassigned.
    fn lookup(&self, h: &FrameHeaderRepr) -> Option<ExchangeId> {
        let from_responder = h.f_ctl.contains(FCtl::EXCHANGE_CONTEXT);
        let id = if from_responder {
            *self.originated.used.get(&h.ox_id)?
        } else {
            *self.responders.get(&(h.s_id, h.ox_id))?
        };
        let x = self.exchanges.get(&id)?;
        let role = if from_responder {
            Role::Originator
        } else {
            Role::Responder
        };
        (x.role == role
            && x.peer == h.s_id
            && x.ox_id == h.ox_id
            && (x.rx_id == UNASSIGNED_XID || h.rx_id == UNASSIGNED_XID || h.rx_id == x.rx_id))
            .then_some(id)
    }

    /// Opens a responder exchange for the first frame of a peer's exchange; counts and drops
    /// anything else.
    fn open_responder(&mut self, now: Instant, h: &FrameHeaderRepr) -> Option<ExchangeId> {
        let key = (h.s_id, h.ox_id);
        // A new exchange starts with a frame of the originator's first sequence.
        if h.f_ctl.contains(FCtl::EXCHANGE_CONTEXT)
            || !h.f_ctl.contains(FCtl::FIRST_SEQUENCE)
            || self.responders.contains_key(&key)
        {
            self.counters.unknown_exchange += 1;
            return None;
        }
        if self.exchanges.len() >= self.config.max_exchanges {
            self.counters.refused += 1;
            return None;
        }
        let id = self.new_handle();
        self.responders.insert(key, id);
        self.exchanges.insert(
            id,
            Exchange {
                role: Role::Responder,
                peer: h.s_id,
                fc_type: h.fc_type,
                ox_id: h.ox_id,
                rx_id: UNASSIGNED_XID,
                initiative: false,
                first_pending: false,
                state: State::Open {
                    deadline: now + self.config.responder_timeout,
                },
                rx: Vec::new(),
            },
        );
        Some(id)
    }

    /// Hands a complete sequence of `n` frames up; takes the initiative it passes and ends the
    /// exchange when it is the last.
    fn deliver(&mut self, id: ExchangeId, mut seq: RxSequence, n: usize) {
        self.buffered -= seq.bytes;
        let Some(start) = seq.start else {
            return;
        };
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            // Invariant: complete_len checked that these n SEQ_CNTs are present.
            if let Some(f) = seq.frames.remove(&start.wrapping_add(i as u16)) {
                frames.push(f);
            }
        }
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            return;
        };
        let end_f_ctl = last.header.f_ctl;
        // What the sequence did at its end (FC-FS-4 allows LAST_SEQUENCE on the last frame
        // only) is told by the last frame: the upper layer sees it on the header it gets.
        let ends = FCtl::END_SEQUENCE | FCtl::LAST_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
        let mut header = first.header;
        header.f_ctl = (header.f_ctl - ends) | (end_f_ctl & ends);
        let payload = if let [only] = frames.as_slice() {
            only.payload.clone()
        } else {
            let mut buf = BytesMut::with_capacity(frames.iter().map(|f| f.payload.len()).sum());
            for f in &frames {
                buf.extend_from_slice(&f.payload);
            }
            buf.freeze()
        };
        self.events.push_back(Event::Sequence {
            id,
            header,
            payload,
        });
        if end_f_ctl.contains(FCtl::LAST_SEQUENCE) {
            self.free(id);
        } else if end_f_ctl.contains(FCtl::SEQUENCE_INITIATIVE) {
            if let Some(x) = self.exchanges.get_mut(&id) {
                x.initiative = true;
            }
        }
    }

    fn handle_bls(&mut self, h: &FrameHeaderRepr) {
        let id = self.lookup(h);
        match (h.r_ctl, id) {
            (RCtl::ABTS, Some(id)) => {
                // Class 3: the recipient of an ABTS answers BA_ACC and ends the exchange.
                if let Some(x) = self.exchanges.get(&id) {
                    let rx_id = if x.rx_id == UNASSIGNED_XID {
                        h.rx_id
                    } else {
                        x.rx_id
                    };
                    let payload = BaAccRepr::exchange_aborted(x.ox_id, rx_id).to_vec();
                    let reply = self.bls_reply(h, RCtl::BA_ACC, rx_id);
                    self.transmit.push_back(FcFrame::single(reply, payload));
                }
                self.free(id);
                self.events.push_back(Event::AbortedByPeer { id });
            }
            (RCtl::ABTS, None) => {
                // An ABTS naming no open exchange gets BA_RJT, invalid OX_ID-RX_ID combination.
                let payload = BaRjt::new(
                    BaRjtReason::LOGICAL_ERROR,
                    BaRjtExplanation::INVALID_OX_ID_RX_ID,
                )
                .to_vec();
                let reply = self.bls_reply(h, RCtl::BA_RJT, h.rx_id);
                self.transmit.push_back(FcFrame::single(reply, payload));
            }
            (RCtl::BA_ACC | RCtl::BA_RJT, Some(id))
                if self
                    .exchanges
                    .get(&id)
                    .is_some_and(|x| matches!(x.state, State::Aborting { .. })) =>
            {
                self.free(id);
                self.events.push_back(Event::Aborted { id });
            }
            _ => self.counters.stale += 1,
        }
    }

    /// The header of a BA_ACC or BA_RJT answering the ABTS `abts`: the other exchange context,
    /// one frame that ends the exchange.
    fn bls_reply(&mut self, abts: &FrameHeaderRepr, r_ctl: RCtl, rx_id: u16) -> FrameHeaderRepr {
        let mut f_ctl = FCtl::LAST_SEQUENCE | FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
        if !abts.f_ctl.contains(FCtl::EXCHANGE_CONTEXT) {
            f_ctl |= FCtl::EXCHANGE_CONTEXT;
        }
        FrameHeaderRepr {
            r_ctl,
            d_id: abts.s_id,
            s_id: self.local_id,
            fc_type: FcType::BLS,
            f_ctl,
            seq_id: self.take_seq_id(),
            ox_id: abts.ox_id,
            rx_id,
            ..FrameHeaderRepr::default()
        }
    }

    fn take_seq_id(&mut self) -> u8 {
        let seq_id = self.next_seq_id;
        self.next_seq_id = seq_id.wrapping_add(1);
        seq_id
    }

    fn abort_with(&mut self, now: Instant, id: ExchangeId, event: Event) {
        self.send_abts(now, id);
        self.events.push_back(event);
    }

    /// Drops what the exchange buffered, sends ABTS for the whole exchange (Parameter 0, as
    /// class 3 ports send it) and waits R_A_TOV for the answer.
    fn send_abts(&mut self, now: Instant, id: ExchangeId) {
        let seq_id = self.take_seq_id();
        let Some(x) = self.exchanges.get_mut(&id) else {
            return;
        };
        self.buffered -= x.rx.drain(..).map(|s| s.bytes).sum::<usize>();
        x.state = State::Aborting {
            until: now + self.config.r_a_tov,
        };
        let mut f_ctl = FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
        if x.role == Role::Responder {
            f_ctl |= FCtl::EXCHANGE_CONTEXT;
        }
        let header = FrameHeaderRepr {
            r_ctl: RCtl::ABTS,
            d_id: x.peer,
            s_id: self.local_id,
            fc_type: FcType::BLS,
            f_ctl,
            seq_id,
            ox_id: x.ox_id,
            rx_id: x.rx_id,
            ..FrameHeaderRepr::default()
        };
        self.transmit
            .push_back(FcFrame::single(header, Bytes::new()));
    }

    /// Forgets an exchange and everything it held.
    fn free(&mut self, id: ExchangeId) {
        let Some(x) = self.exchanges.remove(&id) else {
            return;
        };
        self.buffered -= x.rx.iter().map(|s| s.bytes).sum::<usize>();
        match x.role {
            Role::Originator => self.originated.release(x.ox_id, id),
            Role::Responder => self.assigned.release(x.rx_id, id),
        }
        if x.role == Role::Responder {
            self.responders.remove(&(x.peer, x.ox_id));
        }
    }
}

#[cfg(test)]
mod pair;

#[cfg(test)]
mod tests {
    use super::*;

    const A: FcId = FcId::from_parts(1, 1, 0);
    const B: FcId = FcId::from_parts(1, 2, 0);
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn manager(config: Config) -> ExchangeManager {
        let mut m = ExchangeManager::new(config);
        m.set_local_id(A);
        m
    }

    fn drain(m: &mut ExchangeManager) -> Vec<FcFrame> {
        std::iter::from_fn(|| m.poll_transmit()).collect()
    }

    #[test]
    fn test_split_64k_sequence() {
        let now = Instant::now();
        let mut m = manager(Config {
            max_payload: 2048,
            xid_seed: 0x0100,
            ..Config::default()
        });
        let payload = Bytes::from((0..65536u32).map(|i| i as u8).collect::<Vec<_>>());
        let seq = Outbound::new(RCtl::UNSOLICITED_DATA, payload.clone()).with_relative_offset(0x10);
        let id = m.originate(now, B, FcType::FCP, seq, TIMEOUT).unwrap();
        let frames = drain(&mut m);
        assert_eq!(frames.len(), 32);
        for (i, f) in frames.iter().enumerate() {
            let last = i == 31;
            let h = f.header;
            assert_eq!((h.s_id, h.d_id, h.fc_type), (A, B, FcType::FCP));
            assert_eq!((h.ox_id, h.rx_id), (0x0100, UNASSIGNED_XID));
            assert_eq!(usize::from(h.seq_cnt), i);
            assert_eq!(h.seq_id, frames[0].header.seq_id);
            assert_eq!(h.parameter as usize, 0x10 + i * 2048);
            let mut f_ctl = FCtl::FIRST_SEQUENCE | FCtl::RELATIVE_OFFSET;
            if last {
                f_ctl |= FCtl::END_SEQUENCE | FCtl::SEQUENCE_INITIATIVE;
            }
            assert_eq!(h.f_ctl, f_ctl);
            assert_eq!(f.sof, if i == 0 { Sof::I3 } else { Sof::N3 });
            assert_eq!(f.eof, if last { Eof::T } else { Eof::N });
            // Cut from the caller's buffer, not copied.
            assert_eq!(f.payload.as_ptr(), payload[i * 2048..].as_ptr());
            assert_eq!(f.payload.len(), 2048);
        }
        let info = m.exchange(id).unwrap();
        assert_eq!(info.role, Role::Originator);
        assert!(!info.initiative);
        assert_eq!(
            m.send_sequence(now, id, Outbound::new(RCtl::UNSOLICITED_DATA, Bytes::new())),
            Err(ExchangeError::NoInitiative(id))
        );
    }

    #[test]
    fn test_empty_sequence_is_one_frame() {
        let now = Instant::now();
        let mut m = manager(Config::default());
        let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new()).last();
        m.originate(now, B, FcType::ELS, seq, TIMEOUT).unwrap();
        let frames = drain(&mut m);
        assert_eq!(frames.len(), 1);
        let h = frames[0].header;
        assert_eq!(h.f_ctl, FCtl::REQUEST | FCtl::LAST_SEQUENCE);
        assert_eq!((frames[0].sof, frames[0].eof), (Sof::I3, Eof::T));
        // A one-sequence exchange ends when it is sent.
        assert_eq!(m.open_exchanges(), 0);
    }

    #[test]
    fn test_sequence_too_long() {
        let now = Instant::now();
        let mut m = manager(Config {
            max_payload: 1,
            ..Config::default()
        });
        let seq = Outbound::new(RCtl::UNSOLICITED_DATA, vec![0; 65537]);
        assert_eq!(
            m.originate(now, B, FcType::FCP, seq, TIMEOUT),
            Err(ExchangeError::SequenceTooLong {
                len: 65537,
                max: 65536
            })
        );
        assert_eq!(m.open_exchanges(), 0);
        assert!(m.poll_transmit().is_none());
    }

    #[test]
    fn test_max_payload_clamped() {
        let mut m = manager(Config {
            max_payload: 0,
            ..Config::default()
        });
        assert_eq!(m.max_payload(), 1);
        m.set_max_payload(4096);
        assert_eq!(m.max_payload(), MAX_PAYLOAD);
    }

    #[test]
    fn test_too_many_exchanges() {
        let now = Instant::now();
        let mut m = manager(Config {
            max_exchanges: 1,
            ..Config::default()
        });
        let seq = || Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
        m.originate(now, B, FcType::ELS, seq(), TIMEOUT).unwrap();
        assert_eq!(
            m.originate(now, B, FcType::ELS, seq(), TIMEOUT),
            Err(ExchangeError::TooManyExchanges { open: 1 })
        );
    }

    #[test]
    fn test_ox_id_wraps_skips_ffff_and_open_ids() {
        let now = Instant::now();
        let mut m = manager(Config {
            xid_seed: 0xFFFD,
            max_exchanges: usize::MAX,
            ..Config::default()
        });
        let originate = |m: &mut ExchangeManager, last: bool| {
            let mut seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
            seq.last_sequence = last;
            let id = m.originate(now, B, FcType::ELS, seq, TIMEOUT).unwrap();
            let frames = drain(m);
            (id, frames[0].header.ox_id)
        };
        // 0xFFFD stays open.
        let (open, held) = originate(&mut m, false);
        assert_eq!(held, 0xFFFD);
        assert_eq!(originate(&mut m, true).1, 0xFFFE);
        // FFFF is "unassigned": skipped.
        assert_eq!(originate(&mut m, true).1, 0x0000);
        for want in 1..0xFFFD {
            assert_eq!(originate(&mut m, true).1, want);
        }
        // Round again: 0xFFFD is still in use, 0xFFFE was freed and is reused.
        assert_eq!(originate(&mut m, true).1, 0xFFFE);
        assert_eq!(originate(&mut m, true).1, 0x0000);
        assert_eq!(m.open_exchanges(), 1);
        assert_eq!(m.exchange(open).unwrap().ox_id, 0xFFFD);
    }

    #[test]
    fn test_no_free_xid() {
        let now = Instant::now();
        let mut m = manager(Config {
            max_exchanges: usize::MAX,
            ..Config::default()
        });
        for _ in 0..0xFFFF {
            let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
            m.originate(now, B, FcType::ELS, seq, TIMEOUT).unwrap();
        }
        let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
        assert_eq!(
            m.originate(now, B, FcType::ELS, seq, TIMEOUT),
            Err(ExchangeError::NoFreeXid)
        );
        assert_eq!(m.open_exchanges(), 0xFFFF);
    }

    /// ABTS from 010200 for OX_ID 0x1234, an exchange nobody opened.
    static ABTS_FRAME: [u8; 24] = [
        0x81, 0x01, 0x01, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x09, 0x00, 0x00, 0x07, 0x00, 0x00,
        0x00, 0x12, 0x34, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn test_abts_for_unknown_exchange_gets_ba_rjt() {
        let now = Instant::now();
        let mut m = manager(Config::default());
        let abts = FrameHeaderRepr::parse_bytes(&ABTS_FRAME).unwrap();
        m.handle_frame(now, FcFrame::single(abts, Bytes::new()));
        let frames = drain(&mut m);
        assert_eq!(frames.len(), 1);
        let h = frames[0].header;
        assert_eq!((h.r_ctl, h.fc_type), (RCtl::BA_RJT, FcType::BLS));
        assert_eq!((h.s_id, h.d_id, h.ox_id, h.rx_id), (A, B, 0x1234, 0xFFFF));
        assert_eq!(h.f_ctl, FCtl::LAST_REPLY);
        // reason 03 logical error, explanation 03 invalid OX_ID-RX_ID combination.
        assert_eq!(&frames[0].payload[..], &[0x00, 0x03, 0x03, 0x00]);
        assert!(m.poll_event().is_none());
        assert_eq!(m.open_exchanges(), 0);
    }

    #[test]
    fn test_unknown_non_first_frame_dropped() {
        let now = Instant::now();
        let mut m = manager(Config::default());
        let mut h = FrameHeaderRepr::request(RCtl::SOLICITED_DATA, FcType::FCP, A, B, 0x0042);
        h.f_ctl = FCtl::END_SEQUENCE;
        m.handle_frame(now, FcFrame::single(h, vec![1, 2, 3, 4]));
        // From a responder, to an OX_ID we never used.
        h.f_ctl = FCtl::LAST_REPLY;
        m.handle_frame(now, FcFrame::single(h, vec![1, 2, 3, 4]));
        // A BA_ACC nobody waited for.
        h.r_ctl = RCtl::BA_ACC;
        h.fc_type = FcType::BLS;
        m.handle_frame(now, FcFrame::single(h, vec![0; 12]));
        assert_eq!(m.counters().unknown_exchange, 2);
        assert_eq!(m.counters().stale, 1);
        assert_eq!(m.open_exchanges(), 0);
        assert!(m.poll_transmit().is_none());
        assert!(m.poll_event().is_none());
        assert!(m.poll_timeout().is_none());
    }

    #[test]
    fn test_overrun_aborts() {
        let now = Instant::now();
        let mut m = manager(Config {
            max_sequence_bytes: 8,
            ..Config::default()
        });
        let mut h = FrameHeaderRepr::request(RCtl::UNSOLICITED_DATA, FcType::FCP, A, B, 0x0042);
        h.f_ctl = FCtl::FIRST_SEQUENCE;
        m.handle_frame(
            now,
            FcFrame::new(Sof::I3, h, Bytes::from_static(&[0; 8]), Eof::N),
        );
        assert_eq!(m.buffered_bytes(), 8);
        h.seq_cnt = 1;
        m.handle_frame(
            now,
            FcFrame::new(Sof::N3, h, Bytes::from_static(&[0; 4]), Eof::N),
        );
        let id = match m.poll_event() {
            Some(Event::Overrun { id }) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(m.buffered_bytes(), 0);
        let abts = drain(&mut m);
        assert_eq!(abts.len(), 1);
        let a = abts[0].header;
        assert_eq!(
            (a.r_ctl, a.fc_type, a.d_id, a.ox_id, a.rx_id),
            (RCtl::ABTS, FcType::BLS, B, 0x0042, UNASSIGNED_XID)
        );
        assert!(a.f_ctl.contains(FCtl::EXCHANGE_CONTEXT));
        // Frames of an exchange being aborted are dropped.
        m.handle_frame(
            now,
            FcFrame::new(Sof::N3, h, Bytes::from_static(&[0; 4]), Eof::N),
        );
        assert_eq!(m.counters().stale, 1);
        // No answer: freed after R_A_TOV.
        let t = m.poll_timeout().unwrap();
        assert_eq!(t, now + Config::default().r_a_tov);
        m.handle_timeout(t);
        assert_eq!(m.poll_event(), Some(Event::Aborted { id }));
        assert_eq!(m.open_exchanges(), 0);
    }

    #[test]
    fn test_abort_api() {
        let now = Instant::now();
        let mut m = manager(Config::default());
        let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
        let id = m.originate(now, B, FcType::ELS, seq, TIMEOUT).unwrap();
        let _ = drain(&mut m);
        m.abort(now, id).unwrap();
        assert_eq!(m.abort(now, id), Err(ExchangeError::Aborting(id)));
        let seq = Outbound::new(RCtl::UNSOLICITED_CONTROL, Bytes::new());
        assert_eq!(
            m.send_sequence(now, id, seq),
            Err(ExchangeError::Aborting(id))
        );
        assert_eq!(drain(&mut m)[0].header.r_ctl, RCtl::ABTS);
        m.handle_timeout(now + Duration::from_secs(10));
        assert_eq!(m.poll_event(), Some(Event::Aborted { id }));
        assert_eq!(m.abort(now, id), Err(ExchangeError::UnknownExchange(id)));
    }
}
