//! The FC frame encapsulation of RFC 3643 §3, as FCIP uses it (RFC 3821 §5.6): a 28-byte
//! header, then the FC frame between an SOF word and an EOF word.
//!
//! ```text
//!  word | bits 31-24      | 23-16       | 15-8           | 7-0
//! ------+-----------------+-------------+----------------+-------------
//!   0   | Protocol#       | Version     | ~Protocol#     | ~Version
//!   1   | protocol specific: for FCIP a copy of word 0 (RFC 3821 §5.6.1)
//!   2   | pFlags (Ch, SF) | Reserved    | ~pFlags        | ~Reserved
//!   3   | Flags (6) | Frame Length (10) | ~Flags | ~Frame Length
//!   4   | Time Stamp, integer seconds (SNTP format, RFC 2030)
//!   5   | Time Stamp, fraction
//!   6   | CRC (zero unless CRCV is set)
//! ------+-----------------+-------------+----------------+-------------
//!   7   | SOF             | SOF         | ~SOF           | ~SOF
//!   8.. | FC frame: header, payload, fill, FC CRC
//!  last | EOF             | EOF         | ~EOF           | ~EOF
//! ```
//!
//! Frame Length counts 32-bit words of the whole encapsulated frame, header through EOF word.
//! The SOF and EOF codes are the one-byte codes of RFC 3643 §3.2 ([`Sof`], [`Eof`]).
//!
//! [`EncapHeader`] is a view over the 28 header bytes and [`EncapHeaderRepr`] its owned form;
//! [`emit_encapsulated`] and [`parse_encapsulated`] handle whole encapsulated frames. The FCIP
//! Special Frame (RFC 3821 §7, pFlags SF = 1) is not decoded here: [`parse_encapsulated`]
//! reports it as [`EncapError::SpecialFrame`].
//!
//! The header CRC (CRCV = 1, used by iFCP) is neither computed nor checked: FCIP sends
//! CRCV = 0 and a zero CRC field (RFC 3821 §5.6.1). A header with CRCV = 1 parses with its CRC
//! field ignored ([`EncapHeader::crc`] still reads it) and is emitted with a zero CRC field.

use core::fmt;
use std::io::IoSlice;

use bitflags::bitflags;
use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Layer, LenError};
use crate::frame::{Eof, FcFrame, FrameError, MAX_PAYLOAD};
use crate::header::HEADER_LEN as FC_HEADER_LEN;
use crate::wire::{be16, be32, put_be16, put_be32};

mod field {
    use crate::wire::Field;
    pub const PROTOCOL: usize = 0;
    pub const VERSION: usize = 1;
    pub const PROTOCOL_COMPLEMENT: usize = 2;
    pub const VERSION_COMPLEMENT: usize = 3;
    pub const WORD0: Field = 0..4;
    pub const WORD1: Field = 4..8;
    pub const PFLAGS: usize = 8;
    pub const RESERVED: usize = 9;
    pub const PFLAGS_COMPLEMENT: usize = 10;
    pub const RESERVED_COMPLEMENT: usize = 11;
    pub const FLAGS_LEN: Field = 12..14;
    pub const FLAGS_LEN_COMPLEMENT: Field = 14..16;
    pub const TS_SECONDS: Field = 16..20;
    pub const TS_FRACTION: Field = 20..24;
    pub const CRC: Field = 24..28;
}

/// Length of the encapsulation header in bytes.
pub const HEADER_LEN: usize = 28;
/// Length of the SOF word and of the EOF word.
pub const DELIMITER_WORD_LEN: usize = 4;
/// Shortest Frame Length, in words (RFC 3821 §5.6.1: header, delimiters and an FC frame with
/// an empty payload).
pub const MIN_FRAME_WORDS: u16 = 16;
/// Longest Frame Length, in words (a full-size FC frame with a 2112-byte payload).
pub const MAX_FRAME_WORDS: u16 = 544;
/// The version FCIP sends (RFC 3821 §5.6.1).
pub const VERSION_1: u8 = 1;

/// Bits 15-10 of word 3 are Flags; bit 10 (0x04 of byte 12) is CRCV.
const CRCV: u16 = 0x0400;
/// Flags bits other than CRCV: reserved, zero.
const RESERVED_FLAGS: u16 = 0xF800;
/// Bits 9-0 of word 3: Frame Length in words.
const LEN_MASK: u16 = 0x03FF;
/// Reserved is zero, so its complement is all ones.
const RESERVED_COMPLEMENT: u8 = 0xFF;

code_point! {
    /// Protocol# of the encapsulation header (RFC 3643 §3.1). Open: any value is data.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
    pub struct Protocol(pub u8) {
        /// FCIP, RFC 3821.
        FCIP = 0x01 => "FCIP",
        /// iFCP, RFC 4172.
        IFCP = 0x02 => "iFCP",
    }

    /// The protocol's name, or `None` for an unknown number.
    pub const fn name;
}

/// `FCIP`, or `protocol 0x07`.
impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "protocol {:#04x}", self.0),
        }
    }
}

bitflags! {
    /// pFlags, FCIP's protocol-specific flags in word 2 (RFC 3821 §5.6.1). Bits 6-1 are
    /// reserved; they are kept as data (`from_bits_retain`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PFlags: u8 {
        /// Ch: an echoed Special Frame whose fields the acceptor changed.
        const CHANGED = 0x80;
        /// SF: this is an FCIP Special Frame, not an FC frame.
        const SPECIAL_FRAME = 0x01;
    }
}

