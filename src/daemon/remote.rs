//! A member's side of a query from a peer: paths arrive in batches, are
//! opened below this member's exports (never elsewhere), computed on the
//! worker pool, and their results stream back as they finish.
//!
//! A query of a few small files (an `--all` over many members, most often)
//! is answered on the session's own thread, and its replies go in as few
//! writes as the asker allows ([`serve`]). Anything larger goes to the pool,
//! with two threads for the rest of the query: this one writes results, a
//! second reads the batches. Each item there holds a slot until its result
//! is written, so a peer that sends faster than we compute, or stops
//! reading, stops being read.

use super::Shared;
use super::batch::{self, Batches, Done};
use super::cancel::Cancel;
use super::engine::{Fields, Opened};
use super::pool::Who;
use crate::crypto::session::{self, Session, SessionReader};
use crate::exports::Asker;
use crate::proto::peer::{self, PeerReply, PeerRequest, PeerResult};
use crate::proto::{Query, QueryKind, StatFields};
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel, sync_channel};
use std::thread;
use std::time::Duration;

/// Items of one peer query being computed or waiting to be written.
const WINDOW: usize = 1024;

/// How often a busy member says it is still working, so the asking side
/// can tell a long computation from a frozen member.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Results sent in one frame at most.
const RESULTS_PER_FRAME: usize = 512;

/// How the peer ended its side of the query.
enum Ending {
    /// Sent `End`: the connection may carry another request.
    Clean,
    /// Went away or sent something malformed.
    Broken,
}

/// A frame of paths is answered on the session's own thread, its results
/// written with whatever replies wait (the acceptance, the end), when its
/// regular files hold at most this many bytes in all: less work than a
/// reading thread, a worker and back for a query of a few small files, as
/// an `--all` over many members is. Anything else, and everything after it
/// in the query, goes to the pool.
const HERE_BYTES: u64 = 256 << 10;

/// One path of a frame, opened below the exports.
enum Prepared {
    /// Answered without a read: a symlink's own stat.
    Answered(Fields),
    /// A byte range of a file (a split `wc`).
    Range(Result<std::fs::File, crate::error::Error>, peer::ByteRange),
    Whole(Result<Opened, crate::error::Error>),
}

type PreparedItem = (u64, crate::proto::PathBytes, Prepared);

/// Opens the items of a frame below the exports.
fn prepare(
    query: &Query,
    exports: &crate::exports::Exports,
    asker: &Asker,
    items: Vec<peer::PeerItem>,
) -> Vec<PreparedItem> {
    items
        .into_iter()
        .map(|item| {
            let prepared = if let Some(link) = symlink_stat(query, exports, asker, &item.path) {
                Prepared::Answered(link)
            } else {
                let file = exports.open(asker, &item.path);
                match item.range {
                    Some(range) => Prepared::Range(file, range),
                    None => Prepared::Whole(file.and_then(Opened::new)),
                }
            };
            (item.id, item.path, prepared)
        })
        .collect()
}

/// Whether a frame's items are few enough bytes of regular files (or
/// answered already, or failed to open) to answer on this thread.
fn fits_here(items: &[PreparedItem]) -> bool {
    let mut bytes = 0u64;
    for (_, _, p) in items {
        match p {
            Prepared::Answered(_) | Prepared::Whole(Err(_)) => {}
            Prepared::Whole(Ok(f)) if f.md.is_file() => bytes += f.md.len(),
            Prepared::Whole(Ok(_)) | Prepared::Range(..) => return false,
        }
    }
    bytes <= HERE_BYTES
}

/// What the asker sent next in a query.
enum Sent {
    Items(Vec<peer::PeerItem>),
    End,
}

/// Reads the asker's next frame in a query; `None` once the stream broke
/// off or carried something else (logged).
fn next_sent<F: FnOnce() -> Result<Vec<u8>, session::SessionError>>(
    recv: F,
    from: &str,
) -> Option<Sent> {
    let frame = match recv() {
        Ok(f) => f,
        Err(e) => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "peer-frame",
                format_args!("peer {from}: query stream broken: {e}"),
            );
            return None;
        }
    };
    match serde_json::from_slice::<PeerRequest>(&frame) {
        Ok(PeerRequest::Items { items }) if items.len() <= peer::MAX_ITEMS => {
            Some(Sent::Items(items))
        }
        Ok(PeerRequest::End {}) => Some(Sent::End),
        Ok(other) => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "peer-request",
                format_args!("peer {from}: closing: unexpected {} in a query", other.op()),
            );
            None
        }
        Err(e) => {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "peer-request",
                format_args!(
                    "peer {from}: closing: malformed frame in a query: {}",
                    crate::daemon::logging::untrusted(&e.to_string())
                ),
            );
            None
        }
    }
}

