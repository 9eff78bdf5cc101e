//! Entries into one OTLP export request: one `ResourceLogs` per stream, in arrival order, whose
//! resource attributes are the stream's labels; one `ScopeLogs` (scope `logferry`) in each; one
//! `LogRecord` per entry: the line as a string body, the entry's timestamp as `time_unix_nano`, its
//! structured metadata as string attributes. Encoded (`encode.rs`, straight from the batches) and
//! gzipped once, when the request is sealed.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use rustc_hash::FxHashMap;

use super::config::OtlpSettings;
use super::encode::{RecordSource, RequestEncoder};
use crate::entry::{Batch, Entry, LabelSet};
use crate::sink::core::Codec;
use crate::sink::http::compress;

/// The instrumentation scope records are sent under.
pub const SCOPE: &str = "logferry";

/// An entry of a request being filled: (batch, index) in the batches the batcher holds.
type EntryRef = (u32, u32);

/// The entries of a request being filled, grouped by stream in arrival order.
#[derive(Default)]
pub struct Streams {
    streams: Vec<(Arc<LabelSet>, Vec<EntryRef>)>,
    /// By rendered labels.
    index: FxHashMap<Arc<str>, usize>,
}

pub struct OtlpCodec {
    gzip: bool,
    encoder: RequestEncoder,
    /// The protobuf of the request being sealed, reused.
    proto: Vec<u8>,
    batch_size: usize,
}

impl OtlpCodec {
    pub fn new(settings: &OtlpSettings) -> Self {
        OtlpCodec {
            gzip: settings.gzip,
            encoder: RequestEncoder::default(),
            proto: Vec::new(),
            batch_size: settings.batch_size,
        }
    }
}

/// [`Streams`] read through the batches their entries live in.
struct View<'a> {
    streams: &'a Streams,
    batches: &'a [Arc<Batch>],
}

impl RecordSource for View<'_> {
    fn stream_count(&self) -> usize {
        self.streams.streams.len()
    }

    fn labels(&self, stream: usize) -> &LabelSet {
        &self.streams.streams[stream].0
    }

    fn entry_count(&self, stream: usize) -> usize {
        self.streams.streams[stream].1.len()
    }

    fn entry(&self, stream: usize, i: usize) -> &Entry {
        let (b, e) = self.streams.streams[stream].1[i];
        &self.batches[b as usize].entries[e as usize]
    }
}

/// A string attribute.
pub fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

/// A resource of `labels`, holding `records`.
pub fn resource_logs(labels: &LabelSet, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: labels
                .labels()
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| attribute(k, v))
                .collect(),
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: SCOPE.into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl Codec for OtlpCodec {
    type Open = Streams;
    type Admitted = ();

    fn admit(&mut self, entry: &Entry) -> Option<(Arc<str>, usize, ())> {
        Some((Arc::from(""), entry.size(), ()))
    }

    fn add(&mut self, open: &mut Streams, batch: u32, index: u32, entry: &Entry, _: ()) {
        let same = open
            .streams
            .last()
            .is_some_and(|(labels, _)| Arc::ptr_eq(labels, &entry.labels));
        let found = if same {
            Some(open.streams.len() - 1)
        } else {
            open.index.get(entry.labels.rendered()).copied()
        };
        let at = found.unwrap_or_else(|| {
            open.streams.push((entry.labels.clone(), Vec::new()));
            let at = open.streams.len() - 1;
            open.index.insert(entry.labels.rendered().into(), at);
            at
        });
        open.streams[at].1.push((batch, index));
    }

    fn seal(&mut self, open: &mut Streams, batches: &[Arc<Batch>]) -> Bytes {
        let view = View {
            streams: open,
            batches,
        };
        self.encoder.encode(&view, &mut self.proto);
        open.streams.clear();
        open.index.clear();
        let body = compress(&self.proto, self.gzip);
        crate::memory::release_beyond(&mut self.proto, 4 * self.batch_size);
        body
    }
}
