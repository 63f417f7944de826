//! Queries that run on other members (`--peer`, `--all`, `--spread`): the
//! local daemon opens one encrypted session per chosen member, feeds each
//! its paths in batches, and streams every result to the client as it
//! arrives.
//!
//! One thread per member link. Which link answers which path is decided by
//! [`Distributor`] (see there). A member that cannot be reached, refuses us,
//! stays silent longer than the query's timeout, or says it is working for
//! [`STALL_FACTOR`] times that without a result fails its link: with
//! `--spread` its unfinished paths go to the others, otherwise each of its
//! paths gets an error line. Every path thus gets exactly its lines, whatever
//! happens to the members.
//!
//! This node may be among the members asked. Its exports let remote members
//! read with the daemon's rights, but a local caller must never learn about
//! a file they could not open themselves, whatever placement they choose. So
//! for a caller foreign to the daemon (neither its user nor root) this
//! node's answers are computed here, in-process ([`run_here`]): the path is
//! resolved below the exports exactly as for a remote member, and answered
//! only if the caller passed their own descriptor of that very file, open for
//! reading. A directory count is not walked here at all: its answer is the
//! count the caller's command took itself on that descriptor.
//!
//! Bounds against amplification: a target naming one member several times
//! (by name or by address) gets one link; a `--peer` list may name at most
//! [`MAX_PEERS`] members; and this daemon holds at most
//! [`LINKS_PER_MEMBER`] links to one member at once, over all queries (the
//! others wait for a free one).

use super::Shared;
use super::batch::{Batches, Done};
use super::caller::Caller;
use super::cancel::Cancel;
use super::distribute::{Distributor, Mode};
use super::engine::Fields;
use super::logging;
use crate::crypto::session::{self, Session, SessionError};
use crate::error::{Error, ErrorCode};
use crate::membership::{MemberInfo, MemberState};
use crate::ops::count::DirCounts;
use crate::proto::peer::{self, PeerItem, PeerReply, PeerRequest};
use crate::proto::{Outcome, PathBytes, Query, QueryKind, Summary, Target};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::{Sender, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Items handed to a member in one frame.
const BATCH: usize = 64;

/// Items a member may hold at once: two batches, so it has the next one
/// while its results travel back.
const WINDOW: usize = 2 * BATCH;

/// Paths held for members that have not taken them yet; past this the
/// client is not read until they catch up.
const MAX_BACKLOG: u64 = 8192;

/// Caller's descriptors held for this node's own answers; past this the
/// client is not read until some are used.
const MAX_HELD_FILES: usize = 256;

/// The longest a connection attempt may take, whatever the query's timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default silence allowed to a member.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query timeouts accepted, in milliseconds (as `--timeout` accepts them).
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 50..=86_400_000;

/// A member that only says "working" is given up after this many times the
/// query's timeout without a result (10 minutes by default): room for one
/// long file, not for a member that never finishes.
pub const STALL_FACTOR: u32 = 60;

/// Members one `--peer` list may name (after duplicates collapse).
pub const MAX_PEERS: usize = 64;

/// Links this daemon holds to one member at once, over all queries.
pub const LINKS_PER_MEMBER: usize = 4;

/// Sessions to members left open after a query, for the next one: a query
/// on a member already asked within 20 s skips the TCP and Noise
/// handshakes.
/// It also counts the links open to each member, to hold them to
/// [`LINKS_PER_MEMBER`].
#[derive(Default)]
pub struct SessionPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Kept>>>,
    busy: Mutex<HashMap<SocketAddr, usize>>,
    freed: Condvar,
}

/// A link's place among those to one member; dropping it frees the place.
pub struct LinkSlot<'a> {
    pool: &'a SessionPool,
    addr: SocketAddr,
}

impl Drop for LinkSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self.pool.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&self.addr);
            }
        }
        drop(busy);
        self.pool.freed.notify_all();
    }
}

/// A session and since when it has been unused.
type Kept = (std::time::Instant, Session<Conn>);

/// A member connection shared between its link and the query, which may
/// shut it down from another thread ([`Feeder::cancel`]) to end a read
/// that would otherwise wait out the query's timeout.
pub struct Conn(Arc<TcpStream>);

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn(Arc::new(stream))
    }

    fn tcp(&self) -> &TcpStream {
        &self.0
    }
}

