//! Mode parameters (SPC-4 §7.5): the data-in of MODE SENSE(6)/(10) and the data-out of
//! MODE SELECT(6)/(10); with the Caching page (SBC-3 §6.4.5), the Control page (SPC-4 §7.5.8)
//! and the Informational Exceptions Control page (SPC-4 §7.5.15) typed.
//!
//! ```text
//! mode parameter header(6):              mode parameter header(10):
//!  0   MODE DATA LENGTH (n-1)             0-1 MODE DATA LENGTH (n-2)
//!  1   MEDIUM TYPE                        2   MEDIUM TYPE
//!  2   DEVICE-SPECIFIC PARAMETER          3   DEVICE-SPECIFIC PARAMETER
//!  3   BLOCK DESCRIPTOR LENGTH            4   reserved | LONGLBA (0)
//!                                         5   reserved
//!                                         6-7 BLOCK DESCRIPTOR LENGTH
//! then block descriptors, then mode pages:
//!
//! short LBA block descriptor (8):        long LBA block descriptor (16, LONGLBA = 1):
//!  0-3 NUMBER OF LOGICAL BLOCKS           0-7   NUMBER OF LOGICAL BLOCKS
//!      (tape: 0 DENSITY CODE, 1-3 blocks) 8-11  reserved
//!  4   reserved                           12-15 LOGICAL BLOCK LENGTH
//!  5-7 LOGICAL BLOCK LENGTH
//!
//! page_0 format:                          sub_page format (SPF = 1):
//!  0   PS | SPF=0 | PAGE CODE (5-0)        0   PS | SPF=1 | PAGE CODE (5-0)
//!  1   PAGE LENGTH (n-1)                   1   SUBPAGE CODE
//!  2-n mode parameters                     2-3 PAGE LENGTH (n-3)
//!                                          4-n mode parameters
//! ```
//!
//! For a disk, DEVICE-SPECIFIC PARAMETER carries WP (0x80) and DPOFUA (0x10); for a tape, WP,
//! BUFFERED MODE (6-4) and SPEED (3-0).
//!
//! Parse rules. [`ModeParameters::parse`] reads MODE SENSE data: the header is required; the
//! MODE DATA LENGTH bounds what follows. When the buffer is shorter than the MODE DATA LENGTH
//! says (allocation length truncation) the whole block descriptors and pages present are
//! returned and a cut one is dropped; when all the bytes are present, a block descriptor length
//! or page that runs past the mode data is an error. [`ModeParameters::parse_select`] reads a
//! MODE SELECT parameter list, where MODE DATA LENGTH is reserved and the list is exactly the
//! bytes sent: anything that runs past the end is an error (SPC-4: a parameter list length that
//! truncates a header, descriptor or page is PARAMETER LIST LENGTH ERROR).
//! A typed page (Caching, Control, IE, each in page_0 format) with a PAGE LENGTH other than its
//! standard one is [`DataError::BadModePageLength`] (INVALID FIELD IN PARAMETER LIST in MODE
//! SELECT); the same codes in sub_page format are kept as [`ModePage::Unknown`].

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::capacity::Capacity;
use crate::scsi::data::DataError;
use crate::wire::{be16, be24, be32, be64, put_be16, put_be24, put_be32, put_be64};

mod field {
    pub mod six {
        pub const MODE_DATA_LENGTH: usize = 0;
        pub const MEDIUM_TYPE: usize = 1;
        pub const DEVICE_SPECIFIC: usize = 2;
        pub const BLOCK_DESCRIPTOR_LENGTH: usize = 3;
    }

    pub mod ten {
        use crate::wire::Field;

        pub const MODE_DATA_LENGTH: Field = 0..2;
        pub const MEDIUM_TYPE: usize = 2;
        pub const DEVICE_SPECIFIC: usize = 3;
        /// LONGLBA 0x01.
        pub const LONGLBA: usize = 4;
        pub const RESERVED: usize = 5;
        pub const BLOCK_DESCRIPTOR_LENGTH: Field = 6..8;
    }

    pub mod short {
        use crate::wire::Field;

        pub const BLOCKS: Field = 0..4;
        pub const RESERVED: usize = 4;
        pub const BLOCK_LENGTH: Field = 5..8;
    }

    pub mod long {
        use crate::wire::Field;

        pub const BLOCKS: Field = 0..8;
        pub const RESERVED: Field = 8..12;
        pub const BLOCK_LENGTH: Field = 12..16;
    }
}

/// Bytes of a short LBA block descriptor.
pub const SHORT_DESCRIPTOR_LEN: usize = 8;
/// Bytes of a long LBA block descriptor.
pub const LONG_DESCRIPTOR_LEN: usize = 16;

/// Which command's header: MODE SENSE(6)/SELECT(6) or MODE SENSE(10)/SELECT(10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModeForm {
    /// 4-byte header, one-byte lengths.
    #[default]
    Six,
    /// 8-byte header, two-byte lengths, LONGLBA.
    Ten,
}

impl ModeForm {
    /// Bytes of the mode parameter header.
    pub const fn header_len(self) -> usize {
        match self {
            ModeForm::Six => 4,
            ModeForm::Ten => 8,
        }
    }
}

bitflags::bitflags! {
    /// DEVICE-SPECIFIC PARAMETER. Named bits are the disk's (SBC-3 §6.4.1); a tape's BUFFERED
    /// MODE and SPEED are kept as data (see [`DeviceSpecific::buffered_mode`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DeviceSpecific: u8 {
        /// Write protected.
        const WP = 0x80;
        /// DPO and FUA bits supported.
        const DPOFUA = 0x10;
    }
}

impl DeviceSpecific {
    /// Tape (SSC-3): BUFFERED MODE, bits 6-4.
    pub fn buffered_mode(self) -> u8 {
        (self.bits() >> 4) & 0x07
    }

    /// Tape (SSC-3): SPEED, bits 3-0.
    pub fn speed(self) -> u8 {
        self.bits() & 0x0F
    }
}

/// A short LBA mode parameter block descriptor (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShortBlockDescriptor {
    /// Bytes 0-3: NUMBER OF LOGICAL BLOCKS for a disk (FFFFFFFFh when more); for a tape,
    /// DENSITY CODE in the top byte and the number of blocks in the low 24 bits.
    pub number_of_blocks: u32,
    /// LOGICAL BLOCK LENGTH (low 24 bits emitted).
    pub block_length: u32,
}

impl ShortBlockDescriptor {
    /// A disk's descriptor: the block count (capped at FFFFFFFFh, as SBC-3 requires) and block
    /// length.
    pub fn for_capacity(c: Capacity) -> ShortBlockDescriptor {
        ShortBlockDescriptor {
            number_of_blocks: u32::try_from(c.blocks()).unwrap_or(u32::MAX),
            block_length: c.block_size() & 0xFF_FFFF,
        }
    }

    /// A tape's descriptor (density code, 24-bit block count, block length; 0 = variable).
    pub fn tape(density_code: u8, blocks: u32, block_length: u32) -> ShortBlockDescriptor {
        ShortBlockDescriptor {
            number_of_blocks: u32::from(density_code) << 24 | blocks & 0xFF_FFFF,
            block_length: block_length & 0xFF_FFFF,
        }
    }

