//! A push being assembled: entries grouped into streams by their final label set (entry labels merged
//! with the client's `external_labels`, the entry winning), in arrival order, cut by `batchsize` bytes.
//!
//! The pending push holds the batches it draws from (`Arc`s, shared with the other sinks) and refers to
//! entries by index, so the encoder reads every line in place.

use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::encode::PushSource;
pub use crate::delivery::PartAck;
use crate::entry::{Batch, Entry};

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
        if self.entries == 0 {
            // A push's age (for `batchwait`) starts at its first entry, not when the last one left.
            self.created = Instant::now();
        }
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

/// Some of a push's entries: for each stream it touches, a run of that stream's entries. A push Loki
/// refuses as a whole (400) is resent in such halves until the entries it refuses stand alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// (stream index, first entry, end entry), streams in the push's order.
    spans: Vec<(usize, usize, usize)>,
    pub entries: usize,
    /// Bytes as the push counts them (line as sent plus structured metadata).
    pub bytes: usize,
}

impl Part {
    /// All of `push`.
    pub fn whole(push: &PendingPush) -> Part {
        Part {
            spans: (0..push.streams.len())
                .map(|s| (s, 0, push.streams[s].entries.len()))
                .collect(),
            entries: push.entries,
            bytes: push.bytes,
        }
    }

    /// The first and the second half of this part by entries (the first one is smaller by at most
    /// one entry). A part of one entry has no halves.
    pub fn halves(&self, push: &PendingPush) -> Option<(Part, Part)> {
        if self.entries < 2 {
            return None;
        }
        let mut left = Part::empty();
        let mut right = Part::empty();
        let mut want = self.entries / 2;
        for &(s, start, end) in &self.spans {
            let take = want.min(end - start);
            want -= take;
            if take > 0 {
                left.add(push, s, start, start + take);
            }
            if start + take < end {
                right.add(push, s, start + take, end);
            }
        }
        Some((left, right))
    }

    fn empty() -> Part {
        Part {
            spans: Vec::new(),
            entries: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, push: &PendingPush, stream: usize, start: usize, end: usize) {
        self.spans.push((stream, start, end));
        self.entries += end - start;
        self.bytes += (start..end)
            .map(|i| {
                let (e, line_len) = push.entry(stream, i);
                e.size() - (e.line.len() - line_len)
            })
            .sum::<usize>();
    }

    /// This part of `push`, to encode or to dead-letter.
    pub fn of<'a>(&'a self, push: &'a PendingPush) -> PartOf<'a> {
        PartOf { push, part: self }
    }
}

/// A [`Part`] read through its push.
pub struct PartOf<'a> {
    push: &'a PendingPush,
    part: &'a Part,
}

impl PushSource for PartOf<'_> {
    fn stream_count(&self) -> usize {
        self.part.spans.len()
    }

    fn labels(&self, stream: usize) -> &str {
        self.push.labels(self.part.spans[stream].0)
    }

    fn entry_count(&self, stream: usize) -> usize {
        let (_, start, end) = self.part.spans[stream];
        end - start
    }

    fn entry(&self, stream: usize, i: usize) -> (&Entry, usize) {
        let (s, start, _) = self.part.spans[stream];
        self.push.entry(s, start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::testing::entry;

    /// A push of two streams (3 and 2 entries, interleaved in the batch).
    fn push() -> PendingPush {
        let lines = ["a0", "b0", "a1", "b1", "a2"];
        let batch = Arc::new(Batch {
            entries: lines.iter().map(|l| entry(l, &[])).collect(),
        });
        let mut push = PendingPush::new();
        let b = push.attach(&batch, None);
        for (i, l) in lines.iter().enumerate() {
            let stream: Arc<str> = if l.starts_with('a') {
                "{s=\"a\"}"
            } else {
                "{s=\"b\"}"
            }
            .into();
            push.push(&stream, b, i as u32, l.len(), l.len());
        }
        push
    }

    fn lines(part: &Part, push: &PendingPush) -> Vec<String> {
        let view = part.of(push);
        (0..view.stream_count())
            .flat_map(|s| (0..view.entry_count(s)).map(move |i| (s, i)))
            .map(|(s, i)| format!("{}:{}", view.labels(s), view.entry(s, i).0.line))
            .collect()
    }

    #[test]
    fn halves_split_a_push_by_entries_down_to_single_entries() {
        let push = push();
        let whole = Part::whole(&push);
        assert_eq!((whole.entries, whole.bytes), (5, 10));
        let (first, second) = whole.halves(&push).unwrap();
        // Stream order and entry order are kept; the second half takes the odd entry.
        assert_eq!(lines(&first, &push), ["{s=\"a\"}:a0", "{s=\"a\"}:a1"]);
        assert_eq!(
            lines(&second, &push),
            ["{s=\"a\"}:a2", "{s=\"b\"}:b0", "{s=\"b\"}:b1"]
        );
        assert_eq!(
            (first.entries, first.bytes, second.entries, second.bytes),
            (2, 4, 3, 6)
        );
        let (a, b) = second.halves(&push).unwrap();
        assert_eq!(lines(&a, &push), ["{s=\"a\"}:a2"]);
        assert_eq!(lines(&b, &push), ["{s=\"b\"}:b0", "{s=\"b\"}:b1"]);
        assert!(a.halves(&push).is_none(), "one entry has no halves");
    }
}
