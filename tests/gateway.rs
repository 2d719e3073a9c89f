//! Two `fcsan gateway` processes, as two sites run them: B listens, A dials it with two
//! connections and captures its FCIP traffic (`--capture`). Once the link is up and an LKA has
//! crossed it, both are stopped with SIGTERM: A prints its link with per-connection counters,
//! B (stopped after it saw the link go down) the closed connections' totals; tshark reads A's
//! capture — the Special Frame exchange of each connection as
//! sent and echoed, an LKA and its LS_ACC, between the real TCP endpoints, with nothing
//! malformed.
//!
//! tshark is a real dependency: without it this test fails and says how to install it.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const A_NAME: &str = "10:00:00:00:c0:ff:ee:0a";
const B_NAME: &str = "10:00:00:00:c0:ff:ee:0b";
/// Long enough that a hang fails the test, not a slow machine.
const WAIT: Duration = Duration::from_secs(60);
/// Wireshark's severity value for error-level expert items (PI_ERROR).
const PI_ERROR: &str = "8388608";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `fcsan gateway`: its stdout and stderr lines arrive on `lines`.
struct Gateway {
    proc: Proc,
    lines: mpsc::Receiver<(Stream, String)>,
    /// Everything read so far, for messages.
    seen: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

fn forward(r: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<(Stream, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send((stream, line)).is_err() {
                return;
            }
        }
    });
}

impl Gateway {
    fn start(config: &Path, capture: Option<&Path>) -> Gateway {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fcsan"));
        cmd.args(["gateway", "--config"]).arg(config);
        if let Some(c) = capture {
            cmd.arg("--capture").arg(c);
        }
        let mut child = cmd
            // LKAs are logged at debug level; no colours in what the test reads.
            .env("RUST_LOG", "info,fcip::connection=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fcsan gateway");
        let (tx, lines) = mpsc::channel();
        forward(
            child.stdout.take().expect("stdout"),
            Stream::Out,
            tx.clone(),
        );
        forward(child.stderr.take().expect("stderr"), Stream::Err, tx);
        Gateway {
            proc: Proc(child),
            lines,
            seen: String::new(),
        }
    }

    /// Waits for a line of `stream` for which `want` is true; returns it.
    fn wait_for(&mut self, stream: Stream, what: &str, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok((s, line)) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if s == stream && want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no {what} ({e}); the gateway said:\n{}", self.seen),
            }
        }
    }

    /// Stops it with SIGTERM; what it printed on stdout from now on, once it has exited 0.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.proc.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let mut out = String::new();
        // Both readers end at the process's exit.
        while let Ok((s, line)) = self.lines.recv_timeout(WAIT) {
            if s == Stream::Out {
                out.push_str(&line);
                out.push('\n');
            }
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        let status = self.proc.0.wait().expect("wait for the gateway");
        assert!(
            status.success(),
            "gateway exited with {status}:\n{}",
            self.seen
        );
        out
    }
}

fn config(domain: u8, name: &str, peer: &str, peer_domain: u8, dial: Option<&str>) -> String {
    let dial = dial.map_or(String::new(), |d| format!("dial = \"{d}\"\n"));
    format!(
        "[switch]\ndomain = {domain}\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nports = 8\n\n\
         [fcip]\nlisten = \"127.0.0.1:0\"\nk_a_tov_ms = 2000\n\n\
         [[peer]]\nfabric = \"{peer}\"\n{dial}domains = [{peer_domain}]\nport = 100\n\
         connections = 2\n"
    )
}

/// The last word of a line (`... listening on 127.0.0.1:40123`).
fn last_word(line: &str) -> String {
    line.split_whitespace()
        .last()
        .expect("a word")
        .trim_end_matches(',')
        .to_owned()
}

/// The connection rows of the link table (`  1  tx frames ...`), as numbers.
fn connection_rows(report: &str) -> BTreeMap<String, Vec<u64>> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("FCIP links:"))
        .filter(|l| {
            let t = l.trim_start();
            l.starts_with("  ") && !t.starts_with("connection") && !t.starts_with("dials failed")
        })
        .map(|l| {
            let mut words = l.split_whitespace();
            let label = words.next().expect("a label").to_owned();
            let numbers = words
                .map(|w| {
                    w.parse()
                        .unwrap_or_else(|_| panic!("not a number in {l:?}"))
                })
                .collect();
            (label, numbers)
        })
        .collect()
}

