//! Where the daemon's socket lives by default, and how a command finds it.
//!
//! A daemon's socket is `p2pd-PORT.sock` in a private runtime directory:
//! `$XDG_RUNTIME_DIR/p2p` for a user, `/run/p2p` for root, else
//! `/tmp/p2p-UID` (created 0700 and checked to be ours). A command uses
//! `--socket` or `P2P_SOCKET` when given; otherwise the default port's socket,
//! or the only daemon's socket when just one is running. Whichever it is,
//! [`crate::trust`] checks it before a byte is sent.

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

/// The runtime directory for this user (not created).
pub fn runtime_dir() -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        return PathBuf::from("/run/p2p");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Path::new(&d).join("p2p"),
        _ => PathBuf::from(format!("/tmp/p2p-{uid}")),
    }
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
    /// Several daemons run and none on the default port.
    Ambiguous(Vec<PathBuf>),
}

/// The socket a command should use when the user named none.
pub fn find_socket() -> Result<PathBuf, FindError> {
    let mut dirs = vec![runtime_dir()];
    let system = PathBuf::from("/run/p2p");
    if !dirs.contains(&system) {
        dirs.push(system);
    }
    let default_name = socket_file_name(DEFAULT_PORT);
    let mut found = Vec::new();
    for dir in &dirs {
        let preferred = dir.join(&default_name);
        if is_socket(&preferred) {
            return Ok(preferred);
        }
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("p2pd-") && name.ends_with(".sock") && is_socket(&e.path()) {
                    found.push(e.path());
                }
            }
        }
    }
    found.sort();
    match found.len() {
        0 => Err(FindError::NoneRunning(dirs)),
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
