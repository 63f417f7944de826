//! Who is asking on the local socket, and reading with their rights.
//!
//! The caller's ids (uid, gid and supplementary groups) are taken from the
//! socket itself (SO_PEERCRED, SO_PEERGROUPS): the kernel recorded them when
//! the caller connected, so nothing is looked up later by pid, which another
//! process may have been given meanwhile.
//!
//! The descriptors a caller passes carry their own rights. What the daemon
//! opens on a caller's behalf (the subdirectories of a recursive count) must
//! carry the caller's too. A daemon running as root gets that from the
//! kernel: each walker thread takes the caller's supplementary groups,
//! filesystem gid and filesystem uid for the length of the walk, and its own
//! back when [`AsCaller`]'s guard drops. These are raw per-thread system
//! calls; glibc's `setgroups` wrapper would change every thread of the
//! daemon. Leaving fsuid 0 also drops the filesystem capabilities
//! (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, ...) from the thread's effective
//! set, and taking fsuid 0 back restores them. Each open is then decided as
//! for the caller: mode bits, ACLs, and the security-module hooks that look at
//! the ids (the thread keeps the daemon's own security label).
//!
//! A daemon that is not root cannot take another user's ids. For a caller
//! other than its own user it enters only what the caller's mode bits allow,
//! and no directory carrying an access ACL: see [`ModeBits`].

use crate::ops::count::{Descend, Everywhere, ModeBits, searchable};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The most supplementary groups a process can have (the kernel's NGROUPS_MAX).
const MAX_GROUPS: usize = 65_536;

/// The process on the other end of a local connection, as it was when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For log lines only: a pid may be reused.
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The peer of a connected Unix stream, from the kernel's record of its connect.
    pub fn of_stream(stream: &UnixStream) -> io::Result<Caller> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let cred = getsockopt(stream, PeerCredentials)?;
        Ok(Caller {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(stream)?,
        })
    }

    /// The daemon's own user or root: reading with the daemon's rights shows
    /// them nothing they could not read themselves.
    pub fn is_trusted(&self, daemon_euid: u32) -> bool {
        self.uid == daemon_euid || self.uid == 0
    }

    /// The rights a count walks with for this caller, in a daemon running as `daemon_euid`.
    pub fn descend(&self, daemon_euid: u32) -> Arc<dyn Descend + Send + Sync> {
        if self.is_trusted(daemon_euid) {
            Arc::new(Everywhere)
        } else if daemon_euid == 0 {
            Arc::new(AsCaller(self.clone()))
        } else {
            Arc::new(ModeBits {
                uid: self.uid,
                gid: self.gid,
                groups: self.groups.clone(),
            })
        }
    }
}

/// The supplementary groups of a connected peer (SO_PEERGROUPS).
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer holds `len` bytes; the kernel writes at most that.
        let r = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
            // A kernel before 4.13: no supplementary groups, which can only
            // narrow what the caller is let into.
            return Ok(Vec::new());
        }
        // Too small a buffer: the kernel said how large it must be.
        if e.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() && needed <= MAX_GROUPS {
            groups.resize(needed, 0);
            continue;
        }
        return Err(e);
    }
}

/// Walks with the caller's own filesystem credentials; for a daemon running as root.
pub struct AsCaller(pub Caller);

impl Descend for AsCaller {
    fn with_rights(&self, walk: &mut dyn FnMut()) -> io::Result<()> {
        let _taken = Taken::take(&self.0)?;
        walk();
        Ok(())
    }

    fn may_enter(&self, dir: BorrowedFd<'_>, _st: &libc::stat) -> bool {
        // Opening it for reading was decided by the kernel already, with the
        // caller's credentials; searching it is asked of the kernel too.
        searchable(dir)
    }
}

/// This thread's filesystem credentials before a caller's were taken; put
/// back on drop.
struct Taken {
    groups: Vec<libc::gid_t>,
    fsgid: u32,
    fsuid: u32,
}

impl Taken {
    /// Gives the calling thread `caller`'s groups, fsgid and fsuid.
    fn take(caller: &Caller) -> io::Result<Taken> {
        let groups = thread_groups()?;
        set_thread_groups(&caller.groups)?;
        let fsgid = set_fsgid(caller.gid);
        let fsuid = set_fsuid(caller.uid);
        let taken = Taken {
            groups,
            fsgid,
            fsuid,
        };
        if current_fsgid() != caller.gid || current_fsuid() != caller.uid {
            // Not allowed (no CAP_SETUID or CAP_SETGID): undo what did change.
            drop(taken);
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(taken)
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        // fsuid first: taking 0 back restores the filesystem capabilities.
        set_fsuid(self.fsuid);
        set_fsgid(self.fsgid);
        let groups = set_thread_groups(&self.groups);
        if current_fsuid() != self.fsuid || current_fsgid() != self.fsgid || groups.is_err() {
            // A worker thread left with a caller's rights would serve the next
            // query with them: better no daemon than a wrong one.
            log::error!("cannot restore a worker thread's own credentials; exiting");
            std::process::abort();
        }
    }
}

/// The calling thread's supplementary groups.
fn thread_groups() -> io::Result<Vec<libc::gid_t>> {
    // SAFETY: a count query with no buffer, then a read into one of that size.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![0; n as usize];
    let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(got as usize);
    Ok(groups)
}

/// Sets the supplementary groups of the calling thread only (the raw system
/// call, not glibc's wrapper, which sets them in every thread).
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a valid slice of gids.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets this thread's fsuid; returns the one it had (setfsuid's odd contract:
/// success is seen only by asking again).
fn set_fsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid takes an id and changes only the calling thread.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) as u32 }
}

