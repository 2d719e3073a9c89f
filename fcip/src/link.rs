//! An FCIP link (an FCIP_LEP, RFC 3821 §5.5): one to eight FCIP connections to one peer
//! gateway, used as one inter-switch link.
//!
//! - All frames of one exchange (S_ID, D_ID, OX_ID) go on the same connection, so their order
//!   holds; exchanges are spread over the configured connections by a hash. An exchange whose
//!   connection is down goes to the next one up, and comes back to its own when it returns:
//!   only then, with frames of it possibly still queued on the other, can its order break —
//!   a connection lost mid-exchange loses frames of it anyway, which FC recovers by exchange.
//! - The originating side dials every connection and dials again, with bounded exponential
//!   backoff and jitter, whenever one ends; the accepting side takes connections from a
//!   listener ([`accept`](crate::connection::accept)) and [`FcipLink::add`]s them.
//! - The link is up while at least one connection is; [`LinkEvent::Up`] and
//!   [`LinkEvent::Down`] say when that changes, for the switch to bring its routes up and
//!   down.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fc_frames::{FcFrame, FrameError, Wwn};
use tokio::sync::mpsc;

use crate::connection::{
    dial, originate, Closed, Connection, ConnectionCounters, Endpoint, Event, SetupCounters,
    SetupError,
};

/// Most connections a link may have.
pub const MAX_CONNECTIONS: usize = 8;

/// How a link behaves.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This side.
    pub local: Endpoint,
    /// The peer gateway's FC Fabric Entity WWN.
    pub peer_fabric: Wwn,
    /// Connections to keep (clamped to `1..=8`).
    pub connections: usize,
    /// First wait before redialling; doubles up to `reconnect_max`, with jitter.
    pub reconnect_min: Duration,
    /// Longest wait between dials.
    pub reconnect_max: Duration,
}

/// What a link hands up.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// The first connection came up.
    Up,
    /// The last connection went down.
    Down,
    /// An FC frame from the peer.
    Frame(FcFrame),
    /// A frame that was framed right but did not decode (bad FC CRC).
    Malformed {
        /// Bytes of the FC frame.
        bytes: usize,
        /// Why.
        error: FrameError,
    },
}

/// Counters of a link: its connections' added up, and how they came and went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Connections up now.
    pub connections_up: u64,
    /// Connections opened (each dial or accept that completed the Special Frame exchange).
    pub connections_opened: u64,
    /// Connections that ended.
    pub connections_closed: u64,
    /// Dials that failed (TCP or Special Frame exchange).
    pub dial_failures: u64,
    /// Why the dials failed, as the FCIP MIB counts set-up failures.
    pub setup_failures: SetupCounters,
    /// Frames dropped because no connection was up.
    pub dropped_no_connection: u64,
    /// The closed connections' counters, added up (the open ones are in [`FcipLink::connections`]).
    pub closed_totals: ConnectionCounters,
}

struct Slot {
    tx: mpsc::UnboundedSender<FcFrame>,
    generation: u64,
    /// True while the slot holds this connection: its forwarder hands frames up only while
    /// it is, and [`LinkTask::closed`] clears it before it reports the link down.
    current: Arc<Mutex<bool>>,
}

enum Internal {
    /// Close every connection (they are dialled again).
    Bounce,
    /// A connection for slot `slot` (None: the accepting side's next free slot).
    Opened(Option<usize>, Connection),
    DialFailed(usize, SetupError),
    /// The connection of `slot`, generation `.1`, ended.
    Closed(usize, u64, Closed),
}

/// A running link: send frames with [`tx`](Self::tx), receive [`LinkEvent`]s on
/// [`rx`](Self::rx).
pub struct FcipLink {
    /// Frames to the peer.
    pub tx: mpsc::UnboundedSender<FcFrame>,
    /// What the link hands up.
    pub rx: mpsc::UnboundedReceiver<LinkEvent>,
    /// Adding accepted connections, bouncing, counters: a handle that may go elsewhere.
    pub control: LinkControl,
}

/// Controls a running [`FcipLink`] from anywhere (the listener's task, an administrator).
/// Cheap to clone.
#[derive(Clone)]
pub struct LinkControl {
    internal: mpsc::UnboundedSender<Internal>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LinkControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkControl")
            .field("counters", &self.counters())
            .finish()
    }
}

