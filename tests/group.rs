//! `--group` (identical answers folded, `clush -b` blocks in text), the
//! roll call of members on stderr at the end of a text query, and the fleet
//! `--check`, on loopback clusters whose members see different files at the
//! same path.

mod common;

use common::{Daemon, gnu_sha256, run, write};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Files two ways: members exporting `e` while it points to `a` see one
/// version, those started while it points to `b` the other. Both have
/// `same` (identical) and `h` (identical), `f` differs, `g` is only in `a`,
/// `d` has two files in `a` and one in `b`, `s` is an empty directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for side in ["a", "b"] {
            let root = t.join(side);
            write(&root, "same", b"same\n");
            write(&root, "h", b"h\n");
            write(&root, "d/x", b"x");
            std::fs::create_dir_all(root.join("s")).unwrap();
        }
        write(&t.join("a"), "f", b"one\n");
        write(&t.join("b"), "f", b"two two\n");
        write(&t.join("a"), "g", b"g\n");
        write(&t.join("a"), "d/y", b"yy");
        Tree { dir }
    }

    /// The path every member is asked about: below the export `e`.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("e").join(name)
    }

    /// Points `e` at `side`; a member started now exports what is there.
    fn point_to(&self, side: &str) {
        let tmp = self.dir.path().join("e.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(self.dir.path().join(side), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("e")).unwrap();
    }
}

