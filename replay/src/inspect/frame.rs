//! One FC frame into the fields of its line: addresses, R_CTL/TYPE, exchange IDs, the decode of
//! its payload ([`fc_pcap::decode::Decoder`] for ELS, BLS, name server and FCP; SW_ILS and the
//! controllers' CT service, GS_TYPE 0xE0, decoded here with their own codecs), and for a reply
//! the number of the frame that opened its exchange.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use controller::wire::{self, codec, Key, Kind, Reply, Request};
use fc_frames::sw_ils::{Efp, SwIlsCode, SwRjt};
use fc_frames::{FCtl, FcFrame, FcId, FcType, RCtl};
use serde::Serialize;

use fc_pcap::decode::{Decoder, Message};

/// What a frame's line shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameInfo {
    /// S_ID, six hex digits.
    pub s_id: String,
    /// D_ID.
    pub d_id: String,
    /// R_CTL.
    pub r_ctl: u8,
    /// TYPE.
    #[serde(rename = "type")]
    pub fc_type: u8,
    /// R_CTL and TYPE in words (`ELS request/ELS`).
    pub routing: String,
    /// OX_ID.
    pub ox_id: u16,
    /// RX_ID.
    pub rx_id: u16,
    /// `ELS`, `BLS`, `CT`, `FCP`, `SW_ILS`, `controller` or `other`.
    pub protocol: &'static str,
    /// The payload decoded, in one line.
    pub summary: String,
    /// A controller message's header fields, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerInfo>,
    /// For a frame of the exchange's responder: the number of the frame that opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<usize>,
}

/// The controller message fields a tool may want without parsing the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControllerInfo {
    /// `request`, `reply` or `reject`.
    pub message: &'static str,
    /// HEARTBEAT, UPDATE, ... (a reject has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Sender WWPN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Sender generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u32>,
    /// Sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `ok` or `bad` (with a key given), `unchecked`, or `unsigned` (a reject).
    pub mac: &'static str,
}

/// An exchange: originator, responder, OX_ID (as [`Decoder`] keys it).
type ExchangeKey = (FcId, FcId, u16);

/// An exchange as seen on one TCP connection: with the originator's endpoint, when the frames
/// came over TCP. Switches talk SW_ILS from FFFFFD to FFFFFD, so both sides of an FCIP link may
/// open exchanges of the same addresses and OX_ID at once; their endpoints tell them apart.
type OpenKey = (ExchangeKey, Option<SocketAddr>);

/// Decodes frames in capture order, remembering each open exchange's first frame.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    decoder: Decoder,
    /// Open exchanges: the frame that opened each, `None` when its responder spoke first; each
    /// under its originator's endpoint and under none (whichever connection the reply takes).
    open: HashMap<OpenKey, Option<usize>>,
    /// SW_ILS requests by frame number, to decode the accept of an EFP.
    sw_ils: HashMap<usize, SwIlsCode>,
    key: Option<Key>,
    /// Exchanges whose responder's frames came with no request in the capture.
    pub unmatched: u64,
}

impl FrameDecoder {
    /// A decoder; with `key` the controllers' MACs are checked.
    pub fn new(key: Option<Key>) -> FrameDecoder {
        FrameDecoder {
            key,
            ..FrameDecoder::default()
        }
    }

    /// The open exchange `key` whose originator is at `endpoint`, or the last opened anywhere.
    fn opened(&self, key: ExchangeKey, endpoint: Option<SocketAddr>) -> Option<Option<usize>> {
        let at = endpoint.and_then(|e| self.open.get(&(key, Some(e))));
        at.or_else(|| self.open.get(&(key, None))).copied()
    }

