//! Entry counts of a directory, optionally recursive, never following symlinks.
//!
//! Entries are read as a stream (readdir over a 32 KiB getdents buffer), so a
//! directory of millions of entries costs no more memory than a small one; the
//! entry type comes from `d_type`, and only regular files (for their size) and
//! entries of unknown type are `fstatat`ed.
//!
//! The recursive walk is iterative and runs on one walker per core (up to
//! four) sharing a stack of subdirectories still to enter. A directory keeps
//! its open descriptor only while some of its subdirectories wait, and they
//! are kept by name; each is opened with
//! `openat(parent, name, O_NOFOLLOW|O_DIRECTORY)`, so no path is ever
//! re-resolved and a symlink is never followed. A chain of nested
//! directories therefore holds a descriptor or two, however deep (and one
//! small name record per level, from which an unreadable directory's path
//! is spelled).
//!
//! The walk reads with the rights of the process it runs in, and nothing
//! else: `p2p-count` runs it in the caller's own process for this host, and
//! `p2pd` only for other members, below its exports.

use crate::error::{Error, ErrorCode};
use nix::dir::{Dir, Type};
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};

/// Unreadable directories an answer names when it crosses a socket (a name
/// may take 4 KiB; a peer frame holds 1 MiB).
pub const LISTED_ON_WIRE: usize = 64;

/// What `p2p-count` reports for one directory.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirCounts {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub other: u64,
    /// Sum of the sizes of regular files.
    pub bytes: u64,
    pub recursive: bool,
    /// Subdirectories that could not be read (their contents are not counted).
    pub unreadable: u64,
    /// The first of them (at most the `listed` of [`count_dir`]), by name,
    /// so that the command can report each as find does; not printed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_dirs: Vec<Unreadable>,
}

/// A directory a recursive count could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// Below the counted directory, as `sub/deeper`.
    pub path: String,
    /// Why, in the system's words ("Permission denied").
    pub error: String,
}

impl DirCounts {
    /// Adds another walker's counts; keeps at most `listed` names.
    fn add(&mut self, other: DirCounts, listed: usize) {
        self.files += other.files;
        self.dirs += other.dirs;
        self.symlinks += other.symlinks;
        self.other += other.other;
        self.bytes += other.bytes;
        self.unreadable += other.unreadable;
        let room = listed.saturating_sub(self.unreadable_dirs.len());
        self.unreadable_dirs
            .extend(other.unreadable_dirs.into_iter().take(room));
    }

    /// Counts a directory that could not be read, named if there is room.
    fn refused(&mut self, name: &Name, error: &str, listed: usize) {
        self.unreadable += 1;
        if self.unreadable_dirs.len() < listed {
            self.unreadable_dirs.push(Unreadable {
                path: String::from_utf8_lossy(&name.path()).into_owned(),
                error: error.to_string(),
            });
        }
    }
}

/// A subdirectory's name and, through its parent, its path below the
/// counted directory; shared by the entries that wait below it.
struct Name {
    name: CString,
    parent: Option<Arc<Name>>,
}

impl Name {
    fn path(&self) -> Vec<u8> {
        let mut names = vec![self.name.as_bytes()];
        let mut up = self.parent.as_deref();
        while let Some(n) = up {
            names.push(n.name.as_bytes());
            up = n.parent.as_deref();
        }
        names.reverse();
        names.join(&b'/')
    }
}

/// True when this process may search `dir`: the kernel checks search
/// (execute) permission on a directory for every name looked up in it, `.`
/// included, with mode bits, ACLs and security modules. A directory that may
/// be listed but not searched is counted as unreadable, as its entries
/// cannot be looked at.
fn searchable(dir: BorrowedFd<'_>) -> bool {
    fstatat_nofollow(dir.as_raw_fd(), c".").is_ok()
}

