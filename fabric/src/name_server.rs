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
//! - commands not listed above (GA_NXT, GID_PT, ...) are rejected "command not supported".

use std::collections::BTreeMap;
use std::time::Instant;

use fc_frames::ct::ns::{
    Fc4FeatureMap, Fc4Types, GidFt, NsAccept, NsExplanation, NsRequest, NsRequestBody, NsResponse,
    SymbolicName,
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
        let visible = |e: &&NsEntry| zoning.zoned(me, e.port_name);
        let not_registered = || {
            req.reject(
                CtReason::UNABLE_TO_PERFORM,
                NsExplanation::PORT_ID_NOT_REGISTERED,
            )
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
            NsRequestBody::GaNxt(_) | NsRequestBody::Unknown { .. } => {
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
    fn unknown_command_not_supported() {
        let (mut ns, z) = table();
        let r = ns.handle(A, &NsRequest::ga_nxt(A), &z);
        assert_eq!(
            reject(&r),
            Some((CtReason::COMMAND_NOT_SUPPORTED, NsExplanation::NONE))
        );
        // A requester without an entry gets "not registered".
        let r = ns.handle(FcId::from_parts(1, 9, 0), &NsRequest::gpn_id(A), &z);
        assert!(reject(&r).is_some());
    }
}
