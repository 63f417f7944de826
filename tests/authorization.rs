//! Authorization by group: an export may name groups (`--export
//! DIR:groups=G1,G2`), and then only members whose certificate carries one
//! of them read below DIR. Certified daemons on loopback ask each other, as
//! a member outside the groups, as one inside, and about an export open to all.

mod common;

use common::{Daemon, FAST, TEST_KEY, bin, eventually, peers, run, write};
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CA made by `p2p-ca init` in `dir/ca`.
fn ca(dir: &Path) -> PathBuf {
    common::new_ca(dir, "ca")
}

/// A node key and a certificate for `name` in `groups`: (node.key, node.crt).
fn certify(dir: &Path, ca: &Path, name: &str, groups: &[&str]) -> (PathBuf, PathBuf) {
    let sign: Vec<&str> = groups.iter().flat_map(|g| ["--group", g]).collect();
    common::node_certificate(dir, ca, name, &sign)
}

/// A certified daemon `name` in `groups`, with `extra` flags (its exports).
fn member(dir: &Path, ca: &Path, name: &str, groups: &[&str], extra: &[&str]) -> Daemon {
    let (key, crt) = certify(dir, ca, name, groups);
    let ca_pub = ca.join("ca.pub");
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--ca", s(&ca_pub), "--cert", s(&crt), "--node-key", s(&key)]);
    args.extend(extra);
    Daemon::start_on(0, &args, &[("P2PD_SECRET", TEST_KEY)])
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The one answer of `cmd ARGS` asked of member `of` from daemon `d`.
fn ask(d: &Daemon, cmd: &str, of: &str, args: &[&str]) -> Value {
    let r = run(d.cmd(cmd).args(["--peer", of]).args(args));
    let lines = r.json();
    assert_eq!(lines.len(), 1, "{cmd} {args:?}: {}{}", r.stdout, r.stderr);
    lines[0].clone()
}

struct Cluster {
    _t: tempfile::TempDir,
    share: PathBuf,
    secret: PathBuf,
    /// Exports `share` to all and `share/secret` to ops and audit.
    alpha: Daemon,
    /// In group ops.
    ops: Daemon,
    /// In group web only.
    web: Daemon,
}

fn cluster() -> Cluster {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let ca = ca(&top);
    let share = top.join("share");
    let secret = share.join("secret");
    std::fs::create_dir_all(secret.join("deeper")).unwrap();
    write(&share, "open.txt", b"for everyone\n");
    write(&secret, "plans.txt", b"only for ops\nand audit\n");
    symlink("plans.txt", secret.join("link")).unwrap();
    // A way into the secret directory from the open one.
    symlink("secret/plans.txt", share.join("shortcut")).unwrap();
    let grouped = format!("{}:groups=ops,audit", s(&secret));
    let alpha = member(
        &top,
        &ca,
        "alpha",
        &["web"],
        &["--export", s(&share), "--export", &grouped],
    );
    let join = format!("127.0.0.1:{}", alpha.port);
    let ops = member(&top, &ca, "beta", &["ops"], &["--join", &join]);
    let web = member(&top, &ca, "gamma", &["web"], &["--join", &join]);
    for d in [&alpha, &ops, &web] {
        eventually(20, "the three members see each other alive", || {
            let p = peers(d);
            p.len() == 3 && p.iter().all(|m| m["state"] == "alive")
        });
    }
    Cluster {
        _t: t,
        share,
        secret,
        alpha,
        ops,
        web,
    }
}

#[test]
fn a_member_outside_the_groups_is_refused_and_one_inside_reads() {
    let c = cluster();
    let plans = c.secret.join("plans.txt");
    let open = c.share.join("open.txt");
    let link = c.secret.join("link");
    assert!(
        c.alpha.log().contains(":groups=") || c.alpha.log().contains("(groups audit,ops)"),
        "{}",
        c.alpha.log()
    );

    // Outside the groups: every query kind below the grouped export.
    let refused = [
        ("p2p-wc", vec![s(&plans)]),
        ("p2p-sha256", vec![s(&plans)]),
        ("p2p-stat", vec![s(&plans)]),
        ("p2p-stat", vec![s(&c.secret)]),
        // A symlink's own stat.
        ("p2p-stat", vec![s(&link)]),
        ("p2p-count", vec![s(&c.secret)]),
        ("p2p-count", vec!["-r", s(&c.secret)]),
        // A recursive count of the open export would enter the grouped one.
        ("p2p-count", vec!["-r", s(&c.share)]),
    ];
    for (cmd, args) in &refused {
        let v = ask(&c.web, cmd, "alpha", args);
        assert_eq!(code(&v), "unauthorized", "{cmd} {args:?}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("group audit or ops"), "{m}");
    }
    let v = ask(&c.web, "p2p-wc", "alpha", &[s(&plans)]);
    assert_eq!(
        v["error"]["message"],
        format!(
            "below {} only members of group audit or ops may read; your certificate carries none of them",
            s(&c.secret)
        )
    );
    // Nor through a symlink from the open export.
    let v = ask(&c.web, "p2p-wc", "alpha", &[s(&c.share.join("shortcut"))]);
    assert!(v.get("words").is_none(), "{v}");
    assert_ne!(code(&v), "", "{v}");
    let sneaky = format!("{}/deeper/../plans.txt", s(&c.secret));
    let v = ask(&c.web, "p2p-wc", "alpha", &[&sneaky]);
    assert_eq!(code(&v), "unauthorized", "{v}");
    // ... nor by spreading the work.
    let r = run(c
        .web
        .cmd("p2p-wc")
        .args(["--spread", "--peer", "alpha", s(&plans)]));
    let lines = r.json();
    assert!(
        lines.iter().all(|v| v.get("words").is_none()),
        "{}",
        r.stdout
    );

    // In one of the groups: the same queries read.
    let v = ask(&c.ops, "p2p-wc", "alpha", &[s(&plans)]);
    assert_eq!(v["words"], 5, "{v}");
    let v = ask(&c.ops, "p2p-sha256", "alpha", &[s(&plans)]);
    assert!(v["sha256"].is_string(), "{v}");
    let v = ask(&c.ops, "p2p-stat", "alpha", &[s(&c.secret.join("link"))]);
    assert_eq!(code(&v), "", "{v}");
    let v = ask(&c.ops, "p2p-count", "alpha", &["-r", s(&c.share)]);
    assert_eq!(v["files"], 2, "{v}");
    let v = ask(&c.ops, "p2p-wc", "alpha", &[s(&c.share.join("shortcut"))]);
    assert_eq!(v["words"], 5, "{v}");

    // The export without groups: every member reads it.
    for d in [&c.web, &c.ops] {
        let v = ask(d, "p2p-wc", "alpha", &[s(&open)]);
        assert_eq!(v["words"], 2, "{v}");
        let v = ask(d, "p2p-count", "alpha", &[s(&c.share)]);
        assert_eq!(v["dirs"], 1, "{v}");
    }
}

#[test]
fn p2p_peers_shows_groups_and_certificate_expiry() {
    let c = cluster();
    eventually(15, "alpha lists every member's certificate", || {
        peers(&c.alpha)
            .iter()
            .all(|m| m["cert_expires"].is_string())
    });
    let listed = peers(&c.alpha);
    let of = |name: &str| {
        listed
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed:?}"))
            .clone()
    };
    assert_eq!(of("alpha")["groups"], serde_json::json!(["web"]));
    assert_eq!(of("beta")["groups"], serde_json::json!(["ops"]));
    assert_eq!(of("gamma")["groups"], serde_json::json!(["web"]));
    // p2p-ca sign's default validity is a year; RFC 3339 UTC, to the second.
    let expires = of("beta")["cert_expires"].as_str().unwrap().to_string();
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    let year: i32 = expires[..4].parse().unwrap();
    let now: i32 = jiff::Timestamp::now().to_string()[..4].parse().unwrap();
    assert!(year == now + 1 || year == now, "{expires}");
    let r = run(c.alpha.cmd("p2p-peers").args(["--format", "text"]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let header = r.stdout.lines().next().unwrap();
    assert!(
        header.contains("GROUPS") && header.contains("CERT_EXPIRES"),
        "{header}"
    );
    let beta = r.stdout.lines().find(|l| l.starts_with("beta")).unwrap();
    assert!(beta.contains(" ops ") && beta.contains(&expires), "{beta}");

    // In shared-key mode there are no such fields or columns.
    let plain = Daemon::start(&["--name", "plain"]);
    let m = &peers(&plain)[0];
    assert!(
        m.get("groups").is_none() && m.get("cert_expires").is_none(),
        "{m}"
    );
    let r = run(plain.cmd("p2p-peers").args(["--format", "text"]));
    assert!(!r.stdout.contains("GROUPS"), "{}", r.stdout);
}

#[test]
fn groups_without_a_ca_are_refused_at_start() {
    let t = tempfile::tempdir().unwrap();
    let grouped = format!("{}:groups=ops", s(t.path()));
    let r = run(Command::new(bin("p2pd"))
        .arg("0")
        .args(["--name", "plain", "--export", &grouped, "--socket"])
        .arg(t.path().join("s.sock"))
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", t.path())
        .stdin(Stdio::null()));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("groups need certificates"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--ca"), "{}", r.stderr);
    // A bad group name is refused as the flag is read.
    let bad = format!("{}:groups=o ps", s(t.path()));
    let r = run(Command::new(bin("p2pd"))
        .arg("0")
        .args(["--export", &bad])
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", t.path())
        .stdin(Stdio::null()));
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("the group \"o ps\""), "{}", r.stderr);
}

#[test]
fn a_reload_bringing_groups_without_a_ca_keeps_the_exports() {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let data = top.join("data");
    std::fs::create_dir(&data).unwrap();
    let file = write(&data, "f.txt", b"one two three\n");
    let config = write(
        &top,
        "p2pd.toml",
        format!("export = [\"{}\"]\n", s(&data)).as_bytes(),
    );
    let d = Daemon::start(&["--name", "plain", "--config", s(&config)]);
    let words = |d: &Daemon| ask(d, "p2p-wc", "plain", &[s(&file)])["words"].clone();
    assert_eq!(words(&d), 3);
    write(
        &top,
        "p2pd.toml",
        format!("export = [\"{}:groups=ops\"]\n", s(&data)).as_bytes(),
    );
    unsafe {
        libc::kill(d.pid(), libc::SIGHUP);
    }
    eventually(10, "the reload is refused", || {
        d.log().contains("SIGHUP: keeping the exports in force")
    });
    assert!(d.log().contains("groups need certificates"), "{}", d.log());
    assert_eq!(words(&d), 3);
}

#[test]
fn p2pd_warns_when_its_certificate_expires_within_two_weeks() {
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let ca = ca(&top);
    let (key, crt) = common::node_certificate(&top, &ca, "soon", &["--valid", "10d"]);
    let ca_pub = ca.join("ca.pub");
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--ca", s(&ca_pub), "--cert", s(&crt), "--node-key", s(&key)]);
    let d = Daemon::start_on(0, &args, &[("P2PD_SECRET", TEST_KEY)]);
    eventually(10, "the warning is logged", || {
        d.log().contains("our certificate expires at")
    });
    let expires = peers(&d)[0]["cert_expires"].as_str().unwrap().to_string();
    assert!(d.log().contains(&expires), "{}", d.log());
    // A certificate of a year gives no warning.
    let long = member(&top, &ca, "later", &[], &[]);
    eventually(10, "the daemon serves", || long.log().contains("serving"));
    assert!(
        !long.log().contains("our certificate expire"),
        "{}",
        long.log()
    );
}