impl LinkControl {
    /// Adds a connection the listener accepted from this link's peer.
    pub fn add(&self, connection: Connection) {
        let _ = self.internal.send(Internal::Opened(None, connection));
    }

    /// Closes every connection, as an administrator bouncing the link: the originating side
    /// dials them again.
    pub fn bounce(&self) {
        let _ = self.internal.send(Internal::Bounce);
    }

    /// The link's counters.
    pub fn counters(&self) -> LinkCounters {
        *lock(&self.shared.counters)
    }

    /// Each open connection's counters, by slot.
    pub fn connections(&self) -> Vec<ConnectionCounters> {
        lock(&self.shared.slots)
            .iter()
            .flatten()
            .map(|c| *lock(c))
            .collect()
    }
}

struct Shared {
    counters: Mutex<LinkCounters>,
    slots: Mutex<Vec<Option<Arc<Mutex<ConnectionCounters>>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FcipLink {
    /// A link that dials `peer` for each of its connections (the originating side). `seed`
    /// feeds the connection nonces and backoff jitter.
    pub fn originate(config: LinkConfig, peer: SocketAddr, seed: u64) -> FcipLink {
        Self::spawn(config, Some(peer), seed)
    }

    /// A link fed by a listener (the accepting side): hand it each connection
    /// [`accept`](crate::connection::accept) opened for this peer with [`add`](Self::add).
    pub fn accepting(config: LinkConfig) -> FcipLink {
        Self::spawn(config, None, 0)
    }

    /// Adds a connection the listener accepted from this link's peer.
    pub fn add(&self, connection: Connection) {
        self.control.add(connection);
    }

    /// Closes every connection; see [`LinkControl::bounce`].
    pub fn bounce(&self) {
        self.control.bounce();
    }

    /// The link's counters.
    pub fn counters(&self) -> LinkCounters {
        self.control.counters()
    }

    /// Each open connection's counters, by slot.
    pub fn connections(&self) -> Vec<ConnectionCounters> {
        self.control.connections()
    }

    fn spawn(mut config: LinkConfig, peer: Option<SocketAddr>, seed: u64) -> FcipLink {
        config.connections = config.connections.clamp(1, MAX_CONNECTIONS);
        let (tx, out_rx) = mpsc::unbounded_channel();
        let (up_tx, rx) = mpsc::unbounded_channel();
        let (internal, internal_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            counters: Mutex::new(LinkCounters::default()),
            slots: Mutex::new(vec![None; config.connections]),
        });
        let task = LinkTask {
            slots: (0..config.connections).map(|_| None).collect(),
            backoff: vec![config.reconnect_min; config.connections],
            config,
            peer,
            rng: seed | 1,
            up: up_tx,
            internal: internal.clone(),
            shared: shared.clone(),
            generation: 0,
        };
        tokio::spawn(task.run(out_rx, internal_rx));
        FcipLink {
            tx,
            rx,
            control: LinkControl { internal, shared },
        }
    }
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Internal::Bounce => "Bounce",
            Internal::Opened(..) => "Opened",
            Internal::DialFailed(..) => "DialFailed",
            Internal::Closed(..) => "Closed",
        })
    }
}

struct LinkTask {
    config: LinkConfig,
    peer: Option<SocketAddr>,
    slots: Vec<Option<Slot>>,
    backoff: Vec<Duration>,
    rng: u64,
    up: mpsc::UnboundedSender<LinkEvent>,
    internal: mpsc::UnboundedSender<Internal>,
    shared: Arc<Shared>,
    generation: u64,
}

