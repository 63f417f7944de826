//! Who is asking on the local socket.
//!
//! The caller's ids are taken from the socket itself (SO_PEERCRED): the kernel recorded them when
//! the caller connected, so nothing is looked up later by pid, which another
//! process may have been given meanwhile.
//!
//! The daemon reads for a caller other than its own user and root only
//! through the descriptors that caller passes, which carry the caller's own
//! rights. It opens nothing on their behalf: not a path, not a subdirectory.
//! A directory count of this host is walked by the command itself, in the
//! caller's process, so every directory it enters is decided for the caller
//! by the kernel (mode bits, ACLs and security modules alike, which a daemon
//! could not match by taking the caller's ids: it would keep its own
//! security label).

use std::io;
use std::os::unix::net::UnixStream;

/// The process on the other end of a local connection, as it was when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For log lines only: a pid may be reused.
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
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
        })
    }

    /// The daemon's own user or root: reading with the daemon's rights shows
    /// them nothing they could not read themselves.
    pub fn is_trusted(&self, daemon_euid: u32) -> bool {
        self.uid == daemon_euid || self.uid == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = Caller::of_stream(&a).unwrap();
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(c.gid, nix::unistd::getegid().as_raw());
        assert_eq!(c.pid, std::process::id() as i32);
    }

    #[test]
    fn only_the_daemons_own_user_and_root_are_trusted() {
        let c = Caller {
            pid: 0,
            uid: 1001,
            gid: 1001,
        };
        assert!(c.is_trusted(1001));
        assert!(!c.is_trusted(1000));
        assert!(Caller { uid: 0, ..c }.is_trusted(1000));
    }
}
