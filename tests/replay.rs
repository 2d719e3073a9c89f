//! Capture replay: every role capture in captures/ replays identically; a capture with one
//! byte of an outbound frame altered fails naming the frame and the field; an altered inbound
//! frame replays the same way every time; a separate `fcsan disk --capture` process writes a
//! capture that replays as an array.

#[path = "support/processes.rs"]
#[allow(dead_code)] // This test reads no role logs.
mod processes;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use fc_frames::FcFrame;
use fc_pcap::capture::{self, Direction, RoleCaptureWriter};
use processes::{fcsan, last_word, Proc};

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("captures/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no role captures in {} (record them: cargo run -- pcap record captures)",
        dir.display()
    );
    files
}

#[test]
fn every_capture_replays_identically() {
    for f in captures() {
        let o = replay::replay_file(&f, None)
            .unwrap_or_else(|e| panic!("{}: cannot replay: {e}", f.display()));
        assert!(o.expected > 0, "{}: nothing to compare", f.display());
        if let Some(d) = o.difference {
            panic!(
                "{} differs ({}; re-record after an intended change with: cargo run -- pcap \
                 record captures)",
                f.display(),
                d
            );
        }
        assert_eq!(o.sent, o.expected, "{}", f.display());
    }
}

/// Rewrites `from` to `to`, frame number `alter` (from 1) changed by `change`.
fn rewrite(
    from: &Path,
    to: &Path,
    pick: impl Fn(Direction, &FcFrame) -> bool,
    change: impl Fn(&mut FcFrame),
) -> usize {
    let c = capture::read_pcapng_file(from).expect("read");
    let meta = c.metadata().expect("metadata").expect("good metadata");
    let mut w = RoleCaptureWriter::new(
        std::fs::File::create(to).expect("create"),
        &meta,
        pcap_file::DataLink::FC_2_WITH_FRAME_DELIMS,
    )
    .expect("writer");
    let mut altered = 0;
    for p in &c.packets {
        let dir = p.direction.expect("direction");
        let mut f = FcFrame::parse_delimited(Bytes::from(p.data.clone())).expect("frame");
        if altered == 0 && pick(dir, &f) {
            change(&mut f);
            f = FcFrame::new(f.sof, f.header, f.payload.clone(), f.eof);
            altered = p.number;
        }
        w.write_frame(&c.interfaces[p.interface].name, p.ts, dir, &f)
            .expect("write");
    }
    assert!(altered > 0, "no frame to alter in {}", from.display());
    altered
}

fn array_capture() -> PathBuf {
    captures()
        .into_iter()
        .find(|f| replay::load(f, Some(replay::Role::Array)).is_ok())
        .expect("an array capture in captures/")
}

#[test]
fn an_altered_outbound_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("altered.pcapng");
    // The array's FCP_RSP: its SCSI status byte.
    let number = rewrite(
        &array_capture(),
        &out,
        |d, f| d == Direction::Outbound && f.header.r_ctl.0 == 0x07 && f.header.fc_type.0 == 0x08,
        |f| {
            let mut p = f.payload.to_vec();
            p[11] ^= 0x02;
            f.payload = Bytes::from(p);
        },
    );
    let o = replay::replay_file(&out, Some(replay::Role::Array)).expect("replays");
    let d = o.difference.expect("a difference");
    assert_eq!(d.frame, number);
    assert!(d.field.contains("FCP_RSP SCSI status"), "{d}");
    assert_eq!(
        (d.expected.as_str(), d.got.as_str()),
        ("0x02", "0x00"),
        "{d}"
    );
    // And through the command line: exit 1, the difference printed.
    let run = fcsan()
        .args(["pcap", "replay"])
        .arg(&out)
        .args(["--as", "array"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains(&format!("frame {number}: FCP_RSP SCSI status")),
        "{text}"
    );
}

#[test]
fn an_altered_inbound_frame_replays_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("altered-in.pcapng");
    // The host's READ CAPACITY becomes another command: the array answers it otherwise.
    rewrite(
        &array_capture(),
        &out,
        |d, f| {
            d == Direction::Inbound && f.header.r_ctl.0 == 0x06 && f.payload.get(12) == Some(&0x9e)
        },
        |f| {
            let mut p = f.payload.to_vec();
            p[12] = 0x00; // TEST UNIT READY
            f.payload = Bytes::from(p);
        },
    );
    let a = replay::replay_file(&out, None).expect("replays");
    let b = replay::replay_file(&out, None).expect("replays");
    assert!(
        a.difference.is_some(),
        "the altered command was answered the same"
    );
    assert_eq!(a, b, "two replays of one capture differ");
}

