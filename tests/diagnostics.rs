//! What an operator reads when debugging: the daemon's debug lines while
//! members join and answer a query, and messages that name their subject
//! once (`127.0.0.1:30999: Connection refused`, not the address twice).

mod common;

use common::{Daemon, FAST, Vacant, eventually, run, start_cluster, write};

fn me() -> u32 {
    unsafe { libc::geteuid() }
}

/// Waits until `d`'s log has every one of `wanted`, and says which is missing.
fn log_shows(d: &Daemon, wanted: &[&str]) {
    let all = |log: &str| wanted.iter().all(|w| log.contains(w));
    let mut last = String::new();
    let found = (0..100).any(|_| {
        last = d.log();
        all(&last) || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    let missing: Vec<&&str> = wanted.iter().filter(|w| !last.contains(**w)).collect();
    assert!(found, "missing {missing:?} in the log:\n{last}");
}

#[test]
fn debug_lines_follow_a_join_and_a_query_on_both_sides() {
    let data = tempfile::tempdir().unwrap();
    let file = write(data.path(), "notes.txt", b"one two\nthree\n");
    let root = data.path().to_str().unwrap().to_string();
    let nodes = start_cluster(2, |_| vec!["--export".into(), root.clone()]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let r = run(a.cmd("p2p-wc").arg("--all").arg(&file));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json().len(), 2, "{}", r.stdout);

    let a_addr = format!("127.0.0.1:{}", a.port);
    let b_addr = format!("127.0.0.1:{}", b.port);
    // The joining side: the attempt, what it got, the new member's state.
    log_shows(
        b,
        &[
            &format!("DEBUG p2p::daemon::cluster] joining through {a_addr}"),
            &format!("joined through {a_addr}: it sent 1 member(s): node0 at {a_addr}"),
            &format!("member node0 at {a_addr} is now alive, incarnation"),
        ],
    );
    // The member joined through, and the asking side of the query: who
    // asked what where, each member's link and session, the totals.
    log_shows(
        a,
        &[
            &format!("node1 at {b_addr} joins through us; sending it 1 member(s)"),
            "session established",
            &format!("from uid {} (pid ", me()),
            "): wc on --all",
            &format!("asking node1 at {b_addr}"),
            &format!("session to {b_addr} opened"),
            &format!("node1 at {b_addr} gave 1 answer(s) in "),
            &format!("asking node0 at {a_addr}"),
            "done: 2 item(s), 2 ok, 0 failed in ",
        ],
    );
    // The member answering: the session and the query it served.
    log_shows(
        b,
        &[
            "session established",
            "wc query started",
            "wc query answered, 1 item(s) in ",
        ],
    );
}

#[test]
fn a_query_on_this_host_logs_its_caller_and_items() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let f1 = write(dir.path(), "a", b"x\n");
    let f2 = write(dir.path(), "b", b"y\n");
    // A directory is opened by the command and refused by the daemon.
    let r = run(d.cmd("p2p-sha256").arg(&f1).arg(&f2).arg(dir.path()));
    assert_eq!(r.status, 1, "{}", r.stderr);
    log_shows(
        &d,
        &[
            &format!("from uid {} (pid ", me()),
            "): sha256 on this host",
            "done: 3 item(s), 2 ok, 1 failed in ",
        ],
    );
}

#[test]
fn a_failed_join_names_the_address_once() {
    let d = Daemon::start(&[]);
    let vacant = Vacant::new();
    let nobody = vacant.addr();
    let r = run(d.cmd("p2p-join").arg(&nobody));
    assert_eq!(r.status, 1, "{} {}", r.stdout, r.stderr);
    let v = &r.json()[0];
    assert_eq!(v["addr"], nobody.as_str());
    assert_eq!(v["error"]["code"], "unreachable");
    let message = v["error"]["message"].as_str().unwrap();
    assert_eq!(message, "Connection refused", "{v}");
    assert_eq!(
        r.stderr.trim_end(),
        format!("p2p-join: {nobody}: Connection refused")
    );
    log_shows(
        &d,
        &[&format!(
            "joining through {nobody} for uid {} (p2p-join): Connection refused",
            me()
        )],
    );
    assert!(
        !d.log().contains(&format!("{nobody}: {nobody}")),
        "{}",
        d.log()
    );
}

#[test]
fn fan_out_errors_name_the_member_once() {
    let d = Daemon::start(FAST);
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "f", b"x\n");
    let vacant = Vacant::new();
    let nobody = vacant.addr();
    let r = run(d.cmd("p2p-wc").arg("--peer").arg(&nobody).arg(&f));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(v["peer"], nobody.as_str());
    assert_eq!(v["error"]["code"], "unreachable");
    assert_eq!(
        v["error"]["message"],
        "cannot be reached: Connection refused"
    );
    assert_eq!(r.stderr.matches(&nobody).count(), 1, "{}", r.stderr);

    let r = run(d.cmd("p2p-wc").arg("--peer").arg("nosuch").arg(&f));
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(r.stderr.matches("nosuch").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("no member has this name"), "{}", r.stderr);
}

#[test]
fn p2p_leave_is_logged_as_a_leave_by_its_caller() {
    let d = Daemon::start(&[]);
    let r = run(&mut d.cmd("p2p-leave"));
    assert_eq!(r.status, 0, "{}", r.stderr);
    log_shows(
        &d,
        &[
            &format!("INFO  p2p::daemon] uid {} (pid ", me()),
            ") asked us to leave (p2p-leave): leaving the cluster and shutting down",
        ],
    );
    let log = d.log();
    assert!(
        log.contains("asked us to leave (p2p-leave): leaving the cluster and shutting down"),
        "{log}"
    );
    assert!(!log.contains("SIGTERM"), "{log}");
}

#[test]
fn without_debug_none_of_this_is_logged() {
    let d = Daemon::start_on(
        0,
        &[],
        &[("P2PD_SECRET", common::TEST_KEY), ("RUST_LOG", "info")],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "f", b"x\n");
    assert_eq!(run(d.cmd("p2p-wc").arg(&f)).status, 0);
    eventually(5, "the daemon logged its start", || {
        d.log().contains("serving")
    });
    let log = d.log();
    assert!(!log.contains("DEBUG"), "{log}");
    assert!(!log.contains("on this host"), "{log}");
}
