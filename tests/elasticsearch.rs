//! End to end, files to Elasticsearch: the real agent against [`EsReceiver`], a `_bulk` endpoint that
//! answers as Elasticsearch 8 does, with faults. What is asserted everywhere is the delivery contract:
//! every line arrives exactly once (a document the cluster accepted is never sent again), and what the
//! cluster rejects for good is in the dead-letter file with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http;
use common::{count_loss, lines_range, start_agent, Counts, EsReceiver, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// An `elasticsearch:` list item for `url` with fast test timings, plus `extra` keys (4 spaces).
fn sink(url: &str, extra: &str) -> String {
    format!(
        "  - endpoints: [{url}]\n    index: logs-%Y.%m.%d\n    batchwait: 100ms\n    timeout: 5s\n    \
         backoff_config: {{min_period: 50ms, max_period: 500ms}}\n{extra}"
    )
}

/// A config tailing `<dir>/logs/*.log` as job `app` to `sinks` (the `elasticsearch:` items), and to a
/// Loki client when `loki` is given; `stages` is spliced into the scrape config.
fn config(dir: &TestDir, sinks: &str, loki: Option<&str>, stages: &str) -> PathBuf {
    let root = dir.path().display();
    let mut yaml = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
         target_config:\n  sync_period: 1s\n"
    );
    if let Some(url) = loki {
        yaml.push_str(&format!(
            "clients:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config: {{min_period: 50ms, max_period: 500ms}}\n"
        ));
    }
    yaml.push_str("elasticsearch:\n");
    yaml.push_str(sinks);
    yaml.push_str(&format!(
        "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        \
         labels:\n          job: app\n          __path__: {root}/logs/*.log\n{stages}"
    ));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    dir.write_config(&yaml)
}

