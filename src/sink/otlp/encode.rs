//! A hand-rolled encoder for `ExportLogsServiceRequest`: it writes the protobuf straight from the
//! entries a request's batches hold, so no line or metadata is copied into prost structs first (which
//! cost this sink a third of its CPU). Each message's length is computed before it is written; the
//! record lengths, the only ones needed twice, are kept between the two passes. A test decodes the
//! output with the prost types of `opentelemetry-proto`.
//!
//! What is written, by field number (`opentelemetry/proto/.../logs.proto`):
//! `ExportLogsServiceRequest{1: ResourceLogs{1: Resource{1: KeyValue*}, 2: ScopeLogs{1: Scope{1: name,
//! 2: version}, 2: LogRecord{1: time_unix_nano, 11: observed_time_unix_nano, 5: body AnyValue{1:
//! string}, 6: KeyValue{1: key, 2: AnyValue{1: string}}*}*}}*}`.

use crate::entry::{Entry, LabelSet};
use crate::sink::protobuf::{field_len, put_fixed64, put_len, put_str};

/// The streams of one request: each stream's labels and its entries.
pub trait RecordSource {
    fn stream_count(&self) -> usize;
    fn labels(&self, stream: usize) -> &LabelSet;
    fn entry_count(&self, stream: usize) -> usize;
    fn entry(&self, stream: usize, i: usize) -> &Entry;
}

/// The scope records are sent under.
const SCOPE_NAME: &str = super::codec::SCOPE;
const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Default)]
pub struct RequestEncoder {
    /// Record lengths of the request being encoded, in order.
    records: Vec<usize>,
}

/// `AnyValue{string_value: s}`.
fn any_string_len(s: &str) -> usize {
    field_len(1, s.len())
}

/// `KeyValue{key, value: AnyValue{string_value: value}}`.
fn key_value_len(key: &str, value: &str) -> usize {
    field_len(1, key.len()) + field_len(2, any_string_len(value))
}

fn put_key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    put_len(out, field, key_value_len(key, value));
    put_str(out, 1, key);
    put_len(out, 2, any_string_len(value));
    put_str(out, 1, value);
}

fn record_len(e: &Entry) -> usize {
    let times = 2 * (1 + 8);
    let body = field_len(5, any_string_len(&e.line));
    let attributes: usize = e
        .metadata
        .iter()
        .map(|(k, v)| field_len(6, key_value_len(k, v)))
        .sum();
    times + body + attributes
}

/// The attributes a resource is sent with: the stream's labels, hidden ones left out.
fn resource_attributes(labels: &LabelSet) -> impl Iterator<Item = (&String, &String)> {
    labels.labels().iter().filter(|(k, _)| !k.starts_with("__"))
}

fn scope_len() -> usize {
    field_len(1, SCOPE_NAME.len()) + field_len(2, SCOPE_VERSION.len())
}

impl RequestEncoder {
    /// The request `source` holds, encoded into `out` (cleared first).
    pub fn encode<S: RecordSource + ?Sized>(&mut self, source: &S, out: &mut Vec<u8>) {
        out.clear();
        for s in 0..source.stream_count() {
            self.records.clear();
            let mut scope_logs = field_len(1, scope_len());
            for i in 0..source.entry_count(s) {
                let len = record_len(source.entry(s, i));
                self.records.push(len);
                scope_logs += field_len(2, len);
            }
            let labels = source.labels(s);
            let resource: usize = resource_attributes(labels)
                .map(|(k, v)| field_len(1, key_value_len(k, v)))
                .sum();
            let resource_logs = field_len(1, resource) + field_len(2, scope_logs);

            put_len(out, 1, resource_logs);
            put_len(out, 1, resource);
            for (k, v) in resource_attributes(labels) {
                put_key_value(out, 1, k, v);
            }
            put_len(out, 2, scope_logs);
            put_len(out, 1, scope_len());
            put_str(out, 1, SCOPE_NAME);
            put_str(out, 2, SCOPE_VERSION);
            for (i, &len) in self.records.iter().enumerate() {
                let e = source.entry(s, i);
                put_len(out, 2, len);
                let time = u64::try_from(e.timestamp).unwrap_or(0);
                put_fixed64(out, 1, time);
                put_fixed64(out, 11, time);
                put_len(out, 5, any_string_len(&e.line));
                put_str(out, 1, &e.line);
                for (k, v) in &e.metadata {
                    put_key_value(out, 6, k, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Labels;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use std::sync::Arc;

    struct Streams(Vec<(Arc<LabelSet>, Vec<Entry>)>);

    impl RecordSource for Streams {
        fn stream_count(&self) -> usize {
            self.0.len()
        }
        fn labels(&self, stream: usize) -> &LabelSet {
            &self.0[stream].0
        }
        fn entry_count(&self, stream: usize) -> usize {
            self.0[stream].1.len()
        }
        fn entry(&self, stream: usize, i: usize) -> &Entry {
            &self.0[stream].1[i]
        }
    }

    fn entry(labels: &Arc<LabelSet>, ts: i64, line: &str, metadata: &[(&str, &str)]) -> Entry {
        Entry {
            timestamp: ts,
            line: line.into(),
            labels: labels.clone(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extracted: None,
        }
    }

    #[test]
    fn what_it_writes_decodes_as_the_request_it_stands_for() {
        let a = LabelSet::new(Labels::from([
            ("job".to_string(), "app".to_string()),
            ("__path__".to_string(), "/x".to_string()),
        ]));
        let b = LabelSet::new(Labels::from([("job".to_string(), "b".repeat(300))]));
        let long = "é".repeat(100);
        let streams = Streams(vec![
            (
                a.clone(),
                vec![
                    entry(
                        &a,
                        1_700_000_000_000_000_001,
                        "first",
                        &[("trace_id", "t1")],
                    ),
                    entry(&a, 2, &long, &[]),
                ],
            ),
            (b.clone(), vec![entry(&b, 3, "", &[("k", ""), ("", "v")])]),
        ]);
        let mut out = Vec::new();
        RequestEncoder::default().encode(&streams, &mut out);
        let request = ExportLogsServiceRequest::decode(&out[..]).expect("valid protobuf");
        assert_eq!(request.resource_logs.len(), 2);
        let first = &request.resource_logs[0];
        let attrs = &first.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs.len(), 1, "hidden labels are left out");
        assert_eq!(attrs[0].key, "job");
        let scope = &first.scope_logs[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "logferry");
        let records = &scope.log_records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(
            records[0].observed_time_unix_nano,
            1_700_000_000_000_000_001
        );
        let body = |i: usize| records[i].body.as_ref().unwrap().value.clone();
        assert_eq!(body(0), Some(Value::StringValue("first".into())));
        assert_eq!(body(1), Some(Value::StringValue(long.clone())));
        assert_eq!(records[0].attributes[0].key, "trace_id");
        let last = &request.resource_logs[1].scope_logs[0].log_records[0];
        assert_eq!(last.attributes.len(), 2);
        assert_eq!(
            request.resource_logs[1]
                .resource
                .as_ref()
                .unwrap()
                .attributes[0]
                .value
                .as_ref()
                .unwrap()
                .value,
            Some(Value::StringValue("b".repeat(300)))
        );
    }
}
