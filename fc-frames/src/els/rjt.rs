//! LS_RJT, the link service reject (FC-LS-3 §4.2).
//!
//! ```text
//!  byte 0      1        2        3
//! +--------+--------+--------+--------+
//! |  0x01  |  0x00  |  0x00  |  0x00  |  command word
//! +--------+--------+--------+--------+
//! |reserved| reason | explan.| vendor |
//! +--------+--------+--------+--------+
//! ```

use core::fmt;

use super::{check_code, emit_command_word, ElsCode, ElsError};

code_point! {
    /// LS_RJT reason code (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct LsRjtReason(pub u8) {
        /// Invalid ELS command code.
        INVALID_COMMAND_CODE = 0x01 => "invalid command code",
        /// Logical error: the request is invalid in this state or with these parameters.
        LOGICAL_ERROR = 0x03 => "logical error",
        /// Logical busy: the responder is busy; retry later.
        LOGICAL_BUSY = 0x05 => "logical busy",
        /// Protocol error: the request violated the protocol.
        PROTOCOL_ERROR = 0x07 => "protocol error",
        /// Unable to perform the command request.
        UNABLE_TO_PERFORM = 0x09 => "unable to perform",
        /// Command not supported.
        COMMAND_NOT_SUPPORTED = 0x0B => "command not supported",
        /// Command already in progress.
        COMMAND_ALREADY_IN_PROGRESS = 0x0E => "command already in progress",
        /// FIP error (FC-BB-6).
        FIP_ERROR = 0x20 => "FIP error",
        /// Vendor specific error; see the vendor unique byte.
        VENDOR_UNIQUE = 0xFF => "vendor unique",
    }

    /// The standard's description, or `None` for an unknown code.
    pub const fn name;
}

/// The description and code, `unable to perform (0x09)`, or `0x42` for an unknown code.
impl fmt::Display for LsRjtReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

code_point! {
    /// LS_RJT reason code explanation (FC-LS-3). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct LsRjtExplanation(pub u8) {
        /// No additional explanation.
        NONE = 0x00 => "none",
        /// Service parameter error: service options.
        SERVICE_PARAM_OPTIONS = 0x01 => "service parameter error - options",
        /// Service parameter error: initiator control.
        INITIATOR_CONTROL = 0x03 => "service parameter error - initiator control",
        /// Service parameter error: recipient control.
        RECIPIENT_CONTROL = 0x05 => "service parameter error - recipient control",
        /// Service parameter error: receive data field size.
        RECEIVE_DATA_FIELD_SIZE = 0x07 => "service parameter error - receive data field size",
        /// Service parameter error: concurrent sequences.
        CONCURRENT_SEQUENCES = 0x09 => "service parameter error - concurrent sequences",
        /// Service parameter error: credit.
        CREDIT = 0x0B => "service parameter error - credit",
        /// Invalid N_Port/F_Port name.
        INVALID_PORT_NAME = 0x0D => "invalid N_Port/F_Port name",
        /// Invalid node/fabric name.
        INVALID_NODE_NAME = 0x0E => "invalid node/fabric name",
        /// Invalid common service parameters.
        INVALID_COMMON_SERVICE_PARAMS = 0x0F => "invalid common service parameters",
        /// Invalid association header.
        INVALID_ASSOCIATION_HEADER = 0x11 => "invalid association header",
        /// Association header required.
        ASSOCIATION_HEADER_REQUIRED = 0x13 => "association header required",
        /// Invalid originator S_ID.
        INVALID_ORIGINATOR_S_ID = 0x15 => "invalid originator S_ID",
        /// Invalid OX_ID-RX_ID combination.
        INVALID_OX_ID_RX_ID = 0x17 => "invalid OX_ID-RX_ID combination",
        /// Command (request) already in progress.
        COMMAND_ALREADY_IN_PROGRESS = 0x19 => "command already in progress",
        /// N_Port login required.
        N_PORT_LOGIN_REQUIRED = 0x1E => "N_Port login required",
        /// Invalid N_Port identifier.
        INVALID_N_PORT_ID = 0x1F => "invalid N_Port ID",
        /// Invalid SEQ_ID.
        INVALID_SEQ_ID = 0x21 => "invalid SEQ_ID",
        /// Attempt to abort an invalid exchange.
        ABORT_INVALID_EXCHANGE = 0x23 => "attempt to abort invalid exchange",
        /// Attempt to abort an inactive exchange.
        ABORT_INACTIVE_EXCHANGE = 0x25 => "attempt to abort inactive exchange",
        /// Recovery qualifier required.
        RECOVERY_QUALIFIER_REQUIRED = 0x27 => "recovery qualifier required",
        /// Insufficient resources to support login.
        INSUFFICIENT_RESOURCES = 0x29 => "insufficient resources",
        /// Unable to supply requested data.
        UNABLE_TO_SUPPLY_DATA = 0x2A => "unable to supply requested data",
        /// Request not supported.
        REQUEST_NOT_SUPPORTED = 0x2C => "request not supported",
        /// Invalid payload length.
        INVALID_PAYLOAD_LENGTH = 0x2D => "invalid payload length",
        /// No alias IDs available for this alias type.
        NO_ALIAS_IDS = 0x30 => "no alias IDs available",
        /// Invalid Port_Name/Node_Name.
        INVALID_PORT_NODE_NAME = 0x44 => "invalid Port_Name/Node_Name",
        /// Authentication required (FC-SP-2).
        AUTHENTICATION_REQUIRED = 0x48 => "authentication required",
        /// VN2VN_Port not in neighbor set (FC-BB-6).
        NOT_IN_NEIGHBOR_SET = 0x62 => "VN2VN_Port not in neighbor set",
    }

    /// The standard's description, or `None` for an unknown code.
    pub const fn name;
}

