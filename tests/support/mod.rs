//! What several cross-crate tests share: running tshark on a capture.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Runs tshark on `pcap` with `args` (e.g. `-d tcp.port==N,fcip`) and prints `fields`; one
/// map a frame, every occurrence of a field comma-separated. Fails saying how to install
/// tshark when it is missing.
pub fn tshark(pcap: &Path, args: &[&str], fields: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(args).args([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run tshark ({e}). This test needs Wireshark's tshark 4.x: install it with \
             `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y tshark` \
             (scripts/test does this when run as root)"
        )
    });
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            fields
                .iter()
                .zip(l.split('|'))
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
