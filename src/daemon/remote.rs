//! A member's side of a query from a peer: paths arrive in batches, are
//! opened below this member's exports (never elsewhere), computed on the
//! worker pool, and their results stream back as they finish.
//!
//! Two threads per query: this one writes results, a second reads the
//! batches. Each item holds a slot until its result is written, so a peer
//! that sends faster than we compute, or stops reading, stops being read.

use super::Shared;
use super::batch::{Batches, Done};
use super::cancel::Cancel;
use super::engine::Fields;
use super::pool::Who;
use crate::crypto::session::{self, Session, SessionReader};
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

/// Serves one query stream; gives the session back when it ended cleanly.
pub fn serve(
    shared: &Arc<Shared>,
    query: Query,
    s: Session<TcpStream>,
    from: &str,
) -> Option<Session<TcpStream>> {
    let started = std::time::Instant::now();
    let kind = crate::daemon::logging::kind_name(query.kind);
    crate::daemon::logging::trail(
        "peer-query",
        format_args!("peer {from}: {kind} query started"),
    );
    shared.counters.query(super::counters::Origin::Remote);
    let (mut writer, reader) = s.split().ok()?;
    let accepted = PeerReply::Accepted {
        peer: shared.name.clone(),
    };
    writer.send(&peer::encode(&accepted)).ok()?;
    let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
    let (done_tx, done_rx) = channel::<Vec<Done>>();
    let mut batches = Batches::new(
        Arc::clone(shared),
        member(from),
        // Below an export the daemon reads with its own rights; the walk of a
        // directory count never follows a symlink out of it.
        Arc::new(query),
        done_tx,
        slot_tx,
    );
    let cancel = Cancel::new();
    batches.cancel_with(cancel.clone());
    let answered_count = Arc::new(AtomicU64::new(0));
    let watch = Asker {
        shared: Arc::clone(shared),
        cancel,
        answered: Arc::clone(&answered_count),
    };
    let exports = shared.exports();
    let peer_name = from.to_string();
    let read = thread::Builder::new()
        .name("peer-read".into())
        .spawn(move || read_items(reader, batches, &exports, &peer_name, &watch))
        .ok()?;

    let mut broken = false;
    let mut answered = 0usize;
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
        answered_count.store(answered as u64, Ordering::Release);
        if !broken
            && writer
                .send(&peer::encode(&PeerReply::Results { results }))
                .is_err()
        {
            broken = true;
        }
    }
    let (reader, ending) = read.join().ok()?;
    crate::daemon::logging::trail(
        "peer-query",
        format_args!(
            "peer {from}: {kind} query answered, {answered} item(s) in {}{}",
            crate::daemon::logging::ms(started.elapsed()),
            match (broken, &ending) {
                (false, Ending::Clean) => "",
                _ => ", the stream broke off",
            }
        ),
    );
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
fn member(from: &str) -> Who {
    let ip = from
        .parse::<SocketAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical());
    Who::Member(ip)
}

/// What the reading side of a query needs to cancel it when the asker goes.
struct Asker {
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
    exports: &crate::exports::Exports,
    from: &str,
    asker: &Asker,
) -> (SessionReader<TcpStream>, Ending) {
    let mut added = 0u64;
    let ending = loop {
        let frame = match reader.recv(peer::MAX_FRAME) {
            Ok(f) => f,
            Err(e) => {
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "peer-frame",
                    format_args!("peer {from}: query stream broken: {e}"),
                );
                break Ending::Broken;
            }
        };
        match serde_json::from_slice::<PeerRequest>(&frame) {
            Ok(PeerRequest::Items { items }) if items.len() <= peer::MAX_ITEMS => {
                let n = items.len();
                added += n as u64;
                for (k, item) in items.into_iter().enumerate() {
                    if let Some(link) = symlink_stat(batches.query(), exports, &item.path) {
                        batches.answered(item.id, item.path, Ok(link));
                        continue;
                    }
                    let file = exports.open(&item.path);
                    match item.range {
                        Some(range) => batches.add_range(item.id, item.path, file, range),
                        None => batches.add(item.id, item.path, file, k + 1 < n),
                    }
                }
                batches.flush();
            }
            Ok(PeerRequest::End {}) => break Ending::Clean,
            Ok(other) => {
                crate::daemon::logging::hostile(
                    log::Level::Info,
                    "peer-request",
                    format_args!("peer {from}: closing: unexpected {} in a query", other.op()),
                );
                break Ending::Broken;
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
                break Ending::Broken;
            }
        }
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
    path: &[u8],
) -> Option<Fields> {
    if query.kind != QueryKind::Stat || query.dereference {
        return None;
    }
    let (meta, target) = exports.symlink_below(path)?;
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
