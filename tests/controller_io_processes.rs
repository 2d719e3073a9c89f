//! The I/O path through the controllers' virtual LUNs with every role its own process over
//! loopback TCP, as a storage engineer runs it: per SAN an `fcsan gateway` (FCIP links in a
//! chain whose middle SAN every other one dials), an `fcsan disk` array, an `fcsan controller`
//! (the I/O path's keys set in its TOML file) and `fcsan host` commands, each from its own TOML
//! file in a temporary folder, every address picked by the system. Volumes are built with
//! `fcsan volume build` at the owner's management API; hosts find the volume's LUN with `fcsan
//! host list` (VIRTUAL VOLUME at the controller's port) and move files with `fcsan host
//! write|read`, selecting the controller by WWPN and the LUN by number.
//!
//! - two SANs: a host on B writes a 256 MiB random file to a volume owned by A through B's
//!   controller (forwarded over FCIP to A's, which writes A's array) and reads it back
//!   byte-exact; a volume built at A while it writes gives the host a unit attention (B serves
//!   a new LUN), which the write gets past;
//! - the same through the WAN relay at 20 ms round trip;
//! - three SANs in a chain A — B — C: a host on C writes and reads 256 MiB of a volume owned
//!   by A, its commands forwarded through B's switch; a replica on B; a host on A reads the
//!   same bytes;
//! - the owner controller SIGKILLed during a stream of numbered 64 KiB FUA writes from a host
//!   in the test process (an FC node on A's gateway over TCP, so that every acknowledgement is
//!   recorded exactly), then restarted on its database: every acknowledged block is read back
//!   through the restarted controller and straight from the array.
//!
//! The tests run one at a time (each is a SAN of 6 to 9 processes; `.config/nextest.toml` puts
//! them in a group of one thread for nextest, which runs each test in its own process); on two
//! otherwise idle cores the file takes about 2 minutes, most of it moving 256 MiB each way in
//! the first three.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fc_frames::scsi::{Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::{Initiator, ScsiError};
use fc_node::node::NodeError;
use serde_json::Value;
use wan_relay::{Impairment, Relay};

#[path = "support/processes.rs"]
mod processes;
use processes::{fcsan, last_word, Proc};

const KEY: &str = "00112233445566778899aabbccddeeff";
/// How long the SANs may take to come up and find each other, and a volume to be served at
/// every controller, on a busy two-core machine.
const SETTLE: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// One SAN: its gateway, its disk array (one SSD LUN) and its controller.
struct Site {
    name: &'static str,
    domain: u8,
    /// Bytes of the array's one LUN.
    lun_bytes: u64,
    gateway: Option<Proc>,
    /// Where its switch takes node links.
    nodes: String,
    /// Where its gateway takes FCIP connections.
    fcip: String,
    disk: Option<Proc>,
    controller: Option<Proc>,
    /// The controller's management API.
    api: String,
}

impl Site {
    fn new(name: &'static str, domain: u8, lun_bytes: u64) -> Site {
        Site {
            name,
            domain,
            lun_bytes,
            gateway: None,
            nodes: String::new(),
            fcip: String::new(),
            disk: None,
            controller: None,
            api: String::new(),
        }
    }

    fn switch_name(&self) -> String {
        format!("10:00:00:00:c0:ff:ee:{:02x}", self.domain)
    }

    fn array(&self) -> String {
        format!("22:00:00:00:00:00:{:02x}:01", self.domain)
    }

    fn controller_wwpn(&self) -> String {
        format!("23:00:00:00:00:00:{:02x}:01", self.domain)
    }

    fn controller_name(&self) -> String {
        format!("ctl-{}", self.name)
    }

    /// The WWPN of host number `n` of this site.
    fn host_wwpn(&self, n: u8) -> String {
        format!("21:00:00:00:00:00:{:02x}:{n:02x}", self.domain)
    }
}

