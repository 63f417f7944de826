//! Who answers which path of a cluster query, and which members are being
//! asked right now, kept free of sockets, threads and clocks so every case
//! can be tested directly.
//!
//! Items are numbered as they arrive. There is one link per member; a link
//! is waiting (not started, or parked), running (a session to the member is
//! open), failed, or, once everything is answered, simply finished. Only a
//! bounded number of links run at once (the caller decides how many by how
//! many it starts); the others wait in [`Distributor::start`]'s order.
//!
//! In [`Mode::Every`] each link answers every item, in order, at its own
//! pace; a waiting link keeps its place (its cursor), so it can be parked
//! and resumed. What the caller must keep in memory is what the slowest
//! link, running or waiting, has not taken ([`Distributor::backlog`]): when
//! that reaches the caller's bound while links wait, running links that
//! have caught up park ([`Distributor::park`]) to let waiting ones catch
//! up, so the bound holds without a deadlock however many members wait.
//!
//! In [`Mode::Once`] (`--spread`) running links take items from one shared
//! queue in small batches as they finish earlier ones, so a faster member
//! takes more. A batch is bounded by bytes as well as by count: each item
//! may carry its size ([`Distributor::push_sized`]), and a link takes no
//! more once what it holds would pass [`Distributor::take`]'s byte bound,
//! though a link holding nothing always gets one item. So a few large
//! files go to as many members, not all to the first that asks. When a
//! link fails, what it held goes back to the front of
//! the queue for the others (and a waiting link may be started in its
//! place). Only when no link is left, running or waiting, do the items get
//! failure reports, from the last link that failed.
//!
//! A link that fails in `Every` mode owes a failure report for everything
//! it has not answered, at once, and for every item pushed later
//! ([`Distributor::push`] says so): every item still gets exactly its
//! answers, and no thread needs to stay behind for a failed member.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// How items are shared among links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every link answers every item (`--all`, `--peer`).
    Every,
    /// Each item is answered once, by whichever link takes it (`--spread`).
    Once,
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet, or parked; in the waiting queue.
    Waiting,
    /// Its member is being asked.
    Running,
    /// It answers nothing more.
    Failed,
}

#[derive(Debug)]
struct Link {
    phase: Phase,
    /// `Every`: the next item this link has not taken.
    cursor: u64,
    /// Items taken and not yet answered.
    inflight: BTreeSet<u64>,
    /// The bytes of those items, as far as their sizes are known.
    inflight_bytes: u64,
    /// `Once`: items it may hold whatever their bytes (its workers).
    min_held: usize,
}

/// The distribution state of one query.
#[derive(Debug)]
pub struct Distributor {
    mode: Mode,
    pushed: u64,
    closed: bool,
    links: Vec<Link>,
    /// Links waiting to run, in the order they will be started.
    waiting: VecDeque<usize>,
    /// `Every`: the failed links, each owing a report for every new item.
    failed: Vec<usize>,
    /// `Once`: items not held by any link, requeued ones first.
    ready: VecDeque<u64>,
    /// `Once`: the size of each item not answered yet whose size is known
    /// and not zero; the others weigh nothing against the byte bound.
    sizes: HashMap<u64, u64>,
    /// `Once`: items answered or reported failed so far.
    settled: u64,
    /// `Once`: the link whose failure left nobody to answer; it reports
    /// every item from then on.
    last_failed: Option<usize>,
}

impl Distributor {
    /// `links` links, all waiting, to be started in order 0, 1, ...
    pub fn new(mode: Mode, links: usize) -> Distributor {
        Distributor {
            mode,
            pushed: 0,
            closed: false,
            links: (0..links)
                .map(|_| Link {
                    phase: Phase::Waiting,
                    cursor: 0,
                    inflight: BTreeSet::new(),
                    inflight_bytes: 0,
                    min_held: 1,
                })
                .collect(),
            waiting: (0..links).collect(),
            failed: Vec::new(),
            ready: VecDeque::new(),
            sizes: HashMap::new(),
            settled: 0,
            last_failed: None,
        }
    }

    /// A new item; returns its number and the links that owe a failure
    /// report for it now (they failed before it came).
    pub fn push(&mut self) -> (u64, Vec<usize>) {
        self.push_sized(0)
    }

