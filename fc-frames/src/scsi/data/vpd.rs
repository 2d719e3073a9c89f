//! Vital product data pages (SPC-4 §7.8; block device pages SBC-3 §6.6), returned by INQUIRY with
//! EVPD set.
//!
//! Every page starts with the same 4-byte header:
//!
//! ```text
//!  byte  7   6   5   4   3   2   1   0
//!   0   | PQ (7-5)  | DEVICE TYPE (4-0) |
//!   1   |            PAGE CODE          |
//!  2-3  |     PAGE LENGTH (n-3), BE     |
//!  4-n  |          page contents        |
//! ```
//!
//! Typed here: 0x00 supported VPD pages, 0x80 unit serial number, 0x83 device identification,
//! and, for block devices (device type 0x00, 0x04, 0x07, 0x14), 0xB0 block limits, 0xB1 block
//! device characteristics, 0xB2 logical block provisioning. Page codes 0xB0-0xBF mean other
//! things for other device types (0xB0 is "sequential-access device capabilities" on a tape), so
//! those pages of a non-block device are [`VpdPage::Unknown`], as is every other page.
//!
//! Truncation rule for [`Vpd::parse`]: the 4-byte header is required; the page is read from the
//! bytes present up to the PAGE LENGTH. In 0x00 and 0x80 that is what is there; in 0x83 (and the
//! 0xB2 provisioning group descriptor) the whole designation descriptors present; in the
//! fixed-layout pages 0xB0, 0xB1, 0xB2 fields that are not present read as zero, which SBC-3
//! defines as "not reported" / "no limit" for each of them (older targets also return a 0xB0 page
//! of length 0x0C, which this reads the same way). A designation descriptor that runs past a
//! PAGE LENGTH whose bytes are all present is an error.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::designator::{parse_designators, Designator};
use crate::scsi::data::{ascii_text, zero_padded, DataError, DeviceType, Peripheral};
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

mod field {
    use crate::wire::Field;

    pub const PERIPHERAL: usize = 0;
    pub const PAGE_CODE: usize = 1;
    pub const PAGE_LENGTH: Field = 2..4;
}

/// Bytes of the common VPD page header.
pub const HEADER_LEN: usize = 4;
/// PAGE LENGTH of the 0xB0 and 0xB1 pages (SBC-3).
pub const FIXED_PAGE_LENGTH: u16 = 0x3C;

code_point! {
    /// VPD PAGE CODE (SPC-4 Table 589). Open newtype.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct VpdCode(pub u8) {
        /// Supported VPD pages.
        SUPPORTED_PAGES = 0x00 => "supported pages",
        /// Unit serial number.
        UNIT_SERIAL_NUMBER = 0x80 => "unit serial number",
        /// Device identification.
        DEVICE_IDENTIFICATION = 0x83 => "device identification",
        /// Software interface identification.
        SOFTWARE_INTERFACE = 0x84 => "software interface identification",
        /// Management network addresses.
        MANAGEMENT_NETWORK = 0x85 => "management network addresses",
        /// Extended INQUIRY data.
        EXTENDED_INQUIRY = 0x86 => "extended inquiry data",
        /// Mode page policy.
        MODE_PAGE_POLICY = 0x87 => "mode page policy",
        /// SCSI ports.
        SCSI_PORTS = 0x88 => "scsi ports",
        /// ATA information (SAT).
        ATA_INFORMATION = 0x89 => "ata information",
        /// Power condition.
        POWER_CONDITION = 0x8A => "power condition",
        /// Third-party copy.
        THIRD_PARTY_COPY = 0x8F => "third-party copy",
        /// Block limits (SBC-3; block devices only).
        BLOCK_LIMITS = 0xB0 => "block limits",
        /// Block device characteristics (SBC-3; block devices only).
        BLOCK_DEVICE_CHARACTERISTICS = 0xB1 => "block device characteristics",
        /// Logical block provisioning (SBC-3; block devices only).
        LOGICAL_BLOCK_PROVISIONING = 0xB2 => "logical block provisioning",
        /// Referrals (SBC-3; block devices only).
        REFERRALS = 0xB3 => "referrals",
    }

    /// The page's name, if known (0xB0-0xB3 named as the SBC-3 pages).
    pub const fn name;
}

/// Two hex digits (`b0`), the way page lists are usually shown.
impl fmt::Display for VpdCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// True for the device types whose 0xB0-0xB2 pages are SBC-3's.
fn is_block_device(t: DeviceType) -> bool {
    matches!(t.0, 0x00 | 0x04 | 0x07 | 0x14)
}

/// A view over the 4-byte VPD page header and whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpdHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VpdHeader<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> VpdHeader<T> {
        VpdHeader { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<VpdHeader<T>, LenError> {
        LenError::check(Layer::ScsiData, HEADER_LEN, buffer.as_ref().len())?;
        Ok(VpdHeader { buffer })
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Byte 0: qualifier and device type.
    pub fn peripheral(&self) -> Peripheral {
        Peripheral::from_byte(self.buffer.as_ref()[field::PERIPHERAL])
    }

    /// PAGE CODE.
    pub fn page_code(&self) -> VpdCode {
        VpdCode(self.buffer.as_ref()[field::PAGE_CODE])
    }

    /// PAGE LENGTH: bytes after the header.
    pub fn page_length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAGE_LENGTH.start)
    }

    /// The page's bytes present, header included, bounded by the PAGE LENGTH.
    pub fn page(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = buf.len().min(HEADER_LEN + usize::from(self.page_length()));
        &buf[..end]
    }

    /// True when all PAGE LENGTH bytes are present (the response was not cut short).
    pub fn is_complete(&self) -> bool {
        self.buffer.as_ref().len() >= HEADER_LEN + usize::from(self.page_length())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VpdHeader<T> {
    /// Sets byte 0.
    pub fn set_peripheral(&mut self, p: Peripheral) {
        self.buffer.as_mut()[field::PERIPHERAL] = p.to_byte();
    }

    /// Sets PAGE CODE.
    pub fn set_page_code(&mut self, c: VpdCode) {
        self.buffer.as_mut()[field::PAGE_CODE] = c.0;
    }

    /// Sets PAGE LENGTH.
    pub fn set_page_length(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::PAGE_LENGTH.start, len);
    }
}

