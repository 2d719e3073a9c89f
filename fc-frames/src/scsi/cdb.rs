//! Typed SCSI command descriptor blocks (SAM-5 §5.2, SPC-4 §4.2 and §6, SBC-3 §5, SSC-3 §7):
//! what a target's SCSI engine parses out of every FCP_CMND, and what an initiator builds.
//!
//! ```text
//!  byte 0: OPERATION CODE            bytes 1 .. n-2               byte n-1
//!        7   6   5   4   3   2   1   0
//!      |   GROUP   |   COMMAND CODE    |  command-specific fields  | CONTROL |
//!
//!  GROUP  0: 6 bytes   1, 2: 10 bytes   3: reserved, variable length (0x7E, 0x7F)
//!         4: 16 bytes  5: 12 bytes      6, 7: vendor specific
//!
//!  CONTROL (SAM-5 §5.2):  7 6 vendor specific | 5 4 3 reserved | 2 NACA | 1 obsolete | 0 obsolete
//!
//!  The block-command forms (SBC-3 §5):
//!   6-byte  | op | LBA 20-16 | LBA 15-0 (2) | TRANSFER LENGTH | CONTROL |
//!  10-byte  | op | flags | LBA (4) | GROUP | TRANSFER LENGTH (2) | CONTROL |
//!  12-byte  | op | flags | LBA (4) | TRANSFER LENGTH (4) | GROUP | CONTROL |
//!  16-byte  | op | flags | LBA (8) | TRANSFER LENGTH (4) | GROUP | CONTROL |
//! ```
//!
//! [`Cdb::parse`] reads a CDB from the front of a buffer (FCP carries CDBs padded to 16 bytes
//! or more; the bytes after the opcode's length are ignored), [`Cdb::emit`] writes one back.
//! Every command has its own struct with the same `parse`/`buffer_len`/`emit`/`to_vec`, and
//! keeps its CONTROL byte, so emitting what was parsed gives the same bytes except for reserved
//! and obsolete bits, which are not kept. For logging a CDB that does not parse,
//! `OperationCode::from(cdb[0])` names the command and [`OperationCode::cdb_len`] gives its
//! length.
//!
//! # Errors, and the sense a target answers with
//! [`CdbError::sense`] builds it (CHECK CONDITION, ILLEGAL REQUEST):
//!
//! | error | additional sense | field pointer |
//! |---|---|---|
//! | [`CdbError::UnsupportedOpcode`] | INVALID COMMAND OPERATION CODE (0x20/0x00) | none |
//! | [`CdbError::UnsupportedServiceAction`] | INVALID COMMAND OPERATION CODE (0x20/0x00), as SPC-4 §4.2.5 says for a service action the device server does not support | none |
//! | [`CdbError::InvalidField`] | INVALID FIELD IN CDB (0x24/0x00) | byte and bit of the field (SPC-4 §4.5.2.4) |
//! | [`CdbError::Len`] | INVALID FIELD IN CDB (0x24/0x00) | none |
//!
//! # What `parse` rejects, and what it leaves to the engine
//! SPC-4 §3.5 (the keyword *reserved*) does not require a recipient to check reserved bits and
//! fields, and the targets initiators are tested against (LIO, SCST, tgt; libiscsi's
//! `iscsi-test-cu` is the yardstick here) mostly do not: reserved and obsolete bits are
//! ignored, and reserved values of defined fields (SELECT REPORT, BYTCHK 10b) are kept as data.
//! `parse` rejects only what the standards make invalid whatever the device supports, each
//! rule paraphrased where it is enforced (the standards' text was not at hand; SBC-3 subclause
//! numbers move between revisions, so SBC-3 commands are cited by name):
//! - INQUIRY with EVPD zero and a non-zero PAGE CODE (SPC-4 §6.6.1; libiscsi `Inquiry.EVPD`),
//!   and INQUIRY with the obsolete CMDDT bit set (SPC-2 §7.3; SCST and Linux `scsi_debug` reject it);
//! - REPORT LUNS with an allocation length under 16 (SPC-4 §6.33);
//! - READ CAPACITY(10)/(16) with a non-zero LBA and PMI zero (SBC-3 §5; libiscsi
//!   `ReadCapacity10.PMI`);
//! - WRITE SAME(16) with ANCHOR set and UNMAP clear (SBC-3 §5; libiscsi `WriteSame16.Unmap`).
//!
//! Everything whose validity depends on the logical unit is kept as data for the engine: LBA
//! ranges, RDPROTECT/WRPROTECT/VRPROTECT without protection information, DPO/FUA, MODE SENSE page
//! control 3 (saved values) and unknown pages, REQUEST SENSE DESC, REPORT LUNS SELECT REPORT,
//! ANCHOR without anchor support, the NACA bit of the control byte ([`Cdb::naca_error`] gives the
//! error for an engine without ACA).
//!
//! # Device types
//! Opcodes are read as SPC-4 and SBC-3 (direct access) define them. Some opcodes mean other
//! commands to a tape drive (SSC-3: READ(6)/WRITE(6) carry FIXED/SILI and a 24-bit length, 0x91
//! is SPACE(16), 0x93 ERASE(16)); a tape engine decodes those itself. Of SSC-3 this module types
//! READ BLOCK LIMITS.

mod sbc;
mod spc;
mod ssc;
#[cfg(test)]
pub(crate) mod strategies;

use core::fmt;

use bitflags::bitflags;

use crate::error::{Layer, LenError};
use crate::fcp::DataDirection;
use crate::scsi::sense::{AdditionalSense, Sense};

pub use sbc::{
    CdbSize, Read, ReadCapacity10, ReadCapacity16, SyncCacheSize, SynchronizeCache, Unmap, Verify,
    VerifySize, Write, WriteSame16,
};
pub use spc::{Inquiry, ModeSelect, ModeSense, ReportLuns, RequestSense, TestUnitReady};
pub use ssc::ReadBlockLimits;

