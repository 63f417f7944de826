//! The progress line: on stderr when forced with `--progress` (here stderr
//! is a pipe), stdout unchanged byte for byte; nothing at all when stderr is
//! no terminal and nobody asked.

mod common;

use common::{Daemon, run, start_cluster, write};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| write(dir, &format!("f{i:03}"), &vec![b'x'; i * 100]))
        .collect()
}

/// The lines, sorted, without the member that gave each (with --spread
/// any member may).
fn sorted(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("peer");
            v.to_string()
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn forced_progress_goes_to_stderr_and_leaves_stdout_alone() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path(), 40);
    let d = Daemon::start(&["--name", "solo"]);
    // On this host the output is in order: byte for byte the same.
    let plain = run(d.cmd("p2p-wc").args(&paths));
    let shown = run(d.cmd("p2p-wc").arg("--progress").args(&paths));
    assert_eq!(plain.status, 0, "{}", plain.stderr);
    assert_eq!(shown.status, 0, "{}", shown.stderr);
    assert_eq!(shown.stdout, plain.stdout, "stdout is unchanged");
    assert!(plain.stderr.is_empty(), "{}", plain.stderr);
    let last = shown.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("40 of 40 paths, ") && last.contains("1 member working, 0 failed"),
        "{}",
        shown.stderr
    );
    // 100 * (0 + 1 + ... + 39) bytes were counted.
    assert!(last.contains("76.17 KiB"), "{last}");
    // A failed path is counted, and its message still says what failed.
    let r = run(d
        .cmd("p2p-sha256")
        .arg("--progress")
        .arg(&paths[0])
        .arg(dir.path().join("missing")));
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("missing: No such file"), "{}", r.stderr);
    assert!(
        r.stderr.contains("2 of 2 paths") && r.stderr.contains("(1 path failed)"),
        "{}",
        r.stderr
    );
    // --no-progress after it wins.
    let quiet = run(d
        .cmd("p2p-wc")
        .args(["--progress", "--no-progress"])
        .args(&paths));
    assert_eq!(quiet.stdout, plain.stdout);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[test]
fn spread_and_all_add_nothing_to_a_pipe_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path(), 60);
    let all = start_cluster(2, |_| vec!["--export".into(), s(dir.path()).into()]);
    for placement in ["--spread", "--all"] {
        let plain = run(all[0].cmd("p2p-sha256").arg(placement).args(&paths));
        assert_eq!(plain.status, 0, "{}", plain.stderr);
        assert!(plain.stderr.is_empty(), "{placement}: {}", plain.stderr);
        let shown = run(all[0]
            .cmd("p2p-sha256")
            .args([placement, "--progress"])
            .args(&paths));
        assert_eq!(shown.status, 0, "{}", shown.stderr);
        // Results arrive in any order, from any member: the same results,
        // and no line of ours.
        assert_eq!(sorted(&shown.stdout), sorted(&plain.stdout), "{placement}");
        let of = if placement == "--all" {
            "120 of 120 answers (60 paths, 2 members each)"
        } else {
            "60 of 60 paths"
        };
        let last = shown.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(of), "{placement}: {}", shown.stderr);
        assert!(last.contains("working, 0 failed"), "{last}");
        if placement == "--all" {
            assert!(last.contains("2 members working"), "{last}");
        }
    }
}

#[test]
fn on_a_terminal_the_line_shows_unasked_for_spread() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let dir = tempfile::tempdir().unwrap();
    let paths = files(dir.path(), 30);
    let all = start_cluster(2, |_| vec!["--export".into(), s(dir.path()).into()]);
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two new descriptors, which we then own.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let plain = run(all[0].cmd("p2p-sha256").arg("--spread").args(&paths));
    let mut cmd = all[0].cmd("p2p-sha256");
    cmd.arg("--spread")
        .args(&paths)
        .env("TERM", "xterm")
        .stdout(std::process::Stdio::piped())
        .stderr(slave);
    let out = cmd.output().unwrap();
    drop(cmd); // our copy of the terminal's other end: reads end at EOF/EIO
    let mut screen = Vec::new();
    let _ = master.read_to_end(&mut screen);
    let screen = String::from_utf8_lossy(&screen);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("30 of 30 paths"), "{screen:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        sorted(&stdout),
        sorted(&plain.stdout),
        "stdout is only results"
    );
}