/// Serves one query stream; gives the session back when it ended cleanly.
///
/// Frames of a few small files are answered here, on the session's thread
/// ([`HERE_BYTES`]); the first frame that is not, and all after it, go to
/// the pool ([`serve_pooled`]). Replies wait to be written until the asker
/// has nothing more on its way: an asker that sent its paths and the end
/// with the query (on a kept session) gets the acceptance, the results and
/// the end in one write; one that waits for the acceptance before it sends
/// gets it at once.
pub fn serve(
    shared: &Arc<Shared>,
    query: Query,
    mut s: Session<TcpStream>,
    from: &str,
) -> Option<Session<TcpStream>> {
    let started = std::time::Instant::now();
    let kind = crate::daemon::logging::kind_name(query.kind);
    crate::daemon::logging::trail(
        "peer-query",
        format_args!("peer {from}: {kind} query started"),
    );
    shared.counters.query(super::counters::Origin::Remote);
    // Below an export the daemon reads with its own rights; the walk of a
    // directory count never follows a symlink out of it.
    let query = Arc::new(query);
    let exports = shared.exports();
    // Who asks: the groups of the peer's verified certificate decide below
    // an export that names groups.
    let asker = asker_of(&s, &query);
    let mut unsent = vec![peer::encode(&PeerReply::Accepted {
        peer: shared.name.clone(),
        workers: shared.pool.workers(),
    })];
    let mut answered = 0usize;
    loop {
        if !unsent.is_empty() && !s.read_ahead() {
            s.send_all(&unsent).ok()?;
            unsent.clear();
        }
        let items = match next_sent(|| s.recv(peer::MAX_FRAME), from)? {
            Sent::Items(items) => prepare(&query, &exports, &asker, items),
            Sent::End => {
                unsent.push(peer::encode(&PeerReply::Done));
                s.send_all(&unsent).ok()?;
                answered_trail(from, kind, answered, started, true);
                return Some(s);
            }
        };
        if !fits_here(&items) {
            let pooled = Pooled {
                unsent,
                first: items,
                answered,
                started,
            };
            return serve_pooled(shared, query, s, from, pooled, asker);
        }
        let mut results = Vec::with_capacity(items.len());
        let mut whole = Vec::with_capacity(items.len());
        for (id, path, p) in items {
            match p {
                Prepared::Answered(f) => {
                    shared.counters.items(super::counters::Origin::Remote, 1);
                    results.push(result_of(Done {
                        id,
                        path,
                        result: Ok(f),
                    }));
                }
                Prepared::Whole(file) => whole.push((id, path, file)),
                // Not here: see fits_here.
                Prepared::Range(..) => {}
            }
        }
        let done = batch::answer_here(shared, &query, whole, super::counters::Origin::Remote);
        results.extend(done.into_iter().map(result_of));
        answered += results.len();
        unsent.push(peer::encode(&PeerReply::Results { results }));
    }
}

/// Logs how a query ended, at debug level.
fn answered_trail(
    from: &str,
    kind: &str,
    answered: usize,
    started: std::time::Instant,
    clean: bool,
) {
    crate::daemon::logging::trail(
        "peer-query",
        format_args!(
            "peer {from}: {kind} query answered, {answered} item(s) in {}{}",
            crate::daemon::logging::ms(started.elapsed()),
            if clean { "" } else { ", the stream broke off" }
        ),
    );
}

/// Where a query handed to the pool stands.
struct Pooled {
    /// Replies not written yet.
    unsent: Vec<Vec<u8>>,
    /// The frame's items that did not fit on the session's thread.
    first: Vec<PreparedItem>,
    /// Items answered on the session's thread before.
    answered: usize,
    started: std::time::Instant,
}

