//! `--resume FILE`: a job killed half-way is finished by a second run that
//! appends to the same manifest, and only the missing paths are computed.

mod common;

use common::{Daemon, num, run, start_cluster, status, write};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Items computed so far by every member, for local askers and for members.
fn items(all: &[Daemon]) -> u64 {
    all.iter()
        .map(|d| {
            let st = status(d);
            num(&st, "items_local") + num(&st, "items_remote")
        })
        .sum()
}

/// The complete lines of `file` (a torn last one left out).
fn lines(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut v: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if v.last().is_some_and(|l| !l.ends_with('\n')) {
        v.pop();
    }
    v
}

/// Good result lines per path in `file`.
fn good_per_path(file: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for l in lines(file) {
        let Ok(v) = serde_json::from_str::<Value>(&l) else {
            continue; // a torn line, left by the kill
        };
        if v.get("error").is_none() {
            m.entry(v["path"].as_str().unwrap().to_string())
                .or_default()
                .push(v);
        }
    }
    m
}

#[test]
fn a_spread_job_killed_half_way_is_finished_by_resume() {
    const N: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..N)
        .map(|i| {
            let body: Vec<u8> = (0..(i * 131 % 9000)).map(|k| (k * i % 253) as u8).collect();
            write(dir.path(), &format!("f{i:04}"), &body)
        })
        .collect();
    let all = start_cluster(3, |_| vec!["--export".into(), s(dir.path()).into()]);
    let out = tempfile::tempdir().unwrap();
    let manifest = out.path().join("manifest.jsonl");
    let append = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&manifest)
            .unwrap()
    };
    let before = items(&all);

    // The first run gets half of the list and answers it; then a sixth
    // more is written and the command killed at once, those paths in
    // flight. Its input is still open, so it cannot have finished.
    let mut child = all[0]
        .cmd("p2p-sha256")
        .args(["--spread", "--files-from", "-"])
        .stdin(Stdio::piped())
        .stdout(append())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for f in &files[..N / 2] {
        writeln!(stdin, "{}", s(f)).unwrap();
    }
    stdin.flush().unwrap();
    common::eventually(60, "half of the paths answered", || {
        lines(&manifest).len() >= N / 2
    });
    for f in &files[N / 2..400] {
        writeln!(stdin, "{}", s(f)).unwrap();
    }
    stdin.flush().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    drop(stdin);
    // The members finish or drop what they had in flight.
    let mut settled = items(&all);
    common::eventually(30, "the members' counters settle", || {
        let now = items(&all);
        let idle = all.iter().all(|d| num(&status(d), "workers_busy") == 0);
        let same = now == settled;
        settled = now;
        same && idle
    });
    let computed_first = settled - before;
    let good_first = good_per_path(&manifest);
    assert!(
        good_first.len() >= N / 2 && good_first.len() <= 400,
        "{}",
        good_first.len()
    );
    assert!(good_first.values().all(|v| v.len() == 1));
    assert!(computed_first >= good_first.len() as u64);
    // As a kill in the middle of a write leaves it: a torn last line.
    let mut m = append();
    m.write_all(b"{\"peer\":\"node1\",\"path\":\"").unwrap();
    drop(m);

    // The resume gets the whole list and appends to the same manifest.
    let mut list = Vec::new();
    for f in &files {
        writeln!(list, "{}", s(f)).unwrap();
    }
    let mut resume = all[0]
        .cmd("p2p-sha256")
        .args(["--spread", "--files-from", "-", "--resume"])
        .arg(&manifest)
        .stdin(Stdio::piped())
        .stdout(append())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = resume.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&list));
    let r = resume.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("torn line"), "{stderr}");
    let computed_resume = items(&all) - settled;

    // Every path has exactly one good line, and it is right.
    let good = good_per_path(&manifest);
    assert_eq!(good.len(), N, "every path answered");
    for f in &files {
        let v = &good[s(f)];
        assert_eq!(v.len(), 1, "{} has {} good lines", s(f), v.len());
        let want = format!("{:x}", Sha256::digest(std::fs::read(f).unwrap()));
        assert_eq!(v[0]["sha256"], want.as_str(), "{}", v[0]);
    }
    // The resume computed the missing paths and nothing else; the only
    // paths computed twice are those in flight when the first run died.
    assert_eq!(computed_resume, (N - good_first.len()) as u64);
    let twice = computed_first - good_first.len() as u64;
    eprintln!(
        "first run: {} lines, {computed_first} computed; resume: {computed_resume} computed; {twice} twice",
        good_first.len()
    );
    // The torn line stays on a line of its own; all others are whole JSON.
    let torn: Vec<String> = lines(&manifest)
        .into_iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_err())
        .collect();
    assert_eq!(torn, ["{\"peer\":\"node1\",\"path\":\"\n"]);
}

#[test]
fn resume_skips_exact_names_and_refuses_another_commands_output() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&["--name", "solo"]);
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"odd-\xff-name"));
    std::fs::write(&odd, b"odd\n").unwrap();
    let twin = dir.path().join("odd-\u{fffd}-name");
    std::fs::write(&twin, b"twin\n").unwrap();
    let plain = write(dir.path(), "plain", b"plain\n");
    let manifest = dir.path().join("m.jsonl");
    let first = run(d.cmd("p2p-sha256").arg(&odd).arg(&plain));
    assert_eq!(first.status, 0, "{}", first.stderr);
    assert!(first.stdout.contains("path_b64"), "{}", first.stdout);
    std::fs::write(&manifest, &first.stdout).unwrap();

    // The odd name is done (its exact bytes), its look-alike is not.
    let again = run(d
        .cmd("p2p-sha256")
        .arg("--resume")
        .arg(&manifest)
        .args([&odd, &twin, &plain]));
    assert_eq!(again.status, 0, "{}", again.stderr);
    let paths: Vec<Value> = again.json().iter().map(|v| v["path"].clone()).collect();
    assert_eq!(paths, [Value::from(s(&twin))], "{}", again.stdout);

    // p2p-wc will not take p2p-sha256's manifest.
    let wc = run(d.cmd("p2p-wc").arg("--resume").arg(&manifest).arg(&plain));
    assert_eq!(wc.status, 2, "{}", wc.stderr);
    assert!(
        wc.stderr.contains("p2p-sha256") && wc.stderr.contains("not of p2p-wc"),
        "{}",
        wc.stderr
    );
    assert!(wc.stdout.is_empty());
    // Nor text output, nor --all (one line per member, not per path).
    let text = dir.path().join("text");
    std::fs::write(&text, "      1       1       6 plain\n").unwrap();
    let r = run(d.cmd("p2p-wc").arg("--resume").arg(&text).arg(&plain));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not JSON"), "{}", r.stderr);
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--all", "--resume"])
        .arg(&manifest)
        .arg(&plain));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--all"), "{}", r.stderr);
}
