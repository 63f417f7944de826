//! A fixed pool of worker threads fed by a bounded queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs submitted jobs on `threads` workers; `submit` blocks while the queue is full.
pub struct Pool {
    tx: SyncSender<Job>,
}

impl Pool {
    pub fn new(threads: usize, queue: usize) -> Pool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(&rx))
                .expect("spawning a worker thread at start-up");
        }
        Pool { tx }
    }

    /// Queues a job. A job that panics is logged and its worker keeps serving.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        // The workers never exit while a sender lives, so this cannot fail.
        let _ = self.tx.send(Box::new(job));
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = match rx.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("a job panicked; the worker goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn runs_every_job_and_survives_a_panic() {
        let pool = Pool::new(2, 4);
        let (tx, rx) = channel();
        pool.submit(|| panic!("boom"));
        for i in 0..100 {
            let tx = tx.clone();
            pool.submit(move || tx.send(i).unwrap());
        }
        drop(tx);
        let mut got: Vec<i32> = rx.iter().collect();
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
