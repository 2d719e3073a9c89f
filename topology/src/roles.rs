//! Each role of its own process, started from its configuration file (see [`config`]): what
//! `fcsan switch`, `fcsan gateway`, `fcsan disk`, `fcsan host` and `fcsan controller` run.
//! Folders for captures, LUN files and databases are created as needed.
//!
//! [`config`]: crate::config

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use controller::api;
use controller::driver::Controller;
use fc_node::disk::DiskArray;
use fc_node::fcp::initiator::Initiator;
use fc_node::node::{Node, NodeConfig, Services};
use gateway::Gateway;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::capture::{array_metadata, controller_metadata, node_metadata, tap_node};
use crate::config::{ControllerFile, DiskFile, GatewayFile, HostFile, NodeSection, SwitchFile};
use crate::switch::{self, bind, capture_switch, local_addr, serve_nodes, tcp_connector};
use crate::{RunningSwitch, StartError};

/// A running gateway and the address its switch takes nodes on.
#[derive(Debug, Clone)]
pub struct RunningGateway {
    /// The gateway: its switch, FCIP listener and links.
    pub gateway: Gateway,
    /// Where its switch listens for node links.
    pub addr: SocketAddr,
}

/// A running controller and the address its management API took.
pub struct ControllerRole {
    /// The controller: its node on the site's switch, its database, its tasks.
    pub controller: Controller,
    /// Where its management API listens (`http://` this address).
    pub api: SocketAddr,
    /// Stops the API server, which then lets the requests under way finish.
    stop_api: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

impl ControllerRole {
    /// The management API's URL, as the controller tells its peers.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// Stops the API (after the requests under way), then the controller's tasks, and logs
    /// its node out.
    pub async fn shutdown(self) {
        let _ = self.stop_api.send(());
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!(error = %e, "management API server failed");
        }
        self.controller.shutdown().await;
    }
}

/// Starts the switch of `switch.toml`.
pub async fn switch(file: &SwitchFile) -> Result<RunningSwitch, StartError> {
    if let Some(p) = &file.capture {
        parent_folder(p)?;
    }
    switch::start_switch(file.switch.clone(), file.listen, file.capture.as_deref()).await
}

/// Starts the gateway of `gateway.toml`, writing its FCIP capture to `fcip_capture` when
/// given. `seed` makes the connection nonces and the redial jitter: give each start a new one.
pub async fn gateway(
    file: &GatewayFile,
    fcip_capture: Option<PathBuf>,
    seed: u64,
) -> Result<RunningGateway, StartError> {
    for p in [file.switch.capture.as_deref(), fcip_capture.as_deref()]
        .into_iter()
        .flatten()
    {
        parent_folder(p)?;
    }
    // Bound first, so that a taken address fails before anything runs.
    let listen = file.switch.listen;
    let nodes = bind(listen).await?;
    let addr = local_addr(&nodes, listen)?;
    let gateway = crate::capture::start_gateway(file.gateway_config(fcip_capture), seed)
        .await
        .map_err(|source| StartError::Gateway {
            domain: file.switch.switch.domain,
            source,
        })?;
    if let Some(p) = &file.switch.capture {
        capture_switch(&gateway.switch, &file.switch.switch, p)?;
    }
    serve_nodes(&gateway.switch, nodes);
    Ok(RunningGateway { gateway, addr })
}

/// Starts the disk array of `disk.toml`, registered with the name server as `symbolic_name`,
/// its link captured to `capture` (pcapng) when given.
pub fn disk(
    file: &DiskFile,
    symbolic_name: String,
    capture: Option<&Path>,
) -> Result<DiskArray, StartError> {
    for l in file.luns.iter().map(|l| l.path.as_path()).chain(capture) {
        parent_folder(l)?;
    }
    let mut nc = node_config(&file.node);
    nc.symbolic_name = symbolic_name;
    nc.target = true;
    let connector = tap_node(tcp_connector(file.node.switch), capture, || {
        array_metadata(&nc, &file.luns, &file.tapes)
    })?;
    DiskArray::start(nc, connector, &file.luns, &file.tapes).map_err(|source| StartError::Array {
        name: file.node.port_name.to_string(),
        source,
    })
}

/// Starts the host of `host.toml`: an FCP initiator whose commands time out after
/// `command_timeout`.
pub fn host(file: &HostFile, command_timeout: Duration) -> Initiator {
    let mut nc = node_config(&file.node);
    nc.initiator = true;
    nc.symbolic_name = "fcsan host".into();
    Initiator::new(Node::spawn(
        nc,
        tcp_connector(file.node.switch),
        Services::new(),
    ))
    .with_timeout(command_timeout)
}

/// [`host`], its link captured to `capture` (pcapng).
pub fn host_captured(
    file: &HostFile,
    command_timeout: Duration,
    capture: &Path,
) -> Result<Initiator, StartError> {
    parent_folder(capture)?;
    let mut nc = node_config(&file.node);
    nc.initiator = true;
    nc.symbolic_name = "fcsan host".into();
    let connector = tap_node(tcp_connector(file.node.switch), Some(capture), || {
        node_metadata("host", &nc, serde_json::json!({}))
    })?;
    Ok(Initiator::new(Node::spawn(nc, connector, Services::new())).with_timeout(command_timeout))
}

/// Starts the controller of `controller.toml`: binds its management API first (so that a
/// taken address fails before anything runs), opens or creates its database, logs in through
/// the site's switch and serves the API.
pub async fn controller(file: &ControllerFile) -> Result<ControllerRole, StartError> {
    controller_captured(file, None).await
}

/// [`controller`], its node's link captured to `capture` (pcapng) when given.
pub async fn controller_captured(
    file: &ControllerFile,
    capture: Option<&Path>,
) -> Result<ControllerRole, StartError> {
    for p in std::iter::once(file.controller.database.as_path()).chain(capture) {
        parent_folder(p)?;
    }
    let listener = bind(file.api).await?;
    let api = local_addr(&listener, file.api)?;
    let config = file.controller_config(format!("http://{api}"));
    let connector = tap_node(tcp_connector(file.switch), capture, || {
        controller_metadata(&config)
    })?;
    let controller =
        Controller::start(config, connector).map_err(|source| StartError::Controller {
            name: file.controller.name.clone(),
            source,
        })?;
    let (stop_api, stopped) = oneshot::channel();
    let server = tokio::spawn(api::serve_until(
        listener,
        Arc::new(controller.backend()),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(ControllerRole {
        controller,
        api,
        stop_api,
        server,
    })
}

/// A node's configuration from its file's `[node]` section: names and time-outs (the ELS
/// time-out is 2 × R_A_TOV, as FC-LS has it).
pub fn node_config(n: &NodeSection) -> NodeConfig {
    let mut c = NodeConfig::new(n.port_name, n.node_name);
    c.exchange.e_d_tov = n.e_d_tov;
    c.exchange.r_a_tov = n.r_a_tov;
    c.els_timeout = n.r_a_tov * 2;
    c
}

/// Creates the folder `path` goes in, when it has one.
fn parent_folder(path: &Path) -> Result<(), StartError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| StartError::Folder {
            path: dir.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}