code_point! {
    /// OPERATION CODE, the first byte of every CDB (SPC-4 §4.2.5.1). Open: any byte is data; the
    /// names are those of SPC-4 and SBC-3 (see the module docs for tape).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct OperationCode(pub u8) {
        /// TEST UNIT READY (SPC-4 §6.47).
        TEST_UNIT_READY = 0x00 => "TEST UNIT READY",
        /// REWIND (SSC-3).
        REWIND = 0x01 => "REWIND",
        /// REQUEST SENSE (SPC-4 §6.39).
        REQUEST_SENSE = 0x03 => "REQUEST SENSE",
        /// FORMAT UNIT (SBC-3).
        FORMAT_UNIT = 0x04 => "FORMAT UNIT",
        /// READ BLOCK LIMITS (SSC-3 §7.7).
        READ_BLOCK_LIMITS = 0x05 => "READ BLOCK LIMITS",
        /// READ(6) (SBC-3 §5).
        READ_6 = 0x08 => "READ(6)",
        /// WRITE(6) (SBC-3 §5).
        WRITE_6 = 0x0A => "WRITE(6)",
        /// INQUIRY (SPC-4 §6.6).
        INQUIRY = 0x12 => "INQUIRY",
        /// MODE SELECT(6) (SPC-4 §6.9).
        MODE_SELECT_6 = 0x15 => "MODE SELECT(6)",
        /// RESERVE(6) (SPC-2).
        RESERVE_6 = 0x16 => "RESERVE(6)",
        /// RELEASE(6) (SPC-2).
        RELEASE_6 = 0x17 => "RELEASE(6)",
        /// MODE SENSE(6) (SPC-4 §6.11).
        MODE_SENSE_6 = 0x1A => "MODE SENSE(6)",
        /// START STOP UNIT (SBC-3); LOAD UNLOAD to a tape drive.
        START_STOP_UNIT = 0x1B => "START STOP UNIT",
        /// RECEIVE DIAGNOSTIC RESULTS (SPC-4).
        RECEIVE_DIAGNOSTIC_RESULTS = 0x1C => "RECEIVE DIAGNOSTIC RESULTS",
        /// SEND DIAGNOSTIC (SPC-4).
        SEND_DIAGNOSTIC = 0x1D => "SEND DIAGNOSTIC",
        /// PREVENT ALLOW MEDIUM REMOVAL (SPC-4).
        PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E => "PREVENT ALLOW MEDIUM REMOVAL",
        /// READ CAPACITY(10) (SBC-3 §5).
        READ_CAPACITY_10 = 0x25 => "READ CAPACITY(10)",
        /// READ(10) (SBC-3 §5).
        READ_10 = 0x28 => "READ(10)",
        /// WRITE(10) (SBC-3 §5).
        WRITE_10 = 0x2A => "WRITE(10)",
        /// WRITE AND VERIFY(10) (SBC-3).
        WRITE_AND_VERIFY_10 = 0x2E => "WRITE AND VERIFY(10)",
        /// VERIFY(10) (SBC-3 §5).
        VERIFY_10 = 0x2F => "VERIFY(10)",
        /// SYNCHRONIZE CACHE(10) (SBC-3 §5).
        SYNCHRONIZE_CACHE_10 = 0x35 => "SYNCHRONIZE CACHE(10)",
        /// WRITE BUFFER (SPC-4).
        WRITE_BUFFER = 0x3B => "WRITE BUFFER",
        /// READ BUFFER (SPC-4).
        READ_BUFFER = 0x3C => "READ BUFFER",
        /// WRITE SAME(10) (SBC-3).
        WRITE_SAME_10 = 0x41 => "WRITE SAME(10)",
        /// UNMAP (SBC-3 §5).
        UNMAP = 0x42 => "UNMAP",
        /// LOG SELECT (SPC-4).
        LOG_SELECT = 0x4C => "LOG SELECT",
        /// LOG SENSE (SPC-4).
        LOG_SENSE = 0x4D => "LOG SENSE",
        /// MODE SELECT(10) (SPC-4 §6.10).
        MODE_SELECT_10 = 0x55 => "MODE SELECT(10)",
        /// MODE SENSE(10) (SPC-4 §6.12).
        MODE_SENSE_10 = 0x5A => "MODE SENSE(10)",
        /// PERSISTENT RESERVE IN (SPC-4).
        PERSISTENT_RESERVE_IN = 0x5E => "PERSISTENT RESERVE IN",
        /// PERSISTENT RESERVE OUT (SPC-4).
        PERSISTENT_RESERVE_OUT = 0x5F => "PERSISTENT RESERVE OUT",
        /// EXTENDED COPY (SPC-4).
        EXTENDED_COPY = 0x83 => "EXTENDED COPY",
        /// RECEIVE COPY RESULTS (SPC-4).
        RECEIVE_COPY_RESULTS = 0x84 => "RECEIVE COPY RESULTS",
        /// READ(16) (SBC-3 §5).
        READ_16 = 0x88 => "READ(16)",
        /// COMPARE AND WRITE (SBC-3).
        COMPARE_AND_WRITE = 0x89 => "COMPARE AND WRITE",
        /// WRITE(16) (SBC-3 §5).
        WRITE_16 = 0x8A => "WRITE(16)",
        /// WRITE AND VERIFY(16) (SBC-3).
        WRITE_AND_VERIFY_16 = 0x8E => "WRITE AND VERIFY(16)",
        /// VERIFY(16) (SBC-3 §5).
        VERIFY_16 = 0x8F => "VERIFY(16)",
        /// PRE-FETCH(16) (SBC-3).
        PRE_FETCH_16 = 0x90 => "PRE-FETCH(16)",
        /// SYNCHRONIZE CACHE(16) (SBC-3 §5); SPACE(16) to a tape drive.
        SYNCHRONIZE_CACHE_16 = 0x91 => "SYNCHRONIZE CACHE(16)",
        /// WRITE SAME(16) (SBC-3 §5); ERASE(16) to a tape drive.
        WRITE_SAME_16 = 0x93 => "WRITE SAME(16)",
        /// SERVICE ACTION IN(16): READ CAPACITY(16) is its service action 0x10 (SBC-3 §5).
        SERVICE_ACTION_IN_16 = 0x9E => "SERVICE ACTION IN(16)",
        /// SERVICE ACTION OUT(16) (SBC-3).
        SERVICE_ACTION_OUT_16 = 0x9F => "SERVICE ACTION OUT(16)",
        /// REPORT LUNS (SPC-4 §6.33).
        REPORT_LUNS = 0xA0 => "REPORT LUNS",
        /// MAINTENANCE IN (SPC-4): REPORT SUPPORTED OPERATION CODES and others.
        MAINTENANCE_IN = 0xA3 => "MAINTENANCE IN",
        /// MAINTENANCE OUT (SPC-4).
        MAINTENANCE_OUT = 0xA4 => "MAINTENANCE OUT",
        /// READ(12) (SBC-3 §5).
        READ_12 = 0xA8 => "READ(12)",
        /// WRITE(12) (SBC-3 §5).
        WRITE_12 = 0xAA => "WRITE(12)",
        /// VERIFY(12) (SBC-3 §5).
        VERIFY_12 = 0xAF => "VERIFY(12)",
    }

    /// The command's name, for the codes named above.
    pub const fn name;
}

impl OperationCode {
    /// GROUP CODE, bits 7-5.
    pub const fn group(self) -> u8 {
        self.0 >> 5
    }

    /// The CDB length the group code gives (SPC-4 §4.2.5.1): 6 for group 0, 10 for groups 1 and
    /// 2, 16 for group 4, 12 for group 5. `None` for group 3 (reserved, and the
    /// variable-length CDBs 0x7E/0x7F whose length is in the CDB) and for the vendor-specific
    /// groups 6 and 7.
    pub const fn cdb_len(self) -> Option<usize> {
        match self.group() {
            0 => Some(6),
            1 | 2 => Some(10),
            4 => Some(16),
            5 => Some(12),
            _ => None,
        }
    }
}

impl From<u8> for OperationCode {
    fn from(code: u8) -> OperationCode {
        OperationCode(code)
    }
}

impl From<OperationCode> for u8 {
    fn from(op: OperationCode) -> u8 {
        op.0
    }
}

/// The name, or `opcode 0xNN` for a code without one.
impl fmt::Display for OperationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "opcode {:#04x}", self.0),
        }
    }
}

bitflags! {
    /// CONTROL, the last byte of every CDB (SAM-5 §5.2). Every bit is kept: bits 7-6 are vendor
    /// specific, bits 5-3 reserved.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Control: u8 {
        /// NACA (normal ACA): on CHECK CONDITION, establish an ACA condition. A device server
        /// whose INQUIRY data has NORMACA zero terminates such a command with INVALID FIELD IN
        /// CDB ([`Cdb::naca_error`]).
        const NACA = 0x04;
        /// Obsolete (formerly FLAG, for linked commands).
        const FLAG = 0x02;
        /// Obsolete (formerly LINK, for linked commands).
        const LINK = 0x01;
    }
}

