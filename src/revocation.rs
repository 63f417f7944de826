//! The CA's revocation list as the cluster spreads it, sans-IO.
//!
//! A list names serials; members are known by name. What ties the two is a
//! certificate, which the CA signed: a member that has seen a revoked
//! member's certificate (in a session, or passed on with a list) can prove
//! to any other which name a serial belongs to. So a list travels as
//! *news*: the list, and the certificates of the members it revokes that
//! the sender knows. Whoever hears news keeps the list if it is the CA's
//! and newer (issued later) than the one it holds, learns the certificates
//! the CA signed, and passes the news on; an older list, or one the CA did
//! not sign, is dropped.
//!
//! Of several certificates for one name, the latest issued (by not-before,
//! then serial) is the name's: a member given a new certificate after a
//! revocation is not cut off by its old one.
//!
//! News, integers big-endian:
//!
//! ```text
//! list length (4) | the list (crypto::cert::Revocations) | certificate count (2)
//! | per certificate: length (2) | certificate (crypto::cert::Cert)
//! ```
//!
//! The daemon does the sending (`daemon::cluster`): by gossip, to every
//! member from the member that installed the list and to a few from each
//! member that hears it first, and in every push/pull sync and join reply.

use crate::crypto::cert::{CaPublic, Cert, CertBody, CertError, Revocations};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Most certificates one piece of news carries.
pub const MAX_NEWS_CERTS: usize = 1024;

/// Most certificates kept, by name (a cluster's members, with room).
pub const MAX_KNOWN: usize = 65_536;

/// What hearing a list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Issued after the one held (or none was): now in force; pass it on.
    Newer,
    /// The list held already.
    Same,
    /// Issued before the one held, or at the same time with other serials:
    /// dropped.
    Older,
}

/// The list in force and the certificates that name its serials.
pub struct Revocation {
    ca: CaPublic,
    list: Option<Arc<Revocations>>,
    /// The latest certificate of the CA seen for each name.
    certs: HashMap<String, Cert>,
}

/// The news layout, decoded but not verified.
pub fn decode_news(bytes: &[u8]) -> Result<(Revocations, Vec<Cert>), CertError> {
    let bad = |m: &str| CertError::Malformed(m.to_string());
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(bad("news cut short"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(bad("news cut short"));
    }
    let (list, rest) = rest.split_at(len);
    let list = Revocations::from_bytes(list)?;
    let (count, mut rest) = rest.split_first_chunk::<2>().ok_or(bad("news cut short"))?;
    let count = usize::from(u16::from_be_bytes(*count));
    if count > MAX_NEWS_CERTS {
        return Err(bad("too many certificates in the news"));
    }
    let mut certs = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<2>().ok_or(bad("news cut short"))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(bad("news cut short"));
        }
        let (cert, tail) = tail.split_at(len);
        certs.push(Cert::from_bytes(cert)?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the news"));
    }
    Ok((list, certs))
}

/// Whether `a` supersedes `b` as the certificate of one name.
fn later(a: &CertBody, b: &CertBody) -> bool {
    (a.not_before, a.serial) > (b.not_before, b.serial)
}

impl Revocation {
    pub fn new(ca: CaPublic) -> Revocation {
        Revocation {
            ca,
            list: None,
            certs: HashMap::new(),
        }
    }

    /// The list in force.
    pub fn list(&self) -> Option<&Arc<Revocations>> {
        self.list.as_ref()
    }

    /// The certificate held for `name`.
    pub fn known(&self, name: &str) -> Option<&Cert> {
        self.certs.get(name)
    }

    /// Whether the certificate `body` is revoked by the list in force.
    /// The CA whose lists these are.
    pub fn ca(&self) -> &CaPublic {
        &self.ca
    }

    pub fn check(&self, body: &CertBody) -> Result<(), CertError> {
        self.list.as_ref().map_or(Ok(()), |l| l.check(body))
    }

    /// Takes a list: in force if the CA signed it and it is newer.
    pub fn install(&mut self, list: Revocations) -> Result<Heard, CertError> {
        list.verify(&self.ca)?;
        if let Some(held) = &self.list {
            if list.issued < held.issued {
                return Ok(Heard::Older);
            }
            if list.issued == held.issued {
                return Ok(if list == **held {
                    Heard::Same
                } else {
                    Heard::Older
                });
            }
        }
        self.list = Some(Arc::new(list));
        Ok(Heard::Newer)
    }

