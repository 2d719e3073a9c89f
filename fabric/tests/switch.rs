//! The switch driven with frames built by fc-frames, as hosts and disk arrays send them.

use std::time::Instant;

use bytes::Bytes;
use fabric::{Config, DefaultZone, Event, LogoutCause, PortId, Switch, Zone, ZoneSet, Zoning};
use fc_frames::bls::BaAccRepr;
use fc_frames::ct::ns::{
    Fc4Features, Fc4Types, NsAccept, NsExplanation, NsRequest, NsResponse, NsResponseBody,
    SymbolicName, FC4_TYPE_FCP,
};
use fc_frames::ct::{CtCommand, CtPreambleRepr, CtReason, GsType};
use fc_frames::els::{
    ElsCode, ElsReply, ElsRequest, LoginRepr, Logo, LsRjtExplanation, LsRjtReason, Rscn,
    RscnEventQualifier, RscnPage, Scr, ScrFunction,
};
use fc_frames::{Eof, FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};
use proptest::prelude::*;

const DOMAIN: u8 = 0x01;
const SWITCH: Wwn = Wwn::from_u64(0x1000_0005_1e00_0001);
const WA: Wwn = Wwn::from_u64(0x2100_0024_ff4a_000a);
const WB: Wwn = Wwn::from_u64(0x5006_0160_3ea0_000b);
const WC: Wwn = Wwn::from_u64(0x2100_0024_ff4a_000c);
const WD: Wwn = Wwn::from_u64(0x2100_0024_ff4a_000d);
const PA: PortId = PortId(1);
const PB: PortId = PortId(2);
const PC: PortId = PortId(3);
const PD: PortId = PortId(4);
const ISL: PortId = PortId(10);
const A: FcId = FcId::from_parts(DOMAIN, 1, 0);
const B: FcId = FcId::from_parts(DOMAIN, 2, 0);
const C: FcId = FcId::from_parts(DOMAIN, 3, 0);
const D: FcId = FcId::from_parts(DOMAIN, 4, 0);
const REMOTE: FcId = FcId::from_parts(0x02, 0x05, 0x00);

/// Two zones, three hosts: A and C both see the disk B, not each other; D is in no zone.
fn config() -> Config {
    let mut c = Config::new(DOMAIN, SWITCH, [PA, PB, PC, PD]);
    c.zoning = Zoning {
        active: Some(ZoneSet {
            name: "cfg".into(),
            zones: vec![Zone::new("a_b", [WA, WB]), Zone::new("c_b", [WC, WB])],
        }),
        default_zone: DefaultZone::AllAccess,
    };
    c
}

struct Rig {
    sw: Switch,
    now: Instant,
    ox: u16,
}

impl Rig {
    fn new() -> Rig {
        let mut sw = Switch::new(config()).expect("valid config");
        let now = Instant::now();
        for p in [PA, PB, PC, PD, ISL] {
            sw.port_up(now, p);
        }
        let mut r = Rig { sw, now, ox: 0x100 };
        // The EFP the inter-switch port starts with.
        r.drain();
        r
    }

    fn drain(&mut self) -> Vec<(PortId, FcFrame)> {
        std::iter::from_fn(|| self.sw.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.sw.poll_event()).collect()
    }

    fn send(&mut self, port: PortId, frame: FcFrame) -> Vec<(PortId, FcFrame)> {
        self.sw.handle_frame(self.now, port, frame);
        self.drain()
    }

    fn request(&mut self, r_ctl: RCtl, t: FcType, s: FcId, d: FcId, payload: Vec<u8>) -> FcFrame {
        self.ox += 1;
        FcFrame::single(FrameHeaderRepr::request(r_ctl, t, d, s, self.ox), payload)
    }

    fn els(&mut self, port: PortId, s: FcId, d: FcId, req: &ElsRequest) -> Vec<(PortId, FcFrame)> {
        let f = self.request(RCtl::ELS_REQUEST, FcType::ELS, s, d, req.to_vec());
        self.send(port, f)
    }

    /// Sends an ELS request and returns the one reply, checked to go back on `port`.
    fn els_reply(
        &mut self,
        port: PortId,
        s: FcId,
        d: FcId,
        req: &ElsRequest,
    ) -> (FcFrame, ElsReply) {
        let out = self.els(port, s, d, req);
        let (p, f) = out
            .into_iter()
            .find(|(_, f)| f.header.r_ctl == RCtl::ELS_REPLY)
            .expect("an ELS reply");
        assert_eq!(p, port);
        assert_eq!(f.header.s_id, d);
        let r = ElsReply::parse(req.code(), &f.payload).expect("reply parses");
        (f, r)
    }

    fn login(&mut self, port: PortId, code: ElsCode, wwpn: Wwn) -> ElsReply {
        let l = LoginRepr::request(code, wwpn, wwpn, 2048);
        let req = if code == ElsCode::FLOGI {
            ElsRequest::Flogi(l)
        } else {
            ElsRequest::Fdisc(l)
        };
        self.els_reply(port, FcId::UNIDENTIFIED, FcId::F_PORT_CONTROLLER, &req)
            .1
    }