/// Members node0.. exporting `tree`'s `e`: those in `on_b` see side b, the
/// others side a. Returned once every one sees all as alive.
fn cluster(tree: &Tree, n: usize, on_b: &[usize]) -> Vec<Daemon> {
    let export = tree.dir.path().join("e");
    // Each member resolves the symlink as it starts, just before it.
    common::start_cluster(n, |i| {
        tree.point_to(if on_b.contains(&i) { "b" } else { "a" });
        vec!["--export".into(), export.to_str().unwrap().into()]
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `--peer node0 --peer node1 ...` for `n` members.
fn every_peer(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|i| ["--peer".into(), format!("node{i}")])
        .collect()
}

fn sha(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    gnu_sha256(&write(dir.path(), "x", data))
}

/// A manifest of `same`, `f`, `g` and `h` with side a's digests.
fn manifest(tree: &Tree) -> PathBuf {
    let mut text = String::new();
    for (name, body) in [
        ("same", &b"same\n"[..]),
        ("f", b"one\n"),
        ("g", b"g\n"),
        ("h", b"h\n"),
    ] {
        text.push_str(&format!("{}  {}\n", sha(body), s(&tree.path(name))));
    }
    write(tree.dir.path(), "SHA256SUMS", text.as_bytes())
}

#[test]
fn group_folds_identical_answers_of_every_query_command() {
    let tree = Tree::new();
    let _all = cluster(&tree, 4, &[3]);
    let d = &_all[0];
    let f = tree.path("f");

    // sha256: the three that agree, then the odd one; exit 1 as they differ.
    let r = run(d.cmd("p2p-sha256").args(["--all", "--group", s(&f)]));
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.json(),
        [
            json!({"path": s(&f), "sha256": sha(b"one\n"), "bytes": 4, "count": 3,
                   "peers": ["node0", "node1", "node2"]}),
            json!({"path": s(&f), "sha256": sha(b"two two\n"), "bytes": 8, "count": 1,
                   "peers": ["node3"]}),
        ]
    );

    // A file every member has the same: one line, exit 0.
    let same = tree.path("same");
    let r = run(d.cmd("p2p-sha256").args(["--all", "--group", s(&same)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["count"], 4);
    assert_eq!(
        lines[0]["peers"],
        json!(["node0", "node1", "node2", "node3"])
    );

    // Text: clush -b blocks, names folded, then the command's own text.
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--all", "--group", "--format", "text", s(&f)]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "---------------\nnode[0-2] (3)\n---------------\n{}  {}\n\
             ---------------\nnode3 (1)\n---------------\n{}  {}\n",
            sha(b"one\n"),
            s(&f),
            sha(b"two two\n"),
            s(&f)
        )
    );

    // wc, with only the counts asked for (the line counts agree though the
    // bytes differ: exit 0); several paths, in byte order.
    let r = run(d
        .cmd("p2p-wc")
        .args(["-l", "--all", "--group", s(&same), s(&f)]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let every = json!(["node0", "node1", "node2", "node3"]);
    assert_eq!(
        r.json(),
        [
            json!({"path": s(&f), "lines": 1, "count": 4, "peers": every}),
            json!({"path": s(&same), "lines": 1, "count": 4, "peers": every}),
        ]
    );
    let r = run(d
        .cmd("p2p-wc")
        .args(["--all", "--group", "--format", "text", s(&f)]));
    assert_eq!(
        r.stdout,
        format!(
            "---------------\nnode[0-2] (3)\n---------------\n1 1 4 {0}\n\
             ---------------\nnode3 (1)\n---------------\n1 2 8 {0}\n",
            s(&f)
        )
    );

    // count: two files in a's d, one in b's.
    let dir = tree.path("d");
    let r = run(d.cmd("p2p-count").args(["--all", "--group", s(&dir)]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(
        (lines[0]["files"].clone(), lines[0]["count"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(
        (lines[1]["files"].clone(), lines[1]["peers"].clone()),
        (json!(1), json!(["node3"]))
    );

    // stat: a directory nobody reads, one inode each side.
    let sdir = tree.path("s");
    let r = run(d.cmd("p2p-stat").args(["--all", "--group", s(&sdir)]));
    let lines = r.json();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert_eq!(lines[0]["peers"], json!(["node0", "node1", "node2"]));
    assert_eq!(lines[0]["type"], "directory");
    assert_eq!(lines[1]["peers"], json!(["node3"]));

    // --spread is accepted: each path has one answer, count 1.
    let r = run(d.cmd("p2p-sha256").args(["--spread", "--group", s(&same)]));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let lines = r.json();
    assert_eq!((lines.len(), lines[0]["count"].clone()), (1, json!(1)));
}

#[test]
fn group_and_roll_call_name_a_killed_member_by_its_error() {
    let tree = Tree::new();
    let mut all = cluster(&tree, 5, &[3]);
    drop(all.pop());
    let d = &all[0];
    let f = tree.path("f");

    let r = run(d
        .cmd("p2p-wc")
        .args(every_peer(5))
        .args(["--group", "--timeout", "3", s(&f)]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert_eq!(lines[0]["peers"], json!(["node0", "node1", "node2"]));
    // Ties: the answer before the failure.
    assert_eq!(lines[1]["peers"], json!(["node3"]));
    assert_eq!(lines[1]["words"], 2);
    assert_eq!(lines[2]["peers"], json!(["node4"]));
    assert_eq!(lines[2]["count"], 1);
    assert_eq!(lines[2]["error"]["code"], "unreachable", "{}", r.stdout);

    // Without --group, text ends with the roll call on stderr.
    let r = run(d.cmd("p2p-sha256").args(every_peer(5)).args([
        "--format",
        "text",
        "--timeout",
        "3",
        s(&f),
    ]));
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    assert_eq!(
        r.stderr.lines().last(),
        Some("p2p-sha256: asked 5 members (node[0-4]): 4 answered, 1 failed (unreachable: node4)"),
        "{}",
        r.stderr
    );
    // JSON output has no roll call.
    let r = run(d
        .cmd("p2p-sha256")
        .args(every_peer(5))
        .args(["--timeout", "3", s(&f)]));
    assert!(!r.stderr.contains("asked"), "{}", r.stderr);
}

#[test]
fn fleet_check_reports_failures_and_a_summary_per_member() {
    let tree = Tree::new();
    let all = cluster(&tree, 4, &[3]);
    let d = &all[0];
    let sums = manifest(&tree);
    let (f, g) = (tree.path("f"), tree.path("g"));

    let r = run(d.cmd("p2p-sha256").args(["--check", "--all", s(&sums)]));
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("failed").is_some_and(Value::is_string))
        .collect();
    assert_eq!(failures.len(), 2, "{}", r.stdout);
    let of = |path: &Path| {
        *failures
            .iter()
            .find(|l| l["path"] == s(path))
            .unwrap_or_else(|| panic!("no failure for {path:?}: {}", r.stdout))
    };
    assert_eq!(
        of(&f),
        &json!({"peer": "node3", "path": s(&f), "failed": "mismatch",
                "sha256": sha(b"two two\n"), "expected": sha(b"one\n")})
    );
    assert_eq!(of(&g)["peer"], "node3");
    assert_eq!(of(&g)["failed"], "missing");
    assert_eq!(of(&g)["error"]["code"], "not_found");
    // Then a summary per member, in name order.
    let summaries: Vec<&Value> = lines.iter().filter(|l| l.get("ok").is_some()).collect();
    let want: Vec<Value> = (0..4)
        .map(|i| {
            let (ok, failed, missing) = if i == 3 { (2, 1, 1) } else { (4, 0, 0) };
            json!({"peer": format!("node{i}"), "manifest": s(&sums), "ok": ok,
                   "failed": failed, "missing": missing})
        })
        .collect();
    assert_eq!(summaries, want.iter().collect::<Vec<_>>());

    // Text: GNU-like failure lines and a summary per member.
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--check", "--all", "--format", "text", s(&sums)]));
    assert_eq!(r.status, 1);
    let mut out: Vec<&str> = r.stdout.lines().collect();
    let summaries = out.split_off(2);
    out.sort();
    assert_eq!(
        out,
        [
            format!("node3: {}: FAILED", s(&f)),
            format!("node3: {}: FAILED open or read", s(&g)),
        ]
    );
    assert_eq!(
        summaries,
        [
            format!("node0: {}: 4 OK, 0 FAILED, 0 missing", s(&sums)),
            format!("node1: {}: 4 OK, 0 FAILED, 0 missing", s(&sums)),
            format!("node2: {}: 4 OK, 0 FAILED, 0 missing", s(&sums)),
            format!("node3: {}: 2 OK, 1 FAILED, 1 missing", s(&sums)),
        ]
    );
    assert!(r.stderr.contains("node3: "), "{}", r.stderr);

    // --quiet: only the members that fail; --status: nothing; both exit 1.
    let r = run(d.cmd("p2p-sha256").args([
        "--check",
        "--all",
        "--quiet",
        "--format",
        "text",
        s(&sums),
    ]));
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(
        r.stdout
            .ends_with(&format!("node3: {}: 2 OK, 1 FAILED, 1 missing\n", s(&sums)))
    );
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--check", "--all", "--status", s(&sums)]));
    assert_eq!((r.status, r.stdout.as_str()), (1, ""));

    // --ignore-missing: g is no failure, but f still is.
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--check", "--all", "--ignore-missing", s(&sums)]));
    assert_eq!(r.status, 1);
    let failed: Vec<Value> = r.json().into_iter().map(|l| l["failed"].clone()).collect();
    assert!(failed.contains(&json!("mismatch")), "{}", r.stdout);
    assert!(!failed.contains(&json!("missing")), "{}", r.stdout);

    // A manifest every member matches: exit 0, no failure line.
    let agreed = write(
        tree.dir.path(),
        "AGREED",
        format!("{}  {}\n", sha(b"h\n"), s(&tree.path("h"))).as_bytes(),
    );
    let r = run(d.cmd("p2p-sha256").args(["--check", "--all", s(&agreed)]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json().len(), 4, "{}", r.stdout);
}

#[test]
fn fleet_check_group_folds_members_with_the_same_failures() {
    let tree = Tree::new();
    let mut all = cluster(&tree, 5, &[3]);
    drop(all.pop());
    let d = &all[0];
    let sums = manifest(&tree);
    let (f, g) = (tree.path("f"), tree.path("g"));

    let r = run(d
        .cmd("p2p-sha256")
        .args(["--check", "--group", "--timeout", "3", s(&sums)])
        .args(every_peer(5)));
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    let lines = r.json();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert_eq!(lines[0]["peers"], json!(["node0", "node1", "node2"]));
    assert_eq!(
        (lines[0]["count"].clone(), lines[0]["ok"].clone()),
        (json!(3), json!(4))
    );
    assert_eq!(lines[0]["failures"], json!([]));
    assert_eq!(lines[1]["peers"], json!(["node3"]));
    let failed: Vec<(Value, Value)> = lines[1]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["path"].clone(), x["failed"].clone()))
        .collect();
    assert_eq!(
        failed,
        [
            (json!(s(&f)), json!("mismatch")),
            (json!(s(&g)), json!("missing"))
        ]
    );
    assert_eq!(lines[2]["peers"], json!(["node4"]));
    assert_eq!(lines[2]["failed"], 4);
    assert!(
        lines[2]["failures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["failed"] == "unreachable"),
        "{}",
        r.stdout
    );

    // On this host there are no members to fold: refused, exit 2.
    let r = run(d.cmd("p2p-sha256").args(["--check", "--group", s(&sums)]));
    assert_eq!(r.status, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--all or --peer"), "{}", r.stderr);

    // Text: a clush -b block per set of members.
    let r = run(d
        .cmd("p2p-sha256")
        .args([
            "--check",
            "--group",
            "--format",
            "text",
            "--timeout",
            "3",
            s(&sums),
        ])
        .args(every_peer(4)));
    assert_eq!(r.status, 1);
    let first = format!(
        "---------------\nnode[0-2] (3)\n---------------\n{}: 4 OK, 0 FAILED, 0 missing\n",
        s(&sums)
    );
    assert!(r.stdout.starts_with(&first), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!(
            "---------------\nnode3 (1)\n---------------\n{}: FAILED\n",
            s(&f)
        )),
        "{}",
        r.stdout
    );
}