/// Column indexes of a connection row (after its label).
const TX_FRAMES: usize = 0;
const RX_FRAMES: usize = 2;
const LKA_SENT: usize = 9;
const LKA_ANSWERED: usize = 10;
const COLUMNS: usize = 12;

/// Checks a gateway's exit report: its link to `peer` with both connections open (`up`), or
/// both closed; frames and an LKA counted on them.
fn check_report(report: &str, peer: &str, up: bool) {
    assert!(report.contains("Name server:"), "{report}");
    assert!(report.contains("Switch port counters:"), "{report}");
    let link = report
        .lines()
        .find(|l| l.starts_with(peer))
        .unwrap_or_else(|| panic!("no link to {peer}:\n{report}"));
    let words: Vec<&str> = link.split_whitespace().collect();
    // port, up, connections up/configured, opened, closed
    let want = if up {
        ["100", "yes", "2/2", "2", "0"]
    } else {
        ["100", "no", "0/2", "2", "2"]
    };
    assert_eq!(words.get(1..6), Some(&want[..]), "{report}");
    let rows = connection_rows(report);
    assert!(
        rows.values().all(|r| r.len() == COLUMNS),
        "columns: {report}"
    );
    let labels: &[&str] = if up { &["1", "2"] } else { &["closed"] };
    let counted: Vec<&Vec<u64>> = labels
        .iter()
        .map(|c| {
            rows.get(*c)
                .unwrap_or_else(|| panic!("no connection row {c}:\n{report}"))
        })
        .collect();
    assert_eq!(rows.len(), labels.len() + usize::from(up), "{report}");
    let sum = |col: usize| counted.iter().map(|r| r[col]).sum::<u64>();
    assert!(sum(TX_FRAMES) > 0, "no frame sent: {report}");
    assert!(sum(RX_FRAMES) > 0, "no frame received: {report}");
    assert!(sum(LKA_SENT) + sum(LKA_ANSWERED) > 0, "no LKA: {report}");
}

/// tshark on an FCIP capture: tshark 4.0.17's LBMSRS heuristic claims these segments before
/// FCIP's, and FCIP's heuristic only looks at port 3225, so `port` is decoded as FCIP.
fn tshark(pcap: &Path, port: u16, fields: &[&str]) -> Vec<BTreeMap<String, String>> {
    support::tshark(pcap, &["-d", &format!("tcp.port=={port},fcip")], fields)
}

