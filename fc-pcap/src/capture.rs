//! Capture files of Fibre Channel frames: pcap with link type 225 (FC-2 with SOF/EOF ordered
//! sets and CRC, which Wireshark verifies) for writing; 225 and 224 (FC-2 without delimiters or
//! CRC) for reading.
//!
//! Each frame is its own record. Timestamps are supplied by the caller, so a capture of a
//! scripted exchange is byte-identical from run to run.
//!
//! A role's own capture ([`RoleCaptureWriter`], what `--capture` writes) is pcapng: the
//! Section Header Block names the application (`shb_userappl` "fcsan VERSION") and carries
//! one line of JSON in its comment, the [`Metadata`] a replay needs to start a fresh instance
//! (`{"fcsan_capture":1,"role":...,"seed":...,"clock_origin_ns":...,"config":...}`); each
//! link or port is an Interface Description Block (`if_name` "port 3", "link to switch",
//! nanosecond time stamps), and each packet's `epb_flags` says whether the capturing role
//! received it (inbound) or sent it (outbound). [`read`] reads both formats.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use fc_frames::frame::{FrameError, MAX_PAYLOAD};
use fc_frames::{Eof, FcFrame, FrameHeaderRepr, Sof};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::borrow::Cow;

/// Why a capture could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be created, opened or flushed.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The pcap file header could not be written.
    #[error("writing the pcap header")]
    WriteHeader(#[source] PcapError),
    /// The pcap file header could not be read: not a pcap file, or cut short.
    #[error("reading the pcap header")]
    ReadHeader(#[source] PcapError),
    /// A record could not be written.
    #[error("writing a pcap record")]
    Write(#[source] PcapError),
    /// The `number`th record (from 1) could not be read.
    #[error("reading pcap record {number}")]
    Read {
        /// Its number.
        number: usize,
        /// Why.
        #[source]
        source: PcapError,
    },
    /// The capture holds another link type than Fibre Channel.
    #[error(
        "link type {0} is not Fibre Channel (expected 225, FC-2 with delimiters, or 224, FC-2)"
    )]
    NotFibreChannel(u32),
    /// The capture is pcapng, but a packet names an interface it never described.
    #[error("record {number} names interface {interface}, which the capture does not describe")]
    NoInterface {
        /// The record's number.
        number: usize,
        /// The interface it names.
        interface: u32,
    },
    /// The capture file is neither pcap nor pcapng.
    #[error("not a pcap or pcapng file (no pcap header; first bytes {0:02x?})")]
    NotACapture(Vec<u8>),
    /// Reading the capture file at `path` failed.
    #[error("reading {}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<CaptureError>,
    },
}

/// Writes FC frames to a pcap stream, one frame a record, link type 225.
pub struct FcPcapWriter<W: Write> {
    inner: PcapWriter<W>,
    buf: Vec<u8>,
}

impl<W: Write> FcPcapWriter<W> {
    /// Starts a capture: writes the pcap file header (little-endian, microseconds, link type 225).
    pub fn new(writer: W) -> Result<Self, CaptureError> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 65535,
            datalink: DataLink::FC_2_WITH_FRAME_DELIMS,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::Little,
        };
        Ok(FcPcapWriter {
            inner: PcapWriter::with_header(writer, header).map_err(CaptureError::WriteHeader)?,
            buf: Vec::with_capacity(fc_frames::frame::MAX_FRAME_LEN + 8),
        })
    }

    /// Appends one frame, with SOF/EOF ordered sets and CRC, stamped `ts` after the epoch.
    pub fn write(&mut self, ts: Duration, frame: &FcFrame) -> Result<(), CaptureError> {
        self.buf.resize(frame.delimited_len(), 0);
        frame.emit_delimited(&mut self.buf);
        let len = self.buf.len() as u32;
        self.inner
            .write_packet(&PcapPacket::new(ts, len, &self.buf))
            .map_err(CaptureError::Write)?;
        Ok(())
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> W {
        self.inner.into_writer()
    }
}

