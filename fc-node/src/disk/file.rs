//! [`FileLun`]: a logical unit stored in a file.
//!
//! The file is created sparse to the configured size (`set_len`). A read, and a write without
//! FUA, first try the page cache without waiting for the disk: `preadv2`/`pwritev2` with
//! `RWF_NOWAIT` (Linux 4.14; the kernel answers `EAGAIN` rather than wait), on the runtime
//! thread, with no hand-off. What that does not cover — blocks not in the page cache, a write
//! that would have to allocate or wait for writeback, a kernel or filesystem without `NOWAIT` —
//! runs on tokio's blocking pool: one `spawn_blocking` call doing positioned `pread`/`pwrite`
//! ([`FileExt`], which loops on short transfers and `EINTR`) on an `Arc<File>`, so no runtime
//! thread ever waits for the disk and any number of commands are in flight at once. A write
//! with FUA and SYNCHRONIZE CACHE call `fdatasync` on the pool before they return, so data they
//! acknowledge survives a crash of the process or the host.
//!
//! Deallocation (UNMAP, WRITE SAME with UNMAP) punches a hole in the file
//! (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`), so the blocks' storage is given
//! back to the filesystem and they read back as zeros: the thin provisioning that VPD page 0xB2
//! reports is real. Only when the filesystem says hole punching is not supported (`EOPNOTSUPP`)
//! are zeros written instead; each such fallback is counted ([`FileLun::zero_fills`]) and
//! logged.
//!
//! A blocking-pool call cannot be cancelled once it runs: a dropped write future leaves its
//! `pwrite` to finish. Every medium-changing call holds a ticket until it returns, and
//! [`BlockDevice::settle`] waits for the tickets taken before it, which is how an aborted
//! task is known to have stopped changing the medium.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::FallocateFlags;
use tokio::sync::Notify;

use crate::scsi::device::{check_blocks, check_range};
use crate::scsi::{BlockDevice, DeviceError, Tier};

/// Largest zero buffer written at once when hole punching is not supported.
const ZERO_CHUNK: u64 = 1 << 20;

/// A block device backed by a regular file.
#[derive(Debug)]
pub struct FileLun {
    file: Arc<File>,
    block_size: u32,
    blocks: AtomicU64,
    tier: Tier,
    in_flight: Arc<InFlight>,
    zero_fills: Arc<AtomicU64>,
}

impl FileLun {
    /// Creates the file at `path` (it must not exist), sparse, `blocks` x `block_size` bytes.
    pub fn create(path: &Path, blocks: u64, block_size: u32, tier: Tier) -> io::Result<FileLun> {
        let len = byte_len(blocks, block_size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len(len)?;
        file.sync_all()?;
        Ok(FileLun::from_file(file, blocks, block_size, tier))
    }

    /// Opens an existing file; its length must be a non-zero whole number of blocks.
    pub fn open(path: &Path, block_size: u32, tier: Tier) -> io::Result<FileLun> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if block_size == 0 || len == 0 || len % u64::from(block_size) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: length {len} is not a whole number of {block_size}-byte blocks",
                    path.display()
                ),
            ));
        }
        let blocks = len / u64::from(block_size);
        Ok(FileLun::from_file(file, blocks, block_size, tier))
    }

    /// Opens the file if it exists, growing it (sparse) to `blocks` blocks if it is shorter;
    /// creates it otherwise. A file longer than `blocks` blocks is an error (shrinking would
    /// lose data).
    pub fn open_or_create(
        path: &Path,
        blocks: u64,
        block_size: u32,
        tier: Tier,
    ) -> io::Result<FileLun> {
        let len = byte_len(blocks, block_size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let have = file.metadata()?.len();
        if have > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: {have} bytes is more than the configured {len}",
                    path.display()
                ),
            ));
        }
        if have < len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        Ok(FileLun::from_file(file, blocks, block_size, tier))
    }

    fn from_file(file: File, blocks: u64, block_size: u32, tier: Tier) -> FileLun {
        FileLun {
            file: Arc::new(file),
            block_size,
            blocks: AtomicU64::new(blocks),
            tier,
            in_flight: Arc::default(),
            zero_fills: Arc::default(),
        }
    }

    /// Grows the LUN (sparse) to `blocks` blocks. Shrinking is refused: it would lose data.
    /// The engine reports the change to initiators as CAPACITY DATA HAS CHANGED.
    pub fn grow(&self, blocks: u64) -> io::Result<()> {
        let len = byte_len(blocks, self.block_size)?;
        if blocks < self.block_count() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a file LUN only grows",
            ));
        }
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.blocks.store(blocks, Ordering::Release);
        Ok(())
    }

    /// Deallocations that wrote zeros because the filesystem cannot punch holes.
    pub fn zero_fills(&self) -> u64 {
        self.zero_fills.load(Ordering::Relaxed)
    }

    /// Runs `op` on the blocking pool; `changes_medium` makes [`BlockDevice::settle`] wait for
    /// it even when its future is dropped.
    async fn blocking<T: Send + 'static>(
        &self,
        changes_medium: bool,
        op: impl FnOnce(&File) -> Result<T, DeviceError> + Send + 'static,
    ) -> Result<T, DeviceError> {
        let file = self.file.clone();
        let ticket = changes_medium.then(|| self.in_flight.begin());
        let job = tokio::task::spawn_blocking(move || {
            let r = op(&file);
            drop(ticket);
            r
        });
        match job.await {
            Ok(r) => r,
            // The closure panicked (a bug) or the runtime is shutting down.
            Err(e) => Err(DeviceError::Blocking(io::Error::other(e))),
        }
    }
}

