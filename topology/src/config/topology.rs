//! `topology.toml`: a whole installation for `fcsan up --config`, started in one process with
//! the [`Topology`] builder — sites (FCIP gateways or plain switches, each with a domain and
//! optionally its virtualization controller), FCIP links between gateways (optionally through
//! the WAN relay), disk arrays with their LUNs, and hosts.
//!
//! ```toml
//! [controllers]                 # optional
//! heartbeat_ms = 1000           # optional, default 1000; 10..=60000
//!
//! [[site]]
//! name = "A"                    # 1-64 of A-Z a-z 0-9 - _ .; the controller is ctl-<name>
//! domain = 1                    # 1..=239, unique
//! gateway = true                # optional, default true; false: a plain switch, no FCIP
//! controller = true             # optional, default false
//! ports = 16                    # optional, default 16: F_Ports 1..=ports (at most 99)
//!
//! [[link]]                      # an FCIP link: `dial` dials `to`; both gateways
//! dial = "A"
//! to = "B"
//! connections = 2               # optional, default 1; 1..=8
//! delay_ms = 10                 # optional: through the WAN relay, this one-way delay
//! rate = "1Gbit"                # optional: through the WAN relay, this cap each way
//!
//! [[array]]
//! name = "ssd"                  # unique; its LUN files are NAME<lun>.img
//! site = "A"
//!   [[array.lun]]               # LUN 0, 1, ... in order
//!   tier = "ssd"                # ssd, fast-hdd, slow-hdd, or tape
//!   size = "256MiB"             # a disk's size (not for a tape)
//!
//! [[host]]                      # an FCP initiator on a site; any number
//! site = "A"
//! ```
//!
//! Names (WWNs) come from the builder's [`crate::WwnScheme`], as in `fcsan up`; there is no
//! zoning (every port sees every other).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fc_node::scsi::Tier;
use serde::Deserialize;
use toml::Spanned;
use wan_relay::{parse_rate, Impairment, MAX_DELAY};

use super::controller::{label, HEARTBEAT_MS};
use super::disk::size;
use super::source::{self, Source};
use super::ConfigFileError;
use crate::{
    ArrayId, ArraySpec, ControllerId, GatewayId, HostId, LinkId, SiteId, Topology, BLOCK_SIZE,
    DEFAULT_PORTS, ISL_PORT_BASE,
};

/// `topology.toml`: what `fcsan up --config` starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyFile {
    /// The sites, in file order.
    pub sites: Vec<SiteSpec>,
    /// The FCIP links, in file order.
    pub links: Vec<LinkSpec>,
    /// The disk arrays with the index of their site in [`TopologyFile::sites`].
    pub arrays: Vec<(usize, ArraySpec)>,
    /// The hosts, each the index of its site.
    pub hosts: Vec<usize>,
    /// The controllers' heartbeat interval.
    pub heartbeat: Duration,
}

/// A site of a `topology.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    /// Its name.
    pub name: String,
    /// Its domain.
    pub domain: u8,
    /// An FCIP gateway (else a plain switch).
    pub gateway: bool,
    /// It has a virtualization controller.
    pub controller: bool,
    /// Its F_Ports.
    pub ports: u8,
}

/// An FCIP link of a `topology.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The index of the site that dials.
    pub dialer: usize,
    /// The index of the site that listens.
    pub listener: usize,
    /// TCP connections.
    pub connections: usize,
    /// Through the WAN relay under this impairment, if at all.
    pub relay: Option<Impairment>,
}

/// A [`TopologyFile`] declared as a [`Topology`], with the ids of its parts in file order.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The topology, ready to start.
    pub topology: Topology,
    /// Each site's id.
    pub sites: Vec<SiteId>,
    /// Each link's id.
    pub links: Vec<LinkId>,
    /// Each array's id.
    pub arrays: Vec<ArrayId>,
    /// Each host's id.
    pub hosts: Vec<HostId>,
    /// Each controller's id, in site order.
    pub controllers: Vec<ControllerId>,
}

