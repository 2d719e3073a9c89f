//! FC-4 services at a node: what answers the exchanges other ports open with it.
//!
//! A node hands each exchange a peer opens to one service, chosen by what the first sequence
//! is (FC-FS-4 §9.6 TYPE, FC-LS-3 §4 ELS command code, FC-GS-7 §4.3.2 GS_TYPE/GS_Subtype):
//!
//! | first sequence | service | when none is registered |
//! |---|---|---|
//! | ELS request, a registered command code | that [`ServiceKey::Els`] | — |
//! | ELS request, any other code | the node's own answers (PLOGI, PRLI, PRLO, LOGO, RSCN, ECHO, PDISC) | LS_RJT command not supported |
//! | CT request (TYPE 0x20), a registered GS_TYPE/GS_Subtype | that [`ServiceKey::Ct`] | FS_RJT "server not available" (a CT_IU that does not parse: FS_RJT with the reason its error gives) |
//! | any other TYPE, registered | that [`ServiceKey::Type`] (FCP is TYPE 0x08) | the exchange is discarded (class 3 has no reject for it) |
//!
//! Before a service sees an exchange the node checks its [`Access`]: a frame from a port that
//! must be logged in and is not is discarded and the port gets LOGO, so it logs in again
//! (FC-LS-3 §4.2.21); FCP needs an FCP image pair too (FCP-4 §6.3).
//!
//! A [`Service`] runs inside the node's core task, on the frame path: it must not block.
//! It answers at once through [`Context::send`], or later, from any task, through a
//! [`Responder`]. Services that would rather be async code take [`channel`]: each exchange
//! arrives as a [`Request`] on a bounded queue, with its own replies, later sequences and
//! abort.

use std::collections::HashMap;
use std::fmt;

use fc_frames::ct::ns::Fc4Features;
use fc_frames::ct::{CtCommand, CtPreambleRepr, CtReason, GsSubtype, GsType, PREAMBLE_LEN};
use fc_frames::els::{ElsCode, LsRjt, LsRjtExplanation, LsRjtReason};
use fc_frames::{FcId, FcType, FrameHeaderRepr, RCtl};
use tokio::sync::mpsc;

use super::{Command, NodeError, RemotePort, Sequence};
use crate::exchange::{ExchangeId, ExchangeManager, Outbound};

/// Which exchanges a service takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// ELS requests with this command code.
    Els(ElsCode),
    /// CT requests (TYPE 0x20) for this GS_TYPE and GS_Subtype.
    Ct(GsType, GsSubtype),
    /// Every exchange of this FC-4 TYPE (not ELS or CT, which go by code).
    Type(FcType),
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Els(code) => write!(f, "ELS {code}"),
            ServiceKey::Ct(t, s) => write!(f, "CT {:02x}/{:02x}", t.0, s.0),
            ServiceKey::Type(t) => write!(f, "{t}"),
        }
    }
}

/// Who may open an exchange with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Any port (ELS such as ECHO).
    Anyone,
    /// A port logged in with this one (PLOGI, either way).
    LoggedIn,
    /// A port with an FCP image pair with this one that offers the initiator function (PRLI).
    FcpInitiator,
}

impl Access {
    /// Whether `session` (the sender's, if any) may open an exchange.
    pub(crate) fn allows(self, session: Option<&RemotePort>) -> bool {
        match self {
            Access::Anyone => true,
            Access::LoggedIn => session.is_some(),
            Access::FcpInitiator => session.is_some_and(RemotePort::is_fcp_initiator),
        }
    }
}

/// What a node registers with the name server for a service: an FC-4 TYPE in RFT_ID and its
/// features in RFF_ID (FC-GS-7 §5.2.5.10, §5.2.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The FC-4 TYPE.
    pub fc4_type: u8,
    /// Its FC-4 features (for FCP: initiator, target).
    pub features: Fc4Features,
}

