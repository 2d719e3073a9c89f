//! Switches joined by inter-switch ports, sans IO: they learn each other's domains (EFP) and
//! name server entries (GA_NXT/GFF_ID walks, RSCN between domain controllers), so an N_Port
//! finds N_Ports of other domains with GID_FT; losing the link takes the domains and their
//! entries away, with RSCN.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fabric::{Config, Event, PortId, Switch, Zone, ZoneSet, Zoning};
use fc_frames::ct::ns::{
    Fc4Features, Fc4Types, NsAccept, NsExplanation, NsRequest, NsResponse, NsResponseBody,
    FC4_TYPE_FCP,
};
use fc_frames::els::{
    Echo, ElsCode, ElsReply, ElsRequest, LoginRepr, Rscn, RscnAddressFormat, Scr, ScrFunction,
};
use fc_frames::sw_ils::{Efp, SwIlsCode};
use fc_frames::{FcFrame, FcId, FcType, FrameHeaderRepr, RCtl, Sof, Wwn};

const ISL: PortId = PortId(10);
const ISL2: PortId = PortId(11);
const HOST: PortId = PortId(1);
const DISK: PortId = PortId(2);
const W_HOST: Wwn = Wwn::from_u64(0x2100_0000_0000_0a01);
const W_DISK: Wwn = Wwn::from_u64(0x2200_0000_0000_0b01);
const W_OTHER: Wwn = Wwn::from_u64(0x2200_0000_0000_0b02);

fn switch_name(domain: u8) -> Wwn {
    Wwn::from_u64(0x1000_0000_0000_0000 | u64::from(domain))
}

/// Switches, the wires between their inter-switch ports, and what came out of F_Ports.
struct Net {
    sws: Vec<Switch>,
    wires: BTreeMap<(usize, PortId), (usize, PortId)>,
    /// Frames sent out F_Ports, by (switch, port).
    out: BTreeMap<(usize, PortId), Vec<FcFrame>>,
    /// Wires that lose everything sent into them (from this end).
    dead: Vec<(usize, PortId)>,
    now: Instant,
    ox: u16,
}

impl Net {
    fn new(domains: &[u8], zoning: Zoning) -> Net {
        let now = Instant::now();
        let sws = domains
            .iter()
            .map(|&d| {
                let mut c = Config::new(d, switch_name(d), [HOST, DISK]);
                c.zoning = zoning.clone();
                let mut sw = Switch::new(c).expect("valid config");
                sw.port_up(now, HOST);
                sw.port_up(now, DISK);
                sw
            })
            .collect();
        Net {
            sws,
            wires: BTreeMap::new(),
            out: BTreeMap::new(),
            dead: Vec::new(),
            now,
            ox: 0x100,
        }
    }

    fn wire(&mut self, a: (usize, PortId), b: (usize, PortId)) {
        self.wires.insert(a, b);
        self.wires.insert(b, a);
        self.sws[a.0].port_up(self.now, a.1);
        self.sws[b.0].port_up(self.now, b.1);
        self.run();
    }

    fn cut(&mut self, a: (usize, PortId)) {
        let b = self.wires.remove(&a).expect("wired");
        self.wires.remove(&b);
        self.sws[a.0].port_down(self.now, a.1);
        self.sws[b.0].port_down(self.now, b.1);
        self.run();
    }

