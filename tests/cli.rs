//! The `fcsan` binary as a user runs it: `fcsan up`, `fcsan pcap catalogue` and `fcsan pcap show`.

use std::path::Path;
use std::process::Command;

fn fcsan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fcsan"))
        .args(args)
        .output()
        .expect("run fcsan")
}

#[test]
fn up_runs_two_sans_joined_by_fcip_and_moves_a_file_across() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("san.pcap");
    let fcip = dir.path().join("fcip.pcap");
    let out = fcsan(&[
        "up",
        "--quiet",
        "--file-size",
        "4MiB",
        "--capture",
        pcap.to_str().expect("utf-8 path"),
        "--fcip-capture",
        fcip.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "site A: gateway 10:00:00:00:c0:ff:ee:01, domain 01",
        "site B: gateway 10:00:00:00:c0:ff:ee:02, domain 02",
        "host 21:00:00:00:00:00:00:01 logged in to site A as 01",
        "(010100) LUN 0   disk  ssd       524288 x 512 B (256.0 MiB)",
        "(020100) LUN 1   disk  slow-hdd  524288 x 512 B (256.0 MiB)",
        "(020100) LUN 0   disk  fast-hdd",
        "LUN 2   tape  -         no capacity",
        "wrote 4.0 MiB to 22:00:00:00:00:00:00:02 LUN 0 on site B",
        "): identical",
        "FCP initiator  fcsan host",
        "10:00:00:00:c0:ff:ee:02  100   yes                        2/2       2       0",
        &format!("FCIP capture: {}", fcip.display()),
        "FCP initiator+target fcsan controller ctl-a site A",
        "2 controllers up, each heartbeating to the other 1 as FC exchanges (CT GS_TYPE 0xE0)",
        "ctl-a built vol1 (64.0 MiB of SSD on site A); every controller had it",
        "host on site A wrote 4.0 MiB to vol1 (LUN ",
        "identical (cache miss: forwarded to ctl-a through the tunnel)",
        "identical (cache hit)",
        "Per-volume I/O counters:",
        "added a replica of vol1 on site B's 15k disk",
        "replica 1",
        "FCIP link after the I/O path",
        "ctl-b (site B), mapping information (figure 4 (a)):",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    // Site A's name server holds site B's array, at the FCIP link's port.
    assert!(
        stdout.lines().any(
            |l| l.starts_with("020100     100   22:00:00:00:00:00:00:02")
                && l.contains("FCP target     fcsan disk array hdd")
        ),
        "{stdout}"
    );
    // Site A: host, array, controller and link ports up, none dropping anything (nor holding a
    // frame past the hold time).
    let ports: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Site A switch port counters"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(ports.len(), 4, "{stdout}");
    assert!(
        ports
            .iter()
            .all(|l| l.contains("yes") && l.ends_with("0 (0, 0, 0, 0, 0)  0")),
        "{stdout}"
    );
    // Both connections carried frames, and none was in error.
    let conns: Vec<Vec<u64>> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("connection  tx frames"))
        .skip(1)
        .take(2)
        .map(|l| {
            l.split_whitespace()
                .take(14)
                .map(|n| n.parse().expect("a number"))
                .collect()
        })
        .collect();
    assert_eq!(conns.len(), 2, "{stdout}");
    assert!(
        conns
            .iter()
            .all(|c| c[1] > 0 && c[3] > 0 && c[5..10].iter().all(|n| *n == 0)),
        "{stdout}"
    );
    // Controller B shows the volume controller A built, owned by A, on site A's SSD.
    let b_rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("ctl-b (site B), mapping information"))
        .skip(3)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(b_rows.len(), 1, "{stdout}");
    for cell in [
        "vol1",
        "ctl-a",
        "23:00:00:00:00:00:00:01",
        "64 MiB",
        "ssd",
        "online",
    ] {
        assert!(b_rows[0].contains(cell), "{cell} missing: {stdout}");
    }
    assert!(std::fs::metadata(&fcip).expect("FCIP capture").len() > 4 << 20);
    let records = fc_pcap::capture::read_file(&pcap).expect("capture readable");
    assert!(
        records.len() > 4 * 1024 * 1024 / 2112,
        "{} frames",
        records.len()
    );
    assert!(records.iter().all(|r| r.frame.is_ok()));
}

#[test]
fn pcap_catalogue_writes_the_capture_and_prints_one_line_a_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("out/fc.pcap");
    let out = fcsan(&[
        "pcap",
        "catalogue",
        "--out",
        pcap.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let frames = fc_pcap::catalogue::conversation().len();
    assert_eq!(stdout.lines().count(), frames + 1);
    assert!(stdout.contains("FLOGI wwpn=21:00:00:24:ff:4a:00:01"));
    assert!(stdout.contains("GID_FT type=0x08"));
    assert!(stdout.contains("READ(10) lba=2048 blocks=8"));
    assert!(stdout.contains("CHECK CONDITION: ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fc-frames.pcap");
    assert!(
        std::fs::read(&pcap).expect("capture written")
            == std::fs::read(committed).expect("committed")
    );
}

#[test]
fn pcap_show_decodes_a_capture() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fc-frames.pcap");
    let out = fcsan(&["pcap", "show", committed.to_str().expect("utf-8 path")]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().expect("a line");
    assert_eq!(
        first,
        "   1   0.000000 000000 -> fffffe ox=0100 FLOGI wwpn=21:00:00:24:ff:4a:00:01 \
         wwnn=20:00:00:24:ff:4a:00:01 rxsize=2048"
    );
    // Replies are decoded against their requests: the FLOGI accept, the GID_FT port list.
    assert!(stdout.contains("LS_ACC wwpn=20:01:00:05:1e:00:00:01 fabric=10:00:00:05:1e:00:00:01"));
    assert!(stdout.contains("ACC GID_FT 2 ports: 010200 021a00"));
    assert!(
        stdout.contains("FCP_DATA ro=0 len=8 | READ CAPACITY(10) data last_lba=2097151 block=512")
    );
}

#[test]
fn pcap_show_reports_a_corrupt_frame_and_a_bad_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A capture whose second frame has one payload bit flipped: shown, with the CRC error.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/fc-frames.pcap");
    let mut bytes = std::fs::read(committed).expect("committed capture");
    let first_len = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
    let second_data = 24 + 16 + first_len + 16;
    bytes[second_data + 40] ^= 0x01;
    let corrupt = dir.path().join("corrupt.pcap");
    std::fs::write(&corrupt, bytes).expect("write");
    let out = fcsan(&["pcap", "show", corrupt.to_str().expect("utf-8 path")]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let second = stdout.lines().nth(1).expect("second line");
    assert!(
        second.contains("not a valid FC frame: FC CRC mismatch"),
        "{second}"
    );

    // Not a capture at all: a clear error naming the file, exit status 1.
    let not_pcap = dir.path().join("notes.txt");
    std::fs::write(&not_pcap, "hello").expect("write");
    let out = fcsan(&["pcap", "show", not_pcap.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt") && stderr.contains("pcap header"),
        "{stderr}"
    );
}
