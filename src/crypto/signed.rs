//! Gossip datagrams that name their sender: with a cluster CA, each one is
//! signed by its sender's certified node key.
//!
//! A signed datagram is a sealed one ([`super::gossip`]) of version 3 whose
//! plaintext ends in a trailer:
//!
//! ```text
//! payload | certificate (0 or n bytes) | n (2) | serial (8) | Ed25519 signature (64)
//! ```
//!
//! The signature, by the node key of the certificate `serial`, covers a
//! label, the datagram's header (version, sender, receiver, epoch and
//! counter) and everything in the plaintext before it. It is inside the
//! envelope, so only cluster key holders see who signed, and it covers the
//! header, so the replay window holds for it: a signed datagram opens once,
//! at its receiver, and never elsewhere. A receiver verifies the signature
//! after the cluster key has authenticated the datagram, and marks the
//! stamp only once both hold, so a datagram with a bad signature moves no
//! window.
//!
//! The certificate may ride along (the membership's question and answer
//! carry it, see [`crate::membership::wants_certificate`]); a receiver
//! keeps every certificate of its CA that it verified, from datagrams and
//! from its TCP sessions, in [`Certs`], by serial. A datagram signed with a
//! serial it does not hold is refused as [`OpenError::UnknownSigner`], and
//! the daemon asks its sender who it is.

use super::cert::{CaPublic, Cert, CertBody};
use super::gossip::{Endpoint, GossipCipher, MAX_PLAINTEXT, OpenError, SIGNED_VERSION};
use super::session::Identity;
use ed25519_dalek::{Signature, VerifyingKey};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

const LABEL: &[u8] = b"p2p gossip signed v1";
const SIG_LEN: usize = 64;

/// Bytes the trailer adds to a payload sent without a certificate.
pub const OVERHEAD: usize = 2 + 8 + SIG_LEN;

/// Most certificates a member keeps: far above the clusters SPEC aims at.
pub const MAX_CERTS: usize = 16_384;

/// A verified datagram: what it carried, and who signed it.
#[derive(Debug, Clone)]
pub struct Signed {
    pub payload: Vec<u8>,
    pub signer: Arc<CertBody>,
}

/// The certificates of our CA we have verified, by serial.
pub struct Certs {
    ca: CaPublic,
    known: HashMap<u64, (Arc<CertBody>, VerifyingKey)>,
}

impl Certs {
    pub fn new(ca: CaPublic) -> Certs {
        Certs {
            ca,
            known: HashMap::new(),
        }
    }

    /// Certificates held.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Keeps a certificate already verified against our CA (a TCP session's
    /// peer, or our own); whether it was not held yet.
    pub fn keep(&mut self, body: &CertBody) -> bool {
        if let Some((held, _)) = self.known.get(&body.serial)
            && **held == *body
        {
            return false;
        }
        if let Ok(key) = VerifyingKey::from_bytes(&body.key.ed25519) {
            if self.known.len() >= MAX_CERTS && !self.known.contains_key(&body.serial) {
                // Full: what has expired goes first, else any one.
                let now = jiff::Timestamp::now().as_second();
                self.known.retain(|_, (b, _)| b.not_after > now);
                if let Some(&any) = self.known.keys().next()
                    && self.known.len() >= MAX_CERTS
                {
                    self.known.remove(&any);
                }
            }
            self.known
                .insert(body.serial, (Arc::new(body.clone()), key));
            return true;
        }
        false
    }

    /// Every certificate held for member `name` (a renewed one beside the
    /// one it replaces).
    pub fn all_named(&self, name: &str) -> Vec<Arc<CertBody>> {
        self.known
            .values()
            .filter(|(b, _)| b.name == name)
            .map(|(b, _)| Arc::clone(b))
            .collect()
    }

    /// Verifies a certificate's bytes against our CA at `now` and keeps it.
    fn learn(&mut self, bytes: &[u8], now: i64) -> Result<u64, OpenError> {
        if let Some(held) = self.find_bytes(bytes) {
            return Ok(held);
        }
        let cert = Cert::from_bytes(bytes).map_err(|_| OpenError::BadSignature)?;
        let body = cert
            .verify(&self.ca, now)
            .map_err(|_| OpenError::BadSignature)?;
        self.keep(body);
        Ok(body.serial)
    }

