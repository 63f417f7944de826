//! `p2p-get`: files from members, below their exports.
//!
//! This process, running as the user, creates every file it writes, in the
//! destination's directory, and passes its descriptor to the local daemon,
//! which fills it with what the member sends and says `end` only once the
//! SHA-256 of what arrived is the member's. Then the file is synced and
//! renamed into place, never over an existing file without `--force`
//! (`renameat2(RENAME_NOREPLACE)`), and the directory is synced. So the
//! daemon writes nowhere the user could not, and a destination is either
//! absent or whole.
//!
//! The temporary file is `.NAME.p2p-tmp.PID`, removed when the transfer
//! fails or the command is interrupted. With `--continue` it is
//! `NAME.p2p-partial` instead, which is kept, and which the next
//! `--continue` picks up: the daemon hashes again what it holds and asks
//! the member for the rest only.
//!
//! A file of this member itself is not asked of the daemon (which would
//! read with its own rights): this process copies it, with the user's
//! rights, as `cp` would, by the same rules (hashed, refused if it changes).

use crate::cli::{Format, GetCli, Job, Placement};
use crate::client::{self, Fatal};
use crate::error::{Error, ErrorCode};
use crate::fdpass::{self, LineReader};
use crate::membership::MemberState;
use crate::ops::sha::Hasher;
use crate::output::{EXIT_USAGE, Printer, quiet_on_closed_pipe};
use crate::progress::Progress;
use crate::proto::transfer::{
    Entry, Kind, LocalGet, LocalGetAny, LocalList, Reply, Served, Unused,
};
use crate::proto::{Item, Listed, Outcome, PathBytes, Request, Summary};
use serde::{Deserialize, Serialize};
use std::ffi::{CString, OsStr};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const NAME: &str = "p2p-get";

/// The suffix of the file `--continue` keeps and picks up.
pub const PARTIAL: &str = ".p2p-partial";

/// What a fetched file's line says besides `peer` and `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetFields {
    /// Where it was written, readable; `dest_b64` has the exact bytes when
    /// the name is not UTF-8 (as `path_b64`).
    pub dest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_b64: Option<String>,
    pub bytes: u64,
    pub sha256: String,
    /// `--any`: the members whose chunks were written, with their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<Served>>,
    /// `--any`: members that held the file but were not used (other
    /// content) or were dropped mid-way, with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused: Option<Vec<Unused>>,
}

/// What a fetch brought: the file's length and digest, and with `--any`
/// where it came from.
struct Got {
    bytes: u64,
    sha256: String,
    sources: Option<Vec<Served>>,
    unused: Option<Vec<Unused>>,
}

impl Got {
    fn plain((bytes, sha256): (u64, String)) -> Got {
        Got {
            bytes,
            sha256,
            sources: None,
            unused: None,
        }
    }
}

/// The label of an `--any` line before its sources are known.
const ANY: &str = "any";

/// One file to fetch.
struct Task {
    /// The member, by name.
    member: String,
    /// The path on the member.
    path: PathBytes,
    dest: PathBuf,
    /// Known already not to be askable (a down member).
    failed: Option<Error>,
    /// From several members (`--any`): `member` is [`ANY`] until the
    /// sources are known.
    any: bool,
}

/// Temporary files to remove if the command is interrupted.
static TEMPORARY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Runs `p2p-get`; returns the exit status.
pub fn run(cli: GetCli) -> i32 {
    quiet_on_closed_pipe();
    remove_temporary_on_signals();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let result = fetch_all(&cli, &mut printer);
    super::finish(NAME, result, &mut printer)
}

fn usage(message: impl Into<String>) -> Fatal {
    Fatal {
        status: EXIT_USAGE,
        message: message.into(),
    }
}