/// Why a CDB was not accepted. See the module docs for the sense a target answers each with,
/// and [`CdbError::sense`], which builds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CdbError {
    /// The buffer is shorter than the opcode's CDB length (or empty).
    #[error(transparent)]
    Len(#[from] LenError),
    /// An operation code this module does not type (or, from a command struct's `parse`,
    /// another command's): INVALID COMMAND OPERATION CODE.
    #[error("{0}: operation code not supported")]
    UnsupportedOpcode(OperationCode),
    /// A service action this module does not type: INVALID COMMAND OPERATION CODE
    /// (SPC-4 §4.2.5).
    #[error("{opcode}: service action {service_action:#04x} not supported")]
    UnsupportedServiceAction {
        /// The operation code (e.g. SERVICE ACTION IN(16)).
        opcode: OperationCode,
        /// The SERVICE ACTION field (bits 4-0 of byte 1 for the 16-byte commands).
        service_action: u16,
    },
    /// A field the standard says the device server shall reject: INVALID FIELD IN CDB, with a
    /// sense-key-specific field pointer at `byte` and `bit`.
    #[error("invalid field in CDB byte {byte}{}: {what}", BitSuffix(*bit))]
    InvalidField {
        /// The byte of the CDB that holds the field (its most significant byte).
        byte: u16,
        /// The field's most significant bit within `byte`, or `None` when the field is whole
        /// bytes (the field pointer's BPV zero).
        bit: Option<u8>,
        /// What is wrong.
        what: &'static str,
    },
}

/// ` bit N`, or nothing, for [`CdbError::InvalidField`]'s message.
struct BitSuffix(Option<u8>);

impl fmt::Display for BitSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bit) => write!(f, " bit {bit}"),
            None => Ok(()),
        }
    }
}

impl CdbError {
    /// The sense data a target returns with CHECK CONDITION for this error (fixed format):
    /// ILLEGAL REQUEST with INVALID COMMAND OPERATION CODE, or INVALID FIELD IN CDB with the
    /// field pointer.
    pub const fn sense(&self) -> Sense {
        match self {
            CdbError::UnsupportedOpcode(_) | CdbError::UnsupportedServiceAction { .. } => {
                Sense::invalid_opcode()
            }
            CdbError::InvalidField { byte, bit, .. } => Sense::invalid_field_in_cdb(*byte, *bit),
            CdbError::Len(_) => Sense::illegal_request(AdditionalSense::INVALID_FIELD_IN_CDB),
        }
    }
}

/// A parsed CDB: one variant a command this module types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cdb {
    /// TEST UNIT READY (SPC-4 §6.47).
    TestUnitReady(TestUnitReady),
    /// REQUEST SENSE (SPC-4 §6.39).
    RequestSense(RequestSense),
    /// INQUIRY (SPC-4 §6.6).
    Inquiry(Inquiry),
    /// MODE SENSE(6) and (10) (SPC-4 §6.11, §6.12).
    ModeSense(ModeSense),
    /// MODE SELECT(6) and (10) (SPC-4 §6.9, §6.10).
    ModeSelect(ModeSelect),
    /// REPORT LUNS (SPC-4 §6.33).
    ReportLuns(ReportLuns),
    /// READ CAPACITY(10) (SBC-3 §5).
    ReadCapacity10(ReadCapacity10),
    /// READ CAPACITY(16): SERVICE ACTION IN(16), service action 0x10 (SBC-3 §5).
    ReadCapacity16(ReadCapacity16),
    /// READ(6), (10), (12) and (16) (SBC-3 §5).
    Read(Read),
    /// WRITE(6), (10), (12) and (16) (SBC-3 §5).
    Write(Write),
    /// VERIFY(10), (12) and (16) (SBC-3 §5).
    Verify(Verify),
    /// SYNCHRONIZE CACHE(10) and (16) (SBC-3 §5).
    SynchronizeCache(SynchronizeCache),
    /// WRITE SAME(16) (SBC-3 §5).
    WriteSame16(WriteSame16),
    /// UNMAP (SBC-3 §5).
    Unmap(Unmap),
    /// READ BLOCK LIMITS (SSC-3 §7.7).
    ReadBlockLimits(ReadBlockLimits),
}

impl Cdb {
    /// Parses the CDB at the front of `buf`; bytes past the opcode's CDB length are ignored
    /// (FCP_CMND pads CDBs to 16 bytes). Errors, in this order: an empty buffer (`Len`), an
    /// opcode not typed here (`UnsupportedOpcode`, whatever the length), a buffer shorter than
    /// the CDB (`Len`), an unknown service action, an invalid field.
    pub fn parse(buf: &[u8]) -> Result<Cdb, CdbError> {
        let op = opcode_of(buf)?;
        Ok(match op {
            OperationCode::TEST_UNIT_READY => Cdb::TestUnitReady(TestUnitReady::parse(buf)?),
            OperationCode::REQUEST_SENSE => Cdb::RequestSense(RequestSense::parse(buf)?),
            OperationCode::INQUIRY => Cdb::Inquiry(Inquiry::parse(buf)?),
            OperationCode::MODE_SENSE_6 | OperationCode::MODE_SENSE_10 => {
                Cdb::ModeSense(ModeSense::parse(buf)?)
            }
            OperationCode::MODE_SELECT_6 | OperationCode::MODE_SELECT_10 => {
                Cdb::ModeSelect(ModeSelect::parse(buf)?)
            }
            OperationCode::REPORT_LUNS => Cdb::ReportLuns(ReportLuns::parse(buf)?),
            OperationCode::READ_CAPACITY_10 => Cdb::ReadCapacity10(ReadCapacity10::parse(buf)?),
            OperationCode::SERVICE_ACTION_IN_16 => Cdb::ReadCapacity16(ReadCapacity16::parse(buf)?),
            OperationCode::READ_6
            | OperationCode::READ_10
            | OperationCode::READ_12
            | OperationCode::READ_16 => Cdb::Read(Read::parse(buf)?),
            OperationCode::WRITE_6
            | OperationCode::WRITE_10
            | OperationCode::WRITE_12
            | OperationCode::WRITE_16 => Cdb::Write(Write::parse(buf)?),
            OperationCode::VERIFY_10 | OperationCode::VERIFY_12 | OperationCode::VERIFY_16 => {
                Cdb::Verify(Verify::parse(buf)?)
            }
            OperationCode::SYNCHRONIZE_CACHE_10 | OperationCode::SYNCHRONIZE_CACHE_16 => {
                Cdb::SynchronizeCache(SynchronizeCache::parse(buf)?)
            }
            OperationCode::WRITE_SAME_16 => Cdb::WriteSame16(WriteSame16::parse(buf)?),
            OperationCode::UNMAP => Cdb::Unmap(Unmap::parse(buf)?),
            OperationCode::READ_BLOCK_LIMITS => Cdb::ReadBlockLimits(ReadBlockLimits::parse(buf)?),
            _ => return Err(CdbError::UnsupportedOpcode(op)),
        })
    }

    /// The operation code (SERVICE ACTION IN(16) for READ CAPACITY(16)).
    pub fn opcode(&self) -> OperationCode {
        match self {
            Cdb::TestUnitReady(c) => c.opcode(),
            Cdb::RequestSense(c) => c.opcode(),
            Cdb::Inquiry(c) => c.opcode(),
            Cdb::ModeSense(c) => c.opcode(),
            Cdb::ModeSelect(c) => c.opcode(),
            Cdb::ReportLuns(c) => c.opcode(),
            Cdb::ReadCapacity10(c) => c.opcode(),
            Cdb::ReadCapacity16(c) => c.opcode(),
            Cdb::Read(c) => c.opcode(),
            Cdb::Write(c) => c.opcode(),
            Cdb::Verify(c) => c.opcode(),
            Cdb::SynchronizeCache(c) => c.opcode(),
            Cdb::WriteSame16(c) => c.opcode(),
            Cdb::Unmap(c) => c.opcode(),
            Cdb::ReadBlockLimits(c) => c.opcode(),
        }
    }

