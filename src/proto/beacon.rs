//! LAN discovery (`p2pd --discover`): a member announces itself every few
//! seconds to a multicast group that does not leave the link, and joins
//! the members it hears. Sans-IO: the daemon's `discover` thread owns the
//! socket.
//!
//! A beacon is sealed with the cluster key as a gossip datagram is
//! ([`GossipCipher`], its own version byte and the group as receiver), so
//! a beacon of another cluster does not open, one heard before is refused
//! by the replay window, and neither a beacon nor a gossip datagram is
//! taken for the other. Inside: the sender's name, the peer address it
//! advertises and its incarnation. A beacon only ever leads to a join
//! attempt, which is an authenticated TCP session like any other: to the
//! IP address it was sent from (the port is the sender's word), one at a
//! time and at most one every [`JOIN_GAP`], so beacons cannot turn the
//! members into a flood of connections. Any holder of the cluster key on
//! the link reads the beacons: names, addresses and incarnations.
//! Discovery is therefore off unless asked for.

use crate::crypto::gossip::{Endpoint, GossipCipher, OpenError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The version byte of a beacon (gossip datagrams use 2 and 3).
pub const VERSION: u8 = 0x42;

/// The UDP port beacons go to unless `--discover-port` says otherwise.
pub const DEFAULT_PORT: u16 = 65431;

/// The IPv4 group: administratively scoped, sent with a TTL of 1 so that
/// no router passes it on.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 101, 32);

/// The IPv6 group: link-local scope (ff02::/16).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x7032, 0x6432);

/// How often a member sends its beacon.
pub const EVERY: Duration = Duration::from_secs(3);

/// How often a join is tried through one address heard.
pub const JOIN_EVERY: Duration = Duration::from_secs(30);

/// The least time between two join attempts, whatever the addresses.
pub const JOIN_GAP: Duration = Duration::from_secs(5);

/// Addresses whose last join attempt is remembered.
const MAX_TRIED: usize = 1024;

/// The largest beacon taken (a name and tags are bounded far below).
pub const MAX_BEACON: usize = 1024;

/// The group for a daemon bound to `bind`, on `port`: IPv6 for an IPv6
/// bind, else IPv4.
pub fn group(bind: IpAddr, port: u16) -> SocketAddr {
    match bind {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(GROUP_V4), port),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(GROUP_V6), port),
    }
}

/// What a beacon says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    pub name: String,
    /// The peer address the sender advertises (its TCP and UDP port).
    pub addr: SocketAddr,
    pub incarnation: u64,
}

/// Why a datagram on the discovery port was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// No key of ours opens it: another cluster, or noise.
    Authentication,
    /// Opened before (a replay), or from an earlier run of its sender.
    Replay,
    /// Too short, too long, another version, another receiver, or
    /// authentic but not a beacon.
    Malformed,
}

impl Dropped {
    fn of(e: &OpenError) -> Dropped {
        match e {
            OpenError::Unauthenticated => Dropped::Authentication,
            OpenError::Replayed(_) => Dropped::Replay,
            _ => Dropped::Malformed,
        }
    }
}

/// Seals `beacon` for the group `to`.
pub fn seal(
    cipher: &GossipCipher,
    end: &mut Endpoint,
    to: &SocketAddr,
    beacon: &Beacon,
) -> Vec<u8> {
    let body = serde_json::to_vec(beacon).unwrap_or_default();
    cipher.seal_as(end, to, VERSION, |_| body)
}

/// Opens a datagram heard on the discovery port, once.
pub fn open(cipher: &GossipCipher, end: &mut Endpoint, datagram: &[u8]) -> Result<Beacon, Dropped> {
    if datagram.len() > MAX_BEACON {
        return Err(Dropped::Malformed);
    }
    cipher
        .open_as(end, datagram, VERSION, |_, plain| {
            serde_json::from_slice::<Beacon>(&plain).map_err(|_| OpenError::UnknownVersion)
        })
        .map_err(|e| Dropped::of(&e))
}

