//! Basic Link Services (FC-LS-3 §3): ABTS, and its replies BA_ACC and BA_RJT.
//!
//! A BLS is told apart by the R_CTL of its frame header (TYPE 0x00), not by its payload:
//! ABTS 0x81 (empty payload), BA_ACC 0x84, BA_RJT 0x85.
//!
//! ```text
//! BA_ACC (FC-LS-3 §3)
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |SEQ_ID v| SEQ_ID |    reserved     |  SEQ_ID validity: 0x80 valid, 0x00 not
//! +--------+--------+--------+--------+
//! |      OX_ID      |      RX_ID      |
//! +--------+--------+--------+--------+
//! |  low SEQ_CNT    |  high SEQ_CNT   |
//! +--------+--------+--------+--------+
//!
//! BA_RJT (FC-LS-3 §3)
//! +--------+--------+--------+--------+
//! |reserved| reason | explan.| vendor |
//! +--------+--------+--------+--------+
//! ```

use core::fmt;

use crate::error::{Layer, LenError};
use crate::wire::{be16, put_be16};

/// R_CTL of a NOP.
pub const R_CTL_NOP: u8 = 0x80;
/// R_CTL of an ABTS (abort sequence).
pub const R_CTL_ABTS: u8 = 0x81;
/// R_CTL of a BA_ACC (basic accept).
pub const R_CTL_BA_ACC: u8 = 0x84;
/// R_CTL of a BA_RJT (basic reject).
pub const R_CTL_BA_RJT: u8 = 0x85;

/// What was wrong with a BLS payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlsError {
    /// The payload is shorter than its layout.
    #[error(transparent)]
    Len(#[from] LenError),
    /// The SEQ_ID validity byte of a BA_ACC is neither 0x80 nor 0x00.
    #[error("BA_ACC SEQ_ID validity {0:#04x} is neither 0x80 nor 0x00")]
    BadSeqIdValidity(u8),
}

/// Offsets of the BA_ACC payload.
mod field {
    use crate::wire::Field;

    pub const SEQ_ID_VALIDITY: usize = 0;
    pub const SEQ_ID: usize = 1;
    pub const RESERVED: Field = 2..4;
    pub const OX_ID: usize = 4;
    pub const RX_ID: usize = 6;
    pub const LOW_SEQ_CNT: usize = 8;
    pub const HIGH_SEQ_CNT: usize = 10;
    pub const END: usize = 12;
}

/// SEQ_ID validity byte: the SEQ_ID field names the last deliverable sequence.
const SEQ_ID_VALID: u8 = 0x80;
/// SEQ_ID validity byte: the SEQ_ID field is meaningless.
const SEQ_ID_INVALID: u8 = 0x00;

/// An ABTS: its payload is empty; any bytes present are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Abts;

impl Abts {
    /// Parses an ABTS payload. Never fails: ABTS carries no payload, and the parameter
    /// field of its frame header says whether it aborts a sequence or the exchange.
    pub fn parse(_buf: &[u8]) -> Result<Abts, BlsError> {
        Ok(Abts)
    }

    /// Bytes [`emit`](Self::emit) writes: none.
    pub const fn buffer_len(&self) -> usize {
        0
    }

    /// Writes nothing.
    pub fn emit(&self, _buf: &mut [u8]) {}

    /// The (empty) payload.
    pub fn to_vec(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// `ABTS`.
impl fmt::Display for Abts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ABTS")
    }
}

