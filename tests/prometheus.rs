//! `/metrics` as Prometheus sees it: a real Prometheus server (Debian's `prometheus`, installed by
//! `tests/setup.sh`) scrapes the agent, and `promtool check metrics` lints what the agent serves.
//!
//! Each test starts its own `prometheus` on 127.0.0.1 with a temp config and storage dir, and kills
//! and reaps it when it ends, pass or fail.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{http, lines_range, start_agent, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// Promtail's metric names that break a Prometheus naming rule, kept as Promtail spells them so that
/// dashboards and alerts written for Promtail keep working. `promtool check metrics` flags them, and
/// nothing else.
const PROMTAIL_NAMES_LINTED: [&str; 4] = [
    // Gauges named `_total` in Promtail.
    "promtail_read_bytes_total",
    "promtail_file_bytes_total",
    "promtail_files_active_total",
    "promtail_targets_active_total",
];

/// A `prometheus` server of the test's own, killed and reaped on drop.
struct Prometheus {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second, as job `logferry`.
    fn start(dir: &TestDir, target: &str) -> Prometheus {
        let config = dir.write_file(
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: logferry\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        );
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus (tests/setup.sh installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The result vector of an instant query, as (labels, value) pairs; empty while Prometheus is not
    /// up yet.
    fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let url = format!("{}/api/v1/query?query={}", self.url, url_encode(promql));
        let Ok(page) = http::get(&url) else {
            return Vec::new();
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&page.body) else {
            return Vec::new();
        };
        json["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect()
    }

    /// Waits until `promql` returns a sample for which `check` holds.
    fn wait_for(&self, promql: &str, check: impl Fn(f64) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.query(promql).iter().any(|(_, v)| check(*v)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- prometheus log -----\n{log}----- end -----");
        }
    }
}

/// A port the OS has just handed out and that nothing listens on (Prometheus binds it by itself).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_agent() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let config = TestConfig::new(loki.url()).write(&dir);
    let lines = lines_range("p", 0, 50);
    dir.append_lines("logs/a.log", &lines);
    let mut agent = start_agent(&config);
    assert!(loki.wait_for_lines(lines.len(), WAIT));

    let prometheus = Prometheus::start(&dir, &agent.http_addr().to_string());
    assert!(
        prometheus.wait_for("up{job=\"logferry\"}", |v| v == 1.0),
        "the target never came up: {:?}",
        prometheus.query("up")
    );
    assert!(
        prometheus.wait_for("sum(promtail_sent_entries_total)", |v| v
            == lines.len() as f64),
        "{:?}",
        prometheus.query("promtail_sent_entries_total")
    );
    // A histogram and a buffer gauge are read too.
    assert!(prometheus.wait_for("sum(promtail_request_duration_seconds_count)", |v| v >= 1.0));
    assert!(prometheus.wait_for("count(logferry_buffer_bytes)", |v| v >= 1.0));
    drop(prometheus);
    assert!(agent.terminate(WAIT).unwrap().success());
}

/// `promtool check metrics` on what the agent serves: its exit status and the problems it lists.
fn promtool_check(metrics: &[u8]) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (tests/setup.sh installs prometheus)");
    child.stdin.take().unwrap().write_all(metrics).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Lines of every kind that makes a metric family get series: plain lines, one with invalid UTF-8,
/// one over the line size limit (cut), and one a `drop` stage drops; a `metrics` stage counts them
/// all. Returns how many reach Loki.
fn traffic(dir: &TestDir) -> usize {
    let mut lines = lines_range("t", 0, 20);
    lines.push("drop me".into());
    lines.push(format!("long {}", "x".repeat(3000)));
    dir.append_lines("logs/a.log", &lines);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("logs/a.log"))
        .unwrap();
    f.write_all(b"invalid \xff utf-8\n").unwrap();
    // All but the dropped one, and the line with invalid UTF-8 besides.
    lines.len()
}

#[test]
fn promtool_accepts_the_metrics_but_for_promtails_own_names() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let config = TestConfig::new(loki.url())
        .top_yaml("limits_config:\n  max_line_size: 1000\n  max_line_size_truncate: true\n")
        .scrape_yaml(
            "    pipeline_stages:\n      - drop:\n          expression: 'drop me'\n      \
             - metrics:\n          lines:\n            type: Counter\n            \
             description: lines seen\n            config:\n              match_all: true\n              \
             action: inc\n",
        )
        .write(&dir);
    let arriving = traffic(&dir);
    let mut agent = start_agent(&config);
    assert!(loki.wait_for_lines(arriving, WAIT), "{:?}", loki.lines());
    // Promtail's client metrics count a batch after its answer: wait for it, so the request
    // histogram has series too.
    assert!(http::wait_for_metric(
        &agent.http_url(),
        "promtail_sent_entries_total",
        WAIT,
        |n| n >= arriving as f64
    ));
    let page = http::get(&format!("{}/metrics", agent.http_url())).unwrap();
    assert_eq!(
        page.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "curl and promtool get the classic text format"
    );
    let text = page.text();
    for family in [
        "promtail_read_lines_total",
        "promtail_sent_entries_total",
        "promtail_request_duration_seconds_bucket",
        "logferry_buffer_bytes",
        "logferry_buffer_full",
        "logferry_buffer_io_errors_total",
        "logferry_dead_letter_entries_total",
        "logferry_lines_invalid_utf8_total",
        "logferry_lines_oversized_total",
        "logentry_dropped_lines_total",
        "promtail_custom_lines_total",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "no series of {family}:\n{text}"
        );
    }

    let (ok, report) = promtool_check(&page.body);
    let flagged: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    for problem in &flagged {
        assert!(
            PROMTAIL_NAMES_LINTED
                .iter()
                .any(|name| problem.starts_with(&format!("{name} "))),
            "promtool flags more than Promtail's own names: {problem}\n{report}"
        );
    }
    // The four are flagged (when they are not any more, this list and the README are out of date).
    assert_eq!(flagged.len(), PROMTAIL_NAMES_LINTED.len(), "{report}");
    assert!(!ok, "promtool exits non-zero on lint problems");
    assert!(agent.terminate(WAIT).unwrap().success());
}
