//! State change notification: RSCN, the registered state change notification the fabric
//! controller sends (FC-LS-3 §4.2), and SCR, the registration that asks for it
//! (FC-LS-3 §4.2). Both are answered with a bare LS_ACC.
//!
//! ```text
//! RSCN
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  0x61  |  0x04  | payload length  |  payload length = 4 + 4 × pages
//! +--------+--------+--------+--------+
//! |rr qqqq ff|  affected N_Port ID    |  page: bits 7-6 reserved, 5-2 event qualifier,
//! +--------+--------+--------+--------+        1-0 address format; repeated
//!
//! SCR
//! +--------+--------+--------+--------+
//! |  0x62  |  0x00  |  0x00  |  0x00  |
//! +--------+--------+--------+--------+
//! |        reserved          |function|  1 fabric-detected, 2 N_Port-detected, 3 full,
//! +--------+--------+--------+--------+  0xFF clear
//! ```
//!
//! An RSCN whose page length is not 4, or whose payload length is not 4 + 4n (n ≥ 1) or
//! disagrees with the bytes present, fails to parse with a content error; the number of
//! pages is therefore bounded by the bytes present.

use core::fmt;

use super::{check_code, emit_command_word, ElsCode, ElsError, COMMAND_WORD_LEN};
use crate::addr::FcId;
use crate::error::{Layer, LenError};
use crate::wire::{be16, put_be16, put_be24};

/// Offsets of the RSCN command word and page.
mod field {
    pub const PAGE_LEN: usize = 1;
    pub const PAYLOAD_LEN: usize = 2;
    pub const PAGE_FLAGS: usize = 0;
    pub const PAGE_ID: usize = 1;
    pub const SCR_FUNCTION: usize = 7;
}

/// Length of an RSCN page, the value of byte 1.
pub const RSCN_PAGE_LEN: u8 = 0x04;

code_point! {
    /// What changed, byte 0 bits 5-2 of an RSCN page (FC-LS-3). Open: any 4-bit value
    /// is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct RscnEventQualifier(pub u8) {
        /// Event not specified.
        UNSPECIFIED = 0x0 => "unspecified",
        /// A name server object changed.
        NAME_SERVER_OBJECT = 0x1 => "changed name server object",
        /// A port attribute changed.
        PORT_ATTRIBUTE = 0x2 => "changed port attribute",
        /// A service object changed.
        SERVICE_OBJECT = 0x3 => "changed service object",
        /// The switch configuration changed.
        SWITCH_CONFIG = 0x4 => "changed switch config",
    }

    /// A description, or `None` for an unknown code.
    pub const fn name;
}

/// The description, or `qualifier N` for an unknown code.
impl fmt::Display for RscnEventQualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "qualifier {}", self.0),
        }
    }
}

/// Which addresses a page covers, byte 0 bits 1-0 (FC-LS-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RscnAddressFormat(pub u8);

impl RscnAddressFormat {
    /// One port: all 24 bits of the affected ID.
    pub const PORT: RscnAddressFormat = RscnAddressFormat(0);
    /// An area: domain and area.
    pub const AREA: RscnAddressFormat = RscnAddressFormat(1);
    /// A domain.
    pub const DOMAIN: RscnAddressFormat = RscnAddressFormat(2);
    /// The whole fabric.
    pub const FABRIC: RscnAddressFormat = RscnAddressFormat(3);

    /// `port`, `area`, `domain` or `fabric`.
    pub const fn name(self) -> &'static str {
        match self.0 & 0x3 {
            0 => "port",
            1 => "area",
            2 => "domain",
            _ => "fabric",
        }
    }

    /// True when `id` is among the addresses a page for `affected` in this format covers.
    pub const fn covers(self, affected: FcId, id: FcId) -> bool {
        let mask = match self.0 & 0x3 {
            0 => 0xFF_FFFF,
            1 => 0xFF_FF00,
            2 => 0xFF_0000,
            _ => 0,
        };
        affected.to_u32() & mask == id.to_u32() & mask
    }
}

