//! Node certificates signed by a cluster CA, and the key files around them.
//!
//! A node holds two key pairs: an Ed25519 pair that names it (and may sign
//! for it), and an X25519 pair that is its static key in the Noise handshake
//! of [`super::session`]. Keeping the two apart means no key is used both
//! to sign and to agree on secrets. A certificate binds both public keys to
//! a member name and groups for a time, under the CA's Ed25519 signature.
//!
//! Everything here is pure: bytes and a clock reading in, a verdict out.
//! Every file is one line, `LABEL BASE64`, the label naming what follows and
//! its version:
//!
//! - `p2p-ca-secret-v1`: the CA's Ed25519 seed (32 bytes).
//! - `p2p-ca-v1`: the CA's Ed25519 public key (32 bytes).
//! - `p2p-node-secret-v1`: the node's Ed25519 seed, then its X25519 secret (64 bytes).
//! - `p2p-node-v1`: the node's Ed25519 public key, then its X25519 public key (64 bytes).
//! - `p2p-cert-v1`: a certificate, laid out as below.
//!
//! A certificate, integers big-endian:
//!
//! ```text
//! magic "p2pc" (4) | version 1 (1) | serial (8) | not-before (8) | not-after (8)
//! | Ed25519 key (32) | X25519 key (32) | name length (1) | name
//! | group count (1) | per group: length (1) | group
//! | Ed25519 signature by the CA over everything before it (64)
//! ```
//!
//! Times are seconds since the Unix epoch (signed). The name and each group
//! follow the member-name rules of [`crate::membership::check_name`]; at most
//! [`MAX_GROUPS`] groups, sorted and distinct. Nothing may follow the
//! signature, so one certificate has exactly one encoding.

use super::keys::{base64_decode, base64_encode};
use crate::membership::check_name;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;
use zeroize::Zeroizing;

/// The certificate layout this code writes and reads.
pub const VERSION: u8 = 1;
/// Groups one certificate may carry.
pub const MAX_GROUPS: usize = 32;
const MAGIC: &[u8; 4] = b"p2pc";
const SIG_LEN: usize = 64;

const CA_SECRET: &str = "p2p-ca-secret-v1";
const CA_PUBLIC: &str = "p2p-ca-v1";
const NODE_SECRET: &str = "p2p-node-secret-v1";
const NODE_PUBLIC: &str = "p2p-node-v1";
const CERT: &str = "p2p-cert-v1";
const REVOKED: &str = "p2p-revoked-v1";
const REVOKED_MAGIC: &[u8; 4] = b"p2pr";
/// Serials one revocation list may hold.
pub const MAX_REVOKED: usize = 100_000;

/// Why a key file or certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// Not the expected kind of file, or broken bytes.
    Malformed(String),
    /// A layout version this build does not know.
    Version(u8),
    /// The signature does not verify under the CA's key: another CA's
    /// certificate, or a field changed after signing.
    BadSignature,
    /// Not valid before this time (seconds since the epoch).
    NotYetValid(i64),
    /// Expired at this time.
    Expired(i64),
    /// Valid, but for another name than the one claimed.
    WrongName { certified: String, claimed: String },
    /// Valid, but for another key than the one the peer proved it holds.
    WrongKey,
    /// Revoked by the CA (this serial).
    Revoked(u64),
    /// None at all, where only certified peers are accepted.
    Missing,
    /// Not revoked itself, but issued before a revoked certificate of the
    /// same name, whose member is cut off.
    Superseded,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Malformed(m) => write!(f, "malformed: {m}"),
            CertError::Version(v) => write!(f, "certificate version {v} is not supported"),
            CertError::BadSignature => write!(f, "not signed by this cluster's CA"),
            CertError::NotYetValid(t) => write!(f, "not valid before {}", show_time(*t)),
            CertError::Expired(t) => write!(f, "expired at {}", show_time(*t)),
            CertError::WrongName { certified, claimed } => write!(
                f,
                "issued to {certified:?}, but the peer claims to be {claimed:?}"
            ),
            CertError::WrongKey => write!(f, "issued for another key than the peer's"),
            CertError::Revoked(n) => write!(f, "serial {n:016x} is revoked"),
            CertError::Superseded => write!(
                f,
                "issued before a revoked certificate of the same name: the member is cut off"
            ),
            CertError::Missing => write!(
                f,
                "the peer has none, and this member accepts only certified peers"
            ),
        }
    }
}

