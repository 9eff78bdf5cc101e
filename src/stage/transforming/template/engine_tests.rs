//! The template engine against Go `text/template` and sprig behaviour.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::exec::{Data, Env, Template};
use crate::stage::Extracted;

/// Render `src` with `.Value` = `value`, `.Entry` = "the line" and `extracted`.
fn render(src: &str, value: Option<&str>, extracted: Value) -> Result<String, String> {
    let template = Template::parse(src)?;
    let extracted: Extracted = match extracted {
        Value::Object(m) => m.into_iter().collect(),
        _ => Extracted::new(),
    };
    let data = Data {
        extracted: &extracted,
        value: value.map(Cow::Borrowed),
        entry: Some("the line"),
    };
    let mut out = String::new();
    template.render(&data, &mut Env::default(), &mut out)?;
    Ok(out)
}

fn ok(src: &str, value: &str) -> String {
    render(
        src,
        Some(value),
        json!({"module": "api", "n": 12.5, "nothing": null}),
    )
    .unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn go_template_syntax() {
    // (template, .Value, expected output)
    let cases = [
        ("plain text", "v", "plain text"),
        ("{{ .Value }}", "v", "v"),
        ("{{.missing}}", "v", "<no value>"),
        ("{{ .nothing }}", "v", "<no value>"),
        ("{{ .n }}", "v", "12.5"),
        ("{{ .Entry }}", "v", "the line"),
        ("a  {{- .Value -}}  b", "v", "avb"),
        ("a {{- /* comment */ -}} b", "v", "ab"),
        ("{{/* comment */}}x", "v", "x"),
        ("a\n{{- .Value }}\n", "v", "av\n"),
        ("{{-3}}", "v", "-3"),
        ("{{ $x := .Value }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", "a", "ab"),
        ("{{ if eq .Value \"a\" }}A{{ else if eq .Value \"b\" }}B{{ else }}C{{ end }}", "b", "B"),
        ("{{ if eq .Value \"a\" }}A{{ else if eq .Value \"b\" }}B{{ else }}C{{ end }}", "z", "C"),
        ("{{ if .missing }}yes{{ end }}", "v", ""),
        ("{{ with .missing }}yes{{ else }}no{{ end }}", "v", "no"),
        ("{{ with .Value }}<{{ . }}>{{ end }}", "v", "<v>"),
        ("{{ with .missing }}X{{ else with .Value }}V{{ . }}{{ end }}", "v", "Vv"),
        ("{{ with \"x\" }}{{ $.Value }}{{ . }}{{ end }}", "v", "vx"),
        ("{{ if $y := .Value }}{{ $y }}{{ end }}", "v", "v"),
        ("{{ range $i, $v := splitList \",\" .Value }}{{ $i }}={{ $v }};{{ end }}", "a,b", "0=a;1=b;"),
        ("{{ range splitList \",\" .Value }}[{{ . }}]{{ end }}", "a,b", "[a][b]"),
        ("{{ range $k, $v := dict \"b\" 2 \"a\" 1 }}{{ $k }}{{ $v }}{{ end }}", "v", "a1b2"),
        ("{{ range list }}x{{ else }}empty{{ end }}", "v", "empty"),
        ("{{ range .missing }}x{{ else }}none{{ end }}", "v", "none"),
        ("{{ range $i := 3 }}{{ $i }}{{ end }}", "v", "012"),
        (
            "{{ range $v := list 1 2 3 4 }}{{ if eq $v 2 }}{{ continue }}{{ end }}{{ if eq $v 4 }}{{ break }}{{ end }}{{ $v }}{{ end }}",
            "v",
            "13",
        ),
        ("{{ or .missing \"default\" }}", "v", "default"),
        ("{{ and .Value \"second\" }}", "v", "second"),
        // Short-circuit: ToUpper is not called with the missing value.
        ("{{ and .missing (ToUpper .missing) }}", "v", "<no value>"),
        ("{{ or .Value (ToUpper .missing) }}", "v", "v"),
        ("{{ not .missing }}", "v", "true"),
        ("{{ eq .missing \"x\" }}", "v", "false"),
        ("{{ eq .Value \"a\" \"v\" }}", "v", "true"),
        ("{{ ne .Value \"v\" }}", "v", "false"),
        ("{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 1.2 }} {{ ge \"a\" \"b\" }}", "v", "true true true false"),
        ("{{ len .Value }}", "abc", "3"),
        ("{{ index (fromJson .Value) \"a\" }}", r#"{"a":"x"}"#, "x"),
        ("{{ (fromJson .Value).a.b }}", r#"{"a":{"b":[1,2]}}"#, "[1 2]"),
        ("{{ (fromJson .Value).missing }}", r#"{"a":1}"#, "<no value>"),
        ("{{ index (list 1 2 3) 1 }}", "v", "2"),
        ("{{ index .Value 0 }}", "A", "65"),
        ("{{ slice .Value 1 3 }}", "abcd", "bc"),
        ("{{ printf \"%s-%05.1f\" .Value 3.14159 }}", "a", "a-003.1"),
        ("{{ printf \"%d items\" (len .Value) }}", "abc", "3 items"),
        ("{{ print 1 2 \"a\" 3 }}", "v", "1 2a3"),
        ("{{ println \"a\" \"b\" }}", "v", "a b\n"),
        ("{{ (ToUpper .Value) | ToLower }}", "MiXed", "mixed"),
        ("{{ .Value | printf \"%s!\" }}", "v", "v!"),
        ("{{ \"a\\tb\" }}", "v", "a\tb"),
        ("{{ `raw\\n` }}", "v", "raw\\n"),
        ("{{ 'a' }} {{ 1.5 }} {{ 0x10 }} {{ true }} {{ 1e3 }} {{ 1_000 }}", "v", "97 1.5 16 true 1000 1000"),
        ("{{ html \"<a href='x'>\" }}", "v", "&lt;a href=&#39;x&#39;&gt;"),
        ("{{ urlquery \"a b&c\" }}", "v", "a+b%26c"),
        ("{{ . }}", "v", "map[Entry:the line Value:v module:api n:12.5]"),
    ];
    for (src, value, want) in cases {
        assert_eq!(ok(src, value), want, "{src}");
    }
}

#[test]
fn promtail_functions() {
    let cases = [
        ("{{ ToLower .Value }}", "AbC", "abc"),
        ("{{ ToUpper .Value }}", "AbC", "ABC"),
        ("{{ Replace .Value \"a\" \"b\" 1 }}", "aaa", "baa"),
        ("{{ Replace .Value \"a\" \"b\" -1 }}", "aaa", "bbb"),
        ("{{ Trim .Value \"!?\" }}", "?!x!?", "x"),
        ("{{ TrimLeft .Value \"!\" }}", "!!x!!", "x!!"),
        ("{{ TrimRight .Value \"!\" }}", "!!x!!", "!!x"),
        ("{{ TrimPrefix .Value \"pre\" }}", "prefix", "fix"),
        ("{{ TrimSuffix .Value \"fix\" }}", "prefix", "pre"),
        ("{{ TrimSpace .Value }}", " \t x \n", "x"),
        (
            "{{ Hash .Value \"salt\" }}",
            "this is PII data",
            "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658",
        ),
        (
            "{{ Sha2Hash .Value \"salt\" }}",
            "this is PII data",
            "5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2",
        ),
        (
            "{{ regexReplaceAll \"( |Of)\" .Value \"_\" }}",
            "Some Silly Value With Lots Of Spaces",
            "Some_Silly_Value_With_Lots___Spaces",
        ),
        (
            "{{ regexReplaceAll \"(\\\\w+)@(\\\\w+)\" .Value \"${2}-$1\" }}",
            "me@host",
            "host-me",
        ),
        ("{{ regexReplaceAll \"a\" .Value \"$1x\" }}", "bab", "bb"),
        (
            "{{ regexReplaceAllLiteral \"a\" .Value \"$1\" }}",
            "bab",
            "b$1b",
        ),
        // Go's RE2 syntax: \pL and (?i) work.
        (
            "{{ regexReplaceAll \"(?i)secret=\\\\S+\" .Value \"secret=***\" }}",
            "SECRET=x y",
            "secret=*** y",
        ),
    ];
    for (src, value, want) in cases {
        assert_eq!(ok(src, value), want, "{src}");
    }
}

#[test]
fn sprig_functions() {
    let cases = [
        ("{{ .missing | default \"d\" }}", "v", "d"),
        ("{{ default \"d\" .Value }}", "v", "v"),
        ("{{ default \"d\" \"\" }}", "v", "d"),
        ("{{ empty .Value }} {{ empty .missing }}", "v", "false true"),
        ("{{ coalesce .missing \"\" .Value }}", "v", "v"),
        ("{{ ternary \"yes\" \"no\" (eq .Value \"v\") }}", "v", "yes"),
        ("{{ trim .Value }}|{{ upper .Value }}|{{ lower \"AB\" }}", " x ", "x| X |ab"),
        ("{{ title .Value }}", "hello wide world", "Hello Wide World"),
        ("{{ trimAll \"$\" .Value }}", "$5.00$", "5.00"),
        ("{{ trimPrefix \"a\" .Value }} {{ trimSuffix \"c\" .Value }}", "abc", "bc ab"),
        ("{{ contains \"ell\" .Value }} {{ hasPrefix \"he\" .Value }} {{ hasSuffix \"lo\" .Value }}", "hello", "true true true"),
        ("{{ replace \" \" \"-\" .Value }}", "a b c", "a-b-c"),
        ("{{ repeat 3 .Value }}", "ab", "ababab"),
        ("{{ substr 0 5 .Value }}", "hello world", "hello"),
        ("{{ substr 6 -1 .Value }}", "hello world", "world"),
        ("{{ trunc 5 .Value }} {{ trunc -5 .Value }}", "hello world", "hello world"),
        ("{{ nospace .Value }}", "a b\tc", "abc"),
        ("{{ indent 2 .Value }}", "a\nb", "  a\n  b"),
        ("{{ quote .Value 1 }} {{ squote .Value }}", "x\"y", "\"x\\\"y\" \"1\" 'x\"y'"),
        ("{{ cat \"a\" 1 .missing \"b\" }}", "v", "a 1 b"),
        ("{{ toString 12 }}{{ atoi \"42\" }}{{ int \"7\" }}", "v", "12427"),
        ("{{ b64enc .Value }}", "hello", "aGVsbG8="),
        ("{{ b64dec .Value }}", "aGVsbG8=", "hello"),
        ("{{ b64dec .Value }}", "!!", "illegal base64 data at input byte 0"),
        ("{{ add 1 2 \"3\" }} {{ add1 1 }} {{ sub 5 7 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }}", "v", "6 2 -2 24 3 1"),
        ("{{ max 1 5 3 }} {{ min 4 2 8 }}", "v", "5 2"),
        ("{{ add .Value 1 }}", "41", "42"),
        ("{{ splitList \",\" .Value | join \"+\" }}", "a,b,c", "a+b+c"),
        ("{{ (split \",\" .Value)._1 }}", "a,b,c", "b"),
        ("{{ list 1 \"a\" | first }} {{ list 1 \"a\" | last }} {{ rest (list 1 2 3) }} {{ initial (list 1 2 3) }}", "v", "1 a [2 3] [1 2]"),
        ("{{ has 2 (list 1 2) }}", "v", "true"),
        ("{{ get (dict \"a\" \"x\") \"a\" }}{{ get (dict) \"b\" }}|{{ hasKey (dict \"a\" 1) \"a\" }}", "v", "x|true"),
        ("{{ keys (dict \"b\" 1 \"a\" 2) }}", "v", "[a b]"),
        ("{{ toJson (dict \"a\" 1 \"b\" (list \"<x>\" .missing)) }}", "v", r#"{"a":1,"b":["\u003cx\u003e",null]}"#),
        ("{{ toRawJson (list \"<x>\") }}", "v", r#"["<x>"]"#),
        ("{{ toJson .Value }}", "a\"b", r#""a\"b""#),
        ("{{ (fromJson .Value).n }}", r#"{"n": 3}"#, "3"),
        ("{{ fromJson .Value }}", "not json", "<no value>"),
        ("{{ regexMatch \"^a+$\" .Value }} {{ regexMatch \"(\" .Value }}", "aaa", "true false"),
        ("{{ regexFind \"[0-9]+\" .Value }}", "ab123cd45", "123"),
        ("{{ regexFindAll \"[0-9]+\" .Value -1 }}", "ab123cd45", "[123 45]"),
        ("{{ regexSplit \"[,;]\" .Value -1 }}", "a,b;c", "[a b c]"),
        ("{{ regexQuoteMeta .Value }}", "a.b", "a\\.b"),
        ("{{ sha256sum .Value }}", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{{ dateInZone \"2006-01-02T15:04:05Z07:00\" 86400 \"UTC\" }}", "v", "1970-01-02T00:00:00Z"),
        ("{{ dateInZone \"Jan _2 15:04:05.000 MST\" 1 \"UTC\" }}", "v", "Jan  1 00:00:01.000 UTC"),
        ("{{ toDate \"2006-01-02T15:04:05Z07:00\" .Value | unixEpoch }}", "2020-03-04T05:06:07+02:00", "1583291167"),
    ];
    for (src, value, want) in cases {
        assert_eq!(ok(src, value), want, "{src}");
    }
    // now/date/unixEpoch give the current time.
    let epoch: i64 = ok("{{ now | unixEpoch }}", "v").parse().unwrap();
    assert!((epoch - jiff::Timestamp::now().as_second()).abs() < 5);
    assert_eq!(ok("{{ date \"2006\" now }}", "v").len(), 4);
}

#[test]
fn execution_errors() {
    // Each leaves the stage's entry unchanged; the message says why.
    let cases = [
        ("{{ ToUpper .missing }}", "invalid value; expected string"),
        ("{{ .missing | ToUpper }}", "invalid value; expected string"),
        ("{{ ToUpper 3 }}", "expected string; got int"),
        ("{{ ToUpper }}", "wrong number of args"),
        ("{{ len .missing }}", "len of nil pointer"),
        ("{{ index (list 1) 5 }}", "index out of range: 5"),
        ("{{ index .missing 1 }}", "index of untyped nil"),
        ("{{ lt 1 \"a\" }}", "incompatible types for comparison"),
        ("{{ eq 1 \"a\" }}", "incompatible types for comparison"),
        ("{{ regexReplaceAll \"(\" .Value \"x\" }}", "regexp"),
        (
            "{{ .Value.field }}",
            "can't evaluate field field in type string",
        ),
        ("{{ .Value 1 }}", "can't give argument to non-function"),
        ("{{ div 1 0 }}", "integer divide by zero"),
        (
            "{{ range .Value }}{{ end }}",
            "range can't iterate over string",
        ),
        ("{{ first .Value }}", "Cannot find"),
        (
            "{{ range 2000000 }}{{ end }}",
            "more than 1000000 iterations",
        ),
        ("{{ repeat 100000000 \"ab\" }}", "repeat: result over"),
    ];
    for (src, want) in cases {
        let err = render(src, Some("v"), json!({})).expect_err(src);
        assert!(err.contains(want), "{src}: {err}");
    }
}

#[test]
fn parse_errors() {
    let cases = [
        ("{{ nosuch }}", r#"function "nosuch" not defined"#),
        ("{{ .Value ", "unclosed action"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ if .Value }}", "unexpected EOF"),
        ("{{ $undefined }}", "undefined variable"),
        (
            "{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}",
            "undefined variable",
        ),
        ("{{ break }}", "outside {{range}}"),
        ("{{ \"unterminated }}", "unterminated quoted string"),
        ("{{ define \"x\" }}{{ end }}", "not supported"),
        (
            "{{/* comment */ x }}",
            "comment ends before closing delimiter",
        ),
        ("{{ 3 | 4 }}", "non executable command"),
        ("{{ ( .Value }}", "unclosed left paren"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ 1x }}", "bad number syntax"),
    ];
    for (src, want) in cases {
        let err = Template::parse(src).expect_err(src);
        assert!(err.contains(want), "{src}: {err}");
    }
}
