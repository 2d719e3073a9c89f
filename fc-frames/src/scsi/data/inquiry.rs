//! Standard INQUIRY data (SPC-4 §6.6.2).
//!
//! ```text
//!  byte  7      6      5      4      3      2      1      0
//!   0   | PERIPHERAL QUALIFIER |   PERIPHERAL DEVICE TYPE            |
//!   1   | RMB  |LU_CONG|                reserved                      |
//!   2   |                        VERSION                              |
//!   3   |  obsolete   |NORMACA|HISUP |  RESPONSE DATA FORMAT (2)      |
//!   4   |                 ADDITIONAL LENGTH (n-4)                     |
//!   5   | SCCS | ACC  |    TPGS     | 3PC  |   reserved  |PROTECT|
//!   6   | obs  |ENCSERV| VS  |MULTIP| obs  |  obs  | obs  | obs  |
//!   7   | obs  | obs  | obs  | obs  | obs  |  obs  |CMDQUE| VS   |
//!  8-15 |            T10 VENDOR IDENTIFICATION (ASCII)                |
//! 16-31 |              PRODUCT IDENTIFICATION (ASCII)                 |
//! 32-35 |             PRODUCT REVISION LEVEL (ASCII)                  |
//! 36-55 |                     vendor specific                         |
//! 56-57 |          reserved (SPI: CLOCKING, QAS, IUS)                 |
//! 58-73 |        VERSION DESCRIPTOR 1..8 (2 bytes each)               |
//! 74-95 |                       reserved                              |
//! ```
//!
//! Emitted in the 96-byte form (ADDITIONAL LENGTH 91) so that the version descriptors fit; an
//! initiator that allocates 36 bytes gets the mandatory part.
//!
//! Truncation rule for [`InquiryData::parse`]: at least 36 bytes are required (the standard says
//! standard INQUIRY data holds at least 36 bytes, and initiators allocate at least that much);
//! version descriptors are read only where wholly present, both in the buffer and within the
//! ADDITIONAL LENGTH. Vendor-specific bytes 36-55 and 96.. are not kept.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::{ascii_field, ascii_text, DataError, Peripheral};
use crate::wire::{be16, put_be16};

mod field {
    use crate::wire::Field;

    pub const PERIPHERAL: usize = 0;
    /// RMB 0x80, LU_CONG 0x40.
    pub const RMB: usize = 1;
    pub const VERSION: usize = 2;
    /// NORMACA 0x20, HISUP 0x10, RESPONSE DATA FORMAT 0x0F.
    pub const FORMAT: usize = 3;
    pub const ADDITIONAL_LENGTH: usize = 4;
    /// SCCS 0x80, ACC 0x40, TPGS 0x30, 3PC 0x08, PROTECT 0x01.
    pub const FLAGS5: usize = 5;
    /// ENCSERV 0x40, VS 0x20, MULTIP 0x10.
    pub const FLAGS6: usize = 6;
    /// CMDQUE 0x02, VS 0x01.
    pub const FLAGS7: usize = 7;
    pub const VENDOR: Field = 8..16;
    pub const PRODUCT: Field = 16..32;
    pub const REVISION: Field = 32..36;
    pub const VERSION_DESCRIPTORS: usize = 58;
}

/// Bytes of standard INQUIRY data every device server returns (SPC-4 §6.6.2).
pub const MIN_LEN: usize = 36;
/// Bytes of the form [`InquiryData::emit`] writes: through the last reserved byte 95.
pub const FULL_LEN: usize = 96;
/// Version descriptor slots (bytes 58-73).
pub const MAX_VERSION_DESCRIPTORS: usize = 8;

code_point! {
    /// VERSION (byte 2): the SPC standard the device server claims. Open newtype.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct SpcVersion(pub u8) {
        /// No standard claimed.
        NONE = 0x00 => "no-standard",
        /// SPC (ANSI INCITS 301-1997).
        SPC = 0x03 => "SPC",
        /// SPC-2.
        SPC_2 = 0x04 => "SPC-2",
        /// SPC-3.
        SPC_3 = 0x05 => "SPC-3",
        /// SPC-4.
        SPC_4 = 0x06 => "SPC-4",
        /// SPC-5.
        SPC_5 = 0x07 => "SPC-5",
    }

    /// The standard's name, if known.
    pub const fn name;
}

