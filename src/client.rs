//! What every command shares: finding and reaching the daemon, reading the
//! list of paths, streaming items with their descriptors, and putting the
//! results back in the order the paths were given.
//!
//! Paths given as arguments or listed in a regular file are handled by the
//! calling thread alone: it opens each path with the caller's rights and
//! sends it with its descriptor while the window has room, reads and prints
//! the results in between, and waits in one `poll` when it can do neither
//! (sends never block, so a full socket either way cannot stall it). A list
//! read from a pipe or a terminal may keep us waiting for its next name, so
//! there three threads share the work: a sender, a receiver, and the calling
//! thread that reorders and prints. Either way a bounded window of unanswered
//! items keeps the descriptors in flight (and the reorder buffer) small,
//! whatever the list's size.
//!
//! A query on this host does not wait for the daemon's acceptance before its
//! items: the request and the first items travel together (the socket was
//! trusted before anything was sent), and the acceptance, or the refusal, is
//! the first line read back.

use crate::cli::{Connection, Input};
use crate::error::{Error, ErrorCode};
use crate::fdpass::{self, LineReader};
use crate::input::{Entry, Names, Stdin};
use crate::ops::count::{DirCounts, LISTED_ON_WIRE, count_dir};
use crate::output::{EXIT_UNREACHABLE, EXIT_USAGE, Printer};
use crate::paths::{self, FindError};
use crate::proto::{
    self, Accepted, Item, ItemRequest, Outcome, PathBytes, Query, QueryKind, Request,
    RequestFailed, Summary,
};
use crate::trust::{self, TrustError};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{TryRecvError, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// Unanswered items allowed in flight.
const WINDOW: usize = 256;

/// Items (and descriptors) sent in one `sendmsg`.
const BATCH: usize = 64;

/// A failure that ends a command before or instead of its items.
#[derive(Debug)]
pub struct Fatal {
    pub status: i32,
    pub message: String,
}

impl Fatal {
    fn usage(message: impl Into<String>) -> Fatal {
        Fatal {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }
}

/// Connects to the daemon the user chose, or the one we find, once
/// [`trust`] says it may have our descriptors; nothing has been sent yet.
/// [`trust::daemon_uid`] tells who it runs as.
pub fn connect(conn: &Connection) -> Result<UnixStream, Fatal> {
    let path = match &conn.socket {
        Some(p) => p.clone(),
        None => match paths::find_socket() {
            Ok(p) => p,
            Err(FindError::NoneRunning(dirs)) => {
                let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                return Err(Fatal {
                    status: EXIT_UNREACHABLE,
                    message: format!(
                        "no p2pd is running (no socket in {}); start one with `p2pd &` \
                         (or `systemctl start p2pd`), or name its socket with --socket or P2P_SOCKET",
                        looked.join(" or ")
                    ),
                });
            }
            Err(FindError::Ambiguous(found)) => {
                let names: Vec<String> = found.iter().map(|d| d.display().to_string()).collect();
                return Err(Fatal::usage(format!(
                    "several p2pd are running ({}); choose one with --socket or P2P_SOCKET",
                    names.join(", ")
                )));
            }
        },
    };
    trust::connect(&path).map_err(|e| Fatal {
        status: EXIT_UNREACHABLE,
        message: match e {
            TrustError::Io(e) => format!(
                "cannot reach p2pd at {}: {}; start it with `p2pd &` (or `systemctl start p2pd`)",
                path.display(),
                Error::from_io(&e).message
            ),
            refused => format!("refusing to use {}: {refused}", path.display()),
        },
    })
}

/// Where paths come from: the command line or a list file, each name
/// resolved by [`Names`] (`-` and no operand may mean standard input).
pub enum PathSource {
    Args(std::vec::IntoIter<PathBuf>, Names),
    List {
        /// The list is a regular file: reading it never waits for a writer.
        regular: bool,
        reader: BufReader<Box<dyn Read + Send>>,
        sep: u8,
        names: Names,
    },
    /// Another source, less the paths an earlier run answered
    /// (`--resume`), counting what it gives for the progress line.
    Watched(Box<PathSource>, Watch),
}

/// What a [`PathSource::Watched`] leaves out and counts.
#[derive(Default)]
pub struct Watch {
    /// Paths to skip: they have a good line already.
    pub done: Option<crate::resume::Done>,
    /// Where the paths read (and skipped) are counted.
    pub listed: Option<Arc<crate::progress::Listed>>,
}

impl PathSource {
    /// From the command's input flags, with `stdin` the command's rules for
    /// standard input; `cluster` when the query runs on other members, which
    /// cannot read our standard input.
    pub fn from_input(input: &Input, stdin: Stdin, cluster: bool) -> Result<PathSource, Fatal> {
        let list = match (&input.files_from, &input.files0_from) {
            (Some(file), _) => Some((file, input.null, "--files-from")),
            (None, Some(file)) => Some((file, true, "--files0-from")),
            (None, None) => None,
        };
        let Some((file, nul, flag)) = list else {
            let paths = match (input.paths.is_empty(), stdin.implicit) {
                (false, _) => input.paths.clone(),
                (true, Some(_)) => Vec::new(),
                (true, None) => {
                    return Err(Fatal::usage(
                        "no paths given: name them as arguments or with --files-from FILE (- for stdin)",
                    ));
                }
            };
            let names_stdin = |p: &PathBuf| stdin.dash && p.as_os_str() == "-";
            if cluster && (paths.is_empty() || paths.iter().any(names_stdin)) {
                return Err(Fatal::usage(STDIN_ON_MEMBERS));
            }
            return Ok(PathSource::Args(paths.into_iter(), Names::operands(stdin)));
        };
        if let Some(extra) = input.paths.first() {
            return Err(Fatal::usage(if flag == "--files0-from" {
                format!(
                    "extra operand '{}'\nfile operands cannot be combined with --files0-from",
                    extra.display()
                )
            } else {
                "give paths as arguments or with --files-from, not both".to_string()
            }));
        }
        let regular;
        let r: Box<dyn Read + Send> = if file.as_os_str() == "-" {
            regular = is_regular(io::stdin().as_fd());
            Box::new(io::stdin())
        } else {
            let list = File::open(file).map_err(|e| match flag {
                // GNU wc's words and status.
                "--files0-from" => Fatal {
                    status: crate::output::EXIT_FAILED,
                    message: format!(
                        "cannot open '{}' for reading: {}",
                        file.display(),
                        Error::from_io(&e).message
                    ),
                },
                _ => Fatal::usage(format!(
                    "{flag} {}: {}",
                    file.display(),
                    Error::from_io(&e).message
                )),
            })?;
            regular = is_regular(list.as_fd());
            Box::new(list)
        };
        Ok(PathSource::List {
            regular,
            reader: BufReader::with_capacity(64 * 1024, r),
            sep: if nul { 0 } else { b'\n' },
            names: Names::list(stdin, file, !nul),
        })
    }

    /// This source, less what `watch` skips, counted as `watch` says.
    pub fn watched(self, watch: Watch) -> PathSource {
        if watch.done.is_none() && watch.listed.is_none() {
            return self;
        }
        PathSource::Watched(Box::new(self), watch)
    }

    /// A fixed list of paths, each a file (never standard input).
    pub fn paths(paths: Vec<PathBuf>) -> PathSource {
        PathSource::Args(paths.into_iter(), Names::operands(Stdin::COUNT))
    }

    fn next_path(&mut self) -> Option<io::Result<Entry>> {
        match self {
            PathSource::Args(it, names) => {
                if let Some(p) = it.next() {
                    return names.entry(p).map(Ok);
                }
                names.implicit_stdin().map(Ok)
            }
            PathSource::List {
                reader, sep, names, ..
            } => loop {
                let mut buf = Vec::new();
                match reader.read_until(*sep, &mut buf) {
                    Ok(0) => return None,
                    Ok(_) => {
                        if buf.last() == Some(sep) {
                            buf.pop();
                        }
                        use std::os::unix::ffi::OsStringExt;
                        let name = PathBuf::from(std::ffi::OsString::from_vec(buf));
                        if let Some(entry) = names.entry(name) {
                            return Some(Ok(entry));
                        }
                    }
                    Err(e) => return Some(Err(e)),
                }
            },
            PathSource::Watched(inner, watch) => loop {
                let next = inner.next_path();
                let done = match &next {
                    Some(Ok(entry @ Entry::Path(_))) => watch
                        .done
                        .as_ref()
                        .is_some_and(|d| d.has(entry.shown().as_bytes())),
                    _ => false,
                };
                if let Some(listed) = &watch.listed {
                    listed.saw(next.is_some(), done);
                }
                if !done {
                    return next;
                }
            },
        }
    }

    /// True when getting the next path may wait for somebody else (a list
    /// read from a pipe or a terminal), so the sender needs a thread of
    /// its own; arguments and a list in a regular file are always at hand.
    fn may_wait(&self) -> bool {
        match self {
            PathSource::Args(..) => false,
            PathSource::List { regular, .. } => !regular,
            PathSource::Watched(inner, _) => inner.may_wait(),
        }
    }

    /// True when the next path may take a while to come (a pipe not yet
    /// written), so what is batched should be sent now.
    fn may_block(&self) -> bool {
        match self {
            PathSource::Args(..) => false,
            PathSource::List { reader, .. } => reader.buffer().is_empty(),
            PathSource::Watched(inner, _) => inner.may_block(),
        }
    }
}

/// True when `fd` is a regular file.
fn is_regular(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// Why standard input cannot go with `--peer`, `--all` or `--spread`.
const STDIN_ON_MEMBERS: &str = "standard input cannot be read by other members: \
     name files they can read, or drop --peer, --all and --spread";

/// What the printing thread hears.
enum Event<T> {
    /// The daemon took the request; its results carry this name.
    Accepted(String),
    /// The daemon refused the request, or could not be talked to.
    Fatal(Fatal),
    Result(Item<T>),
    /// A path sent to the daemon, remembered in case no answer comes.
    Queued(u64, PathBytes),
    /// A path the sender could not open or send (its `peer` is filled in
    /// once the daemon has said its name).
    Local(Item<T>),
    /// The sender is done; this many items were numbered.
    Sent(u64),
    /// The list of paths could not be read.
    ListError(String),
    /// The daemon sent its summary or went away.
    Finished,
    Refused(Error),
}

/// An answer a command gives itself for one path of a query on this host,
/// in its own process and so with all of the caller's rights (a symlink that
/// `p2p-stat` describes, a tree that `p2p-count` walks); `None` sends the
/// path to the daemon as usual.
pub type Here<T> = Arc<dyn Fn(&Path) -> Option<Result<T, Error>> + Send + Sync>;

/// Runs one query over every path of `source`, calling `print` for each
/// result in the order the paths were given. Returns once all are printed.
///
/// `render` prints one item through `printer`; the printer is flushed
/// whenever no further result is ready, so output streams.
pub fn run_query<T>(
    conn: &Connection,
    query: Query,
    source: PathSource,
    printer: &mut Printer,
    render: &mut dyn FnMut(&mut Printer, Item<T>),
) -> Result<(), Fatal>
where
    T: DeserializeOwned + Send + 'static,
{
    run_query_here(conn, query, source, printer, render, None)
}

/// [`run_query`], with `here` answering the paths it takes on itself when
/// the query runs on this host (it is not asked for placements elsewhere).
pub fn run_query_here<T>(
    conn: &Connection,
    query: Query,
    source: PathSource,
    printer: &mut Printer,
    render: &mut dyn FnMut(&mut Printer, Item<T>),
    here: Option<Here<T>>,
) -> Result<(), Fatal>
where
    T: DeserializeOwned + Send + 'static,
{
    let stream = connect(conn)?;
    let cwd = std::env::current_dir().ok().map(PathBytes::from);
    let header_is_cluster = query.target.is_some();
    let count = (query.kind == QueryKind::Count).then_some(query.recursive);
    let header = Request::Query(Query { cwd, ..query });
    let unreachable = |e: io::Error| Fatal {
        status: EXIT_UNREACHABLE,
        message: format!("cannot talk to p2pd: {e}"),
    };
    let mut line = serde_json::to_vec(&header).map_err(|e| Fatal::usage(e.to_string()))?;
    line.push(b'\n');
    let mut reader = LineReader::new(stream.try_clone().map_err(unreachable)?, proto::MAX_LINE, 0);
    if !header_is_cluster {
        return run_local(stream, line, reader, source, printer, render, here);
    }
    fdpass::send_with_fds(&stream, &line, &[]).map_err(unreachable)?;
    let first = reader
        .next_line()
        .map_err(unreachable)?
        .ok_or_else(|| unreachable(io::Error::other("the daemon closed the connection")))?;
    accepted(&first)?;
    run_cluster(stream, reader, source, printer, render, count)
}

/// The daemon's name from the first reply line, or why it refused the request.
fn accepted(first: &[u8]) -> Result<String, Fatal> {
    match serde_json::from_slice::<Accepted>(first) {
        Ok(a) => Ok(a.peer),
        Err(_) => {
            let why = serde_json::from_slice::<RequestFailed>(first)
                .map(|r| r.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(first).into_owned());
            Err(Fatal {
                status: crate::output::EXIT_FAILED,
                message: format!("p2pd refused the request: {why}"),
            })
        }
    }
}

/// A query on this host: `header` (the request line) goes with the first
/// items, and every path with our descriptor of it.
fn run_local<T>(
    stream: UnixStream,
    header: Vec<u8>,
    reader: LineReader,
    source: PathSource,
    printer: &mut Printer,
    render: &mut dyn FnMut(&mut Printer, Item<T>),
    here: Option<Here<T>>,
) -> Result<(), Fatal>
where
    T: DeserializeOwned + Send + 'static,
{
    let mut order = Reorder::new(printer, render);
    if !source.may_wait() {
        run_inline(stream, header, reader, source, &mut order, here.as_ref());
        return order.finish();
    }
    // Events travel in batches (what one sendmsg carried, what one read
    // brought), so the three threads wake each other once per batch, not
    // once per file.
    let window = Arc::new(Window::default());
    let (events_tx, events_rx) = channel::<Vec<Event<T>>>();
    let tx = events_tx.clone();
    let credits = Arc::clone(&window);
    let receiver =
        thread::spawn(move || receive(reader, &mut |evs| tx.send(evs).is_err(), &credits));
    let sender = thread::spawn(move || {
        send_items(
            stream,
            header,
            source,
            &mut |evs| events_tx.send(evs).is_err(),
            &window,
            here.as_ref(),
        )
    });
    'events: loop {
        let evs = match events_rx.try_recv() {
            Ok(evs) => evs,
            Err(TryRecvError::Empty) => {
                order.idle();
                match events_rx.recv() {
                    Ok(evs) => evs,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        for ev in evs {
            if order.push(ev) {
                break 'events;
            }
        }
    }
    let result = order.finish();
    let _ = sender.join();
    let _ = receiver.join();
    result
}

/// [`run_local`] for a source whose next path is always at hand (arguments,
/// a list in a regular file): one thread opens and sends while there is
/// room in the window, reads and prints what has come back, and waits only
/// when it can do neither. Sends never block (a full socket buffer is waited
/// out in the same `poll` as the replies), so neither side can stall the
/// other whatever the length of the names.
fn run_inline<T: DeserializeOwned>(
    stream: UnixStream,
    header: Vec<u8>,
    mut reader: LineReader,
    source: PathSource,
    order: &mut Reorder<'_, T>,
    here: Option<&Here<T>>,
) {
    let mut feeder = Feeder::new(source, here);
    // What goes out next: `out[sent..]`, with `files` attached to its first
    // byte until that is sent.
    let mut out = header;
    let mut sent = 0;
    let mut files: Vec<File> = Vec::with_capacity(BATCH);
    let mut pending: Vec<Event<T>> = Vec::new();
    let mut in_flight = 0usize;
    let mut fed = false;
    let mut sending = true;
    let mut replies = Replies::default();
    loop {
        // Every reply already read.
        while reader.has_line() || (reader.at_end() && !replies.over) {
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => {
                    replies.lost(None, &mut pending);
                    break;
                }
                Err(e) => {
                    replies.lost(Some(e), &mut pending);
                    break;
                }
            };
            in_flight = in_flight.saturating_sub(replies.take(&line, &mut pending));
            if replies.over {
                break;
            }
        }
        for ev in pending.drain(..) {
            if order.push(ev) {
                return;
            }
        }
        if replies.over {
            if !fed {
                // Refused, or the daemon went away: what was not sent is
                // not answered.
                order.push(Event::Sent(feeder.id));
            }
            order.push(Event::Finished);
            return;
        }
        // The next batch, once the last one is out (the first goes with the
        // request line; one the socket took nothing of grows, up to BATCH).
        if sending && !fed && (sent == 0 || sent == out.len()) {
            if sent > 0 {
                out.clear();
                sent = 0;
            }
            let before = files.len();
            while files.len() < BATCH
                && pending.len() < BATCH
                && in_flight + files.len() - before < WINDOW
            {
                if !feeder.next(&mut out, &mut files, &mut pending, &mut || true) {
                    out.extend_from_slice(b"{\"end\":true}\n");
                    pending.push(Event::Sent(feeder.id));
                    fed = true;
                    break;
                }
            }
            in_flight += files.len() - before;
            // Each path is known before its answer can come.
            for ev in pending.drain(..) {
                if order.push(ev) {
                    return;
                }
            }
        }
        let mut blocked = false;
        if sending && sent < out.len() {
            let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
            let attach = if sent == 0 { &fds[..] } else { &[] };
            match fdpass::send_some(&stream, &out[sent..], attach) {
                Ok(n) => {
                    sent += n;
                    // The descriptors travel with the first byte: ours can go.
                    fdpass::close_all(std::mem::take(&mut files));
                    if sent == out.len() && fed {
                        sending = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked = true,
                Err(_) => {
                    // The daemon is gone; its replies, if any, tell the rest.
                    sending = false;
                    if !fed {
                        fed = true;
                        order.push(Event::Sent(feeder.id));
                    }
                }
            }
        }
        let can_send = sending && (sent < out.len() || (!fed && in_flight < WINDOW));
        if can_send && !blocked {
            // More to send: take the replies that are here, do not wait.
            if wait(&reader, false, 0) {
                if let Err(e) = reader.read_more() {
                    replies.lost(Some(e), &mut pending);
                }
            }
            continue;
        }
        order.idle();
        if wait(&reader, blocked, -1) {
            if let Err(e) = reader.read_more() {
                replies.lost(Some(e), &mut pending);
            }
        }
    }
}

/// Waits up to `timeout` ms (-1: for ever) until replies can be read, or
/// (`out`) the socket takes more; true when replies can be read. If
/// meanwhile our standard output turns out to be a pipe nobody reads any
/// more, ends the command as SIGPIPE would (see [`await_reply`]).
fn wait(reader: &LineReader, out: bool, timeout: i32) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: reader.socket().as_raw_fd(),
            events: libc::POLLIN | if out { libc::POLLOUT } else { 0 },
            revents: 0,
        },
        libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        },
    ];
    let n = loop {
        // SAFETY: two pollfds, valid for the call; descriptor 1 is only polled.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n > 0 && fds[1].revents & libc::POLLERR != 0 && fds[0].revents == 0 {
        // SAFETY: raising a signal has no preconditions; SIGPIPE has its
        // default action (quiet_on_closed_pipe), which ends the process.
        unsafe {
            libc::raise(libc::SIGPIPE);
        }
    }
    n > 0 && fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// A query that runs on other members: paths travel as bytes (the members
/// open them below their exports), and results print as they arrive, from
/// whichever member answers first. When the daemon runs as another user,
/// each path also goes with our own descriptor of it, opened with our
/// rights: that daemon's node answers us only about files we can open. For
/// a directory count (`count`: whether recursive), the counts we take
/// ourselves on that descriptor go with it, and are that node's answer.
fn run_cluster<T>(
    stream: UnixStream,
    mut reader: LineReader,
    mut source: PathSource,
    printer: &mut Printer,
    render: &mut dyn FnMut(&mut Printer, Item<T>),
    count: Option<bool>,
) -> Result<(), Fatal>
where
    T: DeserializeOwned + Send + 'static,
{
    // Paths are written by a thread of their own: the daemon stops reading
    // them while its queue is full, and only our reading results lets it go on.
    // Paths not yet answered are remembered, to report them if the daemon dies.
    let unanswered = Arc::new(Mutex::new(BTreeMap::<u64, PathBytes>::new()));
    let pending = Arc::clone(&unanswered);
    let pass_files = daemon_is_another_user(&stream);
    // Names that cannot be sent (empty ones) are reported here at the end.
    let invalid_names = Arc::new(Mutex::new(Vec::<Error>::new()));
    let invalid = Arc::clone(&invalid_names);
    let sender = thread::spawn(move || -> Result<(), String> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut files: Vec<File> = Vec::new();
        let send = |buf: &mut Vec<u8>, files: &mut Vec<File>| {
            let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
            let ok = fdpass::send_with_fds(&stream, buf, &fds).is_ok();
            buf.clear();
            files.clear();
            ok
        };
        let mut id = 0u64;
        while let Some(entry) = source.next_path() {
            let entry = entry.map_err(|e| format!("reading the list of paths: {e}"))?;
            match &entry {
                Entry::Path(_) => {}
                Entry::Stdin(_) => return Err(STDIN_ON_MEMBERS.to_string()),
                Entry::Invalid(_) => {
                    if let (Err(e), Ok(mut v)) = (entry.open(), invalid.lock()) {
                        v.push(e);
                    }
                    continue;
                }
            }
            // A path we cannot open still goes: other members answer by their exports.
            let file = pass_files.then(|| entry.open().ok()).flatten();
            let counted = match (&file, count) {
                (Some(f), Some(recursive)) => Some(counted_here(f, recursive)),
                _ => None,
            };
            let item = ItemRequest {
                id,
                path: entry.shown(),
                fd: file.is_some(),
                // The other members go by the path; this one's answer, if
                // any, is from the descriptor as it is.
                own: false,
                counted,
            };
            item.write_line(&mut buf).map_err(|e| e.to_string())?;
            files.extend(file);
            if let Ok(mut p) = pending.lock() {
                p.insert(id, item.path);
            }
            id += 1;
            if (buf.len() >= 60 * 1024 || files.len() >= BATCH || source.may_block())
                && !send(&mut buf, &mut files)
            {
                return Ok(());
            }
        }
        buf.extend_from_slice(b"{\"end\":true}\n");
        send(&mut buf, &mut files);
        Ok(())
    });
    let mut fatal = None;
    let mut complete = false;
    loop {
        if !reader.has_line() {
            printer.flush();
        }
        await_reply(&reader);
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => break,
        };
        if let Ok(item) = Item::<T>::from_line(&line) {
            if let (Some(id), Ok(mut p)) = (item.id, unanswered.lock()) {
                p.remove(&id);
            }
            render(printer, Item { id: None, ..item });
        } else if serde_json::from_slice::<Summary>(&line).is_ok() {
            complete = true;
            break;
        } else {
            let why = serde_json::from_slice::<RequestFailed>(&line)
                .map(|r| r.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&line).into_owned());
            fatal = Some(Fatal {
                status: crate::output::EXIT_FAILED,
                message: format!("p2pd refused the request: {why}"),
            });
            break;
        }
    }
    // Shutting the socket stops a sender still writing to a daemon that quit.
    let _ = reader.shutdown();
    if let Ok(Err(msg)) = sender.join() {
        return Err(Fatal::usage(msg));
    }
    let invalid = std::mem::take(&mut *invalid_names.lock().unwrap_or_else(|p| p.into_inner()));
    for error in invalid {
        render(
            printer,
            Item {
                id: None,
                peer: String::new(),
                path: PathBytes::default(),
                outcome: Outcome::Failed { error },
            },
        );
    }
    if !complete && fatal.is_none() {
        // The daemon went away: every path nobody answered gets its line.
        let left = std::mem::take(&mut *unanswered.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, path) in left {
            render(
                printer,
                Item {
                    id: None,
                    peer: String::new(),
                    path,
                    outcome: Outcome::Failed {
                        error: closed_error(),
                    },
                },
            );
        }
    }
    match fatal {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The counts of the directory open as `dir`, walked in this process with
/// our own rights, or why there are none.
fn counted_here(dir: &File, recursive: bool) -> Outcome<DirCounts> {
    let counted = dir
        .try_clone()
        .map_err(|e| Error::from_io(&e))
        .and_then(|fd| count_dir(fd.into(), recursive, LISTED_ON_WIRE));
    match counted {
        Ok(c) => Outcome::Ok(c),
        Err(error) => Outcome::Failed { error },
    }
}

/// True when the daemon on `stream` runs as another user than we do and we
/// are not root: it could read what we cannot, so it gets our descriptors.
fn daemon_is_another_user(stream: &UnixStream) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    me != 0 && crate::trust::daemon_uid(stream).map_or(true, |uid| uid != me)
}

/// How many items may be unanswered at once: the sender takes a credit per
/// item sent, the receiver gives them back as answers come. A plain counter
/// under a lock, so neither side makes a system call unless the sender
/// really has to wait.
#[derive(Default)]
struct Window {
    state: Mutex<WindowState>,
    freed: Condvar,
}

#[derive(Default)]
struct WindowState {
    in_flight: usize,
    sender_waiting: bool,
    closed: bool,
}

impl Window {
    /// Takes one credit, waiting while the window is full; false once the
    /// receiver has stopped (the daemon went away).
    fn take(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.in_flight >= WINDOW && !st.closed {
            st.sender_waiting = true;
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.sender_waiting = false;
        st.in_flight += 1;
        !st.closed
    }

    fn give(&self, n: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_flight = st.in_flight.saturating_sub(n);
        if st.sender_waiting {
            self.freed.notify_one();
        }
    }

    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        self.freed.notify_one();
    }
}

/// Turns the paths of a source into item lines, each with the descriptor
/// we opened for it, numbering them as it goes.
struct Feeder<'h, T> {
    source: PathSource,
    here: Option<&'h Here<T>>,
    /// The next item's number.
    id: u64,
}

