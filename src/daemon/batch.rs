//! Items of one query grouped into worker-pool jobs, for the local socket
//! and for peers alike: a slot is taken per item before it is queued and
//! given back by whoever writes its result, so a client that stops reading
//! stops being read.

use super::Shared;
use super::engine::Fields;
use crate::error::{Error, ErrorCode};
use crate::ops::count::Descend;
use crate::proto::Query;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender, TrySendError};

/// One computed item on its way to the writer.
pub(crate) struct Done {
    pub id: u64,
    pub path: String,
    pub result: Result<Fields, Error>,
}

/// Most items computed by one pool job. Handing items to the pool in batches
/// keeps thread wake-ups far fewer than items when there are many small files.
const BATCH: usize = 16;

/// One item waiting for its batch to be handed to the pool.
struct Pending {
    id: u64,
    path: String,
    file: Result<File, Error>,
}

/// Groups a connection's items into pool jobs.
pub(crate) struct Batches {
    shared: Arc<Shared>,
    query: Arc<Query>,
    descend: Arc<dyn Descend + Send + Sync>,
    done_tx: Sender<Vec<Done>>,
    slot_tx: SyncSender<()>,
    batch: Vec<Pending>,
}

impl Batches {
    /// Jobs for one query's items; results go to `done_tx`, and each item
    /// holds one slot of `slot_tx` until its writer gives it back.
    pub(crate) fn new(
        shared: Arc<Shared>,
        query: Arc<Query>,
        descend: Arc<dyn Descend + Send + Sync>,
        done_tx: Sender<Vec<Done>>,
        slot_tx: SyncSender<()>,
    ) -> Batches {
        Batches {
            shared,
            query,
            descend,
            done_tx,
            slot_tx,
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Queues an item; the batch goes to the pool when full or when no
    /// further item is ready to be read (`more_ready` false).
    pub(crate) fn add(
        &mut self,
        id: u64,
        path: String,
        file: Result<File, Error>,
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
        let heavy = match &file {
            Ok(f) => f
                .metadata()
                .map_or(true, |md| !md.is_file() || md.len() >= crate::ops::PIPE_MIN),
            Err(_) => false,
        };
        if heavy {
            self.flush();
        }
        self.batch.push(Pending { id, path, file });
        if heavy || self.batch.len() >= BATCH || !more_ready {
            self.flush();
        }
    }

    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let shared = Arc::clone(&self.shared);
        let query = Arc::clone(&self.query);
        let descend = Arc::clone(&self.descend);
        let done_tx = self.done_tx.clone();
        self.shared.pool.submit(move || {
            let done = items
                .into_iter()
                .map(|p| {
                    let result = p.file.and_then(|file| {
                        catch_unwind(AssertUnwindSafe(|| {
                            shared.engine.execute(&query, file, &*descend)
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorCode::Internal,
                                "the computation failed unexpectedly",
                            ))
                        })
                    });
                    Done {
                        id: p.id,
                        path: p.path,
                        result,
                    }
                })
                .collect();
            let _ = done_tx.send(done);
        });
    }
}
