//! The FCIP gateway of PATENT.md's figure 8: a fabric switch (from `fabric`) whose
//! inter-switch ports are FCIP links (from `fcip`), so that a node on one SAN reaches a node on
//! another as if one fabric held both.
//!
//! ```text
//!  nodes ── F_Ports ── Switch (domain D) ── ISL port p ══ FcipLink ══ TCP 3225 ══ peer gateway
//!                         routes: the domains the peer announces (EFP) → p, while the link is up
//! ```
//!
//! Each configured peer has an inter-switch port. While its FCIP link is up, the port is
//! attached (an in-process pair pumped to and from the link); when the link loses its last
//! connection the port goes down. The gateway listens for FCIP connections from its peers and
//! dials the peers it is configured to dial; a connection from a fabric that is not a
//! configured peer is closed with a log line.
//!
//! Across the link the two switches do what switches do over any inter-switch port (see
//! `fabric::switch`): each tells the other the domains it reaches (SW_ILS EFP), asks the
//! other's name server for its N_Ports (GA_NXT, GFF_ID to the domain controller FFFCdd) and
//! tells it of changes (RSCN), so a node on one SAN finds a node on the other with GID_FT and
//! logs in to it with PLOGI. When the link goes, the domains behind it and their name server
//! entries go, and the registered N_Ports hear RSCN; they come back with the link.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fabric::link::{self, Received};
use fabric::{Config, ConfigError, PortId, Switch, SwitchHandle};
use fc_frames::Wwn;
use fcip::capture::CaptureSink;
use fcip::connection::{accept, ConnectionCounters, Endpoint, SetupCounters};
use fcip::engine::ReceiverConfig;
use fcip::link::{FcipLink, LinkConfig, LinkControl, LinkCounters, LinkEvent};
use tokio::net::TcpListener;

/// The IANA port of FCIP.
pub const FCIP_PORT: u16 = 3225;

/// One peer gateway.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Its FC Fabric Entity WWN (its switch name).
    pub fabric: Wwn,
    /// Where to dial it; `None` when it dials us.
    pub dial: Option<SocketAddr>,
    /// Domains routed to it while its link is up, besides those it announces (EFP): for a
    /// peer that does not speak SW_ILS. Usually empty.
    pub domains: Vec<u8>,
    /// The inter-switch port its link takes.
    pub port: PortId,
    /// TCP connections of the link, 1-8.
    pub connections: usize,
}

