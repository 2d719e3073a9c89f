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
//! - sequential 1 MiB READ and WRITE at queue depth 1 and 8, MB/s (a write pass ends with one
//!   SYNCHRONIZE CACHE, inside the time);
//! - 4 KiB random READ at queue depth 1 and 32 (tasks sharing one `Initiator`), IOPS, for a
//!   fixed time after a warm-up;
//! - references: raw loopback TCP moving 1 MiB buffers (one `TcpStream` pair, sockets sized
//!   as the links size theirs), and the same I/O straight on the backing file (`pread`,
//!   `pwrite` + `fsync`, 4 KiB random `pread` from 1 and 32 threads).
//!
//! The LUN file is filled before the array opens it and stays in the page cache, as does the
//! direct-file reference: both measure the software path, not a disk.
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
use tokio::task::JoinSet;
use topology::{write_random, ArraySpec, Running, Topology};

const LUN_BYTES: u64 = 256 << 20;
const BLOCK: u32 = 512;
const BIG: usize = 1 << 20;
const SMALL: usize = 4 << 10;
/// How long each sequential read and raw TCP figure runs.
const SEQ_TIME: Duration = Duration::from_secs(2);
/// How long each random-read figure runs, after [`WARM_UP`].
const RAND_TIME: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_millis(500);
/// How long a figure run alone runs.
const PROFILE_TIME: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(10);

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
    let san = rt.block_on(san_figures(&path))?;
    let raw_tcp = rt.block_on(raw_tcp())?;
    let file = file_figures(&path)?;

    report(&san, raw_tcp, &file);
    println!("\n(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// What the SAN did.
struct SanFigures {
    read_qd1: f64,
    read_qd8: f64,
    write_qd1: f64,
    write_qd8: f64,
    rand_qd1: f64,
    rand_qd32: f64,
}

/// What the backing file did without the SAN.
struct FileFigures {
    read: f64,
    write: f64,
    rand_qd1: f64,
    rand_qd32: f64,
}

/// One host and one disk array behind a switch, all on loopback TCP.
struct San {
    running: Running,
    host: Initiator,
    target: FcId,
}

async fn san_figures(path: &Path) -> Result<SanFigures> {
    let san = start_san(path).await?;
    let lun = Lun::ZERO;
    let h = &san.host;
    let t = san.target;
    // Every 1 MiB chunk once before timing anything: the first pass pays for warm-up.
    seq_read(h, t, lun, 8, Duration::ZERO).await?;
    let read_qd1 = seq_read(h, t, lun, 1, SEQ_TIME).await?;
    let read_qd8 = seq_read(h, t, lun, 8, SEQ_TIME).await?;
    let rand_qd1 = rand_read(h, t, lun, 1, RAND_TIME).await?;
    let rand_qd32 = rand_read(h, t, lun, 32, RAND_TIME).await?;
    let write_qd1 = seq_write(h, t, lun, 1).await?;
    let write_qd8 = seq_write(h, t, lun, 8).await?;
    san.running.shutdown().await;
    Ok(SanFigures {
        read_qd1,
        read_qd8,
        write_qd1,
        write_qd8,
        rand_qd1,
        rand_qd32,
    })
}

/// One SAN figure alone, for [`PROFILE_TIME`] (writes: as many passes as fit).
async fn profile(path: &Path, figure: &str) -> Result<()> {
    let san = start_san(path).await?;
    let (h, t, lun) = (&san.host, san.target, Lun::ZERO);
    let (value, unit) = match figure {
        "san_seq_read_1m_qd1" => (seq_read(h, t, lun, 1, PROFILE_TIME).await?, "MB/s"),
        "san_seq_read_1m_qd8" => (seq_read(h, t, lun, 8, PROFILE_TIME).await?, "MB/s"),
        "san_seq_write_1m_qd1" | "san_seq_write_1m_qd8" => {
            let qd = if figure.ends_with("qd1") { 1 } else { 8 };
            let start = Instant::now();
            let mut sum = 0.0;
            let mut passes = 0.0;
            while start.elapsed() < PROFILE_TIME {
                sum += seq_write(h, t, lun, qd).await?;
                passes += 1.0;
            }
            (sum / passes, "MB/s")
        }
        "san_rand_read_4k_qd1" => (rand_read(h, t, lun, 1, PROFILE_TIME).await?, "IOPS"),
        "san_rand_read_4k_qd32" => (rand_read(h, t, lun, 32, PROFILE_TIME).await?, "IOPS"),
        other => return Err(anyhow!("no SAN figure named {other}")),
    };
    println!("{figure} {value:.1} {unit}");
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

/// Sequential 1 MiB READs from `qd` tasks for `time` but at least one pass over the LUN;
/// MB/s.
async fn seq_read(h: &Initiator, t: FcId, lun: Lun, qd: usize, time: Duration) -> Result<f64> {
    let chunks = Chunks::new(BIG);
    let blocks = (BIG / BLOCK as usize) as u32;
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..qd {
        let (h, chunks) = (h.clone(), chunks.clone());
        set.spawn(async move {
            let mut bytes = 0u64;
            loop {
                let i = chunks.next.fetch_add(1, Ordering::Relaxed);
                if i >= chunks.count && start.elapsed() >= time {
                    return Ok::<_, anyhow::Error>(bytes);
                }
                let lba = (i % chunks.count) * u64::from(blocks);
                let data = h.read(t, lun, lba, blocks, BLOCK).await?;
                bytes += data.len() as u64;
            }
        });
    }
    let bytes = join_sum(set).await?;
    Ok(mb_per_s(bytes, start.elapsed()))
}

/// One pass of sequential 1 MiB WRITEs (no FUA) from `qd` tasks, then SYNCHRONIZE CACHE;
/// MB/s including the flush.
async fn seq_write(h: &Initiator, t: FcId, lun: Lun, qd: usize) -> Result<f64> {
    let chunks = Chunks::new(BIG);
    let data = Bytes::from(
        (0..BIG)
            .map(|i| (i as u8).wrapping_mul(31) ^ qd as u8)
            .collect::<Vec<u8>>(),
    );
    let blocks = (BIG / BLOCK as usize) as u64;
    let start = Instant::now();
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
    Ok(mb_per_s(bytes, start.elapsed()))
}

/// 4 KiB READs at random 4 KiB-aligned offsets from `qd` tasks sharing one initiator, for
/// `time` after [`WARM_UP`]; IOPS.
async fn rand_read(h: &Initiator, t: FcId, lun: Lun, qd: usize, time: Duration) -> Result<f64> {
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
    let start = Instant::now();
    tokio::time::sleep(time).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let ios = join_sum(set).await?;
    Ok(ios as f64 / elapsed.as_secs_f64())
}

async fn join_sum(mut set: JoinSet<Result<u64>>) -> Result<u64> {
    let mut sum = 0;
    while let Some(r) = set.join_next().await {
        sum += r.context("bench task panicked")??;
    }
    Ok(sum)
}

/// One loopback TCP connection, sockets sized as the TCP links size theirs (and
/// TCP_NODELAY), one task writing 1 MiB buffers and one reading them; MB/s received.
async fn raw_tcp() -> Result<f64> {
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
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < SEQ_TIME {
        bytes += rx.read(&mut buf).await? as u64;
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    while rx.read(&mut buf).await? > 0 {}
    writer.await??;
    Ok(mb_per_s(bytes, elapsed))
}

fn file_figures(path: &Path) -> Result<FileFigures> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let read = file_seq_read(&file)?;
    let rand_qd1 = file_rand_read(&file, 1)?;
    let rand_qd32 = file_rand_read(&file, 32)?;
    let write = file_seq_write(&file)?;
    Ok(FileFigures {
        read,
        write,
        rand_qd1,
        rand_qd32,
    })
}

/// 1 MiB `pread`s in order, wrapping around, for [`SEQ_TIME`]; MB/s.
fn file_seq_read(file: &File) -> Result<f64> {
    let mut buf = vec![0u8; BIG];
    let chunks = LUN_BYTES / BIG as u64;
    let start = Instant::now();
    let mut i = 0u64;
    while i < chunks || start.elapsed() < SEQ_TIME {
        file.read_exact_at(&mut buf, (i % chunks) * BIG as u64)?;
        i += 1;
    }
    Ok(mb_per_s(i * BIG as u64, start.elapsed()))
}

/// One pass of 1 MiB `pwrite`s in order, then `fsync`; MB/s.
fn file_seq_write(file: &File) -> Result<f64> {
    let buf: Vec<u8> = (0..BIG).map(|i| (i as u8).wrapping_mul(17)).collect();
    let start = Instant::now();
    for i in 0..LUN_BYTES / BIG as u64 {
        file.write_all_at(&buf, i * BIG as u64)?;
    }
    file.sync_all()?;
    Ok(mb_per_s(LUN_BYTES, start.elapsed()))
}

/// 4 KiB `pread`s at random aligned offsets from `threads` threads for [`RAND_TIME`] after
/// [`WARM_UP`]; IOPS.
fn file_rand_read(file: &File, threads: usize) -> Result<f64> {
    let slots = LUN_BYTES / SMALL as u64;
    let counting = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (ios, elapsed) = std::thread::scope(|s| {
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
        let start = Instant::now();
        std::thread::sleep(RAND_TIME);
        counting.store(false, Ordering::Relaxed);
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut ios = 0u64;
        for w in workers {
            ios += w.join().map_err(|_| anyhow!("reader thread panicked"))??;
        }
        Ok::<_, anyhow::Error>((ios, elapsed))
    })?;
    Ok(ios as f64 / elapsed.as_secs_f64())
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

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// One figure: what, how much, of what, and against which reference.
struct Row {
    name: &'static str,
    value: f64,
    unit: &'static str,
    reference: Option<(&'static str, f64)>,
}

fn report(san: &SanFigures, raw_tcp: f64, file: &FileFigures) {
    let mbs = "MB/s";
    let iops = "IOPS";
    let row = |name, value, unit, reference| Row {
        name,
        value,
        unit,
        reference,
    };
    let tcp = Some(("raw_tcp_1m", raw_tcp));
    let rows = [
        row("raw_tcp_1m", raw_tcp, mbs, None),
        row("file_seq_read_1m", file.read, mbs, None),
        row("file_seq_write_1m_fsync", file.write, mbs, None),
        row("file_rand_read_4k_qd1", file.rand_qd1, iops, None),
        row("file_rand_read_4k_qd32", file.rand_qd32, iops, None),
        row("san_seq_read_1m_qd1", san.read_qd1, mbs, tcp),
        row("san_seq_read_1m_qd8", san.read_qd8, mbs, tcp),
        row("san_seq_write_1m_qd1", san.write_qd1, mbs, tcp),
        row("san_seq_write_1m_qd8", san.write_qd8, mbs, tcp),
        row(
            "san_rand_read_4k_qd1",
            san.rand_qd1,
            iops,
            Some(("file_rand_read_4k_qd1", file.rand_qd1)),
        ),
        row(
            "san_rand_read_4k_qd32",
            san.rand_qd32,
            iops,
            Some(("file_rand_read_4k_qd32", file.rand_qd32)),
        ),
    ];
    // Each SAN figure against the same I/O on the file, and the two targets.
    let against_file = [
        ("san_seq_read_1m_qd1", san.read_qd1, file.read),
        ("san_seq_read_1m_qd8", san.read_qd8, file.read),
        ("san_seq_write_1m_qd1", san.write_qd1, file.write),
        ("san_seq_write_1m_qd8", san.write_qd8, file.write),
        ("san_rand_read_4k_qd1", san.rand_qd1, file.rand_qd1),
        ("san_rand_read_4k_qd32", san.rand_qd32, file.rand_qd32),
    ];
    let read_best = san.read_qd1.max(san.read_qd8);
    let targets = [
        (
            "san_seq_read_1m (best QD) ÷ raw_tcp_1m",
            read_best / raw_tcp,
            "≥ 0.5",
            read_best / raw_tcp >= 0.5,
        ),
        (
            "san_rand_read_4k_qd32 IOPS",
            san.rand_qd32,
            "≥ 50000",
            san.rand_qd32 >= 50_000.0,
        ),
    ];

    println!();
    println!(
        "{:<26} {:>12} {:<5}  {:<24} {:>7}",
        "figure", "value", "unit", "÷ reference", "ratio"
    );
    for r in &rows {
        let (name, ratio) = r
            .reference
            .map_or(("(reference)", 1.0), |(n, v)| (n, r.value / v));
        println!(
            "{:<26} {:>12.1} {:<5}  {:<24} {:>7.3}",
            r.name, r.value, r.unit, name, ratio
        );
    }
    println!("\nSAN ÷ the same I/O on the backing file:");
    for (name, san, file) in &against_file {
        println!("  {:<26} {:>7.3}", name, san / file);
    }
    println!("\ntargets:");
    for (name, value, target, met) in &targets {
        println!(
            "  {:<40} {:>10.3}  target {:<8} {}",
            name,
            value,
            target,
            if *met { "met" } else { "NOT met" }
        );
    }

    println!("\n# name value unit ratio (ratio: ÷ the reference named in the table)");
    for r in &rows {
        let ratio = r.reference.map_or(1.0, |(_, v)| r.value / v);
        println!("{} {:.1} {} {:.3}", r.name, r.value, r.unit, ratio);
    }
    for (name, san, file) in &against_file {
        println!("{name}_vs_file {:.3} ratio {:.3}", san / file, san / file);
    }
}
