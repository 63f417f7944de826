//! One host: a real `p2pd` and the real commands, every format and every
//! error a single host can produce.

mod common;

use common::{Daemon, gnu_sha256, gnu_wc, is_root, run, write};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn wc_counts_match_gnu_wc_and_carry_peer_and_path() {
    let d = Daemon::start(&["--name", "alpha"]);
    let f = write(
        d.dir.path(),
        "notes.txt",
        "héllo wörld\nsecond line\u{a0}here\n".as_bytes(),
    );
    let r = run(d.cmd("p2p-wc").arg(&f));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    let (l, w, c, b) = gnu_wc(&f);
    assert_eq!(v["peer"], "alpha");
    assert_eq!(v["path"], f.to_str().unwrap());
    assert_eq!(
        (v["lines"].as_u64().unwrap(), v["words"].as_u64().unwrap()),
        (l, w)
    );
    assert_eq!(
        (v["chars"].as_u64().unwrap(), v["bytes"].as_u64().unwrap()),
        (c, b)
    );
}

#[test]
fn wc_field_flags_select_fields_and_text_has_total() {
    let d = Daemon::start(&[]);
    let a = write(d.dir.path(), "a", b"one two\nthree\n");
    let b = write(d.dir.path(), "b", b"four\n");
    let r = run(d.cmd("p2p-wc").arg("-l").arg(&a));
    assert_eq!(
        r.json()[0],
        json!({"peer": r.json()[0]["peer"], "path": a.to_str().unwrap(), "lines": 2})
    );
    let r = run(d
        .cmd("p2p-wc")
        .args(["-lw", "--format", "text"])
        .arg(&a)
        .arg(&b));
    assert_eq!(r.status, 0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["2", "3", a.to_str().unwrap()]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["3", "4", "total"]
    );
}

#[test]
fn edge_case_contents_match_gnu() {
    let d = Daemon::start(&[]);
    let cases: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("no-newline", b"last line without newline"),
        ("crlf", b"one\r\ntwo three\r\n"),
        ("invalid-utf8", b"ab\xff\xfe cd \xc3\x28 \xe2\x82\n"),
        ("nul-bytes", b"a\0b c\0\0 d\n\0"),
        ("controls", b"a\x01b \x7f c\x1b[0m\n"),
    ];
    let mut paths = Vec::new();
    for (name, content) in cases {
        paths.push(write(d.dir.path(), name, content));
    }
    let r = run(d.cmd("p2p-wc").args(&paths));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out.len(), paths.len());
    for (v, p) in out.iter().zip(&paths) {
        let (l, w, c, b) = gnu_wc(p);
        let got = (
            v["lines"].as_u64().unwrap(),
            v["words"].as_u64().unwrap(),
            v["chars"].as_u64().unwrap(),
            v["bytes"].as_u64().unwrap(),
        );
        assert_eq!(got, (l, w, c, b), "{}", p.display());
    }
}

#[test]
fn errors_have_codes_messages_and_exit_1() {
    let d = Daemon::start(&[]);
    let dir = d.dir.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let ok = write(d.dir.path(), "ok", b"x\n");
    let missing = d.dir.path().join("missing");
    // A device is read like any stream (tests/streams.rs has the rest).
    let r = run(d
        .cmd("p2p-wc")
        .arg(&missing)
        .arg(&dir)
        .arg("/dev/null")
        .arg(&ok));
    assert_eq!(r.status, 1);
    let out = r.json();
    assert_eq!(out.len(), 4);
    assert_eq!(code(&out[0]), "not_found");
    assert_eq!(code(&out[1]), "is_directory");
    assert_eq!(out[2]["bytes"], 0);
    assert_eq!(out[3]["lines"], 1);
    for v in &out[..2] {
        assert!(v["peer"].is_string() && v["path"].is_string());
    }
    // One human line per failure on stderr, naming the path.
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!(
        "p2p-wc: {}: No such file or directory",
        missing.display()
    )));

    let r = run(d.cmd("p2p-count").arg(&ok));
    assert_eq!(r.status, 1);
    assert_eq!(code(&r.json()[0]), "not_a_directory");
}

