//! Certified members: `p2p-ca` and `p2p-keygen --node` make the files,
//! `p2pd --ca --cert --node-key` uses them, and every way in without a good
//! certificate is tried and refused.

mod common;

use common::{Daemon, FAST, TEST_KEY, bin, eventually, num, peers, run, status, write};
use p2p::crypto::cert::{CaSecret, Cert, CertBody, NodeSecret, Revocations};
use p2p::crypto::keys::KeyRing;
use p2p::crypto::session::{self, Identity};
use p2p::membership::Node;
use p2p::proto::peer::{self, JoinReply, PeerRequest};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CA made by `p2p-ca init` in `dir/name`.
fn ca(dir: &Path, name: &str) -> PathBuf {
    common::new_ca(dir, name)
}

/// A node key made by `p2p-keygen --node` and a certificate for `name` in
/// group web signed by the CA in `ca`: (node.key, node.crt).
fn certify(dir: &Path, ca: &Path, name: &str) -> (PathBuf, PathBuf) {
    common::node_certificate(dir, ca, name, &["--group", "web"])
}

/// Starts a certified daemon named `name`, trusting the CA in `trusted`.
fn certified(dir: &Path, trusted: &Path, key: &Path, crt: &Path, extra: &[&str]) -> Daemon {
    certified_on(0, dir, trusted, key, crt, extra)
}

/// [`certified`] on `port` (0: one it picks), as a restart on its old port.
fn certified_on(
    port: u16,
    dir: &Path,
    trusted: &Path,
    key: &Path,
    crt: &Path,
    extra: &[&str],
) -> Daemon {
    let ca_pub = trusted.join("ca.pub");
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend([
        "--ca",
        s(&ca_pub),
        "--cert",
        s(crt),
        "--node-key",
        s(key),
        "--export",
        s(dir),
    ]);
    args.extend(extra);
    Daemon::start_on(port, &args, &[("P2PD_SECRET", TEST_KEY)])
}

