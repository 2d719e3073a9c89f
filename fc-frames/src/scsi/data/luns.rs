//! REPORT LUNS parameter data (SPC-4 §6.33).
//!
//! ```text
//!  0-3   LUN LIST LENGTH (n-7): 8 x number of LUNs, big-endian
//!  4-7   reserved
//!  8-15  LUN 1 (8-byte SAM-5 LUN)
//!  ...
//!  n-7-n LUN n
//! ```
//!
//! Truncation rule: the 8-byte header is required. The LUN LIST LENGTH counts every LUN the
//! target has even when the allocation length cut the list (SPC-4 requires an allocation length
//! of at least 16, so an initiator asks again with a bigger buffer when the list length says
//! more); [`ReportLunsData::parse`] returns the whole LUNs present and the count reported.

use core::fmt;

use crate::error::{Layer, LenError};
use crate::scsi::data::DataError;
use crate::scsi::Lun;
use crate::wire::{be32, put_be32};

mod field {
    use crate::wire::Field;

    pub const LUN_LIST_LENGTH: Field = 0..4;
    pub const RESERVED: Field = 4..8;
}

/// Bytes of the header.
pub const HEADER_LEN: usize = 8;
/// Bytes of one LUN.
pub const LUN_LEN: usize = 8;

/// REPORT LUNS parameter data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReportLunsData {
    /// The LUNs, in the order sent.
    pub luns: Vec<Lun>,
    /// LUN LIST LENGTH / 8: the number of LUNs the target has, which is more than `luns.len()`
    /// when the response was cut. Not written by [`ReportLunsData::emit`], which always reports
    /// `luns.len()`.
    pub reported: u32,
}

impl ReportLunsData {
    /// The data listing `luns`.
    pub fn new(luns: Vec<Lun>) -> ReportLunsData {
        let reported = u32::try_from(luns.len()).unwrap_or(u32::MAX);
        ReportLunsData { luns, reported }
    }

    /// True when the target has more LUNs than the buffer held.
    pub fn is_truncated(&self) -> bool {
        u64::from(self.reported) > self.luns.len() as u64
    }

    /// Parses the data; see the module docs for the truncation rule.
    pub fn parse(buf: &[u8]) -> Result<ReportLunsData, DataError> {
        LenError::check(Layer::ScsiData, HEADER_LEN, buf.len())?;
        let list_length = be32(buf, field::LUN_LIST_LENGTH.start);
        // SPC-4: the LUN list length is 8 times the number of LUNs.
        if list_length % 8 != 0 {
            return Err(DataError::BadLunListLength(list_length));
        }
        let end = buf
            .len()
            .min(HEADER_LEN.saturating_add(list_length as usize));
        // end >= HEADER_LEN, checked above.
        let luns = buf[HEADER_LEN..end]
            .chunks_exact(LUN_LEN)
            .map(|c| {
                let mut b = [0u8; LUN_LEN];
                b.copy_from_slice(c);
                Lun(b)
            })
            .collect();
        Ok(ReportLunsData {
            luns,
            reported: list_length / 8,
        })
    }

    /// Header plus 8 bytes per LUN.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + LUN_LEN * self.luns.len()
    }

    /// Writes the data with LUN LIST LENGTH 8 x `luns.len()` (saturating at FFFFFFF8h, far
    /// beyond any real list). Panics if `buf` is shorter than [`ReportLunsData::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let list_length = u32::try_from(LUN_LEN * self.luns.len()).unwrap_or(0xFFFF_FFF8);
        put_be32(buf, field::LUN_LIST_LENGTH.start, list_length);
        buf[field::RESERVED].fill(0);
        for (chunk, lun) in buf[HEADER_LEN..self.buffer_len()]
            .chunks_exact_mut(LUN_LEN)
            .zip(&self.luns)
        {
            chunk.copy_from_slice(&lun.0);
        }
    }

    /// The emitted bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `REPORT LUNS data 3 luns: LUN0 LUN1 LUN2`, `... 2 of 40 luns: ...`; at most 16 listed.
