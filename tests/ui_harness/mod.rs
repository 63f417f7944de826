//! What the dashboard's tests share: a `p2p-ui` process on port 0 (killed
//! when dropped), a plain HTTP/1.1 client over `TcpStream`, and a cluster
//! whose members see different files at one path.

#![allow(dead_code)]

use crate::common::{self, Daemon, write};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `p2p-ui` and the URL it printed.
pub struct Ui {
    child: Child,
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub port: u16,
    pub token: String,
}

impl Ui {
    /// Starts `p2p-ui --listen 127.0.0.1:0` on `d`'s socket and reads its URL.
    pub fn start(d: &Daemon) -> Ui {
        let mut child = Command::new(common::bin("p2p-ui"))
            .args(["--listen", "127.0.0.1:0", "--socket"])
            .arg(&d.socket)
            .env_remove("P2P_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting p2p-ui");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("p2p-ui's URL");
        let url = line.trim_end().to_string();
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not a URL: {url:?}"));
        let (host, query) = rest
            .split_once("/#token=")
            .expect("a token in the URL's fragment");
        let port = host.rsplit(':').next().unwrap().parse().unwrap();
        assert_ne!(port, 0, "the URL names the port really bound");
        Ui {
            child,
            url: url.clone(),
            host: host.to_string(),
            port,
            token: query.to_string(),
        }
    }

    /// The `Authorization` header the page sends.
    pub fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Sends one request with `headers` (Host is ours unless given).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut s = TcpStream::connect(&self.host).expect("connecting to p2p-ui");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        s.write_all(req.as_bytes()).unwrap();
        Reply::read(BufReader::new(s))
    }

    /// A GET with our token.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[("Authorization", &self.auth())], "")
    }

    /// A POST of `json` as the page sends it (token and X-P2P-UI).
    pub fn post(&self, path: &str, json: &str) -> Reply {
        self.request(
            "POST",
            path,
            &[
                ("Authorization", &self.auth()),
                ("X-P2P-UI", "1"),
                ("Content-Type", "application/json"),
            ],
            json,
        )
    }

    /// The status of a GET with our token, the body left unread.
    pub fn status_of(&self, path: &str) -> u16 {
        let mut s = TcpStream::connect(&self.host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            self.host,
            self.auth()
        );
        s.write_all(req.as_bytes()).unwrap();
        read_head(&mut BufReader::new(s)).0
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts a POST of `json` and returns the connection once the answer's
    /// head is read (its status, and the body still coming).
    pub fn start_post(&self, path: &str, json: &str) -> (u16, BufReader<TcpStream>) {
        let mut s = TcpStream::connect(&self.host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nX-P2P-UI: 1\r\n\
             Content-Length: {}\r\n\r\n{json}",
            self.host,
            self.auth(),
            json.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let status = read_head(&mut r).0;
        (status, r)
    }

    /// The processes p2p-ui has started and not yet reaped.
    pub fn children(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let tasks = format!("/proc/{}/task", self.child.id());
        for t in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        out
    }

    /// Opens the members' event stream.
    pub fn events(&self) -> Events {
        let mut s = TcpStream::connect(&self.host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let req = format!(
            "GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
            self.host,
            self.auth()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let (status, headers) = read_head(&mut r);
        assert_eq!(status, 200);
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            r,
            pending: Vec::new(),
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, its body read whole (chunks joined).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    fn read(mut r: BufReader<TcpStream>) -> Reply {
        let (status, headers) = read_head(&mut r);
        let mut body = Vec::new();
        if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            while let Some(chunk) = read_chunk(&mut r) {
                body.extend(chunk);
            }
        } else if let Some(n) = header(&headers, "content-length") {
            let mut b = vec![0; n.parse().unwrap()];
            r.read_exact(&mut b).unwrap();
            body = b;
        } else {
            r.read_to_end(&mut body).unwrap();
        }
        Reply {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The `data` of each event named `name`, in order.
    pub fn events(&self, name: &str) -> Vec<String> {
        parse_events(&self.body)
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, d)| d)
            .collect()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    (status, headers)
}

/// One chunk of a chunked body; None at its end.
fn read_chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n = usize::from_str_radix(line.trim_end(), 16).ok()?;
    let mut b = vec![0; n + 2];
    r.read_exact(&mut b).ok()?;
    b.truncate(n);
    (n > 0).then_some(b)
}

/// Server-sent events: (name, data) pairs.
pub fn parse_events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|b| !b.is_empty() && !b.starts_with(':'))
        .map(|b| {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for l in b.lines() {
                if let Some(n) = l.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = l.strip_prefix("data: ") {
                    data.push(d);
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

/// The members' event stream, read as it comes.
pub struct Events {
    r: BufReader<TcpStream>,
    pending: Vec<u8>,
}

impl Events {
    /// The next event.
    pub fn next(&mut self) -> (String, String) {
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if let Some(i) = text.find("\n\n") {
                let block = text[..i + 2].to_string();
                self.pending.drain(..i + 2);
                if let Some(ev) = parse_events(&block).pop() {
                    return ev;
                }
                continue;
            }
            let chunk = read_chunk(&mut self.r).expect("the event stream ended");
            self.pending.extend(chunk);
        }
    }
}

/// Files two ways below one path: members started while `e` points to
/// `a` see one version of `f`, those started while it points to `b`
/// another (as tests/group.rs does it).
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for side in ["a", "b"] {
            write(&dir.path().join(side), "same", b"same\n");
        }
        write(&dir.path().join("a"), "f", b"one\n");
        write(&dir.path().join("b"), "f", b"two two\n");
        Tree { dir }
    }

    /// The path every member is asked about.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("e").join(name)
    }

    fn point_to(&self, side: &str) {
        let tmp = self.dir.path().join("e.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(self.dir.path().join(side), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("e")).unwrap();
    }

    /// `n` members node0.. exporting `e`; `odd` sees side b.
    pub fn cluster(&self, n: usize, odd: usize) -> Vec<Daemon> {
        let export = self.dir.path().join("e");
        common::start_cluster(n, |i| {
            self.point_to(if i == odd { "b" } else { "a" });
            vec!["--export".into(), export.to_str().unwrap().into()]
        })
    }
}
