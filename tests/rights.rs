//! A daemon running as root never widens what a local user can read: not
//! through descriptors that are not open for reading, not through this
//! node's own exports, not through a directory walk past an ACL (the walk
//! is the command's own, in the caller's process). Each test performs the
//! attack as uid 65534 against a root daemon.

mod common;

use common::{Daemon, gnu_sha256, is_root, on_thread_as, open_to_all, run, write};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
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

/// A command of the package run as uid/gid 65534 with no other groups.
fn as_nobody(d: &Daemon, name: &str) -> Command {
    let mut c = d.cmd(name);
    c.uid(NOBODY).gid(NOBODY);
    c
}

/// Runs `f` on a thread of its own that has become uid/gid 65534.
fn on_a_nobody_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    on_thread_as(NOBODY, f).expect("becoming uid 65534")
}

/// Sends one streamed query with one item and its descriptor; returns the item's reply.
fn query_with_fd(d: &Daemon, kind: &str, fd: &std::fs::File) -> Value {
    let s = UnixStream::connect(&d.socket).unwrap();
    let data = format!(
        "{{\"op\":\"query\",\"kind\":\"{kind}\"}}\n{{\"id\":0,\"path\":\"x\",\"fd\":true}}\n{{\"end\":true}}\n"
    );
    p2p::fdpass::send_with_fds(&s, data.as_bytes(), &[fd.as_raw_fd()]).unwrap();
    let lines: Vec<Value> = BufReader::new(s)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    lines
        .iter()
        .find(|v| v["id"] == 0)
        .cloned()
        .unwrap_or_else(|| panic!("no item reply: {lines:?}"))
}

#[test]
fn descriptors_not_open_for_reading_are_refused_even_when_the_cache_knows_the_file() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let secret = write(d.dir.path(), "secret", b"root only\n");
    chmod(&secret, 0o600);
    // Anyone may write this one, only its owner may read it.
    let drop_box = write(d.dir.path(), "drop-box", b"written, never read\n");
    chmod(&drop_box, 0o602);
    let tree = d.dir.path().join("tree");
    write(&tree, "closed/inner", b"");
    chmod(&tree.join("closed"), 0o700);
    chmod(&tree, 0o711);

    // Root's own queries fill the cache.
    for f in [&secret, &drop_box] {
        let r = run(d.cmd("p2p-stat").arg(f));
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert!(r.stdout.contains("sha256"), "{}", r.stdout);
    }

    let replies = on_a_nobody_thread(|| {
        let o_path = |p: &Path| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(p)
                .unwrap()
        };
        let write_only = std::fs::OpenOptions::new()
            .write(true)
            .open(&drop_box)
            .unwrap();
        let tree_path = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&tree)
            .unwrap();
        vec![
            query_with_fd(&d, "stat", &o_path(&secret)),
            query_with_fd(&d, "sha256", &o_path(&secret)),
            query_with_fd(&d, "wc", &o_path(&secret)),
            query_with_fd(&d, "stat", &write_only),
            query_with_fd(&d, "count", &tree_path),
        ]
    });
    for v in &replies {
        assert_eq!(code(v), "permission_denied", "{v}");
        assert!(v.get("sha256").is_none() && v.get("files").is_none(), "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("not open for reading"), "{msg}");
    }
}

/// A directory tree below `root` for uid 65534: `public` (0644), `secret`
/// (0600), `closed/inner` (0644 in a 0700 directory).
fn exported_tree(root: &Path) {
    chmod(root, 0o755);
    write(root, "public", b"for everyone\n");
    chmod(&root.join("public"), 0o644);
    write(root, "secret", b"root only\n");
    chmod(&root.join("secret"), 0o600);
    write(root, "closed/inner", b"behind a closed door\n");
    chmod(&root.join("closed/inner"), 0o644);
    chmod(&root.join("closed"), 0o700);
}

