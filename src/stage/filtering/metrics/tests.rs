//! Promtail's metrics_test.go cases (counters, gauges, histograms, value filters, match_all,
//! count_entry_bytes, label sets) on extracted maps built here, and config errors.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::stage::filtering::test_support::{sample, setup};
use crate::stage::testing::item;
use crate::stage::{BuildContext, Item, Stage};

fn stage(yaml: &str) -> (Box<dyn Stage>, Arc<Metrics>) {
    let body: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    let ctx = BuildContext {
        metrics: Metrics::new(),
        job: "test".into(),
    };
    let factory = super::build(&body, &ctx).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    (factory.instantiate(), ctx.metrics)
}

fn feed(stage: &mut Box<dyn Stage>, items: Vec<Item>) -> usize {
    let mut out = Vec::new();
    for item in items {
        stage.process(item, &mut out);
    }
    out.len()
}

/// Promtail's TestMetricsPipeline: two JSON lines through five metrics.
#[test]
fn counters_gauges_and_histograms_like_promtail() {
    let (mut s, metrics) = stage(
        r#"
loki_count:
  type: Counter
  description: uhhhhhhh
  prefix: my_promtail_custom_
  source: app
  config: {value: loki, action: inc}
bloki_count:
  type: Gauge
  description: blerrrgh
  source: app
  config: {value: bloki, action: dec}
total_lines_count:
  type: Counter
  description: nothing to see here...
  config: {match_all: true, action: inc}
total_bytes_count:
  type: Counter
  description: nothing to see here...
  config: {match_all: true, count_entry_bytes: true, action: add}
payload_size_bytes:
  type: histogram
  description: grrrragh
  source: payload
  config: {buckets: [10, 20]}
"#,
    );
    let labels = [("test", "app")];
    let passed = feed(
        &mut s,
        vec![
            item(
                &"x".repeat(100),
                &labels,
                json!({"app": "loki", "payload": 10}),
            ),
            item(
                &"y".repeat(155),
                &labels,
                json!({"app": "bloki", "payload": 20}),
            ),
        ],
    );
    assert_eq!(passed, 2);
    let text = metrics.encode();
    let get = |name: &str, labels: &str| sample(&text, name, labels);
    assert!(text.contains("# HELP my_promtail_custom_loki_count uhhhhhhh\n# TYPE my_promtail_custom_loki_count counter\n"), "{text}");
    assert_eq!(
        get("my_promtail_custom_loki_count_total", "test=\"app\""),
        Some(1.0)
    );
    assert!(
        text.contains("# TYPE promtail_custom_bloki_count gauge\n"),
        "{text}"
    );
    assert_eq!(
        get("promtail_custom_bloki_count", "test=\"app\""),
        Some(-1.0)
    );
    assert_eq!(
        get("promtail_custom_total_lines_count_total", "test=\"app\""),
        Some(2.0)
    );
    assert_eq!(
        get("promtail_custom_total_bytes_count_total", "test=\"app\""),
        Some(255.0)
    );
    assert!(
        text.contains("# TYPE promtail_custom_payload_size_bytes histogram\n"),
        "{text}"
    );
    let bucket = |le: &str| {
        get(
            "promtail_custom_payload_size_bytes_bucket",
            &format!("le=\"{le}\""),
        )
    };
    assert_eq!(
        (bucket("10.0"), bucket("20.0"), bucket("+Inf")),
        (Some(1.0), Some(2.0), Some(2.0))
    );
    assert_eq!(
        get("promtail_custom_payload_size_bytes_sum", "test=\"app\""),
        Some(30.0)
    );
    assert_eq!(
        get("promtail_custom_payload_size_bytes_count", "test=\"app\""),
        Some(2.0)
    );
}

