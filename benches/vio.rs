//! The I/O path through the virtualization controllers (issue 11): hosts reading and writing a
//! common virtual volume, with the references measured in the same run.
//!
//! ```text
//!  direct (reference)  host A ─ switch A ─ array A
//!  (a) local           host A ─ switch A ─ ctl A ─ switch A ─ array A
//!  (b) remote          host B ─ gw B ─ ctl B ─ gw B ══ relay ══ gw A ─ ctl A ─ gw A ─ array A
//!  (c) cache           host B ─ gw B ─ ctl B (its remote-read cache, warm)
//!  direct across WAN   host B ─ gw B ══ relay ══ gw A ─ array A    (beside (b))
//! ```
//!
//! Two sites, each an FCIP gateway, joined by one FCIP link of [`LINK_CONNECTIONS`]
//! connections; an SSD array on A whose LUN file is filled before it opens and stays in the
//! page cache; a small array on B; a controller on each site (heartbeat 500 ms); a host on
//! each. A [`VOLUME_BYTES`] volume built at controller A (so owned by A, its extents on array A)
//! is what hosts read and write through their own site's controller. The direct reference
//! goes to the very blocks of array A that hold the volume (its mapping is one contiguous
//! extent), so both paths read the same page-cache pages.
//!
//! Every figure is a round of [`ROUND_TIME`] (remote: [`REMOTE_ROUND_TIME`]) of one of
//!
//! - sequential 1 MiB READ or WRITE, [`SEQ_QD`] commands in flight ([`REMOTE_SEQ_QD`] across
//!   the WAN), wrapping around the volume;
//! - 4 KiB READ or WRITE at random 4 KiB-aligned offsets over the whole volume, [`RAND_QD`]
//!   commands in flight;
//!
//! all from one host initiator (tasks sharing one `Initiator`). Reads count after
//! [`WARM_UP`]. Each write round ends with SYNCHRONIZE CACHE inside its time: writes without
//! FUA are the host's commands as a host sends them, and the flush makes the direct path's data
//! as durable as the controller's, which writes every copy with FUA before it acknowledges
//! (its SYNCHRONIZE CACHE is then free). Direct writes with FUA are measured beside them: the
//! same durability per command.
//!
//! Each section starts its own topology on a fresh tokio runtime of two workers, and measures
//! its figures in [`ROUNDS`] interleaved rounds (the reference's round k, then the figure's
//! round k), reporting medians with the smallest and largest round; each ratio is the median
//! over the rounds of figure ÷ reference within one round. CPU is user + system time of the
//! whole process over the round (`/proc/self/stat`).
//!
//! - `direct`: the references alone.
//! - `local` (a): host A through controller A, beside direct. Target ≥ 0.5 × direct.
//! - `remote` (b): host B through controller B, forwarded to A across the WAN relay at 20 ms
//!   round trip and 1 Gbit/s each way (bandwidth-delay product 2.5 MB). The controllers'
//!   caches are off in this section, so every read crosses the WAN (with a cache, a read of
//!   data read before is case (c)). References: the cap (1 Gbit/s = 119.2 MiB/s); for 4 KiB
//!   commands the latency bound (queue depth ÷ round trip); and host B straight to array A
//!   through the same relay. Target ≥ 80 % of the cap for 1 MiB transfers.
//! - `cache` (c): as (b), through the same relay, with a cache of [`CACHE_BYTES`] at each
//!   controller: host B reads the whole volume twice (the warm-up; the second pass's misses are
//!   reported), then its reads are measured beside host A's direct reads, with controller B's
//!   hit and miss counts. Target ≥ 0.9 × direct. Then host B's writes while controller B holds
//!   the lease (the owner invalidates B's cache before it acknowledges).
//!
//! Every section waits one lease length after its controllers start before its first round:
//! an owner acknowledges no write before that.
//!
//! Run with `cargo bench --bench vio`; `-- direct`, `-- local`, `-- remote` or `-- cache` runs
//! one section (with its reference); `-- SECTION OP` runs one figure alone (see [`profile`]).

// As the other benches: 1 MiB buffers come and go with every command.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use controller::api::BuildSpec;
use controller::core::PeerState;
use controller::driver::Controller;
use controller::io::{IoConfig, IoCounters};
use controller::model::{MediaType, VolumeName};
use controller::real::scsi_lun;
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::{past_attentions, Initiator, ScsiError};
use fc_node::scsi::Tier;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use topology::{write_random, ArraySpec, ControllerId, HostId, Running, Topology};
use wan_relay::Impairment;

