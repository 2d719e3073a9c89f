//! Replay as a controller: its control plane, the sans-IO [`Core`], driven on virtual time.
//!
//! From the capture it takes the CT_IUs of GS_TYPE 0xE0 (reassembled from their frames and
//! decoded with the installation key, HMAC checked) and the name server exchanges the driver
//! learns its peers from. A fresh [`Core`] (the capture's name, site, port name, heartbeat,
//! empty database; its clock and sequence numbers from the capture) is fed, at their capture
//! times:
//!
//! - the peers' requests (HEARTBEAT, UPDATE, PULL, CLAIM: [`Core::handle_request`]; the
//!   driver's kinds RESERVE, RELEASE, COMMIT, LEASE, INVALIDATE, ROUTE go through
//!   [`Core::admit`] only, as the driver does);
//! - the replies to its own requests ([`Core::handle_reply`]) and rejects
//!   ([`Core::handle_failure`]);
//! - the peers the name server names (GPN_ID accepts: [`Core::add_peer`]) and its own
//!   N_Port_ID (the S_ID of its GID_FT: [`Core::set_identity`]);
//! - [`Core::handle_timeout`] at [`Core::poll_timeout`] as the virtual time passes.
//!
//! What it sends — requests and replies, in messages — is compared with the capture's
//! outbound CT 0xE0 messages, decoded: kind, header (sender, generation, sequence number)
//! and body, field by field. The requests the driver makes itself (RESERVE from the
//! builder, LEASE/INVALIDATE/ROUTE from the I/O path) take their header from the core
//! ([`Core::header`]), which is compared; their bodies are the driver's and are not, and
//! neither are the driver's answers to such requests (their header is).
//!
//! The key: `--key-file` (hex, as a controller's `key_file`), or the test key that
//! `fcsan pcap record` stores in the metadata of the captures it makes (`test_key_hex`); a
//! capture written by a controller with `--capture` never holds its key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use controller::core::{Config, Core, Durable, Identity};
use controller::wire::{self, Header, Key, Kind, Message, Reason, Reply, Request};
use fc_frames::{FCtl, FcFrame, FcId, Wwn};
use fc_pcap::capture::Direction;

use crate::compare::Difference;
use crate::{frames, Loaded, Outcome, ReplayError, Role};

/// The metadata key of the test key `fcsan pcap record` stores (hex).
pub const TEST_KEY_FIELD: &str = "test_key_hex";
/// The metadata key of the controller clock's offset from the capture's time stamps (ms).
pub const CLOCK_OFFSET_FIELD: &str = "controller_clock_offset_ms";

/// Replays `loaded` as a controller, with the test key its metadata holds.
pub fn replay(loaded: &Loaded) -> Result<Outcome, ReplayError> {
    replay_with_key(loaded, None)
}

/// Replays the capture at `path` as a controller with the key in `key_file` (hex digits).
pub fn replay_file_with_key(path: &Path, key_file: &Path) -> Result<Outcome, ReplayError> {
    let setup = |why: String| ReplayError::Setup {
        role: "controller",
        why,
    };
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| setup(format!("key file {}: {e}", key_file.display())))?;
    let key =
        Key::from_hex(&text).map_err(|e| setup(format!("key file {}: {e}", key_file.display())))?;
    let loaded = crate::load(path, Some(Role::Controller))?;
    replay_with_key(&loaded, Some(key))
}

/// A message the controller sent (or the replay made it send): to whom, and for replies the
/// sequence number of the request answered.
#[derive(Debug, Clone)]
struct Said {
    /// The capture's frame number (the sequence's last frame; 0 for the replay's).
    number: usize,
    /// The peer (its WWPN, when known).
    peer: Option<Wwn>,
    /// The message.
    message: Message,
    /// For an answer: the request's sequence number; for a request: its own.
    seq: u64,
    /// Whether this is a request (not an answer).
    request: bool,
    /// Made by the driver, not the core: only the header is compared.
    driver: bool,
    /// For an answer in the capture: the frame number of the request it answers.
    answers: usize,
    /// For the replay's request made by a timer: the frame number of the capture's event
    /// before which the timer ran (0: not a timer's).
    tick_before: usize,
    /// For the replay's request made while it handled a peer's request: that request's frame
    /// number (0: not so made).
    caused_by: usize,
}

