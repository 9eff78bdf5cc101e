//! `pack`: pack_test.go's table, and escaping.

use super::*;

#[test]
fn pack_table() {
    let base: &[(&str, &str)] = &[("foo", "bar"), ("bar", "baz")];
    // (config, extra extracted, line, remaining labels)
    let cases: Vec<(&str, Values, &str, Pairs)> = vec![
        (
            "- pack: {ingest_timestamp: false}",
            vec![],
            r#"{"_entry":"test line 1"}"#,
            base,
        ),
        (
            "- pack: {labels: [foo], ingest_timestamp: false}",
            vec![],
            r#"{"foo":"bar","_entry":"test line 1"}"#,
            &[("bar", "baz")],
        ),
        (
            "- pack: {labels: [foo, bar], ingest_timestamp: false}",
            vec![],
            r#"{"bar":"baz","foo":"bar","_entry":"test line 1"}"#,
            &[],
        ),
        (
            "- pack: {labels: [foo, extr1], ingest_timestamp: false}",
            vec![("extr1", json!("etr1val")), ("extr2", json!("etr2val"))],
            r#"{"extr1":"etr1val","foo":"bar","_entry":"test line 1"}"#,
            &[("bar", "baz")],
        ),
        // A value with no string form is not packed.
        (
            "- pack: {labels: [foo, extr2], ingest_timestamp: false}",
            vec![("extr2", json!([1, 2, 3]))],
            r#"{"foo":"bar","_entry":"test line 1"}"#,
            &[("bar", "baz")],
        ),
        (
            "- pack: {labels: [foo, 'ex\"tr2'], ingest_timestamp: false}",
            vec![("ex\"tr2", json!("\"fd\""))],
            r#"{"ex\"tr2":"\"fd\"","foo":"bar","_entry":"test line 1"}"#,
            &[("bar", "baz")],
        ),
        // Numbers in Go's form; a lone label name is a list of one (WeakDecode).
        (
            "- pack: {labels: n, ingest_timestamp: 'false'}",
            vec![("n", json!(125.0))],
            r#"{"n":"125","_entry":"test line 1"}"#,
            base,
        ),
    ];
    for (yaml, extra, line, remaining) in cases {
        let mut input = item("test line 1", base, 0);
        for (k, v) in extra {
            input.extracted.insert(k, v);
        }
        let out = build(yaml).run_items(vec![input], 0);
        assert_eq!(out[0].line, line, "{yaml}");
        assert_eq!(labels_of(&out[0]), labels(remaining), "{yaml}");
        assert_eq!(out[0].timestamp, INPUT_TS, "{yaml}");
    }
}

#[test]
fn pack_sets_the_ingest_time_by_default() {
    let out = run_one("- pack: {labels: [pod]}", "x", &[("pod", "p-1")]);
    assert!(out[0].timestamp > INPUT_TS);
    let out = run_one("- pack:", "x", &[]);
    assert!(out[0].timestamp > INPUT_TS);
}

#[test]
fn pack_escapes_the_entry_like_json_iterator() {
    let out = run_one(
        "- pack: {ingest_timestamp: false}",
        "{\"msg\":\"<b> & \\\"q\\\"\"}\n\ttab",
        &[],
    );
    assert_eq!(
        out[0].line,
        r#"{"_entry":"{\"msg\":\"\u003cb\u003e \u0026 \\\"q\\\"\"}\n\ttab"}"#
    );
    // Loki's unpack reads it back.
    let back: serde_json::Map<String, Value> = serde_json::from_str(&out[0].line).unwrap();
    assert_eq!(
        back["_entry"],
        json!("{\"msg\":\"<b> & \\\"q\\\"\"}\n\ttab")
    );
}
