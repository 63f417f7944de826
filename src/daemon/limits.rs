//! How many connections a listener serves, and who makes room when it is
//! full: the oldest connection that is not doing anything useful, either
//! because it has not yet proved itself (finished its handshake with the
//! initiator's proof, or sent its first request) or because it sits idle between requests (a session a
//! member keeps for its next query). A flood of idle or dribbling
//! connections therefore pushes out its own kind, not the clients that are
//! being served, and a real client, which proves itself within
//! milliseconds, always gets in.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The connections of one listener.
pub struct Admission {
    max: usize,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Connections that may be cut (not yet proven, or idle), oldest
    /// first, with a duplicate of their socket so they can be cut from here.
    unproven: Mutex<VecDeque<(u64, OwnedFd)>>,
}

/// One admitted connection; dropping it frees its place.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
}

impl Admission {
    pub fn new(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max: max.max(1),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            unproven: Mutex::new(VecDeque::new()),
        })
    }

    /// Connections being served.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Admits a new connection, cutting the oldest unproven one when full.
    /// `None` when every place is held by a proven connection.
    pub fn admit(self: &Arc<Self>, socket: &impl AsFd) -> Option<Ticket> {
        if self.active() >= self.max && !self.cut_oldest() {
            return None;
        }
        let dup = socket.as_fd().try_clone_to_owned().ok()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.unproven.lock().ok()?.push_back((id, dup));
        self.active.fetch_add(1, Ordering::AcqRel);
        Some(Ticket {
            admission: Arc::clone(self),
            id,
        })
    }

    fn cut_oldest(&self) -> bool {
        let oldest = self.unproven.lock().ok().and_then(|mut q| q.pop_front());
        match oldest {
            Some((_, fd)) => {
                // Its thread sees the end of the stream and finishes.
                let _ = nix::sys::socket::shutdown(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    nix::sys::socket::Shutdown::Both,
                );
                true
            }
            None => false,
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut q) = self.unproven.lock() {
            q.retain(|(i, _)| *i != id);
        }
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
        if let Ok(mut q) = self.admission.unproven.lock() {
            if !q.iter().any(|(i, _)| *i == self.id) {
                q.push_back((self.id, dup));
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.forget(self.id);
        self.admission.active.fetch_sub(1, Ordering::AcqRel);
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
}