#[test]
fn two_gateway_processes_link_up_keep_alive_and_capture_for_wireshark() {
    let dir = tempfile::tempdir().expect("temp dir");
    let b_toml = dir.path().join("gateway-b.toml");
    std::fs::write(&b_toml, config(2, B_NAME, A_NAME, 1, None)).expect("write config");
    let mut b = Gateway::start(&b_toml, None);
    let b_nodes = last_word(&b.wait_for(Stream::Out, "node address", |l| {
        l.starts_with("gateway domain 02") && l.contains("listening on 127.0.0.1:")
    }));
    let b_fcip = last_word(&b.wait_for(Stream::Out, "FCIP address", |l| {
        l.starts_with("FCIP listening on 127.0.0.1:")
    }));
    assert_ne!(b_nodes, b_fcip);
    let b_port: u16 = b_fcip
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("B's FCIP port");

    let a_toml = dir.path().join("gateway-a.toml");
    std::fs::write(&a_toml, config(1, A_NAME, B_NAME, 2, Some(&b_fcip))).expect("write config");
    let pcap = dir.path().join("captures/fcip-a.pcap");
    let mut a = Gateway::start(&a_toml, Some(&pcap));
    a.wait_for(Stream::Out, "capture line", |l| {
        l.starts_with("FCIP capture:")
    });

    // Both see the link come up with both connections.
    for (g, peer) in [(&mut a, B_NAME), (&mut b, A_NAME)] {
        g.wait_for(Stream::Out, "link up", |l| {
            l.starts_with(&format!("FCIP link to {peer} ")) && l.contains("2 of 2 connection(s) up")
        });
    }
    // An LKA crosses the link, with its LS_ACC, both recorded when these are logged.
    a.wait_for(Stream::Err, "LKA", |l| {
        l.contains("LKA acknowledged") || l.contains("LKA answered")
    });

    // A stops with its link up; B then sees it go down, and reports the closed connections.
    let a_report = a.stop();
    b.wait_for(Stream::Out, "link down", |l| {
        l.starts_with(&format!("FCIP link to {A_NAME} down"))
    });
    let b_report = b.stop();
    check_report(&a_report, B_NAME, true);
    check_report(&b_report, A_NAME, false);
    assert!(
        a_report.contains(&format!("FCIP capture written to {}", pcap.display())),
        "{a_report}"
    );

    let fields = [
        "ip.src",
        "ip.dst",
        "tcp.srcport",
        "tcp.dstport",
        "fcip.srcwwn",
        "fcip.srcid",
        "fcip.nonce",
        "fcip.connflags",
        "fcip.conncode",
        "fc.r_ctl",
        "fc.s_id",
        "fc.d_id",
        "fc.ox_id",
        "_ws.col.Info",
        "_ws.malformed",
        "_ws.expert.severity",
    ];
    let packets = tshark(&pcap, b_port, &fields);
    for p in &packets {
        assert!(p["_ws.malformed"].is_empty(), "malformed: {p:?}");
        assert!(
            p["_ws.expert.severity"].split(',').all(|s| s != PI_ERROR),
            "error-level expert item: {p:?}"
        );
        // The real endpoints: A's ephemeral port and B's FCIP port, on loopback.
        assert_eq!((&*p["ip.src"], &*p["ip.dst"]), ("127.0.0.1", "127.0.0.1"));
        assert!(
            p["tcp.srcport"] == b_port.to_string() || p["tcp.dstport"] == b_port.to_string(),
            "not to or from B's FCIP port: {p:?}"
        );
    }

    // Each connection starts with A's Special Frame and B's unchanged echo.
    let fsf: Vec<&BTreeMap<String, String>> = packets
        .iter()
        .filter(|p| !p["fcip.nonce"].is_empty())
        .collect();
    assert_eq!(fsf.len(), 4, "{packets:#?}");
    let mut nonces = Vec::new();
    for p in &fsf {
        assert_eq!(p["fcip.srcwwn"], A_NAME, "{p:?}");
        // A's FC/FCIP Entity Identifier is its switch name's bytes.
        assert_eq!(p["fcip.srcid"], A_NAME.replace(':', ""), "{p:?}");
        assert_eq!(p["fcip.connflags"], "0x00", "{p:?}");
        assert_eq!(p["fcip.conncode"], "0x0000", "{p:?}");
    }
    for p in fsf
        .iter()
        .filter(|p| p["tcp.dstport"] == b_port.to_string())
    {
        let a_port = &p["tcp.srcport"];
        let echo = fsf
            .iter()
            .find(|e| e["tcp.srcport"] == b_port.to_string() && e["tcp.dstport"] == *a_port)
            .unwrap_or_else(|| panic!("no echo of {p:?}"));
        assert_eq!(echo["fcip.nonce"], p["fcip.nonce"]);
        nonces.push(p["fcip.nonce"].clone());
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 2, "one nonce a connection: {fsf:#?}");

    // An LKA (ELS request from and to the fabric controller) and its LS_ACC, the other way on
    // the same connection, same OX_ID.
    let lka = packets
        .iter()
        .find(|p| {
            p["_ws.col.Info"] == "LKA"
                && p["fc.r_ctl"] == "0x22"
                && p["fc.s_id"] == "ff.ff.fd"
                && p["fc.d_id"] == "ff.ff.fd"
                && packets.iter().any(|acc| {
                    acc["_ws.col.Info"] == "ACC (LKA)"
                        && acc["fc.r_ctl"] == "0x23"
                        && acc["fc.ox_id"] == p["fc.ox_id"]
                        && acc["tcp.srcport"] == p["tcp.dstport"]
                        && acc["tcp.dstport"] == p["tcp.srcport"]
                })
        })
        .is_some();
    assert!(lka, "no LKA with its LS_ACC: {packets:#?}");
}

