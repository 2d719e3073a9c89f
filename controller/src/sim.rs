//! A deterministic N-site harness for the replication core (FoundationDB's simulation and
//! Jepsen's set test, in small): N [`Core`]s in one thread on virtual time with a seeded
//! random source, a network that drops, duplicates, delays and reorders messages and can be
//! partitioned, and controllers that crash and restart from their database (or lose it). The
//! driver rule of [`crate::core`] is kept exactly: persists are committed before any message
//! that follows them leaves.
//!
//! [`Sim::check`] is the checker: after healing, every change an owner acknowledged (committed)
//! is present everywhere, all copies of the mapping are equal, and no vector entry ever went
//! backwards. A failing seed is printed by the tests and replays with [`run`];
//! `FCSAN_SIM_TRACE=1` prints every core event and every crash as it happens.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use fc_frames::{FcId, Wwn};

use crate::core::{Config, Core, Durable, Identity, Transmit};
use crate::model::{
    ControllerRef, MediaType, Record, RecordKey, Stamp, VolumeBody, VolumeName, VolumeState,
};
use crate::wire::{Header, Kind, Reply, Request};

/// A small, fast, seeded random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

/// What the network and the controllers suffer.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Delivery delay range (ms); a spread reorders messages.
    pub delay: (u64, u64),
    /// Probability per step that a random partition starts or ends.
    pub partition: f64,
    /// Probability per step that a controller crashes (it restarts a little later from its
    /// database).
    pub crash: f64,
}

impl Faults {
    /// No faults: a LAN.
    pub fn none() -> Faults {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            delay: (1, 1),
            partition: 0.0,
            crash: 0.0,
        }
    }

    /// Everything at once, as the CI seeds run.
    pub fn hostile() -> Faults {
        Faults {
            drop: 0.1,
            duplicate: 0.05,
            delay: (1, 80),
            partition: 0.02,
            crash: 0.01,
        }
    }
}

#[derive(Debug, Clone)]
enum Packet {
    Request {
        from: usize,
        to: usize,
        header: Header,
        request: Request,
    },
    Reply {
        to: usize,
        header: Header,
        kind: Kind,
        reply: Reply,
    },
    Failure {
        to: usize,
        from: usize,
        seq: u64,
    },
}

struct Node {
    id: Identity,
    core: Option<Core>,
    db: Durable,
    restart_at: Option<u64>,
    /// Per owner, the highest vector entry this node ever had (while its database lived).
    high: BTreeMap<Wwn, Stamp>,
    /// Its core's [`Core::poll_timeout`] as of its last flush (every change to a core is
    /// followed by one), so that finding the next timer does not ask every core every step.
    deadline: Option<u64>,
}

/// The harness.
pub struct Sim {
    /// Virtual time (ms).
    pub now: u64,
    rng: Rng,
    faults: Faults,
    config: Config,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    packets: BTreeMap<usize, Packet>,
    next_packet: usize,
    order: u64,
    cut: Vec<Vec<bool>>,
    /// Changes acknowledged to the user (committed by the owner): owner, name, stamp, live.
    pub acked: Vec<(Wwn, VolumeName, Stamp, bool)>,
    /// Messages delivered.
    pub delivered: u64,
    /// Databases lost by crashes.
    pub lost_databases: u64,
    /// Bytes of heartbeats sent (as the codec would encode them, roughly: header + vector).
    pub heartbeat_entries: u64,
    violations: Vec<String>,
}

fn wwpn(i: usize) -> Wwn {
    Wwn::from_u64(0x2400_0000_0000_0000 | i as u64)
}

