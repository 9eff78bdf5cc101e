//! A record's on-disk form in the buffer, written without serde so that the buffer costs little.
//!
//! Since the batcher sits before the buffer, a record is one request exactly as the sink sends it
//! (version 3): the buffer stores the compressed body once, and the sender sends it as it is read.
//!
//! ```text
//! version u8 = 3
//! str dest (the Loki tenant; empty for none), varint entries, varint bytes (as the sink counts them)
//! body: the rest of the record, as sent
//! ```
//!
//! Records of earlier releases hold a batch of entries (versions 1 and 2); they are still read after
//! an upgrade and encoded by the sink then. Label sets are written once per record and referred to by
//! index, so a batch from one file stores its labels once.
//!
//! ```text
//! version u8 = 1 or 2
//! label sets: varint count, then per set: varint pairs, then (str name, str value) per pair
//! entries:    varint count, then per entry: varint set index, zigzag varint timestamp, str line,
//!             varint metadata count, (str name, str value) per pair,
//!             and in version 2 only: varint extracted count, (str name, value) per field
//! value = u8 tag: 0 null, 1 false, 2 true, 3 number (f64, 8 bytes little-endian), 4 str
//! str = varint length + UTF-8 bytes
//! ```
//!
//! Version 2 adds the extracted fields an Elasticsearch sink asked for (`extracted_fields`).

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::{Number, Value};

use crate::delivery::{Payload, Request};
use crate::entry::{Batch, Entry, LabelSet, Labels};

/// Records without extracted fields.
const VERSION_1: u8 = 1;
/// Records whose entries carry extracted fields.
const VERSION_2: u8 = 2;
/// Records holding one encoded request.
const REQUEST: u8 = 3;

/// Append `request` in its record form.
pub fn encode_request(request: &Request, out: &mut Vec<u8>) {
    out.push(REQUEST);
    put_str(out, &request.dest);
    put_varint(out, u64::from(request.entries));
    put_varint(out, request.bytes);
    out.extend_from_slice(&request.body);
}

/// Read a record: a request, or (from an earlier release) a batch of entries.
pub fn decode_record(data: &[u8]) -> Result<Payload, String> {
    if data.first() != Some(&REQUEST) {
        let entries = decode(data)?;
        return Ok(Payload::Entries(std::sync::Arc::new(Batch { entries })));
    }
    let mut r = Cursor { data, at: 1 };
    let dest = r.string()?;
    let entries = r.varint()?;
    let bytes = r.varint()?;
    Ok(Payload::Request(Request {
        body: bytes::Bytes::copy_from_slice(&data[r.at..]),
        dest: dest.into(),
        entries: u32::try_from(entries).map_err(|_| "entry count out of range")?,
        bytes,
    }))
}

/// Append a batch of entries in the record form of earlier releases (versions 1 and 2).
pub fn encode(entries: &[Entry], out: &mut Vec<u8>) {
    let extracted = entries.iter().any(|e| e.extracted.is_some());
    out.push(if extracted { VERSION_2 } else { VERSION_1 });
    let mut index: FxHashMap<*const LabelSet, usize> = FxHashMap::default();
    let mut sets: Vec<&Arc<LabelSet>> = Vec::new();
    let ids: Vec<usize> = entries
        .iter()
        .map(|e| {
            *index.entry(Arc::as_ptr(&e.labels)).or_insert_with(|| {
                sets.push(&e.labels);
                sets.len() - 1
            })
        })
        .collect();
    put_varint(out, sets.len() as u64);
    for set in sets {
        put_varint(out, set.labels().len() as u64);
        for (k, v) in set.labels() {
            put_str(out, k);
            put_str(out, v);
        }
    }
    put_varint(out, entries.len() as u64);
    for (e, id) in entries.iter().zip(ids) {
        put_varint(out, id as u64);
        put_varint(out, ((e.timestamp << 1) ^ (e.timestamp >> 63)) as u64);
        put_str(out, &e.line);
        put_varint(out, e.metadata.len() as u64);
        for (k, v) in &e.metadata {
            put_str(out, k);
            put_str(out, v);
        }
        if extracted {
            let fields = e.extracted.as_deref().map_or(&[][..], Vec::as_slice);
            put_varint(out, fields.len() as u64);
            for (k, v) in fields {
                put_str(out, k);
                put_value(out, v);
            }
        }
    }
}

