//! Several daemons on loopback: joining through one, failure detection,
//! graceful leave, restarts, watch events, duplicate names and wrong keys.

mod common;

use common::{Daemon, FAST, TEST_KEY, eventually, peers, run};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = FAST.to_vec();
    v.extend_from_slice(extra);
    v
}

fn state_of(d: &Daemon, name: &str) -> Option<(String, u64)> {
    peers(d).into_iter().find(|m| m["name"] == name).map(|m| {
        (
            m["state"].as_str().unwrap_or("").to_string(),
            m["incarnation"].as_u64().unwrap_or(0),
        )
    })
}

fn start_cluster(n: usize) -> Vec<Daemon> {
    common::start_cluster(n, |_| Vec::new())
}

#[test]
fn two_daemons_on_port_0_get_ports_of_their_own_and_join_each_other() {
    // The harness starts every daemon on port 0 and reads `--port-file`.
    let mut a = Daemon::start(&args(&["--name", "a"]));
    let a_addr = format!("127.0.0.1:{}", a.port);
    let b = Daemon::start(&args(&["--name", "b", "--join", &a_addr]));
    assert_ne!(a.port, 0);
    assert_ne!(b.port, 0);
    assert_ne!(a.port, b.port);
    // The port reported is the one bound, for TCP and UDP both.
    assert!(TcpStream::connect(&a_addr).is_ok());
    assert!(UdpSocket::bind(&a_addr).is_err());
    for d in [&a, &b] {
        eventually(15, "a and b alive in both lists", || {
            let p = peers(d);
            p.len() == 2 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    // Each is known, and advertised, at the port it reported.
    let b_addr = format!("127.0.0.1:{}", b.port);
    let p = peers(&a);
    assert!(
        p.iter()
            .any(|m| m["name"] == "b" && m["addr"] == b_addr.as_str()),
        "{p:?}"
    );
    let p = peers(&b);
    assert!(
        p.iter()
            .any(|m| m["name"] == "a" && m["addr"] == a_addr.as_str()),
        "{p:?}"
    );
    // The ready line of the log names it too.
    let log = a.log();
    assert!(log.contains(&format!("peers on {a_addr}")), "{log}");
    // The port file is the number and a newline, and goes at a clean exit.
    let port_file = a.dir.path().join("p2pd.port");
    assert_eq!(
        std::fs::read_to_string(&port_file).unwrap(),
        format!("{}\n", a.port)
    );
    let st = a
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(2))
        .expect("exits within 2 s");
    assert_eq!(st.code(), Some(0));
    assert!(!port_file.exists());
}

#[test]
fn five_daemons_join_through_one_and_share_tags() {
    let first = Daemon::start(&args(&["--name", "node0", "--tag", "role=db"]));
    let seed = format!("127.0.0.1:{}", first.port);
    // The seed's positional form: p2pd PORT HOST:PORT.
    let mut all = vec![first];
    for i in 1..5 {
        let name = format!("node{i}");
        let d = Daemon::start_on(
            0,
            &args(&["--name", &name, &seed]),
            &[("P2PD_SECRET", TEST_KEY)],
        );
        all.push(d);
    }
    for d in &all {
        eventually(15, "all five alive everywhere", || {
            let p = peers(d);
            p.len() == 5 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    let p = peers(&all[4]);
    let node0 = p.iter().find(|m| m["name"] == "node0").unwrap();
    assert_eq!(node0["tags"]["role"], "db");
    assert_eq!(p.iter().filter(|m| m["self"] == true).count(), 1);
    let r = run(all[4].cmd("p2p-peers").args(["--where", "role=db"]));
    assert_eq!(r.json().len(), 1);
    let r = run(all[4].cmd("p2p-peers").args(["--format", "text"]));
    assert!(r.stdout.starts_with("NAME"), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 6);
}

#[test]
fn kill_leave_and_restart_are_seen_and_watched() {
    let mut all = start_cluster(4);
    let mut watch = common::watch_members(&all[0]);

    // kill -9: the others declare it down.
    let killed = all.pop().unwrap();
    let killed_port = killed.port;
    let old_incarnation = state_of(&all[0], "node3").unwrap().1;
    drop(killed); // the harness kills with SIGKILL
    for d in &all {
        eventually(20, "node3 down", || {
            state_of(d, "node3").is_some_and(|s| s.0 == "down")
        });
    }

    // SIGTERM: a graceful leave, shown as left.
    let st = all[2]
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(2))
        .expect("exits within 2 s");
    assert_eq!(st.code(), Some(0));
    for d in &all[..2] {
        eventually(5, "node2 left", || {
            state_of(d, "node2").is_some_and(|s| s.0 == "left")
        });
    }

    // Restart node3 on its port: alive again, with a higher incarnation.
    let seed = format!("127.0.0.1:{}", all[0].port);
    let back = Daemon::start_on(
        killed_port,
        &args(&["--name", "node3", "--join", &seed]),
        &[("P2PD_SECRET", TEST_KEY)],
    );
    for d in &all[..2] {
        eventually(15, "node3 alive again", || {
            state_of(d, "node3").is_some_and(|(s, inc)| s == "alive" && inc > old_incarnation)
        });
    }
    drop(back);

    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let saw = |event: &str, name: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["name"] == name)
    };
    assert!(saw("fail", "node3"), "{events:?}");
    assert!(saw("leave", "node2"), "{events:?}");
    assert!(saw("join", "node3"), "{events:?}");
}

/// Runs a p2pd with `extra` to its end: it must be refused, its name in
/// use, and exit 2.
fn refused_as_a_duplicate(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let r = run(std::process::Command::new(common::bin("p2pd"))
        .arg("0")
        .args(FAST)
        .args(extra)
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", dir.path())
        .stdin(Stdio::null()));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
}

#[test]
fn a_duplicate_name_is_refused() {
    let first = Daemon::start(&args(&["--name", "same"]));
    let seed = format!("127.0.0.1:{}", first.port);
    refused_as_a_duplicate(&["--name", "same", "--join", &seed]);
    assert_eq!(peers(&first).len(), 1);
}

#[test]
fn a_daemon_with_another_key_cannot_join_or_be_seen() {
    let good = Daemon::start(&args(&["--name", "good"]));
    let other_key = "b3RoZXIga2V5IG90aGVyIGtleSBvdGhlciBrZXkgb3Q=";
    let bad = Daemon::start_on(
        0,
        &args(&["--name", "intruder"]),
        &[("P2PD_SECRET", other_key)],
    );
    let r = run(bad.cmd("p2p-join").arg(format!("127.0.0.1:{}", good.port)));
    assert_eq!(r.status, 1);
    assert_eq!(r.json()[0]["error"]["code"], "unauthorized");
    // Nor does gossip sneak it in.
    std::thread::sleep(Duration::from_secs(2));
    assert!(peers(&good).iter().all(|m| m["name"] != "intruder"));
    assert!(peers(&bad).iter().all(|m| m["name"] != "good"));
}

#[test]
fn garbage_on_the_ports_changes_nothing() {
    let all = start_cluster(2);
    let target = format!("127.0.0.1:{}", all[0].port);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u32 = 7;
    for i in 0..500 {
        let len = (i * 37) % 1500 + 1;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let _ = udp.send_to(&junk, &target);
    }
    for junk in [
        &b"\x00\x30garbage that is no handshake at all......"[..],
        &[0xff; 4096][..],
        b"",
    ] {
        if let Ok(mut s) = TcpStream::connect(&target) {
            let _ = s.write_all(junk);
        }
    }
    // Slow client: connects and says nothing; others are still served.
    let _idle = TcpStream::connect(&target).unwrap();
    let r = run(all[1].cmd("p2p-join").arg(&target));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["members"], 2);
    assert!(peers(&all[0]).iter().all(|m| m["state"] == "alive"));
    let log = all[0].log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn p2p_join_at_run_time() {
    let a = Daemon::start(&args(&["--name", "a"]));
    let b = Daemon::start(&args(&["--name", "b"]));
    let r = run(b
        .cmd("p2p-join")
        .arg(format!("127.0.0.1:{}", a.port))
        .arg("127.0.0.1:1"));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out[0]["members"], 2);
    assert_eq!(out[1]["error"]["code"], "unreachable");
    eventually(10, "a sees b", || peers(&a).len() == 2);
    let reader = BufReader::new(r.stderr.as_bytes());
    assert_eq!(reader.lines().count(), 1);
}

#[test]
fn keys_rotate_on_sighup_and_the_cluster_stays_whole() {
    use std::os::unix::fs::PermissionsExt;
    let old = TEST_KEY;
    let new = "bmV3IGtleSBuZXcga2V5IG5ldyBrZXkgbmV3IGtleSE=";
    let keys = tempfile::tempdir().unwrap();
    let files: Vec<std::path::PathBuf> = (0..3)
        .map(|i| {
            let f = common::write(keys.path(), &format!("node{i}.key"), old.as_bytes());
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
            f
        })
        .collect();
    let key_arg = |i: usize| files[i].to_str().unwrap().to_string();
    let k0 = key_arg(0);
    let first = Daemon::start(&args(&["--name", "node0", "--secret-file", &k0]));
    let seed = format!("127.0.0.1:{}", first.port);
    let mut all = vec![first];
    for i in 1..3 {
        let (name, k) = (format!("node{i}"), key_arg(i));
        all.push(Daemon::start(&args(&[
            "--name",
            &name,
            "--secret-file",
            &k,
            "--join",
            &seed,
        ])));
    }
    let whole = |what: &str| {
        for d in &all {
            eventually(10, what, || {
                let p = peers(d);
                p.len() == 3 && p.iter().all(|m| m["state"] == "alive")
            });
        }
    };
    whole("the cluster forms under the old key");
    let mut watch = common::watch_members(&all[0]);

    // Install the new key beside the old, make it the one that sends, then
    // drop the old one; each step reaches every node by SIGHUP, one by one.
    for (step, text) in [
        format!("{old}\n{new}\n"),
        format!("{new}\n{old}\n"),
        format!("{new}\n"),
    ]
    .iter()
    .enumerate()
    {
        for (i, d) in all.iter().enumerate() {
            std::fs::write(&files[i], text).unwrap();
            unsafe {
                libc::kill(d.pid(), libc::SIGHUP);
            }
        }
        std::thread::sleep(Duration::from_millis(1500));
        whole(&format!("the cluster stays whole after step {step}"));
        let log = all[1].log();
        assert!(log.contains("SIGHUP"), "{log}");
    }

    // Now only the new key opens the door.
    let stale = Daemon::start_on(0, &args(&["--name", "stale"]), &[("P2PD_SECRET", old)]);
    let r = run(stale.cmd("p2p-join").arg(&seed));
    assert_eq!(r.json()[0]["error"]["code"], "unauthorized", "{}", r.stdout);
    let fresh = Daemon::start_on(0, &args(&["--name", "fresh"]), &[("P2PD_SECRET", new)]);
    let r = run(fresh.cmd("p2p-join").arg(&seed));
    assert_eq!(r.status, 0, "{}", r.stdout);

    // No member failed or left while the keys changed.
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["event"] != "fail" && e["event"] != "leave" && e["state"] == "alive"),
        "{events:?}"
    );
}

