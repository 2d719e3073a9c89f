//! The FCP initiator: SCSI commands to a target's logical units over a [`Node`].
//!
//! [`Initiator::command`] is the general form: it sends FCP_CMND, answers each FCP_XFER_RDY
//! with the data-out bytes it asks for (at its FCP_DATA_RO, up to its FCP_BURST_LEN, cut into
//! frames of the negotiated size by the exchange manager), gathers FCP_DATA, and returns the
//! status, sense and residual of FCP_RSP. The typed helpers (`inquiry`, `read_capacity`,
//! `read`, `write`, `verify`, `unmap`, ...) build the CDB, and turn anything but GOOD into a
//! [`ScsiError`] that carries the sense data.
//!
//! # Aborting (FCP-4 §12.3)
//! - One command: drop its future. The [`Exchange`](crate::node::Exchange) it owns is then
//!   aborted with ABTS, which the target takes as ABORT TASK: the command never completes
//!   there, and nothing more arrives here.
//! - Task management: [`Initiator::abort_task_set`], [`Initiator::clear_task_set`],
//!   [`Initiator::logical_unit_reset`] and [`Initiator::target_reset`] send an FCP_CMND with
//!   the TASK MANAGEMENT FLAGS and return the target's RSP_CODE as a [`TmfResponse`]. The
//!   target sends no FCP_RSP for the commands the function aborted; when it completed, this
//!   initiator terminates the exchanges of its own commands sent before it to the logical
//!   units it names with ABTS (recovery abort), and those commands fail with
//!   [`ScsiError::Aborted`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fc_frames::fcp::{
    DataDirection, FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr, Residual, RspCode, TmFlags,
};
use fc_frames::scsi::cdb::{
    Control, Inquiry, Read, ReadCapacity16, ReportLuns, SyncCacheSize, SynchronizeCache,
    TestUnitReady, Unmap, Verify, VerifySize, Write,
};
use fc_frames::scsi::data::{
    Capacity, InquiryData, ReadCapacity16Data, ReportLunsData, UnmapDescriptor, UnmapParameterList,
    Vpd, VpdPage,
};
use fc_frames::scsi::{Lun, ScsiStatus, Sense, SenseKey};
use fc_frames::{FcId, FcType, RCtl};
use tokio::sync::oneshot;
use tracing::Instrument;

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
    /// A task management function this initiator sent aborted the command: the target sent
    /// no status, and the exchange was aborted with ABTS.
    #[error("aborted by task management")]
    Aborted,
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

/// How the target answered a task management function (FCP-4 Table 31, RSP_CODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TmfResponse {
    /// 00h: task management function complete.
    Complete,
    /// 04h: task management function not supported.
    NotSupported,
    /// 05h: task management function failed.
    Failed,
    /// 09h: task management function incorrect logical unit number.
    IncorrectLun,
    /// Any other code.
    Other(RspCode),
}

impl From<RspCode> for TmfResponse {
    fn from(code: RspCode) -> TmfResponse {
        match code {
            RspCode::TMF_COMPLETE => TmfResponse::Complete,
            RspCode::TMF_NOT_SUPPORTED => TmfResponse::NotSupported,
            RspCode::TMF_FAILED => TmfResponse::Failed,
            RspCode::TMF_INCORRECT_LUN => TmfResponse::IncorrectLun,
            other => TmfResponse::Other(other),
        }
    }
}

/// What a VERIFY compares the medium with (SBC-3 BYTCHK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyCheck {
    /// 00b: only read the blocks (a read error fails the command).
    Medium,
    /// 01b: compare the blocks with these bytes (as many blocks).
    Compare(Bytes),
    /// 11b: compare every block with this one block.
    CompareEach(Bytes),
}

/// An FCP initiator on a node.
#[derive(Debug, Clone)]
pub struct Initiator {
    node: Node,
    timeout: Duration,
    in_flight: Arc<Mutex<InFlight>>,
}

/// Commands in progress, to abort after a task management function.
#[derive(Debug, Default)]
struct InFlight {
    next: u64,
    commands: HashMap<u64, (FcId, Lun, oneshot::Sender<()>)>,
}

