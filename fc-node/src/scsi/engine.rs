//! [`ScsiEngine`]: the device server for every logical unit of one target port.

use std::collections::BTreeMap;

use bytes::Bytes;
use fc_frames::fcp::{FcpRspRepr, Residual};
use fc_frames::scsi::cdb::{self, Cdb, CdbSize, OperationCode};
use fc_frames::scsi::data::mode::{CachingFlags, ControlFlags};
use fc_frames::scsi::data::vpd::{BdcFlags, LbpFlags, ProvisioningType};
use fc_frames::scsi::data::Peripheral;
use fc_frames::scsi::data::{
    BlockDescriptors, BlockDeviceCharacteristics, BlockLimits, CachingPage, Capacity, ControlPage,
    DataError, Designator, DeviceSpecific, InquiryData, LogicalBlockProvisioning,
    LongBlockDescriptor, ModeForm, ModePage, ModeParameters, ReadBlockLimitsData, ReportLunsData,
    ShortBlockDescriptor, UnmapParameterList, VpdCode, VpdPage,
};
use fc_frames::scsi::sense::SenseFormat;
use fc_frames::scsi::{AdditionalSense, Lun, ScsiStatus, Sense, SenseKey};
use fc_frames::Wwn;

use super::device::BlockDevice;

/// Largest WRITE SAME / UNMAP range (blocks) per command, reported in VPD page 0xB0.
const MAX_UNMAP_BLOCKS: u32 = 1 << 22;
/// Most UNMAP block descriptors per command.
const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Bytes of zero or pattern written per device call for WRITE SAME.
const WRITE_SAME_CHUNK: u64 = 1 << 20;

/// The target port the engine serves, for the device identification VPD page (0x83).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPort {
    /// N_Port_Name of the target port.
    pub port_name: Wwn,
    /// Node_Name of the target device.
    pub node_name: Wwn,
    /// RELATIVE TARGET PORT IDENTIFIER (1 = port A).
    pub relative_port: u16,
}

/// A disk logical unit's identity and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// T10 vendor identification (8 ASCII bytes).
    pub vendor: String,
    /// Product identification (16 ASCII bytes).
    pub product: String,
    /// Product revision (4 ASCII bytes).
    pub revision: String,
    /// Unit serial number (VPD page 0x80).
    pub serial: String,
    /// The logical unit's NAA name (VPD page 0x83).
    pub naa: Wwn,
    /// MAXIMUM TRANSFER LENGTH in blocks; longer READ/WRITE are INVALID FIELD IN CDB.
    pub max_transfer_blocks: u32,
    /// Whether UNMAP and WRITE SAME with UNMAP are offered (LBPME, VPD page 0xB2).
    pub unmap: bool,
}

impl DiskConfig {
    /// Defaults: vendor `FCSAN`, product `FILE DISK`, 8 MiB transfers of 512-byte blocks,
    /// UNMAP on.
    pub fn new(serial: &str, naa: Wwn) -> DiskConfig {
        DiskConfig {
            vendor: "FCSAN".into(),
            product: "FILE DISK".into(),
            revision: "0001".into(),
            serial: serial.into(),
            naa,
            max_transfer_blocks: 16384,
            unmap: true,
        }
    }
}

/// A tape logical unit's identity: it answers INQUIRY, TEST UNIT READY, READ BLOCK LIMITS,
/// REQUEST SENSE and REPORT LUNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeConfig {
    /// T10 vendor identification.
    pub vendor: String,
    /// Product identification.
    pub product: String,
    /// Product revision.
    pub revision: String,
    /// Unit serial number.
    pub serial: String,
    /// The logical unit's NAA name.
    pub naa: Wwn,
    /// READ BLOCK LIMITS data.
    pub block_limits: ReadBlockLimitsData,
}

