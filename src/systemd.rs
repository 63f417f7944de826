//! Running under systemd, without libsystemd: the few environment variables
//! and the one datagram protocol a `Type=notify` service needs.
//!
//! - [`notify`]: tell the manager `READY=1`, `STOPPING=1`, `WATCHDOG=1`,
//!   `STATUS=...` through `$NOTIFY_SOCKET` (sd_notify(3)).
//! - [`watchdog_interval`]: `WatchdogSec=` as the service sees it; ping at
//!   half of it.
//! - [`credential`]: a file passed with `LoadCredential=`, such as the
//!   cluster key.
//! - [`listen_fds`]: sockets passed by a `.socket` unit (sd_listen_fds(3)).
//!
//! Outside systemd every one of these finds nothing and does nothing.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sends `state` (one or more `KEY=VALUE` lines, such as `READY=1`) to the
/// service manager. `Ok(false)` when not started by one (`NOTIFY_SOCKET`
/// unset), so callers need not check first.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(addr) if !addr.is_empty() => notify_to(&addr, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the notification socket `addr`: a path, or an abstract
/// socket name when it starts with `@`.
fn notify_to(addr: &OsStr, state: &str) -> io::Result<()> {
    let bytes = addr.as_bytes();
    let to = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        Some(b'/') => SocketAddr::from_pathname(Path::new(addr))?,
        // systemd also knows vsock: for virtual machines; p2pd runs on hosts.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "NOTIFY_SOCKET={}: not a Unix socket",
                    addr.to_string_lossy()
                ),
            ));
        }
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &to)?;
    if sent != state.len() {
        // A datagram goes whole or not at all; this is only a guard.
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification truncated",
        ));
    }
    Ok(())
}

/// How often the manager expects `WATCHDOG=1` at the latest, when it
/// watches this process (`WatchdogSec=`). Ping at half of it.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    // WATCHDOG_PID names the process meant; a child that inherited the
    // variables must not ping for its parent.
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The file of the systemd credential `name` (`LoadCredential=NAME:...`),
/// when the manager passed it.
pub fn credential(name: &str) -> Option<PathBuf> {
    credential_in(
        std::env::var_os("CREDENTIALS_DIRECTORY")
            .as_deref()
            .map(Path::new),
        name,
    )
}

fn credential_in(dir: Option<&Path>, name: &str) -> Option<PathBuf> {
    // A credential name is one path component; anything else is a mistake
    // that must not reach outside the directory.
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return None;
    }
    let dir = dir.filter(|d| d.is_absolute())?;
    let path = dir.join(name);
    path.is_file().then_some(path)
}

/// Set once the passed sockets are taken, so that no descriptor is ever
/// owned twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: RawFd = 3;

/// Takes the sockets passed by socket activation (`LISTEN_FDS`, from fd 3),
/// marked close-on-exec. Empty when none were passed, when they were meant
/// for another process (`LISTEN_PID`), or on any call after the first.
///
/// The variables are left in the environment: changing the environment is
/// unsound while other threads may read it, and a child would ignore them
/// anyway, since `LISTEN_PID` names us and the descriptors close on exec.
pub fn listen_fds() -> Vec<OwnedFd> {
    let fds = listen_fds_from(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    if fds.is_empty() || TAKEN.swap(true, Ordering::SeqCst) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: only querying flags; an invalid fd gives EBADF, no harm.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 {
            log::warn!("LISTEN_FDS names fd {fd}, which is not open; skipped");
            continue;
        }
        // SAFETY: as above, on a descriptor we now know is open.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
            log::warn!(
                "cannot set close-on-exec on fd {fd}: {}",
                io::Error::last_os_error()
            );
        }
        // SAFETY: systemd passed this descriptor to this process (LISTEN_PID
        // matched) and nothing else in it claims fds from 3 on; TAKEN makes
        // sure this happens once.
        out.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    out
}