/// The time stamp of words 4-5: seconds and fraction in SNTP format (RFC 2030). Zero when the
/// sender has no synchronized clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp {
    /// Integer seconds since 1900-01-01.
    pub seconds: u32,
    /// Fraction of a second, in units of 2^-32 s.
    pub fraction: u32,
}

impl Timestamp {
    /// No time stamp.
    pub const ZERO: Timestamp = Timestamp {
        seconds: 0,
        fraction: 0,
    };
}

/// Errors decoding an encapsulation header or an encapsulated frame. Each is an encapsulation
/// error in the sense of RFC 3821 §5.6.2: the byte stream can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncapError {
    /// Too short for the header, or not as long as its Frame Length says.
    #[error(transparent)]
    Len(#[from] LenError),
    /// Bytes 2-3 are not the complements of Protocol# and Version.
    #[error("word 0 {word:08x}: protocol/version complements do not match")]
    ProtocolComplement {
        /// Word 0 as received.
        word: u32,
    },
    /// Word 1 is not a copy of word 0.
    #[error("word 1 {word1:08x} is not a copy of word 0 {word0:08x}")]
    Word1Mismatch {
        /// Word 0.
        word0: u32,
        /// Word 1.
        word1: u32,
    },
    /// Byte 10 is not the complement of pFlags.
    #[error("pFlags {pflags:#04x} with complement {complement:#04x}")]
    PFlagsComplement {
        /// pFlags.
        pflags: u8,
        /// The byte that should be its complement.
        complement: u8,
    },
    /// The reserved byte is not zero, or its complement not 0xFF.
    #[error("reserved byte {reserved:#04x} with complement {complement:#04x}, want 00/ff")]
    Reserved {
        /// Byte 9.
        reserved: u8,
        /// Byte 11.
        complement: u8,
    },
    /// Bytes 14-15 are not the complement of Flags and Frame Length.
    #[error("flags/length {field:04x} with complement {complement:04x}")]
    LengthComplement {
        /// Bytes 12-13.
        field: u16,
        /// Bytes 14-15.
        complement: u16,
    },
    /// Frame Length outside 16..=544 words.
    #[error("frame length {words} words is outside {MIN_FRAME_WORDS}..={MAX_FRAME_WORDS}")]
    BadFrameLength {
        /// Frame Length, in words.
        words: u16,
    },
    /// A reserved Flags bit is set.
    #[error("reserved flag bits set in {field:04x}")]
    ReservedFlags {
        /// Bytes 12-13.
        field: u16,
    },
    /// The CRC field is not zero although CRCV is clear.
    #[error("CRC field {crc:08x} not zero with CRCV clear")]
    CrcWithoutCrcv {
        /// The CRC field.
        crc: u32,
    },
    /// The SOF word is not SOF, SOF, ~SOF, ~SOF with a known SOF code.
    #[error("bad SOF word {word:08x}")]
    BadSof {
        /// The word as received.
        word: u32,
    },
    /// The EOF word is not EOF, EOF, ~EOF, ~EOF with a known EOF code.
    #[error("bad EOF word {word:08x}")]
    BadEof {
        /// The word as received.
        word: u32,
    },
    /// An FCIP Special Frame (pFlags SF) where an FC frame was expected.
    #[error("FCIP Special Frame where an FC frame was expected")]
    SpecialFrame,
}

