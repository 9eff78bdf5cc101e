//! The Docker source against the real Docker engine: containers that print known sequences, what
//! arrives at a Loki receiver, with which labels, across container restarts, an agent killed with
//! SIGKILL, a daemon that goes away, and a hundred containers at once. Also the file way: Docker's
//! json-file logs through the file source and the `docker` stage.
//!
//! Needs the engine and `tests/setup.sh`'s image; every test returns early, saying so, without them.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::docker::{self, awk_numbered, Containers, DockerConfig, SocketProxy, TcpProxy};
use common::{count_loss, lines_range, start_agent, Agent, Counts, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until every line of `lines` arrived at least once; then a moment longer for strays.
fn wait_for_all(receiver: &LokiReceiver, lines: &[String]) -> bool {
    let all = receiver.wait_for_all_lines(lines, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    all
}

fn exact(receiver: &LokiReceiver, expected: &[String]) -> Counts {
    let lines = receiver.lines();
    let counts = count_loss(expected, &lines);
    if !counts.is_exact() {
        eprintln!(
            "{} expected, {} received: {counts:?}",
            expected.len(),
            lines.len()
        );
        let short = |l: &String| {
            format!(
                "{:?} ({} bytes)",
                l.chars().take(60).collect::<String>(),
                l.len()
            )
        };
        let got: std::collections::HashSet<&String> = lines.iter().collect();
        let want: std::collections::HashSet<&String> = expected.iter().collect();
        for l in expected.iter().filter(|l| !got.contains(l)).take(5) {
            eprintln!("  lost: {}", short(l));
        }
        for l in lines.iter().filter(|l| !want.contains(l)).take(5) {
            eprintln!("  unexpected: {}", short(l));
        }
    }
    counts
}

/// `{container="…", stream="…"}` as the receiver shows it.
fn stream_of(container: &str, stream: &str) -> String {
    format!(r#"{{container="{container}", stream="{stream}"}}"#)
}

/// Each line's Docker timestamp (ns), from `docker logs --timestamps` (stdout and stderr).
fn docker_stamps(id: &str) -> HashMap<String, i128> {
    let out = std::process::Command::new("docker")
        .args(["logs", "--timestamps", id])
        .output()
        .unwrap();
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    all.lines()
        .filter_map(|l| {
            let (ts, line) = l.split_once(' ')?;
            Some((line.to_owned(), rfc3339_ns(ts)?))
        })
        .collect()
}

fn rfc3339_ns(ts: &str) -> Option<i128> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some(t.as_nanosecond())
}

fn positions(dir: &TestDir) -> String {
    std::fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default()
}

fn poll(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

#[test]
fn stdout_and_stderr_sequences_arrive_once_in_order_with_dockers_timestamps() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let script = format!(
        "{}; {} >&2",
        awk_numbered("out", 0, 500),
        awk_numbered("err", 0, 300)
    );
    let id = containers.run("seq", &[], &script);
    let (out, err) = (lines_range("out", 0, 500), lines_range("err", 0, 300));
    let expected = [out.clone(), err.clone()].concat();
    assert!(
        wait_for_all(&receiver, &expected),
        "{:?}",
        exact(&receiver, &expected)
    );
    assert_eq!(exact(&receiver, &expected), Counts::default());

    let name = containers.name("seq");
    let entries = receiver.entries();
    let of = |stream: &str| -> Vec<String> {
        let want = stream_of(&name, stream);
        entries
            .iter()
            .filter(|e| e.labels == want)
            .map(|e| e.line.clone())
            .collect()
    };
    assert_eq!(of("stdout"), out, "stdout in order, with its stream label");
    assert_eq!(of("stderr"), err, "stderr in order, with its stream label");
    let stamps = docker_stamps(&id);
    for e in &entries {
        assert_eq!(
            Some(&e.timestamp_ns),
            stamps.get(&e.line),
            "entry timestamp is Docker's for {:?}",
            e.line
        );
    }
}

#[test]
fn meta_labels_and_relabel_rules_work_as_in_promtail() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let mut cfg = DockerConfig::new(&containers.run);
    cfg.extra_relabel = "      - source_labels: [__meta_docker_container_label_skip]\n        \
        regex: 'yes'\n        action: drop\n      \
        - source_labels: [__meta_docker_container_label_com_example_app]\n        target_label: app\n      \
        - source_labels: [__meta_docker_container_id]\n        target_label: id\n      \
        - source_labels: [__meta_docker_container_network_mode]\n        target_label: mode\n      \
        - source_labels: [__meta_docker_port_private]\n        target_label: port\n      \
        - source_labels: [__meta_docker_container_log_stream]\n        regex: stderr\n        \
        target_label: level\n        replacement: error\n"
        .into();
    let config = cfg.write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let web = containers.run(
        "web",
        &["--label", "com.example.app=shop", "--expose", "8080"],
        "echo to-stdout; echo to-stderr >&2",
    );
    let quiet = containers.run(
        "quiet",
        &["--network", "none"],
        "echo from-a-container-without-network",
    );
    containers.run("skipped", &["--label", "skip=yes"], "echo must-not-arrive");
    let expected: Vec<String> = ["to-stdout", "to-stderr", "from-a-container-without-network"]
        .map(String::from)
        .into();
    assert!(wait_for_all(&receiver, &expected), "{:?}", receiver.lines());
    // The dropped container was listed with the others; give it the same time to show up.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(exact(&receiver, &expected), Counts::default());

    let labels: HashMap<String, String> = receiver
        .entries()
        .into_iter()
        .map(|e| (e.line, e.labels))
        .collect();
    let web_name = containers.name("web");
    assert_eq!(
        labels["to-stdout"],
        format!(
            r#"{{app="shop", container="{web_name}", id="{web}", mode="default", port="8080", stream="stdout"}}"#
        )
    );
    assert_eq!(
        labels["to-stderr"],
        format!(
            r#"{{app="shop", container="{web_name}", id="{web}", level="error", mode="default", port="8080", stream="stderr"}}"#
        )
    );
    assert_eq!(
        labels["from-a-container-without-network"],
        format!(
            r#"{{container="{}", id="{quiet}", mode="none", stream="stdout"}}"#,
            containers.name("quiet")
        )
    );
}

#[test]
fn a_tcp_host_works_and_a_renamed_container_keeps_its_position_under_its_new_name() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let proxy = TcpProxy::start();
    let mut cfg = DockerConfig::new(&containers.run);
    cfg.host = proxy.host();
    let config = cfg.write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let id = containers.idle("old", &[]);
    containers.emit(&id, "echo before-rename");
    assert!(wait_for_all(&receiver, &["before-rename".into()]));
    docker::docker(&["rename", &id, &containers.name("new")]);
    // The rename event re-lists; give it a moment before the next line.
    std::thread::sleep(Duration::from_millis(500));
    containers.emit(&id, "echo after-rename");
    let expected: Vec<String> = vec!["before-rename".into(), "after-rename".into()];
    assert!(wait_for_all(&receiver, &expected));
    assert_eq!(exact(&receiver, &expected), Counts::default());
    let labels: HashMap<String, String> = receiver
        .entries()
        .into_iter()
        .map(|e| (e.line, e.labels))
        .collect();
    assert_eq!(
        labels["before-rename"],
        stream_of(&containers.name("old"), "stdout")
    );
    assert_eq!(
        labels["after-rename"],
        stream_of(&containers.name("new"), "stdout")
    );
}

