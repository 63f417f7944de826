//! Cancellation end to end, told by the daemons' own counters (p2p-status),
//! never by timing: a command interrupted while its daemon hashes a huge
//! file leaves the daemon idle, its query counted as cancelled, and far
//! fewer bytes read than the file holds. So for a member asked with --peer.

mod common;

use common::{Daemon, eventually, num, run, status};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// A sparse file of this many bytes: reading all of it takes a core many
/// seconds, and a test that waits for that fails on its deadlines' sums.
const HUGE: u64 = 64 << 30;

fn huge_file(dir: &Path) -> PathBuf {
    let path = dir.join("huge.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(HUGE).unwrap();
    path
}

/// Waits until `d` has a worker busy with something of the query.
fn wait_busy(d: &Daemon, cmd: &mut Child) {
    eventually(30, "a worker busy with the query", || {
        assert!(
            cmd.try_wait().unwrap().is_none(),
            "the command ended before being interrupted"
        );
        num(&status(d), "workers_busy") > 0
    });
}

/// Waits until `d` counts one cancelled query and is idle, and checks it
/// read well below the file's size.
fn wait_cancelled(d: &Daemon) {
    eventually(
        60,
        "the query counted as cancelled and no worker busy",
        || {
            let s = status(d);
            num(&s, "queries_cancelled") == 1 && num(&s, "workers_busy") == 0
        },
    );
    let s = status(d);
    assert_eq!(num(&s, "jobs_queued"), 0, "{s}");
    let read = num(&s, "bytes_read");
    assert!(
        read < HUGE / 4,
        "read {read} bytes of a {HUGE}-byte file after the command was gone"
    );
    // Still serving: the next query is answered.
    let hosts = run(d.cmd("p2p-wc").arg("-l").arg("/etc/hostname"));
    assert!(hosts.status == 0 || hosts.status == 1, "{}", hosts.stderr);
}

#[test]
fn a_killed_command_stops_the_local_hash() {
    let d = Daemon::start(&[]);
    let file = huge_file(d.dir.path());
    let mut cmd = d.cmd("p2p-sha256");
    let mut child = cmd
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_busy(&d, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    wait_cancelled(&d);
}

#[test]
fn a_closed_stdout_pipe_stops_the_command_and_the_local_hash() {
    let d = Daemon::start(&[]);
    let file = huge_file(d.dir.path());
    let mut cmd = d.cmd("p2p-sha256");
    let mut child = cmd
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_busy(&d, &mut child);
    // As `p2p-sha256 huge | head -c 0` would: the reader goes away.
    drop(child.stdout.take());
    eventually(30, "the command ends once its stdout is closed", || {
        child.try_wait().unwrap().is_some()
    });
    wait_cancelled(&d);
}

#[test]
fn a_killed_command_stops_the_members_hash_too() {
    let member_dir = tempfile::tempdir().unwrap();
    let file = huge_file(member_dir.path());
    let export = member_dir.path().to_str().unwrap().to_string();
    let member = Daemon::start(&["--name", "member", "--export", &export]);
    let asker = Daemon::start(&[
        "--name",
        "asker",
        "--join",
        &format!("127.0.0.1:{}", member.port),
    ]);
    eventually(15, "the two see each other", || {
        common::peers(&asker).len() == 2
    });
    let mut cmd = asker.cmd("p2p-sha256");
    let mut child = cmd
        .arg("--peer")
        .arg("member")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_busy(&member, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    // The asking daemon cancels its cluster query, and the member, seeing
    // the session close, the work it was doing for it.
    wait_cancelled(&member);
    eventually(30, "the asking daemon counts its query cancelled", || {
        num(&status(&asker), "queries_cancelled") == 1
    });
    assert_eq!(num(&status(&asker), "bytes_read"), 0);
}

#[test]
fn a_killed_all_query_stops_every_member() {
    // Two daemons of one host export the same directory; --all asks both,
    // the asking daemon answering as a member too.
    let shared_dir = tempfile::tempdir().unwrap();
    let file = huge_file(shared_dir.path());
    let export = shared_dir.path().to_str().unwrap().to_string();
    let one = Daemon::start(&["--name", "one", "--export", &export]);
    let two = Daemon::start(&[
        "--name",
        "two",
        "--export",
        &export,
        "--join",
        &format!("127.0.0.1:{}", one.port),
    ]);
    eventually(15, "the two see each other", || {
        common::peers(&one).len() == 2
    });
    let mut cmd = one.cmd("p2p-sha256");
    let mut child = cmd
        .arg("--all")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_busy(&two, &mut child);
    wait_busy(&one, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    for d in [&one, &two] {
        eventually(60, "every member idle", || {
            num(&status(d), "workers_busy") == 0
        });
        let s = status(d);
        assert!(num(&s, "bytes_read") < HUGE / 4, "{s}");
        assert!(num(&s, "queries_cancelled") >= 1, "{s}");
    }
    // The member's query, and on the asking daemon its cluster query and
    // its own answer as a member.
    assert_eq!(num(&status(&two), "queries_cancelled"), 1);
    assert_eq!(num(&status(&one), "queries_cancelled"), 2);
}

#[test]
fn a_foreign_callers_spread_stops_this_nodes_losing_copy() {
    if !common::is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // For a caller of another uid, this node's share of a --spread is read
    // in-process; here it is slow (a debug knob pauses 1 s after each
    // 64 MiB), so the other member answers copies of its files first.
    let shared_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    const SIZE: u64 = 4 << 30;
    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let path = shared_dir.path().join(format!("big{i}.bin"));
            std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
            path
        })
        .collect();
    let export = shared_dir.path().to_str().unwrap().to_string();
    let slow = Daemon::start_on(
        0,
        &["--name", "slow", "--export", &export],
        &[
            ("P2PD_SECRET", common::TEST_KEY),
            ("P2PD_TEST_READ_DELAY_MS", "1000"),
        ],
    );
    common::open_to_all(&slow);
    let fast = Daemon::start(&[
        "--name",
        "fast",
        "--export",
        &export,
        "--join",
        &format!("127.0.0.1:{}", slow.port),
    ]);
    eventually(15, "the two see each other", || {
        common::peers(&slow).len() == 2
    });
    let mut cmd = slow.cmd("p2p-sha256");
    cmd.uid(65534).gid(65534).arg("--spread").args(&files);
    let r = run(&mut cmd);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 2, "one line per path: {lines:?}");
    let first = lines[0]["sha256"].as_str().unwrap_or_default().to_string();
    assert_eq!(first.len(), 64, "{lines:?}");
    assert_eq!(lines[1]["sha256"], first.as_str(), "{lines:?}");
    assert!(
        slow.log()
            .contains("slow: what it still works on was answered by other members"),
        "this node's own link was cut off: {}",
        slow.log()
    );
    // Cut off, this node stops reading within a chunk: it is soon idle,
    // having read far less than the file it held (64 s of reading each).
    eventually(30, "the slow node idle", || {
        num(&status(&slow), "workers_busy") == 0
    });
    let s = status(&slow);
    assert!(
        num(&s, "bytes_read") < SIZE,
        "read on after the other member answered: {s}"
    );
    assert!(num(&status(&fast), "bytes_read") >= SIZE, "{}", fast.log());
}