impl io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl io::Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// How long an unused session is kept (members close theirs after 60 s).
const KEEP_IDLE: Duration = Duration::from_secs(20);

/// Sessions kept per member; more are closed.
const KEEP_PER_MEMBER: usize = 2;

impl SessionPool {
    /// Waits for a place among the links to `addr`; `None` once `give_up`
    /// says so (asked every 200 ms while waiting).
    pub fn reserve(&self, addr: SocketAddr, give_up: impl Fn() -> bool) -> Option<LinkSlot<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let n = busy.entry(addr).or_default();
            if *n < LINKS_PER_MEMBER {
                *n += 1;
                return Some(LinkSlot { pool: self, addr });
            }
            if give_up() {
                return None;
            }
            busy = self
                .freed
                .wait_timeout(busy, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// A kept session to `addr`, if a fresh enough one is there.
    pub fn take(&self, addr: SocketAddr) -> Option<Session<Conn>> {
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
    pub fn give(&self, addr: SocketAddr, s: Session<Conn>) {
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

/// The members a target names, each once (a member named twice, or by name
/// and by address, is one link). An empty list means none matched.
///
/// `raw_allowed` (the daemon's owner and root) lets a `--peer` be any
/// HOST:PORT; others may name members only, by name or by the address the
/// member has in the member list, so they cannot make the daemon connect
/// anywhere else. A request beyond the bounds is refused whole.
pub fn links_for(
    target: &Target,
    members: &[MemberInfo],
    raw_allowed: bool,
) -> Result<Vec<LinkSpec>, Error> {
    if let Some(ms) = target.timeout_ms {
        if !TIMEOUT_MS.contains(&ms) {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "timeout_ms must be from {} to {}, got {ms}",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end()
                ),
            ));
        }
    }
    let up = |m: &MemberInfo| matches!(m.state, MemberState::Alive | MemberState::Suspect);
    let mut seen_addrs = HashSet::new();
    let mut seen_labels = HashSet::new();
    let mut once = |spec: &LinkSpec| match &spec.addr {
        Ok(a) => seen_addrs.insert(*a),
        Err(_) => seen_labels.insert(spec.label.clone()),
    };
    if target.all || target.spread {
        return Ok(members
            .iter()
            .filter(|m| up(m) && target.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v)))
            .map(|m| LinkSpec {
                label: m.name.clone(),
                addr: Ok(m.addr),
            })
            .filter(|l| once(l))
            .collect());
    }
    let mut links = Vec::new();
    for spec in &target.peers {
        let link = link_for(spec, members, raw_allowed)?;
        if once(&link) {
            links.push(link);
        }
        if links.len() > MAX_PEERS {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a query may name at most {MAX_PEERS} members with --peer; use --all or --spread (with --tag) for more"
                ),
            ));
        }
    }
    Ok(links)
}

/// The member one `--peer` names.
fn link_for(spec: &str, members: &[MemberInfo], raw_allowed: bool) -> Result<LinkSpec, Error> {
    let literal = spec.parse::<SocketAddr>().ok();
    let member = members
        .iter()
        .find(|m| m.name == spec)
        .or_else(|| members.iter().find(|m| Some(m.addr) == literal));
    if let Some(m) = member {
        let addr = if matches!(m.state, MemberState::Alive | MemberState::Suspect) {
            Ok(m.addr)
        } else {
            Err(Error::new(
                ErrorCode::Unreachable,
                format!("the member is {}", m.state.as_str()),
            ))
        };
        return Ok(LinkSpec {
            label: m.name.clone(),
            addr,
        });
    }
    let looks_raw = spec
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !raw_allowed {
        if looks_raw {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                format!(
                    "--peer {spec}: no member has that address, and only the daemon's own user \
                     or root may send queries to other addresses; name members as p2p-peers lists them"
                ),
            ));
        }
        return Ok(LinkSpec {
            label: spec.to_string(),
            addr: Err(no_such()),
        });
    }
    let addr = match spec.to_socket_addrs() {
        Ok(mut a) => a.next().ok_or_else(no_such),
        Err(_) => Err(no_such()),
    };
    Ok(LinkSpec {
        label: spec.to_string(),
        addr,
    })
}

fn no_such() -> Error {
    Error::new(
        ErrorCode::Unreachable,
        "no member has this name, and it is not a HOST:PORT (see p2p-peers)",
    )
}

