//! The one harness for integration tests: real `p2pd` processes on loopback,
//! in temp dirs, killed when dropped.
//!
//! Ports never race: a daemon is started on port 0 and binds a port the
//! kernel picks, which the harness reads back from its `--port-file` (so
//! `d.port` is the port it really has). Nothing here hands out a port
//! number for someone else to bind later. A daemon restarted on a port it
//! had before is started again while that port is briefly held by another
//! socket; [`Vacant`] holds a port nobody serves, for "a member that was
//! never started".

#![allow(dead_code)]

use serde_json::Value;
use std::net::UdpSocket;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Path of one of the package's binaries.
pub fn bin(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_p2pd"));
    dir.with_file_name(name)
}

/// A port on 127.0.0.1 that nobody serves, held (TCP bound but not
/// listening, so connections are refused; UDP bound, so datagrams vanish)
/// for as long as this lives, so no daemon of another test can take it.
pub struct Vacant {
    pub port: u16,
    _tcp: std::os::fd::OwnedFd,
    /// The UDP socket on the port, for a test that reads what comes to it.
    pub udp: UdpSocket,
}

impl Vacant {
    pub fn new() -> Vacant {
        use std::os::fd::FromRawFd;
        loop {
            // SAFETY: plain socket calls on a descriptor we own, with a
            // sockaddr_in of the right size.
            let (tcp, port) = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                assert!(fd >= 0, "a TCP socket: {}", std::io::Error::last_os_error());
                let tcp = std::os::fd::OwnedFd::from_raw_fd(fd);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let p = &mut sa as *mut libc::sockaddr_in as *mut libc::sockaddr;
                assert_eq!(libc::bind(fd, p, len), 0, "binding a TCP port");
                assert_eq!(libc::getsockname(fd, p, &mut len), 0, "the TCP port");
                (tcp, u16::from_be(sa.sin_port))
            };
            if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
                return Vacant {
                    port,
                    _tcp: tcp,
                    udp,
                };
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The cluster key the harness's daemons share (a fixed test key, so no
/// test ever touches the user's own key file).
pub const TEST_KEY: &str = "dGVzdCBrZXkgZm9yIHAycCBpbnRlZ3JhdGlvbiB0ZXM=";

/// A running daemon and its private directory.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub stderr_path: PathBuf,
}

impl Daemon {
    /// Starts `p2pd` on a port of its own with `args` and waits until its
    /// socket answers.
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_on(0, args, &[("P2PD_SECRET", TEST_KEY)])
    }