#[test]
fn this_nodes_exports_answer_a_local_user_only_about_files_they_can_open() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    exported_tree(shared.path());
    let export = shared.path().to_str().unwrap();
    let d = Daemon::start(&["--name", "here", "--export", export]);
    open_to_all(&d);
    let public = shared.path().join("public");
    let want = gnu_sha256(&public);
    let refused = [
        shared.path().join("secret"),
        shared.path().join("closed/inner"),
    ];

    for placement in [&["--peer", "here"][..], &["--all"], &["--spread"]] {
        for f in &refused {
            let r = run(as_nobody(&d, "p2p-stat").args(placement).arg(f));
            assert!(!r.stdout.contains("sha256"), "{placement:?}: {}", r.stdout);
            let out = r.json();
            assert_eq!(out.len(), 1, "{placement:?}: {}", r.stdout);
            assert_eq!(
                code(&out[0]),
                "permission_denied",
                "{placement:?}: {}",
                out[0]
            );
            assert_eq!(r.status, 1, "{placement:?}: {}", r.stderr);
            let r = run(as_nobody(&d, "p2p-sha256").args(placement).arg(f));
            assert!(
                !r.stdout.contains("\"sha256\""),
                "{placement:?}: {}",
                r.stdout
            );
        }
        // What the caller can open still answers, from this node.
        let r = run(as_nobody(&d, "p2p-stat").args(placement).arg(&public));
        assert_eq!(r.status, 0, "{placement:?}: {} {}", r.stdout, r.stderr);
        let out = r.json();
        assert_eq!(out[0]["sha256"], want.as_str(), "{placement:?}");
        assert_eq!(out[0]["peer"], "here");
        // The daemon's own user (root here) still reads what it exports.
        for f in &refused {
            let r = run(d.cmd("p2p-sha256").args(placement).arg(f));
            assert_eq!(r.status, 0, "{placement:?}: {}", r.stderr);
            assert_eq!(r.json()[0]["sha256"], gnu_sha256(f).as_str());
        }
    }
    // An address that leads back to this node is this node too (or is
    // refused to a user who is not the daemon's: either way, no hash).
    let raw = format!("127.0.0.1:{}", d.port);
    for f in &refused {
        let r = run(as_nobody(&d, "p2p-stat").args(["--peer", &raw]).arg(f));
        assert!(!r.stdout.contains("sha256"), "{}", r.stdout);
        assert_ne!(r.status, 0, "{}", r.stdout);
    }
    // Paths outside the exports get the same refusal a remote member gives.
    let outside = write(d.dir.path(), "outside", b"x\n");
    chmod(&outside, 0o644);
    let r = run(as_nobody(&d, "p2p-wc")
        .args(["--peer", "here"])
        .arg(&outside));
    assert_eq!(code(&r.json()[0]), "not_exported", "{}", r.stdout);
    // A recursive count from this node is the one the caller's command
    // walked itself, with the caller's rights; what it could not enter is named.
    let r = run(as_nobody(&d, "p2p-count").args(["-r", "--peer", "here", export]));
    let v = &r.json()[0];
    assert_eq!(
        (v["files"].as_u64(), v["unreadable"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "p2p-count: here: '{}': Permission denied",
            shared.path().join("closed").display()
        )
    );
    // A client that brings no counts of its own gets none from the daemon.
    let reply = on_a_nobody_thread(|| {
        let dir = std::fs::File::open(shared.path()).unwrap();
        let s = UnixStream::connect(&d.socket).unwrap();
        let data = format!(
            "{{\"op\":\"query\",\"kind\":\"count\",\"recursive\":true,\"target\":{{\"peers\":[\"here\"]}}}}\n\
             {{\"id\":0,\"path\":\"{export}\",\"fd\":true}}\n{{\"end\":true}}\n"
        );
        p2p::fdpass::send_with_fds(&s, data.as_bytes(), &[dir.as_raw_fd()]).unwrap();
        BufReader::new(s)
            .lines()
            .map(|l| serde_json::from_str::<Value>(&l.unwrap()).unwrap())
            .find(|v| v["id"] == 0 || v.get("path").is_some())
    });
    let v = reply.expect("an item reply");
    assert_eq!(code(&v), "invalid_request", "{v}");
    assert!(v.get("files").is_none(), "{v}");
}

