//! The FCIP Special Frame, FSF (RFC 3821 §7).
//!
//! The originator of a new FCIP TCP connection sends one FSF as the very first bytes; the
//! acceptor echoes it, unchanged or with pFlags Ch set and the fields it changed; the
//! originator checks the echo ([`SpecialFrame::echo_matches`]) before any FC frame flows.
//!
//! ```text
//!  word | bytes 0        | 1          | 2            | 3
//! ------+----------------+------------+--------------+-------------
//!  0-6  | encapsulation header (fc_frames::encap): Frame Length 19, pFlags SF (+ Ch)
//!   7   | 0x00           | 0x00       | 0xFF         | 0xFF
//!  8-9  | Source FC Fabric Entity WWN
//! 10-11 | Source FC/FCIP Entity Identifier
//! 12-13 | Connection Nonce
//!  14   | Conn. Usage Flags | Reserved | Connection Usage Code
//! 15-16 | Destination FC Fabric Entity WWN
//!  17   | K_A_TOV, milliseconds
//!  18   | 0x00           | 0x00       | 0xFF         | 0xFF
//! ```
//!
//! The layout is the one in PROTOCOLS.md (RFC 3821 §7 from memory; PROTOCOLS.md wins where
//! they differ). The header is parsed by [`EncapHeaderRepr::parse`], so an FSF gets every
//! check an FC frame's header gets. The reserved byte of word 14 is sent as zero and ignored on
//! receipt.

use fc_frames::encap::{
    EncapError, EncapHeader, EncapHeaderRepr, PFlags, Protocol, Timestamp, HEADER_LEN, VERSION_1,
};
use fc_frames::{Layer, LenError, Wwn};

/// Bytes of a Special Frame.
pub const FSF_LEN: usize = 76;
/// Frame Length of a Special Frame, in words.
pub const FSF_WORDS: u16 = 19;

/// Words 7 and 18 of a Special Frame.
const MARKER: u32 = 0x0000_FFFF;

mod field {
    pub const WORD7: usize = 28;
    pub const SOURCE_FABRIC: usize = 32;
    pub const SOURCE_ENTITY: usize = 40;
    pub const NONCE: usize = 48;
    pub const USAGE_FLAGS: usize = 56;
    pub const USAGE_CODE: usize = 58;
    pub const DESTINATION_FABRIC: usize = 60;
    pub const K_A_TOV: usize = 68;
    pub const WORD18: usize = 72;
}

/// An FCIP Special Frame, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpecialFrame {
    /// pFlags Ch: the acceptor changed fields of the originator's FSF in its echo.
    pub changed: bool,
    /// The encapsulation header's time stamp.
    pub timestamp: Timestamp,
    /// Source FC Fabric Entity WWN: the switch that sent the FSF.
    pub source_fabric: Wwn,
    /// Source FC/FCIP Entity Identifier, unique within the source fabric entity.
    pub source_entity: [u8; 8],
    /// Connection Nonce: a random value naming this connection attempt.
    pub nonce: u64,
    /// Connection Usage Flags (what the connection carries: classes, SOFf frames).
    pub usage_flags: u8,
    /// Connection Usage Code: opaque to FCIP, meaningful to the FC Entity.
    pub usage_code: u16,
    /// Destination FC Fabric Entity WWN: the switch the originator means to reach.
    pub destination_fabric: Wwn,
    /// K_A_TOV, the keep-alive time-out, in milliseconds.
    pub k_a_tov_ms: u32,
}

/// Errors parsing a Special Frame. Each one is an encapsulation error for the receiver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsfError {
    /// Not exactly 76 bytes (or too short for the header).
    #[error(transparent)]
    Len(LenError),
    /// The encapsulation header failed its checks.
    #[error("FSF header: {0}")]
    Header(#[from] EncapError),
    /// Protocol# and Version are not FCIP version 1.
    #[error("FSF header is {protocol} version {version}, not FCIP version 1")]
    NotFcip {
        /// Protocol#.
        protocol: Protocol,
        /// Version.
        version: u8,
    },
    /// pFlags SF is clear: an FC frame, not a Special Frame.
    #[error("pFlags SF clear: not a Special Frame")]
    NotSpecial,
    /// Frame Length is not 19 words.
    #[error("FSF frame length {words} words, want {FSF_WORDS}")]
    FrameLength {
        /// Frame Length as received.
        words: u16,
    },
    /// Word 7 is not `00 00 FF FF`.
    #[error("FSF word 7 is {word:08x}, want 0000ffff")]
    Word7 {
        /// The word as received.
        word: u32,
    },
    /// Word 18 is not `00 00 FF FF`.
    #[error("FSF word 18 is {word:08x}, want 0000ffff")]
    Word18 {
        /// The word as received.
        word: u32,
    },
}