fn fetch_all(cli: &GetCli, printer: &mut Printer) -> Result<(), Fatal> {
    let members = members(cli)?;
    let me = members
        .iter()
        .find(|m| m.member.is_self)
        .map(|m| m.member.name.clone());
    let mode = crate::progress::mode(
        &Job {
            resume: None,
            progress: cli.progress,
            no_progress: cli.no_progress,
        },
        &Placement {
            all: true,
            ..Placement::default()
        },
    );
    let mut progress = mode.map(|m| Progress::start(m, 1));
    if let Some(aside) = progress.as_ref().and_then(Progress::aside) {
        printer.share_terminal(aside);
    }
    // Text lines stay sha256sum lines; messages name the member.
    printer.several_members(cli.all || cli.any, true);
    let tasks = tasks(cli, &members, printer)?;
    if let Some(p) = &progress {
        let listed = p.listed();
        for _ in &tasks {
            listed.saw(true, false);
        }
        listed.saw(false, false);
    }
    let is_self = |task: &Task| me.as_deref() == Some(task.member.as_str());
    if tasks.len() <= 1 {
        for task in &tasks {
            let outcome = match task.failed.clone() {
                Some(e) => Err(e),
                None => fetch(cli, task, is_self(task), &mut progress),
            };
            report(task, outcome, printer, &mut progress);
        }
    } else {
        // Several files (--all, -r): a few at once, each line printed as
        // its file ends.
        let next = AtomicUsize::new(0);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..FETCHES_AT_ONCE.min(tasks.len()) {
                let (done, next, tasks) = (done.clone(), &next, &tasks);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(task) = tasks.get(i) else {
                            return;
                        };
                        let outcome = match task.failed.clone() {
                            Some(e) => Err(e),
                            None => fetch(cli, task, is_self(task), &mut None),
                        };
                        if done.send((i, outcome)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done);
            for (i, outcome) in finished {
                report(&tasks[i], outcome, printer, &mut progress);
            }
        });
    }
    if let Some(p) = progress {
        p.finish();
    }
    Ok(())
}

/// Files fetched at once by --all and -r (a member serves at most
/// [`crate::daemon::fanout::LINKS_PER_MEMBER`] of them at a time anyway).
const FETCHES_AT_ONCE: usize = 4;

/// Prints the line of one file, and the messages about members `--any`
/// left out.
fn report(
    task: &Task,
    outcome: Result<GetFields, Error>,
    printer: &mut Printer,
    progress: &mut Option<Progress>,
) {
    let mut peer = task.member.clone();
    if let Ok(GetFields {
        sources: Some(sources),
        unused,
        ..
    }) = &outcome
    {
        let names: Vec<&str> = sources.iter().map(|s| s.peer.as_str()).collect();
        peer = crate::nodeset::fold(&names);
        for u in unused.iter().flatten() {
            printer.message(&u.peer, &task.path, &u.error.message);
        }
    }
    let item = Item {
        id: None,
        peer,
        path: task.path.clone(),
        outcome: match outcome {
            Ok(f) => Outcome::Ok(f),
            Err(error) => Outcome::Failed { error },
        },
    };
    if let Some(p) = progress.as_mut() {
        p.item(&item, |f: &GetFields| Some(f.bytes));
    }
    // As sha256sum writes a name with a backslash or a newline.
    printer.item(&item, &|f: &GetFields, _| {
        crate::checkfile::line(
            &f.sha256,
            task.dest.as_os_str().as_bytes(),
            crate::checkfile::LineStyle::default(),
        )
    });
    printer.flush();
}

/// The member list, as `p2p-peers` prints it.
fn members(cli: &GetCli) -> Result<Vec<Listed>, Fatal> {
    let mut reader = client::request(&cli.connection, &Request::Peers { watch: false })?;
    let mut out = Vec::new();
    while let Ok(Some(line)) = reader.next_line() {
        if let Ok(m) = serde_json::from_slice::<Listed>(&line) {
            out.push(m);
        } else if serde_json::from_slice::<Summary>(&line).is_ok() {
            return Ok(out);
        } else {
            break;
        }
    }
    Err(Fatal {
        status: crate::output::EXIT_FAILED,
        message: "p2pd did not list its members".into(),
    })
}

/// `MEMBER:/PATH` split at its first `:/` (names are often HOST:PORT).
fn split_source(source: &OsStr) -> Result<(String, PathBytes), Fatal> {
    let b = source.as_bytes();
    let at = b.windows(2).position(|w| w == b":/").ok_or_else(|| {
        usage(format!(
            "{}: expected MEMBER:/PATH, the path as it is on the member (absolute)",
            crate::quote::quote_str(b)
        ))
    })?;
    let member = std::str::from_utf8(&b[..at])
        .map_err(|_| usage("a member name is UTF-8"))?
        .to_string();
    if member.is_empty() {
        return Err(usage("MEMBER:/PATH names no member"));
    }
    Ok((member, PathBytes(b[at + 1..].to_vec())))
}

