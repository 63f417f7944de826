//! Running p2pd as a service: the config file, state kept across restarts,
//! signals (SIGHUP reload, SIGTERM), p2p-leave, and the systemd protocol.

mod common;

use common::{Daemon, FAST, TEST_KEY, bin, eventually, peers, run, start_cluster, write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = FAST.to_vec();
    v.extend_from_slice(extra);
    v
}

/// Runs p2pd expecting it to refuse to start; returns its status and stderr.
fn refused(extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let r = run(Command::new(bin("p2pd"))
        .arg("0")
        .args(["--socket"])
        .arg(dir.path().join("s.sock"))
        .args(extra)
        .env("P2PD_SECRET", TEST_KEY)
        .env("HOME", dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null()));
    (r.status, r.stderr)
}

#[test]
fn the_config_file_sets_flags_that_the_command_line_overrides() {
    let t = tempfile::tempdir().unwrap();
    let conf = write(
        t.path(),
        "p2pd.toml",
        b"# a node\nname = \"from-file\"\ntag = [\"role=db\", \"dc=west\"]\ngossip-interval = 100\n",
    );
    let c = conf.to_str().unwrap();
    let d = Daemon::start(&["--config", c]);
    let me = peers(&d).into_iter().find(|m| m["self"] == true).unwrap();
    assert_eq!(me["name"], "from-file");
    assert_eq!(me["tags"]["dc"], "west");
    let d2 = Daemon::start(&["--config", c, "--name", "from-flag"]);
    let me = peers(&d2).into_iter().find(|m| m["self"] == true).unwrap();
    assert_eq!(me["name"], "from-flag");
    assert_eq!(
        me["tags"]["role"], "db",
        "the rest still comes from the file"
    );
}

#[test]
fn bad_config_files_are_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("unknown.toml", b"port = 1\ngosip-interval = 100\n", ":2:"),
        ("range.toml", b"\n\ngossip-interval = 5\n", ":3:"),
        ("type.toml", b"name = 7\n", ":1:"),
        ("syntax.toml", b"name = \"unclosed\n", ":1"),
    ];
    for (file, text, line) in cases {
        let p = write(t.path(), file, text);
        let (status, err) = refused(&["--config", p.to_str().unwrap()]);
        assert_eq!(status, 2, "{file}: {err}");
        assert!(
            err.contains(&format!("{}{line}", p.display())),
            "{file}: {err}"
        );
    }
    let (status, err) = refused(&["--config", "/nonexistent/p2pd.toml"]);
    assert_eq!(status, 2, "{err}");
    let (_, err) = refused(&["--config", t.path().join("unknown.toml").to_str().unwrap()]);
    assert!(
        err.contains("gossip-interval"),
        "suggests the right key: {err}"
    );
}

#[test]
fn a_restarted_node_rejoins_the_members_it_knew_without_join() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path().to_str().unwrap().to_string();
    let mut all = start_cluster(3, |i| {
        if i == 2 {
            vec!["--state-dir".into(), s.clone()]
        } else {
            Vec::new()
        }
    });
    let port = all[2].port;
    let before = peers(&all[0])
        .into_iter()
        .find(|m| m["name"] == "node2")
        .unwrap()["incarnation"]
        .as_u64()
        .unwrap();
    // Killed outright: only what it saved along the way survives.
    eventually(10, "node2 has saved both other members", || {
        let text = std::fs::read_to_string(state.path().join("state.json")).unwrap_or_default();
        text.contains("\"node0\"") && text.contains("\"node1\"")
    });
    drop(all.pop());
    let back = Daemon::start_on(
        port,
        &args(&["--state-dir", &s]),
        &[("P2PD_SECRET", TEST_KEY)],
    );
    for d in [&all[0], &all[1], &back] {
        eventually(
            15,
            &format!("node2 is back in everyone's list: {}", back.log()),
            || {
                let p = peers(d);
                p.len() == 3
                    && p.iter().all(|m| m["state"] == "alive")
                    && p.iter()
                        .any(|m| m["name"] == "node2" && m["incarnation"].as_u64() > Some(before))
            },
        );
    }
    assert!(back.log().contains("rejoining"), "{}", back.log());
}

#[test]
fn a_corrupt_state_file_is_set_aside_not_fatal() {
    let state = tempfile::tempdir().unwrap();
    write(
        state.path(),
        "state.json",
        b"{\"format\":\"p2pd-state\",\"vers",
    );
    let d = Daemon::start(&["--state-dir", state.path().to_str().unwrap()]);
    assert!(!peers(&d).is_empty());
    let names: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("state.json.corrupt-")),
        "{names:?}"
    );
    assert!(d.log().to_lowercase().contains("corrupt"), "{}", d.log());
}

