//! What the host role does for its user: list the targets and LUNs it can see, and copy a
//! local file to a LUN, back from it, or compare the two, with a progress bar on long
//! transfers.
//!
//! Transfers go in chunks of [`CHUNK`] bytes with [`QUEUE_DEPTH`] commands in flight; a
//! write ends with SYNCHRONIZE CACHE, so when `write_file` returns every byte is durable on
//! the array. A file that is not a whole number of blocks is padded with zeros on the LUN.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use fc_frames::scsi::data::{Capacity, DeviceType};
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::Initiator;
use fc_node::node::RemotePort;
use fc_node::scsi::Tier;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

/// Bytes per command.
pub const CHUNK: usize = 1 << 20;
/// Commands in flight.
pub const QUEUE_DEPTH: usize = 8;

/// One logical unit a host sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInfo {
    /// The target port.
    pub target: RemotePort,
    /// The LUN.
    pub lun: Lun,
    /// Peripheral device type (disk, tape).
    pub device_type: DeviceType,
    /// Vendor and product from INQUIRY.
    pub product: String,
    /// Capacity, for disks.
    pub capacity: Option<Capacity>,
    /// Tier from VPD page 0xB1, for disks.
    pub tier: Option<Tier>,
}

impl LunInfo {
    /// One line: `22:00:..:01 (010200) LUN 0  disk  ssd  8388608 x 512 B (4.0 GiB)  FCSAN FILE DISK`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} ({}) LUN {:<3} {:<5}",
            self.target.port_name,
            self.target.port_id,
            self.lun
                .index()
                .map_or_else(|| "?".to_string(), |i| i.to_string()),
            match self.device_type {
                DeviceType::DIRECT_ACCESS => "disk",
                DeviceType::SEQUENTIAL_ACCESS => "tape",
                _ => "other",
            }
        );
        let _ = write!(s, " {:<9}", self.tier.map_or("-", Tier::name));
        match self.capacity {
            Some(c) => {
                let _ = write!(
                    s,
                    " {} x {} B ({})",
                    c.blocks(),
                    c.block_size(),
                    human(c.bytes().unwrap_or(u64::MAX))
                );
            }
            None => s.push_str(" no capacity"),
        }
        let _ = write!(s, "  {}", self.product);
        s
    }
}

/// `64.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Every LUN of every target the host is logged in with.
pub async fn list(init: &Initiator) -> Result<Vec<LunInfo>> {
    let mut out = Vec::new();
    for target in init.node().targets() {
        let luns = init
            .report_luns(target.port_id)
            .await
            .with_context(|| format!("REPORT LUNS to {}", target.port_name))?;
        for lun in luns {
            let inq = init
                .inquiry(target.port_id, lun)
                .await
                .with_context(|| format!("INQUIRY to {} LUN {lun:?}", target.port_name))?;
            let device_type = inq.peripheral.device_type();
            let product = format!(
                "{} {}",
                String::from_utf8_lossy(&inq.vendor).trim(),
                String::from_utf8_lossy(&inq.product).trim()
            );
            let (capacity, tier) = if device_type == DeviceType::DIRECT_ACCESS {
                (
                    Some(init.read_capacity(target.port_id, lun).await?),
                    init.tier(target.port_id, lun).await?,
                )
            } else {
                (None, None)
            };
            out.push(LunInfo {
                target,
                lun,
                device_type,
                product,
                capacity,
                tier,
            });
        }
    }
    Ok(out)
}

