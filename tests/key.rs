//! The cluster key stays p2pd's own: no core dump, no copy in the
//! environment others can read, no key file another user could have chosen.

mod common;

use common::{Daemon, TEST_KEY, is_root, write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

/// Lets children of this test dump core, so that only p2pd's own settings
/// can turn it off (many shells start with a soft limit of 0).
fn allow_core_dumps() {
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_CORE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(1 << 30);
        libc::setrlimit(libc::RLIMIT_CORE, &lim);
    }
}

#[test]
fn a_running_daemon_cannot_dump_core() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    allow_core_dumps();
    // As another user, so that /proc shows it: the kernel hands the /proc
    // files of a process that is not dumpable to root instead of its user.
    let d = Daemon::start_as(Some(NOBODY), 0, &[], &[("P2PD_SECRET", TEST_KEY)]);
    let proc_dir = format!("/proc/{}", d.pid());
    let status = std::fs::metadata(format!("{proc_dir}/status")).unwrap();
    assert_eq!(
        status.uid(),
        0,
        "p2pd (uid {NOBODY}) is still dumpable: its /proc files are its own"
    );
    let limits = std::fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let values: Vec<&str> = core.split_whitespace().skip(4).take(2).collect();
    assert_eq!(values, ["0", "0"], "{core}");
}

#[test]
fn p2pd_secret_is_wiped_from_the_daemons_environment() {
    let d = Daemon::start(&[]);
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains(TEST_KEY),
        "the key is still in /proc/PID/environ"
    );
    // The daemon holds the key all the same.
    let r = common::run(&mut d.cmd("p2p-peers"));
    assert_eq!(r.status, 0, "{}", r.stderr);
}

#[test]
fn a_key_file_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: acting as another user needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let key = write(t.path(), "cluster.key", format!("{TEST_KEY}\n").as_bytes());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Another user's private file: they chose the key root's daemon would use.
    std::os::unix::fs::chown(&key, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut child = Command::new(common::bin("p2pd"))
        .arg("0")
        .arg("--socket")
        .arg(t.path().join("run/p2pd.sock"))
        .arg("--secret-file")
        .arg(&key)
        .env_remove("P2PD_SECRET")
        .env("HOME", t.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(t.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    // A daemon that accepted the key would serve for ever.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(t.path().join("log")).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "p2pd took the key: {log}"
    );
    assert!(log.contains("belongs to uid 65534"), "{log}");
}

/// `p2p-keygen` with `args`, run with umask 0 so that any mode but the one
/// it asks for itself would show.
fn keygen(args: &[&std::ffi::OsStr]) -> common::Run {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(common::bin("p2p-keygen"));
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    common::run(&mut cmd)
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn keygen_output_creates_a_private_file_holding_a_valid_key() {
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("cluster.key");
    let r = keygen(&["-o".as_ref(), key.as_os_str()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "the key went to stdout too: {}",
        r.stdout
    );
    assert_eq!(mode(&key), 0o600);
    let ring = p2p::crypto::keys::KeyRing::load(&key).unwrap();
    assert_eq!(ring.keys().len(), 1);
    // The long spelling, another file: another key.
    let other = t.path().join("other.key");
    assert_eq!(keygen(&["--output".as_ref(), other.as_os_str()]).status, 0);
    assert_ne!(
        std::fs::read_to_string(&key).unwrap(),
        std::fs::read_to_string(&other).unwrap()
    );
    // p2pd takes it as it is.
    let key_arg = key.to_str().unwrap();
    let d = Daemon::start_on(0, &["--secret-file", key_arg], &[]);
    assert!(d.log().contains("cluster key"), "{}", d.log());
}

#[test]
fn keygen_output_leaves_an_existing_file_or_symlink_alone() {
    let t = tempfile::tempdir().unwrap();
    let key = write(t.path(), "cluster.key", b"old\n");
    let r = keygen(&["-o".as_ref(), key.as_os_str()]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read(&key).unwrap(), b"old\n");
    // A symlink planted where the key should go is not followed.
    let target = t.path().join("elsewhere");
    let link = t.path().join("link.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = keygen(&["-o".as_ref(), link.as_os_str()]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(!target.exists(), "the key was written through the symlink");
    // --force needs --output.
    assert_eq!(keygen(&["--force".as_ref()]).status, 2);
}

#[test]
fn keygen_force_replaces_a_file_with_a_private_one() {
    let t = tempfile::tempdir().unwrap();
    let key = write(t.path(), "cluster.key", b"old\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = keygen(&["-o".as_ref(), key.as_os_str(), "--force".as_ref()]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(mode(&key), 0o600);
    assert!(p2p::crypto::keys::KeyRing::load(&key).is_ok());
    // Nothing left beside it.
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cluster.key"]);
}