impl<'h, T> Feeder<'h, T> {
    fn new(source: PathSource, here: Option<&'h Here<T>>) -> Self {
        Feeder {
            source,
            here,
            id: 0,
        }
    }

    /// Takes the next path: its item line goes into `batch` and its
    /// descriptor into `files` (after `take` has given a credit for it), or
    /// what became of it into `pending` (answered here, not opened). False
    /// once there is nothing more to send: the list is over or unreadable,
    /// or `take` said the daemon is gone.
    fn next(
        &mut self,
        batch: &mut Vec<u8>,
        files: &mut Vec<File>,
        pending: &mut Vec<Event<T>>,
        take: &mut dyn FnMut() -> bool,
    ) -> bool {
        let id = self.id;
        let entry = match self.source.next_path() {
            None => return false,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                pending.push(Event::ListError(format!("reading the list of paths: {e}")));
                return false;
            }
        };
        let shown = entry.shown();
        let answered = match (&entry, self.here) {
            (Entry::Path(path), Some(h)) => h(path),
            _ => None,
        };
        self.id += 1;
        if let Some(answer) = answered {
            let outcome = match answer {
                Ok(fields) => Outcome::Ok(fields),
                Err(error) => Outcome::Failed { error },
            };
            pending.push(Event::Local(Item {
                id: Some(id),
                peer: String::new(),
                path: shown,
                outcome,
            }));
            return true;
        }
        // A name is opened here for its item alone; standard input is
        // shared, and read from its offset.
        let own = matches!(entry, Entry::Path(_));
        let file = match entry.open() {
            Ok(file) => file,
            Err(e) => {
                pending.push(Event::Local(failed_item(id, "", shown, e)));
                return true;
            }
        };
        if !take() {
            // The receiver is gone: the daemon closed the connection.
            pending.push(Event::Local(failed_item(id, "", shown, closed_error())));
            return false;
        }
        let item = ItemRequest {
            id,
            path: shown,
            fd: true,
            own,
            counted: None,
        };
        if item.write_line(batch).is_err() {
            self.id = id;
            return false;
        }
        pending.push(Event::Queued(id, item.path));
        files.push(file);
        true
    }
}

