//! Items of one query grouped into worker-pool jobs, for the local socket
//! and for peers alike: a slot is taken per item before it is queued and
//! given back by whoever writes its result, so a client that stops reading
//! stops being read.
//!
//! The jobs go to the caller's own queue of the pool. A job stops after
//! each slice of a large file and goes back to the end of that queue, with
//! the items it has not started yet, so a huge file takes turns with
//! everything else.

use super::Shared;
use super::cancel::Cancel;
use super::counters::Origin;
use super::engine::{Fields, Opened, Step, Work};
use super::pool::{Job, Who};
use crate::error::{Error, ErrorCode};
use crate::proto::{PathBytes, Query};
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender, TrySendError};

/// One computed item on its way to the writer.
pub(crate) struct Done {
    pub id: u64,
    pub path: PathBytes,
    pub result: Result<Fields, Error>,
}

/// Most items computed by one pool job. Handing items to the pool in batches
/// keeps thread wake-ups far fewer than items when there are many small files.
const BATCH: usize = 16;

/// One item waiting for its batch to be handed to the pool.
struct Pending {
    id: u64,
    path: PathBytes,
    file: Result<Opened, Error>,
}

/// Groups a connection's items into pool jobs.
pub(crate) struct Batches {
    shared: Arc<Shared>,
    who: Who,
    query: Arc<Query>,
    done_tx: Sender<Vec<Done>>,
    slot_tx: SyncSender<()>,
    batch: Vec<Pending>,
    /// Set once the asker is gone: the rest of a file being read (or a
    /// stream without end, as /dev/zero) and the items not started yet are
    /// not worth reading.
    cancel: Option<Cancel>,
    /// Pipes, devices and sockets are read (descriptors the asker passed).
    streams: bool,
}

/// Whom the items of `who` are answered for, for the counters.
fn origin(who: Who) -> Origin {
    match who {
        Who::User(_) => Origin::Local,
        Who::Member(_) => Origin::Remote,
    }
}

impl Batches {
    /// Jobs for one query's items, computed on `who`'s share of the pool;
    /// results go to `done_tx`, and each item holds one slot of `slot_tx`
    /// until its writer gives it back.
    pub(crate) fn new(
        shared: Arc<Shared>,
        who: Who,
        query: Arc<Query>,
        done_tx: Sender<Vec<Done>>,
        slot_tx: SyncSender<()>,
    ) -> Batches {
        Batches {
            shared,
            who,
            query,
            done_tx,
            slot_tx,
            batch: Vec::with_capacity(BATCH),
            cancel: None,
            streams: false,
        }
    }

    /// Reads streams too: the descriptors are the asker's own (a local
    /// command's standard input, pipes and devices). A member's query
    /// opens files below the exports, where only regular files are read.
    pub(crate) fn read_streams(&mut self) {
        self.streams = true;
    }

    /// Gives up the items once `cancel` is set: the one being read within
    /// a chunk, the others before they start.
    pub(crate) fn cancel_with(&mut self, cancel: Cancel) {
        self.cancel = Some(cancel);
    }

    /// Queues an item; the batch goes to the pool when full or when no
    /// further item is ready to be read (`more_ready` false).
    pub(crate) fn add(
        &mut self,
        id: u64,
        path: PathBytes,
        file: Result<File, Error>,
        more_ready: bool,
    ) {
        self.add_opened(id, path, file.and_then(Opened::new), more_ready);
    }

    /// [`Batches::add`] of a file whose metadata was taken already.
    pub(crate) fn add_opened(
        &mut self,
        id: u64,
        path: PathBytes,
        file: Result<Opened, Error>,
        more_ready: bool,
    ) {
        if let Err(TrySendError::Full(())) = self.slot_tx.try_send(()) {
            // Before waiting for a slot, let the items we hold be computed:
            // their slots are among the ones we wait for.
            self.flush();
            if self.slot_tx.send(()).is_err() {
                return;
            }
        }
        // A large file or a directory tree is a job of its own, so that two
        // of them run on two workers at once.
        let heavy = file.as_ref().is_ok_and(Opened::heavy);
        if heavy {
            self.flush();
        }
        self.batch.push(Pending { id, path, file });
        if heavy || self.batch.len() >= BATCH || !more_ready {
            self.flush();
        }
    }