/// A view over a BA_ACC payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaAcc<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BaAcc<T> {
    /// Payload length.
    pub const LEN: usize = field::END;

    /// Wraps a buffer without checking its length; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> BaAcc<T> {
        BaAcc { buffer }
    }

    /// Wraps a buffer of at least 12 bytes.
    pub fn new_checked(buffer: T) -> Result<BaAcc<T>, LenError> {
        LenError::check(Layer::Bls, Self::LEN, buffer.as_ref().len())?;
        Ok(BaAcc { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// SEQ_ID validity byte (0x80 valid, 0x00 not).
    pub fn seq_id_validity(&self) -> u8 {
        self.buffer.as_ref()[field::SEQ_ID_VALIDITY]
    }

    /// SEQ_ID of the last deliverable sequence (meaningful when valid).
    pub fn seq_id(&self) -> u8 {
        self.buffer.as_ref()[field::SEQ_ID]
    }

    /// OX_ID of the aborted exchange.
    pub fn ox_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OX_ID)
    }

    /// RX_ID of the aborted exchange.
    pub fn rx_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::RX_ID)
    }

    /// Lowest SEQ_CNT of the aborted range.
    pub fn low_seq_cnt(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LOW_SEQ_CNT)
    }

    /// Highest SEQ_CNT of the aborted range.
    pub fn high_seq_cnt(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HIGH_SEQ_CNT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BaAcc<T> {
    /// Sets the SEQ_ID validity byte.
    pub fn set_seq_id_validity(&mut self, v: u8) {
        self.buffer.as_mut()[field::SEQ_ID_VALIDITY] = v;
    }

    /// Sets the SEQ_ID and zeroes the reserved bytes.
    pub fn set_seq_id(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[field::SEQ_ID] = v;
        b[field::RESERVED].fill(0);
    }

    /// Sets the OX_ID.
    pub fn set_ox_id(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::OX_ID, v);
    }

    /// Sets the RX_ID.
    pub fn set_rx_id(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::RX_ID, v);
    }

    /// Sets the low SEQ_CNT.
    pub fn set_low_seq_cnt(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::LOW_SEQ_CNT, v);
    }

    /// Sets the high SEQ_CNT.
    pub fn set_high_seq_cnt(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::HIGH_SEQ_CNT, v);
    }
}

/// A BA_ACC payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaAccRepr {
    /// SEQ_ID of the last deliverable sequence, or `None` (validity 0x00) when the whole
    /// exchange is aborted.
    pub seq_id: Option<u8>,
    /// OX_ID of the aborted exchange.
    pub ox_id: u16,
    /// RX_ID of the aborted exchange.
    pub rx_id: u16,
    /// Lowest SEQ_CNT of the aborted range.
    pub low_seq_cnt: u16,
    /// Highest SEQ_CNT of the aborted range.
    pub high_seq_cnt: u16,
}

impl BaAccRepr {
    /// The BA_ACC to an ABTS that aborts the whole exchange (the class 3 case): no SEQ_ID,
    /// SEQ_CNT range 0..=0xFFFF.
    pub const fn exchange_aborted(ox_id: u16, rx_id: u16) -> BaAccRepr {
        BaAccRepr {
            seq_id: None,
            ox_id,
            rx_id,
            low_seq_cnt: 0,
            high_seq_cnt: 0xFFFF,
        }
    }

