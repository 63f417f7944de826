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
//! directories therefore holds a descriptor or two, however deep.

use crate::error::{Error, ErrorCode};
use nix::dir::{Dir, Type};
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};

/// What `p2p-count` reports for one directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// With whose rights a count walks: the daemon uses it to never enter a
/// directory the asking user could not.
pub trait Descend: Sync {
    /// Runs `walk` on the calling thread with the rights this count reads
    /// with: once for the whole count, and once on each helper thread of a
    /// recursive walk. An error means the rights could not be taken, and
    /// then `walk` has not run.
    fn with_rights(&self, walk: &mut dyn FnMut()) -> io::Result<()> {
        walk();
        Ok(())
    }

    /// Whether the directory open as `dir` (metadata `st`) may be listed and
    /// searched; asked on the thread running `with_rights`.
    fn may_enter(&self, dir: BorrowedFd<'_>, st: &libc::stat) -> bool;
}

/// Enters everything.
pub struct Everywhere;

impl Descend for Everywhere {
    fn may_enter(&self, _dir: BorrowedFd<'_>, _st: &libc::stat) -> bool {
        true
    }
}

/// Enters a directory only if a process with these ids could list and
/// search it by its permission bits (read and execute), and never one that
/// carries an access ACL, whose entries this check does not evaluate: never
/// wider than what the kernel would allow, sometimes narrower. For a daemon
/// that cannot take the caller's own credentials (it is not root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeBits {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl ModeBits {
    fn bits_allow(&self, st: &libc::stat) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = st.st_mode;
        let bits = if st.st_uid == self.uid {
            (mode >> 6) & 0o7
        } else if st.st_gid == self.gid || self.groups.contains(&st.st_gid) {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        };
        bits & 0o5 == 0o5
    }
}

impl Descend for ModeBits {
    fn may_enter(&self, dir: BorrowedFd<'_>, st: &libc::stat) -> bool {
        self.bits_allow(st) && (self.uid == 0 || !has_access_acl(dir))
    }
}

/// True when `dir` carries a POSIX access ACL, or when that cannot be told.
pub fn has_access_acl(dir: BorrowedFd<'_>) -> bool {
    // SAFETY: a size query (null buffer, length 0) on a valid descriptor.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if n >= 0 {
        return true;
    }
    let e = io::Error::last_os_error().raw_os_error();
    // No such attribute, or a file system without ACLs: the mode bits are all.
    !matches!(e, Some(libc::ENODATA) | Some(libc::EOPNOTSUPP))
}

/// True when the calling thread's credentials may search `dir`: the kernel
/// checks search (execute) permission on a directory for every name looked
/// up in it, `.` included, with mode bits, ACLs and security modules.
pub fn searchable(dir: BorrowedFd<'_>) -> bool {
    fstatat_nofollow(dir.as_raw_fd(), c".").is_ok()
}

/// Counts the entries of the open directory `dir`, with the rights `descend` gives.
pub fn count_dir(dir: OwnedFd, recursive: bool, descend: &dyn Descend) -> Result<DirCounts, Error> {
    let mut dir = Some(dir);
    let mut counted = None;
    descend
        .with_rights(&mut || {
            if let Some(dir) = dir.take() {
                counted = Some(count_with_rights(dir, recursive, descend));
            }
        })
        .map_err(|e| {
            Error::new(
                ErrorCode::Internal,
                format!("cannot take the caller's rights for the walk: {e}"),
            )
        })?;
    counted.unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "the walk did not run")))
}