/// Sends `header`, then opens and sends every path of `source`, with its
/// descriptor. `events` gets what happened in batches, each before the
/// items it names reach the daemon (so a path is always known before its
/// answer); it returns true when nobody listens any more.
fn send_items<T>(
    stream: UnixStream,
    header: Vec<u8>,
    source: PathSource,
    events: &mut dyn FnMut(Vec<Event<T>>) -> bool,
    window: &Window,
    here: Option<&Here<T>>,
) {
    let mut feeder = Feeder::new(source, here);
    let mut batch = header;
    batch.reserve(BATCH * 64);
    let mut files: Vec<File> = Vec::with_capacity(BATCH);
    let mut pending: Vec<Event<T>> = Vec::new();
    let mut alive = true;
    let mut flush = |batch: &mut Vec<u8>, files: &mut Vec<File>, pending: &mut Vec<Event<T>>| {
        if !pending.is_empty() && events(std::mem::take(pending)) {
            return false;
        }
        if batch.is_empty() {
            return true;
        }
        let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
        let ok = fdpass::send_with_fds(&stream, batch, &fds).is_ok();
        batch.clear();
        fdpass::close_all(std::mem::take(files));
        ok
    };
    let mut take = || window.take();
    while alive {
        if !feeder.next(&mut batch, &mut files, &mut pending, &mut take) {
            // Nothing more to send; what is batched still goes, with the end.
            break;
        }
        if files.len() >= BATCH || pending.len() >= BATCH || feeder.source.may_block() {
            alive = flush(&mut batch, &mut files, &mut pending);
        }
    }
    if alive {
        batch.extend_from_slice(b"{\"end\":true}\n");
        flush(&mut batch, &mut files, &mut pending);
    }
    pending.push(Event::Sent(feeder.id));
    events(pending);
}