/// Writes `frames` to a new pcap file at `path`, stamped 1 ms apart from `start`.
pub fn write_file(path: &Path, start: Duration, frames: &[FcFrame]) -> Result<(), CaptureError> {
    let file_error = |source| CaptureError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(file_error)?;
    let mut w = FcPcapWriter::new(BufWriter::new(file))?;
    for (i, f) in frames.iter().enumerate() {
        w.write(start + Duration::from_millis(i as u64), f)?;
    }
    w.into_inner().flush().map_err(file_error)?;
    Ok(())
}

/// One record of a capture.
#[derive(Debug)]
pub struct Record {
    /// Record number, from 1 as Wireshark counts.
    pub number: usize,
    /// Time stamp.
    pub ts: Duration,
    /// The frame, or why it is not one.
    pub frame: Result<FcFrame, FrameError>,
    /// The interface (pcapng: the link or port) it was captured on; 0 in a pcap file.
    pub interface: usize,
    /// Which way it went, when the capture says (pcapng `epb_flags`).
    pub direction: Option<Direction>,
}

/// Reads every record of an FC capture (pcap or pcapng, link type 225 or 224).
pub fn read(mut reader: impl Read) -> Result<Vec<Record>, CaptureError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| CaptureError::ReadHeader(PcapError::IoError(e)))?;
    if bytes.starts_with(&PCAPNG_MAGIC) {
        let capture = read_pcapng(&bytes[..])?;
        let mut out = Vec::with_capacity(capture.packets.len());
        for p in capture.packets {
            let linktype = capture.interfaces[p.interface].linktype;
            if !matches!(linktype, DataLink::FC_2_WITH_FRAME_DELIMS | DataLink::FC_2) {
                return Err(CaptureError::NotFibreChannel(u32::from(linktype)));
            }
            out.push(Record {
                number: p.number,
                ts: p.ts,
                frame: fc_frame(linktype, Bytes::from(p.data)),
                interface: p.interface,
                direction: p.direction,
            });
        }
        return Ok(out);
    }
    const PCAP_MAGICS: [[u8; 4]; 4] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
    ];
    if bytes.len() >= 4 && !PCAP_MAGICS.iter().any(|m| bytes.starts_with(m)) {
        return Err(CaptureError::NotACapture(bytes[..4].to_vec()));
    }
    let mut r = PcapReader::new(&bytes[..]).map_err(CaptureError::ReadHeader)?;
    let datalink = r.header().datalink;
    if !matches!(datalink, DataLink::FC_2_WITH_FRAME_DELIMS | DataLink::FC_2) {
        return Err(CaptureError::NotFibreChannel(u32::from(datalink)));
    }
    let mut out = Vec::new();
    while let Some(pkt) = r.next_packet() {
        let pkt = pkt.map_err(|source| CaptureError::Read {
            number: out.len() + 1,
            source,
        })?;
        let data = Bytes::copy_from_slice(&pkt.data);
        out.push(Record {
            number: out.len() + 1,
            ts: pkt.timestamp,
            frame: fc_frame(datalink, data),
            interface: 0,
            direction: None,
        });
    }
    Ok(out)
}

/// The frame of a record of link type 225 or 224.
fn fc_frame(datalink: DataLink, data: Bytes) -> Result<FcFrame, FrameError> {
    match datalink {
        DataLink::FC_2 => undelimited(data),
        _ => FcFrame::parse_delimited(data),
    }
}

/// Reads every record of the FC capture file at `path`.
pub fn read_file(path: &Path) -> Result<Vec<Record>, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::File {
        path: path.to_path_buf(),
        source,
    })?;
    read(BufReader::new(file)).map_err(|e| CaptureError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Link type 224 records hold header and payload with neither delimiters nor CRC: the frame is
/// taken as class 3, one frame a sequence, and its fill count as given.
pub fn undelimited(data: Bytes) -> Result<FcFrame, FrameError> {
    let header = FrameHeaderRepr::parse_bytes(&data)?;
    let mut payload = data.slice(fc_frames::header::HEADER_LEN..);
    let fill = header.f_ctl.fill_bytes().min(payload.len());
    payload.truncate(payload.len() - fill);
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLong {
            len: data.len() + fc_frames::frame::CRC_LEN,
        });
    }
    Ok(FcFrame::new(Sof::I3, header, payload, Eof::T))
}

/// The first four bytes of a pcapng file (its Section Header Block's type).
pub const PCAPNG_MAGIC: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

