//! `p2p-get` in the daemon: a member sends a file (or lists a tree) below
//! its exports, and the asking daemon writes what arrives into the file the
//! command opened (see [`crate::proto::transfer`] for the frames).
//!
//! The member opens the path exactly as a query does ([`Exports::open`],
//! with the [`Asker`] of the session's certificate), so exports, groups and
//! the confinement below a root are the same. It reads on the worker pool,
//! a slice at a time, in the asking member's share of the workers, so a
//! transfer takes turns with queries rather than holding a worker; the
//! session's write timeout bounds how long a receiver that stopped reading
//! holds one. It hashes what it reads and sends the digest at the end, and
//! refuses a file whose metadata (size, mtime, ctime, inode) changed while
//! it was sent: that is no single version of it.
//!
//! The asking daemon never opens a destination: the command (running as
//! the user) creates the file and passes its descriptor, so what the user
//! may not write, the daemon never writes. It writes what arrives there,
//! hashes it (after hashing again what the file held already, when the
//! transfer is picked up), and says `end` only when the digests agree; the
//! command then syncs the file and renames it into place.

use super::caller::Caller;
use super::fanout::{self, Conn};
use super::pool::Job;
use super::{Shared, remote};
use crate::cache::FileKey;
use crate::crypto::session::Session;
use crate::error::{Error, ErrorCode};
use crate::exports::Asker;
use crate::fdpass::LineReader;
use crate::ops::sha::Hasher;
use crate::proto::peer::{self, PeerRequest};
use crate::proto::transfer::{
    self, AskManifest, CHUNK, ENTRIES_BYTES, Entry, Frame, Get, Kind, List, LocalGet, LocalList,
    MAX_ENTRIES, Manifest, Range, Reply,
};
use crate::proto::{PathBytes, Target};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

/// Bytes a member sends in one turn on a worker before it queues the rest
/// behind the other callers' work.
const SLICE: u64 = 32 << 20;

/// How long the member may stay silent unless the request says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn encode(reply: &Reply) -> Vec<u8> {
    peer::encode(reply)
}

fn failed(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code, message)
}

// The member's side.

/// Sends one file to the peer of session `s`; gives the session back when
/// it may carry another request.
pub fn serve_get(
    shared: &Arc<Shared>,
    mut s: Session<TcpStream>,
    from: &str,
    get: Get,
) -> Option<Session<TcpStream>> {
    let (file, key) = match open_regular(shared, &s, &get.path, get.offset, Ok) {
        Ok(o) => o,
        Err(error) => return refuse(s, from, "get", &get.path, error),
    };
    shared.counters.query(super::counters::Origin::Remote);
    crate::daemon::logging::trail(
        "transfer",
        format_args!(
            "peer {from}: sending {} ({} bytes from {})",
            get.path, key.size, get.offset
        ),
    );
    s.send(&encode(&Reply::Sending {
        peer: shared.name.clone(),
        size: key.size,
        offset: get.offset,
    }))
    .ok()?;
    let (done, back) = channel();
    let sending = Sending {
        s,
        file,
        key,
        at: 0,
        offset: get.offset,
        end: None,
        hasher: Hasher::default(),
        buf: vec![0; CHUNK + 1],
        done,
        shared: Arc::clone(shared),
    };
    shared
        .pool
        .submit(remote::member(from), Job::new(move || sending.slice()));
    // A job that panicked drops its sender: the session is lost with it.
    back.recv().ok().flatten()
}

/// The file behind `f` when it is a regular file that holds `offset` bytes
/// at least, with its version.
fn regular(f: File, offset: u64) -> Result<(File, FileKey), Error> {
    let md = f.metadata()?;
    if md.is_dir() {
        return Err(failed(
            ErrorCode::IsDirectory,
            "is a directory (p2p-get -r fetches a tree)",
        ));
    }
    if !md.is_file() {
        return Err(failed(
            ErrorCode::InvalidRequest,
            "not a regular file: only regular files are sent",
        ));
    }
    if offset > md.len() {
        return Err(failed(
            ErrorCode::Changed,
            format!(
                "the partial file holds {offset} bytes, more than the {} the file has now",
                md.len()
            ),
        ));
    }
    Ok((f, FileKey::from_metadata(&md)))
}

