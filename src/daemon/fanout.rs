//! Queries that run on other members (`--peer`, `--all`, `--spread`): the
//! local daemon opens one encrypted session per chosen member, feeds each
//! its paths in batches, and streams every result to the client as it
//! arrives.
//!
//! One thread per member link. Which link answers which path is decided by
//! [`Distributor`] (see there). A member that cannot be reached, refuses us,
//! or stays silent longer than the query's timeout fails its link: with
//! `--spread` its unfinished paths go to the others, otherwise each of its
//! paths gets an error line. Every path thus gets exactly its lines, whatever
//! happens to the members.

use super::Shared;
use super::distribute::{Distributor, Mode};
use crate::crypto::session::{self, Session, SessionError};
use crate::error::{Error, ErrorCode};
use crate::membership::{MemberInfo, MemberState};
use crate::proto::peer::{self, PeerItem, PeerReply, PeerRequest};
use crate::proto::{Query, Summary, Target};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Items handed to a member in one frame.
const BATCH: usize = 64;

/// Items a member may hold at once: two batches, so it has the next one
/// while its results travel back.
const WINDOW: usize = 2 * BATCH;

/// Paths held for members that have not taken them yet; past this the
/// client is not read until they catch up.
const MAX_BACKLOG: u64 = 8192;

/// The longest a connection attempt may take, whatever the query's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default silence allowed to a member.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions to members left open after a query, for the next one: a query
/// on a member already asked within 20 s skips the TCP and Noise
/// handshakes.
#[derive(Default)]
pub struct SessionPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Kept>>>,
}

/// A session and since when it has been unused.
type Kept = (std::time::Instant, Session<TcpStream>);

/// How long an unused session is kept (members close theirs after 60 s).
const KEEP_IDLE: Duration = Duration::from_secs(20);

/// Sessions kept per member; more are closed.
const KEEP_PER_MEMBER: usize = 2;

impl SessionPool {
    /// A kept session to `addr`, if a fresh enough one is there.
    pub fn take(&self, addr: SocketAddr) -> Option<Session<TcpStream>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&addr)?;
        while let Some((since, s)) = list.pop() {
            if since.elapsed() < KEEP_IDLE {
                return Some(s);
            }
        }
        None
    }

    /// Keeps a session that ended its query cleanly.
    pub fn give(&self, addr: SocketAddr, s: Session<TcpStream>) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        idle.retain(|_, l| {
            l.retain(|(since, _)| since.elapsed() < KEEP_IDLE);
            !l.is_empty()
        });
        let list = idle.entry(addr).or_default();
        if list.len() < KEEP_PER_MEMBER {
            list.push((std::time::Instant::now(), s));
        }
    }
}

/// A member to ask, as chosen from the target.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// How results name it until it tells its own name.
    pub label: String,
    /// Where it is, or why it cannot be asked.
    pub addr: Result<SocketAddr, Error>,
}

/// The members a target names. An empty list means none matched.
pub fn links_for(target: &Target, members: &[MemberInfo]) -> Vec<LinkSpec> {
    let up = |m: &MemberInfo| matches!(m.state, MemberState::Alive | MemberState::Suspect);
    if target.all || target.spread {
        return members
            .iter()
            .filter(|m| up(m) && target.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v)))
            .map(|m| LinkSpec {
                label: m.name.clone(),
                addr: Ok(m.addr),
            })
            .collect();
    }
    target
        .peers
        .iter()
        .map(|spec| {
            if let Some(m) = members.iter().find(|m| &m.name == spec) {
                let addr = if up(m) {
                    Ok(m.addr)
                } else {
                    Err(Error::new(
                        ErrorCode::Unreachable,
                        format!("member {} is {}", m.name, m.state.as_str()),
                    ))
                };
                return LinkSpec {
                    label: m.name.clone(),
                    addr,
                };
            }
            let addr = match spec.to_socket_addrs() {
                Ok(mut a) => a.next().ok_or_else(|| no_such(spec)),
                Err(_) => Err(no_such(spec)),
            };
            LinkSpec {
                label: spec.clone(),
                addr,
            }
        })
        .collect()
}

