//! `--spread` balanced by work on a loopback cluster of four members: a
//! batch is bounded by bytes as well as by count, so a few large files go
//! to as many members, and many tiny ones are shared out.

mod common;

use common::{Daemon, start_cluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

fn exporting(dir: &Path) -> impl Fn(usize) -> Vec<String> + '_ {
    move |_| vec!["--export".into(), dir.to_str().unwrap().into()]
}

/// Runs `p2p-sha256 --spread` on `d` over `paths` (fed on stdin) and
/// returns how many paths each member answered, after checking that every
/// path got exactly one line, with the hash `expect` gives for it.
fn spread_shares(
    d: &Daemon,
    paths: &[String],
    expect: impl Fn(&str) -> String,
) -> BTreeMap<String, usize> {
    let mut cmd = d.cmd("p2p-sha256");
    cmd.args(["--spread", "--files-from", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut input = paths.join("\n");
    input.push('\n');
    let out = common::run_with_stdin(&mut cmd, input.as_bytes());
    assert_eq!(out.status, 0, "{}", out.stderr);
    let lines: Vec<Value> = out.json();
    assert_eq!(lines.len(), paths.len(), "one line per path");
    let mut seen = std::collections::BTreeSet::new();
    let mut shares = BTreeMap::new();
    for l in &lines {
        let path = l["path"].as_str().unwrap();
        assert_eq!(l["sha256"], expect(path).as_str(), "{l}");
        assert!(seen.insert(path.to_string()), "{l}");
        *shares
            .entry(l["peer"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    shares
}

#[test]
fn eight_large_files_go_to_every_member_of_four() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: no disk is used, but every byte is read and hashed.
    let paths: Vec<String> = (0..8)
        .map(|i| {
            let p = dir.path().join(format!("big{i}"));
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(256 << 20).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    let all = start_cluster(4, exporting(dir.path()));
    // Sparse zeros all hash alike: each line must be that hash.
    let zeros = common::gnu_sha256(Path::new(&paths[0]));
    let shares = spread_shares(&all[0], &paths, |_| zeros.clone());
    assert_eq!(shares.len(), 4, "every member computed one: {shares:?}");
}

#[test]
fn ten_thousand_tiny_files_are_shared_out() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (0..10_000)
        .map(|i| {
            let p = dir.path().join(format!("t{i:05}"));
            std::fs::write(&p, format!("{i}\n")).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    let all = start_cluster(4, exporting(dir.path()));
    let shares = spread_shares(&all[0], &paths, |p| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(std::fs::read(p).unwrap());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    });
    let most = shares.values().max().copied().unwrap_or(0);
    assert!(
        most * 100 <= 60 * paths.len(),
        "no member over 60 %: {shares:?}"
    );
}

#[test]
fn a_frozen_member_holding_files_does_not_hold_up_the_job() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse files, enough that every member holds some while the job runs.
    let paths: Vec<String> = (0..48)
        .map(|i| {
            let p = dir.path().join(format!("f{i:02}"));
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(32 << 20).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    let zeros = common::gnu_sha256(Path::new(&paths[0]));
    let all = start_cluster(3, exporting(dir.path()));
    let frozen = &all[2];
    // A timeout far longer than the test's deadline: only a copy of the
    // frozen member's files on other members can end the job in time.
    let mut child = all[0]
        .cmd("p2p-sha256")
        .args(["--spread", "--timeout", "3600", "--files-from", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = paths.join("\n");
    input.push('\n');
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    // Freeze it while it works on the job (and so holds files of it): not
    // dead, its sessions stay open, it just never answers.
    common::eventually(60, "node2 busy with the job", || {
        common::num(&common::status(frozen), "workers_busy") > 0
    });
    unsafe { libc::kill(frozen.pid(), libc::SIGSTOP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let ended = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    unsafe { libc::kill(frozen.pid(), libc::SIGCONT) };
    assert!(
        ended,
        "the job waits for the frozen member: {}",
        all[0].log()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), paths.len(), "one line per path");
    let mut seen = std::collections::BTreeSet::new();
    for l in &lines {
        assert_eq!(l["sha256"], zeros.as_str(), "{l}");
        assert!(seen.insert(l["path"].as_str().unwrap().to_string()), "{l}");
    }
    // What it held was answered by the others, and its session closed.
    let log = all[0].log();
    assert!(
        log.contains("node2: what it still works on was answered by other members"),
        "{log}"
    );
    // Thawed, it sees its asker gone and gives that work up.
    common::eventually(60, "node2 gives the lost copies up", || {
        common::num(&common::status(frozen), "queries_cancelled") >= 1
    });
}
