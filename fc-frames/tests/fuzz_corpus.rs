//! Replays the fuzz targets' checked-in corpora (`fuzz/corpus/<target>/`) through the same
//! oracles the fuzzers run, so CI catches a regression on any input a fuzzer ever kept.

mod support {
    pub mod replay;
}

use support::replay::replay;

#[test]
fn corpus_frame() {
    replay("frame", fc_frames::fuzzing::frame);
}

#[test]
fn corpus_els() {
    replay("els", fc_frames::fuzzing::els);
}

#[test]
fn corpus_ct() {
    replay("ct", fc_frames::fuzzing::ct);
}

#[test]
fn corpus_fcp() {
    replay("fcp", fc_frames::fuzzing::fcp);
}

#[test]
fn corpus_cdb() {
    replay("cdb", fc_frames::fuzzing::cdb);
}

#[test]
fn corpus_encap() {
    replay("encap", fc_frames::fuzzing::encap);
}
