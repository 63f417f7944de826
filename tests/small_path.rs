//! The small-file path: a few paths go with the request in one message and
//! are answered on the daemon's connection thread; a long list goes through
//! the worker pool. Arguments and a list in a file are sent and read by the
//! client's one thread; a list read from a pipe has a sender thread of its
//! own. All must print the same lines, in the same order, with the same
//! messages and exit status.

mod common;

use common::{Daemon, Run, run, run_with_stdin, write};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Paths of every kind of outcome, a repeated one included.
fn mixed(d: &Daemon) -> Vec<PathBuf> {
    let dir = d.dir.path();
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let a = write(dir, "a", b"one two\nthree\n");
    let empty = write(dir, "empty", b"");
    let uni = write(dir, "uni", "naïve café 東京\n\u{a0}x\n".as_bytes());
    let no_newline = write(dir, "nonl", b"last line");
    vec![
        a.clone(),
        dir.join("missing"),
        sub,
        empty,
        uni,
        no_newline,
        a,
    ]
}

/// The same paths as arguments (the one-message path) and as a list in a
/// file, both sent by the client's one thread; and the list again through a
/// pipe (the threaded path), which must print the same.
fn both_ways(d: &Daemon, cmd: &str, flags: &[&str], paths: &[PathBuf]) -> (Run, Run) {
    let direct = run(d.cmd(cmd).args(flags).args(paths));
    let mut list = String::new();
    for p in paths {
        list.push_str(p.to_str().unwrap());
        list.push('\n');
    }
    let listf = write(d.dir.path(), "list", list.as_bytes());
    let listed = run(d.cmd(cmd).args(flags).arg("--files-from").arg(&listf));
    let piped = run_with_stdin(
        d.cmd(cmd).args(flags).args(["--files-from", "-"]),
        list.as_bytes(),
    );
    assert_same(
        &format!("{cmd} {flags:?} list from a pipe"),
        &listed,
        &piped,
    );
    (direct, listed)
}

fn assert_same(what: &str, a: &Run, b: &Run) {
    assert_eq!(a.stdout, b.stdout, "{what}: stdout");
    assert_eq!(a.stderr, b.stderr, "{what}: stderr");
    assert_eq!(a.status, b.status, "{what}: exit status");
}

