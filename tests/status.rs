//! The agent's status endpoints beside `/metrics`: `/config` (the effective config with secrets
//! redacted) and `/targets` (what is read and how far behind).

mod common;

use std::time::Duration;

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

#[test]
fn targets_lists_each_file_with_labels_bytes_read_and_lag() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let config = TestConfig::new(loki.url()).write(&dir);
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

    // A file that is gone from the glob is no longer listed once it was read to its end.
    std::fs::remove_file(&log).unwrap();
    assert!(poll(|| targets(&agent).is_empty()), "{:?}", targets(&agent));
    assert!(agent.terminate(WAIT).unwrap().success());
}
