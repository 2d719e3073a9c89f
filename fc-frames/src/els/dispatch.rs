//! Any ELS payload, typed by its command code: [`ElsRequest`] for the payload of an ELS
//! request frame (R_CTL 0x22), [`ElsReply`] for the payload of a reply (R_CTL 0x23), which
//! only the request it answers says how to read.

use core::fmt;

use super::{
    check_len, emit_command_word, Echo, ElsCode, ElsError, LoginRepr, Logo, LsRjt, PrliRepr, Rrq,
    Rscn, Scr, COMMAND_WORD_LEN,
};

/// An ELS request payload.
///
/// For the variants whose repr carries a command code (logins, PRLI/PRLO, ECHO) the variant
/// names the ELS: [`parse`](Self::parse) makes the two agree, and [`emit`](Self::emit)
/// writes the variant's code whatever the repr holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElsRequest {
    /// Fabric login.
    Flogi(LoginRepr),
    /// Fabric discovery (NPIV login of a further N_Port ID).
    Fdisc(LoginRepr),
    /// N_Port login.
    Plogi(LoginRepr),
    /// N_Port service parameter discovery.
    Pdisc(LoginRepr),
    /// Logout.
    Logo(Logo),
    /// Process login.
    Prli(PrliRepr),
    /// Process logout.
    Prlo(PrliRepr),
    /// Registered state change notification.
    Rscn(Rscn),
    /// State change registration.
    Scr(Scr),
    /// Echo.
    Echo(Echo),
    /// Link keep-alive.
    Lka,
    /// Reinstate recovery qualifier.
    Rrq(Rrq),
    /// Any other command code, including LS_ACC and LS_RJT arriving as a request: the node
    /// answers it with [`LsRjt::not_supported`] (or as it sees fit).
    Unknown {
        /// The command code (byte 0).
        code: ElsCode,
        /// The payload after the command code byte (byte 1 onwards).
        payload: Vec<u8>,
    },
}

impl ElsRequest {
    /// Parses a request payload by its command code. Content checks beyond the layout are
    /// [`validate`](Self::validate)'s.
    pub fn parse(buf: &[u8]) -> Result<ElsRequest, ElsError> {
        check_len(buf, COMMAND_WORD_LEN)?;
        // Invariant: buf.len() >= 4 (checked above).
        let code = ElsCode(buf[0]);
        Ok(match code {
            ElsCode::FLOGI => ElsRequest::Flogi(LoginRepr::parse(buf)?),
            ElsCode::FDISC => ElsRequest::Fdisc(LoginRepr::parse(buf)?),
            ElsCode::PLOGI => ElsRequest::Plogi(LoginRepr::parse(buf)?),
            ElsCode::PDISC => ElsRequest::Pdisc(LoginRepr::parse(buf)?),
            ElsCode::LOGO => ElsRequest::Logo(Logo::parse(buf)?),
            ElsCode::PRLI => ElsRequest::Prli(PrliRepr::parse(buf)?),
            ElsCode::PRLO => ElsRequest::Prlo(PrliRepr::parse(buf)?),
            ElsCode::RSCN => ElsRequest::Rscn(Rscn::parse(buf)?),
            ElsCode::SCR => ElsRequest::Scr(Scr::parse(buf)?),
            ElsCode::ECHO => ElsRequest::Echo(Echo::parse(buf)?),
            ElsCode::LKA => ElsRequest::Lka,
            ElsCode::RRQ => ElsRequest::Rrq(Rrq::parse(buf)?),
            _ => ElsRequest::Unknown {
                code,
                payload: buf[1..].to_vec(),
            },
        })
    }

    /// The content checks a responder answers with an LS_RJT ([`ElsError::ls_rjt`]):
    /// [`LoginRepr::validate`] for the logins; nothing more for the others.
    pub fn validate(&self) -> Result<(), ElsError> {
        match self {
            ElsRequest::Flogi(l)
            | ElsRequest::Fdisc(l)
            | ElsRequest::Plogi(l)
            | ElsRequest::Pdisc(l) => l.validate(),
            _ => Ok(()),
        }
    }

