//! The agent's status endpoints beside `/metrics`: `/config` (the effective config with secrets
//! redacted) and `/targets` (what is read and how far behind).

mod common;

use std::time::Duration;

use common::{http, start_agent, LokiReceiver, TestDir};

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