/// A host back under its name at another address (a new DHCP lease) while
/// the others still hold its old address as alive: its join is not
/// refused for good, since the old address is silent; it tries again and
/// gets in once the cluster finds the old one down, and every member
/// learns the new address. A second daemon under the same name, while the
/// first still answers, is refused and exits as before.
#[test]
fn a_member_back_at_a_new_address_is_accepted_once_the_old_one_is_silent() {
    let t = tempfile::tempdir().unwrap();
    let file = common::write(t.path(), "f.txt", b"one two three\n");
    let export = t.path().to_str().unwrap();
    // Suspicion lasts 3 s: the new daemon's first joins meet the old
    // record alive or suspect, and it must not give up.
    let slow = |name: &str, extra: &[&str]| {
        let mut v = args(&[
            "--name",
            name,
            "--export",
            export,
            "--suspicion-timeout",
            "3000",
        ]);
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let start = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        Daemon::start(&refs)
    };
    let b = start(slow("b", &[]));
    let seed = format!("127.0.0.1:{}", b.port);
    let c = start(slow("c", &["--join", &seed]));
    let mut a = start(slow("a", &["--join", &seed]));
    for d in [&a, &b, &c] {
        eventually(15, "three alive", || {
            let p = peers(d);
            p.len() == 3 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    let old = format!("127.0.0.1:{}", a.port);
    a.signal_and_wait(libc::SIGKILL, Duration::from_secs(5))
        .expect("a is killed");
    let moved = start(slow("a", &["--bind", "127.0.0.2", "--join", &seed]));
    let new = format!("127.0.0.2:{}", moved.port);
    for d in [&b, &c] {
        eventually(15, "a is seen at its new address", || {
            peers(d)
                .iter()
                .any(|m| m["name"] == "a" && m["addr"] == new.as_str() && m["state"] == "alive")
        });
    }
    assert!(b.log().contains("which does not answer"), "{}", b.log());
    assert!(moved.log().contains("retrying"), "{}", moved.log());
    assert!(b.log().contains(&old), "{}", b.log());
    let r = run(c.cmd("p2p-wc").args(["--all", file.to_str().unwrap()]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let mut answered: Vec<String> = r
        .json()
        .iter()
        .map(|v| v["peer"].as_str().unwrap().to_string())
        .collect();
    answered.sort();
    assert_eq!(answered, ["a", "b", "c"]);

    // The name is in use and its holder answers: refused.
    refused_as_a_duplicate(&["--name", "a", "--bind", "127.0.0.2", "--join", &seed]);
}