/// A field in which an echoed Special Frame differs from the one sent (RFC 3821 §7.1; the
/// RFC 4404 MIB counts these as response mismatches, invalid nonces and invalid WWNs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Connection Nonce differs.
    #[error("echoed nonce {echoed:016x}, sent {sent:016x}")]
    Nonce {
        /// Sent.
        sent: u64,
        /// Echoed.
        echoed: u64,
    },
    /// Source FC Fabric Entity WWN differs.
    #[error("echoed source fabric WWN {echoed}, sent {sent}")]
    SourceFabric {
        /// Sent.
        sent: Wwn,
        /// Echoed.
        echoed: Wwn,
    },
    /// Source FC/FCIP Entity Identifier differs.
    #[error("echoed source entity id {echoed:02x?}, sent {sent:02x?}")]
    SourceEntity {
        /// Sent.
        sent: [u8; 8],
        /// Echoed.
        echoed: [u8; 8],
    },
    /// Destination FC Fabric Entity WWN differs.
    #[error("echoed destination fabric WWN {echoed}, sent {sent}")]
    DestinationFabric {
        /// Sent.
        sent: Wwn,
        /// Echoed.
        echoed: Wwn,
    },
    /// K_A_TOV differs.
    #[error("echoed K_A_TOV {echoed} ms, sent {sent} ms")]
    KATov {
        /// Sent.
        sent: u32,
        /// Echoed.
        echoed: u32,
    },
    /// Connection Usage Flags differ without Ch set.
    #[error("echoed usage flags {echoed:#04x}, sent {sent:#04x}, Ch clear")]
    UsageFlags {
        /// Sent.
        sent: u8,
        /// Echoed.
        echoed: u8,
    },
    /// Connection Usage Code differs without Ch set.
    #[error("echoed usage code {echoed:#06x}, sent {sent:#06x}, Ch clear")]
    UsageCode {
        /// Sent.
        sent: u16,
        /// Echoed.
        echoed: u16,
    },
}

