//! End to end, files to Loki: what arrives, with which labels, headers and line contents, for one
//! running agent and healthy receivers (faults and restarts are in `restart_and_faults.rs`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{count_loss, lines_range, start_agent, Counts, LokiReceiver, TestConfig, TestDir};
use common::{http, process};

const WAIT: Duration = Duration::from_secs(30);

/// The stream label string of a file tailed by the test config's `app` job.
fn stream_of(path: &Path) -> String {
    format!(r#"{{filename="{}", job="app"}}"#, path.display())
}

/// Waits until `lines` all arrived at least once (order and extra lines ignored).
fn wait_for_all(receiver: &LokiReceiver, lines: &[String]) -> bool {
    receiver.wait_for_all_lines(lines, WAIT)
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

/// Sum of the samples of `name` whose label set contains `label` (`""` for any), from a Prometheus or
/// OpenMetrics text page. `None` if no sample matched.
fn metric(page: &str, name: &str, label: &str) -> Option<f64> {
    let mut sum = None;
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        if &line[..end] != name || !line[end..].contains(label) {
            continue;
        }
        let value: f64 = line
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable sample {line:?}"));
        *sum.get_or_insert(0.0) += value;
    }
    sum
}

/// Re-evaluates `check` until it returns true or `timeout` passes.
fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn existing_and_appended_lines_arrive_once_in_order_with_file_labels() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("a", 0, 500));
    let started_ns = now_ns();
    let agent = start_agent(&config);
    assert!(
        receiver.wait_for_lines(500, WAIT),
        "existing lines: {} of 500 arrived",
        receiver.lines().len()
    );
    assert!(
        agent.wait_for_log("tailing file", WAIT) && agent.logs().contains("offset=0"),
        "a file with no saved position is read from offset 0"
    );
    for chunk in 0..5 {
        let start = 500 + chunk * 100;
        dir.append_lines(&log, &lines_range("a", start, start + 100));
    }
    let expected = lines_range("a", 0, 1000);
    assert!(
        receiver.wait_for_lines(1000, WAIT),
        "{} of 1000",
        receiver.lines().len()
    );

    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    assert_eq!(receiver.lines(), expected, "one file arrives in file order");
    let entries = receiver.entries();
    let want = stream_of(&log);
    if let Some(bad) = entries.iter().find(|e| e.labels != want) {
        panic!("stream {:?}, want {want:?}", bad.labels);
    }
    for pair in entries.windows(2) {
        assert!(
            pair[0].timestamp_ns < pair[1].timestamp_ns,
            "timestamps not strictly increasing: {} then {}",
            pair[0].timestamp_ns,
            pair[1].timestamp_ns
        );
    }
    let (first, last) = (entries[0].timestamp_ns, entries[999].timestamp_ns);
    assert!(
        first >= started_ns - 1_000_000_000 && last <= now_ns() + 1_000_000_000,
        "timestamps are read time: {first}..{last} outside the test's run"
    );
    for request in receiver.requests() {
        assert_eq!(request.status, 204, "{request:?}");
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf")
        );
        assert_eq!(request.header("content-encoding"), None);
    }
}

#[test]
fn files_created_later_are_found_and_each_gets_its_own_stream() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let agent = start_agent(&config);

    let a = dir.append_lines("logs/a.log", &lines_range("a", 0, 200));
    let b = dir.append_lines("logs/b.log", &lines_range("b", 0, 300));
    dir.append_lines("logs/ignored.txt", &lines_range("ignored", 0, 10));
    let expected = [lines_range("a", 0, 200), lines_range("b", 0, 300)].concat();
    assert!(
        receiver.wait_for_lines(500, WAIT),
        "{} of 500",
        receiver.lines().len()
    );
    assert!(
        !receiver.wait_for_lines(501, Duration::from_millis(1500)),
        "a file outside the glob was read"
    );
    assert_eq!(count_loss(&expected, &receiver.lines()), Counts::default());
    for entry in receiver.entries() {
        let want = if entry.line.starts_with("a-") {
            stream_of(&a)
        } else {
            stream_of(&b)
        };
        assert_eq!(entry.labels, want, "{}", entry.line);
    }
    for path in [&a, &b] {
        assert!(
            agent
                .logs()
                .lines()
                .any(|l| l.contains("tailing file") && l.contains(&*path.to_string_lossy())),
            "no `tailing file` for {}",
            path.display()
        );
    }
}