/// One path of the query.
struct Entry {
    /// The client's number for it.
    client_id: u64,
    /// As the user wrote it, for the result line.
    shown: PathBytes,
    /// As the members open it.
    absolute: PathBytes,
    /// Answers still owed.
    owed: usize,
    /// The caller's own descriptor of the file, for this node's answer.
    file: Option<Result<File, Error>>,
    /// For a count: what the caller's command counted on that descriptor.
    counted: Option<Outcome<DirCounts>>,
}

/// What the link threads share.
struct State {
    dist: Distributor,
    entries: HashMap<u64, Entry>,
    ok: u64,
    failed: u64,
    /// The client went away; links stop.
    cancelled: bool,
    /// Entries holding a caller's descriptor.
    files_held: usize,
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
    /// True for a caller foreign to the daemon, whose answers from this
    /// node are given in-process on their own descriptors; false for its
    /// own user and root, whom it answers as a member like any other.
    here: bool,
    /// Whose share of the workers this node's own answers take.
    who: super::pool::Who,
    /// The query's number in the log.
    number: u64,
    /// The connections of the links now talking to members, so that a
    /// cancellation can shut them down at once.
    open: Mutex<HashMap<usize, Arc<TcpStream>>>,
    /// Set by a cancellation: this node's own answers stop too (see
    /// [`super::cancel`]).
    cancel: Cancel,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_conns(&self) -> MutexGuard<'_, HashMap<usize, Arc<TcpStream>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the query: no more lines, no more paths, and every link's
    /// connection shut down so that no read waits for its timeout.
    fn cancel(&self) {
        self.lock().cancelled = true;
        self.cancel.cancel();
        self.changed.notify_all();
        self.shut_all();
    }

    fn shut_all(&self) {
        for conn in self.open_conns().values() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    /// `link` talks to a member over `conn` until the guard is dropped.
    fn register(&self, link: usize, conn: &Conn) -> Registered<'_> {
        self.open_conns().insert(link, Arc::clone(&conn.0));
        // A cancellation that came before the insertion did not see it.
        if self.lock().cancelled {
            let _ = conn.tcp().shutdown(std::net::Shutdown::Both);
        }
        Registered { ctx: self, link }
    }

