//! `switch.toml`: one FC switch, its F_Ports, its listen address and its zoning.
//!
//! ```toml
//! [switch]
//! domain = 1                           # 1..=239 (FC-SW: domain IDs 01-EF)
//! name = "10:00:00:00:c0:ff:ee:01"     # the switch WWN
//! listen = "127.0.0.1:7001"            # TCP address nodes connect to
//! ports = 16                           # F_Ports 1..=ports; 1..=255
//! e_d_tov_ms = 2000                    # optional, default 2000
//! r_a_tov_ms = 10000                   # optional, default 10000
//! capture = "switch.pcap"              # optional, relative to the file's folder
//!
//! [zoning]                             # optional
//! default = "all-access"               # or "no-access"; applies with no active zone set
//! active = "production"                # optional; names a [[zoneset]]
//!
//! [[zoneset]]
//! name = "production"
//!   [[zoneset.zone]]
//!   name = "host-a"
//!   members = ["21:00:00:00:00:00:00:01", "22:00:00:00:00:00:00:01"]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fabric::{Config, ConfigError, DefaultZone, PortId, Zone, ZoneSet, Zoning};
use serde::Deserialize;
use toml::Spanned;

use super::node;
use super::source::{self, Source};
use super::ConfigFileError;

/// `switch.toml`: what the switch role runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchFile {
    /// The TCP address node links connect to.
    pub listen: SocketAddr,
    /// Where to write a pcap of every frame, if anywhere (resolved against the file's folder).
    pub capture: Option<PathBuf>,
    /// The switch core's configuration, validated.
    pub switch: Config,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a switch.toml document")]
struct RawSwitchFile {
    switch: RawSwitch,
    zoning: Option<RawZoning>,
    #[serde(default)]
    zoneset: Vec<RawZoneSet>,
}

/// `[switch]` as written (also the switch part of `gateway.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [switch] table")]
pub(super) struct RawSwitch {
    domain: Spanned<i64>,
    name: Spanned<String>,
    listen: Spanned<String>,
    ports: Spanned<i64>,
    e_d_tov_ms: Option<Spanned<u32>>,
    r_a_tov_ms: Option<Spanned<u32>>,
    capture: Option<Spanned<String>>,
}

/// `[zoning]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [zoning] table")]
pub(super) struct RawZoning {
    default: Option<Spanned<String>>,
    active: Option<Spanned<String>>,
}

/// One `[[zoneset]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[zoneset]] table")]
pub(super) struct RawZoneSet {
    name: Spanned<String>,
    #[serde(default)]
    zone: Vec<RawZone>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[zoneset.zone]] table")]
struct RawZone {
    name: Spanned<String>,
    members: Vec<Spanned<String>>,
}

/// Loads `switch.toml` from `path`; relative paths in it are taken from its folder.
pub fn load_switch(path: &Path) -> Result<SwitchFile, ConfigFileError> {
    let (file, text, base) = source::read(path)?;
    parse_switch(&text, &file, &base)
}

/// Parses the text of a `switch.toml`, called `file_name` in errors; relative paths in it are
/// taken from `base_dir`.
pub fn parse_switch(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<SwitchFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawSwitchFile = src.deserialize()?;
    check_switch(
        &src,
        &raw.switch,
        raw.zoning.as_ref(),
        &raw.zoneset,
        base_dir,
    )
}

/// The checked switch part of a file: `[switch]`, `[zoning]` and the `[[zoneset]]`s.
pub(super) fn check_switch(
    src: &Source<'_>,
    s: &RawSwitch,
    raw_zoning: Option<&RawZoning>,
    zonesets: &[RawZoneSet],
    base_dir: &Path,
) -> Result<SwitchFile, ConfigFileError> {
    let src = *src;

    // FC-SW: domain IDs 00 and F0-FF are reserved; a switch takes one of 01-EF.
    let domain: u8 = source::in_range(&src, &s.domain, "switch.domain", 1..0xF0, "domain")
        .map_err(|_| {
            src.error(
                s.domain.span(),
                "switch.domain",
                format!(
                    "domain {} is outside 1..=239 (0x01..=0xef; FC-SW reserves 0x00 and \
                     0xf0..=0xff)",
                    s.domain.get_ref()
                ),
            )
        })?;
    let name = source::wwn(&src, &s.name, "switch.name")?;
    let listen = source::socket_addr(&src, &s.listen, "switch.listen")?;
    let ports: u8 = source::in_range(&src, &s.ports, "switch.ports", 1..256, "port count")?;
    let (e_d_tov, r_a_tov) =
        node::timeouts(&src, "switch", s.e_d_tov_ms.as_ref(), s.r_a_tov_ms.as_ref())?;
    let capture = s
        .capture
        .as_ref()
        .map(|c| source::path(&src, c, "switch.capture", base_dir))
        .transpose()?;

    let mut switch = Config::new(domain, name, (1..=ports).map(PortId));
    switch.e_d_tov = e_d_tov;
    switch.r_a_tov = r_a_tov;
    switch.zoning = zoning(&src, raw_zoning, zonesets)?;
    // The checks above already hold what validate() checks; it stays the authority.
    switch.validate().map_err(|e| match e {
        ConfigError::BadDomain(_) => src.error(s.domain.span(), "switch.domain", e),
        _ => src.error(s.domain.span().start..s.domain.span().start, "switch", e),
    })?;

    Ok(SwitchFile {
        listen,
        capture,
        switch,
    })
}

