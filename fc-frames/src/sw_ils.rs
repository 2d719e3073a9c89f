//! Switch internal link services (FC-SW-6 §6.1): the requests switches send each other over an
//! inter-switch link, in frames of R_CTL 0x02 (request) / 0x03 (reply) and TYPE 0x22. This
//! crate decodes the accept and reject every request gets, and EFP (Exchange Fabric
//! Parameters), which carries the list of domains a switch knows.
//!
//! ```text
//! SW_ACC                                 SW_RJT
//! +------+------+------+------+          +------+------+------+------+
//! | 0x02 | 0x00 | 0x00 | 0x00 |          | 0x01 | 0x00 | 0x00 | 0x00 |
//! +------+------+------+------+          +------+------+------+------+
//!                                        | rsvd |reason| expl | vend |
//!                                        +------+------+------+------+
//! EFP
//! +------+------+------+------+------+------+------+------+
//! | 0x11 |  16  | payload len |      reserved      | prio |  prio: principal switch priority
//! +------+------+------+------+------+------+------+------+
//! |           principal switch name (8 bytes)             |
//! +------+------+------+------+------+------+------+------+
//! | type |domain| hops |     reserved (5 bytes)           |  one 16-byte record per domain
//! |           switch name (8 bytes)                       |  (type 1: domain ID list record)
//! +------+------+------+------+------+------+------+------+
//! ```
//!
//! Wireshark's `packet-fcswils.c` decodes these fields at these offsets. `hops` sits in a
//! byte FC-SW-6 reserves: this project's switches count there how many inter-switch links
//! away the domain is (0: the sender's own), to prefer short routes and to let a lost domain
//! age out of a ring; other switches send zero there and ignore it.

use core::fmt;

use crate::addr::Wwn;
use crate::error::{Layer, LenError};
use crate::wire::{be16, put_be16, put_wwn_at, wwn_at};

code_point! {
    /// An SW_ILS command code, byte 0 of the payload (FC-SW-6 Table 5). Open.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct SwIlsCode(pub u8) {
        /// Switch internal link service reject.
        SW_RJT = 0x01 => "SW_RJT",
        /// Switch internal link service accept.
        SW_ACC = 0x02 => "SW_ACC",
        /// Exchange Link Parameters.
        ELP = 0x10 => "ELP",
        /// Exchange Fabric Parameters.
        EFP = 0x11 => "EFP",
        /// Domain Identifier Assigned.
        DIA = 0x12 => "DIA",
        /// Request Domain_ID.
        RDI = 0x13 => "RDI",
        /// Inter-switch RSCN.
        SW_RSCN = 0x1B => "SW_RSCN",
        /// Exchange Switch Capabilities.
        ESC = 0x30 => "ESC",
    }

    /// The standard's name, or `None` for an unknown code.
    pub const fn name;
}

impl fmt::Display for SwIlsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "SW_ILS {:#04x}", self.0),
        }
    }
}

code_point! {
    /// An SW_RJT reason code (FC-SW-6 Table 7). Open.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct SwRjtReason(pub u8) {
        /// Invalid command code.
        INVALID_COMMAND_CODE = 0x01 => "invalid command code",
        /// Invalid revision level.
        INVALID_REVISION = 0x02 => "invalid revision level",
        /// Logical error.
        LOGICAL_ERROR = 0x03 => "logical error",
        /// Invalid payload size.
        INVALID_PAYLOAD_SIZE = 0x04 => "invalid payload size",
        /// Logical busy.
        LOGICAL_BUSY = 0x05 => "logical busy",
        /// Protocol error.
        PROTOCOL_ERROR = 0x07 => "protocol error",
        /// Unable to perform command request.
        UNABLE_TO_PERFORM = 0x09 => "unable to perform command request",
        /// Command not supported.
        NOT_SUPPORTED = 0x0B => "command not supported",
    }

    /// The standard's description, or `None` for an unknown code.
    pub const fn name;
}

/// Why an SW_ILS payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SwIlsError {
    /// The payload is shorter than its layout needs.
    #[error(transparent)]
    Len(#[from] LenError),
    /// A payload for one command carries another code.
    #[error("expected SW_ILS {expected}, found {found}")]
    UnexpectedCode {
        /// The code the parser handles.
        expected: SwIlsCode,
        /// The code in byte 0.
        found: SwIlsCode,
    },
    /// EFP's record length (byte 1) is not 16.
    #[error("EFP record length {0} is not 16")]
    BadRecordLength(u8),
    /// EFP's payload length is not 16 + 16 × records, or disagrees with the payload's size.
    #[error("EFP payload length {field} does not fit a {actual}-byte payload of 16-byte records")]
    BadPayloadLength {
        /// Bytes 2-3.
        field: u16,
        /// The payload's size.
        actual: usize,
    },
}

