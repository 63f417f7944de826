//! `p2p-get --any`'s plan, sans-IO: which chunk each source fetches next,
//! and what becomes of a source that fails.
//!
//! Chunks are handed out lowest first to whichever source asks, so the
//! file fills from its start and every source works as fast as it can. A
//! source that fails (its session broke, it refused, or a chunk of its did
//! not match the manifest) is dropped: the chunks it held go back to be
//! taken by the others. A source with nothing left to take waits while
//! others still hold chunks, since one of them may fail and give its chunk
//! back. The plan is stuck when chunks remain and no source is left.

/// What a source does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Fetch this chunk.
    Fetch(usize),
    /// Nothing to take now, but chunks are in flight elsewhere: ask again
    /// when one of them ends.
    Wait,
    /// Stop: every chunk is written, or this source is dropped, or the
    /// plan is stuck.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Todo,
    Taken(usize),
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
}

impl Plan {
    /// A plan for `chunks` chunks, none written yet, over `sources` sources.
    pub fn new(chunks: usize, sources: usize) -> Plan {
        Plan {
            chunks: vec![Chunk::Todo; chunks],
            sources: vec![Source::default(); sources],
            left: chunks,
            first_todo: 0,
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
            *c = Chunk::Taken(source);
            return Next::Fetch(self.first_todo);
        }
        if self.is_stuck() {
            Next::Stop
        } else {
            Next::Wait
        }
    }

    /// `source` wrote chunk `i`, checked.
    pub fn fetched(&mut self, source: usize, i: usize) {
        if self.chunks.get(i) == Some(&Chunk::Taken(source)) {
            self.chunks[i] = Chunk::Done;
            self.left -= 1;
            self.sources[source].fetched += 1;
        }
    }

    /// `source` failed: it is dropped, and every chunk it held goes back
    /// to the others.
    pub fn failed(&mut self, source: usize) {
        let Some(s) = self.sources.get_mut(source) else {
            return;
        };
        s.dropped = true;
        for (n, c) in self.chunks.iter_mut().enumerate() {
            if *c == Chunk::Taken(source) {
                *c = Chunk::Todo;
                self.first_todo = self.first_todo.min(n);
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
            p.fetched(s, i);
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
