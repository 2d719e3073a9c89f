//! The replication and membership core of a controller, sans-IO (CONTROLLER.md, PATENT.md
//! figure 5 and [0108]-[0109]). It takes requests, replies and ticks with the time in
//! milliseconds, and returns what to send ([`Core::poll_transmit`]), what to commit
//! ([`Core::poll_persist`]) and what happened ([`Core::poll_event`]). It never touches a
//! socket, a clock or a database: the tokio driver and the simulation harness do.
//!
//! **The driver's one rule.** Commit every pending [`Persist`] (each in its own transaction,
//! in order) before sending any transmit or reply the core handed out after it: then nothing is
//! acknowledged or propagated that a crash could take back.
//!
//! | event | what the core does |
//! |---|---|
//! | own change ([`Core::put`], [`Core::remove`]) | next own version; commit record + version + log entry; UPDATE to every up peer |
//! | UPDATE from its owner | apply records in version order (a duplicate is skipped, a gap stops it and starts a PULL); commit; reply the vector entry |
//! | UPDATE reply | the peer's acknowledged stamp rises; log entries every up peer has are dropped; the next batch goes |
//! | HEARTBEAT | the peer is up; a vector entry higher than ours starts a PULL from it; its entry for us acknowledges |
//! | PULL | every record past the asker's vector, in (owner, stamp) order, `max` at a time |
//! | PULL reply | records applied by stamp (higher wins); the cursor advances; complete: our vector rises to the responder's |
//! | silence past `down_after` | the peer is down: no more UPDATEs to it (it pulls when it returns) |
//! | CLAIM | granted unless a live record or a lower (time, WWPN) claim holds the name |
//!
//! **Versions.** Only the owner stamps its records: (generation, version), versions dense from
//! 1 in a generation. A controller whose database is empty (new, or lost) recovers first: it
//! pulls from the peers it reaches (its own records come back with the rest), for at most
//! `recover_wait`, then takes a generation above every one it saw for itself and above the
//! current second, and only then accepts changes.
//!
//! **Names.** A record is keyed by (owner, name). Two owners that built one name while split
//! both keep their record; when one learns of the other's, the name belongs to the lower
//! (claim time, owner WWPN) ([`winner`]), and the loser's owner renames its own record to
//! `name~controller` in state conflict: nothing is merged, nothing is lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use fc_frames::{FcId, Wwn};

use crate::model::{
    winner, Record, RecordKey, Stamp, VersionVector, VolumeBody, VolumeName, VolumeState,
    MAX_NAME_LEN,
};
use crate::wire::{Claim, Claimed, Header, Heartbeat, Kind, Pull, Pulled, Reason, Reply, Request};

mod replay;
pub mod state;

pub use replay::ReplayWindow;
pub use state::{Durable, Persist};

/// Timing and sizes of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// A peer silent this long is down (ms).
    pub down_after_ms: u64,
    /// A request unanswered this long failed (ms).
    pub request_timeout_ms: u64,
    /// Wait after a failed UPDATE before the next (ms).
    pub retry_ms: u64,
    /// Most records in one UPDATE.
    pub batch: usize,
    /// Most records asked for in one PULL.
    pub pull_max: u16,
    /// How long a controller with an empty database waits for its peers' copy of its records
    /// before it takes changes (ms).
    pub recover_wait_ms: u64,
    /// How long a peer's claim on a name is honoured without its volume appearing (ms).
    pub claim_ttl_ms: u64,
}

impl Default for Config {
    /// Heartbeat 1 s, down after 3 s, requests time out after 2 s.
    fn default() -> Config {
        Config::with_heartbeat(1000)
    }
}

impl Config {
    /// Everything scaled to a heartbeat interval: down after 3 intervals, requests time out
    /// after 2, retries after 1, recovery waits 3.
    pub fn with_heartbeat(heartbeat_ms: u64) -> Config {
        let hb = heartbeat_ms.max(1);
        Config {
            heartbeat_ms: hb,
            down_after_ms: 3 * hb,
            request_timeout_ms: 2 * hb,
            retry_ms: hb,
            batch: 32,
            pull_max: 32,
            recover_wait_ms: 3 * hb,
            claim_ttl_ms: 30_000.max(10 * hb),
        }
    }
}

/// Who this controller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its name, unique in the installation.
    pub name: String,
    /// The site it manages.
    pub site: String,
    /// Its N_Port_Name: the owner key of its records.
    pub wwpn: Wwn,
    /// Its N_Port_ID.
    pub fc_id: FcId,
    /// Its management API URL (may be empty).
    pub api: String,
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's WWPN.
    pub to: Wwn,
    /// Our header (the reply carries its sequence number back).
    pub header: Header,
    /// The request.
    pub request: Request,
}

/// How a name claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Every peer reached granted it.
    Won,
    /// Another builder holds it.
    Lost {
        /// Its WWPN.
        holder: Wwn,
        /// Its claim time.
        claimed_at: u64,
    },
    /// A peer refused the claim request itself (a replay or a bad generation).
    Refused {
        /// The peer.
        peer: Wwn,
    },
}

/// What happened, for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer answered after being unknown or down.
    PeerUp(Wwn),
    /// A peer fell silent.
    PeerDown(Wwn),
    /// Records changed in the table (any owner's).
    Applied(Vec<RecordKey>),
    /// A peer acknowledged own changes up to a stamp.
    Acked {
        /// The peer.
        peer: Wwn,
        /// What it has.
        stamp: Stamp,
    },
    /// A claim of ours was settled.
    Claim {
        /// The name.
        name: VolumeName,
        /// How.
        outcome: ClaimOutcome,
    },
    /// Recovery is over: the core takes changes under this generation.
    Ready(u32),
    /// An own record lost its name to another owner's and was renamed.
    Renamed {
        /// The name it had.
        from: VolumeName,
        /// The name it has.
        to: VolumeName,
    },
}

