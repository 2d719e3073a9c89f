//! The [`Topology`] builder: SANs declared part by part — sites (a plain switch, or an FCIP
//! gateway), disk arrays with their LUNs, hosts, FCIP links between gateways (optionally
//! through the WAN relay), zoning — then started together on loopback TCP in the current tokio
//! runtime. `fcsan up`, the cross-crate tests and the benchmarks compose their SANs with it.
//!
//! ```no_run
//! # async fn two_sites(dir: &std::path::Path) -> Result<(), topology::StartError> {
//! use fc_node::scsi::Tier;
//! use topology::{ArraySpec, Topology};
//!
//! let mut t = Topology::new();
//! let a = t.gateway("A", 1);
//! let b = t.gateway("B", 2);
//! t.link(a, b, 2); // A dials B with two TCP connections
//! let disk = t.array(b, ArraySpec::new("hdd").disk(Tier::SlowHdd, 256 << 20));
//! let host = t.host(a);
//! t.zone("host-a", [host.into(), disk.into()]);
//! let san = t.start(dir).await?;
//! let init = &san.host(host).initiator;
//! init.node().wait_targets(1, std::time::Duration::from_secs(20)).await.ok();
//! # Ok(()) }
//! ```
//!
//! **Names.** Every WWN comes from the topology's [`WwnScheme`], in declaration order: no
//! caller writes one. The default scheme names as `configs/` does, so `fcsan up` shows the
//! names it always showed.
//!
//! **Ports.** A site's F_Ports are 1-16 unless [`Topology::ports`] says otherwise; each FCIP
//! link takes the next inter-switch port from [`ISL_PORT_BASE`] on each of its gateways, in
//! declaration order (the first link of a gateway is port 100).
//!
//! **Start order.** A gateway starts once every gateway it dials listens, so that it knows the
//! address to dial (the links may not dial in a circle); a link through the relay gets its relay
//! between the two. Then every disk array and host is started; they log in on their own, so
//! [`Topology::start`] returns before they are online.
//!
//! **Zoning.** Zones apply on every switch of the topology, in one active zone set, with no
//! access outside them; a topology without zones lets every port see every other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use controller::api::Management;
use controller::driver::{Controller, ControllerConfig};
use controller::wire::Key;

use fabric::{Config, DefaultZone, PortId, SwitchHandle, Zone, ZoneSet, Zoning};
use fc_frames::scsi::Lun;
use fc_frames::Wwn;
use fc_node::disk::{DiskArray, LunSpec, TapeSpec};
use fc_node::fcp::initiator::Initiator;
use fc_node::node::{Node, NodeConfig, Services};
use fc_node::scsi::Tier;
use fcip::engine::ReceiverConfig;
use gateway::{Gateway, GatewayConfig, PeerConfig};
use wan_relay::{Impairment, Relay};

use crate::capture::{array_metadata, controller_metadata, node_metadata, tap_node};
use crate::switch::{self, bind, capture_switch, local_addr, serve_nodes, tcp_connector};
use crate::StartError;

/// The inter-switch port of a gateway's first FCIP link; later links take the ports after it.
pub const ISL_PORT_BASE: PortId = PortId(100);
/// F_Ports of a site unless [`Topology::ports`] says otherwise.
pub const DEFAULT_PORTS: u8 = 16;
/// K_A_TOV of every FCIP connection.
pub const K_A_TOV: Duration = Duration::from_secs(6);
/// Logical block size of every disk LUN.
pub const BLOCK_SIZE: u32 = 512;
/// Most hosts, and most arrays, a [`WwnScheme`] names.
pub const MAX_NODES: usize = 0x7FFF;

/// How long [`Topology::start`] waits for each array and host to log in with its switch before
/// it starts the next one (see `start`); one that takes longer keeps trying on its own.
const LOGIN_WAIT: Duration = Duration::from_secs(5);
/// Where every part listens: loopback, a port the kernel picks.
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// How a topology names what it builds. `TT:TT` is the tag (zero by default), `DD` a site's
/// domain and `nn:nn` the host's or array's number, counted from 1 in declaration order:
///
/// ```text
///  switch of domain DD   10:00:TT:TT:c0:ff:ee:DD
///  host n                21:00:00:00:TT:TT:nn:nn   node 20:00:00:00:TT:TT:(n, bit 4 set)
///  array n               22:00:00:00:TT:TT:nn:nn   node 20:00:00:00:TT:TT:(n, bit 4 clear)
/// ```
///
/// A node name is its number with the bits from bit 4 up shifted left by one, bit 4 set for a
/// host: arrays 1-15 are `..:01`-`..:0f` and hosts 1-15 `..:11`-`..:1f`, as in `configs/`, and
/// no two nodes share a name. Two topologies with different tags share no name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WwnScheme {
    /// Distinguishes this topology's names from another's.
    pub tag: u16,
}

impl WwnScheme {
    /// The switch name of the site of `domain`.
    pub fn switch_name(self, domain: u8) -> Wwn {
        Wwn::from_u64(0x1000_0000_c0ff_ee00 | u64::from(self.tag) << 32 | u64::from(domain))
    }

    /// The port name of host `n` (from 1).
    pub fn host_port(self, n: u16) -> Wwn {
        self.name(0x21, n)
    }

    /// The node name of host `n` (from 1).
    pub fn host_node(self, n: u16) -> Wwn {
        self.name(0x20, node_number(n, true))
    }

