//! `json`: json_test.go's cases, JMESPath beyond field paths, malformed input, and the samples.

use super::*;

/// json_test.go's `testJSONLogLine`.
const LOG_LINE: &str = r#"
{
	"time":"2012-11-01T22:08:41+00:00",
	"app":"loki",
	"component": ["parser","type"],
	"level" : "WARN",
	"nested" : {"child":"value"},
    "duration" : 125,
	"message" : "this is a log line",
	"extra": "{\"user\":\"marco\"}"
}
"#;

/// json_test.go's `logFixture`.
const FIXTURE: &str = r#"
{
	"time":"2012-11-01T22:08:41+00:00",
	"app":"loki",
	"component": ["parser","type"],
	"level" : "WARN",
	"numeric": {
		"float": 12.34,
		"integer": 123,
		"string": "123"
	},
	"nested" : {"child":"value"},
	"message" : "this is a log line",
	"complex" : {
		"log" : {"array":[{"test1":"test2"},{"test3":"test4"}],"prop":"value","prop2":"val2"}
	}
}
"#;

const FIXTURE_EXPRESSIONS: &str = "time: ''\n      app: ''\n      component: ''\n      level: ''\n      float: numeric.float\n      integer: numeric.integer\n      string: numeric.string\n      nested: ''\n      message: ''\n      complex: complex.log.array[1].test3";

