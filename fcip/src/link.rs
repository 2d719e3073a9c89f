//! An FCIP link (an FCIP_LEP, RFC 3821 §5.5): one to eight FCIP connections to one peer
//! gateway, used as one inter-switch link.
//!
//! ```text
//!  LinkEvent::Up(Link) ──► the switch port takes the Link itself
//!    Link.tx (lanes) ──┬─► connection 1 writer ──► TCP ══► peer
//!                      └─► connection 2 writer ──► TCP ══► peer
//!    Link.rx ◄──────────── connection 1 and 2 readers ◄── TCP ◄══ peer
//! ```
//!
//! - While at least one connection is up the link hands out one [`Link`] (the `fc-link`
//!   type): [`LinkEvent::Up`] carries it, and whoever takes it (a switch port) sends and
//!   receives on it directly. Its sending half is a link of lanes, one per configured
//!   connection: a frame goes straight into the queue of its exchange's connection's writer
//!   (no task in between). All frames of one exchange (S_ID, D_ID, OX_ID) go on the same
//!   connection, so their order holds; exchanges are spread over the configured connections by
//!   a hash. An exchange whose connection is down goes to the next one up, and comes back to
//!   its own when it returns: only then, with frames of it possibly still queued on the other,
//!   can its order break — a connection lost mid-exchange loses frames of it anyway, which FC
//!   recovers by exchange. Every connection's reader queues what it receives into the link's
//!   one receiving half, waiting (and reading nothing) while it is full.
//! - When the last connection goes, the link is down: the `Link`'s receiving half ends once
//!   what arrived is taken, its sending half refuses frames (counted in
//!   [`LinkCounters::dropped_no_connection`]), and [`LinkEvent::Down`] is sent. The next
//!   connection up brings a new `Link` with a new [`LinkEvent::Up`].
//! - The originating side dials every connection and dials again, with bounded exponential
//!   backoff and jitter, whenever one ends; the accepting side takes connections from a
//!   listener ([`accept`](crate::connection::accept)) and [`FcipLink::add`]s them.
//! - The link task handles only connections coming and going (control messages); frames
//!   never pass through it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fc_frames::Wwn;
use fc_link::{self as link, LaneSet, Link, LinkTx};
use tokio::sync::mpsc;

use crate::connection::{
    dial, originate, Closed, Connection, ConnectionCounters, Endpoint, Running, SetupCounters,
    SetupError,
};

/// Most connections a link may have.
pub const MAX_CONNECTIONS: usize = 8;
/// Frames the link's receiving half holds before its connections' readers wait.
pub const QUEUE: usize = fc_link::DEFAULT_CAPACITY;

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

/// What a link tells its owner.
#[derive(Debug)]
pub enum LinkEvent {
    /// The first connection came up: frames to and from the peer go on this `Link` while
    /// the link stays up.
    Up(Link),
    /// The last connection went down: the `Link` of the last `Up` is down.
    Down,
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
    /// Frames refused because no connection was up.
    pub dropped_no_connection: u64,
    /// The closed connections' counters, added up (the open ones are in [`FcipLink::connections`]).
    pub closed_totals: ConnectionCounters,
}

/// One slot's connection.
struct Slot {
    running: Running,
    generation: u64,
}

