//! The router: hands every batch to every sink (as one shared `Arc`, never a copy) and arms the batch's
//! acknowledgement with the number of sinks that must hold it before its position is committed.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::ack::{AckToken, Delivery};
use crate::entry::{Batch, Entry};
use crate::positions::{Checkpoint, Positions};

#[derive(Clone)]
pub struct Router {
    sinks: Arc<[mpsc::Sender<Delivery>]>,
    positions: Positions,
}

/// Every sink has stopped taking batches: the agent is shutting down.
#[derive(Debug)]
pub struct Closed;

impl Router {
    pub fn new(sinks: Vec<mpsc::Sender<Delivery>>, positions: Positions) -> Self {
        Router {
            sinks: sinks.into(),
            positions,
        }
    }

    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// Send `entries` to every sink; once all of them hold the batch, `checkpoint` is committed. Waits
    /// while a sink's queue is full: this is the backpressure that pauses the sources.
    pub async fn send(
        &self,
        entries: Vec<Entry>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), Closed> {
        if entries.is_empty() || self.sinks.is_empty() {
            // Nothing to deliver (all filtered out): the position may move on at once.
            if let Some(c) = checkpoint {
                self.positions.commit(&c);
            }
            return Ok(());
        }
        let ack = checkpoint.map(|c| AckToken::new(self.positions.clone(), c, self.sinks.len()));
        let batch = Arc::new(Batch { entries });
        for sink in self.sinks.iter() {
            let delivery = Delivery {
                batch: batch.clone(),
                ack: ack.clone(),
            };
            sink.send(delivery).await.map_err(|_| Closed)?;
        }
        Ok(())
    }
}
