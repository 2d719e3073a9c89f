//! A node that is an FCP initiator and an FCP target at once (a virtualization controller: it
//! reads and writes arrays, and hosts read and write its LUNs), and the hosts that log in with
//! it. Its own discovery must never end a host's image pair: a PLOGI from it, or the drop of a
//! session it thought was its own, ends the host's I_T nexus at its target and aborts the
//! host's commands there without a response (FCP-4), so the host's I/O hangs until it times
//! out.
//!
//! - A host that leaves (a `fcsan host` process ends) and another that takes its switch port,
//!   so its N_Port_ID, while the dual-role node still waits for the PDISC it sent the first
//!   one: the new host's login stands and its command in flight across that wait ends GOOD.
//! - An initiator-only host is never logged in to by the dual-role node (GFF_ID says it is no
//!   target, or has not said yet).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fabric::driver::SwitchHandle;
use fabric::{Config, PortId, Switch};
use fc_frames::ct::ns::{Fc4Features, Fc4Types, NsRequest, NsResponseBody};
use fc_frames::els::prli::TYPE_FCP;
use fc_frames::scsi::Lun;
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::Initiator;
use fc_node::fcp::target::Target;
use fc_node::node::{Node, NodeConfig, NodeEvent, RemotePort, Services, SessionEvent};
use fc_node::scsi::{BlockDevice, DeviceError, DiskConfig, MemLun, ScsiEngine, TargetPort, Tier};

const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee01);
const DUAL: Wwn = Wwn::from_u64(0x2300_0000_0000_0001);
const HOST_1: Wwn = Wwn::from_u64(0x2100_0000_0000_0001);
const HOST_2: Wwn = Wwn::from_u64(0x2100_0000_0000_0002);
const BLOCK: u32 = 512;
const WAIT: Duration = Duration::from_secs(10);
/// The dual-role node's ELS time-out: how long it waits for the PDISC of a port that left.
const ELS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read of the dual-role node's LUN takes: longer than the PDISC's wait.
const SLOW: Duration = Duration::from_secs(3);

/// A LUN whose reads take [`SLOW`].
struct SlowLun(MemLun);

#[async_trait]
impl BlockDevice for SlowLun {
    fn block_size(&self) -> u32 {
        self.0.block_size()
    }

    fn block_count(&self) -> u64 {
        self.0.block_count()
    }

    fn tier(&self) -> Tier {
        self.0.tier()
    }

    async fn read(&self, lba: u64, blocks: u64) -> Result<Bytes, DeviceError> {
        tokio::time::sleep(SLOW).await;
        self.0.read(lba, blocks).await
    }

    async fn write(&self, lba: u64, data: Bytes, fua: bool) -> Result<(), DeviceError> {
        self.0.write(lba, data, fua).await
    }

    async fn flush(&self) -> Result<(), DeviceError> {
        self.0.flush().await
    }

    async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), DeviceError> {
        self.0.unmap(lba, blocks).await
    }
}

fn switch() -> SwitchHandle {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let config = Config::new(1, SWITCH, (1..=8).map(PortId));
    SwitchHandle::spawn(Switch::new(config).expect("valid config"))
}

fn connector(
    sw: &SwitchHandle,
) -> impl FnMut() -> std::future::Ready<io::Result<fabric::link::Link>> + Send + 'static {
    let sw = sw.clone();
    move || std::future::ready(sw.connect_node().map_err(io::Error::other))
}

fn node_config(port_name: Wwn) -> NodeConfig {
    let mut c = NodeConfig::new(
        port_name,
        Wwn::from_u64(port_name.to_u64() ^ 0x0100_0000_0000_0000),
    );
    c.els_timeout = ELS_TIMEOUT;
    c.exchange.r_a_tov = Duration::from_millis(500);
    c
}

/// The dual-role node: an initiator, and a target of one slow 1 MiB LUN.
fn dual(sw: &SwitchHandle) -> Node {
    let engine = ScsiEngine::new(TargetPort {
        port_name: DUAL,
        node_name: DUAL,
        relative_port: 1,
    });
    let lun = MemLun::new(2048, BLOCK, Tier::Ssd).expect("a small LUN");
    engine
        .add_disk(
            Lun::ZERO,
            Arc::new(SlowLun(lun)),
            DiskConfig::new("SLOW0", Wwn::from_u64(0x5000_0000_0000_0001)),
        )
        .expect("LUN 0");
    let mut services = Services::new();
    Target::new(Arc::new(engine)).install(&mut services);
    let mut c = node_config(DUAL);
    c.initiator = true;
    c.target = true;
    Node::spawn(c, connector(sw), services)
}

/// A host: an initiator, and with `target` a port that says it is an FCP target too (so that
/// the dual-role node logs in with it).
fn host(sw: &SwitchHandle, name: Wwn, target: bool) -> Initiator {
    let mut c = node_config(name);
    c.initiator = true;
    c.target = target;
    Initiator::new(Node::spawn(c, connector(sw), Services::new()))
        .with_timeout(Duration::from_secs(8))
}