/// The dead-letter records of sink `name`, parsed.
fn dead_letters(dir: &TestDir, name: &str) -> Vec<serde_json::Value> {
    let path = dir.join(format!("buffer/{name}/dead-letter.ndjson"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect()
}

/// Sum of the samples of `name` whose labels contain `label`, from the agent's /metrics.
fn metric(agent: &common::Agent, name: &str, label: &str) -> f64 {
    let page = http::get(&format!("{}/metrics", agent.http_url()))
        .expect("GET /metrics")
        .text();
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            &l[..end] == name && l[end..].contains(label)
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

fn utc_day(ns: i64) -> String {
    let days = ns.div_euclid(86_400_000_000_000);
    // Howard Hinnant's civil_from_days, as the agent uses.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}.{m:02}.{d:02}")
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn exactly_once(expected: &[String], receiver: &EsReceiver) {
    assert_eq!(
        count_loss(expected, &receiver.messages()),
        Counts::default(),
        "every line exactly once"
    );
}

#[test]
fn documents_have_the_documented_shape_and_the_version_is_logged() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    let cfg = config(&dir, &sink(&es.url(), ""), None, "");
    let mut lines = lines_range("shape", 0, 300);
    lines.push(r#"{"a":"json line"} with "quotes", a tab	and a \ backslash"#.to_string());
    let log = dir.append_lines("logs/a.log", &lines);
    let before = now_ns();
    let agent = start_agent(&cfg);
    assert!(
        es.wait_for_docs(301, WAIT),
        "{} of 301",
        es.stats().documents
    );
    exactly_once(&lines, &es);
    assert!(
        agent.wait_for_log("connected to Elasticsearch 8.13.4", WAIT),
        "{}",
        agent.logs()
    );

    let docs = es.docs();
    let today = utc_day(before);
    for d in &docs {
        assert_eq!(d.op_type, "index");
        assert!(
            d.index == format!("logs-{today}") || d.index == format!("logs-{}", utc_day(now_ns())),
            "{}",
            d.index
        );
        let ts = d.source["@timestamp"].as_str().unwrap();
        assert_eq!(
            ts.len(),
            "2026-02-01T13:00:00.123456789Z".len(),
            "nanoseconds: {ts}"
        );
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert_eq!(
            d.source["labels"],
            serde_json::json!({"filename": log.display().to_string(), "job": "app"})
        );
        let keys: Vec<&String> = d.source.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "@timestamp, message, labels: {keys:?}");
    }
    for r in es.bulk_requests() {
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert!(r.query.contains("filter_path="), "{}", r.query);
        assert_eq!(r.status, 200);
    }
}

#[test]
fn items_retried_alone_arrive_exactly_once() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    // A fifth of the documents fail twice with item 429, and the first two requests fail whole.
    es.set_flaky(5, 2, 429);
    es.fail_next(2, 503);
    let cfg = config(&dir, &sink(&es.url(), "    batch_entries: 400\n"), None, "");
    let lines = lines_range("retry", 0, 2000);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(
        es.wait_for_docs(2000, WAIT),
        "{} of 2000",
        es.stats().documents
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    exactly_once(&lines, &es);

    let flaky: Vec<&String> = lines
        .iter()
        .filter(|l| EsReceiver::is_flaky(l, 5))
        .collect();
    assert!(
        flaky.len() > 200,
        "the fault hits many documents: {}",
        flaky.len()
    );
    let requests = es.bulk_requests();
    let retries: Vec<_> = requests
        .iter()
        .filter(|r| r.status == 200 && r.messages.iter().all(|m| EsReceiver::is_flaky(m, 5)))
        .collect();
    assert!(retries.len() >= 2, "retries hold only the failed documents");
    let sent: usize = requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.documents)
        .sum();
    assert_eq!(
        sent,
        2000 + 2 * flaky.len(),
        "each flaky document sent 3 times, the rest once"
    );
    assert_eq!(
        metric(
            &agent,
            "logferry_elasticsearch_retried_entries_total",
            "status=\"429\""
        ),
        2.0 * flaky.len() as f64
    );
    assert_eq!(
        metric(&agent, "logferry_elasticsearch_sent_entries_total", ""),
        2000.0
    );
    assert!(
        metric(
            &agent,
            "logferry_elasticsearch_requests_total",
            "status=\"503\""
        ) >= 2.0
    );
}

#[test]
fn documents_rejected_for_good_go_to_the_dead_letter_with_the_reason() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    es.reject_messages("BAD", 400, "document_parsing_exception");
    let cfg = config(&dir, &sink(&es.url(), "    name: es-test\n"), None, "");
    let mut lines = lines_range("good", 0, 100);
    for i in 0..10 {
        lines.insert(i * 10, format!("BAD line {i} \"quoted\""));
    }
    let log = dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    let good: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("BAD"))
        .cloned()
        .collect();
    assert!(es.wait_for_docs(100, WAIT), "{}", agent.logs());
    let more = lines_range("later", 0, 50);
    dir.append_lines(&log, &more);
    assert!(
        es.wait_for_docs(150, WAIT),
        "the sink goes on after a rejection"
    );
    exactly_once(&[good, more].concat(), &es);

    let dead = dead_letters(&dir, "es-test");
    assert_eq!(dead.len(), 10, "{dead:?}");
    for (i, d) in dead.iter().enumerate() {
        assert_eq!(d["line"], format!("BAD line {i} \"quoted\""));
        assert_eq!(
            d["labels"],
            format!("{{filename=\"{}\", job=\"app\"}}", log.display())
        );
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.starts_with("index logs-") && reason.contains("status 400: document_parsing_exception: [1:42] failed to parse field [message]"), "{reason}");
        assert!(d["ts"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        metric(
            &agent,
            "logferry_dead_letter_entries_total",
            "sink=\"es-test\""
        ),
        10.0
    );
    assert_eq!(
        metric(
            &agent,
            "logferry_elasticsearch_rejected_entries_total",
            "status=\"400\""
        ),
        10.0
    );
    assert_eq!(
        agent.log_count("rejected documents for good"),
        1,
        "logged once per status"
    );
}

#[test]
fn daily_indices_follow_the_entry_timestamps_across_midnight() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    let stages = "    pipeline_stages:\n      - json: {expressions: {time: time, msg: msg}}\n      \
                  - timestamp: {source: time, format: RFC3339Nano}\n      - output: {source: msg}\n";
    let ds = EsReceiver::start();
    let sinks = format!(
        "{}{}",
        sink(&es.url(), ""),
        sink(&ds.url(), "    data_stream: logs-app-default\n")
            .replace("    index: logs-%Y.%m.%d\n", "")
    );
    let cfg = config(&dir, &sinks, None, stages);
    let times = [
        ("2025-12-31T23:59:58.999999999Z", "logs-2025.12.31"),
        ("2025-12-31T23:59:59.999999999Z", "logs-2025.12.31"),
        ("2026-01-01T00:00:00Z", "logs-2026.01.01"),
        ("2026-01-01T00:00:00.000000001Z", "logs-2026.01.01"),
        ("2025-12-31T23:59:59.5Z", "logs-2025.12.31"),
        ("2026-01-02T00:00:01.25Z", "logs-2026.01.02"),
    ];
    let lines: Vec<String> = times
        .iter()
        .enumerate()
        .map(|(i, (t, _))| format!(r#"{{"time":"{t}","msg":"event {i}"}}"#))
        .collect();
    dir.append_lines("logs/a.log", &lines);
    let _agent = start_agent(&cfg);
    assert!(es.wait_for_docs(6, WAIT) && ds.wait_for_docs(6, WAIT));
    let docs = es.docs();
    for (i, (t, index)) in times.iter().enumerate() {
        let d = docs
            .iter()
            .find(|d| d.message == format!("event {i}"))
            .unwrap();
        assert_eq!(d.index, *index, "{t}");
        let want = if t.contains('.') {
            let (head, frac) = t.trim_end_matches('Z').split_once('.').unwrap();
            format!("{head}.{frac:0<9}Z")
        } else {
            t.replace('Z', ".000000000Z")
        };
        assert_eq!(d.source["@timestamp"], want);
    }
    for d in ds.docs() {
        assert_eq!(
            (d.index.as_str(), d.op_type.as_str()),
            ("logs-app-default", "create")
        );
    }
}

#[test]
fn a_413_splits_the_request_until_it_fits() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    es.set_max_body(Some(8_000));
    let cfg = config(
        &dir,
        &sink(&es.url(), "    name: es-split\n    batchsize: 1MB\n"),
        None,
        "",
    );
    let mut lines = lines_range("split", 0, 600);
    let huge = format!("huge {}", "x".repeat(9_000));
    lines.insert(300, huge.clone());
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(
        es.wait_for_docs(600, WAIT),
        "{} of 600",
        es.stats().documents
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    let fit: Vec<String> = lines.iter().filter(|l| **l != huge).cloned().collect();
    exactly_once(&fit, &es);
    let requests = es.bulk_requests();
    assert!(requests.iter().any(|r| r.status == 413));
    assert!(requests
        .iter()
        .filter(|r| r.status == 200)
        .all(|r| r.body_bytes <= 8_000));
    assert!(metric(&agent, "logferry_elasticsearch_split_requests_total", "") >= 4.0);
    let dead = dead_letters(&dir, "es-split");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["line"], huge.as_str());
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("status 413"),
        "{}",
        dead[0]
    );
}

