//! Controllers on SANs joined by FCIP gateways, in one process: each site a gateway with its
//! arrays and its controller. The mapping built at one site reaches every site as FC
//! exchanges; the builder fits at home, spills to the next SAN by priority, fails with
//! nothing leaked; two sites building one name at once get one winner; a WAN split and its
//! healing converge with no acknowledged change lost; and hostile CT messages from a node that
//! is no controller are rejected with a reason and a counter, changing nothing.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use controller::api::BuildSpec;
use controller::driver::BuildError;
use controller::model::{MediaType, Record, VersionVector, VolumeName};
use controller::wire::{self, Header, Heartbeat, Key, Message, Reason, Request};
use fc_frames::{FcType, RCtl};
use fc_node::exchange::Outbound;
use fc_node::node::{Node, NodeConfig, Services};
use fc_node::scsi::Tier;
use topology::{ArraySpec, ControllerId, Running, Topology};

const WAIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

fn name(s: &str) -> VolumeName {
    VolumeName::new(s).unwrap()
}

fn spec(n: &str, media: MediaType, capacity: u64) -> BuildSpec {
    BuildSpec {
        name: Some(name(n)),
        media,
        capacity,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn volume(san: &Running, c: ControllerId, n: &str) -> Option<Record> {
    san.controller(c)
        .controller
        .inspect(|core| core.volume(&name(n)).cloned())
}

fn peers_up(san: &Running, c: ControllerId) -> usize {
    san.controller(c).controller.inspect(|core| {
        core.peers()
            .filter(|p| p.state == controller::core::PeerState::Up && p.fc_id.is_some())
            .count()
    })
}

async fn real(san: &Running, c: ControllerId) -> controller::api::views::RealVolumesView {
    use controller::api::Management;
    san.controller(c).controller.backend().real_volumes().await
}

async fn free_bytes(san: &Running, c: ControllerId) -> u64 {
    real(san, c).await.free.iter().map(|f| f.free_bytes).sum()
}

/// Three gateway sites in a chain A - B - C; A has SSD, B a fast disk, C a slow disk; a
/// controller on each. Site B lists C before A in its priority (by default: by site name).
async fn three_sites(dir: &std::path::Path) -> (Running, [ControllerId; 3]) {
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let c = t.gateway("C", 3);
    t.link(a, b, 1);
    t.link(b, c, 1);
    t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 64 * MIB));
    t.array(b, ArraySpec::new("fastb").disk(Tier::FastHdd, 64 * MIB));
    t.array(c, ArraySpec::new("slowc").disk(Tier::SlowHdd, 64 * MIB));
    t.controller_heartbeat(Duration::from_millis(250));
    let ca = t.controller(a);
    let cb = t.controller(b);
    let cc = t.controller(c);
    let san = t.start(dir).await.expect("topology starts");
    for c in [ca, cb, cc] {
        let s = &san;
        wait_for("every controller has heard both peers' heartbeats", || {
            peers_up(s, c) == 2
        })
        .await;
        wait_for("every controller has found its array", || {
            !s.controller(c).controller.real_volumes().is_empty()
        })
        .await;
    }
    for c in [ca, cb, cc] {
        let s = &san;
        wait_for("every controller ready", || {
            s.controller(c).controller.inspect(|core| core.is_ready())
        })
        .await;
    }
    (san, [ca, cb, cc])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_propagates_spills_and_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (san, [a, b, c]) = three_sites(dir.path()).await;
    let ctl_a = &san.controller(a).controller;

    // Fits at home (figure 7 S703-S709), visible in the same form everywhere.
    let built = ctl_a
        .build(spec("vol1", MediaType::Ssd, 16 * MIB))
        .await
        .expect("an SSD volume fits on site A");
    let body = built.body.clone().unwrap();
    assert_eq!(body.capacity, 16 * MIB);
    assert!(
        body.rows.iter().all(|r| r.real.array_id.domain() == 1),
        "{body:?}"
    );
    for other in [b, c] {
        let s = &san;
        wait_for("vol1 everywhere", || {
            volume(s, other, "vol1").as_ref() == Some(&built)
        })
        .await;
    }

    // A slow disk exists only on C: A spills past B to C (S710-S711), the rows on C's array.
    let spilled = ctl_a
        .build(spec("vol2", MediaType::SlowHdd, 8 * MIB))
        .await
        .expect("slow disk found on site C");
    let rows = &spilled.body.as_ref().unwrap().rows;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.real.array_id.domain() == 3),
        "{rows:?}"
    );
    let start = Instant::now();
    while !real(&san, c)
        .await
        .volumes
        .iter()
        .any(|v| v.used_by.iter().any(|u| u.volume == name("vol2")))
    {
        assert!(start.elapsed() < WAIT, "C never marked vol2's extents used");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A volume that needs more SSD than there is: fails, says what was found, leaks nothing.
    let mut before = Vec::new();
    for x in [a, b, c] {
        before.push(free_bytes(&san, x).await);
    }
    let e = ctl_a
        .build(spec("huge", MediaType::Ssd, 1 << 40))
        .await
        .expect_err("a terabyte of SSD is not there");
    match e {
        BuildError::Insufficient { found } => {
            let total: u64 = found.iter().map(|f| f.bytes).sum();
            assert!((40 * MIB..64 * MIB).contains(&total), "{found:?}");
            assert_eq!(found[0].site, "A");
        }
        other => panic!("expected Insufficient, got {other:?}"),
    }
    let mut after = Vec::new();
    for x in [a, b, c] {
        after.push(free_bytes(&san, x).await);
    }
    assert_eq!(before, after, "every reservation was released");
    assert!(volume(&san, a, "huge").is_none());
    san.shutdown().await;
}

