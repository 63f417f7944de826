//! Where the daemon's socket lives by default, and how a command finds it.
//!
//! A daemon's socket is `p2pd-PORT.sock` in a private runtime directory:
//! `$XDG_RUNTIME_DIR/p2p` whenever `XDG_RUNTIME_DIR` is set (root
//! included: the systemd unit sets it to `/run`), else `/run/p2p` for root
//! and `/tmp/p2p-UID` for others (created 0700 and checked to be ours).
//!
//! A command uses `--socket` or `P2P_SOCKET` when given. Otherwise it looks
//! in that same runtime directory, then in `/run/p2p` (a system daemon's),
//! and takes the first of them that holds a socket and passes the directory
//! checks of [`crate::trust`]: there, the default port's socket, or the only
//! one. A directory the checks refuse is passed over; when nothing else is
//! found its socket is returned anyway, so that the command says why it
//! will not use it rather than that no daemon runs. Whichever it is,
//! [`crate::trust`] checks it again before a byte is sent.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The port `p2pd` uses when none is given, as the seed did.
pub const DEFAULT_PORT: u16 = 65432;

/// The environment variable that names a socket, for both daemon and commands.
pub const SOCKET_ENV: &str = "P2P_SOCKET";

/// This user's configuration directory, `$XDG_CONFIG_HOME/p2p` or
/// `~/.config/p2p`; `None` with neither variable set.
pub fn user_config_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d,
        _ => Path::new(&std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("p2p"))
}

/// Where a system daemon's socket is, and the last place commands look.
pub const SYSTEM_RUNTIME_DIR: &str = "/run/p2p";

/// The runtime directory for this user (not created): `$XDG_RUNTIME_DIR/p2p`
/// when that variable holds an absolute path, else `/run/p2p` for root and
/// `/tmp/p2p-UID` for others.
pub fn runtime_dir() -> PathBuf {
    runtime_dir_for(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
    )
}

/// [`runtime_dir`] for `uid` with this `XDG_RUNTIME_DIR`.
fn runtime_dir_for(uid: u32, xdg: Option<&std::ffi::OsStr>) -> PathBuf {
    match xdg.map(Path::new) {
        // The XDG spec ignores a relative value.
        Some(d) if d.is_absolute() => d.join("p2p"),
        _ if uid == 0 => PathBuf::from(SYSTEM_RUNTIME_DIR),
        _ => PathBuf::from(format!("/tmp/p2p-{uid}")),
    }
}

/// The directories a command looks in for a socket, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![runtime_dir()];
    let system = PathBuf::from(SYSTEM_RUNTIME_DIR);
    if !dirs.contains(&system) {
        dirs.push(system);
    }
    dirs
}

/// The default socket path of a daemon on `port`.
pub fn default_socket(port: u16) -> PathBuf {
    runtime_dir().join(socket_file_name(port))
}

fn socket_file_name(port: u16) -> String {
    format!("p2pd-{port}.sock")
}

/// Creates the directory that will hold a socket: private (0700) when we
/// create it, and refused when it is someone else's (a `/tmp/p2p-UID` made
/// in advance by another user) or writable by its group or others.
pub fn prepare_socket_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let md = fs::metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me && md.uid() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to {}, not to us ({}): another user may have made it to \
                 receive our clients' files; choose another place with --socket or \
                 XDG_RUNTIME_DIR, or have root remove it",
                dir.display(),
                crate::trust::describe_user(md.uid()),
                crate::trust::describe_user(me)
            ),
        ));
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        // The commands would refuse it too (see `trust`).
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has mode {mode:04o}: other users could replace the socket in it; \
                 run chmod go-w {}",
                dir.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Why no socket could be chosen.
#[derive(Debug)]
pub enum FindError {
    /// No daemon's socket exists where we look.
    NoneRunning(Vec<PathBuf>),
    /// Several daemons run in the directory chosen, none on the default port.
    Ambiguous(Vec<PathBuf>),
}