#[test]
fn connection_resets_and_slow_answers_are_retried() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    es.reset_next(3);
    es.set_delay(Duration::from_millis(200));
    let cfg = config(&dir, &sink(&es.url(), ""), None, "");
    let lines = lines_range("reset", 0, 500);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(es.wait_for_docs(500, WAIT), "{}", agent.logs());
    assert!(agent.wait_until_buffers_empty(WAIT));
    exactly_once(&lines, &es);
    assert_eq!(es.stats().resets, 3);
    assert!(
        metric(
            &agent,
            "logferry_elasticsearch_requests_total",
            "status=\"-1\""
        ) >= 3.0
    );
}

/// A whole request refused for its credentials (401, 403) is retried, not dead-lettered: an expired key
/// must not throw away what was shipped meanwhile.
#[test]
fn refused_credentials_are_retried_not_dead_lettered() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    es.fail_next(2, 401);
    let cfg = config(&dir, &sink(&es.url(), ""), None, "");
    let lines = lines_range("auth", 0, 200);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(es.wait_for_docs(200, WAIT), "{}", agent.logs());
    assert!(agent.wait_until_buffers_empty(WAIT));
    exactly_once(&lines, &es);
    let refused = es
        .bulk_requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(refused, 2);
    assert_eq!(
        dir.dead_letter_files(),
        Vec::<std::path::PathBuf>::new(),
        "nothing dead-lettered"
    );
}

#[test]
fn a_receiver_down_then_back_gets_everything_once() {
    let dir = TestDir::new();
    let es = EsReceiver::start();
    let cfg = config(&dir, &sink(&es.url(), ""), None, "");
    let first = lines_range("before", 0, 100);
    let log = dir.append_lines("logs/a.log", &first);
    let agent = start_agent(&cfg);
    assert!(es.wait_for_docs(100, WAIT));
    es.stop();
    let during = lines_range("during", 0, 400);
    dir.append_lines(&log, &during);
    assert!(agent.wait_for_log("error sending to Elasticsearch, will retry", WAIT));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(es.stats().documents, 100, "nothing while down");
    es.start_again();
    assert!(es.wait_for_docs(500, WAIT), "{}", es.stats().documents);
    assert!(agent.wait_until_buffers_empty(WAIT));
    exactly_once(&[first, during].concat(), &es);
    assert!(agent.wait_for_log("sending to Elasticsearch works again", WAIT));
}