impl Sim {
    /// `n` controllers, all knowing each other.
    pub fn new(n: usize, seed: u64, faults: Faults, config: Config) -> Sim {
        let mut sim = Sim {
            now: 1_000_000,
            rng: Rng::new(seed),
            faults,
            config,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            packets: BTreeMap::new(),
            next_packet: 0,
            order: 0,
            cut: vec![vec![false; n]; n],
            acked: Vec::new(),
            delivered: 0,
            lost_databases: 0,
            heartbeat_entries: 0,
            violations: Vec::new(),
        };
        for i in 0..n {
            let id = Identity {
                name: format!("ctl{i}"),
                site: format!("site{i}"),
                wwpn: wwpn(i),
                fc_id: FcId::from_parts(i as u8 + 1, 0, 1),
                api: String::new(),
            };
            sim.nodes.push(Node {
                id,
                core: None,
                db: Durable::default(),
                restart_at: None,
                high: BTreeMap::new(),
                deadline: None,
            });
        }
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    /// Number of controllers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Controller `i`'s core, when it runs.
    pub fn core(&self, i: usize) -> Option<&Core> {
        self.nodes[i].core.as_ref()
    }

    fn start(&mut self, i: usize) {
        let now = self.now;
        let n = self.nodes.len();
        let node = &mut self.nodes[i];
        let mut core = Core::new(node.id.clone(), self.config.clone(), node.db.clone(), now);
        for j in 0..n {
            if j != i {
                core.add_peer(now, wwpn(j));
            }
        }
        node.core = Some(core);
        node.restart_at = None;
        self.flush(i);
    }

    /// Crashes controller `i`; it restarts from its database after `down_ms` (or from an
    /// empty one when `lose_db`).
    pub fn crash(&mut self, i: usize, down_ms: u64, lose_db: bool) {
        let node = &mut self.nodes[i];
        node.core = None;
        node.deadline = None;
        if lose_db {
            node.db = Durable::default();
            node.high.clear();
        }
        node.restart_at = Some(self.now + down_ms);
    }

    /// Cuts (or heals) the link between sites `a` and `b`.
    pub fn set_cut(&mut self, a: usize, b: usize, cut: bool) {
        self.cut[a][b] = cut;
        self.cut[b][a] = cut;
    }

    /// Heals every partition and restarts every crashed controller.
    pub fn heal(&mut self) {
        for row in &mut self.cut {
            row.iter_mut().for_each(|c| *c = false);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].core.is_none() {
                self.start(i);
            }
        }
    }

