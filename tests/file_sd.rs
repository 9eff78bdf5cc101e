//! `file_sd_configs`: file targets listed in JSON and YAML files, found again when the files change
//! (inotify, with a refresh_interval far longer than the test), relabeled with `__meta_filepath`; a
//! broken file keeps its last good targets, a target's new labels reach the file already read, and a
//! removed file takes its targets with it.

mod common;

use std::time::Duration;

use common::{lines_range, start_agent, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn targets_come_and_go_with_their_files() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let root = dir.path().display();
    dir.write_file(
        "sd/app.yaml",
        format!("- targets: [localhost]\n  labels: {{job: sd-app, __path__: {root}/logs/a.log}}\n"),
    );
    let config = dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
         clients:\n  - url: {url}\n    batchwait: 100ms\n\
         target_config:\n  sync_period: 1s\n\
         scrape_configs:\n  - job_name: sd\n    file_sd_configs:\n      \
         - files: [{root}/sd/*.yaml, {root}/sd/*.json]\n        refresh_interval: 10m\n    \
         relabel_configs:\n      \
         - {{source_labels: [__meta_filepath], regex: '.*/sd/(.*)', target_label: sd_file}}\n",
        url = receiver.url(),
    ));
    let agent = start_agent(&config);
    let a = lines_range("a", 0, 20);
    dir.append_lines("logs/a.log", &a);
    assert!(receiver.wait_for_all_lines(&a, WAIT), "{}", agent.logs());
    let labels = |line: &str| {
        let entries = receiver.entries();
        entries
            .iter()
            .find(|e| e.line == line)
            .map(|e| e.labels.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        labels(&a[0]),
        format!(r#"{{filename="{root}/logs/a.log", job="sd-app", sd_file="app.yaml"}}"#)
    );

    // A second target file, in JSON, found through inotify (refresh_interval is 10 minutes).
    dir.append_lines("logs/b.log", &lines_range("b", 0, 5));
    dir.write_file(
        "sd/b.json",
        format!(r#"[{{"labels": {{"job": "sd-b", "__path__": "{root}/logs/b.log"}}}}]"#),
    );
    let b = lines_range("b", 0, 5);
    assert!(receiver.wait_for_all_lines(&b, WAIT), "{}", agent.logs());
    assert_eq!(
        labels(&b[0]),
        format!(r#"{{filename="{root}/logs/b.log", job="sd-b", sd_file="b.json"}}"#)
    );

    // New labels for the same target: a file already read carries them from its next line on.
    dir.write_file(
        "sd/app.yaml",
        format!(
            "- targets: [localhost]\n  labels: {{job: sd-app2, __path__: {root}/logs/a.log}}\n"
        ),
    );
    assert!(
        agent.wait_for_log("target labels changed", WAIT),
        "{}",
        agent.logs()
    );
    let relabeled = lines_range("r", 0, 1);
    dir.append_lines("logs/a.log", &relabeled);
    assert!(
        receiver.wait_for_all_lines(&relabeled, WAIT),
        "{}",
        agent.logs()
    );
    assert!(
        labels(&relabeled[0]).contains("job=\"sd-app2\""),
        "{}",
        labels(&relabeled[0])
    );

    // A broken file keeps its targets, and says why.
    dir.write_file("sd/app.yaml", "- [unclosed\n");
    assert!(
        agent.wait_for_log("cannot read target file", WAIT),
        "{}",
        agent.logs()
    );
    let more = lines_range("a", 20, 30);
    dir.append_lines("logs/a.log", &more);
    assert!(receiver.wait_for_all_lines(&more, WAIT), "{}", agent.logs());

    // A removed file takes its target: b.log is read to its end and let go.
    std::fs::remove_file(dir.join("sd/b.json")).unwrap();
    assert!(
        agent.wait_for_log("rotated away or deleted and read to its end; stopped", WAIT),
        "{}",
        agent.logs()
    );
    dir.append_lines("logs/b.log", &["after b left".to_string()]);
    let last = lines_range("a", 30, 31);
    dir.append_lines("logs/a.log", &last);
    assert!(receiver.wait_for_all_lines(&last, WAIT));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!receiver.lines().iter().any(|l| l == "after b left"));
    assert_eq!(
        receiver.lines().len(),
        20 + 5 + 1 + 10 + 1,
        "each line once"
    );
}
