//! `p2p-get --any` in the asking daemon: one file from several members at
//! once (see [`crate::proto::transfer`] for the frames, and
//! [`crate::proto::chunks`] for which chunk comes from whom).
//!
//! The candidates (the members named, or every alive member but this one,
//! with the tags asked for) are asked for the file's manifest, a few at a
//! time. The members whose manifests agree with the most others are the
//! sources; those that hold other content are reported and not used, and
//! a tie is refused (which content is the file?). Each source then serves
//! chunks on [`LINKS_PER_SOURCE`] sessions at once. A chunk is checked
//! against its digest in the manifest before it is written at its offset
//! into the file the command passed; a source whose chunk does not match,
//! or whose session fails, is dropped and its chunks go to the others. At
//! the end the file is read back and must hash to the manifest's digest.
//! As for one member, the daemon writes only into the descriptor the
//! command passed.

use super::Shared;
use super::caller::Caller;
use super::fanout::{self, Conn};
use super::transfer::{client_gone, fillable, line, timeout_of, unexpected};
use crate::crypto::session::Session;
use crate::error::{Error, ErrorCode};
use crate::fdpass::LineReader;
use crate::ops::sha::Hasher;
use crate::proto::chunks::{Next, Plan};
use crate::proto::peer::{self, PeerRequest};
use crate::proto::transfer::{
    self, AskManifest, Frame, LocalGetAny, Manifest, Range, Reply, Served, Unused,
};
use crate::proto::{PathBytes, Target};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Sessions to one source at once (each carries one chunk at a time).
pub const LINKS_PER_SOURCE: usize = 2;

/// Sources used at most; other members that agree are left alone.
pub const MAX_SOURCES: usize = 8;

/// Members asked for their manifest at once.
const ASKED_AT_ONCE: usize = 16;

/// How often the command hears how far the file has come.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// A member that may hold the file.
struct Candidate {
    label: String,
    addr: SocketAddr,
    /// " at ADDR", or empty, for messages.
    at: String,
}

/// Serves a local `get_any`: the descriptor passed with the request line
/// is the file to fill.
pub fn serve_local_get_any(
    req: LocalGetAny,
    mut reader: LineReader,
    out: UnixStream,
    caller: &Caller,
    shared: &Arc<Shared>,
) {
    let reply = match reader.take_fd() {
        Some(fd) => local_get_any(&req, File::from(fd), &out, caller, shared),
        None => Err(Error::new(
            ErrorCode::InvalidRequest,
            "a get needs the descriptor of the file to fill, passed with its line",
        )),
    };
    let last = match reply {
        Ok(end) => end,
        Err(error) => Reply::Failed { error },
    };
    let _ = line(&out, &last);
}