    /// Starts `p2pd` on `port` (0: one it picks, read back into `port`) with
    /// extra environment variables.
    pub fn start_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_as(None, port, args, env)
    }

    /// Starts `p2pd` as user and group `uid` (65534 for "another user";
    /// needs root), its directory theirs, or as ourselves with `None`; on
    /// `port`, or with 0 on one it picks. A fixed port that is in use (say
    /// by a client connection of another test) is tried again for a while.
    pub fn start_as(uid: Option<u32>, port: u16, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(None, uid, port, args, env)
    }

    /// [`Daemon::start_as`] inside network namespace `netns` (made by the
    /// test with `ip netns add`), when given: `ip netns exec` runs p2pd
    /// there, as the same process.
    pub fn start_in(
        netns: Option<&str>,
        uid: Option<u32>,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let wrap: Vec<&str> = match netns {
            Some(ns) => vec!["ip", "netns", "exec", ns],
            None => vec![],
        };
        Daemon::start_under(&wrap, uid, port, args, env)
    }

    /// [`Daemon::start_as`] with `p2pd` run by the command `wrap` (which
    /// must exec it as the same process), when not empty: `ip netns exec
    /// NS`, or `unshare -m ...` for a mount namespace of its own.
    pub fn start_under(
        wrap: &[&str],
        uid: Option<u32>,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(uid) = uid {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).expect("chown (as root)");
        }
        // A `--socket` among `args` replaces the one in the daemon's directory.
        let (socket, args): (PathBuf, Vec<&str>) = match args.iter().position(|a| *a == "--socket")
        {
            Some(i) => (
                PathBuf::from(args[i + 1]),
                args[..i].iter().chain(&args[i + 2..]).copied().collect(),
            ),
            None => (dir.path().join("run").join("p2pd.sock"), args.to_vec()),
        };
        let stderr_path = dir.path().join("p2pd.log");
        let port_file = dir.path().join("p2pd.port");
        let spawn = || {
            let log = std::fs::File::create(&stderr_path).unwrap();
            let mut cmd = match wrap.split_first() {
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(bin("p2pd"));
                    c
                }
                None => Command::new(bin("p2pd")),
            };
            if let Some(uid) = uid {
                cmd.uid(uid).gid(uid);
            }
            cmd.arg(port.to_string())
                .arg("--socket")
                .arg(&socket)
                .arg("--port-file")
                .arg(&port_file)
                .args(&args)
                .env("RUST_LOG", "debug")
                .env("HOME", dir.path())
                .env_remove("XDG_CONFIG_HOME")
                .env_remove("P2PD_SECRET")
                .envs(env.iter().copied())
                .env_remove("P2P_SOCKET")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting p2pd")
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child = spawn();
        let port = loop {
            match wait_ready(&mut child, &port_file, &socket, deadline) {
                Ok(port) => break port,
                Err(status) => {
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    let Some(status) = status else {
                        panic!("p2pd did not come up within 20 s: {log}");
                    };
                    let taken = port != 0 && log.contains("Address already in use");
                    if !taken || Instant::now() >= deadline {
                        panic!("p2pd exited early with {status}: {log}");
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    child = spawn();
                }
            }
        };
        Daemon {
            child: Some(child),
            port,
            dir,
            socket,
            stderr_path,
        }
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A command of the package set up to talk to this daemon.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(bin(name));
        c.env("P2P_SOCKET", &self.socket).stdin(Stdio::null());
        c
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends a signal and waits for the exit, at most `within`.
    pub fn signal_and_wait(
        &mut self,
        sig: i32,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.pid(), sig);
        }
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// Waits until `child` has written its port file and its socket answers:
/// the port, or the status it exited with before (`None`: still running at
/// the deadline; it is killed).
fn wait_ready(
    child: &mut Child,
    port_file: &Path,
    socket: &Path,
    deadline: Instant,
) -> Result<u16, Option<std::process::ExitStatus>> {
    while Instant::now() < deadline {
        // Written atomically, last: once there, every socket is bound.
        if let Ok(text) = std::fs::read_to_string(port_file) {
            let port = text
                .trim_end()
                .parse()
                .unwrap_or_else(|e| panic!("port file {text:?}: {e}"));
            assert!(
                UnixStream::connect(socket).is_ok(),
                "p2pd wrote its port file before its socket answered"
            );
            return Ok(port);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(Some(status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(None)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A finished command: status, stdout parsed as JSON lines, raw streams.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

/// Runs a command to the end.
pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running a command");
    Run {
        status: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Writes a file below `dir` and returns its path.
pub fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p
}

/// GNU `wc -lwmc` in a UTF-8 locale: (lines, words, chars, bytes), with
/// words as coreutils 9.5 and later count them: when the installed `wc` is
/// older (Debian 12's 9.1), its words are taken from the [`agreeing`] copy
/// of the file.
pub fn gnu_wc(path: &Path) -> (u64, u64, u64, u64) {
    let (l, mut w, c, b) = installed_wc(path);
    let data = std::fs::read(path).expect("reading the file");
    let copy = agreeing(&data);
    if copy != data {
        let dir = tempfile::tempdir().expect("temp dir");
        w = installed_wc(&write(dir.path(), "agreeing", &copy)).1;
    }
    (l, w, c, b)
}

/// The installed `wc -lwmc` in a UTF-8 locale.
fn installed_wc(path: &Path) -> (u64, u64, u64, u64) {
    let out = Command::new("wc")
        .arg("-lwmc")
        .arg(path)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("running wc");
    let s = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u64> = s
        .split_whitespace()
        .take(4)
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0], n[1], n[2], n[3])
}

/// Whether glibc's C.UTF-8 `iswprint` says a code point above ASCII is printable.
fn printable(cp: u32) -> bool {
    cp <= 0x10ffff
        && p2p::ops::unicode_tables::NON_PRINTABLE
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    std::cmp::Ordering::Less
                } else if lo > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_err()
}

/// The length of the character glibc's UTF-8 decoder finds at `s[i]` (a
/// byte >= 0x80) and its value: `None` for an invalid byte, `Some((0, 0))`
/// for a sequence the end of `s` cuts short. Written independently of the
/// library's decoder: standard UTF-8 plus long forms up to 6 bytes.
fn glibc_decode(s: &[u8], i: usize) -> Option<(u32, usize)> {
    let b0 = s[i];
    let len = match b0 {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        0xf8..=0xfb => 5,
        0xfc..=0xfd => 6,
        _ => return None,
    };
    let mut cp = u32::from(b0) & (0x7f >> len);
    for k in 1..len {
        let Some(&b) = s.get(i + k) else {
            return Some((0, 0));
        };
        if b & 0xc0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | u32::from(b & 0x3f);
    }
    // Overlong forms and surrogates are no characters. (glibc refuses them
    // at their second byte; for `agreeing` that makes no difference, as
    // every byte that is no character becomes one letter either way.)
    const MIN: [u32; 7] = [0, 0, 0x80, 0x800, 0x1_0000, 0x20_0000, 0x400_0000];
    if cp < MIN[len] || (0xd800..=0xdfff).contains(&cp) {
        return None;
    }
    Some((cp, len))
}

/// A copy of `data` whose words under the old rule (9.1) are the words of
/// `data` under the current one: every unit the old rule skips (ASCII
/// controls and DEL, unprintable characters, invalid bytes and the bytes of
/// a sequence cut short) becomes `x`, and U+2028 and U+2029, white space
/// only now, become a space.
pub fn agreeing(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b < 0x80 {
            let control = (b < 0x20 && !(b'\t'..=b'\r').contains(&b)) || b == 0x7f;
            out.push(if control { b'x' } else { b });
            i += 1;
            continue;
        }
        match glibc_decode(data, i) {
            Some((_, 0)) => {
                out.resize(out.len() + data.len() - i, b'x');
                i = data.len();
            }
            Some((cp, len)) => {
                if cp == 0x2028 || cp == 0x2029 {
                    out.push(b' ');
                } else if printable(cp) {
                    out.extend_from_slice(&data[i..i + len]);
                } else {
                    out.push(b'x');
                }
                i += len;
            }
            None => {
                out.push(b'x');
                i += 1;
            }
        }
    }
    out
}

/// GNU `sha256sum` of a file.
pub fn gnu_sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("running sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// True when the tests run as root (needed to act as another user).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Polls until `cond` holds, for at most `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within {secs} s: {what}");
}

