//! How a `_bulk` request is sent and its answer read item by item; the sink core does the rest:
//!
//! * accepted documents are done, and never sent again;
//! * documents that failed with 429 or 5xx are sent again alone (a request of just those), after a
//!   backoff;
//! * documents rejected for good go to the dead-letter file with the reason;
//! * a 413 splits the request in two halves, sent one after the other (a single document that is still
//!   too large is rejected for good);
//! * a request that failed as a whole (no answer, 429, 5xx) is sent again, to another endpoint at once
//!   when one is available, else after a backoff.
//!
//! A stored request is the body as sent; the documents in it are found again by its lines (an action
//! line, then a document line), after gunzipping when the sink compresses.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::bulk::ItemOutcome;
use super::config::{Destination, EsSettings};
use super::service::{Answer as BulkAnswer, Attempt, ServerInfo, Service};
use crate::delivery::Request;
use crate::entry::braced;
use crate::metrics::{Escaped, Metrics, SinkLabel};
use crate::sink::core::{Answer, DeadEntry, Protocol, Task};
use crate::sink::http::{compress, decompress, HttpSettings};

/// How often the version check is tried again while no endpoint answered it.
const PROBE_EVERY: Duration = Duration::from_secs(30);

pub struct EsProtocol {
    service: Service,
    metrics: Arc<Metrics>,
    label: SinkLabel,
    /// Statuses of documents refused for now, already logged.
    item_retry_logged: HashSet<u16>,
}

impl EsProtocol {
    pub fn new(settings: EsSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let label = SinkLabel {
            sink: Escaped(settings.name.clone()),
        };
        metrics.elasticsearch.init(&label);
        Ok(EsProtocol {
            service: Service::new(settings)?,
            metrics,
            label,
            item_retry_logged: HashSet::new(),
        })
    }

    fn settings(&self) -> &EsSettings {
        self.service.settings()
    }

    fn count_request(&self, a: &Attempt) {
        self.metrics
            .elasticsearch
            .request(&self.label, a.status, a.took);
    }

    /// The NDJSON of `request`, uncompressed.
    fn ndjson(&self, request: &Request) -> Option<Vec<u8>> {
        match decompress(&request.body, self.settings().gzip) {
            Ok(out) => Some(out),
            Err(e) => {
                tracing::error!(sink = %self.label.sink.0, error = %e, "cannot read back a stored request");
                None
            }
        }
    }

    /// A request of the documents `items` of `ndjson`.
    fn request_of(&self, ndjson: &[u8], items: &[Range<usize>], dest: &Arc<str>) -> Request {
        let mut body = Vec::with_capacity(items.iter().map(|r| r.len()).sum());
        for r in items {
            body.extend_from_slice(&ndjson[r.clone()]);
        }
        Request {
            body: compress(&body, self.settings().gzip),
            dest: dest.clone(),
            entries: items.len() as u32,
            bytes: body.len() as u64,
        }
    }

    /// Book a 2xx answer's items.
    fn settle(&mut self, request: &Request, outcomes: Vec<ItemOutcome>) -> Answer {
        if outcomes.iter().all(|o| *o == ItemOutcome::Accepted) {
            return Answer::Accepted;
        }
        let Some(ndjson) = self.ndjson(request) else {
            return Answer::Rejected {
                status: 0,
                error: "the stored request cannot be read back".into(),
            };
        };
        let items = documents(&ndjson);
        let (mut retry, mut rejected) = (Vec::new(), Vec::new());
        let (mut accepted, mut bytes) = (0u64, 0u64);
        for (item, outcome) in items.iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Accepted => {
                    accepted += 1;
                    bytes += item.len() as u64;
                }
                ItemOutcome::Retry { status, error } => {
                    self.metrics
                        .elasticsearch
                        .retried(&self.label, i32::from(status));
                    if self.item_retry_logged.insert(status) {
                        tracing::warn!(sink = %self.label.sink.0, status, %error,
                            "Elasticsearch refused documents for now; they are sent again alone (logged once per status)");
                    }
                    retry.push(item.clone());
                }
                ItemOutcome::Rejected { status, error } => {
                    let one = self.request_of(&ndjson, std::slice::from_ref(item), &request.dest);
                    rejected.push((i32::from(status), error, one));
                }
            }
        }
        self.metrics
            .elasticsearch
            .sent(&self.label, accepted, bytes);
        let retry = (!retry.is_empty()).then(|| self.request_of(&ndjson, &retry, &request.dest));
        Answer::Partial { retry, rejected }
    }
}

/// The byte ranges of the documents (action line and document line each) in `ndjson`.
fn documents(ndjson: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut lines = memchr::memchr_iter(b'\n', ndjson).skip(1).step_by(2);
    for end in lines.by_ref() {
        out.push(start..end + 1);
        start = end + 1;
    }
    out
}

impl Protocol for EsProtocol {
    const KIND: &'static str = "Elasticsearch";
    const NOUN: &'static str = "documents";
    const SENDING: &'static str = "to Elasticsearch";

    fn name(&self) -> &str {
        &self.label.sink.0
    }

    fn http(&self) -> &HttpSettings {
        &self.settings().http
    }

    async fn send(&mut self, request: &Request) -> Answer {
        let sent = self
            .service
            .bulk(request.body.clone(), request.entries as usize)
            .await;
        self.count_request(&sent);
        let Attempt { answer, host, .. } = sent;
        match answer {
            BulkAnswer::Items(outcomes) => self.settle(request, outcomes),
            BulkAnswer::TooLarge => Answer::Split {
                status: 413,
                error: format!(
                    "status 413: the document ({} bytes of NDJSON) is larger than the server accepts (http.max_content_length)",
                    request.bytes
                ),
            },
            BulkAnswer::Rejected { status, error } => Answer::Rejected { status, error },
            BulkAnswer::Retry { status, error } => Answer::Retry {
                status,
                error,
                at_once: status != 429 && self.service.other_endpoint_ready(&host),
            },
        }
    }