    fn flogi(&mut self, port: PortId, wwpn: Wwn) -> FcId {
        let out = self.els(
            port,
            FcId::UNIDENTIFIED,
            FcId::F_PORT_CONTROLLER,
            &ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048)),
        );
        let acc = out
            .iter()
            .find(|(p, f)| *p == port && f.header.r_ctl == RCtl::ELS_REPLY)
            .expect("LS_ACC");
        acc.1.header.d_id
    }

    fn scr(&mut self, port: PortId, id: FcId) {
        let req = ElsRequest::Scr(Scr {
            function: ScrFunction::FULL,
        });
        let (_, r) = self.els_reply(port, id, FcId::FABRIC_CONTROLLER, &req);
        assert_eq!(r, ElsReply::Acc);
    }

    fn ns(&mut self, port: PortId, s: FcId, req: &NsRequest) -> NsResponse {
        let f = self.request(
            RCtl::UNSOLICITED_CONTROL,
            FcType::CT,
            s,
            FcId::DIRECTORY_SERVER,
            req.to_vec(),
        );
        let out = self.send(port, f);
        assert_eq!(out.len(), 1, "one CT reply");
        let (p, f) = &out[0];
        assert_eq!(*p, port);
        assert_eq!(f.header.r_ctl, RCtl::SOLICITED_CONTROL);
        assert_eq!((f.header.s_id, f.header.d_id), (FcId::DIRECTORY_SERVER, s));
        NsResponse::parse(req.command(), &f.payload).expect("CT reply parses")
    }

    fn fcp(&mut self, port: PortId, s: FcId, d: FcId) -> Vec<(PortId, FcFrame)> {
        let f = self.request(RCtl::UNSOLICITED_COMMAND, FcType::FCP, s, d, vec![0; 32]);
        self.send(port, f)
    }

    fn three_hosts() -> Rig {
        let mut r = Rig::new();
        assert_eq!(r.flogi(PA, WA), A);
        assert_eq!(r.flogi(PB, WB), B);
        assert_eq!(r.flogi(PC, WC), C);
        r.events();
        r
    }
}

fn rjt(r: &ElsReply) -> (LsRjtReason, LsRjtExplanation) {
    match r {
        ElsReply::Rjt(j) => (j.reason, j.explanation),
        other => panic!("expected LS_RJT, got {other}"),
    }
}

fn ns_rjt(r: &NsResponse) -> (CtReason, NsExplanation) {
    match &r.body {
        NsResponseBody::Reject(j) => (j.reason, j.explanation),
        NsResponseBody::Accept(a) => panic!("expected FS_RJT, got {a}"),
    }
}

fn rscn_targets(out: &[(PortId, FcFrame)]) -> Vec<(PortId, FcId, Vec<RscnPage>)> {
    out.iter()
        .filter(|(_, f)| f.header.r_ctl == RCtl::ELS_REQUEST && f.payload.first() == Some(&0x61))
        .map(|(p, f)| {
            assert_eq!(f.header.s_id, FcId::FABRIC_CONTROLLER);
            let r = Rscn::parse(&f.payload).expect("RSCN parses");
            (*p, f.header.d_id, r.pages)
        })
        .collect()
}

#[test]
fn flogi_is_accepted_with_an_id_in_the_domain() {
    let mut r = Rig::new();
    let (f, reply) = r.els_reply(
        PA,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WA, WD, 2048)),
    );
    assert_eq!(f.header.d_id, A);
    assert_eq!(f.header.ox_id, r.ox);
    let ElsReply::Login(acc) = reply else {
        panic!("LS_ACC with service parameters");
    };
    assert!(acc.is_from_f_port());
    assert_eq!(acc.port_name, r.sw.config().f_port_name(PA));
    assert_eq!(acc.node_name, SWITCH);
    assert_eq!(acc.common.r_a_tov(), 10_000);
    assert_eq!(acc.common.e_d_tov, 2_000);
    assert_eq!(acc.common.rx_data_field_size, 2048);
    assert_eq!(
        r.events(),
        vec![Event::Login {
            port: PA,
            port_id: A,
            port_name: WA,
            node_name: WD
        }]
    );
    let e = r.sw.name_server_entry(A).expect("implicit registration");
    assert_eq!((e.port_name, e.node_name, e.port), (WA, WD, PA));
    assert_eq!(e.class_of_service, 1 << 3);
}

