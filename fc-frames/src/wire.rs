//! Byte-level helpers for the views: field ranges and big-endian accessors.
//!
//! Every accessor here indexes a slice whose length the caller's checked constructor has already
//! verified; they are `pub(crate)` so that no unchecked buffer reaches them from outside.

/// A fixed byte range inside a structure (smoltcp's `wire::field::Field`).
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a big-endian `u16` at `at`. The caller guarantees `at + 2 <= buf.len()`.
#[inline]
pub(crate) fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian 24-bit value at `at`. The caller guarantees `at + 3 <= buf.len()`.
#[inline]
pub(crate) fn be24(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]])
}

/// Reads a big-endian `u32` at `at`. The caller guarantees `at + 4 <= buf.len()`.
#[inline]
pub(crate) fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Reads a big-endian `u64` at `at`. The caller guarantees `at + 8 <= buf.len()`.
#[inline]
pub(crate) fn be64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Writes a big-endian `u16` at `at`.
#[inline]
pub(crate) fn put_be16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes the low 24 bits of `v` big-endian at `at`.
#[inline]
pub(crate) fn put_be24(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 3].copy_from_slice(&v.to_be_bytes()[1..]);
}

/// Writes a big-endian `u32` at `at`.
#[inline]
pub(crate) fn put_be32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian `u64` at `at`.
#[inline]
pub(crate) fn put_be64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Reads a WWN at `at`. The caller guarantees `at + 8 <= buf.len()`.
pub(crate) fn wwn_at(buf: &[u8], at: usize) -> crate::addr::Wwn {
    crate::addr::Wwn::from_u64(be64(buf, at))
}

/// Writes a WWN at `at`. Panics if `at + 8 > buf.len()` (emit buffers are ours).
pub(crate) fn put_wwn_at(buf: &mut [u8], at: usize, w: crate::addr::Wwn) {
    put_be64(buf, at, w.to_u64());
}
