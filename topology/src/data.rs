//! Files of pseudo-random bytes, for a host to write to a LUN and check on the way back.

use std::io::{self, Write};
use std::path::Path;

/// Writes `len` pseudo-random bytes (xorshift64*, seeded by `len`) to a new file at `path`.
pub fn write_random(path: &Path, len: u64) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}