    /// Learns a certificate the CA signed (seen in a session, or in news);
    /// true if it is now its name's. Valid or not now, it ties its serial
    /// to its name.
    pub fn learn(&mut self, cert: &Cert) -> Result<bool, CertError> {
        let body = cert.verify_signature(&self.ca)?;
        match self.certs.get(&body.name) {
            Some(held) if !later(body, held.body()) => return Ok(false),
            None if self.certs.len() >= MAX_KNOWN => return Ok(false),
            _ => {}
        }
        self.certs.insert(body.name.clone(), cert.clone());
        Ok(true)
    }

    /// Takes news: its certificates of the CA are learned (those another
    /// CA signed are skipped), then its list is installed as
    /// [`Revocation::install`] does.
    pub fn hear(&mut self, news: &[u8]) -> Result<Heard, CertError> {
        let (list, certs) = decode_news(news)?;
        // The list first: certificates of a list that is refused are not
        // worth keeping.
        let heard = self.install(list)?;
        for c in &certs {
            let _ = self.learn(c);
        }
        Ok(heard)
    }

    /// The names whose latest known certificate the list in force revokes.
    pub fn revoked_names(&self) -> BTreeSet<String> {
        let Some(list) = &self.list else {
            return BTreeSet::new();
        };
        self.certs
            .values()
            .filter(|c| list.check(c.body()).is_err())
            .map(|c| c.body().name.clone())
            .collect()
    }

