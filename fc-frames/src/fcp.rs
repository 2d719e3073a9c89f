//! FCP information units (FCP-4 §9): how SCSI commands, data and status ride in FC frames.
//!
//! One SCSI command is one exchange (TYPE 0x08, [`TYPE_FCP`]): the initiator sends FCP_CMND
//! (R_CTL 0x06); for a write the target asks for data with FCP_XFER_RDY (R_CTL 0x05); data moves
//! in FCP_DATA frames (R_CTL 0x01); the target ends the exchange with FCP_RSP (R_CTL 0x07).
//!
//! FCP_DATA has no header of its own: its frames carry the bytes alone, and the frame header's
//! Parameter field, with F_CTL's relative-offset bit set, says where in the command's data
//! buffer the payload belongs. So this module has no FCP_DATA type; the frame header module
//! (`header`, F_CTL `RELATIVE_OFFSET` and the Parameter field) carries the offset.
//!
//! FCP_CMND (FCP-4 §9.2), 32 bytes plus 4 per additional CDB word (plus 4 when bidirectional):
//!
//! ```text
//!  byte    | 7        | 6 5 4 3    | 2 1 0          |
//! ---------+----------+------------+----------------+
//!   0-7    | FCP_LUN (8 bytes, SAM-5 LUN)                |
//!   8      | CRN (command reference number)              |
//!   9      | reserved | PRIORITY   | TASK ATTRIBUTE |
//!  10      | TASK MANAGEMENT FLAGS                       |
//!  11      | ADDITIONAL FCP_CDB LENGTH (7-2) | RDDATA (1) | WRDATA (0) |
//!  12-27   | FCP_CDB (16 bytes)                          |
//!  28-..   | ADDITIONAL FCP_CDB (4 x ADDITIONAL FCP_CDB LENGTH bytes) |
//!  next 4  | FCP_DL (data length, big-endian)            |
//!  next 4  | FCP_BIDIRECTIONAL_READ_DL (only when RDDATA and WRDATA are both set) |
//! ```
//!
//! FCP_XFER_RDY (FCP-4 §9.3), 12 bytes:
//!
//! ```text
//!  0-3  FCP_DATA_RO (relative offset of the data wanted)
//!  4-7  FCP_BURST_LEN (bytes wanted)
//!  8-11 reserved
//! ```
//!
//! FCP_RSP (FCP-4 §9.5), 24 bytes plus the variable parts:
//!
//! ```text
//!  byte   | field
//! --------+----------------------------------------------------------------
//!   0-7   | reserved
//!   8-9   | RETRY DELAY TIMER (FCP-3) / STATUS QUALIFIER (SAM-5, FCP-4)
//!  10     | FLAGS: BIDI_RSP 80, BIDI_READ_RESID_UNDER 40, BIDI_READ_RESID_OVER 20,
//!         |        CONF_REQ 10, RESID_UNDER 08, RESID_OVER 04, SNS_LEN_VALID 02, RSP_LEN_VALID 01
//!  11     | SCSI STATUS CODE
//!  12-15  | FCP_RESID
//!  16-19  | FCP_SNS_LEN
//!  20-23  | FCP_RSP_LEN
//!  24-..  | FCP_RSP_INFO (FCP_RSP_LEN bytes: 0, 4 or 8; RSP_CODE in its byte 3)
//!  ..     | FCP_SNS_INFO (FCP_SNS_LEN bytes of SCSI sense data)
//!  ..     | FCP_BIDIRECTIONAL_READ_RESID (4 bytes, only when BIDI_RSP is set)
//! ```

use core::fmt;
use std::borrow::Cow;

use bitflags::bitflags;

use crate::error::{Layer, LenError};
use crate::scsi::sense::{Sense, SenseError};
use crate::scsi::status::ScsiStatus;
use crate::scsi::Lun;
use crate::wire::{be16, be32, put_be16, put_be32};

/// R_CTL of an FCP_DATA frame (device data, solicited data).
pub const R_CTL_FCP_DATA: u8 = 0x01;
/// R_CTL of an FCP_CONF frame (device data, solicited control).
pub const R_CTL_FCP_CONF: u8 = 0x03;
/// R_CTL of an FCP_XFER_RDY frame (device data, data descriptor).
pub const R_CTL_FCP_XFER_RDY: u8 = 0x05;
/// R_CTL of an FCP_CMND frame (device data, unsolicited command).
pub const R_CTL_FCP_CMND: u8 = 0x06;
/// R_CTL of an FCP_RSP frame (device data, command status).
pub const R_CTL_FCP_RSP: u8 = 0x07;
/// TYPE of every FCP frame (SCSI FCP).
pub const TYPE_FCP: u8 = 0x08;

/// Length of an FCP_CMND with a 16-byte CDB.
pub const CMND_MIN_LEN: usize = 32;
/// Length of the FCP_CDB field without additional CDB bytes.
pub const CDB_LEN: usize = 16;
/// The most additional CDB bytes FCP_CMND can carry (ADDITIONAL FCP_CDB LENGTH is six bits).
pub const MAX_ADDITIONAL_CDB_LEN: usize = 63 * 4;
/// The longest CDB FCP_CMND can carry.
pub const MAX_CDB_LEN: usize = CDB_LEN + MAX_ADDITIONAL_CDB_LEN;
/// Length of FCP_XFER_RDY.
pub const XFER_RDY_LEN: usize = 12;
/// Length of the fixed part of FCP_RSP.
pub const RSP_MIN_LEN: usize = 24;

mod field {
    pub mod cmnd {
        use crate::wire::Field;
        pub const LUN: Field = 0..8;
        pub const CRN: usize = 8;
        pub const TASK: usize = 9;
        pub const TM_FLAGS: usize = 10;
        pub const FLAGS: usize = 11;
        pub const CDB: usize = 12;
    }
    pub mod xfer_rdy {
        use crate::wire::Field;
        pub const DATA_RO: Field = 0..4;
        pub const BURST_LEN: Field = 4..8;
    }
    pub mod rsp {
        use crate::wire::Field;
        pub const STATUS_QUALIFIER: Field = 8..10;
        pub const FLAGS: usize = 10;
        pub const STATUS: usize = 11;
        pub const RESID: Field = 12..16;
        pub const SNS_LEN: Field = 16..20;
        pub const RSP_LEN: Field = 20..24;
        pub const INFO: usize = 24;
    }
}

/// Byte 11 of FCP_CMND: RDDATA and WRDATA.
const RDDATA: u8 = 0x02;
const WRDATA: u8 = 0x01;

/// Errors decoding FCP information units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FcpError {
    /// Shorter than the information unit's fixed part.
    #[error(transparent)]
    Len(#[from] LenError),
    /// FCP_CMND is not 32 + 4 x ADDITIONAL FCP_CDB LENGTH bytes long (+ 4 when RDDATA and
    /// WRDATA are both set, for FCP_BIDIRECTIONAL_READ_DL).
    #[error("FCP_CMND length {len} does not match additional CDB length {additional} (expected {expected} bytes)")]
    CmndLength {
        /// Bytes present.
        len: usize,
        /// ADDITIONAL FCP_CDB LENGTH, in 4-byte words.
        additional: u8,
        /// Bytes that length implies.
        expected: usize,
    },
    /// A CDB longer than FCP_CMND can carry ([`MAX_CDB_LEN`]).
    #[error("CDB of {0} bytes is longer than FCP_CMND can carry (268)")]
    CdbTooLong(usize),
    /// FCP_RSP sets both FCP_RESID_OVER and FCP_RESID_UNDER.
    #[error("FCP_RSP sets both FCP_RESID_OVER and FCP_RESID_UNDER")]
    ResidualOverAndUnder,
    /// FCP_RSP sets both FCP_BIDI_READ_RESID_OVER and FCP_BIDI_READ_RESID_UNDER.
    #[error("FCP_RSP sets both FCP_BIDI_READ_RESID_OVER and FCP_BIDI_READ_RESID_UNDER")]
    BidiResidualOverAndUnder,
    /// FCP_RSP sets a bidirectional read residual flag without FCP_BIDI_RSP.
    #[error("FCP_RSP flags {0:#04x} set FCP_BIDI_READ_RESID_OVER/UNDER without FCP_BIDI_RSP")]
    BidiResidualWithoutBidiRsp(u8),
    /// FCP_RSP_LEN_VALID with an FCP_RSP_LEN other than 0, 4 or 8.
    #[error("FCP_RSP_LEN {0} is not 0, 4 or 8")]
    BadRspLen(u32),
    /// FCP_RSP_LEN is longer than the bytes after the FCP_RSP header.
    #[error("FCP_RSP_LEN {rsp_len} exceeds the {available} bytes after the FCP_RSP header")]
    RspLenTooLong {
        /// FCP_RSP_LEN.
        rsp_len: u32,
        /// Bytes present after byte 24.
        available: usize,
    },
    /// FCP_SNS_LEN is longer than the bytes after FCP_RSP_INFO.
    #[error("FCP_SNS_LEN {sns_len} exceeds the {available} bytes after FCP_RSP_INFO")]
    SnsLenTooLong {
        /// FCP_SNS_LEN.
        sns_len: u32,
        /// Bytes present after FCP_RSP_INFO.
        available: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// FCP_CMND

code_point! {
    /// TASK ATTRIBUTE (FCP-4 Table 25, bits 2-0 of byte 9). Open: the three-bit value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TaskAttribute(pub u8) {
        /// SIMPLE: the device server may reorder it among other simple commands.
        SIMPLE = 0x0 => "simple",
        /// HEAD OF QUEUE: run before any queued command.
        HEAD_OF_QUEUE = 0x1 => "head of queue",
        /// ORDERED: run after every earlier command, before every later one.
        ORDERED = 0x2 => "ordered",
        /// ACA: runs while an ACA condition is active.
        ACA = 0x4 => "ACA",
        /// UNTAGGED (obsolete in FCP-4, treated as SIMPLE).
        UNTAGGED = 0x5 => "untagged",
    }

    /// The name FCP-4 gives the value.
    pub const fn name;
}

impl fmt::Display for TaskAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "task attribute {:#03x}", self.0),
        }
    }
}