#[test]
fn text_format_keeps_errors_off_stdout() {
    let d = Daemon::start(&[]);
    let r = run(d.cmd("p2p-wc").args(["--format", "text", "/nonexistent/x"]));
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("/nonexistent/x"));
}

#[test]
fn relative_paths_and_files_from_with_nul() {
    let d = Daemon::start(&[]);
    write(d.dir.path(), "sub/one", b"1\n");
    write(d.dir.path(), "sub/two words", b"2 2\n2\n");
    let r = run(d
        .cmd("p2p-wc")
        .arg("-l")
        .arg("one")
        .current_dir(d.dir.path().join("sub")));
    assert_eq!(r.json()[0]["path"], "one");
    assert_eq!(r.json()[0]["lines"], 1);

    let list = write(d.dir.path(), "list0", b"sub/one\0sub/two words\0");
    let r = run(d
        .cmd("p2p-wc")
        .arg("-0")
        .arg("--files-from")
        .arg(&list)
        .current_dir(d.dir.path()));
    let out = r.json();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1]["path"], "sub/two words");
    assert_eq!(out[1]["lines"], 2);

    let mut child = d
        .cmd("p2p-wc")
        .args(["-l", "--files-from", "-"])
        .current_dir(d.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sub/one\n\nsub/two words\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn many_paths_stream_back_in_order() {
    let d = Daemon::start(&[]);
    let dir = d.dir.path().join("many");
    std::fs::create_dir(&dir).unwrap();
    let mut list = String::new();
    for i in 0..3000 {
        let p = write(
            &dir,
            &format!("f{i}"),
            format!("{}\n", "x ".repeat(i % 7)).as_bytes(),
        );
        list.push_str(p.to_str().unwrap());
        list.push('\n');
    }
    let listf = write(d.dir.path(), "list", list.as_bytes());
    let r = run(d.cmd("p2p-wc").arg("--files-from").arg(&listf));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out.len(), 3000);
    for (i, v) in out.iter().enumerate() {
        assert!(v["path"].as_str().unwrap().ends_with(&format!("/f{i}")));
        assert_eq!(v["words"], (i % 7) as u64);
    }
}

#[test]
fn sha256_formats_and_check_interoperate_with_sha256sum() {
    let d = Daemon::start(&[]);
    let a = write(d.dir.path(), "a.bin", b"\x00\x01binary\xff");
    let b = write(d.dir.path(), "name with spaces", b"hello\n");
    let c = write(d.dir.path(), "back\\slash", b"escaped\n");
    let r = run(d.cmd("p2p-sha256").arg(&a).arg(&b));
    assert_eq!(r.status, 0);
    let out = r.json();
    assert_eq!(out[0]["sha256"], gnu_sha256(&a));
    assert_eq!(out[0]["bytes"], 9);
    assert_eq!(out[1]["sha256"], gnu_sha256(&b));

    // Ours, checked by GNU.
    let r = run(d
        .cmd("p2p-sha256")
        .args([
            "--format",
            "sha256sum",
            "a.bin",
            "name with spaces",
            "back\\slash",
        ])
        .current_dir(d.dir.path()));
    let sums = write(d.dir.path(), "SUMS", r.stdout.as_bytes());
    let gnu = run(std::process::Command::new("sha256sum")
        .arg("-c")
        .arg(&sums)
        .current_dir(d.dir.path()));
    assert_eq!(gnu.status, 0, "{}{}", gnu.stdout, gnu.stderr);

    // GNU's, checked by ours, then a mismatch after a change.
    let gnu_sums = run(std::process::Command::new("sha256sum")
        .args(["a.bin", "name with spaces", "back\\slash"])
        .current_dir(d.dir.path()));
    let gsums = write(d.dir.path(), "GSUMS", gnu_sums.stdout.as_bytes());
    let r = run(d
        .cmd("p2p-sha256")
        .arg("--check")
        .arg(&gsums)
        .current_dir(d.dir.path()));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.json().iter().all(|v| v["match"] == true));
    std::fs::write(&c, b"changed\n").unwrap();
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--check"])
        .arg(&gsums)
        .args(["--format", "text"])
        .current_dir(d.dir.path()));
    assert_eq!(r.status, 1);
    assert!(r.stdout.contains("a.bin: OK"));
    // Since coreutils 9.11, -c quotes names that need it as shell words.
    assert!(r.stdout.contains("'back\\slash': FAILED"), "{}", r.stdout);
    assert!(r.stderr.contains("1 computed checksum did NOT match"));
}

