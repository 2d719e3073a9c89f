//! The replication core under the deterministic harness: thousands of seeds of random changes
//! with lost, duplicated, delayed and reordered messages, partitions and crash-restarts (some
//! of them losing the database, when no acknowledged change can go with it), each
//! checked after healing (every acknowledged change everywhere, copies equal, no vector entry
//! gone back). A failing seed is printed; `FCSAN_SIM_SEED=N cargo test -p controller --test
//! sim replay` replays it.

use controller::core::Config;
use controller::sim::{run, run_counting, Faults, Sim};

fn seeds() -> u64 {
    std::env::var("FCSAN_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn sweep(n: usize, ops: usize, faults: Faults, base: u64) {
    let mut failed = Vec::new();
    let mut lost = 0;
    for seed in base..base + seeds() {
        let (bad, l) = run_counting(seed, n, ops, faults.clone());
        lost += l;
        if !bad.is_empty() {
            failed.push((seed, bad));
            if failed.len() >= 3 {
                break;
            }
        }
    }
    for (seed, bad) in &failed {
        eprintln!("seed {seed} ({n} sites): {} problems", bad.len());
        for b in bad.iter().take(10) {
            eprintln!("  {b}");
        }
        eprintln!("  replay: FCSAN_SIM_SEED={seed} FCSAN_SIM_SITES={n} cargo test -p controller --test sim replay -- --nocapture");
    }
    assert!(failed.is_empty(), "{} seeds failed", failed.len());
    if faults.crash > 0.0 && seeds() >= 100 {
        assert!(lost > 0, "the crashes never lost a database");
    }
    eprintln!(
        "{n} sites: {} seeds, {lost} databases lost on the way",
        seeds()
    );
}

#[test]
fn lan_three_sites_converge() {
    sweep(3, 100, Faults::none(), 0);
}

#[test]
fn hostile_three_sites_converge() {
    sweep(3, 150, Faults::hostile(), 1_000_000);
}

#[test]
fn hostile_five_sites_converge() {
    sweep(5, 150, Faults::hostile(), 2_000_000);
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("FCSAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let n = std::env::var("FCSAN_SIM_SITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let bad = run(seed, n, 150, Faults::hostile());
    for b in &bad {
        eprintln!("{b}");
    }
    assert!(bad.is_empty());
}

/// A controller that loses its database recovers its records from its peers, takes a higher
/// generation, and its later changes reach everyone.
#[test]
fn lost_database_recovers_with_new_generation() {
    let config = Config::with_heartbeat(100);
    let mut sim = Sim::new(3, 7, Faults::none(), config);
    sim.run_until(sim.now + 500);
    for k in 0..5 {
        assert!(sim.put(0, &format!("a{k}"), k));
    }
    sim.run_until(sim.now + 1000);
    let before = sim.core(0).unwrap().own_stamp();
    sim.crash(0, 200, true);
    sim.run_until(sim.now + 2000);
    let core = sim.core(0).unwrap();
    assert!(core.is_ready());
    assert!(core.own_stamp().generation > before.generation);
    assert_eq!(core.volumes().len(), 5, "own records came back from peers");
    assert!(sim.put(0, "a-after", 9));
    sim.run_until(sim.now + 1000);
    let bad = sim.check();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(sim
        .core(2)
        .unwrap()
        .volume(&"a-after".parse().unwrap())
        .is_some());
}

/// Two sites build one name while split: after healing exactly one holds it, the same at
/// every site, and the other's volume is kept under a conflict name.
#[test]
fn split_brain_name_collision_settles() {
    let config = Config::with_heartbeat(100);
    let mut sim = Sim::new(3, 11, Faults::none(), config);
    sim.run_until(sim.now + 500);
    sim.set_cut(0, 1, true);
    sim.set_cut(0, 2, true);
    assert!(sim.put(1, "shared", 1));
    sim.run_until(sim.now + 5);
    assert!(sim.put(0, "shared", 2));
    sim.run_until(sim.now + 1000);
    sim.heal();
    sim.run_until(sim.now + 3000);
    let bad = sim.check();
    assert!(bad.is_empty(), "{bad:?}");
    let names: Vec<String> = sim
        .core(2)
        .unwrap()
        .volumes()
        .iter()
        .map(|r| r.key.name.to_string())
        .collect();
    assert_eq!(names, ["shared", "shared~ctl0"]);
    let w = sim
        .core(2)
        .unwrap()
        .volume(&"shared".parse().unwrap())
        .unwrap();
    assert_eq!(w.key.owner, sim.core(1).unwrap().identity().wwpn);
}
