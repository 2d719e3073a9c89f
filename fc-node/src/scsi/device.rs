//! What a logical unit is to the engine: [`BlockDevice`], its errors, its tier, and
//! [`MemLun`], a RAM disk.

use std::io;
use std::sync::{Mutex, PoisonError};

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
            DeviceError::BadBufferLength { .. } => Sense::internal_target_failure(),
        }
    }
}

/// A logical unit's storage, as the engine sees it: fixed-size blocks addressed by LBA.
///
/// The trait is the seam between the SCSI engine and what stores the data: a file
/// ([`crate::disk::FileLun`]), RAM ([`MemLun`]), or, later, the controller's virtual volumes.
/// It is synchronous for now; the async FCP target driver will run it on blocking threads.
/// Methods take `&self` so one device can serve concurrent commands; implementations lock
/// what they need.
///
/// Contract: buffers are whole blocks; the engine has checked that every range lies within
/// `block_count`, but implementations still check it ([`DeviceError::OutOfRange`]).
pub trait BlockDevice: Send + Sync {
    /// Logical block length in bytes (non-zero).
    fn block_size(&self) -> u32;
    /// Number of logical blocks (non-zero).
    fn block_count(&self) -> u64;
    /// The storage tier.
    fn tier(&self) -> Tier;
    /// Reads `buf.len() / block_size` blocks from `lba`.
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Writes `buf.len() / block_size` blocks at `lba`; with `fua` the data is durable (survives
    /// a crash or power loss) when this returns `Ok`.
    fn write(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError>;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), DeviceError>;
    /// Deallocates `blocks` blocks from `lba` (UNMAP, WRITE SAME with UNMAP); they read back as
    /// zeros afterwards (LBPRZ).
    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), DeviceError>;
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

/// A RAM disk: a real block device whose data lives in memory (lost when dropped).
#[derive(Debug)]
pub struct MemLun {
    data: Mutex<Vec<u8>>,
    block_size: u32,
    blocks: u64,
    tier: Tier,
}

impl MemLun {
    /// A zeroed RAM disk of `blocks` blocks of `block_size` bytes; `None` when either is zero
    /// or the size does not fit in memory addressing.
    pub fn new(blocks: u64, block_size: u32, tier: Tier) -> Option<MemLun> {
        if blocks == 0 || block_size == 0 {
            return None;
        }
        let len = usize::try_from(blocks.checked_mul(u64::from(block_size))?).ok()?;
        Some(MemLun {
            data: Mutex::new(vec![0; len]),
            block_size,
            blocks,
            tier,
        })
    }

    /// Byte range of `blocks` blocks from `lba`; the caller has range-checked them, so the
    /// product fits the in-memory length.
    fn span(&self, lba: u64, blocks: u64) -> std::ops::Range<usize> {
        let bs = u64::from(self.block_size);
        (lba * bs) as usize..((lba + blocks) * bs) as usize
    }
}

impl BlockDevice for MemLun {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn tier(&self) -> Tier {
        self.tier
    }

    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let blocks = check_range(lba, buf.len(), self.block_size, self.blocks)?;
        let data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        buf.copy_from_slice(&data[self.span(lba, blocks)]);
        Ok(())
    }

    fn write(&self, lba: u64, buf: &[u8], _fua: bool) -> Result<(), DeviceError> {
        let blocks = check_range(lba, buf.len(), self.block_size, self.blocks)?;
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        let span = self.span(lba, blocks);
        data[span].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        check_blocks(lba, blocks, self.blocks)?;
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        let span = self.span(lba, blocks);
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

    #[test]
    fn test_mem_lun_round_trip_and_bounds() {
        let m = MemLun::new(8, 512, Tier::Ssd).unwrap();
        m.write(7, &[0xAB; 512], false).unwrap();
        let mut b = [0; 512];
        m.read(7, &mut b).unwrap();
        assert_eq!(b, [0xAB; 512]);
        m.write_zeroes(7, 1).unwrap();
        m.read(7, &mut b).unwrap();
        assert_eq!(b, [0; 512]);
        assert!(matches!(
            m.read(8, &mut b),
            Err(DeviceError::OutOfRange { .. })
        ));
        assert!(matches!(
            m.write(u64::MAX, &b, false),
            Err(DeviceError::OutOfRange { .. })
        ));
        assert!(matches!(
            m.read(0, &mut [0; 100]),
            Err(DeviceError::BadBufferLength { .. })
        ));
        assert!(MemLun::new(0, 512, Tier::Ssd).is_none());
        assert!(MemLun::new(1, 0, Tier::Ssd).is_none());
    }

    #[test]
    fn test_device_error_sense() {
        let e = DeviceError::Read {
            lba: 5,
            source: io::Error::other("x"),
        };
        let s = e.sense();
        assert_eq!(s.key, fc_frames::scsi::SenseKey::MEDIUM_ERROR);
        assert_eq!(s.additional, AdditionalSense::UNRECOVERED_READ_ERROR);
        assert_eq!(s.information, Some(5));
        let w = DeviceError::Write {
            lba: 9,
            source: io::Error::other("x"),
        }
        .sense();
        assert_eq!(w.additional, AdditionalSense::WRITE_ERROR);
        assert_eq!(
            DeviceError::Flush(io::Error::other("x")).sense().additional,
            AdditionalSense::WRITE_ERROR
        );
    }
}
