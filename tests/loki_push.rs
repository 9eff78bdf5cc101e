//! The `loki_push_api` source as a relay: logferry pushing to another logferry, which relays to Loki.
//! A push is answered 204 only once its entries are safe in every sink, so a relay killed with SIGKILL
//! mid-stream loses nothing end to end.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::http;
use common::{count_loss, lines_range, start_agent, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// A port the OS picked as free just now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    listener.local_addr().expect("its address").port()
}

/// A relay's config: a `loki_push_api` job on `port`, relaying to `loki`, with `extra` top-level YAML.
fn relay_config(
    dir: &TestDir,
    port: u16,
    loki: &str,
    client_extra: &str,
    scrape_extra: &str,
) -> PathBuf {
    let root = dir.path().display();
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n  - url: {loki}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n{client_extra}\
         scrape_configs:\n  - job_name: relay\n    loki_push_api:\n      server:\n        \
         http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n      labels:\n        relay: r1\n{scrape_extra}"
    ))
}

fn push_url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

fn post_json(port: u16, body: &str) -> http::HttpResponse {
    http::post(
        &push_url(port, "/loki/api/v1/push"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("the relay answers")
}

#[test]
fn a_relay_killed_mid_stream_loses_nothing_end_to_end() {
    let loki = LokiReceiver::start();
    let relay_dir = TestDir::new();
    let port = free_port();
    let relay_config = relay_config(&relay_dir, port, &loki.url(), "", "");
    let mut relay = start_agent(&relay_config);

    let leaf_dir = TestDir::new();
    let leaf_config = TestConfig::new(push_url(port, "/loki/api/v1/push")).write(&leaf_dir);
    let leaf = start_agent(&leaf_config);
    let log = leaf_dir.join("logs/a.log");
    let total = 3000;
    let writer = spawn_writer(log, total);
    assert!(
        loki.wait_for_lines(600, WAIT),
        "{} lines",
        loki.lines().len()
    );
    relay.kill();
    let at_kill = loki.lines().len();
    // The leaf retries its pushes while the relay is down; the relay comes back on the same port.
    std::thread::sleep(Duration::from_millis(500));
    let _relay = start_agent(&relay_config);
    writer.join().expect("writer");
    let expected = lines_range("p", 0, total);
    let all = loki.wait_for_all_lines(&expected, WAIT);
    let counts = count_loss(&expected, &loki.lines());
    eprintln!("relay SIGKILLed after {at_kill} entries had arrived: {counts:?}");
    assert!(all, "lines lost across the relay's SIGKILL: {counts:?}");
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    // The relay's labels: the leaf's stream labels plus its static ones.
    let entry = &loki.entries()[0];
    assert!(
        entry.labels.contains("job=\"app\"") && entry.labels.contains("relay=\"r1\""),
        "{}",
        entry.labels
    );
    drop(leaf);
}

fn spawn_writer(path: PathBuf, total: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for from in (0..total).step_by(50) {
            common::append_lines(&path, &lines_range("p", from, (from + 50).min(total)));
            std::thread::sleep(Duration::from_millis(15));
        }
    })
}