bitflags::bitflags! {
    /// Byte 8 of the block device characteristics page. Other bits (SBC-4 ZONED 0x30, BOCS
    /// 0x04) are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct BdcFlags: u8 {
        /// FUA behavior: FUA and SYNCHRONIZE CACHE make data durable the same way.
        const FUAB = 0x02;
        /// Verify byte check unmapped LBA supported.
        const VBULS = 0x01;
    }
}

bitflags::bitflags! {
    /// Byte 5 of the logical block provisioning page. Other bits (SBC-4 widens LBPRZ to bits
    /// 4-2) are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct LbpFlags: u8 {
        /// UNMAP supported.
        const LBPU = 0x80;
        /// WRITE SAME(16) with UNMAP supported.
        const LBPWS = 0x40;
        /// WRITE SAME(10) with UNMAP supported.
        const LBPWS10 = 0x20;
        /// Unmapped blocks read as zero.
        const LBPRZ = 0x04;
        /// ANCHOR supported.
        const ANC_SUP = 0x02;
        /// A provisioning group descriptor follows.
        const DP = 0x01;
    }
}

/// MEDIUM ROTATION RATE (SBC-3 Table 136). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RotationRate(pub u16);

impl RotationRate {
    /// Not reported.
    pub const NOT_REPORTED: RotationRate = RotationRate(0x0000);
    /// Non-rotating medium (solid state).
    pub const NON_ROTATING: RotationRate = RotationRate(0x0001);

    /// Revolutions per minute, for 0x0401..=0xFFFE.
    pub fn rpm(self) -> Option<u16> {
        (0x0401..=0xFFFE).contains(&self.0).then_some(self.0)
    }
}

/// `non-rotating`, `7200rpm`, `not-reported`, `reserved(0x0002)`.
impl fmt::Display for RotationRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (*self, self.rpm()) {
            (RotationRate::NOT_REPORTED, _) => f.write_str("not-reported"),
            (RotationRate::NON_ROTATING, _) => f.write_str("non-rotating"),
            (_, Some(r)) => write!(f, "{r}rpm"),
            (RotationRate(r), None) => write!(f, "reserved({r:#06x})"),
        }
    }
}

/// NOMINAL FORM FACTOR (SBC-3 Table 138): four bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FormFactor(pub u8);

impl FormFactor {
    /// Not reported.
    pub const NOT_REPORTED: FormFactor = FormFactor(0);
    /// 5.25 inch.
    pub const INCH_5_25: FormFactor = FormFactor(1);
    /// 3.5 inch.
    pub const INCH_3_5: FormFactor = FormFactor(2);
    /// 2.5 inch.
    pub const INCH_2_5: FormFactor = FormFactor(3);
    /// 1.8 inch.
    pub const INCH_1_8: FormFactor = FormFactor(4);
    /// Less than 1.8 inch.
    pub const BELOW_1_8: FormFactor = FormFactor(5);
}

impl fmt::Display for FormFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormFactor::NOT_REPORTED => f.write_str("not-reported"),
            FormFactor::INCH_5_25 => f.write_str("5.25in"),
            FormFactor::INCH_3_5 => f.write_str("3.5in"),
            FormFactor::INCH_2_5 => f.write_str("2.5in"),
            FormFactor::INCH_1_8 => f.write_str("1.8in"),
            FormFactor::BELOW_1_8 => f.write_str("<1.8in"),
            FormFactor(x) => write!(f, "form{x}"),
        }
    }
}

/// PROVISIONING TYPE (SBC-3 Table 142): three bits. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProvisioningType(pub u8);

impl ProvisioningType {
    /// Fully provisioned (or not reported).
    pub const FULL: ProvisioningType = ProvisioningType(0);
    /// Resource provisioned.
    pub const RESOURCE: ProvisioningType = ProvisioningType(1);
    /// Thin provisioned.
    pub const THIN: ProvisioningType = ProvisioningType(2);
}

impl fmt::Display for ProvisioningType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProvisioningType::FULL => f.write_str("full"),
            ProvisioningType::RESOURCE => f.write_str("resource"),
            ProvisioningType::THIN => f.write_str("thin"),
            ProvisioningType(x) => write!(f, "ptype{x}"),
        }
    }
}

