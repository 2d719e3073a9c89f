//! A logical unit of another node as a [`BlockDevice`]: every operation becomes an FCP command
//! through an [`Initiator`] (SBC-3 READ(16), WRITE(16) with FUA, SYNCHRONIZE CACHE(16),
//! UNMAP), so a target can serve a LUN whose blocks live elsewhere — what a virtualization
//! controller's forwarded volume is.
//!
//! ```text
//!  host ─FCP─► [target ─ engine ─ RemoteLun] node [initiator] ─FCP─► other node's LUN
//! ```
//!
//! The node that serves the `RemoteLun` may be the very node whose initiator it uses: the
//! target runs each command as its own task, so a command waits for the remote answer without
//! holding the node's core, a thread or a lock.
//!
//! Errors keep their meaning on the way back: a CHECK CONDITION of the remote LUN is relayed
//! with its sense data ([`DeviceError::Check`]); a remote LUN that cannot be reached (time-out,
//! link down, no login) is ABORTED COMMAND / LOGICAL UNIT COMMUNICATION FAILURE or TIME-OUT
//! ([`DeviceError::Unreachable`]), which an initiator may retry.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use fc_frames::scsi::Lun;
use fc_frames::FcId;

use super::initiator::{Initiator, ScsiError};
use crate::node::NodeError;
use crate::scsi::device::check_blocks;
use crate::scsi::{BlockDevice, DeviceError, Tier};

/// Blocks one forwarded READ or WRITE moves at most (8 MiB of 512-byte blocks; longer
/// requests are split).
const MAX_BLOCKS_PER_COMMAND: u64 = 16384;
/// Blocks one forwarded UNMAP frees at most (what this project's targets accept, VPD 0xB0).
const MAX_UNMAP_BLOCKS: u64 = 1 << 22;

/// A LUN on another node, reached through an FCP initiator.
#[derive(Debug)]
pub struct RemoteLun {
    init: Initiator,
    target: FcId,
    lun: Lun,
    block_size: u32,
    blocks: AtomicU64,
    tier: Tier,
}

impl RemoteLun {
    /// Opens `lun` of the FCP target at `target` (which `init`'s node is logged in with): its
    /// size from READ CAPACITY(16), its tier from VPD page 0xB1 (SSD when it does not say).
    pub async fn open(init: Initiator, target: FcId, lun: Lun) -> Result<RemoteLun, ScsiError> {
        let cap = init.read_capacity(target, lun).await?;
        let tier = init
            .tier(target, lun)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        Ok(RemoteLun {
            init,
            target,
            lun,
            block_size: cap.block_size(),
            blocks: AtomicU64::new(cap.blocks()),
            tier,
        })
    }

    /// The remote port and LUN.
    pub fn address(&self) -> (FcId, Lun) {
        (self.target, self.lun)
    }

    /// Reads the remote capacity again (after CAPACITY DATA HAS CHANGED); the new block count.
    pub async fn refresh(&self) -> Result<u64, ScsiError> {
        let cap = self.init.read_capacity(self.target, self.lun).await?;
        self.blocks.store(cap.blocks(), Ordering::Relaxed);
        Ok(cap.blocks())
    }

    fn check(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        check_blocks(lba, blocks, self.block_count())
    }
}

/// What a failed forwarded command means to the engine.
fn device_error(e: ScsiError) -> DeviceError {
    match e {
        ScsiError::CheckCondition(sense) => DeviceError::Check(sense),
        ScsiError::Node(NodeError::TimedOut) => DeviceError::Unreachable {
            timed_out: true,
            source: io::Error::new(io::ErrorKind::TimedOut, e),
        },
        other => DeviceError::Unreachable {
            timed_out: false,
            source: io::Error::other(other),
        },
    }
}

#[async_trait]
impl BlockDevice for RemoteLun {
    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.blocks.load(Ordering::Relaxed)
    }

    fn tier(&self) -> Tier {
        self.tier
    }

    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        self.check(lba, blocks)?;
        if blocks <= MAX_BLOCKS_PER_COMMAND {
            // Fits u32: at most MAX_BLOCKS_PER_COMMAND.
            return self
                .init
                .read(self.target, self.lun, lba, blocks as u32, self.block_size)
                .await
                .map_err(device_error);
        }
        let mut out = BytesMut::new();
        let mut at = lba;
        while at < lba + blocks {
            let n = MAX_BLOCKS_PER_COMMAND.min(lba + blocks - at);
            let part = self
                .init
                .read(self.target, self.lun, at, n as u32, self.block_size)
                .await
                .map_err(device_error)?;
            out.extend_from_slice(&part);
            at += n;
        }
        Ok(out.freeze())
    }

    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        let bs = u64::from(self.block_size);
        let blocks = data.len() as u64 / bs;
        if data.len() as u64 % bs != 0 {
            return Err(DeviceError::BadBufferLength {
                len: data.len(),
                block_size: self.block_size,
            });
        }
        self.check(lba, blocks)?;
        let mut at = 0;
        while at < blocks {
            let n = MAX_BLOCKS_PER_COMMAND.min(blocks - at);
            let part = data.slice((at * bs) as usize..((at + n) * bs) as usize);
            self.init
                .write(self.target, self.lun, lba + at, part, self.block_size, fua)
                .await
                .map_err(device_error)?;
            at += n;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.init
            .synchronize_cache(self.target, self.lun)
            .await
            .map_err(device_error)
    }

    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.check(lba, blocks)?;
        let mut at = lba;
        while at < lba + blocks {
            let n = MAX_UNMAP_BLOCKS.min(lba + blocks - at);
            self.init
                .unmap(self.target, self.lun, &[(at, n as u32)])
                .await
                .map_err(device_error)?;
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::scsi::{AdditionalSense, Sense, SenseKey};

    use super::*;

    #[test]
    fn test_errors_keep_their_meaning() {
        let s = Sense::lba_out_of_range();
        assert_eq!(device_error(ScsiError::CheckCondition(s)).sense(), s);
        let t = device_error(ScsiError::Node(NodeError::TimedOut)).sense();
        assert_eq!(t.key, SenseKey::ABORTED_COMMAND);
        assert_eq!(
            t.additional,
            AdditionalSense::LOGICAL_UNIT_COMMUNICATION_TIME_OUT
        );
        let d = device_error(ScsiError::Node(NodeError::LinkDown)).sense();
        assert_eq!(d.key, SenseKey::ABORTED_COMMAND);
        assert_eq!(
            d.additional,
            AdditionalSense::LOGICAL_UNIT_COMMUNICATION_FAILURE
        );
    }
}
