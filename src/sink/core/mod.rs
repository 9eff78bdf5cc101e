//! The sink core: what every HTTP sink does alike, written once. A sink is a [`Codec`] (how entries
//! become one request body) and a [`Protocol`] (how a body is sent and its answer read); the core
//! owns the rest.
//!
//! ```text
//!  router ─Delivery─▶ batcher ─Outgoing─▶ [disk buffer: writer ▶ segments ▶ reader] ─Outgoing─▶ sender ─▶ receiver
//!                     per destination,     a request is stored as the bytes it is    retry, backoff, split,
//!                     batchsize/batchwait, sent with; sources ack once it is durable  dead letter, metrics
//!                     encoded once
//! ```
//!
//! * The [`Batcher`] groups entries per destination (a Loki tenant) and cuts a request when the next
//!   entry would pass `batchsize` bytes (or a sink's entry limit), or when its first entry has waited
//!   `batchwait`. It encodes the request once and hands it on with the shares ([`PartAck`]) of the
//!   source batches it holds. With a disk buffer those are finished when the request is durable, so
//!   positions move; with a memory buffer when the receiver accepted it.
//! * The [`Sender`] sends each request's stored bytes until the receiver accepts them: retriable
//!   answers (transport errors, 429, 5xx) back off with jitter, forever unless Promtail's
//!   `max_retries` is set; a refusal for good goes to the dead-letter file, counted and logged once
//!   per status; a request refused for what some of its entries are (Loki's 400, a 413) is sent again
//!   in halves until those stand alone; answers item by item (Elasticsearch) send again only what
//!   failed. The agent aborting (shutdown, reload) stops it at once: what was not accepted stays
//!   unacknowledged and is sent again by the next start.
//!
//! [`PartAck`]: crate::delivery::PartAck

mod batcher;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub use batcher::{Batcher, Limits, Sealed};
pub use sender::Sender;

use crate::delivery::{Delivery, Outgoing, Request};
use crate::entry::{Batch, Entry};

/// A future a sink runs on its own task.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How entries become one request body.
pub trait Codec: Send + 'static {
    /// What a request being filled holds besides its batches (streams, NDJSON so far ...).
    type Open: Default + Send;
    /// What [`Codec::admit`] learned about an entry that [`Codec::add`] needs.
    type Admitted;

    /// Where `entry` goes (a Loki tenant; empty for the one destination) and the bytes it adds to a
    /// request; `None` leaves it out (the codec counts why).
    fn admit(&mut self, entry: &Entry) -> Option<(Arc<str>, usize, Self::Admitted)>;

    /// Add `entry`, entry `index` of the request's batch number `batch`, to `open`. The batcher calls
    /// it right after [`Codec::admit`] for the same entry, after sealing the request first when the
    /// entry would not fit: a codec may encode an entry when it admits it.
    fn add(
        &mut self,
        open: &mut Self::Open,
        batch: u32,
        index: u32,
        entry: &Entry,
        admitted: Self::Admitted,
    );

    /// The body of the request `open` holds (its entries live in `batches`); leaves `open` empty.
    fn seal(&mut self, open: &mut Self::Open, batches: &[Arc<Batch>]) -> Bytes;
}

/// How one answer is read.
#[derive(Debug)]
pub enum Answer {
    Accepted,
    /// Worth sending again (`status` -1 for a transport error); `at_once` when another endpoint can
    /// take it without waiting.
    Retry {
        status: i32,
        error: String,
        at_once: bool,
    },
    /// Refused for good; `error` is the dead-letter reason.
    Rejected {
        status: i32,
        error: String,
    },
    /// Refused as a whole for what some of its entries are (Loki's 400, a 413): sent again in halves
    /// until those stand alone. A single entry is rejected for good with `error`.
    Split {
        status: i32,
        error: String,
    },
    /// Answered item by item: the accepted ones were counted by the protocol; each of `rejected` is
    /// refused for good; `retry` holds the ones to send again.
    Partial {
        retry: Option<Request>,
        rejected: Vec<(i32, String, Request)>,
    },
    /// Given up on purpose (`drop_rate_limited_batches`): the reason label it is counted with.
    Dropped(&'static str),
}

/// A rejected entry as the dead-letter file keeps it: timestamp (ns), rendered labels, line.
pub type DeadEntry = (i64, String, String);

/// How a request is sent and its answer read, and what each outcome counts.
pub trait Protocol: Send + 'static {
    /// The receiver's kind, for the logs: "Loki", "Elasticsearch".
    const KIND: &'static str;
    /// What its entries are called in the logs: "entries", "documents".
    const NOUN: &'static str;
    /// What failed to be sent, in the log line of a retry: "error sending {SENDING}, will retry"
    /// ("batch" for Loki, as Promtail writes it).
    const SENDING: &'static str;

    /// This sink in the logs (a host, a sink name).
    fn name(&self) -> &str;

    /// The retry settings (backoff, `max_retries`).
    fn http(&self) -> &crate::sink::http::HttpSettings;

    /// One attempt at sending `request`.
    fn send(&mut self, request: &Request) -> impl Future<Output = Answer> + Send;

    /// The first and the second half of `request` by entries; `None` for a single entry.
    fn halves(&self, request: &Request) -> Option<(Request, Request)>;

    /// `request`'s entries as the dead-letter file keeps them.
    fn dead_letters(&self, request: &Request) -> Vec<DeadEntry>;

    /// The receiver accepted `request` as a whole.
    fn sent(&self, request: &Request);

    /// `request` failed with a retriable `status` and will be sent again (unless retries are over).
    fn retried(&self, _request: &Request, _status: i32) {}

    /// `request` was given up on (`max_retries`, or dropped on purpose) for `reason`.
    fn dropped(&self, request: &Request, reason: &'static str);

    /// `request` was refused for good with `status` (it goes to the dead-letter file).
    fn rejected(&self, request: &Request, status: i32);

    /// A request was split in halves.
    fn split(&self) {}

    /// Work the sink runs beside sending while it lives (Elasticsearch's version check).
    fn background(&self) -> Option<Task> {
        None
    }
}

/// A sink built from its codec and protocol: its batcher and its sender, each to run on its own task
/// (encoding and sending overlap), with or without a disk buffer between them.
pub struct Parts {
    pub batcher: Box<dyn FnOnce(mpsc::Receiver<Delivery>, mpsc::Sender<Outgoing>) -> Task + Send>,
    pub sender: Box<dyn FnOnce(mpsc::Receiver<Outgoing>, watch::Receiver<bool>) -> Task + Send>,
}

impl Parts {
    pub fn new<C: Codec, P: Protocol>(batcher: Batcher<C>, sender: Sender<P, C>) -> Self {
        Parts {
            batcher: Box::new(move |input, out| Box::pin(batcher.run(input, out))),
            sender: Box::new(move |input, abort| Box::pin(sender.run(input, abort))),
        }
    }
}