/// Reads as much of `buf` at `offset` as the page cache holds, without waiting for the disk
/// (`preadv2` with `RWF_NOWAIT`); how many bytes it read, from the start.
fn read_nowait(file: &File, buf: &mut [u8], offset: u64) -> usize {
    nowait(buf.len(), |at| {
        rustix::io::preadv2(
            file,
            &mut [std::io::IoSliceMut::new(&mut buf[at..])],
            offset + at as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
    })
}

/// Writes as much of `buf` at `offset` as the page cache takes without waiting (`pwritev2`
/// with `RWF_NOWAIT`); how many bytes it wrote, from the start.
fn write_nowait(file: &File, buf: &[u8], offset: u64) -> usize {
    nowait(buf.len(), |at| {
        rustix::io::pwritev2(
            file,
            &[std::io::IoSlice::new(&buf[at..])],
            offset + at as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
    })
}

/// Repeats `op(at)` from `at` = 0 until `len` bytes moved; stops at the first `EAGAIN` (not
/// cached, would block), at an error (the caller's blocking path meets and reports it), on a
/// kernel or filesystem without `RWF_NOWAIT` (`EOPNOTSUPP`), or when nothing moves. How many
/// bytes moved.
fn nowait(len: usize, mut op: impl FnMut(usize) -> rustix::io::Result<usize>) -> usize {
    let mut at = 0;
    while at < len {
        match op(at) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    at
}

/// `blocks * block_size`, both non-zero.
fn byte_len(blocks: u64, block_size: u32) -> io::Result<u64> {
    blocks
        .checked_mul(u64::from(block_size))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad LUN size: {blocks} blocks of {block_size} bytes"),
            )
        })
}