    /// Decodes frame `number`; `flow` is the TCP flow (source, destination) it came in.
    pub fn frame(
        &mut self,
        number: usize,
        f: &FcFrame,
        flow: Option<(SocketAddr, SocketAddr)>,
    ) -> FrameInfo {
        let h = &f.header;
        let responder = h.f_ctl.contains(FCtl::EXCHANGE_CONTEXT);
        let (mut key, endpoint) = if responder {
            ((h.d_id, h.s_id, h.ox_id), flow.map(|f| f.1))
        } else {
            ((h.s_id, h.d_id, h.ox_id), flow.map(|f| f.0))
        };
        // FLOGI and FDISC come from 000000 and are answered to the address assigned.
        if h.s_id == FcId::F_PORT_CONTROLLER && self.opened(key, endpoint).is_none() {
            let flogi = (FcId::UNIDENTIFIED, h.s_id, h.ox_id);
            if self.opened(flogi, endpoint).is_some() {
                key = flogi;
            }
        }
        let reply_to = if responder {
            match self.opened(key, endpoint) {
                Some(n) => n,
                None => {
                    self.unmatched += 1;
                    self.open.insert((key, endpoint), None);
                    None
                }
            }
        } else {
            let opens = h.r_ctl == RCtl::ELS_REQUEST
                || matches!(h.r_ctl.0 & 0x0F, 0x02 | 0x04 | 0x06) && h.r_ctl.0 >> 4 == 0
                || (h.fc_type == FcType::SW_ILS && h.r_ctl == RCtl::UNSOLICITED_CONTROL);
            if opens || self.opened(key, endpoint).is_none() {
                self.open.insert((key, endpoint), Some(number));
                self.open.insert((key, None), Some(number));
            }
            None
        };
        let p = &f.payload[..];
        let mut controller = None;
        let (protocol, summary) = if h.fc_type == FcType::CT
            && p.len() >= fc_frames::ct::PREAMBLE_LEN
            && p[4] == wire::GS_TYPE.0
        {
            let (s, info) = self.controller(p);
            controller = Some(info);
            // Keep the decoder's view of the exchange (it opens nothing for these).
            ("controller", s)
        } else if h.fc_type == FcType::SW_ILS {
            let request = if responder { reply_to } else { Some(number) };
            ("SW_ILS", self.sw_ils(request, responder, p))
        } else {
            let msg = self.decoder.decode(f);
            let protocol = match h.fc_type {
                FcType::ELS => "ELS",
                FcType::BLS => "BLS",
                FcType::CT => "CT",
                FcType::FCP => "FCP",
                _ => "other",
            };
            let protocol = if matches!(msg, Message::Other(_)) && protocol != "FCP" {
                "other"
            } else {
                protocol
            };
            (protocol, msg.to_string())
        };
        if h.f_ctl.contains(FCtl::LAST_SEQUENCE) && h.f_ctl.contains(FCtl::END_SEQUENCE) {
            let this = self.opened(key, endpoint);
            self.open.remove(&(key, endpoint));
            if self.open.get(&(key, None)).copied() == this {
                self.open.remove(&(key, None));
            }
        }
        FrameInfo {
            s_id: h.s_id.to_string(),
            d_id: h.d_id.to_string(),
            r_ctl: h.r_ctl.0,
            fc_type: h.fc_type.0,
            routing: format!("{}/{}", h.r_ctl, h.fc_type),
            ox_id: h.ox_id,
            rx_id: h.rx_id,
            protocol,
            summary,
            controller,
            reply_to,
        }
    }

    /// An SW_ILS payload; `request` is the number of the exchange's request (this frame's own
    /// when it is the request).
    fn sw_ils(&mut self, request: Option<usize>, responder: bool, p: &[u8]) -> String {
        let Some(&code) = p.first() else {
            return "SW_ILS, empty".into();
        };
        let code = SwIlsCode(code);
        let asked = match (request, responder) {
            (Some(n), false) => {
                self.sw_ils.insert(n, code);
                None
            }
            (Some(n), true) => self.sw_ils.remove(&n),
            (None, _) => None,
        };
        match code {
            SwIlsCode::EFP => efp(p),
            SwIlsCode::SW_ACC if asked == Some(SwIlsCode::EFP) => {
                format!("SW_ACC to EFP: {}", efp(p))
            }
            SwIlsCode::SW_RJT => match SwRjt::parse(p) {
                Ok(r) => format!(
                    "SW_RJT {} explanation {:#04x}",
                    r.reason.name().unwrap_or("unknown reason"),
                    r.explanation
                ),
                Err(e) => format!("SW_RJT undecodable: {e}"),
            },
            c => format!("{c} ({} bytes)", p.len()),
        }
    }