/// An exchange a peer opened with this node, as its service knows it. Copy it freely: a stale
/// one (its exchange ended, or the link it lived on went down) names nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inbound {
    /// Which link of the node's life it lives on.
    pub(crate) generation: u64,
    /// The exchange manager's handle.
    pub(crate) id: ExchangeId,
    /// The port that opened it.
    pub peer: FcId,
}

impl Inbound {
    /// A number for the exchange, unique while the node runs (across links too).
    pub fn tag(&self) -> u64 {
        (self.generation << 48) ^ self.id.to_u64()
    }
}

impl fmt::Display for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.id, self.peer)
    }
}

/// Why an inbound exchange ended without our last sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ended {
    /// The peer aborted it (ABTS; answered BA_ACC).
    AbortedByPeer,
    /// It outlived its time-out, or a sequence lacked a frame: we aborted it.
    TimedOut,
    /// A sequence outgrew the reassembly bounds: we aborted it.
    Overrun,
    /// The link went down.
    LinkDown,
}

/// A change to a session with another port, as the node's services and users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// A port logged in with us, or we with it (PLOGI), or an FCP image pair was made (PRLI):
    /// the session as it is now.
    Opened(RemotePort),
    /// A session ended.
    Closed {
        /// The session as it was.
        port: RemotePort,
        /// Why.
        reason: SessionEnd,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEnd {
    /// The port logged out (LOGO from it).
    LogoFromPeer,
    /// The port ended the FCP image pair (PRLO); the N_Port login remains.
    PrloFromPeer,
    /// We dropped it: the name server no longer shows the port, or an RSCN named it and we
    /// log in again.
    Dropped,
    /// The link went down.
    LinkDown,
}

/// What a service can do while it is called: send on its exchanges, look at sessions.
pub struct Context<'a> {
    pub(crate) em: &'a mut ExchangeManager,
    pub(crate) now: std::time::Instant,
    pub(crate) generation: u64,
    pub(crate) core: &'a mpsc::UnboundedSender<Command>,
    pub(crate) sessions: &'a std::collections::BTreeMap<FcId, RemotePort>,
    pub(crate) ended: &'a mut Vec<ExchangeId>,
}

impl Context<'_> {
    /// Sends a sequence on `x` now (we must hold the sequence initiative); the last one ends
    /// the exchange. An error when the exchange is gone (aborted, timed out, link down).
    pub fn send(&mut self, x: Inbound, seq: Outbound) -> Result<(), NodeError> {
        if x.generation != self.generation {
            return Err(NodeError::LinkDown);
        }
        let last = seq.last_sequence;
        self.em.send_sequence(self.now, x.id, seq)?;
        if last {
            self.ended.push(x.id);
        }
        Ok(())
    }

    /// Aborts `x` (ABTS).
    pub fn abort(&mut self, x: Inbound) {
        if x.generation == self.generation && self.em.abort(self.now, x.id).is_ok() {
            self.ended.push(x.id);
        }
    }

    /// A handle to answer `x` later, from any task.
    pub fn responder(&self, x: Inbound) -> Responder {
        Responder {
            x,
            core: self.core.clone(),
        }
    }

    /// The session with `port`, if it is logged in.
    pub fn session(&self, port: FcId) -> Option<RemotePort> {
        self.sessions.get(&port).copied()
    }
}

/// Answers one inbound exchange from any task: the sequences go to the node's core, which
/// sends them unless the exchange ended meanwhile.
#[derive(Debug, Clone)]
pub struct Responder {
    x: Inbound,
    core: mpsc::UnboundedSender<Command>,
}

impl Responder {
    /// The exchange.
    pub fn exchange(&self) -> Inbound {
        self.x
    }

    /// Sends the sequences in order (the last of them may end the exchange).
    pub fn send_all(&self, seqs: Vec<Outbound>) {
        let _ = self.core.send(Command::Respond { x: self.x, seqs });
    }

