//! Cancellation of one query: a flag its work checks between items and
//! between chunks of a read, set once the asker is gone, and the wait that
//! notices the asker's hang-up while the work is in progress.
//!
//! A query ends one way: its last answer is written ([`Cancel::finish`]),
//! or its asker went away first ([`Cancel::cancel`]); whichever comes first
//! holds, so a hang-up after the last answer cancels nothing and is not
//! counted.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const CANCELLED: u8 = 2;

/// One query's cancellation flag, shared by everything working on it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicU8>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// True once the asker went away: drop the rest of the work.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed) == CANCELLED
    }

    /// The asker went away. True when this call cancelled the query (it was
    /// neither finished nor cancelled before): count it then.
    pub fn cancel(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Every answer is out: a hang-up from now on cancels nothing. False if
    /// the query was cancelled first.
    pub fn finish(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// What [`wait`] saw first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The asker closed its end of the connection (or it broke).
    HungUp,
    /// The work ended: `done`'s other end was closed.
    Done,
}

/// Waits until the client closes `client` (POLLHUP or POLLERR; data it
/// sends is left unread) or the other end of `done` is closed, whichever
/// comes first. Nothing is read from either.
pub fn wait(client: BorrowedFd<'_>, done: BorrowedFd<'_>) -> Woke {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: client.as_raw_fd(),
                // POLLHUP and POLLERR come unasked: a Unix socket reports
                // POLLHUP once the other end is closed, not merely shut
                // down for writing.
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: done.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds, valid for the call, on descriptors borrowed
        // for its duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot watch: let the work run to its end.
            return Woke::Done;
        }
        if fds[1].revents != 0 {
            return Woke::Done;
        }
        if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Woke::HungUp;
        }
        if fds[0].revents & libc::POLLNVAL != 0 {
            return Woke::Done;
        }
    }
}

/// True once the client has closed its end of `socket`, without waiting.
pub fn hung_up(socket: BorrowedFd<'_>) -> bool {
    let mut fds = [libc::pollfd {
        fd: socket.as_raw_fd(),
        events: 0,
        revents: 0,
    }];
    // SAFETY: one pollfd, valid for the call, on a borrowed descriptor; no wait.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    n > 0 && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_first_ending_holds() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        assert!(c.cancel());
        assert!(c.is_cancelled());
        assert!(!c.cancel(), "counted once");
        assert!(!c.finish());
        let f = Cancel::new();
        assert!(f.finish());
        assert!(
            !f.cancel(),
            "a hang-up after the last answer cancels nothing"
        );
        assert!(!f.is_cancelled());
    }

    #[test]
    fn wait_tells_a_hang_up_from_the_end_of_the_work() {
        let (client, ours) = UnixStream::pair().unwrap();
        let (done_tx, done_rx) = UnixStream::pair().unwrap();
        assert!(!hung_up(ours.as_fd()));
        drop(done_tx);
        assert_eq!(wait(ours.as_fd(), done_rx.as_fd()), Woke::Done);
        let (_done_tx, done_rx) = UnixStream::pair().unwrap();
        drop(client);
        assert!(hung_up(ours.as_fd()));
        assert_eq!(wait(ours.as_fd(), done_rx.as_fd()), Woke::HungUp);
    }

    #[test]
    fn a_client_that_shuts_down_only_its_writing_is_not_gone() {
        // It may still read its answers.
        let (client, ours) = UnixStream::pair().unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(!hung_up(ours.as_fd()));
        drop(client);
        assert!(hung_up(ours.as_fd()));
    }
}
