//! The batcher: entries from the router grouped into requests per destination, each encoded once when
//! it is full or old (see the module doc of `sink::core`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Codec;
use crate::delivery::{Delivery, Done, Outgoing, PartAck, Payload, Request};
use crate::entry::Batch;

/// When a request is full or due.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `batchsize`: a request is cut before the entry that would take it past this many bytes.
    pub bytes: usize,
    /// Entries (documents) a request holds at most.
    pub entries: usize,
    /// `batchwait`: a request is sent once its first entry waited this long.
    pub wait: Duration,
}

/// A request being filled for one destination.
struct Open<O> {
    dest: Arc<str>,
    batches: Vec<Arc<Batch>>,
    acks: Vec<Arc<PartAck>>,
    bytes: usize,
    entries: usize,
    /// When its first entry came.
    since: Instant,
    inner: O,
}

/// A request the batcher finished, with the shares of the source batches it holds.
pub struct Sealed {
    pub request: Request,
    pub acks: Vec<Arc<PartAck>>,
}

impl From<Sealed> for Outgoing {
    fn from(s: Sealed) -> Self {
        Outgoing {
            payload: Payload::Request(s.request),
            done: Done::Parts(s.acks),
        }
    }
}

pub struct Batcher<C: Codec> {
    codec: C,
    limits: Limits,
    open: Vec<Open<C::Open>>,
}

impl<C: Codec> Batcher<C> {
    pub fn new(codec: C, limits: Limits) -> Self {
        Batcher {
            codec,
            limits,
            open: Vec::new(),
        }
    }

