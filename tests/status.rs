//! The agent's status endpoints beside `/metrics`: `/config` (the effective config with secrets
//! redacted) and `/targets` (what is read and how far behind: files, the journal of a real journald,
//! containers of the real Docker engine; as JSON, and as HTML for browsers).

mod common;

use std::time::Duration;

use common::docker::{self, awk_numbered, Containers, DockerConfig};
use common::journald::Journald;
use common::{http, lines_range, start_agent, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn config_shows_the_effective_config_without_secrets() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let root = dir.path().display();
    let port = loki.port();
    let config = dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n\
         \x20 - url: http://127.0.0.1:{port}/loki/api/v1/push\n\
         \x20   basic_auth:\n      username: shipper\n      password: hunter2-password\n\
         \x20 - url: http://127.0.0.1:{port}/loki/api/v1/push\n\
         \x20   tenant_id: second\n\
         \x20   bearer_token: s3cr3t-bearer-token\n\
         \x20 - url: http://shipper:url-pa55word@127.0.0.1:{port}/loki/api/v1/push\n\
         \x20   tenant_id: third\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        \
         labels:\n          job: app\n          __path__: {root}/logs/*.log\n"
    ));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut agent = start_agent(&config);

    let page = http::get(&format!("{}/config", agent.http_url())).unwrap();
    assert_eq!(page.status, 200);
    let body = page.text();
    // The effective config: the file's values and the defaults filled in.
    assert!(body.contains("username: shipper"), "{body}");
    assert!(body.contains("tenant_id: second"), "{body}");
    assert!(body.contains("batchwait: 1s"), "defaults shown: {body}");
    assert!(!body.contains("hunter2-password"), "password shown: {body}");
    assert!(!body.contains("s3cr3t-bearer-token"), "token shown: {body}");
    assert!(
        !body.contains("url-pa55word"),
        "password in a URL shown: {body}"
    );
    assert!(agent.terminate(WAIT).unwrap().success());
}

/// Header values and URL query parameters that can carry credentials are `<secret>` on `/config` and
/// in the log ("sink started", retries); the others stay readable. Without `server.http_listen_address`
/// the server listens on every interface, as Promtail's does, and says so.
#[test]
fn header_and_query_secrets_are_hidden_on_config_and_in_the_log() {
    let dir = TestDir::new();
    let root = dir.path().display();
    // Nothing listens there: every push fails with a transport error that quotes the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = dir.write_config(&format!(
        "server:\n  http_listen_port: 0\n  graceful_shutdown_timeout: 1s\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n\
         \x20 - url: http://127.0.0.1:{port}/loki/api/v1/push?api_key=query-s3cret-1&org=acme&X-Amz-Signature=query-s3cret-2\n\
         \x20   backoff_config: {{min_period: 50ms, max_period: 200ms}}\n\
         \x20   headers:\n\
         \x20     Authorization: Bearer header-s3cret-1\n\
         \x20     X-Api-Key: header-s3cret-2\n\
         \x20     X-Source: promtail\n\
         \x20   http_headers:\n\
         \x20     X-Auth-Token: {{values: [header-s3cret-3]}}\n\
         \x20     X-Team: {{values: [ops]}}\n\
         elasticsearch:\n\
         \x20 - endpoints: [http://shipper:url-s3cret@127.0.0.1:{port}]\n\
         \x20   index: logs\n\
         \x20   backoff_config: {{min_period: 50ms, max_period: 200ms}}\n\
         \x20   headers: {{X-Session-Id: header-s3cret-4, X-Tag: visible}}\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        \
         labels:\n          job: app\n          __path__: {root}/logs/*.log\n"
    ));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs/app.log"), "one line\n").unwrap();
    let mut agent = start_agent(&config);

    let page = http::get(&format!("{}/config", agent.http_url())).unwrap();
    assert_eq!(page.status, 200);
    let body = page.text();
    assert!(!body.contains("s3cret"), "a secret shown: {body}");
    for shown in [
        "api_key=<secret>&org=acme&X-Amz-Signature=<secret>",
        "Authorization: <secret>",
        "X-Api-Key: <secret>",
        "X-Source: promtail",
        "X-Session-Id: <secret>",
        "X-Tag: visible",
        "- ops",
        "http://shipper:<secret>@127.0.0.1",
    ] {
        assert!(body.contains(shown), "{shown:?} not in {body}");
    }

    // Both sinks start, fail and retry; none of it puts a secret in the log.
    assert!(
        agent.wait_for_log("error sending batch, will retry", WAIT)
            && agent.wait_for_log("error sending to Elasticsearch, will retry", WAIT),
        "{}",
        agent.logs()
    );
    let logs = agent.logs();
    assert!(logs.contains("sink started"), "{logs}");
    assert!(
        logs.contains("api_key=<secret>&org=acme"),
        "the URL is still recognisable: {logs}"
    );
    assert!(!logs.contains("s3cret"), "a secret in the log: {logs}");
    assert!(
        logs.contains("/config and /reload are served on every interface"),
        "{logs}"
    );
    assert!(agent.terminate(WAIT).unwrap().success());
}

/// `/targets` as a browser asks for it.
fn targets_page(agent: &common::Agent, query: &str) -> http::HttpResponse {
    let url = format!("{}/targets{query}", agent.http_url());
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = http::request("GET", &url, &[("Accept", accept)], &[]).unwrap();
    assert_eq!(page.status, 200);
    page
}

/// The `targets` array of `/targets`.
fn targets(agent: &common::Agent) -> Vec<serde_json::Value> {
    let page = http::get(&format!("{}/targets", agent.http_url())).unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    json["targets"].as_array().expect("a targets array").clone()
}

fn poll(mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The listed targets of `kind`.
fn of_kind(agent: &common::Agent, kind: &str) -> Vec<serde_json::Value> {
    targets(agent)
        .into_iter()
        .filter(|t| t["kind"] == kind)
        .collect()
}

#[test]
fn targets_lists_each_file_with_labels_bytes_read_and_lag() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let config = TestConfig::new(loki.url())
        .scrape_yaml("    relabel_configs:\n      - target_label: team\n        replacement: '<ops & \"dev\">'\n")
        .write(&dir);
    let lines = lines_range("t", 0, 100);
    let log = dir.append_lines("logs/a.log", &lines);
    let size = std::fs::metadata(&log).unwrap().len();
    let mut agent = start_agent(&config);
    assert!(loki.wait_until(|r| r.entries.len() >= lines.len(), WAIT));

    let mut listed = Vec::new();
    assert!(
        poll(|| {
            listed = targets(&agent);
            listed.len() == 1 && listed[0]["read_bytes"] == size
        }),
        "{listed:?}"
    );
    let t = &listed[0];
    assert_eq!(t["kind"], "file");
    assert_eq!(t["job"], "app");
    assert_eq!(t["path"], log.display().to_string());
    assert_eq!(t["labels"]["job"], "app");
    assert_eq!(t["file_size"], size);
    assert_eq!(t["lag_bytes"], 0);
    assert_eq!(t["state"], "waiting", "read to its end");
    assert_eq!(t["position"], size.to_string());
    assert_eq!(t["labels"]["team"], "<ops & \"dev\">");

    // A browser gets a page, with what came from outside escaped; `?format=json` gets JSON.
    let page = targets_page(&agent, "");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains(&log.display().to_string()), "{html}");
    assert!(
        html.contains("team=&quot;&lt;ops &amp; &quot;dev&quot;&gt;&quot;"),
        "{html}"
    );
    assert!(!html.contains("<ops"), "{html}");
    assert!(html.contains(&format!("{size} bytes")), "{html}");
    let json = targets_page(&agent, "?format=json");
    assert_eq!(json.header("content-type"), Some("application/json"));

    // A file that is gone from the glob is no longer listed once it was read to its end.
    std::fs::remove_file(&log).unwrap();
    assert!(poll(|| targets(&agent).is_empty()), "{:?}", targets(&agent));
    assert!(agent.terminate(WAIT).unwrap().success());
}

#[test]
fn targets_lists_the_journal_with_its_cursor_and_whether_it_is_at_the_end() {
    let journald = Journald::start();
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let lines = lines_range("j", 0, 50);
    journald.send_lines("lfstatus", &lines, &[]);
    journald.sync();
    let root = dir.path().display();
    let config = dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n  - url: {url}\n    batchwait: 100ms\n\
         scrape_configs:\n  - job_name: journal\n    journal:\n      path: {path}\n      \
         max_age: 1h\n      labels:\n        job: systemd-journal\n    relabel_configs:\n      \
         - source_labels: [__journal_syslog_identifier]\n        target_label: ident\n",
        url = loki.url(),
        path = journald.journal_dir().display(),
    ));
    let mut agent = start_agent(&config);
    assert!(loki.wait_for_lines(lines.len(), WAIT));

    let cursor = journald
        .last_cursor(&["SYSLOG_IDENTIFIER=lfstatus"])
        .expect("a cursor");
    let mut listed = Vec::new();
    assert!(
        poll(|| {
            listed = of_kind(&agent, "journal");
            listed.len() == 1 && listed[0]["state"] == "waiting" && listed[0]["position"] == cursor
        }),
        "{listed:?} (last cursor {cursor})"
    );
    let j = &listed[0];
    assert_eq!(j["job"], "journal");
    assert_eq!(j["name"], journald.journal_dir().display().to_string());
    assert_eq!(j["labels"]["job"], "systemd-journal");
    assert!(
        j["read_entries"].as_u64().unwrap() >= lines.len() as u64,
        "{j}"
    );
    assert_eq!(j["lag_seconds"], 0.0, "at the journal's end");
    assert!(j.get("read_bytes").is_none(), "{j}");

    let html = targets_page(&agent, "").text();
    assert!(html.contains("<td>journal</td>"), "{html}");
    assert!(html.contains(&cursor), "{html}");
    assert!(agent.terminate(WAIT).unwrap().success());
}

#[test]
fn targets_lists_each_container_with_entries_read_position_and_state() {
    docker::require();
    let containers = Containers::new();
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let config = DockerConfig::new(&containers.run).write(&dir, &loki.url());
    let mut agent = start_agent(&config);
    // One that prints and stops, one that keeps running.
    let done = containers.run("done", &[], &awk_numbered("d", 0, 40));
    let idle = containers.idle("idle", &[]);
    containers.emit(&idle, &awk_numbered("i", 0, 10));
    assert!(loki.wait_for_lines(50, WAIT), "{:?}", loki.lines());

    let mut listed = Vec::new();
    let name = |t: &serde_json::Value| t["name"].as_str().unwrap_or("").to_owned();
    assert!(
        poll(|| {
            listed = of_kind(&agent, "container");
            listed.len() == 2
                && listed[0]["state"] == "stopped"
                && listed[0]["read_entries"] == 40
                && listed[1]["read_entries"] == 10
        }),
        "{listed:?}"
    );
    let (stopped, running) = (&listed[0], &listed[1]);
    assert_eq!(name(stopped), containers.name("done"));
    assert_eq!(stopped["container_id"], done);
    assert_eq!(stopped["job"], "docker");
    assert_eq!(stopped["labels"]["container"], containers.name("done"));
    assert_eq!(stopped["labels"]["stream"], "stdout");
    let line_bytes = common::numbered_line("d", 0).len() as u64;
    assert_eq!(stopped["read_bytes"], 40 * line_bytes);
    assert_eq!(name(running), containers.name("idle"));
    assert_eq!(running["state"], "reading", "its log stream is open");
    // The position is Docker's stamp of the last line read, which Loki got as its timestamp.
    let last = loki
        .entries()
        .into_iter()
        .filter(|e| e.line == common::numbered_line("d", 39))
        .map(|e| e.timestamp_ns)
        .next()
        .unwrap();
    let position = stopped["position"].as_str().unwrap();
    let stamp = jiff::Timestamp::from_nanosecond(last).unwrap().to_string();
    assert_eq!(position, stamp);
    let lag = stopped["lag_seconds"].as_f64().unwrap();
    assert!((0.0..WAIT.as_secs_f64()).contains(&lag), "{lag}");

    let html = targets_page(&agent, "").text();
    assert!(html.contains(&containers.name("idle")), "{html}");
    assert!(html.contains("40 entries"), "{html}");

    // A removed container leaves the list.
    docker::docker(&["rm", "-f", &done]);
    assert!(
        poll(|| of_kind(&agent, "container").len() == 1),
        "{:?}",
        of_kind(&agent, "container")
    );
    assert!(agent.terminate(WAIT).unwrap().success());
}
