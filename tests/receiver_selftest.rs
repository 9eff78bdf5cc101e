//! The test harness tested on its own, without the agent: the Loki receiver decodes the real wire
//! format, records headers and entries, injects faults, and goes down and back up on one port.

mod common;

use std::time::Duration;

use common::http::{self, HttpResponse};
use common::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
use common::{count_loss, encode_push, lines_range, Counts, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(10);

fn entry(seconds: i64, nanos: i32, line: &str) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(Timestamp { seconds, nanos }),
        line: line.to_owned(),
        structured_metadata: vec![],
        parsed: vec![],
    }
}

fn stream(labels: &str, entries: Vec<EntryAdapter>) -> StreamAdapter {
    StreamAdapter {
        labels: labels.to_owned(),
        entries,
        hash: 0,
    }
}

fn request(streams: Vec<StreamAdapter>) -> PushRequest {
    PushRequest {
        streams,
        format: String::new(),
    }
}

/// POSTs a push body the way Promtail does, plus `extra` headers.
fn push(receiver: &LokiReceiver, body: &PushRequest, extra: &[(&str, &str)]) -> HttpResponse {
    let mut headers = vec![
        ("Content-Type", "application/x-protobuf"),
        ("User-Agent", "promtail/3.0.0"),
    ];
    headers.extend_from_slice(extra);
    http::post(&receiver.url(), &headers, &encode_push(body)).expect("POST to the receiver")
}