/// `extracted_fields`: one sink takes every value the stages extracted, nested under `extracted`,
/// another only `level`, at the top of the document; Loki gets the lines unchanged. The entries go
/// through the disk buffer (the agent is killed while Elasticsearch is down, then restarted), so the
/// buffer's record format carries the fields.
#[test]
fn extracted_fields_reach_the_documents_through_the_disk_buffer() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let all = EsReceiver::start();
    let level = EsReceiver::start();
    all.stop();
    level.stop();
    let sinks = format!(
        "{}{}",
        sink(&all.url(), "    name: all\n    extracted_fields: true\n"),
        sink(
            &level.url(),
            "    name: level\n    extracted_fields: [level, message]\n    extracted_key: ''\n"
        )
    );
    let stages =
        "    pipeline_stages:\n      - logfmt: {mapping: {level: , user: , ms: , message: msg}}\n";
    let cfg = config(&dir, &sinks, Some(&loki.url()), stages);
    let mut lines: Vec<String> = (0..50)
        .map(|i| format!("level=warn user=u{i} ms={i} msg=\"hello {i}\""))
        .collect();
    lines.push("a plain line".to_string());
    let log = dir.append_lines("logs/a.log", &lines);
    let size = std::fs::metadata(&log).unwrap().len();

    let mut agent = start_agent(&cfg);
    assert!(loki.wait_for_lines(51, WAIT));
    // Once the position is past every line, the batches are in both sinks' disk buffers.
    let positions = dir.join("positions.yaml");
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&positions)
        .unwrap_or_default()
        .contains(&format!("offset: {size}\n"))
    {
        assert!(std::time::Instant::now() < deadline, "{}", agent.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.kill();
    assert_eq!(all.stats().documents + level.stats().documents, 0);

    all.start_again();
    level.start_again();
    let restarted = start_agent(&cfg);
    assert!(all.wait_for_docs(51, WAIT), "{}", all.stats().documents);
    assert!(level.wait_for_docs(51, WAIT), "{}", level.stats().documents);
    assert!(restarted.wait_until_buffers_empty(WAIT));
    exactly_once(&lines, &all);
    exactly_once(&lines, &level);
    // Loki got them before the kill; its buffer may not have recorded that yet, and sends again.
    let loki_counts = count_loss(&lines, &loki.lines());
    assert_eq!((loki_counts.lost, loki_counts.unexpected), (0, 0));

    for d in all.docs() {
        match d.message.strip_prefix("level=warn user=u") {
            Some(rest) => {
                let i = rest.split(' ').next().unwrap();
                assert_eq!(
                    d.source["extracted"],
                    serde_json::json!({"level": "warn", "user": format!("u{i}"), "ms": i,
                                       "message": format!("hello {i}")}),
                    "{}",
                    d.source
                );
            }
            // Nothing extracted (the job and filename labels copied in at start do not count).
            None => assert!(d.source.get("extracted").is_none(), "{}", d.source),
        }
    }
    for d in level.docs() {
        let mut keys: Vec<&String> = d.source.as_object().unwrap().keys().collect();
        keys.sort();
        if d.message.starts_with("level=") {
            // `message` stays the line: an extracted value may not replace a document field.
            assert_eq!(
                keys,
                ["@timestamp", "labels", "level", "message"],
                "{}",
                d.source
            );
            assert_eq!(d.source["level"], "warn");
        } else {
            assert_eq!(keys, ["@timestamp", "labels", "message"], "{}", d.source);
        }
    }
}

#[test]
fn the_selector_routes_entries_and_loki_gets_everything() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let errors = EsReceiver::start();
    let nothing = EsReceiver::start();
    let sinks = format!(
        "{}{}",
        sink(
            &errors.url(),
            "    selector: '{job=\"app\"} |= \"ERROR\"'\n"
        ),
        sink(&nothing.url(), "    selector: '{job=\"other\"}'\n")
    );
    let cfg = config(&dir, &sinks, Some(&loki.url()), "");
    let lines: Vec<String> = (0..400)
        .map(|i| {
            let level = if i % 4 == 0 { "ERROR" } else { "INFO" };
            format!("{level} line {i}")
        })
        .collect();
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(loki.wait_for_lines(400, WAIT));
    assert!(errors.wait_for_docs(100, WAIT));
    assert!(agent.wait_until_buffers_empty(WAIT));
    assert_eq!(count_loss(&lines, &loki.lines()), Counts::default());
    let want: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("ERROR"))
        .cloned()
        .collect();
    exactly_once(&want, &errors);
    assert_eq!(nothing.stats().bulk_requests, 0);
    // Positions move although one sink got nothing: it is not a holder of those batches.
    let size = std::fs::metadata(dir.join("logs/a.log")).unwrap().len();
    let positions = dir.join("positions.yaml");
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&positions)
        .unwrap_or_default()
        .contains(&format!("offset: {size}\n"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "positions never reached {size}: {}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn endpoints_take_turns_and_a_dead_one_is_skipped() {
    let dir = TestDir::new();
    let dead = EsReceiver::start();
    dead.stop();
    let a = EsReceiver::start();
    let b = EsReceiver::start();
    let sinks = sink(&a.url(), "    batch_entries: 50\n").replace(
        &format!("[{}]", a.url()),
        &format!("[{}, {}, {}]", dead.url(), a.url(), b.url()),
    );
    let cfg = config(&dir, &sinks, None, "");
    let lines = lines_range("rr", 0, 1000);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    let both = || a.stats().documents + b.stats().documents;
    let deadline = std::time::Instant::now() + WAIT;
    while both() < 1000 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.wait_until_buffers_empty(WAIT));
    let got = [a.messages(), b.messages()].concat();
    assert_eq!(count_loss(&lines, &got), Counts::default());
    assert!(
        a.stats().bulk_requests >= 5 && b.stats().bulk_requests >= 5,
        "round robin: {} / {}",
        a.stats().bulk_requests,
        b.stats().bulk_requests
    );
}

