//! The block commands (SBC-3 §5) of a direct-access logical unit: READ CAPACITY(10)/(16),
//! READ and WRITE (6/10/12/16), VERIFY (10/12/16), SYNCHRONIZE CACHE (10/16), WRITE SAME(16),
//! UNMAP.

use core::fmt;

use super::{
    expect_opcode, fixed, flag, out, show_control, CdbError, Control, DataDirection, OperationCode,
};
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

/// Which form of READ or WRITE: the CDB length, and so the widths of LBA and TRANSFER LENGTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CdbSize {
    /// 6 bytes: 21-bit LBA, 8-bit TRANSFER LENGTH where 0 means 256 blocks; no flags, no group.
    Six,
    /// 10 bytes: 32-bit LBA, 16-bit TRANSFER LENGTH.
    #[default]
    Ten,
    /// 12 bytes: 32-bit LBA, 32-bit TRANSFER LENGTH.
    Twelve,
    /// 16 bytes: 64-bit LBA, 32-bit TRANSFER LENGTH.
    Sixteen,
}

impl CdbSize {
    /// Bytes of the CDB.
    pub const fn cdb_len(self) -> usize {
        match self {
            CdbSize::Six => 6,
            CdbSize::Ten => 10,
            CdbSize::Twelve => 12,
            CdbSize::Sixteen => 16,
        }
    }

    /// The largest LBA the form holds.
    pub const fn max_lba(self) -> u64 {
        match self {
            CdbSize::Six => 0x1F_FFFF,
            CdbSize::Ten | CdbSize::Twelve => u32::MAX as u64,
            CdbSize::Sixteen => u64::MAX,
        }
    }

    /// The largest transfer length, in blocks, the form holds.
    pub const fn max_blocks(self) -> u32 {
        match self {
            CdbSize::Six => 256,
            CdbSize::Ten => u16::MAX as u32,
            CdbSize::Twelve | CdbSize::Sixteen => u32::MAX,
        }
    }

    /// The smallest of (10) and (16) that holds `lba` and `blocks`: what an initiator sends
    /// (Linux uses (6) only for old devices and (12) not at all).
    pub const fn for_range(lba: u64, blocks: u32) -> CdbSize {
        if lba > u32::MAX as u64 || blocks > u16::MAX as u32 {
            CdbSize::Sixteen
        } else {
            CdbSize::Ten
        }
    }

    /// The form's index in the `[6, 10, 12, 16]` opcode tables.
    const fn index(self) -> usize {
        match self {
            CdbSize::Six => 0,
            CdbSize::Ten => 1,
            CdbSize::Twelve => 2,
            CdbSize::Sixteen => 3,
        }
    }
}

/// READ opcodes by form.
const READ_OPS: [OperationCode; 4] = [
    OperationCode::READ_6,
    OperationCode::READ_10,
    OperationCode::READ_12,
    OperationCode::READ_16,
];
/// WRITE opcodes by form.
const WRITE_OPS: [OperationCode; 4] = [
    OperationCode::WRITE_6,
    OperationCode::WRITE_10,
    OperationCode::WRITE_12,
    OperationCode::WRITE_16,
];
const SIZES: [CdbSize; 4] = [
    CdbSize::Six,
    CdbSize::Ten,
    CdbSize::Twelve,
    CdbSize::Sixteen,
];

/// The fields READ and WRITE share, in the layouts of SBC-3 §5:
///
/// ```text
///  (6)  0 op | 1 LBA 20-16 (4-0) | 2-3 LBA 15-0 | 4 TRANSFER LENGTH (0: 256) | 5 CONTROL
///  (10) 0 op | 1 PROTECT (7-5) DPO (4) FUA (3) | 2-5 LBA | 6 GROUP (4-0) | 7-8 LENGTH | 9 CONTROL
///  (12) 0 op | 1 flags | 2-5 LBA | 6-9 LENGTH | 10 GROUP | 11 CONTROL
///  (16) 0 op | 1 flags | 2-9 LBA | 10-13 LENGTH | 14 GROUP | 15 CONTROL
/// ```
///
/// Byte 1 bits 2-0 (RARC, obsolete FUA_NV, DLD2 in later revisions) and the high bits of the
/// group byte are not kept.
struct Rw {
    size: CdbSize,
    lba: u64,
    blocks: u32,
    protect: u8,
    dpo: bool,
    fua: bool,
    group: u8,
    control: Control,
}

impl Rw {
    /// Parses READ or WRITE (`ops`) of any form.
    fn parse(buf: &[u8], ops: &[OperationCode; 4]) -> Result<Rw, CdbError> {
        let op = expect_opcode(buf, ops)?;
        // `expect_opcode` found `op` in `ops`, so the position exists.
        let size = SIZES[ops.iter().position(|&o| o == op).unwrap_or(1)];
        Ok(match size {
            CdbSize::Six => {
                let b = fixed::<6>(buf)?;
                Rw {
                    size,
                    lba: u64::from(b[1] & 0x1F) << 16 | u64::from(be16(b, 2)),
                    // SBC-3 §5, READ(6) and WRITE(6): a TRANSFER LENGTH of zero specifies 256 logical blocks.
                    blocks: if b[4] == 0 { 256 } else { b[4].into() },
                    protect: 0,
                    dpo: false,
                    fua: false,
                    group: 0,
                    control: Control::from_bits_retain(b[5]),
                }
            }
            CdbSize::Ten => {
                let b = fixed::<10>(buf)?;
                Rw {
                    lba: be32(b, 2).into(),
                    blocks: be16(b, 7).into(),
                    group: b[6] & 0x1F,
                    control: Control::from_bits_retain(b[9]),
                    ..Rw::flags(size, b[1])
                }
            }
            CdbSize::Twelve => {
                let b = fixed::<12>(buf)?;
                Rw {
                    lba: be32(b, 2).into(),
                    blocks: be32(b, 6),
                    group: b[10] & 0x1F,
                    control: Control::from_bits_retain(b[11]),
                    ..Rw::flags(size, b[1])
                }
            }
            CdbSize::Sixteen => {
                let b = fixed::<16>(buf)?;
                Rw {
                    lba: be64(b, 2),
                    blocks: be32(b, 10),
                    group: b[14] & 0x1F,
                    control: Control::from_bits_retain(b[15]),
                    ..Rw::flags(size, b[1])
                }
            }
        })
    }

