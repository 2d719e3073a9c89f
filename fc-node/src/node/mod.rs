//! The N_Port driver: one tokio task (the *core*) owns the link, the [`ExchangeManager`] and
//! the port's sessions, and a second task (the *manager*, [`login`]) logs the port in.
//!
//! ```text
//!  Node handle ── commands ──► core ◄── link (fabric::link) ──► switch port
//!   exchange(): Exchange ◄─ per-exchange events ─┤
//!                                                ├─ ELS requests from peers: answered here (els)
//!                                                ├─ exchanges peers open: FC-4 services (service)
//!                                                └─ notices (RSCN, LOGO, link) ──► manager
//!   events(): NodeEvent ◄── state, RSCN, sessions ┘
//! ```
//!
//! The protocol state stays sans-IO: frames and time go into the [`ExchangeManager`], and the
//! ELS answers are pure functions of the request and the session table ([`els`]). The core
//! only moves frames, timers and channel messages; it reads the time from the [`Clock`] of its
//! [`NodeConfig`] and numbers its exchanges from the config's seed, so that the same inputs
//! give the same frames. Exchanges that peers open go to the [`Service`]s the node was
//! spawned with ([`service`]: by TYPE, ELS command code, CT GS_TYPE/GS_Subtype; FCP's target
//! is one of them). The manager runs the login procedure as ordinary async code on top of
//! [`Node::exchange`]: FLOGI, name server registration of every FC-4 TYPE and feature the
//! node serves and its symbolic name, SCR, and only then reports the port online; as an FCP
//! initiator it then does GID_FT discovery with PLOGI/PRLI to each target; it runs it all
//! again when the link comes back, and rediscovers on RSCN or a target's LOGO.
//!
//! Sessions have two sides: those this port opened (PLOGI/PRLI to a target it discovered) and
//! those peers opened with it (a host logging in to a target). An RSCN or a discovery round
//! only touches the first kind, so a dual-role node (the controller: initiator to its arrays,
//! target to its hosts) never tears down a host's image pair because the host's entry changed.
//!
//! A link that goes down fails every open exchange with [`NodeError::LinkDown`], drops every
//! session, and the core reconnects with bounded exponential backoff.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fabric::link::{Link, LinkTx, Received, TrySendError};
use fc_frames::els::prli::FcpServiceParams;
use fc_frames::els::{ElsError, ElsReply, ElsRequest, Logo, LsRjt, RscnPage};
use fc_frames::{FCtl, FcId, FcType, FrameHeaderRepr, RCtl, Wwn};
use tokio::sync::{broadcast, mpsc, watch};

use crate::exchange::{self, Event, ExchangeError, ExchangeId, ExchangeManager, Outbound};
use service::Route;

pub mod els;
pub mod login;
pub mod service;

pub use service::{
    Access, ChannelService, Context, Ended, Inbound, Registration, Request, Requests, Responder,
    Service, ServiceKey, Services, SessionEnd, SessionEvent,
};

/// An exchange ID as logs show it: four hex digits, as Wireshark does.
#[derive(Debug, Clone, Copy)]
struct Xid(u16);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

/// Events kept for a slow [`Node::events`] receiver before it lags.
const EVENT_CAPACITY: usize = 1024;

/// Where a node reads the time. The core never reads a clock of its own, so a test (or a
/// capture replay) can drive it on virtual time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// tokio's clock: real time, or the paused virtual time of `tokio::time::pause`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// How a node gets a link to its switch port: called again after every link loss.
pub trait Connector: Send + 'static {
    /// Opens a new link.
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Link>> + Send + '_>>;
}

impl<F, Fut> Connector for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<Link>> + Send + 'static,
{
    fn connect(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Link>> + Send + '_>> {
        Box::pin(self())
    }
}

/// What a node is and how it behaves.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// N_Port_Name.
    pub port_name: Wwn,
    /// Node_Name.
    pub node_name: Wwn,
    /// Symbolic port name registered with the name server (RSPN_ID), at most 255 bytes.
    pub symbolic_name: String,
    /// FCP initiator function: discover targets and log in to them.
    pub initiator: bool,
    /// FCP target function: accept PRLI as a target and serve FCP_CMND (needs the FCP target
    /// among the node's [`Services`]).
    pub target: bool,
    /// Exchange manager tunables (E_D_TOV, R_A_TOV, bounds).
    pub exchange: exchange::Config,
    /// Time-out of an ELS or name server request (FC-LS: 2 × R_A_TOV).
    pub els_timeout: Duration,
    /// First wait before reconnecting a lost link; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Where the core reads the time.
    pub clock: Arc<dyn Clock>,
    /// Seed of the exchange IDs: each link's first OX_ID is drawn from it and the link's
    /// number, so equal seeds give equal frames.
    pub seed: u64,
}

