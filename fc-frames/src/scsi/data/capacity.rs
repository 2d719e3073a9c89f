//! READ CAPACITY(10) and READ CAPACITY(16) parameter data (SBC-3 §5.16, §5.17), and
//! [`Capacity`], the size of a logical unit they both describe.
//!
//! ```text
//! READ CAPACITY(10) data, 8 bytes:
//!  0-3   RETURNED LOGICAL BLOCK ADDRESS (last LBA; FFFFFFFFh: use READ CAPACITY(16))
//!  4-7   LOGICAL BLOCK LENGTH IN BYTES
//!
//! READ CAPACITY(16) data, 32 bytes:
//!  0-7   RETURNED LOGICAL BLOCK ADDRESS (last LBA)
//!  8-11  LOGICAL BLOCK LENGTH IN BYTES
//!  12    reserved (7-4; SBC-4 RC BASIS 5-4) | P_TYPE (3-1) | PROT_EN (0)
//!  13    P_I_EXPONENT (7-4) | LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (3-0)
//!  14-15 LBPME (15) | LBPRZ (14) | LOWEST ALIGNED LOGICAL BLOCK ADDRESS (13-0)
//!  16-31 reserved
//! ```
//!
//! Truncation rule: READ CAPACITY(10) has no allocation length and needs all 8 bytes.
//! READ CAPACITY(16) needs the first 12 (address and block length); bytes 12-15 that an
//! allocation length cut off read as zero.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::{zero_padded, DataError};
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

mod field {
    pub mod rc10 {
        use crate::wire::Field;

        pub const RETURNED_LBA: Field = 0..4;
        pub const BLOCK_LENGTH: Field = 4..8;
    }

    pub mod rc16 {
        use crate::wire::Field;

        pub const RETURNED_LBA: Field = 0..8;
        pub const BLOCK_LENGTH: Field = 8..12;
        /// P_TYPE 0x0E, PROT_EN 0x01.
        pub const PROTECTION: usize = 12;
        /// P_I_EXPONENT 0xF0, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 0x0F.
        pub const EXPONENTS: usize = 13;
        /// LBPME 0x8000, LBPRZ 0x4000, LOWEST ALIGNED LOGICAL BLOCK ADDRESS 0x3FFF.
        pub const PROVISIONING: Field = 14..16;
    }
}

/// Bytes of READ CAPACITY(10) data.
pub const RC10_LEN: usize = 8;
/// Bytes of READ CAPACITY(16) data.
pub const RC16_LEN: usize = 32;
/// Bytes of READ CAPACITY(16) data [`ReadCapacity16Data::parse`] needs.
pub const RC16_MIN_LEN: usize = 12;
/// RETURNED LOGICAL BLOCK ADDRESS of READ CAPACITY(10) when the capacity needs (16).
pub const RC10_USE_16: u32 = 0xFFFF_FFFF;

/// A view over READ CAPACITY(10) data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCapacity10<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ReadCapacity10<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> ReadCapacity10<T> {
        ReadCapacity10 { buffer }
    }

    /// Wraps a buffer of at least [`RC10_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<ReadCapacity10<T>, LenError> {
        LenError::check(Layer::ScsiData, RC10_LEN, buffer.as_ref().len())?;
        Ok(ReadCapacity10 { buffer })
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// RETURNED LOGICAL BLOCK ADDRESS.
    pub fn returned_lba(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rc10::RETURNED_LBA.start)
    }

    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub fn block_length(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rc10::BLOCK_LENGTH.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ReadCapacity10<T> {
    /// Sets RETURNED LOGICAL BLOCK ADDRESS.
    pub fn set_returned_lba(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rc10::RETURNED_LBA.start, v);
    }

    /// Sets LOGICAL BLOCK LENGTH IN BYTES.
    pub fn set_block_length(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rc10::BLOCK_LENGTH.start, v);
    }
}

/// READ CAPACITY(10) data, owned. Values as on the wire; [`Capacity`] checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity10Data {
    /// RETURNED LOGICAL BLOCK ADDRESS: the last LBA, or [`RC10_USE_16`].
    pub returned_lba: u32,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_length: u32,
}

