//! How a command finds its daemon with neither `--socket` nor `P2P_SOCKET`:
//! the daemon puts its socket in `$XDG_RUNTIME_DIR/p2p` whoever runs it,
//! and the commands look there first, root included, as the man pages say.
//! The daemons here are started without `--socket`.

mod common;

use common::{TEST_KEY, bin, is_root, run, write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// A `p2pd` started with `XDG_RUNTIME_DIR` and no `--socket`, killed when dropped.
struct Placed {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for Placed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `p2pd` as `uid` (or as ourselves) with `XDG_RUNTIME_DIR=xdg` on
/// port 0, and waits for its socket where the runtime directory rule puts
/// it: named after the port it reports in its port file.
fn start_placed(uid: Option<u32>, xdg: &Path) -> Placed {
    let log = xdg.join("p2pd.log");
    let port_file = xdg.join("p2pd.port");
    let mut cmd = Command::new(bin("p2pd"));
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .arg("0")
        .arg("--port-file")
        .arg(&port_file)
        .env("XDG_RUNTIME_DIR", xdg)
        .env("HOME", xdg)
        .env("P2PD_SECRET", TEST_KEY)
        .env("RUST_LOG", "info")
        .env_remove("P2P_SOCKET")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting p2pd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim_end().to_string();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "p2pd exited with {st}: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "no port file");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_ne!(port, "0");
    let mut d = Placed {
        child,
        socket: xdg.join("p2p").join(format!("p2pd-{port}.sock")),
        log,
    };
    while !d.socket.exists() {
        if let Some(st) = d.child.try_wait().unwrap() {
            panic!(
                "p2pd exited with {st}: {}",
                std::fs::read_to_string(&d.log).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no socket at {}",
            d.socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d
}

/// `p2p-wc` run as `uid` (or ourselves) with `XDG_RUNTIME_DIR=xdg` and no socket named.
fn wc_with(uid: Option<u32>, xdg: &Path, file: &Path) -> common::Run {
    let mut cmd = Command::new(bin("p2p-wc"));
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    run(cmd
        .arg(file)
        .env("XDG_RUNTIME_DIR", xdg)
        .env_remove("P2P_SOCKET")
        .stdin(Stdio::null()))
}

/// A fresh directory for `uid`, mode 0700, as a runtime directory is.
fn runtime_dir_of(uid: u32) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(t.path(), Some(uid), Some(uid)).unwrap();
    t
}

fn socket_dir_has_a_socket(dir: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        })
        .unwrap_or(false)
}

#[test]
fn root_finds_a_daemon_whose_socket_xdg_runtime_dir_placed() {
    let me = unsafe { libc::geteuid() };
    let xdg = runtime_dir_of(me);
    let _d = start_placed(None, xdg.path());
    let file = write(xdg.path(), "notes.txt", b"one two\nthree\n");
    let r = wc_with(None, xdg.path(), &file);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["lines"], 2);
    assert_eq!(lines[0]["words"], 3);
}

#[test]
fn a_user_finds_their_daemon_in_their_xdg_runtime_dir() {
    if !is_root() {
        eprintln!("skipped: needs root to act as uid {NOBODY}");
        return;
    }
    let xdg = runtime_dir_of(NOBODY);
    let _d = start_placed(Some(NOBODY), xdg.path());
    let file = write(xdg.path(), "notes.txt", b"a b c\n");
    let r = wc_with(Some(NOBODY), xdg.path(), &file);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["words"], 3);
}

#[test]
fn root_with_another_users_xdg_runtime_dir_is_told_why_not_that_none_runs() {
    if !is_root() {
        eprintln!("skipped: needs root to act as uid {NOBODY}");
        return;
    }
    // As after `sudo -E`: root's XDG_RUNTIME_DIR is a user's, with that
    // user's daemon in it. Root must not hand it descriptors.
    let xdg = runtime_dir_of(NOBODY);
    let _d = start_placed(Some(NOBODY), xdg.path());
    if socket_dir_has_a_socket("/run/p2p") {
        // A system daemon there is the one root would rightly use.
        eprintln!("skipped: a daemon runs in /run/p2p on this host");
        return;
    }
    let file = write(xdg.path(), "x.txt", b"x\n");
    let r = wc_with(None, xdg.path(), &file);
    assert_eq!(r.status, 3, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr.contains("refusing to use") && r.stderr.contains("uid 65534"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("no p2pd is running"), "{}", r.stderr);
}
