//! Decoding a stream of FC frames into typed messages and one-line summaries, the way an
//! analyzer reads a trace: replies are decoded against the request of their exchange (an ELS
//! LS_ACC against its PLOGI, a name-server accept against its GID_FT, SCSI data-in against its
//! CDB), so the decoder remembers each open exchange's request.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use fc_frames::bls::Bls;
use fc_frames::ct::ns::{NsRequest, NsResponse};
use fc_frames::ct::CtCommand;
use fc_frames::els::{ElsCode, ElsReply, ElsRequest};
use fc_frames::fcp::{FcpCmndRepr, FcpRspRepr, FcpXferRdyRepr};
use fc_frames::scsi::cdb::Cdb;
use fc_frames::scsi::data::{
    InquiryData, ModeForm, ModeParameters, ReadBlockLimitsData, ReadCapacity10Data,
    ReadCapacity16Data, ReportLunsData, Vpd,
};
use fc_frames::scsi::Sense;
use fc_frames::{FCtl, FcFrame, FcId, FcType, RCtl};

/// What one frame carries, decoded as far as its exchange allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An ELS request.
    ElsRequest(ElsRequest),
    /// An ELS reply, decoded against its request's command code.
    ElsReply(ElsCode, ElsReply),
    /// A basic link service frame.
    Bls(Bls),
    /// A name server request.
    NsRequest(NsRequest),
    /// A name server response, decoded against its request's command code.
    NsResponse(CtCommand, NsResponse),
    /// An FCP command and its CDB (the CDB's own decode may fail while the IU is fine).
    FcpCmnd(FcpCmndRepr, Result<Cdb, String>),
    /// FCP transfer ready.
    FcpXferRdy(FcpXferRdyRepr),
    /// FCP data at a relative offset, with the parameter data decoded when the command is known.
    FcpData {
        /// Relative offset of this frame's data.
        offset: u32,
        /// Bytes of data.
        len: usize,
        /// One-line summary of the parameter data, when the command's kind is known and this
        /// frame holds it from offset 0.
        data: Option<String>,
    },
    /// FCP response.
    FcpRsp(FcpRspRepr),
    /// A reply whose request is not in the trace, or a frame of a kind not decoded here.
    Other(String),
    /// A frame whose payload does not decode: what was wrong.
    Error(String),
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::ElsRequest(r) => write!(f, "{r}"),
            Message::ElsReply(_, r) => write!(f, "{r}"),
            Message::Bls(b) => write!(f, "{b}"),
            Message::NsRequest(r) => write!(f, "{r}"),
            Message::NsResponse(_, r) => write!(f, "{r}"),
            Message::FcpCmnd(c, Ok(cdb)) => write!(f, "{c} | {cdb}"),
            Message::FcpCmnd(c, Err(e)) => write!(f, "{c} | CDB not decoded: {e}"),
            Message::FcpXferRdy(x) => write!(f, "{x}"),
            Message::FcpData { offset, len, data } => {
                write!(f, "FCP_DATA ro={offset} len={len}")?;
                if let Some(d) = data {
                    write!(f, " | {d}")?;
                }
                Ok(())
            }
            Message::FcpRsp(r) => write!(f, "{r}"),
            Message::Other(s) => f.write_str(s),
            Message::Error(s) => write!(f, "undecodable: {s}"),
        }
    }
}

/// An exchange as the decoder keys it: originator, responder, OX_ID.
type ExchangeKey = (FcId, FcId, u16);

/// The request that opened an exchange, kept to decode what answers it.
#[derive(Debug, Clone)]
enum Pending {
    Els(ElsCode),
    Ct(CtCommand),
    /// The CDB bytes of an FCP command.
    Scsi([u8; 16]),
}

/// Decodes frames in capture order, remembering each exchange's request.
#[derive(Debug, Default)]
pub struct Decoder {
    open: HashMap<ExchangeKey, Pending>,
}

