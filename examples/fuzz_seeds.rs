//! Writes the fuzz targets' seed corpora (`fuzz/corpus/<target>/`) from the catalogue of every
//! message kind: `cargo run --example fuzz_seeds`. The files are checked in and replayed as tests
//! by `fc-frames/tests/fuzz_corpus.rs`, `fcip/tests/fuzz_corpus.rs` and
//! `controller/tests/fuzz_corpus.rs`.
//!
//! With FCIP captures as arguments (what `fcsan up --fcip-capture FILE` writes: one FCIP frame
//! a TCP segment), their TCP streams seed `encap`, `fsf` and `engine` too:
//! `cargo run --example fuzz_seeds -- up.fcip.pcap`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use controller::wire::{encode, Key};
use fc_frames::encap::{emit_encapsulated, EncapHeader, EncapHeaderRepr, PFlags, Timestamp};
use fc_frames::frame::fc_crc;
use fc_frames::{FcFrame, FcType, RCtl};
use fc_pcap::catalogue;
use fcip::fsf::SpecialFrame;
use fcip::fuzzing::engine_input;
use fcip::time::SNTP_UNIX_OFFSET;
use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;

/// Engine seeds hold about this many stream bytes at most, whole frames.
const STREAM_SEED_LEN: usize = 4 * 1024;
/// Engine seeds that fill the smallest receive buffer (`fcip::engine::MIN_BUFFERED`) hold this
/// many.
const BOUND_SEED_LEN: usize = 9 * 1024;

fn main() -> io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut seeds = Seeds { root, n: 0 };
    let frames = catalogue::conversation();
    for (i, f) in frames.iter().enumerate() {
        let name = format!("catalogue-{:03}", i + 1);
        seeds.write("frame", &name, &f.to_delimited_vec())?;
        let p = &f.payload[..];
        match (f.header.fc_type, f.header.r_ctl) {
            (FcType::ELS, _) | (FcType::BLS, _) => seeds.write("els", &name, p)?,
            (FcType::CT, _) => seeds.write("ct", &name, p)?,
            (FcType::FCP, RCtl::UNSOLICITED_COMMAND) => {
                seeds.write("fcp", &name, p)?;
                // The CDB sits at bytes 12..28 of FCP_CMND.
                if let Some(cdb) = p.get(12..28) {
                    seeds.write("cdb", &name, cdb)?;
                }
            }
            (FcType::FCP, _) => seeds.write("fcp", &name, p)?,
            _ => {}
        }
    }
    catalogue_fcip(&mut seeds, &frames)?;
    controller_msg(&mut seeds)?;
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        capture_fcip(&mut seeds, &path)?;
    }
    println!("wrote {} seeds under {}", seeds.n, seeds.root.display());
    Ok(())
}

struct Seeds {
    root: PathBuf,
    n: usize,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir)?;
        self.n += 1;
        fs::write(dir.join(name), bytes)
    }
}

/// The controllers' messages, one of every kind (request, reply, reject), signed with the key
/// the `controller_msg` target decodes with.
fn controller_msg(seeds: &mut Seeds) -> io::Result<()> {
    let key = Key::new(controller::fuzzing::KEY);
    for (i, msg) in controller::catalogue::messages().iter().enumerate() {
        let name = controller::fuzzing::seed_name(i, msg);
        seeds.write("controller_msg", &name, &encode(msg, &key))?;
    }
    Ok(())
}

/// The catalogue's time stamp for frame `i`: START plus `i` milliseconds, in SNTP format.
fn stamp(i: usize) -> Timestamp {
    let t = catalogue::START + std::time::Duration::from_millis(i as u64);
    Timestamp {
        seconds: (t.as_secs() + SNTP_UNIX_OFFSET) as u32,
        fraction: ((u64::from(t.subsec_nanos()) << 32) / 1_000_000_000) as u32,
    }
}

/// The Special Frame the catalogue's switch would open an FCIP connection with.
fn catalogue_fsf() -> SpecialFrame {
    SpecialFrame {
        changed: false,
        timestamp: stamp(0),
        source_fabric: catalogue::FABRIC_WWN,
        source_entity: [0, 0, 0, 0, 0, 0, 0, 1],
        nonce: 0x5eed_0000_0000_0001,
        usage_flags: 0,
        usage_code: 0,
        destination_fabric: catalogue::F_PORT_WWPN,
        k_a_tov_ms: 10_000,
    }
}