/// The virtual volume: the working set of every figure.
const VOLUME_BYTES: u64 = 256 << 20;
/// Array A's LUN: the volume and some room.
const ARRAY_BYTES: u64 = 288 << 20;
/// Array B's LUN (controller B wants a real volume of its own site).
const ARRAY_B_BYTES: u64 = 16 << 20;
const BLOCK: u32 = 512;
const BIG: u64 = 1 << 20;
const SMALL: u64 = 4 << 10;
/// Commands in flight for sequential transfers on the site.
const SEQ_QD: usize = 8;
/// Commands in flight for sequential transfers across the WAN: 16 MiB in flight, over six
/// times the bandwidth-delay product (a forwarded write takes two round trips: command and
/// transfer ready, then data and status).
const REMOTE_SEQ_QD: usize = 16;
/// Commands in flight for 4 KiB random transfers.
const RAND_QD: usize = 32;
/// Rounds of every figure; the report gives the median.
const ROUNDS: usize = 3;
/// Counted time of one round on the site.
const ROUND_TIME: Duration = Duration::from_secs(1);
/// Counted time of one round across the WAN (many round trips of 20 ms).
const REMOTE_ROUND_TIME: Duration = Duration::from_secs(2);
/// Reads run this long before a round counts.
const WARM_UP: Duration = Duration::from_millis(200);
/// The WAN: each way.
const WAN_DELAY: Duration = Duration::from_millis(10);
/// The WAN: each direction.
const WAN_BPS: u64 = 1_000_000_000;
/// FCIP connections of the link.
const LINK_CONNECTIONS: usize = 4;
/// Each controller's remote-read cache in the cache section: the whole volume and the
/// cache's per-chunk weight.
const CACHE_BYTES: u64 = 512 << 20;
/// How long a figure run alone runs.
const PROFILE_TIME: Duration = Duration::from_secs(20);
/// Longest wait for the topology, a target, a volume.
const WAIT: Duration = Duration::from_secs(60);

/// The targets of issue 11.
const TARGET_LOCAL: f64 = 0.5;
const TARGET_REMOTE_CAP: f64 = 0.8;
const TARGET_CACHE: f64 = 0.9;

const SECTIONS: [&str; 4] = ["direct", "local", "remote", "cache"];

fn main() -> Result<()> {
    let started = Instant::now();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let only = args.first().cloned();
    if let (Some(s), Some(op)) = (&only, args.get(1)) {
        if !SECTIONS.contains(&s.as_str()) && s != "wan" {
            bail!("no section named {s} ({}, wan)", SECTIONS.join(", "));
        }
        return profile(s, op);
    }
    if let Some(o) = &only {
        if !SECTIONS.contains(&o.as_str()) {
            bail!("no section named {o} ({})", SECTIONS.join(", "));
        }
    }
    let part = |p: &str| only.as_deref().is_none_or(|o| o == p);
    let dir = tempfile::tempdir()?;
    let lun = dir.path().join("ssda0.img");
    write_random(&lun, ARRAY_BYTES)?;
    std::fs::File::open(&lun)?.sync_all()?;
    let mut report = Report::default();
    if part("direct") && only.is_some() {
        report.local = Some(section(dir.path(), &lun, "direct", Section::Direct)?);
    }
    if part("local") {
        report.local = Some(section(dir.path(), &lun, "local", Section::Local)?);
    }
    if part("remote") {
        report.remote = Some(section(dir.path(), &lun, "remote", Section::Remote)?);
    }
    if part("cache") {
        report.cache = Some(section(dir.path(), &lun, "cache", Section::Cache)?);
    }
    report.print();
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Direct,
    Local,
    Remote,
    Cache,
}

