//! Who answers which path of a cluster query, kept free of sockets, threads
//! and clocks so every case can be tested directly.
//!
//! Items are numbered as they arrive. In [`Mode::Every`] each link (one per
//! member) answers every item, in order, at its own pace. In [`Mode::Once`]
//! (`--spread`) links take items from one shared queue in small batches as
//! they finish earlier ones, so a faster member takes more; when a link
//! fails, what it held goes back to the front of the queue for the others.
//! A link that fails in `Every` mode, or the last live link in `Once` mode,
//! becomes a drainer: it goes on taking items only to report them failed,
//! so that every item still gets exactly its answers.

use std::collections::{BTreeSet, VecDeque};

/// How items are shared among links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every link answers every item (`--all`, `--peer`).
    Every,
    /// Each item is answered once, by whichever link takes it (`--spread`).
    Once,
}

#[derive(Debug, Default)]
struct Link {
    live: bool,
    /// `Every`: the next item this link has not taken.
    cursor: u64,
    /// Items taken and not yet answered.
    inflight: BTreeSet<u64>,
}

/// The distribution state of one query.
#[derive(Debug)]
pub struct Distributor {
    mode: Mode,
    pushed: u64,
    closed: bool,
    links: Vec<Link>,
    /// `Once`: items not held by any link, requeued ones first.
    ready: VecDeque<u64>,
    /// `Once`: items answered so far.
    answered: u64,
}

impl Distributor {
    pub fn new(mode: Mode, links: usize) -> Distributor {
        Distributor {
            mode,
            pushed: 0,
            closed: false,
            links: (0..links)
                .map(|_| Link {
                    live: true,
                    ..Link::default()
                })
                .collect(),
            ready: VecDeque::new(),
            answered: 0,
        }
    }

    /// A new item; returns its number.
    pub fn push(&mut self) -> u64 {
        let id = self.pushed;
        self.pushed += 1;
        if self.mode == Mode::Once {
            self.ready.push_back(id);
        }
        id
    }

    /// No more items will be pushed.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Items pushed but not yet taken by the slowest link still taking: what
    /// the caller holds in memory on their behalf.
    pub fn backlog(&self) -> u64 {
        match self.mode {
            Mode::Once => self.ready.len() as u64,
            Mode::Every => {
                let slowest = self.links.iter().map(|l| l.cursor).min();
                self.pushed - slowest.unwrap_or(self.pushed)
            }
        }
    }

    fn any_live(&self) -> bool {
        self.links.iter().any(|l| l.live)
    }

    /// Up to `max` items for `link` to work on (or, for a drainer, to report
    /// as failed). Empty when there is nothing for it right now.
    pub fn take(&mut self, link: usize, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        match self.mode {
            Mode::Every => {
                let l = &mut self.links[link];
                while out.len() < max && l.cursor < self.pushed {
                    out.push(l.cursor);
                    l.inflight.insert(l.cursor);
                    l.cursor += 1;
                }
            }
            Mode::Once => {
                if !self.links[link].live && self.any_live() {
                    return out;
                }
                while out.len() < max {
                    let Some(id) = self.ready.pop_front() else {
                        break;
                    };
                    out.push(id);
                    self.links[link].inflight.insert(id);
                }
            }
        }
        out
    }

    /// `link` answered `id` (or reported it failed). True when this is the
    /// answer to pass on: the first for the item, from a link that held it.
    pub fn answer(&mut self, link: usize, id: u64) -> bool {
        if !self.links[link].inflight.remove(&id) {
            return false;
        }
        if self.mode == Mode::Once {
            self.answered += 1;
        }
        true
    }

    /// `link` failed: it answers nothing more. Returns the items it held that
    /// now need a failure report from it (`Every`, or `Once` with no other
    /// live link); in `Once` mode with live links left, they are requeued.
    pub fn fail(&mut self, link: usize) -> Vec<u64> {
        self.links[link].live = false;
        let held: Vec<u64> = self.links[link].inflight.iter().copied().collect();
        if self.mode == Mode::Once && self.any_live() {
            self.links[link].inflight.clear();
            for id in held.into_iter().rev() {
                self.ready.push_front(id);
            }
            return Vec::new();
        }
        held
    }

    /// True when `link` will never be given anything more to do.
    pub fn finished(&self, link: usize) -> bool {
        let l = &self.links[link];
        if self.mode == Mode::Once && !l.live && self.any_live() {
            // The live links take over whatever it held.
            return true;
        }
        if !l.inflight.is_empty() || !self.closed {
            return false;
        }
        match self.mode {
            Mode::Every => l.cursor == self.pushed,
            // A live link waits for the very end: a failing one may still
            // hand back items.
            Mode::Once if l.live => self.answered == self.pushed,
            Mode::Once => self.ready.is_empty(),
        }
    }

