//! [`FileLun`]: a logical unit stored in a file.
//!
//! The file is created sparse to the configured size (`set_len`). A read, and a write without
//! FUA, first try the page cache without waiting for the disk: `preadv2`/`pwritev2` with
//! `RWF_NOWAIT` (Linux 4.14; the kernel answers `EAGAIN` rather than wait), on the runtime
//! thread, with no hand-off. What that does not cover — blocks not in the page cache, a write
//! that would have to allocate or wait for writeback, a kernel or filesystem without `NOWAIT` —
//! runs on tokio's blocking pool: one `spawn_blocking` call doing positioned `pread`/`pwrite`
//! ([`FileExt`], which loops on short transfers and `EINTR`) on an `Arc<File>`, so no runtime
//! thread ever waits for the disk and any number of commands are in flight at once.
//!
//! A write with FUA and SYNCHRONIZE CACHE return only after an `fdatasync` that started after
//! their data was written, so data they acknowledge survives a crash of the process or the
//! host. The `fdatasync` calls are shared (group commit, [`GroupSync`]): a caller joins the
//! next one to start, and one runs at a time, so 32 FUA writes in flight cost a few
//! `fdatasync` calls rather than 32. An `fdatasync` that fails fails every caller waiting for
//! it and every one after it (a failed writeback may have dropped dirty pages, and Linux reports
//! it once): the LUN reports MEDIUM ERROR / WRITE ERROR for every durable write until it is
//! opened again, rather than acknowledge data it may have lost.
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

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::FallocateFlags;
use tokio::sync::watch;