    /// Passes on an item answered without a file to read (a symlink a stat
    /// describes as itself); it holds a slot like any other until written.
    pub(crate) fn answered(&mut self, id: u64, path: PathBytes, result: Result<Fields, Error>) {
        if let Err(TrySendError::Full(())) = self.slot_tx.try_send(()) {
            self.flush();
            if self.slot_tx.send(()).is_err() {
                return;
            }
        }
        self.shared.counters.items(origin(self.who), 1);
        let _ = self.done_tx.send(vec![Done { id, path, result }]);
    }

    /// Queues the count of one byte range of a file (a `wc` split over
    /// members, see [`crate::ops::ranges`]) as a job of its own; it holds
    /// a slot like any other item until written.
    pub(crate) fn add_range(
        &mut self,
        id: u64,
        path: PathBytes,
        file: Result<File, Error>,
        range: crate::proto::peer::ByteRange,
    ) {
        if let Err(TrySendError::Full(())) = self.slot_tx.try_send(()) {
            self.flush();
            if self.slot_tx.send(()).is_err() {
                return;
            }
        }
        let query = Arc::clone(&self.query);
        let shared = Arc::clone(&self.shared);
        let done_tx = self.done_tx.clone();
        let cancel = self.cancel.clone();
        let origin = origin(self.who);
        self.shared.pool.submit(
            self.who,
            Job::once(move || {
                let result = if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                    Err(Error::new(
                        ErrorCode::Internal,
                        "cancelled: the asker went away",
                    ))
                } else {
                    let watch = RangeWatch {
                        shared: &shared,
                        cancel: cancel.as_ref(),
                    };
                    guarded_range(&query, file, range, &watch)
                };
                shared.counters.items(origin, 1);
                let _ = done_tx.send(vec![Done { id, path, result }]);
            }),
        );
    }

    /// The query these items answer.
    pub(crate) fn query(&self) -> &Query {
        &self.query
    }

    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let turns = Turns {
            shared: Arc::clone(&self.shared),
            query: Arc::clone(&self.query),
            done_tx: self.done_tx.clone(),
            items: items.into_iter(),
            current: None,
            cancel: self.cancel.clone(),
            streams: self.streams,
            origin: origin(self.who),
        };
        self.shared.pool.submit(self.who, turns.into_job());
    }
}

/// A batch on the pool: the items not started yet and the one being read.
struct Turns {
    shared: Arc<Shared>,
    query: Arc<Query>,
    done_tx: Sender<Vec<Done>>,
    items: std::vec::IntoIter<Pending>,
    /// An item between two slices of its file: id, path and where it is.
    current: Option<(u64, PathBytes, Box<Work>)>,
    cancel: Option<Cancel>,
    streams: bool,
    origin: Origin,
}

impl Turns {
    fn into_job(self) -> Job {
        Job::new(move || self.turn().map(Turns::into_job))
    }

