//! `fcsan volume` against a live management API (the controller crate's in-memory test
//! backend, served in this process): the tables it prints, its `--json`, and how it fails.

use std::net::TcpListener as StdListener;
use std::process::{Command, Output};
use std::sync::Arc;

use controller::api::{self, Management};
use serde_json::{json, Value};

#[path = "../controller/tests/support/memory.rs"]
mod memory;

use memory::Memory;

/// The API served on a runtime of its own while the test runs the binary.
struct Server {
    _rt: tokio::runtime::Runtime,
    url: String,
    backend: Arc<Memory>,
}

fn server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = Memory::new();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(api::serve(listener, backend.clone()));
    Server {
        _rt: rt,
        url,
        backend,
    }
}

impl Server {
    /// Runs `fcsan volume --api URL ARGS`.
    fn volume(&self, args: &[&str]) -> Output {
        let mut all = vec!["volume", "--api", &self.url];
        all.extend_from_slice(args);
        fcsan(&all, None)
    }

    /// What the backend says, as the server would put it in JSON.
    fn volumes_json(&self) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        serde_json::to_value(rt.block_on(self.backend.volumes())).unwrap()
    }
}

fn fcsan(args: &[&str], api_env: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fcsan"));
    cmd.args(args).env_remove("FCSAN_API").env("NO_COLOR", "1");
    if let Some(url) = api_env {
        cmd.env("FCSAN_API", url);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The cells of every table line (`a | b | c`) of `text`, trimmed, header lines included.
fn cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

fn has_row(text: &str, row: &[&str]) -> bool {
    cells(text).iter().any(|r| r == row)
}

#[test]
fn test_list_is_figure_4a() {
    let s = server();
    let out = ok(s.volume(&["list"]));
    let rows = cells(&out);
    assert_eq!(
        rows[0],
        [
            "volume",
            "controller",
            "controller WWPN",
            "FC_ID",
            "local name",
            "capacity",
            "type",
            "state",
            "version"
        ]
    );
    assert!(
        has_row(
            &out,
            &[
                "vol1",
                "ctl-a",
                "20:00:00:25:b5:0a:00:01",
                "010200",
                "A-0001",
                "8 MiB",
                "fast-hdd",
                "online",
                "1.3"
            ]
        ),
        "{out}"
    );
    assert!(
        has_row(
            &out,
            &[
                "vol2",
                "ctl-b",
                "20:00:00:25:b5:0b:00:01",
                "020200",
                "B-0001",
                "16 MiB",
                "ssd",
                "degraded",
                "2.5"
            ]
        ),
        "{out}"
    );
    assert_eq!(rows.len(), 3, "{out}");
}

#[test]
fn test_json_is_the_servers() {
    let s = server();
    let out = ok(s.volume(&["--json", "list"]));
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed, s.volumes_json());
    assert!(out.contains("\n  {"), "pretty printed: {out}");
    // --json may also come after the subcommand.
    let out = ok(s.volume(&["show", "vol1", "--json"]));
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed, s.volumes_json()[0]);
    let out = ok(s.volume(&["counters", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"counters": {
            "messages_sent.heartbeat": 120, "messages_sent.update": 4, "rejected.bad-mac": 1,
        }})
    );
    let out = ok(s.volume(&["--json", "peers"]));
    let peers: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(peers[1]["last_heard_ms"], 420);
    let out = ok(s.volume(&["--json", "real"]));
    let real: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(real["volumes"][0]["array_fc_id"], "011300");
}

#[test]
fn test_show_and_map_are_figure_4b() {
    let s = server();
    let out = ok(s.volume(&["show", "vol1"]));
    assert!(
        has_row(
            &out,
            &[
                "vol1",
                "ctl-a",
                "20:00:00:25:b5:0a:00:01",
                "010200",
                "A-0001",
                "8 MiB",
                "fast-hdd",
                "online",
                "1.3"
            ]
        ),
        "{out}"
    );
    assert!(
        out.contains("virtual sectors (512 B, 1-based)") && out.contains("real blocks (1-based)"),
        "{out}"
    );
    let primary = [
        "vol1",
        "1~16384",
        "A-0001",
        "021a00",
        "50:06:0e:80:00:00:0a:02",
        "LUN3",
        "1~16384",
        "512",
        "primary",
    ];
    let replica = [
        "vol1",
        "1~16384",
        "A-0001",
        "051c00",
        "50:06:0e:80:00:00:0a:03",
        "LUN8",
        "1~2048",
        "4096",
        "replica 1",
    ];
    assert!(has_row(&out, &primary), "{out}");
    assert!(has_row(&out, &replica), "{out}");
    assert!(out.contains("visible to every host"), "{out}");
    let out = ok(s.volume(&["show", "vol2"]));
    assert!(
        out.contains("visible to hosts 21:00:00:24:ff:00:00:01"),
        "{out}"
    );

    let out = ok(s.volume(&["map"]));
    let rows = cells(&out);
    assert_eq!(
        rows.len(),
        4,
        "header, two rows of vol1, one of vol2: {out}"
    );
    assert!(has_row(&out, &primary) && has_row(&out, &replica), "{out}");
    assert!(
        has_row(
            &out,
            &[
                "vol2",
                "1~32768",
                "B-0001",
                "061f00",
                "50:06:0e:80:00:00:0b:01",
                "LUN10",
                "1~32768",
                "512",
                "primary"
            ]
        ),
        "{out}"
    );
    let out = ok(s.volume(&["map", "vol2"]));
    assert_eq!(cells(&out).len(), 2, "{out}");
}

