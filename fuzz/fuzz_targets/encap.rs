//! Fuzz target: `fc_frames::fuzzing::encap` (the RFC 3643 encapsulation: parse, emit, reparse,
//! compare).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fc_frames::fuzzing::encap(data));