#[test]
fn lines_over_16_kib_are_rejoined_tty_included() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let long = |c: char, n: usize| -> String { std::iter::repeat(c).take(n).collect() };
    let gen = |c: char, n: usize| format!("{{ head -c {n} /dev/zero | tr '\\0' '{c}'; echo; }}");
    containers.run(
        "plain",
        &[],
        &format!(
            "echo before; {}; {} >&2; echo after; printf no-newline-at-exit",
            gen('x', 40_000),
            gen('e', 20_000)
        ),
    );
    containers.run(
        "tty",
        &["-t"],
        &format!("echo tty-before; {}; echo tty-after", gen('y', 20_000)),
    );
    let expected: Vec<String> = vec![
        "before".into(),
        long('x', 40_000),
        long('e', 20_000),
        "after".into(),
        "no-newline-at-exit".into(),
        "tty-before".into(),
        long('y', 20_000),
        "tty-after".into(),
    ];
    assert!(
        wait_for_all(&receiver, &expected),
        "{:?}",
        exact(&receiver, &expected)
    );
    assert_eq!(exact(&receiver, &expected), Counts::default());
    let tty: Vec<(String, usize)> = receiver
        .entries()
        .into_iter()
        .filter(|e| e.labels == stream_of(&containers.name("tty"), "stdout"))
        .map(|e| (e.line.chars().take(10).collect(), e.line.len()))
        .collect();
    assert_eq!(
        tty,
        [
            ("tty-before".into(), 10),
            ("yyyyyyyyyy".into(), 20_000),
            ("tty-after".into(), 9)
        ],
        "a TTY container's lines lose their \\r\\n and its long line is whole"
    );
}