/// Promtail's TestMetricStage_Process: value conversions, value filters, one series per label set.
#[test]
fn converts_values_and_keeps_a_series_per_label_set() {
    let (mut s, metrics) = stage(
        r#"
total_keys: {type: Counter, description: the total keys per doc, config: {action: add}}
keys_per_line: {type: Histogram, description: keys per doc, config: {buckets: [1, 3, 5, 10]}}
numeric_float: {type: Gauge, description: numeric_float, config: {action: add}}
numeric_integer: {type: Gauge, description: numeric.integer, config: {action: add}}
numeric_string: {type: Gauge, description: numeric.string, config: {action: add}}
contains_warn: {type: Counter, description: contains_warn, config: {value: "true", action: inc}}
contains_false: {type: Counter, description: contains_false, config: {value: "true", action: add}}
matches: {type: Counter, source: time, description: all matches, config: {action: inc}}
response_time_seconds: {type: Histogram, source: time, description: response time in ms, config: {buckets: [0.5, 1, 2]}}
"#,
    );
    let extracted = json!({
        "total_keys": 8, "keys_per_line": 8, "numeric_float": 12.34, "numeric_integer": 123,
        "numeric_string": "123", "contains_warn": true, "contains_false": false, "time": "932ms",
    });
    let foo = [("foo", "bar"), ("bar", "foo")];
    let fu = [("fu", "baz"), ("baz", "fu")];
    feed(
        &mut s,
        vec![item("", &foo, extracted.clone()), item("", &fu, extracted)],
    );
    let text = metrics.encode();
    for labels in ["bar=\"foo\",foo=\"bar\"", "baz=\"fu\",fu=\"baz\""] {
        let get = |name: &str| sample(&text, name, labels);
        assert_eq!(get("promtail_custom_total_keys_total"), Some(8.0), "{text}");
        assert_eq!(get("promtail_custom_contains_warn_total"), Some(1.0));
        assert_eq!(get("promtail_custom_contains_false_total"), None);
        assert_eq!(get("promtail_custom_matches_total"), Some(1.0));
        assert_eq!(get("promtail_custom_numeric_float"), Some(12.34));
        assert_eq!(get("promtail_custom_numeric_integer"), Some(123.0));
        assert_eq!(get("promtail_custom_numeric_string"), Some(123.0));
        assert_eq!(get("promtail_custom_keys_per_line_sum"), Some(8.0));
        assert_eq!(
            get("promtail_custom_response_time_seconds_sum"),
            Some(0.932)
        );
        assert_eq!(
            get("promtail_custom_response_time_seconds_count"),
            Some(1.0)
        );
    }
    let le = |bound: &str| {
        sample(
            &text,
            "promtail_custom_response_time_seconds_bucket",
            &format!("le=\"{bound}\",baz=\"fu\",fu=\"baz\""),
        )
    };
    assert_eq!(
        (le("0.5"), le("1.0"), le("+Inf")),
        (Some(0.0), Some(1.0), Some(1.0)),
        "{text}"
    );
}

#[test]
fn gauge_actions_and_value_conversions() {
    // (gauge action, values in order, final value)
    let cases: &[(&str, &[Value], f64)] = &[
        ("set", &[json!(5), json!("-10.1234")], -10.1234),
        ("inc", &[json!("x"), json!(null)], 2.0),
        ("dec", &[json!(1)], -1.0),
        (
            "add",
            &[json!(1.5), json!(true), json!(false), json!("2.5")],
            5.0,
        ),
        ("sub", &[json!(1), json!("0.5ms")], -1.0005),
        ("add", &[json!("1h"), json!("-30m")], 1800.0),
        // Unconvertible values leave the gauge alone (it appears only once updated).
        (
            "set",
            &[
                json!(3),
                json!("abc"),
                json!([1]),
                json!({"a": 1}),
                json!(null),
            ],
            3.0,
        ),
        ("add", &[json!("1e3"), json!("+Inf")], f64::INFINITY),
    ];
    for (action, values, want) in cases {
        let (mut s, metrics) = stage(&format!(
            "g: {{type: gauge, source: v, config: {{action: {action}}}}}"
        ));
        let items = values
            .iter()
            .map(|v| item("", &[("job", "x")], json!({"v": v})))
            .collect();
        feed(&mut s, items);
        let got = sample(&metrics.encode(), "promtail_custom_g", "job=\"x\"");
        assert_eq!(got, Some(*want), "{action} {values:?}");
    }
}

#[test]
fn counters_skip_what_they_cannot_count() {
    let (mut s, metrics) = stage(
        r#"
added: {type: counter, source: v, config: {action: add}}
matched: {type: counter, source: v, config: {action: inc, value: "200"}}
all_add: {type: counter, config: {action: add, match_all: true}}
"#,
    );
    let values = [
        json!(5),
        json!(-3),
        json!("200"),
        json!(200),
        json!(200.0),
        json!("20"),
    ];
    feed(
        &mut s,
        values
            .iter()
            .map(|v| item("", &[("a", "b")], json!({"v": v})))
            .collect(),
    );
    let text = metrics.encode();
    // -3 would panic Promtail's counter: it is ignored. 5 + 200 + 200 + 200 + 20.
    assert_eq!(
        sample(&text, "promtail_custom_added_total", "a=\"b\""),
        Some(625.0)
    );
    assert_eq!(
        sample(&text, "promtail_custom_matched_total", "a=\"b\""),
        Some(3.0)
    );
    // `add` with `match_all` but not `count_entry_bytes` has nothing to add.
    assert_eq!(sample(&text, "promtail_custom_all_add_total", ""), None);
}