#[test]
fn auth_gzip_headers_and_opensearch() {
    let dir = TestDir::new();
    let os = EsReceiver::start();
    os.set_opensearch(true);
    let keyed = EsReceiver::start();
    let password = dir.write_file("secrets/password", "s3cret\n");
    let sinks = format!(
        "{}{}",
        sink(
            &os.url(),
            &format!(
                "    compression: gzip\n    headers: {{X-Team: logs}}\n    pipeline: my pipeline\n    \
                 basic_auth: {{username: shipper, password_file: {}}}\n",
                password.display()
            )
        ),
        sink(&keyed.url(), "    api_key: VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n")
    );
    let cfg = config(&dir, &sinks, None, "");
    let lines = lines_range("auth", 0, 200);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&cfg);
    assert!(os.wait_for_docs(200, WAIT) && keyed.wait_for_docs(200, WAIT));
    exactly_once(&lines, &os);
    exactly_once(&lines, &keyed);
    assert!(agent.wait_for_log("connected to OpenSearch 2.11.1", WAIT));
    let r = &os.bulk_requests()[0];
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.header("authorization"),
        Some("Basic c2hpcHBlcjpzM2NyZXQ=")
    );
    assert_eq!(r.header("x-team"), Some("logs"));
    assert!(r.query.contains("pipeline=my%20pipeline"), "{}", r.query);
    let k = &keyed.bulk_requests()[0];
    assert_eq!(
        k.header("authorization"),
        Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    );
    assert_eq!(k.header("content-encoding"), None);
}

#[test]
fn config_errors_point_at_the_elasticsearch_key() {
    let dir = TestDir::new();
    let check = |yaml: &str| -> String {
        let path: &Path = &dir.write_config(yaml);
        let out = common::Agent::builder()
            .arg("check-config")
            .arg(path)
            .run(WAIT);
        assert!(!out.status.success(), "{yaml}");
        out.stderr
    };
    let err = check("elasticsearch:\n  - endpoints: [http://es:9200]\n    index: logs\n    selector: '{job=}'\n");
    assert!(
        err.contains("config.yaml:4:15: elasticsearch[0].selector: parse error"),
        "{err}"
    );
    let err =
        check("elasticsearch:\n  - endpoints: [http://es:9200]\n    index: logs\n    indx: x\n");
    assert!(
        err.contains("config.yaml:4:5: elasticsearch[0]: unknown field \"indx\""),
        "{err}"
    );
    let err = check("elasticsearch:\n  - endpoints: [http://es:9200]\n    index: logs-%Y.%b\n");
    assert!(
        err.contains("config.yaml:3:12: elasticsearch[0].index: unknown date field %b"),
        "{err}"
    );
}