    /// The port name of array `n` (from 1).
    pub fn array_port(self, n: u16) -> Wwn {
        self.name(0x22, n)
    }

    /// The node name of array `n` (from 1).
    pub fn array_node(self, n: u16) -> Wwn {
        self.name(0x20, node_number(n, false))
    }

    /// The port (and node) name of the controller of the site of `domain`:
    /// `23:00:00:00:TT:TT:00:DD`.
    pub fn controller_port(self, domain: u8) -> Wwn {
        self.name(0x23, u16::from(domain))
    }

    fn name(self, naa: u8, low: u16) -> Wwn {
        Wwn::from_u64(u64::from(naa) << 56 | u64::from(self.tag) << 16 | u64::from(low))
    }
}

/// `n` with its bits from bit 4 up moved up one, and bit 4 set for a host. For `n` up to
/// [`MAX_NODES`] the result fits 16 bits.
fn node_number(n: u16, host: bool) -> u16 {
    ((n & !0xF) << 1) | (u16::from(host) << 4) | (n & 0xF)
}

/// A site: a plain switch or a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId(usize);

/// A site that is an FCIP gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayId(usize);

/// A site that is a plain switch (no FCIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwitchId(usize);

/// An FCIP link between two gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(usize);

/// A disk array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArrayId(usize);

/// A host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(usize);

impl From<GatewayId> for SiteId {
    fn from(g: GatewayId) -> SiteId {
        SiteId(g.0)
    }
}

impl From<SwitchId> for SiteId {
    fn from(s: SwitchId) -> SiteId {
        SiteId(s.0)
    }
}

/// A site's virtualization controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControllerId(usize);

/// A member of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    /// A host's port.
    Host(HostId),
    /// An array's port.
    Array(ArrayId),
    /// A controller's port.
    Controller(ControllerId),
}

impl From<ControllerId> for Member {
    fn from(c: ControllerId) -> Member {
        Member::Controller(c)
    }
}

impl From<HostId> for Member {
    fn from(h: HostId) -> Member {
        Member::Host(h)
    }
}

impl From<ArrayId> for Member {
    fn from(a: ArrayId) -> Member {
        Member::Array(a)
    }
}

/// A disk array's logical units, in LUN order from LUN 0.
///
/// A disk's backing file is `NAMEn.img` in the folder given to [`Topology::start`] (`n` its
/// LUN), created sparse when missing, unless [`ArraySpec::disk_file`] names one; its serial
/// number is the array's name in capitals and the LUN (`SSD0`), a tape's `TAPEk` (the array's
/// `k`th tape from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    name: String,
    luns: Vec<LunKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LunKind {
    Disk {
        tier: Tier,
        bytes: u64,
        path: Option<PathBuf>,
    },
    Tape,
}

impl ArraySpec {
    /// An array called `name` (its LUN files and serials are named after it), with no LUN yet.
    pub fn new(name: impl Into<String>) -> ArraySpec {
        ArraySpec {
            name: name.into(),
            luns: Vec::new(),
        }
    }

    /// Adds a disk of `bytes` (a multiple of [`BLOCK_SIZE`]) on `tier`.
    #[must_use]
    pub fn disk(mut self, tier: Tier, bytes: u64) -> ArraySpec {
        self.luns.push(LunKind::Disk {
            tier,
            bytes,
            path: None,
        });
        self
    }

    /// Adds a disk backed by the file at `path` (grown to `bytes` when shorter, its data kept).
    #[must_use]
    pub fn disk_file(mut self, path: impl Into<PathBuf>, tier: Tier, bytes: u64) -> ArraySpec {
        self.luns.push(LunKind::Disk {
            tier,
            bytes,
            path: Some(path.into()),
        });
        self
    }

    /// Adds a tape drive.
    #[must_use]
    pub fn tape(mut self) -> ArraySpec {
        self.luns.push(LunKind::Tape);
        self
    }

    /// The disk and tape specs, with files in `dir`.
    fn specs(&self, dir: &Path) -> (Vec<LunSpec>, Vec<TapeSpec>) {
        let (mut disks, mut tapes) = (Vec::new(), Vec::new());
        for (n, kind) in (0u16..).zip(&self.luns) {
            // At most 16384 LUNs take the single-level form; beyond, the last one is reused
            // and the array refuses the duplicate.
            let lun = Lun::from_index(n).unwrap_or(Lun::ZERO);
            match kind {
                LunKind::Disk { tier, bytes, path } => disks.push(LunSpec {
                    lun,
                    path: path
                        .clone()
                        .unwrap_or_else(|| dir.join(format!("{}{n}.img", self.name))),
                    bytes: *bytes,
                    block_size: BLOCK_SIZE,
                    tier: *tier,
                    serial: format!("{}{n}", self.name.to_uppercase()),
                }),
                LunKind::Tape => tapes.push(TapeSpec {
                    lun,
                    serial: format!("TAPE{}", tapes.len()),
                }),
            }
        }
        (disks, tapes)
    }
}

