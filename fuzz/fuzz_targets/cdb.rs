//! Fuzz target: `fc_frames::fuzzing::cdb` (parse, emit, reparse, compare).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fc_frames::fuzzing::cdb(data));
