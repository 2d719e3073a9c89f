//! Separate hosts for real: every role of two SANs in a network namespace of its own, with its
//! own addresses, one `fcsan` process a role started with `ip netns exec`, and the WAN between
//! the two gateways through `fcsan relay` in a namespace of its own.
//!
//! ```text
//!  site A                                                     site B
//!  a-ctl  10.201.1.2 ─┐                                  ┌─ 10.202.1.2  b-ctl
//!  a-disk 10.201.2.2 ─┼─ a-gw ── wan (fcsan relay) ── b-gw ─┼─ 10.202.2.2  b-disk
//!  a-host 10.201.3.2 ─┘  10.200.1.1  10.200.1.2  10.200.2.2  10.200.2.1 └─ 10.202.3.2  b-host
//! ```
//!
//! Each role's namespace is joined to its site gateway's by a veth pair (the gateway's switch
//! takes node links on every address of its namespace); gateway A dials the relay, which relays
//! to gateway B. The scenario is `fcsan up`'s: host A lists the LUNs of both sites, writes a
//! file to a LUN on site B through the tunnel and reads it back; the controllers find each
//! other; ctl-a builds vol1; host A writes vol1 through ctl-a and host B reads the same bytes
//! through ctl-b. Then ctl-b builds volb on site B's disk and host B writes it. The WAN is cut
//! (both gateways' WAN interfaces down: silence, as a real cut, noticed by FCIP's K_A_TOV) and
//! ctl-a is SIGKILLed; host B writes and reads volb several times through ctl-b with no error.
//! The WAN comes back and ctl-a restarts on its database; both controllers converge on the
//! same volumes and versions, and every acknowledged write reads back: vol1 from host A and
//! host B, volb from host A through the tunnel.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`) and iproute2; fails saying so
//! when either is missing. Namespaces are named `fcsan-<pid>-<role>` and removed when the test
//! ends, panics included; ones left by a test process that no longer runs are removed first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/processes.rs"]
#[allow(dead_code)] // This test starts its roles through `ip netns exec`, not `Proc::spawn`.
mod processes;
use processes::{last_word, logs, Proc};

const KEY: &str = "00112233445566778899aabbccddeeff";
/// How long a condition may take on a busy two-core machine.
const WAIT: Duration = Duration::from_secs(60);
/// Longest a single `fcsan host` or `fcsan volume` run may take before the test calls it hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);
/// The switch port every gateway takes node links on, and the FCIP port.
const NODE_PORT: u16 = 7001;
const FCIP_PORT: u16 = 3225;
const MIB: u64 = 1 << 20;
/// Bytes each host file moves.
const FILE_BYTES: u64 = 4 * MIB;
/// vol1's and volb's capacities (different, so that `fcsan host list` tells them apart).
const VOL1_BYTES: u64 = 8 * MIB;
const VOLB_BYTES: u64 = 12 * MIB;

/// The network namespaces of this test run; each deleted (with its veths) when dropped.
struct Namespaces {
    prefix: String,
    names: Vec<String>,
}

impl Namespaces {
    /// Checks for `ip`, removes namespaces left by dead test processes, and creates none yet.
    fn new() -> Namespaces {
        match Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "this test needs the `ip` command of iproute2 ({other:?}): install it with \
                 `apt-get install -y iproute2` (scripts/test does when run as root)"
            ),
        }
        remove_stale();
        Namespaces {
            prefix: format!("fcsan-{}", std::process::id()),
            names: Vec::new(),
        }
    }

    /// Creates namespace `PREFIX-role` with its loopback up; its name.
    fn add(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.prefix);
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip netns add");
        if !out.status.success() {
            panic!(
                "cannot create network namespace {name}: {}\nThis test builds separate hosts \
                 out of network namespaces and needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): \
                 run it as root, e.g. `sudo -E cargo nextest run -p fcsan --test netns` (CI \
                 runs scripts/test as root)",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.names.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes every `fcsan-<pid>-...` namespace whose test process is gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("fcsan-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale network namespace {name}");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair: `if_a` with `addr_a`/24 in `ns_a`, `if_b` with `addr_b`/24 in `ns_b`, both up.
fn veth(ns_a: &str, if_a: &str, addr_a: &str, ns_b: &str, if_b: &str, addr_b: &str) {
    ip(&[
        "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
    ]);
    for (ns, ifname, addr) in [(ns_a, if_a, addr_a), (ns_b, if_b, addr_b)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            ifname,
        ]);
        ip(&["-n", ns, "link", "set", ifname, "up"]);
    }
}

