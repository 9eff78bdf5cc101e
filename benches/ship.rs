//! End-to-end throughput of the real agent binary, file tailed from its start into a Loki receiver
//! that only counts, beside the baseline of reading the same file and splitting it into lines with
//! memchr (one thread, one reused buffer) in this process. Runs, all in one process:
//!
//! * nginx combined lines: no buffer (`buffer: {type: memory}`), the disk buffer with
//!   `fsync: interval` (the default) and with `fsync: always`;
//! * JSON nginx lines parsed by `json` into two labels and a timestamp (`labels`, `timestamp`), with
//!   the default disk buffer;
//! * nginx combined lines into an Elasticsearch `_bulk` receiver that only counts, plain and gzip;
//! * nginx combined lines into an OTLP/HTTP receiver that decodes and counts (the `otlp` sink,
//!   protobuf, gzip (the default) and uncompressed;
//! * the disk buffer alone, in this process: encode + append + read + decode of batches of the
//!   nginx lines, in MiB/s.
//!
//! `cargo bench --bench ship` (release build). Size with `LOGFERRY_BENCH_MB` (default 1024 = 1 GiB;
//! 8 MiB when run as a smoke test by `cargo test --all-targets`).
//! Prints MiB per CPU-second, CPU seconds per GiB, wall MiB/s, the agent's peak RSS (VmHWM) and the
//! MiB it wrote to storage per MiB of log (`write_bytes` of `/proc/<pid>/io`: the disk buffer).
//!
//! `LOGFERRY_BENCH_ONLY=JSON` keeps only the runs whose name contains that text.
//! `LOGFERRY_BENCH_BEFORE=/path/to/logferry` runs each kept run a second time with that binary (an
//! older build), right after the current one, so a change is measured before/after under the same load
//! on a shared machine.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::process;
use common::{Agent, EsReceiver, LokiReceiver, TestDir};

const NGINX: &str = include_str!("data/nginx-access.log");
const NGINX_JSON: &str = include_str!("data/nginx-access-json.log");

fn generate(path: &Path, mib: u64) -> (u64, u64) {
    generate_from(NGINX, path, mib, |t, n| format!("{t} rid={n}\n"))
}

/// JSON lines, the request counter as one more field.
fn generate_json(path: &Path, mib: u64) -> (u64, u64) {
    generate_from(NGINX_JSON, path, mib, |t, n| {
        format!("{}, \"rid\": {n}}}\n", t.trim_end().trim_end_matches('}'))
    })
}

fn generate_from(
    data: &str,
    path: &Path,
    mib: u64,
    make: impl Fn(&str, u64) -> String,
) -> (u64, u64) {
    let templates: Vec<&str> = data.lines().filter(|l| !l.is_empty()).collect();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let target = mib << 20;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while bytes < target {
        let t = templates[(lines as usize) % templates.len()];
        // Vary each line a little (a request counter), as real logs do, so nothing compresses unfairly.
        let line = make(t, lines);
        out.write_all(line.as_bytes()).unwrap();
        bytes += line.len() as u64;
        lines += 1;
    }
    out.flush().unwrap();
    (bytes, lines)
}

fn baseline(path: &Path) -> (f64, f64, u64) {
    let cpu0 = process::self_cpu_seconds();
    let t0 = Instant::now();
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 512 * 1024];
    let mut lines = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    (
        process::self_cpu_seconds() - cpu0,
        t0.elapsed().as_secs_f64(),
        lines,
    )
}

struct Run {
    cpu: f64,
    wall: f64,
    rss: f64,
    /// MiB the agent wrote to storage (its disk buffer, positions), from `/proc/<pid>/io`.
    written: f64,
}

/// Run the agent with `sinks` (its `clients` or `elasticsearch` YAML) on `glob` from its start, with
/// fresh positions and buffers under `<dir>/<name>`, until `done` says everything arrived.
fn run_agent(
    program: &Path,
    dir: &TestDir,
    name: &str,
    sinks: &str,
    glob: &Path,
    stages: &str,
    done: impl FnOnce() -> bool,
) -> Run {
    let state = dir.join(name);
    fs::create_dir_all(&state).unwrap();
    let config = dir.write_file(
        format!("{name}.yaml"),
        format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {state}/positions.yaml
{sinks}scrape_configs:
  - job_name: bench
    static_configs:
      - labels:
          job: bench
          __path__: {glob}
{stages}"#,
            state = state.display(),
            glob = glob.display(),
        ),
    );
    let t0 = Instant::now();
    let agent = Agent::builder()
        .program(program)
        .config_file(&config)
        .spawn();
    let pid = agent.pid();
    let finished = done();
    let run = Run {
        wall: t0.elapsed().as_secs_f64(),
        cpu: process::cpu_seconds(pid),
        rss: process::peak_rss_mib(pid),
        written: process::written_bytes(pid) as f64 / 1048576.0,
    };
    drop(agent);
    assert!(finished, "{name}: not everything arrived");
    let _ = fs::remove_dir_all(&state);
    run
}