/// Block limits VPD page 0xB0 (SBC-3 §6.6.4), PAGE LENGTH 0x3C. Zero means "not reported" or
/// "no limit" in every field. Transfer lengths count logical blocks.
///
/// ```text
///  4     reserved | WSNZ        5     MAXIMUM COMPARE AND WRITE LENGTH
///  6-7   OPTIMAL TRANSFER LENGTH GRANULARITY
///  8-11  MAXIMUM TRANSFER LENGTH       12-15 OPTIMAL TRANSFER LENGTH
///  16-19 MAXIMUM PREFETCH LENGTH       20-23 MAXIMUM UNMAP LBA COUNT
///  24-27 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT   28-31 OPTIMAL UNMAP GRANULARITY
///  32-35 UGAVALID (bit 31) | UNMAP GRANULARITY ALIGNMENT (30-0)
///  36-43 MAXIMUM WRITE SAME LENGTH     44-63 reserved (SBC-4 atomic limits; not kept)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockLimits {
    /// WSNZ: WRITE SAME with a number of blocks of zero is rejected.
    pub wsnz: bool,
    /// MAXIMUM COMPARE AND WRITE LENGTH (0: COMPARE AND WRITE not supported).
    pub max_compare_and_write_length: u8,
    /// OPTIMAL TRANSFER LENGTH GRANULARITY.
    pub optimal_transfer_length_granularity: u16,
    /// MAXIMUM TRANSFER LENGTH.
    pub max_transfer_length: u32,
    /// OPTIMAL TRANSFER LENGTH.
    pub optimal_transfer_length: u32,
    /// MAXIMUM PREFETCH LENGTH.
    pub max_prefetch_length: u32,
    /// MAXIMUM UNMAP LBA COUNT (0: UNMAP not supported).
    pub max_unmap_lba_count: u32,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
    pub max_unmap_block_descriptor_count: u32,
    /// OPTIMAL UNMAP GRANULARITY.
    pub optimal_unmap_granularity: u32,
    /// UNMAP GRANULARITY ALIGNMENT (31 bits) when UGAVALID is set.
    pub unmap_granularity_alignment: Option<u32>,
    /// MAXIMUM WRITE SAME LENGTH.
    pub max_write_same_length: u64,
}

impl BlockLimits {
    fn parse(page: &[u8]) -> BlockLimits {
        let p: [u8; 64] = zero_padded(page);
        let uga = be32(&p, 32);
        BlockLimits {
            wsnz: p[4] & 0x01 != 0,
            max_compare_and_write_length: p[5],
            optimal_transfer_length_granularity: be16(&p, 6),
            max_transfer_length: be32(&p, 8),
            optimal_transfer_length: be32(&p, 12),
            max_prefetch_length: be32(&p, 16),
            max_unmap_lba_count: be32(&p, 20),
            max_unmap_block_descriptor_count: be32(&p, 24),
            optimal_unmap_granularity: be32(&p, 28),
            unmap_granularity_alignment: (uga & 0x8000_0000 != 0).then_some(uga & 0x7FFF_FFFF),
            max_write_same_length: be64(&p, 36),
        }
    }

    /// Writes the 60 bytes after the header.
    fn emit(&self, page: &mut [u8]) {
        page[4] = u8::from(self.wsnz);
        page[5] = self.max_compare_and_write_length;
        put_be16(page, 6, self.optimal_transfer_length_granularity);
        put_be32(page, 8, self.max_transfer_length);
        put_be32(page, 12, self.optimal_transfer_length);
        put_be32(page, 16, self.max_prefetch_length);
        put_be32(page, 20, self.max_unmap_lba_count);
        put_be32(page, 24, self.max_unmap_block_descriptor_count);
        put_be32(page, 28, self.optimal_unmap_granularity);
        let uga = self
            .unmap_granularity_alignment
            .map_or(0, |a| 0x8000_0000 | a & 0x7FFF_FFFF);
        put_be32(page, 32, uga);
        put_be64(page, 36, self.max_write_same_length);
        page[44..64].fill(0);
    }
}

/// Block device characteristics VPD page 0xB1 (SBC-3 §6.6.2; PRODUCT TYPE from SBC-4),
/// PAGE LENGTH 0x3C.
///
/// ```text
///  4-5  MEDIUM ROTATION RATE        6  PRODUCT TYPE
///  7    WABEREQ (7-6) | WACEREQ (5-4) | NOMINAL FORM FACTOR (3-0)
///  8    reserved/ZONED | FUAB (1) | VBULS (0)      9-63 reserved
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BlockDeviceCharacteristics {
    /// MEDIUM ROTATION RATE.
    pub rotation_rate: RotationRate,
    /// PRODUCT TYPE (0 not indicated).
    pub product_type: u8,
    /// WABEREQ (low two bits emitted).
    pub wabereq: u8,
    /// WACEREQ (low two bits emitted).
    pub wacereq: u8,
    /// NOMINAL FORM FACTOR (low four bits emitted).
    pub form_factor: FormFactor,
    /// Byte 8.
    pub flags: BdcFlags,
}

impl BlockDeviceCharacteristics {
    /// A solid state device (non-rotating), form factor not reported.
    pub const SSD: BlockDeviceCharacteristics = BlockDeviceCharacteristics {
        rotation_rate: RotationRate::NON_ROTATING,
        product_type: 0,
        wabereq: 0,
        wacereq: 0,
        form_factor: FormFactor::NOT_REPORTED,
        flags: BdcFlags::empty(),
    };

    /// SBC-4 ZONED field (bits 5-4 of byte 8).
    pub fn zoned(&self) -> u8 {
        (self.flags.bits() >> 4) & 0x03
    }

    fn parse(page: &[u8]) -> BlockDeviceCharacteristics {
        let p: [u8; 9] = zero_padded(page);
        BlockDeviceCharacteristics {
            rotation_rate: RotationRate(be16(&p, 4)),
            product_type: p[6],
            wabereq: p[7] >> 6,
            wacereq: (p[7] >> 4) & 0x03,
            form_factor: FormFactor(p[7] & 0x0F),
            flags: BdcFlags::from_bits_retain(p[8]),
        }
    }

    fn emit(&self, page: &mut [u8]) {
        put_be16(page, 4, self.rotation_rate.0);
        page[6] = self.product_type;
        page[7] =
            (self.wabereq & 0x03) << 6 | (self.wacereq & 0x03) << 4 | (self.form_factor.0 & 0x0F);
        page[8] = self.flags.bits();
        page[9..64].fill(0);
    }
}

