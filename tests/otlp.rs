//! OpenTelemetry logs in and out.
//!
//! * The `otlp` source, with the real OpenTelemetry Python SDK and its OTLP exporters (HTTP and gRPC)
//!   as clients: records arrive at Loki labelled as Loki's own OTLP endpoint labels them, a request
//!   succeeds only once every sink holds its records, so an agent killed with SIGKILL while the SDK
//!   sends loses nothing the SDK was told was taken; bad requests are refused with the reason.
//! * The `otlp` sink, into a receiver that decodes the real protobuf messages and answers with real
//!   partial-success bodies.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::http;
use common::otel::{OtelClient, OtlpReceiver};
use common::{start_agent, Agent, LokiReceiver, TestConfig, TestDir};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

const WAIT: Duration = Duration::from_secs(60);

/// An agent with an `otlp` job (HTTP and gRPC on `http_port`/`grpc_port`, 0 for any), to `loki`;
/// `scrape_extra` goes into the job (indented 4), `client_extra` into the client (indented 4).
fn receiver_config(
    dir: &TestDir,
    loki: &str,
    ports: (u16, u16),
    scrape_extra: &str,
    client_extra: &str,
) -> PathBuf {
    let root = dir.path().display();
    let (http_port, grpc_port) = ports;
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n  - url: {loki}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n{client_extra}\
         scrape_configs:\n  - job_name: otlp\n    otlp:\n      \
         http: {{listen_address: '127.0.0.1:{http_port}'}}\n      \
         grpc: {{listen_address: '127.0.0.1:{grpc_port}'}}\n      \
         labels: {{job: otlp}}\n{scrape_extra}"
    ))
}

/// A protobuf export request of one record, `"<text> "` and two bytes that are not UTF-8 (`\xc3(`),
/// at `time_unix_nano`.
fn bad_utf8_request(text: &str, time_unix_nano: u64) -> Vec<u8> {
    let record = LogRecord {
        time_unix_nano,
        body: Some(AnyValue {
            value: Some(Value::StringValue(format!("{text} XX"))),
        }),
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut body = request.encode_to_vec();
    let at = body.windows(2).position(|w| w == b"XX").unwrap();
    body[at..at + 2].copy_from_slice(b"\xc3\x28");
    body
}

/// The addresses the agent's OTLP listeners took.
fn otlp_addresses(agent: &Agent) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let http = agent.logged_address(|l| l.contains("OTLP/HTTP"));
    let grpc = agent.logged_address(|l| l.contains("OTLP/gRPC"));
    (http, grpc)
}