#[async_trait]
impl BlockDevice for FileLun {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.blocks.load(Ordering::Acquire)
    }

    fn tier(&self) -> Tier {
        self.tier
    }

    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        check_blocks(lba, blocks, self.block_count())?;
        let bs = u64::from(self.block_size);
        // In range, so the product fits the file length, a u64; a buffer that does not fit in
        // memory is refused by the engine's MAXIMUM TRANSFER LENGTH first.
        let len =
            usize::try_from(blocks * bs).map_err(|_| DeviceError::OutOfRange { lba, blocks })?;
        let offset = lba * bs;
        let mut buf = vec![0; len];
        let cached = read_nowait(&self.file, &mut buf, offset);
        if cached == len {
            return Ok(Bytes::from(buf));
        }
        self.blocking(false, move |file| {
            file.read_exact_at(&mut buf[cached..], offset + cached as u64)
                .map_err(|source| DeviceError::Read { lba, source })?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        check_range(lba, data.len(), self.block_size, self.block_count())?;
        let offset = lba * u64::from(self.block_size);
        // Into the page cache at once when the kernel can do it without waiting; a write that
        // must be durable goes to the pool anyway, for its fdatasync. A synchronous write that
        // returned has changed the medium: no ticket needed for it.
        let cached = if fua {
            0
        } else {
            write_nowait(&self.file, &data, offset)
        };
        if cached == data.len() {
            return Ok(());
        }
        self.blocking(true, move |file| {
            file.write_all_at(&data[cached..], offset + cached as u64)
                .map_err(|source| DeviceError::Write { lba, source })?;
            if fua {
                // SBC-3 (WRITE, FUA): the device server shall write the data to the medium
                // before returning GOOD status.
                file.sync_data()
                    .map_err(|source| DeviceError::Write { lba, source })?;
            }
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.blocking(false, |file| file.sync_data().map_err(DeviceError::Flush))
            .await
    }

    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        check_blocks(lba, blocks, self.block_count())?;
        if blocks == 0 {
            return Ok(());
        }
        let bs = u64::from(self.block_size);
        let zero_fills = self.zero_fills.clone();
        self.blocking(true, move |file| {
            let (offset, len) = (lba * bs, blocks * bs);
            match rustix::fs::fallocate(
                file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                offset,
                len,
            ) {
                Ok(()) => Ok(()),
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                    let n = zero_fills.fetch_add(1, Ordering::Relaxed);
                    if n == 0 {
                        tracing::warn!(error = %e, "hole punching not supported here: unmapped blocks are written with zeros and keep their storage");
                    } else {
                        tracing::debug!(error = %e, lba, blocks, "unmap writes zeros");
                    }
                    write_zeros(file, lba, blocks, bs)
                }
                Err(e) => Err(DeviceError::Write {
                    lba,
                    source: e.into(),
                }),
            }
        })
        .await
    }

    async fn settle(&self) {
        self.in_flight.settle().await;
    }
}

/// Writes zeros over `blocks` blocks from `lba`, a chunk at a time.
fn write_zeros(file: &File, lba: u64, blocks: u64, bs: u64) -> Result<(), DeviceError> {
    let per_chunk = (ZERO_CHUNK / bs).max(1);
    let zeros = vec![0u8; (per_chunk.min(blocks) * bs) as usize];
    let mut at = lba;
    let end = lba + blocks;
    while at < end {
        let n = per_chunk.min(end - at);
        file.write_all_at(&zeros[..(n * bs) as usize], at * bs)
            .map_err(|source| DeviceError::Write { lba: at, source })?;
        at += n;
    }
    Ok(())
}

/// The medium-changing blocking calls in progress, by ticket number.
#[derive(Debug, Default)]
struct InFlight {
    ops: Mutex<Tickets>,
    done: Notify,
}

#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    live: BTreeSet<u64>,
}