impl NodeConfig {
    /// A node with the FC default time-outs (E_D_TOV 2 s, R_A_TOV 10 s), ELS time-out 20 s,
    /// reconnecting after 50 ms to 2 s.
    pub fn new(port_name: Wwn, node_name: Wwn) -> NodeConfig {
        NodeConfig {
            port_name,
            node_name,
            symbolic_name: format!("fcsan {port_name}"),
            initiator: false,
            target: false,
            exchange: exchange::Config::default(),
            els_timeout: Duration::from_secs(20),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            clock: Arc::new(TokioClock),
            seed: port_name.to_u64(),
        }
    }

    /// The first exchange ID of link `generation` (splitmix64 of the seed and the generation).
    fn xid_seed(&self, generation: u64) -> u16 {
        let mut z = self
            .seed
            .wrapping_add(generation.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u16
    }
}

/// Where the port is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// No link; connecting.
    Connecting,
    /// The link is up (the `generation`th since start); fabric login under way.
    LinkUp {
        /// Counts links: every reconnection is a new generation.
        generation: u64,
    },
    /// Logged in with the fabric.
    Online {
        /// The link generation.
        generation: u64,
        /// The N_Port ID the fabric assigned.
        port_id: FcId,
        /// The fabric's name.
        fabric_name: Wwn,
    },
    /// Shut down.
    Stopped,
}

impl NodeState {
    /// The link generation, when the link is up.
    pub fn generation(self) -> Option<u64> {
        match self {
            NodeState::LinkUp { generation } | NodeState::Online { generation, .. } => {
                Some(generation)
            }
            NodeState::Connecting | NodeState::Stopped => None,
        }
    }
}

/// What a node's user hears of ([`Node::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The port's state changed.
    State(NodeState),
    /// An RSCN arrived (FC-LS-3 §4.2.27) with these pages.
    Rscn(Vec<RscnPage>),
    /// A session opened or closed.
    Session(SessionEvent),
}

/// Another N_Port this port is logged in with (PLOGI, either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotePort {
    /// Its N_Port ID.
    pub port_id: FcId,
    /// Its port name.
    pub port_name: Wwn,
    /// Its node name.
    pub node_name: Wwn,
    /// The receive data field size it gave at login.
    pub rx_size: u16,
    /// Its FCP service parameters, once an FCP image pair is established (PRLI).
    pub fcp: Option<FcpServiceParams>,
    /// True when this port opened the session (PLOGI, and PRLI, to a port it discovered);
    /// false when the other port logged in with us.
    pub originated: bool,
}

impl RemotePort {
    /// True when it is an FCP target we have an image pair with.
    pub fn is_fcp_target(&self) -> bool {
        self.fcp
            .is_some_and(|p| p.contains(FcpServiceParams::TARGET_FUNCTION))
    }

    /// True when it is an FCP initiator with an image pair with us.
    pub fn is_fcp_initiator(&self) -> bool {
        self.fcp
            .is_some_and(|p| p.contains(FcpServiceParams::INITIATOR_FUNCTION))
    }
}

/// Why an exchange or request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The link went down (or was down) before the exchange ended.
    #[error("link down")]
    LinkDown,
    /// The port is not logged in with the fabric.
    #[error("not logged in with the fabric")]
    Offline,
    /// No answer in time: the exchange was aborted with ABTS.
    #[error("timed out; exchange aborted")]
    TimedOut,
    /// A sequence outgrew the reassembly bounds: the exchange was aborted.
    #[error("sequence too large; exchange aborted")]
    Overrun,
    /// The peer aborted the exchange (ABTS).
    #[error("aborted by the peer")]
    AbortedByPeer,
    /// The exchange manager refused the send.
    #[error("exchange: {0}")]
    Exchange(#[from] ExchangeError),
    /// The peer answered with LS_RJT.
    #[error("rejected: {0}")]
    Rejected(LsRjt),
    /// The peer's answer did not decode or made no sense.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The node was shut down.
    #[error("node stopped")]
    Stopped,
}

impl From<ElsError> for NodeError {
    fn from(e: ElsError) -> NodeError {
        NodeError::Protocol(e.to_string())
    }
}

/// One received sequence of an exchange.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Header of its first frame.
    pub header: FrameHeaderRepr,
    /// Its payload.
    pub payload: Bytes,
}

impl Sequence {
    /// True when it ended the exchange.
    pub fn is_last(&self) -> bool {
        self.header.f_ctl.contains(FCtl::LAST_SEQUENCE)
    }
}

pub(crate) enum XEvent {
    /// The exchange manager opened it, with this OX_ID.
    Started(ExchangeId, u16),
    Sequence(Sequence),
    Failed(NodeError),
}

/// An exchange this port opened: receive the peer's sequences, send more of ours. Dropping it
/// before the exchange ended aborts the exchange (ABTS), so no state leaks.
pub struct Exchange {
    id: Option<ExchangeId>,
    /// Names the exchange to the core before its ID is known.
    key: usize,
    done: bool,
    events: mpsc::UnboundedReceiver<XEvent>,
    core: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish()
    }
}