#[test]
fn bad_input_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("not.pcapng");
    std::fs::write(&text, b"not a capture at all").unwrap();
    let catalogue = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fc-frames.pcap");
    for (file, role, says) in [
        (text.as_path(), None, "not a pcap or pcapng file"),
        (catalogue.as_path(), None, "not a role's pcapng capture"),
        (
            array_capture().as_path(),
            Some("switch"),
            "not of the switch role",
        ),
    ] {
        let mut c = fcsan();
        c.args(["pcap", "replay"]).arg(file);
        if let Some(r) = role {
            c.args(["--as", r]);
        }
        let run = c.output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_disk_process_capture_replays_as_an_array() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let switch = d.join("switch.toml");
    std::fs::write(
        &switch,
        "[switch]\ndomain = 1\nname = \"10:00:00:00:c0:ff:ee:01\"\nlisten = \"127.0.0.1:0\"\nports = 4\n",
    )
    .unwrap();
    let sw = Proc::spawn(d, "switch", &switch, "switch");
    let addr = last_word(&sw.line("listening", |l| l.contains("listening on")));
    let disk = d.join("disk.toml");
    std::fs::write(
        &disk,
        format!(
            "[node]\nswitch = \"{addr}\"\nport_name = \"22:00:00:00:00:00:00:01\"\n\
             node_name = \"20:00:00:00:00:00:00:01\"\n\n[[lun]]\nlun = 0\npath = \"ssd0.img\"\n\
             size = \"1MiB\"\ntier = \"ssd\"\n"
        ),
    )
    .unwrap();
    let pcap = d.join("disk.pcapng");
    let mut child = fcsan()
        .args(["disk", "--config"])
        .arg(&disk)
        .arg("--capture")
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let online = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .any(|l| l.contains("logged in as"));
    assert!(online, "the disk array never logged in");
    std::thread::sleep(Duration::from_millis(200));
    // Killed: the capture is written as it goes.
    let _ = child.kill();
    let _ = child.wait();
    replays_identically(&pcap, "array");
}

/// The TCP payload of an FCIP capture's packet (Ethernet, IPv4 or IPv6, a TCP header of 20
/// bytes: what `fcsan gateway --capture` writes).
fn tcp_payload_offset(data: &[u8]) -> usize {
    let ip = if data[12..14] == [0x08, 0x00] { 20 } else { 40 };
    14 + ip + 20
}