fn local_get_any(
    req: &LocalGetAny,
    dest: File,
    out: &UnixStream,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, Error> {
    let held = fillable(&dest)?;
    let timeout = timeout_of(req.timeout_ms);
    let (candidates, mut silent) = candidates(shared, caller, req)?;
    let answers = manifests(shared, &candidates, &req.path, timeout);
    let mut chosen = choose(&candidates, answers, &mut silent)?;
    // Every member asked is accounted for: those down or without the file
    // as well as those holding other content.
    chosen.unused.append(&mut silent);
    let m = &chosen.manifest;
    line(
        out,
        &Reply::Sources {
            sources: chosen
                .sources
                .iter()
                .map(|&i| candidates[i].label.clone())
                .collect(),
            size: m.size,
            unused: chosen.unused.clone(),
        },
    )
    .map_err(|e| Error::from_io(&e))?;
    let mut plan = Plan::new(m.chunks.len(), chosen.sources.len());
    if req.resume {
        keep_good_chunks(&dest, held, m, &mut plan)?;
        if held > m.size {
            dest.set_len(m.size)?;
        }
    } else {
        dest.set_len(0)?;
    }
    let picked_up = plan_bytes(&plan, m);
    let run = Run {
        state: Mutex::new(State {
            plan,
            written: picked_up,
            served: vec![0; chosen.sources.len()],
            errors: vec![None; chosen.sources.len()],
            links: (0..chosen.sources.len() * LINKS_PER_SOURCE)
                .map(|_| Link::default())
                .collect(),
            fatal: None,
        }),
        changed: Condvar::new(),
        cancelled: AtomicBool::new(false),
        workers: (0..chosen.sources.len())
            .map(|_| AtomicUsize::new(0))
            .collect(),
    };
    let mut firsts = chosen.sessions;
    std::thread::scope(|scope| {
        for (k, &c) in chosen.sources.iter().enumerate() {
            for link in 0..LINKS_PER_SOURCE {
                run.workers[k].fetch_add(1, Ordering::SeqCst);
                let (run, dest) = (&run, &dest);
                let cand = &candidates[c];
                let first = if link == 0 { firsts[k].take() } else { None };
                scope.spawn(move || {
                    let worker = Worker {
                        shared,
                        run,
                        source: k,
                        link: k * LINKS_PER_SOURCE + link,
                        cand,
                        path: &req.path,
                        manifest: m,
                        dest,
                        timeout,
                    };
                    worker.work(first);
                });
            }
        }
        watch(&run, out);
    });
    let state = run.state.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = state.fatal {
        return Err(e);
    }
    if run.cancelled.load(Ordering::SeqCst) && !state.plan.is_complete() {
        return Err(Error::new(ErrorCode::Internal, "the command went away"));
    }
    let dropped: Vec<Unused> = state
        .errors
        .iter()
        .enumerate()
        .filter_map(|(k, e)| {
            let e = e.as_ref()?;
            Some(Unused {
                peer: candidates[chosen.sources[k]].label.clone(),
                error: Error::new(
                    e.code,
                    format!(
                        "dropped mid-way, its chunks taken from the others: {}",
                        e.message
                    ),
                ),
            })
        })
        .chain(
            (0..chosen.sources.len())
                .filter(|&k| state.lost(k) && state.served[k] == 0 && state.errors[k].is_none())
                .map(|k| Unused {
                    peer: candidates[chosen.sources[k]].label.clone(),
                    error: Error::new(
                        ErrorCode::Timeout,
                        "slower than the others: each chunk it was given came from another \
                         source first",
                    ),
                }),
        )
        .collect();
    if !state.plan.is_complete() {
        let why: Vec<String> = state
            .errors
            .iter()
            .enumerate()
            .filter_map(|(k, e)| {
                let e = e.as_ref()?;
                Some(format!(
                    "{}: {}",
                    candidates[chosen.sources[k]].label, e.message
                ))
            })
            .collect();
        let code = dropped
            .first()
            .map_or(ErrorCode::Unreachable, |u| u.error.code);
        return Err(Error::new(
            code,
            format!(
                "every source failed before the file was whole: {}",
                why.join("; ")
            ),
        ));
    }
    let mut unused = chosen.unused;
    unused.extend(dropped);
    // The whole file, read back: what the chunk digests cannot vouch for
    // (a manifest whose chunks do not make its whole digest).
    let mut h = Hasher::default();
    super::transfer::rehash(&dest, m.size, &mut h)?;
    let digest = h.finish().hex();
    if digest != m.sha256 {
        return Err(Error::new(
            ErrorCode::Mismatch,
            format!(
                "every chunk matched its digest but the file hashes to {digest}, not to the \
                 sources' {}",
                m.sha256
            ),
        ));
    }
    let sources = chosen
        .sources
        .iter()
        .zip(&state.served)
        .filter(|(_, b)| **b > 0)
        .map(|(&c, &bytes)| Served {
            peer: candidates[c].label.clone(),
            bytes,
        })
        .collect();
    Ok(Reply::Fetched {
        bytes: m.size,
        sha256: digest,
        sources,
        unused,
    })
}

/// Bytes of the chunks the plan has already.
fn plan_bytes(plan: &Plan, m: &Manifest) -> u64 {
    // Only picked-up chunks are done before the run: at most the whole file.
    (plan.done() as u64 * m.chunk).min(m.size)
}

/// With `--continue`: the chunks the file holds whole that match the
/// manifest are kept.
fn keep_good_chunks(dest: &File, held: u64, m: &Manifest, plan: &mut Plan) -> Result<(), Error> {
    let mut buf = Vec::new();
    for (i, want) in m.chunks.iter().enumerate() {
        let (start, len) = m.span(i);
        if start + len > held {
            break;
        }
        buf.resize(len as usize, 0);
        dest.read_exact_at(&mut buf, start)?;
        let mut h = Hasher::default();
        h.update(&buf);
        if &h.finish().hex() == want {
            plan.have(i);
        }
    }
    Ok(())
}

/// The members to ask, and the named ones that cannot be asked (down).
fn candidates(
    shared: &Shared,
    caller: &Caller,
    req: &LocalGetAny,
) -> Result<(Vec<Candidate>, Vec<Unused>), Error> {
    let members = shared.cluster.members();
    let target = Target {
        peers: req.peers.clone(),
        all: req.peers.is_empty(),
        tags: req.tags.clone(),
        timeout_ms: req.timeout_ms,
        ..Target::default()
    };
    let links = fanout::links_for(&target, &members, caller.is_trusted(shared.euid))?;
    let mut out = Vec::new();
    let mut silent = Vec::new();
    for link in links {
        let addr = match link.addr {
            Ok(a) => a,
            Err(error) => {
                silent.push(Unused {
                    peer: link.label,
                    error,
                });
                continue;
            }
        };
        let is_self = members
            .iter()
            .any(|m| m.is_self && (m.name == link.label || m.addr == addr));
        if is_self {
            continue;
        }
        let at = if link.label == addr.to_string() {
            String::new()
        } else {
            format!(" at {addr}")
        };
        out.push(Candidate {
            label: link.label,
            addr,
            at,
        });
    }
    if out.is_empty() {
        return Err(Error::new(
            ErrorCode::Unreachable,
            "no other alive member to fetch from (this host's own copy is not a source: \
             p2p-get copies a file of this host with MEMBER:/PATH)",
        ));
    }
    Ok((out, silent))
}

/// A candidate's answer: its manifest and the session it came on.
type Answer = Result<(Manifest, Session<Conn>), Error>;

/// Asks every candidate for its manifest, [`ASKED_AT_ONCE`] at a time.
fn manifests(
    shared: &Shared,
    candidates: &[Candidate],
    path: &PathBytes,
    timeout: Duration,
) -> Vec<Answer> {
    let answers: Vec<Mutex<Option<Answer>>> = candidates.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..ASKED_AT_ONCE.min(candidates.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(c) = candidates.get(i) else {
                        return;
                    };
                    let a = manifest_of(shared, c, path, timeout);
                    if let Ok(mut slot) = answers[i].lock() {
                        *slot = Some(a);
                    }
                }
            });
        }
    });
    answers
        .into_iter()
        .map(|a| {
            a.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "no answer was kept")))
        })
        .collect()
}

