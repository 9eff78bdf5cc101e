//! `cri`: Promtail's `TestNewCri` and `TestCRI_tags` cases, the sample's P/F pair, holding.

use super::*;

const CRI_TIME: &str = "2019-01-01T01:00:00.000000001Z";

#[test]
fn cri_table() {
    // (input line, line, labels, timestamp)
    let cases: &[(&str, &str, Pairs, i64)] = &[
        (
            "2019-01-01T01:00:00.000000001Z stderr F message",
            "message",
            &[("stream", "stderr")],
            ts(CRI_TIME),
        ),
        (
            "2019-01-01T01:00:00.000000001Z stderr F message\nmessage2",
            "message\nmessage2",
            &[("stream", "stderr")],
            ts(CRI_TIME),
        ),
        // A time that does not parse: nothing to fudge from, the entry keeps its own.
        (
            "3242 stderr F message",
            "message",
            &[("stream", "stderr")],
            INPUT_TS,
        ),
        ("i'm invalid!!!", "i'm invalid!!!", &[], INPUT_TS),
        // Not the CRI shape: unknown stream, missing content separator, tab in the time.
        (
            "2019-01-01T01:00:00Z stdin F x",
            "2019-01-01T01:00:00Z stdin F x",
            &[],
            INPUT_TS,
        ),
        (
            "2019-01-01T01:00:00Z stdout F",
            "2019-01-01T01:00:00Z stdout F",
            &[],
            INPUT_TS,
        ),
        ("2019\t01 stdout F x", "2019\t01 stdout F x", &[], INPUT_TS),
        // Empty content is fine.
        (
            "2019-01-01T01:00:00.000000001Z stdout F ",
            "",
            &[("stream", "stdout")],
            ts(CRI_TIME),
        ),
    ];
    for (input, line, want_labels, timestamp) in cases {
        let out = run_one("- cri: {}", input, &[]);
        assert_eq!(out.len(), 1, "{input:?}");
        assert_eq!(out[0].line, *line, "{input:?}");
        assert_eq!(labels_of(&out[0]), labels(want_labels), "{input:?}");
        assert_eq!(out[0].timestamp, *timestamp, "{input:?}");
    }
}

#[test]
fn cri_sets_the_regex_groups_in_extracted() {
    let out = run_one(
        "- cri:",
        "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!",
        &[],
    );
    // A P line alone is held.
    assert!(out.is_empty());
    let out = run_one(
        "- cri:",
        "2019-01-01T01:00:00.000000001Z stderr F i'm a log message!",
        &[],
    );
    assert_extracted(
        &out[0],
        &[
            ("time", json!(CRI_TIME)),
            ("stream", json!("stderr")),
            ("flags", json!("F")),
            ("content", json!("i'm a log message!")),
        ],
        &[],
    );
}

/// Run labelled lines through one `cri` stage; return the emitted lines in order.
fn run_lines(yaml: &str, lines: &[(&str, &str)]) -> Vec<String> {
    let mut p = build(yaml);
    let mut emitted = Vec::new();
    for (i, (label, line)) in lines.iter().enumerate() {
        let input = item(line, &[("foo", label)], i as u64);
        emitted.extend(p.run_items(vec![input], 0).into_iter().map(|i| i.line));
    }
    emitted
}

