//! A hand-rolled encoder for `logproto.PushRequest` (see `push.proto`): it writes the protobuf straight
//! from the entries a batch already holds, so no line is copied into an intermediate message, then
//! snappy-compresses it (block format, as Loki expects). Both buffers are reused between requests.
//! `logproto.rs` holds the prost structs the tests decode with; a test below checks the two agree.

use crate::entry::Entry;

use crate::sink::protobuf::{field_len, put_key, put_str, put_varint, varint_len, LEN, VARINT};

/// The streams of one push: each stream's rendered label set and its entries, every entry with the
/// length of its line to send (shorter than the line when `max_line_size_truncate` cut it).
pub trait PushSource {
    fn stream_count(&self) -> usize;
    fn labels(&self, stream: usize) -> &str;
    fn entry_count(&self, stream: usize) -> usize;
    fn entry(&self, stream: usize, i: usize) -> (&Entry, usize);
}

#[derive(Default)]
pub struct PushEncoder {
    proto: Vec<u8>,
    compressed: Vec<u8>,
    snappy: Option<snap::raw::Encoder>,
}

impl PushEncoder {
    /// Encode and compress; returns (uncompressed protobuf size, compressed body).
    pub fn encode<P: PushSource + ?Sized>(&mut self, push: &P) -> (usize, &[u8]) {
        self.proto.clear();
        for s in 0..push.stream_count() {
            let body = stream_len(push, s);
            put_key(&mut self.proto, 1, LEN);
            put_varint(&mut self.proto, body as u64);
            put_str(&mut self.proto, 1, push.labels(s));
            for i in 0..push.entry_count(s) {
                let (e, line_len) = push.entry(s, i);
                put_key(&mut self.proto, 2, LEN);
                put_varint(&mut self.proto, entry_len(e, line_len) as u64);
                put_entry(&mut self.proto, e, line_len);
            }
        }
        let max = snap::raw::max_compress_len(self.proto.len());
        if self.compressed.len() < max {
            // Zeroed only when it grows: snappy overwrites what it uses.
            self.compressed.resize(max, 0);
        }
        let encoder = self.snappy.get_or_insert_with(snap::raw::Encoder::new);
        let n = encoder
            .compress(&self.proto, &mut self.compressed[..])
            .expect("snappy output buffer sized by max_compress_len");
        (self.proto.len(), &self.compressed[..n])
    }

    /// Frees the buffers if a push of huge lines grew them past `keep` bytes (see
    /// [`crate::memory`]); smaller ones are kept for the next push.
    pub fn release_beyond(&mut self, keep: usize) {
        crate::memory::release_beyond(&mut self.proto, keep);
        if self.compressed.capacity() > keep {
            crate::memory::release_beyond(&mut self.compressed, keep);
        }
    }
}

fn stream_len<P: PushSource + ?Sized>(push: &P, s: usize) -> usize {
    let mut n = field_len(1, push.labels(s).len());
    for i in 0..push.entry_count(s) {
        let (e, line_len) = push.entry(s, i);
        n += field_len(2, entry_len(e, line_len));
    }
    n
}

fn timestamp_len(ts: i64) -> usize {
    let (secs, nanos) = split_ts(ts);
    let mut n = 0;
    if secs != 0 {
        n += 1 + varint_len(secs as u64);
    }
    if nanos != 0 {
        n += 1 + varint_len(nanos as u64);
    }
    n
}

fn entry_len(e: &Entry, line_len: usize) -> usize {
    let mut n = field_len(1, timestamp_len(e.timestamp));
    n += field_len(2, line_len);
    for (name, value) in &e.metadata {
        n += field_len(3, field_len(1, name.len()) + field_len(2, value.len()));
    }
    n
}

fn put_entry(out: &mut Vec<u8>, e: &Entry, line_len: usize) {
    let (secs, nanos) = split_ts(e.timestamp);
    put_key(out, 1, LEN);
    put_varint(out, timestamp_len(e.timestamp) as u64);
    if secs != 0 {
        put_key(out, 1, VARINT);
        put_varint(out, secs as u64);
    }
    if nanos != 0 {
        put_key(out, 2, VARINT);
        put_varint(out, nanos as u64);
    }
    put_str(out, 2, &e.line[..line_len]);
    for (name, value) in &e.metadata {
        put_key(out, 3, LEN);
        put_varint(
            out,
            (field_len(1, name.len()) + field_len(2, value.len())) as u64,
        );
        put_str(out, 1, name);
        put_str(out, 2, value);
    }
}

fn split_ts(ts: i64) -> (i64, i32) {
    (
        ts.div_euclid(1_000_000_000),
        ts.rem_euclid(1_000_000_000) as i32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{LabelSet, Labels};
    use crate::sink::loki::logproto;

    struct S {
        labels: String,
        entries: Vec<Entry>,
    }

    impl PushSource for [S] {
        fn stream_count(&self) -> usize {
            self.len()
        }
        fn labels(&self, s: usize) -> &str {
            &self[s].labels
        }
        fn entry_count(&self, s: usize) -> usize {
            self[s].entries.len()
        }
        fn entry(&self, s: usize, i: usize) -> (&Entry, usize) {
            let e = &self[s].entries[i];
            (e, if s == 0 && i == 1 { 3 } else { e.line.len() })
        }
    }

    #[test]
    fn prost_decodes_what_we_encode() {
        let labels = LabelSet::new(Labels::from([("job".to_string(), "x".to_string())]));
        let mk = |ts: i64, line: &str, md: Vec<(String, String)>| Entry {
            timestamp: ts,
            line: line.to_string(),
            labels: labels.clone(),
            metadata: md,
            extracted: None,
        };
        let streams = [
            S {
                labels: labels.rendered().to_string(),
                entries: vec![
                    mk(1_556_590_361_844_351_500, "héllo", vec![]),
                    mk(
                        -1,
                        "truncated line",
                        vec![("trace_id".into(), "abc".into())],
                    ),
                    mk(0, "", vec![]),
                ],
            },
            S {
                labels: "{a=\"b\"}".into(),
                entries: vec![mk(5_000_000_000, &"x".repeat(300), vec![])],
            },
        ];
        let mut enc = PushEncoder::default();
        let (raw, body) = enc.encode(&streams[..]);
        let body = body.to_vec();
        let req = logproto::decode_push(&body).unwrap();
        assert!(raw > 300);
        assert_eq!(req.streams.len(), 2);
        let s0 = &req.streams[0];
        assert_eq!(s0.labels, "{job=\"x\"}");
        assert_eq!(s0.entries.len(), 3);
        let ts = s0.entries[0].timestamp.clone().unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_556_590_361, 844_351_500));
        assert_eq!(s0.entries[0].line, "héllo");
        assert_eq!(s0.entries[1].line, "tru");
        let ts1 = s0.entries[1].timestamp.clone().unwrap();
        assert_eq!((ts1.seconds, ts1.nanos), (-1, 999_999_999));
        assert_eq!(s0.entries[1].structured_metadata[0].name, "trace_id");
        assert_eq!(s0.entries[1].structured_metadata[0].value, "abc");
        assert_eq!(s0.entries[2].line, "");
        assert_eq!(req.streams[1].entries[0].line.len(), 300);
        // Buffers are reused: a second, smaller request decodes alone.
        let (_, body2) = enc.encode(&streams[1..]);
        let req2 = logproto::decode_push(body2).unwrap();
        assert_eq!(req2.streams.len(), 1);
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (u64::MAX, 10),
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), n);
            assert_eq!(varint_len(v), n, "{v}");
        }
    }
}
