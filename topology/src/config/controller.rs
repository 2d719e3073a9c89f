//! `controller.toml`: one virtualization controller (CONTROLLER.md) — an FC node on its site's
//! switch with its database, the installation's shared key, its management API and how it
//! finds and ranks the other SANs.
//!
//! ```toml
//! [controller]
//! name = "ctl-a"                         # unique in the installation; letters, digits, - _ .
//! site = "a"                             # its SAN, as the other controllers' priority names it
//! port_name = "23:00:00:00:00:00:00:01"  # its N_Port_Name: the owner key of its records
//! node_name = "23:00:00:00:00:00:01:01"  # optional, default the port name
//! switch = "127.0.0.1:7101"              # the site switch's (gateway's) node address
//! database = "ctl-a.redb"                # relative to the file's folder; created when missing
//! key = "00112233445566778899aabbccddeeff"  # the shared key in hex, at least 16 bytes;
//! # key_file = "fcsan.key"               # or a file holding it (relative to the folder)
//! api = "127.0.0.1:7800"                 # optional, default 127.0.0.1:7800; port 0 picks one
//! heartbeat_ms = 1000                    # optional, default 1000; a peer silent 3 is down
//! peers = ["23:00:00:00:00:00:00:02"]    # optional: peers to call even when the name
//!                                        # server does not list them
//! priority = ["b", "c"]                  # optional: sites the builder takes space from
//!                                        # after its own, in order; the rest after, by name
//! reserve_ttl_ms = 60000                 # optional, default 60000: how long a reservation
//!                                        # for another SAN's builder is held without COMMIT
//! scan_period_ms = 10000                 # optional, default 10000: real-volume rescan
//! discovery_period_ms = 2000             # optional, default 2000: name server query
//! unit = "1MiB"                          # optional, default 1 MiB: the allocation unit,
//!                                        # a multiple of 4096 bytes
//! # The I/O path (its virtual LUNs):
//! cache = "256MiB"                       # optional, default 256 MiB: other SANs' data
//!                                        # kept for reads here; 0 for no cache
//! lease_ms = 3000                        # optional, default 3000: a cache lease's life, and
//!                                        # the longest an owner's write waits for a holder
//!                                        # it cannot reach
//! switch_outstanding = 16                # optional, default 16: commands in flight on a
//!                                        # primary copy past which reads go to the replica
//! replica_rate = "200MiB"                # optional, default 200 MiB (per second): the
//!                                        # replica copier's limit
//! ```
//!
//! Durations are whole milliseconds in keys ending `_ms`, as `e_d_tov_ms` and `k_a_tov_ms`
//! are in the other files. Sizes and rates are whole bytes, or a string with a unit as
//! `disk.toml`'s sizes (`"64MiB"`, `"1GB"`); a rate may end in `/s` (`"200MiB/s"`).

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use controller::driver::ControllerConfig;
use controller::io::IoConfig;
use controller::wire::Key;
use fc_frames::Wwn;
use serde::Deserialize;
use toml::Spanned;

use super::disk::size_text;
use super::source::{self, Source};
use super::ConfigFileError;

/// Where the management API listens when the file does not say: loopback only.
pub const DEFAULT_API: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7800);
/// Heartbeat interval when the file gives none, in milliseconds.
const DEFAULT_HEARTBEAT_MS: i64 = 1_000;
/// Reservation hold time when the file gives none, in milliseconds.
const DEFAULT_RESERVE_TTL_MS: i64 = 60_000;
/// Real-volume rescan period when the file gives none, in milliseconds.
const DEFAULT_SCAN_PERIOD_MS: i64 = 10_000;
/// Peer lookup period when the file gives none, in milliseconds.
const DEFAULT_DISCOVERY_PERIOD_MS: i64 = 2_000;
/// The allocation unit when the file gives none.
const DEFAULT_UNIT_BYTES: u64 = controller::extents::DEFAULT_UNIT_BYTES;
/// Every allocation unit is a whole number of blocks of any LUN (block sizes go up to 4096).
const UNIT_ALIGN: u64 = 4096;
/// Cache leases: 10 ms to 1 minute. A write waits up to a lease for a holder the owner cannot
/// reach, so a lease far above the hosts' command time-out would make their writes time out.
const LEASE_MS: Range<i64> = 10..60_001;
/// Commands in flight past which reads switch to the replica: 1 to 65535.
const SWITCH_OUTSTANDING: Range<i64> = 1..65_536;
/// Heartbeats: 10 ms (loopback tests) to 1 minute.
pub(super) const HEARTBEAT_MS: Range<i64> = 10..60_001;
/// Other periods and hold times: 10 ms to one hour.
const PERIOD_MS: Range<i64> = 10..3_600_001;
/// Longest controller name or site name, in bytes. Both travel in every heartbeat and in the
/// symbolic port name (FC-GS: at most 255 bytes), so they are kept short.
const MAX_LABEL_LEN: usize = 64;

