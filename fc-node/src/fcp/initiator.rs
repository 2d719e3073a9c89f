//! The FCP initiator: SCSI commands to a target's logical units over a [`Node`].
//!
//! [`Initiator::command`] is the general form: it sends FCP_CMND, answers each FCP_XFER_RDY
//! with the data-out bytes it asks for (at its FCP_DATA_RO, up to its FCP_BURST_LEN, cut into
//! frames of the negotiated size by the exchange manager), gathers FCP_DATA, and returns the
//! status, sense and residual of FCP_RSP. The typed helpers (`inquiry`, `read_capacity`,
//! `read`, `write`, ...) build the CDB, and turn anything but GOOD into a [`ScsiError`] that
//! carries the sense data.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fc_frames::fcp::{DataDirection, FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, Residual, RspCode};
use fc_frames::scsi::cdb::{
    Inquiry, Read, ReadCapacity16, ReportLuns, SyncCacheSize, SynchronizeCache, TestUnitReady,
    Write,
};
use fc_frames::scsi::data::{
    Capacity, InquiryData, ReadCapacity16Data, ReportLunsData, Vpd, VpdPage,
};
use fc_frames::scsi::{Lun, ScsiStatus, Sense};
use fc_frames::{FcId, FcType, RCtl};

use crate::exchange::Outbound;
use crate::node::{Node, NodeError};
use crate::scsi::Tier;

/// The data phase of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPhase {
    /// No data.
    None,
    /// Data-in of at most this many bytes (FCP_DL).
    In(u32),
    /// These bytes out (FCP_DL is their length).
    Out(Bytes),
}

/// How a command ended, status and all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// SCSI status.
    pub status: ScsiStatus,
    /// Sense data, with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Data-in received.
    pub data: Bytes,
    /// FCP_RESID against FCP_DL.
    pub residual: Residual,
}

/// Why a SCSI command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScsiError {
    /// CHECK CONDITION, with the sense data.
    #[error("CHECK CONDITION: {0}")]
    CheckCondition(Sense),
    /// Another status than GOOD or CHECK CONDITION (BUSY, RESERVATION CONFLICT, ...).
    #[error("SCSI status {0}")]
    Status(ScsiStatus),
    /// The target answered with an FCP_RSP_INFO failure code.
    #[error("FCP response code: {0}")]
    Response(RspCode),
    /// The exchange failed: time-out, link down, abort.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The target's answer broke the protocol or its data did not decode.
    #[error("bad response: {0}")]
    Protocol(String),
}

impl ScsiError {
    /// The sense data, for CHECK CONDITION.
    pub fn sense(&self) -> Option<&Sense> {
        match self {
            ScsiError::CheckCondition(s) => Some(s),
            _ => None,
        }
    }
}

/// An FCP initiator on a node.
#[derive(Debug, Clone)]
pub struct Initiator {
    node: Node,
    timeout: Duration,
}

