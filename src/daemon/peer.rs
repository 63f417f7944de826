//! The peer port: TCP connections from other members, each an encrypted
//! session that carries one join exchange or query streams.
//!
//! Hostile or broken clients are bounded here: a connection must finish its
//! handshake, the initiator's proof included, before a fixed deadline,
//! however slowly it drips bytes. A replayed first handshake message is
//! answered but never proven (see [`crate::crypto::session`]), so it holds
//! its place only until the deadline, and may be cut before; at most
//! [`MAX_CONNECTIONS`] are served at once, and when that many are open the
//! oldest one still in its handshake is dropped to make room, so a flood of
//! idle connections cannot lock out real members.

use super::counters::Refused;
use super::limits::{Admission, Ticket};
use super::{Shared, remote};
use crate::crypto::session::{self, Session, SessionError};
use crate::daemon::logging::trail;
use crate::proto::peer::{self, JoinReply, PeerReply, PeerRequest};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Connections served at once on the peer port.
pub const MAX_CONNECTIONS: usize = 256;

/// Time a connection has to complete its handshake and send its proof.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(3);

/// How long an authenticated connection may sit between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts peers until the listener fails for good.
pub fn accept_loop(shared: Arc<Shared>, tcp: TcpListener) {
    let admission = Admission::new(MAX_CONNECTIONS);
    for conn in tcp.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept on the peer port: {e}");
                // Out of descriptors or memory: give the others time to finish.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(ticket) = admission.admit(&stream) else {
            // Every place holds an authenticated member: this one retries later.
            crate::daemon::logging::hostile(
                log::Level::Warn,
                "peer-full",
                format_args!("refusing a peer connection: {MAX_CONNECTIONS} already open"),
            );
            continue;
        };
        let shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("peer".into())
            .spawn(move || serve(&shared, stream, &ticket));
        if let Err(e) = spawned {
            log::warn!("cannot start a peer thread: {e}");
        }
    }
}

/// A stream whose reads fail once a deadline has passed, however the bytes
/// trickle in: a socket read timeout alone restarts with every byte.
pub struct Deadline {
    stream: TcpStream,
    until: Instant,
}

impl Deadline {
    pub fn new(stream: TcpStream, within: Duration) -> Deadline {
        Deadline {
            stream,
            until: Instant::now() + within,
        }
    }

    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake deadline",
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// How long a member waits for a peer that stopped reading (a transfer's
/// asker, say) before it drops the session: [`IDLE_TIMEOUT`]. A debug
/// build reads `P2PD_TEST_PEER_WRITE_TIMEOUT_MS` instead, if set, so that a
/// test can watch a stalled asker let go of a worker without waiting a
/// minute; a release build has no such knob.
fn write_timeout() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("P2PD_TEST_PEER_WRITE_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    IDLE_TIMEOUT
}

fn serve(shared: &Arc<Shared>, stream: TcpStream, ticket: &Ticket) {
    let from = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(write_timeout()));
    let cluster = &shared.cluster;
    let identity = cluster.identity();
    let session = match session::accept_as(
        Deadline::new(stream, HANDSHAKE_DEADLINE),
        &cluster.ring(),
        identity.as_deref(),
    ) {
        Ok(s) => s.map_stream(Deadline::into_inner),
        Err(SessionError::Uncertified) => {
            // A member with a certificate, during a move to certificates:
            // it tries again without one if it accepts uncertified peers.
            crate::daemon::logging::hostile(
                log::Level::Debug,
                "peer-uncertified",
                format_args!(
                    "peer {from} holds the cluster key and asked for a certified session; \
                     this member has no CA (--ca), so it was told no"
                ),
            );
            return;
        }
        Err(e @ (SessionError::Certificate(_) | SessionError::Unauthorized)) => {
            let (kind, why) = match e {
                SessionError::Certificate(c) => (
                    "peer-cert",
                    format!("it holds the cluster key, but its certificate was refused: {c}"),
                ),
                _ => ("peer-key", "it does not hold the cluster key".to_string()),
            };
            let n = shared.counters.refused(Refused::Authentication);
            crate::daemon::logging::hostile(
                log::Level::Info,
                kind,
                format_args!("refused a peer connection from {from}: {why} ({n} refused so far)"),
            );
            return;
        }
        Err(e) => {
            shared.counters.refused(Refused::Handshake);
            crate::daemon::logging::hostile(
                log::Level::Debug,
                "peer-handshake",
                format_args!("peer connection from {from}: {e}"),
            );
            return;
        }
    };
    // The initiator's proof has opened: not a replay.
    ticket.proven();
    trail("session", format_args!("peer {from}: session established"));
    let _open = shared.counters.session_in();
    // Listed while open, so that a revocation shuts it at once.
    let _held = cluster.hold_session(session.peer(), session.stream());
    let _ = session.stream().set_read_timeout(Some(IDLE_TIMEOUT));
    let (requests, end) = serve_requests(shared, session, &from, ticket);
    trail(
        "session",
        format_args!("peer {from}: session closed after {requests} request(s): {end}"),
    );
}

/// How a session on the peer port ended, for its closing log line.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The peer closed it.
    Closed,
    /// Silent for [`IDLE_TIMEOUT`] between requests: we closed it.
    Idle,
    /// A broken or malformed frame, a failed write, a broken query stream.
    Broken,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("the peer closed it"),
            End::Idle => write!(f, "idle for {} s", IDLE_TIMEOUT.as_secs()),
            End::Broken => f.write_str("broken off"),
        }
    }
}

