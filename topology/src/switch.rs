//! A switch as the roles run it: listening for node links over TCP (RFC 3643 framing), its
//! frames recorded to a pcap file when asked, and the connector nodes dial it with.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fabric::driver::{Direction, SwitchHandle};
use fabric::link::{self, Link};
use fabric::{Config, Switch};
use fc_pcap::capture::{CaptureError, FcPcapWriter};
use tokio::net::TcpListener;

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
/// originates to `capture` (pcap link type 225) when given.
pub async fn start_switch(
    config: Config,
    listen: SocketAddr,
    capture: Option<&Path>,
) -> Result<RunningSwitch, StartError> {
    let switch = Switch::new(config)?;
    let listener = bind(listen).await?;
    let addr = local_addr(&listener, listen)?;
    let handle = SwitchHandle::spawn(switch);
    if let Some(path) = capture {
        capture_switch(&handle, path)?;
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

/// Writes every frame the switch receives and every frame it originates to a new pcap file
/// at `path` (link type 225).
pub fn capture_switch(handle: &SwitchHandle, path: &Path) -> Result<(), StartError> {
    let capture_error = |source| StartError::Capture {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(|source| {
        capture_error(CaptureError::File {
            path: path.to_path_buf(),
            source,
        })
    })?;
    // Unbuffered: every record reaches the file at once, so a capture survives a kill.
    let writer = Arc::new(Mutex::new(FcPcapWriter::new(file).map_err(capture_error)?));
    handle.set_tap(Some(Box::new(move |_port, dir, frame| {
        // Each frame once: as the switch received it, plus what the switch itself says
        // (as a server, or as its domain controller to other switches).
        let s = frame.header.s_id;
        if dir == Direction::Rx || s.is_well_known() || s.is_domain_controller() {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = w.write(ts, frame) {
                tracing::warn!(error = %e, "capture write failed");
            }
        }
    })));
    Ok(())
}