    /// Byte 1 of the (10), (12) and (16) forms; the other fields zero.
    fn flags(size: CdbSize, b1: u8) -> Rw {
        Rw {
            size,
            lba: 0,
            blocks: 0,
            protect: b1 >> 5,
            dpo: b1 & 0x10 != 0,
            fua: b1 & 0x08 != 0,
            group: 0,
            control: Control::empty(),
        }
    }

    /// Writes the CDB with the opcode of `ops` for this form; panics if `buf` is short.
    fn emit(&self, ops: &[OperationCode; 4], buf: &mut [u8]) {
        let op = ops[self.size.index()].0;
        let flags = (self.protect & 0x07) << 5 | u8::from(self.dpo) << 4 | u8::from(self.fua) << 3;
        let group = self.group & 0x1F;
        match self.size {
            CdbSize::Six => {
                let b = out::<6>(buf);
                b[0] = op;
                b[1] = (self.lba >> 16) as u8 & 0x1F;
                put_be16(b, 2, self.lba as u16);
                // 256 blocks is written as zero (and so, cut to 8 bits, is every multiple).
                b[4] = self.blocks as u8;
                b[5] = self.control.bits();
            }
            CdbSize::Ten => {
                let b = out::<10>(buf);
                b[0] = op;
                b[1] = flags;
                put_be32(b, 2, self.lba as u32);
                b[6] = group;
                put_be16(b, 7, self.blocks as u16);
                b[9] = self.control.bits();
            }
            CdbSize::Twelve => {
                let b = out::<12>(buf);
                b[0] = op;
                b[1] = flags;
                put_be32(b, 2, self.lba as u32);
                put_be32(b, 6, self.blocks);
                b[10] = group;
                b[11] = self.control.bits();
            }
            CdbSize::Sixteen => {
                let b = out::<16>(buf);
                b[0] = op;
                b[1] = flags;
                put_be64(b, 2, self.lba);
                put_be32(b, 10, self.blocks);
                b[14] = group;
                b[15] = self.control.bits();
            }
        }
    }

    /// See [`Read::fits`].
    const fn fits(&self) -> bool {
        let in_range = self.lba <= self.size.max_lba() && self.blocks <= self.size.max_blocks();
        match self.size {
            CdbSize::Six => {
                in_range
                    && self.blocks > 0
                    && self.protect == 0
                    && !self.dpo
                    && !self.fua
                    && self.group == 0
            }
            _ => in_range && self.protect <= 7 && self.group <= 0x1F,
        }
    }

    /// `NAME lba=.. blocks=.. fua dpo <protect>=N group=N control=0xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>, name: OperationCode, protect: &str) -> fmt::Result {
        write!(f, "{name} lba={} blocks={}", self.lba, self.blocks)?;
        flag(f, self.fua, "fua")?;
        flag(f, self.dpo, "dpo")?;
        if self.protect != 0 {
            write!(f, " {protect}={}", self.protect)?;
        }
        if self.group != 0 {
            write!(f, " group={}", self.group)?;
        }
        show_control(f, self.control)
    }
}

/// READ(6), READ(10), READ(12), READ(16) (SBC-3 §5): transfer `blocks` logical blocks
/// from `lba` to the initiator. See [`CdbSize`] for the widths of each form; the 6-byte form
/// has no flags and no group.
///
/// RDPROTECT other than zero on a logical unit without protection information is the engine's
/// to reject (INVALID FIELD IN CDB, libiscsi `Read10.ReadProtect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Read {
    /// Which CDB form.
    pub size: CdbSize,
    /// LOGICAL BLOCK ADDRESS of the first block.
    pub lba: u64,
    /// TRANSFER LENGTH in blocks (READ(6): 1..=256; zero in the CDB is 256).
    pub blocks: u32,
    /// RDPROTECT (3 bits): protection information checking.
    pub rdprotect: u8,
    /// DPO: disable page out (do not keep the data in cache).
    pub dpo: bool,
    /// FUA: force unit access (read from the medium, not the cache).
    pub fua: bool,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// CONTROL.
    pub control: Control,
}

impl Read {
    /// A plain READ in the smallest of (10) and (16) that holds `lba` and `blocks`.
    pub const fn new(lba: u64, blocks: u32) -> Read {
        Read {
            size: CdbSize::for_range(lba, blocks),
            lba,
            blocks,
            rdprotect: 0,
            dpo: false,
            fua: false,
            group: 0,
            control: Control::empty(),
        }
    }

    /// Parses READ(6), (10), (12) or (16) at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<Read, CdbError> {
        Rw::parse(buf, &READ_OPS).map(Read::from_rw)
    }

    /// The opcode of this form.
    pub const fn opcode(&self) -> OperationCode {
        READ_OPS[self.size.index()]
    }

    /// Bytes of the CDB.
    pub const fn buffer_len(&self) -> usize {
        self.size.cdb_len()
    }

    /// Whether every field fits the form, so that `emit` then `parse` gives this value back:
    /// LBA and blocks within [`CdbSize::max_lba`]/[`CdbSize::max_blocks`], RDPROTECT in 3
    /// bits, group in 5; for READ(6) blocks 1..=256 and no flags or group.
    pub const fn fits(&self) -> bool {
        self.to_rw().fits()
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter. Fields
    /// are cut to the form's widths ([`Read::fits`]).
    pub fn emit(&self, buf: &mut [u8]) {
        self.to_rw().emit(&READ_OPS, buf);
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Data in, or none for a zero transfer length.
    pub const fn data_direction(&self) -> DataDirection {
        if self.blocks > 0 {
            DataDirection::Read
        } else {
            DataDirection::None
        }
    }

    /// Bytes the command transfers with `block_size`-byte blocks; `None` on overflow.
    pub const fn transfer_bytes(&self, block_size: u32) -> Option<u64> {
        (self.blocks as u64).checked_mul(block_size as u64)
    }

    const fn to_rw(self) -> Rw {
        Rw {
            size: self.size,
            lba: self.lba,
            blocks: self.blocks,
            protect: self.rdprotect,
            dpo: self.dpo,
            fua: self.fua,
            group: self.group,
            control: self.control,
        }
    }

    const fn from_rw(rw: Rw) -> Read {
        Read {
            size: rw.size,
            lba: rw.lba,
            blocks: rw.blocks,
            rdprotect: rw.protect,
            dpo: rw.dpo,
            fua: rw.fua,
            group: rw.group,
            control: rw.control,
        }
    }
}

/// `READ(10) lba=4096 blocks=8 fua`.
impl fmt::Display for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_rw().fmt(f, self.opcode(), "rdprotect")
    }
}