#[test]
fn fdisc_assigns_the_next_port_byte() {
    let mut r = Rig::new();
    // FDISC before FLOGI on the port: login required.
    let reply = r.login(PA, ElsCode::FDISC, WC);
    assert_eq!(
        rjt(&reply),
        (
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::N_PORT_LOGIN_REQUIRED
        )
    );
    assert_eq!(r.flogi(PA, WA), A);
    let out = r.els(
        PA,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Fdisc(LoginRepr::request(ElsCode::FDISC, WC, WA, 2048)),
    );
    assert_eq!(out[0].1.header.d_id, FcId::from_parts(DOMAIN, 1, 1));
    let out = r.els(
        PA,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Fdisc(LoginRepr::request(ElsCode::FDISC, WD, WA, 2048)),
    );
    assert_eq!(out[0].1.header.d_id, FcId::from_parts(DOMAIN, 1, 2));
    // A port name already logged in is refused.
    let reply = r.login(PA, ElsCode::FDISC, WD);
    assert_eq!(
        rjt(&reply),
        (
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::INVALID_PORT_NAME
        )
    );
    assert_eq!(r.sw.name_server().count(), 3);
    // LOGO of the FLOGI's ID takes the NPIV IDs with it.
    let logo = ElsRequest::Logo(Logo {
        n_port_id: A,
        port_name: WA,
    });
    let (_, reply) = r.els_reply(PA, A, FcId::F_PORT_CONTROLLER, &logo);
    assert_eq!(reply, ElsReply::Acc);
    assert_eq!(r.sw.name_server().count(), 0);
}

#[test]
fn flogi_with_bad_receive_size_is_rejected() {
    let mut r = Rig::new();
    let reply = r.els_reply(
        PA,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WA, WA, 128)),
    );
    assert_eq!(
        rjt(&reply.1),
        (
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::RECEIVE_DATA_FIELD_SIZE
        )
    );
    assert_eq!(r.sw.name_server().count(), 0);
    assert!(r.events().is_empty());
}

#[test]
fn frames_before_flogi_are_refused() {
    let mut r = Rig::three_hosts();
    // PLOGI from a port that has not logged in (port D), to the disk.
    // The reject comes from the F_Port controller, never in B's name.
    let plogi = ElsRequest::Plogi(LoginRepr::request(ElsCode::PLOGI, WD, WD, 2048));
    let out = r.els(PD, FcId::UNIDENTIFIED, B, &plogi);
    assert_eq!(out.len(), 1);
    let (p, f) = &out[0];
    assert_eq!(*p, PD);
    assert_eq!(
        (f.header.s_id, f.header.d_id),
        (FcId::F_PORT_CONTROLLER, FcId::UNIDENTIFIED)
    );
    let reply = ElsReply::parse(ElsCode::PLOGI, &f.payload).expect("reply");
    assert_eq!(
        rjt(&reply),
        (
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::N_PORT_LOGIN_REQUIRED
        )
    );
    // Spoofing A's ID from port D is the same as not being logged in.
    let (_, reply) = r.els_reply(
        PD,
        A,
        FcId::FABRIC_CONTROLLER,
        &ElsRequest::Scr(Scr {
            function: ScrFunction::FULL,
        }),
    );
    assert_eq!(rjt(&reply).1, LsRjtExplanation::N_PORT_LOGIN_REQUIRED);
    // Name server request before login: FS_RJT.
    let resp = r.ns(PD, D, &NsRequest::gid_ft(FC4_TYPE_FCP));
    assert_eq!(
        ns_rjt(&resp),
        (
            CtReason::UNABLE_TO_PERFORM,
            NsExplanation::PORT_ID_NOT_REGISTERED
        )
    );
    // FCP before login: discarded and counted.
    assert!(r.fcp(PD, D, B).is_empty());
    assert_eq!(r.sw.counters(PD).map(|c| c.discards.not_logged_in), Some(1));
    // LOGO before login.
    let logo = ElsRequest::Logo(Logo {
        n_port_id: D,
        port_name: WD,
    });
    let (_, reply) = r.els_reply(PD, D, FcId::F_PORT_CONTROLLER, &logo);
    assert_eq!(rjt(&reply).1, LsRjtExplanation::N_PORT_LOGIN_REQUIRED);
}

#[test]
fn rscn_goes_to_registered_zoned_ports_only() {
    let mut r = Rig::new();
    assert_eq!(r.flogi(PA, WA), A);
    r.scr(PA, A);
    assert_eq!(r.flogi(PC, WC), C);
    r.scr(PC, C);
    // C logging in told nobody: A is not zoned with C.
    // B logs in: A and C, both zoned with B and registered, hear of it.
    let out = r.els(
        PB,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WB, WB, 2048)),
    );
    assert_eq!(
        rscn_targets(&out),
        vec![
            (PA, A, vec![RscnPage::port(B)]),
            (PC, C, vec![RscnPage::port(B)])
        ]
    );
    // D, zoned with nobody, logs in: no RSCN.
    let out = r.els(
        PD,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        &ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WD, WD, 2048)),
    );
    assert!(rscn_targets(&out).is_empty());
    // The LS_ACC to an RSCN is taken silently.
    let acc = FrameHeaderRepr::reply_to(
        &FrameHeaderRepr::request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            A,
            FcId::FABRIC_CONTROLLER,
            7,
        ),
        RCtl::ELS_REPLY,
        0x55,
    );
    let mut acc = acc;
    (acc.s_id, acc.d_id) = (A, FcId::FABRIC_CONTROLLER);
    assert!(r
        .send(PA, FcFrame::single(acc, ElsReply::Acc.to_vec()))
        .is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.total()), Some(0));
    // B registers too; A logs out: only B hears (C is not zoned with A).
    r.scr(PB, B);
    let logo = ElsRequest::Logo(Logo {
        n_port_id: A,
        port_name: WA,
    });
    let out = r.els(PA, A, FcId::F_PORT_CONTROLLER, &logo);
    assert_eq!(rscn_targets(&out), vec![(PB, B, vec![RscnPage::port(A)])]);
    // B's port goes down: C hears.
    r.events();
    r.sw.port_down(r.now, PB);
    let out = r.drain();
    assert_eq!(rscn_targets(&out), vec![(PC, C, vec![RscnPage::port(B)])]);
    assert_eq!(
        r.events(),
        vec![Event::Logout {
            port: PB,
            port_id: B,
            port_name: WB,
            cause: LogoutCause::PortDown
        }]
    );
    assert!(r.sw.name_server_entry(B).is_none());
}