fn manifest_of(shared: &Shared, c: &Candidate, path: &PathBytes, timeout: Duration) -> Answer {
    let deadline = Instant::now() + timeout;
    let _slot = shared
        .sessions
        .reserve(c.addr, || Instant::now() > deadline)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::Timeout,
                format!("every link to the member{} stayed busy", c.at),
            )
        })?;
    let mut s = fanout::dial(shared, &c.at, c.addr, timeout)?;
    let broken = |e| fanout::session_failed(&c.at, e, timeout);
    s.send(&peer::encode(&PeerRequest::Manifest(AskManifest {
        path: path.clone(),
    })))
    .map_err(broken)?;
    loop {
        let frame = s.recv(peer::MAX_FRAME).map_err(broken)?;
        match transfer::decode(&frame) {
            // Still hashing.
            Ok(Frame::Reply(Reply::Progress { .. })) => {}
            Ok(Frame::Reply(Reply::Manifest(m))) => return Ok((m, s)),
            Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
            _ => return Err(unexpected(&c.at)),
        }
    }
}

/// The sources, the manifest they share, their sessions, and the members
/// not used.
struct Chosen {
    manifest: Manifest,
    /// Indexes into the candidates.
    sources: Vec<usize>,
    /// The manifest's session of each source, for its first link.
    sessions: Vec<Option<Session<Conn>>>,
    unused: Vec<Unused>,
}

