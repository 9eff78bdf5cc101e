//! The delivery contract under restarts and receiver faults: SIGTERM is exactly once, SIGKILL loses
//! nothing, 5xx/429/connection refused are retried with backoff, and Promtail's positions are taken
//! over.

mod common;

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::http;
use common::{count_loss, lines_range, start_agent, Counts, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// Appends lines `start..end` of `prefix` to `path`, `chunk` lines at a time with `pause` between.
fn spawn_writer(
    path: PathBuf,
    prefix: &'static str,
    (start, end): (usize, usize),
    chunk: usize,
    pause: Duration,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for from in (start..end).step_by(chunk) {
            common::append_lines(&path, &lines_range(prefix, from, (from + chunk).min(end)));
            std::thread::sleep(pause);
        }
    })
}

/// Waits until every line of `expected` arrived at least once.
fn wait_for_all(receiver: &LokiReceiver, expected: &[String]) -> bool {
    receiver.wait_for_all_lines(expected, WAIT)
}

/// A graceful exit: status 0 and the final `stopped` log line.
fn assert_graceful_exit(agent: &mut common::Agent) {
    let status = agent.terminate(WAIT).expect("the agent exits on SIGTERM");
    assert!(status.success(), "exit status {status} after SIGTERM");
    assert!(
        agent.wait_for_log("msg=stopped", Duration::from_secs(5)),
        "no `stopped` log line at the end of a graceful shutdown"
    );
}

#[test]
fn sigterm_then_restart_delivers_exactly_once() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("s", 0, 500));
    let mut agent = start_agent(&config);

    let writer = spawn_writer(log.clone(), "s", (500, 1500), 25, Duration::from_millis(25));
    assert!(
        receiver.wait_for_lines(700, WAIT),
        "{}",
        receiver.lines().len()
    );
    assert_graceful_exit(&mut agent);
    let at_stop = receiver.lines().len();
    // Written while no agent runs.
    dir.append_lines(&log, &lines_range("s", 1500, 1800));
    writer.join().expect("writer");
    dir.append_lines(&log, &lines_range("s", 1800, 2000));

    let mut agent = start_agent(&config);
    let expected = lines_range("s", 0, 2000);
    assert!(
        receiver.wait_for_lines(2000, WAIT),
        "{} of 2000 ({:?}); {at_stop} had arrived at SIGTERM",
        receiver.lines().len(),
        count_loss(&expected, &receiver.lines())
    );
    assert_graceful_exit(&mut agent);
    assert_eq!(
        count_loss(&expected, &receiver.lines()),
        Counts::default(),
        "{at_stop} lines had arrived at SIGTERM"
    );
}

#[test]
fn sigkill_mid_stream_then_restart_loses_nothing() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.join("logs/a.log");
    let mut agent = start_agent(&config);

    let total = 3000;
    let writer = spawn_writer(log, "k", (0, total), 50, Duration::from_millis(15));
    assert!(
        receiver.wait_for_lines(600, WAIT),
        "{}",
        receiver.lines().len()
    );
    agent.kill();
    let at_kill = receiver.lines().len();

    let _agent = start_agent(&config);
    writer.join().expect("writer");
    let expected = lines_range("k", 0, total);
    let all = wait_for_all(&receiver, &expected);
    let counts = count_loss(&expected, &receiver.lines());
    eprintln!("SIGKILL after {at_kill} entries had arrived: {counts:?}");
    assert!(all, "lines lost across SIGKILL: {counts:?}");
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    assert!(
        counts.duplicated < total,
        "duplicates must stay bounded: {counts:?}"
    );
}