impl Exchange {
    /// The next sequence from the peer.
    pub async fn next(&mut self) -> Result<Sequence, NodeError> {
        loop {
            match self.events.recv().await {
                Some(XEvent::Started(id, ox_id)) => {
                    self.id = Some(id);
                    // The caller's span (an FCP command's, say) learns its OX_ID, when it
                    // has that field.
                    tracing::Span::current().record("ox_id", tracing::field::display(Xid(ox_id)));
                }
                Some(XEvent::Sequence(s)) => {
                    if s.is_last() {
                        self.done = true;
                    }
                    return Ok(s);
                }
                Some(XEvent::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => {
                    self.done = true;
                    return Err(NodeError::Stopped);
                }
            }
        }
    }

    /// Sends our next sequence (we must hold the sequence initiative); a failure comes back
    /// from [`next`](Self::next).
    pub fn send(&mut self, seq: Outbound) {
        if seq.last_sequence {
            self.done = true;
        }
        // The exchange's ID may not be known yet; the core queues by channel order, and an
        // Originate is always ahead of this Send in the same channel.
        let _ = self.core.send(Command::Send {
            id: self.id,
            key: self.key,
            seq,
        });
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.core.send(Command::Release {
                id: self.id,
                key: self.key,
            });
        }
    }
}

/// A notice from the core to the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// An RSCN arrived with these affected addresses.
    Rscn(Vec<fc_frames::els::RscnPage>),
    /// A port logged us out (LOGO), or told us we are not logged in with it.
    LoggedOut(FcId),
}

pub(crate) enum Command {
    Originate {
        d_id: FcId,
        fc_type: FcType,
        seq: Outbound,
        timeout: Duration,
        key: usize,
        events: mpsc::UnboundedSender<XEvent>,
    },
    Send {
        id: Option<ExchangeId>,
        key: usize,
        seq: Outbound,
    },
    Release {
        id: Option<ExchangeId>,
        key: usize,
    },
    /// Fabric login done: our N_Port ID and the frame size to use.
    LoggedIn {
        generation: u64,
        port_id: FcId,
        max_payload: usize,
    },
    /// Registered with the name server: the port is online.
    Online {
        generation: u64,
        port_id: FcId,
        fabric_name: Wwn,
    },
    /// A service's answer: sequences to send on an exchange a peer opened.
    Respond {
        x: Inbound,
        seqs: Vec<Outbound>,
    },
    /// A service aborts an exchange a peer opened.
    AbortInbound {
        x: Inbound,
    },
    /// The manager changed a session: the services hear of it.
    Session(SessionEvent),
    Shutdown,
}

/// State shared by the node's handle, core and manager.
struct Shared {
    config: NodeConfig,
    state: watch::Sender<NodeState>,
    /// Discovery rounds completed (GID_FT and the logins after it), since start.
    discoveries: watch::Sender<u64>,
    sessions: Mutex<BTreeMap<FcId, RemotePort>>,
    counters: Mutex<NodeCounters>,
    events: broadcast::Sender<NodeEvent>,
    /// What the node's services register with the name server.
    registrations: Vec<Registration>,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, BTreeMap<FcId, RemotePort>> {
        // A panic while holding this lock leaves a map that is still a valid map.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counters(&self) -> MutexGuard<'_, NodeCounters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: NodeState) {
        self.state.send_replace(state);
        let _ = self.events.send(NodeEvent::State(state));
    }

    fn event(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }
}

/// What a node counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames that did not decode (bad CRC, bad length).
    pub malformed: u64,
    /// Links brought up.
    pub links: u64,
    /// Fabric logins completed.
    pub fabric_logins: u64,
    /// Exchanges that timed out.
    pub timeouts: u64,
    /// Exchanges opened by ports without the login their service needs (PLOGI, or an FCP
    /// image pair): discarded, and the port sent LOGO.
    pub without_login: u64,
    /// Exchanges handed to services.
    pub service_requests: u64,
    /// Exchanges of a TYPE no service takes: discarded.
    pub unserved: u64,
    /// CT requests for a server this node does not have: FS_RJT.
    pub ct_rejected: u64,
    /// Exchanges open now (originated or answered, including those being aborted).
    pub open_exchanges: u64,
}

/// A handle on a running node. Cheap to clone; the node stops when the last handle is dropped
/// or [`shutdown`](Self::shutdown) is called.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    core: mpsc::UnboundedSender<Command>,
    _guard: Arc<StopGuard>,
}

