//! The receiving sources beside the file source, on the same nginx lines, into a Loki receiver that
//! only counts, each with the default disk buffer, in one run:
//!
//! * file: the lines in a file, tailed from its start;
//! * syslog over TCP: the lines as RFC 5424 messages, newline-framed, on one connection;
//! * `loki_push_api`: the lines pushed in protobuf+snappy, 5,000 entries a push, 4 pushes in flight.
//! * `otlp`: the lines as OTLP/HTTP protobuf export requests (one resource with `service.name`, the
//!   line as a string body), 5,000 records a request, 4 requests in flight.
//!
//! Prints lines per CPU-second of the agent (the clients run in this process and are not counted),
//! wall lines/s and peak RSS. `cargo bench --bench receive` (release build). Lines with
//! `LOGFERRY_BENCH_LINES` (default 1,000,000; 20,000 when run as a smoke test by `cargo test
//! --all-targets`). `LOGFERRY_BENCH_ONLY=syslog` keeps only the runs whose name contains that text.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::logproto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
use common::{encode_push, http, process, Agent, LokiReceiver, TestDir};

const NGINX: &str = include_str!("data/nginx-access.log");
const PUSH_ENTRIES: usize = 5000;
const PUSHERS: usize = 4;

struct Run {
    cpu: f64,
    wall: f64,
    rss: f64,
}

/// `n` nginx lines, each varied by a request counter.
fn lines(n: usize) -> Vec<String> {
    let templates: Vec<&str> = NGINX.lines().filter(|l| !l.is_empty()).collect();
    (0..n)
        .map(|i| format!("{} rid={i}", templates[i % templates.len()]))
        .collect()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Run the agent with scrape config `scrape` and a client to a counting receiver; `feed` sends the
/// lines (from this process) once the agent has started; measured until all `n` arrived.
fn run(dir: &TestDir, name: &str, scrape: &str, n: usize, feed: impl FnOnce()) -> Run {
    let receiver = LokiReceiver::start_count_only();
    let state = dir.join(name);
    fs::create_dir_all(&state).unwrap();
    let config = dir.write_file(
        format!("{name}.yaml"),
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
             positions:\n  filename: {state}/positions.yaml\n\
             clients:\n  - url: {url}\n    buffer: {{path: {state}/buffer}}\n\
             scrape_configs:\n{scrape}",
            state = state.display(),
            url = receiver.url(),
        ),
    );
    let t0 = Instant::now();
    let agent = Agent::builder()
        .program(env!("CARGO_BIN_EXE_logferry"))
        .config_file(&config)
        .spawn();
    assert!(
        agent.wait_for_log("logferry started", Duration::from_secs(30)),
        "{name}: the agent did not start"
    );
    feed();
    let arrived = receiver.wait_for_lines(n, Duration::from_secs(1800));
    let pid = agent.pid();
    let run = Run {
        wall: t0.elapsed().as_secs_f64(),
        cpu: process::cpu_seconds(pid),
        rss: process::peak_rss_mib(pid),
    };
    drop(agent);
    assert!(
        arrived,
        "{name}: {} of {n} lines arrived",
        receiver.lines().len()
    );
    let _ = fs::remove_dir_all(&state);
    run
}

/// Connect to `port` as soon as the agent listens there.
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn syslog(lines: &[String], port: u16) {
    let mut out = BufWriter::with_capacity(1 << 20, connect(port));
    for line in lines {
        writeln!(
            out,
            "<165>1 2026-12-03T10:00:00.000Z web-1 nginx 812 - - {line}"
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn push(lines: &[String], port: u16) {
    drop(connect(port));
    let url = format!("http://127.0.0.1:{port}/loki/api/v1/push");
    let bodies: Vec<Vec<u8>> = lines
        .chunks(PUSH_ENTRIES)
        .map(|chunk| {
            let entries = chunk
                .iter()
                .map(|line| EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1_764_756_000,
                        nanos: 0,
                    }),
                    line: line.clone(),
                    structured_metadata: vec![],
                    parsed: vec![],
                })
                .collect();
            encode_push(&PushRequest {
                streams: vec![StreamAdapter {
                    labels: r#"{job="bench"}"#.into(),
                    entries,
                    hash: 0,
                }],
                format: String::new(),
            })
        })
        .collect();
    post_all(bodies, url, "application/x-protobuf", 204);
}

