//! The Elasticsearch sink's run loop: take batches from the buffer, encode each entry into the pending
//! `_bulk` request, send it when it holds `batchsize` bytes or `batch_entries` documents or waited
//! `batchwait`, and read the answer item by item:
//!
//! * accepted documents are done, and never sent again;
//! * documents that failed with 429 or 5xx are sent again alone, after a backoff;
//! * documents rejected for good go to the dead-letter file with the reason;
//! * a 413 splits the request in two halves, sent one after the other (a single document that is still
//!   too large is rejected for good);
//! * a request that failed as a whole (no answer, 429, 5xx) is sent again, to another endpoint at once
//!   when one is available, else after a backoff.
//!
//! Every batch is acknowledged once all the requests holding its entries are done, as in the Loki sink.
//! Requests are sent by this task itself, so a cluster that is down stops the sink taking more batches
//! and the buffer (or, without one, the sources) holds them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::bulk::{ItemOutcome, PendingBulk};
use super::config::{EsSettings, Target};
use super::document::DocEncoder;
use super::service::{Answer, Attempt, ServerInfo, Service};
use crate::buffer::deadletter::DeadLetter;
use crate::config::IndexNamer;
use crate::delivery::Delivery;
use crate::delivery::PartAck;
use crate::metrics::{Escaped, Metrics, SinkLabel, SinkStatusLabel};
use crate::sink::http::Retry;

/// How often the version check is tried again while no endpoint answered it.
const PROBE_EVERY: Duration = Duration::from_secs(30);

pub struct EsSink {
    service: Service,
    metrics: Arc<Metrics>,
    label: SinkLabel,
    encoder: DocEncoder,
    /// `None` for a data stream: the action line never changes.
    namer: Option<IndexNamer>,
    /// The action line for the current index.
    action: Vec<u8>,
    pending: PendingBulk,
    dead_letter: Option<DeadLetter>,
    /// Kinds of failure already logged (once each, as the delivery contract asks).
    logged: HashSet<String>,
}

/// What became of a part of a request.
enum Delivered {
    Done,
    /// 413 for these items: send them in two halves.
    Split(Vec<usize>),
    Aborted,
}

impl EsSink {
    pub fn new(settings: EsSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let encoder = DocEncoder::new(
            settings.op_type,
            &settings.labels_key,
            &settings.metadata_key,
        )
        .with_extracted(&settings.extracted_fields, &settings.extracted_key);
        let (namer, action) = match &settings.target {
            Target::Index(t) => (Some(IndexNamer::new(t.clone())), Vec::new()),
            Target::DataStream(name) => (None, encoder.action(name)),
        };
        let label = SinkLabel {
            sink: Escaped(settings.name.clone()),
        };
        let es = &metrics.elasticsearch;
        drop(es.sent_entries.get_or_create(&label));
        drop(es.sent_bytes.get_or_create(&label));
        drop(es.dropped_entries.get_or_create(&label));
        drop(es.split_requests.get_or_create(&label));
        Ok(EsSink {
            service: Service::new(settings)?,
            metrics,
            label,
            encoder,
            namer,
            action,
            pending: PendingBulk::default(),
            dead_letter: None,
            logged: HashSet::new(),
        })
    }

    /// Write documents rejected for good to `dead_letter`.
    pub fn with_dead_letter(mut self, dead_letter: DeadLetter) -> Self {
        self.dead_letter = Some(dead_letter);
        self
    }

    fn settings(&self) -> &EsSettings {
        self.service.settings()
    }