/// The EFP header before the records, and each record's size.
const EFP_HEADER_LEN: usize = 16;
const EFP_RECORD_LEN: usize = 16;
/// Record type 1: a domain ID list record.
const RECORD_DOMAIN: u8 = 0x01;
/// Most records one 2112-byte frame holds.
pub const MAX_EFP_RECORDS: usize = (2112 - EFP_HEADER_LEN) / EFP_RECORD_LEN;

/// One domain in an EFP's domain ID list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DomainRecord {
    /// The domain ID.
    pub domain: u8,
    /// Inter-switch links between the sender and the domain (0: its own); in a reserved byte.
    pub hops: u8,
    /// The name of the switch that holds it.
    pub switch_name: Wwn,
}

/// Exchange Fabric Parameters: the principal switch and the domain ID list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Efp {
    /// Principal switch priority (1 highest; 0xFF: not capable of being principal).
    pub principal_priority: u8,
    /// Principal switch name.
    pub principal_name: Wwn,
    /// The domain ID list. Records of other types are skipped when parsing.
    pub domains: Vec<DomainRecord>,
}

impl Efp {
    /// Bytes on the wire (at most [`MAX_EFP_RECORDS`] records are written).
    pub fn buffer_len(&self) -> usize {
        EFP_HEADER_LEN + EFP_RECORD_LEN * self.domains.len().min(MAX_EFP_RECORDS)
    }

    /// Decodes an EFP request (or the SW_ACC that answers one, whose code is SW_ACC).
    pub fn parse(buf: &[u8]) -> Result<Efp, SwIlsError> {
        LenError::check(Layer::SwIls, EFP_HEADER_LEN, buf.len())?;
        let code = SwIlsCode(buf[0]);
        if code != SwIlsCode::EFP && code != SwIlsCode::SW_ACC {
            return Err(SwIlsError::UnexpectedCode {
                expected: SwIlsCode::EFP,
                found: code,
            });
        }
        if usize::from(buf[1]) != EFP_RECORD_LEN {
            return Err(SwIlsError::BadRecordLength(buf[1]));
        }
        let field = be16(buf, 2);
        let len = usize::from(field);
        if len != buf.len() || (len - EFP_HEADER_LEN) % EFP_RECORD_LEN != 0 {
            return Err(SwIlsError::BadPayloadLength {
                field,
                actual: buf.len(),
            });
        }
        let domains = buf[EFP_HEADER_LEN..]
            .chunks_exact(EFP_RECORD_LEN)
            .filter(|r| r[0] == RECORD_DOMAIN)
            .map(|r| DomainRecord {
                domain: r[1],
                hops: r[2],
                switch_name: wwn_at(r, 8),
            })
            .collect();
        Ok(Efp {
            principal_priority: buf[7],
            principal_name: wwn_at(buf, 8),
            domains,
        })
    }

    /// The request's bytes. At most [`MAX_EFP_RECORDS`] domains are written (a fabric has at
    /// most 239 domains; one frame holds 131, which a sender should order nearest first).
    pub fn to_vec(&self) -> Vec<u8> {
        self.to_vec_with(SwIlsCode::EFP)
    }

    /// The SW_ACC that answers an EFP: the same layout, with the receiver's own list.
    pub fn accept_vec(&self) -> Vec<u8> {
        self.to_vec_with(SwIlsCode::SW_ACC)
    }

    fn to_vec_with(&self, code: SwIlsCode) -> Vec<u8> {
        let records = &self.domains[..self.domains.len().min(MAX_EFP_RECORDS)];
        let len = EFP_HEADER_LEN + EFP_RECORD_LEN * records.len();
        let mut buf = vec![0; len];
        buf[0] = code.0;
        buf[1] = EFP_RECORD_LEN as u8;
        // Invariant: len <= 16 + 16 * 131 = 2112 (records capped above).
        put_be16(&mut buf, 2, len as u16);
        buf[7] = self.principal_priority;
        put_wwn_at(&mut buf, 8, self.principal_name);
        for (r, d) in buf[EFP_HEADER_LEN..]
            .chunks_exact_mut(EFP_RECORD_LEN)
            .zip(records)
        {
            r[0] = RECORD_DOMAIN;
            r[1] = d.domain;
            r[2] = d.hops;
            put_wwn_at(r, 8, d.switch_name);
        }
        buf
    }
}

