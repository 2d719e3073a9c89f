//! Typed SCSI command descriptor blocks (SPC-4 §4.2, SBC-3 §5, SSC-3 §7), parsed by a target's
//! engine and built by an initiator.
//!
//! ```text
//!  6-byte (group 0):  op | flags/LBA(20-16) | LBA(15-0)       | len  | control
//! 10-byte (groups 1-2): op | flags | LBA(4 bytes)  | group | len(2)  | control
//! 16-byte (group 4):  op | flags | LBA(8 bytes)    | len(4)        | group | control
//! 12-byte (group 5):  op | flags | ...                                     | control
//! ```
//!
//! What a target must answer (SPC-4 §4.5.6, and what libiscsi's conformance suite checks):
//! an opcode it does not implement gets ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE
//! ([`CdbError::UnsupportedOpcode`], [`CdbError::UnsupportedServiceAction`]); a field it cannot
//! honour gets ILLEGAL REQUEST / INVALID FIELD IN CDB with a sense-key-specific field pointer to
//! the byte and bit ([`CdbError::InvalidField`]). [`CdbError::sense`] builds that sense.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::sense::Sense;
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

/// SCSI operation code, the first byte of every CDB. Open: any byte is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct OperationCode(pub u8);

impl OperationCode {
    /// TEST UNIT READY (SPC-4).
    pub const TEST_UNIT_READY: OperationCode = OperationCode(0x00);
    /// REQUEST SENSE (SPC-4).
    pub const REQUEST_SENSE: OperationCode = OperationCode(0x03);
    /// READ BLOCK LIMITS (SSC-3).
    pub const READ_BLOCK_LIMITS: OperationCode = OperationCode(0x05);
    /// READ(6) (SBC-3).
    pub const READ_6: OperationCode = OperationCode(0x08);
    /// WRITE(6) (SBC-3).
    pub const WRITE_6: OperationCode = OperationCode(0x0A);
    /// INQUIRY (SPC-4).
    pub const INQUIRY: OperationCode = OperationCode(0x12);
    /// MODE SELECT(6) (SPC-4).
    pub const MODE_SELECT_6: OperationCode = OperationCode(0x15);
    /// MODE SENSE(6) (SPC-4).
    pub const MODE_SENSE_6: OperationCode = OperationCode(0x1A);
    /// READ CAPACITY(10) (SBC-3).
    pub const READ_CAPACITY_10: OperationCode = OperationCode(0x25);
    /// READ(10) (SBC-3).
    pub const READ_10: OperationCode = OperationCode(0x28);
    /// WRITE(10) (SBC-3).
    pub const WRITE_10: OperationCode = OperationCode(0x2A);
    /// VERIFY(10) (SBC-3).
    pub const VERIFY_10: OperationCode = OperationCode(0x2F);
    /// SYNCHRONIZE CACHE(10) (SBC-3).
    pub const SYNCHRONIZE_CACHE_10: OperationCode = OperationCode(0x35);
    /// UNMAP (SBC-3).
    pub const UNMAP: OperationCode = OperationCode(0x42);
    /// MODE SELECT(10) (SPC-4).
    pub const MODE_SELECT_10: OperationCode = OperationCode(0x55);
    /// MODE SENSE(10) (SPC-4).
    pub const MODE_SENSE_10: OperationCode = OperationCode(0x5A);
    /// READ(16) (SBC-3).
    pub const READ_16: OperationCode = OperationCode(0x88);
    /// WRITE(16) (SBC-3).
    pub const WRITE_16: OperationCode = OperationCode(0x8A);
    /// SYNCHRONIZE CACHE(16) (SBC-3).
    pub const SYNCHRONIZE_CACHE_16: OperationCode = OperationCode(0x91);
    /// WRITE SAME(16) (SBC-3).
    pub const WRITE_SAME_16: OperationCode = OperationCode(0x93);
    /// SERVICE ACTION IN(16): READ CAPACITY(16) is its service action 0x10.
    pub const SERVICE_ACTION_IN_16: OperationCode = OperationCode(0x9E);
    /// REPORT LUNS (SPC-4).
    pub const REPORT_LUNS: OperationCode = OperationCode(0xA0);

    /// The command's name, for the codes this crate knows.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "TEST UNIT READY",
            0x03 => "REQUEST SENSE",
            0x05 => "READ BLOCK LIMITS",
            0x08 => "READ(6)",
            0x0A => "WRITE(6)",
            0x12 => "INQUIRY",
            0x15 => "MODE SELECT(6)",
            0x1A => "MODE SENSE(6)",
            0x25 => "READ CAPACITY(10)",
            0x28 => "READ(10)",
            0x2A => "WRITE(10)",
            0x2F => "VERIFY(10)",
            0x35 => "SYNCHRONIZE CACHE(10)",
            0x42 => "UNMAP",
            0x55 => "MODE SELECT(10)",
            0x5A => "MODE SENSE(10)",
            0x88 => "READ(16)",
            0x8A => "WRITE(16)",
            0x91 => "SYNCHRONIZE CACHE(16)",
            0x93 => "WRITE SAME(16)",
            0x9E => "SERVICE ACTION IN(16)",
            0xA0 => "REPORT LUNS",
            _ => return None,
        })
    }

    /// CDB length from the group code (bits 7-5): 6, 10, 10, reserved, 16, 12, vendor, vendor.
    pub const fn cdb_len(self) -> Option<usize> {
        match self.0 >> 5 {
            0 => Some(6),
            1 | 2 => Some(10),
            4 => Some(16),
            5 => Some(12),
            _ => None,
        }
    }
}

