//! The agent's own log: no credential from the config ever appears in it, in either format and at
//! any level, even when every push fails with an error that quotes the URL.

mod common;

use std::time::Duration;

use common::{lines_range, start_agent, TestDir};

const SECRETS: [&str; 5] = [
    "url-pa55word",
    "hunter2-password",
    "s3cr3t-bearer-token",
    "query-s3cr3t",
    "header-s3cr3t",
];

fn config(dir: &TestDir, format: &str, dead: u16) -> std::path::PathBuf {
    let root = dir.path().display();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n  log_level: debug\n  \
         log_format: {format}\n  graceful_shutdown_timeout: 1s\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n\
         \x20 - url: http://shipper:url-pa55word@127.0.0.1:{dead}/loki/api/v1/push?api_key=query-s3cr3t&org=acme\n\
         \x20   headers: {{X-Api-Key: header-s3cr3t}}\n\
         \x20   batchwait: 50ms\n    backoff_config:\n      min_period: 20ms\n      max_period: 50ms\n\
         \x20 - url: http://127.0.0.1:{dead}/loki/api/v1/push\n\
         \x20   tenant_id: two\n    basic_auth:\n      username: shipper\n      password: hunter2-password\n\
         \x20   backoff_config:\n      min_period: 20ms\n      max_period: 50ms\n\
         \x20 - url: http://127.0.0.1:{dead}/loki/api/v1/push\n\
         \x20   tenant_id: three\n    bearer_token: s3cr3t-bearer-token\n\
         \x20   backoff_config:\n      min_period: 20ms\n      max_period: 50ms\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        \
         labels:\n          job: app\n          __path__: {root}/logs/*.log\n"
    ))
}

/// A port nothing listens on: bound, then closed.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn no_credential_is_logged_in_either_format_even_when_every_push_fails() {
    for format in ["logfmt", "json"] {
        let dir = TestDir::new();
        let config = config(&dir, format, dead_port());
        dir.append_lines("logs/a.log", &lines_range("s", 0, 50));
        let mut agent = start_agent(&config);
        assert!(
            agent.wait_for_log("error sending batch", Duration::from_secs(20)),
            "{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
        agent.terminate(Duration::from_secs(20));
        let logs = agent.logs();
        for secret in SECRETS {
            assert!(!logs.contains(secret), "{format}: {secret} logged:\n{logs}");
        }
        // The failing URL is still named, without its password and secret query values.
        assert!(logs.contains("127.0.0.1"), "{logs}");
        assert!(
            logs.contains("api_key=<secret>&org=acme"),
            "{format}: {logs}"
        );
    }
}
