//! `gateway.toml`: one FCIP gateway — the switch of `switch.toml` (domain, names, F_Ports for
//! nodes, zoning) plus its FCIP listener, K_A_TOV and its peer gateways.
//!
//! ```toml
//! [switch]                             # as in switch.toml: nodes connect to `listen`
//! domain = 1
//! name = "10:00:00:00:c0:ff:ee:0a"
//! listen = "127.0.0.1:7101"
//! ports = 16
//!
//! [fcip]                               # optional
//! listen = "127.0.0.1:7102"            # optional, default 0.0.0.0:3225; port default 3225
//! k_a_tov_ms = 6000                    # optional, default 6000; 100..=3600000
//!
//! [[peer]]                             # one per peer gateway
//! fabric = "10:00:00:00:c0:ff:ee:0b"   # its switch name (FC Fabric Entity WWN)
//! dial = "127.0.0.1:7202"              # optional: leave out when the peer dials us
//! domains = [2]                        # optional: domains routed to it besides those it
//!                                      # announces (EFP); for a peer without SW_ILS
//! port = 100                           # the inter-switch port its link takes; not an F_Port
//! connections = 2                      # optional, default 1; TCP connections, 1..=8
//!
//! [zoning]                             # optional, as in switch.toml
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fabric::PortId;
use fc_frames::Wwn;
use fcip::engine::ReceiverConfig;
use gateway::{GatewayConfig, PeerConfig, FCIP_PORT};
use serde::Deserialize;
use toml::Spanned;

use super::source::{self, Source};
use super::switch::{check_switch, RawSwitch, RawZoneSet, RawZoning, SwitchFile};
use super::ConfigFileError;

/// K_A_TOV when the file gives none, in milliseconds. RFC 3821 leaves the value to the
/// administrator; FCIP products suggest a few seconds, below the initiators' I/O time-outs.
pub const DEFAULT_K_A_TOV_MS: i64 = 6_000;
/// Shortest K_A_TOV accepted: below it a busy host's scheduling alone declares connections
/// dead.
const MIN_K_A_TOV_MS: i64 = 100;
/// Longest K_A_TOV accepted (one hour).
const MAX_K_A_TOV_MS: i64 = 3_600_000;

/// `gateway.toml`: what the gateway role runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFile {
    /// The switch part: where nodes connect, its FC capture and the switch configuration.
    pub switch: SwitchFile,
    /// Where to listen for FCIP connections from peers.
    pub fcip_listen: SocketAddr,
    /// K_A_TOV announced and kept on every FCIP connection.
    pub k_a_tov: Duration,
    /// The peer gateways, in file order.
    pub peers: Vec<Peer>,
}

/// One `[[peer]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its FC Fabric Entity WWN (its switch name).
    pub fabric: Wwn,
    /// Where to dial it; `None` when it dials us.
    pub dial: Option<SocketAddr>,
    /// Domains routed to it besides those it announces.
    pub domains: Vec<u8>,
    /// The inter-switch port its link takes.
    pub port: PortId,
    /// TCP connections of the link, 1-8.
    pub connections: usize,
}

