//! [`FileLun`]: a logical unit stored in a file.
//!
//! The file is created sparse to the configured size (`set_len`); I/O is positioned
//! (`pread`/`pwrite` through [`FileExt`], which loop on short transfers and `EINTR`). A write with
//! FUA and SYNCHRONIZE CACHE call `fdatasync` before they return, so data they acknowledge
//! survives a crash of the process or the host. Deallocation writes zeros.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::scsi::device::{check_blocks, check_range};
use crate::scsi::{BlockDevice, DeviceError, Tier};

/// Largest zero buffer written at once when deallocating.
const ZERO_CHUNK: u64 = 1 << 20;

/// A block device backed by a regular file.
#[derive(Debug)]
pub struct FileLun {
    file: File,
    block_size: u32,
    blocks: u64,
    tier: Tier,
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
        Ok(FileLun {
            file,
            block_size,
            blocks,
            tier,
        })
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
        Ok(FileLun {
            file,
            block_size,
            blocks: len / u64::from(block_size),
            tier,
        })
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
        Ok(FileLun {
            file,
            block_size,
            blocks,
            tier,
        })
    }

    /// Byte offset of `lba`; in range once the range check passed.
    fn offset(&self, lba: u64) -> u64 {
        lba * u64::from(self.block_size)
    }
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

impl BlockDevice for FileLun {
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
        check_range(lba, buf.len(), self.block_size, self.blocks)?;
        self.file
            .read_exact_at(buf, self.offset(lba))
            .map_err(|source| DeviceError::Read { lba, source })
    }

    fn write(&self, lba: u64, buf: &[u8], fua: bool) -> Result<(), DeviceError> {
        check_range(lba, buf.len(), self.block_size, self.blocks)?;
        self.file
            .write_all_at(buf, self.offset(lba))
            .map_err(|source| DeviceError::Write { lba, source })?;
        if fua {
            // SBC-3 (WRITE, FUA): the device server shall write the data to the medium before
            // returning GOOD status.
            self.file
                .sync_data()
                .map_err(|source| DeviceError::Write { lba, source })?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        self.file.sync_data().map_err(DeviceError::Flush)
    }

    fn write_zeroes(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        check_blocks(lba, blocks, self.blocks)?;
        let bs = u64::from(self.block_size);
        let per_chunk = (ZERO_CHUNK / bs).max(1);
        let zeros = vec![0u8; (per_chunk * bs) as usize];
        let mut at = lba;
        let end = lba + blocks;
        while at < end {
            let n = per_chunk.min(end - at);
            self.file
                .write_all_at(&zeros[..(n * bs) as usize], self.offset(at))
                .map_err(|source| DeviceError::Write { lba: at, source })?;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        use std::os::unix::fs::MetadataExt;
        // 512 MiB apparent size, next to nothing allocated.
        assert!(md.blocks() * 512 < 1 << 20, "allocated {}", md.blocks());
        // create refuses to clobber.
        assert!(FileLun::create(&p, 8, 512, Tier::Ssd).is_err());
    }

    #[test]
    fn test_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        {
            let lun = FileLun::create(&p, 64, 512, Tier::Ssd).unwrap();
            lun.write(10, &data, true).unwrap();
            lun.write(63, &[0x5A; 512], false).unwrap();
            lun.flush().unwrap();
        }
        let lun = FileLun::open(&p, 512, Tier::Ssd).unwrap();
        assert_eq!(lun.block_count(), 64);
        let mut back = vec![0; 4096];
        lun.read(10, &mut back).unwrap();
        assert_eq!(back, data);
        let mut last = [0; 512];
        lun.read(63, &mut last).unwrap();
        assert_eq!(last, [0x5A; 512]);
        lun.write_zeroes(10, 4).unwrap();
        lun.read(10, &mut back).unwrap();
        assert!(back[..2048].iter().all(|&b| b == 0));
        assert_eq!(back[2048..], data[2048..]);
    }

    /// Through the SCSI engine: a FUA WRITE(16) and a SYNCHRONIZE CACHE acknowledged with GOOD
    /// are readable from the file after it is closed and reopened.
    #[test]
    fn test_engine_on_file_lun_survives_reopen() {
        use fc_frames::scsi::{Lun, ScsiStatus};
        use fc_frames::Wwn;

        use crate::scsi::{DiskConfig, ScsiEngine, TargetPort};

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        let mut write16 = vec![0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 16, 0, 0];
        {
            let lun = FileLun::create(&p, 1024, 512, Tier::SlowHdd).unwrap();
            let mut e = ScsiEngine::new(TargetPort::default());
            e.add_disk(Lun::ZERO, Box::new(lun), DiskConfig::new("F", Wwn::ZERO))
                .unwrap();
            let r = e.execute(Lun::ZERO, &write16, 8192, &data);
            assert_eq!(r.status, ScsiStatus::GOOD);
            write16[1] = 0;
            write16[9] = 200;
            let r = e.execute(Lun::ZERO, &write16, 8192, &data);
            assert_eq!(r.status, ScsiStatus::GOOD);
            let sync = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            assert_eq!(e.execute(Lun::ZERO, &sync, 0, &[]).status, ScsiStatus::GOOD);
        }
        let lun = FileLun::open(&p, 512, Tier::SlowHdd).unwrap();
        let mut back = vec![0; 8192];
        lun.read(100, &mut back).unwrap();
        assert_eq!(back, data);
        lun.read(200, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn test_bounds_checked() {
        let dir = tempfile::tempdir().unwrap();
        let lun = FileLun::create(&dir.path().join("l"), 16, 4096, Tier::Ssd).unwrap();
        let mut b = vec![0; 4096];
        assert!(matches!(
            lun.read(16, &mut b),
            Err(DeviceError::OutOfRange { .. })
        ));
        assert!(matches!(
            lun.write(u64::MAX, &b, true),
            Err(DeviceError::OutOfRange { .. })
        ));
        assert!(matches!(
            lun.write_zeroes(15, 2),
            Err(DeviceError::OutOfRange { .. })
        ));
        assert!(matches!(
            lun.read(0, &mut [0; 10]),
            Err(DeviceError::BadBufferLength { .. })
        ));
        // The file never grew past its size.
        assert_eq!(
            std::fs::metadata(dir.path().join("l")).unwrap().len(),
            16 * 4096
        );
    }

    #[test]
    fn test_open_rejects_bad_sizes_and_open_or_create_grows() {
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
            l.write(3, &[1; 512], true).unwrap();
        }
        let l = FileLun::open_or_create(&g, 8, 512, Tier::Ssd).unwrap();
        assert_eq!(l.block_count(), 8);
        let mut b = [0; 512];
        l.read(3, &mut b).unwrap();
        assert_eq!(b, [1; 512]);
        assert!(FileLun::open_or_create(&g, 2, 512, Tier::Ssd).is_err());
        assert!(FileLun::create(&dir.path().join("z"), 0, 512, Tier::Ssd).is_err());
    }
}