/// How a failed read between two requests ends the session: a clean close,
/// the idle timeout (a read timeout, which the kernel reports as EAGAIN),
/// or anything else.
fn ending(e: &SessionError) -> End {
    match e {
        SessionError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => End::Closed,
        SessionError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            End::Idle
        }
        _ => End::Broken,
    }
}

/// Serves requests on an authenticated session until it ends; returns how
/// many it served and how it ended.
fn serve_requests(
    shared: &Arc<Shared>,
    mut s: Session<TcpStream>,
    from: &str,
    ticket: &Ticket,
) -> (u64, End) {
    let mut served = 0u64;
    loop {
        // Between requests the connection may make room for others.
        if served > 0 {
            ticket.idle(s.stream());
        }
        let frame = s.recv(peer::MAX_FRAME);
        ticket.proven();
        // Checked before every request, so a revocation cuts a session
        // that was open before it.
        if let Err(e) = shared.cluster.admit_certificate(s.peer_certificate()) {
            let n = shared.counters.refused(Refused::Authentication);
            crate::daemon::logging::hostile(
                log::Level::Warn,
                "peer-revoked",
                format_args!("peer {from}: closing the session: {e} ({n} refused so far)"),
            );
            return (served, End::Broken);
        }
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                let end = ending(&e);
                if end == End::Broken {
                    crate::daemon::logging::hostile(
                        log::Level::Info,
                        "peer-frame",
                        format_args!("peer {from}: closing the connection: {e}"),
                    );
                }
                return (served, end);
            }
        };
        served += 1;
        match serde_json::from_slice::<PeerRequest>(&frame) {
            Ok(PeerRequest::Join { node } | PeerRequest::Sync { node, .. })
                if refuse_claim(shared, &s, &node.name, from) =>
            {
                let reply = JoinReply::refusal(
                    format!(
                        "the name {} is not the one in your certificate",
                        crate::daemon::logging::untrusted(&node.name)
                    ),
                    false,
                );
                let _ = s.send(&peer::encode(&reply));
                return (served, End::Broken);
            }
            Ok(PeerRequest::Join { node }) => {
                let reply = shared.cluster.join_reply(node);
                if s.send(&peer::encode(&reply)).is_err() {
                    return (served, End::Broken);
                }
            }
            Ok(PeerRequest::Sync {
                node,
                members,
                revoked,
            }) => {
                let reply = shared.cluster.sync_reply(node, members, revoked.as_deref());
                if s.send(&peer::encode(&reply)).is_err() {
                    return (served, End::Broken);
                }
            }
            Ok(PeerRequest::Query {
                kind,
                lines_only,
                max_line_length,
                recursive,
                dereference,
                posixly_correct,
                // Every member of this version counts ranges.
                ranges: _,
            }) => {
                let query = crate::proto::Query {
                    kind,
                    lines_only,
                    bytes_only: false,
                    max_line_length,
                    recursive,
                    dereference,
                    posixly_correct,
                    cwd: None,
                    paths: None,
                    target: None,
                };
                match remote::serve(shared, query, s, from) {
                    Some(again) => s = again,
                    None => return (served, End::Broken),
                }
            }
            Ok(PeerRequest::Get(get)) => match super::transfer::serve_get(shared, s, from, get) {
                Some(again) => s = again,
                None => return (served, End::Broken),
            },
            Ok(PeerRequest::Manifest(ask)) => {
                match super::transfer::serve_manifest(shared, s, from, ask) {
                    Some(again) => s = again,
                    None => return (served, End::Broken),
                }
            }
            Ok(PeerRequest::Range(range)) => {
                match super::transfer::serve_range(shared, s, from, range) {
                    Some(again) => s = again,
                    None => return (served, End::Broken),
                }
            }
            Ok(PeerRequest::List(list)) => {
                match super::transfer::serve_list(shared, s, from, list) {
                    Some(again) => s = again,
                    None => return (served, End::Broken),
                }
            }
            Ok(other) => {
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "peer-request",
                    format_args!("peer {from}: closing: {} outside a query", other.op()),
                );
                let _ = s.send(&peer::encode(&PeerReply::Failed {
                    error: crate::error::Error::new(
                        crate::error::ErrorCode::InvalidRequest,
                        "items or end without a query",
                    ),
                }));
                return (served, End::Broken);
            }
            Err(e) => {
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "peer-request",
                    format_args!(
                        "peer {from}: closing: malformed request: {}",
                        crate::daemon::logging::untrusted(&e.to_string())
                    ),
                );
                return (served, End::Broken);
            }
        }
    }
}

/// Whether a certified peer claims a name that is not its certificate's;
/// such a claim is logged.
fn refuse_claim(shared: &Shared, s: &Session<TcpStream>, claimed: &str, from: &str) -> bool {
    let Err(e) = shared.cluster.check_claim(s.peer(), claimed) else {
        return false;
    };
    let n = shared.counters.refused(Refused::Authentication);
    crate::daemon::logging::hostile(
        log::Level::Warn,
        "peer-claim",
        format_args!("peer {from}: refused: {e} ({n} refused so far)"),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_session_ends_as_idle_not_as_an_error() {
        let io = |kind| SessionError::Io(io::Error::from(kind));
        // A read timeout: the kernel says EAGAIN ("Resource temporarily unavailable").
        let eagain = SessionError::Io(io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(ending(&eagain), End::Idle);
        assert_eq!(ending(&io(io::ErrorKind::TimedOut)), End::Idle);
        assert_eq!(ending(&io(io::ErrorKind::UnexpectedEof)), End::Closed);
        assert_eq!(ending(&io(io::ErrorKind::ConnectionReset)), End::Broken);
        assert_eq!(End::Idle.to_string(), "idle for 60 s");
    }
}
