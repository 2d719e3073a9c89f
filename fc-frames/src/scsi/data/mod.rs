//! SCSI parameter data: what a disk or tape target returns in data-in (and the parameter lists an
//! initiator sends in data-out), as the FCP target's block engine builds it and the FCP initiator
//! parses it.
//!
//! | module | standard | what |
//! |---|---|---|
//! | [`inquiry`] | SPC-4 §6.6.2 | standard INQUIRY data, version descriptors |
//! | [`vpd`] | SPC-4 §7.8, SBC-3 §6.6 | VPD pages 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 |
//! | [`designator`] | SPC-4 §7.8.6.1 | designation descriptors of VPD pages 0x83 and 0xB2 |
//! | [`capacity`] | SBC-3 §5.16, §5.17 | READ CAPACITY(10)/(16) data, [`Capacity`] |
//! | [`luns`] | SPC-4 §6.33 | REPORT LUNS parameter data |
//! | [`mode`] | SPC-4 §7.5, SBC-3 §6.4 | MODE SENSE/SELECT parameters, Caching, Control, IE pages |
//! | [`tape`] | SSC-3 §7.7 | READ BLOCK LIMITS data |
//! | [`unmap`] | SBC-3 §5.28 | UNMAP parameter list |
//!
//! # Truncation
//!
//! A data-in buffer is cut at the command's allocation length: SPC-4's allocation length rule
//! has the device server stop there without telling, so an initiator that asked for less gets a
//! prefix. Each decoder says which prefixes it accepts (and reads what is there) and which it
//! rejects; in short: INQUIRY needs 36 bytes, VPD pages need their 4-byte header, READ CAPACITY(16)
//! needs 12 bytes, REPORT LUNS and MODE SENSE need their header and return the whole entries
//! present. Data-out parameter lists (UNMAP, MODE SELECT) are never truncated by the standard: a
//! list that does not hold what its own lengths say is an error, and
//! [`DataError::parameter_list_sense`] gives the additional sense code the device server returns.
//!
//! The byte layouts and bit positions here were written from memory of SPC-4 r37, SBC-3 r35 and
//! SSC-3 r05 (the standards' text was not at hand). Every layout was cross-checked with tshark
//! 4.0.17 by carrying the same CDBs and data in iSCSI PDUs (its FCP dissector does not link
//! FCP_DATA to FCP_CMND, so it does not decode SCSI data that FC carries); the Control page,
//! which that tshark decodes with an SPC-2 layout, against Linux LIO's `target_core_spc.c`;
//! version descriptor values against Wireshark's `scsi_verdesc_val` table.

use core::fmt;

use crate::error::LenError;

pub mod capacity;
pub mod designator;
pub mod inquiry;
pub mod luns;
pub mod mode;
pub mod tape;
pub mod unmap;
pub mod vpd;

pub use capacity::{
    Capacity, ReadCapacity10, ReadCapacity10Data, ReadCapacity16, ReadCapacity16Data,
};
pub use designator::{Association, CodeSet, Designator, DesignatorType, ProtocolId};
pub use inquiry::{Inquiry, InquiryData, InquiryFlags, SpcVersion, VersionDescriptor};
pub use luns::ReportLunsData;
pub use mode::{
    BlockDescriptors, CachingPage, ControlPage, DeviceSpecific, InformationalExceptionsPage,
    LongBlockDescriptor, ModeForm, ModePage, ModeParameters, ShortBlockDescriptor,
};
pub use tape::{ReadBlockLimits, ReadBlockLimitsData};
pub use unmap::{UnmapDescriptor, UnmapParameterList};
pub use vpd::{
    BlockDeviceCharacteristics, BlockLimits, LogicalBlockProvisioning, Vpd, VpdCode, VpdPage,
};

