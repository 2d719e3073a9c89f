//! The controllers' replication: how soon a new volume is visible at every controller, and
//! what it costs in messages, with its references measured in the same run.
//!
//! ```text
//!  loopback:   ctl 1 ─ gw s1 ══╗                 (a star: N FCIP links, every pair of
//!              ctl 2 ─ gw s2 ══╬══ gw hub         controllers two FCIP hops apart, each
//!              ctl N ─ gw sN ══╝                  site with one SSD array of its own)
//!  WAN:        ctl A ─ gw A ══ wan_relay (10 ms each way) ══ gw B ─ ctl B
//!  simulated:  controller::sim::Sim, N cores on virtual time, 1 ms each way, no faults
//! ```
//!
//! Everything runs in one process; each real topology gets a fresh tokio runtime of two
//! workers (dropped after it, so nothing of one size runs during the next). Measured:
//!
//! - **references**: `commit`, one redb commit of one record and its vector entry (the fsync
//!   every change pays at the owner and at each peer), [`COMMITS`] times in a store of its
//!   own; `ct_rtt`, one CT exchange between two controllers through the same gateways
//!   (a request signed with the wrong key, answered FS_RJT by the peer's CT server: the
//!   fabric's and the CT server's round trip without the core); `N-1 commits`, N-1 stores
//!   committing one record each at the same moment from N-1 threads (the peers' commits of
//!   one update, which here share one disk), once between builds;
//! - **loopback**, for 2, 4, 8 and 16 controllers: [`BUILDS`] builds of a 1 MiB SSD volume,
//!   each at the next controller in turn (from its own site's array, so the build is the
//!   name claim round trip to every peer, then the mapping's commit); per build the time from
//!   calling `build` to the volume being in every controller's table (`visible`), the same
//!   from `build` returning (`after return`: the owner's UPDATE to every peer and the peers'
//!   commits, about what a bare put costs), and the requests every controller sent meanwhile
//!   besides heartbeats (CLAIM, UPDATE, PULL, ...; each one exchange of request and answer);
//! - **WAN**: two controllers through the relay at 20 ms RTT: build at A, visible at B;
//! - **simulated**, for 16, 64 and 256 sites: virtual time from a put at site 0 to the
//!   volume being at every site, messages delivered per change (requests and answers, in a
//!   window between heartbeat rounds), heartbeat vector entries per interval, and the wall
//!   time the harness (the cores alone: no codec, HMAC or fsync) spends per heartbeat
//!   interval;
//! - **heartbeat bytes**: the encoded size of a HEARTBEAT carrying N vector entries, its bytes
//!   per controller and interval in the full mesh (N-1 of them), against a Scuttlebutt-style
//!   gossip of fan-out [`GOSSIP_FANOUT`] (computed).
//!
//! Run with `cargo bench --bench controller`; `-- sim`, `-- loopback` or `-- wan` runs one
//! part alone.

// As the other benches: per-thread allocation caches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use controller::api::BuildSpec;
use controller::core::{Config as CoreConfig, Core, PeerState, Persist};
use controller::driver::{Controller, ControllerConfig};
use controller::model::{
    ControllerRef, MediaType, Record, RecordKey, Stamp, VersionVector, VolumeBody, VolumeName,
    VolumeState,
};
use controller::sim::{Faults, Sim};
use controller::store::Store;
use controller::wire::{self, Header, Heartbeat, Key, Message, Pull, Request};
use fc_frames::{FcId, FcType, RCtl, Wwn};
use fc_node::exchange::Outbound;
use fc_node::scsi::Tier;
use tokio::runtime::Runtime;
use topology::{tcp_connector, ArraySpec, Running, Topology};
use wan_relay::Impairment;

/// Controllers of the loopback figures.
const LOOPBACK_SIZES: [usize; 4] = [2, 4, 8, 16];
/// Sites of the simulated figures.
const SIM_SIZES: [usize; 3] = [16, 64, 256];
/// Builds per loopback size and through the relay; the tables show the median.
const BUILDS: usize = 5;
/// Puts per simulated size.
const SIM_CHANGES: usize = 5;
/// Virtual time between the simulated puts; each is seen everywhere and acknowledged well
/// within it.
const SIM_PUT_GAP_MS: u64 = 10;
/// Heartbeat intervals the heartbeat count of a loopback size spans.
const HEARTBEAT_WINDOW: u32 = 4;
/// Commits of the reference store, and CT round trips per reference.
const COMMITS: usize = 20;
const PINGS: usize = 20;
/// Heartbeat interval of the real controllers: short, so that a fresh controller's recovery
/// wait (three intervals) is short too; requests time out after two.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Heartbeat interval of the simulated cores (the default).
const SIM_HEARTBEAT_MS: u64 = 1000;
/// The emulated WAN, each way.
const WAN_DELAY: Duration = Duration::from_millis(10);
/// Fan-out of the gossip the full mesh is compared with.
const GOSSIP_FANOUT: usize = 3;
/// Longest wait for a topology to come up, or a volume to show.
const WAIT: Duration = Duration::from_secs(60);
const VOLUME_BYTES: u64 = 1 << 20;
const DISK_BYTES: u64 = 32 << 20;