/// An inbound request the replay answered or an outbound request awaiting its answer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    peer: Option<Wwn>,
    kind: Kind,
    seq: u64,
    /// For a peer's request: the replay's answer (its index in what the replay said).
    answer: Option<usize>,
    /// The request's frame number.
    number: usize,
}

/// Replays `loaded` as a controller with `key` (else the metadata's test key).
pub fn replay_with_key(loaded: &Loaded, key: Option<Key>) -> Result<Outcome, ReplayError> {
    let setup = |why: String| ReplayError::Setup {
        role: "controller",
        why,
    };
    let meta = &loaded.metadata;
    let c = &meta.config;
    let key = match key {
        Some(k) => k,
        None => {
            let hex = meta
                .extra
                .get(TEST_KEY_FIELD)
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    setup(
                        "the capture holds no key (only captures made by fcsan pcap record with \
                     its test key do): give the installation's key with --key-file FILE"
                            .into(),
                    )
                })?;
            Key::from_hex(hex).map_err(|e| setup(format!("metadata {TEST_KEY_FIELD}: {e}")))?
        }
    };
    let text = |k: &str| c[k].as_str().map(str::to_owned);
    let wwpn: Wwn = text("port_name")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| setup("metadata: no port_name".into()))?;
    let heartbeat_ms = c["heartbeat_ms"]
        .as_u64()
        .ok_or_else(|| setup("metadata: no heartbeat_ms".into()))?;
    let mut notes = Vec::new();
    if c["database_fresh"] == serde_json::Value::Bool(false) {
        notes.push(
            "the controller's database held records when the capture began; the replay starts \
             with an empty one, so what it says may differ"
                .to_owned(),
        );
    }
    let offset = meta
        .extra
        .get(CLOCK_OFFSET_FIELD)
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let to_ms = |ts: Duration| {
        let ms = i64::try_from(ts.as_millis()).unwrap_or(i64::MAX);
        u64::try_from(ms.saturating_add(offset)).unwrap_or(0)
    };
    let messages = messages(loaded, &key)?;
    // The core's start: its sequence numbers begin at start << 20, so any request it sent
    // tells it exactly; else the capture's start.
    let start = messages
        .iter()
        .find_map(|m| match (&m.dir, &m.what) {
            (Direction::Outbound, What::Ct(Message::Request(h, _))) => Some(h.seq >> 20),
            _ => None,
        })
        .unwrap_or_else(|| to_ms(Duration::from_nanos(meta.clock_origin_ns)));
    let me = Identity {
        name: text("name").unwrap_or_default(),
        site: text("site").unwrap_or_default(),
        wwpn,
        fc_id: FcId::UNIDENTIFIED,
        api: text("api_url").unwrap_or_default(),
    };
    let peers: Vec<Wwn> = c["peers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().and_then(|s| s.parse().ok()))
        .collect();
    let setup = Setup {
        me,
        config: Config::with_heartbeat(heartbeat_ms),
        start,
        peers,
        to_ms: &to_ms,
    };
    // The driver answers each request in a task of its own, and reads the generation for the
    // answer's header under the lock again when it sends it: a request and a frame that came
    // just after it may have been handled in either order, and a timer may have run between
    // the handling and the answer. The capture's order first; where an answer differs, its
    // header's generation read when the answer left, then the request handled just before
    // its answer left.
    // So may a timer, late under load, have run after an event that came after its due
    // time: where a request of a timer differs and the capture shows it after the next event,
    // the timers run after that event.
    let mut schedule = Schedule::default();
    let mut once = run_once(&setup, &messages, &schedule);
    for _ in 0..64 {
        let Some(retry) = once.retry else { break };
        let mut next = schedule.clone();
        match retry {
            Retry::Request(q) => {
                let mode = next.modes.entry(q).or_insert(Mode::InOrder);
                *mode = match *mode {
                    Mode::InOrder => Mode::LateGeneration,
                    Mode::LateGeneration => Mode::Late,
                    Mode::Late => break,
                };
            }
            Retry::Tick(k) => {
                if !next.late_ticks.insert(k) {
                    break;
                }
            }
            Retry::Early(k) => {
                if !next.early_ticks.insert(k) {
                    break;
                }
            }
        }
        let again = run_once(&setup, &messages, &next);
        tracing::debug!(?retry, difference = ?again.difference.as_ref().map(|d| d.frame), next = ?again.retry, "replayed again");
        let better = match (&again.difference, &once.difference) {
            (None, _) => true,
            (Some(a), Some(b)) => a.frame > b.frame,
            (Some(_), None) => false,
        };
        if better {
            once = again;
            schedule = next;
        } else if matches!(
            (retry, again.retry),
            (Retry::Request(a), Some(Retry::Request(b))) if a == b
        ) || matches!(
            (retry, again.retry),
            (Retry::Tick(a), Some(Retry::Tick(b))) if b > a
        ) {
            // The next way of handling the same request; the timer later still.
            schedule = next;
            once.retry = again.retry;
        } else {
            break;
        }
    }
    let late: Vec<String> = schedule
        .modes
        .iter()
        .filter(|(_, m)| **m != Mode::InOrder)
        .map(|(n, m)| format!("{n} ({})", m.name()))
        .chain(
            schedule
                .late_ticks
                .iter()
                .map(|n| format!("{n} (timers ran after it)")),
        )
        .chain(
            schedule
                .early_ticks
                .iter()
                .map(|n| format!("{n} (a timer due just after it ran before it)")),
        )
        .collect();
    if once.difference.is_none() && !late.is_empty() {
        notes.push(format!(
            "handled out of the capture's order, as the driver's tasks did: frame(s) {}",
            late.join(", ")
        ));
    }
    for (kind, n) in &once.driver_kinds {
        notes.push(format!(
            "{n} {kind} message(s): made and answered by the driver, not the core; only their \
             headers are compared"
        ));
    }
    if once.unanswered > 0 {
        notes.push(format!(
            "{} request(s) the capture never answers: not fed (the node refused them, a port \
             not logged in, or the capture ended first)",
            once.unanswered
        ));
    }
    Ok(Outcome {
        role: Role::Controller,
        fed: once.fed,
        expected: once.expected,
        sent: once.sent,
        difference: once.difference,
        notes,
    })
}