    /// Tape: DENSITY CODE (byte 0).
    pub fn density_code(&self) -> u8 {
        (self.number_of_blocks >> 24) as u8
    }

    /// Tape: NUMBER OF BLOCKS (bytes 1-3).
    pub fn tape_blocks(&self) -> u32 {
        self.number_of_blocks & 0xFF_FFFF
    }

    fn parse(b: &[u8]) -> ShortBlockDescriptor {
        ShortBlockDescriptor {
            number_of_blocks: be32(b, field::short::BLOCKS.start),
            block_length: be24(b, field::short::BLOCK_LENGTH.start),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        put_be32(b, field::short::BLOCKS.start, self.number_of_blocks);
        b[field::short::RESERVED] = 0;
        put_be24(b, field::short::BLOCK_LENGTH.start, self.block_length);
    }
}

/// A long LBA mode parameter block descriptor (16 bytes, MODE SENSE(10) with LONGLBA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LongBlockDescriptor {
    /// NUMBER OF LOGICAL BLOCKS.
    pub number_of_blocks: u64,
    /// LOGICAL BLOCK LENGTH.
    pub block_length: u32,
}

impl LongBlockDescriptor {
    /// A disk's descriptor.
    pub fn for_capacity(c: Capacity) -> LongBlockDescriptor {
        LongBlockDescriptor {
            number_of_blocks: c.blocks(),
            block_length: c.block_size(),
        }
    }

    fn parse(b: &[u8]) -> LongBlockDescriptor {
        LongBlockDescriptor {
            number_of_blocks: be64(b, field::long::BLOCKS.start),
            block_length: be32(b, field::long::BLOCK_LENGTH.start),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        put_be64(b, field::long::BLOCKS.start, self.number_of_blocks);
        b[field::long::RESERVED].fill(0);
        put_be32(b, field::long::BLOCK_LENGTH.start, self.block_length);
    }
}

/// The block descriptors: short ones, or long ones (which set LONGLBA and need the (10) form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockDescriptors {
    /// Short LBA descriptors (LONGLBA = 0).
    Short(Vec<ShortBlockDescriptor>),
    /// Long LBA descriptors (LONGLBA = 1); written as short ones in the (6) form.
    Long(Vec<LongBlockDescriptor>),
}

impl Default for BlockDescriptors {
    fn default() -> Self {
        BlockDescriptors::Short(Vec::new())
    }
}