use crate::scsi::device::{check_blocks, check_range};
use crate::scsi::in_flight::InFlight;
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
    syncs: Arc<GroupSync>,
    /// The filesystem has not refused `RWF_NOWAIT` writes (ext4 refuses buffered ones with
    /// `EOPNOTSUPP`: after the first, writes go straight to the pool, one syscall fewer).
    nowait_writes: AtomicBool,
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
            syncs: Arc::default(),
            nowait_writes: AtomicBool::new(true),
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
        // On the same open file as the group syncs: a writeback error it takes is theirs too.
        self.syncs.record(self.file.sync_all())?;
        self.blocks.store(blocks, Ordering::Release);
        Ok(())
    }

    /// `fdatasync` calls made for FUA writes and SYNCHRONIZE CACHE (fewer than those when
    /// they were in flight together).
    pub fn fdatasyncs(&self) -> u64 {
        self.syncs.runs.load(Ordering::Relaxed)
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
/// with `RWF_NOWAIT`); how many bytes it wrote, from the start. Clears `supported` when the
/// filesystem does not do it (`EOPNOTSUPP`, or `EINVAL` on older kernels), and does nothing
/// once it is clear.
fn write_nowait(file: &File, buf: &[u8], offset: u64, supported: &AtomicBool) -> usize {
    if !supported.load(Ordering::Relaxed) {
        return 0;
    }
    nowait(buf.len(), |at| {
        let r = rustix::io::pwritev2(
            file,
            &[std::io::IoSlice::new(&buf[at..])],
            offset + at as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        );
        // Kernels before 6.0 refuse buffered `RWF_NOWAIT` writes on some filesystems with
        // `EINVAL` rather than `EOPNOTSUPP`.
        if matches!(
            r,
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL)
        ) {
            supported.store(false, Ordering::Relaxed);
        }
        r
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
        // Into the page cache at once when the kernel can do it without waiting; the rest on
        // the pool. A synchronous write that returned has changed the medium: no ticket
        // needed for it.
        let cached = write_nowait(&self.file, &data, offset, &self.nowait_writes);
        if cached < data.len() {
            self.blocking(true, move |file| {
                file.write_all_at(&data[cached..], offset + cached as u64)
                    .map_err(|source| DeviceError::Write { lba, source })
            })
            .await?;
        }
        if fua {
            // SBC-3 (WRITE, FUA): the device server shall write the data to the medium before
            // returning GOOD status. The data is written: any fdatasync from now on covers it.
            let file = self.file.clone();
            self.syncs
                .sync(move || file.sync_data())
                .await
                .map_err(|source| DeviceError::Write { lba, source })?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        let file = self.file.clone();
        self.syncs
            .sync(move || file.sync_data())
            .await
            .map_err(DeviceError::Flush)
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

/// The `fdatasync` calls of one file, shared by the callers that ask while none has started
/// (group commit). One runs at a time; a caller joins the batch that the next one will cover,
/// which starts after the caller asked, so it covers every write that returned before.
#[derive(Debug, Default)]
struct GroupSync {
    state: Mutex<SyncState>,
    /// `fdatasync` calls made.
    runs: AtomicU64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The batch the next `fdatasync` covers: its callers wait on the channel for its result.
    next: Option<watch::Sender<Option<SyncResult>>>,
    /// An `fdatasync` runs (its task takes the next batch when it ends).
    running: bool,
    /// The first `fdatasync` that failed: every later one fails the same.
    failed: Option<(io::ErrorKind, String)>,
}

/// The result of one `fdatasync`, given to every caller of its batch.
type SyncResult = Result<(), (io::ErrorKind, String)>;

impl GroupSync {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        // Every field stays valid across a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed `fdatasync` (or any sync of the file): every later one fails the same.
    fn record(&self, r: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &r {
            tracing::error!(error = %e, "fdatasync failed: every later durable write fails too");
            self.lock()
                .failed
                .get_or_insert_with(|| (e.kind(), e.to_string()));
        }
        r
    }

    /// Returns once an `fdatasync` (`op`; every caller passes the same) that started after
    /// this call returned; its error, or the error of any earlier one that failed.
    async fn sync<F>(self: &Arc<Self>, op: F) -> io::Result<()>
    where
        F: Fn() -> io::Result<()> + Clone + Send + Sync + 'static,
    {
        let (mut done, start) = {
            let mut st = self.lock();
            if let Some((kind, what)) = &st.failed {
                return Err(io::Error::new(*kind, what.clone()));
            }
            let done = st
                .next
                .get_or_insert_with(|| watch::channel(None).0)
                .subscribe();
            let start = !st.running;
            st.running = true;
            (done, start)
        };
        if start {
            // Its own task: a caller that gives up does not stop the batch. Spawned with the
            // lock released: on a runtime that is shutting down, `spawn` drops the task at
            // once, and the runner's `Drop` takes the lock.
            let runner = Runner {
                syncs: self.clone(),
                ended: false,
            };
            tokio::spawn(runner.run(op));
        }
        let result = match done.wait_for(Option::is_some).await {
            Ok(r) => r.clone().expect("waited for a result"),
            Err(_) => Err((io::ErrorKind::Other, "the sync task ended".to_owned())),
        };
        result.map_err(|(kind, what)| io::Error::new(kind, what))
    }
}

/// The task of a [`GroupSync`] while it has callers. Dropped before it ended (the runtime shut
/// down), it gives its waiting batch an error and lets the next caller start another.
struct Runner {
    syncs: Arc<GroupSync>,
    ended: bool,
}

impl Runner {
    /// Runs one `fdatasync` a batch until no caller waits.
    async fn run<F>(mut self, op: F)
    where
        F: Fn() -> io::Result<()> + Clone + Send + Sync + 'static,
    {
        loop {
            let (batch, failed) = {
                let mut st = self.syncs.lock();
                match st.next.take() {
                    Some(b) => (b, st.failed.clone()),
                    None => {
                        st.running = false;
                        self.ended = true;
                        return;
                    }
                }
            };
            if let Some(e) = failed {
                batch.send_replace(Some(Err(e)));
                continue;
            }
            self.syncs.runs.fetch_add(1, Ordering::Relaxed);
            let (syncs, op) = (self.syncs.clone(), op.clone());
            // The failure is recorded on the blocking thread itself: the kernel reports a
            // writeback error once, and this task may be dropped (the runtime shutting down)
            // while the call still runs.
            let result = match tokio::task::spawn_blocking(move || syncs.record(op())).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err((e.kind(), e.to_string())),
                // The thread panicked, or the runtime shuts down and cancelled it: this batch
                // fails, but no writeback failed (the pages are still dirty; a later call
                // writes them).
                Err(e) => Err((io::ErrorKind::Other, format!("fdatasync thread: {e}"))),
            };
            batch.send_replace(Some(result));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if !self.ended {
            let mut st = self.syncs.lock();
            st.running = false;
            // Its waiters see the channel closed: an error, not a wait without end.
            st.next = None;
        }
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

    /// FUA writes in flight together share their `fdatasync` calls, and every one is there.
    #[test]
    fn test_fua_writes_in_flight_share_fdatasyncs() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let lun =
                Arc::new(FileLun::create(&dir.path().join("g"), 64, 4096, Tier::Ssd).unwrap());
            lun.write(0, Bytes::from(vec![0; 64 * 4096]), false)
                .await
                .unwrap();
            lun.flush().await.unwrap();
            let before = lun.fdatasyncs();
            let mut writes = tokio::task::JoinSet::new();
            for i in 0..64u8 {
                let lun = lun.clone();
                writes.spawn(async move {
                    lun.write(u64::from(i), Bytes::from(vec![i; 4096]), true)
                        .await
                });
            }
            while let Some(r) = writes.join_next().await {
                r.unwrap().unwrap();
            }
            let syncs = lun.fdatasyncs() - before;
            assert!(
                (1..64).contains(&syncs),
                "{syncs} fdatasync calls for 64 FUA writes"
            );
            for i in 0..64u8 {
                let back = lun.read(u64::from(i), 1).await.unwrap();
                assert!(back.iter().all(|&b| b == i), "block {i}");
            }
        });
    }

    /// A caller that asks while an `fdatasync` runs waits for the next one: the running one
    /// may have started before its data was written.
    #[test]
    fn test_sync_waits_for_one_that_started_after_it_asked() {
        block_on(async {
            let syncs = Arc::new(GroupSync::default());
            let (release, gate) = std::sync::mpsc::channel::<()>();
            let gate = Arc::new(Mutex::new(gate));
            let op = move || {
                // The first call waits for the test's word; the later ones do not.
                let _ = gate.lock().unwrap().recv();
                Ok(())
            };
            let first = tokio::spawn({
                let (syncs, op) = (syncs.clone(), op.clone());
                async move { syncs.sync(op).await }
            });
            while syncs.runs.load(Ordering::Relaxed) == 0 {
                tokio::task::yield_now().await;
            }
            let second = tokio::spawn({
                let syncs = syncs.clone();
                async move { syncs.sync(op).await }
            });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(!first.is_finished() && !second.is_finished());
            drop(release);
            first.await.unwrap().unwrap();
            second.await.unwrap().unwrap();
            assert_eq!(syncs.runs.load(Ordering::Relaxed), 2);
        });
    }

    /// Starts an `fdatasync` (`ends` is what it returns) on a runtime that shuts down while it
    /// runs, then lets it end: the runner task is gone before the call returns.
    fn sync_outliving_its_runtime(ends: fn() -> io::Result<()>) -> Arc<GroupSync> {
        let syncs = Arc::new(GroupSync::default());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        // Set on the blocking thread: the call runs (the runner counts it a moment before).
        let started = Arc::new(AtomicBool::new(false));
        let op = {
            let started = started.clone();
            move || {
                started.store(true, Ordering::SeqCst);
                let _ = gate
                    .lock()
                    .unwrap()
                    .recv_timeout(std::time::Duration::from_secs(10));
                ends()
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let s = syncs.clone();
            tokio::spawn(async move { s.sync(op).await });
            while !started.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        });
        rt.shutdown_timeout(std::time::Duration::from_millis(10));
        drop(release);
        syncs
    }

    /// A sync task dropped with its runtime (shut down while an `fdatasync` ran) lets the next
    /// caller start another, rather than leave it waiting for a task that is gone.
    #[test]
    fn test_sync_after_its_task_was_dropped() {
        let syncs = sync_outliving_its_runtime(|| Ok(()));
        assert!(!syncs.lock().running);
        block_on(async { syncs.sync(|| Ok(())).await.unwrap() });
        assert_eq!(syncs.runs.load(Ordering::Relaxed), 2);
    }

    /// An `fdatasync` that fails after its task was dropped (the runtime shut down while it
    /// ran) is still recorded: the kernel reports a writeback error once, so a later sync that
    /// succeeds must not be taken for durability.
    #[test]
    fn test_sync_failing_after_its_task_was_dropped_is_recorded() {
        let syncs = sync_outliving_its_runtime(|| Err(io::Error::from_raw_os_error(5)));
        let start = std::time::Instant::now();
        while syncs.lock().failed.is_none() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let e = block_on(async { syncs.sync(|| Ok(())).await.unwrap_err() });
        assert!(e.to_string().contains("Input/output error"), "{e}");
    }

    /// An `fdatasync` that failed fails every later caller, without calling it again.
    #[test]
    fn test_failed_sync_fails_every_later_one() {
        block_on(async {
            let syncs = Arc::new(GroupSync::default());
            let calls = Arc::new(AtomicU64::new(0));
            let op = {
                let calls = calls.clone();
                move || match calls.fetch_add(1, Ordering::Relaxed) {
                    0 => Ok(()),
                    _ => Err(io::Error::from_raw_os_error(5)),
                }
            };
            syncs.sync(op.clone()).await.unwrap();
            let e = syncs.sync(op.clone()).await.unwrap_err();
            assert_eq!(e.raw_os_error(), None, "{e}");
            assert!(e.to_string().contains("Input/output error"), "{e}");
            for _ in 0..3 {
                let again = syncs.sync(op.clone()).await.unwrap_err();
                assert_eq!(again.to_string(), e.to_string());
            }
            assert_eq!(
                calls.load(Ordering::Relaxed),
                2,
                "not called after it failed"
            );
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
            assert!(lun.in_flight.is_idle());
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
