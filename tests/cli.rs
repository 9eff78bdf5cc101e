//! The command line and the operator-facing behaviour around it: the embedded default config, the
//! Promtail flags, an invalid positions file, a permanently rejected batch, Promtail's max_retries,
//! and the partial-line flush at shutdown.

mod common;

use std::time::Duration;

use common::fixtures::{start_agent, TestConfig};
use common::{append_lines, count_loss, lines_range, Agent, LokiReceiver, TestDir};

const T: Duration = Duration::from_secs(20);

#[test]
fn default_config_prints_entries_when_loki_url_is_unset() {
    let dir = TestDir::new();
    let log = dir.join("app.log");
    append_lines(&log, &["first", "second"]);
    let agent = Agent::builder()
        .env_remove("LOKI_URL")
        .env("LOG_PATH", dir.join("*.log"))
        .args([
            format!("-positions.file={}", dir.join("pos.yaml").display()),
            "-server.http-listen-port=0".to_string(),
        ])
        .spawn();
    assert!(agent.wait_for_log("no LOKI_URL set", T), "{}", agent.logs());
    assert!(
        agent.wait_for_log("\"line\":\"second\"", T),
        "{}",
        agent.logs()
    );
    let out = agent.stdout();
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["line"], "first");
    assert_eq!(first["labels"]["job"], "varlogs");
    assert_eq!(first["labels"]["filename"], log.display().to_string());
    assert_eq!(agent.log_count("no LOKI_URL set"), 1, "said once");
}

#[test]
fn default_config_ships_to_loki_url() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    append_lines(dir.join("app.log"), &lines_range("d", 0, 50));
    let _agent = Agent::builder()
        .env("LOKI_URL", receiver.url())
        .env("LOG_PATH", dir.join("*.log"))
        .args([
            format!("-positions.file={}", dir.join("pos.yaml").display()),
            "-server.http-listen-port=0".to_string(),
        ])
        .spawn();
    assert!(receiver.wait_for_lines(50, T));
    assert!(count_loss(&lines_range("d", 0, 50), &receiver.lines()).is_exact());
}

#[test]
fn help_lists_promtail_flags_and_subcommands() {
    let out = Agent::builder().arg("--help").run(T);
    assert!(out.status.success());
    for flag in [
        "--config.file",
        "--config.expand-env",
        "--dry-run",
        "--check-syntax",
        "--print-config-stderr",
        "--server.http-listen-port",
        "--log.level",
        "check-config",
        "dry-run",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help lacks {flag}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn print_config_stderr_shows_the_effective_config_without_secrets() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .client_yaml("    basic_auth:\n      username: u\n      password: hunter2\n")
        .write(&dir);
    let mut agent = Agent::builder()
        .config_file(&config)
        .args(["-print-config-stderr", "-log.level=debug"])
        .spawn();
    assert!(
        agent.wait_for_log("logferry started", T),
        "{}",
        agent.logs()
    );
    let err = agent.stderr();
    assert!(err.contains("batchwait: 100ms"), "{err}");
    assert!(err.contains("log_level: debug"), "flag applied: {err}");
    assert!(!err.contains("hunter2"), "secret printed: {err}");
    assert!(agent.terminate(T).unwrap().success());
}

#[test]
fn an_invalid_positions_file_is_moved_aside_and_reading_starts_over() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    append_lines(dir.join("logs/a.log"), &lines_range("p", 0, 20));
    dir.write_file("positions.yaml", "positions: [this is: not valid\n");
    let agent = start_agent(&config);
    assert!(receiver.wait_for_lines(20, T), "{}", agent.logs());
    assert!(
        agent.logs().contains("positions file invalid"),
        "{}",
        agent.logs()
    );
    assert!(dir.join("positions.yaml.invalid").exists());
    assert!(count_loss(&lines_range("p", 0, 20), &receiver.lines()).is_exact());
}