/// A file being sent, between two slices on the pool.
struct Sending {
    s: Session<TcpStream>,
    file: File,
    /// The version that was opened; another one at the end is `changed`.
    key: FileKey,
    /// Bytes read (and hashed) so far.
    at: u64,
    /// Bytes before this are hashed but not sent: the asker has them.
    offset: u64,
    /// A range (`p2p-get --any`): sent up to there, not hashed (the asker
    /// checks it against the manifest), and ended with [`Reply::Sent`].
    end: Option<u64>,
    hasher: Hasher,
    /// [`transfer::DATA`] and a chunk.
    buf: Vec<u8>,
    done: Sender<Option<Session<TcpStream>>>,
    shared: Arc<Shared>,
}

impl Sending {
    /// Sends up to [`SLICE`] bytes; queues the rest as the next job, or ends
    /// the transfer.
    fn slice(mut self) -> Option<Job> {
        let mut sent = 0u64;
        loop {
            match self.step() {
                Ok(Some(n)) => {
                    sent += n;
                    if sent >= SLICE {
                        self.shared.counters.read(sent);
                        return Some(Job::new(move || self.slice()));
                    }
                }
                Ok(None) => {
                    self.shared.counters.read(sent);
                    self.finish();
                    return None;
                }
                Err(None) => {
                    // The asker went away (or stopped reading for the whole
                    // write timeout): the session is dropped.
                    let _ = self.done.send(None);
                    return None;
                }
                Err(Some(error)) => {
                    let ok = self.s.send(&encode(&Reply::Failed { error })).is_ok();
                    let _ = self.done.send(ok.then_some(self.s));
                    return None;
                }
            }
        }
    }

    /// Reads, hashes and sends one chunk; `None` at the end of the file.
    /// `Err(None)` when the session broke, `Err(Some(e))` when the file did.
    fn step(&mut self) -> Result<Option<u64>, Option<Error>> {
        // The part the asker holds is read in pieces that end at `offset`.
        let want = if self.at < self.offset {
            (self.offset - self.at).min(CHUNK as u64) as usize
        } else if let Some(end) = self.end {
            let left = end.saturating_sub(self.at).min(CHUNK as u64) as usize;
            if left == 0 {
                return Ok(None);
            }
            left
        } else {
            CHUNK
        };
        let n = loop {
            match self.file.read_at(&mut self.buf[1..=want], self.at) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Some(Error::from_io(&e))),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        if self.end.is_none() {
            self.hasher.update(&self.buf[1..=n]);
        } else {
            corrupt_for_tests(&mut self.buf[1..=n]);
        }
        let sends = self.at >= self.offset;
        self.at += n as u64;
        if self.at > self.key.size {
            return Err(Some(changed()));
        }
        if sends {
            self.s
                .send(transfer::data_frame(&mut self.buf[..=n]))
                .map_err(|_| None)?;
        }
        Ok(Some(n as u64))
    }

    fn finish(self) {
        let now = self.file.metadata().map(|md| FileKey::from_metadata(&md));
        let reply = match now {
            Ok(now) if now == self.key && Some(self.at) == self.end => Reply::Sent {
                bytes: self.at - self.offset,
            },
            Ok(now) if now == self.key && self.end.is_none() && self.at == self.key.size => {
                Reply::End {
                    bytes: self.at,
                    sha256: self.hasher.finish().hex(),
                }
            }
            Ok(_) => Reply::Failed { error: changed() },
            Err(e) => Reply::Failed {
                error: Error::from_io(&e),
            },
        };
        let mut s = self.s;
        let ok = s.send(&encode(&reply)).is_ok();
        let _ = self.done.send(ok.then_some(s));
    }
}

/// A debug build's p2pd started with `P2PD_TEST_CORRUPT_RANGES` in its
/// environment flips the first byte of each piece of a range it sends, so
/// that a test can watch the asker drop a source whose chunks do not match
/// its manifest. A release build has no such knob.
#[cfg(debug_assertions)]
fn corrupt_for_tests(bytes: &mut [u8]) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("P2PD_TEST_CORRUPT_RANGES").is_some()) {
        if let Some(b) = bytes.first_mut() {
            *b ^= 0xff;
        }
    }
}

#[cfg(not(debug_assertions))]
fn corrupt_for_tests(_: &mut [u8]) {}