/// The targets of the issue.
const TARGET_VISIBLE_16: Duration = Duration::from_millis(20);

fn main() -> Result<()> {
    let started = Instant::now();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let part = |p: &str| only.as_deref().is_none_or(|o| o == p);
    if let Some(o) = &only {
        if !["sim", "loopback", "wan"].contains(&o.as_str()) {
            bail!("no part named {o} (sim, loopback, wan)");
        }
    }
    let dir = tempfile::tempdir()?;
    let commit = commit_time(dir.path())?;
    eprintln!("commit reference: {}", ms(commit));
    let mut report = Report {
        commit,
        ..Report::default()
    };
    if part("loopback") {
        for n in LOOPBACK_SIZES {
            let sub = dir.path().join(format!("loop{n}"));
            let rt = runtime()?;
            let r = rt.block_on(loopback(n, &sub));
            rt.shutdown_timeout(Duration::from_secs(2));
            report
                .loopback
                .push(r.with_context(|| format!("{n} controllers"))?);
        }
    }
    if part("wan") {
        let rt = runtime()?;
        let r = rt.block_on(wan(&dir.path().join("wan")));
        rt.shutdown_timeout(Duration::from_secs(2));
        report.wan = Some(r.context("through the relay")?);
    }
    if part("sim") {
        for n in SIM_SIZES {
            report.sim.push(simulated(n)?);
        }
    }
    report.print();
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

// ---- references ---------------------------------------------------------------------------

/// A record as a build writes it (no map rows), owned by `owner`.
fn record(owner: Wwn, name: &str, version: u64) -> Result<Record> {
    let name = VolumeName::new(name)?;
    Ok(Record {
        key: RecordKey {
            owner,
            name: name.clone(),
        },
        stamp: Stamp::new(1, version),
        body: Some(VolumeBody {
            owner: ControllerRef {
                name: "ref".into(),
                wwpn: owner,
                fc_id: FcId::from_parts(1, 0, 1),
                site: "ref".into(),
            },
            local_name: name.to_string(),
            capacity: VOLUME_BYTES,
            state: VolumeState::Online,
            claimed_at: 0,
            media: MediaType::Ssd,
            rows: Vec::new(),
            masking: Vec::new(),
        }),
    })
}

/// Median time of one commit of one record with its vector entry and log entry (what a put
/// commits at the owner; a peer commits the same minus the log entry).
fn commit_time(dir: &Path) -> Result<Duration> {
    let (store, _) = Store::open(&dir.join("reference.redb"))?;
    let owner = Wwn::from_u64(0x2000_0000_0000_0cff);
    let mut times = Vec::with_capacity(COMMITS);
    for v in 1..=COMMITS as u64 {
        let r = record(owner, &format!("ref{v}"), v)?;
        let batch = [Persist::Apply {
            records: vec![r.clone()],
            versions: vec![(owner, r.stamp)],
            log: vec![r],
        }];
        let t = Instant::now();
        store.commit(&batch)?;
        times.push(t.elapsed());
    }
    Ok(median(&mut times))
}

/// One CT exchange from `from` to `to`: a request signed with another key, which `to`'s CT
/// server decodes, finds unsigned and answers FS_RJT.
async fn ct_rtt(from: &Controller, to: &Controller) -> Result<Duration> {
    let w = to.config().port_name;
    let id = from
        .inspect(|c| c.peer(w).and_then(|p| p.fc_id))
        .context("the peer's N_Port_ID")?;
    let msg = Message::Request(
        Header {
            sender: from.config().port_name,
            generation: 1,
            seq: 1,
        },
        Request::Pull(Pull {
            versions: VersionVector::default(),
            max: 1,
        }),
    );
    let bytes = wire::encode(&msg, &Key::new(b"not the installation's key"));
    let t = Instant::now();
    let mut x = from.node().exchange(
        id,
        FcType::CT,
        Outbound::new(RCtl::UNSOLICITED_CONTROL, bytes),
        Duration::from_secs(5),
    );
    loop {
        let s = x.next().await?;
        if s.is_last() {
            break;
        }
    }
    Ok(t.elapsed())
}

/// `k` stores for [`parallel_commits`].
fn open_stores(dir: &Path, k: usize) -> Result<Vec<Store>> {
    std::fs::create_dir_all(dir)?;
    (0..k)
        .map(|i| Ok(Store::open(&dir.join(format!("p{i}.redb")))?.0))
        .collect()
}

/// Time for `stores`, one a thread, to commit one record each at the same moment (as the
/// peers of an owner commit its update): version `v` of a record.
fn parallel_commits(stores: &[Store], v: u64) -> Result<Duration> {
    let owner = Wwn::from_u64(0x2000_0000_0000_0cfe);
    {
        let r = record(owner, &format!("p{v}"), v)?;
        let batch = [Persist::Apply {
            records: vec![r.clone()],
            versions: vec![(owner, r.stamp)],
            log: Vec::new(),
        }];
        let t = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .map(|st| s.spawn(|| st.commit(&batch)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| anyhow!("a commit thread panicked"))?
                    .map_err(anyhow::Error::from)
            })
        })?;
        Ok(t.elapsed())
    }
}

