//! The local Unix socket: one thread per connection reads the request and its
//! items, the worker pool computes, and a writer thread streams results back.
//! A small request that arrives whole (a command with a few files sends the
//! request and its items in one message) is answered on the connection's
//! own thread instead, in one write: see [`HERE_ITEMS`] and [`HERE_BYTES`].
//!
//! A connection that says nothing is closed: within [`FIRST_LINE_TIMEOUT`]
//! of connecting it must send its request, and after that it may stay
//! silent for at most the idle timeout (`p2pd --idle-timeout`) while none
//! of its paths is being worked on. A client waiting for results is thus
//! never cut, and one feeding paths from a slow `find` has that long between
//! two paths. Watchers go to their own pool (see [`super::watch`]).

use super::batch::{self, Batches, Done};
use super::caller::Caller;
use super::cancel::{self, Cancel, Woke};
use super::cluster::JoinError;
use super::counters::Origin;
use super::engine::Opened;
use super::limits::Ticket;
use super::pool::Who;
use super::{Shared, fanout, watch};
use crate::error::{Error, ErrorCode};
use crate::fdpass::{self, LineReader};
use crate::ops::open_for_query;
use crate::proto::{
    self, Accepted, End, HelloReply, Item, ItemRequest, JoinResult, LeaveReply, Outcome, PathBytes,
    Query, QueryKind, Request, RequestFailed, Summary,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel, sync_channel};
use std::thread;

/// Items of one connection being computed or waiting to be written; bounds
/// the descriptors and results a single client can make the daemon hold.
const WINDOW: usize = 64;

/// Descriptors a client may pass ahead of the lines that claim them.
const MAX_PENDING_FDS: usize = 1024;

