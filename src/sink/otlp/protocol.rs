//! How an export request is sent and its answer read; the sink core does the rest.
//!
//! * 2xx: accepted. An answer with a partial success (`rejected_log_records`) is counted and logged
//!   (once per sink at warning level, then at debug): the receiver took the request and dropped
//!   those records for what they are, so sending them again would not help.
//! * 429, 5xx, no answer: sent again after a backoff (401 and 403 too, as for every sink).
//! * 413: the request is halved until what is refused stands alone.
//! * Any other status: refused for good, to the dead-letter file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use prost::Message;

use super::codec::resource_logs;
use super::config::OtlpSettings;
use crate::delivery::Request;
use crate::entry::{braced, LabelSet, Labels};
use crate::metrics::{Escaped, Metrics, SinkLabel};
use crate::sink::core::{Answer, DeadEntry, Protocol};
use crate::sink::http::{compress, decompress, Endpoint, HttpSettings, Posted};

pub struct OtlpProtocol {
    endpoint: Endpoint,
    settings: OtlpSettings,
    metrics: Arc<Metrics>,
    label: SinkLabel,
    /// A partial success was logged at warning level.
    warned_partial: AtomicBool,
}

impl OtlpProtocol {
    pub fn new(settings: OtlpSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let label = SinkLabel {
            sink: Escaped(settings.name.clone()),
        };
        metrics.otlp.init(&label);
        let own: &[_] = if settings.gzip {
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ]
        } else {
            &[("content-type", "application/x-protobuf")]
        };
        let endpoint = Endpoint::new(&settings.url, &settings.http, own, &["content-encoding"])?;
        Ok(OtlpProtocol {
            endpoint,
            settings,
            metrics,
            label,
            warned_partial: AtomicBool::new(false),
        })
    }

    /// The request as it was before it was encoded.
    fn decoded(&self, request: &Request) -> Option<ExportLogsServiceRequest> {
        let decoded = decompress(&request.body, self.settings.gzip)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                ExportLogsServiceRequest::decode(&body[..]).map_err(|e| e.to_string())
            });
        match decoded {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(sink = %self.label.sink.0, error = %e, "cannot read back a stored request");
                None
            }
        }
    }

    /// Count and log a partial success.
    fn partial(&self, answer: &[u8]) {
        let Ok(answer) = ExportLogsServiceResponse::decode(answer) else {
            return; // An empty or JSON body: nothing to read.
        };
        let Some(partial) = answer.partial_success else {
            return;
        };
        let rejected = u64::try_from(partial.rejected_log_records).unwrap_or(0);
        if rejected == 0 && partial.error_message.is_empty() {
            return;
        }
        self.metrics
            .otlp
            .partially_rejected
            .get_or_create(&self.label)
            .inc_by(rejected);
        let error = partial.error_message;
        if self.warned_partial.swap(true, Ordering::Relaxed) {
            tracing::debug!(sink = %self.label.sink.0, rejected, %error, "OTLP receiver rejected records");
        } else {
            tracing::warn!(sink = %self.label.sink.0, rejected, %error,
                "the OTLP receiver accepted a request but rejected some of its records (counted in logferry_otlp_partially_rejected_entries_total; further ones are logged at debug level)");
        }
    }
}

impl Protocol for OtlpProtocol {
    const KIND: &'static str = "OTLP";
    const NOUN: &'static str = "log records";
    const SENDING: &'static str = "to the OTLP receiver";

    fn name(&self) -> &str {
        &self.label.sink.0
    }

    fn http(&self) -> &HttpSettings {
        &self.settings.http
    }

    async fn send(&mut self, request: &Request) -> Answer {
        let start = Instant::now();
        let posted = self.endpoint.post(request.body.clone(), &[]).await;
        let status = match &posted {
            Posted::Accepted(_) => 200,
            Posted::Retry { status, .. } | Posted::Rejected { status, .. } => *status,
        };
        self.metrics
            .otlp
            .request(&self.label, status, start.elapsed());
        match posted {
            Posted::Accepted(body) => {
                self.partial(&body);
                Answer::Accepted
            }
            Posted::Retry { status, error } => Answer::Retry {
                status,
                error,
                at_once: false,
            },
            Posted::Rejected { status: 413, error } => Answer::Split { status: 413, error },
            Posted::Rejected { status, error } => Answer::Rejected { status, error },
        }
    }

    fn halves(&self, request: &Request) -> Option<(Request, Request)> {
        if request.entries < 2 {
            return None;
        }
        let decoded = self.decoded(request)?;
        // Flatten to (resource, record) pairs, then rebuild each half with its own resources.
        let mut records = Vec::new();
        for rl in decoded.resource_logs {
            let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
            let labels: Labels = attrs
                .iter()
                .map(|kv| (kv.key.clone(), string_of(kv.value.as_ref())))
                .collect();
            let labels = LabelSet::new(labels);
            for sl in rl.scope_logs {
                for record in sl.log_records {
                    records.push((labels.clone(), record));
                }
            }
        }
        if records.len() < 2 {
            return None;
        }
        let second = records.split_off(records.len() / 2);
        let request_of = |records: Vec<(Arc<LabelSet>, LogRecord)>| {
            let count = records.len();
            let mut bytes = 0u64;
            let mut out: Vec<ResourceLogs> = Vec::new();
            let mut last: Option<Arc<LabelSet>> = None;
            for (labels, record) in records {
                bytes += record_size(&record) as u64;
                if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &labels)) {
                    let scope = &mut out.last_mut().expect("a resource").scope_logs[0];
                    scope.log_records.push(record);
                } else {
                    out.push(resource_logs(&labels, vec![record]));
                    last = Some(labels);
                }
            }
            let body = ExportLogsServiceRequest { resource_logs: out }.encode_to_vec();
            Request {
                body: compress(&body, self.settings.gzip),
                dest: request.dest.clone(),
                entries: count as u32,
                bytes,
            }
        };
        Some((request_of(records), request_of(second)))
    }

    fn dead_letters(&self, request: &Request) -> Vec<DeadEntry> {
        let Some(decoded) = self.decoded(request) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for rl in decoded.resource_logs {
            let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
            let pairs: Vec<(String, String)> = attrs
                .iter()
                .map(|kv| (kv.key.clone(), string_of(kv.value.as_ref())))
                .collect();
            let labels = braced(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for sl in rl.scope_logs {
                for r in sl.log_records {
                    let ts = i64::try_from(r.time_unix_nano).unwrap_or(0);
                    out.push((ts, labels.clone(), string_of(r.body.as_ref())));
                }
            }
        }
        out
    }

    fn sent(&self, request: &Request) {
        self.metrics
            .otlp
            .sent(&self.label, u64::from(request.entries), request.bytes);
    }

    fn dropped(&self, request: &Request, _reason: &'static str) {
        self.metrics
            .otlp
            .dropped(&self.label, u64::from(request.entries));
    }

    fn rejected(&self, request: &Request, status: i32) {
        self.metrics
            .otlp
            .rejected(&self.label, status, u64::from(request.entries));
    }

    fn split(&self) {
        self.metrics.otlp.split(&self.label);
    }
}

/// What a record this sink wrote counts toward a batch, as its entry did: line plus metadata.
fn record_size(record: &LogRecord) -> usize {
    let attributes: usize = record
        .attributes
        .iter()
        .map(|kv| kv.key.len() + string_of(kv.value.as_ref()).len())
        .sum();
    string_of(record.body.as_ref()).len() + attributes
}

/// A value this sink wrote (a string), as a string.
fn string_of(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => crate::source::otlp::convert::as_string(other),
        None => String::new(),
    }
}