#[test]
fn fc4_registrations_are_announced_with_rscn() {
    let mut r = Rig::three_hosts();
    r.scr(PA, A);
    r.scr(PC, C);
    // B registers its FC-4 TYPE: A and C, zoned with B and registered, hear of it, so that
    // a host that looked before B registered finds B now.
    let req = NsRequest::rft_id(B, Fc4Types::default().with(FC4_TYPE_FCP));
    let f = r.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::CT,
        B,
        FcId::DIRECTORY_SERVER,
        req.to_vec(),
    );
    let out = r.send(PB, f);
    assert_eq!(out[0].0, PB, "the CT accept goes first");
    let page = RscnPage {
        qualifier: RscnEventQualifier::NAME_SERVER_OBJECT,
        ..RscnPage::port(B)
    };
    assert_eq!(
        rscn_targets(&out),
        vec![(PA, A, vec![page]), (PC, C, vec![page])]
    );
    let req = NsRequest::rff_id(B, Fc4Features::TARGET, FC4_TYPE_FCP);
    let f = r.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::CT,
        B,
        FcId::DIRECTORY_SERVER,
        req.to_vec(),
    );
    assert_eq!(rscn_targets(&r.send(PB, f)).len(), 2);
    // Queries and rejected registrations change nothing and announce nothing.
    let f = r.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::CT,
        A,
        FcId::DIRECTORY_SERVER,
        NsRequest::gid_ft(FC4_TYPE_FCP).to_vec(),
    );
    assert!(rscn_targets(&r.send(PA, f)).is_empty());
    let other = NsRequest::rft_id(C, Fc4Types::default().with(FC4_TYPE_FCP));
    let f = r.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::CT,
        A,
        FcId::DIRECTORY_SERVER,
        other.to_vec(),
    );
    let out = r.send(PA, f);
    assert_eq!(out.len(), 1, "only the FS_RJT: {out:?}");
}

