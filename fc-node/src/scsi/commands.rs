//! What each command does (SPC-4, SBC-3, SSC-3): the device server's side of a task, once
//! the task manager ([`super::engine`]) let it start. Also what the transport solicits as
//! data-out for a command ([`data_out_len`]).
//!
//! Disk commands work on a snapshot of the unit's state taken when they start (capacity, WCE,
//! D_SENSE); MODE SELECT writes its changes back when it ends. Device I/O is awaited with no
//! lock held.

use bytes::{Bytes, BytesMut};
use fc_frames::fcp::Residual;
use fc_frames::scsi::cdb::{self, Cdb, CdbSize, OperationCode, VerifySize};
use fc_frames::scsi::data::mode::{CachingFlags, ControlFlags};
use fc_frames::scsi::data::vpd::{BdcFlags, LbpFlags, ProvisioningType};
use fc_frames::scsi::data::Peripheral;
use fc_frames::scsi::data::{
    BlockDescriptors, BlockDeviceCharacteristics, BlockLimits, CachingPage, Capacity, ControlPage,
    Designator, DeviceSpecific, InquiryData, LogicalBlockProvisioning, LongBlockDescriptor,
    ModeForm, ModePage, ModeParameters, ReportLunsData, ShortBlockDescriptor, UnmapParameterList,
    VpdCode, VpdPage,
};
use fc_frames::scsi::sense::SenseFormat;
use fc_frames::scsi::{AdditionalSense, Sense, SenseKey};

use super::device::DeviceError;
use super::engine::{Disk, Kind, Nexus, ScsiResponse, Shared, TargetPort, Unit};

/// Largest WRITE SAME / UNMAP range (blocks) per command, reported in VPD page 0xB0.
pub(super) const MAX_UNMAP_BLOCKS: u32 = 1 << 22;
/// Most UNMAP block descriptors per command.
const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Bytes of pattern written per device call for WRITE SAME.
const WRITE_SAME_CHUNK: u64 = 1 << 20;
/// Bytes read per device call for VERIFY.
const VERIFY_CHUNK: u64 = 1 << 20;

/// Early exit from a command handler with the response to send.
type Result<T> = std::result::Result<T, ScsiResponse>;

/// Data-out bytes to solicit for `cdb` to disk `d` of capacity `cap`: see
/// [`ScsiEngine::data_out_len`](super::ScsiEngine::data_out_len).
pub(super) fn data_out_len(cdb: &Cdb, d: &Disk, cap: Capacity, fcp_dl: u32) -> u32 {
    let bs = u64::from(cap.block_size());
    let needed: u64 = match cdb {
        Cdb::Write(w) => {
            let n = u64::from(w.blocks) * bs;
            let rejected = n > u64::from(fcp_dl)
                || w.wrprotect != 0
                || w.blocks > d.config.max_transfer_blocks
                || !cap.contains(w.lba, w.blocks.into());
            if rejected {
                return 0;
            }
            n
        }
        Cdb::Verify(v) if v.bytchk == 1 || v.bytchk == 3 => {
            let n = v.data_out_bytes(cap.block_size()).unwrap_or(u64::MAX);
            let rejected = n > u64::from(fcp_dl)
                || v.vrprotect != 0
                || (v.bytchk == 1 && v.blocks > d.config.max_transfer_blocks)
                || !cap.contains(v.lba, v.blocks.into());
            if rejected {
                return 0;
            }
            n
        }
        Cdb::WriteSame16(ws) if !ws.ndob => bs,
        Cdb::Unmap(u) => u64::from(u.param_list_len),
        Cdb::ModeSelect(m) => u64::from(m.param_list_len),
        _ => 0,
    };
    // min with a u32 fits a u32.
    needed.min(u64::from(fcp_dl)) as u32
}