bitflags! {
    /// TASK MANAGEMENT FLAGS (FCP-4 Table 26, byte 10 of FCP_CMND). A command with any flag
    /// set is a task management request: its CDB and FCP_DL are ignored. Bit 7 (obsolete
    /// TERMINATE TASK), bit 3 and bit 0 are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TmFlags: u8 {
        /// ABORT TASK SET.
        const ABORT_TASK_SET = 0x02;
        /// CLEAR TASK SET.
        const CLEAR_TASK_SET = 0x04;
        /// LOGICAL UNIT RESET.
        const LOGICAL_UNIT_RESET = 0x10;
        /// TARGET RESET (obsolete in SAM-5, still sent).
        const TARGET_RESET = 0x20;
        /// CLEAR ACA.
        const CLEAR_ACA = 0x40;
    }
}

impl TmFlags {
    /// The task management function names SAM-5 gives the flags set, in bit order.
    fn names(self) -> impl Iterator<Item = &'static str> {
        [
            (TmFlags::ABORT_TASK_SET, "ABORT TASK SET"),
            (TmFlags::CLEAR_TASK_SET, "CLEAR TASK SET"),
            (TmFlags::LOGICAL_UNIT_RESET, "LOGICAL UNIT RESET"),
            (TmFlags::TARGET_RESET, "TARGET RESET"),
            (TmFlags::CLEAR_ACA, "CLEAR ACA"),
        ]
        .into_iter()
        .filter(move |(f, _)| self.contains(*f))
        .map(|(_, n)| n)
    }
}

/// Which way data moves for a command: RDDATA and WRDATA (bits 1 and 0 of FCP_CMND byte 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataDirection {
    /// Neither bit: no data phase.
    #[default]
    None,
    /// RDDATA: target to initiator.
    Read,
    /// WRDATA: initiator to target.
    Write,
    /// Both bits: a bidirectional command. FCP_DL is the write length; the read length is
    /// FCP_BIDIRECTIONAL_READ_DL, which follows FCP_DL only in this case.
    Bidirectional {
        /// FCP_BIDIRECTIONAL_READ_DL.
        read_dl: u32,
    },
}

impl DataDirection {
    /// The RDDATA/WRDATA bits.
    pub const fn bits(self) -> u8 {
        match self {
            DataDirection::None => 0,
            DataDirection::Read => RDDATA,
            DataDirection::Write => WRDATA,
            DataDirection::Bidirectional { .. } => RDDATA | WRDATA,
        }
    }

    /// RDDATA is set.
    pub const fn rddata(self) -> bool {
        self.bits() & RDDATA != 0
    }

    /// WRDATA is set.
    pub const fn wrdata(self) -> bool {
        self.bits() & WRDATA != 0
    }
}

/// The FCP_CMND length byte 11 implies: 32, plus 4 per additional CDB word, plus 4 for
/// FCP_BIDIRECTIONAL_READ_DL when RDDATA and WRDATA are both set.
const fn cmnd_len(flags: u8) -> usize {
    let bidi = if flags & (RDDATA | WRDATA) == RDDATA | WRDATA {
        4
    } else {
        0
    };
    CMND_MIN_LEN + 4 * (flags >> 2) as usize + bidi
}

