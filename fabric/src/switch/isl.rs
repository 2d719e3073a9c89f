//! Inter-switch services: how switches joined by inter-switch ports (E_Ports, FCIP VE_Ports)
//! learn which domains they reach and what N_Ports those domains hold, so that an N_Port on
//! one switch finds an N_Port on another with GID_FT.
//!
//! ```text
//! inter-switch port up ──► EFP  FFFFFD → FFFFFD: this domain first, then the domains reached
//!                      ◄── SW_ACC (the neighbour's own list)   through other ports
//! a domain reached     ──► GA_NXT walk of FFFCdd's name server, GFF_ID for each entry found:
//!                          its entries join the local name server (port: the route's port),
//!                          registered N_Ports hear RSCN for the ones they are zoned with
//! local N_Port change  ──► RSCN  FFFC<own> → FFFCdd, to every domain reached
//! RSCN from FFFCdd     ──► walk dd again
//! a domain lost        ──► its entries dropped, RSCN (domain page) to registered N_Ports
//! FFFC<own> answers    ◄── name server queries (own domain only, unzoned), ECHO
//! ```
//!
//! Routes: each EFP record carries how many inter-switch links away its domain is (in a byte
//! FC-SW-6 reserves; see [`fc_frames::sw_ils`]). A domain goes to the port whose neighbour
//! reaches it in the fewest hops (the lower port on a tie), else to a static route
//! ([`Switch::set_route`]). A switch does not tell a neighbour of the domains it reaches
//! through that neighbour (split horizon), and a domain [`MAX_HOPS`] away counts as
//! unreachable, so a domain that has gone ages out of any ring of switches within that many
//! rounds of EFP. It is distance-vector routing, not FSPF. A domain that moves to another
//! port keeps its name server entries (walked again); only a domain no port reaches is lost.
//!
//! Each walk step waits R_A_TOV for its answer and is asked again, three times in all; a
//! walk that gets no answer at all is given up (the domain stays routed, its entries as they
//! were) until the next RSCN from that domain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fc_frames::ct::ns::{NsAccept, NsRequest, NsResponse, NsResponseBody};
use fc_frames::ct::CtCommand;
use fc_frames::els::{ElsReply, ElsRequest, LsRjt, Rscn, RscnAddressFormat, RscnPage};
use fc_frames::sw_ils::{DomainRecord, Efp, SwIlsCode, SwRjt};
use fc_frames::{Eof, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};

use super::{is_ct_request, is_els_request, Event, Switch};
use crate::name_server::NsEntry;
use crate::port::{DiscardReason, PortId};

/// Times each walk step is sent before the walk is given up.
const WALK_TRIES: u32 = 3;
/// Hops at which a domain counts as unreachable.
pub const MAX_HOPS: u8 = 16;
/// Domain IDs a switch may have (FC-SW: 01-EF).
const DOMAINS: std::ops::RangeInclusive<u8> = 0x01..=0xEF;
/// Principal switch priority this switch announces: never principal (it takes its domain
/// from its configuration, not from domain assignment).
const NOT_PRINCIPAL: u8 = 0xFF;

/// What a switch knows of the switches beyond its inter-switch ports.
#[derive(Debug, Default)]
pub(super) struct Isl {
    /// Routes set by the administrator ([`Switch::set_route`]).
    pub(super) fixed: BTreeMap<u8, PortId>,
    /// The domain list each neighbour last announced, by port (valid domains, not ours).
    heard: BTreeMap<PortId, Vec<DomainRecord>>,
    /// How many hops each routed domain is away.
    hops: BTreeMap<u8, u8>,
    /// Name server walks under way, by domain.
    walks: BTreeMap<u8, Walk>,
}

/// A walk of one remote domain's name server.
#[derive(Debug)]
struct Walk {
    port: PortId,
    /// The step's request, its exchange, when it is given up on, and how often it was sent.
    request: NsRequest,
    ox: u16,
    deadline: Instant,
    tries: u32,
    /// Entries found so far, in ID order.
    found: Vec<NsEntry>,
    /// `None` while GA_NXT steps through the table; then the entry whose GFF_ID is asked.
    features_of: Option<usize>,
    /// An RSCN came while walking: walk again when done.
    again: bool,
}

fn sw_ils_header(d_id: FcId, s_id: FcId, ox: u16) -> FrameHeaderRepr {
    FrameHeaderRepr::request(RCtl::UNSOLICITED_CONTROL, FcType::SW_ILS, d_id, s_id, ox)
}

