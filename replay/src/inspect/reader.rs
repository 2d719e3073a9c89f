//! Capture files of any origin, told apart by their magic number: pcap (microsecond or
//! nanosecond, either byte order) read here, record by record, and pcapng read with
//! `pcap-file`'s block reader (interfaces, time stamp resolution, `epb_flags` direction).
//!
//! The pcap records are read here rather than with `pcap-file`'s pcap reader because that one
//! refuses a record whose original length exceeds the snapshot length, which is what every
//! capture taken with a short snapshot length (`tcpdump -s 128`) holds.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::PcapError;

/// Link types read (the tcpdump.org registry's numbers).
pub mod link {
    /// Ethernet (with 802.1Q/802.1ad VLAN tags).
    pub const ETHERNET: u32 = 1;
    /// Raw IPv4 or IPv6.
    pub const RAW: u32 = 101;
    /// Linux cooked capture.
    pub const LINUX_SLL: u32 = 113;
    /// FC-2 frames without SOF/EOF or CRC.
    pub const FC_2: u32 = 224;
    /// FC-2 frames with SOF/EOF ordered sets and CRC.
    pub const FC_2_WITH_FRAME_DELIMS: u32 = 225;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;

    /// Every link type inspect reads.
    pub const ALL: [u32; 8] = [
        ETHERNET,
        RAW,
        LINUX_SLL,
        FC_2,
        FC_2_WITH_FRAME_DELIMS,
        IPV4,
        IPV6,
        LINUX_SLL2,
    ];
}

/// The direction a pcapng packet's `epb_flags` give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the capturing interface.
    Inbound,
    /// Sent by it.
    Outbound,
}

impl Direction {
    /// `<-` for inbound, `->` for outbound.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::Inbound => "<-",
            Direction::Outbound => "->",
        }
    }

    /// `in` or `out`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }
}

/// One packet record of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// From 1, as Wireshark counts.
    pub number: usize,
    /// Time stamp, since the Unix epoch.
    pub ts: Duration,
    /// Its link type.
    pub link: u32,
    /// Inbound or outbound, when the capture says.
    pub direction: Option<Direction>,
    /// Length on the wire (more than `data` when the snapshot length cut it).
    pub orig_len: u32,
    /// The bytes captured.
    pub data: Vec<u8>,
}

/// What is wrong with a capture file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Fewer than 4 bytes.
    #[error("not a capture file: only {0} bytes")]
    Empty(usize),
    /// The magic number is not pcap's or pcapng's.
    #[error("not a capture file: it starts with {}, not a pcap or pcapng magic number", hex(.0))]
    NotACapture([u8; 4]),
    /// The file header is cut short or invalid.
    #[error("bad {format} file header: {what}")]
    Header {
        /// pcap or pcapng.
        format: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A record is cut short: the file ends inside it.
    #[error("record {number}: cut short, the file is truncated ({what})")]
    Truncated {
        /// The record's number.
        number: usize,
        /// What was missing.
        what: String,
    },
    /// A record or block is invalid.
    #[error("record {number}: {what}")]
    BadRecord {
        /// The record's number.
        number: usize,
        /// What is wrong.
        what: String,
    },
    /// The link type is not one inspect reads.
    #[error(
        "link type {0} is not read (read are 1 Ethernet, 101 raw IP, 113 Linux SLL, 224 and 225 \
         Fibre Channel, 228/229 raw IPv4/IPv6, 276 Linux SLL2)"
    )]
    UnknownLinkType(u32),
    /// A pcapng packet names an interface not described.
    #[error("record {number}: interface {interface} has no description block")]
    NoInterface {
        /// The record's number.
        number: usize,
        /// The interface ID.
        interface: u32,
    },
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// pcap's magic numbers as they read big-endian: micro- and nanosecond time stamps.
const PCAP_MICRO: u32 = 0xA1B2_C3D4;
const PCAP_NANO: u32 = 0xA1B2_3C4D;
/// pcapng's Section Header Block type, the same in either byte order.
const PCAPNG: u32 = 0x0A0D_0D0A;
/// Longest pcap record read: pcap's own limit for any link type is 256 KiB.
const MAX_RECORD: u32 = 256 * 1024;

/// A capture being read: its packets in order.
pub struct CaptureReader<R: Read> {
    inner: Inner<R>,
    number: usize,
}

enum Inner<R: Read> {
    Pcap(PcapRecords<R>),
    PcapNg(Box<PcapNgReader<io::Chain<io::Cursor<[u8; 4]>, R>>>),
}