impl std::error::Error for CertError {}

/// A time as RFC 3339 (UTC), or the raw number when out of range.
pub fn show_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn malformed(m: impl Into<String>) -> CertError {
    CertError::Malformed(m.into())
}

/// The bytes of a one-line `LABEL BASE64` file, checked against `label`.
fn unwrap_line(text: &str, label: &str) -> Result<Zeroizing<Vec<u8>>, CertError> {
    let line = text.trim();
    let Some((got, b64)) = line.split_once(' ') else {
        return Err(malformed(format!("expected one line: {label} BASE64")));
    };
    if got != label {
        return Err(malformed(format!(
            "this is a {} file, not {label}",
            crate::daemon::logging::untrusted(got)
        )));
    }
    base64_decode(b64.trim()).ok_or_else(|| malformed("bad base64"))
}

fn wrap_line(label: &str, bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(format!("{label} {}\n", base64_encode(bytes)))
}

fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], CertError> {
    bytes
        .try_into()
        .map_err(|_| malformed(format!("{what}: expected {N} bytes, got {}", bytes.len())))
}

fn verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, CertError> {
    VerifyingKey::from_bytes(bytes).map_err(|_| malformed("not an Ed25519 public key"))
}

/// The X25519 public key of a secret, as Noise computes it.
fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// The CA's signing key; meant to stay off the cluster.
pub struct CaSecret(SigningKey);

impl CaSecret {
    /// A new key from 32 random bytes.
    pub fn from_seed(seed: &[u8; 32]) -> CaSecret {
        CaSecret(SigningKey::from_bytes(seed))
    }

    pub fn public(&self) -> CaPublic {
        CaPublic(self.0.verifying_key())
    }

    /// The key file's text.
    pub fn encode(&self) -> Zeroizing<String> {
        wrap_line(CA_SECRET, self.0.as_bytes())
    }

    pub fn decode(text: &str) -> Result<CaSecret, CertError> {
        let bytes = unwrap_line(text, CA_SECRET)?;
        let seed = Zeroizing::new(array::<32>(&bytes, "CA key")?);
        Ok(CaSecret::from_seed(&seed))
    }

    /// Signs a certificate for `body`.
    pub fn issue(&self, body: CertBody) -> Result<Cert, CertError> {
        body.check()?;
        let signed = body.encode();
        let signature = self.0.sign(&signed).to_bytes();
        Ok(Cert {
            body,
            signed,
            signature,
        })
    }
}

/// The CA's public key, which every certified member holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPublic(VerifyingKey);

impl CaPublic {
    pub fn encode(&self) -> String {
        format!("{CA_PUBLIC} {}\n", base64_encode(self.0.as_bytes()))
    }

    pub fn decode(text: &str) -> Result<CaPublic, CertError> {
        let bytes = unwrap_line(text, CA_PUBLIC)?;
        Ok(CaPublic(verifying_key(&array(&bytes, "CA public key")?)?))
    }
}

/// A node's two public keys: Ed25519 (identity) and X25519 (Noise static).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePublic {
    pub ed25519: [u8; 32],
    pub x25519: [u8; 32],
}

impl NodePublic {
    pub fn encode(&self) -> String {
        let mut b = self.ed25519.to_vec();
        b.extend_from_slice(&self.x25519);
        format!("{NODE_PUBLIC} {}\n", base64_encode(&b))
    }