#[test]
fn name_server_registrations_and_zoned_queries() {
    let mut r = Rig::three_hosts();
    let fcp = Fc4Types::new().with(FC4_TYPE_FCP);
    for (port, id, feat) in [
        (PA, A, Fc4Features::INITIATOR),
        (PB, B, Fc4Features::TARGET),
        (PC, C, Fc4Features::INITIATOR),
    ] {
        let resp = r.ns(port, id, &NsRequest::rft_id(id, fcp));
        assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::RftId));
        let resp = r.ns(port, id, &NsRequest::rff_id(id, feat, FC4_TYPE_FCP));
        assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::RffId));
    }
    let name = SymbolicName::new(&b"fcsan host a"[..]).expect("short name");
    let resp = r.ns(PA, A, &NsRequest::rspn_id(A, name.clone()));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::RspnId));
    let resp = r.ns(PA, A, &NsRequest::rnn_id(A, WD));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::RnnId));
    // Registering for someone else's ID is refused.
    let resp = r.ns(PA, A, &NsRequest::rspn_id(B, name.clone()));
    assert_eq!(
        ns_rjt(&resp),
        (CtReason::UNABLE_TO_PERFORM, NsExplanation::ACCESS_DENIED)
    );

    // GID_FT: each host sees itself and the disk, never the other host.
    let resp = r.ns(PA, A, &NsRequest::gid_ft(FC4_TYPE_FCP));
    assert_eq!(
        resp.body,
        NsResponseBody::Accept(NsAccept::GidFt(vec![A, B]))
    );
    let resp = r.ns(PC, C, &NsRequest::gid_ft(FC4_TYPE_FCP));
    assert_eq!(
        resp.body,
        NsResponseBody::Accept(NsAccept::GidFt(vec![B, C]))
    );
    let resp = r.ns(PB, B, &NsRequest::gid_ft(FC4_TYPE_FCP));
    assert_eq!(
        resp.body,
        NsResponseBody::Accept(NsAccept::GidFt(vec![A, B, C]))
    );
    let resp = r.ns(PA, A, &NsRequest::gid_ft(0x28));
    assert_eq!(
        ns_rjt(&resp),
        (
            CtReason::UNABLE_TO_PERFORM,
            NsExplanation::FC4_TYPES_NOT_REGISTERED
        )
    );

    let resp = r.ns(PA, A, &NsRequest::gpn_id(B));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::GpnId(WB)));
    let resp = r.ns(PC, C, &NsRequest::gnn_id(A));
    assert_eq!(
        ns_rjt(&resp),
        (
            CtReason::UNABLE_TO_PERFORM,
            NsExplanation::PORT_ID_NOT_REGISTERED
        )
    );
    let resp = r.ns(PA, A, &NsRequest::gpn_id(C));
    assert_eq!(ns_rjt(&resp).1, NsExplanation::PORT_ID_NOT_REGISTERED);
    let resp = r.ns(PB, B, &NsRequest::gnn_id(A));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::GnnId(WD)));
    let resp = r.ns(PA, A, &NsRequest::gff_id(B));
    let NsResponseBody::Accept(NsAccept::GffId(m)) = resp.body else {
        panic!("GFF_ID accept");
    };
    assert_eq!(m.get(FC4_TYPE_FCP), Fc4Features::TARGET);
    let resp = r.ns(PA, A, &NsRequest::gid_pn(WB));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::GidPn(B)));
    let resp = r.ns(PA, A, &NsRequest::gid_pn(WC));
    assert_eq!(ns_rjt(&resp).1, NsExplanation::PORT_NAME_NOT_REGISTERED);
    // GA_NXT: the next entry A is zoned with (B), then the end of the table.
    let resp = r.ns(PA, A, &NsRequest::ga_nxt(A));
    let NsResponseBody::Accept(NsAccept::GaNxt(next)) = resp.body else {
        panic!("GA_NXT accept");
    };
    assert_eq!((next.port_id, next.port_name), (B, WB));
    let resp = r.ns(PA, A, &NsRequest::ga_nxt(B));
    assert_eq!(
        ns_rjt(&resp),
        (
            CtReason::UNABLE_TO_PERFORM,
            NsExplanation::NO_OBJECT_IN_SCOPE
        )
    );

    // The table, for printing.
    let a = r.sw.name_server().next().expect("A first");
    assert_eq!(a.port_id, A);
    assert_eq!(a.symbolic_port_name, name);
    assert!(a.fc4_types.contains(FC4_TYPE_FCP));
    assert_eq!(a.fc4_features.get(FC4_TYPE_FCP), Fc4Features::INITIATOR);
}

#[test]
fn hard_zoning_drops_and_counts() {
    let mut r = Rig::three_hosts();
    let out = r.fcp(PA, A, B);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, PB);
    assert_eq!(out[0].1.header.s_id, A);
    assert!(r.fcp(PA, A, C).is_empty());
    assert!(r.fcp(PC, C, A).is_empty());
    let ca = r.sw.counters(PA).copied().expect("counters");
    assert_eq!(ca.discards.unzoned, 1);
    assert_eq!(ca.rx_frames, 3, "FLOGI and two FCP_CMNDs");
    assert_eq!(r.sw.counters(PC).map(|c| c.discards.unzoned), Some(1));
    assert_eq!(
        r.events(),
        vec![
            Event::ZoneDrop {
                port: PA,
                s_id: A,
                d_id: C
            },
            Event::ZoneDrop {
                port: PC,
                s_id: C,
                d_id: A
            }
        ]
    );
    // B received one frame: the FLOGI LS_ACC and one FCP_CMND went out on its port.
    let cb = r.sw.counters(PB).copied().expect("counters");
    assert_eq!(cb.tx_frames, 2);
    // D (in no zone) still reaches the well-known servers once logged in.
    assert_eq!(r.flogi(PD, WD), D);
    let resp = r.ns(PD, D, &NsRequest::gpn_id(D));
    assert_eq!(resp.body, NsResponseBody::Accept(NsAccept::GpnId(WD)));
}

#[test]
fn routes_between_domains() {
    let mut r = Rig::three_hosts();
    // No route yet.
    assert!(r.fcp(PA, A, REMOTE).is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.unroutable), Some(1));
    r.sw.set_route(r.now, 0x02, ISL);
    r.drain();
    assert_eq!(r.sw.route(0x02), Some(ISL));
    let out = r.fcp(PA, A, REMOTE);
    assert_eq!(out.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![ISL]);
    // And back: a frame from the other domain to B is delivered.
    let out = r.fcp(ISL, REMOTE, B);
    assert_eq!(out.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![PB]);
    // From the ISL to an ID nobody holds, to a well-known address, or back out the ISL.
    assert!(r
        .fcp(ISL, REMOTE, FcId::from_parts(DOMAIN, 9, 0))
        .is_empty());
    assert!(r.fcp(ISL, REMOTE, FcId::DIRECTORY_SERVER).is_empty());
    assert!(r.fcp(ISL, REMOTE, FcId::from_parts(2, 1, 0)).is_empty());
    assert_eq!(r.sw.counters(ISL).map(|c| c.discards.unroutable), Some(3));
    // A source of this domain cannot come from another switch.
    assert!(r.fcp(ISL, C, A).is_empty());
    assert!(r.fcp(ISL, FcId::FABRIC_CONTROLLER, A).is_empty());
    assert_eq!(
        r.sw.counters(ISL).map(|c| c.discards.not_logged_in),
        Some(2)
    );
    // Route to a port that is down, then no route at all.
    r.sw.port_down(r.now, ISL);
    assert!(r.fcp(PA, A, REMOTE).is_empty());
    r.sw.port_up(r.now, ISL);
    r.drain();
    r.sw.remove_route(r.now, 0x02);
    r.drain();
    assert!(r.fcp(PA, A, REMOTE).is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.unroutable), Some(3));
    // An unknown local ID.
    assert!(r.fcp(PA, A, FcId::from_parts(DOMAIN, 7, 0)).is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.unroutable), Some(4));
}

