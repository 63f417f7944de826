//! The commands hand their descriptors only to a daemon they can trust:
//! attacks by another user (uid 65534) who plants a socket for root's
//! commands, as in a `/tmp/p2p-UID` made in advance. Each needs root.

mod common;

use common::{Daemon, TEST_KEY, is_root, relisten_as, run, write};
use p2p::fdpass::LineReader;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

const NOBODY: u32 = 65534;

/// What a planted listener got from its victim.
#[derive(Debug, Default)]
struct Loot {
    lines: Vec<String>,
    /// What it read through the descriptors it was given.
    read_through_fds: Vec<String>,
}

/// A fake daemon on `listener`: it takes one connection, reads the query
/// and the descriptors, reads the files through them, and answers every item
/// with a forged hash, as the attacker in the issue did.
fn forger(listener: UnixListener) -> JoinHandle<Loot> {
    std::thread::spawn(move || {
        let mut loot = Loot::default();
        let Ok((stream, _)) = listener.accept() else {
            return loot;
        };
        let mut out = stream.try_clone().unwrap();
        let mut r = LineReader::new(stream, 1 << 20, 64);
        let mut answers = Vec::new();
        while let Ok(Some(line)) = r.next_line() {
            let text = String::from_utf8_lossy(&line).into_owned();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            loot.lines.push(text);
            if loot.lines.len() == 1 {
                let _ = out.write_all(b"{\"accepted\":true,\"peer\":\"forged\"}\n");
                continue;
            }
            if v["end"] == true {
                break;
            }
            if let Some(fd) = r.take_fd() {
                let mut s = String::new();
                let _ = std::fs::File::from(fd).read_to_string(&mut s);
                loot.read_through_fds.push(s);
            }
            answers.push(serde_json::json!({
                "id": v["id"], "peer": "forged", "path": v["path"], "sha256": "0".repeat(64), "bytes": 10
            }));
        }
        for a in answers {
            let _ = writeln!(out, "{a}");
        }
        let _ = out.write_all(b"{\"done\":true,\"ok\":1,\"failed\":0}\n");
        loot
    })
}

/// Waits for the forger: wakes its accept if the victim never connected.
fn loot_of(socket: &Path, forger: JoinHandle<Loot>) -> Loot {
    if !forger.is_finished() {
        let _ = UnixStream::connect(socket);
    }
    forger.join().unwrap()
}