/// How long a new connection may take to send its request.
const FIRST_LINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one accepted connection of `caller` to the end; never panics on client input.
pub fn serve(stream: UnixStream, caller: Caller, shared: Arc<Shared>, ticket: &Ticket) {
    let write_half = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("local connection: {e}");
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(FIRST_LINE_TIMEOUT));
    let mut reader = LineReader::new(stream, proto::MAX_LINE, MAX_PENDING_FDS);
    let first = match reader.next_line() {
        Ok(Some(line)) => line,
        Ok(None) => return,
        Err(e) => {
            crate::daemon::logging::hostile(
                log::Level::Warn,
                "local-request",
                format_args!("local connection from pid {}: {e}", caller.pid),
            );
            return;
        }
    };
    // A client that has spoken keeps its place, and may take its time
    // with the paths that follow (a `find` feeding --files-from), up to the
    // idle timeout between two of them.
    ticket.proven();
    reader.set_read_timeout(Some(shared.idle_timeout));
    let _ = write_half.set_write_timeout(Some(shared.idle_timeout));
    let request: Request = match serde_json::from_slice(&first) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("malformed request: {e}");
            crate::daemon::logging::hostile(
                log::Level::Info,
                "local-request",
                format_args!(
                    "local connection from pid {}: {}",
                    caller.pid,
                    crate::daemon::logging::untrusted(&msg)
                ),
            );
            fail_request(&write_half, Error::new(ErrorCode::InvalidRequest, msg));
            return;
        }
    };
    match request {
        Request::Hello => {
            let reply = HelloReply {
                name: shared.name.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let _ = write_line(&write_half, &reply);
        }
        Request::Query(query) => serve_query(query, reader, write_half, &caller, shared),
        // p2p-get: see super::transfer.
        Request::Get(get) => {
            super::transfer::serve_local_get(get, reader, write_half, &caller, &shared)
        }
        Request::GetAny(get) => {
            super::any::serve_local_get_any(get, reader, write_half, &caller, &shared)
        }
        Request::List(list) => {
            super::transfer::serve_local_list(list, write_half, &caller, &shared)
        }
        Request::Status => {
            // Every local user may ask, as for the member list: the
            // counters are totals, and name no path, user or query.
            let status = crate::daemon::counters::Status {
                name: shared.name.clone(),
                sessions_kept: shared.sessions.kept() as u64,
                watchers: watch::count(&shared),
                ..shared
                    .counters
                    .snapshot(&shared.cluster.members(), shared.pool.load())
            };
            let _ = write_line(&write_half, &status);
        }
        Request::Peers { watch: false } => {
            let members = shared.cluster.members();
            let mut w = BufWriter::new(&write_half);
            for m in &members {
                let cert = shared.cluster.certificate_of(&m.name);
                let listed = crate::proto::Listed::new(m.clone(), cert.as_deref());
                let _ = write_line(&mut w, &listed);
            }
            let summary = Summary {
                done: true,
                ok: members.len() as u64,
                failed: 0,
            };
            let _ = write_line(&mut w, &summary);
        }
        Request::Peers { watch: true } => {
            let added = write_half
                .try_clone()
                .map(|sock| watch::add(&shared, sock, caller.uid));
            if let Ok(Err(why)) = added {
                crate::daemon::logging::hostile(
                    log::Level::Warn,
                    "local-full",
                    format_args!("refusing a membership watcher of uid {}: {why}", caller.uid),
                );
                fail_request(
                    &write_half,
                    Error::new(
                        ErrorCode::Internal,
                        format!("too many membership watchers ({why}); try again"),
                    ),
                );
            }
        }
        Request::Leave => {
            if refuse_control(&write_half, &caller, &shared, "leave") {
                return;
            }
            let reply = LeaveReply {
                left: true,
                peer: shared.name.clone(),
            };
            let _ = write_line(&write_half, &reply);
            // The client waits for this connection to close, which should
            // happen when the process is gone, not when this thread ends: a
            // duplicate of the socket is kept open until exit.
            if let Ok(keep) = write_half.try_clone() {
                std::mem::forget(keep);
            }
            // The signal thread leaves and exits, as on SIGTERM.
            super::request_leave(format!(
                "uid {} (pid {}) asked us to leave (p2p-leave)",
                caller.uid, caller.pid
            ));
        }
        Request::Revoke { list } => {
            if refuse_control(&write_half, &caller, &shared, "revoke") {
                return;
            }
            match shared
                .cluster
                .install_revocations(&list, crate::daemon::cluster::Source::Local)
            {
                Ok(n) => {
                    log::info!(
                        "installed a revocation list of {n} serial(s) for uid {} (p2p-revoke)",
                        caller.uid
                    );
                    let reply = crate::proto::RevokeReply {
                        revoked: n,
                        peer: shared.name.clone(),
                    };
                    let _ = write_line(&write_half, &reply);
                }
                Err(e) => {
                    let _ = write_line(
                        &write_half,
                        &RequestFailed {
                            error: Error::new(ErrorCode::InvalidRequest, e),
                        },
                    );
                }
            }
        }
        Request::Join { addrs } => {
            if refuse_control(&write_half, &caller, &shared, "join") {
                return;
            }
            let mut summary = Summary {
                done: true,
                ..Default::default()
            };
            for addr in addrs {
                let shown = crate::daemon::logging::untrusted(&addr).to_string();
                let result = match shared.cluster.join(&addr) {
                    Ok(n) => {
                        log::info!(
                            "joined the cluster through {shown} for uid {} (p2p-join): {n} members",
                            caller.uid
                        );
                        summary.ok += 1;
                        JoinResult {
                            addr,
                            members: Some(n),
                            error: None,
                        }
                    }
                    Err(e) => {
                        log::info!(
                            "joining through {shown} for uid {} (p2p-join): {e}",
                            caller.uid
                        );
                        summary.failed += 1;
                        let code = match e {
                            JoinError::Unauthorized | JoinError::Certificate(_) => {
                                ErrorCode::Unauthorized
                            }
                            JoinError::Refused(_) => ErrorCode::InvalidRequest,
                            JoinError::Unreachable(_) => ErrorCode::Unreachable,
                        };
                        JoinResult {
                            addr,
                            members: None,
                            error: Some(Error::new(code, e.to_string())),
                        }
                    }
                };
                if write_line(&write_half, &result).is_err() {
                    return;
                }
            }
            let _ = write_line(&write_half, &summary);
        }
    }
}