/// How the replay orders what the driver did in tasks of their own.
#[derive(Debug, Clone, Default)]
struct Schedule {
    /// The peers' requests not handled in order, by frame number.
    modes: BTreeMap<usize, Mode>,
    /// The events before which the timers due do not run (they run after).
    late_ticks: BTreeSet<usize>,
    /// The events before which a timer due within [`EARLY_WINDOW_MS`] after them runs.
    early_ticks: BTreeSet<usize>,
}

/// How far after an event a timer may be due and still have run before the driver handled
/// the event (the event's frame is stamped when it arrived; a busy driver handles it later).
const EARLY_WINDOW_MS: u64 = 20;

/// What a difference suggests to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The request of this frame number handled otherwise.
    Request(usize),
    /// The timers due before the event of this frame number run after it.
    Tick(usize),
    /// A timer due just after the event of this frame number runs before it.
    Early(usize),
}

/// When the replay handles a peer's request, as the driver may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// When it came, the answer's header made then.
    InOrder,
    /// When it came; the answer's header's generation read when the answer left.
    LateGeneration,
    /// Just before its answer left.
    Late,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::InOrder => "in order",
            Mode::LateGeneration => "generation read when answered",
            Mode::Late => "handled when answered",
        }
    }
}

/// What a fresh core starts from.
struct Setup<'a> {
    me: Identity,
    config: Config,
    start: u64,
    peers: Vec<Wwn>,
    to_ms: &'a dyn Fn(Duration) -> u64,
}

/// One replay's result.
struct Once {
    fed: usize,
    expected: usize,
    sent: usize,
    difference: Option<Difference>,
    /// What to try where the difference is.
    retry: Option<Retry>,
    driver_kinds: BTreeMap<&'static str, usize>,
    /// Peers' requests the capture never answers: not fed.
    unanswered: usize,
}

