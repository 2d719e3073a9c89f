//! The SAN data path end to end, with its references measured in the same run.
//!
//! ```text
//!  host (Initiator) ─ TCP ─ switch ─ TCP ─ disk array ─ pread/pwrite ─ 256 MiB LUN file
//! ```
//!
//! Everything runs in one process on a multi-threaded tokio runtime, but every byte crosses
//! loopback TCP twice (host ↔ switch ↔ array), composed with `topology::Topology` as `fcsan up`
//! composes its sites. Measured:
//!
//! - sequential 1 MiB READ and WRITE at queue depth 1 and 8, MB/s (a write round is one pass
//!   over the LUN ending with one SYNCHRONIZE CACHE, inside the time);
//! - 4 KiB random READ at queue depth 1 and 32 (tasks sharing one `Initiator`), IOPS, for a
//!   fixed time after a warm-up;
//! - references: raw loopback TCP moving 1 MiB buffers (one `TcpStream` pair, sockets sized
//!   as the links size theirs), and the same I/O straight on the backing file (`pread`,
//!   `pwrite` + `fsync`, 4 KiB random `pread` from 1 and 32 threads).
//!
//! The LUN file is filled before the array opens it and stays in the page cache, as does the
//! direct-file reference: both measure the software path, not a disk.
//!
//! The machine this runs on is shared and noisy, so every figure, the references too, is
//! measured in [`ROUNDS`] short rounds and reported as the median, with the smallest and
//! largest round beside it. The rounds are interleaved, each reference's round next to the SAN
//! rounds set against it (raw TCP, then the SAN's sequential reads, then the file's; the file's
//! random reads, then the SAN's, at each depth; the file's write pass, then the SAN's), so they
//! see the same machine; each ratio is the median over the rounds of figure ÷ reference within
//! one round.
//!
//! Beside each figure goes the CPU time (user + system, of the whole process, as
//! `getrusage(RUSAGE_SELF)` counts it, read from `/proc/self/stat`) it cost over the same
//! interval: per 1000 bytes moved for MB/s figures, per command for IOPS figures. Wall-time
//! figures move with the cores other work leaves over; the CPU time per byte much less, so
//! each ratio is also given that way round: the reference's CPU per unit ÷ the figure's.
//!
//! Run with `cargo bench --bench san`. The table is followed by the same figures as
//! `name value unit ratio` lines. `cargo bench --bench san -- san_rand_read_4k_qd32` (or any
//! other `san_*` figure) runs that one figure alone for [`PROFILE_TIME`], to profile it.

// Large I/O buffers come and go with every command: an allocator that keeps freed memory
// mapped avoids a page fault and a page clear per 4 KiB on the data path (glibc unmaps
// allocations above its mmap threshold on free).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use fabric::link::tcp::SOCKET_BUFFER;
use fc_frames::scsi::Lun;
use fc_frames::FcId;
use fc_node::fcp::initiator::Initiator;
use fc_node::scsi::Tier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use topology::{write_random, ArraySpec, Running, Topology};

const LUN_BYTES: u64 = 256 << 20;
const BLOCK: u32 = 512;
const BIG: usize = 1 << 20;
const SMALL: usize = 4 << 10;
/// How many times each figure is measured; the report gives the median.
const ROUNDS: usize = 7;
/// How long one round of a timed figure (sequential read, random read, raw TCP) counts.
const ROUND_TIME: Duration = Duration::from_secs(1);
/// How long random reads and raw TCP run in each round before counting starts.
const WARM_UP: Duration = Duration::from_millis(200);
/// How long a figure run alone runs.
const PROFILE_TIME: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);
/// The targets of the current issue.
const TARGET_READ_QD8_VS_TCP: f64 = 0.5;
const TARGET_RAND_QD32_IOPS: f64 = 100_000.0;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lun0.img");
    write_random(&path, LUN_BYTES)?;
    File::open(&path)?.sync_all()?;

    if let Some(figure) = std::env::args().skip(1).find(|a| !a.starts_with('-')) {
        return rt.block_on(profile(&path, &figure));
    }
    let figures = measure(&rt, &path)?;
    report(&figures);
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every figure, one [`Round`] per round.
#[derive(Default)]
struct Figures {
    raw_tcp: Vec<Round>,
    file_read: Vec<Round>,
    file_write: Vec<Round>,
    file_rand_qd1: Vec<Round>,
    file_rand_qd32: Vec<Round>,
    read_qd1: Vec<Round>,
    read_qd8: Vec<Round>,
    write_qd1: Vec<Round>,
    write_qd8: Vec<Round>,
    rand_qd1: Vec<Round>,
    rand_qd32: Vec<Round>,
}