impl fmt::Display for OperationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "opcode {:#04x}", self.0),
        }
    }
}

/// Why a CDB was not accepted, and the sense a target answers it with ([`CdbError::sense`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CdbError {
    /// Shorter than the opcode's CDB length. (Sense: INVALID FIELD IN CDB, byte 0.)
    #[error(transparent)]
    Len(#[from] LenError),
    /// An opcode this crate does not type. (Sense: INVALID COMMAND OPERATION CODE.)
    #[error("unsupported command {0}")]
    UnsupportedOpcode(OperationCode),
    /// A service action this crate does not type. (Sense: INVALID COMMAND OPERATION CODE, as
    /// SPC-4 §4.5.6 says for unsupported service actions.)
    #[error("unsupported service action {service_action:#04x} of {opcode}")]
    UnsupportedServiceAction {
        /// The opcode.
        opcode: OperationCode,
        /// The service action (bits 4-0 of byte 1).
        service_action: u8,
    },
    /// A field the standard says the device server shall reject. (Sense: INVALID FIELD IN CDB
    /// with the field pointer.)
    #[error("invalid field in CDB byte {byte}{}: {what}", bit.map(|b| format!(" bit {b}")).unwrap_or_default())]
    InvalidField {
        /// Byte of the field.
        byte: u16,
        /// Bit of the field's most significant bit, when the field is not whole bytes.
        bit: Option<u8>,
        /// What is wrong.
        what: &'static str,
    },
}

impl CdbError {
    /// The sense data a target returns with CHECK CONDITION for this error.
    pub fn sense(&self) -> Sense {
        match self {
            CdbError::Len(_) => Sense::invalid_field_in_cdb(0, None),
            CdbError::UnsupportedOpcode(_) | CdbError::UnsupportedServiceAction { .. } => {
                Sense::invalid_opcode()
            }
            CdbError::InvalidField { byte, bit, .. } => Sense::invalid_field_in_cdb(*byte, *bit),
        }
    }
}

/// Which form of READ or WRITE (and of SYNCHRONIZE CACHE, 10 or 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CdbSize {
    /// 6-byte CDB: 21-bit LBA, 8-bit length (0 means 256).
    Six,
    /// 10-byte CDB: 32-bit LBA, 16-bit length.
    #[default]
    Ten,
    /// 16-byte CDB: 64-bit LBA, 32-bit length.
    Sixteen,
}

/// Data moved by a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// No data.
    None,
    /// Data in: target to initiator.
    Read,
    /// Data out: initiator to target.
    Write,
}

/// READ(6/10/16) and WRITE(6/10/16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadWrite {
    /// Which CDB form.
    pub size: CdbSize,
    /// First logical block.
    pub lba: u64,
    /// Blocks to transfer (a READ(6)/WRITE(6) length byte of 0 is 256 blocks).
    pub blocks: u32,
    /// RDPROTECT/WRPROTECT (3 bits; not in the 6-byte form).
    pub protect: u8,
    /// Disable page out (not in the 6-byte form).
    pub dpo: bool,
    /// Force unit access: the data reaches the medium before status (not in the 6-byte form).
    pub fua: bool,
    /// Group number (5 bits; not in the 6-byte form).
    pub group: u8,
}

impl ReadWrite {
    /// A plain READ/WRITE in the smallest form that holds `lba` and `blocks`. (10) unless the
    /// address or the length needs (16).
    pub fn new(lba: u64, blocks: u32) -> ReadWrite {
        let size = if lba > u32::MAX as u64 || blocks > u16::MAX as u32 {
            CdbSize::Sixteen
        } else {
            CdbSize::Ten
        };
        ReadWrite {
            size,
            lba,
            blocks,
            ..ReadWrite::default()
        }
    }

    /// Bytes to move for `block_size`-byte blocks; `None` on overflow.
    pub fn transfer_bytes(&self, block_size: u32) -> Option<u64> {
        (self.blocks as u64).checked_mul(block_size as u64)
    }
}

/// INQUIRY (SPC-4 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Inquiry {
    /// Return a vital product data page rather than standard data.
    pub evpd: bool,
    /// VPD page code (zero with `evpd` clear).
    pub page_code: u8,
    /// Allocation length.
    pub alloc_len: u16,
}

/// REQUEST SENSE (SPC-4 §6.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RequestSense {
    /// Descriptor format sense wanted.
    pub desc: bool,
    /// Allocation length.
    pub alloc_len: u8,
}

/// READ CAPACITY(10) (SBC-3 §5.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity10 {
    /// Logical block address (obsolete; must be zero unless PMI).
    pub lba: u32,
    /// Partial medium indicator (obsolete).
    pub pmi: bool,
}

/// READ CAPACITY(16), SERVICE ACTION IN(16) service action 0x10 (SBC-3 §5.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity16 {
    /// Logical block address (obsolete; must be zero unless PMI).
    pub lba: u64,
    /// Allocation length.
    pub alloc_len: u32,
    /// Partial medium indicator (obsolete).
    pub pmi: bool,
}

/// REPORT LUNS (SPC-4 §6.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReportLuns {
    /// SELECT REPORT: 0 all logical units, 1 well-known only, 2 all including well-known.
    pub select_report: u8,
    /// Allocation length (at least 16).
    pub alloc_len: u32,
}