impl BlockDescriptors {
    /// Number of descriptors.
    pub fn len(&self) -> usize {
        match self {
            BlockDescriptors::Short(v) => v.len(),
            BlockDescriptors::Long(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_long(&self, form: ModeForm) -> bool {
        matches!(self, BlockDescriptors::Long(_)) && form == ModeForm::Ten
    }

    fn byte_len(&self, form: ModeForm) -> usize {
        self.len()
            * if self.is_long(form) {
                LONG_DESCRIPTOR_LEN
            } else {
                SHORT_DESCRIPTOR_LEN
            }
    }

    fn emit(&self, form: ModeForm, buf: &mut [u8]) {
        match self {
            BlockDescriptors::Long(v) if form == ModeForm::Ten => {
                for (b, d) in buf.chunks_exact_mut(LONG_DESCRIPTOR_LEN).zip(v) {
                    d.emit(b);
                }
            }
            BlockDescriptors::Long(v) => {
                for (b, d) in buf.chunks_exact_mut(SHORT_DESCRIPTOR_LEN).zip(v) {
                    ShortBlockDescriptor {
                        number_of_blocks: u32::try_from(d.number_of_blocks).unwrap_or(u32::MAX),
                        block_length: d.block_length,
                    }
                    .emit(b);
                }
            }
            BlockDescriptors::Short(v) => {
                for (b, d) in buf.chunks_exact_mut(SHORT_DESCRIPTOR_LEN).zip(v) {
                    d.emit(b);
                }
            }
        }
    }
}

/// Mode page codes typed here.
mod code {
    pub const CACHING: u8 = 0x08;
    pub const CONTROL: u8 = 0x0A;
    pub const INFORMATIONAL_EXCEPTIONS: u8 = 0x1C;
}

bitflags::bitflags! {
    /// The one-bit fields of the Caching page: byte 2 in the high byte, byte 12 in the low.
    /// Vendor-specific bits of byte 12 are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct CachingFlags: u16 {
        /// Initiator control of cache segmentation.
        const IC = 0x80 << 8;
        /// Abort pre-fetch.
        const ABPF = 0x40 << 8;
        /// Caching analysis permitted.
        const CAP = 0x20 << 8;
        /// Discontinuity.
        const DISC = 0x10 << 8;
        /// Size enable.
        const SIZE = 0x08 << 8;
        /// Write cache enable: GOOD status before the data is on the medium.
        const WCE = 0x04 << 8;
        /// Multiplication factor.
        const MF = 0x02 << 8;
        /// Read cache disable.
        const RCD = 0x01 << 8;
        /// Force sequential write.
        const FSW = 0x80;
        /// Logical block cache segment size.
        const LBCSS = 0x40;
        /// Disable read-ahead.
        const DRA = 0x20;
        /// Non-volatile cache disabled.
        const NV_DIS = 0x01;
    }
}

/// Caching mode page 0x08 (SBC-3 §6.4.5), PAGE LENGTH 0x12.
///
/// ```text
///  2     IC | ABPF | CAP | DISC | SIZE | WCE | MF | RCD
///  3     DEMAND READ RETENTION PRIORITY (7-4) | WRITE RETENTION PRIORITY (3-0)
///  4-5   DISABLE PRE-FETCH TRANSFER LENGTH     6-7  MINIMUM PRE-FETCH
///  8-9   MAXIMUM PRE-FETCH                     10-11 MAXIMUM PRE-FETCH CEILING
///  12    FSW | LBCSS | DRA | VS | VS | res | res | NV_DIS
///  13    NUMBER OF CACHE SEGMENTS              14-15 CACHE SEGMENT SIZE
///  16    reserved                              17-19 obsolete
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CachingPage {
    /// PS: parameters savable (MODE SENSE only).
    pub ps: bool,
    /// Bytes 2 and 12.
    pub flags: CachingFlags,
    /// DEMAND READ RETENTION PRIORITY (low four bits emitted).
    pub demand_read_retention_priority: u8,
    /// WRITE RETENTION PRIORITY (low four bits emitted).
    pub write_retention_priority: u8,
    /// DISABLE PRE-FETCH TRANSFER LENGTH.
    pub disable_prefetch_transfer_length: u16,
    /// MINIMUM PRE-FETCH.
    pub minimum_prefetch: u16,
    /// MAXIMUM PRE-FETCH.
    pub maximum_prefetch: u16,
    /// MAXIMUM PRE-FETCH CEILING.
    pub maximum_prefetch_ceiling: u16,
    /// NUMBER OF CACHE SEGMENTS.
    pub number_of_cache_segments: u8,
    /// CACHE SEGMENT SIZE.
    pub cache_segment_size: u16,
}

impl CachingPage {
    /// PAGE LENGTH.
    pub const PAGE_LENGTH: u8 = 0x12;

    fn parse(ps: bool, b: &[u8]) -> CachingPage {
        CachingPage {
            ps,
            flags: CachingFlags::from_bits_retain(u16::from(b[2]) << 8 | u16::from(b[12])),
            demand_read_retention_priority: b[3] >> 4,
            write_retention_priority: b[3] & 0x0F,
            disable_prefetch_transfer_length: be16(b, 4),
            minimum_prefetch: be16(b, 6),
            maximum_prefetch: be16(b, 8),
            maximum_prefetch_ceiling: be16(b, 10),
            number_of_cache_segments: b[13],
            cache_segment_size: be16(b, 14),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[..2 + usize::from(Self::PAGE_LENGTH)].fill(0);
        b[0] = u8::from(self.ps) << 7 | code::CACHING;
        b[1] = Self::PAGE_LENGTH;
        b[2] = (self.flags.bits() >> 8) as u8;
        b[3] = (self.demand_read_retention_priority & 0x0F) << 4
            | self.write_retention_priority & 0x0F;
        put_be16(b, 4, self.disable_prefetch_transfer_length);
        put_be16(b, 6, self.minimum_prefetch);
        put_be16(b, 8, self.maximum_prefetch);
        put_be16(b, 10, self.maximum_prefetch_ceiling);
        // Truncating cast: the low byte is byte 12.
        b[12] = self.flags.bits() as u8;
        b[13] = self.number_of_cache_segments;
        put_be16(b, 14, self.cache_segment_size);
    }
}

bitflags::bitflags! {
    /// The one-bit fields of the Control page, packed as
    /// `byte2 << 24 | byte3 << 16 | byte4 << 8 | byte5` without the multi-bit fields (TST,
    /// QUEUE ALGORITHM MODIFIER, QERR, UA_INTLCK_CTRL, AUTOLOAD MODE). Vendor-specific and
    /// obsolete bits are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ControlFlags: u32 {
        /// Task management functions only (ACA).
        const TMF_ONLY = 0x10 << 24;
        /// Disable protection information check if protect field is zero.
        const DPICZ = 0x08 << 24;
        /// Descriptor format sense data.
        const D_SENSE = 0x04 << 24;
        /// Global logging target save disable.
        const GLTSD = 0x02 << 24;
        /// Report log exception condition.
        const RLEC = 0x01 << 24;
        /// No unit attention on release.
        const NUAR = 0x08 << 16;
        /// Report a check (busy instead of long operations).
        const RAC = 0x40 << 8;
        /// Software write protect.
        const SWP = 0x08 << 8;
        /// Application tag owner.
        const ATO = 0x80;
        /// Task aborted status.
        const TAS = 0x40;
        /// Application tag mode page enabled.
        const ATMPE = 0x20;
        /// Reject write without protection.
        const RWWP = 0x10;
    }
}

impl ControlFlags {
    /// The bits that are one-bit fields (the complement of the multi-bit fields).
    pub const WIRE_BITS: u32 = !(0xE0 << 24 | 0xF6 << 16 | 0x30 << 8 | 0x07);
}

/// Control mode page 0x0A (SPC-4 §7.5.8), PAGE LENGTH 0x0A.
///
/// ```text
///  2     TST (7-5) | TMF_ONLY | DPICZ | D_SENSE | GLTSD | RLEC
///  3     QUEUE ALGORITHM MODIFIER (7-4) | NUAR | QERR (2-1) | obsolete
///  4     VS | RAC | UA_INTLCK_CTRL (5-4) | SWP | obsolete (2-0)
///  5     ATO | TAS | ATMPE | RWWP | reserved | AUTOLOAD MODE (2-0)
///  6-7   obsolete        8-9 BUSY TIMEOUT PERIOD (100 ms units)
///  10-11 EXTENDED SELF-TEST COMPLETION TIME (seconds)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ControlPage {
    /// PS: parameters savable (MODE SENSE only).
    pub ps: bool,
    /// The one-bit fields.
    pub flags: ControlFlags,
    /// TST (low three bits emitted): 0 one task set for all I_T nexuses, 1 per I_T nexus.
    pub tst: u8,
    /// QUEUE ALGORITHM MODIFIER (low four bits emitted): 0 restricted, 1 unrestricted reordering.
    pub queue_algorithm_modifier: u8,
    /// QERR (low two bits emitted).
    pub qerr: u8,
    /// UA_INTLCK_CTRL (low two bits emitted).
    pub ua_intlck_ctrl: u8,
    /// AUTOLOAD MODE (low three bits emitted).
    pub autoload_mode: u8,
    /// BUSY TIMEOUT PERIOD.
    pub busy_timeout_period: u16,
    /// EXTENDED SELF-TEST COMPLETION TIME.
    pub extended_self_test_completion_time: u16,
}

impl ControlPage {
    /// PAGE LENGTH.
    pub const PAGE_LENGTH: u8 = 0x0A;

    fn parse(ps: bool, b: &[u8]) -> ControlPage {
        let raw = be32(b, 2);
        ControlPage {
            ps,
            flags: ControlFlags::from_bits_retain(raw & ControlFlags::WIRE_BITS),
            tst: b[2] >> 5,
            queue_algorithm_modifier: b[3] >> 4,
            qerr: (b[3] >> 1) & 0x03,
            ua_intlck_ctrl: (b[4] >> 4) & 0x03,
            autoload_mode: b[5] & 0x07,
            busy_timeout_period: be16(b, 8),
            extended_self_test_completion_time: be16(b, 10),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[..2 + usize::from(Self::PAGE_LENGTH)].fill(0);
        b[0] = u8::from(self.ps) << 7 | code::CONTROL;
        b[1] = Self::PAGE_LENGTH;
        let fields = u32::from(self.tst & 0x07) << 29
            | u32::from(self.queue_algorithm_modifier & 0x0F) << 20
            | u32::from(self.qerr & 0x03) << 17
            | u32::from(self.ua_intlck_ctrl & 0x03) << 12
            | u32::from(self.autoload_mode & 0x07);
        put_be32(b, 2, self.flags.bits() & ControlFlags::WIRE_BITS | fields);
        put_be16(b, 8, self.busy_timeout_period);
        put_be16(b, 10, self.extended_self_test_completion_time);
    }
}

bitflags::bitflags! {
    /// Byte 2 of the Informational Exceptions Control page.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct IeFlags: u8 {
        /// Performance: no delays for informational exception operations.
        const PERF = 0x80;
        /// Enable background function.
        const EBF = 0x20;
        /// Enable warning.
        const EWASC = 0x10;
        /// Disable exception control.
        const DEXCPT = 0x08;
        /// Test: create false device failures.
        const TEST = 0x04;
        /// Enable background error.
        const EBACKERR = 0x02;
        /// Log errors.
        const LOGERR = 0x01;
    }
}

/// Informational Exceptions Control mode page 0x1C (SPC-4 §7.5.15), PAGE LENGTH 0x0A.
///
/// ```text
///  2     PERF | res | EBF | EWASC | DEXCPT | TEST | EBACKERR | LOGERR
///  3     reserved (7-4) | MRIE (3-0)
///  4-7   INTERVAL TIMER (100 ms units)     8-11 REPORT COUNT
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InformationalExceptionsPage {
    /// PS: parameters savable (MODE SENSE only).
    pub ps: bool,
    /// Byte 2.
    pub flags: IeFlags,
    /// MRIE, method of reporting informational exceptions (low four bits emitted).
    pub mrie: u8,
    /// INTERVAL TIMER.
    pub interval_timer: u32,
    /// REPORT COUNT.
    pub report_count: u32,
}

impl InformationalExceptionsPage {
    /// PAGE LENGTH.
    pub const PAGE_LENGTH: u8 = 0x0A;