/// The value of the metadata's `fcsan_capture` key: the version of its layout.
pub const METADATA_VERSION: u64 = 1;

/// Which way a packet went, seen from the role that captured it (pcapng `epb_flags` bits 0-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The capturing role received it.
    Inbound,
    /// The capturing role sent it.
    Outbound,
}

impl Direction {
    fn flags(self) -> u32 {
        match self {
            Direction::Inbound => 0b01,
            Direction::Outbound => 0b10,
        }
    }

    fn from_flags(flags: u32) -> Option<Direction> {
        match flags & 0b11 {
            0b01 => Some(Direction::Inbound),
            0b10 => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// What a fresh instance of the capturing role needs: one line of JSON in the Section Header
/// Block's comment. `role` is `switch`, `gateway`, `array`, `controller` or `host`; `seed` and
/// `clock_origin_ns` (the wall time, in ns since the Unix epoch, the role started at) are the
/// randomness and time it ran with; `config` is the role's configuration, in the layout its
/// replay reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The capturing role.
    pub role: String,
    /// The seed of its randomness (exchange IDs, nonces).
    pub seed: u64,
    /// When it started, in ns since the Unix epoch.
    pub clock_origin_ns: u64,
    /// Its configuration.
    pub config: serde_json::Value,
    /// Anything else the role wrote (other keys of the object).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    /// The one line of JSON.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("fcsan_capture".into(), METADATA_VERSION.into());
        m.insert("role".into(), self.role.clone().into());
        m.insert("seed".into(), self.seed.into());
        m.insert("clock_origin_ns".into(), self.clock_origin_ns.into());
        m.insert("config".into(), self.config.clone());
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        serde_json::Value::Object(m).to_string()
    }

    /// Reads the metadata from a Section Header Block comment; `None` when the comment is not
    /// fcsan's (no JSON object with `fcsan_capture`).
    pub fn from_json(text: &str) -> Option<Result<Metadata, String>> {
        let serde_json::Value::Object(mut m) = serde_json::from_str(text.trim()).ok()? else {
            return None;
        };
        let version = m.remove("fcsan_capture")?;
        Some((|| {
            if version.as_u64() != Some(METADATA_VERSION) {
                return Err(format!(
                    "metadata layout {version} (this fcsan reads {METADATA_VERSION})"
                ));
            }
            let role = match m.remove("role") {
                Some(serde_json::Value::String(r)) => r,
                _ => return Err("the metadata has no role".into()),
            };
            let number = |m: &mut serde_json::Map<String, serde_json::Value>, key: &str| {
                m.remove(key)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| format!("the metadata has no {key}"))
            };
            let seed = number(&mut m, "seed")?;
            let clock_origin_ns = number(&mut m, "clock_origin_ns")?;
            let config = m.remove("config").unwrap_or(serde_json::Value::Null);
            Ok(Metadata {
                role,
                seed,
                clock_origin_ns,
                config,
                extra: m,
            })
        })())
    }
}

/// A role's capture as read back: what the Section Header Block says, the interfaces, and
/// every packet with its direction.
#[derive(Debug, Clone)]
pub struct RoleCapture {
    /// `shb_userappl`, when given.
    pub application: Option<String>,
    /// The Section Header Block's comment, when given.
    pub comment: Option<String>,
    /// The interfaces, in order of description.
    pub interfaces: Vec<Interface>,
    /// The packets, in file order.
    pub packets: Vec<Packet>,
}

impl RoleCapture {
    /// fcsan's metadata: `None` when the capture has none (another tool wrote it).
    pub fn metadata(&self) -> Option<Result<Metadata, String>> {
        Metadata::from_json(self.comment.as_deref()?)
    }
}

/// An interface of a pcapng capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name` ("port 3", "link to switch"), or "" when not given.
    pub name: String,
    /// Its link type.
    pub linktype: DataLink,
}

/// One packet of a pcapng capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its number, from 1 as Wireshark counts.
    pub number: usize,
    /// Index of its interface in [`RoleCapture::interfaces`].
    pub interface: usize,
    /// Time stamp, since the Unix epoch.
    pub ts: Duration,
    /// Which way it went, when the capture says.
    pub direction: Option<Direction>,
    /// The packet's bytes (for FC: the frame with SOF, CRC and EOF).
    pub data: Vec<u8>,
}