impl GatewayFile {
    /// The gateway's configuration, writing its FCIP capture to `capture` when given.
    pub fn gateway_config(&self, capture: Option<PathBuf>) -> GatewayConfig {
        GatewayConfig {
            switch: self.switch.switch.clone(),
            fcip_listen: self.fcip_listen,
            peers: self
                .peers
                .iter()
                .map(|p| PeerConfig {
                    fabric: p.fabric,
                    dial: p.dial,
                    domains: p.domains.clone(),
                    port: p.port,
                    connections: p.connections,
                })
                .collect(),
            k_a_tov: self.k_a_tov,
            receiver: ReceiverConfig::default(),
            capture,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a gateway.toml document")]
struct RawGatewayFile {
    switch: RawSwitch,
    fcip: Option<RawFcip>,
    #[serde(default)]
    peer: Vec<RawPeer>,
    zoning: Option<RawZoning>,
    #[serde(default)]
    zoneset: Vec<RawZoneSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [fcip] table")]
struct RawFcip {
    listen: Option<Spanned<String>>,
    k_a_tov_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[peer]] table")]
struct RawPeer {
    fabric: Spanned<String>,
    dial: Option<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<i64>>,
    port: Spanned<i64>,
    connections: Option<Spanned<i64>>,
}

/// Loads `gateway.toml` from `path`; relative paths in it are taken from its folder.
pub fn load_gateway(path: &Path) -> Result<GatewayFile, ConfigFileError> {
    let (file, text, base) = source::read(path)?;
    parse_gateway(&text, &file, &base)
}

/// Parses the text of a `gateway.toml`, called `file_name` in errors; relative paths in it are
/// taken from `base_dir`.
pub fn parse_gateway(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<GatewayFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawGatewayFile = src.deserialize()?;
    let switch = check_switch(
        &src,
        &raw.switch,
        raw.zoning.as_ref(),
        &raw.zoneset,
        base_dir,
    )?;

    let fcip = raw.fcip.as_ref();
    let fcip_listen = match fcip.and_then(|f| f.listen.as_ref()) {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), FCIP_PORT),
        Some(v) => {
            let a = address(&src, v, "fcip.listen")?;
            // Both on one fixed port of one address (or one of them on every address): the
            // second bind would fail at start.
            let l = switch.listen;
            let same_ip = a.ip() == l.ip() || a.ip().is_unspecified() || l.ip().is_unspecified();
            if same_ip && a.port() == l.port() && a.port() != 0 {
                return Err(src.error(
                    v.span(),
                    "fcip.listen",
                    format!("{a} is also switch.listen, where nodes connect"),
                ));
            }
            a
        }
    };
    let k_a_tov_ms: u64 = match fcip.and_then(|f| f.k_a_tov_ms.as_ref()) {
        None => DEFAULT_K_A_TOV_MS.unsigned_abs(),
        Some(v) => source::in_range(
            &src,
            v,
            "fcip.k_a_tov_ms",
            MIN_K_A_TOV_MS..MAX_K_A_TOV_MS + 1,
            "K_A_TOV (ms)",
        )?,
    };

    let mut peers = Vec::with_capacity(raw.peer.len());
    // Where each WWN, domain and port was first given: (key, line).
    let mut fabrics: BTreeMap<Wwn, (String, usize)> = BTreeMap::new();
    let mut domains: BTreeMap<u8, (String, usize)> = BTreeMap::new();
    let mut ports: BTreeMap<PortId, (String, usize)> = BTreeMap::new();
    let config = &switch.switch;
    for (i, p) in raw.peer.iter().enumerate() {
        let key = |k: &str| format!("peer[{i}].{k}");
        let line = |span: std::ops::Range<usize>| src.line(span.start);

        let fabric = source::wwn(&src, &p.fabric, &key("fabric"))?;
        if fabric == config.switch_name {
            return Err(src.error(
                p.fabric.span(),
                key("fabric"),
                format!("{fabric} is this gateway's own switch.name"),
            ));
        }
        if let Some((other, at)) = fabrics.get(&fabric) {
            return Err(src.error(
                p.fabric.span(),
                key("fabric"),
                format!("{fabric} is already {other} at line {at}"),
            ));
        }
        fabrics.insert(fabric, (key("fabric"), line(p.fabric.span())));

        let dial = p
            .dial
            .as_ref()
            .map(|d| address(&src, d, &key("dial")))
            .transpose()?;
        if let Some(d) = dial.filter(|d| d.port() == 0 || d.ip().is_unspecified()) {
            return Err(src.error(
                p.dial.as_ref().map_or(0..0, Spanned::span),
                key("dial"),
                format!("cannot dial {d}: give the peer's address and FCIP port"),
            ));
        }

        let mut peer_domains = Vec::with_capacity(p.domains.len());
        for (j, d) in p.domains.iter().enumerate() {
            let dkey = format!("peer[{i}].domains[{j}]");
            // FC-SW: a switch's domain is one of 01-EF.
            let domain: u8 = source::in_range(&src, d, &dkey, 1..0xF0, "domain")?;
            if domain == config.domain {
                return Err(src.error(
                    d.span(),
                    dkey,
                    format!("domain {domain} is this gateway's own switch.domain"),
                ));
            }
            if let Some((other, at)) = domains.get(&domain) {
                return Err(src.error(
                    d.span(),
                    dkey,
                    format!("domain {domain} is already reached through {other} at line {at}"),
                ));
            }
            domains.insert(domain, (format!("peer[{i}]"), line(d.span())));
            peer_domains.push(domain);
        }

        let port = PortId(source::in_range(
            &src,
            &p.port,
            &key("port"),
            0..256,
            "port number",
        )?);
        if config.is_f_port(port) {
            let last = config.f_ports.keys().next_back().map_or(0, |p| p.0);
            return Err(src.error(
                p.port.span(),
                key("port"),
                format!(
                    "port {} is an F_Port (switch.ports = {} makes ports 1..={last} F_Ports); \
                     pick a number above them",
                    port.0,
                    config.f_ports.len()
                ),
            ));
        }
        if let Some((other, at)) = ports.get(&port) {
            return Err(src.error(
                p.port.span(),
                key("port"),
                format!("port {} is already {other} at line {at}", port.0),
            ));
        }
        ports.insert(port, (key("port"), line(p.port.span())));

        let connections: usize = match &p.connections {
            None => 1,
            Some(c) => source::in_range(
                &src,
                c,
                &key("connections"),
                1..fcip::link::MAX_CONNECTIONS as i64 + 1,
                "connection count",
            )?,
        };

        peers.push(Peer {
            fabric,
            dial,
            domains: peer_domains,
            port,
            connections,
        });
    }

    Ok(GatewayFile {
        switch,
        fcip_listen,
        k_a_tov: Duration::from_millis(k_a_tov_ms),
        peers,
    })
}

/// An IP address with an optional port (FCIP's 3225 when left out): `192.0.2.1`,
/// `192.0.2.1:3225`, `::1`, `[::1]:3225`.
fn address(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<SocketAddr, ConfigFileError> {
    let text = v.get_ref().trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            bare.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, FCIP_PORT))
        })
        .ok_or_else(|| {
            src.error(
                v.span(),
                key,
                format!(
                    "not an IP address with an optional port: {:?} (expected such as \
                     192.0.2.1, 192.0.2.1:3225 or [2001:db8::1]:3225)",
                    v.get_ref()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = "\
[switch]
domain = 1
name = \"10:00:00:00:c0:ff:ee:0a\"
listen = \"127.0.0.1:7101\"
ports = 16

[fcip]
listen = \"127.0.0.1:7102\"
k_a_tov_ms = 2000

[[peer]]
fabric = \"10:00:00:00:c0:ff:ee:0b\"
dial = \"127.0.0.1:7202\"
domains = [2, 4]
port = 100
connections = 2

[[peer]]
fabric = \"10:00:00:00:c0:ff:ee:0c\"
domains = [3]
port = 101

[zoning]
default = \"all-access\"
";

    fn parse(text: &str) -> Result<GatewayFile, ConfigFileError> {
        parse_gateway(text, "gateway.toml", Path::new("/etc/fcsan"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn test_parse_gateway() {
        let g = parse(GATEWAY).unwrap();
        assert_eq!(g.switch.listen, "127.0.0.1:7101".parse().unwrap());
        assert_eq!(g.switch.switch.domain, 1);
        assert_eq!(g.switch.switch.f_ports.len(), 16);
        assert_eq!(g.fcip_listen, "127.0.0.1:7102".parse().unwrap());
        assert_eq!(g.k_a_tov, Duration::from_secs(2));
        assert_eq!(
            g.peers,
            vec![
                Peer {
                    fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0b),
                    dial: Some("127.0.0.1:7202".parse().unwrap()),
                    domains: vec![2, 4],
                    port: PortId(100),
                    connections: 2,
                },
                Peer {
                    fabric: Wwn::from_u64(0x1000_0000_c0ff_ee0c),
                    dial: None,
                    domains: vec![3],
                    port: PortId(101),
                    connections: 1,
                },
            ]
        );
        let c = g.gateway_config(Some(PathBuf::from("a.pcap")));
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].dial, g.peers[0].dial);
        assert_eq!(c.k_a_tov, Duration::from_secs(2));
        assert_eq!(c.capture, Some(PathBuf::from("a.pcap")));
    }

    #[test]
    fn test_defaults() {
        let text = GATEWAY
            .replace(
                "[fcip]\nlisten = \"127.0.0.1:7102\"\nk_a_tov_ms = 2000\n",
                "",
            )
            .replace("connections = 2\n", "");
        let g = parse(&text).unwrap();
        assert_eq!(g.fcip_listen, "0.0.0.0:3225".parse().unwrap());
        assert_eq!(g.k_a_tov, Duration::from_secs(6));
        assert_eq!(g.peers[0].connections, 1);
    }

    #[test]
    fn test_addresses_without_port_take_3225() {
        let g = parse(
            &GATEWAY
                .replace("\"127.0.0.1:7102\"", "\"::1\"")
                .replace("\"127.0.0.1:7202\"", "\"[2001:db8::b]\""),
        )
        .unwrap();
        assert_eq!(g.fcip_listen, "[::1]:3225".parse().unwrap());
        assert_eq!(g.peers[0].dial, Some("[2001:db8::b]:3225".parse().unwrap()));
    }

    #[test]
    fn test_bad_connections() {
        for bad in ["0", "9", "-1"] {
            assert_eq!(
                err(&GATEWAY.replace("connections = 2", &format!("connections = {bad}"))),
                format!(
                    "gateway.toml:16: key peer[0].connections: connection count {bad} is \
                     outside 1..=8"
                )
            );
        }
    }

    #[test]
    fn test_port_clashing_with_an_f_port() {
        assert_eq!(
            err(&GATEWAY.replace("port = 101", "port = 16")),
            "gateway.toml:21: key peer[1].port: port 16 is an F_Port (switch.ports = 16 makes \
             ports 1..=16 F_Ports); pick a number above them"
        );
    }

    #[test]
    fn test_port_taken_by_another_peer() {
        assert_eq!(
            err(&GATEWAY.replace("port = 101", "port = 100")),
            "gateway.toml:21: key peer[1].port: port 100 is already peer[0].port at line 15"
        );
    }

    #[test]
    fn test_port_out_of_range() {
        assert_eq!(
            err(&GATEWAY.replace("port = 101", "port = 256")),
            "gateway.toml:21: key peer[1].port: port number 256 is outside 0..=255"
        );
    }

    #[test]
    fn test_bad_peer_wwn() {
        assert_eq!(
            err(&GATEWAY.replace("c0:ff:ee:0c", "c0:ff:ee:0g")),
            "gateway.toml:19: key peer[1].fabric: not a WWN: \"10:00:00:00:c0:ff:ee:0g\" \
             (expected eight hex bytes such as 20:00:00:25:b5:00:00:01)"
        );
        assert_eq!(
            err(&GATEWAY.replace("c0:ff:ee:0c", "c0:ff:ee:0a")),
            "gateway.toml:19: key peer[1].fabric: 10:00:00:00:c0:ff:ee:0a is this gateway's \
             own switch.name"
        );
        assert_eq!(
            err(&GATEWAY.replace("c0:ff:ee:0c", "c0:ff:ee:0b")),
            "gateway.toml:19: key peer[1].fabric: 10:00:00:00:c0:ff:ee:0b is already \
             peer[0].fabric at line 12"
        );
    }

    #[test]
    fn test_bad_addresses() {
        assert_eq!(
            err(&GATEWAY.replace("\"127.0.0.1:7202\"", "\"peer-b:3225\"")),
            "gateway.toml:13: key peer[0].dial: not an IP address with an optional port: \
             \"peer-b:3225\" (expected such as 192.0.2.1, 192.0.2.1:3225 or \
             [2001:db8::1]:3225)"
        );
        assert_eq!(
            err(&GATEWAY.replace("\"127.0.0.1:7102\"", "\"127.0.0.1:99999\"")),
            "gateway.toml:8: key fcip.listen: not an IP address with an optional port: \
             \"127.0.0.1:99999\" (expected such as 192.0.2.1, 192.0.2.1:3225 or \
             [2001:db8::1]:3225)"
        );
        assert_eq!(
            err(&GATEWAY.replace("\"127.0.0.1:7202\"", "\"127.0.0.1:0\"")),
            "gateway.toml:13: key peer[0].dial: cannot dial 127.0.0.1:0: give the peer's \
             address and FCIP port"
        );
        assert_eq!(
            err(&GATEWAY.replace("\"127.0.0.1:7102\"", "\"127.0.0.1:7101\"")),
            "gateway.toml:8: key fcip.listen: 127.0.0.1:7101 is also switch.listen, where \
             nodes connect"
        );
    }

    #[test]
    fn test_bad_domains() {
        assert_eq!(
            err(&GATEWAY.replace("domains = [2, 4]", "domains = [2, 240]")),
            "gateway.toml:14: key peer[0].domains[1]: domain 240 is outside 1..=239"
        );
        assert_eq!(
            err(&GATEWAY.replace("domains = [2, 4]", "domains = [1]")),
            "gateway.toml:14: key peer[0].domains[0]: domain 1 is this gateway's own \
             switch.domain"
        );
        assert_eq!(
            err(&GATEWAY.replace("domains = [3]", "domains = [4]")),
            "gateway.toml:20: key peer[1].domains[0]: domain 4 is already reached through \
             peer[0] at line 14"
        );
        // No static domain at all is fine: the peer announces its own.
        let g = parse(&GATEWAY.replace("domains = [3]\n", "")).expect("no domains");
        assert!(g.peers[1].domains.is_empty());
    }

    #[test]
    fn test_bad_k_a_tov() {
        assert_eq!(
            err(&GATEWAY.replace("k_a_tov_ms = 2000", "k_a_tov_ms = 10")),
            "gateway.toml:9: key fcip.k_a_tov_ms: K_A_TOV (ms) 10 is outside 100..=3600000"
        );
    }

    #[test]
    fn test_unknown_and_missing_peer_keys() {
        assert_eq!(
            err(&GATEWAY.replace("port = 101", "port = 101\nconection = 2")),
            "gateway.toml:22: key peer[1].conection: unknown field `conection`, expected one \
             of `fabric`, `dial`, `domains`, `port`, `connections`"
        );
        assert_eq!(
            err(&GATEWAY.replace("port = 101\n", "")),
            "gateway.toml:18: key peer[1].port: missing field `port`"
        );
        assert_eq!(
            err(&GATEWAY.replace("[fcip]", "[fcip]\nport = 3225")),
            "gateway.toml:8: key fcip.port: unknown field `port`, expected `listen` or \
             `k_a_tov_ms`"
        );
    }

    #[test]
    fn test_switch_part_errors_as_in_switch_toml() {
        assert_eq!(
            err(&GATEWAY.replace("ports = 16", "ports = 256")),
            "gateway.toml:5: key switch.ports: port count 256 is outside 1..=255"
        );
    }
}