/// Two controllers build one name at the same moment: exactly one wins, and every site means
/// the winner's volume by that name; the loser's build failed and left no reservation behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_builds_of_one_name_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let (san, [a, b, c]) = three_sites(dir.path()).await;
    for round in 0..3 {
        let n = format!("same{round}");
        let (ra, rb) = tokio::join!(
            san.controller(a)
                .controller
                .build(spec(&n, MediaType::Ssd, 4 * MIB)),
            san.controller(b)
                .controller
                .build(spec(&n, MediaType::FastHdd, 4 * MIB)),
        );
        let winners = [ra.is_ok(), rb.is_ok()];
        assert_eq!(
            winners.iter().filter(|w| **w).count(),
            1,
            "round {round}: {ra:?} / {rb:?}"
        );
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(
            matches!(loser, Err(BuildError::NameTaken { .. })),
            "{loser:?}"
        );
        let winner_owner = san.controller(if winners[0] { a } else { b }).port_name;
        for x in [a, b, c] {
            let s = &san;
            let n = n.clone();
            wait_for("one winner everywhere", move || {
                volume(s, x, &n).is_some_and(|r| r.key.owner == winner_owner)
            })
            .await;
        }
    }
    san.shutdown().await;
}

/// The WAN is cut between B and C (the relay refuses and severs): each side goes on changing
/// its own volumes, peers across the cut are marked down; after healing every acknowledged
/// change is everywhere and all copies are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wan_split_and_heal_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let l = t.link(a, b, 1);
    t.relay(l, wan_relay::Impairment::default());
    t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 64 * MIB));
    t.array(b, ArraySpec::new("ssdb").disk(Tier::Ssd, 64 * MIB));
    t.controller_heartbeat(Duration::from_millis(200));
    let ca = t.controller(a);
    let cb = t.controller(b);
    let san = t.start(dir.path()).await.unwrap();
    for c in [ca, cb] {
        let s = &san;
        wait_for("peers up", || peers_up(s, c) == 1).await;
        wait_for("ready with arrays", || {
            let ctl = &s.controller(c).controller;
            ctl.inspect(|core| core.is_ready()) && !ctl.real_volumes().is_empty()
        })
        .await;
    }
    let relay = san.link(l).relay.clone().unwrap();
    let ctl_a = san.controller(ca).controller.clone();
    let ctl_b = san.controller(cb).controller.clone();
    ctl_a
        .build(spec("before", MediaType::Ssd, MIB))
        .await
        .unwrap();
    wait_for("before at B", || volume(&san, cb, "before").is_some()).await;

    relay.set_refuse(true);
    relay.sever();
    wait_for("the peers see each other down", || {
        peers_up(&san, ca) == 0 && peers_up(&san, cb) == 0
    })
    .await;
    let mut acked = Vec::new();
    for k in 0..5 {
        acked.push((
            "A",
            ctl_a
                .build(spec(&format!("a{k}"), MediaType::Ssd, MIB))
                .await
                .unwrap(),
        ));
        acked.push((
            "B",
            ctl_b
                .build(spec(&format!("b{k}"), MediaType::Ssd, MIB))
                .await
                .unwrap(),
        ));
    }
    ctl_a.delete(&name("before"), None).await.unwrap();
    assert!(volume(&san, cb, "a0").is_none(), "nothing crosses the cut");

    relay.set_refuse(false);
    wait_for("peers up again", || {
        peers_up(&san, ca) == 1 && peers_up(&san, cb) == 1
    })
    .await;
    let start = Instant::now();
    loop {
        let ra = ctl_a.inspect(|core| core.durable().records.clone());
        let rb = ctl_b.inspect(|core| core.durable().records.clone());
        let va: VersionVector = ctl_a.inspect(|core| core.versions().clone());
        let vb: VersionVector = ctl_b.inspect(|core| core.versions().clone());
        if ra == rb && va == vb {
            break;
        }
        assert!(start.elapsed() < WAIT, "copies never converged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (site, rec) in &acked {
        for c in [ca, cb] {
            let got = volume(&san, c, rec.key.name.as_str());
            assert_eq!(
                got.as_ref(),
                Some(rec),
                "{site}'s {} at {c:?}",
                rec.key.name
            );
        }
    }
    assert!(
        volume(&san, cb, "before").is_none(),
        "the delete crossed too"
    );
    san.shutdown().await;
}

