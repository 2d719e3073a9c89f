//! RRQ, reinstate recovery qualifier (FC-LS-3 §4.2): sent after an ABTS to free the
//! exchange's OX_ID/RX_ID for reuse. The LS_ACC carries nothing but its command word.
//!
//! ```text
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  0x12  |  0x00  |  0x00  |  0x00  |
//! +--------+--------+--------+--------+
//! |reserved|   exchange originator S_ID |
//! +--------+--------+--------+--------+
//! |      OX_ID      |      RX_ID      |
//! +--------+--------+--------+--------+
//! ```

use core::fmt;

use super::{check_code, emit_command_word, ElsCode, ElsError};
use crate::addr::FcId;
use crate::wire::{be16, put_be16, put_be24};

/// Offsets of the RRQ payload.
mod field {
    pub const ORIGINATOR: usize = 5;
    pub const OX_ID: usize = 8;
    pub const RX_ID: usize = 10;
    pub const END: usize = 12;
}

/// An RRQ payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rrq {
    /// S_ID of the exchange originator.
    pub originator: FcId,
    /// OX_ID of the aborted exchange.
    pub ox_id: u16,
    /// RX_ID of the aborted exchange.
    pub rx_id: u16,
}

impl Rrq {
    /// Payload length.
    pub const LEN: usize = field::END;

    /// Parses an RRQ; the reserved byte is not checked.
    pub fn parse(buf: &[u8]) -> Result<Rrq, ElsError> {
        check_code(buf, ElsCode::RRQ, Self::LEN)?;
        // Invariant: buf.len() >= 12 (checked above).
        Ok(Rrq {
            originator: super::fcid_at(buf, field::ORIGINATOR),
            ox_id: be16(buf, field::OX_ID),
            rx_id: be16(buf, field::RX_ID),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 12.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than 12 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(ElsCode::RRQ, buf);
        buf[field::ORIGINATOR - 1] = 0;
        put_be24(buf, field::ORIGINATOR, self.originator.to_u32());
        put_be16(buf, field::OX_ID, self.ox_id);
        put_be16(buf, field::RX_ID, self.rx_id);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `RRQ originator=010100 ox_id=0x1234 rx_id=0xffff`.
impl fmt::Display for Rrq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RRQ originator={} ox_id={:#06x} rx_id={:#06x}",
            self.originator, self.ox_id, self.rx_id
        )
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_rrq;

    // tshark: fcels.opcode == 0x12, fcels.portid == 01.01.00, fcels.oxid == 0x1234,
    // fcels.rxid == 0xffff.
    static RRQ: [u8; 12] = hex!("12000000 00010100 1234ffff");

    fn rrq() -> Rrq {
        Rrq {
            originator: FcId::from_parts(1, 1, 0),
            ox_id: 0x1234,
            rx_id: 0xFFFF,
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(Rrq::parse(&RRQ), Ok(rrq()));
    }

    #[test]
    fn test_emit() {
        let r = rrq();
        assert_eq!(r.buffer_len(), 12);
        assert_eq!(r.to_vec(), RRQ);
        assert_eq!(Rrq::parse(&r.to_vec()), Ok(r));
    }

    #[test]
    fn test_display() {
        assert_eq!(
            rrq().to_string(),
            "RRQ originator=010100 ox_id=0x1234 rx_id=0xffff"
        );
    }

    #[test]
    fn test_wrong_code() {
        let mut b = RRQ;
        b[0] = 0x13;
        assert!(matches!(
            Rrq::parse(&b),
            Err(ElsError::UnexpectedCode { .. })
        ));
    }

    #[test]
    fn test_truncated() {
        for len in 0..RRQ.len() {
            assert!(matches!(Rrq::parse(&RRQ[..len]), Err(ElsError::Len(_))));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(r in arb_rrq()) {
            prop_assert_eq!(Rrq::parse(&r.to_vec()), Ok(r));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = Rrq::parse(&buf);
        }
    }
}
