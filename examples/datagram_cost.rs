//! What one gossip datagram costs its receiver, in nanoseconds: opening a
//! valid one, and rejecting a forged, a replayed, a misaddressed and a
//! garbage one, with replay protection on (`GossipCipher::open` with an
//! `Endpoint`, as the daemon's gossip loop calls it), beside what opening
//! cost before replay protection (XChaCha20-Poly1305 alone, as datagram
//! version 1 did). And the same for the signed datagrams of certified
//! members (version 3, `crypto::signed`): an Ed25519 signature by the
//! sender's node key to make, and to verify at the receiver.
//!
//!     cargo run --release --example datagram_cost [-- ITERATIONS]
//!
//! bench/datagram_cost.sh runs it and prints the table; see bench/README.md.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use p2p::crypto::cert::{CaSecret, CertBody, NodeSecret};
use p2p::crypto::gossip::{Endpoint, GossipCipher, MAX_PLAINTEXT};
use p2p::crypto::keys::{Key, KeyRing};
use p2p::crypto::session::Identity;
use p2p::crypto::signed::{self, Certs, Signer};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Nanoseconds per call of `f`, the median of five rounds of `n` calls.
fn ns(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..n {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let (k1, k2) = (Key::from_bytes([1; 32]), Key::from_bytes([2; 32]));
    println!(
        "# ns per datagram, median of 5 rounds of {n}; receiver with replay windows of 100 senders"
    );
    println!(
        "{:<44} {:>10} {:>10}",
        "datagram (payload bytes)", "1 key", "2 keys"
    );
    for size in [200usize, MAX_PLAINTEXT] {
        let row = |what: &str, f: &dyn Fn(&KeyRing) -> f64| {
            let one = f(&KeyRing::new(vec![k1.clone()]).expect("key"));
            // During a rotation: the sender's key is the ring's second.
            let two = f(&KeyRing::new(vec![k2.clone(), k1.clone()]).expect("keys"));
            println!("{:<44} {one:>10.0} {two:>10.0}", format!("{what} ({size})"));
        };
        let sender_ring = KeyRing::new(vec![k1.clone()]).expect("key");
        let sender = GossipCipher::new(&sender_ring);
        let plain = vec![0x5au8; size];
        // 100 senders, each with its own stream of datagrams for `me`.
        let me = addr(1);
        let seal_all = |count: usize| -> Vec<Vec<u8>> {
            let mut ends: Vec<Endpoint> = (0..100)
                .map(|i| Endpoint::new(addr(1000 + i), 1, 1))
                .collect();
            (0..count)
                .map(|i| sender.seal(&mut ends[i % 100], &me, &plain))
                .collect()
        };
        let fresh = seal_all(n);
        row("valid, opened", &|ring| {
            // Each is fresh once: one pass over them all.
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            let t = Instant::now();
            for d in &fresh {
                black_box(c.open(&mut end, d).is_ok());
            }
            t.elapsed().as_nanos() as f64 / fresh.len() as f64
        });
        row("replayed, rejected (seen already)", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            for d in &fresh {
                let _ = c.open(&mut end, d);
            }
            ns(n, |i| {
                black_box(c.open(&mut end, &fresh[i % fresh.len()]).is_err());
            })
        });
        let forged: Vec<Vec<u8>> = fresh
            .iter()
            .map(|d| {
                let mut f = d.clone();
                let last = f.len() - 1;
                f[last] ^= 1;
                f
            })
            .collect();
        row("forged (bad tag, fresh stamp), rejected", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            ns(n, |i| {
                black_box(c.open(&mut end, &forged[i % forged.len()]).is_err());
            })
        });
        row("for another member, rejected", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(addr(2), 1, 1);
            ns(n, |i| {
                black_box(c.open(&mut end, &fresh[i % fresh.len()]).is_err());
            })
        });
        let garbage = vec![0xffu8; size + 73];
        row("garbage (unknown version), rejected", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            ns(n, |_| {
                black_box(c.open(&mut end, &garbage).is_err());
            })
        });
        // Before replay protection: version 1 opened every datagram by
        // trying each key's XChaCha20-Poly1305, nothing else.
        let v1_key = |k: &Key, label: &[u8]| {
            let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, k.bytes());
            let mut sub = [0u8; 32];
            let _ = hk.expand(label, &mut sub);
            XChaCha20Poly1305::new((&sub).into())
        };
        let nonce = [7u8; 24];
        let v1_sealed = v1_key(&k1, b"p2p gossip v1")
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &[1],
                },
            )
            .expect("seal");
        let mut v1_forged = v1_sealed.clone();
        v1_forged[0] ^= 1;
        for (what, ct) in [
            ("before (v1): valid, opened", &v1_sealed),
            ("before (v1): forged or replayed, rejected", &v1_forged),
        ] {
            row(what, &|ring| {
                let ciphers: Vec<XChaCha20Poly1305> = ring
                    .keys()
                    .iter()
                    .map(|k| v1_key(k, b"p2p gossip v1"))
                    .collect();
                ns(n, |_| {
                    black_box(
                        ciphers
                            .iter()
                            .find_map(|c| {
                                c.decrypt(
                                    XNonce::from_slice(&nonce),
                                    Payload { msg: ct, aad: &[1] },
                                )
                                .ok()
                            })
                            .is_some(),
                    );
                })
            });
        }
        row("seal (the sender's cost)", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(addr(3), 1, 1);
            ns(n, |_| {
                black_box(c.seal(&mut end, &me, &plain));
            })
        });
        // Certified members: the same, signed (the trailer takes its
        // room out of the largest payload).
        let signed_plain = &plain[..size.min(MAX_PLAINTEXT - signed::OVERHEAD)];
        let ca = CaSecret::from_seed(&[9; 32]);
        let now = 1_800_000_000;
        let key = NodeSecret::from_seed(&[3; 64]);
        let cert = ca
            .issue(CertBody {
                serial: 1,
                not_before: now - 60,
                not_after: now + 3600,
                key: key.public(),
                name: "sender".into(),
                groups: vec!["web".into()],
            })
            .expect("cert");
        let id = Arc::new(Identity::new(ca.public(), cert, key, now).expect("identity"));
        let signer = Signer::new(Arc::clone(&id));
        let signed_fresh: Vec<Vec<u8>> = {
            let mut ends: Vec<Endpoint> = (0..100)
                .map(|i| Endpoint::new(addr(1000 + i), 1, 1))
                .collect();
            (0..n)
                .map(|i| {
                    signed::seal(
                        &sender,
                        &mut ends[i % 100],
                        &me,
                        signed_plain,
                        &signer,
                        false,
                    )
                })
                .collect()
        };
        let certs = || {
            let mut c = Certs::new(ca.public());
            c.keep(id.cert.body());
            c
        };
        row("signed (v3): valid, opened", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            let mut known = certs();
            let t = Instant::now();
            for d in &signed_fresh {
                black_box(signed::open(&c, &mut end, d, &mut known, now).is_ok());
            }
            t.elapsed().as_nanos() as f64 / signed_fresh.len() as f64
        });
        // The signature's last byte flipped before sealing is what an
        // insider without the key would manage: sealed fine, signed badly.
        let wrong_key = {
            let other = NodeSecret::from_seed(&[4; 64]);
            Signer::new(Arc::new(Identity {
                ca: ca.public(),
                cert: id.cert.clone(),
                key: other,
                accept_uncertified: false,
            }))
        };
        let badly_signed: Vec<Vec<u8>> = {
            let mut ends: Vec<Endpoint> = (0..100)
                .map(|i| Endpoint::new(addr(1000 + i), 1, 1))
                .collect();
            (0..n)
                .map(|i| {
                    signed::seal(
                        &sender,
                        &mut ends[i % 100],
                        &me,
                        signed_plain,
                        &wrong_key,
                        false,
                    )
                })
                .collect()
        };
        row("signed: another key's signature, rejected", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(me, 1, 1);
            let mut known = certs();
            ns(n, |i| {
                let d = &badly_signed[i % badly_signed.len()];
                black_box(signed::open(&c, &mut end, d, &mut known, now).is_err());
            })
        });
        row("signed: seal and sign (the sender's cost)", &|ring| {
            let c = GossipCipher::new(ring);
            let mut end = Endpoint::new(addr(3), 1, 1);
            ns(n, |_| {
                black_box(signed::seal(
                    &c,
                    &mut end,
                    &me,
                    signed_plain,
                    &signer,
                    false,
                ));
            })
        });
        row("signed: with the certificate, opened", &|ring| {
            let c = GossipCipher::new(ring);
            let mut ends: Vec<Endpoint> = (0..100)
                .map(|i| Endpoint::new(addr(1000 + i), 1, 1))
                .collect();
            let small = &signed_plain[..signed_plain.len().min(400)];
            let with: Vec<Vec<u8>> = (0..n)
                .map(|i| signed::seal(&sender, &mut ends[i % 100], &me, small, &signer, true))
                .collect();
            let mut end = Endpoint::new(me, 1, 1);
            let mut known = Certs::new(ca.public());
            let t = Instant::now();
            for d in &with {
                black_box(signed::open(&c, &mut end, d, &mut known, now).is_ok());
            }
            t.elapsed().as_nanos() as f64 / with.len() as f64
        });
    }
}