    /// The command's name: the opcode's, or `READ CAPACITY(16)` for that service action.
    pub fn name(&self) -> &'static str {
        match self {
            Cdb::ReadCapacity16(_) => "READ CAPACITY(16)",
            // Every opcode `opcode()` returns has a name (tested).
            c => c.opcode().name().unwrap_or("?"),
        }
    }

    /// The CONTROL byte.
    pub fn control(&self) -> Control {
        match self {
            Cdb::TestUnitReady(c) => c.control,
            Cdb::RequestSense(c) => c.control,
            Cdb::Inquiry(c) => c.control,
            Cdb::ModeSense(c) => c.control,
            Cdb::ModeSelect(c) => c.control,
            Cdb::ReportLuns(c) => c.control,
            Cdb::ReadCapacity10(c) => c.control,
            Cdb::ReadCapacity16(c) => c.control,
            Cdb::Read(c) => c.control,
            Cdb::Write(c) => c.control,
            Cdb::Verify(c) => c.control,
            Cdb::SynchronizeCache(c) => c.control,
            Cdb::WriteSame16(c) => c.control,
            Cdb::Unmap(c) => c.control,
            Cdb::ReadBlockLimits(c) => c.control,
        }
    }

    /// For an engine without ACA support (NORMACA zero in its INQUIRY data): the error for a
    /// CDB with NACA set, INVALID FIELD IN CDB pointing at bit 2 of the control byte (SAM-5
    /// §5.2 says such a command shall be terminated so). `None` when NACA is clear.
    pub fn naca_error(&self) -> Option<CdbError> {
        self.control()
            .contains(Control::NACA)
            .then(|| CdbError::InvalidField {
                // CDBs here are at most 16 bytes, so the index fits.
                byte: (self.buffer_len() - 1) as u16,
                bit: Some(2),
                what: "NACA set, but ACA is not supported",
            })
    }

    /// Which way the command moves data, as FCP_CMND's RDDATA/WRDATA say it: `None` when the
    /// CDB asks for no data (a zero transfer or allocation length, a WRITE SAME with NDOB).
    pub fn data_direction(&self) -> DataDirection {
        match self {
            Cdb::TestUnitReady(_) | Cdb::SynchronizeCache(_) => DataDirection::None,
            Cdb::ReadBlockLimits(_) => DataDirection::Read,
            Cdb::RequestSense(c) => in_if(c.alloc_len > 0),
            Cdb::Inquiry(c) => in_if(c.alloc_len > 0),
            Cdb::ModeSense(c) => in_if(c.alloc_len > 0),
            Cdb::ReportLuns(c) => in_if(c.alloc_len > 0),
            Cdb::ReadCapacity10(_) => DataDirection::Read,
            Cdb::ReadCapacity16(c) => in_if(c.alloc_len > 0),
            Cdb::ModeSelect(c) => out_if(c.param_list_len > 0),
            Cdb::Unmap(c) => out_if(c.param_list_len > 0),
            Cdb::Read(c) => c.data_direction(),
            Cdb::Write(c) => c.data_direction(),
            Cdb::Verify(c) => c.data_direction(),
            Cdb::WriteSame16(c) => c.data_direction(),
        }
    }

    /// Bytes of data the CDB asks to move with `block_size`-byte logical blocks: exact for
    /// block transfers and parameter lists, the upper bound (the allocation length) for what a
    /// target returns. `None` when that overflows `u64`.
    pub fn data_len(&self, block_size: u32) -> Option<u64> {
        let bs = u64::from(block_size);
        Some(match self {
            Cdb::TestUnitReady(_) | Cdb::SynchronizeCache(_) => 0,
            Cdb::ReadBlockLimits(c) => c.data_len(),
            Cdb::RequestSense(c) => c.alloc_len.into(),
            Cdb::Inquiry(c) => c.alloc_len.into(),
            Cdb::ModeSense(c) => c.alloc_len.into(),
            Cdb::ReportLuns(c) => c.alloc_len.into(),
            // READ CAPACITY(10) data is 8 bytes; there is no allocation length.
            Cdb::ReadCapacity10(_) => 8,
            Cdb::ReadCapacity16(c) => c.alloc_len.into(),
            Cdb::ModeSelect(c) => c.param_list_len.into(),
            Cdb::Unmap(c) => c.param_list_len.into(),
            Cdb::Read(c) => return c.transfer_bytes(block_size),
            Cdb::Write(c) => return c.transfer_bytes(block_size),
            Cdb::Verify(c) => return c.data_out_bytes(block_size),
            Cdb::WriteSame16(c) if c.ndob => 0,
            Cdb::WriteSame16(_) => bs,
        })
    }

    /// Bytes of the CDB.
    pub fn buffer_len(&self) -> usize {
        match self {
            Cdb::TestUnitReady(c) => c.buffer_len(),
            Cdb::RequestSense(c) => c.buffer_len(),
            Cdb::Inquiry(c) => c.buffer_len(),
            Cdb::ModeSense(c) => c.buffer_len(),
            Cdb::ModeSelect(c) => c.buffer_len(),
            Cdb::ReportLuns(c) => c.buffer_len(),
            Cdb::ReadCapacity10(c) => c.buffer_len(),
            Cdb::ReadCapacity16(c) => c.buffer_len(),
            Cdb::Read(c) => c.buffer_len(),
            Cdb::Write(c) => c.buffer_len(),
            Cdb::Verify(c) => c.buffer_len(),
            Cdb::SynchronizeCache(c) => c.buffer_len(),
            Cdb::WriteSame16(c) => c.buffer_len(),
            Cdb::Unmap(c) => c.buffer_len(),
            Cdb::ReadBlockLimits(c) => c.buffer_len(),
        }
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; reserved bits are zero. Panics if `buf`
    /// is shorter (the caller sizes it: trusted). Fields wider than their CDB form are cut to
    /// the form's width (see each command's `fits`).
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            Cdb::TestUnitReady(c) => c.emit(buf),
            Cdb::RequestSense(c) => c.emit(buf),
            Cdb::Inquiry(c) => c.emit(buf),
            Cdb::ModeSense(c) => c.emit(buf),
            Cdb::ModeSelect(c) => c.emit(buf),
            Cdb::ReportLuns(c) => c.emit(buf),
            Cdb::ReadCapacity10(c) => c.emit(buf),
            Cdb::ReadCapacity16(c) => c.emit(buf),
            Cdb::Read(c) => c.emit(buf),
            Cdb::Write(c) => c.emit(buf),
            Cdb::Verify(c) => c.emit(buf),
            Cdb::SynchronizeCache(c) => c.emit(buf),
            Cdb::WriteSame16(c) => c.emit(buf),
            Cdb::Unmap(c) => c.emit(buf),
            Cdb::ReadBlockLimits(c) => c.emit(buf),
        }
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// One line, like Wireshark's Info column: `READ(10) lba=4096 blocks=8 fua`,
/// `INQUIRY vpd=0x83 alloc=255`.
impl fmt::Display for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cdb::TestUnitReady(c) => c.fmt(f),
            Cdb::RequestSense(c) => c.fmt(f),
            Cdb::Inquiry(c) => c.fmt(f),
            Cdb::ModeSense(c) => c.fmt(f),
            Cdb::ModeSelect(c) => c.fmt(f),
            Cdb::ReportLuns(c) => c.fmt(f),
            Cdb::ReadCapacity10(c) => c.fmt(f),
            Cdb::ReadCapacity16(c) => c.fmt(f),
            Cdb::Read(c) => c.fmt(f),
            Cdb::Write(c) => c.fmt(f),
            Cdb::Verify(c) => c.fmt(f),
            Cdb::SynchronizeCache(c) => c.fmt(f),
            Cdb::WriteSame16(c) => c.fmt(f),
            Cdb::Unmap(c) => c.fmt(f),
            Cdb::ReadBlockLimits(c) => c.fmt(f),
        }
    }
}