/// A root-only secret for the victim to ask about.
fn secret(dir: &Path) -> PathBuf {
    let f = write(dir, "secret", b"root only\n");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn sha256_via(socket: &Path, file: &Path) -> common::Run {
    run(Command::new(common::bin("p2p-sha256"))
        .env("P2P_SOCKET", socket)
        .arg(file)
        .stdin(std::process::Stdio::null()))
}

fn assert_refused_untouched(r: &common::Run, loot: &Loot, stderr_has: &str) {
    assert!(
        loot.lines.is_empty() && loot.read_through_fds.is_empty(),
        "the listener got {loot:?}"
    );
    assert_eq!(r.status, 3, "stdout {}\nstderr {}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "nothing forged may be printed");
    assert!(r.stderr.contains(stderr_has), "{}", r.stderr);
}

#[test]
fn a_listener_of_another_user_in_a_trusted_directory_gets_nothing() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    // The directory is root's own, so only SO_PEERCRED can tell.
    let t = tempfile::tempdir().unwrap();
    let socket = t.path().join("p2pd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    relisten_as(&listener, NOBODY);
    let f = secret(t.path());
    let thief = forger(listener);
    let r = sha256_via(&socket, &f);
    let loot = loot_of(&socket, thief);
    assert_refused_untouched(&r, &loot, "runs as uid 65534");
    assert!(r.stderr.contains("nothing was sent"), "{}", r.stderr);
}

#[test]
fn a_socket_directory_planted_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    // What another user can do in /tmp before we come: make our directory
    // and listen in it.
    let t = tempfile::tempdir().unwrap();
    let f = secret(t.path());
    let planted = t.path().join("p2p-0");
    std::fs::create_dir(&planted).unwrap();
    let socket = planted.join("p2pd-65432.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(&socket, Some(NOBODY), Some(NOBODY)).unwrap();
    relisten_as(&listener, NOBODY);
    let thief = forger(listener);
    let r = sha256_via(&socket, &f);
    let loot = loot_of(&socket, thief);
    assert_refused_untouched(&r, &loot, "belongs to uid 65534");
    assert!(
        r.stderr.contains(&planted.display().to_string()),
        "{}",
        r.stderr
    );

    // The same through --socket, and for a request without descriptors.
    let thief_listener = UnixListener::bind(planted.join("other.sock")).unwrap();
    relisten_as(&thief_listener, NOBODY);
    let other = planted.join("other.sock");
    let thief = forger(thief_listener);
    let r = run(Command::new(common::bin("p2p-peers"))
        .arg("--socket")
        .arg(&other)
        .env_remove("P2P_SOCKET"));
    let loot = loot_of(&other, thief);
    assert_refused_untouched(&r, &loot, "belongs to uid 65534");
}

#[test]
fn a_socket_directory_others_may_write_to_is_refused() {
    let d = Daemon::start(&[]);
    let f = write(d.dir.path(), "f", b"x\n");
    let dir = d.socket.parent().unwrap();
    for mode in [0o777, 0o770, 0o1777] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = run(d.cmd("p2p-wc").arg(&f));
        assert_eq!(r.status, 3, "mode {mode:o}: {}", r.stdout);
        assert_eq!(r.stdout, "");
        assert!(r.stderr.contains("chmod go-w"), "{}", r.stderr);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = run(d.cmd("p2p-wc").arg(&f));
    assert_eq!(r.status, 0, "{}", r.stderr);
}

#[test]
fn a_real_daemon_of_another_user_serves_only_that_user() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start_as(Some(NOBODY), 0, &[], &[("P2PD_SECRET", TEST_KEY)]);
    let t = tempfile::tempdir().unwrap();
    let f = secret(t.path());
    let r = run(d.cmd("p2p-sha256").arg(&f));
    assert_eq!(r.status, 3, "{}", r.stdout);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("belongs to uid 65534"), "{}", r.stderr);
    let r = run(&mut d.cmd("p2p-peers"));
    assert_eq!(r.status, 3, "{}", r.stdout);
    // Its own user may use it.
    let r = run(d.cmd("p2p-peers").uid(NOBODY).gid(NOBODY));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json().len(), 1);
}

#[test]
fn the_daemon_refuses_a_socket_directory_of_another_user() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let planted = t.path().join("p2p-0");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    let r = run(Command::new(common::bin("p2pd"))
        .arg("0")
        .arg("--socket")
        .arg(planted.join("p2pd.sock"))
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", t.path()));
    assert_eq!(r.status, 2);
    assert!(r.stderr.contains("belongs to uid 65534"), "{}", r.stderr);
    assert!(r.stderr.contains("XDG_RUNTIME_DIR"), "{}", r.stderr);
}

/// A directory systemd's `RuntimeDirectory=` made for a service user, as
/// /run/p2p for `User=p2pd`: trusted for that user's daemon only.
#[test]
fn a_service_directory_below_run_trusts_its_owner_only() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let Some(run_dir) = common::service_run_dir(NOBODY, 0o750) else {
        return;
    };
    let socket = run_dir.path().join("p2pd.sock");
    let d = Daemon::start_as(
        Some(NOBODY),
        0,
        &["--socket", socket.to_str().unwrap()],
        &[("P2PD_SECRET", TEST_KEY)],
    );
    let r = run(Command::new(common::bin("p2p-peers")).env("P2P_SOCKET", &socket));
    assert_eq!(r.status, 0, "{}", r.stderr);
    drop(d);

    // Someone else listening there is not the directory's owner.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    relisten_as(&listener, NOBODY - 1);
    let t = tempfile::tempdir().unwrap();
    let f = secret(t.path());
    let thief = forger(listener);
    let r = sha256_via(&socket, &f);
    let loot = loot_of(&socket, thief);
    assert_refused_untouched(&r, &loot, "runs as uid 65533");
}
