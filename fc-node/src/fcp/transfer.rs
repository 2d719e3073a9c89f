//! Copying a local file to a LUN, back from it, or comparing the two: what a host does for its
//! user with the [`Initiator`]'s READ and WRITE.
//!
//! Transfers go in chunks of [`CHUNK`] bytes with [`QUEUE_DEPTH`] commands in flight; a
//! write ends with SYNCHRONIZE CACHE, so when [`write_file`] returns every byte is durable on
//! the array. A file that is not a whole number of blocks is padded with zeros on the LUN.
//! Each function reports progress by calling `progress` with the offset in the file and the
//! length of each chunk as it is done: acknowledged by the LUN (a write, in the order the
//! commands end), or handed on (a read, in file order). The `fcsan` binary draws a progress bar
//! with it.
//!
//! A command that ends in a unit attention (SAM-5 §5.14: REPORTED LUNS DATA HAS CHANGED when
//! a LUN is added anywhere on the target — a virtualization controller's volumes come and go
//! at run time — a power on, CAPACITY DATA HAS CHANGED) was not performed: reporting the
//! condition cleared it, so the command is sent again, as an operating system's SCSI layer
//! does, up to [`ATTENTIONS`] times.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fc_frames::scsi::data::Capacity;
use fc_frames::scsi::Lun;
use fc_frames::FcId;
use tokio::task::{JoinError, JoinSet};

use super::initiator::{past_attentions, Initiator, ScsiError};

/// Bytes per command.
pub const CHUNK: usize = 1 << 20;
/// Commands in flight.
pub const QUEUE_DEPTH: usize = 8;
/// Unit attentions one command is sent again after, at most.
pub const ATTENTIONS: usize = 8;

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The local file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The local file could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the local file failed.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is longer than the LUN.
    #[error("{len} bytes do not fit: the LUN holds {capacity} bytes")]
    TooLarge {
        /// Bytes to transfer.
        len: u64,
        /// Bytes the LUN holds.
        capacity: u64,
    },
    /// READ CAPACITY failed.
    #[error("READ CAPACITY")]
    ReadCapacity(#[source] ScsiError),
    /// A WRITE failed.
    #[error("WRITE at LBA {lba}")]
    Write {
        /// Its first block.
        lba: u64,
        /// Why.
        #[source]
        source: ScsiError,
    },
    /// A READ failed.
    #[error("READ at LBA {lba}")]
    Read {
        /// Its first block.
        lba: u64,
        /// Why.
        #[source]
        source: ScsiError,
    },
    /// SYNCHRONIZE CACHE after the writes failed.
    #[error("SYNCHRONIZE CACHE")]
    SynchronizeCache(#[source] ScsiError),
    /// The LUN's bytes differ from the file's.
    #[error("the LUN differs from {} at byte {offset}", path.display())]
    Differs {
        /// The file.
        path: PathBuf,
        /// The first differing byte, from the start of the file.
        offset: u64,
    },
    /// The task of a command ended without an answer (it panicked, or the runtime is
    /// shutting down).
    #[error("a command's task ended early")]
    Task(#[source] JoinError),
    /// A write failed part way: how much of the file was acknowledged, from its start.
    #[error(
        "the first {acknowledged} bytes of {} had been acknowledged",
        path.display()
    )]
    Interrupted {
        /// The file.
        path: PathBuf,
        /// Bytes from the start of the file that the LUN acknowledged (all of them durable
        /// with FUA).
        acknowledged: u64,
        /// What went wrong.
        #[source]
        source: Box<TransferError>,
    },
}

