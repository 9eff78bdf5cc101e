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

/// `line:col` (1-based) of `token` in the line holding the `nth` (1-based) occurrence of `marker`.
fn position(text: &str, (marker, nth, token): (&str, usize, &str)) -> String {
    let (index, line) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .nth(nth - 1)
        .unwrap_or_else(|| panic!("{marker:?} #{nth} not in\n{text}"));
    let column = line
        .find(token)
        .unwrap_or_else(|| panic!("{token:?} not in {line:?}"));
    format!("{}:{}", index + 1, column + 1)
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
    /// Where the error is: the line holding occurrence `.1` of `.0`, at the column where `.2`
    /// starts in that line.
    at: (&'static str, usize, &'static str),
    /// The key path printed after the location (`""` for a top-level key).
    key_path: &'static str,
    /// Text the rest of the message must contain: the key or value at fault.
    names: &'static [&'static str],
}

fn bad_configs(dir: &TestDir) -> Vec<Case> {
    let duplicate_job = "  - job_name: app\n    static_configs:\n      - targets: [localhost]\n";
    vec![
        Case {
            name: "unknown top-level key",
            text: config_text(dir, "", "bogus_block:\n  a: 1\n", "", ""),
            at: ("bogus_block", 1, "bogus_block"),
            key_path: "",
            names: &["\"bogus_block\""],
        },
        Case {
            name: "unknown key in clients[0]",
            text: config_text(dir, "    batch_wait: 1s\n", "", "", ""),
            at: ("batch_wait", 1, "batch_wait"),
            key_path: "clients[0]",
            names: &["\"batch_wait\""],
        },
        Case {
            name: "bad duration",
            text: config_text(dir, "", "", "", "").replace("batchwait: 100ms", "batchwait: 5x"),
            at: ("batchwait: 5x", 1, "5x"),
            key_path: "clients[0].batchwait",
            names: &["\"5x\""],
        },
        Case {
            name: "missing url",
            text: config_text(dir, "", "", "", "")
                .replace("  - url: http://127.0.0.1:3100/loki/api/v1/push\n    batchwait", "  - batchwait"),
            at: ("- batchwait: 100ms", 1, "batchwait"),
            key_path: "clients[0]",
            names: &["\"url\""],
        },
        Case {
            name: "url port out of range",
            text: config_text(dir, "", "", "", "").replace("127.0.0.1:3100", "127.0.0.1:99999"),
            at: ("- url:", 1, "http://"),
            key_path: "clients[0].url",
            names: &["99999", "port"],
        },
        // Headers the HTTP client would refuse at start: check-config builds the sinks too.
        Case {
            name: "header value with a control character",
            text: config_text(dir, "    headers:\n      X-Team: \"ops\\u0001\"\n", "", "", ""),
            at: ("X-Team", 1, "\"ops"),
            key_path: "clients[0].headers.X-Team",
            names: &["invalid header \"X-Team\"", "control character"],
        },
        Case {
            name: "header name with a space",
            text: config_text(dir, "    headers:\n      Bad Name: x\n", "", "", ""),
            at: ("Bad Name", 1, "x"),
            key_path: "clients[0].headers.Bad Name",
            names: &["invalid header \"Bad Name\"", "not a valid header name"],
        },
        Case {
            name: "duplicate job_name",
            text: config_text(dir, "", "", "", duplicate_job),
            at: ("job_name: app", 2, "app"),
            key_path: "scrape_configs[1].job_name",
            names: &["\"app\""],
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
            at: ("bogus_stage", 1, "bogus_stage"),
            key_path: "scrape_configs[0].pipeline_stages[0]",
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
            at: ("action: frobnicate", 1, "frobnicate"),
            key_path: "scrape_configs[0].relabel_configs[0].action",
            names: &["\"frobnicate\""],
        },
        // `__path__` of about 500 000 characters: the probe's case, which panicked compiling the glob
        // (exit 101), and one short enough to be compiled, too big for the matcher's size limit.
        Case {
            name: "huge __path__ glob",
            text: config_text(dir, "", "", "", "")
                .replace("/logs/*.log", &format!("/logs/{}.log", "a*".repeat(250_000))),
            at: ("__path__", 1, "/"),
            key_path: "scrape_configs[0].static_configs[0].labels.__path__",
            names: &["invalid glob", "at most 262144", "(job \"app\")"],
        },
        Case {
            name: "__path__ glob too big to match",
            text: config_text(dir, "", "", "", "")
                .replace("/logs/*.log", &format!("/logs/{}.log", "a*".repeat(100_000))),
            at: ("__path__", 1, "/"),
            key_path: "scrape_configs[0].static_configs[0].labels.__path__",
            names: &["invalid glob", "too long or complex"],
        },
        Case {
            name: "huge relabel regex",
            text: config_text(
                dir,
                "",
                "",
                &format!(
                    "    relabel_configs:\n      - source_labels: [job]\n        regex: '{}'\n        \
                     target_label: x\n",
                    "a*".repeat(250_000)
                ),
                "",
            ),
            at: ("regex:", 1, "'"),
            key_path: "scrape_configs[0].relabel_configs[0].regex",
            names: &["invalid 'regex'", "at most 262144"],
        },
    ]
}