/// The last name of a path, ignoring trailing slashes.
fn base_name(path: &[u8]) -> Option<&[u8]> {
    path.split(|&c| c == b'/')
        .rev()
        .find(|n| !n.is_empty())
        .filter(|n| *n != b"." && *n != b"..")
}

/// A relative path that stays below where it is joined: no empty, `.` or
/// `..` component (a member's listing is not trusted).
fn below(rel: &[u8]) -> Option<PathBuf> {
    let ok = !rel.is_empty()
        && !rel.contains(&0)
        && rel
            .split(|&c| c == b'/')
            .all(|n| !n.is_empty() && n != b"." && n != b"..");
    ok.then(|| PathBuf::from(OsStr::from_bytes(rel)))
}

fn tasks(cli: &GetCli, members: &[Listed], printer: &mut Printer) -> Result<Vec<Task>, Fatal> {
    if !cli.tags.is_empty() && !cli.all && !cli.any {
        return Err(usage("--where goes with --all or --any"));
    }
    if cli.any {
        let path = PathBytes(cli.source.as_bytes().to_vec());
        let name = path
            .strip_prefix(b"/")
            .and_then(below)
            .and_then(|p| p.file_name().map(PathBuf::from))
            .ok_or_else(|| {
                usage("with --any, PATH is the absolute path of a file on the members (no . or ..)")
            })?;
        let dest = match &cli.dest {
            None => PathBuf::from(".").join(&name),
            Some(d) if d.is_dir() => d.join(&name),
            Some(d) => d.clone(),
        };
        return Ok(vec![Task {
            member: ANY.into(),
            path,
            dest,
            failed: None,
            any: true,
        }]);
    }
    if cli.all {
        let path = PathBytes(cli.source.as_bytes().to_vec());
        let Some(rel) = path.strip_prefix(b"/").and_then(below) else {
            return Err(usage(
                "with --all, PATH is the absolute path of a file on the members (no . or ..)",
            ));
        };
        let dir = cli
            .dest
            .clone()
            .ok_or_else(|| usage("--all needs DEST, the directory to collect into"))?;
        let mut tasks = Vec::new();
        for m in members.iter().map(|l| &l.member) {
            if m.state == MemberState::Left
                || !cli.tags.iter().all(|(k, v)| m.tags.get(k) == Some(v))
            {
                continue;
            }
            let mut failed = match m.state {
                MemberState::Alive | MemberState::Suspect => None,
                state => Some(Error::new(
                    ErrorCode::Unreachable,
                    format!("the member is {}", state.as_str()),
                )),
            };
            if below(m.name.as_bytes()).is_none_or(|p| p.components().count() != 1) {
                failed = Some(Error::new(
                    ErrorCode::InvalidRequest,
                    "the member's name cannot be a directory name",
                ));
            }
            tasks.push(Task {
                member: m.name.clone(),
                path: path.clone(),
                dest: dir.join(&m.name).join(&rel),
                failed,
                any: false,
            });
        }
        return Ok(tasks);
    }
    let (member, path) = split_source(&cli.source)?;
    let name = base_name(&path).map(|n| PathBuf::from(OsStr::from_bytes(n)));
    if cli.recursive {
        let dest = cli
            .dest
            .clone()
            .ok_or_else(|| usage("-r needs DEST, the directory to write the tree to"))?;
        // As cp -r: into an existing directory, else as DEST.
        let top = match (&name, dest.is_dir()) {
            (Some(n), true) => dest.join(n),
            _ => dest,
        };
        return tree(cli, &member, &path, &top, members, printer);
    }
    let Some(name) = name else {
        return Err(usage("SOURCE names no file"));
    };
    let dest = match &cli.dest {
        None => PathBuf::from(".").join(&name),
        Some(d) if d.is_dir() => d.join(&name),
        Some(d) => d.clone(),
    };
    Ok(vec![Task {
        member,
        path,
        dest,
        failed: None,
        any: false,
    }])
}