impl<R: Read> fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.inner {
            Inner::Pcap(_) => "pcap",
            Inner::PcapNg(_) => "pcapng",
        };
        f.debug_struct("CaptureReader")
            .field("format", &format)
            .field("number", &self.number)
            .finish()
    }
}

/// Reads as many bytes as there are up to `buf`'s length; returns how many.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header; tells pcap from pcapng by the magic number.
    pub fn new(mut reader: R) -> Result<CaptureReader<R>, ReadError> {
        let mut magic = [0u8; 4];
        let n = read_full(&mut reader, &mut magic)?;
        if n < 4 {
            return Err(ReadError::Empty(n));
        }
        let be = u32::from_be_bytes(magic);
        let le = u32::from_le_bytes(magic);
        let inner = if be == PCAPNG {
            let r = io::Cursor::new(magic).chain(reader);
            let ng = PcapNgReader::new(r).map_err(|e| ReadError::Header {
                format: "pcapng",
                what: pcap_error(&e),
            })?;
            Inner::PcapNg(Box::new(ng))
        } else if [be, le].contains(&PCAP_MICRO) || [be, le].contains(&PCAP_NANO) {
            let big = be == PCAP_MICRO || be == PCAP_NANO;
            let nano = be == PCAP_NANO || le == PCAP_NANO;
            Inner::Pcap(PcapRecords::new(reader, big, nano)?)
        } else {
            return Err(ReadError::NotACapture(magic));
        };
        Ok(CaptureReader { inner, number: 0 })
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> Option<Result<Packet, ReadError>> {
        let number = self.number + 1;
        let r = match &mut self.inner {
            Inner::Pcap(p) => p.next(number),
            Inner::PcapNg(ng) => next_ng(ng, number),
        };
        if matches!(r, Some(Ok(_))) {
            self.number = number;
        }
        r
    }
}

/// `pcap-file`'s error in words.
fn pcap_error(e: &PcapError) -> String {
    match e {
        PcapError::IncompleteBuffer => "cut short".into(),
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => "cut short".into(),
        PcapError::IoError(e) => e.to_string(),
        PcapError::InvalidField(what) => (*what).to_string(),
        other => other.to_string(),
    }
}

/// Legacy pcap records.
struct PcapRecords<R> {
    reader: R,
    big: bool,
    nano: bool,
    link: u32,
}