/// The members whose manifests agree with the most others; the sessions of
/// the others are kept for later queries.
fn choose(
    candidates: &[Candidate],
    answers: Vec<Answer>,
    silent: &mut Vec<Unused>,
) -> Result<Chosen, Error> {
    let mut groups: Vec<(Manifest, Vec<usize>)> = Vec::new();
    let mut unused = Vec::new();
    let mut sessions: Vec<Option<Session<Conn>>> = Vec::new();
    for (i, a) in answers.into_iter().enumerate() {
        sessions.push(None);
        let c = &candidates[i];
        match a {
            Ok((m, s)) if m.is_consistent() => {
                sessions[i] = Some(s);
                match groups.iter_mut().find(|(g, _)| g.same_content(&m)) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((m, vec![i])),
                }
            }
            Ok(_) => unused.push(Unused {
                peer: c.label.clone(),
                error: Error::new(
                    ErrorCode::Mismatch,
                    "its manifest does not add up (chunks, sizes): not used",
                ),
            }),
            Err(error) => silent.push(Unused {
                peer: c.label.clone(),
                error,
            }),
        }
    }
    groups.sort_by_key(|(_, members)| std::cmp::Reverse(members.len()));
    let Some((manifest, members)) = groups.first() else {
        return Err(none_holds(silent));
    };
    if groups.get(1).is_some_and(|(_, o)| o.len() == members.len()) {
        let tied: Vec<String> = groups
            .iter()
            .filter(|(_, o)| o.len() == members.len())
            .map(|(g, o)| {
                let names: Vec<&str> = o.iter().map(|&i| candidates[i].label.as_str()).collect();
                format!(
                    "{} {} sha256 {} ({} bytes)",
                    crate::nodeset::fold(&names),
                    if names.len() == 1 { "holds" } else { "hold" },
                    g.sha256,
                    g.size
                )
            })
            .collect();
        return Err(Error::new(
            ErrorCode::Mismatch,
            format!(
                "the members disagree, as many on each side: {}; name one with MEMBER:/PATH",
                tied.join("; ")
            ),
        ));
    }
    let manifest = manifest.clone();
    let sources: Vec<usize> = members.iter().copied().take(MAX_SOURCES).collect();
    for (g, others) in groups.iter().skip(1) {
        for &i in others {
            unused.push(Unused {
                peer: candidates[i].label.clone(),
                error: Error::new(
                    ErrorCode::Mismatch,
                    format!(
                        "holds other content (sha256 {}, {} bytes) than the {} members used \
                         (sha256 {}): not used",
                        g.sha256,
                        g.size,
                        members.len(),
                        manifest.sha256
                    ),
                ),
            });
        }
    }
    let sessions = sources.iter().map(|&i| sessions[i].take()).collect();
    Ok(Chosen {
        manifest,
        sources,
        sessions,
        unused,
    })
}

/// No member could give a manifest: why, for the first few.
fn none_holds(silent: &[Unused]) -> Error {
    let code = silent.first().map_or(ErrorCode::NotFound, |u| u.error.code);
    let mut why: Vec<String> = silent
        .iter()
        .take(4)
        .map(|u| format!("{}: {}", u.peer, u.error.message))
        .collect();
    if silent.len() > 4 {
        why.push(format!("and {} more", silent.len() - 4));
    }
    Error::new(code, format!("no member could send it: {}", why.join("; ")))
}