impl fmt::Display for SpcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "version{:#04x}", self.0),
        }
    }
}

/// A VERSION DESCRIPTOR (SPC-4 Table 144): a standard and, in the low five bits, its revision.
/// The `..._` constants are the "no version claimed" codes. Open newtype.
///
/// Values checked against Wireshark's `scsi_verdesc_val` table (the SPC-4 table itself was not
/// at hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VersionDescriptor(pub u16);

impl VersionDescriptor {
    /// SAM-4.
    pub const SAM_4: VersionDescriptor = VersionDescriptor(0x0080);
    /// SAM-5.
    pub const SAM_5: VersionDescriptor = VersionDescriptor(0x00A0);
    /// SPC-3.
    pub const SPC_3: VersionDescriptor = VersionDescriptor(0x0300);
    /// SBC-2.
    pub const SBC_2: VersionDescriptor = VersionDescriptor(0x0320);
    /// SSC-2.
    pub const SSC_2: VersionDescriptor = VersionDescriptor(0x0360);
    /// SSC-3.
    pub const SSC_3: VersionDescriptor = VersionDescriptor(0x0400);
    /// SPC-4.
    pub const SPC_4: VersionDescriptor = VersionDescriptor(0x0460);
    /// SBC-3.
    pub const SBC_3: VersionDescriptor = VersionDescriptor(0x04C0);
    /// SSC-4.
    pub const SSC_4: VersionDescriptor = VersionDescriptor(0x0520);
    /// SPC-5.
    pub const SPC_5: VersionDescriptor = VersionDescriptor(0x05C0);
    /// SBC-4.
    pub const SBC_4: VersionDescriptor = VersionDescriptor(0x0600);
    /// FCP-2.
    pub const FCP_2: VersionDescriptor = VersionDescriptor(0x0900);
    /// FCP-3.
    pub const FCP_3: VersionDescriptor = VersionDescriptor(0x0A00);
    /// FCP-4.
    pub const FCP_4: VersionDescriptor = VersionDescriptor(0x0A40);

    /// The standard the descriptor names (its code with the revision bits 4-0 cleared), if known.
    pub fn standard(self) -> Option<&'static str> {
        Some(match VersionDescriptor(self.0 & !0x1F) {
            VersionDescriptor::SAM_4 => "SAM-4",
            VersionDescriptor::SAM_5 => "SAM-5",
            VersionDescriptor::SPC_3 => "SPC-3",
            VersionDescriptor::SBC_2 => "SBC-2",
            VersionDescriptor::SSC_2 => "SSC-2",
            VersionDescriptor::SSC_3 => "SSC-3",
            VersionDescriptor::SPC_4 => "SPC-4",
            VersionDescriptor::SBC_3 => "SBC-3",
            VersionDescriptor::SSC_4 => "SSC-4",
            VersionDescriptor::SPC_5 => "SPC-5",
            VersionDescriptor::SBC_4 => "SBC-4",
            VersionDescriptor::FCP_2 => "FCP-2",
            VersionDescriptor::FCP_3 => "FCP-3",
            VersionDescriptor::FCP_4 => "FCP-4",
            _ => return None,
        })
    }
}

/// `SPC-4` for a "no version claimed" code, `SPC-4(0x0466)` for a revision, hex otherwise.
impl fmt::Display for VersionDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.standard() {
            Some(s) if self.0 & 0x1F == 0 => f.write_str(s),
            Some(s) => write!(f, "{s}({:#06x})", self.0),
            None => write!(f, "{:#06x}", self.0),
        }
    }
}

