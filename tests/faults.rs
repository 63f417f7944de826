//! Fault injection: each test breaks something on purpose and states what
//! it proves. (Members killed or frozen during --all and --spread are in
//! tests/queries.rs; hostile connections on the peer port too.)

mod common;

use common::{
    Daemon, FAST, TEST_KEY, bin, eventually, gnu_sha256, peers, run, start_cluster, write,
};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn all_alive(d: &Daemon, n: usize) -> bool {
    let p = peers(d);
    p.len() == n && p.iter().all(|m| m["state"] == "alive")
}

/// Proves: a partition (half the cluster frozen, as by a network split seen
/// from the other half) is detected, and heals by itself once the frozen
/// half runs again: every member lists every other alive, with no restart.
#[test]
fn a_partition_of_half_the_cluster_is_seen_and_heals() {
    let all = start_cluster(4, |_| Vec::new());
    for d in &all[2..] {
        unsafe { libc::kill(d.pid(), libc::SIGSTOP) };
    }
    for d in &all[..2] {
        eventually(20, "the frozen half is seen down", || {
            peers(d).iter().filter(|m| m["state"] == "down").count() == 2
        });
    }
    for d in &all[2..] {
        unsafe { libc::kill(d.pid(), libc::SIGCONT) };
    }
    for d in &all {
        eventually(20, "the cluster is whole again", || all_alive(d, 4));
    }
}

/// Proves: a thousand idle, silent or half-speaking connections on the
/// local socket do not keep real commands out.
#[test]
fn a_flood_of_idle_local_connections_does_not_lock_out_commands() {
    common::raise_fd_limit();
    let d = Daemon::start(&["--name", "local"]);
    let t = tempfile::tempdir().unwrap();
    let f = write(t.path(), "f", b"one two\n");
    let mut idle = Vec::new();
    for i in 0..1000 {
        if let Ok(mut s) = UnixStream::connect(&d.socket) {
            if i % 2 == 0 {
                // Half a request, never finished.
                let _ = std::io::Write::write_all(&mut s, b"{\"op\":\"qu");
            }
            idle.push(s);
        }
    }
    assert!(idle.len() >= 900, "only {} connections", idle.len());
    for _ in 0..3 {
        let r = run(d.cmd("p2p-wc").arg(&f));
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert_eq!(r.json()[0]["words"], 2);
    }
    assert_eq!(peers(&d).len(), 1);
    drop(idle);
    assert!(!d.log().contains("panicked"));
}

/// Proves: tens of thousands of forged datagrams (garbage, and real-looking
/// sealed packets under another key) are dropped and counted; no member is
/// declared down and queries go on. (A member may be suspected for a moment
/// when the flood pushes real datagrams out of the kernel's buffer; it
/// refutes that at once.)
#[test]
fn a_flood_of_bad_packets_is_dropped_and_counted() {
    let all = start_cluster(3, |_| Vec::new());
    let mut watch = common::watch_members(&all[1]);
    let target = format!("127.0.0.1:{}", all[0].port);
    common::flood_forged_datagrams(&target, 20_000);
    for d in &all {
        eventually(10, "everyone alive after the flood", || all_alive(d, 3));
    }
    let t = tempfile::tempdir().unwrap();
    let f = write(t.path(), "f", b"x\n");
    let r = run(all[0].cmd("p2p-wc").arg(&f));
    assert_eq!(r.status, 0);
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("\"fail\"") && !text.contains("\"down\""),
        "{text}"
    );
    let log = all[0].log();
    assert!(
        log.contains("WARN") && log.contains("failed authentication"),
        "{log}"
    );
}

/// Proves: a file rewritten while it is being hashed is never reported as
/// if it were one version: the result says `changed`, with a warning; once
/// the file is left alone, the digest is exact again.
#[test]
fn a_file_that_changes_while_hashed_is_reported() {
    let d = Daemon::start(&["--name", "hash", "--cache-entries", "0"]);
    let t = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..(48u32 << 20)).map(|i| (i % 251) as u8).collect();
    let f = write(t.path(), "big", &body);
    let stop = Arc::new(AtomicBool::new(false));
    let (s, path) = (Arc::clone(&stop), f.clone());
    let writer = std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut i = 0u64;
        while !s.load(Ordering::Relaxed) {
            let _ = file.write_at(&[(i % 200) as u8], (i * 4099) % (48 << 20));
            i += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let r = run(d.cmd("p2p-sha256").arg(&f));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let v = &r.json()[0];
    assert_eq!(v["changed"], true, "{v}");
    assert!(r.stderr.contains("changed as we read it"), "{}", r.stderr);
    let r = run(d.cmd("p2p-sha256").arg(&f));
    let v = &r.json()[0];
    assert!(v.get("changed").is_none(), "{v}");
    assert_eq!(v["sha256"], gnu_sha256(&f).as_str());
}

/// Proves: when the disk holding --state-dir is full, saving fails with a
/// warning and the daemon goes on serving and tracking members. The state
/// dir is a 16 KiB tmpfs, filled up, in a private mount namespace
/// (`unshare -rm`), so the test needs no privileges of its own.
#[test]
fn a_full_disk_under_the_state_dir_is_survived() {
    if Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        panic!("this test needs unshare (util-linux) and user namespaces");
    }
    let first = Daemon::start(&["--name", "seed"]);
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let socket = t.path().join("p2pd.sock");
    let log_path = t.path().join("log");
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs '{s}' && (head -c 65536 /dev/zero > '{s}/fill' || true) && exec '{p2pd}' {port} --socket '{sock}' --name full --state-dir '{s}' --join 127.0.0.1:{seed} {fast}",
        s = state.display(),
        p2pd = bin("p2pd").display(),
        port = 0,
        sock = socket.display(),
        seed = first.port,
        fast = FAST.join(" "),
    );
    let mut child = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", t.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let peers = || {
        run(Command::new(bin("p2p-peers"))
            .env("P2P_SOCKET", &socket)
            .stdin(Stdio::null()))
    };
    // The failed save at start already logs the line; the join is seen
    // once the new daemon itself lists both members.
    eventually(15, "the daemon joins and fails to save", || {
        all_alive(&first, 2)
            && log().contains("cannot save state")
            && peers().stdout.lines().count() == 2
    });
    // Still serving: its own view of the cluster is right.
    let r = peers();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.json().len(), 2, "{}", r.stdout);
    assert!(!log().contains("panicked"), "{}", log());
}
