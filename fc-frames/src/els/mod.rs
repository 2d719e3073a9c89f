//! Extended Link Services (FC-LS-3 §4): the payloads of ELS frames (R_CTL 0x22 request,
//! 0x23 reply, TYPE 0x01).
//!
//! Every ELS payload starts with a command word whose first byte is the [`ElsCode`]; the
//! reply to any request is an LS_ACC (code 0x02, FC-LS-3 §4.2), whose layout depends on the
//! request, or an LS_RJT (code 0x01, FC-LS-3 §4.2, [`LsRjt`]).
//!
//! ```text
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  code  | zero, or ELS-specific    |  command word
//! +--------+--------+--------+--------+
//! | ELS-specific payload ...          |
//! ```
//!
//! | module | ELS | FC-LS-3 |
//! |---|---|---|
//! | [`login`] | FLOGI, FDISC, PLOGI, PDISC and their LS_ACC (service parameters) | §4.2, §6 |
//! | [`prli`] | PRLI, PRLO and their LS_ACC (service parameter pages) | §4.2 |
//! | [`logo`] | LOGO | §4.2 |
//! | [`rscn`] | RSCN, SCR | §4.2 |
//! | [`echo`] | ECHO, LKA (FC-BB-6) | §4.2 |
//! | [`rrq`] | RRQ | §4.2 |
//! | [`rjt`] | LS_RJT | §4.2 |
//! | [`dispatch`] | [`ElsRequest`] and [`ElsReply`]: any ELS payload, by command code | |
//!
//! Parsing checks lengths and the layout; the content checks a responder turns into an LS_RJT
//! are explicit ([`LoginRepr::validate`]) or, where they make the layout unreadable (PRLI and
//! RSCN page and payload lengths), part of parsing. [`ElsError::ls_rjt`] gives the LS_RJT
//! a responder sends for each error.
//!
//! The standards' text was not at hand: layouts and code points follow FC-LS-3 as recalled,
//! cross-checked with Linux' `include/uapi/scsi/fc/fc_els.h` and with Wireshark 4.0.17's
//! FC ELS dissector (the tests name the tshark fields they were checked against). Section
//! references are to the clause, not the subclause.

use core::fmt;

use crate::addr::FcId;
use crate::error::{Layer, LenError};
use crate::wire::be24;

pub mod dispatch;
pub mod echo;
pub mod login;
pub mod logo;
pub mod prli;
pub mod rjt;
pub mod rrq;
pub mod rscn;

#[cfg(test)]
pub(crate) mod strategies;

pub use dispatch::{ElsReply, ElsRequest};
pub use echo::{Echo, Lka};
pub use login::{
    ClassServiceParams, CommonFeatures, CommonServiceParams, InitiatorControl, Login, LoginRepr,
    RecipientControl, ServiceOptions,
};
pub use logo::Logo;
pub use prli::{FcpServiceParams, PrliFlags, PrliPage, PrliRepr, PrliResponseCode};
pub use rjt::{LsRjt, LsRjtExplanation, LsRjtReason};
pub use rrq::Rrq;
pub use rscn::{Rscn, RscnAddressFormat, RscnEventQualifier, RscnPage, Scr, ScrFunction};

/// Length of the command word that starts every ELS payload.
pub const COMMAND_WORD_LEN: usize = 4;

/// Largest ELS payload in one frame (the FC-FS-4 maximum data field size).
pub const MAX_PAYLOAD_LEN: usize = 2112;

