//! What a logical unit is to the engine: [`BlockDevice`], its errors, its tier, and
//! [`MemLun`], a RAM disk.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use fc_frames::scsi::data::vpd::RotationRate;
use fc_frames::scsi::{AdditionalSense, Sense};

/// The storage tier of a logical unit, reported to initiators as the MEDIUM ROTATION RATE of
/// VPD page 0xB1 (SBC-3 block device characteristics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    /// Solid state: rotation rate 1 (non-rotating).
    #[default]
    Ssd,
    /// Fast disk: 15000 rpm.
    FastHdd,
    /// Slow disk: 7200 rpm.
    SlowHdd,
}

impl Tier {
    /// The MEDIUM ROTATION RATE this tier reports.
    pub const fn rotation_rate(self) -> RotationRate {
        match self {
            Tier::Ssd => RotationRate::NON_ROTATING,
            Tier::FastHdd => RotationRate(15000),
            Tier::SlowHdd => RotationRate(7200),
        }
    }

    /// The tier a MEDIUM ROTATION RATE stands for: 1 is SSD, 10000 rpm and up fast disk, any
    /// other rate a slow disk; `None` when not reported.
    pub const fn from_rotation_rate(rate: RotationRate) -> Option<Tier> {
        match rate.0 {
            0 => None,
            1 => Some(Tier::Ssd),
            r if r >= 10_000 && r < 0xFFFF => Some(Tier::FastHdd),
            0x0402..=0xFFFE => Some(Tier::SlowHdd),
            _ => None,
        }
    }

    /// `ssd`, `fast-hdd` or `slow-hdd`.
    pub const fn name(self) -> &'static str {
        match self {
            Tier::Ssd => "ssd",
            Tier::FastHdd => "fast-hdd",
            Tier::SlowHdd => "slow-hdd",
        }
    }
}