/// `fcsan ARGS` run inside namespace `ns`.
fn fcsan_in(ns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(env!("CARGO_BIN_EXE_fcsan"))
        .env("NO_COLOR", "1")
        .env_remove("FCSAN_API");
    c
}

/// One SAN: the namespaces of its gateway and roles, and its names.
struct Site {
    tag: &'static str,
    /// Its number: the domain, and the second byte of its addresses (10.20n.x.x).
    n: u8,
    gw: String,
    ctl: String,
    disk: String,
    host: String,
}

impl Site {
    fn new(nets: &mut Namespaces, tag: &'static str, n: u8) -> Site {
        let site = Site {
            tag,
            n,
            gw: nets.add(&format!("{tag}-gw")),
            ctl: nets.add(&format!("{tag}-ctl")),
            disk: nets.add(&format!("{tag}-disk")),
            host: nets.add(&format!("{tag}-host")),
        };
        for (k, ns) in [(1, &site.ctl), (2, &site.disk), (3, &site.host)] {
            veth(
                &site.gw,
                &format!("role{k}"),
                &site.gw_addr(k),
                ns,
                "lan",
                &format!("10.{}.{k}.2", 200 + u16::from(n)),
            );
        }
        site
    }

    /// The gateway's address on the veth to role `k` (1 controller, 2 disk, 3 host).
    fn gw_addr(&self, k: u8) -> String {
        format!("10.{}.{k}.1", 200 + u16::from(self.n))
    }

    /// Where role `k`'s node links to its switch.
    fn switch_for(&self, k: u8) -> String {
        format!("{}:{NODE_PORT}", self.gw_addr(k))
    }

    fn switch_name(&self) -> String {
        format!("10:00:00:00:c0:ff:ee:0{}", self.n)
    }

    fn wwpn(&self, kind: u8) -> String {
        format!("{kind:02x}:00:00:00:00:00:0{}:01", self.n)
    }

    fn host_wwpn(&self) -> String {
        self.wwpn(0x21)
    }

    fn disk_wwpn(&self) -> String {
        self.wwpn(0x22)
    }

    fn ctl_wwpn(&self) -> String {
        self.wwpn(0x23)
    }

    fn ctl_name(&self) -> String {
        format!("ctl-{}", self.tag)
    }
}

/// The zones both gateways hold: one zone a host (single-initiator zoning, so that a host's
/// logins and logouts are no RSCN to the other) with the arrays and the controllers, and the
/// controllers with each other and the arrays.
fn zoning(a: &Site, b: &Site) -> String {
    let targets = [a.disk_wwpn(), b.disk_wwpn(), a.ctl_wwpn(), b.ctl_wwpn()];
    let zone = |name: &str, first: Option<String>, members: &[String]| {
        let list: Vec<String> = first
            .iter()
            .chain(members)
            .map(|w| format!("\"{w}\""))
            .collect();
        format!(
            "[[zoneset.zone]]\nname = \"{name}\"\nmembers = [{}]\n\n",
            list.join(", ")
        )
    };
    format!(
        "[zoning]\ndefault = \"no-access\"\nactive = \"sites\"\n\n[[zoneset]]\nname = \"sites\"\n\n{}{}{}",
        zone("host-a", Some(a.host_wwpn()), &targets),
        zone("host-b", Some(b.host_wwpn()), &targets),
        zone("controllers", None, &targets),
    )
}

