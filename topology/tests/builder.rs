//! Topologies started for real on loopback: a plain switch with its capture and zoning, and two
//! gateways whose FCIP link goes through the WAN relay.

use std::time::Duration;

use fc_frames::Wwn;
use fc_node::fcp::discovery;
use fc_node::scsi::Tier;
use topology::{ArraySpec, Topology, WwnScheme};
use wan_relay::Impairment;

const WAIT: Duration = Duration::from_secs(30);

/// One switch: a host zoned with an array, and a host in no zone. The zoned host lists the
/// array's LUNs; the other sees no target; the switch capture holds the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_site_zones_its_hosts_and_captures_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("switch.pcap");
    let mut t = Topology::with_scheme(WwnScheme { tag: 0x0042 });
    let sw = t.switch("S", 5);
    t.capture(sw, &pcap);
    let disk = t.array(
        sw,
        ArraySpec::new("d")
            .disk(Tier::FastHdd, 1 << 20)
            .tape()
            .disk(Tier::Ssd, 2 << 20),
    );
    let zoned = t.host(sw);
    let outside = t.host(sw);
    t.zone("z", [zoned.into(), disk.into()]);
    assert_eq!(t.port_name(zoned), Wwn::from_u64(0x2100_0000_0042_0001));
    let san = t.start(dir.path()).await.unwrap();

    assert_eq!(
        san.site(sw).switch_name,
        WwnScheme { tag: 0x42 }.switch_name(5)
    );
    assert!(san.site(sw).gateway.is_none());
    let init = &san.host(zoned).initiator;
    init.node().wait_online(WAIT).await.unwrap();
    init.node().wait_targets(1, WAIT).await.unwrap();
    let luns = discovery::list_luns(init).await.unwrap();
    let shown: Vec<(Option<u16>, Option<Tier>)> =
        luns.iter().map(|l| (l.lun.index(), l.tier)).collect();
    assert_eq!(
        shown,
        [
            (Some(0), Some(Tier::FastHdd)),
            (Some(1), None),
            (Some(2), Some(Tier::Ssd))
        ]
    );
    assert!(luns
        .iter()
        .all(|l| l.target.port_name == san.array(disk).port_name));
    assert_eq!(
        san.array(disk).luns[1].path,
        dir.path().join("d2.img"),
        "LUN files are named after the array and the LUN"
    );

    let other = &san.host(outside).initiator;
    other.node().wait_online(WAIT).await.unwrap();
    other.node().wait_discovery(WAIT).await.unwrap();
    assert!(
        other.node().targets().is_empty(),
        "zoning let it see a target"
    );

    san.shutdown().await;
    let records = fc_pcap::capture::read_file(&pcap).unwrap();
    assert!(records.len() > 10, "{} frames captured", records.len());
    assert!(records.iter().all(|r| r.frame.is_ok()));
}

/// Three gateways: A dials B directly, C dials B through the relay with a delay. A host on A
/// and a host on C each find the array on B, and the relay counts what crossed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_start_in_dial_order_and_a_link_goes_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let c = t.gateway("C", 3);
    let b = t.gateway("B", 2);
    let ab = t.link(a, b, 1);
    let cb = t.link(c, b, 2);
    t.relay(
        cb,
        Impairment {
            one_way_delay: Duration::from_millis(5),
            bandwidth_bps: None,
        },
    );
    let disk = t.array(b, ArraySpec::new("b").disk(Tier::SlowHdd, 1 << 20));
    let (host_a, host_c) = (t.host(a), t.host(c));
    let san = t.start(dir.path()).await.unwrap();

    assert!(san.link(ab).relay.is_none());
    // B takes the two links on ports 100 and 101; A and C each on its port 100.
    assert_eq!(san.link(ab).listener_port.0, 100);
    assert_eq!(san.link(cb).listener_port.0, 101);
    assert_eq!(san.link(cb).dialer_port.0, 100);
    for h in [host_a, host_c] {
        let init = &san.host(h).initiator;
        init.node().wait_online(WAIT).await.unwrap();
        let targets = init.node().wait_targets(1, WAIT).await.unwrap();
        assert_eq!(targets[0].port_name, san.array(disk).port_name);
        assert_eq!(targets[0].port_id.domain(), 2);
        let luns = discovery::list_luns(init).await.unwrap();
        assert_eq!(luns.len(), 1);
        assert_eq!(luns[0].tier, Some(Tier::SlowHdd));
    }
    let relay = san.link(cb).relay.as_ref().expect("a relay");
    let counters = relay.counters();
    assert!(counters.accepted >= 2, "{counters:?}");
    assert!(counters.bytes_to_upstream > 0 && counters.bytes_to_client > 0);
    let (peer, link) = san.gateway(c).link_counters()[0];
    assert_eq!(peer, san.site(b).switch_name);
    assert_eq!(link.connections_up, 2);
    san.shutdown().await;
}
