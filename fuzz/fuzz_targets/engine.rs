//! Fuzz target: `fcip::fuzzing::engine` (the FCIP receive engine on a byte stream in arbitrary
//! reads: what it delivers is valid and where it says, the same whatever the reads, bounded).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcip::fuzzing::engine(data));