/// What to do with a beacon that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Join the cluster through this address.
    Join(SocketAddr),
    /// Our own, looped back.
    Ours,
    /// A member we know at that address already.
    Known,
    /// It names another host than the one it came from: dropped.
    Elsewhere,
    /// A join through that address was tried a moment ago, or one is
    /// under way, or the last started less than [`JOIN_GAP`] ago.
    Tried,
}

/// Which beacons lead to a join.
pub struct Discovery {
    name: String,
    tried: HashMap<SocketAddr, Instant>,
    /// When the last join started, and whether it is still under way.
    last_join: Option<Instant>,
    joining: bool,
}

impl Discovery {
    /// For the member named `name`.
    pub fn new(name: &str) -> Discovery {
        Discovery {
            name: name.to_string(),
            tried: HashMap::new(),
            last_join: None,
            joining: false,
        }
    }

    /// Judges `beacon`, sent from `from`; `known` says whether a live
    /// member of that name is known at that address.
    pub fn heard(
        &mut self,
        beacon: &Beacon,
        from: IpAddr,
        known: impl Fn(&str, SocketAddr) -> bool,
        now: Instant,
    ) -> Heard {
        if beacon.name == self.name {
            return Heard::Ours;
        }
        if canonical(beacon.addr.ip()) != canonical(from) {
            return Heard::Elsewhere;
        }
        if known(&beacon.name, beacon.addr) {
            return Heard::Known;
        }
        // Not remembered as tried unless a join starts now.
        if self.joining
            || self
                .last_join
                .is_some_and(|t| now.saturating_duration_since(t) < JOIN_GAP)
        {
            return Heard::Tried;
        }
        if self
            .tried
            .get(&beacon.addr)
            .is_some_and(|t| now.saturating_duration_since(*t) < JOIN_EVERY)
        {
            return Heard::Tried;
        }
        if self.tried.len() >= MAX_TRIED {
            self.tried
                .retain(|_, t| now.saturating_duration_since(*t) < JOIN_EVERY);
            if self.tried.len() >= MAX_TRIED {
                return Heard::Tried;
            }
        }
        self.tried.insert(beacon.addr, now);
        self.last_join = Some(now);
        self.joining = true;
        Heard::Join(beacon.addr)
    }