    /// [`Distributor::push`] of an item of `bytes` bytes (0 when unknown),
    /// which counts against the byte bound of the link that takes it.
    pub fn push_sized(&mut self, bytes: u64) -> (u64, Vec<usize>) {
        let id = self.pushed;
        self.pushed += 1;
        match self.mode {
            Mode::Every => (id, self.failed.clone()),
            Mode::Once => match self.last_failed {
                Some(link) => {
                    self.settled += 1;
                    (id, vec![link])
                }
                None => {
                    if bytes > 0 {
                        self.sizes.insert(id, bytes);
                    }
                    self.ready.push_back(id);
                    (id, Vec::new())
                }
            },
        }
    }

    /// The number the next item pushed will get.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// No more items will be pushed.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The next waiting link, now running; `None` when none waits or (in
    /// `Once` mode) when nothing is left to do.
    pub fn start(&mut self) -> Option<usize> {
        if self.mode == Mode::Once && self.closed && self.settled == self.pushed {
            return None;
        }
        let link = self.waiting.pop_front()?;
        self.links[link].phase = Phase::Running;
        Some(link)
    }

    /// Starts `link` out of turn (this node's own answers, which need no
    /// session and must not wait). False if it is not waiting.
    pub fn start_now(&mut self, link: usize) -> bool {
        let Some(at) = self.waiting.iter().position(|&l| l == link) else {
            return false;
        };
        self.waiting.remove(at);
        self.links[link].phase = Phase::Running;
        true
    }

    /// A running link that holds nothing stops for now and waits again,
    /// behind the others; it will go on from where it was. False (and
    /// nothing changes) if it holds items or is not running.
    pub fn park(&mut self, link: usize) -> bool {
        let l = &mut self.links[link];
        if l.phase != Phase::Running || !l.inflight.is_empty() {
            return false;
        }
        l.phase = Phase::Waiting;
        self.waiting.push_back(link);
        true
    }

    /// Links waiting to run.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Where `link` stands.
    pub fn phase(&self, link: usize) -> Phase {
        self.links[link].phase
    }

    /// Items pushed but not yet taken by the slowest link still to take
    /// them (running or waiting): what the caller holds in memory on their
    /// behalf.
    pub fn backlog(&self) -> u64 {
        match self.mode {
            Mode::Once => self.ready.len() as u64,
            Mode::Every => {
                let slowest = self
                    .links
                    .iter()
                    .filter(|l| l.phase != Phase::Failed)
                    .map(|l| l.cursor)
                    .min();
                self.pushed - slowest.unwrap_or(self.pushed)
            }
        }
    }

    /// The size of item `id` as pushed (0 when unknown or answered).
    fn size(&self, id: u64) -> u64 {
        self.sizes.get(&id).copied().unwrap_or(0)
    }

    /// `link` computes `n` items at once (a member's workers): in `Once`
    /// mode it may hold that many whatever their bytes, so that a member
    /// with several cores is not given one large file at a time.
    pub fn set_workers(&mut self, link: usize, n: usize) {
        self.links[link].min_held = n.max(1);
    }

