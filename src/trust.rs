//! Whom a command may hand its descriptors to: the one check every command
//! makes before it sends a byte to a daemon's socket.
//!
//! A command opens files with its caller's rights and passes the descriptors
//! over the socket, so whoever listens there reads what the caller can read.
//! Two checks stand in the way of a listener planted by another user (say in
//! a `/tmp/p2p-UID` made in advance):
//!
//! 1. The directories leading to the socket (symlinks resolved) belong to
//!    root or to the caller, and neither group nor others may write to them,
//!    so nobody else can have put the socket there or swap it later. Above
//!    the socket's own directory, a root-owned sticky directory such as `/tmp`
//!    is fine: nobody else may rename or remove our entries in it. The
//!    socket's own directory may also be one that systemd's
//!    `RuntimeDirectory=` made directly below a root-owned `/run`, whoever it
//!    belongs to: it is the service user's.
//! 2. Once connected, the kernel says who listens (`SO_PEERCRED`): the
//!    caller, root, or the owner of that `/run` directory.
//!
//! The rules are [`judge_chain`] and [`judge_daemon`], pure functions of what
//! `stat` and the kernel said; [`connect`] gathers those facts and applies them.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// One directory on the way to the socket, as `stat` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFacts {
    pub path: PathBuf,
    pub uid: u32,
    /// The permission bits, sticky bit included.
    pub mode: u32,
}

/// Why a socket is not trusted, or could not be reached.
#[derive(Debug)]
pub enum TrustError {
    /// The socket cannot be found or its directories read.
    Io(io::Error),
    /// A directory on the way belongs to another user.
    ForeignDir { dir: PathBuf, uid: u32, me: u32 },
    /// A directory on the way may be written by its group or by others.
    WritableDir { dir: PathBuf, mode: u32 },
    /// The daemon listening on the socket runs as another user.
    ForeignDaemon {
        uid: u32,
        me: u32,
        owner: Option<u32>,
    },
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::Io(e) => write!(f, "{e}"),
            TrustError::ForeignDir { dir, uid, me } => write!(
                f,
                "{} belongs to {}, not to you ({}) or root: another user could \
                 listen there and receive the files you open, so nothing was sent; \
                 name a socket of your own with --socket or P2P_SOCKET, or set XDG_RUNTIME_DIR",
                dir.display(),
                describe_user(*uid),
                describe_user(*me)
            ),
            TrustError::WritableDir { dir, mode } => write!(
                f,
                "{} has mode {:04o}: other users may replace the socket in it, so nothing \
                 was sent; run chmod go-w {}",
                dir.display(),
                mode,
                dir.display()
            ),
            TrustError::ForeignDaemon { uid, me, owner } => {
                write!(
                    f,
                    "the daemon listening there runs as {}, not as you ({}), root",
                    describe_user(*uid),
                    describe_user(*me)
                )?;
                if let Some(o) = owner {
                    write!(f, " or the owner of its directory ({})", describe_user(*o))?;
                }
                write!(f, ", so nothing was sent to it")
            }
        }
    }
}

impl std::error::Error for TrustError {}