fn count_with_rights(
    dir: OwnedFd,
    recursive: bool,
    descend: &dyn Descend,
) -> Result<DirCounts, Error> {
    let mut counts = DirCounts {
        recursive,
        ..Default::default()
    };
    let st = fstat(dir.as_raw_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::new(ErrorCode::NotADirectory, "Not a directory"));
    }
    if !descend.may_enter(dir.as_fd(), &st) {
        return Err(Error::new(ErrorCode::PermissionDenied, "Permission denied"));
    }
    let waiting = read_level(&dir, recursive, &mut counts)?;
    if !recursive || waiting.is_empty() {
        return Ok(counts);
    }
    let dir = Arc::new(dir);
    let walk = Walk {
        queue: Mutex::new(Queue {
            work: waiting.into_iter().map(|n| (Arc::clone(&dir), n)).collect(),
            busy: 0,
        }),
        more: Condvar::new(),
        descend,
    };
    drop(dir);
    // One walker per core (at most four): the walk is stat calls, which the
    // kernel serves in parallel for different directories. Each helper takes
    // the walk's rights itself; one that cannot leaves the work to the others.
    let helpers = super::cores().clamp(1, 4) - 1;
    let found = std::thread::scope(|scope| {
        let others: Vec<_> = (0..helpers)
            .map(|_| {
                scope.spawn(|| {
                    let mut c = DirCounts::default();
                    let _ = descend.with_rights(&mut || c = walk.run());
                    c
                })
            })
            .collect();
        let mut all = vec![walk.run()];
        all.extend(others.into_iter().filter_map(|h| h.join().ok()));
        all
    });
    for c in found {
        counts.files += c.files;
        counts.dirs += c.dirs;
        counts.symlinks += c.symlinks;
        counts.other += c.other;
        counts.bytes += c.bytes;
        counts.unreadable += c.unreadable;
    }
    Ok(counts)
}

/// A recursive walk shared by its walkers: subdirectories still to enter,
/// each with its parent's descriptor. A parent stays open only while some of
/// its subdirectories wait, and the walkers take the newest first (depth
/// first), so a chain of nested directories holds one or two descriptors
/// however deep.
struct Walk<'a> {
    queue: Mutex<Queue>,
    more: Condvar,
    descend: &'a dyn Descend,
}

struct Queue {
    work: Vec<(Arc<OwnedFd>, CString)>,
    /// Walkers reading a directory, whose subdirectories may still come.
    busy: usize,
}