fn no_such(spec: &str) -> Error {
    Error::new(
        ErrorCode::Unreachable,
        format!("no member is named {spec} and it is not a HOST:PORT (see p2p-peers)"),
    )
}

/// One path of the query.
struct Entry {
    /// The client's number for it.
    client_id: u64,
    /// As the user wrote it, for the result line.
    shown: String,
    /// As the members open it.
    absolute: String,
    /// Answers still owed.
    owed: usize,
}

/// What the link threads share.
struct State {
    dist: Distributor,
    entries: HashMap<u64, Entry>,
    ok: u64,
    failed: u64,
    /// The client went away; links stop.
    cancelled: bool,
}

struct Ctx {
    state: Mutex<State>,
    changed: Condvar,
    query: Query,
    timeout: Duration,
    out: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    /// Answers owed per path: one with `--spread`, one per member otherwise.
    owed_per_path: usize,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends one result line to the client and settles the entry.
    fn emit(&self, st: &mut State, id: u64, peer: &str, fields: Map<String, Value>) {
        let Some(e) = st.entries.get_mut(&id) else {
            return;
        };
        if fields.contains_key("error") {
            st.failed += 1;
        } else {
            st.ok += 1;
        }
        let mut line = Map::new();
        line.insert("id".into(), Value::from(e.client_id));
        line.insert("peer".into(), Value::from(peer));
        line.insert("path".into(), Value::from(e.shown.clone()));
        line.extend(fields);
        e.owed -= 1;
        if e.owed == 0 {
            st.entries.remove(&id);
        }
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        if self.out.send(bytes).is_err() {
            // The client is gone: stop asking members.
            st.cancelled = true;
        }
    }

    fn fail_items(&self, st: &mut State, link: usize, ids: &[u64], peer: &str, error: &Error) {
        for &id in ids {
            if st.dist.answer(link, id) {
                let mut fields = Map::new();
                fields.insert(
                    "error".into(),
                    serde_json::to_value(error).unwrap_or(Value::Null),
                );
                self.emit(st, id, peer, fields);
            }
        }
    }
}

/// Feeds paths into a running cluster query; dropping it tells the links
/// that no more will come.
pub struct Feeder {
    ctx: Arc<Ctx>,
    links: Vec<thread::JoinHandle<()>>,
    cwd: Option<String>,
}

impl Feeder {
    /// Adds one path (as the client numbered and wrote it). Waits while the
    /// members are far behind.
    pub fn push(&self, client_id: u64, shown: String) {
        let absolute = match absolute(&shown, self.cwd.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                let mut st = self.ctx.lock();
                st.failed += 1;
                drop(st);
                let line = serde_json::json!({
                    "id": client_id, "peer": self.ctx.shared.name, "path": shown, "error": e,
                });
                let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                bytes.push(b'\n');
                let _ = self.ctx.out.send(bytes);
                return;
            }
        };
        let mut st = self.ctx.lock();
        while st.dist.backlog() >= MAX_BACKLOG {
            st = self.ctx.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let id = st.dist.push();
        st.entries.insert(
            id,
            Entry {
                client_id,
                shown,
                absolute,
                owed: self.ctx.owed_per_path,
            },
        );
        drop(st);
        self.ctx.changed.notify_all();
    }

    /// No more paths: waits for every answer and returns the totals.
    pub fn finish(self) -> Summary {
        self.ctx.lock().dist.close();
        self.ctx.changed.notify_all();
        for l in self.links {
            let _ = l.join();
        }
        let st = self.ctx.lock();
        Summary {
            done: true,
            ok: st.ok,
            failed: st.failed,
        }
    }
}

/// A path as members should open it: absolute, against the caller's
/// directory when relative (lexically; members resolve the rest).
fn absolute(path: &str, cwd: Option<&str>) -> Result<String, Error> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    match cwd {
        Some(c) if c.starts_with('/') => Ok(format!("{}/{path}", c.trim_end_matches('/'))),
        _ => Err(Error::new(
            ErrorCode::InvalidRequest,
            "relative path without the caller's directory",
        )),
    }
}