/// Logical block provisioning VPD page 0xB2 (SBC-3 §6.6.5; percentages from SBC-4).
///
/// ```text
///  4  THRESHOLD EXPONENT
///  5  LBPU | LBPWS | LBPWS10 | res | res | LBPRZ | ANC_SUP | DP
///  6  MINIMUM PERCENTAGE (7-3) | PROVISIONING TYPE (2-0)
///  7  THRESHOLD PERCENTAGE
///  8- provisioning group descriptor (a designation descriptor), if DP
/// ```
/// PAGE LENGTH is 4 without a descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LogicalBlockProvisioning {
    /// THRESHOLD EXPONENT.
    pub threshold_exponent: u8,
    /// Byte 5.
    pub flags: LbpFlags,
    /// MINIMUM PERCENTAGE (low five bits emitted).
    pub minimum_percentage: u8,
    /// PROVISIONING TYPE (low three bits emitted).
    pub provisioning_type: ProvisioningType,
    /// THRESHOLD PERCENTAGE.
    pub threshold_percentage: u8,
    /// Provisioning group descriptor; emitted when present (set [`LbpFlags::DP`] with it).
    pub provisioning_group: Option<Designator>,
}

impl LogicalBlockProvisioning {
    fn parse(page: &[u8], complete: bool, page_length: u16) -> Result<Self, DataError> {
        let p: [u8; 8] = zero_padded(page);
        let descriptors = match page.get(8..) {
            Some(rest) => parse_designators(rest, 8, complete, page_length)?,
            None => Vec::new(),
        };
        Ok(LogicalBlockProvisioning {
            threshold_exponent: p[4],
            flags: LbpFlags::from_bits_retain(p[5]),
            minimum_percentage: p[6] >> 3,
            provisioning_type: ProvisioningType(p[6] & 0x07),
            threshold_percentage: p[7],
            provisioning_group: descriptors.into_iter().next(),
        })
    }

    fn body_len(&self) -> usize {
        4 + self
            .provisioning_group
            .as_ref()
            .map_or(0, Designator::buffer_len)
    }

    fn emit(&self, page: &mut [u8]) {
        page[4] = self.threshold_exponent;
        page[5] = self.flags.bits();
        page[6] = (self.minimum_percentage & 0x1F) << 3 | (self.provisioning_type.0 & 0x07);
        page[7] = self.threshold_percentage;
        if let Some(d) = &self.provisioning_group {
            d.emit(&mut page[8..]);
        }
    }
}

/// Bytes the whole designators that fit in a 65535-byte page take.
fn designators_len(v: &[Designator]) -> usize {
    v.iter()
        .map(Designator::buffer_len)
        .scan(0usize, |total, n| {
            *total += n;
            (*total <= usize::from(u16::MAX)).then_some(*total)
        })
        .last()
        .unwrap_or(0)
}

/// The contents of a VPD page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VpdPage {
    /// 0x00: the page codes the logical unit supports, in ascending order.
    SupportedPages(Vec<VpdCode>),
    /// 0x80: PRODUCT SERIAL NUMBER, ASCII (kept as sent).
    UnitSerialNumber(Vec<u8>),
    /// 0x83: designation descriptors.
    DeviceIdentification(Vec<Designator>),
    /// 0xB0 (block devices).
    BlockLimits(BlockLimits),
    /// 0xB1 (block devices).
    BlockDeviceCharacteristics(BlockDeviceCharacteristics),
    /// 0xB2 (block devices).
    LogicalBlockProvisioning(LogicalBlockProvisioning),
    /// Any other page, or 0xB0-0xBF of a non-block device: the bytes after the header.
    Unknown {
        /// PAGE CODE.
        code: VpdCode,
        /// The page contents present (at most 65535 are emitted).
        bytes: Vec<u8>,
    },
}

impl VpdPage {
    /// The 0x00 page listing `pages` and itself, ascending, without duplicates.
    pub fn supported_pages(pages: &[VpdPage]) -> VpdPage {
        VpdPage::supported_pages_from_codes(pages.iter().map(VpdPage::code))
    }

    /// The 0x00 page listing `codes` and 0x00, ascending, without duplicates.
    pub fn supported_pages_from_codes(codes: impl IntoIterator<Item = VpdCode>) -> VpdPage {
        let mut v: Vec<VpdCode> = core::iter::once(VpdCode::SUPPORTED_PAGES)
            .chain(codes)
            .collect();
        v.sort_unstable();
        v.dedup();
        VpdPage::SupportedPages(v)
    }

    /// A 0x80 page from text (non-graphic bytes become `?`; cut at 65535 bytes).
    pub fn serial_number(s: &str) -> VpdPage {
        VpdPage::UnitSerialNumber(
            s.bytes()
                .take(usize::from(u16::MAX))
                .map(|b| if (0x20..=0x7E).contains(&b) { b } else { b'?' })
                .collect(),
        )
    }

    /// The page code.
    pub fn code(&self) -> VpdCode {
        match self {
            VpdPage::SupportedPages(_) => VpdCode::SUPPORTED_PAGES,
            VpdPage::UnitSerialNumber(_) => VpdCode::UNIT_SERIAL_NUMBER,
            VpdPage::DeviceIdentification(_) => VpdCode::DEVICE_IDENTIFICATION,
            VpdPage::BlockLimits(_) => VpdCode::BLOCK_LIMITS,
            VpdPage::BlockDeviceCharacteristics(_) => VpdCode::BLOCK_DEVICE_CHARACTERISTICS,
            VpdPage::LogicalBlockProvisioning(_) => VpdCode::LOGICAL_BLOCK_PROVISIONING,
            VpdPage::Unknown { code, .. } => *code,
        }
    }