    /// Take batches from `input` until it closes, and hand every request that fills up or waited
    /// `batchwait` to `out`; at the end, the rest. Ends early when `out` is gone (the agent gave up).
    pub async fn run(mut self, mut input: mpsc::Receiver<Delivery>, out: mpsc::Sender<Outgoing>) {
        let tick_every = (self.limits.wait / 10).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sealed = Vec::new();
        let mut open = true;
        while open {
            tokio::select! {
                biased;
                msg = input.recv() => match msg {
                    Some(Delivery { batch, ack }) => {
                        let part = ack.map(PartAck::new);
                        self.add(&batch, part.as_ref(), &mut sealed);
                        if let Some(p) = part {
                            // The requests holding its entries have their own shares.
                            p.done();
                        }
                    }
                    None => {
                        open = false;
                        self.due(true, &mut sealed);
                    }
                },
                _ = tick.tick() => self.due(false, &mut sealed),
            }
            for s in sealed.drain(..) {
                if out.send(s.into()).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Add `batch`'s entries, each to its destination's request; requests that fill up go to `out`.
    /// `part` is the batch's acknowledgement: every request holding its entries takes a share.
    pub fn add(&mut self, batch: &Arc<Batch>, part: Option<&Arc<PartAck>>, out: &mut Vec<Sealed>) {
        let limits = self.limits;
        let mut slot = usize::MAX;
        for (i, e) in batch.entries.iter().enumerate() {
            let Some((dest, size, admitted)) = self.codec.admit(e) else {
                continue;
            };
            // Consecutive entries mostly go to one destination, mostly as the same `Arc`.
            let same = |o: &Open<C::Open>| Arc::ptr_eq(&o.dest, &dest) || o.dest == dest;
            if !self.open.get(slot).is_some_and(same) {
                slot = self.slot(dest);
            }
            let open = &self.open[slot];
            if open.entries > 0
                && (open.bytes + size > limits.bytes || open.entries >= limits.entries)
            {
                out.push(self.seal(slot));
            }
            let open = &mut self.open[slot];
            if open.entries == 0 {
                open.since = Instant::now();
            }
            let b = attach(open, batch, part);
            self.codec.add(&mut open.inner, b, i as u32, e, admitted);
            open.bytes += size;
            open.entries += 1;
        }
    }

    /// Requests whose first entry waited `batchwait` (every one when `all`) go to `out`.
    pub fn due(&mut self, all: bool, out: &mut Vec<Sealed>) {
        let wait = self.limits.wait;
        for slot in 0..self.open.len() {
            let o = &self.open[slot];
            if o.entries > 0 && (all || o.since.elapsed() >= wait) {
                out.push(self.seal(slot));
            }
        }
    }

    /// The requests `batch` makes, on their own: for a buffer record of entries (an older release's).
    pub fn encode_all(&mut self, batch: &Arc<Batch>) -> Vec<Request> {
        let mut out = Vec::new();
        self.add(batch, None, &mut out);
        self.due(true, &mut out);
        out.into_iter().map(|s| s.request).collect()
    }

    fn slot(&mut self, dest: Arc<str>) -> usize {
        if let Some(i) = self.open.iter().position(|o| o.dest == dest) {
            return i;
        }
        self.open.push(Open {
            dest,
            batches: Vec::new(),
            acks: Vec::new(),
            bytes: 0,
            entries: 0,
            since: Instant::now(),
            inner: C::Open::default(),
        });
        self.open.len() - 1
    }

    fn seal(&mut self, slot: usize) -> Sealed {
        let open = &mut self.open[slot];
        let body = self.codec.seal(&mut open.inner, &open.batches);
        let request = Request {
            body,
            dest: open.dest.clone(),
            entries: open.entries as u32,
            bytes: open.bytes as u64,
        };
        open.batches.clear();
        open.entries = 0;
        open.bytes = 0;
        Sealed {
            request,
            acks: std::mem::take(&mut open.acks),
        }
    }
}

/// Make `batch` addressable by the entries added to `open` next; its index there.
fn attach<O>(open: &mut Open<O>, batch: &Arc<Batch>, part: Option<&Arc<PartAck>>) -> u32 {
    if let Some(last) = open.batches.last() {
        if Arc::ptr_eq(last, batch) {
            return (open.batches.len() - 1) as u32;
        }
    }
    open.batches.push(batch.clone());
    if let Some(a) = part {
        open.acks.push(a.hold());
    }
    (open.batches.len() - 1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::stage::testing::entry;
    use bytes::Bytes;

    /// Lines joined by `|`; the destination is the line's first character.
    #[derive(Default)]
    struct Joined;

    impl Codec for Joined {
        type Open = Vec<(u32, u32)>;
        type Admitted = ();

        fn admit(&mut self, e: &Entry) -> Option<(Arc<str>, usize, ())> {
            (!e.line.starts_with('x')).then(|| (e.line[..1].into(), e.line.len(), ()))
        }

        fn add(&mut self, open: &mut Self::Open, batch: u32, index: u32, _: &Entry, _: ()) {
            open.push((batch, index));
        }

        fn seal(&mut self, open: &mut Self::Open, batches: &[Arc<Batch>]) -> Bytes {
            let lines: Vec<&str> = open
                .drain(..)
                .map(|(b, i)| batches[b as usize].entries[i as usize].line.as_str())
                .collect();
            Bytes::from(lines.join("|"))
        }
    }

    fn batch(lines: &[&str]) -> Arc<Batch> {
        Arc::new(Batch {
            entries: lines.iter().map(|l| entry(l, &[])).collect(),
        })
    }

    fn bodies(out: &[Sealed]) -> Vec<(String, String)> {
        let body = |r: &Request| String::from_utf8(r.body.to_vec()).unwrap();
        out.iter()
            .map(|s| (s.request.dest.to_string(), body(&s.request)))
            .collect()
    }

    /// A batcher of [`Joined`] cutting at `bytes` or `entries`, never by age.
    fn batcher(bytes: usize, entries: usize) -> Batcher<Joined> {
        let wait = Duration::from_secs(60);
        Batcher::new(
            Joined,
            Limits {
                bytes,
                entries,
                wait,
            },
        )
    }

    #[test]
    fn requests_are_cut_per_destination_before_the_entry_that_overflows() {
        let mut b = batcher(6, 100);
        let mut out = Vec::new();
        b.add(&batch(&["a1", "b1", "a2", "x", "a3", "a4"]), None, &mut out);
        // a1 a2 a3 is 6 bytes: a4 would pass 6.
        assert_eq!(bodies(&out), [("a".into(), "a1|a2|a3".into())]);
        out.clear();
        b.due(false, &mut out);
        assert!(out.is_empty(), "nothing waited batchwait yet");
        b.due(true, &mut out);
        assert_eq!(
            bodies(&out),
            [("a".into(), "a4".into()), ("b".into(), "b1".into())]
        );
        let r = &out[0].request;
        assert_eq!((r.entries, r.bytes), (1, 2));
    }

    #[test]
    fn a_batch_is_acknowledged_when_every_request_holding_it_is_done() {
        let positions = crate::positions::Positions::in_memory();
        let token = crate::delivery::AckToken::new(
            crate::delivery::Commits::new(positions.clone()),
            crate::positions::Checkpoint::Cursor {
                key: "c".into(),
                value: "1".into(),
            },
            1,
        );
        let mut b = batcher(100, 2);
        let mut out = Vec::new();
        let part = PartAck::new(token);
        b.add(&batch(&["a1", "a2", "a3", "b1"]), Some(&part), &mut out);
        part.done();
        assert_eq!(out.len(), 1, "two entries at most");
        b.due(true, &mut out);
        assert_eq!(out.len(), 3);
        let last = Outgoing::from(out.pop().unwrap());
        for s in out {
            Outgoing::from(s).done.finish();
        }
        assert_eq!(positions.cursor("c"), None, "one request still holds it");
        last.done.finish();
        assert_eq!(positions.cursor("c").as_deref(), Some("1"));
    }
}