impl SpecialFrame {
    /// The 76 bytes of this Special Frame: Protocol FCIP version 1, pFlags SF (and Ch when
    /// `changed`), Frame Length 19, CRCV clear, the reserved byte zero.
    pub fn emit(&self) -> [u8; FSF_LEN] {
        let mut flags = PFlags::SPECIAL_FRAME;
        if self.changed {
            flags |= PFlags::CHANGED;
        }
        let header = EncapHeaderRepr {
            protocol: Protocol::FCIP,
            version: VERSION_1,
            flags,
            frame_len: FSF_WORDS,
            crcv: false,
            timestamp: self.timestamp,
        };
        let mut b = [0u8; FSF_LEN];
        // Constant ranges inside a 76-byte array: none of these can panic.
        b[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        b[field::WORD7..field::WORD7 + 4].copy_from_slice(&MARKER.to_be_bytes());
        b[field::SOURCE_FABRIC..field::SOURCE_FABRIC + 8].copy_from_slice(&self.source_fabric.0);
        b[field::SOURCE_ENTITY..field::SOURCE_ENTITY + 8].copy_from_slice(&self.source_entity);
        b[field::NONCE..field::NONCE + 8].copy_from_slice(&self.nonce.to_be_bytes());
        b[field::USAGE_FLAGS] = self.usage_flags;
        b[field::USAGE_CODE..field::USAGE_CODE + 2].copy_from_slice(&self.usage_code.to_be_bytes());
        b[field::DESTINATION_FABRIC..field::DESTINATION_FABRIC + 8]
            .copy_from_slice(&self.destination_fabric.0);
        b[field::K_A_TOV..field::K_A_TOV + 4].copy_from_slice(&self.k_a_tov_ms.to_be_bytes());
        b[field::WORD18..field::WORD18 + 4].copy_from_slice(&MARKER.to_be_bytes());
        b
    }

    /// Parses exactly one Special Frame: the whole encapsulation header (as for an FC frame),
    /// Protocol FCIP version 1, pFlags SF set, Frame Length 19, 76 bytes, and words 7 and 18
    /// `00 00 FF FF`.
    pub fn parse(bytes: &[u8]) -> Result<SpecialFrame, FsfError> {
        let len_error = || {
            FsfError::Len(LenError {
                layer: Layer::Encapsulation,
                required: FSF_LEN,
                actual: bytes.len(),
            })
        };
        let view = EncapHeader::new_checked(bytes).map_err(|_| len_error())?;
        let header = EncapHeaderRepr::parse(&view)?;
        if header.protocol != Protocol::FCIP || header.version != VERSION_1 {
            return Err(FsfError::NotFcip {
                protocol: header.protocol,
                version: header.version,
            });
        }
        if !header.flags.contains(PFlags::SPECIAL_FRAME) {
            return Err(FsfError::NotSpecial);
        }
        if header.frame_len != FSF_WORDS {
            return Err(FsfError::FrameLength {
                words: header.frame_len,
            });
        }
        let b: &[u8; FSF_LEN] = bytes.try_into().map_err(|_| len_error())?;
        let word7 = u32::from_be_bytes(take(b, field::WORD7));
        if word7 != MARKER {
            return Err(FsfError::Word7 { word: word7 });
        }
        let word18 = u32::from_be_bytes(take(b, field::WORD18));
        if word18 != MARKER {
            return Err(FsfError::Word18 { word: word18 });
        }
        Ok(SpecialFrame {
            changed: header.flags.contains(PFlags::CHANGED),
            timestamp: header.timestamp,
            source_fabric: Wwn(take(b, field::SOURCE_FABRIC)),
            source_entity: take(b, field::SOURCE_ENTITY),
            nonce: u64::from_be_bytes(take(b, field::NONCE)),
            usage_flags: b[field::USAGE_FLAGS],
            usage_code: u16::from_be_bytes(take(b, field::USAGE_CODE)),
            destination_fabric: Wwn(take(b, field::DESTINATION_FABRIC)),
            k_a_tov_ms: u32::from_be_bytes(take(b, field::K_A_TOV)),
        })
    }

    /// The originator's check of the acceptor's echo (`self`) of the FSF it `sent`
    /// (RFC 3821 §7.1, from memory).
    ///
    /// The echo must carry the same Connection Nonce, Source FC Fabric Entity WWN, Source
    /// FC/FCIP Entity Identifier, Destination FC Fabric Entity WWN and K_A_TOV. The Connection
    /// Usage Flags and Code may differ only when the acceptor set Ch; the originator then
    /// decides whether it accepts the changed usage. The time stamp is not compared. (RFC 3821
    /// may also let the acceptor correct the Destination WWN under Ch; this code does not, and
    /// reports it as a mismatch.) The first differing field is reported.
    pub fn echo_matches(&self, sent: &SpecialFrame) -> Result<(), Mismatch> {
        if self.nonce != sent.nonce {
            return Err(Mismatch::Nonce {
                sent: sent.nonce,
                echoed: self.nonce,
            });
        }
        if self.source_fabric != sent.source_fabric {
            return Err(Mismatch::SourceFabric {
                sent: sent.source_fabric,
                echoed: self.source_fabric,
            });
        }
        if self.source_entity != sent.source_entity {
            return Err(Mismatch::SourceEntity {
                sent: sent.source_entity,
                echoed: self.source_entity,
            });
        }
        if self.destination_fabric != sent.destination_fabric {
            return Err(Mismatch::DestinationFabric {
                sent: sent.destination_fabric,
                echoed: self.destination_fabric,
            });
        }
        if self.k_a_tov_ms != sent.k_a_tov_ms {
            return Err(Mismatch::KATov {
                sent: sent.k_a_tov_ms,
                echoed: self.k_a_tov_ms,
            });
        }
        if !self.changed && self.usage_flags != sent.usage_flags {
            return Err(Mismatch::UsageFlags {
                sent: sent.usage_flags,
                echoed: self.usage_flags,
            });
        }
        if !self.changed && self.usage_code != sent.usage_code {
            return Err(Mismatch::UsageCode {
                sent: sent.usage_code,
                echoed: self.usage_code,
            });
        }
        Ok(())
    }
}

/// `N` bytes of `b` from `at`. Callers pass constant offsets inside the 76 bytes; anything
/// else would give zeros rather than panic.
fn take<const N: usize>(b: &[u8; FSF_LEN], at: usize) -> [u8; N] {
    at.checked_add(N)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    /// An FSF as an originator sends it: time stamp e8b01234.80000000, source fabric
    /// 10:00:00:05:1e:00:00:01, entity 0102030405060708, nonce 1122334455667788, usage flags
    /// 0x40, code 0x0001, destination 10:00:00:05:1e:00:00:02, K_A_TOV 5000 ms.
    static FSF_BYTES: [u8; FSF_LEN] = hex!(
        "0101fefe 0101fefe 0100feff 0013ffec e8b01234 80000000 00000000"
        "0000ffff"
        "10000005 1e000001"
        "01020304 05060708"
        "11223344 55667788"
        "40 00 0001"
        "10000005 1e000002"
        "00001388"
        "0000ffff"
    );

    fn fsf() -> SpecialFrame {
        SpecialFrame {
            changed: false,
            timestamp: Timestamp {
                seconds: 0xe8b0_1234,
                fraction: 0x8000_0000,
            },
            source_fabric: Wwn::from_u64(0x1000_0005_1e00_0001),
            source_entity: hex!("0102030405060708"),
            nonce: 0x1122_3344_5566_7788,
            usage_flags: 0x40,
            usage_code: 0x0001,
            destination_fabric: Wwn::from_u64(0x1000_0005_1e00_0002),
            k_a_tov_ms: 5000,
        }
    }

    fn patched(f: impl FnOnce(&mut [u8; FSF_LEN])) -> [u8; FSF_LEN] {
        let mut b = FSF_BYTES;
        f(&mut b);
        b
    }

    #[test]
    fn test_emit() {
        assert_eq!(fsf().emit(), FSF_BYTES);
    }

    #[test]
    fn test_parse() {
        assert_eq!(SpecialFrame::parse(&FSF_BYTES), Ok(fsf()));
    }

    #[test]
    fn test_changed_bit() {
        let mut f = fsf();
        f.changed = true;
        let b = f.emit();
        assert_eq!(&b[8..12], &hex!("8100 7eff"));
        assert_eq!(SpecialFrame::parse(&b), Ok(f));
    }

    #[test]
    fn test_reserved_byte_ignored() {
        let b = patched(|b| b[57] = 0x5a);
        assert_eq!(SpecialFrame::parse(&b), Ok(fsf()));
    }

    #[test]
    fn test_err_len() {
        let long = [&FSF_BYTES[..], &[0u8; 4]].concat();
        assert_eq!(
            SpecialFrame::parse(&long),
            Err(FsfError::Len(LenError {
                layer: Layer::Encapsulation,
                required: FSF_LEN,
                actual: 80
            }))
        );
        assert!(matches!(
            SpecialFrame::parse(&FSF_BYTES[..20]),
            Err(FsfError::Len(LenError { actual: 20, .. }))
        ));
    }

    #[test]
    fn test_err_header() {
        let b = patched(|b| b[4] = 0x02);
        assert!(matches!(
            SpecialFrame::parse(&b),
            Err(FsfError::Header(EncapError::Word1Mismatch { .. }))
        ));
        let b = patched(|b| b[15] = 0x00);
        assert!(matches!(
            SpecialFrame::parse(&b),
            Err(FsfError::Header(EncapError::LengthComplement { .. }))
        ));
    }

    #[test]
    fn test_err_not_fcip() {
        let b = patched(|b| {
            for w in [0, 4] {
                b[w..w + 4].copy_from_slice(&hex!("0201fdfe"));
            }
        });
        assert_eq!(
            SpecialFrame::parse(&b),
            Err(FsfError::NotFcip {
                protocol: Protocol::IFCP,
                version: 1
            })
        );
    }

    #[test]
    fn test_err_not_special() {
        let b = patched(|b| {
            b[8] = 0x00;
            b[10] = 0xff;
        });
        assert_eq!(SpecialFrame::parse(&b), Err(FsfError::NotSpecial));
    }

    #[test]
    fn test_err_frame_length() {
        let b = patched(|b| b[12..16].copy_from_slice(&hex!("0014ffeb")));
        assert_eq!(
            SpecialFrame::parse(&b),
            Err(FsfError::FrameLength { words: 20 })
        );
    }

    #[test]
    fn test_err_words_7_and_18() {
        let b = patched(|b| b[29] = 0x01);
        assert_eq!(
            SpecialFrame::parse(&b),
            Err(FsfError::Word7 { word: 0x0001_ffff })
        );
        let b = patched(|b| b[75] = 0xfe);
        assert_eq!(
            SpecialFrame::parse(&b),
            Err(FsfError::Word18 { word: 0x0000_fffe })
        );
    }

    #[test]
    fn test_truncation() {
        for len in 0..FSF_LEN {
            assert!(SpecialFrame::parse(&FSF_BYTES[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn test_echo_unchanged() {
        let sent = fsf();
        let mut echo = sent;
        echo.timestamp = Timestamp::ZERO;
        assert_eq!(echo.echo_matches(&sent), Ok(()));
    }

    #[test]
    fn test_echo_mismatches() {
        let sent = fsf();
        let check = |f: fn(&mut SpecialFrame)| {
            let mut echo = sent;
            f(&mut echo);
            echo.echo_matches(&sent)
        };
        assert_eq!(
            check(|e| e.nonce = 1),
            Err(Mismatch::Nonce {
                sent: 0x1122_3344_5566_7788,
                echoed: 1
            })
        );
        assert!(matches!(
            check(|e| e.source_fabric = Wwn::ZERO),
            Err(Mismatch::SourceFabric { .. })
        ));
        assert!(matches!(
            check(|e| e.source_entity = [0; 8]),
            Err(Mismatch::SourceEntity { .. })
        ));
        assert!(matches!(
            check(|e| e.destination_fabric = Wwn::ZERO),
            Err(Mismatch::DestinationFabric { .. })
        ));
        assert_eq!(
            check(|e| e.k_a_tov_ms = 1000),
            Err(Mismatch::KATov {
                sent: 5000,
                echoed: 1000
            })
        );
        assert_eq!(
            check(|e| e.usage_flags = 0),
            Err(Mismatch::UsageFlags {
                sent: 0x40,
                echoed: 0
            })
        );
        assert_eq!(
            check(|e| e.usage_code = 7),
            Err(Mismatch::UsageCode { sent: 1, echoed: 7 })
        );
        // With Ch set the usage fields may change, nothing else.
        assert_eq!(
            check(|e| {
                e.changed = true;
                e.usage_flags = 0;
                e.usage_code = 7;
            }),
            Ok(())
        );
        assert!(matches!(
            check(|e| {
                e.changed = true;
                e.nonce = 2;
            }),
            Err(Mismatch::Nonce { .. })
        ));
    }

    prop_compose! {
        pub(crate) fn arb_fsf()(
            changed: bool, seconds: u32, fraction: u32, source_fabric: u64,
            source_entity: [u8; 8], nonce: u64, usage_flags: u8, usage_code: u16,
            destination_fabric: u64, k_a_tov_ms: u32,
        ) -> SpecialFrame {
            SpecialFrame {
                changed,
                timestamp: Timestamp { seconds, fraction },
                source_fabric: Wwn::from_u64(source_fabric),
                source_entity,
                nonce,
                usage_flags,
                usage_code,
                destination_fabric: Wwn::from_u64(destination_fabric),
                k_a_tov_ms,
            }
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(f in arb_fsf()) {
            prop_assert_eq!(SpecialFrame::parse(&f.emit()), Ok(f));
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SpecialFrame::parse(&bytes);
        }

        #[test]
        fn prop_valid_header_arbitrary_body_never_panics(body: [u8; 48]) {
            let mut b = FSF_BYTES;
            b[28..].copy_from_slice(&body);
            let _ = SpecialFrame::parse(&b);
        }
    }
}
