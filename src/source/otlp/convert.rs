//! OTLP log records into entries, the way Loki's own OTLP endpoint maps them (`pkg/loghttp/push/
//! otlp.go`, default config), so the same data looks the same in Loki whether it came through
//! logferry or straight:
//!
//! * **Stream labels**: the resource attributes Loki indexes by default ([`INDEX_LABELS`]), names
//!   normalized (`service.name` → `service_name`); without `service.name`, `service_name` is the
//!   first of Loki's discovery attributes present, else `unknown_service`. Then the job's static
//!   labels, then `relabel_configs`, which also see every resource attribute as
//!   `__otlp_resource_<name>` and every record attribute as `__otlp_attribute_<name>`.
//! * **Structured metadata**: the record's attributes, `observed_timestamp`, `severity_number`,
//!   `severity_text`, `dropped_attributes_count`, `flags`, `trace_id`, `span_id` (hex), then the
//!   resource attributes not indexed, the scope's attributes, `scope_name`, `scope_version`,
//!   `scope_dropped_attributes_count`; each left out when zero or empty. Map values are flattened
//!   (`http: {method: GET}` → `http_method`).
//! * **Line**: the body; a string as it is, anything else as Loki renders it (maps and arrays as
//!   JSON, bytes as base64). A record without a body is left out and counted.
//! * **Timestamp**: `time_unix_nano`, else `observed_time_unix_nano`, else the time of receipt.

use std::sync::Arc;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use rustc_hash::FxHashMap;

use crate::entry::{Entry, LabelSet, Labels};
use crate::relabel::Relabeler;

/// Resource attributes Loki makes stream labels by default
/// (`-distributor.otlp.default_resource_attributes_as_index_labels`).
pub const INDEX_LABELS: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// [`INDEX_LABELS`] as label names, normalized once.
fn indexed_names() -> &'static [String] {
    static NAMES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| INDEX_LABELS.iter().map(|l| normalize(l)).collect());
    &NAMES
}

/// Where Loki looks for a `service_name` when `service.name` is missing (`discover_service_name`),
/// by normalized label name, in this order.
const SERVICE_NAME_FROM: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// The request's records as entries, with what was left out.
#[derive(Default)]
pub struct Converted {
    pub entries: Vec<Entry>,
    /// Records without a body.
    pub no_body: u64,
    /// Records whose labels the relabel rules dropped, or left empty.
    pub relabeled_away: u64,
    pub no_labels: u64,
}

/// How a job turns records into entries.
pub struct Converter<'a> {
    pub static_labels: &'a Labels,
    pub relabeler: &'a Relabeler,
    /// The time of receipt, for records without a timestamp.
    pub now: i64,
}