/// Picks the target named `wwpn` (or the only one, when `None`).
pub fn find_target(init: &Initiator, wwpn: Option<Wwn>) -> Result<RemotePort> {
    let targets = init.node().targets();
    match wwpn {
        Some(w) => targets
            .into_iter()
            .find(|t| t.port_name == w)
            .ok_or_else(|| anyhow!("no target {w} is logged in (see `fcsan host list`)")),
        None => match targets.as_slice() {
            [one] => Ok(*one),
            [] => bail!("no target is logged in"),
            _ => bail!(
                "{} targets are logged in: name one with --target",
                targets.len()
            ),
        },
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes of the file.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Transfer {
    /// MiB/s.
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn bar(len: u64, show: bool, verb: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(verb.to_string());
    bar
}

async fn capacity(init: &Initiator, target: FcId, lun: Lun, len: u64) -> Result<Capacity> {
    let cap = init.read_capacity(target, lun).await?;
    let bytes = cap.bytes().unwrap_or(u64::MAX);
    if len > bytes {
        bail!(
            "{} does not fit: the LUN holds {}",
            human(len),
            human(bytes)
        );
    }
    Ok(cap)
}

/// Writes the file at `path` to the LUN from LBA 0, then SYNCHRONIZE CACHE; with `fua`
/// every write is durable before it is acknowledged. On failure the error says how many
/// bytes from the start of the file had been acknowledged.
pub async fn write_file(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    path: &Path,
    fua: bool,
    progress: bool,
) -> Result<Transfer> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let cap = capacity(init, target, lun, len).await?;
    let bs = cap.block_size() as usize;
    let bar = bar(len, progress, "write");
    let start = Instant::now();
    let mut acked = Acked::default();
    let mut set = JoinSet::new();
    let mut offset = 0u64;
    let result: Result<()> = async {
        loop {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n.div_ceil(bs) * bs);
            let data = buf.freeze();
            let lba = offset / bs as u64;
            let at = offset;
            offset += n as u64;
            if set.len() >= QUEUE_DEPTH {
                join_one(&mut set, &bar, &mut acked).await?;
            }
            let init = init.clone();
            set.spawn(async move {
                init.write(target, lun, lba, data, bs as u32, fua)
                    .await
                    .with_context(|| format!("WRITE at LBA {lba}"))
                    .map(|()| (at, n as u64))
            });
        }
        while !set.is_empty() {
            join_one(&mut set, &bar, &mut acked).await?;
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = result {
        // Let the commands still in flight end (each one ends: done, failed or timed out).
        while let Some(r) = set.join_next().await {
            if let Ok(Ok((at, n))) = r {
                acked.add(at, n);
            }
        }
        return Err(e.context(format!(
            "the first {} bytes of {} had been acknowledged",
            acked.prefix,
            path.display()
        )));
    }
    init.synchronize_cache(target, lun)
        .await
        .context("SYNCHRONIZE CACHE")?;
    Ok(Transfer {
        bytes: len,
        elapsed: start.elapsed(),
    })
}

/// Acknowledged chunks, and how far from the start they are contiguous.
#[derive(Default)]
struct Acked {
    prefix: u64,
    beyond: std::collections::BTreeMap<u64, u64>,
}

impl Acked {
    fn add(&mut self, at: u64, n: u64) {
        self.beyond.insert(at, n);
        while let Some(n) = self.beyond.remove(&self.prefix) {
            self.prefix += n;
        }
    }
}

/// Reads `len` bytes from LBA 0 of the LUN into a new file at `path`.
pub async fn read_file(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    path: &Path,
    len: u64,
    progress: bool,
) -> Result<Transfer> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let start = Instant::now();
    let bar = bar(len, progress, "read");
    let mut sink = |_: u64, data: Bytes| file.write_all(&data).map_err(anyhow::Error::from);
    stream(init, target, lun, len, &bar, &mut sink).await?;
    file.sync_all()?;
    bar.finish_and_clear();
    Ok(Transfer {
        bytes: len,
        elapsed: start.elapsed(),
    })
}

/// Compares the LUN from LBA 0 with the file at `path`; the first differing byte is an error.
pub async fn verify_file(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    path: &Path,
    progress: bool,
) -> Result<Transfer> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let start = Instant::now();
    let bar = bar(len, progress, "verify");
    let mut expected = vec![0u8; CHUNK];
    let mut sink = |offset: u64, data: Bytes| -> Result<()> {
        let want = &mut expected[..data.len()];
        file.read_exact(want)?;
        if let Some(i) = want.iter().zip(data.iter()).position(|(a, b)| a != b) {
            bail!(
                "the LUN differs from {} at byte {}",
                path.display(),
                offset + i as u64
            );
        }
        Ok(())
    };
    stream(init, target, lun, len, &bar, &mut sink).await?;
    bar.finish_and_clear();
    Ok(Transfer {
        bytes: len,
        elapsed: start.elapsed(),
    })
}

/// Reads `len` bytes from LBA 0 in order, `QUEUE_DEPTH` chunks ahead, handing each chunk
/// (cut to `len`) to `sink` with its offset.
async fn stream(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    len: u64,
    bar: &ProgressBar,
    sink: &mut dyn FnMut(u64, Bytes) -> Result<()>,
) -> Result<()> {
    let cap = capacity(init, target, lun, len).await?;
    let bs = u64::from(cap.block_size());
    let mut queue = std::collections::VecDeque::new();
    let mut next = 0u64;
    let mut done = 0u64;
    while done < len {
        while next < len && queue.len() < QUEUE_DEPTH {
            let n = (len - next).min(CHUNK as u64);
            let blocks = n.div_ceil(bs) as u32;
            let lba = next / bs;
            let init = init.clone();
            let offset = next;
            queue.push_back(tokio::spawn(async move {
                let r = init.read(target, lun, lba, blocks, bs as u32).await;
                r.map(|mut d| {
                    d.truncate(n as usize);
                    (offset, d)
                })
                .with_context(|| format!("READ at LBA {lba}"))
            }));
            next += n;
        }
        let Some(h) = queue.pop_front() else {
            break;
        };
        let (offset, data) = h.await.context("read task")??;
        let n = data.len() as u64;
        sink(offset, data)?;
        done += n;
        bar.inc(n);
    }
    Ok(())
}

async fn join_one(
    set: &mut JoinSet<Result<(u64, u64)>>,
    bar: &ProgressBar,
    acked: &mut Acked,
) -> Result<()> {
    if let Some(r) = set.join_next().await {
        let (at, n) = r.context("write task")??;
        acked.add(at, n);
        bar.inc(n);
    }
    Ok(())
}

/// Fills `buf` from `r` as far as the file goes; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_acked_prefix_is_contiguous() {
        let mut a = Acked::default();
        a.add(100, 100);
        assert_eq!(a.prefix, 0);
        a.add(0, 100);
        assert_eq!(a.prefix, 200);
        a.add(300, 50);
        assert_eq!(a.prefix, 200);
        a.add(200, 100);
        assert_eq!(a.prefix, 350);
    }

    #[test]
    fn test_human() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