/// A node that is no controller (a host on site A) sends the controllers' CT messages: bad
/// bytes, a wrong key, a replay, a stale generation, a sender that is not its port, an UPDATE
/// out of order, a reply where a request belongs. Each is answered FS_RJT with its reason and counted; the mapping does not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_rejected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 64 * MIB));
    t.controller_key(b"the installation's key");
    let ca = t.controller(a);
    let san = t.start(dir.path()).await.unwrap();
    let ctl = san.controller(ca).controller.clone();
    wait_for("ready", || ctl.inspect(|core| core.is_ready())).await;
    ctl.build(spec("keep", MediaType::Ssd, MIB)).await.unwrap();
    let before = ctl.inspect(|core| core.durable().records.clone());

    let me = fc_frames::Wwn::from_u64(0x2100_0000_0000_0bad);
    let node = Node::spawn(
        NodeConfig::new(me, me),
        topology::tcp_connector(san.site(a).addr),
        Services::new(),
    );
    node.wait_online(WAIT).await.unwrap();
    let target = ctl.node().port_id().unwrap();
    node.plogi(target).await.unwrap();

    let good = Key::new(b"the installation's key");
    let wrong = Key::new(b"a guess at the key");
    let hb = |seq: u64, sender| {
        Message::Request(
            Header {
                sender,
                generation: 7,
                seq,
            },
            Request::Heartbeat(Heartbeat {
                name: "intruder".into(),
                site: "A".into(),
                fc_id: node.port_id().unwrap(),
                api: String::new(),
                versions: VersionVector::default(),
            }),
        )
    };
    let call = |bytes: Vec<u8>| {
        let node = node.clone();
        let good = good.clone();
        async move {
            let mut x = node.exchange(
                target,
                FcType::CT,
                Outbound::new(RCtl::UNSOLICITED_CONTROL, bytes),
                Duration::from_secs(5),
            );
            let mut answer = BytesMut::new();
            loop {
                let s = x.next().await.expect("an answer");
                answer.extend_from_slice(&s.payload);
                if s.is_last() {
                    break;
                }
            }
            wire::decode(&answer, &good).expect("a well-formed answer")
        }
    };
    let rejected = |m: Message| match m {
        Message::Reject(r) => r,
        other => panic!("expected a reject, got {other:?}"),
    };

    let mut garbage = wire::encode(&hb(1, me), &good);
    garbage.truncate(30);
    assert_eq!(rejected(call(garbage).await), Reason::MALFORMED);
    assert_eq!(
        rejected(call(wire::encode(&hb(2, me), &wrong)).await),
        Reason::BAD_MAC
    );
    let other = fc_frames::Wwn::from_u64(0x2300_0000_0000_0099);
    assert_eq!(
        rejected(call(wire::encode(&hb(3, other), &good)).await),
        Reason::FOREIGN
    );
    // With the key (a controller's key stolen, say) a first message passes; its replay does
    // not, nor does an older generation.
    let first = wire::encode(&hb(10, me), &good);
    assert!(matches!(call(first.clone()).await, Message::Reply(..)));
    assert_eq!(rejected(call(first).await), Reason::REPLAYED);
    let mut stale = hb(11, me);
    if let Message::Request(h, _) = &mut stale {
        h.generation = 6;
    }
    assert_eq!(
        rejected(call(wire::encode(&stale, &good)).await),
        Reason::STALE
    );
    // Out of order: an UPDATE whose first change is version 5 of an owner nothing was heard
    // of yet. Nothing is applied; the answer says what the controller has of that owner (none),
    // and the gap is counted (and a PULL goes to the sender to fill it).
    let early = Record {
        key: controller::model::RecordKey {
            owner: me,
            name: name("intruded"),
        },
        stamp: controller::model::Stamp::new(7, 5),
        body: None,
    };
    let update = Message::Request(
        Header {
            sender: me,
            generation: 7,
            seq: 13,
        },
        Request::Update(vec![early]),
    );
    match call(wire::encode(&update, &good)).await {
        Message::Reply(_, _, wire::Reply::Updated(v)) => {
            assert_eq!(v.get(me), controller::model::Stamp::ZERO)
        }
        other => panic!("expected Updated, got {other:?}"),
    }
    let reply = Message::Reply(
        Header {
            sender: me,
            generation: 7,
            seq: 14,
        },
        wire::Kind::HEARTBEAT,
        wire::Reply::Ack,
    );
    // A CT_IU coded as a response opens no request: the node discards it and counts it.
    let unserved = ctl.node().counters().unserved;
    let mut x = node.exchange(
        target,
        FcType::CT,
        Outbound::new(RCtl::UNSOLICITED_CONTROL, wire::encode(&reply, &good)),
        Duration::from_secs(2),
    );
    assert!(
        x.next().await.is_err(),
        "no answer to a reply sent as a request"
    );
    assert_eq!(ctl.node().counters().unserved, unserved + 1);

    let counters = ctl.inspect(|core| core.counters().clone());
    for (name, at_least) in [
        ("rejected.malformed", 1),
        ("rejected.bad-mac", 1),
        ("rejected.foreign", 1),
        ("rejected.replayed", 1),
        ("rejected.stale", 1),
        ("updates.gap", 1),
    ] {
        assert!(
            counters.get(name).copied().unwrap_or(0) >= at_least,
            "{name}: {counters:?}"
        );
    }
    assert_eq!(ctl.inspect(|core| core.durable().records.clone()), before);
    san.shutdown().await;
}