#[test]
fn a_rejected_batch_is_logged_with_lokis_message_counted_and_later_lines_flow() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    // Loki refuses each of the 10 entries every time it sees it: the push of 10, then its halves
    // down to single entries (2 * 10 - 1 requests), all answered 400.
    receiver.fail_next_with(
        19,
        400,
        "entry too far behind, oldest acceptable timestamp is: x",
    );
    append_lines(dir.join("logs/a.log"), &lines_range("bad", 0, 10));
    let agent = start_agent(&config);
    assert!(
        agent.wait_for_log("Loki rejected entries for good", T),
        "{}",
        agent.logs()
    );
    append_lines(dir.join("logs/a.log"), &lines_range("good", 0, 10));
    assert!(receiver.wait_for_lines(10, T));
    assert!(count_loss(&lines_range("good", 0, 10), &receiver.lines()).is_exact());
    let metrics = common::http::get(&format!("{}/metrics", agent.http_url()))
        .unwrap()
        .text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("promtail_dropped_entries_total{") && l.contains("ingester_error"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 10"), "{line}");
    // The rejected entries are in the dead-letter file beside the client's buffer, with the reason.
    let dead = dir.dead_letter_files();
    assert_eq!(dead.len(), 1, "one dead-letter file");
    let text = std::fs::read_to_string(&dead[0]).unwrap();
    let docs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<&str> = docs.iter().map(|d| d["line"].as_str().unwrap()).collect();
    assert_eq!(lines, lines_range("bad", 0, 10));
    let reason = docs[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("status 400: ") && reason.contains("entry too far behind"),
        "{reason}"
    );
    assert!(docs[0]["labels"].as_str().unwrap().contains("job=\"app\""));
    assert!(metrics.contains("logferry_dead_letter_entries_total{sink=\"loki-127.0.0.1_"));
}

#[test]
fn promtails_max_retries_gives_up_when_set() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "      max_period: 500ms\n",
        "      max_period: 500ms\n      max_retries: 3\n",
    );
    std::fs::write(&config, text).unwrap();
    receiver.set_status(Some(503));
    append_lines(dir.join("logs/a.log"), &["doomed"]);
    let agent = start_agent(&config);
    assert!(
        agent.wait_for_log("final error sending batch", T),
        "{}",
        agent.logs()
    );
    assert_eq!(receiver.requests().len(), 3, "3 attempts in all");
    receiver.set_status(None);
    append_lines(dir.join("logs/a.log"), &["after"]);
    assert!(receiver.wait_for_lines(1, T));
    assert_eq!(receiver.lines(), ["after"]);
}

#[test]
fn an_unfinished_last_line_is_sent_at_shutdown_only_when_configured() {
    for flush in [false, true] {
        let dir = TestDir::new();
        let receiver = LokiReceiver::start();
        let config = TestConfig::new(receiver.url()).write(&dir);
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = text.replace(
            "target_config:\n  sync_period: 1s\n",
            &format!(
                "target_config:\n  sync_period: 1s\n  flush_partial_lines_on_shutdown: {flush}\n"
            ),
        );
        std::fs::write(&config, text).unwrap();
        dir.write_file("logs/a.log", "complete\nunfinished");
        let mut agent = start_agent(&config);
        assert!(receiver.wait_for_lines(1, T));
        assert!(agent.terminate(T).unwrap().success());
        let expected: &[&str] = if flush {
            &["complete", "unfinished"]
        } else {
            &["complete"]
        };
        assert_eq!(receiver.lines(), expected, "flush={flush}");
    }
}

