//! Attacks on the daemon's limits, performed as an attacker would: one
//! local user locking out the others (watchers, silent connections), one
//! request amplified into many links, the daemon used to probe ports, a
//! member that only ever says it is working, and a zero timeout.

mod common;

use common::{
    Daemon, TEST_KEY, Vacant, ask_as, connect_as, eventually, is_root, open_to_all, raise_fd_limit,
    run, start_cluster, write,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The attacker, and a bystander who should not suffer for them.
const NOBODY: u32 = 65534;
const OTHER: u32 = 65533;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// `n` connections of `uid` that each sent `line` and keep quiet.
fn hold(d: &Daemon, uid: u32, n: usize, line: &str) -> Vec<UnixStream> {
    (0..n)
        .map(|_| {
            let mut s = connect_as(uid, &d.socket).expect("connecting");
            // A connection already refused may be closed: that is fine.
            let _ = s.write_all(format!("{line}\n").as_bytes());
            s
        })
        .collect()
}

/// The first line a connection gets, or `None` at the end of the stream.
fn first_line(s: &UnixStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => Some(line),
        Err(e) => panic!("no line within 60 s: {e}"),
    }
}

/// Root's own command and another user's request still answer.
fn others_still_served(d: &Daemon) {
    let f = write(d.dir.path(), "f.txt", b"one two\n");
    let r = run(d.cmd("p2p-wc").arg(&f));
    assert_eq!(r.status, 0, "root's query: {}", r.stderr);
    assert_eq!(r.json()[0]["words"], 2);
    let reply = ask_as(OTHER, &d.socket, r#"{"op":"peers"}"#);
    assert!(
        reply.last().is_some_and(|v| v["done"] == true),
        "another user's request: {reply:?}"
    );
}

#[test]
fn watchers_of_one_user_cannot_lock_out_the_others() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    raise_fd_limit();
    let d = Daemon::start(common::FAST);
    open_to_all(&d);
    let watchers = hold(&d, NOBODY, 300, r#"{"op":"peers","watch":true}"#);
    // A member joins: every watcher being served hears of it, every one
    // refused has its error line, so all 300 have been dealt with.
    let _second = Daemon::start(&[
        "--gossip-interval",
        "100",
        "--join",
        &format!("127.0.0.1:{}", d.port),
    ]);
    let mut served = 0;
    for w in &watchers {
        if let Some(line) = first_line(w) {
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("event").is_some() {
                served += 1;
            } else {
                assert!(!code(&v).is_empty(), "{line}");
            }
        }
    }
    assert!(served > 0, "some watchers are served");
    others_still_served(&d);
    drop(watchers);
}

#[test]
fn silent_connections_fill_only_their_share_and_are_closed() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    raise_fd_limit();
    let d = Daemon::start(&["--idle-timeout", "2"]);
    open_to_all(&d);
    // The first line of a streamed query, then nothing: no item, no end.
    let silent = hold(&d, NOBODY, 300, r#"{"op":"query","kind":"wc"}"#);
    others_still_served(&d);
    // Each is closed: refused, cut for a newer one, or timed out.
    for s in &silent {
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // A close with our line unread is a reset: closed all the same.
        let end = (&*s).read_to_end(&mut rest);
        assert!(
            end.as_ref().map_or_else(
                |e| e.kind() == std::io::ErrorKind::ConnectionReset,
                |_| true
            ),
            "a silent connection stays open: {end:?}"
        );
    }
    assert!(d.log().contains("silent for 2 s"), "{}", d.log());
    drop(silent);
}

#[test]
fn a_member_named_300_times_gets_one_link() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"hello\n");
    let all = start_cluster(2, |i| {
        if i == 1 {
            vec!["--export".into(), dir.path().to_str().unwrap().into()]
        } else {
            vec![]
        }
    });
    let sessions = || all[1].log().matches("session established").count();
    let before = sessions();
    let mut cmd = all[0].cmd("p2p-wc");
    for _ in 0..150 {
        cmd.args(["--peer", "node1"]);
        cmd.args(["--peer", &format!("127.0.0.1:{}", all[1].port)]);
    }
    let r = run(cmd.arg(&f));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 1, "one line per member per path: {}", r.stdout);
    assert_eq!(lines[0]["peer"], "node1");
    // At most the query's session and a periodic sync.
    let opened = sessions() - before;
    assert!(opened <= 3, "{opened} sessions opened for one member");
}