    /// Sends one result line to the client and settles the entry.
    fn emit(&self, st: &mut State, id: u64, peer: &str, fields: Map<String, Value>) {
        if st.cancelled {
            return;
        }
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
        line.extend(path_keys(&e.shown));
        line.extend(fields);
        e.owed -= 1;
        if e.owed == 0
            && let Some(done) = st.entries.remove(&id)
            && done.file.is_some()
        {
            st.files_held -= 1;
        }
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        if self.out.send(bytes).is_err() {
            // The client is gone: stop asking members.
            st.cancelled = true;
            self.cancel.cancel();
            self.changed.notify_all();
            self.shut_all();
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

/// A link's connection known to [`Ctx::cancel`]; dropping it forgets it.
struct Registered<'a> {
    ctx: &'a Ctx,
    link: usize,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.ctx.open_conns().remove(&self.link);
    }
}

/// Feeds paths into a running cluster query; dropping it tells the links
/// that no more will come.
pub struct Feeder {
    ctx: Arc<Ctx>,
    links: Vec<thread::JoinHandle<()>>,
    cwd: Option<PathBytes>,
    /// Whether this node answers here and so needs the caller's descriptors.
    keep_files: bool,
}

impl Feeder {
    /// Adds one path (as the client numbered and wrote it), with the
    /// caller's descriptor of it if they passed one. Waits while the members
    /// are far behind.
    pub fn push(
        &self,
        client_id: u64,
        shown: PathBytes,
        file: Option<Result<File, Error>>,
        counted: Option<Outcome<DirCounts>>,
    ) {
        let file = file.filter(|_| self.keep_files);
        let counted = counted.filter(|_| self.keep_files);
        let absolute = match absolute(&shown, self.cwd.as_ref()) {
            Ok(a) => a,
            Err(e) => {
                let mut st = self.ctx.lock();
                st.failed += 1;
                drop(st);
                let mut line = Map::new();
                line.insert("id".into(), Value::from(client_id));
                line.insert("peer".into(), Value::from(self.ctx.shared.name.clone()));
                line.extend(path_keys(&shown));
                line.insert(
                    "error".into(),
                    serde_json::to_value(&e).unwrap_or(Value::Null),
                );
                let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
                bytes.push(b'\n');
                let _ = self.ctx.out.send(bytes);
                return;
            }
        };
        let mut st = self.ctx.lock();
        while !st.cancelled
            && (st.dist.backlog() >= MAX_BACKLOG
                || (file.is_some() && st.files_held >= MAX_HELD_FILES))
        {
            st = self.ctx.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.cancelled {
            return;
        }
        if file.is_some() {
            st.files_held += 1;
        }
        let id = st.dist.push();
        st.entries.insert(
            id,
            Entry {
                client_id,
                shown,
                absolute,
                owed: self.ctx.owed_per_path,
                file,
                counted,
            },
        );
        drop(st);
        self.ctx.changed.notify_all();
    }

    /// Cancels the query (the client is gone, or was interrupted): the
    /// links stop, shut their member connections down at once (a member
    /// sees its session end and stops working for us), and keep none of
    /// them for later; no more lines are sent, and paths pushed from now
    /// on are ignored. [`Feeder::finish`] then returns within moments.
    pub fn cancel(&self) {
        self.ctx.cancel();
    }

    /// Whether the query was cancelled, by [`Feeder::cancel`] or because
    /// the client stopped reading its results.
    pub fn is_cancelled(&self) -> bool {
        self.ctx.lock().cancelled
    }

    /// True while some path pushed is not fully answered yet.
    pub fn in_progress(&self) -> bool {
        !self.ctx.lock().entries.is_empty()
    }

    /// A handle that cancels the query from another thread, as
    /// [`Feeder::cancel`] does, while [`Feeder::finish`] waits.
    pub fn canceller(&self) -> Canceller {
        Canceller(Arc::clone(&self.ctx))
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

/// Cancels a running cluster query; see [`Feeder::cancel`].
#[derive(Clone)]
pub struct Canceller(Arc<Ctx>);

impl Canceller {
    /// Cancels the query if some path pushed is not fully answered yet and
    /// it was not cancelled before; returns whether it did (to count it).
    pub fn cancel(&self) -> bool {
        let ctx = &self.0;
        {
            let st = ctx.lock();
            if st.cancelled || st.entries.is_empty() {
                return false;
            }
        }
        ctx.cancel();
        true
    }
}

/// The `path` (and `path_b64`) keys of a result line.
fn path_keys(path: &PathBytes) -> Map<String, Value> {
    match serde_json::to_value(path) {
        Ok(Value::Object(keys)) => keys,
        _ => Map::new(),
    }
}

/// A path as members should open it: absolute, against the caller's
/// directory when relative (lexically; members resolve the rest).
fn absolute(path: &PathBytes, cwd: Option<&PathBytes>) -> Result<PathBytes, Error> {
    let path = path.as_bytes();
    if path.starts_with(b"/") {
        return Ok(path.into());
    }
    match cwd.map(PathBytes::as_bytes) {
        Some(c) if c.starts_with(b"/") => {
            let mut full = c.to_vec();
            while full.last() == Some(&b'/') {
                full.pop();
            }
            full.push(b'/');
            full.extend_from_slice(path);
            Ok(full.into())
        }
        _ => Err(Error::new(
            ErrorCode::InvalidRequest,
            "relative path without the caller's directory",
        )),
    }
}

/// Starts a cluster query of `caller` over `links`; results go to `out` as
/// JSON lines. `number` names the query in log lines.
pub fn start(
    shared: &Arc<Shared>,
    query: Query,
    target: &Target,
    links: Vec<LinkSpec>,
    out: Sender<Vec<u8>>,
    caller: &Caller,
    number: u64,
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
    let here = !caller.is_trusted(shared.euid);
    let members = shared.cluster.members();
    let ours = members
        .iter()
        .find(|m| m.name == shared.name)
        .map(|m| m.addr);
    let at_here: Vec<bool> = links
        .iter()
        .map(|spec| here && (spec.label == shared.name || spec.addr.as_ref().ok() == ours.as_ref()))
        .collect();
    // A raw address may turn out to be this node too (see run_link).
    let raw = |spec: &LinkSpec| !members.iter().any(|m| m.name == spec.label);
    let keep_files = here && (at_here.contains(&true) || links.iter().any(raw));
    let ctx = Arc::new(Ctx {
        state: Mutex::new(State {
            dist: Distributor::new(mode, links.len()),
            entries: HashMap::new(),
            ok: 0,
            failed: 0,
            cancelled: false,
            files_held: 0,
        }),
        changed: Condvar::new(),
        query,
        timeout,
        out,
        shared: Arc::clone(shared),
        owed_per_path: if mode == Mode::Once { 1 } else { links.len() },
        here,
        who: super::pool::Who::User(caller.uid),
        number,
        open: Mutex::new(HashMap::new()),
        cancel: Cancel::new(),
    });
    let handles = links
        .into_iter()
        .zip(at_here)
        .enumerate()
        .filter_map(|(i, (spec, at_here))| {
            let ctx = Arc::clone(&ctx);
            thread::Builder::new()
                .name("link".into())
                .spawn(move || {
                    let started = Instant::now();
                    let label = logging::untrusted(&spec.label).to_string();
                    let place = match &spec.addr {
                        Ok(a) if at_here => format!("{label} (here, {a})"),
                        Ok(a) => format!("{label} at {a}"),
                        Err(_) => label,
                    };
                    logging::trail(
                        "fanout",
                        format_args!("query {}: asking {place}", ctx.number),
                    );
                    let answered = if at_here {
                        run_here(&ctx, i)
                    } else {
                        run_link(&ctx, i, spec)
                    };
                    logging::trail(
                        "fanout",
                        format_args!(
                            "query {}: {place} gave {answered} answer(s) in {}",
                            ctx.number,
                            logging::ms(started.elapsed())
                        ),
                    );
                })
                .ok()
        })
        .collect();
    Feeder {
        ctx,
        links: handles,
        cwd,
        keep_files,
    }
}

/// Opens the session to a member (`label` in the results), or takes one
/// kept from an earlier query, and starts the query; returns the session
/// and the member's name.
fn open(ctx: &Ctx, label: &str, addr: SocketAddr) -> Result<(Session<Conn>, String), Error> {
    // The result line names the member; its address is news only when the
    // name is not the address itself.
    let at = if label == addr.to_string() {
        String::new()
    } else {
        format!(" at {addr}")
    };
    if let Some(s) = ctx.shared.sessions.take(addr) {
        let _ = s.stream().tcp().set_read_timeout(Some(ctx.timeout));
        let _ = s.stream().tcp().set_write_timeout(Some(ctx.timeout));
        // A kept session may have been closed by the member meanwhile (it
        // restarted, or made room): then connect afresh.
        if let Ok(started) = start_query(ctx, &at, s) {
            logging::trail(
                "fanout",
                format_args!("query {}: reusing a session to {addr}", ctx.number),
            );
            return Ok(started);
        }
    }
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(ctx.timeout))
        .map_err(|e| link_error(&at, &e, ctx.timeout))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(ctx.timeout));
    let _ = stream.set_write_timeout(Some(ctx.timeout));
    let ring = ctx.shared.cluster.ring();
    let s = session::connect(Conn::new(stream), &ring).map_err(|e| session_error(&at, e, ctx))?;
    logging::trail(
        "fanout",
        format_args!("query {}: session to {addr} opened", ctx.number),
    );
    start_query(ctx, &at, s)
}

/// Starts the query on a session; `at` is " at ADDR" or empty, for messages.
fn start_query(
    ctx: &Ctx,
    at: &str,
    mut s: Session<Conn>,
) -> Result<(Session<Conn>, String), Error> {
    let q = &ctx.query;
    let start = PeerRequest::Query {
        kind: q.kind,
        lines_only: q.lines_only,
        max_line_length: q.max_line_length,
        recursive: q.recursive,
        dereference: q.dereference,
        posixly_correct: q.posixly_correct,
    };
    s.send(&peer::encode(&start))
        .map_err(|e| session_error(at, e, ctx))?;
    let reply = s
        .recv(peer::MAX_FRAME)
        .map_err(|e| session_error(at, e, ctx))?;
    match serde_json::from_slice::<PeerReply>(&reply) {
        Ok(PeerReply::Accepted { peer }) => Ok((s, peer)),
        Ok(PeerReply::Failed { error }) => Err(error),
        _ => Err(Error::new(
            ErrorCode::Internal,
            format!("the member{at} answered the query with something unexpected"),
        )),
    }
}

// The messages below do not name the member: every result line (and the
// command's message on stderr) starts with it already. `at` is " at ADDR"
// when the member goes by a name, else empty.

fn link_error(at: &str, e: &io::Error, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::new(
            ErrorCode::Timeout,
            format!("no answer{at} within {}", seconds(timeout)),
        ),
        _ => Error::new(
            ErrorCode::Unreachable,
            format!("cannot be reached{at}: {}", Error::from_io(e).message),
        ),
    }
}

/// The documented error for a session that failed.
fn session_error(at: &str, e: SessionError, ctx: &Ctx) -> Error {
    match e {
        SessionError::Unauthorized => Error::new(
            ErrorCode::Unauthorized,
            format!("the member{at} does not hold our cluster key"),
        ),
        SessionError::Io(io) => link_error(at, &io, ctx.timeout),
        other => Error::new(
            ErrorCode::Unreachable,
            format!("session{at} failed: {other}"),
        ),
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

/// One member's link, from connecting to its last answer; returns how many
/// answers the member gave.
fn run_link(ctx: &Ctx, link: usize, spec: LinkSpec) -> usize {
    // Held until the link ends, so one member never has more than
    // LINKS_PER_MEMBER of ours; a query that waits here keeps its paths.
    let slot = match &spec.addr {
        Ok(addr) => ctx.shared.sessions.reserve(*addr, || ctx.lock().cancelled),
        Err(_) => None,
    };
    let opened = match (&spec.addr, &slot) {
        (Ok(addr), Some(_)) => open(ctx, &spec.label, *addr),
        (Ok(_), None) => Err(gone()),
        (Err(e), _) => Err(e.clone()),
    };
    let (mut session, name) = match opened {
        Ok(s) => s,
        Err(e) => {
            logging::trail(
                "fanout",
                format_args!(
                    "query {}: {}: {}",
                    ctx.number,
                    logging::untrusted(&spec.label),
                    logging::untrusted(&e.message)
                ),
            );
            drain(ctx, link, &spec.label, &e);
            return 0;
        }
    };
    if name == ctx.shared.name && ctx.here {
        // An address that leads back to this node: a foreign caller's
        // answers from here are never read with the daemon's rights.
        drop(session);
        return run_here(ctx, link);
    }
    let _registered = ctx.register(link, session.stream());
    let mut held = 0usize;
    let mut answered = 0usize;
    let mut ended = false;
    // The last sign of progress: a result, or work handed to an idle member.
    let mut progress = Instant::now();
    let stall = ctx.timeout.saturating_mul(STALL_FACTOR);
    let failure = 'link: loop {
        // Keep the member supplied: up to two batches in its hands.
        while !ended && held < WINDOW {
            let next = {
                let mut st = ctx.lock();
                loop {
                    if st.cancelled {
                        break Next::Cancelled;
                    }
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
                        break Next::Send(PeerRequest::Items { items });
                    }
                    if st.dist.finished(link) {
                        break Next::Send(PeerRequest::End {});
                    }
                    if held > 0 {
                        break Next::Receive;
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
                Next::Cancelled => break 'link Some(gone()),
                Next::Send(PeerRequest::Items { items }) => {
                    if held == 0 {
                        progress = Instant::now();
                    }
                    held += items.len();
                    let frame = peer::encode(&PeerRequest::Items { items });
                    if let Err(e) = session.send(&frame) {
                        break 'link Some(session_error("", e, ctx));
                    }
                }
                Next::Send(end) => {
                    if let Err(e) = session.send(&peer::encode(&end)) {
                        break 'link Some(session_error("", e, ctx));
                    }
                    ended = true;
                }
                Next::Receive => break,
            }
        }
        let frame = match session.recv(peer::MAX_FRAME) {
            Ok(f) => f,
            Err(e) => break 'link Some(session_error("", e, ctx)),
        };
        match serde_json::from_slice::<PeerReply>(&frame) {
            Ok(PeerReply::Results { results }) => {
                let mut st = ctx.lock();
                if st.cancelled {
                    break 'link Some(gone());
                }
                for r in results {
                    // Only an answer to one of our paths is progress, not
                    // an empty frame or one about paths never asked.
                    if st.dist.answer(link, r.id) {
                        progress = Instant::now();
                        held = held.saturating_sub(1);
                        answered += 1;
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
                return answered;
            }
            Ok(PeerReply::Failed { error }) => break 'link Some(error),
            _ => {
                break 'link Some(Error::new(
                    ErrorCode::Internal,
                    "the member sent something unexpected; giving up on it",
                ));
            }
        }
        // Heartbeats (or empty frames) alone keep a link alive this long.
        if progress.elapsed() > stall {
            break 'link Some(Error::new(
                ErrorCode::Timeout,
                format!(
                    "the member said it was working for {} without a result; giving up on it",
                    seconds(stall)
                ),
            ));
        }
    };
    if let Some(e) = failure {
        if ctx.lock().cancelled {
            return answered;
        }
        log::info!(
            "query on {}: {}",
            crate::daemon::logging::untrusted(&name),
            crate::daemon::logging::untrusted(&e.message)
        );
        drain(ctx, link, &name, &e);
    }
    answered
}

/// What a link sends next.
enum Next {
    Send(PeerRequest),
    /// Nothing to send now: read what the member says.
    Receive,
    Cancelled,
}

/// The error of a link stopped by a cancelled query (never shown: a
/// cancelled query sends no more lines).
fn gone() -> Error {
    Error::new(ErrorCode::Internal, "the query was cancelled")
}

/// A failed link: its paths go to the others (`--spread`) or get error
/// lines, then it reports whatever else is left to it.
fn drain(ctx: &Ctx, link: usize, peer: &str, error: &Error) {
    let mut st = ctx.lock();
    if st.cancelled {
        return;
    }
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
        if st.dist.finished(link) || st.cancelled {
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

/// This node's own answers for a caller foreign to the daemon, computed
/// in-process: each path is opened below the exports as a remote member's
/// query would be (same refusals), then answered only if the caller's
/// descriptor is open for reading and is that same file, and computed on
/// the caller's descriptor (a count: taken from what the caller's command
/// counted itself on it). Returns how many answers it gave.
fn run_here(ctx: &Ctx, link: usize) -> usize {
    let name = ctx.shared.name.clone();
    if !ctx.here {
        let e = Error::new(ErrorCode::Internal, "no caller to answer for");
        drain(ctx, link, &name, &e);
        return 0;
    }
    let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
    let (done_tx, done_rx) = channel::<Vec<Done>>();
    let mut batches = Batches::new(
        Arc::clone(&ctx.shared),
        ctx.who,
        Arc::new(ctx.query.clone()),
        done_tx,
        slot_tx,
    );
    batches.cancel_with(ctx.cancel.clone());
    let exports = ctx.shared.exports();
    let mut held = 0usize;
    let mut answered = 0usize;
    loop {
        if held < WINDOW {
            let mut st = ctx.lock();
            if st.cancelled {
                return answered;
            }
            let ids = st.dist.take(link, BATCH.min(WINDOW - held));
            if ids.is_empty() && held == 0 {
                if st.dist.finished(link) {
                    return answered;
                }
                // Idle: wait for paths or the end.
                let _ = ctx
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let mut items = Vec::with_capacity(ids.len());
            for id in ids {
                let st = &mut *st;
                if let Some(e) = st.entries.get_mut(&id) {
                    let file = e.file.take();
                    if file.is_some() {
                        st.files_held -= 1;
                    }
                    items.push((id, e.absolute.clone(), file, e.counted.take()));
                }
            }
            drop(st);
            ctx.changed.notify_all();
            let n = items.len();
            for (k, (id, path, file, counted)) in items.into_iter().enumerate() {
                let file = caller_file(&exports, &path, file);
                held += 1;
                if ctx.query.kind == QueryKind::Count {
                    // Walked by the caller's own process: this daemon reads
                    // no directory for another user.
                    let answer = file.and_then(|_| match counted {
                        Some(Outcome::Ok(c)) => Ok(c),
                        Some(Outcome::Failed { error }) => Err(error),
                        None => Err(Error::new(
                            ErrorCode::InvalidRequest,
                            "a count of this node for another user than the daemon's \
                             comes with the counts the command took itself (p2p-count does so)",
                        )),
                    });
                    batches.answered(id, path, answer.map(Fields::Count));
                    continue;
                }
                // The caller reached the link's target through the path, so
                // they may look at the link itself.
                if file.is_ok()
                    && let Some(link) = super::remote::symlink_stat(&ctx.query, &exports, &path)
                {
                    batches.answered(id, path, Ok(link));
                    continue;
                }
                batches.add(id, path, file, k + 1 < n);
            }
            batches.flush();
            if held == 0 {
                continue;
            }
        }
        let Ok(done) = done_rx.recv() else {
            return answered;
        };
        let mut st = ctx.lock();
        for d in done {
            let _ = slot_rx.try_recv();
            held = held.saturating_sub(1);
            if st.dist.answer(link, d.id) {
                let id = d.id;
                answered += 1;
                ctx.emit(&mut st, id, &name, super::remote::result_of(d).fields);
            }
        }
        drop(st);
        ctx.changed.notify_all();
    }
}

/// The caller's descriptor of `path`, if the path is one a remote member may
/// ask about and the descriptor is open for reading and is that very file.
fn caller_file(
    exports: &crate::exports::Exports,
    path: &PathBytes,
    file: Option<Result<File, Error>>,
) -> Result<File, Error> {
    let ours = exports.open(path)?;
    let theirs = file.ok_or_else(|| {
        Error::new(
            ErrorCode::PermissionDenied,
            "you cannot open it here (this member tells its local users only about files \
             they can open themselves)",
        )
    })??;
    let (a, b) = (ours.metadata()?, theirs.metadata()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the descriptor you passed is not the file this path names here",
        ));
    }
    Ok(theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            state: MemberState::Alive,
            incarnation: 1,
            tags: Default::default(),
            is_self: false,
        }
    }

    fn peers(list: &[&str]) -> Target {
        Target {
            peers: list.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_member_named_many_times_or_by_address_is_one_link() {
        let members = [member("a", 41401), member("b", 41402)];
        let mut list = vec!["a"; 300];
        list.push("127.0.0.1:41401");
        list.push("b");
        let links = links_for(&peers(&list), &members, false).unwrap();
        let labels: Vec<&str> = links.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        let links = links_for(&peers(&["127.0.0.1:41499"; 5]), &members, true).unwrap();
        assert_eq!(links.len(), 1);
    }

    #[test]
    fn only_the_owner_and_root_may_name_other_addresses() {
        let members = [member("a", 41401)];
        let e = links_for(&peers(&["127.0.0.1:41403"]), &members, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        // A plain unknown name is not an address: an unreachable line, no lookup.
        let links = links_for(&peers(&["nosuch"]), &members, false).unwrap();
        assert!(links[0].addr.is_err());
        let links = links_for(&peers(&["127.0.0.1:41403"]), &members, true).unwrap();
        assert!(links[0].addr.is_ok());
    }

    #[test]
    fn a_long_peer_list_and_a_zero_timeout_are_refused() {
        let names: Vec<String> = (0..=MAX_PEERS as u16)
            .map(|i| format!("127.0.0.1:{}", 41400 + i))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let e = links_for(&peers(&refs), &[], true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(links_for(&peers(&refs[..MAX_PEERS]), &[], true).is_ok());
        let mut t = peers(&["127.0.0.1:41401"]);
        t.timeout_ms = Some(0);
        let e = links_for(&t, &[], true).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("timeout_ms"), "{}", e.message);
    }

    #[test]
    fn relative_paths_join_the_callers_directory_byte_for_byte() {
        let cwd = PathBytes(b"/home/d\xe9/".to_vec());
        let got = absolute(&PathBytes(b"f\xff".to_vec()), Some(&cwd)).unwrap();
        assert_eq!(got.as_bytes(), b"/home/d\xe9/f\xff");
        let got = absolute(&"x".into(), Some(&"/".into())).unwrap();
        assert_eq!(got.as_bytes(), b"/x");
        let kept = absolute(&PathBytes(b"/abs\x80".to_vec()), None).unwrap();
        assert_eq!(kept.as_bytes(), b"/abs\x80");
        let e = absolute(&"rel".into(), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(absolute(&"rel".into(), Some(&"not/absolute".into())).is_err());
    }

    #[test]
    fn links_to_one_member_are_capped_and_freed() {
        let pool = SessionPool::default();
        let addr = SocketAddr::from(([127, 0, 0, 1], 41401));
        let held: Vec<_> = (0..LINKS_PER_MEMBER)
            .map(|_| pool.reserve(addr, || true).unwrap())
            .collect();
        assert!(pool.reserve(addr, || true).is_none(), "all places taken");
        let other = SocketAddr::from(([127, 0, 0, 1], 41402));
        assert!(pool.reserve(other, || true).is_some());
        drop(held);
        assert!(pool.reserve(addr, || true).is_some());
    }
}