bitflags::bitflags! {
    /// The one-bit fields of bytes 1, 3, 5, 6 and 7, packed as
    /// `byte1 << 32 | byte3 << 24 | byte5 << 16 | byte6 << 8 | byte7`, with the multi-bit fields
    /// (RESPONSE DATA FORMAT, TPGS) left out. Obsolete and vendor-specific bits are kept as data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InquiryFlags: u64 {
        /// Removable medium.
        const RMB = 0x80 << 32;
        /// Logical unit conglomerate.
        const LU_CONG = 0x40 << 32;
        /// NACA bit in the CONTROL byte supported.
        const NORMACA = 0x20 << 24;
        /// Hierarchical LUN addressing supported.
        const HISUP = 0x10 << 24;
        /// Embedded storage array controller.
        const SCCS = 0x80 << 16;
        /// Access controls coordinator.
        const ACC = 0x40 << 16;
        /// Third-party copy (EXTENDED COPY) supported.
        const TPC = 0x08 << 16;
        /// Protection information supported.
        const PROTECT = 0x01 << 16;
        /// Embedded enclosure services.
        const ENCSERV = 0x40 << 8;
        /// Multiple SCSI ports.
        const MULTIP = 0x10 << 8;
        /// Command queuing (the full task management model) supported.
        const CMDQUE = 0x02;
    }
}

impl InquiryFlags {
    /// The bits that travel on the wire: five bytes less RESPONSE DATA FORMAT and TPGS.
    pub const WIRE_BITS: u64 = 0xFF_FFFF_FFFF & !(0x0F << 24 | 0x30 << 16);
}