/// Starts a cluster query over `links`; results go to `out` as JSON lines.
pub fn start(
    shared: &Arc<Shared>,
    query: Query,
    target: &Target,
    links: Vec<LinkSpec>,
    out: Sender<Vec<u8>>,
) -> Feeder {
    let mode = if target.spread {
        Mode::Once
    } else {
        Mode::Every
    };
    let timeout = target
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);
    let cwd = query.cwd.clone();
    let ctx = Arc::new(Ctx {
        state: Mutex::new(State {
            dist: Distributor::new(mode, links.len()),
            entries: HashMap::new(),
            ok: 0,
            failed: 0,
            cancelled: false,
        }),
        changed: Condvar::new(),
        query,
        timeout,
        out,
        shared: Arc::clone(shared),
        owed_per_path: if mode == Mode::Once { 1 } else { links.len() },
    });
    let handles = links
        .into_iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let ctx = Arc::clone(&ctx);
            thread::Builder::new()
                .name("link".into())
                .spawn(move || run_link(&ctx, i, spec))
                .ok()
        })
        .collect();
    Feeder {
        ctx,
        links: handles,
        cwd,
    }
}

/// Opens the session to a member, or takes one kept from an earlier query,
/// and starts the query; returns the session and the member's name.
fn open(ctx: &Ctx, addr: SocketAddr) -> Result<(Session<TcpStream>, String), Error> {
    if let Some(s) = ctx.shared.sessions.take(addr) {
        let _ = s.stream().set_read_timeout(Some(ctx.timeout));
        let _ = s.stream().set_write_timeout(Some(ctx.timeout));
        // A kept session may have been closed by the member meanwhile (it
        // restarted, or made room): then connect afresh.
        if let Ok(started) = start_query(ctx, addr, s) {
            return Ok(started);
        }
    }
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(ctx.timeout))
        .map_err(|e| link_error(&addr.to_string(), &e, ctx.timeout))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(ctx.timeout));
    let _ = stream.set_write_timeout(Some(ctx.timeout));
    let ring = ctx.shared.cluster.ring();
    let s =
        session::connect(stream, &ring).map_err(|e| session_error(&addr.to_string(), e, ctx))?;
    start_query(ctx, addr, s)
}

fn start_query(
    ctx: &Ctx,
    addr: SocketAddr,
    mut s: Session<TcpStream>,
) -> Result<(Session<TcpStream>, String), Error> {
    let q = &ctx.query;
    let start = PeerRequest::Query {
        kind: q.kind,
        lines_only: q.lines_only,
        recursive: q.recursive,
    };
    s.send(&peer::encode(&start))
        .map_err(|e| session_error(&addr.to_string(), e, ctx))?;
    let reply = s
        .recv(peer::MAX_FRAME)
        .map_err(|e| session_error(&addr.to_string(), e, ctx))?;
    match serde_json::from_slice::<PeerReply>(&reply) {
        Ok(PeerReply::Accepted { peer }) => Ok((s, peer)),
        Ok(PeerReply::Failed { error }) => Err(error),
        _ => Err(Error::new(
            ErrorCode::Internal,
            format!("{addr} answered the query with something unexpected"),
        )),
    }
}

fn link_error(label: &str, e: &io::Error, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            ErrorCode::Timeout,
            format!("no answer from {label} within {}", seconds(timeout)),
        ),
        _ => Error::new(
            ErrorCode::Unreachable,
            format!("{label} cannot be reached: {}", Error::from_io(e).message),
        ),
    }
}

