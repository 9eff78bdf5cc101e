//! The NDJSON of a `_bulk` request: for every entry an action line naming its index, then the document:
//!
//! ```text
//! {"index":{"_index":"logs-2026.02.01"}}
//! {"@timestamp":"2026-02-01T13:00:00.123456789Z","message":"GET /x 200","labels":{"job":"nginx"},"structured_metadata":{"trace_id":"abc"}}
//! ```
//!
//! * `@timestamp` is RFC 3339 in UTC with nanoseconds (Elasticsearch's `date_nanos` keeps them all; a
//!   `date` field keeps milliseconds).
//! * `message` is the line; serde_json escapes it, so the document is valid JSON whatever the line holds
//!   (quotes, control characters, a line that is itself JSON).
//! * Labels are nested under `labels_key`; hidden labels (`__tenant_id__`) are left out. A label set is
//!   rendered once and kept, keyed by its `Arc` as the Loki sink does, since a file's lines share one.
//! * Structured metadata is nested under `metadata_key`; a name given twice keeps its last value (a
//!   JSON object must not repeat a key: Elasticsearch rejects the document).
//! * With `extracted_fields`, the values the stages extracted are nested under `extracted_key`
//!   (`"extracted":{"level":"warn","latency":0.25}`) with their JSON types (numbers as Go's float64
//!   writes them), or written at the top when the key is empty, leaving out a name that is already a
//!   document field. The pipeline keeps them on the entry only when some sink asks for them.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::config::{ExtractedFields, OpType};
use crate::entry::civil_from_days;
use crate::entry::{Entry, LabelSet};
use crate::stage::gojson;

/// How many distinct label sets the cache keeps before it starts over.
const LABEL_CACHE_MAX: usize = 10_000;

pub struct DocEncoder {
    op: &'static str,
    /// `"labels":` with the key escaped.
    labels_key: Vec<u8>,
    metadata_key: Vec<u8>,
    extracted: ExtractedFields,
    /// `"extracted":`, or empty for fields at the top of the document.
    extracted_key: Vec<u8>,
    /// Top-level names extracted values may not take (with an empty `extracted_key`).
    reserved: [String; 4],
    /// A value's JSON text while it is written.
    scratch: String,
    labels: FxHashMap<usize, (Arc<LabelSet>, Arc<[u8]>)>,
    last_labels: Option<(Arc<LabelSet>, Arc<[u8]>)>,
    /// The second last formatted, and `"YYYY-MM-DDTHH:MM:SS.` for it.
    last_second: Option<(i64, [u8; 21])>,
}

impl DocEncoder {
    pub fn new(op: OpType, labels_key: &str, metadata_key: &str) -> Self {
        let key = |k: &str| {
            let mut v = serde_json::to_vec(k).expect("a string serializes");
            v.push(b':');
            v
        };
        DocEncoder {
            op: match op {
                OpType::Index => "index",
                OpType::Create => "create",
            },
            labels_key: key(labels_key),
            metadata_key: key(metadata_key),
            extracted: ExtractedFields::None,
            extracted_key: Vec::new(),
            reserved: [
                "@timestamp".into(),
                "message".into(),
                labels_key.into(),
                metadata_key.into(),
            ],
            scratch: String::new(),
            labels: FxHashMap::default(),
            last_labels: None,
            last_second: None,
        }
    }

    /// Documents also get the extracted values `fields` selects, under `key` (top level if empty).
    pub fn with_extracted(mut self, fields: &ExtractedFields, key: &str) -> Self {
        self.extracted = fields.clone();
        self.extracted_key = if key.is_empty() {
            Vec::new()
        } else {
            let mut k = serde_json::to_vec(key).expect("a string serializes");
            k.push(b':');
            k
        };
        self
    }

    /// The action line for documents going to `index`, newline included.
    pub fn action(&self, index: &str) -> Vec<u8> {
        let mut out = format!("{{\"{}\":{{\"_index\":", self.op).into_bytes();
        json_string(&mut out, index);
        out.extend_from_slice(b"}}\n");
        out
    }