    /// The command code.
    pub fn code(&self) -> ElsCode {
        match self {
            ElsRequest::Flogi(_) => ElsCode::FLOGI,
            ElsRequest::Fdisc(_) => ElsCode::FDISC,
            ElsRequest::Plogi(_) => ElsCode::PLOGI,
            ElsRequest::Pdisc(_) => ElsCode::PDISC,
            ElsRequest::Logo(_) => ElsCode::LOGO,
            ElsRequest::Prli(_) => ElsCode::PRLI,
            ElsRequest::Prlo(_) => ElsCode::PRLO,
            ElsRequest::Rscn(_) => ElsCode::RSCN,
            ElsRequest::Scr(_) => ElsCode::SCR,
            ElsRequest::Echo(_) => ElsCode::ECHO,
            ElsRequest::Lka => ElsCode::LKA,
            ElsRequest::Rrq(_) => ElsCode::RRQ,
            ElsRequest::Unknown { code, .. } => *code,
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            ElsRequest::Flogi(l)
            | ElsRequest::Fdisc(l)
            | ElsRequest::Plogi(l)
            | ElsRequest::Pdisc(l) => l.buffer_len(),
            ElsRequest::Logo(l) => l.buffer_len(),
            ElsRequest::Prli(p) | ElsRequest::Prlo(p) => p.buffer_len(),
            ElsRequest::Rscn(r) => r.buffer_len(),
            ElsRequest::Scr(s) => s.buffer_len(),
            ElsRequest::Echo(e) => e.buffer_len(),
            ElsRequest::Lka => COMMAND_WORD_LEN,
            ElsRequest::Rrq(r) => r.buffer_len(),
            ElsRequest::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Writes the payload, with the variant's command code. Panics if `buf` is shorter than
    /// [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            ElsRequest::Flogi(l)
            | ElsRequest::Fdisc(l)
            | ElsRequest::Plogi(l)
            | ElsRequest::Pdisc(l) => l.emit(buf),
            ElsRequest::Logo(l) => l.emit(buf),
            ElsRequest::Prli(p) | ElsRequest::Prlo(p) => p.emit(buf),
            ElsRequest::Rscn(r) => r.emit(buf),
            ElsRequest::Scr(s) => s.emit(buf),
            ElsRequest::Echo(e) => e.emit(buf),
            ElsRequest::Lka => emit_command_word(ElsCode::LKA, buf),
            ElsRequest::Rrq(r) => r.emit(buf),
            ElsRequest::Unknown { payload, .. } => {
                buf[1..1 + payload.len()].copy_from_slice(payload);
            }
        }
        buf[0] = self.code().0;
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// One line: `PLOGI wwpn=.. wwnn=.. rxsize=2112`, `PRLI FCP eip initiator`,
/// `ELS 0xee len=12` for an unknown code.
impl fmt::Display for ElsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElsRequest::Flogi(l)
            | ElsRequest::Fdisc(l)
            | ElsRequest::Plogi(l)
            | ElsRequest::Pdisc(l) => {
                write!(f, "{}", self.code())?;
                l.fmt_body(f)
            }
            ElsRequest::Logo(l) => write!(f, "{l}"),
            ElsRequest::Prli(p) | ElsRequest::Prlo(p) => {
                write!(f, "{}", self.code())?;
                p.fmt_pages(f)
            }
            ElsRequest::Rscn(r) => write!(f, "{r}"),
            ElsRequest::Scr(s) => write!(f, "{s}"),
            ElsRequest::Echo(e) => write!(f, "ECHO len={}", e.data.len()),
            ElsRequest::Lka => f.write_str("LKA"),
            ElsRequest::Rrq(r) => write!(f, "{r}"),
            ElsRequest::Unknown { code, payload } => {
                write!(f, "{code} len={}", 1 + payload.len())
            }
        }
    }
}

/// An ELS reply payload: LS_RJT, or the LS_ACC for the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElsReply {
    /// Link service reject.
    Rjt(LsRjt),
    /// An LS_ACC that carries nothing but its command word (to LOGO, SCR, RSCN, LKA, RRQ).
    Acc,
    /// LS_ACC to FLOGI, FDISC, PLOGI or PDISC: the responder's service parameters.
    Login(LoginRepr),
    /// LS_ACC to PRLI.
    Prli(PrliRepr),
    /// LS_ACC to PRLO.
    Prlo(PrliRepr),
    /// LS_ACC to ECHO: the echoed data.
    Echo(Vec<u8>),
    /// LS_ACC to a request whose accept this crate does not decode: the payload after the
    /// command code byte (byte 1 onwards).
    AccPayload(Vec<u8>),
}