impl<R: Read> PcapRecords<R> {
    fn new(mut reader: R, big: bool, nano: bool) -> Result<Self, ReadError> {
        let mut rest = [0u8; 20];
        let n = read_full(&mut reader, &mut rest)?;
        if n < rest.len() {
            return Err(ReadError::Header {
                format: "pcap",
                what: format!("cut short: {} of 24 bytes", n + 4),
            });
        }
        let u32_at = |at: usize| {
            let b = [rest[at], rest[at + 1], rest[at + 2], rest[at + 3]];
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        // Bytes 16..20 of the file: the link type (its top bits may hold the FCS length).
        let link = u32_at(16) & 0x0FFF_FFFF;
        if !link::ALL.contains(&link) {
            return Err(ReadError::UnknownLinkType(link));
        }
        Ok(PcapRecords {
            reader,
            big,
            nano,
            link,
        })
    }

    fn next(&mut self, number: usize) -> Option<Result<Packet, ReadError>> {
        let mut h = [0u8; 16];
        let n = match read_full(&mut self.reader, &mut h) {
            Ok(n) => n,
            Err(e) => return Some(Err(e.into())),
        };
        if n == 0 {
            return None;
        }
        if n < h.len() {
            return Some(Err(ReadError::Truncated {
                number,
                what: format!("{n} of the record header's 16 bytes"),
            }));
        }
        let f = |at: usize| {
            let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
            if self.big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, incl, orig) = (f(0), f(4), f(8), f(12));
        if incl > MAX_RECORD {
            return Some(Err(ReadError::BadRecord {
                number,
                what: format!("a captured length of {incl} bytes (at most {MAX_RECORD})"),
            }));
        }
        let mut data = vec![0u8; incl as usize];
        match read_full(&mut self.reader, &mut data) {
            Ok(got) if got < data.len() => {
                return Some(Err(ReadError::Truncated {
                    number,
                    what: format!("{got} of {incl} bytes of data"),
                }))
            }
            Ok(_) => {}
            Err(e) => return Some(Err(e.into())),
        }
        let sub = if self.nano {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        Some(Ok(Packet {
            number,
            ts: Duration::from_secs(u64::from(secs)) + sub,
            link: self.link,
            direction: None,
            orig_len: orig.max(incl),
            data,
        }))
    }
}

/// The time stamp of a pcapng packet: `raw` units of the interface's resolution, plus its offset
/// in seconds.
fn ng_time(raw: u64, tsresol: u8, offset: u64) -> Duration {
    let exp = u32::from(tsresol & 0x7F);
    let base = if tsresol & 0x80 == 0 {
        Some(10u64).and_then(|b| b.checked_pow(exp))
    } else {
        Some(2u64).and_then(|b| b.checked_pow(exp))
    };
    let t = match base {
        Some(per_second) if per_second > 0 => {
            let secs = raw / per_second;
            let rest = u128::from(raw % per_second);
            let nanos = rest * 1_000_000_000 / u128::from(per_second);
            Duration::new(secs, nanos as u32)
        }
        _ => Duration::ZERO,
    };
    t.saturating_add(Duration::from_secs(offset))
}

/// The next packet block of a pcapng file; other blocks are passed over.
fn next_ng<R: Read>(ng: &mut PcapNgReader<R>, number: usize) -> Option<Result<Packet, ReadError>> {
    loop {
        let block = match ng.next_block()? {
            Ok(b) => b,
            Err(e) => {
                let what = pcap_error(&e);
                return Some(Err(if what == "cut short" {
                    ReadError::Truncated {
                        number,
                        what: "the last block".into(),
                    }
                } else {
                    ReadError::BadRecord { number, what }
                }));
            }
        };
        let (interface, raw, flags, orig_len, data) = match block {
            Block::InterfaceDescription(idb) => {
                let link = u32::from(idb.linktype);
                if !link::ALL.contains(&link) {
                    return Some(Err(ReadError::UnknownLinkType(link)));
                }
                continue;
            }
            Block::EnhancedPacket(epb) => {
                let flags = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Flags(f) => Some(*f),
                    _ => None,
                });
                // `pcap-file` hands the raw count over as nanoseconds; the interface says
                // what unit it is.
                let raw = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                (
                    epb.interface_id,
                    raw,
                    flags,
                    epb.original_len,
                    epb.data.into_owned(),
                )
            }
            Block::SimplePacket(spb) => (0, 0, None, spb.original_len, spb.data.into_owned()),
            Block::Packet(pb) => (
                u32::from(pb.interface_id),
                pb.timestamp,
                None,
                pb.original_len,
                pb.data.into_owned(),
            ),
            _ => continue,
        };
        let Some(idb) = ng.interfaces().get(interface as usize) else {
            return Some(Err(ReadError::NoInterface { number, interface }));
        };
        let mut tsresol = 6;
        let mut offset = 0;
        for o in &idb.options {
            match o {
                InterfaceDescriptionOption::IfTsResol(r) => tsresol = *r,
                InterfaceDescriptionOption::IfTsOffset(s) => offset = *s,
                _ => {}
            }
        }
        let direction = match flags.map(|f| f & 0b11) {
            Some(1) => Some(Direction::Inbound),
            Some(2) => Some(Direction::Outbound),
            _ => None,
        };
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        return Some(Ok(Packet {
            number,
            ts: ng_time(raw, tsresol, offset),
            link: u32::from(idb.linktype),
            direction,
            orig_len: orig_len.max(len),
            data,
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use proptest::prelude::*;

    use super::*;

    /// A legacy pcap file: little-endian microseconds, `link`, the records given.
    pub(crate) fn pcap(link: u32, records: &[(Duration, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&PCAP_MICRO.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&link.to_le_bytes());
        for (ts, data) in records {
            b.extend_from_slice(&(ts.as_secs() as u32).to_le_bytes());
            b.extend_from_slice(&ts.subsec_micros().to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    fn all(bytes: &[u8]) -> Result<Vec<Packet>, ReadError> {
        let mut r = CaptureReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            out.push(p?);
        }
        Ok(out)
    }

    #[test]
    fn test_pcap_both_byte_orders_and_nanoseconds() {
        let le = pcap(225, &[(Duration::new(5, 7_000), b"abcd")]);
        let p = all(&le).expect("reads");
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].number, p[0].link), (1, 225));
        assert_eq!(p[0].ts, Duration::new(5, 7_000));
        assert_eq!(p[0].data, b"abcd");
        // The same, big-endian with nanoseconds.
        let mut be = Vec::new();
        be.extend_from_slice(&PCAP_NANO.to_be_bytes());
        be.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 1]);
        be.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 60, 0xAA, 0xBB]);
        let p = all(&be).expect("reads");
        assert_eq!(p[0].ts, Duration::new(5, 9));
        assert_eq!((p[0].link, p[0].orig_len), (1, 60));
        assert_eq!(p[0].data, [0xAA, 0xBB]);
    }