/// MODE SENSE(6) and MODE SENSE(10) (SPC-4 §6.11, §6.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModeSense {
    /// The (10) form; the (6) form otherwise.
    pub ten: bool,
    /// Disable block descriptors.
    pub dbd: bool,
    /// Long LBA block descriptors accepted (10 only).
    pub llbaa: bool,
    /// Page control: 0 current, 1 changeable, 2 default, 3 saved.
    pub pc: u8,
    /// Page code (6 bits; 0x3F all pages).
    pub page_code: u8,
    /// Subpage code (0xFF all subpages).
    pub subpage: u8,
    /// Allocation length (8 bits in the (6) form).
    pub alloc_len: u16,
}

/// SYNCHRONIZE CACHE(10) and (16) (SBC-3 §5.22, §5.23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SynchronizeCache {
    /// The (16) form; (10) otherwise.
    pub sixteen: bool,
    /// Return status before the cache is flushed.
    pub immed: bool,
    /// First block to flush.
    pub lba: u64,
    /// Blocks to flush; zero means to the end of the medium.
    pub blocks: u32,
    /// Group number.
    pub group: u8,
}

/// WRITE SAME(16) (SBC-3 §5.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WriteSame16 {
    /// WRPROTECT (3 bits).
    pub wrprotect: u8,
    /// ANCHOR: anchor rather than deallocate (needs UNMAP).
    pub anchor: bool,
    /// UNMAP: deallocate the blocks if possible.
    pub unmap: bool,
    /// NDOB: no data-out buffer, write zeros.
    pub ndob: bool,
    /// First block.
    pub lba: u64,
    /// Blocks to write; zero means to the end of the medium.
    pub blocks: u32,
    /// Group number.
    pub group: u8,
}

/// UNMAP (SBC-3 §5.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Unmap {
    /// ANCHOR.
    pub anchor: bool,
    /// Group number.
    pub group: u8,
    /// Length of the parameter list that follows as data out.
    pub param_list_len: u16,
}

/// A parsed CDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cdb {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE.
    RequestSense(RequestSense),
    /// READ BLOCK LIMITS (tape).
    ReadBlockLimits,
    /// INQUIRY.
    Inquiry(Inquiry),
    /// MODE SENSE(6)/(10).
    ModeSense(ModeSense),
    /// READ CAPACITY(10).
    ReadCapacity10(ReadCapacity10),
    /// READ CAPACITY(16).
    ReadCapacity16(ReadCapacity16),
    /// READ(6/10/16).
    Read(ReadWrite),
    /// WRITE(6/10/16).
    Write(ReadWrite),
    /// SYNCHRONIZE CACHE(10/16).
    SynchronizeCache(SynchronizeCache),
    /// WRITE SAME(16).
    WriteSame16(WriteSame16),
    /// UNMAP.
    Unmap(Unmap),
    /// REPORT LUNS.
    ReportLuns(ReportLuns),
}

/// Service action of READ CAPACITY(16) under SERVICE ACTION IN(16).
const SA_READ_CAPACITY_16: u8 = 0x10;
/// NACA bit of the control byte.
const CONTROL_NACA: u8 = 0x04;

