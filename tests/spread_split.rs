//! `p2p-wc --spread` on a file larger than `p2pd --split-above`: byte
//! ranges counted by several members, joined into one exact line, also
//! when a member fails; `p2p-sha256` never splits.

mod common;

use common::{Daemon, run, start_cluster};
use serde_json::Value;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn exporting(dir: &Path, extra: &[&str]) -> impl Fn(usize) -> Vec<String> {
    let mut args = vec!["--export".to_string(), dir.to_str().unwrap().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    move |_| args.clone()
}

/// Text whose words and multibyte characters (a wide space, an emoji, a
/// no-break space, long forms and invalid bytes) fall across many offsets.
fn text(n: usize) -> Vec<u8> {
    let pieces: [&[u8]; 10] = [
        b"word",
        b" ",
        b"\n",
        "\u{e9}t\u{e9}".as_bytes(),
        "\u{1f642}".as_bytes(),
        "\u{3000}".as_bytes(),
        "\u{a0}".as_bytes(),
        b"\xe2\x82",
        b"\xff",
        b"x\ty",
    ];
    let mut s = 12345u64;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(pieces[(s >> 33) as usize % pieces.len()]);
    }
    out
}

/// The whole-file count of `p2p-wc` on this host, unsplit.
fn local_wc(d: &Daemon, path: &str) -> Value {
    let out = run(d.cmd("p2p-wc").arg(path));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json().remove(0)
}

fn spread_wc(d: &Daemon, args: &[&str], path: &str) -> Vec<Value> {
    let out = run(d.cmd("p2p-wc").arg("--spread").args(args).arg(path));
    assert_eq!(out.status, 0, "{}", out.stderr);
    out.json()
}

fn same_counts(a: &Value, b: &Value) {
    for k in ["lines", "words", "bytes", "chars"] {
        assert_eq!(a[k], b[k], "{k}: {a} against {b}");
    }
}

#[test]
fn a_file_over_the_threshold_is_counted_in_ranges_and_joined_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text");
    std::fs::write(&path, text(3 << 20)).unwrap();
    let p = path.to_str().unwrap();
    // Ranges of 64 KiB cut through words and characters everywhere.
    let all = start_cluster(4, exporting(dir.path(), &["--split-above", "65536"]));
    let whole = local_wc(&all[0], p);
    let read = |all: &[Daemon]| -> u64 {
        all.iter()
            .map(|d| common::num(&common::status(d), "bytes_read"))
            .sum()
    };
    let before = read(&all);
    let lines = spread_wc(&all[0], &[], p);
    assert_eq!(lines.len(), 1, "one line for the file: {lines:?}");
    same_counts(&lines[0], &whole);
    assert_eq!(lines[0]["path"], p);
    // p2p-status counts the ranges' bytes, each once.
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(read(&all) - before, size, "bytes_read over the members");
    // -l alone: lines and bytes, split too.
    let l = spread_wc(&all[0], &["-l"], p);
    assert_eq!((l.len(), &l[0]["lines"]), (1, &whole["lines"]));
    // -L is never split, and still right.
    let wide = spread_wc(&all[0], &["-L"], p);
    assert_eq!(wide.len(), 1);
    let here = run(all[0].cmd("p2p-wc").args(["-L", p])).json();
    assert_eq!(wide[0]["max_line_length"], here[0]["max_line_length"]);
    let one = wide[0]["peer"].as_str().unwrap();
    assert!(
        !one.contains('[') && !one.contains(','),
        "one member: {one}"
    );
    let log: String = all.iter().map(Daemon::log).collect();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_huge_sparse_file_goes_to_several_members_and_sha256_never_splits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge");
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(512 << 20).unwrap();
    // Words and characters across the 64 MiB range boundaries.
    for k in 1..8u64 {
        f.seek(SeekFrom::Start((k << 26) - 3)).unwrap();
        f.write_all("ab\u{3000}\u{1f642}c d\n".as_bytes()).unwrap();
    }
    drop(f);
    let p = path.to_str().unwrap();
    let all = start_cluster(4, exporting(dir.path(), &[]));
    let whole = local_wc(&all[0], p);
    let lines = spread_wc(&all[0], &[], p);
    assert_eq!(lines.len(), 1, "{lines:?}");
    same_counts(&lines[0], &whole);
    // Eight ranges of 64 MiB, at most two held by a member at once.
    let peer = lines[0]["peer"].as_str().unwrap();
    assert!(
        peer.contains('[') || peer.contains(','),
        "several members: {peer}"
    );
    let sha = run(all[0].cmd("p2p-sha256").args(["--spread", p])).json();
    assert_eq!(sha.len(), 1);
    assert_eq!(sha[0]["sha256"], common::gnu_sha256(&path).as_str());
    let one = sha[0]["peer"].as_str().unwrap();
    assert!(
        !one.contains('[') && !one.contains(','),
        "one member: {one}"
    );
}

#[test]
fn the_ranges_of_a_frozen_member_are_redone_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge");
    let mut f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 30).unwrap();
    for k in 1..64u64 {
        f.seek(SeekFrom::Start((k << 24) - 2)).unwrap();
        f.write_all("x\u{e9}y z\n".as_bytes()).unwrap();
    }
    drop(f);
    let p = path.to_str().unwrap().to_string();
    // 64 ranges of 16 MiB over three members.
    let all = start_cluster(3, exporting(dir.path(), &["--split-above", "16777216"]));
    let whole = local_wc(&all[0], &p);
    let child = all[0]
        .cmd("p2p-wc")
        .args(["--spread", "--timeout", "1", &p])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Freeze node2 once it has taken the query (and so ranges of it).
    common::eventually(20, "node2 serves the query", || {
        all[2].log().contains("wc query started")
    });
    unsafe { libc::kill(all[2].pid(), libc::SIGSTOP) };
    let out = child.wait_with_output().unwrap();
    unsafe { libc::kill(all[2].pid(), libc::SIGCONT) };
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
    assert_eq!(lines.len(), 1, "{lines:?}");
    same_counts(&lines[0], &whole);
    // The frozen member was given up on, and its ranges counted by others.
    let log = all[0].log();
    assert!(log.contains("query on node2"), "{log}");
}

#[test]
fn a_killed_split_count_stops_the_members_and_their_reads_are_counted() {
    const HUGE: u64 = 64 << 30;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge");
    std::fs::File::create(&path).unwrap().set_len(HUGE).unwrap();
    let all = start_cluster(2, exporting(dir.path(), &[]));
    let mut child = all[0]
        .cmd("p2p-wc")
        .args(["--spread", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::eventually(30, "both members count ranges", || {
        assert!(child.try_wait().unwrap().is_none(), "ended first");
        all.iter()
            .all(|d| common::num(&common::status(d), "bytes_read") > 0)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    for d in &all {
        common::eventually(60, "the member cancelled and idle", || {
            let s = common::status(d);
            common::num(&s, "queries_cancelled") >= 1 && common::num(&s, "workers_busy") == 0
        });
        let read = common::num(&common::status(d), "bytes_read");
        assert!(read < HUGE / 4, "{read} bytes read of {HUGE}");
    }
}
