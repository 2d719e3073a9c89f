//! The SAN as separate processes over loopback TCP, as a storage engineer runs it: `fcsan
//! switch`, two `fcsan disk` arrays and `fcsan host` commands, each from its own TOML file.
//!
//! - a host finds the LUNs by name server, writes a 64 MiB random file, reads it back
//!   byte-identical; a host outside the zone sees no LUN and its frames are dropped and counted;
//! - a disk array killed mid-write: the host's commands time out and it says how much was
//!   acknowledged; after a restart every acknowledged byte is on the LUN;
//! - tshark reads the switch's capture: FLOGI, PLOGI, PRLI, GID_FT, READ/WRITE with their LBAs.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "21:00:00:00:00:00:00:01";
const OUTSIDER: &str = "21:00:00:00:00:00:00:09";
const SSD: &str = "22:00:00:00:00:00:00:01";
const HDD: &str = "22:00:00:00:00:00:00:02";

fn fcsan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fcsan"))
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The switch and disk arrays of one test, in a temporary folder.
struct San {
    dir: tempfile::TempDir,
    switch: Option<(Proc, BufReader<std::process::ChildStdout>)>,
    disks: BTreeMap<&'static str, Proc>,
    addr: String,
}

impl San {
    fn start(capture: bool) -> San {
        let dir = tempfile::tempdir().expect("temp dir");
        let capture = if capture {
            "capture = \"switch.pcap\"\n"
        } else {
            ""
        };
        write(
            dir.path(),
            "switch.toml",
            &format!(
                "[switch]\ndomain = 1\nname = \"10:00:00:00:c0:ff:ee:01\"\n\
                 listen = \"127.0.0.1:0\"\nports = 16\n{capture}\n\
                 [zoning]\ndefault = \"no-access\"\nactive = \"production\"\n\n\
                 [[zoneset]]\nname = \"production\"\n[[zoneset.zone]]\nname = \"host-a\"\n\
                 members = [\"{HOST}\", \"{SSD}\", \"{HDD}\"]\n"
            ),
        );
        let mut child = fcsan()
            .args(["switch", "--config"])
            .arg(dir.path().join("switch.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fcsan switch");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("switch prints its address");
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_string();
        assert!(line.contains("listening on 127.0.0.1:"), "{line}");
        let mut san = San {
            dir,
            switch: Some((Proc(child), reader)),
            disks: BTreeMap::new(),
            addr,
        };
        san.start_disk(SSD);
        san.start_disk(HDD);
        san
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_disk(&mut self, wwpn: &'static str) {
        let (name, tier, tape) = if wwpn == SSD {
            ("ssd", "ssd", "[[tape]]\nlun = 1\nserial = \"TAPE0\"\n")
        } else {
            ("hdd", "slow-hdd", "")
        };
        let file = format!("disk-{name}.toml");
        write(
            self.dir.path(),
            &file,
            &format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{wwpn}\"\nnode_name = \"20:00:00:00:00:00:00:0{}\"\n\
                 e_d_tov_ms = 500\nr_a_tov_ms = 1000\n\n\
                 [[lun]]\nlun = 0\npath = \"{name}0.img\"\nsize = \"128MiB\"\ntier = \"{tier}\"\n\n{tape}",
                self.addr,
                if wwpn == SSD { 1 } else { 2 }
            ),
        );
        let mut child = fcsan()
            .args(["disk", "--config"])
            .arg(self.path(&file))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fcsan disk");
        // Wait until it has logged in with the fabric.
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while !line.contains("logged in as") {
            line.clear();
            assert!(
                reader.read_line(&mut line).expect("read disk output") > 0,
                "disk {wwpn} ended before logging in"
            );
        }
        self.disks.insert(wwpn, Proc(child));
    }

    fn kill_disk(&mut self, wwpn: &str) {
        drop(self.disks.remove(wwpn));
    }

    /// `fcsan host --config host-<wwpn>.toml ARGS`.
    fn host(&self, wwpn: &str, args: &[&str]) -> Output {
        let file = format!("host-{}.toml", &wwpn[wwpn.len() - 2..]);
        write(
            self.dir.path(),
            &file,
            &format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{wwpn}\"\nnode_name = \"20:00:00:00:00:00:00:{}\"\n\
                 e_d_tov_ms = 500\nr_a_tov_ms = 1000\n",
                self.addr,
                &wwpn[wwpn.len() - 2..]
            ),
        );
        fcsan()
            .args(["host", "--config"])
            .arg(self.path(&file))
            .args(args)
            .output()
            .expect("run fcsan host")
    }