    /// Moves frames until every switch is quiet (and fails if they never are: a loop).
    fn run(&mut self) {
        let mut budget = 100_000;
        loop {
            let mut moved = false;
            for i in 0..self.sws.len() {
                while let Some((port, frame)) = self.sws[i].poll_transmit() {
                    moved = true;
                    budget -= 1;
                    assert!(budget > 0, "the switches never went quiet");
                    match self.wires.get(&(i, port)).copied() {
                        Some(_) if self.dead.contains(&(i, port)) => {}
                        Some((j, q)) => self.sws[j].handle_frame(self.now, q, frame),
                        None => self.out.entry((i, port)).or_default().push(frame),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn take(&mut self, at: (usize, PortId)) -> Vec<FcFrame> {
        self.out.remove(&at).unwrap_or_default()
    }

    fn events(&mut self, sw: usize) -> Vec<Event> {
        std::iter::from_fn(|| self.sws[sw].poll_event()).collect()
    }

    fn send(&mut self, at: (usize, PortId), frame: FcFrame) {
        self.sws[at.0].handle_frame(self.now, at.1, frame);
        self.run();
    }

    fn request(&mut self, r_ctl: RCtl, t: FcType, s: FcId, d: FcId, payload: Vec<u8>) -> FcFrame {
        self.ox += 1;
        FcFrame::single(FrameHeaderRepr::request(r_ctl, t, d, s, self.ox), payload)
    }

    /// An N_Port logs in on `at`, registers as FCP initiator or target, and asks for RSCNs.
    fn node(&mut self, at: (usize, PortId), wwpn: Wwn, features: Fc4Features) -> FcId {
        let flogi = ElsRequest::Flogi(LoginRepr::request(ElsCode::FLOGI, wwpn, wwpn, 2048));
        let f = self.request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            FcId::UNIDENTIFIED,
            FcId::F_PORT_CONTROLLER,
            flogi.to_vec(),
        );
        self.send(at, f);
        let id = self.take(at)[0].header.d_id;
        let mut types = Fc4Types::new();
        types.insert(FC4_TYPE_FCP);
        self.ns(at, id, &NsRequest::rft_id(id, types));
        self.ns(at, id, &NsRequest::rff_id(id, features, FC4_TYPE_FCP));
        let scr = ElsRequest::Scr(Scr {
            function: ScrFunction::FULL,
        });
        let f = self.request(
            RCtl::ELS_REQUEST,
            FcType::ELS,
            id,
            FcId::FABRIC_CONTROLLER,
            scr.to_vec(),
        );
        self.send(at, f);
        self.take(at);
        id
    }

    fn ns(&mut self, at: (usize, PortId), s: FcId, req: &NsRequest) -> NsResponse {
        let f = self.request(
            RCtl::UNSOLICITED_CONTROL,
            FcType::CT,
            s,
            FcId::DIRECTORY_SERVER,
            req.to_vec(),
        );
        self.send(at, f);
        let reply = self
            .take(at)
            .into_iter()
            .find(|f| f.header.r_ctl == RCtl::SOLICITED_CONTROL && f.header.fc_type == FcType::CT)
            .expect("a CT reply");
        NsResponse::parse(req.command(), &reply.payload).expect("CT reply parses")
    }

    fn gid_ft(&mut self, at: (usize, PortId), s: FcId) -> Vec<FcId> {
        match self.ns(at, s, &NsRequest::gid_ft(FC4_TYPE_FCP)).body {
            NsResponseBody::Accept(NsAccept::GidFt(ids)) => ids,
            _ => Vec::new(),
        }
    }
}

fn fcp(frames: &[FcFrame]) -> usize {
    frames
        .iter()
        .filter(|f| f.header.fc_type == FcType::FCP)
        .count()
}

fn rscns(frames: &[FcFrame]) -> Vec<Rscn> {
    frames
        .iter()
        .filter(|f| f.header.r_ctl == RCtl::ELS_REQUEST && f.payload.first() == Some(&0x61))
        .map(|f| Rscn::parse(&f.payload).expect("RSCN parses"))
        .collect()
}

#[test]
fn two_switches_learn_domains_and_names_and_lose_them_with_the_link() {
    let mut net = Net::new(&[1, 2], Zoning::default());
    let host = net.node((0, HOST), W_HOST, Fc4Features::INITIATOR);
    let disk = net.node((1, DISK), W_DISK, Fc4Features::TARGET);
    assert_eq!(net.gid_ft((0, HOST), host), vec![host]);

    net.wire((0, ISL), (1, ISL));
    assert_eq!(net.sws[0].route(2), Some(ISL));
    assert_eq!(net.sws[1].route(1), Some(ISL));
    let ev = net.events(0);
    assert!(ev.contains(&Event::DomainReached {
        domain: 2,
        port: ISL
    }));
    assert!(ev.contains(&Event::NameServerSynced {
        domain: 2,
        entries: 1
    }));
    // The host hears of the disk (RSCN), finds it with GID_FT and learns it is a target
    // with GFF_ID.
    let r = rscns(&net.take((0, HOST)));
    assert!(r.iter().any(|r| r.pages.iter().any(|p| p.affected == disk)));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk]);
    let NsResponseBody::Accept(NsAccept::GffId(f)) =
        net.ns((0, HOST), host, &NsRequest::gff_id(disk)).body
    else {
        panic!("GFF_ID accept");
    };
    assert_eq!(f.get(FC4_TYPE_FCP), Fc4Features::TARGET);
    let e = net.sws[0].name_server_entry(disk).expect("remote entry");
    assert_eq!((e.port_name, e.port), (W_DISK, ISL));

    // A second disk logs in on B: A hears of it from B's controller and walks again.
    let other = net.node((1, HOST), W_OTHER, Fc4Features::TARGET);
    let r = rscns(&net.take((0, HOST)));
    assert!(r
        .iter()
        .any(|r| r.pages.iter().any(|p| p.affected == other)));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, other, disk]);

