//! The tokio driver around the sans-IO [`Switch`]: it moves frames between the switch and the
//! [`Link`]s attached to its ports (after quinn's `ConnectionDriver`).
//!
//! ```text
//!  link rx (port 1) ─┐                                 ┌─► link tx (port 1)
//!  link rx (port 2) ─┼─► switch task ──────────────────┼─► link tx (port 2)   (bounded queues)
//!  attach / route / ─┘   (polls every port's queue,    └─► events (broadcast)
//!  disconnect / tap       handle_frame, poll_transmit;
//!                         per port: frames held for room)
//! ```
//!
//! One task owns the switch loop and polls every attached port's receiving queue itself: no
//! task per port sits between a link and the switch. What changes the switch from outside — a
//! port attached or disconnected, a route, the tap — comes through one control queue, taken
//! before the ports' frames in each round. Ports are read in turn, a batch each, starting one
//! port further each round. A port whose link's queue ends (every sender gone: the node
//! dropped its end, the TCP connection closed, the FCIP link lost its last connection) goes
//! down; its link is dropped, and the F_Port is free for the next node.
//!
//! # When an egress port's queue is full
//!
//! Every link's queue is bounded. The switch never waits on one port while others have work,
//! and never holds more than a bounded number of frames, by this rule (an FC class 3 switch's
//! hold time):
//!
//! 1. A frame for a port whose link has room is queued at once ([`LinkTx::try_send`]).
//! 2. Otherwise it is **held** in that port's hold queue, in order, with the time it came;
//!    later frames for the port queue behind it. As the link makes room, held frames move into
//!    it, oldest first.
//! 3. A held frame that has waited [`DriverConfig::hold_time`] (by default the switch's
//!    E_D_TOV, 2 s unless configured: a frame held that long has overrun its sequence's error
//!    detection time-out at the receiver anyway) is discarded, and so is every frame behind it that has waited as long; each is counted
//!    in the port's [`PortCounters::tx_discards`](crate::PortCounters), as is a frame for a
//!    port whose link is down.
//! 4. Once a port holds [`DriverConfig::hold_frames`] (default [`HOLD_FRAMES`]) frames, the
//!    ingress port whose frame filled it is no longer read until the hold queue is below that
//!    again: back-pressure reaches that port's sender (its `send().await` waits, a TCP or FCIP
//!    reader stops reading its socket). Other ingress ports go on. A hold queue can exceed
//!    its limit by at most one batch ([`BATCH`] frames) of each ingress port, and frames the
//!    switch originates itself.
//!
//! Because a held frame waits at most the hold time, two switches (or a switch and a node)
//! that each wait for the other's room cannot deadlock: after the hold time frames go and
//! both move again.
//!
//! Each attachment of a port has a generation number, so that a link replaced on its port
//! can't free the port the new link took. The switch itself sits behind a `std::sync::Mutex`
//! so that [`SwitchHandle::snapshot`] can read it briefly; the lock is never held across an
//! `.await`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Sleep;

use fc_frames::FcFrame;

use crate::link::{self, tcp, Link, LinkRx, LinkTx, Received, TrySendError, WaitReady};
use crate::name_server::NsEntry;
use crate::port::{PortCounters, PortId};
use crate::switch::{Event, Switch};

/// Items the switch task takes from one port's queue (and from the control queue) at a time.
pub const BATCH: usize = 256;
/// How long a frame may wait for room on its egress port's link before it is discarded, when
/// no switch configuration says (FC's default E_D_TOV).
pub const HOLD_TIME: Duration = Duration::from_millis(2_000);
/// Frames that may wait for room on one egress port before their ingress ports are no longer
/// read.
pub const HOLD_FRAMES: usize = 1024;
/// Events kept for slow [`SwitchHandle::events`] receivers before they lag.
const EVENT_CAPACITY: usize = 1024;