/// Runs one section on a runtime of its own (dropped after it).
fn section(dir: &Path, lun: &Path, name: &str, s: Section) -> Result<Figures> {
    let rt = runtime()?;
    let sub = dir.join(name);
    let r = rt.block_on(async {
        let bench = Bench::start(&sub, lun, s).await?;
        let f = match s {
            Section::Direct | Section::Local => local(&bench, s == Section::Local).await,
            Section::Remote => remote(&bench).await,
            Section::Cache => cache(&bench).await,
        };
        bench.running.shutdown().await;
        f
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&sub);
    r.with_context(|| format!("section {name}"))
}

/// One figure of a section alone for [`PROFILE_TIME`], to profile it: `-- SECTION OP` with OP
/// one of `seq-read`, `seq-write`, `rand-read`, `rand-write`, `seq-write-fua`, `rand-write-fua` (`direct`: host A to array A;
/// `local`: through controller A; `remote`, `cache`: host B through controller B, the cache
/// warmed first in `cache`; `wan`: host B to array A across the relay). The environment's
/// `VIO_QD` and `VIO_TIME` (seconds) override the queue depth and the time.
fn profile(section_name: &str, op_name: &str) -> Result<()> {
    let op = match op_name {
        "seq-read" => Op::SeqRead,
        "seq-write" => Op::SeqWrite { fua: false },
        "rand-read" => Op::RandRead,
        "rand-write" => Op::RandWrite { fua: false },
        "seq-write-fua" => Op::SeqWrite { fua: true },
        // The topology idle: its own CPU (heartbeats, timers).
        "idle" => Op::SeqRead,
        "rand-write-fua" => Op::RandWrite { fua: true },
        other => bail!(
            "no operation named {other} (seq-read, seq-write, rand-read, rand-write, \
             seq-write-fua, rand-write-fua)"
        ),
    };
    let s = match section_name {
        "direct" => Section::Direct,
        "local" => Section::Local,
        "remote" | "wan" => Section::Remote,
        _ => Section::Cache,
    };
    let dir = tempfile::tempdir()?;
    let lun = dir.path().join("ssda0.img");
    write_random(&lun, ARRAY_BYTES)?;
    std::fs::File::open(&lun)?.sync_all()?;
    let rt = runtime()?;
    rt.block_on(async {
        let b = Bench::start(&dir.path().join("p"), &lun, s).await?;
        let way = match s {
            Section::Remote if section_name == "wan" => &b.direct_b,
            Section::Direct => &b.direct_a,
            Section::Local => &b.virtual_a,
            Section::Remote | Section::Cache => &b.virtual_b,
        };
        if s == Section::Cache {
            warm(&b).await?;
        }
        let qd = match (op, s) {
            (Op::RandRead | Op::RandWrite { .. }, _) => RAND_QD,
            (_, Section::Remote) => REMOTE_SEQ_QD,
            _ => SEQ_QD,
        };
        let qd = std::env::var("VIO_QD")
            .ok()
            .and_then(|q| q.parse().ok())
            .unwrap_or(qd);
        let time = std::env::var("VIO_TIME")
            .ok()
            .and_then(|q| q.parse().ok())
            .map_or(PROFILE_TIME, Duration::from_secs);
        eprintln!(
            "{section_name} {op:?} at QD {qd} for {time:?}: pid {}",
            std::process::id()
        );
        let r = match op_name {
            "idle" => {
                let t = Timing::start();
                tokio::time::sleep(time).await;
                let r = t.stop(1, SMALL);
                println!(
                    "{section_name} idle: {:.1} ms CPU a second",
                    r.cpu.unwrap_or_default().as_secs_f64() * 1e3 / r.elapsed.as_secs_f64()
                );
                b.running.shutdown().await;
                return Ok(());
            }
            _ => run(way, op, qd, time).await?,
        };
        println!(
            "{section_name} {op:?}: {:.1} {} ({:.0} µs CPU a command, {:.2} cores)",
            r.rate(),
            if r.len == BIG { "MiB/s" } else { "IOPS" },
            r.cpu_per_command().unwrap_or(f64::NAN),
            r.cpu.unwrap_or_default().as_secs_f64() / r.elapsed.as_secs_f64()
        );
        b.running.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

// ---- the topology -----------------------------------------------------------------------------

/// Where a host sends its commands: a LUN of a target, from block `base` on, [`VOLUME_BYTES`]
/// long.
#[derive(Clone)]
struct Way {
    init: Initiator,
    id: FcId,
    lun: Lun,
    base: u64,
}

/// The started topology and the four ways to the volume's blocks.
struct Bench {
    running: Running,
    ctl_b: Arc<Controller>,
    name: VolumeName,
    /// Host A straight to array A, the volume's extent.
    direct_a: Way,
    /// Host B straight to array A across the link.
    direct_b: Way,
    /// Host A through controller A.
    virtual_a: Way,
    /// Host B through controller B.
    virtual_b: Way,
}

impl Bench {
    async fn start(dir: &Path, lun_file: &Path, s: Section) -> Result<Bench> {
        let wan = matches!(s, Section::Remote | Section::Cache);
        let mut t = Topology::new();
        let a = t.gateway("A", 1);
        let b = t.gateway("B", 2);
        let link = t.link(a, b, LINK_CONNECTIONS);
        if wan {
            t.relay(
                link,
                Impairment {
                    one_way_delay: WAN_DELAY,
                    bandwidth_bps: Some(WAN_BPS),
                },
            );
        }
        let array = t.array(
            a,
            ArraySpec::new("ssda").disk_file(lun_file, Tier::Ssd, ARRAY_BYTES),
        );
        t.array(b, ArraySpec::new("ssdb").disk(Tier::Ssd, ARRAY_B_BYTES));
        t.controller_heartbeat(Duration::from_millis(500));
        t.controller_io(IoConfig {
            cache_bytes: match s {
                Section::Remote => 0,
                Section::Cache => CACHE_BYTES,
                Section::Direct | Section::Local => IoConfig::default().cache_bytes,
            },
            ..IoConfig::default()
        });
        let ca = t.controller(a);
        let cb = t.controller(b);
        let ha = t.host(a);
        let hb = t.host(b);
        let running = t.start(dir).await?;
        // An owner acknowledges no write for one lease length after it starts (a lease granted
        // before it started may still be held): no round may fall into that time.
        let writable = tokio::time::Instant::now() + IoConfig::default().lease;
        for c in [ca, cb] {
            wait_ready(&running, c).await?;
        }
        let ctl_a = running.controller(ca).controller.clone();
        let ctl_b = running.controller(cb).controller.clone();
        let name = VolumeName::new("bench")?;
        ctl_a
            .build(BuildSpec {
                name: Some(name.clone()),
                media: MediaType::Ssd,
                capacity: VOLUME_BYTES,
            })
            .await
            .context("build the volume at A")?;
        let t0 = Instant::now();
        let (lun_a, lun_b) = loop {
            if let (Some(x), Some(y)) = (ctl_a.lun_of(&name), ctl_b.lun_of(&name)) {
                break (x, y);
            }
            if t0.elapsed() > WAIT {
                bail!("the volume is not served at both controllers");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (real_lun, base) = extent(&ctl_a, &name)?;
        let array_port = running.array(array).port_name;
        let (init_a, init_b) = (host(&running, ha), host(&running, hb));
        let direct_a = path(&init_a, array_port, real_lun, base).await?;
        let direct_b = path(&init_b, array_port, real_lun, base).await?;
        let virtual_a = path(&init_a, running.controller(ca).port_name, lun_a, 0).await?;
        let virtual_b = path(&init_b, running.controller(cb).port_name, lun_b, 0).await?;
        for p in [&virtual_a, &virtual_b] {
            let cap = p.init.read_capacity(p.id, p.lun).await?;
            if cap.blocks() * u64::from(cap.block_size()) != VOLUME_BYTES
                || cap.block_size() != BLOCK
            {
                bail!(
                    "the virtual LUN has {} blocks of {}",
                    cap.blocks(),
                    cap.block_size()
                );
            }
        }
        tokio::time::sleep_until(writable).await;
        eprintln!(
            "{s:?}: topology up, volume at A's LUN {:?} from block {base}",
            real_lun.index()
        );
        Ok(Bench {
            running,
            ctl_b,
            name,
            direct_a,
            direct_b,
            virtual_a,
            virtual_b,
        })
    }

    fn counters_b(&self) -> IoCounters {
        self.ctl_b.io_counters(&self.name).unwrap_or_default()
    }
}

fn host(running: &Running, h: HostId) -> Initiator {
    running.host(h).initiator.clone()
}

/// Waits until the controller is ready, has its site's array and sees its peer up.
async fn wait_ready(running: &Running, c: ControllerId) -> Result<()> {
    let ctl = &running.controller(c).controller;
    let t0 = Instant::now();
    loop {
        let ok = !ctl.real_volumes().is_empty()
            && ctl
                .inspect(|core| core.is_ready() && core.peers().any(|p| p.state == PeerState::Up));
        if ok {
            return Ok(());
        }
        if t0.elapsed() > WAIT {
            bail!("controller {} not ready", running.controller(c).name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The volume's one contiguous extent on array A: its LUN and first block.
fn extent(ctl: &Controller, name: &VolumeName) -> Result<(Lun, u64)> {
    let mut rows = ctl
        .inspect(|core| {
            core.volume(name)
                .and_then(|r| r.body.as_ref())
                .map(|b| b.rows.clone())
        })
        .ok_or_else(|| anyhow!("no mapping for {name}"))?;
    rows.sort_by_key(|r| r.virtual_start);
    let first = rows.first().ok_or_else(|| anyhow!("{name} has no rows"))?;
    let mut next = first.real.start;
    for r in &rows {
        if r.copy != 0
            || r.real.lun != first.real.lun
            || r.real.start != next
            || r.real.block_size != BLOCK
        {
            bail!("the volume is not one extent of 512-byte blocks: {rows:?}");
        }
        next += r.real.blocks;
    }
    if (next - first.real.start) * u64::from(BLOCK) != VOLUME_BYTES {
        bail!("the volume's extents are not its size");
    }
    Ok((scsi_lun(first.real.lun), first.real.start))
}

/// The host's way to `lun` of the port `wwpn`, once logged in and past its unit attentions.
async fn path(init: &Initiator, wwpn: Wwn, lun: Lun, base: u64) -> Result<Way> {
    let t0 = Instant::now();
    let id = loop {
        if let Some(t) = init
            .node()
            .targets()
            .into_iter()
            .find(|t| t.port_name == wwpn)
        {
            break t.port_id;
        }
        if t0.elapsed() > WAIT {
            bail!("the host never logged in with {wwpn}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..8 {
        match init.test_unit_ready(id, lun).await {
            Ok(()) => {
                return Ok(Way {
                    init: init.clone(),
                    id,
                    lun,
                    base,
                })
            }
            Err(ScsiError::CheckCondition(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("LUN {:?} of {wwpn} never ready", lun.index())
}

// ---- the workloads ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    SeqRead,
    SeqWrite { fua: bool },
    RandRead,
    RandWrite { fua: bool },
}

impl Op {
    fn len(self) -> u64 {
        match self {
            Op::SeqRead | Op::SeqWrite { .. } => BIG,
            Op::RandRead | Op::RandWrite { .. } => SMALL,
        }
    }

    fn writes(self) -> bool {
        matches!(self, Op::SeqWrite { .. } | Op::RandWrite { .. })
    }
}

/// Runs `op` from `qd` tasks on `p` for `time` (after `warm` for reads); the commands completed
/// from the start of counting, and the time to the last one (for writes, to the end of the
/// SYNCHRONIZE CACHE that follows).
async fn run(p: &Way, op: Op, qd: usize, time: Duration) -> Result<Round> {
    let len = op.len();
    let blocks = (len / u64::from(BLOCK)) as u32;
    let slots = VOLUME_BYTES / len;
    let next = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let data = Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ 0x5a)
            .collect::<Vec<u8>>(),
    );
    let mut set = JoinSet::new();
    for task in 0..qd {
        let (p, next, counting, stop, data) = (
            p.clone(),
            next.clone(),
            counting.clone(),
            stop.clone(),
            data.clone(),
        );
        set.spawn(async move {
            let mut rng = XorShift::new(task as u64 ^ (len << 8));
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let slot = match op {
                    Op::SeqRead | Op::SeqWrite { .. } => {
                        next.fetch_add(1, Ordering::Relaxed) % slots
                    }
                    Op::RandRead | Op::RandWrite { .. } => rng.below(slots),
                };
                let lba = p.base + slot * u64::from(blocks);
                match op {
                    Op::SeqRead | Op::RandRead => {
                        past_attentions(4, || p.init.read(p.id, p.lun, lba, blocks, BLOCK)).await?;
                    }
                    Op::SeqWrite { fua } | Op::RandWrite { fua } => {
                        past_attentions(4, || {
                            p.init.write(p.id, p.lun, lba, data.clone(), BLOCK, fua)
                        })
                        .await?;
                    }
                }
                if counting.load(Ordering::Relaxed) {
                    done += 1;
                }
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    if !op.writes() {
        tokio::time::sleep(WARM_UP).await;
    }
    let timing = Timing::start();
    counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut commands = 0;
    while let Some(r) = set.join_next().await {
        commands += r.context("a bench task panicked")??;
    }
    if op.writes() {
        past_attentions(4, || p.init.synchronize_cache(p.id, p.lun)).await?;
    }
    Ok(timing.stop(commands, len))
}

// ---- the sections -----------------------------------------------------------------------------

/// The figures of one section, by name, in the order measured.
#[derive(Default)]
struct Figures {
    figures: Vec<(&'static str, Vec<Round>)>,
    /// Controller B's cache counters over the measured rounds (cache section).
    cache_counters: Option<(IoCounters, IoCounters)>,
    /// Warm-up of the cache: the time of the first pass, and what a second pass missed.
    warm: Option<(Duration, u64)>,
}

impl Figures {
    fn push(&mut self, name: &'static str, r: Round) {
        eprintln!(
            "  {name:<28} {:>9.1} {}",
            r.rate(),
            if r.len == BIG { "MiB/s" } else { "IOPS" }
        );
        match self.figures.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(r),
            None => self.figures.push((name, vec![r])),
        }
    }

    fn get(&self, name: &str) -> Option<&[Round]> {
        self.figures
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Direct and, with `virtual_too`, (a): host A through controller A.
async fn local(b: &Bench, virtual_too: bool) -> Result<Figures> {
    let (d, v) = (&b.direct_a, &b.virtual_a);
    let t = ROUND_TIME;
    let mut f = Figures::default();
    // Every block once through each path first: the first pass pays for warm-up.
    run(d, Op::SeqRead, SEQ_QD, t).await?;
    if virtual_too {
        run(v, Op::SeqRead, SEQ_QD, t).await?;
    }
    for k in 1..=ROUNDS {
        eprintln!("round {k}/{ROUNDS}");
        f.push("direct seq read", run(d, Op::SeqRead, SEQ_QD, t).await?);
        if virtual_too {
            f.push("local seq read", run(v, Op::SeqRead, SEQ_QD, t).await?);
        }
        f.push("direct rand read", run(d, Op::RandRead, RAND_QD, t).await?);
        if virtual_too {
            f.push("local rand read", run(v, Op::RandRead, RAND_QD, t).await?);
        }
        let (w, wf) = (Op::SeqWrite { fua: false }, Op::SeqWrite { fua: true });
        f.push("direct seq write", run(d, w, SEQ_QD, t).await?);
        f.push("direct seq write FUA", run(d, wf, SEQ_QD, t).await?);
        if virtual_too {
            f.push("local seq write", run(v, w, SEQ_QD, t).await?);
        }
        let (w, wf) = (Op::RandWrite { fua: false }, Op::RandWrite { fua: true });
        f.push("direct rand write", run(d, w, RAND_QD, t).await?);
        f.push("direct rand write FUA", run(d, wf, RAND_QD, t).await?);
        if virtual_too {
            f.push("local rand write", run(v, w, RAND_QD, t).await?);
        }
    }
    Ok(f)
}

/// (b): host B through controller B, forwarded to A across the relay; beside it host B
/// straight to array A through the same relay.
async fn remote(b: &Bench) -> Result<Figures> {
    let (d, v) = (&b.direct_b, &b.virtual_b);
    let t = REMOTE_ROUND_TIME;
    let mut f = Figures::default();
    let (w, wf) = (Op::SeqWrite { fua: false }, Op::SeqWrite { fua: true });
    let (rw, rwf) = (Op::RandWrite { fua: false }, Op::RandWrite { fua: true });
    for k in 1..=ROUNDS {
        eprintln!("round {k}/{ROUNDS}");
        f.push(
            "WAN direct seq read",
            run(d, Op::SeqRead, REMOTE_SEQ_QD, t).await?,
        );
        f.push(
            "remote seq read",
            run(v, Op::SeqRead, REMOTE_SEQ_QD, t).await?,
        );
        f.push(
            "WAN direct rand read",
            run(d, Op::RandRead, RAND_QD, t).await?,
        );
        f.push("remote rand read", run(v, Op::RandRead, RAND_QD, t).await?);
        f.push("WAN direct seq write", run(d, w, REMOTE_SEQ_QD, t).await?);
        f.push(
            "WAN direct seq write FUA",
            run(d, wf, REMOTE_SEQ_QD, t).await?,
        );
        f.push("remote seq write", run(v, w, REMOTE_SEQ_QD, t).await?);
        f.push("WAN direct rand write", run(d, rw, RAND_QD, t).await?);
        f.push("WAN direct rand write FUA", run(d, rwf, RAND_QD, t).await?);
        f.push("remote rand write", run(v, rw, RAND_QD, t).await?);
    }
    Ok(f)
}

/// (c): host B reads the volume through controller B once (the cache fills), then its reads
/// are measured beside host A's direct reads.
async fn cache(b: &Bench) -> Result<Figures> {
    let (d, v) = (&b.direct_a, &b.virtual_b);
    let t = ROUND_TIME;
    let mut f = Figures {
        warm: Some(warm(b).await?),
        ..Figures::default()
    };
    // Direct's first pass too.
    run(d, Op::SeqRead, SEQ_QD, t).await?;
    let before = b.counters_b();
    for k in 1..=ROUNDS {
        eprintln!("round {k}/{ROUNDS}");
        f.push("direct seq read", run(d, Op::SeqRead, SEQ_QD, t).await?);
        let c0 = b.counters_b();
        f.push("cache seq read", run(v, Op::SeqRead, SEQ_QD, t).await?);
        let c1 = b.counters_b();
        f.push("direct rand read", run(d, Op::RandRead, RAND_QD, t).await?);
        let c2 = b.counters_b();
        f.push("cache rand read", run(v, Op::RandRead, RAND_QD, t).await?);
        let c3 = b.counters_b();
        eprintln!(
            "  misses: seq {} of {}, rand {} of {}",
            c1.cache_misses - c0.cache_misses,
            c1.reads - c0.reads,
            c3.cache_misses - c2.cache_misses,
            c3.reads - c2.reads
        );
    }
    f.cache_counters = Some((before, b.counters_b()));
    // Writes from B while B holds a lease: the owner invalidates B's cache (a WAN round trip)
    // before it acknowledges. After the reads: writes empty the cache where they go.
    let rt = REMOTE_ROUND_TIME;
    for k in 1..=ROUNDS {
        eprintln!("writes, round {k}/{ROUNDS}");
        let (w, rw) = (Op::SeqWrite { fua: false }, Op::RandWrite { fua: false });
        f.push("leased seq write", run(v, w, REMOTE_SEQ_QD, rt).await?);
        f.push("leased rand write", run(v, rw, RAND_QD, rt).await?);
    }
    Ok(f)
}

/// Warms controller B's cache: a first read (whose miss asks the owner for a lease; data read
/// before it is granted is not kept), then the whole volume twice; the time of the first whole
/// pass and the misses of the second.
async fn warm(b: &Bench) -> Result<(Duration, u64)> {
    let v = &b.virtual_b;
    v.init.read(v.id, v.lun, 0, 8, BLOCK).await?;
    tokio::time::sleep(4 * WAN_DELAY + Duration::from_millis(100)).await;
    let t0 = Instant::now();
    pass(v).await?;
    let first = t0.elapsed();
    let before = b.counters_b();
    pass(v).await?;
    let missed = b.counters_b().cache_misses - before.cache_misses;
    eprintln!(
        "cache warm-up: first pass {:.2} s, second pass missed {missed} reads",
        first.as_secs_f64()
    );
    Ok((first, missed))
}

/// Reads the whole volume once in 1 MiB commands, [`SEQ_QD`] at a time.
async fn pass(p: &Way) -> Result<()> {
    let blocks = (BIG / u64::from(BLOCK)) as u32;
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for _ in 0..SEQ_QD {
        let (p, next) = (p.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= VOLUME_BYTES / BIG {
                    return Ok::<_, anyhow::Error>(());
                }
                let lba = p.base + i * u64::from(blocks);
                past_attentions(4, || p.init.read(p.id, p.lun, lba, blocks, BLOCK)).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.context("a bench task panicked")??;
    }
    Ok(())
}

// ---- measuring --------------------------------------------------------------------------------

/// xorshift64*: offsets spread over the volume, the same every run.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0xD129_1A2B_3C4D_5E6F) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// A round under way: wall time, and the CPU time of the process.
struct Timing {
    start: Instant,
    cpu: Option<Duration>,
}

impl Timing {
    fn start() -> Timing {
        Timing {
            start: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn stop(&self, commands: u64, len: u64) -> Round {
        let elapsed = self.start.elapsed();
        let cpu = cpu_time()
            .zip(self.cpu)
            .map(|(end, start)| end.saturating_sub(start));
        Round {
            commands,
            len,
            elapsed,
            cpu,
        }
    }
}

/// CPU time the process has used so far, user and system (`/proc/self/stat` fields 14 and 15,
/// in ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// One round of a figure: commands of `len` bytes completed, in `elapsed`, with the process's
/// CPU time meanwhile.
#[derive(Debug, Clone, Copy)]
struct Round {
    commands: u64,
    len: u64,
    elapsed: Duration,
    cpu: Option<Duration>,
}

impl Round {
    /// MiB/s for 1 MiB commands, IOPS for 4 KiB ones.
    fn rate(&self) -> f64 {
        let per_s = self.commands as f64 / self.elapsed.as_secs_f64();
        if self.len == BIG {
            per_s * self.len as f64 / BIG as f64
        } else {
            per_s
        }
    }

    /// CPU per command, µs.
    fn cpu_per_command(&self) -> Option<f64> {
        let cpu = self.cpu?.as_secs_f64();
        (self.commands > 0).then(|| cpu * 1e6 / self.commands as f64)
    }
}

/// Median, smallest and largest.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let median = match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The median over the rounds of `f`'s rate ÷ `r`'s in the same round.
fn ratio(f: &[Round], r: &[Round]) -> f64 {
    Spread::of(f.iter().zip(r).map(|(f, r)| f.rate() / r.rate())).median
}

// ---- the report -------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    local: Option<Figures>,
    remote: Option<Figures>,
    cache: Option<Figures>,
}

/// The cap of the WAN in MiB/s.
fn cap_mib() -> f64 {
    WAN_BPS as f64 / 8.0 / BIG as f64
}

/// The most 4 KiB commands a second [`RAND_QD`] in flight can complete across the WAN: one
/// round trip each (reads; writes take two).
fn latency_bound(round_trips: u32) -> f64 {
    RAND_QD as f64 / (2 * WAN_DELAY * round_trips).as_secs_f64()
}

struct Line<'a> {
    name: &'a str,
    qd: usize,
    rounds: &'a [Round],
    reference: String,
    ratio: Option<f64>,
    target: Option<f64>,
}

fn header() {
    println!(
        "{:<30} {:>3} {:>11} {:>19} {:>8} {:>34} {:>7} {:>7} {:>7}",
        "figure", "QD", "median", "min – max", "CPU µs", "reference", "ratio", "target", "met?"
    );
}

fn line(l: Line<'_>) {
    let s = Spread::of(l.rounds.iter().map(Round::rate));
    let unit = if l.rounds.first().is_some_and(|r| r.len == BIG) {
        "MiB/s"
    } else {
        "IOPS"
    };
    let cpu = Spread::of(l.rounds.iter().filter_map(Round::cpu_per_command)).median;
    println!(
        "{:<30} {:>3} {:>5.0} {:<5} {:>19} {:>8.0} {:>34} {:>7} {:>7} {:>7}",
        l.name,
        l.qd,
        s.median,
        unit,
        format!("{:.0} – {:.0}", s.min, s.max),
        cpu,
        l.reference,
        l.ratio.map_or("".into(), |r| format!("{r:.2}")),
        l.target.map_or("".into(), |t| format!("≥ {t:.2}")),
        match (l.ratio, l.target) {
            (Some(r), Some(t)) => met(r >= t),
            _ => "",
        }
    );
}

impl Report {
    fn print(&self) {
        println!(
            "\nvolume {} MiB owned by controller A on an SSD array LUN file in the page cache; \
             1 MiB sequential, 4 KiB random over the whole volume; {ROUNDS} rounds, medians; \
             CPU: process CPU time per command",
            VOLUME_BYTES >> 20
        );
        if let Some(f) = &self.local {
            Self::print_local(f);
        }
        if let Some(f) = &self.remote {
            Self::print_remote(f);
        }
        if let Some(f) = &self.cache {
            Self::print_cache(f);
        }
    }

    fn print_local(f: &Figures) {
        println!(
            "\n(a) local: host A → controller A → array A, beside host A → array A (direct, the \
             same blocks); writes end with SYNCHRONIZE CACHE inside the time"
        );
        header();
        let rows: [(&str, &str, &str, usize); 4] = [
            ("seq read", "direct seq read", "", SEQ_QD),
            ("rand read", "direct rand read", "", RAND_QD),
            (
                "seq write",
                "direct seq write",
                "direct seq write FUA",
                SEQ_QD,
            ),
            (
                "rand write",
                "direct rand write",
                "direct rand write FUA",
                RAND_QD,
            ),
        ];
        for (what, reference, fua, qd) in rows {
            let Some(r) = f.get(reference) else { continue };
            line(Line {
                name: reference,
                qd,
                rounds: r,
                reference: String::new(),
                ratio: None,
                target: None,
            });
            if let Some(rf) = f.get(fua) {
                line(Line {
                    name: fua,
                    qd,
                    rounds: rf,
                    reference: reference.into(),
                    ratio: Some(ratio(rf, r)),
                    target: None,
                });
            }
            let name = format!("local {what}");
            if let Some(v) = f.get(&name) {
                line(Line {
                    name: &name,
                    qd,
                    rounds: v,
                    reference: reference.into(),
                    ratio: Some(ratio(v, r)),
                    target: Some(TARGET_LOCAL),
                });
                if let Some(rf) = f.get(fua) {
                    line(Line {
                        name: &name,
                        qd,
                        rounds: v,
                        reference: fua.into(),
                        ratio: Some(ratio(v, rf)),
                        target: None,
                    });
                }
            }
        }
    }

    fn print_remote(f: &Figures) {
        println!(
            "\n(b) remote: host B → controller B → gateways, relay at {} ms RTT and {} Gbit/s \
             each way → controller A → array A; caches off (every read crosses the WAN); \
             bandwidth-delay product {:.1} MB; 1 MiB at QD {REMOTE_SEQ_QD} ({} MiB in flight), \
             4 KiB at QD {RAND_QD}",
            (2 * WAN_DELAY).as_millis(),
            WAN_BPS / 1_000_000_000,
            WAN_BPS as f64 / 8.0 * (2 * WAN_DELAY).as_secs_f64() / 1e6,
            (REMOTE_SEQ_QD as u64 * BIG) >> 20,
        );
        header();
        let cap = cap_mib();
        for (what, qd) in [
            ("seq read", REMOTE_SEQ_QD),
            ("rand read", RAND_QD),
            ("seq write", REMOTE_SEQ_QD),
            ("rand write", RAND_QD),
        ] {
            let direct = format!("WAN direct {what}");
            let fua = format!("WAN direct {what} FUA");
            let name = format!("remote {what}");
            let seq = what.starts_with("seq");
            // The bound without the cap: a read one round trip, a write two.
            let trips = if what.ends_with("write") { 2 } else { 1 };
            let bound = latency_bound(trips);
            let bound_name = format!("QD/RTT: {bound:.0} IOPS ({trips} RTT)");
            for (n, target) in [(&direct, false), (&fua, false), (&name, true)] {
                let Some(v) = f.get(n) else { continue };
                let s = Spread::of(v.iter().map(Round::rate)).median;
                let (reference, r) = if seq {
                    (format!("cap {cap:.1} MiB/s"), s / cap)
                } else {
                    (bound_name.clone(), s / bound)
                };
                line(Line {
                    name: n,
                    qd,
                    rounds: v,
                    reference,
                    ratio: Some(r),
                    target: (target && seq).then_some(TARGET_REMOTE_CAP),
                });
                if target {
                    if let Some(d) = f.get(&direct) {
                        line(Line {
                            name: n,
                            qd,
                            rounds: v,
                            reference: direct.clone(),
                            ratio: Some(ratio(v, d)),
                            target: None,
                        });
                    }
                }
            }
        }
    }

    fn print_cache(f: &Figures) {
        println!(
            "\n(c) cache: host B → controller B, its cache warm ({} MiB; the whole volume read \
             once first), owner A across the relay at {} ms RTT; beside host A → array A (direct)",
            CACHE_BYTES >> 20,
            (2 * WAN_DELAY).as_millis()
        );
        header();
        for (what, qd) in [("seq read", SEQ_QD), ("rand read", RAND_QD)] {
            let reference = format!("direct {what}");
            let Some(r) = f.get(&reference) else { continue };
            line(Line {
                name: &reference,
                qd,
                rounds: r,
                reference: String::new(),
                ratio: None,
                target: None,
            });
            let name = format!("cache {what}");
            if let Some(v) = f.get(&name) {
                line(Line {
                    name: &name,
                    qd,
                    rounds: v,
                    reference: reference.clone(),
                    ratio: Some(ratio(v, r)),
                    target: Some(TARGET_CACHE),
                });
            }
        }
        for (what, qd) in [("seq write", REMOTE_SEQ_QD), ("rand write", RAND_QD)] {
            let name = format!("leased {what}");
            let Some(v) = f.get(&name) else { continue };
            let s = Spread::of(v.iter().map(Round::rate)).median;
            let (reference, r) = if what.starts_with("seq") {
                (format!("cap {:.1} MiB/s", cap_mib()), s / cap_mib())
            } else {
                let bound = latency_bound(2);
                (format!("QD/RTT: {bound:.0} IOPS (2 RTT)"), s / bound)
            };
            line(Line {
                name: &name,
                qd,
                rounds: v,
                reference,
                ratio: Some(r),
                target: None,
            });
        }
        println!(
            "leased: host B's writes through controller B while B holds a cache lease (the \
             owner invalidates every other holder before it acknowledges, not B, which drops \
             the range itself: no third round trip); compare with (b), where no lease is held"
        );
        if let Some((first, missed)) = f.warm {
            println!(
                "warm-up: the first pass (every read a miss, to A across the WAN) took {:.2} s \
                 ({:.0} MiB/s, {:.2} of the cap); a second pass missed {missed} of {} reads",
                first.as_secs_f64(),
                VOLUME_BYTES as f64 / BIG as f64 / first.as_secs_f64(),
                VOLUME_BYTES as f64 / BIG as f64 / first.as_secs_f64() / cap_mib(),
                VOLUME_BYTES / BIG
            );
        }
        if let Some((a, b)) = &f.cache_counters {
            let (hits, misses) = (b.cache_hits - a.cache_hits, b.cache_misses - a.cache_misses);
            println!(
                "controller B over the measured rounds: {hits} hits, {misses} misses ({:.2}% \
                 hits), {} WAN bytes",
                100.0 * hits as f64 / (hits + misses).max(1) as f64,
                b.wan_bytes - a.wan_bytes
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