#[test]
fn server_errors_and_rate_limits_are_retried_with_backoff() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.fail_next(5, 500);
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("e", 0, 300));
    let agent = start_agent(&config);

    // When each request arrived, noted as it is recorded.
    let mut arrivals: Vec<Instant> = Vec::new();
    let delivered = receiver.wait_until(
        |r| {
            while arrivals.len() < r.requests.len() {
                arrivals.push(Instant::now());
            }
            r.stats.entries >= 300
        },
        WAIT,
    );
    assert!(delivered, "{} of 300 after 5 × 500", receiver.lines().len());
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        &statuses[..6],
        [500, 500, 500, 500, 500, 204],
        "{statuses:?}"
    );
    // The n-th wait is in [min·2^(n-1), min·2^n) capped at max_period (50 ms, 500 ms).
    for (n, pair) in arrivals[..6].windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let floor = Duration::from_millis((50u64 << n).min(500));
        assert!(
            gap + Duration::from_millis(25) >= floor,
            "wait {} was {gap:?}, under {floor:?}",
            n + 1
        );
        assert!(
            gap <= Duration::from_millis(500 + 1500),
            "wait {} was {gap:?}, over max_period",
            n + 1
        );
    }
    assert!(agent.wait_for_log("will retry", WAIT));

    receiver.fail_next(4, 429);
    dir.append_lines(&log, &lines_range("e", 300, 600));
    let expected = lines_range("e", 0, 600);
    assert!(
        receiver.wait_for_lines(600, WAIT),
        "{} of 600 after 4 × 429",
        receiver.lines().len()
    );
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    let rejected: Vec<u16> = receiver
        .requests()
        .iter()
        .filter(|r| !r.accepted())
        .map(|r| r.status)
        .collect();
    assert_eq!(rejected, [500, 500, 500, 500, 500, 429, 429, 429, 429]);
}

/// A refused credential (401, 403) is retried until it is accepted, not dropped as Promtail does: the
/// lines wait in the buffer while the operator fixes the credential (and reloads).
#[test]
fn refused_credentials_are_retried_not_dropped() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.fail_next(2, 401);
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("auth", 0, 100));
    let agent = start_agent(&config);
    assert!(receiver.wait_for_lines(100, WAIT), "{}", agent.logs());
    receiver.fail_next(2, 403);
    dir.append_lines(&log, &lines_range("auth", 100, 200));
    assert!(receiver.wait_for_lines(200, WAIT), "{}", agent.logs());
    assert_eq!(
        count_loss(&lines_range("auth", 0, 200), &receiver.lines()),
        Counts::default()
    );
    let refused: Vec<u16> = receiver
        .requests()
        .iter()
        .filter(|r| !r.accepted())
        .map(|r| r.status)
        .collect();
    assert_eq!(refused, [401, 401, 403, 403]);
    assert!(agent.logs().contains("will retry"), "{}", agent.logs());
    assert_eq!(
        dir.dead_letter_files(),
        Vec::<std::path::PathBuf>::new(),
        "nothing dead-lettered"
    );
}

#[test]
fn receiver_down_then_back_loses_nothing() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("d", 0, 200));
    let agent = start_agent(&config);
    assert!(receiver.wait_for_lines(200, WAIT));

    receiver.stop();
    for from in (200..700).step_by(50) {
        dir.append_lines(&log, &lines_range("d", from, from + 50));
    }
    assert!(
        agent.wait_for_log("will retry", WAIT),
        "no retry logged while the receiver is down"
    );
    let base = agent.http_url();
    assert!(
        http::wait_for_metric(&base, "promtail_batch_retries_total", WAIT, |v| v >= 3.0),
        "fewer than 3 retries while down"
    );
    receiver.start_again();

    let expected = lines_range("d", 0, 700);
    assert!(
        receiver.wait_for_lines(700, WAIT),
        "{} of 700 after the receiver came back",
        receiver.lines().len()
    );
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
}