/// WRITE(6), WRITE(10), WRITE(12), WRITE(16) (SBC-3 §5): transfer `blocks` logical
/// blocks from the initiator to `lba`. The same layouts as [`Read`], with WRPROTECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Write {
    /// Which CDB form.
    pub size: CdbSize,
    /// LOGICAL BLOCK ADDRESS of the first block.
    pub lba: u64,
    /// TRANSFER LENGTH in blocks (WRITE(6): 1..=256; zero in the CDB is 256).
    pub blocks: u32,
    /// WRPROTECT (3 bits): protection information checking.
    pub wrprotect: u8,
    /// DPO: disable page out.
    pub dpo: bool,
    /// FUA: force unit access (the data is on the medium before GOOD status).
    pub fua: bool,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// CONTROL.
    pub control: Control,
}

impl Write {
    /// A plain WRITE in the smallest of (10) and (16) that holds `lba` and `blocks`.
    pub const fn new(lba: u64, blocks: u32) -> Write {
        Write {
            size: CdbSize::for_range(lba, blocks),
            lba,
            blocks,
            wrprotect: 0,
            dpo: false,
            fua: false,
            group: 0,
            control: Control::empty(),
        }
    }

    /// Parses WRITE(6), (10), (12) or (16) at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<Write, CdbError> {
        Rw::parse(buf, &WRITE_OPS).map(Write::from_rw)
    }

    /// The opcode of this form.
    pub const fn opcode(&self) -> OperationCode {
        WRITE_OPS[self.size.index()]
    }

    /// Bytes of the CDB.
    pub const fn buffer_len(&self) -> usize {
        self.size.cdb_len()
    }

    /// Whether every field fits the form (as [`Read::fits`]).
    pub const fn fits(&self) -> bool {
        self.to_rw().fits()
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter. Fields
    /// are cut to the form's widths ([`Write::fits`]).
    pub fn emit(&self, buf: &mut [u8]) {
        self.to_rw().emit(&WRITE_OPS, buf);
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Data out, or none for a zero transfer length.
    pub const fn data_direction(&self) -> DataDirection {
        if self.blocks > 0 {
            DataDirection::Write
        } else {
            DataDirection::None
        }
    }

    /// Bytes the command transfers with `block_size`-byte blocks; `None` on overflow.
    pub const fn transfer_bytes(&self, block_size: u32) -> Option<u64> {
        (self.blocks as u64).checked_mul(block_size as u64)
    }

    const fn to_rw(self) -> Rw {
        Rw {
            size: self.size,
            lba: self.lba,
            blocks: self.blocks,
            protect: self.wrprotect,
            dpo: self.dpo,
            fua: self.fua,
            group: self.group,
            control: self.control,
        }
    }

    const fn from_rw(rw: Rw) -> Write {
        Write {
            size: rw.size,
            lba: rw.lba,
            blocks: rw.blocks,
            wrprotect: rw.protect,
            dpo: rw.dpo,
            fua: rw.fua,
            group: rw.group,
            control: rw.control,
        }
    }
}

/// `WRITE(10) lba=2048 blocks=8 fua`.
impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_rw().fmt(f, self.opcode(), "wrprotect")
    }
}

/// Which form of VERIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerifySize {
    /// VERIFY(10): 32-bit LBA, 16-bit VERIFICATION LENGTH.
    #[default]
    Ten,
    /// VERIFY(12): 32-bit LBA, 32-bit VERIFICATION LENGTH.
    Twelve,
    /// VERIFY(16): 64-bit LBA, 32-bit VERIFICATION LENGTH.
    Sixteen,
}

/// VERIFY(10), VERIFY(12), VERIFY(16) (SBC-3 §5): check `blocks` blocks from `lba`
/// on the medium, and with BYTCHK compare them with data out.
///
/// ```text
///  (10) 0 0x2F | 1 VRPROTECT (7-5) DPO (4) BYTCHK (2-1) | 2-5 LBA | 6 GROUP | 7-8 LENGTH | 9 CONTROL
///  (12) 0 0xAF | 1 flags | 2-5 LBA | 6-9 LENGTH | 10 GROUP | 11 CONTROL
///  (16) 0 0x8F | 1 flags | 2-9 LBA | 10-13 LENGTH | 14 GROUP | 15 CONTROL
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Verify {
    /// Which CDB form.
    pub size: VerifySize,
    /// VRPROTECT (3 bits).
    pub vrprotect: u8,
    /// DPO: disable page out.
    pub dpo: bool,
    /// BYTCHK (2 bits): 0 medium check only, 1 compare `blocks` blocks of data out, 3 compare
    /// every block with one block of data out; 2 is reserved (the engine's to reject).
    pub bytchk: u8,
    /// LOGICAL BLOCK ADDRESS of the first block.
    pub lba: u64,
    /// VERIFICATION LENGTH in blocks.
    pub blocks: u32,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// CONTROL.
    pub control: Control,
}