    /// Sends one sequence.
    pub fn send(&self, seq: Outbound) {
        self.send_all(vec![seq]);
    }

    /// Aborts the exchange (ABTS).
    pub fn abort(&self) {
        let _ = self.core.send(Command::AbortInbound { x: self.x });
    }
}

/// A service: takes the exchanges the node hands it.
pub trait Service: Send + 'static {
    /// What the node registers for this service with the name server, if anything.
    fn registration(&self) -> Option<Registration> {
        None
    }

    /// The first sequence of an exchange a peer opened.
    fn request(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence);

    /// A later sequence of an exchange this service took (the peer passed the initiative
    /// back). The default drops it.
    fn sequence(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence) {
        let _ = cx;
        tracing::debug!(%x, r_ctl = %seq.header.r_ctl, "sequence dropped: the service takes none");
    }

    /// An exchange this service took ended without our last sequence.
    fn ended(&mut self, x: Inbound, why: Ended) {
        let _ = (x, why);
    }

    /// The last sequence a [`Responder`] sent for `x` went out: the exchange is over.
    fn finished(&mut self, x: Inbound) {
        let _ = x;
    }

    /// A session changed (PLOGI, PRLI, PRLO, LOGO, link down).
    fn session(&mut self, event: &SessionEvent) {
        let _ = event;
    }
}

/// The services of a node, by key, with their access rules.
#[derive(Default)]
pub struct Services {
    pub(crate) entries: Vec<Entry>,
    pub(crate) by_key: HashMap<ServiceKey, usize>,
}

pub(crate) struct Entry {
    pub(crate) access: Access,
    pub(crate) service: Box<dyn Service>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_key.keys()).finish()
    }
}

impl Services {
    /// No services: the node answers ELS itself and rejects the rest.
    pub fn new() -> Services {
        Services::default()
    }

    /// Adds `service` for `keys` (one service may take several keys: an ELS code and a CT
    /// server, say). A key taken before is taken over.
    pub fn add(
        &mut self,
        keys: impl IntoIterator<Item = ServiceKey>,
        access: Access,
        service: impl Service,
    ) -> &mut Services {
        let i = self.entries.len();
        self.entries.push(Entry {
            access,
            service: Box::new(service),
        });
        for k in keys {
            self.by_key.insert(k, i);
        }
        self
    }

    /// What the services register with the name server.
    pub(crate) fn registrations(&self) -> Vec<Registration> {
        self.entries
            .iter()
            .filter_map(|e| e.service.registration())
            .collect()
    }

    /// Which service takes a first sequence, by the table in the module docs.
    pub(crate) fn route(&self, header: &FrameHeaderRepr, payload: &[u8]) -> Route {
        if header.fc_type == FcType::ELS {
            if header.r_ctl != RCtl::ELS_REQUEST {
                return Route::Discard;
            }
            let code = ElsCode(payload.first().copied().unwrap_or(0));
            return match self.by_key.get(&ServiceKey::Els(code)) {
                Some(&i) => Route::Service(i),
                None => Route::BuiltinEls,
            };
        }
        if header.fc_type == FcType::CT {
            if header.r_ctl != RCtl::UNSOLICITED_CONTROL {
                return Route::Discard;
            }
            let preamble = match CtPreambleRepr::parse(payload) {
                Ok(p) => p,
                Err(e) => {
                    return Route::CtReject(ct_reply_to(payload, e.reject_reason(), 0));
                }
            };
            if preamble.command.is_response() {
                return Route::Discard;
            }
            return match self
                .by_key
                .get(&ServiceKey::Ct(preamble.gs_type, preamble.gs_subtype))
            {
                Some(&i) => Route::Service(i),
                // FC-GS-7 §4.4.3: a request for a server that is not there is rejected.
                None => Route::CtReject(ct_reject(&preamble, CtReason::SERVER_NOT_AVAILABLE, 0)),
            };
        }
        match self.by_key.get(&ServiceKey::Type(header.fc_type)) {
            Some(&i) => Route::Service(i),
            None => Route::Discard,
        }
    }
}

