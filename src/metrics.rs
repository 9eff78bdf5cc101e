//! The agent's own metrics, served on `/metrics`.
//!
//! Where Promtail has a metric for something, logferry exports it under Promtail's exact name and
//! labels, so existing dashboards and alerts keep working (`promtail_read_bytes_total`,
//! `promtail_sent_entries_total`, …; note that Promtail's `*_bytes_total` file metrics are gauges).
//! What Promtail does not have is exported under `logferry_`. Hot paths update metrics once per
//! chunk or batch, never per line.
//!
//! Two kinds of metric come from the pipeline stages (Promtail's `clients/pkg/logentry`): the drop
//! counters `logentry_dropped_lines_total{reason}` and `logentry_dropped_lines_by_label_total` that
//! `match`, `drop`, `limit` and `sampling` count into, and the custom metrics of the `metrics` stage
//! ([`StageMetrics`]), whose names and label sets come from the config and the log data: they are kept
//! in a store of their own, encoded by a collector at scrape time, where series idle for longer than
//! their `max_idle_duration` are removed, as Promtail does.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

mod buffer;
mod listener;
mod stage;
pub mod text;

pub use buffer::BufferMetrics;
pub use listener::{GelfMetrics, SyslogMetrics};

pub use stage::{SeriesUpdate, StageMetricKind, StageMetricVec, StageMetrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostTenantLabel {
    pub host: String,
    pub tenant: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    pub host: String,
    pub tenant: Escaped,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub status_code: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobReasonLabel {
    pub job: Escaped,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: Escaped,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkReasonLabel {
    pub sink: Escaped,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkStatusLabel {
    pub sink: Escaped,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// `logferry_descriptors_exhausted_total{op}`: what failed for lack of file descriptors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

/// `promtail_journal_target_parsing_errors_total{error}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

/// A label value written escaped (`\\`, `\"`, `\n`) as the text format wants; prometheus-client writes
/// values as they are, and these come from log data.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Escaped(pub String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, &self.0)
    }
}

pub(crate) fn write_escaped(out: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..i])?;
        out.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    out.write_str(rest)
}

/// `logentry_dropped_lines_total{reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropReasonLabel {
    pub reason: Escaped,
}

/// `logentry_dropped_lines_by_label_total{label_name,label_value}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropByLabel {
    pub label_name: Escaped,
    pub label_value: Escaped,
}

fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