/// The description and code, `N_Port login required (0x1e)`, or `0x42` for an unknown code.
impl fmt::Display for LsRjtExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#04x})", self.0),
            None => write!(f, "{:#04x}", self.0),
        }
    }
}

/// An LS_RJT payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LsRjt {
    /// Why the request was rejected.
    pub reason: LsRjtReason,
    /// Which part of the request, where the reason allows an explanation.
    pub explanation: LsRjtExplanation,
    /// Vendor unique code (meaningful with [`LsRjtReason::VENDOR_UNIQUE`]).
    pub vendor_unique: u8,
}

impl LsRjt {
    /// Payload length.
    pub const LEN: usize = 8;

    /// An LS_RJT with the given reason and explanation and vendor unique byte zero.
    pub const fn new(reason: LsRjtReason, explanation: LsRjtExplanation) -> LsRjt {
        LsRjt {
            reason,
            explanation,
            vendor_unique: 0,
        }
    }

    /// The answer to a request whose command code the responder does not support.
    pub const fn not_supported() -> LsRjt {
        LsRjt::new(LsRjtReason::COMMAND_NOT_SUPPORTED, LsRjtExplanation::NONE)
    }

    /// Parses an LS_RJT payload; the reserved bytes are not checked.
    pub fn parse(buf: &[u8]) -> Result<LsRjt, ElsError> {
        check_code(buf, ElsCode::LS_RJT, Self::LEN)?;
        // Invariant: buf.len() >= 8 (checked above).
        Ok(LsRjt {
            reason: LsRjtReason(buf[5]),
            explanation: LsRjtExplanation(buf[6]),
            vendor_unique: buf[7],
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 8.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(ElsCode::LS_RJT, buf);
        buf[4..8].copy_from_slice(&[0, self.reason.0, self.explanation.0, self.vendor_unique]);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `LS_RJT reason=unable to perform (0x09) explanation=none (0x00)`, with ` vendor=0xNN`
/// where the vendor unique byte is set.
impl fmt::Display for LsRjt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LS_RJT reason={} explanation={}",
            self.reason, self.explanation
        )?;
        if self.vendor_unique != 0 {
            write!(f, " vendor={:#04x}", self.vendor_unique)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_ls_rjt;

    // tshark: fcels.opcode == 0x01, fcels.rjt.reason == 0x09, fcels.rjt.detail == 0x29,
    // fcels.rjt.vnduniq == 0x00 ("Unable to Perform Cmd", "Insufficient Resources for Login").
    static LS_RJT: [u8; 8] = hex!("01000000 00092900");

    #[test]
    fn test_parse() {
        let rjt = LsRjt::parse(&LS_RJT).unwrap();
        assert_eq!(rjt.reason, LsRjtReason::UNABLE_TO_PERFORM);
        assert_eq!(rjt.explanation, LsRjtExplanation::INSUFFICIENT_RESOURCES);
        assert_eq!(rjt.vendor_unique, 0);
    }

    #[test]
    fn test_emit() {
        let rjt = LsRjt::new(
            LsRjtReason::UNABLE_TO_PERFORM,
            LsRjtExplanation::INSUFFICIENT_RESOURCES,
        );
        assert_eq!(rjt.buffer_len(), 8);
        assert_eq!(rjt.to_vec(), LS_RJT);
        assert_eq!(LsRjt::parse(&rjt.to_vec()), Ok(rjt));
    }

    #[test]
    fn test_display() {
        let rjt = LsRjt::parse(&LS_RJT).unwrap();
        assert_eq!(
            rjt.to_string(),
            "LS_RJT reason=unable to perform (0x09) explanation=insufficient resources (0x29)"
        );
        let v = LsRjt {
            reason: LsRjtReason::VENDOR_UNIQUE,
            explanation: LsRjtExplanation(0x99),
            vendor_unique: 0x42,
        };
        assert_eq!(
            v.to_string(),
            "LS_RJT reason=vendor unique (0xff) explanation=0x99 vendor=0x42"
        );
        assert_eq!(
            LsRjt::not_supported().to_string(),
            "LS_RJT reason=command not supported (0x0b) explanation=none (0x00)"
        );
        assert_eq!(LsRjtReason(0x42).to_string(), "0x42");
    }

    #[test]
    fn test_wrong_code() {
        let mut b = LS_RJT;
        b[0] = 0x02;
        assert_eq!(
            LsRjt::parse(&b),
            Err(ElsError::UnexpectedCode {
                expected: ElsCode::LS_RJT,
                found: ElsCode::LS_ACC
            })
        );
    }

    #[test]
    fn test_truncated() {
        for len in 0..LS_RJT.len() {
            assert!(matches!(
                LsRjt::parse(&LS_RJT[..len]),
                Err(ElsError::Len(_))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(rjt in arb_ls_rjt()) {
            prop_assert_eq!(LsRjt::parse(&rjt.to_vec()), Ok(rjt));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = LsRjt::parse(&buf);
        }
    }
}