fn is_sw_ils(h: &FrameHeaderRepr) -> bool {
    h.fc_type == FcType::SW_ILS
        && (h.r_ctl == RCtl::UNSOLICITED_CONTROL || h.r_ctl == RCtl::SOLICITED_CONTROL)
}

impl Switch {
    fn own_controller(&self) -> FcId {
        FcId::domain_controller(self.config.domain)
    }

    fn r_a_tov(&self) -> Duration {
        Duration::from_millis(u64::from(self.config.r_a_tov))
    }

    /// The inter-switch ports that are up.
    fn isl_ports(&self) -> Vec<PortId> {
        self.ports
            .iter()
            .filter(|(p, s)| s.up && !self.config.is_f_port(*p))
            .map(|(p, _)| p)
            .collect()
    }

    /// An inter-switch port came up: tell the neighbour what this switch reaches.
    pub(super) fn isl_up(&mut self, now: Instant, port: PortId) {
        self.send_efp(port, None);
        self.recompute_routes(now);
    }

    /// An inter-switch port went down: what its neighbour announced is forgotten.
    pub(super) fn isl_down(&mut self, now: Instant, port: PortId) {
        self.isl.heard.remove(&port);
        self.recompute_routes(now);
    }

    /// This switch's domain list as told to the neighbour on `port`.
    fn efp_for(&self, port: PortId) -> Efp {
        let mut domains = vec![DomainRecord {
            domain: self.config.domain,
            hops: 0,
            switch_name: self.config.switch_name,
        }];
        for (&domain, &via) in &self.routes {
            if via == port {
                continue;
            }
            let switch_name = self
                .isl
                .heard
                .get(&via)
                .and_then(|l| l.iter().find(|r| r.domain == domain))
                .map_or(Wwn::ZERO, |r| r.switch_name);
            domains.push(DomainRecord {
                domain,
                hops: self.isl.hops.get(&domain).copied().unwrap_or(1),
                switch_name,
            });
        }
        // Nearest first: if more domains than one frame holds, the far ones are left out.
        domains.sort_by_key(|r| r.hops);
        Efp {
            principal_priority: NOT_PRINCIPAL,
            principal_name: self.config.switch_name,
            domains,
        }
    }

    /// Sends EFP (or, answering one with `reply_to`, the SW_ACC carrying the same list).
    fn send_efp(&mut self, port: PortId, reply_to: Option<&FrameHeaderRepr>) {
        let efp = self.efp_for(port);
        let (h, payload) = match reply_to {
            Some(req) => (
                FrameHeaderRepr::reply_to(req, RCtl::SOLICITED_CONTROL, self.xid()),
                efp.accept_vec(),
            ),
            None => {
                let ox = self.xid();
                let fc = FcId::FABRIC_CONTROLLER;
                (sw_ils_header(fc, fc, ox), efp.to_vec())
            }
        };
        // Class F: switch-to-switch frames start with SOFf.
        self.send(port, FcFrame::new(Sof::F, h, payload.into(), Eof::T));
    }

    /// Works out every route again from the static routes and what the neighbours said, and
    /// acts on the domains gained and lost.
    pub(super) fn recompute_routes(&mut self, now: Instant) {
        let own = self.config.domain;
        // (hops, port) of the best route to each domain: fewest hops, then the lower port.
        let mut best: BTreeMap<u8, (u8, PortId)> = BTreeMap::new();
        for (&port, list) in &self.isl.heard {
            for r in list {
                let hops = r.hops.saturating_add(1);
                if hops >= MAX_HOPS {
                    continue;
                }
                let e = best.entry(r.domain).or_insert((hops, port));
                *e = (*e).min((hops, port));
            }
        }
        for (&domain, &port) in &self.isl.fixed {
            if domain != own && self.is_up(port) {
                best.entry(domain).or_insert((1, port));
            }
        }
        let routes: BTreeMap<u8, PortId> = best.iter().map(|(d, (_, p))| (*d, *p)).collect();
        let hops: BTreeMap<u8, u8> = best.iter().map(|(d, (h, _))| (*d, *h)).collect();
        if routes == self.routes {
            if hops != self.isl.hops {
                self.isl.hops = hops;
                self.announce();
            }
            return;
        }
        self.isl.hops = hops;
        let old = std::mem::replace(&mut self.routes, routes);
        let lost: Vec<u8> = old
            .keys()
            .filter(|d| !self.routes.contains_key(d))
            .copied()
            .collect();
        let changed: Vec<(u8, PortId, bool)> = self
            .routes
            .iter()
            .filter(|(d, p)| old.get(d) != Some(p))
            .map(|(d, p)| (*d, *p, old.contains_key(d)))
            .collect();
        for &domain in &lost {
            self.isl.walks.remove(&domain);
            let ids: Vec<FcId> = self
                .ns
                .iter()
                .filter(|e| e.port_id.domain() == domain)
                .map(|e| e.port_id)
                .collect();
            for id in ids {
                self.ns.remove(id);
            }
            self.events.push_back(Event::DomainLost { domain });
        }
        self.rscn_domains(&lost);
        for &(domain, port, moved) in &changed {
            if moved {
                // Still reached, through another port: its entries stay, walked again there.
                for e in self.ns.iter_mut().filter(|e| e.port_id.domain() == domain) {
                    e.port = port;
                }
            }
            self.events.push_back(Event::DomainReached { domain, port });
            self.start_walk(now, domain, port);
        }
        self.announce();
    }

