//! Whole FC-2 frames: delimiters, payload with fill bytes, and the FC CRC (FC-FS-4 §5, §9).
//!
//! ```text
//! +-----+------------------+---------------------------+------+-----+
//! | SOF | header, 24 bytes | payload 0..2112 + fill 0-3 | CRC  | EOF |
//! +-----+------------------+---------------------------+------+-----+
//!         \_______________ covered by the CRC ________/
//! ```
//!
//! The CRC is the CRC-32 of IEEE 802.3 over header, payload and fill, sent in the byte order of an
//! Ethernet FCS: a CRC of `0x97cfe7f0` goes on the wire as `f0 e7 cf 97` (PROTOCOLS.md; Linux
//! `fc_frame_crc_check`, Wireshark `crc32_802_tvb`). SOF and EOF are one-byte codes here (the
//! form FCIP carries, RFC 3643 §3.2); [`Sof::ordered_set`] and [`Eof::ordered_set`] give the 8b/10b
//! ordered sets that pcap link type 225 records.

use core::fmt;

use bytes::{Buf, Bytes};

use crate::error::{Layer, LenError};
use crate::header::{FrameHeader, FrameHeaderRepr, HEADER_LEN};

/// Largest payload an FC frame carries (FC-FS-4 §9.1).
pub const MAX_PAYLOAD: usize = 2112;
/// Length of the FC CRC.
pub const CRC_LEN: usize = 4;
/// Shortest frame: header and CRC, empty payload.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + CRC_LEN;
/// Longest frame: header, 2112-byte payload, CRC.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD + CRC_LEN;
/// Length of one ordered set (SOF or EOF) in a delimited frame.
pub const ORDERED_SET_LEN: usize = 4;

/// Errors decoding a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than header + CRC (or than the delimiters need).
    #[error(transparent)]
    Len(#[from] LenError),
    /// Longer than header + 2112-byte payload + CRC.
    #[error("FC frame of {len} bytes is longer than the maximum {MAX_FRAME_LEN}")]
    TooLong {
        /// Bytes received.
        len: usize,
    },
    /// FC frames are whole transmission words.
    #[error("FC frame of {len} bytes is not a multiple of 4")]
    NotWordAligned {
        /// Bytes received.
        len: usize,
    },
    /// F_CTL claims more fill bytes than the payload holds.
    #[error("F_CTL claims {fill} fill bytes but the payload holds {payload_len}")]
    FillExceedsPayload {
        /// Fill bytes claimed.
        fill: usize,
        /// Payload bytes present, fill included.
        payload_len: usize,
    },
    /// The CRC in the frame does not match its contents.
    #[error("FC CRC mismatch: frame carries {received:08x}, contents give {computed:08x}")]
    BadCrc {
        /// CRC-32 carried by the frame.
        received: u32,
        /// CRC-32 of the header, payload and fill received.
        computed: u32,
    },
    /// A SOF ordered set that is not one of FC-FS-4's.
    #[error("unknown SOF ordered set {0:08x}")]
    UnknownSof(u32),
    /// An EOF ordered set that is not one of FC-FS-4's.
    #[error("unknown EOF ordered set {0:08x}")]
    UnknownEof(u32),
}

/// Start-of-frame delimiter, as the one-byte code of RFC 3643 §3.2. Open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sof(pub u8);

impl Sof {
    /// SOFf: class F (switch-to-switch, SW_ILS).
    pub const F: Sof = Sof(0x28);
    /// SOFi4: initiate class 4.
    pub const I4: Sof = Sof(0x29);
    /// SOFi2: initiate class 2.
    pub const I2: Sof = Sof(0x2D);
    /// SOFi3: initiate class 3, the first frame of a sequence.
    pub const I3: Sof = Sof(0x2E);
    /// SOFn4: normal class 4.
    pub const N4: Sof = Sof(0x31);
    /// SOFn2: normal class 2.
    pub const N2: Sof = Sof(0x35);
    /// SOFn3: normal class 3, every frame of a sequence after the first.
    pub const N3: Sof = Sof(0x36);
    /// SOFc4: connect class 4.
    pub const C4: Sof = Sof(0x39);