/// A command to a LUN with no logical unit (SPC-4 §6.6.2, §6.33, §6.39).
pub(super) fn no_unit(
    op: OperationCode,
    cdb_bytes: &[u8],
    fcp_dl: u32,
    report: ReportLunsData,
) -> ScsiResponse {
    let lun_not_supported = ScsiResponse::check(Sense::lun_not_supported(), fcp_dl);
    match op {
        // SPC-4 §6.6.2: for a LUN the device server cannot support, standard INQUIRY data has
        // PERIPHERAL QUALIFIER 011b and PERIPHERAL DEVICE TYPE 1Fh.
        OperationCode::INQUIRY => match Cdb::parse(cdb_bytes) {
            Ok(Cdb::Inquiry(i)) if !i.evpd => {
                let data = InquiryData::new(Peripheral::NO_LUN, "", "", "").to_vec();
                ScsiResponse::good(cut(data, i.alloc_len.into()), fcp_dl)
            }
            Ok(_) => lun_not_supported,
            Err(e) => ScsiResponse::check(e.sense(), fcp_dl),
        },
        // SPC-4 §6.33: REPORT LUNS is answered on LUN 0 whether or not it has a unit, and on
        // any other LUN.
        OperationCode::REPORT_LUNS => match Cdb::parse(cdb_bytes) {
            Ok(Cdb::ReportLuns(r)) => report_luns(r, report, fcp_dl),
            Ok(_) => lun_not_supported,
            Err(e) => ScsiResponse::check(e.sense(), fcp_dl),
        },
        // SPC-4 §6.39: REQUEST SENSE to a LUN that is not there returns GOOD with sense data
        // LOGICAL UNIT NOT SUPPORTED.
        OperationCode::REQUEST_SENSE => match Cdb::parse(cdb_bytes) {
            Ok(Cdb::RequestSense(r)) => {
                let s = Sense::lun_not_supported().with_format(sense_format(r.desc));
                ScsiResponse::good(cut(s.to_vec(), r.alloc_len.into()), fcp_dl)
            }
            Ok(_) => lun_not_supported,
            Err(e) => ScsiResponse::check(e.sense(), fcp_dl),
        },
        _ => lun_not_supported,
    }
}

fn report_luns(r: cdb::ReportLuns, data: ReportLunsData, fcp_dl: u32) -> ScsiResponse {
    // SPC-4 §6.33 Table 199: 0 all logical units, 1 well-known ones only (there are none
    // here), 2 both; other values are INVALID FIELD IN CDB.
    let data = match r.select_report {
        0 | 2 => data,
        1 => ReportLunsData::new(Vec::new()),
        _ => return ScsiResponse::check(Sense::invalid_field_in_cdb(2, None), fcp_dl),
    };
    ScsiResponse::good(cut(data.to_vec(), r.alloc_len as usize), fcp_dl)
}

pub(super) fn sense_format(desc: bool) -> SenseFormat {
    if desc {
        SenseFormat::Descriptor
    } else {
        SenseFormat::Fixed
    }
}

/// `data` cut at the allocation length (SPC-4 §4.2.5.6: the device server stops at the
/// allocation length and does not report it as an error).
fn cut(mut data: Vec<u8>, alloc_len: usize) -> Vec<u8> {
    data.truncate(alloc_len);
    data
}

/// `Err(CHECK CONDITION)` when `cond`, for `?`.
fn reject(cond: bool, sense: Sense, fcp_dl: u32) -> Result<()> {
    if cond {
        Err(ScsiResponse::check(sense, fcp_dl))
    } else {
        Ok(())
    }
}

/// One command to an existing logical unit.
pub(super) struct Cmd<'a> {
    pub shared: &'a Shared,
    pub unit: &'a Unit,
    pub nexus: Nexus,
    pub fcp_dl: u32,
    /// The LUN inventory when the command was received, for REPORT LUNS.
    pub report: Option<&'a ReportLunsData>,
}

