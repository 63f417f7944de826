//! Sealing and opening gossip datagrams.
//!
//! A datagram is
//! `[version = 2][sender 8][receiver 8][epoch 8][counter 8][24-byte random nonce][ciphertext + 16-byte tag]`,
//! XChaCha20-Poly1305 under a subkey of the cluster key, with everything
//! before the nonce as associated data. The 192-bit nonce is random, so no
//! nonce depends on the header. Opening tries every key of the ring;
//! whatever fails is dropped by the caller and counted, never answered.
//!
//! The header stops replays ([`super::replay`]): the sender and receiver are
//! 64-bit ids of their advertised addresses ([`id_of`]), the epoch is fixed
//! when the sender starts and higher after each restart (the daemon uses its
//! first incarnation: the start time in milliseconds, or above the one in
//! its state file), and the counter grows by one per datagram sealed. A
//! receiver drops a datagram meant for another member, and one whose stamp
//! its window has seen or cannot vouch for, before decrypting it; it marks
//! the stamp only once the datagram has opened. A captured datagram
//! therefore opens once, at the receiver it was sent to, and never again.

use super::derive;
use super::keys::KeyRing;
use super::replay::{MAX_SENDERS, Senders, Stamp, Verdict};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;

const VERSION: u8 = 2;
/// The version of datagrams signed by a certified member ([`super::signed`]).
pub(crate) const SIGNED_VERSION: u8 = 3;
/// Version, sender, receiver, epoch, counter: the associated data.
pub(crate) const HEADER_LEN: usize = 1 + 4 * 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Bytes a sealed datagram adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// The largest datagram we send: fits a 1500-byte Ethernet MTU with IP and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;

/// The largest plaintext that fits in one datagram.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM - OVERHEAD;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    TooShort,
    UnknownVersion,
    /// Addressed to another member: sent elsewhere and replayed here.
    NotForUs,
    /// Its stamp was seen already, is below the window, or is from an
    /// earlier run of its sender: a replay.
    Replayed(Verdict),
    /// No installed key authenticates it: another cluster, tampering, or garbage.
    Unauthenticated,
    /// Sealed under our key, but signed with a certificate we do not hold
    /// (yet): its sender is asked who it is ([`super::signed`]).
    UnknownSigner,
    /// Sealed under our key, but its signature, or the certificate it
    /// carries, does not verify: not attributable to a certified member.
    BadSignature,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::TooShort => "datagram too short",
            OpenError::UnknownVersion => "unknown datagram version",
            OpenError::NotForUs => "datagram addressed to another member",
            OpenError::Replayed(Verdict::OldEpoch) => {
                "replayed datagram (an earlier run of its sender)"
            }
            OpenError::Replayed(Verdict::TooOld) => "replayed datagram (below the replay window)",
            OpenError::Replayed(_) => "replayed datagram (seen already)",
            OpenError::Unauthenticated => "datagram failed authentication",
            OpenError::UnknownSigner => "datagram signed with a certificate we do not hold yet",
            OpenError::BadSignature => {
                "datagram not signed by a certified member (bad signature or certificate)"
            }
        })
    }
}

/// The 64-bit id of a member's advertised address, as sender and receiver
/// of datagrams.
pub fn id_of(addr: &SocketAddr) -> u64 {
    let mut h = Sha256::new();
    h.update(b"p2p gossip id v1");
    match addr {
        SocketAddr::V4(a) => {
            h.update([4]);
            h.update(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            h.update([6]);
            h.update(a.ip().octets());
        }
    }
    h.update(addr.port().to_be_bytes());
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    u64::from_be_bytes(id)
}

/// The header fields of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub receiver: u64,
    pub stamp: Stamp,
}

impl Header {
    fn encode(&self, version: u8) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = version;
        h[1..9].copy_from_slice(&self.stamp.sender.to_be_bytes());
        h[9..17].copy_from_slice(&self.receiver.to_be_bytes());
        h[17..25].copy_from_slice(&self.stamp.epoch.to_be_bytes());
        h[25..33].copy_from_slice(&self.stamp.counter.to_be_bytes());
        h
    }

    /// Reads the header of a datagram, which is not yet authenticated.
    pub fn decode(datagram: &[u8]) -> Result<Header, OpenError> {
        Header::decode_version(datagram, VERSION)
    }

    /// The same, for a datagram of `version`.
    pub(crate) fn decode_version(datagram: &[u8], version: u8) -> Result<Header, OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::TooShort);
        }
        if datagram[0] != version {
            return Err(OpenError::UnknownVersion);
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&datagram[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Header {
            receiver: word(9),
            stamp: Stamp {
                sender: word(1),
                epoch: word(17),
                counter: word(25),
            },
        })
    }
}