/// `From<Command> for Cdb` for every command struct.
macro_rules! into_cdb {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for Cdb {
            fn from(c: $variant) -> Cdb {
                Cdb::$variant(c)
            }
        })*
    };
}

into_cdb!(
    TestUnitReady,
    RequestSense,
    Inquiry,
    ModeSense,
    ModeSelect,
    ReportLuns,
    ReadCapacity10,
    ReadCapacity16,
    Read,
    Write,
    Verify,
    SynchronizeCache,
    WriteSame16,
    Unmap,
    ReadBlockLimits,
);

/// `Read` when `data` is true, else `None`.
const fn in_if(data: bool) -> DataDirection {
    if data {
        DataDirection::Read
    } else {
        DataDirection::None
    }
}

/// `Write` when `data` is true, else `None`.
const fn out_if(data: bool) -> DataDirection {
    if data {
        DataDirection::Write
    } else {
        DataDirection::None
    }
}

// ---- helpers shared by the command modules ----

/// The operation code at the front of `buf`; `Len` for an empty buffer.
fn opcode_of(buf: &[u8]) -> Result<OperationCode, CdbError> {
    match buf.first() {
        Some(&b) => Ok(OperationCode(b)),
        None => Err(LenError {
            layer: Layer::Cdb,
            required: 1,
            actual: 0,
        }
        .into()),
    }
}

/// The opcode of `buf` if it is one of `ops`, else `UnsupportedOpcode` (a struct's `parse`
/// given another command's CDB).
fn expect_opcode(buf: &[u8], ops: &[OperationCode]) -> Result<OperationCode, CdbError> {
    let op = opcode_of(buf)?;
    if ops.contains(&op) {
        Ok(op)
    } else {
        Err(CdbError::UnsupportedOpcode(op))
    }
}

/// The first `N` bytes of `buf` as an array, so that the parsers index with constants the
/// compiler checks against `N`.
fn fixed<const N: usize>(buf: &[u8]) -> Result<&[u8; N], LenError> {
    buf.get(..N)
        .and_then(|s| <&[u8; N]>::try_from(s).ok())
        .ok_or(LenError {
            layer: Layer::Cdb,
            required: N,
            actual: buf.len(),
        })
}

/// The first `N` bytes of `buf` for `emit`, zeroed. Panics when `buf` is shorter: emit's
/// buffer is the caller's (trusted), sized with `buffer_len`.
fn out<const N: usize>(buf: &mut [u8]) -> &mut [u8; N] {
    let len = buf.len();
    match buf
        .get_mut(..N)
        .and_then(|s| <&mut [u8; N]>::try_from(s).ok())
    {
        Some(b) => {
            b.fill(0);
            b
        }
        None => panic!("CDB emit: need {N} bytes, buffer has {len}"),
    }
}

/// ` name` when `on`, for the one-line summaries.
fn flag(f: &mut fmt::Formatter<'_>, on: bool, name: &str) -> fmt::Result {
    if on {
        write!(f, " {name}")
    } else {
        Ok(())
    }
}