/// What the replies of a query on this host have said so far, read line by
/// line into events.
#[derive(Default)]
struct Replies {
    /// The first line (the acceptance) has been read.
    accepted: bool,
    /// Nothing more will come: the summary, a refusal, or the end.
    over: bool,
}

impl Replies {
    /// Takes one reply line; returns how many items it answered (0 or 1).
    fn take<T: DeserializeOwned>(&mut self, line: &[u8], events: &mut Vec<Event<T>>) -> usize {
        if !self.accepted {
            self.accepted = true;
            match accepted(line) {
                Ok(peer) => events.push(Event::Accepted(peer)),
                Err(fatal) => {
                    events.push(Event::Fatal(fatal));
                    self.over = true;
                }
            }
            return 0;
        }
        if let Ok(item) = Item::<T>::from_line(line) {
            events.push(Event::Result(item));
            return 1;
        }
        // Not a result: the summary (the end), a refusal, or nonsense.
        self.over = true;
        if serde_json::from_slice::<Summary>(line).is_err() {
            let error = match serde_json::from_slice::<RequestFailed>(line) {
                Ok(refused) => refused.error,
                Err(_) => Error::new(
                    ErrorCode::Internal,
                    format!(
                        "unexpected reply from p2pd: {}",
                        String::from_utf8_lossy(line)
                    ),
                ),
            };
            events.push(Event::Refused(error));
        }
        0
    }

