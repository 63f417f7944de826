//! `p2p-peers --watch`: every watcher is served by one thread, which hears
//! the cluster's membership changes once and writes them to all watchers.
//!
//! Watchers leave the local listener's places once their request is read,
//! so they never crowd out queries; they have a bounded pool of their own,
//! shared out by user as the listener's places are (see [`Shares`]). A
//! watcher that stops reading is dropped once it is [`MAX_BEHIND`] bytes
//! behind, and one that hangs up is noticed within a [`TICK`].

use super::Shared;
use super::limits::{Refused, Shares, Tally};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv, send};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Watchers served at once.
pub const MAX_WATCHERS: usize = 256;

/// Watchers one user other than the daemon's owner and root may hold.
pub const WATCHERS_PER_USER: usize = 8;

/// Watcher places only the owner and root may take.
const RESERVED: usize = 16;

/// Output a watcher may leave unread before it is dropped.
pub const MAX_BEHIND: usize = 256 * 1024;

/// How often the watcher thread looks for hang-ups when nothing changes.
pub const TICK: Duration = Duration::from_millis(250);

/// The pool of watchers.
pub struct Watchers {
    shares: Shares,
    hub: Mutex<Hub>,
}

#[derive(Default)]
struct Hub {
    tally: Tally,
    list: Vec<Watcher>,
    /// The watcher thread is running (it ends when the last watcher goes).
    running: bool,
}

struct Watcher {
    sock: UnixStream,
    uid: u32,
    /// Written by us, not yet taken by the watcher.
    behind: Vec<u8>,
}

impl Watchers {
    /// A pool for a daemon running as `owner`.
    pub fn new(owner: u32) -> Watchers {
        Watchers {
            shares: Shares {
                per_user: WATCHERS_PER_USER,
                reserved: RESERVED,
                owner,
            },
            hub: Mutex::new(Hub::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hands a connection that asked to watch to the watcher thread.
pub fn add(shared: &Arc<Shared>, sock: UnixStream, uid: u32) -> Result<(), Refused> {
    let pool = &shared.watchers;
    let mut hub = pool.lock();
    hub.tally.check(MAX_WATCHERS, Some(&pool.shares), uid)?;
    if sock.set_nonblocking(true).is_err() {
        return Ok(());
    }
    hub.tally.add(Some(&pool.shares), uid);
    hub.list.push(Watcher {
        sock,
        uid,
        behind: Vec::new(),
    });
    if !hub.running {
        // Subscribed before the watcher is counted, so that a watcher
        // `p2p-status` shows sees every change after it.
        let events = shared.cluster.watch();
        let s = Arc::clone(shared);
        let started = thread::Builder::new()
            .name("watchers".into())
            .spawn(move || serve_all(&s, &events));
        match started {
            Ok(_) => hub.running = true,
            Err(e) => {
                log::error!("cannot start the watcher thread: {e}");
                hub.list.clear();
                hub.tally = Tally::default();
            }
        }
    }
    Ok(())
}

/// How many membership watchers are connected now.
pub fn count(shared: &Shared) -> u64 {
    shared.watchers.lock().list.len() as u64
}

/// The watcher thread: until no watcher is left.
fn serve_all(shared: &Shared, events: &Receiver<crate::membership::MemberEvent>) {
    let pool = &shared.watchers;
    loop {
        let mut lines = Vec::new();
        let mut push = |e: &crate::membership::MemberEvent| {
            if let Ok(mut l) = serde_json::to_vec(e) {
                l.push(b'\n');
                lines.extend_from_slice(&l);
            }
        };
        match events.recv_timeout(TICK) {
            Ok(e) => {
                push(&e);
                while let Ok(e) = events.try_recv() {
                    push(&e);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {}
        }
        let mut hub = pool.lock();
        let mut i = 0;
        while i < hub.list.len() {
            if hub.list[i].serve(&lines) {
                i += 1;
            } else {
                let gone = hub.list.swap_remove(i);
                hub.tally.remove(Some(&pool.shares), gone.uid);
            }
        }
        if hub.list.is_empty() {
            hub.running = false;
            return;
        }
    }
}

impl Watcher {
    /// Writes what is new and checks the watcher is still there; false
    /// when it is to be dropped.
    fn serve(&mut self, lines: &[u8]) -> bool {
        self.behind.extend_from_slice(lines);
        let fd = self.sock.as_raw_fd();
        while !self.behind.is_empty() {
            match send(
                fd,
                &self.behind,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => {
                    self.behind.drain(..n);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
        if self.behind.len() > MAX_BEHIND {
            crate::daemon::logging::hostile(
                log::Level::Info,
                "local-request",
                format_args!(
                    "dropping a membership watcher of uid {}: it stopped reading",
                    self.uid
                ),
            );
            return false;
        }
        // A watcher has nothing to say: what it sends is dropped, and the
        // end of its stream means it is gone.
        let mut sink = [0u8; 512];
        for _ in 0..16 {
            match recv(fd, &mut sink, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(Errno::EAGAIN) => return true,
                Err(Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
        true
    }
}