code_point! {
    /// An ELS command code, byte 0 of the payload (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct ElsCode(pub u8) {
        /// Link service reject.
        LS_RJT = 0x01 => "LS_RJT",
        /// Link service accept.
        LS_ACC = 0x02 => "LS_ACC",
        /// N_Port login.
        PLOGI = 0x03 => "PLOGI",
        /// Fabric login.
        FLOGI = 0x04 => "FLOGI",
        /// Logout.
        LOGO = 0x05 => "LOGO",
        /// Abort exchange (obsolete).
        ABTX = 0x06 => "ABTX",
        /// Read connection status.
        RCS = 0x07 => "RCS",
        /// Read exchange status block.
        RES = 0x08 => "RES",
        /// Read sequence status block.
        RSS = 0x09 => "RSS",
        /// Request sequence initiative.
        RSI = 0x0A => "RSI",
        /// Establish streaming.
        ESTS = 0x0B => "ESTS",
        /// Estimate credit.
        ESTC = 0x0C => "ESTC",
        /// Advise credit.
        ADVC = 0x0D => "ADVC",
        /// Read timeout value.
        RTV = 0x0E => "RTV",
        /// Read link error status block.
        RLS = 0x0F => "RLS",
        /// Echo.
        ECHO = 0x10 => "ECHO",
        /// Test.
        TEST = 0x11 => "TEST",
        /// Reinstate recovery qualifier.
        RRQ = 0x12 => "RRQ",
        /// Read exchange concise.
        REC = 0x13 => "REC",
        /// Sequence retransmission request (FCP-4).
        SRR = 0x14 => "SRR",
        /// Process login.
        PRLI = 0x20 => "PRLI",
        /// Process logout.
        PRLO = 0x21 => "PRLO",
        /// State change notification (obsolete).
        SCN = 0x22 => "SCN",
        /// Test process login state.
        TPLS = 0x23 => "TPLS",
        /// Third party process logout.
        TPRLO = 0x24 => "TPRLO",
        /// Get alias ID.
        GAID = 0x30 => "GAID",
        /// Fabric activate alias ID.
        FACT = 0x31 => "FACT",
        /// Fabric deactivate alias ID.
        FDACT = 0x32 => "FDACT",
        /// N_Port activate alias ID.
        NACT = 0x33 => "NACT",
        /// N_Port deactivate alias ID.
        NDACT = 0x34 => "NDACT",
        /// Quality of service request.
        QOSR = 0x40 => "QOSR",
        /// Read virtual circuit status.
        RVCS = 0x41 => "RVCS",
        /// Discover N_Port service parameters.
        PDISC = 0x50 => "PDISC",
        /// Discover F_Port service parameters (NPIV login).
        FDISC = 0x51 => "FDISC",
        /// Discover address.
        ADISC = 0x52 => "ADISC",
        /// FC address resolution request.
        FARP_REQ = 0x54 => "FARP-REQ",
        /// FC address resolution reply.
        FARP_REPLY = 0x55 => "FARP-REPLY",
        /// Read port status block.
        RPS = 0x56 => "RPS",
        /// Read port list.
        RPL = 0x57 => "RPL",
        /// Read port buffer condition.
        RPBC = 0x58 => "RPBC",
        /// Fabric address notification.
        FAN = 0x60 => "FAN",
        /// Registered state change notification.
        RSCN = 0x61 => "RSCN",
        /// State change registration.
        SCR = 0x62 => "SCR",
        /// Report node FC-4 types.
        RNFT = 0x63 => "RNFT",
        /// Clock synchronization request.
        CSR = 0x68 => "CSR",
        /// Clock synchronization update.
        CSU = 0x69 => "CSU",
        /// Loop initialize.
        LINIT = 0x70 => "LINIT",
        /// Loop status.
        LSTS = 0x72 => "LSTS",
        /// Request node identification data.
        RNID = 0x78 => "RNID",
        /// Registered link incident report.
        RLIR = 0x79 => "RLIR",
        /// Link incident record registration.
        LIRR = 0x7A => "LIRR",
        /// Scan remote loop.
        SRL = 0x7B => "SRL",
        /// Set bit-error reporting parameters.
        SBRP = 0x7C => "SBRP",
        /// Report port speed capabilities.
        RPSC = 0x7D => "RPSC",
        /// Query security attributes.
        QSA = 0x7E => "QSA",
        /// Exchange virtual fabrics parameters.
        EVFP = 0x7F => "EVFP",
        /// Link keep-alive (FC-BB-6; FCIP RFC 3821 §7).
        LKA = 0x80 => "LKA",
        /// Authentication ELS (FC-SP-2).
        AUTH_ELS = 0x90 => "AUTH_ELS",
    }

    /// The standard's mnemonic, or `None` for a code this crate does not know.
    pub const fn name;
}

/// The mnemonic (`PLOGI`), or `ELS 0xNN` for an unknown code.
impl fmt::Display for ElsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ELS {:#04x}", self.0),
        }
    }
}

impl From<u8> for ElsCode {
    fn from(v: u8) -> Self {
        ElsCode(v)
    }
}

impl From<ElsCode> for u8 {
    fn from(c: ElsCode) -> u8 {
        c.0
    }
}

/// What was wrong with an ELS payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElsError {
    /// The payload is shorter than its layout (or its own length field) needs.
    #[error(transparent)]
    Len(#[from] LenError),
    /// A payload for a single-code ELS carries another code (e.g. `Logo::parse` of a PLOGI).
    #[error("expected ELS {expected}, found {found}")]
    UnexpectedCode {
        /// The code the parser handles.
        expected: ElsCode,
        /// The code in byte 0.
        found: ElsCode,
    },
    /// A reply whose code is neither LS_ACC nor LS_RJT.
    #[error("ELS reply code {0} is neither LS_ACC nor LS_RJT")]
    NotAReply(ElsCode),
    /// The page length in byte 1 of a PRLI, PRLO or RSCN is not the one the layout fixes.
    #[error("{els} page length {actual} is not {expected}")]
    BadPageLength {
        /// The ELS (PRLI, PRLO, RSCN, or LS_ACC for the first two).
        els: ElsCode,
        /// The page length the standard fixes (16 for PRLI/PRLO, 4 for RSCN).
        expected: u8,
        /// The page length found.
        actual: u8,
    },
    /// The payload length in bytes 2-3 is not 4 + page length × n (n ≥ 1), or the payload
    /// has bytes beyond it.
    #[error("{els} payload length {field} does not fit pages of {page_len} bytes in a {actual}-byte payload")]
    BadPayloadLength {
        /// The ELS.
        els: ElsCode,
        /// The payload length field.
        field: u16,
        /// The page length.
        page_len: u8,
        /// The bytes present.
        actual: usize,
    },
    /// The common service parameters' receive data field size is outside 256..=2112.
    #[error("common service parameters: receive data field size {0} is outside 256..=2112")]
    BadCommonRxSize(u16),
    /// A valid class's receive data field size is outside 256..=2112.
    #[error(
        "class {class} service parameters: receive data field size {size} is outside 256..=2112"
    )]
    BadClassRxSize {
        /// The class (1 to 4).
        class: u8,
        /// The receive data field size found.
        size: u16,
    },
    /// An ECHO (or its LS_ACC) with more than 2108 data bytes, more than one frame holds.
    #[error("ECHO data of {0} bytes exceeds 2108")]
    EchoTooLong(usize),
}