impl Cmd<'_> {
    /// Runs the command: `cdb_bytes` from FCP_CMND (padding after the CDB is ignored),
    /// `data_out` the bytes received for it.
    pub async fn execute(&self, cdb_bytes: &Bytes, data_out: &Bytes) -> ScsiResponse {
        let d_sense = self.unit.lock().d_sense;
        match self.run(cdb_bytes, data_out, d_sense).await {
            Ok(r) | Err(r) => r,
        }
    }

    async fn run(&self, cdb_bytes: &[u8], data_out: &Bytes, d_sense: bool) -> Result<ScsiResponse> {
        let fcp_dl = self.fcp_dl;
        let fmt = sense_format(d_sense);
        let check = |s: Sense| ScsiResponse::check(s.with_format(fmt), fcp_dl);
        let op = OperationCode(cdb_bytes.first().copied().unwrap_or(0));
        // Tape: SSC-3 gives several disk opcodes other meanings, so only the commands served
        // are parsed; everything else is INVALID COMMAND OPERATION CODE.
        if matches!(self.unit.kind, Kind::Tape(_))
            && !matches!(
                op,
                OperationCode::INQUIRY
                    | OperationCode::TEST_UNIT_READY
                    | OperationCode::READ_BLOCK_LIMITS
                    | OperationCode::REQUEST_SENSE
                    | OperationCode::REPORT_LUNS
            )
        {
            return Err(check(Sense::invalid_opcode()));
        }
        let cdb = Cdb::parse(cdb_bytes).map_err(|e| check(e.sense()))?;
        // SAM-5 §5.2: with NORMACA zero in the INQUIRY data, a CDB with NACA set shall be
        // terminated with INVALID FIELD IN CDB.
        if let Some(e) = cdb.naca_error() {
            return Err(check(e.sense()));
        }
        let peripheral = match self.unit.kind {
            Kind::Disk(_) => Peripheral::DISK,
            Kind::Tape(_) => Peripheral::TAPE,
        };
        match cdb {
            Cdb::TestUnitReady(_) => Ok(ScsiResponse::no_data(fcp_dl)),
            Cdb::RequestSense(r) => {
                let s = self
                    .shared
                    .take_unit_attention(self.unit, self.nexus)
                    .unwrap_or(Sense::new(
                        SenseKey::NO_SENSE,
                        AdditionalSense::NO_ADDITIONAL_SENSE,
                    ))
                    .with_format(sense_format(r.desc));
                Ok(ScsiResponse::good(
                    cut(s.to_vec(), r.alloc_len.into()),
                    fcp_dl,
                ))
            }
            Cdb::ReportLuns(r) => Ok(report_luns(
                r,
                self.report.cloned().unwrap_or_default(),
                fcp_dl,
            )),
            Cdb::Inquiry(i) => {
                let data = if i.evpd {
                    let page = vpd_page(self.unit, &self.shared.port, i.page_code)
                        // SPC-4 §6.6.1: an unsupported VPD page is INVALID FIELD IN CDB.
                        .ok_or_else(|| check(Sense::invalid_field_in_cdb(2, None)))?;
                    page.to_vec(peripheral)
                } else {
                    match &self.unit.kind {
                        Kind::Disk(d) => InquiryData::disk(
                            &d.config.vendor,
                            &d.config.product,
                            &d.config.revision,
                        ),
                        Kind::Tape(t) => InquiryData::tape(&t.vendor, &t.product, &t.revision),
                    }
                    .to_vec()
                };
                Ok(ScsiResponse::good(cut(data, i.alloc_len.into()), fcp_dl))
            }
            Cdb::ReadBlockLimits(r) => {
                let Kind::Tape(t) = &self.unit.kind else {
                    return Err(check(Sense::invalid_opcode()));
                };
                // SSC-4: MLOC without support for it is INVALID FIELD IN CDB.
                reject(
                    r.mloc,
                    Sense::invalid_field_in_cdb(1, Some(0)).with_format(fmt),
                    fcp_dl,
                )?;
                Ok(ScsiResponse::good(t.block_limits.to_vec(), fcp_dl))
            }
            other => {
                let Kind::Disk(d) = &self.unit.kind else {
                    return Err(check(Sense::invalid_opcode()));
                };
                let (cap, wce) = {
                    let state = self.unit.lock();
                    (state.cap, state.wce)
                };
                let Some(cap) = cap else {
                    return Err(check(Sense::internal_target_failure()));
                };
                let ctx = DiskCmd {
                    cmd: self,
                    d,
                    cap,
                    wce,
                    d_sense,
                    fmt,
                    fcp_dl,
                };
                ctx.run(other, data_out).await
            }
        }
    }
}

/// The VPD page `code`, if `unit` has it.
fn vpd_page(unit: &Unit, port: &TargetPort, code: u8) -> Option<VpdPage> {
    let (serial, naa) = match &unit.kind {
        Kind::Disk(d) => (&d.config.serial, d.config.naa),
        Kind::Tape(t) => (&t.serial, t.naa),
    };
    let mut pages = vec![VpdCode::UNIT_SERIAL_NUMBER, VpdCode::DEVICE_IDENTIFICATION];
    if let Kind::Disk(d) = &unit.kind {
        pages.push(VpdCode::BLOCK_LIMITS);
        pages.push(VpdCode::BLOCK_DEVICE_CHARACTERISTICS);
        if d.config.unmap {
            pages.push(VpdCode::LOGICAL_BLOCK_PROVISIONING);
        }
    }
    let code = VpdCode(code);
    if code == VpdCode::SUPPORTED_PAGES {
        return Some(VpdPage::supported_pages_from_codes(pages));
    }
    if !pages.contains(&code) {
        return None;
    }
    Some(match code {
        VpdCode::UNIT_SERIAL_NUMBER => VpdPage::serial_number(serial),
        VpdCode::DEVICE_IDENTIFICATION => VpdPage::DeviceIdentification(vec![
            Designator::lu_naa(naa),
            Designator::target_port_name(port.port_name),
            Designator::relative_target_port(port.relative_port),
            Designator::target_device_name(port.node_name),
        ]),
        _ => match &unit.kind {
            Kind::Disk(d) => d.block_vpd(code)?,
            Kind::Tape(_) => return None,
        },
    })
}

