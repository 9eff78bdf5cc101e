//! The `replace` stage: Promtail's `replace_test.go` cases, its docs examples, and failures.

use serde_json::{json, Value};

use crate::stage::transforming::{build_error, run};

const LOG_LINE: &str = r#"11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6""#;

const STATUS_TEMPLATE: &str = r#"'{{ if eq .Value "200" }}{{ Replace .Value "200" "HttpStatusOk" -1 }}{{ else }}{{ .Value | ToUpper }}{{ end }}'"#;

const UPPER_LINE: &str = r#"11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" HttpStatusOk 932 "-" "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6""#;

/// Run one replace stage (YAML body lines) on `line` with `extracted`; (line, extracted after).
fn replace(body: &str, line: &str, extracted: Value) -> (String, Value) {
    let yaml = format!("- replace:\n{body}");
    let out = run(&yaml, line, &[], extracted);
    let extracted = Value::Object(out[0].extracted.clone().into_iter().collect());
    (out[0].line.clone(), extracted)
}

#[test]
fn replace_test_go_cases() {
    // (stage body, line, extracted before, expected line, expected extracted)
    let named = format!(
        "    expression: {}\n    replace: {STATUS_TEMPLATE}",
        serde_json::to_string(
            r#"^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action>\S+)\s?(?P<path>\S+)?\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$"#
        )
        .unwrap()
    );
    let nested = format!(
        "    expression: {}\n    replace: {STATUS_TEMPLATE}",
        serde_json::to_string(
            r#"(?P<ip_user>^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+)) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action_path>(?P<action>\S+)\s?(?P<path>\S+)?)\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$"#
        )
        .unwrap()
    );
    let unnamed = format!(
        "    expression: {}\n    replace: {STATUS_TEMPLATE}",
        serde_json::to_string(
            r#"^(\S+) (\S+) (\S+) \[([\w:/]+\s[+\-]\d{4})\] "(\S+)\s?(\S+)?\s?(\S+)?" (\d{3}|-) (\d+|-)\s?"?([^"]*)"?\s?"?([^"]*)?"?$"#
        )
        .unwrap()
    );
    let user_agent = "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6";
    let fields = json!({
        "ip": "11.11.11.11", "identd": "-", "user": "FRANK",
        "timestamp": "25/JAN/2000:14:00:01 -0500", "action": "GET", "path": "/1986.JS",
        "protocol": "HTTP/1.1", "status": "HttpStatusOk", "referer": "-", "useragent": user_agent,
    });
    let mut nested_fields = fields.clone();
    nested_fields["ip_user"] = json!("11.11.11.11 - FRANK");
    nested_fields["action_path"] = json!("GET /1986.JS");
    let cases = [
        (
            "    expression: \"11.11.11.11 - (\\\\S+) .*\"\n    replace: dummy".to_string(),
            LOG_LINE,
            json!({}),
            LOG_LINE.replace("frank", "dummy"),
            json!({}),
        ),
        (named, LOG_LINE, json!({}), UPPER_LINE.to_string(), fields),
        (
            nested,
            LOG_LINE,
            json!({}),
            UPPER_LINE.to_string(),
            nested_fields,
        ),
        (
            unnamed,
            LOG_LINE,
            json!({}),
            UPPER_LINE.to_string(),
            json!({}),
        ),
        (
            "    expression: \"11.11.11.11 - (\\\\S+\\\\s)\"\n    replace: ''".to_string(),
            LOG_LINE,
            json!({}),
            LOG_LINE.replace("frank ", ""),
            json!({}),
        ),
        // Adjacent matches are all replaced.
        (
            "    expression: '(a|b|c)'\n    replace: ''".to_string(),
            "abc",
            json!({}),
            String::new(),
            json!({}),
        ),
    ];
    for (body, line, extracted, want_line, want_extracted) in cases {
        let (got_line, got_extracted) = replace(&body, line, extracted);
        assert_eq!(got_line, want_line, "{body}");
        assert_eq!(got_extracted, want_extracted, "{body}");
    }
}

#[test]
fn replace_with_source() {
    // replace_test.go: json {level, msg} then replace on msg; the line is untouched.
    let msg = r#"11.11.11.11 - "POST /loki/api/push/ HTTP/1.1" 200 932 "-" "Mozilla/5.0""#;
    let body = "    expression: \"\\\\S+ - \\\"POST (\\\\S+) .*\"\n    source: msg\n    replace: \"/loki/api/v1/push/\"";
    let (line, extracted) = replace(body, "original line", json!({"level": "info", "msg": msg}));
    assert_eq!(line, "original line");
    assert_eq!(
        extracted,
        json!({"level": "info", "msg": msg.replace("/loki/api/push/", "/loki/api/v1/push/")})
    );
    // A missing or non-string source does nothing.
    let (line, extracted) = replace(body, "original line", json!({"level": "info"}));
    assert_eq!(
        (line.as_str(), extracted),
        ("original line", json!({"level": "info"}))
    );
    let (_, extracted) = replace(body, "x", json!({"msg": null}));
    assert_eq!(extracted, json!({"msg": null}));
    // A number source is converted.
    let (_, extracted) = replace(
        "    expression: '(\\d)'\n    source: n\n    replace: 'x'",
        "x",
        json!({"n": 125}),
    );
    assert_eq!(extracted, json!({"n": "xxx"}));
}