impl LinkTask {
    async fn run(
        mut self,
        mut out: mpsc::UnboundedReceiver<FcFrame>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        for i in 0..self.slots.len() {
            self.dial(i, Duration::ZERO);
        }
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                n = out.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        return; // the link's owner is gone: connections close as slots drop
                    }
                    for f in batch.drain(..) {
                        self.send(f);
                    }
                }
                Some(msg) = internal.recv() => self.internal(msg),
            }
            if self.up.is_closed() {
                return;
            }
        }
    }

    /// xorshift64: jitter and nonces (the seed comes from outside).
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn dial(&mut self, slot: usize, after: Duration) {
        let Some(peer) = self.peer else {
            return; // the accepting side waits for the peer to dial
        };
        let nonce = self.random();
        let local = self.config.local.clone();
        let destination = self.config.peer_fabric;
        let internal = self.internal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let r = match dial(peer).await {
                Ok(s) => originate(s, &local, destination, nonce).await,
                Err(e) => {
                    tracing::debug!(%peer, slot, error = %e, "FCIP dial failed");
                    Err(SetupError::Io(e))
                }
            };
            let msg = match r {
                Ok(c) => Internal::Opened(Some(slot), c),
                Err(e) => {
                    if !matches!(e, SetupError::Io(_)) {
                        tracing::warn!(%peer, slot, error = %e, "FCIP connection set-up failed");
                    }
                    Internal::DialFailed(slot, e)
                }
            };
            let _ = internal.send(msg);
        });
    }

    fn up_count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Sends on the connection of the frame's exchange: its hash picks one of the configured
    /// slots, so an exchange keeps its connection while that connection lives, whatever
    /// happens to the others; while it is down, the next slot up takes its exchanges.
    fn send(&mut self, frame: FcFrame) {
        let n = self.slots.len();
        let h = frame.header;
        let mut hasher = DefaultHasher::new();
        (h.s_id, h.d_id, h.ox_id).hash(&mut hasher);
        let first = (hasher.finish() % n.max(1) as u64) as usize;
        let slot = (0..n)
            .map(|i| (first + i) % n)
            .find_map(|i| self.slots.get(i).and_then(Option::as_ref));
        match slot {
            Some(slot) => {
                let _ = slot.tx.send(frame);
            }
            None => lock(&self.shared.counters).dropped_no_connection += 1,
        }
    }

    fn internal(&mut self, msg: Internal) {
        match msg {
            Internal::Bounce => {
                for slot in 0..self.slots.len() {
                    if self.slots.get(slot).is_some_and(Option::is_some) {
                        self.closed(slot, &Closed::Local);
                    }
                }
            }
            Internal::Opened(slot, conn) => {
                let slot = slot.or_else(|| self.slots.iter().position(Option::is_none));
                let Some(slot) = slot.filter(|s| *s < self.slots.len()) else {
                    tracing::warn!("FCIP link full: extra connection from the peer closed");
                    return; // dropping `conn` closes it
                };
                self.open(slot, conn);
            }
            Internal::DialFailed(slot, why) => {
                let mut c = lock(&self.shared.counters);
                c.dial_failures += 1;
                c.setup_failures.count(&why);
                drop(c);
                self.redial(slot);
            }
            Internal::Closed(slot, generation, why) => {
                let current = self
                    .slots
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.generation == generation);
                if current {
                    self.closed(slot, &why);
                }
            }
        }
    }

    fn open(&mut self, slot: usize, conn: Connection) {
        let was_down = self.up_count() == 0;
        self.generation += 1;
        let generation = self.generation;
        let counters = conn.counters_handle();
        let Connection { tx, rx, .. } = conn;
        let current = Arc::new(Mutex::new(true));
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(Slot {
                tx,
                generation,
                current: current.clone(),
            });
        }
        if was_down {
            // Before the forwarder starts: no frame of the link comes up before Up.
            tracing::info!(peer = %self.config.peer_fabric, "FCIP link up");
            let _ = self.up.send(LinkEvent::Up);
        }
        tokio::spawn(forward(
            rx,
            current,
            self.up.clone(),
            self.internal.clone(),
            slot,
            generation,
        ));
        if let Some(b) = self.backoff.get_mut(slot) {
            *b = self.config.reconnect_min;
        }
        if let Some(s) = lock(&self.shared.slots).get_mut(slot) {
            *s = Some(counters);
        }
        let mut c = lock(&self.shared.counters);
        c.connections_opened += 1;
        c.connections_up = self.up_count() as u64;
    }

    fn closed(&mut self, slot: usize, why: &Closed) {
        tracing::info!(peer = %self.config.peer_fabric, slot, ?why, "FCIP connection down");
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::take) {
            // Whatever its forwarder hands up from now on would come after Down.
            *lock(&s.current) = false;
        }
        let last = lock(&self.shared.slots)
            .get_mut(slot)
            .and_then(Option::take)
            .map(|c| *lock(&c));
        let mut c = lock(&self.shared.counters);
        c.connections_closed += 1;
        c.connections_up = self.up_count() as u64;
        if let Some(last) = last {
            accumulate(&mut c.closed_totals, &last);
        }
        drop(c);
        if self.up_count() == 0 {
            tracing::info!(peer = %self.config.peer_fabric, "FCIP link down");
            let _ = self.up.send(LinkEvent::Down);
        }
        self.redial(slot);
    }

    fn redial(&mut self, slot: usize) {
        let Some(b) = self.backoff.get(slot).copied() else {
            return;
        };
        // Jitter: a quarter of the wait, up or down.
        let quarter = b.as_millis() as u64 / 4;
        let jitter = if quarter == 0 {
            0
        } else {
            self.random() % (2 * quarter)
        };
        let wait = Duration::from_millis((b.as_millis() as u64).saturating_sub(quarter) + jitter);
        if let Some(next) = self.backoff.get_mut(slot) {
            *next = (b * 2).min(self.config.reconnect_max);
        }
        self.dial(slot, wait);
    }
}

