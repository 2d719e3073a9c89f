//! A switch as the roles run it: listening for node links over TCP (RFC 3643 framing), its
//! frames recorded to a pcap file when asked, and the connector nodes dial it with.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;

use fabric::driver::{Direction, SwitchHandle};
use fabric::link::{self, Link};
use fabric::{Config, PortId, Switch};
use tokio::net::TcpListener;

use crate::capture::{switch_metadata, CaptureFile};
use crate::StartError;

/// A connector that dials the switch at `addr` over TCP, again after every link loss.
pub fn tcp_connector(
    addr: SocketAddr,
) -> impl FnMut() -> Pin<Box<dyn std::future::Future<Output = io::Result<Link>> + Send>> + Send + 'static
{
    move || Box::pin(link::tcp::connect(addr))
}

/// A running switch: its handle and the address nodes dial.
#[derive(Debug, Clone)]
pub struct RunningSwitch {
    /// The switch.
    pub handle: SwitchHandle,
    /// Where it listens for node links.
    pub addr: SocketAddr,
}

/// Starts a switch listening on `listen`, writing every frame it receives and every frame it
/// originates to `capture` (pcapng, link type 225) when given.
pub async fn start_switch(
    config: Config,
    listen: SocketAddr,
    capture: Option<&Path>,
) -> Result<RunningSwitch, StartError> {
    let switch = Switch::new(config.clone())?;
    let listener = bind(listen).await?;
    let addr = local_addr(&listener, listen)?;
    let handle = SwitchHandle::spawn(switch);
    if let Some(path) = capture {
        capture_switch(&handle, &config, path)?;
    }
    serve_nodes(&handle, listener);
    Ok(RunningSwitch { handle, addr })
}

/// Opens a TCP listener on `addr` for node links.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// The address `listener`, opened on `asked`, took.
pub fn local_addr(listener: &TcpListener, asked: SocketAddr) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Listen {
        addr: asked,
        source,
    })
}

/// Attaches every node that connects to `listener` to a free F_Port of the switch, in a task
/// of its own.
pub fn serve_nodes(handle: &SwitchHandle, listener: TcpListener) {
    let h = handle.clone();
    tokio::spawn(async move {
        if let Err(e) = h.serve_tcp(listener).await {
            tracing::error!(error = %e, "switch listener failed");
        }
    });
}

/// Writes every frame the switch (of configuration `config`) receives and every frame it
/// originates to a new pcapng file at `path` (link type 225, one interface per port, with the
/// metadata `fcsan pcap replay --as switch` starts a fresh switch from).
pub fn capture_switch(
    handle: &SwitchHandle,
    config: &Config,
    path: &Path,
) -> Result<(), StartError> {
    let capture = CaptureFile::create(path, &switch_metadata(config))?;
    let mut names: BTreeMap<PortId, String> = BTreeMap::new();
    handle.set_tap(Some(Box::new(move |port, dir, frame| {
        // Each frame once: as the switch received it, plus what the switch itself says
        // (as a server, or as its domain controller to other switches).
        let s = frame.header.s_id;
        let direction = match dir {
            Direction::Rx => fc_pcap::capture::Direction::Inbound,
            Direction::Tx if s.is_well_known() || s.is_domain_controller() => {
                fc_pcap::capture::Direction::Outbound
            }
            Direction::Tx => return,
        };
        let name = names
            .entry(port)
            .or_insert_with(|| format!("port {}", port.0));
        capture.record(name, direction, frame);
    })));
    Ok(())
}
