//! `p2p-get --any`'s plan, sans-IO: which chunk each source fetches next,
//! and what becomes of a source that fails.
//!
//! Chunks are handed out lowest first to whichever source asks, so the
//! file fills from its start and every source works as fast as it can. A
//! source that fails (its session broke, it refused, or a chunk of its did
//! not match the manifest) is dropped: the chunks it held go back to be
//! taken by the others. A source with nothing left to take waits while
//! others still hold chunks, since one of them may fail and give its chunk
//! back, unless the endgame applies: when nothing is left to hand out, an
//! idle source fetches a second copy of the lowest chunk that one other
//! source has held for too long (three times as long as chunks have taken
//! on average, at least a second; ten seconds before any chunk is done), so
//! a slow source does not hold up the end. The first copy written wins; the
//! other holder's fetch is of no more use. The caller tells the time with
//! [`Plan::tick`]. The plan is stuck when chunks remain and no source is
//! left.

use std::time::{Duration, Instant};

/// A chunk held this much longer than the average is copied (the endgame).
const LATE_FACTOR: u32 = 3;
/// ... but never one held for less than this.
const LATE_AT_LEAST: Duration = Duration::from_secs(1);
/// Before any chunk is done, one held this long is copied.
const LATE_BLIND: Duration = Duration::from_secs(10);

/// What a source does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Fetch this chunk.
    Fetch(usize),
    /// Nothing to take now, but chunks are in flight elsewhere: ask again
    /// when one of them ends (or a while later: one may become late).
    Wait,
    /// Stop: every chunk is written, or this source is dropped, or the
    /// plan is stuck.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Not held by any source.
    Todo,
    /// Held by one source since then.
    Taken(usize, Instant),
    /// Held by two sources at once (the endgame), the first holder first.
    Twice(usize, usize),
    Done,
}

#[derive(Debug, Clone, Default)]
struct Source {
    dropped: bool,
    /// Chunks written that came from it.
    fetched: usize,
}

/// The state of one file's chunks over its sources.
#[derive(Debug, Clone)]
pub struct Plan {
    chunks: Vec<Chunk>,
    sources: Vec<Source>,
    /// Chunks not yet done.
    left: usize,
    /// The lowest chunk that may be `Todo`.
    first_todo: usize,
    /// The time, as last told.
    now: Instant,
    /// Chunks fetched, and the time they took together.
    timed: u32,
    took: Duration,
}

impl Plan {
    /// A plan for `chunks` chunks, none written yet, over `sources` sources.
    pub fn new(chunks: usize, sources: usize) -> Plan {
        Plan {
            chunks: vec![Chunk::Todo; chunks],
            sources: vec![Source::default(); sources],
            left: chunks,
            first_todo: 0,
            now: Instant::now(),
            timed: 0,
            took: Duration::ZERO,
        }
    }

