//! Replays the checked-in corpus of the fuzz target `controller_msg`
//! (`fuzz/corpus/controller_msg/`) through the oracle the fuzzer runs, so CI catches a
//! regression on any input a fuzzer ever kept; and checks that the corpus still holds the
//! catalogue's seeds as the codec encodes them today.

#[path = "../../fc-frames/tests/support/replay.rs"]
mod replay;

use std::path::Path;

use controller::wire::{decode, encode, Key};
use controller::{catalogue, fuzzing};
use replay::replay;

#[test]
fn corpus_controller_msg() {
    replay("controller_msg", fuzzing::message);
}

#[test]
fn catalogue_seeds_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/controller_msg");
    let key = Key::new(fuzzing::KEY);
    for (i, msg) in catalogue::messages().iter().enumerate() {
        let path = dir.join(fuzzing::seed_name(i, msg));
        let seed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write the seeds with `cargo run --example fuzz_seeds`",
                path.display()
            )
        });
        assert!(
            seed == encode(msg, &key),
            "{} is stale: rewrite it with `cargo run --example fuzz_seeds`",
            path.display()
        );
        assert_eq!(decode(&seed, &key).as_ref(), Ok(msg), "{}", path.display());
    }
}
