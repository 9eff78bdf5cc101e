//! A batch's on-disk form in the buffer: compact, versioned, and written without serde so that the
//! buffer costs little per entry. Label sets are written once per record and referred to by index, so a
//! batch from one file stores its labels once.
//!
//! ```text
//! version u8 = 1
//! label sets: varint count, then per set: varint pairs, then (str name, str value) per pair
//! entries:    varint count, then per entry: varint set index, zigzag varint timestamp, str line,
//!             varint metadata count, (str name, str value) per pair
//! str = varint length + UTF-8 bytes
//! ```

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::entry::{Entry, LabelSet, Labels};

const VERSION: u8 = 1;

pub fn encode(entries: &[Entry], out: &mut Vec<u8>) {
    out.push(VERSION);
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
    }
}

/// Decode a record written by [`encode`]; `Err` describes why it cannot be read.
pub fn decode(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Cursor { data, at: 0 };
    let version = r.byte()?;
    if version != VERSION {
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
        entries.push(Entry {
            timestamp,
            line,
            labels,
            metadata,
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
            },
            Entry {
                timestamp: -5,
                line: String::new(),
                labels: b.clone(),
                metadata: vec![("trace_id".into(), "t1".into())],
            },
            Entry {
                timestamp: 0,
                line: "x".repeat(70_000),
                labels: a.clone(),
                metadata: vec![],
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
        assert!(decode(&[2]).is_err(), "unknown version");
    }
}