#[test]
fn test_build_and_delete() {
    let s = server();
    let out = ok(s.volume(&[
        "build",
        "--type",
        "ssd",
        "--capacity",
        "16MiB",
        "--name",
        "db1",
    ]));
    assert!(out.starts_with("built db1\n"), "{out}");
    assert!(
        has_row(
            &out,
            &[
                "db1",
                "1~32768",
                "A-0002",
                "011300",
                "50:06:0e:80:00:00:0a:01",
                "LUN0",
                "1~32768",
                "512",
                "primary"
            ]
        ),
        "{out}"
    );
    let out = ok(s.volume(&["list"]));
    assert!(out.contains("db1") && out.contains("16 MiB"), "{out}");

    // No name: the controller picks one; --json prints the view built.
    let out = ok(s.volume(&[
        "build",
        "--json",
        "--type",
        "fast-hdd",
        "--capacity",
        "512 KB",
    ]));
    let built: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(built["name"], "vol-3");
    assert_eq!(built["capacity"], 512_000, "{out}");

    let out = ok(s.volume(&["delete", "db1", "--keep-data-in", "vol1"]));
    assert_eq!(out, "deleted db1 (its data kept in vol1)\n");
    let out = ok(s.volume(&["delete", "vol-3"]));
    assert_eq!(out, "deleted vol-3\n");
    let out = ok(s.volume(&["--json", "delete", "vol2"]));
    assert_eq!(out, "");
    let out = ok(s.volume(&["list"]));
    assert_eq!(cells(&out).len(), 2, "only vol1 left: {out}");
}

#[test]
fn test_real_is_figure_3() {
    let s = server();
    let out = ok(s.volume(&["real"]));
    assert!(out.starts_with("real volumes of ctl-a (site a)"), "{out}");
    assert!(
        has_row(
            &out,
            &[
                "vol1",
                "021a00",
                "50:06:0e:80:00:00:0a:02",
                "LUN3",
                "120 MiB",
                "fast-hdd",
                "512",
                "FCSAN DISK",
                "yes"
            ]
        ),
        "{out}"
    );
    assert!(
        has_row(
            &out,
            &[
                "-",
                "011300",
                "50:06:0e:80:00:00:0a:01",
                "LUN0",
                "64 MiB",
                "ssd",
                "512",
                "FCSAN DISK",
                "yes"
            ]
        ),
        "{out}"
    );
    assert!(out.contains("free space by type"), "{out}");
    assert!(
        has_row(
            &out,
            &[
                "051c00",
                "50:06:0e:80:00:00:0a:03",
                "fast-hdd",
                "42 MiB",
                "1"
            ]
        ),
        "{out}"
    );
}

#[test]
fn test_peers_and_counters() {
    let s = server();
    let out = ok(s.volume(&["peers"]));
    assert_eq!(
        cells(&out)[0],
        ["name", "site", "state", "WWPN", "FC_ID", "API", "heard", "versions"]
    );
    assert!(
        has_row(
            &out,
            &[
                "ctl-b",
                "b",
                "up",
                "20:00:00:25:b5:0b:00:01",
                "020200",
                "http://127.0.0.1:7801",
                "420 ms ago",
                "ctl-a 1.3, ctl-b 2.5"
            ]
        ),
        "{out}"
    );
    assert!(
        has_row(
            &out,
            &[
                "ctl-c",
                "c",
                "down",
                "20:00:00:25:b5:0c:00:01",
                "030200",
                "-",
                "-",
                "20:00:00:25:b5:0c:00:01 1.9"
            ]
        ),
        "{out}"
    );
    let out = ok(s.volume(&["counters"]));
    assert!(has_row(&out, &["rejected.bad-mac", "1"]), "{out}");
}