    /// True when every item has all its answers.
    pub fn complete(&self) -> bool {
        (0..self.links.len()).all(|i| self.finished(i))
    }

    /// Whether `link` still counts as working (not failed).
    pub fn is_live(&self, link: usize) -> bool {
        self.links[link].live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(mode: Mode, links: usize, n: u64) -> Distributor {
        let mut d = Distributor::new(mode, links);
        for _ in 0..n {
            d.push();
        }
        d
    }

    #[test]
    fn every_link_answers_every_item() {
        let mut d = pushed(Mode::Every, 3, 5);
        d.close();
        for link in 0..3 {
            let got = d.take(link, 10);
            assert_eq!(got, vec![0, 1, 2, 3, 4]);
            for id in got {
                assert!(d.answer(link, id));
            }
            assert!(d.finished(link));
        }
        assert!(d.complete());
    }

    #[test]
    fn a_failed_link_in_every_mode_reports_what_it_held_and_drains_the_rest() {
        let mut d = pushed(Mode::Every, 2, 4);
        assert_eq!(d.take(0, 2), vec![0, 1]);
        assert_eq!(d.fail(0), vec![0, 1]);
        for id in [0, 1] {
            assert!(d.answer(0, id));
        }
        d.push();
        d.close();
        // It drains the rest, item by item, to report them.
        assert_eq!(d.take(0, 10), vec![2, 3, 4]);
        assert!(!d.finished(0));
        for id in [2, 3, 4] {
            d.answer(0, id);
        }
        assert!(d.finished(0));
        assert!(!d.complete(), "link 1 has answered nothing yet");
    }

    #[test]
    fn once_mode_gives_each_item_to_one_link_and_faster_links_take_more() {
        let mut d = pushed(Mode::Once, 2, 10);
        d.close();
        let mut per_link = [0, 0];
        // Link 0 answers three batches while link 1 answers one.
        for round in 0..4 {
            let link = usize::from(round == 3);
            let got = d.take(link, 2);
            per_link[link] += got.len();
            for id in got {
                assert!(d.answer(link, id));
            }
        }
        assert_eq!(per_link, [6, 2]);
        let rest = d.take(1, 10);
        assert_eq!(rest, vec![8, 9]);
        for id in rest {
            d.answer(1, id);
        }
        assert!(d.complete());
    }

    #[test]
    fn once_mode_requeues_a_failed_links_items_first() {
        let mut d = pushed(Mode::Once, 2, 6);
        assert_eq!(d.take(0, 2), vec![0, 1]);
        assert_eq!(d.take(1, 2), vec![2, 3]);
        assert!(d.answer(1, 2));
        assert!(d.fail(1).is_empty(), "link 0 is still live");
        assert!(d.finished(1));
        assert_eq!(
            d.take(1, 5),
            Vec::<u64>::new(),
            "a failed link takes nothing"
        );
        // Link 0 gets the orphan (3) before the new items.
        assert_eq!(d.take(0, 10), vec![3, 4, 5]);
        // An answer from a link that no longer holds the item is ignored.
        assert!(!d.answer(1, 3));
        d.close();
        for id in [0, 1, 3, 4, 5] {
            assert!(d.answer(0, id));
        }
        assert!(d.complete());
    }

    #[test]
    fn a_live_link_waits_until_no_failure_can_hand_items_back() {
        let mut d = pushed(Mode::Once, 2, 2);
        d.close();
        assert_eq!(d.take(0, 1), vec![0]);
        assert_eq!(d.take(1, 1), vec![1]);
        d.answer(0, 0);
        assert!(!d.finished(0), "link 1 may still fail and hand item 1 back");
        d.fail(1);
        assert_eq!(d.take(0, 5), vec![1]);
        d.answer(0, 1);
        assert!(d.finished(0) && d.complete());
    }

    #[test]
    fn when_the_last_live_link_fails_it_drains_everything_left() {
        let mut d = pushed(Mode::Once, 2, 5);
        assert_eq!(d.take(0, 2), vec![0, 1]);
        d.fail(1);
        assert_eq!(d.fail(0), vec![0, 1], "nobody is left to redo them");
        for id in [0, 1] {
            assert!(d.answer(0, id));
        }
        d.close();
        assert_eq!(d.take(0, 10), vec![2, 3, 4]);
        for id in [2, 3, 4] {
            assert!(d.answer(0, id));
        }
        assert!(d.complete());
    }

    #[test]
    fn backlog_follows_the_slowest_link() {
        let mut d = pushed(Mode::Every, 2, 10);
        d.take(0, 8);
        d.take(1, 3);
        assert_eq!(d.backlog(), 7);
        let mut o = pushed(Mode::Once, 2, 10);
        o.take(0, 4);
        assert_eq!(o.backlog(), 6);
    }
}
