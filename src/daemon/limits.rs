//! How many connections a listener serves, and who makes room when it is
//! full: the oldest connection that is not doing anything useful, either
//! because it has not yet proved itself (finished its handshake with the
//! initiator's proof, or sent its first request) or because it sits idle between requests (a session a
//! member keeps for its next query). A flood of idle or dribbling
//! connections therefore pushes out its own kind, not the clients that are
//! being served, and a real client, which proves itself within
//! milliseconds, always gets in.
//!
//! The local socket also shares its places out by user ([`Shares`]): each
//! user other than the daemon's owner and root may hold at most a fixed
//! share, and a few places are kept for the owner and root alone, so one
//! local user can exhaust only their own share, never lock out the others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How the places of a listener are shared out between local users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// The most places one user other than the owner and root may hold.
    pub per_user: usize,
    /// Places only the owner and root may take.
    pub reserved: usize,
    /// The daemon's own user.
    pub owner: u32,
}

impl Shares {
    /// The daemon's owner and root: never limited to a share.
    pub fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner
    }
}

/// Why a connection found no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every place is held by a proven connection.
    Full,
    /// This user holds their whole share already.
    UserShare { uid: u32, share: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Full => write!(f, "all places are busy"),
            Refused::UserShare { uid, share } => write!(
                f,
                "uid {uid} already holds its {share} places (the per-user share)"
            ),
        }
    }
}

/// Places held, in total and by user: the sans-IO arithmetic of [`Shares`].
#[derive(Debug, Default)]
pub struct Tally {
    total: usize,
    /// Places held by users other than the owner and root.
    unprivileged: usize,
    by_uid: HashMap<u32, usize>,
}

impl Tally {
    /// Places held by `uid`.
    pub fn of(&self, uid: u32) -> usize {
        self.by_uid.get(&uid).copied().unwrap_or(0)
    }

    /// Places held in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether `uid` may take one more of `max` places; `None` without shares.
    pub fn check(&self, max: usize, shares: Option<&Shares>, uid: u32) -> Result<(), Refused> {
        let Some(sh) = shares else {
            return if self.total < max {
                Ok(())
            } else {
                Err(Refused::Full)
            };
        };
        if sh.privileged(uid) {
            return if self.total < max {
                Ok(())
            } else {
                Err(Refused::Full)
            };
        }
        if self.of(uid) >= sh.per_user {
            return Err(Refused::UserShare {
                uid,
                share: sh.per_user,
            });
        }
        if self.total >= max || self.unprivileged >= max.saturating_sub(sh.reserved) {
            return Err(Refused::Full);
        }
        Ok(())
    }

    /// Counts one more place for `uid`.
    pub fn add(&mut self, shares: Option<&Shares>, uid: u32) {
        self.total += 1;
        *self.by_uid.entry(uid).or_default() += 1;
        if shares.is_some_and(|s| !s.privileged(uid)) {
            self.unprivileged += 1;
        }
    }

    /// Gives back a place of `uid`.
    pub fn remove(&mut self, shares: Option<&Shares>, uid: u32) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_uid.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_uid.remove(&uid);
            }
        }
        if shares.is_some_and(|s| !s.privileged(uid)) {
            self.unprivileged = self.unprivileged.saturating_sub(1);
        }
    }
}

/// The connections of one listener.
pub struct Admission {
    max: usize,
    shares: Option<Shares>,
    active: AtomicUsize,
    next_id: AtomicU64,
    places: Mutex<Places>,
}

/// Who holds the places of a listener.
#[derive(Default)]
struct Places {
    tally: Tally,
    /// Connections that may be cut (not yet proven, or idle), oldest
    /// first, with their user and a duplicate of their socket so they can
    /// be cut from here.
    unproven: VecDeque<(u64, u32, OwnedFd)>,
    /// Connections cut whose threads have not finished yet: their places
    /// are already given back.
    cut: HashSet<u64>,
}

/// One admitted connection; dropping it frees its place.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    uid: u32,
}

impl Admission {
    pub fn new(max: usize) -> Arc<Admission> {
        Admission::build(max, None)
    }