/// One host and one disk array behind a switch, all on loopback TCP.
struct San {
    running: Running,
    host: Initiator,
    target: FcId,
}

/// Starts the SAN and measures every figure [`ROUNDS`] times, in rounds interleaved as the
/// module doc says.
///
/// The main thread drives: the SAN's tasks run on the runtime's workers, and the direct-file
/// references run here between `block_on`s, so the SAN stays served while they run.
fn measure(rt: &Runtime, path: &Path) -> Result<Figures> {
    let san = rt.block_on(start_san(path))?;
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let (h, t, lun) = (&san.host, san.target, Lun::ZERO);
    // Every 1 MiB chunk once before timing anything: the first pass pays for warm-up.
    rt.block_on(seq_read(
        h,
        t,
        lun,
        8,
        Duration::ZERO,
        LUN_BYTES / BIG as u64,
    ))?;
    let mut f = Figures::default();
    for k in 1..=ROUNDS {
        eprint!("round {k}/{ROUNDS}: reads…");
        f.raw_tcp.push(rt.block_on(raw_tcp(ROUND_TIME))?);
        f.read_qd8
            .push(rt.block_on(seq_read(h, t, lun, 8, ROUND_TIME, 0))?);
        f.read_qd1
            .push(rt.block_on(seq_read(h, t, lun, 1, ROUND_TIME, 0))?);
        f.file_read.push(file_seq_read(&file, ROUND_TIME)?);
        eprint!(" random reads…");
        f.file_rand_qd1.push(file_rand_read(&file, 1, ROUND_TIME)?);
        f.rand_qd1
            .push(rt.block_on(rand_read(h, t, lun, 1, ROUND_TIME))?);
        f.file_rand_qd32
            .push(file_rand_read(&file, 32, ROUND_TIME)?);
        f.rand_qd32
            .push(rt.block_on(rand_read(h, t, lun, 32, ROUND_TIME))?);
        eprintln!(" writes");
        f.file_write.push(file_seq_write(&file)?);
        f.write_qd1.push(rt.block_on(seq_write(h, t, lun, 1))?);
        f.write_qd8.push(rt.block_on(seq_write(h, t, lun, 8))?);
    }
    rt.block_on(san.running.shutdown());
    Ok(f)
}

/// One SAN figure alone, for [`PROFILE_TIME`] (writes: as many passes as fit).
async fn profile(path: &Path, figure: &str) -> Result<()> {
    let san = start_san(path).await?;
    let (h, t, lun) = (&san.host, san.target, Lun::ZERO);
    let (round, unit) = match figure {
        "san_seq_read_1m_qd1" => (seq_read(h, t, lun, 1, PROFILE_TIME, 0).await?, Unit::MBps),
        "san_seq_read_1m_qd8" => (seq_read(h, t, lun, 8, PROFILE_TIME, 0).await?, Unit::MBps),
        "san_seq_write_1m_qd1" | "san_seq_write_1m_qd8" => {
            let qd = if figure.ends_with("qd1") { 1 } else { 8 };
            let start = Instant::now();
            let mut sum = seq_write(h, t, lun, qd).await?;
            while start.elapsed() < PROFILE_TIME {
                sum = sum.plus(seq_write(h, t, lun, qd).await?);
            }
            (sum, Unit::MBps)
        }
        "san_rand_read_4k_qd1" => (rand_read(h, t, lun, 1, PROFILE_TIME).await?, Unit::Iops),
        "san_rand_read_4k_qd32" => (rand_read(h, t, lun, 32, PROFILE_TIME).await?, Unit::Iops),
        other => return Err(anyhow!("no SAN figure named {other}")),
    };
    println!(
        "{figure} {:.1} {} ({:.1} {} CPU, {:.2} cores)",
        round.rate(unit),
        unit.name(),
        round.cpu_per(unit).unwrap_or(f64::NAN),
        unit.cpu_name(),
        round.cores().unwrap_or(f64::NAN),
    );
    san.running.shutdown().await;
    Ok(())
}

