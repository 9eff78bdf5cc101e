//! Entries into one push: grouped into streams by their final label set (entry labels merged with the
//! client's `external_labels`, the entry winning), in arrival order, per tenant, then encoded
//! ([`PushEncoder`]) and snappy-compressed once. Lines past `limits_config.max_line_size` are dropped
//! or cut here, before they are buffered, as Promtail does before sending.
//!
//! A push being filled refers to entries by (batch, index) in the batches the batcher holds, so the
//! encoder reads every line in place.

use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::config::LokiSettings;
use super::encode::{PushEncoder, PushSource};
use crate::entry::{Batch, Entry, LabelSet, Labels};
use crate::metrics::{HostLabel, Metrics};
use crate::sink::core::Codec;

/// How many distinct label sets the merge cache remembers before it starts over.
const LABEL_CACHE_MAX: usize = 10_000;

/// A label set as this sink sends it: the entry's `Arc` (kept so its address stays unique while
/// cached), the rendered labels with external labels merged, and the tenant.
type ResolvedLabels = (Arc<LabelSet>, Arc<str>, Arc<str>);

struct EntryRef {
    batch: u32,
    entry: u32,
    line_len: u32,
}

struct Stream {
    labels: Arc<str>,
    entries: Vec<EntryRef>,
}

/// The streams of a push being filled.
#[derive(Default)]
pub struct Streams {
    streams: Vec<Stream>,
    /// By the rendered labels (FxHash: this lookup runs for every entry that changes stream).
    index: FxHashMap<Arc<str>, usize>,
    /// Entry lists of sealed pushes, emptied, for the next push's streams (a push of one file's
    /// lines is one list of thousands: growing it anew each time costs reallocations).
    spare: Vec<Vec<EntryRef>>,
}

/// Spare entry lists kept at most.
const SPARE_MAX: usize = 64;

impl Streams {
    fn push(&mut self, labels: &Arc<str>, entry: EntryRef) {
        // Consecutive entries mostly belong to one stream (one file's chunk): skip the hash lookup.
        let last = self.streams.len().wrapping_sub(1);
        let same = self
            .streams
            .last()
            .is_some_and(|s| Arc::ptr_eq(&s.labels, labels));
        let found = if same {
            Some(last)
        } else {
            self.index.get(labels).copied()
        };
        let idx = match found {
            Some(i) => i,
            None => {
                self.streams.push(Stream {
                    labels: labels.clone(),
                    entries: self.spare.pop().unwrap_or_default(),
                });
                self.index.insert(labels.clone(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[idx].entries.push(entry);
    }
}

/// [`Streams`] read through the batches their entries live in.
struct View<'a> {
    streams: &'a Streams,
    batches: &'a [Arc<Batch>],
}

impl PushSource for View<'_> {
    fn stream_count(&self) -> usize {
        self.streams.streams.len()
    }

    fn labels(&self, stream: usize) -> &str {
        &self.streams.streams[stream].labels
    }

    fn entry_count(&self, stream: usize) -> usize {
        self.streams.streams[stream].entries.len()
    }

    fn entry(&self, stream: usize, i: usize) -> (&Entry, usize) {
        let r = &self.streams.streams[stream].entries[i];
        (
            &self.batches[r.batch as usize].entries[r.entry as usize],
            r.line_len as usize,
        )
    }
}

pub struct LokiCodec {
    settings: LokiSettings,
    metrics: Arc<Metrics>,
    host: HostLabel,
    encoder: PushEncoder,
    /// Entry label set → (final rendered labels, tenant). Keyed by the `Arc`'s address; the `Arc` is
    /// kept in the value so the address cannot be reused while cached.
    labels: FxHashMap<usize, ResolvedLabels>,
    /// The last label set resolved: a chunk's entries share one.
    last: Option<ResolvedLabels>,
}

impl LokiCodec {
    pub fn new(settings: LokiSettings, metrics: Arc<Metrics>) -> Self {
        let host = HostLabel {
            host: settings.host.clone(),
        };
        LokiCodec {
            settings,
            metrics,
            host,
            encoder: PushEncoder::default(),
            labels: FxHashMap::default(),
            last: None,
        }
    }

    /// The label string a stream is sent with (entry labels over external labels) and its tenant.
    fn resolve(&mut self, labels: &Arc<LabelSet>) -> (Arc<str>, Arc<str>) {
        if let Some((cached, rendered, tenant)) = &self.last {
            if Arc::ptr_eq(cached, labels) {
                return (rendered.clone(), tenant.clone());
            }
        }
        let key = Arc::as_ptr(labels) as usize;
        if let Some((_, rendered, tenant)) = self.labels.get(&key) {
            self.last = Some((labels.clone(), rendered.clone(), tenant.clone()));
            return (rendered.clone(), tenant.clone());
        }
        if self.labels.len() >= LABEL_CACHE_MAX {
            self.labels.clear();
        }
        let settings = &self.settings;
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
}

impl Codec for LokiCodec {
    type Open = Streams;
    /// The stream's labels, and the bytes of the line to send.
    type Admitted = (Arc<str>, usize);

    fn admit(&mut self, e: &Entry) -> Option<(Arc<str>, usize, Self::Admitted)> {
        let (labels, tenant) = self.resolve(&e.labels);
        let max_line = self.settings.max_line_size;
        let mut line_len = e.line.len();
        if max_line > 0 && line_len > max_line {
            let label = Metrics::drop_label(&self.host.host, &tenant, "line_too_long");
            if !self.settings.truncate_long_lines {
                self.metrics.dropped_entries.get_or_create(&label).inc();
                self.metrics
                    .dropped_bytes
                    .get_or_create(&label)
                    .inc_by(e.line.len() as u64);
                return None;
            }
            line_len = floor_char_boundary(&e.line, max_line);
            self.metrics.mutated_entries.get_or_create(&label).inc();
            self.metrics
                .mutated_bytes
                .get_or_create(&label)
                .inc_by((e.line.len() - line_len) as u64);
        }
        let size = e.size() - (e.line.len() - line_len);
        Some((tenant, size, (labels, line_len)))
    }

    fn add(
        &mut self,
        open: &mut Streams,
        batch: u32,
        index: u32,
        _: &Entry,
        (labels, line_len): Self::Admitted,
    ) {
        open.push(
            &labels,
            EntryRef {
                batch,
                entry: index,
                line_len: line_len as u32,
            },
        );
    }

    fn seal(&mut self, open: &mut Streams, batches: &[Arc<Batch>]) -> Bytes {
        let view = View {
            streams: open,
            batches,
        };
        let (_, body) = self.encoder.encode(&view);
        let body = Bytes::copy_from_slice(body);
        self.encoder.release_beyond(2 * self.settings.batch_size);
        self.metrics
            .encoded_bytes
            .get_or_create(&self.host)
            .inc_by(body.len() as u64);
        for stream in open.streams.drain(..) {
            if open.spare.len() < SPARE_MAX {
                let mut entries = stream.entries;
                entries.clear();
                open.spare.push(entries);
            }
        }
        open.index.clear();
        body
    }
}

/// The largest index ≤ `max` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
