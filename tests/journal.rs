//! End to end, systemd journal to Loki, against a real `systemd-journald` per test (see
//! `common::journald`): labels and order, `json`, matches with journalctl as the oracle, cursor resume
//! across SIGKILL, rotation and vacuuming while reading, large fields, fixture files with xz, lz4 and
//! zstd fields, a cursor that no longer exists, a host without libsystemd, and an idle journal.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::journald::fixture::{self, Compression};
use common::journald::Journald;
use common::{count_loss, lines_range, start_agent, Agent, Counts, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// A config with one `journal` job named `journal` reading `journal_path`; `journal_yaml` goes under
/// `journal:` (6 spaces), `scrape_yaml` under the job (4 spaces).
fn write_config(
    dir: &TestDir,
    url: &str,
    journal_path: &Path,
    journal_yaml: &str,
    scrape_yaml: &str,
) -> PathBuf {
    let root = dir.path().display();
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
         clients:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n\
         scrape_configs:\n  - job_name: journal\n    journal:\n      path: {path}\n      max_age: 1h\n{journal_yaml}{scrape_yaml}",
        path = journal_path.display()
    ))
}

/// Lines whose stream has `label` (e.g. `ident="lftest"`), in arrival order.
fn lines_with(receiver: &LokiReceiver, label: &str) -> Vec<String> {
    receiver
        .entries()
        .into_iter()
        .filter(|e| e.labels.contains(label))
        .map(|e| e.line)
        .collect()
}

fn wait_for_all(receiver: &LokiReceiver, lines: &[String]) -> bool {
    receiver.wait_for_all_lines(lines, WAIT)
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The saved cursor of the `journal` job, if any.
fn saved_cursor(dir: &TestDir) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("positions.yaml")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("cursor-journal:")?;
        Some(
            rest.trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .to_owned(),
        )
    })
}

const LABEL_RULES: &str = "    relabel_configs:
      - source_labels: [__journal_syslog_identifier]
        target_label: ident
      - source_labels: [__journal_priority_keyword]
        target_label: level
      - source_labels: [__journal_my_field]
        target_label: custom
      - source_labels: [__journal__transport]
        target_label: transport
      - source_labels: [__journal_syslog_identifier]
        regex: systemd-journald
        action: drop
";