/// The switch, the array on the LUN file at `path` (filled already) and the host, zoned
/// together; once the host is logged in to the array.
async fn start_san(path: &Path) -> Result<San> {
    let mut t = Topology::new();
    let sw = t.switch("bench", 1);
    t.ports(sw, 4);
    let disk = t.array(
        sw,
        ArraySpec::new("bench").disk_file(path, Tier::Ssd, LUN_BYTES),
    );
    let host = t.host(sw);
    t.zone_set("bench");
    t.zone("bench", [host.into(), disk.into()]);
    let running = t
        .start(path.parent().context("the LUN file has a folder")?)
        .await?;
    let host = running.host(host).initiator.clone();
    host.node().wait_online(WAIT).await?;
    let targets = host.node().wait_targets(1, WAIT).await?;
    let disk = running.array(disk).port_name;
    let target = targets
        .iter()
        .find(|t| t.port_name == disk)
        .map(|t| t.port_id)
        .ok_or_else(|| anyhow!("the host did not find the disk array"))?;
    let cap = host.read_capacity(target, Lun::ZERO).await?;
    if cap.blocks() * u64::from(cap.block_size()) != LUN_BYTES {
        return Err(anyhow!("the LUN has {} blocks", cap.blocks()));
    }
    Ok(San {
        running,
        host,
        target,
    })
}

/// 1 MiB chunks of the LUN, in order, wrapping around: the next chunk's index.
struct Chunks {
    next: AtomicU64,
    count: u64,
}

impl Chunks {
    fn new(chunk: usize) -> Arc<Chunks> {
        Arc::new(Chunks {
            next: AtomicU64::new(0),
            count: LUN_BYTES / chunk as u64,
        })
    }
}

/// Sequential 1 MiB READs from `qd` tasks, wrapping around the LUN, until `time` has passed
/// and at least `min_chunks` were asked for; bytes read.
async fn seq_read(
    h: &Initiator,
    t: FcId,
    lun: Lun,
    qd: usize,
    time: Duration,
    min_chunks: u64,
) -> Result<Round> {
    let chunks = Chunks::new(BIG);
    let blocks = (BIG / BLOCK as usize) as u32;
    let timing = Timing::start();
    let start = timing.start;
    let mut set = JoinSet::new();
    for _ in 0..qd {
        let (h, chunks) = (h.clone(), chunks.clone());
        set.spawn(async move {
            let mut bytes = 0u64;
            loop {
                let i = chunks.next.fetch_add(1, Ordering::Relaxed);
                if i >= min_chunks && start.elapsed() >= time {
                    return Ok::<_, anyhow::Error>(bytes);
                }
                let lba = (i % chunks.count) * u64::from(blocks);
                let data = h.read(t, lun, lba, blocks, BLOCK).await?;
                bytes += data.len() as u64;
            }
        });
    }
    let bytes = join_sum(set).await?;
    Ok(timing.stop(bytes))
}

/// One pass of sequential 1 MiB WRITEs (no FUA) from `qd` tasks, then SYNCHRONIZE CACHE;
/// bytes written, the flush inside the time.
async fn seq_write(h: &Initiator, t: FcId, lun: Lun, qd: usize) -> Result<Round> {
    let chunks = Chunks::new(BIG);
    let data = Bytes::from(
        (0..BIG)
            .map(|i| (i as u8).wrapping_mul(31) ^ qd as u8)
            .collect::<Vec<u8>>(),
    );
    let blocks = (BIG / BLOCK as usize) as u64;
    let timing = Timing::start();
    let mut set = JoinSet::new();
    for _ in 0..qd {
        let (h, chunks, data) = (h.clone(), chunks.clone(), data.clone());
        set.spawn(async move {
            let mut bytes = 0u64;
            loop {
                let i = chunks.next.fetch_add(1, Ordering::Relaxed);
                if i >= chunks.count {
                    return Ok::<_, anyhow::Error>(bytes);
                }
                h.write(t, lun, i * blocks, data.clone(), BLOCK, false)
                    .await?;
                bytes += data.len() as u64;
            }
        });
    }
    let bytes = join_sum(set).await?;
    h.synchronize_cache(t, lun).await?;
    Ok(timing.stop(bytes))
}