    /// Appends `entry`'s document and its newline to `out`.
    pub fn encode(&mut self, out: &mut Vec<u8>, entry: &Entry) {
        out.extend_from_slice(b"{\"@timestamp\":");
        self.timestamp(out, entry.timestamp);
        out.extend_from_slice(b",\"message\":");
        json_string(out, &entry.line);
        let labels = self.labels_json(&entry.labels);
        if !labels.is_empty() {
            out.push(b',');
            out.extend_from_slice(&self.labels_key);
            out.extend_from_slice(&labels);
        }
        if !entry.metadata.is_empty() {
            out.push(b',');
            out.extend_from_slice(&self.metadata_key);
            metadata_json(out, &entry.metadata);
        }
        if let Some(fields) = &entry.extracted {
            self.extracted_json(out, fields);
        }
        out.extend_from_slice(b"}\n");
    }

    /// `,"extracted":{...}` (or `,"a":..,"b":..` at the top) for the fields this sink takes.
    fn extracted_json(&mut self, out: &mut Vec<u8>, fields: &[(String, serde_json::Value)]) {
        let top = self.extracted_key.is_empty();
        let mut opened = false;
        for (name, value) in fields {
            let wanted = match &self.extracted {
                ExtractedFields::None => false,
                ExtractedFields::All => true,
                ExtractedFields::Names(names) => names.contains(name),
            };
            if !wanted || (top && self.reserved.contains(name)) {
                continue;
            }
            out.push(b',');
            if !top && !opened {
                out.extend_from_slice(&self.extracted_key);
                out.push(b'{');
                opened = true;
            }
            json_string(out, name);
            out.push(b':');
            self.scratch.clear();
            gojson::write_value(&mut self.scratch, value);
            out.extend_from_slice(self.scratch.as_bytes());
        }
        if opened {
            out.push(b'}');
        }
    }

    fn timestamp(&mut self, out: &mut Vec<u8>, ts: i64) {
        let secs = ts.div_euclid(1_000_000_000);
        let nanos = ts.rem_euclid(1_000_000_000);
        let prefix = match &self.last_second {
            Some((s, p)) if *s == secs => p,
            _ => {
                let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
                let rem = secs.rem_euclid(86_400);
                let text = format!(
                    "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
                    rem / 3600,
                    (rem % 3600) / 60,
                    rem % 60
                );
                let mut p = [b'0'; 21];
                // Years past 9999 do not fit: clamp them rather than write a malformed date.
                let bytes = text.as_bytes();
                p.copy_from_slice(&bytes[bytes.len().saturating_sub(21)..]);
                p[0] = b'"';
                &self.last_second.insert((secs, p)).1
            }
        };
        out.extend_from_slice(prefix);
        let mut digits = [b'0'; 9];
        let mut n = nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&digits);
        out.extend_from_slice(b"Z\"");
    }

    /// `{"job":"app",...}` for a label set, empty when it has no visible label.
    fn labels_json(&mut self, labels: &Arc<LabelSet>) -> Arc<[u8]> {
        if let Some((set, json)) = &self.last_labels {
            if Arc::ptr_eq(set, labels) {
                return json.clone();
            }
        }
        let key = Arc::as_ptr(labels) as usize;
        let json = match self.labels.get(&key) {
            Some((_, json)) => json.clone(),
            None => {
                if self.labels.len() >= LABEL_CACHE_MAX {
                    self.labels.clear();
                }
                let json: Arc<[u8]> = render_labels(labels).into();
                self.labels.insert(key, (labels.clone(), json.clone()));
                json
            }
        };
        self.last_labels = Some((labels.clone(), json.clone()));
        json
    }
}

fn render_labels(labels: &LabelSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for (name, value) in labels.labels() {
        if name.starts_with("__") {
            continue;
        }
        out.push(if out.is_empty() { b'{' } else { b',' });
        json_string(&mut out, name);
        out.push(b':');
        json_string(&mut out, value);
    }
    if !out.is_empty() {
        out.push(b'}');
    }
    out
}