    /// The connection ended, or failed with `why`: before the acceptance,
    /// the daemon could not be talked to; after, what was not answered
    /// never will be.
    fn lost<T>(&mut self, why: Option<io::Error>, events: &mut Vec<Event<T>>) {
        if !self.accepted {
            let why = why.map_or_else(
                || "the daemon closed the connection".to_string(),
                |e| e.to_string(),
            );
            events.push(Event::Fatal(Fatal {
                status: EXIT_UNREACHABLE,
                message: format!("cannot talk to p2pd: {why}"),
            }));
        }
        self.accepted = true;
        self.over = true;
    }
}

/// Reads the acceptance, then replies until the summary; `events` gets
/// them in batches (what is already buffered) and returns true to stop early.
fn receive<T: DeserializeOwned>(
    mut reader: LineReader,
    events: &mut dyn FnMut(Vec<Event<T>>) -> bool,
    window: &Window,
) {
    let mut replies = Replies::default();
    let mut got: Vec<Event<T>> = Vec::new();
    loop {
        if replies.accepted {
            await_reply(&reader);
        }
        match reader.next_line() {
            Ok(Some(line)) => {
                replies.take(&line, &mut got);
            }
            Ok(None) => replies.lost(None, &mut got),
            Err(e) => replies.lost(Some(e), &mut got),
        }
        if replies.over {
            break;
        }
        if !reader.has_line() {
            window.give(got.len());
            if events(std::mem::take(&mut got)) {
                window.close();
                return;
            }
        }
    }
    // Closing the window unblocks a sender waiting on a dead daemon.
    window.close();
    got.push(Event::Finished);
    events(got);
}