/// A view of FCP_CMND over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcpCmnd<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FcpCmnd<T> {
    /// Wraps a buffer without checking its length. Accessors panic on a buffer shorter than
    /// [`expected_len`](Self::expected_len): use only on buffers this program sized.
    pub const fn new_unchecked(buffer: T) -> FcpCmnd<T> {
        FcpCmnd { buffer }
    }

    /// Wraps a buffer long enough for every field byte 11 says is there (at least
    /// [`CMND_MIN_LEN`]). Longer buffers are accepted here; [`FcpCmndRepr::parse`] insists on
    /// the exact length.
    pub fn new_checked(buffer: T) -> Result<FcpCmnd<T>, LenError> {
        let b = buffer.as_ref();
        LenError::check(Layer::Fcp, CMND_MIN_LEN, b.len())?;
        LenError::check(Layer::Fcp, cmnd_len(b[field::cmnd::FLAGS]), b.len())?;
        Ok(FcpCmnd { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The length the IU's byte 11 implies.
    #[inline]
    pub fn expected_len(&self) -> usize {
        cmnd_len(self.buffer.as_ref()[field::cmnd::FLAGS])
    }

    /// FCP_LUN.
    #[inline]
    pub fn lun(&self) -> Lun {
        let mut l = [0u8; 8];
        l.copy_from_slice(&self.buffer.as_ref()[field::cmnd::LUN]);
        Lun(l)
    }

    /// CRN, the command reference number (0 when not used).
    #[inline]
    pub fn crn(&self) -> u8 {
        self.buffer.as_ref()[field::cmnd::CRN]
    }

    /// PRIORITY (bits 6-3 of byte 9), 0-15.
    #[inline]
    pub fn priority(&self) -> u8 {
        (self.buffer.as_ref()[field::cmnd::TASK] >> 3) & 0x0F
    }

    /// TASK ATTRIBUTE (bits 2-0 of byte 9).
    #[inline]
    pub fn task_attribute(&self) -> TaskAttribute {
        TaskAttribute(self.buffer.as_ref()[field::cmnd::TASK] & 0x07)
    }

    /// TASK MANAGEMENT FLAGS.
    #[inline]
    pub fn tm_flags(&self) -> TmFlags {
        TmFlags::from_bits_retain(self.buffer.as_ref()[field::cmnd::TM_FLAGS])
    }

    /// ADDITIONAL FCP_CDB LENGTH, in 4-byte words.
    #[inline]
    pub fn additional_cdb_len(&self) -> u8 {
        self.buffer.as_ref()[field::cmnd::FLAGS] >> 2
    }

    /// RDDATA.
    #[inline]
    pub fn rddata(&self) -> bool {
        self.buffer.as_ref()[field::cmnd::FLAGS] & RDDATA != 0
    }

    /// WRDATA.
    #[inline]
    pub fn wrdata(&self) -> bool {
        self.buffer.as_ref()[field::cmnd::FLAGS] & WRDATA != 0
    }

    /// The whole CDB: FCP_CDB and the additional CDB bytes (16 + 4n bytes, zero padded).
    #[inline]
    pub fn cdb(&self) -> &[u8] {
        let end = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize;
        &self.buffer.as_ref()[field::cmnd::CDB..end]
    }

    /// FCP_DL: the most data bytes the command may move (the write length when
    /// bidirectional).
    #[inline]
    pub fn dl(&self) -> u32 {
        let at = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize;
        be32(self.buffer.as_ref(), at)
    }

    /// FCP_BIDIRECTIONAL_READ_DL, present when RDDATA and WRDATA are both set.
    #[inline]
    pub fn bidi_read_dl(&self) -> Option<u32> {
        if self.rddata() && self.wrdata() {
            let at = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize + 4;
            Some(be32(self.buffer.as_ref(), at))
        } else {
            None
        }
    }

    /// The data direction and, when bidirectional, the read length.
    #[inline]
    pub fn direction(&self) -> DataDirection {
        match (self.rddata(), self.wrdata(), self.bidi_read_dl()) {
            (true, true, Some(read_dl)) => DataDirection::Bidirectional { read_dl },
            (true, _, _) => DataDirection::Read,
            (_, true, _) => DataDirection::Write,
            _ => DataDirection::None,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FcpCmnd<T> {
    /// Sets FCP_LUN.
    #[inline]
    pub fn set_lun(&mut self, v: Lun) {
        self.buffer.as_mut()[field::cmnd::LUN].copy_from_slice(&v.0);
    }

    /// Sets CRN.
    #[inline]
    pub fn set_crn(&mut self, v: u8) {
        self.buffer.as_mut()[field::cmnd::CRN] = v;
    }

    /// Sets byte 9: PRIORITY (masked to four bits) and TASK ATTRIBUTE (masked to three).
    #[inline]
    pub fn set_task(&mut self, priority: u8, attr: TaskAttribute) {
        self.buffer.as_mut()[field::cmnd::TASK] = (priority & 0x0F) << 3 | (attr.0 & 0x07);
    }

    /// Sets TASK MANAGEMENT FLAGS.
    #[inline]
    pub fn set_tm_flags(&mut self, v: TmFlags) {
        self.buffer.as_mut()[field::cmnd::TM_FLAGS] = v.bits();
    }

    /// Sets byte 11: ADDITIONAL FCP_CDB LENGTH (words, masked to six bits), RDDATA and WRDATA.
    /// Set this before the fields whose place it decides (CDB, FCP_DL).
    #[inline]
    pub fn set_flags(&mut self, additional_words: u8, rddata: bool, wrdata: bool) {
        let mut b = (additional_words & 0x3F) << 2;
        if rddata {
            b |= RDDATA;
        }
        if wrdata {
            b |= WRDATA;
        }
        self.buffer.as_mut()[field::cmnd::FLAGS] = b;
    }

    /// The CDB bytes, for writing.
    #[inline]
    pub fn cdb_mut(&mut self) -> &mut [u8] {
        let end = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize;
        &mut self.buffer.as_mut()[field::cmnd::CDB..end]
    }

    /// Sets FCP_DL.
    #[inline]
    pub fn set_dl(&mut self, v: u32) {
        let at = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize;
        put_be32(self.buffer.as_mut(), at, v);
    }

    /// Sets FCP_BIDIRECTIONAL_READ_DL (the buffer must have room for it).
    #[inline]
    pub fn set_bidi_read_dl(&mut self, v: u32) {
        let at = field::cmnd::CDB + CDB_LEN + 4 * self.additional_cdb_len() as usize + 4;
        put_be32(self.buffer.as_mut(), at, v);
    }
}

/// An owned FCP_CMND.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FcpCmndRepr {
    /// The logical unit addressed.
    pub lun: Lun,
    /// Command reference number (0 when not used).
    pub crn: u8,
    /// Command priority, 0-15 (higher values are masked to four bits when emitted).
    pub priority: u8,
    /// Task attribute (masked to three bits when emitted).
    pub task_attribute: TaskAttribute,
    /// Task management flags; empty for a SCSI command.
    pub tm_flags: TmFlags,
    /// RDDATA/WRDATA and, when bidirectional, the read length.
    pub direction: DataDirection,
    /// FCP_CDB: the first 16 CDB bytes, zero padded.
    pub cdb: [u8; CDB_LEN],
    /// The CDB bytes past 16, for CDBs longer than 16 bytes (empty otherwise, so that the
    /// common command costs no allocation). Emitted zero-padded to a multiple of 4; at most
    /// [`MAX_ADDITIONAL_CDB_LEN`] bytes.
    pub additional_cdb: Vec<u8>,
    /// FCP_DL: the data length (the write length when bidirectional).
    pub dl: u32,
}

impl FcpCmndRepr {
    /// A simple-attribute command for `cdb` (any length up to [`MAX_CDB_LEN`]; a CDB shorter
    /// than 16 bytes, such as a 10-byte READ(10), is zero padded).
    pub fn new(
        lun: Lun,
        cdb: &[u8],
        direction: DataDirection,
        dl: u32,
    ) -> Result<FcpCmndRepr, FcpError> {
        if cdb.len() > MAX_CDB_LEN {
            return Err(FcpError::CdbTooLong(cdb.len()));
        }
        let mut first = [0u8; CDB_LEN];
        let n = cdb.len().min(CDB_LEN);
        first[..n].copy_from_slice(&cdb[..n]);
        let additional_cdb = cdb.get(CDB_LEN..).map(<[u8]>::to_vec).unwrap_or_default();
        Ok(FcpCmndRepr {
            lun,
            cdb: first,
            additional_cdb,
            direction,
            dl,
            ..FcpCmndRepr::default()
        })
    }

    /// A task management request: `flags` set, no CDB, no data.
    pub fn task_management(lun: Lun, flags: TmFlags) -> FcpCmndRepr {
        FcpCmndRepr {
            lun,
            tm_flags: flags,
            ..FcpCmndRepr::default()
        }
    }

    /// True if any task management flag is set (the CDB is then ignored).
    pub fn is_task_management(&self) -> bool {
        !self.tm_flags.is_empty()
    }

    /// The whole CDB as one slice: borrowed for 16-byte CDBs, joined for longer ones.
    pub fn full_cdb(&self) -> Cow<'_, [u8]> {
        if self.additional_cdb.is_empty() {
            Cow::Borrowed(&self.cdb[..])
        } else {
            let mut v = Vec::with_capacity(CDB_LEN + self.additional_cdb.len());
            v.extend_from_slice(&self.cdb);
            v.extend_from_slice(&self.additional_cdb);
            Cow::Owned(v)
        }
    }

    /// Parses an FCP_CMND payload.
    pub fn parse(buf: &[u8]) -> Result<FcpCmndRepr, FcpError> {
        LenError::check(Layer::Fcp, CMND_MIN_LEN, buf.len())?;
        let flags = buf[field::cmnd::FLAGS];
        let expected = cmnd_len(flags);
        // FCP-4: the IU is exactly as long as ADDITIONAL FCP_CDB LENGTH (and the
        // bidirectional read length) make it; anything else means byte 11 or the frame is
        // wrong, and the target answers "FCP_CMND fields invalid".
        if buf.len() != expected {
            return Err(FcpError::CmndLength {
                len: buf.len(),
                additional: flags >> 2,
                expected,
            });
        }
        let v = FcpCmnd::new_checked(buf)?;
        let cdb_all = v.cdb();
        let mut cdb = [0u8; CDB_LEN];
        cdb.copy_from_slice(&cdb_all[..CDB_LEN]);
        Ok(FcpCmndRepr {
            lun: v.lun(),
            crn: v.crn(),
            priority: v.priority(),
            task_attribute: v.task_attribute(),
            tm_flags: v.tm_flags(),
            direction: v.direction(),
            cdb,
            additional_cdb: cdb_all[CDB_LEN..].to_vec(),
            dl: v.dl(),
        })
    }

    /// Additional CDB length in 4-byte words, as emitted.
    fn additional_words(&self) -> usize {
        self.additional_cdb.len().div_ceil(4)
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let bidi = if matches!(self.direction, DataDirection::Bidirectional { .. }) {
            4
        } else {
            0
        };
        CMND_MIN_LEN + 4 * self.additional_words() + bidi
    }

    /// Writes the FCP_CMND into the first [`buffer_len`](Self::buffer_len) bytes of `buf`.
    /// Panics if `buf` is shorter, or if `additional_cdb` is longer than
    /// [`MAX_ADDITIONAL_CDB_LEN`] (build with [`new`](Self::new) to have that checked).
    pub fn emit(&self, buf: &mut [u8]) {
        let words = self.additional_words();
        assert!(
            words <= MAX_ADDITIONAL_CDB_LEN / 4,
            "FCP_CMND additional CDB of {} bytes is longer than {MAX_ADDITIONAL_CDB_LEN}",
            self.additional_cdb.len()
        );
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        let mut v = FcpCmnd::new_unchecked(b);
        v.set_lun(self.lun);
        v.set_crn(self.crn);
        v.set_task(self.priority, self.task_attribute);
        v.set_tm_flags(self.tm_flags);
        // `words` is at most 63 (asserted above), so it fits the six-bit field.
        v.set_flags(
            words as u8,
            self.direction.rddata(),
            self.direction.wrdata(),
        );
        let cdb = v.cdb_mut();
        cdb[..CDB_LEN].copy_from_slice(&self.cdb);
        cdb[CDB_LEN..CDB_LEN + self.additional_cdb.len()].copy_from_slice(&self.additional_cdb);
        v.set_dl(self.dl);
        if let DataDirection::Bidirectional { read_dl } = self.direction {
            v.set_bidi_read_dl(read_dl);
        }
    }

    /// The FCP_CMND as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// One line: `FCP_CMND LUN0 op=28 dl=4096 read`, or `FCP_CMND LUN1 LOGICAL UNIT RESET` for a
/// task management request; `crn=`, `prio=` and a task attribute other than simple when set.
impl fmt::Display for FcpCmndRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FCP_CMND {}", self.lun)?;
        if self.is_task_management() {
            for n in self.tm_flags.names() {
                write!(f, " {n}")?;
            }
            let other = self.tm_flags.bits() & !TmFlags::all().bits();
            if other != 0 {
                write!(f, " tm_flags={:#04x}", self.tm_flags.bits())?;
            }
            return Ok(());
        }
        write!(f, " op={:02x} dl={}", self.cdb[0], self.dl)?;
        match self.direction {
            DataDirection::None => {}
            DataDirection::Read => f.write_str(" read")?,
            DataDirection::Write => f.write_str(" write")?,
            DataDirection::Bidirectional { read_dl } => write!(f, " bidi read_dl={read_dl}")?,
        }
        if self.task_attribute != TaskAttribute::SIMPLE {
            write!(f, " {}", self.task_attribute)?;
        }
        if self.priority != 0 {
            write!(f, " prio={}", self.priority)?;
        }
        if self.crn != 0 {
            write!(f, " crn={}", self.crn)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// FCP_XFER_RDY

/// A view of FCP_XFER_RDY over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcpXferRdy<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FcpXferRdy<T> {
    /// Wraps a buffer without checking its length. Accessors panic on a buffer shorter than
    /// [`XFER_RDY_LEN`]: use only on buffers this program sized.
    pub const fn new_unchecked(buffer: T) -> FcpXferRdy<T> {
        FcpXferRdy { buffer }
    }

    /// Wraps a buffer of at least [`XFER_RDY_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<FcpXferRdy<T>, LenError> {
        LenError::check(Layer::Fcp, XFER_RDY_LEN, buffer.as_ref().len())?;
        Ok(FcpXferRdy { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// FCP_DATA_RO: the relative offset of the first byte the target wants.
    #[inline]
    pub fn data_ro(&self) -> u32 {
        be32(self.buffer.as_ref(), field::xfer_rdy::DATA_RO.start)
    }

    /// FCP_BURST_LEN: how many bytes the target wants in this burst.
    #[inline]
    pub fn burst_len(&self) -> u32 {
        be32(self.buffer.as_ref(), field::xfer_rdy::BURST_LEN.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FcpXferRdy<T> {
    /// Sets FCP_DATA_RO.
    #[inline]
    pub fn set_data_ro(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::xfer_rdy::DATA_RO.start, v);
    }

    /// Sets FCP_BURST_LEN.
    #[inline]
    pub fn set_burst_len(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::xfer_rdy::BURST_LEN.start, v);
    }
}

/// An owned FCP_XFER_RDY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FcpXferRdyRepr {
    /// FCP_DATA_RO.
    pub data_ro: u32,
    /// FCP_BURST_LEN.
    pub burst_len: u32,
}

impl FcpXferRdyRepr {
    /// Parses an FCP_XFER_RDY payload; bytes past the 12 are ignored.
    pub fn parse(buf: &[u8]) -> Result<FcpXferRdyRepr, FcpError> {
        let v = FcpXferRdy::new_checked(buf)?;
        Ok(FcpXferRdyRepr {
            data_ro: v.data_ro(),
            burst_len: v.burst_len(),
        })
    }

    /// Always [`XFER_RDY_LEN`].
    pub const fn buffer_len(&self) -> usize {
        XFER_RDY_LEN
    }

    /// Writes the IU into the first [`XFER_RDY_LEN`] bytes of `buf` (panics if shorter).
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..XFER_RDY_LEN];
        b.fill(0);
        let mut v = FcpXferRdy::new_unchecked(b);
        v.set_data_ro(self.data_ro);
        v.set_burst_len(self.burst_len);
    }

    /// The IU as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; XFER_RDY_LEN];
        self.emit(&mut v);
        v
    }
}

/// One line: `FCP_XFER_RDY ro=0 burst=4096`.
impl fmt::Display for FcpXferRdyRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FCP_XFER_RDY ro={} burst={}",
            self.data_ro, self.burst_len
        )
    }
}