/// Why a block device could not do what the engine asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// Reading the medium failed: MEDIUM ERROR / UNRECOVERED READ ERROR at `lba`.
    #[error("unrecovered read error at LBA {lba}")]
    Read {
        /// First block of the failed read.
        lba: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing the medium failed: MEDIUM ERROR / WRITE ERROR at `lba`.
    #[error("write error at LBA {lba}")]
    Write {
        /// First block of the failed write.
        lba: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Making written data durable failed: MEDIUM ERROR / WRITE ERROR.
    #[error("flush failed")]
    Flush(#[source] io::Error),
    /// A range past the end of the device: ILLEGAL REQUEST / LBA OUT OF RANGE (the engine
    /// checks ranges first, so this is a device that shrank under it).
    #[error("{blocks} blocks at LBA {lba} are beyond the device")]
    OutOfRange {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u64,
    },
    /// The blocking thread that ran the I/O failed (it panicked, or the runtime is shutting
    /// down): HARDWARE ERROR / INTERNAL TARGET FAILURE.
    #[error("blocking I/O thread failed")]
    Blocking(#[source] io::Error),
    /// The device ended the operation in CHECK CONDITION with this sense data (a logical unit
    /// on another node whose answer is relayed as it came).
    #[error("CHECK CONDITION: {0}")]
    Check(Sense),
    /// The device could not be reached (a logical unit on another node: the link, the fabric,
    /// the peer): ABORTED COMMAND / LOGICAL UNIT COMMUNICATION TIME-OUT when it did not answer
    /// in time, LOGICAL UNIT COMMUNICATION FAILURE otherwise. The initiator may retry.
    #[error("logical unit unreachable")]
    Unreachable {
        /// No answer in time.
        timed_out: bool,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A buffer that is not a whole number of blocks: HARDWARE ERROR / INTERNAL TARGET FAILURE
    /// (a bug in the caller).
    #[error("buffer of {len} bytes is not a multiple of the {block_size}-byte block")]
    BadBufferLength {
        /// Buffer length.
        len: usize,
        /// Block size.
        block_size: u32,
    },
}

impl DeviceError {
    /// The sense data a target returns with CHECK CONDITION for this error.
    pub fn sense(&self) -> Sense {
        match self {
            DeviceError::Read { lba, .. } => {
                Sense::medium_error(AdditionalSense::UNRECOVERED_READ_ERROR, *lba)
            }
            DeviceError::Write { lba, .. } => {
                Sense::medium_error(AdditionalSense::WRITE_ERROR, *lba)
            }
            DeviceError::Flush(_) => Sense::new(
                fc_frames::scsi::SenseKey::MEDIUM_ERROR,
                AdditionalSense::WRITE_ERROR,
            ),
            DeviceError::OutOfRange { .. } => Sense::lba_out_of_range(),
            DeviceError::Check(sense) => *sense,
            DeviceError::Unreachable { timed_out, .. } => Sense::aborted_command(if *timed_out {
                AdditionalSense::LOGICAL_UNIT_COMMUNICATION_TIME_OUT
            } else {
                AdditionalSense::LOGICAL_UNIT_COMMUNICATION_FAILURE
            }),
            DeviceError::BadBufferLength { .. } | DeviceError::Blocking(_) => {
                Sense::internal_target_failure()
            }
        }
    }
}

/// A logical unit's storage, as the engine sees it: fixed-size blocks addressed by LBA.
///
/// The trait is the seam between the SCSI engine and what stores the data: a file
/// ([`crate::disk::FileLun`]), RAM ([`MemLun`]), or the controller's virtual volumes, whose I/O
/// crosses the fabric. It is asynchronous and object-safe (`Arc<dyn BlockDevice>`); buffers
/// are [`Bytes`], so data moves between the transport and the device without copies.
///
/// Contract:
/// - Methods take `&self` and may run concurrently; an implementation never holds a thread
///   or a `std` lock across an `.await` (a device may wait on the network for seconds).
/// - Buffers are whole blocks; the engine has checked every range against `block_count`, but
///   implementations still check ([`DeviceError::OutOfRange`]): the size may change at run time.
/// - Dropping a returned future cancels the operation. What cannot be cancelled (a system call
///   already running on a blocking thread) finishes in the background, and
///   [`settle`](Self::settle) waits for it: after `settle` returns, no operation begun before the
///   call still changes the medium. The engine relies on this to abort tasks (SAM-5 §7).
#[async_trait]
pub trait BlockDevice: Send + Sync {
    /// Logical block length in bytes (non-zero, fixed).
    fn block_size(&self) -> u32;
    /// Number of logical blocks (non-zero). May change at run time; the engine notices and
    /// reports CAPACITY DATA HAS CHANGED.
    fn block_count(&self) -> u64;
    /// The storage tier.
    fn tier(&self) -> Tier;
    /// Reads `blocks` blocks from `lba`.
    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError>;
    /// Writes `data` (whole blocks) at `lba`; with `fua` the data is durable (survives a crash
    /// or power loss) when this returns `Ok`.
    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError>;
    /// Makes every completed write durable.
    async fn flush(&self) -> Result<(), DeviceError>;
    /// Deallocates `blocks` blocks from `lba` (UNMAP, WRITE SAME with UNMAP): the device may
    /// free their storage, and they read back as zeros afterwards (LBPRZ).
    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError>;
    /// Waits until no operation begun before this call, whose future was dropped, can still
    /// change the medium. The default is for devices whose dropped futures stop at once.
    async fn settle(&self) {}
}

/// Checks `blocks` blocks at `lba` against `count`, and that `len` is whole blocks; returns
/// the number of blocks `len` holds.
pub(crate) fn check_range(
    lba: u64,
    len: usize,
    block_size: u32,
    count: u64,
) -> Result<u64, DeviceError> {
    let bs = block_size as usize;
    if bs == 0 || len % bs != 0 {
        return Err(DeviceError::BadBufferLength { len, block_size });
    }
    let blocks = (len / bs) as u64;
    check_blocks(lba, blocks, count)?;
    Ok(blocks)
}

/// `blocks` blocks at `lba` lie within `count` blocks.
pub(crate) fn check_blocks(lba: u64, blocks: u64, count: u64) -> Result<(), DeviceError> {
    match lba.checked_add(blocks) {
        Some(end) if end <= count => Ok(()),
        _ => Err(DeviceError::OutOfRange { lba, blocks }),
    }
}

/// A RAM disk: a real block device whose data lives in memory (lost when dropped). Its
/// operations finish before their futures first return, so nothing outlives a dropped future.
#[derive(Debug)]
pub struct MemLun {
    data: Mutex<Vec<u8>>,
    block_size: u32,
    blocks: AtomicU64,
    tier: Tier,
}

impl MemLun {
    /// A zeroed RAM disk of `blocks` blocks of `block_size` bytes; `None` when either is zero
    /// or the size does not fit in memory addressing.
    pub fn new(blocks: u64, block_size: u32, tier: Tier) -> Option<MemLun> {
        let len = mem_len(blocks, block_size)?;
        Some(MemLun {
            data: Mutex::new(vec![0; len]),
            block_size,
            blocks: AtomicU64::new(blocks),
            tier,
        })
    }

    /// Grows or shrinks the disk to `blocks` blocks (new blocks read as zeros); false when the
    /// size is zero or too large. The engine reports the change as CAPACITY DATA HAS CHANGED.
    pub fn resize(&self, blocks: u64) -> bool {
        let Some(len) = mem_len(blocks, self.block_size) else {
            return false;
        };
        let mut data = self.lock();
        data.resize(len, 0);
        self.blocks.store(blocks, Ordering::Release);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves bytes that are still bytes.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Byte range of `blocks` blocks from `lba`, checked against the current size.
    fn span(
        &self,
        data: &[u8],
        lba: u64,
        blocks: u64,
    ) -> Result<std::ops::Range<usize>, DeviceError> {
        let bs = u64::from(self.block_size);
        let count = data.len() as u64 / bs;
        check_blocks(lba, blocks, count)?;
        // Within `data.len()`, a usize, once the check passed.
        Ok((lba * bs) as usize..((lba + blocks) * bs) as usize)
    }
}

/// `blocks * block_size` as a memory length; `None` when zero or too large.
fn mem_len(blocks: u64, block_size: u32) -> Option<usize> {
    if blocks == 0 || block_size == 0 {
        return None;
    }
    usize::try_from(blocks.checked_mul(u64::from(block_size))?).ok()
}

#[async_trait]
impl BlockDevice for MemLun {
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
        let data = self.lock();
        let span = self.span(&data, lba, blocks)?;
        Ok(Bytes::copy_from_slice(&data[span]))
    }

    async fn write(&self, lba: u64, buf: Bytes, _fua: bool) -> Result<(), DeviceError> {
        let blocks = check_range(lba, buf.len(), self.block_size, u64::MAX)?;
        let mut data = self.lock();
        let span = self.span(&data, lba, blocks)?;
        data[span].copy_from_slice(&buf);
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }

    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        let mut data = self.lock();
        let span = self.span(&data, lba, blocks)?;
        data[span].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_tier_from_rotation_rate() {
        for t in [Tier::Ssd, Tier::FastHdd, Tier::SlowHdd] {
            assert_eq!(Tier::from_rotation_rate(t.rotation_rate()), Some(t));
        }
        assert_eq!(Tier::from_rotation_rate(RotationRate(0)), None);
        assert_eq!(
            Tier::from_rotation_rate(RotationRate(5400)),
            Some(Tier::SlowHdd)
        );
        assert_eq!(Tier::from_rotation_rate(RotationRate(0x0200)), None);
    }

    #[test]
    fn test_tier_rotation_rate() {
        assert_eq!(Tier::Ssd.rotation_rate().0, 1);
        assert_eq!(Tier::FastHdd.rotation_rate().0, 15000);
        assert_eq!(Tier::SlowHdd.rotation_rate().0, 7200);
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn test_mem_lun_round_trip_bounds_and_resize() {
        block_on(async {
            let m = MemLun::new(8, 512, Tier::Ssd).unwrap();
            m.write(7, Bytes::from_static(&[0xAB; 512]), false)
                .await
                .unwrap();
            assert_eq!(
                m.read(7, 1).await.unwrap(),
                Bytes::from_static(&[0xAB; 512])
            );
            m.unmap(7, 1).await.unwrap();
            assert_eq!(m.read(7, 1).await.unwrap(), Bytes::from_static(&[0; 512]));
            assert!(matches!(
                m.read(8, 1).await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(matches!(
                m.write(u64::MAX, Bytes::from_static(&[0; 512]), false)
                    .await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(matches!(
                m.write(0, Bytes::from_static(&[0; 100]), false).await,
                Err(DeviceError::BadBufferLength { .. })
            ));
            assert!(MemLun::new(0, 512, Tier::Ssd).is_none());
            // Growing: the new blocks read as zeros, the old keep their data.
            m.write(0, Bytes::from_static(&[1; 512]), false)
                .await
                .unwrap();
            assert!(m.resize(16));
            assert_eq!(m.block_count(), 16);
            assert_eq!(m.read(15, 1).await.unwrap(), Bytes::from_static(&[0; 512]));
            assert_eq!(m.read(0, 1).await.unwrap(), Bytes::from_static(&[1; 512]));
            assert!(m.resize(4));
            assert!(matches!(
                m.read(4, 1).await,
                Err(DeviceError::OutOfRange { .. })
            ));
            assert!(!m.resize(0));
        });
    }
}
