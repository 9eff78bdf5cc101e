//! Stages that change stream labels: `labels`, `labelallow`, `labeldrop`, `static_labels`
//! (Promtail `stages/labels.go`, `labelallow.go`, `labeldrop.go`, `static_labels.go`).
//!
//! * `labels` maps label names to extracted keys (an empty key means the label's own name). A value
//!   that is missing, null, an array or an object is skipped; numbers and bools are converted with
//!   Promtail's `getString`. Label names must be legacy Prometheus names, checked at load.
//! * `labelallow` keeps only the listed labels (the hidden `__tenant_id__` too, unless listed);
//!   `labeldrop` removes the listed ones. Both lists must be non-empty.
//! * `static_labels` sets fixed values; entries with an empty or null value are skipped.
//!
//! Labels are shared per target until a stage changes them, so a stage that would write the value a
//! label already has does not copy the set.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::entry::Labels;
use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, ItemLabels, Stage, StageFactory};

/// Prometheus' legacy label name rule, `[a-zA-Z_][a-zA-Z0-9_]*`, which Promtail applies to `labels`.
pub fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Decode a `name: source` map (`labels`, `structured_metadata`): an empty or null source means
/// the name itself. Names must be legacy label names.
pub fn decode_label_map(
    stage: &str,
    body: &serde_yaml_ng::Value,
) -> Result<Vec<(String, String)>, String> {
    let map: BTreeMap<String, Option<String>> = decode(stage, body)?;
    map.into_iter()
        .map(|(name, source)| {
            if !is_legacy_label_name(&name) {
                return Err(format!("invalid label name: {name}"));
            }
            let source = source
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| name.clone());
            Ok((name, source))
        })
        .collect()
}

/// Set label `name` to `value`, copying a shared label set only if the value changes.
pub fn set_label(labels: &mut ItemLabels, name: &str, value: &str) {
    if labels.get(name) == Some(value) {
        return;
    }
    let map = labels.to_mut();
    match map.get_mut(name) {
        Some(v) => {
            v.clear();
            v.push_str(value);
        }
        None => {
            map.insert(name.to_string(), value.to_string());
        }
    }
}

pub fn build_labels(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let map = decode_label_map("labels", body)?;
    Ok(Arc::new(LabelsStage { map: map.into() }))
}

#[derive(Clone)]
struct LabelsStage {
    /// (label name, extracted key)
    map: Arc<[(String, String)]>,
}

impl StageFactory for LabelsStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for LabelsStage {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        for (name, source) in self.map.iter() {
            if let Some(value) = item.extracted.get(source).and_then(value_to_string) {
                set_label(&mut item.labels, name, &value);
            }
        }
        out.push(item);
    }
}

fn decode_name_list(stage: &str, body: &serde_yaml_ng::Value) -> Result<HashSet<String>, String> {
    let names: Option<Vec<String>> = match body {
        serde_yaml_ng::Value::Null => None,
        b => Some(serde_yaml_ng::from_value(b.clone()).map_err(|e| e.to_string())?),
    };
    match names {
        Some(names) if !names.is_empty() => Ok(names.into_iter().collect()),
        _ => Err(format!("{stage} stage config cannot be empty")),
    }
}

pub fn build_allow(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let names = decode_name_list("labelallow", body)?;
    Ok(Arc::new(LabelListStage {
        names: Arc::new(names),
        allow: true,
    }))
}

pub fn build_drop(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let names = decode_name_list("labeldrop", body)?;
    Ok(Arc::new(LabelListStage {
        names: Arc::new(names),
        allow: false,
    }))
}

/// `labelallow` (`allow`) or `labeldrop`.
#[derive(Clone)]
struct LabelListStage {
    names: Arc<HashSet<String>>,
    allow: bool,
}

impl StageFactory for LabelListStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for LabelListStage {
    fn name(&self) -> &'static str {
        if self.allow {
            "labelallow"
        } else {
            "labeldrop"
        }
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let removes = |labels: &Labels| {
            labels
                .keys()
                .any(|name| self.names.contains(name) != self.allow)
        };
        if removes(item.labels.map()) {
            item.labels
                .to_mut()
                .retain(|name, _| self.names.contains(name) == self.allow);
        }
        out.push(item);
    }
}

pub fn build_static(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let map: BTreeMap<String, Option<String>> = decode("static_labels", body)?;
    let mut labels = Vec::new();
    for (name, value) in map {
        // Promtail checks names with the UTF-8 scheme: any non-empty name.
        if name.is_empty() {
            return Err("invalid label name: \"\"".into());
        }
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            labels.push((name, value));
        }
    }
    Ok(Arc::new(StaticLabelsStage {
        labels: labels.into(),
    }))
}

#[derive(Clone)]
struct StaticLabelsStage {
    labels: Arc<[(String, String)]>,
}