/// The files of the tree below `path` on `member`, the directories made.
fn tree(
    cli: &GetCli,
    member: &str,
    path: &PathBytes,
    top: &Path,
    members: &[Listed],
    printer: &mut Printer,
) -> Result<Vec<Task>, Fatal> {
    let is_self = members
        .iter()
        .any(|m| m.member.is_self && m.member.name == member);
    let entries = if is_self {
        local_tree(path)
    } else {
        remote_tree(cli, member, path)
    };
    let entries = match entries {
        Ok(e) => e,
        Err(error) => {
            // The listing's failure is the one line of the tree.
            return Ok(vec![Task {
                member: member.to_string(),
                path: path.clone(),
                dest: top.to_path_buf(),
                failed: Some(error),
                any: false,
            }]);
        }
    };
    make_dir(top).map_err(|e| Fatal {
        status: crate::output::EXIT_FAILED,
        message: format!("{}: {}", top.display(), Error::from_io(&e).message),
    })?;
    let mut tasks = Vec::new();
    for e in entries {
        let mut remote = path.0.clone();
        if !remote.ends_with(b"/") {
            remote.push(b'/');
        }
        remote.extend_from_slice(&e.path);
        let remote = PathBytes(remote);
        let Some(rel) = below(&e.path) else {
            printer.message(
                member,
                &remote,
                "skipped: the member listed a name that leaves the tree",
            );
            continue;
        };
        let dest = top.join(rel);
        match e.kind {
            Kind::Dir => {
                if let Err(err) = make_dir(&dest) {
                    tasks.push(Task {
                        member: member.to_string(),
                        path: remote,
                        dest,
                        failed: Some(Error::from_io(&err)),
                        any: false,
                    });
                }
            }
            Kind::File => tasks.push(Task {
                member: member.to_string(),
                path: remote,
                dest,
                failed: None,
                any: false,
            }),
            Kind::Symlink => printer.message(
                member,
                &remote,
                "skipped: a symlink (not followed, not made)",
            ),
            Kind::Other => {
                printer.message(member, &remote, "skipped: not a regular file or directory")
            }
        }
    }
    Ok(tasks)
}

/// Makes a directory of the tree, or takes one that is there; a symlink
/// there is refused (the tree's files would land where it points).
fn make_dir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
        }
        Err(e) => Err(e),
    }
}

fn remote_tree(cli: &GetCli, member: &str, path: &PathBytes) -> Result<Vec<Entry>, Error> {
    let req = Request::List(LocalList {
        peer: member.to_string(),
        path: path.clone(),
        timeout_ms: Some(timeout_ms(cli)),
    });
    let mut reader = client::request(&cli.connection, &req)
        .map_err(|f| Error::new(ErrorCode::Unreachable, f.message))?;
    let mut entries = Vec::new();
    loop {
        let line = reader.next_line().ok().flatten().ok_or_else(daemon_gone)?;
        match serde_json::from_slice::<Reply>(&line) {
            Ok(Reply::Entries { entries: e }) => entries.extend(e),
            Ok(Reply::Listed { .. }) => return Ok(entries),
            Ok(Reply::Failed { error }) => return Err(error),
            _ => return Err(refused(&line)),
        }
    }
}

/// This member's tree, walked by this process with the user's rights.
fn local_tree(path: &PathBytes) -> Result<Vec<Entry>, Error> {
    let dir = File::open(path.as_os_str())?;
    if !dir.metadata()?.is_dir() {
        return Err(Error::new(ErrorCode::NotADirectory, "not a directory"));
    }
    let mut entries = Vec::new();
    crate::daemon::transfer::walk(dir.into(), &mut |e| {
        entries.push(e);
        Ok(())
    })?;
    Ok(entries)
}

fn daemon_gone() -> Error {
    Error::new(
        ErrorCode::Internal,
        "p2pd closed the connection before the transfer ended",
    )
}