type RequestFamily = Family<RequestLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    pub registry: Registry,
    // File source (Promtail names).
    pub read_bytes: Family<PathLabel, Gauge>,
    pub file_bytes: Family<PathLabel, Gauge>,
    pub read_lines: Family<PathLabel, Counter>,
    pub files_active: Gauge,
    pub targets_active: Gauge,
    pub targets_failed: Family<ReasonLabel, Counter>,
    // Loki client (Promtail names).
    pub encoded_bytes: Family<HostLabel, Counter>,
    pub sent_bytes: Family<HostLabel, Counter>,
    pub sent_entries: Family<HostLabel, Counter>,
    pub dropped_bytes: Family<DropLabel, Counter>,
    pub dropped_entries: Family<DropLabel, Counter>,
    pub mutated_entries: Family<DropLabel, Counter>,
    pub mutated_bytes: Family<DropLabel, Counter>,
    pub request_duration: RequestFamily,
    pub batch_retries: Family<HostTenantLabel, Counter>,
    // Journal source (Promtail names).
    pub journal_lines: Counter,
    // loki_push_api source (logferry's own).
    /// Push requests by how they were answered.
    pub push_requests: Family<JobReasonLabel, Counter>,
    /// Pushed entries: accepted (safe in every sink), or left out (relabeled away, no labels).
    pub push_entries: Family<JobReasonLabel, Counter>,
    pub journal_parsing_errors: Family<ErrorLabel, Counter>,
    // logferry's own.
    /// Lines whose invalid UTF-8 was replaced with U+FFFD.
    pub lines_invalid_utf8: Family<JobReasonLabel, Counter>,
    /// Lines cut or dropped while reading (over the line size limit), by job and reason.
    pub lines_oversized: Family<JobReasonLabel, Counter>,
    /// Requests a sink gave up on for good (after Promtail's max_retries, or a 4xx), by host and reason.
    pub positions_save_errors: Counter,
    /// Opens, directory listings and accepts that failed for lack of file descriptors, by `op`
    /// (see [`crate::descriptors`]).
    pub descriptors_exhausted: Family<OpLabel, Counter>,
    /// Files tailers hold open now, and how many they may (idle files close past it).
    pub files_open: Gauge,
    pub files_open_limit: Gauge,
    /// Connections the HTTP server holds open now, and how many it may.
    pub http_connections: Gauge,
    pub http_connections_limit: Gauge,
    /// `logferry_ready`: see [`Metrics::set_started`] and [`Metrics::buffer_writable`].
    ready: Gauge,
    /// Whether the agent has started, and how many disk buffers cannot write now.
    readiness: Mutex<(bool, u32)>,
    /// Config reloads that applied a new config, and those that did not (Promtail names; as in
    /// Promtail, a reload that finds the config unchanged counts as failed).
    pub config_reload_success: Counter,
    pub config_reload_fail: Counter,
    // Pipeline stages (Promtail names).
    /// Lines a filtering stage dropped, by the stage's `drop_counter_reason`.
    pub dropped_lines: Family<DropReasonLabel, Counter>,
    /// Lines `limit` with `by_label_name` dropped, by label.
    pub dropped_lines_by_label: Family<DropByLabel, Counter>,
    /// The `metrics` stage's custom metrics.
    pub stage_metrics: Arc<StageMetrics>,
    // Docker source (Promtail names, then logferry's own).
    pub docker_entries: Counter,
    pub docker_parsing_errors: Counter,
    /// Docker log lines dropped by the source, by reason (`oversized`: the rest of a cut line;
    /// `no_labels`: nothing left after relabeling).
    pub docker_lines_dropped: Family<ReasonLabel, Counter>,
    /// Containers whose log is being followed right now.
    pub docker_containers: Gauge,
    // Syslog and GELF sources (Promtail names, then logferry's own).
    pub syslog: SyslogMetrics,
    pub gelf: GelfMetrics,
    // Sink buffers (logferry's own), by sink.
    pub buffer: BufferMetrics,
    // Elasticsearch and OTLP sinks (logferry's own), by sink.
    pub elasticsearch: SinkMetrics,
    pub otlp: SinkMetrics,
}

/// The metrics of the sinks that are logferry's own (Elasticsearch, OTLP), labelled with the sink's
/// name; each kind registers its own set under its prefix (`logferry_elasticsearch_`,
/// `logferry_otlp_`).
pub struct SinkMetrics {
    /// Entries (documents, records) the receiver accepted.
    pub sent_entries: Family<SinkLabel, Counter>,
    /// Bytes of the accepted entries as encoded, before compression.
    pub sent_bytes: Family<SinkLabel, Counter>,
    /// Requests by answer status (`-1`: no answer).
    pub requests: Family<SinkStatusLabel, Counter>,
    pub request_duration: Family<SinkLabel, Histogram, fn() -> Histogram>,
    /// Entries sent again after a 429/5xx item status, by that status.
    pub retried_entries: Family<SinkStatusLabel, Counter>,
    /// Entries rejected for good (item or request status), by status; they go to the dead letter.
    pub rejected_entries: Family<SinkStatusLabel, Counter>,
    /// Entries given up after `backoff_config.max_retries` attempts.
    pub dropped_entries: Family<SinkLabel, Counter>,
    /// Requests split in two after a 413 (or, for Loki's OTLP, a 400).
    pub split_requests: Family<SinkLabel, Counter>,
    /// Entries an accepted request's answer said were rejected (OTLP's partial success).
    pub partially_rejected: Family<SinkLabel, Counter>,
}