/// What the links of one transfer share.
struct Run {
    state: Mutex<State>,
    /// Signalled whenever a chunk ends, well or not.
    changed: Condvar,
    cancelled: AtomicBool,
    /// Links still working, per source.
    workers: Vec<AtomicUsize>,
}

struct State {
    plan: Plan,
    /// Bytes written and checked, picked-up chunks included.
    written: u64,
    /// Bytes written from each source.
    served: Vec<u64>,
    /// Why each dropped source was dropped.
    errors: Vec<Option<Error>>,
    /// Each link's chunk in flight and socket, so that the loser of an
    /// endgame copy can be cut off.
    links: Vec<Link>,
    /// A failure of this host (the file could not be written): the end.
    fatal: Option<Error>,
}

impl State {
    /// Source `k` lost a chunk to another's copy (the endgame): one of its
    /// links was cut.
    fn lost(&self, k: usize) -> bool {
        self.links[k * LINKS_PER_SOURCE..(k + 1) * LINKS_PER_SOURCE]
            .iter()
            .any(|l| l.cut)
    }
}

#[derive(Default)]
struct Link {
    chunk: Option<usize>,
    socket: Option<std::net::TcpStream>,
    /// Cut off because another source wrote its chunk first.
    cut: bool,
}

impl Run {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn over(&self, st: &State) -> bool {
        st.plan.is_complete()
            || st.plan.is_stuck()
            || st.fatal.is_some()
            || self.cancelled.load(Ordering::SeqCst)
    }
}

/// Waits for the end of the run, telling the command how far it is, and
/// stops it if the command goes away.
fn watch(run: &Run, out: &UnixStream) {
    let mut told = None;
    let mut last = Instant::now();
    let mut st = run.lock();
    while !run.over(&st) {
        st = run
            .changed
            .wait_timeout(st, Duration::from_millis(200))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
        let written = st.written;
        drop(st);
        if client_gone(out) {
            run.cancelled.store(true, Ordering::SeqCst);
        } else if told != Some(written) && last.elapsed() >= PROGRESS_EVERY {
            told = Some(written);
            last = Instant::now();
            if line(out, &Reply::Progress { bytes: written }).is_err() {
                run.cancelled.store(true, Ordering::SeqCst);
            }
        }
        st = run.lock();
    }
    drop(st);
    run.changed.notify_all();
}

/// One link to one source.
struct Worker<'a> {
    shared: &'a Shared,
    run: &'a Run,
    source: usize,
    /// This link's index in [`State::links`].
    link: usize,
    cand: &'a Candidate,
    path: &'a PathBytes,
    manifest: &'a Manifest,
    dest: &'a File,
    timeout: Duration,
}