fn metadata_json(out: &mut Vec<u8>, metadata: &[(String, String)]) {
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in metadata.iter().enumerate() {
        if metadata[i + 1..].iter().any(|(n, _)| n == name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        json_string(out, name);
        out.push(b':');
        json_string(out, value);
    }
    out.push(b'}');
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing a string to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Labels;

    fn entry(ts: i64, line: &str, labels: &[(&str, &str)], metadata: &[(&str, &str)]) -> Entry {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Entry {
            timestamp: ts,
            line: line.into(),
            labels: LabelSet::new(labels),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extracted: None,
        }
    }

    fn doc(enc: &mut DocEncoder, e: &Entry) -> serde_json::Value {
        let mut out = Vec::new();
        enc.encode(&mut out, e);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn documents_are_valid_json_whatever_the_line() {
        let mut enc = DocEncoder::new(OpType::Index, "labels", "structured_metadata");
        for line in [
            "plain",
            "quote \" backslash \\ tab \t nul \0 bell \u{7} newline \n",
            r#"{"already":"json"}"#,
            "é ☃ 𝄞",
            "",
        ] {
            let e = entry(1_769_950_800_123_456_789, line, &[("job", "app")], &[]);
            let v = doc(&mut enc, &e);
            assert_eq!(v["message"], line);
            assert_eq!(v["@timestamp"], "2026-02-01T13:00:00.123456789Z");
            assert_eq!(v["labels"], serde_json::json!({"job": "app"}));
        }
    }

    #[test]
    fn labels_and_metadata_nest_under_their_keys() {
        let mut enc = DocEncoder::new(OpType::Create, "stream", "meta");
        let e = entry(
            0,
            "x",
            &[("job", "a\"b"), ("__tenant_id__", "t"), ("host", "h")],
            &[("trace", "1"), ("span", "2"), ("trace", "3")],
        );
        let v = doc(&mut enc, &e);
        assert_eq!(v["@timestamp"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(v["stream"], serde_json::json!({"job": "a\"b", "host": "h"}));
        assert_eq!(v["meta"], serde_json::json!({"span": "2", "trace": "3"}));
        let again = doc(&mut enc, &e);
        assert_eq!(again, v, "from the caches");
        let bare = doc(&mut enc, &entry(-1, "y", &[], &[]));
        assert_eq!(bare["@timestamp"], "1969-12-31T23:59:59.999999999Z");
        assert!(bare.get("stream").is_none() && bare.get("meta").is_none());
        assert_eq!(
            enc.action("logs-x"),
            b"{\"create\":{\"_index\":\"logs-x\"}}\n".to_vec()
        );
    }

    #[test]
    fn extracted_fields_nest_or_go_to_the_top_with_their_types() {
        use serde_json::json;
        let mut e = entry(0, "GET /", &[("job", "web")], &[]);
        e.extracted = Some(Box::new(vec![
            ("level".into(), json!("warn")),
            ("latency".into(), json!(0.25)),
            ("status".into(), json!(200.0)),
            ("ok".into(), json!(true)),
            ("user".into(), serde_json::Value::Null),
            ("message".into(), json!("from a stage")),
        ]));
        let mut all = DocEncoder::new(OpType::Index, "labels", "structured_metadata")
            .with_extracted(&ExtractedFields::All, "extracted");
        let v = doc(&mut all, &e);
        assert_eq!(
            v["extracted"],
            json!({"level": "warn", "latency": 0.25, "status": 200, "ok": true, "user": null,
                   "message": "from a stage"})
        );
        assert_eq!(v["message"], "GET /");
        let names = ExtractedFields::Names(vec!["status".into(), "missing".into()]);
        let mut some = DocEncoder::new(OpType::Index, "labels", "structured_metadata")
            .with_extracted(&names, "x");
        assert_eq!(doc(&mut some, &e)["x"], json!({"status": 200}));
        // At the top, a field may not replace the document's own fields.
        let mut top = DocEncoder::new(OpType::Index, "labels", "structured_metadata")
            .with_extracted(&ExtractedFields::All, "");
        let v = doc(&mut top, &e);
        assert_eq!(
            (&v["level"], &v["message"]),
            (&json!("warn"), &json!("GET /"))
        );
        // Nothing selected, or no fields on the entry: no key at all.
        let none = ExtractedFields::Names(vec!["absent".into()]);
        let mut n = DocEncoder::new(OpType::Index, "labels", "structured_metadata")
            .with_extracted(&none, "extracted");
        assert!(doc(&mut n, &e).get("extracted").is_none());
        assert!(doc(&mut all, &entry(0, "x", &[], &[]))
            .get("extracted")
            .is_none());
    }
}