#[test]
fn stat_reports_metadata_and_content_from_one_read() {
    let d = Daemon::start(&[]);
    let f = write(d.dir.path(), "s.txt", b"a b\nc\n");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = run(d.cmd("p2p-stat").arg(&f).arg(d.dir.path()));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    let v = &out[0];
    assert_eq!(v["type"], "file");
    assert_eq!(v["size"], 6);
    assert_eq!(v["mode"], "0640");
    assert!(v["mtime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            v["lines"].clone(),
            v["words"].clone(),
            v["chars"].clone(),
            v["bytes"].clone()
        ),
        (json!(2), json!(3), json!(6), json!(6))
    );
    assert_eq!(v["sha256"], gnu_sha256(&f));
    assert_eq!(out[1]["type"], "directory");
    assert!(out[1].get("sha256").is_none());

    let r = run(d.cmd("p2p-stat").args(["--format", "text"]).arg(&f));
    assert!(
        r.stdout.contains(&format!("  File: {}", f.display())),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Mode: 0640"));
    assert!(r.stdout.contains(&format!("SHA256: {}", gnu_sha256(&f))));
}

#[test]
fn count_directories_flat_recursive_and_large() {
    let d = Daemon::start(&[]);
    let root = d.dir.path().join("tree");
    write(&root, "a", b"12345");
    write(&root, "sub/b", b"12");
    write(&root, "sub/deeper/c", b"1");
    std::os::unix::fs::symlink(&root, root.join("loop")).unwrap();
    std::fs::create_dir(root.join("empty")).unwrap();
    let r = run(d.cmd("p2p-count").arg(&root));
    let v = &r.json()[0];
    assert_eq!(
        (
            v["files"].clone(),
            v["dirs"].clone(),
            v["symlinks"].clone(),
            v["bytes"].clone()
        ),
        (json!(1), json!(2), json!(1), json!(5))
    );
    assert_eq!(v["recursive"], false);
    let r = run(d.cmd("p2p-count").arg("-r").arg(&root));
    let v = &r.json()[0];
    assert_eq!(
        (
            v["files"].clone(),
            v["dirs"].clone(),
            v["symlinks"].clone(),
            v["bytes"].clone()
        ),
        (json!(3), json!(3), json!(1), json!(8))
    );
    let r = run(d
        .cmd("p2p-count")
        .args(["-r", "--format", "text"])
        .arg(&root));
    let cols: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(cols, ["3", "3", "1", "0", "8", root.to_str().unwrap()]);
    let r = run(d.cmd("p2p-count").arg(root.join("empty")));
    assert_eq!(r.json()[0]["files"], 0);
    assert_eq!(r.json()[0]["dirs"], 0);

    let big = d.dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(big.join(format!("{i}"))).unwrap();
    }
    let r = run(d.cmd("p2p-count").arg(&big));
    assert_eq!(r.json()[0]["files"], 100_000);
}

#[test]
fn no_daemon_exits_3_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "f", b"x");
    let r = run(std::process::Command::new(common::bin("p2p-wc"))
        .env("P2P_SOCKET", dir.path().join("nobody-here.sock"))
        .arg(&f));
    assert_eq!(r.status, 3);
    assert!(r.stderr.contains("p2pd"), "{}", r.stderr);
    let r = run(std::process::Command::new(common::bin("p2p-wc"))
        .env("P2P_SOCKET", "/x")
        .arg("--bogus"));
    // A usage error comes before any daemon is looked for; 1, as GNU wc's.
    assert_eq!(r.status, 1);
}

