//! `p2p-ui` at the API level, without a browser: three daemons on
//! loopback, the dashboard on port 0, requests over a plain TcpStream.

mod common;
mod ui_harness;

use common::{eventually, run};
use serde_json::Value;
use ui_harness::{Tree, Ui};

fn members(ui: &Ui) -> Vec<Value> {
    let r = ui.get("/api/members");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["members"].as_array().unwrap().clone()
}

#[test]
fn the_token_the_host_and_the_origin_guard_every_request() {
    let d = common::Daemon::start(&[]);
    let ui = Ui::start(&d);
    assert!(ui.token.len() >= 22, "at least 128 bits: {}", ui.token);
    // The page itself holds no data and comes without the token (which is
    // in the URL's fragment, never sent); the API answers nothing without
    // it.
    let page = ui.request("GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<table id=\"members\""));
    assert!(!page.body.contains(&ui.token));
    let csp = page.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(page.header("Set-Cookie").is_none(), "no cookie, ever");
    for path in ["/api/members", "/api/status", "/api/events"] {
        let r = ui.request("GET", path, &[], "");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        let wrong = ui.request(
            "GET",
            path,
            &[("Authorization", "Bearer wrongwrongwrong")],
            "",
        );
        assert_eq!(wrong.status, 403, "{path}: {}", wrong.body);
    }
    // Neither the token in the query string nor a cookie opens the API.
    let r = ui.request("GET", &format!("/api/members?token={}", ui.token), &[], "");
    assert_eq!(r.status, 403, "{}", r.body);
    let cookie = format!("p2p_ui_{}={}", ui.port, ui.token);
    let r = ui.request("GET", "/api/members", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 403, "{}", r.body);
    let auth = ui.auth();
    assert_eq!(
        ui.request("GET", "/api/members", &[("Authorization", &auth)], "")
            .status,
        200
    );

    // DNS rebinding: our port under another name is refused, token or not.
    for host in [format!("evil.example:{}", ui.port), "127.0.0.1".to_string()] {
        for path in ["/", "/api/members"] {
            let r = ui.request(
                "GET",
                path,
                &[("Host", &host), ("Authorization", &auth)],
                "",
            );
            assert_eq!(r.status, 421, "Host {host} {path}: {}", r.body);
        }
    }
    let r = ui.request(
        "GET",
        "/api/members",
        &[
            ("Host", &format!("localhost:{}", ui.port)),
            ("Authorization", &auth),
        ],
        "",
    );
    assert_eq!(r.status, 200);

    // Cross-site: another Origin is refused, and a query needs POST with
    // our Origin or the header a page of ours sends.
    let form = r#"{"command":"sha256","paths":["/etc/hostname"]}"#;
    let r = ui.request(
        "POST",
        "/api/query",
        &[
            ("Authorization", &auth),
            ("Origin", "http://evil.example"),
            ("X-P2P-UI", "1"),
        ],
        form,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = ui.request("POST", "/api/query", &[("Authorization", &auth)], form);
    assert_eq!(r.status, 403, "no Origin, no header: {}", r.body);
    let r = ui.request("POST", "/api/query", &[("X-P2P-UI", "1")], form);
    assert_eq!(r.status, 403, "no token: {}", r.body);
    let r = ui.request(
        "GET",
        "/api/query",
        &[("Authorization", &auth), ("X-P2P-UI", "1")],
        "",
    );
    assert_eq!(r.status, 405);
    let ours = format!("http://127.0.0.1:{}", ui.port);
    let r = ui.request(
        "POST",
        "/api/query",
        &[("Authorization", &auth), ("Origin", &ours)],
        form,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A form that no command could run is refused before anything runs.
    let r = ui.post("/api/query", r#"{"command":"rm","paths":["/"]}"#);
    assert_eq!(r.status, 400);
}

/// The attack the cookie allowed: another local user runs a server on
/// another port of 127.0.0.1 and gets the victim's browser to visit it.
/// A browser sends a host's cookies to every port of that host, so the
/// dashboard's secret must not be a cookie: here, after a visit to the
/// dashboard, the browser (its cookie jar played by this test: whatever
/// Set-Cookie the dashboard answered) sends nothing that opens the API.
#[test]
fn a_server_on_another_port_of_the_host_learns_nothing_that_opens_the_api() {
    let d = common::Daemon::start(&[]);
    let ui = Ui::start(&d);
    // The visit of the printed URL, as a browser makes it: the fragment
    // stays in the browser, path and query go.
    let target = ui
        .url
        .strip_prefix(&format!("http://{}", ui.host))
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .to_string();
    let visit = ui.request("GET", &target, &[], "");
    assert!(visit.status < 400, "{}: {}", visit.status, visit.body);
    let jar: Vec<String> = visit
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
        .collect();
    assert!(jar.is_empty(), "the dashboard set cookies: {jar:?}");
    // What the browser would send to the attacker's port is the jar; sent
    // on to the dashboard, it opens nothing.
    let cookie = jar.join("; ");
    let stolen = ui.request("GET", "/api/members", &[("Cookie", &cookie)], "");
    assert_eq!(stolen.status, 403, "{}", stolen.body);
}

#[test]
fn members_stream_live_and_a_killed_daemon_turns_down() {
    let mut cluster = common::start_cluster(3, |_| Vec::new());
    let ui = Ui::start(&cluster[0]);
    eventually(20, "the dashboard lists 3 alive members", || {
        let m = members(&ui);
        m.len() == 3 && m.iter().all(|m| m["state"] == "alive")
    });
    let mut events = ui.events();
    let (name, data) = events.next();
    assert_eq!(name, "snapshot");
    let snap: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(snap["up"], true);
    assert_eq!(snap["members"].as_array().unwrap().len(), 3);
    // The same stream, no reload, reports node2 down once it is killed.
    drop(cluster.pop());
    let mut seen = Vec::new();
    let down = loop {
        let (name, data) = events.next();
        seen.push(format!("{name} {data}"));
        if name != "member" {
            continue;
        }
        let ev: Value = serde_json::from_str(&data).unwrap();
        if ev["member"]["name"] == "node2" && ev["member"]["state"] == "down" {
            break ev;
        }
        assert!(seen.len() < 100, "no down event for node2: {seen:#?}");
    };
    assert_eq!(down["member"]["addr"], snap["members"][2]["addr"]);
    let m = members(&ui);
    assert_eq!(m.iter().filter(|m| m["state"] == "alive").count(), 2);
}

#[test]
fn status_has_the_daemons_counters() {
    let d = common::Daemon::start(&[]);
    let ui = Ui::start(&d);
    eventually(20, "a first sample of the counters", || {
        let v: Value = serde_json::from_str(&ui.get("/api/status").body).unwrap();
        v["up"] == true && v["history"].as_array().is_some_and(|h| !h.is_empty())
    });
    let v: Value = serde_json::from_str(&ui.get("/api/status").body).unwrap();
    assert_eq!(v["status"]["name"], common::status(&d)["name"]);
    assert!(v["history"][0]["queries"].is_u64());
}

#[test]
fn a_query_streams_the_very_lines_the_command_prints() {
    let tree = Tree::new();
    let cluster = tree.cluster(3, 1);
    let ui = Ui::start(&cluster[0]);
    let f = tree.path("f");
    let same = tree.path("same");
    let missing = tree.path("missing");
    let paths = [&f, &same, &missing].map(|p| p.to_str().unwrap().to_string());
    // Here (the command opens the files itself), and on every member.
    for (placement, flags) in [("here", vec![]), ("all", vec!["--all"])] {
        let form = serde_json::json!({"command": "sha256", "paths": paths, "placement": placement});
        let r = ui.post("/api/query", &form.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
        let lines = r.events("out");
        let direct = run(cluster[0]
            .cmd("p2p-sha256")
            .args(&flags)
            .arg("--")
            .args(&paths));
        let mut want: Vec<&str> = direct.stdout.lines().collect();
        let mut got: Vec<&str> = lines.iter().map(String::as_str).collect();
        if placement == "all" {
            // Members answer in the order they answer.
            want.sort();
            got.sort();
        }
        assert_eq!(got, want, "{placement}");
        assert_eq!(
            r.events("exit"),
            [format!("{{\"status\":{}}}", direct.status)]
        );
        assert!(!r.events("err").is_empty(), "the missing file's message");
    }
}

#[test]
fn drift_names_the_member_whose_file_differs() {
    let tree = Tree::new();
    let cluster = tree.cluster(3, 1);
    let ui = Ui::start(&cluster[0]);
    let paths = [tree.path("same"), tree.path("f")].map(|p| p.to_str().unwrap().to_string());
    let form = serde_json::json!({"command": "sha256", "paths": paths});
    let r = ui.post("/api/drift", &form.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let d: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(d["outliers"], serde_json::json!(["node1"]), "{d:#}");
    assert_eq!(d["members"][0], "node1", "outliers first");
    assert_eq!(
        d["paths"][0]["path"], paths[1],
        "the path they disagree on first"
    );
    assert_eq!(d["paths"][0]["cells"], serde_json::json!([1, 0, 0]));
    let odd = &d["paths"][0]["answers"][1];
    assert_eq!(odd["bytes"], 8, "node1's whole answer: {odd}");
    assert_eq!(d["exit"], 1, "members disagree");
}

#[test]
fn streams_are_bounded_and_sigterm_stops_the_dashboard() {
    let d = common::Daemon::start(&[]);
    let mut ui = Ui::start(&d);
    // A script may ask the API with the token as a header.
    let r = ui.request("GET", "/api/members", &[("Authorization", &ui.auth())], "");
    assert_eq!(r.status, 200, "{}", r.body);
    // Every stream holds a thread: beyond the bound, refused, not queued.
    let open: Vec<_> = (0..16).map(|_| ui.events()).collect();
    let r = ui.get("/api/events");
    assert_eq!(r.status, 503, "{}", r.body);
    drop(open);
    eventually(30, "the streams' places are free again", || {
        ui.status_of("/api/events") == 200
    });
    // SIGTERM: exit 0.
    let status = ui.terminate();
    assert_eq!(status, Some(0), "p2p-ui exits 0 on SIGTERM");
}

/// True while process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn a_query_whose_page_went_away_is_interrupted_and_so_is_one_running_at_sigterm() {
    let d = common::Daemon::start(&[]);
    let mut ui = Ui::start(&d);
    let dir = tempfile::tempdir().unwrap();
    // A FIFO nobody writes: the command waits in open() and prints nothing.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let form = serde_json::json!({"command": "wc", "paths": [fifo]}).to_string();

    let (status, conn) = ui.start_post("/api/query", &form);
    assert_eq!(status, 200);
    eventually(20, "p2p-wc runs for the page", || ui.children().len() == 1);
    let pid = ui.children()[0];
    assert!(running(pid));
    // The page goes away: the silent command is interrupted all the same.
    drop(conn);
    eventually(
        30,
        "the command of a page that went away is interrupted",
        || !running(pid),
    );

    let (status, _conn) = ui.start_post("/api/query", &form);
    assert_eq!(status, 200);
    eventually(20, "another p2p-wc runs", || ui.children().len() == 1);
    let pid = ui.children()[0];
    assert_eq!(ui.terminate(), Some(0));
    eventually(10, "SIGTERM interrupted the query too", || !running(pid));
}

/// A drift view runs `--all --group` and answers at the end; a page that
/// goes away meanwhile interrupts its command all the same (a debug-only
/// knob of p2pd pauses 1 s after each 64 MiB read, so the 2 GiB file takes
/// half a minute).
#[test]
fn a_drift_whose_page_went_away_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let export = dir.path().to_str().unwrap().to_string();
    let d = common::Daemon::start_on(
        0,
        &["--export", &export],
        &[
            ("P2PD_SECRET", common::TEST_KEY),
            ("P2PD_TEST_READ_DELAY_MS", "1000"),
        ],
    );
    let ui = Ui::start(&d);
    let form = serde_json::json!({"command": "sha256", "paths": [big]}).to_string();
    let (status, conn) = ui.start_post("/api/drift", &form);
    assert_eq!(status, 200);
    eventually(20, "p2p-sha256 --all runs for the drift", || {
        ui.children().len() == 1
    });
    let pid = ui.children()[0];
    drop(conn);
    eventually(
        20,
        "the drift of a page that went away is interrupted",
        || !running(pid),
    );
}

/// The attacks of a local user without the token: a body announced as
/// 1 TiB (tiny_http sized a buffer by it and the dashboard died), and
/// connections that announce a body and never send it (they took every
/// serving thread). The dashboard still answers a token holder.
#[test]
fn a_client_without_the_token_cannot_kill_or_freeze_the_dashboard() {
    use std::io::{Read, Write};
    let d = common::Daemon::start(&[]);
    let ui = Ui::start(&d);
    let mut huge = std::net::TcpStream::connect(&ui.host).unwrap();
    write!(
        huge,
        "POST / HTTP/1.1\r\nHost: evil\r\nContent-Length: 1099511627776\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let stalled: Vec<_> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&ui.host).unwrap();
            write!(
                s,
                "POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    let r = ui.get("/api/members");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(stalled);
}