#[test]
fn a_stage_or_source_not_supported_yet_is_named_with_its_place_in_the_file() {
    let dir = TestDir::new();
    let cases = [
        (
            "scrape_configs:\n  - job_name: app\n    pipeline_stages:\n      - eventlogmessage:\n          source: message\n    static_configs:\n      - labels: {__path__: /x/*.log}\n",
            ":4:9: scrape_configs[0].pipeline_stages[0]: stage \"eventlogmessage\" is not supported yet",
        ),
        (
            "scrape_configs:\n  - job_name: s\n    kafka:\n      brokers: [127.0.0.1:9092]\n",
            ":4:7: scrape_configs[0].kafka: the kafka source is not supported yet",
        ),
        (
            "limits_config:\n  readline_rate_enabled: true\n",
            ":2:26: limits_config.readline_rate_enabled: the global readline rate limit is not supported yet",
        ),
        (
            "scrape_configs:\n  - job_name: app\n    encoding: iso-8859-1\n    static_configs:\n      - labels: {__path__: /x/*.log}\n",
            ":3:15: scrape_configs[0].encoding: a file encoding other than UTF-8 is not supported yet",
        ),
    ];
    for (yaml, expected) in cases {
        let config = dir.write_config(yaml);
        let out = Agent::builder().arg("check-config").arg(&config).run(T);
        assert_eq!(out.status.code(), Some(1));
        let wanted = format!("{}{expected}", config.display());
        assert!(
            out.stderr.contains(&wanted),
            "want {wanted}\ngot {}",
            out.stderr
        );
    }
}

#[test]
fn dry_run_with_stdin_shows_what_a_config_does_to_sample_lines() {
    let dir = TestDir::new();
    let config = dir.write_config(
        "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\n\
         scrape_configs:\n  - job_name: try\n    static_configs:\n      - labels:\n          job: tryout\n          __path__: /nowhere/*.log\n",
    );
    let run = |format: &[&str]| {
        let mut agent = Agent::builder()
            .config_file(&config)
            .args(["dry-run", "-stdin"])
            .args(format)
            .env("TZ", "UTC")
            .stdin_piped()
            .spawn();
        agent.write_stdin(b"sample one\nsample two\n");
        agent.close_stdin();
        let status = agent.wait(T).expect("exits at the end of its input");
        assert!(status.success(), "{}", agent.logs());
        agent.stdout()
    };
    // Promtail's columns by default: timestamp (Go's layout), labels, line, tab-separated.
    let out = run(&[]);
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0][1..], [r#"{job="tryout"}"#, "sample one"]);
    assert_eq!(lines[1][2], "sample two");
    let ts = lines[0][0];
    assert!(
        ts.starts_with("20") && ts.ends_with("+0000") && ts.contains('T'),
        "{ts}"
    );
    // JSON objects with -dry-run.format=json.
    let out = run(&["-dry-run.format=json"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], "sample one");
    assert_eq!(lines[1]["line"], "sample two");
    assert_eq!(lines[0]["labels"], serde_json::json!({"job": "tryout"}));
}