#[test]
fn carriage_return_is_kept_and_a_partial_last_line_waits_for_its_newline() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let log = dir.write_file("logs/a.log", "first\r\nsecond\npart");
    let _agent = start_agent(&config);
    assert!(receiver.wait_for_lines(2, WAIT), "{:?}", receiver.lines());
    assert!(
        !receiver.wait_for_lines(3, Duration::from_millis(1500)),
        "an unfinished line was sent: {:?}",
        receiver.lines()
    );
    common::append_lines(&log, &["ial", "third"]);
    assert!(receiver.wait_for_lines(4, WAIT), "{:?}", receiver.lines());
    assert_eq!(receiver.lines(), ["first\r", "second", "partial", "third"]);
}

#[test]
fn lines_over_max_line_size_are_truncated_when_configured() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .top_yaml("limits_config:\n  max_line_size: 1000\n  max_line_size_truncate: true\n")
        .write(&dir);
    let long = format!("long-{}", "x".repeat(4995));
    let exact = format!("exact-{}", "y".repeat(994));
    dir.append_lines("logs/a.log", &["before", &long, &exact, "after"]);
    let _agent = start_agent(&config);
    assert!(receiver.wait_for_lines(4, WAIT), "{:?}", receiver.lines());
    assert_eq!(receiver.lines(), ["before", &long[..1000], &exact, "after"]);
}

#[test]
fn lines_over_max_line_size_are_dropped_without_truncation() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .top_yaml("limits_config:\n  max_line_size: 1000\n  max_line_size_truncate: false\n")
        .write(&dir);
    let long = format!("long-{}", "x".repeat(4995));
    let just_over = format!("over-{}", "z".repeat(996));
    let exact = format!("exact-{}", "y".repeat(994));
    let log = dir.append_lines(
        "logs/a.log",
        &["before", &long, "after", &just_over, &exact],
    );
    let _agent = start_agent(&config);
    common::append_lines(&log, &["end"]);
    assert!(
        wait_for_all(&receiver, &["end".to_owned()]),
        "lines after an oversized one never arrived: {:?}",
        receiver.lines()
    );
    assert_eq!(receiver.lines(), ["before", "after", &exact, "end"]);
}

#[test]
fn invalid_utf8_arrives_as_replacement_characters() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let raw: [&[u8]; 4] = [
        b"ok-before",
        b"bad-\xff\xfe-end",
        b"mixed-\xc3\xa9-\xe2\x82",
        b"ok-after",
    ];
    let mut content = raw.join(&b'\n');
    content.push(b'\n');
    dir.write_file("logs/a.log", content);
    let _agent = start_agent(&config);
    assert!(receiver.wait_for_lines(4, WAIT), "{:?}", receiver.lines());
    let expected: Vec<String> = raw
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(expected[1], "bad-\u{FFFD}\u{FFFD}-end");
    assert_eq!(receiver.lines(), expected);
}

#[test]
fn binary_garbage_does_not_stall_the_file() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);

    // xorshift64: 512 KiB of noise (NULs and stray newlines included), then a 2 MiB run without a
    // newline, each ended by a newline so the first normal line stays whole.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let mut garbage = noise(512 * 1024);
    garbage.push(b'\n');
    let run: Vec<u8> = noise(2 * 1024 * 1024)
        .into_iter()
        .map(|b| if b == b'\n' { b'x' } else { b })
        .collect();
    garbage.extend_from_slice(&run);
    garbage.push(b'\n');
    let log = dir.write_file("logs/a.log", &garbage);
    dir.append_lines(&log, &lines_range("normal", 0, 200));

    let _agent = start_agent(&config);
    let first = lines_range("normal", 0, 200);
    assert!(
        wait_for_all(&receiver, &first),
        "normal lines after binary garbage never arrived ({} entries)",
        receiver.lines().len()
    );
    dir.append_lines(&log, &lines_range("normal", 200, 300));
    let expected = lines_range("normal", 0, 300);
    assert!(wait_for_all(&receiver, &expected), "lines appended later");
    let normal: Vec<String> = receiver
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("normal-"))
        .collect();
    assert_eq!(count_loss(&expected, &normal), Counts::default());
}