impl Default for SinkMetrics {
    fn default() -> Self {
        SinkMetrics {
            sent_entries: Family::default(),
            sent_bytes: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            retried_entries: Family::default(),
            rejected_entries: Family::default(),
            dropped_entries: Family::default(),
            split_requests: Family::default(),
            partially_rejected: Family::default(),
        }
    }
}

impl SinkMetrics {
    fn status(sink: &SinkLabel, status: i32) -> SinkStatusLabel {
        SinkStatusLabel {
            sink: sink.sink.clone(),
            status: status.to_string(),
        }
    }

    /// Create `sink`'s series at zero, so they are on the page from its start.
    pub fn init(&self, sink: &SinkLabel) {
        drop(self.sent_entries.get_or_create(sink));
        drop(self.sent_bytes.get_or_create(sink));
        drop(self.dropped_entries.get_or_create(sink));
        drop(self.split_requests.get_or_create(sink));
        drop(self.partially_rejected.get_or_create(sink));
    }

    /// A request answered `status` (-1: no answer) after `took`.
    pub fn request(&self, sink: &SinkLabel, status: i32, took: std::time::Duration) {
        self.requests
            .get_or_create(&Self::status(sink, status))
            .inc();
        self.request_duration
            .get_or_create(sink)
            .observe(took.as_secs_f64());
    }

    pub fn sent(&self, sink: &SinkLabel, entries: u64, bytes: u64) {
        self.sent_entries.get_or_create(sink).inc_by(entries);
        self.sent_bytes.get_or_create(sink).inc_by(bytes);
    }

    pub fn retried(&self, sink: &SinkLabel, status: i32) {
        self.retried_entries
            .get_or_create(&Self::status(sink, status))
            .inc();
    }

    pub fn rejected(&self, sink: &SinkLabel, status: i32, entries: u64) {
        self.rejected_entries
            .get_or_create(&Self::status(sink, status))
            .inc_by(entries);
    }

    pub fn dropped(&self, sink: &SinkLabel, entries: u64) {
        self.dropped_entries.get_or_create(sink).inc_by(entries);
    }

    pub fn split(&self, sink: &SinkLabel) {
        self.split_requests.get_or_create(sink).inc();
    }

    /// Register under `logferry_<kind>_`; `noun` names the entries ("Documents"), `request` the
    /// requests ("_bulk requests").
    fn register(&self, registry: &mut Registry, kind: &str, noun: &str, request: &str) {
        let name = |n: &str| format!("logferry_{kind}_{n}");
        registry.register(
            name("sent_entries"),
            format!("{noun} the receiver accepted"),
            self.sent_entries.clone(),
        );
        registry.register(
            name("sent_bytes"),
            format!("Bytes (encoded, before compression) of the {noun} the receiver accepted"),
            self.sent_bytes.clone(),
        );
        registry.register(
            name("requests"),
            format!("{request} by answer status (-1: no answer)"),
            self.requests.clone(),
        );
        registry.register(
            name("request_duration_seconds"),
            format!("Duration of {request}"),
            self.request_duration.clone(),
        );
        registry.register(
            name("retried_entries"),
            format!("{noun} sent again after a 429 or 5xx item status"),
            self.retried_entries.clone(),
        );
        registry.register(
            name("rejected_entries"),
            format!("{noun} rejected for good, written to the dead-letter file"),
            self.rejected_entries.clone(),
        );
        registry.register(
            name("dropped_entries"),
            format!("{noun} given up after backoff_config.max_retries attempts"),
            self.dropped_entries.clone(),
        );
        registry.register(
            name("split_requests"),
            format!("{request} split in two after a 413 answer"),
            self.split_requests.clone(),
        );
        if kind == "otlp" {
            registry.register(
                name("partially_rejected_entries"),
                format!("{noun} an accepted request's partial-success answer said were rejected"),
                self.partially_rejected.clone(),
            );
        }
    }
}

impl Metrics {
    /// The agent has started its sources and sinks.
    pub fn set_started(&self) {
        self.update_readiness(|r| r.0 = true);
    }

