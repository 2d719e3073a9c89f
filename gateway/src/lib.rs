//! The FCIP gateway of PATENT.md's figure 8: a fabric switch (from `fabric`) whose
//! inter-switch ports are FCIP links (from `fcip`), so that a node on one SAN reaches a node on
//! another as if one fabric held both.
//!
//! ```text
//!  nodes ── F_Ports ── Switch (domain D) ── ISL port p ══ FcipLink ══ TCP 3225 ══ peer gateway
//!                         routes: the domains the peer announces (EFP) → p, while the link is up
//! ```
//!
//! Each configured peer has an inter-switch port. While its FCIP link is up, the port has the
//! link's own [`Link`](fabric::link::Link) attached: the switch task polls the link's receiving
//! queue, into which the FCIP connections' readers put what they receive, and sends straight
//! into the queue of the connection each frame's exchange goes on — no task relays frames in
//! between. When the link loses its last connection, its `Link` ends and the port goes down;
//! when the link comes back, its new `Link` is attached. The gateway listens for FCIP
//! connections from its peers and dials the peers it is configured to dial; a connection from
//! a fabric that is not a configured peer is closed with a log line.
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

use fabric::{Config, ConfigError, PortId, Switch, SwitchHandle};
use fc_frames::Wwn;
use fcip::capture::{CaptureSink, CaptureStats};
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
    /// connection's real addresses ([`fcip::capture`]), written by a thread of its own; what
    /// it cannot keep up with it drops and counts ([`Gateway::capture_stats`]).
    /// [`Gateway::finish_capture`] flushes it.
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

/// A peer's FCIP link, as the gateway keeps it (its frames go between the link and the
/// switch port directly).
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
    /// `seed` feeds the connection nonces (the `i`th peer's link gets `seed ^ (i + 1)`) and
    /// backoff jitter.
    pub async fn start(config: GatewayConfig, seed: u64) -> Result<Gateway, GatewayError> {
        Gateway::start_with(config, seed, None).await
    }

    /// [`start`](Self::start); with `capture_metadata`, the capture (if
    /// [`GatewayConfig::capture`] is set) is written as pcapng with that metadata and each
    /// packet's direction ([`CaptureSink::create_pcapng`]), so that `fcsan pcap replay --as
    /// gateway` can replay it; without, it is classic pcap.
    pub async fn start_with(
        config: GatewayConfig,
        seed: u64,
        capture_metadata: Option<fc_pcap::capture::Metadata>,
    ) -> Result<Gateway, GatewayError> {
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
                match &capture_metadata {
                    Some(m) => CaptureSink::create_pcapng(path, m),
                    None => CaptureSink::create(path),
                }
                .map_err(|source| GatewayError::Capture {
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
            let FcipLink { events, control } = link;
            adders.push((peer.fabric, control.clone()));
            links.push(PeerLink {
                fabric: peer.fabric,
                port: peer.port,
                configured: peer.connections,
                control,
            });
            // A static route counts while its port is up: set once, it follows the link.
            for d in &peer.domains {
                switch.set_route(*d, peer.port);
            }
            tokio::spawn(attach_while_up(switch.clone(), peer.clone(), events));
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

    /// What the FCIP capture wrote and what it dropped (it never holds a connection up: a
    /// capture that does not keep up drops segments and counts them), if there is a capture.
    pub fn capture_stats(&self) -> Option<CaptureStats> {
        self.capture.as_ref().map(CaptureSink::stats)
    }

    /// Writes what the FCIP capture has queued, flushes and closes it, if there is one:
    /// frames after this are not recorded. Call it before the process ends.
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

/// Attaches each `Link` the peer's FCIP link brings up to the peer's inter-switch port (it
/// goes down by itself with the link). Only link state passes here, never a frame.
async fn attach_while_up(
    switch: SwitchHandle,
    peer: PeerConfig,
    mut events: tokio::sync::mpsc::UnboundedReceiver<LinkEvent>,
) {
    while let Some(ev) = events.recv().await {
        match ev {
            LinkEvent::Up(link) => {
                switch.attach(peer.port, link);
                tracing::info!(peer = %peer.fabric, port = %peer.port, "inter-switch link up");
            }
            LinkEvent::Down => {
                tracing::info!(peer = %peer.fabric, port = %peer.port, "inter-switch link down");
            }
        }
    }
}
