//! Which datagrams were seen already: a sliding window per sender, as IPsec
//! (RFC 6479) and WireGuard keep, with no I/O and no clock.
//!
//! Every sealed datagram carries a [`Stamp`]: its sender, the sender's epoch
//! (fixed at start, higher after every restart) and a counter that grows by
//! one with every datagram the sender seals. A receiver keeps, per sender,
//! the epoch, the highest counter seen and a bitmap of the
//! [`WINDOW_BITS`] counters below it. A stamp is fresh when its epoch is
//! newer (the sender restarted: the window starts over), or when its epoch is
//! the same and its counter is above the highest or is an unset bit of the
//! window; it is refused when its epoch is older, its counter already seen,
//! or below the window. Checking and marking are O(1): one table look-up and
//! at most [`WORDS`] words cleared when the window moves on.
//!
//! The table holds at most a fixed number of senders. Only datagrams that
//! have been authenticated may add one ([`Senders::accept`] is called after
//! opening; [`Senders::check`], before, changes nothing), so only a holder of
//! the cluster key can fill it; when full, the least recently heard of a few
//! senders sampled at random makes room, so making room is O(1) too.

use std::collections::HashMap;

/// Counters per window (2048 bits, 256 bytes).
pub const WINDOW_BITS: u64 = 2048;

/// 64-bit words of a window, used as a ring.
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// How far below the highest counter seen a counter is still judged by its
/// bit: the ring's word of the highest counter is partly in the future,
/// so a whole window less one word is always covered (RFC 6479).
const REACH: u64 = WINDOW_BITS - 64;

/// Senders kept by default: far above the members of any cluster that
/// gossips on one subnet, and at most 2.4 MB.
pub const MAX_SENDERS: usize = 8192;

/// Senders looked at when one must make room.
const SAMPLE: usize = 8;

/// What a datagram says about where it is in its sender's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Who sealed it (see `gossip::id_of`).
    pub sender: u64,
    /// The sender's epoch: higher after each restart.
    pub epoch: u64,
    /// Its number among the datagrams the sender sealed in this epoch.
    pub counter: u64,
}

/// Whether a stamp may be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fresh,
    /// Seen already in this epoch.
    Duplicate,
    /// Below the window: too old to tell, so refused.
    TooOld,
    /// From an earlier run of the sender.
    OldEpoch,
}

/// One sender's window.
#[derive(Clone)]
struct Window {
    sender: u64,
    epoch: u64,
    top: u64,
    /// When it last accepted a stamp, on the table's own clock.
    heard: u64,
    bits: [u64; WORDS],
}

impl Window {
    fn new(s: &Stamp, heard: u64) -> Window {
        let mut w = Window {
            sender: s.sender,
            epoch: s.epoch,
            top: s.counter,
            heard,
            bits: [0; WORDS],
        };
        w.set(s.counter);
        w
    }

    fn slot(counter: u64) -> (usize, u64) {
        ((counter / 64 % WORDS as u64) as usize, 1 << (counter % 64))
    }

    fn set(&mut self, counter: u64) {
        let (word, bit) = Window::slot(counter);
        self.bits[word] |= bit;
    }

    fn check(&self, s: &Stamp) -> Verdict {
        if s.epoch < self.epoch {
            return Verdict::OldEpoch;
        }
        if s.epoch > self.epoch || s.counter > self.top {
            return Verdict::Fresh;
        }
        if self.top - s.counter >= REACH {
            return Verdict::TooOld;
        }
        let (word, bit) = Window::slot(s.counter);
        if self.bits[word] & bit != 0 {
            Verdict::Duplicate
        } else {
            Verdict::Fresh
        }
    }

    /// Marks a stamp that [`Window::check`] found fresh.
    fn mark(&mut self, s: &Stamp, heard: u64) {
        if s.epoch > self.epoch {
            *self = Window::new(s, heard);
            return;
        }
        if s.counter > self.top {
            // Clear the words the window moves over, at most all of them.
            let (from, to) = (self.top / 64, s.counter / 64);
            for i in 1..=(to - from).min(WORDS as u64) {
                self.bits[((from + i) % WORDS as u64) as usize] = 0;
            }
            self.top = s.counter;
        }
        self.set(s.counter);
        self.heard = heard;
    }
}

/// The windows of every sender heard, bounded.
pub struct Senders {
    windows: Vec<Window>,
    index: HashMap<u64, usize>,
    max: usize,
    clock: u64,
    rng: u64,
}

impl Senders {
    /// A table of at most `max` senders; `seed` picks whom to drop when full.
    pub fn new(max: usize, seed: u64) -> Senders {
        Senders {
            windows: Vec::new(),
            index: HashMap::new(),
            max: max.max(1),
            clock: 0,
            rng: seed | 1,
        }
    }

    /// Senders in the table.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether `s` would be accepted; changes nothing, so it may be asked of
    /// a datagram before it is authenticated.
    pub fn check(&self, s: &Stamp) -> Verdict {
        match self.index.get(&s.sender) {
            Some(&i) => self.windows[i].check(s),
            None => Verdict::Fresh,
        }
    }