/// Engine configurations the seeds use (flags of `fcip::fuzzing::engine_input`): Resync with
/// the default buffer, Close, the smallest buffer, and a transit limit.
const CONFIGS: [u8; 4] = [0x00, 0x01, 0x02, 0x04];

/// The catalogue sent over FCIP: `encap` and `fsf` seeds, and engine seeds of the stream a
/// connection carries (a Special Frame, then the frames), whole, in windows of whole frames,
/// and with the damage the engine's tests do to it.
fn catalogue_fcip(seeds: &mut Seeds, frames: &[FcFrame]) -> io::Result<()> {
    let fsf = catalogue_fsf();
    seeds.write("fsf", "catalogue-sent", &fsf.emit())?;
    let echo = SpecialFrame {
        changed: true,
        usage_flags: 0x40,
        usage_code: 1,
        timestamp: Timestamp::ZERO,
        ..fsf
    };
    seeds.write("fsf", "catalogue-echo-changed", &echo.emit())?;

    let mut encapsulated = vec![fsf.emit().to_vec()];
    for (i, f) in frames.iter().enumerate() {
        let mut b = BytesMut::new();
        emit_encapsulated(f, stamp(i + 1), &mut b);
        seeds.write("encap", &format!("catalogue-{:03}", i + 1), &b)?;
        encapsulated.push(b.to_vec());
    }
    // Fill bytes that are not zero, under a CRC that covers them.
    if let Some((i, f)) = frames.iter().enumerate().find(|(_, f)| f.fill_len() > 0) {
        let mut b = BytesMut::new();
        emit_encapsulated(f, stamp(i + 1), &mut b);
        let crc_at = b.len() - 8;
        b[crc_at - f.fill_len()..crc_at].fill(0xa5);
        let crc = fc_crc(&b[32..crc_at]);
        b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        seeds.write("encap", "fill-not-zero", &b)?;
        let mut stream = b.to_vec();
        stream.extend_from_slice(&encapsulated[i + 1]);
        seeds.write(
            "engine",
            "fill-not-zero",
            &engine_input(0, Timestamp::ZERO, &[], &stream),
        )?;
    }

    let now = stamp(frames.len() / 2 + 1000);
    for (k, window) in windows(&encapsulated, STREAM_SEED_LEN).iter().enumerate() {
        let flags = CONFIGS[k % CONFIGS.len()];
        let reads: &[u16] = match k % 3 {
            0 => &[],
            1 => &[1460],
            _ => &[7, 100, 2048, 31],
        };
        let name = format!("catalogue-stream-{k:02}");
        seeds.write("engine", &name, &engine_input(flags, now, reads, window))?;
    }

    // Reads that fill the smallest buffer; a transit limit with no clock (`now` zero).
    for (k, window) in windows(&encapsulated, BOUND_SEED_LEN)
        .iter()
        .take(2)
        .enumerate()
    {
        let name = format!("catalogue-bound-{k:02}");
        seeds.write("engine", &name, &engine_input(0x02, now, &[8192], window))?;
    }
    if let Some(w) = windows(&encapsulated, STREAM_SEED_LEN).get(1) {
        let input = engine_input(0x04, Timestamp::ZERO, &[], w);
        seeds.write("engine", "catalogue-no-clock", &input)?;
    }
    // A header that says 544 words, then zeros (the engine's test_bounded_buffer).
    let mut long = EncapHeaderRepr::fcip(544 * 4, Timestamp::ZERO)
        .to_bytes()
        .to_vec();
    long.extend_from_slice(&[0x2e, 0x2e, 0xd1, 0xd1]);
    long.resize(BOUND_SEED_LEN, 0);
    seeds.write(
        "engine",
        "damaged-long-zeros",
        &engine_input(0x02, now, &[5000], &long),
    )?;

    // The damage of the engine's tests: garbage before the first frame, a bad EOF word, a bad
    // Special Frame, another protocol's header.
    let first: Vec<u8> = encapsulated
        .iter()
        .skip(1)
        .take(3)
        .flatten()
        .copied()
        .collect();
    let mut garbage = b"GET / HTTP/1.1\r\n\x01\x01\xfe\xfe\x01\x01\xfe\xfe".to_vec();
    garbage.extend_from_slice(&first);
    seeds.write(
        "engine",
        "damaged-garbage-first",
        &engine_input(0, now, &[1], &garbage),
    )?;
    // Word 0 once too often before a frame, while resynchronizing: a pattern 4 bytes before
    // the real one.
    let mut repeated = b"GET / HTTP/1.1\r\n\x01\x01\xfe\xfe".to_vec();
    repeated.extend_from_slice(&first);
    let input = engine_input(0, now, &[], &repeated);
    seeds.write("engine", "damaged-repeated-word0", &input)?;
    let mut bad_eof = first.clone();
    if let Some(len) = encapsulated.get(1).map(Vec::len) {
        bad_eof[len - 1] ^= 1;
    }
    seeds.write(
        "engine",
        "damaged-bad-eof",
        &engine_input(0, now, &[], &bad_eof),
    )?;
    let mut bad_fsf = fsf.emit().to_vec();
    bad_fsf[30] = 0;
    bad_fsf.extend_from_slice(&first);
    seeds.write(
        "engine",
        "damaged-bad-fsf",
        &engine_input(0, now, &[64], &bad_fsf),
    )?;
    let mut ifcp = first;
    for w in [0, 4] {
        ifcp[w..w + 4].copy_from_slice(&[0x02, 0x01, 0xfd, 0xfe]);
    }
    seeds.write("engine", "damaged-ifcp", &engine_input(1, now, &[], &ifcp))?;
    Ok(())
}