struct StopGuard(mpsc::UnboundedSender<Command>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let _ = self.0.send(Command::Shutdown);
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("port_name", &self.shared.config.port_name)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

/// The parts of a node the manager and the FCP target use (no stop guard).
#[derive(Clone)]
pub(crate) struct CoreHandle {
    shared: Arc<Shared>,
    core: mpsc::UnboundedSender<Command>,
}

impl CoreHandle {
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    pub(crate) fn exchange(
        &self,
        d_id: FcId,
        fc_type: FcType,
        seq: Outbound,
        timeout: Duration,
    ) -> Exchange {
        let (tx, rx) = mpsc::unbounded_channel();
        let key = next_key();
        let mut x = Exchange {
            id: None,
            key,
            done: false,
            events: rx,
            core: self.core.clone(),
        };
        if self
            .core
            .send(Command::Originate {
                d_id,
                fc_type,
                seq,
                timeout,
                key,
                events: tx,
            })
            .is_err()
        {
            x.done = true;
        }
        x
    }

    /// Sends an ELS request and waits for its reply; LS_RJT is an error.
    pub(crate) async fn els(&self, d_id: FcId, req: &ElsRequest) -> Result<ElsReply, NodeError> {
        self.els_with_header(d_id, req).await.map(|(_, r)| r)
    }

    /// [`els`](Self::els), with the header of the reply (FLOGI learns its N_Port ID from the
    /// D_ID of the LS_ACC).
    pub(crate) async fn els_with_header(
        &self,
        d_id: FcId,
        req: &ElsRequest,
    ) -> Result<(FrameHeaderRepr, ElsReply), NodeError> {
        let code = req.code();
        let seq = Outbound::new(RCtl::ELS_REQUEST, req.to_vec());
        let mut x = self.exchange(d_id, FcType::ELS, seq, self.shared.config.els_timeout);
        let reply = x.next().await?;
        match ElsReply::parse(code, &reply.payload)? {
            ElsReply::Rjt(rjt) => Err(NodeError::Rejected(rjt)),
            r => Ok((reply.header, r)),
        }
    }

    fn send(&self, cmd: Command) -> Result<(), NodeError> {
        self.core.send(cmd).map_err(|_| NodeError::Stopped)
    }

    pub(crate) fn state(&self) -> NodeState {
        *self.shared.state.borrow()
    }

    pub(crate) fn watch_state(&self) -> watch::Receiver<NodeState> {
        self.shared.state.subscribe()
    }

    pub(crate) fn discovered(&self) {
        self.shared.discoveries.send_modify(|n| *n += 1);
    }

    pub(crate) fn logged_in(
        &self,
        generation: u64,
        port_id: FcId,
        max_payload: usize,
    ) -> Result<(), NodeError> {
        self.send(Command::LoggedIn {
            generation,
            port_id,
            max_payload,
        })
    }

    pub(crate) fn online(
        &self,
        generation: u64,
        port_id: FcId,
        fabric_name: Wwn,
    ) -> Result<(), NodeError> {
        self.send(Command::Online {
            generation,
            port_id,
            fabric_name,
        })
    }

    pub(crate) fn registrations(&self) -> &[Registration] {
        &self.shared.registrations
    }

    /// Tells the node's user and its services of a session change the manager made.
    pub(crate) fn session_event(&self, event: SessionEvent) {
        self.shared.event(NodeEvent::Session(event));
        let _ = self.core.send(Command::Session(event));
    }

    pub(crate) fn sessions(&self) -> MutexGuard<'_, BTreeMap<FcId, RemotePort>> {
        self.shared.sessions()
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut NodeCounters)) {
        f(&mut self.shared.counters());
    }
}

fn next_key() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static KEY: AtomicUsize = AtomicUsize::new(1);
    KEY.fetch_add(1, Ordering::Relaxed)
}

