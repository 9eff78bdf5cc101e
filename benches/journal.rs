//! Journal throughput of the real agent binary: a journal of generated entries shaped like a busy
//! host's (about 20 fields each: unit, PID, command line, cgroup, …) read from its start and shipped to
//! a Loki receiver that only counts, beside `journalctl -o export > /dev/null` on the same journal in
//! the same run (what journald's own tool needs to read and print every field of every entry).
//!
//! `cargo bench --bench journal` (release build). Size with `LOGFERRY_BENCH_ENTRIES` (default 1,000,000;
//! 20,000 when run as a smoke test by `cargo test --all-targets`). The journal is written by
//! `systemd-journal-remote` from export format (`tests/setup.sh` installs it).
//! Prints lines per CPU-second (the issue's target: ≥ 50k on one core, and at least journalctl's), CPU
//! seconds per million lines, wall lines/s and the agent's peak RSS.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::journald::JOURNAL_REMOTE;
use common::process;
use common::{Agent, LokiReceiver, TestDir};

const NGINX: &str = include_str!("data/nginx-access.log");

const UNITS: [&str; 8] = [
    "nginx.service",
    "sshd.service",
    "cron.service",
    "postgresql@15-main.service",
    "docker.service",
    "systemd-logind.service",
    "app-worker@1.service",
    "app-worker@2.service",
];

/// Export-format entries with the fields journald adds to a service's line.
fn write_journal(dir: &Path, entries: u64) {
    let templates: Vec<&str> = NGINX.lines().filter(|l| !l.is_empty()).collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let start = now - entries; // one entry per µs, ending now
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}/bench.journal", dir.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-journal-remote (run tests/setup.sh)");
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    for i in 0..entries {
        let unit = UNITS[(i % UNITS.len() as u64) as usize];
        let comm = unit.split(['.', '@']).next().unwrap();
        let pid = 1000 + i % 97;
        let t = templates[(i as usize) % templates.len()];
        write!(
            stdin,
            "__REALTIME_TIMESTAMP={ts}\n__MONOTONIC_TIMESTAMP={mono}\n\
             _BOOT_ID=4cb184da5ffd406bbe91314565e2d24f\n_MACHINE_ID=3d1219c7c4c5404aaa1f6d2a48adfda4\n\
             _HOSTNAME=bench-host\n_TRANSPORT=stdout\n_UID=33\n_GID=33\n_PID={pid}\n_COMM={comm}\n\
             _EXE=/usr/sbin/{comm}\n_CMDLINE=/usr/sbin/{comm} -g daemon off;\n\
             _CAP_EFFECTIVE=0\n_SYSTEMD_CGROUP=/system.slice/{unit}\n_SYSTEMD_UNIT={unit}\n\
             _SYSTEMD_SLICE=system.slice\n_SYSTEMD_INVOCATION_ID=8f1d2c3b4a5e6f708192a3b4c5d6e7f{d}\n\
             _STREAM_ID=a107bf8a30904a9595b47402b5dbd50{d}\nSYSLOG_IDENTIFIER={comm}\n\
             SYSLOG_FACILITY=3\nPRIORITY={prio}\nMESSAGE={t} rid={i}\n\n",
            ts = start + i,
            mono = 1_000_000 + i,
            d = i % 8,
            prio = 3 + i % 4,
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "journal-remote failed");
}

/// `journalctl --directory=<dir> -o export > /dev/null`: (CPU s, wall s).
fn journalctl_export(dir: &Path) -> (f64, f64) {
    let cpu0 = process::children_cpu_seconds();
    let t0 = Instant::now();
    let status = Command::new("journalctl")
        .arg(format!("--directory={}", dir.display()))
        .args(["-o", "export", "--no-pager"])
        .stdout(Stdio::null())
        .status()
        .expect("journalctl");
    assert!(status.success());
    (
        process::children_cpu_seconds() - cpu0,
        t0.elapsed().as_secs_f64(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let entries: u64 = std::env::var("LOGFERRY_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 20_000 });
    let dir = TestDir::new();
    let journal = dir.join("journal");
    fs::create_dir_all(&journal).unwrap();
    let t0 = Instant::now();
    write_journal(&journal, entries);
    let bytes: u64 = fs::read_dir(&journal)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "journal: {entries} entries of ~20 fields, {:.0} MiB of files, written in {:.1} s",
        bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );

    let (j_cpu, j_wall) = journalctl_export(&journal);

    let receiver = LokiReceiver::start_count_only();
    let config = dir.write_config(&format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {dir}/positions.yaml
clients:
  - url: {url}
scrape_configs:
  - job_name: bench
    journal:
      path: {journal}
      max_age: 24h
      labels:
        job: systemd-journal
    relabel_configs:
      - source_labels: [__journal__systemd_unit]
        target_label: unit
      - source_labels: [__journal_priority_keyword]
        target_label: level
      - source_labels: [__journal__hostname]
        target_label: host
"#,
        dir = dir.path().display(),
        url = receiver.url(),
        journal = journal.display(),
    ));
    let t0 = Instant::now();
    let agent = Agent::builder().config_file(&config).spawn();
    let pid = agent.pid();
    let done = receiver.wait_for_lines(entries as usize, Duration::from_secs(1800));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process::cpu_seconds(pid);
    let rss = process::peak_rss_mib(pid);
    drop(agent);
    assert!(
        done,
        "receiver got {} of {entries} lines",
        receiver.stats().entries
    );

    let n = entries as f64;
    println!();
    println!("| run                               | lines per CPU-s | CPU s per M lines | wall lines/s | peak RSS MiB |");
    println!("|-----------------------------------|-----------------|-------------------|--------------|--------------|");
    println!(
        "| journalctl -o export > /dev/null  | {:>15.0} | {:>17.2} | {:>12.0} | {:>12} |",
        n / j_cpu,
        j_cpu / n * 1e6,
        n / j_wall,
        "-"
    );
    println!(
        "| logferry journal -> Loki          | {:>15.0} | {:>17.2} | {:>12.0} | {:>12.1} |",
        n / cpu,
        cpu / n * 1e6,
        n / wall,
        rss
    );
    println!(
        "\nreceiver: {} requests, {} entries, {:.1} MiB of lines, {:.1} MiB on the wire",
        receiver.stats().requests,
        receiver.stats().entries,
        receiver.stats().line_bytes as f64 / 1048576.0,
        receiver.stats().body_bytes as f64 / 1048576.0
    );
}