/// Control operations (join, leave) belong to the daemon's own user and
/// root: anyone else is told so (and logged, rate-limited). True when refused.
fn refuse_control(out: &UnixStream, caller: &Caller, shared: &Shared, what: &str) -> bool {
    if caller.is_trusted(shared.euid) {
        return false;
    }
    crate::daemon::logging::hostile(
        log::Level::Warn,
        "local-denied",
        format_args!(
            "uid {} (pid {}) asked us to {what}; only uid {} or root may",
            caller.uid, caller.pid, shared.euid
        ),
    );
    fail_request(
        out,
        Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "only the daemon's own user (uid {}) or root may make it {what}",
                shared.euid
            ),
        ),
    );
    true
}

fn fail_request(mut stream: &UnixStream, error: Error) {
    let _ = write_line(&mut stream, &RequestFailed { error });
}

fn write_line<W: Write, T: serde::Serialize>(mut w: W, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Numbers the queries of this daemon's log lines.
static QUERIES: AtomicU64 = AtomicU64::new(1);

/// A local query's first log line; returns its number and start time.
fn log_query_start(query: &Query, caller: &Caller) -> (u64, std::time::Instant) {
    let n = QUERIES.fetch_add(1, Ordering::Relaxed);
    crate::daemon::logging::trail(
        "query",
        format_args!(
            "query {n} from uid {} (pid {}): {} on {}",
            caller.uid,
            caller.pid,
            crate::daemon::logging::kind_name(query.kind),
            crate::daemon::logging::describe_target(query.target.as_ref())
        ),
    );
    (n, std::time::Instant::now())
}

/// A local query's last log line: its items and how long it took.
fn log_query_end((n, started): (u64, std::time::Instant), summary: Option<&Summary>) {
    let items = match summary {
        Some(s) => format!(
            "{} item(s), {} ok, {} failed",
            s.ok + s.failed,
            s.ok,
            s.failed
        ),
        None => "cut short (the client went away)".to_string(),
    };
    crate::daemon::logging::trail(
        "query",
        format_args!(
            "query {n} done: {items} in {}",
            crate::daemon::logging::ms(started.elapsed())
        ),
    );
}

fn serve_query(
    query: Query,
    reader: LineReader,
    out: UnixStream,
    caller: &Caller,
    shared: Arc<Shared>,
) {
    let logged = log_query_start(&query, caller);
    shared.counters.query(super::counters::Origin::Local);
    let summary = if query.target.is_some() {
        serve_cluster_query(query, reader, out, caller, shared, logged.0)
    } else {
        serve_local_query(query, reader, out, caller, shared)
    };
    log_query_end(logged, summary.as_ref());
}

/// A query on this host; returns its totals unless the client went away.
fn serve_local_query(
    query: Query,
    mut reader: LineReader,
    out: UnixStream,
    caller: &Caller,
    shared: Arc<Shared>,
) -> Option<Summary> {
    // The acceptance goes out with the first results, or before the first
    // read that may wait for the client, which may wait for it.
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    if let Err(e) = write_line(
        &mut out,
        &Accepted {
            accepted: true,
            peer: shared.name.clone(),
        },
    ) {
        log::debug!("local connection from pid {} gone: {e}", caller.pid);
        return None;
    }
    let query = Arc::new(query);
    let mut serving = Serving {
        who: Who::User(caller.uid),
        query: Arc::clone(&query),
        out: Some(Results::new(out, shared.name.clone())),
        held: Vec::new(),
        held_bytes: 0,
        pooled: None,
        answered: Arc::new(AtomicU64::new(0)),
        added: 0,
        cancel: Cancel::new(),
        shared: Arc::clone(&shared),
    };
    if let Some(paths) = &query.paths {
        for (id, path) in paths.iter().enumerate() {
            let file = open_as_daemon(path, query.cwd.as_ref(), caller, shared.euid);
            serving.add(id as u64, path.clone(), file, false, true);
        }
    } else {
        // Items read and items answered: the difference is what is in progress.
        let answered = Arc::clone(&serving.answered);
        let read = std::cell::Cell::new(0u64);
        let idle = shared.idle_timeout;
        loop {
            if !reader.has_line() {
                serving.before_wait();
            }
            let Some(item) = next_item(&mut reader, caller, idle, &|| {
                answered.load(Ordering::Acquire) < read.get()
            }) else {
                break;
            };
            read.set(read.get() + 1);
            let file = if item.fd {
                match take_descriptor(&mut reader, caller) {
                    Some(file) => file,
                    None => break,
                }
            } else {
                open_as_daemon(&item.path, query.cwd.as_ref(), caller, shared.euid)
            };
            let file = if query.kind == QueryKind::Count && !caller.is_trusted(shared.euid) {
                file.and_then(|_| Err(count_in_the_command()))
            } else {
                file
            };
            let more_ready = reader.has_line();
            let own = item.fd && item.own;
            serving.add(item.id, item.path, file, own, more_ready);
        }
    }
    serving.finish()
}

/// Small items are held, at most this many at a time, and answered on the
/// connection's own thread whenever the held ones are full or the next read
/// may wait for the client...
const HERE_ITEMS: usize = 32;

/// ... when they are regular files of at most this many bytes in all: less
/// work than handing them to a worker and their results to a writer thread
/// (two thread wake-ups, and a thread started, per query). Anything larger
/// goes to the caller's share of the pool, with the rest of the query.
const HERE_BYTES: u64 = 256 << 10;

/// Where the items of one local query go: held, to be answered on this
/// thread once the request has come whole, or to the worker pool, with a
/// writer thread streaming the results back.
struct Serving {
    shared: Arc<Shared>,
    query: Arc<Query>,
    who: Who,
    /// The reply, until the writer thread takes it.
    out: Option<Results>,
    held: Vec<(u64, PathBytes, Result<Opened, Error>)>,
    held_bytes: u64,
    pooled: Option<Pooled>,
    /// Items whose results the writer thread has written.
    answered: Arc<AtomicU64>,
    /// Items taken.
    added: u64,
    /// Set when the client hangs up with items of its still to answer.
    cancel: Cancel,
}

/// A query's items on the worker pool, and what watches them.
struct Pooled {
    batches: Batches,
    writer: thread::JoinHandle<Option<Summary>>,
    /// The client's socket, to notice its hang-up.
    client: UnixStream,
    /// Closed at its other end when the writer thread ends.
    writer_done: UnixStream,
}

impl Serving {
    /// Takes one item; `own` says the command opened its descriptor for it
    /// alone (see [`ItemRequest::own`]), `more_ready` that the next line is
    /// already here.
    fn add(
        &mut self,
        id: u64,
        path: PathBytes,
        file: Result<File, Error>,
        own: bool,
        more_ready: bool,
    ) {
        self.added += 1;
        let file = file.and_then(|f| Opened::new(f).map(|o| o.own(own)));
        if self.pooled.is_none() {
            let mut fits = self.fits_here(&file);
            if !fits && !self.held.is_empty() {
                self.answer_held();
                fits = self.fits_here(&file);
            }
            if fits {
                self.held.push((id, path, file));
                return;
            }
        }
        if let Some(batches) = self.pool() {
            batches.add_opened(id, path, file, more_ready);
        }
    }

    /// Whether one more item keeps the held ones small enough to answer here.
    fn fits_here(&mut self, file: &Result<Opened, Error>) -> bool {
        if self.held.len() >= HERE_ITEMS {
            return false;
        }
        let size = match file {
            Err(_) => 0,
            Ok(f) if f.md.is_file() => f.md.len(),
            Ok(_) => return false,
        };
        if self.held_bytes + size > HERE_BYTES {
            return false;
        }
        self.held_bytes += size;
        true
    }

    /// The next read may wait for the client: the held items are started on
    /// the pool, or, with none, the acceptance is sent.
    fn before_wait(&mut self) {
        if self.pooled.is_some() {
            return;
        }
        self.answer_held();
        if let Some(out) = &mut self.out {
            out.flush();
        }
    }

    /// Answers the held items on this thread and writes their results: a
    /// stream of small files needs no worker and no writer thread.
    fn answer_held(&mut self) {
        let Some(out) = &mut self.out else {
            return;
        };
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for d in batch::answer_here(&self.shared, &self.query, held, Origin::Local) {
            out.write(d);
            self.answered.fetch_add(1, Ordering::Release);
        }
    }

    /// The pool's batches, started with the writer thread on first use.
    fn pool(&mut self) -> Option<&mut Batches> {
        if self.pooled.is_none() {
            let out = self.out.take()?;
            let watch =
                out.w.get_ref().try_clone().and_then(|client| {
                    UnixStream::pair().map(|(ours, theirs)| (client, ours, theirs))
                });
            let (client, writer_done, writer_end) = match watch {
                Ok(w) => w,
                Err(e) => {
                    log::error!("cannot watch a local connection: {e}");
                    return None;
                }
            };
            // A slot is taken before an item is queued and given back once its
            // result is written, so a client that stops reading stops being read.
            let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
            let (done_tx, done_rx) = channel::<Vec<Done>>();
            let counter = Arc::clone(&self.answered);
            let writer = thread::Builder::new()
                .name("local-writer".into())
                .spawn(move || {
                    // Dropped at the end: tells the connection's thread.
                    let _done = writer_end;
                    write_results(out, done_rx, slot_rx, &counter)
                });
            let writer = match writer {
                Ok(w) => w,
                Err(e) => {
                    log::error!("cannot start a writer thread: {e}");
                    return None;
                }
            };
            let mut batches = Batches::new(
                Arc::clone(&self.shared),
                self.who,
                Arc::clone(&self.query),
                done_tx,
                slot_tx,
            );
            batches.read_streams();
            batches.cancel_with(self.cancel.clone());
            for (id, path, file) in self.held.drain(..) {
                batches.add_opened(id, path, file, true);
            }
            self.pooled = Some(Pooled {
                batches,
                writer,
                client,
                writer_done,
            });
        }
        self.pooled.as_mut().map(|p| &mut p.batches)
    }

    /// The request has ended: answers what is held, or waits for the pool's
    /// results to be written, watching for the client's hang-up meanwhile:
    /// then the items it has not been answered for yet are given up.
    /// Returns the totals unless the client went away.
    fn finish(mut self) -> Option<Summary> {
        if let Some(pooled) = self.pooled.take() {
            let Pooled {
                mut batches,
                writer,
                client,
                writer_done,
            } = pooled;
            batches.flush();
            drop(batches);
            let woke = cancel::wait(client.as_fd(), writer_done.as_fd());
            // The results of every item are written once the writer has
            // counted them: a client that hangs up then cancels nothing.
            if woke == Woke::HungUp
                && self.answered.load(Ordering::Acquire) < self.added
                && self.cancel.cancel()
            {
                self.shared.counters.cancelled();
                log::debug!(
                    "the client hung up with {} item(s) unanswered: given up",
                    self.added - self.answered.load(Ordering::Acquire)
                );
            }
            return writer.join().ok().flatten();
        }
        self.answer_held();
        self.out.take()?.finish()
    }
}

/// Why this daemon counts no directory for a user other than its own and
/// root: it would read with its own security label, not the caller's, and a
/// walk in the caller's own process is decided for the caller by the kernel.
fn count_in_the_command() -> Error {
    Error::new(
        ErrorCode::PermissionDenied,
        "a directory count of this host runs in the command, with your own rights \
         (p2p-count does so); the daemon counts only for its own user and root",
    )
}

/// The descriptor an item line claims, as a file to answer for only if it
/// is open for reading (checked before anything, the cache included, sees
/// it). `None` when the client sent no descriptor: a broken client, whose
/// connection is closed (logged).
fn take_descriptor(reader: &mut LineReader, caller: &Caller) -> Option<Result<File, Error>> {
    match reader.take_fd() {
        Some(fd) => Some(fdpass::readable(fd)),
        None => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "local-request",
                format_args!(
                    "local connection from pid {} closed: item without its descriptor",
                    caller.pid
                ),
            );
            None
        }
    }
}

