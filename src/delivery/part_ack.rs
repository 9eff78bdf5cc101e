//! [`PartAck`]: one batch's acknowledgement shared by the requests its entries went into. A batch the
//! router hands a sink is often spread over several requests (cut by size, or per tenant), and a
//! request often holds entries of several batches; the batch's token is acked when the last request
//! holding any of its entries is done (accepted, or rejected for good and dead-lettered).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::delivery::AckToken;

/// Shares one batch's acknowledgement between the requests its entries went into: the token is acked
/// when the last of them is done.
#[derive(Debug)]
pub struct PartAck {
    token: AckToken,
    parts: AtomicUsize,
}

impl PartAck {
    /// A new share, held once by the adding code until it calls [`PartAck::done`].
    pub fn new(token: AckToken) -> Arc<Self> {
        Arc::new(PartAck {
            token,
            parts: AtomicUsize::new(1),
        })
    }

    pub fn hold(self: &Arc<Self>) -> Arc<Self> {
        self.parts.fetch_add(1, Ordering::AcqRel);
        self.clone()
    }

    pub fn done(&self) {
        if self.parts.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.token.ack();
        }
    }
}