#[test]
fn a_push_is_answered_only_once_the_sink_holds_it() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let port = free_port();
    // Without a disk buffer the sink holds entries once Loki accepted them.
    let config = relay_config(&dir, port, &loki.url(), "    buffer: {type: memory}\n", "");
    let _relay = start_agent(&config);
    loki.stop();
    let pusher = std::thread::spawn(move || {
        let started = Instant::now();
        let body = r#"{"streams":[{"stream":{"app":"a"},"values":[["1700000000000000000","held until safe"]]}]}"#;
        (post_json(port, body), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!pusher.is_finished(), "answered while Loki was down");
    loki.start_again();
    let (answer, waited) = pusher.join().expect("pusher");
    assert_eq!(answer.status, 204, "{}", answer.text());
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert_eq!(loki.lines(), ["held until safe"]);
}

#[test]
fn json_gzip_raw_and_relabeling_as_promtail() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let port = free_port();
    let scrape = "      use_incoming_timestamp: true\n    relabel_configs:\n      \
                  - {source_labels: [__drop], regex: 'yes', action: drop}\n      \
                  - {source_labels: [__host], target_label: host}\n";
    let config = relay_config(&dir, port, &loki.url(), "", scrape);
    let agent = start_agent(&config);

    let body = r#"{"streams":[
        {"stream":{"app":"a","__host":"h1"},"values":[["1700000000000000001","json line",{"trace_id":"t1"}]]},
        {"stream":{"app":"b","__drop":"yes"},"values":[["1700000000000000002","dropped by relabeling"]]},
        {"stream":{"app":"c"},"values":[["1700000000000000003","after the dropped stream"]]}]}"#;
    assert_eq!(post_json(port, body).status, 204);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(
        br#"{"streams":[{"stream":{"app":"g"},"values":[["1700000000000000004","gzip line"]]}]}"#,
    )
    .unwrap();
    let gz = gz.finish().unwrap();
    let answer = http::post(
        &push_url(port, "/loki/api/v1/push"),
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    )
    .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.text());

    let answer = http::post(
        &push_url(port, "/loki/api/v1/raw"),
        &[],
        b"raw one\nraw two\n",
    )
    .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.text());

    for bad in [
        &b"{not json"[..],
        br#"{"streams":[{"stream":{"a":"b"},"values":[["soon","x"]]}]}"#,
    ] {
        let answer = post_json(port, std::str::from_utf8(bad).unwrap());
        assert_eq!(answer.status, 400, "{}", answer.text());
    }
    let answer = http::post(&push_url(port, "/loki/api/v1/push"), &[], b"\x00garbage").unwrap();
    assert_eq!(answer.status, 400);
    assert!(answer.text().contains("snappy"), "{}", answer.text());

    assert!(loki.wait_for_lines(5, WAIT), "{:?}", loki.lines());
    std::thread::sleep(Duration::from_millis(300));
    let entries = loki.entries();
    let find = |line: &str| {
        entries
            .iter()
            .find(|e| e.line == line)
            .unwrap_or_else(|| panic!("{line} missing: {entries:?}"))
    };
    let json = find("json line");
    assert_eq!(json.labels, r#"{app="a", host="h1", relay="r1"}"#);
    assert_eq!(json.timestamp_ns, 1_700_000_000_000_000_001);
    assert_eq!(json.metadata, [("trace_id".to_string(), "t1".to_string())]);
    assert_eq!(
        find("after the dropped stream").labels,
        r#"{app="c", relay="r1"}"#
    );
    assert_eq!(find("gzip line").labels, r#"{app="g", relay="r1"}"#);
    assert_eq!(find("raw one").labels, r#"{relay="r1"}"#);
    assert!(find("raw two").timestamp_ns > 1_700_000_000_000_000_004);
    assert!(!entries.iter().any(|e| e.line == "dropped by relabeling"));
    assert_eq!(entries.len(), 5, "{entries:?}");

    let page = http::get(&format!("{}/metrics", agent.http_url()))
        .unwrap()
        .text();
    let value = |series: &str| -> f64 {
        let line = page.lines().find(|l| l.starts_with(series));
        line.and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in {page}"))
    };
    assert_eq!(
        value(r#"logferry_push_requests_total{job="relay",reason="malformed"}"#),
        3.0
    );
    assert_eq!(
        value(r#"logferry_push_requests_total{job="relay",reason="accepted"}"#),
        3.0
    );
    assert_eq!(
        value(r#"logferry_push_entries_total{job="relay",reason="relabeled_away"}"#),
        1.0
    );
    assert_eq!(
        value(r#"logferry_push_entries_total{job="relay",reason="accepted"}"#),
        5.0
    );
}

#[test]
fn a_port_in_use_fails_the_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TestDir::new();
    let config = relay_config(&dir, port, "http://127.0.0.1:9/loki/api/v1/push", "", "");
    let finished = common::Agent::builder().config_file(&config).run(WAIT);
    assert!(!finished.status.success());
    let address = format!("127.0.0.1:{port}");
    assert!(finished.stderr.contains(&address), "{}", finished.stderr);
}

#[test]
fn promtails_documented_push_config_passes_check_config() {
    let dir = TestDir::new();
    let config = dir.write_config(
        "server:\n  http_listen_port: 9080\nclients:\n  - url: http://localhost:3100/loki/api/v1/push\n\
         scrape_configs:\n- job_name: push1\n  loki_push_api:\n    server:\n      http_listen_port: 3500\n      \
         grpc_listen_port: 3600\n    labels:\n      pushserver: push1\n",
    );
    check_config_ok(&config);
}

fn check_config_ok(config: &Path) {
    let finished = common::Agent::builder()
        .arg("check-config")
        .arg(config)
        .run(WAIT);
    assert!(
        finished.status.success(),
        "{}{}",
        finished.stdout,
        finished.stderr
    );
}

/// `limits_config.max_line_size` holds for pushed lines too, as Promtail's client applies it to every
/// source: cut with `max_line_size_truncate`, counted.
#[test]
fn pushed_lines_over_max_line_size_are_cut() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let port = free_port();
    let config = relay_config(&dir, port, &loki.url(), "", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("limits_config:\n  max_line_size: 20\n  max_line_size_truncate: true\n{text}"),
    )
    .unwrap();
    let agent = start_agent(&config);
    let body = r#"{"streams":[{"stream":{"app":"a"},"values":[["1","0123456789012345678901234567890123456789"],["2","short"]]}]}"#;
    assert_eq!(post_json(port, body).status, 204);
    assert!(loki.wait_for_lines(2, WAIT));
    let mut lines = loki.lines();
    lines.sort();
    assert_eq!(lines, ["01234567890123456789", "short"]);
    let truncated = http::metric_sum(&agent.http_url(), "logferry_lines_oversized_total");
    assert_eq!(truncated, 1.0);
}