impl fmt::Display for ReportLunsData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        write!(f, "REPORT LUNS data {}", self.luns.len())?;
        if self.is_truncated() {
            write!(f, " of {}", self.reported)?;
        }
        f.write_str(" luns")?;
        for (i, lun) in self.luns.iter().take(SHOWN).enumerate() {
            f.write_str(if i == 0 { ": " } else { " " })?;
            write!(f, "{lun}")?;
        }
        if self.luns.len() > SHOWN {
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

    static THREE: [u8; 32] = hex!(
        "00000018 00000000"
        "0000000000000000"
        "0001000000000000"
        "4100000000000000"
    );

    fn three() -> ReportLunsData {
        ReportLunsData::new(vec![
            Lun::ZERO,
            Lun::from_index(1).unwrap(),
            Lun::from_index(0x100).unwrap(),
        ])
    }

    #[test]
    fn test_parse() {
        let d = ReportLunsData::parse(&THREE).unwrap();
        assert_eq!(d, three());
        assert_eq!(d.reported, 3);
        assert!(!d.is_truncated());
        assert_eq!(d.to_string(), "REPORT LUNS data 3 luns: LUN0 LUN1 LUN256");
    }

    #[test]
    fn test_emit() {
        let d = three();
        assert_eq!(d.to_vec(), THREE);
        assert_eq!(ReportLunsData::parse(&d.to_vec()).unwrap(), d);
        let empty = ReportLunsData::new(Vec::new());
        assert_eq!(empty.to_vec(), hex!("00000000 00000000"));
        assert_eq!(empty.to_string(), "REPORT LUNS data 0 luns");
    }

    #[test]
    fn test_truncated_by_allocation_length() {
        // An initiator allocated 16 bytes: one LUN of the three.
        let d = ReportLunsData::parse(&THREE[..16]).unwrap();
        assert_eq!(d.luns, [Lun::ZERO]);
        assert_eq!(d.reported, 3);
        assert!(d.is_truncated());
        assert_eq!(d.to_string(), "REPORT LUNS data 1 of 3 luns: LUN0");
        // Partial LUNs are dropped.
        let d = ReportLunsData::parse(&THREE[..23]).unwrap();
        assert_eq!(d.luns.len(), 1);
        // A list length beyond any buffer is still only what is present.
        let d = ReportLunsData::parse(&hex!("fffffff8 00000000 0000000000000000")).unwrap();
        assert_eq!(d.luns.len(), 1);
        assert_eq!(d.reported, 0x1FFF_FFFF);
    }

    #[test]
    fn test_list_length_bounds_luns() {
        // Bytes past the list length (padding) are not LUNs.
        let mut b = THREE.to_vec();
        b[3] = 0x08;
        assert_eq!(ReportLunsData::parse(&b).unwrap().luns, [Lun::ZERO]);
    }

    #[test]
    fn test_bad_list_length() {
        let mut b = THREE;
        b[3] = 0x17;
        assert_eq!(
            ReportLunsData::parse(&b),
            Err(DataError::BadLunListLength(0x17))
        );
    }

    #[test]
    fn test_truncation() {
        for len in 0..HEADER_LEN {
            assert!(matches!(
                ReportLunsData::parse(&THREE[..len]),
                Err(DataError::Len(_))
            ));
        }
        for len in HEADER_LEN..=THREE.len() {
            let d = ReportLunsData::parse(&THREE[..len]).unwrap();
            assert_eq!(d.luns.len(), (len - HEADER_LEN) / 8);
            assert_eq!(d.reported, 3);
        }
    }

    #[test]
    fn test_display_limit() {
        let d = ReportLunsData::new((0..20).filter_map(Lun::from_index).collect());
        let s = d.to_string();
        assert!(s.starts_with("REPORT LUNS data 20 luns: LUN0 LUN1"), "{s}");
        assert!(s.ends_with("LUN15 ..."), "{s}");
    }

    proptest! {
        #[test]
        fn prop_round_trip(luns in proptest::collection::vec(any::<[u8; 8]>(), 0..300)) {
            let d = ReportLunsData::new(luns.into_iter().map(Lun).collect());
            prop_assert_eq!(ReportLunsData::parse(&d.to_vec()).unwrap(), d);
        }
    }
}