fn names(d: &Daemon) -> Vec<String> {
    peers(d)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_certified_daemons_join_and_query_each_other() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let (k1, c1) = certify(t.path(), &ca, "beta");
    let file = write(t.path(), "data.txt", b"one two\nthree\n");
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    let join = format!("127.0.0.1:{}", a.port);
    let b = certified(t.path(), &ca, &k1, &c1, &["--join", &join]);
    for d in [&a, &b] {
        eventually(15, "both members see each other alive", || {
            let p = peers(d);
            p.len() == 2 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    // The member names are the certificates' (no --name was given).
    let mut n = names(&a);
    n.sort();
    assert_eq!(n, ["alpha", "beta"]);
    let r = run(b.cmd("p2p-wc").args(["--peer", "alpha", s(&file)]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(v["peer"], "alpha");
    assert_eq!(v["words"], 3);
    assert!(a.log().contains("certified as alpha"), "{}", a.log());
}

#[test]
fn a_daemon_certified_by_another_ca_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let ours = ca(t.path(), "ours");
    let theirs = ca(t.path(), "theirs");
    let (k0, c0) = certify(t.path(), &ours, "alpha");
    let (k1, c1) = certify(t.path(), &theirs, "mallory");
    let a = certified(t.path(), &ours, &k0, &c0, &[]);
    // Mallory holds the cluster key and a certificate, of its own CA.
    let m = certified(t.path(), &theirs, &k1, &c1, &[]);
    let r = run(m.cmd("p2p-join").arg(format!("127.0.0.1:{}", a.port)));
    assert_ne!(r.status, 0, "{}", r.stdout);
    // Mallory's own daemon already balks at alpha's certificate; a forged
    // client that trusts our CA goes on and shows its own.
    assert!(
        r.stdout.contains("not signed by this cluster's CA"),
        "{}",
        r.stdout
    );
    let forged = identity(&theirs, &ours, "mallory", now() - 60, now() + 3600);
    assert!(join_as(&a, &forged, "mallory").is_err());
    eventually(5, "the refusal is logged", || {
        a.log().contains("not signed by this cluster's CA")
    });
    assert_eq!(names(&a), ["alpha"]);
}

#[test]
fn a_shared_key_daemon_is_refused_by_a_certified_one() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    let plain = Daemon::start(&["--name", "plain"]);
    let r = run(plain.cmd("p2p-join").arg(format!("127.0.0.1:{}", a.port)));
    assert_ne!(r.status, 0, "{}", r.stdout);
    assert_eq!(names(&a), ["alpha"]);
}

/// The CA's secret key, read as p2p-ca would (the test is the CA here).
fn ca_secret(ca: &Path) -> CaSecret {
    CaSecret::decode(&std::fs::read_to_string(ca.join("ca.key")).unwrap()).unwrap()
}

/// Opens a certified session to `d` as `id` and asks to join as `claimed`.
/// Err when the daemon cut the session.
fn join_as(d: &Daemon, id: &Identity, claimed: &str) -> Result<JoinReply, String> {
    let stream = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ring = KeyRing::parse(TEST_KEY).unwrap();
    let mut s = session::connect_as(stream, &ring, Some(id)).map_err(|e| e.to_string())?;
    let node = Node {
        name: claimed.into(),
        addr: "127.0.0.1:9".parse().unwrap(),
        incarnation: 1,
        tags: Default::default(),
    };
    s.send(&peer::encode(&PeerRequest::Join { node }))
        .map_err(|e| e.to_string())?;
    let reply = s.recv(peer::MAX_FRAME).map_err(|e| e.to_string())?;
    serde_json::from_slice(&reply).map_err(|e| e.to_string())
}

/// A client identity with a certificate signed by the CA in `signer`,
/// trusting the CA in `trusted`.
fn identity(
    signer: &Path,
    trusted: &Path,
    name: &str,
    not_before: i64,
    not_after: i64,
) -> Identity {
    let key = NodeSecret::from_seed(&[7; 64]);
    let cert: Cert = ca_secret(signer)
        .issue(CertBody {
            serial: 99,
            not_before,
            not_after,
            key: key.public(),
            name: name.into(),
            groups: vec![],
        })
        .unwrap();
    let ca = p2p::crypto::cert::CaPublic::decode(
        &std::fs::read_to_string(trusted.join("ca.pub")).unwrap(),
    )
    .unwrap();
    Identity {
        ca,
        cert,
        key,
        accept_uncertified: false,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn an_expired_certificate_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    // Properly signed, but it ran out an hour ago.
    let old = identity(&ca, &ca, "old", now() - 86_400, now() - 3600);
    assert!(join_as(&a, &old, "old").is_err());
    eventually(5, "the refusal is logged", || {
        a.log().contains("expired at")
    });
    assert_eq!(names(&a), ["alpha"]);
    // The same member with a current certificate gets in: the refusal was the date.
    let fresh = identity(&ca, &ca, "old", now() - 60, now() + 3600);
    let reply = join_as(&a, &fresh, "old").unwrap();
    assert!(reply.error.is_none(), "{:?}", reply.error);
}

#[test]
fn a_certificate_for_one_name_cannot_claim_another() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    // A genuine, current certificate for "mallory", claiming to be "beta".
    let mallory = identity(&ca, &ca, "mallory", now() - 60, now() + 3600);
    let reply = join_as(&a, &mallory, "beta");
    let refused = match reply {
        Err(_) => true,
        Ok(r) => r.error.is_some(),
    };
    assert!(refused, "a join as another name was accepted");
    eventually(5, "the refusal is logged", || {
        a.log().contains("but the peer claims to be \"beta\"")
    });
    assert_eq!(names(&a), ["alpha"]);
    // p2pd itself will not start under another name than its certificate's.
    let (k1, c1) = certify(t.path(), &ca, "gamma");
    let out = Command::new(bin("p2pd"))
        .args(["0", "--name", "delta", "--ca"])
        .arg(ca.join("ca.pub"))
        .arg("--cert")
        .arg(&c1)
        .arg("--node-key")
        .arg(&k1)
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the certificate is for gamma"), "{err}");
}

#[test]
fn the_ca_key_is_private_and_never_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    use std::os::unix::fs::PermissionsExt;
    let key = ca.join("ca.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&key).unwrap();
    let again = run(Command::new(bin("p2p-ca")).arg("init").arg(&ca));
    assert_eq!(again.status, 1);
    assert_eq!(std::fs::read(&key).unwrap(), before);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let pubfile = t.path().join("n.pub");
    let r = run(Command::new(bin("p2p-keygen")).args(["--node", "-o", s(&t.path().join("n.key"))]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let r = run(Command::new(bin("p2p-ca")).args([
        "sign",
        "--dir",
        s(&ca),
        "--name",
        "x",
        s(&pubfile),
    ]));
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("others may read"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn a_revoked_member_is_cut_off_and_stays_so_after_a_restart() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let (k1, c1) = certify(t.path(), &ca, "beta");
    let file = write(t.path(), "data.txt", b"one two\n");
    let state = t.path().join("alpha-state");
    let a = certified(t.path(), &ca, &k0, &c0, &["--state-dir", s(&state)]);
    let join = format!("127.0.0.1:{}", a.port);
    let b = certified(t.path(), &ca, &k1, &c1, &["--join", &join]);
    eventually(15, "alpha sees beta", || names(&a).len() == 2);
    let ask = |from: &Daemon, to: &str| run(from.cmd("p2p-wc").args(["--peer", to, s(&file)]));
    // Before: both ways work (and leave kept sessions behind).
    assert_eq!(ask(&b, "alpha").status, 0);
    assert_eq!(ask(&a, "beta").status, 0);

    let serial = format!(
        "{:016x}",
        Cert::decode(&std::fs::read_to_string(&c1).unwrap())
            .unwrap()
            .body()
            .serial
    );
    let r = run(Command::new(bin("p2p-ca")).args(["revoke", "--dir", s(&ca), &serial]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let list = write(t.path(), "revoked", r.stdout.as_bytes());
    // Only the daemon's own user may install it; we are that user.
    let r = run(a.cmd("p2p-revoke").arg(&list));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["revoked"], 1);

    // After: beta's session open from before is cut, and no new one is served.
    let r = ask(&b, "alpha");
    assert_eq!(r.status, 1, "{}", r.stdout);
    assert!(r.json()[0].get("words").is_none());
    let r = ask(&a, "beta");
    assert_eq!(r.status, 1, "{}", r.stdout);
    assert_eq!(r.json()[0]["error"]["code"], "unauthorized", "{}", r.stdout);
    assert!(a.log().contains("is revoked"), "{}", a.log());

    // A list of another CA is refused.
    let other = ca_dir_list(t.path());
    let r = run(a.cmd("p2p-revoke").arg(&other));
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("not signed by this cluster's CA"),
        "{}",
        r.stderr
    );

    // Kept in --state-dir: a restarted alpha still refuses beta.
    drop(a);
    let a = certified(t.path(), &ca, &k0, &c0, &["--state-dir", s(&state)]);
    assert!(a.log().contains("1 revoked certificate(s)"), "{}", a.log());
    let r = run(b
        .cmd("p2p-wc")
        .args(["--peer", &format!("127.0.0.1:{}", a.port), s(&file)]));
    assert_eq!(r.status, 1, "{}", r.stdout);
}

/// A revocation list from a CA of its own, revoking nothing of ours.
fn ca_dir_list(dir: &Path) -> PathBuf {
    let other = ca(dir, "other-ca");
    let r = run(Command::new(bin("p2p-ca")).args(["revoke", "--dir", s(&other), "1"]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    write(dir, "other-revoked", r.stdout.as_bytes())
}

#[test]
fn keygen_node_leaves_existing_files_and_writes_nothing_new() {
    let t = tempfile::tempdir().unwrap();
    let public = write(t.path(), "n.pub", b"someone's key\n");
    let secret = t.path().join("n.key");
    let r = run(Command::new(bin("p2p-keygen")).args(["--node", "-o", s(&secret)]));
    assert_eq!(r.status, 1);
    assert!(
        !secret.exists(),
        "a secret was written beside a refused public file"
    );
    assert_eq!(std::fs::read(&public).unwrap(), b"someone's key\n");
}

/// A foca gossip payload from `src` to `dst` carrying `updates`, as a
/// member's datagram holds it.
fn gossip_payload(src: &Node, dst: &Node, updates: &[foca::Member<Node>]) -> Vec<u8> {
    use foca::Codec;
    let header = foca::Header {
        src: src.clone(),
        src_incarnation: 0,
        dst: dst.clone(),
        message: foca::Message::<Node>::Gossip,
    };
    let mut data = vec![0u8];
    foca::PostcardCodec
        .encode_header(&header, &mut data)
        .unwrap();
    data.extend_from_slice(&u16::try_from(updates.len()).unwrap().to_be_bytes());
    for m in updates {
        foca::PostcardCodec.encode_member(m, &mut data).unwrap();
    }
    data
}

/// The member called `name` as `p2p-peers` shows it on `d`.
fn listed(d: &Daemon, name: &str) -> Option<Node> {
    peers(d).into_iter().find(|m| m["name"] == name).map(|m| {
        serde_json::from_value(serde_json::json!({
            "name": m["name"], "addr": m["addr"],
            "incarnation": m["incarnation"], "tags": m["tags"],
        }))
        .unwrap()
    })
}

/// The insider attacks of issue 11, by a member with a genuine certificate
/// and the cluster key, on real daemons: its signed datagrams may assert its
/// own identity, but neither gossip another member's (a forged incarnation,
/// address and tags) nor speak in its name, nor carry an identity out of
/// bounds. A datagram signed with a certificate the daemon has not seen is
/// answered by a signed question that carries the daemon's own.
#[test]
fn a_certified_insider_asserts_only_its_own_identity_in_gossip() {
    use p2p::crypto::gossip::{Endpoint, GossipCipher};
    use p2p::crypto::signed::{self, Certs, Signer};
    use std::net::UdpSocket;
    use std::sync::Arc;

    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let (k1, c1) = certify(t.path(), &ca, "beta");
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    let join = format!("127.0.0.1:{}", a.port);
    let b = certified(t.path(), &ca, &k1, &c1, &["--join", &join]);
    for d in [&a, &b] {
        eventually(15, "both members see each other alive", || {
            let p = peers(d);
            p.len() == 2 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    let alpha = listed(&a, "alpha").unwrap();
    let beta = listed(&b, "beta").unwrap();
    assert_eq!(listed(&a, "beta").as_ref(), Some(&beta));

    // Mallory: the cluster key and a current certificate of the CA.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mallory = Node {
        name: "mallory".into(),
        addr: udp.local_addr().unwrap(),
        incarnation: now() as u64 * 1000,
        tags: Default::default(),
    };
    let id = Arc::new(identity(&ca, &ca, "mallory", now() - 60, now() + 3600));
    let signer = Signer::new(Arc::clone(&id));
    let cipher = GossipCipher::new(&KeyRing::parse(TEST_KEY).unwrap());
    let mut stamps = Endpoint::new(mallory.addr, mallory.incarnation, 1);
    let mut send = |payload: &[u8], with_cert: bool| {
        let d = signed::seal(
            &cipher,
            &mut stamps,
            &alpha.addr,
            payload,
            &signer,
            with_cert,
        );
        udp.send_to(&d, alpha.addr).unwrap();
    };

    // Unknown to alpha: it asks who we are, showing its certificate.
    send(&gossip_payload(&mallory, &alpha, &[]), false);
    let mut buf = [0u8; 2048];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    let mut certs = Certs::new(id.ca.clone());
    let mut ours = Endpoint::new(mallory.addr, 1, 1);
    let asked = signed::open(&cipher, &mut ours, &buf[..n], &mut certs, now()).unwrap();
    assert_eq!(asked.signer.name, "alpha");
    assert_eq!(asked.payload[0], 2, "a who question");

    // With our certificate: a forged beta (incarnation, address, tags) in
    // gossip, an identity out of bounds, then a datagram in beta's name.
    let mut forged = Node {
        addr: "127.0.0.1:9".parse().unwrap(),
        incarnation: beta.incarnation + 1_000_000,
        ..beta.clone()
    };
    forged.tags.insert("role".into(), "evil".into());
    send(
        &gossip_payload(&mallory, &alpha, &[foca::Member::alive(forged.clone())]),
        true,
    );
    let mut oversized = mallory.clone();
    oversized.tags = (0..20).map(|i| (format!("t{i}"), "v".into())).collect();
    send(&gossip_payload(&oversized, &alpha, &[]), false);
    send(&gossip_payload(&forged, &alpha, &[]), false);
    eventually(5, "the impersonation is logged", || {
        a.log()
            .contains("the member certified as mallory sent in the name of beta")
    });
    assert!(a.log().contains("an identity out of bounds"), "{}", a.log());
    // Mallory's own identity, which its signature vouches for, is taken.
    eventually(5, "mallory is listed", || listed(&a, "mallory").is_some());
    std::thread::sleep(Duration::from_secs(1));
    for d in [&a, &b] {
        assert_eq!(listed(d, "beta").as_ref(), Some(&beta), "{}", d.log());
    }
    assert!(listed(&a, "mallory").unwrap().tags.is_empty());
}

/// A certificate with 32 long groups is too large to ride with gossip: the
/// members that never had a TCP session with its holder learn it when the
/// holder, asked who it is, meets them over TCP instead.
#[test]
fn a_certificate_too_large_for_a_datagram_is_shown_over_tcp() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (k0, c0) = certify(t.path(), &ca, "alpha");
    let (k2, c2) = certify(t.path(), &ca, "gamma");
    let key = NodeSecret::from_seed(&[11; 64]);
    let groups: Vec<String> = (0..32)
        .map(|i| format!("{i:02}{}", "g".repeat(60)))
        .collect();
    let cert = ca_secret(&ca)
        .issue(CertBody {
            serial: 4242,
            not_before: now() - 60,
            not_after: now() + 3600,
            key: key.public(),
            name: "beta".into(),
            groups,
        })
        .unwrap();
    assert!(cert.to_bytes().len() > 2000);
    let c1 = write(t.path(), "beta.crt", cert.encode().as_bytes());
    let k1 = write(t.path(), "beta.key", key.encode().as_bytes());
    std::fs::set_permissions(&k1, std::fs::Permissions::from_mode(0o600)).unwrap();
    let a = certified(t.path(), &ca, &k0, &c0, &[]);
    let join = format!("127.0.0.1:{}", a.port);
    let b = certified(t.path(), &ca, &k1, &c1, &["--join", &join]);
    eventually(15, "alpha and beta see each other", || {
        peers(&a).len() == 2 && peers(&b).len() == 2
    });
    // Gamma meets beta only through gossip.
    let c = certified(t.path(), &ca, &k2, &c2, &["--join", &join]);
    for d in [&a, &b, &c] {
        eventually(20, "all three see each other alive", || {
            let p = peers(d);
            p.len() == 3 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    assert!(b.log().contains("too large to ride along"), "{}", b.log());
}

fn state_of(d: &Daemon, name: &str) -> Option<String> {
    peers(d)
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["state"].as_str().unwrap().to_string())
}

/// The serial of a certificate file, in hex as `p2p-ca sign` prints it.
fn serial_of(crt: &Path) -> String {
    format!(
        "{:016x}",
        Cert::decode(&std::fs::read_to_string(crt).unwrap())
            .unwrap()
            .body()
            .serial
    )
}

#[test]
fn a_revocation_installed_on_one_member_cuts_the_node_off_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let file = write(t.path(), "data.txt", b"one two\n");
    let (ka, ca_) = certify(t.path(), &ca, "alpha");
    let (kb, cb) = certify(t.path(), &ca, "beta");
    let (kg, cg) = certify(t.path(), &ca, "gamma");
    let (km, cm) = certify(t.path(), &ca, "mallory");
    let a = certified(t.path(), &ca, &ka, &ca_, &[]);
    let join = format!("127.0.0.1:{}", a.port);
    let b = certified(t.path(), &ca, &kb, &cb, &["--join", &join]);
    let gamma_state = t.path().join("gamma-state");
    let g = certified(
        t.path(),
        &ca,
        &kg,
        &cg,
        &["--join", &join, "--state-dir", s(&gamma_state)],
    );
    // Mallory joins through alpha: alpha has seen its certificate.
    let m = certified(t.path(), &ca, &km, &cm, &["--join", &join]);
    for d in [&a, &b, &g, &m] {
        eventually(20, "four members", || names(d).len() == 4);
    }
    let ask = |from: &Daemon, to: &str| run(from.cmd("p2p-wc").args(["--peer", to, s(&file)]));
    // Before: mallory queries the others and they query it.
    for to in ["alpha", "beta", "gamma"] {
        let r = ask(&m, to);
        assert_eq!(r.status, 0, "mallory to {to}: {}", r.stdout);
        assert_eq!(r.json()[0]["words"], 2);
    }
    assert_eq!(ask(&b, "mallory").status, 0);
    // Gamma is down while mallory is revoked.
    let gamma_port = g.port;
    drop(g);

    let r = run(Command::new(bin("p2p-ca")).args(["revoke", "--dir", s(&ca), &serial_of(&cm)]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let list = write(t.path(), "revoked", r.stdout.as_bytes());
    let r = run(a.cmd("p2p-revoke").arg(&list));
    assert_eq!(r.status, 0, "{}", r.stderr);

    // Installed on alpha only, it reaches beta by gossip.
    eventually(10, "beta lists mallory as revoked", || {
        state_of(&b, "mallory").as_deref() == Some("revoked")
    });
    // Alpha's list is refreshed by its own gossip thread, which a loaded
    // machine may run after beta's.
    eventually(10, "alpha lists mallory as revoked", || {
        state_of(&a, "mallory").as_deref() == Some("revoked")
    });
    let text = run(b.cmd("p2p-peers").args(["--format", "text"]));
    let line = text.stdout.lines().find(|l| l.contains("mallory")).unwrap();
    assert!(line.contains("revoked"), "{}", text.stdout);
    let r = run(b.cmd("p2p-peers").args(["--state", "revoked"]));
    assert_eq!(r.json().len(), 1, "{}", r.stdout);

    // Mallory keeps trying: its queries fail everywhere...
    for to in ["alpha", "beta"] {
        let r = ask(&m, to);
        assert_eq!(r.status, 1, "mallory to {to}: {}", r.stdout);
        assert!(r.json()[0].get("words").is_none(), "{}", r.stdout);
    }
    // ...no member asks it any more, and --all says why...
    let r = run(b.cmd("p2p-wc").args(["--all", s(&file)]));
    let lines = r.json();
    let about = lines.iter().find(|l| l["peer"] == "mallory").unwrap();
    assert!(
        about["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{}",
        r.stdout
    );
    assert_eq!(
        lines.iter().filter(|l| l["words"] == 2).count(),
        2,
        "{}",
        r.stdout
    );
    // ...and its gossip is dropped.
    eventually(10, "beta drops mallory's datagrams", || {
        num(&status(&b)["datagrams_rejected"], "revoked") > 0
    });
    assert_eq!(num(&status(&b)["members"], "revoked"), 1);

    // Gamma, down meanwhile, learns the list when it comes back (from
    // its join), and keeps it.
    let g = certified_on(
        gamma_port,
        t.path(),
        &ca,
        &kg,
        &cg,
        &["--join", &join, "--state-dir", s(&gamma_state)],
    );
    eventually(10, "gamma lists mallory as revoked", || {
        state_of(&g, "mallory").as_deref() == Some("revoked")
    });
    assert!(gamma_state.join("revoked").exists());
    let r = ask(&m, "gamma");
    assert_eq!(r.status, 1, "mallory to gamma: {}", r.stdout);

    // Mallory restarted is refused: its join fails and no one takes it back.
    let port = m.port;
    drop(m);
    let m = certified_on(port, t.path(), &ca, &km, &cm, &["--join", &join]);
    eventually(10, "mallory's join is refused twice", || {
        m.log().matches("retrying in").count() >= 2
    });
    for d in [&a, &b, &g] {
        assert_eq!(state_of(d, "mallory").as_deref(), Some("revoked"));
    }
    assert_eq!(names(&m).len(), 1, "mallory learned no member");
}

#[test]
fn an_older_or_foreign_revocation_list_is_refused_and_the_newer_one_stays() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (ka, ca_) = certify(t.path(), &ca, "alpha");
    let a = certified(t.path(), &ca, &ka, &ca_, &[]);
    // Two lists of the CA, a second apart, as p2p-ca revoke makes them.
    let secret = ca_secret(&ca);
    let list = |issued: i64, serials: Vec<u64>| {
        Revocations::issue(&secret, issued, serials)
            .unwrap()
            .encode()
    };
    let old = write(t.path(), "old", list(now() - 1, vec![5]).as_bytes());
    let new = write(t.path(), "new", list(now(), vec![5, 6]).as_bytes());
    assert_eq!(run(a.cmd("p2p-revoke").arg(&new)).json()[0]["revoked"], 2);
    let r = run(a.cmd("p2p-revoke").arg(&old));
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("before the one in force"), "{}", r.stderr);
    let r = run(a.cmd("p2p-revoke").arg(ca_dir_list(t.path())));
    assert_eq!(r.status, 1);
    // The newer list is still the one in force.
    assert_eq!(run(a.cmd("p2p-revoke").arg(&new)).json()[0]["revoked"], 2);
}

#[test]
fn a_list_made_from_another_within_its_second_still_replaces_it() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let (ka, ca_) = certify(t.path(), &ca, "alpha");
    let a = certified(t.path(), &ca, &ka, &ca_, &[]);
    let mut prior: Option<PathBuf> = None;
    let mut issued = Vec::new();
    // Three lists in a row, each from the one before, as fast as p2p-ca runs.
    for (i, serial) in ["5", "6", "7"].iter().enumerate() {
        let mut args = vec!["revoke", "--dir", s(&ca)];
        if let Some(p) = &prior {
            args.extend(["--list", s(p)]);
        }
        args.push(serial);
        let r = run(Command::new(bin("p2p-ca")).args(&args));
        assert_eq!(r.status, 0, "{}", r.stderr);
        let file = write(t.path(), &format!("list{i}"), r.stdout.as_bytes());
        issued.push(Revocations::decode(&r.stdout).unwrap().issued);
        let r = run(a.cmd("p2p-revoke").arg(&file));
        assert_eq!(r.status, 0, "list {i}: {}", r.stderr);
        assert_eq!(r.json()[0]["revoked"], i + 1);
        prior = Some(file);
    }
    assert!(issued.windows(2).all(|w| w[0] < w[1]), "{issued:?}");
}

/// Every member answers `--all` from `d`: three lines, each with the file's words.
fn all_answer(d: &Daemon, file: &Path) -> bool {
    let r = run(d.cmd("p2p-wc").args(["--all", s(file)]));
    let lines = r.json();
    r.status == 0 && lines.len() == 3 && lines.iter().all(|v| v["words"] == 3)
}

/// The documented move of a running shared-key cluster to certificates,
/// one member at a time, so that the cluster answers throughout: first
/// every member gets its certificate with --accept-uncertified, then every
/// member drops that flag. After each restart every member answers `--all`
/// from every member; at the end a member holding only the key is refused.
#[test]
fn a_shared_key_cluster_moves_to_certificates_one_member_at_a_time() {
    let t = tempfile::tempdir().unwrap();
    let ca = ca(t.path(), "ca");
    let file = write(t.path(), "data.txt", b"one two\nthree\n");
    let names = ["alpha", "beta", "gamma"];
    let plain = |name: &str, port: u16, join: Option<String>| {
        let mut args: Vec<String> = FAST.iter().map(|a| a.to_string()).collect();
        args.extend(["--name", name, "--export", s(t.path())].map(String::from));
        if let Some(j) = join {
            args.extend(["--join".to_string(), j]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::start_on(port, &args, &[("P2PD_SECRET", TEST_KEY)])
    };
    let mut cluster = vec![plain(names[0], 0, None)];
    let first = format!("127.0.0.1:{}", cluster[0].port);
    for n in &names[1..] {
        cluster.push(plain(n, 0, Some(first.clone())));
    }
    let files: Vec<(PathBuf, PathBuf)> = names.iter().map(|n| certify(t.path(), &ca, n)).collect();
    for d in &cluster {
        eventually(20, "every member answers --all", || all_answer(d, &file));
    }
    for step in ["--accept-uncertified", ""] {
        for i in 0..cluster.len() {
            let port = cluster[i].port;
            let join = format!("127.0.0.1:{}", cluster[(i + 1) % cluster.len()].port);
            assert!(
                cluster[i]
                    .signal_and_wait(libc::SIGTERM, Duration::from_secs(5))
                    .is_some(),
                "{} stops",
                names[i]
            );
            let mut extra = vec!["--join", join.as_str()];
            if !step.is_empty() {
                extra.push(step);
            }
            let (key, crt) = &files[i];
            cluster[i] = certified_on(port, t.path(), &ca, key, crt, &extra);
            for d in &cluster {
                eventually(30, &format!("after {}{step}: all answer", names[i]), || {
                    all_answer(d, &file)
                });
            }
        }
    }
    // Certificates only now: the key alone no longer gets in.
    let stranger = plain("stranger", 0, None);
    let r = run(stranger
        .cmd("p2p-join")
        .arg(format!("127.0.0.1:{}", cluster[0].port)));
    assert_ne!(r.status, 0, "{}", r.stdout);
    let mut n = self::names(&cluster[0]);
    n.sort();
    assert_eq!(n, names);
}

/// A member's config file: its name, its export and, when `cert` is given,
/// its CA, certificate and node key, with `accept-uncertified` if asked.
fn member_config(
    dir: &Path,
    name: &str,
    cert: Option<(&Path, &Path, &Path)>,
    accept_uncertified: bool,
) -> PathBuf {
    let mut text = format!("name = \"{name}\"\nexport = [\"{}\"]\n", s(dir));
    if let Some((ca_pub, key, crt)) = cert {
        text.push_str(&format!(
            "ca = \"{}\"\ncert = \"{}\"\nnode-key = \"{}\"\n",
            s(ca_pub),
            s(crt),
            s(key)
        ));
    }
    if accept_uncertified {
        text.push_str("accept-uncertified = true\n");
    }
    write(dir, &format!("{name}.toml"), text.as_bytes())
}

/// Sends SIGHUP to `d` and waits until its log has one line more that
/// contains `what`.
fn reload(d: &Daemon, what: &str) {
    let before = d.log().matches(what).count();
    unsafe {
        libc::kill(d.pid(), libc::SIGHUP);
    }
    eventually(10, &format!("the reload logs {what:?}"), || {
        d.log().matches(what).count() > before
    });
}

/// A second certificate for `name`'s node key (`dir/NAME.pub`), in group
/// web, issued a second after the first (not-before has that resolution),
/// kept as `dir/NAME-FILE`.
fn sign_again(dir: &Path, ca: &Path, name: &str, file: &str) -> PathBuf {
    std::thread::sleep(Duration::from_millis(1100));
    let r = run(Command::new(bin("p2p-ca"))
        .args(["sign", "--dir", s(ca), "--name", name, "--group", "web"])
        .arg(dir.join(format!("{name}.pub"))));
    assert_eq!(r.status, 0, "{}", r.stderr);
    write(dir, &format!("{name}-{file}"), r.stdout.as_bytes())
}

/// A daemon started from its config file, joining through `join`.
fn from_config(config: &Path, join: &str) -> Daemon {
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--config", s(config), "--join", join]);
    Daemon::start_on(0, &args, &[("P2PD_SECRET", TEST_KEY)])
}

/// The same move to certificates without a single restart: each member's
/// config file gets its certificate with accept-uncertified, then loses
/// the flag, and a SIGHUP applies each change. After every reload every
/// member answers `--all` from every member; the daemons are the ones
/// started at first; at the end a member holding only the key is refused.
#[test]
fn a_shared_key_cluster_moves_to_certificates_by_sighup() {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let ca = ca(&top, "ca");
    let ca_pub = ca.join("ca.pub");
    let file = write(&top, "data.txt", b"one two\nthree\n");
    let names = ["alpha", "beta", "gamma"];
    let start = |name: &str, join: Option<String>| {
        let config = member_config(&top, name, None, false);
        let mut args: Vec<String> = FAST.iter().map(|a| a.to_string()).collect();
        args.extend(["--config".to_string(), s(&config).to_string()]);
        if let Some(j) = join {
            args.extend(["--join".to_string(), j]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::start_on(0, &args, &[("P2PD_SECRET", TEST_KEY)])
    };
    let mut cluster = vec![start(names[0], None)];
    let first = format!("127.0.0.1:{}", cluster[0].port);
    for n in &names[1..] {
        cluster.push(start(n, Some(first.clone())));
    }
    let pids: Vec<i32> = cluster.iter().map(Daemon::pid).collect();
    let files: Vec<(PathBuf, PathBuf)> = names.iter().map(|n| certify(&top, &ca, n)).collect();
    for d in &cluster {
        eventually(20, "every member answers --all", || all_answer(d, &file));
    }
    for (accept, logged) in [
        (true, "while moving to certificates"),
        (
            false,
            "only members with a certificate of this CA are accepted",
        ),
    ] {
        for i in 0..cluster.len() {
            let (key, crt) = &files[i];
            member_config(&top, names[i], Some((&ca_pub, key, crt)), accept);
            reload(&cluster[i], logged);
            for d in &cluster {
                eventually(
                    30,
                    &format!("after {} (accept {accept}): all answer", names[i]),
                    || all_answer(d, &file),
                );
            }
        }
    }
    for (d, pid) in cluster.iter().zip(&pids) {
        assert_eq!(d.pid(), *pid);
        assert!(!d.log().contains("shutting down"), "{}", d.log());
    }
    // Certificates only now: the key alone no longer gets in.
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--name", "stranger", "--export", s(&top)]);
    let stranger = Daemon::start_on(0, &args, &[("P2PD_SECRET", TEST_KEY)]);
    let r = run(stranger
        .cmd("p2p-join")
        .arg(format!("127.0.0.1:{}", cluster[0].port)));
    assert_ne!(r.status, 0, "{}", r.stdout);
    let mut n = self::names(&cluster[0]);
    n.sort();
    assert_eq!(n, names);
}

/// A certificate renewed by SIGHUP: the member signs and shows the new one
/// at once, so revoking the old serial does not cut it off. A certificate
/// for another name, or of another CA, is refused and the one in force
/// stays.
#[test]
fn a_certificate_is_renewed_by_sighup() {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let ca = ca(&top, "ca");
    let ca_pub = ca.join("ca.pub");
    let file = write(&top, "data.txt", b"one two\nthree\n");
    let (k0, c0) = certify(&top, &ca, "alpha");
    let (k1, c1) = certify(&top, &ca, "beta");
    let a = certified(&top, &ca, &k0, &c0, &[]);
    let config = member_config(&top, "beta", Some((&ca_pub, &k1, &c1)), false);
    let b = from_config(&config, &format!("127.0.0.1:{}", a.port));
    let ask = |from: &Daemon, to: &str| run(from.cmd("p2p-wc").args(["--peer", to, s(&file)]));
    eventually(20, "alpha reads beta's files", || {
        ask(&a, "beta").status == 0
    });
    let old = serial_of(&c1);

    // A certificate for another name: refused, beta keeps its own.
    member_config(&top, "beta", Some((&ca_pub, &k0, &c0)), false);
    reload(&b, "SIGHUP: keeping the certificate in force");
    assert!(
        b.log().contains("the certificate is for alpha"),
        "{}",
        b.log()
    );
    // One of another CA: refused as well.
    let other = self::ca(&top, "other");
    let (k2, c2) = common::node_certificate(&other, &other, "beta", &[]);
    member_config(&top, "beta", Some((&other.join("ca.pub"), &k2, &c2)), false);
    reload(&b, "a new CA needs a restart");
    assert_eq!(ask(&a, "beta").status, 0);

    // The renewal: the same node key, a new certificate from the CA.
    let renewed = sign_again(&top, &ca, "beta", "renewed.crt");
    assert_ne!(serial_of(&renewed), old);
    member_config(&top, "beta", Some((&ca_pub, &k1, &renewed)), false);
    reload(
        &b,
        &format!("SIGHUP: certified as beta (serial {}", serial_of(&renewed)),
    );

    let r = run(Command::new(bin("p2p-ca")).args(["revoke", "--dir", s(&ca), &old]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let list = write(&top, "revoked", r.stdout.as_bytes());
    let r = run(a.cmd("p2p-revoke").arg(&list));
    assert_eq!(r.status, 0, "{}", r.stderr);
    // Sessions opened under the old certificate are cut; new ones show the
    // new one, and beta goes on answering, and asking.
    eventually(20, "alpha reads beta's files again", || {
        ask(&a, "beta").status == 0
    });
    eventually(20, "beta reads alpha's files", || {
        ask(&b, "alpha").status == 0
    });
    eventually(20, "alpha sees beta alive", || {
        peers(&a)
            .iter()
            .any(|m| m["name"] == "beta" && m["state"] == "alive")
    });
    // The list is in force: whether alpha had seen the renewed certificate
    // before it came ("revoking no member we know of") or after (beta cut
    // off, then let back), beta answers.
    assert!(a.log().contains("is in force: 1 serial(s)"), "{}", a.log());
}

/// The attack on renewal: beta holds two certificates of its one key, an
/// older and a newer. Once the newer is revoked, going back to the older
/// (never revoked) by SIGHUP does not let beta back in: only a
/// certificate issued after the revoked one does.
#[test]
fn an_older_certificate_of_a_revoked_name_does_not_let_it_back() {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let ca = ca(&top, "ca");
    let ca_pub = ca.join("ca.pub");
    let file = write(&top, "data.txt", b"one two three\n");
    let (k0, c0) = certify(&top, &ca, "alpha");
    let (k1, older) = certify(&top, &ca, "beta");
    // The same key signed again a second later: a later not-before.
    let newer = sign_again(&top, &ca, "beta", "newer.crt");
    let a = certified(&top, &ca, &k0, &c0, &[]);
    let config = member_config(&top, "beta", Some((&ca_pub, &k1, &newer)), false);
    let b = from_config(&config, &format!("127.0.0.1:{}", a.port));
    let ask = |from: &Daemon, to: &str| run(from.cmd("p2p-wc").args(["--peer", to, s(&file)]));
    eventually(20, "alpha reads beta's files", || {
        ask(&a, "beta").status == 0
    });

    let r = run(Command::new(bin("p2p-ca")).args(["revoke", "--dir", s(&ca), &serial_of(&newer)]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let list = write(&top, "revoked", r.stdout.as_bytes());
    assert_eq!(run(a.cmd("p2p-revoke").arg(&list)).status, 0);
    eventually(10, "alpha lists beta as revoked", || {
        state_of(&a, "beta").as_deref() == Some("revoked")
    });

    // Beta goes back to its older certificate, which was never revoked.
    member_config(&top, "beta", Some((&ca_pub, &k1, &older)), false);
    reload(
        &b,
        &format!("SIGHUP: certified as beta (serial {}", serial_of(&older)),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(state_of(&a, "beta").as_deref(), Some("revoked"));
    let r = ask(&b, "alpha");
    assert_eq!(r.status, 1, "{}", r.stdout);
    assert!(r.json()[0].get("words").is_none(), "{}", r.stdout);
    assert_ne!(ask(&a, "beta").status, 0);
    assert!(!a.log().contains("no longer cut off"), "{}", a.log());
}
