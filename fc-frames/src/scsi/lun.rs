//! The 8-byte SCSI logical unit number (SAM-5 §4.7), as FCP_CMND and REPORT LUNS carry it.
//!
//! ```text
//!  byte 0          byte 1      bytes 2-7
//! +--+--+---------+-----------+-------------------------------+
//! |AM |bus/LUN hi | LUN lo    | second..fourth level (zero)   |
//! +--+--+---------+-----------+-------------------------------+
//! AM (bits 7-6 of byte 0): 00 peripheral device, 01 flat space, 10 logical unit, 11 extended
//! ```
//!
//! Single-level LUNs below 256 use peripheral device addressing (`00 nn 00 ..`), the form
//! Linux and most arrays use; 256..16383 use flat space addressing (`4h ll 00 ..`).

use core::fmt;

/// An 8-byte SCSI LUN, kept as the wire bytes so that any addressing method is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lun(pub [u8; 8]);

impl Lun {
    /// LUN 0, which every target must answer REPORT LUNS on (SPC-4 §6.33).
    pub const ZERO: Lun = Lun([0; 8]);
    /// Highest LUN number a single-level flat space address can hold.
    pub const MAX_INDEX: u16 = 0x3FFF;

    /// A single-level LUN from its number: peripheral device addressing below 256, flat space
    /// addressing up to [`Lun::MAX_INDEX`]. Returns `None` above that.
    pub const fn from_index(n: u16) -> Option<Lun> {
        if n < 0x100 {
            Some(Lun([0x00, n as u8, 0, 0, 0, 0, 0, 0]))
        } else if n <= Self::MAX_INDEX {
            Some(Lun([0x40 | (n >> 8) as u8, n as u8, 0, 0, 0, 0, 0, 0]))
        } else {
            None
        }
    }

    /// The LUN number of a single-level peripheral (bus 0) or flat space address; `None` for
    /// other addressing methods or multi-level LUNs.
    pub const fn index(self) -> Option<u16> {
        let b = self.0;
        if b[2] != 0 || b[3] != 0 || b[4] != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
            return None;
        }
        match b[0] >> 6 {
            0b00 if b[0] == 0 => Some(b[1] as u16),
            0b01 => Some(((b[0] & 0x3F) as u16) << 8 | b[1] as u16),
            _ => None,
        }
    }

    /// The wire bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0
    }
}

/// The LUN number where it has one (`LUN3`), the raw bytes otherwise.
impl fmt::Display for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(n) => write!(f, "LUN{n}"),
            None => {
                f.write_str("LUN ")?;
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_peripheral_and_flat() {
        assert_eq!(Lun::from_index(3), Some(Lun([0, 3, 0, 0, 0, 0, 0, 0])));
        assert_eq!(
            Lun::from_index(0x0123),
            Some(Lun([0x41, 0x23, 0, 0, 0, 0, 0, 0]))
        );
        assert_eq!(Lun::from_index(0x4000), None);
        for n in [0u16, 1, 255, 256, 0x3FFF] {
            assert_eq!(Lun::from_index(n).and_then(Lun::index), Some(n));
        }
    }

    #[test]
    fn test_other_addressing_has_no_index() {
        assert_eq!(Lun([0x01, 3, 0, 0, 0, 0, 0, 0]).index(), None); // bus 1
        assert_eq!(Lun([0x00, 3, 0, 1, 0, 0, 0, 0]).index(), None); // second level
        assert_eq!(Lun([0x80, 3, 0, 0, 0, 0, 0, 0]).index(), None); // logical unit addressing
        assert_eq!(
            Lun([0x80, 3, 0, 0, 0, 0, 0, 0]).to_string(),
            "LUN 8003000000000000"
        );
        assert_eq!(
            Lun::from_index(8).map(|l| l.to_string()),
            Some("LUN8".into())
        );
    }
}