#[test]
fn a_port_in_no_zone_is_cut_off_from_other_domains() {
    let mut r = Rig::three_hosts();
    assert_eq!(r.flogi(PD, WD), D);
    r.sw.set_route(r.now, 0x02, ISL);
    r.drain();
    assert!(r.fcp(PD, D, REMOTE).is_empty());
    assert!(r.fcp(ISL, REMOTE, D).is_empty());
    assert_eq!(r.sw.counters(PD).map(|c| c.discards.unzoned), Some(1));
    assert_eq!(r.sw.counters(ISL).map(|c| c.discards.unzoned), Some(1));
}

#[test]
fn malformed_els_and_ct_get_rejects() {
    let mut r = Rig::three_hosts();
    // A FLOGI cut short.
    let mut flogi = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WD, WD, 2048)).to_vec();
    flogi.truncate(40);
    let f = r.request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::UNIDENTIFIED,
        FcId::F_PORT_CONTROLLER,
        flogi,
    );
    let out = r.send(PD, f);
    let reply = ElsReply::parse(ElsCode::FLOGI, &out[0].1.payload).expect("reply");
    assert_eq!(
        rjt(&reply),
        (
            LsRjtReason::LOGICAL_ERROR,
            LsRjtExplanation::INVALID_PAYLOAD_LENGTH
        )
    );
    // An SCR cut short, and an ELS the fabric controller does not serve.
    let f = r.request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        A,
        FcId::FABRIC_CONTROLLER,
        vec![0x62, 0, 0, 0],
    );
    let out = r.send(PA, f);
    let reply = ElsReply::parse(ElsCode::SCR, &out[0].1.payload).expect("reply");
    assert_eq!(rjt(&reply).1, LsRjtExplanation::INVALID_PAYLOAD_LENGTH);
    let f = r.request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        A,
        FcId::FABRIC_CONTROLLER,
        vec![0x78, 0, 0, 0, 0, 0, 0, 0],
    );
    let out = r.send(PA, f);
    let reply = ElsReply::parse(ElsCode::RNID, &out[0].1.payload).expect("reply");
    assert_eq!(rjt(&reply).0, LsRjtReason::COMMAND_NOT_SUPPORTED);
    // An empty ELS payload.
    let f = r.request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        A,
        FcId::F_PORT_CONTROLLER,
        vec![],
    );
    let out = r.send(PA, f);
    assert_eq!(out.len(), 1);
    // CT: too short, wrong revision, wrong server.
    let ct = |r: &mut Rig, payload: Vec<u8>| {
        let f = r.request(
            RCtl::UNSOLICITED_CONTROL,
            FcType::CT,
            A,
            FcId::DIRECTORY_SERVER,
            payload,
        );
        let out = r.send(PA, f);
        assert_eq!(out.len(), 1);
        NsResponse::parse(CtCommand::GID_FT, &out[0].1.payload).expect("FS_RJT parses")
    };
    assert_eq!(
        ns_rjt(&ct(&mut r, vec![1, 0, 0])).0,
        CtReason::INVALID_IU_SIZE
    );
    let mut bad_rev = NsRequest::gid_ft(FC4_TYPE_FCP).to_vec();
    bad_rev[0] = 2;
    assert_eq!(ns_rjt(&ct(&mut r, bad_rev)).0, CtReason::INVALID_VERSION);
    let mut mgmt = CtPreambleRepr::name_server_request(CtCommand::GID_FT);
    mgmt.gs_type = GsType::MANAGEMENT;
    let mut p = mgmt.to_vec();
    p.extend_from_slice(&[0, 0, 0, 8]);
    assert_eq!(ns_rjt(&ct(&mut r, p)).0, CtReason::SERVER_NOT_AVAILABLE);
    let short_rft = NsRequest::rft_id(A, Fc4Types::new()).to_vec()[..24].to_vec();
    assert_eq!(ns_rjt(&ct(&mut r, short_rft)).0, CtReason::INVALID_IU_SIZE);
    let unknown = CtPreambleRepr::name_server_request(CtCommand(0x0999)).to_vec();
    assert_eq!(
        ns_rjt(&ct(&mut r, unknown)).0,
        CtReason::COMMAND_NOT_SUPPORTED
    );
    // Frames the driver could not decode, and an aborted frame.
    r.sw.handle_malformed(PA, 60);
    let mut f = r.request(RCtl::UNSOLICITED_COMMAND, FcType::FCP, A, B, vec![0; 32]);
    f.eof = Eof::A;
    assert!(r.send(PA, f).is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.malformed), Some(2));
}

