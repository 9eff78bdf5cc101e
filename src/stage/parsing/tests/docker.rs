//! `docker`: Promtail's `TestNewDocker` cases and the json-file sample.

use super::*;

const DOCKER: &str = "- docker: {}";

/// From Promtail's extensions_test.go: a logfmt line inside Docker's JSON, with escaped quotes.
const DOCKER_RAW: &str = r#"{"log":"level=info ts=2019-04-30T02:12:41.844179Z caller=filetargetmanager.go:180 msg=\"Adding target\" key=\"{com_docker_deploy_namespace=\\\"docker\\\", container_name=\\\"compose\\\"}\"\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}"#;
const DOCKER_PROCESSED: &str = "level=info ts=2019-04-30T02:12:41.844179Z caller=filetargetmanager.go:180 msg=\"Adding target\" key=\"{com_docker_deploy_namespace=\\\"docker\\\", container_name=\\\"compose\\\"}\"\n";

#[test]
fn docker_table() {
    // (input line, input labels, line, labels, timestamp)
    let cases: &[(&str, Pairs, &str, Pairs, i64)] = &[
        (
            DOCKER_RAW,
            &[],
            DOCKER_PROCESSED,
            &[("stream", "stderr")],
            ts("2019-04-30T02:12:41.8443515Z"),
        ),
        // The docs' example: the trailing newline of `log` is kept.
        (
            r#"{"log":"log message\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}"#,
            &[("job", "varlogs")],
            "log message\n",
            &[("job", "varlogs"), ("stream", "stderr")],
            ts("2019-04-30T02:12:41.8443515Z"),
        ),
        // A bad time on the first line of a stream: nothing to fudge from, the entry keeps its time.
        (
            r#"{"log":"log message\n","stream":"stderr","time":"hi!"}"#,
            &[],
            "log message\n",
            &[("stream", "stderr")],
            INPUT_TS,
        ),
        // Not JSON: unchanged.
        ("i'm not json!", &[], "i'm not json!", &[], INPUT_TS),
        // JSON without `log`: the line stays, the other fields still apply.
        (
            r#"{"stream":"stdout","time":"2019-04-30T02:12:41Z"}"#,
            &[],
            r#"{"stream":"stdout","time":"2019-04-30T02:12:41Z"}"#,
            &[("stream", "stdout")],
            ts("2019-04-30T02:12:41Z"),
        ),
    ];
    for (input, input_labels, line, want_labels, timestamp) in cases {
        let out = run_one(DOCKER, input, input_labels);
        assert_eq!(out.len(), 1, "{input}");
        assert_eq!(out[0].line, *line, "{input}");
        assert_eq!(labels_of(&out[0]), labels(want_labels), "{input}");
        assert_eq!(out[0].timestamp, *timestamp, "{input}");
    }
}

#[test]
fn docker_sets_extracted_like_its_json_stage() {
    let out = run_one(DOCKER, DOCKER_RAW, &[]);
    assert_extracted(
        &out[0],
        &[
            ("output", json!(DOCKER_PROCESSED)),
            ("stream", json!("stderr")),
            ("timestamp", json!("2019-04-30T02:12:41.8443515Z")),
        ],
        &[],
    );
    // A malformed line sets nothing.
    let out = run_one(DOCKER, "plain text", &[]);
    assert_extracted(&out[0], &[], &["output", "stream", "timestamp"]);
}

#[test]
fn docker_fudges_a_bad_time_from_the_streams_last_good_one() {
    let mut p = build(DOCKER);
    let good = r#"{"log":"a\n","stream":"stdout","time":"2026-02-02T13:00:00.000000123Z"}"#;
    let bad = r#"{"log":"b\n","stream":"stdout","time":"not a time"}"#;
    let other_stream = r#"{"log":"c\n","stream":"stderr","time":"garbage"}"#;
    let out = p.run_items(
        vec![
            item(good, &[], 0),
            item(bad, &[], 1),
            item(bad, &[], 2),
            item(other_stream, &[], 3),
            item("not json", &[], 4),
        ],
        0,
    );
    let want = ts("2026-02-02T13:00:00.000000123Z");
    let stamps: Vec<i64> = out.iter().map(|i| i.timestamp).collect();
    // The stderr stream has no good time yet; the non-JSON line has no `stream` label, so it is
    // another label set as well.
    assert_eq!(stamps, vec![want, want + 1, want + 2, INPUT_TS, INPUT_TS]);
}

/// `shared/samples/docker-json-file.log`: a regular line, then a 20 KB line Docker split at 16 KiB.
/// Promtail's docker stage emits each piece as its own entry (only the last ends with `\n`).
#[test]
fn docker_sample_json_file_with_split_line() {
    let regular = r#"{"log": "{\"level\": \"info\", \"msg\": \"queue tick 0\"}\n", "stream": "stdout", "time": "2026-02-02T13:00:00.000000123Z"}"#;
    let head = "y".repeat(16 * 1024);
    let tail = "y".repeat(20 * 1000 - 16 * 1024);
    let first_piece = format!(
        r#"{{"log": "{head}", "stream": "stderr", "time": "2026-02-02T13:00:04.247000000Z"}}"#
    );
    let last_piece = format!(
        r#"{{"log": "{tail}\n", "stream": "stderr", "time": "2026-02-02T13:00:04.247000001Z"}}"#
    );
    let mut p = build(DOCKER);
    let out = p.run_items(
        vec![
            item(regular, &[("job", "docker")], 0),
            item(&first_piece, &[("job", "docker")], 124),
            item(&last_piece, &[("job", "docker")], 16581),
        ],
        0,
    );
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].line,
        "{\"level\": \"info\", \"msg\": \"queue tick 0\"}\n"
    );
    assert_eq!(
        labels_of(&out[0]),
        labels(&[("job", "docker"), ("stream", "stdout")])
    );
    assert_eq!(out[0].timestamp, ts("2026-02-02T13:00:00.000000123Z"));
    assert_eq!(out[1].line, head);
    assert_eq!(out[1].line.len(), 16384);
    assert_eq!(out[2].line, format!("{tail}\n"));
    assert_eq!(out[2].timestamp, ts("2026-02-02T13:00:04.247000001Z"));
    assert_eq!(
        labels_of(&out[2]),
        labels(&[("job", "docker"), ("stream", "stderr")])
    );
    assert_eq!(
        out.iter().map(|i| i.origin).collect::<Vec<_>>(),
        vec![0, 124, 16581]
    );
}