/// A dry run with a client lists it (as YAML, secrets redacted) before the entries, as Promtail does.
#[test]
fn a_dry_run_lists_the_clients_it_would_have_used() {
    let dir = TestDir::new();
    let config = dir.write_config(
        "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\n\
         clients:\n  - url: http://loki:3100/loki/api/v1/push\n    basic_auth: {username: u, password: hunter2}\n\
         scrape_configs:\n  - job_name: try\n    static_configs:\n      - labels:\n          job: tryout\n          __path__: /nowhere/*.log\n",
    );
    let mut agent = Agent::builder()
        .config_file(&config)
        .args(["-dry-run", "-stdin"])
        .stdin_piped()
        .spawn();
    agent.write_stdin(b"one line\n");
    agent.close_stdin();
    assert!(agent.wait(T).expect("exits").success(), "{}", agent.logs());
    let out = agent.stdout();
    assert!(
        out.starts_with("Clients configured:\n----------------------\n"),
        "{out}"
    );
    assert!(
        out.contains("url: http://loki:3100/loki/api/v1/push"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.trim_end().ends_with("{job=\"tryout\"}\tone line"),
        "{out}"
    );
}

/// `-inspect` with `-dry-run`: each stage Promtail's wrapper inspects reports its changes on stderr
/// in Promtail's format (`none` when it changed nothing); `json` reports nothing, as in Promtail.
#[test]
fn inspect_prints_what_each_stage_changed_in_promtails_format() {
    let dir = TestDir::new();
    let config = dir.write_config(
        "server:\n  http_listen_port: 0\n  http_listen_address: 127.0.0.1\n\
         scrape_configs:\n  - job_name: try\n    static_configs:\n      - labels:\n          job: tryout\n          __path__: /nowhere/*.log\n\
         \x20   pipeline_stages:\n      - json: {expressions: {msg: message}}\n\
         \x20     - regex: {source: msg, expression: 'level=(?P<level>\\w+)'}\n\
         \x20     - labels: {level: }\n      - output: {source: msg}\n",
    );
    let mut agent = Agent::builder()
        .config_file(&config)
        .args(["-dry-run", "-inspect", "-stdin"])
        .stdin_piped()
        .spawn();
    agent.write_stdin(b"{\"message\":\"level=warn disk full\"}\n{\"message\":\"no level\"}\n");
    agent.close_stdin();
    let status = agent.wait(T).expect("exits at the end of its input");
    assert!(status.success(), "{}", agent.logs());
    // The agent's own log lines (logfmt, `level=...`) may come between two stages' reports.
    let stderr: String = agent
        .stderr()
        .lines()
        .filter(|l| !l.starts_with("level="))
        .map(|l| format!("{l}\n"))
        .collect();
    let first = "[inspect: regex stage]: \n\
        {stages.Entry}.Extracted[\"level\"]:\n\t+: warn\n\
        [inspect: labels stage]: \n\
        {stages.Entry}.Entry.Labels:\n\t-: {job=\"tryout\"}\n\t+: {job=\"tryout\", level=\"warn\"}\n\
        [inspect: output stage]: \n\
        {stages.Entry}.Entry.Entry.Line:\n\t-: {\"message\":\"level=warn disk full\"}\n\t+: level=warn disk full\n";
    assert!(stderr.contains(first), "{stderr}");
    let second =
        "[inspect: regex stage]: none\n[inspect: labels stage]: none\n[inspect: output stage]: \n";
    assert!(stderr.contains(second), "{stderr}");
    assert!(!stderr.contains("json stage"), "{stderr}");
    assert_eq!(agent.stdout().lines().count(), 2, "{}", agent.stdout());
}

#[test]
fn a_pipeline_parses_json_into_labels_timestamp_and_line_end_to_end() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .scrape_yaml(
            "    pipeline_stages:\n      - json:\n          expressions: {level: level, ts: time, msg: message}\n\
             \x20     - labels: {level: }\n      - timestamp: {source: ts, format: RFC3339Nano}\n\
             \x20     - output: {source: msg}\n      - match:\n          selector: '{level=\"debug\"}'\n\
             \x20         action: drop\n",
        )
        .write(&dir);
    append_lines(
        dir.join("logs/app.log"),
        &[
            r#"{"time":"2026-02-02T13:00:00.123456789Z","level":"info","message":"started"}"#,
            r#"{"time":"2026-02-02T13:00:01Z","level":"debug","message":"noise"}"#,
            r#"{"time":"2026-02-02T13:00:02Z","level":"error","message":"failed"}"#,
        ],
    );
    let agent = start_agent(&config);
    assert!(receiver.wait_for_lines(2, T), "{}", agent.logs());
    let entries = receiver.entries();
    assert_eq!(entries.len(), 2, "the debug line is dropped");
    assert_eq!(entries[0].line, "started");
    assert_eq!(entries[0].timestamp_ns, 1_770_037_200_123_456_789);
    assert!(
        entries[0].labels.contains("level=\"info\""),
        "{}",
        entries[0].labels
    );
    assert_eq!(entries[1].line, "failed");
    assert!(entries[1].labels.contains("level=\"error\""));
}