/// ` control=0xNN` when any control bit is set.
fn show_control(f: &mut fmt::Formatter<'_>, control: Control) -> fmt::Result {
    if control.is_empty() {
        Ok(())
    } else {
        write!(f, " control={:#04x}", control.bits())
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::strategies::{self, any_cdb};
    use super::*;
    use crate::scsi::data::ModeForm;
    use crate::scsi::sense::{FieldPointer, SenseKey};

    /// One vector per command form, `(bytes, repr, Display)`. Every one was wrapped in an
    /// FCP_CMND and dissected by tshark 4.0.17: no malformed packets or errors, and the opcode,
    /// LBA, transfer length, DPO/FUA/RDPROTECT/WRPROTECT/group, NACA, INQUIRY EVPD and page,
    /// allocation and parameter list lengths, MODE SENSE page control and page, READ
    /// CAPACITY(16) service action and REPORT LUNS SELECT REPORT read back as encoded. (tshark's
    /// `scsi_sbc.rdwr6.lba` field masks the READ(6) LBA to 20 bits and shows 0x0fffff for
    /// 0x1fffff; its Info column shows the 21-bit value. `scsi_sbc.rdwr6.xferlen` shows the raw
    /// 0 of a 256-block transfer.)
    fn vectors() -> Vec<(Vec<u8>, Cdb, &'static str)> {
        use super::strategies::{read, write};
        vec![
            (
                hex!("00 00 00 00 00 00").to_vec(),
                TestUnitReady::default().into(),
                "TEST UNIT READY",
            ),
            (
                hex!("03 01 00 00 fc 00").to_vec(),
                RequestSense {
                    desc: true,
                    alloc_len: 252,
                    control: Control::empty(),
                }
                .into(),
                "REQUEST SENSE alloc=252 desc",
            ),
            (
                hex!("12 00 00 00 60 00").to_vec(),
                Inquiry::standard(96).into(),
                "INQUIRY alloc=96",
            ),
            (
                hex!("12 01 83 00 ff 00").to_vec(),
                Inquiry::vpd(0x83, 255).into(),
                "INQUIRY vpd=0x83 alloc=255",
            ),
            (
                hex!("12 01 00 10 00 00").to_vec(),
                Inquiry::vpd(0x00, 4096).into(),
                "INQUIRY vpd=0x00 alloc=4096",
            ),
            (
                hex!("1a 08 3f 00 ff 00").to_vec(),
                ModeSense {
                    form: ModeForm::Six,
                    dbd: true,
                    llbaa: false,
                    pc: 0,
                    page_code: 0x3F,
                    subpage: 0,
                    alloc_len: 255,
                    control: Control::empty(),
                }
                .into(),
                "MODE SENSE(6) page=0x3f pc=0 alloc=255 dbd",
            ),
            (
                hex!("5a 10 48 ff 00 00 00 10 00 00").to_vec(),
                ModeSense {
                    form: ModeForm::Ten,
                    dbd: false,
                    llbaa: true,
                    pc: 1,
                    page_code: 0x08,
                    subpage: 0xFF,
                    alloc_len: 4096,
                    control: Control::empty(),
                }
                .into(),
                "MODE SENSE(10) page=0x08/0xff pc=1 alloc=4096 llbaa",
            ),
            (
                hex!("15 11 00 00 18 00").to_vec(),
                ModeSelect {
                    form: ModeForm::Six,
                    pf: true,
                    sp: true,
                    param_list_len: 24,
                    control: Control::empty(),
                }
                .into(),
                "MODE SELECT(6) param_len=24 pf sp",
            ),
            (
                hex!("55 10 00 00 00 00 00 01 1c 00").to_vec(),
                ModeSelect {
                    form: ModeForm::Ten,
                    pf: true,
                    sp: false,
                    param_list_len: 284,
                    control: Control::empty(),
                }
                .into(),
                "MODE SELECT(10) param_len=284 pf",
            ),
            (
                hex!("a0 00 02 00 00 00 00 00 10 00 00 00").to_vec(),
                ReportLuns {
                    select_report: 2,
                    alloc_len: 4096,
                    control: Control::empty(),
                }
                .into(),
                "REPORT LUNS select=2 alloc=4096",
            ),
            (
                hex!("25 00 00 00 00 00 00 00 00 00").to_vec(),
                ReadCapacity10::default().into(),
                "READ CAPACITY(10)",
            ),
            (
                hex!("25 00 00 01 00 00 00 00 01 00").to_vec(),
                ReadCapacity10 {
                    lba: 0x10000,
                    pmi: true,
                    control: Control::empty(),
                }
                .into(),
                "READ CAPACITY(10) lba=65536 pmi",
            ),
            (
                hex!("9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00").to_vec(),
                ReadCapacity16::new(32).into(),
                "READ CAPACITY(16) alloc=32",
            ),
            (
                hex!("9e 10 00 00 00 01 00 00 00 00 00 00 00 20 01 00").to_vec(),
                ReadCapacity16 {
                    lba: 1 << 32,
                    alloc_len: 32,
                    pmi: true,
                    control: Control::empty(),
                }
                .into(),
                "READ CAPACITY(16) lba=4294967296 alloc=32 pmi",
            ),
            (
                hex!("08 1f ff ff 00 00").to_vec(),
                read(CdbSize::Six, 0x1F_FFFF, 256).into(),
                "READ(6) lba=2097151 blocks=256",
            ),
            (
                hex!("08 01 02 03 10 00").to_vec(),
                read(CdbSize::Six, 0x01_0203, 16).into(),
                "READ(6) lba=66051 blocks=16",
            ),
            (
                hex!("28 18 00 00 10 00 05 00 08 00").to_vec(),
                Read {
                    dpo: true,
                    fua: true,
                    group: 5,
                    ..read(CdbSize::Ten, 4096, 8)
                }
                .into(),
                "READ(10) lba=4096 blocks=8 fua dpo group=5",
            ),
            (
                hex!("28 68 ff ff ff fe 00 ff ff 00").to_vec(),
                Read {
                    rdprotect: 3,
                    fua: true,
                    ..read(CdbSize::Ten, 0xFFFF_FFFE, 0xFFFF)
                }
                .into(),
                "READ(10) lba=4294967294 blocks=65535 fua rdprotect=3",
            ),
            (
                hex!("a8 00 00 00 08 00 00 01 00 00 00 00").to_vec(),
                read(CdbSize::Twelve, 2048, 65536).into(),
                "READ(12) lba=2048 blocks=65536",
            ),
            (
                hex!("88 00 00 00 00 01 00 00 00 00 00 00 01 00 00 00").to_vec(),
                read(CdbSize::Sixteen, 1 << 32, 256).into(),
                "READ(16) lba=4294967296 blocks=256",
            ),
            (
                hex!("0a 00 10 00 01 00").to_vec(),
                write(CdbSize::Six, 0x1000, 1).into(),
                "WRITE(6) lba=4096 blocks=1",
            ),
            (
                hex!("0a 00 00 00 00 00").to_vec(),
                write(CdbSize::Six, 0, 256).into(),
                "WRITE(6) lba=0 blocks=256",
            ),
            (
                hex!("2a 08 00 00 08 00 00 00 08 00").to_vec(),
                Write {
                    fua: true,
                    ..write(CdbSize::Ten, 2048, 8)
                }
                .into(),
                "WRITE(10) lba=2048 blocks=8 fua",
            ),
            (
                hex!("aa 20 00 00 00 10 00 00 00 20 03 00").to_vec(),
                Write {
                    wrprotect: 1,
                    group: 3,
                    ..write(CdbSize::Twelve, 16, 32)
                }
                .into(),
                "WRITE(12) lba=16 blocks=32 wrprotect=1 group=3",
            ),
            (
                hex!("8a 10 ff ff ff ff ff ff ff ff 00 00 00 00 00 04").to_vec(),
                Write {
                    dpo: true,
                    control: Control::NACA,
                    ..write(CdbSize::Sixteen, u64::MAX, 0)
                }
                .into(),
                "WRITE(16) lba=18446744073709551615 blocks=0 dpo control=0x04",
            ),
            (
                hex!("2f 12 00 00 00 64 00 00 0a 00").to_vec(),
                Verify {
                    size: VerifySize::Ten,
                    vrprotect: 0,
                    dpo: true,
                    bytchk: 1,
                    lba: 100,
                    blocks: 10,
                    group: 0,
                    control: Control::empty(),
                }
                .into(),
                "VERIFY(10) lba=100 blocks=10 bytchk=1 dpo",
            ),
            (
                hex!("af 20 00 00 00 64 00 00 00 0a 00 00").to_vec(),
                Verify {
                    size: VerifySize::Twelve,
                    vrprotect: 1,
                    dpo: false,
                    bytchk: 0,
                    lba: 100,
                    blocks: 10,
                    group: 0,
                    control: Control::empty(),
                }
                .into(),
                "VERIFY(12) lba=100 blocks=10 vrprotect=1",
            ),
            (
                hex!("8f 06 00 00 00 00 00 00 00 64 00 00 00 01 00 00").to_vec(),
                Verify {
                    size: VerifySize::Sixteen,
                    vrprotect: 0,
                    dpo: false,
                    bytchk: 3,
                    lba: 100,
                    blocks: 1,
                    group: 0,
                    control: Control::empty(),
                }
                .into(),
                "VERIFY(16) lba=100 blocks=1 bytchk=3",
            ),
            (
                hex!("35 00 00 00 00 00 00 00 00 00").to_vec(),
                SynchronizeCache::default().into(),
                "SYNCHRONIZE CACHE(10) lba=0 blocks=0",
            ),
            (
                hex!("91 02 00 00 00 00 00 00 10 00 00 00 00 80 00 00").to_vec(),
                SynchronizeCache {
                    size: SyncCacheSize::Sixteen,
                    immed: true,
                    lba: 4096,
                    blocks: 128,
                    group: 0,
                    control: Control::empty(),
                }
                .into(),
                "SYNCHRONIZE CACHE(16) lba=4096 blocks=128 immed",
            ),
            (
                hex!("93 08 00 00 00 00 00 00 00 00 00 00 01 00 00 00").to_vec(),
                WriteSame16 {
                    unmap: true,
                    blocks: 256,
                    ..WriteSame16::default()
                }
                .into(),
                "WRITE SAME(16) lba=0 blocks=256 unmap",
            ),
            (
                hex!("93 39 00 00 00 00 00 00 08 00 00 00 00 08 07 00").to_vec(),
                WriteSame16 {
                    wrprotect: 1,
                    anchor: true,
                    unmap: true,
                    ndob: true,
                    lba: 2048,
                    blocks: 8,
                    group: 7,
                    ..WriteSame16::default()
                }
                .into(),
                "WRITE SAME(16) lba=2048 blocks=8 unmap anchor ndob wrprotect=1 group=7",
            ),
            (
                hex!("42 00 00 00 00 00 00 00 18 00").to_vec(),
                Unmap {
                    anchor: false,
                    group: 0,
                    param_list_len: 24,
                    control: Control::empty(),
                }
                .into(),
                "UNMAP param_len=24",
            ),
            (
                hex!("05 00 00 00 00 00").to_vec(),
                ReadBlockLimits::default().into(),
                "READ BLOCK LIMITS",
            ),
        ]
    }

    #[test]
    fn test_parse() {
        for (bytes, cdb, _) in vectors() {
            assert_eq!(Cdb::parse(&bytes), Ok(cdb), "{bytes:02x?}");
        }
    }

    #[test]
    fn test_emit() {
        for (bytes, cdb, _) in vectors() {
            assert_eq!(cdb.buffer_len(), bytes.len(), "{cdb}");
            assert_eq!(cdb.to_vec(), bytes, "{cdb}");
            assert_eq!(cdb.opcode(), OperationCode(bytes[0]), "{cdb}");
            assert_eq!(Cdb::parse(&cdb.to_vec()), Ok(cdb));
        }
    }

    #[test]
    fn test_display() {
        for (_, cdb, text) in vectors() {
            assert_eq!(cdb.to_string(), text);
        }
    }

    #[test]
    fn test_parse_ignores_padding() {
        // FCP_CMND carries a 6-byte CDB padded to 16 bytes, here with junk.
        let mut padded = hex!("28 00 00 00 10 00 00 00 08 00").to_vec();
        padded.extend_from_slice(&[0xAA; 6]);
        assert_eq!(
            Cdb::parse(&padded),
            Ok(Cdb::Read(super::strategies::read(CdbSize::Ten, 4096, 8)))
        );
        let tur = hex!("00 00 00 00 00 00 ff ff ff ff ff ff ff ff ff ff");
        assert_eq!(Cdb::parse(&tur), Ok(TestUnitReady::default().into()));
    }

    #[test]
    fn test_emit_into_longer_buffer() {
        let mut buf = [0xEEu8; 16];
        let cdb = Cdb::from(Inquiry::vpd(0x80, 64));
        cdb.emit(&mut buf);
        assert_eq!(buf, hex!("12 01 80 00 40 00 ee ee ee ee ee ee ee ee ee ee"));
    }

    #[test]
    #[should_panic(expected = "CDB emit: need 10 bytes, buffer has 9")]
    fn test_emit_short_buffer_panics() {
        Cdb::from(ReadCapacity10::default()).emit(&mut [0; 9]);
    }

    #[test]
    fn test_truncation() {
        for (bytes, cdb, _) in vectors() {
            for len in 0..bytes.len() {
                let err = Cdb::parse(&bytes[..len]).expect_err("a prefix must not parse");
                let required = if len == 0 { 1 } else { bytes.len() };
                assert_eq!(
                    err,
                    CdbError::Len(LenError {
                        layer: Layer::Cdb,
                        required,
                        actual: len
                    }),
                    "{cdb} cut to {len}"
                );
            }
        }
    }

    #[test]
    fn test_unsupported_opcode() {
        // Untyped opcodes of every group; the length does not matter.
        for op in [0x04u8, 0x1B, 0x41, 0x5E, 0x7F, 0x89, 0xA3, 0xC0, 0xFF] {
            let mut buf = [0u8; 16];
            buf[0] = op;
            assert_eq!(
                Cdb::parse(&buf),
                Err(CdbError::UnsupportedOpcode(OperationCode(op)))
            );
            assert_eq!(
                Cdb::parse(&buf[..1]),
                Err(CdbError::UnsupportedOpcode(OperationCode(op)))
            );
        }
        let e = Cdb::parse(&[0xC0; 6]).unwrap_err();
        assert_eq!(e.to_string(), "opcode 0xc0: operation code not supported");
        assert_eq!(e.sense(), Sense::invalid_opcode());
        assert_eq!(e.sense().key, SenseKey::ILLEGAL_REQUEST);
        assert_eq!(
            e.sense().additional,
            AdditionalSense::INVALID_COMMAND_OPERATION_CODE
        );
        assert_eq!(e.sense().field_pointer(), None);
    }

    #[test]
    fn test_struct_parse_rejects_other_opcodes() {
        let inquiry = hex!("12 00 00 00 60 00");
        let err = Some(CdbError::UnsupportedOpcode(OperationCode::INQUIRY));
        assert_eq!(TestUnitReady::parse(&inquiry).err(), err);
        assert_eq!(RequestSense::parse(&inquiry).err(), err);
        assert_eq!(ModeSense::parse(&inquiry).err(), err);
        assert_eq!(ModeSelect::parse(&inquiry).err(), err);
        assert_eq!(ReportLuns::parse(&inquiry).err(), err);
        assert_eq!(ReadCapacity10::parse(&inquiry).err(), err);
        assert_eq!(ReadCapacity16::parse(&inquiry).err(), err);
        assert_eq!(Read::parse(&inquiry).err(), err);
        assert_eq!(Write::parse(&inquiry).err(), err);
        assert_eq!(Verify::parse(&inquiry).err(), err);
        assert_eq!(SynchronizeCache::parse(&inquiry).err(), err);
        assert_eq!(WriteSame16::parse(&inquiry).err(), err);
        assert_eq!(Unmap::parse(&inquiry).err(), err);
        assert_eq!(ReadBlockLimits::parse(&inquiry).err(), err);
        let tur = [0u8; 6];
        assert_eq!(
            Inquiry::parse(&tur).err(),
            Some(CdbError::UnsupportedOpcode(OperationCode::TEST_UNIT_READY))
        );
    }

    #[test]
    fn test_empty_buffer() {
        let len = Some(CdbError::Len(LenError {
            layer: Layer::Cdb,
            required: 1,
            actual: 0,
        }));
        assert_eq!(Cdb::parse(&[]).err(), len);
        assert_eq!(Read::parse(&[]).err(), len);
        assert_eq!(Inquiry::parse(&[]).err(), len);
    }

    #[test]
    fn test_len_error_sense() {
        let e = Cdb::parse(&hex!("28 00 00 00")).unwrap_err();
        assert_eq!(e.to_string(), "SCSI CDB: need 10 bytes, got 4");
        let s = e.sense();
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
        assert_eq!(s.additional, AdditionalSense::INVALID_FIELD_IN_CDB);
        assert_eq!(s.field_pointer(), None);
    }

    #[test]
    fn test_invalid_field_sense_and_message() {
        let e = CdbError::InvalidField {
            byte: 1,
            bit: Some(4),
            what: "ANCHOR without UNMAP",
        };
        assert_eq!(
            e.to_string(),
            "invalid field in CDB byte 1 bit 4: ANCHOR without UNMAP"
        );
        assert_eq!(
            e.sense().field_pointer(),
            Some(FieldPointer {
                in_cdb: true,
                bit: Some(4),
                byte: 1
            })
        );
        let whole = CdbError::InvalidField {
            byte: 6,
            bit: None,
            what: "allocation length under 16",
        };
        assert_eq!(
            whole.to_string(),
            "invalid field in CDB byte 6: allocation length under 16"
        );
        assert_eq!(whole.sense(), Sense::invalid_field_in_cdb(6, None));
    }

    #[test]
    fn test_unsupported_service_action_message() {
        let e = Cdb::parse(&hex!("9e 12 00 00 00 00 00 00 00 00 00 00 00 20 00 00")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SERVICE ACTION IN(16): service action 0x12 not supported"
        );
        assert_eq!(e.sense(), Sense::invalid_opcode());
    }

    #[test]
    fn test_naca() {
        // READ(10) with NACA: parses, keeps the bit, and the engine gets the error for it.
        let bytes = hex!("28 00 00 00 00 00 00 00 01 04");
        let cdb = Cdb::parse(&bytes).unwrap();
        assert_eq!(cdb.control(), Control::NACA);
        assert_eq!(cdb.to_vec(), bytes);
        let e = cdb.naca_error().unwrap();
        assert_eq!(
            e,
            CdbError::InvalidField {
                byte: 9,
                bit: Some(2),
                what: "NACA set, but ACA is not supported"
            }
        );
        assert_eq!(e.sense(), Sense::invalid_field_in_cdb(9, Some(2)));
        // The pointer follows the CDB length.
        let tur = Cdb::parse(&hex!("00 00 00 00 00 04")).unwrap();
        assert!(matches!(
            tur.naca_error(),
            Some(CdbError::InvalidField {
                byte: 5,
                bit: Some(2),
                ..
            })
        ));
        let rc16 = Cdb::parse(&hex!("9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 04")).unwrap();
        assert!(matches!(
            rc16.naca_error(),
            Some(CdbError::InvalidField { byte: 15, .. })
        ));
        // Other control bits are data, not NACA.
        let vendor = Cdb::parse(&hex!("00 00 00 00 00 c3")).unwrap();
        assert_eq!(vendor.control().bits(), 0xC3);
        assert_eq!(vendor.naca_error(), None);
        assert_eq!(vendor.to_string(), "TEST UNIT READY control=0xc3");
    }

    #[test]
    fn test_reserved_bits_ignored() {
        // Reserved and obsolete bits do not fail parsing and are not emitted back.
        let tur = Cdb::parse(&hex!("00 ff ff ff ff 00")).unwrap();
        assert_eq!(tur, TestUnitReady::default().into());
        let read = Cdb::parse(&hex!("28 07 00 00 00 01 e0 00 01 38")).unwrap();
        assert_eq!(read.to_vec(), hex!("28 00 00 00 00 01 00 00 01 38"));
    }

    #[test]
    fn test_opcode_cdb_len() {
        let expect = [
            (0x00u8, Some(6)),
            (0x1F, Some(6)),
            (0x20, Some(10)),
            (0x5F, Some(10)),
            (0x60, None),
            (0x7F, None),
            (0x80, Some(16)),
            (0x9F, Some(16)),
            (0xA0, Some(12)),
            (0xBF, Some(12)),
            (0xC0, None),
            (0xFF, None),
        ];
        for (op, len) in expect {
            assert_eq!(OperationCode::from(op).cdb_len(), len, "{op:#04x}");
        }
        assert_eq!(OperationCode::READ_16.group(), 4);
        assert_eq!(u8::from(OperationCode::REPORT_LUNS), 0xA0);
    }

    #[test]
    fn test_opcode_names() {
        assert_eq!(OperationCode::READ_10.to_string(), "READ(10)");
        assert_eq!(OperationCode(0x9E).to_string(), "SERVICE ACTION IN(16)");
        assert_eq!(OperationCode(0xC1).to_string(), "opcode 0xc1");
        assert_eq!(OperationCode(0x02).name(), None);
        // Every named opcode's CDB length is defined by its group.
        for op in 0..=255u8 {
            let op = OperationCode(op);
            if op.name().is_some() {
                assert!(op.cdb_len().is_some(), "{op}");
            }
        }
        // Every typed command has a name and its parse dispatches to it.
        for (bytes, cdb, _) in vectors() {
            assert!(cdb.opcode().name().is_some());
            assert_eq!(cdb.opcode().cdb_len(), Some(bytes.len()));
            assert_ne!(cdb.name(), "?");
        }
    }

    #[test]
    fn test_data_direction_and_len() {
        let cases: [(&[u8], DataDirection, u64); 16] = [
            (&hex!("00 00 00 00 00 00"), DataDirection::None, 0),
            (&hex!("03 00 00 00 12 00"), DataDirection::Read, 18),
            (&hex!("03 00 00 00 00 00"), DataDirection::None, 0),
            (&hex!("12 00 00 00 60 00"), DataDirection::Read, 96),
            (&hex!("1a 00 3f 00 00 00"), DataDirection::None, 0),
            (&hex!("15 10 00 00 18 00"), DataDirection::Write, 24),
            (
                &hex!("25 00 00 00 00 00 00 00 00 00"),
                DataDirection::Read,
                8,
            ),
            (
                &hex!("28 00 00 00 00 00 00 00 08 00"),
                DataDirection::Read,
                4096,
            ),
            (
                &hex!("28 00 00 00 00 00 00 00 00 00"),
                DataDirection::None,
                0,
            ),
            (&hex!("0a 00 00 00 00 00"), DataDirection::Write, 256 * 512),
            (
                &hex!("2f 02 00 00 00 00 00 00 02 00"),
                DataDirection::Write,
                1024,
            ),
            (
                &hex!("2f 00 00 00 00 00 00 00 02 00"),
                DataDirection::None,
                0,
            ),
            (
                &hex!("93 00 00 00 00 00 00 00 00 00 00 00 00 08 00 00"),
                DataDirection::Write,
                512,
            ),
            (
                &hex!("93 09 00 00 00 00 00 00 00 00 00 00 00 08 00 00"),
                DataDirection::None,
                0,
            ),
            (
                &hex!("42 00 00 00 00 00 00 00 18 00"),
                DataDirection::Write,
                24,
            ),
            (&hex!("05 00 00 00 00 00"), DataDirection::Read, 6),
        ];
        for (bytes, dir, len) in cases {
            let cdb = Cdb::parse(bytes).unwrap();
            assert_eq!(cdb.data_direction(), dir, "{cdb}");
            assert_eq!(cdb.data_len(512), Some(len), "{cdb}");
        }
        let sync = Cdb::parse(&hex!("35 00 00 00 00 00 00 00 08 00")).unwrap();
        assert_eq!(sync.data_direction(), DataDirection::None);
        assert_eq!(sync.data_len(512), Some(0));
        let big = Cdb::parse(&hex!("88 00 00 00 00 00 00 00 00 00 ff ff ff ff 00 00")).unwrap();
        assert_eq!(
            big.data_len(u32::MAX),
            Some(u64::from(u32::MAX) * u64::from(u32::MAX))
        );
        let rl = Cdb::parse(&hex!("a0 00 00 00 00 00 00 00 10 00 00 00")).unwrap();
        assert_eq!(rl.data_direction(), DataDirection::Read);
        assert_eq!(rl.data_len(512), Some(4096));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn prop_round_trip(cdb in any_cdb()) {
            let bytes = cdb.to_vec();
            prop_assert_eq!(bytes.len(), cdb.buffer_len());
            prop_assert_eq!(Cdb::parse(&bytes), Ok(cdb));
            // Padded as FCP_CMND carries it.
            let mut padded = bytes.clone();
            padded.resize(32, 0x5A);
            prop_assert_eq!(Cdb::parse(&padded), Ok(cdb));
            // Every shorter prefix is a length error.
            for len in 0..bytes.len() {
                prop_assert!(matches!(Cdb::parse(&bytes[..len]), Err(CdbError::Len(_))));
            }
            // The one-line summary starts with the command's name.
            prop_assert!(cdb.to_string().starts_with(cdb.name()));
        }

        #[test]
        fn prop_generators_fit(
            r in strategies::read_cdb(),
            w in strategies::write_cdb(),
            v in strategies::verify(),
            s in strategies::synchronize_cache(),
            m in strategies::mode_sense(),
            sel in strategies::mode_select(),
        ) {
            // The generators stay within each form's widths, which is what `fits` checks.
            prop_assert!(r.fits() && w.fits() && v.fits() && s.fits() && m.fits() && sel.fits());
        }

        #[test]
        fn prop_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(cdb) = Cdb::parse(&bytes) {
                // Whatever parses re-emits to a prefix-length CDB that parses to the same value.
                let again = cdb.to_vec();
                prop_assert_eq!(again.len(), OperationCode(bytes[0]).cdb_len().unwrap_or(0));
                prop_assert_eq!(Cdb::parse(&again), Ok(cdb));
                let _ = cdb.to_string();
                let _ = cdb.data_len(4096);
                let _ = cdb.naca_error();
            }
        }

        #[test]
        fn prop_cdb_shaped_bytes(op in any::<u8>(), rest in proptest::array::uniform15(any::<u8>())) {
            // 16-byte buffers as FCP_CMND carries them, with every opcode.
            let mut buf = [0u8; 16];
            buf[0] = op;
            buf[1..].copy_from_slice(&rest);
            match Cdb::parse(&buf) {
                Ok(cdb) => {
                    prop_assert_eq!(cdb.opcode(), OperationCode(op));
                    let len = cdb.buffer_len();
                    prop_assert_eq!(Some(len), OperationCode(op).cdb_len());
                    // The control byte survives.
                    prop_assert_eq!(cdb.to_vec()[len - 1], buf[len - 1]);
                    prop_assert_eq!(Cdb::parse(&cdb.to_vec()), Ok(cdb));
                }
                Err(CdbError::Len(_)) => prop_assert!(false, "16 bytes are enough for {op:#04x}"),
                Err(_) => {}
            }
        }
    }
}