    /// Tells every neighbour this switch's domain list.
    fn announce(&mut self) {
        for port in self.isl_ports() {
            self.send_efp(port, None);
        }
    }

    /// RSCN with one domain page for each domain, to every registered N_Port of this domain.
    fn rscn_domains(&mut self, domains: &[u8]) {
        if domains.is_empty() {
            return;
        }
        let pages: Vec<RscnPage> = domains
            .iter()
            .map(|d| RscnPage {
                format: RscnAddressFormat::DOMAIN,
                ..RscnPage::port(FcId::from_parts(*d, 0, 0))
            })
            .collect();
        let to: Vec<(PortId, FcId)> = self
            .ns
            .iter()
            .filter(|e| e.scr && e.port_id.domain() == self.config.domain)
            .map(|e| (e.port, e.port_id))
            .collect();
        for (port, d_id) in to {
            let rscn = Rscn {
                pages: pages.clone(),
            };
            self.send_rscn(port, d_id, FcId::FABRIC_CONTROLLER, &rscn);
        }
    }

    pub(super) fn send_rscn(&mut self, port: PortId, d_id: FcId, s_id: FcId, rscn: &Rscn) {
        let ox = self.xid();
        let h = FrameHeaderRepr::request(RCtl::ELS_REQUEST, FcType::ELS, d_id, s_id, ox);
        self.send(port, FcFrame::single(h, rscn.to_vec()));
    }

    /// Tells every domain reached that these N_Ports of this domain changed.
    pub(super) fn rscn_to_domains(&mut self, ids: &[FcId]) {
        if ids.is_empty() {
            return;
        }
        let rscn = Rscn {
            pages: ids.iter().map(|id| RscnPage::port(*id)).collect(),
        };
        let own = self.own_controller();
        let routes: Vec<(u8, PortId)> = self.routes.iter().map(|(d, p)| (*d, *p)).collect();
        for (domain, port) in routes {
            self.send_rscn(port, FcId::domain_controller(domain), own, &rscn);
        }
    }

    fn start_walk(&mut self, now: Instant, domain: u8, port: PortId) {
        let walk = Walk {
            port,
            // GA_NXT answers the entry after the ID it is given: start just below DD0000.
            request: NsRequest::ga_nxt(FcId::from_parts(domain.wrapping_sub(1), 0xFF, 0xFF)),
            ox: 0,
            deadline: now,
            tries: 0,
            found: Vec::new(),
            features_of: None,
            again: false,
        };
        self.isl.walks.insert(domain, walk);
        self.send_walk_step(now, domain);
    }

    /// Sends (again) the current step of `domain`'s walk.
    fn send_walk_step(&mut self, now: Instant, domain: u8) {
        let ox = self.xid();
        let timeout = self.r_a_tov();
        let own = self.own_controller();
        let Some(w) = self.isl.walks.get_mut(&domain) else {
            return;
        };
        w.ox = ox;
        w.deadline = now + timeout;
        w.tries += 1;
        let h = FrameHeaderRepr::request(
            RCtl::UNSOLICITED_CONTROL,
            FcType::CT,
            FcId::domain_controller(domain),
            own,
            ox,
        );
        let (port, payload) = (w.port, w.request.to_vec());
        self.send(port, FcFrame::single(h, payload));
    }

    /// The earliest walk step deadline.
    pub(super) fn isl_timeout(&self) -> Option<Instant> {
        self.isl.walks.values().map(|w| w.deadline).min()
    }

