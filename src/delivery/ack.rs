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
//! but clients waiting for their answer. Its token carries a [`Notify`] ([`Settle::Notify`]), called
//! with `true` once every sink holds the batch, or with `false` if the token is dropped first; the
//! source answers its clients 2xx only after the former.
//!
//! A token dropped without all its acks (shutdown, a sink that gave up) commits nothing, so the data is
//! read again after a restart (or the waiting client hears no success and pushes again): duplicates are
//! possible, loss is not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::order::{Commits, Ticket};
use crate::entry::Batch;
use crate::positions::Checkpoint;

/// What a batch settles once every sink holds it.
#[derive(Debug)]
pub enum Settle {
    /// A source's read position, committed in the order the source sent its batches.
    Position(Checkpoint),
    /// Tell the source whether the batch is safe (see [`Notify`]).
    Notify(Notify),
}

/// A call made once about a batch: `true` when every sink holds it, `false` if it was dropped before
/// (shutdown, a sink that gave up).
pub struct Notify(Option<Box<dyn FnOnce(bool) + Send + Sync>>);

impl Notify {
    pub fn new(call: impl FnOnce(bool) + Send + Sync + 'static) -> Self {
        Notify(Some(Box::new(call)))
    }

    fn call(mut self, safe: bool) {
        if let Some(call) = self.0.take() {
            call(safe);
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            call(false);
        }
    }
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notify")
    }
}

impl Settle {
    /// Settle now: the batch has nothing any sink must hold.
    pub(super) fn now(self, commits: &Commits) {
        match self {
            // In order: earlier batches of this source may still be on their way.
            Settle::Position(c) => commits.commit_in_order(c),
            Settle::Notify(n) => n.call(true),
        }
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
    /// A receiving source's call (see [`Notify`]).
    Notify(std::sync::Mutex<Option<Notify>>),
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
            Commit::Notify(_) => d.field("notify", &true),
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
            Settle::Notify(n) => {
                Self::with(Commit::Notify(std::sync::Mutex::new(Some(n))), holders)
            }
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
            Commit::Notify(n) => {
                if let Some(n) = n.lock().unwrap().take() {
                    n.call(true);
                }
            }
        }
    }
}
