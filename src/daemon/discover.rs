//! LAN discovery's socket and thread (`--discover`): our beacon to the
//! group every [`beacon::EVERY`], and a join through every member of our
//! cluster heard there that we do not know yet. What a beacon is and which
//! lead to a join is [`crate::proto::beacon`]'s.

use super::cluster::Cluster;
use super::counters::{Beacon as Counted, Counters};
use super::logging;
use crate::crypto::gossip::{Endpoint, GossipCipher};
use crate::crypto::keys::KeyRing;
use crate::membership::MemberState;
use crate::proto::beacon::{self, Beacon, Discovery, Dropped, Heard};
use log::Level;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, sockopt};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Opens the discovery socket for a daemon bound to `bind` and starts the
/// thread; the socket is shared with other daemons of the host on the
/// same port (SO_REUSEPORT), each hearing every beacon.
pub fn start(
    cluster: Arc<Cluster>,
    counters: Arc<Counters>,
    bind: IpAddr,
    port: u16,
) -> io::Result<SocketAddr> {
    let group = beacon::group(bind, port);
    let hear = open_socket(bind, group)?;
    let send = open_sender(bind, group)?;
    thread::Builder::new()
        .name("discover".into())
        .spawn(move || run(&cluster, &counters, &hear, &send, group))?;
    Ok(group)
}

/// The socket our beacons leave from: bound to `bind`, so that they come
/// from the address we advertise (the members hearing them check that),
/// and not past the link.
fn open_sender(bind: IpAddr, group: SocketAddr) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(SocketAddr::new(bind, 0))?;
    match (group, bind) {
        (SocketAddr::V4(_), IpAddr::V4(ip)) => {
            sock.set_multicast_ttl_v4(1)?;
            sock.set_multicast_loop_v4(true)?;
            if !ip.is_unspecified() {
                multicast_if_v4(&sock, ip)?;
            }
        }
        (SocketAddr::V6(_), IpAddr::V6(ip)) => {
            // Hops default to 1 for multicast.
            sock.set_multicast_loop_v6(true)?;
            let index = interface_of(ip)?;
            if index != 0 {
                multicast_if_v6(&sock, index)?;
            }
        }
        _ => {
            return Err(io::Error::other(
                "the group is of another family than --bind",
            ));
        }
    }
    Ok(sock)
}

fn open_socket(bind: IpAddr, group: SocketAddr) -> io::Result<UdpSocket> {
    let family = match group {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    match (group, bind) {
        (SocketAddr::V4(g), IpAddr::V4(ip)) => {
            // Bound to the group itself: only its datagrams arrive here.
            socket::bind(fd.as_raw_fd(), &SockaddrIn::from(g))?;
            let sock = UdpSocket::from(fd);
            sock.join_multicast_v4(g.ip(), &ip)?;
            Ok(sock)
        }
        (SocketAddr::V6(g), IpAddr::V6(ip)) => {
            socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, g.port(), 0, 0);
            socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(any))?;
            let sock = UdpSocket::from(fd);
            sock.join_multicast_v6(g.ip(), interface_of(ip)?)?;
            Ok(sock)
        }
        _ => Err(io::Error::other(
            "the group is of another family than --bind",
        )),
    }
}

/// Sends multicast from the interface that has `ip`.
fn multicast_if_v4(sock: &UdpSocket, ip: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    set_option(sock, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &addr)
}

/// Sends multicast from interface `index`.
fn multicast_if_v6(sock: &UdpSocket, index: u32) -> io::Result<()> {
    let index = index as libc::c_int;
    set_option(sock, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)
}