/// Where a first sequence goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Service(usize),
    BuiltinEls,
    CtReject(Vec<u8>),
    Discard,
}

/// An FS_RJT answering `req` (FC-GS-7 §4.4.3): the request's GS_TYPE and GS_Subtype, residual
/// size zero.
pub fn ct_reject(req: &CtPreambleRepr, reason: CtReason, explanation: u8) -> Vec<u8> {
    CtPreambleRepr {
        command: CtCommand::FS_RJT,
        max_size: 0,
        fragment_id: 0,
        reason,
        explanation,
        vendor: 0,
        ..*req
    }
    .to_vec()
}

/// An FS_RJT for a CT_IU whose preamble did not parse: what can be read of it is echoed.
fn ct_reply_to(payload: &[u8], reason: CtReason, explanation: u8) -> Vec<u8> {
    let mut p = CtPreambleRepr::name_server_reject(reason, explanation);
    if payload.len() >= PREAMBLE_LEN {
        p.gs_type = GsType(payload[4]);
        p.gs_subtype = GsSubtype(payload[5]);
    }
    p.to_vec()
}

/// An LS_RJT payload.
pub fn ls_rjt(reason: LsRjtReason, explanation: LsRjtExplanation) -> Vec<u8> {
    fc_frames::els::ElsReply::Rjt(LsRjt::new(reason, explanation)).to_vec()
}

/// A service that hands each exchange to async code as a [`Request`]; see [`channel`].
pub struct ChannelService {
    key_kind: KeyKind,
    registration: Option<Registration>,
    requests: mpsc::Sender<Request>,
    /// Exchanges handed out that wait for later sequences, by exchange.
    open: HashMap<Inbound, mpsc::UnboundedSender<Result<Sequence, NodeError>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Els,
    Ct,
    Other,
}

/// The receiving end of a [`ChannelService`]: one [`Request`] per exchange a peer opened.
#[derive(Debug)]
pub struct Requests {
    rx: mpsc::Receiver<Request>,
}

impl Requests {
    /// The next request; `None` once the node stopped.
    pub async fn next(&mut self) -> Option<Request> {
        self.rx.recv().await
    }
}

/// A service for `key` whose exchanges arrive on [`Requests`], at most `queue` waiting; when
/// the queue is full the request is answered busy (LS_RJT or FS_RJT "logical busy") or, for
/// other TYPEs, aborted.
pub fn channel(
    key: ServiceKey,
    registration: Option<Registration>,
    queue: usize,
) -> (ChannelService, Requests) {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let key_kind = match key {
        ServiceKey::Els(_) => KeyKind::Els,
        ServiceKey::Ct(..) => KeyKind::Ct,
        ServiceKey::Type(_) => KeyKind::Other,
    };
    (
        ChannelService {
            key_kind,
            registration,
            requests: tx,
            open: HashMap::new(),
        },
        Requests { rx },
    )
}

impl ChannelService {
    /// The "logical busy" answer to a request that found the queue full (FC-LS-3 LS_RJT,
    /// FC-GS-7 FS_RJT); `None` for other TYPEs, which are aborted instead.
    fn busy(&self, first: Option<&Sequence>) -> Option<Outbound> {
        match self.key_kind {
            KeyKind::Els => Some(Outbound::new(
                RCtl::ELS_REPLY,
                ls_rjt(LsRjtReason::LOGICAL_BUSY, LsRjtExplanation::NONE),
            )),
            KeyKind::Ct => first
                .and_then(|seq| CtPreambleRepr::parse(&seq.payload).ok())
                .map(|p| {
                    Outbound::new(
                        RCtl::SOLICITED_CONTROL,
                        ct_reject(&p, CtReason::LOGICAL_BUSY, 0),
                    )
                }),
            KeyKind::Other => None,
        }
    }
}