    // Frames cross, both ways.
    let f = net.request(
        RCtl::UNSOLICITED_COMMAND,
        FcType::FCP,
        host,
        disk,
        vec![0; 32],
    );
    net.send((0, HOST), f);
    assert_eq!(fcp(&net.take((1, DISK))), 1);

    // The link goes: domain 2 and its entries go, the host hears a domain RSCN.
    net.cut((0, ISL));
    assert_eq!(net.sws[0].route(2), None);
    assert!(net.events(0).contains(&Event::DomainLost { domain: 2 }));
    let r = rscns(&net.take((0, HOST)));
    assert!(r.iter().any(|r| r
        .pages
        .iter()
        .any(|p| p.format == RscnAddressFormat::DOMAIN && p.affected.domain() == 2)));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host]);
    // And come back with it.
    net.wire((0, ISL), (1, ISL));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, other, disk]);
}

#[test]
fn a_chain_of_three_switches_reaches_end_to_end() {
    let mut net = Net::new(&[1, 2, 3], Zoning::default());
    let host = net.node((0, HOST), W_HOST, Fc4Features::INITIATOR);
    let disk = net.node((2, DISK), W_DISK, Fc4Features::TARGET);
    net.wire((0, ISL), (1, ISL));
    net.wire((1, ISL2), (2, ISL));
    // Domain 3 is reached through 2; its name server walk crosses switch 2.
    assert_eq!(net.sws[0].route(3), Some(ISL));
    assert_eq!(net.sws[2].route(1), Some(ISL));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk]);
    let f = net.request(
        RCtl::UNSOLICITED_COMMAND,
        FcType::FCP,
        host,
        disk,
        vec![0; 8],
    );
    net.send((0, HOST), f);
    assert_eq!(fcp(&net.take((2, DISK))), 1);
    // The middle link goes: 1 loses 3 (through 2's new EFP), keeps 2.
    net.cut((1, ISL2));
    assert_eq!(net.sws[0].route(3), None);
    assert_eq!(net.sws[0].route(2), Some(ISL));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host]);
}

