//! Standard input, streams and pseudo-files, sizes, `--files0-from`, and
//! files that change as they are read: real commands and a real daemon.

mod common;

use common::{Daemon, gnu_sha256, run, run_with_stdin, write};
use serde_json::Value;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn a_pipe_on_stdin_is_counted_and_hashed() {
    let d = Daemon::start(&[]);
    // No operand: standard input, named as GNU names it.
    let r = run_with_stdin(&mut d.cmd("p2p-wc"), b"hi there\nsecond line\n");
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(v["path"], "");
    assert_eq!(
        (&v["lines"], &v["words"], &v["bytes"], &v["chars"]),
        (&2.into(), &4.into(), &21.into(), &21.into())
    );

    let f = write(d.dir.path(), "data", b"some bytes to hash\n");
    let expected = gnu_sha256(&f);
    for args in [&[][..], &["-"][..]] {
        let r = run_with_stdin(d.cmd("p2p-sha256").args(args), b"some bytes to hash\n");
        assert_eq!(r.status, 0, "{}", r.stderr);
        let v = &r.json()[0];
        assert_eq!(v["path"], "-", "sha256sum names stdin '-'");
        assert_eq!(v["sha256"], expected.as_str());
        assert_eq!(v["bytes"], 19);
    }
    // `-` among other operands, for wc too.
    let r = run_with_stdin(d.cmd("p2p-wc").args(["-l"]).arg(&f).arg("-"), b"a\nb\nc\n");
    let out = r.json();
    assert_eq!(
        (out[0]["lines"].as_u64(), out[1]["lines"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(out[1]["path"], "-");
}

#[test]
fn stdin_redirected_from_a_file_is_read_from_its_offset() {
    let d = Daemon::start(&[]);
    let f = write(d.dir.path(), "text", b"0123456789\nabc def\n");
    let expected = gnu_sha256(&f);
    let r = run(d.cmd("p2p-sha256").arg("-").stdin(File::open(&f).unwrap()));
    assert_eq!(r.json()[0]["sha256"], expected.as_str());
    // Twice from offset 5: the cached whole file must not answer.
    for _ in 0..2 {
        let mut input = File::open(&f).unwrap();
        input.seek(SeekFrom::Start(5)).unwrap();
        let r = run(d.cmd("p2p-wc").stdin(input));
        let v = &r.json()[0];
        assert_eq!(
            (v["bytes"].as_u64(), v["words"].as_u64()),
            (Some(14), Some(3))
        );
        let mut input = File::open(&f).unwrap();
        input.seek(SeekFrom::Start(5)).unwrap();
        let r = run(d.cmd("p2p-wc").arg("-c").stdin(input));
        assert_eq!(r.json()[0]["bytes"], 14, "(dd skip=5; wc -c) < f");
    }
}

#[test]
fn dev_stdin_and_process_substitution() {
    let d = Daemon::start(&[]);
    let r = run_with_stdin(d.cmd("p2p-wc").arg("/dev/stdin"), b"one two three\n");
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["words"], 3);

    let wc = common::bin("p2p-wc");
    let r = run(Command::new("bash")
        .arg("-c")
        .arg(format!("'{}' <(seq 1000) <(printf 'x y')", wc.display()))
        .env("P2P_SOCKET", &d.socket)
        .stdin(Stdio::null()));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0]["lines"].as_u64(), out[0]["bytes"].as_u64()),
        (Some(1000), Some(3893))
    );
    assert_eq!(
        (out[1]["words"].as_u64(), out[1]["lines"].as_u64()),
        (Some(2), Some(0))
    );
}

