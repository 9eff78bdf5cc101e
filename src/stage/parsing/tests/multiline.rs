//! `multiline`: multiline_test.go's cases, the Java sample, timeouts, max_lines, held origins.

use std::time::{Duration, Instant};

use super::*;

const START: &str = "- multiline: {firstline: '^START', max_wait_time: 3s}";

/// A line past the default `max_bytes` (1 MiB), and a block of "START a" and two of them.
static LONG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "x".repeat(600 * 1024));
static LONG_BLOCK: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("START a\n{}\n{}", *LONG, *LONG));

/// Feed (label value, line) pairs one by one, then flush everything; return (label, line) emitted.
fn run_stream(yaml: &str, inputs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p = build(yaml);
    let mut out = Vec::new();
    for (i, (label, line)) in inputs.iter().enumerate() {
        out.extend(p.run_items(vec![item(line, &[("value", label)], i as u64)], 0));
    }
    let mut rest = Vec::new();
    p.flush(Instant::now(), true, &mut rest);
    let mut emitted: Vec<(String, String)> = out
        .iter()
        .map(|i| (i.labels.get("value").unwrap().to_owned(), i.line.clone()))
        .collect();
    emitted.extend(
        rest.iter()
            .map(|e| (e.labels.get("value").unwrap().to_owned(), e.line.clone())),
    );
    emitted
}

/// (label value, line) pairs.
type Lines<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn multiline_table() {
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // (config, inputs, emitted in order)
    let cases: Vec<(&str, Lines, Lines)> = vec![
        (
            START,
            vec![
                ("label", "not a start line before 1"),
                ("label", "not a start line before 2"),
                ("label", "START line 1"),
                ("label", "not a start line"),
                ("label", "START line 2"),
                ("label", "START line 3"),
            ],
            vec![
                ("label", "not a start line before 1"),
                ("label", "not a start line before 2"),
                ("label", "START line 1\nnot a start line"),
                ("label", "START line 2"),
                ("label", "START line 3"),
            ],
        ),
        (
            START,
            vec![
                ("one", "START line 1"),
                ("one", "not a start line 1"),
                ("two", "START line 1"),
                ("one", "not a start line 2"),
                ("two", "START line 2"),
                ("one", "START line 2"),
                ("one", "not a start line 1"),
            ],
            vec![
                ("two", "START line 1"),
                (
                    "one",
                    "START line 1\nnot a start line 1\nnot a start line 2",
                ),
                ("two", "START line 2"),
                ("one", "START line 2\nnot a start line 1"),
            ],
        ),
        // max_lines: a block of 2 is emitted at once; Promtail's quirk then starts a new block with
        // the following non-first line.
        (
            "- multiline: {firstline: '^START', max_lines: '2'}",
            vec![
                ("l", "START a"),
                ("l", "  1"),
                ("l", "  2"),
                ("l", "  3"),
                ("l", "START b"),
            ],
            vec![("l", "START a\n  1"), ("l", "  2\n  3"), ("l", "START b")],
        ),
        // max_bytes: a line that would take the block past 16 bytes emits the block first; a line
        // of 16 bytes or more is a block of its own at once; then the quirk again.
        (
            "- multiline: {firstline: '^START', max_bytes: 16}",
            vec![
                ("l", "START a"),
                ("l", "  12345"),
                ("l", "  1"),
                ("l", "  0123456789abcdef"),
                ("l", "  2"),
                ("l", "START b"),
            ],
            vec![
                ("l", "START a\n  12345"),
                ("l", "  1"),
                ("l", "  0123456789abcdef"),
                ("l", "  2"),
                ("l", "START b"),
            ],
        ),
        // A byte size as Promtail's other sizes are written; 0 is no limit.
        (
            "- multiline: {firstline: '^START', max_bytes: 1kb}",
            vec![("l", "START a"), ("l", "  12345"), ("l", "  1")],
            vec![("l", "START a\n  12345\n  1")],
        ),
        (
            "- multiline: {firstline: '^START', max_bytes: 0, max_lines: 0}",
            vec![("l", "START a"), ("l", &*LONG), ("l", &*LONG)],
            vec![("l", &*LONG_BLOCK)],
        ),
    ];
    for (yaml, inputs, want) in cases {
        assert_eq!(run_stream(yaml, &inputs), pairs(&want), "{yaml}");
    }
}

#[test]
fn multiline_block_keeps_the_first_lines_entry() {
    let mut p =
        build("- regex: {expression: '^(?P<word>\\w+)'}\n- multiline: {firstline: '^START'}");
    let mut first = item("START here", &[("job", "j")], 100);
    first.timestamp = 5;
    first.metadata = vec![("trace_id".into(), "abc".into())];
    let mut second = item("continued", &[("job", "j")], 111);
    second.timestamp = 9;
    let mut out = p.run_items(vec![first, second], 0);
    assert!(out.is_empty());
    let mut end = Vec::new();
    p.flush(Instant::now(), true, &mut end);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].line, "START here\ncontinued");
    assert_eq!(end[0].timestamp, 5);
    assert_eq!(
        end[0].metadata,
        vec![("trace_id".to_owned(), "abc".to_owned())]
    );
    // Through run_items the extracted map is visible too.
    let mut p =
        build("- regex: {expression: '^(?P<word>\\w+)'}\n- multiline: {firstline: '^START'}");
    p.run_items(
        vec![item("START here", &[], 0), item("continued", &[], 11)],
        0,
    );
    out.extend(p.run_items(vec![item("START next", &[], 21)], 0));
    assert_eq!(out.len(), 1);
    assert_extracted(&out[0], &[("word", json!("START"))], &[]);
    assert_eq!(out[0].origin, 0);
}

