//! `regex`: the docs' and regex_test.go's examples, and the no-match cases.

use super::*;

#[test]
fn regex_table() {
    // (stage YAML, line, preset extracted, expected extracted, keys that must be absent)
    let cases: Vec<ExtractCase> = vec![
        (
            r#"- regex: {expression: "^(?s)(?P<time>\\S+?) (?P<stream>stdout|stderr) (?P<flags>\\S+?) (?P<content>.*)$"}"#,
            "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!",
            vec![],
            vec![
                ("time", json!("2019-01-01T01:00:00.000000001Z")),
                ("stream", json!("stderr")),
                ("flags", json!("P")),
                ("content", json!("i'm a log message!")),
            ],
            vec![],
        ),
        // The docs' pair: a json stage, then a regex on one of its values.
        (
            "- json: {expressions: {time: }}\n- regex: {expression: \"^(?P<year>\\\\d+)\", source: time}",
            r#"{"time":"2019-01-01T01:00:00.000000001Z"}"#,
            vec![],
            vec![("year", json!("2019")), ("time", json!("2019-01-01T01:00:00.000000001Z"))],
            vec![],
        ),
        // Unanchored: the match may start anywhere. Unnamed groups are not stored.
        (
            r#"- regex: {expression: "user=(\\w+) id=(?P<id>\\d+)"}"#,
            "GET /x user=frank id=42 ok",
            vec![],
            vec![("id", json!("42"))],
            vec!["1", "user"],
        ),
        // A named group that does not take part in the match is set to "".
        (
            r#"- regex: {expression: "^(?P<a>a)?(?P<b>b)"}"#,
            "b",
            vec![],
            vec![("a", json!("")), ("b", json!("b"))],
            vec![],
        ),
        // No match: nothing is set.
        (
            r#"- regex: {expression: "^(?P<level>[A-Z]+) "}"#,
            "lowercase line",
            vec![],
            vec![],
            vec!["level"],
        ),
        // A missing source, or one with no string form, changes nothing.
        (
            r#"- regex: {expression: "(?P<x>.+)", source: nothere}"#,
            "line",
            vec![],
            vec![],
            vec!["x"],
        ),
        (
            r#"- regex: {expression: "(?P<x>.*)", source: nil}"#,
            "line",
            vec![("nil", Value::Null)],
            vec![("nil", Value::Null)],
            vec!["x"],
        ),
        // A number source is read in its string form.
        (
            r#"- regex: {expression: "^(?P<first>\\d)", source: duration}"#,
            "line",
            vec![("duration", float(125.0))],
            vec![("first", json!("1"))],
            vec![],
        ),
        // Go's \d is ASCII only: Arabic-Indic digits do not match.
        (
            r#"- regex: {expression: "(?P<n>\\d+)"}"#,
            "\u{661}\u{662}",
            vec![],
            vec![],
            vec!["n"],
        ),
        // A group named like the source overwrites it.
        (
            r#"- regex: {expression: "^(?P<msg>\\w+)", source: msg}"#,
            "line",
            vec![("msg", json!("hello world"))],
            vec![("msg", json!("hello"))],
            vec![],
        ),
    ];
    check_extract_cases("regex", cases);
}

#[test]
fn regex_reads_labels_copied_into_extracted() {
    let out = run_one(
        r#"- regex: {expression: "^/var/log/(?P<app>[^/]+)/", source: filename}"#,
        "x",
        &[("filename", "/var/log/nginx/access.log")],
    );
    assert_extracted(&out[0], &[("app", json!("nginx"))], &[]);
}