    /// Parses a whole page (header included) and drops byte 0; see [`Vpd::parse`].
    pub fn parse(buf: &[u8]) -> Result<VpdPage, DataError> {
        Vpd::parse(buf).map(|v| v.page)
    }

    /// Bytes after the header: the PAGE LENGTH emitted (at most 65535).
    pub fn page_length(&self) -> u16 {
        let n = match self {
            VpdPage::SupportedPages(v) => v.len(),
            VpdPage::UnitSerialNumber(v) => v.len(),
            VpdPage::DeviceIdentification(v) => designators_len(v),
            VpdPage::BlockLimits(_) | VpdPage::BlockDeviceCharacteristics(_) => {
                usize::from(FIXED_PAGE_LENGTH)
            }
            VpdPage::LogicalBlockProvisioning(l) => l.body_len(),
            VpdPage::Unknown { bytes, .. } => bytes.len(),
        };
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    /// Header plus page.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + usize::from(self.page_length())
    }

    /// Writes the page with `peripheral` in byte 0. Variable parts beyond a 65535-byte page are
    /// dropped (whole descriptors). Panics if `buf` is shorter than [`VpdPage::buffer_len`].
    pub fn emit(&self, peripheral: Peripheral, buf: &mut [u8]) {
        let len = usize::from(self.page_length());
        let page = &mut buf[..HEADER_LEN + len];
        let mut header = VpdHeader::new_unchecked(&mut *page);
        header.set_peripheral(peripheral);
        header.set_page_code(self.code());
        header.set_page_length(self.page_length());
        let body = &mut page[HEADER_LEN..];
        match self {
            VpdPage::SupportedPages(v) => {
                for (o, c) in body.iter_mut().zip(v) {
                    *o = c.0;
                }
            }
            VpdPage::UnitSerialNumber(b) | VpdPage::Unknown { bytes: b, .. } => {
                body.copy_from_slice(&b[..len]);
            }
            VpdPage::DeviceIdentification(v) => {
                let mut at = 0;
                for d in v {
                    let n = d.buffer_len();
                    if at + n > len {
                        break;
                    }
                    d.emit(&mut body[at..at + n]);
                    at += n;
                }
            }
            VpdPage::BlockLimits(b) => b.emit(page),
            VpdPage::BlockDeviceCharacteristics(b) => b.emit(page),
            VpdPage::LogicalBlockProvisioning(l) => l.emit(page),
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self, peripheral: Peripheral) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(peripheral, &mut v);
        v
    }
}

/// `VPD 0x00 supported pages [00 80 83 b0]`, `VPD 0x80 serial=ABC123`, ...
impl fmt::Display for VpdPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        write!(f, "VPD {:#04x}", code.0)?;
        match self {
            VpdPage::SupportedPages(v) => {
                f.write_str(" supported pages [")?;
                for (i, c) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("]")
            }
            VpdPage::UnitSerialNumber(s) => write!(f, " serial={}", ascii_text(s)),
            VpdPage::DeviceIdentification(v) => {
                f.write_str(" device identification")?;
                for d in v {
                    write!(f, " {d}")?;
                }
                Ok(())
            }
            VpdPage::BlockLimits(b) => {
                write!(
                    f,
                    " block limits max_xfer={} opt_xfer={} gran={} max_unmap={} max_unmap_desc={} max_ws={}",
                    b.max_transfer_length,
                    b.optimal_transfer_length,
                    b.optimal_transfer_length_granularity,
                    b.max_unmap_lba_count,
                    b.max_unmap_block_descriptor_count,
                    b.max_write_same_length
                )
            }
            VpdPage::BlockDeviceCharacteristics(b) => {
                write!(
                    f,
                    " block device characteristics rotation={} form={}",
                    b.rotation_rate, b.form_factor
                )?;
                if b.flags.contains(BdcFlags::FUAB) {
                    f.write_str(" fuab")?;
                }
                Ok(())
            }
            VpdPage::LogicalBlockProvisioning(l) => {
                write!(f, " logical block provisioning {}", l.provisioning_type)?;
                for (flag, name) in [
                    (LbpFlags::LBPU, "lbpu"),
                    (LbpFlags::LBPWS, "lbpws"),
                    (LbpFlags::LBPWS10, "lbpws10"),
                    (LbpFlags::LBPRZ, "lbprz"),
                    (LbpFlags::ANC_SUP, "anc_sup"),
                    (LbpFlags::DP, "dp"),
                ] {
                    if l.flags.contains(flag) {
                        write!(f, " {name}")?;
                    }
                }
                Ok(())
            }
            VpdPage::Unknown { bytes, .. } => match code.name() {
                Some(n) => write!(f, " {n} ({} bytes)", bytes.len()),
                None => write!(f, " ({} bytes)", bytes.len()),
            },
        }
    }
}

/// A whole VPD page as INQUIRY with EVPD returns it: byte 0 and the page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vpd {
    /// Byte 0: qualifier and device type of the logical unit.
    pub peripheral: Peripheral,
    /// The page.
    pub page: VpdPage,
}