    /// A listener whose places are shared out between users (the local socket).
    pub fn shared_by_users(max: usize, shares: Shares) -> Arc<Admission> {
        Admission::build(max, Some(shares))
    }

    fn build(max: usize, shares: Option<Shares>) -> Arc<Admission> {
        Arc::new(Admission {
            max: max.max(1),
            shares,
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            places: Mutex::new(Places::default()),
        })
    }

    /// Connections being served.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Admits a new connection, cutting the oldest unproven one when full.
    /// `None` when every place is held by a proven connection.
    pub fn admit(self: &Arc<Self>, socket: &impl AsFd) -> Option<Ticket> {
        self.admit_user(socket, 0).ok()
    }

    /// Admits a new connection of `uid`. When that user's share or the
    /// listener is full, the oldest unproven connection that holds a place
    /// the newcomer could use is cut (the user's own, when it is their share
    /// that is full).
    pub fn admit_user(self: &Arc<Self>, socket: &impl AsFd, uid: u32) -> Result<Ticket, Refused> {
        let dup = socket
            .as_fd()
            .try_clone_to_owned()
            .map_err(|_| Refused::Full)?;
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match places.tally.check(self.max, self.shares.as_ref(), uid) {
                Ok(()) => break,
                Err(why) => {
                    if !self.cut_oldest(&mut places, why, uid) {
                        return Err(why);
                    }
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        places.unproven.push_back((id, uid, dup));
        places.tally.add(self.shares.as_ref(), uid);
        self.active.fetch_add(1, Ordering::AcqRel);
        Ok(Ticket {
            admission: Arc::clone(self),
            id,
            uid,
        })
    }

    /// Cuts the oldest unproven connection whose place would let `uid` in;
    /// its place is given back at once (its thread finishes on its own).
    fn cut_oldest(&self, places: &mut Places, why: Refused, uid: u32) -> bool {
        let shares = self.shares.as_ref();
        let usable = |owner: u32| match (why, shares) {
            (Refused::UserShare { .. }, _) => owner == uid,
            // A newcomer short of an unreserved place gains nothing from
            // cutting the owner's or root's connections.
            (Refused::Full, Some(sh)) if !sh.privileged(uid) => !sh.privileged(owner),
            (Refused::Full, _) => true,
        };
        let Some(pos) = places.unproven.iter().position(|(_, o, _)| usable(*o)) else {
            return false;
        };
        let Some((id, owner, fd)) = places.unproven.remove(pos) else {
            return false;
        };
        // Its thread sees the end of the stream and finishes.
        let _ = nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            nix::sys::socket::Shutdown::Both,
        );
        places.tally.remove(shares, owner);
        places.cut.insert(id);
        true
    }

    fn forget(&self, id: u64) {
        let mut places = self.places.lock().unwrap_or_else(|p| p.into_inner());
        places.unproven.retain(|(i, _, _)| *i != id);
    }
}

impl Ticket {
    /// The connection proved itself, or is busy with a request: it keeps its
    /// place until it ends or goes idle.
    pub fn proven(&self) {
        self.admission.forget(self.id);
    }