    /// Run until the input closes, then flush. `abort` turning true stops retrying at once: what is
    /// not yet accepted stays unacknowledged and is sent again after a restart.
    pub async fn run(mut self, mut input: mpsc::Receiver<Delivery>, abort: watch::Receiver<bool>) {
        let probe = tokio::spawn(check_version(
            Service::new(self.settings().clone()).ok(),
            self.settings().clone(),
        ));
        let wait = self.settings().batch_wait;
        let mut tick = tokio::time::interval((wait / 10).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                msg = input.recv() => match msg {
                    Some(delivery) => {
                        if !self.add(delivery, &abort).await {
                            break;
                        }
                    }
                    None => {
                        self.flush(&abort).await;
                        break;
                    }
                },
                _ = tick.tick() => {
                    if self.pending.created.elapsed() >= wait && !self.flush(&abort).await {
                        break;
                    }
                }
            }
        }
        probe.abort();
    }

    /// Encode a batch's entries into the pending request, sending it whenever it is full. False once
    /// aborted.
    async fn add(&mut self, delivery: Delivery, abort: &watch::Receiver<bool>) -> bool {
        let Delivery { batch, ack } = delivery;
        let part = ack.map(PartAck::new);
        let (max_bytes, max_entries) = (self.settings().batch_size, self.settings().batch_entries);
        for (i, e) in batch.entries.iter().enumerate() {
            if let Some(namer) = &mut self.namer {
                let (index, changed) = namer.name(e.timestamp);
                if changed {
                    self.action = self.encoder.action(&index);
                }
            }
            if self.pending.is_empty() {
                self.pending.created = std::time::Instant::now();
            }
            let b = self.pending.attach(&batch, part.as_ref());
            let start = self.pending.body.len();
            self.pending.body.extend_from_slice(&self.action);
            self.encoder.encode(&mut self.pending.body, e);
            self.pending.push(b, i as u32, start);
            if (self.pending.body.len() >= max_bytes || self.pending.len() >= max_entries)
                && !self.flush(abort).await
            {
                return false;
            }
        }
        if let Some(p) = part {
            p.done();
        }
        true
    }

    /// Send the pending request, if any, until every document in it is done. False if aborted first.
    async fn flush(&mut self, abort: &watch::Receiver<bool>) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut parts = vec![(0..pending.len()).collect::<Vec<usize>>()];
        let mut whole = true;
        while let Some(items) = parts.pop() {
            let body = if whole {
                self.service.prepare(&pending.body)
            } else {
                self.service.prepare(&pending.body_of(&items))
            };
            whole = false;
            match self.deliver(&pending, items, body, abort).await {
                Delivered::Done => {}
                Delivered::Split(items) => {
                    self.metrics
                        .elasticsearch
                        .split_requests
                        .get_or_create(&self.label)
                        .inc();
                    let (first, second) = items.split_at(items.len() / 2);
                    parts.push(second.to_vec());
                    parts.push(first.to_vec());
                }
                // Unacknowledged: the buffer keeps the batches for the next start.
                Delivered::Aborted => return false,
            }
        }
        let mut buffer = pending.finish();
        crate::memory::release_beyond(&mut buffer, 2 * self.settings().batch_size);
        if self.pending.body.capacity() < buffer.capacity() {
            self.pending.body = buffer;
        }
        true
    }

    /// Send `items` of `pending` (`body` holds them) until each is accepted, rejected for good or,
    /// after `max_retries` attempts, dropped.
    async fn deliver(
        &mut self,
        pending: &PendingBulk,
        mut items: Vec<usize>,
        mut body: Bytes,
        abort: &watch::Receiver<bool>,
    ) -> Delivered {
        let mut abort = abort.clone();
        let mut retry = Retry::new(&self.settings().http);
        loop {
            let attempt = retry.next_attempt();
            let sent = tokio::select! {
                a = self.service.bulk(body.clone(), items.len()) => a,
                _ = abort.wait_for(|a| *a) => return Delivered::Aborted,
            };
            self.count_request(&sent);
            let Attempt { answer, host, .. } = sent;
            let (status, error) = match answer {
                Answer::Items(outcomes) => {
                    let retry = self.settle(pending, &items, outcomes);
                    if retry.is_empty() {
                        if self.logged.remove("retry") {
                            tracing::info!(sink = %self.label.sink.0, "sending to Elasticsearch works again");
                        }
                        return Delivered::Done;
                    }
                    items = retry;
                    body = self.service.prepare(&pending.body_of(&items));
                    (429, "documents failed with a retriable status".to_string())
                }
                Answer::TooLarge if items.len() > 1 => return Delivered::Split(items),
                Answer::TooLarge => {
                    let error = format!(
                        "status 413: the document ({} bytes of NDJSON) is larger than the server accepts (http.max_content_length)",
                        pending.item_bytes(items[0])
                    );
                    self.reject(pending, &items, 413, &error);
                    return Delivered::Done;
                }
                Answer::Rejected { status, error } => {
                    self.reject(pending, &items, status, &error);
                    return Delivered::Done;
                }
                Answer::Retry { status, error } => (status, error),
            };
            if retry.exhausted() {
                tracing::error!(sink = %self.label.sink.0, status, %error, documents = items.len(),
                    "final error sending documents: dropped after backoff_config.max_retries attempts");
                self.metrics
                    .elasticsearch
                    .dropped_entries
                    .get_or_create(&self.label)
                    .inc_by(items.len() as u64);
                return Delivered::Done;
            }
            if self.logged.insert("retry".into()) || attempt == 1 {
                tracing::warn!(sink = %self.label.sink.0, host, status, %error, documents = items.len(),
                    "error sending to Elasticsearch, will retry");
            }
            if status != 429 && self.service.other_endpoint_ready(&host) {
                continue;
            }
            if !retry.wait(&mut abort).await {
                return Delivered::Aborted;
            }
        }
    }

    /// Book a 2xx answer's items; returns the ones to send again.
    fn settle(
        &mut self,
        pending: &PendingBulk,
        items: &[usize],
        outcomes: Vec<ItemOutcome>,
    ) -> Vec<usize> {
        let mut retry = Vec::new();
        let (mut accepted, mut bytes) = (0u64, 0u64);
        for (&item, outcome) in items.iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Accepted => {
                    accepted += 1;
                    bytes += pending.item_bytes(item) as u64;
                }
                ItemOutcome::Retry { status, error } => {
                    self.metrics
                        .elasticsearch
                        .retried_entries
                        .get_or_create(&self.status_label(status as i32))
                        .inc();
                    if self.logged.insert(format!("item-retry-{status}")) {
                        tracing::warn!(sink = %self.label.sink.0, status, %error,
                            "Elasticsearch refused documents for now; they are sent again alone (logged once per status)");
                    }
                    retry.push(item);
                }
                ItemOutcome::Rejected { status, error } => {
                    self.reject(pending, &[item], status as i32, &error)
                }
            }
        }
        let es = &self.metrics.elasticsearch;
        es.sent_entries.get_or_create(&self.label).inc_by(accepted);
        es.sent_bytes.get_or_create(&self.label).inc_by(bytes);
        retry
    }

    /// Documents rejected for good: to the dead-letter file, counted, logged once per status.
    fn reject(&mut self, pending: &PendingBulk, items: &[usize], status: i32, error: &str) {
        self.metrics
            .elasticsearch
            .rejected_entries
            .get_or_create(&self.status_label(status))
            .inc_by(items.len() as u64);
        let kept = self.dead_letter.as_mut().and_then(|dl| {
            let entries = items.iter().map(|&i| {
                let e = pending.entry(i);
                (e.timestamp, e.labels.rendered(), e.line.as_str())
            });
            let counter = self
                .metrics
                .buffer
                .dead_letter_entries
                .get_or_create(&self.label);
            dl.keep(error, entries, &counter)
        });
        if self.logged.insert(format!("reject-{status}")) {
            tracing::error!(sink = %self.label.sink.0, status, %error,
                dead_letter = kept.as_deref().unwrap_or("none"),
                "Elasticsearch rejected documents for good; they go to the dead-letter file (logged once per status)");
        }
    }

    fn count_request(&self, a: &Attempt) {
        let es = &self.metrics.elasticsearch;
        es.requests
            .get_or_create(&self.status_label(a.status))
            .inc();
        es.request_duration
            .get_or_create(&self.label)
            .observe(a.took.as_secs_f64());
    }

    fn status_label(&self, status: i32) -> SinkStatusLabel {
        SinkStatusLabel {
            sink: self.label.sink.clone(),
            status: status.to_string(),
        }
    }
}

