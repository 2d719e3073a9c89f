//! Replays the checked-in corpora of the fuzz targets `fsf` and `engine`
//! (`fuzz/corpus/<target>/`) through the same oracles the fuzzers run, so CI catches a
//! regression on any input a fuzzer ever kept. (`fc-frames/tests/fuzz_corpus.rs` does the same
//! for the fc-frames targets.)

#[path = "../../fc-frames/tests/support/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn corpus_fsf() {
    replay("fsf", fcip::fuzzing::fsf);
}

#[test]
fn corpus_engine() {
    replay("engine", fcip::fuzzing::engine);
}