    const TABLE: [(Sof, &'static str, u32); 8] = [
        (Sof::F, "SOFf", 0xBCB5_5858),
        (Sof::I4, "SOFi4", 0xBCB5_5959),
        (Sof::I2, "SOFi2", 0xBCB5_5555),
        (Sof::I3, "SOFi3", 0xBCB5_5656),
        (Sof::N4, "SOFn4", 0xBCB5_3939),
        (Sof::N2, "SOFn2", 0xBCB5_3535),
        (Sof::N3, "SOFn3", 0xBCB5_3636),
        (Sof::C4, "SOFc4", 0xBCB5_1919),
    ];

    /// The delimiter's name, for known codes.
    pub fn name(self) -> Option<&'static str> {
        Self::TABLE.iter().find(|e| e.0 == self).map(|e| e.1)
    }

    /// The FC-FS-4 ordered set (K28.5 D21.5 Dx.y Dx.y as a big-endian word); `None` for a code
    /// that is not a delimiter.
    pub fn ordered_set(self) -> Option<u32> {
        Self::TABLE.iter().find(|e| e.0 == self).map(|e| e.2)
    }

    /// The delimiter an ordered set encodes.
    pub fn from_ordered_set(os: u32) -> Option<Sof> {
        Self::TABLE.iter().find(|e| e.2 == os).map(|e| e.0)
    }

    /// True for the SOFs that begin a sequence (SOFi*), and for SOFf which has no other form.
    pub fn is_initiate(self) -> bool {
        matches!(self, Sof::I2 | Sof::I3 | Sof::I4 | Sof::F)
    }
}

impl fmt::Display for Sof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "SOF {:#04x}", self.0),
        }
    }
}

/// End-of-frame delimiter, as the one-byte code of RFC 3643 §3.2. Open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eof(pub u8);

impl Eof {
    /// EOFn: normal, more frames of the sequence follow.
    pub const N: Eof = Eof(0x41);
    /// EOFt: terminate, last frame of the sequence.
    pub const T: Eof = Eof(0x42);
    /// EOFrt: remove-terminate (class 4).
    pub const RT: Eof = Eof(0x44);
    /// EOFdt: disconnect-terminate.
    pub const DT: Eof = Eof(0x46);
    /// EOFni: normal-invalid.
    pub const NI: Eof = Eof(0x49);
    /// EOFdti: disconnect-terminate-invalid.
    pub const DTI: Eof = Eof(0x4E);
    /// EOFrti: remove-terminate-invalid.
    pub const RTI: Eof = Eof(0x4F);
    /// EOFa: abort.
    pub const A: Eof = Eof(0x50);

    /// (code, name, ordered set after negative running disparity, after positive).
    const TABLE: [(Eof, &'static str, u32, u32); 8] = [
        (Eof::N, "EOFn", 0xBC95_D5D5, 0xBCB5_D5D5),
        (Eof::T, "EOFt", 0xBC95_7575, 0xBCB5_7575),
        (Eof::RT, "EOFrt", 0xBC95_9999, 0xBCB5_9999),
        (Eof::DT, "EOFdt", 0xBC95_9595, 0xBCB5_9595),
        (Eof::NI, "EOFni", 0xBC8A_D5D5, 0xBCAA_D5D5),
        (Eof::DTI, "EOFdti", 0xBC8A_9595, 0xBCAA_9595),
        (Eof::RTI, "EOFrti", 0xBC8A_9999, 0xBCAA_9999),
        (Eof::A, "EOFa", 0xBC95_F5F5, 0xBCB5_F5F5),
    ];

    /// The delimiter's name, for known codes.
    pub fn name(self) -> Option<&'static str> {
        Self::TABLE.iter().find(|e| e.0 == self).map(|e| e.1)
    }

    /// The ordered set as sent after negative running disparity (the form a capture records
    /// here); `None` for a code that is not a delimiter.
    pub fn ordered_set(self) -> Option<u32> {
        Self::TABLE.iter().find(|e| e.0 == self).map(|e| e.2)
    }

    /// The delimiter an ordered set of either running disparity encodes.
    pub fn from_ordered_set(os: u32) -> Option<Eof> {
        Self::TABLE
            .iter()
            .find(|e| e.2 == os || e.3 == os)
            .map(|e| e.0)
    }

    /// True for the EOFs that end a sequence (EOFt, EOFrt, EOFdt).
    pub fn is_terminate(self) -> bool {
        matches!(self, Eof::T | Eof::RT | Eof::DT)
    }
}

impl fmt::Display for Eof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "EOF {:#04x}", self.0),
        }
    }
}