    pub fn decode(text: &str) -> Result<NodePublic, CertError> {
        let bytes = unwrap_line(text, NODE_PUBLIC)?;
        let all: [u8; 64] = array(&bytes, "node public key")?;
        let (ed, x) = all.split_at(32);
        let p = NodePublic {
            ed25519: array(ed, "Ed25519 key")?,
            x25519: array(x, "X25519 key")?,
        };
        verifying_key(&p.ed25519)?;
        Ok(p)
    }
}

/// A node's secret keys.
pub struct NodeSecret {
    ed25519: SigningKey,
    x25519: Zeroizing<[u8; 32]>,
}

impl NodeSecret {
    /// A new key pair from 64 random bytes (Ed25519 seed, X25519 secret).
    pub fn from_seed(seed: &[u8; 64]) -> NodeSecret {
        let mut ed = Zeroizing::new([0u8; 32]);
        let mut x = Zeroizing::new([0u8; 32]);
        ed.copy_from_slice(&seed[..32]);
        x.copy_from_slice(&seed[32..]);
        NodeSecret {
            ed25519: SigningKey::from_bytes(&ed),
            x25519: x,
        }
    }

    pub fn public(&self) -> NodePublic {
        NodePublic {
            ed25519: self.ed25519.verifying_key().to_bytes(),
            x25519: x25519_public(&self.x25519),
        }
    }

    /// The Ed25519 signature of `message` by this node (callers put a
    /// label of their purpose first, so no signature serves two uses).
    pub fn sign(&self, message: &[u8]) -> [u8; SIG_LEN] {
        self.ed25519.sign(message).to_bytes()
    }

    /// The X25519 secret, the Noise static key.
    pub fn x25519(&self) -> &[u8; 32] {
        &self.x25519
    }

    pub fn encode(&self) -> Zeroizing<String> {
        let mut b = Zeroizing::new(self.ed25519.to_bytes().to_vec());
        b.extend_from_slice(&self.x25519[..]);
        wrap_line(NODE_SECRET, &b)
    }

    pub fn decode(text: &str) -> Result<NodeSecret, CertError> {
        let bytes = unwrap_line(text, NODE_SECRET)?;
        let seed = Zeroizing::new(array::<64>(&bytes, "node key")?);
        Ok(NodeSecret::from_seed(&seed))
    }
}

/// What a certificate says, before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBody {
    pub serial: u64,
    pub not_before: i64,
    pub not_after: i64,
    pub key: NodePublic,
    pub name: String,
    /// Sorted and distinct.
    pub groups: Vec<String>,
}

impl CertBody {
    fn check(&self) -> Result<(), CertError> {
        check_name(&self.name).map_err(|e| malformed(e.to_string()))?;
        if self.groups.len() > MAX_GROUPS {
            return Err(malformed(format!("more than {MAX_GROUPS} groups")));
        }
        for g in &self.groups {
            check_name(g).map_err(|_| {
                malformed(format!(
                    "the group \"{}\" is not 1 to 64 ASCII letters, digits, '.', '_', '-', ':' or '@'",
                    crate::daemon::logging::untrusted(g)
                ))
            })?;
        }
        if !self.groups.windows(2).all(|w| w[0] < w[1]) {
            return Err(malformed("groups not sorted and distinct"));
        }
        if self.not_after <= self.not_before {
            return Err(malformed("not-after is not after not-before"));
        }
        Ok(())
    }

    /// The signed part of the certificate.
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.serial.to_be_bytes());
        b.extend_from_slice(&self.not_before.to_be_bytes());
        b.extend_from_slice(&self.not_after.to_be_bytes());
        b.extend_from_slice(&self.key.ed25519);
        b.extend_from_slice(&self.key.x25519);
        // check() bounded each string to 64 bytes and the count to 32.
        b.push(self.name.len() as u8);
        b.extend_from_slice(self.name.as_bytes());
        b.push(self.groups.len() as u8);
        for g in &self.groups {
            b.push(g.len() as u8);
            b.extend_from_slice(g.as_bytes());
        }
        b
    }
}