    fn controller(&self, p: &[u8]) -> (String, ControllerInfo) {
        let mut info = ControllerInfo {
            message: "request",
            kind: None,
            sender: None,
            generation: None,
            seq: None,
            mac: "unchecked",
        };
        // Decoded whatever the MAC says, which is shown beside it.
        let msg = match codec::decode_unverified(p) {
            Ok(m) => m,
            Err(e) => return (format!("CTL undecodable: {e}"), info),
        };
        info.mac = match (&msg, &self.key) {
            (wire::Message::Reject(_), _) => "unsigned",
            (_, None) => "unchecked",
            (_, Some(k)) if codec::decode(p, k).is_ok() => "ok",
            (_, Some(_)) => "bad",
        };
        let mut header = |h: &wire::Header, kind: Kind| {
            info.kind = Some(kind.name());
            info.sender = Some(h.sender.to_string());
            info.generation = Some(h.generation);
            info.seq = Some(h.seq);
        };
        let s = match &msg {
            wire::Message::Request(h, r) => {
                header(h, r.kind());
                format!(
                    "CTL {} from {} gen {} seq {}{}",
                    r.kind().name(),
                    h.sender,
                    h.generation,
                    h.seq,
                    request_fields(r)
                )
            }
            wire::Message::Reply(h, kind, r) => {
                header(h, *kind);
                format!(
                    "CTL {} reply from {} seq {}{}",
                    kind.name(),
                    h.sender,
                    h.seq,
                    reply_fields(r)
                )
            }
            wire::Message::Reject(reason) => format!("CTL FS_RJT {}", reason.name()),
        };
        info.message = match msg {
            wire::Message::Request(..) => "request",
            wire::Message::Reply(..) => "reply",
            wire::Message::Reject(_) => "reject",
        };
        let s = if info.mac == "bad" {
            format!("{s} [MAC does not check out]")
        } else {
            s
        };
        (s, info)
    }
}

/// An EFP (or its accept) in one line.
fn efp(p: &[u8]) -> String {
    match Efp::parse(p) {
        Ok(e) => {
            let mut s = format!(
                "EFP principal {} priority {}, domains",
                e.principal_name, e.principal_priority
            );
            for d in &e.domains {
                let _ = write!(s, " {:02x} ({} hops)", d.domain, d.hops);
            }
            if e.domains.is_empty() {
                s.push_str(" none");
            }
            s
        }
        Err(e) => format!("EFP undecodable: {e}"),
    }
}

/// A version vector's size, as "n owners".
fn owners(v: &controller::model::VersionVector) -> String {
    format!(
        "{} owner{}",
        v.0.len(),
        if v.0.len() == 1 { "" } else { "s" }
    )
}

/// The main fields of a request.
fn request_fields(r: &Request) -> String {
    match r {
        Request::Heartbeat(hb) => format!(
            ": {} site {} at {}, vector of {}",
            hb.name,
            hb.site,
            hb.fc_id,
            owners(&hb.versions)
        ),
        Request::Update(records) => {
            let names: Vec<String> = records
                .iter()
                .map(|r| {
                    let dead = if r.is_tombstone() { " (deleted)" } else { "" };
                    format!("{} {}{dead}", r.key.name, r.stamp)
                })
                .collect();
            format!(": {} record(s) {}", records.len(), names.join(", "))
        }
        Request::Pull(p) => format!(
            ": past a vector of {}, at most {}",
            owners(&p.versions),
            p.max
        ),
        Request::Claim(c) => format!(
            ": {} {} at {}",
            if c.release { "give back" } else { "claim" },
            c.name,
            c.claimed_at
        ),
        Request::Reserve(r) => format!(
            ": reservation {} of {} bytes of {} for {} ms",
            r.id, r.bytes, r.media, r.ttl_ms
        ),
        Request::Release { id } => format!(": reservation {id}"),
        Request::Commit { id, name } => format!(": reservation {id} into {name}"),
        Request::Lease(l) => format!(
            ": {} {}",
            if l.release { "give back" } else { "lease" },
            l.name
        ),
        Request::Invalidate(i) => {
            if i.revoke {
                format!(": {} everything, lease revoked", i.name)
            } else {
                format!(": {} sectors {}+{}", i.name, i.start, i.sectors)
            }
        }
        Request::Route(r) => format!(
            ": {} read {}",
            r.name,
            if r.replica {
                "the replica"
            } else {
                "through the owner"
            }
        ),
    }
}

