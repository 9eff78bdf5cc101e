//! The listening sources' metrics: Promtail's syslog and GELF target counters under their exact names
//! (unlabelled, as Promtail has them), and logferry's own under `logferry_syslog_*`/`logferry_gelf_*`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::JobReasonLabel;

#[derive(Default)]
pub struct SyslogMetrics {
    /// Entries handed on to the pipeline.
    pub entries: Counter,
    /// Messages the parser refused, and bytes that were not a frame.
    pub parsing_errors: Counter,
    /// Messages without a MSG part (dropped, as in Promtail).
    pub empty_messages: Counter,
    /// Messages dropped by the source, by job and reason (`oversized`: over `max_message_length`;
    /// `no_labels`: no label left after relabeling).
    pub dropped: Family<JobReasonLabel, Counter>,
    /// TCP connections open now.
    pub connections: Gauge,
    /// TCP connections closed at once because the listener had its maximum open.
    pub connections_refused: Counter,
}

impl SyslogMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "promtail_syslog_target_entries",
            "Total number of successful entries sent to the syslog target",
            self.entries.clone(),
        );
        registry.register(
            "promtail_syslog_target_parsing_errors",
            "Total number of parsing errors while receiving syslog messages",
            self.parsing_errors.clone(),
        );
        registry.register(
            "promtail_syslog_empty_messages",
            "Total number of empty messages receiving from syslog",
            self.empty_messages.clone(),
        );
        registry.register(
            "logferry_syslog_messages_dropped",
            "Syslog messages the source dropped, by job and reason (oversized, no_labels)",
            self.dropped.clone(),
        );
        registry.register(
            "logferry_syslog_connections",
            "Syslog TCP connections open now",
            self.connections.clone(),
        );
        registry.register(
            "logferry_syslog_connections_refused",
            "Syslog TCP connections closed at once because the listener had its maximum open",
            self.connections_refused.clone(),
        );
    }
}

#[derive(Default)]
pub struct GelfMetrics {
    /// Entries handed on to the pipeline.
    pub entries: Counter,
    /// Datagrams or reassembled messages that are not GELF (bad compression, bad JSON, bad chunks).
    pub parsing_errors: Counter,
    /// Messages dropped by the source, by job and reason (`incomplete`: chunks missing at the
    /// reassembly timeout or evicted; `no_labels`: no label left after relabeling).
    pub dropped: Family<JobReasonLabel, Counter>,
}

impl GelfMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "promtail_gelf_target_entries",
            "Total number of successful entries sent to the GELF target",
            self.entries.clone(),
        );
        registry.register(
            "promtail_gelf_target_parsing_errors",
            "Total number of parsing errors while receiving GELF messages",
            self.parsing_errors.clone(),
        );
        registry.register(
            "logferry_gelf_messages_dropped",
            "GELF messages the source dropped, by job and reason (incomplete, no_labels)",
            self.dropped.clone(),
        );
    }
}