impl Verify {
    /// Parses VERIFY(10), (12) or (16) at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<Verify, CdbError> {
        let op = expect_opcode(
            buf,
            &[
                OperationCode::VERIFY_10,
                OperationCode::VERIFY_12,
                OperationCode::VERIFY_16,
            ],
        )?;
        let (size, lba, blocks, group, control, b1) = match op {
            OperationCode::VERIFY_10 => {
                let b = fixed::<10>(buf)?;
                let blocks = be16(b, 7).into();
                (VerifySize::Ten, be32(b, 2).into(), blocks, b[6], b[9], b[1])
            }
            OperationCode::VERIFY_12 => {
                let b = fixed::<12>(buf)?;
                let blocks = be32(b, 6);
                (
                    VerifySize::Twelve,
                    be32(b, 2).into(),
                    blocks,
                    b[10],
                    b[11],
                    b[1],
                )
            }
            _ => {
                let b = fixed::<16>(buf)?;
                let blocks = be32(b, 10);
                (VerifySize::Sixteen, be64(b, 2), blocks, b[14], b[15], b[1])
            }
        };
        Ok(Verify {
            size,
            vrprotect: b1 >> 5,
            dpo: b1 & 0x10 != 0,
            bytchk: (b1 >> 1) & 0x03,
            lba,
            blocks,
            group: group & 0x1F,
            control: Control::from_bits_retain(control),
        })
    }

    /// The opcode of this form.
    pub const fn opcode(&self) -> OperationCode {
        match self.size {
            VerifySize::Ten => OperationCode::VERIFY_10,
            VerifySize::Twelve => OperationCode::VERIFY_12,
            VerifySize::Sixteen => OperationCode::VERIFY_16,
        }
    }

    /// Bytes of the CDB.
    pub const fn buffer_len(&self) -> usize {
        match self.size {
            VerifySize::Ten => 10,
            VerifySize::Twelve => 12,
            VerifySize::Sixteen => 16,
        }
    }

    /// Whether every field fits the form: VRPROTECT in 3 bits, BYTCHK in 2, group in 5, LBA
    /// in 32 bits for (10)/(12), blocks in 16 for (10).
    pub const fn fits(&self) -> bool {
        let widths = match self.size {
            VerifySize::Ten => self.lba <= u32::MAX as u64 && self.blocks <= u16::MAX as u32,
            VerifySize::Twelve => self.lba <= u32::MAX as u64,
            VerifySize::Sixteen => true,
        };
        widths && self.vrprotect <= 7 && self.bytchk <= 3 && self.group <= 0x1F
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let op = self.opcode().0;
        let flags =
            (self.vrprotect & 0x07) << 5 | u8::from(self.dpo) << 4 | (self.bytchk & 0x03) << 1;
        let group = self.group & 0x1F;
        let control = self.control.bits();
        match self.size {
            VerifySize::Ten => {
                let b = out::<10>(buf);
                b[0] = op;
                b[1] = flags;
                put_be32(b, 2, self.lba as u32);
                b[6] = group;
                put_be16(b, 7, self.blocks as u16);
                b[9] = control;
            }
            VerifySize::Twelve => {
                let b = out::<12>(buf);
                b[0] = op;
                b[1] = flags;
                put_be32(b, 2, self.lba as u32);
                put_be32(b, 6, self.blocks);
                b[10] = group;
                b[11] = control;
            }
            VerifySize::Sixteen => {
                let b = out::<16>(buf);
                b[0] = op;
                b[1] = flags;
                put_be64(b, 2, self.lba);
                put_be32(b, 10, self.blocks);
                b[14] = group;
                b[15] = control;
            }
        }
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Data out when BYTCHK asks for a comparison of at least one block.
    pub const fn data_direction(&self) -> DataDirection {
        if self.bytchk != 0 && self.blocks > 0 {
            DataDirection::Write
        } else {
            DataDirection::None
        }
    }

    /// Bytes of data out with `block_size`-byte blocks: none for BYTCHK 0, one block for 3,
    /// `blocks` blocks otherwise; `None` on overflow.
    pub const fn data_out_bytes(&self, block_size: u32) -> Option<u64> {
        match (self.bytchk, self.blocks) {
            (0, _) | (_, 0) => Some(0),
            (3, _) => Some(block_size as u64),
            _ => (self.blocks as u64).checked_mul(block_size as u64),
        }
    }
}

/// `VERIFY(10) lba=100 blocks=10 bytchk=1 dpo`.
impl fmt::Display for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lba={} blocks={}",
            self.opcode(),
            self.lba,
            self.blocks
        )?;
        if self.bytchk != 0 {
            write!(f, " bytchk={}", self.bytchk)?;
        }
        flag(f, self.dpo, "dpo")?;
        if self.vrprotect != 0 {
            write!(f, " vrprotect={}", self.vrprotect)?;
        }
        if self.group != 0 {
            write!(f, " group={}", self.group)?;
        }
        show_control(f, self.control)
    }
}

/// Which form of SYNCHRONIZE CACHE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncCacheSize {
    /// SYNCHRONIZE CACHE(10): 32-bit LBA, 16-bit NUMBER OF LOGICAL BLOCKS.
    #[default]
    Ten,
    /// SYNCHRONIZE CACHE(16): 64-bit LBA, 32-bit NUMBER OF LOGICAL BLOCKS.
    Sixteen,
}

/// SYNCHRONIZE CACHE(10) and (16) (SBC-3 §5): make cached writes durable.
///
/// ```text
///  (10) 0 0x35 | 1 IMMED (1) | 2-5 LBA | 6 GROUP | 7-8 NUMBER OF BLOCKS | 9 CONTROL
///  (16) 0 0x91 | 1 IMMED (1) | 2-9 LBA | 10-13 NUMBER OF BLOCKS | 14 GROUP | 15 CONTROL
/// ```
///
/// A NUMBER OF LOGICAL BLOCKS of zero means every block from `lba` to the end of the medium.
/// Byte 1 bit 2 (obsolete SYNC_NV) is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SynchronizeCache {
    /// Which CDB form.
    pub size: SyncCacheSize,
    /// IMMED: return status once the CDB is validated, before the flush.
    pub immed: bool,
    /// LOGICAL BLOCK ADDRESS of the first block.
    pub lba: u64,
    /// NUMBER OF LOGICAL BLOCKS; zero is "to the end of the medium".
    pub blocks: u32,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// CONTROL.
    pub control: Control,
}

