//! LOGO, logout (FC-LS-3 §4.2). The LS_ACC carries nothing but its command word.
//!
//! ```text
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  0x05  |  0x00  |  0x00  |  0x00  |
//! +--------+--------+--------+--------+
//! |reserved|      N_Port ID           |  the N_Port logging out
//! +--------+--------+--------+--------+
//! |         port name (8)             |
//! +--------+--------+--------+--------+
//! ```

use core::fmt;

use super::{check_code, emit_command_word, ElsCode, ElsError};
use crate::addr::{FcId, Wwn};
use crate::wire::{be64, put_be24, put_be64};

/// Offsets of the LOGO payload.
mod field {
    pub const N_PORT_ID: usize = 5;
    pub const PORT_NAME: usize = 8;
    pub const END: usize = 16;
}

/// A LOGO payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Logo {
    /// N_Port ID of the port logging out.
    pub n_port_id: FcId,
    /// Port name of the port logging out.
    pub port_name: Wwn,
}

impl Logo {
    /// Payload length.
    pub const LEN: usize = field::END;

    /// Parses a LOGO; the reserved byte is not checked.
    pub fn parse(buf: &[u8]) -> Result<Logo, ElsError> {
        check_code(buf, ElsCode::LOGO, Self::LEN)?;
        // Invariant: buf.len() >= 16 (checked above).
        Ok(Logo {
            n_port_id: super::fcid_at(buf, field::N_PORT_ID),
            port_name: Wwn::from_u64(be64(buf, field::PORT_NAME)),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 16.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than 16 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(ElsCode::LOGO, buf);
        buf[field::N_PORT_ID - 1] = 0;
        put_be24(buf, field::N_PORT_ID, self.n_port_id.to_u32());
        put_be64(buf, field::PORT_NAME, self.port_name.to_u64());
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `LOGO nport=010100 wwpn=20:00:00:25:b5:00:00:01`.
impl fmt::Display for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LOGO nport={} wwpn={}", self.n_port_id, self.port_name)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_logo;
    use crate::error::LenError;

    // tshark: fcels.opcode == 0x05, fcels.portid == 01.01.00,
    // fcels.npname == 20:00:00:25:b5:00:00:01.
    static LOGO: [u8; 16] = hex!("05000000 00010100 20000025b5000001");

    fn logo() -> Logo {
        Logo {
            n_port_id: FcId::from_parts(1, 1, 0),
            port_name: Wwn([0x20, 0, 0, 0x25, 0xb5, 0, 0, 1]),
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(Logo::parse(&LOGO), Ok(logo()));
    }

    #[test]
    fn test_emit() {
        let l = logo();
        assert_eq!(l.buffer_len(), 16);
        assert_eq!(l.to_vec(), LOGO);
        assert_eq!(Logo::parse(&l.to_vec()), Ok(l));
    }

    #[test]
    fn test_display() {
        assert_eq!(
            logo().to_string(),
            "LOGO nport=010100 wwpn=20:00:00:25:b5:00:00:01"
        );
    }

    #[test]
    fn test_wrong_code() {
        let mut b = LOGO;
        b[0] = 0x03;
        assert_eq!(
            Logo::parse(&b),
            Err(ElsError::UnexpectedCode {
                expected: ElsCode::LOGO,
                found: ElsCode::PLOGI
            })
        );
    }

    #[test]
    fn test_truncated() {
        for len in 0..LOGO.len() {
            assert!(matches!(
                Logo::parse(&LOGO[..len]),
                Err(ElsError::Len(LenError { required: 16, .. }))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(l in arb_logo()) {
            prop_assert_eq!(Logo::parse(&l.to_vec()), Ok(l));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = Logo::parse(&buf);
        }
    }
}
