//! The controller's operator's page in headless Chromium: two sites in this process (each a
//! gateway, an SSD array and a controller, joined by FCIP), Debian's `chromedriver` started on a
//! free loopback port and driven by plain W3C WebDriver over HTTP. A volume built through site
//! A's form shows up in site B's figure 4 (a) with ctl-a as its controller; the API's refusals
//! show in `#error` (a build too big for every SAN, a delete asked of the wrong controller); a
//! delete through A's form takes it off B's page.

use std::net::{Ipv4Addr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use topology::Topology;

#[path = "support/sites.rs"]
mod sites;

/// How long the page may take to show a change made at another site (the mapping crosses the
/// FCIP link, then the page polls once a second).
const SHOW: Duration = Duration::from_secs(20);

/// What to tell a user who lacks the browser.
const INSTALL: &str = "this test drives headless Chromium through chromedriver: install them \
                       with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                       chromium chromium-driver` (scripts/test does this when run as root)";

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `name` on the PATH, or in /usr/bin.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no `{name}` on the PATH; {INSTALL}"))
}

/// A chromedriver child process and one browser session of it; both end when it drops.
struct Browser {
    driver: Child,
    agent: ureq::Agent,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

impl Browser {
    /// Starts chromedriver (its log in `dir`) and a headless Chromium session.
    fn start(dir: &Path) -> Browser {
        let chromedriver = program("chromedriver");
        let chromium = program("chromium");
        let port = StdListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = dir.join("chromedriver.log");
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", chromedriver.display()));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!(
                    "chromedriver exited at once ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            if start.elapsed() > SHOW {
                let _ = driver.kill();
                panic!("chromedriver on port {port} never became ready");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver,
            agent,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let created = browser
            .send("POST", &format!("{base}/session"), Some(caps))
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e}; {INSTALL}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let id = created["sessionId"].as_str().expect("a session id");
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// One WebDriver command; its `value`, or the WebDriver error's message.
    fn send(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value, String> {
        let sent = match method {
            "GET" => self.agent.get(url).call(),
            "DELETE" => self.agent.delete(url).call(),
            _ => self
                .agent
                .post(url)
                .send_json(body.unwrap_or_else(|| json!({}))),
        };
        let mut answer = sent.map_err(|e| format!("{method} {url}: {e}"))?;
        let ok = answer.status().is_success();
        let v: Value = answer
            .body_mut()
            .read_json()
            .map_err(|e| format!("{method} {url}: {e}"))?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{method} {url}: {} ({})",
                v["value"]["message"], v["value"]["error"]
            ))
        }
    }

    /// A command of this session, which must succeed.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.send(method, &format!("{}{path}", self.session), body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn open(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn window(&self) -> String {
        self.cmd("GET", "/window", None)
            .as_str()
            .expect("a window handle")
            .to_owned()
    }

    fn new_window(&self) -> String {
        let v = self.cmd("POST", "/window/new", Some(json!({"type": "window"})));
        v["handle"].as_str().expect("a window handle").to_owned()
    }

    fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// The element `css` selects, which must be there.
    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .expect("an element reference")
            .to_owned()
    }

    /// Types `text` into the input `css` selects, replacing what it held.
    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/clear"), None);
        if !text.is_empty() {
            self.cmd(
                "POST",
                &format!("/element/{e}/value"),
                Some(json!({ "text": text })),
            );
        }
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.cmd("POST", &format!("/element/{e}/click"), None);
    }

    /// Runs `script` (a function body) in the page; what it returns.
    fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The cells' texts of each data row of table `id`.
    fn rows(&self, id: &str) -> Vec<Vec<String>> {
        let v = self.eval(&format!(
            "return Array.from(document.querySelectorAll('#{id} tbody tr[data-key]'), \
             tr => Array.from(tr.cells, td => td.textContent));"
        ));
        serde_json::from_value(v).expect("rows of cells")
    }

    /// The text of the element of `id` when it is shown; `None` while it is hidden.
    fn shown_text(&self, id: &str) -> Option<String> {
        let v = self.eval(&format!(
            "const e = document.getElementById('{id}'); return e.hidden ? null : e.textContent;"
        ));
        v.as_str().map(str::to_owned)
    }

    /// Polls `check` every 100 ms until it answers; fails naming `what` after [`SHOW`].
    fn wait<T>(&self, what: &str, mut check: impl FnMut(&Browser) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = check(self) {
                return t;
            }
            assert!(start.elapsed() < SHOW, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page shows `#notice` or `#error` with `words`; fails on the other.
    fn wait_message(&self, id: &str, words: &str) -> String {
        let other = if id == "error" { "notice" } else { "error" };
        self.wait(&format!("#{id} saying {words:?}"), |b| {
            if id == "notice" {
                if let Some(e) = b.shown_text(other) {
                    panic!("expected a notice with {words:?}, the page shows the error {e:?}");
                }
            }
            b.shown_text(id).filter(|t| t.contains(words))
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.send("DELETE", &self.session, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The row of `volume` in table `rows`.
fn row<'a>(rows: &'a [Vec<String>], volume: &str) -> Option<&'a Vec<String>> {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(volume))
}

#[test]
fn page_builds_at_one_site_and_shows_it_at_another() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (san, ca, cb) = rt.block_on(async {
        let mut t = Topology::new();
        let ([a, b], _) = sites::two_ssd_sites(&mut t);
        let ca = t.controller(a);
        let cb = t.controller(b);
        let san = t.start(dir.path()).await.expect("topology starts");
        sites::controllers_ready(&san, &[ca, cb]).await;
        (san, ca, cb)
    });
    let url_a = format!("http://{}/", san.controller(ca).api);
    let url_b = format!("http://{}/", san.controller(cb).api);

    let browser = Browser::start(dir.path());
    let page_a = browser.window();
    browser.open(&url_a);
    browser.wait("site A's page to load", |b| {
        b.eval("return document.getElementById('controller-name').textContent;")
            .as_str()
            .filter(|n| *n == "ctl-a")
            .map(drop)
    });
    let page_b = browser.new_window();
    browser.switch_to(&page_b);
    browser.open(&url_b);
    // B's page: its own SAN's real volume, and ctl-a up among the controllers.
    browser.wait("ctl-a up on site B's page", |b| {
        let peers = b.rows("peers");
        row(&peers, "ctl-a").filter(|p| p[2] == "up").map(drop)
    });
    let real = browser.rows("real");
    assert!(
        real.iter().any(|r| r[1].starts_with("02") && r[5] == "ssd"),
        "site B's page lists its SSD (figure 3 (a)): {real:?}"
    );

    // Build through site A's form.
    browser.switch_to(&page_a);
    browser.type_into("#build-name", "web1");
    browser.click("#build-type option[value='ssd']");
    browser.type_into("#build-capacity", "16");
    browser.click("#build-unit option[value='MiB']");
    browser.click("#build-submit");
    let notice = browser.wait_message("notice", "built web1");
    assert!(notice.contains("owner ctl-a"), "{notice}");

    // Site B's page lists it, with ctl-a as its controller (figure 4 (a)) and its sector map on
    // site A's array (figure 4 (b)).
    browser.switch_to(&page_b);
    let volume = browser.wait("web1 on site B's page", |b| {
        row(&b.rows("volumes"), "web1").cloned()
    });
    assert_eq!(
        volume[1..],
        [
            "ctl-a".to_owned(),
            san.controller(ca).port_name.to_string(),
            volume[3].clone(),
            "web1".to_owned(),
            "16 MiB".to_owned(),
            "ssd".to_owned(),
            "online".to_owned(),
            volume[8].clone(),
        ],
        "{volume:?}"
    );
    assert!(volume[3].starts_with("01"), "ctl-a's FC_ID: {volume:?}");
    let map = browser.wait("web1's sector map on site B's page", |b| {
        let rows = b.rows("map");
        let mine: Vec<_> = rows.into_iter().filter(|r| r[0] == "web1").collect();
        (!mine.is_empty()).then_some(mine)
    });
    assert_eq!(map[0][1], "1~32768", "{map:?}");
    assert!(
        map.iter()
            .all(|r| r[3].starts_with("01") && r[8] == "primary"),
        "{map:?}"
    );
    let io = browser.wait("web1's I/O row on site B's page", |b| {
        row(&b.rows("io"), "web1").cloned()
    });
    assert_eq!(io[2], "0", "no reads yet: {io:?}");
    assert_eq!(io[13], "none", "no replica: {io:?}");

    // Only the owner deletes: B's page shows the API's 409, naming ctl-a.
    browser.type_into("#delete-name", "web1");
    browser.click("#delete-submit");
    let error = browser.wait_message("error", "owned by controller ctl-a");
    assert!(error.contains("409"), "{error}");

    // A build no SAN has room for: A's page shows the 507 and what was found where.
    browser.switch_to(&page_a);
    browser.type_into("#build-name", "huge");
    browser.type_into("#build-capacity", "1");
    browser.click("#build-unit option[value='TiB']");
    browser.click("#build-submit");
    let error = browser.wait_message("error", "not enough free space");
    assert!(error.contains("507"), "{error}");
    assert!(error.contains("on site A"), "{error}");

    // Delete through A's form: gone from B's page.
    browser.type_into("#delete-name", "web1");
    browser.click("#delete-submit");
    browser.wait_message("notice", "deleted web1");
    browser.switch_to(&page_b);
    browser.wait("web1 gone from site B's page", |b| {
        row(&b.rows("volumes"), "web1").is_none().then_some(())
    });
    assert_eq!(
        browser.eval("return document.querySelector('#volumes tbody tr').textContent;"),
        json!("no volumes")
    );

    drop(browser);
    rt.block_on(san.shutdown());
}