#[test]
fn remote_entries_are_zoned_by_name() {
    // The host is zoned with the first disk only.
    let zoning = Zoning {
        active: Some(ZoneSet {
            name: "cfg".into(),
            zones: vec![Zone::new("h_d", [W_HOST, W_DISK])],
        }),
        ..Zoning::default()
    };
    let mut net = Net::new(&[1, 2], zoning);
    let host = net.node((0, HOST), W_HOST, Fc4Features::INITIATOR);
    let disk = net.node((1, DISK), W_DISK, Fc4Features::TARGET);
    let other = net.node((1, HOST), W_OTHER, Fc4Features::TARGET);
    net.wire((0, ISL), (1, ISL));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk]);
    // Frames to the unzoned remote port are dropped at the host's switch.
    let f = net.request(
        RCtl::UNSOLICITED_COMMAND,
        FcType::FCP,
        host,
        other,
        vec![0; 8],
    );
    net.send((0, HOST), f);
    assert_eq!(fcp(&net.take((1, HOST))), 0);
    assert_eq!(
        net.sws[0].counters(HOST).map(|c| c.discards.unzoned),
        Some(1)
    );
    let f = net.request(
        RCtl::UNSOLICITED_COMMAND,
        FcType::FCP,
        host,
        disk,
        vec![0; 8],
    );
    net.send((0, HOST), f);
    assert_eq!(fcp(&net.take((1, DISK))), 1);
}

#[test]
fn an_unanswered_walk_is_asked_again_then_given_up() {
    let mut net = Net::new(&[1, 2], Zoning::default());
    net.node((1, DISK), W_DISK, Fc4Features::TARGET);
    // Switch 1 hears switch 2's EFP, but its questions to 2 are lost.
    net.dead.push((0, ISL));
    net.wire((0, ISL), (1, ISL));
    assert_eq!(net.sws[0].route(2), Some(ISL));
    let mut sent = 0;
    for _ in 0..5 {
        let Some(t) = net.sws[0].poll_timeout() else {
            break;
        };
        assert!(t > net.now);
        net.now = t + Duration::from_millis(1);
        net.sws[0].handle_timeout(net.now);
        net.run();
        sent += 1;
    }
    // Asked three times in all (two resends), then no deadline is left.
    assert_eq!(sent, 3);
    assert_eq!(net.sws[0].poll_timeout(), None);
    assert!(net.sws[0]
        .name_server_entry(FcId::from_parts(2, 2, 0))
        .is_none());
}