#[test]
fn entries_arrive_in_order_with_journal_labels_and_realtime_timestamps() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      labels:\n        job: systemd-journal\n",
        LABEL_RULES,
    );
    let agent = start_agent(&config);

    // Native protocol with fields of our own, then systemd-cat (stdout), logger (native and syslog).
    for i in 0..300 {
        let line = format!("native-{i:06}");
        let priority = if i % 2 == 0 { "3" } else { "6" };
        let field = format!("v{}", i % 2);
        journald.send(&[
            ("MESSAGE", line.as_bytes()),
            ("SYSLOG_IDENTIFIER", b"lftest"),
            ("PRIORITY", priority.as_bytes()),
            ("MY_FIELD", field.as_bytes()),
        ]);
    }
    let mut cat = journald.in_namespace("systemd-cat");
    cat.args(["-t", "lfcat", "-p", "warning", "echo", "via systemd-cat"]);
    journald.run(&mut cat);
    let mut logger = journald.in_namespace("logger");
    logger.args([
        "-t",
        "lfsyslog",
        "-u",
        "/run/systemd/journal/dev-log",
        "via logger syslog",
    ]);
    journald.run(&mut logger);
    let mut native = journald.in_namespace("sh");
    native.args([
        "-c",
        "printf 'MESSAGE=via logger journald\\nMY_FIELD=from-logger\\n' | logger --journald",
    ]);
    journald.run(&mut native);
    // A user's entries go to the user's own journal file (user-4242.journal), read as well.
    let mut user = journald.in_namespace("setpriv");
    user.args([
        "--reuid=4242",
        "--regid=4242",
        "--clear-groups",
        "sh",
        "-c",
        "printf 'MESSAGE=from a user\\nSYSLOG_IDENTIFIER=lfuser\\n' | logger --journald",
    ]);
    journald.run(&mut user);

    let native_lines: Vec<String> = (0..300).map(|i| format!("native-{i:06}")).collect();
    let mut expected = native_lines.clone();
    expected.extend(
        [
            "via systemd-cat",
            "via logger syslog",
            "via logger journald",
            "from a user",
        ]
        .map(String::from),
    );
    assert!(
        wait_for_all(&receiver, &expected),
        "{} entries arrived; logs:\n{}",
        receiver.entries().len(),
        agent.logs()
    );
    // Loki orders within a stream; each stream's entries arrive once, in journal order.
    for parity in 0..2 {
        let stream: Vec<String> = native_lines
            .iter()
            .skip(parity)
            .step_by(2)
            .cloned()
            .collect();
        assert_eq!(
            lines_with(
                &receiver,
                &format!("custom=\"v{parity}\", ident=\"lftest\"")
            ),
            stream
        );
    }
    let entries = receiver.entries();
    let stream = |line: &str| {
        entries
            .iter()
            .find(|e| e.line == line)
            .map(|e| e.labels.clone())
            .unwrap()
    };
    assert_eq!(
        stream("native-000000"),
        r#"{custom="v0", ident="lftest", job="systemd-journal", level="error", transport="journal"}"#
    );
    assert_eq!(
        stream("native-000001"),
        r#"{custom="v1", ident="lftest", job="systemd-journal", level="info", transport="journal"}"#
    );
    assert_eq!(
        stream("via systemd-cat"),
        r#"{ident="lfcat", job="systemd-journal", level="warning", transport="stdout"}"#
    );
    assert_eq!(
        stream("via logger syslog"),
        r#"{ident="lfsyslog", job="systemd-journal", level="notice", transport="syslog"}"#
    );
    assert_eq!(
        stream("via logger journald"),
        r#"{custom="from-logger", ident="logger", job="systemd-journal", transport="journal"}"#
    );
    assert_eq!(
        stream("from a user"),
        r#"{ident="lfuser", job="systemd-journal", transport="journal"}"#
    );
    assert!(
        journald
            .files()
            .iter()
            .any(|f| f.ends_with("user-4242.journal")),
        "{:?}",
        journald.files()
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.labels.contains("systemd-journald")),
        "the drop rule removes journald's own entries"
    );
    // The timestamp is the entry's __REALTIME_TIMESTAMP.
    let export = journald.journalctl(&["-o", "export", "MESSAGE=native-000007"]);
    let realtime: i128 = export
        .lines()
        .find_map(|l| l.strip_prefix("__REALTIME_TIMESTAMP="))
        .unwrap()
        .parse()
        .unwrap();
    let got = entries.iter().find(|e| e.line == "native-000007").unwrap();
    assert_eq!(got.timestamp_ns, realtime * 1000);
    let page = common::http::get(&format!("{}/metrics", agent.http_url()))
        .expect("/metrics")
        .text();
    assert!(
        page.contains("promtail_journal_target_lines_total"),
        "{page}"
    );
}