impl SynchronizeCache {
    /// Parses SYNCHRONIZE CACHE(10) or (16) at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<SynchronizeCache, CdbError> {
        let op = expect_opcode(
            buf,
            &[
                OperationCode::SYNCHRONIZE_CACHE_10,
                OperationCode::SYNCHRONIZE_CACHE_16,
            ],
        )?;
        Ok(if op == OperationCode::SYNCHRONIZE_CACHE_10 {
            let b = fixed::<10>(buf)?;
            SynchronizeCache {
                size: SyncCacheSize::Ten,
                immed: b[1] & 0x02 != 0,
                lba: be32(b, 2).into(),
                blocks: be16(b, 7).into(),
                group: b[6] & 0x1F,
                control: Control::from_bits_retain(b[9]),
            }
        } else {
            let b = fixed::<16>(buf)?;
            SynchronizeCache {
                size: SyncCacheSize::Sixteen,
                immed: b[1] & 0x02 != 0,
                lba: be64(b, 2),
                blocks: be32(b, 10),
                group: b[14] & 0x1F,
                control: Control::from_bits_retain(b[15]),
            }
        })
    }

    /// The opcode of this form.
    pub const fn opcode(&self) -> OperationCode {
        match self.size {
            SyncCacheSize::Ten => OperationCode::SYNCHRONIZE_CACHE_10,
            SyncCacheSize::Sixteen => OperationCode::SYNCHRONIZE_CACHE_16,
        }
    }

    /// Bytes of the CDB: 10 or 16.
    pub const fn buffer_len(&self) -> usize {
        match self.size {
            SyncCacheSize::Ten => 10,
            SyncCacheSize::Sixteen => 16,
        }
    }

    /// Whether every field fits the form: for (10), LBA in 32 bits and blocks in 16; group
    /// in 5 bits.
    pub const fn fits(&self) -> bool {
        let widths = match self.size {
            SyncCacheSize::Ten => self.lba <= u32::MAX as u64 && self.blocks <= u16::MAX as u32,
            SyncCacheSize::Sixteen => true,
        };
        widths && self.group <= 0x1F
    }

    /// Writes the CDB into `buf[..self.buffer_len()]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let immed = u8::from(self.immed) << 1;
        match self.size {
            SyncCacheSize::Ten => {
                let b = out::<10>(buf);
                b[0] = self.opcode().0;
                b[1] = immed;
                put_be32(b, 2, self.lba as u32);
                b[6] = self.group & 0x1F;
                put_be16(b, 7, self.blocks as u16);
                b[9] = self.control.bits();
            }
            SyncCacheSize::Sixteen => {
                let b = out::<16>(buf);
                b[0] = self.opcode().0;
                b[1] = immed;
                put_be64(b, 2, self.lba);
                put_be32(b, 10, self.blocks);
                b[14] = self.group & 0x1F;
                b[15] = self.control.bits();
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

/// `SYNCHRONIZE CACHE(10) lba=0 blocks=0 immed`.
impl fmt::Display for SynchronizeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lba={} blocks={}",
            self.opcode(),
            self.lba,
            self.blocks
        )?;
        flag(f, self.immed, "immed")?;
        if self.group != 0 {
            write!(f, " group={}", self.group)?;
        }
        show_control(f, self.control)
    }
}

/// READ CAPACITY(10) (SBC-3 §5): the last LBA (up to 0xFFFF_FFFF) and the block length.
///
/// ```text
///  0 0x25 | 1 reserved | 2-5 LOGICAL BLOCK ADDRESS | 6-7 reserved | 8 PMI (0) | 9 CONTROL
/// ```
///
/// LBA and PMI are obsolete in later revisions; `parse` keeps them, and rejects an LBA without
/// PMI as SBC-3 requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity10 {
    /// LOGICAL BLOCK ADDRESS: zero unless `pmi` (enforced by `parse`).
    pub lba: u32,
    /// PMI, partial medium indicator.
    pub pmi: bool,
    /// CONTROL.
    pub control: Control,
}

impl ReadCapacity10 {
    /// Bytes of the CDB.
    pub const LEN: usize = 10;

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<ReadCapacity10, CdbError> {
        expect_opcode(buf, &[OperationCode::READ_CAPACITY_10])?;
        let b = fixed::<10>(buf)?;
        let rc = ReadCapacity10 {
            lba: be32(b, 2),
            pmi: b[8] & 0x01 != 0,
            control: Control::from_bits_retain(b[9]),
        };
        // SBC-3 §5, READ CAPACITY(10): if PMI is zero and the LOGICAL BLOCK ADDRESS is not, the device
        // server shall terminate the command with INVALID FIELD IN CDB (libiscsi
        // ReadCapacity10.PMI checks it).
        if !rc.pmi && rc.lba != 0 {
            return Err(CdbError::InvalidField {
                byte: 2,
                bit: None,
                what: "LOGICAL BLOCK ADDRESS set with PMI zero",
            });
        }
        Ok(rc)
    }

    /// READ CAPACITY(10).
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::READ_CAPACITY_10
    }

    /// Bytes of the CDB: 10.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..10]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<10>(buf);
        b[0] = self.opcode().0;
        put_be32(b, 2, self.lba);
        b[8] = u8::from(self.pmi);
        b[9] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `READ CAPACITY(10)`, `READ CAPACITY(10) lba=65536 pmi`.
impl fmt::Display for ReadCapacity10 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("READ CAPACITY(10)")?;
        if self.pmi || self.lba != 0 {
            write!(f, " lba={}", self.lba)?;
        }
        flag(f, self.pmi, "pmi")?;
        show_control(f, self.control)
    }
}

/// READ CAPACITY(16) (SBC-3 §5): SERVICE ACTION IN(16) with service action 0x10; the last
/// LBA as 64 bits, the block length, protection and provisioning information.
///
/// ```text
///  0 0x9E | 1 SERVICE ACTION (4-0) = 0x10 | 2-9 LOGICAL BLOCK ADDRESS
///  | 10-13 ALLOCATION LENGTH | 14 PMI (0) | 15 CONTROL
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity16 {
    /// LOGICAL BLOCK ADDRESS: zero unless `pmi` (enforced by `parse`).
    pub lba: u64,
    /// ALLOCATION LENGTH.
    pub alloc_len: u32,
    /// PMI, partial medium indicator.
    pub pmi: bool,
    /// CONTROL.
    pub control: Control,
}

