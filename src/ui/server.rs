//! What each request gets: read on its connection's thread
//! ([`super::http`]), checked ([`super::auth`]), and answered with an
//! embedded asset, a JSON document, or a stream. A stream (the members' events, a query's lines) gets a
//! thread of its own, up to [`MAX_STREAMS`]; beyond, it is refused.

use super::Ui;
use super::api::{self, Event, QueryForm};
use super::auth::{CUSTOM_HEADER, Decision, Parts};
use super::http::{self, Request, Unread};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::Duration;

/// Streams served at once (each one thread).
pub const MAX_STREAMS: usize = 16;

/// The largest request body taken (a query's form).
const MAX_BODY: usize = 1 << 20;

/// A comment sent on a quiet event stream, to notice a page that left.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Nothing but our own files, no framing, no referrer.
const CSP: &str = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &[u8] = include_bytes!("assets/index.html");
const APP: &[u8] = include_bytes!("assets/app.js");
const STYLE: &[u8] = include_bytes!("assets/style.css");

/// The headers every answer carries.
fn common() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ]
}

fn respond(rq: Request, status: u16, kind: &str, body: Vec<u8>, extra: &[(&str, String)]) {
    let fixed = common().into_iter().chain([("Content-Type", kind)]);
    let extra = extra.iter().map(|(k, v)| (*k, v.as_str()));
    let headers: Vec<(&str, &str)> = fixed.chain(extra).collect();
    if let Err(e) = rq.respond(status, &headers, &body) {
        log::debug!("answering a request: {e}");
    }
}

fn text(rq: Request, status: u16, msg: &str) {
    let body = format!("p2p-ui: {msg}\n").into_bytes();
    respond(rq, status, "text/plain; charset=utf-8", body, &[]);
}

fn json(rq: Request, status: u16, body: String) {
    respond(rq, status, "application/json", body.into_bytes(), &[]);
}

/// Serves the one request of a connection, on the connection's thread.
pub fn connection(ui: &Arc<Ui>, stream: TcpStream) {
    match http::read_request(stream, MAX_BODY) {
        Ok(rq) => handle(ui, rq),
        Err((stream, Unread(Some((status, why))))) => {
            let body = format!("p2p-ui: {why}\n");
            let kind = [("Content-Type", "text/plain; charset=utf-8")];
            let _ = http::answer(stream, status, &kind, body.as_bytes());
        }
        Err((_, Unread(None))) => {}
    }
}

fn handle(ui: &Arc<Ui>, rq: Request) {
    let url = rq.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let changes = matches!(path.as_str(), "/api/query" | "/api/drift");
    let method = rq.method().to_string();
    let decision = ui.guard.check(
        &Parts {
            method: &method,
            url: &url,
            host: rq.header("Host"),
            origin: rq.header("Origin"),
            authorization: rq.header("Authorization"),
            custom: rq.header(CUSTOM_HEADER).is_some(),
        },
        changes,
    );
    match decision {
        Decision::Pass => {}
        Decision::Refuse { status, why } => {
            log::info!("p2p-ui: refused {method} {path}: {why}");
            return text(rq, status, why);
        }
    }
    let get = rq.method() == "GET";
    match (path.as_str(), get) {
        ("/", true) | ("/index.html", true) => {
            respond(rq, 200, "text/html; charset=utf-8", INDEX.to_vec(), &[])
        }
        ("/app.js", true) => respond(rq, 200, "text/javascript; charset=utf-8", APP.to_vec(), &[]),
        ("/style.css", true) => respond(rq, 200, "text/css; charset=utf-8", STYLE.to_vec(), &[]),
        ("/api/members", true) => json(rq, 200, ui.members.now()),
        ("/api/status", true) => json(rq, 200, ui.counters.json()),
        ("/api/events", true) => stream(ui, rq, EVENTS, events),
        ("/api/query", false) | ("/api/drift", false) => {
            let form = match serde_json::from_slice::<QueryForm>(&rq.body) {
                Ok(f) => f,
                Err(e) => return text(rq, 400, &format!("not a query: {e}")),
            };
            let argv = match form.argv() {
                Ok(a) => a,
                Err(e) => return text(rq, 400, &e),
            };
            if path == "/api/query" {
                stream(ui, rq, EVENTS, move |ui, out| query(ui, argv, out))
            } else {
                let kind = "application/json";
                stream(ui, rq, kind, move |ui, out| drift(ui, out, form))
            }
        }
        _ => text(rq, 404, "no such page"),
    }
}

/// One event-stream response, written as HTTP/1.1 chunks (one per event),
/// so each event leaves at once and the connection can be kept.
pub struct Stream {
    w: Box<dyn Write + Send>,
}

impl Stream {
    /// Writes one event; false once the page has gone.
    pub fn event(&mut self, (name, data): &Event) -> bool {
        let mut ev = format!("event: {name}\n");
        for line in data.split('\n') {
            ev.push_str("data: ");
            ev.push_str(line);
            ev.push('\n');
        }
        ev.push('\n');
        self.chunk(ev.as_bytes())
    }