/// The sum of metric `name`'s series whose labels contain `needle`.
fn metric_with(agent: &Agent, name: &str, needle: &str) -> f64 {
    let page = http::get(&format!("{}/metrics", agent.http_url()))
        .expect("GET /metrics")
        .text();
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_sdk_s_records_arrive_over_http_and_grpc_labelled_as_loki_labels_them() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let config = receiver_config(&dir, &loki.url(), (0, 0), "", "");
    let agent = start_agent(&config);
    let (http_addr, grpc_addr) = otlp_addresses(&agent);

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    let over_http = OtelClient::spawn(
        "http",
        &format!("http://{http_addr}/v1/logs"),
        300,
        "h",
        0.0,
    );
    let over_grpc = OtelClient::spawn("grpc", &grpc_addr.to_string(), 300, "g", 0.0);
    assert!(over_http.wait_done(WAIT), "{:?}", over_http.output());
    assert!(over_grpc.wait_done(WAIT), "{:?}", over_grpc.output());
    assert_eq!(over_http.acked().len(), 300, "{:?}", over_http.output());
    assert_eq!(over_grpc.acked().len(), 300, "{:?}", over_grpc.output());

    let mut expected: Vec<String> = (0..300).map(|i| format!("h {i}")).collect();
    expected.extend((0..300).map(|i| format!("g {i}")));
    assert!(
        loki.wait_for_all_lines(&expected, WAIT),
        "{} lines",
        loki.lines().len()
    );
    // Nothing left in the buffer: nothing can be sent again, so the count is final.
    assert!(agent.wait_until_buffers_empty(WAIT));
    let counts = common::count_loss(&expected, &loki.lines());
    assert!(counts.is_exact(), "{counts:?}");

    let entries = loki.entries();
    let (trace, span) = over_http.trace().expect("the client's trace ids");
    let e = entries.iter().find(|e| e.line == "h 7").expect("h 7");
    for label in [
        r#"job="otlp""#,
        r#"service_name="checkout""#,
        r#"deployment_environment="test""#,
    ] {
        assert!(e.labels.contains(label), "{label} in {}", e.labels);
    }
    assert!(!e.labels.contains("host_name"), "{}", e.labels);
    let meta = |name: &str| {
        e.metadata
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(meta("order_id"), Some("7"));
    assert_eq!(meta("payment"), Some("card"));
    assert_eq!(meta("severity_text"), Some("WARN"));
    assert_eq!(meta("severity_number"), Some("13"));
    assert_eq!(meta("trace_id"), Some(trace.as_str()));
    assert_eq!(meta("span_id"), Some(span.as_str()));
    assert_eq!(meta("host_name"), Some("web-1"));
    assert_eq!(meta("scope_name"), Some("shop.checkout"));
    // The record's own time, taken when the application logged it.
    assert!(e.timestamp_ns >= before, "{} < {before}", e.timestamp_ns);
    assert!(
        e.timestamp_ns < before + 60_000_000_000,
        "{}",
        e.timestamp_ns
    );
    assert_eq!(
        metric_with(
            &agent,
            "logferry_push_entries_total",
            r#"reason="accepted""#
        ),
        600.0
    );
}

#[test]
fn both_listeners_serve_tls_when_given_a_certificate() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    common::make_certs(dir.path());
    let root = dir.path().display();
    let tls = format!("tls_config: {{cert_file: {root}/server.crt, key_file: {root}/server.key}}");
    let config = receiver_config(&dir, &loki.url(), (0, 0), "", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(
            "http: {listen_address: '127.0.0.1:0'}",
            &format!("http: {{listen_address: '127.0.0.1:0', {tls}}}"),
        )
        .replace(
            "grpc: {listen_address: '127.0.0.1:0'}",
            &format!("grpc: {{listen_address: '127.0.0.1:0', {tls}}}"),
        );
    std::fs::write(&config, text).unwrap();
    let agent = start_agent(&config);
    let (http_addr, grpc_addr) = otlp_addresses(&agent);
    let ca = dir.join("ca.crt");
    let over_http = OtelClient::spawn_tls(
        "http",
        &format!("https://{http_addr}/v1/logs"),
        20,
        "th",
        &ca,
    );
    let over_grpc = OtelClient::spawn_tls("grpc", &format!("https://{grpc_addr}"), 20, "tg", &ca);
    assert!(over_http.wait_done(WAIT), "{:?}", over_http.output());
    assert!(over_grpc.wait_done(WAIT), "{:?}", over_grpc.output());
    assert_eq!(over_http.acked().len(), 20, "{:?}", over_http.output());
    assert_eq!(over_grpc.acked().len(), 20, "{:?}", over_grpc.output());
    assert!(loki.wait_for_lines(40, WAIT));
    // Plain HTTP on the TLS port gets no answer.
    assert!(http::post(&format!("http://{http_addr}/v1/logs"), &[], b"").is_err());
}

#[test]
fn bad_requests_are_refused_with_the_reason_and_counted() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let scrape = "      max_recv_msg_size: 2KiB\n";
    let config = receiver_config(&dir, &loki.url(), (0, 0), scrape, "");
    let agent = start_agent(&config);
    let (http_addr, _) = otlp_addresses(&agent);
    let url = format!("http://{http_addr}/v1/logs");
    let post = |content_type: &str, body: &[u8]| {
        http::post(&url, &[("Content-Type", content_type)], body).expect("the agent answers")
    };

    // Garbage protobuf: 400 with a google.rpc.Status naming why.
    let answer = post("application/x-protobuf", b"\xff\xff\xff\xff not protobuf");
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(
        answer.text().contains("invalid OTLP protobuf"),
        "{}",
        answer.text()
    );
    // JSON that is not OTLP, and a type OTLP does not have.
    let answer = post("application/json", br#"{"resourceLogs": 5}"#);
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(
        answer.text().contains("invalid OTLP JSON"),
        "{}",
        answer.text()
    );
    let answer = post("text/plain", b"hello");
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("Content-Type"), "{}", answer.text());
    // Larger than max_recv_msg_size.
    let big = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"{}"}}}}]}}]}}]}}"#,
        "x".repeat(4000)
    );
    let answer = post("application/json", big.as_bytes());
    assert_eq!(answer.status, 413, "{}", answer.text());

    // A record without a body is dropped and reported as a partial success; invalid UTF-8 in a JSON
    // string is replaced, not refused.
    let mut body = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000001","body":{"stringValue":"bad "#.to_vec();
    body.extend_from_slice(b"\xff\xfe");
    body.extend_from_slice(br#" bytes"}},{"timeUnixNano":"1700000000000000002"}]}]}]}"#);
    let answer = post("application/json", &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let text = answer.text();
    assert!(
        text.contains("partialSuccess") && text.contains("rejectedLogRecords"),
        "{text}"
    );
    assert!(loki.wait_for_lines(1, WAIT));
    let e = &loki.entries()[0];
    assert_eq!(e.line, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(e.timestamp_ns, 1_700_000_000_000_000_001);
    assert!(e.labels.contains(r#"service_name="api""#), "{}", e.labels);

    // The same in protobuf, which prost alone would refuse whole.
    let body = bad_utf8_request("proto", 1_700_000_000_000_000_003);
    let answer = post("application/x-protobuf", &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(loki.wait_for_lines(2, WAIT));
    assert!(
        loki.lines().contains(&"proto \u{fffd}(".to_string()),
        "{:?}",
        loki.lines()
    );

    let requests = |reason: &str| {
        metric_with(
            &agent,
            "logferry_push_requests_total",
            &format!("reason=\"{reason}\""),
        )
    };
    assert_eq!(requests("malformed"), 3.0);
    assert_eq!(requests("too_large"), 1.0);
    assert_eq!(requests("accepted"), 2.0);
    assert_eq!(
        metric_with(&agent, "logferry_push_entries_total", r#"reason="no_body""#),
        1.0
    );
    assert_eq!(
        metric_with(
            &agent,
            "logferry_lines_invalid_utf8_total",
            r#"reason="otlp""#
        ),
        2.0
    );
    // A protobuf answer decodes as an ExportLogsServiceResponse.
    let answer = post("application/x-protobuf", b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("application/x-protobuf")
    );
    ExportLogsServiceResponse::decode(&answer.body[..]).expect("a protobuf answer");
}

#[test]
fn an_agent_killed_while_the_sdk_sends_loses_nothing_it_acknowledged() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let config = receiver_config(&dir, &loki.url(), (0, 0), "", "");
    let mut agent = start_agent(&config);
    let (http_addr, grpc_addr) = otlp_addresses(&agent);
    // The agent comes back on the same ports.
    let config = receiver_config(
        &dir,
        &loki.url(),
        (http_addr.port(), grpc_addr.port()),
        "",
        "",
    );

    let total = 1500;
    let client = OtelClient::spawn(
        "http",
        &format!("http://{http_addr}/v1/logs"),
        total,
        "k",
        0.002,
    );
    assert!(
        client.wait_until(WAIT, |lines| lines
            .iter()
            .filter(|l| l.starts_with("acked"))
            .count()
            >= 300),
        "{:?}",
        client.output()
    );
    agent.kill();
    let acked_at_kill = client.acked().len();
    std::thread::sleep(Duration::from_millis(300));
    let _agent = start_agent(&config);
    assert!(
        client.wait_done(Duration::from_secs(120)),
        "{:?}",
        client.output()
    );

    // Everything the SDK was told was taken is in Loki, once the agent sent its buffer.
    let acked = client.acked();
    assert!(
        acked.len() > acked_at_kill,
        "nothing acknowledged after the restart"
    );
    assert!(
        loki.wait_for_all_lines(&acked, WAIT),
        "lines lost across the SIGKILL"
    );
    let counts = common::count_loss(&acked, &loki.lines());
    eprintln!(
        "killed after {acked_at_kill} acknowledged; at the end {} acknowledged: {counts:?}",
        acked.len()
    );
    assert_eq!(counts.lost, 0, "{counts:?}");
}

/// An agent tailing `logs/*.log` into one OTLP sink at `url` (memory buffer unless `disk`).
fn sink_config(dir: &TestDir, url: &str, sink_extra: &str) -> PathBuf {
    // No Loki client: the OTLP sink is the only one.
    TestConfig::new("http://127.0.0.1:9/unused")
        .top_yaml(&format!(
            "otlp:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n{sink_extra}"
        ))
        .scrape_yaml(
            "    pipeline_stages:\n      - regex: {expression: '^(?P<n>\\S+) (?P<level>\\w+)'}\n      \
             - labels: {level: ''}\n      - structured_metadata: {n: ''}\n",
        )
        .write(dir)
}

/// The config without its Loki client.
fn without_clients(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("clients:\n").unwrap();
    let end = text.find("target_config:").unwrap();
    std::fs::write(config, format!("{}{}", &text[..start], &text[end..])).unwrap();
}

#[test]
fn the_sink_sends_labels_as_resources_and_counts_partial_successes() {
    let otlp = OtlpReceiver::start();
    otlp.reject_bodies_containing("refuse-me");
    let dir = TestDir::new();
    let config = sink_config(&dir, &otlp.url(), "");
    without_clients(&config);
    let agent = start_agent(&config);
    let mut lines: Vec<String> = (0..200).map(|i| format!("{i} info order {i}")).collect();
    lines.push("200 warn refuse-me".into());
    dir.append_lines("logs/a.log", &lines);
    assert!(
        otlp.wait_for_records(200, WAIT),
        "{} records",
        otlp.records().len()
    );

    let records = otlp.records();
    let r = records
        .iter()
        .find(|r| r.body == "7 info order 7")
        .expect("record 7");
    let resource = |k: &str| {
        r.resource
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(resource("job"), Some("app"));
    assert_eq!(resource("level"), Some("info"));
    assert!(resource("filename").is_some_and(|f| f.ends_with("a.log")));
    assert_eq!(r.attributes, [("n".to_string(), "7".to_string())]);
    assert_eq!(r.scope, "logferry");
    assert!(r.time_unix_nano > 1_700_000_000_000_000_000);
    let headers = otlp.last_headers();
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("application/x-protobuf"));
    assert_eq!(header("content-encoding"), Some("gzip"));

    assert!(http::wait_for_metric(
        &agent.http_url(),
        "logferry_otlp_partially_rejected_entries_total",
        WAIT,
        |v| v == 1.0
    ));
    assert!(http::wait_for_metric(
        &agent.http_url(),
        "logferry_otlp_sent_entries_total",
        WAIT,
        |v| v == 201.0
    ));
    assert!(agent.wait_for_log("rejected some of its records", WAIT));
}

#[test]
fn the_sink_retries_halves_on_413_and_dead_letters_a_400() {
    let otlp = OtlpReceiver::start();
    // Requests of more than 10 records are too large; the first request fails for now.
    otlp.set_max_records(Some(10));
    otlp.fail_next(&[503]);
    let dir = TestDir::new();
    let config = sink_config(&dir, &otlp.url(), "    compression: none\n");
    without_clients(&config);
    let agent = start_agent(&config);
    let lines: Vec<String> = (0..50).map(|i| format!("{i} info line {i}")).collect();
    dir.append_lines("logs/a.log", &lines);
    assert!(
        otlp.wait_for_records(50, WAIT),
        "{} records",
        otlp.records().len()
    );
    let mut bodies: Vec<String> = otlp.records().into_iter().map(|r| r.body).collect();
    bodies.sort_by_key(|b| b.split(' ').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(bodies, lines);
    let statuses = otlp.statuses();
    assert_eq!(statuses[0], 503, "{statuses:?}");
    assert!(statuses.contains(&413), "{statuses:?}");
    assert!(http::metric_sum(&agent.http_url(), "logferry_otlp_split_requests_total") >= 1.0);

    // A 400 is for good: the request goes to the dead-letter file.
    otlp.fail_next(&[400]);
    dir.append_lines("logs/a.log", &["50 error refused for good"]);
    assert!(http::wait_for_metric(
        &agent.http_url(),
        "logferry_otlp_rejected_entries_total",
        WAIT,
        |v| v == 1.0
    ));
    // Counted once the dead-letter file has the entry.
    assert!(http::wait_for_metric(
        &agent.http_url(),
        "logferry_dead_letter_entries_total",
        WAIT,
        |v| v == 1.0
    ));
    let dead: String = dir
        .dead_letter_files()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert!(dead.contains("refused for good"), "{dead}");
}

#[test]
fn while_the_sinks_are_full_requests_hear_429_with_retry_after_and_the_rest_succeed_once_safe() {
    let loki = LokiReceiver::start();
    loki.stop();
    let dir = TestDir::new();
    // A request per record, so the sink's queues fill by count.
    let memory = "    batchsize: 1\n    buffer: {type: memory}\n";
    let config = receiver_config(&dir, &loki.url(), (0, 0), "", memory);
    let agent = start_agent(&config);
    let (http_addr, _) = otlp_addresses(&agent);
    let url = format!("http://{http_addr}/v1/logs");
    // More requests than the job's queue and the sink's queues hold while Loki is down.
    let senders: Vec<_> = (0..40)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let body = format!(
                    r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"r {i}"}}}}]}}]}}]}}"#
                );
                http::post(&url, &[("Content-Type", "application/json")], body.as_bytes())
                    .expect("the agent answers")
            })
        })
        .collect();
    // Requests beyond the queues wait QUEUE_WAIT (5 s) for room, then hear 429: wait for the first.
    let deadline = std::time::Instant::now() + WAIT;
    while metric_with(&agent, "logferry_push_requests_total", r#"reason="full""#) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no request heard 429");
        std::thread::sleep(Duration::from_millis(100));
    }
    loki.start_again();
    let answers: Vec<_> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let full: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    let ok: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    assert_eq!(
        full.len() + ok.len(),
        40,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        !full.is_empty() && !ok.is_empty(),
        "{} full, {} ok",
        full.len(),
        ok.len()
    );
    assert!(full.iter().all(|a| a.header("retry-after") == Some("1")));
    assert!(full[0].text().contains("full"), "{}", full[0].text());
    // What was answered 200 is in Loki.
    assert!(
        loki.wait_for_lines(ok.len(), WAIT),
        "{} of {}",
        loki.lines().len(),
        ok.len()
    );
    assert_eq!(
        metric_with(&agent, "logferry_push_requests_total", r#"reason="full""#),
        full.len() as f64
    );
}