#[test]
fn json_lines_carry_every_field_and_matches_select_as_journalctl_does() {
    let journald = Journald::start();
    for (ident, priority) in [("a", "3"), ("a", "6"), ("b", "3"), ("c", "7"), ("d", "3")] {
        for i in 0..3 {
            let line = format!("{ident}-{priority}-{i}");
            journald.send(&[
                ("MESSAGE", line.as_bytes()),
                ("SYSLOG_IDENTIFIER", ident.as_bytes()),
                ("PRIORITY", priority.as_bytes()),
                ("MULTI", b"first\nsecond"),
            ]);
        }
    }
    journald.sync();
    let matches = [
        "SYSLOG_IDENTIFIER=a",
        "SYSLOG_IDENTIFIER=b",
        "PRIORITY=3",
        "+",
        "SYSLOG_IDENTIFIER=c",
    ];
    let mut oracle_args = vec!["-o", "export", "--no-pager"];
    oracle_args.extend_from_slice(&matches);
    let oracle: Vec<String> = journald
        .journalctl(&oracle_args)
        .lines()
        .filter_map(|l| l.strip_prefix("MESSAGE=").map(str::to_owned))
        .collect();
    assert_eq!(
        oracle,
        ["a-3-0", "a-3-1", "a-3-2", "b-3-0", "b-3-1", "b-3-2", "c-7-0", "c-7-1", "c-7-2"]
    );

    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        &format!(
            "      json: true\n      matches: {}\n      labels:\n        job: j\n",
            matches.join(" ")
        ),
        "",
    );
    let _agent = start_agent(&config);
    assert!(receiver.wait_for_lines(oracle.len(), WAIT));
    std::thread::sleep(Duration::from_millis(500));
    let entries = receiver.entries();
    let messages: Vec<String> = entries
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.line).expect("a JSON line");
            let obj = v.as_object().expect("an object");
            assert!(
                obj.values().all(|v| v.is_string()),
                "all values are strings: {}",
                e.line
            );
            let keys: Vec<&String> = obj.keys().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted, "keys sorted: {}", e.line);
            for field in ["_PID", "_TRANSPORT", "PRIORITY", "SYSLOG_IDENTIFIER"] {
                assert!(obj.contains_key(field), "{field} in {}", e.line);
            }
            assert!(!obj.contains_key("__CURSOR"), "{}", e.line);
            assert_eq!(obj["MULTI"], "first\nsecond");
            obj["MESSAGE"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(messages, oracle);
    assert!(entries.iter().all(|e| e.labels == r#"{job="j"}"#));
}

#[test]
fn cursor_resumes_across_sigkill_without_loss_or_repeats() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      matches: SYSLOG_IDENTIFIER=lfkill\n      labels:\n        job: j\n",
        "",
    );
    journald.send_lines("lfkill", &lines_range("k", 0, 2000), &[]);
    journald.sync();
    let last = journald
        .last_cursor(&["SYSLOG_IDENTIFIER=lfkill"])
        .expect("cursor");
    let mut agent = start_agent(&config);
    assert!(wait_for_all(&receiver, &lines_range("k", 0, 2000)));
    // Once the last cursor is saved and the buffer has recorded Loki's answer to the last push,
    // nothing is in flight (a kill before the latter sends that push again: a legal duplicate).
    let deadline = Instant::now() + WAIT;
    while saved_cursor(&dir).as_deref() != Some(last.as_str())
        || common::http::metric_sum(&agent.http_url(), "logferry_buffer_records") > 0.0
    {
        assert!(
            Instant::now() < deadline,
            "saved {:?}, want {last}",
            saved_cursor(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.kill();

    journald.send_lines("lfkill", &lines_range("k", 2000, 3000), &[]);
    let agent = start_agent(&config);
    assert!(
        agent.wait_for_log("resuming the journal after the saved cursor", WAIT),
        "{}",
        agent.logs()
    );
    journald.send_lines("lfkill", &lines_range("k", 3000, 3500), &[]);
    let expected = lines_range("k", 0, 3500);
    assert!(wait_for_all(&receiver, &expected), "{}", agent.logs());
    assert!(agent.wait_until_buffers_empty(WAIT));
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    assert_eq!(receiver.lines(), expected, "journal order");
}

#[test]
fn rotation_and_vacuuming_while_reading_lose_nothing() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      matches: SYSLOG_IDENTIFIER=lfrot\n      labels:\n        job: j\n",
        "",
    );
    let agent = start_agent(&config);
    let total = 12_000;
    let step = 1_000;
    for start in (0..total).step_by(step) {
        journald.send_lines("lfrot", &lines_range("r", start, start + step), &[]);
        if start % 3_000 == 0 {
            journald.rotate();
        }
        if start == 6_000 {
            // What was written before is read (so vacuuming takes nothing unread); then every
            // archived file goes while the writing, rotating and reading go on.
            assert!(wait_for_all(&receiver, &lines_range("r", 0, 6_000)));
            let before = journald.files().len();
            journald.vacuum_files(1);
            assert!(journald.files().len() < before, "vacuuming removed files");
        }
    }
    let expected = lines_range("r", 0, total);
    assert!(
        wait_for_all(&receiver, &expected),
        "{} of {total}; logs:\n{}",
        receiver.lines().len(),
        agent.logs()
    );
    assert!(
        journald.files().len() >= 2,
        "rotated: {:?}",
        journald.files()
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    assert_eq!(receiver.lines(), expected, "journal order across files");
}

#[test]
fn large_fields_arrive_whole() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      matches: SYSLOG_IDENTIFIER=lfbig\n      labels:\n        job: j\n",
        "    relabel_configs:\n      - source_labels: [__journal_big_label]\n        target_label: big\n",
    );
    let _agent = start_agent(&config);
    // Over libsystemd's default 64 KiB field threshold, and compressed by journald (zstd).
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let label_value = "L".repeat(10_000);
    journald.send(&[
        ("MESSAGE", big.as_bytes()),
        ("SYSLOG_IDENTIFIER", b"lfbig"),
        ("BIG_LABEL", label_value.as_bytes()),
    ]);
    let multiline = "first line\nsecond line\n\tthird";
    journald.send(&[
        ("MESSAGE", multiline.as_bytes()),
        ("SYSLOG_IDENTIFIER", b"lfbig"),
    ]);
    assert!(receiver.wait_for_lines(2, WAIT));
    let lines = receiver.lines();
    assert_eq!(lines[0].len(), big.len());
    assert!(lines[0] == big, "the 200 kB field arrives unchanged");
    assert_eq!(lines[1], multiline);
    assert!(receiver.entries()[0].labels.contains(&label_value));
}