/// Why a topology is not one that can start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTopology {
    /// Two sites have one domain.
    #[error("two sites have domain {0:02x}")]
    DomainTaken(u8),
    /// Two arrays have one name (their LUN files would be the same).
    #[error("two arrays are called {0}")]
    ArrayName(String),
    /// A link joins a gateway to itself.
    #[error("site {0} is linked to itself")]
    SelfLink(String),
    /// Two links join the same two gateways.
    #[error("sites {0} and {1} are linked twice")]
    DoubleLink(String, String),
    /// A link's connection count is outside 1-8.
    #[error("a link of {0} connections (1-8)")]
    Connections(usize),
    /// Gateways dial each other in a circle: none can start first.
    #[error("the links dial in a circle through {0}")]
    DialCycle(String),
    /// More hosts or arrays than the WWN scheme names.
    #[error("more than {MAX_NODES} hosts or arrays")]
    TooManyNodes,
    /// Two controllers on one site.
    #[error("site {0} has two controllers")]
    TwoControllers(String),
    /// A gateway has more links than inter-switch ports are left after [`ISL_PORT_BASE`].
    #[error("site {0} has too many links")]
    TooManyLinks(String),
}

#[derive(Debug, Clone)]
struct Site {
    name: String,
    domain: u8,
    gateway: bool,
    ports: u8,
    capture: Option<PathBuf>,
    fcip_capture: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct LinkDecl {
    dialer: usize,
    listener: usize,
    connections: usize,
    relay: Option<Impairment>,
}

#[derive(Debug, Clone)]
struct HostDecl {
    site: usize,
    timeout: Duration,
}

/// SANs to start: sites, links, arrays, hosts and zones, declared one by one.
#[derive(Debug, Clone)]
pub struct Topology {
    scheme: WwnScheme,
    seed: u64,
    sites: Vec<Site>,
    links: Vec<LinkDecl>,
    arrays: Vec<(usize, ArraySpec)>,
    hosts: Vec<HostDecl>,
    controllers: Vec<usize>,
    heartbeat: Duration,
    controller_io: controller::io::IoConfig,
    key: Vec<u8>,
    zone_set: String,
    zones: Vec<(String, Vec<Member>)>,
    node_captures: NodeCaptures,
}

/// The pcapng files the nodes' links are captured to, by array, host and controller.
#[derive(Debug, Clone, Default)]
struct NodeCaptures {
    arrays: std::collections::BTreeMap<usize, PathBuf>,
    hosts: std::collections::BTreeMap<usize, PathBuf>,
    controllers: std::collections::BTreeMap<usize, PathBuf>,
}

impl Default for Topology {
    fn default() -> Topology {
        Topology::new()
    }
}

impl Topology {
    /// An empty topology named by the default [`WwnScheme`].
    pub fn new() -> Topology {
        Topology::with_scheme(WwnScheme::default())
    }

    /// An empty topology named by `scheme`.
    pub fn with_scheme(scheme: WwnScheme) -> Topology {
        Topology {
            scheme,
            seed: 0,
            sites: Vec::new(),
            links: Vec::new(),
            arrays: Vec::new(),
            hosts: Vec::new(),
            controllers: Vec::new(),
            heartbeat: Duration::from_secs(1),
            controller_io: controller::io::IoConfig::default(),
            key: b"fcsan topology controllers".to_vec(),
            zone_set: "production".into(),
            zones: Vec::new(),
            node_captures: NodeCaptures::default(),
        }
    }

    /// The seed of the gateways' connection nonces and redial jitter (each gateway gets it
    /// with its domain mixed in); 0 unless set.
    pub fn seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    fn site(&mut self, name: &str, domain: u8, gateway: bool) -> usize {
        self.sites.push(Site {
            name: name.to_owned(),
            domain,
            gateway,
            ports: DEFAULT_PORTS,
            capture: None,
            fcip_capture: None,
        });
        self.sites.len() - 1
    }

    /// A site that is a plain switch of `domain` (01-EF), called `name` in messages.
    pub fn switch(&mut self, name: &str, domain: u8) -> SwitchId {
        SwitchId(self.site(name, domain, false))
    }

    /// A site that is an FCIP gateway of `domain` (01-EF), called `name` in messages.
    pub fn gateway(&mut self, name: &str, domain: u8) -> GatewayId {
        GatewayId(self.site(name, domain, true))
    }

    /// Gives the site `ports` F_Ports (1 to `ports`) instead of [`DEFAULT_PORTS`].
    pub fn ports(&mut self, site: impl Into<SiteId>, ports: u8) {
        self.sites[site.into().0].ports = ports;
    }

    /// Records every frame the site's switch receives or originates to a pcap file at `path`
    /// (link type 225).
    pub fn capture(&mut self, site: impl Into<SiteId>, path: impl Into<PathBuf>) {
        self.sites[site.into().0].capture = Some(path.into());
    }

    /// Records every FCIP frame the gateway sends and receives to a pcap file at `path`, as
    /// Ethernet/IP/TCP packets between the real endpoints.
    pub fn fcip_capture(&mut self, gateway: GatewayId, path: impl Into<PathBuf>) {
        self.sites[gateway.0].fcip_capture = Some(path.into());
    }

    /// An FCIP link of `connections` TCP connections (1-8): `dialer` dials `listener`.
    pub fn link(&mut self, dialer: GatewayId, listener: GatewayId, connections: usize) -> LinkId {
        self.links.push(LinkDecl {
            dialer: dialer.0,
            listener: listener.0,
            connections,
            relay: None,
        });
        LinkId(self.links.len() - 1)
    }