impl Worker<'_> {
    fn work(&self, first: Option<Session<Conn>>) {
        let ended = self.fetch_chunks(first);
        let mut st = self.run.lock();
        let link = &mut st.links[self.link];
        let cut = link.cut;
        link.socket = None;
        link.chunk = None;
        // A link cut for losing a race is no failure of its source.
        if let Err(e) = ended
            && !cut
        {
            if st.errors[self.source].is_none() && !st.plan.is_complete() {
                st.errors[self.source] = Some(e);
            }
            st.plan.failed(self.source);
        }
        if self.run.workers[self.source].fetch_sub(1, Ordering::SeqCst) == 1 {
            // Its last link: a source no link serves can take no chunk.
            st.plan.failed(self.source);
        }
        drop(st);
        self.run.changed.notify_all();
    }

    /// Fetches chunks until the plan says stop; an error drops the source.
    fn fetch_chunks(&self, first: Option<Session<Conn>>) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout;
        let Some(_slot) = self.shared.sessions.reserve(self.cand.addr, || {
            Instant::now() > deadline || self.run.cancelled.load(Ordering::SeqCst)
        }) else {
            // Its other link may still work: this one just never starts.
            return Ok(());
        };
        let mut s = match first {
            Some(s) => s,
            None => fanout::dial(self.shared, &self.cand.at, self.cand.addr, self.timeout)?,
        };
        self.run.lock().links[self.link].socket = s.stream().tcp().try_clone().ok();
        let mut buf = Vec::new();
        let mut frame = Vec::new();
        while let Some(i) = self.next() {
            self.fetch(&mut s, i, &mut buf, &mut frame)?;
            let (start, _) = self.manifest.span(i);
            if let Err(e) = self.dest.write_all_at(&buf, start) {
                let mut st = self.run.lock();
                st.fatal.get_or_insert(Error::from_io(&e));
                drop(st);
                self.run.changed.notify_all();
                return Ok(());
            }
            let mut st = self.run.lock();
            st.links[self.link].chunk = None;
            st.plan.tick(Instant::now());
            if !st.plan.is_dropped(self.source) && st.plan.fetched(self.source, i) {
                st.written += buf.len() as u64;
                st.served[self.source] += buf.len() as u64;
                // The other holder of an endgame copy fetches in vain.
                for (n, l) in st.links.iter_mut().enumerate() {
                    if n != self.link && l.chunk == Some(i) {
                        l.cut = true;
                        if let Some(sock) = &l.socket {
                            let _ = sock.shutdown(std::net::Shutdown::Both);
                        }
                    }
                }
            }
            drop(st);
            self.run.changed.notify_all();
        }
        // A cut session is of no more use.
        if !self.run.lock().links[self.link].cut {
            self.shared
                .sessions
                .give(self.cand.addr, s, self.manifest.peer.clone());
        }
        Ok(())
    }

    /// The next chunk for this source, once there is one; `None` to stop.
    fn next(&self) -> Option<usize> {
        let mut st = self.run.lock();
        loop {
            let cut = st.links[self.link].cut;
            if cut || st.fatal.is_some() || self.run.cancelled.load(Ordering::SeqCst) {
                return None;
            }
            st.plan.tick(Instant::now());
            match st.plan.next(self.source) {
                Next::Fetch(i) => {
                    st.links[self.link].chunk = Some(i);
                    return Some(i);
                }
                Next::Stop => return None,
                Next::Wait => {
                    st = self
                        .run
                        .changed
                        .wait_timeout(st, Duration::from_millis(200))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
        }
    }

    /// Chunk `i` into `buf`, checked against the manifest.
    fn fetch(
        &self,
        s: &mut Session<Conn>,
        i: usize,
        buf: &mut Vec<u8>,
        frame: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let at = &self.cand.at;
        let m = self.manifest;
        let (start, len) = m.span(i);
        let broken = |e| fanout::session_failed(at, e, self.timeout);
        s.send(&peer::encode(&PeerRequest::Range(Range {
            path: self.path.clone(),
            offset: start,
            length: len,
            size: m.size,
        })))
        .map_err(broken)?;
        let first = s.recv(peer::MAX_FRAME).map_err(broken)?;
        match transfer::decode(&first) {
            Ok(Frame::Reply(Reply::Sending { size, offset, .. }))
                if offset == start && size == m.size => {}
            Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
            _ => return Err(unexpected(at)),
        }
        buf.clear();
        loop {
            let f = s.recv_into(peer::MAX_FRAME, frame).map_err(broken)?;
            match transfer::decode(f) {
                Ok(Frame::Data(bytes)) => {
                    if (buf.len() + bytes.len()) as u64 > len {
                        return Err(unexpected(at));
                    }
                    buf.extend_from_slice(bytes);
                }
                Ok(Frame::Reply(Reply::Sent { bytes }))
                    if bytes == len && buf.len() as u64 == len =>
                {
                    break;
                }
                Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
                _ => return Err(unexpected(at)),
            }
        }
        let mut h = Hasher::default();
        h.update(buf);
        if h.finish().hex() != m.chunks[i] {
            return Err(Error::new(
                ErrorCode::Mismatch,
                format!(
                    "its chunk {i} (bytes {start} to {}) does not match its manifest",
                    start + len
                ),
            ));
        }
        Ok(())
    }
}