#[test]
fn plogi_to_the_name_server_is_accepted() {
    let mut r = Rig::three_hosts();
    let plogi = ElsRequest::Plogi(LoginRepr::request(ElsCode::PLOGI, WA, WA, 2048));
    let (_, reply) = r.els_reply(PA, A, FcId::DIRECTORY_SERVER, &plogi);
    let ElsReply::Login(l) = reply else {
        panic!("PLOGI LS_ACC");
    };
    assert_eq!(l.port_name, SWITCH);
    let logo = ElsRequest::Logo(Logo {
        n_port_id: A,
        port_name: WA,
    });
    let (_, reply) = r.els_reply(PA, A, FcId::DIRECTORY_SERVER, &logo);
    assert_eq!(reply, ElsReply::Acc);
    // An ABTS to the name server (a node giving up on a query) gets BA_ACC.
    let mut abts =
        FrameHeaderRepr::request(RCtl::ABTS, FcType::BLS, FcId::DIRECTORY_SERVER, A, 0x77);
    abts.rx_id = 0x1234;
    let out = r.send(PA, FcFrame::single(abts, Vec::new()));
    assert_eq!(out.len(), 1);
    let (p, f) = &out[0];
    assert_eq!((*p, f.header.r_ctl, f.header.d_id), (PA, RCtl::BA_ACC, A));
    let acc = BaAccRepr::parse(&f.payload).expect("BA_ACC parses");
    assert_eq!(acc, BaAccRepr::exchange_aborted(0x77, 0x1234));
    // A LOGO to FFFFFE naming another N_Port ID is refused.
    let logo = ElsRequest::Logo(Logo {
        n_port_id: B,
        port_name: WB,
    });
    let (_, reply) = r.els_reply(PA, A, FcId::F_PORT_CONTROLLER, &logo);
    assert_eq!(rjt(&reply).1, LsRjtExplanation::INVALID_N_PORT_ID);
    assert!(r.sw.name_server_entry(B).is_some());
}

#[test]
fn frames_on_a_down_port_are_counted() {
    let mut r = Rig::three_hosts();
    r.sw.port_down(r.now, PA);
    assert!(r.fcp(PA, A, B).is_empty());
    assert_eq!(r.sw.counters(PA).map(|c| c.discards.port_down), Some(1));
    // A relogin on the port after it comes back gets the same ID.
    r.sw.port_up(r.now, PA);
    assert_eq!(r.flogi(PA, WA), A);
}

/// IDs a random frame is likely to carry: the hosts', the servers', unidentified, remote.
fn interesting_id() -> impl Strategy<Value = FcId> {
    prop_oneof![
        Just(A),
        Just(B),
        Just(C),
        Just(D),
        Just(REMOTE),
        Just(FcId::UNIDENTIFIED),
        Just(FcId::DIRECTORY_SERVER),
        Just(FcId::FABRIC_CONTROLLER),
        Just(FcId::F_PORT_CONTROLLER),
        any::<[u8; 3]>().prop_map(FcId::from_bytes),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(c, mut v)| {
            v.insert(0, c);
            v
        }),
        Just(ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, WD, WD, 2048)).to_vec()),
        Just(NsRequest::gid_ft(FC4_TYPE_FCP).to_vec()),
        Just(
            ElsRequest::Scr(Scr {
                function: ScrFunction::FULL
            })
            .to_vec()
        ),
    ]
}