/// The member list as `p2p-peers` prints it on `d`.
pub fn peers(d: &Daemon) -> Vec<Value> {
    run(&mut d.cmd("p2p-peers")).json()
}

/// `p2p-status` on `d`: its one JSON object.
pub fn status(d: &Daemon) -> Value {
    let out = run(&mut d.cmd("p2p-status"));
    assert_eq!(out.status, 0, "p2p-status: {}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "one object: {}", out.stdout);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// The counter `key` of a `p2p-status` object (or of a part of one).
pub fn num(s: &Value, key: &str) -> u64 {
    s[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {s}"))
}

/// Starts `p2p-peers --watch` on `d`, its stdout piped, and returns once
/// the daemon counts it among its watchers: from then on it sees every
/// membership change.
pub fn watch_members(d: &Daemon) -> std::process::Child {
    let before = num(&status(d), "watchers");
    let child = d
        .cmd("p2p-peers")
        .arg("--watch")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(10, "the watcher is connected", || {
        num(&status(d), "watchers") > before
    });
    child
}

/// Fast timings so failures are detected in a few seconds.
pub const FAST: &[&str] = &["--gossip-interval", "100", "--probe-interval", "300"];

/// `n` daemons named node0.. joined through node0, with `extra(i)` flags
/// each, returned once every one sees all as alive.
pub fn start_cluster(n: usize, extra: impl Fn(usize) -> Vec<String>) -> Vec<Daemon> {
    let mut all: Vec<Daemon> = Vec::new();
    for i in 0..n {
        let mut args: Vec<String> = FAST.iter().map(|s| s.to_string()).collect();
        args.extend(["--name".to_string(), format!("node{i}")]);
        if let Some(first) = all.first() {
            args.extend(["--join".to_string(), format!("127.0.0.1:{}", first.port)]);
        }
        args.extend(extra(i));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push(Daemon::start(&refs));
    }
    for d in &all {
        eventually(15, "every member sees every other as alive", || {
            let p = peers(d);
            p.len() == n && p.iter().all(|m| m["state"] == "alive")
        });
    }
    all
}

/// Lets this test process open a few thousand sockets.
pub fn raise_fd_limit() {
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// Makes `listener` look to the kernel as if user `uid` listened on it
/// (`SO_PEERCRED` of whoever connects): a short-lived child process turns
/// into `uid` and calls `listen` again, which records its credentials.
/// Stands in for a listener another user planted. Needs root.
pub fn relisten_as(listener: &UnixListener, uid: u32) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("true");
    cmd.uid(uid).gid(uid);
    // SAFETY: listen(2) only, between fork and exec, on a descriptor the child
    // inherited (it is closed at exec, after this).
    unsafe {
        cmd.pre_exec(move || {
            if libc::listen(fd, 128) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let st = cmd.status().expect("re-listening as another user");
    assert!(st.success(), "true failed: {st}");
}

/// Lets every local user reach `d`'s socket, as the systemd unit's socket
/// group does for its members; the directories stay owned by root and
/// writable by root alone.
pub fn open_to_all(d: &Daemon) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(d.dir.path(), 0o755);
    mode(d.socket.parent().unwrap(), 0o755);
    mode(&d.socket, 0o666);
}

/// Runs `f` on a short-lived thread of ours that has become `uid` (with that
/// gid and no supplementary groups): the raw system calls change the calling
/// thread alone, unlike libc's wrappers, so the rest of the test stays root.
pub fn on_thread_as<T: Send>(uid: u32, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain system calls on this thread's own credentials.
            let dropped = unsafe { libc::geteuid() } == uid
                || unsafe {
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) == 0
                        && libc::syscall(libc::SYS_setresgid, uid, uid, uid) == 0
                        && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
                };
            if !dropped {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .expect("the thread acting as another user")
    })
}

/// A connection to `socket` made as `uid`, so the daemon sees that user
/// through SO_PEERCRED.
pub fn connect_as(uid: u32, socket: &Path) -> std::io::Result<UnixStream> {
    on_thread_as(uid, || UnixStream::connect(socket))?
}

/// Sends one request line as `uid` and returns the reply lines, up to the
/// summary or an error line (or the end of the stream).
pub fn ask_as(uid: u32, socket: &Path, request: &str) -> Vec<Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = connect_as(uid, socket).expect("connecting to p2pd");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { break };
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        let last = v.get("done").is_some() || v.get("error").is_some() && v.get("path").is_none();
        out.push(v);
        if last {
            break;
        }
    }
    out
}

/// Sends `count` forged datagrams to `target` (HOST:PORT): every other one
/// is garbage, the rest sealed under another cluster key with fresh stamps
/// addressed to the target, so each costs it a decryption. Pauses now and
/// then, as a real flood over a network would let the daemon breathe.
pub fn flood_forged_datagrams(target: &str, count: u32) {
    let other =
        p2p::crypto::keys::KeyRing::parse("b3RoZXIga2V5IG90aGVyIGtleSBvdGhlciBrZXkgb3Q=").unwrap();
    let forger = p2p::crypto::gossip::GossipCipher::new(&other);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to: std::net::SocketAddr = target.parse().unwrap();
    let mut stamps = p2p::crypto::gossip::Endpoint::new(udp.local_addr().unwrap(), 1, 1);
    let mut x: u64 = 42;
    for i in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 1400) as usize + 1;
        let junk: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8).collect();
        let packet = if i % 2 == 0 {
            junk
        } else {
            forger.seal(&mut stamps, &to, &junk)
        };
        let _ = udp.send_to(&packet, target);
        if i % 2000 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs a command to the end with `input` written to its standard input