/// The main fields of a reply.
fn reply_fields(r: &Reply) -> String {
    match r {
        Reply::Ack => ": ack".into(),
        Reply::Updated(v) => format!(": applied, vector of {}", owners(v)),
        Reply::Pulled(p) => format!(
            ": {} record(s){}, vector of {}",
            p.records.len(),
            if p.complete { ", complete" } else { ", more" },
            owners(&p.versions)
        ),
        Reply::Claimed(c) => match (c.granted, c.holder) {
            (true, _) => ": granted".into(),
            (false, Some((w, since))) => format!(": refused, held by {w} since {since}"),
            (false, None) => ": refused".into(),
        },
        Reply::Reserved(e) => format!(": {} extent(s) held", e.len()),
        Reply::Leased { ttl_ms: 0 } => ": no lease".into(),
        Reply::Leased { ttl_ms } => format!(": leased for {ttl_ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use controller::catalogue;
    use fc_frames::FrameHeaderRepr;

    use super::*;

    fn ct(r_ctl: RCtl, s: FcId, d: FcId, ox: u16, responder: bool, payload: Vec<u8>) -> FcFrame {
        let mut h = FrameHeaderRepr::request(r_ctl, FcType::CT, s, d, ox);
        if responder {
            h.f_ctl = FCtl::LAST_REPLY;
        }
        FcFrame::single(h, payload)
    }

    #[test]
    fn test_controller_messages_and_reply_matching() {
        let key = Key::new(b"0123456789abcdef");
        let msgs = catalogue::messages();
        let (a, b) = (catalogue::A_ID, catalogue::B_ID);
        let mut d = FrameDecoder::default();
        let mut lines = Vec::new();
        for (i, pair) in msgs.chunks(2).enumerate() {
            let ox = i as u16;
            let req = ct(
                RCtl::UNSOLICITED_CONTROL,
                a,
                b,
                ox,
                false,
                codec::encode(&pair[0], &key),
            );
            lines.push(d.frame(2 * i + 1, &req, None));
            if let Some(rep) = pair.get(1) {
                let rep = ct(
                    RCtl::SOLICITED_CONTROL,
                    b,
                    a,
                    ox,
                    true,
                    codec::encode(rep, &key),
                );
                lines.push(d.frame(2 * i + 2, &rep, None));
            }
        }
        let hb = &lines[0];
        assert_eq!(hb.protocol, "controller");
        assert!(
            hb.summary
                .starts_with("CTL HEARTBEAT from 20:00:00:25:b5:00:00:01 gen 3 seq "),
            "{hb:?}"
        );
        let info = hb.controller.as_ref().expect("controller info");
        assert_eq!(
            (info.message, info.kind, info.mac),
            ("request", Some("HEARTBEAT"), "unchecked")
        );
        assert_eq!(lines[1].reply_to, Some(1));
        assert!(
            lines[1].summary.contains("HEARTBEAT reply"),
            "{:?}",
            lines[1]
        );
        for l in &lines {
            assert!(!l.summary.contains("undecodable"), "{l:?}");
        }
        assert!(lines.iter().any(|l| l.summary.starts_with("CTL FS_RJT")));
        assert_eq!(d.unmatched, 0);
        // With the wrong key every signed message says so.
        let mut d = FrameDecoder::new(Some(Key::new(b"another key, not theirs")));
        let req = ct(
            RCtl::UNSOLICITED_CONTROL,
            a,
            b,
            1,
            false,
            codec::encode(&msgs[0], &key),
        );
        let l = d.frame(1, &req, None);
        assert_eq!(l.controller.expect("info").mac, "bad");
        // A reply with no request: unmatched, once per exchange.
        let mut rep = ct(
            RCtl::SOLICITED_CONTROL,
            b,
            a,
            77,
            false,
            codec::encode(&msgs[1], &key),
        );
        rep.header.f_ctl = FCtl::EXCHANGE_CONTEXT;
        assert_eq!(d.frame(2, &rep, None).reply_to, None);
        assert_eq!(d.frame(3, &rep, None).reply_to, None);
        assert_eq!(d.unmatched, 1);
    }
}