prop_compose! {
    fn arbitrary_frame()(
        port in prop_oneof![Just(PA), Just(PB), Just(PC), Just(PD), Just(ISL), Just(PortId(77))],
        r_ctl in prop_oneof![
            Just(RCtl::ELS_REQUEST), Just(RCtl::ELS_REPLY), Just(RCtl::UNSOLICITED_CONTROL),
            Just(RCtl::UNSOLICITED_COMMAND), any::<u8>().prop_map(RCtl),
        ],
        fc_type in prop_oneof![
            Just(FcType::ELS), Just(FcType::CT), Just(FcType::FCP), any::<u8>().prop_map(FcType),
        ],
        s_id in interesting_id(),
        d_id in interesting_id(),
        header in any::<[u8; 24]>(),
        payload in payload(),
        eof in prop_oneof![Just(Eof::T), Just(Eof::N), Just(Eof::A), any::<u8>().prop_map(Eof)],
    ) -> (PortId, FcFrame) {
        let mut h = FrameHeaderRepr::parse_bytes(&header).unwrap_or_default();
        (h.r_ctl, h.fc_type, h.s_id, h.d_id) = (r_ctl, fc_type, s_id, d_id);
        (port, FcFrame::new(Sof::I3, h, Bytes::from(payload), eof))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary frames never panic the switch, and no frame from a local N_Port ever reaches
    /// a local N_Port it shares no zone with.
    #[test]
    fn arbitrary_frames_never_panic_or_leak(
        frames in proptest::collection::vec(arbitrary_frame(), 1..40),
    ) {
        let mut r = Rig::three_hosts();
        r.sw.set_route(r.now, 0x02, ISL);
        r.drain();
        let zoning = r.sw.config().zoning.clone();
        for (port, frame) in frames {
            r.sw.handle_frame(r.now, port, frame);
            let owner =
                |id: FcId, sw: &Switch| sw.name_server_entry(id).map(|e| (e.port, e.port_name));
            while let Some((out, f)) = r.sw.poll_transmit() {
                prop_assert!(f.payload.len() <= 2112);
                let (s, d) = (f.header.s_id, f.header.d_id);
                if let (Some((_, src)), Some((dport, dst))) = (owner(s, &r.sw), owner(d, &r.sw)) {
                    prop_assert_eq!(out, dport);
                    prop_assert!(zoning.zoned(src, dst), "{} -> {} leaked", s, d);
                }
                if f.header.s_id == FcId::FABRIC_CONTROLLER && f.header.r_ctl == RCtl::ELS_REQUEST {
                    let rscn = Rscn::parse(&f.payload).expect("RSCN");
                    let to = owner(f.header.d_id, &r.sw).expect("RSCN to a logged-in port").1;
                    // Every page names an ID whose port name this recipient is zoned with; a
                    // departed ID is no longer in the table, so only present ones are checked.
                    for page in rscn.pages {
                        if let Some((_, w)) = owner(page.affected, &r.sw) {
                            prop_assert!(zoning.zoned(to, w));
                        }
                    }
                }
            }
        }
        let _ = r.events();
    }
}

/// An ELS request from `s` to `d` starting with `sof`.
fn els_frame(sof: Sof, s: FcId, d: FcId, ox: u16, req: &ElsRequest) -> FcFrame {
    FcFrame::new(
        sof,
        FrameHeaderRepr::request(RCtl::ELS_REQUEST, FcType::ELS, d, s, ox),
        req.to_vec().into(),
        Eof::T,
    )
}

/// The fabric controller answers ECHO with its data and refuses what it does not serve, on an
/// F_Port as on an inter-switch port (where an independent FCIP peer sends it), and every
/// answer travels in the class of its request.
#[test]
fn the_fabric_controller_answers_echo_on_every_port_in_the_requests_class() {
    let mut r = Rig::three_hosts();
    let data = b"fabric controller, are you there?".to_vec();
    let echo = ElsRequest::Echo(fc_frames::els::Echo::request(data.clone()));
    let unsupported = ElsRequest::Unknown {
        code: ElsCode(0x52), // ADISC: not a fabric controller's service
        payload: vec![0; 27],
    };
    for (port, s) in [(PA, A), (ISL, REMOTE)] {
        for sof in [Sof::I3, Sof::F, Sof::I2] {
            let out = r.send(
                port,
                els_frame(sof, s, FcId::FABRIC_CONTROLLER, 0x42, &echo),
            );
            assert_eq!(out.len(), 1, "{port} {sof}: {out:?}");
            let (p, f) = &out[0];
            assert_eq!(*p, port);
            assert_eq!(
                (f.header.r_ctl, f.header.s_id, f.header.d_id, f.header.ox_id),
                (RCtl::ELS_REPLY, FcId::FABRIC_CONTROLLER, s, 0x42)
            );
            assert_eq!(f.sof, sof, "{port}: a reply in its request's class");
            assert_eq!(
                ElsReply::parse(ElsCode::ECHO, &f.payload).expect("parses"),
                ElsReply::Echo(data.clone())
            );

            let out = r.send(
                port,
                els_frame(sof, s, FcId::FABRIC_CONTROLLER, 0x43, &unsupported),
            );
            assert_eq!(out.len(), 1, "{port}: {out:?}");
            let (_, f) = &out[0];
            assert_eq!(f.sof, sof);
            let reply = ElsReply::parse(ElsCode(0x52), &f.payload).expect("parses");
            assert_eq!(
                rjt(&reply),
                (LsRjtReason::COMMAND_NOT_SUPPORTED, LsRjtExplanation::NONE)
            );
        }
    }
    // Nothing was discarded on the way.
    for port in [PA, ISL] {
        let c = r.sw.counters(port).expect("counted");
        assert_eq!(c.discards.total(), 0, "{port}: {c:?}");
    }
}

/// Fabric login in class 2 is answered in class 2; in class 3, in class 3.
#[test]
fn the_f_port_controller_answers_in_the_requests_class() {
    let mut r = Rig::new();
    for (port, wwpn, sof) in [(PA, WA, Sof::I2), (PB, WB, Sof::I3)] {
        let req = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
        let out = r.send(
            port,
            els_frame(sof, FcId::UNIDENTIFIED, FcId::F_PORT_CONTROLLER, 7, &req),
        );
        let (_, acc) = out
            .iter()
            .find(|(p, f)| *p == port && f.header.r_ctl == RCtl::ELS_REPLY)
            .expect("LS_ACC");
        assert_eq!(acc.sof, sof);
    }
}