fn otlp(lines: &[String], port: u16) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    drop(connect(port));
    let url = format!("http://127.0.0.1:{port}/v1/logs");
    let string = |s: &str| {
        Some(AnyValue {
            value: Some(Value::StringValue(s.to_string())),
        })
    };
    let bodies: Vec<Vec<u8>> = lines
        .chunks(PUSH_ENTRIES)
        .map(|chunk| {
            let log_records = chunk
                .iter()
                .map(|line| LogRecord {
                    time_unix_nano: 1_764_756_000_000_000_000,
                    body: string(line),
                    ..Default::default()
                })
                .collect();
            ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: string("bench"),
                        }],
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        log_records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        })
        .collect();
    post_all(bodies, url, "application/x-protobuf", 200);
}

/// POST every body to `url`, [`PUSHERS`] at a time, each answered `status`.
fn post_all(bodies: Vec<Vec<u8>>, url: String, content_type: &'static str, status: u16) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|_| {
            let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return };
                let answer =
                    http::post(&url, &[("Content-Type", content_type)], body).expect("push");
                assert_eq!(answer.status, status, "{}", answer.text());
            })
        })
        .collect();
    for p in pushers {
        p.join().expect("pusher");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("LOGFERRY_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let dir = TestDir::new();
    let lines = Arc::new(lines(n));
    let file = dir.join("logs/access.log");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut out = BufWriter::new(fs::File::create(&file).unwrap());
    for l in lines.iter() {
        writeln!(out, "{l}").unwrap();
    }
    out.flush().unwrap();
    let mib = fs::metadata(&file).unwrap().len() as f64 / 1048576.0;
    println!("{n} nginx lines, {mib:.0} MiB");

    let mut runs: Vec<(&str, Run)> = Vec::new();
    let wanted = |name: &str| name.contains(only.as_str());
    if wanted("file") {
        let scrape = format!(
            "  - job_name: bench\n    static_configs:\n      - labels: {{job: bench, __path__: {}}}\n",
            file.display()
        );
        runs.push(("file", run(&dir, "file", &scrape, n, || {})));
    }
    if wanted("syslog TCP") {
        let port = free_port();
        let scrape = format!(
            "  - job_name: bench\n    syslog:\n      listen_address: 127.0.0.1:{port}\n      labels: {{job: bench}}\n"
        );
        let l = lines.clone();
        runs.push((
            "syslog TCP",
            run(&dir, "syslog", &scrape, n, move || syslog(&l, port)),
        ));
    }
    if wanted("loki_push_api") {
        let port = free_port();
        let scrape = format!(
            "  - job_name: bench\n    loki_push_api:\n      server: {{http_listen_address: 127.0.0.1, http_listen_port: {port}}}\n"
        );
        let l = lines.clone();
        runs.push((
            "loki_push_api (protobuf)",
            run(&dir, "push", &scrape, n, move || push(&l, port)),
        ));
    }
    if wanted("otlp") {
        let port = free_port();
        let scrape = format!(
            "  - job_name: bench\n    otlp:\n      http: {{listen_address: '127.0.0.1:{port}'}}\n      labels: {{job: bench}}\n"
        );
        let l = lines.clone();
        runs.push((
            "otlp (HTTP protobuf)",
            run(&dir, "otlp", &scrape, n, move || otlp(&l, port)),
        ));
    }

    println!();
    println!("| source -> Loki (disk buffer)  | lines per CPU-s | CPU s per M lines | wall lines/s | peak RSS MiB |");
    println!("|-------------------------------|-----------------|-------------------|--------------|--------------|");
    for (name, r) in &runs {
        println!(
            "| {:<29} | {:>15.0} | {:>17.2} | {:>12.0} | {:>12.1} |",
            name,
            n as f64 / r.cpu,
            r.cpu / n as f64 * 1e6,
            n as f64 / r.wall,
            r.rss
        );
    }
}
