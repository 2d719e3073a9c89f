//! Cache coherence under a randomized workload, checked against a model: three SANs in a chain
//! A - B - C joined by FCIP through WAN relays, a volume owned by A, a host on each SAN reading
//! and writing it through its own controller (B and C forward to A and cache what they read),
//! while the WAN links are cut and restored at random.
//!
//! Every write stores a version number in its block (writes to one block are serialized by the
//! test, so versions of a block are totally ordered). The model: a read invoked after the write
//! of version `k` was acknowledged must return version `k` or newer — no read anywhere ever
//! returns data older than the last acknowledged write, partitions included. Writes that fail
//! (a cut WAN) may or may not have happened; a read may return them, never anything older than
//! what was acknowledged. The seed is printed; `FCSAN_COHERENCE_SEED=n` replays a run's choices
//! (the network's timing is not replayable).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use controller::api::BuildSpec;
use controller::io::IoConfig;
use controller::model::MediaType;
use fc_frames::scsi::Lun;
use fc_frames::FcId;
use fc_node::fcp::initiator::{Initiator, ScsiError};
use fc_node::scsi::Tier;
use topology::{ArraySpec, ControllerId, Running, Topology};
use wan_relay::Impairment;

#[path = "support/sites.rs"]
mod sites;
use sites::{name, wait_for, WAIT};

const MIB: u64 = 1 << 20;
/// Blocks the workload touches (4 KiB each, 64 KiB apart: each its own cache chunk).
const BLOCKS: u64 = 24;
const BLOCK: usize = 4096;
const RUN: Duration = Duration::from_secs(20);

/// xorshift64*: the test's choices from one printed seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test knows of one block.
#[derive(Debug, Default)]
struct BlockModel {
    /// The highest version whose write was acknowledged, and when.
    acked: Vec<(u64, Instant)>,
    /// The next version to write.
    next: u64,
}

/// A block's contents for `version`: the version in the first 8 bytes and repeated through it.
fn contents(block: u64, version: u64) -> Bytes {
    let mut v = Vec::with_capacity(BLOCK);
    while v.len() < BLOCK {
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&block.to_be_bytes());
    }
    Bytes::from(v)
}

fn version_of(block: u64, data: &[u8]) -> u64 {
    let v = u64::from_be_bytes(data[..8].try_into().unwrap());
    assert_eq!(
        data,
        &contents(block, v)[..],
        "block {block}: torn or foreign data (version {v})"
    );
    v
}

struct Path {
    init: Initiator,
    to: FcId,
    lun: Lun,
    site: &'static str,
}