#[test]
fn the_shipped_example_configs_pass_check_config() {
    for file in [
        "configs/logferry.yaml",
        "configs/redaction.yaml",
        "configs/journal.yaml",
        "configs/buffer.yaml",
        "configs/docker.yaml",
        "configs/elasticsearch.yaml",
        "configs/syslog.yaml",
        "configs/gelf.yaml",
        "configs/loki_push.yaml",
        "configs/otlp.yaml",
        "examples/relay/agent.yaml",
        "examples/relay/relay.yaml",
        "examples/sidecar-docker.yaml",
        "examples/bare-metal.yaml",
        "examples/elasticsearch-json.yaml",
        "examples/promtail-migration.yaml",
        "examples/container/config.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let out = Agent::builder()
            .env("LOKI_URL", "http://127.0.0.1:3100/loki/api/v1/push")
            .env("ES_URL", "http://127.0.0.1:9200")
            .env("RELAY_URL", "http://127.0.0.1:3500/loki/api/v1/push")
            .env("HOSTNAME", "web-01")
            .arg("check-config")
            .arg(&path)
            .arg("-config.expand-env=true")
            .run(T);
        assert!(out.status.success(), "{file}: {}", out.stderr);
        assert!(out.stdout.contains("Valid config file!"), "{file}");
    }
}

/// The Promtail Helm chart's config shape: a `client:` block of settings without a URL, the URL given
/// by `-client.url`. check-config takes it, and a run ships to that URL with the block's labels.
#[test]
fn the_helm_charts_client_block_takes_its_url_from_client_url() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let root = dir.path().display();
    let config = dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         client:\n  backoff_config: {{max_period: 5m, max_retries: 20, min_period: 500ms}}\n  \
         batchsize: 1048576\n  batchwait: 100ms\n  external_labels: {{cluster: helm}}\n  timeout: 10s\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      \
         - labels: {{job: app, __path__: {root}/logs/*.log}}\n"
    ));
    let checked = Agent::builder()
        .arg("check-config")
        .arg(&config)
        .arg(format!("-client.url={}", receiver.url()))
        .run(T);
    assert!(checked.status.success(), "{}", checked.stderr);
    let _agent = Agent::builder()
        .config_file(&config)
        .arg(format!("-client.url={}", receiver.url()))
        .spawn();
    let lines = lines_range("helm", 0, 3);
    dir.append_lines("logs/a.log", &lines);
    assert!(receiver.wait_for_all_lines(&lines, T));
    let entries = receiver.entries();
    assert!(
        entries[0].labels.contains("cluster=\"helm\""),
        "{}",
        entries[0].labels
    );
}

/// check-config prints what a run only warns about (exit 0), and an error caused by `${VAR}` without
/// -config.expand-env says which flag is missing.
#[test]
fn check_config_warns_of_unknown_stage_keys_and_hints_at_expand_env() {
    let dir = TestDir::new();
    let config = dir.write_config(
        "clients:\n  - url: http://127.0.0.1:3100/loki/api/v1/push\nscrape_configs:\n  - job_name: a\n    \
         static_configs: [{labels: {__path__: /tmp/x.log, host: \"${HOSTNAME}\"}}]\n    \
         pipeline_stages:\n      - json: {expressions: {a: b}, unknownkey: 1}\n",
    );
    let out = Agent::builder().arg("check-config").arg(&config).run(T);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("Valid config file!"));
    assert!(
        out.stderr.contains("unknown key in stage config ignored"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unknownkey"), "{}", out.stderr);
    assert!(
        out.stderr.contains("-config.expand-env=true"),
        "{}",
        out.stderr
    );

    let config = dir.write_config("clients:\n  - url: ${LOKI_URL}\n");
    let out = Agent::builder().arg("check-config").arg(&config).run(T);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("clients[0].url") && out.stderr.contains("add -config.expand-env=true"),
        "{}",
        out.stderr
    );
}

/// As Promtail: a config file without any client is refused, naming the file. (The embedded default
/// without LOKI_URL, a dry run and stdin still print entries: the tests above.)
#[test]
fn a_config_file_without_a_client_is_refused() {
    let dir = TestDir::new();
    let config = dir.write_config(&format!(
        "server: {{http_listen_address: 127.0.0.1, http_listen_port: 0}}\npositions: {{filename: {}/p.yaml}}\nscrape_configs: []\n",
        dir.path().display()
    ));
    let out = Agent::builder().config_file(&config).run(T);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("at least one client config must be provided")
            && out.stderr.contains(&config.display().to_string()),
        "{}",
        out.stderr
    );
}
