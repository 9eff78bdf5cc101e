//! The disk buffers' metrics (`logferry_buffer_*`, `logferry_dead_letter_entries_total`), each
//! labelled with the sink whose buffer it is.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{SinkLabel, SinkReasonLabel};

/// The disk buffers' metrics; every family is labelled with the sink (its buffer's name).
#[derive(Default)]
pub struct BufferMetrics {
    pub bytes: Family<SinkLabel, Gauge>,
    pub records: Family<SinkLabel, Gauge>,
    pub oldest_age_seconds: Family<SinkLabel, Gauge>,
    /// 1 while the buffer is full and `when_full: block` holds the sources.
    pub full: Family<SinkLabel, Gauge>,
    /// Entries that never reached the receiver, by reason (`buffer_full`; `damaged`: lines of a
    /// segment deleted or cut short after their positions were committed).
    pub dropped_entries: Family<SinkReasonLabel, Counter>,
    /// Segment files found missing (deleted) before they were sent.
    pub missing_segments: Family<SinkLabel, Counter>,
    /// Records a damaged buffer lost (bad CRC, torn frames found while reading).
    pub damaged_records: Family<SinkLabel, Counter>,
    pub damaged_bytes: Family<SinkLabel, Counter>,
    /// Bytes of a torn last record cut off when the buffer was opened after a crash.
    pub torn_bytes: Family<SinkLabel, Counter>,
    /// Failed writes (`no_space`, `io`) and reads (`read`), each retried or skipped, never fatal.
    pub io_errors: Family<SinkReasonLabel, Counter>,
    /// Entries the receiver rejected for good, written to the dead-letter file.
    pub dead_letter_entries: Family<SinkLabel, Counter>,
}

impl BufferMetrics {
    /// Lines lost from sink `sink`'s buffer for good (a deleted or cut segment): their records and
    /// bytes as damage, their lines as dropped with reason `damaged`.
    pub fn count_lost(&self, sink: &SinkLabel, records: u64, bytes: u64, lines: u64) {
        self.damaged_records.get_or_create(sink).inc_by(records);
        self.damaged_bytes.get_or_create(sink).inc_by(bytes);
        let reason = SinkReasonLabel {
            sink: sink.sink.clone(),
            reason: "damaged".into(),
        };
        self.dropped_entries.get_or_create(&reason).inc_by(lines);
    }

    /// Create a sink's series at zero when its buffer opens, so that `rate()`s and alerts such as
    /// `logferry_buffer_full == 1` see them before the first event, as Promtail does for its clients.
    pub fn init_sink(&self, sink: &SinkLabel) {
        drop(self.bytes.get_or_create(sink));
        drop(self.records.get_or_create(sink));
        drop(self.oldest_age_seconds.get_or_create(sink));
        drop(self.full.get_or_create(sink));
        drop(self.damaged_records.get_or_create(sink));
        drop(self.damaged_bytes.get_or_create(sink));
        drop(self.torn_bytes.get_or_create(sink));
        drop(self.missing_segments.get_or_create(sink));
        drop(self.dead_letter_entries.get_or_create(sink));
        let reason = |reason: &str| SinkReasonLabel {
            sink: sink.sink.clone(),
            reason: reason.to_owned(),
        };
        for why in ["buffer_full", "damaged"] {
            drop(self.dropped_entries.get_or_create(&reason(why)));
        }
        for kind in ["no_space", "io", "read"] {
            drop(self.io_errors.get_or_create(&reason(kind)));
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "logferry_buffer_bytes",
            "Bytes in the sink's buffer not yet accepted by the receiver",
            self.bytes.clone(),
        );
        registry.register(
            "logferry_buffer_records",
            "Batches in the sink's buffer not yet accepted by the receiver",
            self.records.clone(),
        );
        registry.register(
            "logferry_buffer_oldest_record_age_seconds",
            "Age of the oldest batch in the sink's buffer that is being sent",
            self.oldest_age_seconds.clone(),
        );
        registry.register(
            "logferry_buffer_full",
            "1 while the sink's buffer is full and holds the sources back (when_full: block)",
            self.full.clone(),
        );
        registry.register(
        "logferry_buffer_dropped_entries",
        "Entries the sink's buffer dropped, by reason (buffer_full with when_full: drop_newest; damaged: a segment deleted or cut short)",
        self.dropped_entries.clone(),
    );
        registry.register(
            "logferry_buffer_damaged_records",
            "Damaged records (bad CRC or framing) skipped while reading the sink's buffer",
            self.damaged_records.clone(),
        );
        registry.register(
            "logferry_buffer_damaged_bytes",
            "Bytes of damaged records skipped while reading the sink's buffer",
            self.damaged_bytes.clone(),
        );
        registry.register(
            "logferry_buffer_missing_segments",
            "Segment files of the sink's buffer found missing (deleted) before they were sent",
            self.missing_segments.clone(),
        );
        registry.register(
            "logferry_buffer_torn_bytes",
            "Bytes of a torn last record cut off when the sink's buffer was opened after a crash",
            self.torn_bytes.clone(),
        );
        registry.register(
            "logferry_buffer_io_errors",
            "Buffer I/O errors by kind (no_space, io: writes retried; read: records skipped)",
            self.io_errors.clone(),
        );
        registry.register(
            "logferry_dead_letter_entries",
            "Entries the receiver rejected for good, written to the sink's dead-letter file",
            self.dead_letter_entries.clone(),
        );
    }
}