/// The zone sets, checked (unique names, WWN members), and the active one looked up.
fn zoning(
    src: &Source<'_>,
    raw: Option<&RawZoning>,
    sets: &[RawZoneSet],
) -> Result<Zoning, ConfigFileError> {
    let mut by_name: BTreeMap<&str, (ZoneSet, usize)> = BTreeMap::new();
    for (i, set) in sets.iter().enumerate() {
        let key = format!("zoneset[{i}]");
        let set_name = set.name.get_ref().as_str();
        if let Some((_, line)) = by_name.get(set_name) {
            return Err(src.error(
                set.name.span(),
                format!("{key}.name"),
                format!("zone set {set_name:?} is already defined at line {line}"),
            ));
        }
        let mut zones: Vec<(Zone, usize)> = Vec::with_capacity(set.zone.len());
        for (j, z) in set.zone.iter().enumerate() {
            let zkey = format!("{key}.zone[{j}]");
            if let Some((_, line)) = zones.iter().find(|(zz, _)| zz.name == *z.name.get_ref()) {
                return Err(src.error(
                    z.name.span(),
                    format!("{zkey}.name"),
                    format!(
                        "zone {:?} is already defined in this zone set at line {line}",
                        z.name.get_ref()
                    ),
                ));
            }
            let mut members = Vec::with_capacity(z.members.len());
            for (m, member) in z.members.iter().enumerate() {
                members.push(source::wwn(src, member, &format!("{zkey}.members[{m}]"))?);
            }
            zones.push((
                Zone::new(z.name.get_ref().clone(), members),
                src.line(z.name.span().start),
            ));
        }
        let zone_set = ZoneSet {
            name: set_name.to_owned(),
            zones: zones.into_iter().map(|(z, _)| z).collect(),
        };
        by_name.insert(set_name, (zone_set, src.line(set.name.span().start)));
    }

    let mut zoning = Zoning::default();
    let Some(raw) = raw else {
        return Ok(zoning);
    };
    if let Some(d) = &raw.default {
        zoning.default_zone = match d.get_ref().as_str() {
            "all-access" => DefaultZone::AllAccess,
            "no-access" => DefaultZone::NoAccess,
            other => {
                return Err(src.error(
                    d.span(),
                    "zoning.default",
                    format!("unknown default zone {other:?} (expected all-access or no-access)"),
                ))
            }
        };
    }
    if let Some(active) = &raw.active {
        let Some((set, _)) = by_name.remove(active.get_ref().as_str()) else {
            let defined = if sets.is_empty() {
                "none is defined".to_owned()
            } else {
                let names: Vec<String> = sets
                    .iter()
                    .map(|s| format!("{:?}", s.name.get_ref()))
                    .collect();
                format!("defined: {}", names.join(", "))
            };
            return Err(src.error(
                active.span(),
                "zoning.active",
                format!("no [[zoneset]] named {:?} ({defined})", active.get_ref()),
            ));
        };
        zoning.active = Some(set);
    }
    Ok(zoning)
}

#[cfg(test)]
mod tests {
    use super::*;

    use fc_frames::Wwn;

