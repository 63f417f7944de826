//! A path is bytes: names that are not UTF-8, or that hold a newline or a
//! backslash, through every query command, locally and on other members
//! (`--peer`, `--all`, `--spread`), in JSON (`path_b64`), in the text
//! formats (the raw bytes), and through GNU `sha256sum` both ways.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Daemon, start_cluster};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The awkward names: Latin-1 bytes, a lone 0xFF, a newline, a backslash,
/// an escape character.
const NAMES: &[&[u8]] = &[
    b"caf\xe9.txt",
    b"\xff\xfe-not-utf8",
    b"new\nline",
    b"back\\slash",
    b"esc\x1b[31m",
];

/// A directory holding one file per awkward name (and one below a directory
/// whose own name is not UTF-8), with the content each file gets.
fn data() -> (tempfile::TempDir, Vec<(PathBuf, Vec<u8>)>) {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let mut files = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let content = format!("file {i}\nhas two words per line\n").into_bytes();
        let p = root.join(OsStr::from_bytes(name));
        std::fs::write(&p, &content).unwrap();
        files.push((p, content));
    }
    let dir = root.join(OsStr::from_bytes(b"d\xe8r"));
    std::fs::create_dir(&dir).unwrap();
    let nested = dir.join(OsStr::from_bytes(b"f\x80"));
    std::fs::write(&nested, b"one\n").unwrap();
    files.push((nested, b"one\n".to_vec()));
    (t, files)
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// The exact bytes a JSON line names: `path_b64` when present, else `path`.
fn named(v: &Value) -> Vec<u8> {
    match v.get("path_b64") {
        Some(b) => STANDARD.decode(b.as_str().unwrap()).unwrap(),
        None => v["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// What the shape rule says a line for `p` holds: `path` as the name (lossy
/// when it is not UTF-8) and `path_b64` only then.
fn assert_shape(v: &Value, p: &Path) {
    let b = bytes(p);
    assert_eq!(named(v), b, "{v}");
    assert_eq!(v["path"], String::from_utf8_lossy(b).as_ref(), "{v}");
    assert_eq!(
        v.get("path_b64").is_some(),
        std::str::from_utf8(b).is_err(),
        "{v}"
    );
}

fn sha256_of(content: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(content).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// Runs a command and keeps stdout as bytes.
fn output(cmd: &mut Command) -> (i32, Vec<u8>, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Checks one result line of `cmd` against the file it names.
fn check_fields(cmd: &str, v: &Value, content: &[u8]) {
    assert!(v.get("error").is_none(), "{v}");
    match cmd {
        "p2p-wc" => {
            let lines = content.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(v["lines"], lines, "{v}");
            assert_eq!(v["bytes"], content.len() as u64, "{v}");
        }
        "p2p-sha256" => assert_eq!(v["sha256"], sha256_of(content).as_str(), "{v}"),
        "p2p-stat" => {
            assert_eq!(v["size"], content.len() as u64, "{v}");
            assert_eq!(v["sha256"], sha256_of(content).as_str(), "{v}");
        }
        _ => unreachable!(),
    }
}

#[test]
fn every_command_answers_awkward_names_here_with_path_b64() {
    let (_t, files) = data();
    let d = Daemon::start(&[]);
    for cmd in ["p2p-wc", "p2p-sha256", "p2p-stat"] {
        let (status, stdout, stderr) = output(d.cmd(cmd).args(files.iter().map(|(p, _)| p)));
        assert_eq!(status, 0, "{cmd}: {stderr}");
        let lines = json_lines(&stdout);
        assert_eq!(lines.len(), files.len(), "{cmd}");
        for (v, (p, content)) in lines.iter().zip(&files) {
            assert_shape(v, p);
            check_fields(cmd, v, content);
        }
    }
    // A directory whose name is not UTF-8.
    let dir = files.last().unwrap().0.parent().unwrap();
    let (status, stdout, stderr) = output(d.cmd("p2p-count").arg(dir));
    assert_eq!(status, 0, "{stderr}");
    let v = &json_lines(&stdout)[0];
    assert_shape(v, dir);
    assert_eq!(v["files"], 1, "{v}");
}

#[test]
fn lists_from_files_and_relative_names_keep_their_bytes() {
    let (t, files) = data();
    let d = Daemon::start(&[]);
    // A NUL-separated list carries every name, newlines included.
    let mut list = Vec::new();
    for (p, _) in &files {
        list.extend_from_slice(bytes(p));
        list.push(0);
    }
    let mut c = d
        .cmd("p2p-sha256")
        .args(["--files-from", "-", "-0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&list).unwrap();
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), files.len());
    for (v, (p, content)) in lines.iter().zip(&files) {
        assert_shape(v, p);
        check_fields("p2p-sha256", v, content);
    }
    // Relative names in a directory that is not UTF-8 itself: the result
    // names the file as it was given.
    let dir = files.last().unwrap().0.parent().unwrap();
    let (status, stdout, stderr) = output(
        d.cmd("p2p-wc")
            .arg(OsStr::from_bytes(b"f\x80"))
            .current_dir(dir),
    );
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(named(&json_lines(&stdout)[0]), b"f\x80");
    drop(t);
}

#[test]
fn text_formats_write_the_raw_bytes_of_names() {
    let (_t, files) = data();
    let d = Daemon::start(&[]);
    let (p, content) = &files[0];
    let (status, stdout, _) = output(d.cmd("p2p-wc").args(["--format", "text", "-l"]).arg(p));
    assert_eq!(status, 0);
    // One count of one file: GNU's width is the number's own.
    let lines = content.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        stdout,
        [format!("{lines} ").as_bytes(), bytes(p), b"\n"].concat()
    );
    let (status, stdout, _) = output(d.cmd("p2p-stat").args(["--format", "text"]).arg(p));
    assert_eq!(status, 0);
    assert!(
        stdout.starts_with(&[b"  File: ", bytes(p), b"\n"].concat()),
        "{}",
        String::from_utf8_lossy(&stdout)
    );
    let (status, stdout, _) = output(d.cmd("p2p-sha256").args(["--format", "sha256sum"]).arg(p));
    assert_eq!(status, 0);
    assert_eq!(
        stdout,
        [sha256_of(content).as_bytes(), b"  ", bytes(p), b"\n"].concat()
    );
}

#[test]
fn gnu_sha256sum_checks_what_p2p_sha256_writes() {
    let (t, files) = data();
    let d = Daemon::start(&[]);
    let (status, manifest, stderr) = output(
        d.cmd("p2p-sha256")
            .args(["--format", "sha256sum"])
            .args(files.iter().map(|(p, _)| p)),
    );
    assert_eq!(status, 0, "{stderr}");
    let file = t.path().join("manifest.sha256");
    std::fs::write(&file, &manifest).unwrap();
    let gnu = Command::new("sha256sum")
        .arg("-c")
        .arg(&file)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        gnu.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&gnu.stdout),
        String::from_utf8_lossy(&gnu.stderr)
    );
    let oks = gnu
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| l.ends_with(b": OK"));
    assert_eq!(oks.count(), files.len());
}

#[test]
fn p2p_sha256_checks_what_gnu_sha256sum_writes() {
    let (t, files) = data();
    let d = Daemon::start(&[]);
    let all: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();
    let gnu = Command::new("sha256sum").args(&all).output().unwrap();
    assert!(gnu.status.success());
    assert!(gnu.stdout.contains(&b'\\'), "GNU escapes the newline name");
    let file = t.path().join("gnu.sha256");
    std::fs::write(&file, &gnu.stdout).unwrap();
    let (status, stdout, stderr) = output(d.cmd("p2p-sha256").arg("-c").arg(&file));
    assert_eq!(status, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), all.len());
    for (v, p) in lines.iter().zip(&all) {
        assert_eq!(named(v), bytes(p));
        assert_eq!(v["match"], true, "{v}");
    }
}