/// A view of the 28-byte encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EncapHeader<T> {
    /// Wraps a buffer without checks. Accessors panic on a buffer shorter than
    /// [`HEADER_LEN`]: use only on buffers this program built.
    pub const fn new_unchecked(buffer: T) -> EncapHeader<T> {
        EncapHeader { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes (what follows the header is allowed).
    pub fn new_checked(buffer: T) -> Result<EncapHeader<T>, EncapError> {
        LenError::check(Layer::Encapsulation, HEADER_LEN, buffer.as_ref().len())?;
        Ok(EncapHeader { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Protocol#.
    pub fn protocol(&self) -> Protocol {
        Protocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// ~Protocol#, as received.
    pub fn protocol_complement(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL_COMPLEMENT]
    }

    /// ~Version, as received.
    pub fn version_complement(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_COMPLEMENT]
    }

    /// Word 0: Protocol#, Version and their complements.
    pub fn word0(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD0.start)
    }

    /// Word 1, the protocol-specific word.
    pub fn word1(&self) -> u32 {
        be32(self.buffer.as_ref(), field::WORD1.start)
    }

    /// pFlags, reserved bits kept.
    pub fn pflags(&self) -> PFlags {
        PFlags::from_bits_retain(self.buffer.as_ref()[field::PFLAGS])
    }

    /// The reserved byte of word 2.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    /// ~pFlags, as received.
    pub fn pflags_complement(&self) -> u8 {
        self.buffer.as_ref()[field::PFLAGS_COMPLEMENT]
    }

    /// ~Reserved, as received.
    pub fn reserved_complement(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED_COMPLEMENT]
    }

    /// Bytes 12-13: Flags and Frame Length together.
    pub fn flags_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_LEN.start)
    }

    /// Bytes 14-15, the complement of [`Self::flags_len`] as received.
    pub fn flags_len_complement(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_LEN_COMPLEMENT.start)
    }

    /// CRCV: the CRC field is valid.
    pub fn crcv(&self) -> bool {
        self.flags_len() & CRCV != 0
    }

    /// Frame Length, in words.
    pub fn frame_len(&self) -> u16 {
        self.flags_len() & LEN_MASK
    }

    /// Time stamp.
    pub fn timestamp(&self) -> Timestamp {
        let b = self.buffer.as_ref();
        Timestamp {
            seconds: be32(b, field::TS_SECONDS.start),
            fraction: be32(b, field::TS_FRACTION.start),
        }
    }

    /// The CRC field.
    pub fn crc(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CRC.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EncapHeader<T> {
    /// Sets Protocol# and Version and their complements.
    pub fn set_protocol_version(&mut self, protocol: Protocol, version: u8) {
        let b = self.buffer.as_mut();
        b[field::PROTOCOL] = protocol.0;
        b[field::VERSION] = version;
        b[field::PROTOCOL_COMPLEMENT] = !protocol.0;
        b[field::VERSION_COMPLEMENT] = !version;
    }

    /// Sets word 1.
    pub fn set_word1(&mut self, word: u32) {
        put_be32(self.buffer.as_mut(), field::WORD1.start, word);
    }

    /// Sets pFlags, the reserved byte (zero) and their complements.
    pub fn set_pflags(&mut self, pflags: PFlags) {
        let b = self.buffer.as_mut();
        b[field::PFLAGS] = pflags.bits();
        b[field::RESERVED] = 0;
        b[field::PFLAGS_COMPLEMENT] = !pflags.bits();
        b[field::RESERVED_COMPLEMENT] = RESERVED_COMPLEMENT;
    }

    /// Sets Flags (CRCV only; the reserved bits zero) and Frame Length (low 10 bits of
    /// `words`), and their complement.
    pub fn set_flags_len(&mut self, crcv: bool, words: u16) {
        let v = (words & LEN_MASK) | if crcv { CRCV } else { 0 };
        let b = self.buffer.as_mut();
        put_be16(b, field::FLAGS_LEN.start, v);
        put_be16(b, field::FLAGS_LEN_COMPLEMENT.start, !v);
    }

    /// Sets the time stamp.
    pub fn set_timestamp(&mut self, ts: Timestamp) {
        let b = self.buffer.as_mut();
        put_be32(b, field::TS_SECONDS.start, ts.seconds);
        put_be32(b, field::TS_FRACTION.start, ts.fraction);
    }

    /// Sets the CRC field.
    pub fn set_crc(&mut self, crc: u32) {
        put_be32(self.buffer.as_mut(), field::CRC.start, crc);
    }
}

/// An owned, validated encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapHeaderRepr {
    /// Protocol#: [`Protocol::FCIP`] here.
    pub protocol: Protocol,
    /// Version: [`VERSION_1`] for FCIP.
    pub version: u8,
    /// pFlags.
    pub flags: PFlags,
    /// Frame Length in words, header through EOF word: 16..=544 once parsed.
    pub frame_len: u16,
    /// CRCV. FCIP sends it clear.
    pub crcv: bool,
    /// Time stamp.
    pub timestamp: Timestamp,
}

impl EncapHeaderRepr {
    /// The header FCIP puts in front of an FC frame: Protocol FCIP, version 1, no pFlags,
    /// CRCV clear, Frame Length for `total_len` bytes of encapsulated frame.
    pub fn fcip(total_len: usize, timestamp: Timestamp) -> EncapHeaderRepr {
        EncapHeaderRepr {
            protocol: Protocol::FCIP,
            version: VERSION_1,
            flags: PFlags::empty(),
            frame_len: u16::try_from(total_len / 4).unwrap_or(u16::MAX),
            crcv: false,
            timestamp,
        }
    }

    /// Parses and validates a header (RFC 3821 §5.6.1, §5.6.2).
    pub fn parse<T: AsRef<[u8]>>(h: &EncapHeader<T>) -> Result<EncapHeaderRepr, EncapError> {
        // Protocol# and Version are followed by their ones' complements.
        if h.protocol_complement() != !h.protocol().0 || h.version_complement() != !h.version() {
            return Err(EncapError::ProtocolComplement { word: h.word0() });
        }
        // FCIP: the protocol-specific word 1 is an exact copy of word 0.
        if h.word1() != h.word0() {
            return Err(EncapError::Word1Mismatch {
                word0: h.word0(),
                word1: h.word1(),
            });
        }
        if h.pflags_complement() != !h.pflags().bits() {
            return Err(EncapError::PFlagsComplement {
                pflags: h.pflags().bits(),
                complement: h.pflags_complement(),
            });
        }
        // The reserved byte is zero and is followed by its complement.
        if h.reserved() != 0 || h.reserved_complement() != RESERVED_COMPLEMENT {
            return Err(EncapError::Reserved {
                reserved: h.reserved(),
                complement: h.reserved_complement(),
            });
        }
        if h.flags_len_complement() != !h.flags_len() {
            return Err(EncapError::LengthComplement {
                field: h.flags_len(),
                complement: h.flags_len_complement(),
            });
        }
        // A valid header has 15 < Frame Length < 545.
        let words = h.frame_len();
        if !(MIN_FRAME_WORDS..=MAX_FRAME_WORDS).contains(&words) {
            return Err(EncapError::BadFrameLength { words });
        }
        if h.flags_len() & RESERVED_FLAGS != 0 {
            return Err(EncapError::ReservedFlags {
                field: h.flags_len(),
            });
        }
        // With CRCV clear the CRC field is zero.
        if !h.crcv() && h.crc() != 0 {
            return Err(EncapError::CrcWithoutCrcv { crc: h.crc() });
        }
        Ok(EncapHeaderRepr {
            protocol: h.protocol(),
            version: h.version(),
            flags: h.pflags(),
            frame_len: words,
            crcv: h.crcv(),
            timestamp: h.timestamp(),
        })
    }