/// `uid 65534 (nobody)`, or just `uid N` when it has no name.
pub fn describe_user(uid: u32) -> String {
    match crate::ops::stat::user_name(uid) {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

const STICKY: u32 = 0o1000;
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Judges the directories holding a socket, its own directory first and `/`
/// last, for the caller `me`. Returns the one more uid the daemon may run
/// as: the owner of a system runtime directory directly below `/run`.
pub fn judge_chain(chain: &[DirFacts], me: u32) -> Result<Option<u32>, TrustError> {
    let mut service_owner = None;
    for (i, d) in chain.iter().enumerate() {
        let ours = d.uid == me || d.uid == 0;
        if i == 0 {
            if d.mode & WRITABLE_BY_OTHERS != 0 {
                return Err(TrustError::WritableDir {
                    dir: d.path.clone(),
                    mode: d.mode & 0o7777,
                });
            }
            // The /run directory itself is checked below, as the next link.
            if !ours && d.path.parent() == Some(Path::new("/run")) {
                service_owner = Some(d.uid);
                continue;
            }
        }
        if !ours {
            return Err(TrustError::ForeignDir {
                dir: d.path.clone(),
                uid: d.uid,
                me,
            });
        }
        let shared_tmp = d.uid == 0 && d.mode & STICKY != 0;
        if i > 0 && d.mode & WRITABLE_BY_OTHERS != 0 && !shared_tmp {
            return Err(TrustError::WritableDir {
                dir: d.path.clone(),
                mode: d.mode & 0o7777,
            });
        }
    }
    Ok(service_owner)
}

/// Judges the daemon's uid as the kernel gave it: the caller, root, or the
/// owner of the system runtime directory the socket is in.
pub fn judge_daemon(uid: u32, me: u32, service_owner: Option<u32>) -> Result<(), TrustError> {
    if uid == me || uid == 0 || Some(uid) == service_owner {
        Ok(())
    } else {
        Err(TrustError::ForeignDaemon {
            uid,
            me,
            owner: service_owner,
        })
    }
}

/// The directories holding `socket` (resolved), its own first and `/` last,
/// and the resolved socket path to connect to.
pub fn dir_chain(socket: &Path) -> Result<(PathBuf, Vec<DirFacts>), TrustError> {
    let resolved = std::fs::canonicalize(socket).map_err(TrustError::Io)?;
    let mut chain = Vec::new();
    let mut dir = resolved.parent();
    while let Some(d) = dir {
        let md = std::fs::metadata(d).map_err(TrustError::Io)?;
        chain.push(DirFacts {
            path: d.to_path_buf(),
            uid: md.uid(),
            mode: md.mode() & 0o7777,
        });
        dir = d.parent();
    }
    Ok((resolved, chain))
}

/// The uid the daemon at the other end of `stream` runs as (`SO_PEERCRED`:
/// whoever called `listen` on the socket).
pub fn daemon_uid(stream: &UnixStream) -> io::Result<u32> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    Ok(cred.uid())
}

/// Connects to `socket` once its directories pass, and keeps the
/// connection only if the daemon does too. Nothing is sent on it here.
pub fn connect(socket: &Path) -> Result<UnixStream, TrustError> {
    let me = nix::unistd::geteuid().as_raw();
    let (resolved, chain) = dir_chain(socket)?;
    let service_owner = judge_chain(&chain, me)?;
    // The resolved path, so a symlink swapped after the check cannot redirect us.
    let stream = UnixStream::connect(&resolved).map_err(TrustError::Io)?;
    judge_daemon(
        daemon_uid(&stream).map_err(TrustError::Io)?,
        me,
        service_owner,
    )?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ME: u32 = 1000;

    fn d(path: &str, uid: u32, mode: u32) -> DirFacts {
        DirFacts {
            path: PathBuf::from(path),
            uid,
            mode,
        }
    }

    #[test]
    fn own_and_root_directories_pass() {
        let chain = [
            d("/run/user/1000/p2p", ME, 0o700),
            d("/run/user/1000", ME, 0o700),
            d("/run/user", 0, 0o755),
            d("/run", 0, 0o755),
            d("/", 0, 0o755),
        ];
        assert_eq!(judge_chain(&chain, ME).unwrap(), None);
    }

    #[test]
    fn tmp_may_be_crossed_but_not_hold_the_socket() {
        let below = [
            d("/tmp/p2p-1000", ME, 0o700),
            d("/tmp", 0, 0o1777),
            d("/", 0, 0o755),
        ];
        assert!(judge_chain(&below, ME).is_ok());
        let directly = [d("/tmp", 0, 0o1777), d("/", 0, 0o755)];
        assert!(matches!(
            judge_chain(&directly, ME),
            Err(TrustError::WritableDir { .. })
        ));
    }

    #[test]
    fn a_directory_planted_by_another_user_is_refused() {
        let chain = [
            d("/tmp/p2p-1000", 65534, 0o700),
            d("/tmp", 0, 0o1777),
            d("/", 0, 0o755),
        ];
        let e = judge_chain(&chain, ME).unwrap_err();
        assert!(
            matches!(&e, TrustError::ForeignDir { uid: 65534, dir, .. } if dir == Path::new("/tmp/p2p-1000")),
            "{e:?}"
        );
        assert!(e.to_string().contains("uid 65534"), "{e}");
        // Higher up too.
        let chain = [
            d("/home/x/p2p", ME, 0o700),
            d("/home/x", 65534, 0o755),
            d("/", 0, 0o755),
        ];
        assert!(matches!(
            judge_chain(&chain, ME),
            Err(TrustError::ForeignDir { uid: 65534, .. })
        ));
    }

    #[test]
    fn group_or_world_writable_directories_are_refused() {
        for mode in [0o770, 0o707, 0o777, 0o1777, 0o720] {
            let chain = [
                d("/srv/p2p", ME, mode),
                d("/srv", 0, 0o755),
                d("/", 0, 0o755),
            ];
            assert!(
                matches!(judge_chain(&chain, ME), Err(TrustError::WritableDir { .. })),
                "{mode:o}"
            );
        }
        // A writable ancestor that is not a root-owned sticky one.
        for (uid, mode) in [(0, 0o777), (ME, 0o1777), (0, 0o775)] {
            let chain = [
                d("/srv/p2p", ME, 0o700),
                d("/srv", uid, mode),
                d("/", 0, 0o755),
            ];
            assert!(
                matches!(judge_chain(&chain, ME), Err(TrustError::WritableDir { .. })),
                "{uid} {mode:o}"
            );
        }
    }

    #[test]
    fn a_service_runtime_directory_below_run_names_the_daemons_user() {
        let chain = [
            d("/run/p2p", 999, 0o750),
            d("/run", 0, 0o755),
            d("/", 0, 0o755),
        ];
        assert_eq!(judge_chain(&chain, ME).unwrap(), Some(999));
        // Only directly below a root-owned /run nobody else may write to.
        let deeper = [
            d("/run/x/p2p", 999, 0o750),
            d("/run/x", 0, 0o755),
            d("/run", 0, 0o755),
            d("/", 0, 0o755),
        ];
        assert!(judge_chain(&deeper, ME).is_err());
        let bad_run = [
            d("/run/p2p", 999, 0o750),
            d("/run", 0, 0o777),
            d("/", 0, 0o755),
        ];
        assert!(judge_chain(&bad_run, ME).is_err());
        let foreign_run = [
            d("/run/p2p", 999, 0o750),
            d("/run", 999, 0o755),
            d("/", 0, 0o755),
        ];
        assert!(judge_chain(&foreign_run, ME).is_err());
        let writable = [
            d("/run/p2p", 999, 0o770),
            d("/run", 0, 0o755),
            d("/", 0, 0o755),
        ];
        assert!(judge_chain(&writable, ME).is_err());
    }

    #[test]
    fn the_daemon_must_be_the_caller_root_or_the_service_user() {
        assert!(judge_daemon(ME, ME, None).is_ok());
        assert!(judge_daemon(0, ME, None).is_ok());
        assert!(judge_daemon(999, ME, Some(999)).is_ok());
        let e = judge_daemon(65534, ME, Some(999)).unwrap_err();
        assert!(e.to_string().contains("uid 65534"), "{e}");
        assert!(judge_daemon(65534, 0, None).is_err());
    }

    /// The same rules on real directories, as `stat` reports them.
    #[test]
    fn real_directories_are_judged_by_owner_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let dir = t.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let sock = dir.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let (resolved, chain) = dir_chain(&sock).unwrap();
        assert_eq!(resolved, std::fs::canonicalize(&sock).unwrap());
        assert_eq!(chain.last().unwrap().path, Path::new("/"));
        assert!(judge_chain(&chain, me).is_ok());
        assert!(connect(&sock).is_ok());

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(matches!(
            connect(&sock),
            Err(TrustError::WritableDir { .. })
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

        // A symlink to the socket is judged where it leads.
        let link = t.path().join("link.sock");
        std::os::unix::fs::symlink(&sock, &link).unwrap();
        assert!(connect(&link).is_ok());

        if me == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let e = connect(&sock).unwrap_err();
            assert!(
                matches!(&e, TrustError::ForeignDir { uid: 65534, dir: d, .. } if *d == resolved.parent().unwrap()),
                "{e:?}"
            );
            std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(t.path(), Some(65534), Some(65534)).unwrap();
            assert!(matches!(
                connect(&sock),
                Err(TrustError::ForeignDir { uid: 65534, .. })
            ));
            std::os::unix::fs::chown(t.path(), Some(0), Some(0)).unwrap();
        }
    }
}
