//! Pipeline stage behaviour that depends on time and on the source, end to end with the real agent
//! tailing real files into a Loki receiver: a `multiline` block nested in `match` is sent when the
//! file goes quiet, as a top-level one is.

mod common;

use std::time::{Duration, Instant};

use common::fixtures::{start_agent, TestConfig};
use common::{LokiReceiver, TestDir};

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