async fn ct_rtt_median(from: &Controller, to: &Controller) -> Result<Duration> {
    let mut times = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        times.push(ct_rtt(from, to).await?);
    }
    Ok(median(&mut times))
}

// ---- real controllers -----------------------------------------------------------------------

fn controller_wwpn(i: usize) -> Wwn {
    Wwn::from_u64(0x2000_0000_0000_0c00 | i as u64)
}

/// Controllers on the sites of `running` (site `first + i` for controller `i`), each with its
/// database in `dir`.
fn start_controllers(
    running: &Running,
    sites: &[topology::GatewayId],
    dir: &Path,
) -> Result<Vec<Arc<Controller>>> {
    let key = Key::new(b"fcsan controller bench");
    let mut out = Vec::new();
    for (i, &site) in sites.iter().enumerate() {
        let mut c = ControllerConfig::new(
            &format!("ctl{i}"),
            &format!("s{i}"),
            controller_wwpn(i),
            dir.join(format!("ctl{i}.redb")),
            key.clone(),
        );
        c.heartbeat = HEARTBEAT;
        c.discovery_period = Duration::from_millis(500);
        let ctl = Controller::start(c, tcp_connector(running.site(site).addr))?;
        out.push(Arc::new(ctl));
    }
    Ok(out)
}