/// The driver's rule for full egress queues (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Longest a frame waits for room on its egress port's link.
    pub hold_time: Duration,
    /// Frames held for one egress port at which the ingress ports feeding it stop being read.
    pub hold_frames: usize,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            hold_time: HOLD_TIME,
            hold_frames: HOLD_FRAMES,
        }
    }
}

impl DriverConfig {
    /// The rule for a switch of `config`: frames held up to its E_D_TOV.
    pub fn for_switch(config: &crate::Config) -> DriverConfig {
        DriverConfig {
            hold_time: Duration::from_millis(u64::from(config.e_d_tov)),
            ..DriverConfig::default()
        }
    }
}

/// Which way a frame went through a switch port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The switch received it on the port.
    Rx,
    /// The switch sent it on the port.
    Tx,
}

/// Called for every frame the switch receives and sends, in order (a pcap writer, say).
pub type Tap = Box<dyn FnMut(PortId, Direction, &FcFrame) + Send>;

/// Errors of [`SwitchHandle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError {
    /// Every F_Port has a link attached.
    #[error("no free F_Port")]
    NoFreePort,
}

/// One port's state in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSnapshot {
    /// The port.
    pub port: PortId,
    /// Whether its link is up.
    pub up: bool,
    /// Its counters.
    pub counters: PortCounters,
}

/// What the switch looks like at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The name server table, in N_Port ID order.
    pub name_server: Vec<NsEntry>,
    /// Every F_Port and every other port seen, in port order.
    pub ports: Vec<PortSnapshot>,
}

impl Snapshot {
    /// One port's entry.
    pub fn port(&self, port: PortId) -> Option<&PortSnapshot> {
        self.ports.iter().find(|p| p.port == port)
    }
}

/// A running switch. Cheap to clone; the switch runs while a handle or an attached link
/// remains.
#[derive(Clone)]
pub struct SwitchHandle {
    shared: Arc<Shared>,
}

struct Shared {
    switch: Arc<Mutex<Switch>>,
    input: mpsc::UnboundedSender<Input>,
    events: broadcast::Sender<Event>,
    /// F_Ports in port order, from the configuration.
    f_ports: Vec<PortId>,
    /// The generation of each port's current link, kept here so that a free F_Port can be
    /// picked without waiting for the switch task.
    attached: Arc<Mutex<BTreeMap<PortId, u64>>>,
    next_generation: AtomicU64,
}

/// What the switch task is told from outside (the control queue: one message per
/// administrative act, not per frame).
enum Input {
    Attach {
        port: PortId,
        generation: u64,
        link: Link,
    },
    Disconnect {
        port: PortId,
    },
    Route {
        domain: u8,
        port: Option<PortId>,
    },
    SetTap(Option<Tap>),
}

impl SwitchHandle {
    /// Starts the switch task with the [`DriverConfig`] for its configuration (frames held
    /// up to its E_D_TOV). Must be called inside a tokio runtime.
    pub fn spawn(switch: Switch) -> SwitchHandle {
        let config = DriverConfig::for_switch(switch.config());
        SwitchHandle::spawn_with(switch, config)
    }

    /// Starts the switch task with `config`'s rule for full egress queues. Must be called
    /// inside a tokio runtime.
    pub fn spawn_with(switch: Switch, config: DriverConfig) -> SwitchHandle {
        let f_ports = switch.config().f_ports.keys().copied().collect();
        let switch = Arc::new(Mutex::new(switch));
        let (input, input_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let attached = Arc::new(Mutex::new(BTreeMap::new()));
        let task = SwitchTask {
            attached: Arc::clone(&attached),
            switch: Arc::clone(&switch),
            input: input_rx,
            input_open: true,
            events: events.clone(),
            ports: PortMap::new(),
            order: Vec::new(),
            turn: 0,
            tap: None,
            config,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            timer_at: None,
            inputs: Vec::with_capacity(BATCH),
            items: Vec::with_capacity(BATCH),
        };
        tokio::spawn(task.run());
        SwitchHandle {
            shared: Arc::new(Shared {
                switch,
                input,
                events,
                f_ports,
                attached,
                next_generation: AtomicU64::new(1),
            }),
        }
    }

    /// Attaches `link` to `port` and brings the port up. A link already on the port is
    /// replaced: the switch sees the port go down and come up again.
    pub fn attach(&self, port: PortId, link: Link) {
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.attached).insert(port, generation);
        self.send(Input::Attach {
            port,
            generation,
            link,
        });
    }