/// A command's place in [`InFlight`], given up when the command ends.
struct Registration {
    in_flight: Arc<Mutex<InFlight>>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.in_flight).commands.remove(&self.id);
    }
}

fn lock(m: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    // The map stays a valid map across a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Initiator {
    /// An initiator whose commands time out after 30 s.
    pub fn new(node: Node) -> Initiator {
        Initiator {
            node,
            timeout: Duration::from_secs(30),
            in_flight: Arc::default(),
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
        // The OX_ID is filled in when the node has opened the exchange.
        let span = tracing::debug_span!(
            "fcp_command",
            d_id = %target,
            %lun,
            op = format_args!("0x{:02x}", cdb.first().copied().unwrap_or(0)),
            ox_id = tracing::field::Empty,
        );
        let done = self
            .command_in_span(target, lun, cdb, phase)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match &done {
            Ok(c) => tracing::debug!(status = ?c.status, data = c.data.len(), "command ended"),
            Err(e) => tracing::debug!(error = %e, "command failed"),
        });
        done
    }

    async fn command_in_span(
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
        let (_registration, mut aborted) = self.register(target, lun);
        let seq = Outbound::new(RCtl::UNSOLICITED_COMMAND, cmnd.to_vec());
        let mut x = self.node.exchange(target, FcType::FCP, seq, self.timeout);
        let mut data = DataIn::default();
        loop {
            // Returning drops `x`: an exchange that has not ended is aborted with ABTS.
            let seq = tokio::select! {
                biased;
                _ = &mut aborted => return Err(ScsiError::Aborted),
                seq = x.next() => seq?,
            };
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

    /// VERIFY(16) of `blocks` blocks from `lba`: GOOD when the blocks read back (and compare
    /// equal, with [`VerifyCheck::Compare`] or [`VerifyCheck::CompareEach`]); a miscompare is
    /// CHECK CONDITION, MISCOMPARE.
    pub async fn verify(
        &self,
        target: FcId,
        lun: Lun,
        lba: u64,
        blocks: u32,
        check: VerifyCheck,
    ) -> Result<(), ScsiError> {
        let (bytchk, phase) = match check {
            VerifyCheck::Medium => (0, DataPhase::None),
            VerifyCheck::Compare(b) => (1, DataPhase::Out(b)),
            VerifyCheck::CompareEach(b) => (3, DataPhase::Out(b)),
        };
        let cdb = Verify {
            size: VerifySize::Sixteen,
            vrprotect: 0,
            dpo: false,
            bytchk,
            lba,
            blocks,
            group: 0,
            control: Control::empty(),
        }
        .to_vec();
        self.execute(target, lun, &cdb, phase).await?;
        Ok(())
    }

    /// UNMAP these `(lba, blocks)` ranges: the target may free their storage, and they read
    /// back as zeros.
    pub async fn unmap(
        &self,
        target: FcId,
        lun: Lun,
        ranges: &[(u64, u32)],
    ) -> Result<(), ScsiError> {
        let list = UnmapParameterList {
            descriptors: ranges
                .iter()
                .map(|&(lba, blocks)| UnmapDescriptor { lba, blocks })
                .collect(),
        }
        .to_vec();
        let param_list_len = u16::try_from(list.len())
            .map_err(|_| ScsiError::Protocol(format!("{} UNMAP ranges", ranges.len())))?;
        let cdb = Unmap {
            anchor: false,
            group: 0,
            param_list_len,
            control: Control::empty(),
        }
        .to_vec();
        self.execute(target, lun, &cdb, DataPhase::Out(list.into()))
            .await?;
        Ok(())
    }

    /// ABORT TASK SET: the target aborts every command of this initiator to `lun`.
    pub async fn abort_task_set(&self, target: FcId, lun: Lun) -> Result<TmfResponse, ScsiError> {
        self.task_management(target, lun, TmFlags::ABORT_TASK_SET, Some(lun))
            .await
    }

    /// CLEAR TASK SET: the target aborts every command to `lun`, of every initiator.
    pub async fn clear_task_set(&self, target: FcId, lun: Lun) -> Result<TmfResponse, ScsiError> {
        self.task_management(target, lun, TmFlags::CLEAR_TASK_SET, Some(lun))
            .await
    }

    /// LOGICAL UNIT RESET: the target aborts every command to `lun` and resets it.
    pub async fn logical_unit_reset(
        &self,
        target: FcId,
        lun: Lun,
    ) -> Result<TmfResponse, ScsiError> {
        self.task_management(target, lun, TmFlags::LOGICAL_UNIT_RESET, Some(lun))
            .await
    }

    /// TARGET RESET: a logical unit reset of every logical unit of the target.
    pub async fn target_reset(&self, target: FcId) -> Result<TmfResponse, ScsiError> {
        self.task_management(target, Lun::ZERO, TmFlags::TARGET_RESET, None)
            .await
    }

    /// Sends a task management request with `flags` (any combination: the target answers
    /// the ones it does not support with RSP_CODE 04h) and returns the target's RSP_CODE.
    /// When it completed, this initiator's commands sent before it to `scope` (one LUN, or
    /// every LUN of the target) are aborted with ABTS.
    pub async fn task_management(
        &self,
        target: FcId,
        lun: Lun,
        flags: TmFlags,
        scope: Option<Lun>,
    ) -> Result<TmfResponse, ScsiError> {
        let before = lock(&self.in_flight).next;
        let cmnd = FcpCmndRepr::task_management(lun, flags);
        let seq = Outbound::new(RCtl::UNSOLICITED_COMMAND, cmnd.to_vec());
        let mut x = self.node.exchange(target, FcType::FCP, seq, self.timeout);
        let reply = x.next().await?;
        if reply.header.r_ctl != RCtl::COMMAND_STATUS {
            return Err(ScsiError::Protocol(format!(
                "R_CTL {} in answer to a task management request",
                reply.header.r_ctl
            )));
        }
        let rsp = FcpRspRepr::parse(&reply.payload)
            .map_err(|e| ScsiError::Protocol(format!("FCP_RSP: {e}")))?;
        let code = rsp.rsp_info.map(|i| i.code).ok_or_else(|| {
            ScsiError::Protocol("FCP_RSP to a task management request without RSP_CODE".into())
        })?;
        let response = TmfResponse::from(code);
        if response == TmfResponse::Complete {
            // FCP-4 §12.3: the exchanges of the aborted commands are the initiator's to
            // terminate (recovery abort).
            let mut in_flight = lock(&self.in_flight);
            let doomed: Vec<u64> = in_flight
                .commands
                .iter()
                .filter(|(&id, (t, l, _))| {
                    id < before && *t == target && scope.is_none_or(|s| s == *l)
                })
                .map(|(&id, _)| id)
                .collect();
            for id in doomed {
                if let Some((_, _, abort)) = in_flight.commands.remove(&id) {
                    let _ = abort.send(());
                }
            }
        }
        Ok(response)
    }

    fn register(&self, target: FcId, lun: Lun) -> (Registration, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut in_flight = lock(&self.in_flight);
        let id = in_flight.next;
        in_flight.next += 1;
        in_flight.commands.insert(id, (target, lun, tx));
        (
            Registration {
                in_flight: self.in_flight.clone(),
                id,
            },
            rx,
        )
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

/// Runs `command` again while it ends in a unit attention (it was not performed: the attention
/// is news for the I_T nexus — a LUN added, a power on — not a failure), at most `again` times
/// more; then whatever it ended in.
pub async fn past_attentions<T, F, Fut>(again: usize, mut command: F) -> Result<T, ScsiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ScsiError>>,
{
    let mut left = again;
    loop {
        match command().await {
            Err(ScsiError::CheckCondition(s)) if s.key == SenseKey::UNIT_ATTENTION && left > 0 => {
                tracing::info!(sense = %s, "unit attention: the command is sent again");
                left -= 1;
            }
            other => return other,
        }
    }
}
