//! A push being assembled: entries grouped into streams by their final label set (entry labels merged
//! with the client's `external_labels`, the entry winning), in arrival order, cut by `batchsize` bytes.
//!
//! The pending push holds the batches it draws from (`Arc`s, shared with the other sinks) and refers to
//! entries by index, so the encoder reads every line in place.

use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::encode::PushSource;
use crate::entry::{Batch, Entry};
pub use crate::sink::part_ack::PartAck;

struct EntryRef {
    batch: u32,
    entry: u32,
    line_len: u32,
}

struct Stream {
    labels: Arc<str>,
    entries: Vec<EntryRef>,
}

pub struct PendingPush {
    batches: Vec<Arc<Batch>>,
    streams: Vec<Stream>,
    /// By the rendered labels (FxHash: this lookup runs for every entry that changes stream).
    index: FxHashMap<Arc<str>, usize>,
    acks: Vec<Arc<PartAck>>,
    pub bytes: usize,
    pub entries: usize,
    pub created: Instant,
}

impl PendingPush {
    pub fn new() -> Self {
        PendingPush {
            batches: Vec::new(),
            streams: Vec::new(),
            index: FxHashMap::default(),
            acks: Vec::new(),
            bytes: 0,
            entries: 0,
            created: Instant::now(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Make `batch` addressable by the entries added next; returns its index here.
    pub fn attach(&mut self, batch: &Arc<Batch>, ack: Option<&Arc<PartAck>>) -> u32 {
        if let Some(last) = self.batches.last() {
            if Arc::ptr_eq(last, batch) {
                return (self.batches.len() - 1) as u32;
            }
        }
        self.batches.push(batch.clone());
        if let Some(a) = ack {
            self.acks.push(a.hold());
        }
        (self.batches.len() - 1) as u32
    }

    /// Add entry `entry` of attached batch `batch` to the stream `labels`, sending `line_len` bytes.
    pub fn push(
        &mut self,
        labels: &Arc<str>,
        batch: u32,
        entry: u32,
        line_len: usize,
        size: usize,
    ) {
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
                    entries: Vec::new(),
                });
                self.index.insert(labels.clone(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[idx].entries.push(EntryRef {
            batch,
            entry,
            line_len: line_len as u32,
        });
        self.bytes += size;
        self.entries += 1;
    }

    /// The push is finished with (accepted, or given up for good): release its share of every batch.
    pub fn finish(self) {
        for a in &self.acks {
            a.done();
        }
    }
}

impl Default for PendingPush {
    fn default() -> Self {
        Self::new()
    }
}

impl PushSource for PendingPush {
    fn stream_count(&self) -> usize {
        self.streams.len()
    }

    fn labels(&self, stream: usize) -> &str {
        &self.streams[stream].labels
    }

    fn entry_count(&self, stream: usize) -> usize {
        self.streams[stream].entries.len()
    }

    fn entry(&self, stream: usize, i: usize) -> (&Entry, usize) {
        let r = &self.streams[stream].entries[i];
        (
            &self.batches[r.batch as usize].entries[r.entry as usize],
            r.line_len as usize,
        )
    }
}
