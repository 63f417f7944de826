//! What a member holding the cluster key can do to identities: attacks of
//! issue 11 (findings 9, 11 and 13) performed against real daemons, over the
//! real Noise session and real sealed datagrams.

mod common;

use common::{Daemon, TEST_KEY, eventually, peers, run, start_cluster};
use p2p::crypto::keys::KeyRing;
use p2p::crypto::session;
use serde_json::{Value, json};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

/// Joins `d` as `node` (the JSON of an identity) over a session with the
/// test key, as a member would; returns the reply.
fn join(d: &Daemon, node: Value) -> Value {
    let ring = KeyRing::parse(TEST_KEY).unwrap();
    let stream = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = session::connect(stream, &ring).unwrap();
    let request = json!({"op": "join", "node": node});
    s.send(&serde_json::to_vec(&request).unwrap()).unwrap();
    serde_json::from_slice(&s.recv(1 << 20).unwrap()).unwrap()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn member<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["name"] == name)
}

/// Finding 9: a member joins with a 1,000-character name and 5,000 tags. It
/// is refused with the reason, and `p2p-peers --format text` keeps working.
#[test]
fn an_oversized_identity_is_refused_at_join() {
    let d = Daemon::start(&["--name", "target"]);
    let tags: serde_json::Map<String, Value> = (0..5000)
        .map(|i| (format!("tag{i}"), json!("x".repeat(100))))
        .collect();
    let reply = join(
        &d,
        json!({"name": "n".repeat(1000), "addr": "127.0.0.1:9", "incarnation": 1, "tags": tags}),
    );
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains("member name"), "{reply}");
    assert_eq!(reply["members"], json!([]));
    // Only tags too many.
    let tags: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("t{i}"), json!("v"))).collect();
    let reply = join(
        &d,
        json!({"name": "many", "addr": "127.0.0.1:9", "incarnation": 1, "tags": tags}),
    );
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 16 tags"),
        "{reply}"
    );
    let r = run(d.cmd("p2p-peers").args(["--format", "text"]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
    assert_eq!(peers(&d).len(), 1);
}

/// Finding 9: the largest identity the bounds accept joins, and every
/// output of `p2p-peers` prints it.
#[test]
fn the_largest_accepted_identity_is_listed_in_text() {
    let d = Daemon::start(&["--name", "target"]);
    let name = "n".repeat(64);
    let tags: serde_json::Map<String, Value> = (0..16)
        .map(|i| (format!("k{i:0>5}"), json!("v".repeat(4))))
        .collect();
    let reply = join(
        &d,
        json!({"name": name, "addr": "127.0.0.1:9", "incarnation": unix_ms(), "tags": tags}),
    );
    assert!(reply["error"].is_null(), "{reply}");
    eventually(10, "the big member is listed", || {
        member(&peers(&d), &name).is_some()
    });
    let r = run(d.cmd("p2p-peers").args(["--format", "text"]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&name), "{}", r.stdout);
    assert!(r.stdout.contains("k00015=vvvv"), "{}", r.stdout);
}

/// Finding 11: a join claims a live member's name and address with a huge
/// incarnation. One beyond the clock bound is refused; one within it is
/// answered by the real member at once, which every member then sees
/// alive, with an incarnation above the claim.
#[test]
fn a_forged_incarnation_does_not_take_a_members_name() {
    let all = start_cluster(2, |_| Vec::new());
    let victim = format!("127.0.0.1:{}", all[1].port);
    // Within the bound: 29 days ahead.
    let forged = unix_ms() + 29 * 24 * 3600 * 1000;
    let reply = join(
        &all[0],
        json!({"name": "node1", "addr": victim, "incarnation": forged, "tags": {"forged": "yes"}}),
    );
    assert!(reply["error"].is_null(), "{reply}");
    for d in &all {
        eventually(10, "the real node1 is alive everywhere", || {
            let list = peers(d);
            member(&list, "node1").is_some_and(|m| {
                m["state"] == "alive"
                    && m["incarnation"].as_u64() > Some(forged)
                    && m["tags"] == json!({})
            })
        });
    }
    // And stays so once the suspicion of the forged identity runs out.
    std::thread::sleep(Duration::from_secs(3));
    for d in &all {
        let list = peers(d);
        assert_eq!(
            member(&list, "node1").unwrap()["state"],
            "alive",
            "{list:?}"
        );
    }
    assert!(all[1].log().contains("claims our name or address"));
    // Beyond the bound, where no one could answer it: refused.
    let reply = join(
        &all[0],
        json!({"name": "node1", "addr": victim, "incarnation": u64::MAX - 1, "tags": {}}),
    );
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("ahead of our clock"),
        "{reply}"
    );
    let list = peers(&all[0]);
    assert_eq!(
        member(&list, "node1").unwrap()["state"],
        "alive",
        "{list:?}"
    );
}

/// A sealed foca announce from `src`: what a member holding the key sends
/// to join by gossip.
fn sealed_announce(src: p2p::membership::Node, to: &p2p::membership::Node) -> Vec<u8> {
    use foca::Codec;
    let header = foca::Header {
        src,
        src_incarnation: 0,
        dst: to.clone(),
        message: foca::Message::<p2p::membership::Node>::Announce,
    };
    let mut data = vec![0u8];
    foca::PostcardCodec
        .encode_header(&header, &mut data)
        .unwrap();
    let ring = KeyRing::parse(TEST_KEY).unwrap();
    let mut stamps = p2p::crypto::gossip::Endpoint::new(header.src.addr, unix_ms(), 1);
    p2p::crypto::gossip::GossipCipher::new(&ring).seal(&mut stamps, &to.addr, &data)
}

/// Finding 13: 20,000 forged datagrams at debug level (the harness's
/// level), then a member's announce (which the daemon's one gossip thread
/// takes after everything before it): the log stays small.
#[test]
fn a_flood_of_forged_datagrams_leaves_a_small_log() {
    let d = Daemon::start(&["--name", "target"]);
    let before = d.log().len();
    let target = format!("127.0.0.1:{}", d.port);
    common::flood_forged_datagrams(&target, 20_000);
    let me = p2p::membership::Node {
        name: "target".into(),
        addr: target.parse().unwrap(),
        incarnation: 0,
        tags: Default::default(),
    };
    let marker = p2p::membership::Node {
        name: "marker".into(),
        addr: "127.0.0.1:9".parse().unwrap(),
        incarnation: unix_ms(),
        tags: Default::default(),
    };
    let marker = sealed_announce(marker, &me);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    eventually(15, "the daemon read the whole flood", || {
        let _ = udp.send_to(&marker, &target);
        member(&peers(&d), "marker").is_some()
    });
    let log = d.log();
    let grown = log.len() - before;
    eprintln!("the flood grew the log by {grown} bytes");
    assert!(
        grown < 16 * 1024,
        "{grown} bytes of log: {}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(log.contains("failed authentication"), "{log}");
}

/// Finding 13: a name with a newline cannot forge a log line.
#[test]
fn a_name_with_a_newline_is_logged_escaped() {
    let d = Daemon::start(&["--name", "target"]);
    let reply = join(
        &d,
        json!({"name": "evil\nFORGED line\u{1b}[31m", "addr": "127.0.0.1:9", "incarnation": 1, "tags": {}}),
    );
    eventually(5, "the name is logged", || d.log().contains("evil"));
    let log = d.log();
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(log.contains(r"evil\nFORGED line\u{1b}[31m"), "{log}");
    // And such a name is no member's.
    assert!(!reply["error"].is_null(), "{reply}");
}