/// A reader over the certificate bytes that fails instead of running short.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CertError> {
        if self.0.len() < n {
            return Err(malformed("cut short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CertError> {
        Ok(self.take(1)?[0])
    }

    fn be8(&mut self) -> Result<[u8; 8], CertError> {
        array(self.take(8)?, "integer")
    }

    fn string(&mut self) -> Result<String, CertError> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| malformed("a name is not UTF-8"))
    }
}

/// A decoded certificate. Decoding checks the layout only; [`Cert::verify`]
/// says whether to trust it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    body: CertBody,
    /// The exact bytes the signature covers.
    signed: Vec<u8>,
    signature: [u8; SIG_LEN],
}

impl Cert {
    /// What the certificate claims (trust it only once verified).
    pub fn body(&self) -> &CertBody {
        &self.body
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.signed.clone();
        b.extend_from_slice(&self.signature);
        b
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Cert, CertError> {
        let mut c = Cursor(bytes);
        if c.take(4)? != MAGIC {
            return Err(malformed("not a p2p certificate"));
        }
        let version = c.u8()?;
        if version != VERSION {
            return Err(CertError::Version(version));
        }
        let serial = u64::from_be_bytes(c.be8()?);
        let not_before = i64::from_be_bytes(c.be8()?);
        let not_after = i64::from_be_bytes(c.be8()?);
        let key = NodePublic {
            ed25519: array(c.take(32)?, "Ed25519 key")?,
            x25519: array(c.take(32)?, "X25519 key")?,
        };
        let name = c.string()?;
        let count = usize::from(c.u8()?);
        let mut groups = Vec::with_capacity(count.min(MAX_GROUPS));
        for _ in 0..count {
            groups.push(c.string()?);
        }
        let signed_len = bytes.len() - c.0.len();
        let signature = array(c.take(SIG_LEN)?, "signature")?;
        if !c.0.is_empty() {
            return Err(malformed("bytes after the signature"));
        }
        let body = CertBody {
            serial,
            not_before,
            not_after,
            key,
            name,
            groups,
        };
        body.check()?;
        Ok(Cert {
            body,
            signed: bytes[..signed_len].to_vec(),
            signature,
        })
    }

    /// The certificate file's text.
    pub fn encode(&self) -> String {
        format!("{CERT} {}\n", base64_encode(&self.to_bytes()))
    }

    pub fn decode(text: &str) -> Result<Cert, CertError> {
        Cert::from_bytes(&unwrap_line(text, CERT)?)
    }

    /// Checks the CA's signature only: that the CA issued this certificate
    /// (for binding a serial to a name, whatever the validity).
    pub fn verify_signature(&self, ca: &CaPublic) -> Result<&CertBody, CertError> {
        let sig = Signature::from_bytes(&self.signature);
        ca.0.verify_strict(&self.signed, &sig)
            .map_err(|_| CertError::BadSignature)?;
        Ok(&self.body)
    }

    /// Checks the CA's signature and that `now` (seconds since the epoch)
    /// falls within the validity.
    pub fn verify(&self, ca: &CaPublic, now: i64) -> Result<&CertBody, CertError> {
        self.verify_signature(ca)?;
        if now < self.body.not_before {
            return Err(CertError::NotYetValid(self.body.not_before));
        }
        if now >= self.body.not_after {
            return Err(CertError::Expired(self.body.not_after));
        }
        Ok(&self.body)
    }

    /// [`Cert::verify`], then that the certificate is for the peer's proven
    /// Noise static key `x25519`.
    pub fn verify_peer(
        &self,
        ca: &CaPublic,
        now: i64,
        x25519: &[u8],
    ) -> Result<&CertBody, CertError> {
        let body = self.verify(ca, now)?;
        if body.key.x25519[..] != *x25519 {
            return Err(CertError::WrongKey);
        }
        Ok(body)
    }
}

impl CertBody {
    /// That the certificate names `claimed`.
    pub fn check_name(&self, claimed: &str) -> Result<(), CertError> {
        if self.name != claimed {
            return Err(CertError::WrongName {
                certified: self.name.clone(),
                claimed: crate::daemon::logging::untrusted(claimed).to_string(),
            });
        }
        Ok(())
    }
}

/// A revocation list: the serials the CA has withdrawn, as of `issued`.
/// A newer list replaces an older one whole, so each carries every serial
/// still revoked.
///
/// ```text
/// magic "p2pr" (4) | version 1 (1) | issued (8) | count (4) | serials, ascending (8 each)
/// | Ed25519 signature by the CA over everything before it (64)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocations {
    pub issued: i64,
    /// Ascending and distinct.
    pub serials: Vec<u64>,
    signed: Vec<u8>,
    signature: [u8; SIG_LEN],
}