impl Initiator {
    /// An initiator whose commands time out after 30 s.
    pub fn new(node: Node) -> Initiator {
        Initiator {
            node,
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets the command time-out: a command not done by then is aborted (ABTS) and fails
    /// with [`NodeError::TimedOut`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Initiator {
        self.timeout = timeout;
        self
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sends one command and returns how it ended; `Err` only when it did not end with an
    /// FCP_RSP carrying a SCSI status.
    pub async fn command(
        &self,
        target: FcId,
        lun: Lun,
        cdb: &[u8],
        phase: DataPhase,
    ) -> Result<Completion, ScsiError> {
        let (direction, dl, out) = match phase {
            DataPhase::None => (DataDirection::None, 0, Bytes::new()),
            DataPhase::In(n) => (DataDirection::Read, n, Bytes::new()),
            DataPhase::Out(b) => {
                let n = u32::try_from(b.len())
                    .map_err(|_| ScsiError::Protocol("data-out longer than 4 GiB".into()))?;
                (DataDirection::Write, n, b)
            }
        };
        let cmnd = FcpCmndRepr::new(lun, cdb, direction, dl)
            .map_err(|e| ScsiError::Protocol(format!("CDB: {e}")))?;
        let seq = Outbound::new(RCtl::UNSOLICITED_COMMAND, cmnd.to_vec());
        let mut x = self.node.exchange(target, FcType::FCP, seq, self.timeout);
        let mut data = DataIn::default();
        loop {
            let seq = x.next().await?;
            match seq.header.r_ctl {
                RCtl::DATA_DESCRIPTOR => {
                    let xfer = FcpXferRdyRepr::parse(&seq.payload)
                        .map_err(|e| ScsiError::Protocol(format!("FCP_XFER_RDY: {e}")))?;
                    let from = xfer.data_ro as usize;
                    let to = from.saturating_add(xfer.burst_len as usize);
                    let Some(burst) = (to <= out.len() && from < to).then(|| out.slice(from..to))
                    else {
                        return Err(ScsiError::Protocol(format!(
                            "FCP_XFER_RDY asks for bytes {from}..{to} of {}",
                            out.len()
                        )));
                    };
                    x.send(
                        Outbound::new(RCtl::SOLICITED_DATA, burst)
                            .with_relative_offset(xfer.data_ro),
                    );
                }
                RCtl::SOLICITED_DATA => {
                    data.add(seq.header.parameter, seq.payload, dl)?;
                }
                RCtl::COMMAND_STATUS => {
                    let rsp = FcpRspRepr::parse(&seq.payload)
                        .map_err(|e| ScsiError::Protocol(format!("FCP_RSP: {e}")))?;
                    return completion(rsp, data.finish());
                }
                other => {
                    return Err(ScsiError::Protocol(format!(
                        "unexpected R_CTL {other} in an FCP exchange"
                    )))
                }
            }
        }
    }

    /// Sends one command that must end GOOD; its data-in.
    pub async fn execute(
        &self,
        target: FcId,
        lun: Lun,
        cdb: &[u8],
        phase: DataPhase,
    ) -> Result<Bytes, ScsiError> {
        let c = self.command(target, lun, cdb, phase).await?;
        match (c.status, c.sense) {
            (ScsiStatus::GOOD | ScsiStatus::CONDITION_MET, _) => Ok(c.data),
            (ScsiStatus::CHECK_CONDITION, Some(sense)) => Err(ScsiError::CheckCondition(sense)),
            (status, _) => Err(ScsiError::Status(status)),
        }
    }

    /// TEST UNIT READY.
    pub async fn test_unit_ready(&self, target: FcId, lun: Lun) -> Result<(), ScsiError> {
        let cdb = TestUnitReady::default().to_vec();
        self.execute(target, lun, &cdb, DataPhase::None).await?;
        Ok(())
    }

    /// Standard INQUIRY data.
    pub async fn inquiry(&self, target: FcId, lun: Lun) -> Result<InquiryData, ScsiError> {
        let cdb = Inquiry::standard(255).to_vec();
        let data = self.execute(target, lun, &cdb, DataPhase::In(255)).await?;
        InquiryData::parse(&data).map_err(|e| ScsiError::Protocol(format!("INQUIRY data: {e}")))
    }

    /// A vital product data page.
    pub async fn vpd(&self, target: FcId, lun: Lun, page: u8) -> Result<VpdPage, ScsiError> {
        let cdb = Inquiry::vpd(page, 0xFFFF).to_vec();
        let data = self
            .execute(target, lun, &cdb, DataPhase::In(0xFFFF))
            .await?;
        Vpd::parse(&data)
            .map(|v| v.page)
            .map_err(|e| ScsiError::Protocol(format!("VPD page {page:#04x}: {e}")))
    }

    /// The tier a disk reports: the MEDIUM ROTATION RATE of VPD page 0xB1; `None` when the
    /// page or the rate is not one of ours.
    pub async fn tier(&self, target: FcId, lun: Lun) -> Result<Option<Tier>, ScsiError> {
        match self.vpd(target, lun, 0xB1).await? {
            VpdPage::BlockDeviceCharacteristics(b) => Ok(Tier::from_rotation_rate(b.rotation_rate)),
            _ => Ok(None),
        }
    }

    /// READ CAPACITY(16): blocks and block size.
    pub async fn read_capacity(&self, target: FcId, lun: Lun) -> Result<Capacity, ScsiError> {
        let cdb = ReadCapacity16::new(32).to_vec();
        let data = self.execute(target, lun, &cdb, DataPhase::In(32)).await?;
        let rc = ReadCapacity16Data::parse(&data)
            .map_err(|e| ScsiError::Protocol(format!("READ CAPACITY(16) data: {e}")))?;
        Capacity::new(rc.returned_lba.saturating_add(1), rc.block_length)
            .map_err(|e| ScsiError::Protocol(format!("READ CAPACITY(16) data: {e}")))
    }

    /// REPORT LUNS (through LUN 0, which every target answers).
    pub async fn report_luns(&self, target: FcId) -> Result<Vec<Lun>, ScsiError> {
        let len = 16 + 8 * 256;
        let cdb = ReportLuns::new(len).to_vec();
        let data = self
            .execute(target, Lun::ZERO, &cdb, DataPhase::In(len))
            .await?;
        ReportLunsData::parse(&data)
            .map(|d| d.luns)
            .map_err(|e| ScsiError::Protocol(format!("REPORT LUNS data: {e}")))
    }

    /// READ `blocks` blocks of `block_size` bytes from `lba`.
    pub async fn read(
        &self,
        target: FcId,
        lun: Lun,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<Bytes, ScsiError> {
        let len = blocks
            .checked_mul(block_size)
            .ok_or_else(|| ScsiError::Protocol("read longer than 4 GiB".into()))?;
        let cdb = Read::new(lba, blocks).to_vec();
        let c = self.execute(target, lun, &cdb, DataPhase::In(len)).await?;
        if c.len() != len as usize {
            return Err(ScsiError::Protocol(format!(
                "READ returned {} bytes of {len}",
                c.len()
            )));
        }
        Ok(c)
    }

    /// WRITE `data` (whole blocks of `block_size`) at `lba`; with `fua`, GOOD means it is on
    /// stable storage.
    pub async fn write(
        &self,
        target: FcId,
        lun: Lun,
        lba: u64,
        data: Bytes,
        block_size: u32,
        fua: bool,
    ) -> Result<(), ScsiError> {
        let blocks = (block_size > 0 && data.len() % block_size as usize == 0)
            .then(|| u32::try_from(data.len() / block_size as usize).ok())
            .flatten()
            .ok_or_else(|| {
                ScsiError::Protocol(format!(
                    "{} bytes is not a whole number of {block_size}-byte blocks",
                    data.len()
                ))
            })?;
        let mut w = Write::new(lba, blocks);
        w.fua = fua;
        self.execute(target, lun, &w.to_vec(), DataPhase::Out(data))
            .await?;
        Ok(())
    }

    /// SYNCHRONIZE CACHE(16) of the whole LUN: GOOD means every write before it is durable.
    pub async fn synchronize_cache(&self, target: FcId, lun: Lun) -> Result<(), ScsiError> {
        let cdb = SynchronizeCache {
            size: SyncCacheSize::Sixteen,
            ..SynchronizeCache::default()
        }
        .to_vec();
        self.execute(target, lun, &cdb, DataPhase::None).await?;
        Ok(())
    }
}

fn completion(rsp: FcpRspRepr, data: Bytes) -> Result<Completion, ScsiError> {
    if let Some(info) = rsp.rsp_info {
        if info.code != RspCode::TMF_COMPLETE {
            return Err(ScsiError::Response(info.code));
        }
    }
    let sense = match rsp.sense() {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return Err(ScsiError::Protocol(format!("sense data: {e}"))),
        None => None,
    };
    Ok(Completion {
        status: rsp.status,
        sense,
        data,
        residual: rsp.residual,
    })
}

/// FCP_DATA gathered by relative offset; a single sequence at offset 0 is kept without a copy.
#[derive(Default)]
struct DataIn {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl DataIn {
    fn add(&mut self, offset: u32, payload: Bytes, dl: u32) -> Result<(), ScsiError> {
        let have = self.len();
        let end = u64::from(offset) + payload.len() as u64;
        if offset as usize != have || end > u64::from(dl) {
            return Err(ScsiError::Protocol(format!(
                "FCP_DATA at offset {offset} with {} bytes, after {have} of FCP_DL {dl}",
                payload.len()
            )));
        }
        match (&mut self.first, &mut self.rest) {
            (None, None) => self.first = Some(payload),
            (Some(first), None) => {
                let mut buf = BytesMut::with_capacity(dl as usize);
                buf.extend_from_slice(first);
                buf.extend_from_slice(&payload);
                self.first = None;
                self.rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&payload),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.rest.as_ref().map_or(0, BytesMut::len)
    }

    fn finish(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(buf)) => buf.freeze(),
            (Some(b), None) => b,
            (None, None) => Bytes::new(),
        }
    }
}
