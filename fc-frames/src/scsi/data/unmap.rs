//! UNMAP parameter list (SBC-3 §5.28), the data-out of the UNMAP command.
//!
//! ```text
//!  0-1   UNMAP DATA LENGTH (n-1): bytes after this field = 6 + 16 x descriptors
//!  2-3   UNMAP BLOCK DESCRIPTOR DATA LENGTH (n-7): 16 x descriptors
//!  4-7   reserved
//!  8-23  UNMAP block descriptor 1:
//!          0-7 UNMAP LOGICAL BLOCK ADDRESS   8-11 NUMBER OF LOGICAL BLOCKS   12-15 reserved
//!  ...
//! ```
//!
//! Parse rules, and what the device server returns for each failure (sense key ILLEGAL REQUEST;
//! [`DataError::parameter_list_sense`] gives the code):
//! - A PARAMETER LIST LENGTH of zero means no data and nothing to do: the engine handles that
//!   before parsing (an empty buffer is a length error here).
//! - 1 to 7 bytes: SBC-3 requires PARAMETER LIST LENGTH ERROR (0x1A/0x00) ([`DataError::Len`]).
//! - UNMAP DATA LENGTH or BLOCK DESCRIPTOR DATA LENGTH running past the bytes sent: PARAMETER
//!   LIST LENGTH ERROR ([`DataError::UnmapDataLengthOverrun`],
//!   [`DataError::UnmapDescriptorLengthOverrun`]).
//! - BLOCK DESCRIPTOR DATA LENGTH not a multiple of 16, or larger than UNMAP DATA LENGTH - 6:
//!   INVALID FIELD IN PARAMETER LIST (0x26/0x00) ([`DataError::BadUnmapDescriptorLength`],
//!   [`DataError::UnmapLengthsInconsistent`]). SBC-3 as remembered here says a trailing partial
//!   descriptor "shall be ignored"; this crate rejects it instead, which no initiator relies on.
//! - Bytes after the descriptors (a parameter list length larger than the data) are ignored.
//!
//! Range checks (LBA + blocks beyond capacity: LOGICAL BLOCK ADDRESS OUT OF RANGE; more
//! descriptors or blocks than the block limits page allows: INVALID FIELD IN PARAMETER LIST)
//! belong to the engine.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::DataError;
use crate::wire::{be16, be32, be64, put_be16, put_be32, put_be64};

mod field {
    use crate::wire::Field;

    pub const DATA_LENGTH: Field = 0..2;
    pub const DESCRIPTOR_DATA_LENGTH: Field = 2..4;
    pub const RESERVED: Field = 4..8;

    pub mod descriptor {
        use crate::wire::Field;

        pub const LBA: Field = 0..8;
        pub const BLOCKS: Field = 8..12;
        pub const RESERVED: Field = 12..16;
    }
}

/// Bytes of the parameter list header.
pub const HEADER_LEN: usize = 8;
/// Bytes of one block descriptor.
pub const DESCRIPTOR_LEN: usize = 16;
/// Most descriptors whose lengths fit the 16-bit UNMAP DATA LENGTH: (65535 - 6) / 16.
pub const MAX_DESCRIPTORS: usize = 4095;

/// One UNMAP block descriptor: `blocks` logical blocks from `lba`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UnmapDescriptor {
    /// UNMAP LOGICAL BLOCK ADDRESS.
    pub lba: u64,
    /// NUMBER OF LOGICAL BLOCKS (0: nothing, not an error).
    pub blocks: u32,
}

/// The UNMAP parameter list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UnmapParameterList {
    /// The block descriptors; at most [`MAX_DESCRIPTORS`] are emitted.
    pub descriptors: Vec<UnmapDescriptor>,
}

