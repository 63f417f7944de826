//! The progress line of a long `--spread` or `--all` job, on stderr.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the list of paths has given so far, counted as it is read (on the
/// sending thread), for the printing thread's line.
#[derive(Debug, Default)]
pub struct Listed {
    read: AtomicU64,
    skipped: AtomicU64,
    ended: AtomicBool,
}

impl Listed {
    /// One more path read (`some`; else the list has ended), skipped if
    /// `skipped` (`--resume` found it done).
    pub fn saw(&self, some: bool, skipped: bool) {
        if !some {
            self.ended.store(true, Ordering::Release);
        } else if skipped {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.read.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Paths to do, and whether that is all of them.
    pub fn total(&self) -> (u64, bool) {
        let ended = self.ended.load(Ordering::Acquire);
        (self.read.load(Ordering::Relaxed), ended)
    }

    /// Paths skipped as already done.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}