#[test]
fn multiline_idle_timeout_flushes_without_new_lines() {
    let mut p = build("- multiline: {firstline: '^START', max_wait_time: 2s}");
    let before = Instant::now();
    let out = p.run_items(vec![item("START line", &[("value", "label")], 40)], 0);
    assert!(out.is_empty());
    assert_eq!(p.held_origin(), Some(40));
    let deadline = p.next_deadline().expect("a held block has a deadline");
    assert!(deadline >= before + Duration::from_secs(2));
    assert!(deadline <= Instant::now() + Duration::from_secs(2));

    // Not yet due: nothing.
    let mut entries = Vec::new();
    p.flush(deadline - Duration::from_millis(1), false, &mut entries);
    assert!(entries.is_empty());
    // Due: the block is emitted, nothing is held any more.
    p.flush(deadline, false, &mut entries);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].line, "START line");
    assert_eq!(p.held_origin(), None);
    assert_eq!(p.next_deadline(), None);

    // Promtail's quirk: a later non-first line starts a new block from the old first line's entry.
    let out = p.run_items(
        vec![item(
            "not a start line hitting timeout",
            &[("value", "label")],
            51,
        )],
        0,
    );
    assert!(out.is_empty());
    assert_eq!(p.held_origin(), Some(51));
    let mut entries = Vec::new();
    p.flush(Instant::now() + Duration::from_secs(3), false, &mut entries);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].line, "not a start line hitting timeout");
}

#[test]
fn multiline_each_line_resets_the_idle_timer() {
    let mut p = build("- multiline: {firstline: '^START', max_wait_time: 500ms}");
    p.run_items(vec![item("START", &[], 0)], 0);
    let first_deadline = p.next_deadline().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    p.run_items(vec![item("  more", &[], 6)], 0);
    assert!(p.next_deadline().unwrap() > first_deadline);
    let mut entries = Vec::new();
    p.flush(first_deadline, false, &mut entries);
    assert!(entries.is_empty(), "the block is not idle yet");
}

/// `shared/samples/java-multiline.log`: stack traces joined to their log line.
#[test]
fn multiline_sample_java_stack_traces() {
    let lines = [
        "2026-02-02 13:00:01.096 INFO  [main] c.e.TicketApp - tick 8",
        "2026-02-02 13:00:01.233 INFO  [main] c.e.TicketApp - tick 9",
        "2026-02-02 13:00:01.233 ERROR [http-1] c.e.TicketApp - request failed",
        "java.lang.NullPointerException: seat is null",
        "\tat c.e.Seat.book(Seat.java:12)",
        "\tat c.e.TicketApp.handle(TicketApp.java:77)",
        "Caused by: java.io.IOException: broken pipe",
        "\t... 3 more",
        "2026-02-02 13:00:01.370 INFO  [main] c.e.TicketApp - tick 10",
    ];
    let yaml = r"- multiline:
    firstline: '^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}'
    max_wait_time: 3s";
    let mut p = build(yaml);
    let mut origin = 0;
    let items: Vec<Item> = lines
        .iter()
        .map(|l| {
            let it = item(l, &[("job", "java")], origin);
            origin += l.len() as u64 + 1;
            it
        })
        .collect();
    let out = p.run_items(items, 0);
    let got: Vec<&str> = out.iter().map(|i| i.line.as_str()).collect();
    assert_eq!(
        got,
        vec![
            lines[0],
            lines[1],
            "2026-02-02 13:00:01.233 ERROR [http-1] c.e.TicketApp - request failed\njava.lang.NullPointerException: seat is null\n\tat c.e.Seat.book(Seat.java:12)\n\tat c.e.TicketApp.handle(TicketApp.java:77)\nCaused by: java.io.IOException: broken pipe\n\t... 3 more",
        ]
    );
    let error_origin: u64 = lines[..2].iter().map(|l| l.len() as u64 + 1).sum();
    assert_eq!(out[2].origin, error_origin);
    // The last line is held until the next first line or the timeout.
    let last_origin: u64 = lines[..8].iter().map(|l| l.len() as u64 + 1).sum();
    assert_eq!(p.held_origin(), Some(last_origin));
}

/// By default a block holds at most 1 MiB of text: non-first lines of 600 KiB (a block of 128 of
/// them would be 75 MiB per stream) are emitted one block per line past the first.
#[test]
fn multiline_blocks_are_bounded_in_bytes_by_default() {
    let inputs: Vec<(&str, &str)> = std::iter::once(("l", "START a"))
        .chain(std::iter::repeat_n(("l", LONG.as_str()), 6))
        .collect();
    let out = run_stream("- multiline: {firstline: '^START'}", &inputs);
    let sizes: Vec<usize> = out.iter().map(|(_, l)| l.len()).collect();
    let long = LONG.len();
    assert_eq!(sizes, [8 + long, long, long, long, long, long]);
    assert_eq!(out[0].1, format!("START a\n{}", *LONG));
}