/// An SW_RJT: reason and explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwRjt {
    /// The reason code.
    pub reason: SwRjtReason,
    /// The reason code explanation (FC-SW-6 Table 8).
    pub explanation: u8,
}

impl SwRjt {
    /// Bytes on the wire.
    pub const LEN: usize = 8;

    /// "Command not supported", no explanation.
    pub const fn not_supported() -> SwRjt {
        SwRjt {
            reason: SwRjtReason::NOT_SUPPORTED,
            explanation: 0,
        }
    }

    /// Decodes an SW_RJT.
    pub fn parse(buf: &[u8]) -> Result<SwRjt, SwIlsError> {
        LenError::check(Layer::SwIls, Self::LEN, buf.len())?;
        if buf[0] != SwIlsCode::SW_RJT.0 {
            return Err(SwIlsError::UnexpectedCode {
                expected: SwIlsCode::SW_RJT,
                found: SwIlsCode(buf[0]),
            });
        }
        Ok(SwRjt {
            reason: SwRjtReason(buf[5]),
            explanation: buf[6],
        })
    }

    /// Its bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        vec![
            SwIlsCode::SW_RJT.0,
            0,
            0,
            0,
            0,
            self.reason.0,
            self.explanation,
            0,
        ]
    }
}

/// The bare SW_ACC (a command word), the accept of requests that return nothing.
pub const SW_ACC: [u8; 4] = [SwIlsCode::SW_ACC.0, 0, 0, 0];

#[cfg(test)]
mod tests {
    use super::*;

    fn efp() -> Efp {
        Efp {
            principal_priority: 0xFE,
            principal_name: Wwn::from_u64(0x1000_0000_0000_000a),
            domains: vec![
                DomainRecord {
                    domain: 1,
                    hops: 0,
                    switch_name: Wwn::from_u64(0x1000_0000_0000_000a),
                },
                DomainRecord {
                    domain: 7,
                    hops: 2,
                    switch_name: Wwn::from_u64(0x1000_0000_0000_000c),
                },
            ],
        }
    }

    #[test]
    fn efp_round_trips_at_wiresharks_offsets() {
        let e = efp();
        let b = e.to_vec();
        assert_eq!(b.len(), e.buffer_len());
        assert_eq!(&b[..4], &[0x11, 16, 0, 48]);
        assert_eq!(b[7], 0xFE);
        assert_eq!(&b[8..16], &0x1000_0000_0000_000a_u64.to_be_bytes());
        assert_eq!((b[32], b[33], b[34]), (1, 7, 2));
        assert_eq!(&b[40..48], &0x1000_0000_0000_000c_u64.to_be_bytes());
        assert_eq!(Efp::parse(&b).unwrap(), e);
        let acc = e.accept_vec();
        assert_eq!(acc[0], 0x02);
        assert_eq!(Efp::parse(&acc).unwrap(), e);
    }

    #[test]
    fn efp_rejects_bad_lengths_and_skips_unknown_records() {
        let mut b = efp().to_vec();
        assert!(matches!(
            Efp::parse(&b[..20]),
            Err(SwIlsError::BadPayloadLength { .. })
        ));
        assert!(matches!(Efp::parse(&b[..8]), Err(SwIlsError::Len(_))));
        b[16] = 0x02; // a multicast record
        assert_eq!(Efp::parse(&b).unwrap().domains.len(), 1);
        b[1] = 12;
        assert_eq!(Efp::parse(&b), Err(SwIlsError::BadRecordLength(12)));
        b[1] = 16;
        b[0] = 0x10;
        assert!(matches!(
            Efp::parse(&b),
            Err(SwIlsError::UnexpectedCode { .. })
        ));
    }

    #[test]
    fn efp_caps_its_records_at_one_frame() {
        let mut e = efp();
        e.domains = (0..=255)
            .map(|d| DomainRecord {
                domain: d,
                hops: 1,
                switch_name: Wwn::ZERO,
            })
            .collect();
        let b = e.to_vec();
        assert!(b.len() <= 2112);
        assert_eq!(b.len(), e.buffer_len());
        assert_eq!(Efp::parse(&b).unwrap().domains.len(), MAX_EFP_RECORDS);
    }

    #[test]
    fn sw_rjt_round_trips() {
        let r = SwRjt::not_supported();
        let b = r.to_vec();
        assert_eq!(b, [1, 0, 0, 0, 0, 0x0B, 0, 0]);
        assert_eq!(SwRjt::parse(&b).unwrap(), r);
        assert!(SwRjt::parse(&SW_ACC).is_err());
    }
}