impl UnmapParameterList {
    /// Parses a parameter list of exactly the bytes the initiator sent; see the module docs.
    pub fn parse(buf: &[u8]) -> Result<UnmapParameterList, DataError> {
        LenError::check(Layer::ScsiData, HEADER_LEN, buf.len())?;
        let data_length = be16(buf, field::DATA_LENGTH.start);
        let descriptor_length = be16(buf, field::DESCRIPTOR_DATA_LENGTH.start);
        if 2 + usize::from(data_length) > buf.len() {
            return Err(DataError::UnmapDataLengthOverrun {
                data_length,
                list_length: buf.len(),
            });
        }
        if HEADER_LEN + usize::from(descriptor_length) > buf.len() {
            return Err(DataError::UnmapDescriptorLengthOverrun {
                descriptor_length,
                list_length: buf.len(),
            });
        }
        if usize::from(descriptor_length) % DESCRIPTOR_LEN != 0 {
            return Err(DataError::BadUnmapDescriptorLength(descriptor_length));
        }
        if usize::from(descriptor_length) + 6 > usize::from(data_length) {
            return Err(DataError::UnmapLengthsInconsistent {
                descriptor_length,
                data_length,
            });
        }
        // HEADER_LEN + descriptor_length <= buf.len(), checked above.
        let descriptors = buf[HEADER_LEN..HEADER_LEN + usize::from(descriptor_length)]
            .chunks_exact(DESCRIPTOR_LEN)
            .map(|d| UnmapDescriptor {
                lba: be64(d, field::descriptor::LBA.start),
                blocks: be32(d, field::descriptor::BLOCKS.start),
            })
            .collect();
        Ok(UnmapParameterList { descriptors })
    }