/// `port`, `area`, `domain` or `fabric`.
impl fmt::Display for RscnAddressFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One affected N_Port ID page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RscnPage {
    /// What changed (4 bits; `emit` writes the low 4).
    pub qualifier: RscnEventQualifier,
    /// Which addresses (2 bits; `emit` writes the low 2).
    pub format: RscnAddressFormat,
    /// The affected port, area (port byte meaningless), domain or fabric.
    pub affected: FcId,
}

impl RscnPage {
    /// Length in bytes.
    pub const LEN: usize = RSCN_PAGE_LEN as usize;

    /// A page for a single port, qualifier unspecified.
    pub const fn port(affected: FcId) -> RscnPage {
        RscnPage {
            qualifier: RscnEventQualifier::UNSPECIFIED,
            format: RscnAddressFormat::PORT,
            affected,
        }
    }

    /// Reads a page. The caller guarantees `b.len() >= 4`.
    fn read(b: &[u8]) -> RscnPage {
        let flags = b[field::PAGE_FLAGS];
        RscnPage {
            qualifier: RscnEventQualifier((flags >> 2) & 0x0F),
            format: RscnAddressFormat(flags & 0x03),
            affected: super::fcid_at(b, field::PAGE_ID),
        }
    }

    /// Writes a page. The caller guarantees `b.len() >= 4`.
    fn write(&self, b: &mut [u8]) {
        b[field::PAGE_FLAGS] = ((self.qualifier.0 & 0x0F) << 2) | (self.format.0 & 0x03);
        put_be24(b, field::PAGE_ID, self.affected.to_u32());
    }
}

/// `port 010100`, with ` (changed port attribute)` when the qualifier is set.
impl fmt::Display for RscnPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.affected)?;
        if self.qualifier != RscnEventQualifier::UNSPECIFIED {
            write!(f, " ({})", self.qualifier)?;
        }
        Ok(())
    }
}

/// An RSCN payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rscn {
    /// The affected addresses (at least one for a valid payload).
    pub pages: Vec<RscnPage>,
}

impl Rscn {
    /// Parses an RSCN. The number of pages comes from the payload length, which must match
    /// the bytes present.
    pub fn parse(buf: &[u8]) -> Result<Rscn, ElsError> {
        check_code(buf, ElsCode::RSCN, COMMAND_WORD_LEN)?;
        // Invariant: buf.len() >= 4 (checked above).
        // FC-LS-3: the page length shall be 04h.
        let page_len = buf[field::PAGE_LEN];
        if page_len != RSCN_PAGE_LEN {
            return Err(ElsError::BadPageLength {
                els: ElsCode::RSCN,
                expected: RSCN_PAGE_LEN,
                actual: page_len,
            });
        }
        // FC-LS-3: the payload length is 4 plus 4 per page, 8 to 65532.
        let field = be16(buf, field::PAYLOAD_LEN);
        let payload_len = usize::from(field);
        let bad_len = || ElsError::BadPayloadLength {
            els: ElsCode::RSCN,
            field,
            page_len,
            actual: buf.len(),
        };
        if payload_len < COMMAND_WORD_LEN + RscnPage::LEN || payload_len % RscnPage::LEN != 0 {
            return Err(bad_len());
        }
        LenError::check(Layer::Els, payload_len, buf.len())?;
        if buf.len() != payload_len {
            return Err(bad_len());
        }
        let pages = buf[COMMAND_WORD_LEN..]
            .chunks_exact(RscnPage::LEN)
            .map(RscnPage::read)
            .collect();
        Ok(Rscn { pages })
    }

    /// Bytes [`emit`](Self::emit) writes: 4 + 4 × pages.
    pub fn buffer_len(&self) -> usize {
        COMMAND_WORD_LEN + RscnPage::LEN * self.pages.len()
    }