#[test]
fn rejected_batches_are_not_acknowledged_before_a_crash() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.set_status(Some(503));
    let config = TestConfig::new(receiver.url()).write(&dir);
    dir.append_lines("logs/a.log", &lines_range("n", 0, 300));
    let mut agent = start_agent(&config);
    // Five failed attempts take over 750 ms of backoff: several positions syncs (200 ms).
    assert!(receiver.wait_for_requests(5, WAIT));
    agent.kill();
    assert_eq!(receiver.stats().entries, 0);

    receiver.set_status(None);
    let _agent = start_agent(&config);
    let expected = lines_range("n", 0, 300);
    assert!(
        receiver.wait_for_lines(300, WAIT),
        "{} of 300: positions advanced past lines Loki never accepted",
        receiver.lines().len()
    );
    receiver.wait_for_lines(301, Duration::from_millis(1000));
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
}

#[test]
fn a_promtail_positions_file_is_taken_over() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("p", 0, 300));
    let offset: usize = lines_range("p", 0, 100).iter().map(|l| l.len() + 1).sum();
    dir.write_file(
        "positions.yaml",
        format!("positions:\n  {}: \"{offset}\"\n", log.display()),
    );
    let agent = start_agent(&config);
    dir.append_lines(&log, &lines_range("p", 300, 350));

    let expected = lines_range("p", 100, 350);
    assert!(
        receiver.wait_for_lines(250, WAIT),
        "{} of 250",
        receiver.lines().len()
    );
    receiver.wait_for_lines(251, Duration::from_millis(1500));
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!(
        counts,
        Counts::default(),
        "unexpected = lines before the saved offset that were sent"
    );
    assert!(
        agent.logs().contains(&format!("offset={offset}")),
        "no `tailing file … offset={offset}` log line"
    );
}

/// Loki refuses a push with 400 when one entry is too long but stores the other ones. Only that
/// entry goes to the dead-letter file and counts as dropped (the push is resent in halves until the
/// refused entry stands alone), and every other line is stored exactly once.
#[test]
fn a_push_refused_for_one_long_line_dead_letters_only_that_line() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.set_max_entry_size(Some(256 * 1024));
    let config = TestConfig::new(receiver.url()).write(&dir);
    // 720 lines of 1 KB and one of 300 KB: one push of about 1 MB.
    let ok: Vec<String> = (0..720)
        .map(|i| format!("ok {i:04} {}", "x".repeat(1000)))
        .collect();
    let long = format!("long {}", "z".repeat(300_000));
    let mut lines = ok.clone();
    lines.insert(360, long.clone());
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&config);
    let base = agent.http_url();
    assert!(
        http::wait_for_metric(&base, "promtail_dropped_entries_total", WAIT, |v| v >= 1.0),
        "nothing dropped: {}",
        agent.logs()
    );
    assert!(receiver.wait_for_all_lines(&ok, WAIT), "{}", agent.logs());
    let counts = receiver.line_counts();
    assert!(
        ok.iter().all(|l| counts.get(l) == Some(&1)),
        "a line stored twice or never"
    );
    assert!(!counts.contains_key(&long));
    assert_eq!(
        http::metric_sum(&base, "promtail_dropped_entries_total"),
        1.0
    );
    // The receiver stored the valid lines from the first push (as Loki does); the halves that
    // isolate the long line are still being sent and counted: wait for them.
    assert!(http::wait_for_metric(
        &base,
        "promtail_sent_entries_total",
        WAIT,
        |v| v >= 720.0
    ));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        http::metric_sum(&base, "promtail_sent_entries_total"),
        720.0
    );
    let letters = dir.dead_letter_files();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let text = std::fs::read_to_string(&letters[0]).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "dead letters: {} lines",
        text.lines().count()
    );
    assert!(
        text.contains("zzzz") && text.contains("Max entry size"),
        "{:.300}",
        text
    );
    // A 400 for one entry is not logged as a loss of the whole push.
    let logs = agent.logs();
    assert!(logs.contains("sending it again in halves"), "{logs}");
}