#[test]
fn a_burst_arrives_whole_and_in_order() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let n = 30_000;
    containers.run("burst", &[], &awk_numbered("b", 0, n));
    let expected = lines_range("b", 0, n);
    assert_each_arrives_once(&receiver, &expected, &["b"]);
    assert_eq!(
        receiver.lines(),
        expected,
        "one container's stdout arrives in order"
    );
}

/// Every line of `expected` (numbered series `prefixes`) arrives, each once; a failure says where
/// each series stopped.
fn assert_each_arrives_once(receiver: &LokiReceiver, expected: &[String], prefixes: &[&str]) {
    assert!(
        wait_for_all(receiver, expected),
        "{:?}; {}",
        exact(receiver, expected),
        stopped_at(receiver, prefixes)
    );
    assert_eq!(exact(receiver, expected), Counts::default());
}

/// Where each series of numbered lines stopped at the receiver: how many arrived and the last one.
fn stopped_at(receiver: &LokiReceiver, prefixes: &[&str]) -> String {
    let lines = receiver.lines();
    let mut report = Vec::new();
    for p in prefixes {
        let series = format!("{p}-");
        let got: Vec<&String> = lines.iter().filter(|l| l.starts_with(&series)).collect();
        let last = got
            .last()
            .map_or("none", |l| l.split(' ').next().unwrap_or(""));
        report.push(format!("{p}: {} received, last {last}", got.len()));
    }
    report.join("; ")
}

/// Docker's `json-file` follow stream can end before the end of the log when the container exits while
/// it is being read (seen with `docker logs -f` too, on the daemon these tests run): a stopped
/// container's log is then read once more, without follow, from the cursor to its end. Several
/// containers that print a burst and exit together make that early end likely in every run.
#[test]
fn containers_that_exit_while_followed_are_read_to_the_end() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    let n = 15_000;
    let prefixes = ["c0", "c1", "c2", "c3"];
    for p in prefixes {
        containers.create(p, &[], &awk_numbered(p, 0, n));
    }
    let ids: Vec<String> = prefixes.iter().map(|p| containers.name(p)).collect();
    let mut args = vec!["start"];
    args.extend(ids.iter().map(String::as_str));
    docker::docker(&args);
    let expected: Vec<String> = prefixes.iter().flat_map(|p| lines_range(p, 0, n)).collect();
    assert_each_arrives_once(&receiver, &expected, &prefixes);
}