/// `fcsan up`'s FCIP capture, read by tshark: everything the two sites said to each other
/// through the tunnel decodes — the Special Frames, SW_ILS EFP and its SW_ACC, the name server
/// walks (GA_NXT, GFF_ID to FFFCdd), RSCN, PLOGI/PRLI, and the host's SCSI commands to site
/// B's array (INQUIRY, READ CAPACITY(16), WRITE(10), READ(10), SYNCHRONIZE CACHE(16)) with
/// their good status — and nothing is malformed or an error.
#[test]
fn up_fcip_capture_shows_the_tunnelled_fabric_services_and_scsi() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("fcip.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_fcsan"))
        .args(["up", "--quiet", "--file-size", "1MiB", "--fcip-capture"])
        .arg(&pcap)
        .output()
        .expect("run fcsan up");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "... or: tshark -r FILE -d tcp.port==PORT,fcip"
    let port: u16 = stdout
        .split("tcp.port==")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no FCIP port in:\n{stdout}"));
    let rows = tshark(
        &pcap,
        port,
        &[
            "fcip.srcwwn",
            "swils.opcode",
            "fcdns.opcode",
            "fcels.opcode",
            "scsi_sbc.opcode",
            "fcp.status",
            "_ws.malformed",
            "_ws.expert.severity",
        ],
    );
    let values = |f: &str| -> Vec<String> {
        rows.iter()
            .filter_map(|r| r.get(f).filter(|v| !v.is_empty()).cloned())
            .collect()
    };
    assert!(values("_ws.malformed").is_empty(), "malformed packets");
    assert!(
        !values("_ws.expert.severity")
            .iter()
            .any(|s| s.split(',').any(|s| s == PI_ERROR)),
        "error-level expert items"
    );
    // Two connections: two Special Frames each way, from gateway A.
    let fsf = values("fcip.srcwwn");
    assert_eq!(fsf.len(), 4, "{fsf:?}");
    assert!(
        fsf.iter().all(|w| w == "10:00:00:00:c0:ff:ee:01"),
        "{fsf:?}"
    );
    let swils = values("swils.opcode");
    assert!(
        swils.contains(&"0x11".into()) && swils.contains(&"0x02".into()),
        "EFP and SW_ACC: {swils:?}"
    );
    let dns = values("fcdns.opcode");
    for op in ["0x0100", "0x011f", "0x8001"] {
        assert!(dns.contains(&op.to_string()), "dNS {op} missing: {dns:?}");
    }
    let els = values("fcels.opcode");
    for op in ["0x61", "0x03", "0x20"] {
        assert!(els.contains(&op.to_string()), "ELS {op} missing: {els:?}");
    }
    let scsi = values("scsi_sbc.opcode");
    for op in ["0x2a", "0x28", "0x91", "0x12", "0x9e"] {
        assert!(
            scsi.contains(&op.to_string()),
            "SCSI {op} missing: {scsi:?}"
        );
    }
    let status = values("fcp.status");
    assert!(
        !status.is_empty() && status.iter().all(|s| s == "0x00"),
        "{status:?}"
    );
}

/// The address in `gateway domain 01 (..) listening on 127.0.0.1:40123 for nodes`.
fn node_address(line: &str) -> String {
    line.split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("an address")
        .to_owned()
}

/// A node config for `fcsan disk` / `fcsan host` on the switch at `switch`.
fn node_toml(switch: &str, wwpn: &str, extra: &str) -> String {
    format!(
        "[node]\nswitch = \"{switch}\"\nport_name = \"{wwpn}\"\n\
         node_name = \"20:00:00:00:00:00:00:{}\"\ne_d_tov_ms = 500\nr_a_tov_ms = 1000\n\n{extra}",
        &wwpn[wwpn.len() - 2..]
    )
}