#[test]
fn only_owner_and_root_make_the_daemon_connect_to_raw_addresses() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    probe.set_nonblocking(true).unwrap();
    let target = probe.local_addr().unwrap().to_string();

    let join = ask_as(
        NOBODY,
        &d.socket,
        &format!(r#"{{"op":"join","addrs":["{target}"]}}"#),
    );
    assert_eq!(code(&join[0]), "permission_denied", "{join:?}");
    let query = ask_as(
        NOBODY,
        &d.socket,
        &format!(
            r#"{{"op":"query","kind":"wc","paths":["/etc/hostname"],"target":{{"peers":["{target}"]}}}}"#
        ),
    );
    assert_eq!(code(&query[0]), "permission_denied", "{query:?}");
    let as_nobody = |name: &str| {
        let mut c = d.cmd(name);
        std::os::unix::process::CommandExt::uid(&mut c, NOBODY);
        std::os::unix::process::CommandExt::gid(&mut c, NOBODY);
        c
    };
    let r = run(as_nobody("p2p-wc").args(["--peer", &target, "/etc/hostname"]));
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("only the daemon's own user"),
        "{}",
        r.stderr
    );
    let r = run(as_nobody("p2p-join").arg(&target));
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("only the daemon's own user"),
        "{}",
        r.stderr
    );
    assert!(
        probe.accept().is_err(),
        "the daemon connected to {target} for another user"
    );

    // Root may.
    let r = run(d.cmd("p2p-wc").args(["--peer", &target, "/etc/hostname"]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    eventually(10, "root's query reached the address", || {
        probe.accept().is_ok()
    });
}

/// A member that holds the cluster key, accepts every query, and then only
/// ever says it is working.
fn forever_working_member() -> u16 {
    use p2p::crypto::{keys::KeyRing, session};
    use p2p::proto::peer::{PeerReply, encode};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let ring = KeyRing::parse(TEST_KEY).unwrap();
                let Ok(mut s) = session::accept(stream, &ring) else {
                    return;
                };
                if s.recv(1 << 20).is_err() {
                    return;
                }
                let accepted = PeerReply::Accepted {
                    peer: "fake".into(),
                    workers: 1,
                };
                if s.send(&encode(&accepted)).is_err() {
                    return;
                }
                while s.send(&encode(&PeerReply::Working)).is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    port
}

#[test]
fn a_member_that_only_says_working_is_given_up() {
    let d = Daemon::start(&[]);
    let port = forever_working_member();
    let mut child = d
        .cmd("p2p-wc")
        .args(["--peer", &format!("127.0.0.1:{port}"), "--timeout", "0.3"])
        .arg("/etc/hostname")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bound is 60 times the timeout, 18 s; far past it the query hangs.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the query is still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().next().unwrap_or("")).unwrap();
    assert_eq!(code(&v), "timeout", "{stdout}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("working"),
        "{v}"
    );
}

#[test]
fn a_zero_timeout_is_refused_by_the_command_and_the_daemon() {
    let d = Daemon::start(&[]);
    // A bad flag value is a usage error: exit 2 in p2p-stat, 1 in p2p-wc
    // (as GNU wc).
    let r = run(d
        .cmd("p2p-stat")
        .args(["--peer", "x", "--timeout", "0", "/etc/hostname"]));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("from 0.05 to 86400"), "{}", r.stderr);
    let r = run(d
        .cmd("p2p-wc")
        .args(["--peer", "x", "--timeout", "0", "/etc/hostname"]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("from 0.05 to 86400"), "{}", r.stderr);

    let line = format!(
        r#"{{"op":"query","kind":"wc","paths":["/etc/hostname"],"target":{{"peers":["127.0.0.1:{}"],"timeout_ms":0}}}}"#,
        Vacant::new().port
    );
    let reply = ask_as(unsafe { libc::geteuid() }, &d.socket, &line);
    assert_eq!(code(&reply[0]), "invalid_request", "{reply:?}");
    assert!(
        reply[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeout_ms"),
        "{reply:?}"
    );
}