/// How many entries a record holds, read from its start without decoding the lines: what a buffer
/// that loses records reports as lost lines. `None` if `data` is not a record.
pub fn entry_count(data: &[u8]) -> Option<u64> {
    let mut r = Cursor { data, at: 0 };
    let version = r.byte().ok()?;
    if version == REQUEST {
        r.skip_str().ok()?;
        return r.varint().ok();
    }
    if version != VERSION_1 && version != VERSION_2 {
        return None;
    }
    for _ in 0..r.count().ok()? {
        for _ in 0..r.count().ok()? {
            r.skip_str().ok()?;
            r.skip_str().ok()?;
        }
    }
    r.count().ok().map(|n| n as u64)
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.push(1 + u8::from(*b)),
        Value::Number(n) => {
            out.push(3);
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
        }
        Value::String(s) => {
            out.push(4);
            put_str(out, s);
        }
        // Stages store arrays and objects as their JSON text; should one get here, it stays text.
        other => {
            out.push(4);
            put_str(out, &crate::stage::gojson::to_string(other));
        }
    }
}

/// Decode a record written by [`encode`]; `Err` describes why it cannot be read.
pub fn decode(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Cursor { data, at: 0 };
    let version = r.byte()?;
    if version != VERSION_1 && version != VERSION_2 {
        return Err(format!("unknown record version {version}"));
    }
    let n_sets = r.count()?;
    let mut sets = Vec::with_capacity(n_sets);
    for _ in 0..n_sets {
        let pairs = r.count()?;
        let mut labels = Labels::new();
        for _ in 0..pairs {
            let k = r.string()?;
            labels.insert(k, r.string()?);
        }
        sets.push(LabelSet::new(labels));
    }
    let n = r.count()?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let set = r.varint()? as usize;
        let labels = sets.get(set).ok_or("label set index out of range")?.clone();
        let z = r.varint()?;
        let timestamp = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let line = r.string()?;
        let m = r.count()?;
        let mut metadata = Vec::with_capacity(m);
        for _ in 0..m {
            let k = r.string()?;
            metadata.push((k, r.string()?));
        }
        let mut extracted = None;
        if version == VERSION_2 {
            let n = r.count()?;
            if n > 0 {
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.string()?;
                    fields.push((k, r.value()?));
                }
                extracted = Some(Box::new(fields));
            }
        }
        entries.push(Entry {
            timestamp,
            line,
            labels,
            metadata,
            extracted,
        });
    }
    if r.at != data.len() {
        return Err("trailing bytes after the last entry".into());
    }
    Ok(entries)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.at).ok_or("record ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// A count, bounded by what the record could possibly hold (so damage cannot make us allocate GBs).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()? as usize;
        if n > self.data.len() - self.at {
            return Err("count larger than the record".into());
        }
        Ok(n)
    }

    fn value(&mut self) -> Result<Value, String> {
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => {
                let bytes = self
                    .data
                    .get(self.at..self.at + 8)
                    .ok_or("record ends early")?;
                self.at += 8;
                let f = f64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                Value::Number(Number::from_f64(f).ok_or("number is not finite")?)
            }
            4 => Value::String(self.string()?),
            tag => return Err(format!("unknown value tag {tag}")),
        })
    }

    fn skip_str(&mut self) -> Result<(), String> {
        let n = self.count()?;
        self.at += n;
        Ok(())
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.count()?;
        let bytes = &self.data[self.at..self.at + n];
        self.at += n;
        String::from_utf8(bytes.to_vec()).map_err(|_| "string is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_stored_as_sent_and_batches_of_earlier_releases_still_read() {
        let request = Request {
            body: bytes::Bytes::from_static(b"\x00compressed\xff"),
            dest: "tenant-1".into(),
            entries: 300,
            bytes: 123_456,
        };
        let mut out = Vec::new();
        encode_request(&request, &mut out);
        assert!(out.ends_with(&request.body), "the body is kept as it is");
        assert_eq!(entry_count(&out), Some(300));
        match decode_record(&out).unwrap() {
            Payload::Request(r) => assert_eq!(r, request),
            Payload::Entries(_) => panic!("a request was written"),
        }
        let entries = vec![crate::stage::testing::entry("old", &[("job", "a")])];
        let mut old = Vec::new();
        encode(&entries, &mut old);
        match decode_record(&old).unwrap() {
            Payload::Entries(b) => assert_eq!(b.entries[0].line, "old"),
            Payload::Request(_) => panic!("a batch was written"),
        }
        assert!(decode_record(&[9, 1, 2]).is_err());
    }

    #[test]
    fn entry_count_reads_the_count_without_decoding() {
        let set = LabelSet::new(Labels::from([("job".into(), "a".into())]));
        let entries: Vec<Entry> = (0..3)
            .map(|i| Entry {
                timestamp: i,
                line: format!("line {i}"),
                labels: set.clone(),
                metadata: Vec::new(),
                extracted: None,
            })
            .collect();
        let mut out = Vec::new();
        encode(&entries, &mut out);
        assert_eq!(entry_count(&out), Some(3));
        assert_eq!(entry_count(&[9, 0, 0]), None);
    }

    #[test]
    fn round_trips_entries_sharing_label_sets() {
        let a = LabelSet::new(Labels::from([("job".into(), "a".into())]));
        let b = LabelSet::new(Labels::from([
            ("job".into(), "b".into()),
            ("filename".into(), "/x/é.log".into()),
        ]));
        let entries = vec![
            Entry {
                timestamp: 1_700_000_000_123_456_789,
                line: "first".into(),
                labels: a.clone(),
                metadata: vec![],
                extracted: None,
            },
            Entry {
                timestamp: -5,
                line: String::new(),
                labels: b.clone(),
                metadata: vec![("trace_id".into(), "t1".into())],
                extracted: None,
            },
            Entry {
                timestamp: 0,
                line: "x".repeat(70_000),
                labels: a.clone(),
                metadata: vec![],
                extracted: None,
            },
        ];
        let mut buf = Vec::new();
        encode(&entries, &mut buf);
        let back = decode(&buf).unwrap();
        assert_eq!(back.len(), 3);
        for (x, y) in entries.iter().zip(&back) {
            assert_eq!(
                (x.timestamp, &x.line, &x.metadata),
                (y.timestamp, &y.line, &y.metadata)
            );
            assert_eq!(x.labels.labels(), y.labels.labels());
        }
        assert!(
            Arc::ptr_eq(&back[0].labels, &back[2].labels),
            "shared set stays shared"
        );
    }

    /// A version 1 record exactly as releases before extracted fields wrote it: one label set
    /// `{job="a"}`, one entry at timestamp 5 with line "hi" and metadata `t=1`.
    const V1_RECORD: &[u8] = b"\x01\x01\x01\x03job\x01a\x01\x00\x0a\x02hi\x01\x01t\x011";

    #[test]
    fn old_version_1_records_still_decode() {
        let back = decode(V1_RECORD).unwrap();
        assert_eq!(back.len(), 1);
        let e = &back[0];
        assert_eq!((e.timestamp, e.line.as_str()), (5, "hi"));
        assert_eq!(e.labels.rendered(), r#"{job="a"}"#);
        assert_eq!(e.metadata, vec![("t".to_string(), "1".to_string())]);
        assert!(e.extracted.is_none());
        // Entries without extracted fields are still written as version 1, byte for byte.
        let mut again = Vec::new();
        encode(&back, &mut again);
        assert_eq!(again, V1_RECORD);
    }

    #[test]
    fn extracted_fields_round_trip_in_version_2() {
        use serde_json::json;
        let labels = LabelSet::new(Labels::from([("job".into(), "a".into())]));
        let fields = vec![
            ("level".to_string(), json!("warn")),
            ("latency".to_string(), json!(0.25)),
            ("count".to_string(), json!(3.0)),
            ("ok".to_string(), json!(true)),
            ("no".to_string(), json!(false)),
            ("gone".to_string(), Value::Null),
            ("é".to_string(), json!("ü\n")),
        ];
        let entries = vec![
            Entry {
                timestamp: 1,
                line: "with".into(),
                labels: labels.clone(),
                metadata: vec![("m".into(), "v".into())],
                extracted: Some(Box::new(fields.clone())),
            },
            Entry {
                timestamp: 2,
                line: "without".into(),
                labels,
                metadata: vec![],
                extracted: None,
            },
        ];
        let mut buf = Vec::new();
        encode(&entries, &mut buf);
        assert_eq!(buf[0], 2, "a record with extracted fields is version 2");
        let back = decode(&buf).unwrap();
        assert_eq!(back[0].extracted.as_deref(), Some(&fields));
        assert_eq!(back[0].metadata, entries[0].metadata);
        assert!(back[1].extracted.is_none());
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic_or_a_huge_allocation() {
        let labels = LabelSet::new(Labels::new());
        let mut buf = Vec::new();
        encode(
            &[Entry {
                timestamp: 1,
                line: "line".into(),
                labels,
                metadata: vec![],
                extracted: None,
            }],
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[3] = 0xff;
        bad.splice(4..4, [0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&bad).is_err());
        assert!(decode(&[3]).is_err(), "unknown version");
    }
}