#[test]
fn sighup_reloads_exports_and_tags_without_dropping_membership() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a/file", b"in a\n");
    let b = write(t.path(), "b/file", b"in b\n");
    let conf = t.path().join("p2pd.toml");
    let set = |export: &str, role: &str| {
        let text = format!(
            "export = [\"{}\"]\ntag = [\"role={role}\"]\n",
            t.path().join(export).display()
        );
        std::fs::write(&conf, text).unwrap();
    };
    set("a", "old");
    let c = conf.to_str().unwrap().to_string();
    let all = start_cluster(2, |i| {
        if i == 1 {
            vec!["--config".into(), c.clone()]
        } else {
            Vec::new()
        }
    });
    let peer = format!("127.0.0.1:{}", all[1].port);
    let code = |path: &std::path::Path| {
        let r = run(all[0]
            .cmd("p2p-wc")
            .args(["--peer", &peer, path.to_str().unwrap()]));
        let v = r.json().remove(0);
        v["error"]["code"].as_str().unwrap_or("ok").to_string()
    };
    assert_eq!(code(&a), "ok");
    assert_eq!(code(&b), "not_exported");
    let mut watch = common::watch_members(&all[0]);
    set("b", "new");
    unsafe { libc::kill(all[1].pid(), libc::SIGHUP) };
    eventually(10, "the new export is in force", || code(&b) == "ok");
    assert_eq!(code(&a), "not_exported");
    eventually(10, "the other member sees the new tag", || {
        peers(&all[0])
            .iter()
            .any(|m| m["name"] == "node1" && m["tags"]["role"] == "new" && m["state"] == "alive")
    });
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("\"fail\"") && !text.contains("\"leave\""),
        "{text}"
    );
    assert!(text.contains("\"update\""), "{text}");
}

#[test]
fn p2p_leave_makes_the_daemon_leave_and_exit() {
    let mut all = start_cluster(2, |_| Vec::new());
    let r = run(&mut all[1].cmd("p2p-leave"));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["left"], true);
    assert_eq!(r.json()[0]["peer"], "node1");
    let st = all[1]
        .signal_and_wait(0, Duration::from_secs(3))
        .expect("the daemon exited");
    assert_eq!(st.code(), Some(0));
    assert!(!all[1].socket.exists(), "the socket is removed");
    eventually(5, "node0 sees node1 left", || {
        peers(&all[0])
            .iter()
            .any(|m| m["name"] == "node1" && m["state"] == "left")
    });
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let t = tempfile::tempdir().unwrap();
    let sock_path = t.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let creds = t.path().join("creds");
    write(&creds, "cluster.key", TEST_KEY.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        creds.join("cluster.key"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    let mut d = Daemon::start_on(
        0,
        &["--name", "unit"],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
        ],
    );
    let mut heard = String::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while !(heard.contains("READY=1") && heard.contains("WATCHDOG=1")) && Instant::now() < end {
        let n = sock.recv(&mut buf).unwrap();
        heard.push_str(&String::from_utf8_lossy(&buf[..n]));
        heard.push('\n');
    }
    assert!(heard.contains("READY=1"), "{heard}");
    assert!(heard.contains("WATCHDOG=1"), "{heard}");
    // Started on port 0, it says which port it got.
    assert!(
        heard.contains(&format!(
            "STATUS=serving {} as unit, peers on port {}",
            d.socket.display(),
            d.port
        )),
        "{heard}"
    );
    // No P2PD_SECRET here: the key came from the credential.
    assert!(d.log().contains("systemd credential"), "{}", d.log());
    let st = d
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(2))
        .expect("exits within 2 s");
    assert_eq!(st.code(), Some(0));
    let mut rest = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        if rest.contains("STOPPING=1") {
            break;
        }
    }
    assert!(rest.contains("STOPPING=1"), "{rest}");
}

#[test]
fn a_socket_passed_by_systemd_is_served() {
    use std::os::fd::AsRawFd;
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    let log = t.path().join("log");
    // The listener is inherited (no close-on-exec) and moved to fd 3, where
    // socket activation puts it; LISTEN_PID must be p2pd's own pid, so sh
    // exports its pid, then becomes p2pd.
    // SAFETY: clearing the flags of a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let to_3 = if fd == 3 {
        String::new()
    } else {
        format!(" 3<&{fd} {fd}<&-")
    };
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"{to_3}"),
    ])
    .arg(bin("p2pd"))
    .arg("0")
    .args(["--socket"])
    .arg(t.path().join("unused.sock"))
    .env("P2PD_SECRET", TEST_KEY)
    .env("HOME", t.path())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    /// Kills the daemon however the test ends.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(cmd.spawn().unwrap());
    drop(listener);
    let ask = || {
        run(Command::new(bin("p2p-peers"))
            .env("P2P_SOCKET", &path)
            .stdin(Stdio::null()))
    };
    eventually(
        10,
        &format!(
            "the passed socket answers: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
        || ask().status == 0,
    );
    assert_eq!(ask().json().len(), 1);
    assert!(
        !t.path().join("unused.sock").exists(),
        "no socket of its own"
    );
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let st = child.0.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(path.exists(), "the socket belongs to systemd and stays");
}