    /// A disk buffer stopped being able to write (`false`), or can again (`true`); called on each
    /// change only. `logferry_ready` is 0 while any cannot.
    pub fn buffer_writable(&self, writable: bool) {
        self.update_readiness(|r| {
            if writable {
                r.1 = r.1.saturating_sub(1);
            } else {
                r.1 += 1;
            }
        });
    }

    fn update_readiness(&self, change: impl FnOnce(&mut (bool, u32))) {
        let mut r = self.readiness.lock().unwrap();
        change(&mut r);
        self.ready.set(i64::from(r.0 && r.1 == 0));
    }

    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let m = Metrics {
            read_bytes: Family::default(),
            file_bytes: Family::default(),
            read_lines: Family::default(),
            files_active: Gauge::default(),
            targets_active: Gauge::default(),
            targets_failed: Family::default(),
            encoded_bytes: Family::default(),
            sent_bytes: Family::default(),
            sent_entries: Family::default(),
            dropped_bytes: Family::default(),
            dropped_entries: Family::default(),
            mutated_entries: Family::default(),
            mutated_bytes: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            batch_retries: Family::default(),
            journal_lines: Counter::default(),
            push_requests: Family::default(),
            push_entries: Family::default(),
            journal_parsing_errors: Family::default(),
            lines_invalid_utf8: Family::default(),
            lines_oversized: Family::default(),
            positions_save_errors: Counter::default(),
            descriptors_exhausted: Family::default(),
            files_open: Gauge::default(),
            files_open_limit: Gauge::default(),
            http_connections: Gauge::default(),
            http_connections_limit: Gauge::default(),
            ready: Gauge::default(),
            readiness: Mutex::new((false, 0)),
            config_reload_success: Counter::default(),
            config_reload_fail: Counter::default(),
            dropped_lines: Family::default(),
            dropped_lines_by_label: Family::default(),
            stage_metrics: Arc::default(),
            buffer: BufferMetrics::default(),
            docker_entries: Counter::default(),
            docker_parsing_errors: Counter::default(),
            docker_lines_dropped: Family::default(),
            docker_containers: Gauge::default(),
            syslog: SyslogMetrics::default(),
            gelf: GelfMetrics::default(),
            elasticsearch: SinkMetrics::default(),
            otlp: SinkMetrics::default(),
            registry: Registry::default(),
        };
        m.elasticsearch.register(
            &mut registry,
            "elasticsearch",
            "Documents",
            "_bulk requests",
        );
        m.otlp
            .register(&mut registry, "otlp", "Log records", "OTLP export requests");
        m.buffer.register(&mut registry);
        m.syslog.register(&mut registry);
        m.gelf.register(&mut registry);
        registry.register(
            "promtail_read_bytes_total",
            "Number of bytes read (the file offset)",
            m.read_bytes.clone(),
        );
        registry.register(
            "promtail_file_bytes_total",
            "Number of bytes total (the file size)",
            m.file_bytes.clone(),
        );
        registry.register(
            "promtail_read_lines",
            "Number of lines read",
            m.read_lines.clone(),
        );
        registry.register(
            "promtail_files_active_total",
            "Number of active files",
            m.files_active.clone(),
        );
        registry.register(
            "promtail_targets_active_total",
            "Number of active targets",
            m.targets_active.clone(),
        );
        registry.register(
            "promtail_targets_failed",
            "Number of failed targets",
            m.targets_failed.clone(),
        );
        registry.register(
            "promtail_encoded_bytes",
            "Number of bytes encoded and ready to send",
            m.encoded_bytes.clone(),
        );
        registry.register(
            "promtail_sent_bytes",
            "Number of bytes sent",
            m.sent_bytes.clone(),
        );
        registry.register(
            "promtail_sent_entries",
            "Number of log entries sent to the ingester",
            m.sent_entries.clone(),
        );
        registry.register(
            "promtail_dropped_bytes",
            "Number of bytes dropped because failed to be sent to the ingester after all retries",
            m.dropped_bytes.clone(),
        );
        registry.register(
            "promtail_dropped_entries",
            "Number of log entries dropped because failed to be sent to the ingester after all retries",
            m.dropped_entries.clone(),
        );
        registry.register(
            "promtail_mutated_entries",
            "The total number of log entries that have been mutated",
            m.mutated_entries.clone(),
        );
        registry.register(
            "promtail_mutated_bytes",
            "The total number of bytes that have been mutated",
            m.mutated_bytes.clone(),
        );
        registry.register(
            "promtail_request_duration_seconds",
            "Duration of send requests",
            m.request_duration.clone(),
        );
        registry.register(
            "promtail_batch_retries",
            "Number of times batches has had to be retried",
            m.batch_retries.clone(),
        );
        registry.register(
            "logferry_lines_invalid_utf8",
            "Lines whose invalid UTF-8 bytes were replaced with U+FFFD",
            m.lines_invalid_utf8.clone(),
        );
        registry.register(
            "logferry_lines_oversized",
            "Lines longer than the line size limit, truncated or dropped",
            m.lines_oversized.clone(),
        );
        registry.register(
            "logferry_push_requests",
            "loki_push_api and otlp requests by answer: accepted (once safe in every sink), malformed (400), too_large (413), full (429), stopping or not_safe (503)",
            m.push_requests.clone(),
        );
        registry.register(
            "logferry_push_entries",
            "loki_push_api and otlp entries: accepted, or left out (relabeled_away, no_labels, no_body)",
            m.push_entries.clone(),
        );
        registry.register(
            "promtail_journal_target_lines",
            "Total number of successful journal lines read",
            m.journal_lines.clone(),
        );
        registry.register(
            "promtail_journal_target_parsing_errors",
            "Total number of parsing errors while reading journal messages",
            m.journal_parsing_errors.clone(),
        );
        registry.register(
            "logferry_positions_save_errors",
            "Failed writes of the positions file",
            m.positions_save_errors.clone(),
        );
        registry.register(
            "logferry_descriptors_exhausted",
            "Operations that failed for lack of file descriptors (retried), by op",
            m.descriptors_exhausted.clone(),
        );
        registry.register(
            "logferry_files_open",
            "Files the file source holds open now",
            m.files_open.clone(),
        );
        registry.register(
            "logferry_files_open_limit",
            "Files the file source may hold open at once; idle ones are closed past it",
            m.files_open_limit.clone(),
        );
        registry.register(
            "logferry_http_connections",
            "Connections the HTTP server holds open now",
            m.http_connections.clone(),
        );
        registry.register(
            "logferry_http_connections_limit",
            "Connections the HTTP server serves at once; more wait to be accepted",
            m.http_connections_limit.clone(),
        );
        registry.register(
            "promtail_config_reload_success",
            "Config reloads that applied a new config",
            m.config_reload_success.clone(),
        );
        registry.register(
            "promtail_config_reload_fail",
            "Config reloads refused (invalid config) or that found the config unchanged",
            m.config_reload_fail.clone(),
        );
        registry.register(
            "logferry_ready",
            "1 once the agent has started its sources and sinks, 0 while a sink's disk buffer cannot write (a full disk)",
            m.ready.clone(),
        );
        registry.register(
            "logentry_dropped_lines",
            "A count of all log lines dropped as a result of a pipeline stage",
            m.dropped_lines.clone(),
        );
        registry.register(
            "logentry_dropped_lines_by_label",
            "A count of all log lines dropped as a result of a pipeline stage",
            m.dropped_lines_by_label.clone(),
        );
        registry.register_collector(Box::new(stage::Collector(m.stage_metrics.clone())));
        registry.register(
            "promtail_docker_target_entries",
            "Total number of successful entries sent to the Docker target",
            m.docker_entries.clone(),
        );
        registry.register(
            "promtail_docker_target_parsing_errors",
            "Total number of parsing errors while receiving Docker messages",
            m.docker_parsing_errors.clone(),
        );
        registry.register(
            "logferry_docker_lines_dropped",
            "Docker log lines the source dropped, by reason",
            m.docker_lines_dropped.clone(),
        );
        registry.register(
            "logferry_docker_containers_followed",
            "Containers whose log is being followed",
            m.docker_containers.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// The `promtail_journal_target_parsing_errors_total` series for `error`.
    pub fn journal_errors(&self, error: &str) -> Counter {
        self.journal_parsing_errors
            .get_or_create(&ErrorLabel {
                error: error.to_owned(),
            })
            .clone()
    }

    /// The `logentry_dropped_lines_total` series for `reason`, to count into without a lookup.
    pub fn dropped_lines_counter(&self, reason: &str) -> Counter {
        self.dropped_lines
            .get_or_create(&DropReasonLabel {
                reason: Escaped(reason.to_owned()),
            })
            .clone()
    }

    /// Count a line `limit` dropped in `logentry_dropped_lines_by_label_total`.
    pub fn count_dropped_by_label(&self, label_name: &str, label_value: &str) {
        self.dropped_lines_by_label
            .get_or_create(&DropByLabel {
                label_name: Escaped(label_name.to_owned()),
                label_value: Escaped(label_value.to_owned()),
            })
            .inc();
    }

    /// The `logferry_docker_lines_dropped_total` series for `reason`.
    pub fn docker_dropped(&self, reason: &str) -> Counter {
        self.docker_lines_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .clone()
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Every metric in the format a scraper's `Accept` header asks for ([`text`]): its content type
    /// and body.
    pub fn exposition(&self, accept: Option<&str>) -> (&'static str, String) {
        if text::wants_openmetrics(accept) {
            (text::OPENMETRICS, self.encode())
        } else {
            (text::TEXT, text::to_text_format(&self.encode()))
        }
    }

    /// Create a client's series at zero, as Promtail does once it knows a host and tenant, so that
    /// rates and alerts see them before the first send or drop.
    pub fn init_client(&self, host: &str, tenant: &str) {
        let h = HostLabel {
            host: host.to_owned(),
        };
        drop(self.sent_entries.get_or_create(&h));
        drop(self.sent_bytes.get_or_create(&h));
        drop(self.encoded_bytes.get_or_create(&h));
        drop(self.batch_retries.get_or_create(&HostTenantLabel {
            host: host.to_owned(),
            tenant: Escaped(tenant.to_owned()),
        }));
        for reason in [
            "ingester_error",
            "rate_limited",
            "stream_limited",
            "line_too_long",
        ] {
            let l = Self::drop_label(host, tenant, reason);
            drop(self.dropped_entries.get_or_create(&l));
            drop(self.dropped_bytes.get_or_create(&l));
        }
    }

    pub fn drop_label(host: &str, tenant: &str, reason: &str) -> DropLabel {
        DropLabel {
            host: host.to_owned(),
            tenant: Escaped(tenant.to_owned()),
            reason: reason.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counters_are_exported_with_escaped_labels() {
        let m = Metrics::new();
        m.dropped_lines_counter("match_stage").inc();
        m.dropped_lines_counter("match_stage").inc();
        m.count_dropped_by_label("app", "a \"quoted\" \\ value");
        let text = m.encode();
        assert!(text.contains("# HELP logentry_dropped_lines A count of all log lines dropped as a result of a pipeline stage.\n# TYPE logentry_dropped_lines counter\n"), "{text}");
        assert!(
            text.contains("logentry_dropped_lines_total{reason=\"match_stage\"} 2\n"),
            "{text}"
        );
        assert!(text.contains(
            "logentry_dropped_lines_by_label_total{label_name=\"app\",label_value=\"a \\\"quoted\\\" \\\\ value\"} 1\n"
        ), "{text}");
    }

    #[test]
    fn file_paths_and_tenants_from_the_outside_are_escaped() {
        let m = Metrics::new();
        m.read_lines
            .get_or_create(&PathLabel {
                path: Escaped("/logs/a \"b\"\\c.log".into()),
            })
            .inc();
        m.init_client("loki:3100", "team \"x\"");
        let text = m.encode();
        assert!(
            text.contains("promtail_read_lines_total{path=\"/logs/a \\\"b\\\"\\\\c.log\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("tenant=\"team \\\"x\\\"\""), "{text}");
    }
}