/// (stream label, line) pairs fed to the stage.
type Fed = Vec<(&'static str, String)>;

#[test]
fn cri_partial_lines_table() {
    let p1 = "2019-05-07T18:57:50.904275087+00:00 stdout P ";
    let f1 = "2019-05-07T18:57:55.904275087+00:00 stdout F ";
    // (config, (stream label, line) inputs, emitted lines)
    let cases: Vec<(&str, Fed, Vec<&str>)> = vec![
        (
            "- cri: {}",
            vec![("bar", format!("{f1}some full line")), ("bar", format!("{f1}log"))],
            vec!["some full line", "log"],
        ),
        (
            "- cri: {}",
            vec![
                ("bar", format!("{p1}partial line 1 ")),
                ("bar2", format!("{p1}partial line 2 ")),
                ("bar", format!("{f1}log finished")),
                ("bar2", format!("{f1}another full log")),
            ],
            vec!["partial line 1 log finished", "partial line 2 another full log"],
        ),
        (
            "- cri: {max_partial_lines: 3}",
            vec![
                ("bar", format!("{p1}partial line 1 ")),
                ("bar", format!("{p1}partial line 2 ")),
                ("bar", format!("{p1}partial line 3 ")),
                ("bar", format!("{p1}partial line 4 ")),
                ("bar", format!("{f1}log finished")),
                ("bar", format!("{f1}another full log")),
            ],
            vec![
                "partial line 1 partial line 2 partial line 3 partial line 4 log finished",
                "another full log",
            ],
        ),
        // With 3 streams held, a P line of a fourth emits the held ones as they are.
        (
            "- cri: {max_partial_lines: 3}",
            vec![
                ("v1", format!("{p1}partial line 1 ")),
                ("v2", format!("{p1}partial line 2 ")),
                ("v1", format!("{p1}partial line 3 ")),
                ("v3", format!("{p1}partial line 4 ")),
                ("v4", format!("{p1}partial line 5 ")),
                ("v1", format!("{f1}log finished")),
                ("v3", format!("{f1}another full log")),
                ("v4", format!("{f1}yet an another full log")),
            ],
            vec![
                "partial line 1 partial line 3 ",
                "partial line 2 ",
                "partial line 4 ",
                "log finished",
                "another full log",
                "partial line 5 yet an another full log",
            ],
        ),
        (
            "- cri: {max_partial_line_size: 11, max_partial_line_size_truncate: true}",
            vec![
                ("bar", format!("{p1}partial line 1 ")),
                ("bar2", format!("{p1}partial")),
                ("bar", format!("{f1}log finished")),
                ("bar2", format!("{f1}full")),
            ],
            vec!["partial lin", "partialfull"],
        ),
        // Weakly typed values, and a size with a unit.
        (
            "- cri: {max_partial_line_size: '1KB', max_partial_line_size_truncate: 'true', max_partial_lines: '2'}",
            vec![("bar", format!("{p1}a")), ("bar", format!("{f1}b"))],
            vec!["ab"],
        ),
    ];
    for (yaml, inputs, want) in cases {
        let inputs: Vec<(&str, &str)> = inputs.iter().map(|(l, s)| (*l, s.as_str())).collect();
        assert_eq!(run_lines(yaml, &inputs), want, "{yaml} {inputs:?}");
    }
}

/// `shared/samples/cri.log`: the P/F pair, around full lines.
#[test]
fn cri_sample_partial_pair_is_joined_and_held_meanwhile() {
    let mut p = build("- cri: {}");
    let lines = [
        r#"2026-02-02T13:00:02.603000123+00:00 stdout F {"level":"info","msg":"tick 19"}"#,
        "2026-02-02T13:00:02.877000000+00:00 stdout P first half of a long line, ",
        "2026-02-02T13:00:02.877000001+00:00 stdout F second half",
    ];
    let out = p.run_items(vec![item(lines[0], &[("job", "k8s")], 0)], 0);
    assert_eq!(out[0].line, r#"{"level":"info","msg":"tick 19"}"#);
    assert_eq!(p.held_origin(), None);

    let out = p.run_items(vec![item(lines[1], &[("job", "k8s")], 76)], 0);
    assert!(out.is_empty(), "the P line is held");
    assert_eq!(p.held_origin(), Some(76));

    let out = p.run_items(vec![item(lines[2], &[("job", "k8s")], 149)], 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "first half of a long line, second half");
    assert_eq!(out[0].timestamp, ts("2026-02-02T13:00:02.877000001Z"));
    assert_eq!(
        labels_of(&out[0]),
        labels(&[("job", "k8s"), ("stream", "stdout")])
    );
    assert_eq!(
        out[0].origin, 76,
        "the joined entry starts where its first piece does"
    );
    assert_eq!(p.held_origin(), None);
}

#[test]
fn cri_held_partials_are_emitted_at_the_end() {
    let mut p = build("- cri: {}");
    let out = p.run_items(
        vec![
            item("2019-01-01T01:00:00Z stdout P one ", &[], 10),
            item("2019-01-01T01:00:01Z stdout P two", &[], 20),
            item("2019-01-01T01:00:02Z stderr P err", &[], 30),
        ],
        0,
    );
    assert!(out.is_empty());
    assert_eq!(p.held_origin(), Some(10));
    assert_eq!(p.next_deadline(), None, "no timeout, as in Promtail");
    let mut entries = Vec::new();
    p.flush(std::time::Instant::now(), true, &mut entries);
    let lines: Vec<&str> = entries.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, vec!["one two", "err"]);
    assert_eq!(p.held_origin(), None);
}
