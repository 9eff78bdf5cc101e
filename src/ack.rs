//! The acknowledgement path of the delivery contract (DESIGN.md, "Delivery contract").
//!
//! A source attaches an [`AckToken`] to every [`Batch`](crate::entry::Batch) it reads. The router arms
//! the token with the number of sinks that must hold the batch; each sink calls [`AckToken::ack`] once
//! the batch is safe on its side (accepted by the receiver today, durable in its disk buffer once the
//! buffer exists). When the last sink has acked, the token's [`Checkpoint`] is committed to the
//! positions store. A token dropped without all its acks (shutdown, a sink that gave up) commits
//! nothing, so the lines are read again after a restart: duplicates are possible, loss is not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::positions::{Checkpoint, Positions};

#[derive(Clone)]
pub struct AckToken {
    inner: Arc<Inner>,
}

struct Inner {
    remaining: AtomicUsize,
    checkpoint: Checkpoint,
    positions: Positions,
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckToken")
            .field("remaining", &self.inner.remaining.load(Ordering::Relaxed))
            .field("checkpoint", &self.inner.checkpoint)
            .finish()
    }
}

impl AckToken {
    /// A token that commits `checkpoint` once it has been acked `holders` times.
    pub fn new(positions: Positions, checkpoint: Checkpoint, holders: usize) -> Self {
        AckToken {
            inner: Arc::new(Inner {
                remaining: AtomicUsize::new(holders),
                checkpoint,
                positions,
            }),
        }
    }

    /// One holder is done with the batch. The last one commits the checkpoint.
    pub fn ack(&self) {
        if self.inner.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.positions.commit(&self.inner.checkpoint);
        }
    }
}
