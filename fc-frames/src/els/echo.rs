//! Link liveness: ECHO (FC-LS-3 §4.2), whose LS_ACC returns the request's data, and LKA,
//! the link keep-alive of FC-BB (FC-BB-6; what FCIP sends every K_A_TOV), whose
//! LS_ACC carries nothing but its command word.
//!
//! ```text
//! ECHO and its LS_ACC                   LKA
//! +--------+--------+--------+--------+ +--------+--------+--------+--------+
//! |  code  |  0x00  |  0x00  |  0x00  | |  0x80  |  0x00  |  0x00  |  0x00  |
//! +--------+--------+--------+--------+ +--------+--------+--------+--------+
//! | data, 0 to 2108 bytes ...         |
//! ```

use core::fmt;

use super::{check_code, check_len, emit_command_word, ElsCode, ElsError, COMMAND_WORD_LEN};

/// Most ECHO data one frame holds: the 2112-byte data field less the command word.
pub const MAX_ECHO_DATA: usize = super::MAX_PAYLOAD_LEN - COMMAND_WORD_LEN;

/// An ECHO request, or the LS_ACC that returns its data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Echo {
    /// [`ElsCode::ECHO`] or [`ElsCode::LS_ACC`].
    pub code: ElsCode,
    /// The data to echo (at most [`MAX_ECHO_DATA`] bytes).
    pub data: Vec<u8>,
}

impl Echo {
    /// An ECHO request.
    pub fn request(data: Vec<u8>) -> Echo {
        Echo {
            code: ElsCode::ECHO,
            data,
        }
    }

    /// The LS_ACC that answers this ECHO: the same data.
    pub fn accept(&self) -> Echo {
        Echo {
            code: ElsCode::LS_ACC,
            data: self.data.clone(),
        }
    }

    /// Parses an ECHO or its LS_ACC; any command code is taken as data. The rest of the
    /// command word is not checked.
    pub fn parse(buf: &[u8]) -> Result<Echo, ElsError> {
        check_len(buf, COMMAND_WORD_LEN)?;
        // FC-LS-3: ECHO is a single-frame sequence, so its data is at most 2108 bytes.
        let data = &buf[COMMAND_WORD_LEN..];
        if data.len() > MAX_ECHO_DATA {
            return Err(ElsError::EchoTooLong(data.len()));
        }
        Ok(Echo {
            // Invariant: buf.len() >= 4 (checked above).
            code: ElsCode(buf[0]),
            data: data.to_vec(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes: 4 plus the data.
    pub fn buffer_len(&self) -> usize {
        COMMAND_WORD_LEN + self.data.len()
    }

    /// Writes the payload. Panics if `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(self.code, buf);
        buf[COMMAND_WORD_LEN..self.buffer_len()].copy_from_slice(&self.data);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `ECHO len=8` (`LS_ACC len=8` for the accept).
impl fmt::Display for Echo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} len={}", self.code, self.data.len())
    }
}

/// An LKA request: the command word alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lka;

impl Lka {
    /// Payload length.
    pub const LEN: usize = COMMAND_WORD_LEN;

    /// Parses an LKA; bytes after the command code are not checked.
    pub fn parse(buf: &[u8]) -> Result<Lka, ElsError> {
        check_code(buf, ElsCode::LKA, Self::LEN)?;
        Ok(Lka)
    }

    /// Bytes [`emit`](Self::emit) writes: 4.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the payload. Panics if `buf` is shorter than 4 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_command_word(ElsCode::LKA, buf);
    }

    /// The payload as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}

/// `LKA`.
impl fmt::Display for Lka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LKA")
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::els::strategies::arb_echo;

    // tshark 4.0.17 names these "ECHO" and "ACC (ECHO)" (and "LKA", "ACC (LKA)" below) in
    // the Info column (_ws.col.Info) but shows their payload as raw data, without
    // fcels.opcode.
    static ECHO: [u8; 12] = hex!("10000000 deadbeef 01020304");
    static ECHO_ACC: [u8; 12] = hex!("02000000 deadbeef 01020304");
    static LKA: [u8; 4] = hex!("80000000");

    fn echo() -> Echo {
        Echo::request(hex!("deadbeef 01020304").to_vec())
    }

    #[test]
    fn test_parse() {
        assert_eq!(Echo::parse(&ECHO), Ok(echo()));
        let a = Echo::parse(&ECHO_ACC).unwrap();
        assert_eq!(a.code, ElsCode::LS_ACC);
        assert_eq!(a.data, hex!("deadbeef 01020304"));
        assert_eq!(Lka::parse(&LKA), Ok(Lka));
        assert_eq!(Echo::parse(&ECHO[..4]).map(|e| e.data.len()), Ok(0));
    }

    #[test]
    fn test_emit() {
        let e = echo();
        assert_eq!(e.buffer_len(), 12);
        assert_eq!(e.to_vec(), ECHO);
        assert_eq!(Echo::parse(&e.to_vec()), Ok(e.clone()));
        assert_eq!(e.accept().to_vec(), ECHO_ACC);
        assert_eq!(Echo::parse(&e.accept().to_vec()), Ok(e.accept()));
        assert_eq!(Lka.buffer_len(), 4);
        assert_eq!(Lka.to_vec(), LKA);
        assert_eq!(Lka::parse(&Lka.to_vec()), Ok(Lka));
    }

    #[test]
    fn test_display() {
        assert_eq!(echo().to_string(), "ECHO len=8");
        assert_eq!(echo().accept().to_string(), "LS_ACC len=8");
        assert_eq!(Lka.to_string(), "LKA");
    }

    #[test]
    fn test_echo_too_long() {
        let mut b = vec![0x10, 0, 0, 0];
        b.resize(4 + MAX_ECHO_DATA, 0xAA);
        assert_eq!(Echo::parse(&b).map(|e| e.data.len()), Ok(2108));
        b.push(0);
        assert_eq!(Echo::parse(&b), Err(ElsError::EchoTooLong(2109)));
    }

    #[test]
    fn test_lka_wrong_code() {
        assert!(matches!(
            Lka::parse(&hex!("10000000")),
            Err(ElsError::UnexpectedCode { .. })
        ));
    }

    #[test]
    fn test_truncated() {
        for len in 0..4 {
            assert!(matches!(Echo::parse(&ECHO[..len]), Err(ElsError::Len(_))));
            assert!(matches!(Lka::parse(&LKA[..len]), Err(ElsError::Len(_))));
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(e in arb_echo()) {
            prop_assert_eq!(Echo::parse(&e.to_vec()), Ok(e));
        }

        #[test]
        fn prop_no_panic(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = Echo::parse(&buf);
            let _ = Lka::parse(&buf);
        }
    }
}
