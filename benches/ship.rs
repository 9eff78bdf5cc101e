//! End-to-end throughput of the real agent binary: a generated nginx-style log file tailed from its start
//! into a Loki receiver that only counts, then into an Elasticsearch `_bulk` receiver that only counts
//! (plain, then gzip), beside the baseline of reading the same file and splitting it into lines with
//! memchr (one thread, one reused buffer) in this process.
//!
//! `cargo bench --bench ship` (release build). Size with `LOGFERRY_BENCH_MB` (default 1024 = 1 GiB;
//! 8 MiB when run as a smoke test by `cargo test --all-targets`).
//! Prints MiB per CPU-second, CPU seconds per GiB, wall MiB/s and the agent's peak RSS (VmHWM).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Agent, EsReceiver, LokiReceiver, TestDir};

const NGINX: &str = include_str!("data/nginx-access.log");

fn generate(path: &Path, mib: u64) -> (u64, u64) {
    let templates: Vec<&str> = NGINX.lines().filter(|l| !l.is_empty()).collect();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let target = mib << 20;
    let (mut bytes, mut lines) = (0u64, 0u64);
    while bytes < target {
        let t = templates[(lines as usize) % templates.len()];
        // Vary each line a little (a request counter), as real logs do, so nothing compresses unfairly.
        let line = format!("{t} rid={lines}\n");
        out.write_all(line.as_bytes()).unwrap();
        bytes += line.len() as u64;
        lines += 1;
    }
    out.flush().unwrap();
    (bytes, lines)
}

fn self_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// utime + stime of a process, from /proc (clock ticks of 1/100 s on Linux).
fn proc_cpu(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn baseline(path: &Path) -> (f64, f64, u64) {
    let cpu0 = self_cpu();
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
    (self_cpu() - cpu0, t0.elapsed().as_secs_f64(), lines)
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
    println!("file: {size_mib:.0} MiB, {lines} lines (nginx combined)");

    let (b_cpu, b_wall, b_lines) = baseline(&file);
    assert_eq!(b_lines, lines);

    let receiver = LokiReceiver::start_count_only();
    let loki = run_agent(
        &dir,
        "loki",
        &format!("clients:\n  - url: {}\n", receiver.url()),
        &logs,
        || receiver.wait_for_lines(lines as usize, Duration::from_secs(1800)),
    );
    let es_receiver = EsReceiver::start_count_only();
    let sink = |extra: &str| {
        format!(
            "elasticsearch:\n  - endpoints: [{}]\n    index: bench-%Y.%m.%d\n{extra}",
            es_receiver.url()
        )
    };
    let es = run_agent(&dir, "es", &sink(""), &logs, || {
        es_receiver.wait_for_docs(lines as usize, Duration::from_secs(1800))
    });
    let es_plain_docs = es_receiver.stats().documents;
    let es_gzip = run_agent(
        &dir,
        "es-gzip",
        &sink("    compression: gzip\n"),
        &logs,
        || es_receiver.wait_for_docs(2 * lines as usize, Duration::from_secs(1800)),
    );

    let per_cpu = |cpu: f64| size_mib / cpu;
    println!();
    println!("| run                         | MiB per CPU-s | CPU s per GiB | wall MiB/s | peak RSS MiB |");
    println!("|-----------------------------|---------------|---------------|------------|--------------|");
    println!(
        "| baseline: read + memchr     | {:>13.0} | {:>13.3} | {:>10.0} | {:>12} |",
        per_cpu(b_cpu),
        b_cpu / size_mib * 1024.0,
        size_mib / b_wall,
        "-"
    );
    for (name, run) in [
        ("logferry file -> Loki", &loki),
        ("logferry file -> ES", &es),
        ("logferry file -> ES (gzip)", &es_gzip),
    ] {
        println!(
            "| {name:<27} | {:>13.0} | {:>13.3} | {:>10.0} | {:>12.1} |",
            per_cpu(run.cpu),
            run.cpu / size_mib * 1024.0,
            size_mib / run.wall,
            run.rss
        );
    }
    println!(
        "\nLoki receiver: {} requests, {} entries, {:.1} MiB of lines, {:.1} MiB on the wire",
        receiver.stats().requests,
        receiver.stats().entries,
        receiver.stats().line_bytes as f64 / 1048576.0,
        receiver.stats().body_bytes as f64 / 1048576.0
    );
    let es_stats = es_receiver.stats();
    println!(
        "Elasticsearch receiver: {} bulk requests, {} documents ({} plain, then gzip), {:.1} MiB on the wire",
        es_stats.bulk_requests,
        es_stats.documents,
        es_plain_docs,
        es_stats.body_bytes as f64 / 1048576.0
    );
}

/// One agent's run over the whole file: CPU seconds, wall seconds, peak RSS (MiB).
struct Run {
    cpu: f64,
    wall: f64,
    rss: f64,
}

/// Runs the agent with `sinks` (the YAML of its clients or elasticsearch list) until `done` says
/// everything arrived; positions and buffers under `<dir>/<name>`.
fn run_agent(
    dir: &TestDir,
    name: &str,
    sinks: &str,
    logs: &Path,
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
          __path__: {logs}/*.log
"#,
            state = state.display(),
            logs = logs.display(),
        ),
    );
    let t0 = Instant::now();
    let agent = Agent::builder().config_file(&config).spawn();
    let pid = agent.pid();
    let finished = done();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = proc_cpu(pid);
    let rss = peak_rss_mib(pid);
    drop(agent);
    assert!(finished, "{name}: not everything arrived");
    Run { cpu, wall, rss }
}