impl Vpd {
    /// Parses a VPD page; see the module docs for the truncation rule.
    pub fn parse(buf: &[u8]) -> Result<Vpd, DataError> {
        let header = VpdHeader::new_checked(buf)?;
        let peripheral = header.peripheral();
        let code = header.page_code();
        let page_length = header.page_length();
        let complete = header.is_complete();
        let page = header.page();
        // page.len() >= HEADER_LEN: new_checked saw that many and page() keeps at least them.
        let body = &page[HEADER_LEN..];
        let block = is_block_device(peripheral.device_type());
        let page = match code {
            VpdCode::SUPPORTED_PAGES => {
                VpdPage::SupportedPages(body.iter().map(|&c| VpdCode(c)).collect())
            }
            VpdCode::UNIT_SERIAL_NUMBER => VpdPage::UnitSerialNumber(body.to_vec()),
            VpdCode::DEVICE_IDENTIFICATION => VpdPage::DeviceIdentification(parse_designators(
                body,
                HEADER_LEN,
                complete,
                page_length,
            )?),
            VpdCode::BLOCK_LIMITS if block => VpdPage::BlockLimits(BlockLimits::parse(page)),
            VpdCode::BLOCK_DEVICE_CHARACTERISTICS if block => {
                VpdPage::BlockDeviceCharacteristics(BlockDeviceCharacteristics::parse(page))
            }
            VpdCode::LOGICAL_BLOCK_PROVISIONING if block => VpdPage::LogicalBlockProvisioning(
                LogicalBlockProvisioning::parse(page, complete, page_length)?,
            ),
            code => VpdPage::Unknown {
                code,
                bytes: body.to_vec(),
            },
        };
        Ok(Vpd { peripheral, page })
    }

    /// Header plus page.
    pub fn buffer_len(&self) -> usize {
        self.page.buffer_len()
    }

    /// Writes the page. Panics if `buf` is shorter than [`Vpd::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        self.page.emit(self.peripheral, buf);
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.page.to_vec(self.peripheral)
    }
}