/// Feeds `messages` to a fresh core; the peers' requests handled as `modes` says (by their
/// frame numbers; [`Mode::InOrder`] when not there).
fn run_once(setup: &Setup<'_>, messages: &[Seen], schedule: &Schedule) -> Once {
    let modes = &schedule.modes;
    let wwpn = setup.me.wwpn;
    let mut core = Core::new(
        setup.me.clone(),
        setup.config.clone(),
        Durable::default(),
        setup.start,
    );
    for &w in &setup.peers {
        core.add_peer(setup.start, w);
    }
    let mut r = Run {
        core,
        produced: Vec::new(),
        now: setup.start,
        ids: HashMap::new(),
        ticking: 0,
        handling: 0,
    };
    r.drain();
    let mut expected: Vec<Said> = Vec::new();
    // Our requests by (peer's N_Port_ID, OX_ID); the peers' requests by the same.
    let mut ours: HashMap<(u32, u16), Pending> = HashMap::new();
    let mut theirs: HashMap<(u32, u16), Pending> = HashMap::new();
    let mut deferred: HashMap<(u32, u16), (usize, Header, Request)> = HashMap::new();
    let mut gpn: HashMap<u16, FcId> = HashMap::new();
    let mut fed = 0;
    let mut driver_kinds = BTreeMap::new();
    let mut unanswered = 0;
    let answered = answered(messages);
    for m in messages {
        let mut t = (setup.to_ms)(m.ts).max(r.now);
        if schedule.early_ticks.contains(&m.number) {
            if let Some(due) = r.core.poll_timeout().filter(|d| *d <= t + EARLY_WINDOW_MS) {
                r.ticking = m.number;
                r.advance(due);
                r.ticking = 0;
                t = t.max(r.now);
            }
        }
        if schedule.late_ticks.contains(&m.number) {
            // The driver's timer ran late, after this event: the timers due run after it.
            r.now = t;
        } else {
            r.ticking = m.number;
            r.advance(t);
            r.ticking = 0;
        }
        tracing::debug!(number = m.number, at = t, dir = ?m.dir, what = ?m.what, "capture");
        match (m.dir, &m.what) {
            (Direction::Outbound, What::GidFt) => {
                let api = r.core.identity().api.clone();
                r.core.set_identity(m.s_id, api);
            }
            (Direction::Outbound, What::GpnId(id)) => {
                gpn.insert(m.ox_id, *id);
            }
            (Direction::Inbound, What::GpnIdAccept(w)) => {
                if let Some(id) = gpn.remove(&m.ox_id) {
                    fed += 1;
                    r.ids.insert(id.to_u32(), *w);
                    r.core.add_peer(t, *w);
                    r.drain();
                }
            }
            (Direction::Inbound, What::Ct(Message::Request(..)))
                if !answered.contains(&m.number) =>
            {
                unanswered += 1;
            }
            (Direction::Inbound, What::Ct(Message::Request(h, req))) => {
                fed += 1;
                r.ids.insert(m.s_id.to_u32(), h.sender);
                let kind = req.kind();
                if !is_core_kind(kind) {
                    *driver_kinds.entry(kind.name()).or_insert(0) += 1;
                }
                let key = (m.s_id.to_u32(), m.ox_id);
                theirs.insert(
                    key,
                    Pending {
                        peer: Some(h.sender),
                        kind,
                        seq: h.seq,
                        answer: None,
                        number: m.number,
                    },
                );
                let mode = modes.get(&m.number).copied().unwrap_or(Mode::InOrder);
                if mode == Mode::Late {
                    deferred.insert(key, (m.number, *h, req.clone()));
                } else {
                    let i = r.answer(m.number, t, wwpn, *h, req.clone());
                    if let Some(p) = theirs.get_mut(&key) {
                        p.answer = Some(i);
                    }
                }
            }
            (Direction::Inbound, What::Ct(msg)) => {
                // An answer to one of our requests.
                let Some(p) = ours.remove(&(m.s_id.to_u32(), m.ox_id)) else {
                    continue;
                };
                if !is_core_kind(p.kind) {
                    continue;
                }
                fed += 1;
                let Some(to) = p.peer else { continue };
                match msg {
                    Message::Reply(h, kind, reply) if h.sender == to => {
                        r.core.handle_reply(t, *h, *kind, reply.clone())
                    }
                    _ => r.core.handle_failure(t, to, p.seq, true),
                }
                r.drain();
            }
            (Direction::Outbound, What::Ct(msg)) => {
                let key = (m.d_id.to_u32(), m.ox_id);
                let peer = r.ids.get(&m.d_id.to_u32()).copied();
                let said = match msg {
                    Message::Request(h, req) => {
                        let kind = req.kind();
                        ours.insert(
                            key,
                            Pending {
                                peer,
                                kind,
                                seq: h.seq,
                                answer: None,
                                number: m.number,
                            },
                        );
                        if !is_core_kind(kind) {
                            // The driver's own request: the core only numbers it.
                            *driver_kinds.entry(kind.name()).or_insert(0) += 1;
                            if let Some(to) = peer {
                                let header = r.core.header(to);
                                r.produced.push(Said {
                                    number: 0,
                                    peer,
                                    message: Message::Request(header, req.clone()),
                                    seq: header.seq,
                                    request: true,
                                    driver: true,
                                    answers: 0,
                                    tick_before: 0,
                                    caused_by: 0,
                                });
                            }
                        }
                        Said {
                            number: m.number,
                            peer,
                            seq: h.seq,
                            message: msg.clone(),
                            request: true,
                            driver: !is_core_kind(kind),
                            answers: 0,
                            tick_before: 0,
                            caused_by: 0,
                        }
                    }
                    Message::Reply(..) | Message::Reject(_) => {
                        if let Some((number, h, req)) = deferred.remove(&key) {
                            let i = r.answer(number, t, wwpn, h, req);
                            if let Some(p) = theirs.get_mut(&key) {
                                p.answer = Some(i);
                            }
                        }
                        let p = theirs.remove(&key);
                        let late =
                            p.is_some_and(|p| modes.get(&p.number) == Some(&Mode::LateGeneration));
                        let generation = r.core.durable().generation;
                        if let (
                            true,
                            Some(Said {
                                message: Message::Reply(h, ..),
                                ..
                            }),
                        ) = (
                            late,
                            p.and_then(|p| p.answer).and_then(|i| r.produced.get_mut(i)),
                        ) {
                            h.generation = generation;
                        }
                        Said {
                            number: m.number,
                            peer: p.and_then(|p| p.peer).or(peer),
                            seq: p.map_or(0, |p| p.seq),
                            message: msg.clone(),
                            request: false,
                            driver: p.is_some_and(|p| !is_core_kind(p.kind)),
                            answers: p.map_or(0, |p| p.number),
                            tick_before: 0,
                            caused_by: 0,
                        }
                    }
                };
                expected.push(said);
            }
            _ => {}
        }
    }
    // Requests still deferred were never answered in the capture: handled at its end.
    let end = r.now;
    for (_, (number, h, req)) in std::mem::take(&mut deferred) {
        r.answer(number, end, wwpn, h, req);
    }
    let found = compare(&expected, &r.produced);
    let retry = found.as_ref().and_then(|(d, got)| {
        let e = expected.iter().find(|e| e.number == d.frame)?;
        if !e.request && e.answers > 0 {
            return Some(Retry::Request(e.answers));
        }
        let g = r.produced.get((*got)?)?;
        if !e.request {
            return None;
        }
        // A timer's request where the capture has another: the timer ran later there, after
        // this event (the event's own frame included: a request the driver numbered itself).
        if g.tick_before > 0 {
            if e.number >= g.tick_before && !schedule.late_ticks.contains(&g.tick_before) {
                return Some(Retry::Tick(g.tick_before));
            }
            // Earlier: before the peer's message that came next (the replay's clock, in whole
            // milliseconds from the capture's time stamps, may put the timer just after it).
            return messages
                .iter()
                .find(|m| {
                    m.number > e.number
                        && m.dir == Direction::Inbound
                        && matches!(m.what, What::Ct(_))
                })
                .map(|m| Retry::Early(m.number));
        }
        // A request made while handling a peer's where the capture has another: the driver
        // handled that peer's request later (its task ran after the timer).
        (g.caused_by > 0).then_some(Retry::Request(g.caused_by))
    });
    let difference = found.map(|(d, _)| d);
    Once {
        fed,
        expected: expected.len(),
        sent: r.produced.len(),
        difference,
        retry,
        driver_kinds,
        unanswered,
    }
}