/// The rest of a query on the pool: this thread writes results as they
/// come, a second reads the asker's frames.
fn serve_pooled(
    shared: &Arc<Shared>,
    query: Arc<Query>,
    s: Session<TcpStream>,
    from: &str,
    pooled: Pooled,
    asker: Asker,
) -> Option<Session<TcpStream>> {
    let Pooled {
        unsent,
        first,
        mut answered,
        started,
    } = pooled;
    let kind = crate::daemon::logging::kind_name(query.kind);
    let (mut writer, reader) = s.split().ok()?;
    if !unsent.is_empty() {
        writer.send_all(&unsent).ok()?;
    }
    let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
    let (done_tx, done_rx) = channel::<Vec<Done>>();
    let mut batches = Batches::new(Arc::clone(shared), member(from), query, done_tx, slot_tx);
    let cancel = Cancel::new();
    batches.cancel_with(cancel.clone());
    let answered_count = Arc::new(AtomicU64::new(0));
    let watch = Watch {
        shared: Arc::clone(shared),
        cancel,
        answered: Arc::clone(&answered_count),
    };
    let exports = shared.exports();
    let peer_name = from.to_string();
    let read = thread::Builder::new()
        .name("peer-read".into())
        .spawn(move || {
            let from = (&*exports, &asker);
            read_items(reader, batches, first, from, &peer_name, &watch)
        })
        .ok()?;

    let mut broken = false;
    let mut in_pool = 0usize;
    loop {
        let first = match done_rx.recv_timeout(HEARTBEAT) {
            Ok(d) => d,
            Err(RecvTimeoutError::Timeout) => {
                if !broken && writer.send(&peer::encode(&PeerReply::Working)).is_err() {
                    broken = true;
                }
                continue;
            }
            // Every job and the reader are done.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut results = Vec::with_capacity(first.len());
        let add = |batch: Vec<Done>, results: &mut Vec<PeerResult>| {
            for d in batch {
                results.push(result_of(d));
                let _ = slot_rx.try_recv();
            }
        };
        add(first, &mut results);
        while results.len() < RESULTS_PER_FRAME {
            match done_rx.try_recv() {
                Ok(batch) => add(batch, &mut results),
                Err(_) => break,
            }
        }
        answered += results.len();
        // Of the items the reading side added: it compares with those.
        in_pool += results.len();
        answered_count.store(in_pool as u64, Ordering::Release);
        if !broken
            && writer
                .send(&peer::encode(&PeerReply::Results { results }))
                .is_err()
        {
            broken = true;
        }
    }
    let (reader, ending) = read.join().ok()?;
    let clean = !broken && matches!(ending, Ending::Clean);
    answered_trail(from, kind, answered, started, clean);
    match (broken, ending) {
        (false, Ending::Clean) => {
            writer.send(&peer::encode(&PeerReply::Done)).ok()?;
            Some(session::rejoin(writer, reader))
        }
        _ => None,
    }
}

/// Whose share of the workers a query from `from` (the connection's
/// address) is computed on: the member's host, whatever its port, so that
/// more connections do not buy a member more workers.
pub(super) fn member(from: &str) -> Who {
    let ip = from
        .parse::<SocketAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical());
    Who::Member(ip)
}

/// Who asks for a query on session `s`: the peer's verified certificate,
/// and whether the query walks directories.
fn asker_of(s: &Session<TcpStream>, query: &Query) -> Asker {
    let walks = query.kind == QueryKind::Count && query.recursive;
    Asker::member(s.peer(), walks)
}

/// What the reading side of a query needs to cancel it when the asker goes.
struct Watch {
    shared: Arc<Shared>,
    cancel: Cancel,
    /// Results sent so far.
    answered: Arc<AtomicU64>,
}

/// Reads batches of paths until `End`, opening each below the exports. A
/// stream that breaks off (the asker closed its session: its command was
/// interrupted) with items unanswered cancels them.
fn read_items(
    mut reader: SessionReader<TcpStream>,
    mut batches: Batches,
    first: Vec<PreparedItem>,
    (exports, who): (&crate::exports::Exports, &Asker),
    from: &str,
    asker: &Watch,
) -> (SessionReader<TcpStream>, Ending) {
    let mut added = 0u64;
    let mut next = first;
    let ending = loop {
        let n = next.len();
        added += n as u64;
        for (k, (id, path, prepared)) in next.into_iter().enumerate() {
            match prepared {
                Prepared::Answered(f) => batches.answered(id, path, Ok(f)),
                Prepared::Range(file, range) => batches.add_range(id, path, file, range),
                Prepared::Whole(opened) => batches.add_opened(id, path, opened, k + 1 < n),
            }
        }
        batches.flush();
        next = match next_sent(|| reader.recv(peer::MAX_FRAME), from) {
            Some(Sent::Items(items)) => prepare(batches.query(), exports, who, items),
            Some(Sent::End) => break Ending::Clean,
            None => break Ending::Broken,
        };
    };
    batches.flush();
    if matches!(ending, Ending::Broken)
        && asker.answered.load(Ordering::Acquire) < added
        && asker.cancel.cancel()
    {
        asker.shared.counters.cancelled();
        crate::daemon::logging::trail(
            "peer-query",
            format_args!("peer {from}: the asker went away; the query's work is given up"),
        );
    }
    (reader, ending)
}

/// A stat of a path whose last component, below an export, is a symlink:
/// the link itself, unless the query follows links (`-L`).
pub(super) fn symlink_stat(
    query: &Query,
    exports: &crate::exports::Exports,
    asker: &Asker,
    path: &[u8],
) -> Option<Fields> {
    if query.kind != QueryKind::Stat || query.dereference {
        return None;
    }
    let (meta, target) = exports.symlink_below(asker, path)?;
    Some(Fields::Stat(Box::new(StatFields::header(
        &meta,
        Some(&target),
    ))))
}

/// One result as it goes on the wire: the query's fields, or `error`.
pub(super) fn result_of(d: Done) -> PeerResult {
    let fields = match d.result {
        Ok(f) => match serde_json::to_value(&f) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        Err(error) => {
            let mut map = Map::new();
            map.insert(
                "error".into(),
                serde_json::to_value(&error).unwrap_or(Value::Null),
            );
            map
        }
    };
    PeerResult { id: d.id, fields }
}
