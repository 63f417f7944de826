//! `p2p-ui` in real browsers, against three daemons on loopback: headless
//! Chromium driven over WebDriver (chromedriver's plain JSON REST, spoken
//! over a TcpStream), and headless Firefox over Marionette (its own
//! protocol, length-prefixed JSON on a TCP port it picks and writes into
//! the profile; Debian packages no geckodriver). Both run the same checks.
//! Screenshots go to target/ui-screenshots/.
//!
//! Without the browsers (Debian's `chromium`, `chromium-driver` and
//! `firefox-esr`, which .ci/run installs) a test says so and is skipped,
//! except under CI, where it fails.

mod common;
mod ui_harness;

use base64::Engine;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ui_harness::{Tree, Ui};

/// The ports chromedriver is tried on (the project's range for fixed ports).
const DRIVER_PORTS: std::ops::Range<u16> = 44400..44500;

fn found(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// chromedriver, in a process group of its own so that it and every
/// browser process it started are killed together, even on a panic.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start(driver: &Path, browser: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        for port in DRIVER_PORTS {
            let log = profile.path().join(format!("chromedriver-{port}.log"));
            let mut child = Command::new(driver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("starting chromedriver");
            let deadline = Instant::now() + Duration::from_secs(20);
            let ready = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false; // most likely: address in use; try the next port
                }
                if let Ok(v) = http(port, "GET", "/status", None)
                    && v["value"]["ready"] == true
                {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if !ready {
                kill_group(&mut child);
                continue;
            }
            let mut d = Driver {
                child,
                port,
                session: None,
                _profile: profile,
            };
            d.new_session(browser);
            return d;
        }
        panic!("chromedriver did not start on any port of {DRIVER_PORTS:?}");
    }

    fn new_session(&mut self, browser: &Path) {
        let data_dir = self._profile.path().join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1800",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", data_dir.display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser, "args": args},
        }}});
        let v = http(self.port, "POST", "/session", Some(&caps)).expect("a WebDriver session");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        self.session = Some(id);
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let id = self.session.as_deref().unwrap();
        let v = http(self.port, method, &format!("/session/{id}{path}"), body)
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        if v["value"].get("error").is_some() {
            panic!("WebDriver {path}: {v}");
        }
        v["value"].clone()
    }
}

/// What the checks need of a browser.
trait Browser {
    /// Loads `url` and waits for the page.
    fn go(&mut self, url: &str);
    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&mut self, script: &str) -> Value;
    /// The page as a PNG.
    fn png(&mut self) -> Vec<u8>;
    /// Put before the screenshots' names.
    fn prefix(&self) -> &'static str;

    /// Polls `script` until `ok` holds for what it returns.
    fn until(&mut self, what: &str, script: &str, ok: &dyn Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script);
            if ok(&v) {
                return v;
            }
            if Instant::now() > deadline {
                self.screenshot("failed");
                panic!("{}: not within 30 s: {what}; last {v}", self.prefix());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&mut self, name: &str) {
        let png = self.png();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{}{name}.png", self.prefix())), png).unwrap();
    }
}

impl Browser for Driver {
    fn go(&mut self, url: &str) {
        self.call("POST", "/url", Some(&json!({"url": url})));
    }

    fn js(&mut self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    fn png(&mut self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a PNG in base64")
    }

    fn prefix(&self) -> &'static str {
        ""
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: a signal to the process group we made for the driver or
    // browser.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = http(self.port, "DELETE", &format!("/session/{id}"), None);
        }
        kill_group(&mut self.child);
    }
}

/// One WebDriver request; the JSON it answers.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut length = None;
    let mut chunked = false;
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(n) = l.strip_prefix("content-length:") {
            length = n.trim().parse::<usize>().ok();
        }
        chunked |= l.starts_with("transfer-encoding:") && l.contains("chunked");
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(line.trim_end(), 16).map_err(|e| e.to_string())?;
            let mut b = vec![0; n + 2];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        r.read_exact(&mut out).map_err(|e| e.to_string())?;
    } else {
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    }
    serde_json::from_slice(&out).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out)))
}

/// Headless Firefox driven over Marionette, in a process group of its own
/// (killed with every process it started, even on a panic). All traffic
/// not to loopback goes to a proxy that does not exist, so the browser
/// reaches nothing but the dashboard.
struct Marionette {
    child: Child,
    conn: BufReader<TcpStream>,
    next: u64,
    _profile: tempfile::TempDir,
}