    /// Writes the payload. Panics if `buf` is shorter than [`buffer_len`](Self::buffer_len)
    /// or the payload length exceeds 65535 bytes (more than 16382 pages).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let len16 = u16::try_from(len).unwrap_or_else(|_| panic!("RSCN of {len} bytes"));
        buf[0] = ElsCode::RSCN.0;
        buf[field::PAGE_LEN] = RSCN_PAGE_LEN;
        put_be16(buf, field::PAYLOAD_LEN, len16);
        for (page, chunk) in self
            .pages
            .iter()
            .zip(buf[COMMAND_WORD_LEN..len].chunks_exact_mut(RscnPage::LEN))
        {
            page.write(chunk);
        }
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// Pages shown in a one-line summary before the rest is counted.
const DISPLAY_PAGES: usize = 8;

/// `RSCN port 010100, area 010200 (changed port attribute)`, the first eight pages and
/// `, +N more`.
impl fmt::Display for Rscn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RSCN")?;
        for (i, page) in self.pages.iter().take(DISPLAY_PAGES).enumerate() {
            f.write_str(if i == 0 { " " } else { ", " })?;
            write!(f, "{page}")?;
        }
        if self.pages.len() > DISPLAY_PAGES {
            write!(f, ", +{} more", self.pages.len() - DISPLAY_PAGES)?;
        }
        Ok(())
    }
}

code_point! {
    /// SCR registration function (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct ScrFunction(pub u8) {
        /// Fabric-detected registration: events the fabric detects.
        FABRIC_DETECTED = 0x01 => "fabric-detected",
        /// N_Port-detected registration: events other N_Ports report.
        N_PORT_DETECTED = 0x02 => "N_Port-detected",
        /// Full registration: both.
        FULL = 0x03 => "full",
        /// Clear all registrations.
        CLEAR = 0xFF => "clear",
    }

    /// A description, or `None` for an unknown code.
    pub const fn name;
}

/// `full (0x03)`, or the hex code alone for an unknown one.
impl fmt::Display for ScrFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// An SCR payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scr {
    /// What to register for.
    pub function: ScrFunction,
}

impl Scr {
    /// Payload length.
    pub const LEN: usize = 8;