/// The next item line of a streamed query; `None` at `{"end":true}`, at the
/// end of the stream, at a line that is not an item (logged), or once the
/// client has sent nothing for `idle` while `busy` said none of its paths
/// was being worked on (the reader's timeout is `idle`).
fn next_item(
    reader: &mut LineReader,
    caller: &Caller,
    idle: std::time::Duration,
    busy: &dyn Fn() -> bool,
) -> Option<ItemRequest> {
    let line = loop {
        match reader.next_line() {
            Ok(Some(line)) => break line,
            Ok(None) => return None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if busy() {
                    continue;
                }
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "local-request",
                    format_args!(
                        "local connection from pid {} (uid {}) closed: silent for {} s with nothing in progress",
                        caller.pid,
                        caller.uid,
                        idle.as_secs_f64()
                    ),
                );
                return None;
            }
            Err(e) => {
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "local-request",
                    format_args!("local connection from pid {} closed: {e}", caller.pid),
                );
                return None;
            }
        }
    };
    // An item first: it is every line but the last, and the end line fails
    // as an item at its first key.
    match ItemRequest::from_line(&line) {
        Ok(item) => Some(item),
        Err(_) if serde_json::from_slice::<End>(&line).is_ok_and(|e| e.end) => None,
        Err(e) => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "local-request",
                format_args!(
                    "local connection from pid {} closed: malformed item: {}",
                    caller.pid,
                    crate::daemon::logging::untrusted(&e.to_string())
                ),
            );
            None
        }
    }
}