#[test]
fn bad_configs_are_rejected_naming_file_line_and_key() {
    let dir = TestDir::new();
    let mut failures = Vec::new();
    for (i, case) in bad_configs(&dir).into_iter().enumerate() {
        let path = dir.write_file(format!("bad-{i}.yaml"), &case.text);
        // `Unable to parse config: <file>:<line>:<col>: <key path>: <message>`
        let mut location = format!(
            "Unable to parse config: {}:{}: ",
            path.display(),
            position(&case.text, case.at)
        );
        if !case.key_path.is_empty() {
            location.push_str(&format!("{}: ", case.key_path));
        }
        for (how, finished) in [
            ("check-config", check_config(&path)),
            ("-check-syntax", check_syntax(&path)),
        ] {
            let output = format!("{}{}", finished.stdout, finished.stderr);
            let mut wrong = Vec::new();
            if finished.status.code() != Some(1) {
                wrong.push(format!("exit status {}", finished.status));
            }
            let message = finished
                .stderr
                .lines()
                .find(|l| l.starts_with("Unable to parse config: "))
                .unwrap_or_default();
            match message.strip_prefix(&location) {
                None => wrong.push(format!("does not start with `{location}`")),
                Some(rest) if rest.trim().is_empty() => wrong.push("no message".to_owned()),
                Some(_) => {}
            }
            for name in case.names {
                if !message.contains(name) {
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

/// YAML nested 100 000 levels deep (200 KB) took the parsers close to a minute to reject; it is refused
/// at once, at the bracket or dash that passes the limit.
#[test]
fn deeply_nested_yaml_is_refused_at_once_naming_the_depth_limit() {
    let dir = TestDir::new();
    let levels = 100_000;
    let flow = format!(
        "{}deep: {}{}\n",
        config_text(&dir, "", "", "", ""),
        "[".repeat(levels),
        "]".repeat(levels)
    );
    let block = format!(
        "{}deep:\n{}x\n",
        config_text(&dir, "", "", "", ""),
        "- ".repeat(levels)
    );
    let line = flow.lines().count();
    // `deep:` is depth 1 (the top-level mapping), so the 128th bracket is the 129th level; in the
    // block case `deep:`'s list starts at column 1, its items nest one per `- `.
    let cases = [
        ("flow", flow, format!("{line}:{}", 7 + 127)),
        ("block", block, format!("{}:{}", line + 1, 2 * 127 + 1)),
    ];
    for (name, text, at) in cases {
        let path = dir.write_file(format!("deep-{name}.yaml"), &text);
        for how in ["check-config", "run"] {
            let start = std::time::Instant::now();
            let finished = if how == "run" {
                Agent::builder().config_file(&path).run(WAIT)
            } else {
                check_config(&path)
            };
            let took = start.elapsed();
            assert_eq!(
                finished.status.code(),
                Some(1),
                "{name} ({how}): {finished:?}"
            );
            let want = format!("{}:{at}: ", path.display());
            assert!(
                finished.stderr.contains(&want)
                    && finished.stderr.contains("nests deeper than 128 levels"),
                "{name} ({how}): wanted `{want}` and the limit in: {}",
                finished.stderr
            );
            assert!(
                took < Duration::from_secs(10),
                "{name} ({how}) took {took:?}"
            );
        }
    }
}
