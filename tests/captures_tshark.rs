//! tshark 4.0.17 with `captures/fcsan.lua` and nothing else (no Decode As): every capture in
//! `captures/` dissects with no malformed packet and no error-level expert item, and FCIP is
//! found on whatever TCP port carries it, however the frames are cut into segments.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use fc_frames::encap::{emit_encapsulated, Timestamp};
use fc_frames::{FcFrame, Wwn};
use fcip::capture::TcpCapture;
use fcip::SpecialFrame;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod support;

/// `tshark -X lua_script:captures/fcsan.lua -r FILE -T fields -e ...`, one row a packet, the
/// fields in the order asked.
fn tshark(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let lua = format!("lua_script:{}", repo().join("captures/fcsan.lua").display());
    support::tshark(pcap, &["-X", &lua], fields)
        .into_iter()
        .map(|row| {
            fields
                .iter()
                .map(|f| row.get(*f).cloned().unwrap_or_default())
                .collect()
        })
        .collect()
}

/// Packets with a malformed item or an error-level expert item: (frame number, protocols).
fn damaged(pcap: &Path) -> Vec<(String, String)> {
    tshark(
        pcap,
        &[
            "frame.number",
            "frame.protocols",
            "_ws.malformed",
            "_ws.expert.severity",
        ],
    )
    .into_iter()
    .filter(|r| {
        let malformed = r.get(2).is_some_and(|v| !v.is_empty());
        // Wireshark's PI_ERROR is 0x00800000.
        let error = r
            .get(3)
            .is_some_and(|v| v.split(',').any(|s| s == "8388608"));
        malformed || error
    })
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

#[test]
fn every_capture_in_captures_dissects_clean_without_decode_as() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("captures"))
        .expect("captures/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no capture in captures/");
    for f in &files {
        let bad = damaged(f);
        assert!(bad.is_empty(), "{}: {bad:?}", f.display());
        // Every TCP segment that carries bytes is FCIP: found without Decode As.
        let rows = tshark(f, &["frame.number", "frame.protocols", "tcp.len"]);
        for r in rows {
            let carries = r.get(2).is_some_and(|l| !l.is_empty() && l != "0");
            if r[1].contains(":tcp") && carries {
                assert!(
                    r[1].contains("fcsan_fcip"),
                    "{} frame {}: {} (FCIP not found)",
                    f.display(),
                    r[0],
                    r[1]
                );
            }
        }
    }
}

/// An FCIP stream on an unusual port, as another tool might cut it: a Special Frame and its
/// echo, three FCIP frames in one segment, one frame over three segments.
#[test]
fn fcip_on_any_port_in_any_segmentation_needs_no_decode_as() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("odd.pcap");
    let a: SocketAddr = "127.0.0.1:40123".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:51999".parse().unwrap();
    let fsf = SpecialFrame {
        changed: false,
        timestamp: Timestamp::ZERO,
        source_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee01),
        source_entity: [0, 0, 0, 0, 0, 0, 0, 1],
        nonce: 0x0102_0304_0506_0708,
        usage_flags: 0,
        usage_code: 0,
        destination_fabric: Wwn::from_u64(0x1000_0000_c0ff_ee02),
        k_a_tov_ms: 10_000,
    }
    .emit();
    let frames: Vec<FcFrame> = fc_pcap::catalogue::conversation()
        .into_iter()
        .take(4)
        .collect();
    let encap = |f: &FcFrame| {
        let mut buf = BytesMut::new();
        emit_encapsulated(f, Timestamp::ZERO, &mut buf);
        buf.to_vec()
    };
    let mut cap = TcpCapture::new(std::fs::File::create(&pcap).unwrap()).unwrap();
    let mut t = 0;
    let mut at = |ms: u64| {
        t += ms;
        Duration::from_millis(t)
    };
    cap.record(at(1), a, b, &fsf).unwrap();
    cap.record(at(1), b, a, &fsf).unwrap();
    let three: Vec<u8> = frames[..3].iter().flat_map(&encap).collect();
    cap.record(at(1), a, b, &three).unwrap();
    let split = encap(&frames[3]);
    let third = split.len() / 3;
    for piece in [&split[..10], &split[10..third], &split[third..]] {
        cap.record(at(1), a, b, piece).unwrap();
    }
    drop(cap);

    assert_eq!(damaged(&pcap), Vec::<(String, String)>::new());
    let rows = tshark(
        &pcap,
        &[
            "frame.number",
            "fcsan_fcip.srcwwn",
            "fcsan_fcip.sf",
            "fc.ox_id",
        ],
    );
    let wwn = rows
        .iter()
        .find_map(|r| Some(r[1].clone()).filter(|w| !w.is_empty()))
        .expect("a Special Frame");
    assert_eq!(wwn, "10:00:00:00:c0:ff:ee:01");
    // Every FC frame once: three in packet 3, the split one in the packet that completes it.
    let ox: Vec<String> = rows
        .iter()
        .flat_map(|r| r[3].split(',').filter(|s| !s.is_empty()).map(str::to_owned))
        .collect();
    let want: Vec<String> = frames
        .iter()
        .map(|f| format!("0x{:04x}", f.header.ox_id))
        .collect();
    assert_eq!(ox, want, "{rows:?}");
    assert_eq!(rows[2][3].split(',').count(), 3, "{rows:?}");
    assert!(rows[3][3].is_empty() && rows[4][3].is_empty(), "{rows:?}");
    assert!(!rows[5][3].is_empty(), "{rows:?}");
}
