//! The Docker source's throughput against the real engine: running containers that already wrote their
//! log (numbered lines, then they sleep) are read by the agent into a Loki receiver that only counts,
//! beside `docker logs --timestamps` reading the same containers (one after the other) as the baseline.
//!
//! Two scenarios: one chatty container, and a hundred containers. For each: lines/s (wall), the CPU
//! seconds of the reader (the agent, or the `docker logs` processes) and of dockerd, which does the
//! decoding of its json-file logs in both cases. dockerd serves other users of this machine too, so its
//! figure is indicative.
//!
//! `cargo bench --bench docker` (release build): 1,000,000 lines in one container, 100 containers of
//! 10,000 lines. Sizes: `LOGFERRY_BENCH_LINES`, `LOGFERRY_BENCH_CONTAINERS`, `LOGFERRY_BENCH_PER`.
//! Under `cargo test --all-targets` it is a smoke test: 20,000 lines, 10 containers of 500 lines.
//! Without a Docker engine and `tests/setup.sh`'s image it says so and does nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::docker::{self, awk_numbered, Containers, DockerConfig};
use common::process;
use common::{Agent, LokiReceiver, TestDir};

fn dockerd_pid() -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "dockerd").then_some(pid)
    })
}

struct Run {
    wall: f64,
    reader_cpu: f64,
    dockerd_cpu: f64,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Running containers that wrote `per` lines each before anything reads them; their IDs.
fn prepare(containers: &Containers, count: usize, per: usize) -> Vec<String> {
    let mut made: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    (0..count)
                        .filter(|c| c % 8 == t)
                        .map(|c| {
                            let script = format!(
                                "{}; exec sleep 3600",
                                awk_numbered(&format!("c{c:03}"), 0, per)
                            );
                            // The daemon's default log rotation (here 3 x 10 MB) would drop lines.
                            let opts = ["--network", "none", "--log-opt", "max-size=2g"];
                            (c, containers.create(&format!("c{c:03}"), &opts, &script))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    made.sort();
    let ids: Vec<String> = made.into_iter().map(|(_, id)| id).collect();
    for chunk in ids.chunks(10) {
        let mut args = vec!["start"];
        args.extend(chunk.iter().map(String::as_str));
        docker::docker(&args);
    }
    // The log is complete once the daemon stored the last line (it lags behind the container's writes).
    for (c, id) in ids.iter().enumerate() {
        let path = docker::docker(&["inspect", "-f", "{{.LogPath}}", id]);
        let last = format!("c{c:03}-{:06} ", per - 1);
        let deadline = Instant::now() + Duration::from_secs(600);
        while !tail(&path).contains(&last) {
            assert!(
                Instant::now() < deadline,
                "container {id} never finished writing"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ids
}

/// The last few KiB of a file (empty if it cannot be read).
fn tail(path: &str) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn baseline(ids: &[String], total: usize, dockerd: Option<u32>) -> Run {
    let (c0, d0) = (
        process::children_cpu_seconds(),
        dockerd.map_or(0.0, process::cpu_seconds),
    );
    let t0 = Instant::now();
    let mut lines = 0;
    for id in ids {
        let out = Command::new("docker")
            .args(["logs", "--timestamps", id])
            .stderr(Stdio::null())
            .output()
            .expect("docker logs");
        lines += memchr::memchr_iter(b'\n', &out.stdout).count();
    }
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(lines, total, "docker logs read every line");
    Run {
        wall,
        reader_cpu: process::children_cpu_seconds() - c0,
        dockerd_cpu: dockerd.map_or(0.0, process::cpu_seconds) - d0,
    }
}

fn agent(containers: &Containers, total: usize, dockerd: Option<u32>, limit: Duration) -> Run {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start_count_only();
    let mut cfg = DockerConfig::new(&containers.run);
    cfg.refresh = "60s".into();
    let config = cfg.write(&dir, &receiver.url());
    let d0 = dockerd.map_or(0.0, process::cpu_seconds);
    let t0 = Instant::now();
    let agent = Agent::builder().config_file(&config).spawn();
    let done = receiver.wait_for_lines(total, limit);
    let wall = t0.elapsed().as_secs_f64();
    let run = Run {
        wall,
        reader_cpu: process::cpu_seconds(agent.pid()),
        dockerd_cpu: dockerd.map_or(0.0, process::cpu_seconds) - d0,
    };
    assert!(
        done,
        "receiver got {} of {total} lines:\n{}",
        receiver.stats().entries,
        agent.logs()
    );
    run
}

fn row(what: &str, total: usize, r: &Run) {
    println!(
        "| {what:<38} | {:>12.0} | {:>8.2} | {:>12.2} | {:>13.2} |",
        total as f64 / r.wall,
        r.wall,
        r.reader_cpu,
        r.dockerd_cpu
    );
}

fn scenario(title: &str, count: usize, per: usize, dockerd: Option<u32>, limit: Duration) {
    let containers = Containers::new();
    let total = count * per;
    let ids = prepare(&containers, count, per);
    println!("\n{title}: {count} container(s) x {per} lines = {total} lines\n");
    println!("| reader                                 |      lines/s |   wall s | reader CPU s | dockerd CPU s |");
    println!("|----------------------------------------|--------------|----------|--------------|---------------|");
    let b = baseline(&ids, total, dockerd);
    row("docker logs --timestamps (baseline)", total, &b);
    let a = agent(&containers, total, dockerd, limit);
    row("logferry docker_sd_configs -> Loki", total, &a);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !docker::available() {
        println!("docker bench: no Docker engine or test image; nothing measured");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let chatty = env_or(
        "LOGFERRY_BENCH_LINES",
        if full { 1_000_000 } else { 20_000 },
    );
    let count = env_or("LOGFERRY_BENCH_CONTAINERS", if full { 100 } else { 10 });
    let per = env_or("LOGFERRY_BENCH_PER", if full { 10_000 } else { 500 });
    let dockerd = dockerd_pid();
    let limit = Duration::from_secs(if full { 1800 } else { 120 });
    scenario("one chatty container", 1, chatty, dockerd, limit);
    scenario("many containers", count, per, dockerd, limit);
}