    /// Accepts `s` if fresh, and remembers it; call only for a datagram
    /// that has been authenticated.
    pub fn accept(&mut self, s: &Stamp) -> Verdict {
        self.clock += 1;
        if let Some(&i) = self.index.get(&s.sender) {
            let w = &mut self.windows[i];
            let v = w.check(s);
            if v == Verdict::Fresh {
                w.mark(s, self.clock);
            }
            return v;
        }
        let w = Window::new(s, self.clock);
        if self.windows.len() < self.max {
            self.index.insert(s.sender, self.windows.len());
            self.windows.push(w);
        } else {
            let i = self.least_recent_of_a_sample();
            self.index.remove(&self.windows[i].sender);
            self.index.insert(s.sender, i);
            self.windows[i] = w;
        }
        Verdict::Fresh
    }

    fn least_recent_of_a_sample(&mut self) -> usize {
        let mut pick = 0;
        let mut oldest = u64::MAX;
        for _ in 0..SAMPLE {
            // xorshift64
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = (self.rng % self.windows.len() as u64) as usize;
            if self.windows[i].heard < oldest {
                oldest = self.windows[i].heard;
                pick = i;
            }
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sender: u64, epoch: u64, counter: u64) -> Stamp {
        Stamp {
            sender,
            epoch,
            counter,
        }
    }

    fn table() -> Senders {
        Senders::new(16, 1)
    }

    #[test]
    fn in_order_stamps_are_fresh_once() {
        let mut t = table();
        for c in 0..5000 {
            assert_eq!(t.check(&stamp(1, 7, c)), Verdict::Fresh, "{c}");
            assert_eq!(t.accept(&stamp(1, 7, c)), Verdict::Fresh, "{c}");
            assert_eq!(t.accept(&stamp(1, 7, c)), Verdict::Duplicate, "{c}");
        }
    }

    #[test]
    fn reordered_within_the_window_is_fresh_duplicates_are_not() {
        let mut t = table();
        let top = 3000;
        assert_eq!(t.accept(&stamp(1, 7, top)), Verdict::Fresh);
        // Everything below, down to the window's reach, arrives late.
        for c in (top - REACH + 1..top).rev() {
            assert_eq!(t.accept(&stamp(1, 7, c)), Verdict::Fresh, "{c}");
        }
        for c in top - REACH + 1..=top {
            assert_eq!(t.accept(&stamp(1, 7, c)), Verdict::Duplicate, "{c}");
        }
        // Gaps stay open: a counter skipped over is fresh when it comes.
        assert_eq!(t.accept(&stamp(1, 7, top + 500)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 7, top + 499)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 7, top + 1)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 7, top + 499)), Verdict::Duplicate);
    }

    #[test]
    fn below_the_window_is_too_old() {
        let mut t = table();
        t.accept(&stamp(1, 7, 10_000));
        assert_eq!(t.check(&stamp(1, 7, 10_000 - REACH)), Verdict::TooOld);
        assert_eq!(t.accept(&stamp(1, 7, 0)), Verdict::TooOld);
        // A jump far ahead clears the whole window: what was seen before
        // the jump is now too old, not fresh again.
        t.accept(&stamp(1, 7, 10_001));
        t.accept(&stamp(1, 7, 1 << 40));
        assert_eq!(t.accept(&stamp(1, 7, 10_001)), Verdict::TooOld);
        assert_eq!(t.accept(&stamp(1, 7, (1 << 40) - 1)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 7, 1 << 40)), Verdict::Duplicate);
    }

    #[test]
    fn a_new_epoch_starts_over_and_old_epochs_are_refused() {
        let mut t = table();
        for c in 0..100 {
            t.accept(&stamp(1, 7, c));
        }
        // The sender restarted: its counter starts again at 0.
        assert_eq!(t.accept(&stamp(1, 8, 0)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 8, 1)), Verdict::Fresh);
        assert_eq!(t.accept(&stamp(1, 8, 0)), Verdict::Duplicate);
        // Whatever its previous run sent is refused, seen or not.
        for c in [0, 50, 99, 100, 5000] {
            assert_eq!(t.check(&stamp(1, 7, c)), Verdict::OldEpoch);
            assert_eq!(t.accept(&stamp(1, 7, c)), Verdict::OldEpoch);
        }
    }

    #[test]
    fn senders_are_apart_and_check_changes_nothing() {
        let mut t = table();
        t.accept(&stamp(1, 7, 5));
        assert_eq!(t.accept(&stamp(2, 7, 5)), Verdict::Fresh);
        assert_eq!(t.check(&stamp(3, 1, 0)), Verdict::Fresh);
        assert_eq!(t.check(&stamp(3, 1, 0)), Verdict::Fresh);
        assert_eq!(t.len(), 2, "check added no sender");
    }

    #[test]
    fn the_table_is_bounded_and_keeps_who_it_heard_lately() {
        let mut t = Senders::new(64, 99);
        // A busy sender heard between every newcomer.
        for s in 0..10_000u64 {
            assert_eq!(t.accept(&stamp(1_000_000, 1, s)), Verdict::Fresh);
            assert_eq!(t.accept(&stamp(s, 1, 0)), Verdict::Fresh);
            assert!(t.len() <= 64);
        }
        assert_eq!(t.index.len(), t.len());
        assert_eq!(
            t.check(&stamp(1_000_000, 1, 9_999)),
            Verdict::Duplicate,
            "the busy sender was kept"
        );
    }
}