#[test]
fn a_ten_megabyte_line_arrives_whole_in_a_request_of_its_own() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let size = 10 * 1024 * 1024;
    let mut big = String::with_capacity(size);
    big.push_str("big-");
    let mut n = 0u64;
    while big.len() < size {
        big.push_str(&format!("{n:016x}"));
        n += 1;
    }
    big.truncate(size);
    dir.append_lines("logs/a.log", &["small-before", &big, "small-after"]);
    let _agent = start_agent(&config);
    assert!(
        wait_for_all(&receiver, &["small-after".to_owned()]),
        "{} entries",
        receiver.lines().len()
    );
    let lines = receiver.lines();
    assert_eq!(
        lines.len(),
        3,
        "line lengths {:?}",
        lines.iter().map(String::len).collect::<Vec<_>>()
    );
    assert_eq!(lines[0], "small-before");
    assert_eq!(lines[1].len(), size);
    assert!(lines[1] == big, "the big line arrived altered");
    assert_eq!(lines[2], "small-after");
    let biggest = receiver
        .requests()
        .into_iter()
        .max_by_key(|r| r.body_bytes)
        .expect("requests");
    assert_eq!(
        biggest.entries, 1,
        "a line over batchsize (1 MiB) goes in a batch of its own"
    );
}

#[test]
fn ready_and_metrics_endpoints() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let agent = start_agent(&config);
    let base = agent.http_url();

    let not_ready = http::get(&format!("{base}/ready")).expect("GET /ready");
    assert_eq!(
        not_ready.status,
        500,
        "no file open yet: {}",
        not_ready.text()
    );

    dir.append_lines("logs/a.log", &lines_range("m", 0, 300));
    assert!(receiver.wait_for_lines(300, WAIT));
    let ready = http::get(&format!("{base}/ready")).expect("GET /ready");
    assert_eq!((ready.status, ready.text().trim()), (200, "Ready"));

    let host = format!("host=\"127.0.0.1:{}\"", receiver.port());
    let mut page = String::new();
    let sent_all = poll(Duration::from_secs(10), || {
        page = http::get(&format!("{base}/metrics"))
            .expect("GET /metrics")
            .text();
        metric(&page, "promtail_sent_entries_total", &host) == Some(300.0)
    });
    assert!(
        sent_all,
        "promtail_sent_entries_total{{{host}}} is not 300:\n{page}"
    );
    assert_eq!(
        metric(&page, "promtail_read_lines_total", ""),
        Some(300.0),
        "{page}"
    );
    assert_eq!(
        metric(&page, "promtail_files_active_total", ""),
        Some(1.0),
        "{page}"
    );
}

#[test]
fn every_client_gets_every_entry() {
    let dir = TestDir::new();
    let first = LokiReceiver::start();
    let second = LokiReceiver::start();
    let config = TestConfig::new(first.url())
        .client(second.url())
        .write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("c", 0, 500));
    let _agent = start_agent(&config);
    assert!(
        first.wait_for_lines(500, WAIT),
        "first: {}",
        first.lines().len()
    );
    assert!(
        second.wait_for_lines(500, WAIT),
        "second: {}",
        second.lines().len()
    );

    // A hiccup at one receiver changes nothing for either.
    second.fail_next(3, 503);
    dir.append_lines(&log, &lines_range("c", 500, 800));
    let expected = lines_range("c", 0, 800);
    for (name, receiver) in [("first", &first), ("second", &second)] {
        assert!(
            receiver.wait_for_lines(800, WAIT),
            "{name}: {} of 800",
            receiver.lines().len()
        );
        assert_eq!(
            count_loss(&expected, &receiver.lines()),
            Counts::default(),
            "{name}"
        );
        assert!(receiver
            .entries()
            .iter()
            .all(|e| e.labels == stream_of(&log)));
    }
}

#[test]
fn tenant_external_labels_and_basic_auth() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let password = dir.write_file("password.txt", "s3cret\n");
    let config = TestConfig::new(receiver.url())
        .client_yaml(&format!(
            "    tenant_id: t1\n    external_labels:\n      cluster: c1\n      job: from-client\n    \
             basic_auth:\n      username: u\n      password_file: {}\n",
            password.display()
        ))
        .write(&dir);
    let log = dir.append_lines("logs/a.log", &lines_range("t", 0, 100));
    let _agent = start_agent(&config);
    assert!(
        receiver.wait_for_lines(100, WAIT),
        "{}",
        receiver.lines().len()
    );
    assert_eq!(
        count_loss(&lines_range("t", 0, 100), &receiver.lines()),
        Counts::default()
    );

    // External labels are merged in; on a conflict the entry's own label wins (Promtail).
    let want = format!(
        r#"{{cluster="c1", filename="{}", job="app"}}"#,
        log.display()
    );
    for entry in receiver.entries() {
        assert_eq!(entry.labels, want);
        assert_eq!(entry.tenant.as_deref(), Some("t1"));
    }
    for request in receiver.requests() {
        assert_eq!(request.header("x-scope-orgid"), Some("t1"));
        // base64("u:s3cret"): the password file's trailing newline is not part of the password.
        assert_eq!(request.header("authorization"), Some("Basic dTpzM2NyZXQ="));
    }
}