impl Converter<'_> {
    pub fn convert(&self, request: ExportLogsServiceRequest) -> Converted {
        let mut out = Converted::default();
        // Relabeling runs per distinct label set, not per record.
        let mut relabeled: FxHashMap<Labels, Option<Arc<LabelSet>>> = FxHashMap::default();
        for resource_logs in request.resource_logs {
            let resource_attrs = resource_logs.resource.map(|r| r.attributes);
            let resource = flatten(resource_attrs.as_deref().unwrap_or_default());
            let (mut base, unindexed) = resource_labels(&resource);
            for (k, v) in self.static_labels {
                base.insert(k.clone(), v.clone());
            }
            for (name, value) in &resource {
                base.insert(format!("__otlp_resource_{name}"), value.clone());
            }
            // The labels of the resource's records that have no attributes the rules could read:
            // relabeled once per resource.
            let mut resource_set = None;
            for scope_logs in resource_logs.scope_logs {
                let mut scope_meta = Vec::new();
                if let Some(scope) = &scope_logs.scope {
                    scope_meta.extend(flatten(&scope.attributes));
                    push_nonempty(&mut scope_meta, "scope_name", &scope.name);
                    push_nonempty(&mut scope_meta, "scope_version", &scope.version);
                    push_nonzero(
                        &mut scope_meta,
                        "scope_dropped_attributes_count",
                        scope.dropped_attributes_count.into(),
                    );
                }
                for mut record in scope_logs.log_records {
                    let Some(line) = record.body.take().and_then(line_of) else {
                        out.no_body += 1;
                        continue;
                    };
                    let attributes = flatten(&record.attributes);
                    let labels = if self.relabeler.is_empty() || attributes.is_empty() {
                        resource_set
                            .get_or_insert_with(|| self.labels(&mut relabeled, &base))
                            .clone()
                    } else {
                        let mut labels = base.clone();
                        for (name, value) in &attributes {
                            labels.insert(format!("__otlp_attribute_{name}"), value.clone());
                        }
                        self.labels(&mut relabeled, &labels)
                    };
                    let labels = match labels {
                        Ok(l) => l,
                        Err(kept) => {
                            if kept {
                                out.no_labels += 1;
                            } else {
                                out.relabeled_away += 1;
                            }
                            continue;
                        }
                    };
                    let mut metadata = attributes;
                    let (time, observed) = (record.time_unix_nano, record.observed_time_unix_nano);
                    if time != 0 && observed != 0 {
                        metadata.push(("observed_timestamp".into(), observed.to_string()));
                    }
                    push_nonzero(
                        &mut metadata,
                        "severity_number",
                        record.severity_number.into(),
                    );
                    push_nonempty(&mut metadata, "severity_text", &record.severity_text);
                    push_nonzero(
                        &mut metadata,
                        "dropped_attributes_count",
                        record.dropped_attributes_count.into(),
                    );
                    push_nonzero(&mut metadata, "flags", record.flags.into());
                    push_nonempty(&mut metadata, "trace_id", &hex(&record.trace_id));
                    push_nonempty(&mut metadata, "span_id", &hex(&record.span_id));
                    metadata.extend(unindexed.iter().cloned());
                    metadata.extend(scope_meta.iter().cloned());
                    let timestamp = [time, observed]
                        .into_iter()
                        .find(|t| *t != 0)
                        .map_or(self.now, |t| i64::try_from(t).unwrap_or(i64::MAX));
                    out.entries.push(Entry {
                        timestamp,
                        line,
                        labels,
                        metadata,
                        extracted: None,
                    });
                }
            }
        }
        out
    }

    /// `labels` relabeled, `__*` dropped; `Err(kept)` when the rules dropped them (`false`) or
    /// nothing is left (`true`).
    fn labels(
        &self,
        cache: &mut FxHashMap<Labels, Option<Arc<LabelSet>>>,
        labels: &Labels,
    ) -> Result<Arc<LabelSet>, bool> {
        let set = match cache.get(labels) {
            Some(set) => set.clone(),
            None => {
                let mut relabeled = labels.clone();
                let kept = self.relabeler.process(&mut relabeled);
                relabeled.retain(|k, _| !k.starts_with("__"));
                let set = (kept && !relabeled.is_empty()).then(|| LabelSet::new(relabeled));
                if set.is_none() && kept {
                    // Remember "kept, but nothing left" apart from "dropped".
                    return Err(true);
                }
                cache.insert(labels.clone(), set.clone());
                set
            }
        };
        set.ok_or(false)
    }
}

/// The stream labels Loki makes of a resource's (flattened) attributes, and the attributes it keeps
/// as structured metadata instead.
fn resource_labels(resource: &[(String, String)]) -> (Labels, Vec<(String, String)>) {
    let mut labels = Labels::new();
    let mut rest = Vec::new();
    for (name, value) in resource {
        let indexed = indexed_names().iter().any(|l| l == name);
        if indexed && !value.is_empty() {
            labels.insert(name.clone(), value.clone());
        } else {
            rest.push((name.clone(), value.clone()));
        }
    }
    if !labels.contains_key("service_name") {
        let found = SERVICE_NAME_FROM.iter().find_map(|from| {
            resource
                .iter()
                .find(|(name, value)| name == from && !value.is_empty())
                .map(|(_, value)| value.clone())
        });
        labels.insert(
            "service_name".into(),
            found.unwrap_or_else(|| "unknown_service".into()),
        );
    }
    (labels, rest)
}