/// Writes every role's TOML file of site `s` into `dir` (its peer site is `o`).
fn write_configs(dir: &Path, s: &Site, o: &Site, zones: &str) {
    // Site A dials the relay; site B waits for it.
    let peer = if s.n == 1 {
        format!(
            "[[peer]]\nfabric = \"{}\"\ndial = \"10.200.1.2:{FCIP_PORT}\"\nport = 100\nconnections = 2\n",
            o.switch_name()
        )
    } else {
        format!(
            "[[peer]]\nfabric = \"{}\"\nport = 100\nconnections = 2\n",
            o.switch_name()
        )
    };
    let files = [
        (
            format!("gateway-{}.toml", s.tag),
            format!(
                "[switch]\ndomain = {}\nname = \"{}\"\nlisten = \"0.0.0.0:{NODE_PORT}\"\nports = 16\n\n\
                 [fcip]\nlisten = \"10.200.{}.1:{FCIP_PORT}\"\nk_a_tov_ms = 2000\n\n{peer}\n{zones}",
                s.n,
                s.switch_name(),
                s.n
            ),
        ),
        (
            format!("disk-{}.toml", s.tag),
            format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{}\"\nnode_name = \"20:00:00:00:00:00:0{}:01\"\n\n{}",
                s.switch_for(2),
                s.disk_wwpn(),
                s.n,
                if s.n == 1 {
                    "[[lun]]\nlun = 0\npath = \"disk-a-0.img\"\nsize = \"64MiB\"\ntier = \"ssd\"\n"
                        .to_owned()
                } else {
                    // LUN 0 for host B's raw I/O through the tunnel, LUN 1 for volumes.
                    "[[lun]]\nlun = 0\npath = \"disk-b-0.img\"\nsize = \"64MiB\"\ntier = \"slow-hdd\"\n\n\
                     [[lun]]\nlun = 1\npath = \"disk-b-1.img\"\nsize = \"64MiB\"\ntier = \"ssd\"\n"
                        .to_owned()
                }
            ),
        ),
        (
            format!("controller-{}.toml", s.tag),
            format!(
                "[controller]\nname = \"{}\"\nsite = \"{}\"\nport_name = \"{}\"\nswitch = \"{}\"\n\
                 database = \"{}.redb\"\nkey = \"{KEY}\"\napi = \"127.0.0.1:7800\"\n\
                 heartbeat_ms = 300\nscan_period_ms = 1000\ndiscovery_period_ms = 500\n\
                 cache = \"16MiB\"\nlease_ms = 2000\n",
                s.ctl_name(),
                s.tag,
                s.ctl_wwpn(),
                s.switch_for(1),
                s.ctl_name()
            ),
        ),
        (
            format!("host-{}.toml", s.tag),
            format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{}\"\nnode_name = \"20:00:00:00:00:00:0{}:11\"\n",
                s.switch_for(3),
                s.host_wwpn(),
                s.n
            ),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write a config");
    }
}

/// The test's folder, its commands and their checks.
struct Run {
    dir: PathBuf,
}

impl Run {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts `fcsan ROLE --config ROLE-TAG.toml` in namespace `ns`.
    fn role(&self, ns: &str, role: &str, tag: &str) -> Proc {
        let name = format!("{role}-{tag}");
        let mut cmd = fcsan_in(ns);
        cmd.arg(role)
            .arg("--config")
            .arg(self.path(&format!("{name}.toml")));
        Proc::start(&self.dir, cmd, &name)
    }