    fn parse(ps: bool, b: &[u8]) -> InformationalExceptionsPage {
        InformationalExceptionsPage {
            ps,
            flags: IeFlags::from_bits_retain(b[2]),
            mrie: b[3] & 0x0F,
            interval_timer: be32(b, 4),
            report_count: be32(b, 8),
        }
    }

    fn emit(&self, b: &mut [u8]) {
        b[0] = u8::from(self.ps) << 7 | code::INFORMATIONAL_EXCEPTIONS;
        b[1] = Self::PAGE_LENGTH;
        b[2] = self.flags.bits();
        b[3] = self.mrie & 0x0F;
        put_be32(b, 4, self.interval_timer);
        put_be32(b, 8, self.report_count);
    }
}

/// One mode page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModePage {
    /// 0x08.
    Caching(CachingPage),
    /// 0x0A.
    Control(ControlPage),
    /// 0x1C.
    InformationalExceptions(InformationalExceptionsPage),
    /// Any other page, and typed codes in sub_page format.
    Unknown {
        /// PS.
        ps: bool,
        /// PAGE CODE (low six bits emitted).
        code: u8,
        /// SUBPAGE CODE for the sub_page format (SPF = 1); `None` for page_0 format.
        subpage: Option<u8>,
        /// The mode parameters after the page header (at most 255 bytes in page_0 format and
        /// 65535 in sub_page format are emitted).
        bytes: Vec<u8>,
    },
}

impl ModePage {
    /// PAGE CODE.
    pub fn code(&self) -> u8 {
        match self {
            ModePage::Caching(_) => code::CACHING,
            ModePage::Control(_) => code::CONTROL,
            ModePage::InformationalExceptions(_) => code::INFORMATIONAL_EXCEPTIONS,
            ModePage::Unknown { code, .. } => *code & 0x3F,
        }
    }

    /// SUBPAGE CODE, for sub_page format pages.
    pub fn subpage(&self) -> Option<u8> {
        match self {
            ModePage::Unknown { subpage, .. } => *subpage,
            _ => None,
        }
    }

    /// Parses one page from the start of `buf`; returns it and the bytes it took. A page cut
    /// short is a length error.
    pub fn parse(buf: &[u8]) -> Result<(ModePage, usize), DataError> {
        LenError::check(Layer::ScsiData, 2, buf.len())?;
        let ps = buf[0] & 0x80 != 0;
        let spf = buf[0] & 0x40 != 0;
        let code = buf[0] & 0x3F;
        let (header, length) = if spf {
            LenError::check(Layer::ScsiData, 4, buf.len())?;
            (4, be16(buf, 2))
        } else {
            (2, u16::from(buf[1]))
        };
        let total = header + usize::from(length);
        LenError::check(Layer::ScsiData, total, buf.len())?;
        // buf.len() >= total, checked above; each typed parse indexes below 2 + its length.
        let page = &buf[..total];
        let check_length = |expected: u8| {
            if length == u16::from(expected) {
                Ok(())
            } else {
                Err(DataError::BadModePageLength {
                    page: code,
                    length,
                    expected: u16::from(expected),
                })
            }
        };
        let p = match (spf, code) {
            (false, code::CACHING) => {
                check_length(CachingPage::PAGE_LENGTH)?;
                ModePage::Caching(CachingPage::parse(ps, page))
            }
            (false, code::CONTROL) => {
                check_length(ControlPage::PAGE_LENGTH)?;
                ModePage::Control(ControlPage::parse(ps, page))
            }
            (false, code::INFORMATIONAL_EXCEPTIONS) => {
                check_length(InformationalExceptionsPage::PAGE_LENGTH)?;
                ModePage::InformationalExceptions(InformationalExceptionsPage::parse(ps, page))
            }
            _ => ModePage::Unknown {
                ps,
                code,
                subpage: spf.then(|| buf[1]),
                bytes: page[header..].to_vec(),
            },
        };
        Ok((p, total))
    }

    /// Bytes of the page, header included.
    pub fn buffer_len(&self) -> usize {
        match self {
            ModePage::Caching(_) => 2 + usize::from(CachingPage::PAGE_LENGTH),
            ModePage::Control(_) => 2 + usize::from(ControlPage::PAGE_LENGTH),
            ModePage::InformationalExceptions(_) => {
                2 + usize::from(InformationalExceptionsPage::PAGE_LENGTH)
            }
            ModePage::Unknown {
                subpage: None,
                bytes,
                ..
            } => 2 + bytes.len().min(0xFF),
            ModePage::Unknown {
                subpage: Some(_),
                bytes,
                ..
            } => 4 + bytes.len().min(0xFFFF),
        }
    }

