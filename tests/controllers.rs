//! The virtualization controllers as separate processes over loopback TCP, each SAN its own
//! `fcsan gateway` (FCIP links in a chain A — B — C), `fcsan disk` array and `fcsan controller`,
//! every one from its own TOML file in a temporary folder, every address picked by the system:
//!
//! - three SANs: a volume built at each controller with `fcsan volume build` is shown the same
//!   (owner, capacity, version, state, rows) by all three controllers within one heartbeat of
//!   the build returning; a build too big for its own SAN spills to the next SAN by priority;
//!   an impossible build is a 507 that says what was found where and leaves free space as it
//!   was everywhere;
//! - a controller SIGKILLed during a stream of builds and deletes, restarted on its database,
//!   still holds every change it acknowledged, and its peer converges to the same table.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[path = "support/processes.rs"]
mod processes;
use processes::{fcsan, last_word, Proc};

const KEY: &str = "00112233445566778899aabbccddeeff";
/// The controllers' heartbeat: a volume must be everywhere within one of these.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the SANs may take to come up and find each other.
const SETTLE: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

/// One SAN: its gateway, its disk array and its controller.
struct Site {
    name: &'static str,
    domain: u8,
    /// The LUNs of its array: (tier, size).
    luns: Vec<(&'static str, u64)>,
    /// Sites its builder goes to after its own.
    priority: Vec<&'static str>,
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
    fn new(
        name: &'static str,
        domain: u8,
        luns: &[(&'static str, u64)],
        priority: &[&'static str],
    ) -> Site {
        Site {
            name,
            domain,
            luns: luns.to_vec(),
            priority: priority.to_vec(),
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
}

/// The SANs of one test, in a temporary folder. Site 1 is the hub of the chain: every other
/// site's gateway dials it.
struct Sans {
    dir: tempfile::TempDir,
    sites: Vec<Site>,
}

impl Sans {
    fn start(mut sites: Vec<Site>) -> Sans {
        let dir = tempfile::tempdir().expect("temp dir");
        let hub = 1;
        // The hub first: the others dial its FCIP address.
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
                peers += &format!(
                    "[[peer]]\nfabric = \"{}\"\ndial = \"{}\"\nport = 100\n\n",
                    sites[hub].switch_name(),
                    sites[hub].fcip
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
        let mut sans = Sans { dir, sites };
        for i in 0..sans.sites.len() {
            sans.start_disk(i);
        }
        for i in 0..sans.sites.len() {
            sans.start_controller(i);
        }
        sans.wait_for_peers();
        sans
    }

    fn start_disk(&mut self, i: usize) {
        let s = &mut self.sites[i];
        let mut luns = String::new();
        for (n, (tier, bytes)) in s.luns.iter().enumerate() {
            luns += &format!(
                "[[lun]]\nlun = {n}\npath = \"{}-{n}.img\"\nsize = {bytes}\ntier = \"{tier}\"\n\n",
                s.name
            );
        }
        let file = self.dir.path().join(format!("disk-{}.toml", s.name));
        write(
            &file,
            &format!(
                "[node]\nswitch = \"{}\"\nport_name = \"{}\"\n\
                 node_name = \"20:00:00:00:00:00:{:02x}:01\"\n\n{luns}",
                s.nodes,
                s.array(),
                s.domain
            ),
        );
        let disk = Proc::spawn(self.dir.path(), "disk", &file, &format!("disk-{}", s.name));
        disk.line("its fabric login", |l| l.contains("logged in as"));
        s.disk = Some(disk);
    }

    fn controller_file(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("controller-{}.toml", self.sites[i].name))
    }

    /// Starts site `i`'s controller (again, on the same database, when it ran before).
    fn start_controller(&mut self, i: usize) {
        let file = self.controller_file(i);
        let s = &mut self.sites[i];
        let priority: Vec<String> = s.priority.iter().map(|p| format!("\"{p}\"")).collect();
        write(
            &file,
            &format!(
                "[controller]\nname = \"{}\"\nsite = \"{}\"\nport_name = \"{}\"\n\
                 switch = \"{}\"\ndatabase = \"ctl-{}.redb\"\nkey = \"{KEY}\"\n\
                 api = \"127.0.0.1:0\"\nheartbeat_ms = {}\npriority = [{}]\n\
                 scan_period_ms = 1000\ndiscovery_period_ms = 500\n",
                s.controller_name(),
                s.name,
                s.controller_wwpn(),
                s.nodes,
                s.name,
                HEARTBEAT.as_millis(),
                priority.join(", ")
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

    /// Waits until every controller sees every other one up, has found its own LUNs and takes
    /// changes.
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
                if up == want && luns == s.luns.len() && ready(&peers, &s.controller_wwpn()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} sees {up:?} up (not {want:?}) and {luns} LUNs (not {}):\n{peers:#}\n{}",
                    s.controller_name(),
                    s.luns.len(),
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

    /// `fcsan volume --api URL ARGS` against site `i`'s controller.
    fn volume(&self, i: usize, args: &[&str]) -> Output {
        fcsan()
            .args(["volume", "--api", &self.sites[i].api])
            .args(args)
            .output()
            .expect("run fcsan volume")
    }
}

/// Whether the controller of WWPN `me`, whose `GET /v1/peers` is `peers`, takes changes: it
/// has a generation of its own (one that started on an empty database takes it once it has
/// pulled its records back from its peers, or waited for them long enough).
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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// The status and JSON body (`null` when empty) of a request.
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let r = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", Some(b)) => agent.post(url).send_json(b),
        _ => panic!("{method} {url}: not a request of this test"),
    };
    let mut r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let mut text = String::new();
    let _ = r.body_mut().as_reader().read_to_string(&mut text);
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"))
    };
    (status, v)
}

fn get(api: &str, path: &str) -> Value {
    let (status, v) = call(&agent(), "GET", &format!("{api}{path}"), None);
    assert_eq!(status, 200, "GET {api}{path}: {v}");
    v
}

/// GET of a path that may answer 404: `None` then.
fn get_opt(api: &str, path: &str) -> Option<Value> {
    let (status, v) = call(&agent(), "GET", &format!("{api}{path}"), None);
    match status {
        200 => Some(v),
        404 => None,
        _ => panic!("GET {api}{path}: {status} {v}"),
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fcsan volume failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Polls every 10 ms until every site in `others` shows `name` as `want`; how long that took
/// after `since`.
fn seen_everywhere(
    sans: &Sans,
    others: &[usize],
    name: &str,
    want: &Value,
    since: Instant,
) -> Duration {
    let deadline = since + SETTLE;
    let mut pending: Vec<usize> = others.to_vec();
    while !pending.is_empty() {
        pending.retain(|&i| {
            get_opt(&sans.sites[i].api, &format!("/v1/volumes/{name}")).as_ref() != Some(want)
        });
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not the same at {:?}: want {want:#}, {} has {:#}",
            pending,
            sans.sites[pending[0]].name,
            get_opt(&sans.sites[pending[0]].api, &format!("/v1/volumes/{name}"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    since.elapsed()
}

/// The arrays a volume's rows are on, and its sectors in all.
fn rows_summary(v: &Value) -> (BTreeSet<String>, u64) {
    let rows = v["rows"].as_array().expect("rows");
    let arrays = rows
        .iter()
        .map(|r| r["array"].as_str().unwrap_or_default().to_owned())
        .collect();
    let sectors = rows
        .iter()
        .map(|r| r["sectors"].as_u64().unwrap_or(0))
        .sum();
    (arrays, sectors)
}

#[test]
fn three_sans_build_replicate_spill_and_refuse() {
    let sans = Sans::start(vec![
        // A: SSD, and a little fast disk that a bigger fast build outgrows.
        Site::new(
            "a",
            1,
            &[("ssd", 256 * MIB), ("fast-hdd", 32 * MIB)],
            &["b", "c"],
        ),
        Site::new("b", 2, &[("fast-hdd", 256 * MIB)], &["c", "a"]),
        Site::new("c", 3, &[("slow-hdd", 256 * MIB)], &["a", "b"]),
    ]);
    let all = [0usize, 1, 2];

    // A volume built at each controller, of its own SAN's tier: everywhere the same within a
    // heartbeat.
    for (i, tier) in [(0, "ssd"), (1, "fast-hdd"), (2, "slow-hdd")] {
        let site = &sans.sites[i];
        let name = format!("vol{}", site.name.to_uppercase());
        let out = sans.volume(
            i,
            &[
                "build",
                "--type",
                tier,
                "--capacity",
                "16MiB",
                "--name",
                &name,
            ],
        );
        let built = Instant::now();
        let text = ok(&out);
        assert!(text.starts_with(&format!("built {name}\n")), "{text}");
        assert!(text.contains(&site.controller_name()), "{text}");
        assert!(
            text.contains("16 MiB") && text.contains(tier) && text.contains("online"),
            "{text}"
        );
        assert!(
            text.contains(&site.array()),
            "the sector map names the array: {text}"
        );

        let here = get(&site.api, &format!("/v1/volumes/{name}"));
        assert_eq!(here["owner"], site.controller_name());
        assert_eq!(here["capacity"], 16 * MIB);
        assert_eq!(here["state"], "online");
        assert_eq!(here["site"], site.name);
        let (arrays, sectors) = rows_summary(&here);
        assert_eq!(arrays, BTreeSet::from([site.array()]), "{here:#}");
        assert_eq!(sectors, 16 * MIB / 512);
        let others: Vec<usize> = all.iter().copied().filter(|&o| o != i).collect();
        let took = seen_everywhere(&sans, &others, &name, &here, built);
        eprintln!("{name} at every controller {took:?} after its build returned");
        assert!(
            took <= HEARTBEAT,
            "{name} took {took:?} to reach every controller"
        );
    }

    // 48 MiB of fast disk at A: its 32 MiB, then B's (first in A's priority).
    let out = sans.volume(
        0,
        &[
            "build",
            "--type",
            "fast-hdd",
            "--capacity",
            "48MiB",
            "--name",
            "spill",
        ],
    );
    let built = Instant::now();
    let text = ok(&out);
    assert!(text.starts_with("built spill\n"), "{text}");
    let spill = get(&sans.sites[0].api, "/v1/volumes/spill");
    let (arrays, sectors) = rows_summary(&spill);
    assert_eq!(
        arrays,
        BTreeSet::from([sans.sites[0].array(), sans.sites[1].array()]),
        "{spill:#}"
    );
    assert_eq!(sectors, 48 * MIB / 512);
    let first = &spill["rows"][0];
    assert_eq!(
        first["array"],
        sans.sites[0].array(),
        "its own SAN first: {spill:#}"
    );
    let took = seen_everywhere(&sans, &[1, 2], "spill", &spill, built);
    assert!(
        took <= HEARTBEAT,
        "spill took {took:?} to reach every controller"
    );

    // 1 GiB of SSD at B: no SAN has it. A 507 that says what was found where; free space as it
    // was at every controller.
    let free = |i: usize| get(&sans.sites[i].api, "/v1/real-volumes");
    let before: Vec<Value> = all.iter().map(|&i| free(i)).collect();
    let a_ssd_free = before[0]["free"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["media"] == "ssd")
        .map(|f| f["free_bytes"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(a_ssd_free, 240 * MIB, "{:#}", before[0]);
    let (status, body) = call(
        &agent(),
        "POST",
        &format!("{}/v1/volumes", sans.sites[1].api),
        Some(json!({"name": "toobig", "type": "ssd", "capacity": "1GiB"})),
    );
    assert_eq!(status, 507, "{body:#}");
    let found: BTreeMap<String, u64> = body["found"]
        .as_array()
        .expect("found")
        .iter()
        .map(|f| {
            assert_eq!(f["media"], "ssd");
            (
                f["site"].as_str().unwrap_or_default().to_owned(),
                f["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        found,
        BTreeMap::from([("a".into(), 240 * MIB), ("b".into(), 0), ("c".into(), 0)]),
        "{body:#}"
    );
    let order: Vec<&str> = body["found"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["site"].as_str())
        .collect();
    assert_eq!(order, ["b", "c", "a"], "B's own SAN, then its priority");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("240 MiB of ssd at ctl-a on site a"),
        "{body:#}"
    );
    for &i in &all {
        assert_eq!(
            free(i),
            before[i],
            "free space at {} changed",
            sans.sites[i].name
        );
        assert_eq!(get_opt(&sans.sites[i].api, "/v1/volumes/toobig"), None);
    }
}

/// One change of the stream.
#[derive(Debug, Clone)]
enum Change {
    Built(String),
    Deleted(String),
}

/// The stream's log: every change sent, in order, and how many of the first were
/// acknowledged.
#[derive(Debug, Clone, Default)]
struct Stream {
    sent: Vec<Change>,
    acked: usize,
    /// The answer that ended the stream, when not the kill.
    failure: Option<String>,
}

#[test]
fn controller_killed_mid_stream_keeps_what_it_acknowledged() {
    let mut sans = Sans::start(vec![
        Site::new("a", 1, &[("ssd", 128 * MIB)], &["b"]),
        Site::new("b", 2, &[("ssd", 128 * MIB)], &["a"]),
    ]);
    let seed = splitmix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    ) | 1;
    let kill_after = 300 + splitmix(seed) % 200;

    // 1000 changes at A, one after another: a build of a 1 MiB volume, or the delete of the
    // oldest one built when more than a few are live. Each is logged before it is sent, and
    // counted acknowledged when its answer came back.
    let log: Arc<Mutex<Stream>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (log, stop, api) = (log.clone(), stop.clone(), sans.sites[0].api.clone());
        std::thread::spawn(move || {
            let agent = agent();
            let mut live: VecDeque<String> = VecDeque::new();
            let mut x = seed;
            for n in 0..1000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let delete = live.len() > 8 || (live.len() > 2 && x % 3 == 0);
                let (change, answer) = if delete {
                    let name = live.pop_front().expect("a live volume");
                    log.lock().unwrap().sent.push(Change::Deleted(name.clone()));
                    let r = agent.delete(format!("{api}/v1/volumes/{name}")).call();
                    (Change::Deleted(name), r.map(|r| r.status().as_u16()))
                } else {
                    let name = format!("s{n}");
                    log.lock().unwrap().sent.push(Change::Built(name.clone()));
                    let r = agent.post(format!("{api}/v1/volumes")).send_json(json!({
                        "name": name, "type": "ssd", "capacity": "1MiB"
                    }));
                    live.push_back(name.clone());
                    (Change::Built(name), r.map(|r| r.status().as_u16()))
                };
                match (&change, answer) {
                    (Change::Built(_), Ok(201)) | (Change::Deleted(_), Ok(204)) => {
                        log.lock().unwrap().acked += 1;
                    }
                    (_, answer) => {
                        log.lock().unwrap().failure = Some(format!("{change:?}: {answer:?}"));
                        return;
                    }
                }
            }
        })
    };
    let started = Instant::now();
    while (log.lock().unwrap().acked as u64) < kill_after {
        assert!(
            !driver.is_finished(),
            "the stream stopped early: {:?}\n{}",
            log.lock().unwrap().failure,
            sans.logs()
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the stream is too slow: {} changes in {:?}",
            log.lock().unwrap().acked,
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    sans.sites[0].controller.as_mut().expect("A runs").kill();
    let killed_at = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    driver.join().expect("the driver thread");
    let Stream { sent, acked, .. } = log.lock().unwrap().clone();
    assert!(
        acked >= kill_after as usize && acked < 1000,
        "{acked} acknowledged"
    );
    eprintln!(
        "killed A after {acked} acknowledged changes (aimed at {kill_after}) in {killed_at:?} \
         (seed {seed:#x}); {} sent",
        sent.len()
    );

    // What A must hold: every acknowledged build, less the acknowledged deletes. The change
    // under way at the kill may or may not have been made.
    let mut must: BTreeSet<String> = BTreeSet::new();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for c in &sent[..acked] {
        match c {
            Change::Built(n) => {
                must.insert(n.clone());
            }
            Change::Deleted(n) => {
                must.remove(n);
                gone.insert(n.clone());
            }
        }
    }
    let mut maybe: BTreeSet<String> = BTreeSet::new();
    for c in &sent[acked..] {
        match c {
            Change::Built(n) | Change::Deleted(n) => {
                must.remove(n);
                maybe.insert(n.clone());
            }
        }
    }

    sans.start_controller(0);
    let names = |i: usize| -> BTreeSet<String> {
        get(&sans.sites[i].api, "/v1/volumes")
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let after = names(0);
    let missing: Vec<_> = must.difference(&after).collect();
    assert!(missing.is_empty(), "A lost acknowledged builds {missing:?}");
    let back: Vec<_> = gone.intersection(&after).collect();
    assert!(
        back.is_empty(),
        "acknowledged deletes came back at A: {back:?}"
    );
    let extra: Vec<_> = after
        .difference(&must)
        .filter(|n| !maybe.contains(*n))
        .collect();
    assert!(extra.is_empty(), "A holds volumes nobody built: {extra:?}");

    // A and B converge on the same table.
    let deadline = Instant::now() + SETTLE;
    loop {
        let a = get(&sans.sites[0].api, "/v1/volumes");
        let b = get(&sans.sites[1].api, "/v1/volumes");
        if a == b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A and B differ: A {:?}, B {:?}\n{}",
            names(0),
            names(1),
            sans.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = names(0);
    assert!(must.is_subset(&after) && gone.is_disjoint(&after));

    // A takes changes again, and B hears of them.
    let (status, body) = call(
        &agent(),
        "POST",
        &format!("{}/v1/volumes", sans.sites[0].api),
        Some(json!({"name": "after-restart", "type": "ssd", "capacity": "1MiB"})),
    );
    assert_eq!(status, 201, "{body:#}");
    let built = Instant::now();
    let here = get(&sans.sites[0].api, "/v1/volumes/after-restart");
    let took = seen_everywhere(&sans, &[1], "after-restart", &here, built);
    // (Not held to one heartbeat: the restarted controller first meets its peer again.)
    assert!(
        took <= 10 * HEARTBEAT,
        "after-restart took {took:?} to reach B"
    );
}

/// SplitMix64's output function: a well-mixed 64-bit number from `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The role's own start and stop: an API address already taken fails at once and says which;
/// SIGTERM stops it cleanly (even with no switch to log in to), and it says so.
#[test]
fn controller_role_refuses_a_taken_api_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address");
    // Nobody listens where the switch should be: the controller keeps trying to log in.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let switch = nobody.local_addr().expect("its address");
    drop(nobody);
    let file = dir.path().join("controller.toml");
    let config = |api: &str| {
        format!(
            "[controller]\nname = \"ctl-x\"\nsite = \"x\"\nport_name = \"23:00:00:00:00:00:00:99\"\n\
             switch = \"{switch}\"\ndatabase = \"db/ctl-x.redb\"\nkey = \"{KEY}\"\napi = \"{api}\"\n"
        )
    };

    write(&file, &config(&addr.to_string()));
    let out = fcsan()
        .args(["controller", "--config"])
        .arg(&file)
        .output()
        .expect("run fcsan controller");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(taken);

    write(&file, &config("127.0.0.1:0"));
    let mut ctl = Proc::spawn(dir.path(), "controller", &file, "ctl-x");
    let line = ctl.line("the API address", |l| l.starts_with("controller "));
    let api = last_word(&line);
    let peers = get(&api, "/v1/peers");
    assert_eq!(peers[0]["name"], "ctl-x");
    assert_eq!(
        peers[0]["api"],
        api.as_str(),
        "it tells peers where its API is"
    );
    assert!(dir.path().join("db/ctl-x.redb").exists(), "its database");

    let stopped = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &ctl.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    ctl.line("its goodbye", |l| l == "controller ctl-x stopped");
    let status = ctl.child.wait().expect("its exit");
    assert!(status.success(), "{status}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
}