    /// Parses a BA_ACC payload; the reserved bytes are not checked.
    pub fn parse(buf: &[u8]) -> Result<BaAccRepr, BlsError> {
        let v = BaAcc::new_checked(buf)?;
        // FC-LS-3: the SEQ_ID validity byte is 80h (SEQ_ID valid) or 00h (invalid);
        // other values are reserved.
        let seq_id = match v.seq_id_validity() {
            SEQ_ID_VALID => Some(v.seq_id()),
            SEQ_ID_INVALID => None,
            other => return Err(BlsError::BadSeqIdValidity(other)),
        };
        Ok(BaAccRepr {
            seq_id,
            ox_id: v.ox_id(),
            rx_id: v.rx_id(),
            low_seq_cnt: v.low_seq_cnt(),
            high_seq_cnt: v.high_seq_cnt(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 12.
    pub const fn buffer_len(&self) -> usize {
        field::END
    }

    /// Writes the payload. Panics if `buf` is shorter than 12 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let mut v = BaAcc::new_unchecked(buf);
        match self.seq_id {
            Some(id) => {
                v.set_seq_id_validity(SEQ_ID_VALID);
                v.set_seq_id(id);
            }
            None => {
                v.set_seq_id_validity(SEQ_ID_INVALID);
                v.set_seq_id(0);
            }
        }
        v.set_ox_id(self.ox_id);
        v.set_rx_id(self.rx_id);
        v.set_low_seq_cnt(self.low_seq_cnt);
        v.set_high_seq_cnt(self.high_seq_cnt);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `BA_ACC ox_id=0x1234 rx_id=0x0001 seq_cnt=0x0000-0xffff`, with ` seq_id=0x05` when valid.
impl fmt::Display for BaAccRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BA_ACC ox_id={:#06x} rx_id={:#06x}",
            self.ox_id, self.rx_id
        )?;
        if let Some(id) = self.seq_id {
            write!(f, " seq_id={id:#04x}")?;
        }
        write!(
            f,
            " seq_cnt={:#06x}-{:#06x}",
            self.low_seq_cnt, self.high_seq_cnt
        )
    }
}

code_point! {
    /// BA_RJT reason code (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct BaRjtReason(pub u8) {
        /// Invalid command code.
        INVALID_COMMAND_CODE = 0x01 => "invalid command code",
        /// Logical error.
        LOGICAL_ERROR = 0x03 => "logical error",
        /// Logical busy.
        LOGICAL_BUSY = 0x05 => "logical busy",
        /// Protocol error.
        PROTOCOL_ERROR = 0x07 => "protocol error",
        /// Unable to perform the command request.
        UNABLE_TO_PERFORM = 0x09 => "unable to perform",
        /// Vendor unique; see the vendor unique byte.
        VENDOR_UNIQUE = 0xFF => "vendor unique",
    }

    /// The standard's description, or `None` for an unknown code.
    pub const fn name;
}

/// `logical error (0x03)`, or the hex code alone for an unknown one.
impl fmt::Display for BaRjtReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

code_point! {
    /// BA_RJT reason explanation (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct BaRjtExplanation(pub u8) {
        /// No additional explanation.
        NONE = 0x00 => "none",
        /// Invalid OX_ID-RX_ID combination.
        INVALID_OX_ID_RX_ID = 0x03 => "invalid OX_ID-RX_ID combination",
        /// Sequence aborted, no sequence information provided.
        SEQUENCE_ABORTED = 0x05 => "sequence aborted, no sequence information",
    }

    /// The standard's description, or `None` for an unknown code.
    pub const fn name;
}

/// `invalid OX_ID-RX_ID combination (0x03)`, or the hex code alone for an unknown one.
impl fmt::Display for BaRjtExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// A BA_RJT payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaRjt {
    /// Why the ABTS was rejected.
    pub reason: BaRjtReason,
    /// Explanation.
    pub explanation: BaRjtExplanation,
    /// Vendor unique code (meaningful with [`BaRjtReason::VENDOR_UNIQUE`]).
    pub vendor_unique: u8,
}

impl BaRjt {
    /// Payload length.
    pub const LEN: usize = 4;

    /// A BA_RJT with the given reason and explanation and vendor unique byte zero.
    pub const fn new(reason: BaRjtReason, explanation: BaRjtExplanation) -> BaRjt {
        BaRjt {
            reason,
            explanation,
            vendor_unique: 0,
        }
    }