/// `controller.toml`: what the controller role runs with.
#[derive(Debug, Clone)]
pub struct ControllerFile {
    /// The controller (its `api_url` is set when the API listens, see
    /// [`ControllerFile::controller_config`]).
    pub controller: ControllerConfig,
    /// The TCP address the site's switch takes node links on.
    pub switch: SocketAddr,
    /// Where the management API listens.
    pub api: SocketAddr,
}

impl ControllerFile {
    /// The controller's configuration, telling peers its management API is at `api_url`.
    pub fn controller_config(&self, api_url: String) -> ControllerConfig {
        ControllerConfig {
            api_url,
            ..self.controller.clone()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a controller.toml document")]
struct RawControllerFile {
    controller: Spanned<RawController>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [controller] table")]
struct RawController {
    name: Spanned<String>,
    site: Spanned<String>,
    port_name: Spanned<String>,
    node_name: Option<Spanned<String>>,
    switch: Spanned<String>,
    database: Spanned<String>,
    key: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    api: Option<Spanned<String>>,
    heartbeat_ms: Option<Spanned<i64>>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    #[serde(default)]
    priority: Vec<Spanned<String>>,
    reserve_ttl_ms: Option<Spanned<i64>>,
    scan_period_ms: Option<Spanned<i64>>,
    discovery_period_ms: Option<Spanned<i64>>,
    unit: Option<Spanned<toml::Value>>,
    cache: Option<Spanned<toml::Value>>,
    lease_ms: Option<Spanned<i64>>,
    switch_outstanding: Option<Spanned<i64>>,
    replica_rate: Option<Spanned<toml::Value>>,
}

/// Loads `controller.toml` from `path`; relative paths in it are taken from its folder.
pub fn load_controller(path: &Path) -> Result<ControllerFile, ConfigFileError> {
    let (file, text, base) = source::read(path)?;
    parse_controller(&text, &file, &base)
}

/// Parses the text of a `controller.toml`, called `file_name` in errors; relative paths in it
/// (the database, the key file) are taken from `base_dir`. A `key_file` is read here.
pub fn parse_controller(
    text: &str,
    file_name: &str,
    base_dir: &Path,
) -> Result<ControllerFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawControllerFile = src.deserialize()?;
    let table_span = raw.controller.span();
    let c = raw.controller.get_ref();

    let name = label(&src, &c.name, "controller.name")?;
    let site = label(&src, &c.site, "controller.site")?;
    let port_name = source::wwn(&src, &c.port_name, "controller.port_name")?;
    let node_name = match &c.node_name {
        None => port_name,
        Some(v) => source::wwn(&src, v, "controller.node_name")?,
    };
    let switch = source::socket_addr(&src, &c.switch, "controller.switch")?;
    if switch.port() == 0 || switch.ip().is_unspecified() {
        return Err(src.error(
            c.switch.span(),
            "controller.switch",
            format!("cannot connect to {switch}: give the switch's node address and port"),
        ));
    }
    let database = source::path(&src, &c.database, "controller.database", base_dir)?;
    let key = match (&c.key, &c.key_file) {
        (Some(k), None) => hex_key(&src, k, k.get_ref(), "controller.key")?,
        (None, Some(f)) => {
            let path = source::path(&src, f, "controller.key_file", base_dir)?;
            let text = fs::read_to_string(&path).map_err(|e| {
                src.error(
                    f.span(),
                    "controller.key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            hex_key(&src, f, &text, "controller.key_file")?
        }
        (Some(_), Some(f)) => {
            return Err(src.error(
                f.span(),
                "controller.key_file",
                "give the key or a key_file, not both",
            ))
        }
        (None, None) => {
            return Err(src.error(
                table_span,
                "controller.key",
                "missing: the installation's shared key, as key = \"<hex>\" or key_file = \
                 \"<file holding the hex>\"",
            ))
        }
    };
    let api = match &c.api {
        None => DEFAULT_API,
        Some(v) => source::socket_addr(&src, v, "controller.api")?,
    };
    let ms = |v: &Option<Spanned<i64>>, key: &str, range: Range<i64>, default: i64, what| {
        let ms: u64 = match v {
            None => default.unsigned_abs(),
            Some(v) => source::in_range(&src, v, key, range, what)?,
        };
        Ok::<_, ConfigFileError>(Duration::from_millis(ms))
    };
    let heartbeat = ms(
        &c.heartbeat_ms,
        "controller.heartbeat_ms",
        HEARTBEAT_MS,
        DEFAULT_HEARTBEAT_MS,
        "heartbeat (ms)",
    )?;
    let reserve_ttl = ms(
        &c.reserve_ttl_ms,
        "controller.reserve_ttl_ms",
        PERIOD_MS,
        DEFAULT_RESERVE_TTL_MS,
        "reservation time (ms)",
    )?;
    let scan_period = ms(
        &c.scan_period_ms,
        "controller.scan_period_ms",
        PERIOD_MS,
        DEFAULT_SCAN_PERIOD_MS,
        "scan period (ms)",
    )?;
    let discovery_period = ms(
        &c.discovery_period_ms,
        "controller.discovery_period_ms",
        PERIOD_MS,
        DEFAULT_DISCOVERY_PERIOD_MS,
        "discovery period (ms)",
    )?;

    // Where each peer and each site was first given: (key, line).
    let mut seen: BTreeMap<Wwn, (String, usize)> = BTreeMap::new();
    seen.insert(
        port_name,
        (
            "controller.port_name".into(),
            src.line(c.port_name.span().start),
        ),
    );
    let mut peers = Vec::with_capacity(c.peers.len());
    for (i, p) in c.peers.iter().enumerate() {
        let key = format!("controller.peers[{i}]");
        let w = source::wwn(&src, p, &key)?;
        if let Some((other, at)) = seen.get(&w) {
            return Err(src.error(
                p.span(),
                key,
                format!("{w} is already {other} at line {at}"),
            ));
        }
        seen.insert(w, (key, src.line(p.span().start)));
        peers.push(w);
    }
    let mut sites: BTreeMap<String, (String, usize)> = BTreeMap::new();
    sites.insert(
        site.clone(),
        ("controller.site".into(), src.line(c.site.span().start)),
    );
    let mut priority = Vec::with_capacity(c.priority.len());
    for (i, p) in c.priority.iter().enumerate() {
        let key = format!("controller.priority[{i}]");
        let s = label(&src, p, &key)?;
        if let Some((other, at)) = sites.get(&s) {
            return Err(src.error(
                p.span(),
                key,
                format!(
                    "site {s:?} is already {other} at line {at} (its own site comes first anyway)"
                ),
            ));
        }
        sites.insert(s.clone(), (key, src.line(p.span().start)));
        priority.push(s);
    }

    let unit_bytes = match &c.unit {
        None => DEFAULT_UNIT_BYTES,
        Some(v) => unit(&src, v, "controller.unit")?,
    };
    let io = io_config(&src, c)?;

    let mut controller = ControllerConfig::new(&name, &site, port_name, database, key);
    controller.node_name = node_name;
    controller.heartbeat = heartbeat;
    controller.peers = peers;
    controller.priority = priority;
    controller.reserve_ttl = reserve_ttl;
    controller.scan_period = scan_period;
    controller.discovery_period = discovery_period;
    controller.unit_bytes = unit_bytes;
    controller.io = io;
    Ok(ControllerFile {
        controller,
        switch,
        api,
    })
}

/// A controller or site name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
pub(super) fn label(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<String, ConfigFileError> {
    let s = v.get_ref();
    let bad = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    let message = if s.is_empty() {
        "the name is empty".to_owned()
    } else if s.len() > MAX_LABEL_LEN {
        format!("the name is {} bytes long, over {MAX_LABEL_LEN}", s.len())
    } else if let Some(c) = bad {
        format!("{s:?} holds {c:?}: use ASCII letters, digits, -, _ and .")
    } else {
        return Ok(s.clone());
    };
    Err(src.error(v.span(), key, message))
}

/// The shared key from `text` (hex digits, surrounding white space ignored); errors at `v`.
fn hex_key(
    src: &Source<'_>,
    v: &Spanned<String>,
    text: &str,
    key: &str,
) -> Result<Key, ConfigFileError> {
    Key::from_hex(text).map_err(|e| src.error(v.span(), key, e))
}

/// The I/O path's keys, each the default of [`IoConfig`] when left out.
fn io_config(src: &Source<'_>, c: &RawController) -> Result<IoConfig, ConfigFileError> {
    let mut io = IoConfig::default();
    if let Some(v) = &c.cache {
        io.cache_bytes = bytes(src, v, "controller.cache", "cache", "256MiB", false)?;
    }
    if let Some(v) = &c.lease_ms {
        let ms: u64 = source::in_range(src, v, "controller.lease_ms", LEASE_MS, "lease (ms)")?;
        io.lease = Duration::from_millis(ms);
    }
    if let Some(v) = &c.switch_outstanding {
        io.switch_outstanding = source::in_range(
            src,
            v,
            "controller.switch_outstanding",
            SWITCH_OUTSTANDING,
            "commands in flight",
        )?;
    }
    if let Some(v) = &c.replica_rate {
        let rate = bytes(src, v, "controller.replica_rate", "rate", "200MiB/s", true)?;
        if rate == 0 {
            return Err(src.error(
                v.span(),
                "controller.replica_rate",
                "rate 0 would never copy a replica: give bytes per second, such as \"200MiB/s\"",
            ));
        }
        io.replica_rate = rate;
    }
    Ok(io)
}

/// Bytes as an integer or a size string (`"64MiB"`; with `per_second`, also `"64MiB/s"`);
/// `what` names the value in errors ("cache"), `example` is a good one.
fn bytes(
    src: &Source<'_>,
    v: &Spanned<toml::Value>,
    key: &str,
    what: &str,
    example: &str,
    per_second: bool,
) -> Result<u64, ConfigFileError> {
    let err = |message: String| src.error(v.span(), key, message);
    match v.get_ref() {
        toml::Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| err(format!("{what} {n} is negative")))
        }
        toml::Value::String(s) => {
            let text = match s.trim_end().strip_suffix("/s") {
                Some(t) if per_second => t,
                _ => s.as_str(),
            };
            size_text(text).ok_or_else(|| {
                err(format!(
                    "bad size {s:?} (expected whole bytes, or a whole number with B, KiB, \
                     MiB, GiB, TiB, KB, MB, GB or TB, such as \"{example}\")"
                ))
            })
        }
        other => Err(err(format!(
            "a {what} is an integer number of bytes or a string such as \"{example}\", not a {}",
            other.type_str()
        ))),
    }
}

/// The allocation unit: bytes as an integer or a size string, a positive multiple of 4096.
fn unit(src: &Source<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<u64, ConfigFileError> {
    let bytes = bytes(src, v, key, "unit", "1MiB", false)?;
    if bytes == 0 || bytes % UNIT_ALIGN != 0 {
        return Err(src.error(
            v.span(),
            key,
            format!(
                "unit {bytes} bytes is not a positive multiple of {UNIT_ALIGN} (whole blocks \
                 of every block size)"
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::same_key;
    use std::path::PathBuf;

    const CONTROLLER: &str = "\
[controller]
name = \"ctl-a\"
site = \"a\"
port_name = \"23:00:00:00:00:00:00:01\"
switch = \"127.0.0.1:7101\"
database = \"ctl-a.redb\"
key = \"00112233445566778899aabbccddeeff\"
api = \"127.0.0.1:7800\"
heartbeat_ms = 500
peers = [\"23:00:00:00:00:00:00:02\"]
priority = [\"b\", \"c\"]
";

    fn parse(text: &str) -> Result<ControllerFile, ConfigFileError> {
        parse_controller(text, "controller.toml", Path::new("/etc/fcsan"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn test_parse_controller() {
        let c = parse(CONTROLLER).unwrap();
        assert_eq!(c.controller.name, "ctl-a");
        assert_eq!(c.controller.site, "a");
        assert_eq!(c.controller.port_name, Wwn::from_u64(0x2300_0000_0000_0001));
        assert_eq!(c.controller.node_name, c.controller.port_name);
        assert_eq!(c.switch, "127.0.0.1:7101".parse().unwrap());
        assert_eq!(
            c.controller.database,
            PathBuf::from("/etc/fcsan/ctl-a.redb")
        );
        assert_eq!(c.api, "127.0.0.1:7800".parse().unwrap());
        assert_eq!(c.controller.heartbeat, Duration::from_millis(500));
        assert_eq!(
            c.controller.peers,
            vec![Wwn::from_u64(0x2300_0000_0000_0002)]
        );
        assert_eq!(c.controller.priority, vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(c.controller.reserve_ttl, Duration::from_secs(60));
        assert_eq!(c.controller.scan_period, Duration::from_secs(10));
        assert_eq!(c.controller.discovery_period, Duration::from_secs(2));
        assert_eq!(c.controller.unit_bytes, 1 << 20);

        let cc = c.controller_config("http://127.0.0.1:7800".into());
        assert_eq!(cc.name, "ctl-a");
        assert_eq!(cc.site, "a");
        assert_eq!(cc.heartbeat, Duration::from_millis(500));
        assert_eq!(cc.priority, c.controller.priority);
        assert_eq!(cc.peers, c.controller.peers);
        assert_eq!(cc.api_url, "http://127.0.0.1:7800");
        assert_eq!(cc.database, c.controller.database);
        assert!(same_key(&cc.key, "00112233445566778899aabbccddeeff"));
        assert!(!same_key(&cc.key, "00112233445566778899aabbccddeef0"));
    }

    #[test]
    fn test_defaults_and_optional_keys() {
        let text = CONTROLLER
            .replace("api = \"127.0.0.1:7800\"\n", "")
            .replace("heartbeat_ms = 500\n", "")
            .replace("peers = [\"23:00:00:00:00:00:00:02\"]\n", "")
            .replace("priority = [\"b\", \"c\"]\n", "");
        let c = parse(&text).unwrap();
        assert_eq!(c.api, DEFAULT_API);
        assert!(c.api.ip().is_loopback());
        assert_eq!(c.controller.heartbeat, Duration::from_secs(1));
        assert!(c.controller.peers.is_empty() && c.controller.priority.is_empty());

        let c = parse(&format!(
            "{CONTROLLER}node_name = \"23:00:00:00:00:00:01:01\"\nreserve_ttl_ms = 5000\n\
             scan_period_ms = 250\ndiscovery_period_ms = 300\nunit = \"64KiB\"\n"
        ))
        .unwrap();
        assert_eq!(c.controller.node_name, Wwn::from_u64(0x2300_0000_0000_0101));
        assert_eq!(c.controller.reserve_ttl, Duration::from_secs(5));
        assert_eq!(c.controller.scan_period, Duration::from_millis(250));
        assert_eq!(c.controller.discovery_period, Duration::from_millis(300));
        assert_eq!(c.controller.unit_bytes, 64 << 10);
        assert_eq!(
            parse(&format!("{CONTROLLER}unit = 8192\n"))
                .unwrap()
                .controller
                .unit_bytes,
            8192
        );
    }

    #[test]
    fn test_io_keys() {
        // Left out: the I/O path's defaults.
        let c = parse(CONTROLLER).unwrap();
        assert_eq!(c.controller.io, IoConfig::default());
        assert_eq!(c.controller_config(String::new()).io, IoConfig::default());

        let c = parse(&format!(
            "{CONTROLLER}cache = \"64MiB\"\nlease_ms = 500\nswitch_outstanding = 4\n\
             replica_rate = \"10MiB/s\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.controller.io,
            IoConfig {
                cache_bytes: 64 << 20,
                lease: Duration::from_millis(500),
                switch_outstanding: 4,
                replica_rate: 10 << 20,
            }
        );
        assert_eq!(c.controller_config(String::new()).io, c.controller.io);

        // Integers are bytes; 0 is no cache; a rate needs no "/s"; the bounds are taken.
        let c = parse(&format!(
            "{CONTROLLER}cache = 0\nlease_ms = 10\nswitch_outstanding = 65535\n\
             replica_rate = 1000000\n"
        ))
        .unwrap();
        assert_eq!(c.controller.io.cache_bytes, 0);
        assert_eq!(c.controller.io.lease, Duration::from_millis(10));
        assert_eq!(c.controller.io.switch_outstanding, 65535);
        assert_eq!(c.controller.io.replica_rate, 1_000_000);
        let c = parse(&format!(
            "{CONTROLLER}cache = \"1GB\"\nlease_ms = 60000\nswitch_outstanding = 1\n\
             replica_rate = \"1GiB\"\n"
        ))
        .unwrap();
        assert_eq!(c.controller.io.cache_bytes, 1_000_000_000);
        assert_eq!(c.controller.io.lease, Duration::from_secs(60));
        assert_eq!(c.controller.io.switch_outstanding, 1);
        assert_eq!(c.controller.io.replica_rate, 1 << 30);
    }

    #[test]
    fn test_bad_io_keys() {
        assert_eq!(
            err(&format!("{CONTROLLER}cache = -1\n")),
            "controller.toml:12: key controller.cache: cache -1 is negative"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}cache = \"lots\"\n")),
            "controller.toml:12: key controller.cache: bad size \"lots\" (expected whole \
             bytes, or a whole number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, such as \
             \"256MiB\")"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}cache = \"64MiB/s\"\n")),
            "controller.toml:12: key controller.cache: bad size \"64MiB/s\" (expected whole \
             bytes, or a whole number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, such as \
             \"256MiB\")"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}cache = true\n")),
            "controller.toml:12: key controller.cache: a cache is an integer number of bytes \
             or a string such as \"256MiB\", not a boolean"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}lease_ms = 0\n")),
            "controller.toml:12: key controller.lease_ms: lease (ms) 0 is outside 10..=60000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}lease_ms = 60001\n")),
            "controller.toml:12: key controller.lease_ms: lease (ms) 60001 is outside \
             10..=60000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}lease_ms = \"3s\"\n")),
            "controller.toml:12: key controller.lease_ms: invalid type: string \"3s\", \
             expected an integer"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}switch_outstanding = 0\n")),
            "controller.toml:12: key controller.switch_outstanding: commands in flight 0 is \
             outside 1..=65535"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}switch_outstanding = 65536\n")),
            "controller.toml:12: key controller.switch_outstanding: commands in flight 65536 \
             is outside 1..=65535"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}replica_rate = 0\n")),
            "controller.toml:12: key controller.replica_rate: rate 0 would never copy a \
             replica: give bytes per second, such as \"200MiB/s\""
        );
        assert_eq!(
            err(&format!("{CONTROLLER}replica_rate = \"0MiB/s\"\n")),
            "controller.toml:12: key controller.replica_rate: rate 0 would never copy a \
             replica: give bytes per second, such as \"200MiB/s\""
        );
        assert_eq!(
            err(&format!("{CONTROLLER}replica_rate = \"fast\"\n")),
            "controller.toml:12: key controller.replica_rate: bad size \"fast\" (expected \
             whole bytes, or a whole number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, such \
             as \"200MiB/s\")"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}replica_rate = -5\n")),
            "controller.toml:12: key controller.replica_rate: rate -5 is negative"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}replica_rate = 2.5\n")),
            "controller.toml:12: key controller.replica_rate: a rate is an integer number of \
             bytes or a string such as \"200MiB/s\", not a float"
        );
    }

