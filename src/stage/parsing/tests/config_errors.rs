//! Config errors: each names the problem, as Promtail's validation does.

use super::*;

#[test]
fn config_errors_table() {
    // (stage YAML, a fragment the error must contain)
    let cases = [
        ("- regex: {}", "expression is required"),
        ("- regex: {expression: ''}", "expression is required"),
        (
            "- regex: {expression: '(?P<x>', source: a}",
            "could not compile regular expression",
        ),
        (
            "- regex: {expression: '(?P<x>.*)', source: ''}",
            "empty source",
        ),
        ("- regex: {expression: [a]}", "is invalid"),
        ("- json: {}", "JMES expression is required"),
        ("- json:", "JMES expression is required"),
        (
            "- json: {expressions: {a: '3##@$#33'}}",
            "could not compile JMES expression",
        ),
        ("- json: {expressions: {a: }, source: ''}", "empty source"),
        (
            "- json: {expressions: {a: }, drop_malformed: maybe}",
            "is invalid",
        ),
        ("- logfmt: {}", "logfmt mapping is required"),
        ("- logfmt: {mapping: {a: }, source: ''}", "empty source"),
        ("- multiline: {}", "must define `firstline`"),
        (
            "- multiline: {firstline: '(['}",
            "first line regex compilation error",
        ),
        (
            "- multiline: {firstline: x, max_wait_time: 3}",
            "`max_wait_time` parse error",
        ),
        (
            "- multiline: {firstline: x, max_wait_time: soon}",
            "`max_wait_time` parse error",
        ),
        ("- multiline: {firstline: x, max_lines: many}", "max_lines"),
        (
            "- multiline: {firstline: x, max_bytes: lots}",
            "multiline stage `max_bytes` parse error",
        ),
        (
            "- multiline: {firstline: x, max_bytes: -1}",
            "multiline stage `max_bytes` must be a byte size, got -1",
        ),
        ("- cri: {max_partial_lines: lots}", "max_partial_lines"),
        (
            "- cri: {max_partial_line_size_truncate: perhaps}",
            "max_partial_line_size_truncate",
        ),
        (
            "- cri: {max_partial_line_size: huge}",
            "max_partial_line_size",
        ),
        ("- pack: {ingest_timestamp: sometimes}", "ingest_timestamp"),
        ("- pack: {labels: {a: b}}", "labels"),
    ];
    for (yaml, fragment) in cases {
        match pipeline(yaml) {
            Ok(_) => panic!("{yaml} should not build"),
            Err(e) => {
                assert!(e.contains(fragment), "{yaml}: {e:?} lacks {fragment:?}");
                assert!(e.starts_with("pipeline_stages[0]: stage"), "{e}");
            }
        }
    }
}

#[test]
fn valid_bodies_build() {
    for yaml in [
        "- docker: {}",
        "- docker:",
        "- cri:",
        "- cri: {max_partial_lines: 0, max_partial_line_size: 262144, max_partial_line_size_truncate: true}",
        "- decolorize:",
        "- pack: {labels: [a, b]}",
        "- multiline: {firstline: '^\\[', max_wait_time: 1m30s, max_lines: 0}",
        // Unknown keys are ignored, as mapstructure does.
        "- json: {expressions: {a: }, typo_key: 1}",
        "- logfmt: {mapping: {a: b}}",
    ] {
        build(yaml);
    }
}

#[test]
fn stages_of_other_families_are_not_claimed() {
    for name in ["geoip", "eventlogmessage"] {
        let e = pipeline(&format!("- {name}: {{}}"))
            .err()
            .expect("not supported");
        assert!(e.contains("not supported yet"), "{e}");
    }
}
