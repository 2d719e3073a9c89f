//! What the tests that run roles as separate `fcsan` processes share: starting a role from its
//! config file, reading its stdout, killing it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long a role may take to print a line a test waits for, on a busy two-core machine.
const SETTLE: Duration = Duration::from_secs(60);

/// The `fcsan` binary of this build, without colours or an API from the environment.
pub fn fcsan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fcsan"));
    c.env("NO_COLOR", "1").env_remove("FCSAN_API");
    c
}

/// A role's process, killed when dropped; its stdout lines arrive on a channel, its stderr
/// goes to a log file in the test's folder.
pub struct Proc {
    pub child: Child,
    pub lines: Receiver<String>,
    pub name: String,
}

impl Proc {
    pub fn spawn(dir: &Path, role: &str, config: &Path, name: &str) -> Proc {
        let mut cmd = fcsan();
        cmd.arg(role).arg("--config").arg(config);
        Proc::start(dir, cmd, name)
    }

    /// Starts `cmd` (an `fcsan` role, perhaps behind `ip netns exec`) as `name`, its stderr
    /// appended to `NAME.log` in `dir`.
    pub fn start(dir: &Path, mut cmd: Command, name: &str) -> Proc {
        // Appended to: a restarted role's log follows its first run's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        // Read every line, so that the role never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            lines,
            name: name.to_owned(),
        }
    }

    /// The first line `pred` accepts, within `SETTLE`.
    pub fn line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("{}: no line with {what} ({e})", self.name),
            }
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last word of `line`.
pub fn last_word(line: &str) -> String {
    line.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// The last lines of every role's log in `dir`, for a failure message.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!("--- {}\n", p.display());
        for l in &lines[lines.len().saturating_sub(15)..] {
            out += l;
            out.push('\n');
        }
    }
    out
}
