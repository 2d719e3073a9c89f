//! The controller as a running FC node: the tokio driver of the sans-IO [`Core`]. It owns the
//! node (a CT server of GS_TYPE 0xE0 and an FCP initiator), the database, the extent
//! allocator, the timers and the tasks that send the core's requests as FC exchanges.
//!
//! Every change to the core goes through [`Shared::with`]: under one lock it calls the core,
//! commits what the core asks to persist (one redb transaction, fsync), handles the core's
//! events, and only then hands out the requests to send — the core's one rule.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use fc_frames::ct::ns::{Fc4Features, NsAccept, NsRequest, NsResponseBody};
use fc_frames::{FcId, FcType, RCtl, Wwn};
use fc_node::exchange::Outbound;
use fc_node::fcp::initiator::Initiator;
use fc_node::node::service;
use fc_node::node::{
    Access, Connector, Node, NodeConfig, NodeError, NodeEvent, Registration, ServiceKey, Services,
};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::core::{self, ClaimOutcome, Core, Event, Identity, Transmit};
use crate::extents::Extents;
use crate::model::{RealExtent, VolumeName, VolumeState};
use crate::real::{self, RealVolume};
use crate::store::{Store, StoreError};
use crate::wire::{self, Header, Key, Kind, Message, Reason, Reply, Request};

mod builder;
mod management;
mod service_ct;

pub use builder::BuildError;
pub(crate) use builder::{found, rows_of, Held, San};
pub use management::Backend;

/// How a controller is set up.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Its name, unique in the installation.
    pub name: String,
    /// Its site (SAN).
    pub site: String,
    /// N_Port_Name: the owner key of its records.
    pub port_name: Wwn,
    /// Node_Name.
    pub node_name: Wwn,
    /// The redb database file.
    pub database: PathBuf,
    /// The installation's shared key.
    pub key: Key,
    /// Heartbeat interval; a peer silent three intervals is down.
    pub heartbeat: Duration,
    /// Peers to heartbeat even when the name server does not list them (by WWPN).
    pub peers: Vec<Wwn>,
    /// Sites the builder takes extents from after its own, in this order (sites not listed
    /// come after, by name).
    pub priority: Vec<String>,
    /// How long another SAN holds a reservation for a builder without its commit.
    pub reserve_ttl: Duration,
    /// Fallback period of the real-volume scan.
    pub scan_period: Duration,
    /// Period of the name server query for peer controllers.
    pub discovery_period: Duration,
    /// Allocation unit of extents in bytes.
    pub unit_bytes: u64,
    /// Its management API's URL, told to peers in heartbeats (empty: none).
    pub api_url: String,
    /// The I/O path: cache size, lease length, load switching, replica copy rate.
    pub io: crate::io::IoConfig,
}

impl ControllerConfig {
    /// A controller with the defaults: heartbeat 1 s, reservations held 60 s, real volumes
    /// rescanned every 10 s, peers looked up every 2 s, 1 MiB extents.
    pub fn new(name: &str, site: &str, port_name: Wwn, database: PathBuf, key: Key) -> Self {
        ControllerConfig {
            name: name.to_owned(),
            site: site.to_owned(),
            port_name,
            node_name: port_name,
            database,
            key,
            heartbeat: Duration::from_secs(1),
            peers: Vec::new(),
            priority: Vec::new(),
            reserve_ttl: Duration::from_secs(60),
            scan_period: Duration::from_secs(10),
            discovery_period: Duration::from_secs(2),
            unit_bytes: crate::extents::DEFAULT_UNIT_BYTES,
            api_url: String::new(),
            io: crate::io::IoConfig::default(),
        }
    }

    /// The symbolic port name it registers: says what it is.
    pub fn symbolic_name(&self) -> String {
        format!("{}{} site {}", wire::SYMBOLIC_PREFIX, self.name, self.site)
    }
}

/// Why a controller could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A name, site or URL too long for the heartbeat's one-byte lengths.
    #[error("{field} has {len} bytes; at most {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
}

