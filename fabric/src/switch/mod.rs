//! The switch state machine: F_Port logins at FFFFFE (FC-LS-3 §4.2 FLOGI/FDISC/LOGO), the
//! name server at FFFFFC (see [`crate::name_server`]), the fabric controller at FFFFFD (SCR
//! and RSCN, FC-LS-3 §4.2), and routing by destination domain with hard zoning (FC-SW-6).
//!
//! What the switch does with a frame that arrives on a port:
//!
//! ```text
//! port down, or EOFa/EOFni/EOFdti/EOFrti          -> discard (port down / malformed)
//! F_Port, D_ID FFFFFE, ELS request                  -> FLOGI, FDISC, LOGO, PLOGI
//! F_Port, S_ID not logged in on this port:
//!     ELS request                                   -> LS_RJT logical error /
//!                                                      N_Port login required
//!     CT request to FFFFFC                          -> FS_RJT unable to perform /
//!                                                      port ID not registered
//!     anything else                                 -> discard (not logged in)
//! F_Port, D_ID FFFFFC / FFFFFD / FFFFFE             -> the server (ELS replies absorbed,
//!                                                      ABTS answered BA_ACC, ECHO answered,
//!                                                      other ELS LS_RJT not supported)
//! D_ID another well-known address, FFFCxx           -> discard (unroutable)
//! D_ID in this domain                               -> the N_Port's port, if zoned; else discard
//! D_ID in another domain                            -> the inter-switch port of its route
//! inter-switch port, D_ID FFFFFD (SW_ILS, ELS) or
//!     this switch's domain controller FFFCdd        -> inter-switch services (see [`isl`]):
//!                                                      ECHO answered, other ELS LS_RJT not
//!                                                      supported, as on an F_Port
//! inter-switch port, D_ID another domain controller -> the port of its route
//! inter-switch port, S_ID in this domain or
//!     well-known                                    -> discard (not logged in)
//! ```
//!
//! Every answer the switch gives travels in the class of its request: a request that came
//! with SOFf (class F) is answered with SOFf, one in class 2 with SOFi2, class 3 with SOFi3
//! (`reply_sof`). Class 3 is the only class this switch delivers in: FC-FS-4 says a fabric discards a class 3
//! frame it cannot deliver, without F_RJT, and so it does here for every class (class 2's
//! F_RJT is not implemented; a class 2 frame is treated as class 3).
//!
//! Zoning between domains: the name server holds the entries of other domains too, learned
//! over the inter-switch ports ([`isl`]), so a frame between domains is checked on both port
//! names once the remote one is known; before that, it is dropped only when the local end can
//! see nobody at all ([`Zoning::sees_anyone`](crate::Zoning::sees_anyone)).

mod isl;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use fc_frames::bls::BaAccRepr;
use fc_frames::ct::ns::{NsExplanation, NsRequest, NsRequestBody, NsResponse, NsResponseBody};
use fc_frames::ct::CtReason;
use fc_frames::els::{
    ElsCode, ElsReply, ElsRequest, LoginRepr, Logo, LsRjt, LsRjtExplanation, LsRjtReason, Rscn,
    RscnEventQualifier, RscnPage, Scr, ScrFunction,
};
use fc_frames::header::UNASSIGNED_XID;
use fc_frames::{Eof, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};

use crate::config::{Config, ConfigError};
use crate::name_server::{NameServer, NsEntry};
use crate::port::{DiscardReason, PortCounters, PortId};

/// Why an N_Port ID left the fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutCause {
    /// It sent LOGO to FFFFFE (or the N_Port whose FLOGI it shared the link with did).
    Logo,
    /// Its port went down.
    PortDown,
    /// A new FLOGI on its port replaced it.
    Relogin,
}

