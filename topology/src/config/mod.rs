//! The TOML configuration files of the `fcsan` roles, loaded into typed values.
//!
//! Each role that runs as its own process reads one file: `fcsan switch --config switch.toml`
//! ([`load_switch`]), `fcsan gateway --config gateway.toml` ([`load_gateway`]), `fcsan disk
//! --config disk.toml` ([`load_disk`]), `fcsan host --config host.toml` ([`load_host`]) and
//! `fcsan controller --config controller.toml` ([`load_controller`]); `fcsan up --config
//! topology.toml` reads a whole installation to start in one process ([`load_topology`]). Loading parses the TOML,
//! rejects unknown keys, and checks every value, so that a role gets values that are already
//! valid ("parse, don't validate").
//!
//! Every error names the file, the line and the key, in the form compilers use:
//!
//! ```text
//! disk.toml:9: key lun[0].tier: unknown tier "ssdd" (expected ssd, fast-hdd or slow-hdd)
//! ```
//!
//! Array elements are counted from 0 (`lun[0]` is the first `[[lun]]` table). Relative paths
//! in a file (LUN backing files, captures, a controller's database and key file) are taken
//! relative to the file's folder. The repository's `configs/` folder holds examples that work
//! together.

mod controller;
mod disk;
mod gateway;
mod node;
mod source;
mod switch;
mod topology;

use std::io;

pub use controller::{load_controller, parse_controller, ControllerFile, DEFAULT_API};
pub use disk::{load_disk, parse_disk, DiskFile, LunSpec, TapeSpec};
pub use gateway::{load_gateway, parse_gateway, GatewayFile, Peer, DEFAULT_K_A_TOV_MS};
pub use node::{load_host, parse_host, HostFile, NodeSection};
pub use switch::{load_switch, parse_switch, SwitchFile};
pub use topology::{load_topology, parse_topology, Declared, LinkSpec, SiteSpec, TopologyFile};

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file, as it was named.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A key is unknown, missing, or holds a bad value; or the TOML is malformed at a key.
    #[error("{file}:{line}: key {key}: {message}")]
    Key {
        /// The file, as it was named.
        file: String,
        /// The line, counted from 1.
        line: usize,
        /// The key's path: `switch.domain`, `lun[1].tier` (array elements counted from 0).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The TOML is malformed at a place no key names.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file, as it was named.
        file: String,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong, as the TOML parser says it.
        message: String,
    },
}

