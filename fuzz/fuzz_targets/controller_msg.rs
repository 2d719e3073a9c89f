//! Fuzz target: `controller::fuzzing::message` (decode a controllers' CT_IU as sent and re-signed,
//! encode, compare bytes, decode again, compare messages).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| controller::fuzzing::message(data));