    fn halves(&self, request: &Request) -> Option<(Request, Request)> {
        if request.entries < 2 {
            return None;
        }
        let ndjson = self.ndjson(request)?;
        let items = documents(&ndjson);
        if items.len() < 2 {
            return None;
        }
        let (first, second) = items.split_at(items.len() / 2);
        Some((
            self.request_of(&ndjson, first, &request.dest),
            self.request_of(&ndjson, second, &request.dest),
        ))
    }

    /// Each document's `@timestamp`, labels (from `labels_key`) and `message`.
    fn dead_letters(&self, request: &Request) -> Vec<DeadEntry> {
        let Some(ndjson) = self.ndjson(request) else {
            return Vec::new();
        };
        let labels_key = &self.settings().labels_key;
        documents(&ndjson)
            .into_iter()
            .filter_map(|r| {
                let doc = &ndjson[r];
                let action_end = memchr::memchr(b'\n', doc)?;
                let v: serde_json::Value = serde_json::from_slice(&doc[action_end + 1..]).ok()?;
                let ts = v["@timestamp"]
                    .as_str()
                    .and_then(crate::stage::parsing::rfc3339::parse_nano)
                    .unwrap_or(0);
                let mut labels: Vec<(&str, &str)> = v[labels_key.as_str()]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                labels.sort();
                let line = v["message"].as_str().unwrap_or_default().to_owned();
                Some((ts, braced(labels), line))
            })
            .collect()
    }

    fn sent(&self, request: &Request) {
        self.metrics
            .elasticsearch
            .sent(&self.label, u64::from(request.entries), request.bytes);
    }

    fn dropped(&self, request: &Request, _reason: &'static str) {
        self.metrics
            .elasticsearch
            .dropped(&self.label, u64::from(request.entries));
    }

    fn rejected(&self, request: &Request, status: i32) {
        self.metrics
            .elasticsearch
            .rejected(&self.label, status, u64::from(request.entries));
    }

    fn split(&self) {
        self.metrics.elasticsearch.split(&self.label);
    }

    fn background(&self) -> Option<Task> {
        let settings = self.settings().clone();
        let service = Service::new(settings.clone()).ok();
        Some(Box::pin(check_version(service, settings)))
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
    let data_stream = matches!(settings.target, Destination::DataStream(_));
    if data_stream && elastic && (info.major, info.minor) < (7, 9) {
        tracing::error!(sink = %settings.name, version = %info.version,
            "data streams need Elasticsearch 7.9 or later; use index: instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_found_by_their_line_pairs() {
        let ndjson = b"{\"index\":{}}\n{\"a\":1}\n{\"index\":{}}\n{\"b\":\"x\\ny\"}\n";
        let items = documents(ndjson);
        assert_eq!(items.len(), 2);
        assert_eq!(
            &ndjson[items[1].clone()],
            b"{\"index\":{}}\n{\"b\":\"x\\ny\"}\n"
        );
    }

    fn settings(gzip: bool) -> EsSettings {
        let cfg: crate::config::ElasticsearchConfig = serde_yaml_ng::from_str(
            "endpoints: [http://127.0.0.1:9]\nindex: logs-%Y.%m.%d\nname: es-t\n",
        )
        .unwrap();
        let mut s = EsSettings::from_config(&cfg).unwrap();
        s.gzip = gzip;
        s
    }

    /// Three entries encoded by the sink's codec into one stored request.
    fn request(settings: &EsSettings) -> Request {
        use crate::sink::core::{Batcher, Limits};
        let mut batcher = Batcher::new(
            super::super::codec::EsCodec::new(settings),
            Limits {
                bytes: 1 << 20,
                entries: 100,
                wait: Duration::from_secs(1),
            },
        );
        let batch = Arc::new(crate::entry::Batch {
            entries: ["one \"1\"", "two", "three"]
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut e = crate::stage::testing::entry(l, &[("job", "app"), ("a", "b")]);
                    e.timestamp = 1_700_000_000_000_000_000 + i as i64;
                    e
                })
                .collect(),
        });
        let mut requests = batcher.encode_all(&batch);
        assert_eq!(requests.len(), 1);
        requests.pop().unwrap()
    }

    #[test]
    fn stored_requests_split_and_dead_letter_by_document_gzipped_or_not() {
        for gzip in [false, true] {
            let settings = settings(gzip);
            let p = EsProtocol::new(settings.clone(), Metrics::new()).unwrap();
            let whole = request(&settings);
            assert_eq!(whole.entries, 3);
            let dead = p.dead_letters(&whole);
            assert_eq!(
                dead[0],
                (
                    1_700_000_000_000_000_000,
                    "{a=\"b\", job=\"app\"}".to_string(),
                    "one \"1\"".to_string()
                ),
                "gzip {gzip}"
            );
            let (first, second) = p.halves(&whole).unwrap();
            assert_eq!((first.entries, second.entries), (1, 2));
            assert_eq!(first.bytes + second.bytes, whole.bytes);
            let lines = |r: &Request| -> Vec<String> {
                p.dead_letters(r).into_iter().map(|d| d.2).collect()
            };
            assert_eq!(lines(&first), ["one \"1\""]);
            assert_eq!(lines(&second), ["two", "three"]);
            assert!(p.halves(&first).is_none());
        }
    }
}