#[test]
fn a_fifo_is_read_once_its_writer_comes_and_to_its_end() {
    let d = Daemon::start(&[]);
    let fifo = d.dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let child = d
        .cmd("p2p-sha256")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The writer opens after the command has started, as `cmd > fifo &` may.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = File::create(&fifo).unwrap();
    for piece in data.chunks(7000) {
        w.write_all(piece).unwrap();
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plain = write(d.dir.path(), "same", &data);
    assert_eq!(v["sha256"], gnu_sha256(&plain).as_str());
    assert_eq!(v["bytes"], data.len());
}

#[test]
fn character_devices_are_read_to_their_end() {
    let d = Daemon::start(&[]);
    let r = run(d.cmd("p2p-wc").arg("/dev/null"));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(
        (v["lines"].as_u64(), v["bytes"].as_u64()),
        (Some(0), Some(0))
    );
    let r = run(d.cmd("p2p-sha256").arg("/dev/null"));
    assert_eq!(
        r.json()[0]["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn proc_files_are_read_afresh_every_time() {
    let d = Daemon::start(&[]);
    // /proc/uptime has st_size 0 and changes every hundredth of a second.
    let mut digests = Vec::new();
    for _ in 0..2 {
        let r = run(d.cmd("p2p-sha256").arg("/proc/uptime"));
        assert_eq!(r.status, 0, "{}", r.stderr);
        let v = &r.json()[0];
        assert!(
            v["bytes"].as_u64().unwrap() > 0,
            "read despite a size of 0: {v}"
        );
        digests.push(v["sha256"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_ne!(
        digests[0], digests[1],
        "a stale /proc/uptime came from the cache"
    );
    let r = run(d.cmd("p2p-wc").args(["-w", "/proc/uptime"]));
    assert_eq!(r.json()[0]["words"], 2);
    let r = run(d.cmd("p2p-wc").args(["-c", "/proc/uptime"]));
    assert!(r.json()[0]["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn bytes_alone_come_from_the_size_of_a_sparse_terabyte() {
    let d = Daemon::start(&[]);
    let p = d.dir.path().join("sparse");
    File::create(&p).unwrap().set_len(1 << 40).unwrap();
    // Reading 1 TiB would take hours: only the size can answer this.
    let r = run(d.cmd("p2p-wc").arg("-c").arg(&p));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let v = &r.json()[0];
    assert_eq!(v["bytes"].as_u64(), Some(1 << 40));
    assert!(v.get("lines").is_none());
    let r = run(d.cmd("p2p-wc").args(["-c", "--format", "text"]).arg(&p));
    assert!(r.stdout.contains("1099511627776"), "{}", r.stdout);
}

#[test]
fn files0_from_reports_an_empty_name_and_goes_on() {
    let d = Daemon::start(&[]);
    let a = write(d.dir.path(), "a", b"one\n");
    let b = write(d.dir.path(), "b", b"two words\n");
    let list = d.dir.path().join("list0");
    let mut names = Vec::new();
    for n in [
        a.as_os_str().as_encoded_bytes(),
        b"",
        b.as_os_str().as_encoded_bytes(),
    ] {
        names.extend_from_slice(n);
        names.push(0);
    }
    std::fs::write(&list, &names).unwrap();
    for args in [
        vec!["--files0-from".to_string(), list.display().to_string()],
        vec![format!("--files0-from={}", list.display())],
        vec![
            "-0".into(),
            "--files-from".into(),
            list.display().to_string(),
        ],
    ] {
        let r = run(d.cmd("p2p-wc").args(&args));
        assert_eq!(r.status, 1, "{args:?}: {}", r.stderr);
        let out = r.json();
        assert_eq!(out.len(), 3, "{}", r.stdout);
        assert_eq!(out[0]["words"], 1);
        assert_eq!(code(&out[1]), "invalid_request");
        assert_eq!(out[2]["words"], 2);
        assert_eq!(
            r.stderr.trim_end(),
            format!(
                "p2p-wc: {}:2: invalid zero-length file name",
                list.display()
            )
        );
    }
    // On standard input, with its name "-".
    let r = run_with_stdin(d.cmd("p2p-wc").arg("--files0-from=-"), &names);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr
            .contains("p2p-wc: -:2: invalid zero-length file name"),
        "{}",
        r.stderr
    );
    assert_eq!(r.json().len(), 3);
    // An empty operand is the same error, without a place.
    let r = run(d.cmd("p2p-wc").arg("").arg(&a));
    assert_eq!(r.status, 1);
    assert_eq!(r.stderr.trim_end(), "p2p-wc: invalid zero-length file name");
    assert_eq!(r.json()[1]["lines"], 1);
}

#[test]
fn files0_from_rules_as_gnu() {
    let d = Daemon::start(&[]);
    let a = write(d.dir.path(), "a", b"one\n");
    let list = write(
        d.dir.path(),
        "list0",
        format!("{}\0", a.display()).as_bytes(),
    );
    // Operands cannot be combined with it.
    let r = run(d.cmd("p2p-wc").arg("--files0-from").arg(&list).arg(&a));
    assert_eq!(r.status, 2);
    assert!(
        r.stderr
            .contains("file operands cannot be combined with --files0-from")
    );
    assert_eq!(r.stdout, "");
    // A list on standard input cannot name standard input.
    let r = run_with_stdin(d.cmd("p2p-wc").arg("--files0-from=-"), b"-\0");
    assert_eq!(r.status, 1);
    assert!(
        r.stderr
            .contains("when reading file names from standard input, no file name of '-' allowed"),
        "{}",
        r.stderr
    );
    // A list that is not stdin may: "-" then is the data.
    let stdin_list = write(d.dir.path(), "dash0", b"-\0");
    let r = run_with_stdin(
        d.cmd("p2p-wc").arg("--files0-from").arg(&stdin_list),
        b"x y z\n",
    );
    assert_eq!(r.json()[0]["words"], 3);
    // A list that cannot be opened: GNU's words, exit 1.
    let r = run(d.cmd("p2p-wc").arg("--files0-from=/nonexistent/list"));
    assert_eq!(r.status, 1);
    assert!(
        r.stderr
            .contains("cannot open '/nonexistent/list' for reading"),
        "{}",
        r.stderr
    );
    // An empty list reads nothing, not standard input.
    let empty = write(d.dir.path(), "empty0", b"");
    let r = run_with_stdin(d.cmd("p2p-wc").arg("--files0-from").arg(&empty), b"data\n");
    assert_eq!((r.status, r.stdout.as_str()), (0, ""));
}

#[test]
fn a_newline_list_skips_blank_lines_and_stdin_as_the_list_is_not_data() {
    let d = Daemon::start(&[]);
    let a = write(d.dir.path(), "a", b"one\n");
    let list = format!("{}\n\n{}\n", a.display(), a.display());
    let r = run_with_stdin(d.cmd("p2p-wc").args(["--files-from", "-"]), list.as_bytes());
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(
        out.len(),
        2,
        "the list is the input, not data: {}",
        r.stdout
    );
    assert!(out.iter().all(|v| v["lines"] == 1));
}

#[test]
fn stdin_cannot_go_to_other_members() {
    let d = Daemon::start(&[]);
    for args in [
        &["--all"][..],
        &["--spread", "-"][..],
        &["--peer", "x", "-"][..],
    ] {
        let r = run_with_stdin(d.cmd("p2p-wc").args(args), b"data\n");
        assert_eq!(r.status, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("standard input cannot be read by other members"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stdout, "");
    }
}

#[test]
fn stat_takes_dash_for_stdin_and_count_takes_it_for_a_name() {
    let d = Daemon::start(&[]);
    let f = write(d.dir.path(), "f", b"abc\n");
    let r = run(d.cmd("p2p-stat").arg("-").stdin(File::open(&f).unwrap()));
    let v = &r.json()[0];
    assert_eq!(
        (v["type"].as_str(), v["bytes"].as_u64()),
        (Some("file"), Some(4))
    );
    let r = run(&mut d.cmd("p2p-stat"));
    assert_eq!(r.status, 2, "stat needs a name, as GNU stat");
    std::fs::create_dir(d.dir.path().join("-")).unwrap();
    let r = run(d.cmd("p2p-count").arg("-").current_dir(d.dir.path()));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["files"], 0);
}

#[test]
fn a_file_that_keeps_changing_exits_1() {
    let d = Daemon::start(&[]);
    let p = write(d.dir.path(), "busy", &vec![b'w'; 32 << 20]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let path = p.clone();
    // Every write stamps the file with a new mtime, so no read of it sees
    // one version from start to end.
    let writer = std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut t = std::time::SystemTime::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            use std::os::unix::fs::FileExt;
            f.write_at(b"x", 0).unwrap();
            t += std::time::Duration::from_millis(1);
            f.set_modified(t).unwrap();
        }
    });
    let r = run(d.cmd("p2p-sha256").arg(&p));
    let s = run(d.cmd("p2p-wc").arg(&p));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    for r in [r, s] {
        assert_eq!(r.status, 1, "{}", r.stderr);
        assert_eq!(r.json()[0]["changed"], true);
        assert!(
            r.stderr.contains("file changed as we read it"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn an_endless_device_is_given_up_when_its_command_goes() {
    let d = Daemon::start(&["--workers", "1"]);
    let mut child = d
        .cmd("p2p-wc")
        .args(["-c", "/dev/zero"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // /dev/zero has no end: the command only ever ends by being stopped.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "p2p-wc -c /dev/zero ended"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    common::eventually(20, "the daemon gives up the read", || {
        d.log().contains("the asker hung up")
    });
    let f = write(d.dir.path(), "after", b"still served\n");
    let r = run(d.cmd("p2p-wc").arg(&f));
    assert_eq!(r.json()[0]["words"], 2);
}