/// A gateway's configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The switch: domain, names, F_Ports, zoning.
    pub switch: Config,
    /// Where to listen for FCIP connections from peers.
    pub fcip_listen: SocketAddr,
    /// The peers.
    pub peers: Vec<PeerConfig>,
    /// K_A_TOV announced and kept on every connection.
    pub k_a_tov: Duration,
    /// The receive engine's settings.
    pub receiver: ReceiverConfig,
    /// Write every FCIP frame sent and received to this pcap file, created or replaced at
    /// start: every connection, dialled or accepted, records each frame it sends and receives
    /// (Special Frames, FC frames, LKAs) as its own Ethernet/IP/TCP packet between the
    /// connection's real addresses ([`fcip::capture`]). [`Gateway::finish_capture`] flushes it.
    pub capture: Option<PathBuf>,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The switch configuration is invalid.
    #[error("switch: {0}")]
    Config(#[from] ConfigError),
    /// A peer's inter-switch port is also an F_Port, or two peers share one.
    #[error("peer {0}: port {1} is an F_Port or taken by another peer")]
    PortClash(Wwn, PortId),
    /// The FCIP listener could not be opened.
    #[error("cannot listen for FCIP on {0}: {1}")]
    Listen(SocketAddr, io::Error),
    /// The capture file could not be created.
    #[error("cannot create the FCIP capture {}: {source}", path.display())]
    Capture {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// A running gateway.
#[derive(Clone)]
pub struct Gateway {
    /// Its switch.
    pub switch: SwitchHandle,
    fcip_addr: SocketAddr,
    links: Arc<Vec<PeerLink>>,
    capture: Option<CaptureSink>,
    /// Connections the listener refused, by why.
    refused: Arc<std::sync::Mutex<SetupCounters>>,
}

/// A peer's FCIP link, as the gateway keeps it (its frames belong to the pump).
struct PeerLink {
    fabric: Wwn,
    port: PortId,
    configured: usize,
    control: LinkControl,
}

/// One peer link's state, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// The peer's FC Fabric Entity WWN.
    pub peer: Wwn,
    /// The inter-switch port the link takes.
    pub port: PortId,
    /// The link's counters (closed connections' added up in `closed_totals`).
    pub counters: LinkCounters,
    /// Connections the link is configured to keep.
    pub configured: usize,
    /// Each open connection's counters.
    pub connections: Vec<ConnectionCounters>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("fcip_addr", &self.fcip_addr)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts the switch, the FCIP listener and a link per peer. Inside a tokio runtime.
    pub async fn start(config: GatewayConfig, seed: u64) -> Result<Gateway, GatewayError> {
        let mut ports = Vec::new();
        for p in &config.peers {
            if config.switch.is_f_port(p.port) || ports.contains(&p.port) {
                return Err(GatewayError::PortClash(p.fabric, p.port));
            }
            ports.push(p.port);
        }
        let switch = SwitchHandle::spawn(Switch::new(config.switch.clone())?);
        let listener = TcpListener::bind(config.fcip_listen)
            .await
            .map_err(|e| GatewayError::Listen(config.fcip_listen, e))?;
        let fcip_addr = listener
            .local_addr()
            .map_err(|e| GatewayError::Listen(config.fcip_listen, e))?;
        // Created once nothing else can fail.
        let capture = config
            .capture
            .as_ref()
            .map(|path| {
                CaptureSink::create(path).map_err(|source| GatewayError::Capture {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()?;
        let local = Endpoint {
            fabric: config.switch.switch_name,
            entity: config.switch.switch_name.0,
            k_a_tov: config.k_a_tov,
            receiver: config.receiver,
            capture: capture.clone(),
        };
        let mut links = Vec::new();
        let mut adders = Vec::new();
        for (i, peer) in config.peers.iter().enumerate() {
            let lc = LinkConfig {
                local: local.clone(),
                peer_fabric: peer.fabric,
                connections: peer.connections,
                reconnect_min: Duration::from_millis(50),
                reconnect_max: Duration::from_secs(2),
            };
            let link = match peer.dial {
                Some(addr) => FcipLink::originate(lc, addr, seed ^ (i as u64 + 1)),
                None => FcipLink::accepting(lc),
            };
            let FcipLink { tx, rx, control } = link;
            adders.push((peer.fabric, control.clone()));
            links.push(PeerLink {
                fabric: peer.fabric,
                port: peer.port,
                configured: peer.connections,
                control,
            });
            tokio::spawn(pump(switch.clone(), peer.clone(), tx, rx));
        }
        let peers: Vec<Wwn> = config.peers.iter().map(|p| p.fabric).collect();
        let refused = Arc::new(std::sync::Mutex::new(SetupCounters::default()));
        let refused_count = Arc::clone(&refused);
        tokio::spawn(async move {
            loop {
                let (stream, from) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "FCIP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (local, peers, adders) = (local.clone(), peers.clone(), adders.clone());
                let refused = Arc::clone(&refused_count);
                tokio::spawn(async move {
                    match accept(stream, &local, &peers).await {
                        Ok(c) => {
                            let source = c.peer.source_fabric;
                            if let Some((_, adder)) = adders.iter().find(|(w, _)| *w == source) {
                                adder.add(c);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%from, error = %e, "FCIP connection refused");
                            refused.lock().unwrap_or_else(|e| e.into_inner()).count(&e);
                        }
                    }
                });
            }
        });
        Ok(Gateway {
            switch,
            fcip_addr,
            links: Arc::new(links),
            capture,
            refused,
        })
    }

    /// Where the gateway listens for FCIP.
    pub fn fcip_addr(&self) -> SocketAddr {
        self.fcip_addr
    }

    /// Each peer's link counters.
    pub fn link_counters(&self) -> Vec<(Wwn, LinkCounters)> {
        self.links
            .iter()
            .map(|p| (p.fabric, p.control.counters()))
            .collect()
    }

    /// Each peer link's counters and its open connections' counters, in configuration order.
    pub fn links(&self) -> Vec<LinkStatus> {
        self.links
            .iter()
            .map(|p| LinkStatus {
                peer: p.fabric,
                port: p.port,
                configured: p.configured,
                counters: p.control.counters(),
                connections: p.control.connections(),
            })
            .collect()
    }

    /// The connections the listener refused (a Source Fabric WWN that is not a peer, a bad or
    /// missing Special Frame), counted as the FCIP MIB counts them.
    pub fn refused(&self) -> SetupCounters {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Flushes and closes the FCIP capture, if there is one: frames after this are not
    /// recorded. Call it before the process ends.
    pub fn finish_capture(&self) -> io::Result<()> {
        self.capture.as_ref().map_or(Ok(()), CaptureSink::finish)
    }

    /// Bounces every connection of the link to `peer` (they are dialled again).
    pub fn bounce(&self, peer: Wwn) {
        for p in self.links.iter().filter(|p| p.fabric == peer) {
            p.control.bounce();
        }
    }
}

/// Link events the pump takes at a time.
const PUMP_BATCH: usize = 256;

/// Moves what the switch sends out an inter-switch port onto its FCIP link, a batch at a time.
async fn forward_to_link(
    mut rx: link::LinkRx,
    to_link: tokio::sync::mpsc::UnboundedSender<fc_frames::FcFrame>,
) {
    let mut batch = Vec::with_capacity(PUMP_BATCH);
    while rx.recv_many(&mut batch, PUMP_BATCH).await > 0 {
        for r in batch.drain(..) {
            if let Received::Frame(f) = r {
                if to_link.send(f).is_err() {
                    return;
                }
            }
        }
    }
}

/// Joins one FCIP link to its inter-switch port: attached and routed while the link is up.
async fn pump(
    switch: SwitchHandle,
    peer: PeerConfig,
    to_link: tokio::sync::mpsc::UnboundedSender<fc_frames::FcFrame>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<LinkEvent>,
) {
    // The switch's side of the port, while the link is up.
    let mut port: Option<link::LinkTx> = None;
    let mut forward: Option<tokio::task::JoinHandle<()>> = None;
    let mut batch = Vec::with_capacity(PUMP_BATCH);
    while events.recv_many(&mut batch, PUMP_BATCH).await > 0 {
        for ev in batch.drain(..) {
            match ev {
                LinkEvent::Up => {
                    let (ours, theirs) = link::pair();
                    switch.attach(peer.port, theirs);
                    for d in &peer.domains {
                        switch.set_route(*d, peer.port);
                    }
                    let link::Link { tx, rx } = ours;
                    port = Some(tx);
                    // Frames the switch sends out the port go onto the FCIP link.
                    forward = Some(tokio::spawn(forward_to_link(rx, to_link.clone())));
                    tracing::info!(peer = %peer.fabric, port = %peer.port, "inter-switch link up");
                }
                LinkEvent::Down => {
                    for d in &peer.domains {
                        switch.remove_route(*d);
                    }
                    switch.disconnect(peer.port);
                    port = None;
                    if let Some(f) = forward.take() {
                        f.abort();
                    }
                    tracing::info!(peer = %peer.fabric, port = %peer.port, "inter-switch link down");
                }
                LinkEvent::Frame(f) => {
                    if let Some(p) = &port {
                        let _ = p.send(f);
                    }
                }
                // Counted by the switch as a malformed frame on the inter-switch port.
                LinkEvent::Malformed { bytes, error } => {
                    if let Some(p) = &port {
                        let _ = p.send_malformed(bytes, error);
                    }
                }
            }
        }
    }
}