    /// Bytes of the header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes of the whole encapsulated frame, header through EOF word.
    pub const fn total_len(&self) -> usize {
        self.frame_len as usize * 4
    }

    /// Writes the header: word 1 a copy of word 0, the reserved byte zero, every complement,
    /// and a zero CRC field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut EncapHeader<T>) {
        h.set_protocol_version(self.protocol, self.version);
        let word0 = h.word0();
        h.set_word1(word0);
        h.set_pflags(self.flags);
        h.set_flags_len(self.crcv, self.frame_len);
        h.set_timestamp(self.timestamp);
        h.set_crc(0);
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut EncapHeader::new_unchecked(&mut b[..]));
        b
    }
}

/// `FCIP v1 len=18w`.
impl fmt::Display for EncapHeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} v{} len={}w",
            self.protocol, self.version, self.frame_len
        )?;
        if !self.flags.is_empty() {
            write!(f, " pflags={:#04x}", self.flags.bits())?;
        }
        if self.crcv {
            f.write_str(" crcv")?;
        }
        Ok(())
    }
}

/// The delimiter word of RFC 3643 §3.2: code, code, ~code, ~code.
fn delimiter_word(code: u8) -> [u8; 4] {
    [code, code, !code, !code]
}

/// The code a delimiter word carries, if its bytes are code, code, ~code, ~code.
fn delimiter_code(word: [u8; 4]) -> Option<u8> {
    let [a, b, c, d] = word;
    (a == b && c == !a && d == !a).then_some(a)
}

/// Reads the delimiter word at `at`, if the buffer holds it.
fn word_at(buf: &[u8], at: usize) -> Option<[u8; 4]> {
    buf.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// True when `frame` can be encapsulated: its payload is at most [`MAX_PAYLOAD`] bytes and its
/// SOF and EOF are codes RFC 3643 §3.2 defines. [`emit_encapsulated`] expects such a frame.
pub fn encapsulable(frame: &FcFrame) -> bool {
    frame.payload.len() <= MAX_PAYLOAD && frame.sof.name().is_some() && frame.eof.name().is_some()
}

/// Bytes of `frame` encapsulated: header, SOF word, FC frame with fill and CRC, EOF word.
pub fn encapsulate_len(frame: &FcFrame) -> usize {
    HEADER_LEN + 2 * DELIMITER_WORD_LEN + frame.buffer_len()
}

/// Appends `frame`, encapsulated for FCIP (Protocol FCIP, version 1, CRCV clear), to `buf`.
///
/// The frame must be [`encapsulable`]: a longer payload would not fit Frame Length's 10 bits,
/// and the receiver would lose the stream.
pub fn emit_encapsulated(frame: &FcFrame, timestamp: Timestamp, buf: &mut BytesMut) {
    debug_assert!(encapsulable(frame), "frame cannot be encapsulated: {frame}");
    let total = encapsulate_len(frame);
    buf.reserve(total);
    let header = EncapHeaderRepr::fcip(total, timestamp);
    buf.put_slice(&header.to_bytes());
    buf.put_slice(&delimiter_word(frame.sof.0));
    let parts = frame.encode_parts();
    buf.put_slice(&parts.header);
    buf.put_slice(parts.payload);
    buf.put_slice(parts.trailer());
    buf.put_slice(&delimiter_word(frame.eof.0));
}

/// Bytes before the payload in an encapsulated frame: encapsulation header, SOF word, FC header.
pub const PREFIX_LEN: usize = HEADER_LEN + DELIMITER_WORD_LEN + crate::header::HEADER_LEN;
/// Most bytes after the payload: fill, FC CRC, EOF word.
pub const MAX_SUFFIX_LEN: usize = 3 + crate::frame::CRC_LEN + DELIMITER_WORD_LEN;

/// An encapsulated frame split for a vectored write: the bytes before the payload, the payload
/// as the frame holds it (not copied), and the bytes after it. Made by [`encapsulate_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapParts<'a> {
    /// Encapsulation header, SOF word and FC header.
    pub prefix: [u8; PREFIX_LEN],
    /// The payload.
    pub payload: &'a [u8],
    suffix: [u8; MAX_SUFFIX_LEN],
    suffix_len: usize,
}

impl EncapParts<'_> {
    /// Fill, FC CRC and EOF word.
    pub fn suffix(&self) -> &[u8] {
        &self.suffix[..self.suffix_len]
    }
}

