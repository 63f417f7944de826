//! `p2p-sha256` as a drop-in for GNU `sha256sum` (coreutils 9.11): the
//! facts of coreutils' tests/cksum/ (sha256sum.pl, md5sum.pl, md5sum-bsd.sh,
//! md5sum-newline.pl, cksum-c.sh, cksum-base64*) and uutils' sha256sum tests,
//! case by case, with our binary's name in the messages; and round trips
//! through the local GNU `sha256sum -c` both ways.
//!
//! Debian 12's sha256sum is 9.1: since 9.11 `-c` quotes names in its
//! `NAME: OK` lines as shell words (`'a b': OK`), so those lines are pinned
//! by value here and compared with the local tool only where the two agree.

mod common;

use common::{Daemon, Run, run};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const EMPTY_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
const A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
const TRY: &str = "Try 'p2p-sha256 --help' for more information.\n";

/// `p2p-sha256 ARGS` in `dir`, in sha256sum's text form unless told otherwise.
fn sha(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    run(d.cmd("p2p-sha256").args(args).current_dir(dir))
}

/// The same, with `input` on standard input.
fn sha_in(d: &Daemon, dir: &Path, args: &[&str], input: &[u8]) -> Run {
    let mut c = d.cmd("p2p-sha256");
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn file(dir: &Path, name: impl AsRef<OsStr>, content: &[u8]) {
    std::fs::write(dir.join(name.as_ref()), content).unwrap();
}

fn setup() -> (Daemon, tempfile::TempDir) {
    (Daemon::start(&[]), tempfile::tempdir().unwrap())
}

fn assert_run(r: &Run, status: i32, stdout: &str, stderr: &str) {
    assert_eq!(
        (r.status, r.stdout.as_str(), r.stderr.as_str()),
        (status, stdout, stderr)
    );
}

fn gnu_present() -> bool {
    Command::new("sha256sum").arg("--version").output().is_ok()
}

/// sha256sum.pl s1-s4 and s8 (with --text, as the suite runs them).
#[test]
fn digests_of_the_test_vectors() {
    let (d, t) = setup();
    let dir = t.path();
    let cases: [(&[u8], &str); 5] = [
        (b"", EMPTY),
        (b"a", A),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            &[b'a'; 1_000_000],
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ),
    ];
    for (content, hex) in cases {
        file(dir, "f", content);
        assert_run(
            &sha(&d, dir, &["--text", "f"]),
            0,
            &format!("{hex}  f\n"),
            "",
        );
    }
}

/// md5sum.pl backslash-1..3, md5sum-bsd.sh's tagged example, and the
/// output flags: -b, -t, --tag, and the --format they select.
#[test]
fn lines_mark_modes_and_escape_names() {
    let (d, t) = setup();
    let dir = t.path();
    for name in [".\nfoo", ".\\foo", ".\rfoo", "test\n\\\\file", "f"] {
        file(dir, name, b"");
    }
    let r = sha(&d, dir, &["--text", ".\nfoo", ".\\foo", ".\rfoo"]);
    let want = format!("\\{EMPTY}  .\\nfoo\n\\{EMPTY}  .\\\\foo\n\\{EMPTY}  .\\rfoo\n");
    assert_run(&r, 0, &want, "");
    let r = sha(&d, dir, &["--tag", "test\n\\\\file", "f"]);
    let want = format!("\\SHA256 (test\\n\\\\\\\\file) = {EMPTY}\nSHA256 (f) = {EMPTY}\n");
    assert_run(&r, 0, &want, "");
    assert_run(&sha(&d, dir, &["-b", "f"]), 0, &format!("{EMPTY} *f\n"), "");
    assert_run(
        &sha(&d, dir, &["-b", "-t", "f"]),
        0,
        &format!("{EMPTY}  f\n"),
        "",
    );
    // Without those flags the default stays JSON lines.
    let r = sha(&d, dir, &["f"]);
    assert_eq!(r.json()[0]["sha256"], EMPTY);
    // The text format prints the same lines.
    let r = sha(&d, dir, &["--format", "text", "--tag", "f"]);
    assert_run(&r, 0, &format!("SHA256 (f) = {EMPTY}\n"), "");
}