/// A line that is no reply: most likely a p2pd that predates p2p-get.
fn refused(line: &[u8]) -> Error {
    match serde_json::from_slice::<crate::proto::RequestFailed>(line) {
        Ok(r) => r.error,
        Err(_) => Error::new(
            ErrorCode::Internal,
            format!(
                "p2pd answered {} (is it older than p2p-get?)",
                crate::daemon::logging::untrusted(&String::from_utf8_lossy(line))
            ),
        ),
    }
}

fn timeout_ms(cli: &GetCli) -> u64 {
    (cli.timeout * 1000.0).round() as u64
}

/// The temporary file of `dest`, in its directory.
fn temporary(dest: &Path, resume: bool) -> Option<PathBuf> {
    let name = dest.file_name()?;
    let mut t = Vec::new();
    if resume {
        t.extend_from_slice(name.as_bytes());
        t.extend_from_slice(PARTIAL.as_bytes());
    } else {
        t.push(b'.');
        t.extend_from_slice(name.as_bytes());
        t.extend_from_slice(format!(".p2p-tmp.{}", std::process::id()).as_bytes());
    }
    Some(dest.with_file_name(OsStr::from_bytes(&t)))
}

/// Fetches one file into its destination.
fn fetch(
    cli: &GetCli,
    task: &Task,
    here: bool,
    progress: &mut Option<Progress>,
) -> Result<GetFields, Error> {
    let dest = &task.dest;
    let exists = |what: &str| {
        Error::new(
            ErrorCode::Exists,
            format!(
                "{} {what}; add -f to replace it",
                crate::quote::quote_str(dest.as_os_str().as_bytes())
            ),
        )
    };
    if !cli.force && std::fs::symlink_metadata(dest).is_ok() {
        return Err(exists("exists"));
    }
    if cli.all {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let temp = temporary(dest, cli.resume)
        .ok_or_else(|| Error::new(ErrorCode::InvalidRequest, "DEST names no file"))?;
    let file = open_temporary(&temp, cli.resume)?;
    if !cli.resume {
        remember(&temp, true);
    }
    let result = if task.any {
        ask_daemon_any(cli, task, &file, progress)
    } else if here {
        copy_here(&task.path, &file, cli.resume).map(Got::plain)
    } else {
        ask_daemon(cli, task, &file, progress).map(Got::plain)
    };
    let kept = match result {
        Ok(got) => place(&file, &temp, dest, cli.force).map(|()| got),
        Err(e) => Err(e),
    };
    match kept {
        Ok(got) => {
            remember(&temp, false);
            Ok(GetFields {
                dest: String::from_utf8_lossy(dest.as_os_str().as_bytes()).into_owned(),
                dest_b64: PathBytes::from(dest.as_path()).b64(),
                bytes: got.bytes,
                sha256: got.sha256,
                sources: got.sources,
                unused: got.unused,
            })
        }
        Err(mut e) => {
            let keep = cli.resume
                && !matches!(
                    e.code,
                    ErrorCode::Mismatch | ErrorCode::Changed | ErrorCode::Exists
                );
            if keep {
                e.message.push_str(&format!(
                    " (kept {}; p2p-get -c picks it up)",
                    crate::quote::quote_str(temp.as_os_str().as_bytes())
                ));
            } else {
                let _ = std::fs::remove_file(&temp);
            }
            remember(&temp, false);
            Err(e)
        }
    }
}

/// Creates the temporary file, or opens the partial one to pick it up; never
/// through a symlink.
fn open_temporary(temp: &Path, resume: bool) -> Result<File, Error> {
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if resume {
        o.create(true);
    } else {
        o.create_new(true);
    }
    let file = o.open(temp)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            format!("{} is not a regular file", temp.display()),
        ));
    }
    Ok(file)
}

fn remember(temp: &Path, add: bool) {
    let mut list = TEMPORARY.lock().unwrap_or_else(|p| p.into_inner());
    if add {
        list.push(temp.to_path_buf());
    } else {
        list.retain(|t| t != temp);
    }
}

/// On SIGINT, SIGTERM or SIGHUP the temporary files go, then the command,
/// with the status a shell gives a process the signal killed.
fn remove_temporary_on_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signal = set.wait().unwrap_or(Signal::SIGTERM);
            let list = TEMPORARY.lock().unwrap_or_else(|p| p.into_inner());
            for t in list.iter() {
                let _ = std::fs::remove_file(t);
            }
            std::process::exit(128 + signal as i32);
        });
}