#[test]
fn a_reload_restarts_the_listeners_on_the_same_ports_with_the_new_labels() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let config = receiver_config(&dir, &loki.url(), (0, 0), "", "");
    let agent = start_agent(&config);
    let (http_addr, grpc_addr) = otlp_addresses(&agent);
    let ports = (http_addr.port(), grpc_addr.port());
    // The same ports, written out, and a label changed.
    let text = std::fs::read_to_string(receiver_config(&dir, &loki.url(), ports, "", ""))
        .unwrap()
        .replace(
            "labels: {job: otlp}",
            "labels: {job: otlp, reloaded: 'yes'}",
        );
    std::fs::write(&config, text).unwrap();
    agent.reload();
    assert!(
        agent.wait_for_log("config reloaded", WAIT),
        "{}",
        agent.logs()
    );
    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"after reload"}}]}]}]}"#;
    let url = format!("http://{http_addr}/v1/logs");
    // The new listener may take a moment to bind after the old one let go.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match http::post(
            &url,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ) {
            Ok(answer) if answer.status == 200 => break,
            other => assert!(std::time::Instant::now() < deadline, "{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(loki.wait_for_lines(1, WAIT));
    let e = &loki.entries()[0];
    assert!(e.labels.contains(r#"reloaded="yes""#), "{}", e.labels);
    let over_grpc = OtelClient::spawn("grpc", &grpc_addr.to_string(), 5, "after", 0.0);
    assert!(over_grpc.wait_done(WAIT), "{:?}", over_grpc.output());
    assert_eq!(over_grpc.acked().len(), 5, "{:?}", over_grpc.output());
}

/// A raw gRPC call from Python's grpc (the SDK's transport) with `body` as the serialized request:
/// "ok" or the status code's name.
fn raw_grpc_export(addr: std::net::SocketAddr, body: &[u8], dir: &TestDir) -> String {
    let file = dir.write_file("request.bin", body);
    let script = "import grpc, sys\n\
        channel = grpc.insecure_channel(sys.argv[1])\n\
        export = channel.unary_unary('/opentelemetry.proto.collector.logs.v1.LogsService/Export')\n\
        try:\n    export(open(sys.argv[2], 'rb').read(), timeout=30)\n    print('ok')\n\
        except grpc.RpcError as e:\n    print(e.code().name)\n";
    let out = std::process::Command::new(common::otel::otel_python())
        .args(["-c", script, &addr.to_string(), &file.display().to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn over_grpc_invalid_utf8_is_replaced_and_garbage_or_oversized_requests_refused() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let scrape = "      max_recv_msg_size: 2KiB\n";
    let config = receiver_config(&dir, &loki.url(), (0, 0), scrape, "");
    let agent = start_agent(&config);
    let (_, grpc_addr) = otlp_addresses(&agent);
    let body = bad_utf8_request("grpc", 1_700_000_000_000_000_004);
    assert_eq!(raw_grpc_export(grpc_addr, &body, &dir), "ok");
    assert!(loki.wait_for_lines(1, WAIT));
    assert_eq!(loki.lines(), ["grpc \u{fffd}("]);
    assert_eq!(
        metric_with(
            &agent,
            "logferry_lines_invalid_utf8_total",
            r#"reason="otlp""#
        ),
        1.0
    );
    assert_eq!(
        raw_grpc_export(grpc_addr, b"\xff\xff\xff\xff garbage", &dir),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        metric_with(
            &agent,
            "logferry_push_requests_total",
            r#"reason="malformed""#
        ),
        1.0
    );
}