impl ElsReply {
    /// Parses a reply payload to a request with command code `request`. A reply whose code
    /// is neither LS_ACC nor LS_RJT is an error. Bytes after the command word of a bare
    /// LS_ACC are ignored.
    pub fn parse(request: ElsCode, buf: &[u8]) -> Result<ElsReply, ElsError> {
        check_len(buf, COMMAND_WORD_LEN)?;
        // Invariant: buf.len() >= 4 (checked above).
        match ElsCode(buf[0]) {
            ElsCode::LS_RJT => Ok(ElsReply::Rjt(LsRjt::parse(buf)?)),
            ElsCode::LS_ACC => Ok(match request {
                ElsCode::FLOGI | ElsCode::FDISC | ElsCode::PLOGI | ElsCode::PDISC => {
                    ElsReply::Login(LoginRepr::parse(buf)?)
                }
                ElsCode::PRLI => ElsReply::Prli(PrliRepr::parse(buf)?),
                ElsCode::PRLO => ElsReply::Prlo(PrliRepr::parse(buf)?),
                ElsCode::ECHO => ElsReply::Echo(Echo::parse(buf)?.data),
                ElsCode::LOGO | ElsCode::SCR | ElsCode::RSCN | ElsCode::LKA | ElsCode::RRQ => {
                    ElsReply::Acc
                }
                _ => ElsReply::AccPayload(buf[1..].to_vec()),
            }),
            other => Err(ElsError::NotAReply(other)),
        }
    }

    /// The reply's command code: LS_RJT or LS_ACC.
    pub fn code(&self) -> ElsCode {
        match self {
            ElsReply::Rjt(_) => ElsCode::LS_RJT,
            _ => ElsCode::LS_ACC,
        }
    }

    /// True for an LS_ACC.
    pub fn is_accept(&self) -> bool {
        self.code() == ElsCode::LS_ACC
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            ElsReply::Rjt(r) => r.buffer_len(),
            ElsReply::Acc => COMMAND_WORD_LEN,
            ElsReply::Login(l) => l.buffer_len(),
            ElsReply::Prli(p) | ElsReply::Prlo(p) => p.buffer_len(),
            ElsReply::Echo(data) => COMMAND_WORD_LEN + data.len(),
            ElsReply::AccPayload(payload) => 1 + payload.len(),
        }
    }

    /// Writes the payload, with code LS_ACC or LS_RJT whatever a repr holds. Panics if `buf`
    /// is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            ElsReply::Rjt(r) => r.emit(buf),
            ElsReply::Acc => emit_command_word(ElsCode::LS_ACC, buf),
            ElsReply::Login(l) => l.emit(buf),
            ElsReply::Prli(p) | ElsReply::Prlo(p) => p.emit(buf),
            ElsReply::Echo(data) => {
                emit_command_word(ElsCode::LS_ACC, buf);
                buf[COMMAND_WORD_LEN..COMMAND_WORD_LEN + data.len()].copy_from_slice(data);
            }
            ElsReply::AccPayload(payload) => {
                buf[1..1 + payload.len()].copy_from_slice(payload);
            }
        }
        buf[0] = self.code().0;
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// One line: `LS_RJT reason=.. explanation=..`, `LS_ACC`, `LS_ACC wwpn=.. wwnn=..
/// rxsize=2112`, `LS_ACC PRLI FCP eip response=request executed (1) target`,
/// `LS_ACC ECHO len=8`, `LS_ACC len=28`.
impl fmt::Display for ElsReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElsReply::Rjt(r) => write!(f, "{r}"),
            ElsReply::Acc => f.write_str("LS_ACC"),
            ElsReply::Login(l) => {
                f.write_str("LS_ACC")?;
                l.fmt_body(f)
            }
            ElsReply::Prli(p) => {
                f.write_str("LS_ACC PRLI")?;
                p.fmt_pages(f)
            }
            ElsReply::Prlo(p) => {
                f.write_str("LS_ACC PRLO")?;
                p.fmt_pages(f)
            }
            ElsReply::Echo(data) => write!(f, "LS_ACC ECHO len={}", data.len()),
            ElsReply::AccPayload(payload) => write!(f, "LS_ACC len={}", 1 + payload.len()),
        }
    }
}

