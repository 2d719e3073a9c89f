//! A site's parts composed: the [`Topology`] builder (sites that are switches or FCIP gateways,
//! disk arrays, hosts, FCIP links optionally through the WAN relay, zoning, names from a
//! [`WwnScheme`]) that `fcsan up`, the tests and the benchmarks start their SANs with; the role
//! configuration files ([`config`]) and each role started from its file ([`roles`], the
//! virtualization controller among them); a switch listening for node links with its capture
//! ([`switch`]); and pseudo-random files for hosts to write ([`data`]).
//!
//! Everything here starts in the current tokio runtime and hands back the handles of what it
//! started; the `fcsan` binary prints them, the tests and benchmarks drive them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use fc_pcap::capture::CaptureError;
use gateway::GatewayError;

mod builder;
pub mod capture;
pub mod config;
pub mod data;
pub mod roles;
pub mod switch;

pub use builder::{
    ArrayId, ArraySpec, ControllerId, GatewayId, HostId, InvalidTopology, LinkId, Member, Running,
    RunningArray, RunningController, RunningHost, RunningLink, RunningSite, SiteId, SwitchId,
    Topology, WwnScheme, BLOCK_SIZE, DEFAULT_PORTS, ISL_PORT_BASE, K_A_TOV, MAX_NODES,
};
pub use data::write_random;
pub use switch::{capture_switch, start_switch, tcp_connector, RunningSwitch};

/// Why a role or a topology could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The switch configuration is invalid.
    #[error("switch configuration")]
    Switch(#[from] fabric::ConfigError),
    /// A gateway could not start.
    #[error("gateway of domain {domain:02x}")]
    Gateway {
        /// Its domain.
        domain: u8,
        /// Why.
        #[source]
        source: GatewayError,
    },
    /// A TCP listener could not be opened.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A capture file could not be created.
    #[error("cannot create capture {}", path.display())]
    Capture {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CaptureError,
    },
    /// A folder for LUN files or captures could not be created.
    #[error("cannot create folder {}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The topology cannot start as declared.
    #[error("topology")]
    Invalid(#[from] InvalidTopology),
    /// A WAN relay could not start.
    #[error("WAN relay to {upstream}")]
    Relay {
        /// The address it was to relay to.
        upstream: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A controller could not start.
    #[error("controller {name}")]
    Controller {
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: controller::driver::StartError,
    },
    /// A disk array could not open its LUN files.
    #[error("disk array {name}")]
    Array {
        /// The array's name (its port name, for an array from a file).
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}