/// through a pipe.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running a command");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // Written from a thread, so a command that does not read cannot block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("waiting for a command");
    let _ = writer.join();
    Run {
        status: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A directory below /run owned by `uid` with `mode`, as systemd's
/// `RuntimeDirectory=` makes one for a service user (the commands trust it
/// for that user's daemon); `None`, with a line saying so, when /run is not
/// writable here.
#[allow(dead_code)]
pub fn service_run_dir(uid: u32, mode: u32) -> Option<TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(dir) = tempfile::Builder::new()
        .prefix("p2p-test-")
        .tempdir_in("/run")
    else {
        eprintln!("skipped: /run is not writable");
        return None;
    };
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    Some(dir)
}

/// Sets the running process `pid`'s limit on open descriptors, soft and
/// hard, to `n` (prlimit(2)), as a service manager's `LimitNOFILE=` would.
pub fn limit_descriptors(pid: i32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: prlimit reads the struct we pass and writes nothing back.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A CA made by `p2p-ca init` in `dir/name`.
pub fn new_ca(dir: &Path, name: &str) -> PathBuf {
    let ca = dir.join(name);
    let r = run(Command::new(bin("p2p-ca")).arg("init").arg(&ca));
    assert_eq!(r.status, 0, "{}", r.stderr);
    ca
}

/// A node key made by `p2p-keygen --node` and a certificate for `name`
/// signed by the CA in `ca` with the further `p2p-ca sign` flags `sign`
/// (groups, validity): (node.key, node.crt), in `dir`.
pub fn node_certificate(dir: &Path, ca: &Path, name: &str, sign: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let r = run(Command::new(bin("p2p-keygen"))
        .arg("--node")
        .arg("-o")
        .arg(&key));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let r = run(Command::new(bin("p2p-ca"))
        .args(["sign", "--dir"])
        .arg(ca)
        .args(["--name", name])
        .args(sign)
        .arg(dir.join(format!("{name}.pub"))));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let crt = write(dir, &format!("{name}.crt"), r.stdout.as_bytes());
    (key, crt)
}