/// 4 KiB READs at random 4 KiB-aligned offsets from `qd` tasks sharing one initiator, for
/// `time` after [`WARM_UP`]; commands completed meanwhile.
async fn rand_read(h: &Initiator, t: FcId, lun: Lun, qd: usize, time: Duration) -> Result<Round> {
    let blocks = (SMALL / BLOCK as usize) as u32;
    let slots = LUN_BYTES / SMALL as u64;
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for task in 0..qd {
        let (h, counting, stop) = (h.clone(), counting.clone(), stop.clone());
        set.spawn(async move {
            let mut rng = XorShift::new(task as u64);
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let lba = rng.below(slots) * u64::from(blocks);
                h.read(t, lun, lba, blocks, BLOCK).await?;
                if counting.load(Ordering::Relaxed) {
                    done += 1;
                }
            }
            Ok::<_, anyhow::Error>(done)
        });
    }
    tokio::time::sleep(WARM_UP).await;
    counting.store(true, Ordering::Relaxed);
    let timing = Timing::start();
    tokio::time::sleep(time).await;
    counting.store(false, Ordering::Relaxed);
    let measured = timing.stop(0);
    stop.store(true, Ordering::Relaxed);
    let ios = join_sum(set).await?;
    Ok(Round {
        work: ios,
        ..measured
    })
}

async fn join_sum(mut set: JoinSet<Result<u64>>) -> Result<u64> {
    let mut sum = 0;
    while let Some(r) = set.join_next().await {
        sum += r.context("bench task panicked")??;
    }
    Ok(sum)
}

/// One loopback TCP connection, sockets sized as the TCP links size theirs (and
/// TCP_NODELAY), one task writing 1 MiB buffers and one reading them, for `time` after
/// [`WARM_UP`]; bytes received.
async fn raw_tcp(time: Duration) -> Result<Round> {
    let listener = TcpSocket::new_v4()?;
    listener.set_recv_buffer_size(SOCKET_BUFFER as u32)?;
    listener.set_send_buffer_size(SOCKET_BUFFER as u32)?;
    listener.bind("127.0.0.1:0".parse::<SocketAddr>()?)?;
    let listener = listener.listen(1)?;
    let client = TcpSocket::new_v4()?;
    client.set_recv_buffer_size(SOCKET_BUFFER as u32)?;
    client.set_send_buffer_size(SOCKET_BUFFER as u32)?;
    let (client, accepted) =
        tokio::join!(client.connect(listener.local_addr()?), listener.accept());
    let (mut tx, mut rx) = (client?, accepted?.0);
    tx.set_nodelay(true)?;
    rx.set_nodelay(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let buf = vec![0x5Au8; BIG];
            while !stop.load(Ordering::Relaxed) {
                tx.write_all(&buf).await?;
            }
            tx.shutdown().await
        })
    };
    let mut buf = vec![0u8; BIG];
    // Warm-up, then count.
    let warm = Instant::now();
    while warm.elapsed() < WARM_UP {
        if rx.read(&mut buf).await? == 0 {
            return Err(anyhow!("the raw TCP writer stopped"));
        }
    }
    let timing = Timing::start();
    let mut bytes = 0u64;
    while timing.start.elapsed() < time {
        bytes += rx.read(&mut buf).await? as u64;
    }
    let measured = timing.stop(bytes);
    stop.store(true, Ordering::Relaxed);
    while rx.read(&mut buf).await? > 0 {}
    writer.await??;
    Ok(measured)
}

/// 1 MiB `pread`s in order, wrapping around, for `time`; bytes read.
fn file_seq_read(file: &File, time: Duration) -> Result<Round> {
    let mut buf = vec![0u8; BIG];
    let chunks = LUN_BYTES / BIG as u64;
    let timing = Timing::start();
    let mut i = 0u64;
    while timing.start.elapsed() < time {
        file.read_exact_at(&mut buf, (i % chunks) * BIG as u64)?;
        i += 1;
    }
    Ok(timing.stop(i * BIG as u64))
}