/// Syncs the file, renames it to `dest` (not over an existing file unless
/// `force`) and syncs the directory.
fn place(file: &File, temp: &Path, dest: &Path, force: bool) -> Result<(), Error> {
    file.sync_all()?;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::new(ErrorCode::InvalidRequest, "a name with a NUL byte"))
    };
    let (from, to) = (c(temp)?, c(dest)?);
    if force {
        std::fs::rename(temp, dest)?;
    } else {
        // SAFETY: two NUL-ended paths, relative to the working directory.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EEXIST) => {
                    return Err(Error::new(
                        ErrorCode::Exists,
                        format!(
                            "{} appeared meanwhile; add -f to replace it",
                            crate::quote::quote_str(dest.as_os_str().as_bytes())
                        ),
                    ));
                }
                // A filesystem without renameat2's flags: a link cannot
                // replace a file either.
                Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                    std::fs::hard_link(temp, dest).map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Error::new(ErrorCode::Exists, "the destination appeared meanwhile")
                        } else {
                            Error::from_io(&e)
                        }
                    })?;
                    std::fs::remove_file(temp)?;
                }
                _ => return Err(Error::from_io(&e)),
            }
        }
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Has the daemon fill `file` with the member's file.
fn ask_daemon(
    cli: &GetCli,
    task: &Task,
    file: &File,
    progress: &mut Option<Progress>,
) -> Result<(u64, String), Error> {
    let req = Request::Get(LocalGet {
        peer: task.member.clone(),
        path: task.path.clone(),
        resume: cli.resume,
        timeout_ms: Some(timeout_ms(cli)),
    });
    let mut reader = send_with_file(cli, &req, file, progress.is_some())?;
    let mut offset = 0;
    loop {
        match reader.next_line() {
            Ok(Some(line)) => match serde_json::from_slice::<Reply>(&line) {
                Ok(Reply::Sending { offset: o, .. }) => offset = o,
                Ok(Reply::End { bytes, sha256 }) => return Ok((bytes, sha256)),
                Ok(Reply::Failed { error }) => return Err(error),
                _ => return Err(refused(&line)),
            },
            Ok(None) => return Err(daemon_gone()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(p) = progress.as_mut() {
                    let now = file.metadata().map_or(0, |m| m.len());
                    p.partial(now.saturating_sub(offset));
                } else {
                    return Err(Error::new(ErrorCode::Timeout, "p2pd stopped answering"));
                }
            }
            Err(e) => return Err(Error::from_io(&e)),
        }
    }
}

/// Sends a request with the descriptor of the file to fill; the reader of
/// its replies.
fn send_with_file(
    cli: &GetCli,
    req: &Request,
    file: &File,
    progress: bool,
) -> Result<LineReader, Error> {
    let stream = client::connect(&cli.connection)
        .map_err(|f| Error::new(ErrorCode::Unreachable, f.message))?;
    let mut line =
        serde_json::to_vec(req).map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))?;
    line.push(b'\n');
    fdpass::send_with_fds(&stream, &line, &[file.as_raw_fd()])?;
    let reader = LineReader::new(stream, crate::proto::MAX_LINE, 0);
    // Woken now and then to show how far the file has come.
    reader.set_read_timeout(Some(Duration::from_millis(if progress {
        200
    } else {
        // Only to notice a daemon that froze: it answers within the
        // members' timeout, and writes a line at the end.
        60_000
    })));
    Ok(reader)
}

