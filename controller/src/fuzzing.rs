//! The fuzzing oracle of the controllers' messages, shared by the cargo-fuzz target
//! `controller_msg` in `fuzz/` and by `tests/fuzz_corpus.rs`, which replays its checked-in
//! corpus. A panic here is a finding: the decoder panicked on hostile input, or a message does
//! not survive its own encoding.

use crate::wire::{decode, encode, Key, Message, MAC_LEN};

/// The key the fuzz target and its seeds sign with.
pub const KEY: &[u8] = b"fcsan fuzzing key";

/// Decodes `data` with [`KEY`], and again with its last 32 bytes replaced by the right MAC so
/// that mutated bodies reach the body decoders instead of stopping at the MAC check. Whatever
/// decodes must encode to exactly the bytes it came from (the codec accepts one encoding of
/// every message), and decode again to the same message.
pub fn message(data: &[u8]) {
    let key = Key::new(KEY);
    round_trip(data, &key);
    if let Some(signed_len) = data.len().checked_sub(MAC_LEN) {
        let mut resigned = data.to_vec();
        let tag = key.tag(&data[..signed_len]);
        resigned[signed_len..].copy_from_slice(&tag);
        round_trip(&resigned, &key);
    }
}

fn round_trip(data: &[u8], key: &Key) {
    let Ok(msg) = decode(data, key) else { return };
    let bytes = encode(&msg, key);
    assert!(
        bytes == data,
        "{msg:?} decoded from {data:02x?} encodes to {bytes:02x?}"
    );
    match decode(&bytes, key) {
        Ok(again) => assert_eq!(again, msg, "value changed through encode/decode"),
        Err(e) => panic!("own encoding {bytes:02x?} of {msg:?} does not decode: {e}"),
    }
}

/// The file name of the seed of catalogue message `i`: `catalogue-01-heartbeat-request`,
/// `catalogue-22-reject`.
pub fn seed_name(i: usize, msg: &Message) -> String {
    let n = i + 1;
    match msg {
        Message::Request(_, r) => format!("catalogue-{n:02}-{}-request", lower(r.kind().name())),
        Message::Reply(_, k, _) => format!("catalogue-{n:02}-{}-reply", lower(k.name())),
        Message::Reject(_) => format!("catalogue-{n:02}-reject"),
    }
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}
