//! Threads for local connections, kept a little while after one ends so
//! that the next connection is handed to a waiting thread instead of a new
//! one: starting a thread (and ending it) is a good part of what a one-file
//! query costs the daemon.
//!
//! At most [`KEPT`] threads wait, each for [`IDLE`] at most, so an idle
//! daemon soon has none left.

use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Most threads kept waiting for a connection.
const KEPT: usize = 4;

/// How long a kept thread waits before it ends.
const IDLE: Duration = Duration::from_secs(5);

/// What a connection thread runs.
pub type Task = Box<dyn FnOnce() + Send + 'static>;

/// The threads waiting for a task, each by its number and its channel.
#[derive(Default)]
pub struct Spare {
    waiting: Mutex<Vec<(u64, Sender<Task>)>>,
    next_id: Mutex<u64>,
}

impl Spare {
    /// Runs `task` on a waiting thread, or on a new one named `name`.
    pub fn run(self: &Arc<Self>, name: &str, task: Task) -> io::Result<()> {
        let mut task = task;
        loop {
            let Some((_, tx)) = self.lock().pop() else {
                break;
            };
            // A thread still listed has not given up its receiver.
            match tx.send(task) {
                Ok(()) => return Ok(()),
                Err(back) => task = back.0,
            }
        }
        let me = Arc::clone(self);
        let id = {
            let mut n = me.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            *n
        };
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || me.serve(id, task))?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Sender<Task>)>> {
        // The list is consistent between any two calls.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs tasks until none comes for a while, or enough threads wait.
    fn serve(&self, id: u64, first: Task) {
        let (tx, rx): (Sender<Task>, Receiver<Task>) = channel();
        let mut task = first;
        loop {
            task();
            {
                let mut waiting = self.lock();
                if waiting.len() >= KEPT {
                    return;
                }
                waiting.push((id, tx.clone()));
            }
            task = match rx.recv_timeout(IDLE) {
                Ok(t) => t,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let mut waiting = self.lock();
                    if let Some(at) = waiting.iter().position(|(i, _)| *i == id) {
                        waiting.remove(at);
                        return;
                    }
                    drop(waiting);
                    // Taken off the list just now: its task is on the way.
                    match rx.recv() {
                        Ok(t) => t,
                        Err(_) => return,
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn a_thread_that_finished_serves_the_next_task() {
        let spare = Arc::new(Spare::default());
        let (tx, rx) = channel();
        for _ in 0..3 {
            let tx = tx.clone();
            spare
                .run("t", Box::new(move || tx.send(()).unwrap()))
                .unwrap();
            rx.recv().unwrap();
            // Wait until that thread is listed again before the next task.
            while spare.lock().is_empty() {
                thread::yield_now();
            }
        }
        assert_eq!(
            *spare.next_id.lock().unwrap(),
            1,
            "one thread ran all three"
        );
    }

    #[test]
    fn tasks_at_once_each_get_a_thread_and_all_run() {
        let spare = Arc::new(Spare::default());
        let (tx, rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        let go = Arc::new(Mutex::new(go_rx));
        for i in 0..8 {
            let (tx, go) = (tx.clone(), Arc::clone(&go));
            spare
                .run(
                    "t",
                    Box::new(move || {
                        if i == 0 {
                            let _ = go.lock().unwrap().recv();
                        }
                        tx.send(i).unwrap();
                    }),
                )
                .unwrap();
        }
        go_tx.send(()).unwrap();
        let mut got: Vec<i32> = (0..8).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        assert!(spare.lock().len() <= KEPT);
    }
}