/// One pass of 1 MiB `pwrite`s in order, then `fsync`; bytes written.
fn file_seq_write(file: &File) -> Result<Round> {
    let buf: Vec<u8> = (0..BIG).map(|i| (i as u8).wrapping_mul(17)).collect();
    let timing = Timing::start();
    for i in 0..LUN_BYTES / BIG as u64 {
        file.write_all_at(&buf, i * BIG as u64)?;
    }
    file.sync_all()?;
    Ok(timing.stop(LUN_BYTES))
}

/// 4 KiB `pread`s at random aligned offsets from `threads` threads for `time` after
/// [`WARM_UP`]; reads completed meanwhile.
fn file_rand_read(file: &File, threads: usize, time: Duration) -> Result<Round> {
    let slots = LUN_BYTES / SMALL as u64;
    let counting = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|n| {
                let (counting, stop) = (&counting, &stop);
                s.spawn(move || -> std::io::Result<u64> {
                    let mut rng = XorShift::new(1000 + n as u64);
                    let mut buf = vec![0u8; SMALL];
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        file.read_exact_at(&mut buf, rng.below(slots) * SMALL as u64)?;
                        if counting.load(Ordering::Relaxed) {
                            done += 1;
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        std::thread::sleep(WARM_UP);
        counting.store(true, Ordering::Relaxed);
        let timing = Timing::start();
        std::thread::sleep(time);
        counting.store(false, Ordering::Relaxed);
        let measured = timing.stop(0);
        stop.store(true, Ordering::Relaxed);
        let mut ios = 0u64;
        for w in workers {
            ios += w.join().map_err(|_| anyhow!("reader thread panicked"))??;
        }
        Ok(Round {
            work: ios,
            ..measured
        })
    })
}

/// xorshift64*: offsets spread over the LUN, the same every run.
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

/// A measurement under way: wall time, and the CPU time every thread of the process used.
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

    /// The round so far, having done `work` (bytes or commands).
    fn stop(&self, work: u64) -> Round {
        let elapsed = self.start.elapsed();
        let cpu = cpu_time()
            .zip(self.cpu)
            .map(|(end, start)| end.saturating_sub(start));
        Round { work, elapsed, cpu }
    }
}

/// CPU time the process has used so far, user and system: what `getrusage(RUSAGE_SELF)`
/// reports, read from `/proc/self/stat` (fields 14 and 15, in clock ticks of 10 ms; over a
/// round of one second on two cores that is within about 1 %).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis, where
    // field 3 (the state) comes first.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// What one round of a figure did: bytes moved (MB/s figures) or commands completed (IOPS
/// figures), the wall time that took, and the CPU time of the process meanwhile, where
/// `/proc` tells it.
#[derive(Debug, Clone, Copy)]
struct Round {
    work: u64,
    elapsed: Duration,
    cpu: Option<Duration>,
}

impl Round {
    /// Work per second in `unit`.
    fn rate(&self, unit: Unit) -> f64 {
        let work = match unit {
            Unit::MBps => self.work as f64 / 1e6,
            Unit::Iops => self.work as f64,
        };
        work / self.elapsed.as_secs_f64()
    }

    /// CPU time per unit of work: nanoseconds per 1000 bytes, or microseconds per command.
    fn cpu_per(&self, unit: Unit) -> Option<f64> {
        let cpu = self.cpu?.as_secs_f64();
        let per = match unit {
            Unit::MBps => cpu * 1e9 / (self.work as f64 / 1e3),
            Unit::Iops => cpu * 1e6 / self.work as f64,
        };
        (self.work > 0).then_some(per)
    }

    /// CPU cores the process kept busy, on average.
    fn cores(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    /// This round and `other` as one.
    fn plus(self, other: Round) -> Round {
        Round {
            work: self.work + other.work,
            elapsed: self.elapsed + other.elapsed,
            cpu: self.cpu.zip(other.cpu).map(|(a, b)| a + b),
        }
    }
}

/// What a figure counts.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Bytes, reported in MB/s; CPU per 1000 bytes.
    MBps,
    /// Commands, reported per second; CPU per command.
    Iops,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::MBps => "MB/s",
            Unit::Iops => "IOPS",
        }
    }

    fn cpu_name(self) -> &'static str {
        match self {
            Unit::MBps => "ns/kB",
            Unit::Iops => "us/IO",
        }
    }
}

/// Median, smallest and largest of some values (NaN when there are none).
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
        // Both indices are below `n`, which is at least 1 in those arms.
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