impl Node {
    /// Starts a node: it connects with `connector`, logs in with the fabric, registers with
    /// the name server what it serves and, as an FCP initiator, logs in to every FCP target it
    /// may see. `services` take the exchanges peers open with it (see [`service`]). Must be
    /// called inside a tokio runtime.
    pub fn spawn(config: NodeConfig, connector: impl Connector, services: Services) -> Node {
        let (state, _) = watch::channel(NodeState::Connecting);
        let (discoveries, _) = watch::channel(0);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(Shared {
            config,
            state,
            discoveries,
            sessions: Mutex::new(BTreeMap::new()),
            counters: Mutex::new(NodeCounters::default()),
            events,
            registrations: services.registrations(),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let handle = CoreHandle {
            shared: shared.clone(),
            core: cmd_tx.clone(),
        };
        let core = Core {
            em: ExchangeManager::new(shared.config.exchange.clone()),
            shared: shared.clone(),
            handle: handle.clone(),
            link: None,
            generation: 0,
            waiters: HashMap::new(),
            pending: HashMap::new(),
            notices: notice_tx,
            services,
            taken: HashMap::new(),
            ended: Vec::new(),
            stopping: false,
        };
        tokio::spawn(core.run(cmd_rx, Box::new(connector)));
        tokio::spawn(login::manage(handle, notice_rx));
        Node {
            shared,
            core: cmd_tx.clone(),
            _guard: Arc::new(StopGuard(cmd_tx)),
        }
    }

    fn handle(&self) -> CoreHandle {
        CoreHandle {
            shared: self.shared.clone(),
            core: self.core.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// Where the port is now.
    pub fn state(&self) -> NodeState {
        *self.shared.state.borrow()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<NodeState> {
        self.shared.state.subscribe()
    }

    /// What happens to the node from now on: state changes, RSCNs, sessions opened and closed
    /// (a target's LOGO among them). A receiver that falls more than 1024 events behind
    /// lags (`RecvError::Lagged`) and goes on from the oldest kept.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// Logs in with the port `id` (PLOGI), as services other than FCP need before a peer
    /// answers them; the session as the peer accepted it.
    pub async fn plogi(&self, id: FcId) -> Result<RemotePort, NodeError> {
        login::plogi(&self.handle(), id).await
    }

    /// The N_Port ID, when logged in with the fabric.
    pub fn port_id(&self) -> Option<FcId> {
        match self.state() {
            NodeState::Online { port_id, .. } => Some(port_id),
            _ => None,
        }
    }

    /// Waits until the port is logged in with the fabric; its N_Port ID.
    pub async fn wait_online(&self, timeout: Duration) -> Result<FcId, NodeError> {
        let mut rx = self.watch_state();
        let wait = async {
            let s = rx
                .wait_for(|s| matches!(s, NodeState::Online { .. } | NodeState::Stopped))
                .await
                .map(|s| *s);
            match s {
                Ok(NodeState::Online { port_id, .. }) => Ok(port_id),
                _ => Err(NodeError::Stopped),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(NodeError::TimedOut))
    }

    /// The ports logged in with this one, by N_Port ID.
    pub fn sessions(&self) -> Vec<RemotePort> {
        self.shared.sessions().values().copied().collect()
    }

    /// The FCP targets this port has an image pair with, by N_Port ID.
    pub fn targets(&self) -> Vec<RemotePort> {
        self.shared
            .sessions()
            .values()
            .filter(|r| r.is_fcp_target())
            .copied()
            .collect()
    }

    /// Waits until at least `n` FCP targets are logged in, or `timeout`.
    pub async fn wait_targets(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RemotePort>, NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let targets = self.targets();
            if targets.len() >= n {
                return Ok(targets);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the node has finished a discovery round since it started: logged in with
    /// the fabric, registered, and (as an initiator) logged in to every target the name
    /// server showed it. Its targets are then [`targets`](Self::targets).
    pub async fn wait_discovery(&self, timeout: Duration) -> Result<(), NodeError> {
        let mut rx = self.shared.discoveries.subscribe();
        let wait = async { rx.wait_for(|n| *n > 0).await.map(|_| ()) };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Stopped),
            Err(_) => Err(NodeError::TimedOut),
        }
    }

    /// What the node counted.
    pub fn counters(&self) -> NodeCounters {
        *self.shared.counters()
    }

    /// Opens an exchange with `d_id` by sending its first sequence. The exchange is aborted
    /// if it has not ended within `timeout`.
    pub fn exchange(
        &self,
        d_id: FcId,
        fc_type: FcType,
        seq: Outbound,
        timeout: Duration,
    ) -> Exchange {
        self.handle().exchange(d_id, fc_type, seq, timeout)
    }

    /// Sends an ELS request and waits for the reply; LS_RJT is [`NodeError::Rejected`].
    pub async fn els(&self, d_id: FcId, req: &ElsRequest) -> Result<ElsReply, NodeError> {
        self.handle().els(d_id, req).await
    }

    /// Sends a name server request to FFFFFC and waits for the reply.
    pub async fn name_server(
        &self,
        req: &fc_frames::ct::ns::NsRequest,
    ) -> Result<fc_frames::ct::ns::NsResponse, NodeError> {
        login::ns_request(&self.handle(), req).await
    }

    /// Logs out from the fabric (LOGO to FFFFFE) and stops the node.
    pub async fn shutdown(&self) {
        if let Some(id) = self.port_id() {
            let logo = ElsRequest::Logo(Logo {
                n_port_id: id,
                port_name: self.shared.config.port_name,
            });
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.els(FcId::F_PORT_CONTROLLER, &logo),
            )
            .await;
        }
        let _ = self.core.send(Command::Shutdown);
        let mut rx = self.watch_state();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            rx.wait_for(|s| *s == NodeState::Stopped),
        )
        .await;
    }
}

struct Core {
    em: ExchangeManager,
    shared: Arc<Shared>,
    handle: CoreHandle,
    link: Option<LinkTx>,
    generation: u64,
    /// Exchanges we opened, by ID, with the channel to their owner.
    waiters: HashMap<ExchangeId, (usize, mpsc::UnboundedSender<XEvent>)>,
    /// Owner key → exchange ID, for sends and releases that raced the ID.
    pending: HashMap<usize, ExchangeId>,
    notices: mpsc::UnboundedSender<Notice>,
    services: Services,
    /// Exchanges peers opened that a service took, by ID: which service.
    taken: HashMap<ExchangeId, (usize, FcId)>,
    /// Exchanges a service ended while it was called (scratch, emptied after each call).
    ended: Vec<ExchangeId>,
    stopping: bool,
}

impl Core {
    fn now(&self) -> Instant {
        self.shared.config.clock.now()
    }

    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut connector: Box<dyn Connector>,
    ) {
        let config = self.shared.config.clone();
        let mut backoff = config.reconnect_min;
        while !self.stopping {
            // Connect, failing whatever is asked meanwhile.
            let link = {
                let connect = connector.connect();
                tokio::pin!(connect);
                loop {
                    tokio::select! {
                        r = &mut connect => break Some(r),
                        cmd = cmds.recv() => match cmd {
                            Some(cmd) => self.offline_command(cmd),
                            None => break None,
                        },
                    }
                    if self.stopping {
                        break None;
                    }
                }
            };
            let link = match link {
                Some(Ok(link)) => link,
                Some(Err(e)) => {
                    tracing::debug!(port_name = %config.port_name, error = %e, "connect failed");
                    let sleep = tokio::time::sleep(backoff);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            cmd = cmds.recv() => match cmd {
                                Some(cmd) => self.offline_command(cmd),
                                None => { self.stopping = true; break; }
                            },
                        }
                        if self.stopping {
                            break;
                        }
                    }
                    backoff = (backoff * 2).min(config.reconnect_max);
                    continue;
                }
                None => break,
            };
            backoff = config.reconnect_min;
            self.connected(link, &mut cmds).await;
        }
        self.link = None;
        self.fail_all(NodeError::Stopped);
        self.shared.set_state(NodeState::Stopped);
    }

    /// Runs one link until it goes down or the node stops.
    async fn connected(&mut self, link: Link, cmds: &mut mpsc::UnboundedReceiver<Command>) {
        let Link { tx, mut rx } = link;
        self.generation += 1;
        self.em = ExchangeManager::new(exchange::Config {
            xid_seed: self.shared.config.xid_seed(self.generation),
            ..self.shared.config.exchange.clone()
        });
        self.link = Some(tx);
        self.handle.count(|c| c.links += 1);
        tracing::info!(port_name = %self.shared.config.port_name, generation = self.generation, "link up");
        self.shared.set_state(NodeState::LinkUp {
            generation: self.generation,
        });
        let mut received = Vec::with_capacity(256);
        let mut commands = Vec::with_capacity(256);
        let mut blocked = false;
        loop {
            let deadline = self.em.poll_timeout();
            tokio::select! {
                n = rx.recv_many(&mut received, 256) => {
                    if n == 0 {
                        break;
                    }
                    let now = self.now();
                    let mut frames = 0;
                    for r in received.drain(..) {
                        match r {
                            Received::Frame(f) => {
                                frames += 1;
                                self.em.handle_frame(now, f);
                            }
                            Received::Malformed { .. } => self.handle.count(|c| c.malformed += 1),
                        }
                    }
                    self.handle.count(|c| c.rx_frames += frames);
                }
                n = cmds.recv_many(&mut commands, 256) => {
                    if n == 0 {
                        self.stopping = true;
                        break;
                    }
                    for cmd in commands.drain(..) {
                        self.command(cmd);
                    }
                    if self.stopping {
                        break;
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now();
                    self.em.handle_timeout(now);
                }
                // The link had no room for what the exchange manager has to send.
                _ = link_room(self.link.clone()), if blocked => {}
            }
            blocked = self.pump();
            if self.link.as_ref().is_none_or(LinkTx::is_closed) {
                break;
            }
        }
        tracing::info!(port_name = %self.shared.config.port_name, generation = self.generation, "link down");
        self.link = None;
        self.fail_all(NodeError::LinkDown);
        self.handle.count(|c| c.open_exchanges = 0);
        let dropped: Vec<RemotePort> = std::mem::take(&mut *self.shared.sessions())
            .into_values()
            .collect();
        for port in dropped {
            self.session_changed(SessionEvent::Closed {
                port,
                reason: SessionEnd::LinkDown,
            });
        }
        if !self.stopping {
            self.shared.set_state(NodeState::Connecting);
        }
    }

    fn fail_all(&mut self, e: NodeError) {
        for (_, (_, tx)) in self.waiters.drain() {
            let _ = tx.send(XEvent::Failed(e.clone()));
        }
        self.pending.clear();
        let generation = self.generation;
        for (id, (i, peer)) in std::mem::take(&mut self.taken) {
            if let Some(entry) = self.services.entries.get_mut(i) {
                let x = Inbound {
                    generation,
                    id,
                    peer,
                };
                entry.service.ended(x, Ended::LinkDown);
            }
        }
    }

    fn offline_command(&mut self, cmd: Command) {
        match cmd {
            Command::Originate { events, .. } => {
                let _ = events.send(XEvent::Failed(NodeError::LinkDown));
            }
            Command::Shutdown => self.stopping = true,
            Command::Session(event) => self.tell_services(&event),
            Command::Send { .. }
            | Command::Release { .. }
            | Command::LoggedIn { .. }
            | Command::Online { .. }
            | Command::Respond { .. }
            | Command::AbortInbound { .. } => {}
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Originate {
                d_id,
                fc_type,
                seq,
                timeout,
                key,
                events,
            } => match self.em.originate(now, d_id, fc_type, seq, timeout) {
                Ok(id) => {
                    let ox_id = self.em.exchange(id).map_or(0, |x| x.ox_id);
                    tracing::debug!(
                        ox_id = %Xid(ox_id),
                        s_id = %self.em.local_id(),
                        %d_id,
                        %fc_type,
                        "exchange opened"
                    );
                    let _ = events.send(XEvent::Started(id, ox_id));
                    self.waiters.insert(id, (key, events));
                    self.pending.insert(key, id);
                }
                Err(e) => {
                    let _ = events.send(XEvent::Failed(e.into()));
                }
            },
            Command::Send { id, key, seq } => {
                let Some(id) = id.or_else(|| self.pending.get(&key).copied()) else {
                    return;
                };
                let last = seq.last_sequence;
                if let Err(e) = self.em.send_sequence(now, id, seq) {
                    if let Some((_, tx)) = self.waiters.remove(&id) {
                        let _ = tx.send(XEvent::Failed(e.into()));
                    }
                    self.pending.remove(&key);
                } else if last {
                    self.waiters.remove(&id);
                    self.pending.remove(&key);
                }
            }
            Command::Release { id, key } => {
                let Some(id) = id.or_else(|| self.pending.remove(&key)) else {
                    return;
                };
                self.pending.remove(&key);
                self.waiters.remove(&id);
                if self.em.exchange(id).is_some() {
                    let _ = self.em.abort(now, id);
                }
            }
            Command::LoggedIn {
                generation,
                port_id,
                max_payload,
            } => {
                if generation == self.generation {
                    self.em.set_local_id(port_id);
                    self.em.set_max_payload(max_payload);
                    self.handle.count(|c| c.fabric_logins += 1);
                }
            }
            Command::Online {
                generation,
                port_id,
                fabric_name,
            } => {
                if generation == self.generation && self.em.local_id() == port_id {
                    self.shared.set_state(NodeState::Online {
                        generation,
                        port_id,
                        fabric_name,
                    });
                }
            }
            Command::Respond { x, seqs } => {
                if x.generation != self.generation || !self.taken.contains_key(&x.id) {
                    // The exchange ended meanwhile (time-out, ABTS, link loss).
                    return;
                }
                for seq in seqs {
                    let last = seq.last_sequence;
                    if self.em.send_sequence(now, x.id, seq).is_err() {
                        break;
                    }
                    if last {
                        if let Some((i, _)) = self.taken.remove(&x.id) {
                            if let Some(entry) = self.services.entries.get_mut(i) {
                                entry.service.finished(x);
                            }
                        }
                        break;
                    }
                }
            }
            Command::AbortInbound { x } => {
                if x.generation == self.generation && self.taken.remove(&x.id).is_some() {
                    let _ = self.em.abort(now, x.id);
                }
            }
            Command::Session(event) => self.tell_services(&event),
            Command::Shutdown => self.stopping = true,
        }
    }

    /// Hands out what the exchange manager produced, until it has nothing more or the link
    /// has no room; true in the second case (frames may wait in the exchange manager).
    fn pump(&mut self) -> bool {
        let mut sent = 0;
        let mut blocked;
        loop {
            let mut busy = false;
            blocked = false;
            while let Some(ev) = self.em.poll_event() {
                busy = true;
                self.event(ev);
            }
            // The link's queue is bounded: while it is full, frames wait in the exchange
            // manager, and the core waits for room without ceasing to receive.
            loop {
                if self.link.as_ref().is_some_and(|l| !l.has_room()) {
                    blocked = true;
                    break;
                }
                let Some(frame) = self.em.poll_transmit() else {
                    break;
                };
                busy = true;
                sent += 1;
                if let Some(link) = &self.link {
                    // Room was there and the core is the link's only sender: only a link gone
                    // down refuses.
                    if let Err(TrySendError::Down(_)) = link.try_send(frame) {
                        self.link = None;
                    }
                }
            }
            if !busy {
                break;
            }
        }
        // Once a pump, not once a round: the counters' lock stays off the frame loop.
        let open = self.em.open_exchanges() as u64;
        self.handle.count(|c| {
            c.tx_frames += sent;
            c.open_exchanges = open;
        });
        blocked
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Sequence {
                id,
                header,
                payload,
            } => {
                if let Some((key, tx)) = self.waiters.get(&id) {
                    let last = header.f_ctl.contains(FCtl::LAST_SEQUENCE);
                    let key = *key;
                    let _ = tx.send(XEvent::Sequence(Sequence { header, payload }));
                    if last {
                        self.waiters.remove(&id);
                        self.pending.remove(&key);
                    }
                    return;
                }
                self.inbound(id, Sequence { header, payload });
            }
            Event::TimedOut { id } | Event::Overrun { id } | Event::AbortedByPeer { id } => {
                let (e, why) = match ev {
                    Event::TimedOut { .. } => {
                        self.handle.count(|c| c.timeouts += 1);
                        (NodeError::TimedOut, Ended::TimedOut)
                    }
                    Event::Overrun { .. } => (NodeError::Overrun, Ended::Overrun),
                    _ => (NodeError::AbortedByPeer, Ended::AbortedByPeer),
                };
                tracing::debug!(%id, error = %e, "exchange ended without its last sequence");
                if let Some((key, tx)) = self.waiters.remove(&id) {
                    let _ = tx.send(XEvent::Failed(e));
                    self.pending.remove(&key);
                }
                if let Some((i, peer)) = self.taken.remove(&id) {
                    let x = Inbound {
                        generation: self.generation,
                        id,
                        peer,
                    };
                    if let Some(entry) = self.services.entries.get_mut(i) {
                        entry.service.ended(x, why);
                    }
                }
            }
            Event::Aborted { id } => {
                if let Some((key, tx)) = self.waiters.remove(&id) {
                    let _ = tx.send(XEvent::Failed(NodeError::TimedOut));
                    self.pending.remove(&key);
                }
                self.taken.remove(&id);
            }
        }
    }

    /// A sequence of an exchange a peer opened: to the service that took the exchange, or,
    /// for a first sequence, by the routing table of [`service`].
    fn inbound(&mut self, id: ExchangeId, seq: Sequence) {
        let now = self.now();
        // What the services do with it, and the tasks they start for it, log in its span.
        let span = tracing::debug_span!(
            "exchange",
            ox_id = %Xid(seq.header.ox_id),
            s_id = %seq.header.s_id,
            d_id = %seq.header.d_id,
            fc_type = %seq.header.fc_type,
        );
        let _in_span = span.enter();
        let x = Inbound {
            generation: self.generation,
            id,
            peer: seq.header.s_id,
        };
        if let Some(&(i, _)) = self.taken.get(&id) {
            self.call(i, |service, cx| service.sequence(cx, x, seq));
            return;
        }
        match self.services.route(&seq.header, &seq.payload) {
            Route::BuiltinEls => {
                let answer =
                    els::answer(&self.shared.config, &self.handle, &seq.header, &seq.payload);
                let _ = self.em.send_sequence(
                    now,
                    id,
                    Outbound::new(RCtl::ELS_REPLY, answer.reply.to_vec()).last(),
                );
                if let Some(Notice::Rscn(pages)) = &answer.notice {
                    self.shared.event(NodeEvent::Rscn(pages.clone()));
                }
                if let Some(notice) = answer.notice {
                    let _ = self.notices.send(notice);
                }
                if let Some(event) = answer.session {
                    self.session_changed(event);
                }
            }
            Route::CtReject(payload) => {
                self.handle.count(|c| c.ct_rejected += 1);
                let _ = self.em.send_sequence(
                    now,
                    id,
                    Outbound::new(RCtl::SOLICITED_CONTROL, payload).last(),
                );
            }
            Route::Discard => {
                tracing::debug!(r_ctl = %seq.header.r_ctl, fc_type = %seq.header.fc_type, s_id = %seq.header.s_id, "exchange of a TYPE no service takes discarded");
                self.handle.count(|c| c.unserved += 1);
                let _ = self.em.discard(id);
            }
            Route::Service(i) => {
                let access = self.services.entries.get(i).map(|e| e.access);
                let allowed = access.is_some_and(|a| a.allows(self.shared.sessions().get(&x.peer)));
                if !allowed {
                    // FC-LS-3: a frame from a port that is not logged in is discarded, and
                    // the port is told with LOGO so that it logs in again.
                    self.handle.count(|c| c.without_login += 1);
                    let _ = self.em.discard(id);
                    self.send_logo(now, x.peer);
                    return;
                }
                self.handle.count(|c| c.service_requests += 1);
                self.taken.insert(id, (i, x.peer));
                self.call(i, |service, cx| service.request(cx, x, seq));
            }
        }
    }

    /// Calls service `i` with a context on this core; forgets the exchanges it ended.
    fn call(&mut self, i: usize, f: impl FnOnce(&mut dyn Service, &mut Context<'_>)) {
        let Some(entry) = self.services.entries.get_mut(i) else {
            return;
        };
        let sessions = self.shared.sessions();
        let mut cx = Context {
            em: &mut self.em,
            now: self.shared.config.clock.now(),
            generation: self.generation,
            core: &self.handle.core,
            sessions: &sessions,
            ended: &mut self.ended,
        };
        f(entry.service.as_mut(), &mut cx);
        drop(sessions);
        for id in self.ended.drain(..) {
            self.taken.remove(&id);
        }
    }

    /// A session changed here (an ELS answer, link loss): the user and the services hear.
    fn session_changed(&mut self, event: SessionEvent) {
        self.shared.event(NodeEvent::Session(event));
        self.tell_services(&event);
    }

    fn tell_services(&mut self, event: &SessionEvent) {
        for entry in &mut self.services.entries {
            entry.service.session(event);
        }
    }

    fn send_logo(&mut self, now: Instant, to: FcId) {
        let logo = ElsRequest::Logo(Logo {
            n_port_id: self.em.local_id(),
            port_name: self.shared.config.port_name,
        });
        let seq = Outbound::new(RCtl::ELS_REQUEST, logo.to_vec());
        let _ = self
            .em
            .originate(now, to, FcType::ELS, seq, self.shared.config.els_timeout);
    }
}

/// Resolves when `link` has room to send (or is down).
async fn link_room(link: Option<LinkTx>) {
    if let Some(l) = link {
        let _ = l.ready().await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
