//! Promtail's drop_test.go table, the list-source and separator cases from its docs, and config errors.

use serde_json::{json, Value};

use crate::entry::now_nanos;
use crate::metrics::Metrics;
use crate::stage::filtering::test_support::{counter_value, run, setup};
use crate::stage::testing::entry;
use crate::stage::{BuildContext, Item, Stage};

const HOUR: i64 = 3_600_000_000_000;

fn stage(yaml: &str) -> (Box<dyn Stage>, std::sync::Arc<Metrics>) {
    let body: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let ctx = BuildContext {
        metrics: Metrics::new(),
        job: "test".into(),
    };
    let factory = super::build(&body, &ctx).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    (factory.instantiate(), ctx.metrics)
}

#[test]
fn drops_when_every_criterion_holds() {
    // (stage body, line, extracted, age, dropped?)
    let cases: &[(&str, &str, Value, i64, bool)] = &[
        ("{longer_than: 10b}", "12345678901", json!({}), 0, true),
        ("{longer_than: 10b}", "1234567890", json!({}), 0, false),
        ("{longer_than: 10b}", "123456789", json!({}), 0, false),
        ("{longer_than: 8kb}", &"x".repeat(8193), json!({}), 0, true),
        ("{longer_than: 8kb}", &"x".repeat(8192), json!({}), 0, false),
        ("{longer_than: 10}", "12345678901", json!({}), 0, true),
        ("{older_than: 1h}", "", json!({}), 2 * HOUR, true),
        ("{older_than: 1h}", "", json!({}), HOUR / 12, false),
        ("{source: key}", "", json!({"key": ""}), 0, true),
        ("{source: key1}", "", json!({"key": "val1"}), 0, false),
        // A null value counts as present (a json key missing from the line).
        ("{source: key}", "", json!({"key": null}), 0, true),
        ("{source: key, value: val1}", "", json!({"key": "val1"}), 0, true),
        ("{source: key, value: val1}", "", json!({"key": "VALRUE1"}), 0, false),
        ("{source: key, value: val}", "", json!({"key": "val1"}), 0, false),
        ("{source: level, value: error}", "", json!({"level": "error"}), 0, true),
        ("{source: status, value: 500}", "", json!({"status": 500}), 0, true),
        ("{source: status, value: '500'}", "", json!({"status": 500.0}), 0, true),
        ("{source: ok, value: 'true'}", "", json!({"ok": true}), 0, true),
        ("{source: key, value: ''}", "", json!({"key": null}), 0, false),
        ("{source: key, expression: '.*val.*'}", "", json!({"key": "val1"}), 0, true),
        ("{source: key, expression: '.*val.*'}", "", json!({"key": "pal1"}), 0, false),
        ("{source: key, expression: '.*val.*'}", "", json!({"pokey": "pal1"}), 0, false),
        ("{source: key, expression: '.*'}", "", json!({"key": [1, 2]}), 0, false),
        ("{expression: '.*val.*'}", "this is a line which does not match the regex", json!({}), 0, false),
        ("{expression: '.*val.*'}", "this is a line with the word value in it", json!({}), 0, true),
        ("{expression: debug}", "level=debug msg=x", json!({}), 0, true),
        ("{source: key, longer_than: 10b}", "12345678901", json!({"key": "pal1"}), 0, true),
        ("{source: key, longer_than: 10b}", "123456789", json!({"key": "pal1"}), 0, false),
        ("{source: key, longer_than: 10b}", "123456789012", json!({"W": "pal1"}), 0, false),
        ("{source: key, expression: '.*val.*', older_than: 1h, longer_than: 10b}",
         "12345678901", json!({"key": "must contain value to match"}), 2 * HOUR, true),
        ("{source: key, expression: '.*val.*', older_than: 1h, longer_than: 10b}",
         "12345678901", json!({"key": "must contain value to match"}), 0, false),
        ("{expression: '.*debug.*', longer_than: 1kb}", &format!("debug {}", "x".repeat(1100)), json!({}), 0, true),
        ("{expression: '.*debug.*', longer_than: 1kb}", "debug short", json!({}), 0, false),
        // A list of sources: all must exist; with a regex the present ones are joined.
        ("{source: [level, msg]}", "", json!({"level": "error", "msg": "x"}), 0, true),
        ("{source: [level, msg]}", "", json!({"level": "error"}), 0, false),
        ("{source: [], expression: '^$'}", "", json!({}), 0, true),
        ("{source: [level, msg], separator: '#', expression: '(error|ERROR)#.*/loki/api/push.*'}",
         "", json!({"level": "error", "msg": "POST /loki/api/push 500"}), 0, true),
        ("{source: [level, msg], separator: '#', expression: '(error|ERROR)#.*/loki/api/push.*'}",
         "", json!({"level": "info", "msg": "POST /loki/api/push 500"}), 0, false),
        ("{source: [level, msg], expression: '^error;x$'}", "", json!({"level": "error", "msg": "x"}), 0, true),
        ("{source: [level, missing, msg], value: 'error;x'}", "", json!({"level": "error", "msg": "x"}), 0, true),
        ("{source: [level, msg], value: 'error'}", "", json!({"level": "error"}), 0, true),
        ("{source: [level, msg], expression: 'x'}", "", json!({"level": null, "msg": "x"}), 0, false),
        ("{source: [a, b], separator: 1, value: '1112'}", "", json!({"a": 11, "b": 2}), 0, true),
    ];
    for (yaml, line, extracted, age, want) in cases {
        let (mut stage, _) = stage(yaml);
        let mut out = Vec::new();
        stage.process(item(line, extracted.clone(), *age), &mut out);
        assert_eq!(out.is_empty(), *want, "{yaml} on {line:?} {extracted}");
        if !want {
            assert_eq!(out[0].line, *line);
        }
    }
}