/// The frame numbers of the peers' requests the capture answers (a request that reaches the
/// controller's driver is always answered, FS_ACC or FS_RJT; one the node refuses, or that
/// came as the capture ended, is not).
fn answered(messages: &[Seen]) -> BTreeSet<usize> {
    let mut open: HashMap<(u32, u16), usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for m in messages {
        match (m.dir, &m.what) {
            (Direction::Inbound, What::Ct(Message::Request(..))) => {
                open.insert((m.s_id.to_u32(), m.ox_id), m.number);
            }
            (Direction::Outbound, What::Ct(Message::Reply(..) | Message::Reject(_))) => {
                if let Some(n) = open.remove(&(m.d_id.to_u32(), m.ox_id)) {
                    out.insert(n);
                }
            }
            _ => {}
        }
    }
    out
}

/// The fresh core and what it sent.
struct Run {
    core: Core,
    produced: Vec<Said>,
    now: u64,
    /// Peers' N_Port_IDs to their WWPNs, as learned.
    ids: HashMap<u32, Wwn>,
    /// While timers run before the capture's event of this frame number: that number.
    ticking: usize,
    /// While a peer's request of this frame number is handled: that number.
    handling: usize,
}

impl Run {
    /// Handles every time-out due by `t`, each at its time.
    fn advance(&mut self, t: u64) {
        while let Some(due) = self.core.poll_timeout().filter(|d| *d <= t) {
            self.now = due.max(self.now);
            self.core.handle_timeout(self.now);
            self.drain();
            if self.core.poll_timeout().is_some_and(|d| d <= self.now) {
                // Handled and still due: nothing more happens until later.
                break;
            }
        }
        self.now = t.max(self.now);
    }