/// Attributes as (normalized name, value), map values flattened into `parent_child` names.
pub fn flatten(attributes: &[KeyValue]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(attributes.len());
    for kv in attributes {
        flatten_into(&mut out, &normalize(&kv.key), kv.value.as_ref());
    }
    out
}

fn flatten_into(out: &mut Vec<(String, String)>, name: &str, value: Option<&AnyValue>) {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(map)) => {
            for kv in &map.values {
                let child = format!("{name}_{}", normalize(&kv.key));
                flatten_into(out, &child, kv.value.as_ref());
            }
        }
        Some(v) => out.push((name.to_string(), as_string(v))),
        None => out.push((name.to_string(), String::new())),
    }
}

/// A label name as Loki makes one of an attribute name (Prometheus' `NormalizeLabel`): every
/// character outside `[a-zA-Z0-9_]` becomes `_`; a leading digit gets `key_` before it, a single
/// leading `_` gets `key`.
pub fn normalize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

/// The line of a record's body (a string body is moved, not copied); `None` for no body (or an
/// empty one).
fn line_of(body: AnyValue) -> Option<String> {
    let line = match body.value? {
        Value::StringValue(s) => s,
        other => as_string(&other),
    };
    (!line.is_empty()).then_some(line)
}

/// A value as pdata's `Value.AsString` renders it: strings as they are, maps and arrays as JSON (map
/// keys sorted), bytes as base64.
pub fn as_string(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => json_number(*d).to_string(),
        Value::BytesValue(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::ArrayValue(_) | Value::KvlistValue(_) => to_json(value).to_string(),
    }
}

fn json_number(d: f64) -> serde_json::Value {
    serde_json::Number::from_f64(d).map_or_else(
        || serde_json::Value::String(d.to_string()),
        serde_json::Value::Number,
    )
}

fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => json_number(*d),
        Value::BytesValue(_) => J::String(as_string(value)),
        Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|v| v.value.as_ref().map_or(J::Null, to_json))
                .collect(),
        ),
        Value::KvlistValue(m) => {
            let mut pairs: Vec<_> = m.values.iter().collect();
            pairs.sort_by(|a, b| a.key.cmp(&b.key));
            let map = pairs
                .into_iter()
                .map(|kv| {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                    (kv.key.clone(), v.map_or(J::Null, to_json))
                })
                .collect();
            J::Object(map)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn push_nonempty(metadata: &mut Vec<(String, String)>, name: &str, value: &str) {
    if !value.is_empty() {
        metadata.push((name.into(), value.into()));
    }
}

fn push_nonzero(metadata: &mut Vec<(String, String)>, name: &str, value: i64) {
    if value != 0 {
        metadata.push((name.into(), value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.into())
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.orders".into(),
                        version: "1.2".into(),
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn convert(req: ExportLogsServiceRequest, relabeler: &Relabeler) -> Converted {
        let labels = Labels::from([("job".to_string(), "otlp".to_string())]);
        Converter {
            static_labels: &labels,
            relabeler,
            now: 42,
        }
        .convert(req)
    }

    #[test]
    fn maps_records_as_loki_does() {
        let record = LogRecord {
            time_unix_nano: 1_700_000_000_000_000_001,
            observed_time_unix_nano: 1_700_000_000_000_000_009,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(s("order placed")),
            }),
            attributes: vec![
                kv("http.method", s("GET")),
                kv(
                    "user",
                    Value::KvlistValue(KeyValueList {
                        values: vec![kv("id", Value::IntValue(7))],
                    }),
                ),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            ..Default::default()
        };
        let resource = vec![
            kv("service.name", s("orders")),
            kv("k8s.namespace.name", s("shop")),
            kv("host.name", s("web-1")),
        ];
        let out = convert(
            request(resource, vec![record]),
            &Relabeler::new(&[]).unwrap(),
        );
        let e = &out.entries[0];
        assert_eq!(
            e.labels.rendered(),
            r#"{job="otlp", k8s_namespace_name="shop", service_name="orders"}"#
        );
        assert_eq!(e.line, "order placed");
        assert_eq!(e.timestamp, 1_700_000_000_000_000_001);
        let meta: Vec<(&str, &str)> = e
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            meta,
            [
                ("http_method", "GET"),
                ("user_id", "7"),
                ("observed_timestamp", "1700000000000000009"),
                ("severity_number", "9"),
                ("severity_text", "INFO"),
                ("trace_id", "abababababababababababababababab"),
                ("span_id", "0102030405060708"),
                ("host_name", "web-1"),
                ("scope_name", "app.orders"),
                ("scope_version", "1.2"),
            ]
        );
    }

    #[test]
    fn bodies_timestamps_and_service_name_fall_back_as_loki_does() {
        let body = |v: Value| LogRecord {
            body: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let map = Value::KvlistValue(KeyValueList {
            values: vec![kv("b", Value::IntValue(1)), kv("a", s("x"))],
        });
        let array = Value::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::BoolValue(true)),
            }],
        });
        let records = vec![
            body(map),
            body(array),
            body(Value::BytesValue(b"hi".to_vec())),
            body(Value::DoubleValue(1.5)),
            LogRecord::default(),
            body(s("")),
        ];
        let out = convert(
            request(vec![kv("app", s("shop"))], records),
            &Relabeler::new(&[]).unwrap(),
        );
        let lines: Vec<&str> = out.entries.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, [r#"{"a":"x","b":1}"#, "[true]", "aGk=", "1.5"]);
        assert_eq!(out.no_body, 2);
        assert!(out.entries.iter().all(|e| e.timestamp == 42));
        assert_eq!(
            out.entries[0].labels.rendered(),
            r#"{job="otlp", service_name="shop"}"#
        );
        let none = convert(
            request(vec![], vec![body(s("x"))]),
            &Relabeler::new(&[]).unwrap(),
        );
        assert_eq!(
            none.entries[0].labels.rendered(),
            r#"{job="otlp", service_name="unknown_service"}"#
        );
    }

    #[test]
    fn relabel_rules_see_resource_and_record_attributes() {
        let rules: Vec<crate::relabel::RelabelConfig> = serde_yaml_ng::from_str(
            r#"
- source_labels: [__otlp_attribute_level]
  target_label: level
- source_labels: [__otlp_resource_host_name]
  target_label: host
- source_labels: [level]
  regex: debug
  action: drop
"#,
        )
        .unwrap();
        let relabeler = Relabeler::new(&rules).unwrap();
        let record = |level: &str| LogRecord {
            body: Some(AnyValue {
                value: Some(s("x")),
            }),
            attributes: vec![kv("level", s(level))],
            ..Default::default()
        };
        let out = convert(
            request(
                vec![kv("host.name", s("web-1"))],
                vec![record("warn"), record("debug")],
            ),
            &relabeler,
        );
        assert_eq!(out.entries.len(), 1);
        assert_eq!(out.relabeled_away, 1);
        assert_eq!(
            out.entries[0].labels.rendered(),
            r#"{host="web-1", job="otlp", level="warn", service_name="unknown_service"}"#
        );
    }

    #[test]
    fn names_are_normalized_as_prometheus_does() {
        assert_eq!(normalize("service.name"), "service_name");
        assert_eq!(normalize("2xx"), "key_2xx");
        assert_eq!(normalize("_x"), "key_x");
        assert_eq!(normalize("__x"), "__x");
        assert_eq!(normalize("a-b/c"), "a_b_c");
    }
}