/// Counts the entries of the open directory `dir` with this process's own
/// rights; names at most `listed` of the subdirectories it could not read.
pub fn count_dir(dir: OwnedFd, recursive: bool, listed: usize) -> Result<DirCounts, Error> {
    let mut counts = DirCounts {
        recursive,
        ..Default::default()
    };
    let st = fstat(dir.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::new(ErrorCode::NotADirectory, "Not a directory"));
    }
    if !searchable(dir.as_fd()) {
        return Err(Error::new(ErrorCode::PermissionDenied, "Permission denied"));
    }
    let waiting = read_level(&dir, recursive, &mut counts)?;
    if !recursive || waiting.is_empty() {
        return Ok(counts);
    }
    let dir = Arc::new(dir);
    let walk = Walk {
        queue: Mutex::new(Queue {
            work: waiting
                .into_iter()
                .map(|name| (Arc::clone(&dir), Arc::new(Name { name, parent: None })))
                .collect(),
            busy: 0,
        }),
        more: Condvar::new(),
        listed,
    };
    drop(dir);
    // One walker per core (at most four): the walk is stat calls, which the
    // kernel serves in parallel for different directories.
    let helpers = super::cores().clamp(1, 4) - 1;
    let found = std::thread::scope(|scope| {
        let others: Vec<_> = (0..helpers).map(|_| scope.spawn(|| walk.run())).collect();
        let mut all = vec![walk.run()];
        all.extend(others.into_iter().filter_map(|h| h.join().ok()));
        all
    });
    for c in found {
        counts.add(c, listed);
    }
    Ok(counts)
}

/// A recursive walk shared by its walkers: subdirectories still to enter,
/// each with its parent's descriptor. A parent stays open only while some of
/// its subdirectories wait, and the walkers take the newest first (depth
/// first), so a chain of nested directories holds one or two descriptors
/// however deep.
struct Walk {
    queue: Mutex<Queue>,
    more: Condvar,
    /// How many unreadable directories each walker names.
    listed: usize,
}

/// A subdirectory to enter: its parent's descriptor and its name.
type Entry = (Arc<OwnedFd>, Arc<Name>);

struct Queue {
    work: Vec<Entry>,
    /// Walkers reading a directory, whose subdirectories may still come.
    busy: usize,
}

impl Walk {
    /// Takes directories until none are left and none may come; returns what
    /// this walker counted.
    fn run(&self) -> DirCounts {
        let mut counts = DirCounts::default();
        while let Some((parent, name)) = self.take() {
            let found = self.enter(&parent, &name, &mut counts);
            drop(parent);
            self.done(found);
        }
        counts
    }

    fn take(&self) -> Option<Entry> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(next) = q.work.pop() {
                q.busy += 1;
                return Some(next);
            }
            if q.busy == 0 {
                return None;
            }
            q = self.more.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn done(&self, found: Vec<Entry>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.busy -= 1;
        let wake = !found.is_empty() || q.busy == 0;
        q.work.extend(found);
        drop(q);
        if wake {
            self.more.notify_all();
        }
    }

    /// Opens, checks and reads one subdirectory; returns its own subdirectories.
    fn enter(&self, parent: &OwnedFd, name: &Arc<Name>, counts: &mut DirCounts) -> Vec<Entry> {
        let child = match open_subdir(parent.as_raw_fd(), &name.name) {
            Ok(fd) => fd,
            Err(e) => {
                counts.refused(name, &Error::from_io(&e).message, self.listed);
                return Vec::new();
            }
        };
        if !searchable(child.as_fd()) {
            counts.refused(name, "Permission denied", self.listed);
            return Vec::new();
        }
        match read_level(&child, true, counts) {
            Ok(waiting) if !waiting.is_empty() => {
                let child = Arc::new(child);
                waiting
                    .into_iter()
                    .map(|n| {
                        let below = Name {
                            name: n,
                            parent: Some(Arc::clone(name)),
                        };
                        (Arc::clone(&child), Arc::new(below))
                    })
                    .collect()
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                counts.refused(name, &e.message, self.listed);
                Vec::new()
            }
        }
    }
}

