//! The sender: send each request until the receiver accepted it or it is given up for good (see the
//! module doc of `sink::core`). A request is sent by this task itself, one at a time, as Promtail's
//! client does: a receiver that is down stops the sink taking more, the buffer fills, and then the
//! sources pause with their lines still in their files.

use std::collections::HashSet;

use tokio::sync::{mpsc, watch};

use super::{Answer, Batcher, Codec, Protocol};
use crate::buffer::deadletter::DeadLetter;
use crate::delivery::{Outgoing, Payload, Request};
use crate::metrics::{Escaped, Metrics, SinkLabel};
use crate::sink::http::Retry;
use std::sync::Arc;

/// A kind of failure logged once (until sending works again, for `Retrying`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Logged {
    Retrying,
    Rejected(i32),
}

pub struct Sender<P: Protocol, C: Codec> {
    protocol: P,
    /// Encodes buffer records of entries (an older release's) into requests.
    legacy: Batcher<C>,
    metrics: Arc<Metrics>,
    /// Where rejected entries go, and the sink's name in metrics.
    dead_letter: Option<(DeadLetter, SinkLabel)>,
    logged: HashSet<Logged>,
}

impl<P: Protocol, C: Codec> Sender<P, C> {
    pub fn new(protocol: P, legacy: Batcher<C>, metrics: Arc<Metrics>) -> Self {
        Sender {
            protocol,
            legacy,
            metrics,
            dead_letter: None,
            logged: HashSet::new(),
        }
    }

    /// Write entries rejected for good to `dead_letter`, counted for `sink`.
    pub fn with_dead_letter(mut self, dead_letter: DeadLetter, sink: &str) -> Self {
        let label = SinkLabel {
            sink: Escaped(sink.to_owned()),
        };
        self.dead_letter = Some((dead_letter, label));
        self
    }

    /// Send what comes from `input` until it closes. `abort` turning true stops at once: what is not
    /// accepted yet stays unacknowledged, to be sent again after a restart.
    pub async fn run(mut self, mut input: mpsc::Receiver<Outgoing>, abort: watch::Receiver<bool>) {
        let background = self.protocol.background().map(tokio::spawn);
        let mut stop = abort.clone();
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|a| *a) => None,
                next = input.recv() => next,
            };
            let Some(Outgoing { payload, done }) = next else {
                break;
            };
            let requests = match payload {
                Payload::Request(r) => vec![r],
                Payload::Entries(batch) => self.legacy.encode_all(&batch),
            };
            let mut sent = true;
            for r in requests {
                if !self.deliver(r, &abort).await {
                    sent = false;
                    break;
                }
            }
            if !sent {
                // Aborted: `done` is dropped unfinished.
                break;
            }
            done.finish();
        }
        if let Some(b) = background {
            b.abort();
        }
    }

    /// Send `request` until every entry in it is accepted, rejected for good or given up on. False
    /// if aborted first.
    async fn deliver(&mut self, request: Request, abort: &watch::Receiver<bool>) -> bool {
        let whole = request.entries;
        let mut parts = vec![request];
        while let Some(part) = parts.pop() {
            if !self.send(part, whole, &mut parts, abort).await {
                return false;
            }
        }
        true
    }

    /// Send one request until it is done; halves it must be sent in go to `parts`. False if aborted.
    async fn send(
        &mut self,
        mut request: Request,
        whole: u32,
        parts: &mut Vec<Request>,
        abort: &watch::Receiver<bool>,
    ) -> bool {
        let mut abort = abort.clone();
        let mut retry = Retry::new(self.protocol.http());
        loop {
            let attempt = retry.next_attempt();
            let answer = tokio::select! {
                a = self.protocol.send(&request) => a,
                _ = abort.wait_for(|a| *a) => return false,
            };
            let (status, error, at_once) = match answer {
                Answer::Accepted => {
                    self.protocol.sent(&request);
                    self.works_again();
                    return true;
                }
                Answer::Dropped(reason) => {
                    self.protocol.dropped(&request, reason);
                    return true;
                }
                Answer::Rejected { status, error } => {
                    self.reject(&request, status, &error);
                    return true;
                }
                Answer::Split { status, error } => {
                    match self.protocol.halves(&request) {
                        Some((first, second)) => {
                            if request.entries == whole {
                                tracing::info!(sink = %self.protocol.name(), status, entries = request.entries, %error,
                                    "{} refused some {} of a request; sending it again in halves to find them",
                                    P::KIND, P::NOUN);
                            }
                            self.protocol.split();
                            parts.push(second);
                            parts.push(first);
                        }
                        None => self.reject(&request, status, &error),
                    }
                    return true;
                }
                Answer::Partial {
                    retry: again,
                    rejected,
                } => {
                    for (status, error, r) in rejected {
                        self.reject(&r, status, &error);
                    }
                    let Some(again) = again else {
                        self.works_again();
                        return true;
                    };
                    request = again;
                    let error = format!("{} failed with a retriable status", P::NOUN);
                    (429, error, false)
                }
                Answer::Retry {
                    status,
                    error,
                    at_once,
                } => (status, error, at_once),
            };
            self.protocol.retried(&request, status);
            if retry.exhausted() {
                tracing::error!(sink = %self.protocol.name(), status, dest = %request.dest, %error, entries = request.entries,
                    "final error sending batch: dropped after backoff_config.max_retries attempts");
                let reason = if status == 429 {
                    "rate_limited"
                } else {
                    "ingester_error"
                };
                self.protocol.dropped(&request, reason);
                return true;
            }
            if self.logged.insert(Logged::Retrying) || attempt == 1 {
                tracing::warn!(sink = %self.protocol.name(), status, dest = %request.dest, %error, entries = request.entries,
                    "error sending {}, will retry", P::SENDING);
            }
            if at_once {
                continue;
            }
            if !retry.wait(&mut abort).await {
                return false;
            }
        }
    }

    fn works_again(&mut self) {
        if self.logged.remove(&Logged::Retrying) {
            tracing::info!(sink = %self.protocol.name(), "sending to {} works again", P::KIND);
        }
    }

    /// Entries refused for good: to the dead-letter file, counted, logged once per status.
    fn reject(&mut self, request: &Request, status: i32, error: &str) {
        self.protocol.rejected(request, status);
        let kept = self.dead_letter.as_mut().and_then(|(dl, label)| {
            let entries = self.protocol.dead_letters(request);
            let kept = self.metrics.buffer.dead_letter_entries.get_or_create(label);
            dl.keep(
                error,
                entries
                    .iter()
                    .map(|(ts, l, line)| (*ts, l.as_str(), line.as_str())),
                &kept,
            )
        });
        if self.logged.insert(Logged::Rejected(status)) {
            tracing::error!(sink = %self.protocol.name(), status, %error, dest = %request.dest,
                dead_letter = kept.as_deref().unwrap_or("none"),
                "{} rejected {} for good; they go to the dead-letter file (logged once per status)",
                P::KIND, P::NOUN);
        }
    }
}