/// The FC CRC of `data` (header, payload and fill): IEEE 802.3 CRC-32, computed with the
/// SIMD-accelerated `crc32fast` (PCLMULQDQ on x86-64, PMULL on aarch64).
#[inline]
pub fn fc_crc(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A view of a frame without delimiters: header, payload, fill and CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks. Accessors panic on a buffer shorter than
    /// [`MIN_FRAME_LEN`] or with more fill than payload: use only on buffers this program built.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after checking its length (28..=2140 bytes, whole words) and its fill
    /// count. The CRC is not checked here: see [`Frame::check_crc`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, FrameError> {
        let len = buffer.as_ref().len();
        LenError::check(Layer::Frame, MIN_FRAME_LEN, len)?;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong { len });
        }
        // FC-FS-4 §9.1: a frame is a whole number of transmission words; fill bytes pad the
        // payload to a word boundary.
        if len % 4 != 0 {
            return Err(FrameError::NotWordAligned { len });
        }
        let frame = Frame { buffer };
        let fill = frame.header().f_ctl().fill_bytes();
        let payload_len = len - MIN_FRAME_LEN;
        if fill > payload_len {
            return Err(FrameError::FillExceedsPayload { fill, payload_len });
        }
        Ok(frame)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The frame header.
    #[inline]
    pub fn header(&self) -> FrameHeader<&[u8]> {
        FrameHeader::new_unchecked(&self.buffer.as_ref()[..HEADER_LEN])
    }

    /// The payload range inside the buffer, without fill bytes.
    #[inline]
    fn payload_range(&self) -> core::ops::Range<usize> {
        let end = self.buffer.as_ref().len() - CRC_LEN;
        HEADER_LEN..end - self.header().f_ctl().fill_bytes()
    }

    /// The payload, without fill bytes.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_range()]
    }

    /// The CRC the frame carries.
    #[inline]
    pub fn crc(&self) -> u32 {
        let b = self.buffer.as_ref();
        let at = b.len() - CRC_LEN;
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The CRC of the header, payload and fill.
    #[inline]
    pub fn compute_crc(&self) -> u32 {
        let b = self.buffer.as_ref();
        fc_crc(&b[..b.len() - CRC_LEN])
    }

    /// Checks the CRC.
    #[inline]
    pub fn check_crc(&self) -> Result<(), FrameError> {
        let (received, computed) = (self.crc(), self.compute_crc());
        if received == computed {
            Ok(())
        } else {
            Err(FrameError::BadCrc { received, computed })
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Computes the CRC over header, payload and fill and writes it at the end.
    pub fn fill_crc(&mut self) {
        let crc = self.compute_crc();
        let b = self.buffer.as_mut();
        let at = b.len() - CRC_LEN;
        b[at..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// An owned frame: delimiters, header and payload (fill and CRC are computed on emit and
/// checked on parse). The payload is `Bytes`, cut from the received buffer without a copy.
///
/// A parsed frame remembers the CRC it was checked against, with the header bytes and the
/// payload it covered: emitting the frame unchanged (a switch forwarding it) reuses that CRC
/// instead of computing it again. Any change to the header or the payload makes emit compute
/// it afresh. Equality ignores this memory.
#[derive(Clone)]
pub struct FcFrame {
    /// Start-of-frame delimiter.
    pub sof: Sof,
    /// Frame header. Its fill count is rewritten on emit to match the payload.
    pub header: FrameHeaderRepr,
    /// Payload, at most [`MAX_PAYLOAD`] bytes, without fill.
    pub payload: Bytes,
    /// End-of-frame delimiter.
    pub eof: Eof,
    checked: Option<Checked>,
}

/// The CRC a frame was received with, and what it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checked {
    crc: u32,
    header: [u8; HEADER_LEN],
    /// Address and length of the payload: `Bytes` are immutable, so the same slice of memory
    /// is the same content.
    payload: (usize, usize),
}

impl PartialEq for FcFrame {
    fn eq(&self, other: &FcFrame) -> bool {
        self.sof == other.sof
            && self.header == other.header
            && self.payload == other.payload
            && self.eof == other.eof
    }
}

impl Eq for FcFrame {}

impl fmt::Debug for FcFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcFrame")
            .field("sof", &self.sof)
            .field("header", &self.header)
            .field("payload", &self.payload)
            .field("eof", &self.eof)
            .finish()
    }
}

impl FcFrame {
    /// A frame of one sequence that is a single frame (SOFi3 ... EOFt, class 3).
    pub fn single(header: FrameHeaderRepr, payload: impl Into<Bytes>) -> FcFrame {
        FcFrame::new(Sof::I3, header, payload.into(), Eof::T)
    }

    /// A frame of these parts.
    pub const fn new(sof: Sof, header: FrameHeaderRepr, payload: Bytes, eof: Eof) -> FcFrame {
        FcFrame {
            sof,
            header,
            payload,
            eof,
            checked: None,
        }
    }

    /// Parses a frame (header through CRC) whose delimiters came separately, as in FCIP, and
    /// checks its CRC. The payload shares `bytes`' memory.
    pub fn parse(sof: Sof, bytes: Bytes, eof: Eof) -> Result<FcFrame, FrameError> {
        let frame = Frame::new_checked(&bytes[..])?;
        frame.check_crc()?;
        let header = FrameHeaderRepr::parse(&frame.header());
        let range = frame.payload_range();
        let crc = frame.crc();
        let mut head = [0u8; HEADER_LEN];
        // Invariant: new_checked guarantees at least a header's worth of bytes.
        head.copy_from_slice(&bytes[..HEADER_LEN]);
        // The frame is re-emitted with zero fill bytes: the received CRC still holds only when
        // the fill bytes it covered were zero too.
        let fill_is_zero = bytes
            .get(range.end..bytes.len().saturating_sub(CRC_LEN))
            .is_some_and(|fill| fill.iter().all(|&b| b == 0));
        // Cut the payload out of the buffer we own: no new reference count, no copy.
        let mut payload = bytes;
        payload.truncate(range.end);
        payload.advance(range.start);
        let checked = fill_is_zero.then_some(Checked {
            crc,
            header: head,
            payload: (payload.as_ptr() as usize, payload.len()),
        });
        Ok(FcFrame {
            sof,
            header,
            payload,
            eof,
            checked,
        })
    }

    /// Parses a frame with SOF and EOF ordered sets around it (pcap link type 225).
    pub fn parse_delimited(bytes: Bytes) -> Result<FcFrame, FrameError> {
        let len = bytes.len();
        LenError::check(
            Layer::DelimitedFrame,
            MIN_FRAME_LEN + 2 * ORDERED_SET_LEN,
            len,
        )?;
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let (sof_os, eof_os) = (word(0), word(len - ORDERED_SET_LEN));
        let sof = Sof::from_ordered_set(sof_os).ok_or(FrameError::UnknownSof(sof_os))?;
        let eof = Eof::from_ordered_set(eof_os).ok_or(FrameError::UnknownEof(eof_os))?;
        Self::parse(
            sof,
            bytes.slice(ORDERED_SET_LEN..len - ORDERED_SET_LEN),
            eof,
        )
    }

    /// Fill bytes the payload needs to end on a word boundary.
    pub fn fill_len(&self) -> usize {
        (4 - self.payload.len() % 4) % 4
    }

    /// Bytes of header, payload, fill and CRC.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len() + self.fill_len() + CRC_LEN
    }

    /// Encodes the frame for a vectored write without copying the payload: the header bytes
    /// (fill count set from the payload), the payload, and a trailer of fill and CRC.
    pub fn encode_parts(&self) -> FrameParts<'_> {
        let fill = self.fill_len();
        let mut header = self.header;
        header.f_ctl = header.f_ctl.with_fill_bytes(fill);
        let head = header.to_bytes();
        let crc = match self.checked {
            // Unchanged since it was received and checked: its CRC still holds.
            Some(c)
                if c.header == head
                    && c.payload == (self.payload.as_ptr() as usize, self.payload.len()) =>
            {
                c.crc
            }
            _ => {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&head);
                crc.update(&self.payload);
                crc.update(&[0u8; 3][..fill]);
                crc.finalize()
            }
        };
        let mut trailer = [0u8; 3 + CRC_LEN];
        trailer[fill..fill + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        FrameParts {
            header: head,
            payload: &self.payload,
            trailer,
            trailer_len: fill + CRC_LEN,
        }
    }

    /// Writes header, payload, fill and CRC into `buf[..self.buffer_len()]` (panics if shorter).
    /// The header's fill count is set from the payload.
    pub fn emit(&self, buf: &mut [u8]) {
        let parts = self.encode_parts();
        let body_end = HEADER_LEN + parts.payload.len();
        buf[..HEADER_LEN].copy_from_slice(&parts.header);
        buf[HEADER_LEN..body_end].copy_from_slice(parts.payload);
        buf[body_end..body_end + parts.trailer_len].copy_from_slice(parts.trailer());
    }

    /// The frame as bytes, header through CRC.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }

    /// Bytes of the delimited form: SOF, frame, EOF.
    pub fn delimited_len(&self) -> usize {
        self.buffer_len() + 2 * ORDERED_SET_LEN
    }

    /// Writes SOF ordered set, frame, EOF ordered set (pcap link type 225) into
    /// `buf[..self.delimited_len()]`. A delimiter code that has no ordered set is written as
    /// zero, which a reader rejects.
    pub fn emit_delimited(&self, buf: &mut [u8]) {
        let len = self.delimited_len();
        let buf = &mut buf[..len];
        buf[..ORDERED_SET_LEN].copy_from_slice(&self.sof.ordered_set().unwrap_or(0).to_be_bytes());
        self.emit(&mut buf[ORDERED_SET_LEN..len - ORDERED_SET_LEN]);
        buf[len - ORDERED_SET_LEN..]
            .copy_from_slice(&self.eof.ordered_set().unwrap_or(0).to_be_bytes());
    }

    /// The delimited form as bytes.
    pub fn to_delimited_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.delimited_len()];
        self.emit_delimited(&mut v);
        v
    }
}

