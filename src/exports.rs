//! The directories remote peers may read below, and the one open that stays beneath them.
//!
//! A peer holding the cluster key may ask this member about files, but only
//! below the directories its operator exported with `--export DIR`; with none,
//! every remote file query is refused. Checking the path as text cannot
//! enforce that: `..`, a symlink planted inside an export, or a /proc magic
//! link such as `/proc/self/root` would lead the daemon, often running as
//! root, anywhere on the host. So the text only picks the root, and the
//! kernel does the confining: the root is opened as a directory and the rest
//! of the path is resolved from it by `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS`, which fails rather than step above the root
//! (through `..`, an absolute symlink or a relative one) and never crosses a
//! magic link. Symlinks that stay inside the root are followed.
//!
//! Kernels before 5.6 lack openat2, and some seccomp filters deny it. There
//! the path is walked one component at a time with `openat(O_NOFOLLOW)` from
//! the root, refusing `..` and every symlink: stricter than needed, never
//! looser.
//!
//! The root itself is opened afresh for each query, so an export never pins
//! a mount, and without following any symlink, so whoever may write the
//! export's parent cannot swap the root for a link to `/etc`. Mount points
//! below a root are crossed: what is mounted there is part of the export.
//!
//! An export may name groups, `--export DIR:groups=G1,G2`: then only members
//! whose verified certificate carries one of them may read below DIR, and
//! every other member is answered `unauthorized` with the groups it lacks.
//! Only a suffix `:groups=...` of the last component (nothing after it holds a
//! `/`) is parsed, so any other directory name with `:` exports as it is; a
//! directory whose own name contains `:groups=` is exported by adding a
//! trailing `/`. Every open names who asks ([`Asker`]), so none can skip the
//! check. When roots nest, the longest root the path is written below
//! decides: `/srv` for everyone and `/srv/secret:groups=ops` let only ops read
//! below `/srv/secret`. So that a member outside a nested root's groups
//! cannot reach it from the enclosing root (a symlink, `..`, another spelling),
//! its paths there are walked strictly (no symlink, no `..` followed, as
//! without openat2) and refused when they name a place below that nested
//! root; its recursive walks are refused when one would enter it. A bind
//! mount of a grouped directory elsewhere in an export is the operator's to
//! avoid: it is not recognized.

use crate::error::{Error, ErrorCode};
use crate::ops::stat::{Meta, link_target_at, meta_at};
use crate::proto::path::readable;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How a queried file is opened: read-only, and `O_NONBLOCK` so a FIFO cannot
/// block the open (the engine refuses non-regular files afterwards).
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// How a directory is held only to resolve names from it.
const DIR_PATH_FLAGS: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// Transient `EAGAIN`s from openat2 (a rename raced a `..`) retried before giving up.
const AGAIN_RETRIES: u32 = 8;

/// The directories remote members may read below.
#[derive(Clone, Debug)]
pub struct Exports {
    /// Canonical roots, without duplicates.
    roots: Vec<PathBuf>,
    /// The groups whose members may read below each root (same index),
    /// sorted and distinct; empty for every member.
    groups: Vec<Vec<String>>,
    /// Every spelling a root may be written with (as given, canonical), with its index in `roots`.
    spellings: Vec<(PathBuf, usize)>,
    resolver: Resolver,
}

/// One `--export` value: a directory and the groups that may read below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub dir: PathBuf,
    /// Sorted and distinct; empty when every member may read.
    pub groups: Vec<String>,
}

/// What separates a directory from the groups in an `--export` value.
const GROUPS_SUFFIX: &[u8] = b":groups=";

impl Export {
    /// Parses `DIR` or `DIR:groups=G1,G2`: the suffix is taken only from the
    /// last component of the value (no `/` after `:groups=`), so a directory
    /// name holding `:` stays a directory name, and one holding `:groups=`
    /// is given with a trailing `/`. Group names follow the certificate's
    /// rules (those of member names).
    pub fn parse(value: &std::ffi::OsStr) -> Result<Export, String> {
        let bytes = value.as_bytes();
        let last = bytes
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |slash| slash + 1);
        let Some(at) = bytes[last..]
            .windows(GROUPS_SUFFIX.len())
            .position(|w| w == GROUPS_SUFFIX)
            .map(|i| last + i)
        else {
            return Ok(Export {
                dir: PathBuf::from(value),
                groups: Vec::new(),
            });
        };
        let dir = &bytes[..at];
        let list = &bytes[at + GROUPS_SUFFIX.len()..];
        if dir.is_empty() {
            return Err("no directory before :groups= (write DIR:groups=G1,G2)".into());
        }
        let list = std::str::from_utf8(list).map_err(|_| "group names are ASCII".to_string())?;
        let mut groups = Vec::new();
        for group in list.split(',') {
            if group.is_empty() {
                return Err("an empty group name (write DIR:groups=G1,G2)".into());
            }
            crate::membership::check_name(group).map_err(|_| {
                format!(
                    "the group \"{}\" is not 1 to 64 ASCII letters, digits, '.', '_', '-', ':' or '@'",
                    crate::daemon::logging::untrusted(group)
                )
            })?;
            groups.push(group.to_string());
        }
        groups.sort();
        groups.dedup();
        Ok(Export {
            dir: PathBuf::from(std::ffi::OsStr::from_bytes(dir)),
            groups,
        })
    }
}

/// Who asks to read below the exports: every open names one, so that the
/// groups of an export are never left unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asker {
    who: Who,
    /// The query walks a directory recursively: refused when the walk
    /// would enter a root the asker may not read.
    walks: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    /// A member over a session, with the groups of its verified
    /// certificate; `None` for a member without one (shared-key mode).
    Member(Option<Vec<String>>),
    /// A user of this host, answered only on a descriptor they opened
    /// themselves: the file's own permissions decided already.
    Local,
}

impl Asker {
    /// A member whose session carried `cert` (verified), or none; `walks`
    /// when its query is a recursive directory count.
    pub fn member(cert: Option<&crate::crypto::cert::CertBody>, walks: bool) -> Asker {
        Asker {
            who: Who::Member(cert.map(|c| c.groups.clone())),
            walks,
        }
    }

    /// A member whose verified certificate carries `groups` (for tests and
    /// fuzzing; the daemon takes them from the session, [`Asker::member`]).
    pub fn in_groups(groups: &[&str], walks: bool) -> Asker {
        Asker {
            who: Who::Member(Some(groups.iter().map(|g| g.to_string()).collect())),
            walks,
        }
    }

    /// A user of this host whose own open descriptor the answer is computed on.
    pub fn local() -> Asker {
        Asker {
            who: Who::Local,
            walks: false,
        }
    }