// ---------------------------------------------------------------------------------------------
// FCP_RSP

bitflags! {
    /// FCP_RSP byte 10 (FCP-4 Table 34).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct FcpRspFlags: u8 {
        /// FCP_RSP_LEN is valid and FCP_RSP_INFO present.
        const RSP_LEN_VALID = 0x01;
        /// FCP_SNS_LEN is valid and sense data present.
        const SNS_LEN_VALID = 0x02;
        /// FCP_RESID is an overrun: the command wanted more than FCP_DL.
        const RESID_OVER = 0x04;
        /// FCP_RESID is an underrun: fewer bytes moved than FCP_DL.
        const RESID_UNDER = 0x08;
        /// The target asks the initiator for FCP_CONF.
        const CONF_REQ = 0x10;
        /// FCP_BIDIRECTIONAL_READ_RESID is an overrun.
        const BIDI_READ_RESID_OVER = 0x20;
        /// FCP_BIDIRECTIONAL_READ_RESID is an underrun.
        const BIDI_READ_RESID_UNDER = 0x40;
        /// Bidirectional response: FCP_BIDIRECTIONAL_READ_RESID follows the sense data.
        const BIDI_RSP = 0x80;
    }
}

code_point! {
    /// RSP_CODE in FCP_RSP_INFO (FCP-4 Table 35). Open: any byte is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RspCode(pub u8) {
        /// Task management function complete (or no failure).
        TMF_COMPLETE = 0x00 => "task management function complete",
        /// FCP_DATA length different than FCP_BURST_LEN.
        DATA_LEN_MISMATCH = 0x01 => "FCP_DATA length different than FCP_BURST_LEN",
        /// FCP_CMND fields invalid.
        CMND_FIELDS_INVALID = 0x02 => "FCP_CMND fields invalid",
        /// FCP_DATA parameter value not the same as FCP_DATA_RO.
        DATA_RO_MISMATCH = 0x03 => "FCP_DATA parameter value not same as FCP_DATA_RO",
        /// Task management function not supported.
        TMF_NOT_SUPPORTED = 0x04 => "task management function not supported",
        /// Task management function failed.
        TMF_FAILED = 0x05 => "task management function failed",
        /// Task management function incorrect logical unit number.
        TMF_INCORRECT_LUN = 0x09 => "task management function incorrect LUN",
    }

    /// The description FCP-4 gives the code.
    pub const fn name;
}

impl fmt::Display for RspCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "RSP_CODE {:#04x}", self.0),
        }
    }
}

/// How long FCP_RSP_INFO is on the wire: FCP-4 allows 4 or 8 bytes (Linux sends 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RspInfoLen {
    /// Four bytes: three reserved, RSP_CODE.
    Four,
    /// Eight bytes: three reserved, RSP_CODE, four reserved.
    #[default]
    Eight,
}

impl RspInfoLen {
    /// The length in bytes.
    pub const fn bytes(self) -> usize {
        match self {
            RspInfoLen::Four => 4,
            RspInfoLen::Eight => 8,
        }
    }
}

/// FCP_RSP_INFO: the outcome of a task management request, or an FCP protocol failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RspInfo {
    /// RSP_CODE.
    pub code: RspCode,
    /// 4 or 8 bytes on the wire.
    pub len: RspInfoLen,
}

/// FCP_RESID and its flags: how far the data moved fell short of, or would have exceeded,
/// FCP_DL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Residual {
    /// Exactly FCP_DL bytes moved (neither flag set; FCP_RESID is ignored).
    #[default]
    None,
    /// FCP_RESID_UNDER: this many bytes of FCP_DL were not transferred.
    Under(u32),
    /// FCP_RESID_OVER: the command wanted this many bytes more than FCP_DL.
    Over(u32),
}

impl Residual {
    /// The residual for a command with data length `fcp_dl` whose CDB asked for `needed`
    /// bytes: underrun if it needed less, overrun (saturated at `u32::MAX`) if more.
    pub fn between(fcp_dl: u32, needed: u64) -> Residual {
        let dl = u64::from(fcp_dl);
        if needed < dl {
            // needed < dl <= u32::MAX, so the difference fits.
            Residual::Under((dl - needed) as u32)
        } else if needed > dl {
            Residual::Over(u32::try_from(needed - dl).unwrap_or(u32::MAX))
        } else {
            Residual::None
        }
    }

    /// The residual count (0 for [`Residual::None`]).
    pub const fn count(self) -> u32 {
        match self {
            Residual::None => 0,
            Residual::Under(n) | Residual::Over(n) => n,
        }
    }

    /// Reads a residual from its over/under flags and count.
    fn from_flags(over: bool, under: bool, count: u32) -> Option<Residual> {
        match (over, under) {
            (true, true) => None,
            (true, false) => Some(Residual::Over(count)),
            (false, true) => Some(Residual::Under(count)),
            (false, false) => Some(Residual::None),
        }
    }
}

/// A view of FCP_RSP over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FcpRsp<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FcpRsp<T> {
    /// Wraps a buffer without checking its length. Accessors of the fixed part panic on a
    /// buffer shorter than [`RSP_MIN_LEN`]: use only on buffers this program sized.
    pub const fn new_unchecked(buffer: T) -> FcpRsp<T> {
        FcpRsp { buffer }
    }

    /// Wraps a buffer of at least [`RSP_MIN_LEN`] bytes. The variable parts are checked by
    /// their accessors ([`rsp_info`](Self::rsp_info), [`sense_data`](Self::sense_data)) and
    /// by [`FcpRspRepr::parse`].
    pub fn new_checked(buffer: T) -> Result<FcpRsp<T>, LenError> {
        LenError::check(Layer::Fcp, RSP_MIN_LEN, buffer.as_ref().len())?;
        Ok(FcpRsp { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Bytes 8-9: RETRY DELAY TIMER (FCP-3), STATUS QUALIFIER (FCP-4).
    #[inline]
    pub fn status_qualifier(&self) -> u16 {
        be16(self.buffer.as_ref(), field::rsp::STATUS_QUALIFIER.start)
    }

    /// The flags of byte 10.
    #[inline]
    pub fn flags(&self) -> FcpRspFlags {
        FcpRspFlags::from_bits_retain(self.buffer.as_ref()[field::rsp::FLAGS])
    }

    /// SCSI STATUS CODE.
    #[inline]
    pub fn status(&self) -> ScsiStatus {
        ScsiStatus(self.buffer.as_ref()[field::rsp::STATUS])
    }

    /// FCP_RESID (meaningful when RESID_OVER or RESID_UNDER is set).
    #[inline]
    pub fn resid(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rsp::RESID.start)
    }

    /// FCP_SNS_LEN (meaningful when SNS_LEN_VALID is set).
    #[inline]
    pub fn sns_len(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rsp::SNS_LEN.start)
    }

    /// FCP_RSP_LEN (meaningful when RSP_LEN_VALID is set).
    #[inline]
    pub fn rsp_len(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rsp::RSP_LEN.start)
    }

    /// FCP_RSP_LEN where RSP_LEN_VALID says it counts, else 0.
    fn effective_rsp_len(&self) -> u32 {
        if self.flags().contains(FcpRspFlags::RSP_LEN_VALID) {
            self.rsp_len()
        } else {
            0
        }
    }

    /// FCP_RSP_INFO, when RSP_LEN_VALID is set and the bytes are present.
    pub fn rsp_info(&self) -> Option<&[u8]> {
        if !self.flags().contains(FcpRspFlags::RSP_LEN_VALID) {
            return None;
        }
        let len = usize::try_from(self.rsp_len()).ok()?;
        let end = field::rsp::INFO.checked_add(len)?;
        self.buffer.as_ref().get(field::rsp::INFO..end)
    }

    /// The sense data, when SNS_LEN_VALID is set and the bytes are present.
    pub fn sense_data(&self) -> Option<&[u8]> {
        if !self.flags().contains(FcpRspFlags::SNS_LEN_VALID) {
            return None;
        }
        let start =
            field::rsp::INFO.checked_add(usize::try_from(self.effective_rsp_len()).ok()?)?;
        let end = start.checked_add(usize::try_from(self.sns_len()).ok()?)?;
        self.buffer.as_ref().get(start..end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FcpRsp<T> {
    /// Sets bytes 8-9.
    #[inline]
    pub fn set_status_qualifier(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::rsp::STATUS_QUALIFIER.start, v);
    }

    /// Sets the flags.
    #[inline]
    pub fn set_flags(&mut self, v: FcpRspFlags) {
        self.buffer.as_mut()[field::rsp::FLAGS] = v.bits();
    }

    /// Sets SCSI STATUS CODE.
    #[inline]
    pub fn set_status(&mut self, v: ScsiStatus) {
        self.buffer.as_mut()[field::rsp::STATUS] = v.0;
    }

    /// Sets FCP_RESID.
    #[inline]
    pub fn set_resid(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rsp::RESID.start, v);
    }

    /// Sets FCP_SNS_LEN.
    #[inline]
    pub fn set_sns_len(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rsp::SNS_LEN.start, v);
    }

    /// Sets FCP_RSP_LEN.
    #[inline]
    pub fn set_rsp_len(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rsp::RSP_LEN.start, v);
    }
}