impl Decoder {
    /// Decodes one frame.
    pub fn decode(&mut self, f: &FcFrame) -> Message {
        let h = &f.header;
        // The exchange originator is the sender unless the frame comes from the responder.
        let key = if h.f_ctl.contains(FCtl::EXCHANGE_CONTEXT) {
            (h.d_id, h.s_id, h.ox_id)
        } else {
            (h.s_id, h.d_id, h.ox_id)
        };
        // FLOGI and FDISC come from the unidentified address and are answered to the address
        // the fabric assigns: match the reply to the request from 000000.
        let key = if h.s_id == FcId::F_PORT_CONTROLLER && !self.open.contains_key(&key) {
            (FcId::UNIDENTIFIED, h.s_id, h.ox_id)
        } else {
            key
        };
        let last = h.f_ctl.contains(FCtl::LAST_SEQUENCE);
        let p = &f.payload[..];
        let msg = match (h.fc_type, h.r_ctl) {
            (FcType::ELS, RCtl::ELS_REQUEST) => match ElsRequest::parse(p) {
                Ok(r) => {
                    self.open.insert(key, Pending::Els(r.code()));
                    Message::ElsRequest(r)
                }
                Err(e) => Message::Error(e.to_string()),
            },
            (FcType::ELS, RCtl::ELS_REPLY) => match self.open.get(&key) {
                Some(Pending::Els(code)) => match ElsReply::parse(*code, p) {
                    Ok(r) => Message::ElsReply(*code, r),
                    Err(e) => Message::Error(e.to_string()),
                },
                _ => Message::Other(format!(
                    "ELS reply to a request not seen ({} bytes)",
                    p.len()
                )),
            },
            (FcType::BLS, r) => match Bls::parse(r.0, p) {
                Ok(b) => Message::Bls(b),
                Err(e) => Message::Error(e.to_string()),
            },
            (FcType::CT, RCtl::UNSOLICITED_CONTROL) => match NsRequest::parse(p) {
                Ok(r) => {
                    self.open.insert(key, Pending::Ct(r.command()));
                    Message::NsRequest(r)
                }
                Err(e) => Message::Error(e.to_string()),
            },
            (FcType::CT, RCtl::SOLICITED_CONTROL) => match self.open.get(&key) {
                Some(Pending::Ct(cmd)) => match NsResponse::parse(*cmd, p) {
                    Ok(r) => Message::NsResponse(*cmd, r),
                    Err(e) => Message::Error(e.to_string()),
                },
                _ => Message::Other(format!(
                    "CT response to a request not seen ({} bytes)",
                    p.len()
                )),
            },
            (FcType::FCP, RCtl::UNSOLICITED_COMMAND) => match FcpCmndRepr::parse(p) {
                Ok(c) => {
                    self.open.insert(key, Pending::Scsi(c.cdb));
                    let cdb = Cdb::parse(&c.full_cdb()).map_err(|e| e.to_string());
                    Message::FcpCmnd(c, cdb)
                }
                Err(e) => Message::Error(e.to_string()),
            },
            (FcType::FCP, RCtl::DATA_DESCRIPTOR) => match FcpXferRdyRepr::parse(p) {
                Ok(x) => Message::FcpXferRdy(x),
                Err(e) => Message::Error(e.to_string()),
            },
            (FcType::FCP, RCtl::SOLICITED_DATA) => {
                let offset = if h.f_ctl.contains(FCtl::RELATIVE_OFFSET) {
                    h.parameter
                } else {
                    0
                };
                let data = match self.open.get(&key) {
                    Some(Pending::Scsi(cdb)) if offset == 0 => parameter_data(cdb, p),
                    _ => None,
                };
                Message::FcpData {
                    offset,
                    len: p.len(),
                    data,
                }
            }
            (FcType::FCP, RCtl::COMMAND_STATUS) => match FcpRspRepr::parse(p) {
                Ok(r) => Message::FcpRsp(r),
                Err(e) => Message::Error(e.to_string()),
            },
            (t, r) => Message::Other(format!("{r} {t} ({} bytes)", p.len())),
        };
        if last && h.f_ctl.contains(FCtl::END_SEQUENCE) {
            self.open.remove(&key);
        }
        msg
    }

    /// One line for a trace: number, time, addresses, OX_ID, and the decoded message.
    pub fn line(&mut self, number: usize, ts: Duration, f: &FcFrame) -> String {
        let h = &f.header;
        format!(
            "{number:>4} {:>10.6} {} -> {} ox={:04x} {}",
            ts.as_secs_f64(),
            h.s_id,
            h.d_id,
            h.ox_id,
            self.decode(f)
        )
    }
}

/// Decodes SCSI data-in by the command that asked for it (opcode, EVPD and page code from the
/// CDB bytes); `None` for data that is not parameter data (READ blocks) or commands not known.
fn parameter_data(cdb: &[u8; 16], data: &[u8]) -> Option<String> {
    fn show<T: fmt::Display, E: fmt::Display>(r: Result<T, E>) -> Option<String> {
        Some(match r {
            Ok(v) => v.to_string(),
            Err(e) => format!("undecodable: {e}"),
        })
    }
    match cdb[0] {
        0x12 if cdb[1] & 0x01 == 0 => show(InquiryData::parse(data)),
        0x12 => show(Vpd::parse(data)),
        0x03 => show(Sense::parse(data)),
        0x05 => show(ReadBlockLimitsData::parse(data)),
        0x25 => show(ReadCapacity10Data::parse(data)),
        0x9E if cdb[1] & 0x1F == 0x10 => show(ReadCapacity16Data::parse(data)),
        0xA0 => show(ReportLunsData::parse(data)),
        0x1A => show(ModeParameters::parse(data, ModeForm::Six)),
        0x5A => show(ModeParameters::parse(data, ModeForm::Ten)),
        _ => None,
    }
}
