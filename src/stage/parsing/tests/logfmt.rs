//! `logfmt`: logfmt_test.go's cases and go-logfmt's decoding rules.

use super::*;

/// logfmt_test.go's line: tabs, a stray quote after `extra` (a syntax error after `extra` was read).
const LOG_LINE: &str = "\n\t\ttime=2012-11-01T22:08:41+00:00 app=loki\tlevel=WARN duration=125 message=\"this is a log line\" extra=\"user=foo\"\"\n\t";

const FIXTURE: &str = "\n\ttime=2012-11-01T22:08:41+00:00\n\tapp=loki\n\tlevel=WARN\n\tnested=\"child=value\"\n\tmessage=\"this is a log line\"\n";

const FIXTURE_MAPPING: &str = "{time: , app: , level: , nested: , message: }";

fn fixture_expected() -> Vec<(&'static str, Value)> {
    vec![
        ("time", json!("2012-11-01T22:08:41+00:00")),
        ("app", json!("loki")),
        ("level", json!("WARN")),
        ("nested", json!("child=value")),
        ("message", json!("this is a log line")),
    ]
}

#[test]
fn logfmt_table() {
    let on_line = format!("- logfmt: {{mapping: {FIXTURE_MAPPING}}}");
    let on_source = format!("- logfmt: {{mapping: {FIXTURE_MAPPING}, source: log}}");
    let mut on_source_expected = fixture_expected();
    on_source_expected.push(("log", json!(FIXTURE)));
    // (stage YAML, line, preset extracted, expected extracted, absent keys)
    let cases: Vec<ExtractCase> = vec![
        (
            "- logfmt: {mapping: {out: message, app: , duration: , unknown: }}",
            LOG_LINE,
            vec![],
            // Values are strings, even numbers.
            vec![
                ("out", json!("this is a log line")),
                ("app", json!("loki")),
                ("duration", json!("125")),
            ],
            vec!["unknown", "message", "time"],
        ),
        (
            "- logfmt: {mapping: {extra: }}\n- logfmt: {mapping: {user: }, source: extra}",
            LOG_LINE,
            vec![],
            vec![("extra", json!("user=foo")), ("user", json!("foo"))],
            vec![],
        ),
        (&on_line, FIXTURE, vec![], fixture_expected(), vec![]),
        (
            &on_source,
            "{}",
            vec![("log", json!(FIXTURE))],
            on_source_expected,
            vec![],
        ),
        (
            "- logfmt: {mapping: {app: }, source: log}",
            FIXTURE,
            vec![],
            vec![],
            vec!["app"],
        ),
        (
            "- logfmt: {mapping: {expr1: }}",
            r#"{"invalid":"logfmt"}"#,
            vec![],
            vec![],
            vec!["expr1"],
        ),
        (
            "- logfmt: {mapping: {app: }, source: log}",
            FIXTURE,
            vec![("log", json!("not logfmt"))],
            vec![("log", json!("not logfmt"))],
            vec!["app"],
        ),
        (
            "- logfmt: {mapping: {app: }, source: log}",
            FIXTURE,
            vec![("log", Value::Null)],
            vec![("log", Value::Null)],
            vec!["app"],
        ),
        // Bare keys and empty values store "", escapes in quoted values are decoded.
        (
            "- logfmt: {mapping: {flag: , empty: , q: , esc: }}",
            r#"flag empty= q="" esc="a \"b\"\n\u00e9""#,
            vec![],
            vec![
                ("flag", json!("")),
                ("empty", json!("")),
                ("q", json!("")),
                ("esc", json!("a \"b\"\né")),
            ],
            vec![],
        ),
        // The last occurrence of a key wins.
        (
            "- logfmt: {mapping: {a: }}",
            "a=1 a=2",
            vec![],
            vec![("a", json!("2"))],
            vec![],
        ),
        // Errors stop decoding; keys before them are kept.
        (
            "- logfmt: {mapping: {a: , b: }}",
            "a=1 x=y=z b=2",
            vec![],
            vec![("a", json!("1"))],
            vec!["b"],
        ),
        (
            "- logfmt: {mapping: {a: , b: }}",
            "a=1 =2 b=3",
            vec![],
            vec![("a", json!("1"))],
            vec!["b"],
        ),
        (
            "- logfmt: {mapping: {a: , b: }}",
            r#"a=1 b="unterminated"#,
            vec![],
            vec![("a", json!("1"))],
            vec!["b"],
        ),
        (
            "- logfmt: {mapping: {a: , b: }}",
            r#"a=1 b="bad\q""#,
            vec![],
            vec![("a", json!("1"))],
            vec!["b"],
        ),
        // A source number is read in its string form.
        (
            "- logfmt: {mapping: {x: }, source: n}",
            "",
            vec![("n", float(5.0))],
            vec![],
            vec!["x"],
        ),
    ];
    check_extract_cases("logfmt", cases);
}

#[test]
fn logfmt_record_of_64_kib_is_refused_like_go_scanner() {
    let long = format!("a=1 b={}", "x".repeat(64 * 1024));
    let out = run_with("- logfmt: {mapping: {a: }}", &long, &[]);
    assert_extracted(&out, &[], &["a"]);
    let fits = format!("a=1 b={}", "x".repeat(60 * 1024));
    let out = run_with("- logfmt: {mapping: {a: }}", &fits, &[]);
    assert_extracted(&out, &[("a", json!("1"))], &[]);
}