/// A buffer written by the release before requests were buffered (its records hold entries:
/// `tests/fixtures/buffer-of-entries`, written by logferry at commit 5e58b13 while its Loki was down,
/// 60 lines of `/tmp/fx/logs/a.log` and 40 of `/tmp/fx/logs/b.log`) is sent after the upgrade, each
/// line once with its labels, before and beside what the new release buffers itself.
#[test]
fn a_buffer_of_entries_from_the_previous_release_is_sent_after_an_upgrade() {
    let dir = TestDir::new();
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buffer-of-entries");
    let buffer = dir.join("buffer/legacy");
    std::fs::create_dir_all(&buffer).unwrap();
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), buffer.join(f.file_name())).unwrap();
    }
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .client_yaml("    name: legacy\n")
        .write(&dir);
    let new = lines_range("new", 0, 50);
    dir.append_lines("logs/a.log", &new);
    let agent = start_agent(&config);
    let old: Vec<String> = (0..60)
        .map(|i| format!("legacy a line {i}"))
        .chain((0..40).map(|i| format!("legacy b line {i}")))
        .collect();
    let all = [old.clone(), new.clone()].concat();
    assert!(receiver.wait_for_all_lines(&all, WAIT), "{}", agent.logs());
    let counts = receiver.line_counts();
    assert!(
        all.iter().all(|l| counts.get(l) == Some(&1)),
        "a line stored twice: {counts:?}"
    );
    let entries = receiver.entries();
    let old_a = entries
        .iter()
        .find(|e| e.line == "legacy a line 7")
        .unwrap();
    assert_eq!(
        old_a.labels,
        "{filename=\"/tmp/fx/logs/a.log\", job=\"app\"}"
    );
    // Sent in the order buffered: the old records first.
    let at = |line: &str| entries.iter().position(|e| e.line == line).unwrap();
    assert!(at("legacy b line 39").max(at("legacy a line 59")) < at(&new[0]));
    assert_eq!(
        http::metric_sum(&agent.http_url(), "logferry_buffer_damaged_records_total"),
        0.0
    );
}

/// `buffer: {type: memory}`: the batcher hands its pushes straight to the sender, and positions move
/// only once Loki accepted the lines. So while Loki is down nothing is committed, and a `kill -9`
/// loses nothing: the restarted agent reads the lines again from the file.
#[test]
fn without_a_disk_buffer_positions_wait_for_the_receiver_and_a_kill_loses_nothing() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .client_yaml("    buffer: {type: memory}\n")
        .write(&dir);
    let lines = lines_range("m", 0, 300);
    let log = dir.append_lines("logs/a.log", &lines);
    let size = std::fs::metadata(&log).unwrap().len();
    let mut agent = start_agent(&config);
    assert!(agent.wait_for_log("will retry", WAIT), "{}", agent.logs());
    // Positions are written every 200 ms: long enough for a commit to show if one were made.
    std::thread::sleep(Duration::from_secs(1));
    let offset = |text: &str| -> Option<u64> {
        let name = log.display().to_string();
        let line = text.lines().find(|l| l.trim_start().starts_with(&name))?;
        line.rsplit(':')
            .next()?
            .trim()
            .trim_matches('\'')
            .parse()
            .ok()
    };
    let saved = std::fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default();
    assert!(
        offset(&saved).unwrap_or(0) == 0,
        "a position moved before Loki accepted anything: {saved}"
    );
    agent.kill();
    receiver.start_again();
    let agent = start_agent(&config);
    assert!(wait_for_all(&receiver, &lines), "{}", agent.logs());
    let counts = count_loss(&lines, &receiver.lines());
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    let deadline = Instant::now() + WAIT;
    let at_end = loop {
        let saved = std::fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default();
        if offset(&saved) == Some(size) || Instant::now() > deadline {
            break offset(&saved) == Some(size);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        at_end,
        "the position did not reach the end of the file once Loki accepted the lines"
    );
}