#[test]
fn series_labels_leave_out_reserved_and_invalid_names() {
    let (mut s, metrics) = stage("lines: {type: counter, config: {action: inc, match_all: true}}");
    let labels = [
        ("app", "pay"),
        ("__tenant_id__", "t1"),
        ("__path__", "/x"),
        ("bad-name", "x"),
        ("empty", ""),
        ("quote", "say \"hi\"\\\n"),
    ];
    feed(
        &mut s,
        vec![item("", &labels, json!({})), item("", &[], json!({}))],
    );
    let text = metrics.encode();
    assert!(
        text.contains("promtail_custom_lines_total{app=\"pay\",quote=\"say \\\"hi\\\"\\\\\\n\"} 1"),
        "{text}"
    );
    assert!(text.contains("\npromtail_custom_lines_total 1"), "{text}");
    assert!(!text.contains("tenant") && !text.contains("bad-name") && !text.contains("empty="));
}

#[test]
fn a_counter_name_ending_in_total_is_not_doubled() {
    let (mut s, metrics) = stage(
        "log_lines_total: {type: Counter, prefix: my_custom_tracking_, max_idle_duration: 24h, config: {match_all: true, action: inc}}",
    );
    feed(&mut s, vec![item("", &[], json!({}))]);
    let text = metrics.encode();
    assert!(
        text.contains("# TYPE my_custom_tracking_log_lines counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nmy_custom_tracking_log_lines_total 1"),
        "{text}"
    );
}

#[test]
fn metrics_leave_with_their_pipeline() {
    let (p, metrics) =
        setup("- metrics: {lines: {type: counter, config: {action: inc, match_all: true}}}")
            .unwrap();
    let mut p = p;
    let mut entries = vec![crate::stage::testing::entry("x", &[("job", "a")])];
    p.run(&mut entries, &[]);
    assert!(metrics
        .encode()
        .contains("promtail_custom_lines_total{job=\"a\"} 1"));
    drop(p);
    // The factory went with the spec in `setup`; the last instance held the metric.
    assert!(!metrics.encode().contains("promtail_custom_lines"));
}

#[test]
fn rejects_bad_config() {
    let cases = [
        ("- metrics: {m: {type: Pipe_line}}", "metric \"m\": invalid metric type 'pipe_line', metric type must be one of 'counter', 'gauge', or 'histogram'"),
        ("- metrics: {m: {config: {action: inc}}}", "invalid metric type ''"),
        ("- metrics: {m: {type: Counter, max_idle_duration: 10f, config: {action: inc}}}", "max_idle_duration could not be parsed as a time.Duration"),
        ("- metrics: {m: {type: Counter, max_idle_duration: 500ms, config: {action: inc}}}", "max_idle_duration less than 1s not allowed"),
        ("- metrics: {m: {type: Counter}}", "counter action must be defined as either `inc` or `add`"),
        ("- metrics: {m: {type: Counter, config: {action: set}}}", "action set is not valid, action must be either `inc` or `add`"),
        ("- metrics: {m: {type: Counter, config: {action: inc, match_all: true, value: x}}}", "`match_all: true` cannot be combined with `value`"),
        ("- metrics: {m: {type: Counter, config: {action: add, count_entry_bytes: true}}}", "`count_entry_bytes: true` can only be set with `match_all: true`"),
        ("- metrics: {m: {type: Counter, config: {action: inc, match_all: true, count_entry_bytes: true}}}", "`count_entry_bytes: true` can only be used with `action: add`"),
        ("- metrics: {m: {type: Gauge, config: {}}}", "gauge action must be defined as `set`, `inc`, `dec`, `add`, or `sub`"),
        ("- metrics: {m: {type: Gauge, config: {action: mul}}}", "action mul is not valid, action must be `set`, `inc`, `dec`, `add`, or `sub`"),
        ("- metrics: {m: {type: Histogram, config: {buckets: [5, 1]}}}", "histogram buckets must be in increasing order"),
        ("- metrics: {m: {type: Histogram, config: {buckets: [a]}}}", "invalid type"),
        ("- metrics: {bad-name: {type: Gauge, config: {action: set}}}", "is not a valid metric name"),
        ("- metrics: {m: {type: Counter, config: {action: inc, value: 200}}}", "invalid type"),
    ];
    for (yaml, want) in cases {
        let err = setup(yaml).err().unwrap_or_else(|| panic!("{yaml} built"));
        assert!(err.contains(want), "{yaml}: {err}");
    }
    // Case-insensitive types and actions, an empty body, +Inf as the last bucket.
    for yaml in [
        "- metrics: {m: {type: COUNTER, config: {action: INC}}}",
        "- metrics:",
        "- metrics: {h: {type: histogram, config: {buckets: [1, .inf]}}}",
    ] {
        assert!(setup(yaml).is_ok(), "{yaml}");
    }
}