/// Errors decoding SCSI parameter data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The buffer is shorter than the structure's fixed part.
    #[error(transparent)]
    Len(#[from] LenError),
    /// Standard INQUIRY ADDITIONAL LENGTH below 31: the data would be shorter than 36 bytes.
    #[error(
        "INQUIRY additional length {0} is below 31 (standard INQUIRY data is at least 36 bytes)"
    )]
    BadInquiryAdditionalLength(u8),
    /// A designation descriptor of VPD page 0x83 (or 0xB2) runs past the page length.
    #[error("designation descriptor at page offset {offset} with designator length {length} runs past the page length {page_length}")]
    BadDesignatorLength {
        /// Offset of the descriptor in the page, from byte 0 of the page.
        offset: usize,
        /// Its DESIGNATOR LENGTH.
        length: u8,
        /// The PAGE LENGTH of the page.
        page_length: u16,
    },
    /// REPORT LUNS LUN LIST LENGTH that is not a multiple of 8.
    #[error("REPORT LUNS LUN list length {0} is not a multiple of 8")]
    BadLunListLength(u32),
    /// MODE DATA LENGTH that does not cover the rest of the mode parameter header.
    #[error("mode data length {0} is shorter than the mode parameter header")]
    BadModeDataLength(u16),
    /// BLOCK DESCRIPTOR LENGTH that is not a multiple of the descriptor size (8, or 16 with LONGLBA).
    #[error("block descriptor length {length} is not a multiple of {unit}")]
    BadBlockDescriptorLength {
        /// The BLOCK DESCRIPTOR LENGTH.
        length: u16,
        /// 8 (short descriptors) or 16 (LONGLBA).
        unit: u8,
    },
    /// BLOCK DESCRIPTOR LENGTH that runs past the mode data (or the parameter list).
    #[error("block descriptor length {length} runs past the mode data ({available} bytes after the header)")]
    BlockDescriptorOverrun {
        /// The BLOCK DESCRIPTOR LENGTH.
        length: u16,
        /// Bytes of mode data after the header.
        available: usize,
    },
    /// A typed mode page whose PAGE LENGTH is not the one its standard defines.
    #[error("mode page {page:#04x} length {length} is not {expected:#04x}")]
    BadModePageLength {
        /// Page code.
        page: u8,
        /// The PAGE LENGTH received.
        length: u16,
        /// The PAGE LENGTH the standard defines.
        expected: u16,
    },
    /// A mode page header or page that runs past the mode data (or the parameter list).
    #[error("mode page {page:#04x} at offset {offset} runs past the end of the mode data")]
    ModePageOverrun {
        /// Page code of the page that overruns.
        page: u8,
        /// Offset of the page from the start of the buffer.
        offset: usize,
    },
    /// UNMAP DATA LENGTH that runs past the parameter list.
    #[error("UNMAP data length {data_length} runs past the {list_length}-byte parameter list")]
    UnmapDataLengthOverrun {
        /// The UNMAP DATA LENGTH.
        data_length: u16,
        /// Bytes in the parameter list.
        list_length: usize,
    },
    /// UNMAP BLOCK DESCRIPTOR DATA LENGTH that runs past the parameter list.
    #[error("UNMAP block descriptor data length {descriptor_length} runs past the {list_length}-byte parameter list")]
    UnmapDescriptorLengthOverrun {
        /// The UNMAP BLOCK DESCRIPTOR DATA LENGTH.
        descriptor_length: u16,
        /// Bytes in the parameter list.
        list_length: usize,
    },
    /// UNMAP BLOCK DESCRIPTOR DATA LENGTH that is not a multiple of 16.
    #[error("UNMAP block descriptor data length {0} is not a multiple of 16")]
    BadUnmapDescriptorLength(u16),
    /// UNMAP BLOCK DESCRIPTOR DATA LENGTH larger than UNMAP DATA LENGTH allows (data length - 6).
    #[error("UNMAP block descriptor data length {descriptor_length} exceeds unmap data length {data_length} - 6")]
    UnmapLengthsInconsistent {
        /// The UNMAP BLOCK DESCRIPTOR DATA LENGTH.
        descriptor_length: u16,
        /// The UNMAP DATA LENGTH.
        data_length: u16,
    },
    /// A capacity with a logical block length of zero.
    #[error("logical block length is zero")]
    ZeroBlockSize,
    /// A capacity of zero logical blocks.
    #[error("capacity of zero logical blocks")]
    ZeroBlocks,
    /// READ CAPACITY(10) returned FFFFFFFFh: the capacity needs READ CAPACITY(16).
    #[error("READ CAPACITY(10) returned LBA ffffffff: use READ CAPACITY(16)")]
    NeedsReadCapacity16,
    /// READ CAPACITY(16) returned LBA 2^64-1: the block count does not fit in 64 bits.
    #[error("returned LBA {0:#x} gives a block count beyond 2^64-1")]
    CapacityOverflow(u64),
}

