//! The `[node]` section every FC node's file has, and `host.toml`, which is only that.
//!
//! ```toml
//! [node]
//! switch = "127.0.0.1:7001"              # the switch's listen address
//! port_name = "21:00:00:00:00:00:00:01"
//! node_name = "20:00:00:00:00:00:00:11"
//! e_d_tov_ms = 2000                      # optional, default 2000
//! r_a_tov_ms = 10000                     # optional, default 10000
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use fc_frames::Wwn;
use serde::Deserialize;
use toml::Spanned;

use super::source::{self, Source};
use super::ConfigFileError;

/// FC-FS default E_D_TOV, in milliseconds.
pub(crate) const DEFAULT_E_D_TOV_MS: u32 = 2_000;
/// FC-FS default R_A_TOV, in milliseconds.
pub(crate) const DEFAULT_R_A_TOV_MS: u32 = 10_000;

/// What every FC node (host, disk array) is configured with: where its switch is, its names
/// and its time-out values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSection {
    /// The TCP address the switch listens on for node links.
    pub switch: SocketAddr,
    /// The N_Port's name (WWPN).
    pub port_name: Wwn,
    /// The node's name (WWNN).
    pub node_name: Wwn,
    /// E_D_TOV, the error detect time-out.
    pub e_d_tov: Duration,
    /// R_A_TOV, the resource allocation time-out; longer than E_D_TOV.
    pub r_a_tov: Duration,
}

/// `host.toml`: an FC initiator node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// The node's switch, names and time-outs.
    pub node: NodeSection,
}

/// `[node]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [node] table")]
pub(crate) struct RawNode {
    switch: Spanned<String>,
    port_name: Spanned<String>,
    node_name: Spanned<String>,
    e_d_tov_ms: Option<Spanned<u32>>,
    r_a_tov_ms: Option<Spanned<u32>>,
}

impl RawNode {
    /// The checked section, whose keys are under `section` (`node`).
    pub(crate) fn check(
        &self,
        src: &Source<'_>,
        section: &str,
    ) -> Result<NodeSection, ConfigFileError> {
        let key = |k: &str| format!("{section}.{k}");
        let (e_d_tov, r_a_tov) = timeouts(
            src,
            section,
            self.e_d_tov_ms.as_ref(),
            self.r_a_tov_ms.as_ref(),
        )?;
        Ok(NodeSection {
            switch: source::socket_addr(src, &self.switch, &key("switch"))?,
            port_name: source::wwn(src, &self.port_name, &key("port_name"))?,
            node_name: source::wwn(src, &self.node_name, &key("node_name"))?,
            e_d_tov: Duration::from_millis(e_d_tov.into()),
            r_a_tov: Duration::from_millis(r_a_tov.into()),
        })
    }
}