/// md5sum-newline.pl: -z ends lines with NUL and escapes nothing.
#[test]
fn zero_ends_lines_with_nul_unescaped() {
    let (d, t) = setup();
    let dir = t.path();
    file(dir, "a\nb", b"");
    let r = sha(&d, dir, &["--text", "--zero", "a\nb"]);
    assert_run(&r, 0, &format!("{EMPTY}  a\nb\0"), "");
    let r = sha(&d, dir, &["-z", "--tag", "a\nb"]);
    assert_run(&r, 0, &format!("SHA256 (a\nb) = {EMPTY}\0"), "");
}

/// md5sum.pl check-ignore-missing-4, md5sum-bsd.sh's --tag cases,
/// cksum-c.sh's --tag --check, uutils' test_conflicting_arg: GNU's words,
/// its hint, status 1.
#[test]
fn refused_combinations_say_what_gnu_says() {
    let (d, t) = setup();
    let dir = t.path();
    file(dir, "f", b"");
    let cases: [(&[&str], &str); 11] = [
        (
            &["--ignore-missing", "f"],
            "the --ignore-missing option is meaningful only when verifying checksums",
        ),
        (
            &["--status", "f"],
            "the --status option is meaningful only when verifying checksums",
        ),
        (
            &["--warn", "f"],
            "the --warn option is meaningful only when verifying checksums",
        ),
        (
            &["--quiet", "f"],
            "the --quiet option is meaningful only when verifying checksums",
        ),
        (
            &["--strict", "f"],
            "the --strict option is meaningful only when verifying checksums",
        ),
        (
            &["--status", "-w", "f"],
            "the --warn option is meaningful only when verifying checksums",
        ),
        (
            &["--tag", "--text", "f"],
            "--tag does not support --text mode",
        ),
        (
            &["--text", "--tag", "f"],
            "--tag does not support --text mode",
        ),
        (
            &["--tag", "--check", "/dev/null"],
            "the --tag option is meaningless when verifying checksums",
        ),
        (
            &["-z", "-c", "/dev/null"],
            "the --zero option is not supported when verifying checksums",
        ),
        (
            &["-b", "-c", "/dev/null"],
            "the --binary and --text options are meaningless when verifying checksums",
        ),
    ];
    for (args, message) in cases {
        let r = sha(&d, dir, args);
        assert_run(&r, 1, "", &format!("p2p-sha256: {message}\n{TRY}"));
    }
    // -b after -t wins, so --tag is fine.
    let r = sha(&d, dir, &["-t", "-b", "--tag", "f"]);
    assert_run(&r, 0, &format!("SHA256 (f) = {EMPTY}\n"), "");
}

/// md5sum.pl check-1, check-windows, ck-strict-1/2, check-2, check-quiet1/2,
/// check-multifail(-warn, -state).
#[test]
fn check_reports_as_gnu_reports() {
    let (d, t) = setup();
    let dir = t.path();
    let check = |args: &[&str], sums: &str| {
        file(dir, "f.sha256", sums.as_bytes());
        let mut a = vec!["--format", "text", "--check"];
        a.extend_from_slice(args);
        a.push("f.sha256");
        sha(&d, dir, &a)
    };
    file(dir, "f", b"");
    assert_run(&check(&[], &format!("{EMPTY}  f\n")), 0, "f: OK\n", "");
    assert_run(&check(&[], &format!("{EMPTY}  f\r\n")), 0, "f: OK\n", "");
    assert_run(
        &check(&["--strict"], &format!("{EMPTY}  f\n\n")),
        0,
        "f: OK\n",
        "",
    );
    assert_run(
        &check(&["--strict"], &format!("ERR\n{EMPTY}  f\n")),
        1,
        "f: OK\n",
        "p2p-sha256: WARNING: 1 line is improperly formatted\n",
    );
    // Without --strict a malformed line is only a warning.
    assert_run(
        &check(&[], &format!("ERR\n{EMPTY}  f\n")),
        0,
        "f: OK\n",
        "p2p-sha256: WARNING: 1 line is improperly formatted\n",
    );
    assert_run(&check(&["--quiet"], &format!("{EMPTY}  f\n")), 0, "", "");
    file(dir, "f", b"foo");
    assert_run(&check(&["--status"], &format!("{EMPTY}  f\n")), 1, "", "");
    assert_run(
        &check(&["--quiet"], &format!("{EMPTY}  f\n")),
        1,
        "f: FAILED\n",
        "p2p-sha256: WARNING: 1 computed checksum did NOT match\n",
    );
    let sums = format!("{EMPTY}  f\n{EMPTY}  f\ninvalid\n");
    assert_run(
        &check(&[], &sums),
        1,
        "f: FAILED\nf: FAILED\n",
        "p2p-sha256: WARNING: 1 line is improperly formatted\n\
         p2p-sha256: WARNING: 2 computed checksums did NOT match\n",
    );
    assert_run(
        &check(&["--warn"], &sums),
        1,
        "f: FAILED\nf: FAILED\n",
        "p2p-sha256: f.sha256: 3: improperly formatted SHA256 checksum line\n\
         p2p-sha256: WARNING: 1 line is improperly formatted\n\
         p2p-sha256: WARNING: 2 computed checksums did NOT match\n",
    );
    file(dir, "f", b"");
    file(dir, "g", b"a");
    assert_run(
        &check(
            &["--warn"],
            &format!("{EMPTY}  f\n{EMPTY}  g\n{EMPTY}  f\n"),
        ),
        1,
        "f: OK\ng: FAILED\nf: OK\n",
        "p2p-sha256: WARNING: 1 computed checksum did NOT match\n",
    );
    // The last of --status, --warn and --quiet wins (cksum-c.sh).
    let bad = format!("{EMPTY}  g\nbad line\n");
    assert_run(&check(&["--warn", "--status"], &bad), 1, "", "");
    assert_run(
        &check(&["--status", "--warn"], &bad),
        1,
        "g: FAILED\n",
        "p2p-sha256: f.sha256: 2: improperly formatted SHA256 checksum line\n\
         p2p-sha256: WARNING: 1 line is improperly formatted\n\
         p2p-sha256: WARNING: 1 computed checksum did NOT match\n",
    );
}