/// Reads one directory, adding its entries to `counts`; returns the names of
/// its subdirectories when `collect` is set.
fn read_level(dir: &OwnedFd, collect: bool, counts: &mut DirCounts) -> Result<Vec<CString>, Error> {
    // readdir needs its own descriptor: it owns and closes it, and the parent
    // descriptor must stay usable for openat.
    let dup = nix::unistd::dup(dir)?;
    let raw = dup.as_raw_fd();
    let mut d = Dir::from_fd(dup)?;
    let mut subdirs = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let kind = match entry.file_type() {
            Some(t) => t,
            None => match fstatat_nofollow(raw, name) {
                Ok(st) => type_of(st.st_mode),
                Err(_) => {
                    counts.other += 1;
                    continue;
                }
            },
        };
        match kind {
            Type::File => {
                counts.files += 1;
                if let Ok(st) = fstatat_nofollow(raw, name) {
                    counts.bytes += st.st_size as u64;
                }
            }
            Type::Directory => {
                counts.dirs += 1;
                if collect {
                    subdirs.push(name.to_owned());
                }
            }
            Type::Symlink => counts.symlinks += 1,
            _ => counts.other += 1,
        }
    }
    Ok(subdirs)
}

fn type_of(mode: libc::mode_t) -> Type {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Type::File,
        libc::S_IFDIR => Type::Directory,
        libc::S_IFLNK => Type::Symlink,
        libc::S_IFIFO => Type::Fifo,
        libc::S_IFSOCK => Type::Socket,
        libc::S_IFCHR => Type::CharacterDevice,
        _ => Type::BlockDevice,
    }
}