    /// The news of the list in force with the certificates of the names it
    /// revokes, as many as fit in `max` bytes (all of them with
    /// `usize::MAX`); none if there is no list or it alone does not fit.
    pub fn news(&self, max: usize) -> Option<Vec<u8>> {
        let list = self.list.as_ref()?.to_bytes();
        let mut out = Vec::with_capacity(list.len() + 6);
        out.extend_from_slice(&u32::try_from(list.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&list);
        let count_at = out.len();
        out.extend_from_slice(&[0, 0]);
        if out.len() > max {
            return None;
        }
        let mut count: u16 = 0;
        let mut revoked: Vec<&Cert> = self
            .certs
            .values()
            .filter(|c| self.check(c.body()).is_err())
            .collect();
        revoked.sort_by_key(|c| c.body().serial);
        for c in revoked.into_iter().take(MAX_NEWS_CERTS) {
            let bytes = c.to_bytes();
            let Ok(len) = u16::try_from(bytes.len()) else {
                continue;
            };
            if out.len() + 2 + bytes.len() > max {
                break;
            }
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&bytes);
            count += 1;
        }
        out[count_at..count_at + 2].copy_from_slice(&count.to_be_bytes());
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cert::{CaSecret, NodeSecret};

    const NOW: i64 = 1_800_000_000;

    fn ca(n: u8) -> CaSecret {
        CaSecret::from_seed(&[n; 32])
    }

    fn cert(ca: &CaSecret, name: &str, serial: u64, not_before: i64) -> Cert {
        ca.issue(CertBody {
            serial,
            not_before,
            not_after: not_before + 86_400,
            key: NodeSecret::from_seed(&[serial as u8; 64]).public(),
            name: name.into(),
            groups: vec![],
        })
        .unwrap()
    }

    fn names(r: &Revocation) -> Vec<String> {
        r.revoked_names().into_iter().collect()
    }

    #[test]
    fn news_names_the_revoked_members_to_whoever_hears_it() {
        let ca = ca(1);
        let mut origin = Revocation::new(ca.public());
        for (name, serial) in [("alpha", 1), ("beta", 2), ("gamma", 3)] {
            assert!(origin.learn(&cert(&ca, name, serial, NOW)).unwrap());
        }
        let list = Revocations::issue(&ca, NOW, vec![2, 9]).unwrap();
        assert_eq!(origin.install(list).unwrap(), Heard::Newer);
        assert_eq!(names(&origin), ["beta"]);

        // A member that never saw beta's certificate learns its name from
        // the news, and passes the same news on.
        let news = origin.news(usize::MAX).unwrap();
        let mut other = Revocation::new(ca.public());
        assert_eq!(other.hear(&news).unwrap(), Heard::Newer);
        assert_eq!(names(&other), ["beta"]);
        assert_eq!(other.news(usize::MAX).unwrap(), news);
        assert_eq!(other.hear(&news).unwrap(), Heard::Same);
    }

    #[test]
    fn an_older_list_or_another_cas_is_dropped() {
        let ca1 = ca(1);
        let mut r = Revocation::new(ca1.public());
        r.learn(&cert(&ca1, "beta", 2, NOW)).unwrap();
        let new = Revocations::issue(&ca1, NOW + 10, vec![2]).unwrap();
        let old = Revocations::issue(&ca1, NOW, vec![]).unwrap();
        let twin = Revocations::issue(&ca1, NOW + 10, vec![]).unwrap();
        assert_eq!(r.install(new.clone()).unwrap(), Heard::Newer);
        assert_eq!(r.install(old).unwrap(), Heard::Older);
        assert_eq!(r.install(twin).unwrap(), Heard::Older);
        assert_eq!(r.install(new).unwrap(), Heard::Same);
        let forged = Revocations::issue(&ca(2), NOW + 20, vec![]).unwrap();
        assert_eq!(r.install(forged), Err(CertError::BadSignature));
        assert_eq!(names(&r), ["beta"], "beta stays revoked");
        // A newer list that no longer names the serial lifts the revocation.
        let lifted = Revocations::issue(&ca1, NOW + 30, vec![]).unwrap();
        assert_eq!(r.install(lifted).unwrap(), Heard::Newer);
        assert!(names(&r).is_empty());
    }

    #[test]
    fn a_certificate_of_another_ca_names_no_one() {
        let ca1 = ca(1);
        let mut r = Revocation::new(ca1.public());
        // Another CA's certificate claiming the revoked serial for "alpha".
        assert_eq!(
            r.learn(&cert(&ca(2), "alpha", 2, NOW)),
            Err(CertError::BadSignature)
        );
        let mut origin = Revocation::new(ca1.public());
        origin
            .install(Revocations::issue(&ca1, NOW, vec![2]).unwrap())
            .unwrap();
        origin
            .certs
            .insert("alpha".into(), cert(&ca(2), "alpha", 2, NOW));
        let news = origin.news(usize::MAX).unwrap();
        assert_eq!(r.hear(&news).unwrap(), Heard::Newer);
        assert!(names(&r).is_empty(), "{:?}", names(&r));
    }

    #[test]
    fn a_member_given_a_new_certificate_is_not_cut_off_by_its_old_one() {
        let ca = ca(1);
        let mut r = Revocation::new(ca.public());
        r.install(Revocations::issue(&ca, NOW, vec![2]).unwrap())
            .unwrap();
        r.learn(&cert(&ca, "beta", 2, NOW)).unwrap();
        assert_eq!(names(&r), ["beta"]);
        assert!(r.learn(&cert(&ca, "beta", 5, NOW + 60)).unwrap());
        assert!(names(&r).is_empty());
        // The old one heard again later does not win back.
        assert!(!r.learn(&cert(&ca, "beta", 2, NOW)).unwrap());
        assert!(names(&r).is_empty());
    }

    #[test]
    fn news_fits_the_room_given_or_is_not_made() {
        let ca = ca(1);
        let mut r = Revocation::new(ca.public());
        assert!(r.news(usize::MAX).is_none(), "no list, no news");
        r.install(Revocations::issue(&ca, NOW, (1..=20).collect()).unwrap())
            .unwrap();
        for n in 1..=20 {
            r.learn(&cert(&ca, &format!("n{n}"), n, NOW)).unwrap();
        }
        let small = r.news(1200).unwrap();
        assert!(small.len() <= 1200);
        let (list, certs) = decode_news(&small).unwrap();
        assert_eq!(list.serials.len(), 20);
        assert!(!certs.is_empty() && certs.len() < 20, "{}", certs.len());
        assert_eq!(
            decode_news(&r.news(usize::MAX).unwrap()).unwrap().1.len(),
            20
        );
        assert!(r.news(100).is_none(), "the list alone does not fit");
    }

    #[test]
    fn broken_news_is_refused() {
        let ca = ca(1);
        let mut r = Revocation::new(ca.public());
        r.install(Revocations::issue(&ca, NOW, vec![2]).unwrap())
            .unwrap();
        r.learn(&cert(&ca, "beta", 2, NOW)).unwrap();
        let news = r.news(usize::MAX).unwrap();
        for n in 0..news.len() {
            assert!(decode_news(&news[..n]).is_err(), "cut at {n}");
        }
        let mut long = news.clone();
        long.push(0);
        assert!(decode_news(&long).is_err());
        // Any changed byte is refused, or verified away.
        for i in 0..news.len() {
            let mut t = news.clone();
            t[i] ^= 0x01;
            let mut fresh = Revocation::new(ca.public());
            let v = fresh.hear(&t);
            assert!(
                v.is_err() || names(&fresh).is_empty(),
                "byte {i} changed still revoked beta"
            );
        }
    }
}