/// Gives `dir` an access ACL that denies uid 65534 everything (the
/// `system.posix_acl_access` value `setfacl -m u:65534:---` would write);
/// false when the file system takes no ACLs.
fn deny_nobody_by_acl(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 7, u32::MAX), // ACL_USER_OBJ rwx
        (0x02, 0, NOBODY),   // ACL_USER 65534 ---
        (0x04, 5, u32::MAX), // ACL_GROUP_OBJ r-x
        (0x10, 5, u32::MAX), // ACL_MASK r-x
        (0x20, 5, u32::MAX), // ACL_OTHER r-x
    ];
    let mut value = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        value.extend(tag.to_le_bytes());
        value.extend(perm.to_le_bytes());
        value.extend(id.to_le_bytes());
    }
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    r == 0
}

#[test]
fn a_recursive_count_does_not_enter_a_directory_whose_acl_denies_the_caller() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let tree = d.dir.path().join("tree");
    write(&tree, "open/f", b"");
    write(&tree, "denied/hidden1", b"");
    write(&tree, "denied/deeper/hidden2", b"");
    for dir in [&tree, &tree.join("open"), &tree.join("denied")] {
        chmod(dir, 0o755);
    }
    if !deny_nobody_by_acl(&tree.join("denied")) {
        eprintln!("skipped: this file system takes no ACLs");
        return;
    }
    // The kernel agrees: uid 65534 cannot list it.
    let ls = run(Command::new("ls")
        .arg(tree.join("denied"))
        .uid(NOBODY)
        .gid(NOBODY));
    assert_ne!(ls.status, 0, "the ACL must deny uid 65534");

    let r = run(as_nobody(&d, "p2p-count").arg("-r").arg(&tree));
    let v = &r.json()[0];
    assert_eq!(v["files"], 1, "nothing below the denied directory: {v}");
    assert_eq!(v["dirs"], 2, "{v}");
    assert_eq!(v["unreadable"], 1, "{v}");
    // Reported as find reports it, and the exit status says so.
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim_end(),
        format!(
            "p2p-count: '{}': Permission denied",
            tree.join("denied").display()
        )
    );
    // Counting the denied directory itself is refused by the client's own open.
    let r = run(as_nobody(&d, "p2p-count").arg(tree.join("denied")));
    assert_eq!(code(&r.json()[0]), "permission_denied", "{}", r.stdout);
    // Root still sees everything, and its daemon's workers are still root.
    let r = run(d.cmd("p2p-count").arg("-r").arg(&tree));
    let v = &r.json()[0];
    assert_eq!(
        (v["files"].as_u64(), v["unreadable"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
}

#[test]
fn a_recursive_count_enters_what_the_callers_groups_at_connect_time_allow() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let d = Daemon::start(&[]);
    open_to_all(&d);
    let tree = d.dir.path().join("tree");
    write(&tree, "staff/f", b"");
    write(&tree, "closed/g", b"");
    chmod(&tree, 0o755);
    nix::unistd::chown(
        &tree.join("staff"),
        None,
        Some(nix::unistd::Gid::from_raw(4242)),
    )
    .unwrap();
    chmod(&tree.join("staff"), 0o750);
    chmod(&tree.join("closed"), 0o700);
    let count_as = |groups: &str| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", groups])
            .arg(common::bin("p2p-count"))
            .arg("-r")
            .arg(&tree)
            .env("P2P_SOCKET", &d.socket);
        run(&mut c).json()[0].clone()
    };
    let v = count_as("--groups=4242");
    assert_eq!(
        (v["files"].as_u64(), v["unreadable"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let v = count_as("--clear-groups");
    assert_eq!(
        (v["files"].as_u64(), v["unreadable"].as_u64()),
        (Some(0), Some(2)),
        "{v}"
    );
}