fn one_line(line: &str) -> PushRequest {
    request(vec![stream(r#"{job="t"}"#, vec![entry(1, 0, line)])])
}

#[test]
fn records_entries_and_headers_in_arrival_order() {
    let receiver = LokiReceiver::start();
    assert!(receiver
        .url()
        .starts_with(&format!("http://127.0.0.1:{}/", receiver.port())));
    assert!(receiver.url().ends_with("/loki/api/v1/push"));

    let mut with_metadata = entry(1_700_000_000, 123, "second");
    with_metadata.structured_metadata = vec![LabelPairAdapter {
        name: "trace_id".into(),
        value: "abc".into(),
    }];
    let body = request(vec![
        stream(
            r#"{filename="/var/log/a.log", job="varlogs"}"#,
            vec![entry(1_700_000_000, 5, "first"), with_metadata],
        ),
        stream(r#"{job="other"}"#, vec![entry(-1, 999_999_999, "third")]),
    ]);
    let response = push(
        &receiver,
        &body,
        &[
            ("X-Scope-OrgID", "tenant-a"),
            ("Authorization", "Bearer s3cret"),
            ("X-Custom", "yes"),
        ],
    );
    assert_eq!(response.status, 204, "{}", response.text());

    let entries = receiver.entries();
    assert_eq!(receiver.lines(), ["first", "second", "third"]);
    assert_eq!(
        entries[0].labels,
        r#"{filename="/var/log/a.log", job="varlogs"}"#
    );
    assert_eq!(entries[0].timestamp_ns, 1_700_000_000_000_000_005);
    assert_eq!(entries[0].tenant.as_deref(), Some("tenant-a"));
    assert_eq!(
        entries[1].metadata,
        [("trace_id".to_owned(), "abc".to_owned())]
    );
    assert_eq!(entries[2].labels, r#"{job="other"}"#);
    assert_eq!(entries[2].timestamp_ns, -1);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.status, request.streams, request.entries),
        (204, 2, 3)
    );
    assert_eq!(request.path, "/loki/api/v1/push");
    assert_eq!(request.tenant.as_deref(), Some("tenant-a"));
    assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(request.header("User-Agent"), Some("promtail/3.0.0"));
    assert_eq!(request.header("x-custom"), Some("yes"));
    assert_eq!(request.header("content-encoding"), None);

    // No tenant header: no tenant.
    push(&receiver, &one_line("fourth"), &[]);
    assert!(receiver.wait_for_lines(4, WAIT));
    assert_eq!(receiver.entries()[3].tenant, None);
    let stats = receiver.stats();
    assert_eq!(
        (stats.requests, stats.accepted_requests, stats.entries),
        (2, 2, 4)
    );
    assert_eq!(stats.line_bytes, "firstsecondthirdfourth".len() as u64);
}

#[test]
fn rejects_wrong_content_type_and_undecodable_bodies() {
    let receiver = LokiReceiver::start();
    let body = encode_push(&one_line("x"));
    let json = http::post(
        &receiver.url(),
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(json.status, 400);
    assert!(
        json.text().contains("application/x-protobuf"),
        "{}",
        json.text()
    );

    let raw = prost::Message::encode_to_vec(&one_line("x"));
    let uncompressed = http::post(
        &receiver.url(),
        &[("Content-Type", "application/x-protobuf")],
        &raw,
    )
    .unwrap();
    assert_eq!(uncompressed.status, 400);
    assert!(
        uncompressed.text().contains("snappy"),
        "{}",
        uncompressed.text()
    );

    let elsewhere = http::post(
        &format!("{}/api/prom/push", receiver.base_url()),
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(elsewhere.status, 404);

    assert!(receiver.entries().is_empty());
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400, 404]);
}

#[test]
fn fail_next_then_success() {
    let receiver = LokiReceiver::start();
    receiver.fail_next(2, 500);
    let first = push(&receiver, &one_line("a"), &[]);
    assert_eq!(first.status, 500);
    assert!(first.text().contains("rpc error"), "{}", first.text());
    assert_eq!(push(&receiver, &one_line("a"), &[]).status, 500);
    assert_eq!(push(&receiver, &one_line("a"), &[]).status, 204);
    assert_eq!(receiver.lines(), ["a"]);
    let statuses: Vec<u16> = receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 204]);

    receiver.fail_next(1, 429);
    let limited = push(&receiver, &one_line("b"), &[]);
    assert_eq!(limited.status, 429);
    assert!(limited.text().contains("Ingestion rate limit exceeded"));

    receiver.fail_next_with(1, 503, "custom body");
    assert_eq!(push(&receiver, &one_line("b"), &[]).text(), "custom body");
    assert_eq!(push(&receiver, &one_line("b"), &[]).status, 204);
    assert_eq!(receiver.lines(), ["a", "b"]);
}

#[test]
fn set_status_fails_everything_until_cleared() {
    let receiver = LokiReceiver::start();
    receiver.set_status(Some(400));
    for _ in 0..3 {
        let response = push(&receiver, &one_line("x"), &[]);
        assert_eq!(response.status, 400);
        assert!(
            response.text().contains("timestamp too old"),
            "{}",
            response.text()
        );
    }
    receiver.set_status(None);
    assert_eq!(push(&receiver, &one_line("x"), &[]).status, 204);
    assert_eq!(receiver.lines(), ["x"]);
    let stats = receiver.stats();
    assert_eq!((stats.rejected_requests, stats.accepted_requests), (3, 1));
}

#[test]
fn delay_holds_the_answer() {
    let receiver = LokiReceiver::start();
    receiver.set_delay(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(push(&receiver, &one_line("slow"), &[]).status, 204);
    assert!(started.elapsed() >= Duration::from_millis(300));
    receiver.set_delay(Duration::ZERO);
    assert_eq!(receiver.lines(), ["slow"]);
}

#[test]
fn stop_refuses_connections_and_start_again_reuses_the_port() {
    let receiver = LokiReceiver::start();
    let port = receiver.port();
    assert_eq!(push(&receiver, &one_line("before"), &[]).status, 204);

    receiver.stop();
    assert!(!receiver.is_up());
    let down = http::post(&receiver.url(), &[], &encode_push(&one_line("lost")));
    assert!(down.is_err(), "receiver answered while stopped: {down:?}");

    receiver.start_again();
    assert!(receiver.is_up());
    assert_eq!(receiver.port(), port);
    assert_eq!(push(&receiver, &one_line("after"), &[]).status, 204);
    assert_eq!(receiver.lines(), ["before", "after"]);

    // Twice in a row is harmless either way.
    receiver.stop();
    receiver.stop();
    receiver.start_again();
    receiver.start_again();
    assert_eq!(push(&receiver, &one_line("again"), &[]).status, 204);
}

#[test]
fn stop_drops_in_flight_requests() {
    let receiver = LokiReceiver::start();
    receiver.set_delay(Duration::from_secs(30));
    let url = receiver.url();
    let body = encode_push(&one_line("in flight"));
    let client = std::thread::spawn(move || {
        http::post(&url, &[("Content-Type", "application/x-protobuf")], &body)
    });
    std::thread::sleep(Duration::from_millis(200));
    receiver.stop();
    let outcome = client.join().unwrap();
    assert!(outcome.is_err(), "in-flight request answered: {outcome:?}");
    assert!(receiver.requests().is_empty());
}

#[test]
fn count_only_counts_without_storing() {
    let receiver = LokiReceiver::start_count_only();
    let lines = lines_range("bench", 0, 100);
    let entries = lines.iter().map(|l| entry(1, 0, l)).collect();
    assert_eq!(
        push(&receiver, &request(vec![stream("{}", entries)]), &[]).status,
        204
    );
    assert!(receiver.wait_for_lines(100, WAIT));
    let stats = receiver.stats();
    assert_eq!(stats.entries, 100);
    assert_eq!(
        stats.line_bytes,
        lines.iter().map(|l| l.len() as u64).sum::<u64>()
    );
    assert!(stats.body_bytes > 0);
    assert!(receiver.entries().is_empty() && receiver.requests().is_empty());
}

#[test]
fn waits_time_out_and_wake_up() {
    let receiver = LokiReceiver::start();
    assert!(!receiver.wait_for_lines(1, Duration::from_millis(50)));
    let url = receiver.url();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let body = encode_push(&one_line("late"));
        http::post(&url, &[("Content-Type", "application/x-protobuf")], &body).unwrap()
    });
    assert!(receiver.wait_until(|r| r.entries.iter().any(|e| e.line == "late"), WAIT));
    assert_eq!(sender.join().unwrap().status, 204);
    assert!(receiver.wait_for_requests(1, WAIT));
}