impl ReadCapacity10Data {
    /// Parses the 8 bytes.
    pub fn parse(buf: &[u8]) -> Result<ReadCapacity10Data, DataError> {
        let v = ReadCapacity10::new_checked(buf)?;
        Ok(ReadCapacity10Data {
            returned_lba: v.returned_lba(),
            block_length: v.block_length(),
        })
    }

    /// Always [`RC10_LEN`].
    pub fn buffer_len(&self) -> usize {
        RC10_LEN
    }

    /// Writes the 8 bytes. Panics if `buf` is shorter than [`RC10_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let mut v = ReadCapacity10::new_unchecked(&mut buf[..RC10_LEN]);
        v.set_returned_lba(self.returned_lba);
        v.set_block_length(self.block_length);
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; RC10_LEN];
        self.emit(&mut v);
        v
    }
}

/// `READ CAPACITY(10) data last_lba=4194303 block=512`
impl fmt::Display for ReadCapacity10Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("READ CAPACITY(10) data ")?;
        if self.returned_lba == RC10_USE_16 {
            f.write_str("last_lba=ffffffff (use 16)")?;
        } else {
            write!(f, "last_lba={}", self.returned_lba)?;
        }
        write!(f, " block={}", self.block_length)
    }
}

/// A view over READ CAPACITY(16) data (all [`RC16_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCapacity16<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ReadCapacity16<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> ReadCapacity16<T> {
        ReadCapacity16 { buffer }
    }

    /// Wraps a buffer of at least [`RC16_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<ReadCapacity16<T>, LenError> {
        LenError::check(Layer::ScsiData, RC16_LEN, buffer.as_ref().len())?;
        Ok(ReadCapacity16 { buffer })
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref()[at]
    }

    /// RETURNED LOGICAL BLOCK ADDRESS.
    pub fn returned_lba(&self) -> u64 {
        be64(self.buffer.as_ref(), field::rc16::RETURNED_LBA.start)
    }

    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub fn block_length(&self) -> u32 {
        be32(self.buffer.as_ref(), field::rc16::BLOCK_LENGTH.start)
    }

    /// P_TYPE: protection type minus one, when PROT_EN is set.
    pub fn p_type(&self) -> u8 {
        (self.byte(field::rc16::PROTECTION) >> 1) & 0x07
    }

    /// PROT_EN: protection information enabled.
    pub fn prot_en(&self) -> bool {
        self.byte(field::rc16::PROTECTION) & 0x01 != 0
    }

    /// P_I_EXPONENT.
    pub fn p_i_exponent(&self) -> u8 {
        self.byte(field::rc16::EXPONENTS) >> 4
    }

    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT.
    pub fn lbppbe(&self) -> u8 {
        self.byte(field::rc16::EXPONENTS) & 0x0F
    }

    fn provisioning(&self) -> u16 {
        be16(self.buffer.as_ref(), field::rc16::PROVISIONING.start)
    }

    /// LBPME: logical block provisioning management enabled (thin provisioning, UNMAP).
    pub fn lbpme(&self) -> bool {
        self.provisioning() & 0x8000 != 0
    }

    /// LBPRZ: unmapped blocks read as zero.
    pub fn lbprz(&self) -> bool {
        self.provisioning() & 0x4000 != 0
    }

    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS (14 bits).
    pub fn lowest_aligned_lba(&self) -> u16 {
        self.provisioning() & 0x3FFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ReadCapacity16<T> {
    /// Sets RETURNED LOGICAL BLOCK ADDRESS.
    pub fn set_returned_lba(&mut self, v: u64) {
        put_be64(self.buffer.as_mut(), field::rc16::RETURNED_LBA.start, v);
    }

    /// Sets LOGICAL BLOCK LENGTH IN BYTES.
    pub fn set_block_length(&mut self, v: u32) {
        put_be32(self.buffer.as_mut(), field::rc16::BLOCK_LENGTH.start, v);
    }

    /// Sets byte 12: P_TYPE (low three bits of `p_type`) and PROT_EN; the rest zero.
    pub fn set_protection(&mut self, p_type: u8, prot_en: bool) {
        self.buffer.as_mut()[field::rc16::PROTECTION] = (p_type & 0x07) << 1 | u8::from(prot_en);
    }

    /// Sets byte 13 (low four bits of each exponent).
    pub fn set_exponents(&mut self, p_i_exponent: u8, lbppbe: u8) {
        self.buffer.as_mut()[field::rc16::EXPONENTS] = (p_i_exponent & 0x0F) << 4 | lbppbe & 0x0F;
    }

    /// Sets bytes 14-15 (low 14 bits of `lowest_aligned_lba`).
    pub fn set_provisioning(&mut self, lbpme: bool, lbprz: bool, lowest_aligned_lba: u16) {
        let v = u16::from(lbpme) << 15 | u16::from(lbprz) << 14 | lowest_aligned_lba & 0x3FFF;
        put_be16(self.buffer.as_mut(), field::rc16::PROVISIONING.start, v);
    }
}

/// READ CAPACITY(16) data, owned. Values as on the wire; [`Capacity`] checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadCapacity16Data {
    /// RETURNED LOGICAL BLOCK ADDRESS: the last LBA.
    pub returned_lba: u64,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_length: u32,
    /// P_TYPE (low three bits emitted).
    pub p_type: u8,
    /// PROT_EN.
    pub prot_en: bool,
    /// P_I_EXPONENT (low four bits emitted).
    pub p_i_exponent: u8,
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (low four bits emitted): 3 for 512-byte
    /// logical blocks on 4096-byte physical blocks.
    pub lbppbe: u8,
    /// LBPME.
    pub lbpme: bool,
    /// LBPRZ.
    pub lbprz: bool,
    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS (low 14 bits emitted).
    pub lowest_aligned_lba: u16,
}