    /// Controller `i` writes its volume `name` (capacity marks the change); whether it was
    /// acknowledged.
    pub fn put(&mut self, i: usize, name: &str, capacity: u64) -> bool {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return false;
        };
        let name = VolumeName::new(name).expect("a valid name");
        let body = VolumeBody {
            owner: ControllerRef {
                name: node.id.name.clone(),
                wwpn: node.id.wwpn,
                fc_id: node.id.fc_id,
                site: node.id.site.clone(),
            },
            local_name: name.to_string(),
            capacity,
            state: VolumeState::Online,
            claimed_at: now,
            media: MediaType::Ssd,
            rows: Vec::new(),
            masking: Vec::new(),
        };
        let owner = node.id.wwpn;
        match core.put(now, name.clone(), body) {
            Ok(stamp) => {
                self.flush(i);
                self.acked.push((owner, name, stamp, true));
                true
            }
            Err(_) => false,
        }
    }

    /// Controller `i` deletes its volume `name`; whether it was acknowledged.
    pub fn remove(&mut self, i: usize, name: &str) -> bool {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return false;
        };
        let name = VolumeName::new(name).expect("a valid name");
        let owner = node.id.wwpn;
        match core.remove(now, &name) {
            Ok(stamp) => {
                self.flush(i);
                self.acked.push((owner, name, stamp, false));
                true
            }
            Err(_) => false,
        }
    }

    /// Commits node `i`'s persists, then queues its transmits (the driver rule).
    fn flush(&mut self, i: usize) {
        let mut out: Vec<Transmit> = Vec::new();
        {
            let node = &mut self.nodes[i];
            let Some(core) = node.core.as_mut() else {
                node.deadline = None;
                return;
            };
            while let Some(p) = core.poll_persist() {
                node.db.apply(&p);
            }
            while let Some(t) = core.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = core.poll_event() {
                if std::env::var_os("FCSAN_SIM_TRACE").is_some() {
                    eprintln!("t={} {}: {e:?}", self.now, node.id.name);
                }
            }
            node.deadline = core.poll_timeout();
            for (o, s) in &node.db.versions.0 {
                let h = node.high.entry(*o).or_insert(Stamp::ZERO);
                if *s < *h {
                    self.violations.push(format!(
                        "t={} {}: vector entry of {o} went back from {h} to {s}",
                        self.now, node.id.name
                    ));
                }
                *h = (*h).max(*s);
            }
        }
        for t in out {
            let to = (t.to.to_u64() & 0xFFFF) as usize;
            if let Request::Heartbeat(hb) = &t.request {
                self.heartbeat_entries += hb.versions.0.len() as u64;
            }
            self.route(
                i,
                to,
                Packet::Request {
                    from: i,
                    to,
                    header: t.header,
                    request: t.request,
                },
            );
        }
    }

    fn route(&mut self, from: usize, to: usize, p: Packet) {
        if self.cut[from][to] || self.rng.chance(self.faults.drop) {
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.faults.delay;
            let at = self.now + lo + self.rng.below(hi.saturating_sub(lo) + 1);
            let id = self.next_packet;
            self.next_packet += 1;
            self.packets.insert(id, p.clone());
            self.order += 1;
            self.queue.push(Reverse((at, self.order, id)));
        }
    }

    fn deliver(&mut self, p: Packet) {
        let now = self.now;
        match p {
            Packet::Request {
                from,
                to,
                header,
                request,
            } => {
                let sender = self.nodes[to].id.wwpn;
                let Some(core) = self.nodes[to].core.as_mut() else {
                    return;
                };
                let kind = request.kind();
                let result = core.handle_request(now, header, request);
                let reply_header = Header {
                    sender,
                    generation: core.durable().generation,
                    seq: header.seq,
                };
                self.flush(to);
                let p = match result {
                    Ok(reply) => Packet::Reply {
                        to: from,
                        header: reply_header,
                        kind,
                        reply,
                    },
                    Err(_) => Packet::Failure {
                        to: from,
                        from: to,
                        seq: header.seq,
                    },
                };
                self.route(to, from, p);
            }
            Packet::Reply {
                to,
                header,
                kind,
                reply,
            } => {
                if let Some(core) = self.nodes[to].core.as_mut() {
                    core.handle_reply(now, header, kind, reply);
                    self.flush(to);
                }
            }
            Packet::Failure { to, from, seq } => {
                let peer = self.nodes[from].id.wwpn;
                if let Some(core) = self.nodes[to].core.as_mut() {
                    core.handle_failure(now, peer, seq, true);
                    self.flush(to);
                }
            }
        }
        self.delivered += 1;
    }

    /// Runs until virtual time `until`, delivering messages and timers in order.
    pub fn run_until(&mut self, until: u64) {
        loop {
            let next_msg = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.nodes.iter().filter_map(|n| n.deadline).min();
            let next_restart = self.nodes.iter().filter_map(|n| n.restart_at).min();
            let t = [next_msg, next_timer, next_restart]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until)
                .max(self.now);
            if t > until {
                self.now = until;
                return;
            }
            self.now = t;
            if next_msg == Some(t) {
                if let Some(Reverse((_, _, id))) = self.queue.pop() {
                    if let Some(p) = self.packets.remove(&id) {
                        self.deliver(p);
                    }
                }
                continue;
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].restart_at.is_some_and(|r| r <= t) {
                    self.start(i);
                }
                if self.nodes[i].deadline.is_some_and(|d| d <= t) {
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        core.handle_timeout(t);
                        self.flush(i);
                    }
                }
            }
        }
    }

    /// One random step of the fault schedule: partitions start and end, controllers crash.
    pub fn random_faults(&mut self) {
        let n = self.nodes.len();
        if n < 2 {
            return;
        }
        if self.rng.chance(self.faults.partition) {
            let a = self.rng.below(n as u64) as usize;
            let b = (a + 1 + self.rng.below(n as u64 - 1) as usize) % n;
            let cut = !self.cut[a][b];
            self.set_cut(a, b, cut);
        }
        if self.rng.chance(self.faults.crash) {
            let i = self.rng.below(n as u64) as usize;
            if let Some(core) = &self.nodes[i].core {
                // Now and then the database goes too — only when no acknowledged change can
                // go with it: every own change is acknowledged by a peer that is up (the log is
                // empty and some peer is up), so the controller must get them back from its
                // peers and take a new generation.
                let safe = core.durable().log.is_empty()
                    && core.peers().any(|p| {
                        p.state == crate::core::PeerState::Up && p.acked == core.own_stamp()
                    });
                let lose = safe && self.rng.chance(0.3);
                let down = 50 + self.rng.below(5 * self.config.heartbeat_ms);
                if std::env::var_os("FCSAN_SIM_TRACE").is_some() {
                    eprintln!("t={} crash ctl{i} lose_db={lose}", self.now);
                }
                self.crash(i, down, lose);
                if lose {
                    self.lost_databases += 1;
                }
            }
        }
    }

    /// The random source (for workloads).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The checker, after [`Sim::heal`] and enough time: every copy equal, every
    /// acknowledged change present (or superseded by a later one of its owner), no vector
    /// entry went back. Returns what is wrong.
    pub fn check(&self) -> Vec<String> {
        let mut bad = self.violations.clone();
        let Some(first) = self.nodes.first() else {
            return bad;
        };
        for n in &self.nodes {
            if n.core.is_none() {
                bad.push(format!("{} is not running", n.id.name));
            }
            if n.db.records != first.db.records {
                let a: Vec<&RecordKey> = n.db.records.keys().collect();
                let b: Vec<&RecordKey> = first.db.records.keys().collect();
                let diff: Vec<String> = n
                    .db
                    .records
                    .iter()
                    .filter(|(k, r)| first.db.records.get(*k) != Some(*r))
                    .map(|(k, r)| format!("{}/{}@{}", k.owner, k.name, r.stamp))
                    .chain(
                        first
                            .db
                            .records
                            .iter()
                            .filter(|(k, _)| !n.db.records.contains_key(*k))
                            .map(|(k, r)| format!("missing {}/{}@{}", k.owner, k.name, r.stamp)),
                    )
                    .take(5)
                    .collect();
                bad.push(format!(
                    "{} has {} records, {} has {}: {diff:?}",
                    n.id.name,
                    a.len(),
                    first.id.name,
                    b.len()
                ));
            }
            if n.db.versions != first.db.versions {
                bad.push(format!(
                    "{} vector {:?} != {} vector {:?}",
                    n.id.name, n.db.versions, first.id.name, first.db.versions
                ));
            }
        }
        for (owner, name, stamp, _) in &self.acked {
            let key = RecordKey {
                owner: *owner,
                name: name.clone(),
            };
            match first.db.records.get(&key) {
                Some(r) if r.stamp >= *stamp => {}
                Some(r) => bad.push(format!(
                    "acknowledged {owner}/{name}@{stamp} lost: the copies hold @{}",
                    r.stamp
                )),
                None => bad.push(format!("acknowledged {owner}/{name}@{stamp} lost: absent")),
            }
        }
        let names: std::collections::BTreeSet<&VolumeName> =
            first.db.records.keys().map(|k| &k.name).collect();
        for name in names {
            let live: Vec<&Record> = first
                .db
                .records
                .values()
                .filter(|r| r.key.name == *name && !r.is_tombstone())
                .collect();
            if live.len() > 1 {
                let who: Vec<String> = live
                    .iter()
                    .map(|r| {
                        format!(
                            "{}@{} claimed {}",
                            r.key.owner,
                            r.stamp,
                            r.body.as_ref().map_or(0, |b| b.claimed_at)
                        )
                    })
                    .collect();
                bad.push(format!(
                    "{} live records named {name} after healing: {who:?}",
                    live.len()
                ));
            }
        }
        bad
    }
}

