//! A LUN whose block device forwards every command as FCP to a LUN on another node, through
//! the initiator of the very node that serves it — the shape of a virtualization controller's
//! forwarded volume. A host keeps 32 commands in flight to it, reads and writes mixed, and
//! every byte comes back as written, on the forwarded LUN and on the array behind it.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fabric::driver::SwitchHandle;
use fabric::{Config, PortId, Switch};
use fc_frames::scsi::{AdditionalSense, Lun, SenseKey};
use fc_frames::{FcId, Wwn};
use fc_node::fcp::initiator::{Initiator, ScsiError};
use fc_node::fcp::remote::RemoteLun;
use fc_node::fcp::target::Target;
use fc_node::node::{Node, NodeConfig, Services};
use fc_node::scsi::{BlockDevice, DiskConfig, MemLun, ScsiEngine, TargetPort, Tier};
use tokio::time::timeout;

const SWITCH: Wwn = Wwn::from_u64(0x1000_0000_c0ff_ee03);
const HOST: Wwn = Wwn::from_u64(0x2100_0000_0000_0021);
const FORWARDER: Wwn = Wwn::from_u64(0x2300_0000_0000_0021);
const ARRAY: Wwn = Wwn::from_u64(0x2200_0000_0000_0021);
const BLOCK: u32 = 512;
const WAIT: Duration = Duration::from_secs(20);
/// Commands in flight at once, each worker on its own 64 blocks.
const WORKERS: u64 = 32;
const REGION: u64 = 64;
const ROUNDS: usize = 12;

fn connector(
    sw: &SwitchHandle,
) -> impl FnMut() -> std::future::Ready<io::Result<fabric::link::Link>> + Send + 'static {
    let sw = sw.clone();
    move || std::future::ready(sw.connect_node().map_err(io::Error::other))
}

fn config(port_name: Wwn, initiator: bool, target: bool) -> NodeConfig {
    let mut c = NodeConfig::new(
        port_name,
        Wwn::from_u64(port_name.to_u64() ^ 0x0100_0000_0000_0000),
    );
    c.initiator = initiator;
    c.target = target;
    c
}

fn engine(port: Wwn) -> Arc<ScsiEngine> {
    Arc::new(ScsiEngine::new(TargetPort {
        port_name: port,
        node_name: Wwn::ZERO,
        relative_port: 1,
    }))
}