impl StageFactory for StaticLabelsStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for StaticLabelsStage {
    fn name(&self) -> &'static str {
        "static_labels"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        for (name, value) in self.labels.iter() {
            set_label(&mut item.labels, name, value);
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::stage::transforming::{build_error, run};

    fn labels_of(item: &Item) -> Vec<(String, String)> {
        item.labels
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sorted by name, as label maps are.
    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn labels_examples() {
        // (stages, input labels, extracted, expected labels)
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            serde_json::Value,
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            // Promtail docs / labels_test.go: `labels {level:, app: app_rename}` after
            // `json {level:, app_rename: app}`.
            (
                "- labels: {level: ~, app: app_rename}",
                &[],
                json!({"level": "WARN", "app_rename": "loki"}),
                &[("app", "loki"), ("level", "WARN")],
            ),
            // An empty-string source means the label's own name.
            (
                "- labels: {level: ''}",
                &[],
                json!({"level": "debug"}),
                &[("level", "debug")],
            ),
            // Numbers and bools are converted; null, arrays, objects and missing keys are skipped.
            (
                "- labels: {status: ~, ok: ~, n: ~, arr: ~, obj: ~, missing: ~}",
                &[],
                json!({"status": 200, "ok": false, "n": null, "arr": [1], "obj": {}}),
                &[("ok", "false"), ("status", "200")],
            ),
            (
                "- labels: {ratio: ~}",
                &[],
                json!({"ratio": 0.25}),
                &[("ratio", "0.25")],
            ),
            // An empty string is set.
            (
                "- labels: {level: ~}",
                &[("level", "info")],
                json!({"level": ""}),
                &[("level", "")],
            ),
            // An existing label is overwritten.
            (
                "- labels: {level: ~}",
                &[("job", "x"), ("level", "info")],
                json!({"level": "error"}),
                &[("job", "x"), ("level", "error")],
            ),
            // A label copied into extracted at pipeline start can be renamed.
            (
                "- labels: {file: filename}",
                &[("filename", "/a.log")],
                json!({}),
                &[("file", "/a.log"), ("filename", "/a.log")],
            ),
        ];
        for (stages, input, extracted, want) in cases {
            let out = run(stages, "line", input, extracted.clone());
            assert_eq!(labels_of(&out[0]), pairs(want), "{stages} with {extracted}");
        }
    }

    #[test]
    fn unchanged_labels_stay_shared() {
        let out = run(
            "- labels: {level: ~}",
            "line",
            &[("level", "info")],
            json!({"level": "info"}),
        );
        assert!(matches!(out[0].labels, ItemLabels::Shared(_)));
    }

    #[test]
    fn labels_config_errors() {
        assert!(build_error("- labels: {'bad-name': x}").contains("invalid label name: bad-name"));
        assert!(build_error("- labels: {'0abc':}").contains("invalid label name: 0abc"));
        assert!(build_error("- labels: [a, b]").contains("labels"));
        assert!(is_legacy_label_name("_a1"));
        assert!(!is_legacy_label_name(""));
        assert!(!is_legacy_label_name("a.b"));
    }

    #[test]
    fn labelallow_and_labeldrop() {
        let input: &[(&str, &str)] = &[
            ("app", "loki"),
            ("filename", "/a.log"),
            ("__tenant_id__", "t1"),
            ("level", "info"),
        ];
        // (stages, expected labels)
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "- labelallow: [app, level]",
                &[("app", "loki"), ("level", "info")],
            ),
            ("- labelallow: [absent]", &[]),
            (
                "- labelallow: [app, __tenant_id__]",
                &[("__tenant_id__", "t1"), ("app", "loki")],
            ),
            (
                "- labeldrop: [filename, absent]",
                &[("__tenant_id__", "t1"), ("app", "loki"), ("level", "info")],
            ),
            ("- labeldrop: [absent]", input),
        ];
        for (stages, want) in cases {
            let out = run(stages, "line", input, json!({}));
            assert_eq!(labels_of(&out[0]), pairs(want), "{stages}");
        }
        for stage in ["labelallow", "labeldrop"] {
            for body in ["[]", ""] {
                let err = build_error(&format!("- {stage}: {body}"));
                assert!(
                    err.contains(&format!("{stage} stage config cannot be empty")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn static_labels() {
        // (stages, expected labels)
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "- static_labels: {custom: value, env: prod}",
                &[("custom", "value"), ("env", "prod"), ("job", "j")],
            ),
            // Empty and null values are skipped; an existing label is overwritten.
            (
                "- static_labels: {empty: '', nothing: ~, job: k}",
                &[("job", "k")],
            ),
            // Names are checked with the UTF-8 scheme: dots are allowed.
            (
                "- static_labels: {'service.name': api}",
                &[("job", "j"), ("service.name", "api")],
            ),
        ];
        for (stages, want) in cases {
            let out = run(stages, "line", &[("job", "j")], json!({}));
            assert_eq!(labels_of(&out[0]), pairs(want), "{stages}");
        }
        // Static labels are not copied into extracted.
        let out = run("- static_labels: {a: b}", "line", &[], json!({}));
        assert!(!out[0].extracted.contains_key("a"));
        assert!(build_error("- static_labels: {'': x}").contains("invalid label name"));
    }
}