/// The version check: `GET /` until an endpoint answers, then log what the cluster is and what logferry
/// does about it. It never holds sending up: a cluster that cannot answer it cannot take documents
/// either, and the sink's own retries say so.
async fn check_version(service: Option<Service>, settings: EsSettings) {
    let Some(service) = service else { return };
    loop {
        match service.probe().await {
            Ok(info) => {
                report_version(&info, &settings);
                return;
            }
            Err(error) => {
                tracing::warn!(sink = %settings.name, %error,
                    "cannot read the server's version (GET /); will try again");
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// What differs between the versions logferry knows: Elasticsearch 6.x and older need a mapping type
/// (`_type`) in every action, which logferry does not send (out of scope); data streams need
/// Elasticsearch 7.9 or OpenSearch 1.0. 7.x, 8.x and OpenSearch take the same `_bulk` otherwise.
fn report_version(info: &ServerInfo, settings: &EsSettings) {
    tracing::info!(sink = %settings.name, flavour = info.flavour, version = %info.version,
        "connected to {} {}", info.flavour, info.version);
    let elastic = info.flavour == "Elasticsearch";
    if elastic && info.major < 7 {
        tracing::error!(sink = %settings.name, version = %info.version,
            "Elasticsearch 6.x and older need a mapping type (_type) in every bulk action, which logferry does not send: they are not supported, expect every document to be rejected");
    }
    let data_stream = matches!(settings.target, Target::DataStream(_));
    if data_stream && elastic && (info.major, info.minor) < (7, 9) {
        tracing::error!(sink = %settings.name, version = %info.version,
            "data streams need Elasticsearch 7.9 or later; use index: instead");
    }
}