/// An owned FCP_RSP. The flags of byte 10 are derived from the fields when emitting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FcpRspRepr {
    /// Bytes 8-9: RETRY DELAY TIMER / STATUS QUALIFIER (0 when not used).
    pub status_qualifier: u16,
    /// SCSI status.
    pub status: ScsiStatus,
    /// FCP_RESID with RESID_OVER/RESID_UNDER.
    pub residual: Residual,
    /// CONF_REQ: the target wants FCP_CONF.
    pub conf_req: bool,
    /// FCP_RSP_INFO (RSP_LEN_VALID).
    pub rsp_info: Option<RspInfo>,
    /// The sense data bytes (SNS_LEN_VALID when not empty). Read them with
    /// [`sense`](Self::sense).
    pub sense_data: Vec<u8>,
    /// FCP_BIDIRECTIONAL_READ_RESID with its flags, for a bidirectional command (BIDI_RSP).
    pub bidi_read_residual: Option<Residual>,
}

impl FcpRspRepr {
    /// GOOD status, nothing else.
    pub fn good() -> FcpRspRepr {
        FcpRspRepr::default()
    }

    /// A status without sense data (BUSY, TASK SET FULL, RESERVATION CONFLICT, ...).
    pub fn with_status(status: ScsiStatus) -> FcpRspRepr {
        FcpRspRepr {
            status,
            ..FcpRspRepr::default()
        }
    }

    /// CHECK CONDITION with `sense`.
    pub fn check_condition(sense: &Sense) -> FcpRspRepr {
        FcpRspRepr {
            status: ScsiStatus::CHECK_CONDITION,
            sense_data: sense.to_vec(),
            ..FcpRspRepr::default()
        }
    }

    /// The answer to a task management request (or an FCP protocol failure): GOOD status with
    /// an 8-byte FCP_RSP_INFO carrying `code`.
    pub fn rsp_code(code: RspCode) -> FcpRspRepr {
        FcpRspRepr {
            rsp_info: Some(RspInfo {
                code,
                len: RspInfoLen::Eight,
            }),
            ..FcpRspRepr::default()
        }
    }

    /// This response with `residual`.
    pub fn with_residual(mut self, residual: Residual) -> FcpRspRepr {
        self.residual = residual;
        self
    }

    /// This response with the bidirectional read residual (sets BIDI_RSP).
    pub fn with_bidi_read_residual(mut self, residual: Residual) -> FcpRspRepr {
        self.bidi_read_residual = Some(residual);
        self
    }

    /// Sets the residual.
    pub fn set_residual(&mut self, residual: Residual) {
        self.residual = residual;
    }

    /// The sense data parsed, if there is any.
    pub fn sense(&self) -> Option<Result<Sense, SenseError>> {
        if self.sense_data.is_empty() {
            None
        } else {
            Some(Sense::parse(&self.sense_data))
        }
    }

    /// The flags byte this response is emitted with.
    pub fn flags(&self) -> FcpRspFlags {
        let mut f = FcpRspFlags::empty();
        f.set(FcpRspFlags::RSP_LEN_VALID, self.rsp_info.is_some());
        f.set(FcpRspFlags::SNS_LEN_VALID, !self.sense_data.is_empty());
        f.set(
            FcpRspFlags::RESID_OVER,
            matches!(self.residual, Residual::Over(_)),
        );
        f.set(
            FcpRspFlags::RESID_UNDER,
            matches!(self.residual, Residual::Under(_)),
        );
        f.set(FcpRspFlags::CONF_REQ, self.conf_req);
        if let Some(r) = self.bidi_read_residual {
            f |= FcpRspFlags::BIDI_RSP;
            f.set(
                FcpRspFlags::BIDI_READ_RESID_OVER,
                matches!(r, Residual::Over(_)),
            );
            f.set(
                FcpRspFlags::BIDI_READ_RESID_UNDER,
                matches!(r, Residual::Under(_)),
            );
        }
        f
    }

    /// Parses an FCP_RSP payload. Bytes after the last field the flags call for are ignored.
    pub fn parse(buf: &[u8]) -> Result<FcpRspRepr, FcpError> {
        let v = FcpRsp::new_checked(buf)?;
        let flags = v.flags();
        // FCP-4: FCP_RESID_OVER and FCP_RESID_UNDER shall not both be set.
        let residual = Residual::from_flags(
            flags.contains(FcpRspFlags::RESID_OVER),
            flags.contains(FcpRspFlags::RESID_UNDER),
            v.resid(),
        )
        .ok_or(FcpError::ResidualOverAndUnder)?;
        let bidi_flags = FcpRspFlags::BIDI_READ_RESID_OVER | FcpRspFlags::BIDI_READ_RESID_UNDER;
        // The bidirectional read residual flags only mean something with FCP_BIDI_RSP.
        if !flags.contains(FcpRspFlags::BIDI_RSP) && flags.intersects(bidi_flags) {
            return Err(FcpError::BidiResidualWithoutBidiRsp(flags.bits()));
        }

        let available = buf.len() - RSP_MIN_LEN;
        let mut at = RSP_MIN_LEN;
        let rsp_info = if flags.contains(FcpRspFlags::RSP_LEN_VALID) {
            let rsp_len = v.rsp_len();
            // FCP-4: FCP_RSP_LEN, when valid, is 0, 4 or 8.
            let len = match rsp_len {
                0 => None,
                4 => Some(RspInfoLen::Four),
                8 => Some(RspInfoLen::Eight),
                _ => return Err(FcpError::BadRspLen(rsp_len)),
            };
            match len {
                None => None,
                Some(len) => {
                    if len.bytes() > available {
                        return Err(FcpError::RspLenTooLong { rsp_len, available });
                    }
                    // RSP_CODE is byte 3 of FCP_RSP_INFO, present by the check above.
                    let code = RspCode(buf[at + 3]);
                    at += len.bytes();
                    Some(RspInfo { code, len })
                }
            }
        } else {
            None
        };

        let sense_data = if flags.contains(FcpRspFlags::SNS_LEN_VALID) {
            let sns_len = v.sns_len();
            let rest = buf.len() - at;
            // The length must fit the bytes present: that also bounds the copy below.
            let n = usize::try_from(sns_len).ok().filter(|n| *n <= rest).ok_or(
                FcpError::SnsLenTooLong {
                    sns_len,
                    available: rest,
                },
            )?;
            let s = buf[at..at + n].to_vec();
            at += n;
            s
        } else {
            Vec::new()
        };

        let bidi_read_residual = if flags.contains(FcpRspFlags::BIDI_RSP) {
            LenError::check(Layer::Fcp, at + 4, buf.len())?;
            let r = Residual::from_flags(
                flags.contains(FcpRspFlags::BIDI_READ_RESID_OVER),
                flags.contains(FcpRspFlags::BIDI_READ_RESID_UNDER),
                be32(buf, at),
            )
            .ok_or(FcpError::BidiResidualOverAndUnder)?;
            Some(r)
        } else {
            None
        };

        Ok(FcpRspRepr {
            status_qualifier: v.status_qualifier(),
            status: v.status(),
            residual,
            conf_req: flags.contains(FcpRspFlags::CONF_REQ),
            rsp_info,
            sense_data,
            bidi_read_residual,
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        RSP_MIN_LEN
            + self.rsp_info.map_or(0, |i| i.len.bytes())
            + self.sense_data.len()
            + if self.bidi_read_residual.is_some() {
                4
            } else {
                0
            }
    }

    /// Writes the FCP_RSP into the first [`buffer_len`](Self::buffer_len) bytes of `buf`.
    /// Panics if `buf` is shorter, or if the sense data is longer than `u32::MAX` bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        let mut v = FcpRsp::new_unchecked(&mut *b);
        v.set_status_qualifier(self.status_qualifier);
        v.set_flags(self.flags());
        v.set_status(self.status);
        v.set_resid(self.residual.count());
        let sns_len = u32::try_from(self.sense_data.len()).expect("sense data longer than 4 GiB");
        v.set_sns_len(sns_len);
        let mut at = RSP_MIN_LEN;
        if let Some(info) = self.rsp_info {
            // A length of 4 or 8 always fits.
            v.set_rsp_len(info.len.bytes() as u32);
            b[at + 3] = info.code.0;
            at += info.len.bytes();
        }
        b[at..at + self.sense_data.len()].copy_from_slice(&self.sense_data);
        at += self.sense_data.len();
        if let Some(r) = self.bidi_read_residual {
            put_be32(b, at, r.count());
        }
    }

    /// The FCP_RSP as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// One line: `FCP_RSP GOOD`, `FCP_RSP CHECK CONDITION: ILLEGAL REQUEST: ... (21/00)`,
/// with `under=`/`over=`, `rsp_code=`, `bidi_read ...` where they apply.
impl fmt::Display for FcpRspRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FCP_RSP {}", self.status)?;
        match self.sense() {
            None => {}
            Some(Ok(s)) => write!(f, ": {s}")?,
            Some(Err(_)) => write!(f, " sense={} bytes (unreadable)", self.sense_data.len())?,
        }
        match self.residual {
            Residual::None => {}
            Residual::Under(n) => write!(f, " under={n}")?,
            Residual::Over(n) => write!(f, " over={n}")?,
        }
        if let Some(info) = self.rsp_info {
            write!(f, " rsp_code={}", info.code)?;
        }
        match self.bidi_read_residual {
            None => {}
            Some(Residual::None) => f.write_str(" bidi")?,
            Some(Residual::Under(n)) => write!(f, " bidi_read_under={n}")?,
            Some(Residual::Over(n)) => write!(f, " bidi_read_over={n}")?,
        }
        if self.conf_req {
            f.write_str(" conf_req")?;
        }
        Ok(())
    }
}