    /// Parses an SCR; reserved bytes are not checked.
    pub fn parse(buf: &[u8]) -> Result<Scr, ElsError> {
        check_code(buf, ElsCode::SCR, Self::LEN)?;
        // Invariant: buf.len() >= 8 (checked above).
        Ok(Scr {
            function: ScrFunction(buf[field::SCR_FUNCTION]),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 8.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than 8 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(ElsCode::SCR, buf);
        buf[4..Self::LEN].copy_from_slice(&[0, 0, 0, self.function.0]);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `SCR function=full (0x03)`.
impl fmt::Display for Scr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SCR function={}", self.function)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::{arb_rscn, arb_scr};

    // tshark: fcels.opcode == 0x61, fcels.rscn.page_len == 4, fcels.rscn.payload_len == 12,
    // page 1 fcels.rscn.evqual == 0x2 fcels.rscn.addrfmt == 0x0 fcels.rscn.domain == 0x01
    // fcels.rscn.area == 0x01 fcels.rscn.port == 0x00; page 2 fcels.rscn.addrfmt == 0x1.
    static RSCN: [u8; 12] = hex!("6104000c 08010100 01010200");

    // tshark: fcels.opcode == 0x62, fcels.scr.regn == 0x3 ("Full Regn").
    static SCR: [u8; 8] = hex!("62000000 00000003");

    fn rscn() -> Rscn {
        Rscn {
            pages: vec![
                RscnPage {
                    qualifier: RscnEventQualifier::PORT_ATTRIBUTE,
                    format: RscnAddressFormat::PORT,
                    affected: FcId::from_parts(1, 1, 0),
                },
                RscnPage {
                    qualifier: RscnEventQualifier::UNSPECIFIED,
                    format: RscnAddressFormat::AREA,
                    affected: FcId::from_parts(1, 2, 0),
                },
            ],
        }
    }

    #[test]
    fn test_parse() {
        assert_eq!(Rscn::parse(&RSCN), Ok(rscn()));
        assert_eq!(
            Scr::parse(&SCR),
            Ok(Scr {
                function: ScrFunction::FULL
            })
        );
    }

    #[test]
    fn test_emit() {
        let r = rscn();
        assert_eq!(r.buffer_len(), 12);
        assert_eq!(r.to_vec(), RSCN);
        assert_eq!(Rscn::parse(&r.to_vec()), Ok(r));
        let s = Scr {
            function: ScrFunction::FULL,
        };
        assert_eq!(s.buffer_len(), 8);
        assert_eq!(s.to_vec(), SCR);
        assert_eq!(Scr::parse(&s.to_vec()), Ok(s));
        let one = Rscn {
            pages: vec![RscnPage::port(FcId::from_parts(2, 3, 4))],
        };
        assert_eq!(one.to_vec(), hex!("61040008 00020304"));
    }

    #[test]
    fn test_display() {
        assert_eq!(
            rscn().to_string(),
            "RSCN port 010100 (changed port attribute), area 010200"
        );
        let many = Rscn {
            pages: vec![RscnPage::port(FcId::from_parts(1, 1, 1)); 10],
        };
        assert!(many.to_string().ends_with("port 010101, +2 more"));
        assert_eq!(SCR.len(), 8);
        assert_eq!(
            Scr::parse(&SCR).unwrap().to_string(),
            "SCR function=full (0x03)"
        );
        assert_eq!(ScrFunction(7).to_string(), "0x07");
        assert_eq!(RscnEventQualifier(9).to_string(), "qualifier 9");
    }

    #[test]
    fn test_covers() {
        let a = FcId::from_parts(1, 2, 3);
        assert!(RscnAddressFormat::PORT.covers(a, a));
        assert!(!RscnAddressFormat::PORT.covers(a, FcId::from_parts(1, 2, 4)));
        assert!(RscnAddressFormat::AREA.covers(a, FcId::from_parts(1, 2, 9)));
        assert!(!RscnAddressFormat::AREA.covers(a, FcId::from_parts(1, 3, 3)));
        assert!(RscnAddressFormat::DOMAIN.covers(a, FcId::from_parts(1, 9, 9)));
        assert!(!RscnAddressFormat::DOMAIN.covers(a, FcId::from_parts(2, 2, 3)));
        assert!(RscnAddressFormat::FABRIC.covers(a, FcId::from_parts(9, 9, 9)));
    }

    #[test]
    fn test_bad_page_length() {
        let mut b = RSCN;
        b[1] = 0x10;
        assert_eq!(
            Rscn::parse(&b),
            Err(ElsError::BadPageLength {
                els: ElsCode::RSCN,
                expected: 4,
                actual: 0x10
            })
        );
    }

    #[test]
    fn test_bad_payload_length() {
        let mut b = RSCN;
        b[3] = 0x0a;
        assert_eq!(
            Rscn::parse(&b),
            Err(ElsError::BadPayloadLength {
                els: ElsCode::RSCN,
                field: 10,
                page_len: 4,
                actual: 12
            })
        );
        assert!(matches!(
            Rscn::parse(&hex!("61040004")),
            Err(ElsError::BadPayloadLength { field: 4, .. })
        ));
        let mut b = RSCN;
        b[3] = 0x08;
        assert!(matches!(
            Rscn::parse(&b),
            Err(ElsError::BadPayloadLength {
                field: 8,
                actual: 12,
                ..
            })
        ));
        // A payload length of 65532 with 12 bytes present: truncated, no allocation.
        let mut b = RSCN;
        b[2..4].copy_from_slice(&hex!("fffc"));
        assert!(matches!(
            Rscn::parse(&b),
            Err(ElsError::Len(LenError {
                required: 65532,
                actual: 12,
                ..
            }))
        ));
    }

    #[test]
    fn test_wrong_code() {
        let mut b = RSCN;
        b[0] = 0x62;
        assert!(matches!(
            Rscn::parse(&b),
            Err(ElsError::UnexpectedCode { .. })
        ));
        let mut b = SCR;
        b[0] = 0x61;
        assert!(matches!(
            Scr::parse(&b),
            Err(ElsError::UnexpectedCode { .. })
        ));
    }

    #[test]
    fn test_truncated() {
        for len in 0..RSCN.len() {
            assert!(Rscn::parse(&RSCN[..len]).is_err(), "{len}");
        }
        for len in 0..SCR.len() {
            assert!(matches!(Scr::parse(&SCR[..len]), Err(ElsError::Len(_))));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(r in arb_rscn(), s in arb_scr()) {
            prop_assert_eq!(Rscn::parse(&r.to_vec()), Ok(r));
            prop_assert_eq!(Scr::parse(&s.to_vec()), Ok(s));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            if let Ok(r) = Rscn::parse(&buf) {
                let _ = r.to_string();
            }
            let _ = Scr::parse(&buf);
        }
    }
}