/// Hands a connection's frames up to the link's owner, straight rather than through the link
/// task, while the connection is `current`; then reports how it ended to the link task.
async fn forward(
    mut rx: mpsc::UnboundedReceiver<Event>,
    current: Arc<Mutex<bool>>,
    up: mpsc::UnboundedSender<LinkEvent>,
    internal: mpsc::UnboundedSender<Internal>,
    slot: usize,
    generation: u64,
) {
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    let why = 'events: loop {
        if rx.recv_many(&mut batch, FORWARD_BATCH).await == 0 {
            break Closed::Eof;
        }
        // Held while handing up, so that the link task's Down comes after these frames.
        let current = lock(&current);
        for ev in batch.drain(..) {
            let ev = match ev {
                Event::Frame(f) => LinkEvent::Frame(f),
                Event::Malformed { bytes, error } => LinkEvent::Malformed { bytes, error },
                // Nothing comes after Closed.
                Event::Closed(why) => break 'events why,
            };
            if *current {
                let _ = up.send(ev);
            }
        }
    };
    let _ = internal.send(Internal::Closed(slot, generation, why));
}

/// Most events a forwarder takes from its connection at a time.
const FORWARD_BATCH: usize = 256;

/// Adds a closed connection's counters to the link's totals.
fn accumulate(total: &mut ConnectionCounters, c: &ConnectionCounters) {
    let (t, r) = (&mut total.rx, &c.rx);
    t.frames += r.frames;
    t.bytes += r.bytes;
    t.special_frames += r.special_frames;
    t.encapsulation_errors += r.encapsulation_errors;
    t.fc_sync_losses += r.fc_sync_losses;
    t.bytes_skipped += r.bytes_skipped;
    t.crc_errors += r.crc_errors;
    t.transit_discards += r.transit_discards;
    total.tx_frames += c.tx_frames;
    total.tx_bytes += c.tx_bytes;
    total.lka_sent += c.lka_sent;
    total.lka_answered += c.lka_answered;
    total.lka_timeouts += c.lka_timeouts;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fc_frames::{FcId, FcType, FrameHeaderRepr, RCtl};
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    use super::*;
    use crate::connection::accept;
    use crate::engine::ReceiverConfig;

    const A: Wwn = Wwn::from_u64(0x1000_0000_0000_000a);
    const B: Wwn = Wwn::from_u64(0x1000_0000_0000_000b);
    const WAIT: Duration = Duration::from_secs(20);

    fn config(local: Wwn, peer: Wwn, connections: usize) -> LinkConfig {
        LinkConfig {
            local: Endpoint {
                fabric: local,
                entity: [0, 0, 0, 0, 0, 0, 0, 1],
                k_a_tov: Duration::from_secs(10),
                receiver: ReceiverConfig::default(),
                capture: None,
            },
            peer_fabric: peer,
            connections,
            reconnect_min: Duration::from_millis(20),
            reconnect_max: Duration::from_millis(200),
        }
    }

    fn frame(exchange: u16, seq: u16, len: usize) -> FcFrame {
        let mut h = FrameHeaderRepr::request(
            RCtl::UNSOLICITED_DATA,
            FcType::FCP,
            FcId::from_parts(2, 1, 0),
            FcId::from_parts(1, 1, 0),
            exchange,
        );
        h.seq_cnt = seq;
        h.parameter = u32::from(seq);
        h.f_ctl = h.f_ctl.with_fill_bytes((4 - len % 4) % 4);
        FcFrame::single(h, vec![(seq & 0xFF) as u8; len])
    }

    /// A link with `n` connections: B listens, A dials; B gets every connection its listener
    /// accepts.
    async fn links(n: usize) -> (FcipLink, FcipLink) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let b = FcipLink::accepting(config(B, A, n));
        let adder = b.control.clone();
        tokio::spawn(async move {
            let local = config(B, A, n).local;
            while let Ok((s, _)) = listener.accept().await {
                if let Ok(c) = accept(s, &local, &[A]).await {
                    adder.add(c);
                }
            }
        });
        let a = FcipLink::originate(config(A, B, n), addr, 0x5eed);
        (a, b)
    }

    async fn wait_up(link: &mut FcipLink, n: u64) {
        timeout(WAIT, async {
            loop {
                if link.counters().connections_up >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("connections up");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_100k_frames_in_order_within_each_exchange_over_four_connections() {
        let (mut a, mut b) = links(4).await;
        wait_up(&mut a, 4).await;
        wait_up(&mut b, 4).await;
        let exchanges = 64u16;
        let total = 100_000u32;
        for i in 0..total {
            let x = (i % u32::from(exchanges)) as u16;
            let seq = (i / u32::from(exchanges)) as u16;
            a.tx.send(frame(x, seq, (i as usize * 37) % 2113)).unwrap();
        }
        let mut next: BTreeMap<u16, u16> = BTreeMap::new();
        let mut got = 0u32;
        while got < total {
            match timeout(WAIT, b.rx.recv())
                .await
                .expect("frames keep coming")
            {
                Some(LinkEvent::Frame(f)) => {
                    let x = f.header.ox_id;
                    let want = next.entry(x).or_insert(0);
                    assert_eq!(f.header.seq_cnt, *want, "exchange {x} out of order");
                    let i = u32::from(*want) * u32::from(exchanges) + u32::from(x);
                    assert_eq!(f, frame(x, *want, (i as usize * 37) % 2113));
                    *want += 1;
                    got += 1;
                }
                Some(LinkEvent::Up) => {}
                other => panic!("{other:?}"),
            }
        }
        // Spread over the connections.
        let used = b.connections().iter().filter(|c| c.rx.frames > 0).count();
        assert!(used >= 2, "{:?}", b.connections());
    }

    async fn pass(a: &FcipLink, b: &mut FcipLink, x: u16) {
        for seq in 0..100 {
            a.tx.send(frame(x, seq, 2112)).unwrap();
        }
        let mut seq = 0;
        while seq < 100 {
            match timeout(WAIT, b.rx.recv()).await.expect("frames") {
                Some(LinkEvent::Frame(f)) => {
                    assert_eq!(f, frame(x, seq, 2112));
                    seq += 1;
                }
                Some(LinkEvent::Up | LinkEvent::Down) => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_bounced_connections_come_back_and_traffic_resumes() {
        let (mut a, mut b) = links(2).await;
        wait_up(&mut a, 2).await;
        wait_up(&mut b, 2).await;
        pass(&a, &mut b, 1).await;
        b.bounce();
        // A sees its connections end, dials again, B accepts them.
        timeout(WAIT, async {
            loop {
                let c = a.counters();
                if c.connections_closed >= 2
                    && c.connections_up == 2
                    && b.counters().connections_up == 2
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("connections back");
        pass(&a, &mut b, 2).await;
        let c = a.counters();
        assert_eq!(c.connections_opened, 4, "{c:?}");
        assert!(c.closed_totals.tx_frames >= 100, "{c:?}");
    }
}