/// This daemon's end of gossip: the stamp it puts on what it seals, and
/// the replay windows of what it has opened. It outlives key reloads.
pub struct Endpoint {
    me: u64,
    epoch: u64,
    sent: u64,
    heard: Senders,
}

impl Endpoint {
    /// The end at advertised address `me`, in its run `epoch` (higher than
    /// any earlier run's); `seed` is for the replay table's sampling.
    pub fn new(me: SocketAddr, epoch: u64, seed: u64) -> Endpoint {
        Endpoint::with_capacity(me, epoch, seed, MAX_SENDERS)
    }

    /// The same, remembering at most `senders` senders.
    pub fn with_capacity(me: SocketAddr, epoch: u64, seed: u64, senders: usize) -> Endpoint {
        Endpoint {
            me: id_of(&me),
            epoch,
            sent: 0,
            heard: Senders::new(senders, seed),
        }
    }

    /// Senders whose windows are kept.
    pub fn senders(&self) -> usize {
        self.heard.len()
    }
}

/// The gossip ciphers of a key ring, derived once.
pub struct GossipCipher {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl GossipCipher {
    pub fn new(ring: &KeyRing) -> GossipCipher {
        let ciphers = ring
            .keys()
            .iter()
            .map(|k| {
                let sub = derive(k.bytes(), b"p2p gossip v1");
                // The cipher keeps its own copy, wiped when it is dropped.
                XChaCha20Poly1305::new((&*sub).into())
            })
            .collect();
        GossipCipher { ciphers }
    }

    /// Seals `plaintext` for the member at `to` with the primary key,
    /// stamped with `end`'s next counter.
    pub fn seal(&self, end: &mut Endpoint, to: &SocketAddr, plaintext: &[u8]) -> Vec<u8> {
        self.seal_as(end, to, VERSION, |_| plaintext.to_vec())
    }