    /// The time is now `now`.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
    }

    /// How long a chunk may be held before another source copies it.
    fn late_after(&self) -> Duration {
        match self.took.checked_div(self.timed) {
            Some(mean) => (mean * LATE_FACTOR).max(LATE_AT_LEAST),
            None => LATE_BLIND,
        }
    }

    /// Chunk `i` is already there, checked (a transfer picked up).
    pub fn have(&mut self, i: usize) {
        if let Some(c) = self.chunks.get_mut(i) {
            if *c != Chunk::Done {
                *c = Chunk::Done;
                self.left -= 1;
            }
        }
    }

    /// What `source` does next; a chunk it is given counts as taken by it.
    pub fn next(&mut self, source: usize) -> Next {
        if self.left == 0 || self.sources.get(source).is_none_or(|s| s.dropped) {
            return Next::Stop;
        }
        while self.first_todo < self.chunks.len() && self.chunks[self.first_todo] != Chunk::Todo {
            self.first_todo += 1;
        }
        if let Some(c) = self.chunks.get_mut(self.first_todo) {
            *c = Chunk::Taken(source, self.now);
            return Next::Fetch(self.first_todo);
        }
        let late = self.late_after();
        let copy = self.chunks.iter().position(|c| {
            matches!(*c, Chunk::Taken(other, since)
                if other != source && self.now.duration_since(since) >= late)
        });
        if let Some(i) = copy {
            if let Chunk::Taken(other, _) = self.chunks[i] {
                self.chunks[i] = Chunk::Twice(other, source);
            }
            return Next::Fetch(i);
        }
        if self.is_stuck() {
            Next::Stop
        } else {
            Next::Wait
        }
    }

    /// `source` wrote chunk `i`, checked. True when it counts: the chunk
    /// was held by `source` and not yet done (by its other holder).
    pub fn fetched(&mut self, source: usize, i: usize) -> bool {
        let held = match self.chunks.get(i) {
            Some(&Chunk::Taken(a, since)) if a == source => {
                self.timed += 1;
                self.took += self.now.duration_since(since);
                true
            }
            Some(&Chunk::Twice(a, b)) => a == source || b == source,
            _ => false,
        };
        if held {
            self.chunks[i] = Chunk::Done;
            self.left -= 1;
            self.sources[source].fetched += 1;
        }
        held
    }

    /// `source` failed: it is dropped, and every chunk it held goes back
    /// to the others.
    pub fn failed(&mut self, source: usize) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.dropped = true;
        let now = self.now;
        for (n, c) in self.chunks.iter_mut().enumerate() {
            match *c {
                Chunk::Taken(a, _) if a == source => {
                    *c = Chunk::Todo;
                    self.first_todo = self.first_todo.min(n);
                }
                // The copy's holder keeps it, as if it had just taken it.
                Chunk::Twice(a, b) if a == source => *c = Chunk::Taken(b, now),
                Chunk::Twice(a, b) if b == source => *c = Chunk::Taken(a, now),
                _ => {}
            }
        }
    }

    /// Every chunk is written.
    pub fn is_complete(&self) -> bool {
        self.left == 0
    }

    /// Chunks remain and every source is dropped.
    pub fn is_stuck(&self) -> bool {
        self.left > 0 && self.sources.iter().all(|s| s.dropped)
    }

    /// Whether `source` was dropped.
    pub fn is_dropped(&self, source: usize) -> bool {
        self.sources.get(source).is_some_and(|s| s.dropped)
    }

    /// The chunks written that came from `source`.
    pub fn fetched_from(&self, source: usize) -> usize {
        self.sources.get(source).map_or(0, |s| s.fetched)
    }

    /// Chunks written so far, those picked up included.
    pub fn done(&self) -> usize {
        self.chunks.len() - self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_go_out_lowest_first_to_whoever_asks() {
        let mut p = Plan::new(4, 2);
        assert_eq!(p.next(0), Next::Fetch(0));
        assert_eq!(p.next(1), Next::Fetch(1));
        assert_eq!(p.next(0), Next::Fetch(2));
        p.fetched(1, 1);
        assert_eq!(p.next(1), Next::Fetch(3));
        // Nothing left to take; two in flight.
        assert_eq!(p.next(1), Next::Wait);
        for (s, i) in [(0, 0), (0, 2), (1, 3)] {
            assert!(p.fetched(s, i));
        }
        assert!(p.is_complete());
        assert_eq!(p.next(0), Next::Stop);
        assert_eq!((p.fetched_from(0), p.fetched_from(1)), (2, 2));
    }

    #[test]
    fn a_failed_source_is_dropped_and_its_chunks_taken_by_the_others() {
        let mut p = Plan::new(5, 3);
        assert_eq!(p.next(0), Next::Fetch(0));
        assert_eq!(p.next(1), Next::Fetch(1));
        // Source 1 holds two chunks (two links), then fails.
        assert_eq!(p.next(1), Next::Fetch(2));
        assert_eq!(p.next(2), Next::Fetch(3));
        p.failed(1);
        assert!(p.is_dropped(1));
        assert_eq!(p.next(1), Next::Stop);
        // A late answer of the dropped source counts for nothing.
        p.fetched(1, 2);
        assert_eq!(p.done(), 0);
        assert_eq!(p.next(0), Next::Fetch(1));
        assert_eq!(p.next(2), Next::Fetch(2));
        assert_eq!(p.next(2), Next::Fetch(4));
        for (s, i) in [(0, 0), (0, 1), (2, 2), (2, 3), (2, 4)] {
            p.fetched(s, i);
        }
        assert!(p.is_complete());
        assert_eq!(p.fetched_from(1), 0);
    }

    #[test]
    fn with_every_source_dropped_the_plan_is_stuck() {
        let mut p = Plan::new(3, 2);
        assert_eq!(p.next(0), Next::Fetch(0));
        assert_eq!(p.next(1), Next::Fetch(1));
        p.fetched(0, 0);
        p.failed(0);
        // Source 1 may still fail and give chunk 1 back: no Stop yet for
        // anyone that could take it, but 0 is dropped.
        assert_eq!(p.next(0), Next::Stop);
        assert!(!p.is_stuck());
        p.failed(1);
        assert!(p.is_stuck());
        assert_eq!(p.next(1), Next::Stop);
        assert!(!p.is_complete());
    }

    #[test]
    fn a_source_waits_while_another_holds_the_last_chunk() {
        let mut p = Plan::new(1, 2);
        assert_eq!(p.next(0), Next::Fetch(0));
        assert_eq!(p.next(1), Next::Wait);
        p.failed(0);
        assert_eq!(p.next(1), Next::Fetch(0));
        p.fetched(1, 0);
        assert!(p.is_complete());
    }

    #[test]
    fn in_the_endgame_a_late_chunk_is_copied_and_the_first_copy_wins() {
        let t0 = Instant::now();
        let mut p = Plan::new(3, 2);
        p.tick(t0);
        assert_eq!(p.next(0), Next::Fetch(0));
        assert_eq!(p.next(1), Next::Fetch(1));
        p.tick(t0 + Duration::from_millis(100));
        assert!(p.fetched(1, 1));
        assert_eq!(p.next(1), Next::Fetch(2));
        p.tick(t0 + Duration::from_millis(200));
        assert!(p.fetched(1, 2));
        // Chunks took 100 ms: chunk 0 is late only after a second (the
        // floor), then source 1 copies it; its own chunks it never copies.
        p.tick(t0 + Duration::from_millis(900));
        assert_eq!(p.next(1), Next::Wait);
        p.tick(t0 + Duration::from_millis(1000));
        assert_eq!(p.next(1), Next::Fetch(0));
        // Held twice: nobody else copies it.
        assert_eq!(p.next(1), Next::Wait);
        assert!(p.fetched(1, 0));
        assert!(p.is_complete());
        // The slow copy arrives after: it counts for nothing.
        assert!(!p.fetched(0, 0));
        assert_eq!((p.fetched_from(0), p.fetched_from(1)), (0, 3));
        assert_eq!(p.done(), 3);
    }

    #[test]
    fn before_any_chunk_is_done_a_copy_waits_ten_seconds() {
        let t0 = Instant::now();
        let mut p = Plan::new(1, 3);
        p.tick(t0);
        assert_eq!(p.next(0), Next::Fetch(0));
        p.tick(t0 + Duration::from_secs(9));
        assert_eq!(p.next(1), Next::Wait);
        p.tick(t0 + Duration::from_secs(10));
        assert_eq!(p.next(1), Next::Fetch(0));
        assert_eq!(p.next(2), Next::Wait);
        // The first holder fails: the copy's holder keeps the chunk, and
        // it is late again only ten seconds from now.
        p.failed(0);
        assert_eq!(p.next(2), Next::Wait);
        p.tick(t0 + Duration::from_secs(20));
        assert_eq!(p.next(2), Next::Fetch(0));
        // A copy's holder that fails leaves the chunk to the other.
        p.failed(2);
        assert_eq!(p.next(2), Next::Stop);
        assert!(p.fetched(1, 0));
        assert!(p.is_complete());
    }

    #[test]
    fn chunks_picked_up_are_not_fetched_again() {
        let mut p = Plan::new(3, 1);
        p.have(0);
        p.have(2);
        p.have(2);
        assert_eq!(p.done(), 2);
        assert_eq!(p.next(0), Next::Fetch(1));
        assert_eq!(p.next(0), Next::Wait);
        p.fetched(0, 1);
        assert_eq!(p.next(0), Next::Stop);
        let mut empty = Plan::new(0, 1);
        assert!(empty.is_complete());
        assert_eq!(empty.next(0), Next::Stop);
    }
}