/// A frame split for a vectored write (`writev`): header, the payload as the caller holds it,
/// then fill and CRC. Produced by [`FcFrame::encode_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameParts<'a> {
    /// The 24 header bytes, fill count set.
    pub header: [u8; HEADER_LEN],
    /// The payload, not copied.
    pub payload: &'a [u8],
    trailer: [u8; 3 + CRC_LEN],
    trailer_len: usize,
}

impl FrameParts<'_> {
    /// Fill bytes and CRC, to write after the payload.
    pub fn trailer(&self) -> &[u8] {
        &self.trailer[..self.trailer_len]
    }
}

/// `SOFi3 010100 -> 010200 ELS request ELS ox=1234 ... len=116 EOFt`.
impl fmt::Display for FcFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} len={} {}",
            self.sof,
            self.header,
            self.payload.len(),
            self.eof
        )
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;
    use crate::addr::FcId;
    use crate::header::{FcType, RCtl};

    /// An ECHO request with a 5-byte payload (3 fill bytes), delimited: SOFi3, header, payload,
    /// fill, CRC, EOFt. The CRC bytes were checked with tshark (`fc.crc` valid) and zlib.
    static ECHO_DELIMITED: [u8; 4 + 24 + 8 + 4 + 4] = hex!(
        "bcb55656"
        "22 010200 00 010100 01 290003 00 00 0000 0042 ffff 00000000"
        "10000000 ab 000000"
        "e7551401"
        "bc957575"
    );

    fn echo_frame() -> FcFrame {
        FcFrame::single(
            FrameHeaderRepr::request(
                RCtl::ELS_REQUEST,
                FcType::ELS,
                FcId::from_parts(1, 2, 0),
                FcId::from_parts(1, 1, 0),
                0x42,
            ),
            Bytes::from_static(&hex!("10000000 ab")),
        )
    }

    #[test]
    fn test_frame_received_with_nonzero_fill_is_sent_on_with_a_good_crc() {
        // The echo frame's 5-byte payload has 3 fill bytes; make them non-zero and the CRC
        // agree, as a peer may send (fill bytes are "don't care" on receipt).
        let mut wire = echo_frame().to_vec();
        let fill_at = wire.len() - CRC_LEN - 3;
        wire[fill_at..fill_at + 3].copy_from_slice(&[0xAA, 0xBB, 0xCC]);
        let mut view = Frame::new_unchecked(&mut wire[..]);
        view.fill_crc();
        let parsed = FcFrame::parse(Sof::I3, Bytes::from(wire), Eof::T).unwrap();
        // Sent on with zero fill bytes: its CRC is computed again, not the one received.
        let sent = Bytes::from(parsed.to_vec());
        assert_eq!(FcFrame::parse(Sof::I3, sent, Eof::T), Ok(parsed));
    }

    #[test]
    fn test_forwarded_frame_keeps_its_crc_and_a_changed_one_gets_a_new_one() {
        let wire = Bytes::from(echo_frame().to_vec());
        let parsed = FcFrame::parse(Sof::I3, wire.clone(), Eof::T).unwrap();
        // Unchanged: the same bytes, from the remembered CRC.
        assert_eq!(parsed.to_vec(), wire);
        // A changed header or payload is encoded with a CRC of its own, which checks.
        let mut moved = parsed.clone();
        moved.header.d_id = FcId::from_parts(1, 3, 0);
        let bytes = Bytes::from(moved.to_vec());
        assert_eq!(FcFrame::parse(Sof::I3, bytes, Eof::T), Ok(moved));
        let mut other = parsed.clone();
        other.payload = Bytes::from_static(&hex!("10000000 ac"));
        let bytes = Bytes::from(other.to_vec());
        assert_eq!(FcFrame::parse(Sof::I3, bytes, Eof::T), Ok(other));
        // A shorter slice of the same payload is a change too.
        let mut cut = parsed.clone();
        cut.payload.truncate(4);
        let bytes = Bytes::from(cut.to_vec());
        let back = FcFrame::parse(Sof::I3, bytes, Eof::T).expect("a CRC of its own");
        assert_eq!(back.payload, cut.payload);
        // Equality ignores what was remembered.
        let built = FcFrame::new(
            parsed.sof,
            parsed.header,
            parsed.payload.clone(),
            parsed.eof,
        );
        assert_eq!(parsed, built);
    }

    #[test]
    fn test_crc_vector() {
        // PROTOCOLS.md: CRC 0x97cfe7f0 goes on the wire as f0 e7 cf 97. "123456789" is the
        // standard check string of CRC-32/IEEE, whose CRC is cbf43926.
        assert_eq!(fc_crc(b"123456789"), 0xcbf4_3926);
        // The CRC field is read and written in that byte order.
        let mut bytes = [0u8; MIN_FRAME_LEN];
        bytes[HEADER_LEN..].copy_from_slice(&[0xf0, 0xe7, 0xcf, 0x97]);
        assert_eq!(Frame::new_checked(&bytes[..]).unwrap().crc(), 0x97cf_e7f0);
        let mut v = Frame::new_unchecked(&mut bytes[..]);
        v.fill_crc();
        let crc = fc_crc(&[0u8; HEADER_LEN]);
        assert_eq!(&bytes[HEADER_LEN..], &crc.to_le_bytes());
    }

    #[test]
    fn test_emit_delimited() {
        let f = echo_frame();
        assert_eq!(f.fill_len(), 3);
        assert_eq!(f.to_delimited_vec(), ECHO_DELIMITED);
    }

    #[test]
    fn test_parse_delimited() {
        let f = FcFrame::parse_delimited(Bytes::from_static(&ECHO_DELIMITED)).unwrap();
        let mut want = echo_frame();
        want.header.f_ctl = want.header.f_ctl.with_fill_bytes(3);
        assert_eq!(f, want);
        assert_eq!(&f.payload[..], &hex!("10000000 ab"));
    }

    #[test]
    fn test_view() {
        let v = Frame::new_checked(&ECHO_DELIMITED[4..40]).unwrap();
        assert_eq!(v.payload(), &hex!("10000000 ab"));
        assert_eq!(v.crc(), 0x0114_55e7);
        assert_eq!(v.check_crc(), Ok(()));
    }

    #[test]
    fn test_bad_crc() {
        let mut bytes = ECHO_DELIMITED;
        bytes[30] ^= 0x01; // a payload bit
        assert!(matches!(
            FcFrame::parse_delimited(Bytes::copy_from_slice(&bytes)),
            Err(FrameError::BadCrc {
                received: 0x0114_55e7,
                ..
            })
        ));
    }

    #[test]
    fn test_unknown_delimiters() {
        let mut bytes = ECHO_DELIMITED;
        bytes[3] = 0x00;
        assert_eq!(
            FcFrame::parse_delimited(Bytes::copy_from_slice(&bytes)),
            Err(FrameError::UnknownSof(0xbcb5_5600))
        );
        let mut bytes = ECHO_DELIMITED;
        bytes[43] = 0x00;
        assert_eq!(
            FcFrame::parse_delimited(Bytes::copy_from_slice(&bytes)),
            Err(FrameError::UnknownEof(0xbc95_7500))
        );
    }

    #[test]
    fn test_positive_disparity_eof() {
        let mut bytes = ECHO_DELIMITED;
        bytes[40..].copy_from_slice(&0xBCB5_7575u32.to_be_bytes());
        assert_eq!(
            FcFrame::parse_delimited(Bytes::copy_from_slice(&bytes))
                .unwrap()
                .eof,
            Eof::T
        );
    }

    #[test]
    fn test_length_errors() {
        assert_eq!(
            Frame::new_checked(&[0u8; 27][..]),
            Err(FrameError::Len(LenError {
                layer: Layer::Frame,
                required: 28,
                actual: 27
            }))
        );
        assert_eq!(
            Frame::new_checked(&[0u8; 30][..]),
            Err(FrameError::NotWordAligned { len: 30 })
        );
        assert_eq!(
            Frame::new_checked(&[0u8; MAX_FRAME_LEN + 4][..]),
            Err(FrameError::TooLong {
                len: MAX_FRAME_LEN + 4
            })
        );
        let mut no_payload = [0u8; 28];
        no_payload[11] = 0x02; // two fill bytes, no payload
        assert_eq!(
            Frame::new_checked(&no_payload[..]),
            Err(FrameError::FillExceedsPayload {
                fill: 2,
                payload_len: 0
            })
        );
        for len in 0..ECHO_DELIMITED.len() {
            assert!(
                FcFrame::parse_delimited(Bytes::copy_from_slice(&ECHO_DELIMITED[..len])).is_err()
            );
        }
    }

    #[test]
    fn test_encode_parts_matches_emit() {
        let f = echo_frame();
        let parts = f.encode_parts();
        let joined = [&parts.header[..], parts.payload, parts.trailer()].concat();
        assert_eq!(joined, &ECHO_DELIMITED[4..40]);
    }

    #[test]
    fn test_max_payload() {
        let mut f = echo_frame();
        f.payload = Bytes::from(vec![0x5a; MAX_PAYLOAD]);
        let bytes = f.to_vec();
        assert_eq!(bytes.len(), MAX_FRAME_LEN);
        assert_eq!(FcFrame::parse(Sof::I3, Bytes::from(bytes), Eof::T), Ok(f));
    }

    #[test]
    fn test_delimiter_tables() {
        for sof in [
            Sof::F,
            Sof::I2,
            Sof::I3,
            Sof::I4,
            Sof::N2,
            Sof::N3,
            Sof::N4,
            Sof::C4,
        ] {
            let os = sof.ordered_set().unwrap();
            assert_eq!(Sof::from_ordered_set(os), Some(sof));
        }
        for eof in [
            Eof::N,
            Eof::T,
            Eof::RT,
            Eof::DT,
            Eof::NI,
            Eof::DTI,
            Eof::RTI,
            Eof::A,
        ] {
            assert_eq!(Eof::from_ordered_set(eof.ordered_set().unwrap()), Some(eof));
        }
        assert_eq!(Sof(0x00).ordered_set(), None);
        assert_eq!(Sof::I3.to_string(), "SOFi3");
        assert_eq!(Eof(0x99).to_string(), "EOF 0x99");
        assert!(Sof::I3.is_initiate() && !Sof::N3.is_initiate());
        assert!(Eof::T.is_terminate() && !Eof::N.is_terminate());
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            h in crate::header::tests::arb_header(),
            payload in proptest::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
            sof_i in 0usize..8, eof_i in 0usize..8,
        ) {
            let mut f = FcFrame::new(Sof::TABLE[sof_i].0, h, Bytes::from(payload), Eof::TABLE[eof_i].0);
            f.header.f_ctl = f.header.f_ctl.with_fill_bytes(f.fill_len());
            prop_assert_eq!(FcFrame::parse_delimited(Bytes::from(f.to_delimited_vec())), Ok(f.clone()));
            prop_assert_eq!(FcFrame::parse(f.sof, Bytes::from(f.to_vec()), f.eof), Ok(f));
        }

        #[test]
        fn prop_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2200)) {
            let b = Bytes::from(bytes);
            let _ = FcFrame::parse_delimited(b.clone());
            let _ = FcFrame::parse(Sof::I3, b.clone(), Eof::T);
            if let Ok(v) = Frame::new_checked(&b[..]) {
                let _ = (v.payload(), v.check_crc());
            }
        }
    }
}
