//! Pipeline stage behaviour that depends on time and on the source, end to end with the real agent
//! tailing real files into a Loki receiver: a `multiline` block nested in `match` is sent when the
//! file goes quiet, as a top-level one is; `limit` without `drop` paces the file's reading (the
//! backlog waits on disk) instead of dropping or queueing it in memory.

mod common;

use std::time::{Duration, Instant};

use common::fixtures::{start_agent, TestConfig};
use common::{count_loss, http, process, Counts, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(20);

/// A `multiline` stage inside `match` holds a block until `max_wait_time` passes without a new line;
/// the file tailer then flushes it although nothing more is written, as for a top-level one.
#[test]
fn a_multiline_block_nested_in_match_is_sent_when_the_file_goes_quiet() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let cfg = TestConfig::new(loki.url())
        .scrape_yaml(
            "    pipeline_stages:\n      - match:\n          selector: '{job=\"app\"}'\n          \
             stages:\n            - multiline: {firstline: '^START', max_wait_time: 300ms}\n",
        )
        .write(&dir);
    let log = dir.append_lines("logs/a.log", &["START one", "  at first", "  at second"]);
    let _agent = start_agent(&cfg);
    let started = Instant::now();
    assert!(loki.wait_for_lines(1, WAIT), "the first block never came");
    assert_eq!(loki.lines(), ["START one\n  at first\n  at second"]);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "sent before max_wait_time"
    );
    // Again after the file was quiet: the idle timer works for every block, not only the first.
    std::thread::sleep(Duration::from_millis(500));
    dir.append_lines(&log, &["START two", "  more"]);
    assert!(loki.wait_for_lines(2, WAIT), "the second block never came");
    assert_eq!(loki.lines()[1], "START two\n  more");
}

/// The file's read position, from `promtail_read_bytes_total`.
fn read_bytes(agent: &common::Agent) -> u64 {
    let page = http::get(&format!("{}/metrics", agent.http_url()))
        .expect("GET /metrics")
        .text();
    page.lines()
        .filter(|l| l.starts_with("promtail_read_bytes_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `limit` with `drop: false` (Promtail blocks its pipeline): every line arrives, in order, at the
/// configured rate, and meanwhile the tailer reads no further than one chunk (512 KiB) past what was
/// released, sleeping rather than spinning.
#[test]
fn limit_without_drop_paces_the_reading_of_the_file() {
    const CHUNK: u64 = 512 * 1024;
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let cfg = TestConfig::new(loki.url())
        .scrape_yaml("    pipeline_stages:\n      - limit: {rate: 400, burst: 100}\n")
        .write(&dir);
    // 2000 lines of 1000 bytes: four read chunks, and (2000 - 100) / 400 = 4.75 s at the rate.
    let lines: Vec<String> = (0..2000)
        .map(|i| format!("{i:05} {}", "x".repeat(993)))
        .collect();
    let log = dir.append_lines("logs/a.log", &lines);
    let size = std::fs::metadata(&log).unwrap().len();
    let agent = start_agent(&cfg);
    let started = Instant::now();
    let mut checked_midway = false;
    while loki.lines().len() < lines.len() {
        assert!(started.elapsed() < Duration::from_secs(30), "stuck");
        let received = loki.lines().len() as u64;
        let read = read_bytes(&agent);
        if (300..1500).contains(&received) {
            // 1000 bytes and a newline per line: the tailer is at most a chunk (and what the
            // receiver has yet to get) ahead of what the stage let out.
            assert!(
                read <= (received + 100) * 1001 + CHUNK,
                "read {read} bytes with {received} lines out of the stage"
            );
            assert!(read < size, "the whole file was read at once");
            checked_midway = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    assert!(checked_midway, "never looked midway");
    assert_eq!(count_loss(&lines, &loki.lines()), Counts::default());
    assert_eq!(loki.lines(), lines, "in order");
    assert!(took >= Duration::from_millis(3800), "not paced: {took:?}");
    // Waiting for tokens is sleeping: a busy loop would burn the whole run.
    let cpu = process::cpu_seconds(agent.pid());
    assert!(cpu < 2.0, "{cpu} CPU seconds while pacing for {took:?}");
}

/// The shipped redaction config's e-mail `replace` stage on a 4.8 MB line of distinct addresses
/// (once 110 CPU seconds, quadratic in the matches): the line arrives redacted within seconds, and
/// meanwhile the agent answers `/metrics` and ships another file's lines.
#[test]
fn a_huge_line_of_distinct_matches_is_redacted_while_the_agent_stays_responsive() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let cfg = TestConfig::new(loki.url())
        .scrape_yaml(
            "    pipeline_stages:\n      - replace:\n          expression: \
             '([a-zA-Z0-9._%+-]+@[a-zA-Z0-9-]+(?:\\.[a-zA-Z0-9-]+)*\\.[a-zA-Z]{2,})'\n          \
             replace: '****@****'\n",
        )
        .write(&dir);
    let huge: String = (0..240_000)
        .map(|i| format!("u{i:06}@example.com "))
        .collect();
    let agent = start_agent(&cfg);
    dir.append_lines("logs/dump.log", &[huge.as_str()]);
    dir.append_lines("logs/other.log", &["beside the dump"]);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while loki.lines().len() < 2 {
        assert!(
            started.elapsed() < WAIT,
            "not shipped: {:?}",
            loki.lines().len()
        );
        let asked = Instant::now();
        http::get(&format!("{}/metrics", agent.http_url())).expect("GET /metrics");
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        slowest < Duration::from_secs(3),
        "/metrics took {slowest:?}"
    );
    let lines = loki.lines();
    assert!(lines.contains(&"beside the dump".to_string()));
    let redacted = lines.iter().find(|l| l.len() > 1000).expect("the dump");
    let expected = "****@**** ".repeat(240_000);
    assert!(
        redacted.trim_end() == expected.trim_end(),
        "not redacted: {} bytes, {} addresses left",
        redacted.len(),
        redacted.matches("@example.com").count()
    );
}
