//! Cluster security: the shared key, sealed gossip datagrams and the
//! encrypted TCP session.
//!
//! The cluster key never crosses the wire. Each purpose gets its own subkey,
//! derived with HKDF-SHA256 under a distinct label, so a weakness in one use
//! cannot spill into another: gossip datagrams are sealed with
//! XChaCha20-Poly1305 under the gossip subkey ([`gossip`]), each opened at
//! most once, at the member it was sent to ([`replay`]); TCP sessions run a
//! Noise `NNpsk0` handshake with the session subkey as the pre-shared key,
//! which proves both ends hold the key and gives forward secrecy ([`session`]).
//! Several keys may be installed ([`keys::KeyRing`]): the first sends, all are
//! accepted, so a key can be rotated without downtime. Certified members
//! ([`cert`]) run `XXpsk0` instead, the same subkey as the pre-shared key,
//! and exchange their certificates in the handshake, and sign every gossip
//! datagram with their node key ([`signed`]).

pub mod cert;
pub mod gossip;
pub mod keys;
pub mod replay;
pub mod session;
pub mod signed;

use std::io;

/// Fills `buf` from the kernel's random source.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe writable memory we own.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Derives a 32-byte subkey of `key` for one purpose, wiped when dropped.
pub(crate) fn derive(key: &[u8; 32], label: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, key);
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so this cannot fail.
    let _ = hk.expand(label, &mut out[..]);
    out
}