impl Disk {
    fn block_vpd(&self, code: VpdCode) -> Option<VpdPage> {
        let unmap_blocks = if self.config.unmap {
            MAX_UNMAP_BLOCKS
        } else {
            0
        };
        Some(match code {
            VpdCode::BLOCK_LIMITS => VpdPage::BlockLimits(BlockLimits {
                // WRITE SAME with a NUMBER OF LOGICAL BLOCKS of zero is rejected.
                wsnz: true,
                max_transfer_length: self.config.max_transfer_blocks,
                max_unmap_lba_count: unmap_blocks,
                max_unmap_block_descriptor_count: if self.config.unmap {
                    MAX_UNMAP_DESCRIPTORS
                } else {
                    0
                },
                optimal_unmap_granularity: 1,
                max_write_same_length: MAX_UNMAP_BLOCKS.into(),
                ..BlockLimits::default()
            }),
            VpdCode::BLOCK_DEVICE_CHARACTERISTICS => {
                VpdPage::BlockDeviceCharacteristics(BlockDeviceCharacteristics {
                    rotation_rate: self.dev.tier().rotation_rate(),
                    // VBULS: VERIFY with BYTCHK compares unmapped blocks too (they read as zeros).
                    flags: BdcFlags::FUAB | BdcFlags::VBULS,
                    ..BlockDeviceCharacteristics::SSD
                })
            }
            VpdCode::LOGICAL_BLOCK_PROVISIONING => {
                VpdPage::LogicalBlockProvisioning(LogicalBlockProvisioning {
                    flags: LbpFlags::LBPU | LbpFlags::LBPWS | LbpFlags::LBPRZ,
                    provisioning_type: ProvisioningType::THIN,
                    ..LogicalBlockProvisioning::default()
                })
            }
            _ => return None,
        })
    }
}

/// One block command to a disk, on a snapshot of the unit's state.
struct DiskCmd<'a> {
    cmd: &'a Cmd<'a>,
    d: &'a Disk,
    cap: Capacity,
    wce: bool,
    d_sense: bool,
    fmt: SenseFormat,
    fcp_dl: u32,
}