fn fixture_expected() -> Vec<(&'static str, Value)> {
    vec![
        ("time", json!("2012-11-01T22:08:41+00:00")),
        ("app", json!("loki")),
        ("component", json!(r#"["parser","type"]"#)),
        ("level", json!("WARN")),
        ("float", float(12.34)),
        ("integer", float(123.0)),
        ("string", json!("123")),
        ("nested", json!(r#"{"child":"value"}"#)),
        ("message", json!("this is a log line")),
        ("complex", json!("test4")),
    ]
}

#[test]
fn json_table() {
    // (stage YAML, line, preset extracted, expected extracted, absent keys)
    let fixture_on_line = format!("- json:\n    expressions:\n      {FIXTURE_EXPRESSIONS}");
    let fixture_on_source =
        format!("- json:\n    source: log\n    expressions:\n      {FIXTURE_EXPRESSIONS}");
    let mut on_source_expected = fixture_expected();
    on_source_expected.push(("log", json!(FIXTURE)));
    let cases: Vec<ExtractCase> = vec![
        (
            "- json:\n    expressions:\n      out: message\n      app:\n      nested:\n      duration:\n      unknown:",
            LOG_LINE,
            vec![],
            vec![
                ("out", json!("this is a log line")),
                ("app", json!("loki")),
                ("nested", json!(r#"{"child":"value"}"#)),
                ("duration", float(125.0)),
                // A path that is not there is stored as null: the key exists.
                ("unknown", Value::Null),
            ],
            vec!["message"],
        ),
        (
            "- json: {expressions: {extra: }}\n- json: {expressions: {user: }, source: extra}",
            LOG_LINE,
            vec![],
            vec![("extra", json!(r#"{"user":"marco"}"#)), ("user", json!("marco"))],
            vec![],
        ),
        (&fixture_on_line, FIXTURE, vec![], fixture_expected(), vec![]),
        (&fixture_on_source, "{}", vec![("log", json!(FIXTURE))], on_source_expected, vec![]),
        // Missing, malformed or null source: nothing changes.
        (
            "- json: {expressions: {app: }, source: log}",
            FIXTURE,
            vec![],
            vec![],
            vec!["app", "log"],
        ),
        (
            "- json: {expressions: {app: }, source: log}",
            FIXTURE,
            vec![("log", json!("not a json"))],
            vec![("log", json!("not a json"))],
            vec!["app"],
        ),
        (
            "- json: {expressions: {app: }, source: log}",
            FIXTURE,
            vec![("log", Value::Null)],
            vec![("log", Value::Null)],
            vec!["app"],
        ),
        ("- json: {expressions: {expr1: }}", "ts=now log=notjson", vec![], vec![], vec!["expr1"]),
        // Quoted identifiers for keys with dots; negative indexes; booleans and null kept.
        (
            "- json:\n    expressions:\n      stream: '\"grpc.stream\"'\n      last: 'a[-1]'\n      ok: flags.ok\n      gone: flags.none\n      deep: 'a[0].b'",
            r#"{"grpc.stream":"server","a":[{"b":"x"},2,3],"flags":{"ok":true,"none":null}}"#,
            vec![],
            vec![
                ("stream", json!("server")),
                ("last", float(3.0)),
                ("ok", json!(true)),
                ("gone", Value::Null),
                ("deep", json!("x")),
            ],
            vec![],
        ),
        // Full JMESPath: functions, projections, multi-select; a search error skips the key.
        (
            "- json:\n    expressions:\n      count: length(component)\n      firsts: 'complex.log.array[*].test1'\n      pair: '[app, level]'\n      bad: 'abs(app)'\n      message:",
            FIXTURE,
            vec![],
            vec![
                ("count", float(2.0)),
                ("firsts", json!(r#"["test2"]"#)),
                ("pair", json!(r#"["loki","WARN"]"#)),
                ("message", json!("this is a log line")),
            ],
            vec!["bad"],
        ),
        // Go decodes `null` to an empty map: every key is null.
        ("- json: {expressions: {a: }}", "null", vec![], vec![("a", Value::Null)], vec![]),
        // Re-serialized values: keys sorted, HTML characters escaped as json-iterator does.
        (
            "- json: {expressions: {obj: }}",
            r#"{"obj":{"z":1.50,"a":"<b>&"}}"#,
            vec![],
            vec![("obj", json!(r#"{"a":"\u003cb\u003e\u0026","z":1.5}"#))],
            vec![],
        ),
        // Integers beyond 2^53 are float64, as in Go.
        (
            "- json: {expressions: {big: }}",
            r#"{"big":12345678901234567890}"#,
            vec![],
            vec![("big", float(12345678901234567890.0))],
            vec![],
        ),
        // The last of duplicate keys wins.
        ("- json: {expressions: {k: }}", r#"{"k":1,"k":"two"}"#, vec![], vec![("k", json!("two"))], vec![]),
    ];
    check_extract_cases("json", cases);
}

#[test]
fn json_malformed_lines_pass_or_drop() {
    for line in [
        "not json",
        "[1,2]",
        "\"a string\"",
        "{\"a\":1} trailing",
        "{\"a\":",
        "",
    ] {
        for expressions in ["{a: }", "{a: 'length(@)'}"] {
            let keep = format!("- json: {{expressions: {expressions}}}");
            let out = run_one(&keep, line, &[]);
            assert_eq!(out.len(), 1, "{keep} {line:?}");
            assert!(!out[0].extracted.contains_key("a"), "{keep} {line:?}");
            let drop = format!("- json: {{expressions: {expressions}, drop_malformed: true}}");
            assert!(run_one(&drop, line, &[]).is_empty(), "{drop} {line:?}");
        }
    }
    // A well-formed line is kept with drop_malformed.
    let out = run_one(
        "- json: {expressions: {a: }, drop_malformed: true}",
        r#"{"a":"x"}"#,
        &[],
    );
    assert_extracted(&out[0], &[("a", json!("x"))], &[]);
}

/// `shared/samples/nginx-access-json.log`, first line, through a typical nginx pipeline's json stage.
#[test]
fn json_sample_nginx_access() {
    let line = r#"{"time_local": "02/Feb/2026:22:00:00 +0900", "remote_addr": "10.1.0.236", "remote_user": "", "request": "POST /api/payments/confirm HTTP/1.1", "status": "201", "body_bytes_sent": "475", "request_time": "0.961", "http_referrer": "", "http_user_agent": "okhttp/4.12", "request_id": "118a9d292f923996d9f195d014822f53"}"#;
    let yaml = "- json:\n    expressions:\n      time: time_local\n      status:\n      method: request\n      request_time:\n      user: remote_user\n      trace: request_id";
    let out = run_with(yaml, line, &[]);
    assert_extracted(
        &out,
        &[
            ("time", json!("02/Feb/2026:22:00:00 +0900")),
            ("status", json!("201")),
            ("method", json!("POST /api/payments/confirm HTTP/1.1")),
            ("request_time", json!("0.961")),
            ("user", json!("")),
            ("trace", json!("118a9d292f923996d9f195d014822f53")),
        ],
        &["remote_addr"],
    );
}

/// `shared/samples/spring-logstash.log`: `@timestamp` needs a quoted identifier; the stack trace keeps
/// its newlines and tabs; `level_value` is a number.
#[test]
fn json_sample_spring_logstash() {
    let line = r#"{"@timestamp": "2026-02-02T13:00:02.329Z", "@version": "1", "message": "payment failed", "logger_name": "com.example.reservation.ReservationService", "thread_name": "http-nio-9092-exec-6", "level": "ERROR", "level_value": 40000, "service": "user-service", "instance": "backend-instance", "requestId": "21a4344fbb7bee03", "stack_trace": "java.lang.IllegalStateException: card declined\n\tat com.example.pay.PayClient.charge(PayClient.java:88)\n"}"#;
    let yaml = "- json:\n    expressions:\n      ts: '\"@timestamp\"'\n      level:\n      level_value:\n      message:\n      stack_trace:\n      request_id: requestId";
    let out = run_with(yaml, line, &[]);
    assert_extracted(
        &out,
        &[
            ("ts", json!("2026-02-02T13:00:02.329Z")),
            ("level", json!("ERROR")),
            ("level_value", float(40000.0)),
            ("message", json!("payment failed")),
            (
                "stack_trace",
                json!("java.lang.IllegalStateException: card declined\n\tat com.example.pay.PayClient.charge(PayClient.java:88)\n"),
            ),
            ("request_id", json!("21a4344fbb7bee03")),
        ],
        &[],
    );
    // A number's string form, as later stages (labels, template) read it, is Go's: 40000.
    assert_eq!(
        super::super::go_string(&out.extracted["level_value"]).as_deref(),
        Some("40000")
    );
}

/// The field-path scanner decodes escaped keys and values, keeps Go's float64 numbers, and reads a
/// nested path from the one top-level value it starts from.
#[test]
fn json_field_paths_decode_escapes_and_numbers() {
    let line = r#"{"st\u0061tus": "5\u00e9\n", "n": -1.5e3, "big": 1e400, "a": {"b": [1, {"c": "d"}]}, "s": "\ud83d\ude00 \ud800"}"#;
    let out = run_with(
        "- json: {expressions: {status: , n: , c: 'a.b[1].c', s: }}",
        line,
        &[],
    );
    assert_extracted(
        &out,
        &[
            ("status", json!("5é\n")),
            ("n", float(-1500.0)),
            ("c", json!("d")),
            // A lone surrogate decodes to U+FFFD, as Go decodes it.
            ("s", json!("😀 \u{fffd}")),
        ],
        &[],
    );
    // A number out of float64 range fails the line when an expression reads it, as in Go.
    let out = run_one(
        "- json: {expressions: {big: }, drop_malformed: true}",
        line,
        &[],
    );
    assert!(out.is_empty());
}