/// xorshift64*: test data without a dependency.
fn fill(seed: &mut u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

async fn find(init: &Initiator, port_name: Wwn) -> FcId {
    timeout(WAIT, async {
        loop {
            if let Some(t) = init
                .node()
                .targets()
                .into_iter()
                .find(|t| t.port_name == port_name)
            {
                return t.port_id;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never logged in to {port_name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_lun_through_its_own_node_under_32_commands() {
    let sw = SwitchHandle::spawn(
        Switch::new(Config::new(1, SWITCH, (1..=8).map(PortId))).expect("config"),
    );

    // The array: one RAM LUN.
    let array_engine = engine(ARRAY);
    let medium = Arc::new(MemLun::new(4096, BLOCK, Tier::FastHdd).unwrap());
    array_engine
        .add_disk(
            Lun::ZERO,
            medium.clone(),
            DiskConfig::new("ARRAY0", Wwn::from_u64(0x6000_0000_0000_0021)),
        )
        .unwrap();
    let mut services = Services::new();
    Target::new(array_engine).install(&mut services);
    let _array = Node::spawn(config(ARRAY, false, true), connector(&sw), services);

    // The forwarder: initiator to the array and target to the host, in one node.
    let fwd_engine = engine(FORWARDER);
    let mut services = Services::new();
    Target::new(fwd_engine.clone()).install(&mut services);
    let fwd = Initiator::new(Node::spawn(
        config(FORWARDER, true, true),
        connector(&sw),
        services,
    ))
    .with_timeout(Duration::from_secs(10));
    let array_id = find(&fwd, ARRAY).await;
    let remote = RemoteLun::open(fwd.clone(), array_id, Lun::ZERO)
        .await
        .expect("the forwarder opens the array's LUN");
    assert_eq!(remote.block_count(), 4096);
    assert_eq!(remote.tier(), Tier::FastHdd);

    // The host logs in to the forwarder, then the forwarded LUN appears.
    let host = Initiator::new(Node::spawn(
        config(HOST, true, false),
        connector(&sw),
        Services::new(),
    ))
    .with_timeout(Duration::from_secs(10));
    let fwd_id = find(&host, FORWARDER).await;
    fwd_engine
        .add_disk(
            Lun::ZERO,
            Arc::new(remote),
            DiskConfig::new("FWD0", Wwn::from_u64(0x6000_0000_0000_0022)),
        )
        .unwrap();
    // The host hears of it once (REPORTED LUNS DATA HAS CHANGED), then the LUN is ready.
    match host.test_unit_ready(fwd_id, Lun::ZERO).await {
        Err(ScsiError::CheckCondition(s)) => {
            assert_eq!(s.key, SenseKey::UNIT_ATTENTION);
            assert_eq!(s.additional, AdditionalSense(0x3F, 0x0E));
        }
        other => panic!("expected the LUN inventory unit attention, got {other:?}"),
    }
    host.test_unit_ready(fwd_id, Lun::ZERO).await.unwrap();
    let cap = host.read_capacity(fwd_id, Lun::ZERO).await.unwrap();
    assert_eq!((cap.blocks(), cap.block_size()), (4096, BLOCK));

    // 32 workers, each on its own 64 blocks: write a random run, read the whole region back,
    // compare with what the worker knows it wrote.
    let run = async {
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let host = host.clone();
            workers.push(tokio::spawn(async move {
                let base = w * REGION;
                let mut model = vec![0u8; (REGION * u64::from(BLOCK)) as usize];
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (w + 1);
                for round in 0..ROUNDS {
                    let first = seed % REGION;
                    let blocks = 1 + (seed >> 8) % (REGION - first);
                    let data = fill(&mut seed, (blocks * u64::from(BLOCK)) as usize);
                    let fua = round % 3 == 0;
                    host.write(fwd_id, Lun::ZERO, base + first, data.clone(), BLOCK, fua)
                        .await
                        .unwrap_or_else(|e| panic!("worker {w} round {round}: write: {e}"));
                    let at = (first * u64::from(BLOCK)) as usize;
                    model[at..at + data.len()].copy_from_slice(&data);
                    let back = host
                        .read(fwd_id, Lun::ZERO, base, REGION as u32, BLOCK)
                        .await
                        .unwrap_or_else(|e| panic!("worker {w} round {round}: read: {e}"));
                    assert!(back == model, "worker {w} round {round}: data differs");
                }
                model
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("worker"));
        }
        all
    };
    let expected = timeout(Duration::from_secs(120), run)
        .await
        .expect("no deadlock: 32 forwarded commands in flight finish");

    // The array holds exactly what the host wrote through the forwarder.
    let direct = host
        .read(
            find(&host, ARRAY).await,
            Lun::ZERO,
            0,
            (WORKERS * REGION) as u32,
            BLOCK,
        )
        .await
        .unwrap();
    assert!(
        direct == expected,
        "the array's blocks differ from what was written"
    );
    let on_medium = medium.read(0, WORKERS * REGION).await.unwrap();
    assert!(on_medium == expected);
    host.synchronize_cache(fwd_id, Lun::ZERO).await.unwrap();

    // A remote error keeps its meaning: a read past the array's end is refused by the
    // forwarder's own range check, and the forwarded LUN's sense says so.
    let e = host
        .read(fwd_id, Lun::ZERO, 4095, 2, BLOCK)
        .await
        .unwrap_err();
    assert_eq!(
        e.sense().map(|s| s.additional),
        Some(AdditionalSense::LBA_OUT_OF_RANGE)
    );
}