impl ReadCapacity16Data {
    /// Parses at least [`RC16_MIN_LEN`] bytes; see the module docs.
    pub fn parse(buf: &[u8]) -> Result<ReadCapacity16Data, DataError> {
        LenError::check(Layer::ScsiData, RC16_MIN_LEN, buf.len())?;
        let full: [u8; RC16_LEN] = zero_padded(buf);
        let v = ReadCapacity16::new_unchecked(&full[..]);
        Ok(ReadCapacity16Data {
            returned_lba: v.returned_lba(),
            block_length: v.block_length(),
            p_type: v.p_type(),
            prot_en: v.prot_en(),
            p_i_exponent: v.p_i_exponent(),
            lbppbe: v.lbppbe(),
            lbpme: v.lbpme(),
            lbprz: v.lbprz(),
            lowest_aligned_lba: v.lowest_aligned_lba(),
        })
    }

    /// Always [`RC16_LEN`].
    pub fn buffer_len(&self) -> usize {
        RC16_LEN
    }

    /// Writes the 32 bytes, reserved bytes zero. Panics if `buf` is shorter than [`RC16_LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..RC16_LEN];
        buf.fill(0);
        let mut v = ReadCapacity16::new_unchecked(buf);
        v.set_returned_lba(self.returned_lba);
        v.set_block_length(self.block_length);
        v.set_protection(self.p_type, self.prot_en);
        v.set_exponents(self.p_i_exponent, self.lbppbe);
        v.set_provisioning(self.lbpme, self.lbprz, self.lowest_aligned_lba);
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; RC16_LEN];
        self.emit(&mut v);
        v
    }
}

/// `READ CAPACITY(16) data last_lba=8388607 block=512 lbppbe=3 lbpme lbprz`
impl fmt::Display for ReadCapacity16Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "READ CAPACITY(16) data last_lba={} block={}",
            self.returned_lba, self.block_length
        )?;
        if self.prot_en {
            write!(f, " prot_type={}", self.p_type + 1)?;
        }
        if self.lbppbe != 0 {
            write!(f, " lbppbe={}", self.lbppbe)?;
        }
        if self.lowest_aligned_lba != 0 {
            write!(f, " lowest_aligned={}", self.lowest_aligned_lba)?;
        }
        if self.lbpme {
            f.write_str(" lbpme")?;
        }
        if self.lbprz {
            f.write_str(" lbprz")?;
        }
        Ok(())
    }
}

/// The size of a logical unit: at least one block of at least one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capacity {
    blocks: u64,
    block_size: u32,
}