/// `frame` encapsulated as [`emit_encapsulated`] writes it, in three parts for a vectored
/// write that leaves the payload where it is.
pub fn encapsulate_parts(frame: &FcFrame, timestamp: Timestamp) -> EncapParts<'_> {
    debug_assert!(encapsulable(frame), "frame cannot be encapsulated: {frame}");
    let total = encapsulate_len(frame);
    let parts = frame.encode_parts();
    let mut prefix = [0u8; PREFIX_LEN];
    prefix[..HEADER_LEN].copy_from_slice(&EncapHeaderRepr::fcip(total, timestamp).to_bytes());
    prefix[HEADER_LEN..HEADER_LEN + DELIMITER_WORD_LEN]
        .copy_from_slice(&delimiter_word(frame.sof.0));
    prefix[HEADER_LEN + DELIMITER_WORD_LEN..].copy_from_slice(&parts.header);
    let trailer = parts.trailer();
    let mut suffix = [0u8; MAX_SUFFIX_LEN];
    suffix[..trailer.len()].copy_from_slice(trailer);
    suffix[trailer.len()..trailer.len() + DELIMITER_WORD_LEN]
        .copy_from_slice(&delimiter_word(frame.eof.0));
    EncapParts {
        prefix,
        payload: parts.payload,
        suffix,
        suffix_len: trailer.len() + DELIMITER_WORD_LEN,
    }
}

/// The SOF and EOF of one whole encapsulated frame, `frame` being exactly its Frame Length
/// words, header first: the SOF word right after the header and the EOF word in the last four
/// bytes must each be code, code, ~code, ~code with a code RFC 3643 §3.2 defines.
///
/// A stream receiver uses this to check that a header's Frame Length lands on an EOF word
/// before it trusts the header (RFC 3821 §5.6.2); [`parse_encapsulated`] calls it too.
pub fn parse_delimiters(frame: &[u8]) -> Result<(crate::frame::Sof, Eof), EncapError> {
    let sof_word = word_at(frame, HEADER_LEN).ok_or(LenError {
        layer: Layer::Encapsulation,
        required: HEADER_LEN + DELIMITER_WORD_LEN,
        actual: frame.len(),
    })?;
    let sof = delimiter_code(sof_word)
        .map(crate::frame::Sof)
        .filter(|s| s.name().is_some())
        .ok_or(EncapError::BadSof {
            word: u32::from_be_bytes(sof_word),
        })?;
    let eof_word = frame
        .len()
        .checked_sub(DELIMITER_WORD_LEN)
        .and_then(|at| word_at(frame, at))
        .unwrap_or_default();
    let eof = delimiter_code(eof_word)
        .map(Eof)
        .filter(|e| e.name().is_some())
        .ok_or(EncapError::BadEof {
            word: u32::from_be_bytes(eof_word),
        })?;
    Ok((sof, eof))
}

/// Parses one whole encapsulated frame (exactly Frame Length words).
///
/// The outer error is an encapsulation error: the header or a delimiter word is wrong, so the
/// stream the bytes came from can't be trusted. The inner result is the FC frame, which can be
/// framed right and still fail to decode (bad FC CRC, bad fill count): that is counted, and the
/// stream goes on. The payload shares `bytes`' memory.
pub fn parse_encapsulated(
    bytes: Bytes,
) -> Result<(EncapHeaderRepr, Result<FcFrame, FrameError>), EncapError> {
    let header = EncapHeaderRepr::parse(&EncapHeader::new_checked(&bytes[..])?)?;
    if header.flags.contains(PFlags::SPECIAL_FRAME) {
        return Err(EncapError::SpecialFrame);
    }
    let total = header.total_len();
    if bytes.len() != total {
        return Err(LenError {
            layer: Layer::Encapsulation,
            required: total,
            actual: bytes.len(),
        }
        .into());
    }
    let (sof, eof) = parse_delimiters(&bytes)?;
    let sof_at = HEADER_LEN;
    let eof_at = total - DELIMITER_WORD_LEN; // total >= 64: Frame Length was checked
    let fc = bytes.slice(sof_at + DELIMITER_WORD_LEN..eof_at);
    debug_assert!(fc.len() >= FC_HEADER_LEN);
    Ok((header, FcFrame::parse(sof, fc, eof)))
}

/// Payloads shorter than this are copied beside their prefix and suffix by [`Gather`]; longer
/// ones reach the kernel as slices of their own, so the data path copies no payload in user
/// space.
const COPY_BELOW: usize = 512;
/// Slices per `writev` at most (IOV_MAX on Linux).
pub const MAX_IOVECS: usize = 1024;

/// A batch of encapsulated frames laid out for vectored writes (`writev`): headers,
/// delimiters, CRCs and short payloads in one buffer, long payloads where their frames hold
/// them. Building it is all this does; the caller writes [`Gather::slices`].
#[derive(Debug, Default)]
pub struct Gather {
    frames: Vec<FcFrame>,
    small: Vec<u8>,
    segments: Vec<Segment>,
    bytes: usize,
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    /// `small[from..to]`.
    Small(usize, usize),
    /// The payload of `frames[i]`.
    Payload(usize),
}

