//! Fuzz target: `fc_frames::fuzzing::fcp` (parse, emit, reparse, compare).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fc_frames::fuzzing::fcp(data));