    /// Whether this asker may read below a root that names `groups`.
    fn may_read(&self, groups: &[String]) -> bool {
        if groups.is_empty() {
            return true;
        }
        match &self.who {
            Who::Local => true,
            Who::Member(None) => false,
            Who::Member(Some(mine)) => mine.iter().any(|g| groups.contains(g)),
        }
    }
}

/// `group ops`, `group ops or audit`, `group a, b or c`.
fn either(groups: &[String]) -> String {
    match groups {
        [] => String::new(),
        [one] => format!("group {one}"),
        [init @ .., last] => format!("group {} or {last}", init.join(", ")),
    }
}

/// How the part of a path below its root is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolver {
    /// openat2 confines in the kernel: `..` and symlinks are followed while they stay beneath.
    Openat2,
    /// Component by component with `O_NOFOLLOW`, for kernels without openat2.
    Walk,
}

/// Why a confined open failed, before it is worded for the asking peer.
#[derive(Debug)]
enum Failure {
    Os(io::Error),
    /// The walk met a symlink, which it never follows.
    Symlink,
    /// The walk met `..`, which it never follows.
    DotDot,
}

impl Exports {
    /// Canonicalizes each directory (realpath); a missing path or a non-directory is an error
    /// whose message names the path ("--export /x: No such file or directory").
    /// Each may end in `:groups=G1,G2` ([`Export::parse`]); a directory
    /// exported twice must name the same groups both times.
    pub fn new(values: &[PathBuf]) -> Result<Exports, String> {
        let mut exports = Exports::none();
        for value in values {
            let Export { dir, groups } = Export::parse(value.as_os_str())
                .map_err(|e| format!("--export {}: {e}", readable(value.as_os_str().as_bytes())))?;
            let dir = &dir;
            let fail = |e: &io::Error| {
                format!("--export {}: {}", dir.display(), Error::from_io(e).message)
            };
            let canonical = std::fs::canonicalize(dir).map_err(|e| fail(&e))?;
            let meta = std::fs::metadata(&canonical).map_err(|e| fail(&e))?;
            if !meta.is_dir() {
                return Err(fail(&io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
            // Requests are absolute, so a relative spelling is matched as the absolute one.
            let given = std::path::absolute(dir).map_err(|e| fail(&e))?;
            let index = match exports.roots.iter().position(|r| *r == canonical) {
                Some(i) if exports.groups[i] != groups => {
                    return Err(format!(
                        "--export {}: {} is exported twice with different groups",
                        readable(value.as_os_str().as_bytes()),
                        canonical.display()
                    ));
                }
                Some(i) => i,
                None => {
                    exports.roots.push(canonical.clone());
                    exports.groups.push(groups);
                    exports.roots.len() - 1
                }
            };
            for spelling in [canonical, given] {
                let names = split(spelling.as_os_str().as_bytes());
                let known = exports
                    .spellings
                    .iter()
                    .any(|(s, _)| split(s.as_os_str().as_bytes()) == names);
                if !known {
                    exports.spellings.push((spelling, index));
                }
            }
        }
        if !exports.is_empty() {
            exports.resolver = resolver();
        }
        Ok(exports)
    }

    /// No exports: every remote file query is refused.
    pub fn none() -> Exports {
        Exports {
            roots: Vec::new(),
            groups: Vec::new(),
            spellings: Vec::new(),
            resolver: Resolver::Walk,
        }
    }

    /// True when nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The canonical roots, for logs and messages.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The groups of each root (same order as [`Exports::roots`]); empty for every member.
    pub fn groups(&self) -> &[Vec<String>] {
        &self.groups
    }

    /// True when some root names groups (which only certificates can carry).
    pub fn has_groups(&self) -> bool {
        self.groups.iter().any(|g| !g.is_empty())
    }

    /// The refusal of `who` below root `index`, if it may not read there.
    fn refusal(&self, who: &Asker, index: usize) -> Option<Error> {
        let groups = &self.groups[index];
        if who.may_read(groups) {
            return None;
        }
        let lacking = match &who.who {
            Who::Member(None) => {
                "you have no certificate (this member's cluster runs on the shared key)"
            }
            _ => "your certificate carries none of them",
        };
        Some(Error::new(
            ErrorCode::Unauthorized,
            format!(
                "below {} only members of {} may read; {lacking}",
                self.roots[index].display(),
                either(groups)
            ),
        ))
    }

    /// The roots strictly below root `index` that `who` may not read.
    fn closed_below(&self, who: &Asker, index: usize) -> Vec<usize> {
        (0..self.roots.len())
            .filter(|&j| {
                j != index
                    && self.roots[j].starts_with(&self.roots[index])
                    && !who.may_read(&self.groups[j])
            })
            .collect()
    }

    /// How `who` resolves `rest` below root `index`: strictly when a root
    /// it may not read lies below, and then refused if `rest` names a place
    /// in such a root (or, for a walk, above one).
    fn resolving(
        &self,
        who: &Asker,
        index: usize,
        rest: &[&[u8]],
        walks: bool,
    ) -> Result<Resolver, Error> {
        let closed = self.closed_below(who, index);
        if closed.is_empty() {
            return Ok(self.resolver);
        }
        if !rest.contains(&&b".."[..]) {
            let mut reached = self.roots[index].clone();
            reached.extend(rest.iter().map(|n| std::ffi::OsStr::from_bytes(n)));
            for j in closed {
                let inside = reached.starts_with(&self.roots[j]);
                if inside || (walks && self.roots[j].starts_with(&reached)) {
                    return Err(self
                        .refusal(who, j)
                        .unwrap_or_else(|| Error::new(ErrorCode::Unauthorized, "unauthorized")));
                }
            }
        }
        Ok(Resolver::Walk)
    }

    /// Opens `path` (must be absolute; any bytes but NUL) for reading, only
    /// if it lies below an exported root, its resolution stays beneath that
    /// root, and `who` may read there (the groups of the longest root the
    /// path is written below decide).
    pub fn open(&self, who: &Asker, path: impl AsRef<[u8]>) -> Result<File, Error> {
        let path = path.as_ref();
        if !path.starts_with(b"/") {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                "remote paths must be absolute",
            ));
        }
        if path.contains(&0) {
            return Err(Error::new(
                ErrorCode::InvalidRequest,
                "paths cannot contain a NUL byte",
            ));
        }
        if self.is_empty() {
            return Err(Error::new(
                ErrorCode::NotExported,
                "this member exports nothing; start its p2pd with --export DIR to let peers read below DIR",
            ));
        }
        let names = split(path);
        // A trailing slash or `.` asks for a directory, as it does to open(2).
        let want_dir = path.ends_with(b"/") || path.ends_with(b"/.");
        let candidates = self.candidates(&names);
        let mut refused = None;
        for &(index, covered) in &candidates {
            // The longest root decides; an enclosing one, tried when the path
            // led out of a nested one, is checked as well.
            if let Some(refused) = self.refusal(who, index) {
                return Err(refused);
            }
            let rest = &names[covered..];
            let how = self.resolving(who, index, rest, who.walks)?;
            match self.open_below(index, rest, want_dir, path, how) {
                Ok(file) => return Ok(file),
                // An enclosing root may hold what a nested one refused: exporting
                // /srv exports /srv/data/../other even when /srv/data is exported too.
                Err(e) if e.code == ErrorCode::NotExported => {
                    refused.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(refused.unwrap_or_else(|| {
            Error::new(
                ErrorCode::NotExported,
                format!(
                    "{} is not below an exported directory of this member; \
                     start its p2pd with --export DIR (exported: {})",
                    readable(path),
                    self.listing()
                ),
            )
        }))
    }

    /// The metadata and target of `path` when its last component, below an
    /// exported root, is a symlink: what `stat` shows without following it.
    /// The directories above it are resolved as [`Exports::open`] resolves
    /// them (never out of the root); `None` for anything else, which
    /// [`Exports::open`] then opens or refuses.
    /// `None` too where `who` may not read, which [`Exports::open`] then refuses.
    pub fn symlink_below(&self, who: &Asker, path: impl AsRef<[u8]>) -> Option<(Meta, Vec<u8>)> {
        let path = path.as_ref();
        if !path.starts_with(b"/") || path.contains(&0) || self.is_empty() {
            return None;
        }
        // A trailing slash or `.` asks for what the link points to, as it does to lstat(2).
        if path.ends_with(b"/") || path.ends_with(b"/.") {
            return None;
        }
        let names = split(path);
        for (index, covered) in self.candidates(&names) {
            let Some((last, parents)) = names[covered..].split_last() else {
                continue;
            };
            if *last == b".." {
                return None;
            }
            if self.refusal(who, index).is_some() {
                return None;
            }
            let how = self.resolving(who, index, &names[covered..], false).ok()?;
            let Ok(root) = open_root(&self.roots[index], how) else {
                continue;
            };
            let dir = match how {
                Resolver::Openat2 => open_beneath(root.as_fd(), parents, DIR_PATH_FLAGS),
                // The walk refuses `..` (descend does, name by name).
                Resolver::Walk => descend(root.as_fd(), parents),
            };
            let (Ok(dir), Ok(name)) = (dir, CString::new(*last)) else {
                continue;
            };
            let meta = meta_at(dir.as_raw_fd(), &name, false).ok()?;
            if !meta.is_symlink() {
                return None;
            }
            let target = link_target_at(dir.as_raw_fd(), &name).ok()?;
            return Some((meta, target));
        }
        None
    }

    /// The roots whose spelling starts `names`, longest spelling first, each
    /// with the number of names that spelling covers.
    fn candidates(&self, names: &[&[u8]]) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = self
            .spellings
            .iter()
            .filter_map(|(spelling, index)| {
                let prefix = split(spelling.as_os_str().as_bytes());
                names.starts_with(&prefix).then_some((*index, prefix.len()))
            })
            .collect();
        found.sort_by_key(|&(_, covered)| std::cmp::Reverse(covered));
        let mut seen = Vec::with_capacity(found.len());
        found.retain(|(index, _)| {
            let first = !seen.contains(index);
            seen.push(*index);
            first
        });
        found
    }

    /// Opens `rest` below root `index`, wording any failure for the peer that asked for `path`.
    fn open_below(
        &self,
        index: usize,
        rest: &[&[u8]],
        want_dir: bool,
        path: &[u8],
        how: Resolver,
    ) -> Result<File, Error> {
        let root = &self.roots[index];
        let root_fd = open_root(root, how).map_err(|f| root_error(root, f))?;
        let flags = READ_FLAGS | if want_dir { libc::O_DIRECTORY } else { 0 };
        let opened = match how {
            Resolver::Openat2 => open_beneath(root_fd.as_fd(), rest, flags),
            Resolver::Walk => open_walk(root_fd.as_fd(), rest, flags),
        };
        // The walk was chosen for this asker, not for want of openat2.
        let forced = how != self.resolver;
        opened
            .map(File::from)
            .map_err(|f| explain(f, path, root, forced))
    }

    fn listing(&self) -> String {
        let shown: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        shown.join(", ")
    }

    #[cfg(test)]
    fn with_resolver(mut self, resolver: Resolver) -> Exports {
        self.resolver = resolver;
        self
    }
}

/// The names of a path: repeated slashes and `.` dropped, `..` kept (only the
/// kernel may decide where `..` leads, since a symlink may come before it).
fn split(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|name| !name.is_empty() && *name != b".")
        .collect()
}

/// Decides once whether this kernel (and seccomp policy) lets us use openat2.
fn resolver() -> Resolver {
    static CHOSEN: OnceLock<Resolver> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        match openat2(libc::AT_FDCWD, c"/", DIR_PATH_FLAGS, libc::RESOLVE_NO_MAGICLINKS) {
            Ok(_) => Resolver::Openat2,
            // ENOSYS before Linux 5.6, EPERM under some seccomp filters; on
            // anything else the strict walk is still safe.
            Err(e) => {
                log::warn!(
                    "openat2 is unavailable ({}); reads below --export directories will follow neither symlinks nor ..",
                    Error::from_io(&e).message
                );
                Resolver::Walk
            }
        }
    })
}