impl ConfigFileError {
    /// The line the error is on (counted from 1); `None` for an I/O error.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigFileError::Read { .. } => None,
            ConfigFileError::Key { line, .. } | ConfigFileError::Syntax { line, .. } => Some(*line),
        }
    }

    /// The path of the key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigFileError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use fc_frames::scsi::Lun;
    use fc_frames::Wwn;
    use fc_node::scsi::Tier;

    use super::*;

    const HOST: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
    const OUTSIDE: Wwn = Wwn::from_u64(0x2100_0000_0000_0002);
    const SSD: Wwn = Wwn::from_u64(0x2200_0000_0000_0001);
    const HDD: Wwn = Wwn::from_u64(0x2200_0000_0000_0002);

    /// Whether `key` signs a message as the key of hex digits `hex` does.
    pub(super) fn same_key(key: &::controller::wire::Key, hex: &str) -> bool {
        let msg = &::controller::catalogue::messages()[0];
        let other = ::controller::wire::Key::from_hex(hex).unwrap();
        ::controller::wire::encode(msg, key) == ::controller::wire::encode(msg, &other)
    }

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    #[test]
    fn test_example_switch() {
        let s = load_switch(&configs().join("switch.toml")).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(s.capture, Some(configs().join("data/switch.pcap")));
        assert_eq!(s.switch.domain, 1);
        assert_eq!(s.switch.f_ports.len(), 16);
        let zoning = &s.switch.zoning;
        assert_eq!(
            zoning.active.as_ref().map(|z| z.name.as_str()),
            Some("production")
        );
        assert!(zoning.zoned(HOST, SSD));
        assert!(zoning.zoned(HOST, HDD));
        assert!(!zoning.zoned(OUTSIDE, SSD));
        assert!(!zoning.zoned(OUTSIDE, HDD));
        assert!(!zoning.sees_anyone(OUTSIDE));
    }

    #[test]
    fn test_example_disks() {
        let ssd = load_disk(&configs().join("disk-ssd.toml")).unwrap();
        assert_eq!(ssd.node.port_name, SSD);
        assert_eq!(ssd.luns.len(), 1);
        assert_eq!(ssd.luns[0].lun, Lun::ZERO);
        assert_eq!(ssd.luns[0].path, configs().join("data/ssd0.img"));
        assert_eq!(ssd.luns[0].bytes, 256 << 20);
        assert_eq!(ssd.luns[0].tier, Tier::Ssd);
        assert_eq!(ssd.tapes.len(), 1);
        assert_eq!(Some(ssd.tapes[0].lun), Lun::from_index(1));

        let hdd = load_disk(&configs().join("disk-hdd.toml")).unwrap();
        assert_eq!(hdd.node.port_name, HDD);
        assert_eq!(hdd.luns.len(), 1);
        assert_eq!(hdd.luns[0].path, configs().join("data/hdd0.img"));
        assert_eq!(hdd.luns[0].bytes, 256 << 20);
        assert_eq!(hdd.luns[0].tier, Tier::SlowHdd);
        assert!(hdd.tapes.is_empty());
    }

    #[test]
    fn test_example_hosts() {
        assert_eq!(
            load_host(&configs().join("host.toml"))
                .unwrap()
                .node
                .port_name,
            HOST
        );
        assert_eq!(
            load_host(&configs().join("host-outside.toml"))
                .unwrap()
                .node
                .port_name,
            OUTSIDE
        );
    }

    /// Every node file reaches the switch, and no two nodes share a name.
    #[test]
    fn test_examples_work_together() {
        let switch = load_switch(&configs().join("switch.toml")).unwrap();
        let nodes = [
            load_disk(&configs().join("disk-ssd.toml")).unwrap().node,
            load_disk(&configs().join("disk-hdd.toml")).unwrap().node,
            load_host(&configs().join("host.toml")).unwrap().node,
            load_host(&configs().join("host-outside.toml"))
                .unwrap()
                .node,
        ];
        let mut names = std::collections::BTreeSet::new();
        for n in &nodes {
            assert_eq!(n.switch, switch.listen);
            assert!(names.insert(n.port_name) && names.insert(n.node_name));
        }
        assert!(!names.contains(&switch.switch.switch_name));
    }

    /// Site A dials site B; each names the other and the other's domain; no address is used
    /// twice, here or by switch.toml.
    #[test]
    fn test_example_gateways_work_together() {
        let a = load_gateway(&configs().join("gateway-a.toml")).unwrap();
        let b = load_gateway(&configs().join("gateway-b.toml")).unwrap();
        let switch = load_switch(&configs().join("switch.toml")).unwrap();
        assert_eq!((a.peers.len(), b.peers.len()), (1, 1));
        let (pa, pb) = (&a.peers[0], &b.peers[0]);
        assert_eq!(pa.dial, Some(b.fcip_listen));
        assert_eq!(pb.dial, None);
        assert_eq!(b.fcip_listen.port(), ::gateway::FCIP_PORT);
        assert_eq!(pa.fabric, b.switch.switch.switch_name);
        assert_eq!(pb.fabric, a.switch.switch.switch_name);
        // Domains are learned over the link (EFP), none configured.
        assert!(pa.domains.is_empty() && pb.domains.is_empty());
        assert_ne!(a.switch.switch.domain, b.switch.switch.domain);
        assert_eq!(pa.connections, pb.connections);
        assert_eq!(a.k_a_tov, b.k_a_tov);
        let addrs = [
            a.switch.listen,
            a.fcip_listen,
            b.switch.listen,
            b.fcip_listen,
            switch.listen,
        ];
        let unique: std::collections::BTreeSet<_> = addrs.iter().collect();
        assert_eq!(unique.len(), addrs.len(), "{addrs:?}");
    }

    /// Each sample controller logs in to its site's sample gateway, names the other as a peer
    /// and its site first in priority, is zoned with it at both gateways, and shares its key;
    /// no API address is used twice or by a gateway.
    #[test]
    fn test_example_controllers_work_together() {
        let a = load_controller(&configs().join("controller-a.toml")).unwrap();
        assert_eq!(a.controller.io, ::controller::io::IoConfig::default());
        let b = load_controller(&configs().join("controller-b.toml")).unwrap();
        let ga = load_gateway(&configs().join("gateway-a.toml")).unwrap();
        let gb = load_gateway(&configs().join("gateway-b.toml")).unwrap();
        assert_eq!(a.switch, ga.switch.listen);
        assert_eq!(b.switch, gb.switch.listen);
        assert_eq!(
            (a.controller.peers.as_slice(), b.controller.peers.as_slice()),
            (&[b.controller.port_name][..], &[a.controller.port_name][..])
        );
        assert_eq!(
            (
                a.controller.priority.as_slice(),
                b.controller.priority.as_slice()
            ),
            (
                &[b.controller.site.clone()][..],
                &[a.controller.site.clone()][..]
            )
        );
        assert_ne!(a.controller.name, b.controller.name);
        assert_eq!(a.controller.database, configs().join("data/ctl-a.redb"));
        assert_ne!(a.controller.database, b.controller.database);
        assert!(same_key(
            &a.controller.key,
            "00112233445566778899aabbccddeeff"
        ));
        assert!(same_key(
            &b.controller.key,
            "00112233445566778899aabbccddeeff"
        ));
        for g in [&ga, &gb] {
            assert!(g
                .switch
                .switch
                .zoning
                .zoned(a.controller.port_name, b.controller.port_name));
        }
        let addrs = [
            a.api,
            b.api,
            ga.switch.listen,
            ga.fcip_listen,
            gb.switch.listen,
            gb.fcip_listen,
        ];
        let unique: std::collections::BTreeSet<_> = addrs.iter().collect();
        assert_eq!(unique.len(), addrs.len(), "{addrs:?}");
        assert!(a.api.ip().is_loopback() && b.api.ip().is_loopback());
    }

    /// Every file of examples/three-hosts/ loads (a file of another kind fails the test), and
    /// they work together: each node reaches its gateway's switch port on its host's address,
    /// gateway A dials gateway B's FCIP address, both gateways zone every node of the example
    /// together, the controllers share their key, and no name is used twice.
    #[test]
    fn test_three_hosts_example_works_together() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-hosts");
        let (mut gateways, mut nodes, mut controllers) = (Vec::new(), Vec::new(), Vec::new());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            if name.starts_with("gateway-") {
                gateways.push(load_gateway(f).unwrap());
            } else if name.starts_with("disk-") {
                nodes.push(load_disk(f).unwrap().node);
            } else if name.starts_with("host") {
                nodes.push(load_host(f).unwrap().node);
            } else if name.starts_with("controller-") {
                controllers.push(load_controller(f).unwrap());
            } else {
                panic!("{name}: not a role file this test knows");
            }
        }
        assert_eq!((gateways.len(), nodes.len(), controllers.len()), (2, 3, 2));
        let (a, b) = (&gateways[0], &gateways[1]);
        assert_eq!(a.peers[0].dial, Some(b.fcip_listen));
        assert_eq!(a.peers[0].fabric, b.switch.switch.switch_name);
        assert_eq!(b.peers[0].fabric, a.switch.switch.switch_name);
        // Each gateway's switch listens on every address; its nodes use its FCIP host's.
        let switch_of = |addr: std::net::SocketAddr| {
            gateways
                .iter()
                .find(|g| g.fcip_listen.ip() == addr.ip() && g.switch.listen.port() == addr.port())
                .map(|g| g.switch.switch.domain)
        };
        let mut names = std::collections::BTreeSet::new();
        for n in &nodes {
            assert!(switch_of(n.switch).is_some(), "{:?}", n.switch);
            assert!(names.insert(n.port_name) && names.insert(n.node_name));
        }
        for c in &controllers {
            assert!(switch_of(c.switch).is_some(), "{:?}", c.switch);
            assert!(names.insert(c.controller.port_name));
            assert!(same_key(
                &c.controller.key,
                "00112233445566778899aabbccddeeff"
            ));
        }
        for g in &gateways {
            let z = &g.switch.switch.zoning;
            for n in &nodes {
                for c in &controllers {
                    assert!(z.zoned(n.port_name, c.controller.port_name));
                }
            }
            assert!(z.zoned(
                controllers[0].controller.port_name,
                controllers[1].controller.port_name
            ));
        }
        // The documentation addresses of RFC 5737 only.
        for g in &gateways {
            assert_eq!(
                g.fcip_listen.ip().to_string().rsplit_once('.').unwrap().0,
                "192.0.2"
            );
        }
    }

    #[test]
    fn test_error_accessors() {
        let e = parse_host("[node]\nswitch = 1\n", "h.toml").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(e.key(), Some("node.switch"));
    }
}