    /// Parses a BA_RJT payload; the reserved byte is not checked.
    pub fn parse(buf: &[u8]) -> Result<BaRjt, BlsError> {
        LenError::check(Layer::Bls, Self::LEN, buf.len())?;
        // Invariant: buf.len() >= 4 (checked above).
        Ok(BaRjt {
            reason: BaRjtReason(buf[1]),
            explanation: BaRjtExplanation(buf[2]),
            vendor_unique: buf[3],
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 4.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than 4 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..Self::LEN].copy_from_slice(&[
            0,
            self.reason.0,
            self.explanation.0,
            self.vendor_unique,
        ]);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `BA_RJT reason=logical error (0x03) explanation=invalid OX_ID-RX_ID combination (0x03)`,
/// with ` vendor=0xNN` where the vendor unique byte is set.
impl fmt::Display for BaRjt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BA_RJT reason={} explanation={}",
            self.reason, self.explanation
        )?;
        if self.vendor_unique != 0 {
            write!(f, " vendor={:#04x}", self.vendor_unique)?;
        }
        Ok(())
    }
}

/// Any BLS payload, typed by the R_CTL of its frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bls {
    /// ABTS (R_CTL 0x81).
    Abts,
    /// BA_ACC (R_CTL 0x84).
    BaAcc(BaAccRepr),
    /// BA_RJT (R_CTL 0x85).
    BaRjt(BaRjt),
    /// Another BLS R_CTL (NOP, PRMT, ...) with its payload.
    Unknown {
        /// The frame's R_CTL.
        r_ctl: u8,
        /// The payload.
        payload: Vec<u8>,
    },
}

impl Bls {
    /// Parses a BLS payload by its frame's R_CTL.
    pub fn parse(r_ctl: u8, buf: &[u8]) -> Result<Bls, BlsError> {
        Ok(match r_ctl {
            R_CTL_ABTS => {
                Abts::parse(buf)?;
                Bls::Abts
            }
            R_CTL_BA_ACC => Bls::BaAcc(BaAccRepr::parse(buf)?),
            R_CTL_BA_RJT => Bls::BaRjt(BaRjt::parse(buf)?),
            _ => Bls::Unknown {
                r_ctl,
                payload: buf.to_vec(),
            },
        })
    }

    /// The R_CTL the frame carrying this payload has.
    pub fn r_ctl(&self) -> u8 {
        match self {
            Bls::Abts => R_CTL_ABTS,
            Bls::BaAcc(_) => R_CTL_BA_ACC,
            Bls::BaRjt(_) => R_CTL_BA_RJT,
            Bls::Unknown { r_ctl, .. } => *r_ctl,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Bls::Abts => 0,
            Bls::BaAcc(a) => a.buffer_len(),
            Bls::BaRjt(r) => r.buffer_len(),
            Bls::Unknown { payload, .. } => payload.len(),
        }
    }