    /// Sends the link through a WAN relay (`wan_relay::Relay`) under `impairment`: the dialer
    /// dials the relay, the relay the listener. Its handle is in [`RunningLink::relay`].
    pub fn relay(&mut self, link: LinkId, impairment: Impairment) {
        self.links[link.0].relay = Some(impairment);
    }

    /// A disk array on `site`.
    pub fn array(&mut self, site: impl Into<SiteId>, spec: ArraySpec) -> ArrayId {
        self.arrays.push((site.into().0, spec));
        ArrayId(self.arrays.len() - 1)
    }

    /// A host (an FCP initiator) on `site`, whose commands time out after 30 s.
    pub fn host(&mut self, site: impl Into<SiteId>) -> HostId {
        self.hosts.push(HostDecl {
            site: site.into().0,
            timeout: Duration::from_secs(30),
        });
        HostId(self.hosts.len() - 1)
    }

    /// Sets the time-out of the host's SCSI commands.
    pub fn command_timeout(&mut self, host: HostId, timeout: Duration) {
        self.hosts[host.0].timeout = timeout;
    }

    /// The virtualization controller of `site` (one a site): named `ctl-SITE`, its database
    /// `ctl-SITE.redb` in the data folder, its management API on a loopback port. Controllers
    /// are zoned with each other and with every array when the topology has zones.
    pub fn controller(&mut self, site: impl Into<SiteId>) -> ControllerId {
        self.controllers.push(site.into().0);
        ControllerId(self.controllers.len() - 1)
    }

    /// Captures what `array` sends and receives on its link to `path` (pcapng with the
    /// metadata `fcsan pcap replay --as array` needs).
    pub fn capture_array(&mut self, array: ArrayId, path: impl Into<PathBuf>) {
        self.node_captures.arrays.insert(array.0, path.into());
    }

    /// Captures what `host` sends and receives on its link to `path` (pcapng).
    pub fn capture_host(&mut self, host: HostId, path: impl Into<PathBuf>) {
        self.node_captures.hosts.insert(host.0, path.into());
    }

    /// Captures what `controller`'s node sends and receives on its link to `path` (pcapng).
    pub fn capture_controller(&mut self, controller: ControllerId, path: impl Into<PathBuf>) {
        self.node_captures
            .controllers
            .insert(controller.0, path.into());
    }

    /// The controllers' I/O path settings: cache size, lease, load switching, replica rate
    /// ([`controller::io::IoConfig::default`] unless set).
    pub fn controller_io(&mut self, io: controller::io::IoConfig) {
        self.controller_io = io;
    }

    /// The controllers' heartbeat interval (1 s unless set).
    pub fn controller_heartbeat(&mut self, interval: Duration) {
        self.heartbeat = interval;
    }

    /// The controllers' shared key (a fixed one unless set).
    pub fn controller_key(&mut self, key: &[u8]) {
        self.key = key.to_vec();
    }

    /// A zone called `name` of `members`.
    pub fn zone(&mut self, name: &str, members: impl IntoIterator<Item = Member>) {
        self.zones
            .push((name.to_owned(), members.into_iter().collect()));
    }

    /// Names the zone set (`production` unless set).
    pub fn zone_set(&mut self, name: &str) {
        name.clone_into(&mut self.zone_set);
    }

    /// The port name the member will have.
    pub fn port_name(&self, member: impl Into<Member>) -> Wwn {
        match member.into() {
            Member::Host(h) => self.scheme.host_port(number(h.0)),
            Member::Array(a) => self.scheme.array_port(number(a.0)),
            Member::Controller(c) => self
                .scheme
                .controller_port(self.sites[self.controllers[c.0]].domain),
        }
    }

    /// The switch name the site will have.
    pub fn switch_name(&self, site: impl Into<SiteId>) -> Wwn {
        self.scheme.switch_name(self.sites[site.into().0].domain)
    }