fn set_fsgid(gid: u32) -> u32 {
    // SAFETY: as set_fsuid.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) as u32 }
}

/// This thread's fsuid: an invalid id (-1) changes nothing and returns it.
fn current_fsuid() -> u32 {
    set_fsuid(u32::MAX)
}

fn current_fsgid() -> u32 {
    set_fsgid(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::count::count_dir;
    use std::fs;
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::PermissionsExt;

    /// A line of /proc/thread-self/status, such as "Uid" or "CapEff".
    fn status(field: &str) -> String {
        let s = fs::read_to_string("/proc/thread-self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap()
            .trim()
            .to_string()
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn the_peer_is_this_process_with_its_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = Caller::of_stream(&a).unwrap();
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(c.pid, std::process::id() as i32);
        let mut mine = thread_groups().unwrap();
        let mut got = c.groups.clone();
        mine.sort();
        got.sort();
        assert_eq!(got, mine);
    }

    #[test]
    fn a_worker_walks_as_the_caller_and_comes_back_as_itself() {
        if !is_root() {
            eprintln!("skipped: taking another user's credentials needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::set_permissions(r, fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["open", "closed", "group"] {
            fs::create_dir(r.join(d)).unwrap();
            fs::write(r.join(d).join("f"), b"x").unwrap();
        }
        fs::set_permissions(r.join("open"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(r.join("closed"), fs::Permissions::from_mode(0o700)).unwrap();
        // Readable through a supplementary group only.
        nix::unistd::chown(
            &r.join("group"),
            None,
            Some(nix::unistd::Gid::from_raw(4242)),
        )
        .unwrap();
        fs::set_permissions(r.join("group"), fs::Permissions::from_mode(0o750)).unwrap();
        let secret = r.join("secret");
        fs::write(&secret, b"root only").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();

        let caller = Caller {
            pid: 0,
            uid: 65534,
            gid: 65534,
            groups: vec![4242],
        };
        let descend = caller.descend(0);
        // One thread standing for a pool worker: a walk for the caller, then
        // whatever comes next must run with the worker's own rights.
        let worker = std::thread::spawn(move || {
            let before = (
                status("Uid"),
                status("Gid"),
                status("Groups"),
                status("CapEff"),
            );
            let mut inside = None;
            descend
                .with_rights(&mut || {
                    inside = Some((
                        status("Uid"),
                        status("Groups"),
                        status("CapEff"),
                        fs::File::open(&secret).is_err(),
                    ));
                })
                .unwrap();
            let counts = count_dir(
                OwnedFd::from(fs::File::open(t.path()).unwrap()),
                true,
                &*descend,
            )
            .unwrap();
            let after = (
                status("Uid"),
                status("Gid"),
                status("Groups"),
                status("CapEff"),
            );
            let reads = fs::read(&secret).is_ok();
            (before, inside.unwrap(), counts, after, reads)
        });
        let (before, inside, counts, after, reads) = worker.join().unwrap();
        let fsuid = |uid: &str| uid.split_whitespace().nth(3).unwrap().to_string();
        assert_eq!(fsuid(&inside.0), "65534");
        assert_eq!(inside.1, "4242");
        let cap_eff = u64::from_str_radix(&inside.2, 16).unwrap();
        // CAP_DAC_OVERRIDE is bit 1, CAP_DAC_READ_SEARCH bit 2.
        assert_eq!(
            cap_eff & 0b110,
            0,
            "the filesystem capabilities are dropped: {}",
            inside.2
        );
        assert!(inside.3, "the caller cannot open root's 0600 file");
        // open/ and group/ are entered, closed/ is not.
        assert_eq!((counts.files, counts.dirs, counts.unreadable), (3, 3, 1));
        assert_eq!(before, after, "the worker's own credentials are back");
        assert!(reads, "and it reads as root again");
        // The test's own thread never changed.
        assert_eq!(fsuid(&status("Uid")), "0");
    }

    #[test]
    fn a_daemon_not_root_falls_back_to_mode_bits() {
        let c = Caller {
            pid: 0,
            uid: 1001,
            gid: 1001,
            groups: vec![],
        };
        assert!(c.is_trusted(1001));
        assert!(!c.is_trusted(1000));
        assert!(
            Caller {
                uid: 0,
                ..c.clone()
            }
            .is_trusted(1000)
        );
    }
}