impl DataError {
    /// The (ASC, ASCQ) a device server reports, with sense key ILLEGAL REQUEST, when a data-out
    /// parameter list (MODE SELECT, UNMAP) fails to parse with this error:
    /// PARAMETER LIST LENGTH ERROR (0x1A/0x00) when the list is shorter than its own header or
    /// lengths say (SPC-4 §6.11: a parameter list length that truncates a header, descriptor or
    /// page), INVALID FIELD IN PARAMETER LIST (0x26/0x00) for a bad field value.
    pub fn parameter_list_sense(&self) -> (u8, u8) {
        const LENGTH_ERROR: (u8, u8) = (0x1A, 0x00);
        const INVALID_FIELD: (u8, u8) = (0x26, 0x00);
        match self {
            DataError::Len(_)
            | DataError::BlockDescriptorOverrun { .. }
            | DataError::ModePageOverrun { .. }
            | DataError::UnmapDataLengthOverrun { .. }
            | DataError::UnmapDescriptorLengthOverrun { .. } => LENGTH_ERROR,
            _ => INVALID_FIELD,
        }
    }
}

code_point! {
    /// PERIPHERAL DEVICE TYPE (SPC-4 Table 140): five bits. Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct DeviceType(pub u8) {
        /// Direct access block device (SBC-3): a disk.
        DIRECT_ACCESS = 0x00 => "direct-access",
        /// Sequential access device (SSC-3): a tape drive.
        SEQUENTIAL_ACCESS = 0x01 => "sequential-access",
        /// Printer (obsolete).
        PRINTER = 0x02 => "printer",
        /// Processor device (SPC-2).
        PROCESSOR = 0x03 => "processor",
        /// Write-once device (SBC).
        WRITE_ONCE = 0x04 => "write-once",
        /// CD/DVD device (MMC-5).
        CD_DVD = 0x05 => "cd/dvd",
        /// Optical memory device (SBC).
        OPTICAL_MEMORY = 0x07 => "optical-memory",
        /// Media changer (SMC-3).
        MEDIUM_CHANGER = 0x08 => "medium-changer",
        /// Storage array controller (SCC-2).
        STORAGE_ARRAY_CONTROLLER = 0x0C => "storage-array-controller",
        /// Enclosure services device (SES-2).
        ENCLOSURE_SERVICES = 0x0D => "enclosure-services",
        /// Simplified direct access device (RBC).
        SIMPLIFIED_DIRECT_ACCESS = 0x0E => "simplified-direct-access",
        /// Optical card reader/writer (OCRW).
        OPTICAL_CARD = 0x0F => "optical-card",
        /// Object-based storage device (OSD-2).
        OBJECT_STORAGE = 0x11 => "object-storage",
        /// Automation/drive interface (ADC-2).
        AUTOMATION_DRIVE_INTERFACE = 0x12 => "automation-drive-interface",
        /// Well known logical unit.
        WELL_KNOWN_LU = 0x1E => "well-known-lu",
        /// Unknown or no device type (with qualifier 3: no logical unit here).
        UNKNOWN = 0x1F => "unknown-type",
    }

    /// The type's name, if this is a known code.
    pub const fn name;
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "type{:#04x}", self.0),
        }
    }
}