#[test]
fn the_domain_controller_answers_echo_and_refuses_registrations() {
    let mut net = Net::new(&[1], Zoning::default());
    let host = net.node((0, HOST), W_HOST, Fc4Features::INITIATOR);
    // A neighbour (domain 7) on the inter-switch port.
    net.sws[0].port_up(net.now, ISL);
    let efp = net.sws[0].poll_transmit().expect("EFP on port up");
    assert_eq!((efp.1.sof, efp.1.header.fc_type), (Sof::F, FcType::SW_ILS));
    let ours = Efp::parse(&efp.1.payload).expect("EFP parses");
    assert_eq!(ours.domains[0].domain, 1);
    let theirs = Efp {
        principal_priority: 0xFF,
        principal_name: switch_name(7),
        domains: vec![fc_frames::sw_ils::DomainRecord {
            domain: 7,
            hops: 0,
            switch_name: switch_name(7),
        }],
    };
    let f = net.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::SW_ILS,
        FcId::FABRIC_CONTROLLER,
        FcId::FABRIC_CONTROLLER,
        theirs.to_vec(),
    );
    net.sws[0].handle_frame(net.now, ISL, f);
    let out: Vec<_> = std::iter::from_fn(|| net.sws[0].poll_transmit()).collect();
    // SW_ACC with its list, a walk of domain 7, and the new EFP.
    assert_eq!(out[0].1.payload[0], SwIlsCode::SW_ACC.0);
    assert_eq!(net.sws[0].route(7), Some(ISL));
    let walk = out
        .iter()
        .find(|(_, f)| f.header.fc_type == FcType::CT)
        .expect("GA_NXT to FFFC07");
    assert_eq!(walk.1.header.d_id, FcId::domain_controller(7));
    assert_eq!(walk.1.header.s_id, FcId::domain_controller(1));

    // ECHO to FFFC01 from FFFC07.
    let echo = ElsRequest::Echo(Echo::request(b"ping".to_vec()));
    let f = net.request(
        RCtl::ELS_REQUEST,
        FcType::ELS,
        FcId::domain_controller(7),
        FcId::domain_controller(1),
        echo.to_vec(),
    );
    net.sws[0].handle_frame(net.now, ISL, f);
    let (port, reply) = net.sws[0].poll_transmit().expect("ECHO answered");
    assert_eq!(port, ISL);
    assert_eq!(
        ElsReply::parse(ElsCode::ECHO, &reply.payload).expect("parses"),
        ElsReply::Echo(b"ping".to_vec())
    );
    // Its name server answers another switch about its own domain, and refuses registrations.
    let f = net.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::CT,
        FcId::domain_controller(7),
        FcId::domain_controller(1),
        NsRequest::rft_id(host, Fc4Types::new()).to_vec(),
    );
    net.sws[0].handle_frame(net.now, ISL, f);
    let (_, reply) = net.sws[0].poll_transmit().expect("answered");
    let r = NsResponse::parse(fc_frames::ct::CtCommand::RFT_ID, &reply.payload).expect("parses");
    let NsResponseBody::Reject(j) = r.body else {
        panic!("FS_RJT");
    };
    assert_eq!(j.explanation, NsExplanation::ACCESS_DENIED);
    // An SW_ILS it does not know gets SW_RJT.
    let f = net.request(
        RCtl::UNSOLICITED_CONTROL,
        FcType::SW_ILS,
        FcId::FABRIC_CONTROLLER,
        FcId::FABRIC_CONTROLLER,
        vec![0x10, 0, 0, 0],
    );
    net.sws[0].handle_frame(net.now, ISL, f);
    let (_, reply) = net.sws[0].poll_transmit().expect("answered");
    assert_eq!(reply.payload[0], SwIlsCode::SW_RJT.0);
}

#[test]
fn a_domain_lost_from_a_ring_ages_out_and_a_moved_one_keeps_its_entries() {
    // A ring of four: 1 - 2 - 3 - 4 - 1, plus a second link between 1 and 2.
    let mut net = Net::new(&[1, 2, 3, 4], Zoning::default());
    let host = net.node((0, HOST), W_HOST, Fc4Features::INITIATOR);
    let disk = net.node((1, DISK), W_DISK, Fc4Features::TARGET);
    let far = net.node((2, DISK), W_OTHER, Fc4Features::TARGET);
    net.wire((0, ISL), (1, ISL));
    net.wire((1, ISL2), (2, ISL));
    net.wire((2, ISL2), (3, ISL));
    net.wire((3, ISL2), (0, ISL2));
    net.wire((0, PortId(12)), (1, PortId(12)));
    assert_eq!(net.sws[0].route(2), Some(ISL));
    assert_eq!(net.sws[0].route(4), Some(ISL2));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk, far]);
    net.take((0, HOST));

    // One of the two links to 2 goes: domain 2 moves to the other, its entries stay and the
    // host hears no RSCN for it.
    net.cut((0, ISL));
    assert_eq!(net.sws[0].route(2), Some(PortId(12)));
    let e = net.sws[0].name_server_entry(disk).expect("still known");
    assert_eq!(e.port, PortId(12));
    assert!(rscns(&net.take((0, HOST)))
        .iter()
        .all(|r| r.pages.iter().all(|p| p.affected.domain() != 2)));
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk, far]);

    // Switch 3 goes away altogether: every other switch forgets domain 3 (run() would fail if
    // the ring kept passing it round).
    net.cut((1, ISL2));
    net.cut((2, ISL2));
    for sw in [0, 1, 3] {
        assert_eq!(net.sws[sw].route(3), None, "switch {sw}");
    }
    assert_eq!(net.gid_ft((0, HOST), host), vec![host, disk]);
    assert_eq!(net.sws[0].route(4), Some(ISL2));
}