impl Service for ChannelService {
    fn registration(&self) -> Option<Registration> {
        self.registration
    }

    fn request(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence) {
        self.open.retain(|_, tx| !tx.is_closed());
        let (more_tx, more_rx) = mpsc::unbounded_channel();
        let request = Request {
            peer: x.peer,
            first: Some(seq),
            responder: cx.responder(x),
            more: more_rx,
            done: false,
        };
        match self.requests.try_send(request) {
            Ok(()) => {
                self.open.insert(x, more_tx);
            }
            Err(e) => {
                let mut r = e.into_inner();
                r.done = true;
                match self.busy(r.first.as_ref()) {
                    Some(reply) => {
                        let _ = cx.send(x, reply.last());
                    }
                    None => cx.abort(x),
                }
            }
        }
    }

    fn sequence(&mut self, cx: &mut Context<'_>, x: Inbound, seq: Sequence) {
        let last = seq.is_last();
        match self.open.get(&x) {
            Some(tx) if tx.send(Ok(seq)).is_ok() => {
                if last {
                    self.open.remove(&x);
                }
            }
            _ => {
                self.open.remove(&x);
                cx.abort(x);
            }
        }
    }

    fn ended(&mut self, x: Inbound, why: Ended) {
        if let Some(tx) = self.open.remove(&x) {
            let _ = tx.send(Err(match why {
                Ended::AbortedByPeer => NodeError::AbortedByPeer,
                Ended::TimedOut => NodeError::TimedOut,
                Ended::Overrun => NodeError::Overrun,
                Ended::LinkDown => NodeError::LinkDown,
            }));
        }
    }
}

/// One exchange a peer opened with a [`ChannelService`]. Dropping it before it ended aborts the
/// exchange (ABTS), so nothing lingers.
#[derive(Debug)]
pub struct Request {
    peer: FcId,
    first: Option<Sequence>,
    responder: Responder,
    more: mpsc::UnboundedReceiver<Result<Sequence, NodeError>>,
    done: bool,
}

impl Request {
    /// The port that opened the exchange.
    pub fn peer(&self) -> FcId {
        self.peer
    }

    /// The exchange.
    pub fn exchange(&self) -> Inbound {
        self.responder.exchange()
    }

    /// The request's first sequence (`None` once taken with [`Request::take`]).
    pub fn first(&self) -> Option<&Sequence> {
        self.first.as_ref()
    }

    /// Takes the first sequence out.
    pub fn take(&mut self) -> Option<Sequence> {
        self.first.take()
    }

    /// Sends a sequence that does not end the exchange (with or without the initiative).
    pub fn send(&mut self, seq: Outbound) {
        if seq.last_sequence {
            self.done = true;
        }
        self.responder.send(seq);
    }

    /// Ends the exchange with `seq` as its last sequence.
    pub fn reply(mut self, seq: Outbound) {
        self.done = true;
        self.responder.send(seq.last());
    }

    /// The next sequence from the peer, once it has the initiative back.
    pub async fn next(&mut self) -> Result<Sequence, NodeError> {
        match self.more.recv().await {
            Some(Ok(seq)) => {
                if seq.is_last() {
                    self.done = true;
                }
                Ok(seq)
            }
            Some(Err(e)) => {
                self.done = true;
                Err(e)
            }
            None => {
                self.done = true;
                Err(NodeError::Stopped)
            }
        }
    }

    /// Aborts the exchange (ABTS).
    pub fn abort(mut self) {
        self.done = true;
        self.responder.abort();
    }

    /// A handle to answer from elsewhere; the request no longer aborts when dropped.
    pub fn into_responder(mut self) -> Responder {
        self.done = true;
        self.responder.clone()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.done {
            self.responder.abort();
        }
    }
}
