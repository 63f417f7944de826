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
//! A straggler's held items do not hold the job up (`Once` mode, the tail
//! of a job): once the input is closed and the queue is empty, a link that
//! holds nothing is given copies of items other links hold for longer than
//! [`LATE_FACTOR`] times what answered items of their size took (at least
//! [`LATE_AFTER`]; [`LATE_BLIND`] before any item was answered), the
//! longest held first. An item has at most two holders at once, and a
//! link is given a copy of an item at most once: when a copy's link fails
//! or its member answers with an error, another idle link may take a copy
//! in its place, so a frozen original never ends the job by itself. The
//! first good answer is the one passed on ([`Distributor::answer_with`]);
//! an error waits while another copy may still answer well. The other copy is
//! lost: its link still counts it as held until its member answers it, and
//! a link that holds nothing but lost copies once nothing is left to hand
//! out can be cut off ([`Distributor::cuttable`], [`Distributor::retire`]),
//! which, by closing its session, stops its member's work. Time comes in
//! through [`Distributor::tick`]; without it nothing is ever late.
//!
//! A link that fails in `Every` mode owes a failure report for everything
//! it has not answered, at once, and for every item pushed later
//! ([`Distributor::push`] says so): every item still gets exactly its
//! answers, and no thread needs to stay behind for a failed member.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// An item held this many times longer than answered items of its size
/// took is late: an idle link may take a copy of it.
pub const LATE_FACTOR: u32 = 3;

/// An item is never late before it has been held this long.
pub const LATE_AFTER: Duration = Duration::from_secs(1);

/// Before any item was answered (nothing to compare with), an item is late
/// after this long.
pub const LATE_BLIND: Duration = Duration::from_secs(10);

/// Answered items remembered to judge lateness by.
const SAMPLES: usize = 32;