#[test]
fn an_altered_outbound_fsf_field_is_named() {
    let from = captures()
        .into_iter()
        .find(|f| replay::load(f, Some(replay::Role::Gateway)).is_ok())
        .expect("a gateway capture in captures/");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("altered-fsf.pcapng");
    let c = capture::read_pcapng_file(&from).expect("read");
    let meta = c.metadata().expect("metadata").expect("good metadata");
    let mut w = RoleCaptureWriter::new(
        std::fs::File::create(&out).expect("create"),
        &meta,
        pcap_file::DataLink::ETHERNET,
    )
    .expect("writer");
    let mut altered = 0;
    for p in &c.packets {
        let dir = p.direction.expect("direction");
        let mut data = p.data.clone();
        let at = tcp_payload_offset(&data);
        let fsf = fcip::fsf::SpecialFrame::parse(&data[at..]);
        if let (0, Direction::Outbound, Ok(mut fsf)) = (altered, dir, fsf) {
            assert_eq!(fsf.k_a_tov_ms, 6000, "the recorded K_A_TOV");
            fsf.k_a_tov_ms = 9000;
            data[at..].copy_from_slice(&fsf.emit());
            altered = p.number;
        }
        w.write_packet(&c.interfaces[p.interface].name, p.ts, dir, &data)
            .expect("write");
    }
    drop(w);
    assert!(
        altered > 0,
        "no outbound Special Frame in {}",
        from.display()
    );
    let o = replay::replay_file(&out, None).expect("replays");
    let d = o.difference.expect("a difference");
    assert_eq!(d.frame, altered, "{d}");
    assert_eq!(d.field, "FSF K_A_TOV", "{d}");
    assert_eq!(
        (d.expected.as_str(), d.got.as_str()),
        ("9000 ms", "6000 ms")
    );
    // Through the command line: exit 1, the field named.
    let run = fcsan()
        .args(["pcap", "replay"])
        .arg(&out)
        .args(["--as", "gateway"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains(&format!("frame {altered}: FSF K_A_TOV: expected 9000 ms")),
        "{text}"
    );
}

/// A gateway.toml: domain `domain` named `name`, one peer `peer` on port 100 over two
/// connections (the replay tells them apart by their nonces), dialled at `dial` when given.
fn gateway_toml(domain: u8, name: &str, peer: &str, dial: Option<&str>) -> String {
    let dial = dial.map_or(String::new(), |d| format!("dial = \"{d}\"\n"));
    format!(
        "[switch]\ndomain = {domain}\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\nports = 4\n\n\
         [fcip]\nlisten = \"127.0.0.1:0\"\n\n\
         [[peer]]\nfabric = \"{peer}\"\n{dial}port = 100\nconnections = 2\n"
    )
}

#[test]
fn a_gateway_process_pcapng_capture_replays_as_a_gateway() {
    const A: &str = "10:00:00:00:c0:ff:ee:0a";
    const B: &str = "10:00:00:00:c0:ff:ee:0b";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b_toml = d.join("gateway-b.toml");
    std::fs::write(&b_toml, gateway_toml(2, B, A, None)).unwrap();
    let b = Proc::spawn(d, "gateway", &b_toml, "gateway-b");
    let b_fcip = last_word(&b.line("FCIP address", |l| {
        l.starts_with("FCIP listening on 127.0.0.1:")
    }));
    let a_toml = d.join("gateway-a.toml");
    std::fs::write(&a_toml, gateway_toml(1, A, B, Some(&b_fcip))).unwrap();
    let pcap = d.join("fcip-a.pcapng");
    let mut cmd = fcsan();
    cmd.args(["gateway", "--config"])
        .arg(&a_toml)
        .arg("--capture")
        .arg(&pcap);
    let mut a = Proc::start(d, cmd, "gateway-a");
    a.line("link up", |l| {
        l.starts_with(&format!("FCIP link to {B} ")) && l.contains("2 of 2 connection(s) up")
    });
    // EFP and the name-server reads across the link.
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    a.line("capture written", |l| l.contains("FCIP capture written to"));
    let _ = a.child.wait();
    replays_identically(&pcap, "gateway");
}

/// `fcsan pcap replay PCAP --as ROLE` exits 0, every frame identical, something compared.
fn replays_identically(pcap: &Path, role: &str) {
    let run = fcsan()
        .args(["pcap", "replay"])
        .arg(pcap)
        .args(["--as", role])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(text.contains("all identical"), "{text}");
    assert!(!text.contains(" 0 frames sent"), "nothing compared: {text}");
}

fn controller_capture() -> PathBuf {
    captures()
        .into_iter()
        .find(|f| replay::load(f, Some(replay::Role::Controller)).is_ok())
        .expect("a controller capture in captures/")
}

/// The key `fcsan pcap record` gives its controllers.
fn test_key() -> controller::wire::Key {
    controller::wire::Key::new(replay::record::TEST_KEY)
}

/// Decodes a frame's CT 0xE0 message (single-frame sequences only).
fn ct_message(f: &FcFrame) -> Option<controller::wire::Message> {
    if f.header.fc_type.0 != 0x20 || f.payload.get(4) != Some(&0xE0) {
        return None;
    }
    controller::wire::decode(&f.payload, &test_key()).ok()
}

#[test]
fn a_controller_capture_with_an_altered_outbound_field_names_it() {
    use controller::wire::{Message, Request};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("altered-controller.pcapng");
    // The controller's first HEARTBEAT says another site (re-signed with the test key, so
    // that only the field differs).
    let number = rewrite(
        &controller_capture(),
        &out,
        |d, f| {
            d == Direction::Outbound
                && matches!(
                    ct_message(f),
                    Some(Message::Request(_, Request::Heartbeat(_)))
                )
        },
        |f| {
            let Some(Message::Request(h, Request::Heartbeat(mut hb))) = ct_message(f) else {
                unreachable!("picked a heartbeat")
            };
            hb.site = "Z".into();
            let msg = Message::Request(h, Request::Heartbeat(hb));
            f.payload = Bytes::from(controller::wire::encode(&msg, &test_key()));
        },
    );
    let o = replay::replay_file(&out, None).expect("replays");
    assert_eq!(o.role, replay::Role::Controller);
    let d = o.difference.expect("a difference");
    assert_eq!(d.frame, number, "{d}");
    assert_eq!(d.field, "HEARTBEAT site", "{d}");
    assert_eq!((d.expected.as_str(), d.got.as_str()), ("Z", "B"), "{d}");
    let run = fcsan()
        .args(["pcap", "replay"])
        .arg(&out)
        .args(["--as", "controller"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains(&format!(
            "frame {number}: HEARTBEAT site: expected Z, got B"
        )),
        "{text}"
    );
}

#[test]
fn a_controller_capture_replays_with_a_key_file_and_not_with_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let capture = controller_capture();
    let hex: String = replay::record::TEST_KEY
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let good = dir.path().join("good.key");
    std::fs::write(&good, format!("{hex}\n")).unwrap();
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "00112233445566778899aabbccddeeff\n").unwrap();
    let run = |key: &Path| {
        fcsan()
            .args(["pcap", "replay"])
            .arg(&capture)
            .args(["--as", "controller", "--key-file"])
            .arg(key)
            .output()
            .unwrap()
    };
    let ok = run(&good);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.contains("all identical"), "{text}");
    let bad = run(&wrong);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("is the key the installation's?"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