/// Delete with "keep data" ([0086]): the data is copied into the named volume first, then the
/// volume's rows go everywhere and its extents are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_keeping_data_copies_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    t.link(a, b, 1);
    let ssd = t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 64 * MIB));
    t.array(b, ArraySpec::new("ssdb").disk(Tier::Ssd, 64 * MIB));
    let host = t.host(a);
    let ca = t.controller(a);
    let cb = t.controller(b);
    let san = t.start(dir.path()).await.unwrap();
    for c in [ca, cb] {
        let s = &san;
        wait_for("ready with peers and arrays", || {
            let ctl = &s.controller(c).controller;
            peers_up(s, c) == 1
                && ctl.inspect(|core| core.is_ready())
                && !ctl.real_volumes().is_empty()
        })
        .await;
    }
    let ctl = san.controller(ca).controller.clone();
    let src = ctl
        .build(spec("src", MediaType::Ssd, 4 * MIB))
        .await
        .unwrap();
    let dst = ctl
        .build(spec("dst", MediaType::Ssd, 4 * MIB))
        .await
        .unwrap();
    let row = |r: &Record| r.body.as_ref().unwrap().rows[0].real;
    let (rs, rd) = (row(&src), row(&dst));
    assert_ne!(rs.start, rd.start);

    // The host writes a pattern where src lives on the array.
    let init = &san.host(host).initiator;
    init.node().wait_targets(2, WAIT).await.unwrap();
    let array_id = init
        .node()
        .targets()
        .into_iter()
        .find(|t| t.port_name == san.array(ssd).port_name)
        .unwrap()
        .port_id;
    let lun = controller::real::scsi_lun(rs.lun);
    let pattern: Vec<u8> = (0..4 * MIB as usize)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    init.write(array_id, lun, rs.start, pattern.clone().into(), 512, true)
        .await
        .unwrap();

    ctl.delete(&name("src"), Some(&name("dst"))).await.unwrap();
    let copied = init
        .read(array_id, lun, rd.start, (4 * MIB / 512) as u32, 512)
        .await
        .unwrap();
    assert!(copied[..] == pattern[..], "dst holds src's data");
    for c in [ca, cb] {
        let s = &san;
        wait_for("src gone everywhere, dst kept", || {
            volume(s, c, "src").is_none() && volume(s, c, "dst").is_some()
        })
        .await;
    }
    let used: Vec<_> = real(&san, ca)
        .await
        .volumes
        .into_iter()
        .flat_map(|v| v.used_by)
        .map(|u| u.volume)
        .collect();
    assert_eq!(used, [name("dst")], "src's extents are free again");
    // Deleting at a controller that does not own the volume says where to do it.
    let e = san
        .controller(cb)
        .controller
        .delete(&name("dst"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ctl-a"), "{e}");
    san.shutdown().await;
}

/// A LUN holding a volume's extents vanishes from its array: the volume is marked degraded at
/// every controller, not deleted; a new site's controller that starts later (no restart of
/// the others) finds the others by the name server and gets the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_lun_degrades_and_a_new_site_joins() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let c = t.gateway("C", 3);
    t.link(a, b, 1);
    t.link(c, b, 1);
    let ssd = t.array(
        a,
        ArraySpec::new("ssda")
            .disk(Tier::Ssd, 16 * MIB)
            .disk(Tier::Ssd, 16 * MIB),
    );
    t.controller_heartbeat(Duration::from_millis(250));
    let ca = t.controller(a);
    let cb = t.controller(b);
    let san = t.start(dir.path()).await.unwrap();
    for x in [ca, cb] {
        let s = &san;
        wait_for("ready with peers", || {
            let ctl = &s.controller(x).controller;
            peers_up(s, x) == 1 && ctl.inspect(|core| core.is_ready())
        })
        .await;
    }
    let ctl = san.controller(ca).controller.clone();
    wait_for("A's array found", || ctl.real_volumes().len() == 2).await;
    let v = ctl
        .build(spec("fragile", MediaType::Ssd, 8 * MIB))
        .await
        .unwrap();
    let lun = controller::real::scsi_lun(v.body.as_ref().unwrap().rows[0].real.lun);
    san.array(ssd)
        .array
        .target
        .engine()
        .remove_lun(lun)
        .await
        .unwrap();
    for x in [ca, cb] {
        let s = &san;
        wait_for("fragile degraded everywhere", || {
            volume(s, x, "fragile")
                .and_then(|r| r.body)
                .map(|b| b.state)
                == Some(controller::model::VolumeState::Degraded)
        })
        .await;
    }

    // Site C's controller starts now.
    let mut config = controller::driver::ControllerConfig::new(
        "ctl-c",
        "C",
        fc_frames::Wwn::from_u64(0x2300_0000_0000_0003),
        dir.path().join("ctl-c.redb"),
        Key::new(b"fcsan topology controllers"),
    );
    config.heartbeat = Duration::from_millis(250);
    let late =
        controller::driver::Controller::start(config, topology::tcp_connector(san.site(c).addr))
            .unwrap();
    let want = ctl.inspect(|core| core.durable().records.clone());
    wait_for("the new site has the whole table", || {
        late.inspect(|core| core.durable().records.clone()) == want
    })
    .await;
    for x in [ca, cb] {
        let s = &san;
        wait_for("the others see the new site", || peers_up(s, x) == 2).await;
    }
    late.shutdown().await;
    san.shutdown().await;
}
