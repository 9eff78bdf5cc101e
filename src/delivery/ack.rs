//! The acknowledgement path of the delivery contract (DESIGN.md, "Delivery contract").
//!
//! Every batch a source reads carries an [`AckToken`] holding its [`Checkpoint`]. The router arms the
//! token with the number of sinks that must hold the batch and hands each sink a [`Delivery`]. A sink
//! with a disk buffer acks once the batch is durable in its buffer (fsync per policy); a sink without
//! one (`buffer: {type: memory}`, stdout) acks once the receiver accepted it. When the last sink has
//! acked, the checkpoint is committed to the positions store.
//!
//! The disk buffer's reader uses the same token for its own records: the sink acks a record once the
//! receiver accepted it, and the buffer may then forget it (see `buffer::reader`).
//!
//! A receiving source (`loki_push_api`) settles a batch differently: there is no position to commit,
//! but a client waiting for its answer. Its token ([`Settle::Answer`]) tells the waiting requests once
//! every sink holds their entries, and only then do they answer 2xx.
//!
//! A token dropped without all its acks (shutdown, a sink that gave up) commits nothing, so the data is
//! read again after a restart (or the waiting client hears no success and pushes again): duplicates are
//! possible, loss is not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::order::{Commits, Ticket};
use crate::entry::Batch;
use crate::positions::Checkpoint;

/// What a batch settles once every sink holds it.
#[derive(Debug)]
pub enum Settle {
    /// A source's read position, committed in the order the source sent its batches.
    Position(Checkpoint),
    /// Pushed requests waiting to answer their clients: each is told once the batch is safe.
    Answer(Vec<oneshot::Sender<()>>),
}

impl Settle {
    /// Settle now: the batch has nothing any sink must hold.
    pub(super) fn now(self, commits: &Commits) {
        match self {
            // In order: earlier batches of this source may still be on their way.
            Settle::Position(c) => commits.commit_in_order(c),
            Settle::Answer(waiting) => answer(waiting),
        }
    }
}

fn answer(waiting: Vec<oneshot::Sender<()>>) {
    for w in waiting {
        // A client that went away does not wait for its answer any more.
        let _ = w.send(());
    }
}

/// A batch on its way to one sink, with the token that sink acks once the batch is safe on its side.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub batch: Arc<Batch>,
    pub ack: Option<AckToken>,
}

impl Delivery {
    pub fn ack(&self) {
        if let Some(a) = &self.ack {
            a.ack();
        }
    }
}

#[derive(Clone)]
pub struct AckToken {
    inner: Arc<Inner>,
}

struct Inner {
    remaining: AtomicUsize,
    commit: Commit,
}

enum Commit {
    /// A source's read position, committed in the order its batches were sent.
    Position {
        commits: Commits,
        ticket: std::sync::Mutex<Option<Ticket>>,
    },
    /// Requests waiting for their answer (see [`Settle::Answer`]).
    Answer(std::sync::Mutex<Vec<oneshot::Sender<()>>>),
    /// A disk buffer's record, numbered in the order it was read.
    Record {
        id: u64,
        done: mpsc::UnboundedSender<u64>,
    },
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("AckToken");
        d.field("remaining", &self.inner.remaining.load(Ordering::Relaxed));
        match &self.inner.commit {
            Commit::Position { ticket, .. } => d.field("ticket", ticket),
            Commit::Record { id, .. } => d.field("record", id),
            Commit::Answer(w) => d.field("answers", &w.lock().unwrap().len()),
        };
        d.finish()
    }
}

impl AckToken {
    /// A token that commits `checkpoint` once it has been acked `holders` times, and every batch of
    /// the same source sent before it is committed (see [`Commits::begin`]).
    pub fn new(commits: Commits, checkpoint: Checkpoint, holders: usize) -> Self {
        let ticket = commits.begin(checkpoint);
        Self::with(
            Commit::Position {
                commits,
                ticket: std::sync::Mutex::new(Some(ticket)),
            },
            holders,
        )
    }

    /// A token that settles `settle` once it has been acked `holders` times.
    pub fn settle(commits: &Commits, settle: Settle, holders: usize) -> Self {
        match settle {
            Settle::Position(c) => Self::new(commits.clone(), c, holders),
            Settle::Answer(w) => Self::with(Commit::Answer(std::sync::Mutex::new(w)), holders),
        }
    }

    /// A token that reports buffer record `id` on `done` once acked.
    pub fn record(id: u64, done: mpsc::UnboundedSender<u64>) -> Self {
        Self::with(Commit::Record { id, done }, 1)
    }

    fn with(commit: Commit, holders: usize) -> Self {
        AckToken {
            inner: Arc::new(Inner {
                remaining: AtomicUsize::new(holders),
                commit,
            }),
        }
    }

    /// One holder is done with the batch. The last one commits.
    pub fn ack(&self) {
        if self.inner.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        match &self.inner.commit {
            Commit::Position { commits, ticket } => {
                if let Some(t) = ticket.lock().unwrap().take() {
                    commits.complete(t);
                }
            }
            Commit::Record { id, done } => {
                // The buffer's reader is gone only when the agent stops: nothing to record then.
                let _ = done.send(*id);
            }
            Commit::Answer(waiting) => answer(std::mem::take(&mut *waiting.lock().unwrap())),
        }
    }
}
