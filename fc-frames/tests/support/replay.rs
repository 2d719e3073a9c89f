//! Replays a fuzz target's checked-in corpus (`fuzz/corpus/<target>/`) through its oracle.
//! Shared by the corpus tests of `fc-frames` and `fcip` (the latter includes this file by path).

use std::fs;
use std::path::Path;

/// Runs `oracle` on every file of `target`'s corpus; fails naming the first file it rejects,
/// or when the corpus is empty.
pub fn replay(target: &str, oracle: fn(&[u8])) {
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