impl Capacity {
    /// `blocks` logical blocks of `block_size` bytes; both must be non-zero (READ CAPACITY has
    /// no way to say "zero blocks", and initiators reject a zero block length).
    pub fn new(blocks: u64, block_size: u32) -> Result<Capacity, DataError> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        if blocks == 0 {
            return Err(DataError::ZeroBlocks);
        }
        Ok(Capacity { blocks, block_size })
    }

    /// The whole blocks of `block_size` in `bytes` (a backing file's length, say).
    pub fn from_byte_len(bytes: u64, block_size: u32) -> Result<Capacity, DataError> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        Capacity::new(bytes / u64::from(block_size), block_size)
    }

    /// From READ CAPACITY(10) data; [`DataError::NeedsReadCapacity16`] when the target said
    /// FFFFFFFFh.
    pub fn from_read_capacity_10(d: &ReadCapacity10Data) -> Result<Capacity, DataError> {
        if d.returned_lba == RC10_USE_16 {
            return Err(DataError::NeedsReadCapacity16);
        }
        Capacity::new(u64::from(d.returned_lba) + 1, d.block_length)
    }

    /// From READ CAPACITY(16) data.
    pub fn from_read_capacity_16(d: &ReadCapacity16Data) -> Result<Capacity, DataError> {
        let blocks = d
            .returned_lba
            .checked_add(1)
            .ok_or(DataError::CapacityOverflow(d.returned_lba))?;
        Capacity::new(blocks, d.block_length)
    }

    /// Number of logical blocks.
    pub const fn blocks(self) -> u64 {
        self.blocks
    }

    /// Logical block length in bytes.
    pub const fn block_size(self) -> u32 {
        self.block_size
    }

    /// The last LBA.
    pub const fn last_lba(self) -> u64 {
        // blocks >= 1 by construction.
        self.blocks - 1
    }

    /// Size in bytes, `None` beyond 2^64-1.
    pub const fn bytes(self) -> Option<u64> {
        self.blocks.checked_mul(self.block_size as u64)
    }

    /// True when the last LBA does not fit READ CAPACITY(10) (it returns FFFFFFFFh).
    pub const fn needs_read_capacity_16(self) -> bool {
        self.last_lba() >= RC10_USE_16 as u64
    }

    /// True when `count` blocks from `lba` lie within the unit (`count` 0 checks `lba` alone,
    /// as SBC-3 does for zero-length transfers). Overflow counts as outside.
    pub fn contains(self, lba: u64, count: u64) -> bool {
        lba < self.blocks && lba.checked_add(count).is_some_and(|end| end <= self.blocks)
    }

    /// The READ CAPACITY(10) data for this capacity.
    pub fn to_read_capacity_10(self) -> ReadCapacity10Data {
        ReadCapacity10Data {
            returned_lba: u32::try_from(self.last_lba())
                .ok()
                .filter(|&l| l != RC10_USE_16)
                .unwrap_or(RC10_USE_16),
            block_length: self.block_size,
        }
    }

    /// The READ CAPACITY(16) data for this capacity: no protection, one logical block per
    /// physical block, provisioning flags clear (set them on the result as needed).
    pub fn to_read_capacity_16(self) -> ReadCapacity16Data {
        ReadCapacity16Data {
            returned_lba: self.last_lba(),
            block_length: self.block_size,
            ..ReadCapacity16Data::default()
        }
    }
}