#[test]
fn line_counts_and_count_loss_find_lost_and_duplicated_lines() {
    let receiver = LokiReceiver::start();
    let expected = lines_range("loss", 0, 5);
    let sent: Vec<&String> = [0, 1, 1, 3].iter().map(|&i| &expected[i]).collect();
    let entries = sent.iter().map(|l| entry(1, 0, l)).collect();
    push(&receiver, &request(vec![stream("{}", entries)]), &[]);

    assert_eq!(receiver.line_counts()[&expected[1]], 2);
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!(
        counts,
        Counts {
            lost: 2,
            duplicated: 1,
            unexpected: 0
        }
    );
    let extra = [expected.clone(), vec!["stray".to_owned()]].concat();
    let counts = count_loss(&expected, &extra);
    assert_eq!((counts.unexpected, counts.is_exact()), (1, false));
    assert!(count_loss(&expected, &expected).is_exact());
    assert_eq!(
        expected[42 % 5],
        "loss-000002 payload the quick brown fox jumps over the lazy dog"
    );
}

#[test]
fn test_dir_writes_configs_and_appends_lines() {
    let dir = TestDir::new();
    let config = dir.write_config("server:\n  disable: true\n");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "server:\n  disable: true\n"
    );
    let log = dir.append_lines("logs/app.log", &lines_range("f", 0, 2));
    dir.append_lines(&log, &["third"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.starts_with("f-000000 payload"));
    assert!(text.ends_with("third\n"));
}

#[test]
fn listen_address_is_parsed_from_agent_log_formats() {
    use common::agent::{parse_listen_addr, strip_ansi};
    let expected = "127.0.0.1:9080".parse().ok();
    for line in [
        "2024-01-01T00:00:00Z  INFO logferry::server: listening addr=127.0.0.1:9080",
        r#"level=info msg=listening addr="127.0.0.1:9080""#,
        r#"{"level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:9080"}}"#,
        "server listening on 127.0.0.1:9080",
    ] {
        assert_eq!(parse_listen_addr(line), expected, "{line}");
    }
    let coloured = "\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9080";
    assert_eq!(parse_listen_addr(&strip_ansi(coloured)), expected);
    assert_eq!(parse_listen_addr("listening"), None);
}

// ---- the Agent harness, on a stand-in program ----

fn shell(script: &str) -> common::AgentBuilder {
    common::Agent::builder()
        .program("/bin/sh")
        .args(["-c", script])
}

fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

const LOOP: &str = "while :; do sleep 0.05; done";

#[test]
fn agent_captures_output_and_terminates_gracefully() {
    use std::os::unix::process::ExitStatusExt;
    let script = format!(
        "echo 'INFO listening addr=127.0.0.1:4321'; echo to-stderr >&2; \
         trap 'echo got-term; exit 3' TERM; echo ready; {LOOP}"
    );
    let mut agent = shell(&script).env("LOGFERRY_SELFTEST", "1").spawn();
    assert_eq!(agent.http_port(), 4321);
    assert!(agent.wait_for_log("to-stderr", WAIT));
    assert!(!agent.wait_for_log("never printed", Duration::from_millis(50)));
    assert!(agent.wait_for_log("ready", WAIT), "trap set");
    assert!(agent.is_running());
    let status = agent.terminate(WAIT).expect("exits on SIGTERM");
    assert_eq!((status.code(), status.signal()), (Some(3), None));
    assert!(agent.wait_for_log("got-term", WAIT));
    assert!(agent.stderr().contains("to-stderr") && !agent.stdout().contains("to-stderr"));
    assert_eq!(agent.log_count("listening"), 1);
    let on_disk = std::fs::read_to_string(agent.log_dir().join("stdout.log")).unwrap();
    assert!(on_disk.contains("got-term"), "{on_disk}");
}

#[test]
fn agent_kill_and_drop_reap_the_process() {
    use std::os::unix::process::ExitStatusExt;
    let mut agent = shell(&format!("trap '' TERM; echo ready; {LOOP}")).spawn();
    assert!(agent.wait_for_log("ready", WAIT), "trap set");
    assert!(
        agent.terminate(Duration::from_millis(200)).is_none(),
        "TERM is ignored"
    );
    let status = agent.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let agent = shell(LOOP).spawn();
    let pid = agent.pid();
    assert!(process_exists(pid));
    drop(agent);
    assert!(!process_exists(pid), "dropped agent {pid} still exists");
}

#[test]
fn agent_run_and_stdin() {
    let finished = shell("echo out; echo err >&2; exit 2").run(WAIT);
    assert_eq!(finished.status.code(), Some(2));
    assert_eq!(
        (finished.stdout.as_str(), finished.stderr.as_str()),
        ("out\n", "err\n")
    );

    let mut cat = common::Agent::builder()
        .program("/bin/cat")
        .stdin_piped()
        .spawn();
    cat.write_stdin(b"hello from stdin\n");
    assert!(cat.wait_for_log("hello from stdin", WAIT));
    cat.close_stdin();
    assert_eq!(cat.wait(WAIT).and_then(|s| s.code()), Some(0));
}

/// With a max entry size the receiver answers as Loki's distributor: the valid entries of a push are
/// stored, the push is answered 400 with Loki's message for the long one, and an entry already
/// stored (same stream, timestamp and line) is not stored again.
#[test]
fn max_entry_size_stores_the_valid_entries_and_refuses_the_long_one() {
    let receiver = LokiReceiver::start();
    receiver.set_max_entry_size(Some(10));
    let body = request(vec![stream(
        r#"{job="t"}"#,
        vec![
            entry(1, 0, "short"),
            entry(2, 0, "much too long"),
            entry(3, 0, "ok"),
        ],
    )]);
    let response = push(&receiver, &body, &[]);
    assert_eq!(response.status, 400);
    assert_eq!(
        response.text(),
        "Max entry size '10' bytes exceeded for stream '{job=\"t\"}' while adding an entry with \
         length '13' bytes\n"
    );
    assert_eq!(receiver.lines(), ["short", "ok"]);
    // Sent again: nothing new is stored, the long one is refused again.
    assert_eq!(push(&receiver, &body, &[]).status, 400);
    assert_eq!(receiver.lines(), ["short", "ok"]);
    // The same line at another time is another entry.
    let again = request(vec![stream(r#"{job="t"}"#, vec![entry(4, 0, "ok")])]);
    assert_eq!(push(&receiver, &again, &[]).status, 204);
    assert_eq!(receiver.lines(), ["short", "ok", "ok"]);
}