/// `limit` without `drop` paces a container's log as it paces a file: every line arrives, in order,
/// no faster than the rate allows, and meanwhile the agent reads no further than a batch or two past
/// what the stage let out (the rest waits in the daemon's log, not in the agent's memory), sleeping
/// rather than spinning.
#[test]
fn limit_without_drop_paces_container_logs() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let mut config = DockerConfig::new(&containers.run);
    config.extra_scrape = "    pipeline_stages:\n      - limit: {rate: 2500, burst: 100}\n".into();
    let agent = start_agent(&config.write(&dir, &receiver.url()));

    let n = 10_000;
    let started = Instant::now();
    containers.run("paced", &[], &awk_numbered("p", 0, n));
    let expected = lines_range("p", 0, n);
    let mut checked_midway = false;
    while receiver.lines().len() < n {
        assert!(
            started.elapsed() < WAIT,
            "stuck: {}",
            stopped_at(&receiver, &["p"])
        );
        let received = receiver.lines().len();
        if (300..2000).contains(&received) {
            // Lines taken from Docker's stream; a batch holds at most 2048 of them.
            let read =
                common::http::metric_sum(&agent.http_url(), "promtail_docker_target_entries_total");
            assert!(
                read < (received + 100 + 2 * 2048 + 500) as f64,
                "read {read} lines with {received} out of the stage"
            );
            checked_midway = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    assert!(checked_midway, "never looked midway");
    assert_eq!(exact(&receiver, &expected), Counts::default());
    assert_eq!(receiver.lines(), expected, "in order");
    // (10000 - 100) / 2500 = 3.96 s at the rate.
    assert!(took >= Duration::from_millis(3800), "not paced: {took:?}");
    let cpu = common::process::cpu_seconds(agent.pid());
    assert!(cpu < 3.0, "{cpu} CPU seconds while pacing for {took:?}");
}

#[test]
fn restarted_containers_resume_and_removed_ones_lose_their_position() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let _agent = start_agent(&config);

    // Each run prints its own numbered lines (run<n>-…); the second and later ones keep running.
    let script = "n=$(( $(cat /tmp/n 2>/dev/null || echo 0) + 1 )); echo $n > /tmp/n; \
        awk -v n=$n 'BEGIN{for(i=0;i<100;i++) printf \"run%d-%06d payload the quick brown fox jumps over the lazy dog\\n\", n, i}'; \
        [ $n -ge 2 ] && exec sleep 3600; true";
    let id = containers.run("restarts", &[], script);
    let run = |n: usize| lines_range(&format!("run{n}"), 0, 100);
    assert!(wait_for_all(&receiver, &run(1)), "{:?}", receiver.lines());
    // Stopped, then started again (same ID).
    assert!(poll(WAIT, || docker::docker(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        &id
    ]) == "false"));
    docker::docker(&["start", &id]);
    assert!(wait_for_all(&receiver, &run(2)), "{:?}", receiver.lines());
    // Restarted while running.
    docker::docker(&["restart", "-t", "0", &id]);
    assert!(wait_for_all(&receiver, &run(3)), "{:?}", receiver.lines());
    let expected = [run(1), run(2), run(3)].concat();
    assert_eq!(exact(&receiver, &expected), Counts::default());

    let key = format!("cursor-{id}");
    assert!(
        poll(WAIT, || positions(&dir).contains(&key)),
        "{}",
        positions(&dir)
    );
    docker::docker(&["rm", "-f", &id]);
    assert!(
        poll(WAIT, || !positions(&dir).contains(&key)),
        "a removed container's position is dropped: {}",
        positions(&dir)
    );
}

#[test]
fn sigkill_and_restart_ship_every_line_exactly_once() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let mut agent = start_agent(&config);

    let id = containers.idle("k", &[]);
    // Hundreds of lines a second: the saved position falls in the middle of a second.
    containers.emit(
        &id,
        &format!(
            "{}; {} >&2",
            awk_numbered("a", 0, 400),
            awk_numbered("ae", 0, 100)
        ),
    );
    let shipped = [lines_range("a", 0, 400), lines_range("ae", 0, 100)].concat();
    assert!(wait_for_all(&receiver, &shipped));
    let key = format!("cursor-{id}");
    assert!(poll(WAIT, || positions(&dir).contains(&key)));
    std::thread::sleep(Duration::from_millis(500));
    agent.kill();

    // Written while the agent is down, in the same second as the last shipped lines or the next.
    containers.emit(&id, &awk_numbered("b", 0, 300));
    let mut agent = start_agent(&config);
    containers.emit(&id, &awk_numbered("c", 0, 200));
    let expected = [shipped, lines_range("b", 0, 300), lines_range("c", 0, 200)].concat();
    assert!(
        wait_for_all(&receiver, &expected),
        "{:?}",
        exact(&receiver, &expected)
    );
    assert_eq!(
        exact(&receiver, &expected),
        Counts::default(),
        "no line lost, none repeated (Promtail repeats the last second)"
    );
    assert!(agent.terminate(WAIT).is_some());
}