/// Prefs of the test profile: Marionette on a port of the kernel's choice
/// (written to MarionetteActivePort), nothing fetched from elsewhere.
const FIREFOX_PREFS: &str = r#"
user_pref("marionette.port", 0);
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", 9);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", 9);
user_pref("network.proxy.socks", "127.0.0.1");
user_pref("network.proxy.socks_port", 9);
user_pref("network.proxy.socks_remote_dns", true);
user_pref("network.proxy.allow_hijacking_localhost", false);
user_pref("network.trr.mode", 5);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.page", 0);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("extensions.update.enabled", false);
"#;

impl Marionette {
    fn start(browser: &Path) -> Marionette {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        std::fs::write(profile.path().join("user.js"), FIREFOX_PREFS).unwrap();
        let log = std::fs::File::create(profile.path().join("firefox.log")).unwrap();
        let mut child = Command::new(browser)
            .args(["--headless", "--marionette", "--no-remote", "--profile"])
            .arg(profile.path())
            .env("HOME", profile.path())
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting firefox-esr");
        let port_file = profile.path().join("MarionetteActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break p;
            }
            let log = std::fs::read_to_string(profile.path().join("firefox.log"));
            if let Ok(Some(st)) = child.try_wait() {
                panic!("firefox-esr exited ({st}): {}", log.unwrap_or_default());
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                panic!(
                    "firefox-esr opened no Marionette port: {}",
                    log.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to Marionette");
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut m = Marionette {
            child,
            conn: BufReader::new(s),
            next: 1,
            _profile: profile,
        };
        let hello = m.read();
        assert_eq!(hello["marionetteProtocol"], 3, "{hello}");
        m.call("WebDriver:NewSession", json!({"capabilities": {}}));
        m.call(
            "WebDriver:SetWindowRect",
            json!({"width": 1280, "height": 1800}),
        );
        m
    }

    /// One message: its length in decimal, a colon, then that much JSON.
    fn read(&mut self) -> Value {
        let mut len = Vec::new();
        self.conn
            .read_until(b':', &mut len)
            .expect("a Marionette message");
        len.pop();
        let n: usize = std::str::from_utf8(&len)
            .unwrap()
            .parse()
            .expect("a length");
        let mut body = vec![0; n];
        self.conn.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// Sends `[0, id, name, params]` and returns the answer's result.
    fn call(&mut self, name: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!([0, id, name, params]).to_string();
        let s = self.conn.get_mut();
        s.write_all(format!("{}:{msg}", msg.len()).as_bytes())
            .unwrap();
        loop {
            let v = self.read();
            if v[0] == 1 && v[1] == id {
                if !v[2].is_null() {
                    panic!("Marionette {name}: {}", v[2]);
                }
                return v[3].clone();
            }
        }
    }
}

impl Browser for Marionette {
    fn go(&mut self, url: &str) {
        self.call("WebDriver:Navigate", json!({"url": url}));
    }

    fn js(&mut self, script: &str) -> Value {
        self.call(
            "WebDriver:ExecuteScript",
            json!({"script": script, "args": []}),
        )["value"]
            .clone()
    }

    fn png(&mut self) -> Vec<u8> {
        let v = self.call("WebDriver:TakeScreenshot", json!({"full": false}));
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap_or_default())
            .expect("a PNG in base64")
    }

    fn prefix(&self) -> &'static str {
        "firefox-"
    }
}

impl Drop for Marionette {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

const ROWS: &str = "return [...document.querySelectorAll('#members tbody tr')]\
    .map(tr => [tr.dataset.name, tr.dataset.state]);";

fn states(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r[0].as_str().unwrap_or("").into(),
                        r[1].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A request of the page's own, without the token's header.
const SYNC_MEMBERS: &str = "var x = new XMLHttpRequest(); x.open('GET', '/api/members', false); \
                            x.send(); return x.status;";

#[test]
fn the_dashboard_in_headless_chromium() {
    let browser = found(&["/usr/lib/chromium/chromium", "/usr/bin/chromium"]);
    let driver = found(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(browser), Some(driver)) = (browser, driver) else {
        let msg = "SKIPPED: the browser test needs chromium and chromium-driver \
                   (apt-get install chromium chromium-driver)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n\n*** {msg} ***\n\n");
        return;
    };
    exercise(&mut Driver::start(&driver, &browser));
}

#[test]
fn the_dashboard_in_headless_firefox() {
    let Some(browser) = found(&["/usr/lib/firefox-esr/firefox-esr", "/usr/bin/firefox-esr"]) else {
        let msg = "SKIPPED: the browser test needs firefox-esr (apt-get install firefox-esr)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n\n*** {msg} ***\n\n");
        return;
    };
    exercise(&mut Marionette::start(&browser));
}

/// The checks, in one browser: three daemons, node1 with another file.
fn exercise(b: &mut dyn Browser) {
    let tree = Tree::new();
    let mut cluster = tree.cluster(3, 1);
    let ui = Ui::start(&cluster[0]);

    // Without the token (a fresh tab, nothing in its sessionStorage): the
    // page says so, and the API refuses it.
    b.go(&format!("http://{}/index.html", ui.host));
    let text = b.js("return document.getElementById('daemon-state').textContent;");
    assert!(text.as_str().unwrap().contains("no token"), "{text}");
    assert_eq!(
        b.js("return document.querySelectorAll('#members tbody tr').length;"),
        0
    );
    assert_eq!(b.js(SYNC_MEMBERS), 403, "the API without the token");
    b.screenshot("refused");

    // With it: the page, the token gone from the address bar, 3 alive.
    b.go(&ui.url);
    let here = b.js("return location.href;");
    assert_eq!(
        here,
        format!("http://{}/", ui.host),
        "the token is dropped from the URL"
    );
    assert_eq!(
        b.js("return document.cookie;"),
        "",
        "no cookie: a browser would send it to every port of the host"
    );
    b.until("the members table shows 3 alive", ROWS, &|v| {
        let s = states(v);
        s.len() == 3 && s.iter().all(|(_, st)| st == "alive")
    });
    b.screenshot("members");

    // A query on this host: its lines stream into the table.
    b.js(&format!(
        "document.getElementById('query-paths').value = {};\
         document.getElementById('query-run').click(); return true;",
        Value::from(tree.path("same").display().to_string())
    ));
    let state = b.until(
        "the query's line is in the table, and its exit status",
        "return document.getElementById('query-state').textContent;",
        &|v| v.as_str().is_some_and(|s| s.contains("exit status")),
    );
    assert_eq!(state, "1 line, exit status 0");
    let cells = b.js(
        "return [...document.querySelectorAll('#query-table tbody td')].map(td => td.textContent);",
    );
    let want = common::gnu_sha256(&tree.path("same"));
    assert!(
        cells
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == &Value::from(want.clone())),
        "{cells}"
    );