    /// A certificate we hold already whose bytes these are: no second
    /// verification of the CA's signature for each question.
    fn find_bytes(&self, bytes: &[u8]) -> Option<u64> {
        let cert = Cert::from_bytes(bytes).ok()?;
        let (held, _) = self.known.get(&cert.body().serial)?;
        (**held == *cert.body()).then_some(cert.body().serial)
    }

    /// The signer `serial`, if we hold its certificate and it is valid at `now`.
    fn signer(&self, serial: u64, now: i64) -> Result<&(Arc<CertBody>, VerifyingKey), OpenError> {
        let held = self.known.get(&serial).ok_or(OpenError::UnknownSigner)?;
        if now < held.0.not_before || now >= held.0.not_after {
            return Err(OpenError::BadSignature);
        }
        Ok(held)
    }
}

/// What we sign with: our node key, and our certificate to show.
pub struct Signer {
    identity: Arc<Identity>,
    cert: Vec<u8>,
}

impl Signer {
    pub fn new(identity: Arc<Identity>) -> Signer {
        let cert = identity.cert.to_bytes();
        Signer { identity, cert }
    }

    /// Whether our certificate fits in a datagram beside `payload`.
    pub fn fits_with(&self, payload: usize) -> bool {
        payload + self.cert.len() + OVERHEAD <= MAX_PLAINTEXT
    }
}

fn signed_message(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(LABEL.len() + header.len() + body.len());
    m.extend_from_slice(LABEL);
    m.extend_from_slice(header);
    m.extend_from_slice(body);
    m
}

/// Seals `payload` for `to`, signed by `signer`, with its certificate when
/// `with_cert` (and it fits).
pub fn seal(
    cipher: &GossipCipher,
    end: &mut Endpoint,
    to: &SocketAddr,
    payload: &[u8],
    signer: &Signer,
    with_cert: bool,
) -> Vec<u8> {
    let cert: &[u8] = if with_cert && signer.fits_with(payload.len()) {
        &signer.cert
    } else {
        &[]
    };
    let serial = signer.identity.cert.body().serial;
    cipher.seal_as(end, to, SIGNED_VERSION, |header| {
        let mut body = Vec::with_capacity(payload.len() + cert.len() + OVERHEAD);
        body.extend_from_slice(payload);
        body.extend_from_slice(cert);
        body.extend_from_slice(&u16::try_from(cert.len()).unwrap_or(0).to_be_bytes());
        body.extend_from_slice(&serial.to_be_bytes());
        let sig = signer.identity.key.sign(&signed_message(header, &body));
        body.extend_from_slice(&sig);
        body
    })
}

/// Opens a signed datagram for `end`: the cluster key, the replay window,
/// then the signature of a certificate of our CA valid at `now` (seconds
/// since the epoch), learned from `certs` or from the datagram itself.
pub fn open(
    cipher: &GossipCipher,
    end: &mut Endpoint,
    datagram: &[u8],
    certs: &mut Certs,
    now: i64,
) -> Result<Signed, OpenError> {
    cipher.open_as(end, datagram, SIGNED_VERSION, |header, mut plain| {
        if plain.len() < OVERHEAD {
            return Err(OpenError::BadSignature);
        }
        let sig_at = plain.len() - SIG_LEN;
        let serial_at = sig_at - 8;
        let len_at = serial_at - 2;
        let cert_len = usize::from(u16::from_be_bytes([plain[len_at], plain[len_at + 1]]));
        let Some(cert_at) = len_at.checked_sub(cert_len) else {
            return Err(OpenError::BadSignature);
        };
        let mut s = [0u8; 8];
        s.copy_from_slice(&plain[serial_at..sig_at]);
        let serial = u64::from_be_bytes(s);
        if cert_len > 0 && certs.learn(&plain[cert_at..len_at], now)? != serial {
            return Err(OpenError::BadSignature);
        }
        let (body, key) = certs.signer(serial, now)?;
        let mut sig = [0u8; SIG_LEN];
        sig.copy_from_slice(&plain[sig_at..]);
        key.verify_strict(
            &signed_message(header, &plain[..sig_at]),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| OpenError::BadSignature)?;
        let signer = Arc::clone(body);
        plain.truncate(cert_at);
        Ok(Signed {
            payload: plain,
            signer,
        })
    })
}