    /// Writes the page. Panics if `buf` is shorter than [`ModePage::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            ModePage::Caching(p) => p.emit(buf),
            ModePage::Control(p) => p.emit(buf),
            ModePage::InformationalExceptions(p) => p.emit(buf),
            ModePage::Unknown {
                ps,
                code,
                subpage,
                bytes,
            } => {
                let ps = u8::from(*ps) << 7;
                let header = match subpage {
                    None => {
                        let n = bytes.len().min(0xFF);
                        buf[0] = ps | code & 0x3F;
                        // n <= 0xFF.
                        buf[1] = n as u8;
                        2
                    }
                    Some(sub) => {
                        let n = bytes.len().min(0xFFFF);
                        buf[0] = ps | 0x40 | code & 0x3F;
                        buf[1] = *sub;
                        // n <= 0xFFFF.
                        put_be16(buf, 2, n as u16);
                        4
                    }
                };
                let n = self.buffer_len() - header;
                buf[header..header + n].copy_from_slice(&bytes[..n]);
            }
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `caching(wce)`, `control(qam=1 d_sense)`, `ie(mrie=3 dexcpt)`, `0x19`, `0x0a/0x01`.
impl fmt::Display for ModePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn flags(f: &mut fmt::Formatter<'_>, set: &[(bool, &str)]) -> fmt::Result {
            for (on, name) in set {
                if *on {
                    write!(f, " {name}")?;
                }
            }
            Ok(())
        }
        match self {
            ModePage::Caching(p) => {
                f.write_str("caching(")?;
                let c = |x| p.flags.contains(x);
                write!(
                    f,
                    "wce={} rcd={}",
                    u8::from(c(CachingFlags::WCE)),
                    u8::from(c(CachingFlags::RCD))
                )?;
                flags(
                    f,
                    &[
                        (c(CachingFlags::DRA), "dra"),
                        (c(CachingFlags::NV_DIS), "nv_dis"),
                    ],
                )?;
                f.write_str(")")
            }
            ModePage::Control(p) => {
                write!(
                    f,
                    "control(qam={} tst={}",
                    p.queue_algorithm_modifier, p.tst
                )?;
                let c = |x| p.flags.contains(x);
                flags(
                    f,
                    &[
                        (c(ControlFlags::D_SENSE), "d_sense"),
                        (c(ControlFlags::SWP), "swp"),
                        (c(ControlFlags::TAS), "tas"),
                    ],
                )?;
                f.write_str(")")
            }
            ModePage::InformationalExceptions(p) => {
                write!(f, "ie(mrie={}", p.mrie)?;
                flags(
                    f,
                    &[
                        (p.flags.contains(IeFlags::DEXCPT), "dexcpt"),
                        (p.flags.contains(IeFlags::TEST), "test"),
                    ],
                )?;
                f.write_str(")")
            }
            ModePage::Unknown {
                code,
                subpage: None,
                ..
            } => write!(f, "{:#04x}", code & 0x3F),
            ModePage::Unknown {
                code,
                subpage: Some(s),
                ..
            } => write!(f, "{:#04x}/{s:#04x}", code & 0x3F),
        }
    }
}

/// A whole mode parameter list: header, block descriptors, pages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ModeParameters {
    /// (6) or (10) header.
    pub form: ModeForm,
    /// MEDIUM TYPE (0 for disks).
    pub medium_type: u8,
    /// DEVICE-SPECIFIC PARAMETER.
    pub device_specific: DeviceSpecific,
    /// Block descriptors.
    pub block_descriptors: BlockDescriptors,
    /// Mode pages, in order.
    pub pages: Vec<ModePage>,
}

impl ModeParameters {
    /// Parses MODE SENSE data; see the module docs for the truncation rule.
    pub fn parse(buf: &[u8], form: ModeForm) -> Result<ModeParameters, DataError> {
        LenError::check(Layer::ScsiData, form.header_len(), buf.len())?;
        let (mode_data_length, total) = match form {
            ModeForm::Six => {
                let l = buf[field::six::MODE_DATA_LENGTH];
                (u16::from(l), usize::from(l) + 1)
            }
            ModeForm::Ten => {
                let l = be16(buf, field::ten::MODE_DATA_LENGTH.start);
                (l, usize::from(l) + 2)
            }
        };
        // The mode data length counts the rest of the header at least.
        if total < form.header_len() {
            return Err(DataError::BadModeDataLength(mode_data_length));
        }
        Self::parse_within(buf, form, total)
    }

    /// Parses a MODE SELECT parameter list of exactly the bytes the initiator sent (MODE DATA
    /// LENGTH is reserved there and not read); see the module docs.
    pub fn parse_select(buf: &[u8], form: ModeForm) -> Result<ModeParameters, DataError> {
        LenError::check(Layer::ScsiData, form.header_len(), buf.len())?;
        Self::parse_within(buf, form, buf.len())
    }