#[test]
fn counts_drops_by_reason() {
    let (mut p, metrics) = setup(
        "- drop: {expression: noisy, drop_counter_reason: noisy_lines}\n- drop: {longer_than: 5}\n",
    )
    .unwrap();
    let out = run(
        &mut p,
        vec![
            entry("a noisy line", &[]),
            entry("ok", &[]),
            entry("too long", &[]),
            entry("noisy", &[]),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "ok");
    assert_eq!(
        counter_value(
            &metrics,
            "logentry_dropped_lines_total",
            "reason=\"noisy_lines\""
        ),
        2.0
    );
    assert_eq!(
        counter_value(
            &metrics,
            "logentry_dropped_lines_total",
            "reason=\"drop_stage\""
        ),
        1.0
    );
}

#[test]
fn labels_are_in_extracted() {
    // Labels are copied into extracted at pipeline start, so `source` can name one.
    let (mut p, _) = setup("- drop: {source: filename, expression: '\\.gz$'}").unwrap();
    let out = run(
        &mut p,
        vec![
            entry("x", &[("filename", "/var/log/a.log.gz")]),
            entry("y", &[("filename", "/var/log/a.log")]),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "y");
}

#[test]
fn rejects_bad_config() {
    let cases = [
        ("- drop: {}", "drop stage config must contain at least one of `source`, `expression`, `older_than` or `longer_than`"),
        ("- drop:", "must contain at least one of"),
        ("- drop: {drop_counter_reason: x}", "must contain at least one of"),
        ("- drop: {older_than: 10y}", "drop stage invalid duration, 10y cannot be converted to a duration"),
        ("- drop: {older_than: 5}", "drop stage invalid duration, 5 cannot be converted"),
        ("- drop: {source: msg, value: msg, expression: '.*blah'}", "drop stage config error, `value` and `expression` cannot both be defined at the same time."),
        ("- drop: {value: x, expression: x}", "drop stage config must contain `source` if `value` is specified"),
        ("- drop: {expression: '(?P<ts[0-9]+).*'}", "drop stage regex compilation error"),
        ("- drop: {longer_than: 23QB}", "drop stage failed to parse longer_than to bytes"),
        ("- drop: {source: 5}", "drop stage source invalid type should be string or list of strings"),
        ("- drop: {source: [a, {b: c}]}", "drop stage source invalid type should be string or list of strings"),
    ];
    for (yaml, want) in cases {
        let err = setup(yaml).err().unwrap_or_else(|| panic!("{yaml} built"));
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

fn item(line: &str, extracted: Value, age_nanos: i64) -> Item {
    Item {
        timestamp: now_nanos() - age_nanos,
        ..crate::stage::testing::item(line, &[], extracted)
    }
}