/// md5sum.pl check-bsd*, check-openssl*, bsd-segv, nul-in-cksum; cksum-c.sh's
/// leading " \" and awkward names; cksum-base64's digests; comments.
#[test]
fn check_reads_every_form_gnu_reads() {
    let (d, t) = setup();
    let dir = t.path();
    file(dir, "f", b"");
    file(dir, "abc (f) = abc", b"");
    let check = |sums: &[u8]| {
        file(dir, "sums", sums);
        sha(&d, dir, &["--format", "text", "-c", "sums"])
    };
    let none = "p2p-sha256: sums: no properly formatted checksum lines found\n";
    for good in [
        format!("SHA256 (f) = {EMPTY}\n"),
        format!("SHA256(f)= {EMPTY}\n"),
        format!(" \\SHA256 (f) = {EMPTY}\n"),
        format!(" \t{EMPTY}  f\n"),
        format!("# Very important comment\n{}  f\n", EMPTY.to_uppercase()),
        format!("{EMPTY_B64}  f\n"),
        format!("SHA256 (f) = {EMPTY_B64}\n"),
    ] {
        assert_run(&check(good.as_bytes()), 0, "f: OK\n", "");
    }
    let r = check(format!("SHA256 (abc (f) = abc) = {EMPTY}\n").as_bytes());
    assert_run(&r, 0, "'abc (f) = abc': OK\n", "");
    for bad in [
        format!("SHA1 (f) = {EMPTY}\n"),
        format!("SHA1(f)= {EMPTY}\n"),
        "SHA256 (".to_string(),
        format!("{}  h\n", "\0".repeat(64)),
        format!("{}  f\n", &EMPTY_B64[..43]),
    ] {
        assert_run(&check(bad.as_bytes()), 1, "", none);
    }
    file(dir, "f", b"bar");
    assert_run(
        &run(d
            .cmd("p2p-sha256")
            .args(["--format", "text", "-c", "--status", "sums"])
            .current_dir(dir)),
        1,
        "",
        none,
    );
    let r = check(format!("SHA256(f)= {EMPTY}\n").as_bytes());
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "f: FAILED\n");
}