/// Separate processes, as separate hosts would run them: two `fcsan gateway`s (no peer
/// domains configured: they learn them over the link), a disk array on site B, and on site A
/// a host that lists B's LUN (found through the name servers across the link), writes a file
/// to it and verifies it.
#[test]
fn a_host_process_on_site_a_writes_to_a_disk_process_on_site_b() {
    const DISK: &str = "22:00:00:00:00:00:00:b1";
    const HOST: &str = "21:00:00:00:00:00:00:a1";
    let dir = tempfile::tempdir().expect("temp dir");
    let no_domains = |c: String| {
        c.replace("domains = [1]\n", "")
            .replace("domains = [2]\n", "")
    };
    let b_toml = dir.path().join("gateway-b.toml");
    std::fs::write(&b_toml, no_domains(config(2, B_NAME, A_NAME, 1, None))).expect("write");
    let mut b = Gateway::start(&b_toml, None);
    let b_nodes = node_address(&b.wait_for(Stream::Out, "node address", |l| {
        l.starts_with("gateway domain 02") && l.contains("listening on 127.0.0.1:")
    }));
    let b_fcip = last_word(&b.wait_for(Stream::Out, "FCIP address", |l| {
        l.starts_with("FCIP listening on 127.0.0.1:")
    }));
    let a_toml = dir.path().join("gateway-a.toml");
    std::fs::write(
        &a_toml,
        no_domains(config(1, A_NAME, B_NAME, 2, Some(&b_fcip))),
    )
    .expect("write");
    let mut a = Gateway::start(&a_toml, None);
    let a_nodes = node_address(&a.wait_for(Stream::Out, "node address", |l| {
        l.starts_with("gateway domain 01") && l.contains("listening on 127.0.0.1:")
    }));
    a.wait_for(Stream::Out, "link up", |l| {
        l.contains("2 of 2 connection(s) up")
    });

    let disk_toml = dir.path().join("disk.toml");
    std::fs::write(
        &disk_toml,
        node_toml(
            &b_nodes,
            DISK,
            "[[lun]]\nlun = 0\npath = \"b0.img\"\nsize = \"64MiB\"\ntier = \"ssd\"\n",
        ),
    )
    .expect("write");
    let _disk = Proc(
        Command::new(env!("CARGO_BIN_EXE_fcsan"))
            .args(["disk", "--config"])
            .arg(&disk_toml)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fcsan disk"),
    );
    let host_toml = dir.path().join("host.toml");
    std::fs::write(&host_toml, node_toml(&a_nodes, HOST, "")).expect("write");
    let host = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_fcsan"))
            .args(["host", "--config"])
            .arg(&host_toml)
            .args(args)
            .output()
            .expect("run fcsan host");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // The array logs in on B and B's gateway tells A's; until then the host sees nothing.
    let deadline = std::time::Instant::now() + WAIT;
    let listed = loop {
        let (ok, out) = host(&["list"]);
        if ok && out.contains(DISK) {
            break out;
        }
        assert!(!out.contains(".toml:"), "{out}");
        assert!(
            std::time::Instant::now() < deadline,
            "site B's LUN never showed on site A: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        listed.contains("(020") && listed.contains("LUN 0   disk  ssd"),
        "{listed}"
    );
    let file = dir.path().join("file.bin");
    let data: Vec<u8> = (0..6 << 20)
        .map(|i: u32| (i * 7 + i / 4093) as u8)
        .collect();
    std::fs::write(&file, &data).expect("write data");
    let f = file.to_str().expect("utf-8");
    let (ok, out) = host(&["write", "--target", DISK, f]);
    assert!(ok, "{out}");
    let (ok, out) = host(&["verify", "--target", DISK, f]);
    assert!(ok, "{out}");

    let a_report = a.stop();
    // A's name server holds the array, at the FCIP link's port 100.
    assert!(
        a_report
            .lines()
            .any(|l| l.starts_with("020") && l.contains(" 100 ") && l.contains(DISK)),
        "{a_report}"
    );
    drop(b);
}