/// `8388608 blocks x 512 B (4.00 GiB)`
impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} blocks x {} B", self.blocks, self.block_size)?;
        let bytes = self.blocks as f64 * f64::from(self.block_size);
        let mut value = bytes;
        let mut unit = "B";
        for u in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"] {
            if value < 1024.0 {
                break;
            }
            value /= 1024.0;
            unit = u;
        }
        write!(f, " ({value:.2} {unit})")
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// 4 GiB of 512-byte blocks: last LBA 8388607.
    static RC10: [u8; 8] = hex!("007fffff 00000200");
    /// 2^33 blocks of 512 bytes on 4096-byte physical blocks (lbppbe 3), type 1 protection,
    /// LBPME and LBPRZ, lowest aligned LBA 0.
    static RC16: [u8; 32] = hex!(
        "00000001ffffffff 00000200 01 03 c000"
        "0000 0000 0000 0000 0000 0000 0000 0000"
    );

    fn rc16() -> ReadCapacity16Data {
        ReadCapacity16Data {
            returned_lba: 0x1_FFFF_FFFF,
            block_length: 512,
            p_type: 0,
            prot_en: true,
            p_i_exponent: 0,
            lbppbe: 3,
            lbpme: true,
            lbprz: true,
            lowest_aligned_lba: 0,
        }
    }

    #[test]
    fn test_parse() {
        let d = ReadCapacity10Data::parse(&RC10).unwrap();
        assert_eq!(
            d,
            ReadCapacity10Data {
                returned_lba: 8_388_607,
                block_length: 512
            }
        );
        assert_eq!(
            d.to_string(),
            "READ CAPACITY(10) data last_lba=8388607 block=512"
        );
        let d = ReadCapacity16Data::parse(&RC16).unwrap();
        assert_eq!(d, rc16());
        assert_eq!(
            d.to_string(),
            "READ CAPACITY(16) data last_lba=8589934591 block=512 prot_type=1 lbppbe=3 lbpme lbprz"
        );
        let v = ReadCapacity16::new_checked(&RC16[..]).unwrap();
        assert_eq!(v.lowest_aligned_lba(), 0);
        assert_eq!(v.p_i_exponent(), 0);
    }

    #[test]
    fn test_emit() {
        let c = Capacity::new(8_388_608, 512).unwrap();
        assert_eq!(c.to_read_capacity_10().to_vec(), RC10);
        let d = rc16();
        assert_eq!(d.to_vec(), RC16);
        assert_eq!(ReadCapacity16Data::parse(&d.to_vec()).unwrap(), d);
        let plain = Capacity::new(0x2_0000_0000, 512)
            .unwrap()
            .to_read_capacity_16();
        assert_eq!(
            plain.to_vec(),
            hex!("00000001ffffffff 00000200 00 00 0000 00000000000000000000000000000000")
        );
    }

    #[test]
    fn test_fields_bits() {
        let d = ReadCapacity16Data {
            p_type: 2,
            p_i_exponent: 0xA,
            lbppbe: 0x5,
            lowest_aligned_lba: 0x3FFF,
            lbpme: false,
            lbprz: true,
            ..rc16()
        };
        let b = d.to_vec();
        assert_eq!(b[12..16], hex!("05 a5 7fff"));
        assert_eq!(ReadCapacity16Data::parse(&b).unwrap(), d);
    }

    #[test]
    fn test_capacity() {
        let c = Capacity::new(8_388_608, 512).unwrap();
        assert_eq!(c.last_lba(), 8_388_607);
        assert_eq!(c.bytes(), Some(4 << 30));
        assert_eq!(c.to_string(), "8388608 blocks x 512 B (4.00 GiB)");
        assert!(!c.needs_read_capacity_16());
        assert_eq!(
            Capacity::from_read_capacity_10(&c.to_read_capacity_10()),
            Ok(c)
        );
        assert_eq!(
            Capacity::from_read_capacity_16(&c.to_read_capacity_16()),
            Ok(c)
        );
        assert_eq!(Capacity::from_byte_len((4 << 30) + 100, 512), Ok(c));
        // A last LBA of FFFFFFFEh still fits (10); FFFFFFFFh does not.
        let edge = Capacity::new(0xFFFF_FFFF, 512).unwrap();
        assert!(!edge.needs_read_capacity_16());
        assert_eq!(edge.to_read_capacity_10().returned_lba, 0xFFFF_FFFE);
        let big = Capacity::new(0x1_0000_0000, 4096).unwrap();
        assert!(big.needs_read_capacity_16());
        assert_eq!(big.to_read_capacity_10().returned_lba, RC10_USE_16);
        assert_eq!(
            Capacity::from_read_capacity_10(&big.to_read_capacity_10()),
            Err(DataError::NeedsReadCapacity16)
        );
        assert_eq!(
            Capacity::from_read_capacity_16(&big.to_read_capacity_16()),
            Ok(big)
        );
        let huge = Capacity::new(u64::MAX, 512).unwrap();
        assert_eq!(huge.bytes(), None);
    }

    #[test]
    fn test_capacity_errors() {
        assert_eq!(Capacity::new(1, 0), Err(DataError::ZeroBlockSize));
        assert_eq!(Capacity::new(0, 512), Err(DataError::ZeroBlocks));
        assert_eq!(
            Capacity::from_byte_len(511, 512),
            Err(DataError::ZeroBlocks)
        );
        assert_eq!(
            Capacity::from_byte_len(4096, 0),
            Err(DataError::ZeroBlockSize)
        );
        let zero_len = ReadCapacity10Data {
            returned_lba: 10,
            block_length: 0,
        };
        assert_eq!(
            Capacity::from_read_capacity_10(&zero_len),
            Err(DataError::ZeroBlockSize)
        );
        let overflow = ReadCapacity16Data {
            returned_lba: u64::MAX,
            ..rc16()
        };
        assert_eq!(
            Capacity::from_read_capacity_16(&overflow),
            Err(DataError::CapacityOverflow(u64::MAX))
        );
    }

    #[test]
    fn test_contains() {
        let c = Capacity::new(1000, 512).unwrap();
        assert!(c.contains(0, 256));
        assert!(c.contains(744, 256));
        assert!(c.contains(999, 1));
        assert!(c.contains(999, 0));
        assert!(!c.contains(1000, 0));
        assert!(!c.contains(1000, 1));
        assert!(!c.contains(999, 2));
        assert!(!c.contains(1 << 31, 1));
        assert!(!c.contains(u64::MAX, 1));
        assert!(!c.contains(1, u64::MAX));
    }

    #[test]
    fn test_truncation() {
        for len in 0..RC10_LEN {
            assert!(matches!(
                ReadCapacity10Data::parse(&RC10[..len]),
                Err(DataError::Len(_))
            ));
        }
        for len in 0..RC16_MIN_LEN {
            assert!(matches!(
                ReadCapacity16Data::parse(&RC16[..len]),
                Err(DataError::Len(_))
            ));
        }
        // Cut after the block length: the flags read as zero.
        let d = ReadCapacity16Data::parse(&RC16[..12]).unwrap();
        assert_eq!(d.returned_lba, 0x1_FFFF_FFFF);
        assert_eq!(d.block_length, 512);
        assert!(!d.lbpme && !d.prot_en && d.lbppbe == 0);
        let d = ReadCapacity16Data::parse(&RC16[..14]).unwrap();
        assert!(d.prot_en && d.lbppbe == 3 && !d.lbpme);
        assert!(ReadCapacity16::new_checked(&RC16[..31]).is_err());
    }

    proptest! {
        #[test]
        fn prop_round_trip_rc10(returned_lba in any::<u32>(), block_length in any::<u32>()) {
            let d = ReadCapacity10Data { returned_lba, block_length };
            prop_assert_eq!(ReadCapacity10Data::parse(&d.to_vec()).unwrap(), d);
        }

        #[test]
        fn prop_round_trip_rc16(
            returned_lba in any::<u64>(),
            block_length in any::<u32>(),
            p_type in 0u8..8,
            prot_en in any::<bool>(),
            p_i_exponent in 0u8..16,
            lbppbe in 0u8..16,
            lbpme in any::<bool>(),
            lbprz in any::<bool>(),
            lowest_aligned_lba in 0u16..0x4000,
        ) {
            let d = ReadCapacity16Data {
                returned_lba, block_length, p_type, prot_en, p_i_exponent, lbppbe, lbpme, lbprz,
                lowest_aligned_lba,
            };
            prop_assert_eq!(ReadCapacity16Data::parse(&d.to_vec()).unwrap(), d);
        }

        #[test]
        fn prop_capacity_round_trip(blocks in 1u64.., block_size in 1u32..) {
            let c = Capacity::new(blocks, block_size).unwrap();
            prop_assert_eq!(Capacity::from_read_capacity_16(&c.to_read_capacity_16()), Ok(c));
            let rc10 = Capacity::from_read_capacity_10(&c.to_read_capacity_10());
            prop_assert_eq!(rc10.is_ok(), !c.needs_read_capacity_16());
            if let Ok(r) = rc10 {
                prop_assert_eq!(r, c);
            }
        }
    }
}