fn open_subdir(parent: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags =
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `name` is a valid C string and `parent` an open descriptor.
    let fd = unsafe { libc::openat(parent, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the buffer when it returns 0.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialized by the successful call above.
    Ok(unsafe { st.assume_init() })
}

fn fstatat_nofollow(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor and C string; fstatat fills the buffer on success.
    if unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialized by the successful call above.
    Ok(unsafe { st.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn open(p: &Path) -> OwnedFd {
        OwnedFd::from(fs::File::open(p).unwrap())
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::write(r.join("a"), b"12345").unwrap();
        fs::create_dir_all(r.join("sub/deeper")).unwrap();
        fs::write(r.join("sub/b"), b"12").unwrap();
        fs::write(r.join("sub/deeper/c"), b"1").unwrap();
        std::os::unix::fs::symlink(r, r.join("sub/loop")).unwrap();
        nix::unistd::mkfifo(
            &r.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        fs::create_dir(r.join("empty")).unwrap();
        t
    }

    #[test]
    fn flat_counts_each_kind() {
        let t = tree();
        let c = count_dir(open(t.path()), false, 64).unwrap();
        assert_eq!(
            (c.files, c.dirs, c.symlinks, c.other, c.bytes),
            (1, 2, 0, 1, 5)
        );
        assert!(!c.recursive);
    }

    #[test]
    fn recursive_never_follows_symlinks() {
        let t = tree();
        let c = count_dir(open(t.path()), true, 64).unwrap();
        assert_eq!(
            (c.files, c.dirs, c.symlinks, c.other, c.bytes),
            (3, 3, 1, 1, 8)
        );
        assert_eq!(c.unreadable, 0);
    }

    /// Runs `f` on a thread whose filesystem ids are another user's when we
    /// are root (which drops its filesystem capabilities too), so that
    /// permission bits apply to it; as ourselves otherwise.
    fn as_someone_else<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                if nix::unistd::geteuid().is_root() {
                    // SAFETY: per-thread id changes of this test thread only.
                    unsafe {
                        libc::syscall(libc::SYS_setfsgid, 65534);
                        libc::syscall(libc::SYS_setfsuid, 65534);
                    }
                }
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn refused_directories_are_not_entered_and_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        let r = t.path();
        fs::create_dir_all(r.join("empty/closed/x")).unwrap();
        let mode = |p: &Path, m| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        for d in [r, &r.join("sub"), &r.join("sub/deeper"), &r.join("empty")] {
            mode(d, 0o755);
        }
        // Not even listable; listable but not searchable.
        mode(&r.join("empty/closed"), 0o700);
        mode(&r.join("sub/deeper"), 0o744);
        if !nix::unistd::geteuid().is_root() {
            mode(&r.join("empty/closed"), 0o000);
            mode(&r.join("sub/deeper"), 0o400);
        }
        let c = as_someone_else(|| count_dir(open(r), true, 64).unwrap());
        assert_eq!((c.files, c.dirs, c.unreadable), (2, 4, 2), "{c:?}");
        let mut named: Vec<(&str, &str)> = c
            .unreadable_dirs
            .iter()
            .map(|u| (u.path.as_str(), u.error.as_str()))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                ("empty/closed", "Permission denied"),
                ("sub/deeper", "Permission denied")
            ]
        );
        // At most `listed` are named; all are counted.
        let c = as_someone_else(|| count_dir(open(r), true, 1).unwrap());
        assert_eq!((c.unreadable, c.unreadable_dirs.len()), (2, 1));
        // The directory asked for itself is refused as a whole.
        let e = as_someone_else(|| count_dir(open(&r.join("sub/deeper")), false, 64).unwrap_err());
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        for d in [r.join("empty/closed"), r.join("sub/deeper")] {
            mode(&d, 0o755);
        }
    }

    #[test]
    fn empty_directory_and_not_a_directory() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            count_dir(open(t.path()), true, 64).unwrap(),
            DirCounts {
                recursive: true,
                ..Default::default()
            }
        );
        fs::write(t.path().join("f"), b"").unwrap();
        let e = count_dir(open(&t.path().join("f")), false, 64).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotADirectory);
    }

    /// What a plain recursive walk with `symlink_metadata` finds.
    fn oracle(dir: &Path, c: &mut DirCounts) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            let t = md.file_type();
            if t.is_file() {
                c.files += 1;
                c.bytes += md.len();
            } else if t.is_dir() {
                c.dirs += 1;
                oracle(&e.path(), c);
            } else if t.is_symlink() {
                c.symlinks += 1;
            } else {
                c.other += 1;
            }
        }
    }

    #[test]
    fn the_parallel_walk_counts_what_a_plain_walk_does() {
        let t = tempfile::tempdir().unwrap();
        // A tree of uneven shape: wide and deep branches, files of many
        // sizes, symlinks, so the walkers share and steal work unevenly.
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut dirs = vec![t.path().to_path_buf()];
        for i in 0..3000 {
            let parent = dirs[next() as usize % dirs.len()].clone();
            match next() % 10 {
                0..=2 => {
                    let d = parent.join(format!("d{i}"));
                    fs::create_dir(&d).unwrap();
                    dirs.push(d);
                }
                3 => std::os::unix::fs::symlink(&parent, parent.join(format!("l{i}"))).unwrap(),
                _ => fs::write(
                    parent.join(format!("f{i}")),
                    vec![b'x'; next() as usize % 5000],
                )
                .unwrap(),
            }
        }
        let mut want = DirCounts {
            recursive: true,
            ..Default::default()
        };
        oracle(t.path(), &mut want);
        assert!(want.dirs > 500 && want.files > 1000, "{want:?}");
        for _ in 0..5 {
            assert_eq!(count_dir(open(t.path()), true, 64).unwrap(), want);
        }
    }

    #[test]
    fn deep_nesting_holds_few_descriptors() {
        let t = tempfile::tempdir().unwrap();
        let root = open(t.path());
        // Build 3,000 levels with openat-relative mkdir (paths would get too long).
        let mut fd = nix::unistd::dup(&root).unwrap();
        for _ in 0..3000 {
            nix::sys::stat::mkdirat(&fd, "d", nix::sys::stat::Mode::from_bits_truncate(0o755))
                .unwrap();
            fd = open_subdir(fd.as_raw_fd(), c"d").unwrap();
        }
        let c = count_dir(root, true, 64).unwrap();
        assert_eq!(c.dirs, 3000);
    }

    #[test]
    fn a_hundred_thousand_entries() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..100_000 {
            fs::File::create(t.path().join(i.to_string())).unwrap();
        }
        let c = count_dir(open(t.path()), false, 64).unwrap();
        assert_eq!(c.files, 100_000);
    }
}
