//! Members on IPv6 loopback (::1): `--bind ::1`, `--advertise [::1]:PORT`,
//! joins by `[::1]:PORT`, and every kind of query across them. Where the
//! host has no ::1 (IPv6 off in a container), each test says so and is
//! skipped.

mod common;

use common::{Daemon, FAST, TEST_KEY, eventually, gnu_sha256, peers, run, write};
use std::path::Path;

/// Whether ::1 can be bound here; if not, says so for the test `name`.
fn ipv6_loopback(name: &str) -> bool {
    match std::net::UdpSocket::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("{name}: SKIPPED, ::1 cannot be bound on this host: {e}");
            false
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn daemon(name: &str, export: &Path, extra: &[&str]) -> Daemon {
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--name", name, "--bind", "::1", "--export", s(export)]);
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

#[test]
fn members_on_ipv6_loopback_join_and_answer_every_query() {
    if !ipv6_loopback("members_on_ipv6_loopback_join_and_answer_every_query") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let file = write(&top, "f.txt", b"one two\nthree\n");
    let a = daemon("a", &top, &[]);
    let seed = format!("[::1]:{}", a.port);
    let b = daemon("b", &top, &["--join", &seed]);
    for d in [&a, &b] {
        eventually(15, "both alive", || {
            let p = peers(d);
            p.len() == 2 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    let addr_of = |d: &Daemon, name: &str| {
        peers(d)
            .into_iter()
            .find(|m| m["name"] == name)
            .map(|m| m["addr"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(addr_of(&a, "b"), format!("[::1]:{}", b.port));
    assert_eq!(addr_of(&b, "a"), seed);

    let r = run(a.cmd("p2p-wc").args(["--all", s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines.iter().all(|v| v["words"] == 3), "{}", r.stdout);

    let r = run(b.cmd("p2p-sha256").args(["--peer", "a", s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["sha256"], gnu_sha256(&file).as_str());

    // Spread over both, stat and count on the other, and a member named
    // by its address.
    let r = run(a.cmd("p2p-sha256").args(["--spread", s(&file), s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json().len(), 2, "{}", r.stdout);
    let r = run(a.cmd("p2p-stat").args(["--peer", "b", s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["size"], 14);
    let r = run(a.cmd("p2p-count").args(["--peer", "b", s(&top)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.json()[0]["files"].as_u64().unwrap() >= 1, "{}", r.stdout);
    let by_addr = format!("[::1]:{}", b.port);
    let r = run(a.cmd("p2p-wc").args(["--peer", &by_addr, s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["lines"], 2);
}

/// A port chosen for this test's own daemon; another test binary could
/// hold it for a moment, and the harness then tries again.
const ADVERTISED_PORT: u16 = 44101;

#[test]
fn a_member_advertises_an_ipv6_address_and_is_reached_there() {
    if !ipv6_loopback("a_member_advertises_an_ipv6_address_and_is_reached_there") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let file = write(&top, "f.txt", b"one two\nthree\n");
    let advertised = format!("[::1]:{ADVERTISED_PORT}");
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend([
        "--name",
        "a",
        "--bind",
        "::1",
        "--advertise",
        &advertised,
        "--export",
        s(&top),
    ]);
    let a = Daemon::start_on(ADVERTISED_PORT, &args, &[("P2PD_SECRET", TEST_KEY)]);
    let b = daemon("b", &top, &[]);
    let r = run(b.cmd("p2p-join").arg(&advertised));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    eventually(15, "b sees a at its advertised address", || {
        peers(&b)
            .iter()
            .any(|m| m["name"] == "a" && m["addr"] == advertised.as_str() && m["state"] == "alive")
    });
    let r = run(b.cmd("p2p-wc").args(["--peer", "a", s(&file)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["words"], 3);
    let own = peers(&a).into_iter().find(|m| m["self"] == true).unwrap();
    assert_eq!(own["addr"], advertised.as_str());
}