impl Cdb {
    /// Parses a CDB from the front of `buf` (an FCP_CMND carries it padded to 16 bytes; the
    /// bytes after the opcode's length are ignored).
    pub fn parse(buf: &[u8]) -> Result<Cdb, CdbError> {
        let op = OperationCode(*buf.first().ok_or(LenError {
            layer: Layer::Cdb,
            required: 1,
            actual: 0,
        })?);
        let len = op.cdb_len().ok_or(CdbError::UnsupportedOpcode(op))?;
        LenError::check(Layer::Cdb, len, buf.len())?;
        let b = &buf[..len];
        // SAM-5 §5.3: with NormACA zero in the INQUIRY data (as here), a command with NACA set
        // shall be terminated with INVALID FIELD IN CDB.
        if b[len - 1] & CONTROL_NACA != 0 {
            return Err(CdbError::InvalidField {
                byte: (len - 1) as u16,
                bit: Some(2),
                what: "NACA set, but ACA is not supported",
            });
        }
        let cdb = match op {
            OperationCode::TEST_UNIT_READY => Cdb::TestUnitReady,
            OperationCode::REQUEST_SENSE => Cdb::RequestSense(RequestSense {
                desc: b[1] & 0x01 != 0,
                alloc_len: b[4],
            }),
            OperationCode::READ_BLOCK_LIMITS => Cdb::ReadBlockLimits,
            OperationCode::INQUIRY => {
                let inq = Inquiry {
                    evpd: b[1] & 0x01 != 0,
                    page_code: b[2],
                    alloc_len: be16(b, 3),
                };
                // SPC-4 §6.6.1: page code non-zero with EVPD zero shall be rejected.
                if !inq.evpd && inq.page_code != 0 {
                    return Err(CdbError::InvalidField {
                        byte: 2,
                        bit: None,
                        what: "page code without EVPD",
                    });
                }
                Cdb::Inquiry(inq)
            }
            OperationCode::MODE_SENSE_6 => Cdb::ModeSense(ModeSense {
                ten: false,
                dbd: b[1] & 0x08 != 0,
                llbaa: false,
                pc: b[2] >> 6,
                page_code: b[2] & 0x3F,
                subpage: b[3],
                alloc_len: b[4] as u16,
            }),
            OperationCode::MODE_SENSE_10 => Cdb::ModeSense(ModeSense {
                ten: true,
                dbd: b[1] & 0x08 != 0,
                llbaa: b[1] & 0x10 != 0,
                pc: b[2] >> 6,
                page_code: b[2] & 0x3F,
                subpage: b[3],
                alloc_len: be16(b, 7),
            }),
            OperationCode::READ_CAPACITY_10 => {
                let rc = ReadCapacity10 {
                    lba: be32(b, 2),
                    pmi: b[8] & 0x01 != 0,
                };
                // SBC-3 §5.15: LBA non-zero with PMI zero shall be rejected.
                if !rc.pmi && rc.lba != 0 {
                    return Err(CdbError::InvalidField {
                        byte: 2,
                        bit: None,
                        what: "LBA without PMI",
                    });
                }
                Cdb::ReadCapacity10(rc)
            }
            OperationCode::SERVICE_ACTION_IN_16 => {
                let sa = b[1] & 0x1F;
                if sa != SA_READ_CAPACITY_16 {
                    return Err(CdbError::UnsupportedServiceAction {
                        opcode: op,
                        service_action: sa,
                    });
                }
                let rc = ReadCapacity16 {
                    lba: be64(b, 2),
                    alloc_len: be32(b, 10),
                    pmi: b[14] & 0x01 != 0,
                };
                // SBC-3 §5.16: LBA non-zero with PMI zero shall be rejected.
                if !rc.pmi && rc.lba != 0 {
                    return Err(CdbError::InvalidField {
                        byte: 2,
                        bit: None,
                        what: "LBA without PMI",
                    });
                }
                Cdb::ReadCapacity16(rc)
            }
            OperationCode::READ_6 => Cdb::Read(rw6(b)),
            OperationCode::WRITE_6 => Cdb::Write(rw6(b)),
            OperationCode::READ_10 => Cdb::Read(rw10(b)),
            OperationCode::WRITE_10 => Cdb::Write(rw10(b)),
            OperationCode::READ_16 => Cdb::Read(rw16(b)),
            OperationCode::WRITE_16 => Cdb::Write(rw16(b)),
            OperationCode::SYNCHRONIZE_CACHE_10 => Cdb::SynchronizeCache(SynchronizeCache {
                sixteen: false,
                immed: b[1] & 0x02 != 0,
                lba: be32(b, 2) as u64,
                blocks: be16(b, 7) as u32,
                group: b[6] & 0x1F,
            }),
            OperationCode::SYNCHRONIZE_CACHE_16 => Cdb::SynchronizeCache(SynchronizeCache {
                sixteen: true,
                immed: b[1] & 0x02 != 0,
                lba: be64(b, 2),
                blocks: be32(b, 10),
                group: b[14] & 0x1F,
            }),
            OperationCode::WRITE_SAME_16 => {
                let ws = WriteSame16 {
                    wrprotect: b[1] >> 5,
                    anchor: b[1] & 0x10 != 0,
                    unmap: b[1] & 0x08 != 0,
                    ndob: b[1] & 0x01 != 0,
                    lba: be64(b, 2),
                    blocks: be32(b, 10),
                    group: b[14] & 0x1F,
                };
                // SBC-3 §5.42: ANCHOR set with UNMAP clear shall be rejected.
                if ws.anchor && !ws.unmap {
                    return Err(CdbError::InvalidField {
                        byte: 1,
                        bit: Some(4),
                        what: "ANCHOR without UNMAP",
                    });
                }
                Cdb::WriteSame16(ws)
            }
            OperationCode::UNMAP => Cdb::Unmap(Unmap {
                anchor: b[1] & 0x01 != 0,
                group: b[6] & 0x1F,
                param_list_len: be16(b, 7),
            }),
            OperationCode::REPORT_LUNS => {
                let rl = ReportLuns {
                    select_report: b[2],
                    alloc_len: be32(b, 6),
                };
                // SPC-4 §6.33: an allocation length under 16 shall be rejected.
                if rl.alloc_len < 16 {
                    return Err(CdbError::InvalidField {
                        byte: 6,
                        bit: None,
                        what: "allocation length under 16",
                    });
                }
                Cdb::ReportLuns(rl)
            }
            _ => return Err(CdbError::UnsupportedOpcode(op)),
        };
        Ok(cdb)
    }

    /// The operation code.
    pub fn opcode(&self) -> OperationCode {
        match self {
            Cdb::TestUnitReady => OperationCode::TEST_UNIT_READY,
            Cdb::RequestSense(_) => OperationCode::REQUEST_SENSE,
            Cdb::ReadBlockLimits => OperationCode::READ_BLOCK_LIMITS,
            Cdb::Inquiry(_) => OperationCode::INQUIRY,
            Cdb::ModeSense(m) if m.ten => OperationCode::MODE_SENSE_10,
            Cdb::ModeSense(_) => OperationCode::MODE_SENSE_6,
            Cdb::ReadCapacity10(_) => OperationCode::READ_CAPACITY_10,
            Cdb::ReadCapacity16(_) => OperationCode::SERVICE_ACTION_IN_16,
            Cdb::Read(rw) => match rw.size {
                CdbSize::Six => OperationCode::READ_6,
                CdbSize::Ten => OperationCode::READ_10,
                CdbSize::Sixteen => OperationCode::READ_16,
            },
            Cdb::Write(rw) => match rw.size {
                CdbSize::Six => OperationCode::WRITE_6,
                CdbSize::Ten => OperationCode::WRITE_10,
                CdbSize::Sixteen => OperationCode::WRITE_16,
            },
            Cdb::SynchronizeCache(s) if s.sixteen => OperationCode::SYNCHRONIZE_CACHE_16,
            Cdb::SynchronizeCache(_) => OperationCode::SYNCHRONIZE_CACHE_10,
            Cdb::WriteSame16(_) => OperationCode::WRITE_SAME_16,
            Cdb::Unmap(_) => OperationCode::UNMAP,
            Cdb::ReportLuns(_) => OperationCode::REPORT_LUNS,
        }
    }