    #[test]
    fn test_key_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("fcsan.key"),
            "00112233445566778899aabbccddeeff\n",
        )
        .unwrap();
        let text = CONTROLLER.replace(
            "key = \"00112233445566778899aabbccddeeff\"",
            "key_file = \"fcsan.key\"",
        );
        let c = parse_controller(&text, "controller.toml", dir.path()).unwrap();
        assert!(same_key(
            &c.controller.key,
            "00112233445566778899aabbccddeeff"
        ));

        let e = parse_controller(
            &text.replace("fcsan.key", "missing.key"),
            "controller.toml",
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("controller.toml:7: key controller.key_file: cannot read "),
            "{e}"
        );
        std::fs::write(dir.path().join("short.key"), "0011").unwrap();
        assert_eq!(
            parse_controller(
                &text.replace("fcsan.key", "short.key"),
                "controller.toml",
                dir.path()
            )
            .unwrap_err()
            .to_string(),
            "controller.toml:7: key controller.key_file: key: 2 bytes is too short a secret \
             (at least 16)"
        );
    }

    #[test]
    fn test_bad_keys() {
        assert_eq!(
            err(&CONTROLLER.replace("ccddeeff\"", "ccddeefg\"")),
            "controller.toml:7: key controller.key: key: 'g' at character 31 is not a hex digit"
        );
        assert_eq!(
            err(&CONTROLLER.replace("ccddeeff\"", "ccddeef\"")),
            "controller.toml:7: key controller.key: key: 31 hex digits is not a whole number \
             of bytes"
        );
        assert_eq!(
            err(&CONTROLLER.replace("ccddeeff\"", "\"")),
            "controller.toml:7: key controller.key: key: 12 bytes is too short a secret (at \
             least 16)"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}key_file = \"k\"\n")),
            "controller.toml:12: key controller.key_file: give the key or a key_file, not both"
        );
        assert_eq!(
            err(&CONTROLLER.replace("key = \"00112233445566778899aabbccddeeff\"\n", "")),
            "controller.toml:1: key controller.key: missing: the installation's shared key, as \
             key = \"<hex>\" or key_file = \"<file holding the hex>\""
        );
    }

    #[test]
    fn test_bad_names() {
        assert_eq!(
            err(&CONTROLLER.replace("\"ctl-a\"", "\"\"")),
            "controller.toml:2: key controller.name: the name is empty"
        );
        assert_eq!(
            err(&CONTROLLER.replace("\"ctl-a\"", "\"ctl a\"")),
            "controller.toml:2: key controller.name: \"ctl a\" holds ' ': use ASCII letters, \
             digits, -, _ and ."
        );
        assert_eq!(
            err(&CONTROLLER.replace("site = \"a\"", &format!("site = \"{}\"", "s".repeat(65)))),
            "controller.toml:3: key controller.site: the name is 65 bytes long, over 64"
        );
        assert_eq!(
            err(&CONTROLLER.replace("[\"b\", \"c\"]", "[\"b\", \"b\"]")),
            "controller.toml:11: key controller.priority[1]: site \"b\" is already \
             controller.priority[0] at line 11 (its own site comes first anyway)"
        );
        assert_eq!(
            err(&CONTROLLER.replace("[\"b\", \"c\"]", "[\"a\"]")),
            "controller.toml:11: key controller.priority[0]: site \"a\" is already \
             controller.site at line 3 (its own site comes first anyway)"
        );
    }

    #[test]
    fn test_bad_wwns() {
        assert_eq!(
            err(&CONTROLLER.replace("00:00:00:02\"]", "00:00:00:01\"]")),
            "controller.toml:10: key controller.peers[0]: 23:00:00:00:00:00:00:01 is already \
             controller.port_name at line 4"
        );
        assert_eq!(
            err(&CONTROLLER.replace("00:00:00:02\"]", "00:00:00:0x\"]")),
            "controller.toml:10: key controller.peers[0]: not a WWN: \
             \"23:00:00:00:00:00:00:0x\" (expected eight hex bytes such as \
             20:00:00:25:b5:00:00:01)"
        );
        assert_eq!(
            err(&CONTROLLER.replace("\"23:00:00:00:00:00:00:01\"", "\"00:00:00:00:00:00:00:00\"")),
            "controller.toml:4: key controller.port_name: the all-zero WWN means \"no name\" \
             and cannot name a port, node or switch"
        );
    }

    #[test]
    fn test_bad_addresses() {
        assert_eq!(
            err(&CONTROLLER.replace("\"127.0.0.1:7101\"", "\"switch-a:7101\"")),
            "controller.toml:5: key controller.switch: not an IP address and port: \
             \"switch-a:7101\" (expected such as 127.0.0.1:7001)"
        );
        assert_eq!(
            err(&CONTROLLER.replace("\"127.0.0.1:7101\"", "\"127.0.0.1:0\"")),
            "controller.toml:5: key controller.switch: cannot connect to 127.0.0.1:0: give the \
             switch's node address and port"
        );
        assert_eq!(
            err(&CONTROLLER.replace("\"127.0.0.1:7800\"", "\"127.0.0.1\"")),
            "controller.toml:8: key controller.api: not an IP address and port: \"127.0.0.1\" \
             (expected such as 127.0.0.1:7001)"
        );
        // Port 0: the system picks one, and the role prints it.
        let c = parse(&CONTROLLER.replace("\"127.0.0.1:7800\"", "\"127.0.0.1:0\"")).unwrap();
        assert_eq!(c.api.port(), 0);
        assert_eq!(
            err(&CONTROLLER.replace("\"ctl-a.redb\"", "\"\"")),
            "controller.toml:6: key controller.database: the path is empty"
        );
    }

    #[test]
    fn test_bad_durations_and_unit() {
        assert_eq!(
            err(&CONTROLLER.replace("heartbeat_ms = 500", "heartbeat_ms = 5")),
            "controller.toml:9: key controller.heartbeat_ms: heartbeat (ms) 5 is outside \
             10..=60000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}reserve_ttl_ms = 0\n")),
            "controller.toml:12: key controller.reserve_ttl_ms: reservation time (ms) 0 is \
             outside 10..=3600000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}scan_period_ms = -1\n")),
            "controller.toml:12: key controller.scan_period_ms: scan period (ms) -1 is outside \
             10..=3600000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}discovery_period_ms = 3600001\n")),
            "controller.toml:12: key controller.discovery_period_ms: discovery period (ms) \
             3600001 is outside 10..=3600000"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}unit = \"1000\"\n")),
            "controller.toml:12: key controller.unit: unit 1000 bytes is not a positive \
             multiple of 4096 (whole blocks of every block size)"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}unit = \"1 furlong\"\n")),
            "controller.toml:12: key controller.unit: bad size \"1 furlong\" (expected whole \
             bytes, or a whole number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB, such as \
             \"1MiB\")"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}unit = 1.5\n")),
            "controller.toml:12: key controller.unit: a unit is an integer number of bytes or \
             a string such as \"1MiB\", not a float"
        );
    }

    #[test]
    fn test_unknown_and_missing_keys() {
        assert_eq!(
            err(&format!("{CONTROLLER}heartbeat = \"1s\"\n")),
            "controller.toml:12: key controller.heartbeat: unknown field `heartbeat`, expected \
             one of `name`, `site`, `port_name`, `node_name`, `switch`, `database`, `key`, \
             `key_file`, `api`, `heartbeat_ms`, `peers`, `priority`, `reserve_ttl_ms`, \
             `scan_period_ms`, `discovery_period_ms`, `unit`, `cache`, `lease_ms`, \
             `switch_outstanding`, `replica_rate`"
        );
        assert_eq!(
            err(&CONTROLLER.replace("database = \"ctl-a.redb\"\n", "")),
            "controller.toml:1: key controller.database: missing field `database`"
        );
        assert_eq!(
            err(&format!("{CONTROLLER}\n[gateway]\n")),
            "controller.toml:13: key gateway: unknown field `gateway`, expected `controller`"
        );
        assert_eq!(
            err(""),
            "controller.toml:1: key controller: missing field `controller`"
        );
    }

    #[test]
    fn test_unreadable_file() {
        let e = load_controller(Path::new("/nonexistent/controller.toml")).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read { .. }));
        assert_eq!(e.line(), None);
    }
}