/// Something notable the switch did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An N_Port logged in (FLOGI or FDISC) and got `port_id`.
    Login {
        /// The switch port.
        port: PortId,
        /// The N_Port ID assigned.
        port_id: FcId,
        /// Its port name.
        port_name: Wwn,
        /// Its node name.
        node_name: Wwn,
    },
    /// An N_Port ID was removed.
    Logout {
        /// The switch port.
        port: PortId,
        /// The N_Port ID removed.
        port_id: FcId,
        /// Its port name.
        port_name: Wwn,
        /// Why.
        cause: LogoutCause,
    },
    /// A domain became reachable through an inter-switch port.
    DomainReached {
        /// The domain.
        domain: u8,
        /// The port that reaches it.
        port: PortId,
    },
    /// A domain is no longer reachable.
    DomainLost {
        /// The domain.
        domain: u8,
    },
    /// The name server entries of another domain were learned (again) from its switch.
    NameServerSynced {
        /// The domain.
        domain: u8,
        /// How many N_Ports it holds.
        entries: usize,
    },
    /// A frame was dropped by hard zoning.
    ZoneDrop {
        /// The port it arrived on.
        port: PortId,
        /// Its source.
        s_id: FcId,
        /// Its destination.
        d_id: FcId,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct PortState {
    up: bool,
    counters: PortCounters,
}

/// Every port's state, by port number: a port is one byte, so a frame's port is found by
/// index, not searched for.
#[derive(Debug, Clone)]
struct PortTable(Box<[Option<PortState>; 256]>);

impl Default for PortTable {
    fn default() -> PortTable {
        PortTable(Box::new([None; 256]))
    }
}

impl PortTable {
    /// The port's state, made when the port is first seen.
    fn entry(&mut self, port: PortId) -> &mut PortState {
        self.0[usize::from(port.0)].get_or_insert_with(PortState::default)
    }

    fn get(&self, port: PortId) -> Option<&PortState> {
        self.0[usize::from(port.0)].as_ref()
    }

    /// Every port seen, in port order.
    fn iter(&self) -> impl Iterator<Item = (PortId, &PortState)> {
        (0..=u8::MAX)
            .zip(self.0.iter())
            .filter_map(|(p, s)| s.as_ref().map(|s| (PortId(p), s)))
    }
}

/// The sans-IO switch. See the [module docs](self) for what it does with each frame.
#[derive(Debug)]
pub struct Switch {
    config: Config,
    ports: PortTable,
    routes: BTreeMap<u8, PortId>,
    isl: isl::Isl,
    ns: NameServer,
    tx: VecDeque<(PortId, FcFrame)>,
    events: VecDeque<Event>,
    next_xid: u16,
}

/// Largest receive data field size the switch accepts in a frame.
const SWITCH_RX_SIZE: u16 = 2112;

fn is_els_request(h: &FrameHeaderRepr) -> bool {
    h.r_ctl == RCtl::ELS_REQUEST && h.fc_type == FcType::ELS
}

fn is_ct_request(h: &FrameHeaderRepr) -> bool {
    h.r_ctl == RCtl::UNSOLICITED_CONTROL && h.fc_type == FcType::CT
}

/// The SOF that opens the reply to a request that came with `request`: a reply travels in
/// the class of its request (FC-FS-4: the responder answers in the class the sequence
/// initiator chose). Class F stays SOFf; class 2 and 4 open their reply sequence with SOFi2
/// and SOFi4; class 3, and an SOF this switch does not know, with SOFi3.
pub(crate) fn reply_sof(request: Sof) -> Sof {
    match request {
        Sof::F => Sof::F,
        Sof::I2 | Sof::N2 => Sof::I2,
        Sof::I4 | Sof::N4 | Sof::C4 => Sof::I4,
        _ => Sof::I3,
    }
}

/// A one-frame reply sequence in the class of a request that came with `request_sof`.
fn reply_frame(request_sof: Sof, h: FrameHeaderRepr, payload: Vec<u8>) -> FcFrame {
    FcFrame::new(reply_sof(request_sof), h, payload.into(), Eof::T)
}

fn rjt(reason: LsRjtReason, explanation: LsRjtExplanation) -> ElsReply {
    ElsReply::Rjt(LsRjt::new(reason, explanation))
}

impl Switch {
    /// A switch with every port down and no routes.
    pub fn new(config: Config) -> Result<Switch, ConfigError> {
        config.validate()?;
        Ok(Switch {
            config,
            ports: PortTable::default(),
            routes: BTreeMap::new(),
            isl: isl::Isl::default(),
            ns: NameServer::default(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            next_xid: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A port's link is up: frames on it are handled from now on. An inter-switch port
    /// starts by telling its neighbour the domains this switch reaches (EFP).
    pub fn port_up(&mut self, now: Instant, port: PortId) {
        self.ports.entry(port).up = true;
        if !self.config.is_f_port(port) {
            self.isl_up(now, port);
        }
    }

    /// A port's link is down: every N_Port ID on it is logged out (RSCN to the ports
    /// registered for it) and frames queued for it are dropped. Behind an inter-switch port,
    /// the domains it reached go (RSCN with their domain pages).
    pub fn port_down(&mut self, now: Instant, port: PortId) {
        self.ports.entry(port).up = false;
        self.tx.retain(|(p, _)| *p != port);
        if self.config.is_f_port(port) {
            let ids = self.ns.ids_on(port);
            self.logout(&ids, LogoutCause::PortDown);
        } else {
            self.isl_down(now, port);
        }
    }

    /// Frames for `domain` go out `port` (an inter-switch port) while it is up, unless a
    /// neighbour announces the domain (EFP) on another port. Replaces any earlier static
    /// route to `domain`.
    pub fn set_route(&mut self, now: Instant, domain: u8, port: PortId) {
        self.isl.fixed.insert(domain, port);
        self.recompute_routes(now);
    }

    /// Forgets the static route to `domain`.
    pub fn remove_route(&mut self, now: Instant, domain: u8) {
        self.isl.fixed.remove(&domain);
        self.recompute_routes(now);
    }

    /// The port that reaches `domain` now, if any.
    pub fn route(&self, domain: u8) -> Option<PortId> {
        self.routes.get(&domain).copied()
    }

    /// The domains reached and their ports, in domain order.
    pub fn routes(&self) -> impl Iterator<Item = (u8, PortId)> + '_ {
        self.routes.iter().map(|(d, p)| (*d, *p))
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: a question to another
    /// switch's name server that may go unanswered.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.isl_timeout()
    }

    /// Time has come to `now`: unanswered questions to other switches are asked again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.isl_handle_timeout(now);
    }

    /// A frame that failed to decode (bad CRC, bad length) arrived on `port`: counted as
    /// received and discarded as malformed. `bytes` is what arrived.
    pub fn handle_malformed(&mut self, port: PortId, bytes: usize) {
        let c = &mut self.ports.entry(port).counters;
        c.rx(bytes);
        c.discards.count(DiscardReason::Malformed);
    }

    /// `n` frames that [`poll_transmit`](Self::poll_transmit) handed out for `port` were
    /// discarded by the driver before they went (no room on the link for the hold time, or the
    /// link down): counted in the port's `tx_discards`.
    pub fn count_tx_discards(&mut self, port: PortId, n: u64) {
        if n > 0 {
            let c = &mut self.ports.entry(port).counters;
            c.tx_discards = c.tx_discards.saturating_add(n);
        }
    }

    /// A frame arrived on `port`.
    pub fn handle_frame(&mut self, now: Instant, port: PortId, frame: FcFrame) {
        let st = self.ports.entry(port);
        st.counters.rx(frame.buffer_len());
        if !st.up {
            return self.discard(port, DiscardReason::PortDown);
        }
        // An invalid or aborted frame's contents are not to be used (FC-FS-4: EOFni, EOFdti,
        // EOFrti mark a frame found bad in transit; EOFa aborts it).
        if matches!(frame.eof, Eof::NI | Eof::DTI | Eof::RTI | Eof::A) {
            return self.discard(port, DiscardReason::Malformed);
        }
        if self.config.is_f_port(port) {
            self.on_f_port(now, port, frame);
        } else {
            self.on_isl(now, port, frame);
        }
    }

    /// The next frame to send, and the port to send it on.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(PortId, FcFrame)> {
        let (port, frame) = self.tx.pop_front()?;
        self.ports.entry(port).counters.tx(frame.buffer_len());
        Some((port, frame))
    }

    /// The next notable event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A port's counters, once the port has been seen.
    pub fn counters(&self, port: PortId) -> Option<&PortCounters> {
        self.ports.get(port).map(|s| &s.counters)
    }

    /// Every port seen, with its counters, in port order.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, &PortCounters)> {
        self.ports.iter().map(|(p, s)| (p, &s.counters))
    }

    /// True when `port` is up.
    pub fn is_up(&self, port: PortId) -> bool {
        self.ports.get(port).is_some_and(|s| s.up)
    }

    /// The name server table, in N_Port ID order (unzoned: the administrator's view).
    pub fn name_server(&self) -> impl Iterator<Item = &NsEntry> {
        self.ns.iter()
    }

    /// The name server entry of one N_Port ID.
    pub fn name_server_entry(&self, id: FcId) -> Option<&NsEntry> {
        self.ns.get(id)
    }

    fn discard(&mut self, port: PortId, reason: DiscardReason) {
        self.ports.entry(port).counters.discards.count(reason);
    }

    fn xid(&mut self) -> u16 {
        self.next_xid = self.next_xid.wrapping_add(1);
        if self.next_xid == UNASSIGNED_XID {
            self.next_xid = 1;
        }
        self.next_xid
    }

    fn send(&mut self, port: PortId, frame: FcFrame) {
        self.tx.push_back((port, frame));
    }

    /// Answers the request `req` (which came in on `port`, starting with `sof`) with an ELS
    /// reply, in the request's class.
    fn reply_els(&mut self, port: PortId, req: &FrameHeaderRepr, sof: Sof, reply: ElsReply) {
        let h = FrameHeaderRepr::reply_to(req, RCtl::ELS_REPLY, self.xid());
        self.send(port, reply_frame(sof, h, reply.to_vec()));
    }

    /// Answers the CT request `req` (which came in on `port`, starting with `sof`), in the
    /// request's class.
    fn reply_ct(&mut self, port: PortId, req: &FrameHeaderRepr, sof: Sof, resp: &NsResponse) {
        let h = FrameHeaderRepr::reply_to(req, RCtl::SOLICITED_CONTROL, self.xid());
        self.send(port, reply_frame(sof, h, resp.to_vec()));
    }

    fn on_f_port(&mut self, now: Instant, port: PortId, frame: FcFrame) {
        let h = frame.header;
        if h.d_id == FcId::F_PORT_CONTROLLER && is_els_request(&h) {
            return self.f_port_controller(now, port, &frame);
        }
        let Some(src) = self
            .ns
            .get(h.s_id)
            .filter(|e| e.port == port)
            .map(|e| e.port_name)
        else {
            return self.not_logged_in(port, &frame);
        };
        match h.d_id {
            FcId::DIRECTORY_SERVER | FcId::FABRIC_CONTROLLER | FcId::F_PORT_CONTROLLER => {
                self.server(port, &frame)
            }
            d if d.is_well_known() || d.is_domain_controller() => {
                self.discard(port, DiscardReason::Unroutable)
            }
            _ => self.forward(port, Some(src), frame),
        }
    }

    /// FC-LS-3: an N_Port that has not completed fabric login may talk to nobody but the
    /// F_Port controller; its ELS requests are rejected "N_Port login required", its name
    /// server requests rejected, and everything else discarded. The LS_RJT to a request for
    /// another N_Port comes from the F_Port controller (FFFFFE), which is what refuses it: the
    /// switch never sends a frame in an N_Port's name.
    fn not_logged_in(&mut self, port: PortId, frame: &FcFrame) {
        let h = &frame.header;
        if is_els_request(h) {
            let r = rjt(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::N_PORT_LOGIN_REQUIRED,
            );
            let mut req = *h;
            if !req.d_id.is_well_known() {
                req.d_id = FcId::F_PORT_CONTROLLER;
            }
            self.reply_els(port, &req, frame.sof, r);
        } else if is_ct_request(h) && h.d_id == FcId::DIRECTORY_SERVER {
            let (reason, expl) = (
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED,
            );
            let resp = match NsRequest::parse(&frame.payload) {
                Ok(req) => req.reject(reason, expl),
                Err(_) => NsResponse::reject(reason, expl),
            };
            self.reply_ct(port, h, frame.sof, &resp);
        } else {
            self.discard(port, DiscardReason::NotLoggedIn);
        }
    }

    fn on_isl(&mut self, now: Instant, port: PortId, frame: FcFrame) {
        let (d, s) = (frame.header.d_id, frame.header.s_id);
        // Switch to switch: SW_ILS between neighbours, or a domain controller's frames.
        if d == FcId::FABRIC_CONTROLLER
            || d == FcId::domain_controller(self.config.domain)
            || (s.is_domain_controller() && s.port() != self.config.domain && d.is_well_known())
        {
            return self.isl_service(now, port, frame);
        }
        if d.is_domain_controller() && s.is_domain_controller() {
            // For a switch further on.
            return match self.routes.get(&d.port()).copied() {
                Some(out) if out != port && self.is_up(out) => self.send(out, frame),
                _ => self.discard(port, DiscardReason::Unroutable),
            };
        }
        if d.is_well_known() || d.is_domain_controller() {
            return self.discard(port, DiscardReason::Unroutable);
        }
        // A source in this domain logs in here, on an F_Port: from another switch it is
        // forged (or looped) and would slip past hard zoning.
        // The same goes for a well-known source: an N_Port hears those from its own switch.
        if s.domain() == self.config.domain || s.is_well_known() || s.is_domain_controller() {
            return self.discard(port, DiscardReason::NotLoggedIn);
        }
        let src = self.ns.get(s).map(|e| e.port_name);
        self.forward(port, src, frame);
    }

    /// Routes a frame to an N_Port: local by N_Port ID, remote by domain. `src` is the
    /// sender's port name when the name server knows it (`None` from an inter-switch port
    /// before the sender's domain was walked).
    fn forward(&mut self, in_port: PortId, src: Option<Wwn>, frame: FcFrame) {
        let h = frame.header;
        let zoning = &self.config.zoning;
        if h.d_id.domain() == self.config.domain {
            let Some(dst) = self.ns.get(h.d_id) else {
                return self.discard(in_port, DiscardReason::Unroutable);
            };
            let allowed = match src {
                Some(s) => zoning.zoned(s, dst.port_name),
                None => zoning.sees_anyone(dst.port_name),
            };
            let out = dst.port;
            if !allowed {
                return self.zone_drop(in_port, &h);
            }
            self.send(out, frame);
        } else {
            if let Some(s) = src {
                let allowed = match self.ns.get(h.d_id) {
                    Some(dst) => zoning.zoned(s, dst.port_name),
                    None => zoning.sees_anyone(s),
                };
                if !allowed {
                    return self.zone_drop(in_port, &h);
                }
            }
            match self.routes.get(&h.d_id.domain()).copied() {
                Some(out) if out != in_port && self.is_up(out) => self.send(out, frame),
                _ => self.discard(in_port, DiscardReason::Unroutable),
            }
        }
    }

    fn zone_drop(&mut self, port: PortId, h: &FrameHeaderRepr) {
        self.discard(port, DiscardReason::Unzoned);
        self.events.push_back(Event::ZoneDrop {
            port,
            s_id: h.s_id,
            d_id: h.d_id,
        });
    }

    /// A frame from a logged-in N_Port to FFFFFC, FFFFFD or FFFFFE (not an FFFFFE ELS
    /// request, which [`Self::f_port_controller`] takes).
    fn server(&mut self, port: PortId, frame: &FcFrame) {
        let h = frame.header;
        if h.r_ctl == RCtl::ELS_REPLY && h.fc_type == FcType::ELS {
            // The LS_ACC (or LS_RJT) to an RSCN: nothing more to do.
            return;
        }
        if h.r_ctl == RCtl::ABTS && h.fc_type == FcType::BLS {
            // FC-LS-3 §3: the recipient of an ABTS answers BA_ACC. The servers keep no
            // exchange open (each request is answered at once), so there is nothing to
            // abort but to say so: the whole exchange, as class 3 does.
            let acc = BaAccRepr::exchange_aborted(h.ox_id, h.rx_id);
            let rh = FrameHeaderRepr::reply_to(&h, RCtl::BA_ACC, h.rx_id);
            return self.send(port, reply_frame(frame.sof, rh, acc.to_vec()));
        }
        if is_ct_request(&h) && h.d_id == FcId::DIRECTORY_SERVER {
            let (resp, changed) = match NsRequest::parse(&frame.payload) {
                Ok(req) => {
                    let resp = self.ns.handle(h.s_id, &req, &self.config.zoning);
                    // FC-4 TYPEs and features are what discovery (GID_FT, GFF_ID) looks at:
                    // registered ports hear of a change with an RSCN, as a fabric login.
                    let accepted = matches!(resp.body, NsResponseBody::Accept(_));
                    let changed = matches!(
                        req.body,
                        NsRequestBody::RftId { .. } | NsRequestBody::RffId { .. }
                    ) && accepted;
                    // Other domains copy every registered attribute (symbolic names too).
                    if accepted && !changed && req.body.is_registration() {
                        self.rscn_to_domains(&[h.s_id]);
                    }
                    (resp, changed)
                }
                Err(e) => (
                    NsResponse::reject(e.reject_reason(), NsExplanation::NONE),
                    false,
                ),
            };
            self.reply_ct(port, &h, frame.sof, &resp);
            if changed {
                let name = self.ns.get(h.s_id).map(|e| e.port_name);
                if let Some(name) = name {
                    self.rscn_with(&[(h.s_id, name)], RscnEventQualifier::NAME_SERVER_OBJECT);
                }
            }
            return;
        }
        if !is_els_request(&h) {
            return self.discard(port, DiscardReason::Unroutable);
        }
        let req = match ElsRequest::parse(&frame.payload).and_then(|r| r.validate().map(|()| r)) {
            Ok(r) => r,
            Err(e) => return self.reply_els(port, &h, frame.sof, ElsReply::Rjt(e.ls_rjt())),
        };
        let reply = match req {
            ElsRequest::Plogi(l) => self.plogi_accept(&l),
            // Logging out of a server's session leaves nothing to undo.
            ElsRequest::Logo(_) => ElsReply::Acc,
            ElsRequest::Scr(scr) if h.d_id == FcId::FABRIC_CONTROLLER => self.scr(h.s_id, scr),
            // FC-LS-3 §4.2 ECHO: the LS_ACC carries the request's data back.
            ElsRequest::Echo(echo) => ElsReply::Echo(echo.accept().data),
            _ => ElsReply::Rjt(LsRjt::not_supported()),
        };
        self.reply_els(port, &h, frame.sof, reply);
    }

    /// The LS_ACC to a PLOGI to a well-known server: the switch's names and class 3.
    fn plogi_accept(&self, l: &LoginRepr) -> ElsReply {
        let rx = l.common.rx_data_field_size.min(SWITCH_RX_SIZE);
        ElsReply::Login(LoginRepr::request(
            ElsCode::LS_ACC,
            self.config.switch_name,
            self.config.fabric_name,
            rx,
        ))
    }

    /// SCR: register for RSCNs (fabric-detected, N_Port-detected, full) or clear.
    fn scr(&mut self, s_id: FcId, scr: Scr) -> ElsReply {
        let on = match scr.function {
            ScrFunction::FABRIC_DETECTED | ScrFunction::N_PORT_DETECTED | ScrFunction::FULL => true,
            ScrFunction::CLEAR => false,
            _ => return rjt(LsRjtReason::LOGICAL_ERROR, LsRjtExplanation::NONE),
        };
        if let Some(e) = self.ns.get_mut(s_id) {
            e.scr = on;
        }
        ElsReply::Acc
    }

    /// An ELS request to FFFFFE, from any S_ID.
    fn f_port_controller(&mut self, now: Instant, port: PortId, frame: &FcFrame) {
        let h = frame.header;
        let req = match ElsRequest::parse(&frame.payload).and_then(|r| r.validate().map(|()| r)) {
            Ok(r) => r,
            Err(e) => return self.reply_els(port, &h, frame.sof, ElsReply::Rjt(e.ls_rjt())),
        };
        let sof = frame.sof;
        match req {
            ElsRequest::Flogi(l) => self.flogi(now, port, &h, sof, &l),
            ElsRequest::Fdisc(l) => self.fdisc(now, port, &h, sof, &l),
            ElsRequest::Logo(l) => self.fabric_logo(port, &h, sof, l),
            _ if self.ns.get(h.s_id).is_none_or(|e| e.port != port) => {
                self.not_logged_in(port, frame)
            }
            ElsRequest::Plogi(l) => {
                let reply = self.plogi_accept(&l);
                self.reply_els(port, &h, sof, reply);
            }
            ElsRequest::Echo(echo) => {
                self.reply_els(port, &h, sof, ElsReply::Echo(echo.accept().data));
            }
            _ => self.reply_els(port, &h, sof, ElsReply::Rjt(LsRjt::not_supported())),
        }
    }

    /// The checks FLOGI and FDISC share: a port name that is set and not in use elsewhere.
    fn login_name_error(
        &self,
        port: PortId,
        l: &LoginRepr,
        same_port_ok: bool,
    ) -> Option<ElsReply> {
        // Among this switch's own N_Ports: another domain's entries are copies it does not
        // control (a duplicate name across sites is the other switch's to refuse too).
        let own = self.config.domain;
        let in_use = self
            .ns
            .iter()
            .find(|e| e.port_name == l.port_name && e.port_id.domain() == own)
            .is_some_and(|e| !(same_port_ok && e.port == port));
        (l.port_name == Wwn::ZERO || in_use).then(|| {
            rjt(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::INVALID_PORT_NAME,
            )
        })
    }

    /// FLOGI: the port's N_Port ID is `DD pp 00`. A FLOGI on a port that already has IDs
    /// logs them all out first (the node restarted its login).
    fn flogi(&mut self, now: Instant, port: PortId, h: &FrameHeaderRepr, sof: Sof, l: &LoginRepr) {
        if let Some(r) = self.login_name_error(port, l, true) {
            return self.reply_els(port, h, sof, r);
        }
        let old = self.ns.ids_on(port);
        self.logout(&old, LogoutCause::Relogin);
        let id = FcId::from_parts(self.config.domain, port.0, 0);
        self.login(now, port, h, sof, l, id);
    }

    /// FDISC: a further N_Port ID `DD pp nn` (nn 01-FF) on a port that has done FLOGI.
    fn fdisc(&mut self, now: Instant, port: PortId, h: &FrameHeaderRepr, sof: Sof, l: &LoginRepr) {
        let base = FcId::from_parts(self.config.domain, port.0, 0);
        if self.ns.get(base).is_none_or(|e| e.port != port) {
            let r = rjt(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::N_PORT_LOGIN_REQUIRED,
            );
            return self.reply_els(port, h, sof, r);
        }
        if let Some(r) = self.login_name_error(port, l, false) {
            return self.reply_els(port, h, sof, r);
        }
        let free = (1..=u8::MAX)
            .map(|n| FcId::from_parts(self.config.domain, port.0, n))
            .find(|id| self.ns.get(*id).is_none());
        match free {
            Some(id) => self.login(now, port, h, sof, l, id),
            None => {
                let r = rjt(
                    LsRjtReason::UNABLE_TO_PERFORM,
                    LsRjtExplanation::INSUFFICIENT_RESOURCES,
                );
                self.reply_els(port, h, sof, r);
            }
        }
    }

    /// Registers `id`, sends the F_Port's LS_ACC to it, and tells the registered ports.
    fn login(
        &mut self,
        now: Instant,
        port: PortId,
        h: &FrameHeaderRepr,
        sof: Sof,
        l: &LoginRepr,
        id: FcId,
    ) {
        self.ns
            .insert(NsEntry::new(id, port, l.port_name, l.node_name, now));
        let acc = LoginRepr::fabric_accept(
            self.config.f_port_name(port),
            self.config.fabric_name,
            l.common.rx_data_field_size.min(SWITCH_RX_SIZE),
            self.config.r_a_tov,
            self.config.e_d_tov,
        );
        let mut rh = FrameHeaderRepr::reply_to(h, RCtl::ELS_REPLY, self.xid());
        // FC-LS-3: the LS_ACC to FLOGI/FDISC goes to the N_Port ID it assigns.
        rh.d_id = id;
        self.send(port, reply_frame(sof, rh, ElsReply::Login(acc).to_vec()));
        self.events.push_back(Event::Login {
            port,
            port_id: id,
            port_name: l.port_name,
            node_name: l.node_name,
        });
        self.rscn(&[(id, l.port_name)]);
    }

    /// LOGO to FFFFFE. Logging out the FLOGI's ID (`DD pp 00`) logs out every ID on the port.
    fn fabric_logo(&mut self, port: PortId, h: &FrameHeaderRepr, sof: Sof, logo: Logo) {
        if self.ns.get(h.s_id).is_none_or(|e| e.port != port) {
            let r = rjt(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::N_PORT_LOGIN_REQUIRED,
            );
            return self.reply_els(port, h, sof, r);
        }
        if logo.n_port_id != h.s_id {
            let r = rjt(
                LsRjtReason::LOGICAL_ERROR,
                LsRjtExplanation::INVALID_N_PORT_ID,
            );
            return self.reply_els(port, h, sof, r);
        }
        self.reply_els(port, h, sof, ElsReply::Acc);
        let ids = if h.s_id.port() == 0 {
            self.ns.ids_on(port)
        } else {
            vec![h.s_id]
        };
        self.logout(&ids, LogoutCause::Logo);
    }

    fn logout(&mut self, ids: &[FcId], cause: LogoutCause) {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.ns.remove(*id) {
                self.events.push_back(Event::Logout {
                    port: e.port,
                    port_id: e.port_id,
                    port_name: e.port_name,
                    cause,
                });
                gone.push((e.port_id, e.port_name));
            }
        }
        self.rscn(&gone);
    }

    /// Sends one RSCN, from FFFFFD, to every SCR-registered N_Port, listing the affected IDs
    /// it is zoned with (port address format), if any.
    fn rscn(&mut self, affected: &[(FcId, Wwn)]) {
        self.rscn_with(affected, RscnEventQualifier::UNSPECIFIED);
    }

    /// [`rscn`](Self::rscn) with an event qualifier on every page. Changes to this domain's
    /// N_Ports are told to the other domains' controllers too.
    fn rscn_with(&mut self, affected: &[(FcId, Wwn)], qualifier: RscnEventQualifier) {
        let local: Vec<FcId> = affected
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| id.domain() == self.config.domain)
            .collect();
        self.rscn_to_domains(&local);
        let mut out = Vec::new();
        for e in self.ns.iter().filter(|e| e.scr) {
            let pages: Vec<RscnPage> = affected
                .iter()
                .filter(|(id, w)| *id != e.port_id && self.config.zoning.zoned(e.port_name, *w))
                .map(|(id, _)| RscnPage {
                    qualifier,
                    ..RscnPage::port(*id)
                })
                .collect();
            if !pages.is_empty() {
                out.push((e.port, e.port_id, Rscn { pages }));
            }
        }
        for (port, d_id, rscn) in out {
            self.send_rscn(port, d_id, FcId::FABRIC_CONTROLLER, &rscn);
        }
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::els::RscnPage;

    use super::*;

    const WA: Wwn = Wwn::from_u64(0x2100_0000_0000_000a);
    const WB: Wwn = Wwn::from_u64(0x2100_0000_0000_000b);

    fn switch() -> Switch {
        let mut sw = Switch::new(Config::new(
            1,
            Wwn::from_u64(0x1000_0000_0000_0001),
            [PortId(1), PortId(2)],
        ))
        .expect("valid config");
        sw.port_up(Instant::now(), PortId(1));
        sw.port_up(Instant::now(), PortId(2));
        sw
    }

    fn els(
        sw: &mut Switch,
        port: PortId,
        s: FcId,
        d: FcId,
        req: ElsRequest,
    ) -> Vec<(PortId, FcFrame)> {
        let h = FrameHeaderRepr::request(RCtl::ELS_REQUEST, FcType::ELS, d, s, 0x10);
        sw.handle_frame(Instant::now(), port, FcFrame::single(h, req.to_vec()));
        std::iter::from_fn(|| sw.poll_transmit()).collect()
    }

    fn fabric_login(sw: &mut Switch, port: PortId, code: ElsCode, w: Wwn) -> (FcId, ElsReply) {
        let l = LoginRepr::request(code, w, w, 2048);
        let req = if code == ElsCode::FLOGI {
            ElsRequest::Flogi(l)
        } else {
            ElsRequest::Fdisc(l)
        };
        let out = els(sw, port, FcId::UNIDENTIFIED, FcId::F_PORT_CONTROLLER, req);
        let (_, f) = out
            .into_iter()
            .find(|(_, f)| f.header.r_ctl == RCtl::ELS_REPLY)
            .expect("reply");
        let reply = ElsReply::parse(code, &f.payload).expect("parses");
        (f.header.d_id, reply)
    }

    fn rjt_explanation(r: &ElsReply) -> LsRjtExplanation {
        match r {
            ElsReply::Rjt(j) => j.explanation,
            other => panic!("expected LS_RJT, got {other}"),
        }
    }

    #[test]
    fn new_rejects_a_bad_config() {
        let c = Config::new(0xF5, Wwn::ZERO, []);
        assert_eq!(Switch::new(c).err(), Some(ConfigError::BadDomain(0xF5)));
    }

    #[test]
    fn xid_never_is_unassigned() {
        let mut sw = switch();
        sw.next_xid = 0xFFFE;
        assert_eq!(sw.xid(), 1);
        assert_eq!(sw.xid(), 2);
    }

    #[test]
    fn flogi_again_replaces_the_ports_ids() {
        let mut sw = switch();
        let (a, _) = fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, WA);
        let (b, _) = fabric_login(&mut sw, PortId(1), ElsCode::FDISC, WB);
        assert_eq!(b, FcId::from_parts(1, 1, 1));
        let _ = std::iter::from_fn(|| sw.poll_event()).count();
        let (again, _) = fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, WA);
        assert_eq!(again, a);
        let events: Vec<Event> = std::iter::from_fn(|| sw.poll_event()).collect();
        assert!(matches!(
            events[..],
            [
                Event::Logout { port_id: x, cause: LogoutCause::Relogin, .. },
                Event::Logout { port_id: y, cause: LogoutCause::Relogin, .. },
                Event::Login { port_id: z, .. },
            ] if x == a && y == b && z == a
        ));
        assert_eq!(sw.name_server().count(), 1);
    }

    #[test]
    fn port_names_must_be_set_and_unique() {
        let mut sw = switch();
        let (_, r) = fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, Wwn::ZERO);
        assert_eq!(rjt_explanation(&r), LsRjtExplanation::INVALID_PORT_NAME);
        fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, WA);
        let (_, r) = fabric_login(&mut sw, PortId(2), ElsCode::FLOGI, WA);
        assert_eq!(rjt_explanation(&r), LsRjtExplanation::INVALID_PORT_NAME);
    }

    #[test]
    fn fdisc_runs_out_of_port_bytes() {
        let mut sw = switch();
        fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, WA);
        for n in 1..=255u64 {
            let (id, _) = fabric_login(
                &mut sw,
                PortId(1),
                ElsCode::FDISC,
                Wwn::from_u64(0x3000 + n),
            );
            assert_eq!(u64::from(id.port()), n);
        }
        let (_, r) = fabric_login(&mut sw, PortId(1), ElsCode::FDISC, Wwn::from_u64(0x4000));
        assert_eq!(
            rjt_explanation(&r),
            LsRjtExplanation::INSUFFICIENT_RESOURCES
        );
        // Port down removes all 256 and the RSCN-free table is empty.
        sw.port_down(Instant::now(), PortId(1));
        assert_eq!(sw.name_server().count(), 0);
        assert!(sw.poll_transmit().is_none());
    }

    #[test]
    fn scr_clear_stops_rscns_and_unknown_functions_are_refused() {
        let mut sw = switch();
        let (a, _) = fabric_login(&mut sw, PortId(1), ElsCode::FLOGI, WA);
        let scr = |f| ElsRequest::Scr(Scr { function: f });
        let out = els(
            &mut sw,
            PortId(1),
            a,
            FcId::FABRIC_CONTROLLER,
            scr(ScrFunction(0x42)),
        );
        let r = ElsReply::parse(ElsCode::SCR, &out[0].1.payload).expect("reply");
        assert!(matches!(r, ElsReply::Rjt(j) if j.reason == LsRjtReason::LOGICAL_ERROR));
        els(
            &mut sw,
            PortId(1),
            a,
            FcId::FABRIC_CONTROLLER,
            scr(ScrFunction::FABRIC_DETECTED),
        );
        // (fabric_login drains the queue, the RSCN of B's login with it.)
        let (b, _) = fabric_login(&mut sw, PortId(2), ElsCode::FLOGI, WB);
        sw.port_down(Instant::now(), PortId(2));
        let (port, f) = sw.poll_transmit().expect("RSCN");
        assert_eq!(port, PortId(1));
        assert_eq!(
            Rscn::parse(&f.payload).map(|r| r.pages),
            Ok(vec![RscnPage::port(b)])
        );
        els(
            &mut sw,
            PortId(1),
            a,
            FcId::FABRIC_CONTROLLER,
            scr(ScrFunction::CLEAR),
        );
        sw.port_up(Instant::now(), PortId(2));
        fabric_login(&mut sw, PortId(2), ElsCode::FLOGI, WB);
        sw.port_down(Instant::now(), PortId(2));
        assert!(sw.poll_transmit().is_none());
    }
}
