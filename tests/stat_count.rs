//! p2p-stat as stat users expect it (links not followed without -L, owner,
//! inode, links and times) and p2p-count -r as find users expect it (each
//! unreadable directory reported, exit 1), here and on a member below its
//! exports; a symlink loop has its own code.

mod common;

use common::{Daemon, gnu_sha256, is_root, open_to_all, run, write};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const NOBODY: u32 = 65534;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// GNU stat's view of `path` (not following a final symlink) in `format`.
fn gnu_stat(format: &str, path: &Path) -> String {
    let out = Command::new("stat")
        .arg("-c")
        .arg(format)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "stat {format} {}", path.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// Our fields in GNU stat's `%F|%i|%h|%u|%g|%U|%G|%s` form.
fn as_gnu(v: &Value) -> String {
    let kind = match v["type"].as_str().unwrap() {
        "file" => "regular file",
        "symlink" => "symbolic link",
        "directory" => "directory",
        other => other,
    };
    let name = |f: &str| v[f].as_str().unwrap_or("UNKNOWN").to_string();
    format!(
        "{kind}|{}|{}|{}|{}|{}|{}|{}",
        v["inode"],
        v["nlink"],
        v["uid"],
        v["gid"],
        name("user"),
        name("group"),
        v["size"]
    )
}

const GNU_FORMAT: &str = "%F|%i|%h|%u|%g|%U|%G|%s";

/// The times GNU stat gives, as we print them.
fn times_of(path: &Path, follow: bool) -> (String, String, String) {
    let md = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .unwrap();
    let t = |s: i64, ns: i64| p2p::ops::stat::rfc3339_utc(s, ns as u32);
    (
        t(md.atime(), md.atime_nsec()),
        t(md.mtime(), md.mtime_nsec()),
        t(md.ctime(), md.ctime_nsec()),
    )
}

fn times(v: &Value) -> (String, String, String) {
    let s = |f: &str| v[f].as_str().unwrap_or_default().to_string();
    (s("atime"), s("mtime"), s("ctime"))
}

#[test]
fn a_symlink_is_shown_as_itself_unless_dereferenced() {
    let d = Daemon::start(&[]);
    let dir = d.dir.path();
    let f = write(dir, "f", b"two words\n");
    let link = dir.join("link");
    symlink("f", &link).unwrap();
    let dangling = dir.join("dangling");
    symlink("nowhere/at/all", &dangling).unwrap();

    let r = run(d.cmd("p2p-stat").arg(&link).arg(&dangling).arg(&f));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    let (l, g, file) = (&out[0], &out[1], &out[2]);
    assert_eq!(l["type"], "symlink", "{l}");
    assert_eq!(l["target"], "f");
    assert_eq!(as_gnu(l), gnu_stat(GNU_FORMAT, &link));
    // Reading a link's target may move its atime, as for stat(1).
    let (at, mt, ct) = times_of(&link, false);
    assert_eq!((&times(l).1, &times(l).2), (&mt, &ct));
    assert!(times(l).0 <= at, "{} {at}", times(l).0);
    assert!(l.get("sha256").is_none(), "a link has no content: {l}");
    assert_eq!(g["type"], "symlink");
    assert_eq!(g["target"], "nowhere/at/all");
    assert_eq!(g["size"], 14);
    // The file itself: every field, and the content ones.
    assert_eq!(as_gnu(file), gnu_stat(GNU_FORMAT, &f));
    // Its atime is the one before our own read of it (which may move it).
    let (at, mt, ct) = times_of(&f, true);
    assert_eq!((&times(file).1, &times(file).2), (&mt, &ct));
    assert!(times(file).0 <= at, "{} {at}", times(file).0);
    assert!(file.get("target").is_none());
    assert_eq!(file["sha256"], gnu_sha256(&f));
    // Birth where the filesystem keeps it (GNU prints 0 when it does not).
    let birth = gnu_stat("%W", &f);
    assert_eq!(
        file.get("birth").is_some(),
        birth != "0",
        "{file} vs {birth}"
    );
    if let Some(b) = file["birth"].as_str() {
        let secs: i64 = birth.parse().unwrap();
        let want = p2p::ops::stat::rfc3339_utc(secs, 0);
        assert_eq!(&b[..19], &want[..19]);
    }

    // -L describes what the link points to.
    for flag in ["-L", "--dereference"] {
        let r = run(d.cmd("p2p-stat").arg(flag).arg(&link));
        assert_eq!(r.status, 0, "{}", r.stderr);
        let v = &r.json()[0];
        assert_eq!(v["type"], "file");
        assert_eq!(v["inode"], file["inode"]);
        assert_eq!(v["sha256"], gnu_sha256(&f));
        assert!(v.get("target").is_none());
    }
    let r = run(d.cmd("p2p-stat").arg("-L").arg(&dangling));
    assert_eq!(r.status, 1);
    assert_eq!(code(&r.json()[0]), "not_found");

    let r = run(d.cmd("p2p-stat").args(["--format", "text"]).arg(&link));
    assert!(
        r.stdout
            .contains(&format!("  File: {} -> f", link.display()))
    );
    assert!(r.stdout.contains("Type: symlink"), "{}", r.stdout);
    assert!(r.stdout.contains("Access: "), "{}", r.stdout);
}

#[test]
fn a_symlink_loop_has_its_own_code() {
    let d = Daemon::start(&[]);
    let a = d.dir.path().join("a");
    let b = d.dir.path().join("b");
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    for (cmd, args) in [
        ("p2p-wc", &[][..]),
        ("p2p-sha256", &[][..]),
        ("p2p-stat", &["-L"][..]),
        ("p2p-count", &["-r"][..]),
    ] {
        let r = run(d.cmd(cmd).args(args).arg(&a));
        assert_eq!(r.status, 1, "{cmd}: {}", r.stderr);
        let v = &r.json()[0];
        assert_eq!(code(v), "symlink_loop", "{cmd}: {v}");
        assert!(
            r.stderr.contains("Too many levels of symbolic links"),
            "{cmd}: {}",
            r.stderr
        );
    }
    // Without -L the link is only looked at.
    let r = run(d.cmd("p2p-stat").arg(&a));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["target"], b.to_str().unwrap());
}

