//! What the sources that answer their clients share (`loki_push_api`, `otlp`): the servers' handlers
//! hand each request's entries to the job's feed through one queue, and a request is answered only
//! once every sink holds its entries durably (the feed settles batches with an [`Answers`] ledger).
//!
//! A client that hears anything but success sends again, so a receiver killed mid-stream loses
//! nothing that it had acknowledged.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::feed::{Answers, Next};
use super::SourceContext;
use crate::entry::Entry;

/// Requests taken but not yet fed: beyond this, a request waits for room, then is refused as full.
const QUEUE: usize = 16;
/// How long a request waits for room in the queue before it is refused as full.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// What a refusal for a full queue asks the client to wait, in seconds (`Retry-After`).
pub const RETRY_AFTER: &str = "1";

/// A request taken by a server, on its way to the job's feed.
pub struct Received {
    entries: Vec<Entry>,
    answer: oneshot::Sender<bool>,
}

/// Why a request's entries were not made safe; the client should send them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The job's queue stayed full for [`QUEUE_WAIT`]: the sinks apply backpressure.
    Full,
    /// The job is stopping and takes nothing more.
    Stopping,
    /// Taken, but not made safe (the agent stopped, a sink gave up).
    NotSafe,
}

impl Refused {
    /// The reason label it is counted with.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Full => "full",
            Refused::Stopping => "stopping",
            Refused::NotSafe => "not_safe",
        }
    }
}

/// The servers' end of a job's queue.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Received>,
}

/// The job's end of the queue.
pub type Queue = mpsc::Receiver<Received>;

pub fn intake() -> (Intake, Queue) {
    let (queue, rx) = mpsc::channel(QUEUE);
    (Intake { queue }, rx)
}

impl Intake {
    /// Hand `entries` to the job's feed and wait until every sink holds them.
    pub async fn deliver(&self, entries: Vec<Entry>) -> Result<(), Refused> {
        let (answer, answered) = oneshot::channel();
        let queued = self
            .queue
            .send_timeout(Received { entries, answer }, QUEUE_WAIT);
        match queued.await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(Refused::Full),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(Refused::Stopping),
        }
        match answered.await {
            Ok(true) => Ok(()),
            _ => Err(Refused::NotSafe),
        }
    }
}

/// Feed what the servers take until `stop`, then finish: requests still queued are not taken (their
/// clients hear a refusal and send again).
pub async fn feed(ctx: SourceContext, mut queue: Queue, mut stop: watch::Receiver<bool>) {
    let mut feed = ctx.feed(Answers::new()).stop_on(stop.clone());
    loop {
        let open = match feed.next(&mut queue, &mut stop).await {
            Next::Item(Received { entries, answer }) => {
                let origins = feed.ledger().pushed(entries.len(), answer);
                feed.feed(entries, &origins).await
            }
            Next::Tick => feed.tick().await,
            Next::Stop => break,
        };
        if !open {
            break;
        }
    }
    drop(queue);
    feed.finish().await;
}
