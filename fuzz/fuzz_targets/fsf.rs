//! Fuzz target: `fcip::fuzzing::fsf` (the FCIP Special Frame: parse, emit, reparse, compare).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fcip::fuzzing::fsf(data));