/// Opens an exported root without following any symlink: its canonical path
/// had none at start, and one there now could point anywhere.
fn open_root(root: &Path, resolver: Resolver) -> Result<OwnedFd, Failure> {
    match resolver {
        Resolver::Openat2 => {
            let path = CString::new(root.as_os_str().as_bytes())
                .map_err(|_| Failure::Os(io::Error::from_raw_os_error(libc::EINVAL)))?;
            openat2(
                libc::AT_FDCWD,
                &path,
                DIR_PATH_FLAGS,
                libc::RESOLVE_NO_SYMLINKS,
            )
            .map_err(Failure::Os)
        }
        Resolver::Walk => {
            let slash = openat(libc::AT_FDCWD, c"/", DIR_PATH_FLAGS).map_err(Failure::Os)?;
            descend(slash.as_fd(), &split(root.as_os_str().as_bytes()))
        }
    }
}

/// Opens `rest` below `root` through openat2, which refuses to leave `root`
/// and to cross magic links; `..` and symlinks that stay beneath are fine.
fn open_beneath(root: BorrowedFd, rest: &[&[u8]], flags: libc::c_int) -> Result<OwnedFd, Failure> {
    let joined = if rest.is_empty() {
        b".".to_vec()
    } else {
        rest.join(&b'/')
    };
    let path = CString::new(joined)
        .map_err(|_| Failure::Os(io::Error::from_raw_os_error(libc::EINVAL)))?;
    openat2(
        root.as_raw_fd(),
        &path,
        flags,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(Failure::Os)
}

/// Opens `rest` below `root` without openat2: one name at a time, refusing
/// `..` and any symlink, so nothing can lead out of `root`.
fn open_walk(root: BorrowedFd, rest: &[&[u8]], flags: libc::c_int) -> Result<OwnedFd, Failure> {
    if rest.iter().any(|name| *name == b"..") {
        return Err(Failure::DotDot);
    }
    let Some((last, parents)) = rest.split_last() else {
        return openat(root.as_raw_fd(), c".", flags).map_err(Failure::Os);
    };
    let dir = descend(root, parents)?;
    let name = c_name(last)?;
    openat(dir.as_raw_fd(), &name, flags | libc::O_NOFOLLOW)
        .map_err(|e| symlink_or(dir.as_fd(), &name, e))
}

/// Walks down from `start` through directories named `names`, never
/// following a symlink nor `..`; returns the last one, held by an `O_PATH` descriptor.
fn descend(start: BorrowedFd, names: &[&[u8]]) -> Result<OwnedFd, Failure> {
    let mut dir = start.try_clone_to_owned().map_err(Failure::Os)?;
    for name in names {
        let name = c_name(name)?;
        dir = openat(dir.as_raw_fd(), &name, DIR_PATH_FLAGS | libc::O_NOFOLLOW)
            .map_err(|e| symlink_or(dir.as_fd(), &name, e))?;
    }
    Ok(dir)
}

fn c_name(name: &[u8]) -> Result<CString, Failure> {
    if name == b".." {
        return Err(Failure::DotDot);
    }
    CString::new(name).map_err(|_| Failure::Os(io::Error::from_raw_os_error(libc::EINVAL)))
}

/// An `O_NOFOLLOW` open of a symlink fails with ELOOP, or ENOTDIR when a
/// directory was asked for; tell that case apart so the peer learns why.
fn symlink_or(dir: BorrowedFd, name: &CStr, err: io::Error) -> Failure {
    if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) && is_symlink(dir, name) {
        Failure::Symlink
    } else {
        Failure::Os(err)
    }
}