    fn check(&self) -> Result<(), InvalidTopology> {
        for (i, s) in self.sites.iter().enumerate() {
            if self.sites[..i].iter().any(|t| t.domain == s.domain) {
                return Err(InvalidTopology::DomainTaken(s.domain));
            }
        }
        for (i, (_, a)) in self.arrays.iter().enumerate() {
            if self.arrays[..i].iter().any(|(_, b)| b.name == a.name) {
                return Err(InvalidTopology::ArrayName(a.name.clone()));
            }
        }
        if self.arrays.len() > MAX_NODES || self.hosts.len() > MAX_NODES {
            return Err(InvalidTopology::TooManyNodes);
        }
        for (i, s) in self.controllers.iter().enumerate() {
            if self.controllers[..i].contains(s) {
                return Err(InvalidTopology::TwoControllers(self.sites[*s].name.clone()));
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            let name = |s: usize| self.sites[s].name.clone();
            if l.dialer == l.listener {
                return Err(InvalidTopology::SelfLink(name(l.dialer)));
            }
            let pair = |k: &LinkDecl| (k.dialer.min(k.listener), k.dialer.max(k.listener));
            if self.links[..i].iter().any(|k| pair(k) == pair(l)) {
                return Err(InvalidTopology::DoubleLink(
                    name(l.dialer),
                    name(l.listener),
                ));
            }
            if !(1..=8).contains(&l.connections) {
                return Err(InvalidTopology::Connections(l.connections));
            }
        }
        for (i, s) in self.sites.iter().enumerate() {
            let links = self
                .links
                .iter()
                .filter(|l| l.dialer == i || l.listener == i)
                .count();
            if links > usize::from(u8::MAX - ISL_PORT_BASE.0) + 1 {
                return Err(InvalidTopology::TooManyLinks(s.name.clone()));
            }
        }
        Ok(())
    }

    /// The order to start the sites in: each after every site it dials.
    fn start_order(&self) -> Result<Vec<usize>, InvalidTopology> {
        let mut started = vec![false; self.sites.len()];
        let mut order = Vec::with_capacity(self.sites.len());
        while order.len() < self.sites.len() {
            let next = (0..self.sites.len()).find(|&s| {
                !started[s]
                    && self
                        .links
                        .iter()
                        .filter(|l| l.dialer == s)
                        .all(|l| started[l.listener])
            });
            let Some(s) = next else {
                let left = (0..self.sites.len())
                    .filter(|&s| !started[s])
                    .map(|s| self.sites[s].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(InvalidTopology::DialCycle(left));
            };
            started[s] = true;
            order.push(s);
        }
        Ok(order)
    }

    /// The inter-switch port of `link` on `site`, one of its ends.
    fn isl_port(&self, link: usize, site: usize) -> PortId {
        let before = self.links[..link]
            .iter()
            .filter(|l| l.dialer == site || l.listener == site)
            .count();
        // check() bounds the links of a site so that this fits.
        PortId(ISL_PORT_BASE.0.saturating_add(before as u8))
    }

    /// The switch configuration of `site`: its F_Ports and the topology's zoning.
    fn switch_config(&self, site: &Site) -> Config {
        let mut config = Config::new(
            site.domain,
            self.scheme.switch_name(site.domain),
            (1..=site.ports).map(PortId),
        );
        if !self.zones.is_empty() {
            let mut zones: Vec<Zone> = self
                .zones
                .iter()
                .map(|(name, members)| {
                    Zone::new(name.clone(), members.iter().map(|&m| self.port_name(m)))
                })
                .collect();
            if !self.controllers.is_empty() {
                // Controllers see each other and every array (their real volumes).
                let members = (0..self.controllers.len())
                    .map(|c| Member::Controller(ControllerId(c)))
                    .chain((0..self.arrays.len()).map(|a| Member::Array(ArrayId(a))));
                zones.push(Zone::new(
                    "controllers".to_owned(),
                    members.map(|m| self.port_name(m)).collect::<Vec<_>>(),
                ));
            }
            config.zoning = Zoning {
                active: Some(ZoneSet {
                    name: self.zone_set.clone(),
                    zones,
                }),
                default_zone: DefaultZone::NoAccess,
            };
        }
        config
    }

    /// Starts everything in the current tokio runtime, LUN files in `data` (created when
    /// missing): the sites in dial order with their relays, then the arrays and hosts, which
    /// log in on their own.
    pub async fn start(self, data: &Path) -> Result<Running, StartError> {
        self.check()?;
        let order = self.start_order()?;
        std::fs::create_dir_all(data).map_err(|source| StartError::Folder {
            path: data.to_path_buf(),
            source,
        })?;
        let mut sites: Vec<Option<RunningSite>> = vec![None; self.sites.len()];
        let mut relays: Vec<Option<Relay>> = vec![None; self.links.len()];
        for s in order {
            let running = self.start_site(s, &sites, &mut relays).await?;
            sites[s] = Some(running);
        }
        // start_order() gave every site once.
        let sites: Vec<RunningSite> = sites.into_iter().flatten().collect();
        let links = self
            .links
            .iter()
            .zip(relays)
            .enumerate()
            .map(|(i, (l, relay))| RunningLink {
                dialer: GatewayId(l.dialer),
                listener: GatewayId(l.listener),
                dialer_port: self.isl_port(i, l.dialer),
                listener_port: self.isl_port(i, l.listener),
                relay,
            })
            .collect();
        let mut arrays = Vec::with_capacity(self.arrays.len());
        for (i, (site, spec)) in self.arrays.iter().enumerate() {
            let n = number(i);
            let (port_name, node_name) = (self.scheme.array_port(n), self.scheme.array_node(n));
            let (luns, tapes) = spec.specs(data);
            let mut nc = NodeConfig::new(port_name, node_name);
            nc.symbolic_name = format!("fcsan disk array {}", spec.name);
            nc.target = true;
            let connector = tap_node(
                tcp_connector(sites[*site].addr),
                self.node_captures.arrays.get(&i).map(PathBuf::as_path),
                || array_metadata(&nc, &luns, &tapes),
            )?;
            let array = DiskArray::start(nc, connector, &luns, &tapes).map_err(|source| {
                StartError::Array {
                    name: spec.name.clone(),
                    source,
                }
            })?;
            logged_in(&array.node, &spec.name).await;
            arrays.push(RunningArray {
                name: spec.name.clone(),
                site: SiteId(*site),
                port_name,
                array,
                luns,
                tapes,
            });
        }
        let mut hosts = Vec::with_capacity(self.hosts.len());
        for (i, h) in self.hosts.iter().enumerate() {
            let n = number(i);
            let port_name = self.scheme.host_port(n);
            let mut nc = NodeConfig::new(port_name, self.scheme.host_node(n));
            nc.initiator = true;
            nc.symbolic_name = "fcsan host".into();
            let connector = tap_node(
                tcp_connector(sites[h.site].addr),
                self.node_captures.hosts.get(&i).map(PathBuf::as_path),
                || node_metadata("host", &nc, serde_json::json!({})),
            )?;
            let node = Node::spawn(nc, connector, Services::new());
            logged_in(&node, "host").await;
            hosts.push(RunningHost {
                site: SiteId(h.site),
                port_name,
                initiator: Initiator::new(node).with_timeout(h.timeout),
            });
        }
        let mut controllers = Vec::with_capacity(self.controllers.len());
        for (i, &site) in self.controllers.iter().enumerate() {
            let capture = self.node_captures.controllers.get(&i).map(PathBuf::as_path);
            controllers.push(
                self.start_controller(site, &sites[site], data, capture)
                    .await?,
            );
        }
        Ok(Running {
            sites,
            links,
            arrays,
            hosts,
            controllers,
        })
    }

    /// Starts the controller of `site`, and its management API on a loopback port.
    async fn start_controller(
        &self,
        site: usize,
        running: &RunningSite,
        data: &Path,
        capture: Option<&Path>,
    ) -> Result<RunningController, StartError> {
        let decl = &self.sites[site];
        let name = format!("ctl-{}", decl.name.to_lowercase());
        let listener = bind(LOOPBACK).await?;
        let api = local_addr(&listener, LOOPBACK)?;
        let mut config = ControllerConfig::new(
            &name,
            &decl.name,
            self.scheme.controller_port(decl.domain),
            data.join(format!("{name}.redb")),
            Key::new(&self.key),
        );
        config.heartbeat = self.heartbeat;
        config.io = self.controller_io.clone();
        config.scan_period = Duration::from_secs(2);
        config.api_url = format!("http://{api}");
        let connector = tap_node(tcp_connector(running.addr), capture, || {
            controller_metadata(&config)
        })?;
        let controller =
            Controller::start(config, connector).map_err(|source| StartError::Controller {
                name: name.clone(),
                source,
            })?;
        let backend: Arc<dyn Management> = Arc::new(controller.backend());
        tokio::spawn(async move {
            if let Err(e) = controller::api::serve(listener, backend).await {
                tracing::error!(error = %e, "management API stopped");
            }
        });
        Ok(RunningController {
            name,
            site: SiteId(site),
            port_name: self.scheme.controller_port(decl.domain),
            controller: Arc::new(controller),
            api,
        })
    }

    /// Starts site `s`, whose dialled gateways run in `sites`; starts the relays of the links
    /// it dials.
    async fn start_site(
        &self,
        s: usize,
        sites: &[Option<RunningSite>],
        relays: &mut [Option<Relay>],
    ) -> Result<RunningSite, StartError> {
        let site = &self.sites[s];
        let config = self.switch_config(site);
        let switch_name = config.switch_name;
        if !site.gateway {
            let sw = switch::start_switch(config, LOOPBACK, site.capture.as_deref()).await?;
            return Ok(RunningSite {
                name: site.name.clone(),
                domain: site.domain,
                switch_name,
                switch: sw.handle,
                gateway: None,
                addr: sw.addr,
            });
        }
        let mut peers = Vec::new();
        for (i, l) in self.links.iter().enumerate() {
            let (peer, dial) = if l.dialer == s {
                // start_order() started the listener first.
                let listener = sites[l.listener]
                    .as_ref()
                    .and_then(|r| r.gateway.as_ref())
                    .map(Gateway::fcip_addr);
                let dial = match (listener, l.relay) {
                    (Some(upstream), Some(impairment)) => {
                        let relay = Relay::start(LOOPBACK, upstream, impairment)
                            .await
                            .map_err(|source| StartError::Relay { upstream, source })?;
                        let addr = relay.local_addr();
                        relays[i] = Some(relay);
                        Some(addr)
                    }
                    (upstream, None) => upstream,
                    (None, Some(_)) => None,
                };
                (l.listener, dial)
            } else if l.listener == s {
                (l.dialer, None)
            } else {
                continue;
            };
            peers.push(PeerConfig {
                fabric: self.scheme.switch_name(self.sites[peer].domain),
                dial,
                domains: Vec::new(),
                port: self.isl_port(i, s),
                connections: l.connections,
            });
        }
        let nodes = bind(LOOPBACK).await?;
        let addr = local_addr(&nodes, LOOPBACK)?;
        let gateway_switch_config = config.clone();
        let config = GatewayConfig {
            switch: config,
            fcip_listen: LOOPBACK,
            peers,
            k_a_tov: K_A_TOV,
            receiver: ReceiverConfig::default(),
            capture: site.fcip_capture.clone(),
        };
        let gateway = crate::capture::start_gateway(config, self.seed ^ u64::from(site.domain))
            .await
            .map_err(|source| StartError::Gateway {
                domain: site.domain,
                source,
            })?;
        if let Some(path) = &site.capture {
            capture_switch(&gateway.switch, &gateway_switch_config, path)?;
        }
        serve_nodes(&gateway.switch, nodes);
        Ok(RunningSite {
            name: site.name.clone(),
            domain: site.domain,
            switch_name,
            switch: gateway.switch.clone(),
            gateway: Some(gateway),
            addr,
        })
    }
}

/// Waits (at most [`LOGIN_WAIT`]) until `node` has logged in with its switch. The switch gives a
/// node the first free port, in the order the nodes' links arrive: arrays and hosts started one
/// after the other, each once the one before it is in, get the same N_Port IDs in every run
/// (site B's array is 020100 and its host 020200, as `fcsan up` prints them), whichever task
/// the runtime happens to run first.
async fn logged_in(node: &Node, what: &str) {
    if let Err(e) = node.wait_online(LOGIN_WAIT).await {
        tracing::warn!(node = %node.config().port_name, what, error = %e, "not logged in yet; starting the next node");
    }
}

/// The scheme's number of the `i`th host or array (from 0): `i + 1`. check() bounds `i`.
fn number(i: usize) -> u16 {
    u16::try_from(i + 1).unwrap_or(u16::MAX)
}

/// A running site.
#[derive(Debug, Clone)]
pub struct RunningSite {
    /// Its name in the topology.
    pub name: String,
    /// Its domain.
    pub domain: u8,
    /// Its switch's name (for a gateway, its FC Fabric Entity WWN).
    pub switch_name: Wwn,
    /// Its switch (for a gateway, the gateway's switch).
    pub switch: SwitchHandle,
    /// The gateway, for a site that is one.
    pub gateway: Option<Gateway>,
    /// Where its switch listens for node links.
    pub addr: SocketAddr,
}

/// A running FCIP link.
#[derive(Debug, Clone)]
pub struct RunningLink {
    /// The gateway that dials.
    pub dialer: GatewayId,
    /// The gateway that listens.
    pub listener: GatewayId,
    /// The link's inter-switch port on the dialer.
    pub dialer_port: PortId,
    /// The link's inter-switch port on the listener.
    pub listener_port: PortId,
    /// The WAN relay the link goes through, if it does.
    pub relay: Option<Relay>,
}

/// A running disk array.
#[derive(Debug, Clone)]
pub struct RunningArray {
    /// Its name in the topology.
    pub name: String,
    /// Its site.
    pub site: SiteId,
    /// Its port name.
    pub port_name: Wwn,
    /// The array.
    pub array: DiskArray,
    /// Its disks, files and all.
    pub luns: Vec<LunSpec>,
    /// Its tapes.
    pub tapes: Vec<TapeSpec>,
}

/// A running host.
#[derive(Debug, Clone)]
pub struct RunningHost {
    /// Its site.
    pub site: SiteId,
    /// Its port name.
    pub port_name: Wwn,
    /// Its FCP initiator (and through it, its node).
    pub initiator: Initiator,
}

/// A running controller.
#[derive(Clone)]
pub struct RunningController {
    /// Its name (`ctl-SITE`).
    pub name: String,
    /// Its site.
    pub site: SiteId,
    /// Its port name.
    pub port_name: Wwn,
    /// The controller.
    pub controller: Arc<Controller>,
    /// Where its management API listens (`http://ADDR`).
    pub api: SocketAddr,
}

impl std::fmt::Debug for RunningController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningController")
            .field("name", &self.name)
            .field("port_name", &self.port_name)
            .field("api", &self.api)
            .finish()
    }
}

/// Everything a [`Topology`] started. Each accessor panics when given an id of another
/// topology that this one does not have.
#[derive(Debug)]
pub struct Running {
    sites: Vec<RunningSite>,
    links: Vec<RunningLink>,
    arrays: Vec<RunningArray>,
    hosts: Vec<RunningHost>,
    controllers: Vec<RunningController>,
}

impl Running {
    /// A site.
    pub fn site(&self, site: impl Into<SiteId>) -> &RunningSite {
        &self.sites[site.into().0]
    }