/// Bytes that cost about as much as answering one item at all: an answered
/// item of `b` bytes stands for one of `x` bytes `(x + OVERHEAD) / (b +
/// OVERHEAD)` times as long.
const OVERHEAD: u64 = 1 << 20;

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
    /// Items taken and not yet answered, with when they were taken (as
    /// far as [`Distributor::tick`] tells the time).
    inflight: BTreeMap<u64, Option<Instant>>,
    /// `Once`: copies it was given of items another link answered first,
    /// which its member has not answered yet.
    lost: BTreeSet<u64>,
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
    /// `Once`: the items copied to a second link, each with the links that
    /// were given a copy of it (none is given the same item twice).
    copied: HashMap<u64, Vec<usize>>,
    /// `Once`: the bytes and the time of recently answered items.
    samples: VecDeque<(u64, Duration)>,
    /// The time as last told.
    now: Option<Instant>,
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
                    inflight: BTreeMap::new(),
                    lost: BTreeSet::new(),
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
            copied: HashMap::new(),
            samples: VecDeque::new(),
            now: None,
        }
    }

    /// The time is `now`: items taken from now on are taken then, and
    /// lateness is judged against it.
    pub fn tick(&mut self, now: Instant) {
        self.now = Some(now);
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
        if l.phase != Phase::Running || !l.inflight.is_empty() || !l.lost.is_empty() {
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
                let now = self.now;
                let l = &mut self.links[link];
                while out.len() < max && l.cursor < self.pushed {
                    out.push(l.cursor);
                    l.inflight.insert(l.cursor, now);
                    l.cursor += 1;
                }
            }
            Mode::Once => {
                while out.len() < max {
                    let Some(&id) = self.ready.front() else {
                        break;
                    };
                    if !self.fits(link, id, max_bytes) {
                        break;
                    }
                    self.ready.pop_front();
                    out.push(id);
                    self.hold(link, id);
                }
                if out.is_empty() {
                    out = self.copies(link, max, max_bytes);
                }
            }
        }
        out
    }

    /// Whether `link` may take `id` too, by the bytes it holds.
    fn fits(&self, link: usize, id: u64, max_bytes: u64) -> bool {
        let l = &self.links[link];
        l.inflight.len() < l.min_held || l.inflight_bytes.saturating_add(self.size(id)) <= max_bytes
    }

    /// `link` takes `id` now.
    fn hold(&mut self, link: usize, id: u64) {
        let bytes = self.size(id);
        let now = self.now;
        let l = &mut self.links[link];
        l.inflight.insert(id, now);
        l.inflight_bytes = l.inflight_bytes.saturating_add(bytes);
    }

    /// `Once`, nothing left to hand out: copies for an idle `link` of the
    /// late items other running links hold, the longest held first, within
    /// the same bounds as [`Distributor::take`].
    fn copies(&mut self, link: usize, max: usize, max_bytes: u64) -> Vec<u64> {
        let l = &self.links[link];
        if !self.closed || !self.ready.is_empty() || !l.inflight.is_empty() || !l.lost.is_empty() {
            return Vec::new();
        }
        let Some(now) = self.now else {
            return Vec::new();
        };
        // Each item other running links hold, with how many hold it and
        // since when (only an item held once is copied).
        let mut held: HashMap<u64, (usize, Option<Instant>)> = HashMap::new();
        for (_, l) in self
            .links
            .iter()
            .enumerate()
            .filter(|(i, l)| *i != link && l.phase == Phase::Running)
        {
            for (&id, &since) in &l.inflight {
                let e = held.entry(id).or_insert((0, since));
                e.0 += 1;
            }
        }
        let mut late: Vec<(Instant, u64)> = held
            .into_iter()
            .filter(|&(id, (holders, _))| {
                holders == 1 && !self.copied.get(&id).is_some_and(|c| c.contains(&link))
            })
            .filter_map(|(id, (_, since))| Some((since?, id)))
            .filter(|&(since, id)| self.late(id, since, now))
            .collect();
        late.sort_unstable();
        let mut out = Vec::new();
        for (_, id) in late {
            if out.len() >= max || !self.fits(link, id, max_bytes) {
                break;
            }
            self.copied.entry(id).or_default().push(link);
            out.push(id);
            self.hold(link, id);
        }
        out
    }

    /// Whether item `id`, held since `since`, is late at `now`.
    fn late(&self, id: u64, since: Instant, now: Instant) -> bool {
        let held = now.saturating_duration_since(since);
        if held < LATE_AFTER {
            return false;
        }
        let Some(expected) = self.expected(self.size(id)) else {
            return held >= LATE_BLIND;
        };
        held >= expected.saturating_mul(LATE_FACTOR)
    }

    /// What an item of `bytes` bytes should take, by the median of the
    /// answered items remembered, scaled by size; `None` before any.
    fn expected(&self, bytes: u64) -> Option<Duration> {
        let mut scaled: Vec<f64> = self
            .samples
            .iter()
            .map(|&(b, took)| {
                let ratio =
                    (bytes.saturating_add(OVERHEAD)) as f64 / (b.saturating_add(OVERHEAD)) as f64;
                took.as_secs_f64() * ratio
            })
            .collect();
        if scaled.is_empty() {
            return None;
        }
        scaled.sort_unstable_by(f64::total_cmp);
        Some(Duration::from_secs_f64(scaled[scaled.len() / 2].min(1e9)))
    }

    /// Whether item `id`, not answered yet, was copied to a second link.
    pub fn is_copied(&self, id: u64) -> bool {
        self.copied.contains_key(&id)
    }

    /// Items `link` holds, lost copies included: what its member has been
    /// sent and has not answered.
    pub fn held(&self, link: usize) -> usize {
        let l = &self.links[link];
        l.inflight.len() + l.lost.len()
    }

    /// Running links that hold nothing but lost copies, now that there is
    /// nothing left to hand out: their members work for nobody.
    pub fn cuttable(&self) -> Vec<usize> {
        if self.mode != Mode::Once || !self.closed || !self.ready.is_empty() {
            return Vec::new();
        }
        (0..self.links.len())
            .filter(|&i| {
                let l = &self.links[i];
                l.phase == Phase::Running && l.inflight.is_empty() && !l.lost.is_empty()
            })
            .collect()
    }

    /// `link`, holding nothing but lost copies ([`Distributor::cuttable`]),
    /// is cut off: it answers nothing more, and owes nothing. False (and
    /// nothing changes) if it holds an item not answered yet.
    pub fn retire(&mut self, link: usize) -> bool {
        let l = &mut self.links[link];
        if !l.inflight.is_empty() || l.phase == Phase::Failed {
            return false;
        }
        if let Some(at) = self.waiting.iter().position(|&w| w == link) {
            self.waiting.remove(at);
        }
        let l = &mut self.links[link];
        l.phase = Phase::Failed;
        l.lost.clear();
        true
    }

    /// `link` answered `id` well. True when this is the answer to pass on:
    /// from a link that held the item, and the first.
    pub fn answer(&mut self, link: usize, id: u64) -> bool {
        self.answer_with(link, id, true)
    }

    /// `link` answered `id`, well (`good`) or with an error. True when this
    /// is the answer to pass on: the first good one, or an error when no
    /// other link holds a copy that may still answer well. Any other copy
    /// is lost from then on (see [`Distributor::held`]).
    pub fn answer_with(&mut self, link: usize, id: u64, good: bool) -> bool {
        if self.links[link].lost.remove(&id) {
            return false;
        }
        let Some(since) = self.links[link].inflight.remove(&id) else {
            return false;
        };
        if self.mode == Mode::Every {
            return true;
        }
        let bytes = self.size(id);
        let l = &mut self.links[link];
        l.inflight_bytes = l.inflight_bytes.saturating_sub(bytes);
        let others: Vec<usize> = (0..self.links.len())
            .filter(|&i| i != link && self.links[i].inflight.contains_key(&id))
            .collect();
        if !good && !others.is_empty() {
            // The other copy may still answer well.
            return false;
        }
        for i in others {
            let o = &mut self.links[i];
            o.inflight.remove(&id);
            o.inflight_bytes = o.inflight_bytes.saturating_sub(bytes);
            o.lost.insert(id);
        }
        if let (Some(since), Some(now), true) = (since, self.now, good) {
            if self.samples.len() >= SAMPLES {
                self.samples.pop_front();
            }
            self.samples
                .push_back((bytes, now.saturating_duration_since(since)));
        }
        self.settled += 1;
        self.sizes.remove(&id);
        self.copied.remove(&id);
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
        let held: Vec<u64> = std::mem::take(&mut l.inflight).into_keys().collect();
        l.inflight_bytes = 0;
        l.lost.clear();
        match self.mode {
            Mode::Every => {
                let mut owed: Vec<u64> = held;
                owed.extend(l.cursor..pushed);
                l.cursor = pushed;
                self.failed.push(link);
                owed
            }
            Mode::Once => {
                // An item another link holds a copy of stays with it.
                for id in held.into_iter().rev() {
                    if !self.links.iter().any(|o| o.inflight.contains_key(&id)) {
                        self.ready.push_front(id);
                    }
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

    /// Four links running, `n` items of `size` bytes pushed and closed,
    /// and the clock at `t0`.
    fn tail(n: u64, size: u64, t0: Instant) -> Distributor {
        let mut d = Distributor::new(Mode::Once, 3);
        d.tick(t0);
        for _ in 0..n {
            d.push_sized(size);
        }
        d.close();
        for _ in 0..3 {
            d.start();
        }
        d
    }

    #[test]
    fn an_idle_link_takes_a_copy_of_a_late_item_and_the_first_good_answer_wins() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = tail(3, 100, t0);
        assert_eq!(d.take(0, 1, u64::MAX), vec![0]);
        assert_eq!(d.take(1, 1, u64::MAX), vec![1]);
        assert_eq!(d.take(2, 1, u64::MAX), vec![2]);
        // Links 1 and 2 answer in 2 s; link 0 is a straggler.
        d.tick(t0 + s(2));
        assert!(d.answer(1, 1) && d.answer(2, 2));
        assert!(
            d.take(1, 1, u64::MAX).is_empty(),
            "held 2 s, like the others took: not late yet"
        );
        d.tick(t0 + s(5));
        assert!(d.take(1, 1, u64::MAX).is_empty(), "5 s < 3 x 2 s");
        d.tick(t0 + s(7));
        assert_eq!(d.take(1, 5, u64::MAX), vec![0], "a copy of the late item");
        assert!(d.take(2, 5, u64::MAX).is_empty(), "two holders at most");
        assert!(!d.complete());
        assert_eq!((d.held(0), d.held(1)), (1, 1));
        // The copy answers first: it is passed on, the straggler's is lost.
        assert!(d.answer(1, 0));
        assert!(d.complete(), "every item answered");
        assert_eq!(d.held(0), 1, "its member still works on it");
        assert_eq!(d.cuttable(), vec![0]);
        assert!(!d.answer(0, 0), "the late answer is dropped");
        assert_eq!(d.held(0), 0);
        assert!(d.cuttable().is_empty());
    }

    #[test]
    fn a_frozen_links_items_are_all_redone_and_it_is_cut_off() {
        let t0 = Instant::now();
        let mut d = tail(10, 0, t0);
        // Link 0 holds four, then freezes; the others answer the rest.
        assert_eq!(d.take(0, 4, u64::MAX), vec![0, 1, 2, 3]);
        let rest = d.take(1, 10, u64::MAX);
        assert_eq!(rest, vec![4, 5, 6, 7, 8, 9]);
        d.tick(t0 + Duration::from_millis(100));
        answer_all(&mut d, 1, &rest);
        assert!(d.take(2, 10, u64::MAX).is_empty(), "not held a second yet");
        d.tick(t0 + Duration::from_secs(1));
        // Both idle links share the copies, up to what they may hold.
        assert_eq!(d.take(2, 3, u64::MAX), vec![0, 1, 2]);
        assert_eq!(d.take(1, 3, u64::MAX), vec![3]);
        assert!(
            d.cuttable().is_empty(),
            "link 0 holds items nobody answered"
        );
        answer_all(&mut d, 2, &[0, 1, 2]);
        answer_all(&mut d, 1, &[3]);
        assert!(d.complete());
        assert_eq!(d.cuttable(), vec![0]);
        assert!(d.retire(0));
        assert!(d.cuttable().is_empty() && d.held(0) == 0);
        assert!(d.fail(0).is_empty(), "a retired link owes nothing");
    }

    #[test]
    fn nothing_is_copied_while_items_wait_or_the_input_is_open_or_the_link_is_busy() {
        let t0 = Instant::now();
        let late = t0 + LATE_BLIND;
        let mut d = Distributor::new(Mode::Once, 2);
        d.tick(t0);
        d.push();
        d.push();
        d.start();
        d.start();
        assert_eq!(d.take(0, 1, u64::MAX), vec![0]);
        d.tick(late);
        assert_eq!(d.take(1, 1, u64::MAX), vec![1], "the queue goes first");
        assert!(d.answer(1, 1));
        assert!(d.take(1, 1, u64::MAX).is_empty(), "more may come");
        let mut b = tail(2, 0, t0);
        assert_eq!(b.take(0, 1, u64::MAX), vec![0]);
        assert_eq!(b.take(1, 1, u64::MAX), vec![1]);
        b.tick(late);
        assert!(b.take(1, 1, u64::MAX).is_empty(), "link 1 is not idle");
        assert_eq!(b.take(2, 5, u64::MAX), vec![0, 1], "link 2 is");
        // Never timed: never late.
        let mut u = Distributor::new(Mode::Once, 2);
        u.push();
        u.close();
        u.start();
        u.start();
        assert_eq!(u.take(0, 1, u64::MAX), vec![0]);
        assert!(u.take(1, 1, u64::MAX).is_empty());
    }

    #[test]
    fn an_error_waits_for_the_other_copy_and_a_failed_copy_lets_another_link_copy() {
        let t0 = Instant::now();
        let late = t0 + LATE_BLIND;
        let mut d = tail(2, 0, t0);
        assert_eq!(d.take(0, 2, u64::MAX), vec![0, 1]);
        d.tick(late);
        assert_eq!(d.take(1, 2, u64::MAX), vec![0, 1]);
        assert!(d.take(2, 2, u64::MAX).is_empty(), "two holders at most");
        // The copy of 0 fails to read: the original may still do it.
        assert!(!d.answer_with(1, 0, false));
        assert!(d.answer(0, 0), "the straggler's good answer is passed on");
        // Link 1 fails holding its copy of 1: the item stays with link 0,
        // not requeued, and an idle link may copy it in its place.
        assert!(d.fail(1).is_empty());
        assert!(
            d.take(2, 5, u64::MAX).is_empty(),
            "not late yet: 0 took as long"
        );
        // Held three times as long as item 0 took: late again.
        d.tick(t0 + LATE_BLIND * 3);
        assert_eq!(d.take(2, 5, u64::MAX), vec![1], "a new copy of 1");
        assert!(d.answer(2, 1));
        assert!(d.complete());
        assert!(!d.answer(0, 1), "the straggler's late answer is dropped");

        // A copy that answers with an error: that link never gets the item
        // again, another idle link does.
        let mut e = tail(1, 0, t0);
        assert_eq!(e.take(0, 1, u64::MAX), vec![0]);
        e.tick(late);
        assert_eq!(e.take(1, 1, u64::MAX), vec![0]);
        assert!(!e.answer_with(1, 0, false));
        assert!(e.take(1, 1, u64::MAX).is_empty(), "not the same item twice");
        assert_eq!(e.take(2, 1, u64::MAX), vec![0]);
        assert!(
            !e.answer_with(2, 0, false),
            "the original may still answer well"
        );
        assert!(e.take(1, 1, u64::MAX).is_empty() && e.take(2, 1, u64::MAX).is_empty());
        assert!(
            e.answer_with(0, 0, false),
            "an error with no other copy left is the answer"
        );
        assert!(e.complete());

        // The original fails instead: the copy carries on.
        let mut f = tail(1, 0, t0);
        assert_eq!(f.take(0, 1, u64::MAX), vec![0]);
        f.tick(late);
        assert_eq!(f.take(1, 1, u64::MAX), vec![0]);
        assert!(f.fail(0).is_empty());
        assert!(
            f.take(2, 1, u64::MAX).is_empty(),
            "not requeued; held once, but not late for its new holder yet"
        );
        assert!(f.answer(1, 0));
        assert!(f.complete());
    }

    #[test]
    fn lateness_scales_with_size_and_large_copies_keep_the_byte_bound() {
        const MIB: u64 = 1 << 20;
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Distributor::new(Mode::Once, 3);
        d.tick(t0);
        d.push_sized(MIB);
        d.push_sized(255 * MIB);
        d.push_sized(255 * MIB);
        d.close();
        for _ in 0..3 {
            d.start();
        }
        assert_eq!(d.take(0, 5, 128 * MIB), vec![0]);
        assert_eq!(d.take(1, 5, 128 * MIB), vec![1]);
        assert_eq!(d.take(2, 5, 128 * MIB), vec![2]);
        // 1 MiB in 1 s: 255 MiB should take 128 s, so 60 s is not late.
        d.tick(t0 + s(1));
        assert!(d.answer(0, 0));
        d.tick(t0 + s(60));
        assert!(d.take(0, 5, 128 * MIB).is_empty());
        d.tick(t0 + s(400));
        assert_eq!(d.take(0, 5, 128 * MIB), vec![1], "one large copy at a time");
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