    const SWITCH: &str = "\
[switch]
domain = 1
name = \"10:00:00:00:c0:ff:ee:01\"
listen = \"127.0.0.1:7001\"
ports = 16
capture = \"switch.pcap\"

[zoning]
default = \"no-access\"
active = \"production\"

[[zoneset]]
name = \"production\"
  [[zoneset.zone]]
  name = \"host-a\"
  members = [\"21:00:00:00:00:00:00:01\", \"22:00:00:00:00:00:00:01\"]

[[zoneset]]
name = \"test\"
";

    fn err(text: &str) -> String {
        parse_switch(text, "switch.toml", Path::new("/etc/fcsan"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn test_parse_switch() {
        let s = parse_switch(SWITCH, "switch.toml", Path::new("/etc/fcsan")).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(s.capture, Some(PathBuf::from("/etc/fcsan/switch.pcap")));
        let c = &s.switch;
        assert_eq!(c.domain, 1);
        assert_eq!(c.switch_name, Wwn::from_u64(0x1000_0000_c0ff_ee01));
        assert_eq!(c.f_ports.len(), 16);
        assert!(c.is_f_port(PortId(1)) && c.is_f_port(PortId(16)));
        assert!(!c.is_f_port(PortId(0)) && !c.is_f_port(PortId(17)));
        assert_eq!((c.e_d_tov, c.r_a_tov), (2_000, 10_000));
        assert_eq!(c.zoning.default_zone, DefaultZone::NoAccess);
        let active = c.zoning.active.as_ref().unwrap();
        assert_eq!(active.name, "production");
        let host = Wwn::from_u64(0x2100_0000_0000_0001);
        let disk = Wwn::from_u64(0x2200_0000_0000_0001);
        assert!(c.zoning.zoned(host, disk));
        assert!(!c.zoning.zoned(host, Wwn::from_u64(0x2200_0000_0000_0002)));
    }

    #[test]
    fn test_minimal_switch() {
        let text = "[switch]\ndomain = 0xef\nname = \"1000000000000001\"\n\
                    listen = \"[::1]:7001\"\nports = 255\nr_a_tov_ms = 4000\n";
        let s = parse_switch(text, "switch.toml", Path::new("")).unwrap();
        assert_eq!(s.switch.domain, 0xEF);
        assert_eq!(s.switch.f_ports.len(), 255);
        assert_eq!(s.switch.r_a_tov, 4_000);
        assert_eq!(s.capture, None);
        assert_eq!(s.switch.zoning, Zoning::default());
    }

    #[test]
    fn test_bad_domain() {
        for bad in ["0", "240", "-1", "1000"] {
            assert_eq!(
                err(&SWITCH.replace("domain = 1", &format!("domain = {bad}"))),
                format!(
                    "switch.toml:2: key switch.domain: domain {bad} is outside 1..=239 \
                     (0x01..=0xef; FC-SW reserves 0x00 and 0xf0..=0xff)"
                )
            );
        }
    }

    #[test]
    fn test_bad_ports() {
        assert_eq!(
            err(&SWITCH.replace("ports = 16", "ports = 256")),
            "switch.toml:5: key switch.ports: port count 256 is outside 1..=255"
        );
    }

    #[test]
    fn test_bad_switch_timeouts() {
        assert_eq!(
            err(&SWITCH.replace("ports = 16", "ports = 16\ne_d_tov_ms = 20000")),
            "switch.toml:6: key switch.e_d_tov_ms: E_D_TOV 20000 ms and R_A_TOV 10000 ms: \
             need 0 < e_d_tov_ms < r_a_tov_ms (defaults 2000 and 10000)"
        );
    }

    #[test]
    fn test_bad_switch_name() {
        assert_eq!(
            err(&SWITCH.replace("10:00:00:00:c0:ff:ee:01", "10:00:00:00:c0:ff:ee:zz")),
            "switch.toml:3: key switch.name: not a WWN: \"10:00:00:00:c0:ff:ee:zz\" \
             (expected eight hex bytes such as 20:00:00:25:b5:00:00:01)"
        );
    }

    #[test]
    fn test_bad_member_wwn() {
        assert_eq!(
            err(&SWITCH.replace("\"22:00:00:00:00:00:00:01\"", "\"22:00\"")),
            "switch.toml:16: key zoneset[0].zone[0].members[1]: not a WWN: \"22:00\" \
             (expected eight hex bytes such as 20:00:00:25:b5:00:00:01)"
        );
    }

    #[test]
    fn test_active_zoneset_missing() {
        assert_eq!(
            err(&SWITCH.replace("active = \"production\"", "active = \"prod\"")),
            "switch.toml:10: key zoning.active: no [[zoneset]] named \"prod\" \
             (defined: \"production\", \"test\")"
        );
    }

    #[test]
    fn test_duplicate_zoneset() {
        assert_eq!(
            err(&SWITCH.replace("name = \"test\"", "name = \"production\"")),
            "switch.toml:19: key zoneset[1].name: zone set \"production\" is already defined \
             at line 13"
        );
    }

    #[test]
    fn test_duplicate_zone() {
        let text = SWITCH.replace(
            "name = \"test\"\n",
            "name = \"test\"\n[[zoneset.zone]]\nname = \"z\"\nmembers = []\n\
             [[zoneset.zone]]\nname = \"z\"\nmembers = []\n",
        );
        assert_eq!(
            err(&text),
            "switch.toml:24: key zoneset[1].zone[1].name: zone \"z\" is already defined in \
             this zone set at line 21"
        );
    }

    #[test]
    fn test_bad_default_zone() {
        assert_eq!(
            err(&SWITCH.replace("\"no-access\"", "\"none\"")),
            "switch.toml:9: key zoning.default: unknown default zone \"none\" \
             (expected all-access or no-access)"
        );
    }

    #[test]
    fn test_unknown_switch_key() {
        assert_eq!(
            err(&SWITCH.replace("ports = 16", "port = 16")),
            "switch.toml:5: key switch.port: unknown field `port`, expected one of `domain`, \
             `name`, `listen`, `ports`, `e_d_tov_ms`, `r_a_tov_ms`, `capture`"
        );
        assert_eq!(
            err(&SWITCH.replace("  name = \"host-a\"", "  name = \"host-a\"\n  member = []")),
            "switch.toml:16: key zoneset[0].zone[0].member: unknown field `member`, \
             expected `name` or `members`"
        );
    }

    #[test]
    fn test_missing_switch_key() {
        assert_eq!(
            err(&SWITCH.replace("listen = \"127.0.0.1:7001\"\n", "")),
            "switch.toml:1: key switch.listen: missing field `listen`"
        );
    }
}