/// One randomized run: `n` sites, `ops` random changes under `faults`, then heal and settle;
/// what the checker found.
pub fn run(seed: u64, n: usize, ops: usize, faults: Faults) -> Vec<String> {
    run_counting(seed, n, ops, faults).0
}

/// [`run`], also saying how many databases the crashes lost.
pub fn run_counting(seed: u64, n: usize, ops: usize, faults: Faults) -> (Vec<String>, u64) {
    let config = Config::with_heartbeat(100);
    let mut sim = Sim::new(n, seed, faults, config.clone());
    sim.run_until(sim.now + 500);
    let mut next_name = vec![0usize; n];
    for _ in 0..ops {
        sim.random_faults();
        let i = sim.rng().below(n as u64) as usize;
        let roll = sim.rng().below(10);
        if roll < 5 || next_name[i] == 0 {
            next_name[i] += 1;
            let name = format!("v{i}-{}", next_name[i]);
            let cap = sim.rng().below(1 << 30);
            sim.put(i, &name, cap);
        } else if roll < 8 {
            let k = 1 + sim.rng().below(next_name[i] as u64) as usize;
            let cap = sim.rng().below(1 << 30);
            sim.put(i, &format!("v{i}-{k}"), cap);
        } else if roll < 9 {
            let k = 1 + sim.rng().below(next_name[i] as u64) as usize;
            sim.remove(i, &format!("v{i}-{k}"));
        } else {
            // A name several sites may build: collisions while split.
            let k = sim.rng().below(3);
            sim.put(i, &format!("shared-{k}"), 1);
        }
        let step = 1 + sim.rng().below(3 * config.heartbeat_ms);
        sim.run_until(sim.now + step);
    }
    sim.heal();
    sim.run_until(sim.now + 40 * config.heartbeat_ms);
    (sim.check(), sim.lost_databases)
}