/// A query for other members: paths are passed on as text and each member
/// opens them below its own exports; results are written as they arrive.
/// This node's own answers for a caller foreign to the daemon also need the
/// caller's descriptor of each file (see [`fanout`]).
fn serve_cluster_query(
    mut query: Query,
    mut reader: LineReader,
    out: UnixStream,
    caller: &Caller,
    shared: Arc<Shared>,
    number: u64,
) -> Option<Summary> {
    let target = query.target.take()?;
    let raw_allowed = caller.is_trusted(shared.euid);
    let links = match fanout::links_for(&target, &shared.cluster.members(), raw_allowed) {
        Ok(l) => l,
        Err(e) => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "local-denied",
                format_args!(
                    "refused a cluster query of uid {} (pid {}): {}",
                    caller.uid, caller.pid, e.message
                ),
            );
            fail_request(&out, e);
            return None;
        }
    };
    if links.is_empty() {
        let tags: Vec<String> = target
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let msg = if tags.is_empty() {
            "no member to ask".to_string()
        } else {
            format!("no alive member has the tags {}", tags.join(", "))
        };
        fail_request(&out, Error::new(ErrorCode::Unreachable, msg));
        return None;
    }
    let accepted = Accepted {
        accepted: true,
        peer: shared.name.clone(),
    };
    if write_line(&out, &accepted).is_err() {
        return None;
    }
    let client = match out.try_clone() {
        Ok(c) => c,
        Err(e) => {
            log::error!("cannot watch a local connection: {e}");
            return None;
        }
    };
    let (tx, rx) = channel::<Vec<u8>>();
    let writer = thread::Builder::new()
        .name("local-writer".into())
        .spawn(move || {
            let mut w = BufWriter::with_capacity(64 * 1024, &out);
            let mut broken = false;
            loop {
                let line = match rx.try_recv() {
                    Ok(l) => l,
                    Err(TryRecvError::Empty) => {
                        broken = broken || w.flush().is_err();
                        match rx.recv() {
                            Ok(l) => l,
                            Err(_) => break,
                        }
                    }
                    Err(TryRecvError::Disconnected) => break,
                };
                // After a failed write the rest is dropped; the links see
                // the closed channel and stop asking.
                if broken || w.write_all(&line).is_err() {
                    return None;
                }
            }
            drop(w);
            (!broken).then_some(out)
        });
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            log::error!("cannot start a writer thread: {e}");
            return None;
        }
    };
    let paths = query.paths.take();
    let feeder = fanout::start(&shared, query, &target, links, tx, caller, number);
    if let Some(paths) = paths {
        for (id, path) in paths.into_iter().enumerate() {
            feeder.push(id as u64, path, None, None);
        }
    } else {
        let idle = shared.idle_timeout;
        while let Some(item) = next_item(&mut reader, caller, idle, &|| feeder.in_progress()) {
            // Other hosts go by the path; a descriptor only proves, for this
            // node's own answer, that the caller can open the file.
            let file = if item.fd {
                match take_descriptor(&mut reader, caller) {
                    Some(file) => Some(file),
                    None => break,
                }
            } else {
                None
            };
            feeder.push(item.id, item.path, file, item.counted);
        }
    }
    let summary = finish_watched(feeder, &client, &shared);
    let Ok(Some(out)) = writer.join() else {
        return None;
    };
    let _ = write_line(&out, &summary);
    Some(summary)
}