/// What the target sends back for one command: FCP_DATA (`data_in`) and FCP_RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResponse {
    /// SCSI status.
    pub status: ScsiStatus,
    /// Sense data with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// Data-in, at most FCP_DL bytes.
    pub data_in: Bytes,
    /// FCP_RESID against FCP_DL.
    pub residual: Residual,
}

impl ScsiResponse {
    /// GOOD with `data` (the whole response the command produced), cut to `min(data, FCP_DL)`.
    fn good(data: Vec<u8>, fcp_dl: u32) -> ScsiResponse {
        let residual = Residual::between(fcp_dl, data.len() as u64);
        let mut data = Bytes::from(data);
        data.truncate(fcp_dl as usize);
        ScsiResponse {
            status: ScsiStatus::GOOD,
            sense: None,
            data_in: data,
            residual,
        }
    }

    /// GOOD, no data.
    fn no_data(fcp_dl: u32) -> ScsiResponse {
        ScsiResponse::good(Vec::new(), fcp_dl)
    }

    /// CHECK CONDITION with `sense`; nothing moved.
    fn check(sense: Sense, fcp_dl: u32) -> ScsiResponse {
        ScsiResponse {
            status: ScsiStatus::CHECK_CONDITION,
            sense: Some(sense),
            data_in: Bytes::new(),
            residual: Residual::between(fcp_dl, 0),
        }
    }

    /// The FCP_RSP for this response.
    pub fn fcp_rsp(&self) -> FcpRspRepr {
        FcpRspRepr {
            status: self.status,
            residual: self.residual,
            sense_data: self.sense.map(|s| s.to_vec()).unwrap_or_default(),
            ..FcpRspRepr::default()
        }
    }
}

/// A disk's state besides its device.
struct Disk {
    dev: Box<dyn BlockDevice>,
    /// The device's size when it was added.
    cap: Capacity,
    config: DiskConfig,
    /// WCE of the Caching page: off means every write is FUA.
    wce: bool,
}

enum Unit {
    Disk(Disk),
    Tape(TapeConfig),
}

struct LogicalUnit {
    unit: Unit,
    /// A unit attention or deferred error not yet reported.
    pending: Option<Sense>,
    /// D_SENSE of the Control page: sense data in descriptor format.
    d_sense: bool,
}

/// The SCSI device server of one target port: its logical units, by LUN.
pub struct ScsiEngine {
    port: TargetPort,
    units: BTreeMap<Lun, LogicalUnit>,
}

/// Early exit from a command handler with the response to send.
type Result<T> = std::result::Result<T, ScsiResponse>;