/// The SANs of one test, in a temporary folder, and the runtime of the WAN relays when the
/// links go through them.
struct Sans {
    // Dropped in this order: the processes, the relays, their runtime, then the folder.
    sites: Vec<Site>,
    relays: Vec<Relay>,
    /// Runs the relays (and the test's own FC host, when it has one).
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Sans {
    /// Starts the sites: gateways (site 1 is the hub of the chain, the others dial it, through
    /// a relay under `wan` when given), then arrays, then controllers; returns when every
    /// controller sees every other one up and takes changes.
    fn start(mut sites: Vec<Site>, wan: Option<Impairment>) -> Sans {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut relays = Vec::new();
        let hub = 1;
        let order: Vec<usize> = std::iter::once(hub)
            .chain((0..sites.len()).filter(|&i| i != hub))
            .collect();
        for &i in &order {
            let mut peers = String::new();
            if i == hub {
                for (j, s) in sites.iter().enumerate().filter(|(j, _)| *j != hub) {
                    peers += &format!(
                        "[[peer]]\nfabric = \"{}\"\nport = {}\n\n",
                        s.switch_name(),
                        100 + j
                    );
                }
            } else {
                let mut dial = sites[hub].fcip.clone();
                if let Some(w) = wan {
                    let upstream: SocketAddr = dial.parse().expect("an FCIP address");
                    let relay = rt
                        .block_on(Relay::start(
                            "127.0.0.1:0".parse().expect("an address"),
                            upstream,
                            w,
                        ))
                        .expect("the relay starts");
                    dial = relay.local_addr().to_string();
                    relays.push(relay);
                }
                peers += &format!(
                    "[[peer]]\nfabric = \"{}\"\ndial = \"{dial}\"\nport = 100\n\n",
                    sites[hub].switch_name(),
                );
            }
            let s = &mut sites[i];
            let file = dir.path().join(format!("gateway-{}.toml", s.name));
            write(
                &file,
                &format!(
                    "[switch]\ndomain = {}\nname = \"{}\"\nlisten = \"127.0.0.1:0\"\nports = 16\n\n\
                     [fcip]\nlisten = \"127.0.0.1:0\"\n\n{peers}",
                    s.domain,
                    s.switch_name()
                ),
            );
            let gw = Proc::spawn(dir.path(), "gateway", &file, &format!("gateway-{}", s.name));
            let l = gw.line("the node address", |l| l.ends_with("for nodes"));
            s.nodes = l
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or_else(|| panic!("no address in {l:?}"))
                .to_owned();
            let l = gw.line("the FCIP address", |l| l.starts_with("FCIP listening on"));
            s.fcip = last_word(&l);
            s.gateway = Some(gw);
        }
        let mut sans = Sans {
            sites,
            relays,
            rt,
            dir,
        };
        for i in 0..sans.sites.len() {
            sans.start_disk(i);
        }
        for i in 0..sans.sites.len() {
            sans.start_controller(i);
        }
        sans.wait_for_peers();
        sans
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_disk(&mut self, i: usize) {
        let s = &mut self.sites[i];
        let file = self.dir.path().join(format!("disk-{}.toml", s.name));
        write(
            &file,
            &format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{}\"\n\
                 node_name = \"20:00:00:00:00:00:{:02x}:01\"\n\n\
                 [[lun]]\nlun = 0\npath = \"{}-0.img\"\nsize = {}\ntier = \"ssd\"\n",
                s.nodes,
                s.array(),
                s.domain,
                s.name,
                s.lun_bytes
            ),
        );
        let disk = Proc::spawn(self.dir.path(), "disk", &file, &format!("disk-{}", s.name));
        disk.line("its fabric login", |l| l.contains("logged in as"));
        s.disk = Some(disk);
    }

    /// Starts site `i`'s controller (again, on the same database, when it ran before), with
    /// the I/O path's keys set.
    fn start_controller(&mut self, i: usize) {
        let file = self.path(&format!("controller-{}.toml", self.sites[i].name));
        let s = &mut self.sites[i];
        write(
            &file,
            &format!(
                "[controller]\nname = \"{}\"\nsite = \"{}\"\nport_name = \"{}\"\n\
                 switch = \"{}\"\ndatabase = \"ctl-{}.redb\"\nkey = \"{KEY}\"\n\
                 api = \"127.0.0.1:0\"\nheartbeat_ms = 500\n\
                 scan_period_ms = 1000\ndiscovery_period_ms = 500\n\
                 cache = \"32MiB\"\nlease_ms = 2000\nswitch_outstanding = 16\n\
                 replica_rate = \"100MiB/s\"\n",
                s.controller_name(),
                s.name,
                s.controller_wwpn(),
                s.nodes,
                s.name,
            ),
        );
        let name = s.controller_name();
        let ctl = Proc::spawn(self.dir.path(), "controller", &file, &name);
        let line = ctl.line("the API address", |l| l.starts_with("controller "));
        assert!(
            line.starts_with(&format!("controller {name} api http://127.0.0.1:")),
            "{line}"
        );
        s.api = last_word(&line);
        s.controller = Some(ctl);
    }

    /// Waits until every controller sees every other one up, has found its array's LUN and
    /// takes changes.
    fn wait_for_peers(&self) {
        let deadline = Instant::now() + SETTLE;
        for s in &self.sites {
            let want: BTreeSet<String> = self
                .sites
                .iter()
                .filter(|o| o.name != s.name)
                .map(Site::controller_name)
                .collect();
            loop {
                let peers = get(&s.api, "/v1/peers");
                let up: BTreeSet<String> = peers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["state"] == "up")
                    .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let real = get(&s.api, "/v1/real-volumes");
                let luns = real["volumes"].as_array().map_or(0, Vec::len);
                if up == want && luns == 1 && ready(&peers, &s.controller_wwpn()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} sees {up:?} up (not {want:?}) and {luns} LUNs:\n{peers:#}\n{}",
                    s.controller_name(),
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The tail of every role's log, for a failure message.
    fn logs(&self) -> String {
        processes::logs(self.dir.path())
    }

    /// `fcsan volume --api URL ARGS` against site `i`'s controller; its output.
    fn volume(&self, i: usize, args: &[&str]) -> String {
        let out = fcsan()
            .args(["volume", "--api", &self.sites[i].api])
            .args(args)
            .output()
            .expect("run fcsan volume");
        ok("fcsan volume", &out, self)
    }

    /// Writes the file of host `n` of site `i` (its node on the site's gateway); its path.
    fn host_file(&self, i: usize, n: u8) -> PathBuf {
        let s = &self.sites[i];
        let path = self.path(&format!("host-{}-{n}.toml", s.name));
        write(
            &path,
            &format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{}\"\n\
                 node_name = \"20:00:00:00:00:00:{:02x}:{:02x}\"\n",
                s.nodes,
                s.host_wwpn(n),
                s.domain,
                0x10 + n
            ),
        );
        path
    }

    /// `fcsan host --config host-<site>-1.toml ARGS` at site `i`, not started yet; it logs
    /// the unit attentions it gets past (info).
    fn host_command(&self, i: usize, args: &[&str]) -> Command {
        let mut c = fcsan();
        c.env("RUST_LOG", "warn,fc_node::fcp::initiator=info")
            .arg("host")
            .arg("--config")
            .arg(self.host_file(i, 1))
            .args(args);
        c
    }

    /// `fcsan host --config host-<site>-1.toml ARGS` at site `i`, run to its end.
    fn host(&self, i: usize, args: &[&str]) -> Output {
        self.host_command(i, args).output().expect("run fcsan host")
    }

    /// The LUN at which site `i`'s controller serves the volume of `capacity` bytes, as
    /// `fcsan host list` on that site shows it (a virtual LUN: VIRTUAL VOLUME at the
    /// controller's port); waits for it to appear.
    fn virtual_lun(&self, i: usize, capacity: u64) -> u16 {
        let wwpn = self.sites[i].controller_wwpn();
        let size = format!("{} x 512 B", capacity / 512);
        let deadline = Instant::now() + SETTLE;
        loop {
            let out = self.host(i, &["list"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let found = text.lines().find(|l| {
                l.starts_with(&wwpn) && l.contains("VIRTUAL VOLUME") && l.contains(&size)
            });
            if let Some(l) = found {
                assert!(l.contains(" disk  ssd "), "{l}");
                return l
                    .split("LUN ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no LUN number in {l:?}"));
            }
            assert!(
                Instant::now() < deadline,
                "no virtual LUN of {capacity} bytes at {wwpn}: {text}\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Whether the controller of WWPN `me`, whose `GET /v1/peers` is `peers`, takes changes.
fn ready(peers: &Value, me: &str) -> bool {
    peers[0]["state"] == "self"
        && peers[0]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["owner"] == me && v["generation"].as_u64().unwrap_or(0) > 0)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

fn get(api: &str, path: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let url = format!("{api}{path}");
    let mut r = agent
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let mut text = String::new();
    let _ = r.body_mut().as_reader().read_to_string(&mut text);
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// The stdout of a command that must have succeeded.
fn ok(what: &str, out: &Output, sans: &Sans) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sans.logs()
    );
    stdout
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).expect("write data file");
    data
}

/// A seed that differs on every run.
fn seed() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    splitmix(t ^ u64::from(std::process::id()))
}

/// SplitMix64's output function: a well-mixed 64-bit number from `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds volume `name` of `capacity` at site `owner`'s controller with `fcsan volume build`.
fn build(sans: &Sans, owner: usize, name: &str, capacity: &str) {
    let text = sans.volume(
        owner,
        &[
            "build",
            "--type",
            "ssd",
            "--capacity",
            capacity,
            "--name",
            name,
        ],
    );
    assert!(text.starts_with(&format!("built {name}\n")), "{text}");
    assert!(
        text.contains(&sans.sites[owner].controller_name()),
        "{text}"
    );
}

/// Writes a `len`-byte random file from a host on site `from` (`fcsan host write`) to the
/// volume of `capacity` through `from`'s controller, calling `during` while the write runs,
/// then reads it back into another file (`fcsan host read`) and compares the two. Returns the
/// write's standard error (it says which unit attentions it got past).
fn round_trip(
    sans: &Sans,
    from: usize,
    capacity: u64,
    len: u64,
    during: impl FnOnce(&mut Child),
) -> String {
    let lun = sans.virtual_lun(from, capacity).to_string();
    let ctl = sans.sites[from].controller_wwpn();
    let src = sans.path("source.bin");
    let data = random_file(&src, len as usize, seed());
    let back = sans.path("back.bin");
    let started = Instant::now();
    let mut writer = sans
        .host_command(
            from,
            &[
                "write",
                "--target",
                &ctl,
                "--lun",
                &lun,
                src.to_str().expect("a UTF-8 path"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fcsan host write");
    during(&mut writer);
    let out = writer.wait_with_output().expect("fcsan host write ends");
    let wrote = ok("fcsan host write", &out, sans);
    let write_log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{} ({:?} with login)", wrote.trim(), started.elapsed());
    assert!(
        wrote.starts_with(&format!("wrote {}.0 MiB", len / MIB)),
        "{wrote}"
    );
    let started = Instant::now();
    let out = sans.host(
        from,
        &[
            "read",
            "--target",
            &ctl,
            "--lun",
            &lun,
            "--length",
            &len.to_string(),
            back.to_str().expect("a UTF-8 path"),
        ],
    );
    let read = ok("fcsan host read", &out, sans);
    eprintln!("{} ({:?} with login)", read.trim(), started.elapsed());
    same_file(&back, &data);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&back);
    write_log
}

/// Panics unless the file at `path` holds `data` exactly.
fn same_file(path: &Path, data: &[u8]) {
    let got = std::fs::read(path).expect("the file read back");
    assert_eq!(got.len(), data.len(), "{} is not as long", path.display());
    if let Some(at) = got.iter().zip(data).position(|(a, b)| a != b) {
        panic!("{} differs from the source from byte {at}", path.display());
    }
}

/// The tests of this file one at a time: each runs a SAN of several processes, and two at once
/// on a two-core machine only slow both down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two SANs; a host on B moves 256 MiB through its own controller to a volume owned by A.
/// While it writes, another volume is built at A: B's controller serves a new LUN, and the
/// host's next command ends in REPORTED LUNS DATA HAS CHANGED, which the write gets past.
#[test]
fn two_sans_host_on_b_moves_256_mib_to_a_volume_owned_by_a() {
    let _one = one_at_a_time();
    let sans = Sans::start(
        vec![Site::new("a", 1, 320 * MIB), Site::new("b", 2, 64 * MIB)],
        None,
    );
    build(&sans, 0, "big", "256MiB");
    let log_b = sans.path("ctl-b.log");
    let mut run_time_lun = None;
    let stderr = round_trip(&sans, 1, 256 * MIB, 256 * MIB, |writer| {
        std::thread::sleep(Duration::from_secs(2));
        build(&sans, 0, "extra", "16MiB");
        // When B serves it, and whether the write still ran then (and for how long after).
        let deadline = Instant::now() + SETTLE;
        while !std::fs::read_to_string(&log_b)
            .unwrap_or_default()
            .contains("virtual LUN served volume=extra")
        {
            assert!(Instant::now() < deadline, "B never served extra");
            std::thread::sleep(Duration::from_millis(20));
        }
        let served = Instant::now();
        if writer.try_wait().expect("the writer's state").is_none() {
            while writer.try_wait().expect("the writer's state").is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            run_time_lun = Some(served.elapsed());
        }
    });
    match run_time_lun {
        // Still writing well after the new LUN: its next command met the unit attention.
        Some(left) if left > Duration::from_secs(2) => {
            assert!(
                stderr.contains("REPORTED LUNS DATA HAS CHANGED")
                    && stderr.contains("the command is sent again"),
                "the write ran {left:?} after a LUN was added at B but met no unit \
                 attention:\n{stderr}"
            );
            eprintln!("the write got past REPORTED LUNS DATA HAS CHANGED; it ran {left:?} more");
        }
        other => eprintln!("the write ended {other:?} after the new LUN: not exercised"),
    }
}

/// Two SANs with 20 ms of round trip between their gateways (the WAN relay in this process,
/// 10 ms each way): a host on B moves 256 MiB through its controller to a volume owned by A,
/// the whole of it over the relay. Eight 1 MiB commands in flight hide the round trips, so on
/// two cores a debug build moves about as fast as without the delay (CPU-bound).
#[test]
fn two_sans_at_20_ms_host_on_b_moves_256_mib_to_a_volume_owned_by_a() {
    let _one = one_at_a_time();
    let wan = Impairment {
        one_way_delay: Duration::from_millis(10),
        bandwidth_bps: None,
    };
    let sans = Sans::start(
        vec![Site::new("a", 1, 320 * MIB), Site::new("b", 2, 64 * MIB)],
        Some(wan),
    );
    build(&sans, 0, "far", "256MiB");
    round_trip(&sans, 1, 256 * MIB, 256 * MIB, |_| {});
    let relay = sans.relays[0].counters();
    eprintln!(
        "through the relay: {} MiB to A, {} MiB to B",
        relay.bytes_to_upstream / MIB,
        relay.bytes_to_client / MIB
    );
    // The data went over the emulated WAN: B dialed A through the relay.
    assert!(relay.bytes_to_upstream >= 256 * MIB, "{relay:?}");
    assert!(relay.bytes_to_client >= 256 * MIB, "{relay:?}");
}

/// Three SANs in a chain A — B — C (B the middle; A and C are not linked): a host on C writes
/// a 256 MiB random file to a volume owned by A through C's controller, whose commands to A's
/// go through B's switch; a replica is added on B; the file reads back byte-exact through C's
/// controller and through A's.
#[test]
fn three_sans_host_on_c_reaches_a_volume_owned_by_a_through_b() {
    let _one = one_at_a_time();
    let sans = Sans::start(
        vec![
            Site::new("a", 1, 320 * MIB),
            Site::new("b", 2, 320 * MIB),
            Site::new("c", 3, 64 * MIB),
        ],
        None,
    );
    build(&sans, 0, "chain", "256MiB");
    let src = sans.path("chain.bin");
    let data = random_file(&src, (256 * MIB) as usize, seed());
    let lun_c = sans.virtual_lun(2, 256 * MIB).to_string();
    let out = sans.host(
        2,
        &[
            "write",
            "--target",
            &sans.sites[2].controller_wwpn(),
            "--lun",
            &lun_c,
            src.to_str().expect("a UTF-8 path"),
        ],
    );
    let wrote = ok("fcsan host write at C", &out, &sans);
    assert!(wrote.starts_with("wrote 256.0 MiB"), "{wrote}");
    // A replica on B, followed to the end by the CLI: the reads below see the same bytes.
    let replica = sans.volume(0, &["replica", "chain", "--site", "b", "--wait"]);
    assert!(replica.contains("in-sync"), "{replica}");
    assert!(replica.contains("256 MiB of 256 MiB (100%)"), "{replica}");
    for (site, what) in [(2, "C"), (0, "A")] {
        let lun = sans.virtual_lun(site, 256 * MIB).to_string();
        let back = sans.path(&format!("back-{what}.bin"));
        let out = sans.host(
            site,
            &[
                "read",
                "--target",
                &sans.sites[site].controller_wwpn(),
                "--lun",
                &lun,
                "--length",
                "256MiB",
                back.to_str().expect("a UTF-8 path"),
            ],
        );
        ok(&format!("fcsan host read at {what}"), &out, &sans);
        same_file(&back, &data);
    }
    // A and C are not linked: C's controller reached A's through B's switch.
    let gw_c = std::fs::read_to_string(sans.path("gateway-c.toml")).expect("gateway-c.toml");
    assert!(gw_c.contains(&sans.sites[1].switch_name()), "{gw_c}");
    assert!(!gw_c.contains(&sans.sites[0].switch_name()), "{gw_c}");
}

/// Bytes of one numbered block of the kill test's stream.
const BLOCK_BYTES: u64 = 64 << 10;
/// Writes of the stream in flight at once.
const IN_FLIGHT: usize = 8;

/// Block `n` of the stream of run `seed`: every 512-byte sector starts with the block's number,
/// the sector's index in it and the run's seed; the rest is drawn from them.
fn numbered_block(seed: u64, n: u64) -> Bytes {
    let mut b = Vec::with_capacity(BLOCK_BYTES as usize);
    for s in 0..BLOCK_BYTES / 512 {
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&s.to_le_bytes());
        b.extend_from_slice(&seed.to_le_bytes());
        let mut x = seed ^ (n << 24) ^ s;
        while b.len() % 512 != 0 {
            x = splitmix(x);
            b.extend_from_slice(&x.to_le_bytes());
        }
    }
    Bytes::from(b)
}

/// The [`BLOCK_BYTES`] of `data` at byte `at`.
fn block_at(data: &[u8], at: u64) -> &[u8] {
    &data[at as usize..(at + BLOCK_BYTES) as usize]
}

/// The in-process host's way to `wwpn` (logged in with it as a target), once its LUN `lun`
/// takes commands: TEST UNIT READY until the unit attentions are consumed and the LUN is
/// served.
async fn reach(init: &Initiator, wwpn: Wwn, lun: Lun) -> FcId {
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "{wwpn} LUN {lun} never ready: {last}"
        );
        let Some(t) = init
            .node()
            .targets()
            .into_iter()
            .find(|t| t.port_name == wwpn)
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match init.test_unit_ready(t.port_id, lun).await {
            Ok(()) => return t.port_id,
            Err(ScsiError::CheckCondition(s)) if s.key == SenseKey::UNIT_ATTENTION => {}
            Err(e) => {
                // Not served yet (a restarted controller), or not logged in again yet.
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the stream of writes did.
#[derive(Debug, Default)]
struct Stream {
    /// Blocks whose write was acknowledged (GOOD), by number.
    acked: BTreeSet<u64>,
    /// Blocks whose write was sent, acknowledged or not.
    sent: u64,
    /// Writes that failed, with why, and whether the owner had been killed by then.
    failed: Vec<(u64, String, bool)>,
}

/// A host on A writes a stream of numbered 64 KiB blocks with FUA, eight in flight, to a
/// volume owned by A, through A's controller; the test records every acknowledged write (the
/// host is an FC node of this process on A's gateway, over TCP). A's controller is SIGKILLed
/// after a random number of acknowledgements, then restarted on its database: every
/// acknowledged block is read back through the restarted controller (`fcsan host read`) and
/// straight from the array's LUN where the volume's map puts it (`fcsan host read` of the
/// array), the blocks never sent are zeros, and the restarted controller takes writes again.
#[test]
fn owner_controller_killed_mid_write_keeps_every_acknowledged_block() {
    let _one = one_at_a_time();
    let mut sans = Sans::start(
        vec![Site::new("a", 1, 128 * MIB), Site::new("b", 2, 64 * MIB)],
        None,
    );
    const CAPACITY: u64 = 64 * MIB;
    build(&sans, 0, "kept", "64MiB");
    let lun_number = sans.virtual_lun(0, CAPACITY);
    let lun = Lun::from_index(lun_number).expect("a LUN number");
    let ctl: Wwn = sans.sites[0].controller_wwpn().parse().expect("a WWPN");
    let file = topology::config::load_host(&sans.host_file(0, 2)).expect("host-a-2.toml");
    let init = {
        let _in = sans.rt.enter();
        topology::roles::host(&file, Duration::from_secs(5))
    };
    let to = sans.rt.block_on(reach(&init, ctl, lun));
    let cap = sans
        .rt
        .block_on(init.read_capacity(to, lun))
        .expect("READ CAPACITY");
    let bs = cap.block_size();
    assert_eq!(cap.blocks() * u64::from(bs), CAPACITY);
    let per_block = BLOCK_BYTES / u64::from(bs);

    let seed = seed();
    let blocks = CAPACITY / BLOCK_BYTES;
    let kill_after = 64 + splitmix(seed) % 384;
    let stream: Arc<Mutex<Stream>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stream, killed, init) = (stream.clone(), killed.clone(), init.clone());
        sans.rt.spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for n in 0..blocks {
                if killed.load(Ordering::SeqCst) {
                    break;
                }
                while set.len() >= IN_FLIGHT {
                    set.join_next().await;
                }
                if killed.load(Ordering::SeqCst) {
                    break;
                }
                stream.lock().expect("the stream").sent = n + 1;
                let (stream, killed, init) = (stream.clone(), killed.clone(), init.clone());
                set.spawn(async move {
                    let r = init
                        .write(to, lun, n * per_block, numbered_block(seed, n), bs, true)
                        .await;
                    let mut s = stream.lock().expect("the stream");
                    match r {
                        Ok(()) => {
                            s.acked.insert(n);
                        }
                        Err(e) => s
                            .failed
                            .push((n, e.to_string(), killed.load(Ordering::SeqCst))),
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    };
    let started = Instant::now();
    loop {
        let s = stream.lock().expect("the stream");
        assert!(
            s.failed.is_empty(),
            "writes failed before the kill: {:?}\n{}",
            s.failed,
            sans.logs()
        );
        if s.acked.len() as u64 >= kill_after {
            break;
        }
        assert!(
            !writer.is_finished() && started.elapsed() < SETTLE,
            "the stream stopped at {} acknowledged writes",
            s.acked.len()
        );
        drop(s);
        std::thread::sleep(Duration::from_millis(1));
    }
    killed.store(true, Ordering::SeqCst);
    sans.sites[0]
        .controller
        .as_mut()
        .expect("A's controller")
        .kill();
    let killed_at = started.elapsed();
    // The writes in flight end: acknowledged (the answer was on its way), or failed.
    sans.rt.block_on(writer).expect("the writer task");
    let Stream {
        acked,
        sent,
        failed,
    } = std::mem::take(&mut *stream.lock().expect("the stream"));
    let early: Vec<_> = failed.iter().filter(|f| !f.2).collect();
    assert!(early.is_empty(), "writes failed before the kill: {early:?}");
    eprintln!(
        "killed A's controller after {} acknowledged writes (aimed at {kill_after}; seed \
         {seed:#x}) at {killed_at:?}; {sent} sent, {} failed",
        acked.len(),
        failed.len()
    );
    assert!(acked.len() as u64 >= kill_after && sent < blocks);

    sans.start_controller(0);
    sans.wait_for_peers();

    // Through the restarted controller, as a host process reads it.
    let through = sans.path("through.bin");
    let deadline = Instant::now() + SETTLE;
    loop {
        let out = sans.host(
            0,
            &[
                "read",
                "--target",
                &sans.sites[0].controller_wwpn(),
                "--lun",
                &lun_number.to_string(),
                "--length",
                &CAPACITY.to_string(),
                through.to_str().expect("a UTF-8 path"),
            ],
        );
        if out.status.success() {
            break;
        }
        // Its LUN is served once it is ready again; until then the read is refused.
        assert!(
            Instant::now() < deadline,
            "no read through the restarted controller: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            sans.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let through = std::fs::read(&through).expect("the volume read back");
    for &n in &acked {
        assert!(
            block_at(&through, n * BLOCK_BYTES) == &numbered_block(seed, n)[..],
            "acknowledged block {n} is not what was written (through the restarted controller)"
        );
    }
    for n in sent..blocks {
        assert!(
            block_at(&through, n * BLOCK_BYTES).iter().all(|&b| b == 0),
            "block {n}, never written, is not zeros"
        );
    }

    // Straight from the array, where the volume's map puts each block.
    let view = get(&sans.sites[0].api, "/v1/volumes/kept");
    // (virtual byte, bytes, real byte) of each primary row.
    let rows: Vec<(u64, u64, u64)> = view["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["copy"] == 0)
        .map(|r| {
            assert_eq!(r["array"], sans.sites[0].array(), "{view:#}");
            assert_eq!(r["lun"], 0, "{view:#}");
            let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
            (
                n("virtual_start") * 512,
                n("sectors") * 512,
                n("real_start") * n("block_size"),
            )
        })
        .collect();
    let end = rows
        .iter()
        .map(|(_, len, real)| real + len)
        .max()
        .expect("a row");
    let array = sans.path("array.bin");
    let out = sans.host(
        0,
        &[
            "read",
            "--target",
            &sans.sites[0].array(),
            "--lun",
            "0",
            "--length",
            &end.to_string(),
            array.to_str().expect("a UTF-8 path"),
        ],
    );
    ok("fcsan host read of the array", &out, &sans);
    let array = std::fs::read(&array).expect("the array's LUN read back");
    for &n in &acked {
        let at = n * BLOCK_BYTES;
        let (v, _, real) = rows
            .iter()
            .find(|(v, len, _)| *v <= at && at + BLOCK_BYTES <= v + len)
            .unwrap_or_else(|| panic!("no row holds block {n}: {view:#}"));
        assert!(
            block_at(&array, real + (at - v)) == &numbered_block(seed, n)[..],
            "acknowledged block {n} is not on the array where the map puts it"
        );
    }
    let _ = std::fs::remove_file(sans.path("through.bin"));
    let _ = std::fs::remove_file(sans.path("array.bin"));

    // The restarted controller takes writes again: the last block, written and read back. The
    // host's time-out is 5 s (for the writes the kill cuts off); on a machine whose disk is
    // busy with other work one FUA write can take longer, and a host retries a command that
    // timed out (as SCSI midlayers do), so this one may be sent up to three times.
    let last = blocks - 1;
    let data = numbered_block(seed ^ 1, last);
    sans.rt.block_on(async {
        let to = reach(&init, ctl, lun).await;
        let mut tries = 0;
        loop {
            tries += 1;
            match init
                .write(to, lun, last * per_block, data.clone(), bs, true)
                .await
            {
                Ok(()) => break,
                Err(ScsiError::Node(NodeError::TimedOut)) if tries < 3 => {
                    eprintln!("a write after the restart timed out (try {tries}); sent again");
                }
                Err(e) => panic!(
                    "a write after the restart (try {tries}): {e:?}\n{}",
                    sans.logs()
                ),
            }
        }
        let back = init
            .read(to, lun, last * per_block, per_block as u32, bs)
            .await
            .expect("a read after the restart");
        assert_eq!(back, data);
        init.node().shutdown().await;
    });
}