/// md5sum.pl check-ignore-missing-1..6; cksum-c.sh's missing files.
#[test]
fn ignore_missing_and_unreadable_files() {
    let (d, t) = setup();
    let dir = t.path();
    file(dir, "f", b"");
    let check = |args: &[&str], sums: &str| {
        file(dir, "f.sha256", sums.as_bytes());
        let mut a = vec!["--format", "text", "--check"];
        a.extend_from_slice(args);
        a.push("f.sha256");
        sha(&d, dir, &a)
    };
    let two = format!("{EMPTY}  f\n{EMPTY}  f.missing\n");
    assert_run(&check(&["--ignore-missing"], &two), 0, "f: OK\n", "");
    let r = check(
        &["--quiet", "--ignore-missing"],
        &format!("{EMPTY}  missing/f\n{EMPTY}  f\n"),
    );
    assert_run(&r, 0, "", "");
    let r = check(&["--ignore-missing"], &format!("{EMPTY}  missing\n"));
    assert_run(&r, 1, "", "p2p-sha256: f.sha256: no file was verified\n");
    let r = check(
        &["--ignore-missing", "--status"],
        &format!("{EMPTY}  missing\n"),
    );
    assert_run(&r, 1, "", "");
    // Without --ignore-missing: the error, the FAILED line, the warning.
    let r = check(&[], &two);
    assert_run(
        &r,
        1,
        "f: OK\nf.missing: FAILED open or read\n",
        "p2p-sha256: f.missing: No such file or directory\n\
         p2p-sha256: WARNING: 1 listed file could not be read\n",
    );
    std::fs::create_dir(dir.join("a dir")).unwrap();
    let r = check(&["--status"], &format!("{EMPTY}  a dir\n"));
    assert_run(&r, 1, "", "p2p-sha256: 'a dir': Is a directory\n");
    // Two unreadable files: the plural.
    let r = check(&[], &format!("{EMPTY}  x\n{EMPTY}  y\n"));
    assert_eq!(r.status, 1);
    assert!(
        r.stderr
            .ends_with("p2p-sha256: WARNING: 2 listed files could not be read\n"),
        "{}",
        r.stderr
    );
}

/// cksum-c.sh: several check files, missing and empty ones, each judged
/// on its own; `-` and no operand read the check file from standard input.
#[test]
fn several_check_files_and_standard_input() {
    let (d, t) = setup();
    let dir = t.path();
    file(dir, "f", b"");
    file(dir, "good", format!("{EMPTY}  f\n").as_bytes());
    file(dir, "empty-1", b"");
    let r = sha(
        &d,
        dir,
        &[
            "--format",
            "text",
            "-c",
            "good",
            "non-existing-1",
            "empty-1",
            "good",
        ],
    );
    assert_run(
        &r,
        1,
        "f: OK\nf: OK\n",
        "p2p-sha256: non-existing-1: No such file or directory\n\
         p2p-sha256: empty-1: no properly formatted checksum lines found\n",
    );
    let r = sha(&d, dir, &["--format", "text", "-c", "good", "good"]);
    assert_run(&r, 0, "f: OK\nf: OK\n", "");
    let r = sha(&d, dir, &["--format", "text", "-c", "."]);
    assert_run(&r, 1, "", "p2p-sha256: .: read error\n");
    let sums = format!("{EMPTY}  f\n");
    for args in [
        &["--format", "text", "-c"][..],
        &["--format", "text", "-c", "-"],
    ] {
        assert_run(&sha_in(&d, dir, args, sums.as_bytes()), 0, "f: OK\n", "");
    }
    let r = sha_in(&d, dir, &["--format", "text", "-c", "-w"], b"junk\n");
    assert_run(
        &r,
        1,
        "",
        "p2p-sha256: 'standard input': 1: improperly formatted SHA256 checksum line\n\
         p2p-sha256: 'standard input': no properly formatted checksum lines found\n",
    );
    // A name - in a check file read from elsewhere is standard input.
    file(dir, "dash", format!("{A}  -\n").as_bytes());
    let r = sha_in(&d, dir, &["--format", "text", "-c", "dash"], b"a");
    assert_run(&r, 0, "-: OK\n", "");
    // No operand, or -, digests standard input under the name -.
    assert_run(
        &sha_in(&d, dir, &["--tag"], b"a"),
        0,
        &format!("SHA256 (-) = {A}\n"),
        "",
    );
    assert_run(
        &sha_in(&d, dir, &["-b", "-"], b"a"),
        0,
        &format!("{A} *-\n"),
        "",
    );
    // A check file read from standard input cannot name standard input.
    let r = sha_in(
        &d,
        dir,
        &["--format", "text", "-c"],
        format!("{EMPTY}  -\n").as_bytes(),
    );
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("no properly formatted"), "{}", r.stderr);
}