    #[test]
    fn test_errors_say_what_is_wrong() {
        let e = all(b"GET / HTTP/1.1").expect_err("not a capture");
        assert_eq!(
            e.to_string(),
            "not a capture file: it starts with 47 45 54 20, not a pcap or pcapng magic number"
        );
        assert!(matches!(all(b"ab"), Err(ReadError::Empty(2))));
        let e = all(&pcap(147, &[])).expect_err("link type");
        assert!(
            e.to_string().starts_with("link type 147 is not read"),
            "{e}"
        );
        let good = pcap(1, &[(Duration::ZERO, &[1; 40]), (Duration::ZERO, &[2; 40])]);
        let e = all(&good[..good.len() - 3]).expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "record 2: cut short, the file is truncated (37 of 40 bytes of data)"
        );
        let e = all(&good[..30]).expect_err("truncated");
        assert!(matches!(e, ReadError::Truncated { number: 1, .. }), "{e}");
        assert!(matches!(all(&good[..10]), Err(ReadError::Header { .. })));
    }

    fn pcapng(link: DataLink, tsresol: Option<u8>, flags: Option<u32>) -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new()).expect("writer");
        let mut options = Vec::new();
        if let Some(r) = tsresol {
            options.push(InterfaceDescriptionOption::IfTsResol(r));
        }
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: link,
            snaplen: 0,
            options,
        })
        .expect("idb");
        // 1_500_000 units: 1.5 s at microseconds, 1.5 ms at nanoseconds.
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(1_500_000),
            original_len: 3,
            data: Cow::Borrowed(&[1, 2, 3]),
            options: flags.map(EnhancedPacketOption::Flags).into_iter().collect(),
        })
        .expect("epb");
        w.into_inner()
    }

    #[test]
    fn test_pcapng_resolution_and_direction() {
        let p = all(&pcapng(DataLink::FC_2_WITH_FRAME_DELIMS, None, Some(1))).expect("reads");
        assert_eq!(p[0].ts, Duration::from_millis(1500));
        assert_eq!(p[0].direction, Some(Direction::Inbound));
        assert_eq!(p[0].link, 225);
        let p = all(&pcapng(DataLink::ETHERNET, Some(9), Some(2))).expect("reads");
        assert_eq!(p[0].ts, Duration::from_micros(1500));
        assert_eq!(p[0].direction, Some(Direction::Outbound));
        let p = all(&pcapng(DataLink::ETHERNET, Some(0x80 | 10), None)).expect("reads");
        assert_eq!(p[0].ts, Duration::new(1464, 843_750_000)); // 1_500_000 / 2^10 s
        assert_eq!(p[0].direction, None);
        let e = all(&pcapng(DataLink::USB_LINUX, None, None)).expect_err("link");
        assert!(matches!(e, ReadError::UnknownLinkType(189)), "{e}");
        let good = pcapng(DataLink::ETHERNET, None, None);
        let e = all(&good[..good.len() - 5]).expect_err("truncated");
        assert!(matches!(e, ReadError::Truncated { number: 1, .. }), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn prop_truncations_and_garbage_never_panic(
            which in 0usize..3,
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        ) {
            let mut b = match which {
                0 => pcap(1, &[(Duration::ZERO, &[7; 60]), (Duration::ZERO, &[8; 90])]),
                1 => pcapng(DataLink::ETHERNET, Some(9), Some(1)),
                _ => pcapng(DataLink::FC_2, None, None),
            };
            for (at, x) in flips {
                let i = at.index(b.len());
                b[i] ^= x;
            }
            let len = cut.index(b.len() + 1);
            let _ = all(&b[..len]);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            head in 0usize..3,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut b = match head {
                0 => PCAP_MICRO.to_le_bytes().to_vec(),
                1 => PCAPNG.to_be_bytes().to_vec(),
                _ => Vec::new(),
            };
            b.extend_from_slice(&body);
            let _ = all(&b);
        }
    }
}