impl ElsError {
    /// The LS_RJT a responder answers this error with. Reason "logical error" throughout
    /// (FC-LS-3: the request is well formed as a frame but its content is wrong),
    /// with the explanation that names the bad field.
    pub fn ls_rjt(&self) -> LsRjt {
        let explanation = match self {
            ElsError::Len(_)
            | ElsError::BadPageLength { .. }
            | ElsError::BadPayloadLength { .. }
            | ElsError::EchoTooLong(_) => LsRjtExplanation::INVALID_PAYLOAD_LENGTH,
            ElsError::BadCommonRxSize(_) | ElsError::BadClassRxSize { .. } => {
                LsRjtExplanation::RECEIVE_DATA_FIELD_SIZE
            }
            ElsError::UnexpectedCode { .. } | ElsError::NotAReply(_) => LsRjtExplanation::NONE,
        };
        LsRjt {
            reason: LsRjtReason::LOGICAL_ERROR,
            explanation,
            vendor_unique: 0,
        }
    }
}

/// Checks that `buf` holds at least `len` bytes.
pub(crate) fn check_len(buf: &[u8], len: usize) -> Result<(), ElsError> {
    LenError::check(Layer::Els, len, buf.len()).map_err(ElsError::from)
}

/// Checks the command word is present and byte 0 is `expected`.
pub(crate) fn check_code(buf: &[u8], expected: ElsCode, len: usize) -> Result<(), ElsError> {
    check_len(buf, len.max(COMMAND_WORD_LEN))?;
    // Invariant: buf.len() >= COMMAND_WORD_LEN > 0 (checked above).
    let found = ElsCode(buf[0]);
    if found != expected {
        return Err(ElsError::UnexpectedCode { expected, found });
    }
    Ok(())
}

/// Reads the 3-byte N_Port ID at `at`. The caller guarantees `at + 3 <= buf.len()`.
pub(crate) fn fcid_at(buf: &[u8], at: usize) -> FcId {
    // A 24-bit read always fits an FC_ID, so the default is never taken.
    FcId::try_new(be24(buf, at)).unwrap_or_default()
}

/// Writes the command word `code 00 00 00` at the start of `buf`.
pub(crate) fn emit_command_word(code: ElsCode, buf: &mut [u8]) {
    buf[..COMMAND_WORD_LEN].copy_from_slice(&[code.0, 0, 0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_code_names() {
        assert_eq!(ElsCode::PLOGI.to_string(), "PLOGI");
        assert_eq!(ElsCode::LKA.to_string(), "LKA");
        assert_eq!(ElsCode(0xEE).to_string(), "ELS 0xee");
        assert_eq!(ElsCode(0xEE).name(), None);
        assert_eq!(u8::from(ElsCode::RSCN), 0x61);
        assert_eq!(ElsCode::from(0x51), ElsCode::FDISC);
    }

    #[test]
    fn test_check_code() {
        assert_eq!(check_code(&[0x05, 0, 0, 0], ElsCode::LOGO, 4), Ok(()));
        assert_eq!(
            check_code(&[0x03, 0, 0, 0], ElsCode::LOGO, 4),
            Err(ElsError::UnexpectedCode {
                expected: ElsCode::LOGO,
                found: ElsCode::PLOGI
            })
        );
        assert!(matches!(
            check_code(&[0x05], ElsCode::LOGO, 4),
            Err(ElsError::Len(LenError {
                required: 4,
                actual: 1,
                ..
            }))
        ));
    }

    #[test]
    fn test_error_ls_rjt() {
        let rjt = ElsError::BadClassRxSize {
            class: 3,
            size: 100,
        }
        .ls_rjt();
        assert_eq!(rjt.reason, LsRjtReason::LOGICAL_ERROR);
        assert_eq!(rjt.explanation, LsRjtExplanation::RECEIVE_DATA_FIELD_SIZE);
        let rjt = ElsError::BadPageLength {
            els: ElsCode::PRLI,
            expected: 16,
            actual: 20,
        }
        .ls_rjt();
        assert_eq!(rjt.explanation, LsRjtExplanation::INVALID_PAYLOAD_LENGTH);
        assert_eq!(
            ElsError::BadPageLength {
                els: ElsCode::PRLI,
                expected: 16,
                actual: 20
            }
            .to_string(),
            "PRLI page length 20 is not 16"
        );
    }
}