/// Held by a blocking call until it returns.
struct Ticket {
    in_flight: Arc<InFlight>,
    id: u64,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tickets> {
        // The set stays a valid set across a panic.
        self.ops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Ticket {
        let mut ops = self.lock();
        let id = ops.next;
        ops.next += 1;
        ops.live.insert(id);
        Ticket {
            in_flight: self.clone(),
            id,
        }
    }

    /// Waits until every ticket taken before the call is returned.
    async fn settle(&self) {
        let upto = self.lock().next;
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.lock().live.range(..upto).next().is_none() {
                return;
            }
            done.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_flight.lock().live.remove(&self.id);
        self.in_flight.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn test_create_is_sparse_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun0");
        let lun = FileLun::create(&p, 1 << 20, 512, Tier::FastHdd).unwrap();
        assert_eq!(lun.block_count(), 1 << 20);
        assert_eq!(lun.block_size(), 512);
        assert_eq!(lun.tier(), Tier::FastHdd);
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(md.len(), 512 << 20);
        // 512 MiB apparent size, next to nothing allocated.
        assert!(md.blocks() * 512 < 1 << 20, "allocated {}", md.blocks());
        // create refuses to clobber.
        assert!(FileLun::create(&p, 8, 512, Tier::Ssd).is_err());
    }

    #[test]
    fn test_data_survives_reopen() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("lun");
            let data: Bytes = (0..4096u32)
                .map(|i| (i * 7) as u8)
                .collect::<Vec<u8>>()
                .into();
            {
                let lun = FileLun::create(&p, 64, 512, Tier::Ssd).unwrap();
                lun.write(10, data.clone(), true).await.unwrap();
                lun.write(63, Bytes::from_static(&[0x5A; 512]), false)
                    .await
                    .unwrap();
                lun.flush().await.unwrap();
            }
            let lun = FileLun::open(&p, 512, Tier::Ssd).unwrap();
            assert_eq!(lun.block_count(), 64);
            assert_eq!(lun.read(10, 8).await.unwrap(), data);
            assert_eq!(
                lun.read(63, 1).await.unwrap(),
                Bytes::from_static(&[0x5A; 512])
            );
            lun.unmap(10, 4).await.unwrap();
            let back = lun.read(10, 8).await.unwrap();
            assert!(back[..2048].iter().all(|&b| b == 0));
            assert_eq!(back[2048..], data[2048..]);
        });
    }

    /// UNMAP punches a hole: a LUN written full gives its storage back, reads zeros where it
    /// was unmapped, keeps its length, and keeps the data around the hole.
    #[test]
    fn test_unmap_punches_holes() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("thin");
            let lun = FileLun::create(&p, 2048, 4096, Tier::Ssd).unwrap();
            let chunk = Bytes::from(vec![0xC3; 1 << 20]);
            for lba in (0..2048).step_by(256) {
                lun.write(lba, chunk.clone(), false).await.unwrap();
            }
            lun.flush().await.unwrap();
            let full = std::fs::metadata(&p).unwrap().blocks() * 512;
            assert!(full >= 8 << 20, "written full: {full} bytes allocated");
            lun.unmap(1, 2046).await.unwrap();
            lun.flush().await.unwrap();
            let md = std::fs::metadata(&p).unwrap();
            assert_eq!(md.len(), 8 << 20, "KEEP_SIZE");
            if lun.zero_fills() == 0 {
                assert!(
                    md.blocks() * 512 <= 1 << 20,
                    "after UNMAP {} bytes still allocated",
                    md.blocks() * 512
                );
            }
            assert!(lun.read(1, 2046).await.unwrap().iter().all(|&b| b == 0));
            assert!(lun.read(0, 1).await.unwrap().iter().all(|&b| b == 0xC3));
            assert!(lun.read(2047, 1).await.unwrap().iter().all(|&b| b == 0xC3));
        });
    }

    /// A write whose future is dropped while its `pwrite` runs still lands, and `settle`
    /// returns only after it has.
    #[test]
    fn test_settle_waits_for_dropped_writes() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let lun = FileLun::create(&dir.path().join("s"), 4096, 4096, Tier::Ssd).unwrap();
            let big = Bytes::from(vec![0x77; 16 << 20]);
            let write = lun.write(0, big, true);
            // Poll it once so the blocking call starts, then drop it.
            let _ = tokio::time::timeout(std::time::Duration::from_micros(1), write).await;
            lun.settle().await;
            assert!(lun.in_flight.lock().live.is_empty());
            // Nothing started before settle is still running: the data is all there.
            let back = lun.read(4095, 1).await.unwrap();
            assert!(back.iter().all(|&b| b == 0x77));
        });
    }

    /// Through the SCSI engine: a FUA WRITE(16) and a SYNCHRONIZE CACHE acknowledged with GOOD
    /// are readable from the file after it is closed and reopened.
    #[test]
    fn test_engine_on_file_lun_survives_reopen() {
        use fc_frames::scsi::{Lun, ScsiStatus};
        use fc_frames::Wwn;

        use crate::scsi::{DiskConfig, Nexus, ScsiCommand, ScsiEngine, TargetPort};

        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("lun");
            let data: Bytes = (0..8192u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into();
            let mut write16 = vec![0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 16, 0, 0];
            let host = Nexus::new(Wwn::from_u64(1));
            let cmd = |cdb: Vec<u8>, dl: u32, out: Bytes| {
                ScsiCommand::new(host, Lun::ZERO, cdb, dl).with_data_out(out)
            };
            {
                let lun = FileLun::create(&p, 1024, 512, Tier::SlowHdd).unwrap();
                let e = ScsiEngine::new(TargetPort::default());
                e.add_disk(Lun::ZERO, Arc::new(lun), DiskConfig::new("F", Wwn::ZERO))
                    .unwrap();
                let r = e.execute(cmd(write16.clone(), 8192, data.clone())).await;
                assert_eq!(r.response().unwrap().status, ScsiStatus::GOOD);
                write16[1] = 0;
                write16[9] = 200;
                let r = e.execute(cmd(write16.clone(), 8192, data.clone())).await;
                assert_eq!(r.response().unwrap().status, ScsiStatus::GOOD);
                let sync = vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                let r = e.execute(cmd(sync, 0, Bytes::new())).await;
                assert_eq!(r.response().unwrap().status, ScsiStatus::GOOD);
            }
            let lun = FileLun::open(&p, 512, Tier::SlowHdd).unwrap();
            assert_eq!(lun.read(100, 16).await.unwrap(), data);
            assert_eq!(lun.read(200, 16).await.unwrap(), data);
        });
    }

    #[test]
    fn test_bounds_checked() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let lun = FileLun::create(&dir.path().join("l"), 16, 4096, Tier::Ssd).unwrap();
            let b = Bytes::from(vec![0; 4096]);
            assert!(matches!(
                lun.read(16, 1).await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(matches!(
                lun.write(u64::MAX, b, true).await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(matches!(
                lun.unmap(15, 2).await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(matches!(
                lun.write(0, Bytes::from_static(&[0; 10]), false).await,
                Err(DeviceError::BadBufferLength { .. })
            ));
            // The file never grew past its size.
            assert_eq!(
                std::fs::metadata(dir.path().join("l")).unwrap().len(),
                16 * 4096
            );
        });
    }

    #[test]
    fn test_open_rejects_bad_sizes_open_or_create_and_grow() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("odd");
            std::fs::write(&p, [0u8; 700]).unwrap();
            assert!(FileLun::open(&p, 512, Tier::Ssd).is_err());
            let e = dir.path().join("empty");
            std::fs::write(&e, []).unwrap();
            assert!(FileLun::open(&e, 512, Tier::Ssd).is_err());
            assert!(FileLun::open(&dir.path().join("missing"), 512, Tier::Ssd).is_err());

            let g = dir.path().join("grow");
            {
                let l = FileLun::open_or_create(&g, 4, 512, Tier::Ssd).unwrap();
                l.write(3, Bytes::from_static(&[1; 512]), true)
                    .await
                    .unwrap();
            }
            let l = FileLun::open_or_create(&g, 8, 512, Tier::Ssd).unwrap();
            assert_eq!(l.block_count(), 8);
            assert_eq!(l.read(3, 1).await.unwrap(), Bytes::from_static(&[1; 512]));
            assert!(FileLun::open_or_create(&g, 2, 512, Tier::Ssd).is_err());
            assert!(FileLun::create(&dir.path().join("z"), 0, 512, Tier::Ssd).is_err());
            // Growing at run time; shrinking is refused.
            l.grow(16).unwrap();
            assert_eq!(l.block_count(), 16);
            assert_eq!(std::fs::metadata(&g).unwrap().len(), 16 * 512);
            assert!(l.read(15, 1).await.unwrap().iter().all(|&b| b == 0));
            assert!(l.grow(4).is_err());
        });
    }
}
