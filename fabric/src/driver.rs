//! The tokio driver around the sans-IO [`Switch`]: it moves frames between the switch and the
//! [`Link`]s attached to its ports (after quinn's `ConnectionDriver`).
//!
//! ```text
//!  link rx ─ port reader task ─┐                           ┌─ link tx (port 1)
//!  link rx ─ port reader task ─┼─ one queue ─ switch task ─┼─ link tx (port 2)
//!  attach / disconnect / tap ──┘     (handle_frame,        └─ events (broadcast)
//!                                     poll_transmit)
//! ```
//!
//! One task owns the switch loop. Everything that changes the switch — a frame from a port,
//! a port attached or disconnected, a link gone down — goes through one queue to it, so the
//! switch sees events in the order they happened. Each attachment of a port has a generation
//! number: a reader of a link that was since replaced can't take the new link down.
//!
//! The switch itself sits behind a `std::sync::Mutex` so that [`SwitchHandle::snapshot`] can
//! read it briefly; the lock is never held across an `.await`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use fc_frames::FcFrame;

use crate::link::{self, tcp, Link, LinkRx, LinkTx, Received};
use crate::name_server::NsEntry;
use crate::port::{PortCounters, PortId};
use crate::switch::{Event, Switch};

/// Items the switch task takes from its queue at a time.
const BATCH: usize = 256;
/// Events kept for slow [`SwitchHandle::events`] receivers before they lag.
const EVENT_CAPACITY: usize = 1024;

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

/// What the switch task is told.
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
    Received {
        port: PortId,
        generation: u64,
        items: Vec<Received>,
    },
    Down {
        port: PortId,
        generation: u64,
    },
    SetTap(Option<Tap>),
}

impl SwitchHandle {
    /// Starts the switch task. Must be called inside a tokio runtime.
    pub fn spawn(switch: Switch) -> SwitchHandle {
        let f_ports = switch.config().f_ports.keys().copied().collect();
        let switch = Arc::new(Mutex::new(switch));
        let (input, input_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let attached = Arc::new(Mutex::new(BTreeMap::new()));
        let task = SwitchTask {
            attached: Arc::clone(&attached),
            switch: Arc::clone(&switch),
            input: input.downgrade(),
            events: events.clone(),
            links: BTreeMap::new(),
            tap: None,
        };
        tokio::spawn(task.run(input_rx));
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
    reader: JoinHandle<()>,
}

struct SwitchTask {
    switch: Arc<Mutex<Switch>>,
    /// Weak, so that the task ends when every handle and every reader is gone.
    input: mpsc::WeakUnboundedSender<Input>,
    events: broadcast::Sender<Event>,
    links: BTreeMap<PortId, PortLink>,
    /// The handle's table of attached ports: the task frees a port whose link went down.
    attached: Arc<Mutex<BTreeMap<PortId, u64>>>,
    tap: Option<Tap>,
}

impl SwitchTask {
    async fn run(mut self, mut input_rx: mpsc::UnboundedReceiver<Input>) {
        let mut batch = Vec::with_capacity(BATCH);
        let switch = Arc::clone(&self.switch);
        loop {
            let deadline = lock(&switch).poll_timeout();
            let got = tokio::select! {
                n = input_rx.recv_many(&mut batch, BATCH) => n,
                () = sleep_until(deadline) => {
                    let mut sw = lock(&switch);
                    sw.handle_timeout(Instant::now());
                    self.flush(&mut sw);
                    continue;
                }
            };
            if got == 0 {
                break;
            }
            let now = Instant::now();
            let mut sw = lock(&switch);
            for input in batch.drain(..) {
                self.handle(&mut sw, now, input);
            }
            self.flush(&mut sw);
        }
        for (_, l) in std::mem::take(&mut self.links) {
            l.reader.abort();
        }
    }

    fn handle(&mut self, sw: &mut Switch, now: Instant, input: Input) {
        match input {
            Input::Attach {
                port,
                generation,
                link,
            } => {
                if self.links.contains_key(&port) {
                    self.detach(sw, now, port);
                }
                let Some(input) = self.input.upgrade() else {
                    return; // no handle left: shutting down
                };
                let reader = tokio::spawn(read_port(port, generation, link.rx, input));
                self.links.insert(
                    port,
                    PortLink {
                        generation,
                        tx: link.tx,
                        reader,
                    },
                );
                sw.port_up(now, port);
            }
            Input::Disconnect { port } => self.detach(sw, now, port),
            Input::Route {
                domain,
                port: Some(port),
            } => sw.set_route(now, domain, port),
            Input::Route { domain, port: None } => sw.remove_route(now, domain),
            Input::Received {
                port,
                generation,
                items,
            } => {
                if self.links.get(&port).map(|l| l.generation) != Some(generation) {
                    return; // from a link since replaced or disconnected
                }
                for item in items {
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
                    self.flush(sw);
                }
            }
            Input::Down { port, generation } => {
                if self.links.get(&port).map(|l| l.generation) == Some(generation) {
                    tracing::info!(%port, "link down");
                    self.detach(sw, now, port);
                    // Free the port for the next node, unless it was attached anew meanwhile.
                    let mut attached = lock(&self.attached);
                    if attached.get(&port) == Some(&generation) {
                        attached.remove(&port);
                    }
                }
            }
            Input::SetTap(tap) => self.tap = tap,
        }
    }

    /// Drops the port's link and takes the port down.
    fn detach(&mut self, sw: &mut Switch, now: Instant, port: PortId) {
        if let Some(l) = self.links.remove(&port) {
            l.reader.abort();
            sw.port_down(now, port);
        }
    }

    /// Hands the switch's output to the links, the tap and the event subscribers.
    fn flush(&mut self, sw: &mut Switch) {
        while let Some((port, frame)) = sw.poll_transmit() {
            if let Some(tap) = &mut self.tap {
                tap(port, Direction::Tx, &frame);
            }
            if let Some(l) = self.links.get(&port) {
                // A link that went down reports it through its reader.
                let _ = l.tx.send(frame);
            }
        }
        while let Some(event) = sw.poll_event() {
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }
}

/// Sleeps until `deadline`, or for ever.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Forwards what arrives on a port's link to the switch task, then reports the link down.
async fn read_port(
    port: PortId,
    generation: u64,
    mut rx: LinkRx,
    input: mpsc::UnboundedSender<Input>,
) {
    let mut items = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut items, BATCH).await > 0 {
        let batch = std::mem::replace(&mut items, Vec::with_capacity(BATCH));
        let msg = Input::Received {
            port,
            generation,
            items: batch,
        };
        if input.send(msg).is_err() {
            return;
        }
    }
    let _ = input.send(Input::Down { port, generation });
}