impl ScsiEngine {
    /// An engine with no logical units.
    pub fn new(port: TargetPort) -> ScsiEngine {
        ScsiEngine {
            port,
            units: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a disk at `lun`; an error when the device reports zero blocks or a
    /// zero block size.
    pub fn add_disk(
        &mut self,
        lun: Lun,
        dev: Box<dyn BlockDevice>,
        config: DiskConfig,
    ) -> std::result::Result<(), DataError> {
        let cap = Capacity::new(dev.block_count(), dev.block_size())?;
        let unit = Unit::Disk(Disk {
            dev,
            cap,
            config,
            wce: true,
        });
        self.units.insert(
            lun,
            LogicalUnit {
                unit,
                pending: None,
                d_sense: false,
            },
        );
        Ok(())
    }

    /// Adds (or replaces) a tape drive at `lun`.
    pub fn add_tape(&mut self, lun: Lun, config: TapeConfig) {
        self.units.insert(
            lun,
            LogicalUnit {
                unit: Unit::Tape(config),
                pending: None,
                d_sense: false,
            },
        );
    }

    /// Queues a unit attention or deferred error for `lun`: the next command other than
    /// INQUIRY, REPORT LUNS and REQUEST SENSE ends in CHECK CONDITION with it, or REQUEST SENSE
    /// returns it; either clears it (SAM-5 §5.14). One per LUN, not per I_T nexus: a newer one
    /// replaces an older. Returns false when there is no such LUN.
    pub fn queue_sense(&mut self, lun: Lun, sense: Sense) -> bool {
        match self.units.get_mut(&lun) {
            Some(u) => {
                u.pending = Some(sense);
                true
            }
            None => false,
        }
    }

    /// The LUNs, ascending.
    pub fn luns(&self) -> Vec<Lun> {
        self.units.keys().copied().collect()
    }

    /// Data-out bytes to solicit with FCP_XFER_RDY for this command: `min(FCP_DL, what the
    /// CDB transfers)`, or 0 when the command moves no data out or will be rejected before
    /// reading it (unknown LUN, pending unit attention, bad CDB, a WRITE out of range, too
    /// long or overrunning FCP_DL).
    pub fn data_out_len(&self, lun: Lun, cdb_bytes: &[u8], fcp_dl: u32) -> u32 {
        let Some(LogicalUnit {
            unit: Unit::Disk(d),
            pending: None,
            ..
        }) = self.units.get(&lun)
        else {
            return 0;
        };
        let bs = d.dev.block_size();
        let needed: u64 = match Cdb::parse(cdb_bytes) {
            Ok(Cdb::Write(w)) => {
                let n = u64::from(w.blocks) * u64::from(bs);
                let rejected = n > u64::from(fcp_dl)
                    || w.wrprotect != 0
                    || w.blocks > d.config.max_transfer_blocks
                    || !d.cap.contains(w.lba, w.blocks.into());
                if rejected {
                    return 0;
                }
                n
            }
            Ok(Cdb::WriteSame16(ws)) if !ws.ndob => u64::from(bs),
            Ok(Cdb::Unmap(u)) => u64::from(u.param_list_len),
            Ok(Cdb::ModeSelect(m)) => u64::from(m.param_list_len),
            _ => 0,
        };
        // min with a u32 fits a u32.
        needed.min(u64::from(fcp_dl)) as u32
    }

    /// Executes one command: `cdb_bytes` from FCP_CMND (padding after the CDB is ignored),
    /// `fcp_dl` its FCP_DL, `data_out` the bytes received for it (see [`Self::data_out_len`]).
    pub fn execute(
        &mut self,
        lun: Lun,
        cdb_bytes: &[u8],
        fcp_dl: u32,
        data_out: &[u8],
    ) -> ScsiResponse {
        let op = OperationCode(cdb_bytes.first().copied().unwrap_or(0));
        let port = self.port;
        // Only REPORT LUNS needs the inventory; don't build it on the I/O path.
        let report = if op == OperationCode::REPORT_LUNS {
            self.report_luns_data()
        } else {
            ReportLunsData::default()
        };
        let Some(lu) = self.units.get_mut(&lun) else {
            return no_unit(op, cdb_bytes, fcp_dl, report);
        };
        let exempt = matches!(
            op,
            OperationCode::INQUIRY | OperationCode::REPORT_LUNS | OperationCode::REQUEST_SENSE
        );
        // SAM-5 §5.14: a pending unit attention terminates the next command (except INQUIRY,
        // REPORT LUNS and REQUEST SENSE) with CHECK CONDITION and is then cleared.
        if !exempt {
            if let Some(s) = lu.pending.take() {
                return ScsiResponse::check(lu.format(s), fcp_dl);
            }
        }
        match lu.run(&port, cdb_bytes, fcp_dl, data_out, &report) {
            Ok(r) | Err(r) => r,
        }
    }

    fn report_luns_data(&self) -> ReportLunsData {
        ReportLunsData::new(self.luns())
    }
}

/// A command to a LUN with no logical unit (SPC-4 §6.6.2, §6.33, §6.39).
fn no_unit(
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

fn sense_format(desc: bool) -> SenseFormat {
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

impl LogicalUnit {
    /// `s` in the format the Control page's D_SENSE selects.
    fn format(&self, s: Sense) -> Sense {
        s.with_format(sense_format(self.d_sense))
    }

    fn check(&self, s: Sense, fcp_dl: u32) -> ScsiResponse {
        ScsiResponse::check(self.format(s), fcp_dl)
    }

    fn run(
        &mut self,
        port: &TargetPort,
        cdb_bytes: &[u8],
        fcp_dl: u32,
        data_out: &[u8],
        report: &ReportLunsData,
    ) -> Result<ScsiResponse> {
        let op = OperationCode(cdb_bytes.first().copied().unwrap_or(0));
        // Tape: SSC-3 gives several disk opcodes other meanings, so only the commands served
        // are parsed; everything else is INVALID COMMAND OPERATION CODE.
        if matches!(self.unit, Unit::Tape(_))
            && !matches!(
                op,
                OperationCode::INQUIRY
                    | OperationCode::TEST_UNIT_READY
                    | OperationCode::READ_BLOCK_LIMITS
                    | OperationCode::REQUEST_SENSE
                    | OperationCode::REPORT_LUNS
            )
        {
            return Err(self.check(Sense::invalid_opcode(), fcp_dl));
        }
        let cdb = Cdb::parse(cdb_bytes).map_err(|e| self.check(e.sense(), fcp_dl))?;
        // SAM-5 §5.2: with NORMACA zero in the INQUIRY data, a CDB with NACA set shall be
        // terminated with INVALID FIELD IN CDB.
        if let Some(e) = cdb.naca_error() {
            return Err(self.check(e.sense(), fcp_dl));
        }
        let peripheral = match self.unit {
            Unit::Disk(_) => Peripheral::DISK,
            Unit::Tape(_) => Peripheral::TAPE,
        };
        match cdb {
            Cdb::TestUnitReady(_) => Ok(ScsiResponse::no_data(fcp_dl)),
            Cdb::RequestSense(r) => {
                let s = self
                    .pending
                    .take()
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
            Cdb::ReportLuns(r) => Ok(report_luns(r, report.clone(), fcp_dl)),
            Cdb::Inquiry(i) => {
                let data = if i.evpd {
                    let page = self
                        .vpd_page(port, i.page_code)
                        // SPC-4 §6.6.1: an unsupported VPD page is INVALID FIELD IN CDB.
                        .ok_or_else(|| self.check(Sense::invalid_field_in_cdb(2, None), fcp_dl))?;
                    page.to_vec(peripheral)
                } else {
                    match &self.unit {
                        Unit::Disk(d) => InquiryData::disk(
                            &d.config.vendor,
                            &d.config.product,
                            &d.config.revision,
                        ),
                        Unit::Tape(t) => InquiryData::tape(&t.vendor, &t.product, &t.revision),
                    }
                    .to_vec()
                };
                Ok(ScsiResponse::good(cut(data, i.alloc_len.into()), fcp_dl))
            }
            Cdb::ReadBlockLimits(r) => {
                let Unit::Tape(t) = &self.unit else {
                    return Err(self.check(Sense::invalid_opcode(), fcp_dl));
                };
                // SSC-4: MLOC without support for it is INVALID FIELD IN CDB.
                reject(
                    r.mloc,
                    self.format(Sense::invalid_field_in_cdb(1, Some(0))),
                    fcp_dl,
                )?;
                Ok(ScsiResponse::good(t.block_limits.to_vec(), fcp_dl))
            }
            other => {
                let d_sense = self.d_sense;
                let Unit::Disk(d) = &mut self.unit else {
                    return Err(self.check(Sense::invalid_opcode(), fcp_dl));
                };
                let mut ctx = DiskCmd {
                    d,
                    d_sense: &mut self.d_sense,
                    fmt: sense_format(d_sense),
                    fcp_dl,
                };
                ctx.run(other, data_out)
            }
        }
    }

    /// The VPD page `code`, if this unit has it.
    fn vpd_page(&self, port: &TargetPort, code: u8) -> Option<VpdPage> {
        let (serial, naa) = match &self.unit {
            Unit::Disk(d) => (&d.config.serial, d.config.naa),
            Unit::Tape(t) => (&t.serial, t.naa),
        };
        let mut pages = vec![VpdCode::UNIT_SERIAL_NUMBER, VpdCode::DEVICE_IDENTIFICATION];
        if let Unit::Disk(d) = &self.unit {
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
            _ => match &self.unit {
                Unit::Disk(d) => d.block_vpd(code)?,
                Unit::Tape(_) => return None,
            },
        })
    }
}

impl Disk {
    fn capacity(&self) -> Capacity {
        self.cap
    }

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
                    flags: BdcFlags::FUAB,
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

/// One block command to a disk.
struct DiskCmd<'a> {
    d: &'a mut Disk,
    d_sense: &'a mut bool,
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

    fn dev_err(&self, e: super::DeviceError) -> ScsiResponse {
        self.check(e.sense())
    }

    /// SBC-3 §4.5: a command that names a logical block beyond the capacity shall be
    /// terminated with LOGICAL BLOCK ADDRESS OUT OF RANGE; that covers the LBA of a zero-length
    /// transfer too, and an LBA + length that overflows.
    fn range(&self, lba: u64, blocks: u64) -> Result<()> {
        self.reject(
            !self.d.capacity().contains(lba, blocks),
            Sense::lba_out_of_range(),
        )
    }

    fn bytes(&self, blocks: u64) -> u64 {
        blocks * u64::from(self.d.dev.block_size())
    }

    fn run(&mut self, cdb: Cdb, data_out: &[u8]) -> Result<ScsiResponse> {
        let fcp_dl = self.fcp_dl;
        match cdb {
            Cdb::ReadCapacity10(_) => {
                // SBC-3 READ CAPACITY(10): RETURNED LOGICAL BLOCK ADDRESS FFFFFFFFh when the last
                // LBA does not fit (Capacity does that).
                Ok(ScsiResponse::good(
                    self.d.capacity().to_read_capacity_10().to_vec(),
                    fcp_dl,
                ))
            }
            Cdb::ReadCapacity16(r) => {
                let mut data = self.d.capacity().to_read_capacity_16();
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
                let mut buf = vec![0; self.bytes(r.blocks.into()) as usize];
                self.d
                    .dev
                    .read(r.lba, &mut buf)
                    .map_err(|e| self.dev_err(e))?;
                Ok(ScsiResponse::good(buf, fcp_dl))
            }
            Cdb::Write(w) => {
                self.protect(w.wrprotect)?;
                self.range(w.lba, w.blocks.into())?;
                self.max_transfer(w.blocks, w.size)?;
                let n = self.bytes(w.blocks.into());
                if n > u64::from(fcp_dl) {
                    // See the module docs: a WRITE that FCP_DL does not cover is not executed.
                    return Err(ScsiResponse {
                        residual: Residual::between(fcp_dl, n),
                        ..self.check(Sense::illegal_request(
                            AdditionalSense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                        ))
                    });
                }
                let data = data_out
                    .get(..n as usize)
                    .ok_or_else(|| self.short_data_out())?;
                // SBC-3 WRITE: with FUA, or with the write cache disabled, the data is on the
                // medium before GOOD status.
                let fua = w.fua || !self.d.wce;
                self.d
                    .dev
                    .write(w.lba, data, fua)
                    .map_err(|e| self.dev_err(e))?;
                Ok(ScsiResponse {
                    residual: Residual::between(fcp_dl, n),
                    ..ScsiResponse::no_data(0)
                })
            }
            Cdb::Verify(v) => {
                self.protect(v.vrprotect)?;
                // BYTCHK 01b/11b (compare with data-out) is not offered; 10b is reserved.
                self.reject(v.bytchk != 0, Sense::invalid_field_in_cdb(1, Some(2)))?;
                self.range(v.lba, v.blocks.into())?;
                Ok(ScsiResponse::no_data(fcp_dl))
            }
            Cdb::SynchronizeCache(s) => {
                // SBC-3 SYNCHRONIZE CACHE: NUMBER OF LOGICAL BLOCKS zero is every block from
                // the LBA to the end; the range is checked either way.
                self.range(s.lba, s.blocks.into())?;
                self.d.dev.flush().map_err(|e| self.dev_err(e))?;
                Ok(ScsiResponse::no_data(fcp_dl))
            }
            Cdb::WriteSame16(ws) => self.write_same(ws, data_out),
            Cdb::Unmap(u) => self.unmap(u, data_out),
            Cdb::ModeSense(m) => self.mode_sense(m),
            Cdb::ModeSelect(m) => self.mode_select(m, data_out),
            _ => Err(self.check(Sense::invalid_opcode())),
        }
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

    fn write_same(&mut self, ws: cdb::WriteSame16, data_out: &[u8]) -> Result<ScsiResponse> {
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
        let bs = u64::from(self.d.dev.block_size());
        let needed = if ws.ndob { 0 } else { bs };
        let pattern = if ws.ndob {
            None
        } else {
            let b = data_out
                .get(..needed as usize)
                .filter(|_| u64::from(self.fcp_dl) >= needed)
                .ok_or_else(|| self.short_data_out())?;
            Some(b)
        };
        let blocks = u64::from(ws.blocks);
        match pattern {
            Some(p) if !(ws.unmap && p.iter().all(|&b| b == 0)) => {
                let per = (WRITE_SAME_CHUNK / bs).max(1);
                let buf: Vec<u8> = p
                    .iter()
                    .copied()
                    .cycle()
                    .take((per * bs) as usize)
                    .collect();
                let mut at = ws.lba;
                let end = ws.lba + blocks;
                while at < end {
                    let n = per.min(end - at);
                    self.d
                        .dev
                        .write(at, &buf[..(n * bs) as usize], !self.d.wce)
                        .map_err(|e| self.dev_err(e))?;
                    at += n;
                }
            }
            _ => {
                self.d
                    .dev
                    .write_zeroes(ws.lba, blocks)
                    .map_err(|e| self.dev_err(e))?;
                if !self.d.wce {
                    self.d.dev.flush().map_err(|e| self.dev_err(e))?;
                }
            }
        }
        Ok(ScsiResponse {
            residual: Residual::between(self.fcp_dl, needed),
            ..ScsiResponse::no_data(0)
        })
    }

    fn unmap(&mut self, u: cdb::Unmap, data_out: &[u8]) -> Result<ScsiResponse> {
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
        let list = data_out
            .get(..usize::from(len))
            .ok_or_else(|| self.short_data_out())?;
        let list = UnmapParameterList::parse(list).map_err(|e| {
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
                    .write_zeroes(d.lba, d.blocks.into())
                    .map_err(|e| self.dev_err(e))?;
            }
        }
        Ok(done(residual))
    }

    /// The current (or changeable, or default) mode pages.
    fn pages(&self, pc: u8) -> (CachingPage, ControlPage) {
        let (wce, d_sense) = match pc {
            // Changeable values: a one where the bit may be changed.
            1 => (true, true),
            // Default values.
            2 => (true, false),
            _ => (self.d.wce, *self.d_sense),
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
        let cap = self.d.capacity();
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

    fn mode_select(&mut self, m: cdb::ModeSelect, data_out: &[u8]) -> Result<ScsiResponse> {
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
        let list = data_out.get(..len).ok_or_else(|| self.short_data_out())?;
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
        let cap = self.d.capacity();
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
        let mut wce = self.d.wce;
        let mut d_sense = *self.d_sense;
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
        self.d.wce = wce;
        *self.d_sense = d_sense;
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