impl Gather {
    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.small.clear();
        self.segments.clear();
        self.bytes = 0;
    }

    /// True when no frame is in the batch.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames in the batch.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Bytes the batch writes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `frame`, encapsulated with `timestamp`. The frame must be [`encapsulable`].
    pub fn push(&mut self, frame: FcFrame, timestamp: Timestamp) {
        let i = self.frames.len();
        let parts = encapsulate_parts(&frame, timestamp);
        self.bytes += parts.prefix.len() + parts.payload.len() + parts.suffix().len();
        let start = self.small.len();
        self.small.extend_from_slice(&parts.prefix);
        if parts.payload.len() < COPY_BELOW {
            self.small.extend_from_slice(parts.payload);
            self.small.extend_from_slice(parts.suffix());
            self.small_segment(start);
        } else {
            self.small_segment(start);
            self.segments.push(Segment::Payload(i));
            let start = self.small.len();
            self.small.extend_from_slice(parts.suffix());
            self.small_segment(start);
        }
        self.frames.push(frame);
    }

    /// Records `small[start..]` as a segment, merged into the previous one when they touch.
    fn small_segment(&mut self, start: usize) {
        let end = self.small.len();
        if let Some(Segment::Small(_, to)) = self.segments.last_mut() {
            if *to == start {
                *to = end;
                return;
            }
        }
        self.segments.push(Segment::Small(start, end));
    }

    /// The batch's bytes, in order, as slices for `write_vectored` (at most [`MAX_IOVECS`]
    /// a call).
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        self.segments
            .iter()
            .map(|s| match *s {
                Segment::Small(from, to) => IoSlice::new(self.small.get(from..to).unwrap_or(&[])),
                Segment::Payload(i) => {
                    IoSlice::new(self.frames.get(i).map_or(&[][..], |f| &f.payload[..]))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::addr::FcId;
    use crate::frame::Sof;
    use crate::header::{FcType, FrameHeaderRepr, RCtl};

    /// The ECHO request of `frame.rs`'s tests (5-byte payload, 3 fill bytes) encapsulated:
    /// 72 bytes, Frame Length 18, time stamp e8b01234.80000000.
    static ECHO_ENCAP: [u8; 72] = hex!(
        "0101fefe 0101fefe 0000ffff 0012ffed e8b01234 80000000 00000000"
        "2e2ed1d1"
        "22 010200 00 010100 01 290003 00 00 0000 0042 ffff 00000000"
        "10000000 ab 000000"
        "e7551401"
        "4242bdbd"
    );

    const TS: Timestamp = Timestamp {
        seconds: 0xe8b0_1234,
        fraction: 0x8000_0000,
    };

    fn echo_frame() -> FcFrame {
        let mut f = FcFrame::single(
            FrameHeaderRepr::request(
                RCtl::ELS_REQUEST,
                FcType::ELS,
                FcId::from_parts(1, 2, 0),
                FcId::from_parts(1, 1, 0),
                0x42,
            ),
            Bytes::from_static(&hex!("10000000 ab")),
        );
        f.header.f_ctl = f.header.f_ctl.with_fill_bytes(3);
        f
    }

    fn echo_header() -> EncapHeaderRepr {
        EncapHeaderRepr {
            protocol: Protocol::FCIP,
            version: 1,
            flags: PFlags::empty(),
            frame_len: 18,
            crcv: false,
            timestamp: TS,
        }
    }

    /// `ECHO_ENCAP` with `f` applied.
    fn patched(f: impl FnOnce(&mut [u8; 72])) -> Bytes {
        let mut b = ECHO_ENCAP;
        f(&mut b);
        Bytes::copy_from_slice(&b)
    }

    fn outer_err(bytes: Bytes) -> EncapError {
        match parse_encapsulated(bytes) {
            Err(e) => e,
            Ok(ok) => panic!("expected an encapsulation error, got {ok:?}"),
        }
    }

    #[test]
    fn test_parts_are_the_emitted_bytes() {
        for len in [0usize, 1, 2, 3, 4, 5, 64, 2111, 2112] {
            let mut f = echo_frame();
            f.payload = Bytes::from(vec![0xA5; len]);
            let ts = Timestamp {
                seconds: 7,
                fraction: 9,
            };
            let mut whole = BytesMut::new();
            emit_encapsulated(&f, ts, &mut whole);
            let p = encapsulate_parts(&f, ts);
            let joined = [&p.prefix[..], p.payload, p.suffix()].concat();
            assert_eq!(joined, whole, "payload {len}");
        }
    }

    #[test]
    fn test_parse_header() {
        let v = EncapHeader::new_checked(&ECHO_ENCAP[..]).unwrap();
        assert_eq!(v.protocol(), Protocol::FCIP);
        assert_eq!(v.version(), 1);
        assert_eq!(v.word1(), 0x0101_fefe);
        assert_eq!(v.frame_len(), 18);
        assert!(!v.crcv());
        assert_eq!(v.timestamp(), TS);
        assert_eq!(EncapHeaderRepr::parse(&v), Ok(echo_header()));
    }

    #[test]
    fn test_emit_header() {
        assert_eq!(echo_header().to_bytes(), ECHO_ENCAP[..HEADER_LEN]);
        assert_eq!(echo_header().buffer_len(), HEADER_LEN);
        assert_eq!(echo_header().total_len(), 72);
    }

    #[test]
    fn test_parse_encapsulated() {
        let (h, f) = parse_encapsulated(Bytes::from_static(&ECHO_ENCAP)).unwrap();
        assert_eq!(h, echo_header());
        let f = f.unwrap();
        assert_eq!(f, echo_frame());
        assert_eq!((f.sof, f.eof), (Sof::I3, Eof::T));
        assert_eq!(&f.payload[..], &hex!("10000000 ab"));
    }

    #[test]
    fn test_emit_encapsulated() {
        let f = echo_frame();
        assert_eq!(encapsulate_len(&f), 72);
        let mut buf = BytesMut::from(&b"xy"[..]);
        emit_encapsulated(&f, TS, &mut buf);
        assert_eq!(&buf[..2], b"xy");
        assert_eq!(&buf[2..], &ECHO_ENCAP[..]);
    }

    #[test]
    fn test_display() {
        assert_eq!(echo_header().to_string(), "FCIP v1 len=18w");
        let mut h = echo_header();
        h.protocol = Protocol(7);
        h.flags = PFlags::CHANGED;
        h.crcv = true;
        assert_eq!(h.to_string(), "protocol 0x07 v1 len=18w pflags=0x80 crcv");
        assert_eq!(Protocol::IFCP.name(), Some("iFCP"));
    }

    #[test]
    fn test_bad_fc_crc_is_inner_error() {
        let (h, f) = parse_encapsulated(patched(|b| b[60] ^= 0x01)).unwrap();
        assert_eq!(h, echo_header());
        assert!(matches!(f, Err(FrameError::BadCrc { .. })));
    }

    #[test]
    fn test_err_protocol_complement() {
        assert_eq!(
            outer_err(patched(|b| b[2] = 0xff)),
            EncapError::ProtocolComplement { word: 0x0101_fffe }
        );
        assert_eq!(
            outer_err(patched(|b| b[3] = 0xff)),
            EncapError::ProtocolComplement { word: 0x0101_feff }
        );
    }

    #[test]
    fn test_err_word1() {
        assert_eq!(
            outer_err(patched(|b| b[4] = 0x02)),
            EncapError::Word1Mismatch {
                word0: 0x0101_fefe,
                word1: 0x0201_fefe
            }
        );
    }

    #[test]
    fn test_err_pflags_complement() {
        assert_eq!(
            outer_err(patched(|b| b[8] = 0x80)),
            EncapError::PFlagsComplement {
                pflags: 0x80,
                complement: 0xff
            }
        );
    }

    #[test]
    fn test_err_reserved() {
        assert_eq!(
            outer_err(patched(|b| {
                b[9] = 0x01;
                b[11] = 0xfe;
            })),
            EncapError::Reserved {
                reserved: 0x01,
                complement: 0xfe
            }
        );
        assert_eq!(
            outer_err(patched(|b| b[11] = 0x00)),
            EncapError::Reserved {
                reserved: 0x00,
                complement: 0x00
            }
        );
    }

    #[test]
    fn test_err_length_complement() {
        assert_eq!(
            outer_err(patched(|b| b[15] = 0xee)),
            EncapError::LengthComplement {
                field: 0x0012,
                complement: 0xffee
            }
        );
    }

    #[test]
    fn test_err_frame_length() {
        for words in [0u16, 15, 545, 0x3ff] {
            let bytes = patched(|b| {
                b[12..14].copy_from_slice(&words.to_be_bytes());
                b[14..16].copy_from_slice(&(!words).to_be_bytes());
            });
            assert_eq!(outer_err(bytes), EncapError::BadFrameLength { words });
        }
    }

    #[test]
    fn test_err_reserved_flags() {
        let bytes = patched(|b| {
            b[12] = 0x80;
            b[14] = 0x7f;
        });
        assert_eq!(
            outer_err(bytes),
            EncapError::ReservedFlags { field: 0x8012 }
        );
    }

    #[test]
    fn test_err_crc_without_crcv() {
        assert_eq!(
            outer_err(patched(|b| b[27] = 0x01)),
            EncapError::CrcWithoutCrcv { crc: 1 }
        );
        // With CRCV set the CRC field is not checked (see the module docs).
        let (h, f) = parse_encapsulated(patched(|b| {
            b[12] = 0x04;
            b[14] = 0xfb;
            b[27] = 0x01;
        }))
        .unwrap();
        assert!(h.crcv);
        assert!(f.is_ok());
    }

    #[test]
    fn test_err_sof() {
        // Complement wrong.
        assert_eq!(
            outer_err(patched(|b| b[30] = 0xd0)),
            EncapError::BadSof { word: 0x2e2e_d0d1 }
        );
        // Copies differ.
        assert_eq!(
            outer_err(patched(|b| b[29] = 0x36)),
            EncapError::BadSof { word: 0x2e36_d1d1 }
        );
        // Consistent but not an SOF code.
        assert_eq!(
            outer_err(patched(|b| b[28..32].copy_from_slice(&hex!("1111eeee")))),
            EncapError::BadSof { word: 0x1111_eeee }
        );
    }

    #[test]
    fn test_err_eof() {
        assert_eq!(
            outer_err(patched(|b| b[71] = 0xbc)),
            EncapError::BadEof { word: 0x4242_bdbc }
        );
        assert_eq!(
            outer_err(patched(|b| b[68..72].copy_from_slice(&hex!("4343bcbc")))),
            EncapError::BadEof { word: 0x4343_bcbc }
        );
    }

    #[test]
    fn test_parse_delimiters() {
        assert_eq!(parse_delimiters(&ECHO_ENCAP), Ok((Sof::I3, Eof::T)));
        assert!(matches!(
            parse_delimiters(&ECHO_ENCAP[..31]),
            Err(EncapError::Len(LenError { actual: 31, .. }))
        ));
        // The EOF word is the last four bytes, wherever that is.
        assert_eq!(
            parse_delimiters(&ECHO_ENCAP[..32]),
            Err(EncapError::BadEof { word: 0x2e2e_d1d1 })
        );
    }

    #[test]
    fn test_err_special_frame() {
        assert_eq!(
            outer_err(patched(|b| {
                b[8] = 0x01;
                b[10] = 0xfe;
            })),
            EncapError::SpecialFrame
        );
    }

    #[test]
    fn test_err_len() {
        assert_eq!(
            EncapHeader::new_checked(&ECHO_ENCAP[..27]),
            Err(EncapError::Len(LenError {
                layer: Layer::Encapsulation,
                required: 28,
                actual: 27
            }))
        );
        // Longer than Frame Length says.
        let mut long = ECHO_ENCAP.to_vec();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(
            outer_err(Bytes::from(long)),
            EncapError::Len(LenError {
                layer: Layer::Encapsulation,
                required: 72,
                actual: 76
            })
        );
    }

    #[test]
    fn test_truncation() {
        for len in 0..ECHO_ENCAP.len() {
            let r = parse_encapsulated(Bytes::copy_from_slice(&ECHO_ENCAP[..len]));
            assert!(r.is_err(), "len {len}");
        }
    }

    #[test]
    fn test_encapsulable() {
        let mut f = echo_frame();
        assert!(encapsulable(&f));
        f.sof = Sof(0x00);
        assert!(!encapsulable(&f));
        let mut f = echo_frame();
        f.eof = Eof(0x99);
        assert!(!encapsulable(&f));
        let mut f = echo_frame();
        f.payload = Bytes::from(vec![0; MAX_PAYLOAD + 1]);
        assert!(!encapsulable(&f));
        f.payload.truncate(MAX_PAYLOAD);
        assert!(encapsulable(&f));
        assert_eq!(encapsulate_len(&f), usize::from(MAX_FRAME_WORDS) * 4);
    }

    const SOFS: [Sof; 8] = [
        Sof::F,
        Sof::I4,
        Sof::I2,
        Sof::I3,
        Sof::N4,
        Sof::N2,
        Sof::N3,
        Sof::C4,
    ];
    const EOFS: [Eof; 8] = [
        Eof::N,
        Eof::T,
        Eof::RT,
        Eof::DT,
        Eof::NI,
        Eof::DTI,
        Eof::RTI,
        Eof::A,
    ];

    prop_compose! {
        fn arb_repr()(
            protocol: u8, version: u8, flags: u8,
            frame_len in MIN_FRAME_WORDS..=MAX_FRAME_WORDS,
            crcv: bool, seconds: u32, fraction: u32,
        ) -> EncapHeaderRepr {
            EncapHeaderRepr {
                protocol: Protocol(protocol),
                version,
                flags: PFlags::from_bits_retain(flags),
                frame_len,
                crcv,
                timestamp: Timestamp { seconds, fraction },
            }
        }
    }

    proptest! {
        #[test]
        fn prop_header_round_trip(r in arb_repr()) {
            let b = r.to_bytes();
            prop_assert_eq!(EncapHeaderRepr::parse(&EncapHeader::new_checked(&b[..]).unwrap()), Ok(r));
        }

        #[test]
        fn prop_frame_round_trip(
            h in crate::header::tests::arb_header(),
            payload in proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
            sof_i in 0usize..8, eof_i in 0usize..8,
            seconds: u32, fraction: u32,
        ) {
            let mut f = FcFrame::new(SOFS[sof_i], h, Bytes::from(payload), EOFS[eof_i]);
            f.header.f_ctl = f.header.f_ctl.with_fill_bytes(f.fill_len());
            let ts = Timestamp { seconds, fraction };
            let mut buf = BytesMut::new();
            emit_encapsulated(&f, ts, &mut buf);
            prop_assert_eq!(buf.len(), encapsulate_len(&f));
            let (h, parsed) = parse_encapsulated(buf.freeze()).unwrap();
            prop_assert_eq!(h, EncapHeaderRepr::fcip(encapsulate_len(&f), ts));
            prop_assert_eq!(parsed, Ok(f));
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2300)) {
            let _ = parse_encapsulated(Bytes::from(bytes));
        }

        #[test]
        fn prop_arbitrary_body_never_panics(
            words in MIN_FRAME_WORDS..=MAX_FRAME_WORDS,
            body in proptest::collection::vec(any::<u8>(), 0..2200),
        ) {
            // A valid header in front of arbitrary bytes reaches the delimiter and FC checks.
            let mut b = EncapHeaderRepr::fcip(usize::from(words) * 4, Timestamp::ZERO).to_bytes().to_vec();
            b.extend_from_slice(&body);
            b.resize(usize::from(words) * 4, 0);
            let _ = parse_encapsulated(Bytes::from(b));
        }
    }
}