    /// Parses a list the header of which is present and whose length is `total` (of which
    /// fewer bytes may be present).
    fn parse_within(buf: &[u8], form: ModeForm, total: usize) -> Result<ModeParameters, DataError> {
        let truncated = buf.len() < total;
        let end = buf.len().min(total);
        let header = form.header_len();
        // buf.len() >= header: the callers checked it.
        let (medium_type, device_specific, long, bd_length) = match form {
            ModeForm::Six => (
                buf[field::six::MEDIUM_TYPE],
                buf[field::six::DEVICE_SPECIFIC],
                false,
                u16::from(buf[field::six::BLOCK_DESCRIPTOR_LENGTH]),
            ),
            ModeForm::Ten => (
                buf[field::ten::MEDIUM_TYPE],
                buf[field::ten::DEVICE_SPECIFIC],
                buf[field::ten::LONGLBA] & 0x01 != 0,
                be16(buf, field::ten::BLOCK_DESCRIPTOR_LENGTH.start),
            ),
        };
        let unit = if long {
            LONG_DESCRIPTOR_LEN
        } else {
            SHORT_DESCRIPTOR_LEN
        };
        // SPC-4: the block descriptor length is the number of descriptors times their size.
        if usize::from(bd_length) % unit != 0 {
            return Err(DataError::BadBlockDescriptorLength {
                length: bd_length,
                // unit is 8 or 16.
                unit: unit as u8,
            });
        }
        let available = end.saturating_sub(header);
        let bd_end = header + usize::from(bd_length);
        if bd_end > end && !truncated {
            return Err(DataError::BlockDescriptorOverrun {
                length: bd_length,
                available,
            });
        }
        // Whole descriptors present, within the block descriptor length.
        let bd_bytes = &buf[header..bd_end.min(end)];
        let block_descriptors = if long {
            BlockDescriptors::Long(
                bd_bytes
                    .chunks_exact(LONG_DESCRIPTOR_LEN)
                    .map(LongBlockDescriptor::parse)
                    .collect(),
            )
        } else {
            BlockDescriptors::Short(
                bd_bytes
                    .chunks_exact(SHORT_DESCRIPTOR_LEN)
                    .map(ShortBlockDescriptor::parse)
                    .collect(),
            )
        };
        let mut pages = Vec::new();
        let mut at = bd_end;
        // Each page takes at least 2 bytes, so the loop ends.
        while at < end {
            // at < end <= buf.len().
            match ModePage::parse(&buf[at..end]) {
                Ok((page, used)) => {
                    pages.push(page);
                    at += used;
                }
                Err(DataError::Len(_)) if truncated => break,
                Err(DataError::Len(_)) => {
                    return Err(DataError::ModePageOverrun {
                        page: buf[at] & 0x3F,
                        offset: at,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ModeParameters {
            form,
            medium_type,
            device_specific: DeviceSpecific::from_bits_retain(device_specific),
            block_descriptors,
            pages,
        })
    }

    /// Header, descriptors and pages.
    pub fn buffer_len(&self) -> usize {
        self.form.header_len()
            + self.block_descriptors.byte_len(self.form)
            + self.pages.iter().map(ModePage::buffer_len).sum::<usize>()
    }

    /// Writes the list with MODE DATA LENGTH and BLOCK DESCRIPTOR LENGTH from its contents.
    /// In the (6) form a list longer than 256 bytes or with more than 31 block descriptors does
    /// not fit the one-byte lengths, which are then written as 0xFF (a MODE SENSE(6) answer is
    /// kept small by the caller). Panics if `buf` is shorter than [`ModeParameters::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let total = self.buffer_len();
        let header = self.form.header_len();
        let bd_len = self.block_descriptors.byte_len(self.form);
        match self.form {
            ModeForm::Six => {
                buf[field::six::MODE_DATA_LENGTH] = u8::try_from(total - 1).unwrap_or(0xFF);
                buf[field::six::MEDIUM_TYPE] = self.medium_type;
                buf[field::six::DEVICE_SPECIFIC] = self.device_specific.bits();
                buf[field::six::BLOCK_DESCRIPTOR_LENGTH] = u8::try_from(bd_len).unwrap_or(0xFF);
            }
            ModeForm::Ten => {
                let mdl = u16::try_from(total - 2).unwrap_or(0xFFFF);
                put_be16(buf, field::ten::MODE_DATA_LENGTH.start, mdl);
                buf[field::ten::MEDIUM_TYPE] = self.medium_type;
                buf[field::ten::DEVICE_SPECIFIC] = self.device_specific.bits();
                buf[field::ten::LONGLBA] = u8::from(self.block_descriptors.is_long(self.form));
                buf[field::ten::RESERVED] = 0;
                let bdl = u16::try_from(bd_len).unwrap_or(0xFFFF);
                put_be16(buf, field::ten::BLOCK_DESCRIPTOR_LENGTH.start, bdl);
            }
        }
        self.block_descriptors
            .emit(self.form, &mut buf[header..header + bd_len]);
        let mut at = header + bd_len;
        for p in &self.pages {
            let n = p.buffer_len();
            p.emit(&mut buf[at..at + n]);
            at += n;
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// The first page with this code (and no subpage), if present.
    pub fn page(&self, code: u8) -> Option<&ModePage> {
        self.pages
            .iter()
            .find(|p| p.code() == code && p.subpage().is_none())
    }

    /// The Caching page, if present.
    pub fn caching(&self) -> Option<&CachingPage> {
        self.pages.iter().find_map(|p| match p {
            ModePage::Caching(c) => Some(c),
            _ => None,
        })
    }

    /// The Control page, if present.
    pub fn control(&self) -> Option<&ControlPage> {
        self.pages.iter().find_map(|p| match p {
            ModePage::Control(c) => Some(c),
            _ => None,
        })
    }
}

/// `MODE(6) parameters medium=0x00 dpofua blocks=[8388608x512] pages=[caching(wce=1 rcd=0) control(qam=1 tst=0)]`
impl fmt::Display for ModeParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self.form {
            ModeForm::Six => 6,
            ModeForm::Ten => 10,
        };
        write!(f, "MODE({n}) parameters medium={:#04x}", self.medium_type)?;
        if self.device_specific.contains(DeviceSpecific::WP) {
            f.write_str(" wp")?;
        }
        if self.device_specific.contains(DeviceSpecific::DPOFUA) {
            f.write_str(" dpofua")?;
        }
        if !self.block_descriptors.is_empty() {
            f.write_str(" blocks=[")?;
            match &self.block_descriptors {
                BlockDescriptors::Short(v) => {
                    for (i, d) in v.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        write!(f, "{sep}{}x{}", d.number_of_blocks, d.block_length)?;
                    }
                }
                BlockDescriptors::Long(v) => {
                    for (i, d) in v.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        write!(f, "{sep}{}x{}", d.number_of_blocks, d.block_length)?;
                    }
                }
            }
            f.write_str("]")?;
        }
        f.write_str(" pages=[")?;
        for (i, p) in self.pages.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{p}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;

    fn caching() -> impl Strategy<Value = CachingPage> {
        (
            any::<(bool, u16, u8)>(),
            0u8..16,
            0u8..16,
            any::<(u16, u16, u16, u16, u16)>(),
        )
            .prop_map(
                |((ps, flags, segs), drrp, wrp, (a, b, c, d, size))| CachingPage {
                    ps,
                    flags: CachingFlags::from_bits_retain(flags),
                    demand_read_retention_priority: drrp,
                    write_retention_priority: wrp,
                    disable_prefetch_transfer_length: a,
                    minimum_prefetch: b,
                    maximum_prefetch: c,
                    maximum_prefetch_ceiling: d,
                    number_of_cache_segments: segs,
                    cache_segment_size: size,
                },
            )
    }

    fn control() -> impl Strategy<Value = ControlPage> {
        (
            any::<(bool, u32, u16, u16)>(),
            (0u8..8, 0u8..16, 0u8..4, 0u8..4, 0u8..8),
        )
            .prop_map(
                |((ps, flags, busy, ext), (tst, qam, qerr, ua, al))| ControlPage {
                    ps,
                    flags: ControlFlags::from_bits_retain(flags & ControlFlags::WIRE_BITS),
                    tst,
                    queue_algorithm_modifier: qam,
                    qerr,
                    ua_intlck_ctrl: ua,
                    autoload_mode: al,
                    busy_timeout_period: busy,
                    extended_self_test_completion_time: ext,
                },
            )
    }

    fn ie() -> impl Strategy<Value = InformationalExceptionsPage> {
        (any::<(bool, u8, u32, u32)>(), 0u8..16).prop_map(|((ps, flags, it, rc), mrie)| {
            InformationalExceptionsPage {
                ps,
                flags: IeFlags::from_bits_retain(flags),
                mrie,
                interval_timer: it,
                report_count: rc,
            }
        })
    }

    pub(crate) fn mode_page() -> impl Strategy<Value = ModePage> {
        prop_oneof![
            caching().prop_map(ModePage::Caching),
            control().prop_map(ModePage::Control),
            ie().prop_map(ModePage::InformationalExceptions),
            (
                any::<bool>(),
                0u8..0x40,
                proptest::option::of(any::<u8>()),
                proptest::collection::vec(any::<u8>(), 0..40)
            )
                .prop_filter("typed pages", |(_, c, s, _)| {
                    s.is_some() || !matches!(*c, 0x08 | 0x0A | 0x1C)
                })
                .prop_map(|(ps, code, subpage, bytes)| ModePage::Unknown {
                    ps,
                    code,
                    subpage,
                    bytes
                }),
        ]
    }

    pub(crate) fn mode_parameters() -> impl Strategy<Value = ModeParameters> {
        let short = proptest::collection::vec(
            (any::<u32>(), 0u32..0x100_0000).prop_map(|(n, l)| ShortBlockDescriptor {
                number_of_blocks: n,
                block_length: l,
            }),
            0..3,
        )
        .prop_map(BlockDescriptors::Short);
        let long = proptest::collection::vec(
            any::<(u64, u32)>().prop_map(|(n, l)| LongBlockDescriptor {
                number_of_blocks: n,
                block_length: l,
            }),
            0..3,
        )
        .prop_map(BlockDescriptors::Long);
        (
            prop_oneof![Just(ModeForm::Six), Just(ModeForm::Ten)],
            any::<(u8, u8)>(),
            prop_oneof![short, long],
            proptest::collection::vec(mode_page(), 0..4),
        )
            .prop_filter("long descriptors need the (10) form", |(form, _, bd, _)| {
                *form == ModeForm::Ten || matches!(bd, BlockDescriptors::Short(_))
            })
            .prop_map(
                |(form, (medium_type, dsp), block_descriptors, pages)| ModeParameters {
                    form,
                    medium_type,
                    device_specific: DeviceSpecific::from_bits_retain(dsp),
                    block_descriptors,
                    pages,
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// MODE SENSE(6) for all pages from a 4 GiB disk: DPOFUA, one short block descriptor,
    /// Caching (WCE), Control (QAM 1, TAS), IE (DEXCPT).
    static SENSE6: [u8; 56] = hex!(
        "37 00 10 08"
        "00800000 00 000200"
        "08 12 04 00 ffff 0000 ffff ffff 00 00 0000 00 000000"
        "0a 0a 00 10 00 40 0000 0000 0000"
        "1c 0a 08 00 00000000 00000000"
    );
    /// MODE SENSE(10), LONGLBA, one long descriptor for 2^33 blocks, Caching with PS set.
    static SENSE10: [u8; 44] = hex!(
        "002a 00 00 01 00 0010"
        "0000000200000000 00000000 00000200"
        "88 12 00 00 0000 0000 0000 0000 00 00 0000 00 000000"
    );

    fn caching() -> CachingPage {
        CachingPage {
            flags: CachingFlags::WCE,
            disable_prefetch_transfer_length: 0xFFFF,
            maximum_prefetch: 0xFFFF,
            maximum_prefetch_ceiling: 0xFFFF,
            ..CachingPage::default()
        }
    }

    fn control() -> ControlPage {
        ControlPage {
            queue_algorithm_modifier: 1,
            flags: ControlFlags::TAS,
            ..ControlPage::default()
        }
    }

    fn ie() -> InformationalExceptionsPage {
        InformationalExceptionsPage {
            flags: IeFlags::DEXCPT,
            ..InformationalExceptionsPage::default()
        }
    }

    fn sense6() -> ModeParameters {
        ModeParameters {
            form: ModeForm::Six,
            medium_type: 0,
            device_specific: DeviceSpecific::DPOFUA,
            block_descriptors: BlockDescriptors::Short(vec![ShortBlockDescriptor::for_capacity(
                Capacity::new(8_388_608, 512).unwrap(),
            )]),
            pages: vec![
                ModePage::Caching(caching()),
                ModePage::Control(control()),
                ModePage::InformationalExceptions(ie()),
            ],
        }
    }

    fn sense10() -> ModeParameters {
        ModeParameters {
            form: ModeForm::Ten,
            medium_type: 0,
            device_specific: DeviceSpecific::empty(),
            block_descriptors: BlockDescriptors::Long(vec![LongBlockDescriptor::for_capacity(
                Capacity::new(1 << 33, 512).unwrap(),
            )]),
            pages: vec![ModePage::Caching(CachingPage {
                ps: true,
                ..CachingPage::default()
            })],
        }
    }

    #[test]
    fn test_parse() {
        let m = ModeParameters::parse(&SENSE6, ModeForm::Six).unwrap();
        assert_eq!(m, sense6());
        assert_eq!(m.caching().map(|c| c.flags), Some(CachingFlags::WCE));
        assert_eq!(m.control().map(|c| c.queue_algorithm_modifier), Some(1));
        assert_eq!(m.page(0x1C), Some(&ModePage::InformationalExceptions(ie())));
        assert_eq!(
            m.to_string(),
            "MODE(6) parameters medium=0x00 dpofua blocks=[8388608x512] \
             pages=[caching(wce=1 rcd=0) control(qam=1 tst=0 tas) ie(mrie=0 dexcpt)]"
        );
        let m = ModeParameters::parse(&SENSE10, ModeForm::Ten).unwrap();
        assert_eq!(m, sense10());
        assert_eq!(
            m.to_string(),
            "MODE(10) parameters medium=0x00 blocks=[8589934592x512] pages=[caching(wce=0 rcd=0)]"
        );
    }

    #[test]
    fn test_emit() {
        assert_eq!(sense6().to_vec(), SENSE6);
        assert_eq!(sense10().to_vec(), SENSE10);
        // Header only: what MODE SENSE(6) with DBD for a page the unit lacks looks like.
        let empty = ModeParameters::default();
        assert_eq!(empty.to_vec(), hex!("03 00 00 00"));
        assert_eq!(
            ModeParameters::parse(&empty.to_vec(), ModeForm::Six).unwrap(),
            empty
        );
        // Long descriptors in the (6) form are written short.
        let six = ModeParameters {
            form: ModeForm::Six,
            ..sense10()
        };
        let b = six.to_vec();
        assert_eq!(&b[..12], &hex!("1f 00 00 08 ffffffff 00 000200"));
    }

    #[test]
    fn test_control_bits() {
        let c = ControlPage {
            ps: true,
            flags: ControlFlags::D_SENSE | ControlFlags::SWP | ControlFlags::ATO,
            tst: 1,
            queue_algorithm_modifier: 0xF,
            qerr: 3,
            ua_intlck_ctrl: 2,
            autoload_mode: 5,
            busy_timeout_period: 0x1234,
            extended_self_test_completion_time: 0x5678,
        };
        let p = ModePage::Control(c);
        let b = p.to_vec();
        assert_eq!(b, hex!("8a 0a 24 f6 28 85 0000 1234 5678"));
        assert_eq!(ModePage::parse(&b).unwrap(), (p, 12));
    }

    #[test]
    fn test_caching_bits() {
        let c = CachingPage {
            flags: CachingFlags::IC | CachingFlags::RCD | CachingFlags::FSW | CachingFlags::NV_DIS,
            demand_read_retention_priority: 0xA,
            write_retention_priority: 0x5,
            number_of_cache_segments: 7,
            cache_segment_size: 0x0102,
            ..CachingPage::default()
        };
        let b = ModePage::Caching(c).to_vec();
        assert_eq!(
            b,
            hex!("08 12 81 a5 0000 0000 0000 0000 81 07 0102 00 000000")
        );
        assert_eq!(ModePage::parse(&b).unwrap().0, ModePage::Caching(c));
    }

    #[test]
    fn test_unknown_pages() {
        // Rigid disk geometry 0x04 in page_0 format, control extension 0x0A/0x01 in sub_page
        // format: both kept as bytes.
        let b = hex!("04 02 aa bb 4a 01 0002 cc dd");
        let (p, n) = ModePage::parse(&b).unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            p,
            ModePage::Unknown {
                ps: false,
                code: 0x04,
                subpage: None,
                bytes: vec![0xAA, 0xBB]
            }
        );
        let (p, n) = ModePage::parse(&b[4..]).unwrap();
        assert_eq!(n, 6);
        assert_eq!(p.to_string(), "0x0a/0x01");
        assert_eq!(p.to_vec(), b[4..]);
        let mut list = hex!("0d 00 00 00").to_vec();
        list.extend(b);
        let m = ModeParameters::parse(&list, ModeForm::Six).unwrap();
        assert_eq!(m.pages.len(), 2);
        assert_eq!(m.page(0x04).map(ModePage::code), Some(0x04));
        assert_eq!(m.page(0x0A), None);
        assert_eq!(m.to_vec(), list);
    }

    #[test]
    fn test_tape_device_specific() {
        // Tape: WP, buffered mode 1, speed 0; a density 0x58 descriptor with variable blocks.
        let b = hex!("0b 00 90 08 58000000 00 000000");
        let m = ModeParameters::parse(&b, ModeForm::Six).unwrap();
        assert_eq!(m.device_specific.buffered_mode(), 1);
        assert_eq!(m.device_specific.speed(), 0);
        assert!(m.device_specific.contains(DeviceSpecific::WP));
        let BlockDescriptors::Short(d) = &m.block_descriptors else {
            panic!()
        };
        assert_eq!(d[0], ShortBlockDescriptor::tape(0x58, 0, 0));
        assert_eq!(d[0].density_code(), 0x58);
        assert_eq!(d[0].tape_blocks(), 0);
    }

    #[test]
    fn test_truncated_by_allocation_length() {
        // MODE SENSE(6) with allocation length 4: the header only.
        let m = ModeParameters::parse(&SENSE6[..4], ModeForm::Six).unwrap();
        assert!(m.block_descriptors.is_empty());
        assert!(m.pages.is_empty());
        assert_eq!(m.device_specific, DeviceSpecific::DPOFUA);
        // Cut inside the Control page: descriptors and Caching kept.
        let m = ModeParameters::parse(&SENSE6[..40], ModeForm::Six).unwrap();
        assert_eq!(m.block_descriptors.len(), 1);
        assert_eq!(m.pages, [ModePage::Caching(caching())]);
        for len in 4..SENSE6.len() {
            let m = ModeParameters::parse(&SENSE6[..len], ModeForm::Six).unwrap();
            let bd = usize::from(len >= 12);
            let pages = [32, 44, 56].iter().filter(|&&e| e <= len).count();
            assert_eq!(
                (m.block_descriptors.len(), m.pages.len()),
                (bd, pages),
                "{len}"
            );
        }
    }

    #[test]
    fn test_truncation() {
        for len in 0..4 {
            assert!(matches!(
                ModeParameters::parse(&SENSE6[..len], ModeForm::Six),
                Err(DataError::Len(_))
            ));
            assert!(matches!(
                ModeParameters::parse_select(&SENSE6[..len], ModeForm::Six),
                Err(DataError::Len(_))
            ));
        }
        for len in 0..8 {
            assert!(matches!(
                ModeParameters::parse(&SENSE10[..len], ModeForm::Ten),
                Err(DataError::Len(_))
            ));
        }
        // A MODE SELECT list cut anywhere inside a descriptor or page is a length error.
        for len in 5..SENSE6.len() {
            if [12, 32, 44].contains(&len) {
                continue;
            }
            let e = ModeParameters::parse_select(&SENSE6[..len], ModeForm::Six).unwrap_err();
            assert_eq!(e.parameter_list_sense(), (0x1A, 0x00), "{len}: {e}");
        }
    }

    #[test]
    fn test_parse_select() {
        // MODE SELECT(6): mode data length reserved (0); Caching page with WCE set.
        let mut b = SENSE6[..32].to_vec();
        b[0] = 0;
        let m = ModeParameters::parse_select(&b, ModeForm::Six).unwrap();
        assert_eq!(m.pages, [ModePage::Caching(caching())]);
        // The same bytes as MODE SENSE data would be a bad mode data length.
        assert_eq!(
            ModeParameters::parse(&b, ModeForm::Six),
            Err(DataError::BadModeDataLength(0))
        );
    }

    #[test]
    fn test_bad_mode_data_length() {
        assert_eq!(
            ModeParameters::parse(&hex!("0002 00 00 00 00 0000"), ModeForm::Ten),
            Err(DataError::BadModeDataLength(2))
        );
        assert_eq!(
            ModeParameters::parse(&hex!("02 00 00 00"), ModeForm::Six),
            Err(DataError::BadModeDataLength(2))
        );
    }

    #[test]
    fn test_bad_block_descriptor_length() {
        assert_eq!(
            ModeParameters::parse(&hex!("08 00 00 05 0000000000"), ModeForm::Six),
            Err(DataError::BadBlockDescriptorLength { length: 5, unit: 8 })
        );
        assert_eq!(
            ModeParameters::parse(
                &hex!("000e 00 00 01 00 0008 0000000000000200"),
                ModeForm::Ten
            ),
            Err(DataError::BadBlockDescriptorLength {
                length: 8,
                unit: 16
            })
        );
        // Descriptor length beyond a complete list.
        let e = ModeParameters::parse(&hex!("0b 00 00 10 0000000000000200"), ModeForm::Six)
            .unwrap_err();
        assert_eq!(
            e,
            DataError::BlockDescriptorOverrun {
                length: 16,
                available: 8
            }
        );
        assert_eq!(e.parameter_list_sense(), (0x1A, 0x00));
    }

    #[test]
    fn test_bad_page_length() {
        let mut b = SENSE6;
        b[13] = 0x0A; // Caching page claiming the SCSI-2 length
        let e = ModeParameters::parse(&b, ModeForm::Six).unwrap_err();
        assert_eq!(
            e,
            DataError::BadModePageLength {
                page: 0x08,
                length: 0x0A,
                expected: 0x12
            }
        );
        assert_eq!(e.parameter_list_sense(), (0x26, 0x00));
        let mut b = SENSE6;
        b[33] = 0x0B;
        assert!(matches!(
            ModeParameters::parse(&b, ModeForm::Six),
            Err(DataError::BadModePageLength { page: 0x0A, .. })
        ));
        let mut b = SENSE6;
        b[45] = 0x09;
        assert!(matches!(
            ModeParameters::parse(&b, ModeForm::Six),
            Err(DataError::BadModePageLength { page: 0x1C, .. })
        ));
    }

    #[test]
    fn test_page_overrun() {
        // Mode data length 0x37 says 56 bytes, all present, but the IE page says 11 bytes.
        let mut b = SENSE6;
        b[44] = 0x19; // make it an unknown page so its length is free
        b[45] = 0x0B;
        assert_eq!(
            ModeParameters::parse(&b, ModeForm::Six),
            Err(DataError::ModePageOverrun {
                page: 0x19,
                offset: 44
            })
        );
        // A lone byte after the last page.
        let mut b = SENSE6.to_vec();
        b[0] += 1;
        b.push(0x19);
        assert_eq!(
            ModeParameters::parse(&b, ModeForm::Six),
            Err(DataError::ModePageOverrun {
                page: 0x19,
                offset: 56
            })
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(m in strategies::mode_parameters()) {
            let bytes = m.to_vec();
            prop_assert_eq!(bytes.len(), m.buffer_len());
            prop_assert_eq!(ModeParameters::parse(&bytes, m.form).unwrap(), m.clone());
            prop_assert_eq!(ModeParameters::parse_select(&bytes, m.form).unwrap(), m);
        }

        #[test]
        fn prop_page_round_trip(p in strategies::mode_page()) {
            let bytes = p.to_vec();
            prop_assert_eq!(ModePage::parse(&bytes).unwrap(), (p, bytes.len()));
        }
    }
}
