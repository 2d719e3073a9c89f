//! Capture files of Fibre Channel frames: pcap with link type 225 (FC-2 with SOF/EOF ordered
//! sets and CRC, which Wireshark verifies) for writing; 225 and 224 (FC-2 without delimiters or
//! CRC) for reading.
//!
//! Each frame is its own record. Timestamps are supplied by the caller, so a capture of a
//! scripted exchange is byte-identical from run to run.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use fc_frames::frame::{FrameError, MAX_PAYLOAD};
use fc_frames::{Eof, FcFrame, FrameHeaderRepr, Sof};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

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
}

/// Reads every record of an FC capture (link type 225 or 224).
pub fn read(reader: impl Read) -> Result<Vec<Record>, CaptureError> {
    let mut r = PcapReader::new(reader).map_err(CaptureError::ReadHeader)?;
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
        let frame = match datalink {
            DataLink::FC_2 => undelimited(data),
            _ => FcFrame::parse_delimited(data),
        };
        out.push(Record {
            number: out.len() + 1,
            ts: pkt.timestamp,
            frame,
        });
    }
    Ok(out)
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