/// One figure: what, of what, its rounds, and the reference measured beside it.
struct Row<'a> {
    name: &'static str,
    unit: Unit,
    rounds: &'a [Round],
    reference: Option<(&'static str, &'a [Round])>,
}

impl<'a> Row<'a> {
    fn new(
        name: &'static str,
        unit: Unit,
        rounds: &'a [Round],
        reference: Option<(&'static str, &'a [Round])>,
    ) -> Row<'a> {
        Row {
            name,
            unit,
            rounds,
            reference,
        }
    }

    fn rate(&self) -> Spread {
        Spread::of(self.rounds.iter().map(|r| r.rate(self.unit)))
    }

    fn cpu(&self) -> Spread {
        Spread::of(self.rounds.iter().filter_map(|r| r.cpu_per(self.unit)))
    }

    /// Against `reference`, round by round: this ÷ the reference's throughput, and the
    /// reference's CPU per unit ÷ this one's (where `/proc` tells it).
    fn round_ratios(&self, reference: &[Round]) -> Vec<(f64, Option<f64>)> {
        let u = self.unit;
        self.rounds
            .iter()
            .zip(reference)
            .map(|(f, r)| {
                let cpu = r.cpu_per(u).zip(f.cpu_per(u)).map(|(r, f)| r / f);
                (f.rate(u) / r.rate(u), cpu)
            })
            .collect()
    }

    /// [`Row::round_ratios`], each the median over the rounds.
    fn ratios_against(&self, reference: &[Round]) -> (f64, f64) {
        let ratios = self.round_ratios(reference);
        let rate = Spread::of(ratios.iter().map(|r| r.0));
        let cpu = Spread::of(ratios.iter().filter_map(|r| r.1));
        (rate.median, cpu.median)
    }

    /// Against the reference named in the table (1 for a reference itself).
    fn ratios(&self) -> (f64, f64) {
        self.reference
            .map_or((1.0, 1.0), |(_, r)| self.ratios_against(r))
    }
}