    /// Header plus 16 bytes per descriptor (at most [`MAX_DESCRIPTORS`]).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + DESCRIPTOR_LEN * self.descriptors.len().min(MAX_DESCRIPTORS)
    }

    /// Total logical blocks the list names (for the engine's MAXIMUM UNMAP LBA COUNT check).
    pub fn total_blocks(&self) -> u64 {
        self.descriptors.iter().map(|d| u64::from(d.blocks)).sum()
    }

    /// Writes the list. Panics if `buf` is shorter than [`UnmapParameterList::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.descriptors.len().min(MAX_DESCRIPTORS);
        // n <= 4095, so both lengths fit in 16 bits.
        let descriptor_length = (DESCRIPTOR_LEN * n) as u16;
        put_be16(buf, field::DATA_LENGTH.start, descriptor_length + 6);
        put_be16(buf, field::DESCRIPTOR_DATA_LENGTH.start, descriptor_length);
        buf[field::RESERVED].fill(0);
        for (chunk, d) in buf[HEADER_LEN..self.buffer_len()]
            .chunks_exact_mut(DESCRIPTOR_LEN)
            .zip(&self.descriptors)
        {
            put_be64(chunk, field::descriptor::LBA.start, d.lba);
            put_be32(chunk, field::descriptor::BLOCKS.start, d.blocks);
            chunk[field::descriptor::RESERVED].fill(0);
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `UNMAP 2 ranges: 0+8 1000+16` (at most 8 ranges listed).
impl fmt::Display for UnmapParameterList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "UNMAP {} ranges", self.descriptors.len())?;
        for (i, d) in self.descriptors.iter().take(SHOWN).enumerate() {
            f.write_str(if i == 0 { ": " } else { " " })?;
            write!(f, "{}+{}", d.lba, d.blocks)?;
        }
        if self.descriptors.len() > SHOWN {
            f.write_str(" ...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    static TWO: [u8; 40] = hex!(
        "0026 0020 00000000"
        "0000000000000000 00000008 00000000"
        "00000000000003e8 00000010 00000000"
    );

    fn two() -> UnmapParameterList {
        UnmapParameterList {
            descriptors: vec![
                UnmapDescriptor { lba: 0, blocks: 8 },
                UnmapDescriptor {
                    lba: 1000,
                    blocks: 16,
                },
            ],
        }
    }

    #[test]
    fn test_parse() {
        let l = UnmapParameterList::parse(&TWO).unwrap();
        assert_eq!(l, two());
        assert_eq!(l.total_blocks(), 24);
        assert_eq!(l.to_string(), "UNMAP 2 ranges: 0+8 1000+16");
        // No descriptors.
        let empty = UnmapParameterList::parse(&hex!("0006 0000 00000000")).unwrap();
        assert!(empty.descriptors.is_empty());
        // A parameter list longer than the data: the tail is ignored.
        let mut long = TWO.to_vec();
        long.extend([0xAA; 16]);
        assert_eq!(UnmapParameterList::parse(&long).unwrap(), two());
    }

    #[test]
    fn test_emit() {
        assert_eq!(two().to_vec(), TWO);
        assert_eq!(
            UnmapParameterList::default().to_vec(),
            hex!("0006 0000 00000000")
        );
    }

    #[test]
    fn test_data_length_overrun() {
        let mut b = TWO;
        b[1] = 0x27;
        let e = UnmapParameterList::parse(&b).unwrap_err();
        assert_eq!(
            e,
            DataError::UnmapDataLengthOverrun {
                data_length: 0x27,
                list_length: 40
            }
        );
        assert_eq!(e.parameter_list_sense(), (0x1A, 0x00));
    }

    #[test]
    fn test_descriptor_length_overrun() {
        let e = UnmapParameterList::parse(&TWO[..39]).unwrap_err();
        assert_eq!(
            e,
            DataError::UnmapDataLengthOverrun {
                data_length: 0x26,
                list_length: 39
            }
        );
        let mut b = TWO;
        b[1] = 0x20;
        b[3] = 0x30;
        let e = UnmapParameterList::parse(&b).unwrap_err();
        assert_eq!(
            e,
            DataError::UnmapDescriptorLengthOverrun {
                descriptor_length: 0x30,
                list_length: 40
            }
        );
        assert_eq!(e.parameter_list_sense(), (0x1A, 0x00));
    }

    #[test]
    fn test_descriptor_length_not_multiple_of_16() {
        let mut b = TWO;
        b[3] = 0x18;
        let e = UnmapParameterList::parse(&b).unwrap_err();
        assert_eq!(e, DataError::BadUnmapDescriptorLength(0x18));
        assert_eq!(e.parameter_list_sense(), (0x26, 0x00));
    }

    #[test]
    fn test_lengths_inconsistent() {
        let mut b = TWO;
        b[1] = 0x16;
        let e = UnmapParameterList::parse(&b).unwrap_err();
        assert_eq!(
            e,
            DataError::UnmapLengthsInconsistent {
                descriptor_length: 0x20,
                data_length: 0x16
            }
        );
        assert_eq!(e.parameter_list_sense(), (0x26, 0x00));
    }

    #[test]
    fn test_truncation() {
        for len in 0..HEADER_LEN {
            let e = UnmapParameterList::parse(&TWO[..len]).unwrap_err();
            assert!(matches!(e, DataError::Len(_)));
            assert_eq!(e.parameter_list_sense(), (0x1A, 0x00));
        }
        for len in HEADER_LEN..TWO.len() {
            assert!(UnmapParameterList::parse(&TWO[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn test_display_limit() {
        let l = UnmapParameterList {
            descriptors: vec![UnmapDescriptor { lba: 1, blocks: 1 }; 9],
        };
        assert!(l.to_string().ends_with("1+1 ..."));
    }

    proptest! {
        #[test]
        fn prop_round_trip(ds in proptest::collection::vec(any::<(u64, u32)>(), 0..200)) {
            let l = UnmapParameterList {
                descriptors: ds.into_iter().map(|(lba, blocks)| UnmapDescriptor { lba, blocks }).collect(),
            };
            prop_assert_eq!(UnmapParameterList::parse(&l.to_vec()).unwrap(), l);
        }
    }
}
