//! LAN discovery (`--discover`) between daemons in network namespaces the
//! test makes (a bridge or a veth pair, never a real network): members of
//! one cluster find each other with no --join; another cluster's beacons,
//! replayed ones and malformed ones are dropped and counted. Without root
//! or `ip netns`, each test says so and is skipped.

mod common;

use common::{Daemon, FAST, TEST_KEY, eventually, peers, run, status};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

const OTHER_KEY: &str = "b3RoZXIga2V5IG90aGVyIGtleSBvdGhlciBrZXkgb3Q=";

/// Namespaces made for one test, deleted when dropped.
struct Netns {
    names: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Members `n` namespaces on one bridge (in a hub namespace), member `i`
/// at 10.77.0.(i+1)/24 on IPv4 and, with `v6`, fd00:77::(i+1)/64; or
/// `None`, having said why, when namespaces cannot be made here.
fn link(test: &str, n: usize, v6: bool) -> Option<Netns> {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{test}: SKIPPED, network namespaces need root");
        return None;
    }
    let tag = std::process::id() % 100_000;
    let hub = format!("p2p{tag}{}h", test.len());
    let mut ns = Netns {
        names: vec![hub.clone()],
    };
    let made = (|| {
        ip(&["netns", "add", &hub])?;
        ip(&[
            "-n",
            &hub,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let name = format!("p2p{tag}{}m{i}", test.len());
            ip(&["netns", "add", &name])?;
            ns.names.push(name.clone());
            let port = format!("h{i}");
            ip(&[
                "link", "add", "eth0", "netns", &name, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            let v4 = format!("10.77.0.{}/24", i + 1);
            ip(&["-n", &name, "addr", "add", &v4, "dev", "eth0"])?;
            if v6 {
                let a = format!("fd00:77::{}/64", i + 1);
                ip(&["-n", &name, "addr", "add", &a, "dev", "eth0", "nodad"])?;
            }
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok::<(), String>(())
    })();
    match made {
        Ok(()) => Some(ns),
        Err(e) => {
            eprintln!("{test}: SKIPPED, cannot make network namespaces here: {e}");
            None
        }
    }
}

fn member(ns: &Netns, i: usize, name: &str, bind: &str, key: &str, extra: &[&str]) -> Daemon {
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend(["--name", name, "--bind", bind]);
    args.extend_from_slice(extra);
    Daemon::start_in(
        Some(&ns.names[i + 1]),
        None,
        0,
        &args,
        &[("P2PD_SECRET", key)],
    )
}

fn names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = peers(d)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn beacons(d: &Daemon, field: &str) -> u64 {
    status(d)["beacons"][field].as_u64().unwrap_or(0)
}

/// Runs `f` on a thread that has entered namespace `ns`: the sockets it
/// makes are that namespace's.
fn inside<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns: {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn members_on_one_link_find_each_other_and_strangers_are_counted() {
    let test = "members_on_one_link_find_each_other_and_strangers_are_counted";
    let Some(ns) = link(test, 4, false) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(t.path()).unwrap();
    let file = common::write(&top, "f.txt", b"one two three\n");
    let export = top.to_str().unwrap();
    // No --join anywhere.
    let disc = ["--discover", "--export", export];
    let a = member(&ns, 0, "a", "10.77.0.1", TEST_KEY, &disc);
    let b = member(&ns, 1, "b", "10.77.0.2", TEST_KEY, &disc);
    // Another cluster on the same link, and a member without discovery
    // (the default).
    let c = member(&ns, 2, "c", "10.77.0.3", OTHER_KEY, &["--discover"]);
    let d = member(&ns, 3, "d", "10.77.0.4", TEST_KEY, &[]);
    for x in [&a, &b] {
        eventually(20, "a and b find each other", || names(x) == ["a", "b"]);
    }
    assert!(
        a.log()
            .contains("LAN discovery: beacons to 239.255.101.32:65431"),
        "{}",
        a.log()
    );
    assert!(!d.log().contains("LAN discovery"), "{}", d.log());
    let r = run(a
        .cmd("p2p-wc")
        .args(["--peer", "b", file.to_str().unwrap()]));
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["words"], 3);
    // The other cluster's beacons do not open; they are counted.
    eventually(10, "a counts c's beacons", || {
        beacons(&a, "authentication") >= 1
    });
    assert!(beacons(&a, "heard") >= 1);
    assert!(beacons(&a, "joined") + beacons(&b, "joined") >= 1);

    // A beacon of b's, captured on the link and sent again, and a datagram
    // that is no beacon: dropped and counted by a.
    let replays = beacons(&a, "replay");
    let malformed = beacons(&a, "malformed");
    // The test's own sender in c's namespace needs a multicast route (the
    // daemons pick their interface themselves).
    ip(&[
        "-n",
        &ns.names[3],
        "route",
        "add",
        "224.0.0.0/4",
        "dev",
        "eth0",
    ])
    .unwrap();
    inside(&ns.names[3], || {
        let group = Ipv4Addr::new(239, 255, 101, 32);
        let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let listen = reuse_port_socket(65431);
        listen
            .join_multicast_v4(&group, &Ipv4Addr::new(10, 77, 0, 3))
            .unwrap();
        listen
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 2048];
        let captured = loop {
            assert!(Instant::now() < deadline, "no beacon of b's heard");
            if let Ok((n, from)) = listen.recv_from(&mut buf)
                && from.ip().to_string() == "10.77.0.2"
            {
                break buf[..n].to_vec();
            }
        };
        sock.set_multicast_ttl_v4(1).unwrap();
        let to = SocketAddrV4::new(group, 65431);
        // Heard by a already (every beacon goes to all): a replay now.
        std::thread::sleep(Duration::from_millis(200));
        sock.send_to(&captured, to).unwrap();
        sock.send_to(b"not a beacon", to).unwrap();
    });
    eventually(10, "a counts the replay", || {
        beacons(&a, "replay") > replays
    });
    eventually(10, "a counts the malformed datagram", || {
        beacons(&a, "malformed") > malformed
    });
    // Nobody joined the stranger or the silent one.
    assert_eq!(names(&c), ["c"]);
    assert_eq!(names(&d), ["d"]);
    assert_eq!(names(&a), ["a", "b"]);
}

/// A UDP socket on `port` that shares it with the daemons (SO_REUSEPORT),
/// in the calling thread's namespace.
fn reuse_port_socket(port: u16) -> UdpSocket {
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        assert_eq!(
            libc::bind(
                fd,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            ),
            0,
            "bind: {}",
            std::io::Error::last_os_error()
        );
        <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }
}

#[test]
fn members_on_one_ipv6_link_find_each_other() {
    let test = "members_on_one_ipv6_link_find_each_other";
    let Some(ns) = link(test, 2, true) else {
        return;
    };
    let a = member(&ns, 0, "a", "fd00:77::1", TEST_KEY, &["--discover"]);
    let b = member(&ns, 1, "b", "fd00:77::2", TEST_KEY, &["--discover"]);
    for x in [&a, &b] {
        eventually(20, "a and b find each other over IPv6", || {
            names(x) == ["a", "b"]
        });
    }
    assert!(a.log().contains("[ff02::7032:6432]:65431"), "{}", a.log());
    let addr = peers(&a).into_iter().find(|m| m["name"] == "b").unwrap()["addr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(addr.starts_with("[fd00:77::2]:"), "{addr}");
}

#[test]
fn discovery_is_off_unless_asked_for() {
    let d = Daemon::start(FAST);
    assert!(!d.log().contains("LAN discovery"), "{}", d.log());
    assert_eq!(status(&d)["beacons"]["heard"], 0);
}