    /// Up to `max` items for running `link` to work on, and in `Once` mode
    /// only as many as keep the bytes it holds within `max_bytes` (as many
    /// as its workers all the same, see [`Distributor::set_workers`]; one
    /// by default). Empty when there is nothing for it right now.
    pub fn take(&mut self, link: usize, max: usize, max_bytes: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if self.links[link].phase != Phase::Running {
            return out;
        }
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
                while out.len() < max {
                    let Some(&id) = self.ready.front() else {
                        break;
                    };
                    let bytes = self.size(id);
                    let l = &self.links[link];
                    if l.inflight.len() >= l.min_held
                        && l.inflight_bytes.saturating_add(bytes) > max_bytes
                    {
                        break;
                    }
                    self.ready.pop_front();
                    out.push(id);
                    let l = &mut self.links[link];
                    l.inflight.insert(id);
                    l.inflight_bytes = l.inflight_bytes.saturating_add(bytes);
                }
            }
        }
        out
    }

    /// `link` answered `id`. True when this is the answer to pass on: from
    /// a link that held the item.
    pub fn answer(&mut self, link: usize, id: u64) -> bool {
        if !self.links[link].inflight.remove(&id) {
            return false;
        }
        if self.mode == Mode::Once {
            self.settled += 1;
            let bytes = self.sizes.remove(&id).unwrap_or(0);
            let l = &mut self.links[link];
            l.inflight_bytes = l.inflight_bytes.saturating_sub(bytes);
        }
        true
    }

    /// `link` failed (running, or waiting: a member known to be down): it
    /// answers nothing more. Returns the items that now need a failure
    /// report from it: in `Every` mode all it has not answered; in `Once`
    /// mode nothing while another link runs or waits (its items are
    /// requeued for them), else everything not yet answered.
    pub fn fail(&mut self, link: usize) -> Vec<u64> {
        if self.links[link].phase == Phase::Failed {
            return Vec::new();
        }
        if let Some(at) = self.waiting.iter().position(|&l| l == link) {
            self.waiting.remove(at);
        }
        let pushed = self.pushed;
        let l = &mut self.links[link];
        l.phase = Phase::Failed;
        let held = std::mem::take(&mut l.inflight);
        l.inflight_bytes = 0;
        match self.mode {
            Mode::Every => {
                let mut owed: Vec<u64> = held.into_iter().collect();
                owed.extend(l.cursor..pushed);
                l.cursor = pushed;
                self.failed.push(link);
                owed
            }
            Mode::Once => {
                for id in held.into_iter().rev() {
                    self.ready.push_front(id);
                }
                let others = !self.waiting.is_empty()
                    || self.links.iter().any(|l| l.phase == Phase::Running);
                if others {
                    return Vec::new();
                }
                self.last_failed = Some(link);
                let owed: Vec<u64> = self.ready.drain(..).collect();
                self.settled += owed.len() as u64;
                self.sizes.clear();
                owed
            }
        }
    }

    /// True when running `link` will never be given anything more to do.
    pub fn finished(&self, link: usize) -> bool {
        let l = &self.links[link];
        if l.phase == Phase::Failed {
            return true;
        }
        if !l.inflight.is_empty() || !self.closed {
            return false;
        }
        match self.mode {
            Mode::Every => l.cursor == self.pushed,
            // A running link waits for the very end: a failing one may
            // still hand back items.
            Mode::Once => self.settled == self.pushed,
        }
    }

    /// True when every item has all its answers.
    pub fn complete(&self) -> bool {
        (0..self.links.len()).all(|i| self.finished(i))
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

    fn answer_all(d: &mut Distributor, link: usize, ids: &[u64]) {
        for &id in ids {
            assert!(d.answer(link, id), "link {link} item {id}");
        }
    }

    #[test]
    fn every_link_answers_every_item() {
        let mut d = pushed(Mode::Every, 3, 5);
        d.close();
        for link in 0..3 {
            assert_eq!(d.start(), Some(link));
            let got = d.take(link, 10, u64::MAX);
            assert_eq!(got, vec![0, 1, 2, 3, 4]);
            answer_all(&mut d, link, &got);
            assert!(d.finished(link));
        }
        assert_eq!(d.start(), None);
        assert!(d.complete());
    }

    #[test]
    fn a_waiting_link_takes_nothing_and_keeps_every_item_for_later() {
        let mut d = pushed(Mode::Every, 2, 3);
        assert_eq!(d.start(), Some(0));
        assert!(d.take(1, 10, u64::MAX).is_empty(), "link 1 has not started");
        let got = d.take(0, 10, u64::MAX);
        answer_all(&mut d, 0, &got);
        assert_eq!(d.backlog(), 3, "link 1 still needs all three");
        d.close();
        assert!(d.finished(0));
        assert!(!d.complete());
        assert_eq!(d.start(), Some(1));
        assert_eq!(d.take(1, 10, u64::MAX), vec![0, 1, 2]);
    }

    #[test]
    fn parked_links_let_waiting_ones_catch_up_so_the_backlog_bound_holds() {
        // 2 places, 5 members, a bound of 4 items held: the caller pushes
        // only while the backlog is under the bound, and running links
        // that caught up park whenever the caller is held back.
        const BOUND: u64 = 4;
        const ITEMS: u64 = 20;
        let mut d = Distributor::new(Mode::Every, 5);
        let mut running: Vec<usize> = (0..2).filter_map(|_| d.start()).collect();
        let mut answers = vec![0u64; 5];
        let mut steps = 0;
        while !d.complete() {
            steps += 1;
            assert!(steps < 10_000, "no progress");
            if d.backlog() < BOUND && d.pushed < ITEMS {
                d.push();
                if d.pushed == ITEMS {
                    d.close();
                }
                continue;
            }
            let held_back = d.backlog() >= BOUND && d.pushed < ITEMS;
            for slot in running.iter_mut() {
                let link = *slot;
                let got = d.take(link, 2, u64::MAX);
                if !got.is_empty() {
                    answers[link] += got.len() as u64;
                    answer_all(&mut d, link, &got);
                    continue;
                }
                let next = if d.finished(link) {
                    d.start()
                } else if held_back && d.waiting() > 0 {
                    assert!(d.park(link));
                    d.start()
                } else {
                    None
                };
                if let Some(n) = next {
                    *slot = n;
                }
            }
            assert!(d.backlog() <= BOUND, "the bound holds");
        }
        assert_eq!(answers, vec![ITEMS; 5], "every member answered every item");
    }

    #[test]
    fn a_link_holding_items_does_not_park() {
        let mut d = pushed(Mode::Every, 2, 2);
        d.start();
        d.take(0, 1, u64::MAX);
        assert!(!d.park(0));
        assert!(!d.park(1), "not running");
        d.answer(0, 0);
        assert!(d.park(0));
        assert_eq!(d.start(), Some(1));
        assert_eq!(
            d.start(),
            Some(0),
            "the parked link waits behind the others"
        );
        assert_eq!(d.take(0, 5, u64::MAX), vec![1], "and goes on where it was");
    }

    #[test]
    fn a_failed_link_in_every_mode_reports_what_it_did_not_answer_and_every_later_item() {
        let mut d = pushed(Mode::Every, 2, 4);
        d.start();
        assert_eq!(d.take(0, 2, u64::MAX), vec![0, 1]);
        assert!(d.answer(0, 0));
        assert_eq!(d.fail(0), vec![1, 2, 3]);
        assert!(d.finished(0));
        assert_eq!(d.push(), (4, vec![0]), "a later item: reported at once");
        assert!(!d.answer(0, 1), "a failed link answers nothing");
        assert!(d.fail(0).is_empty(), "reported once");
        // A member known to be down fails before it starts.
        assert_eq!(d.fail(1), vec![0, 1, 2, 3, 4]);
        assert_eq!(d.start(), None);
        assert_eq!(d.push(), (5, vec![0, 1]));
        d.close();
        assert!(d.complete());
        assert_eq!(d.backlog(), 0, "failed links hold nothing back");
    }

    #[test]
    fn once_mode_gives_each_item_to_one_link_and_faster_links_take_more() {
        let mut d = pushed(Mode::Once, 2, 10);
        d.close();
        d.start();
        d.start();
        let mut per_link = [0, 0];
        // Link 0 answers three batches while link 1 answers one.
        for round in 0..4 {
            let link = usize::from(round == 3);
            let got = d.take(link, 2, u64::MAX);
            per_link[link] += got.len();
            answer_all(&mut d, link, &got);
        }
        assert_eq!(per_link, [6, 2]);
        let rest = d.take(1, 10, u64::MAX);
        assert_eq!(rest, vec![8, 9]);
        answer_all(&mut d, 1, &rest);
        assert!(d.complete());
    }

    #[test]
    fn once_mode_requeues_a_failed_links_items_first() {
        let mut d = pushed(Mode::Once, 2, 6);
        d.start();
        d.start();
        assert_eq!(d.take(0, 2, u64::MAX), vec![0, 1]);
        assert_eq!(d.take(1, 2, u64::MAX), vec![2, 3]);
        assert!(d.answer(1, 2));
        assert!(d.fail(1).is_empty(), "link 0 is still running");
        assert!(d.finished(1));
        assert!(
            d.take(1, 5, u64::MAX).is_empty(),
            "a failed link takes nothing"
        );
        // Link 0 gets the orphan (3) before the new items.
        assert_eq!(d.take(0, 10, u64::MAX), vec![3, 4, 5]);
        // An answer from a link that no longer holds the item is ignored.
        assert!(!d.answer(1, 3));
        d.close();
        answer_all(&mut d, 0, &[0, 1, 3, 4, 5]);
        assert!(d.complete());
    }

    #[test]
    fn once_mode_starts_a_waiting_link_in_place_of_a_failed_one() {
        let mut d = pushed(Mode::Once, 3, 4);
        assert_eq!(d.start(), Some(0));
        assert_eq!(d.take(0, 4, u64::MAX), vec![0, 1, 2, 3]);
        assert!(d.fail(0).is_empty(), "links 1 and 2 still wait");
        assert_eq!(d.start(), Some(1));
        assert_eq!(d.take(1, 2, u64::MAX), vec![0, 1]);
        d.close();
        answer_all(&mut d, 1, &[0, 1]);
        assert_eq!(d.take(1, 2, u64::MAX), vec![2, 3]);
        answer_all(&mut d, 1, &[2, 3]);
        assert!(d.complete());
        assert_eq!(d.start(), None, "nothing left: the spare is not asked");
    }

    #[test]
    fn a_live_link_waits_until_no_failure_can_hand_items_back() {
        let mut d = pushed(Mode::Once, 2, 2);
        d.close();
        d.start();
        d.start();
        assert_eq!(d.take(0, 1, u64::MAX), vec![0]);
        assert_eq!(d.take(1, 1, u64::MAX), vec![1]);
        d.answer(0, 0);
        assert!(!d.finished(0), "link 1 may still fail and hand item 1 back");
        d.fail(1);
        assert_eq!(d.take(0, 5, u64::MAX), vec![1]);
        d.answer(0, 1);
        assert!(d.finished(0) && d.complete());
    }

    #[test]
    fn when_the_last_link_fails_it_reports_everything_left_and_later() {
        let mut d = pushed(Mode::Once, 2, 5);
        d.start();
        assert_eq!(d.take(0, 2, u64::MAX), vec![0, 1]);
        assert!(d.fail(1).is_empty(), "link 0 runs");
        assert_eq!(d.fail(0), vec![0, 1, 2, 3, 4], "nobody is left to do them");
        assert_eq!(d.push(), (5, vec![0]));
        d.close();
        assert!(d.complete());
    }

    #[test]
    fn once_mode_bounds_a_batch_by_bytes_so_large_files_go_to_many_links() {
        const MIB: u64 = 1 << 20;
        let mut d = Distributor::new(Mode::Once, 4);
        for _ in 0..8 {
            d.push_sized(256 * MIB);
        }
        d.close();
        for _ in 0..4 {
            d.start();
        }
        // Each link holds one file: one past the bound is still one.
        for link in 0..4 {
            assert_eq!(d.take(link, 64, 128 * MIB), vec![link as u64]);
            assert!(
                d.take(link, 64, 128 * MIB).is_empty(),
                "link {link} is full"
            );
        }
        // Link 2 is fastest: it answers and takes the next, twice.
        assert!(d.answer(2, 2));
        assert_eq!(d.take(2, 64, 128 * MIB), vec![4]);
        assert!(d.answer(2, 4));
        assert_eq!(d.take(2, 64, 128 * MIB), vec![5]);
        // A failed link's file goes back with its size.
        assert!(d.fail(1).is_empty());
        assert!(d.answer(0, 0));
        assert_eq!(d.take(0, 64, 128 * MIB), vec![1]);
        assert!(
            d.take(0, 64, 128 * MIB).is_empty(),
            "the requeued file weighs"
        );
    }

    #[test]
    fn small_items_fill_a_batch_up_to_the_byte_bound_and_unknown_sizes_weigh_nothing() {
        let mut d = Distributor::new(Mode::Once, 1);
        for size in [40, 40, 40, 0, 0, 10] {
            d.push_sized(size);
        }
        d.start();
        assert_eq!(
            d.take(0, 64, 100),
            vec![0, 1],
            "a third would pass 100 bytes"
        );
        assert!(d.answer(0, 0));
        assert_eq!(d.take(0, 64, 100), vec![2, 3, 4, 5], "40 + 40 + 0 + 0 + 10");
        assert_eq!(d.take(0, 64, 100), Vec::<u64>::new());
    }

    #[test]
    fn backlog_follows_the_slowest_link() {
        let mut d = pushed(Mode::Every, 2, 10);
        d.start();
        d.start();
        d.take(0, 8, u64::MAX);
        d.take(1, 3, u64::MAX);
        assert_eq!(d.backlog(), 7);
        let mut o = pushed(Mode::Once, 2, 10);
        o.start();
        o.take(0, 4, u64::MAX);
        assert_eq!(o.backlog(), 6);
    }
}