impl ReadCapacity16 {
    /// Bytes of the CDB.
    pub const LEN: usize = 16;
    /// The SERVICE ACTION of READ CAPACITY(16) under SERVICE ACTION IN(16).
    pub const SERVICE_ACTION: u8 = 0x10;

    /// READ CAPACITY(16) returning at most `alloc_len` bytes (32 for the whole data).
    pub const fn new(alloc_len: u32) -> ReadCapacity16 {
        ReadCapacity16 {
            lba: 0,
            alloc_len,
            pmi: false,
            control: Control::empty(),
        }
    }

    /// Parses the CDB at the front of `buf` (longer buffers are fine). Another service action
    /// of SERVICE ACTION IN(16) is [`CdbError::UnsupportedServiceAction`].
    pub fn parse(buf: &[u8]) -> Result<ReadCapacity16, CdbError> {
        let op = expect_opcode(buf, &[OperationCode::SERVICE_ACTION_IN_16])?;
        let b = fixed::<16>(buf)?;
        let service_action = b[1] & 0x1F;
        if service_action != Self::SERVICE_ACTION {
            return Err(CdbError::UnsupportedServiceAction {
                opcode: op,
                service_action: service_action.into(),
            });
        }
        let rc = ReadCapacity16 {
            lba: be64(b, 2),
            alloc_len: be32(b, 10),
            pmi: b[14] & 0x01 != 0,
            control: Control::from_bits_retain(b[15]),
        };
        // SBC-3 §5, READ CAPACITY(16): if PMI is zero and the LOGICAL BLOCK ADDRESS is not, the device
        // server shall terminate the command with INVALID FIELD IN CDB.
        if !rc.pmi && rc.lba != 0 {
            return Err(CdbError::InvalidField {
                byte: 2,
                bit: None,
                what: "LOGICAL BLOCK ADDRESS set with PMI zero",
            });
        }
        Ok(rc)
    }

    /// SERVICE ACTION IN(16).
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::SERVICE_ACTION_IN_16
    }

    /// Bytes of the CDB: 16.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..16]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<16>(buf);
        b[0] = self.opcode().0;
        b[1] = Self::SERVICE_ACTION;
        put_be64(b, 2, self.lba);
        put_be32(b, 10, self.alloc_len);
        b[14] = u8::from(self.pmi);
        b[15] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `READ CAPACITY(16) alloc=32`.
impl fmt::Display for ReadCapacity16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("READ CAPACITY(16)")?;
        if self.pmi || self.lba != 0 {
            write!(f, " lba={}", self.lba)?;
        }
        write!(f, " alloc={}", self.alloc_len)?;
        flag(f, self.pmi, "pmi")?;
        show_control(f, self.control)
    }
}

/// WRITE SAME(16) (SBC-3 §5): write one block of data out (or zeros, with NDOB) to
/// `blocks` blocks from `lba`, or unmap them.
///
/// ```text
///  0 0x93 | 1 WRPROTECT (7-5) ANCHOR (4) UNMAP (3) obsolete (2-1) NDOB (0) | 2-9 LBA
///  | 10-13 NUMBER OF LOGICAL BLOCKS | 14 GROUP (4-0) | 15 CONTROL
/// ```
///
/// ANCHOR without anchor support (ANC_SUP zero), UNMAP or NDOB without support, a length past
/// MAXIMUM WRITE SAME LENGTH are the engine's to reject. Zero blocks means to the end of the
/// medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WriteSame16 {
    /// WRPROTECT (3 bits).
    pub wrprotect: u8,
    /// ANCHOR: anchor the blocks rather than deallocate them; only with `unmap` (enforced by
    /// `parse`).
    pub anchor: bool,
    /// UNMAP: deallocate the blocks where possible.
    pub unmap: bool,
    /// NDOB: no data-out buffer; the blocks become zero.
    pub ndob: bool,
    /// LOGICAL BLOCK ADDRESS of the first block.
    pub lba: u64,
    /// NUMBER OF LOGICAL BLOCKS; zero is "to the end of the medium".
    pub blocks: u32,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// CONTROL.
    pub control: Control,
}

impl WriteSame16 {
    /// Bytes of the CDB.
    pub const LEN: usize = 16;

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<WriteSame16, CdbError> {
        expect_opcode(buf, &[OperationCode::WRITE_SAME_16])?;
        let b = fixed::<16>(buf)?;
        let ws = WriteSame16 {
            wrprotect: b[1] >> 5,
            anchor: b[1] & 0x10 != 0,
            unmap: b[1] & 0x08 != 0,
            ndob: b[1] & 0x01 != 0,
            lba: be64(b, 2),
            blocks: be32(b, 10),
            group: b[14] & 0x1F,
            control: Control::from_bits_retain(b[15]),
        };
        // SBC-3 §5, WRITE SAME(16): if ANCHOR is one and UNMAP is zero, the device server shall terminate
        // the command with INVALID FIELD IN CDB (libiscsi WriteSame16.Unmap checks it).
        if ws.anchor && !ws.unmap {
            return Err(CdbError::InvalidField {
                byte: 1,
                bit: Some(4),
                what: "ANCHOR set with UNMAP zero",
            });
        }
        Ok(ws)
    }

    /// WRITE SAME(16).
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::WRITE_SAME_16
    }

    /// Bytes of the CDB: 16.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..16]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<16>(buf);
        b[0] = self.opcode().0;
        b[1] = (self.wrprotect & 0x07) << 5
            | u8::from(self.anchor) << 4
            | u8::from(self.unmap) << 3
            | u8::from(self.ndob);
        put_be64(b, 2, self.lba);
        put_be32(b, 10, self.blocks);
        b[14] = self.group & 0x1F;
        b[15] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Data out (one block), or none with NDOB.
    pub const fn data_direction(&self) -> DataDirection {
        if self.ndob {
            DataDirection::None
        } else {
            DataDirection::Write
        }
    }
}