/// Milliseconds since the Unix epoch: the controller's time. Claim times are compared between
/// controllers, so it is wall time — read once, then advanced by the monotonic clock, so that a
/// step of the system clock (NTP) neither stops heartbeats nor marks every peer down.
pub fn now_ms() -> u64 {
    static START: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, wall) = START.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (Instant::now(), wall)
    });
    wall.saturating_add(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// The controller's state under its one lock.
pub(crate) struct Inner {
    pub(crate) core: Core,
    store: Store,
    pub(crate) extents: Extents,
    /// This site's real volumes as last scanned.
    pub(crate) real: Vec<RealVolume>,
    /// Where peers were found by the name server.
    routes: HashMap<Wwn, FcId>,
    next_reservation: u64,
}

/// What the controller's tasks share.
pub(crate) struct Shared {
    pub(crate) config: ControllerConfig,
    pub(crate) node: Node,
    pub(crate) initiator: Initiator,
    pub(crate) inner: Mutex<Inner>,
    wake: Notify,
    changed: watch::Sender<u64>,
    /// True once the first scan of this site's real volumes is in.
    scanned: watch::Sender<bool>,
    claims: Mutex<HashMap<VolumeName, oneshot::Sender<ClaimOutcome>>>,
    failed: AtomicBool,
    /// The FCP target of the virtual volumes and their I/O path.
    pub(crate) io: crate::io::Io,
    login: tokio::sync::Mutex<()>,
    /// One delete that keeps its data at a time: each holds its source's gate and writes into
    /// its target, so two that keep their data in each other would wait for each other.
    pub(crate) keeping: tokio::sync::Mutex<()>,
}

/// A running controller.
pub struct Controller {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Controller {
    /// Opens the database and starts the node on the link `connector` gives.
    pub fn start(config: ControllerConfig, connector: impl Connector) -> Result<Self, StartError> {
        for (field, text, max) in [
            ("name", &config.name, 64),
            ("site", &config.site, 64),
            ("api_url", &config.api_url, wire::MAX_TEXT_LEN),
        ] {
            if text.len() > max {
                return Err(StartError::TooLong {
                    field,
                    len: text.len(),
                    max,
                });
            }
        }
        let (store, durable) = Store::open(&config.database)?;
        let now = now_ms();
        let identity = Identity {
            name: config.name.clone(),
            site: config.site.clone(),
            wwpn: config.port_name,
            fc_id: FcId::UNIDENTIFIED,
            api: config.api_url.clone(),
        };
        let hb = u64::try_from(config.heartbeat.as_millis())
            .unwrap_or(1000)
            .max(1);
        let mut core = Core::new(identity, core::Config::with_heartbeat(hb), durable, now);
        for &p in &config.peers {
            core.add_peer(now, p);
        }
        let mut services = Services::new();
        let (ct, requests) = service::channel(
            ServiceKey::Ct(wire::GS_TYPE, wire::GS_SUBTYPE),
            Some(Registration {
                fc4_type: wire::FC4_TYPE,
                features: Fc4Features::empty(),
            }),
            256,
        );
        services.add(
            [ServiceKey::Ct(wire::GS_TYPE, wire::GS_SUBTYPE)],
            Access::LoggedIn,
            ct,
        );
        let io = crate::io::Io::new(config.io.clone(), config.port_name, config.node_name);
        io.target.install(&mut services);
        let mut nc = NodeConfig::new(config.port_name, config.node_name);
        nc.symbolic_name = config.symbolic_name();
        nc.initiator = true;
        nc.target = true;
        nc.els_timeout = Duration::from_secs(5);
        let node = Node::spawn(nc, connector, services);
        // Shorter than the 20 s after which a host's exchange with this controller's target
        // is aborted: a forwarded command that gets no answer ends as a CHECK CONDITION the
        // host can act on (LOGICAL UNIT COMMUNICATION TIME-OUT), not as an abort.
        let initiator = Initiator::new(node.clone()).with_timeout(Duration::from_secs(15));
        let (changed, _) = watch::channel(0);
        let (scanned, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                core,
                store,
                extents: Extents::with_unit(config.unit_bytes),
                real: Vec::new(),
                routes: HashMap::new(),
                next_reservation: now,
            }),
            config,
            node,
            initiator,
            wake: Notify::new(),
            changed,
            scanned,
            claims: Mutex::new(HashMap::new()),
            failed: AtomicBool::new(false),
            login: tokio::sync::Mutex::new(()),
            keeping: tokio::sync::Mutex::new(()),
            io,
        });
        let tasks = vec![
            tokio::spawn(shared.clone().timers()),
            tokio::spawn(shared.clone().discovery()),
            tokio::spawn(shared.clone().real_volumes()),
            tokio::spawn(service_ct::serve(shared.clone(), requests)),
            tokio::spawn(crate::io::balance(Arc::downgrade(&shared))),
            tokio::spawn(crate::io::watch_arrays(Arc::downgrade(&shared))),
        ];
        shared.with(|_, _| ());
        Ok(Controller { shared, tasks })
    }

    /// The controller's node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Its configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.shared.config
    }

    /// The management backend of this controller, for [`crate::api::serve`].
    pub fn backend(&self) -> Backend {
        Backend(self.shared.clone())
    }

    /// A counter that rises on every change of the mapping or of a peer's state.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Runs `f` on the core (read-only use: tests, reports).
    pub fn inspect<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        let inner = self.shared.lock();
        f(&inner.core)
    }

    /// The real volumes of this site as last scanned.
    pub fn real_volumes(&self) -> Vec<RealVolume> {
        self.shared.lock().real.clone()
    }

    /// The LUN volume `name` is served at here (every live volume is a LUN).
    pub fn lun_of(&self, name: &VolumeName) -> Option<fc_frames::scsi::Lun> {
        self.shared.io.lun_of(name)
    }

    /// The I/O counters of volume `name` here.
    pub fn io_counters(&self, name: &VolumeName) -> Option<crate::io::IoCounters> {
        self.shared.io.counters(name)
    }

    /// The FCP target of the virtual volumes (its engine and counters).
    pub fn target(&self) -> &fc_node::fcp::target::Target {
        &self.shared.io.target
    }

    /// Builds a volume (figure 7).
    pub async fn build(
        &self,
        spec: crate::api::BuildSpec,
    ) -> Result<crate::model::Record, BuildError> {
        self.shared.build(spec).await
    }

    /// Deletes own volume `name`, first copying it into `keep_in` when given.
    pub async fn delete(
        &self,
        name: &VolumeName,
        keep_in: Option<&VolumeName>,
    ) -> Result<(), BuildError> {
        self.shared.delete(name, keep_in).await
    }

    /// Adds a replica to own volume `name` (PATENT.md \[0098\]-\[0100\], [`crate::io::replica`]):
    /// space reserved the way the builder reserves it (on `spec.site`, or this SAN first and
    /// then the others by priority, off the arrays of the volume's copies when it can), the
    /// volume copied into it in the background while it stays in use, then its rows put in
    /// the mapping. Answers at once, the replica syncing; [`replica_state`](Self::replica_state)
    /// follows it to in-sync (or failed, and why).
    pub async fn add_replica(
        &self,
        name: &VolumeName,
        spec: crate::api::ReplicaSpec,
    ) -> Result<crate::api::views::ReplicaState, BuildError> {
        crate::io::replica::add(&self.shared, name, spec).await
    }

    /// The replica of volume `name` as this controller knows it (the owner: syncing with its
    /// progress, in-sync, failed and why; another controller: what the mapping says); `None`
    /// when there is no live volume of that name.
    pub fn replica_state(&self, name: &VolumeName) -> Option<crate::api::views::ReplicaState> {
        crate::io::replica::state(&self.shared, name)
    }

    /// Sets the hosts that may see own volume `name` (empty: every host), in its record, so
    /// that every controller masks its LUN alike.
    pub fn set_masking(
        &self,
        name: &VolumeName,
        hosts: Vec<Wwn>,
    ) -> Result<crate::model::Record, BuildError> {
        self.shared.set_masking(name, hosts)
    }

    /// Stops the tasks and logs the node out.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.node.shutdown().await;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; the state is still the core's.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core under the lock, then commits, handles events and sends — in that
    /// order.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Inner, u64) -> R) -> R {
        let now = now_ms();
        let (r, transmits) = {
            let mut inner = self.lock();
            let r = f(&mut inner, now);
            let transmits = self.settle(&mut inner);
            (r, transmits)
        };
        for t in transmits {
            tokio::spawn(self.clone().transmit(t));
        }
        self.wake.notify_one();
        r
    }

    /// Commits the core's persists, handles its events (which may change it again), and
    /// returns what it wants sent.
    fn settle(self: &Arc<Self>, inner: &mut Inner) -> Vec<Transmit> {
        let mut changed = false;
        loop {
            let mut batch = Vec::new();
            while let Some(p) = inner.core.poll_persist() {
                batch.push(p);
            }
            if !batch.is_empty() {
                if let Err(e) = inner.store.commit(&batch) {
                    tracing::error!(error = %e, "database write failed: this controller stops sending");
                    self.failed.store(true, Ordering::SeqCst);
                }
            }
            let mut events = Vec::new();
            while let Some(e) = inner.core.poll_event() {
                events.push(e);
            }
            if events.is_empty() {
                break;
            }
            for e in events {
                changed = true;
                self.event(inner, e);
            }
        }
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
        let mut out = Vec::new();
        while let Some(t) = inner.core.poll_transmit() {
            out.push(t);
        }
        if self.failed.load(Ordering::SeqCst) {
            out.clear();
        }
        out
    }

    fn event(self: &Arc<Self>, inner: &mut Inner, e: Event) {
        let serve = matches!(
            e,
            Event::Applied(_) | Event::Ready(_) | Event::PeerUp(_) | Event::Renamed { .. }
        );
        match e {
            Event::Applied(keys) => {
                let names: BTreeSet<VolumeName> = keys.into_iter().map(|k| k.name).collect();
                remark(inner, names);
            }
            Event::Claim { name, outcome } => {
                if let Some(tx) = self.claims_lock().remove(&name) {
                    let _ = tx.send(outcome);
                }
            }
            Event::PeerUp(w) => tracing::info!(peer = %w, "peer controller up"),
            Event::PeerDown(w) => tracing::warn!(peer = %w, "peer controller down"),
            Event::Acked { .. } => {}
            Event::Ready(g) => {
                tracing::info!(generation = g, "controller ready");
                let names = inner.core.records().map(|r| r.key.name.clone()).collect();
                remark(inner, names);
            }
            Event::Renamed { from, to } => {
                tracing::warn!(%from, %to, "volume name lost to another site's; renamed")
            }
        }
        if serve {
            self.io.sync(self, &inner.core);
        }
    }

    fn claims_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<VolumeName, oneshot::Sender<ClaimOutcome>>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wait_claim(&self, name: &VolumeName) -> oneshot::Receiver<ClaimOutcome> {
        let (tx, rx) = oneshot::channel();
        self.claims_lock().insert(name.clone(), tx);
        rx
    }

    /// Waits (at most `limit`) for the first scan of this site's real volumes, so that a build
    /// just after a start finds them.
    pub(crate) async fn wait_scanned(&self, limit: Duration) {
        let mut rx = self.scanned.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| *s)).await;
    }

    /// Err once a database write failed: nothing more may be changed or acknowledged.
    pub(crate) fn usable(&self) -> Result<(), BuildError> {
        if self.failed.load(Ordering::SeqCst) {
            Err(BuildError::Failed)
        } else {
            Ok(())
        }
    }

    /// Sets own volume `name`'s masking (see [`Controller::set_masking`]).
    pub(crate) fn set_masking(
        self: &Arc<Self>,
        name: &VolumeName,
        hosts: Vec<Wwn>,
    ) -> Result<crate::model::Record, BuildError> {
        self.usable()?;
        let rec = self.with(|inner, now| {
            let me = inner.core.identity().wwpn;
            let rec = inner
                .core
                .volume(name)
                .cloned()
                .ok_or_else(|| BuildError::NotFound(name.clone()))?;
            let mut body = rec
                .body
                .clone()
                .ok_or_else(|| BuildError::NotFound(name.clone()))?;
            if rec.key.owner != me {
                return Err(BuildError::NotOwner {
                    name: name.clone(),
                    owner: body.owner.name,
                });
            }
            if body.masking == hosts {
                return Ok(rec);
            }
            body.masking = hosts;
            inner
                .core
                .put(now, name.clone(), body)
                .map_err(|e| match e {
                    core::ChangeError::NotReady => BuildError::NotReady,
                    _ => BuildError::NotFound(name.clone()),
                })?;
            inner
                .core
                .volume(name)
                .cloned()
                .ok_or_else(|| BuildError::NotFound(name.clone()))
        })?;
        self.usable()?;
        Ok(rec)
    }

    pub(crate) fn next_reservation(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_reservation += 1;
        inner.next_reservation
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.config.heartbeat * 2
    }

    /// Timers: the core's and the extent allocator's.
    async fn timers(self: Arc<Self>) {
        loop {
            let deadline = {
                let inner = self.lock();
                [inner.core.poll_timeout(), inner.extents.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
            };
            let now = now_ms();
            if deadline.is_some_and(|d| d <= now) {
                self.with(|inner, now| {
                    inner.core.handle_timeout(now);
                    inner.extents.expire(now);
                });
                continue;
            }
            let wait = deadline.map_or(Duration::from_secs(1), |d| Duration::from_millis(d - now));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Sends one of the core's requests and hands the answer back.
    async fn transmit(self: Arc<Self>, t: Transmit) {
        let seq = t.header.seq;
        let to = t.to;
        let msg = Message::Request(t.header, t.request);
        match self.call(to, &msg).await {
            Ok((header, kind, reply)) => {
                self.with(|inner, now| inner.core.handle_reply(now, header, kind, reply))
            }
            Err(e) => {
                tracing::debug!(peer = %to, error = %e, "request failed");
                let rejected = matches!(e, CallError::Rejected(_));
                self.with(|inner, now| inner.core.handle_failure(now, to, seq, rejected))
            }
        }
    }

    /// Sends `msg` to controller `to` as a CT exchange and decodes its answer.
    pub(crate) async fn call(
        &self,
        to: Wwn,
        msg: &Message,
    ) -> Result<(Header, Kind, Reply), CallError> {
        let id = self.resolve(to).await.ok_or(CallError::NotFound(to))?;
        self.log_in(id).await?;
        let bytes = wire::encode(msg, &self.config.key);
        let mut x = self.node.exchange(
            id,
            FcType::CT,
            Outbound::new(RCtl::UNSOLICITED_CONTROL, bytes),
            self.request_timeout(),
        );
        let mut answer = BytesMut::new();
        loop {
            let s = x.next().await?;
            answer.extend_from_slice(&s.payload);
            if s.is_last() {
                break;
            }
        }
        // A reply names its request by sequence number and kind: a signed reply to another
        // request (one that timed out, its exchange's OX_ID taken again) is not this one's.
        let asked = match msg {
            Message::Request(h, request) => Some((h.seq, request.kind())),
            _ => None,
        };
        match wire::decode(&answer, &self.config.key) {
            Ok(Message::Reply(h, kind, reply))
                if h.sender == to && asked.is_none_or(|a| a == (h.seq, kind)) =>
            {
                Ok((h, kind, reply))
            }
            Ok(Message::Reject(reason)) => Err(CallError::Rejected(reason)),
            Ok(_) => Err(CallError::Rejected(Reason::FOREIGN)),
            Err(e) => Err(CallError::Rejected(e.reason())),
        }
    }

    /// The N_Port_ID of port `w` (a controller or an array), logged in with.
    pub(crate) async fn resolve_port(&self, w: Wwn) -> Option<FcId> {
        let id = self.resolve(w).await?;
        self.log_in(id).await.ok()?;
        Some(id)
    }

    /// Where array `array` is now: this site's scan knows its own arrays; another site's
    /// array is where its controller recorded it, unless the name server says otherwise.
    pub(crate) async fn array_port(&self, array: Wwn, recorded: FcId) -> FcId {
        {
            let inner = self.lock();
            if let Some(v) = inner.real.iter().find(|v| v.array == array) {
                return v.array_id;
            }
            if let Some(id) = inner.routes.get(&array) {
                return *id;
            }
        }
        if self
            .node
            .sessions()
            .iter()
            .any(|s| s.port_id == recorded && s.port_name == array)
        {
            return recorded;
        }
        self.resolve(array).await.unwrap_or(recorded)
    }

    /// Sends one request of the I/O path (leases, invalidations, routes) to controller `to`.
    pub(crate) async fn send_request(&self, to: Wwn, request: Request) -> Result<Reply, CallError> {
        let msg = {
            let mut inner = self.lock();
            reservation_request(&mut inner, to, request)
        };
        self.call(to, &msg).await.map(|(_, _, reply)| reply)
    }

    /// The N_Port_ID of controller `w`: from its heartbeats, the name server's answers, or a
    /// GID_PN.
    async fn resolve(&self, w: Wwn) -> Option<FcId> {
        {
            let inner = self.lock();
            if let Some(id) = inner.core.peer(w).and_then(|p| p.fc_id) {
                if id != FcId::UNIDENTIFIED {
                    return Some(id);
                }
            }
            if let Some(id) = inner.routes.get(&w) {
                return Some(*id);
            }
        }
        let id = match self.node.name_server(&NsRequest::gid_pn(w)).await {
            Ok(r) => match r.body {
                NsResponseBody::Accept(NsAccept::GidPn(id)) => Some(id),
                _ => None,
            },
            Err(_) => None,
        }?;
        self.lock().routes.insert(w, id);
        Some(id)
    }

    async fn log_in(&self, id: FcId) -> Result<(), NodeError> {
        if self.node.sessions().iter().any(|s| s.port_id == id) {
            return Ok(());
        }
        let _g = self.login.lock().await;
        if self.node.sessions().iter().any(|s| s.port_id == id) {
            return Ok(());
        }
        self.node.plogi(id).await.map(|_| ())
    }

    /// Finds peer controllers through the name server: GID_FT for the controllers' FC-4 TYPE,
    /// then each one's port name; again on every RSCN and every `discovery_period`.
    async fn discovery(self: Arc<Self>) {
        let mut events = self.node.events();
        loop {
            if let Ok(id) = self.node.wait_online(Duration::from_secs(3600)).await {
                self.with(|inner, _| {
                    let api = inner.core.identity().api.clone();
                    inner.core.set_identity(id, api);
                });
                self.find_peers(id).await;
            }
            let period = tokio::time::sleep(self.config.discovery_period);
            tokio::pin!(period);
            loop {
                tokio::select! {
                    _ = &mut period => break,
                    e = events.recv() => match e {
                        Ok(NodeEvent::Rscn(_)) | Ok(NodeEvent::State(_)) => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    },
                }
            }
        }
    }

    async fn find_peers(self: &Arc<Self>, me: FcId) {
        let ids = match self
            .node
            .name_server(&NsRequest::gid_ft(wire::FC4_TYPE))
            .await
        {
            Ok(r) => match r.body {
                NsResponseBody::Accept(NsAccept::GidFt(ids)) => ids,
                _ => Vec::new(),
            },
            Err(_) => return,
        };
        for id in ids.into_iter().filter(|id| *id != me) {
            let known = self.lock().routes.iter().any(|(_, v)| *v == id);
            if known {
                continue;
            }
            if let Ok(r) = self.node.name_server(&NsRequest::gpn_id(id)).await {
                if let NsResponseBody::Accept(NsAccept::GpnId(w)) = r.body {
                    self.with(|inner, now| {
                        inner.routes.insert(w, id);
                        inner.core.add_peer(now, w);
                    });
                }
            }
        }
    }

    /// Keeps this site's real volumes (figure 3) current: arrays on the controller's own
    /// switch domain only (arrays of other SANs are reachable through the joined fabric but
    /// are their controllers' to manage).
    async fn real_volumes(self: Arc<Self>) {
        let (mut rx, _task) = real::watch(self.initiator.clone(), self.config.scan_period);
        let mut initial = true;
        loop {
            let vols: Vec<RealVolume> = {
                let all = rx.borrow_and_update().clone();
                let domain = self.node.port_id().map(|id| id.domain());
                all.into_iter()
                    .filter(|v| Some(v.array_id.domain()) == domain)
                    .collect()
            };
            self.with(|inner, now| {
                let v = inner.extents.set_volumes(&vols);
                inner.real = vols;
                let names = inner.core.records().map(|r| r.key.name.clone()).collect();
                remark(inner, names);
                set_state(inner, now, &v.degraded, VolumeState::Degraded);
                set_state(inner, now, &v.returned, VolumeState::Online);
            });
            // The watch's first value is its empty start, not a scan.
            if !initial {
                self.scanned.send_replace(true);
            }
            initial = false;
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Marks the extents the mapping uses on this site's arrays for `names` (freeing what a
/// deleted or renamed volume left). Every live record of a name keeps its extents: the one the
/// name means under the name, another owner's (two sites that built one name while split,
/// until the loser's rename arrives) under [`loser_label`], so that no block of either is ever
/// free.
fn remark(inner: &mut Inner, names: BTreeSet<VolumeName>) {
    let arrays: BTreeSet<Wwn> = inner.real.iter().map(|v| v.array).collect();
    let mut marks: Vec<(VolumeName, Vec<RealExtent>)> = Vec::new();
    for name in &names {
        inner.extents.free_volume(name);
        let winner = inner.core.volume(name).map(|r| r.key.owner);
        for rec in inner.core.records().filter(|r| r.key.name == *name) {
            let label = loser_label(rec.key.owner, name);
            if label != *name {
                inner.extents.free_volume(&label);
            }
            let Some(body) = &rec.body else {
                continue;
            };
            let here: Vec<RealExtent> = body
                .rows
                .iter()
                .filter(|r| arrays.contains(&r.real.array))
                .map(|r| r.real)
                .collect();
            if here.is_empty() {
                continue;
            }
            let label = if Some(rec.key.owner) == winner {
                name.clone()
            } else {
                label
            };
            marks.push((label, here));
        }
    }
    for (label, here) in marks {
        if let Err(e) = inner.extents.mark_used(&label, &here) {
            tracing::warn!(volume = %label, error = %e, "mapping overlaps another volume's extents");
        }
    }
}

/// The label this site's extents of `owner`'s record of `name` go under while another
/// owner's record holds the name: `NAME~OWNERWWPN` (hex), cut to fit a volume name.
fn loser_label(owner: Wwn, name: &VolumeName) -> VolumeName {
    let tail = format!("~{:016x}", owner.to_u64());
    let keep = crate::model::MAX_NAME_LEN - tail.len();
    let head: String = name.as_str().chars().take(keep).collect();
    VolumeName::new(format!("{head}{tail}")).unwrap_or_else(|_| name.clone())
}

/// Sets the state of own volumes among `names`.
fn set_state(inner: &mut Inner, now: u64, names: &[VolumeName], state: VolumeState) {
    let me = inner.core.identity().wwpn;
    for name in names {
        let Some(rec) = inner.core.volume(name) else {
            continue;
        };
        if rec.key.owner != me {
            continue;
        }
        let Some(mut body) = rec.body.clone() else {
            continue;
        };
        if body.state == state || body.state == VolumeState::Conflict {
            continue;
        }
        body.state = state;
        if let Err(e) = inner.core.put(now, name.clone(), body) {
            tracing::warn!(volume = %name, error = %e, "could not record the volume's state");
        }
    }
}

/// Why a call to another controller failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The name server does not know it.
    #[error("controller {0} is not in the name server")]
    NotFound(Wwn),
    /// Login or the exchange failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// It rejected the request, or its answer was not valid.
    #[error("rejected: {}", .0.name())]
    Rejected(Reason),
}

/// A request the builder sends `to` another controller itself (reservations).
pub(crate) fn reservation_request(inner: &mut Inner, to: Wwn, request: Request) -> Message {
    Message::Request(inner.core.header(to), request)
}
