//! The local Unix socket: one thread per connection reads the request and its
//! items, the worker pool computes, and a writer thread streams results back.

use super::batch::{Batches, Done};
use super::cluster::JoinError;
use super::limits::Ticket;
use super::pool::Who;
use super::{Shared, fanout};
use crate::error::{Error, ErrorCode};
use crate::fdpass::LineReader;
use crate::ops::count::{CallerAccess, Descend, Everywhere};
use crate::ops::open_for_query;
use crate::proto::{
    self, Accepted, End, HelloReply, Item, ItemRequest, JoinResult, LeaveReply, Outcome, Query,
    Request, RequestFailed, Summary,
};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel, sync_channel};
use std::thread;

/// Items of one connection being computed or waiting to be written; bounds
/// the descriptors and results a single client can make the daemon hold.
const WINDOW: usize = 64;

/// Descriptors a client may pass ahead of the lines that claim them.
const MAX_PENDING_FDS: usize = 1024;

/// Who is on the other end of the socket.
#[derive(Debug, Clone, Copy)]
struct Caller {
    pid: i32,
    uid: u32,
    gid: u32,
}

/// How long a new connection may take to send its request.
const FIRST_LINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one accepted connection to the end; never panics on client input.
pub fn serve(stream: UnixStream, shared: Arc<Shared>, ticket: &Ticket) {
    let caller = match getsockopt(&stream, PeerCredentials) {
        Ok(c) => Caller {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        },
        Err(e) => {
            log::warn!("local connection without peer credentials: {e}");
            return;
        }
    };
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
            log::warn!("local connection from pid {}: {e}", caller.pid);
            return;
        }
    };
    // A client that has spoken keeps its place, and may take its time
    // with the paths that follow (a `find` feeding --files-from).
    ticket.proven();
    reader.set_read_timeout(None);
    let request: Request = match serde_json::from_slice(&first) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("malformed request: {e}");
            log::info!("local connection from pid {}: {msg}", caller.pid);
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
        Request::Query(query) => serve_query(query, reader, write_half, caller, shared),
        Request::Peers { watch: false } => {
            let members = shared.cluster.members();
            let mut w = BufWriter::new(&write_half);
            for m in &members {
                let _ = write_line(&mut w, m);
            }
            let summary = Summary {
                done: true,
                ok: members.len() as u64,
                failed: 0,
            };
            let _ = write_line(&mut w, &summary);
        }
        Request::Peers { watch: true } => watch_members(&write_half, &shared),
        Request::Leave => {
            if caller.uid != shared.euid && caller.uid != 0 {
                log::warn!(
                    "uid {} (pid {}) asked us to leave; only uid {} or root may",
                    caller.uid,
                    caller.pid,
                    shared.euid
                );
                fail_request(
                    &write_half,
                    Error::new(
                        ErrorCode::PermissionDenied,
                        "only the daemon's own user or root may make it leave",
                    ),
                );
                return;
            }
            log::info!("pid {} (uid {}) asked us to leave", caller.pid, caller.uid);
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
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
        }
        Request::Join { addrs } => {
            let mut summary = Summary {
                done: true,
                ..Default::default()
            };
            for addr in addrs {
                let result = match shared.cluster.join(&addr) {
                    Ok(n) => {
                        summary.ok += 1;
                        JoinResult {
                            addr,
                            members: Some(n),
                            error: None,
                        }
                    }
                    Err(e) => {
                        summary.failed += 1;
                        let code = match e {
                            JoinError::Unauthorized => ErrorCode::Unauthorized,
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

/// Streams membership changes until the client goes away.
fn watch_members(out: &UnixStream, shared: &Shared) {
    use std::os::fd::AsRawFd;
    use std::sync::mpsc::RecvTimeoutError;
    let events = shared.cluster.watch();
    loop {
        match events.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(e) => {
                if write_line(out, &e).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Nothing to say: check whether anyone is still listening.
                let mut b = [0u8; 1];
                let flags =
                    nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
                if let Ok(0) = nix::sys::socket::recv(out.as_raw_fd(), &mut b, flags) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn fail_request(mut stream: &UnixStream, error: Error) {
    let _ = write_line(&mut stream, &RequestFailed { error });
}

fn write_line<W: Write, T: serde::Serialize>(mut w: W, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

fn serve_query(
    query: Query,
    mut reader: LineReader,
    out: UnixStream,
    caller: Caller,
    shared: Arc<Shared>,
) {
    if query.target.is_some() {
        return serve_cluster_query(query, reader, out, caller, shared);
    }
    if let Err(e) = write_line(
        &out,
        &Accepted {
            accepted: true,
            peer: shared.name.clone(),
        },
    ) {
        log::debug!("local connection from pid {} gone: {e}", caller.pid);
        return;
    }
    let query = Arc::new(query);
    // A slot is taken before an item is queued and given back once its result
    // is written, so a client that stops reading stops being read.
    let (slot_tx, slot_rx) = sync_channel::<()>(WINDOW);
    let (done_tx, done_rx) = channel::<Vec<Done>>();
    let name = shared.name.clone();
    let writer = thread::Builder::new()
        .name("local-writer".into())
        .spawn(move || write_results(out, &name, done_rx, slot_rx));
    let writer = match writer {
        Ok(w) => w,
        Err(e) => {
            log::error!("cannot start a writer thread: {e}");
            return;
        }
    };
    let descend: Arc<dyn Descend + Send + Sync> = if caller.uid == shared.euid || caller.uid == 0 {
        Arc::new(Everywhere)
    } else {
        Arc::new(CallerAccess::of_process(caller.pid, caller.uid, caller.gid))
    };
    let mut batches = Batches::new(
        Arc::clone(&shared),
        Who::User(caller.uid),
        Arc::clone(&query),
        descend,
        done_tx,
        slot_tx,
    );

    if let Some(paths) = &query.paths {
        for (id, path) in paths.iter().enumerate() {
            let file = open_as_daemon(path, query.cwd.as_deref(), caller, shared.euid);
            batches.add(id as u64, path.clone(), file, true);
        }
    } else {
        while let Some(item) = next_item(&mut reader, caller) {
            let file = if item.fd {
                match reader.take_fd() {
                    Some(fd) => Ok(File::from(fd)),
                    None => {
                        log::info!(
                            "local connection from pid {} closed: item without its descriptor",
                            caller.pid
                        );
                        break;
                    }
                }
            } else {
                open_as_daemon(&item.path, query.cwd.as_deref(), caller, shared.euid)
            };
            let more_ready = reader.has_line();
            batches.add(item.id, item.path, file, more_ready);
        }
    }
    batches.flush();
    drop(batches);
    let _ = writer.join();
}

/// The next item line of a streamed query; `None` at `{"end":true}`, at the
/// end of the stream, or at a line that is not an item (logged).
fn next_item(reader: &mut LineReader, caller: Caller) -> Option<ItemRequest> {
    let line = match reader.next_line() {
        Ok(Some(line)) => line,
        Ok(None) => return None,
        Err(e) => {
            log::info!("local connection from pid {} closed: {e}", caller.pid);
            return None;
        }
    };
    if serde_json::from_slice::<End>(&line).is_ok_and(|e| e.end) {
        return None;
    }
    match serde_json::from_slice(&line) {
        Ok(item) => Some(item),
        Err(e) => {
            log::info!(
                "local connection from pid {} closed: malformed item: {e}",
                caller.pid
            );
            None
        }
    }
}

/// A query for other members: paths are passed on as text and each member
/// opens them below its own exports; results are written as they arrive.
fn serve_cluster_query(
    mut query: Query,
    mut reader: LineReader,
    out: UnixStream,
    caller: Caller,
    shared: Arc<Shared>,
) {
    let Some(target) = query.target.take() else {
        return;
    };
    let links = fanout::links_for(&target, &shared.cluster.members());
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
        return;
    }
    let accepted = Accepted {
        accepted: true,
        peer: shared.name.clone(),
    };
    if write_line(&out, &accepted).is_err() {
        return;
    }
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
            return;
        }
    };
    let paths = query.paths.take();
    let feeder = fanout::start(&shared, query, &target, links, tx);
    if let Some(paths) = paths {
        for (id, path) in paths.into_iter().enumerate() {
            feeder.push(id as u64, path);
        }
    } else {
        while let Some(item) = next_item(&mut reader, caller) {
            // A descriptor means nothing to another host; the path is what counts.
            if item.fd {
                drop(reader.take_fd());
            }
            feeder.push(item.id, item.path);
        }
    }
    let summary = feeder.finish();
    if let Ok(Some(out)) = writer.join() {
        let _ = write_line(&out, &summary);
    }
}

/// Opens a path named without a descriptor, only when that cannot widen what
/// the caller may read: the caller is us, or root.
fn open_as_daemon(path: &str, cwd: Option<&str>, caller: Caller, euid: u32) -> Result<File, Error> {
    if caller.uid != euid && caller.uid != 0 {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "the daemon runs as another user: pass an open descriptor (the p2p-* commands do)",
        ));
    }
    let p = Path::new(path);
    let full: PathBuf = if p.is_absolute() {
        p.to_path_buf()
    } else {
        match cwd {
            Some(c) => Path::new(c).join(p),
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

fn write_results(out: UnixStream, peer: &str, done: Receiver<Vec<Done>>, slots: Receiver<()>) {
    let mut w = BufWriter::with_capacity(64 * 1024, &out);
    let mut summary = Summary {
        done: true,
        ..Default::default()
    };
    let mut broken = false;
    loop {
        let batch = match done.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                if !broken && w.flush().is_err() {
                    broken = true;
                }
                match done.recv() {
                    Ok(b) => b,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        for d in batch {
            match &d.result {
                Ok(_) => summary.ok += 1,
                Err(_) => summary.failed += 1,
            }
            if !broken {
                let item = Item {
                    id: Some(d.id),
                    peer: peer.to_string(),
                    path: d.path,
                    outcome: match d.result {
                        Ok(f) => Outcome::Ok(f),
                        Err(error) => Outcome::Failed { error },
                    },
                };
                if write_line(&mut w, &item).is_err() {
                    broken = true;
                }
            }
            let _ = slots.try_recv();
        }
    }
    if !broken {
        let _ = write_line(&mut w, &summary);
        let _ = w.flush();
    }
}