#[test]
fn test_server_refusals_fail_with_its_message() {
    let s = server();
    let o = s.volume(&["show", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("fcsan: no volume named nope (404 Not Found)"),
        "{}",
        stderr(&o)
    );
    // With --json the server's error body is printed too.
    let o = s.volume(&["--json", "show", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        json!({"error": "no volume named nope"})
    );

    let o = s.volume(&[
        "build",
        "--type",
        "ssd",
        "--capacity",
        "4KiB",
        "--name",
        "vol2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the name vol2 is held by controller ctl-b (409 Conflict)"),
        "{}",
        stderr(&o)
    );

    let o = s.volume(&["build", "--type", "tape", "--capacity", "1GiB"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("507 Insufficient Storage"), "{err}");
    assert!(has_row(&err, &["a", "ctl-a", "tape", "0 B"]), "{err}");

    let o = s.volume(&["delete", "vol1", "--keep-data-in", "elsewhere"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no volume named elsewhere"),
        "{}",
        stderr(&o)
    );
    // Nothing changed.
    assert_eq!(cells(&ok(s.volume(&["list"]))).len(), 3);
}

#[test]
fn test_bad_arguments_are_refused_before_any_request() {
    let s = server();
    for args in [
        &["build", "--type", "floppy", "--capacity", "1MiB"][..],
        &["build", "--type", "ssd", "--capacity", "16 furlongs"],
        &["build", "--type", "ssd", "--capacity", "0"],
        &[
            "build",
            "--type",
            "ssd",
            "--capacity",
            "1MiB",
            "--name",
            "a b",
        ],
        &["show", "a/b"],
    ] {
        let o = s.volume(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("invalid value"), "{}", stderr(&o));
    }
    assert_eq!(cells(&ok(s.volume(&["list"]))).len(), 3);
}

#[test]
fn test_unreachable_api_names_the_url() {
    // A port nobody listens on any more.
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = fcsan(&["volume", "--api", &url, "list"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("cannot reach the management API at {url}")),
        "{}",
        stderr(&o)
    );
    // The environment names it when --api does not.
    let o = fcsan(&["volume", "peers"], Some(&url));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
}

#[test]
fn test_api_from_the_environment() {
    let s = server();
    let out = ok(fcsan(&["volume", "list"], Some(&s.url)));
    assert!(has_row(
        &out,
        &[
            "vol1",
            "ctl-a",
            "20:00:00:25:b5:0a:00:01",
            "010200",
            "A-0001",
            "8 MiB",
            "fast-hdd",
            "online",
            "1.3"
        ]
    ));
}

#[test]
fn test_replica_io_and_mask() {
    let s = server();
    let out = ok(s.volume(&["replica", "vol1", "--type", "ssd", "--site", "b"]));
    assert!(out.contains("replica of vol1 started"), "{out}");
    assert!(
        has_row(
            &out,
            &[
                "vol1",
                "syncing",
                "2",
                "2",
                "4 MiB of 8 MiB (50%)",
                "100 MiB/s",
                "100 MiB/s",
                "-"
            ]
        ),
        "{out}"
    );
    assert!(
        out.contains("not in the mapping until it is in sync"),
        "{out}"
    );
    assert!(
        cells(&out)
            .iter()
            .any(|r| r.last().map(String::as_str) == Some("replica 2")),
        "{out}"
    );
    // The server's refusals, with its message and status.
    let o = s.volume(&["replica", "vol1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is being synchronized; wait for it (409 Conflict)"),
        "{}",
        stderr(&o)
    );
    let o = s.volume(&["replica", "vol2"]);
    assert!(
        stderr(&o).contains("volume vol2 is owned by controller ctl-b; ask that controller"),
        "{}",
        stderr(&o)
    );

    let out = ok(s.volume(&["io", "vol1"]));
    assert!(out.contains("vol1 is LUN 5 at this controller"), "{out}");
    assert!(has_row(&out, &["replica reads", "3"]), "{out}");
    assert!(has_row(&out, &["read", "640 KiB"]), "{out}");
    assert!(
        cells(&out)
            .iter()
            .any(|r| r.get(1).map(String::as_str) == Some("syncing")),
        "{out}"
    );
    let json_out = ok(s.volume(&["--json", "io", "vol1"]));
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["lun"], 5);
    assert_eq!(v["replica"]["state"], "syncing");

    let out = ok(s.volume(&[
        "mask",
        "vol1",
        "21:00:00:24:ff:00:00:01",
        "21000024ff000002",
    ]));
    assert!(
        out.contains("visible to hosts 21:00:00:24:ff:00:00:01, 21:00:00:24:ff:00:00:02"),
        "{out}"
    );
    let out = ok(s.volume(&["mask", "vol1", "--all-hosts"]));
    assert!(out.contains("visible to every host"), "{out}");
    let o = s.volume(&["mask", "vol2", "--all-hosts"]);
    assert!(stderr(&o).contains("409 Conflict"), "{}", stderr(&o));

    // Bad arguments never reach the server.
    for args in [
        &["replica", "vol1", "--type", "floppy"][..],
        &["mask", "vol1", "21:00"],
        &["mask", "vol1"],
        &["mask", "vol1", "--all-hosts", "21:00:00:24:ff:00:00:01"],
        &["io", "a b"],
    ] {
        let o = s.volume(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}
