//! The Loki sink's run loop: take batches from the router, group them into pushes per tenant, send a
//! push when it is full (`batchsize`) or old (`batchwait`), retry what Loki may accept later, and
//! acknowledge every batch once all the pushes holding its entries are done.
//!
//! A push is sent by this task itself, as Promtail's client does, so a receiver that is down stops this
//! sink from taking more batches; the router then blocks and the sources pause, leaving the lines in
//! their files. With a backlog the loop always finds the next batch waiting, so pushes fill by size,
//! never by wait.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use rustc_hash::FxHashMap;

use super::batch::{Part, PartAck, PartOf, PendingPush};
use super::config::LokiSettings;
use super::encode::{PushEncoder, PushSource};
use super::service::{Outcome, Service};
use crate::buffer::deadletter::DeadLetter;
use crate::delivery::Delivery;
use crate::entry::{LabelSet, Labels};
use crate::metrics::{Escaped, HostLabel, HostTenantLabel, Metrics, RequestLabel, SinkLabel};
use crate::sink::http::Retry;

/// How many distinct label sets the merge cache remembers before it starts over.
const LABEL_CACHE_MAX: usize = 10_000;

/// A label set as this sink sends it: the entry's `Arc` (kept so its address stays unique while
/// cached), the rendered labels with external labels merged, and the tenant.
type ResolvedLabels = (Arc<LabelSet>, Arc<str>, Arc<str>);

pub struct LokiSink {
    service: Service,
    metrics: Arc<Metrics>,
    encoder: PushEncoder,
    pending: Vec<(Arc<str>, PendingPush)>,
    /// Entry label set → (final rendered labels, tenant). Keyed by the `Arc`'s address; the `Arc` is
    /// kept in the value so the address cannot be reused while cached.
    labels: FxHashMap<usize, ResolvedLabels>,
    /// The last label set resolved: a chunk's entries share one.
    last: Option<ResolvedLabels>,
    /// Kinds of failure already logged (once each, as the delivery contract asks).
    logged: HashSet<Logged>,
    host: HostLabel,
    /// Where permanently rejected entries go, and the sink's name in metrics.
    dead_letter: Option<(DeadLetter, SinkLabel)>,
}

impl LokiSink {
    pub fn new(settings: LokiSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let host = HostLabel {
            host: settings.host.clone(),
        };
        metrics.init_client(&settings.host, &settings.tenant_id);
        Ok(LokiSink {
            service: Service::new(settings)?,
            metrics,
            encoder: PushEncoder::default(),
            pending: Vec::new(),
            labels: FxHashMap::default(),
            last: None,
            logged: HashSet::new(),
            host,
            dead_letter: None,
        })
    }

    /// Write entries Loki rejects for good (a 4xx other than 429) to `dead_letter`.
    pub fn with_dead_letter(mut self, dead_letter: DeadLetter, sink: &str) -> Self {
        let label = SinkLabel {
            sink: Escaped(sink.to_owned()),
        };
        self.dead_letter = Some((dead_letter, label));
        self
    }

