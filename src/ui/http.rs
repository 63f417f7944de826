//! HTTP/1.1 on the dashboard's own sockets: one request per connection,
//! read whole (head parsed by `httparse`, body bounded) under a deadline,
//! answered with `Connection: close`. The number of connections open at
//! once is capped; beyond the cap a connection is closed unanswered.
//!
//! Owning the sockets is what bounds a client that sends a head slowly,
//! announces a body it never sends, or never reads the answer: each read
//! and write has a timeout, and nothing is sized by what a client claims.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Connections open at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// The longest request head taken.
const MAX_HEAD: usize = 16 << 10;

/// The most headers a request may carry.
const MAX_HEADERS: usize = 48;

/// How long a client has to send its whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// How long one write of the answer may wait for the client to read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One request, read whole.
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    /// The body, at most the size [`read_request`] was given.
    pub body: Vec<u8>,
    /// Where the answer goes.
    stream: TcpStream,
}

/// Why a request was not read; `Some(status)` is worth answering.
pub struct Unread(pub Option<(u16, &'static str)>);

impl Request {
    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first value of header `name` (case-insensitive), if UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The socket, to write a streamed answer to.
    pub fn into_writer(self) -> TcpStream {
        self.stream
    }

    /// Answers with `status`, the headers and `body`, and closes.
    pub fn respond(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        answer(self.stream, status, headers, body)
    }
}

/// Writes a whole answer on `w` and closes: status, headers, `body`.
pub fn answer(
    mut w: TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// The reason phrase of the statuses the dashboard uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Reads one request from `stream`, taking at most `max_body` bytes of
/// body, within [`REQUEST_DEADLINE`].
pub fn read_request(stream: TcpStream, max_body: usize) -> Result<Request, (TcpStream, Unread)> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return Err((stream, Unread(None)));
    }
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let (method, url, headers, head_len) = loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut slots);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers = parsed
                    .headers
                    .iter()
                    .filter_map(|h| {
                        let v = std::str::from_utf8(h.value).ok()?;
                        Some((h.name.to_string(), v.trim().to_string()))
                    })
                    .collect::<Vec<_>>();
                let method = parsed.method.unwrap_or("").to_string();
                let url = parsed.path.unwrap_or("").to_string();
                break (method, url, headers, n);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err((stream, Unread(Some((431, "the request head is too large")))));
            }
            Err(_) => return Err((stream, Unread(Some((400, "not an HTTP request"))))),
        }
        match read_by(&stream, deadline, &mut chunk) {
            Ok(0) | Err(_) => return Err((stream, Unread(None))),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if find("Transfer-Encoding").is_some() {
        return Err((
            stream,
            Unread(Some((411, "send the body with a Content-Length"))),
        ));
    }
    let length = match find("Content-Length").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err((stream, Unread(Some((400, "a bad Content-Length"))))),
    };
    if length > max_body as u64 {
        return Err((stream, Unread(Some((413, "the request is too large")))));
    }
    // Fits: `length` is at most `max_body`.
    let length = length as usize;
    let mut body = buf.split_off(head_len.min(buf.len()));
    body.truncate(length);
    while body.len() < length {
        match read_by(&stream, deadline, &mut chunk) {
            Ok(0) | Err(_) => return Err((stream, Unread(None))),
            Ok(n) => body.extend_from_slice(&chunk[..n.min(length - body.len())]),
        }
    }
    Ok(Request {
        method,
        url,
        headers,
        body,
        stream,
    })
}

/// One read that gives up at `deadline`.
fn read_by(mut stream: &TcpStream, deadline: Instant, buf: &mut [u8]) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.read(buf)
}

/// Accepts connections on `listener` and hands each to `serve` on a thread
/// of its own, at most [`MAX_CONNECTIONS`] at once; returns when the
/// listener fails.
pub fn accept(listener: TcpListener, serve: Arc<dyn Fn(TcpStream) + Send + Sync>) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("p2p-ui: accepting: {e}");
                // Out of descriptors, say: let some close before the next.
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            log::info!("p2p-ui: {MAX_CONNECTIONS} connections open already; one closed");
            continue;
        }
        let (open2, serve) = (Arc::clone(&open), Arc::clone(&serve));
        let spawned = thread::Builder::new()
            .name("p2p-ui-http".into())
            .spawn(move || {
                serve(stream);
                open2.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A request sent on one end of a loopback pair, read on the other.
    fn read(raw: &[u8], max_body: usize) -> Result<(String, String, Vec<u8>), Option<u16>> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(raw).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let (s, _) = l.accept().unwrap();
        match read_request(s, max_body) {
            Ok(rq) => Ok((rq.method.clone(), rq.url.clone(), rq.body.clone())),
            Err((_, Unread(why))) => Err(why.map(|(s, _)| s)),
        }
    }

    #[test]
    fn a_request_is_read_with_its_body_and_headers() {
        let raw = b"POST /api/query HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let (m, u, body) = read(raw, 100).ok().unwrap();
        assert_eq!(
            (m.as_str(), u.as_str(), &body[..]),
            ("POST", "/api/query", &b"hello"[..])
        );
        let raw = b"GET /?token=x HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(read(raw, 100).ok().unwrap().1, "/?token=x");
    }

    #[test]
    fn what_a_client_claims_sizes_nothing() {
        // A body announced far larger than allowed is refused before any
        // of it is read or any buffer is made for it.
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1099511627776\r\n\r\n";
        assert_eq!(read(raw, 1 << 20).err(), Some(Some(413)));
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(read(raw, 1 << 20).err(), Some(Some(411)));
        let raw = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(read(raw, 1 << 20).err(), Some(Some(400)));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(read(&long, 1 << 20).err(), Some(Some(431)));
        // A body shorter than announced: the client went away.
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(read(raw, 100).err(), Some(None));
        assert_eq!(
            read(b"\x16\x03\x01garbage\r\n\r\n", 100).err(),
            Some(Some(400))
        );
    }
}