impl Walk<'_> {
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

    fn take(&self) -> Option<(Arc<OwnedFd>, CString)> {
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

    fn done(&self, found: Vec<(Arc<OwnedFd>, CString)>) {
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
    fn enter(
        &self,
        parent: &OwnedFd,
        name: &CStr,
        counts: &mut DirCounts,
    ) -> Vec<(Arc<OwnedFd>, CString)> {
        let child = match open_subdir(parent.as_raw_fd(), name) {
            Ok(fd) => fd,
            Err(_) => {
                counts.unreadable += 1;
                return Vec::new();
            }
        };
        match fstat(child.as_raw_fd()) {
            Ok(st) if self.descend.may_enter(child.as_fd(), &st) => {}
            _ => {
                counts.unreadable += 1;
                return Vec::new();
            }
        }
        match read_level(&child, true, counts) {
            Ok(waiting) if !waiting.is_empty() => {
                let child = Arc::new(child);
                waiting
                    .into_iter()
                    .map(|n| (Arc::clone(&child), n))
                    .collect()
            }
            Ok(_) => Vec::new(),
            Err(_) => {
                counts.unreadable += 1;
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

    struct Refuse(u64);
    impl Descend for Refuse {
        fn may_enter(&self, _dir: BorrowedFd<'_>, st: &libc::stat) -> bool {
            st.st_ino != self.0
        }
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
        let c = count_dir(open(t.path()), false, &Everywhere).unwrap();
        assert_eq!(
            (c.files, c.dirs, c.symlinks, c.other, c.bytes),
            (1, 2, 0, 1, 5)
        );
        assert!(!c.recursive);
    }

    #[test]
    fn recursive_never_follows_symlinks() {
        let t = tree();
        let c = count_dir(open(t.path()), true, &Everywhere).unwrap();
        assert_eq!(
            (c.files, c.dirs, c.symlinks, c.other, c.bytes),
            (3, 3, 1, 1, 8)
        );
        assert_eq!(c.unreadable, 0);
    }

    #[test]
    fn refused_directories_are_not_entered() {
        let t = tree();
        let ino = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(t.path().join("sub")).unwrap().ino()
        };
        let c = count_dir(open(t.path()), true, &Refuse(ino)).unwrap();
        assert_eq!((c.files, c.dirs, c.unreadable), (1, 2, 1));
    }

    #[test]
    fn empty_directory_and_not_a_directory() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            count_dir(open(t.path()), true, &Everywhere).unwrap(),
            DirCounts {
                recursive: true,
                ..Default::default()
            }
        );
        fs::write(t.path().join("f"), b"").unwrap();
        let e = count_dir(open(&t.path().join("f")), false, &Everywhere).unwrap_err();
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
            assert_eq!(count_dir(open(t.path()), true, &Everywhere).unwrap(), want);
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
        let c = count_dir(root, true, &Everywhere).unwrap();
        assert_eq!(c.dirs, 3000);
    }

    #[test]
    fn a_hundred_thousand_entries() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..100_000 {
            fs::File::create(t.path().join(i.to_string())).unwrap();
        }
        let c = count_dir(open(t.path()), false, &Everywhere).unwrap();
        assert_eq!(c.files, 100_000);
    }

    #[test]
    fn mode_bits_by_owner_group_and_other() {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_uid = 1000;
        st.st_gid = 100;
        st.st_mode = libc::S_IFDIR | 0o750;
        let ids = |uid, gid, groups: &[u32]| ModeBits {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        let (owner, member) = (ids(1000, 1000, &[]), ids(1001, 1001, &[100]));
        let (other, root) = (ids(1002, 1002, &[]), ids(0, 0, &[]));
        assert!(owner.bits_allow(&st));
        assert!(member.bits_allow(&st));
        assert!(!other.bits_allow(&st));
        assert!(root.bits_allow(&st));
        st.st_mode = libc::S_IFDIR | 0o711; // searchable but not listable
        assert!(!member.bits_allow(&st));
    }

    #[test]
    fn a_directory_with_an_access_acl_is_not_entered_by_mode_bits() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        let sub = t.path().join("sub");
        for d in [t.path(), &sub] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dir = open(&sub);
        assert!(!has_access_acl(dir.as_fd()));
        if !set_acl(&sub) {
            eprintln!("skipped: this file system takes no ACLs");
            return;
        }
        assert!(has_access_acl(dir.as_fd()));
        let me = ModeBits {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        };
        let st = fstat(dir.as_raw_fd()).unwrap();
        assert!(me.bits_allow(&st), "mode 0755 alone would let it in");
        assert!(!me.may_enter(dir.as_fd(), &st));
        // The walk counts it as unreadable.
        let root = open(t.path());
        let st = fstat(root.as_raw_fd()).unwrap();
        assert!(me.may_enter(root.as_fd(), &st));
        let c = count_dir(root, true, &me).unwrap();
        assert_eq!((c.files, c.dirs, c.unreadable), (1, 2, 1));
    }

    /// Gives `dir` an access ACL (one that denies uid 4242 everything);
    /// false when the file system takes none.
    fn set_acl(dir: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let entries: [(u16, u16, u32); 5] = [
            (0x01, 7, u32::MAX), // ACL_USER_OBJ rwx
            (0x02, 0, 4242),     // ACL_USER 4242 ---
            (0x04, 5, u32::MAX), // ACL_GROUP_OBJ r-x
            (0x10, 5, u32::MAX), // ACL_MASK r-x
            (0x20, 5, u32::MAX), // ACL_OTHER r-x
        ];
        let mut value = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            value.extend(tag.to_le_bytes());
            value.extend(perm.to_le_bytes());
            value.extend(id.to_le_bytes());
        }
        let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and a buffer of the given length.
        let r = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"system.posix_acl_access".as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        r == 0
    }
}
