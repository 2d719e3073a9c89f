//! The directory name server at FFFFFC (FC-GS-7 §5.2): the table of logged-in N_Ports and
//! the answers to its CT requests.
//!
//! Every N_Port that completes FLOGI or FDISC is registered implicitly with its port name,
//! node name, N_Port ID and class 3 (FC-GS-7: the fabric registers what it learns from
//! fabric login). The N_Port then adds its FC-4 TYPEs (RFT_ID), FC-4 features (RFF_ID), node
//! name (RNN_ID) and symbolic port name (RSPN_ID).
//!
//! Answers are zoned: an entry the requester shares no zone with is treated as absent, so
//! GID_FT leaves it out, and GPN_ID/GNN_ID/GFF_ID on its ID are rejected "port identifier not
//! registered", exactly as for an ID nobody holds.
//!
//! Policy choices (the FC-GS-7 text is not at hand; these follow what Linux initiators expect):
//! - a registration naming a port ID other than the requester's own is rejected
//!   "unable to perform" / "access denied" — an N_Port registers only itself;
//! - a GID_FT that finds nothing is rejected "unable to perform" / "FC-4 TYPEs not
//!   registered" ([`NsResponse::gid_ft`]); GID_FT holds at most as many IDs as the request's
//!   Maximum Size (and one frame) allows, and the residual size says how many words were left
//!   out;
//! - GFF_ID on a visible port with no features registered is rejected "FC-4 features not
//!   registered";
//! - GA_NXT gives the next visible entry after the given ID, and does not wrap around: past
//!   the last one it is rejected "no object in scope" (how another switch walks this table);
//! - commands not listed above (GID_PT, ...) are rejected "command not supported".
//!
//! Entries of other domains, learned from the switches on inter-switch ports (see
//! [`crate::switch`]), sit in the same table: an N_Port's query sees them like local ones,
//! zoned the same way. Another switch's query sees only this switch's own domain, unzoned.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Instant;

use fc_frames::ct::ns::{
    Fc4FeatureMap, Fc4Types, GaNxtAccept, GidFt, NsAccept, NsExplanation, NsRequest, NsRequestBody,
    NsResponse, PortType, SymbolicName,
};
use fc_frames::ct::{CtReason, MAX_SIZE_ONE_FRAME};
use fc_frames::{FcId, Wwn};

use crate::config::Zoning;
use crate::port::PortId;

/// Class of service bit for class 3 (FC-GS-7 class of service object: bit n is class n).
pub const CLASS_3: u32 = 1 << 3;

/// One logged-in N_Port as the name server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsEntry {
    /// The N_Port ID the fabric assigned.
    pub port_id: FcId,
    /// The switch port it is attached to.
    pub port: PortId,
    /// Port name (WWPN), from its fabric login.
    pub port_name: Wwn,
    /// Node name (WWNN), from its fabric login or RNN_ID.
    pub node_name: Wwn,
    /// Classes of service (bit n: class n).
    pub class_of_service: u32,
    /// FC-4 TYPEs registered with RFT_ID.
    pub fc4_types: Fc4Types,
    /// FC-4 features registered with RFF_ID.
    pub fc4_features: Fc4FeatureMap,
    /// Symbolic port name registered with RSPN_ID.
    pub symbolic_port_name: SymbolicName,
    /// Whether it asked for RSCNs with SCR (and has not cleared the registration).
    pub scr: bool,
    /// When it logged in.
    pub since: Instant,
}

impl NsEntry {
    /// The entry fabric login creates: names, ID, class 3, nothing else registered.
    pub fn new(
        port_id: FcId,
        port: PortId,
        port_name: Wwn,
        node_name: Wwn,
        now: Instant,
    ) -> NsEntry {
        NsEntry {
            port_id,
            port,
            port_name,
            node_name,
            class_of_service: CLASS_3,
            fc4_types: Fc4Types::new(),
            fc4_features: Fc4FeatureMap::new(),
            symbolic_port_name: SymbolicName::default(),
            scr: false,
            since: now,
        }
    }
}

impl NsEntry {
    /// The entry as a GA_NXT accept carries it.
    pub fn attributes(&self) -> GaNxtAccept {
        GaNxtAccept {
            port_type: PortType::N_PORT,
            port_id: self.port_id,
            port_name: self.port_name,
            symbolic_port_name: self.symbolic_port_name.clone(),
            node_name: self.node_name,
            class_of_service: self.class_of_service,
            fc4_types: self.fc4_types,
            ..GaNxtAccept::default()
        }
    }

    /// An entry of another domain from a GA_NXT accept, reached through `port`.
    pub fn from_attributes(a: &GaNxtAccept, port: PortId, now: Instant) -> NsEntry {
        NsEntry {
            class_of_service: a.class_of_service,
            fc4_types: a.fc4_types,
            symbolic_port_name: a.symbolic_port_name.clone(),
            ..NsEntry::new(a.port_id, port, a.port_name, a.node_name, now)
        }
    }
}

