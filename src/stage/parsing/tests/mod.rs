//! Tests of the parsing stages: tables of (stage YAML, input, expected line, labels, timestamp,
//! extracted) from Promtail's stage docs and Go tests, plus failure cases. Sample lines are copied from
//! `shared/samples/` into the tests.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::stage::testing::{entry, pipeline};
use crate::stage::{Item, Pipeline};

mod config_errors;
mod cri;
mod decolorize;
mod docker;
mod json;
mod logfmt;
mod multiline;
mod pack;
mod regex;

/// Label pairs.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// Extracted values to preset or expect (`Value::Null` = present and null).
type Values<'a> = Vec<(&'a str, Value)>;

/// (stage YAML, line, preset extracted, expected extracted, keys that must be absent)
type ExtractCase<'a> = (&'a str, &'a str, Values<'a>, Values<'a>, Vec<&'a str>);

/// Run extraction cases: the line must come out unchanged, with the expected values.
fn check_extract_cases(stage: &str, cases: Vec<ExtractCase>) {
    for (yaml, line, preset, want, absent) in cases {
        let out = run_with(yaml, line, &preset);
        assert_eq!(out.line, line, "the {stage} stage never changes the line");
        assert_extracted(&out, &want, &absent);
    }
}

/// The timestamp `testing::entry` gives every input.
const INPUT_TS: i64 = 1_000_000_000;

/// A pipeline from YAML that must build.
fn build(yaml: &str) -> Pipeline {
    pipeline(yaml).unwrap_or_else(|e| panic!("pipeline does not build: {e}\n{yaml}"))
}

/// An input item: line, labels, origin.
fn item(line: &str, labels: &[(&str, &str)], origin: u64) -> Item {
    Item::new(entry(line, labels), origin)
}

/// Run one line through a fresh pipeline and return what comes out.
fn run_one(yaml: &str, line: &str, labels: &[(&str, &str)]) -> Vec<Item> {
    build(yaml).run_items(vec![item(line, labels, 0)], 0)
}

/// Run one line, with `extracted` preset, through a fresh pipeline; exactly one item must come out.
fn run_with(yaml: &str, line: &str, preset: &[(&str, Value)]) -> Item {
    let mut input = item(line, &[], 0);
    for (k, v) in preset {
        input.extracted.insert(k, v.clone());
    }
    let mut out = build(yaml).run_items(vec![input], 0);
    assert_eq!(out.len(), 1, "one entry out of {yaml}");
    out.remove(0)
}

fn labels_of(item: &Item) -> BTreeMap<String, String> {
    item.labels.map().clone()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Assert that `extracted` holds exactly these values for these keys (`Value::Null` = present and
/// null) and lacks the keys in `absent`.
fn assert_extracted(item: &Item, want: &[(&str, Value)], absent: &[&str]) {
    for (key, value) in want {
        assert_eq!(
            item.extracted.get(key),
            Some(value),
            "extracted[{key:?}] of line {:?}; all: {:?}",
            item.line,
            item.extracted
        );
    }
    for key in absent {
        assert!(
            !item.extracted.contains_key(key),
            "extracted[{key:?}] should be absent: {:?}",
            item.extracted
        );
    }
}

/// A JSON number as the json stage stores it (float64).
fn float(f: f64) -> Value {
    json!(f)
}

/// Unix nanoseconds of an RFC3339 timestamp (test inputs only).
fn ts(text: &str) -> i64 {
    super::rfc3339::parse_nano(text).unwrap_or_else(|| panic!("bad test timestamp {text}"))
}