/// Opens a signed datagram for a member without a CA (during a move to
/// certificates): the cluster key and the replay window hold as for any
/// datagram, and the trailer is taken off unchecked, since such a member
/// admits every holder of the key anyway.
pub fn open_unverified(
    cipher: &GossipCipher,
    end: &mut Endpoint,
    datagram: &[u8],
) -> Result<Vec<u8>, OpenError> {
    cipher.open_as(end, datagram, SIGNED_VERSION, |_, mut plain| {
        if plain.len() < OVERHEAD {
            return Err(OpenError::BadSignature);
        }
        let len_at = plain.len() - OVERHEAD;
        let cert_len = usize::from(u16::from_be_bytes([plain[len_at], plain[len_at + 1]]));
        let cert_at = len_at
            .checked_sub(cert_len)
            .ok_or(OpenError::BadSignature)?;
        plain.truncate(cert_at);
        Ok(plain)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cert::{CaSecret, NodeSecret};
    use crate::crypto::keys::{Key, KeyRing};

    const NOW: i64 = 1_800_000_000;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn end(port: u16) -> Endpoint {
        Endpoint::new(addr(port), 1, 1)
    }

    fn identity(ca: &CaSecret, name: &str, serial: u64, seed: u8) -> Arc<Identity> {
        let key = NodeSecret::from_seed(&[seed; 64]);
        let cert = ca
            .issue(CertBody {
                serial,
                not_before: NOW - 10,
                not_after: NOW + 3600,
                key: key.public(),
                name: name.into(),
                groups: vec![],
            })
            .unwrap();
        Arc::new(Identity::new(ca.public(), cert, key, NOW).unwrap())
    }

    struct World {
        cipher: GossipCipher,
        ca: CaSecret,
        a: Signer,
        b_certs: Certs,
    }

    fn world() -> World {
        let ca = CaSecret::from_seed(&[7; 32]);
        let ring = KeyRing::new(vec![Key::generate().unwrap()]).unwrap();
        World {
            cipher: GossipCipher::new(&ring),
            a: Signer::new(identity(&ca, "a", 1, 1)),
            b_certs: Certs::new(ca.public()),
            ca,
        }
    }

    /// The largest payload a member sends signed (foca's datagram size in
    /// every mode, and a revocation's news with its kind byte) fits one
    /// datagram; one of the unsigned limit would not, and would be dropped.
    #[test]
    fn the_largest_signed_payload_fits_one_datagram() {
        use crate::membership::{MAX_NEWS_BYTES, MAX_PAYLOAD, MAX_SIGNED_PAYLOAD};
        let w = world();
        let mut a = end(1);
        let fits = seal(
            &w.cipher,
            &mut a,
            &addr(2),
            &vec![0; MAX_SIGNED_PAYLOAD],
            &w.a,
            false,
        );
        assert!(!fits.is_empty() && fits.len() <= super::super::gossip::MAX_DATAGRAM);
        assert_eq!(MAX_NEWS_BYTES + 1, MAX_SIGNED_PAYLOAD);
        let over = seal(
            &w.cipher,
            &mut a,
            &addr(2),
            &vec![0; MAX_PAYLOAD],
            &w.a,
            false,
        );
        assert!(over.is_empty() || over.len() > super::super::gossip::MAX_DATAGRAM);
    }

    #[test]
    fn a_signed_datagram_names_its_signer_once_its_certificate_is_known() {
        let mut w = world();
        let (mut a, mut b) = (end(1), end(2));
        let plain = seal(&w.cipher, &mut a, &addr(2), b"ping", &w.a, false);
        assert_eq!(plain.len(), 4 + OVERHEAD + super::super::gossip::OVERHEAD);
        assert_eq!(
            open(&w.cipher, &mut b, &plain, &mut w.b_certs, NOW).unwrap_err(),
            OpenError::UnknownSigner
        );
        // Refused as unknown, it moved no window: once the certificate
        // rides along, the same stamp's successor and the first one open.
        let with = seal(&w.cipher, &mut a, &addr(2), b"who", &w.a, true);
        let got = open(&w.cipher, &mut b, &with, &mut w.b_certs, NOW).unwrap();
        assert_eq!(
            (got.payload.as_slice(), got.signer.name.as_str()),
            (&b"who"[..], "a")
        );
        let got = open(&w.cipher, &mut b, &plain, &mut w.b_certs, NOW).unwrap();
        assert_eq!(got.payload, b"ping");
        assert_eq!(w.b_certs.len(), 1);
        // And a replay is still refused.
        assert!(matches!(
            open(&w.cipher, &mut b, &plain, &mut w.b_certs, NOW),
            Err(OpenError::Replayed(_))
        ));
    }

    /// A certified insider signs with its own key under another member's
    /// serial, or shows its own certificate with the other's serial.
    #[test]
    fn a_signature_under_another_members_serial_is_refused() {
        let mut w = world();
        let insider = identity(&w.ca, "m", 2, 2);
        w.b_certs.keep(w.a.identity.cert.body());
        w.b_certs.keep(insider.cert.body());
        // The insider's key, a's serial.
        let forged_identity = Arc::new(Identity {
            ca: w.ca.public(),
            cert: w.a.identity.cert.clone(),
            key: NodeSecret::from_seed(&[2; 64]),
            accept_uncertified: false,
        });
        let forger = Signer::new(forged_identity);
        let (mut m, mut b) = (end(3), end(2));
        let forged = seal(&w.cipher, &mut m, &addr(2), b"i am a", &forger, true);
        assert_eq!(
            open(&w.cipher, &mut b, &forged, &mut w.b_certs, NOW).unwrap_err(),
            OpenError::BadSignature
        );
        let honest = Signer::new(insider);
        let ok = seal(&w.cipher, &mut m, &addr(2), b"i am m", &honest, false);
        let got = open(&w.cipher, &mut b, &ok, &mut w.b_certs, NOW).unwrap();
        assert_eq!(got.signer.name, "m");
    }

    #[test]
    fn every_flipped_bit_and_other_cas_are_refused() {
        let mut w = world();
        let (mut a, mut b) = (end(1), end(2));
        let sealed = seal(
            &w.cipher,
            &mut a,
            &addr(2),
            b"membership update",
            &w.a,
            true,
        );
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                open(&w.cipher, &mut b, &bad, &mut w.b_certs, NOW).is_err(),
                "bit {i}"
            );
        }
        // A certificate of another CA, however well signed, names nobody here.
        let other = CaSecret::from_seed(&[8; 32]);
        let stranger = Signer::new(identity(&other, "a", 1, 1));
        let x = seal(&w.cipher, &mut a, &addr(2), b"x", &stranger, true);
        assert_eq!(
            open(&w.cipher, &mut b, &x, &mut w.b_certs, NOW).unwrap_err(),
            OpenError::BadSignature
        );
        assert!(w.b_certs.is_empty());
        // An unsigned (version 2) datagram is not taken by a certified member.
        let v2 = w.cipher.seal(&mut a, &addr(2), b"x");
        assert_eq!(
            open(&w.cipher, &mut b, &v2, &mut w.b_certs, NOW).unwrap_err(),
            OpenError::UnknownVersion
        );
        assert!(open(&w.cipher, &mut b, &sealed, &mut w.b_certs, NOW).is_ok());
    }

    #[test]
    fn an_expired_signer_is_refused() {
        let mut w = world();
        let (mut a, mut b) = (end(1), end(2));
        w.b_certs.keep(w.a.identity.cert.body());
        let x = seal(&w.cipher, &mut a, &addr(2), b"x", &w.a, false);
        assert_eq!(
            open(&w.cipher, &mut b, &x, &mut w.b_certs, NOW + 7200).unwrap_err(),
            OpenError::BadSignature
        );
        assert!(open(&w.cipher, &mut b, &x, &mut w.b_certs, NOW).is_ok());
    }

    /// A member without a CA (moving to certificates) takes a signed
    /// datagram's payload, with or without a certificate riding along, but
    /// only under the cluster key, and only once.
    #[test]
    fn a_member_without_a_ca_opens_signed_datagrams_once_and_only_under_the_key() {
        let w = world();
        let (mut a, mut b) = (end(1), end(2));
        for with_cert in [false, true] {
            let d = seal(&w.cipher, &mut a, &addr(2), b"payload", &w.a, with_cert);
            assert_eq!(open_unverified(&w.cipher, &mut b, &d).unwrap(), b"payload");
            assert!(matches!(
                open_unverified(&w.cipher, &mut b, &d),
                Err(OpenError::Replayed(_))
            ));
        }
        let other = GossipCipher::new(&KeyRing::new(vec![Key::generate().unwrap()]).unwrap());
        let d = seal(&w.cipher, &mut a, &addr(2), b"payload", &w.a, false);
        assert_eq!(
            open_unverified(&other, &mut b, &d).unwrap_err(),
            OpenError::Unauthenticated
        );
        // An unsigned datagram is not of this version.
        let plain = w.cipher.seal(&mut a, &addr(2), b"payload");
        assert_eq!(
            open_unverified(&w.cipher, &mut b, &plain).unwrap_err(),
            OpenError::UnknownVersion
        );
    }
}