/// The disk buffer alone: requests of `file`'s lines (512 KiB of lines each, snappy-compressed
/// beforehand as the batcher would) appended with an fsync every 500 ms, then read back. (write, read)
/// MiB/s of line bytes.
fn buffer_alone(dir: &TestDir, file: &Path) -> (f64, f64) {
    use logferry::buffer::{codec, log};
    use logferry::delivery::{Payload, Request};
    let text = fs::read(file).unwrap();
    let mut requests = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for chunk in text.chunks(512 * 1024) {
        let entries = chunk.iter().filter(|&&b| b == b'\n').count() as u32;
        requests.push(Request {
            body: encoder.compress_vec(chunk).unwrap().into(),
            dest: "".into(),
            entries,
            bytes: chunk.len() as u64,
        });
    }
    let mib = text.len() as f64 / 1048576.0;
    drop(text);
    let bdir = dir.join("buffer-alone");
    let (mut w, mut r, _) = log::open(&bdir, 16 << 20).unwrap();
    let t0 = Instant::now();
    let mut last_sync = Instant::now();
    let mut payload = Vec::new();
    for req in &requests {
        payload.clear();
        codec::encode_request(req, &mut payload);
        w.append(&payload, u64::from(req.entries)).unwrap();
        if last_sync.elapsed() >= Duration::from_millis(500) {
            w.sync().unwrap();
            last_sync = Instant::now();
        }
    }
    w.sync().unwrap();
    let write = mib / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut n = 0;
    while let log::Read::Record { end, .. } = r.read_next().unwrap() {
        match codec::decode_record(r.payload()).unwrap() {
            Payload::Request(req) => n += req.entries as usize,
            Payload::Entries(_) => unreachable!("requests were written"),
        }
        r.ack(end).unwrap();
    }
    let read = mib / t0.elapsed().as_secs_f64();
    assert_eq!(
        n,
        requests.iter().map(|r| r.entries as usize).sum::<usize>()
    );
    let _ = fs::remove_dir_all(&bdir);
    (write, read)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test on 8 MiB.
    let full = std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("LOGFERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1024 } else { 8 });
    let dir = TestDir::new();
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let file = logs.join("access.log");
    let (bytes, lines) = generate(&file, mib);
    let size_mib = bytes as f64 / (1u64 << 20) as f64;
    // The JSON workload: 1M lines at full size, as the targets are quoted.
    let json_file = logs.join("access.json");
    let (json_bytes, json_lines) = generate_json(&json_file, if full { 330 } else { 4 });
    let json_mib = json_bytes as f64 / (1u64 << 20) as f64;
    println!("nginx file: {size_mib:.0} MiB, {lines} lines; JSON file: {json_mib:.0} MiB, {json_lines} lines");

    let (b_cpu, b_wall, b_lines) = baseline(&file);
    assert_eq!(b_lines, lines);

    let memory = "    buffer: {type: memory}\n";
    let always = "    buffer: {fsync: always}\n";
    let json_stages = r#"    pipeline_stages:
      - json:
          expressions: {status: status, agent: http_user_agent, time: time_local}
      - labels: {status: "", agent: ""}
      - timestamp: {source: time, format: "02/Jan/2006:15:04:05 -0700"}
"#;
    let nginx = logs.join("access.log");
    let current = std::path::PathBuf::from(env!("CARGO_BIN_EXE_logferry"));
    let before = std::env::var_os("LOGFERRY_BENCH_BEFORE").map(std::path::PathBuf::from);
    let only = std::env::var("LOGFERRY_BENCH_ONLY").unwrap_or_default();
    let loki = |program: &Path, name: &str, client: &str, glob: &Path, lines: u64, stages: &str| {
        let receiver = LokiReceiver::start_count_only();
        let sinks = format!("clients:\n  - url: {}\n{client}", receiver.url());
        run_agent(program, &dir, name, &sinks, glob, stages, || {
            receiver.wait_for_lines(lines as usize, Duration::from_secs(1800))
        })
    };
    let es = |program: &Path, name: &str, extra: &str| {
        let receiver = EsReceiver::start_count_only();
        let sinks = format!(
            "elasticsearch:\n  - endpoints: [{}]\n    index: bench-%Y.%m.%d\n{extra}",
            receiver.url()
        );
        run_agent(program, &dir, name, &sinks, &nginx, "", || {
            receiver.wait_for_docs(lines as usize, Duration::from_secs(1800))
        })
    };
    let otlp = |program: &Path, name: &str, extra: &str| {
        let receiver = common::otel::OtlpReceiver::start_count_only();
        let sinks = format!("otlp:\n  - url: {}\n{extra}", receiver.url());
        run_agent(program, &dir, name, &sinks, &nginx, "", || {
            receiver.wait_for_count(lines as usize, Duration::from_secs(1800))
        })
    };
    type Workload<'a> = Box<dyn Fn(&Path) -> Run + 'a>;
    let workloads: Vec<(&str, f64, Workload)> = vec![
        (
            "file -> Loki, no buffer",
            size_mib,
            Box::new(|p: &Path| loki(p, "memory", memory, &nginx, lines, "")),
        ),
        (
            "file -> Loki, disk buffer fsync=interval",
            size_mib,
            Box::new(|p: &Path| loki(p, "interval", "", &nginx, lines, "")),
        ),
        (
            "file -> Loki, disk buffer fsync=always",
            size_mib,
            Box::new(|p: &Path| loki(p, "always", always, &nginx, lines, "")),
        ),
        (
            "JSON -> 2 labels + timestamp -> Loki",
            json_mib,
            Box::new(|p: &Path| loki(p, "json", "", &json_file, json_lines, json_stages)),
        ),
        (
            "file -> Elasticsearch",
            size_mib,
            Box::new(|p: &Path| es(p, "es", "")),
        ),
        (
            "file -> Elasticsearch (gzip)",
            size_mib,
            Box::new(|p: &Path| es(p, "es-gzip", "    compression: gzip\n")),
        ),
        (
            "file -> OTLP (gzip)",
            size_mib,
            Box::new(|p: &Path| otlp(p, "otlp", "")),
        ),
        (
            "file -> OTLP (no compression)",
            size_mib,
            Box::new(|p: &Path| otlp(p, "otlp-plain", "    compression: none\n")),
        ),
    ];
    let mut runs: Vec<(String, f64, Run)> = Vec::new();
    for (name, mib, workload) in &workloads {
        if !name.contains(only.as_str()) {
            continue;
        }
        runs.push((name.to_string(), *mib, workload(&current)));
        if let Some(before) = &before {
            runs.push((format!("{name} (before)"), *mib, workload(before)));
        }
    }
    let buffer = only.is_empty().then(|| buffer_alone(&dir, &file));

    println!();
    println!("| run                                               | MiB per CPU-s | CPU s per GiB | wall MiB/s | peak RSS MiB | written per MiB |");
    println!("|---------------------------------------------------|---------------|---------------|------------|--------------|-----------------|");
    println!(
        "| {:<49} | {:>13.0} | {:>13.3} | {:>10.0} | {:>12} | {:>15} |",
        "baseline: read + memchr",
        size_mib / b_cpu,
        b_cpu / size_mib * 1024.0,
        size_mib / b_wall,
        "-",
        "-"
    );
    for (name, mib, r) in &runs {
        println!(
            "| {:<49} | {:>13.0} | {:>13.3} | {:>10.0} | {:>12.1} | {:>15.2} |",
            name,
            mib / r.cpu,
            r.cpu / mib * 1024.0,
            mib / r.wall,
            r.rss,
            r.written / mib
        );
    }
    let find = |name: &str| runs.iter().find(|r| r.0 == name);
    if let (Some(none), Some(interval), Some(always)) = (
        find("file -> Loki, no buffer"),
        find("file -> Loki, disk buffer fsync=interval"),
        find("file -> Loki, disk buffer fsync=always"),
    ) {
        let per_cpu = |r: &(String, f64, Run)| r.1 / r.2.cpu;
        let per_wall = |r: &(String, f64, Run)| r.1 / r.2.wall;
        println!(
            "\ndisk buffer cost vs no buffer: fsync=interval {:+.1}% CPU per MiB, {:+.1}% wall time; \
             fsync=always {:+.1}% CPU per MiB, {:+.1}% wall time",
            (per_cpu(none) / per_cpu(interval) - 1.0) * 100.0,
            (per_wall(none) / per_wall(interval) - 1.0) * 100.0,
            (per_cpu(none) / per_cpu(always) - 1.0) * 100.0,
            (per_wall(none) / per_wall(always) - 1.0) * 100.0
        );
    }
    if let Some((buf_write, buf_read)) = buffer {
        println!(
            "disk buffer alone (encode + append + fsync every 500 ms / read + decode): write {buf_write:.0} MiB/s, read {buf_read:.0} MiB/s"
        );
    }
}