/// The link while it is up: what its `Link` is made of.
struct Period {
    /// A sender into the `Link`'s receiving half, cloned for each connection's reader.
    inbound: LinkTx,
    /// The `Link`'s sending half's lanes, one per slot.
    lanes: LaneSet,
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

/// A running link: its [`LinkEvent`]s (each [`LinkEvent::Up`] with the `Link` to use) on
/// [`events`](Self::events). Dropping `events` closes every connection and ends the link.
pub struct FcipLink {
    /// What the link tells its owner.
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
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
        let mut c = *lock(&self.shared.counters);
        c.dropped_no_connection = self.shared.dropped.load(Ordering::Relaxed);
        c
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
    /// Frames the lanes refused for want of a connection.
    dropped: Arc<AtomicU64>,
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
        let (up_tx, events) = mpsc::unbounded_channel();
        let (internal, internal_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            counters: Mutex::new(LinkCounters::default()),
            slots: Mutex::new(vec![None; config.connections]),
            dropped: Arc::new(AtomicU64::new(0)),
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
            period: None,
        };
        tokio::spawn(task.run(internal_rx));
        FcipLink {
            events,
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
    period: Option<Period>,
}

impl LinkTask {
    async fn run(mut self, mut internal: mpsc::UnboundedReceiver<Internal>) {
        for i in 0..self.slots.len() {
            self.dial(i, Duration::ZERO);
        }
        loop {
            tokio::select! {
                Some(msg) = internal.recv() => self.internal(msg),
                // The link's owner is gone.
                () = self.up.closed() => break,
            }
        }
        for slot in self.slots.iter_mut() {
            if let Some(s) = slot.take() {
                s.running.close();
            }
        }
        if let Some(p) = self.period.take() {
            p.lanes.close();
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
                let Some(slot) = slot.filter(|s| self.slots.get(*s).is_some_and(Option::is_none))
                else {
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
        if self.period.as_ref().is_some_and(|p| p.inbound.is_closed()) {
            // The Link's owner dropped its receiving half: that Link is over, whatever
            // connections it still has; this connection starts a new one.
            if let Some(p) = self.period.take() {
                p.lanes.close();
                let _ = self.up.send(LinkEvent::Down);
            }
        }
        let (period, new_link) = match self.period.take() {
            Some(p) => (p, None),
            None => {
                let (inbound, rx) = link::channel(QUEUE);
                let (tx, lanes) = link::lanes(self.slots.len(), self.shared.dropped.clone());
                tracing::info!(peer = %self.config.peer_fabric, "FCIP link up");
                (Period { inbound, lanes }, Some(Link::new(tx, rx)))
            }
        };
        self.generation += 1;
        let generation = self.generation;
        let internal = self.internal.clone();
        let running = conn.start(period.inbound.clone(), move |why| {
            let _ = internal.send(Internal::Closed(slot, generation, why));
        });
        period.lanes.set(slot, running.tx.clone());
        self.period = Some(period);
        // Only once its lane is set: a frame sent on the new Link the moment its owner has it
        // finds a connection. What the connection reads meanwhile waits in the Link's queue.
        if let Some(l) = new_link {
            let _ = self.up.send(LinkEvent::Up(l));
        }
        if let Some(s) = lock(&self.shared.slots).get_mut(slot) {
            *s = Some(running.counters_handle());
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(Slot {
                running,
                generation,
            });
        }
        if let Some(b) = self.backoff.get_mut(slot) {
            *b = self.config.reconnect_min;
        }
        let mut c = lock(&self.shared.counters);
        c.connections_opened += 1;
        c.connections_up = self.up_count() as u64;
    }

    fn closed(&mut self, slot: usize, why: &Closed) {
        tracing::info!(peer = %self.config.peer_fabric, slot, ?why, "FCIP connection down");
        if let Some(s) = self.slots.get_mut(slot).and_then(Option::take) {
            // Its reader is gone from now on: nothing of it reaches the Link any more.
            s.running.close();
        }
        if let Some(p) = &self.period {
            p.lanes.clear(slot);
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
            if let Some(p) = self.period.take() {
                // The Link's sending half refuses from now on; its receiving half ends once
                // the readers (aborted above) have let go and what came is taken.
                p.lanes.close();
            }
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

    use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl};
    use fc_link::Received;
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

    /// The `Link` of the link's next `Up`.
    async fn next_up(link: &mut FcipLink) -> Link {
        loop {
            match timeout(WAIT, link.events.recv()).await.expect("link up") {
                Some(LinkEvent::Up(l)) => return l,
                Some(LinkEvent::Down) => {}
                None => panic!("link task ended"),
            }
        }
    }

    async fn wait_up(link: &FcipLink, n: u64) {
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

    async fn next_frame(l: &mut Link) -> FcFrame {
        match timeout(WAIT, l.rx.recv())
            .await
            .expect("frames keep coming")
        {
            Some(Received::Frame(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_100k_frames_in_order_within_each_exchange_over_four_connections() {
        let (mut a, mut b) = links(4).await;
        let la = next_up(&mut a).await;
        let mut lb = next_up(&mut b).await;
        wait_up(&a, 4).await;
        wait_up(&b, 4).await;
        let exchanges = 64u16;
        let total = 100_000u32;
        // Sends wait for room: the queues stay bounded while the receiver is slower.
        let tx = la.tx.clone();
        let sender = tokio::spawn(async move {
            for i in 0..total {
                let x = (i % u32::from(exchanges)) as u16;
                let seq = (i / u32::from(exchanges)) as u16;
                tx.send(frame(x, seq, (i as usize * 37) % 2113))
                    .await
                    .unwrap();
            }
        });
        let mut next: BTreeMap<u16, u16> = BTreeMap::new();
        for _ in 0..total {
            let f = next_frame(&mut lb).await;
            let x = f.header.ox_id;
            let want = next.entry(x).or_insert(0);
            assert_eq!(f.header.seq_cnt, *want, "exchange {x} out of order");
            let i = u32::from(*want) * u32::from(exchanges) + u32::from(x);
            assert_eq!(f, frame(x, *want, (i as usize * 37) % 2113));
            *want += 1;
            assert!(lb.rx.len() <= QUEUE);
        }
        sender.await.unwrap();
        // Spread over the connections.
        let used = b.connections().iter().filter(|c| c.rx.frames > 0).count();
        assert!(used >= 2, "{:?}", b.connections());
    }

    async fn pass(a: &Link, b: &mut Link, x: u16) {
        for seq in 0..100 {
            a.tx.send(frame(x, seq, 2112)).await.unwrap();
        }
        for seq in 0..100 {
            assert_eq!(next_frame(b).await, frame(x, seq, 2112));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_bounced_connections_come_back_and_traffic_resumes() {
        let (mut a, mut b) = links(2).await;
        let la = next_up(&mut a).await;
        let mut lb = next_up(&mut b).await;
        wait_up(&a, 2).await;
        wait_up(&b, 2).await;
        pass(&la, &mut lb, 1).await;
        b.bounce();
        // The old Link goes down on both sides: its receiving half ends, its sending half
        // refuses.
        assert!(timeout(WAIT, lb.rx.recv()).await.unwrap().is_none());
        timeout(WAIT, la.tx.closed()).await.unwrap();
        assert!(la.tx.try_send(frame(3, 0, 8)).is_err());
        // A sees its connections end, dials again, B accepts them: a new Link each side.
        let la = next_up(&mut a).await;
        let mut lb = next_up(&mut b).await;
        wait_up(&a, 2).await;
        wait_up(&b, 2).await;
        pass(&la, &mut lb, 2).await;
        let c = a.counters();
        assert_eq!(c.connections_opened, 4, "{c:?}");
        assert!(c.closed_totals.tx_frames >= 100, "{c:?}");
        assert!(c.dropped_no_connection >= 1, "{c:?}");
    }

    /// A receiver that does not take its frames holds up the sender instead of growing a
    /// queue: TCP's window closes and the sending Link's lanes fill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_a_slow_receiver_pushes_back_to_the_sender() {
        let (mut a, mut b) = links(1).await;
        let la = next_up(&mut a).await;
        let mut lb = next_up(&mut b).await;
        let mut sent = 0u32;
        // Far more than every queue and both sockets' buffers hold.
        let full = timeout(WAIT, async {
            loop {
                match la.tx.try_send(frame(1, sent as u16, 2112)) {
                    Ok(()) => sent += 1,
                    Err(fc_link::TrySendError::Full(_)) => {
                        // The writer may still be moving a batch to TCP: settle first.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if !la.tx.has_room() {
                            return;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await;
        assert!(full.is_ok(), "never full after {sent} frames");
        assert!(lb.rx.len() <= QUEUE);
        assert!(sent < 100_000, "{sent} frames taken without a receiver");
        // Taking them lets the rest through, in order.
        for seq in 0..sent {
            assert_eq!(next_frame(&mut lb).await.header.seq_cnt, seq as u16);
        }
    }
}
