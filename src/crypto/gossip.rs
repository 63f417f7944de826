//! Sealing and opening gossip datagrams.
//!
//! A datagram is `[version = 1][24-byte random nonce][ciphertext + 16-byte tag]`,
//! XChaCha20-Poly1305 under a subkey of the cluster key, with the version
//! byte as associated data. The 192-bit nonce is random, so no counter needs
//! to be kept or synchronized. Opening tries every key of the ring; whatever
//! fails is dropped by the caller and counted, never answered.

use super::derive;
use super::keys::KeyRing;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Bytes a sealed datagram adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// The largest datagram we send: fits a 1500-byte Ethernet MTU with IP and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;

/// The largest plaintext that fits in one datagram.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM - OVERHEAD;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    TooShort,
    UnknownVersion,
    /// No installed key authenticates it: another cluster, tampering, or garbage.
    Unauthenticated,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpenError::TooShort => "datagram too short",
            OpenError::UnknownVersion => "unknown datagram version",
            OpenError::Unauthenticated => "datagram failed authentication",
        })
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

    /// Seals `plaintext` with the primary key.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        if super::random_bytes(&mut nonce).is_err() {
            // getrandom(2) does not fail once the pool is initialized; if it
            // ever did, a zero nonce must not be reused, so send nothing useful.
            return Vec::new();
        }
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let sealed = self.ciphers[0].encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &[VERSION],
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

    /// Opens a datagram sealed under any key of the ring.
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::TooShort);
        }
        if datagram[0] != VERSION {
            return Err(OpenError::UnknownVersion);
        }
        let nonce = XNonce::from_slice(&datagram[1..1 + NONCE_LEN]);
        let payload = || Payload {
            msg: &datagram[1 + NONCE_LEN..],
            aad: &[VERSION],
        };
        self.ciphers
            .iter()
            .find_map(|c| c.decrypt(nonce, payload()).ok())
            .ok_or(OpenError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::Key;

    fn ring(keys: &[&Key]) -> KeyRing {
        KeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let a = c.seal(b"hello");
        let b = c.seal(b"hello");
        assert_ne!(a, b, "every datagram has its own nonce");
        assert_eq!(a.len(), 5 + OVERHEAD);
        assert_eq!(c.open(&a).unwrap(), b"hello");
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let k = Key::generate().unwrap();
        let c = GossipCipher::new(&ring(&[&k]));
        let sealed = c.seal(b"membership update");
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(c.open(&bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn other_keys_and_garbage_are_rejected() {
        let (k1, k2) = (Key::generate().unwrap(), Key::generate().unwrap());
        let c1 = GossipCipher::new(&ring(&[&k1]));
        let c2 = GossipCipher::new(&ring(&[&k2]));
        assert_eq!(c2.open(&c1.seal(b"x")), Err(OpenError::Unauthenticated));
        assert_eq!(c1.open(b"short"), Err(OpenError::TooShort));
        assert_eq!(c1.open(&[9u8; 64]), Err(OpenError::UnknownVersion));
    }

    #[test]
    fn rotation_accepts_old_and_new() {
        let (old, new) = (Key::generate().unwrap(), Key::generate().unwrap());
        let sender_old = GossipCipher::new(&ring(&[&old]));
        let sender_new = GossipCipher::new(&ring(&[&new, &old]));
        let receiver = GossipCipher::new(&ring(&[&old, &new]));
        assert!(receiver.open(&sender_old.seal(b"a")).is_ok());
        assert!(receiver.open(&sender_new.seal(b"b")).is_ok());
        // Once the old key is removed, its datagrams are no longer accepted.
        let after = GossipCipher::new(&ring(&[&new]));
        assert!(after.open(&sender_old.seal(b"c")).is_err());
    }
}