#[test]
fn fixture_files_with_xz_lz4_and_zstd_fields_in_compact_and_regular_layout() {
    let dir = TestDir::new();
    let journal_dir = dir.join("fixtures");
    std::fs::create_dir_all(&journal_dir).unwrap();
    let now = now_usec();
    let kinds = [
        ("xz", Compression::Xz, true),
        ("lz4", Compression::Lz4, true),
        ("zstd", Compression::Zstd, true),
        ("xz-regular", Compression::Xz, false),
        ("lz4-regular", Compression::Lz4, false),
        ("plain-regular", Compression::None, false),
    ];
    let mut expected = Vec::new();
    for (k, (name, compression, compact)) in kinds.iter().enumerate() {
        let mut export = String::new();
        // An entry older than max_age (1h): not read.
        export.push_str(&fixture::export_entry(
            now - 2 * 3_600_000_000,
            1,
            &[("MESSAGE", &format!("{name} too old")), ("KIND", name)],
        ));
        for i in 0..20u64 {
            let body = format!("{name}-{i:03} ").repeat(120);
            let ts = now - 600_000_000 + (k as u64) * 1_000_000 + i;
            export.push_str(&fixture::export_entry(
                ts,
                i + 2,
                &[("MESSAGE", &body), ("KIND", name), ("_HOSTNAME", "fixhost")],
            ));
            expected.push(body);
        }
        let file = journal_dir.join(format!("{name}.journal"));
        fixture::write(&file, &export, *compression, *compact);
        // journalctl reads back what was written: the fixture is a valid journal file.
        let out = std::process::Command::new("journalctl")
            .arg(format!("--file={}", file.display()))
            .args(["-o", "cat", "--no-pager"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("{name}-019 {name}-019")),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let header = std::process::Command::new("journalctl")
            .arg(format!("--file={}", file.display()))
            .arg("--header")
            .output()
            .unwrap();
        let header = String::from_utf8_lossy(&header.stdout);
        let flag = match compression {
            Compression::Xz => "COMPRESSED-XZ",
            Compression::Lz4 => "COMPRESSED-LZ4",
            Compression::Zstd => "COMPRESSED-ZSTD",
            Compression::None => "Incompatible flags:",
        };
        assert!(header.contains(flag), "{name}: {header}");
        assert_eq!(header.contains("COMPACT"), *compact, "{name}: {header}");
    }

    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journal_dir,
        "",
        "    relabel_configs:\n      - source_labels: [__journal_kind]\n        target_label: kind\n      - source_labels: [__journal__hostname]\n        target_label: host\n",
    );
    let agent = start_agent(&config);
    assert!(
        receiver.wait_for_lines(expected.len(), WAIT),
        "{} of {}",
        receiver.lines().len(),
        expected.len()
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    let entries = receiver.entries();
    for (name, ..) in kinds {
        let of_kind: Vec<&str> = entries
            .iter()
            .filter(|e| e.labels == format!(r#"{{host="fixhost", kind="{name}"}}"#))
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(of_kind.len(), 20, "{name}");
    }
}

#[test]
fn a_cursor_that_no_longer_exists_restarts_at_max_age_with_a_log_line() {
    let journald = Journald::start();
    journald.send_lines("lfgone", &lines_range("g", 0, 50), &[]);
    journald.sync();
    let dir = TestDir::new();
    // A well-formed cursor of another journal (other sequence id and boot).
    dir.write_file(
        "positions.yaml",
        "positions:\n  cursor-journal: s=0123456789abcdef0123456789abcdef;i=42;b=fedcba9876543210fedcba9876543210;m=1;t=5f0000000000;x=1\n",
    );
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      matches: SYSLOG_IDENTIFIER=lfgone\n      labels:\n        job: j\n",
        "",
    );
    let agent = start_agent(&config);
    assert!(
        agent.wait_for_log("journal cursor not resumed; reading from max_age ago", WAIT),
        "{}",
        agent.logs()
    );
    assert!(
        agent.logs().contains("not in the journal"),
        "{}",
        agent.logs()
    );
    let expected = lines_range("g", 0, 50);
    assert!(wait_for_all(&receiver, &expected));
    // And it goes on from there: the new cursor is saved.
    let deadline = Instant::now() + WAIT;
    while !saved_cursor(&dir).is_some_and(|c| !c.starts_with("s=0123")) {
        assert!(Instant::now() < deadline, "{:?}", saved_cursor(&dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
}

#[test]
fn without_libsystemd_a_journal_job_fails_at_start_with_a_clear_error() {
    let dir = TestDir::new();
    let config = write_config(
        &dir,
        "http://127.0.0.1:9/loki/api/v1/push",
        Path::new("/nonexistent"),
        "",
        "",
    );
    let out = Agent::builder()
        .config_file(&config)
        .env("LOGFERRY_LIBSYSTEMD", "/nonexistent/libsystemd.so.0")
        .run(WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("scrape_configs[0].journal")
            && out
                .stderr
                .contains("cannot load /nonexistent/libsystemd.so.0 to read the systemd journal")
            && out.stderr.contains("install libsystemd0"),
        "{}",
        out.stderr
    );
    // The config itself is valid.
    let check = Agent::builder()
        .arg("check-config")
        .arg(&config)
        .env("LOGFERRY_LIBSYSTEMD", "/nonexistent/libsystemd.so.0")
        .run(WAIT);
    assert_eq!(check.status.code(), Some(0), "{}", check.stderr);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3) here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_journal_costs_no_cpu_and_new_entries_still_arrive() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = write_config(
        &dir,
        &receiver.url(),
        &journald.journal_dir(),
        "      matches: SYSLOG_IDENTIFIER=lfidle\n      labels:\n        job: j\n",
        "",
    );
    let mut agent = start_agent(&config);
    // Promtail's journal target is always ready.
    let ready = common::http::get(&format!("{}/ready", agent.http_url())).expect("/ready");
    assert_eq!(ready.status, 200, "{}", ready.text());
    journald.send_lines("lfidle", &["before idle"], &[]);
    assert!(receiver.wait_for_lines(1, WAIT));
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(agent.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(agent.pid()) - before;
    // Busy polling would use the whole 3 s (300 ticks); the positions timer and the runtime a few.
    assert!(used <= 15, "{used} ticks of CPU in 3 idle seconds");
    journald.send_lines("lfidle", &["after idle"], &[]);
    assert!(receiver.wait_for_lines(2, WAIT));
    assert_eq!(receiver.lines(), ["before idle", "after idle"]);
    // SIGTERM wakes the reader from its wait and the agent exits cleanly.
    let status = agent.terminate(WAIT).expect("the agent stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}