/// The descriptors passed to process `me`, from the variables' values.
fn listen_fds_from(pid: Option<&str>, count: Option<&str>, me: u32) -> Vec<RawFd> {
    if pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(me) {
        return Vec::new();
    }
    let n: RawFd = match count.and_then(|c| c.trim().parse().ok()) {
        // Far more than any .socket unit passes; a bigger count is garbage.
        Some(n) if (1..=4096).contains(&n) => n,
        _ => return Vec::new(),
    };
    (LISTEN_FDS_START..LISTEN_FDS_START + n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn notify_reaches_a_socket_at_a_path() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(receive(&sock), "READY=1");
        notify_to(path.as_os_str(), "STATUS=serving 3 members\nWATCHDOG=1").unwrap();
        assert_eq!(receive(&sock), "STATUS=serving 3 members\nWATCHDOG=1");
        notify_to(path.as_os_str(), "STOPPING=1").unwrap();
        assert_eq!(receive(&sock), "STOPPING=1");
    }

    #[test]
    fn notify_reaches_an_abstract_socket() {
        let name = format!("p2p-test-notify-{}", std::process::id());
        let sock =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        notify_to(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        assert_eq!(receive(&sock), "READY=1");
    }

    #[test]
    fn notify_reports_what_it_cannot_reach() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("nobody-listens");
        assert!(notify_to(gone.as_os_str(), "READY=1").is_err());
        let e = notify_to(OsStr::new("vsock:2:1234"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn watchdog_is_for_the_named_process_only() {
        let me = 4242;
        assert_eq!(
            watchdog_from(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("4242"), me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_from(Some("30000000"), Some("1"), me), None);
        assert_eq!(watchdog_from(Some("30000000"), Some("x"), me), None);
        assert_eq!(watchdog_from(None, Some("4242"), me), None);
        assert_eq!(watchdog_from(Some("0"), None, me), None);
        assert_eq!(watchdog_from(Some("soon"), None, me), None);
    }

    #[test]
    fn credentials_are_files_in_the_directory() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cluster.key"), "k\n").unwrap();
        assert_eq!(
            credential_in(Some(t.path()), "cluster.key"),
            Some(t.path().join("cluster.key"))
        );
        assert_eq!(credential_in(Some(t.path()), "other.key"), None);
        assert_eq!(credential_in(None, "cluster.key"), None);
        assert_eq!(credential_in(Some(Path::new("rel")), "cluster.key"), None);
        assert_eq!(credential_in(Some(t.path()), "../cluster.key"), None);
        assert_eq!(credential_in(Some(t.path()), ".."), None);
        assert_eq!(credential_in(Some(t.path()), ""), None);
    }

    /// Set in the environment of the child that `listen_fds_takes_a_passed_socket`
    /// starts: the path its fd 3 is bound to.
    const CHILD: &str = "P2P_LISTEN_TEST_PATH";

    /// Passes a listening socket as fd 3 to a child, with `LISTEN_PID` set as
    /// systemd sets it: by the child itself, since only it knows its pid.
    #[test]
    fn listen_fds_takes_a_passed_socket() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("p2pd.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let fd = listener.as_raw_fd();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "export LISTEN_PID=$$; exec \"$@\"", "sh"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "systemd::tests::listen_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LISTEN_FDS", "1")
            .env(CHILD, &path);
        // SAFETY: dup2 and fcntl are async-signal-safe, so they may run
        // between fork and exec. dup2 leaves its copy open across exec; when
        // the socket already is fd 3, dup2 does nothing and fcntl does that.
        unsafe {
            cmd.pre_exec(move || {
                let r = if fd == LISTEN_FDS_START {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, LISTEN_FDS_START)
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs only as the child of `listen_fds_takes_a_passed_socket`.
    #[test]
    fn listen_child() {
        let Some(path) = std::env::var_os(CHILD) else {
            return;
        };
        let fds = listen_fds();
        assert_eq!(fds.len(), 1);
        assert!(listen_fds().is_empty(), "taken once only");
        let fd = fds.into_iter().next().unwrap();
        // SAFETY: querying the flags of a descriptor we own.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "close-on-exec is set");
        let listener = std::os::unix::net::UnixListener::from(fd);
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.as_pathname(), Some(Path::new(&path)));
    }

    #[test]
    fn listen_fds_are_for_the_named_process_only() {
        let me = 4242;
        assert_eq!(listen_fds_from(Some("4242"), Some("2"), me), vec![3, 4]);
        assert_eq!(listen_fds_from(Some("4242"), Some("1"), me), vec![3]);
        assert!(listen_fds_from(Some("1"), Some("2"), me).is_empty());
        assert!(listen_fds_from(None, Some("2"), me).is_empty());
        assert!(listen_fds_from(Some("4242"), None, me).is_empty());
        assert!(listen_fds_from(Some("4242"), Some("0"), me).is_empty());
        assert!(listen_fds_from(Some("4242"), Some("-1"), me).is_empty());
        assert!(listen_fds_from(Some("4242"), Some("99999"), me).is_empty());
    }
}