    /// Which way data moves.
    pub fn direction(&self) -> Direction {
        match self {
            Cdb::Write(_) | Cdb::WriteSame16(WriteSame16 { ndob: false, .. }) => Direction::Write,
            Cdb::Unmap(u) if u.param_list_len > 0 => Direction::Write,
            Cdb::TestUnitReady | Cdb::SynchronizeCache(_) | Cdb::WriteSame16(_) | Cdb::Unmap(_) => {
                Direction::None
            }
            _ => Direction::Read,
        }
    }

    /// CDB length in bytes.
    pub fn buffer_len(&self) -> usize {
        // Every opcode `opcode()` returns has a group with a defined length.
        self.opcode().cdb_len().unwrap_or(16)
    }

    /// Writes the CDB into `buf[..self.buffer_len()]` (panics if shorter). The control byte is
    /// zero. Fields wider than their CDB form holds are truncated.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        b[0] = self.opcode().0;
        match self {
            Cdb::TestUnitReady | Cdb::ReadBlockLimits => {}
            Cdb::RequestSense(r) => {
                b[1] = r.desc as u8;
                b[4] = r.alloc_len;
            }
            Cdb::Inquiry(i) => {
                b[1] = i.evpd as u8;
                b[2] = i.page_code;
                put_be16(b, 3, i.alloc_len);
            }
            Cdb::ModeSense(m) => {
                b[1] = (m.dbd as u8) << 3 | ((m.llbaa && m.ten) as u8) << 4;
                b[2] = (m.pc & 0x3) << 6 | (m.page_code & 0x3F);
                b[3] = m.subpage;
                if m.ten {
                    put_be16(b, 7, m.alloc_len);
                } else {
                    b[4] = m.alloc_len as u8;
                }
            }
            Cdb::ReadCapacity10(r) => {
                put_be32(b, 2, r.lba);
                b[8] = r.pmi as u8;
            }
            Cdb::ReadCapacity16(r) => {
                b[1] = SA_READ_CAPACITY_16;
                put_be64(b, 2, r.lba);
                put_be32(b, 10, r.alloc_len);
                b[14] = r.pmi as u8;
            }
            Cdb::Read(rw) | Cdb::Write(rw) => match rw.size {
                CdbSize::Six => {
                    b[1] = (rw.lba >> 16) as u8 & 0x1F;
                    put_be16(b, 2, rw.lba as u16);
                    // SBC-3: a transfer length of zero means 256 blocks.
                    b[4] = if rw.blocks == 256 { 0 } else { rw.blocks as u8 };
                }
                CdbSize::Ten => {
                    b[1] = rw_flags(rw);
                    put_be32(b, 2, rw.lba as u32);
                    b[6] = rw.group & 0x1F;
                    put_be16(b, 7, rw.blocks as u16);
                }
                CdbSize::Sixteen => {
                    b[1] = rw_flags(rw);
                    put_be64(b, 2, rw.lba);
                    put_be32(b, 10, rw.blocks);
                    b[14] = rw.group & 0x1F;
                }
            },
            Cdb::SynchronizeCache(s) => {
                b[1] = (s.immed as u8) << 1;
                if s.sixteen {
                    put_be64(b, 2, s.lba);
                    put_be32(b, 10, s.blocks);
                    b[14] = s.group & 0x1F;
                } else {
                    put_be32(b, 2, s.lba as u32);
                    b[6] = s.group & 0x1F;
                    put_be16(b, 7, s.blocks as u16);
                }
            }
            Cdb::WriteSame16(w) => {
                b[1] = (w.wrprotect & 0x7) << 5
                    | (w.anchor as u8) << 4
                    | (w.unmap as u8) << 3
                    | w.ndob as u8;
                put_be64(b, 2, w.lba);
                put_be32(b, 10, w.blocks);
                b[14] = w.group & 0x1F;
            }
            Cdb::Unmap(u) => {
                b[1] = u.anchor as u8;
                b[6] = u.group & 0x1F;
                put_be16(b, 7, u.param_list_len);
            }
            Cdb::ReportLuns(r) => {
                b[2] = r.select_report;
                put_be32(b, 6, r.alloc_len);
            }
        }
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

fn rw6(b: &[u8]) -> ReadWrite {
    let blocks = if b[4] == 0 { 256 } else { b[4] as u32 };
    ReadWrite {
        size: CdbSize::Six,
        lba: ((b[1] & 0x1F) as u64) << 16 | be16(b, 2) as u64,
        blocks,
        ..ReadWrite::default()
    }
}

fn rw10(b: &[u8]) -> ReadWrite {
    ReadWrite {
        size: CdbSize::Ten,
        lba: be32(b, 2) as u64,
        blocks: be16(b, 7) as u32,
        protect: b[1] >> 5,
        dpo: b[1] & 0x10 != 0,
        fua: b[1] & 0x08 != 0,
        group: b[6] & 0x1F,
    }
}

fn rw16(b: &[u8]) -> ReadWrite {
    ReadWrite {
        size: CdbSize::Sixteen,
        lba: be64(b, 2),
        blocks: be32(b, 10),
        protect: b[1] >> 5,
        dpo: b[1] & 0x10 != 0,
        fua: b[1] & 0x08 != 0,
        group: b[14] & 0x1F,
    }
}

fn rw_flags(rw: &ReadWrite) -> u8 {
    (rw.protect & 0x7) << 5 | (rw.dpo as u8) << 4 | (rw.fua as u8) << 3
}

/// `READ(10) lba=2048 blocks=8 fua`, `INQUIRY vpd=0x83 alloc=255`.
impl fmt::Display for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.opcode())?;
        match self {
            Cdb::TestUnitReady | Cdb::ReadBlockLimits => Ok(()),
            Cdb::RequestSense(r) => write!(
                f,
                " alloc={}{}",
                r.alloc_len,
                if r.desc { " desc" } else { "" }
            ),
            Cdb::Inquiry(i) if i.evpd => {
                write!(f, " vpd={:#04x} alloc={}", i.page_code, i.alloc_len)
            }
            Cdb::Inquiry(i) => write!(f, " alloc={}", i.alloc_len),
            Cdb::ModeSense(m) => write!(
                f,
                " page={:#04x}/{:#04x} pc={} alloc={}{}",
                m.page_code,
                m.subpage,
                m.pc,
                m.alloc_len,
                if m.dbd { " dbd" } else { "" }
            ),
            Cdb::ReadCapacity10(_) => Ok(()),
            Cdb::ReadCapacity16(r) => write!(f, " READ CAPACITY(16) alloc={}", r.alloc_len),
            Cdb::Read(rw) | Cdb::Write(rw) => {
                write!(f, " lba={} blocks={}", rw.lba, rw.blocks)?;
                if rw.fua {
                    f.write_str(" fua")?;
                }
                if rw.dpo {
                    f.write_str(" dpo")?;
                }
                Ok(())
            }
            Cdb::SynchronizeCache(s) => write!(
                f,
                " lba={} blocks={}{}",
                s.lba,
                s.blocks,
                if s.immed { " immed" } else { "" }
            ),
            Cdb::WriteSame16(w) => write!(
                f,
                " lba={} blocks={}{}{}",
                w.lba,
                w.blocks,
                if w.unmap { " unmap" } else { "" },
                if w.ndob { " ndob" } else { "" }
            ),
            Cdb::Unmap(u) => write!(f, " param_len={}", u.param_list_len),
            Cdb::ReportLuns(r) => write!(f, " select={} alloc={}", r.select_report, r.alloc_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::scsi::sense::{AdditionalSense, SenseKey};

    /// (bytes, repr) pairs; the READ/WRITE and INQUIRY vectors were read back with tshark
    /// (scsi_sbc.rdwr10.lba, scsi_sbc.rdwr10.xferlen, scsi_sbc.rdwr16.lba, scsi.inquiry.evpd).
    fn vectors() -> Vec<(Vec<u8>, Cdb)> {
        vec![
            (hex!("00 00 00 00 00 00").to_vec(), Cdb::TestUnitReady),
            (
                hex!("03 01 00 00 fc 00").to_vec(),
                Cdb::RequestSense(RequestSense {
                    desc: true,
                    alloc_len: 252,
                }),
            ),
            (hex!("05 00 00 00 00 00").to_vec(), Cdb::ReadBlockLimits),
            (
                hex!("12 00 00 00 60 00").to_vec(),
                Cdb::Inquiry(Inquiry {
                    evpd: false,
                    page_code: 0,
                    alloc_len: 96,
                }),
            ),
            (
                hex!("12 01 83 00 ff 00").to_vec(),
                Cdb::Inquiry(Inquiry {
                    evpd: true,
                    page_code: 0x83,
                    alloc_len: 255,
                }),
            ),
            (
                hex!("1a 08 3f 00 ff 00").to_vec(),
                Cdb::ModeSense(ModeSense {
                    dbd: true,
                    page_code: 0x3F,
                    alloc_len: 255,
                    ..ModeSense::default()
                }),
            ),
            (
                hex!("5a 10 48 ff 00 00 00 10 00 00").to_vec(),
                Cdb::ModeSense(ModeSense {
                    ten: true,
                    llbaa: true,
                    pc: 1,
                    page_code: 0x08,
                    subpage: 0xFF,
                    alloc_len: 4096,
                    ..ModeSense::default()
                }),
            ),
            (
                hex!("25 00 00 00 00 00 00 00 00 00").to_vec(),
                Cdb::ReadCapacity10(ReadCapacity10::default()),
            ),
            (
                hex!("9e 10 0000000000000000 00000020 00 00").to_vec(),
                Cdb::ReadCapacity16(ReadCapacity16 {
                    lba: 0,
                    alloc_len: 32,
                    pmi: false,
                }),
            ),
            (
                hex!("08 01 00 10 00 00").to_vec(),
                Cdb::Read(ReadWrite {
                    size: CdbSize::Six,
                    lba: 0x1_0010,
                    blocks: 256,
                    ..ReadWrite::default()
                }),
            ),
            (
                hex!("0a 00 10 00 01 00").to_vec(),
                Cdb::Write(ReadWrite {
                    size: CdbSize::Six,
                    lba: 0x1000,
                    blocks: 1,
                    ..ReadWrite::default()
                }),
            ),
            (
                hex!("28 18 00000800 03 0008 00").to_vec(),
                Cdb::Read(ReadWrite {
                    size: CdbSize::Ten,
                    lba: 2048,
                    blocks: 8,
                    dpo: true,
                    fua: true,
                    group: 3,
                    ..ReadWrite::default()
                }),
            ),
            (
                hex!("2a 00 00000800 00 0008 00").to_vec(),
                Cdb::Write(ReadWrite::new(2048, 8)),
            ),
            (
                hex!("88 00 0000000100000000 00000001 00 00").to_vec(),
                Cdb::Read(ReadWrite::new(0x1_0000_0000, 1)),
            ),
            (
                hex!("8a 08 0000000000001000 00010000 00 00").to_vec(),
                Cdb::Write(ReadWrite {
                    fua: true,
                    ..ReadWrite::new(0x1000, 0x1_0000)
                }),
            ),
            (
                hex!("35 02 00000000 00 0000 00").to_vec(),
                Cdb::SynchronizeCache(SynchronizeCache {
                    immed: true,
                    ..SynchronizeCache::default()
                }),
            ),
            (
                hex!("91 00 0000000000000010 00000020 00 00").to_vec(),
                Cdb::SynchronizeCache(SynchronizeCache {
                    sixteen: true,
                    lba: 16,
                    blocks: 32,
                    ..SynchronizeCache::default()
                }),
            ),
            (
                hex!("93 08 0000000000001000 00000040 00 00").to_vec(),
                Cdb::WriteSame16(WriteSame16 {
                    unmap: true,
                    lba: 4096,
                    blocks: 64,
                    ..WriteSame16::default()
                }),
            ),
            (
                hex!("42 00 00 00 00 00 00 0018 00").to_vec(),
                Cdb::Unmap(Unmap {
                    param_list_len: 24,
                    ..Unmap::default()
                }),
            ),
            (
                hex!("a0 00 00 00 00 00 00000010 00 00").to_vec(),
                Cdb::ReportLuns(ReportLuns {
                    select_report: 0,
                    alloc_len: 16,
                }),
            ),
        ]
    }

    #[test]
    fn test_parse() {
        for (bytes, cdb) in vectors() {
            assert_eq!(Cdb::parse(&bytes), Ok(cdb), "{bytes:02x?}");
            // Padded to 16 as FCP carries it.
            let mut padded = bytes.clone();
            padded.resize(16.max(bytes.len()), 0);
            assert_eq!(Cdb::parse(&padded), Ok(cdb));
        }
    }

    #[test]
    fn test_emit() {
        for (bytes, cdb) in vectors() {
            assert_eq!(cdb.to_vec(), bytes, "{cdb}");
            assert_eq!(cdb.buffer_len(), bytes.len());
        }
    }

    #[test]
    fn test_display() {
        let rw = Cdb::parse(&hex!("28 08 00001000 00 0008 00")).unwrap();
        assert_eq!(rw.to_string(), "READ(10) lba=4096 blocks=8 fua");
        let inq = Cdb::parse(&hex!("12 01 83 00 ff 00")).unwrap();
        assert_eq!(inq.to_string(), "INQUIRY vpd=0x83 alloc=255");
    }

    #[test]
    fn test_truncated() {
        for (bytes, _) in vectors() {
            for len in 0..bytes.len() {
                assert!(
                    matches!(Cdb::parse(&bytes[..len]), Err(CdbError::Len(_))),
                    "{:02x?}",
                    &bytes[..len]
                );
            }
        }
    }

    #[test]
    fn test_unsupported_opcode() {
        assert_eq!(
            Cdb::parse(&hex!("c0 00 00 00 00 00")),
            Err(CdbError::UnsupportedOpcode(OperationCode(0xC0)))
        );
        assert_eq!(
            Cdb::parse(&hex!("7f 00 00 00 00 00 00 00 00 00")),
            Err(CdbError::UnsupportedOpcode(OperationCode(0x7F)))
        );
        // A known group with an opcode not typed here: VERIFY(10).
        let err = Cdb::parse(&hex!("2f 00 00000000 00 0001 00")).unwrap_err();
        assert_eq!(err, CdbError::UnsupportedOpcode(OperationCode::VERIFY_10));
        let sense = err.sense();
        assert_eq!(sense.key, SenseKey::ILLEGAL_REQUEST);
        assert_eq!(
            sense.additional,
            AdditionalSense::INVALID_COMMAND_OPERATION_CODE
        );
    }

    #[test]
    fn test_unsupported_service_action() {
        // GET LBA STATUS (SA 0x12) is not implemented.
        let err = Cdb::parse(&hex!("9e 12 0000000000000000 00000020 00 00")).unwrap_err();
        assert_eq!(
            err,
            CdbError::UnsupportedServiceAction {
                opcode: OperationCode::SERVICE_ACTION_IN_16,
                service_action: 0x12
            }
        );
        assert_eq!(
            err.sense().additional,
            AdditionalSense::INVALID_COMMAND_OPERATION_CODE
        );
    }

    fn invalid_field(bytes: &[u8], byte: u16, bit: Option<u8>) {
        match Cdb::parse(bytes) {
            Err(e @ CdbError::InvalidField { .. }) => {
                let sense = e.sense();
                assert_eq!(sense.key, SenseKey::ILLEGAL_REQUEST);
                assert_eq!(sense.additional, AdditionalSense::INVALID_FIELD_IN_CDB);
                let fp = sense.field_pointer().expect("field pointer");
                assert!(fp.in_cdb);
                assert_eq!((fp.byte, fp.bit), (byte, bit), "{bytes:02x?}");
            }
            other => panic!("{bytes:02x?}: {other:?}"),
        }
    }

    #[test]
    fn test_invalid_fields() {
        invalid_field(&hex!("12 00 83 00 ff 00"), 2, None); // page code without EVPD
        invalid_field(&hex!("a0 00 00 00 00 00 0000000f 00 00"), 6, None); // alloc < 16
        invalid_field(&hex!("25 00 00000001 00 00 00 00"), 2, None); // LBA without PMI
        invalid_field(&hex!("9e 10 0000000000000001 00000020 00 00"), 2, None);
        invalid_field(&hex!("93 10 0000000000000000 00000001 00 00"), 1, Some(4)); // ANCHOR
        invalid_field(&hex!("28 00 00000000 00 0001 04"), 9, Some(2)); // NACA
        invalid_field(&hex!("00 00 00 00 00 04"), 5, Some(2));
    }

    #[test]
    fn test_transfer_bytes_and_direction() {
        let rw = ReadWrite::new(0, u32::MAX);
        assert_eq!(rw.transfer_bytes(512), Some(u32::MAX as u64 * 512));
        assert_eq!(ReadWrite::new(0, 8).transfer_bytes(4096), Some(32768));
        assert_eq!(Cdb::Read(rw).direction(), Direction::Read);
        assert_eq!(Cdb::Write(rw).direction(), Direction::Write);
        assert_eq!(Cdb::TestUnitReady.direction(), Direction::None);
        assert_eq!(
            Cdb::Unmap(Unmap {
                param_list_len: 24,
                ..Unmap::default()
            })
            .direction(),
            Direction::Write
        );
        assert_eq!(ReadWrite::new(1 << 32, 1).size, CdbSize::Sixteen);
        assert_eq!(ReadWrite::new(0, 1 << 16).size, CdbSize::Sixteen);
    }

    fn arb_rw() -> impl Strategy<Value = ReadWrite> {
        prop_oneof![
            (0u64..1 << 21, 1u32..=256).prop_map(|(lba, blocks)| ReadWrite {
                size: CdbSize::Six,
                lba,
                blocks,
                ..ReadWrite::default()
            }),
            (
                any::<u32>(),
                any::<u16>(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                0u8..32
            )
                .prop_map(|(lba, blocks, protect, dpo, fua, group)| ReadWrite {
                    size: CdbSize::Ten,
                    lba: lba as u64,
                    blocks: blocks as u32,
                    protect,
                    dpo,
                    fua,
                    group,
                }),
            (
                any::<u64>(),
                any::<u32>(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                0u8..32
            )
                .prop_map(|(lba, blocks, protect, dpo, fua, group)| ReadWrite {
                    size: CdbSize::Sixteen,
                    lba,
                    blocks,
                    protect,
                    dpo,
                    fua,
                    group,
                }),
        ]
    }

    pub(crate) fn arb_cdb() -> impl Strategy<Value = Cdb> {
        prop_oneof![
            Just(Cdb::TestUnitReady),
            Just(Cdb::ReadBlockLimits),
            (any::<bool>(), any::<u8>())
                .prop_map(|(desc, alloc_len)| Cdb::RequestSense(RequestSense { desc, alloc_len })),
            (any::<u8>(), any::<u16>()).prop_map(|(page_code, alloc_len)| Cdb::Inquiry(Inquiry {
                evpd: true,
                page_code,
                alloc_len
            })),
            any::<u16>().prop_map(|alloc_len| Cdb::Inquiry(Inquiry {
                evpd: false,
                page_code: 0,
                alloc_len
            })),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                0u8..4,
                0u8..64,
                any::<u8>(),
                any::<u16>()
            )
                .prop_map(|(ten, dbd, llbaa, pc, page_code, subpage, alloc_len)| {
                    Cdb::ModeSense(ModeSense {
                        ten,
                        dbd,
                        llbaa: llbaa && ten,
                        pc,
                        page_code,
                        subpage,
                        alloc_len: if ten { alloc_len } else { alloc_len & 0xFF },
                    })
                }),
            any::<u32>().prop_map(|lba| Cdb::ReadCapacity10(ReadCapacity10 { lba, pmi: true })),
            (any::<u64>(), any::<u32>()).prop_map(|(lba, alloc_len)| Cdb::ReadCapacity16(
                ReadCapacity16 {
                    lba,
                    alloc_len,
                    pmi: true
                }
            )),
            arb_rw().prop_map(Cdb::Read),
            arb_rw().prop_map(Cdb::Write),
            (
                any::<bool>(),
                any::<bool>(),
                any::<u64>(),
                any::<u32>(),
                0u8..32
            )
                .prop_map(
                    |(sixteen, immed, lba, blocks, group)| Cdb::SynchronizeCache(
                        SynchronizeCache {
                            sixteen,
                            immed,
                            lba: if sixteen { lba } else { lba & 0xFFFF_FFFF },
                            blocks: if sixteen { blocks } else { blocks & 0xFFFF },
                            group,
                        }
                    )
                ),
            (
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                any::<u64>(),
                any::<u32>(),
                0u8..32
            )
                .prop_map(|(wrprotect, unmap, ndob, lba, blocks, group)| {
                    Cdb::WriteSame16(WriteSame16 {
                        wrprotect,
                        anchor: unmap,
                        unmap,
                        ndob,
                        lba,
                        blocks,
                        group,
                    })
                }),
            (any::<bool>(), 0u8..32, any::<u16>()).prop_map(|(anchor, group, param_list_len)| {
                Cdb::Unmap(Unmap {
                    anchor,
                    group,
                    param_list_len,
                })
            }),
            (any::<u8>(), 16u32..).prop_map(|(select_report, alloc_len)| Cdb::ReportLuns(
                ReportLuns {
                    select_report,
                    alloc_len
                }
            )),
        ]
    }

    proptest! {
        #[test]
        fn prop_round_trip(cdb in arb_cdb()) {
            prop_assert_eq!(Cdb::parse(&cdb.to_vec()), Ok(cdb));
        }

        #[test]
        fn prop_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(cdb) = Cdb::parse(&bytes) {
                // What parses re-parses to the same command from its own encoding.
                prop_assert_eq!(Cdb::parse(&cdb.to_vec()), Ok(cdb));
            }
        }
    }
}
