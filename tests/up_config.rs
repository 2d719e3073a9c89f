//! `fcsan up --config examples/topology.toml` as a user runs it: the three sites of the example
//! start in one process and print their controllers' management APIs; `fcsan volume build`
//! at one controller makes a volume every controller lists (site C's across the WAN relay);
//! SIGTERM stops it cleanly.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/processes.rs"]
#[allow(dead_code)] // `Proc::start` runs `fcsan up`; no role is spawned from a file.
mod processes;
use processes::{fcsan, last_word, logs, Proc};

/// How long the sites may take to find each other on a busy two-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// `fcsan volume --api API ARGS`; its output.
fn volume(api: &str, args: &[&str]) -> std::process::Output {
    fcsan()
        .args(["volume", "--api", api])
        .args(args)
        .output()
        .expect("run fcsan volume")
}

#[test]
fn up_config_starts_the_example_topology() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/topology.toml");
    let mut cmd = fcsan();
    cmd.arg("up")
        .arg("--config")
        .arg(&example)
        .arg("--data")
        .arg(dir.path().join("data"));
    let mut up = Proc::start(dir.path(), cmd, "up");
    up.line("site C", |l| {
        l.starts_with("site C: gateway 10:00:00:00:c0:ff:ee:03, domain 03, switch on 127.0.0.1:")
    });
    let relay = up.line("link C -> B", |l| l.starts_with("link C -> B"));
    assert!(
        relay.contains("1 TCP connection(s) through the WAN relay on 127.0.0.1:")
            && relay.ends_with("(5 ms each way, 1000000000 bit/s)"),
        "{relay}"
    );
    up.line("array far", |l| {
        l == "array far on site C: 22:00:00:00:00:00:00:03, 1 LUN(s)"
    });
    let mut apis = Vec::new();
    for (name, site) in [("ctl-a", "A"), ("ctl-b", "B"), ("ctl-c", "C")] {
        let l = up.line(name, |l| l.starts_with("controller "));
        assert!(
            l.starts_with(&format!(
                "controller {name} (site {site}): api http://127.0.0.1:"
            )),
            "{l}"
        );
        apis.push(last_word(&l));
    }

    // The controllers take changes once they are ready: build at A until it is.
    let start = Instant::now();
    loop {
        let out = volume(
            &apis[0],
            &[
                "build",
                "--type",
                "ssd",
                "--capacity",
                "16MiB",
                "--name",
                "vol1",
            ],
        );
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.starts_with("built vol1\n"), "{text}");
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "fcsan volume build: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every controller lists it, site C's through the relay.
    for api in &apis {
        loop {
            let out = volume(api, &["list"]);
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success()
                && text
                    .lines()
                    .any(|l| l.contains(" vol1 ") && l.contains(" ctl-a "))
            {
                break;
            }
            assert!(start.elapsed() < WAIT, "{api} does not list vol1: {text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let status = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    up.line("stopped", |l| l == "stopped");
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = up.child.try_wait().expect("wait for fcsan up") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "fcsan up did not end after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "fcsan up ended with {exit}\n{}",
        logs(dir.path())
    );
}