/// The page's summary; the peripheral is added when it is not a connected disk.
impl fmt::Display for Vpd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.page)?;
        if self.peripheral != Peripheral::DISK {
            write!(f, " ({})", self.peripheral)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;
    use crate::scsi::data::designator::strategies::designator;

    prop_compose! {
        fn block_limits()(
            a in any::<(bool, u8, u16, u32, u32, u32)>(),
            b in any::<(u32, u32, u32, Option<u32>, u64)>(),
        ) -> BlockLimits {
            BlockLimits {
                wsnz: a.0,
                max_compare_and_write_length: a.1,
                optimal_transfer_length_granularity: a.2,
                max_transfer_length: a.3,
                optimal_transfer_length: a.4,
                max_prefetch_length: a.5,
                max_unmap_lba_count: b.0,
                max_unmap_block_descriptor_count: b.1,
                optimal_unmap_granularity: b.2,
                unmap_granularity_alignment: b.3.map(|x| x & 0x7FFF_FFFF),
                max_write_same_length: b.4,
            }
        }
    }

    prop_compose! {
        fn bdc()(
            rate in any::<u16>(),
            product_type in any::<u8>(),
            wabereq in 0u8..4,
            wacereq in 0u8..4,
            form in 0u8..16,
            flags in any::<u8>(),
        ) -> BlockDeviceCharacteristics {
            BlockDeviceCharacteristics {
                rotation_rate: RotationRate(rate),
                product_type,
                wabereq,
                wacereq,
                form_factor: FormFactor(form),
                flags: BdcFlags::from_bits_retain(flags),
            }
        }
    }

    prop_compose! {
        fn lbp()(
            threshold_exponent in any::<u8>(),
            flags in any::<u8>(),
            minimum_percentage in 0u8..32,
            ptype in 0u8..8,
            threshold_percentage in any::<u8>(),
            provisioning_group in proptest::option::of(designator()),
        ) -> LogicalBlockProvisioning {
            LogicalBlockProvisioning {
                threshold_exponent,
                flags: LbpFlags::from_bits_retain(flags),
                minimum_percentage,
                provisioning_type: ProvisioningType(ptype),
                threshold_percentage,
                provisioning_group,
            }
        }
    }

    /// A page and a peripheral it round-trips with (SBC pages need a block device type).
    pub(crate) fn vpd() -> impl Strategy<Value = Vpd> {
        let block = prop_oneof![Just(0x00u8), Just(0x04), Just(0x07), Just(0x14)];
        let sbc = prop_oneof![
            block_limits().prop_map(VpdPage::BlockLimits),
            bdc().prop_map(VpdPage::BlockDeviceCharacteristics),
            lbp().prop_map(VpdPage::LogicalBlockProvisioning),
        ];
        let spc = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300)
                .prop_map(|v| VpdPage::SupportedPages(v.into_iter().map(VpdCode).collect())),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(VpdPage::UnitSerialNumber),
            proptest::collection::vec(designator(), 0..6).prop_map(VpdPage::DeviceIdentification),
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300))
                .prop_filter("typed page codes", |(c, _)| {
                    !matches!(c, 0x00 | 0x80 | 0x83 | 0xB0..=0xB2)
                })
                .prop_map(|(c, bytes)| VpdPage::Unknown {
                    code: VpdCode(c),
                    bytes
                }),
        ];
        prop_oneof![
            (0u8..8, block, sbc).prop_map(|(q, t, page)| Vpd {
                peripheral: Peripheral::from_byte(q << 5 | t),
                page
            }),
            (any::<u8>(), spc).prop_map(|(p, page)| Vpd {
                peripheral: Peripheral::from_byte(p),
                page
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::addr::Wwn;
    use crate::scsi::data::designator::Association;

    static SUPPORTED: [u8; 10] = hex!("00 00 0006 00 80 83 b0 b1 b2");
    static SERIAL: [u8; 12] = hex!("00 80 0008 46 43 30 30 30 30 30 31");
    /// LU NAA 6 (16 bytes), target port name, relative target port 1, target port group 2.
    static DEVID: [u8; 52] = hex!(
        "00 83 0030"
        "01 03 00 10 60 01 40 50 00 00 00 00 00 00 00 00 00 00 00 01"
        "01 93 00 08 21 00 00 24 ff 00 00 01"
        "01 94 00 04 00 00 00 01"
        "01 95 00 04 00 00 00 02"
    );
    static BLOCK_LIMITS: [u8; 64] = hex!(
        "00 b0 003c"
        "01 01 0008 00000800 00000080 00000000"
        "ffffffff 00000040 00000008 80000000"
        "0000000000010000"
        "00000000000000000000 00000000000000000000"
    );
    static BDC: [u8; 64] = hex!(
        "00 b1 003c"
        "0001 00 03 02"
        "00000000000000000000 00000000000000000000"
        "00000000000000000000 00000000000000000000"
        "00000000000000000000 0000000000"
    );
    static LBP: [u8; 8] = hex!("00 b2 0004 00 e4 02 00");

    fn device_identification() -> VpdPage {
        VpdPage::DeviceIdentification(vec![
            Designator::lu_naa_extended(hex!("6001405000000000 0000000000000001")),
            Designator::target_port_name(Wwn(hex!("21000024ff000001"))),
            Designator::relative_target_port(1),
            Designator::target_port_group(2),
        ])
    }

    fn block_limits() -> BlockLimits {
        BlockLimits {
            wsnz: true,
            max_compare_and_write_length: 1,
            optimal_transfer_length_granularity: 8,
            max_transfer_length: 0x800,
            optimal_transfer_length: 0x80,
            max_prefetch_length: 0,
            max_unmap_lba_count: 0xFFFF_FFFF,
            max_unmap_block_descriptor_count: 0x40,
            optimal_unmap_granularity: 8,
            unmap_granularity_alignment: Some(0),
            max_write_same_length: 0x10000,
        }
    }

    fn bdc() -> BlockDeviceCharacteristics {
        BlockDeviceCharacteristics {
            form_factor: FormFactor::INCH_2_5,
            flags: BdcFlags::FUAB,
            ..BlockDeviceCharacteristics::SSD
        }
    }

    fn lbp() -> LogicalBlockProvisioning {
        LogicalBlockProvisioning {
            flags: LbpFlags::LBPU | LbpFlags::LBPWS | LbpFlags::LBPWS10 | LbpFlags::LBPRZ,
            provisioning_type: ProvisioningType::THIN,
            ..LogicalBlockProvisioning::default()
        }
    }

    #[test]
    fn test_parse() {
        let v = Vpd::parse(&SUPPORTED).unwrap();
        assert_eq!(v.peripheral, Peripheral::DISK);
        assert_eq!(
            v.page,
            VpdPage::SupportedPages([0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2].map(VpdCode).to_vec())
        );
        assert_eq!(
            VpdPage::parse(&SERIAL).unwrap(),
            VpdPage::UnitSerialNumber(b"FC000001".to_vec())
        );
        let id = VpdPage::parse(&DEVID).unwrap();
        assert_eq!(id, device_identification());
        let VpdPage::DeviceIdentification(ds) = &id else {
            panic!("{id:?}")
        };
        assert_eq!(ds[1].naa_wwn(), Some(Wwn(hex!("21000024ff000001"))));
        assert_eq!(ds[1].association, Association::TARGET_PORT);
        assert!(ds[1].piv);
        assert_eq!(ds[2].relative_port(), Some(1));
        assert_eq!(ds[3].port_group(), Some(2));
        assert_eq!(ds[0].naa_wwn(), None);
        assert_eq!(
            VpdPage::parse(&BLOCK_LIMITS).unwrap(),
            VpdPage::BlockLimits(block_limits())
        );
        assert_eq!(
            VpdPage::parse(&BDC).unwrap(),
            VpdPage::BlockDeviceCharacteristics(bdc())
        );
        assert_eq!(
            VpdPage::parse(&LBP).unwrap(),
            VpdPage::LogicalBlockProvisioning(lbp())
        );
    }

    #[test]
    fn test_emit() {
        let pages = [
            (
                VpdPage::supported_pages(&[
                    VpdPage::LogicalBlockProvisioning(lbp()),
                    VpdPage::serial_number("FC000001"),
                    device_identification(),
                    VpdPage::BlockLimits(block_limits()),
                    VpdPage::BlockDeviceCharacteristics(bdc()),
                ]),
                &SUPPORTED[..],
            ),
            (VpdPage::serial_number("FC000001"), &SERIAL[..]),
            (device_identification(), &DEVID[..]),
            (VpdPage::BlockLimits(block_limits()), &BLOCK_LIMITS[..]),
            (VpdPage::BlockDeviceCharacteristics(bdc()), &BDC[..]),
            (VpdPage::LogicalBlockProvisioning(lbp()), &LBP[..]),
        ];
        for (page, bytes) in pages {
            assert_eq!(page.to_vec(Peripheral::DISK), bytes, "{page}");
            assert_eq!(VpdPage::parse(bytes).unwrap(), page);
        }
    }

    #[test]
    fn test_display() {
        let s = |b: &[u8]| Vpd::parse(b).unwrap().to_string();
        assert_eq!(
            s(&SUPPORTED),
            "VPD 0x00 supported pages [00 80 83 b0 b1 b2]"
        );
        assert_eq!(s(&SERIAL), "VPD 0x80 serial=FC000001");
        assert_eq!(
            s(&DEVID),
            "VPD 0x83 device identification naa.60014050000000000000000000000001 \
             naa.21000024ff000001@port rtp=1@port tpg=2@port"
        );
        assert_eq!(
            s(&BLOCK_LIMITS),
            "VPD 0xb0 block limits max_xfer=2048 opt_xfer=128 gran=8 max_unmap=4294967295 \
             max_unmap_desc=64 max_ws=65536"
        );
        assert_eq!(
            s(&BDC),
            "VPD 0xb1 block device characteristics rotation=non-rotating form=2.5in fuab"
        );
        assert_eq!(
            s(&LBP),
            "VPD 0xb2 logical block provisioning thin lbpu lbpws lbpws10 lbprz"
        );
        let tape_b0 = Vpd::parse(&hex!("01 b0 0002 00 01")).unwrap();
        assert_eq!(
            tape_b0.page,
            VpdPage::Unknown {
                code: VpdCode::BLOCK_LIMITS,
                bytes: vec![0, 1]
            }
        );
        assert_eq!(
            tape_b0.to_string(),
            "VPD 0xb0 block limits (2 bytes) (sequential-access)"
        );
        assert_eq!(s(&hex!("00 c5 0001 ff")), "VPD 0xc5 (1 bytes)");
    }

    #[test]
    fn test_rotation_rate() {
        assert_eq!(RotationRate(7200).rpm(), Some(7200));
        assert_eq!(RotationRate(7200).to_string(), "7200rpm");
        assert_eq!(RotationRate(0x0400).rpm(), None);
        assert_eq!(RotationRate(0xFFFF).rpm(), None);
        assert_eq!(RotationRate(2).to_string(), "reserved(0x0002)");
        assert_eq!(RotationRate::NOT_REPORTED.to_string(), "not-reported");
    }

    #[test]
    fn test_bad_designator_length() {
        // The last descriptor says 5 bytes but the page holds 4 after its header.
        let mut b = DEVID;
        b[47] = 5;
        assert_eq!(
            VpdPage::parse(&b),
            Err(DataError::BadDesignatorLength {
                offset: 44,
                length: 5,
                page_length: 0x30
            })
        );
        // A page length that leaves 2 stray bytes after the last descriptor.
        let mut b = DEVID.to_vec();
        b[3] += 2;
        b.extend([0x01, 0x03]);
        assert_eq!(
            VpdPage::parse(&b),
            Err(DataError::BadDesignatorLength {
                offset: 52,
                length: 0,
                page_length: 0x32
            })
        );
    }

    #[test]
    fn test_truncation() {
        for page in [&SUPPORTED[..], &SERIAL, &DEVID, &BLOCK_LIMITS, &BDC, &LBP] {
            for len in 0..HEADER_LEN {
                assert!(matches!(Vpd::parse(&page[..len]), Err(DataError::Len(_))));
            }
        }
        // 0x83 cut at 30 bytes keeps the one whole descriptor.
        let VpdPage::DeviceIdentification(ds) = VpdPage::parse(&DEVID[..30]).unwrap() else {
            panic!()
        };
        assert_eq!(ds.len(), 1);
        for len in HEADER_LEN..DEVID.len() {
            let VpdPage::DeviceIdentification(ds) = VpdPage::parse(&DEVID[..len]).unwrap() else {
                panic!()
            };
            let whole = [24, 36, 44, 52].iter().filter(|&&end| end <= len).count();
            assert_eq!(ds.len(), whole, "{len}");
        }
        // 0xB0 cut at 16 bytes (or an old 0x0C-length page): the rest reads as "not reported".
        let VpdPage::BlockLimits(b) = VpdPage::parse(&BLOCK_LIMITS[..16]).unwrap() else {
            panic!()
        };
        assert_eq!(b.max_transfer_length, 0x800);
        assert_eq!(b.optimal_transfer_length, 0x80);
        assert_eq!(b.max_unmap_lba_count, 0);
        assert_eq!(b.max_write_same_length, 0);
        // 0x80 cut: the serial number present.
        assert_eq!(
            VpdPage::parse(&SERIAL[..7]).unwrap(),
            VpdPage::UnitSerialNumber(b"FC0".to_vec())
        );
    }

    #[test]
    fn test_lbp_with_provisioning_group() {
        let l = LogicalBlockProvisioning {
            flags: LbpFlags::LBPU | LbpFlags::DP,
            provisioning_group: Some(Designator::lu_naa(Wwn(hex!("5000000000000002")))),
            ..lbp()
        };
        let page = VpdPage::LogicalBlockProvisioning(l);
        let bytes = page.to_vec(Peripheral::DISK);
        assert_eq!(
            bytes,
            hex!("00 b2 0010 00 81 02 00 01 03 00 08 5000000000000002")
        );
        assert_eq!(VpdPage::parse(&bytes).unwrap(), page);
        // Truncated in the descriptor: the descriptor is dropped, the rest kept.
        let VpdPage::LogicalBlockProvisioning(t) = VpdPage::parse(&bytes[..12]).unwrap() else {
            panic!()
        };
        assert_eq!(t.provisioning_group, None);
        assert_eq!(t.flags, LbpFlags::LBPU | LbpFlags::DP);
        // Complete but inconsistent: an error.
        let mut bad = bytes.clone();
        bad[11] = 9;
        assert!(matches!(
            VpdPage::parse(&bad),
            Err(DataError::BadDesignatorLength { offset: 8, .. })
        ));
    }

    #[test]
    fn test_supported_pages_helper() {
        let p = VpdPage::supported_pages_from_codes([VpdCode(0xB2), VpdCode(0x83), VpdCode(0x83)]);
        assert_eq!(
            p,
            VpdPage::SupportedPages([0x00, 0x83, 0xB2].map(VpdCode).to_vec())
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(v in strategies::vpd()) {
            let bytes = v.to_vec();
            prop_assert_eq!(bytes.len(), v.buffer_len());
            prop_assert_eq!(Vpd::parse(&bytes).unwrap(), v);
        }
    }
}