/// PERIPHERAL QUALIFIER (SPC-4 Table 139): three bits. Open: any value is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PeripheralQualifier(pub u8);

impl PeripheralQualifier {
    /// 000b: a device of the given type is connected to this logical unit.
    pub const CONNECTED: PeripheralQualifier = PeripheralQualifier(0);
    /// 001b: the device server can support the type, but no device is connected now.
    pub const NOT_CONNECTED: PeripheralQualifier = PeripheralQualifier(1);
    /// 011b: the device server cannot support a device at this logical unit (no such LUN).
    pub const NOT_CAPABLE: PeripheralQualifier = PeripheralQualifier(3);
}

/// Byte 0 of INQUIRY data and of every VPD page: PERIPHERAL QUALIFIER (bits 7-5) and PERIPHERAL
/// DEVICE TYPE (bits 4-0).
///
/// Kept as the wire byte, so any value is representable and none is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Peripheral(u8);

impl Peripheral {
    /// A connected direct access block device (disk): `0x00`.
    pub const DISK: Peripheral = Peripheral(0x00);
    /// A connected sequential access device (tape): `0x01`.
    pub const TAPE: Peripheral = Peripheral(0x01);
    /// No logical unit at this LUN: qualifier 011b, type 0x1F, `0x7F` (SPC-4 §6.6.2).
    pub const NO_LUN: Peripheral = Peripheral(0x7F);

    /// Builds the byte; bits of `qualifier` above 3 and of `device_type` above 5 are dropped.
    pub const fn new(qualifier: PeripheralQualifier, device_type: DeviceType) -> Peripheral {
        Peripheral((qualifier.0 & 0x07) << 5 | (device_type.0 & 0x1F))
    }

    /// From the wire byte.
    pub const fn from_byte(b: u8) -> Peripheral {
        Peripheral(b)
    }

    /// The wire byte.
    pub const fn to_byte(self) -> u8 {
        self.0
    }

    /// PERIPHERAL QUALIFIER, bits 7-5.
    pub const fn qualifier(self) -> PeripheralQualifier {
        PeripheralQualifier(self.0 >> 5)
    }

    /// PERIPHERAL DEVICE TYPE, bits 4-0.
    pub const fn device_type(self) -> DeviceType {
        DeviceType(self.0 & 0x1F)
    }
}

/// The device type, and the qualifier when it is not 0 (`direct-access`, `unknown-type pq=3`).
impl fmt::Display for Peripheral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.device_type())?;
        if self.qualifier() != PeripheralQualifier::CONNECTED {
            write!(f, " pq={}", self.qualifier().0)?;
        }
        Ok(())
    }
}

/// An SPC-4 §4.4.1 ASCII data field of `N` bytes from text: left-aligned, padded with spaces,
/// cut at `N` bytes; any byte outside the graphic range 0x20-0x7E becomes `?` (the standard
/// allows only graphic codes there).
pub fn ascii_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = if (0x20..=0x7E).contains(&b) { b } else { b'?' };
    }
    out
}