fn is_symlink(dir: BorrowedFd, name: &CStr) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor and C string; fstatat fills the buffer on success.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return false;
    }
    // SAFETY: initialized by the successful call above.
    let st = unsafe { st.assume_init() };
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn openat(dir: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `path` is a valid C string; a bad `dir` only yields EBADF.
        let fd = unsafe { libc::openat(dir, path.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: openat just returned this descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

fn openat2(dir: RawFd, path: &CStr, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers, and all-zero is its default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
    let mut retries = 0;
    loop {
        // SAFETY: `path` is a valid C string and `how` a live open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: openat2 just returned this descriptor to us; it fits a RawFd.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            // The kernel could not rule out that a concurrent rename let `..` escape.
            Some(libc::EAGAIN) if retries < AGAIN_RETRIES => retries += 1,
            _ => return Err(err),
        }
    }
}

/// Words a failure below `root` for the peer that asked for `path`.
fn explain(failure: Failure, path: &[u8], root: &Path, forced: bool) -> Error {
    let root = root.display();
    let path = readable(path);
    let why = if forced {
        format!(
            "for you below {root}, since a directory there is exported to groups you are not in"
        )
    } else {
        "on this kernel (no openat2)".to_string()
    };
    match failure {
        Failure::DotDot => Error::new(
            ErrorCode::NotExported,
            format!("{path}: .. is not followed below exports {why}"),
        ),
        Failure::Symlink => Error::new(
            ErrorCode::NotExported,
            format!("{path}: symlinks are not followed below exports {why}"),
        ),
        Failure::Os(e) => match e.raw_os_error() {
            Some(libc::EXDEV) => Error::new(
                ErrorCode::NotExported,
                format!("{path} leaves the exported directory {root} (through .. or a symlink)"),
            ),
            Some(libc::ELOOP) => Error::new(
                ErrorCode::NotExported,
                format!(
                    "{path} goes through a /proc magic link or too many symlinks \
                     below the exported directory {root}"
                ),
            ),
            _ => Error::from_io(&e),
        },
    }
}

/// Words a failure to open the exported root itself.
fn root_error(root: &Path, failure: Failure) -> Error {
    let root = root.display();
    match failure {
        Failure::Os(e) if e.raw_os_error() != Some(libc::ELOOP) => {
            let err = Error::from_io(&e);
            Error::new(
                err.code,
                format!("exported directory {root}: {}", err.message),
            )
        }
        _ => Error::new(
            ErrorCode::NotExported,
            format!(
                "the exported directory {root} is now reached through a symlink; \
                 restart or reload p2pd to export what it points to"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    /// A member without a certificate, reading exports without groups.
    const ANYONE: Asker = Asker {
        who: Who::Member(None),
        walks: false,
    };

    /// A temp tree: `top/root` is exported, `top/outside` is not.
    struct Tree {
        _dir: tempfile::TempDir,
        top: PathBuf,
        root: PathBuf,
        secret: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let top = fs::canonicalize(dir.path()).unwrap();
        let root = top.join("root");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("f"), "inside").unwrap();
        fs::write(root.join("a/b/g"), "nested").unwrap();
        fs::create_dir(top.join("outside")).unwrap();
        let secret = top.join("outside/secret");
        fs::write(&secret, "secret").unwrap();
        Tree {
            _dir: dir,
            top,
            root,
            secret,
        }
    }

    /// The resolvers this kernel can run: the walk always, openat2 when present.
    fn resolvers() -> Vec<Resolver> {
        if resolver() == Resolver::Openat2 {
            vec![Resolver::Openat2, Resolver::Walk]
        } else {
            eprintln!("openat2 unavailable here: testing the walk only");
            vec![Resolver::Walk]
        }
    }

    fn has_openat2() -> bool {
        let yes = resolver() == Resolver::Openat2;
        if !yes {
            eprintln!("openat2 unavailable here: skipping its half of the test");
        }
        yes
    }

    fn exporting(dirs: &[&Path], how: Resolver) -> Exports {
        let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
        Exports::new(&dirs).unwrap().with_resolver(how)
    }

    fn text(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn read(result: Result<File, Error>) -> String {
        let mut s = String::new();
        result.unwrap().read_to_string(&mut s).unwrap();
        s
    }

    fn code(result: Result<File, Error>) -> ErrorCode {
        result.unwrap_err().code
    }

    fn member_of(groups: &[&str]) -> Asker {
        Asker {
            who: Who::Member(Some(groups.iter().map(|g| g.to_string()).collect())),
            walks: false,
        }
    }

    fn grouped(dir: &Path, groups: &str) -> PathBuf {
        PathBuf::from(format!("{}:groups={groups}", text(dir)))
    }

    #[test]
    fn export_values_parse_a_trailing_groups_suffix_only() {
        let p = |v: &str| Export::parse(OsStr::new(v));
        assert_eq!(
            p("/srv/data").unwrap(),
            Export {
                dir: "/srv/data".into(),
                groups: vec![]
            }
        );
        assert_eq!(
            p("/srv/data:groups=ops,audit,ops").unwrap(),
            Export {
                dir: "/srv/data".into(),
                groups: vec!["audit".into(), "ops".into()]
            }
        );
        // Group names may hold ':' and '@', as certificates' do.
        assert_eq!(
            p("rel:groups=a:b@c").unwrap().groups,
            vec!["a:b@c".to_string()]
        );
        // Any other ':' is part of the directory.
        assert_eq!(p("/srv/a:b").unwrap().dir, PathBuf::from("/srv/a:b"));
        assert_eq!(p("/srv/a:groups").unwrap().groups, Vec::<String>::new());
        // ":groups=" before the last '/' is a directory name; a trailing '/'
        // exports a directory whose own name holds it.
        let named = p("/srv/x:groups=ops/y").unwrap();
        assert_eq!(named.dir, PathBuf::from("/srv/x:groups=ops/y"));
        assert!(named.groups.is_empty());
        let trailing = p("/srv/x:groups=ops/").unwrap();
        assert_eq!(trailing.dir, PathBuf::from("/srv/x:groups=ops/"));
        assert!(trailing.groups.is_empty());
        // Not-UTF-8 directory names still export.
        let odd = Export::parse(OsStr::from_bytes(b"/srv/caf\xe9:groups=ops")).unwrap();
        assert_eq!(odd.dir.as_os_str().as_bytes(), b"/srv/caf\xe9");
        for bad in [
            "/srv:groups=",
            "/srv:groups=ops,",
            "/srv:groups=,ops",
            "/srv:groups=o ps",
            "/srv:groups=o=ps",
            ":groups=ops",
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains("group") || e.contains("directory"), "{bad}: {e}");
            let e = Exports::new(&[PathBuf::from(bad)]).unwrap_err();
            assert!(e.starts_with(&format!("--export {bad}: ")), "{bad}: {e}");
        }
        let long = format!("/srv:groups={}", "g".repeat(65));
        assert!(p(&long).is_err());
    }

    #[test]
    fn a_grouped_export_is_read_by_its_groups_only() {
        let t = tree();
        let e = Exports::new(&[grouped(&t.root, "ops,audit")])
            .unwrap()
            .with_resolver(resolver());
        assert!(e.has_groups());
        assert_eq!(e.groups()[0], vec!["audit".to_string(), "ops".to_string()]);
        let f = t.root.join("f");
        assert_eq!(
            read(e.open(&member_of(&["web", "ops"]), text(&f))),
            "inside"
        );
        assert_eq!(read(e.open(&member_of(&["audit"]), text(&f))), "inside");
        assert_eq!(read(e.open(&Asker::local(), text(&f))), "inside");
        for who in [member_of(&["web"]), member_of(&[]), ANYONE] {
            let err = e.open(&who, text(&f)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Unauthorized, "{who:?}");
            let wanted = format!(
                "below {} only members of group audit or ops may read",
                text(&t.root)
            );
            assert!(err.message.starts_with(&wanted), "{}", err.message);
            // Every kind of path below it, the root and a missing file too.
            for p in [
                text(&t.root),
                text(&t.root.join("a/b/g")),
                text(&t.root.join("nope")),
            ] {
                assert_eq!(code(e.open(&who, p)), ErrorCode::Unauthorized, "{p}");
            }
        }
        let err = e.open(&member_of(&["web"]), text(&f)).unwrap_err();
        assert!(
            err.message
                .ends_with("your certificate carries none of them"),
            "{}",
            err.message
        );
        // A symlink there is not described to an outsider either.
        symlink("f", t.root.join("link")).unwrap();
        assert!(
            e.symlink_below(&member_of(&["web"]), text(&t.root.join("link")))
                .is_none()
        );
        assert!(
            e.symlink_below(&member_of(&["ops"]), text(&t.root.join("link")))
                .is_some()
        );
        // Without groups, every member reads.
        let open = exporting(&[&t.root], resolver());
        assert!(!open.has_groups());
        assert_eq!(read(open.open(&member_of(&["web"]), text(&f))), "inside");
        assert_eq!(read(open.open(&ANYONE, text(&f))), "inside");
    }

    #[test]
    fn one_directory_exported_with_two_group_lists_is_refused() {
        let t = tree();
        let err = Exports::new(&[t.root.clone(), grouped(&t.root, "ops")]).unwrap_err();
        assert!(
            err.contains("exported twice with different groups"),
            "{err}"
        );
        let same = Exports::new(&[grouped(&t.root, "ops"), grouped(&t.root, "ops")]).unwrap();
        assert_eq!(same.roots().len(), 1);
    }

    #[test]
    fn the_longest_root_decides_who_reads() {
        let t = tree();
        let inner = t.root.join("a");
        // An open directory with a closed one below it.
        let e = Exports::new(&[t.root.clone(), grouped(&inner, "ops")])
            .unwrap()
            .with_resolver(resolver());
        let g = text(&inner.join("b/g")).to_string();
        let web = member_of(&["web"]);
        assert_eq!(code(e.open(&web, &g)), ErrorCode::Unauthorized);
        assert_eq!(read(e.open(&member_of(&["ops"]), &g)), "nested");
        assert_eq!(read(e.open(&web, text(&t.root.join("f")))), "inside");
        // A closed directory with an open one below it.
        let e = Exports::new(&[grouped(&t.root, "ops"), inner.clone()])
            .unwrap()
            .with_resolver(resolver());
        assert_eq!(read(e.open(&web, &g)), "nested");
        assert_eq!(
            code(e.open(&web, text(&t.root.join("f")))),
            ErrorCode::Unauthorized
        );
        // And out of the open one by "..", into the closed one: refused.
        let up = format!("{}/../f", text(&inner));
        assert_eq!(code(e.open(&web, &up)), ErrorCode::Unauthorized);
        assert_eq!(
            read(e.open(&member_of(&["ops"]), text(&t.root.join("f")))),
            "inside"
        );
    }

    #[test]
    fn a_closed_nested_root_cannot_be_reached_from_an_open_one() {
        let t = tree();
        let inner = t.root.join("a");
        let alias = t.top.join("alias");
        symlink(&t.root, &alias).unwrap();
        symlink("a/b/g", t.root.join("into")).unwrap();
        symlink("a", t.root.join("dir")).unwrap();
        fs::create_dir(t.root.join("c")).unwrap();
        let values = [alias.clone(), grouped(&inner, "ops")];
        for how in resolvers() {
            let e = Exports::new(&values).unwrap().with_resolver(how);
            let web = member_of(&["web"]);
            let ops = member_of(&["ops"]);
            let tries = [
                // Another spelling of the enclosing root.
                text(&alias.join("a/b/g")).to_string(),
                // A symlink to a file in it, or to it.
                text(&t.root.join("into")).to_string(),
                text(&t.root.join("dir/b/g")).to_string(),
                // `..` from elsewhere in the enclosing root.
                format!("{}/c/../a/b/g", text(&t.root)),
            ];
            for p in &tries {
                // Without the check these read the nested file.
                let err = e.open(&web, p).unwrap_err();
                assert!(
                    matches!(err.code, ErrorCode::Unauthorized | ErrorCode::NotExported),
                    "{how:?} {p}: {err:?}"
                );
            }
            assert_eq!(code(e.open(&web, &tries[0])), ErrorCode::Unauthorized);
            // A member of the group reads them (openat2 follows the links).
            assert_eq!(read(e.open(&ops, &tries[0])), "nested", "{how:?}");
            if how == Resolver::Openat2 {
                for p in &tries[1..] {
                    assert_eq!(read(e.open(&ops, p)), "nested", "{p}");
                }
            }
            // The rest of the enclosing root stays readable.
            assert_eq!(read(e.open(&web, text(&alias.join("f")))), "inside");
            // A symlink into the closed root is not described to an outsider.
            symlink("b", inner.join("lnk")).unwrap_or(());
            assert!(e.symlink_below(&web, text(&alias.join("a/lnk"))).is_none());
            assert!(e.symlink_below(&web, text(&t.root.join("into"))).is_some());
        }
    }

    #[test]
    fn a_walk_that_would_enter_a_closed_root_is_refused() {
        let t = tree();
        let inner = t.root.join("a/b");
        let e = Exports::new(&[t.root.clone(), grouped(&inner, "ops")])
            .unwrap()
            .with_resolver(resolver());
        let walker = |groups: &[&str]| Asker {
            walks: true,
            ..member_of(groups)
        };
        for dir in [
            text(&t.root).to_string(),
            text(&t.root.join("a")).to_string(),
        ] {
            let err = e.open(&walker(&["web"]), &dir).unwrap_err();
            assert_eq!(err.code, ErrorCode::Unauthorized, "{dir}");
            assert!(err.message.contains("group ops"), "{}", err.message);
            // Looking at the directory alone is fine, and ops may walk it.
            assert!(e.open(&member_of(&["web"]), &dir).is_ok());
            assert!(e.open(&walker(&["ops"]), &dir).is_ok());
        }
        fs::create_dir(t.root.join("c")).unwrap();
        assert!(e.open(&walker(&["web"]), text(&t.root.join("c"))).is_ok());
    }

    #[test]
    fn a_file_below_a_root_opens() {
        let t = tree();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(read(e.open(&ANYONE, text(&t.root.join("f")))), "inside");
            let messy = format!("{}//./f", text(&t.root));
            assert_eq!(read(e.open(&ANYONE, &messy)), "inside", "{how:?}");
        }
    }

    #[test]
    fn a_nested_file_opens() {
        let t = tree();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(read(e.open(&ANYONE, text(&t.root.join("a/b/g")))), "nested");
        }
    }

    #[test]
    fn the_root_itself_opens() {
        let t = tree();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            for p in [text(&t.root).to_string(), format!("{}/", text(&t.root))] {
                let f = e.open(&ANYONE, &p).unwrap();
                assert!(f.metadata().unwrap().is_dir(), "{how:?} {p}");
            }
        }
    }

    #[test]
    fn dotdot_that_escapes_is_refused() {
        let t = tree();
        let p = format!("{}/a/../../outside/secret", text(&t.root));
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(code(e.open(&ANYONE, &p)), ErrorCode::NotExported, "{how:?}");
        }
        let deep = format!("{}/a/b/../../../outside/secret", text(&t.root));
        let e = exporting(&[&t.root], resolver());
        assert_eq!(code(e.open(&ANYONE, &deep)), ErrorCode::NotExported);
    }

    #[test]
    fn dotdot_that_stays_inside_is_allowed_by_openat2_only() {
        let t = tree();
        let p = format!("{}/a/b/../../f", text(&t.root));
        if has_openat2() {
            let e = exporting(&[&t.root], Resolver::Openat2);
            assert_eq!(read(e.open(&ANYONE, &p)), "inside");
        }
        let e = exporting(&[&t.root], Resolver::Walk);
        let err = e.open(&ANYONE, &p).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotExported);
        assert!(err.message.contains(".."), "{}", err.message);
    }

    #[test]
    fn an_absolute_symlink_out_is_refused() {
        let t = tree();
        symlink(&t.secret, t.root.join("abs")).unwrap();
        symlink(t.top.join("outside"), t.root.join("absdir")).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(
                code(e.open(&ANYONE, text(&t.root.join("abs")))),
                ErrorCode::NotExported,
                "{how:?}"
            );
            assert_eq!(
                code(e.open(&ANYONE, text(&t.root.join("absdir/secret")))),
                ErrorCode::NotExported,
                "{how:?}"
            );
        }
    }

    #[test]
    fn a_relative_symlink_out_is_refused() {
        let t = tree();
        symlink("../../outside/secret", t.root.join("a/rel")).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            let err = e.open(&ANYONE, text(&t.root.join("a/rel"))).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotExported, "{how:?}");
        }
    }

    #[test]
    fn a_relative_symlink_inside_is_followed_by_openat2_only() {
        let t = tree();
        symlink("../f", t.root.join("a/in")).unwrap();
        let p = t.root.join("a/in");
        if has_openat2() {
            let e = exporting(&[&t.root], Resolver::Openat2);
            assert_eq!(read(e.open(&ANYONE, text(&p))), "inside");
        }
        let e = exporting(&[&t.root], Resolver::Walk);
        let err = e.open(&ANYONE, text(&p)).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotExported);
        assert!(err.message.contains("symlinks"), "{}", err.message);
        // A symlinked directory in the middle of the path is refused too.
        symlink("b", t.root.join("a/bee")).unwrap();
        let mid = t.root.join("a/bee/g");
        assert_eq!(code(e.open(&ANYONE, text(&mid))), ErrorCode::NotExported);
    }

    #[test]
    fn a_path_outside_every_root_says_which_flag_to_add() {
        let t = tree();
        // A sibling whose name merely starts with the root's is not below it.
        fs::create_dir(t.top.join("rootx")).unwrap();
        fs::write(t.top.join("rootx/f"), "x").unwrap();
        let e = exporting(&[&t.root], resolver());
        for p in ["/etc/passwd", text(&t.secret), text(&t.top.join("rootx/f"))] {
            let err = e.open(&ANYONE, p).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotExported, "{p}");
            assert!(err.message.contains("--export"), "{}", err.message);
            assert!(err.message.contains(text(&t.root)), "{}", err.message);
            assert!(err.message.starts_with(p), "{}", err.message);
        }
    }

    #[test]
    fn nothing_exported_refuses_everything() {
        let e = Exports::none();
        assert!(e.is_empty());
        assert!(Exports::new(&[]).unwrap().is_empty());
        let err = e.open(&ANYONE, "/etc/passwd").unwrap_err();
        assert_eq!(err.code, ErrorCode::NotExported);
        assert!(err.message.contains("exports nothing"), "{}", err.message);
        assert!(err.message.contains("--export DIR"), "{}", err.message);
    }

    #[test]
    fn a_symlink_to_proc_self_root_is_refused() {
        let t = tree();
        symlink("/proc/self/root", t.root.join("proc")).unwrap();
        let p = format!("{}/proc{}", text(&t.root), text(&t.secret));
        // Without confinement this path reads the secret.
        assert_eq!(fs::read_to_string(&p).unwrap(), "secret");
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(code(e.open(&ANYONE, &p)), ErrorCode::NotExported, "{how:?}");
        }
    }

    #[test]
    fn magic_links_below_an_exported_proc_directory_are_refused() {
        let t = tree();
        for how in resolvers() {
            let e = exporting(&[Path::new("/proc/self")], how);
            assert_eq!(e.roots().len(), 1);
            assert!(e.roots()[0].starts_with("/proc"), "{:?}", e.roots());
            // Plain files there are fine; `root` and `cwd` are magic links.
            assert!(
                read(e.open(&ANYONE, "/proc/self/status")).contains("Name:"),
                "{how:?}"
            );
            let through_root = format!("/proc/self/root{}", text(&t.secret));
            assert_eq!(
                code(e.open(&ANYONE, &through_root)),
                ErrorCode::NotExported,
                "{how:?}"
            );
            let through_cwd = "/proc/self/cwd/Cargo.toml";
            assert_eq!(
                code(e.open(&ANYONE, through_cwd)),
                ErrorCode::NotExported,
                "{how:?}"
            );
        }
    }

    #[test]
    fn names_that_are_not_utf8_open_and_are_refused_readably() {
        let t = tree();
        let name = OsStr::from_bytes(b"caf\xe9\n");
        fs::write(t.root.join(name), "latin-1").unwrap();
        fs::write(t.top.join("outside").join(name), "secret").unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            let inside = [t.root.as_os_str().as_bytes(), b"/caf\xe9\n"].concat();
            assert_eq!(read(e.open(&ANYONE, &inside)), "latin-1", "{how:?}");
            let outside = [t.top.as_os_str().as_bytes(), b"/outside/caf\xe9\n"].concat();
            let err = e.open(&ANYONE, &outside).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotExported, "{how:?}");
            assert!(err.message.contains("caf\\xE9\\n"), "{}", err.message);
            assert!(!err.message.contains('\n'), "{}", err.message);
        }
    }

    #[test]
    fn relative_or_nul_paths_are_invalid() {
        let t = tree();
        let e = exporting(&[&t.root], resolver());
        for p in ["f", "", "root/f", "./f"] {
            let err = e.open(&ANYONE, p).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{p:?}");
            assert!(err.message.contains("absolute"), "{}", err.message);
        }
        let nul = format!("{}/f\0x", text(&t.root));
        assert_eq!(code(e.open(&ANYONE, &nul)), ErrorCode::InvalidRequest);
        assert_eq!(
            code(Exports::none().open(&ANYONE, "relative")),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn new_names_a_missing_or_non_directory_export() {
        let t = tree();
        let missing = t.top.join("missing");
        let err = Exports::new(&[t.root.clone(), missing.clone()]).unwrap_err();
        assert_eq!(
            err,
            format!("--export {}: No such file or directory", missing.display())
        );
        let file = t.root.join("f");
        let err = Exports::new(std::slice::from_ref(&file)).unwrap_err();
        assert_eq!(err, format!("--export {}: Not a directory", file.display()));
    }

    #[test]
    fn the_longest_root_wins() {
        let t = tree();
        let e = exporting(&[&t.top, &t.root], resolver());
        let inner = e.roots().iter().position(|r| *r == t.root).unwrap();
        let outer = e.roots().iter().position(|r| *r == t.top).unwrap();
        let p = t.root.join("a/b/g");
        let names = split(p.as_os_str().as_bytes());
        let chosen = e.candidates(&names);
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen[0].0, inner);
        assert_eq!(chosen[1].0, outer);
        assert_eq!(read(e.open(&ANYONE, text(&p))), "nested");
        // Listed in the other order, the same root is chosen.
        let e = exporting(&[&t.root, &t.top], resolver());
        let chosen = e.candidates(&names);
        assert_eq!(e.roots()[chosen[0].0], t.root);
    }

    #[test]
    fn an_enclosing_root_serves_what_a_nested_one_refuses() {
        let t = tree();
        symlink("../outside/secret", t.root.join("up")).unwrap();
        let p = t.root.join("up");
        let inner_only = exporting(&[&t.root], resolver());
        assert_eq!(
            code(inner_only.open(&ANYONE, text(&p))),
            ErrorCode::NotExported
        );
        if has_openat2() {
            let both = exporting(&[&t.root, &t.top], Resolver::Openat2);
            assert_eq!(read(both.open(&ANYONE, text(&p))), "secret");
        }
        // The walk follows no symlink under any root.
        let both = exporting(&[&t.root, &t.top], Resolver::Walk);
        assert_eq!(code(both.open(&ANYONE, text(&p))), ErrorCode::NotExported);
        // A missing file below the enclosing root is reported as missing.
        let gone = format!("{}/../outside/gone", text(&t.root));
        if has_openat2() {
            let both = exporting(&[&t.root, &t.top], Resolver::Openat2);
            assert_eq!(code(both.open(&ANYONE, &gone)), ErrorCode::NotFound);
        }
    }

    #[test]
    fn a_root_given_through_a_symlink_matches_both_spellings() {
        let t = tree();
        let alias = t.top.join("alias");
        symlink(&t.root, &alias).unwrap();
        for how in resolvers() {
            let e = exporting(&[&alias], how);
            assert_eq!(e.roots(), std::slice::from_ref(&t.root));
            assert_eq!(
                read(e.open(&ANYONE, text(&alias.join("f")))),
                "inside",
                "{how:?}"
            );
            assert_eq!(
                read(e.open(&ANYONE, text(&t.root.join("f")))),
                "inside",
                "{how:?}"
            );
        }
    }

    #[test]
    fn duplicate_exports_collapse() {
        let t = tree();
        let alias = t.top.join("alias");
        symlink(&t.root, &alias).unwrap();
        let slash = PathBuf::from(format!("{}/", text(&t.root)));
        let e = Exports::new(&[t.root.clone(), slash, alias]).unwrap();
        assert_eq!(e.roots(), std::slice::from_ref(&t.root));
        assert_eq!(e.spellings.len(), 2);
    }

    #[test]
    fn a_root_swapped_for_a_symlink_is_refused() {
        let t = tree();
        let swapped = t.top.join("swapped");
        fs::create_dir(&swapped).unwrap();
        for how in resolvers() {
            let e = exporting(&[&swapped], how);
            fs::remove_dir(&swapped).unwrap();
            symlink(t.top.join("outside"), &swapped).unwrap();
            let err = e.open(&ANYONE, text(&swapped.join("secret"))).unwrap_err();
            assert_eq!(err.code, ErrorCode::NotExported, "{how:?}");
            assert!(err.message.contains("symlink"), "{}", err.message);
            fs::remove_file(&swapped).unwrap();
            fs::create_dir(&swapped).unwrap();
        }
    }

    #[test]
    fn missing_files_and_trailing_slashes_keep_their_codes() {
        let t = tree();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert_eq!(
                code(e.open(&ANYONE, text(&t.root.join("nope")))),
                ErrorCode::NotFound,
                "{how:?}"
            );
            let file_as_dir = format!("{}/f/", text(&t.root));
            assert_eq!(
                code(e.open(&ANYONE, &file_as_dir)),
                ErrorCode::NotADirectory,
                "{how:?}"
            );
            let through_file = format!("{}/f/x", text(&t.root));
            assert_eq!(
                code(e.open(&ANYONE, &through_file)),
                ErrorCode::NotADirectory,
                "{how:?}"
            );
        }
    }

    #[test]
    fn unreadable_files_are_permission_denied() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            eprintln!("root reads everything: skipping");
            return;
        }
        let t = tree();
        let closed = t.root.join("closed");
        fs::create_dir(&closed).unwrap();
        fs::write(closed.join("x"), "x").unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(t.root.join("f"), fs::Permissions::from_mode(0o000)).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            let unreadable = e.open(&ANYONE, text(&t.root.join("f")));
            assert_eq!(code(unreadable), ErrorCode::PermissionDenied, "{how:?}");
            let unsearchable = e.open(&ANYONE, text(&closed.join("x")));
            assert_eq!(code(unsearchable), ErrorCode::PermissionDenied, "{how:?}");
        }
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn a_fifo_opens_without_blocking() {
        let t = tree();
        let fifo = t.root.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            let f = e.open(&ANYONE, text(&fifo)).unwrap();
            use std::os::unix::fs::FileTypeExt;
            assert!(f.metadata().unwrap().file_type().is_fifo(), "{how:?}");
        }
    }

    #[test]
    fn a_symlink_below_a_root_is_described_not_followed() {
        let t = tree();
        symlink("f", t.root.join("a/rel")).unwrap();
        symlink(&t.secret, t.root.join("out")).unwrap();
        symlink("loop", t.root.join("loop")).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            let (m, target) = e
                .symlink_below(&ANYONE, text(&t.root.join("a/rel")))
                .unwrap();
            assert!(m.is_symlink(), "{how:?}");
            assert_eq!(target, b"f");
            // A link pointing out is described (its target is text), never opened.
            let (_, target) = e.symlink_below(&ANYONE, text(&t.root.join("out"))).unwrap();
            assert_eq!(target, t.secret.as_os_str().as_bytes());
            let (_, target) = e
                .symlink_below(&ANYONE, text(&t.root.join("loop")))
                .unwrap();
            assert_eq!(target, b"loop");
            // Not links, a trailing slash, or outside every root: left to open().
            assert!(e.symlink_below(&ANYONE, text(&t.root.join("f"))).is_none());
            assert!(
                e.symlink_below(&ANYONE, format!("{}/", text(&t.root.join("a/rel"))))
                    .is_none()
            );
            assert!(e.symlink_below(&ANYONE, text(&t.secret)).is_none());
            assert!(e.symlink_below(&ANYONE, text(&t.root)).is_none());
        }
        // The directories above the link stay beneath the root.
        symlink(t.top.join("outside"), t.root.join("away")).unwrap();
        symlink("secret", t.top.join("outside/inner")).unwrap();
        for how in resolvers() {
            let e = exporting(&[&t.root], how);
            assert!(
                e.symlink_below(&ANYONE, text(&t.root.join("away/inner")))
                    .is_none()
            );
            let up = format!("{}/a/../../outside/inner", text(&t.root));
            assert!(e.symlink_below(&ANYONE, &up).is_none(), "{how:?}");
        }
    }

    #[test]
    fn open_walk_refuses_dotdot_and_symlinks_directly() {
        let t = tree();
        symlink("../f", t.root.join("a/in")).unwrap();
        let root = open_root(&t.root, Resolver::Walk).unwrap();
        let ok = open_walk(root.as_fd(), &[b"a", b"b", b"g"], READ_FLAGS).unwrap();
        let mut s = String::new();
        File::from(ok).read_to_string(&mut s).unwrap();
        assert_eq!(s, "nested");
        let dotdot = open_walk(root.as_fd(), &[b"a", b"..", b"f"], READ_FLAGS);
        assert!(matches!(dotdot, Err(Failure::DotDot)), "{dotdot:?}");
        let link = open_walk(root.as_fd(), &[b"a", b"in"], READ_FLAGS);
        assert!(matches!(link, Err(Failure::Symlink)), "{link:?}");
    }
}