    /// The join [`Discovery::heard`] asked for has ended.
    pub fn joined(&mut self) {
        self.joining = false;
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::{Key, KeyRing};

    fn ring() -> KeyRing {
        KeyRing::new(vec![Key::generate().unwrap()]).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn beacon(name: &str, at: &str) -> Beacon {
        Beacon {
            name: name.into(),
            addr: addr(at),
            incarnation: 7,
        }
    }

    const GROUP: &str = "239.255.101.32:65431";

    #[test]
    fn a_beacon_opens_once_under_the_key_and_not_under_another() {
        let ring = ring();
        let cipher = GossipCipher::new(&ring);
        let mut sender = Endpoint::new(addr("10.0.0.1:65432"), 1, 1);
        let mut receiver = Endpoint::new(addr(GROUP), 1, 2);
        let b = beacon("a", "10.0.0.1:65432");
        let sealed = seal(&cipher, &mut sender, &addr(GROUP), &b);
        assert_eq!(open(&cipher, &mut receiver, &sealed), Ok(b.clone()));
        // Replayed: refused.
        assert_eq!(open(&cipher, &mut receiver, &sealed), Err(Dropped::Replay));
        // Another cluster's key: does not open.
        let other = GossipCipher::new(&super::tests::ring());
        let mut fresh = Endpoint::new(addr(GROUP), 1, 3);
        let foreign = seal(&other, &mut sender, &addr(GROUP), &b);
        assert_eq!(
            open(&cipher, &mut fresh, &foreign),
            Err(Dropped::Authentication)
        );
        // Malformed: cut short, too long, a flipped byte.
        assert_eq!(
            open(&cipher, &mut fresh, &sealed[..10]),
            Err(Dropped::Malformed)
        );
        assert_eq!(
            open(&cipher, &mut fresh, &vec![VERSION; MAX_BEACON + 1]),
            Err(Dropped::Malformed)
        );
        let mut flipped = seal(&cipher, &mut sender, &addr(GROUP), &b);
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            open(&cipher, &mut fresh, &flipped),
            Err(Dropped::Authentication)
        );
    }

    #[test]
    fn beacons_and_gossip_datagrams_are_not_taken_for_each_other() {
        let ring = ring();
        let cipher = GossipCipher::new(&ring);
        let me = addr("10.0.0.2:65432");
        let mut sender = Endpoint::new(addr("10.0.0.1:65432"), 1, 1);
        let mut gossip_end = Endpoint::new(me, 1, 2);
        let mut beacon_end = Endpoint::new(addr(GROUP), 1, 3);
        // A beacon sent to a member's gossip port.
        let b = seal(&cipher, &mut sender, &me, &beacon("a", "10.0.0.1:65432"));
        assert!(cipher.open(&mut gossip_end, &b).is_err());
        // A gossip datagram sent to the group.
        let g = cipher.seal(&mut sender, &addr(GROUP), b"gossip");
        assert_eq!(open(&cipher, &mut beacon_end, &g), Err(Dropped::Malformed));
        // Authentic, for the group, but not a beacon.
        let junk = cipher.seal_as(&mut sender, &addr(GROUP), VERSION, |_| b"[1,2]".to_vec());
        assert_eq!(
            open(&cipher, &mut beacon_end, &junk),
            Err(Dropped::Malformed)
        );
    }

    #[test]
    fn a_beacon_leads_to_one_join_through_the_address_it_came_from() {
        let mut d = Discovery::new("me");
        let t0 = Instant::now();
        let nobody = |_: &str, _: SocketAddr| false;
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.7".parse().unwrap();
        let a = beacon("a", "10.0.0.1:65432");
        let f = beacon("f", "10.0.0.7:65432");
        let own = beacon("me", "10.0.0.9:65432");
        assert_eq!(
            d.heard(&own, "10.0.0.9".parse().unwrap(), nobody, t0),
            Heard::Ours
        );
        assert_eq!(d.heard(&a, from, nobody, t0), Heard::Join(a.addr));
        // One join at a time: another address waits, and is not marked as
        // tried, so it gets its turn.
        assert_eq!(d.heard(&f, other, nobody, t0), Heard::Tried);
        d.joined();
        // At most one join every JOIN_GAP, whatever the addresses.
        assert_eq!(d.heard(&f, other, nobody, t0 + EVERY), Heard::Tried);
        assert_eq!(
            d.heard(&f, other, nobody, t0 + JOIN_GAP),
            Heard::Join(f.addr)
        );
        d.joined();
        // The same address waits JOIN_EVERY.
        assert_eq!(d.heard(&a, from, nobody, t0 + JOIN_GAP * 2), Heard::Tried);
        assert_eq!(
            d.heard(&a, from, nobody, t0 + JOIN_EVERY),
            Heard::Join(a.addr)
        );
        d.joined();
        // It names another host than its sender: dropped.
        let t1 = t0 + JOIN_EVERY * 2;
        assert_eq!(
            d.heard(&beacon("b", "10.0.0.66:22"), from, nobody, t1),
            Heard::Elsewhere
        );
        // Known already.
        let c = beacon("c", "10.0.0.1:65433");
        let known = |n: &str, at: SocketAddr| n == "c" && at == addr("10.0.0.1:65433");
        assert_eq!(d.heard(&c, from, known, t1), Heard::Known);
        // An IPv4-mapped sender is its IPv4 address.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let e = beacon("e", "10.0.0.1:65434");
        assert_eq!(d.heard(&e, mapped, nobody, t1), Heard::Join(e.addr));
    }

    #[test]
    fn the_group_follows_the_bind_address_family() {
        assert_eq!(
            group("10.0.0.1".parse().unwrap(), 9),
            SocketAddr::new(IpAddr::V4(GROUP_V4), 9)
        );
        assert_eq!(group("::".parse().unwrap(), 9).ip(), IpAddr::V6(GROUP_V6));
        assert!(GROUP_V4.is_multicast() && GROUP_V6.is_multicast());
        // Link-local scope.
        assert_eq!(GROUP_V6.segments()[0], 0xff02);
    }
}