#[test]
fn a_few_arguments_print_exactly_what_the_same_list_prints() {
    let d = Daemon::start(&["--name", "small"]);
    let paths = mixed(&d);
    // Not `--format text` of p2p-wc: as GNU wc's, its column widths depend
    // on whether the names come as operands or from a list.
    for (cmd, flags) in [
        ("p2p-wc", &[][..]),
        ("p2p-wc", &["-l"][..]),
        ("p2p-sha256", &["--format", "sha256sum"][..]),
        ("p2p-sha256", &[][..]),
        ("p2p-stat", &[][..]),
    ] {
        let (direct, listed) = both_ways(&d, cmd, flags, &paths);
        assert_same(&format!("{cmd} {flags:?}"), &direct, &listed);
        assert_eq!(direct.status, 1, "{cmd}: two paths fail");
    }
    // And the lines are the right ones, in the order given.
    let (direct, _) = both_ways(&d, "p2p-wc", &[], &paths);
    let out = direct.json();
    assert_eq!(out.len(), paths.len());
    for (v, p) in out.iter().zip(&paths) {
        assert_eq!(v["path"], p.to_str().unwrap());
        assert_eq!(v["peer"], "small");
    }
    assert_eq!(
        (out[0]["lines"].as_u64(), out[0]["words"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(out[1]["error"]["code"], "not_found");
    assert_eq!(out[2]["error"]["code"], "is_directory");
    assert_eq!(out[3]["bytes"], 0);
    assert_eq!(out[6], out[0]);
    assert!(
        direct.stderr.contains("missing: No such file or directory"),
        "{}",
        direct.stderr
    );
}

#[test]
fn a_request_too_large_to_answer_on_the_connection_thread_gives_the_same_lines() {
    let d = Daemon::start(&[]);
    let dir = d.dir.path().join("many");
    // More items than are answered on the connection thread, and one file
    // larger than all of them may be together.
    let mut paths = Vec::new();
    for i in 0..40 {
        paths.push(write(&dir, &format!("f{i}"), "w ".repeat(i).as_bytes()));
    }
    paths.insert(7, write(&dir, "big", &b"x y\n".repeat(100_000)));
    let whole = run(d.cmd("p2p-wc").args(&paths));
    assert_eq!(whole.status, 0, "{}", whole.stderr);
    let lines = whole.json();
    assert_eq!(lines.len(), paths.len());
    // Each alone is a request small enough for the connection thread (the
    // big one alone is not: it goes to the pool either way).
    for (line, p) in lines.iter().zip(&paths) {
        let alone = run(d.cmd("p2p-wc").arg(p));
        assert_eq!(alone.status, 0, "{}", alone.stderr);
        assert_eq!(&alone.json()[0], line, "{}", p.display());
    }
    assert_eq!(lines[7]["lines"], 100_000);
    assert_eq!(lines[8]["words"], 7);
}

fn read_line(r: &mut impl BufRead) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn the_acceptance_comes_before_the_items_to_a_client_that_waits_for_it() {
    let d = Daemon::start(&["--name", "waits"]);
    let f = write(d.dir.path(), "f", b"a b c\n");
    let s = UnixStream::connect(&d.socket).unwrap();
    (&s).write_all(b"{\"op\":\"query\",\"kind\":\"wc\"}\n")
        .unwrap();
    // Nothing more is sent until the daemon has said it accepts.
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(
        read_line(&mut r),
        json!({"accepted": true, "peer": "waits"})
    );
    let file = std::fs::File::open(&f).unwrap();
    let item = format!(
        "{}\n{{\"end\":true}}\n",
        json!({"id": 5, "path": "f", "fd": true})
    );
    p2p::fdpass::send_with_fds(&s, item.as_bytes(), &[file.as_raw_fd()]).unwrap();
    let v = read_line(&mut r);
    assert_eq!((v["id"].as_u64(), v["words"].as_u64()), (Some(5), Some(3)));
    assert_eq!(
        read_line(&mut r),
        json!({"done": true, "ok": 1, "failed": 0})
    );
}

#[test]
fn a_request_sent_whole_in_one_message_is_answered_whole() {
    let d = Daemon::start(&["--name", "whole"]);
    let f = write(d.dir.path(), "f", b"a b c\n");
    let g = write(d.dir.path(), "g", b"x\n");
    let s = UnixStream::connect(&d.socket).unwrap();
    let (ff, gf) = (
        std::fs::File::open(&f).unwrap(),
        std::fs::File::open(&g).unwrap(),
    );
    let msg = format!(
        "{}\n{}\n{}\n{}\n{{\"end\":true}}\n",
        json!({"op": "query", "kind": "wc", "cwd": d.dir.path()}),
        json!({"id": 0, "path": "f", "fd": true}),
        json!({"id": 1, "path": "nowhere"}),
        json!({"id": 2, "path": "g", "fd": true}),
    );
    p2p::fdpass::send_with_fds(&s, msg.as_bytes(), &[ff.as_raw_fd(), gf.as_raw_fd()]).unwrap();
    let lines: Vec<Value> = BufReader::new(s)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0], json!({"accepted": true, "peer": "whole"}));
    let by_id = |id: u64| lines.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(by_id(0)["words"], 3);
    assert_eq!(by_id(1)["error"]["code"], "not_found");
    assert_eq!(by_id(2)["lines"], 1);
    assert_eq!(lines[4], json!({"done": true, "ok": 2, "failed": 1}));
}

/// Names near PATH_MAX, thousands of them: the item lines and the replies
/// are each far more than a socket buffer holds while the window is full,
/// so a client that blocked in its send while the daemon blocked writing
/// replies to it would never end. The one-thread client never waits in a
/// send; it must finish with every line, in order, from a file and from a
/// pipe alike.
#[test]
fn long_names_by_the_thousand_fill_both_directions_and_still_finish() {
    let d = Daemon::start(&[]);
    let mut dir = d.dir.path().to_path_buf();
    while dir.as_os_str().len() < 3_600 {
        dir.push("d".repeat(200));
    }
    let mut names = Vec::new();
    for i in 0..50 {
        names.push(write(
            &dir,
            &format!("f{i:03}"),
            format!("{i} words\n").as_bytes(),
        ));
    }
    let mut list = Vec::new();
    for _ in 0..40 {
        for p in &names {
            list.extend_from_slice(p.as_os_str().as_encoded_bytes());
            list.push(b'\n');
        }
    }
    let listf = write(d.dir.path(), "long.list", &list);
    for piped in [false, true] {
        let mut cmd = d.cmd("p2p-wc");
        cmd.args([
            "--files-from",
            if piped { "-" } else { listf.to_str().unwrap() },
        ]);
        let mut child = cmd
            .stdin(if piped {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take();
        let data = list.clone();
        let writer = std::thread::spawn(move || {
            if let Some(mut w) = input {
                let _ = w.write_all(&data);
            }
        });
        // Read the output on another thread, and guard against a hang: a
        // stalled client is killed, and the missing lines fail the test.
        let pid = child.id();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let guard = std::thread::spawn(move || {
            let wait = std::time::Duration::from_secs(300);
            if finished.recv_timeout(wait) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // SAFETY: a signal to the child we started, not yet reaped.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        });
        let out = child.wait_with_output().unwrap();
        let _ = done.send(());
        let _ = guard.join();
        let _ = writer.join();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            out.status.code(),
            Some(0),
            "piped {piped}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lines.len(), 2_000, "piped {piped}");
        for (n, v) in lines.iter().enumerate() {
            let i = n % 50;
            assert_eq!(v["path"], names[i].to_str().unwrap(), "line {n}");
            assert_eq!(v["words"], 2, "line {n}");
        }
    }
}