#[test]
fn an_unreachable_daemon_is_retried_logged_once_and_resumed_without_gaps() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let mut proxy = SocketProxy::start(&dir.join("docker.sock"));
    let mut cfg = DockerConfig::new(&containers.run);
    cfg.host = proxy.host();
    let config = cfg.write(&dir, &receiver.url());
    let agent = start_agent(&config);

    let id = containers.idle("d", &[]);
    containers.emit(&id, &awk_numbered("up", 0, 200));
    assert!(wait_for_all(&receiver, &lines_range("up", 0, 200)));

    proxy.bring_down();
    containers.emit(&id, &awk_numbered("down", 0, 300));
    // Several attempts fail (backoff from 0.5 s) while the socket is missing.
    assert!(
        agent.wait_for_log("does not exist", WAIT),
        "{}",
        agent.logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    proxy.bring_up();
    assert!(
        agent.wait_for_log("reachable again", WAIT),
        "{}",
        agent.logs()
    );
    containers.emit(&id, &awk_numbered("again", 0, 200));

    let expected = [
        lines_range("up", 0, 200),
        lines_range("down", 0, 300),
        lines_range("again", 0, 200),
    ]
    .concat();
    assert!(
        wait_for_all(&receiver, &expected),
        "{:?}",
        exact(&receiver, &expected)
    );
    assert_eq!(exact(&receiver, &expected), Counts::default());
    let failures = agent.log_count("cannot use the Docker daemon");
    assert!(
        (1..=2).contains(&failures),
        "each kind of failure is logged once, not per retry ({failures}):\n{}",
        agent.logs()
    );
}

#[test]
fn permission_denied_names_the_docker_group() {
    docker::require();
    assert!(
        std::path::Path::new("/usr/bin/setpriv").exists(),
        "setpriv (util-linux, installed by tests/setup.sh) is needed to run the agent as nobody"
    );
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
    std::fs::set_permissions(dir.path(), perms).unwrap();

    // As `nobody`, who is not in the docker group of the socket (root:docker, 0660).
    let agent = Agent::builder()
        .program("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_logferry"))
        .config_file(&config)
        .spawn();
    assert!(
        agent.wait_for_log("docker group", WAIT),
        "the error names the docker group:\n{}",
        agent.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        agent.log_count("docker group"),
        1,
        "logged once:\n{}",
        agent.logs()
    );
}

#[test]
fn a_hundred_containers_logging_at_once_lose_nothing() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let containers = Containers::new();
    let config = DockerConfig::new(&containers.run).write(&dir, &receiver.url());
    let agent = start_agent(&config);

    // All wait for a file in a shared directory, then print at once.
    let gate = TestDir::new();
    let mount = format!("{}:/gate:ro", gate.path().display());
    let (n, per) = (100, 200);
    std::thread::scope(|s| {
        for t in 0..10 {
            let (containers, mount) = (&containers, &mount);
            s.spawn(move || {
                for c in (t * n / 10)..((t + 1) * n / 10) {
                    let script = format!(
                        "while [ ! -e /gate/go ]; do usleep 50000; done; {}",
                        awk_numbered(&format!("c{c:03}"), 0, per)
                    );
                    containers.run(
                        &format!("c{c:03}"),
                        &["--network", "none", "-v", mount],
                        &script,
                    );
                }
            });
        }
    });
    assert!(
        poll(WAIT, || agent.log_count("following container log") >= n),
        "{} of {n} containers followed",
        agent.log_count("following container log")
    );
    std::fs::write(gate.join("go"), "").unwrap();

    let expected: Vec<String> = (0..n)
        .flat_map(|c| lines_range(&format!("c{c:03}"), 0, per))
        .collect();
    assert!(
        wait_for_all(&receiver, &expected),
        "{:?}",
        exact(&receiver, &expected)
    );
    assert_eq!(exact(&receiver, &expected), Counts::default());
    let streams: std::collections::HashSet<String> =
        receiver.entries().into_iter().map(|e| e.labels).collect();
    assert_eq!(streams.len(), n, "one stream per container");
}