impl DiskCmd<'_> {
    fn check(&self, s: Sense) -> ScsiResponse {
        ScsiResponse::check(s.with_format(self.fmt), self.fcp_dl)
    }

    fn reject(&self, cond: bool, s: Sense) -> Result<()> {
        reject(cond, s.with_format(self.fmt), self.fcp_dl)
    }

    fn dev_err(&self, e: DeviceError) -> ScsiResponse {
        self.check(e.sense())
    }

    /// SBC-3 §4.5: a command that names a logical block beyond the capacity shall be
    /// terminated with LOGICAL BLOCK ADDRESS OUT OF RANGE; that covers the LBA of a zero-length
    /// transfer too, and an LBA + length that overflows.
    fn range(&self, lba: u64, blocks: u64) -> Result<()> {
        self.reject(!self.cap.contains(lba, blocks), Sense::lba_out_of_range())
    }

    fn block_size(&self) -> u64 {
        u64::from(self.cap.block_size())
    }

    fn bytes(&self, blocks: u64) -> u64 {
        blocks * self.block_size()
    }

    /// A data-out transfer of `n` bytes that FCP_DL does not cover is not executed (see the
    /// module docs of [`super`]): INVALID FIELD IN COMMAND INFORMATION UNIT, residual over.
    fn covered(&self, n: u64) -> Result<()> {
        if n > u64::from(self.fcp_dl) {
            return Err(ScsiResponse {
                residual: Residual::between(self.fcp_dl, n),
                ..self.check(Sense::illegal_request(
                    AdditionalSense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                ))
            });
        }
        Ok(())
    }

    /// The first `n` bytes of data-out.
    fn data_out(&self, data_out: &Bytes, n: u64) -> Result<Bytes> {
        match usize::try_from(n) {
            Ok(n) if n <= data_out.len() => Ok(data_out.slice(..n)),
            _ => Err(self.short_data_out()),
        }
    }

    async fn run(&self, cdb: Cdb, data_out: &Bytes) -> Result<ScsiResponse> {
        let fcp_dl = self.fcp_dl;
        match cdb {
            Cdb::ReadCapacity10(_) => {
                // SBC-3 READ CAPACITY(10): RETURNED LOGICAL BLOCK ADDRESS FFFFFFFFh when the last
                // LBA does not fit (Capacity does that).
                Ok(ScsiResponse::good(
                    self.cap.to_read_capacity_10().to_vec(),
                    fcp_dl,
                ))
            }
            Cdb::ReadCapacity16(r) => {
                let mut data = self.cap.to_read_capacity_16();
                data.lbpme = self.d.config.unmap;
                data.lbprz = self.d.config.unmap;
                Ok(ScsiResponse::good(
                    cut(data.to_vec(), r.alloc_len as usize),
                    fcp_dl,
                ))
            }
            Cdb::Read(r) => {
                self.protect(r.rdprotect)?;
                self.range(r.lba, r.blocks.into())?;
                self.max_transfer(r.blocks, r.size)?;
                if r.blocks == 0 {
                    return Ok(ScsiResponse::no_data(fcp_dl));
                }
                let data = self
                    .d
                    .dev
                    .read(r.lba, r.blocks.into())
                    .await
                    .map_err(|e| self.dev_err(e))?;
                Ok(ScsiResponse::good(data, fcp_dl))
            }
            Cdb::Write(w) => {
                self.protect(w.wrprotect)?;
                self.range(w.lba, w.blocks.into())?;
                self.max_transfer(w.blocks, w.size)?;
                let n = self.bytes(w.blocks.into());
                self.covered(n)?;
                let data = self.data_out(data_out, n)?;
                // SBC-3 WRITE: with FUA, or with the write cache disabled, the data is on the
                // medium before GOOD status.
                let fua = w.fua || !self.wce;
                if n > 0 {
                    self.d
                        .dev
                        .write(w.lba, data, fua)
                        .await
                        .map_err(|e| self.dev_err(e))?;
                }
                Ok(ScsiResponse {
                    residual: Residual::between(fcp_dl, n),
                    ..ScsiResponse::no_data(0)
                })
            }
            Cdb::Verify(v) => self.verify(v, data_out).await,
            Cdb::SynchronizeCache(s) => {
                // SBC-3 SYNCHRONIZE CACHE: NUMBER OF LOGICAL BLOCKS zero is every block from
                // the LBA to the end; the range is checked either way.
                self.range(s.lba, s.blocks.into())?;
                self.d.dev.flush().await.map_err(|e| self.dev_err(e))?;
                Ok(ScsiResponse::no_data(fcp_dl))
            }
            Cdb::WriteSame16(ws) => self.write_same(ws, data_out).await,
            Cdb::Unmap(u) => self.unmap(u, data_out).await,
            Cdb::ModeSense(m) => self.mode_sense(m),
            Cdb::ModeSelect(m) => self.mode_select(m, data_out),
            _ => Err(self.check(Sense::invalid_opcode())),
        }
    }

    /// SBC-3 VERIFY(10/12/16). BYTCHK 00b reads the blocks (a read error is MEDIUM ERROR);
    /// 01b compares them with as many blocks of data-out, 11b each of them with one block of
    /// data-out (repeated, as WRITE SAME does, to make the Data-Out Buffer); 10b is reserved.
    /// On a miscompare the command ends in MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION
    /// with INFORMATION the offset of the first differing byte from the start of that
    /// Data-Out Buffer (SBC-3 §4.18 gives the offset, as for COMPARE AND WRITE). Unmapped
    /// blocks read as zeros and are compared as such (VBULS is set in VPD page 0xB1).
    async fn verify(&self, v: cdb::Verify, data_out: &Bytes) -> Result<ScsiResponse> {
        self.protect(v.vrprotect)?;
        self.reject(v.bytchk == 2, Sense::invalid_field_in_cdb(1, Some(2)))?;
        self.range(v.lba, v.blocks.into())?;
        let bs = self.block_size();
        let (pattern, needed) = match v.bytchk {
            0 => (None, 0),
            _ if v.blocks == 0 => (None, 0),
            3 => {
                self.covered(bs)?;
                (Some(self.data_out(data_out, bs)?), bs)
            }
            _ => {
                let size = match v.size {
                    VerifySize::Ten => CdbSize::Ten,
                    VerifySize::Twelve => CdbSize::Twelve,
                    VerifySize::Sixteen => CdbSize::Sixteen,
                };
                self.max_transfer(v.blocks, size)?;
                let n = self.bytes(v.blocks.into());
                self.covered(n)?;
                (Some(self.data_out(data_out, n)?), n)
            }
        };
        let per = (VERIFY_CHUNK / bs).max(1);
        let end = v.lba + u64::from(v.blocks);
        let mut at = v.lba;
        while at < end {
            let n = per.min(end - at);
            let got = self.d.dev.read(at, n).await.map_err(|e| self.dev_err(e))?;
            if let Some(expected) = &pattern {
                // Offset of this chunk in the Data-Out Buffer.
                let base = (at - v.lba) * bs;
                let differs = if v.bytchk == 3 {
                    got.chunks(bs as usize).enumerate().find_map(|(i, block)| {
                        first_difference(block, expected).map(|o| i as u64 * bs + o)
                    })
                } else {
                    // `expected` covers every block (checked against FCP_DL and data-out).
                    let from = base as usize;
                    expected
                        .get(from..from + got.len())
                        .and_then(|want| first_difference(&got, want))
                };
                if let Some(offset) = differs {
                    return Err(self.check(Sense::miscompare(base + offset)));
                }
            }
            at += n;
        }
        Ok(ScsiResponse {
            residual: Residual::between(self.fcp_dl, needed),
            ..ScsiResponse::no_data(0)
        })
    }

    /// Fewer data-out bytes than solicited: the transport lost data.
    fn short_data_out(&self) -> ScsiResponse {
        self.check(Sense::aborted_command(AdditionalSense::DATA_PHASE_ERROR))
    }

    /// SBC-3: RDPROTECT/WRPROTECT/VRPROTECT other than zero on a logical unit without
    /// protection information is INVALID FIELD IN CDB.
    fn protect(&self, p: u8) -> Result<()> {
        self.reject(p != 0, Sense::invalid_field_in_cdb(1, Some(7)))
    }

    /// SBC-3 §6.6.4: a TRANSFER LENGTH above MAXIMUM TRANSFER LENGTH is INVALID FIELD IN CDB.
    fn max_transfer(&self, blocks: u32, size: CdbSize) -> Result<()> {
        let byte = match size {
            CdbSize::Six => 4,
            CdbSize::Ten => 7,
            CdbSize::Twelve => 6,
            CdbSize::Sixteen => 10,
        };
        self.reject(
            blocks > self.d.config.max_transfer_blocks,
            Sense::invalid_field_in_cdb(byte, None),
        )
    }

    async fn write_same(&self, ws: cdb::WriteSame16, data_out: &Bytes) -> Result<ScsiResponse> {
        self.protect(ws.wrprotect)?;
        // ANCHOR without ANC_SUP, UNMAP without LBPWS: INVALID FIELD IN CDB.
        self.reject(ws.anchor, Sense::invalid_field_in_cdb(1, Some(4)))?;
        self.reject(
            ws.unmap && !self.d.config.unmap,
            Sense::invalid_field_in_cdb(1, Some(3)),
        )?;
        // WSNZ is set: a NUMBER OF LOGICAL BLOCKS of zero is INVALID FIELD IN CDB, as is one
        // above MAXIMUM WRITE SAME LENGTH.
        self.reject(
            ws.blocks == 0 || ws.blocks > MAX_UNMAP_BLOCKS,
            Sense::invalid_field_in_cdb(10, None),
        )?;
        self.range(ws.lba, ws.blocks.into())?;
        let bs = self.block_size();
        let needed = if ws.ndob { 0 } else { bs };
        let pattern = if ws.ndob {
            None
        } else {
            if u64::from(self.fcp_dl) < needed {
                return Err(self.short_data_out());
            }
            Some(self.data_out(data_out, needed)?)
        };
        let blocks = u64::from(ws.blocks);
        match pattern {
            // SBC-3 WRITE SAME: with UNMAP set and a block of zeros (or NDOB), the blocks may
            // be deallocated; here they are, so the storage is given back.
            Some(p) if !(ws.unmap && p.iter().all(|&b| b == 0)) => {
                let per = (WRITE_SAME_CHUNK / bs).max(1).min(blocks);
                let mut buf = BytesMut::with_capacity((per * bs) as usize);
                for _ in 0..per {
                    buf.extend_from_slice(&p);
                }
                let buf = buf.freeze();
                let mut at = ws.lba;
                let end = ws.lba + blocks;
                while at < end {
                    let n = per.min(end - at);
                    self.d
                        .dev
                        .write(at, buf.slice(..(n * bs) as usize), !self.wce)
                        .await
                        .map_err(|e| self.dev_err(e))?;
                    at += n;
                }
            }
            _ => {
                self.d
                    .dev
                    .unmap(ws.lba, blocks)
                    .await
                    .map_err(|e| self.dev_err(e))?;
                if !self.wce {
                    self.d.dev.flush().await.map_err(|e| self.dev_err(e))?;
                }
            }
        }
        Ok(ScsiResponse {
            residual: Residual::between(self.fcp_dl, needed),
            ..ScsiResponse::no_data(0)
        })
    }

    async fn unmap(&self, u: cdb::Unmap, data_out: &Bytes) -> Result<ScsiResponse> {
        self.reject(!self.d.config.unmap, Sense::invalid_opcode())?;
        self.reject(u.anchor, Sense::invalid_field_in_cdb(1, Some(0)))?;
        let len = u
            .param_list_len
            .min(self.fcp_dl.try_into().unwrap_or(u16::MAX));
        let residual = Residual::between(self.fcp_dl, u.param_list_len.into());
        let done = |r: Residual| ScsiResponse {
            residual: r,
            ..ScsiResponse::no_data(0)
        };
        // SBC-3 UNMAP: a PARAMETER LIST LENGTH of zero is not an error; nothing is unmapped.
        if len == 0 {
            return Ok(done(residual));
        }
        let list = self.data_out(data_out, len.into())?;
        let list = UnmapParameterList::parse(&list).map_err(|e| {
            let (asc, ascq) = e.parameter_list_sense();
            self.check(Sense::illegal_request(AdditionalSense(asc, ascq)))
        })?;
        // SBC-3 UNMAP: more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT, or a range
        // longer than MAXIMUM UNMAP LBA COUNT, is INVALID FIELD IN PARAMETER LIST; a range
        // beyond the capacity is LBA OUT OF RANGE. Everything is checked before anything is
        // unmapped.
        self.reject(
            list.descriptors.len() > MAX_UNMAP_DESCRIPTORS as usize,
            Sense::invalid_field_in_parameter_list(2, None),
        )?;
        for (i, d) in list.descriptors.iter().enumerate() {
            let at = u16::try_from(8 + 16 * i + 8).unwrap_or(u16::MAX);
            self.reject(
                d.blocks > MAX_UNMAP_BLOCKS,
                Sense::invalid_field_in_parameter_list(at, None),
            )?;
            self.range(d.lba, d.blocks.into())?;
        }
        for d in &list.descriptors {
            if d.blocks > 0 {
                self.d
                    .dev
                    .unmap(d.lba, d.blocks.into())
                    .await
                    .map_err(|e| self.dev_err(e))?;
            }
        }
        Ok(done(residual))
    }

    fn pages(&self, pc: u8) -> (CachingPage, ControlPage) {
        let (wce, d_sense) = match pc {
            // Changeable values: a one where the bit may be changed.
            1 => (true, true),
            // Default values.
            2 => (true, false),
            _ => (self.wce, self.d_sense),
        };
        let caching = CachingPage {
            flags: if wce {
                CachingFlags::WCE
            } else {
                CachingFlags::empty()
            },
            ..CachingPage::default()
        };
        let control = ControlPage {
            flags: if d_sense {
                ControlFlags::D_SENSE
            } else {
                ControlFlags::empty()
            },
            // QUEUE ALGORITHM MODIFIER 1 (unrestricted reordering) in current and default values.
            queue_algorithm_modifier: if pc == 1 { 0 } else { 1 },
            ..ControlPage::default()
        };
        (caching, control)
    }

    fn mode_sense(&self, m: cdb::ModeSense) -> Result<ScsiResponse> {
        // SPC-4 §6.11: saved values without saving support: SAVING PARAMETERS NOT SUPPORTED.
        self.reject(
            m.pc == 3,
            Sense::illegal_request(AdditionalSense(0x39, 0x00)),
        )?;
        let (caching, control) = self.pages(m.pc);
        let pages = [ModePage::Caching(caching), ModePage::Control(control)];
        let pages: Vec<ModePage> = match (m.page_code, m.subpage) {
            (0x3F, 0x00 | 0xFF) => pages.to_vec(),
            (code, 0x00) => pages.into_iter().filter(|p| p.code() == code).collect(),
            _ => Vec::new(),
        };
        // SPC-4 §6.11: a page the logical unit does not implement is INVALID FIELD IN CDB.
        self.reject(pages.is_empty(), Sense::invalid_field_in_cdb(2, Some(5)))?;
        let cap = self.cap;
        let block_descriptors = if m.dbd {
            BlockDescriptors::default()
        } else if m.llbaa && m.form == ModeForm::Ten {
            BlockDescriptors::Long(vec![LongBlockDescriptor::for_capacity(cap)])
        } else {
            BlockDescriptors::Short(vec![ShortBlockDescriptor::for_capacity(cap)])
        };
        let params = ModeParameters {
            form: m.form,
            medium_type: 0,
            // SBC-3 §6.4.1: DPOFUA one says DPO and FUA are supported.
            device_specific: DeviceSpecific::DPOFUA,
            block_descriptors,
            pages,
        };
        Ok(ScsiResponse::good(
            cut(params.to_vec(), m.alloc_len.into()),
            self.fcp_dl,
        ))
    }

    fn mode_select(&self, m: cdb::ModeSelect, data_out: &Bytes) -> Result<ScsiResponse> {
        // SPC-4 §6.9: SP set without saving support is INVALID FIELD IN CDB.
        self.reject(m.sp, Sense::invalid_field_in_cdb(1, Some(0)))?;
        let len = u32::from(m.param_list_len).min(self.fcp_dl) as usize;
        let residual = Residual::between(self.fcp_dl, m.param_list_len.into());
        let done = ScsiResponse {
            residual,
            ..ScsiResponse::no_data(0)
        };
        if len == 0 {
            return Ok(done);
        }
        let list = self.data_out(data_out, len as u64)?;
        let list = &list[..];
        let params = ModeParameters::parse_select(list, m.form).map_err(|e| {
            let (asc, ascq) = e.parameter_list_sense();
            self.check(Sense::illegal_request(AdditionalSense(asc, ascq)))
        })?;
        let hdr = m.form.header_len();
        let dev_specific_at = if m.form == ModeForm::Six { 2 } else { 3 };
        // Accept only what can be honoured: no write protect, block descriptors that restate
        // the block length, WCE of the Caching page and D_SENSE of the Control page. Anything
        // else is INVALID FIELD IN PARAMETER LIST, pointing at it.
        self.reject(
            params.medium_type != 0,
            Sense::invalid_field_in_parameter_list(
                if m.form == ModeForm::Six { 1 } else { 2 },
                None,
            ),
        )?;
        self.reject(
            params.device_specific.contains(DeviceSpecific::WP),
            Sense::invalid_field_in_parameter_list(dev_specific_at, Some(7)),
        )?;
        let cap = self.cap;
        let bad_desc = match &params.block_descriptors {
            BlockDescriptors::Short(v) => v.iter().any(|d| d.block_length != cap.block_size()),
            BlockDescriptors::Long(v) => v.iter().any(|d| d.block_length != cap.block_size()),
        };
        self.reject(
            bad_desc,
            Sense::invalid_field_in_parameter_list(hdr as u16, None),
        )?;
        let desc_len = list.len().saturating_sub(hdr).min(
            params.block_descriptors.len()
                * if matches!(params.block_descriptors, BlockDescriptors::Long(_)) {
                    16
                } else {
                    8
                },
        );
        let (cur_caching, cur_control) = self.pages(0);
        let mut at = hdr + desc_len;
        let mut wce = self.wce;
        let mut d_sense = self.d_sense;
        for page in &params.pages {
            let here = u16::try_from(at).unwrap_or(u16::MAX);
            match page {
                ModePage::Caching(c) => {
                    let want = CachingPage {
                        ps: false,
                        flags: c.flags - CachingFlags::WCE,
                        ..*c
                    };
                    let cur = CachingPage {
                        flags: cur_caching.flags - CachingFlags::WCE,
                        ..cur_caching
                    };
                    self.reject(
                        want != cur,
                        Sense::invalid_field_in_parameter_list(here + 2, None),
                    )?;
                    wce = c.flags.contains(CachingFlags::WCE);
                }
                ModePage::Control(c) => {
                    let want = ControlPage {
                        ps: false,
                        flags: c.flags - ControlFlags::D_SENSE,
                        ..*c
                    };
                    let cur = ControlPage {
                        flags: cur_control.flags - ControlFlags::D_SENSE,
                        ..cur_control
                    };
                    self.reject(
                        want != cur,
                        Sense::invalid_field_in_parameter_list(here + 2, None),
                    )?;
                    d_sense = c.flags.contains(ControlFlags::D_SENSE);
                }
                _ => return Err(self.check(Sense::invalid_field_in_parameter_list(here, Some(5)))),
            }
            at += page.buffer_len();
        }
        let changed = {
            let mut state = self.cmd.unit.lock();
            let changed = (state.wce, state.d_sense) != (wce, d_sense);
            state.wce = wce;
            state.d_sense = d_sense;
            changed
        };
        if changed {
            self.cmd.shared.mode_changed(self.cmd.unit, self.cmd.nexus);
        }
        Ok(done)
    }
}

/// Offset of the first byte where `a` and `b` differ, within the shorter.
fn first_difference(a: &[u8], b: &[u8]) -> Option<u64> {
    a.iter().zip(b).position(|(x, y)| x != y).map(|i| i as u64)
}