#[test]
fn a_member_describes_a_symlink_below_its_export_without_following_it() {
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().canonicalize().unwrap();
    let f = write(&root, "data/f", b"inside\n");
    symlink("f", root.join("data/in")).unwrap();
    // A link out of the export is described, never opened.
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret", b"not exported\n");
    symlink(&secret, root.join("data/out")).unwrap();
    let d = Daemon::start(&["--name", "member", "--export", root.to_str().unwrap()]);
    let at = format!("127.0.0.1:{}", d.port);
    let stat = |args: &[&str], path: &Path| {
        let r = run(d.cmd("p2p-stat").args(["--peer", &at]).args(args).arg(path));
        (r.status, r.json().remove(0))
    };

    let (status, v) = stat(&[], &root.join("data/in"));
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["peer"], "member");
    assert_eq!(
        (v["type"].as_str(), v["target"].as_str()),
        (Some("symlink"), Some("f"))
    );
    assert_eq!(as_gnu(&v), gnu_stat(GNU_FORMAT, &root.join("data/in")));
    assert!(v.get("sha256").is_none());
    let (_, v) = stat(&[], &root.join("data/out"));
    assert_eq!(v["target"], secret.to_str().unwrap(), "{v}");
    assert!(v.get("sha256").is_none());

    let (status, v) = stat(&["-L"], &root.join("data/in"));
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["type"], "file");
    assert_eq!(v["sha256"], gnu_sha256(&f));
    assert_eq!(v["inode"], std::fs::metadata(&f).unwrap().ino());
    let (status, v) = stat(&["-L"], &root.join("data/out"));
    assert_eq!(status, 1);
    assert_eq!(code(&v), "not_exported", "{v}");
}