/// The socket a command should use when the user named none.
pub fn find_socket() -> Result<PathBuf, FindError> {
    let dirs = search_dirs();
    let me = nix::unistd::geteuid().as_raw();
    let mut refused = None;
    for dir in &dirs {
        let found = sockets_in(dir);
        let Some(first) = found.first() else {
            continue;
        };
        let trusted = crate::trust::dir_chain(first)
            .and_then(|(_, chain)| crate::trust::judge_chain(&chain, me));
        if trusted.is_err() {
            // Someone else's directory (say a user's XDG_RUNTIME_DIR kept
            // by sudo): look further, and come back to it only to say why.
            refused.get_or_insert_with(|| first.clone());
            continue;
        }
        return pick(found);
    }
    match refused {
        Some(p) => Ok(p),
        None => Err(FindError::NoneRunning(dirs)),
    }
}

/// The daemons' sockets in `dir`, sorted.
fn sockets_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            name.starts_with(b"p2pd-") && name.ends_with(b".sock") && is_socket(&e.path())
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Among the sockets of one directory: the default port's, else the only one.
fn pick(mut found: Vec<PathBuf>) -> Result<PathBuf, FindError> {
    let default_name = socket_file_name(DEFAULT_PORT);
    if let Some(p) = found
        .iter()
        .find(|p| p.file_name() == Some(default_name.as_ref()))
    {
        return Ok(p.clone());
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        _ => Err(FindError::Ambiguous(found)),
    }
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_name_carries_the_port() {
        assert!(default_socket(65433).ends_with("p2pd-65433.sock"));
    }

    #[test]
    fn the_runtime_directory_follows_xdg_runtime_dir_for_root_too() {
        let xdg = Some(std::ffi::OsStr::new("/run/user/0"));
        assert_eq!(runtime_dir_for(0, xdg), Path::new("/run/user/0/p2p"));
        assert_eq!(runtime_dir_for(0, None), Path::new("/run/p2p"));
        let xdg = Some(std::ffi::OsStr::new("/run/user/1000"));
        assert_eq!(runtime_dir_for(1000, xdg), Path::new("/run/user/1000/p2p"));
        assert_eq!(runtime_dir_for(1000, None), Path::new("/tmp/p2p-1000"));
        // Empty or relative values are ignored, as the XDG spec says.
        for bad in ["", "run/user/1000"] {
            let xdg = Some(std::ffi::OsStr::new(bad));
            assert_eq!(runtime_dir_for(1000, xdg), Path::new("/tmp/p2p-1000"));
            assert_eq!(runtime_dir_for(0, xdg), Path::new("/run/p2p"));
        }
        // The unit's XDG_RUNTIME_DIR=/run puts a service's socket where
        // the commands look last.
        let unit = Some(std::ffi::OsStr::new("/run"));
        assert_eq!(runtime_dir_for(999, unit), Path::new(SYSTEM_RUNTIME_DIR));
    }

    #[test]
    fn in_one_directory_the_default_port_wins_then_the_only_socket() {
        let p = |n: &str| PathBuf::from(format!("/d/{n}"));
        let got = pick(vec![p("p2pd-1.sock"), p("p2pd-65432.sock")]).unwrap();
        assert_eq!(got, p("p2pd-65432.sock"));
        assert_eq!(pick(vec![p("p2pd-7.sock")]).unwrap(), p("p2pd-7.sock"));
        assert!(matches!(
            pick(vec![p("p2pd-1.sock"), p("p2pd-2.sock")]),
            Err(FindError::Ambiguous(v)) if v.len() == 2
        ));
    }

    #[test]
    fn socket_dir_is_created_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        prepare_socket_dir(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A second call on the existing directory is fine.
        prepare_socket_dir(&d).unwrap();
    }

    #[test]
    fn world_writable_socket_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o1777, 0o770] {
            fs::set_permissions(t.path(), fs::Permissions::from_mode(mode)).unwrap();
            let e = prepare_socket_dir(t.path()).unwrap_err();
            assert!(e.to_string().contains("chmod go-w"), "{e}");
        }
    }

    #[test]
    fn socket_dir_of_another_user_is_refused_naming_the_owner() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(t.path(), Some(65534), Some(65534)).unwrap();
        let e = prepare_socket_dir(t.path()).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
    }
}