impl From<LsRjt> for ElsReply {
    fn from(r: LsRjt) -> Self {
        ElsReply::Rjt(r)
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::addr::{FcId, Wwn};
    use crate::els::prli::{FcpServiceParams, PrliPage, PrliResponseCode};
    use crate::els::strategies::{arb_els_reply, arb_els_request};
    use crate::els::{LsRjtExplanation, LsRjtReason, RscnPage, ScrFunction};
    use crate::error::LenError;

    const WWPN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x01]);
    const WWNN: Wwn = Wwn([0x20, 0x00, 0x00, 0x25, 0xb5, 0x00, 0x00, 0x00]);

    static PRLI: [u8; 20] = hex!("20100014 08002000 00000000 00000000 00000022");
    static PRLI_ACC: [u8; 20] = hex!("02100014 08002100 00000000 00000000 00000012");
    static LOGO: [u8; 16] = hex!("05000000 00010100 20000025b5000001");
    static ACC: [u8; 4] = hex!("02000000");
    // tshark: fcels.opcode == 0x01, fcels.rjt.reason == 0x0b ("Command Not Supported").
    static RJT_NOT_SUPPORTED: [u8; 8] = hex!("01000000 000b0000");
    static ADISC: [u8; 28] = hex!("52000000 00010100 20000025b5000001 20000025b5000000 00010100");

    fn requests() -> Vec<(ElsRequest, &'static str)> {
        vec![
            (
                ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WWPN, WWNN, 2112)),
                "FLOGI wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2112",
            ),
            (
                ElsRequest::Fdisc(LoginRepr::request(ElsCode::FDISC, WWPN, WWNN, 2048)),
                "FDISC wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2048",
            ),
            (
                ElsRequest::Plogi(LoginRepr::request(ElsCode::PLOGI, WWPN, WWNN, 2112)),
                "PLOGI wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2112",
            ),
            (
                ElsRequest::Pdisc(LoginRepr::request(ElsCode::PDISC, WWPN, WWNN, 2112)),
                "PDISC wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2112",
            ),
            (
                ElsRequest::Logo(Logo {
                    n_port_id: FcId::from_parts(1, 1, 0),
                    port_name: WWPN,
                }),
                "LOGO nport=010100 wwpn=20:00:00:25:b5:00:00:01",
            ),
            (
                ElsRequest::Prli(PrliRepr::single(
                    ElsCode::PRLI,
                    PrliPage::fcp_request(
                        FcpServiceParams::INITIATOR_FUNCTION
                            | FcpServiceParams::READ_XFER_RDY_DISABLED,
                    ),
                )),
                "PRLI FCP eip initiator,rd-xfer-rdy-dis",
            ),
            (
                ElsRequest::Prlo(PrliRepr::single(
                    ElsCode::PRLO,
                    PrliPage::fcp_logout(PrliResponseCode::NONE),
                )),
                "PRLO FCP none",
            ),
            (
                ElsRequest::Rscn(Rscn {
                    pages: vec![RscnPage::port(FcId::from_parts(1, 2, 0))],
                }),
                "RSCN port 010200",
            ),
            (
                ElsRequest::Scr(Scr {
                    function: ScrFunction::FULL,
                }),
                "SCR function=full (0x03)",
            ),
            (
                ElsRequest::Echo(Echo::request(vec![1, 2, 3, 4])),
                "ECHO len=4",
            ),
            (ElsRequest::Lka, "LKA"),
            (
                ElsRequest::Rrq(Rrq {
                    originator: FcId::from_parts(1, 1, 0),
                    ox_id: 0x1234,
                    rx_id: 0xFFFF,
                }),
                "RRQ originator=010100 ox_id=0x1234 rx_id=0xffff",
            ),
            (
                ElsRequest::Unknown {
                    code: ElsCode::ADISC,
                    payload: ADISC[1..].to_vec(),
                },
                "ADISC len=28",
            ),
        ]
    }

    #[test]
    fn test_parse() {
        assert_eq!(
            ElsRequest::parse(&PRLI).map(|r| r.code()),
            Ok(ElsCode::PRLI)
        );
        match ElsRequest::parse(&LOGO) {
            Ok(ElsRequest::Logo(l)) => assert_eq!(l.n_port_id, FcId::from_parts(1, 1, 0)),
            other => panic!("{other:?}"),
        }
        match ElsRequest::parse(&ADISC) {
            Ok(ElsRequest::Unknown { code, payload }) => {
                assert_eq!(code, ElsCode::ADISC);
                assert_eq!(payload, ADISC[1..]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ElsRequest::parse(&hex!("80000000")), Ok(ElsRequest::Lka));
        assert_eq!(
            ElsReply::parse(ElsCode::PRLI, &PRLI_ACC).map(|r| r.to_string()),
            Ok("LS_ACC PRLI FCP eip response=request executed (1) target,rd-xfer-rdy-dis".into())
        );
        assert_eq!(ElsReply::parse(ElsCode::LOGO, &ACC), Ok(ElsReply::Acc));
        assert_eq!(
            ElsReply::parse(ElsCode::ADISC, &ACC),
            Ok(ElsReply::AccPayload(vec![0, 0, 0]))
        );
        assert_eq!(
            ElsReply::parse(ElsCode::PLOGI, &RJT_NOT_SUPPORTED),
            Ok(ElsReply::Rjt(LsRjt::not_supported()))
        );
        assert_eq!(
            ElsReply::parse(ElsCode::ECHO, &hex!("02000000 0102")),
            Ok(ElsReply::Echo(vec![1, 2]))
        );
    }

    #[test]
    fn test_emit() {
        for (req, _) in requests() {
            let bytes = req.to_vec();
            assert_eq!(bytes.len(), req.buffer_len());
            assert_eq!(bytes[0], req.code().0);
            assert_eq!(ElsRequest::parse(&bytes), Ok(req));
        }
        assert_eq!(requests()[4].0.to_vec(), LOGO);
        assert_eq!(requests()[5].0.to_vec(), PRLI);
        assert_eq!(requests()[12].0.to_vec(), ADISC);
        assert_eq!(
            ElsReply::Rjt(LsRjt::not_supported()).to_vec(),
            RJT_NOT_SUPPORTED
        );
        assert_eq!(ElsReply::Acc.to_vec(), ACC);
        let acc = ElsReply::Prli(PrliRepr::single(
            ElsCode::LS_ACC,
            PrliPage::fcp_accept(
                FcpServiceParams::TARGET_FUNCTION | FcpServiceParams::READ_XFER_RDY_DISABLED,
                PrliResponseCode::REQUEST_EXECUTED,
            ),
        ));
        assert_eq!(acc.to_vec(), PRLI_ACC);
        assert_eq!(ElsReply::parse(ElsCode::PRLI, &acc.to_vec()), Ok(acc));
        assert_eq!(ElsReply::Echo(vec![9; 3]).to_vec(), hex!("02000000 090909"));
    }

    #[test]
    fn test_variant_code_wins() {
        // A repr whose code disagrees with the variant: the variant names the ELS.
        let l = LoginRepr::request(ElsCode::PLOGI, WWPN, WWNN, 2112);
        let b = ElsRequest::Flogi(l.clone()).to_vec();
        assert_eq!(b[0], 0x04);
        let b = ElsReply::Login(l).to_vec();
        assert_eq!(b[0], 0x02);
        let p = PrliRepr::single(ElsCode::PRLI, PrliPage::default());
        assert_eq!(ElsRequest::Prlo(p.clone()).to_vec()[0], 0x21);
        assert_eq!(ElsReply::Prlo(p).to_vec()[0], 0x02);
        assert_eq!(
            ElsRequest::Echo(Echo::request(vec![])).to_vec(),
            hex!("10000000")
        );
    }

    #[test]
    fn test_display() {
        for (req, line) in requests() {
            assert_eq!(req.to_string(), line);
        }
        assert_eq!(
            ElsReply::Rjt(LsRjt::new(
                LsRjtReason::UNABLE_TO_PERFORM,
                LsRjtExplanation::N_PORT_LOGIN_REQUIRED
            ))
            .to_string(),
            "LS_RJT reason=unable to perform (0x09) explanation=N_Port login required (0x1e)"
        );
        assert_eq!(ElsReply::Acc.to_string(), "LS_ACC");
        let mut acc = LoginRepr::request(ElsCode::LS_ACC, WWPN, WWNN, 2048);
        acc.code = ElsCode::PLOGI; // the reply variant wins
        assert_eq!(
            ElsReply::Login(acc).to_string(),
            "LS_ACC wwpn=20:00:00:25:b5:00:00:01 wwnn=20:00:00:25:b5:00:00:00 rxsize=2048"
        );
        assert_eq!(
            ElsReply::Prlo(PrliRepr::single(
                ElsCode::LS_ACC,
                PrliPage::fcp_logout(PrliResponseCode::REQUEST_EXECUTED)
            ))
            .to_string(),
            "LS_ACC PRLO FCP response=request executed (1) none"
        );
        assert_eq!(ElsReply::Echo(vec![0; 8]).to_string(), "LS_ACC ECHO len=8");
        assert_eq!(
            ElsReply::AccPayload(vec![0; 27]).to_string(),
            "LS_ACC len=28"
        );
    }

    #[test]
    fn test_validate() {
        let mut l = LoginRepr::request(ElsCode::PLOGI, WWPN, WWNN, 2112);
        assert_eq!(ElsRequest::Plogi(l.clone()).validate(), Ok(()));
        l.classes[2].rx_data_field_size = 4096;
        let err = ElsRequest::Plogi(l).validate().unwrap_err();
        assert_eq!(
            err,
            ElsError::BadClassRxSize {
                class: 3,
                size: 4096
            }
        );
        assert_eq!(
            ElsReply::from(err.ls_rjt()).to_string(),
            "LS_RJT reason=logical error (0x03) explanation=service parameter error - \
             receive data field size (0x07)"
        );
        assert_eq!(ElsRequest::Lka.validate(), Ok(()));
    }

    #[test]
    fn test_not_a_reply() {
        assert_eq!(
            ElsReply::parse(ElsCode::PLOGI, &PRLI),
            Err(ElsError::NotAReply(ElsCode::PRLI))
        );
    }

    #[test]
    fn test_inner_errors_propagate() {
        // A PLOGI shorter than 116 bytes.
        assert!(matches!(
            ElsRequest::parse(&hex!("03000000 20200000")),
            Err(ElsError::Len(LenError { required: 116, .. }))
        ));
        // LS_ACC to a PLOGI that is too short.
        assert!(matches!(
            ElsReply::parse(ElsCode::PLOGI, &ACC),
            Err(ElsError::Len(LenError { required: 116, .. }))
        ));
        let mut b = PRLI;
        b[1] = 0x14;
        assert!(matches!(
            ElsRequest::parse(&b),
            Err(ElsError::BadPageLength { .. })
        ));
    }

    #[test]
    fn test_truncated() {
        for (req, _) in requests() {
            let b = req.to_vec();
            for len in 0..b.len() {
                let r = ElsRequest::parse(&b[..len]);
                // An ECHO, or an unknown code, of any length >= 4 is complete.
                if len >= 4 && matches!(req, ElsRequest::Echo(_) | ElsRequest::Unknown { .. }) {
                    assert!(r.is_ok());
                } else {
                    assert!(r.is_err(), "{req} at {len}");
                }
            }
        }
        for len in 0..4 {
            assert!(matches!(
                ElsReply::parse(ElsCode::LOGO, &ACC[..len]),
                Err(ElsError::Len(_))
            ));
        }
    }

    proptest! {
        #[test]
        fn prop_request_round_trip(req in arb_els_request()) {
            let b = req.to_vec();
            prop_assert_eq!(b.len(), req.buffer_len());
            prop_assert_eq!(ElsRequest::parse(&b), Ok(req));
        }

        #[test]
        fn prop_reply_round_trip((request, reply) in arb_els_reply()) {
            let b = reply.to_vec();
            prop_assert_eq!(b.len(), reply.buffer_len());
            prop_assert_eq!(ElsReply::parse(request, &b), Ok(reply));
        }

        #[test]
        fn prop_no_panic(
            buf in proptest::collection::vec(any::<u8>(), 0..3000),
            request in any::<u8>(),
        ) {
            if let Ok(r) = ElsRequest::parse(&buf) {
                let _ = r.validate();
                let _ = r.to_string();
            }
            if let Ok(r) = ElsReply::parse(ElsCode(request), &buf) {
                let _ = r.to_string();
            }
        }

        #[test]
        fn prop_no_panic_known_codes(
            code in prop::sample::select(vec![
                0x01u8, 0x02, 0x03, 0x04, 0x05, 0x10, 0x12, 0x20, 0x21, 0x50, 0x51, 0x61,
                0x62, 0x80,
            ]),
            body in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut buf = vec![code];
            buf.extend(body);
            let _ = ElsRequest::parse(&buf);
            for request in [ElsCode::PLOGI, ElsCode::PRLI, ElsCode::PRLO, ElsCode::ECHO] {
                let _ = ElsReply::parse(request, &buf);
            }
        }
    }
}