/// Waits for a cluster query's last answer while watching for the client's
/// hang-up: then the query is cancelled (the links close their sessions,
/// and the members give up its work).
fn finish_watched(feeder: fanout::Feeder, client: &UnixStream, shared: &Shared) -> Summary {
    let Ok((done, finished)) = UnixStream::pair() else {
        return feeder.finish();
    };
    let canceller = feeder.canceller();
    thread::scope(|scope| {
        scope.spawn(move || {
            if cancel::wait(client.as_fd(), done.as_fd()) == Woke::HungUp && canceller.cancel() {
                shared.counters.cancelled();
                log::debug!("the client hung up: its cluster query is cancelled");
            }
        });
        let _finished = finished;
        feeder.finish()
    })
}

/// Opens a path named without a descriptor, only when that cannot widen what
/// the caller may read: the caller is us, or root.
fn open_as_daemon(
    path: &PathBytes,
    cwd: Option<&PathBytes>,
    caller: &Caller,
    euid: u32,
) -> Result<File, Error> {
    if !caller.is_trusted(euid) {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the daemon runs as another user: pass an open descriptor (the p2p-* commands do)",
        ));
    }
    let p = Path::new(path.as_os_str());
    let full: PathBuf = if p.is_absolute() {
        p.to_path_buf()
    } else {
        match cwd {
            Some(c) => Path::new(c.as_os_str()).join(p),
            None => {
                return Err(Error::new(
                    ErrorCode::InvalidRequest,
                    "relative path without \"cwd\" in the request",
                ));
            }
        }
    };
    open_for_query(&full).map_err(|e| Error::from_io(&e))
}

