//! What the sources that answer their clients share (`loki_push_api`, `otlp`): the servers' handlers
//! hand each request's entries to the job's feed through one queue, and a request is answered only
//! once every sink holds its entries durably (the feed settles batches with an [`Answers`] ledger).
//!
//! A client that hears anything but success sends again, so a receiver killed mid-stream loses
//! nothing that it had acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::feed::{Answers, Next};
use super::SourceContext;
use crate::entry::Entry;
use crate::metrics::{Escaped, JobReasonLabel, Metrics};

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

/// What a receiving job counts and says about its requests: `logferry_push_requests_total` and
/// `logferry_push_entries_total` by job and reason, and one warning per job for refused bodies.
pub struct Tally {
    /// The source, in the log lines (`loki_push_api`, `otlp`).
    kind: &'static str,
    job: Arc<str>,
    metrics: Arc<Metrics>,
    /// A refused body was logged at warning level (later ones at debug).
    warned: AtomicBool,
}

impl Tally {
    pub fn new(kind: &'static str, job: Arc<str>, metrics: Arc<Metrics>) -> Self {
        Tally {
            kind,
            job,
            metrics,
            warned: AtomicBool::new(false),
        }
    }

    fn label(&self, reason: &str) -> JobReasonLabel {
        JobReasonLabel {
            job: Escaped(self.job.to_string()),
            reason: reason.into(),
        }
    }

    /// A request answered for `reason`.
    pub fn request(&self, reason: &str) {
        self.metrics
            .push_requests
            .get_or_create(&self.label(reason))
            .inc();
    }

    /// `n` entries taken (`accepted`) or left out for `reason`.
    pub fn entries(&self, reason: &str, n: u64) {
        self.metrics
            .push_entries
            .get_or_create(&self.label(reason))
            .inc_by(n);
    }

    /// `n` strings whose invalid UTF-8 was replaced.
    pub fn invalid_utf8(&self, n: u64) {
        self.metrics
            .lines_invalid_utf8
            .get_or_create(&self.label(self.kind))
            .inc_by(n);
    }

    /// A request refused for what it is (`reason`: `malformed`, `too_large`): counted always, logged
    /// once per job at warning level, then at debug level.
    pub fn refused(&self, reason: &str, why: &str) {
        self.request(reason);
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(job = %self.job, reason, error = %why, "{}: request refused", self.kind);
        } else {
            tracing::warn!(job = %self.job, reason, error = %why,
                "{}: request refused (counted in logferry_push_requests_total; further ones are logged at debug level)",
                self.kind);
        }
    }
}

/// The servers' end of a job's queue, with the job's [`Tally`].
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Received>,
    tally: Arc<Tally>,
}

/// The job's end of the queue.
pub type Queue = mpsc::Receiver<Received>;

pub fn intake(tally: Tally) -> (Intake, Queue) {
    let (queue, rx) = mpsc::channel(QUEUE);
    let tally = Arc::new(tally);
    (Intake { queue, tally }, rx)
}

impl Intake {
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Hand `entries` to the job's feed and wait until every sink holds them; the request and its
    /// entries are counted either way.
    pub async fn deliver(&self, entries: Vec<Entry>) -> Result<(), Refused> {
        let count = entries.len() as u64;
        let delivered = self.wait_safe(entries).await;
        match delivered {
            Ok(()) => {
                self.tally.request("accepted");
                self.tally.entries("accepted", count);
            }
            Err(refused) => {
                self.tally.request(refused.reason());
                if refused == Refused::Full {
                    tracing::warn!(job = %self.tally.job,
                        "{}: the sinks do not take entries fast enough; asking clients to retry",
                        self.tally.kind);
                }
            }
        }
        delivered
    }

    async fn wait_safe(&self, entries: Vec<Entry>) -> Result<(), Refused> {
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

/// Bind a receiver's TCP `address` (`:port` is every address), non-blocking, for tokio.
pub fn bind(address: &str) -> std::io::Result<std::net::TcpListener> {
    let address = super::syslog::go_listen_address(address);
    let listener = std::net::TcpListener::bind(address.as_ref())?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The listener bound at start (`bound`), or `address` bound now: after a reload the job's previous
/// instance may hold the port a little longer, so binding is tried again for 5 s. `None` (logged)
/// if it cannot be, or the job stops meanwhile.
pub async fn listen(
    kind: &str,
    job: &str,
    address: &str,
    bound: Option<std::net::TcpListener>,
    stop: &watch::Receiver<bool>,
) -> Option<tokio::net::TcpListener> {
    let mut bound = bound;
    for tries in 0.. {
        let attempt = match bound.take() {
            Some(l) => Ok(l),
            None => bind(address),
        };
        match attempt.and_then(tokio::net::TcpListener::from_std) {
            Ok(l) => return Some(l),
            Err(e) if tries >= 20 => {
                tracing::error!(job, address, error = %e, "{kind}: cannot listen; not started");
                return None;
            }
            Err(_) => {}
        }
        if *stop.borrow() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
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