/// Cuts a stream of encapsulated frames into windows of whole frames, each at most `max`
/// bytes (or one frame): the first starts the stream, the others start where the one before
/// ended.
fn windows(frames: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![Vec::new()];
    for f in frames {
        let full = out
            .last()
            .is_some_and(|w| !w.is_empty() && w.len() + f.len() > max);
        if full {
            out.push(Vec::new());
        }
        if let Some(w) = out.last_mut() {
            w.extend_from_slice(f);
        }
    }
    out
}

/// Seeds from an FCIP capture: the payload of each TCP segment is one encapsulated frame or
/// Special Frame, and each direction of each connection is a stream.
fn capture_fcip(seeds: &mut Seeds, path: &Path) -> io::Result<()> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("capture")
        .replace('.', "-");
    let mut reader = PcapReader::new(File::open(path)?).map_err(io::Error::other)?;
    if reader.header().datalink != DataLink::ETHERNET {
        return Err(io::Error::other(format!(
            "{}: not Ethernet",
            path.display()
        )));
    }
    // Segments by flow (source and destination address and port, as bytes), in order.
    let mut flows: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.map_err(io::Error::other)?;
        if let Some((flow, payload)) = tcp_payload(&pkt.data) {
            if !payload.is_empty() {
                flows.entry(flow).or_default().push(payload.to_vec());
            }
        }
    }
    let mut kinds = BTreeMap::new();
    for (f, segments) in flows.values().enumerate() {
        for (s, seg) in segments.iter().enumerate() {
            let Ok(h) = EncapHeader::new_checked(&seg[..]).map(|v| EncapHeaderRepr::parse(&v))
            else {
                continue;
            };
            let Ok(h) = h else { continue };
            if h.flags.contains(PFlags::SPECIAL_FRAME) {
                seeds.write("fsf", &format!("{stem}-flow{f}-{s}"), seg)?;
            } else {
                // One seed for each kind of frame: R_CTL, TYPE and the length in words.
                let kind = (
                    seg.get(32..33).map(<[u8]>::to_vec),
                    seg.get(40..41).map(<[u8]>::to_vec),
                    h.frame_len,
                );
                if kinds.insert(kind, ()).is_none() {
                    seeds.write("encap", &format!("{stem}-flow{f}-{s}"), seg)?;
                }
            }
        }
        let now = Timestamp::ZERO;
        for (k, window) in windows(segments, STREAM_SEED_LEN)
            .iter()
            .take(4)
            .enumerate()
        {
            let reads: &[u16] = if k == 0 { &[] } else { &[1448, 3] };
            let name = format!("{stem}-flow{f}-stream{k}");
            seeds.write(
                "engine",
                &name,
                &engine_input(CONFIGS[k % 3], now, reads, window),
            )?;
        }
    }
    Ok(())
}

/// The flow key and TCP payload of an Ethernet/IPv4 or IPv6/TCP packet.
fn tcp_payload(frame: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let ip = frame.get(14..)?;
    let (addrs, tcp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes(ip.get(2..4)?.try_into().ok()?));
            (ip.get(12..20)?, ip.get(ihl..total)?)
        }
        0x86dd => {
            let payload = usize::from(u16::from_be_bytes(ip.get(4..6)?.try_into().ok()?));
            (ip.get(8..40)?, ip.get(40..40 + payload)?)
        }
        _ => return None,
    };
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let mut flow = addrs.to_vec();
    flow.extend_from_slice(tcp.get(..4)?);
    Some((flow, tcp.get(offset..)?))
}
