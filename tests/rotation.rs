//! Rotation, truncation, deletion and renames of tailed files: every line arrives exactly once.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{count_loss, lines_range, start_agent, Counts, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// Longer than `target_config.sync_period` (1 s) plus the ~1 s drain quiet time, so a re-read would
/// have shown up.
const SETTLE: Duration = Duration::from_millis(2500);

fn stream_of(path: &Path) -> String {
    format!(r#"{{filename="{}", job="app"}}"#, path.display())
}

/// Waits until as many entries as `expected` arrived, then asserts each arrived exactly once; with
/// `settle`, also that nothing more arrives for [`SETTLE`].
fn assert_exactly_once(receiver: &LokiReceiver, expected: &[String], what: &str, settle: bool) {
    let arrived = receiver.wait_for_lines(expected.len(), WAIT);
    let counts = count_loss(expected, &receiver.lines());
    assert!(
        arrived,
        "{what}: {} of {} entries arrived ({counts:?})",
        receiver.lines().len(),
        expected.len()
    );
    if settle {
        receiver.wait_for_lines(expected.len() + 1, SETTLE);
    }
    assert_eq!(
        count_loss(expected, &receiver.lines()),
        Counts::default(),
        "{what}"
    );
}

#[test]
fn rename_and_create_drains_the_old_file_and_reads_the_new_one() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("old", 0, 300));
    let _agent = start_agent(&config);
    assert_exactly_once(
        &receiver,
        &lines_range("old", 0, 300),
        "before rotation",
        false,
    );

    // Lines the agent may not have read yet when the file is renamed, and a writer that still has
    // the old file open after the rename.
    dir.append_lines(&log, &lines_range("old", 300, 500));
    let rotated = dir.join("logs/a.log.1");
    fs::rename(&log, &rotated).expect("rename a.log to a.log.1");
    common::append_lines(&rotated, &lines_range("old", 500, 600));
    dir.append_lines(&log, &lines_range("new", 0, 300));

    let mut expected = [lines_range("old", 0, 600), lines_range("new", 0, 300)].concat();
    assert_exactly_once(&receiver, &expected, "after rotation", true);
    // The rotated file was read as a.log, and a.log.1 does not match the glob.
    let want = stream_of(&log);
    if let Some(bad) = receiver.entries().iter().find(|e| e.labels != want) {
        panic!(
            "{:?} arrived with stream {}, want {want}",
            bad.line, bad.labels
        );
    }

    dir.append_lines(&log, &lines_range("new", 300, 400));
    expected.extend(lines_range("new", 300, 400));
    assert_exactly_once(&receiver, &expected, "the new file is still tailed", false);
}

#[test]
fn repeated_logrotate_style_rotations_lose_nothing() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("start", 0, 100));
    let _agent = start_agent(&config);
    let mut expected = lines_range("start", 0, 100);
    assert_exactly_once(&receiver, &expected, "before rotation", false);

    let (one, two) = (dir.join("logs/a.log.1"), dir.join("logs/a.log.2"));
    for round in 0..3 {
        let tag = |what: &str| format!("r{round}-{what}");
        dir.append_lines(&log, &lines_range(&tag("pre"), 0, 200));
        if one.exists() {
            fs::rename(&one, &two).expect("a.log.1 -> a.log.2");
        }
        fs::rename(&log, &one).expect("a.log -> a.log.1");
        common::append_lines(&one, &lines_range(&tag("late"), 0, 50));
        dir.append_lines(&log, &lines_range(&tag("post"), 0, 100));
        expected.extend(lines_range(&tag("pre"), 0, 200));
        expected.extend(lines_range(&tag("late"), 0, 50));
        expected.extend(lines_range(&tag("post"), 0, 100));
        assert_exactly_once(&receiver, &expected, &format!("rotation {round}"), false);
    }
    assert_exactly_once(&receiver, &expected, "after the rotations", true);
}

#[test]
fn copytruncate_reads_the_file_again_from_the_start() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("first", 0, 300));
    let _agent = start_agent(&config);
    let mut expected = lines_range("first", 0, 300);
    // Everything is read before each truncation (the copytruncate race itself is inherent), and the
    // file regrows less than it had, so the truncation cannot be mistaken for growth.
    for (round, prefix) in ["second", "third"].into_iter().enumerate() {
        assert_exactly_once(
            &receiver,
            &expected,
            &format!("before truncation {round}"),
            false,
        );
        fs::copy(&log, dir.join(format!("logs/a.log.{round}"))).expect("copy");
        fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .and_then(|f| f.set_len(0))
            .expect("truncate a.log");
        dir.append_lines(&log, &lines_range(prefix, 0, 200));
        expected.extend(lines_range(prefix, 0, 200));
    }
    assert_exactly_once(&receiver, &expected, "after copytruncate", true);
    let want = stream_of(&log);
    assert!(receiver.entries().iter().all(|e| e.labels == want));
}

#[test]
fn truncation_by_shell_redirect_reads_the_file_again_from_the_start() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("before", 0, 300));
    let _agent = start_agent(&config);
    assert_exactly_once(
        &receiver,
        &lines_range("before", 0, 300),
        "before `>`",
        false,
    );

    // `> a.log`: open with O_TRUNC, write nothing; the application then goes on appending.
    drop(fs::File::create(&log).expect("> a.log"));
    dir.append_lines(&log, &lines_range("after", 0, 100));
    dir.append_lines(&log, &lines_range("after", 100, 200));
    let expected = [lines_range("before", 0, 300), lines_range("after", 0, 200)].concat();
    assert_exactly_once(&receiver, &expected, "after `> a.log`", true);
}

#[test]
fn deleted_then_recreated_file_is_read_from_the_start() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("gen0", 0, 300));
    let _agent = start_agent(&config);
    let mut expected = lines_range("gen0", 0, 300);
    assert_exactly_once(&receiver, &expected, "first file", false);

    // Recreated at once, smaller; then again, larger than the first (a path-keyed position would
    // skip its start).
    for (generation, lines) in [("gen1", 200), ("gen2", 500)] {
        fs::remove_file(&log).expect("rm a.log");
        dir.append_lines(&log, &lines_range(generation, 0, lines));
        expected.extend(lines_range(generation, 0, lines));
        assert_exactly_once(&receiver, &expected, generation, false);
    }
    assert_exactly_once(&receiver, &expected, "after re-creations", true);
    let want = stream_of(&log);
    assert!(receiver.entries().iter().all(|e| e.labels == want));
}

#[test]
fn rename_within_the_glob_is_not_read_again_even_after_a_restart() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).glob("logs/*").write(&dir);
    let a = dir.append_lines("logs/a.log", &lines_range("r", 0, 300));
    let mut agent = start_agent(&config);
    assert_exactly_once(
        &receiver,
        &lines_range("r", 0, 300),
        "before the rename",
        false,
    );

    let b = dir.join("logs/b.log");
    fs::rename(&a, &b).expect("a.log -> b.log");
    dir.append_lines(&b, &lines_range("r", 300, 400));
    assert_exactly_once(
        &receiver,
        &lines_range("r", 0, 400),
        "after the rename",
        true,
    );

    let status = agent.terminate(WAIT).expect("exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    dir.append_lines(&b, &lines_range("r", 400, 450));
    let _agent = start_agent(&config);
    assert_exactly_once(
        &receiver,
        &lines_range("r", 0, 450),
        "after a restart",
        true,
    );
}