    /// The connection waits for its next request: it may be cut when the
    /// listener is full.
    pub fn idle(&self, socket: &impl AsFd) {
        let Ok(dup) = socket.as_fd().try_clone_to_owned() else {
            return;
        };
        let mut places = self
            .admission
            .places
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if places.cut.contains(&self.id) {
            return;
        }
        if !places.unproven.iter().any(|(i, _, _)| *i == self.id) {
            places.unproven.push_back((self.id, self.uid, dup));
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let adm = &self.admission;
        let mut places = adm.places.lock().unwrap_or_else(|p| p.into_inner());
        places.unproven.retain(|(i, _, _)| *i != self.id);
        if !places.cut.remove(&self.id) {
            places.tally.remove(adm.shares.as_ref(), self.uid);
        }
        drop(places);
        adm.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_full_listener_cuts_the_oldest_unproven_connection() {
        let adm = Admission::new(2);
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        let (c, _c_peer) = UnixStream::pair().unwrap();
        let ta = adm.admit(&a).unwrap();
        let tb = adm.admit(&b).unwrap();
        tb.proven();
        // Full: c gets in by cutting a, the oldest that has not proven itself.
        let tc = adm.admit(&c).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(a_peer.read(&mut buf).unwrap(), 0, "a was cut");
        drop(ta);
        assert_eq!(adm.active(), 2);
        // b is proven and c not yet: c is cut next.
        let (d, _d_peer) = UnixStream::pair().unwrap();
        let td = adm.admit(&d).unwrap();
        td.proven();
        tc.proven();
        drop(tc);
        // Now b and d are proven and hold both places: nobody else gets in.
        let (e, _e_peer) = UnixStream::pair().unwrap();
        assert_eq!(adm.active(), 2);
        assert!(adm.admit(&e).is_none());
        drop(tb);
        assert!(adm.admit(&e).is_some());
    }

    #[test]
    fn an_idle_connection_makes_room_but_a_busy_one_does_not() {
        let adm = Admission::new(1);
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let ta = adm.admit(&a).unwrap();
        ta.proven();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        assert!(adm.admit(&b).is_none(), "a is busy");
        ta.idle(&a);
        let _tb = adm.admit(&b).expect("a was idle");
        let mut buf = [0u8; 1];
        assert_eq!(a_peer.read(&mut buf).unwrap(), 0, "a was cut");
    }

    const SHARES: Shares = Shares {
        per_user: 2,
        reserved: 1,
        owner: 1000,
    };

    #[test]
    fn a_user_fills_only_their_own_share() {
        let adm = Admission::shared_by_users(4, SHARES);
        let socks: Vec<_> = (0..6).map(|_| UnixStream::pair().unwrap()).collect();
        let t1 = adm.admit_user(&socks[0].0, 65534).unwrap();
        let t2 = adm.admit_user(&socks[1].0, 65534).unwrap();
        t1.proven();
        t2.proven();
        assert_eq!(
            adm.admit_user(&socks[2].0, 65534).err(),
            Some(Refused::UserShare {
                uid: 65534,
                share: 2
            })
        );
        // Another user still gets in, and so do the owner and root.
        let t3 = adm.admit_user(&socks[3].0, 65533).unwrap();
        t3.proven();
        // The unreserved places are gone: a third user is refused...
        assert_eq!(adm.admit_user(&socks[4].0, 4242).err(), Some(Refused::Full));
        // ...but the owner has its reserved place.
        let _t4 = adm.admit_user(&socks[4].0, 1000).unwrap();
        drop(t1);
        let _t5 = adm.admit_user(&socks[5].0, 65534).unwrap();
    }

    #[test]
    fn a_full_share_cuts_its_own_unproven_connection_only() {
        let adm = Admission::shared_by_users(8, SHARES);
        let (other, mut other_peer) = UnixStream::pair().unwrap();
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        let (c, _c_peer) = UnixStream::pair().unwrap();
        let _to = adm.admit_user(&other, 65533).unwrap();
        let _ta = adm.admit_user(&a, 65534).unwrap();
        let tb = adm.admit_user(&b, 65534).unwrap();
        tb.proven();
        let _tc = adm.admit_user(&c, 65534).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(a_peer.read(&mut buf).unwrap(), 0, "a was cut");
        other_peer.set_nonblocking(true).unwrap();
        assert!(other_peer.read(&mut buf).is_err(), "the other user's stays");
    }

    #[test]
    fn tally_reserves_places_for_owner_and_root() {
        let mut t = Tally::default();
        let sh = Some(&SHARES);
        t.add(sh, 1);
        t.add(sh, 2);
        t.add(sh, 3);
        assert_eq!(t.check(4, sh, 4), Err(Refused::Full));
        assert_eq!(t.check(4, sh, 0), Ok(()));
        t.add(sh, 0);
        assert_eq!(t.check(4, sh, 0), Err(Refused::Full));
        t.remove(sh, 0);
        t.remove(sh, 1);
        assert_eq!(t.check(4, sh, 4), Ok(()));
        assert_eq!(t.total(), 2);
    }
}