    // Drift over a file that differs on node1.
    let paths = format!(
        "{}\n{}",
        tree.path("same").display(),
        tree.path("f").display()
    );
    b.js(&format!(
        "document.getElementById('drift-paths').value = {};\
         document.getElementById('drift-run').click(); return true;",
        Value::from(paths)
    ));
    b.until(
        "the drift matrix names node1 as the outlier",
        "return document.getElementById('drift-outliers').dataset.outliers || '';",
        &|v| v == "node1",
    );
    let first = b.js("return document.querySelector('#drift-table th[data-member]').textContent;");
    assert_eq!(first, "node1", "outliers come first");
    b.js("document.querySelector('#drift-table tbody button.cell[data-member=\"node1\"]').click(); return true;");
    let detail = b.js("return document.getElementById('drift-detail-body').textContent;");
    assert!(
        detail.as_str().unwrap().contains("\"bytes\": 8"),
        "node1's whole answer: {detail}"
    );
    b.js("document.getElementById('drift-section').scrollIntoView(); return true;");
    b.screenshot("drift");

    // A member killed turns down without a reload.
    b.js("window.notReloaded = true; window.scrollTo(0, 0); return true;");
    drop(cluster.pop());
    b.until("node2 shows down", ROWS, &|v| {
        states(v).iter().any(|(n, st)| n == "node2" && st == "down")
    });
    assert!(
        b.js("return window.notReloaded === true;") == true,
        "the page was not reloaded"
    );
    b.screenshot("down");
}