/// Memory grown for huge lines is given back once they are sent: 24 lines of 8 MiB in new files
/// once left the agent at 250 MB for good (an idle agent holds about 20).
#[test]
fn memory_grown_for_huge_lines_is_given_back() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let agent = start_agent(&config);
    let mut expected = Vec::new();
    for f in 0..8 {
        let mut lines: Vec<String> = (0..3)
            .map(|i| format!("{f}-{i} {}", "y".repeat(8 << 20)))
            .collect();
        lines.extend((0..50).map(|i| format!("{f} small {i}")));
        dir.append_lines(format!("logs/f{f}.log"), &lines);
        expected.extend(lines);
    }
    assert!(
        wait_for_all(&receiver, &expected),
        "{} of {} lines arrived",
        receiver.lines().len(),
        expected.len()
    );
    let peak = process::peak_rss_mib(agent.pid());
    let deadline = Instant::now() + WAIT;
    let mut rss = process::rss_mib(agent.pid());
    while rss > 80.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        rss = process::rss_mib(agent.pid());
    }
    eprintln!("peak RSS {peak:.0} MiB, {rss:.0} MiB once the lines were sent");
    assert!(
        rss <= 80.0,
        "{rss:.0} MiB kept after the huge lines were sent"
    );
}

/// `batchwait` counts from a push's first entry: a line written after a quiet spell longer than
/// `batchwait` waits for it like any other, rather than going out at the next tick because the empty
/// push had been "waiting" since the previous one left.
#[test]
fn batchwait_counts_from_the_first_entry_of_a_push() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let yaml = TestConfig::new(receiver.url())
        .render(&dir)
        .replace("batchwait: 100ms", "batchwait: 2s");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let config = dir.write_config(&yaml);
    let log = dir.append_lines("logs/a.log", &["first"]);
    let _agent = start_agent(&config);
    assert!(receiver.wait_for_lines(1, WAIT));
    std::thread::sleep(Duration::from_secs(3));
    common::append_lines(&log, &["after a quiet spell"]);
    let written = Instant::now();
    assert!(receiver.wait_for_lines(2, WAIT));
    let waited = written.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "sent {waited:?} after it was written, before batchwait"
    );
}

/// `proxy_url` sends pushes through the proxy (as an absolute-form request naming the client's
/// URL, with `proxy_connect_header`s), and `HTTP_PROXY` in the environment is left alone unless
/// `proxy_from_environment` says so, as in Promtail. The test receiver plays the forward proxy: it
/// reads the request whatever host the URL names.
#[test]
fn pushes_go_through_proxy_url_and_not_through_the_environment_proxy() {
    let dir = TestDir::new();
    let proxy = LokiReceiver::start();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://127.0.0.1:{}/loki/api/v1/push",
        unused.local_addr().unwrap().port()
    );
    drop(unused);
    let config = TestConfig::new(dead.clone())
        .client_yaml(&format!(
            "    proxy_url: {}\n    proxy_connect_header:\n      X-Proxy-Token: [t0ken]\n",
            proxy.base_url()
        ))
        .write(&dir);
    let lines = lines_range("proxied", 0, 20);
    dir.append_lines("logs/a.log", &lines);
    let agent = start_agent(&config);
    assert!(wait_for_all(&proxy, &lines), "{}", agent.logs());
    let request = &proxy.requests()[0];
    assert_eq!(request.path, "/loki/api/v1/push");
    assert_eq!(request.header("x-proxy-token"), Some("t0ken"));
    let host = dead
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert_eq!(request.header("host"), Some(host));
    drop(agent);
    let through_proxy = proxy.requests().len();

    // No proxy configured: HTTP_PROXY is ignored, the push goes straight to the client's URL.
    let direct = LokiReceiver::start();
    let dir = TestDir::new();
    let config = TestConfig::new(direct.url()).write(&dir);
    dir.append_lines("logs/a.log", &lines);
    let agent = common::Agent::builder()
        .config_file(&config)
        .env("HTTP_PROXY", proxy.base_url())
        .env("http_proxy", proxy.base_url())
        .spawn();
    assert!(wait_for_all(&direct, &lines), "{}", agent.logs());
    assert_eq!(
        proxy.requests().len(),
        through_proxy,
        "nothing more went through the proxy"
    );
}
