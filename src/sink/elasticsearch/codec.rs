//! Entries into one `_bulk` body: for every entry its action line (the index dated from its
//! timestamp, or the data stream) and its document ([`DocEncoder`]), gzip-compressed when configured.
//! The body's size in NDJSON bytes is what `batchsize` limits.

use std::sync::Arc;

use bytes::Bytes;

use super::config::{Destination, EsSettings};
use super::document::DocEncoder;
use crate::config::IndexNamer;
use crate::entry::{Batch, Entry};
use crate::sink::core::Codec;
use crate::sink::http::compress;

pub struct EsCodec {
    encoder: DocEncoder,
    /// `None` for a data stream: the action line never changes.
    namer: Option<IndexNamer>,
    /// The action line for the current index.
    action: Vec<u8>,
    /// The NDJSON of the request being filled (Elasticsearch has one destination, so one request).
    /// An entry is encoded in place when it is admitted, from `admitted_at` on, and belongs to the
    /// request once added: the batcher may seal the request between the two, and the entry then
    /// starts the next one.
    body: Vec<u8>,
    admitted_at: usize,
    gzip: bool,
    batch_size: usize,
    one: Arc<str>,
}

impl EsCodec {
    pub fn new(settings: &EsSettings) -> Self {
        let encoder = DocEncoder::new(
            settings.op_type,
            &settings.labels_key,
            &settings.metadata_key,
        )
        .with_extracted(&settings.extracted_fields, &settings.extracted_key);
        let (namer, action) = match &settings.target {
            Destination::Index(t) => (Some(IndexNamer::new(t.clone())), Vec::new()),
            Destination::DataStream(name) => (None, encoder.action(name)),
        };
        EsCodec {
            encoder,
            namer,
            action,
            body: Vec::new(),
            admitted_at: 0,
            gzip: settings.gzip,
            batch_size: settings.batch_size,
            one: "".into(),
        }
    }
}

impl Codec for EsCodec {
    /// Nothing: the request being filled is the codec's own `body`.
    type Open = ();
    type Admitted = ();

    fn admit(&mut self, e: &Entry) -> Option<(Arc<str>, usize, ())> {
        if let Some(namer) = &mut self.namer {
            let (index, changed) = namer.name(e.timestamp);
            if changed {
                self.action = self.encoder.action(&index);
            }
        }
        self.admitted_at = self.body.len();
        self.body.extend_from_slice(&self.action);
        self.encoder.encode(&mut self.body, e);
        Some((self.one.clone(), self.body.len() - self.admitted_at, ()))
    }

    fn add(&mut self, _: &mut (), _: u32, _: u32, _: &Entry, _: ()) {
        self.admitted_at = self.body.len();
    }

    fn seal(&mut self, _: &mut (), _: &[Arc<Batch>]) -> Bytes {
        let sealed = compress(&self.body[..self.admitted_at], self.gzip);
        // An entry admitted but not added yet starts the next request.
        self.body.drain(..self.admitted_at);
        self.admitted_at = 0;
        if self.body.is_empty() {
            crate::memory::release_beyond(&mut self.body, 2 * self.batch_size);
        }
        sealed
    }
}