impl TopologyFile {
    /// The topology the file describes.
    pub fn declare(&self) -> Declared {
        let mut t = Topology::new();
        t.controller_heartbeat(self.heartbeat);
        let mut gateways: Vec<Option<GatewayId>> = Vec::with_capacity(self.sites.len());
        let mut sites = Vec::with_capacity(self.sites.len());
        for s in &self.sites {
            let id: SiteId = if s.gateway {
                let g = t.gateway(&s.name, s.domain);
                gateways.push(Some(g));
                g.into()
            } else {
                gateways.push(None);
                t.switch(&s.name, s.domain).into()
            };
            if s.ports != DEFAULT_PORTS {
                t.ports(id, s.ports);
            }
            sites.push(id);
        }
        let mut links = Vec::with_capacity(self.links.len());
        for l in &self.links {
            // parse_topology() took only gateways as link ends.
            if let (Some(d), Some(to)) = (gateways[l.dialer], gateways[l.listener]) {
                let id = t.link(d, to, l.connections);
                if let Some(i) = l.relay {
                    t.relay(id, i);
                }
                links.push(id);
            }
        }
        let arrays = self
            .arrays
            .iter()
            .map(|(s, spec)| t.array(sites[*s], spec.clone()))
            .collect();
        let hosts = self.hosts.iter().map(|&s| t.host(sites[s])).collect();
        let controllers = self
            .sites
            .iter()
            .zip(&sites)
            .filter(|(s, _)| s.controller)
            .map(|(_, &id)| t.controller(id))
            .collect();
        Declared {
            topology: t,
            sites,
            links,
            arrays,
            hosts,
            controllers,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a topology.toml document")]
struct RawTopology {
    controllers: Option<RawControllers>,
    #[serde(default)]
    site: Vec<RawSite>,
    #[serde(default)]
    link: Vec<RawLink>,
    #[serde(default)]
    array: Vec<RawArray>,
    #[serde(default)]
    host: Vec<RawHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [controllers] table")]
struct RawControllers {
    heartbeat_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[site]] table")]
struct RawSite {
    name: Spanned<String>,
    domain: Spanned<i64>,
    gateway: Option<bool>,
    controller: Option<bool>,
    ports: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[link]] table")]
struct RawLink {
    dial: Spanned<String>,
    to: Spanned<String>,
    connections: Option<Spanned<i64>>,
    delay_ms: Option<Spanned<i64>>,
    rate: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[array]] table")]
struct RawArray {
    name: Spanned<String>,
    site: Spanned<String>,
    #[serde(default)]
    lun: Vec<RawLun>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[array.lun]] table")]
struct RawLun {
    tier: Spanned<String>,
    size: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[host]] table")]
struct RawHost {
    site: Spanned<String>,
}

/// Loads `topology.toml` from `path`.
pub fn load_topology(path: &Path) -> Result<TopologyFile, ConfigFileError> {
    let (file, text, _) = source::read(path)?;
    parse_topology(&text, &file)
}

/// Parses the text of a `topology.toml`, called `file_name` in errors.
pub fn parse_topology(text: &str, file_name: &str) -> Result<TopologyFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawTopology = src.deserialize()?;
    let heartbeat = match raw
        .controllers
        .as_ref()
        .and_then(|c| c.heartbeat_ms.as_ref())
    {
        None => Duration::from_secs(1),
        Some(v) => Duration::from_millis(source::in_range(
            &src,
            v,
            "controllers.heartbeat_ms",
            HEARTBEAT_MS,
            "heartbeat (ms)",
        )?),
    };
    if raw.site.is_empty() {
        return Err(src.error(
            text.len()..text.len(),
            "site",
            "no [[site]]: a topology needs at least one site",
        ));
    }

    // Each site's index by name, with the line that named it; domains likewise.
    let mut names: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut domains: BTreeMap<u8, usize> = BTreeMap::new();
    let mut sites = Vec::with_capacity(raw.site.len());
    for (i, s) in raw.site.iter().enumerate() {
        let key = format!("site[{i}]");
        let name = label(&src, &s.name, &format!("{key}.name"))?;
        if let Some((_, line)) = names.get(&name) {
            return Err(src.error(
                s.name.span(),
                format!("{key}.name"),
                format!("site {name:?} is already named at line {line}"),
            ));
        }
        names.insert(name.clone(), (i, src.line(s.name.span().start)));
        let domain: u8 =
            source::in_range(&src, &s.domain, &format!("{key}.domain"), 1..0xF0, "domain")?;
        if let Some(line) = domains.get(&domain) {
            return Err(src.error(
                s.domain.span(),
                format!("{key}.domain"),
                format!("domain {domain} is already a site's at line {line}"),
            ));
        }
        domains.insert(domain, src.line(s.domain.span().start));
        let ports = match &s.ports {
            None => DEFAULT_PORTS,
            Some(p) => source::in_range(
                &src,
                p,
                &format!("{key}.ports"),
                1..i64::from(ISL_PORT_BASE.0),
                "F_Port count",
            )?,
        };
        sites.push(SiteSpec {
            name,
            domain,
            gateway: s.gateway.unwrap_or(true),
            controller: s.controller.unwrap_or(false),
            ports,
        });
    }
    let site_of = |v: &Spanned<String>, key: &str| -> Result<usize, ConfigFileError> {
        names.get(v.get_ref()).map(|&(i, _)| i).ok_or_else(|| {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            src.error(
                v.span(),
                key,
                format!(
                    "no site is called {:?} (the sites: {})",
                    v.get_ref(),
                    known.join(", ")
                ),
            )
        })
    };

    let mut links: Vec<LinkSpec> = Vec::with_capacity(raw.link.len());
    for (i, l) in raw.link.iter().enumerate() {
        let key = format!("link[{i}]");
        let mut ends = [0; 2];
        for (end, (v, k)) in ends.iter_mut().zip([(&l.dial, "dial"), (&l.to, "to")]) {
            let k = format!("{key}.{k}");
            let s = site_of(v, &k)?;
            if !sites[s].gateway {
                return Err(src.error(
                    v.span(),
                    k,
                    format!(
                        "site {:?} is a plain switch (gateway = false): only gateways have FCIP links",
                        sites[s].name
                    ),
                ));
            }
            *end = s;
        }
        let [dialer, listener] = ends;
        if dialer == listener {
            return Err(src.error(
                l.to.span(),
                format!("{key}.to"),
                "a link from a site to itself",
            ));
        }
        if let Some(j) = links.iter().position(|o| {
            (o.dialer, o.listener) == (dialer, listener)
                || (o.dialer, o.listener) == (listener, dialer)
        }) {
            return Err(src.error(
                l.to.span(),
                format!("{key}.to"),
                format!("these two sites are already linked by link[{j}]"),
            ));
        }
        let connections = match &l.connections {
            None => 1,
            Some(c) => source::in_range(
                &src,
                c,
                &format!("{key}.connections"),
                1..9,
                "connection count",
            )?,
        };
        let delay = match &l.delay_ms {
            None => None,
            Some(d) => Some(Duration::from_millis(source::in_range(
                &src,
                d,
                &format!("{key}.delay_ms"),
                0..MAX_DELAY.as_millis() as i64 + 1,
                "delay (ms)",
            )?)),
        };
        let rate = match &l.rate {
            None => None,
            Some(r) => Some(
                parse_rate(r.get_ref())
                    .map_err(|e| src.error(r.span(), format!("{key}.rate"), e))?,
            ),
        };
        let relay = (delay.is_some() || rate.is_some()).then(|| Impairment {
            one_way_delay: delay.unwrap_or_default(),
            bandwidth_bps: rate,
        });
        links.push(LinkSpec {
            dialer,
            listener,
            connections,
            relay,
        });
    }

    let mut array_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut arrays = Vec::with_capacity(raw.array.len());
    for (i, a) in raw.array.iter().enumerate() {
        let key = format!("array[{i}]");
        let name = label(&src, &a.name, &format!("{key}.name"))?;
        if let Some(line) = array_names.get(&name) {
            return Err(src.error(
                a.name.span(),
                format!("{key}.name"),
                format!("array {name:?} is already named at line {line}"),
            ));
        }
        array_names.insert(name.clone(), src.line(a.name.span().start));
        let site = site_of(&a.site, &format!("{key}.site"))?;
        if a.lun.is_empty() {
            return Err(src.error(
                a.name.span(),
                format!("{key}.lun"),
                "no [[array.lun]]: an array needs at least one LUN",
            ));
        }
        let mut spec = ArraySpec::new(name);
        for (j, l) in a.lun.iter().enumerate() {
            let key = format!("{key}.lun[{j}]");
            let tier = match l.tier.get_ref().as_str() {
                "ssd" => Some(Tier::Ssd),
                "fast-hdd" => Some(Tier::FastHdd),
                "slow-hdd" => Some(Tier::SlowHdd),
                "tape" => None,
                other => {
                    return Err(src.error(
                        l.tier.span(),
                        format!("{key}.tier"),
                        format!(
                            "unknown tier {other:?} (expected ssd, fast-hdd, slow-hdd or tape)"
                        ),
                    ))
                }
            };
            spec = match (tier, &l.size) {
                (Some(tier), Some(s)) => {
                    spec.disk(tier, size(&src, s, &format!("{key}.size"), BLOCK_SIZE)?)
                }
                (Some(_), None) => {
                    return Err(src.error(
                        l.tier.span(),
                        format!("{key}.size"),
                        "missing: a disk LUN needs a size, such as \"256MiB\"",
                    ))
                }
                (None, None) => spec.tape(),
                (None, Some(s)) => {
                    return Err(src.error(s.span(), format!("{key}.size"), "a tape has no size"))
                }
            };
        }
        arrays.push((site, spec));
    }

    let hosts = raw
        .host
        .iter()
        .enumerate()
        .map(|(i, h)| site_of(&h.site, &format!("host[{i}].site")))
        .collect::<Result<Vec<_>, _>>()?;

    Ok(TopologyFile {
        sites,
        links,
        arrays,
        hosts,
        heartbeat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/topology.toml")
    }

    const SMALL: &str = "[[site]]\nname = \"A\"\ndomain = 1\ncontroller = true\n\n\
                         [[site]]\nname = \"B\"\ndomain = 2\n\n\
                         [[link]]\ndial = \"A\"\nto = \"B\"\n\n\
                         [[array]]\nname = \"d\"\nsite = \"B\"\n  [[array.lun]]\n  tier = \"ssd\"\n  size = \"1MiB\"\n";

    fn err(text: &str) -> String {
        parse_topology(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn test_example_topology() {
        let t = load_topology(&example()).unwrap();
        assert_eq!(t.sites.len(), 3);
        assert!(t.sites.iter().all(|s| s.gateway && s.controller));
        assert_eq!(
            t.sites.iter().map(|s| s.domain).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(t.links.len(), 2);
        assert_eq!((t.links[0].dialer, t.links[0].listener), (0, 1));
        assert_eq!(t.links[0].connections, 2);
        assert_eq!(t.links[0].relay, None);
        let relay = t.links[1].relay.expect("link[1] goes through the relay");
        assert_eq!(relay.one_way_delay, Duration::from_millis(5));
        assert_eq!(relay.bandwidth_bps, Some(1_000_000_000));
        assert_eq!(t.arrays.len(), 3);
        assert_eq!(t.hosts, [0, 2]);
        let d = t.declare();
        assert_eq!(d.controllers.len(), 3);
        assert_eq!(d.links.len(), 2);
    }

    #[test]
    fn test_small() {
        let t = parse_topology(SMALL, "t.toml").unwrap();
        assert_eq!(t.heartbeat, Duration::from_secs(1));
        assert_eq!(t.links[0].connections, 1);
        assert!(t.sites[0].controller && !t.sites[1].controller);
        let d = t.declare();
        assert_eq!(
            (d.sites.len(), d.controllers.len(), d.arrays.len()),
            (2, 1, 1)
        );
    }

    /// One error a check, each naming its file, line and key.
    #[test]
    fn test_errors() {
        assert_eq!(
            err(&SMALL.replace("domain = 2", "domain = 1")),
            "t.toml:8: key site[1].domain: domain 1 is already a site's at line 3"
        );
        assert_eq!(
            err(&SMALL.replace("to = \"B\"", "to = \"C\"")),
            "t.toml:12: key link[0].to: no site is called \"C\" (the sites: A, B)"
        );
        assert_eq!(
            err(&SMALL.replace("to = \"B\"", "to = \"A\"")),
            "t.toml:12: key link[0].to: a link from a site to itself"
        );
        assert_eq!(
            err(&SMALL.replace("domain = 2\n", "domain = 2\ngateway = false\n")),
            "t.toml:13: key link[0].to: site \"B\" is a plain switch (gateway = false): only \
             gateways have FCIP links"
        );
        assert_eq!(
            err(&SMALL.replace("tier = \"ssd\"", "tier = \"ssdd\"")),
            "t.toml:18: key array[0].lun[0].tier: unknown tier \"ssdd\" (expected ssd, \
             fast-hdd, slow-hdd or tape)"
        );
        assert_eq!(
            err(&SMALL.replace("  size = \"1MiB\"\n", "")),
            "t.toml:18: key array[0].lun[0].size: missing: a disk LUN needs a size, such as \
             \"256MiB\""
        );
        assert_eq!(
            err(&SMALL.replace("to = \"B\"\n", "to = \"B\"\nrate = \"1GB\"\n")),
            "t.toml:13: key link[0].rate: unknown unit \"GB\" (use bit, kbit, Mbit or Gbit)"
        );
        assert_eq!(
            err(&SMALL.replace("to = \"B\"\n", "to = \"B\"\nconnections = 9\n")),
            "t.toml:13: key link[0].connections: connection count 9 is outside 1..=8"
        );
        assert_eq!(
            err(&SMALL.replace("domain = 1\n", "domain = 1\nswitches = 2\n")),
            "t.toml:4: key site[0].switches: unknown field `switches`, expected one of `name`, \
             `domain`, `gateway`, `controller`, `ports`"
        );
        assert_eq!(
            err("[controllers]\nheartbeat_ms = 1\n"),
            "t.toml:2: key controllers.heartbeat_ms: heartbeat (ms) 1 is outside 10..=60000"
        );
        assert_eq!(
            err(""),
            "t.toml:1: key site: no [[site]]: a topology needs at least one site"
        );
    }
}