    /// Runs `cmd` to its end (at most [`COMMAND_LIMIT`]); its output.
    fn output(&self, what: &str, mut cmd: Command) -> Output {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_LIMIT) {
            Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!(
                    "{what} did not end within {COMMAND_LIMIT:?}\n{}",
                    logs(&self.dir)
                )
            }
        }
    }

    /// Runs `cmd`, which must succeed; its stdout.
    fn ok(&self, what: &str, cmd: Command) -> String {
        let out = self.output(what, cmd);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{what} failed: {}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr),
            logs(&self.dir)
        );
        stdout
    }

    /// `fcsan host --config host-TAG.toml ARGS` on site `s`'s host; must succeed.
    fn host(&self, s: &Site, args: &[&str]) -> String {
        let mut cmd = fcsan_in(&s.host);
        cmd.env("RUST_LOG", "warn,fc_node=info")
            .arg("host")
            .arg("--config")
            .arg(self.path(&format!("host-{}.toml", s.tag)))
            .args(args);
        self.ok(&format!("host {} {}", s.tag, args.join(" ")), cmd)
    }

    /// `fcsan host list` on site `s`'s host, for a poll: a failed run (the fabric changing
    /// under its discovery) lists nothing and is logged.
    fn list(&self, s: &Site) -> String {
        let mut cmd = fcsan_in(&s.host);
        cmd.arg("host")
            .arg("--config")
            .arg(self.path(&format!("host-{}.toml", s.tag)))
            .arg("list");
        let out = self.output(&format!("host {} list", s.tag), cmd);
        if !out.status.success() {
            eprintln!(
                "host {} list failed (polled again): {}",
                s.tag,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `fcsan volume --api http://127.0.0.1:7800 --json ARGS` in site `s`'s controller
    /// namespace (the API listens on its loopback); the JSON.
    fn volume(&self, s: &Site, args: &[&str]) -> Value {
        let mut cmd = fcsan_in(&s.ctl);
        cmd.args(["volume", "--api", "http://127.0.0.1:7800", "--json"])
            .args(args);
        let text = self.ok(&format!("volume {} {}", s.tag, args.join(" ")), cmd);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Polls `cond` every 200 ms until it holds; fails naming `what` after [`WAIT`].
    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}\n{}",
                logs(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Site `s`'s controller is ready and sees `other`'s controller up, and has its arrays.
    fn peered(&self, s: &Site, other: &Site) -> bool {
        let peers = self.volume(s, &["peers"]);
        let up = peers.as_array().into_iter().flatten().any(|p| {
            p["name"] == other.ctl_name().as_str() && p["state"] == "up" && !p["fc_id"].is_null()
        });
        let ready = peers[0]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["owner"] == s.ctl_wwpn().as_str() && v["generation"].as_u64() > Some(0));
        let real = self.volume(s, &["real"]);
        up && ready && real["volumes"].as_array().is_some_and(|v| !v.is_empty())
    }

    /// The LUN at which site `s`'s controller serves the volume of `capacity` to `s`'s host,
    /// as `fcsan host list` shows it; waits for it.
    fn virtual_lun(&self, s: &Site, capacity: u64) -> String {
        let size = format!("{} x 512 B", capacity / 512);
        let mut lun = None;
        self.wait(
            &format!("a virtual LUN of {capacity} bytes at {}", s.ctl_name()),
            || {
                let text = self.list(s);
                lun = text
                    .lines()
                    .find(|l| {
                        l.starts_with(&s.ctl_wwpn())
                            && l.contains("VIRTUAL VOLUME")
                            && l.contains(&size)
                    })
                    .and_then(|l| l.split("LUN ").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned);
                lun.is_some()
            },
        );
        lun.unwrap_or_default()
    }

    /// Writes `file` from site `s`'s host to `lun` of `target`.
    fn write(&self, s: &Site, target: &str, lun: &str, file: &Path) {
        let out = self.host(
            s,
            &[
                "write",
                "--target",
                target,
                "--lun",
                lun,
                file.to_str().expect("a UTF-8 path"),
            ],
        );
        assert!(out.starts_with("wrote "), "{out}");
    }

    /// Reads `len` bytes of `lun` of `target` from site `s`'s host, and checks they are the
    /// bytes of `expected`.
    fn read_back(&self, s: &Site, target: &str, lun: &str, expected: &Path) {
        let len = std::fs::metadata(expected)
            .expect("the expected file")
            .len();
        let back = self.path("back.bin");
        let _ = std::fs::remove_file(&back);
        self.host(
            s,
            &[
                "read",
                "--target",
                target,
                "--lun",
                lun,
                "--length",
                &len.to_string(),
                back.to_str().expect("a UTF-8 path"),
            ],
        );
        let (got, want) = (
            std::fs::read(&back).expect("the file read back"),
            std::fs::read(expected).expect("the expected file"),
        );
        assert_eq!(got.len(), want.len(), "{} read back", expected.display());
        if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "host {} read {target} LUN {lun}: differs from {} from byte {at}",
                s.tag,
                expected.display()
            );
        }
    }

    /// A new random file called `name` of [`FILE_BYTES`]; its path.
    fn random(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        topology::write_random(&p, FILE_BYTES).expect("write a random file");
        p
    }

    /// Every volume `s`'s controller lists, as (name, owner, generation, version).
    fn versions(&self, s: &Site) -> Vec<(String, String, u64, u64)> {
        let mut v: Vec<_> = self
            .volume(s, &["list"])
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or_default().to_owned(),
                    v["owner"].as_str().unwrap_or_default().to_owned(),
                    v["generation"].as_u64().unwrap_or(0),
                    v["version"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// Whether `line` says a gateway's FCIP link went `state` (`up` or `down`).
fn link_line(state: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.starts_with("FCIP link to ") && l.contains(&format!(" {state}: "))
}

#[test]
fn sites_in_network_namespaces() {
    let started = Instant::now();
    // Dropped last: the folder, then the namespaces, then (declared later) the processes.
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut nets = Namespaces::new();
    let a = Site::new(&mut nets, "a", 1);
    let b = Site::new(&mut nets, "b", 2);
    let wan = nets.add("wan");
    veth(&a.gw, "wan", "10.200.1.1", &wan, "site-a", "10.200.1.2");
    veth(&b.gw, "wan", "10.200.2.1", &wan, "site-b", "10.200.2.2");
    let run = Run {
        dir: tmp.path().to_path_buf(),
    };
    let zones = zoning(&a, &b);
    write_configs(&run.dir, &a, &b, &zones);
    write_configs(&run.dir, &b, &a, &zones);

    // The WAN: gateway A dials the relay at 10.200.1.2, which relays to gateway B.
    let mut relay_cmd = fcsan_in(&wan);
    relay_cmd.args([
        "relay",
        "--listen",
        &format!("10.200.1.2:{FCIP_PORT}"),
        "--to",
        &format!("10.200.2.1:{FCIP_PORT}"),
        "--delay-ms",
        "2",
        "--rate",
        "1Gbit",
    ]);
    let relay = Proc::start(&run.dir, relay_cmd, "relay");
    relay.line("the relay's address", |l| {
        l.starts_with("relay listening on")
    });
    let gw_b = run.role(&b.gw, "gateway", "b");
    gw_b.line("gateway B's FCIP address", |l| {
        l.starts_with("FCIP listening on")
    });
    let gw_a = run.role(&a.gw, "gateway", "a");
    gw_a.line("gateway A's link up", link_line("up"));
    let disk_a = run.role(&a.disk, "disk", "a");
    let disk_b = run.role(&b.disk, "disk", "b");
    for d in [&disk_a, &disk_b] {
        d.line("its fabric login", |l| l.contains("logged in as"));
    }
    let mut ctl_a = run.role(&a.ctl, "controller", "a");
    let ctl_b = run.role(&b.ctl, "controller", "b");
    for (c, s) in [(&ctl_a, &a), (&ctl_b, &b)] {
        let l = c.line("the API address", |l| l.starts_with("controller "));
        assert_eq!(last_word(&l), "http://127.0.0.1:7800", "{} {l}", s.tag);
    }

    // Host A sees the LUNs of both sites (site B's through the tunnel), then writes a file
    // to site B's LUN 0 and reads it back.
    let mut listing = String::new();
    run.wait("host A to see both arrays", || {
        listing = run.list(&a);
        listing.contains(&a.disk_wwpn()) && listing.contains(&b.disk_wwpn())
    });
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&b.disk_wwpn()) && l.contains("LUN 1   disk  ssd")),
        "{listing}"
    );
    let raw = run.random("raw.bin");
    run.write(&a, &b.disk_wwpn(), "0", &raw);
    run.read_back(&a, &b.disk_wwpn(), "0", &raw);

    // The controllers find each other through the joined name servers; ctl-a builds vol1.
    run.wait("the controllers to peer", || {
        run.peered(&a, &b) && run.peered(&b, &a)
    });
    let built = run.volume(
        &a,
        &[
            "build",
            "--type",
            "ssd",
            "--capacity",
            "8MiB",
            "--name",
            "vol1",
        ],
    );
    assert_eq!(built["owner"], "ctl-a", "{built}");
    assert_eq!(built["capacity"].as_u64(), Some(VOL1_BYTES), "{built}");
    run.wait("vol1 at ctl-b", || {
        run.versions(&b).iter().any(|v| v.0 == "vol1")
    });

    // Host A writes vol1 through ctl-a (the owner); host B reads it through ctl-b.
    let lun1_a = run.virtual_lun(&a, VOL1_BYTES);
    let file1 = run.random("vol1.bin");
    run.write(&a, &a.ctl_wwpn(), &lun1_a, &file1);
    let lun1_b = run.virtual_lun(&b, VOL1_BYTES);
    run.read_back(&b, &b.ctl_wwpn(), &lun1_b, &file1);

    // Site B's own volume, on site B's SSD.
    let built = run.volume(
        &b,
        &[
            "build",
            "--type",
            "ssd",
            "--capacity",
            "12MiB",
            "--name",
            "volb",
        ],
    );
    assert_eq!(built["owner"], "ctl-b", "{built}");
    assert!(
        built["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["array"] == b.disk_wwpn().as_str()),
        "volb is not on site B's disk: {built}"
    );
    let lunb_b = run.virtual_lun(&b, VOLB_BYTES);
    let mut fileb = run.random("volb-0.bin");
    run.write(&b, &b.ctl_wwpn(), &lunb_b, &fileb);

    // Cut the WAN (silence on both sides, no reset) and SIGKILL ctl-a.
    ip(&["-n", &a.gw, "link", "set", "wan", "down"]);
    ip(&["-n", &b.gw, "link", "set", "wan", "down"]);
    ctl_a.kill();
    gw_b.line("gateway B's link down", link_line("down"));
    run.wait("ctl-b to see ctl-a down", || {
        run.volume(&b, &["peers"])
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "ctl-a" && p["state"] == "down")
    });
    // Host B keeps writing and reading site B's volume through ctl-b.
    for round in 1..=3 {
        fileb = run.random(&format!("volb-{round}.bin"));
        run.write(&b, &b.ctl_wwpn(), &lunb_b, &fileb);
        run.read_back(&b, &b.ctl_wwpn(), &lunb_b, &fileb);
    }
    let verified = run.host(
        &b,
        &[
            "verify",
            "--target",
            &b.ctl_wwpn(),
            "--lun",
            &lunb_b,
            fileb.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(verified.contains("identical"), "{verified}");

    // Restore the WAN; ctl-a starts again on its database.
    ip(&["-n", &a.gw, "link", "set", "wan", "up"]);
    ip(&["-n", &b.gw, "link", "set", "wan", "up"]);
    gw_a.line("gateway A's link up again", link_line("up"));
    let ctl_a2 = run.role(&a.ctl, "controller", "a");
    ctl_a2.line("the API address", |l| l.starts_with("controller "));
    drop(ctl_a);
    run.wait("the controllers to converge", || {
        run.peered(&a, &b) && run.peered(&b, &a) && {
            let (va, vb) = (run.versions(&a), run.versions(&b));
            va == vb && va.len() == 2
        }
    });

    // Every acknowledged write reads back: vol1 from both hosts, volb from host A through the
    // tunnel (forwarded by ctl-a to ctl-b).
    let lun1_a = run.virtual_lun(&a, VOL1_BYTES);
    run.read_back(&a, &a.ctl_wwpn(), &lun1_a, &file1);
    run.read_back(&b, &b.ctl_wwpn(), &lun1_b, &file1);
    let lunb_a = run.virtual_lun(&a, VOLB_BYTES);
    run.read_back(&a, &a.ctl_wwpn(), &lunb_a, &fileb);
    run.read_back(&a, &b.disk_wwpn(), "0", &raw);
    eprintln!("two sites in network namespaces: {:?}", started.elapsed());
}