    /// Computes items until one has more slices to read, or all are done;
    /// sends what it finished, and returns itself if anything is left.
    fn turn(mut self) -> Option<Turns> {
        let engine = &self.shared.engine;
        let mut done = Vec::new();
        let unfinished = loop {
            if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                // Nobody reads the answers: drop this batch's work. Each
                // item still gets a (cancelled) result, which gives its
                // slot back to whoever may wait for one.
                let given_up = self.items.len() + usize::from(self.current.is_some());
                log::debug!("the asker hung up: {given_up} item(s) given up");
                let error = Error::new(ErrorCode::Internal, "cancelled: the asker went away");
                let current = self.current.take().map(|(id, path, _)| (id, path));
                let rest = self.items.by_ref().map(|p| (p.id, p.path));
                let dropped: Vec<Done> = current
                    .into_iter()
                    .chain(rest)
                    .map(|(id, path)| Done {
                        id,
                        path,
                        result: Err(error.clone()),
                    })
                    .collect();
                self.send(done);
                let _ = self.done_tx.send(dropped);
                return None;
            }
            let (id, path, step) = if let Some((id, path, work)) = self.current.take() {
                (id, path, guarded(|| engine.resume(work)))
            } else if let Some(p) = self.items.next() {
                let step = match p.file {
                    Ok(opened) => guarded(|| {
                        engine.start(&self.query, opened, self.streams, self.cancel.as_ref())
                    }),
                    Err(e) => Step::Done(Err(e)),
                };
                (p.id, p.path, step)
            } else {
                break false;
            };
            match step {
                Step::Done(result) => done.push(Done { id, path, result }),
                Step::More(work) => {
                    self.current = Some((id, path, work));
                    break true;
                }
            }
        };
        self.send(done);
        unfinished.then_some(self)
    }

    /// Passes on computed items, counted.
    fn send(&self, done: Vec<Done>) {
        if !done.is_empty() {
            self.shared.counters.items(self.origin, done.len() as u64);
            let _ = self.done_tx.send(done);
        }
    }
}

/// Computes `items` on the calling thread, every slice at once, in order:
/// for a few small files, which cost less to answer than to hand to a
/// worker and back (see [`super::local`] and [`super::remote`]). A local
/// caller's items are its own descriptors, and streams among them are read;
/// a member's are files below the exports.
pub(crate) fn answer_here(
    shared: &Shared,
    query: &Query,
    items: Vec<(u64, PathBytes, Result<Opened, Error>)>,
    origin: Origin,
) -> Vec<Done> {
    let engine = &shared.engine;
    let streams = origin == Origin::Local;
    shared.counters.items(origin, items.len() as u64);
    items
        .into_iter()
        .map(|(id, path, file)| {
            let mut step = match file {
                Ok(opened) => guarded(|| engine.start(query, opened, streams, None)),
                Err(e) => Step::Done(Err(e)),
            };
            let result = loop {
                match step {
                    Step::Done(result) => break result,
                    Step::More(work) => step = guarded(|| engine.resume(work)),
                }
            };
            Done { id, path, result }
        })
        .collect()
}

/// What the count of a byte range tells between its chunks: the bytes, to
/// the counters (`bytes_read`, as whole files count theirs), and whether
/// the asker still waits for it.
struct RangeWatch<'a> {
    shared: &'a Shared,
    cancel: Option<&'a Cancel>,
}

impl crate::ops::pass::Watch for RangeWatch<'_> {
    fn read(&self, bytes: u64) -> bool {
        self.shared.counters.read(bytes);
        !self.cancel.is_some_and(Cancel::is_cancelled)
    }
}

/// Counts one byte range of a regular file for a `wc` without `-L` (the
/// only query split into ranges), `watch` told of each chunk read; a
/// panic becomes the item's error.
fn guarded_range(
    query: &Query,
    file: Result<File, Error>,
    range: crate::proto::peer::ByteRange,
    watch: &dyn crate::ops::pass::Watch,
) -> Result<Fields, Error> {
    use crate::proto::QueryKind;
    if query.kind != QueryKind::Wc || query.max_line_length {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "only a wc without -L is counted by byte ranges",
        ));
    }
    let file = file?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "only a regular file is counted by byte ranges",
        ));
    }
    let counter = crate::ops::wc::WcCounter::new().posixly_correct(query.posixly_correct);
    catch_unwind(AssertUnwindSafe(|| {
        crate::ops::ranges::count_range_watched(
            &file,
            (range.offset, range.length),
            query.lines_only,
            counter,
            watch,
        )
    }))
    .unwrap_or_else(|_| Err(std::io::Error::other("the computation failed unexpectedly")))
    .map(Fields::Range)
    .map_err(|e| Error::from_io(&e))
}

/// Runs one step of the engine; a panic becomes the item's error.
fn guarded(step: impl FnOnce() -> Step) -> Step {
    catch_unwind(AssertUnwindSafe(step)).unwrap_or_else(|_| {
        Step::Done(Err(Error::new(
            ErrorCode::Internal,
            "the computation failed unexpectedly",
        )))
    })
}