    /// Run until the router closes the input, then flush. `abort` turning true stops retrying at once:
    /// what is not yet accepted stays unacknowledged and is read again after a restart.
    pub async fn run(mut self, mut input: mpsc::Receiver<Delivery>, abort: watch::Receiver<bool>) {
        let wait = self.service.settings().batch_wait;
        let mut tick = tokio::time::interval((wait / 10).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                msg = input.recv() => match msg {
                    Some(batch) => {
                        if !self.add(batch, &abort).await {
                            return;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if !self.flush(false, &abort).await {
                        return;
                    }
                }
            }
        }
        self.flush(true, &abort).await;
    }

    /// Add a batch's entries; sends pushes that fill up. False once aborted.
    async fn add(&mut self, delivery: Delivery, abort: &watch::Receiver<bool>) -> bool {
        let Delivery { batch, ack } = delivery;
        let part = ack.map(PartAck::new);
        let max_line = self.service.settings().max_line_size;
        let truncate = self.service.settings().truncate_long_lines;
        let batch_size = self.service.settings().batch_size;
        for (i, e) in batch.entries.iter().enumerate() {
            let (labels, tenant) = self.resolve(&e.labels);
            let mut line_len = e.line.len();
            if max_line > 0 && line_len > max_line {
                let label = Metrics::drop_label(&self.host.host, &tenant, "line_too_long");
                if truncate {
                    line_len = floor_char_boundary(&e.line, max_line);
                    self.metrics.mutated_entries.get_or_create(&label).inc();
                    self.metrics
                        .mutated_bytes
                        .get_or_create(&label)
                        .inc_by((e.line.len() - line_len) as u64);
                } else {
                    self.metrics.dropped_entries.get_or_create(&label).inc();
                    self.metrics
                        .dropped_bytes
                        .get_or_create(&label)
                        .inc_by(e.line.len() as u64);
                    continue;
                }
            }
            let size = e.size() - (e.line.len() - line_len);
            let slot = self.pending_slot(&tenant);
            let pending = &mut self.pending[slot].1;
            if !pending.is_empty() && pending.bytes + size > batch_size {
                let full = std::mem::take(pending);
                if !self.send(&tenant, full, abort).await {
                    return false;
                }
            }
            let pending = &mut self.pending[slot].1;
            let b = pending.attach(&batch, part.as_ref());
            pending.push(&labels, b, i as u32, line_len, size);
        }
        if let Some(p) = part {
            p.done();
        }
        true
    }

    /// Send pushes that waited `batchwait` (or all of them when `all`). False once aborted.
    async fn flush(&mut self, all: bool, abort: &watch::Receiver<bool>) -> bool {
        let wait = self.service.settings().batch_wait;
        for slot in 0..self.pending.len() {
            let due = {
                let p = &self.pending[slot].1;
                !p.is_empty() && (all || p.created.elapsed() >= wait)
            };
            if due {
                let tenant = self.pending[slot].0.clone();
                let push = std::mem::take(&mut self.pending[slot].1);
                if !self.send(&tenant, push, abort).await {
                    return false;
                }
            }
        }
        true
    }

    fn pending_slot(&mut self, tenant: &Arc<str>) -> usize {
        if let Some(i) = self.pending.iter().position(|(t, _)| t == tenant) {
            return i;
        }
        self.pending.push((tenant.clone(), PendingPush::new()));
        self.pending.len() - 1
    }

    /// The label string a stream is sent with (entry labels over external labels) and its tenant.
    fn resolve(&mut self, labels: &Arc<LabelSet>) -> (Arc<str>, Arc<str>) {
        let key = Arc::as_ptr(labels) as usize;
        if let Some((cached, rendered, tenant)) = &self.last {
            if Arc::ptr_eq(cached, labels) {
                return (rendered.clone(), tenant.clone());
            }
        }
        if let Some((_, rendered, tenant)) = self.labels.get(&key) {
            self.last = Some((labels.clone(), rendered.clone(), tenant.clone()));
            return (rendered.clone(), tenant.clone());
        }
        if self.labels.len() >= LABEL_CACHE_MAX {
            self.labels.clear();
        }
        let settings = self.service.settings();
        let rendered: Arc<str> = if settings.external_labels.is_empty() {
            labels.rendered().into()
        } else {
            let mut merged: Labels = settings.external_labels.clone();
            for (k, v) in labels.labels() {
                merged.insert(k.clone(), v.clone());
            }
            LabelSet::new(merged).rendered().into()
        };
        let tenant: Arc<str> = labels.tenant().unwrap_or(&settings.tenant_id).into();
        self.labels
            .insert(key, (labels.clone(), rendered.clone(), tenant.clone()));
        self.last = Some((labels.clone(), rendered.clone(), tenant.clone()));
        (rendered, tenant)
    }

    /// Send one push until it is accepted or given up for good. False if aborted first.
    ///
    /// Loki answers 400 to a push when any of its entries is invalid (too long, too old) but stores the
    /// valid ones. So a push refused with 400 is sent again in halves, each half on its own, until
    /// what is refused is single entries: only those go to the dead-letter file and count as dropped,
    /// not their hundreds of neighbours. Resending what Loki stored does not duplicate it (Loki drops
    /// an entry whose stream, timestamp and line it already has).
    async fn send(
        &mut self,
        tenant: &str,
        push: PendingPush,
        abort: &watch::Receiver<bool>,
    ) -> bool {
        let mut parts = vec![Part::whole(&push)];
        while let Some(part) = parts.pop() {
            match self.send_part(tenant, part.of(&push), abort).await {
                Sent::Accepted => {
                    self.metrics
                        .sent_entries
                        .get_or_create(&self.host)
                        .inc_by(part.entries as u64);
                    self.metrics
                        .sent_bytes
                        .get_or_create(&self.host)
                        .inc_by(part.bytes as u64);
                }
                Sent::Aborted => return false,
                Sent::Rejected { status, error } => {
                    if status == 400 {
                        if let Some((first, second)) = part.halves(&push) {
                            if part.entries == push.entries {
                                tracing::info!(host = %self.host.host, tenant, entries = part.entries, %error,
                                    "Loki refused some entries of a push (400); sending it again in halves to find them");
                            }
                            parts.push(second);
                            parts.push(first);
                            continue;
                        }
                    }
                    let kept =
                        self.dead_letter(&part.of(&push), &format!("status {status}: {error}"));
                    if self.logged.insert(Logged::Rejected(status)) {
                        tracing::error!(host = %self.host.host, status, tenant, %error, dead_letter = kept.as_deref().unwrap_or("none"),
                            "Loki rejected entries for good; they go to the dead-letter file (logged once per status)");
                    }
                    self.count_drop(&part, tenant, "ingester_error");
                }
                Sent::Dropped(reason) => self.count_drop(&part, tenant, reason),
            }
        }
        push.finish();
        true
    }

    /// Send one request of `part` until Loki accepts it, refuses it for good, or retrying ends.
    async fn send_part(
        &mut self,
        tenant: &str,
        part: PartOf<'_>,
        abort: &watch::Receiver<bool>,
    ) -> Sent {
        let (_, body) = self.encoder.encode(&part);
        let body = Bytes::copy_from_slice(body);
        self.encoder
            .release_beyond(2 * self.service.settings().batch_size);
        self.metrics
            .encoded_bytes
            .get_or_create(&self.host)
            .inc_by(body.len() as u64);
        let mut abort = abort.clone();
        let mut retry = Retry::new(&self.service.settings().http);
        loop {
            let attempt = retry.next_attempt();
            let (outcome, took) = tokio::select! {
                r = self.service.push(body.clone(), tenant) => r,
                _ = abort.wait_for(|a| *a) => return Sent::Aborted,
            };
            let status = match &outcome {
                Outcome::Accepted => 204,
                Outcome::Retry { status, .. } | Outcome::Rejected { status, .. } => *status,
            };
            self.metrics
                .request_duration
                .get_or_create(&RequestLabel {
                    status_code: status.to_string(),
                    host: self.host.host.clone(),
                })
                .observe(took.as_secs_f64());
            match outcome {
                Outcome::Accepted => {
                    if self.logged.remove(&Logged::Retrying) {
                        tracing::info!(host = %self.host.host, "sending to Loki works again");
                    }
                    return Sent::Accepted;
                }
                Outcome::Rejected { status, error } => return Sent::Rejected { status, error },
                Outcome::Retry { status, error } => {
                    if status == 429 && self.service.settings().drop_rate_limited_batches {
                        tracing::warn!(host = %self.host.host, tenant,
                            "dropping batch due to rate limiting applied at ingester");
                        return Sent::Dropped("rate_limited");
                    }
                    self.metrics
                        .batch_retries
                        .get_or_create(&HostTenantLabel {
                            host: self.host.host.clone(),
                            tenant: Escaped(tenant.to_owned()),
                        })
                        .inc();
                    if retry.exhausted() {
                        tracing::error!(host = %self.host.host, status, tenant, %error,
                            "final error sending batch");
                        return Sent::Dropped(if status == 429 {
                            "rate_limited"
                        } else {
                            "ingester_error"
                        });
                    }
                    if self.logged.insert(Logged::Retrying) || attempt == 1 {
                        tracing::warn!(host = %self.host.host, status, tenant, %error,
                            "error sending batch, will retry");
                    }
                    if !retry.wait(&mut abort).await {
                        return Sent::Aborted;
                    }
                }
            }
        }
    }

    /// Write rejected entries to the dead-letter file; returns its path if they were kept.
    fn dead_letter(&mut self, push: &impl PushSource, reason: &str) -> Option<String> {
        let (dl, label) = self.dead_letter.as_mut()?;
        let entries = (0..push.stream_count()).flat_map(|s| {
            (0..push.entry_count(s)).map(move |i| {
                let (e, len) = push.entry(s, i);
                (e.timestamp, push.labels(s), &e.line[..len])
            })
        });
        let kept = self.metrics.buffer.dead_letter_entries.get_or_create(label);
        dl.keep(reason, entries, &kept)
    }

    fn count_drop(&self, part: &Part, tenant: &str, reason: &str) {
        let label = Metrics::drop_label(&self.host.host, tenant, reason);
        self.metrics
            .dropped_entries
            .get_or_create(&label)
            .inc_by(part.entries as u64);
        self.metrics
            .dropped_bytes
            .get_or_create(&label)
            .inc_by(part.bytes as u64);
    }
}

/// A kind of failure the sink logs once (until it recovers, for `Retrying`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Logged {
    /// Requests fail and are retried.
    Retrying,
    /// Entries were refused for good with this status.
    Rejected(i32),
}

/// How one request of a push ended.
enum Sent {
    Accepted,
    /// Refused for good (a 4xx other than 429 and, unless configured, 401 and 403).
    Rejected {
        status: i32,
        error: String,
    },
    /// Given up on: `max_retries` reached, or a 429 with `drop_rate_limited_batches`. The reason label.
    Dropped(&'static str),
    Aborted,
}

/// The largest index ≤ `max` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