/// Reads a pcapng capture: its section header, interfaces and packets (Enhanced and Simple
/// Packet Blocks; other blocks are skipped).
pub fn read_pcapng(reader: impl Read) -> Result<RoleCapture, CaptureError> {
    let mut r = PcapNgReader::new(reader).map_err(CaptureError::ReadHeader)?;
    let section = r.section().clone();
    let mut capture = RoleCapture {
        application: None,
        comment: None,
        interfaces: Vec::new(),
        packets: Vec::new(),
    };
    for o in &section.options {
        match o {
            SectionHeaderOption::UserApplication(a) => capture.application = Some(a.to_string()),
            SectionHeaderOption::Comment(c) => capture.comment = Some(c.to_string()),
            _ => {}
        }
    }
    // Time stamp units per interface, in ns (if_tsresol; microseconds when not given).
    let mut units: Vec<u64> = Vec::new();
    while let Some(block) = r.next_block() {
        let number = capture.packets.len() + 1;
        let block = block.map_err(|source| CaptureError::Read { number, source })?;
        match block {
            Block::InterfaceDescription(idb) => {
                let mut name = String::new();
                let mut unit = 1_000;
                for o in &idb.options {
                    match o {
                        InterfaceDescriptionOption::IfName(n) => name = n.to_string(),
                        InterfaceDescriptionOption::IfTsResol(r) => unit = ts_unit_ns(*r),
                        _ => {}
                    }
                }
                units.push(unit);
                capture.interfaces.push(Interface {
                    name,
                    linktype: idb.linktype,
                });
            }
            Block::EnhancedPacket(epb) => {
                let interface = epb.interface_id as usize;
                let Some(unit) = units.get(interface) else {
                    return Err(CaptureError::NoInterface {
                        number,
                        interface: epb.interface_id,
                    });
                };
                // pcap-file hands the raw count as nanoseconds.
                let raw = epb.timestamp.as_nanos() as u64;
                let direction = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Flags(f) => Direction::from_flags(*f),
                    _ => None,
                });
                capture.packets.push(Packet {
                    number,
                    interface,
                    ts: Duration::from_nanos(raw.saturating_mul(*unit)),
                    direction,
                    data: epb.data.to_vec(),
                });
            }
            Block::SimplePacket(spb) => {
                if capture.interfaces.is_empty() {
                    return Err(CaptureError::NoInterface {
                        number,
                        interface: 0,
                    });
                }
                capture.packets.push(Packet {
                    number,
                    interface: 0,
                    ts: Duration::ZERO,
                    direction: None,
                    data: spb.data.to_vec(),
                });
            }
            _ => {}
        }
    }
    Ok(capture)
}