/// The name server table, ordered by N_Port ID.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameServer {
    entries: BTreeMap<FcId, NsEntry>,
}

impl NameServer {
    pub(crate) fn get(&self, id: FcId) -> Option<&NsEntry> {
        self.entries.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: FcId) -> Option<&mut NsEntry> {
        self.entries.get_mut(&id)
    }

    pub(crate) fn insert(&mut self, e: NsEntry) {
        self.entries.insert(e.port_id, e);
    }

    pub(crate) fn remove(&mut self, id: FcId) -> Option<NsEntry> {
        self.entries.remove(&id)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut NsEntry> {
        self.entries.values_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &NsEntry> {
        self.entries.values()
    }

    /// The IDs logged in on `port`, in order.
    pub(crate) fn ids_on(&self, port: PortId) -> Vec<FcId> {
        self.iter()
            .filter(|e| e.port == port)
            .map(|e| e.port_id)
            .collect()
    }

    /// The entry holding port name `w`.
    pub(crate) fn by_port_name(&self, w: Wwn) -> Option<&NsEntry> {
        self.iter().find(|e| e.port_name == w)
    }

    /// Answers a request from the logged-in N_Port `requester` (whose entry exists).
    pub(crate) fn handle(
        &mut self,
        requester: FcId,
        req: &NsRequest,
        zoning: &Zoning,
    ) -> NsResponse {
        let Some(me) = self.entries.get(&requester).map(|e| e.port_name) else {
            return req.reject(
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED,
            );
        };
        match &req.body {
            NsRequestBody::RftId { port_id, types } => {
                self.register(requester, *port_id, req, NsAccept::RftId, |e| {
                    e.fc4_types = *types
                })
            }
            NsRequestBody::RffId {
                port_id,
                features,
                fc4_type,
            } => self.register(requester, *port_id, req, NsAccept::RffId, |e| {
                e.fc4_features.set(*fc4_type, *features)
            }),
            NsRequestBody::RnnId { port_id, node_name } => {
                self.register(requester, *port_id, req, NsAccept::RnnId, |e| {
                    e.node_name = *node_name
                })
            }
            NsRequestBody::RspnId { port_id, name } => {
                self.register(requester, *port_id, req, NsAccept::RspnId, |e| {
                    e.symbolic_port_name = name.clone()
                })
            }
            _ => self.query(req, |e| zoning.zoned(me, e.port_name)),
        }
    }

    /// Answers a query from another switch's domain controller: the entries of this switch's
    /// own `domain` (not those it learned from other switches), unzoned — the asking switch
    /// zones what it passes on to its N_Ports. Registrations are refused.
    pub(crate) fn handle_for_switch(&self, domain: u8, req: &NsRequest) -> NsResponse {
        match &req.body {
            NsRequestBody::RftId { .. }
            | NsRequestBody::RffId { .. }
            | NsRequestBody::RnnId { .. }
            | NsRequestBody::RspnId { .. } => {
                req.reject(CtReason::UNABLE_TO_PERFORM, NsExplanation::ACCESS_DENIED)
            }
            _ => self.query(req, |e| e.port_id.domain() == domain),
        }
    }

    /// Answers a query, treating an entry `visible` refuses as absent.
    fn query(&self, req: &NsRequest, visible: impl Fn(&NsEntry) -> bool) -> NsResponse {
        let visible = |e: &&NsEntry| visible(e);
        let not_registered = || {
            req.reject(
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED,
            )
        };
        match &req.body {
            NsRequestBody::GaNxt(after) => {
                // FC-GS-7: the entry with the next higher port identifier. This name server
                // does not wrap around to the lowest: "no object in scope" ends a walk.
                match self
                    .entries
                    .range((Bound::Excluded(*after), Bound::Unbounded))
                    .map(|(_, e)| e)
                    .find(visible)
                {
                    Some(e) => req.accept(NsAccept::GaNxt(Box::new(e.attributes()))),
                    None => req.reject(
                        CtReason::UNABLE_TO_PERFORM,
                        NsExplanation::NO_OBJECT_IN_SCOPE,
                    ),
                }
            }
            NsRequestBody::GidFt(GidFt {
                domain_scope,
                area_scope,
                fc4_type,
            }) => {
                let found: Vec<FcId> = self
                    .iter()
                    .filter(visible)
                    .filter(|e| e.fc4_types.contains(*fc4_type))
                    .filter(|e| *domain_scope == 0 || e.port_id.domain() == *domain_scope)
                    .filter(|e| *area_scope == 0 || e.port_id.area() == *area_scope)
                    .map(|e| e.port_id)
                    .collect();
                // Each entry is one word; the accept holds at most Maximum Size words (zero:
                // no limit given) and one frame.
                let words = match req.max_size {
                    0 => MAX_SIZE_ONE_FRAME,
                    m => m.min(MAX_SIZE_ONE_FRAME),
                };
                let cap = usize::from(words);
                let left_out = found.len().saturating_sub(cap);
                let mut shown = found;
                shown.truncate(cap);
                NsResponse {
                    in_id: req.in_id,
                    residual_size: u16::try_from(left_out).unwrap_or(u16::MAX),
                    ..NsResponse::gid_ft(shown)
                }
            }
            NsRequestBody::GpnId(id) => match self.get(*id).filter(|e| visible(e)) {
                Some(e) => req.accept(NsAccept::GpnId(e.port_name)),
                None => not_registered(),
            },
            NsRequestBody::GnnId(id) => match self.get(*id).filter(|e| visible(e)) {
                Some(e) => req.accept(NsAccept::GnnId(e.node_name)),
                None => not_registered(),
            },
            NsRequestBody::GffId(id) => match self.get(*id).filter(|e| visible(e)) {
                Some(e) if e.fc4_features.iter().next().is_some() => {
                    req.accept(NsAccept::GffId(e.fc4_features))
                }
                Some(_) => req.reject(
                    CtReason::UNABLE_TO_PERFORM,
                    NsExplanation::FC4_FEATURES_NOT_REGISTERED,
                ),
                None => not_registered(),
            },
            NsRequestBody::GidPn(w) => match self.by_port_name(*w).filter(|e| visible(e)) {
                Some(e) => req.accept(NsAccept::GidPn(e.port_id)),
                None => req.reject(
                    CtReason::UNABLE_TO_PERFORM,
                    NsExplanation::PORT_NAME_NOT_REGISTERED,
                ),
            },
            NsRequestBody::RftId { .. }
            | NsRequestBody::RffId { .. }
            | NsRequestBody::RnnId { .. }
            | NsRequestBody::RspnId { .. }
            | NsRequestBody::Unknown { .. } => {
                req.reject(CtReason::COMMAND_NOT_SUPPORTED, NsExplanation::NONE)
            }
        }
    }

    /// A registration: only for the requester's own port ID.
    fn register(
        &mut self,
        requester: FcId,
        port_id: FcId,
        req: &NsRequest,
        accept: NsAccept,
        apply: impl FnOnce(&mut NsEntry),
    ) -> NsResponse {
        if port_id != requester {
            return req.reject(CtReason::UNABLE_TO_PERFORM, NsExplanation::ACCESS_DENIED);
        }
        match self.entries.get_mut(&port_id) {
            Some(e) => {
                apply(e);
                req.accept(accept)
            }
            None => req.reject(
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use fc_frames::ct::ns::{Fc4Features, NsResponseBody, FC4_TYPE_FCP};

    use super::*;
    use crate::config::{Zone, ZoneSet};

    const A: FcId = FcId::from_parts(1, 1, 0);
    const B: FcId = FcId::from_parts(1, 2, 0);
    const C: FcId = FcId::from_parts(1, 3, 0);
    const WA: Wwn = Wwn::from_u64(0x2100_0000_0000_000a);
    const WB: Wwn = Wwn::from_u64(0x2100_0000_0000_000b);
    const WC: Wwn = Wwn::from_u64(0x2100_0000_0000_000c);

    fn table() -> (NameServer, Zoning) {
        let now = Instant::now();
        let mut ns = NameServer::default();
        for (id, w, p) in [(A, WA, 1), (B, WB, 2), (C, WC, 3)] {
            let mut e = NsEntry::new(id, PortId(p), w, w, now);
            e.fc4_types.insert(FC4_TYPE_FCP);
            ns.insert(e);
        }
        let zoning = Zoning {
            active: Some(ZoneSet {
                name: "cfg".into(),
                zones: vec![Zone::new("ab", [WA, WB])],
            }),
            ..Zoning::default()
        };
        (ns, zoning)
    }

    fn reject(r: &NsResponse) -> Option<(CtReason, NsExplanation)> {
        match &r.body {
            NsResponseBody::Reject(j) => Some((j.reason, j.explanation)),
            NsResponseBody::Accept(_) => None,
        }
    }

    #[test]
    fn gid_ft_is_zoned() {
        let (mut ns, z) = table();
        let r = ns.handle(A, &NsRequest::gid_ft(FC4_TYPE_FCP), &z);
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GidFt(vec![A, B])));
        let r = ns.handle(C, &NsRequest::gid_ft(FC4_TYPE_FCP), &z);
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GidFt(vec![C])));
        let r = ns.handle(A, &NsRequest::gid_ft(0x28), &z);
        assert_eq!(
            reject(&r),
            Some((
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::FC4_TYPES_NOT_REGISTERED
            ))
        );
    }

    #[test]
    fn gid_ft_respects_max_size() {
        let (mut ns, _) = table();
        let mut req = NsRequest::gid_ft(FC4_TYPE_FCP);
        req.max_size = 2;
        let r = ns.handle(A, &req, &Zoning::default());
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GidFt(vec![A, B])));
        assert_eq!(r.residual_size, 1);
    }

    #[test]
    fn queries_hide_unzoned_ports() {
        let (mut ns, z) = table();
        let r = ns.handle(A, &NsRequest::gpn_id(B), &z);
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GpnId(WB)));
        let r = ns.handle(A, &NsRequest::gpn_id(C), &z);
        assert_eq!(
            reject(&r),
            Some((
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED
            ))
        );
        let r = ns.handle(A, &NsRequest::gnn_id(C), &z);
        assert!(reject(&r).is_some());
        let r = ns.handle(A, &NsRequest::gid_pn(WC), &z);
        assert_eq!(
            reject(&r),
            Some((
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_NAME_NOT_REGISTERED
            ))
        );
        let r = ns.handle(A, &NsRequest::gid_pn(WB), &z);
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GidPn(B)));
    }

    #[test]
    fn registrations_only_for_own_id() {
        let (mut ns, z) = table();
        let r = ns.handle(
            A,
            &NsRequest::rff_id(A, Fc4Features::INITIATOR, FC4_TYPE_FCP),
            &z,
        );
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::RffId));
        let r = ns.handle(B, &NsRequest::gff_id(A), &z);
        let want = Fc4FeatureMap::new().with(FC4_TYPE_FCP, Fc4Features::INITIATOR);
        assert_eq!(r.body, NsResponseBody::Accept(NsAccept::GffId(want)));
        let r = ns.handle(A, &NsRequest::gff_id(B), &z);
        assert_eq!(
            reject(&r),
            Some((
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::FC4_FEATURES_NOT_REGISTERED
            ))
        );
        let r = ns.handle(A, &NsRequest::rnn_id(B, WA), &z);
        assert_eq!(
            reject(&r),
            Some((CtReason::UNABLE_TO_PERFORM, NsExplanation::ACCESS_DENIED))
        );
        assert_eq!(ns.get(B).map(|e| e.node_name), Some(WB));
    }

    #[test]
    fn ga_nxt_walks_visible_entries_without_wrapping() {
        let (mut ns, z) = table();
        // A is zoned with B only (see table()).
        let next =
            |ns: &mut NameServer, after| match ns.handle(A, &NsRequest::ga_nxt(after), &z).body {
                NsResponseBody::Accept(NsAccept::GaNxt(a)) => Some(a.port_id),
                _ => None,
            };
        assert_eq!(next(&mut ns, FcId::from_parts(1, 0, 0)), Some(A));
        assert_eq!(next(&mut ns, A), Some(B));
        assert_eq!(next(&mut ns, B), None);
        // Another switch sees every entry of this domain, and none of another.
        let all = |ns: &NameServer, after| match ns
            .handle_for_switch(1, &NsRequest::ga_nxt(after))
            .body
        {
            NsResponseBody::Accept(NsAccept::GaNxt(a)) => Some(*a),
            _ => None,
        };
        let b = all(&ns, A).expect("B");
        assert_eq!((b.port_id, b.port_name), (B, WB));
        assert_eq!(all(&ns, B).map(|a| a.port_id), Some(C));
        assert_eq!(all(&ns, C), None);
        let mut remote = NsEntry::new(FcId::from_parts(2, 1, 0), PortId(9), WA, WA, Instant::now());
        remote.port_name = Wwn::from_u64(0x2100_0000_0000_00ff);
        ns.insert(remote);
        assert_eq!(all(&ns, C), None);
        let r = ns.handle_for_switch(1, &NsRequest::rnn_id(A, WB));
        assert_eq!(
            reject(&r),
            Some((CtReason::UNABLE_TO_PERFORM, NsExplanation::ACCESS_DENIED))
        );
    }

    #[test]
    fn unknown_command_not_supported() {
        let (mut ns, z) = table();
        let unknown = NsRequest::new(NsRequestBody::Unknown {
            command: fc_frames::ct::CtCommand(0x0173),
            payload: vec![0; 4],
        });
        let r = ns.handle(A, &unknown, &z);
        assert_eq!(
            reject(&r),
            Some((CtReason::COMMAND_NOT_SUPPORTED, NsExplanation::NONE))
        );
        // A requester without an entry gets "not registered".
        let r = ns.handle(FcId::from_parts(1, 9, 0), &NsRequest::gpn_id(A), &z);
        assert!(reject(&r).is_some());
    }
}