    /// A gateway site's gateway.
    pub fn gateway(&self, gateway: GatewayId) -> &Gateway {
        match &self.sites[gateway.0].gateway {
            Some(g) => g,
            None => panic!("{gateway:?} is not a gateway of this topology"),
        }
    }

    /// A link.
    pub fn link(&self, link: LinkId) -> &RunningLink {
        &self.links[link.0]
    }

    /// An array.
    pub fn array(&self, array: ArrayId) -> &RunningArray {
        &self.arrays[array.0]
    }

    /// A host.
    pub fn host(&self, host: HostId) -> &RunningHost {
        &self.hosts[host.0]
    }

    /// Every site, in declaration order.
    pub fn sites(&self) -> &[RunningSite] {
        &self.sites
    }

    /// A controller.
    pub fn controller(&self, controller: ControllerId) -> &RunningController {
        &self.controllers[controller.0]
    }

    /// Every controller, in declaration order.
    pub fn controllers(&self) -> &[RunningController] {
        &self.controllers
    }

    /// Bounces every connection of the link (the dialer dials them again).
    pub fn bounce(&self, link: LinkId) {
        let l = &self.links[link.0];
        let listener = self.sites[l.listener.0].switch_name;
        self.gateway(l.dialer).bounce(listener);
    }

    /// Logs every controller, host and array out of the fabric and stops them.
    pub async fn shutdown(&self) {
        for c in &self.controllers {
            c.controller.shutdown().await;
        }
        for h in &self.hosts {
            h.initiator.node().shutdown().await;
        }
        for a in &self.arrays {
            a.array.node.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_default_scheme_names_as_configs_do() {
        let s = WwnScheme::default();
        assert_eq!(s.switch_name(1), Wwn::from_u64(0x1000_0000_c0ff_ee01));
        assert_eq!(s.switch_name(2), Wwn::from_u64(0x1000_0000_c0ff_ee02));
        assert_eq!(s.host_port(1), Wwn::from_u64(0x2100_0000_0000_0001));
        assert_eq!(s.host_node(1), Wwn::from_u64(0x2000_0000_0000_0011));
        assert_eq!(s.array_port(2), Wwn::from_u64(0x2200_0000_0000_0002));
        assert_eq!(s.array_node(2), Wwn::from_u64(0x2000_0000_0000_0002));
    }

    #[test]
    fn test_tag_and_large_numbers() {
        let s = WwnScheme { tag: 0xabcd };
        assert_eq!(s.switch_name(3), Wwn::from_u64(0x1000_abcd_c0ff_ee03));
        assert_eq!(s.host_port(0x123), Wwn::from_u64(0x2100_0000_abcd_0123));
        assert_eq!(s.array_node(16), Wwn::from_u64(0x2000_0000_abcd_0020));
        assert_eq!(s.host_node(16), Wwn::from_u64(0x2000_0000_abcd_0030));
    }

    /// No host's node name is an array's, up to the most the scheme names.
    #[test]
    fn test_node_names_never_collide() {
        let mut seen = std::collections::BTreeSet::new();
        for n in 1..=MAX_NODES as u16 {
            assert!(seen.insert(node_number(n, false)), "array {n}");
            assert!(seen.insert(node_number(n, true)), "host {n}");
        }
    }

    #[test]
    fn test_array_specs() {
        let spec = ArraySpec::new("ssd")
            .disk(Tier::Ssd, 1 << 20)
            .disk_file("/x/y.img", Tier::FastHdd, 2 << 20)
            .tape();
        let (disks, tapes) = spec.specs(Path::new("/data"));
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].path, Path::new("/data/ssd0.img"));
        assert_eq!(disks[0].serial, "SSD0");
        assert_eq!(disks[1].path, Path::new("/x/y.img"));
        assert_eq!(disks[1].lun, Lun::from_index(1).unwrap());
        assert_eq!(disks[1].tier, Tier::FastHdd);
        assert_eq!(tapes[0].lun, Lun::from_index(2).unwrap());
        assert_eq!(tapes[0].serial, "TAPE0");
    }

