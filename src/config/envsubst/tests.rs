//! Table tests against drone/envsubst's documented and observed behaviour.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("web-01".into()),
        "EMPTY" => Some(String::new()),
        "PORT" => Some("3100".into()),
        "LOKI_URL" => Some("http://loki:3100/loki/api/v1/push".into()),
        "MIXED" => Some("hello World".into()),
        "PATH_VAR" => Some("/var/log/app/file.log".into()),
        "FALLBACK" => Some("fb".into()),
        _ => None,
    }
}

#[test]
fn expands_like_drone_envsubst() {
    let cases: &[(&str, &str)] = &[
        ("plain text", "plain text"),
        ("${HOST}", "web-01"),
        ("host: ${HOST}:${PORT}", "host: web-01:3100"),
        ("${UNSET}", ""),
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${HOST:-def}", "web-01"),
        ("${UNSET:=def}", "def"),
        ("${UNSET=def}", "def"),
        ("${UNSET:?must be set}", "must be set"),
        ("${HOST:?must be set}", "web-01"),
        ("${UNSET:+alt}", "alt"),
        ("${HOST:+alt}", "web-01"),
        ("${UNSET:-}", ""),
        ("${UNSET:-${FALLBACK}}", "fb"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a ${HOST} b}", "a web-01 b"),
        ("$HOST", "$HOST"),
        ("cost $5", "cost $5"),
        ("$$", "$"),
        ("$${1}", "${1}"),
        ("$${HOST}", "${HOST}"),
        ("replacement: $1", "replacement: $1"),
        ("regex: '\\\\d+'", "regex: '\\d+'"),
        ("\\/", "/"),
        ("a\\b", "a\\b"),
        ("\\\\\\\\", "\\\\"),
        ("# comment ${HOST}", "# comment web-01"),
        ("${#HOST}", "6"),
        ("${#UNSET}", "0"),
        ("${MIXED^^}", "HELLO WORLD"),
        ("${MIXED,,}", "hello world"),
        ("${MIXED^}", "Hello World"),
        ("${HOST,}", "web-01"),
        ("${HOST:4}", "01"),
        ("${HOST:0:3}", "web"),
        ("${HOST:1:100}", "eb-01"),
        ("${HOST:100}", ""),
        ("${HOST:x}", "web-01"),
        ("${PATH_VAR#*/}", "var/log/app/file.log"),
        ("${PATH_VAR##*/}", "file.log"),
        ("${PATH_VAR%/*}", "/var/log/app"),
        ("${PATH_VAR%%/*}", ""),
        ("${PATH_VAR%.log}", "/var/log/app/file"),
        ("${HOST/0/x}", "web-x1"),
        ("${PATH_VAR//\\//_}", "_var_log_app_file.log"),
        ("${PATH_VAR//a/A}", "/vAr/log/App/file.log"),
        ("${HOST/#web/db}", "db-01"),
        ("${HOST/#nope/db}", "web-01"),
        ("${HOST/%01/02}", "web-02"),
        ("${HOST/-/}", "web01"),
        ("url: ${LOKI_URL}", "url: http://loki:3100/loki/api/v1/push"),
        ("${HÖST_ÜNSET:-ü}", "ü"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, env).as_deref(), Ok(*want), "input {input:?}");
    }
}

#[test]
fn reports_drone_errors_with_position() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("${VAR-def}", 1, 1, "missing closing brace"),
        ("a: 1\nb: ${HOST\nc: 2", 2, 4, "missing closing brace"),
        ("x: ${", 1, 4, "unable to parse variable name"),
        ("${}", 1, 1, "unable to parse variable name"),
        ("${ HOST}", 1, 1, "unable to parse variable name"),
        (
            "${HOST:-abc",
            1,
            1,
            "unable to parse substitution within function",
        ),
        (
            "ok\n  ${A:-${B}",
            2,
            3,
            "unable to parse substitution within function",
        ),
        ("${A:-${B-x}}", 1, 6, "missing closing brace"),
        (
            "${HOST#}",
            1,
            1,
            "unable to parse substitution within function",
        ),
        ("${HOST^^x}", 1, 1, "bad substitution"),
        ("$$ \\\\ ${X", 1, 7, "missing closing brace"),
    ];
    for (input, line, column, message) in cases {
        let err = expand(input, env).unwrap_err();
        assert_eq!(
            (err.line, err.column, err.message.as_str()),
            (*line, *column, *message),
            "input {input:?}"
        );
    }
    let err = expand("a: 1\nb: ${HOST\n", env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, column 4: missing closing brace in \"${HOST\""
    );
}