#[test]
fn closed_pipe_ends_quietly() {
    let d = Daemon::start(&[]);
    let mut args = String::new();
    for i in 0..2000 {
        let p = write(d.dir.path(), &format!("p{i}"), b"x\n");
        args.push_str(&format!("'{}' ", p.display()));
    }
    let script = format!("'{}' {args} | head -1", common::bin("p2p-wc").display());
    let r = run(std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("P2P_SOCKET", &d.socket));
    assert_eq!(r.status, 0);
    assert_eq!(r.stdout.lines().count(), 1);
    assert_eq!(r.stderr, "", "stderr must stay quiet");
}

#[test]
fn socat_style_inline_request_works() {
    let d = Daemon::start(&["--name", "inline"]);
    let f = write(d.dir.path(), "f", b"a b c\n");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    writeln!(
        s,
        "{}",
        json!({"op": "query", "kind": "wc", "paths": [f, "rel"], "cwd": "/nonexistent-dir"})
    )
    .unwrap();
    let lines: Vec<Value> = BufReader::new(s)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert_eq!(lines[0], json!({"accepted": true, "peer": "inline"}));
    let by_id = |id: u64| lines.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(by_id(0)["words"], 3);
    assert_eq!(code(&by_id(1)), "not_found");
    assert_eq!(
        lines.last().unwrap(),
        &json!({"done": true, "ok": 1, "failed": 1})
    );
}

#[test]
fn malformed_requests_are_refused_and_daemon_keeps_serving() {
    let d = Daemon::start(&[]);
    for junk in [
        "not json\n",
        "{\"op\":\"query\",\"kind\":\"nope\"}\n",
        "\u{0}\u{1}\n",
    ] {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.write_all(junk.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(code(&v), "invalid_request");
    }
    // A streamed item that claims a descriptor it did not pass closes only that connection.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"{\"op\":\"query\",\"kind\":\"wc\"}\n{\"id\":0,\"path\":\"x\",\"fd\":true}\n")
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut s, &mut rest).unwrap();
    let f = write(d.dir.path(), "f", b"still here\n");
    let r = run(d.cmd("p2p-wc").arg(&f));
    assert_eq!(r.status, 0);
    assert_eq!(r.json()[0]["words"], 2);
}

#[test]
fn sigterm_removes_socket_and_exits_0() {
    let mut d = Daemon::start(&[]);
    let st = d
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(2))
        .expect("exit within 2 s");
    assert_eq!(st.code(), Some(0));
    assert!(!d.socket.exists());
}

#[test]
fn second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start(&[]);
    let r = run(std::process::Command::new(common::bin("p2pd"))
        .arg("0")
        .arg("--socket")
        .arg(&d.socket)
        .env("P2PD_SECRET", common::TEST_KEY));
    assert_eq!(r.status, 2);
    assert!(r.stderr.contains("already serving"), "{}", r.stderr);
}

#[test]
fn root_daemon_never_reads_for_a_caller_who_could_not() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start(&[]);
    // Let uid 65534 reach the socket and the files' directory, but not the secret.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let secret = write(d.dir.path(), "secret", b"root only\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = write(d.dir.path(), "public", b"anyone\n");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tree = d.dir.path().join("tree");
    write(&tree, "open/f", b"");
    write(&tree, "closed/hidden1", b"");
    write(&tree, "closed/hidden2", b"");
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(tree.join("open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(tree.join("closed"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let as_nobody = |name: &str| {
        let mut c = d.cmd(name);
        c.uid(65534).gid(65534);
        c
    };
    let r = run(as_nobody("p2p-wc").arg(&secret).arg(&public));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let out = r.json();
    assert_eq!(code(&out[0]), "permission_denied");
    assert_eq!(out[1]["words"], 1);

    let r = run(as_nobody("p2p-count").arg("-r").arg(&tree));
    let v = &r.json()[0];
    assert_eq!(
        v["files"], 1,
        "the closed directory's files must not be counted: {v}"
    );
    assert_eq!(v["unreadable"], 1);
    // Root itself sees everything.
    let r = run(d.cmd("p2p-count").arg("-r").arg(&tree));
    assert_eq!(r.json()[0]["files"], 3);
}
