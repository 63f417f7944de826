//! `p2p-wc --format text` as a drop-in for GNU `wc`: the facts of the wc
//! cases of the coreutils (tests/wc/), uutils (tests/by-util/test_wc.rs) and
//! busybox (testsuite/wc/) suites, asserted case by case against a real
//! daemon, with our own files in place of the suites' fixtures.
//!
//! Where Debian 12's `wc` 9.1 and the current rules (9.11) agree, a case
//! runs the installed `wc` with the same arguments in the same directory
//! and wants the same standard output, the same messages (with our program
//! name) and the same exit status. Where they differ (words around controls
//! and invalid bytes; `--total`, which 9.1 lacks), the case pins the value
//! 9.11 gives.

mod common;

use common::{Daemon, Run, run, write};
use std::path::Path;
use std::process::{Command, Stdio};

/// `p2p-wc --format text ARGS` in `dir`.
fn p2p(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    run(d
        .cmd("p2p-wc")
        .arg("--format")
        .arg("text")
        .args(args)
        .current_dir(dir))
}

/// Whether the installed `wc` is GNU's.
fn have_gnu_wc() -> bool {
    Command::new("wc")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU coreutils"))
}

/// Runs the installed `wc` and `p2p-wc --format text` with the same
/// arguments in `dir`: same stdout, same stderr (program name aside), same
/// exit status.
fn same_as_gnu(d: &Daemon, dir: &Path, args: &[&str]) {
    if !have_gnu_wc() {
        eprintln!("GNU wc not found: comparison skipped");
        return;
    }
    let gnu = run(Command::new("wc")
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C.UTF-8"));
    let ours = p2p(d, dir, args);
    assert_eq!(ours.stdout, gnu.stdout, "stdout of {args:?}");
    assert_eq!(
        ours.stderr,
        gnu.stderr.replace("wc: ", "p2p-wc: "),
        "stderr of {args:?}"
    );
    assert_eq!(ours.status, gnu.status, "status of {args:?}");
}

/// Asserts stdout and status of `p2p-wc --format text ARGS` in `dir`.
fn pinned(d: &Daemon, dir: &Path, args: &[&str], stdout: &str, status: i32) {
    let r = p2p(d, dir, args);
    assert_eq!(r.stdout, stdout, "stdout of {args:?}; stderr: {}", r.stderr);
    assert_eq!(r.status, status, "status of {args:?}: {}", r.stderr);
}

fn setup() -> (Daemon, std::path::PathBuf) {
    let d = Daemon::start(&[]);
    let dir = d.dir.path().join("w");
    std::fs::create_dir_all(&dir).unwrap();
    (d, dir)
}

/// coreutils wc.pl a0–d1, c0–c2, with each input as a file operand.
#[test]
fn coreutils_wc_pl_cases_on_files() {
    let (d, dir) = setup();
    let cases: [(&str, &str, &[u8]); 15] = [
        ("a0", "-c", b""),
        ("a1", "-l", b""),
        ("a2", "-w", b""),
        ("a3", "-c", b"x"),
        ("a4", "-w", b"x"),
        ("a5", "-w", b"x y\n"),
        ("a6", "-w", b"x y\nz"),
        ("a7", "-l", b"x y"),
        ("a8", "-l", b"x y\n"),
        ("a9", "-l", b"x\ny\n"),
        ("b0", "-lwc", b""),
        ("b1", "-lwc", b"a b\nc\n"),
        ("c0", "-L", b"1\n12\n"),
        ("c1", "-L", b"1\n123\n1\n"),
        ("c2", "-L", b"\n123456"),
    ];
    for (name, flag, content) in cases {
        write(&dir, name, content);
        same_as_gnu(&d, &dir, &[flag, name]);
        if flag == "-lwc" {
            same_as_gnu(&d, &dir, &[name]);
        }
    }
    // d1: a control character is a word now (9.1 says 0).
    write(&dir, "d1", b"\x01\n");
    pinned(&d, &dir, &["-w", "d1"], "1 d1\n", 0);
}

/// The same cases through standard input, where wc prints no name and
/// gives several columns 7 places.
#[test]
fn coreutils_wc_pl_cases_on_stdin() {
    let (d, _dir) = setup();
    let cases: [(&str, &[u8], &str); 17] = [
        ("-c", b"", "0\n"),
        ("-l", b"", "0\n"),
        ("-w", b"", "0\n"),
        ("-c", b"x", "1\n"),
        ("-w", b"x", "1\n"),
        ("-w", b"x y\n", "2\n"),
        ("-w", b"x y\nz", "3\n"),
        ("-l", b"x y", "0\n"),
        ("-l", b"x y\n", "1\n"),
        ("-l", b"x\ny\n", "2\n"),
        ("-lwc", b"", "      0       0       0\n"),
        ("-lwc", b"a b\nc\n", "      2       3       6\n"),
        ("-L", b"1\n12\n", "2\n"),
        ("-L", b"1\n123\n1\n", "3\n"),
        ("-L", b"\n123456", "6\n"),
        ("-w", b"\x01\n", "1\n"),
        ("-lwmcL", b"", "      0       0       0       0       0\n"),
    ];
    for (flag, input, expected) in cases {
        let mut child = d
            .cmd("p2p-wc")
            .args(["--format", "text", flag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{flag} {input:?}"
        );
    }
}

/// coreutils wc-total.sh: --total=never, only, always; a missing value.
#[test]
fn coreutils_wc_total() {
    let (d, dir) = setup();
    write(&dir, "2b", b"2\n");
    write(&dir, "2w", b"2 words\n");
    pinned(
        &d,
        &dir,
        &["--total=never", "2b", "2w"],
        " 1  1  2 2b\n 1  2  8 2w\n",
        0,
    );
    pinned(&d, &dir, &["--total=only", "2b", "2w"], "2 3 10\n", 0);
    pinned(
        &d,
        &dir,
        &["--total=always", "2b"],
        "1 1 2 2b\n1 1 2 total\n",
        0,
    );
    pinned(
        &d,
        &dir,
        &["--total=auto", "2b", "2w"],
        " 1  1  2 2b\n 1  2  8 2w\n 2  3 10 total\n",
        0,
    );
    // `--total 2b` takes 2b as the value, which is no WHEN: a usage error,
    // exit 1 as in GNU.
    let r = p2p(&d, &dir, &["--total", "2b", "2w"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// uutils test_total_*: abbreviations, and one file.
#[test]
fn uutils_total_cases() {
    let (d, dir) = setup();
    write(&dir, "lorem", &b"lorem ipsum dolor\n".repeat(13));
    write(&dir, "moby", &b"call me ishmael now\n".repeat(18));
    let one = " 13  39 234 lorem\n";
    pinned(&d, &dir, &["lorem", "--total=auto"], one, 0);
    pinned(&d, &dir, &["lorem", "--tot=au"], one, 0);
    pinned(&d, &dir, &["lorem", "--total=never"], one, 0);
    pinned(&d, &dir, &["lorem", "--total=n"], one, 0);
    pinned(
        &d,
        &dir,
        &["lorem", "--total=always"],
        &format!("{one} 13  39 234 total\n"),
        0,
    );
    pinned(
        &d,
        &dir,
        &["lorem", "--total=al"],
        &format!("{one} 13  39 234 total\n"),
        0,
    );
    pinned(&d, &dir, &["lorem", "--total=only"], "13 39 234\n", 0);
    let two = " 13  39 234 lorem\n 18  72 360 moby\n";
    pinned(
        &d,
        &dir,
        &["lorem", "moby"],
        &format!("{two} 31 111 594 total\n"),
        0,
    );
    pinned(&d, &dir, &["lorem", "moby", "--total=never"], two, 0);
    pinned(
        &d,
        &dir,
        &["lorem", "moby", "--total=only"],
        "31 111 594\n",
        0,
    );
    // Repeated: the last one counts (uutils test_args_override).
    pinned(
        &d,
        &dir,
        &["--total=always", "--total=never", "lorem"],
        one,
        0,
    );
}

/// coreutils wc-proc.sh: widths from the sizes of (sparse) regular files.
#[test]
fn coreutils_wc_proc_sizes_set_the_width() {
    let (d, dir) = setup();
    let f = std::fs::File::create(dir.join("no_read")).unwrap();
    f.set_len(2).unwrap();
    let f = std::fs::File::create(dir.join("do_read")).unwrap();
    f.set_len(1_048_576).unwrap();
    pinned(
        &d,
        &dir,
        &["-c", "no_read", "do_read"],
        "      2 no_read\n1048576 do_read\n1048578 total\n",
        0,
    );
    same_as_gnu(&d, &dir, &["-c", "no_read", "do_read"]);
    // All NUL bytes: one word each now (9.1 says none).
    pinned(
        &d,
        &dir,
        &["do_read", "no_read"],
        "      0       1 1048576 do_read\n      0       1       2 no_read\n      0       2 1048578 total\n",
        0,
    );
}

/// coreutils wc-parallel.sh: two commands at once over many empty files
/// print only whole `0 0 0 NAME` lines and no message.
#[test]
fn coreutils_wc_parallel() {
    let (d, dir) = setup();
    let names: Vec<String> = (0..300).map(|i| format!("e{i}")).collect();
    for n in &names {
        write(&dir, n, b"");
    }
    let spawn = || {
        d.cmd("p2p-wc")
            .args(["--format", "text"])
            .args(&names)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 301);
        for (l, n) in lines.iter().zip(&names) {
            assert_eq!(*l, format!("0 0 0 {n}"));
        }
        assert_eq!(lines[300], "0 0 0 total");
    }
}

/// coreutils wc-files0.sh and uutils test_gnu_compatible_quotation: a name
/// with a newline is quoted in the name column; other names are not.
#[test]
fn names_with_newlines_are_quoted() {
    let (d, dir) = setup();
    write(&dir, "1\n2", b"");
    std::fs::create_dir_all(dir.join("some-dir1")).unwrap();
    write(&dir, "some-dir1/12\n34.txt", b"");
    write(&dir, "tab\there", b"");
    pinned(&d, &dir, &["1\n2"], "0 0 0 '1'$'\\n''2'\n", 0);
    pinned(
        &d,
        &dir,
        &["some-dir1/12\n34.txt"],
        "0 0 0 'some-dir1/12'$'\\n''34.txt'\n",
        0,
    );
    same_as_gnu(&d, &dir, &["1\n2", "tab\there", "some-dir1/12\n34.txt"]);
}

/// uutils test_non_unicode_names.
#[test]
fn names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let (d, dir) = setup();
    std::fs::create_dir_all(dir.join("some-dir1")).unwrap();
    let a = std::ffi::OsStr::from_bytes(b"some-dir1/1\xC0\n.txt");
    let b = std::ffi::OsStr::from_bytes(b"some-dir1/2\xC0\t.txt");
    std::fs::write(dir.join(a), b"").unwrap();
    std::fs::write(dir.join(b), b"").unwrap();
    let out = d
        .cmd("p2p-wc")
        .args(["--format", "text"])
        .arg(a)
        .arg(b)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        [
            &b"0 0 0 'some-dir1/1'$'\\300\\n''.txt'\n"[..],
            b"0 0 0 some-dir1/2\xC0\t.txt\n",
            b"0 0 0 total\n",
        ]
        .concat()
    );
}

/// Errors in wc's words, names quoted as wc quotes them, wc's exit status;
/// a directory gets its line of zeros (uutils test_read_from_directory_error,
/// test_read_error_order_with_stderr_to_stdout, test_read_from_nonexistent_file,
/// test_file_bytes_dictate_width).
#[test]
fn errors_read_like_gnu() {
    let (d, dir) = setup();
    write(&dir, "emptyfile.txt", b"");
    std::fs::create_dir_all(dir.join("ioerrdir")).unwrap();
    same_as_gnu(&d, &dir, &["bogusfile"]);
    same_as_gnu(&d, &dir, &["no such", "it's gone", "a:b", "emptyfile.txt"]);
    same_as_gnu(&d, &dir, &["emptyfile.txt", "no such"]);
    same_as_gnu(&d, &dir, &["ioerrdir"]);
    same_as_gnu(&d, &dir, &["."]);
    same_as_gnu(&d, &dir, &["-lwc", "emptyfile.txt", "."]);
    same_as_gnu(&d, &dir, &["-l", "ioerrdir"]);
    // Messages after the line they follow, as with stderr into stdout.
    let out = d
        .cmd("p2p-wc")
        .args(["--format", "text", "ioerrdir"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "p2p-wc: ioerrdir: Is a directory\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "      0       0       0 ioerrdir\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// uutils' single- and multi-file cases, -clmwL on edge files, and every
/// combination of counts on UTF-8 text with wide and combining characters
/// (test_utf8_*, test_file_*, test_single_*, test_multiple_default), against
/// the installed wc.
#[test]
fn counts_and_columns_as_gnu() {
    let (d, dir) = setup();
    write(&dir, "emptyfile.txt", b"");
    write(&dir, "notrailingnewline.txt", b"a\nb");
    write(&dir, "manyemptylines.txt", &[b'\n'; 100]);
    let mut spaces = vec![b' '; 10_000];
    spaces.push(b'\n');
    write(&dir, "onelongemptyline.txt", &spaces);
    let mut word = vec![b'x'; 10_000];
    word.push(b'\n');
    write(&dir, "onelongword.txt", &word);
    let utf8 = "Ünïcödé wörds, 東京 and 한국어 text\tafter a tab\n\
                combining: e\u{301} a\u{308}, wide: ｆｕｌｌ\u{3000}width\n\
                emoji 💐 between, no-break\u{a0}space, em\u{2003}space\n\
                \t\tdeep tabs\u{200b}zero width\r carriage return\x0cform feed\n";
    write(&dir, "utf8.txt", utf8.as_bytes());
    write(
        &dir,
        "alice in wonderland.txt",
        b"Alice was beginning to get very tired\n",
    );
    for f in [
        "emptyfile.txt",
        "notrailingnewline.txt",
        "manyemptylines.txt",
        "onelongemptyline.txt",
        "onelongword.txt",
        "utf8.txt",
    ] {
        same_as_gnu(&d, &dir, &["-clmwL", f]);
        same_as_gnu(&d, &dir, &["-lw", f]);
        same_as_gnu(&d, &dir, &[f]);
    }
    for flags in [
        "-l", "-w", "-m", "-c", "-L", "-Lw", "-Lm", "-Lmw", "-cm", "-cl", "-cml", "-mw", "-Ll",
        "-Llw", "-ml", "-mlw", "-Llm", "-lwmcL",
    ] {
        same_as_gnu(&d, &dir, &[flags, "utf8.txt"]);
        same_as_gnu(&d, &dir, &[flags, "utf8.txt", "onelongword.txt"]);
    }
    same_as_gnu(
        &d,
        &dir,
        &[
            "notrailingnewline.txt",
            "utf8.txt",
            "alice in wonderland.txt",
            "onelongword.txt",
        ],
    );
    // Repeated flags are accepted (uutils test_args_override).
    same_as_gnu(&d, &dir, &["-ll", "-l", "utf8.txt"]);
    same_as_gnu(&d, &dir, &["-l", "-w", "-lw", "-c", "-c", "utf8.txt"]);
}

/// Word rules: uutils wc_w_words_with_emoji_separator and
/// test_invalid_byte_sequence_word_count, coreutils wc-nbsp.sh, busybox's
/// wc tests.
#[test]
fn word_rules() {
    let (d, dir) = setup();
    write(&dir, "emoji", "foo 💐 bar\n".as_bytes());
    same_as_gnu(&d, &dir, &["-w", "emoji"]);
    // Invalid bytes are parts of words (9.1 says 2).
    write(&dir, "invalid", b"a \xff b\n");
    pinned(&d, &dir, &["invalid"], "1 3 6 invalid\n", 0);
    for (k, nb) in [
        "\u{a0}", "\u{2007}", "\u{202f}", "\u{2060}", " ", "\u{2003}",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("nbsp{k}");
        write(&dir, &name, format!("={nb}=").as_bytes());
        pinned(&d, &dir, &["-w", &name], &format!("2 {name}\n"), 0);
        same_as_gnu(&d, &dir, &["-w", &name]);
        same_as_gnu(&d, &dir, &["-L", &name]);
    }
    // busybox: echo i\'m a little teapot | wc [-c|-l|-w|-L]
    write(&dir, "teapot", b"i'm a little teapot\n");
    pinned(&d, &dir, &["teapot"], " 1  4 20 teapot\n", 0);
    pinned(&d, &dir, &["-c", "teapot"], "20 teapot\n", 0);
    pinned(&d, &dir, &["-l", "teapot"], "1 teapot\n", 0);
    pinned(&d, &dir, &["-w", "teapot"], "4 teapot\n", 0);
    pinned(&d, &dir, &["-L", "teapot"], "19 teapot\n", 0);
}

/// --debug says on stderr which line counter is used, once, and only when
/// lines are counted without decoding (coreutils wc-cpu.sh's message).
#[test]
fn debug_names_the_line_counter() {
    let (d, dir) = setup();
    write(&dir, "a", b"x\ny\n");
    write(&dir, "b", b"z\n");
    let r = p2p(&d, &dir, &["-l", "--debug", "a", "b"]);
    assert_eq!(r.status, 0);
    assert_eq!(r.stdout, "2 a\n1 b\n3 total\n");
    let said: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(said.len(), 1, "{}", r.stderr);
    assert!(
        said[0] == "p2p-wc: using avx2 hardware support"
            || said[0] == "p2p-wc: avx2 support not detected",
        "{}",
        r.stderr
    );
    // Counting words decodes every character: no line counter to name.
    let r = p2p(&d, &dir, &["--debug", "a"]);
    assert_eq!((r.status, r.stderr.as_str()), (0, ""));
}

/// -L in JSON: `max_line_length` only when asked; the total takes the longest.
#[test]
fn max_line_length_in_json_and_totals() {
    let (d, dir) = setup();
    write(&dir, "a", "short\n\tx\n東京東京\n".as_bytes());
    write(&dir, "b", b"a rather longer line\n");
    let r = run(d.cmd("p2p-wc").args(["-L", "a", "b"]).current_dir(&dir));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v[0]["max_line_length"], 9);
    assert_eq!(v[1]["max_line_length"], 20);
    assert!(v[0].get("lines").is_none());
    let r = run(d.cmd("p2p-wc").arg("a").current_dir(&dir));
    assert!(r.json()[0].get("max_line_length").is_none());
    pinned(
        &d,
        &dir,
        &["-lL", "a", "b"],
        " 3  9 a\n 1 20 b\n 4 20 total\n",
        0,
    );
    // Asked again, from the cache.
    pinned(&d, &dir, &["-L", "a"], "9 a\n", 0);
    let r = run(d
        .cmd("p2p-wc")
        .args(["-L", "--total=only", "a", "b"])
        .current_dir(&dir));
    assert_eq!(r.json()[0]["max_line_length"], 20);
    assert_eq!(r.json()[0]["total"], true);
}

/// A large file is counted in parallel chunks and in slices: -L joins the
/// lines that cross the seams.
#[test]
fn max_line_length_of_a_large_file() {
    let (d, dir) = setup();
    let mut data = Vec::new();
    let mut k = 0u64;
    while data.len() < 40 << 20 {
        // Lines of growing, then shrinking, widths with tabs and wide characters.
        let n = (k * 7919) % 3000;
        data.extend(std::iter::repeat_n(b'x', n as usize));
        data.extend_from_slice("\t東".as_bytes());
        data.push(b'\n');
        k += 1;
    }
    data.extend(std::iter::repeat_n(b'y', 5000));
    write(&dir, "big", &data);
    same_as_gnu(&d, &dir, &["-L", "big"]);
    same_as_gnu(&d, &dir, &["-lwmcL", "big"]);
}

/// `p2p-wc --format text ARGS` in `dir` with `input` piped to its stdin.
fn piped(d: &Daemon, dir: &Path, args: &[&str], input: &[u8]) -> (String, String, i32) {
    use std::io::Write;
    let mut child = d
        .cmd("p2p-wc")
        .args(["--format", "text"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// coreutils wc-files0.sh: a list in a regular file sizes the columns from
/// its names; a list from a pipe streams, one column wide; a name with a
/// newline is quoted.
#[test]
fn coreutils_wc_files0_widths() {
    let (d, dir) = setup();
    write(&dir, "2b", b"2\n");
    write(&dir, "2w", b"2 words\n");
    write(&dir, "names", b"2b\x002w\x00");
    let expected = " 1  1  2 2b\n 1  2  8 2w\n 2  3 10 total\n";
    pinned(&d, &dir, &["--files0-from=names"], expected, 0);
    same_as_gnu(&d, &dir, &["--files0-from=names"]);
    let f = std::fs::File::create(dir.join("wc.big")).unwrap();
    f.set_len(1 << 30).unwrap();
    write(&dir, "wc.small", b"");
    let (out, err, status) = piped(&d, &dir, &["-c", "--files0-from=-"], b"wc.big\0wc.small\0");
    assert_eq!((status, err.as_str()), (0, ""));
    assert_eq!(out, "1073741824 wc.big\n0 wc.small\n1073741824 total\n");
    write(&dir, "1\n2", b"");
    let (out, _, status) = piped(&d, &dir, &["--files0-from=-"], b"1\n2\0");
    assert_eq!((out.as_str(), status), ("0 0 0 '1'$'\\n''2'\n", 0));
}

/// uutils test_invalid_arg: an unknown option is a usage error, exit 1 as
/// GNU's; --help still exits 0.
#[test]
fn an_unknown_option_exits_1_as_gnu() {
    let (d, dir) = setup();
    let r = p2p(&d, &dir, &["--definitely-invalid"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("--definitely-invalid"), "{}", r.stderr);
    let r = p2p(&d, &dir, &["--help"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
}

/// Words of text with each no-break space, and an em space, between
/// letters: 10 by the default rule, 6 under POSIXLY_CORRECT (coreutils
/// wc.c, `maybe_c32isnbspace`).
const NO_BREAK: &str = "a\u{a0}b c\u{2007}d e\u{202f}f g\u{2060}h i\u{2003}j\n";

/// `p2p-wc -w` of the file, with POSIXLY_CORRECT set when `posix`.
fn words_of(d: &Daemon, args: &[&str], posix: bool) -> String {
    let mut c = d.cmd("p2p-wc");
    c.args(["--format", "text", "-w"]).args(args);
    if posix {
        c.env("POSIXLY_CORRECT", "1");
    } else {
        c.env_remove("POSIXLY_CORRECT");
    }
    let r = run(&mut c);
    assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

#[test]
fn posixly_correct_makes_no_break_spaces_parts_of_words() {
    let (d, dir) = setup();
    let f = write(&dir, "nb", NO_BREAK.as_bytes());
    let f = f.to_str().unwrap();
    // Each answer after the other: the cached count of one rule is never
    // given for the other.
    for _ in 0..2 {
        assert_eq!(words_of(&d, &[f], false), format!("10 {f}\n"));
        assert_eq!(words_of(&d, &[f], true), format!("6 {f}\n"));
    }
    // -L with the words, and a stream, follow the rule too.
    assert_eq!(words_of(&d, &["-L", f], true), format!(" 6 18 {f}\n"));
    let mut c = d.cmd("p2p-wc");
    c.args(["--format", "text", "-w"])
        .env("POSIXLY_CORRECT", "");
    let r = common::run_with_stdin(&mut c, NO_BREAK.as_bytes());
    assert_eq!((r.stdout.as_str(), r.status), ("6\n", 0), "{}", r.stderr);
}

#[test]
fn posixly_correct_travels_to_other_members() {
    let t = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(t.path()).unwrap();
    let f = write(&root, "nb", NO_BREAK.as_bytes());
    let all = common::start_cluster(2, |_| {
        vec!["--export".into(), root.to_str().unwrap().into()]
    });
    let f = f.to_str().unwrap();
    let one = |posix| {
        let mut c = all[0].cmd("p2p-wc");
        c.args(["-w", "--peer", "node1", f]);
        if posix {
            c.env("POSIXLY_CORRECT", "1");
        }
        let r = run(&mut c);
        assert_eq!(r.status, 0, "{}", r.stderr);
        r.json()[0]["words"].as_u64()
    };
    assert_eq!(one(false), Some(10));
    assert_eq!(one(true), Some(6));
}