/// setsockopt(2) with `value` as the option's bytes.
fn set_option<T>(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: a valid socket, and a value of the size given, alive for the call.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The index of the interface that has address `ip` (0, the kernel's
/// choice, for `::`).
fn interface_of(ip: Ipv6Addr) -> io::Result<u32> {
    if ip.is_unspecified() {
        return Ok(0);
    }
    for ifa in nix::ifaddrs::getifaddrs()? {
        let has = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in6())
            .is_some_and(|a| a.ip() == ip);
        if has {
            return Ok(nix::net::if_::if_nametoindex(ifa.interface_name.as_str())?);
        }
    }
    Err(io::Error::other(format!(
        "no interface has the address {ip}"
    )))
}

fn run(
    cluster: &Arc<Cluster>,
    counters: &Counters,
    sock: &UdpSocket,
    send: &UdpSocket,
    group: SocketAddr,
) {
    let me = cluster.me();
    let mut seeds = [0u8; 16];
    let _ = crate::crypto::random_bytes(&mut seeds);
    let seed = |i: usize| u64::from_le_bytes(seeds[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    // Our stamps, as the sender at our advertised address, in this run.
    let mut sending = Endpoint::new(me.addr, me.incarnation, seed(0));
    // The replay windows of what we hear, as the group.
    let mut hearing = Endpoint::new(group, me.incarnation, seed(1));
    let mut ring: Arc<KeyRing> = cluster.ring();
    let mut cipher = GossipCipher::new(&ring);
    let mut policy = Discovery::new(&me.name);
    let joining = Arc::new(AtomicBool::new(false));
    let mut next_beacon = Instant::now();
    let mut buf = vec![0u8; beacon::MAX_BEACON + 1];
    loop {
        if !joining.load(Ordering::Acquire) {
            policy.joined();
        }
        let now_ring = cluster.ring();
        if !Arc::ptr_eq(&now_ring, &ring) {
            ring = now_ring;
            cipher = GossipCipher::new(&ring);
        }
        let now = Instant::now();
        if now >= next_beacon {
            next_beacon = now + beacon::EVERY + jitter();
            let me = cluster.me();
            let b = Beacon {
                name: me.name,
                addr: me.addr,
                incarnation: me.incarnation,
            };
            let sealed = beacon::seal(&cipher, &mut sending, &group, &b);
            if let Err(e) = send.send_to(&sealed, group) {
                logging::hostile(
                    Level::Warn,
                    "discover-send",
                    format_args!("LAN discovery: sending our beacon to {group}: {e}"),
                );
            }
        }
        let wait = next_beacon.saturating_duration_since(Instant::now());
        let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                log::debug!("LAN discovery socket: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let heard = match beacon::open(&cipher, &mut hearing, &buf[..n]) {
            Ok(b) => b,
            Err(why) => {
                let (counted, level, kind, what) = match why {
                    // Another cluster on the link is normal: not a warning.
                    Dropped::Authentication => (
                        Counted::Authentication,
                        Level::Debug,
                        "beacon-foreign",
                        "no key of ours opens it (another cluster?)",
                    ),
                    Dropped::Replay => (
                        Counted::Replay,
                        Level::Warn,
                        "beacon-replay",
                        "a beacon heard before (a replay)",
                    ),
                    Dropped::Malformed => (
                        Counted::Malformed,
                        Level::Warn,
                        "beacon-malformed",
                        "not a beacon",
                    ),
                };
                counters.beacon(counted);
                logging::hostile(
                    level,
                    kind,
                    format_args!("LAN discovery: dropped a datagram from {from}: {what}"),
                );
                continue;
            }
        };
        let members = cluster.members();
        let known = |name: &str, addr: SocketAddr| {
            members.iter().any(|m| {
                m.name == name
                    && m.addr == addr
                    && matches!(m.state, MemberState::Alive | MemberState::Suspect)
            })
        };
        let verdict = policy.heard(&heard, from.ip(), known, Instant::now());
        if verdict != Heard::Ours {
            counters.beacon(Counted::Heard);
        }
        match verdict {
            Heard::Join(addr) => {
                joining.store(true, Ordering::Release);
                counters.beacon(Counted::Joined);
                log::debug!(
                    "LAN discovery: heard {} at {addr}; joining through it",
                    logging::untrusted(&heard.name)
                );
                let (c, busy) = (Arc::clone(cluster), Arc::clone(&joining));
                let spawned =
                    thread::Builder::new()
                        .name("discover-join".into())
                        .spawn(move || {
                            match c.join(&addr.to_string()) {
                                Ok(n) => log::info!(
                                    "joined through {addr}, a member found on the link: {n} members"
                                ),
                                Err(e) => logging::hostile(
                                    Level::Info,
                                    "discover-join",
                                    format_args!("joining through {addr}, found on the link: {e}"),
                                ),
                            }
                            busy.store(false, Ordering::Release);
                        });
                if spawned.is_err() {
                    joining.store(false, Ordering::Release);
                }
            }
            Heard::Elsewhere => {
                counters.beacon(Counted::Malformed);
                logging::hostile(
                    Level::Warn,
                    "beacon-elsewhere",
                    format_args!(
                        "LAN discovery: dropped a beacon from {from} naming another host ({})",
                        heard.addr
                    ),
                );
            }
            Heard::Ours | Heard::Known | Heard::Tried => {}
        }
    }
}

/// Up to a second, so that members started together do not beacon in step.
fn jitter() -> Duration {
    let mut r = [0u8; 2];
    let _ = crate::crypto::random_bytes(&mut r);
    Duration::from_millis(u64::from(u16::from_le_bytes(r)) % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_of_the_unspecified_address_is_the_kernels_choice() {
        assert_eq!(interface_of(Ipv6Addr::UNSPECIFIED).unwrap(), 0);
        assert!(interface_of("2001:db8::dead".parse().unwrap()).is_err());
    }
}