    /// Handles a peer's request at `t` as the driver does (the driver's kinds only admitted);
    /// the index of the answer in what the replay said.
    fn answer(&mut self, number: usize, t: u64, me: Wwn, h: Header, req: Request) -> usize {
        let kind = req.kind();
        let answer = if is_core_kind(kind) {
            self.core.handle_request(t, h, req).map(Some)
        } else {
            self.core.admit(t, &h, kind).map(|()| None)
        };
        self.handling = number;
        self.drain();
        self.handling = 0;
        let message = match answer {
            Ok(reply) => Message::Reply(
                Header {
                    sender: me,
                    generation: self.core.durable().generation,
                    seq: h.seq,
                },
                kind,
                // The driver's answer: its body is not compared.
                reply.unwrap_or(Reply::Ack),
            ),
            Err(reason) => Message::Reject(reason),
        };
        self.produced.push(Said {
            number: 0,
            peer: Some(h.sender),
            message,
            seq: h.seq,
            request: false,
            driver: !is_core_kind(kind),
            answers: 0,
            tick_before: 0,
            caused_by: 0,
        });
        self.produced.len() - 1
    }

    /// Commits (drops) the core's persists and events, collects its requests.
    fn drain(&mut self) {
        while self.core.poll_persist().is_some() || self.core.poll_event().is_some() {}
        while let Some(tx) = self.core.poll_transmit() {
            tracing::debug!(at = self.now, to = %tx.to, header = ?tx.header, request = ?tx.request, "the replay's core sent");
            self.produced.push(Said {
                number: 0,
                peer: Some(tx.to),
                seq: tx.header.seq,
                message: Message::Request(tx.header, tx.request),
                request: true,
                driver: false,
                answers: 0,
                tick_before: self.ticking,
                caused_by: self.handling,
            });
        }
    }
}

/// The kinds the core makes and answers itself.
fn is_core_kind(k: Kind) -> bool {
    matches!(k, Kind::HEARTBEAT | Kind::UPDATE | Kind::PULL | Kind::CLAIM)
}

#[derive(Debug, Clone)]
enum What {
    /// A CT 0xE0 message.
    Ct(Message),
    /// The driver's name server query for peer controllers.
    GidFt,
    /// A GPN_ID request: the port asked about.
    GpnId(FcId),
    /// A GPN_ID accept: the port name.
    GpnIdAccept(Wwn),
}

struct Seen {
    number: usize,
    dir: Direction,
    ts: Duration,
    s_id: FcId,
    d_id: FcId,
    ox_id: u16,
    what: What,
}