/// The documented error for a session to `label` (an address, or the
/// member's name once known) that failed.
fn session_error(label: &str, e: SessionError, ctx: &Ctx) -> Error {
    match e {
        SessionError::Unauthorized => Error::new(
            ErrorCode::Unauthorized,
            format!("{label} does not hold our cluster key"),
        ),
        SessionError::Io(io) => link_error(label, &io, ctx.timeout),
        other => Error::new(ErrorCode::Unreachable, format!("{label}: {other}")),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// One member's link, from connecting to its last answer.
fn run_link(ctx: &Ctx, link: usize, spec: LinkSpec) {
    let opened = spec.addr.clone().and_then(|addr| open(ctx, addr));
    let (mut session, name) = match opened {
        Ok(s) => s,
        Err(e) => return drain(ctx, link, &spec.label, &e),
    };
    let mut held = 0usize;
    let mut ended = false;
    let failure = 'link: loop {
        // Keep the member supplied: up to two batches in its hands.
        while !ended && held < WINDOW {
            let next = {
                let mut st = ctx.lock();
                loop {
                    let ids = st.dist.take(link, BATCH.min(WINDOW - held));
                    if !ids.is_empty() {
                        let items: Vec<PeerItem> = ids
                            .iter()
                            .filter_map(|id| {
                                st.entries.get(id).map(|e| PeerItem {
                                    id: *id,
                                    path: e.absolute.clone(),
                                })
                            })
                            .collect();
                        break Some(PeerRequest::Items { items });
                    }
                    if st.dist.finished(link) {
                        break Some(PeerRequest::End {});
                    }
                    if held > 0 {
                        break None;
                    }
                    // Idle: wait for paths, a failing member's leftovers, or the end.
                    st = ctx
                        .changed
                        .wait_timeout(st, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            match next {
                Some(PeerRequest::Items { items }) => {
                    held += items.len();
                    let frame = peer::encode(&PeerRequest::Items { items });
                    if let Err(e) = session.send(&frame) {
                        break 'link Some(session_error(&name, e, ctx));
                    }
                }
                Some(end) => {
                    if let Err(e) = session.send(&peer::encode(&end)) {
                        break 'link Some(session_error(&name, e, ctx));
                    }
                    ended = true;
                }
                None => break,
            }
        }
        let frame = match session.recv(peer::MAX_FRAME) {
            Ok(f) => f,
            Err(e) => break 'link Some(session_error(&name, e, ctx)),
        };
        match serde_json::from_slice::<PeerReply>(&frame) {
            Ok(PeerReply::Results { results }) => {
                let mut st = ctx.lock();
                if st.cancelled {
                    break 'link Some(Error::new(ErrorCode::Internal, "the client went away"));
                }
                for r in results {
                    if st.dist.answer(link, r.id) {
                        held = held.saturating_sub(1);
                        ctx.emit(&mut st, r.id, &name, r.fields);
                    }
                }
                drop(st);
                ctx.changed.notify_all();
            }
            Ok(PeerReply::Working) => {}
            Ok(PeerReply::Done) if ended => {
                if let Ok(addr) = spec.addr {
                    ctx.shared.sessions.give(addr, session);
                }
                return;
            }
            Ok(PeerReply::Failed { error }) => break 'link Some(error),
            _ => {
                break 'link Some(Error::new(
                    ErrorCode::Internal,
                    format!("{name} sent something unexpected; giving up on it"),
                ));
            }
        }
    };
    if let Some(e) = failure {
        log::info!(
            "query on {}: {}",
            crate::daemon::logging::untrusted(&name),
            crate::daemon::logging::untrusted(&e.message)
        );
        drain(ctx, link, &name, &e);
    }
}

/// A failed link: its paths go to the others (`--spread`) or get error
/// lines, then it reports whatever else is left to it.
fn drain(ctx: &Ctx, link: usize, peer: &str, error: &Error) {
    let mut st = ctx.lock();
    let orphans = st.dist.fail(link);
    ctx.fail_items(&mut st, link, &orphans, peer, error);
    ctx.changed.notify_all();
    loop {
        let ids = st.dist.take(link, BATCH);
        if !ids.is_empty() {
            ctx.fail_items(&mut st, link, &ids, peer, error);
            ctx.changed.notify_all();
            continue;
        }
        if st.dist.finished(link) {
            break;
        }
        st = ctx
            .changed
            .wait_timeout(st, Duration::from_millis(200))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    drop(st);
    ctx.changed.notify_all();
}
