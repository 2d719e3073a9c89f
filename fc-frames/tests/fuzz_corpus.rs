//! Replays the fuzz targets' checked-in corpora (`fuzz/corpus/<target>/`) through the same
//! oracles the fuzzers run, so CI catches a regression on any input a fuzzer ever kept.

use std::fs;
use std::path::Path;

fn replay(target: &str, oracle: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let result = std::panic::catch_unwind(|| oracle(&data));
        assert!(
            result.is_ok(),
            "{target} oracle failed on {}",
            path.display()
        );
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus in {}", dir.display());
}

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