/// Reads the pcapng capture file at `path`.
pub fn read_pcapng_file(path: &Path) -> Result<RoleCapture, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::File {
        path: path.to_path_buf(),
        source,
    })?;
    read_pcapng(BufReader::new(file)).map_err(|e| CaptureError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// The unit, in ns, of an `if_tsresol` value: 10^-n s, or 2^-n s with the high bit set
/// (rounded to whole ns).
fn ts_unit_ns(resol: u8) -> u64 {
    if resol & 0x80 == 0 {
        10u64.pow(9u32.saturating_sub(u32::from(resol)))
    } else {
        (1_000_000_000u64 >> u32::from(resol & 0x7F).min(63)).max(1)
    }
}

/// Writes a role's capture as pcapng: the metadata in the Section Header Block, an interface
/// for each link or port as it first carries a packet, and every packet with its direction.
pub struct RoleCaptureWriter<W: Write> {
    inner: PcapNgWriter<W>,
    linktype: DataLink,
    interfaces: Vec<String>,
    buf: Vec<u8>,
}

impl<W: Write> RoleCaptureWriter<W> {
    /// Starts a capture of packets of `linktype` (225 for FC frames, 1 for Ethernet): writes
    /// the Section Header Block with `metadata`.
    pub fn new(writer: W, metadata: &Metadata, linktype: DataLink) -> Result<Self, CaptureError> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![
                SectionHeaderOption::Comment(Cow::Owned(metadata.to_json())),
                SectionHeaderOption::UserApplication(Cow::Owned(format!(
                    "fcsan {}",
                    env!("CARGO_PKG_VERSION")
                ))),
            ],
        };
        Ok(RoleCaptureWriter {
            inner: PcapNgWriter::with_section_header(writer, section)
                .map_err(CaptureError::WriteHeader)?,
            linktype,
            interfaces: Vec::new(),
            buf: Vec::with_capacity(fc_frames::frame::MAX_FRAME_LEN + 8),
        })
    }

    /// The number of interface `name`, described on first use.
    fn interface(&mut self, name: &str) -> Result<u32, CaptureError> {
        if let Some(i) = self.interfaces.iter().position(|n| n == name) {
            return Ok(i as u32);
        }
        let idb = InterfaceDescriptionBlock {
            linktype: self.linktype,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name.to_owned())),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.inner
            .write_pcapng_block(idb)
            .map_err(CaptureError::Write)?;
        self.interfaces.push(name.to_owned());
        Ok(self.interfaces.len() as u32 - 1)
    }

    /// Appends one FC frame (with SOF/EOF and CRC) seen on `interface` at `ts` (since the
    /// Unix epoch).
    pub fn write_frame(
        &mut self,
        interface: &str,
        ts: Duration,
        direction: Direction,
        frame: &FcFrame,
    ) -> Result<(), CaptureError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(frame.delimited_len(), 0);
        frame.emit_delimited(&mut buf);
        let r = self.write_packet(interface, ts, direction, &buf);
        self.buf = buf;
        r
    }

    /// Appends one packet of the capture's link type.
    pub fn write_packet(
        &mut self,
        interface: &str,
        ts: Duration,
        direction: Direction,
        data: &[u8],
    ) -> Result<(), CaptureError> {
        let interface_id = self.interface(interface)?;
        let epb = EnhancedPacketBlock {
            interface_id,
            timestamp: ts,
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![EnhancedPacketOption::Flags(direction.flags())],
        };
        self.inner
            .write_pcapng_block(epb)
            .map_err(CaptureError::Write)?;
        Ok(())
    }

    /// The writer.
    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.inner.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Metadata {
        Metadata {
            role: "array".into(),
            seed: 7,
            clock_origin_ns: 1_700_000_000_000_000_000,
            config: serde_json::json!({"port_name": "21:00:00:00:00:00:00:01"}),
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn role_capture_round_trip() {
        let frames = crate::catalogue::conversation();
        let mut w =
            RoleCaptureWriter::new(Vec::new(), &metadata(), DataLink::FC_2_WITH_FRAME_DELIMS)
                .unwrap();
        let t0 = Duration::from_nanos(metadata().clock_origin_ns);
        for (i, f) in frames.iter().take(4).enumerate() {
            let (iface, dir) = if i % 2 == 0 {
                ("link to switch", Direction::Outbound)
            } else {
                ("port 3", Direction::Inbound)
            };
            w.write_frame(iface, t0 + Duration::from_nanos(i as u64 * 1_001), dir, f)
                .unwrap();
        }
        let bytes = w.into_inner();
        let c = read_pcapng(&bytes[..]).unwrap();
        assert_eq!(c.application.as_deref(), Some("fcsan 0.1.0"));
        assert_eq!(c.metadata().unwrap().unwrap(), metadata());
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[1].name, "port 3");
        assert_eq!(c.packets[3].ts, t0 + Duration::from_nanos(3_003));
        assert_eq!(c.packets[3].direction, Some(Direction::Inbound));
        assert_eq!(c.packets[2].interface, 0);
        let records = read(&bytes[..]).unwrap();
        assert_eq!(records.len(), 4);
        for (r, f) in records.iter().zip(&frames) {
            assert_eq!(r.frame.as_ref().unwrap(), f);
        }
    }

    #[test]
    fn metadata_of_another_tool_is_none() {
        assert!(Metadata::from_json("captured by dumpcap").is_none());
        assert!(Metadata::from_json("{\"a\":1}").is_none());
        assert!(Metadata::from_json("{\"fcsan_capture\":2,\"role\":\"x\"}")
            .unwrap()
            .is_err());
    }

    #[test]
    fn garbage_is_not_a_capture() {
        assert!(matches!(
            read(&b"hello, world"[..]),
            Err(CaptureError::NotACapture(_))
        ));
    }
}
