//! The tape command typed here (SSC-3 §7): READ BLOCK LIMITS.

use core::fmt;

use super::{expect_opcode, fixed, flag, out, show_control, CdbError, Control, OperationCode};

/// READ BLOCK LIMITS (SSC-3 §7.7): the block lengths a tape drive accepts.
///
/// ```text
///  0 0x05 | 1 MLOC (0), SSC-4 | 2-4 reserved | 5 CONTROL
/// ```
///
/// With MLOC (SSC-4) the drive returns the 20-byte maximum logical object identifier
/// form instead of the 6-byte block limits; a drive without it rejects the command (the
/// engine's decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReadBlockLimits {
    /// MLOC: report the maximum logical object identifier (SSC-4).
    pub mloc: bool,
    /// CONTROL.
    pub control: Control,
}

impl ReadBlockLimits {
    /// Bytes of the CDB.
    pub const LEN: usize = 6;

    /// Parses the CDB at the front of `buf` (longer buffers are fine).
    pub fn parse(buf: &[u8]) -> Result<ReadBlockLimits, CdbError> {
        expect_opcode(buf, &[OperationCode::READ_BLOCK_LIMITS])?;
        let b = fixed::<6>(buf)?;
        Ok(ReadBlockLimits {
            mloc: b[1] & 0x01 != 0,
            control: Control::from_bits_retain(b[5]),
        })
    }

    /// READ BLOCK LIMITS.
    pub const fn opcode(&self) -> OperationCode {
        OperationCode::READ_BLOCK_LIMITS
    }

    /// Bytes of the CDB: 6.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the CDB into `buf[..6]`; panics if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = out::<6>(buf);
        b[0] = self.opcode().0;
        b[1] = u8::from(self.mloc);
        b[5] = self.control.bits();
    }

    /// The CDB as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Bytes of data in: 6, or 20 with MLOC. The command has no allocation length.
    pub const fn data_len(&self) -> u64 {
        if self.mloc {
            20
        } else {
            6
        }
    }
}

/// `READ BLOCK LIMITS`, `READ BLOCK LIMITS mloc`.
impl fmt::Display for ReadBlockLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("READ BLOCK LIMITS")?;
        flag(f, self.mloc, "mloc")?;
        show_control(f, self.control)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    #[test]
    fn test_mloc() {
        let bytes = hex!("05 01 00 00 00 00");
        let rbl = ReadBlockLimits::parse(&bytes).unwrap();
        assert!(rbl.mloc);
        assert_eq!(rbl.data_len(), 20);
        assert_eq!(rbl.to_vec(), bytes);
        assert_eq!(rbl.to_string(), "READ BLOCK LIMITS mloc");
        assert_eq!(ReadBlockLimits::default().data_len(), 6);
    }
}