/// An ASCII field shown as text: trailing spaces and NULs trimmed, any non-graphic byte as `.`.
pub(crate) fn ascii_text(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    bytes
        .iter()
        .take(end)
        .map(|&b| {
            if (0x20..=0x7E).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Copies up to `N` bytes of `buf` into a zeroed array: the fixed-size image of a structure
/// whose tail an allocation length may have cut, with the missing bytes read as zero.
pub(crate) fn zero_padded<const N: usize>(buf: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = buf.len().min(N);
    // Both ranges are `..n` with n <= N and n <= buf.len().
    out[..n].copy_from_slice(&buf[..n]);
    out
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;

    prop_compose! {
        /// Any peripheral byte.
        pub(crate) fn peripheral()(b in any::<u8>()) -> Peripheral {
            Peripheral::from_byte(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::error::Layer;

    #[test]
    fn test_peripheral() {
        let p = Peripheral::new(PeripheralQualifier::NOT_CAPABLE, DeviceType::UNKNOWN);
        assert_eq!(p, Peripheral::NO_LUN);
        assert_eq!(p.to_byte(), 0x7F);
        assert_eq!(p.qualifier(), PeripheralQualifier::NOT_CAPABLE);
        assert_eq!(p.device_type(), DeviceType::UNKNOWN);
        assert_eq!(p.to_string(), "unknown-type pq=3");
        assert_eq!(Peripheral::DISK.to_string(), "direct-access");
        assert_eq!(Peripheral::from_byte(0x01), Peripheral::TAPE);
        assert_eq!(
            Peripheral::new(PeripheralQualifier(0xFF), DeviceType(0xFF)).to_byte(),
            0xFF
        );
        assert_eq!(DeviceType(0x1B).to_string(), "type0x1b");
        assert_eq!(DeviceType::CD_DVD.to_string(), "cd/dvd");
    }

    #[test]
    fn test_ascii_field() {
        assert_eq!(&ascii_field::<8>("FCSAN"), b"FCSAN   ");
        assert_eq!(&ascii_field::<4>("0.1.23"), b"0.1.");
        assert_eq!(&ascii_field::<4>("a\u{e9}"), b"a?? ");
        assert_eq!(ascii_text(b"FCSAN   "), "FCSAN");
        assert_eq!(ascii_text(b"a\x01b\0\0"), "a.b");
        assert_eq!(ascii_text(b"    "), "");
    }

    #[test]
    fn test_parameter_list_sense() {
        let len = DataError::Len(LenError {
            layer: Layer::ScsiData,
            required: 8,
            actual: 3,
        });
        assert_eq!(len.parameter_list_sense(), (0x1A, 0x00));
        assert_eq!(
            DataError::BadUnmapDescriptorLength(17).parameter_list_sense(),
            (0x26, 0x00)
        );
        assert_eq!(
            DataError::ModePageOverrun { page: 8, offset: 4 }.parameter_list_sense(),
            (0x1A, 0x00)
        );
    }

    proptest! {
        /// Arbitrary bytes never panic any decoder in this module tree.
        #[test]
        fn prop_decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = InquiryData::parse(&buf);
            if let Ok(v) = Inquiry::new_checked(&buf[..]) {
                let _ = (v.flags(), v.vendor(), v.version_descriptor(7));
            }
            let _ = Vpd::parse(&buf);
            let _ = VpdPage::parse(&buf);
            let _ = ReadCapacity10Data::parse(&buf);
            let _ = ReadCapacity16Data::parse(&buf);
            let _ = ReportLunsData::parse(&buf);
            let _ = ModeParameters::parse(&buf, ModeForm::Six);
            let _ = ModeParameters::parse(&buf, ModeForm::Ten);
            let _ = ModeParameters::parse_select(&buf, ModeForm::Six);
            let _ = ModeParameters::parse_select(&buf, ModeForm::Ten);
            let _ = ReadBlockLimitsData::parse(&buf);
            let _ = UnmapParameterList::parse(&buf);
            let _ = Designator::parse(&buf);
            let _ = ModePage::parse(&buf);
            if let Ok(v) = ReadCapacity16::new_checked(&buf[..]) {
                let _ = (v.returned_lba(), v.lowest_aligned_lba());
            }
            if let Ok(v) = vpd::VpdHeader::new_checked(&buf[..]) {
                let _ = (v.page(), v.is_complete());
            }
            if let Ok(m) = ModeParameters::parse(&buf, ModeForm::Ten) {
                let _ = m.to_string();
            }
            if let Ok(v) = Vpd::parse(&buf) {
                let _ = v.to_string();
            }
        }
    }
}