/// Result lines on their way to the client, and the summary they add up to.
struct Results {
    w: BufWriter<UnixStream>,
    peer: String,
    summary: Summary,
    /// A write failed: the client is gone, the rest is only counted.
    broken: bool,
    /// Where a result's fields are written before they join its line.
    scratch: Vec<u8>,
}

impl Results {
    fn new(w: BufWriter<UnixStream>, peer: String) -> Results {
        Results {
            w,
            peer,
            summary: Summary {
                done: true,
                ..Default::default()
            },
            broken: false,
            scratch: Vec::new(),
        }
    }

    fn write(&mut self, d: Done) {
        match &d.result {
            Ok(_) => self.summary.ok += 1,
            Err(_) => self.summary.failed += 1,
        }
        if self.broken {
            return;
        }
        let item = Item {
            id: Some(d.id),
            peer: std::mem::take(&mut self.peer),
            path: d.path,
            outcome: match d.result {
                Ok(f) => Outcome::Ok(f),
                Err(error) => Outcome::Failed { error },
            },
        };
        let written = crate::output::write_item(&mut self.w, &mut self.scratch, &item);
        let written = match written {
            Ok(true) => Ok(()),
            Ok(false) => write_line(&mut self.w, &item),
            Err(e) => Err(e),
        };
        self.peer = item.peer;
        if written.is_err() {
            self.broken = true;
        }
    }

    /// Makes what was written so far visible to the client.
    fn flush(&mut self) {
        if !self.broken && self.w.flush().is_err() {
            self.broken = true;
        }
    }

    /// Writes the summary; returns it unless the client went away.
    fn finish(mut self) -> Option<Summary> {
        if self.broken {
            return None;
        }
        let _ = write_line(&mut self.w, &self.summary);
        let _ = self.w.flush();
        Some(self.summary)
    }
}

/// Writes the pool's results after those already in `results`.
fn write_results(
    mut results: Results,
    done: Receiver<Vec<Done>>,
    slots: Receiver<()>,
    answered: &AtomicU64,
) -> Option<Summary> {
    loop {
        let batch = match done.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                results.flush();
                match done.recv() {
                    Ok(b) => b,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        for d in batch {
            results.write(d);
            let _ = slots.try_recv();
            answered.fetch_add(1, Ordering::Release);
        }
    }
    results.finish()
}