impl Revocations {
    /// Signs a list of `serials` (sorted and made distinct here).
    pub fn issue(
        ca: &CaSecret,
        issued: i64,
        mut serials: Vec<u64>,
    ) -> Result<Revocations, CertError> {
        serials.sort_unstable();
        serials.dedup();
        if serials.len() > MAX_REVOKED {
            return Err(malformed(format!("more than {MAX_REVOKED} serials")));
        }
        let mut b = Vec::with_capacity(17 + 8 * serials.len());
        b.extend_from_slice(REVOKED_MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&issued.to_be_bytes());
        b.extend_from_slice(&(serials.len() as u32).to_be_bytes());
        for n in &serials {
            b.extend_from_slice(&n.to_be_bytes());
        }
        let signature = ca.0.sign(&b).to_bytes();
        Ok(Revocations {
            issued,
            serials,
            signed: b,
            signature,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.signed.clone();
        b.extend_from_slice(&self.signature);
        b
    }

    /// Decodes the layout; [`Revocations::verify`] says whether to trust it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Revocations, CertError> {
        let mut c = Cursor(bytes);
        if c.take(4)? != REVOKED_MAGIC {
            return Err(malformed("not a p2p revocation list"));
        }
        let version = c.u8()?;
        if version != VERSION {
            return Err(CertError::Version(version));
        }
        let issued = i64::from_be_bytes(c.be8()?);
        let count = u32::from_be_bytes(array(c.take(4)?, "count")?) as usize;
        if count > MAX_REVOKED {
            return Err(malformed(format!("more than {MAX_REVOKED} serials")));
        }
        let mut serials = Vec::with_capacity(count);
        for _ in 0..count {
            serials.push(u64::from_be_bytes(c.be8()?));
        }
        if !serials.windows(2).all(|w| w[0] < w[1]) {
            return Err(malformed("serials not ascending"));
        }
        let signed_len = bytes.len() - c.0.len();
        let signature = array(c.take(SIG_LEN)?, "signature")?;
        if !c.0.is_empty() {
            return Err(malformed("bytes after the signature"));
        }
        Ok(Revocations {
            issued,
            serials,
            signed: bytes[..signed_len].to_vec(),
            signature,
        })
    }

    pub fn encode(&self) -> String {
        format!("{REVOKED} {}\n", base64_encode(&self.to_bytes()))
    }

    pub fn decode(text: &str) -> Result<Revocations, CertError> {
        Revocations::from_bytes(&unwrap_line(text, REVOKED)?)
    }

    /// Checks the CA's signature.
    pub fn verify(&self, ca: &CaPublic) -> Result<(), CertError> {
        let sig = Signature::from_bytes(&self.signature);
        ca.0.verify_strict(&self.signed, &sig)
            .map_err(|_| CertError::BadSignature)
    }

    /// Whether the certificate `body` is revoked.
    pub fn check(&self, body: &CertBody) -> Result<(), CertError> {
        match self.serials.binary_search(&body.serial) {
            Ok(_) => Err(CertError::Revoked(body.serial)),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn ca(n: u8) -> CaSecret {
        CaSecret::from_seed(&[n; 32])
    }

    fn node(n: u8) -> NodeSecret {
        NodeSecret::from_seed(&[n; 64])
    }

    fn body() -> CertBody {
        CertBody {
            serial: 42,
            not_before: NOW - 10,
            not_after: NOW + 3600,
            key: node(7).public(),
            name: "web01".into(),
            groups: vec!["ops".into(), "web".into()],
        }
    }

    #[test]
    fn a_certificate_round_trips_and_verifies() {
        let ca = ca(1);
        let cert = ca.issue(body()).unwrap();
        let text = cert.encode();
        assert!(text.starts_with("p2p-cert-v1 "));
        let back = Cert::decode(&text).unwrap();
        assert_eq!(back, cert);
        let b = back.verify(&ca.public(), NOW).unwrap();
        assert_eq!(b, &body());
        assert!(
            back.verify_peer(&ca.public(), NOW, &node(7).public().x25519)
                .is_ok()
        );
    }

    #[test]
    fn changing_any_byte_of_the_certificate_fails() {
        let ca = ca(1);
        let bytes = ca.issue(body()).unwrap().to_bytes();
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut t = bytes.clone();
                t[i] ^= bit;
                let verdict =
                    Cert::from_bytes(&t).and_then(|c| c.verify(&ca.public(), NOW).cloned());
                assert!(
                    verdict.is_err(),
                    "byte {i} bit {bit:#x} changed went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_field_is_covered_by_the_signature() {
        let ca = ca(1);
        let good = ca.issue(body()).unwrap();
        type Change = Box<dyn Fn(&mut CertBody)>;
        let changes: Vec<(&str, Change)> = vec![
            ("serial", Box::new(|b| b.serial += 1)),
            ("not_before", Box::new(|b| b.not_before -= 1)),
            ("not_after", Box::new(|b| b.not_after += 86_400)),
            (
                "ed25519",
                Box::new(|b| b.key.ed25519 = node(8).public().ed25519),
            ),
            (
                "x25519",
                Box::new(|b| b.key.x25519 = node(8).public().x25519),
            ),
            ("name", Box::new(|b| b.name = "db01".into())),
            ("groups", Box::new(|b| b.groups.push("zz".into()))),
        ];
        for (field, change) in changes {
            let mut b = good.body.clone();
            change(&mut b);
            // The forger re-encodes the changed body with the old signature.
            let mut forged = b.encode();
            forged.extend_from_slice(&good.signature);
            let c = Cert::from_bytes(&forged).unwrap();
            assert_eq!(
                c.verify(&ca.public(), NOW),
                Err(CertError::BadSignature),
                "{field}"
            );
        }
    }

    #[test]
    fn another_cas_certificate_is_refused() {
        let cert = ca(2).issue(body()).unwrap();
        assert_eq!(
            cert.verify(&ca(1).public(), NOW),
            Err(CertError::BadSignature)
        );
    }

    #[test]
    fn validity_is_a_half_open_interval() {
        let ca = ca(1);
        let cert = ca.issue(body()).unwrap();
        let p = ca.public();
        assert_eq!(
            cert.verify(&p, NOW - 11),
            Err(CertError::NotYetValid(NOW - 10))
        );
        assert!(cert.verify(&p, NOW - 10).is_ok());
        assert!(cert.verify(&p, NOW + 3599).is_ok());
        assert_eq!(
            cert.verify(&p, NOW + 3600),
            Err(CertError::Expired(NOW + 3600))
        );
    }

    #[test]
    fn a_certificate_for_another_key_or_name_is_refused() {
        let ca = ca(1);
        let cert = ca.issue(body()).unwrap();
        assert_eq!(
            cert.verify_peer(&ca.public(), NOW, &node(8).public().x25519),
            Err(CertError::WrongKey)
        );
        let b = cert.verify(&ca.public(), NOW).unwrap();
        assert!(b.check_name("web01").is_ok());
        assert!(matches!(
            b.check_name("db01"),
            Err(CertError::WrongName { .. })
        ));
    }

    #[test]
    fn bad_bodies_are_not_issued_nor_decoded() {
        let ca = ca(1);
        let mut unsorted = body();
        unsorted.groups.reverse();
        let mut bad_name = body();
        bad_name.name = "a b".into();
        let mut backwards = body();
        backwards.not_after = backwards.not_before;
        for b in [unsorted, bad_name, backwards] {
            assert!(matches!(ca.issue(b), Err(CertError::Malformed(_))));
        }
        let mut bytes = ca.issue(body()).unwrap().to_bytes();
        bytes.push(0);
        assert!(Cert::from_bytes(&bytes).is_err(), "a trailing byte");
        for n in 0..bytes.len() - 1 {
            assert!(Cert::from_bytes(&bytes[..n]).is_err(), "cut at {n}");
        }
        bytes[4] = 2;
        assert_eq!(Cert::from_bytes(&bytes), Err(CertError::Version(2)));
    }

    #[test]
    fn key_files_round_trip_and_are_told_apart() {
        let ca = ca(3);
        let n = node(4);
        assert_eq!(
            CaSecret::decode(&ca.encode()).unwrap().public(),
            ca.public()
        );
        assert_eq!(
            CaPublic::decode(&ca.public().encode()).unwrap(),
            ca.public()
        );
        assert_eq!(
            NodeSecret::decode(&n.encode()).unwrap().public(),
            n.public()
        );
        assert_eq!(
            NodePublic::decode(&n.public().encode()).unwrap(),
            n.public()
        );
        // A public key where a secret one is expected, and so on.
        assert!(CaSecret::decode(&ca.public().encode()).is_err());
        assert!(CaPublic::decode(&n.public().encode()).is_err());
        assert!(NodePublic::decode(&ca.public().encode()).is_err());
        assert!(Cert::decode(&n.public().encode()).is_err());
    }

    #[test]
    fn the_x25519_public_key_is_the_one_noise_sees() {
        let n = node(5);
        fn build(key: &[u8; 32]) -> snow::Builder<'_> {
            snow::Builder::new("Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap())
                .local_private_key(key)
                .unwrap()
        }
        let other = node(6);
        let mut init = build(n.x25519()).build_initiator().unwrap();
        let mut resp = build(other.x25519()).build_responder().unwrap();
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let n1 = init.write_message(&[], &mut a).unwrap();
        resp.read_message(&a[..n1], &mut b).unwrap();
        let n2 = resp.write_message(&[], &mut a).unwrap();
        init.read_message(&a[..n2], &mut b).unwrap();
        let n3 = init.write_message(&[], &mut a).unwrap();
        resp.read_message(&a[..n3], &mut b).unwrap();
        assert_eq!(resp.get_remote_static().unwrap(), &n.public().x25519);
    }

    #[test]
    fn a_revocation_list_verifies_and_names_its_serials() {
        let ca = ca(1);
        let list = Revocations::issue(&ca, NOW, vec![42, 7, 42]).unwrap();
        assert_eq!(list.serials, [7, 42]);
        let back = Revocations::decode(&list.encode()).unwrap();
        assert_eq!(back, list);
        assert!(back.verify(&ca.public()).is_ok());
        assert_eq!(back.check(&body()), Err(CertError::Revoked(42)));
        let mut other = body();
        other.serial = 43;
        assert!(back.check(&other).is_ok());
        // Another CA's list, and any changed byte, are refused.
        assert_eq!(
            back.verify(&self::ca(2).public()),
            Err(CertError::BadSignature)
        );
        let bytes = list.to_bytes();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 1;
            let v = Revocations::from_bytes(&t).and_then(|r| r.verify(&ca.public()));
            assert!(v.is_err(), "byte {i} changed went unnoticed");
        }
    }
}