    /// Asks again what went unanswered, or gives up.
    pub(super) fn isl_handle_timeout(&mut self, now: Instant) {
        let due: Vec<u8> = self
            .isl
            .walks
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(d, _)| *d)
            .collect();
        for domain in due {
            if self
                .isl
                .walks
                .get(&domain)
                .is_some_and(|w| w.tries >= WALK_TRIES)
            {
                self.isl.walks.remove(&domain);
            } else {
                self.send_walk_step(now, domain);
            }
        }
    }

    /// A frame from an inter-switch port for this switch: SW_ILS to FFFFFD, or anything to
    /// its domain controller. Anything else for a well-known address is discarded.
    pub(super) fn isl_service(&mut self, now: Instant, port: PortId, frame: FcFrame) {
        let h = frame.header;
        if h.d_id == FcId::FABRIC_CONTROLLER && is_sw_ils(&h) {
            return self.on_sw_ils(now, port, &frame);
        }
        // The fabric controller and this switch's domain controller answer ELS requests from
        // across an inter-switch port as they do on an F_Port: ECHO, and LS_RJT for what they
        // do not serve.
        let own = self.own_controller();
        if (h.d_id == FcId::FABRIC_CONTROLLER || h.d_id == own) && is_els_request(&h) {
            return self.isl_els(now, port, &frame);
        }
        if h.d_id != own || !h.s_id.is_domain_controller() {
            return self.discard(port, DiscardReason::Unroutable);
        }
        let from = h.s_id.port();
        if is_ct_request(&h) {
            let resp = match NsRequest::parse(&frame.payload) {
                Ok(req) => self.ns.handle_for_switch(self.config.domain, &req),
                Err(e) => {
                    NsResponse::reject(e.reject_reason(), fc_frames::ct::ns::NsExplanation::NONE)
                }
            };
            return self.reply_ct(port, &h, frame.sof, &resp);
        }
        if h.fc_type == FcType::CT && h.r_ctl == RCtl::SOLICITED_CONTROL {
            return self.walk_answer(now, from, &h, &frame.payload);
        }
        // The LS_ACC to an RSCN this switch sent, or a frame it has no use for.
        if !(h.fc_type == FcType::ELS && h.r_ctl == RCtl::ELS_REPLY) {
            self.discard(port, DiscardReason::Unroutable);
        }
    }

    /// An ELS request to FFFFFD or this switch's domain controller, from an inter-switch port:
    /// an RSCN from another domain's controller has its name server walked again; ECHO is
    /// answered with its data; anything else is refused as not supported.
    fn isl_els(&mut self, now: Instant, port: PortId, frame: &FcFrame) {
        let h = frame.header;
        let reply = match ElsRequest::parse(&frame.payload) {
            Ok(ElsRequest::Rscn(_))
                if h.d_id == self.own_controller() && h.s_id.is_domain_controller() =>
            {
                self.rescan(now, h.s_id.port());
                ElsReply::Acc
            }
            Ok(ElsRequest::Echo(echo)) => ElsReply::Echo(echo.accept().data),
            Ok(_) => ElsReply::Rjt(LsRjt::not_supported()),
            Err(e) => ElsReply::Rjt(e.ls_rjt()),
        };
        self.reply_els(port, &h, frame.sof, reply);
    }

    fn on_sw_ils(&mut self, now: Instant, port: PortId, frame: &FcFrame) {
        let h = frame.header;
        let code = frame.payload.first().copied().map(SwIlsCode);
        if h.r_ctl == RCtl::SOLICITED_CONTROL {
            // The SW_ACC to our EFP carries the neighbour's list; other replies end there.
            if code == Some(SwIlsCode::SW_ACC) {
                if let Ok(efp) = Efp::parse(&frame.payload) {
                    self.heard(now, port, efp);
                }
            }
            return;
        }
        match (code, Efp::parse(&frame.payload)) {
            (Some(SwIlsCode::EFP), Ok(efp)) => {
                self.send_efp(port, Some(&h));
                self.heard(now, port, efp);
            }
            _ => {
                let rh = FrameHeaderRepr::reply_to(&h, RCtl::SOLICITED_CONTROL, self.xid());
                let rjt = SwRjt::not_supported().to_vec();
                self.send(port, FcFrame::new(Sof::F, rh, rjt.into(), Eof::T));
            }
        }
    }

    /// A neighbour's domain list.
    fn heard(&mut self, now: Instant, port: PortId, efp: Efp) {
        let own = self.config.domain;
        if efp
            .domains
            .first()
            .is_some_and(|r| r.domain == own && r.hops == 0)
        {
            tracing::warn!(
                %port,
                domain = own,
                neighbour = %efp.principal_name,
                "domain ID clash: the switch on this inter-switch port has this switch's domain"
            );
        }
        let domains: Vec<DomainRecord> = efp
            .domains
            .into_iter()
            .filter(|r| r.domain != own && DOMAINS.contains(&r.domain))
            .collect();
        if self.isl.heard.get(&port) != Some(&domains) {
            self.isl.heard.insert(port, domains);
            self.recompute_routes(now);
        }
    }

    /// An RSCN from `domain`'s controller: walk its name server again.
    fn rescan(&mut self, now: Instant, domain: u8) {
        let Some(&port) = self.routes.get(&domain) else {
            return;
        };
        match self.isl.walks.get_mut(&domain) {
            Some(w) => w.again = true,
            None => self.start_walk(now, domain, port),
        }
    }

    /// An answer from `domain`'s name server.
    fn walk_answer(&mut self, now: Instant, domain: u8, h: &FrameHeaderRepr, payload: &[u8]) {
        let Some(w) = self.isl.walks.get_mut(&domain).filter(|w| w.ox == h.ox_id) else {
            return; // late, or for a walk given up
        };
        let command = match w.features_of {
            None => CtCommand::GA_NXT,
            Some(_) => CtCommand::GFF_ID,
        };
        let accept = match NsResponse::parse(command, payload).map(|r| r.body) {
            Ok(NsResponseBody::Accept(a)) => Some(a),
            _ => None,
        };
        match (w.features_of, accept) {
            (None, Some(NsAccept::GaNxt(a)))
                if a.port_id.domain() == domain
                    && w.found.last().is_none_or(|l| l.port_id < a.port_id) =>
            {
                w.found.push(NsEntry::from_attributes(&a, w.port, now));
                w.request = NsRequest::ga_nxt(a.port_id);
            }
            (Some(i), Some(NsAccept::GffId(features))) => {
                if let Some(e) = w.found.get_mut(i) {
                    e.fc4_features = features;
                }
                w.features_of = Some(i + 1);
            }
            // The end of the table (or a reject): on to the FC-4 features.
            (None, _) => w.features_of = Some(0),
            // No features registered for that entry.
            (Some(i), _) => w.features_of = Some(i + 1),
        }
        // The next entry with FC-4 types registered has its features asked.
        if let Some(i) = w.features_of {
            let next = w
                .found
                .iter()
                .enumerate()
                .skip(i)
                .find(|(_, e)| !e.fc4_types.is_empty())
                .map(|(j, e)| (j, e.port_id));
            match next {
                Some((j, id)) => {
                    w.features_of = Some(j);
                    w.request = NsRequest::gff_id(id);
                }
                None => return self.finish_walk(now, domain),
            }
        }
        w.tries = 0;
        self.send_walk_step(now, domain);
    }

    /// The walk is done: the domain's entries become what it found.
    fn finish_walk(&mut self, now: Instant, domain: u8) {
        let Some(w) = self.isl.walks.remove(&domain) else {
            return;
        };
        let old: BTreeSet<FcId> = self
            .ns
            .iter()
            .filter(|e| e.port_id.domain() == domain)
            .map(|e| e.port_id)
            .collect();
        let mut changed = Vec::new();
        for id in &old {
            if !w.found.iter().any(|e| e.port_id == *id) {
                if let Some(e) = self.ns.remove(*id) {
                    changed.push((e.port_id, e.port_name));
                }
            }
        }
        let entries = w.found.len();
        for e in w.found {
            // What discovery looks at changed: registered N_Ports hear of it. A new symbolic
            // name is only copied.
            let (same, copy) = match self.ns.get(e.port_id) {
                Some(o) => (
                    (o.port_name, o.node_name, o.fc4_types, o.fc4_features)
                        == (e.port_name, e.node_name, e.fc4_types, e.fc4_features),
                    o.symbolic_port_name != e.symbolic_port_name,
                ),
                None => (false, true),
            };
            if !same {
                changed.push((e.port_id, e.port_name));
            }
            if !same || copy {
                self.ns.insert(e);
            }
        }
        self.events
            .push_back(Event::NameServerSynced { domain, entries });
        self.rscn(&changed);
        if w.again {
            self.start_walk(now, domain, w.port);
        }
    }
}