/// Waits until every controller is ready, sees every other up, has every controller's vector
/// entry (fresh controllers' entries spread by pulls after their first heartbeats, which
/// would otherwise count against the first builds) and knows its own array.
async fn wait_meshed(ctls: &[Arc<Controller>]) -> Result<Duration> {
    let t = Instant::now();
    let n = ctls.len();
    loop {
        let ok = ctls.iter().all(|c| {
            c.inspect(|core| {
                core.is_ready()
                    && core.peers().filter(|p| p.state == PeerState::Up).count() == n - 1
                    && core.versions().0.len() == n
            }) && !c.real_volumes().is_empty()
        });
        if ok {
            return Ok(t.elapsed());
        }
        if t.elapsed() > WAIT {
            let up: Vec<usize> = ctls
                .iter()
                .map(|c| {
                    c.inspect(|core| core.peers().filter(|p| p.state == PeerState::Up).count())
                })
                .collect();
            bail!("controllers not meshed after {WAIT:?}: peers up {up:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When `name` shows in `ctl`'s table, measured from `start`.
async fn visible_at(ctl: Arc<Controller>, name: VolumeName, start: Instant) -> Option<Duration> {
    let mut rx = ctl.changes();
    let wait = async {
        loop {
            if ctl.inspect(|c| c.volume(&name).is_some()) {
                return Some(start.elapsed());
            }
            rx.changed().await.ok()?;
        }
    };
    tokio::time::timeout(WAIT, wait).await.ok().flatten()
}

/// Sums the controllers' counters of requests sent: heartbeats, and everything else.
fn sent(ctls: &[Arc<Controller>]) -> (u64, u64) {
    let (mut heartbeats, mut others) = (0, 0);
    for (k, v) in sent_by_kind(ctls) {
        if k == "sent.heartbeat" {
            heartbeats += v;
        } else {
            others += v;
        }
    }
    (heartbeats, others)
}

/// The controllers' counters of requests sent, summed by kind.
fn sent_by_kind(ctls: &[Arc<Controller>]) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for c in ctls {
        c.inspect(|core| {
            for (k, v) in core.counters() {
                if k.starts_with("sent.") {
                    *out.entry(*k).or_insert(0) += v;
                }
            }
        });
    }
    out
}

/// One build: its time, when it was visible everywhere (from the call, and from the return),
/// and where it was seen last.
struct Build {
    call: Duration,
    visible: Duration,
    after_return: Duration,
    requests: u64,
    claims: u64,
    updates: u64,
}

async fn build_once(
    ctls: &[Arc<Controller>],
    at: usize,
    name: &str,
    watch: &[usize],
) -> Result<Build> {
    let name = VolumeName::new(name)?;
    let before = sent_by_kind(ctls);
    let start = Instant::now();
    let watchers: Vec<_> = watch
        .iter()
        .map(|&j| tokio::spawn(visible_at(ctls[j].clone(), name.clone(), start)))
        .collect();
    ctls[at]
        .build(BuildSpec {
            name: Some(name.clone()),
            media: MediaType::Ssd,
            capacity: VOLUME_BYTES,
        })
        .await
        .with_context(|| format!("build {name} at ctl{at}"))?;
    let call = start.elapsed();
    let mut visible = Duration::ZERO;
    for w in watchers {
        let t = w
            .await?
            .ok_or_else(|| anyhow!("{name} never showed everywhere"))?;
        visible = visible.max(t);
    }
    // The acknowledgements, then count.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = sent_by_kind(ctls);
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    let requests: u64 = after
        .keys()
        .filter(|k| **k != "sent.heartbeat")
        .map(|k| delta(k))
        .sum();
    Ok(Build {
        call,
        visible,
        after_return: visible.saturating_sub(call),
        requests,
        claims: delta("sent.claim"),
        updates: delta("sent.update"),
    })
}

/// What one loopback size measured.
struct Loopback {
    n: usize,
    meshed: Duration,
    ct_rtt: Duration,
    call: Duration,
    visible: Duration,
    visible_range: (Duration, Duration),
    after_return: Duration,
    requests: u64,
    /// Heartbeats each controller sent per interval while measuring.
    heartbeats_per_interval: f64,
    /// N-1 stores committing one record each at once (the peers' commits of one update, all
    /// on this machine's one disk).
    fsyncs: Duration,
}

async fn loopback(n: usize, dir: &Path) -> Result<Loopback> {
    let mut t = Topology::new();
    let hub = t.gateway("hub", 1);
    let mut sites = Vec::new();
    for i in 0..n {
        let s = t.gateway(&format!("s{i}"), 2 + i as u8);
        t.link(s, hub, 1);
        t.array(
            s,
            ArraySpec::new(format!("ssd{i}")).disk(Tier::Ssd, DISK_BYTES),
        );
        sites.push(s);
    }
    let running = t.start(&dir.join("luns")).await?;
    let ctls = start_controllers(&running, &sites, dir)?;
    let meshed = wait_meshed(&ctls).await?;
    eprintln!("{n} controllers meshed in {}", ms(meshed));
    let ct = ct_rtt_median(&ctls[0], &ctls[n - 1]).await?;
    let all: Vec<usize> = (0..n).collect();
    let (hb0, _) = sent(&ctls);
    let t0 = Instant::now();

    let mut builds = Vec::new();
    let stores = open_stores(&dir.join("parallel"), n - 1)?;
    let mut fsyncs = Vec::with_capacity(BUILDS);
    for r in 0..BUILDS {
        let at = r % n;
        let b = build_once(&ctls, at, &format!("v{n}-{r}"), &all).await?;
        eprintln!(
            "  {n} ctl, build {} at ctl{at}: call {}, visible {}, requests {} ({} claims, {} \
             updates)",
            r + 1,
            ms(b.call),
            ms(b.visible),
            b.requests,
            b.claims,
            b.updates
        );
        builds.push(b);
        // The peers' commits of one update, timed between the builds.
        fsyncs.push(parallel_commits(&stores, r as u64 + 1)?);
    }
    // Heartbeats over a few whole intervals (the builds take less than one).
    let rest = (HEARTBEAT * HEARTBEAT_WINDOW).saturating_sub(t0.elapsed());
    tokio::time::sleep(rest).await;
    let (hb1, _) = sent(&ctls);
    let intervals = t0.elapsed().as_secs_f64() / HEARTBEAT.as_secs_f64();
    let heartbeats_per_interval = (hb1 - hb0) as f64 / n as f64 / intervals;
    let fsyncs = median(&mut fsyncs);
    running.shutdown().await;
    let mut visible: Vec<Duration> = builds.iter().map(|b| b.visible).collect();
    let range = (
        *visible.iter().min().unwrap_or(&Duration::ZERO),
        *visible.iter().max().unwrap_or(&Duration::ZERO),
    );
    Ok(Loopback {
        n,
        meshed,
        ct_rtt: ct,
        call: median(&mut builds.iter().map(|b| b.call).collect::<Vec<_>>()),
        visible: median(&mut visible),
        visible_range: range,
        after_return: median(&mut builds.iter().map(|b| b.after_return).collect::<Vec<_>>()),
        requests: median_u64(builds.iter().map(|b| b.requests).collect()),
        heartbeats_per_interval,
        fsyncs,
    })
}

struct Wan {
    ct_rtt: Duration,
    call: Duration,
    /// From the build's return at A to the volume at B.
    after_return: Duration,
    after_return_max: Duration,
    /// From the build's call at A to the volume at B.
    visible: Duration,
}

async fn wan(dir: &Path) -> Result<Wan> {
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let link = t.link(a, b, 1);
    t.relay(
        link,
        Impairment {
            one_way_delay: WAN_DELAY,
            bandwidth_bps: None,
        },
    );
    t.array(a, ArraySpec::new("ssd-a").disk(Tier::Ssd, DISK_BYTES));
    t.array(b, ArraySpec::new("ssd-b").disk(Tier::Ssd, DISK_BYTES));
    let running = t.start(&dir.join("luns")).await?;
    let ctls = start_controllers(&running, &[a, b], dir)?;
    let meshed = wait_meshed(&ctls).await?;
    eprintln!("WAN controllers meshed in {}", ms(meshed));
    let ct = ct_rtt_median(&ctls[0], &ctls[1]).await?;
    let mut builds = Vec::new();
    for r in 0..BUILDS {
        let b = build_once(&ctls, 0, &format!("w{r}"), &[1]).await?;
        eprintln!(
            "  WAN build {}: call {}, visible at B {} ({} after return)",
            r + 1,
            ms(b.call),
            ms(b.visible),
            ms(b.after_return)
        );
        builds.push(b);
    }
    running.shutdown().await;
    let mut after: Vec<Duration> = builds.iter().map(|b| b.after_return).collect();
    let after_return_max = *after.iter().max().unwrap_or(&Duration::ZERO);
    Ok(Wan {
        ct_rtt: ct,
        call: median(&mut builds.iter().map(|b| b.call).collect::<Vec<_>>()),
        after_return: median(&mut after),
        after_return_max,
        visible: median(&mut builds.iter().map(|b| b.visible).collect::<Vec<_>>()),
    })
}

// ---- the simulated harness ------------------------------------------------------------------

struct Simulated {
    n: usize,
    /// Virtual ms from a put at site 0 to the volume at every site (median).
    visible_ms: u64,
    /// Messages delivered per change (requests and answers; no heartbeats in the window).
    messages: u64,
    /// UPDATE requests sent per change.
    updates: u64,
    /// Heartbeat vector entries sent in one interval, in steady state.
    heartbeat_entries: u64,
    /// Heartbeat requests sent in one interval.
    heartbeats: u64,
    /// Wall time the harness spent on one quiet heartbeat interval.
    wall_per_interval: Duration,
    /// Wall time of the whole size.
    wall: Duration,
}

fn sim_sent(sim: &Sim, counter: &str) -> u64 {
    (0..sim.len())
        .filter_map(|i| sim.core(i))
        .map(|c: &Core| c.counters().get(counter).copied().unwrap_or(0))
        .sum()
}

fn simulated(n: usize) -> Result<Simulated> {
    let wall = Instant::now();
    let hb = SIM_HEARTBEAT_MS;
    // A fresh core waits three intervals for its peers before it takes changes; here every
    // database is new, so half an interval is enough (and saves the 256-site size three
    // heartbeat rounds of several seconds each).
    let mut config = CoreConfig::with_heartbeat(hb);
    config.recover_wait_ms = hb / 2;
    let mut sim = Sim::new(n, 1, Faults::none(), config);
    let t0 = sim.now;
    // Every core heartbeats at t0 + k·hb (twice at t0: on meeting each peer, and its first
    // timer). The round at t0 + hb shows every site's entry, whose pulls fill every vector;
    // the round at t0 + 2·hb carries those entries once more (they rose since the last
    // acknowledged heartbeat); from t0 + 3·hb on, a quiet heartbeat carries its sender's own
    // entry only.
    sim.run_until(t0 + 2 * hb + hb / 2);
    let ready = (0..n).all(|i| sim.core(i).is_some_and(Core::is_ready));
    if !ready {
        bail!("simulated cores not ready after an interval");
    }
    // One quiet interval, from mid-interval to mid-interval.
    let (e0, h0) = (sim.heartbeat_entries, sim_sent(&sim, "sent.heartbeat"));
    let t = Instant::now();
    let now = sim.now;
    sim.run_until(now + hb);
    let wall_per_interval = t.elapsed();
    let heartbeat_entries = sim.heartbeat_entries - e0;
    let heartbeats = sim_sent(&sim, "sent.heartbeat") - h0;
    eprintln!(
        "sim {n}: {heartbeats} heartbeats, {heartbeat_entries} entries, {} wall per interval",
        ms(wall_per_interval)
    );
    let mut visible = Vec::new();
    let mut messages = Vec::new();
    let mut updates = Vec::new();
    // The puts, 10 ms apart from mid-interval on: no heartbeat round among them.
    for k in 0..SIM_CHANGES {
        let put_at = sim.now;
        let name = VolumeName::new(format!("s{k}"))?;
        let (d0, hb0, u0) = (
            sim.delivered,
            sim_sent(&sim, "sent.heartbeat"),
            sim_sent(&sim, "sent.update"),
        );
        if !sim.put(0, name.as_str(), VOLUME_BYTES + k as u64) {
            bail!("put {k} refused at site 0 of {n}");
        }
        let mut seen = None;
        while sim.now < put_at + SIM_PUT_GAP_MS {
            let next = sim.now + 1;
            sim.run_until(next);
            if (0..n).all(|i| sim.core(i).is_some_and(|c| c.volume(&name).is_some())) {
                seen = Some(sim.now - put_at);
                break;
            }
        }
        let seen = seen.ok_or_else(|| anyhow!("put {k} not everywhere in {n} sites"))?;
        sim.run_until(put_at + SIM_PUT_GAP_MS);
        let hbs = sim_sent(&sim, "sent.heartbeat") - hb0;
        messages.push((sim.delivered - d0).saturating_sub(2 * hbs));
        updates.push(sim_sent(&sim, "sent.update") - u0);
        visible.push(seen);
    }
    Ok(Simulated {
        n,
        visible_ms: median_u64(visible),
        messages: median_u64(messages),
        updates: median_u64(updates),
        heartbeat_entries,
        heartbeats,
        wall_per_interval,
        wall: wall.elapsed(),
    })
}

/// Bytes of one HEARTBEAT (the CT_IU: preamble, header, body, HMAC) carrying `n` vector
/// entries, as a controller named like the bench's sends it.
fn heartbeat_bytes(n: usize) -> usize {
    let versions = VersionVector(
        (0..n)
            .map(|i| {
                (
                    controller_wwpn(i),
                    Stamp::new(1_700_000_000, 1000 + i as u64),
                )
            })
            .collect(),
    );
    let msg = Message::Request(
        Header {
            sender: controller_wwpn(0),
            generation: 1_700_000_000,
            seq: 1,
        },
        Request::Heartbeat(Heartbeat {
            name: "ctl0".into(),
            site: "s0".into(),
            fc_id: FcId::from_parts(2, 1, 0),
            api: String::new(),
            versions,
        }),
    );
    wire::encode(&msg, &Key::new(b"k")).len()
}

// ---- the report -------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    commit: Duration,
    loopback: Vec<Loopback>,
    wan: Option<Wan>,
    sim: Vec<Simulated>,
}

impl Report {
    fn print(&self) {
        let commit = self.commit;
        println!(
            "\nreference: one redb commit (one record, fsync) {}",
            ms(commit)
        );
        if !self.loopback.is_empty() {
            self.print_loopback();
        }
        if let Some(w) = &self.wan {
            self.print_wan(w);
        }
        if !self.sim.is_empty() {
            self.print_sim();
        }
        self.print_heartbeats();
    }

    fn print_loopback(&self) {
        let commit = self.commit;
        println!(
            "\nloopback: a star of FCIP links (N leaf gateways around a hub, every controller \
             two FCIP hops from every other), heartbeat {} ms; {BUILDS} builds per N, medians",
            HEARTBEAT.as_millis()
        );
        println!(
            "{:>3} {:>9} {:>9} {:>11} {:>9} {:>10} {:>17} {:>13} {:>8} {:>10} {:>9} {:>8} {:>9}",
            "N",
            "meshed",
            "ct_rtt",
            "N-1 commits",
            "build",
            "visible",
            "range",
            "after return",
            "÷ ct_rtt",
            "÷ floor",
            "requests",
            "÷ (N-1)",
            "hb/ctl/iv"
        );
        for l in &self.loopback {
            // The floor of a build seen everywhere: the claim round trip, the owner's commit,
            // the update's way out and the peer's commit (half a round trip).
            let floor = l.ct_rtt.mul_f64(1.5) + commit + l.fsyncs;
            println!(
                "{:>3} {:>9} {:>9} {:>11} {:>9} {:>10} {:>17} {:>13} {:>8.2} {:>10.2} {:>9} {:>8.2} {:>9.2}",
                l.n,
                ms(l.meshed),
                ms(l.ct_rtt),
                ms(l.fsyncs),
                ms(l.call),
                ms(l.visible),
                format!("{}–{}", ms(l.visible_range.0), ms(l.visible_range.1)),
                ms(l.after_return),
                l.visible.as_secs_f64() / l.ct_rtt.as_secs_f64(),
                l.visible.as_secs_f64() / floor.as_secs_f64(),
                l.requests,
                l.requests as f64 / (l.n - 1) as f64,
                l.heartbeats_per_interval,
            );
        }
        println!(
            "build: the build call (claim round trip to every peer + the mapping's commit); \
             visible: from the call to the volume in every controller's table; after return: \
             from the call's return;\nN-1 commits: N-1 stores committing one record each at \
             once (the peers' commits of one update; here all on one disk); floor: 1.5 ct_rtt \
             + 1 commit + N-1 commits (claim round trip, owner's commit, the update's way out, \
             the peers' commits); requests: every \
             controller's requests but heartbeats, per build (each one exchange: request + \
             answer);\nhb/ctl/iv: heartbeats a controller sent per interval meanwhile"
        );
        if let Some(l) = self.loopback.iter().find(|l| l.n == 16) {
            let ok = l.visible <= TARGET_VISIBLE_16;
            println!(
                "target: visible ≤ {} ms at 16 controllers: {} ({} , {:.2}× the target)",
                TARGET_VISIBLE_16.as_millis(),
                met(ok),
                ms(l.visible),
                l.visible.as_secs_f64() / TARGET_VISIBLE_16.as_secs_f64()
            );
        }
        let per: Vec<f64> = self
            .loopback
            .iter()
            .map(|l| l.requests as f64 / (l.n - 1) as f64)
            .collect();
        let linear = per.iter().all(|p| (*p - per[0]).abs() < 0.5);
        println!(
            "target: requests per change linear in N: {} (requests ÷ (N-1) = {})",
            met(linear),
            per.iter()
                .map(|p| format!("{p:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    fn print_wan(&self, w: &Wan) {
        let commit = self.commit;
        let rtt = 2 * WAN_DELAY;
        let limit = rtt + commit * 2;
        println!(
            "\nWAN: two controllers through wan_relay at {} ms RTT ({BUILDS} builds at A, \
             medians)",
            rtt.as_millis()
        );
        println!(
            "{:>9} {:>9} {:>15} {:>15} {:>13} {:>8}",
            "ct_rtt", "build", "after return", "(slowest)", "call→B", "limit"
        );
        println!(
            "{:>9} {:>9} {:>15} {:>15} {:>13} {:>8}",
            ms(w.ct_rtt),
            ms(w.call),
            ms(w.after_return),
            ms(w.after_return_max),
            ms(w.visible),
            ms(limit)
        );
        println!(
            "target: visible at B within one RTT + two commits of the build's return ({} + 2 × \
             {} = {}): {} ({:.2}× the limit); from the call: {} against 1.5 RTT + 2 commits = {}",
            ms(rtt),
            ms(commit),
            ms(limit),
            met(w.after_return <= limit),
            w.after_return.as_secs_f64() / limit.as_secs_f64(),
            ms(w.visible),
            ms(rtt.mul_f64(1.5) + commit * 2)
        );
    }

    fn print_sim(&self) {
        println!(
            "\nsimulated: controller::sim, full mesh, no faults, 1 ms each way, heartbeat {} ms; \
             {SIM_CHANGES} puts at site 0 per N, medians",
            SIM_HEARTBEAT_MS
        );
        println!(
            "{:>4} {:>11} {:>9} {:>8} {:>8} {:>12} {:>12} {:>14} {:>13} {:>9}",
            "N",
            "visible",
            "messages",
            "÷ (N-1)",
            "updates",
            "hb/interval",
            "÷ N(N-1)",
            "entries/iv",
            "÷ N²(N-1)",
            "wall/iv"
        );
        for s in &self.sim {
            let n = s.n as u64;
            println!(
                "{:>4} {:>8} ms {:>9} {:>8.2} {:>8} {:>12} {:>12.2} {:>14} {:>13.2} {:>9}",
                s.n,
                s.visible_ms,
                s.messages,
                s.messages as f64 / (n - 1) as f64,
                s.updates,
                s.heartbeats,
                s.heartbeats as f64 / (n * (n - 1)) as f64,
                s.heartbeat_entries,
                s.heartbeat_entries as f64 / (n * n * (n - 1)) as f64,
                ms(s.wall_per_interval),
            );
        }
        println!(
            "visible: virtual time from the put to the volume at every site; messages: \
             delivered per change, requests and answers (UPDATE + its ack a peer);\n\
             entries/iv: version-vector entries sent in heartbeats in one interval; wall/iv: \
             the harness's wall time for one quiet interval (all N cores, one thread); \
             whole sizes took {}",
            self.sim
                .iter()
                .map(|s| format!("{} s", (s.wall.as_secs_f64() * 10.0).round() / 10.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let per: Vec<f64> = self
            .sim
            .iter()
            .map(|s| s.messages as f64 / (s.n - 1) as f64)
            .collect();
        let linear = per.iter().all(|p| (*p - per[0]).abs() < 0.01);
        println!(
            "target: messages per change linear in N: {} (÷ (N-1) = {})",
            met(linear),
            per.iter()
                .map(|p| format!("{p:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    fn print_heartbeats(&self) {
        let k = GOSSIP_FANOUT;
        let fixed = heartbeat_bytes(0);
        let per_entry = heartbeat_bytes(1) - fixed;
        println!(
            "\nheartbeat bytes per interval, measured in the simulation (one quiet interval; a \
             HEARTBEAT is {fixed} B + {per_entry} B per vector entry it carries: its own entry \
             and those that rose since the peer last acknowledged one)"
        );
        println!(
            "{:>5} {:>12} {:>11} {:>9} {:>11} {:>9} {:>16} {:>12}",
            "N",
            "hb/interval",
            "entries/hb",
            "bytes/hb",
            "B/ctl/iv",
            "÷ N",
            "full vectors/ctl",
            "B/ctl/iv gsp"
        );
        let mut per_n = Vec::new();
        for s in &self.sim {
            let n = s.n;
            let entries = s.heartbeat_entries as f64 / s.heartbeats.max(1) as f64;
            let bytes = fixed as f64 + per_entry as f64 * entries;
            let per_ctl = bytes * (n - 1) as f64;
            per_n.push(per_ctl / n as f64);
            println!(
                "{:>5} {:>12} {:>11.2} {:>9.0} {:>11.0} {:>9.1} {:>16} {:>12}",
                n,
                s.heartbeats,
                entries,
                bytes,
                per_ctl,
                per_ctl / n as f64,
                heartbeat_bytes(n) * (n - 1),
                2 * k.min(n - 1) * heartbeat_bytes(n),
            );
        }
        println!(
            "B/ctl/iv: what one controller sends an interval to its N-1 peers; full vectors/ctl: \
             the same if every heartbeat carried the whole vector (N entries: grows as N²); \
             gsp: gossip of fan-out {k} with whole-vector digests, computed"
        );
        if per_n.is_empty() {
            println!("(heartbeat bytes are measured in the simulated part: run with `-- sim`)");
            return;
        }
        let (lo, hi) = per_n
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        println!(
            "target: heartbeat bytes per interval linear in N: {} (bytes per controller and \
             interval ÷ N between {lo:.1} and {hi:.1})",
            met(hi <= lo * 1.25)
        );
        // Where gossip pays off: fewer bytes from N - 1 > 2k; worth its slower spread once the
        // full mesh's cost outgrows its own: the measured cost of an interval per controller
        // against a budget of 1% of a core.
        if let Some(big) = self.sim.iter().max_by_key(|s| s.n) {
            let per_ctl = big.wall_per_interval.as_secs_f64() / big.n as f64;
            // Per controller the mesh's work is O(N²) (N-1 heartbeats of N entries each way).
            let budget = 0.01 * SIM_HEARTBEAT_MS as f64 / 1000.0;
            let scale = |n: f64| per_ctl * (n / big.n as f64).powi(2);
            let crossover = (2..100_000).find(|&n| scale(n as f64) > budget);
            println!(
                "with heartbeats that carry only what rose, the mesh sends fewer bytes than \
                 gossip of fan-out {k} with whole-vector digests; what still grows as N² is the \
                 count of heartbeats (N(N-1) an interval), spread in one interval where gossip \
                 takes ⌈log_{} N⌉;\nthe mesh's cost per controller, measured in the harness at N = {}: \
                 {:.0} µs a {} ms interval (the cores and the harness's routing, no codec, HMAC or fsync; O(N²) at worst); it passes 1% of a core at N ≈ \
                 {} — past that, gossip (Scuttlebutt) and SWIM membership pay off",
                k + 1,
                big.n,
                per_ctl * 1e6,
                SIM_HEARTBEAT_MS,
                crossover.map_or("?".into(), |n| n.to_string())
            );
        }
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
