//! The workers are shared fairly: a small query never waits behind another
//! caller's huge files (issue 11, finding 8).
//!
//! Nothing here measures time: the tests look at the order in which things
//! happen, through what the daemon has open and how far it has read it
//! (`/proc/PID/fdinfo`).

mod common;

use common::*;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// Sparse files of this size read as zeros, fast, and still take far longer
/// to hash than a tiny file takes to count.
const HUGE: u64 = 32 << 30;

/// Commands still running, killed when dropped.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How far process `pid` has read each descriptor it has open on `path`.
fn read_positions(pid: i32, path: &Path) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut at = Vec::new();
    for fd in fds.flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(path) {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let pos = std::fs::read_to_string(info).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|p| p.trim().parse::<u64>().ok())
        });
        at.extend(pos);
    }
    at
}

/// Whether `pid` is reading `path`: it has it open and has read some of it,
/// but not all.
fn reading(pid: i32, path: &Path) -> bool {
    read_positions(pid, path).iter().any(|&p| p > 0 && p < HUGE)
}

fn sparse(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    File::create(&p).unwrap().set_len(HUGE).unwrap();
    p
}

#[test]
fn a_tiny_query_is_answered_while_two_huge_remote_ones_keep_both_workers_busy() {
    // As in the attack: a member asks this node for the digests of two
    // huge files, which kept both of its workers busy; then a local user
    // counts a tiny file.
    let data = tempfile::tempdir().unwrap();
    let huge = [sparse(data.path(), "huge1"), sparse(data.path(), "huge2")];
    let tiny = write(data.path(), "tiny", "one two\nthree\n".as_bytes());
    let export = data.path().to_str().unwrap().to_string();
    let nodes = start_cluster(2, |i| {
        if i == 0 {
            vec![
                "--workers".into(),
                "2".into(),
                "--export".into(),
                export.clone(),
            ]
        } else {
            Vec::new()
        }
    });
    let (target, asker) = (&nodes[0], &nodes[1]);
    let mut running = Running(Vec::new());
    for h in &huge {
        let child = asker
            .cmd("p2p-sha256")
            .args(["--peer", "node0", h.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        running.0.push(child);
    }
    // Both huge files are being read, one on each worker.
    eventually(60, "node0 reads both huge files", || {
        huge.iter().all(|h| reading(target.pid(), h))
    });

    let r = run(target.cmd("p2p-wc").arg(&tiny));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(
        (v["lines"].as_u64(), v["words"].as_u64()),
        (Some(2), Some(3))
    );

    // The tiny answer came while both huge files were still being read:
    // it did not wait for either to finish.
    for h in &huge {
        assert!(
            reading(target.pid(), h),
            "{} was no longer being read when the tiny file was answered: {:?}",
            h.display(),
            read_positions(target.pid(), h)
        );
    }
    for c in &mut running.0 {
        assert!(c.try_wait().unwrap().is_none(), "a huge query had ended");
    }
}

#[test]
fn another_users_huge_files_do_not_hold_up_a_tiny_query() {
    if !is_root() {
        eprintln!("skipped: needs root to act as uid 65534");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let d = Daemon::start(&["--workers", "2"]);
    // Let uid 65534 reach the socket and the tiny file.
    let open = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    open(d.dir.path(), 0o755).unwrap();
    open(d.socket.parent().unwrap(), 0o755).unwrap();
    open(&d.socket, 0o666).unwrap();
    let tiny = write(d.dir.path(), "tiny", b"a b c\n");
    open(&tiny, 0o644).unwrap();
    let huge = [sparse(d.dir.path(), "huge1"), sparse(d.dir.path(), "huge2")];

    // Root asks for the digests of two huge files in one query: with
    // nobody else waiting, they take both workers.
    let mut running = Running(Vec::new());
    let child = d
        .cmd("p2p-sha256")
        .args(&huge)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    running.0.push(child);
    eventually(60, "the daemon reads both huge files", || {
        huge.iter().all(|h| reading(d.pid(), h))
    });

    let r = run(d.cmd("p2p-wc").uid(65534).gid(65534).arg(&tiny));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["words"], 3);
    for h in &huge {
        assert!(
            reading(d.pid(), h),
            "{} was no longer being read when uid 65534 got its answer: {:?}",
            h.display(),
            read_positions(d.pid(), h)
        );
    }
    assert!(
        running.0[0].try_wait().unwrap().is_none(),
        "root's query had ended"
    );
}