    /// Writes the payload. Panics if `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            Bls::Abts => {}
            Bls::BaAcc(a) => a.emit(buf),
            Bls::BaRjt(r) => r.emit(buf),
            Bls::Unknown { payload, .. } => buf[..payload.len()].copy_from_slice(payload),
        }
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `ABTS`, the BA_ACC or BA_RJT summary, or `BLS r_ctl=0x80 len=0`.
impl fmt::Display for Bls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bls::Abts => write!(f, "{Abts}"),
            Bls::BaAcc(a) => write!(f, "{a}"),
            Bls::BaRjt(r) => write!(f, "{r}"),
            Bls::Unknown { r_ctl, payload } => {
                write!(f, "BLS r_ctl={r_ctl:#04x} len={}", payload.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    // tshark (R_CTL 0x84, TYPE 0x00, after an ABTS with OX_ID 0x1234): fc.bls_seqidvld == 0x00,
    // fc.bls_oxid == 0x1234, fc.bls_rxid == 0x0001, fc.bls_lseqcnt == 0x0000,
    // fc.bls_hseqcnt == 0xffff.
    static BA_ACC: [u8; 12] = hex!("00000000 12340001 0000ffff");
    // SEQ_ID 5 valid, SEQ_CNT range 3..=9. tshark: fc.bls_seqidvld == 0x80,
    // fc.bls_lastseqid == 0x05.
    static BA_ACC_SEQ: [u8; 12] = hex!("80050000 12340001 00030009");
    // tshark (R_CTL 0x85): fc.bls_reason == 0x03, fc.bls_rjtdetail == 0x03.
    static BA_RJT: [u8; 4] = hex!("00030300");

    prop_compose! {
        fn arb_ba_acc()(
            seq_id in proptest::option::of(any::<u8>()),
            (ox_id, rx_id, low_seq_cnt, high_seq_cnt) in any::<(u16, u16, u16, u16)>(),
        ) -> BaAccRepr {
            BaAccRepr { seq_id, ox_id, rx_id, low_seq_cnt, high_seq_cnt }
        }
    }

    prop_compose! {
        fn arb_ba_rjt()([r, e, v] in any::<[u8; 3]>()) -> BaRjt {
            BaRjt {
                reason: BaRjtReason(r),
                explanation: BaRjtExplanation(e),
                vendor_unique: v,
            }
        }
    }

    fn arb_bls() -> impl Strategy<Value = Bls> {
        prop_oneof![
            Just(Bls::Abts),
            arb_ba_acc().prop_map(Bls::BaAcc),
            arb_ba_rjt().prop_map(Bls::BaRjt),
            (
                any::<u8>().prop_filter("known", |r| ![0x81, 0x84, 0x85].contains(r)),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(r_ctl, payload)| Bls::Unknown { r_ctl, payload }),
        ]
    }

    #[test]
    fn test_parse() {
        assert_eq!(
            BaAccRepr::parse(&BA_ACC),
            Ok(BaAccRepr::exchange_aborted(0x1234, 0x0001))
        );
        assert_eq!(
            BaAccRepr::parse(&BA_ACC_SEQ),
            Ok(BaAccRepr {
                seq_id: Some(5),
                ox_id: 0x1234,
                rx_id: 0x0001,
                low_seq_cnt: 3,
                high_seq_cnt: 9
            })
        );
        assert_eq!(
            BaRjt::parse(&BA_RJT),
            Ok(BaRjt::new(
                BaRjtReason::LOGICAL_ERROR,
                BaRjtExplanation::INVALID_OX_ID_RX_ID
            ))
        );
        assert_eq!(Abts::parse(&[]), Ok(Abts));
        assert_eq!(Bls::parse(R_CTL_ABTS, &[]), Ok(Bls::Abts));
        assert_eq!(
            Bls::parse(R_CTL_BA_RJT, &BA_RJT).map(|b| b.r_ctl()),
            Ok(R_CTL_BA_RJT)
        );
        assert_eq!(
            Bls::parse(R_CTL_NOP, &[1, 2]),
            Ok(Bls::Unknown {
                r_ctl: 0x80,
                payload: vec![1, 2]
            })
        );
    }

    #[test]
    fn test_view() {
        let v = BaAcc::new_checked(&BA_ACC_SEQ[..]).unwrap();
        assert_eq!(v.seq_id_validity(), 0x80);
        assert_eq!(v.seq_id(), 5);
        assert_eq!(v.ox_id(), 0x1234);
        assert_eq!(v.rx_id(), 0x0001);
        assert_eq!(v.low_seq_cnt(), 3);
        assert_eq!(v.high_seq_cnt(), 9);
        assert_eq!(v.into_inner(), &BA_ACC_SEQ[..]);
        assert!(BaAcc::new_checked(&BA_ACC_SEQ[..11]).is_err());
    }

    #[test]
    fn test_emit() {
        let a = BaAccRepr::exchange_aborted(0x1234, 0x0001);
        assert_eq!(a.buffer_len(), 12);
        assert_eq!(a.to_vec(), BA_ACC);
        assert_eq!(BaAccRepr::parse(&a.to_vec()), Ok(a));
        let s = BaAccRepr {
            seq_id: Some(5),
            low_seq_cnt: 3,
            high_seq_cnt: 9,
            ..a
        };
        assert_eq!(s.to_vec(), BA_ACC_SEQ);
        assert_eq!(BaAccRepr::parse(&s.to_vec()), Ok(s));
        let r = BaRjt::new(
            BaRjtReason::LOGICAL_ERROR,
            BaRjtExplanation::INVALID_OX_ID_RX_ID,
        );
        assert_eq!(r.buffer_len(), 4);
        assert_eq!(r.to_vec(), BA_RJT);
        assert_eq!(BaRjt::parse(&r.to_vec()), Ok(r));
        assert_eq!(Abts.buffer_len(), 0);
        assert!(Abts.to_vec().is_empty());
        assert_eq!(Bls::BaAcc(a).to_vec(), BA_ACC);
        assert!(Bls::Abts.to_vec().is_empty());
    }

    #[test]
    fn test_display() {
        assert_eq!(Abts.to_string(), "ABTS");
        assert_eq!(
            BaAccRepr::exchange_aborted(0x1234, 1).to_string(),
            "BA_ACC ox_id=0x1234 rx_id=0x0001 seq_cnt=0x0000-0xffff"
        );
        assert_eq!(
            BaAccRepr::parse(&BA_ACC_SEQ).unwrap().to_string(),
            "BA_ACC ox_id=0x1234 rx_id=0x0001 seq_id=0x05 seq_cnt=0x0003-0x0009"
        );
        assert_eq!(
            BaRjt::parse(&BA_RJT).unwrap().to_string(),
            "BA_RJT reason=logical error (0x03) explanation=invalid OX_ID-RX_ID combination (0x03)"
        );
        assert_eq!(
            BaRjt {
                reason: BaRjtReason(0x42),
                explanation: BaRjtExplanation(0x42),
                vendor_unique: 7
            }
            .to_string(),
            "BA_RJT reason=0x42 explanation=0x42 vendor=0x07"
        );
        assert_eq!(Bls::Abts.to_string(), "ABTS");
        assert_eq!(
            Bls::Unknown {
                r_ctl: 0x80,
                payload: vec![]
            }
            .to_string(),
            "BLS r_ctl=0x80 len=0"
        );
    }

    #[test]
    fn test_bad_seq_id_validity() {
        let mut b = BA_ACC;
        b[0] = 0x40;
        assert_eq!(BaAccRepr::parse(&b), Err(BlsError::BadSeqIdValidity(0x40)));
        assert_eq!(
            BlsError::BadSeqIdValidity(0x40).to_string(),
            "BA_ACC SEQ_ID validity 0x40 is neither 0x80 nor 0x00"
        );
    }

    #[test]
    fn test_truncated() {
        for len in 0..BA_ACC.len() {
            assert!(matches!(
                BaAccRepr::parse(&BA_ACC[..len]),
                Err(BlsError::Len(LenError { required: 12, .. }))
            ));
            assert!(Bls::parse(R_CTL_BA_ACC, &BA_ACC[..len]).is_err());
        }
        for len in 0..BA_RJT.len() {
            assert!(matches!(
                BaRjt::parse(&BA_RJT[..len]),
                Err(BlsError::Len(LenError { required: 4, .. }))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(a in arb_ba_acc(), r in arb_ba_rjt(), b in arb_bls()) {
            prop_assert_eq!(BaAccRepr::parse(&a.to_vec()), Ok(a));
            prop_assert_eq!(BaRjt::parse(&r.to_vec()), Ok(r));
            prop_assert_eq!(Bls::parse(b.r_ctl(), &b.to_vec()), Ok(b));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000), r_ctl in any::<u8>()) {
            let _ = BaAccRepr::parse(&buf);
            let _ = BaRjt::parse(&buf);
            let _ = Abts::parse(&buf);
            if let Ok(b) = Bls::parse(r_ctl, &buf) {
                let _ = b.to_string();
            }
        }
    }
}
