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
//! label already has does not copy the set. When `labels` or `static_labels` does change a shared
//! set, the set it made is remembered by the input set and the values written ([`MadeSets`]): the
//! next entry of the same stream with the same values gets the same shared set, without building,
//! hashing or interning a map.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHasher};

use crate::entry::{LabelSet, Labels};
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

/// How many label sets a stage remembers before it starts over.
const MADE_MAX: usize = 4096;

/// The shared label sets a stage made: (input set, values written) → output set. The input `Arc` is
/// kept, so its address identifies it for as long as it is remembered.
#[derive(Default)]
struct MadeSets {
    /// By a hash of the input's address and the values.
    sets: FxHashMap<u64, Vec<Made>>,
    len: usize,
}

struct Made {
    from: Arc<LabelSet>,
    /// The value written per configured label, `None` where it was skipped.
    values: Vec<Option<String>>,
    to: Arc<LabelSet>,
}

impl MadeSets {
    fn insert(&mut self, key: u64, made: Made) {
        if self.len >= MADE_MAX {
            self.sets.clear();
            self.len = 0;
        }
        self.sets.entry(key).or_default().push(made);
        self.len += 1;
    }
}

/// Apply `n` (label name, value) pairs, the i-th given by `pair(i)`, to a shared set through
/// `made`: the same input and values give the same output set. Pairs with no value are skipped; no
/// change keeps the input set. `pair` is called more than once per index: it must be cheap.
fn apply_shared<'v>(
    made: &mut MadeSets,
    from: &Arc<LabelSet>,
    n: usize,
    pair: impl Fn(usize) -> (&'v str, Option<Cow<'v, str>>),
) -> Arc<LabelSet> {
    let mut changes = false;
    let mut h = FxHasher::default();
    (Arc::as_ptr(from) as usize).hash(&mut h);
    for i in 0..n {
        let (name, value) = pair(i);
        changes |= value.as_deref().is_some_and(|v| from.get(name) != Some(v));
        value.as_deref().hash(&mut h);
    }
    if !changes {
        return from.clone();
    }
    let key = h.finish();
    let same = |m: &Made| {
        Arc::ptr_eq(&m.from, from)
            && m.values
                .iter()
                .enumerate()
                .all(|(i, v)| v.as_deref() == pair(i).1.as_deref())
    };
    if let Some(m) = made
        .sets
        .get(&key)
        .and_then(|ms| ms.iter().find(|m| same(m)))
    {
        return m.to.clone();
    }
    let mut labels = from.labels().clone();
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let (name, value) = pair(i);
        if let Some(v) = &value {
            labels.insert(name.to_owned(), v.to_string());
        }
        values.push(value.map(Cow::into_owned));
    }
    let to = LabelSet::new(labels);
    made.insert(
        key,
        Made {
            from: from.clone(),
            values,
            to: to.clone(),
        },
    );
    to
}

pub fn build_labels(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let map = decode_label_map("labels", body)?;
    Ok(Arc::new(LabelsFactory { map: map.into() }))
}

struct LabelsFactory {
    /// (label name, extracted key)
    map: Arc<[(String, String)]>,
}

impl StageFactory for LabelsFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(LabelsStage {
            map: self.map.clone(),
            made: MadeSets::default(),
        })
    }
}

struct LabelsStage {
    map: Arc<[(String, String)]>,
    made: MadeSets,
}

impl Stage for LabelsStage {
    fn name(&self) -> &'static str {
        "labels"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if let ItemLabels::Shared(from) = &item.labels {
            let (map, extracted) = (&self.map, &item.extracted);
            let to = apply_shared(&mut self.made, from, map.len(), |i| {
                let (name, source) = &map[i];
                (name, extracted.get(source).and_then(value_to_string))
            });
            item.labels = ItemLabels::Shared(to);
        } else {
            for (name, source) in self.map.iter() {
                if let Some(value) = item.extracted.get(source).and_then(value_to_string) {
                    set_label(&mut item.labels, name, &value);
                }
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
    Ok(Arc::new(StaticLabelsFactory {
        labels: labels.into(),
    }))
}

struct StaticLabelsFactory {
    labels: Arc<[(String, String)]>,
}

impl StageFactory for StaticLabelsFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(StaticLabelsStage {
            labels: self.labels.clone(),
            made: MadeSets::default(),
        })
    }
}

struct StaticLabelsStage {
    labels: Arc<[(String, String)]>,
    made: MadeSets,
}

impl Stage for StaticLabelsStage {
    fn name(&self) -> &'static str {
        "static_labels"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if let ItemLabels::Shared(from) = &item.labels {
            let labels = &self.labels;
            let to = apply_shared(&mut self.made, from, labels.len(), |i| {
                (&labels[i].0, Some(Cow::Borrowed(labels[i].1.as_str())))
            });
            item.labels = ItemLabels::Shared(to);
        } else {
            for (name, value) in self.labels.iter() {
                set_label(&mut item.labels, name, value);
            }
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

    /// Entries of one stream that get the same label values share one label set (no map is built
    /// for them), entries with other values get their own, and the input set is never changed.
    #[test]
    fn same_stream_and_values_share_one_label_set() {
        let mut pipeline = crate::stage::testing::pipeline(
            "- json: {expressions: {status: }}\n- labels: {status: }\n- static_labels: {env: prod}",
        )
        .unwrap();
        let input = crate::stage::testing::entry("", &[("job", "web")]).labels;
        let mut entries: Vec<crate::entry::Entry> = ["200", "500", "200", "200", "500"]
            .iter()
            .map(|status| crate::entry::Entry {
                timestamp: 0,
                line: format!(r#"{{"status":"{status}"}}"#),
                labels: input.clone(),
                metadata: Vec::new(),
                extracted: None,
            })
            .collect();
        pipeline.run(&mut entries, &[]);
        let sets: Vec<&Arc<LabelSet>> = entries.iter().map(|e| &e.labels).collect();
        assert_eq!(
            sets[0].rendered(),
            r#"{env="prod", job="web", status="200"}"#
        );
        assert_eq!(
            sets[1].rendered(),
            r#"{env="prod", job="web", status="500"}"#
        );
        assert!(Arc::ptr_eq(sets[0], sets[2]) && Arc::ptr_eq(sets[0], sets[3]));
        assert!(Arc::ptr_eq(sets[1], sets[4]));
        assert!(!Arc::ptr_eq(sets[0], sets[1]));
        assert_eq!(input.rendered(), r#"{job="web"}"#);
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