async fn path(
    san: &Running,
    host: topology::HostId,
    ctl: ControllerId,
    site: &'static str,
) -> Path {
    let c = &san.controller(ctl);
    let lun = {
        let ctl = &c.controller;
        wait_for("the volume served", || {
            ctl.lun_of(&name("shared")).is_some()
        })
        .await;
        ctl.lun_of(&name("shared")).unwrap()
    };
    let init = san.host(host).initiator.clone();
    let start = Instant::now();
    let to = loop {
        if let Some(t) = init
            .node()
            .targets()
            .into_iter()
            .find(|t| t.port_name == c.port_name)
        {
            break t.port_id;
        }
        assert!(
            start.elapsed() < WAIT,
            "host never logged in with its controller"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for _ in 0..8 {
        if init.test_unit_ready(to, lun).await.is_ok() {
            break;
        }
    }
    Path {
        init,
        to,
        lun,
        site,
    }
}

#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    writes: u64,
    failed: u64,
    cuts: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_read_returns_data_older_than_an_acknowledged_write() {
    let seed = std::env::var("FCSAN_COHERENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("coherence seed {seed} (FCSAN_COHERENCE_SEED={seed} replays the choices)");
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new();
    let a = t.gateway("A", 1);
    let b = t.gateway("B", 2);
    let c = t.gateway("C", 3);
    let ab = t.link(a, b, 1);
    let bc = t.link(b, c, 1);
    t.relay(ab, Impairment::default());
    t.relay(bc, Impairment::default());
    t.array(a, ArraySpec::new("ssda").disk(Tier::Ssd, 64 * MIB));
    t.controller_heartbeat(Duration::from_millis(250));
    t.controller_io(IoConfig {
        lease: Duration::from_millis(800),
        ..IoConfig::default()
    });
    let ca = t.controller(a);
    let cb = t.controller(b);
    let cc = t.controller(c);
    let ha = t.host(a);
    let hb = t.host(b);
    let hc = t.host(c);
    let san = t.start(dir.path()).await.expect("topology starts");
    let ctl_a = san.controller(ca).controller.clone();
    wait_for("A ready with its array and peers", || {
        !ctl_a.real_volumes().is_empty()
            && ctl_a.inspect(|core| {
                core.is_ready()
                    && core
                        .peers()
                        .filter(|p| p.state == controller::core::PeerState::Up && p.fc_id.is_some())
                        .count()
                        == 2
            })
    })
    .await;
    ctl_a
        .build(BuildSpec {
            name: Some(name("shared")),
            media: MediaType::Ssd,
            capacity: 16 * MIB,
        })
        .await
        .expect("built on A");
    let paths = Arc::new(vec![
        path(&san, ha, ca, "A").await,
        path(&san, hb, cb, "B").await,
        path(&san, hc, cc, "C").await,
    ]);
    let bs = paths[0]
        .init
        .read_capacity(paths[0].to, paths[0].lun)
        .await
        .unwrap()
        .block_size();
    let per = (BLOCK / bs as usize) as u32;
    let lba = move |block: u64| block * 65536 / u64::from(bs);

    // Version 0 everywhere first.
    for block in 0..BLOCKS {
        paths[0]
            .init
            .write(
                paths[0].to,
                paths[0].lun,
                lba(block),
                contents(block, 0),
                bs,
                false,
            )
            .await
            .unwrap();
    }
    // Per block: a lock that serializes its writes, and the model (never held across I/O).
    type Blocks = Vec<(tokio::sync::Mutex<()>, Mutex<BlockModel>)>;
    let model: Arc<Blocks> = Arc::new(
        (0..BLOCKS)
            .map(|_| {
                (
                    tokio::sync::Mutex::new(()),
                    Mutex::new(BlockModel {
                        acked: vec![(0, Instant::now())],
                        next: 1,
                    }),
                )
            })
            .collect(),
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let violations: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();

    // The WAN: cut one link or the other now and then, for 0.3-2.5 s.
    let relays = [
        san.link(ab).relay.clone().unwrap(),
        san.link(bc).relay.clone().unwrap(),
    ];
    let chaos = {
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        let tally = tally.clone();
        tokio::spawn(async move {
            while start.elapsed() < RUN - Duration::from_secs(4) {
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
                let r = &relays[rng.below(2) as usize];
                r.set_refuse(true);
                r.sever();
                tally.lock().unwrap().cuts += 1;
                tokio::time::sleep(Duration::from_millis(300 + rng.below(2200))).await;
                r.set_refuse(false);
            }
            for r in &relays {
                r.set_refuse(false);
            }
        })
    };

    // Three hosts, two workers each.
    let mut workers = Vec::new();
    for (i, worker) in (0..6).enumerate() {
        let paths = paths.clone();
        let model = model.clone();
        let tally = tally.clone();
        let violations = violations.clone();
        let mut rng = Rng(seed.wrapping_add(worker as u64 * 7919) | 1);
        workers.push(tokio::spawn(async move {
            let p = &paths[i % 3];
            while start.elapsed() < RUN {
                let block = rng.below(BLOCKS);
                if rng.below(4) == 0 {
                    // A write: one at a time per block, so versions are ordered.
                    let (serial, state) = &model[block as usize];
                    let _one = serial.lock().await;
                    let version = {
                        let mut m = state.lock().unwrap();
                        m.next += 1;
                        m.next - 1
                    };
                    let r = p
                        .init
                        .write(p.to, p.lun, lba(block), contents(block, version), bs, false)
                        .await;
                    let mut t = tally.lock().unwrap();
                    match r {
                        Ok(()) => {
                            state.lock().unwrap().acked.push((version, Instant::now()));
                            t.writes += 1;
                        }
                        Err(_) => t.failed += 1,
                    }
                } else {
                    let invoked = Instant::now();
                    let r = p.init.read(p.to, p.lun, lba(block), per, bs).await;
                    match r {
                        Ok(data) => {
                            let v = version_of(block, &data);
                            let m = model[block as usize].1.lock().unwrap();
                            let floor = m
                                .acked
                                .iter()
                                .filter(|(_, at)| *at < invoked)
                                .map(|(v, _)| *v)
                                .max()
                                .unwrap_or(0);
                            if v < floor {
                                violations.lock().unwrap().push(format!(
                                    "site {} read version {v} of block {block}, but version {floor} was acknowledged before the read began",
                                    p.site
                                ));
                            }
                            if v >= m.next {
                                violations.lock().unwrap().push(format!(
                                    "site {} read version {v} of block {block}, never written",
                                    p.site
                                ));
                            }
                            drop(m);
                            tally.lock().unwrap().reads += 1;
                        }
                        Err(ScsiError::CheckCondition(_)) | Err(_) => {
                            tally.lock().unwrap().failed += 1;
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    chaos.await.unwrap();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let hits: u64 = [cb, cc]
        .iter()
        .map(|c| {
            san.controller(*c)
                .controller
                .io_counters(&name("shared"))
                .map_or(0, |k| k.cache_hits)
        })
        .sum();
    let invalidations = ctl_a
        .io_counters(&name("shared"))
        .map_or(0, |k| k.invalidations);
    eprintln!(
        "seed {seed}: {} reads, {} writes acknowledged, {} failed, {} cuts, {hits} cache hits at B and C, {invalidations} invalidations sent by A",
        tally.reads, tally.writes, tally.failed, tally.cuts
    );
    let v = std::mem::take(&mut *violations.lock().unwrap());
    assert!(
        v.is_empty(),
        "seed {seed}: {} stale reads:\n{}",
        v.len(),
        v.join("\n")
    );
    assert!(
        tally.reads > 200 && tally.writes > 50,
        "too little work to mean anything: {tally:?}"
    );
    assert!(tally.cuts >= 2, "the WAN was never cut");
    assert!(hits > 0, "the caches never served a read");
    assert!(invalidations > 0, "the owner never invalidated a cache");
    san.shutdown().await;
}