    /// Stops the switch with SIGTERM; what it printed (name server and counters).
    fn stop_switch(&mut self) -> String {
        let Some((mut proc, mut reader)) = self.switch.take() else {
            return String::new();
        };
        let _ = Command::new("kill")
            .args(["-TERM", &proc.0.id().to_string()])
            .status();
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut out);
        let _ = proc.0.wait();
        out
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write config");
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fcsan host failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, &data).expect("write data file");
    data
}

#[test]
fn hosts_find_luns_move_64_mib_and_zoning_holds() {
    let mut san = San::start(false);

    let list = ok(&san.host(HOST, &["list"]));
    assert!(list.contains(&format!("{SSD} (010")), "{list}");
    assert!(
        list.contains("LUN 0   disk  ssd       262144 x 512 B (128.0 MiB)"),
        "{list}"
    );
    assert!(list.contains("LUN 1   tape"), "{list}");
    // -vv: every command in a span with its exchange's OX_ID, S_ID and D_ID.
    let out = san.host(HOST, &["-vv", "list"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.lines().any(|l| l.contains("fcp_command{d_id=010")
            && l.contains(" op=0x12 ox_id=0x")
            && l.contains("command ended")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("exchange opened")
            && l.contains("ox_id=0x")
            && l.contains("s_id=01")
            && l.contains("d_id=fffffc")),
        "{log}"
    );
    assert!(
        list.contains("LUN 0   disk  slow-hdd  262144 x 512 B"),
        "{list}"
    );

    let src = san.path("random.bin");
    let data = random_file(&src, 64 << 20, 0x5eed);
    let back = san.path("back.bin");
    let out = ok(&san.host(
        HOST,
        &[
            "write",
            "--target",
            HDD,
            "--lun",
            "0",
            src.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("wrote 64.0 MiB"), "{out}");
    let out = ok(&san.host(
        HOST,
        &[
            "read",
            "--target",
            HDD,
            "--length",
            "64MiB",
            back.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("read 64.0 MiB"), "{out}");
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the bytes read back differ"
    );
    let out = ok(&san.host(HOST, &["verify", "--target", HDD, src.to_str().unwrap()]));
    assert!(out.contains("identical"), "{out}");

    // Outside the zone: nothing visible, and frames sent anyway are dropped and counted.
    let list = ok(&san.host(OUTSIDER, &["list"]));
    assert!(list.contains("no LUNs visible"), "{list}");
    let out = san.host(
        OUTSIDER,
        &[
            "--timeout",
            "1",
            "read",
            "--target-id",
            "010100",
            "--length",
            "4096",
            back.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out"), "{err}");

    let report = san.stop_switch();
    assert!(report.contains("Name server:"), "{report}");
    let unzoned: u64 = report
        .lines()
        .skip_while(|l| !l.starts_with("Switch port counters"))
        .skip(2)
        .filter_map(|l| {
            l.split('(')
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(unzoned > 0, "no unzoned discards counted:\n{report}");
}

#[test]
fn disk_killed_mid_write_keeps_every_acknowledged_byte() {
    let mut san = San::start(false);
    let src = san.path("big.bin");
    let data = random_file(&src, 96 << 20, 0xfa17);

    // Write with FUA from a host process; kill the array while the write runs.
    let writer = fcsan()
        .args(["host", "--config"])
        .arg({
            let _ = san.host(HOST, &["list"]); // writes host-01.toml
            san.path("host-01.toml")
        })
        .args(["--timeout", "2", "write", "--fua", "--target", SSD])
        .arg(&src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the writer");
    // Kill the array once the first 4 MiB are on its LUN file (a FUA write is acknowledged
    // only once durable, so the first MiB at least is acknowledged by then or soon after, with
    // 8 commands in flight), however slowly this machine runs today.
    let lun_file = san.path("ssd0.img");
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_mibs = |path: &std::path::Path| -> Option<Vec<u8>> {
        use std::io::Read;
        let mut b = vec![0; 4 << 20];
        std::fs::File::open(path).ok()?.read_exact(&mut b).ok()?;
        Some(b)
    };
    while first_mibs(&lun_file).is_none_or(|b| b[..] != data[..4 << 20]) {
        assert!(Instant::now() < deadline, "the write never reached the LUN");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    san.kill_disk(SSD);
    let started = Instant::now();
    let out = writer.wait_with_output().expect("writer output");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the host hung for {:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the write survived the kill");
    assert!(err.contains("timed out"), "{err}");
    let acked: usize = err
        .split("the first ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no acknowledged count in: {err}"));
    assert!(acked > 0, "nothing was acknowledged before the kill: {err}");

    // After a restart on the same files, every acknowledged byte is there.
    san.start_disk(SSD);
    let back = san.path("after.bin");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = san.host(
            HOST,
            &[
                "read",
                "--target",
                SSD,
                "--length",
                &acked.to_string(),
                back.to_str().unwrap(),
            ],
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let back = std::fs::read(&back).unwrap();
    assert_eq!(back.len(), acked);
    assert!(back == data[..acked], "acknowledged data lost");
}

#[test]
fn tshark_reads_the_switch_capture() {
    let mut san = San::start(true);
    let src = san.path("small.bin");
    random_file(&src, 3 << 20, 0xc0de);
    ok(&san.host(HOST, &["write", "--target", SSD, src.to_str().unwrap()]));
    ok(&san.host(HOST, &["verify", "--target", SSD, src.to_str().unwrap()]));
    san.stop_switch();
    let pcap = san.path("switch.pcap");

    let frames = support::tshark(
        &pcap,
        &[],
        &[
            "fcels.opcode",
            "fcdns.opcode",
            "scsi_sbc.opcode",
            "scsi_sbc.rdwr10.lba",
            "scsi_sbc.rdwr10.xferlen",
            "_ws.malformed",
            "_ws.expert.severity",
            "fc.crc.status",
        ],
    );
    assert!(frames.len() > 3 * 1024 * 1024 / 2112);
    let has = |field: &str, value: &str| {
        frames
            .iter()
            .any(|f| f.get(field).is_some_and(|v| v == value))
    };
    assert!(has("fcels.opcode", "0x04"), "no FLOGI");
    assert!(has("fcels.opcode", "0x03"), "no PLOGI");
    assert!(has("fcels.opcode", "0x20"), "no PRLI");
    assert!(has("fcdns.opcode", "0x0171"), "no GID_FT");
    for f in &frames {
        assert!(f["_ws.malformed"].is_empty(), "malformed: {f:?}");
        assert!(
            f["_ws.expert.severity"].split(',').all(|s| s != "8388608"),
            "error: {f:?}"
        );
        assert!(
            f["fc.crc.status"] == "1" || f["fc.crc.status"].is_empty(),
            "CRC: {f:?}"
        );
    }
    // The host writes and reads in 1 MiB commands (2048 blocks) from LBA 0: WRITE(10) and
    // READ(10) at 0, 2048, 4096.
    for (op, name) in [("0x2a", "WRITE(10)"), ("0x28", "READ(10)")] {
        let mut lbas: Vec<u64> = frames
            .iter()
            .filter(|f| f["scsi_sbc.opcode"] == op && !f["scsi_sbc.rdwr10.lba"].is_empty())
            .map(|f| {
                assert_eq!(f["scsi_sbc.rdwr10.xferlen"], "2048", "{name} length: {f:?}");
                f["scsi_sbc.rdwr10.lba"].parse().unwrap()
            })
            .collect();
        lbas.sort_unstable();
        assert_eq!(lbas, vec![0, 2048, 4096], "{name} LBAs");
    }
}