/// The alternative when the socket cannot be mounted: Docker's json-file logs read as files, with the
/// `docker` stage, as in Promtail (the stage keeps the line's trailing newline).
#[test]
fn json_file_logs_through_the_file_source_and_the_docker_stage() {
    docker::require();
    let containers = Containers::new();
    let id = containers.run("file", &[], "echo via-file; echo via-file-err >&2");
    let log = docker::docker(&["inspect", "-f", "{{.LogPath}}", &id]);
    assert!(
        std::fs::File::open(&log).is_ok(),
        "{log} is not readable: the tests run as root, like an agent reading Docker's log files"
    );
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = common::TestConfig::new(receiver.url())
        .glob("unused/*.log")
        .scrape_yaml(&format!(
            "    pipeline_stages:\n      - docker: {{}}\n  - job_name: containers\n    \
             static_configs:\n      - labels:\n          job: docker\n          __path__: {log}\n    \
             pipeline_stages:\n      - docker: {{}}\n"
        ))
        .write(&dir);
    let _agent = start_agent(&config);
    let expected: Vec<String> = vec!["via-file\n".into(), "via-file-err\n".into()];
    assert!(wait_for_all(&receiver, &expected), "{:?}", receiver.lines());
    let stamps = docker_stamps(&id);
    for e in receiver.entries() {
        let stream = if e.line.contains("err") {
            "stderr"
        } else {
            "stdout"
        };
        assert_eq!(
            e.labels,
            format!(r#"{{filename="{log}", job="docker", stream="{stream}"}}"#)
        );
        assert_eq!(Some(&e.timestamp_ns), stamps.get(e.line.trim_end()));
    }
}

/// Promtail's HTTP client settings for remote daemons are refused, with their place in the file.
#[test]
fn remote_daemon_http_settings_not_supported_yet_are_named_in_the_file() {
    let dir = TestDir::new();
    let cases = [
        (
            "scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - host: tcp://h:2376\n        tls_config:\n          insecure_skip_verify: true\n",
            ":6:11: scrape_configs[0].docker_sd_configs[0].tls_config: tls_config for docker_sd_configs is not supported yet",
        ),
        (
            "scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n      - host: https://h:2376\n",
            ":4:15: scrape_configs[0].docker_sd_configs[0].host: an https:// Docker host for docker_sd_configs is not supported yet",
        ),
    ];
    for (yaml, expected) in cases {
        let config = dir.write_config(yaml);
        let out = Agent::builder()
            .arg("check-config")
            .arg(&config)
            .run(Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        let wanted = format!("{}{expected}", config.display());
        assert!(
            out.stderr.contains(&wanted),
            "want {wanted:?} in:\n{}",
            out.stderr
        );
    }
}

/// A reload restarts the Docker job while its sends wait (the receiver is down and the client has no
/// disk buffer, so the router blocks): the old job drops the send it was making when it stops. Its
/// successor reads the container again from the committed cursor, everything arrives, and the
/// container's position goes on to its last line (the dropped batch held every later commit of the
/// container back until the agent restarted).
#[test]
fn a_reload_while_sends_wait_leaves_the_containers_position_moving() {
    docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let containers = Containers::new();
    let mut cfg = DockerConfig::new(&containers.run);
    cfg.top = "    buffer: {type: memory}\n".into();
    let config = cfg.write(&dir, &receiver.url());
    let agent = start_agent(&config);
    let n = 1500;
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do echo tick-$i; i=$((i+1)); sleep 0.01; done; exec sleep 3600"
    );
    let id = containers.run("held", &[], &script);
    assert!(agent.wait_for_log("will retry", WAIT), "{}", agent.logs());
    // Enough small batches for the router to wait on the sink.
    std::thread::sleep(Duration::from_secs(3));
    cfg.extra_relabel = "      - target_label: reloaded\n        replacement: 'yes'\n".into();
    cfg.write(&dir, &receiver.url());
    agent.reload();
    assert!(
        agent.wait_for_log("config reloaded", WAIT),
        "{}",
        agent.logs()
    );
    receiver.start_again();
    let expected: Vec<String> = (0..n).map(|i| format!("tick-{i}")).collect();
    assert!(
        receiver.wait_for_all_lines(&expected, Duration::from_secs(60)),
        "{}",
        agent.logs()
    );
    let last = docker_stamps(&id)[&format!("tick-{}", n - 1)];
    let key = format!("cursor-{id}: ");
    let committed = || -> Option<i128> {
        let text = positions(&dir);
        let value = text.lines().find_map(|l| l.trim().strip_prefix(&key))?;
        let stamp = value.trim_matches('\'').split(';').next()?;
        let (secs, nanos) = stamp.split_once('.')?;
        Some(secs.parse::<i128>().ok()? * 1_000_000_000 + nanos.parse::<i128>().ok()?)
    };
    assert!(
        poll(WAIT, || committed() == Some(last)),
        "the position stopped at {:?}, the last line is at {last}: {}",
        committed(),
        positions(&dir)
    );
}