/// E_D_TOV and R_A_TOV in milliseconds, defaulted, with 0 < E_D_TOV < R_A_TOV (FC-FS: R_A_TOV
/// covers E_D_TOV plus the fabric's delivery time). The error is at `r_a_tov_ms` when that is
/// written and E_D_TOV is not zero, at `e_d_tov_ms` otherwise.
pub(crate) fn timeouts(
    src: &Source<'_>,
    section: &str,
    e_d_tov_ms: Option<&Spanned<u32>>,
    r_a_tov_ms: Option<&Spanned<u32>>,
) -> Result<(u32, u32), ConfigFileError> {
    let e_d = e_d_tov_ms.map_or(DEFAULT_E_D_TOV_MS, |v| *v.get_ref());
    let r_a = r_a_tov_ms.map_or(DEFAULT_R_A_TOV_MS, |v| *v.get_ref());
    if e_d != 0 && e_d < r_a {
        return Ok((e_d, r_a));
    }
    let message = format!(
        "E_D_TOV {e_d} ms and R_A_TOV {r_a} ms: need 0 < e_d_tov_ms < r_a_tov_ms \
         (defaults {DEFAULT_E_D_TOV_MS} and {DEFAULT_R_A_TOV_MS})"
    );
    let at = match (e_d_tov_ms, r_a_tov_ms) {
        (Some(e), _) if e_d == 0 => Some((e, "e_d_tov_ms")),
        (_, Some(r)) => Some((r, "r_a_tov_ms")),
        (Some(e), None) => Some((e, "e_d_tov_ms")),
        (None, None) => None,
    };
    // Both defaults satisfy the rule, so one of the two keys is written.
    let (v, k) = at.ok_or_else(|| src.error(0..0, section, &message))?;
    Err(src.error(v.span(), format!("{section}.{k}"), message))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a host.toml document")]
struct RawHost {
    node: RawNode,
}

/// Loads `host.toml` from `path`.
pub fn load_host(path: &Path) -> Result<HostFile, ConfigFileError> {
    let (file, text, _) = source::read(path)?;
    parse_host(&text, &file)
}

/// Parses the text of a `host.toml`, called `file_name` in errors.
pub fn parse_host(text: &str, file_name: &str) -> Result<HostFile, ConfigFileError> {
    let src = Source::new(file_name, text);
    let raw: RawHost = src.deserialize()?;
    Ok(HostFile {
        node: raw.node.check(&src, "node")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "\
[node]
switch = \"127.0.0.1:7001\"
port_name = \"21:00:00:00:00:00:00:01\"
node_name = \"20:00:00:00:00:00:00:11\"
";

    fn err(text: &str) -> String {
        parse_host(text, "host.toml").unwrap_err().to_string()
    }

    #[test]
    fn test_parse_host() {
        let h = parse_host(HOST, "host.toml").unwrap();
        assert_eq!(h.node.switch, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(h.node.port_name, Wwn::from_u64(0x2100_0000_0000_0001));
        assert_eq!(h.node.node_name, Wwn::from_u64(0x2000_0000_0000_0011));
        assert_eq!(h.node.e_d_tov, Duration::from_secs(2));
        assert_eq!(h.node.r_a_tov, Duration::from_secs(10));
    }

    #[test]
    fn test_timeouts_given() {
        let h = parse_host(
            &format!("{HOST}e_d_tov_ms = 500\nr_a_tov_ms = 1500\n"),
            "host.toml",
        )
        .unwrap();
        assert_eq!(h.node.e_d_tov, Duration::from_millis(500));
        assert_eq!(h.node.r_a_tov, Duration::from_millis(1500));
    }

    #[test]
    fn test_bad_wwn() {
        let text = HOST.replace("21:00:00:00:00:00:00:01", "21:00:00:00:00:00:01");
        assert_eq!(
            err(&text),
            "host.toml:3: key node.port_name: not a WWN: \"21:00:00:00:00:00:01\" \
             (expected eight hex bytes such as 20:00:00:25:b5:00:00:01)"
        );
        let text = HOST.replace("20:00:00:00:00:00:00:11", "0000000000000000");
        assert_eq!(
            err(&text),
            "host.toml:4: key node.node_name: the all-zero WWN means \"no name\" and cannot \
             name a port, node or switch"
        );
    }

    #[test]
    fn test_bad_switch_address() {
        let text = HOST.replace("127.0.0.1:7001", "localhost");
        assert_eq!(
            err(&text),
            "host.toml:2: key node.switch: not an IP address and port: \"localhost\" \
             (expected such as 127.0.0.1:7001)"
        );
    }

    #[test]
    fn test_bad_timeouts() {
        assert_eq!(
            err(&format!("{HOST}e_d_tov_ms = 0\n")),
            "host.toml:5: key node.e_d_tov_ms: E_D_TOV 0 ms and R_A_TOV 10000 ms: need 0 < \
             e_d_tov_ms < r_a_tov_ms (defaults 2000 and 10000)"
        );
        assert_eq!(
            err(&format!("{HOST}r_a_tov_ms = 2000\n")),
            "host.toml:5: key node.r_a_tov_ms: E_D_TOV 2000 ms and R_A_TOV 2000 ms: need 0 < \
             e_d_tov_ms < r_a_tov_ms (defaults 2000 and 10000)"
        );
        assert_eq!(
            err(&format!("{HOST}e_d_tov_ms = -1\n")),
            "host.toml:5: key node.e_d_tov_ms: invalid value: integer `-1`, expected an integer \
             in 0..=4294967295"
        );
    }

    #[test]
    fn test_missing_required_key() {
        let text = HOST.replace("node_name = \"20:00:00:00:00:00:00:11\"\n", "");
        assert_eq!(
            err(&text),
            "host.toml:1: key node.node_name: missing field `node_name`"
        );
        assert_eq!(err(""), "host.toml:1: key node: missing field `node`");
        assert_eq!(
            err("node = 3\n"),
            "host.toml:1: key node: invalid type: integer `3`, expected a [node] table"
        );
    }

    #[test]
    fn test_unknown_key() {
        assert_eq!(
            err(&format!("{HOST}\n[lun]\n")),
            "host.toml:6: key lun: unknown field `lun`, expected `node`"
        );
    }

    #[test]
    fn test_unreadable_file() {
        let e = load_host(Path::new("/nonexistent/host.toml")).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read { .. }));
        assert!(
            e.to_string()
                .starts_with("/nonexistent/host.toml: cannot read: "),
            "{e}"
        );
        assert_eq!(e.line(), None);
    }
}