/// Waits for the daemon's next reply; if meanwhile our standard output
/// turns out to be a pipe nobody reads any more, ends the command as
/// SIGPIPE would on the next write (`p2p-sha256 huge | head -c 0`): its
/// socket closes, and the daemon stops the query's work. Only a pipe
/// reports this (POLLERR); a terminal or a file never does.
fn await_reply(reader: &LineReader) {
    if !reader.has_line() {
        wait(reader, false, -1);
    }
}

fn closed_error() -> Error {
    Error::new(
        ErrorCode::Internal,
        "p2pd closed the connection before answering",
    )
}

/// Puts results back in the order the paths were given and prints them.
struct Reorder<'a, T> {
    /// The daemon's name, once it has accepted the request: nothing is
    /// printed before.
    peer: Option<String>,
    printer: &'a mut Printer,
    render: &'a mut dyn FnMut(&mut Printer, Item<T>),
    waiting: BTreeMap<u64, Item<T>>,
    paths: BTreeMap<u64, PathBytes>,
    next: u64,
    total: Option<u64>,
    finished: bool,
    fatal: Option<Fatal>,
}

impl<'a, T> Reorder<'a, T> {
    fn new(printer: &'a mut Printer, render: &'a mut dyn FnMut(&mut Printer, Item<T>)) -> Self {
        Reorder {
            peer: None,
            printer,
            render,
            waiting: BTreeMap::new(),
            paths: BTreeMap::new(),
            next: 0,
            total: None,
            finished: false,
            fatal: None,
        }
    }