    /// Seals what `plaintext` makes of the header (which it may sign) as a
    /// datagram of `version` for `to`.
    pub(crate) fn seal_as(
        &self,
        end: &mut Endpoint,
        to: &SocketAddr,
        version: u8,
        plaintext: impl FnOnce(&[u8; HEADER_LEN]) -> Vec<u8>,
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        if super::random_bytes(&mut nonce).is_err() {
            // getrandom(2) does not fail once the pool is initialized; if it
            // ever did, a zero nonce must not be reused, so send nothing useful.
            return Vec::new();
        }
        let header = Header {
            receiver: id_of(to),
            stamp: Stamp {
                sender: end.me,
                epoch: end.epoch,
                counter: end.sent,
            },
        }
        .encode(version);
        end.sent += 1;
        let plaintext = plaintext(&header);
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        let sealed = self.ciphers[0].encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &header,
            },
        );
        match sealed {
            Ok(ct) => {
                out.extend_from_slice(&ct);
                out
            }
            Err(_) => Vec::new(),
        }
    }

    /// Opens a datagram sealed for `end` under any key of the ring, once:
    /// a datagram for another member, or one opened before, is refused.
    pub fn open(&self, end: &mut Endpoint, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_as(end, datagram, VERSION, |_, plain| Ok(plain))
    }

    /// Opens a datagram of `version` as [`GossipCipher::open`] does, then
    /// hands the header and plaintext to `check`: only what it accepts
    /// moves the replay window on.
    pub(crate) fn open_as<T>(
        &self,
        end: &mut Endpoint,
        datagram: &[u8],
        version: u8,
        check: impl FnOnce(&[u8], Vec<u8>) -> Result<T, OpenError>,
    ) -> Result<T, OpenError> {
        let header = Header::decode_version(datagram, version)?;
        if header.receiver != end.me {
            return Err(OpenError::NotForUs);
        }
        // Refused before any decryption: a replay costs a table look-up.
        match end.heard.check(&header.stamp) {
            Verdict::Fresh => {}
            v => return Err(OpenError::Replayed(v)),
        }
        let nonce = XNonce::from_slice(&datagram[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let payload = || Payload {
            msg: &datagram[HEADER_LEN + NONCE_LEN..],
            aad: &datagram[..HEADER_LEN],
        };
        let plain = self
            .ciphers
            .iter()
            .find_map(|c| c.decrypt(nonce, payload()).ok())
            .ok_or(OpenError::Unauthenticated)?;
        let accepted = check(&datagram[..HEADER_LEN], plain)?;
        // Authenticated: only now may it change the window.
        match end.heard.accept(&header.stamp) {
            Verdict::Fresh => Ok(accepted),
            v => Err(OpenError::Replayed(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::Key;

    fn ring(keys: &[&Key]) -> KeyRing {
        KeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn end(port: u16, epoch: u64) -> Endpoint {
        Endpoint::new(addr(port), epoch, 1)
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let (mut a, mut b) = (end(1, 1), end(2, 1));
        let x = c.seal(&mut a, &addr(2), b"hello");
        let y = c.seal(&mut a, &addr(2), b"hello");
        assert_ne!(x, y, "every datagram has its own nonce");
        assert_eq!(x.len(), 5 + OVERHEAD);
        assert_eq!(c.open(&mut b, &y).unwrap(), b"hello");
        assert_eq!(c.open(&mut b, &x).unwrap(), b"hello", "reordered");
    }

    #[test]
    fn a_replayed_datagram_opens_never_again() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let (mut a, mut b, mut other) = (end(1, 1), end(2, 1), end(3, 1));
        let to_b = c.seal(&mut a, &addr(2), b"ping");
        let to_other = c.seal(&mut a, &addr(3), b"ping");
        assert!(c.open(&mut b, &to_b).is_ok());
        for _ in 0..3 {
            assert_eq!(
                c.open(&mut b, &to_b),
                Err(OpenError::Replayed(Verdict::Duplicate))
            );
        }
        // Sent to another member: refused here, opened there.
        assert_eq!(c.open(&mut b, &to_other), Err(OpenError::NotForUs));
        assert!(c.open(&mut other, &to_other).is_ok());
        // What a sender sealed before it restarted is refused once its new
        // run has been heard, even what was never delivered.
        let undelivered = c.seal(&mut a, &addr(2), b"late");
        let mut restarted = end(1, 2);
        assert!(
            c.open(&mut b, &c.seal(&mut restarted, &addr(2), b"again"))
                .is_ok()
        );
        assert_eq!(
            c.open(&mut b, &undelivered),
            Err(OpenError::Replayed(Verdict::OldEpoch))
        );
    }

    #[test]
    fn a_forged_stamp_changes_no_window() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let (mut a, mut b) = (end(1, 1), end(2, 1));
        let genuine = c.seal(&mut a, &addr(2), b"x");
        // The same datagram with a far higher counter, or epoch: it fails
        // authentication and must not move the window on.
        for at in [25, 17] {
            let mut forged = genuine.clone();
            forged[at] ^= 0x80;
            assert_eq!(c.open(&mut b, &forged), Err(OpenError::Unauthenticated));
        }
        assert_eq!(b.senders(), 0);
        assert!(c.open(&mut b, &genuine).is_ok());
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let (mut a, mut b) = (end(1, 1), end(2, 1));
        let sealed = c.seal(&mut a, &addr(2), b"membership update");
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(c.open(&mut b, &bad).is_err(), "bit {i}");
        }
        assert!(c.open(&mut b, &sealed).is_ok());
    }

    #[test]
    fn other_keys_and_garbage_are_rejected() {
        let (k1, k2) = (Key::generate().unwrap(), Key::generate().unwrap());
        let c1 = GossipCipher::new(&ring(&[&k1]));
        let c2 = GossipCipher::new(&ring(&[&k2]));
        let (mut a, mut b) = (end(1, 1), end(2, 1));
        let x = c1.seal(&mut a, &addr(2), b"x");
        assert_eq!(c2.open(&mut b, &x), Err(OpenError::Unauthenticated));
        assert_eq!(c1.open(&mut b, b"short"), Err(OpenError::TooShort));
        assert_eq!(c1.open(&mut b, &[9u8; 80]), Err(OpenError::UnknownVersion));
        let mut v1 = x.clone();
        v1[0] = 1;
        assert_eq!(c1.open(&mut b, &v1), Err(OpenError::UnknownVersion));
    }

    #[test]
    fn rotation_accepts_old_and_new() {
        let (old, new) = (Key::generate().unwrap(), Key::generate().unwrap());
        let sender_old = GossipCipher::new(&ring(&[&old]));
        let sender_new = GossipCipher::new(&ring(&[&new, &old]));
        let receiver = GossipCipher::new(&ring(&[&old, &new]));
        let (mut a, mut b) = (end(1, 1), end(2, 1));
        let x = sender_old.seal(&mut a, &addr(2), b"a");
        assert!(receiver.open(&mut b, &x).is_ok());
        let y = sender_new.seal(&mut a, &addr(2), b"b");
        assert!(receiver.open(&mut b, &y).is_ok());
        // Once the old key is removed, its datagrams are no longer accepted.
        let after = GossipCipher::new(&ring(&[&new]));
        let z = sender_old.seal(&mut a, &addr(2), b"c");
        assert!(after.open(&mut b, &z).is_err());
    }

    #[test]
    fn ids_tell_addresses_apart() {
        let a = id_of(&addr(1));
        assert_eq!(a, id_of(&addr(1)));
        assert_ne!(a, id_of(&addr(2)));
        assert_ne!(a, id_of(&SocketAddr::from(([127, 0, 0, 2], 1))));
        assert_ne!(a, id_of(&"[::ffff:127.0.0.1]:1".parse().unwrap()));
    }
}
