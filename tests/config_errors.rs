//! `check-config` / `-check-syntax` on good and bad Promtail configs: exit codes, and errors that
//! name the file, the line and the key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Agent, Finished, TestDir};

const WAIT: Duration = Duration::from_secs(20);

/// A valid config; `client`, `top` and `scrape` are extra YAML spliced into `clients[0]`, the top
/// level and `scrape_configs[0]`, and `more_scrape` appends scrape configs.
fn config_text(dir: &TestDir, client: &str, top: &str, scrape: &str, more_scrape: &str) -> String {
    let root = dir.path().display();
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n{top}\
         clients:\n  - url: http://127.0.0.1:3100/loki/api/v1/push\n    batchwait: 100ms\n{client}\
         scrape_configs:\n  - job_name: app\n{scrape}    static_configs:\n      - targets: [localhost]\n        \
         labels:\n          job: app\n          __path__: {root}/logs/*.log\n{more_scrape}"
    )
}

/// `check-config FILE`.
fn check_config(path: &Path) -> Finished {
    Agent::builder().arg("check-config").arg(path).run(WAIT)
}

/// Promtail's `-check-syntax -config.file=FILE`.
fn check_syntax(path: &Path) -> Finished {
    Agent::builder()
        .arg("-check-syntax")
        .config_file(path)
        .run(WAIT)
}

/// 1-based number of the line holding the `nth` (1-based) occurrence of `marker`.
fn line_of(text: &str, marker: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .nth(nth - 1)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{marker:?} #{nth} not in\n{text}"))
}

#[test]
fn a_valid_config_passes_both_checks() {
    let dir = TestDir::new();
    let path = dir.write_config(&config_text(&dir, "", "", "", ""));
    for (how, finished) in [
        ("check-config", check_config(&path)),
        ("-check-syntax", check_syntax(&path)),
    ] {
        assert_eq!(finished.status.code(), Some(0), "{how}: {finished:?}");
        assert!(
            finished
                .stdout
                .contains("Valid config file! No syntax issues found"),
            "{how}: {finished:?}"
        );
    }
}

struct Case {
    name: &'static str,
    text: String,
    /// The error's line: the line holding occurrence `.1` of `.0`.
    at: (&'static str, usize),
    /// Text the message must contain besides file and line: the key (path) at fault.
    names: &'static [&'static str],
}

fn bad_configs(dir: &TestDir) -> Vec<Case> {
    let duplicate_job = "  - job_name: app\n    static_configs:\n      - targets: [localhost]\n";
    vec![
        Case {
            name: "unknown top-level key",
            text: config_text(dir, "", "bogus_block:\n  a: 1\n", "", ""),
            at: ("bogus_block", 1),
            names: &["bogus_block"],
        },
        Case {
            name: "unknown key in clients[0]",
            text: config_text(dir, "    batch_wait: 1s\n", "", "", ""),
            at: ("batch_wait", 1),
            names: &["batch_wait", "clients"],
        },
        Case {
            name: "bad duration",
            text: config_text(dir, "", "", "", "").replace("batchwait: 100ms", "batchwait: 5x"),
            at: ("batchwait: 5x", 1),
            names: &["batchwait", "5x"],
        },
        Case {
            name: "missing url",
            text: config_text(dir, "", "", "", "")
                .replace("  - url: http://127.0.0.1:3100/loki/api/v1/push\n    batchwait", "  - batchwait"),
            at: ("- batchwait: 100ms", 1),
            names: &["url", "clients"],
        },
        Case {
            name: "duplicate job_name",
            text: config_text(dir, "", "", "", duplicate_job),
            at: ("job_name: app", 2),
            names: &["job_name", "app"],
        },
        Case {
            name: "unknown stage",
            text: config_text(
                dir,
                "",
                "",
                "    pipeline_stages:\n      - bogus_stage:\n          source: x\n",
                "",
            ),
            at: ("bogus_stage", 1),
            names: &["bogus_stage"],
        },
        Case {
            name: "unknown relabel action",
            text: config_text(
                dir,
                "",
                "",
                "    relabel_configs:\n      - action: frobnicate\n        source_labels: [__path__]\n        \
                 target_label: x\n",
                "",
            ),
            at: ("action: frobnicate", 1),
            names: &["action", "frobnicate"],
        },
    ]
}

#[test]
fn bad_configs_are_rejected_naming_file_line_and_key() {
    let dir = TestDir::new();
    let mut failures = Vec::new();
    for (i, case) in bad_configs(&dir).into_iter().enumerate() {
        let path = dir.write_file(format!("bad-{i}.yaml"), &case.text);
        let line = line_of(&case.text, case.at.0, case.at.1);
        let location = format!("{}:{line}:", path.display());
        for (how, finished) in [
            ("check-config", check_config(&path)),
            ("-check-syntax", check_syntax(&path)),
        ] {
            let output = format!("{}{}", finished.stdout, finished.stderr);
            let mut wrong = Vec::new();
            if finished.status.code() != Some(1) {
                wrong.push(format!("exit status {}", finished.status));
            }
            if !finished.stderr.contains("Unable to parse config: ") {
                wrong.push("no `Unable to parse config: `".to_owned());
            }
            if !output.contains(&location) {
                wrong.push(format!("no `{location}`"));
            }
            for name in case.names {
                if !output.contains(name) {
                    wrong.push(format!("does not name `{name}`"));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} ({how}): {}\n    output: {}",
                    case.name,
                    wrong.join("; "),
                    output.trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_agent_refuses_to_start_with_a_bad_config() {
    let dir = TestDir::new();
    for (i, case) in bad_configs(&dir).into_iter().enumerate() {
        let path = dir.write_file(format!("bad-{i}.yaml"), &case.text);
        let finished = Agent::builder().config_file(&path).run(WAIT);
        assert_eq!(
            finished.status.code(),
            Some(1),
            "{}: the agent ran with a bad config: {finished:?}",
            case.name
        );
        assert!(
            finished.stderr.contains(&*path.to_string_lossy()),
            "{}: the error does not name the file: {}",
            case.name,
            finished.stderr
        );
    }
}