    /// Takes one event; true once every item has been printed.
    fn push(&mut self, ev: Event<T>) -> bool {
        match ev {
            Event::Accepted(peer) => self.peer = Some(peer),
            Event::Fatal(f) => {
                // Refused before anything was answered: no item is printed.
                self.fatal = Some(f);
                return true;
            }
            Event::Result(item) | Event::Local(item) => {
                if let Some(id) = item.id {
                    self.paths.remove(&id);
                    let item = Item { id: None, ..item };
                    if self.peer.is_some() && id == self.next {
                        // The one printed next, as most are: no need to wait.
                        self.print_next(item);
                    } else {
                        self.waiting.insert(id, item);
                    }
                }
            }
            Event::Queued(id, path) => {
                self.paths.insert(id, path);
            }
            Event::Sent(n) => self.total = Some(n),
            Event::ListError(msg) => self.fatal = Some(Fatal::usage(msg)),
            Event::Finished => self.finished = true,
            Event::Refused(e) => {
                self.fatal = Some(Fatal {
                    status: crate::output::EXIT_FAILED,
                    message: format!("p2pd refused the request: {}", e.message),
                });
                self.finished = true;
            }
        }
        if self.peer.is_none() {
            return false;
        }
        while let Some(item) = self.waiting.remove(&self.next) {
            self.print_next(item);
        }
        let Some(n) = self.total else { return false };
        if self.next < n && self.finished {
            // Whatever is still missing will never come.
            while self.next < n {
                let id = self.next;
                let item = self.waiting.remove(&id).unwrap_or_else(|| {
                    let path = self.paths.remove(&id).unwrap_or_default();
                    Item {
                        id: None,
                        ..failed_item(id, "", path, closed_error())
                    }
                });
                self.print_next(item);
            }
        }
        self.next >= n
    }

