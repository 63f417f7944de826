//! A fixed pool of worker threads shared fairly between callers.
//!
//! Each caller (a local user by uid, a remote member by address) has a
//! bounded queue of its own. A free worker serves, among the callers with
//! jobs waiting, the one with the fewest jobs running, and among those the
//! one that has waited longest, so callers take turns. A job may hand back
//! its continuation (a large file between two slices), which goes to the
//! back of its caller's queue. So two callers' huge files interleave, one
//! worker each, and a third caller's small query waits at most until some
//! worker ends a slice.
//!
//! [`Queues`] is that policy, sans threads; [`Pool`] runs it on workers.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

/// Who a job is computed for; each gets a fair share of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    /// A local user, by uid.
    User(u32),
    /// A remote member, by the address its connection comes from: members
    /// that share a host share a share.
    Member(IpAddr),
}

/// A unit of work; returns its continuation, if any, to be queued again.
pub struct Job(Box<dyn FnOnce() -> Option<Job> + Send + 'static>);

impl Job {
    pub fn new(f: impl FnOnce() -> Option<Job> + Send + 'static) -> Job {
        Job(Box::new(f))
    }

    /// A job that is done in one go.
    pub fn once(f: impl FnOnce() + Send + 'static) -> Job {
        Job::new(move || {
            f();
            None
        })
    }
}

/// How many callers' full queues the whole pool holds; past that, only a
/// caller with nothing queued may queue (one job), so the others can never
/// fill the pool against it.
const FULL_QUEUES: usize = 8;

/// Runs submitted jobs on `threads` workers, fairly between callers.
pub struct Pool {
    shared: Arc<PoolShared>,
    threads: usize,
}

struct PoolShared {
    queues: Mutex<Queues<Job>>,
    /// Signalled when a job is queued.
    work: Condvar,
    /// Signalled when a job leaves a queue.
    room: Condvar,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, Queues<Job>> {
        // The queues are consistent between any two calls; a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pool {
    /// `threads` workers; each caller may queue `queue` jobs.
    pub fn new(threads: usize, queue: usize) -> Pool {
        let queue = queue.max(1);
        let shared = Arc::new(PoolShared {
            queues: Mutex::new(Queues::new(queue, queue * FULL_QUEUES)),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&shared))
                .expect("spawning a worker thread at start-up");
        }
        Pool {
            shared,
            threads: threads.max(1),
        }
    }

    /// How many workers compute items.
    pub fn workers(&self) -> usize {
        self.threads
    }

    /// Workers, workers running a job, and jobs waiting, as of now (for
    /// `p2p-status`; takes the queues' lock once).
    pub fn load(&self) -> super::counters::PoolLoad {
        let queues = self.shared.lock();
        super::counters::PoolLoad {
            workers: self.threads,
            busy: queues.running(),
            queued: queues.queued(),
        }
    }

    /// Queues a job for `who`, waiting while that caller's queue is full. A
    /// job that panics is logged and its worker keeps serving.
    pub fn submit(&self, who: Who, job: Job) {
        let mut queues = self.shared.lock();
        let mut job = job;
        loop {
            match queues.push(who, job) {
                Ok(()) => break,
                Err(refused) => {
                    job = refused;
                    queues = self
                        .shared
                        .room
                        .wait(queues)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        drop(queues);
        self.shared.work.notify_one();
    }
}

fn work(shared: &PoolShared) {
    let mut queues = shared.lock();
    loop {
        let Some((who, job)) = queues.take() else {
            queues = shared.work.wait(queues).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        drop(queues);
        shared.room.notify_all();
        let next = catch_unwind(AssertUnwindSafe(job.0)).unwrap_or_else(|_| {
            log::error!("a job panicked; the worker goes on");
            None
        });
        queues = shared.lock();
        queues.done(who, next);
    }
}

/// The queues of the callers and the order they are served in, for any kind
/// of job; a job is taken by [`Queues::take`] and given back, finished or
/// to be continued, by [`Queues::done`].
pub struct Queues<T> {
    callers: HashMap<Who, Caller<T>>,
    /// The callers with jobs queued, in the order they are served in.
    turns: VecDeque<Who>,
    /// Jobs in all queues.
    queued: usize,
    per_caller: usize,
    total: usize,
}

struct Caller<T> {
    queue: VecDeque<T>,
    running: usize,
}

impl<T> Queues<T> {
    /// Each caller may queue `per_caller` jobs, and all together `total`,
    /// except that a caller with nothing queued may always queue one.
    pub fn new(per_caller: usize, total: usize) -> Queues<T> {
        Queues {
            callers: HashMap::new(),
            turns: VecDeque::new(),
            queued: 0,
            per_caller: per_caller.max(1),
            total,
        }
    }

    /// Queues a new job of `who`'s; gives it back if the bounds are reached.
    pub fn push(&mut self, who: Who, job: T) -> Result<(), T> {
        let waiting = self.callers.get(&who).map_or(0, |c| c.queue.len());
        if waiting >= self.per_caller || (waiting > 0 && self.queued >= self.total) {
            return Err(job);
        }
        self.enqueue(who, job);
        Ok(())
    }

    fn enqueue(&mut self, who: Who, job: T) {
        let caller = self.callers.entry(who).or_insert_with(|| Caller {
            queue: VecDeque::new(),
            running: 0,
        });
        if caller.queue.is_empty() {
            self.turns.push_back(who);
        }
        caller.queue.push_back(job);
        self.queued += 1;
    }

    /// The next job to run: the first in turn among the callers with the
    /// fewest jobs running. The caller goes to the back of the turns.
    pub fn take(&mut self) -> Option<(Who, T)> {
        let (at, _) = self
            .turns
            .iter()
            .enumerate()
            .min_by_key(|(_, who)| self.callers.get(who).map_or(0, |c| c.running))?;
        let who = self.turns.remove(at)?;
        let caller = self.callers.get_mut(&who)?;
        let job = caller.queue.pop_front()?;
        caller.running += 1;
        self.queued -= 1;
        if !caller.queue.is_empty() {
            self.turns.push_back(who);
        }
        Some((who, job))
    }

    /// A job of `who`'s has run; its continuation, if any, goes to the back
    /// of `who`'s queue. A continuation is never refused: its place was
    /// taken when the job was first queued.
    pub fn done(&mut self, who: Who, next: Option<T>) {
        if let Some(caller) = self.callers.get_mut(&who) {
            caller.running = caller.running.saturating_sub(1);
        }
        if let Some(job) = next {
            self.enqueue(who, job);
        }
        if self
            .callers
            .get(&who)
            .is_some_and(|c| c.running == 0 && c.queue.is_empty())
        {
            self.callers.remove(&who);
        }
    }

    /// Jobs queued, not running.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Jobs taken and not yet given back: the workers busy.
    pub fn running(&self) -> usize {
        self.callers.values().map(|c| c.running).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    const A: Who = Who::User(1);
    const B: Who = Who::User(2);
    const C: Who = Who::Member(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn callers_take_turns() {
        let mut q = Queues::new(10, 100);
        for i in 0..3 {
            q.push(A, format!("a{i}")).unwrap();
        }
        for i in 0..3 {
            q.push(B, format!("b{i}")).unwrap();
        }
        q.push(C, "c0".to_string()).unwrap();
        let mut order = Vec::new();
        while let Some((who, job)) = q.take() {
            order.push(job);
            q.done(who, None);
        }
        assert_eq!(order, ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]);
        assert_eq!(q.queued(), 0);
        assert!(q.callers.is_empty());
    }

    #[test]
    fn the_caller_with_fewest_running_goes_first() {
        let mut q = Queues::new(10, 100);
        for i in 0..4 {
            q.push(A, format!("a{i}")).unwrap();
        }
        // A takes both workers, as nobody else waits.
        let (w1, j1) = q.take().unwrap();
        let (w2, j2) = q.take().unwrap();
        assert_eq!((w1, w2, j1.as_str(), j2.as_str()), (A, A, "a0", "a1"));
        // B comes later, but runs nothing: it is served first.
        q.push(B, "b0".to_string()).unwrap();
        q.done(A, None);
        assert_eq!(q.take().unwrap().1, "b0");
        // Now A and B run one each: A's next job.
        q.done(A, None);
        assert_eq!(q.take().unwrap().1, "a2");
    }

    #[test]
    fn slices_go_to_the_back_and_interleave() {
        // Two huge files of two callers on two workers, then a small query
        // of a third: each huge file keeps one worker, and the small one is
        // taken as soon as one slice ends.
        let mut q = Queues::new(10, 100);
        q.push(A, ("a", 0)).unwrap();
        q.push(B, ("b", 0)).unwrap();
        let mut taken = Vec::new();
        let take = |q: &mut Queues<(&'static str, u32)>, taken: &mut Vec<String>| {
            let (who, (name, slice)) = q.take().unwrap();
            taken.push(format!("{name}{slice}"));
            (who, (name, slice))
        };
        let mut running = vec![take(&mut q, &mut taken), take(&mut q, &mut taken)];
        for round in 0..6 {
            if round == 3 {
                q.push(C, ("c", 0)).unwrap();
            }
            // The worker that started first ends its slice first.
            let (who, (name, slice)) = running.remove(0);
            let next = (name != "c").then_some((name, slice + 1));
            q.done(who, next);
            running.push(take(&mut q, &mut taken));
        }
        assert_eq!(taken, ["a0", "b0", "a1", "b1", "a2", "c0", "b2", "a3"]);
    }

    #[test]
    fn within_a_caller_a_huge_file_takes_turns_too() {
        let mut q = Queues::new(10, 100);
        q.push(A, "huge slice 0").unwrap();
        q.push(A, "small").unwrap();
        let (who, job) = q.take().unwrap();
        assert_eq!(job, "huge slice 0");
        q.done(who, Some("huge slice 1"));
        assert_eq!(q.take().unwrap().1, "small");
    }

    #[test]
    fn queues_are_bounded_per_caller_and_in_all() {
        let mut q = Queues::new(3, 5);
        for i in 0..3 {
            q.push(A, i).unwrap();
        }
        assert_eq!(q.push(A, 3), Err(3), "A's own bound");
        q.push(B, 10).unwrap();
        q.push(B, 11).unwrap();
        assert_eq!(q.push(B, 12), Err(12), "the total bound");
        // A caller with nothing queued still gets one job in.
        q.push(C, 20).unwrap();
        assert_eq!(q.push(C, 21), Err(21));
        assert_eq!(q.queued(), 6);
        // A continuation is never refused.
        let (who, job) = q.take().unwrap();
        assert_eq!((who, job), (A, 0));
        q.done(A, Some(1000));
        assert_eq!(q.callers[&A].queue.len(), 3);
        // Taking a job makes room.
        let _ = q.take();
        q.push(B, 12).unwrap_err();
        let _ = q.take();
        let _ = q.take();
        q.push(B, 12).unwrap();
    }

    #[test]
    fn runs_every_job_and_survives_a_panic() {
        let pool = Pool::new(2, 4);
        let (tx, rx) = channel();
        pool.submit(A, Job::once(|| panic!("boom")));
        for i in 0..100 {
            let tx = tx.clone();
            let who = if i % 2 == 0 { A } else { B };
            pool.submit(who, Job::once(move || tx.send(i).unwrap()));
        }
        drop(tx);
        let mut got: Vec<i32> = rx.iter().collect();
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    /// A job of `slices` turns that logs each turn, says when its first
    /// turn has begun, waits for `go` then, and says when its last has ended.
    fn sliced(name: &'static str, slices: u32, log: Arc<Mutex<Vec<String>>>) -> (Job, Signals) {
        let (started_tx, started) = channel();
        let (go, go_rx) = channel();
        let (ended_tx, ended) = channel();
        let first = Job::new(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            turn(name, 0, slices, log, ended_tx)
        });
        (first, Signals { started, go, ended })
    }

    struct Signals {
        started: std::sync::mpsc::Receiver<()>,
        go: std::sync::mpsc::Sender<()>,
        ended: std::sync::mpsc::Receiver<()>,
    }

    fn turn(
        name: &'static str,
        slice: u32,
        slices: u32,
        log: Arc<Mutex<Vec<String>>>,
        ended: std::sync::mpsc::Sender<()>,
    ) -> Option<Job> {
        log.lock().unwrap().push(format!("{name}{slice}"));
        if slice + 1 == slices {
            ended.send(()).unwrap();
            return None;
        }
        Some(Job::new(move || turn(name, slice + 1, slices, log, ended)))
    }

    #[test]
    fn a_small_job_runs_between_the_slices_of_a_huge_one() {
        let pool = Pool::new(1, 4);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (huge, signals) = sliced("a", 3, Arc::clone(&log));
        pool.submit(A, huge);
        // While A's first slice runs on the only worker, B asks.
        signals.started.recv().unwrap();
        let l = Arc::clone(&log);
        pool.submit(B, Job::once(move || l.lock().unwrap().push("b".into())));
        signals.go.send(()).unwrap();
        signals.ended.recv().unwrap();
        assert_eq!(log.lock().unwrap().as_slice(), ["a0", "b", "a1", "a2"]);
    }
}