    #[test]
    fn test_isl_ports_count_per_gateway() {
        let mut t = Topology::new();
        let (a, b, c) = (t.gateway("A", 1), t.gateway("B", 2), t.gateway("C", 3));
        t.link(a, b, 1);
        t.link(c, b, 1);
        assert_eq!(t.isl_port(0, a.0), PortId(100));
        assert_eq!(t.isl_port(0, b.0), PortId(100));
        assert_eq!(t.isl_port(1, b.0), PortId(101));
        assert_eq!(t.isl_port(1, c.0), PortId(100));
        // B listens on both, so it starts first; A and C after it.
        assert_eq!(t.start_order().unwrap(), vec![1, 0, 2]);
    }

    #[test]
    fn test_invalid_topologies() {
        let mut t = Topology::new();
        t.gateway("A", 1);
        t.switch("B", 1);
        assert_eq!(t.check(), Err(InvalidTopology::DomainTaken(1)));

        let mut t = Topology::new();
        let (a, b, c) = (t.gateway("A", 1), t.gateway("B", 2), t.gateway("C", 3));
        t.link(a, b, 1);
        t.link(b, c, 1);
        t.link(c, a, 1);
        assert_eq!(
            t.start_order(),
            Err(InvalidTopology::DialCycle("A, B, C".into()))
        );

        let mut t = Topology::new();
        let (a, b) = (t.gateway("A", 1), t.gateway("B", 2));
        t.link(a, b, 1);
        t.link(b, a, 2);
        assert_eq!(
            t.check(),
            Err(InvalidTopology::DoubleLink("B".into(), "A".into()))
        );

        let mut t = Topology::new();
        let a = t.gateway("A", 1);
        t.link(a, a, 1);
        assert_eq!(t.check(), Err(InvalidTopology::SelfLink("A".into())));

        let mut t = Topology::new();
        let (a, b) = (t.gateway("A", 1), t.gateway("B", 2));
        t.link(a, b, 9);
        assert_eq!(t.check(), Err(InvalidTopology::Connections(9)));

        let mut t = Topology::new();
        let a = t.switch("A", 1);
        t.array(a, ArraySpec::new("x"));
        t.array(a, ArraySpec::new("x"));
        assert_eq!(t.check(), Err(InvalidTopology::ArrayName("x".into())));
    }

    /// Zones reach every switch, by the names the scheme gives; no zone, no zoning.
    #[test]
    fn test_zoning_on_every_switch() {
        let mut t = Topology::new();
        let a = t.gateway("A", 1);
        let b = t.switch("B", 2);
        let host = t.host(a);
        let disk = t.array(b, ArraySpec::new("d"));
        assert_eq!(t.switch_config(&t.sites[0]).zoning, Zoning::default());
        t.zone("z", [host.into(), disk.into()]);
        for site in &t.sites {
            let zoning = t.switch_config(site).zoning;
            assert!(zoning.zoned(t.port_name(host), t.port_name(disk)));
            assert_eq!(zoning.default_zone, DefaultZone::NoAccess);
            assert_eq!(zoning.active.map(|z| z.name), Some("production".into()));
        }
    }
}