#[test]
fn replace_docs_examples() {
    // (stage body, line, expected line, expected extracted)
    let cases = [
        // Promtail docs: mask a password.
        (
            "    expression: \"password (\\\\S+)\"\n    replace: \"****\"",
            "2019-01-01T01:00:00.000000001Z stderr P i'm a log message who has sensitive information with password xyz!",
            "2019-01-01T01:00:00.000000001Z stderr P i'm a log message who has sensitive information with password ****",
            json!({}),
        ),
        // Remove the captured text.
        (
            "    expression: \"password (\\\\S+)\"\n    replace: \"\"",
            "with password xyz! done",
            "with password  done",
            json!({}),
        ),
        // Named groups go to extracted with their replaced value.
        (
            "    expression: \"^(?P<ip>\\\\S+) - (?P<user>\\\\S+)\"\n    replace: \"{{ .Value | ToUpper }}\"",
            "11.11.11.11 - frank logged in",
            "11.11.11.11 - FRANK logged in",
            json!({"ip": "11.11.11.11", "user": "FRANK"}),
        ),
        // Every match is replaced; extracted values are available to the template.
        (
            "    expression: \"(\\\\d+)\"\n    replace: \"<{{ .Value }}:{{ .tag }}>\"",
            "a1b22c",
            "a<1:t>b<22:t>c",
            json!({"tag": "t"}),
        ),
        // Redaction: hash an email, keep the domain.
        (
            "    expression: \"([a-z]+)@example\\\\.com\"\n    replace: \"{{ trunc 8 (Sha2Hash .Value \\\"salt\\\") }}\"",
            "mail from alice@example.com",
            "mail from dd8028c8@example.com",
            json!({"tag": "t"}),
        ),
        // A non-participating group is left alone; no match leaves the line as it is.
        (
            "    expression: \"(a)|(b)\"\n    replace: \"[{{ .Value }}]\"",
            "xaybz",
            "x[a]y[b]z",
            json!({"tag": "t"}),
        ),
        (
            "    expression: \"nomatch(\\\\d)\"\n    replace: \"x\"",
            "unchanged",
            "unchanged",
            json!({"tag": "t"}),
        ),
    ];
    for (body, line, want_line, want_extracted) in cases {
        let (got_line, got_extracted) = replace(body, line, json!({"tag": "t"}));
        assert_eq!(got_line, want_line, "{body}");
        let mut want = want_extracted;
        want["tag"] = json!("t");
        assert_eq!(got_extracted, want, "{body}");
    }
}

#[test]
fn template_failures_leave_the_entry_unchanged() {
    // An execution error (ToUpper of a missing key), and a template that does not parse.
    for replace_template in ["'{{ ToUpper .missing }}'", "'{{ nosuchfunc }}'"] {
        let body = format!("    expression: '(?P<word>\\w+)'\n    replace: {replace_template}");
        let (line, extracted) = replace(&body, "hello world", json!({}));
        assert_eq!(line, "hello world", "{replace_template}");
        assert_eq!(extracted, json!({}), "{replace_template}");
    }
}

#[test]
fn replace_config_errors() {
    let cases = [
        ("- replace: {replace: x}", "expression is required"),
        ("- replace:", "expression is required"),
        (
            "- replace: {expression: '(?P<ts[0-9]+).*', replace: test}",
            "could not compile regular expression",
        ),
        (
            "- replace: {expression: '(?P<ts>[0-9]+).*', source: ''}",
            "empty source in replace stage",
        ),
    ];
    for (yaml, want) in cases {
        let err = build_error(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

/// A line of thousands of distinct matches (a dump of addresses) is replaced match by match, each
/// with its own rendering (the renderings are looked up in a map; its speed is shown end to end by
/// `tests/stages.rs`, a 4.8 MB line).
#[test]
fn many_distinct_matches_each_get_their_own_rendering() {
    let line: String = (0..5000).map(|i| format!("user{i}@example.com ")).collect();
    let (out, extracted) = replace(
        "    expression: '(?P<mail>[a-z0-9]+)@example\\.com'\n    replace: '{{ .Value | ToUpper }}'",
        &line,
        json!({}),
    );
    let expected: String = (0..5000).map(|i| format!("USER{i}@example.com ")).collect();
    assert_eq!(out, expected);
    // The named group's value is the first match's rendering, as in Promtail.
    assert_eq!(extracted, json!({"mail": "USER0"}));
}