/// Generators for property tests of FCP information units.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;

    /// Any residual.
    pub(crate) fn arb_residual() -> impl Strategy<Value = Residual> {
        prop_oneof![
            Just(Residual::None),
            any::<u32>().prop_map(Residual::Under),
            any::<u32>().prop_map(Residual::Over),
        ]
    }

    /// Any data direction.
    pub(crate) fn arb_direction() -> impl Strategy<Value = DataDirection> {
        prop_oneof![
            Just(DataDirection::None),
            Just(DataDirection::Read),
            Just(DataDirection::Write),
            any::<u32>().prop_map(|read_dl| DataDirection::Bidirectional { read_dl }),
        ]
    }

    prop_compose! {
        /// An FCP_CMND that survives a round trip: additional CDB a whole number of words.
        pub(crate) fn arb_cmnd()(
            lun: [u8; 8], crn: u8, priority in 0u8..16, attr in 0u8..8, tm: u8,
            direction in arb_direction(), cdb: [u8; 16],
            words in 0usize..=63, extra in proptest::collection::vec(any::<u8>(), 252),
            dl: u32,
        ) -> FcpCmndRepr {
            FcpCmndRepr {
                lun: Lun(lun),
                crn,
                priority,
                task_attribute: TaskAttribute(attr),
                tm_flags: TmFlags::from_bits_retain(tm),
                direction,
                cdb,
                additional_cdb: extra[..4 * words].to_vec(),
                dl,
            }
        }
    }

    prop_compose! {
        /// Any FCP_XFER_RDY.
        pub(crate) fn arb_xfer_rdy()(data_ro: u32, burst_len: u32) -> FcpXferRdyRepr {
            FcpXferRdyRepr { data_ro, burst_len }
        }
    }

    prop_compose! {
        /// Any FCP_RSP; the sense bytes are arbitrary (FCP does not look inside them).
        pub(crate) fn arb_rsp()(
            status_qualifier: u16, status: u8, residual in arb_residual(), conf_req: bool,
            rsp_info in proptest::option::of((any::<u8>(), any::<bool>())),
            sense_data in proptest::collection::vec(any::<u8>(), 0..96),
            bidi_read_residual in proptest::option::of(arb_residual()),
        ) -> FcpRspRepr {
            FcpRspRepr {
                status_qualifier,
                status: ScsiStatus(status),
                residual,
                conf_req,
                rsp_info: rsp_info.map(|(code, eight)| RspInfo {
                    code: RspCode(code),
                    len: if eight { RspInfoLen::Eight } else { RspInfoLen::Four },
                }),
                sense_data,
                bidi_read_residual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::strategies::{arb_cmnd, arb_rsp, arb_xfer_rdy};
    use super::*;
    use crate::scsi::sense::strategies::arb_sense;
    use crate::scsi::sense::{AdditionalSense, SenseFormat, SenseKey};

    /// READ(10) LBA 0x1000, 8 blocks, LUN 0, simple, RDDATA, FCP_DL 4096. Checked with tshark
    /// (R_CTL 06, TYPE 08, F_CTL 290000): fcp.lun 0, fcp.taskattr 0, fcp.addlcdblen 0,
    /// fcp.rddata 1, fcp.wrdata 0, fcp.dl 4096, scsi_sbc.opcode 0x28.
    static CMND_READ10: [u8; 32] = hex!(
        "0000000000000000 00 00 00 02"
        "28000000100000000800 000000000000"
        "00001000"
    );

    /// WRITE(10) to LUN 3, CRN 7, ordered, priority 2, WRDATA, FCP_DL 512.
    static CMND_WRITE10: [u8; 32] = hex!(
        "0003000000000000 07 12 00 01"
        "2a000000002000000100 000000000000"
        "00000200"
    );

    /// A 32-byte CDB (variable length, opcode 0x7F) with 4 additional words, no data.
    static CMND_LONG_CDB: [u8; 48] = hex!(
        "0000000000000000 00 00 00 10"
        "7f000000000000180009000000000000"
        "0000000000000000 0000000000000000"
        "00000000"
    );

    /// Bidirectional: RDDATA and WRDATA, FCP_DL 1024 (write), read DL 2048 (XDWRITEREAD(10)).
    static CMND_BIDI: [u8; 36] = hex!(
        "0000000000000000 00 00 00 03"
        "53000000100000000200 000000000000"
        "00000400 00000800"
    );

    /// LOGICAL UNIT RESET to LUN 1.
    static CMND_LU_RESET: [u8; 32] = hex!(
        "0001000000000000 00 00 10 00"
        "00000000000000000000000000000000"
        "00000000"
    );

    /// FCP_XFER_RDY: offset 0, burst 512 (fcp.data_ro 0, fcp.burstlen 512).
    static XFER_RDY: [u8; 12] = hex!("00000000 00000200 00000000");

    /// FCP_RSP GOOD, nothing else (fcp.status 0, fcp.rspflags 0x00).
    static RSP_GOOD: [u8; 24] = hex!("0000000000000000 0000 00 00 00000000 00000000 00000000");

    /// FCP_RSP CHECK CONDITION, ILLEGAL REQUEST / LBA OUT OF RANGE, fixed sense (18 bytes),
    /// underrun 4096 (fcp.rspflags 0x0a, fcp.resid 4096, fcp.snslen 18, scsi.sns.key 5,
    /// scsi.sns.asc 0x21, scsi.sns.ascq 0).
    static RSP_CHECK_LBA: [u8; 42] = hex!(
        "0000000000000000 0000 0a 02 00001000 00000012 00000000"
        "700005000000000a00000000210000000000"
    );

    /// FCP_RSP for a task management request: RSP_LEN_VALID, 8-byte FCP_RSP_INFO with
    /// RSP_CODE 0 (fcp.rspflags 0x01, fcp.rsplen 8, fcp.rspcode 0).
    static RSP_TMF_COMPLETE: [u8; 32] = hex!(
        "0000000000000000 0000 01 00 00000000 00000000 00000008"
        "0000000000000000"
    );

    /// FCP_RSP, 4-byte FCP_RSP_INFO with RSP_CODE 2 (FCP_CMND fields invalid), overrun 8,
    /// CONF_REQ, retry delay timer 100.
    static RSP_CMND_INVALID: [u8; 28] = hex!(
        "0000000000000000 0064 15 00 00000008 00000000 00000004"
        "00000002"
    );

    /// FCP_RSP bidirectional: BIDI_RSP, read underrun 16, sense (descriptor format,
    /// MISCOMPARE / MISCOMPARE DURING VERIFY, info 3), read residual after the sense.
    static RSP_BIDI: [u8; 48] = hex!(
        "0000000000000000 0000 c2 02 00000000 00000014 00000000"
        "72 0e 1d 00 000000 0c 00 0a 80 00 0000000000000003"
        "00000010"
    );

    #[test]
    fn test_parse_cmnd() {
        let v = FcpCmnd::new_checked(&CMND_READ10[..]).unwrap();
        assert_eq!(v.lun(), Lun::ZERO);
        assert_eq!(v.task_attribute(), TaskAttribute::SIMPLE);
        assert!(v.rddata() && !v.wrdata());
        assert_eq!(v.cdb(), &hex!("28000000100000000800000000000000"));
        assert_eq!(v.dl(), 4096);
        assert_eq!(v.bidi_read_dl(), None);
        let r = FcpCmndRepr::parse(&CMND_READ10).unwrap();
        assert_eq!(r, read10());
        assert_eq!(r.full_cdb(), Cow::Borrowed(&CMND_READ10[12..28]));

        let w = FcpCmndRepr::parse(&CMND_WRITE10).unwrap();
        assert_eq!(w, write10());
        assert_eq!(w.lun.index(), Some(3));
        assert_eq!(w.task_attribute, TaskAttribute::ORDERED);
        assert_eq!(w.priority, 2);

        let l = FcpCmndRepr::parse(&CMND_LONG_CDB).unwrap();
        assert_eq!(l.full_cdb().len(), 32);
        assert_eq!(l.full_cdb()[..], CMND_LONG_CDB[12..44]);
        assert_eq!(l.additional_cdb.len(), 16);

        let b = FcpCmndRepr::parse(&CMND_BIDI).unwrap();
        assert_eq!(b.direction, DataDirection::Bidirectional { read_dl: 2048 });
        assert!(b.direction.rddata() && b.direction.wrdata());
        assert_eq!(b.dl, 1024);

        let t = FcpCmndRepr::parse(&CMND_LU_RESET).unwrap();
        assert!(t.is_task_management());
        assert_eq!(
            t,
            FcpCmndRepr::task_management(lun(1), TmFlags::LOGICAL_UNIT_RESET)
        );
    }

    fn lun(n: u16) -> Lun {
        Lun::from_index(n).unwrap_or_default()
    }

    fn read10() -> FcpCmndRepr {
        FcpCmndRepr::new(
            Lun::ZERO,
            &hex!("28000000100000000800"),
            DataDirection::Read,
            4096,
        )
        .unwrap()
    }

    fn write10() -> FcpCmndRepr {
        FcpCmndRepr {
            crn: 7,
            priority: 2,
            task_attribute: TaskAttribute::ORDERED,
            ..FcpCmndRepr::new(
                lun(3),
                &hex!("2a000000002000000100"),
                DataDirection::Write,
                512,
            )
            .unwrap()
        }
    }

    #[test]
    fn test_emit_cmnd() {
        let cases: [(FcpCmndRepr, &[u8]); 5] = [
            (read10(), &CMND_READ10),
            (write10(), &CMND_WRITE10),
            (
                FcpCmndRepr::new(
                    Lun::ZERO,
                    &hex!("7f000000000000180009000000000000 0000000000000000 0000000000000000"),
                    DataDirection::None,
                    0,
                )
                .unwrap(),
                &CMND_LONG_CDB,
            ),
            (
                FcpCmndRepr::new(
                    Lun::ZERO,
                    &hex!("53000000100000000200"),
                    DataDirection::Bidirectional { read_dl: 2048 },
                    1024,
                )
                .unwrap(),
                &CMND_BIDI,
            ),
            (
                FcpCmndRepr::task_management(lun(1), TmFlags::LOGICAL_UNIT_RESET),
                &CMND_LU_RESET,
            ),
        ];
        for (repr, bytes) in cases {
            assert_eq!(repr.buffer_len(), bytes.len());
            assert_eq!(repr.to_vec(), bytes, "{repr}");
            assert_eq!(FcpCmndRepr::parse(bytes).as_ref(), Ok(&repr));
        }
    }

    #[test]
    fn test_cmnd_unaligned_additional_cdb_is_padded() {
        let r = FcpCmndRepr::new(Lun::ZERO, &[0xAB; 18], DataDirection::None, 0).unwrap();
        let b = r.to_vec();
        assert_eq!(b.len(), 36);
        assert_eq!(b[11], 0x04);
        assert_eq!(&b[28..32], &[0xAB, 0xAB, 0, 0]);
        assert_eq!(
            FcpCmndRepr::parse(&b).unwrap().additional_cdb,
            vec![0xAB, 0xAB, 0, 0]
        );
    }

    #[test]
    fn test_cmnd_cdb_too_long() {
        assert_eq!(
            FcpCmndRepr::new(Lun::ZERO, &[0; MAX_CDB_LEN + 1], DataDirection::None, 0),
            Err(FcpError::CdbTooLong(269))
        );
        let max = FcpCmndRepr::new(Lun::ZERO, &[1; MAX_CDB_LEN], DataDirection::None, 0).unwrap();
        assert_eq!(max.to_vec()[11], 63 << 2);
        assert_eq!(FcpCmndRepr::parse(&max.to_vec()), Ok(max));
    }

    #[test]
    fn test_cmnd_length_mismatch() {
        // Additional CDB length 1 word claimed, but only 32 bytes.
        let mut b = CMND_READ10;
        b[11] |= 0x04;
        assert_eq!(
            FcpCmndRepr::parse(&b),
            Err(FcpError::CmndLength {
                len: 32,
                additional: 1,
                expected: 36
            })
        );
        assert_eq!(
            FcpCmndRepr::parse(&b).unwrap_err().to_string(),
            "FCP_CMND length 32 does not match additional CDB length 1 (expected 36 bytes)"
        );
        // The view refuses it too: FCP_DL would be out of the buffer.
        assert!(FcpCmnd::new_checked(&b[..]).is_err());
        // Too long.
        let mut long = CMND_READ10.to_vec();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(
            FcpCmndRepr::parse(&long),
            Err(FcpError::CmndLength {
                len: 36,
                additional: 0,
                expected: 32
            })
        );
        // RDDATA and WRDATA both set without FCP_BIDIRECTIONAL_READ_DL.
        let mut b = CMND_READ10;
        b[11] = 0x03;
        assert_eq!(
            FcpCmndRepr::parse(&b),
            Err(FcpError::CmndLength {
                len: 32,
                additional: 0,
                expected: 36
            })
        );
    }

    #[test]
    fn test_cmnd_truncated() {
        for len in 0..CMND_BIDI.len() {
            assert!(FcpCmndRepr::parse(&CMND_BIDI[..len]).is_err(), "{len}");
            assert!(FcpCmndRepr::parse(&CMND_LONG_CDB[..len.min(47)]).is_err());
        }
        for len in 0..CMND_MIN_LEN {
            assert_eq!(
                FcpCmndRepr::parse(&CMND_READ10[..len]),
                Err(FcpError::Len(LenError {
                    layer: Layer::Fcp,
                    required: CMND_MIN_LEN,
                    actual: len
                }))
            );
        }
    }

    #[test]
    fn test_cmnd_display() {
        assert_eq!(read10().to_string(), "FCP_CMND LUN0 op=28 dl=4096 read");
        assert_eq!(
            write10().to_string(),
            "FCP_CMND LUN3 op=2a dl=512 write ordered prio=2 crn=7"
        );
        assert_eq!(
            FcpCmndRepr::task_management(lun(1), TmFlags::LOGICAL_UNIT_RESET).to_string(),
            "FCP_CMND LUN1 LOGICAL UNIT RESET"
        );
        assert_eq!(
            FcpCmndRepr::parse(&CMND_BIDI).unwrap().to_string(),
            "FCP_CMND LUN0 op=53 dl=1024 bidi read_dl=2048"
        );
    }

    #[test]
    fn test_view_setters() {
        let mut b = [0u8; 36];
        let mut v = FcpCmnd::new_unchecked(&mut b[..]);
        v.set_lun(lun(5));
        v.set_crn(9);
        v.set_task(0x1F, TaskAttribute(0x0F));
        v.set_tm_flags(TmFlags::CLEAR_ACA);
        v.set_flags(1, true, false);
        v.cdb_mut()[0] = 0x12;
        v.set_dl(36);
        assert_eq!(v.priority(), 0x0F);
        assert_eq!(v.task_attribute(), TaskAttribute(0x07));
        assert_eq!(v.tm_flags(), TmFlags::CLEAR_ACA);
        assert_eq!(v.expected_len(), 36);
        assert_eq!(v.cdb().len(), 20);
        assert_eq!(v.dl(), 36);
        assert_eq!(&b[32..36], &[0, 0, 0, 36]);
        assert_eq!(b[9], 0x7F);
    }

    #[test]
    fn test_xfer_rdy() {
        let r = FcpXferRdyRepr::parse(&XFER_RDY).unwrap();
        assert_eq!(
            r,
            FcpXferRdyRepr {
                data_ro: 0,
                burst_len: 512
            }
        );
        assert_eq!(r.to_vec(), XFER_RDY);
        assert_eq!(r.buffer_len(), 12);
        assert_eq!(r.to_string(), "FCP_XFER_RDY ro=0 burst=512");
        let r2 = FcpXferRdyRepr {
            data_ro: 0x0001_0000,
            burst_len: 0x0002_0000,
        };
        assert_eq!(r2.to_vec(), hex!("00010000 00020000 00000000"));
        for len in 0..XFER_RDY_LEN {
            assert_eq!(
                FcpXferRdyRepr::parse(&XFER_RDY[..len]),
                Err(FcpError::Len(LenError {
                    layer: Layer::Fcp,
                    required: XFER_RDY_LEN,
                    actual: len
                }))
            );
        }
    }

    fn check_lba() -> FcpRspRepr {
        FcpRspRepr::check_condition(&Sense::lba_out_of_range()).with_residual(Residual::Under(4096))
    }

    fn bidi_miscompare() -> FcpRspRepr {
        let sense = Sense::miscompare(3).with_format(SenseFormat::Descriptor);
        FcpRspRepr::check_condition(&sense).with_bidi_read_residual(Residual::Under(16))
    }

    fn cmnd_invalid() -> FcpRspRepr {
        FcpRspRepr {
            status_qualifier: 100,
            conf_req: true,
            rsp_info: Some(RspInfo {
                code: RspCode::CMND_FIELDS_INVALID,
                len: RspInfoLen::Four,
            }),
            ..FcpRspRepr::good().with_residual(Residual::Over(8))
        }
    }

    #[test]
    fn test_parse_rsp() {
        let g = FcpRspRepr::parse(&RSP_GOOD).unwrap();
        assert_eq!(g, FcpRspRepr::good());
        assert_eq!(g.sense(), None);

        let c = FcpRspRepr::parse(&RSP_CHECK_LBA).unwrap();
        assert_eq!(c.status, ScsiStatus::CHECK_CONDITION);
        assert_eq!(c.residual, Residual::Under(4096));
        assert_eq!(c.sense(), Some(Ok(Sense::lba_out_of_range())));
        assert_eq!(c, check_lba());
        let v = FcpRsp::new_checked(&RSP_CHECK_LBA[..]).unwrap();
        assert_eq!(
            v.flags(),
            FcpRspFlags::SNS_LEN_VALID | FcpRspFlags::RESID_UNDER
        );
        assert_eq!(v.sns_len(), 18);
        assert_eq!(v.sense_data(), Some(&RSP_CHECK_LBA[24..]));
        assert_eq!(v.rsp_info(), None);

        let t = FcpRspRepr::parse(&RSP_TMF_COMPLETE).unwrap();
        assert_eq!(t, FcpRspRepr::rsp_code(RspCode::TMF_COMPLETE));
        assert_eq!(
            FcpRsp::new_checked(&RSP_TMF_COMPLETE[..])
                .unwrap()
                .rsp_info(),
            Some(&[0u8; 8][..])
        );

        let i = FcpRspRepr::parse(&RSP_CMND_INVALID).unwrap();
        assert_eq!(i, cmnd_invalid());
        assert_eq!(i.flags().bits(), 0x15);

        let b = FcpRspRepr::parse(&RSP_BIDI).unwrap();
        assert_eq!(b, bidi_miscompare());
        let s = b.sense().unwrap().unwrap();
        assert_eq!(s.key, SenseKey::MISCOMPARE);
        assert_eq!(s.additional, AdditionalSense::MISCOMPARE_DURING_VERIFY);
        assert_eq!(s.information, Some(3));
    }

    #[test]
    fn test_emit_rsp() {
        let cases: [(FcpRspRepr, &[u8]); 5] = [
            (FcpRspRepr::good(), &RSP_GOOD),
            (check_lba(), &RSP_CHECK_LBA),
            (
                FcpRspRepr::rsp_code(RspCode::TMF_COMPLETE),
                &RSP_TMF_COMPLETE,
            ),
            (cmnd_invalid(), &RSP_CMND_INVALID),
            (bidi_miscompare(), &RSP_BIDI),
        ];
        for (repr, bytes) in cases {
            assert_eq!(repr.buffer_len(), bytes.len());
            assert_eq!(repr.to_vec(), bytes, "{repr}");
            assert_eq!(FcpRspRepr::parse(bytes).as_ref(), Ok(&repr));
        }
    }

    #[test]
    fn test_rsp_ignores_lengths_without_valid_flags() {
        // FCP_SNS_LEN and FCP_RSP_LEN set but their valid flags clear: ignored.
        let mut b = RSP_GOOD;
        b[19] = 0xFF;
        b[23] = 0x07;
        b[12..16].copy_from_slice(&[0, 0, 1, 0]); // FCP_RESID without a flag
        assert_eq!(FcpRspRepr::parse(&b), Ok(FcpRspRepr::good()));
        let v = FcpRsp::new_checked(&b[..]).unwrap();
        assert_eq!(v.sense_data(), None);
        assert_eq!(v.rsp_info(), None);
    }

    #[test]
    fn test_rsp_errors() {
        let mut b = RSP_GOOD;
        b[10] = 0x0C;
        assert_eq!(FcpRspRepr::parse(&b), Err(FcpError::ResidualOverAndUnder));

        b[10] = 0x40;
        assert_eq!(
            FcpRspRepr::parse(&b),
            Err(FcpError::BidiResidualWithoutBidiRsp(0x40))
        );

        let mut b = RSP_BIDI;
        b[10] = 0xE2;
        assert_eq!(
            FcpRspRepr::parse(&b),
            Err(FcpError::BidiResidualOverAndUnder)
        );

        let mut b = RSP_TMF_COMPLETE;
        b[23] = 6;
        assert_eq!(FcpRspRepr::parse(&b), Err(FcpError::BadRspLen(6)));
        assert_eq!(
            FcpRspRepr::parse(&b).unwrap_err().to_string(),
            "FCP_RSP_LEN 6 is not 0, 4 or 8"
        );

        assert_eq!(
            FcpRspRepr::parse(&RSP_TMF_COMPLETE[..28]),
            Err(FcpError::RspLenTooLong {
                rsp_len: 8,
                available: 4
            })
        );

        let mut b = RSP_CHECK_LBA;
        b[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            FcpRspRepr::parse(&b),
            Err(FcpError::SnsLenTooLong {
                sns_len: u32::MAX,
                available: 18
            })
        );
        assert_eq!(FcpRsp::new_checked(&b[..]).unwrap().sense_data(), None);

        // BIDI_RSP without room for FCP_BIDIRECTIONAL_READ_RESID.
        assert_eq!(
            FcpRspRepr::parse(&RSP_BIDI[..44]),
            Err(FcpError::Len(LenError {
                layer: Layer::Fcp,
                required: 48,
                actual: 44
            }))
        );
    }

    #[test]
    fn test_rsp_zero_rsp_len_is_no_info() {
        let mut b = RSP_GOOD;
        b[10] = 0x01;
        assert_eq!(FcpRspRepr::parse(&b), Ok(FcpRspRepr::good()));
    }

    #[test]
    fn test_rsp_truncated() {
        for (bytes, name) in [
            (&RSP_CHECK_LBA[..], "check"),
            (&RSP_TMF_COMPLETE[..], "tmf"),
            (&RSP_BIDI[..], "bidi"),
            (&RSP_CMND_INVALID[..], "invalid"),
        ] {
            for len in 0..bytes.len() {
                assert!(FcpRspRepr::parse(&bytes[..len]).is_err(), "{name} {len}");
            }
        }
        for len in 0..RSP_MIN_LEN {
            assert_eq!(
                FcpRspRepr::parse(&RSP_GOOD[..len]),
                Err(FcpError::Len(LenError {
                    layer: Layer::Fcp,
                    required: RSP_MIN_LEN,
                    actual: len
                }))
            );
        }
    }

    #[test]
    fn test_rsp_display() {
        assert_eq!(FcpRspRepr::good().to_string(), "FCP_RSP GOOD");
        assert_eq!(
            check_lba().to_string(),
            "FCP_RSP CHECK CONDITION: ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00) under=4096"
        );
        assert_eq!(
            cmnd_invalid().to_string(),
            "FCP_RSP GOOD over=8 rsp_code=FCP_CMND fields invalid conf_req"
        );
        assert_eq!(
            FcpRspRepr::with_status(ScsiStatus::BUSY).to_string(),
            "FCP_RSP BUSY"
        );
        let bad = FcpRspRepr {
            sense_data: vec![0x00; 4],
            ..FcpRspRepr::with_status(ScsiStatus::CHECK_CONDITION)
        };
        assert_eq!(
            bad.to_string(),
            "FCP_RSP CHECK CONDITION sense=4 bytes (unreadable)"
        );
    }

    #[test]
    fn test_residual_between() {
        assert_eq!(Residual::between(4096, 4096), Residual::None);
        assert_eq!(Residual::between(4096, 512), Residual::Under(3584));
        assert_eq!(Residual::between(512, 4096), Residual::Over(3584));
        assert_eq!(Residual::between(0, u64::MAX), Residual::Over(u32::MAX));
        assert_eq!(Residual::Under(7).count(), 7);
        assert_eq!(Residual::None.count(), 0);
    }

    #[test]
    fn test_consts() {
        assert_eq!(
            (
                R_CTL_FCP_DATA,
                R_CTL_FCP_XFER_RDY,
                R_CTL_FCP_CMND,
                R_CTL_FCP_RSP,
                TYPE_FCP
            ),
            (0x01, 0x05, 0x06, 0x07, 0x08)
        );
        assert_eq!(TaskAttribute::HEAD_OF_QUEUE.to_string(), "head of queue");
        assert_eq!(TaskAttribute(3).to_string(), "task attribute 0x3");
        assert_eq!(RspCode::TMF_INCORRECT_LUN.0, 9);
        assert_eq!(RspCode(0x42).to_string(), "RSP_CODE 0x42");
        assert_eq!(TmFlags::TARGET_RESET.bits(), 0x20);
        assert_eq!(FcpRspFlags::BIDI_READ_RESID_UNDER.bits(), 0x40);
    }

    proptest! {
        #[test]
        fn prop_cmnd_round_trip(r in arb_cmnd()) {
            let b = r.to_vec();
            prop_assert_eq!(b.len(), r.buffer_len());
            prop_assert_eq!(FcpCmndRepr::parse(&b), Ok(r));
        }

        #[test]
        fn prop_xfer_rdy_round_trip(r in arb_xfer_rdy()) {
            prop_assert_eq!(FcpXferRdyRepr::parse(&r.to_vec()), Ok(r));
        }

        #[test]
        fn prop_rsp_round_trip(r in arb_rsp()) {
            let b = r.to_vec();
            prop_assert_eq!(b.len(), r.buffer_len());
            prop_assert_eq!(FcpRspRepr::parse(&b), Ok(r));
        }

        #[test]
        fn prop_check_condition_sense_round_trip(s in arb_sense(), resid in strategies::arb_residual()) {
            let r = FcpRspRepr::check_condition(&s).with_residual(resid);
            let back = FcpRspRepr::parse(&r.to_vec()).unwrap();
            prop_assert_eq!(back.sense(), Some(Ok(s)));
        }

        #[test]
        fn prop_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(c) = FcpCmndRepr::parse(&bytes) {
                prop_assert_eq!(c.buffer_len(), bytes.len());
            }
            let _ = FcpXferRdyRepr::parse(&bytes);
            if let Ok(r) = FcpRspRepr::parse(&bytes) {
                prop_assert!(r.buffer_len() <= bytes.len());
                let _ = r.to_string();
            }
            if let Ok(v) = FcpRsp::new_checked(&bytes[..]) {
                let _ = (v.rsp_info(), v.sense_data());
            }
            if let Ok(v) = FcpCmnd::new_checked(&bytes[..]) {
                let _ = (v.cdb(), v.dl(), v.direction());
            }
        }

        #[test]
        fn prop_rsp_header_fuzz(
            head: [u8; 24],
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            // Random headers with small lengths reach the variable-part paths.
            let mut b = head.to_vec();
            b[16] = 0; b[17] = 0; b[18] = 0; b[19] %= 72;
            b[20] = 0; b[21] = 0; b[22] = 0; b[23] %= 12;
            b.extend_from_slice(&rest);
            if let Ok(r) = FcpRspRepr::parse(&b) {
                let again = FcpRspRepr::parse(&r.to_vec());
                prop_assert_eq!(again, Ok(r));
            }
        }
    }
}