/// The capture's CT 0xE0 messages (each sequence's frames joined) and the name server
/// exchanges the driver finds peers with, in capture order.
fn messages(loaded: &Loaded, key: &Key) -> Result<Vec<Seen>, ReplayError> {
    let mut out = Vec::new();
    let mut partial: HashMap<(u32, u32, u16, u8), Vec<u8>> = HashMap::new();
    for (number, dir, _iface, ts, f) in frames(loaded)? {
        let h = &f.header;
        if h.fc_type.0 != 0x20 || f.payload.len() < 16 {
            continue;
        }
        let seen = |what| Seen {
            number,
            dir,
            ts,
            s_id: h.s_id,
            d_id: h.d_id,
            ox_id: h.ox_id,
            what,
        };
        let gs_type = ct_gs_type(&f, &partial);
        match gs_type {
            Some(0xE0) => {
                let k = (h.s_id.to_u32(), h.d_id.to_u32(), h.ox_id, h.seq_id);
                let buf = partial.entry(k).or_default();
                buf.extend_from_slice(&f.payload);
                if !h.f_ctl.contains(FCtl::END_SEQUENCE) {
                    continue;
                }
                let bytes = partial.remove(&k).unwrap_or_default();
                if bytes.get(8..10) == Some(&[0x80, 0x01][..]) && bytes.get(13) != Some(&0xFF) {
                    // An FS_RJT of the node's CT layer (no vendor reason): the request never
                    // reached the controller (it was stopping, or the service was busy).
                    continue;
                }
                let msg = wire::decode(&bytes, key).map_err(|e| ReplayError::BadFrame {
                    number,
                    why: format!(
                        "CT 0xE0 message does not decode ({e}): is the key the installation's?"
                    ),
                })?;
                out.push(seen(What::Ct(msg)));
            }
            Some(0xFC) => {
                let p = &f.payload;
                let cmd = u16::from_be_bytes([p[8], p[9]]);
                match (dir, cmd) {
                    (Direction::Outbound, 0x0171) => out.push(seen(What::GidFt)),
                    (Direction::Outbound, 0x0112) if p.len() >= 20 => {
                        out.push(seen(What::GpnId(FcId::from_bytes([p[17], p[18], p[19]]))))
                    }
                    (Direction::Inbound, 0x8002) if p.len() >= 24 => {
                        let mut w = [0; 8];
                        w.copy_from_slice(&p[16..24]);
                        out.push(seen(What::GpnIdAccept(Wwn::from_u64(u64::from_be_bytes(
                            w,
                        )))));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The GS_TYPE of a CT frame: in its preamble, or (a later frame of a sequence) of the
/// sequence's first.
fn ct_gs_type(f: &FcFrame, partial: &HashMap<(u32, u32, u16, u8), Vec<u8>>) -> Option<u8> {
    let h = &f.header;
    let k = (h.s_id.to_u32(), h.d_id.to_u32(), h.ox_id, h.seq_id);
    match partial.get(&k) {
        Some(buf) => buf.get(4).copied(),
        None if f.payload[0] == 0x01 => Some(f.payload[4]),
        None => None,
    }
}

/// Compares what the replay's core said with what the capture's did: each expected message,
/// in order, with the replay's of the same peer, direction and sequence number.
fn compare(expected: &[Said], got: &[Said]) -> Option<(Difference, Option<usize>)> {
    let mut used = vec![false; got.len()];
    for e in expected {
        let same = |g: &Said| g.peer == e.peer && g.request == e.request && g.seq == e.seq;
        let pick = got
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && same(g))
            .or_else(|| {
                got.iter()
                    .enumerate()
                    .find(|(i, g)| !used[*i] && g.peer == e.peer && g.request == e.request)
            });
        let Some((i, g)) = pick else {
            return Some((
                Difference {
                    frame: e.number,
                    field: "message".into(),
                    expected: describe(e),
                    got: "nothing (the replay sent no such message)".into(),
                },
                None,
            ));
        };
        used[i] = true;
        if e.driver && matches!(e.message, Message::Reject(_)) {
            // The driver refused what the core admitted (no such reservation...): its call.
            continue;
        }
        if let Some((field, x, y)) = message_difference(&e.message, &g.message, e.driver) {
            return Some((
                Difference {
                    frame: e.number,
                    field,
                    expected: x,
                    got: y,
                },
                Some(i),
            ));
        }
    }
    let last = expected.last().map_or(0, |e| e.number);
    got.iter().zip(&used).find(|(_, u)| !**u).map(|(g, _)| {
        (
            Difference {
                frame: last,
                field: "message after the capture's last".into(),
                expected: "nothing".into(),
                got: describe(g),
            },
            None,
        )
    })
}

fn describe(s: &Said) -> String {
    let peer = s.peer.map_or("an unknown peer".into(), |w| w.to_string());
    match &s.message {
        Message::Request(h, r) => format!("{} seq {} to {peer}", r.kind().name(), h.seq),
        Message::Reply(h, k, _) => format!("reply to {} seq {} to {peer}", k.name(), h.seq),
        Message::Reject(r) => format!("FS_RJT {} to {peer}", r.name()),
    }
}

/// The first field in which two messages differ: its name, the expected and the got value.
/// `header_only`: the body is the driver's, not compared.
pub fn message_difference(
    e: &Message,
    g: &Message,
    header_only: bool,
) -> Option<(String, String, String)> {
    let d = |x: &dyn std::fmt::Debug| format!("{x:?}");
    let (ef, gf) = (fields(e, header_only), fields(g, header_only));
    let name = match e {
        Message::Request(_, r) => r.kind().name().to_owned(),
        Message::Reply(_, k, _) => format!("{} reply", k.name()),
        Message::Reject(_) => "FS_RJT".to_owned(),
    };
    for i in 0..ef.len().max(gf.len()) {
        match (ef.get(i), gf.get(i)) {
            (Some((n, x)), Some((m, y))) if n != m => {
                return Some((format!("{name} {n}"), x.clone(), format!("{m} {y}")))
            }
            (Some((n, x)), Some((_, y))) if x != y => {
                return Some((format!("{name} {n}"), x.clone(), y.clone()))
            }
            (Some((n, x)), None) => return Some((format!("{name} {n}"), x.clone(), d(&"absent"))),
            (None, Some((m, y))) => return Some((format!("{name} {m}"), d(&"absent"), y.clone())),
            _ => {}
        }
    }
    None
}

/// A message's fields, named, in order: what it is, the header, the body.
fn fields(m: &Message, header_only: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |n: &str, v: String| out.push((n.to_owned(), v));
    let header = |put: &mut dyn FnMut(&str, String), h: &Header| {
        put("header sender", h.sender.to_string());
        put("header generation", h.generation.to_string());
        put("header seq", h.seq.to_string());
    };
    match m {
        Message::Request(h, r) => {
            put("message", format!("request {}", r.kind().name()));
            header(&mut put, h);
            if header_only {
                return out;
            }
            match r {
                Request::Heartbeat(hb) => {
                    put("name", hb.name.clone());
                    put("site", hb.site.clone());
                    put("fc_id", hb.fc_id.to_string());
                    put("api", hb.api.clone());
                    put("versions", format!("{:?}", hb.versions));
                }
                Request::Update(records) => records_fields(&mut put, records),
                Request::Pull(p) => {
                    put("versions", format!("{:?}", p.versions));
                    put("max", p.max.to_string());
                }
                Request::Claim(c) => {
                    put("name", c.name.to_string());
                    put("claimed_at", c.claimed_at.to_string());
                    put("release", c.release.to_string());
                }
                other => put("body", format!("{other:?}")),
            }
        }
        Message::Reply(h, k, reply) => {
            put("message", format!("reply to {}", k.name()));
            header(&mut put, h);
            if header_only {
                return out;
            }
            match reply {
                Reply::Ack => {}
                Reply::Updated(v) => put("versions", format!("{v:?}")),
                Reply::Pulled(p) => {
                    put("complete", p.complete.to_string());
                    put("versions", format!("{:?}", p.versions));
                    records_fields(&mut put, &p.records);
                }
                Reply::Claimed(c) => {
                    put("granted", c.granted.to_string());
                    put("holder", format!("{:?}", c.holder));
                }
                other => put("body", format!("{other:?}")),
            }
        }
        Message::Reject(r) => put("message", format!("FS_RJT {}", reason_name(*r))),
    }
    out
}

fn records_fields(put: &mut dyn FnMut(&str, String), records: &[controller::model::Record]) {
    put("records", records.len().to_string());
    for (i, r) in records.iter().enumerate() {
        put(&format!("record {i} key"), format!("{:?}", r.key));
        put(&format!("record {i} stamp"), format!("{:?}", r.stamp));
        put(&format!("record {i} body"), format!("{:?}", r.body));
    }
}

fn reason_name(r: Reason) -> &'static str {
    r.name()
}
