//! Encoding and decoding of the controllers' CT_IUs, with their HMAC.

use crate::wire::{Message, Reason};

/// The installation's shared secret: every controller signs and checks with it.
#[derive(Clone)]
pub struct Key(#[allow(dead_code)] Vec<u8>);

impl Key {
    /// A key from the secret's bytes.
    pub fn new(secret: &[u8]) -> Key {
        Key(secret.to_vec())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a CT_IU is not a valid controller message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Too short.
    #[error("truncated")]
    Truncated,
}

impl WireError {
    /// The reject reason a receiver answers with.
    pub fn reason(&self) -> Reason {
        Reason::MALFORMED
    }
}

/// The CT_IU of `msg`, signed with `key`.
pub fn encode(_msg: &Message, _key: &Key) -> Vec<u8> {
    unimplemented!("written by the codec helper")
}

/// The message of a CT_IU, its HMAC checked with `key`.
pub fn decode(_ct_iu: &[u8], _key: &Key) -> Result<Message, WireError> {
    Err(WireError::Truncated)
}

/// A record alone, as UPDATE carries it (the store keeps records so).
pub fn encode_record(_r: &crate::model::Record) -> Vec<u8> {
    unimplemented!()
}

/// A record encoded by [`encode_record`].
pub fn decode_record(_b: &[u8]) -> Result<crate::model::Record, WireError> {
    Err(WireError::Truncated)
}