/// The dual-role node's session with `id`, once `pred` holds for it.
async fn session(node: &Node, id: FcId, pred: impl Fn(&RemotePort) -> bool) -> RemotePort {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(p) = node.sessions().into_iter().find(|p| p.port_id == id) {
            if pred(&p) {
                return p;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such session with {id}: {:?}",
            node.sessions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn target_id(host: &Initiator, name: Wwn) -> FcId {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = host.node().targets().iter().find(|t| t.port_name == name) {
            return t.port_id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "target {name} never logged in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_on_the_port_of_one_that_left_keeps_its_image_pair() {
    let sw = switch();
    let dual = dual(&sw);
    dual.wait_online(WAIT)
        .await
        .expect("the dual-role node logs in");
    let mut events = dual.events();

    // The first host says it is a target too: the dual-role node has a session with it as one
    // (opened by whichever of the two logged in first).
    let first = host(&sw, HOST_1, true);
    let first_id = first
        .node()
        .wait_online(WAIT)
        .await
        .expect("host 1 logs in");
    session(&dual, first_id, |p| p.is_fcp_target()).await;

    // It leaves (LOGO to the fabric only, as a host process that ends): an RSCN, and the
    // dual-role node checks it with PDISC, which nobody answers for ELS_TIMEOUT. Meanwhile a
    // second host takes the free switch port, so the same N_Port_ID, logs in with the
    // dual-role node's target and reads its slow LUN across the PDISC's wait.
    first.node().shutdown().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snap = sw.snapshot();
        let gone = !snap.name_server.iter().any(|e| e.port_id == first_id);
        if gone && snap.ports.iter().filter(|p| p.up).count() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "host 1 never left");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = host(&sw, HOST_2, false);
    let second_id = second
        .node()
        .wait_online(WAIT)
        .await
        .expect("host 2 logs in");
    assert_eq!(second_id, first_id, "host 2 is on host 1's switch port");
    let to = target_id(&second, DUAL).await;
    while events.try_recv().is_ok() {}
    let data = second
        .read(to, Lun::ZERO, 0, 8, BLOCK)
        .await
        .expect("the read across the PDISC's wait ends GOOD");
    assert_eq!(data.len(), 8 * BLOCK as usize);

    // Its login stood all along: no session with it closed, and it is still the host's own.
    let mut closed = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let NodeEvent::Session(SessionEvent::Closed { port, reason }) = e {
            closed.push((port, reason));
        }
    }
    assert!(
        closed.iter().all(|(p, _)| p.port_name != HOST_2),
        "host 2's session closed: {closed:?}"
    );
    let s = session(&dual, second_id, |_| true).await;
    assert!(!s.originated && s.is_fcp_initiator(), "{s:?}");
    second
        .read(to, Lun::ZERO, 8, 8, BLOCK)
        .await
        .expect("and the next read");
    second.node().shutdown().await;
    dual.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dual_role_node_never_logs_in_with_an_initiator_only_host() {
    let sw = switch();
    let dual = dual(&sw);
    dual.wait_online(WAIT)
        .await
        .expect("the dual-role node logs in");

    // A port caught between its RFT_ID and its RFF_ID: FCP registered, its features not yet.
    // The dual-role node hears of it (RSCN), and GFF_ID says the features are not registered:
    // no login with it; its RFF_ID (another RSCN) says what it is.
    let late = Node::spawn(node_config(HOST_1), connector(&sw), Services::new());
    let id = late.wait_online(WAIT).await.expect("the port logs in");
    let fcp = Fc4Types::default().with(TYPE_FCP);
    let r = late.name_server(&NsRequest::rft_id(id, fcp)).await.unwrap();
    assert!(matches!(r.body, NsResponseBody::Accept(_)), "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !dual.sessions().iter().any(|p| p.port_id == id),
        "the dual-role node logged in with a port of unknown features: {:?}",
        dual.sessions()
    );
    let r = late
        .name_server(&NsRequest::rff_id(id, Fc4Features::INITIATOR, TYPE_FCP))
        .await
        .unwrap();
    assert!(matches!(r.body, NsResponseBody::Accept(_)), "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!dual.sessions().iter().any(|p| p.port_id == id));
    late.shutdown().await;

    // Hosts as they come (every registration at once): each logs in with the dual-role
    // node's target, and that session stays the host's own.
    for n in 0..3u64 {
        let h = host(&sw, Wwn::from_u64(0x2100_0000_0000_0100 + n), false);
        let id = h.node().wait_online(WAIT).await.expect("the host logs in");
        target_id(&h, DUAL).await;
        session(&dual, id, RemotePort::is_fcp_initiator).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = session(&dual, id, |_| true).await;
        assert!(!s.originated, "{s:?}");
        h.node().shutdown().await;
    }
    dual.shutdown().await;
}