/// md5sum-bsd.sh: BSD's one-space form, decided by the first line; names
/// with leading spaces and stars; tagged names with escapes, and 9.11's
/// quoting of them in the OK lines.
#[test]
fn bsd_forms_and_awkward_names() {
    let (d, t) = setup();
    let dir = t.path();
    let names = ["a", " b", "*c", "dd", " "];
    let mut text = String::new();
    let mut tagged = String::new();
    for n in names {
        file(dir, n, format!("{n}\n").as_bytes());
        let r = sha(&d, dir, &["--text", n]);
        assert_eq!(r.status, 0, "{}", r.stderr);
        text.push_str(&r.stdout);
        tagged.push_str(&sha(&d, dir, &["--tag", n]).stdout);
    }
    // sed 's/  / /': BSD's one-space form.
    let one_space: String = text
        .lines()
        .map(|l| l.replacen("  ", " ", 1) + "\n")
        .collect();
    let ok = "a: OK\n' b': OK\n'*c': OK\ndd: OK\n' ': OK\n";
    for sums in [&text, &one_space, &tagged] {
        file(dir, "sums", sums.as_bytes());
        assert_run(
            &sha(&d, dir, &["--format", "text", "--strict", "-c", "sums"]),
            0,
            ok,
            "",
        );
    }
    file(
        dir,
        "sums",
        format!("____not_all_hex_so_no_match_____ blah\n{text}").as_bytes(),
    );
    let r = sha(&d, dir, &["--format", "text", "-c", "sums"]);
    assert_run(
        &r,
        0,
        ok,
        "p2p-sha256: WARNING: 1 line is improperly formatted\n",
    );
    // Without the first line, the two-space form is read plainly: " b" is "b".
    let rest: String = one_space
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    file(dir, "sums", rest.as_bytes());
    assert_eq!(
        sha(&d, dir, &["--format", "text", "--strict", "-c", "sums"]).status,
        1
    );

    let mut tagged = String::new();
    for n in ["a\\b", "a\\", "\\a", "a\nb", "a\tb"] {
        file(dir, n, b"");
        tagged.push_str(&sha(&d, dir, &["--tag", n]).stdout);
    }
    file(dir, "sums", tagged.as_bytes());
    let r = sha(&d, dir, &["--format", "text", "--strict", "-c", "sums"]);
    assert_run(
        &r,
        0,
        "'a\\b': OK\n'a\\': OK\n'\\a': OK\n'a'$'\\n''b': OK\n'a'$'\\t''b': OK\n",
        "",
    );
}

/// Names that are not UTF-8 in a check file: read as bytes, the files
/// found, the names quoted; a bad line beside them does not refuse the file.
#[test]
fn check_names_that_are_not_utf8() {
    let (d, t) = setup();
    let dir = t.path();
    let name = OsStr::from_bytes(b"caf\xe9 \xff");
    file(dir, name, b"");
    let mut sums = format!("{EMPTY}  ").into_bytes();
    sums.extend_from_slice(name.as_bytes());
    sums.extend_from_slice(b"\nnot a line\nSHA256 (");
    sums.extend_from_slice(name.as_bytes());
    sums.extend_from_slice(format!(") = {EMPTY}\n").as_bytes());
    file(dir, "sums", &sums);
    let r = sha(&d, dir, &["--format", "text", "-c", "sums"]);
    assert_run(
        &r,
        0,
        "'caf'$'\\351'' '$'\\377': OK\n'caf'$'\\351'' '$'\\377': OK\n",
        "p2p-sha256: WARNING: 1 line is improperly formatted\n",
    );
    let r = sha(&d, dir, &["-c", "sums"]);
    let out = r.json();
    assert_eq!(out.len(), 2, "{}", r.stdout);
    assert!(
        out.iter()
            .all(|v| v["match"] == true && v["expected"] == EMPTY)
    );
}

/// Messages name files as GNU's do (quotef): the same words as the local
/// sha256sum for a missing file, for names where 9.1 and 9.11 agree.
#[test]
fn messages_quote_names_as_gnu_does() {
    if !gnu_present() {
        eprintln!("no sha256sum: skipped");
        return;
    }
    let (d, t) = setup();
    let dir = t.path();
    for name in [
        "plain",
        "a b",
        "a:b",
        "it's",
        "x$y",
        "a\nb",
        "tab\tend",
        "caf\u{e9}",
        "#x",
        "a#",
        "~",
        "{",
        "a;b",
        "q?",
        "back\\slash",
        "a\u{1}b",
        "\u{85}",
        "\"dq\"",
        "it's a \"test\"",
    ] {
        let path = format!("{name}/missing");
        let ours = sha(&d, dir, &["--format", "sha256sum", &path]);
        let gnu = run(Command::new("sha256sum")
            .arg(&path)
            .env("LC_ALL", "C.UTF-8")
            .current_dir(dir));
        assert_eq!(ours.status, 1);
        assert_eq!(
            ours.stderr.replace("p2p-sha256:", "sha256sum:"),
            gnu.stderr,
            "{name:?}"
        );
    }
}