fn report(f: &Figures) {
    use Unit::{Iops, MBps};
    let row = Row::new;
    let tcp = Some(("raw_tcp_1m", f.raw_tcp.as_slice()));
    let read_qd1 = row("san_seq_read_1m_qd1", MBps, &f.read_qd1, tcp);
    let read_qd8 = row("san_seq_read_1m_qd8", MBps, &f.read_qd8, tcp);
    let write_qd1 = row("san_seq_write_1m_qd1", MBps, &f.write_qd1, tcp);
    let write_qd8 = row("san_seq_write_1m_qd8", MBps, &f.write_qd8, tcp);
    let rand_qd1 = row(
        "san_rand_read_4k_qd1",
        Iops,
        &f.rand_qd1,
        Some(("file_rand_read_4k_qd1", &f.file_rand_qd1)),
    );
    let rand_qd32 = row(
        "san_rand_read_4k_qd32",
        Iops,
        &f.rand_qd32,
        Some(("file_rand_read_4k_qd32", &f.file_rand_qd32)),
    );
    let rows = [
        &row("raw_tcp_1m", MBps, &f.raw_tcp, None),
        &row("file_seq_read_1m", MBps, &f.file_read, None),
        &row("file_seq_write_1m_fsync", MBps, &f.file_write, None),
        &row("file_rand_read_4k_qd1", Iops, &f.file_rand_qd1, None),
        &row("file_rand_read_4k_qd32", Iops, &f.file_rand_qd32, None),
        &read_qd1,
        &read_qd8,
        &write_qd1,
        &write_qd8,
        &rand_qd1,
        &rand_qd32,
    ];
    // Each SAN figure against the same I/O on the file.
    let against_file = [
        (&read_qd1, &f.file_read),
        (&read_qd8, &f.file_read),
        (&write_qd1, &f.file_write),
        (&write_qd8, &f.file_write),
        (&rand_qd1, &f.file_rand_qd1),
        (&rand_qd32, &f.file_rand_qd32),
    ]
    .map(|(r, file)| {
        let (rate, cpu) = r.ratios_against(file);
        (r.name, rate, cpu)
    });

    println!();
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:<5} {:>8} {:<6} {:>5}  {:<23} {:>6} {:>6}",
        "figure",
        "median",
        "min",
        "max",
        "unit",
        "cpu",
        "",
        "cores",
        "÷ reference",
        "ratio",
        "cpu r."
    );
    for r in &rows {
        let (rate, cpu) = (r.rate(), r.cpu());
        let (ratio, cpu_ratio) = r.ratios();
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>10.1} {:<5} {:>8.1} {:<6} {:>5.2}  {:<23} {:>6.3} {:>6.3}",
            r.name,
            rate.median,
            rate.min,
            rate.max,
            r.unit.name(),
            cpu.median,
            r.unit.cpu_name(),
            Spread::of(r.rounds.iter().filter_map(Round::cores)).median,
            r.reference.map_or("(reference)", |(n, _)| n),
            ratio,
            cpu_ratio,
        );
    }
    println!(
        "\nmedian, min, max: over {ROUNDS} rounds of {:.1} s (writes: one {} MiB pass each);\n\
         cpu: CPU time (user + system) of the whole process per 1000 bytes moved or per \
         command, median;\ncores: that CPU time ÷ wall time, median (the machine has {});\n\
         ratio: this ÷ the reference, round by round, median;\ncpu r.: the reference's CPU \
         per unit ÷ this one's, round by round, median (1 = as cheap as the reference)",
        ROUND_TIME.as_secs_f64(),
        LUN_BYTES >> 20,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    println!(
        "\nrounds, in the order measured (under a SAN figure: its ratio and cpu ratio to the \
         reference's round)"
    );
    for r in &rows {
        let values: Vec<String> = r
            .rounds
            .iter()
            .map(|x| format!("{:>7.0}", x.rate(r.unit)))
            .collect();
        println!("  {:<24} {}", r.name, values.join(" "));
        if let Some((_, reference)) = r.reference {
            let ratios = r.round_ratios(reference);
            let rates: Vec<String> = ratios.iter().map(|x| format!("{:>7.3}", x.0)).collect();
            let cpus: Vec<String> = ratios
                .iter()
                .map(|x| format!("{:>7.3}", x.1.unwrap_or(f64::NAN)))
                .collect();
            println!("  {:<24} {}", "  ratio", rates.join(" "));
            println!("  {:<24} {}", "  cpu r.", cpus.join(" "));
        }
    }

    println!("\nSAN ÷ the same I/O on the backing file (ratio, cpu ratio):");
    for (name, rate, cpu) in &against_file {
        println!("  {name:<24} {rate:>7.3} {cpu:>7.3}");
    }

    let (read_qd8, read_qd8_cpu) = read_qd8.ratios();
    let rand_qd32 = rand_qd32.rate().median;
    println!("\ntargets:");
    println!(
        "  {:<36} {:>10.3}  target ≥ {:<8} {}   (cpu ratio {:.3})",
        "san_seq_read_1m_qd8 ÷ raw_tcp_1m",
        read_qd8,
        TARGET_READ_QD8_VS_TCP,
        met(read_qd8 >= TARGET_READ_QD8_VS_TCP),
        read_qd8_cpu,
    );
    println!(
        "  {:<36} {:>10.1}  target ≥ {:<8} {}",
        "san_rand_read_4k_qd32 IOPS",
        rand_qd32,
        TARGET_RAND_QD32_IOPS,
        met(rand_qd32 >= TARGET_RAND_QD32_IOPS),
    );

    println!(
        "\n# name value unit ratio (value: median of {ROUNDS} rounds; ratio: ÷ the reference \
         named in the table; _cpu: CPU per unit, ratio the reference's ÷ this one's)"
    );
    for r in &rows {
        let (ratio, _) = r.ratios();
        println!(
            "{} {:.1} {} {:.3}",
            r.name,
            r.rate().median,
            r.unit.name(),
            ratio
        );
    }
    for r in &rows {
        let (_, cpu_ratio) = r.ratios();
        println!(
            "{}_cpu {:.1} {} {:.3}",
            r.name,
            r.cpu().median,
            r.unit.cpu_name(),
            cpu_ratio
        );
    }
    for (name, rate, cpu) in &against_file {
        println!("{name}_vs_file {rate:.3} ratio {rate:.3}");
        println!("{name}_vs_file_cpu {cpu:.3} ratio {cpu:.3}");
    }
}

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "NOT met"
    }
}