/// A debug build's p2pd started with `P2PD_TEST_RANGE_DELAY_MS=N` waits
/// N ms before it sends each range, so that a test can watch the asker of
/// `--any` copy a slow source's last chunks from the others. A release
/// build has no such knob.
#[cfg(debug_assertions)]
fn slow_range_for_tests() {
    static MS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let ms = MS.get_or_init(|| {
        std::env::var("P2PD_TEST_RANGE_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if let Some(ms) = ms {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

#[cfg(not(debug_assertions))]
fn slow_range_for_tests() {}

/// Opens `path` below the exports as the peer of session `s` may read it,
/// a regular file read from `offset`, and checks it with `then`.
fn open_regular<T>(
    shared: &Shared,
    s: &Session<TcpStream>,
    path: &PathBytes,
    offset: u64,
    then: impl FnOnce((File, FileKey)) -> Result<T, Error>,
) -> Result<T, Error> {
    let asker = Asker::member(s.peer(), false);
    shared
        .exports()
        .open(&asker, path)
        .and_then(|f| regular(f, offset))
        .and_then(then)
}

/// Logs a refused request (`what` of `path`) and tells the peer; gives the
/// session back for its next request.
fn refuse(
    mut s: Session<TcpStream>,
    from: &str,
    what: &str,
    path: &PathBytes,
    error: Error,
) -> Option<Session<TcpStream>> {
    crate::daemon::logging::trail(
        "transfer",
        format_args!("peer {from}: {what} {path} refused: {error}"),
    );
    s.send(&encode(&Reply::Failed { error })).ok()?;
    Some(s)
}

/// Sends a range of a file (`p2p-get --any`) to the peer of session `s`,
/// if the file is still the size its manifest said; gives the session
/// back when it may carry another request.
pub fn serve_range(
    shared: &Arc<Shared>,
    mut s: Session<TcpStream>,
    from: &str,
    range: Range,
) -> Option<Session<TcpStream>> {
    let opened = open_regular(shared, &s, &range.path, 0, |(f, key)| {
        let end = range.offset.checked_add(range.length);
        if key.size != range.size {
            Err(failed(
                ErrorCode::Changed,
                format!(
                    "the file is {} bytes now, not the {} of its manifest",
                    key.size, range.size
                ),
            ))
        } else if end.is_none_or(|e| e > key.size) {
            Err(failed(ErrorCode::InvalidRequest, "a range beyond the file"))
        } else {
            Ok((f, key))
        }
    });
    let (file, key) = match opened {
        Ok(o) => o,
        Err(error) => return refuse(s, from, "range of", &range.path, error),
    };
    slow_range_for_tests();
    s.send(&encode(&Reply::Sending {
        peer: shared.name.clone(),
        size: key.size,
        offset: range.offset,
    }))
    .ok()?;
    let (done, back) = channel();
    let sending = Sending {
        s,
        file,
        key,
        at: range.offset,
        offset: range.offset,
        end: Some(range.offset + range.length),
        hasher: Hasher::default(),
        buf: vec![0; CHUNK + 1],
        done,
        shared: Arc::clone(shared),
    };
    shared
        .pool
        .submit(remote::member(from), Job::new(move || sending.slice()));
    back.recv().ok().flatten()
}

/// Computes a file's manifest (`p2p-get --any`) for the peer of session
/// `s`: one read, on the pool as a transfer is, hashing the whole file and
/// each chunk, refused as `changed` if the file changed meanwhile.
pub fn serve_manifest(
    shared: &Arc<Shared>,
    s: Session<TcpStream>,
    from: &str,
    ask: AskManifest,
) -> Option<Session<TcpStream>> {
    let opened = open_regular(
        shared,
        &s,
        &ask.path,
        0,
        |(f, key)| match transfer::chunk_size(key.size) {
            Some(chunk) => Ok((f, key, chunk)),
            None => Err(failed(
                ErrorCode::InvalidRequest,
                "too large for --any: fetch it from one member",
            )),
        },
    );
    let (file, key, chunk) = match opened {
        Ok(o) => o,
        Err(error) => return refuse(s, from, "manifest of", &ask.path, error),
    };
    shared.counters.query(super::counters::Origin::Remote);
    let (done, back) = channel();
    let hashing = Hashing {
        s,
        file,
        key,
        chunk,
        at: 0,
        whole: Hasher::default(),
        piece: Hasher::default(),
        chunks: Vec::new(),
        buf: vec![0; CHUNK],
        beat: Instant::now(),
        done,
        shared: Arc::clone(shared),
    };
    shared
        .pool
        .submit(remote::member(from), Job::new(move || hashing.slice()));
    back.recv().ok().flatten()
}

/// A manifest being computed, between two slices on the pool.
struct Hashing {
    s: Session<TcpStream>,
    file: File,
    key: FileKey,
    chunk: u64,
    at: u64,
    whole: Hasher,
    /// The chunk being hashed.
    piece: Hasher,
    chunks: Vec<String>,
    buf: Vec<u8>,
    /// When the asker last heard from us: a large file takes longer to
    /// hash than its timeout.
    beat: Instant,
    done: Sender<Option<Session<TcpStream>>>,
    shared: Arc<Shared>,
}

impl Hashing {
    /// Hashes up to [`SLICE`] bytes; queues the rest, or answers.
    fn slice(mut self) -> Option<Job> {
        let mut read = 0u64;
        let outcome = loop {
            // A read never crosses the end of a chunk.
            let left = self.chunk - self.piece.bytes();
            let want = left.min(CHUNK as u64) as usize;
            let n = match self.file.read_at(&mut self.buf[..want], self.at) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(Error::from_io(&e)),
            };
            if n == 0 {
                break Ok(());
            }
            self.whole.update(&self.buf[..n]);
            self.piece.update(&self.buf[..n]);
            self.at += n as u64;
            read += n as u64;
            if self.at > self.key.size {
                break Err(changed());
            }
            if self.piece.bytes() == self.chunk {
                let piece = std::mem::take(&mut self.piece);
                self.chunks.push(piece.finish().hex());
            }
            if read >= SLICE {
                self.shared.counters.read(read);
                if self.beat.elapsed() >= remote::HEARTBEAT {
                    self.beat = Instant::now();
                    let beat = encode(&Reply::Progress { bytes: self.at });
                    if self.s.send(&beat).is_err() {
                        let _ = self.done.send(None);
                        return None;
                    }
                }
                return Some(Job::new(move || self.slice()));
            }
        };
        self.shared.counters.read(read);
        let now = self.file.metadata().map(|md| FileKey::from_metadata(&md));
        let reply = match (outcome, now) {
            (Err(error), _) => Reply::Failed { error },
            (Ok(()), Err(e)) => Reply::Failed {
                error: Error::from_io(&e),
            },
            (Ok(()), Ok(now)) if now != self.key || self.at != self.key.size => {
                Reply::Failed { error: changed() }
            }
            (Ok(()), Ok(_)) => {
                let mut chunks = self.chunks;
                if self.piece.bytes() > 0 {
                    chunks.push(self.piece.finish().hex());
                }
                Reply::Manifest(Manifest {
                    peer: self.shared.name.clone(),
                    size: self.at,
                    sha256: self.whole.finish().hex(),
                    chunk: self.chunk,
                    chunks,
                })
            }
        };
        let mut s = self.s;
        let ok = s.send(&encode(&reply)).is_ok();
        let _ = self.done.send(ok.then_some(s));
        None
    }
}

fn changed() -> Error {
    failed(
        ErrorCode::Changed,
        "the file changed while it was sent (its size, times or inode differ); try again",
    )
}

/// Lists the tree below a directory for the peer of session `s`.
pub fn serve_list(
    shared: &Arc<Shared>,
    mut s: Session<TcpStream>,
    from: &str,
    list: List,
) -> Option<Session<TcpStream>> {
    // A walk: refused where it would enter a root the asker may not read.
    let asker = Asker::member(s.peer(), true);
    let dir = shared.exports().open(&asker, &list.path).and_then(|f| {
        if f.metadata()?.is_dir() {
            Ok(f)
        } else {
            Err(failed(ErrorCode::NotADirectory, "not a directory"))
        }
    });
    shared.counters.query(super::counters::Origin::Remote);
    let mut sent = 0usize;
    let mut batch = Vec::new();
    let mut size = 0usize;
    let mut broken = false;
    let walked = dir.and_then(|d| {
        walk(OwnedFd::from(d), &mut |entry| {
            sent += 1;
            if sent > MAX_ENTRIES {
                return Err(failed(
                    ErrorCode::InvalidRequest,
                    format!("the tree holds more than {MAX_ENTRIES} entries; fetch it in parts"),
                ));
            }
            // A name that is not UTF-8 is written twice (readable and base64).
            size += entry.path.len() * 5 + 64;
            batch.push(entry);
            if size >= ENTRIES_BYTES {
                size = 0;
                let entries = std::mem::take(&mut batch);
                if s.send(&encode(&Reply::Entries { entries })).is_err() {
                    broken = true;
                    return Err(failed(ErrorCode::Internal, "the asker went away"));
                }
            }
            Ok(())
        })
    });
    if broken {
        return None;
    }
    let mut frames = Vec::new();
    if !batch.is_empty() {
        frames.push(encode(&Reply::Entries { entries: batch }));
    }
    frames.push(encode(&match walked {
        Ok(()) => Reply::Listed {
            peer: shared.name.clone(),
        },
        Err(error) => Reply::Failed { error },
    }));
    crate::daemon::logging::trail(
        "transfer",
        format_args!("peer {from}: listed {} ({sent} entries)", list.path),
    );
    s.send_all(&frames).ok()?;
    Some(s)
}

/// Walks the tree below `dir` depth first, a directory before what it
/// holds, names in byte order, never following a symlink: each directory is
/// opened from its parent with `O_NOFOLLOW`.
pub fn walk(dir: OwnedFd, each: &mut dyn FnMut(Entry) -> Result<(), Error>) -> Result<(), Error> {
    // Directories still to enter: the parent, the name, the path below the top.
    let mut stack: Vec<(Arc<OwnedFd>, CString, Vec<u8>)> = Vec::new();
    let mut current = Some((dir, Vec::new()));
    while let Some((fd, prefix)) = current.take() {
        let fd = Arc::new(fd);
        let mut names = read_names(&fd)?;
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let st = nix::sys::stat::fstatat(
                &*fd,
                name.as_c_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(Error::from)?;
            let (kind, size) = match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => (Kind::File, st.st_size as u64),
                libc::S_IFDIR => (Kind::Dir, 0),
                libc::S_IFLNK => (Kind::Symlink, 0),
                _ => (Kind::Other, 0),
            };
            if kind == Kind::Dir {
                subdirs.push((Arc::clone(&fd), name, path.clone()));
            }
            each(Entry {
                path: PathBytes(path),
                kind,
                size,
            })?;
        }
        // Entered in name order: the first is taken off the stack first.
        stack.extend(subdirs.into_iter().rev());
        drop(fd);
        if let Some((parent, name, path)) = stack.pop() {
            current = Some((open_subdir(&parent, &name)?, path));
        }
    }
    Ok(())
}

fn read_names(fd: &OwnedFd) -> Result<Vec<CString>, Error> {
    // A second descriptor of the directory, for nix's Dir to own.
    let dup = nix::unistd::dup(fd).map_err(Error::from)?;
    let mut dir = nix::dir::Dir::from_fd(dup).map_err(Error::from)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(Error::from)?;
        let name: &CStr = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn open_subdir(parent: &OwnedFd, name: &CStr) -> Result<OwnedFd, Error> {
    // SAFETY: openat with a NUL-ended name and a descriptor we hold.
    let fd = unsafe {
        libc::openat(
            parent.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::from_io(&io::Error::last_os_error()));
    }
    // SAFETY: a descriptor openat just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// The asking daemon's side.

/// Writes one line to the command.
pub(super) fn line(mut out: &UnixStream, reply: &Reply) -> io::Result<()> {
    let mut l = encode(reply);
    l.push(b'\n');
    out.write_all(&l)
}

/// The member a local request names, as the queries resolve `--peer`: by
/// name, or (for the daemon's own user and root) a HOST:PORT.
fn member_addr(
    shared: &Shared,
    caller: &Caller,
    name: &str,
    timeout_ms: Option<u64>,
) -> Result<(std::net::SocketAddr, String), Error> {
    let members = shared.cluster.members();
    let target = Target {
        peers: vec![name.to_string()],
        timeout_ms,
        ..Target::default()
    };
    let links = fanout::links_for(&target, &members, caller.is_trusted(shared.euid))?;
    let Some(link) = links.into_iter().next() else {
        return Err(failed(ErrorCode::Unreachable, "no such member"));
    };
    let addr = link.addr?;
    if members
        .iter()
        .any(|m| m.is_self && (m.name == link.label || m.addr == addr))
    {
        return Err(failed(
            ErrorCode::InvalidRequest,
            "this is the local member: p2p-get copies its files itself, with your rights",
        ));
    }
    let at = if link.label == addr.to_string() {
        String::new()
    } else {
        format!(" at {addr}")
    };
    Ok((addr, at))
}

pub(super) fn timeout_of(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis)
}

/// Serves a local `get`: the descriptor passed with the request line is
/// the file to fill.
pub fn serve_local_get(
    req: LocalGet,
    mut reader: LineReader,
    out: UnixStream,
    caller: &Caller,
    shared: &Arc<Shared>,
) {
    let reply = match reader.take_fd() {
        Some(fd) => local_get(&req, File::from(fd), &out, caller, shared),
        None => Err(failed(
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

/// The file to fill must be a regular file open for reading and writing,
/// without `O_APPEND` (the bytes go at their offsets).
pub(super) fn fillable(dest: &File) -> Result<u64, Error> {
    // SAFETY: F_GETFL only reads the flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(dest.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::from_io(&io::Error::last_os_error()));
    }
    if flags & libc::O_ACCMODE != libc::O_RDWR || flags & (libc::O_APPEND | libc::O_PATH) != 0 {
        return Err(failed(
            ErrorCode::PermissionDenied,
            "the file to fill must be open for reading and writing, without O_APPEND",
        ));
    }
    let md = dest.metadata()?;
    if !md.is_file() {
        return Err(failed(
            ErrorCode::InvalidRequest,
            "the file to fill must be a regular file",
        ));
    }
    Ok(md.len())
}

fn local_get(
    req: &LocalGet,
    dest: File,
    out: &UnixStream,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<Reply, Error> {
    let held = fillable(&dest)?;
    let timeout = timeout_of(req.timeout_ms);
    let (addr, at) = member_addr(shared, caller, &req.peer, req.timeout_ms)?;
    let mut hasher = Hasher::default();
    let offset = if req.resume {
        // What the file holds is read back and hashed: never trusted.
        rehash(&dest, held, &mut hasher)?;
        held
    } else {
        dest.set_len(0)?;
        0
    };
    let deadline = Instant::now() + timeout;
    let _slot = shared
        .sessions
        .reserve(addr, || Instant::now() > deadline)
        .ok_or_else(|| {
            failed(
                ErrorCode::Timeout,
                format!("every link to the member{at} stayed busy"),
            )
        })?;
    let mut s = fanout::dial(shared, &at, addr, timeout)?;
    let broken = |e| fanout::session_failed(&at, e, timeout);
    s.send(&peer::encode(&PeerRequest::Get(Get {
        path: req.path.clone(),
        offset,
    })))
    .map_err(broken)?;
    let first = s.recv(peer::MAX_FRAME).map_err(broken)?;
    let (size, name) = match transfer::decode(&first) {
        Ok(Frame::Reply(Reply::Sending {
            size,
            offset: o,
            peer,
        })) if o == offset => {
            let r = Reply::Sending {
                size,
                offset,
                peer: peer.clone(),
            };
            line(out, &r).map_err(|e| Error::from_io(&e))?;
            (size, peer)
        }
        Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
        _ => return Err(unexpected(&at)),
    };
    let mut at_byte = offset;
    let mut buf = Vec::new();
    let mut frames = 0u64;
    loop {
        let frame = s.recv_into(peer::MAX_FRAME, &mut buf).map_err(broken)?;
        match transfer::decode(frame) {
            Ok(Frame::Data(bytes)) => {
                frames += 1;
                if frames % CLIENT_CHECK == 0 && client_gone(out) {
                    // Interrupted: the member's session is dropped with us.
                    return Err(failed(ErrorCode::Internal, "the command went away"));
                }
                let end = at_byte + bytes.len() as u64;
                if end > size {
                    return Err(changed());
                }
                dest.write_all_at(bytes, at_byte)?;
                hasher.update(bytes);
                at_byte = end;
            }
            Ok(Frame::Reply(Reply::End { bytes, sha256 })) => {
                let digest = hasher.finish();
                if bytes != at_byte || digest.hex() != sha256 {
                    return Err(failed(
                        ErrorCode::Mismatch,
                        format!(
                            "what arrived ({} bytes, sha256 {}) is not what the member sent \
                             ({bytes} bytes, sha256 {sha256}){}",
                            at_byte,
                            digest.hex(),
                            if offset > 0 {
                                "; the partial file was not the start of this file"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                shared.sessions.give(addr, s, name);
                return Ok(Reply::End { bytes, sha256 });
            }
            Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
            _ => return Err(unexpected(&at)),
        }
    }
}

/// Data frames between two looks at whether the command is still there
/// (4 MiB).
const CLIENT_CHECK: u64 = 16;

/// Whether the command closed its end: it sends nothing after its request,
/// so anything to read, or a hang-up, means it is gone (interrupted).
pub(super) fn client_gone(out: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: out.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one pollfd we own, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents != 0
}

/// Hashes the first `len` bytes of `file` into `h`.
pub(super) fn rehash(file: &File, len: u64, h: &mut Hasher) -> Result<(), Error> {
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        let want = (len - at).min(CHUNK as u64) as usize;
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(failed(ErrorCode::Changed, "the partial file shrank"));
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

pub(super) fn unexpected(at: &str) -> Error {
    failed(
        ErrorCode::Internal,
        format!("the member{at} answered the transfer with something unexpected"),
    )
}

/// Serves a local `list`: the entries, as the member sends them.
pub fn serve_local_list(req: LocalList, out: UnixStream, caller: &Caller, shared: &Arc<Shared>) {
    if let Err(error) = local_list(&req, &out, caller, shared) {
        let _ = line(&out, &Reply::Failed { error });
    }
}

fn local_list(
    req: &LocalList,
    out: &UnixStream,
    caller: &Caller,
    shared: &Arc<Shared>,
) -> Result<(), Error> {
    let timeout = timeout_of(req.timeout_ms);
    let (addr, at) = member_addr(shared, caller, &req.peer, req.timeout_ms)?;
    let mut s: Session<Conn> = fanout::dial(shared, &at, addr, timeout)?;
    let broken = |e| fanout::session_failed(&at, e, timeout);
    s.send(&peer::encode(&PeerRequest::List(List {
        path: req.path.clone(),
    })))
    .map_err(broken)?;
    let mut entries = 0usize;
    loop {
        let frame = s.recv(peer::MAX_FRAME).map_err(broken)?;
        match transfer::decode(&frame) {
            Ok(Frame::Reply(r @ Reply::Entries { .. })) => {
                if let Reply::Entries { entries: e } = &r {
                    entries += e.len();
                }
                if entries > MAX_ENTRIES {
                    return Err(unexpected(&at));
                }
                line(out, &r).map_err(|e| Error::from_io(&e))?;
            }
            Ok(Frame::Reply(r @ Reply::Listed { .. })) => {
                line(out, &r).map_err(|e| Error::from_io(&e))?;
                return Ok(());
            }
            Ok(Frame::Reply(Reply::Failed { error })) => return Err(error),
            _ => return Err(unexpected(&at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_lists_a_tree_depth_first_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("a"), b"12").unwrap();
        std::fs::write(root.join("b/c/d"), b"1").unwrap();
        std::fs::write(root.join("b/e"), b"").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("b/l")).unwrap();
        let dir = File::open(root).unwrap();
        let mut seen = Vec::new();
        walk(OwnedFd::from(dir), &mut |e| {
            seen.push((String::from_utf8(e.path.0).unwrap(), e.kind, e.size));
            Ok(())
        })
        .unwrap();
        let want = [
            ("a", Kind::File, 2),
            ("b", Kind::Dir, 0),
            ("b/c", Kind::Dir, 0),
            ("b/e", Kind::File, 0),
            ("b/l", Kind::Symlink, 0),
            ("b/c/d", Kind::File, 1),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(p, k, s)| (p.to_string(), *k, *s))
            .collect();
        assert_eq!(seen, want);
    }
}