/// `WRITE SAME(16) lba=0 blocks=256 unmap`.
impl fmt::Display for WriteSame16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WRITE SAME(16) lba={} blocks={}", self.lba, self.blocks)?;
        flag(f, self.unmap, "unmap")?;
        flag(f, self.anchor, "anchor")?;
        flag(f, self.ndob, "ndob")?;
        if self.wrprotect != 0 {
            write!(f, " wrprotect={}", self.wrprotect)?;
        }
        if self.group != 0 {
            write!(f, " group={}", self.group)?;
        }
        show_control(f, self.control)
    }
}

/// UNMAP (SBC-3 §5): deallocate the block ranges of the parameter list that follows as data
/// out.
///
/// ```text
///  0 0x42 | 1 ANCHOR (0) | 2-5 reserved | 6 GROUP (4-0) | 7-8 PARAMETER LIST LENGTH | 9 CONTROL
/// ```
///
/// A PARAMETER LIST LENGTH of zero is not an error: nothing is unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Unmap {
    /// ANCHOR: anchor rather than deallocate (the engine rejects it without ANC_SUP).
    pub anchor: bool,
    /// GROUP NUMBER (5 bits).
    pub group: u8,
    /// PARAMETER LIST LENGTH.
    pub param_list_len: u16,
    /// CONTROL.
    pub control: Control,
}

impl Unmap {
    /// Bytes of the CDB.
    pub const LEN: usize = 10;

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<Unmap, CdbError> {
        expect_opcode(buf, &[OperationCode::UNMAP])?;
        let b = fixed::<10>(buf)?;
        Ok(Unmap {
            anchor: b[1] & 0x01 != 0,
            group: b[6] & 0x1F,
            param_list_len: be16(b, 7),
            control: Control::from_bits_retain(b[9]),
        })
    }

    /// UNMAP.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::UNMAP
    }

    /// Bytes of the CDB: 10.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..10]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<10>(buf);
        b[0] = self.opcode().0;
        b[1] = u8::from(self.anchor);
        b[6] = self.group & 0x1F;
        put_be16(b, 7, self.param_list_len);
        b[9] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `UNMAP param_len=24 anchor`.