    /// Prints `item` as the next one, under the daemon's name when it was
    /// answered here; only once that name is known.
    fn print_next(&mut self, mut item: Item<T>) {
        if item.peer.is_empty() {
            item.peer = self.peer.clone().unwrap_or_default();
        }
        (self.render)(self.printer, item);
        self.next += 1;
    }

    /// Nothing more is ready: make what was printed visible.
    fn idle(&mut self) {
        self.printer.flush();
    }

    fn finish(self) -> Result<(), Fatal> {
        match self.fatal {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

fn failed_item<T>(id: u64, peer: &str, path: PathBytes, error: Error) -> Item<T> {
    Item {
        id: Some(id),
        peer: peer.to_string(),
        path,
        outcome: Outcome::Failed { error },
    }
}

/// Sends a one-line request and returns a reader for the reply lines.
pub fn request(conn: &Connection, req: &Request) -> Result<LineReader, Fatal> {
    let stream = connect(conn)?;
    let mut line = serde_json::to_vec(req).map_err(|e| Fatal::usage(e.to_string()))?;
    line.push(b'\n');
    let unreachable = |e: io::Error| Fatal {
        status: EXIT_UNREACHABLE,
        message: format!("cannot talk to p2pd: {e}"),
    };
    fdpass::send_with_fds(&stream, &line, &[]).map_err(unreachable)?;
    Ok(LineReader::new(stream, proto::MAX_LINE, 0))
}

/// Sends a request that has one reply line and returns that line as `T`,
/// with the line itself and the reader (for what may follow). A refusal,
/// or a line that is no `T`, is an error that shows what the daemon said;
/// `hint` is added to it (say, that the daemon may be older).
pub fn one_reply<T: DeserializeOwned>(
    conn: &Connection,
    req: &Request,
    hint: &str,
) -> Result<(T, Vec<u8>, LineReader), Fatal> {
    let mut reader = request(conn, req)?;
    let line = reader.next_line().ok().flatten().ok_or_else(|| Fatal {
        status: crate::output::EXIT_FAILED,
        message: "p2pd closed the connection without answering".into(),
    })?;
    let refused = || {
        let why = serde_json::from_slice::<proto::RequestFailed>(&line)
            .map(|r| r.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&line).into_owned());
        Fatal {
            status: crate::output::EXIT_FAILED,
            message: format!("p2pd refused: {why}{hint}"),
        }
    };
    if serde_json::from_slice::<proto::RequestFailed>(&line).is_ok() {
        return Err(refused());
    }
    let reply = serde_json::from_slice(&line).map_err(|_| refused())?;
    Ok((reply, line, reader))
}