/// Our lines, checked by GNU; GNU's lines, checked by us: plain and
/// tagged, with backslashes, newlines, carriage returns and spaces in names.
#[test]
fn round_trip_through_gnu_sha256sum() {
    if !gnu_present() {
        eprintln!("no sha256sum: skipped");
        return;
    }
    let (d, t) = setup();
    let dir = t.path();
    let names = [
        "plain",
        "with space",
        "back\\slash",
        "new\nline",
        "cr\rname",
        " lead",
        "*star",
    ];
    for (i, n) in names.iter().enumerate() {
        file(dir, n, format!("content {i}\n").as_bytes());
    }
    for flags in [&["--format", "sha256sum"][..], &["--tag"], &["-b"]] {
        let mut args = flags.to_vec();
        args.extend_from_slice(&names);
        let ours = sha(&d, dir, &args);
        assert_eq!(ours.status, 0, "{}", ours.stderr);
        let gnu_flags: Vec<&str> = flags
            .iter()
            .copied()
            .filter(|f| !["--format", "sha256sum"].contains(f))
            .collect();
        let gnu_lines = run(Command::new("sha256sum")
            .args(gnu_flags)
            .args(names)
            .current_dir(dir));
        assert_eq!(ours.stdout, gnu_lines.stdout, "{flags:?}");
        file(dir, "OURS", ours.stdout.as_bytes());
        let gnu = run(Command::new("sha256sum")
            .args(["--strict", "-c", "OURS"])
            .current_dir(dir));
        assert_eq!(gnu.status, 0, "{}{}", gnu.stdout, gnu.stderr);
        file(dir, "GNU", gnu_lines.stdout.as_bytes());
        let back = sha(&d, dir, &["--format", "text", "--strict", "-c", "GNU"]);
        assert_eq!(back.status, 0, "{}{}", back.stdout, back.stderr);
        assert_eq!(back.stdout.matches(": OK\n").count(), names.len());
    }
}

/// GNU's lines for names that are not UTF-8, checked by us.
#[test]
fn gnu_lines_for_names_that_are_not_utf8_check() {
    if !gnu_present() {
        eprintln!("no sha256sum: skipped");
        return;
    }
    let (d, t) = setup();
    let dir = t.path();
    let names = [
        OsStr::from_bytes(b"\xff\xfe"),
        OsStr::from_bytes(b"l\xe9\\g\nacy"),
    ];
    for n in names {
        file(dir, n, b"x");
    }
    let gnu = Command::new("sha256sum")
        .args(names)
        .current_dir(dir)
        .output()
        .unwrap();
    file(dir, "GNU", &gnu.stdout);
    let back = sha(&d, dir, &["--format", "text", "--strict", "-c", "GNU"]);
    assert_run(
        &back,
        0,
        "''$'\\377\\376': OK\n'l'$'\\351''\\g'$'\\n''acy': OK\n",
        "",
    );
}

/// Our lines for names that are not UTF-8, checked by GNU.
#[test]
fn our_lines_for_names_that_are_not_utf8_check_with_gnu() {
    let (d, t) = setup();
    let dir = t.path();
    let name = OsStr::from_bytes(b"l\xe9\\gacy");
    file(dir, name, b"x");
    // The raw bytes of the output: a lossy String would change the name.
    let ours = d
        .cmd("p2p-sha256")
        .args(["--format", "sha256sum"])
        .arg(name)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(0));
    file(dir, "OURS", &ours.stdout);
    let gnu = run(Command::new("sha256sum")
        .args(["--strict", "-c", "OURS"])
        .current_dir(dir));
    assert_eq!(gnu.status, 0, "{}{}", gnu.stdout, gnu.stderr);
}

/// uutils test_invalid_arg: an unknown option is a usage error, exit 1 as
/// GNU's; --help still exits 0.
#[test]
fn an_unknown_option_exits_1_as_gnu() {
    let (d, t) = setup();
    let r = sha(&d, t.path(), &["--definitely-invalid"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let r = sha(&d, t.path(), &["--help"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
}