impl fmt::Display for Unmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UNMAP param_len={}", self.param_list_len)?;
        flag(f, self.anchor, "anchor")?;
        if self.group != 0 {
            write!(f, " group={}", self.group)?;
        }
        show_control(f, self.control)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;
    use crate::scsi::cdb::Cdb;

    #[test]
    fn test_read6_zero_is_256_blocks() {
        let r = Read::parse(&hex!("08 00 00 00 00 00")).unwrap();
        assert_eq!(r.blocks, 256);
        assert_eq!(r.transfer_bytes(512), Some(131_072));
        // And back: 256 blocks is written as zero.
        assert_eq!(r.to_vec(), hex!("08 00 00 00 00 00"));
        let w = Write::parse(&hex!("0a 1f ff ff 00 00")).unwrap();
        assert_eq!((w.lba, w.blocks), (0x1F_FFFF, 256));
    }

    #[test]
    fn test_read6_ignores_high_bits_of_byte_1() {
        // Bits 7-5 of byte 1 were the LUN in SCSI-2: reserved now, and not part of the LBA.
        let r = Read::parse(&hex!("08 e1 00 00 01 00")).unwrap();
        assert_eq!(r.lba, 0x01_0000);
        assert_eq!(r.to_vec(), hex!("08 01 00 00 01 00"));
    }

    #[test]
    fn test_new_picks_form() {
        assert_eq!(Read::new(0, 8).size, CdbSize::Ten);
        assert_eq!(Read::new(u32::MAX.into(), 0xFFFF).size, CdbSize::Ten);
        assert_eq!(Read::new(1 << 32, 1).size, CdbSize::Sixteen);
        assert_eq!(Write::new(0, 0x1_0000).size, CdbSize::Sixteen);
        assert_eq!(
            Write::new(2048, 8).to_vec(),
            hex!("2a 00 00 00 08 00 00 00 08 00")
        );
        assert_eq!(
            Read::new(1 << 40, 70_000).to_vec(),
            hex!("88 00 00 00 01 00 00 00 00 00 00 01 11 70 00 00")
        );
    }

    #[test]
    fn test_fits() {
        assert!(Read::new(0, 8).fits());
        let six = Read {
            size: CdbSize::Six,
            ..Read::new(0x1F_FFFF, 256)
        };
        assert!(six.fits());
        assert!(!Read { blocks: 0, ..six }.fits());
        assert!(!Read { blocks: 257, ..six }.fits());
        assert!(!Read {
            lba: 0x20_0000,
            ..six
        }
        .fits());
        assert!(!Read { fua: true, ..six }.fits());
        assert!(!Read { group: 1, ..six }.fits());
        assert!(!Read {
            rdprotect: 1,
            ..six
        }
        .fits());
        let ten = Write::new(0, 1);
        assert!(!Write {
            blocks: 0x1_0000,
            ..ten
        }
        .fits());
        assert!(!Write {
            lba: 1 << 32,
            size: CdbSize::Twelve,
            ..ten
        }
        .fits());
        assert!(!Write {
            wrprotect: 8,
            ..ten
        }
        .fits());
        assert!(!Write { group: 32, ..ten }.fits());
        assert!(Verify::default().fits());
        assert!(!Verify {
            bytchk: 4,
            ..Verify::default()
        }
        .fits());
        assert!(!Verify {
            blocks: 0x1_0000,
            ..Verify::default()
        }
        .fits());
        assert!(Verify {
            blocks: 0x1_0000,
            size: VerifySize::Twelve,
            ..Verify::default()
        }
        .fits());
        assert!(!SynchronizeCache {
            lba: 1 << 32,
            ..SynchronizeCache::default()
        }
        .fits());
        assert!(SynchronizeCache {
            lba: 1 << 32,
            size: SyncCacheSize::Sixteen,
            ..SynchronizeCache::default()
        }
        .fits());
    }

    #[test]
    fn test_emit_cuts_to_width() {
        // Documented: fields wider than the form are cut, never a panic.
        let r = Read {
            size: CdbSize::Ten,
            lba: 0x1_0000_0001,
            blocks: 0x1_0002,
            rdprotect: 0xFF,
            group: 0xFF,
            ..Read::default()
        };
        assert_eq!(r.to_vec(), hex!("28 e0 00 00 00 01 1f 00 02 00"));
    }

    #[test]
    fn test_transfer_bytes() {
        let r = Read::new(0, u32::MAX);
        assert_eq!(
            r.transfer_bytes(u32::MAX),
            Some(u64::from(u32::MAX) * u64::from(u32::MAX))
        );
        assert_eq!(Write::new(0, 8).transfer_bytes(4096), Some(32_768));
        assert_eq!(Write::new(0, 0).transfer_bytes(4096), Some(0));
        assert_eq!(Write::new(0, 0).data_direction(), DataDirection::None);
        assert_eq!(Read::new(0, 1).data_direction(), DataDirection::Read);
    }

    #[test]
    fn test_verify_data_out() {
        let v = |bytchk, blocks| Verify {
            bytchk,
            blocks,
            ..Verify::default()
        };
        assert_eq!(v(0, 8).data_out_bytes(512), Some(0));
        assert_eq!(v(1, 8).data_out_bytes(512), Some(4096));
        assert_eq!(v(3, 8).data_out_bytes(512), Some(512));
        assert_eq!(v(3, 0).data_out_bytes(512), Some(0));
        assert_eq!(v(3, 0).data_direction(), DataDirection::None);
        assert_eq!(v(1, 1).data_direction(), DataDirection::Write);
    }

    #[test]
    fn test_read_capacity_10_lba_without_pmi() {
        // libiscsi ReadCapacity10.PMI: LBA 10 with PMI zero.
        let bytes = hex!("25 00 00 00 00 0a 00 00 00 00");
        let err = Err(CdbError::InvalidField {
            byte: 2,
            bit: None,
            what: "LOGICAL BLOCK ADDRESS set with PMI zero",
        });
        assert_eq!(ReadCapacity10::parse(&bytes), err);
        assert_eq!(Cdb::parse(&bytes), err.map(Cdb::ReadCapacity10));
        // With PMI any LBA is fine, even past the end.
        let pmi = hex!("25 00 ff ff ff ff 00 00 01 00");
        assert_eq!(
            ReadCapacity10::parse(&pmi),
            Ok(ReadCapacity10 {
                lba: u32::MAX,
                pmi: true,
                control: Control::empty()
            })
        );
    }

    #[test]
    fn test_read_capacity_16_lba_without_pmi() {
        let bytes = hex!("9e 10 00 00 00 00 00 00 00 01 00 00 00 20 00 00");
        assert_eq!(
            ReadCapacity16::parse(&bytes),
            Err(CdbError::InvalidField {
                byte: 2,
                bit: None,
                what: "LOGICAL BLOCK ADDRESS set with PMI zero",
            })
        );
    }

    #[test]
    fn test_read_capacity_16_service_action() {
        // GET LBA STATUS (0x12) is another SERVICE ACTION IN(16) action, not typed here.
        let bytes = hex!("9e 12 00 00 00 00 00 00 00 00 00 00 00 20 00 00");
        assert_eq!(
            Cdb::parse(&bytes),
            Err(CdbError::UnsupportedServiceAction {
                opcode: OperationCode::SERVICE_ACTION_IN_16,
                service_action: 0x12,
            })
        );
        // Bits 7-5 of byte 1 are reserved, not part of the service action.
        let rc = ReadCapacity16::parse(&hex!("9e f0 00 00 00 00 00 00 00 00 00 00 00 0c 00 00"));
        assert_eq!(rc, Ok(ReadCapacity16::new(12)));
        // The alloc length may be anything, zero included (libiscsi ReadCapacity16.Alloclen).
        assert_eq!(
            ReadCapacity16::parse(&hex!("9e 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00")),
            Ok(ReadCapacity16::new(0))
        );
    }

    #[test]
    fn test_write_same_anchor_without_unmap() {
        // libiscsi WriteSame16.Unmap: ANCHOR 1, UNMAP 0.
        let bytes = hex!("93 10 00 00 00 00 00 00 00 00 00 00 00 01 00 00");
        let err = CdbError::InvalidField {
            byte: 1,
            bit: Some(4),
            what: "ANCHOR set with UNMAP zero",
        };
        assert_eq!(Cdb::parse(&bytes), Err(err.clone()));
        assert_eq!(
            err.sense(),
            crate::scsi::Sense::invalid_field_in_cdb(1, Some(4))
        );
        // ANCHOR with UNMAP parses; anchor support is the engine's question.
        let ok = WriteSame16::parse(&hex!("93 18 00 00 00 00 00 00 00 00 00 00 00 01 00 00"));
        assert!(matches!(
            ok,
            Ok(WriteSame16 {
                anchor: true,
                unmap: true,
                ..
            })
        ));
    }

    #[test]
    fn test_write_same_obsolete_bits_ignored() {
        // PBDATA and LBDATA (bits 2-1) are obsolete in SBC-3.
        let ws =
            WriteSame16::parse(&hex!("93 06 00 00 00 00 00 00 00 00 00 00 00 01 00 00")).unwrap();
        assert_eq!(
            ws,
            WriteSame16 {
                blocks: 1,
                ..WriteSame16::default()
            }
        );
    }

    #[test]
    fn test_unmap_zero_length_is_data() {
        let u = Unmap::parse(&hex!("42 01 00 00 00 00 1f 00 00 00")).unwrap();
        assert_eq!(
            u,
            Unmap {
                anchor: true,
                group: 0x1F,
                param_list_len: 0,
                control: Control::empty()
            }
        );
        assert_eq!(u.to_string(), "UNMAP param_len=0 anchor group=31");
    }

    #[test]
    fn test_sync_cache_obsolete_sync_nv_ignored() {
        let s = SynchronizeCache::parse(&hex!("35 04 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!(s, SynchronizeCache::default());
    }
}