/// What GNU find says about the directories below `dir` it cannot read,
/// run as `uid` (when we are root) in the C locale, in our words.
fn find_says(dir: &Path, uid: Option<u32>) -> Vec<String> {
    let mut c = Command::new("find");
    c.arg(dir).env("LC_ALL", "C");
    if let Some(uid) = uid {
        c.uid(uid).gid(uid);
    }
    let r = run(&mut c);
    assert_eq!(r.status, 1, "find must meet an unreadable directory");
    let mut lines: Vec<String> = r
        .stderr
        .lines()
        .map(|l| l.replacen("find: ", "p2p-count: ", 1))
        .collect();
    lines.sort();
    lines
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_recursive_count_reports_each_unreadable_directory_as_find_does() {
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let tree = d.dir.path().join("tree");
    write(&tree, "open/f", b"12");
    write(&tree, "closed/hidden", b"");
    write(&tree, "open/deep/shut/hidden", b"");
    for dir in [&tree, &tree.join("open"), &tree.join("open/deep")] {
        chmod(dir, 0o755);
    }
    // As another user when we are root (root enters everything).
    let uid = is_root().then_some(NOBODY);
    let shut = if uid.is_some() { 0o700 } else { 0o000 };
    chmod(&tree.join("closed"), shut);
    chmod(&tree.join("open/deep/shut"), shut);
    let want = find_says(&tree, uid);
    assert_eq!(want.len(), 2, "{want:?}");

    let mut c = d.cmd("p2p-count");
    c.arg("-r").arg(&tree);
    if let Some(uid) = uid {
        c.uid(uid).gid(uid);
    }
    let r = run(&mut c);
    for dir in [tree.join("closed"), tree.join("open/deep/shut")] {
        chmod(&dir, 0o700);
    }
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(sorted_lines(&r.stderr), want);
    let v = &r.json()[0];
    assert_eq!(
        (
            v["files"].as_u64(),
            v["dirs"].as_u64(),
            v["unreadable"].as_u64()
        ),
        (Some(1), Some(4), Some(2)),
        "{v}"
    );
    assert!(v.get("unreadable_dirs").is_none(), "{v}");
    // With nothing unreadable the exit status is 0 and stderr stays empty.
    let r = run(d.cmd("p2p-count").arg("-r").arg(&tree));
    assert_eq!((r.status, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    assert_eq!(r.json()[0]["unreadable"], 0);
}

#[test]
fn a_member_names_the_directories_it_could_not_read() {
    if !is_root() {
        eprintln!("skipped: a daemon of another user needs root");
        return;
    }
    // The member runs as uid 65534 and exports a tree with a root-only directory.
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().canonicalize().unwrap();
    chmod(&root, 0o755);
    write(&root, "open/f", b"");
    write(&root, "open/closed/hidden", b"");
    chmod(&root.join("open"), 0o755);
    chmod(&root.join("open/closed"), 0o700);
    let member = Daemon::start_as(
        Some(NOBODY),
        0,
        &["--name", "member", "--export", root.to_str().unwrap()],
        &[("P2PD_SECRET", common::TEST_KEY)],
    );
    // Ask it through a root daemon of the same cluster.
    let d = Daemon::start(&["--join", &format!("127.0.0.1:{}", member.port)]);
    common::eventually(10, "the member is seen", || common::peers(&d).len() == 2);
    let r = run(d
        .cmd("p2p-count")
        .args(["-r", "--peer", "member"])
        .arg(&root));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(
        (v["files"].as_u64(), v["unreadable"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let closed = root.join("open/closed");
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "p2p-count: member: '{}': Permission denied",
            closed.display()
        )
    );
}

/// Gives `dir` an ACL entry for `uid` with setfacl; false when the tool or
/// the filesystem has none.
fn setfacl(dir: &Path, entry: &str) -> bool {
    match Command::new("setfacl")
        .arg("-m")
        .arg(entry)
        .arg(dir)
        .output()
    {
        Ok(o) => o.status.success(),
        Err(_) => false,
    }
}

#[test]
fn a_daemon_not_root_no_longer_refuses_a_directory_an_acl_opens_to_the_caller() {
    if !is_root() {
        eprintln!("skipped: acting as other users needs root");
        return;
    }
    // A service user's daemon in its own directory below /run, which the
    // commands trust for that user, used by a third user (65533).
    let Some(run_dir) = common::service_run_dir(NOBODY, 0o755) else {
        return;
    };
    let socket = run_dir.path().join("p2pd.sock");
    let d = Daemon::start_as(
        Some(NOBODY),
        0,
        &["--socket", socket.to_str().unwrap()],
        &[("P2PD_SECRET", common::TEST_KEY)],
    );
    chmod(&socket, 0o666);
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    write(&tree, "granted/f", b"123");
    write(&tree, "plain/g", b"");
    chmod(t.path(), 0o755);
    chmod(&tree, 0o755);
    chmod(&tree.join("plain"), 0o755);
    chmod(&tree.join("granted"), 0o700);
    if !setfacl(&tree.join("granted"), "u:65533:rx") {
        eprintln!("skipped: no setfacl, or this file system takes no ACLs");
        return;
    }
    let mut c = d.cmd("p2p-count");
    c.arg("-r").arg(&tree).uid(NOBODY - 1).gid(NOBODY - 1);
    let r = run(&mut c);
    assert_eq!(r.status, 0, "{} {}", r.stdout, r.stderr);
    let v = &r.json()[0];
    assert_eq!(
        (
            v["files"].as_u64(),
            v["bytes"].as_u64(),
            v["unreadable"].as_u64()
        ),
        (Some(2), Some(3), Some(0)),
        "the ACL lets 65533 in: {v}"
    );
    // The daemon itself (65534) may not enter it, and was never asked to.
    let mut ls = Command::new("ls");
    ls.arg(tree.join("granted")).uid(NOBODY).gid(NOBODY);
    assert_ne!(run(&mut ls).status, 0);
    // Nor does it walk for that user when handed their descriptor directly.
    let reply = common::on_thread_as(NOBODY - 1, || {
        use std::io::BufRead;
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(&tree).unwrap();
        let s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let data = "{\"op\":\"query\",\"kind\":\"count\",\"recursive\":true}\n\
                    {\"id\":0,\"path\":\"x\",\"fd\":true}\n{\"end\":true}\n";
        p2p::fdpass::send_with_fds(&s, data.as_bytes(), &[dir.as_raw_fd()]).unwrap();
        std::io::BufReader::new(s)
            .lines()
            .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
            .collect::<Vec<_>>()
    })
    .unwrap();
    let item = reply.iter().find(|v| v["id"] == 0).expect("an item reply");
    assert_eq!(code(item), "permission_denied", "{item}");
    assert!(item.get("files").is_none(), "{item}");
}

#[test]
fn this_node_describes_a_symlink_to_another_user_as_a_member_would() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let root = shared.path().canonicalize().unwrap();
    chmod(&root, 0o755);
    let f = write(&root, "f", b"shared\n");
    chmod(&f, 0o644);
    symlink("f", root.join("link")).unwrap();
    let d = Daemon::start(&["--name", "here", "--export", root.to_str().unwrap()]);
    open_to_all(&d);
    let stat = |args: &[&str]| {
        let mut c = d.cmd("p2p-stat");
        c.args(["--peer", "here"]).args(args).arg(root.join("link"));
        c.uid(NOBODY).gid(NOBODY);
        let r = run(&mut c);
        (r.status, r.json().remove(0))
    };
    let (status, v) = stat(&[]);
    assert_eq!(status, 0, "{v}");
    assert_eq!(
        (v["type"].as_str(), v["target"].as_str()),
        (Some("symlink"), Some("f"))
    );
    assert_eq!(v["peer"], "here");
    let (status, v) = stat(&["-L"]);
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["sha256"], gnu_sha256(&f));
}

#[test]
fn what_has_no_content_is_described_without_being_opened() {
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let dir = d.dir.path().join("search-only");
    std::fs::create_dir(&dir).unwrap();
    // Searchable, not listable: open(2) fails where stat(1) succeeds.
    chmod(&dir, 0o311);
    chmod(d.dir.path(), 0o755);
    let fifo = d.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut c = d.cmd("p2p-stat");
    c.arg(&dir).arg(&fifo).arg("/dev/null");
    if is_root() {
        c.uid(NOBODY).gid(NOBODY);
    }
    let r = run(&mut c);
    chmod(&dir, 0o755);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    let kinds: Vec<&str> = out.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["directory", "fifo", "char_device"]);
    assert_eq!(as_gnu(&out[0]), gnu_stat(GNU_FORMAT, &dir));
    assert!(out.iter().all(|v| v.get("sha256").is_none()));
}