    fn chunk(&mut self, b: &[u8]) -> bool {
        let r = write!(self.w, "{:x}\r\n", b.len())
            .and_then(|_| self.w.write_all(b))
            .and_then(|_| self.w.write_all(b"\r\n"))
            .and_then(|_| self.w.flush());
        r.is_ok()
    }

    fn end(mut self) {
        let _ = self.w.write_all(b"0\r\n\r\n").and_then(|_| self.w.flush());
    }
}

/// Runs `serve` on a thread of its own, unless [`MAX_STREAMS`] run
/// already (then the request is refused).
fn on_own_thread(ui: &Arc<Ui>, rq: Request, serve: impl FnOnce(&Ui, Request) + Send + 'static) {
    if ui.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        ui.streams.fetch_sub(1, Ordering::SeqCst);
        return text(rq, 503, "too many streams and queries at once: close a tab");
    }
    let own = Arc::clone(ui);
    let (tx, rx) = std::sync::mpsc::channel::<Request>();
    let spawned = thread::Builder::new()
        .name("p2p-ui-stream".into())
        .spawn(move || {
            if let Ok(rq) = rx.recv() {
                serve(&own, rq);
            }
            own.streams.fetch_sub(1, Ordering::SeqCst);
        });
    match spawned {
        Ok(_) => {
            let _ = tx.send(rq);
        }
        Err(_) => {
            ui.streams.fetch_sub(1, Ordering::SeqCst);
            text(rq, 503, "cannot start a thread");
        }
    }
}

const EVENTS: &str = "text/event-stream; charset=utf-8";

/// Serves `body` as a chunked answer of type `kind` (an event stream, or
/// JSON written at the end) on a thread of its own.
fn stream(
    ui: &Arc<Ui>,
    rq: Request,
    kind: &'static str,
    body: impl FnOnce(&Ui, &mut Stream) + Send + 'static,
) {
    on_own_thread(ui, rq, move |ui, rq| {
        let mut head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n\
                 Transfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n",
        );
        for (k, v) in common() {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut w: Box<dyn Write + Send> = Box::new(rq.into_writer());
        if w.write_all(head.as_bytes()).and_then(|_| w.flush()).is_ok() {
            let mut s = Stream { w };
            body(ui, &mut s);
            s.end();
        }
    });
}

/// The members' stream: a snapshot, then each change.
fn events(ui: &Ui, out: &mut Stream) {
    let rx = ui.members.subscribe();
    loop {
        let ev = match rx.recv_timeout(KEEPALIVE) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                if !out.chunk(b": still here\n\n") {
                    return;
                }
                continue;
            }
            // Dropped for falling behind: the page reconnects.
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if !out.event(&ev) {
            return;
        }
    }
}

/// A query's stream: `out` events with the command's stdout lines, `err`
/// with its stderr lines, and `exit` with its status.
fn query(ui: &Ui, (bin, args): (&'static str, Vec<String>), out: &mut Stream) {
    api::run_command(ui, bin, &args, &mut |ev| {
        if ev.0.is_empty() {
            out.chunk(b": still here\n\n")
        } else {
            out.event(&ev)
        }
    });
}

/// The most `--all --group` lines a drift view takes (one per path and
/// distinct answer); beyond, the command is stopped and the matrix says
/// it is cut short.
const MAX_DRIFT_LINES: usize = 20_000;

/// The drift matrix of a query on every member, grouped, written as one
/// JSON document at the end. While the command runs, a space (JSON allows
/// it before the document) is sent now and then: when the page has gone,
/// that write fails and the command is interrupted.
fn drift(ui: &Ui, out: &mut Stream, mut form: QueryForm) {
    form.placement = "all".into();
    form.group = true;
    let argv = match form.argv() {
        Ok(a) => a,
        Err(e) => {
            let d = serde_json::json!({"error": e});
            out.chunk(d.to_string().as_bytes());
            return;
        }
    };
    let (mut lines, mut errors, mut status) = (Vec::new(), Vec::new(), None);
    let mut truncated = false;
    api::run_command(ui, argv.0, &argv.1, &mut |(name, data)| {
        match name {
            "" => return out.chunk(b" "),
            "out" if lines.len() >= MAX_DRIFT_LINES => {
                truncated = true;
                return false;
            }
            "out" => lines.push(serde_json::from_str(&data).unwrap_or(serde_json::Value::Null)),
            "err" => errors.push(data),
            _ => status = serde_json::from_str::<serde_json::Value>(&data).ok(),
        }
        true
    });
    let mut d = api::drift(&lines);
    d["stderr"] = errors.into();
    d["exit"] = status.map_or(serde_json::Value::Null, |s| s["status"].clone());
    d["truncated"] = truncated.into();
    out.chunk(d.to_string().as_bytes());
}
