//! READ BLOCK LIMITS data (SSC-3 §7.7), the block sizes a tape drive accepts.
//!
//! ```text
//!  byte  7   6   5   4   3   2   1   0
//!   0   | reserved  |    GRANULARITY    |
//!  1-3  |   MAXIMUM BLOCK LENGTH LIMIT  |
//!  4-5  |   MINIMUM BLOCK LENGTH LIMIT  |
//! ```
//!
//! Block lengths must be multiples of 2^GRANULARITY bytes; a drive that only supports fixed
//! blocks reports the same minimum and maximum. The 20-byte MLOI form of SSC-4 is not covered.
//! Truncation rule: READ BLOCK LIMITS has no allocation length; all 6 bytes are required.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::DataError;
use crate::wire::{be16, be24, put_be16, put_be24};

mod field {
    use crate::wire::Field;

    /// GRANULARITY 0x1F.
    pub const GRANULARITY: usize = 0;
    pub const MAXIMUM: Field = 1..4;
    pub const MINIMUM: Field = 4..6;
}

/// Bytes of READ BLOCK LIMITS data.
pub const LEN: usize = 6;

/// A view over READ BLOCK LIMITS data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBlockLimits<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ReadBlockLimits<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> ReadBlockLimits<T> {
        ReadBlockLimits { buffer }
    }

    /// Wraps a buffer of at least [`LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<ReadBlockLimits<T>, LenError> {
        LenError::check(Layer::ScsiData, LEN, buffer.as_ref().len())?;
        Ok(ReadBlockLimits { buffer })
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// GRANULARITY: block lengths are multiples of 2^granularity.
    pub fn granularity(&self) -> u8 {
        self.buffer.as_ref()[field::GRANULARITY] & 0x1F
    }

    /// MAXIMUM BLOCK LENGTH LIMIT (0: not specified).
    pub fn max_block_length(&self) -> u32 {
        be24(self.buffer.as_ref(), field::MAXIMUM.start)
    }

    /// MINIMUM BLOCK LENGTH LIMIT.
    pub fn min_block_length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::MINIMUM.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ReadBlockLimits<T> {
    /// Sets byte 0 to GRANULARITY (low five bits of `g`), reserved bits zero.
    pub fn set_granularity(&mut self, g: u8) {
        self.buffer.as_mut()[field::GRANULARITY] = g & 0x1F;
    }

    /// Sets MAXIMUM BLOCK LENGTH LIMIT (low 24 bits).
    pub fn set_max_block_length(&mut self, v: u32) {
        put_be24(self.buffer.as_mut(), field::MAXIMUM.start, v);
    }

    /// Sets MINIMUM BLOCK LENGTH LIMIT.
    pub fn set_min_block_length(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::MINIMUM.start, v);
    }
}

/// READ BLOCK LIMITS data, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadBlockLimitsData {
    /// GRANULARITY (low five bits emitted).
    pub granularity: u8,
    /// MAXIMUM BLOCK LENGTH LIMIT (low 24 bits emitted).
    pub max_block_length: u32,
    /// MINIMUM BLOCK LENGTH LIMIT.
    pub min_block_length: u16,
}

impl ReadBlockLimitsData {
    /// A drive that takes only `len`-byte blocks (fixed block mode).
    pub fn fixed(len: u16) -> ReadBlockLimitsData {
        ReadBlockLimitsData {
            granularity: 0,
            max_block_length: u32::from(len),
            min_block_length: len,
        }
    }

    /// Parses the 6 bytes.
    pub fn parse(buf: &[u8]) -> Result<ReadBlockLimitsData, DataError> {
        let v = ReadBlockLimits::new_checked(buf)?;
        Ok(ReadBlockLimitsData {
            granularity: v.granularity(),
            max_block_length: v.max_block_length(),
            min_block_length: v.min_block_length(),
        })
    }

    /// Always [`LEN`].
    pub fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the 6 bytes. Panics if `buf` is shorter than [`LEN`].
    pub fn emit(&self, buf: &mut [u8]) {
        let mut v = ReadBlockLimits::new_unchecked(&mut buf[..LEN]);
        v.set_granularity(self.granularity);
        v.set_max_block_length(self.max_block_length);
        v.set_min_block_length(self.min_block_length);
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; LEN];
        self.emit(&mut v);
        v
    }
}

/// `READ BLOCK LIMITS data min=1 max=16777215 granularity=0`
impl fmt::Display for ReadBlockLimitsData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "READ BLOCK LIMITS data min={} max={} granularity={}",
            self.min_block_length, self.max_block_length, self.granularity
        )
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// Variable blocks from 1 byte to 16 MiB - 1, granularity 2 (multiples of 4).
    static VARIABLE: [u8; 6] = hex!("02 ffffff 0001");

    #[test]
    fn test_parse() {
        let d = ReadBlockLimitsData::parse(&VARIABLE).unwrap();
        assert_eq!(
            d,
            ReadBlockLimitsData {
                granularity: 2,
                max_block_length: 0xFF_FFFF,
                min_block_length: 1
            }
        );
        assert_eq!(
            d.to_string(),
            "READ BLOCK LIMITS data min=1 max=16777215 granularity=2"
        );
        // Reserved bits of byte 0 are not granularity.
        assert_eq!(
            ReadBlockLimitsData::parse(&hex!("e3 000200 0200"))
                .unwrap()
                .granularity,
            3
        );
    }

    #[test]
    fn test_emit() {
        let d = ReadBlockLimitsData::parse(&VARIABLE).unwrap();
        assert_eq!(d.to_vec(), VARIABLE);
        assert_eq!(
            ReadBlockLimitsData::fixed(512).to_vec(),
            hex!("00 000200 0200")
        );
    }

    #[test]
    fn test_truncation() {
        for len in 0..LEN {
            assert!(matches!(
                ReadBlockLimitsData::parse(&VARIABLE[..len]),
                Err(DataError::Len(_))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(g in 0u8..32, max in 0u32..0x100_0000, min in any::<u16>()) {
            let d = ReadBlockLimitsData { granularity: g, max_block_length: max, min_block_length: min };
            prop_assert_eq!(ReadBlockLimitsData::parse(&d.to_vec()).unwrap(), d);
        }
    }
}