/// Why a local change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// Still recovering the database from peers.
    #[error("recovering this controller's records from its peers; try again shortly")]
    NotReady,
    /// The name is another owner's.
    #[error("volume {name} belongs to controller {holder}")]
    NameTaken {
        /// The name.
        name: VolumeName,
        /// Its holder.
        holder: Wwn,
    },
    /// No such live volume of this controller.
    #[error("no volume {0} owned here")]
    NoSuchVolume(VolumeName),
}

/// A peer as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its WWPN.
    pub wwpn: Wwn,
    /// Name, site, N_Port_ID and API from its last heartbeat.
    pub name: String,
    /// Its site.
    pub site: String,
    /// Its N_Port_ID as it says.
    pub fc_id: Option<FcId>,
    /// Its API URL.
    pub api: String,
    /// Up, down or never heard.
    pub state: PeerState,
    /// When it was last heard (ms).
    pub last_heard: Option<u64>,
    /// Its vector from its last heartbeat.
    pub versions: VersionVector,
    /// Own changes it acknowledged.
    pub acked: Stamp,
}

/// A peer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Known (discovered or configured) but never heard.
    Unknown,
    /// Heard within the time-out.
    Up,
    /// Silent past the time-out.
    Down,
}

impl PeerState {
    /// The name the API shows.
    pub const fn name(self) -> &'static str {
        match self {
            PeerState::Unknown => "unknown",
            PeerState::Up => "up",
            PeerState::Down => "down",
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    info: PeerInfo,
    window: ReplayWindow,
    update_inflight: bool,
    next_update_at: u64,
    pull: Option<VersionVector>,
    pull_inflight: bool,
    /// The vector entries this peer acknowledged hearing in our heartbeats: the next one
    /// carries only what rose since (and our own entry).
    told: VersionVector,
}

#[derive(Debug, Clone)]
struct Outstanding {
    peer: Wwn,
    kind: Kind,
    deadline: u64,
    /// For a heartbeat: the entries it carried.
    told: Option<VersionVector>,
    /// For a claim: the name, and whether it gives the name back.
    claim: Option<(VolumeName, bool)>,
}

#[derive(Debug, Clone)]
struct OwnClaim {
    at: u64,
    waiting: BTreeSet<Wwn>,
    lost: Option<(Wwn, u64)>,
    /// A peer that refused the claim request itself.
    refused: Option<Wwn>,
    settled: bool,
}

#[derive(Debug, Clone)]
struct OtherClaim {
    holder: Wwn,
    at: u64,
    expires: u64,
}

/// The core of one controller.
#[derive(Debug)]
pub struct Core {
    me: Identity,
    config: Config,
    state: Durable,
    recovering_until: Option<u64>,
    peers: BTreeMap<Wwn, Peer>,
    outstanding: BTreeMap<(Wwn, u64), Outstanding>,
    /// Where each destination's sequence numbers start (they rise with the clock across
    /// restarts), and the last one sent to each.
    seq_base: u64,
    seqs: BTreeMap<Wwn, u64>,
    /// Peers whose whole table this controller pulled while recovering.
    recovered_from: BTreeSet<Wwn>,
    /// While the state is regaining (see [`Durable::regaining`]): the peers that answered a
    /// pull for all own records; pulls from the others ask for them all (the vector's own entry
    /// says nothing of what a lost database held).
    own_pulled: BTreeSet<Wwn>,
    next_heartbeat: u64,
    own_claims: BTreeMap<VolumeName, OwnClaim>,
    other_claims: BTreeMap<VolumeName, OtherClaim>,
    transmits: VecDeque<Transmit>,
    persists: VecDeque<Persist>,
    events: VecDeque<Event>,
    counters: BTreeMap<&'static str, u64>,
}

impl Core {
    /// A core over the durable state its database held (empty: a new or lost database).
    pub fn new(me: Identity, config: Config, state: Durable, now: u64) -> Core {
        let recovering_until = (state.generation == 0).then(|| now + config.recover_wait_ms);
        let mut core = Core {
            me,
            config,
            state,
            recovering_until,
            peers: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            // Sequence numbers rise across restarts as long as the clock does: a restarted
            // controller's messages are not taken for replays.
            seq_base: now.saturating_mul(1 << 20),
            seqs: BTreeMap::new(),
            recovered_from: BTreeSet::new(),
            own_pulled: BTreeSet::new(),
            next_heartbeat: now,
            own_claims: BTreeMap::new(),
            other_claims: BTreeMap::new(),
            transmits: VecDeque::new(),
            persists: VecDeque::new(),
            events: VecDeque::new(),
            counters: BTreeMap::new(),
        };
        if core.recovering_until.is_none() {
            core.events.push_back(Event::Ready(core.state.generation));
        }
        core
    }

    /// This controller.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// Updates this controller's N_Port_ID (after a fabric login) or API URL.
    pub fn set_identity(&mut self, fc_id: FcId, api: String) {
        self.me.fc_id = fc_id;
        self.me.api = api;
    }

    /// The durable state as it stands (the database's content once every persist committed).
    pub fn durable(&self) -> &Durable {
        &self.state
    }

    /// Whether the core takes changes (recovery is over).
    pub fn is_ready(&self) -> bool {
        self.recovering_until.is_none()
    }

    /// This controller's own stamp.
    pub fn own_stamp(&self) -> Stamp {
        self.state.versions.get(self.me.wwpn)
    }

    /// The version vector.
    pub fn versions(&self) -> &VersionVector {
        &self.state.versions
    }

    /// Every record, live and tombstone.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.state.records.values()
    }

    /// The live record a name means: of the live records of that name, the [`winner`].
    pub fn volume(&self, name: &VolumeName) -> Option<&Record> {
        self.state
            .records
            .values()
            .filter(|r| r.key.name == *name && !r.is_tombstone())
            .reduce(|a, b| winner(a, b))
    }