impl TransferError {
    /// For a write that failed part way, the bytes from the start of the file that had been
    /// acknowledged.
    pub fn acknowledged(&self) -> Option<u64> {
        match self {
            TransferError::Interrupted { acknowledged, .. } => Some(*acknowledged),
            _ => None,
        }
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

async fn capacity(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    len: u64,
) -> Result<Capacity, TransferError> {
    let cap = past_attentions(ATTENTIONS, || init.read_capacity(target, lun))
        .await
        .map_err(TransferError::ReadCapacity)?;
    let capacity = cap.bytes().unwrap_or(u64::MAX);
    if len > capacity {
        return Err(TransferError::TooLarge { len, capacity });
    }
    Ok(cap)
}

/// Writes the file at `path` to the LUN from LBA 0, then SYNCHRONIZE CACHE; with `fua`
/// every write is durable before it is acknowledged. On failure part way the error is
/// [`TransferError::Interrupted`], which says how many bytes from the start of the file had
/// been acknowledged.
pub async fn write_file(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    path: &Path,
    fua: bool,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Transfer, TransferError> {
    let file_error = |source| TransferError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|source| TransferError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file.metadata().map_err(file_error)?.len();
    let cap = capacity(init, target, lun, len).await?;
    let bs = cap.block_size() as usize;
    let start = Instant::now();
    let mut acked = Acked::default();
    let mut set = JoinSet::new();
    let mut offset = 0u64;
    let result: Result<(), TransferError> = async {
        loop {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = read_full(&mut file, &mut buf).map_err(file_error)?;
            if n == 0 {
                break;
            }
            buf.truncate(n.div_ceil(bs) * bs);
            let data = buf.freeze();
            let lba = offset / bs as u64;
            let at = offset;
            offset += n as u64;
            if set.len() >= QUEUE_DEPTH {
                join_one(&mut set, progress, &mut acked).await?;
            }
            let init = init.clone();
            set.spawn(async move {
                past_attentions(ATTENTIONS, || {
                    init.write(target, lun, lba, data.clone(), bs as u32, fua)
                })
                .await
                .map_err(|source| TransferError::Write { lba, source })
                .map(|()| (at, n as u64))
            });
        }
        while !set.is_empty() {
            join_one(&mut set, progress, &mut acked).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Let the commands still in flight end (each one ends: done, failed or timed out).
        while let Some(r) = set.join_next().await {
            if let Ok(Ok((at, n))) = r {
                acked.add(at, n);
            }
        }
        return Err(TransferError::Interrupted {
            path: path.to_path_buf(),
            acknowledged: acked.prefix,
            source: Box::new(e),
        });
    }
    past_attentions(ATTENTIONS, || init.synchronize_cache(target, lun))
        .await
        .map_err(TransferError::SynchronizeCache)?;
    Ok(Transfer {
        bytes: len,
        elapsed: start.elapsed(),
    })
}

/// Acknowledged chunks, and how far from the start they are contiguous: what a write's
/// progress callback reports (chunks finish out of order with several in flight), folded into
/// "the first N bytes are acknowledged".
#[derive(Debug, Default)]
pub struct Acked {
    prefix: u64,
    beyond: BTreeMap<u64, u64>,
}

impl Acked {
    /// `n` bytes at `at` were acknowledged.
    pub fn add(&mut self, at: u64, n: u64) {
        self.beyond.insert(at, n);
        while let Some(n) = self.beyond.remove(&self.prefix) {
            self.prefix += n;
        }
    }

    /// How many bytes from the start are acknowledged, without a gap.
    pub fn prefix(&self) -> u64 {
        self.prefix
    }
}

/// Reads `len` bytes from LBA 0 of the LUN into a new file at `path`.
pub async fn read_file(
    init: &Initiator,
    target: FcId,
    lun: Lun,
    path: &Path,
    len: u64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Transfer, TransferError> {
    let file_error = |source| TransferError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(|source| TransferError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let start = Instant::now();
    let mut sink = |_: u64, data: Bytes| file.write_all(&data).map_err(file_error);
    stream(init, target, lun, len, progress, &mut sink).await?;
    file.sync_all().map_err(file_error)?;
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
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<Transfer, TransferError> {
    let file_error = |source| TransferError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(|source| TransferError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file.metadata().map_err(file_error)?.len();
    let start = Instant::now();
    let mut expected = vec![0u8; CHUNK];
    let mut sink = |offset: u64, data: Bytes| -> Result<(), TransferError> {
        let want = &mut expected[..data.len()];
        file.read_exact(want).map_err(file_error)?;
        match want.iter().zip(data.iter()).position(|(a, b)| a != b) {
            Some(i) => Err(TransferError::Differs {
                path: path.to_path_buf(),
                offset: offset + i as u64,
            }),
            None => Ok(()),
        }
    };
    stream(init, target, lun, len, progress, &mut sink).await?;
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
    progress: &mut (dyn FnMut(u64, u64) + Send),
    sink: &mut (dyn FnMut(u64, Bytes) -> Result<(), TransferError> + Send),
) -> Result<(), TransferError> {
    let cap = capacity(init, target, lun, len).await?;
    let bs = u64::from(cap.block_size());
    let mut queue = VecDeque::new();
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
                let r = past_attentions(ATTENTIONS, || {
                    init.read(target, lun, lba, blocks, bs as u32)
                })
                .await;
                r.map(|mut d| {
                    d.truncate(n as usize);
                    (offset, d)
                })
                .map_err(|source| TransferError::Read { lba, source })
            }));
            next += n;
        }
        let Some(h) = queue.pop_front() else {
            break;
        };
        let (offset, data) = h.await.map_err(TransferError::Task)??;
        let n = data.len() as u64;
        sink(offset, data)?;
        done += n;
        progress(offset, n);
    }
    Ok(())
}

async fn join_one(
    set: &mut JoinSet<Result<(u64, u64), TransferError>>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
    acked: &mut Acked,
) -> Result<(), TransferError> {
    if let Some(r) = set.join_next().await {
        let (at, n) = r.map_err(TransferError::Task)??;
        acked.add(at, n);
        progress(at, n);
    }
    Ok(())
}

/// Fills `buf` from `r` as far as the file goes; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

    #[tokio::test]
    async fn test_unit_attentions_are_passed_a_bounded_number_of_times() {
        use fc_frames::scsi::{AdditionalSense, Sense};
        use std::sync::atomic::{AtomicUsize, Ordering};

        let changed = Sense::unit_attention(AdditionalSense::REPORTED_LUNS_DATA_HAS_CHANGED);
        // Two attentions, then the command is performed.
        let sent = AtomicUsize::new(0);
        let r = past_attentions(ATTENTIONS, || async {
            match sent.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(ScsiError::CheckCondition(changed)),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(sent.load(Ordering::SeqCst), 3);

        // Another CHECK CONDITION is the command's answer: not sent again.
        let sent = AtomicUsize::new(0);
        let r: Result<(), _> = past_attentions(ATTENTIONS, || async {
            sent.fetch_add(1, Ordering::SeqCst);
            Err(ScsiError::CheckCondition(Sense::lba_out_of_range()))
        })
        .await;
        assert!(matches!(r, Err(ScsiError::CheckCondition(s)) if s == Sense::lba_out_of_range()));
        assert_eq!(sent.load(Ordering::SeqCst), 1);

        // A target that never stops reporting one: the attention, after ATTENTIONS more tries.
        let sent = AtomicUsize::new(0);
        let r: Result<(), _> = past_attentions(ATTENTIONS, || async {
            sent.fetch_add(1, Ordering::SeqCst);
            Err(ScsiError::CheckCondition(changed))
        })
        .await;
        assert!(matches!(r, Err(ScsiError::CheckCondition(s)) if s == changed));
        assert_eq!(sent.load(Ordering::SeqCst), ATTENTIONS + 1);
    }

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
}