    /// Attaches one end of an in-process link to a free F_Port and returns the other end.
    pub fn connect_node(&self) -> Result<Link, SwitchError> {
        let (near, far) = link::pair();
        self.attach_free(near)?;
        Ok(far)
    }

    /// Accepts TCP connections forever, each on a free F_Port (see [`tcp`]); a connection
    /// when every F_Port is taken is closed. Returns only if the listener can't be set up.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        // Accepted sockets inherit the listener's receive buffer, and with it the window scale.
        socket2::SockRef::from(&listener).set_recv_buffer_size(tcp::SOCKET_BUFFER)?;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Aborted handshakes and descriptor exhaustion pass; keep accepting.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.free_port() {
                Some(port) => {
                    tracing::info!(%peer, %port, "node connected over TCP");
                    self.attach(port, tcp::spawn(stream));
                }
                None => {
                    tracing::warn!(%peer, "no free F_Port, closing connection");
                    drop(stream);
                }
            }
        }
    }

    /// Drops the port's link, as an administrator disabling the port or a pulled cable: the
    /// node sees its link go down and the switch logs out what was behind the port.
    pub fn disconnect(&self, port: PortId) {
        lock(&self.shared.attached).remove(&port);
        self.send(Input::Disconnect { port });
    }

    /// Frames for `domain` go out `port`, an inter-switch port with any link attached (an
    /// in-process pair, TCP, or an FCIP link). Replaces any earlier route.
    pub fn set_route(&self, domain: u8, port: PortId) {
        self.send(Input::Route {
            domain,
            port: Some(port),
        });
    }

    /// Forgets the static route to `domain`: its frames are discarded as unroutable, unless
    /// a neighbour switch announces it.
    pub fn remove_route(&self, domain: u8) {
        self.send(Input::Route { domain, port: None });
    }

    /// The name server table and every port's state and counters.
    pub fn snapshot(&self) -> Snapshot {
        let sw = lock(&self.shared.switch);
        let mut ports: BTreeSet<PortId> = self.shared.f_ports.iter().copied().collect();
        ports.extend(sw.ports().map(|(p, _)| p));
        Snapshot {
            name_server: sw.name_server().cloned().collect(),
            ports: ports
                .into_iter()
                .map(|port| PortSnapshot {
                    port,
                    up: sw.is_up(port),
                    counters: sw.counters(port).copied().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Sets (or, with `None`, removes) the tap. It sees frames handled after this call.
    pub fn set_tap(&self, tap: Option<Tap>) {
        self.send(Input::SetTap(tap));
    }

    /// The switch's events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Attaches `link` to the first free F_Port.
    fn attach_free(&self, link: Link) -> Result<PortId, SwitchError> {
        let port = self.free_port().ok_or(SwitchError::NoFreePort)?;
        self.attach(port, link);
        Ok(port)
    }

    /// Picks the first F_Port with no link and reserves it.
    fn free_port(&self) -> Option<PortId> {
        let mut attached = lock(&self.shared.attached);
        let port = self
            .shared
            .f_ports
            .iter()
            .copied()
            .find(|p| !attached.contains_key(p))?;
        // Reserved under a generation no link has; `attach` replaces it at once.
        attached.insert(port, 0);
        Some(port)
    }

    fn send(&self, input: Input) {
        // The switch task holds the receiver for as long as this handle exists.
        let _ = self.shared.input.send(input);
    }
}

impl std::fmt::Debug for SwitchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchHandle")
            .field("f_ports", &self.shared.f_ports)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, going on with the data if a holder panicked (every update to the data
/// here is a single call that leaves it consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port's current link, as the switch task holds it.
struct PortLink {
    generation: u64,
    tx: LinkTx,
    rx: LinkRx,
    /// Frames for this port waiting for room on its link, with when they came.
    held: VecDeque<(Instant, FcFrame)>,
    /// Resolves when the link has room for the first held frame.
    ready: Option<WaitReady>,
    /// The egress port whose full hold queue this port's input waits for.
    paused_on: Option<PortId>,
}

/// The attached ports' links, by port number (found by index, not searched for, per frame).
struct PortMap {
    links: Vec<Option<PortLink>>,
    len: usize,
}

impl PortMap {
    fn new() -> PortMap {
        PortMap {
            links: (0..=u8::MAX).map(|_| None).collect(),
            len: 0,
        }
    }

    fn get(&self, port: &PortId) -> Option<&PortLink> {
        self.links.get(usize::from(port.0)).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, port: &PortId) -> Option<&mut PortLink> {
        self.links
            .get_mut(usize::from(port.0))
            .and_then(Option::as_mut)
    }

    fn contains_key(&self, port: &PortId) -> bool {
        self.get(port).is_some()
    }

    fn insert(&mut self, port: PortId, link: PortLink) {
        if let Some(slot) = self.links.get_mut(usize::from(port.0)) {
            self.len += usize::from(slot.is_none());
            *slot = Some(link);
        }
    }

    fn remove(&mut self, port: &PortId) -> Option<PortLink> {
        let l = self
            .links
            .get_mut(usize::from(port.0))
            .and_then(Option::take);
        self.len -= usize::from(l.is_some());
        l
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The attached ports, in port order.
    fn keys(&self) -> impl Iterator<Item = PortId> + '_ {
        (0..=u8::MAX)
            .zip(&self.links)
            .filter(|(_, l)| l.is_some())
            .map(|(p, _)| PortId(p))
    }
}

struct SwitchTask {
    switch: Arc<Mutex<Switch>>,
    input: mpsc::UnboundedReceiver<Input>,
    /// False once every handle is gone: the task ends with the last link.
    input_open: bool,
    events: broadcast::Sender<Event>,
    ports: PortMap,
    /// The attached ports, in port order, for reading them in turn.
    order: Vec<PortId>,
    /// Where in `order` the next round starts.
    turn: usize,
    /// The handle's table of attached ports: the task frees a port whose link went down.
    attached: Arc<Mutex<BTreeMap<PortId, u64>>>,
    tap: Option<Tap>,
    config: DriverConfig,
    /// Wakes the task for the switch's own deadline and the oldest held frame's.
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    inputs: Vec<Input>,
    items: Vec<Received>,
}

impl SwitchTask {
    async fn run(mut self) {
        while std::future::poll_fn(|cx| self.poll_round(cx)).await {}
    }

    /// One round: control messages, held frames, every port's queue, time. `Ready(true)` when
    /// something was done (another round follows at once), `Ready(false)` when the task is to
    /// end, `Pending` (every source's waker registered) when there is nothing to do.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let switch = Arc::clone(&self.switch);
        let mut sw = lock(&switch);
        let now = Instant::now();
        let mut busy = false;
        if self.input_open {
            match self.input.poll_recv_many(cx, &mut self.inputs, BATCH) {
                Poll::Ready(0) => self.input_open = false,
                Poll::Ready(_) => {
                    for input in std::mem::take(&mut self.inputs) {
                        self.handle_input(&mut sw, now, input);
                    }
                    self.flush(&mut sw, now, None);
                    busy = true;
                }
                Poll::Pending => {}
            }
        }
        busy |= self.poll_held(cx, &mut sw, now);
        busy |= self.poll_ports(cx, &mut sw, now);
        busy |= self.poll_time(cx, &mut sw, now);
        if busy {
            Poll::Ready(true)
        } else if !self.input_open && self.ports.is_empty() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }

    fn handle_input(&mut self, sw: &mut Switch, now: Instant, input: Input) {
        match input {
            Input::Attach {
                port,
                generation,
                link,
            } => {
                if self.ports.contains_key(&port) {
                    self.detach(sw, now, port);
                }
                self.ports.insert(
                    port,
                    PortLink {
                        generation,
                        tx: link.tx,
                        rx: link.rx,
                        held: VecDeque::new(),
                        ready: None,
                        paused_on: None,
                    },
                );
                self.order = self.ports.keys().collect();
                sw.port_up(now, port);
            }
            Input::Disconnect { port } => self.detach(sw, now, port),
            Input::Route {
                domain,
                port: Some(port),
            } => sw.set_route(now, domain, port),
            Input::Route { domain, port: None } => sw.remove_route(now, domain),
            Input::SetTap(tap) => self.tap = tap,
        }
    }

    /// Drops the port's link (and the frames held for it) and takes the port down.
    fn detach(&mut self, sw: &mut Switch, now: Instant, port: PortId) {
        if let Some(l) = self.ports.remove(&port) {
            sw.count_tx_discards(port, l.held.len() as u64);
            self.order = self.ports.keys().collect();
            sw.port_down(now, port);
        }
    }

    /// The port's link went down by itself: detached, and the F_Port freed for the next
    /// node unless it was attached anew meanwhile.
    fn link_down(&mut self, sw: &mut Switch, now: Instant, port: PortId) {
        let Some(generation) = self.ports.get(&port).map(|l| l.generation) else {
            return;
        };
        tracing::info!(%port, "link down");
        self.detach(sw, now, port);
        let mut attached = lock(&self.attached);
        if attached.get(&port) == Some(&generation) {
            attached.remove(&port);
        }
    }

    /// Moves held frames into their links as room appears, and discards those held for the
    /// hold time. True if anything moved or went.
    fn poll_held(&mut self, cx: &mut Context<'_>, sw: &mut Switch, now: Instant) -> bool {
        let hold_time = self.config.hold_time;
        let mut busy = false;
        for &port in &self.order {
            let Some(p) = self.ports.get_mut(&port) else {
                continue;
            };
            if p.held.is_empty() && p.ready.is_none() {
                continue;
            }
            let before = p.held.len();
            while p
                .held
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= hold_time)
            {
                p.held.pop_front();
            }
            let expired = before - p.held.len();
            if expired > 0 {
                tracing::debug!(%port, expired, "frames held too long for room, discarded");
                sw.count_tx_discards(port, expired as u64);
                p.ready = None;
                busy = true;
            }
            loop {
                let Some((_, first)) = p.held.front() else {
                    p.ready = None;
                    break;
                };
                let ready = p.ready.get_or_insert_with(|| p.tx.wait_ready(first));
                let Poll::Ready(r) = Pin::new(ready).poll(cx) else {
                    break;
                };
                p.ready = None;
                busy = true;
                if r.is_err() {
                    sw.count_tx_discards(port, p.held.len() as u64);
                    p.held.clear();
                    break;
                }
                while let Some((at, frame)) = p.held.pop_front() {
                    match p.tx.try_send(frame) {
                        Ok(()) => {}
                        Err(TrySendError::Full(frame)) => {
                            p.held.push_front((at, frame));
                            break;
                        }
                        Err(TrySendError::Down(_)) => {
                            sw.count_tx_discards(port, 1 + p.held.len() as u64);
                            p.held.clear();
                        }
                    }
                }
            }
        }
        busy
    }

    /// Takes a batch from each port's queue in turn and hands it to the switch. True if any
    /// port had something (or went down).
    fn poll_ports(&mut self, cx: &mut Context<'_>, sw: &mut Switch, now: Instant) -> bool {
        let n = self.order.len();
        if n == 0 {
            return false;
        }
        let start = self.turn % n;
        self.turn = self.turn.wrapping_add(1);
        let mut busy = false;
        let mut down = Vec::new();
        let mut items = std::mem::take(&mut self.items);
        for k in 0..n {
            let Some(&port) = self.order.get((start + k) % n) else {
                continue;
            };
            if self.paused(port) {
                continue;
            }
            let Some(p) = self.ports.get_mut(&port) else {
                continue;
            };
            match p.rx.poll_recv_many(cx, &mut items, BATCH) {
                Poll::Pending => continue,
                Poll::Ready(0) => down.push(port),
                Poll::Ready(_) => {
                    for item in items.drain(..) {
                        match item {
                            Received::Frame(frame) => {
                                if let Some(tap) = &mut self.tap {
                                    tap(port, Direction::Rx, &frame);
                                }
                                sw.handle_frame(now, port, frame);
                            }
                            Received::Malformed { bytes, error } => {
                                tracing::debug!(%port, %error, "malformed frame");
                                sw.handle_malformed(port, bytes);
                            }
                        }
                        // Send as we go, so a port's output keeps the order of its input.
                        self.flush(sw, now, Some(port));
                    }
                }
            }
            busy = true;
        }
        self.items = items;
        for port in down {
            self.link_down(sw, now, port);
            self.flush(sw, now, None);
        }
        busy
    }

    /// True while `port`'s input waits for room in another port's hold queue (and unpauses it
    /// once that queue is below its limit or its port is gone).
    fn paused(&mut self, port: PortId) -> bool {
        let limit = self.config.hold_frames;
        let Some(on) = self.ports.get(&port).and_then(|p| p.paused_on) else {
            return false;
        };
        let still = self.ports.get(&on).is_some_and(|e| e.held.len() >= limit);
        if !still {
            if let Some(p) = self.ports.get_mut(&port) {
                p.paused_on = None;
            }
        }
        still
    }

    /// The switch's own deadline and the oldest held frame's: handles what is due, or sets
    /// the timer. True if something was due.
    fn poll_time(&mut self, cx: &mut Context<'_>, sw: &mut Switch, now: Instant) -> bool {
        let own = sw.poll_timeout();
        if own.is_some_and(|d| d <= now) {
            sw.handle_timeout(now);
            self.flush(sw, now, None);
            return true;
        }
        let held = self
            .order
            .iter()
            .filter_map(|port| self.ports.get(port))
            .filter_map(|p| p.held.front().map(|(at, _)| *at + self.config.hold_time))
            .min();
        let Some(deadline) = [own, held].into_iter().flatten().min() else {
            self.timer_at = None;
            return false;
        };
        if deadline <= now {
            return true;
        }
        if self.timer_at != Some(deadline) {
            self.timer.as_mut().reset(deadline.into());
            self.timer_at = Some(deadline);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            return true;
        }
        false
    }

    /// Hands the switch's output to the links (or their hold queues), the tap and the event
    /// subscribers. `ingress` is the port whose frame caused the output, if any.
    fn flush(&mut self, sw: &mut Switch, now: Instant, ingress: Option<PortId>) {
        while let Some((port, frame)) = sw.poll_transmit() {
            if let Some(tap) = &mut self.tap {
                tap(port, Direction::Tx, &frame);
            }
            self.egress(sw, now, ingress, port, frame);
        }
        while let Some(event) = sw.poll_event() {
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }

    /// One frame out `port`: into its link if it has room and nothing is held before it, else
    /// held (see the module docs).
    fn egress(
        &mut self,
        sw: &mut Switch,
        now: Instant,
        ingress: Option<PortId>,
        port: PortId,
        frame: FcFrame,
    ) {
        let Some(p) = self.ports.get_mut(&port) else {
            sw.count_tx_discards(port, 1);
            return;
        };
        let frame = if p.held.is_empty() {
            match p.tx.try_send(frame) {
                Ok(()) => return,
                Err(TrySendError::Full(f)) => f,
                Err(TrySendError::Down(_)) => {
                    sw.count_tx_discards(port, 1);
                    return;
                }
            }
        } else {
            frame
        };
        p.held.push_back((now, frame));
        if p.held.len() >= self.config.hold_frames {
            if let Some(p) = ingress.and_then(|i| self.ports.get_mut(&i)) {
                p.paused_on = Some(port);
            }
        }
    }
}