    /// Every live volume a name means, by name.
    pub fn volumes(&self) -> Vec<&Record> {
        let mut by_name: BTreeMap<&VolumeName, &Record> = BTreeMap::new();
        for r in self.state.records.values().filter(|r| !r.is_tombstone()) {
            by_name
                .entry(&r.key.name)
                .and_modify(|w| *w = winner(w, r))
                .or_insert(r);
        }
        by_name.into_values().collect()
    }

    /// The peers.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers.values().map(|p| &p.info)
    }

    /// The peer of a WWPN.
    pub fn peer(&self, wwpn: Wwn) -> Option<&PeerInfo> {
        self.peers.get(&wwpn).map(|p| &p.info)
    }

    /// Message and replication counters.
    pub fn counters(&self) -> &BTreeMap<&'static str, u64> {
        &self.counters
    }

    /// Counts one occurrence of `name` (the driver counts its own rejects here too).
    pub fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_insert(0) += 1;
    }

    /// Makes a peer known (found by the name server, or configured): it gets heartbeats.
    pub fn add_peer(&mut self, now: u64, wwpn: Wwn) {
        if wwpn == self.me.wwpn || self.peers.contains_key(&wwpn) {
            return;
        }
        let acked = self.state.acked.get(&wwpn).copied().unwrap_or(Stamp::ZERO);
        self.peers.insert(
            wwpn,
            Peer {
                info: PeerInfo {
                    wwpn,
                    name: String::new(),
                    site: String::new(),
                    fc_id: None,
                    api: String::new(),
                    state: PeerState::Unknown,
                    last_heard: None,
                    versions: VersionVector::default(),
                    acked,
                },
                window: ReplayWindow::default(),
                update_inflight: false,
                next_update_at: now,
                pull: None,
                pull_inflight: false,
                told: VersionVector::default(),
            },
        );
        self.heartbeat_to(now, wwpn);
    }

    /// Forgets a peer (an operator removed its site).
    pub fn remove_peer(&mut self, wwpn: Wwn) {
        self.peers.remove(&wwpn);
        self.outstanding.retain(|_, o| o.peer != wwpn);
        self.truncate_log();
    }

    // ---- local changes -------------------------------------------------------------------

    /// Writes own volume `name` (a new one, or a change to one this controller owns).
    pub fn put(
        &mut self,
        now: u64,
        name: VolumeName,
        mut body: VolumeBody,
    ) -> Result<Stamp, ChangeError> {
        if !self.is_ready() {
            return Err(ChangeError::NotReady);
        }
        if let Some(other) = self.volume(&name) {
            if other.key.owner != self.me.wwpn {
                return Err(ChangeError::NameTaken {
                    name,
                    holder: other.key.owner,
                });
            }
        }
        let key = RecordKey {
            owner: self.me.wwpn,
            name: name.clone(),
        };
        if let Some(old) = self.state.records.get(&key).and_then(|r| r.body.as_ref()) {
            // A change to a volume keeps the claim its name was won with.
            body.claimed_at = old.claimed_at;
        } else if let Some(claim) = self.own_claims.remove(&name) {
            body.claimed_at = claim.at;
        }
        self.other_claims.remove(&name);
        Ok(self.commit_own(now, name, Some(body)))
    }

    /// Deletes own volume `name`, leaving a tombstone.
    pub fn remove(&mut self, now: u64, name: &VolumeName) -> Result<Stamp, ChangeError> {
        if !self.is_ready() {
            return Err(ChangeError::NotReady);
        }
        let key = RecordKey {
            owner: self.me.wwpn,
            name: name.clone(),
        };
        match self.state.records.get(&key) {
            Some(r) if !r.is_tombstone() => {}
            _ => return Err(ChangeError::NoSuchVolume(name.clone())),
        }
        Ok(self.commit_own(now, name.clone(), None))
    }

    fn commit_own(&mut self, now: u64, name: VolumeName, body: Option<VolumeBody>) -> Stamp {
        let own = self.own_stamp();
        let stamp = Stamp::new(self.state.generation, own.version + 1);
        let record = Record {
            key: RecordKey {
                owner: self.me.wwpn,
                name,
            },
            stamp,
            body,
        };
        self.persist(Persist::Apply {
            records: vec![record.clone()],
            versions: vec![(self.me.wwpn, stamp)],
            log: vec![record.clone()],
        });
        self.events.push_back(Event::Applied(vec![record.key]));
        self.count("changes");
        if self.peers.values().all(|p| p.info.state != PeerState::Up) {
            self.truncate_log();
        }
        self.push_updates(now);
        stamp
    }

    /// Claims a name for a build: the claim goes to every up peer; [`Event::Claim`] says how
    /// it ended (at once when no peer is up).
    pub fn claim(&mut self, now: u64, name: VolumeName) -> Result<(), ChangeError> {
        if !self.is_ready() {
            return Err(ChangeError::NotReady);
        }
        if let Some(r) = self.volume(&name) {
            return Err(ChangeError::NameTaken {
                name,
                holder: r.key.owner,
            });
        }
        if self.own_claims.contains_key(&name) {
            // Another build of this name is under way here.
            return Err(ChangeError::NameTaken {
                name,
                holder: self.me.wwpn,
            });
        }
        if let Some(c) = self.other_claims.get(&name) {
            if c.expires > now && (c.at, c.holder) < (now, self.me.wwpn) {
                return Err(ChangeError::NameTaken {
                    name,
                    holder: c.holder,
                });
            }
        }
        let waiting: BTreeSet<Wwn> = self
            .peers
            .values()
            .filter(|p| p.info.state == PeerState::Up)
            .map(|p| p.info.wwpn)
            .collect();
        for &to in &waiting {
            let seq = self.send(
                now,
                to,
                Request::Claim(Claim {
                    name: name.clone(),
                    claimed_at: now,
                    release: false,
                }),
            );
            if let Some(o) = self.outstanding.get_mut(&(to, seq)) {
                o.claim = Some((name.clone(), false));
            }
        }
        self.own_claims.insert(
            name.clone(),
            OwnClaim {
                at: now,
                waiting,
                lost: None,
                refused: None,
                settled: false,
            },
        );
        self.settle_claim(&name);
        Ok(())
    }

    /// Whether a build of `name` is under way here.
    pub fn is_claimed(&self, name: &VolumeName) -> bool {
        self.own_claims.contains_key(name)
    }

    /// Gives a claim back (the build failed).
    pub fn release_claim(&mut self, now: u64, name: &VolumeName) {
        if let Some(c) = self.own_claims.remove(name) {
            let up: Vec<Wwn> = self
                .peers
                .values()
                .filter(|p| p.info.state == PeerState::Up)
                .map(|p| p.info.wwpn)
                .collect();
            for to in up {
                let seq = self.send(
                    now,
                    to,
                    Request::Claim(Claim {
                        name: name.clone(),
                        claimed_at: c.at,
                        release: true,
                    }),
                );
                if let Some(o) = self.outstanding.get_mut(&(to, seq)) {
                    o.claim = Some((name.clone(), true));
                }
            }
        }
    }

    fn settle_claim(&mut self, name: &VolumeName) {
        let Some(c) = self.own_claims.get_mut(name) else {
            return;
        };
        if c.settled {
            return;
        }
        let outcome = match (c.lost, c.refused) {
            (Some((holder, claimed_at)), _) => ClaimOutcome::Lost { holder, claimed_at },
            (None, Some(peer)) => ClaimOutcome::Refused { peer },
            (None, None) if c.waiting.is_empty() => ClaimOutcome::Won,
            (None, None) => return,
        };
        c.settled = true;
        if outcome != ClaimOutcome::Won {
            self.own_claims.remove(name);
        }
        self.events.push_back(Event::Claim {
            name: name.clone(),
            outcome,
        });
    }

    // ---- incoming ------------------------------------------------------------------------

    /// Handles a request a peer sent (its HMAC already checked); the reply to send, or the
    /// reason to reject it. Commit the pending persists before sending the reply.
    pub fn handle_request(
        &mut self,
        now: u64,
        header: Header,
        request: Request,
    ) -> Result<Reply, Reason> {
        let from = header.sender;
        if let Request::Update(records) = &request {
            if records.iter().any(|r| r.key.owner != from) {
                return Err(self.reject(Reason::FOREIGN));
            }
        }
        self.admit(now, &header, request.kind())?;
        let reply = match request {
            Request::Heartbeat(hb) => {
                self.on_heartbeat(now, from, hb);
                Reply::Ack
            }
            Request::Update(records) => self.on_update(now, from, records),
            Request::Pull(pull) => Reply::Pulled(self.on_pull(&pull)),
            Request::Claim(claim) => Reply::Claimed(self.on_claim(now, from, claim)),
            // Reservations live beside the core (the extent allocator); the driver answers
            // them before the core sees them.
            // So do the I/O path's (leases, invalidations, routes).
            Request::Reserve(_)
            | Request::Release { .. }
            | Request::Commit { .. }
            | Request::Lease(_)
            | Request::Invalidate(_)
            | Request::Route(_) => {
                return Err(self.reject(Reason::UNKNOWN_KIND));
            }
        };
        Ok(reply)
    }

    /// Checks a request's header against the sender's replay window and counts the sender
    /// heard; every request goes through here, those the driver answers itself too.
    pub fn admit(&mut self, now: u64, header: &Header, kind: Kind) -> Result<(), Reason> {
        let from = header.sender;
        if from == self.me.wwpn {
            return Err(self.reject(Reason::FOREIGN));
        }
        if let Some(p) = self.peers.get(&from) {
            if let Err(r) = p.window.check(header.generation, header.seq) {
                return Err(self.reject(r));
            }
        }
        self.add_peer(now, from);
        if let Some(p) = self.peers.get_mut(&from) {
            p.window.record(header.generation, header.seq);
        }
        self.heard(now, from);
        self.count(kind_counter("received", kind));
        Ok(())
    }

    /// A header for a request the driver sends `to` itself (reservations): the next sequence
    /// number to that peer, not tracked by the core.
    pub fn header(&mut self, to: Wwn) -> Header {
        Header {
            sender: self.me.wwpn,
            generation: self.state.generation,
            seq: self.next_seq(to),
        }
    }

    /// The next sequence number to `to`: each receiver sees its sender's numbers rise one by
    /// one, so its replay window holds a sender's reordered messages however many peers there
    /// are.
    fn next_seq(&mut self, to: Wwn) -> u64 {
        let base = self.seq_base;
        let s = self.seqs.entry(to).or_insert(base);
        *s += 1;
        *s
    }

    fn reject(&mut self, reason: Reason) -> Reason {
        self.count(reason_counter(reason));
        reason
    }

    /// Handles the reply to one of our requests.
    pub fn handle_reply(&mut self, now: u64, header: Header, kind: Kind, reply: Reply) {
        let key = (header.sender, header.seq);
        let Some(o) = self.outstanding.get(&key) else {
            self.count("replies.unexpected");
            return;
        };
        if o.peer != header.sender || o.kind != kind {
            self.count("replies.unexpected");
            return;
        }
        let Some(o) = self.outstanding.remove(&key) else {
            return;
        };
        let from = header.sender;
        self.heard(now, from);
        match (kind, reply) {
            (Kind::UPDATE, Reply::Updated(v)) => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.update_inflight = false;
                }
                self.on_acked(now, from, v.get(self.me.wwpn));
                self.push_updates(now);
            }
            (Kind::PULL, Reply::Pulled(pulled)) => self.on_pulled(now, from, pulled),
            (Kind::CLAIM, Reply::Claimed(c)) => {
                if let Some((name, false)) = o.claim {
                    self.on_claimed(from, &name, c);
                }
            }
            (Kind::HEARTBEAT, Reply::Ack) => {
                if let (Some(told), Some(p)) = (o.told, self.peers.get_mut(&from)) {
                    for (owner, stamp) in told.0 {
                        p.told.raise(owner, stamp);
                    }
                }
            }
            _ => self.count("replies.unexpected"),
        }
    }

    /// One of our requests to `to` failed: `rejected` by it, or it timed out or could not be
    /// reached.
    pub fn handle_failure(&mut self, now: u64, to: Wwn, seq: u64, rejected: bool) {
        let Some(o) = self.outstanding.remove(&(to, seq)) else {
            return;
        };
        self.count(kind_counter("failed", o.kind));
        self.failed(now, o, rejected);
    }

    fn failed(&mut self, now: u64, o: Outstanding, rejected: bool) {
        let retry = now + self.config.retry_ms;
        match o.kind {
            Kind::UPDATE => {
                if let Some(p) = self.peers.get_mut(&o.peer) {
                    p.update_inflight = false;
                    p.next_update_at = retry;
                }
            }
            Kind::PULL => {
                if let Some(p) = self.peers.get_mut(&o.peer) {
                    p.pull_inflight = false;
                    p.pull = None;
                }
            }
            Kind::CLAIM => {
                // A peer that could not be reached is skipped; one that refused the request
                // (a replay, a bad generation) makes the claim fail.
                if let Some((name, false)) = &o.claim {
                    if let Some(c) = self.own_claims.get_mut(name) {
                        if c.waiting.remove(&o.peer) && rejected && c.lost.is_none() {
                            c.refused = Some(o.peer);
                        }
                    }
                    let name = name.clone();
                    self.settle_claim(&name);
                }
            }
            _ => {}
        }
    }

    fn heard(&mut self, now: u64, from: Wwn) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.info.last_heard = Some(now);
        if p.info.state != PeerState::Up {
            p.info.state = PeerState::Up;
            p.next_update_at = now;
            // It may have restarted: tell it our whole vector again, and ask for what it has
            // (a controller that restarted faster than the time-out is caught up so too).
            p.told = VersionVector::default();
            self.events.push_back(Event::PeerUp(from));
            self.count("peers.came_up");
            self.start_pull(now, from);
            self.push_updates(now);
        }
    }

    fn on_heartbeat(&mut self, now: u64, from: Wwn, hb: Heartbeat) {
        let me = self.me.wwpn;
        let ready = self.is_ready();
        let own = self.own_stamp();
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.info.name = hb.name;
        p.info.site = hb.site;
        p.info.fc_id = Some(hb.fc_id);
        p.info.api = hb.api;
        for (o, s) in hb.versions.0 {
            p.info.versions.raise(o, s);
        }
        // Against everything the peer has told, not only this heartbeat's entries: a pull
        // that failed is started again at the next heartbeat.
        let behind = p
            .info
            .versions
            .0
            .iter()
            .any(|(o, s)| *s > self.state.versions.get(*o) && !(ready && *o == me));
        let theirs = p.info.versions.get(me);
        if theirs <= own && theirs > p.info.acked {
            self.on_acked(now, from, theirs);
        }
        // While regaining, each peer is asked for all own records until it has answered.
        let regain = self.state.regaining && !self.own_pulled.contains(&from);
        if behind || regain {
            self.start_pull(now, from);
        }
        self.push_updates(now);
    }

    fn on_acked(&mut self, _now: u64, from: Wwn, stamp: Stamp) {
        let own = self.own_stamp();
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        if stamp <= p.info.acked || stamp > own {
            return;
        }
        p.info.acked = stamp;
        self.persist(Persist::Acked { peer: from, stamp });
        self.events.push_back(Event::Acked { peer: from, stamp });
        self.truncate_log();
    }

    fn on_update(&mut self, now: u64, from: Wwn, mut records: Vec<Record>) -> Reply {
        records.sort_by_key(|r| r.stamp);
        let mut cur = self.state.versions.get(from);
        let mut applied = Vec::new();
        let mut gap = false;
        for r in records {
            if r.stamp <= cur {
                self.count("updates.duplicate");
                continue;
            }
            // A new generation is a gap too: nothing says how far the old one went (the
            // owner lost its database; the pull fetches what this controller lacks of both).
            let next = r.stamp.generation == cur.generation
                && cur.version.checked_add(1) == Some(r.stamp.version);
            if !next {
                gap = true;
                break;
            }
            cur = r.stamp;
            applied.push(r);
        }
        if !applied.is_empty() {
            self.count("updates.applied");
            self.apply_records(now, applied, vec![(from, cur)]);
        }
        if gap {
            self.count("updates.gap");
            self.start_pull(now, from);
        }
        let mut v = VersionVector::default();
        v.raise(from, self.state.versions.get(from));
        Reply::Updated(v)
    }

    fn on_pull(&mut self, pull: &Pull) -> Pulled {
        let max = usize::from(pull.max.max(1));
        let mut records: Vec<&Record> = self
            .state
            .records
            .values()
            .filter(|r| r.stamp > pull.versions.get(r.key.owner))
            .collect();
        records.sort_by_key(|r| (r.key.owner, r.stamp));
        let complete = records.len() <= max;
        records.truncate(max);
        Pulled {
            records: records.into_iter().cloned().collect(),
            complete,
            versions: self.state.versions.clone(),
        }
    }

    fn on_pulled(&mut self, now: u64, from: Wwn, pulled: Pulled) {
        let me = self.me.wwpn;
        let ready = self.is_ready();
        let own = self.own_stamp();
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.pull_inflight = false;
        let mut cursor = p.pull.take().unwrap_or_else(|| self.state.versions.clone());
        let mut take = Vec::new();
        for r in pulled.records {
            if ready && r.key.owner == me && r.stamp > own {
                // Nobody but this controller issues its stamps.
                self.count("rejected.forged-owner");
                continue;
            }
            cursor.raise(r.key.owner, r.stamp);
            take.push(r);
        }
        let versions: Vec<(Wwn, Stamp)> = if pulled.complete {
            pulled
                .versions
                .0
                .iter()
                .filter(|(o, _)| !(ready && **o == me))
                .map(|(o, s)| (*o, *s))
                .collect()
        } else {
            Vec::new()
        };
        self.count("pulls.pages");
        self.apply_records(now, take, versions);
        if pulled.complete {
            self.count("pulls.complete");
            if self.state.regaining {
                self.own_pulled.insert(from);
                if self.is_ready() && self.peers.keys().all(|w| self.own_pulled.contains(w)) {
                    self.persist(Persist::Regained);
                }
            }
            if self.recovering_until.is_some() {
                self.recovered_from.insert(from);
                let all = self
                    .peers
                    .values()
                    .filter(|p| p.info.state == PeerState::Up)
                    .all(|p| self.recovered_from.contains(&p.info.wwpn));
                if all {
                    self.finish_recovery(now);
                }
            }
        } else if let Some(p) = self.peers.get_mut(&from) {
            p.pull = Some(cursor.clone());
            p.pull_inflight = true;
            let max = self.config.pull_max;
            self.send(
                now,
                from,
                Request::Pull(Pull {
                    versions: cursor,
                    max,
                }),
            );
        }
    }

    fn start_pull(&mut self, now: u64, from: Wwn) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        if p.pull_inflight {
            return;
        }
        p.pull_inflight = true;
        let mut versions = self.state.versions.clone();
        if self.state.regaining && !self.own_pulled.contains(&from) {
            versions.0.remove(&self.me.wwpn);
        }
        p.pull = Some(versions.clone());
        let max = self.config.pull_max;
        self.count("pulls.started");
        self.send(now, from, Request::Pull(Pull { versions, max }));
    }

    /// Applies records from peers (higher stamp wins per key) and raises vector entries, in
    /// one persist; then settles name collisions with own records.
    fn apply_records(&mut self, now: u64, records: Vec<Record>, versions: Vec<(Wwn, Stamp)>) {
        let me = self.me.wwpn;
        let ready = self.is_ready();
        let mut changed = Vec::new();
        // Own records of an older generation newer than the copy here (or with none here):
        // this controller lost its database and became ready before every copy came back.
        // They are issued again under the current generation, so that peers whose vector for
        // this controller already passed their old stamps get them too.
        let mut regained = Vec::new();
        for r in records {
            let old = self.state.records.get(&r.key);
            if ready
                && r.key.owner == me
                && r.stamp.generation < self.state.generation
                && old.is_none_or(|o| r.stamp > o.stamp)
            {
                regained.push(r.clone());
            }
            if old.is_none_or(|old| r.stamp > old.stamp) {
                changed.push(r);
            }
        }
        let versions: Vec<(Wwn, Stamp)> = versions
            .into_iter()
            .filter(|(o, s)| *s > self.state.versions.get(*o))
            .collect();
        if changed.is_empty() && versions.is_empty() {
            return;
        }
        let keys: Vec<RecordKey> = changed.iter().map(|r| r.key.clone()).collect();
        let names: BTreeSet<VolumeName> = changed
            .iter()
            .filter(|r| r.key.owner != self.me.wwpn && !r.is_tombstone())
            .map(|r| r.key.name.clone())
            .collect();
        self.persist(Persist::Apply {
            records: changed,
            versions,
            log: Vec::new(),
        });
        if !keys.is_empty() {
            self.events.push_back(Event::Applied(keys));
        }
        for r in regained {
            self.count("records.regained");
            self.commit_own(now, r.key.name, r.body);
        }
        for name in names {
            self.other_claims.remove(&name);
            self.settle_collision(now, &name);
        }
    }

    /// If another owner's live record of `name` wins over ours, rename ours.
    fn settle_collision(&mut self, now: u64, name: &VolumeName) {
        if !self.is_ready() {
            return;
        }
        let key = RecordKey {
            owner: self.me.wwpn,
            name: name.clone(),
        };
        let Some(mine) = self.state.records.get(&key).filter(|r| !r.is_tombstone()) else {
            return;
        };
        let Some(w) = self.volume(name) else {
            return;
        };
        if w.key.owner == self.me.wwpn {
            return;
        }
        let Some(mut body) = mine.body.clone() else {
            return;
        };
        let to = self.conflict_name(name);
        body.state = VolumeState::Conflict;
        self.commit_own(now, to.clone(), Some(body));
        self.commit_own(now, name.clone(), None);
        self.count("names.conflicts");
        self.events.push_back(Event::Renamed {
            from: name.clone(),
            to,
        });
    }

    fn conflict_name(&self, name: &VolumeName) -> VolumeName {
        let suffix: String = self
            .me
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect();
        let suffix = if suffix.is_empty() {
            format!("{:016x}", self.me.wwpn.to_u64())
        } else {
            suffix
        };
        for n in 0u32.. {
            let tail = if n == 0 {
                format!("~{suffix}")
            } else {
                format!("~{suffix}{n}")
            };
            let keep = MAX_NAME_LEN.saturating_sub(tail.len());
            let head: String = name.as_str().chars().take(keep).collect();
            if let Ok(v) = VolumeName::new(format!("{head}{tail}")) {
                if self.volume(&v).is_none() {
                    return v;
                }
            }
        }
        unreachable!("some conflict name is free")
    }

    fn on_claim(&mut self, now: u64, from: Wwn, claim: Claim) -> Claimed {
        let granted = Claimed {
            granted: true,
            holder: None,
        };
        let name = claim.name;
        if claim.release {
            if self
                .other_claims
                .get(&name)
                .is_some_and(|c| c.holder == from)
            {
                self.other_claims.remove(&name);
            }
            return granted;
        }
        if let Some(r) = self.volume(&name) {
            if r.key.owner != from {
                return Claimed {
                    granted: false,
                    holder: Some((r.key.owner, r.body.as_ref().map_or(0, |b| b.claimed_at))),
                };
            }
            return granted;
        }
        let theirs = (claim.claimed_at, from);
        if let Some(c) = self.own_claims.get_mut(&name) {
            if c.lost.is_none() && (c.at, self.me.wwpn) < theirs {
                return Claimed {
                    granted: false,
                    holder: Some((self.me.wwpn, c.at)),
                };
            }
            if c.lost.is_none() {
                c.lost = Some(theirs.1).map(|h| (h, theirs.0));
                self.settle_claim(&name);
            }
        }
        if let Some(c) = self.other_claims.get(&name) {
            if c.holder != from && c.expires > now && (c.at, c.holder) < theirs {
                return Claimed {
                    granted: false,
                    holder: Some((c.holder, c.at)),
                };
            }
        }
        self.other_claims.insert(
            name,
            OtherClaim {
                holder: from,
                at: claim.claimed_at,
                expires: now + self.config.claim_ttl_ms,
            },
        );
        granted
    }

    fn on_claimed(&mut self, from: Wwn, name: &VolumeName, c: Claimed) {
        let name = name.clone();
        if let Some(oc) = self.own_claims.get_mut(&name) {
            oc.waiting.remove(&from);
            if !c.granted && oc.lost.is_none() {
                oc.lost = Some(c.holder.unwrap_or((from, 0)));
            }
        }
        self.settle_claim(&name);
    }

    // ---- time ----------------------------------------------------------------------------

    /// Runs what is due at `now`: heartbeats, time-outs, down peers, retries, recovery.
    pub fn handle_timeout(&mut self, now: u64) {
        let expired: Vec<(Wwn, u64)> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(o) = self.outstanding.remove(&key) {
                self.count(kind_counter("timeouts", o.kind));
                self.failed(now, o, false);
            }
        }
        let down: Vec<Wwn> = self
            .peers
            .values()
            .filter(|p| {
                p.info.state == PeerState::Up
                    && p.info
                        .last_heard
                        .is_none_or(|t| now.saturating_sub(t) >= self.config.down_after_ms)
            })
            .map(|p| p.info.wwpn)
            .collect();
        for w in down {
            if let Some(p) = self.peers.get_mut(&w) {
                p.info.state = PeerState::Down;
                p.pull = None;
                p.pull_inflight = false;
                p.update_inflight = false;
            }
            self.outstanding.retain(|_, o| o.peer != w);
            self.count("peers.went_down");
            self.events.push_back(Event::PeerDown(w));
            let names: Vec<VolumeName> = self
                .own_claims
                .iter_mut()
                .filter_map(|(n, c)| c.waiting.remove(&w).then(|| n.clone()))
                .collect();
            for n in names {
                self.settle_claim(&n);
            }
            self.truncate_log();
        }
        self.other_claims.retain(|_, c| c.expires > now);
        // A claim whose build never wrote its volume (the builder went away) lets go of the
        // name after the claim time-out, as peers do.
        let ttl = self.config.claim_ttl_ms;
        self.own_claims
            .retain(|_, c| now.saturating_sub(c.at) < ttl);
        if self.recovering_until.is_some_and(|t| t <= now) {
            self.finish_recovery(now);
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_ms;
            let all: Vec<Wwn> = self.peers.keys().copied().collect();
            for w in all {
                self.heartbeat_to(now, w);
            }
        }
        self.push_updates(now);
    }

    /// When [`Core::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = self.next_heartbeat;
        for o in self.outstanding.values() {
            t = t.min(o.deadline);
        }
        for p in self.peers.values() {
            if p.info.state == PeerState::Up {
                if let Some(h) = p.info.last_heard {
                    t = t.min(h + self.config.down_after_ms);
                }
                if self.wants_update(p) {
                    t = t.min(p.next_update_at);
                }
            }
        }
        if let Some(r) = self.recovering_until {
            t = t.min(r);
        }
        Some(t)
    }

    /// The next request to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.persists.is_empty() {
            // The driver commits first; asking for transmits before is a driver bug, but
            // holding them back keeps the rule even then.
            return None;
        }
        self.transmits.pop_front()
    }

    /// The next change to commit, one transaction each, before any transmit or reply.
    #[must_use]
    pub fn poll_persist(&mut self) -> Option<Persist> {
        self.persists.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn finish_recovery(&mut self, now: u64) {
        if self.recovering_until.take().is_none() {
            return;
        }
        let me = self.me.wwpn;
        let seen = self
            .state
            .records
            .values()
            .filter(|r| r.key.owner == me)
            .map(|r| r.stamp.generation)
            .chain(std::iter::once(self.state.versions.get(me).generation))
            .chain(
                self.peers
                    .values()
                    .map(|p| p.info.versions.get(me).generation),
            )
            .max()
            .unwrap_or(0);
        let second = u32::try_from(now / 1000).unwrap_or(u32::MAX);
        let generation = seen.saturating_add(1).max(second).max(1);
        self.persist(Persist::Generation(generation));
        self.persist(Persist::Apply {
            records: Vec::new(),
            versions: vec![(me, Stamp::new(generation, 0))],
            log: Vec::new(),
        });
        self.count("generations");
        self.events.push_back(Event::Ready(generation));
        // Own records recovered from peers stay as they were; collisions found meanwhile are
        // settled now that changes may be made.
        let names: BTreeSet<VolumeName> = self
            .state
            .records
            .keys()
            .filter(|k| k.owner == me)
            .map(|k| k.name.clone())
            .collect();
        for n in names {
            self.settle_collision(now, &n);
        }
    }

    // ---- sending -------------------------------------------------------------------------

    fn persist(&mut self, p: Persist) {
        self.state.apply(&p);
        self.persists.push_back(p);
    }

    /// Queues `request` to `to`; its sequence number.
    fn send(&mut self, now: u64, to: Wwn, request: Request) -> u64 {
        let seq = self.next_seq(to);
        let header = Header {
            sender: self.me.wwpn,
            generation: self.state.generation,
            seq,
        };
        self.count(kind_counter("sent", request.kind()));
        self.outstanding.insert(
            (to, seq),
            Outstanding {
                peer: to,
                kind: request.kind(),
                deadline: now + self.config.request_timeout_ms,
                told: None,
                claim: None,
            },
        );
        self.transmits.push_back(Transmit {
            to,
            header,
            request,
        });
        seq
    }

    /// A heartbeat to `to`: its vector holds our own entry and the entries that rose since
    /// `to` last acknowledged one, so that in a steady state a heartbeat is a few bytes and a
    /// controller's heartbeat bytes an interval grow with N, not N².
    fn heartbeat_to(&mut self, now: u64, to: Wwn) {
        let me = self.me.wwpn;
        let told = self.peers.get(&to).map(|p| &p.told);
        let mut versions = VersionVector::default();
        for (o, s) in &self.state.versions.0 {
            if *o == me || told.is_none_or(|t| *s > t.get(*o)) {
                versions.raise(*o, *s);
            }
        }
        let hb = Heartbeat {
            name: self.me.name.clone(),
            site: self.me.site.clone(),
            fc_id: self.me.fc_id,
            api: self.me.api.clone(),
            versions: versions.clone(),
        };
        let seq = self.send(now, to, Request::Heartbeat(hb));
        if let Some(o) = self.outstanding.get_mut(&(to, seq)) {
            o.told = Some(versions);
        }
    }

    /// Whether `p` is up, has no UPDATE in flight and lacks own changes the log still holds.
    fn wants_update(&self, p: &Peer) -> bool {
        p.info.state == PeerState::Up
            && !p.update_inflight
            && p.info.acked < self.own_stamp()
            && self.first_unacked(p).is_some()
    }

    /// The first log version `p` lacks, if the log still reaches back to it.
    fn first_unacked(&self, p: &Peer) -> Option<u64> {
        let from = if p.info.acked.generation == self.state.generation {
            p.info.acked.version + 1
        } else {
            1
        };
        let first = *self.state.log.keys().next()?;
        (first <= from && self.state.log.contains_key(&from)).then_some(from)
    }

    /// Sends each up peer the own changes it has not acknowledged, from the log, one batch in
    /// flight a peer. A peer the log no longer reaches back to pulls instead.
    fn push_updates(&mut self, now: u64) {
        let mut sends = Vec::new();
        for p in self.peers.values() {
            if !self.wants_update(p) || now < p.next_update_at {
                continue;
            }
            let Some(from) = self.first_unacked(p) else {
                continue;
            };
            let batch: Vec<Record> = self
                .state
                .log
                .range(from..)
                .take(self.config.batch)
                .map(|(_, r)| r.clone())
                .collect();
            if !batch.is_empty() {
                sends.push((p.info.wwpn, batch));
            }
        }
        for (to, batch) in sends {
            if let Some(p) = self.peers.get_mut(&to) {
                p.update_inflight = true;
            }
            self.send(now, to, Request::Update(batch));
        }
    }

    /// Drops own log entries every up peer acknowledged.
    fn truncate_log(&mut self) {
        let generation = self.state.generation;
        let Some(&last) = self.state.log.keys().next_back() else {
            return;
        };
        let through = self
            .peers
            .values()
            .filter(|p| p.info.state == PeerState::Up)
            .map(|p| {
                if p.info.acked.generation == generation {
                    p.info.acked.version
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(last);
        let first = *self.state.log.keys().next().unwrap_or(&u64::MAX);
        if through >= first {
            self.persist(Persist::Truncate { through });
        }
    }
}

/// The counter of a message kind under `what` ("sent", "received", "failed", "timeouts").
fn kind_counter(what: &'static str, kind: Kind) -> &'static str {
    let k = usize::from(kind.0).wrapping_sub(1).min(7);
    macro_rules! table {
        ($what:literal) => {
            [
                concat!($what, ".heartbeat"),
                concat!($what, ".update"),
                concat!($what, ".pull"),
                concat!($what, ".claim"),
                concat!($what, ".reserve"),
                concat!($what, ".release"),
                concat!($what, ".commit"),
                concat!($what, ".unknown"),
            ]
        };
    }
    match what {
        "sent" => table!("sent")[k],
        "received" => table!("received")[k],
        "failed" => table!("failed")[k],
        _ => table!("timeouts")[k],
    }
}

/// The counter of a reject reason.
pub fn reason_counter(reason: Reason) -> &'static str {
    match reason {
        Reason::MALFORMED => "rejected.malformed",
        Reason::BAD_MAC => "rejected.bad-mac",
        Reason::REPLAYED => "rejected.replayed",
        Reason::STALE => "rejected.stale",
        Reason::UNKNOWN_KIND => "rejected.unknown-kind",
        Reason::FOREIGN => "rejected.foreign",
        Reason::NOT_READY => "rejected.not-ready",
        Reason::NO_RESERVATION => "rejected.no-reservation",
        Reason::FORGED_OWNER => "rejected.forged-owner",
        _ => "rejected.other",
    }
}