/// A view over standard INQUIRY data (at least [`MIN_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inquiry<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Inquiry<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Inquiry<T> {
        Inquiry { buffer }
    }

    /// Wraps a buffer of at least [`MIN_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Inquiry<T>, LenError> {
        LenError::check(Layer::ScsiData, MIN_LEN, buffer.as_ref().len())?;
        Ok(Inquiry { buffer })
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref()[at]
    }

    /// Byte 0: qualifier and device type.
    pub fn peripheral(&self) -> Peripheral {
        Peripheral::from_byte(self.byte(field::PERIPHERAL))
    }

    /// VERSION.
    pub fn version(&self) -> SpcVersion {
        SpcVersion(self.byte(field::VERSION))
    }

    /// RESPONSE DATA FORMAT (2 in SPC-2 and later).
    pub fn response_data_format(&self) -> u8 {
        self.byte(field::FORMAT) & 0x0F
    }

    /// ADDITIONAL LENGTH: bytes after byte 4.
    pub fn additional_length(&self) -> u8 {
        self.byte(field::ADDITIONAL_LENGTH)
    }

    /// TPGS: 0 no ALUA, 1 implicit, 2 explicit, 3 both.
    pub fn tpgs(&self) -> u8 {
        (self.byte(field::FLAGS5) >> 4) & 0x03
    }

    /// The one-bit fields.
    pub fn flags(&self) -> InquiryFlags {
        let b = |i| u64::from(self.byte(i));
        let raw = b(field::RMB) << 32
            | b(field::FORMAT) << 24
            | b(field::FLAGS5) << 16
            | b(field::FLAGS6) << 8
            | b(field::FLAGS7);
        InquiryFlags::from_bits_retain(raw & InquiryFlags::WIRE_BITS)
    }

    /// T10 VENDOR IDENTIFICATION, 8 ASCII bytes.
    pub fn vendor(&self) -> &[u8] {
        &self.buffer.as_ref()[field::VENDOR]
    }

    /// PRODUCT IDENTIFICATION, 16 ASCII bytes.
    pub fn product(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PRODUCT]
    }

    /// PRODUCT REVISION LEVEL, 4 ASCII bytes.
    pub fn revision(&self) -> &[u8] {
        &self.buffer.as_ref()[field::REVISION]
    }

    /// Version descriptor `i` (0..8), if the buffer holds it (it may be zero: unused).
    pub fn version_descriptor(&self, i: usize) -> Option<VersionDescriptor> {
        if i >= MAX_VERSION_DESCRIPTORS {
            return None;
        }
        let at = field::VERSION_DESCRIPTORS + 2 * i;
        let buf = self.buffer.as_ref();
        (buf.len() >= at + 2).then(|| VersionDescriptor(be16(buf, at)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Inquiry<T> {
    fn byte_mut(&mut self, at: usize) -> &mut u8 {
        &mut self.buffer.as_mut()[at]
    }

    /// Sets byte 0.
    pub fn set_peripheral(&mut self, p: Peripheral) {
        *self.byte_mut(field::PERIPHERAL) = p.to_byte();
    }

    /// Sets VERSION.
    pub fn set_version(&mut self, v: SpcVersion) {
        *self.byte_mut(field::VERSION) = v.0;
    }

    /// Sets RESPONSE DATA FORMAT (low four bits of `v`).
    pub fn set_response_data_format(&mut self, v: u8) {
        let b = self.byte_mut(field::FORMAT);
        *b = *b & 0xF0 | v & 0x0F;
    }

    /// Sets ADDITIONAL LENGTH.
    pub fn set_additional_length(&mut self, v: u8) {
        *self.byte_mut(field::ADDITIONAL_LENGTH) = v;
    }

    /// Sets TPGS (low two bits of `v`).
    pub fn set_tpgs(&mut self, v: u8) {
        let b = self.byte_mut(field::FLAGS5);
        *b = *b & !0x30 | (v & 0x03) << 4;
    }

    /// Sets the one-bit fields, keeping RESPONSE DATA FORMAT and TPGS.
    pub fn set_flags(&mut self, flags: InquiryFlags) {
        let raw = flags.bits() & InquiryFlags::WIRE_BITS;
        // Truncating casts pick out one byte each.
        let byte = |shift: u32| (raw >> shift) as u8;
        *self.byte_mut(field::RMB) = byte(32);
        let b3 = self.byte_mut(field::FORMAT);
        *b3 = *b3 & 0x0F | byte(24);
        let b5 = self.byte_mut(field::FLAGS5);
        *b5 = *b5 & 0x30 | byte(16);
        *self.byte_mut(field::FLAGS6) = byte(8);
        *self.byte_mut(field::FLAGS7) = byte(0);
    }

    /// Sets T10 VENDOR IDENTIFICATION.
    pub fn set_vendor(&mut self, v: &[u8; 8]) {
        self.buffer.as_mut()[field::VENDOR].copy_from_slice(v);
    }

    /// Sets PRODUCT IDENTIFICATION.
    pub fn set_product(&mut self, v: &[u8; 16]) {
        self.buffer.as_mut()[field::PRODUCT].copy_from_slice(v);
    }

    /// Sets PRODUCT REVISION LEVEL.
    pub fn set_revision(&mut self, v: &[u8; 4]) {
        self.buffer.as_mut()[field::REVISION].copy_from_slice(v);
    }

    /// Sets version descriptor `i` (0..8). Panics if `i >= 8` or the buffer is shorter than 74.
    pub fn set_version_descriptor(&mut self, i: usize, v: VersionDescriptor) {
        assert!(i < MAX_VERSION_DESCRIPTORS);
        put_be16(
            self.buffer.as_mut(),
            field::VERSION_DESCRIPTORS + 2 * i,
            v.0,
        );
    }
}

/// Standard INQUIRY data, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InquiryData {
    /// Qualifier and device type.
    pub peripheral: Peripheral,
    /// VERSION.
    pub version: SpcVersion,
    /// RESPONSE DATA FORMAT (low four bits emitted); SPC-2 and later require 2.
    pub response_data_format: u8,
    /// The one-bit fields.
    pub flags: InquiryFlags,
    /// TPGS (low two bits emitted): 0 no ALUA, 1 implicit, 2 explicit, 3 both.
    pub tpgs: u8,
    /// T10 VENDOR IDENTIFICATION (ASCII, space padded; see [`ascii_field`]).
    pub vendor: [u8; 8],
    /// PRODUCT IDENTIFICATION.
    pub product: [u8; 16],
    /// PRODUCT REVISION LEVEL.
    pub revision: [u8; 4],
    /// Non-zero version descriptors, in order; at most [`MAX_VERSION_DESCRIPTORS`] are emitted.
    pub version_descriptors: Vec<VersionDescriptor>,
}

impl InquiryData {
    /// SPC-4 data with response data format 2, HISUP and CMDQUE, no version descriptors.
    pub fn new(peripheral: Peripheral, vendor: &str, product: &str, revision: &str) -> InquiryData {
        InquiryData {
            peripheral,
            version: SpcVersion::SPC_4,
            response_data_format: 2,
            flags: InquiryFlags::HISUP | InquiryFlags::CMDQUE,
            tpgs: 0,
            vendor: ascii_field(vendor),
            product: ascii_field(product),
            revision: ascii_field(revision),
            version_descriptors: Vec::new(),
        }
    }

    /// A disk: [`InquiryData::new`] claiming SAM-5, SPC-4, SBC-3 and FCP-4.
    pub fn disk(vendor: &str, product: &str, revision: &str) -> InquiryData {
        InquiryData {
            version_descriptors: vec![
                VersionDescriptor::SAM_5,
                VersionDescriptor::SPC_4,
                VersionDescriptor::SBC_3,
                VersionDescriptor::FCP_4,
            ],
            ..InquiryData::new(Peripheral::DISK, vendor, product, revision)
        }
    }

    /// A tape drive: [`InquiryData::new`] claiming SAM-5, SPC-4, SSC-3 and FCP-4.
    pub fn tape(vendor: &str, product: &str, revision: &str) -> InquiryData {
        InquiryData {
            version_descriptors: vec![
                VersionDescriptor::SAM_5,
                VersionDescriptor::SPC_4,
                VersionDescriptor::SSC_3,
                VersionDescriptor::FCP_4,
            ],
            ..InquiryData::new(Peripheral::TAPE, vendor, product, revision)
        }
    }

    /// Parses standard INQUIRY data; see the module docs for the truncation rule.
    pub fn parse(buf: &[u8]) -> Result<InquiryData, DataError> {
        let view = Inquiry::new_checked(buf)?;
        let additional = view.additional_length();
        // SPC-4: standard INQUIRY data shall contain at least 36 bytes, so the additional length
        // is at least 31.
        if usize::from(additional) < MIN_LEN - 5 {
            return Err(DataError::BadInquiryAdditionalLength(additional));
        }
        let end = buf.len().min(5 + usize::from(additional));
        let version_descriptors = (0..MAX_VERSION_DESCRIPTORS)
            .map_while(|i| {
                let at = field::VERSION_DESCRIPTORS + 2 * i;
                (at + 2 <= end).then(|| VersionDescriptor(be16(buf, at)))
            })
            .filter(|d| d.0 != 0)
            .collect();
        let mut vendor = [0u8; 8];
        vendor.copy_from_slice(view.vendor());
        let mut product = [0u8; 16];
        product.copy_from_slice(view.product());
        let mut revision = [0u8; 4];
        revision.copy_from_slice(view.revision());
        Ok(InquiryData {
            peripheral: view.peripheral(),
            version: view.version(),
            response_data_format: view.response_data_format(),
            flags: view.flags(),
            tpgs: view.tpgs(),
            vendor,
            product,
            revision,
            version_descriptors,
        })
    }

    /// Always [`FULL_LEN`] (96).
    pub fn buffer_len(&self) -> usize {
        FULL_LEN
    }

    /// Writes the 96-byte form, ADDITIONAL LENGTH 91, reserved and vendor-specific bytes zero.
    /// Panics if `buf` is shorter than [`InquiryData::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..FULL_LEN];
        buf.fill(0);
        let mut view = Inquiry::new_unchecked(buf);
        view.set_peripheral(self.peripheral);
        view.set_version(self.version);
        view.set_flags(self.flags);
        view.set_response_data_format(self.response_data_format);
        view.set_tpgs(self.tpgs);
        // FULL_LEN - 5 = 91 fits in the byte.
        view.set_additional_length((FULL_LEN - 5) as u8);
        view.set_vendor(&self.vendor);
        view.set_product(&self.product);
        view.set_revision(&self.revision);
        for (i, d) in self
            .version_descriptors
            .iter()
            .take(MAX_VERSION_DESCRIPTORS)
            .enumerate()
        {
            view.set_version_descriptor(i, *d);
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `INQUIRY direct-access SPC-4 vendor=FCSAN product=vdisk rev=0001 [SAM-5 SPC-4 SBC-3 FCP-4]`
impl fmt::Display for InquiryData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "INQUIRY {} {} vendor={} product={} rev={}",
            self.peripheral,
            self.version,
            ascii_text(&self.vendor),
            ascii_text(&self.product),
            ascii_text(&self.revision)
        )?;
        if self.response_data_format != 2 {
            write!(f, " format={}", self.response_data_format)?;
        }
        if self.tpgs != 0 {
            write!(f, " tpgs={}", self.tpgs)?;
        }
        if !self.version_descriptors.is_empty() {
            f.write_str(" [")?;
            for (i, d) in self.version_descriptors.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{d}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::*;
    use crate::scsi::data::strategies::peripheral;

    prop_compose! {
        pub(crate) fn inquiry_data()(
            peripheral in peripheral(),
            version in any::<u8>(),
            response_data_format in 0u8..16,
            flags in any::<u64>(),
            tpgs in 0u8..4,
            vendor in any::<[u8; 8]>(),
            product in any::<[u8; 16]>(),
            revision in any::<[u8; 4]>(),
            vds in proptest::collection::vec(1u16.., 0..=MAX_VERSION_DESCRIPTORS),
        ) -> InquiryData {
            InquiryData {
                peripheral,
                version: SpcVersion(version),
                response_data_format,
                flags: InquiryFlags::from_bits_retain(flags & InquiryFlags::WIRE_BITS),
                tpgs,
                vendor,
                product,
                revision,
                version_descriptors: vds.into_iter().map(VersionDescriptor).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// A disk: SPC-4, HISUP, CMDQUE, "FCSAN" "vdisk" "0001", SAM-5 SPC-4 SBC-3 FCP-4.
    static DISK: [u8; 96] = hex!(
        "00 00 06 12 5b 00 00 02"
        "46 43 53 41 4e 20 20 20"
        "76 64 69 73 6b 20 20 20 20 20 20 20 20 20 20 20"
        "30 30 30 31"
        "00000000000000000000 00000000000000000000"
        "0000"
        "00a0 0460 04c0 0a40 0000 0000 0000 0000"
        "00000000000000000000 00000000000000000000 0000"
    );

    #[test]
    fn test_parse() {
        let d = InquiryData::parse(&DISK).unwrap();
        assert_eq!(d.peripheral, Peripheral::DISK);
        assert_eq!(d.version, SpcVersion::SPC_4);
        assert_eq!(d.response_data_format, 2);
        assert_eq!(d.flags, InquiryFlags::HISUP | InquiryFlags::CMDQUE);
        assert_eq!(d.tpgs, 0);
        assert_eq!(&d.vendor, b"FCSAN   ");
        assert_eq!(&d.product, b"vdisk           ");
        assert_eq!(&d.revision, b"0001");
        assert_eq!(
            d.version_descriptors,
            [
                VersionDescriptor::SAM_5,
                VersionDescriptor::SPC_4,
                VersionDescriptor::SBC_3,
                VersionDescriptor::FCP_4
            ]
        );
        assert_eq!(
            d.to_string(),
            "INQUIRY direct-access SPC-4 vendor=FCSAN product=vdisk rev=0001 [SAM-5 SPC-4 SBC-3 FCP-4]"
        );
    }

    #[test]
    fn test_emit() {
        let d = InquiryData::disk("FCSAN", "vdisk", "0001");
        let bytes = d.to_vec();
        assert_eq!(bytes[..], DISK[..]);
        assert_eq!(InquiryData::parse(&bytes).unwrap(), d);
    }

    #[test]
    fn test_view() {
        let v = Inquiry::new_checked(&DISK[..]).unwrap();
        assert_eq!(v.additional_length(), 91);
        assert_eq!(v.vendor(), b"FCSAN   ");
        assert_eq!(v.version_descriptor(2), Some(VersionDescriptor::SBC_3));
        assert_eq!(v.version_descriptor(7), Some(VersionDescriptor(0)));
        assert_eq!(v.version_descriptor(8), None);
        let short = Inquiry::new_checked(&DISK[..36]).unwrap();
        assert_eq!(short.version_descriptor(0), None);
    }

    #[test]
    fn test_flags_and_tpgs() {
        let mut d = InquiryData::tape("IBM", "ULT3580-TD5", "A1B2");
        d.flags |= InquiryFlags::RMB | InquiryFlags::TPC | InquiryFlags::MULTIP;
        d.flags |= InquiryFlags::PROTECT | InquiryFlags::ACC;
        d.tpgs = 3;
        let b = d.to_vec();
        assert_eq!(b[0], 0x01);
        assert_eq!(b[1], 0x80);
        assert_eq!(b[3], 0x12);
        assert_eq!(b[5], 0x40 | 0x30 | 0x08 | 0x01);
        assert_eq!(b[6], 0x10);
        assert_eq!(b[7], 0x02);
        assert_eq!(&b[62..64], &hex!("0400"));
        assert_eq!(InquiryData::parse(&b).unwrap(), d);
        assert!(d.to_string().contains("SSC-3"), "{d}");
        assert!(d.to_string().contains("tpgs=3"), "{d}");
    }

    #[test]
    fn test_truncated_to_36() {
        // An initiator that allocates 36 bytes gets everything but the version descriptors.
        let d = InquiryData::parse(&DISK[..36]).unwrap();
        assert_eq!(&d.product, b"vdisk           ");
        assert!(d.version_descriptors.is_empty());
        // Only whole descriptors are read.
        let d = InquiryData::parse(&DISK[..63]).unwrap();
        assert_eq!(
            d.version_descriptors,
            [VersionDescriptor::SAM_5, VersionDescriptor::SPC_4]
        );
    }

    #[test]
    fn test_additional_length_bounds_descriptors() {
        // A 36-byte INQUIRY (additional length 31) followed by junk: the junk is not read.
        let mut b = DISK;
        b[4] = 31;
        assert!(InquiryData::parse(&b)
            .unwrap()
            .version_descriptors
            .is_empty());
        b[4] = 57; // through byte 61: the first two descriptors
        assert_eq!(InquiryData::parse(&b).unwrap().version_descriptors.len(), 2);
    }

    #[test]
    fn test_bad_additional_length() {
        let mut b = DISK;
        b[4] = 30;
        assert_eq!(
            InquiryData::parse(&b),
            Err(DataError::BadInquiryAdditionalLength(30))
        );
    }

    #[test]
    fn test_truncation() {
        for len in 0..MIN_LEN {
            assert!(
                matches!(InquiryData::parse(&DISK[..len]), Err(DataError::Len(_))),
                "{len}"
            );
        }
        for len in MIN_LEN..=DISK.len() {
            let d = InquiryData::parse(&DISK[..len]).unwrap();
            assert_eq!(
                d.version_descriptors.len(),
                (len.saturating_sub(58) / 2).min(4)
            );
        }
    }

    #[test]
    fn test_version_descriptor_display() {
        assert_eq!(VersionDescriptor(0x0466).to_string(), "SPC-4(0x0466)");
        assert_eq!(VersionDescriptor(0x1234).to_string(), "0x1234");
        assert_eq!(SpcVersion(2).to_string(), "version0x02");
        assert_eq!(SpcVersion::SPC_3.to_string(), "SPC-3");
    }

    proptest! {
        #[test]
        fn prop_round_trip(d in strategies::inquiry_data()) {
            let bytes = d.to_vec();
            prop_assert_eq!(bytes.len(), 96);
            prop_assert_eq!(InquiryData::parse(&bytes).unwrap(), d);
        }
    }
}