/// Has the daemon fill `file` with chunks from the members that hold the
/// file (`--any`).
fn ask_daemon_any(
    cli: &GetCli,
    task: &Task,
    file: &File,
    progress: &mut Option<Progress>,
) -> Result<Got, Error> {
    let req = Request::GetAny(LocalGetAny {
        path: task.path.clone(),
        peers: cli.peers.clone(),
        tags: cli.tags.iter().cloned().collect(),
        resume: cli.resume,
        timeout_ms: Some(timeout_ms(cli)),
    });
    let mut reader = send_with_file(cli, &req, file, progress.is_some())?;
    let mut seen = 0;
    loop {
        match reader.next_line() {
            Ok(Some(line)) => match serde_json::from_slice::<Reply>(&line) {
                Ok(Reply::Sources { .. }) => {}
                Ok(Reply::Progress { bytes }) => {
                    if let Some(p) = progress.as_mut() {
                        seen = bytes;
                        p.partial(bytes);
                    }
                }
                Ok(Reply::Fetched {
                    bytes,
                    sha256,
                    sources,
                    unused,
                }) => {
                    return Ok(Got {
                        bytes,
                        sha256,
                        sources: Some(sources),
                        unused: Some(unused),
                    });
                }
                Ok(Reply::Failed { error }) => return Err(error),
                _ => return Err(refused(&line)),
            },
            Ok(None) => return Err(daemon_gone()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                match progress.as_mut() {
                    Some(p) => p.partial(seen),
                    None => return Err(Error::new(ErrorCode::Timeout, "p2pd stopped answering")),
                }
            }
            Err(e) => return Err(Error::from_io(&e)),
        }
    }
}

/// Copies a file of this host with the user's own rights, hashing it, and
/// refuses it if it changed meanwhile; with `resume` what `dest` holds is
/// hashed again and kept.
fn copy_here(path: &PathBytes, dest: &File, resume: bool) -> Result<(u64, String), Error> {
    let src = crate::ops::open_for_query(Path::new(path.as_os_str()))?;
    let md = src.metadata()?;
    if md.is_dir() {
        return Err(Error::new(
            ErrorCode::IsDirectory,
            "is a directory (p2p-get -r fetches a tree)",
        ));
    }
    if !md.is_file() {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "not a regular file: only regular files are fetched",
        ));
    }
    let key = crate::cache::FileKey::from_metadata(&md);
    // What the destination holds (the kept part read back from it), and
    // what the source holds: the two must agree.
    let mut h = Hasher::default();
    let mut source = Hasher::default();
    let mut at = 0u64;
    let held = if resume { dest.metadata()?.len() } else { 0 };
    if !resume {
        dest.set_len(0)?;
    }
    let mut buf = vec![0u8; crate::proto::transfer::CHUNK];
    let mut mine = vec![0u8; crate::proto::transfer::CHUNK];
    loop {
        let n = src.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        source.update(chunk);
        let k = held.saturating_sub(at).min(n as u64) as usize;
        if k > 0 {
            let got = dest.read_at(&mut mine[..k], at)?;
            if got < k {
                return Err(Error::new(ErrorCode::Changed, "the partial file shrank"));
            }
            h.update(&mine[..k]);
        }
        dest.write_all_at(&chunk[k..], at + k as u64)?;
        h.update(&chunk[k..]);
        at += n as u64;
    }
    if held > at {
        return Err(Error::new(
            ErrorCode::Mismatch,
            "the partial file is longer than the file",
        ));
    }
    let now = crate::cache::FileKey::from_metadata(&src.metadata()?);
    if now != key || at != key.size {
        return Err(Error::new(
            ErrorCode::Changed,
            "the file changed while it was copied (its size, times or inode differ); try again",
        ));
    }
    let (written, source) = (h.finish(), source.finish());
    if written.sha256 != source.sha256 {
        return Err(Error::new(
            ErrorCode::Mismatch,
            "what was written does not hash as the file does: the partial file was not the start of this file",
        ));
    }
    Ok((at, written.hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_split_at_the_first_colon_slash() {
        let (m, p) = split_source(OsStr::new("host:65432:/srv/a:b")).unwrap();
        assert_eq!(m, "host:65432");
        assert_eq!(p, "/srv/a:b");
        assert!(split_source(OsStr::new("host:srv")).is_err());
        assert!(split_source(OsStr::new(":/srv")).is_err());
    }

    #[test]
    fn listed_names_stay_below_the_tree() {
        assert!(below(b"a/b").is_some());
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"/etc",
            b"a//b",
            b"",
            b".",
            b"a/\0",
        ] {
            assert!(below(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(base_name(b"/srv/x/"), Some(&b"x"[..]));
        assert_eq!(base_name(b"/"), None);
    }
}
