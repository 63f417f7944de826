//! p2p-status: the daemon's counters as one JSON object, consistent with
//! the queries it served, and in the Prometheus text format.

mod common;

use common::{Daemon, eventually, num, run, status, write};

/// Every field p2p-status(1) documents.
const FIELDS: &[&str] = &[
    "uptime_seconds",
    "queries_local",
    "queries_remote",
    "queries_cancelled",
    "items_local",
    "items_remote",
    "bytes_read",
    "cache_hits",
    "cache_misses",
    "workers",
    "workers_busy",
    "jobs_queued",
    "sessions_in",
    "sessions_kept",
    "watchers",
];

#[test]
fn counters_follow_the_queries_served() {
    let d = Daemon::start(&["--workers", "2"]);
    let s = status(&d);
    for f in FIELDS {
        num(&s, f);
    }
    assert!(s["name"].is_string() && s["version"].is_string(), "{s}");
    assert_eq!(num(&s, "workers"), 2);
    assert_eq!(num(&s, "workers_busy"), 0);
    assert_eq!(num(&s, "items_local"), 0);
    assert_eq!(num(&s, "bytes_read"), 0);
    assert_eq!(s["members"]["alive"], 1, "itself: {s}");
    for state in ["suspect", "down", "left"] {
        assert_eq!(s["members"][state], 0, "{s}");
    }
    for reason in [
        "authentication",
        "replay",
        "misaddressed",
        "malformed",
        "identity",
    ] {
        assert_eq!(s["datagrams_rejected"][reason], 0, "{s}");
    }
    for reason in ["authentication", "handshake"] {
        num(&s["connections_rejected"], reason);
    }

    // Three files of known sizes, and one missing, which the command
    // cannot open, so the daemon never sees it: three items, all read.
    let dir = d.dir.path();
    let a = write(dir, "a.txt", b"one two\n");
    let b = write(dir, "b.txt", &vec![b'x'; 100_000]);
    let c = write(dir, "c.txt", b"three\nfour\n");
    let out = run(d
        .cmd("p2p-wc")
        .arg(&a)
        .arg(&b)
        .arg(&c)
        .arg(dir.join("missing")));
    assert_eq!(out.status, 1, "{}", out.stderr);
    let s = status(&d);
    assert_eq!(num(&s, "queries_local"), 1, "{s}");
    assert_eq!(num(&s, "items_local"), 3, "{s}");
    assert_eq!(num(&s, "bytes_read"), 8 + 100_000 + 11, "{s}");
    assert_eq!(num(&s, "cache_misses"), 3, "{s}");
    assert_eq!(num(&s, "cache_hits"), 0, "{s}");
    assert_eq!(num(&s, "queries_cancelled"), 0, "{s}");
    assert_eq!(num(&s, "items_remote") + num(&s, "queries_remote"), 0);

    // Asked again, a file is answered from the cache (once its change is
    // older than the read, which the cache waits for), and nothing is read.
    eventually(20, "a repeated query answered from the cache", || {
        let before = num(&status(&d), "bytes_read");
        let out = run(d.cmd("p2p-wc").arg(&b));
        assert_eq!(out.status, 0, "{}", out.stderr);
        let s = status(&d);
        num(&s, "cache_hits") >= 1 && num(&s, "bytes_read") == before
    });
    let s = status(&d);
    assert!(num(&s, "queries_local") >= 2);
    assert_eq!(
        num(&s, "items_local"),
        num(&s, "queries_local") + 2,
        "one item per query after the first: {s}"
    );
    assert_eq!(num(&s, "workers_busy"), 0, "{s}");
}

#[test]
fn a_member_counts_what_it_serves_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "shared.txt", b"hello\n");
    let export = dir.path().to_str().unwrap().to_string();
    let member = Daemon::start(&["--name", "member", "--export", &export]);
    let asker = Daemon::start(&[
        "--name",
        "asker",
        "--join",
        &format!("127.0.0.1:{}", member.port),
    ]);
    eventually(15, "the two see each other alive", || {
        num(&status(&asker)["members"], "alive") == 2
    });
    let out = run(asker
        .cmd("p2p-sha256")
        .arg("--peer")
        .arg("member")
        .arg(&file));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let m = status(&member);
    assert_eq!(num(&m, "queries_remote"), 1, "{m}");
    assert_eq!(num(&m, "items_remote"), 1, "{m}");
    assert_eq!(num(&m, "bytes_read"), 6, "{m}");
    assert_eq!(num(&m, "items_local"), 0, "{m}");
    let a = status(&asker);
    assert_eq!(num(&a, "queries_local"), 1, "{a}");
    assert_eq!(
        num(&a, "bytes_read"),
        0,
        "the asker read nothing itself: {a}"
    );
}

#[test]
fn forged_datagrams_are_counted_by_reason() {
    let d = Daemon::start(&[]);
    common::flood_forged_datagrams(&format!("127.0.0.1:{}", d.port), 200);
    eventually(20, "the forged datagrams counted", || {
        let r = &status(&d)["datagrams_rejected"];
        num(r, "authentication") > 0
    });
    let r = &status(&d)["datagrams_rejected"];
    assert_eq!(num(r, "replay"), 0, "{r}");
    assert_eq!(num(r, "misaddressed"), 0, "{r}");
    assert!(num(r, "authentication") + num(r, "malformed") <= 200, "{r}");
}

#[test]
fn prometheus_format_parses_and_agrees_with_json() {
    let d = Daemon::start(&[]);
    let f = write(d.dir.path(), "f", b"abc\n");
    assert_eq!(run(d.cmd("p2p-sha256").arg(&f)).status, 0);
    let out = run(d.cmd("p2p-status").args(["--format", "prometheus"]));
    assert_eq!(out.status, 0, "{}", out.stderr);
    let mut samples = std::collections::HashMap::new();
    let mut typed = std::collections::HashMap::new();
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            assert!(typed.insert(name.to_string(), kind.to_string()).is_none());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        // name{labels} value, or name value.
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("p2p_"), "{line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("labels of {line:?}"));
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                assert!(k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
        }
        assert!(typed.contains_key(name), "{name} typed before its samples");
        samples.insert(series.to_string(), value.parse::<f64>().unwrap() as u64);
    }
    let s = status(&d);
    assert_eq!(samples["p2p_queries_total{origin=\"local\"}"], 1);
    assert_eq!(samples["p2p_items_total{origin=\"local\"}"], 1);
    assert_eq!(samples["p2p_read_bytes_total"], 4);
    assert_eq!(samples["p2p_members{state=\"alive\"}"], 1);
    assert_eq!(samples["p2p_workers"], num(&s, "workers"));
    assert_eq!(samples["p2p_queries_cancelled_total"], 0);
    assert!(samples.contains_key("p2p_datagrams_rejected_total{reason=\"authentication\"}"));
    assert!(samples.contains_key("p2p_uptime_seconds"));
}

#[test]
fn a_usage_error_exits_2() {
    let d = Daemon::start(&[]);
    for args in [&["--bogus"][..], &["--format", "xml"], &["extra"]] {
        let out = run(d.cmd("p2p-status").args(args));
        assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn another_local_user_may_read_the_counters() {
    if !common::is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    let d = Daemon::start(&[]);
    common::open_to_all(&d);
    let reply = common::ask_as(65534, &d.socket, r#"{"op":"status"}"#);
    assert_eq!(reply.len(), 1, "{reply:?}");
    num(&reply[0], "uptime_seconds");
    assert_eq!(reply[0]["members"]["alive"], 1);
}