#[test]
fn a_missing_awkward_name_fails_readably_on_one_line() {
    let (t, _files) = data();
    let d = Daemon::start(&[]);
    let gone = t.path().join(OsStr::from_bytes(b"gone\xff\nx"));
    let (status, stdout, stderr) = output(d.cmd("p2p-wc").arg(&gone));
    assert_eq!(status, 1);
    let v = &json_lines(&stdout)[0];
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert_eq!(named(v), bytes(&gone));
    let shown = format!("{}/gone\\xFF\\nx", t.path().display());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&shown), "{stderr}");
}

/// The local protocol by hand, as `socat` would speak it.
fn ask(d: &Daemon, lines: &[String]) -> Vec<Value> {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    for l in lines {
        s.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
    let mut out = Vec::new();
    for line in BufReader::new(s).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let done = v.get("done").is_some();
        out.push(v);
        if done {
            break;
        }
    }
    out
}

#[test]
fn requests_may_name_files_by_path_b64() {
    let (_t, files) = data();
    let d = Daemon::start(&[]);
    let (p, content) = &files[1];
    let b64 = STANDARD.encode(bytes(p));
    let inline = format!(r#"{{"op":"query","kind":"sha256","paths":[{{"path_b64":"{b64}"}}]}}"#);
    let streamed = [
        r#"{"op":"query","kind":"sha256"}"#.to_string(),
        format!(r#"{{"id":0,"path_b64":"{b64}"}}"#),
        r#"{"end":true}"#.to_string(),
    ];
    for reply in [ask(&d, &[inline]), ask(&d, &streamed)] {
        let item = reply.iter().find(|v| v.get("id").is_some()).unwrap();
        assert_shape(item, p);
        check_fields("p2p-sha256", item, content);
    }
    // Bad base64 is the client's mistake, not a crash.
    let bad = [
        r#"{"op":"query","kind":"sha256"}"#.to_string(),
        r#"{"id":0,"path_b64":"%%%"}"#.to_string(),
    ];
    let reply = ask(&d, &bad);
    assert_eq!(reply.last().unwrap()["done"], true, "{reply:?}");
    assert!(reply.iter().all(|v| v.get("id").is_none()), "{reply:?}");
}

#[test]
fn other_members_find_awkward_names_over_every_placement() {
    let (t, files) = data();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let all = start_cluster(2, |_| {
        vec!["--export".into(), root.to_str().unwrap().into()]
    });
    let paths = || files.iter().map(|(p, _)| p);
    for cmd in ["p2p-wc", "p2p-sha256", "p2p-stat"] {
        for placement in [&["--peer", "node1"][..], &["--all"], &["--spread"]] {
            let (status, stdout, stderr) = output(all[0].cmd(cmd).args(placement).args(paths()));
            assert_eq!(status, 0, "{cmd} {placement:?}: {stderr}");
            let lines = json_lines(&stdout);
            let per_path = if placement == ["--all"] { 2 } else { 1 };
            assert_eq!(lines.len(), files.len() * per_path, "{cmd} {placement:?}");
            for (p, content) in &files {
                let mine: Vec<&Value> = lines.iter().filter(|v| named(v) == bytes(p)).collect();
                assert_eq!(mine.len(), per_path, "{cmd} {placement:?} {p:?}");
                for v in mine {
                    assert_shape(v, p);
                    check_fields(cmd, v, content);
                    if placement == ["--peer", "node1"] {
                        assert_eq!(v["peer"], "node1");
                    }
                }
            }
        }
    }
    // A directory that is not UTF-8, counted by both members.
    let dir = files.last().unwrap().0.parent().unwrap();
    let (status, stdout, stderr) = output(all[0].cmd("p2p-count").arg("--all").arg(dir));
    assert_eq!(status, 0, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2);
    for v in &lines {
        assert_shape(v, dir);
        assert_eq!(v["files"], 1, "{v}");
    }
    // A relative name from a directory that is not UTF-8 reaches the member
    // as the absolute bytes.
    let (status, stdout, stderr) = output(
        all[0]
            .cmd("p2p-sha256")
            .args(["--peer", "node1"])
            .arg(OsStr::from_bytes(b"f\x80"))
            .current_dir(dir),
    );
    assert_eq!(status, 0, "{stderr}");
    let v = &json_lines(&stdout)[0];
    assert_eq!(named(v), b"f\x80");
    check_fields("p2p-sha256", v, b"one\n");
    // A missing one: not_found from the member, readable on stderr.
    let gone = root.join(OsStr::from_bytes(b"gone\xff"));
    let (status, stdout, stderr) =
        output(all[0].cmd("p2p-wc").args(["--peer", "node1"]).arg(&gone));
    assert_eq!(status, 1);
    let v = &json_lines(&stdout)[0];
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert_eq!(named(v), bytes(&gone));
    assert!(stderr.contains("gone\\xFF"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_local_user_of_a_root_daemon_gets_awkward_names_over_every_placement() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !common::is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(&root, 0o755);
    let open = root.join(OsStr::from_bytes(b"pub\xe9"));
    std::fs::write(&open, b"for everyone\n").unwrap();
    mode(&open, 0o644);
    let closed = root.join(OsStr::from_bytes(b"priv\xe9"));
    std::fs::write(&closed, b"root only\n").unwrap();
    mode(&closed, 0o600);
    let d = Daemon::start(&["--name", "here", "--export", root.to_str().unwrap()]);
    common::open_to_all(&d);
    let placements: [&[&str]; 4] = [&[], &["--peer", "here"], &["--all"], &["--spread"]];
    for placement in placements {
        let nobody = || {
            let mut c = d.cmd("p2p-sha256");
            c.uid(65534).gid(65534).args(placement);
            c
        };
        let (status, stdout, stderr) = output(nobody().arg(&open));
        assert_eq!(status, 0, "{placement:?}: {stderr}");
        let v = &json_lines(&stdout)[0];
        assert_shape(v, &open);
        check_fields("p2p-sha256", v, b"for everyone\n");
        let (status, stdout, stderr) = output(nobody().arg(&closed));
        assert_eq!(status, 1, "{placement:?}");
        let v = &json_lines(&stdout)[0];
        assert_eq!(
            v["error"]["code"], "permission_denied",
            "{placement:?}: {v}"
        );
        assert_eq!(named(v), bytes(&closed));
        // p2p-sha256 quotes names in messages as GNU sha256sum does
        // ('priv'$'\351'); either way the byte is spelled out, on one line.
        assert!(
            stderr.contains("priv\\xE9") || stderr.contains("priv'$'\\351'"),
            "{stderr}"
        );
        assert!(
            !stderr.contains('\u{fffd}') && stderr.lines().count() == 1,
            "{stderr}"
        );
    }
}

#[test]
fn a_symlink_whose_target_is_not_utf8_shows_target_b64() {
    let (t, _files) = data();
    let d = Daemon::start(&[]);
    let link = t.path().join("link");
    std::os::unix::fs::symlink(OsStr::from_bytes(b"caf\xe9.txt"), &link).unwrap();
    let (status, stdout, stderr) = output(d.cmd("p2p-stat").arg(&link));
    assert_eq!(status, 0, "{stderr}");
    let v = &json_lines(&stdout)[0];
    assert_eq!(v["type"], "symlink", "{v}");
    assert_eq!(v["target"], "caf\u{fffd}.txt", "{v}");
    assert_eq!(
        STANDARD.decode(v["target_b64"].as_str().unwrap()).unwrap(),
        b"caf\xe9.txt"
    );
    let (_, text, _) = output(d.cmd("p2p-stat").args(["--format", "text"]).arg(&link));
    let first = [b"  File: ", bytes(&link), b" -> caf\xe9.txt\n"].concat();
    assert!(
        text.starts_with(&first),
        "{}",
        String::from_utf8_lossy(&text)
    );
}
