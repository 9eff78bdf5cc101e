//! Config reload (SIGHUP, and `/reload` with `server.enable_runtime_reload`) while lines flow: changed
//! jobs and sinks restart, unchanged ones keep running, and no line is lost or sent twice; an invalid
//! config is refused with its errors and the running one goes on.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::{
    append_lines, count_loss, http, lines_range, start_agent, Counts, LokiReceiver, ReceivedEntry,
    TestDir,
};

const WAIT: Duration = Duration::from_secs(30);

/// One file job: `name` tails `<root>/logs/<name>.log` with the labels given (`job` is the name).
fn file_job(root: &Path, name: &str, labels: &str) -> String {
    format!(
        "  - job_name: {name}\n    static_configs:\n      - targets: [localhost]\n        labels:\n          \
         job: {name}\n          __path__: {root}/logs/{name}.log\n{labels}",
        root = root.display()
    )
}

/// A config with `clients` (YAML list items) and `jobs` (from [`file_job`]).
fn config(dir: &TestDir, server: &str, clients: &str, jobs: &[String]) -> String {
    let root = dir.path().display();
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n  \
         graceful_shutdown_timeout: 5s\n{server}\
         positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
         clients:\n{clients}\
         target_config:\n  sync_period: 500ms\n\
         scrape_configs:\n{jobs}",
        jobs = jobs.concat()
    )
}

fn client(name: &str, url: &str) -> String {
    format!(
        "  - name: {name}\n    url: {url}\n    batchwait: 100ms\n    backoff_config:\n      \
         min_period: 50ms\n      max_period: 500ms\n"
    )
}

/// Appends `lines` to `path` in small chunks over about `over`, as an application would.
fn write_slowly(path: PathBuf, lines: Vec<String>, over: Duration) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let chunks = 40;
        let per = lines.len().div_ceil(chunks);
        for chunk in lines.chunks(per) {
            append_lines(&path, chunk);
            thread::sleep(over / chunks as u32);
        }
    })
}

fn lines_of(entries: &[ReceivedEntry], prefix: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.line.starts_with(prefix))
        .map(|e| e.line.clone())
        .collect()
}

fn wait_for_all(receivers: &[&LokiReceiver], prefix: &str, n: usize) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        let got: usize = receivers
            .iter()
            .map(|r| lines_of(&r.entries(), prefix).len())
            .sum();
        if got >= n {
            // Anything sent twice would come in a moment: give it that moment.
            thread::sleep(Duration::from_millis(500));
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn metric(agent: &common::Agent, name: &str) -> f64 {
    http::metric_sum(&agent.http_url(), name)
}

#[test]
fn sighup_restarts_the_changed_job_starts_the_new_one_and_keeps_the_rest_running() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let root = dir.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let sink = client("main", &loki.url());
    let before = config(
        &dir,
        "",
        &sink,
        &[
            file_job(root, "a", "          version: one\n"),
            file_job(root, "b", ""),
        ],
    );
    let path = dir.write_config(&before);
    let mut agent = start_agent(&path);

    let n = 6000;
    let writers = [
        write_slowly(
            dir.join("logs/a.log"),
            lines_range("a", 0, n),
            Duration::from_secs(3),
        ),
        write_slowly(
            dir.join("logs/b.log"),
            lines_range("b", 0, n),
            Duration::from_secs(3),
        ),
    ];
    assert!(loki.wait_until(|r| r.entries.len() >= n / 4, WAIT));
    // Job a gets another label, job c is new, job b and the client are as they were.
    let after = config(
        &dir,
        "",
        &sink,
        &[
            file_job(root, "a", "          version: two\n"),
            file_job(root, "b", ""),
            file_job(root, "c", ""),
        ],
    );
    std::fs::write(&path, after).unwrap();
    agent.reload();
    assert!(
        agent.wait_for_log("config reloaded", WAIT),
        "{}",
        agent.logs()
    );
    let logs = agent.logs();
    assert!(
        logs.contains("restarted a; added c; removed -; unchanged b"),
        "{logs}"
    );
    assert!(
        logs.contains("unchanged main"),
        "the client was kept: {logs}"
    );
    for w in writers {
        w.join().unwrap();
    }
    append_lines(dir.join("logs/c.log"), &lines_range("c", 0, 100));

    for (prefix, count) in [("a", n), ("b", n), ("c", 100)] {
        assert!(wait_for_all(&[&loki], prefix, count), "{prefix}: {:?}", {
            lines_of(&loki.entries(), prefix).len()
        });
        let got = lines_of(&loki.entries(), prefix);
        assert_eq!(
            count_loss(&lines_range(prefix, 0, count), &got),
            Counts::default(),
            "job {prefix}: every line once"
        );
    }
    // Job a's lines carry the old label up to the reload and the new one after it, never mixed.
    let versions: Vec<(String, &str)> = loki
        .entries()
        .iter()
        .filter(|e| e.line.starts_with('a'))
        .map(|e| {
            let v = if e.labels.contains(r#"version="one""#) {
                "one"
            } else {
                "two"
            };
            (e.line.clone(), v)
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let switch = versions.iter().position(|(_, v)| *v == "two");
    let switch = switch.expect("lines after the reload have the new label");
    assert!(switch > 0, "lines before the reload have the old label");
    assert!(
        versions[switch..].iter().all(|(_, v)| *v == "two"),
        "old label after the switch"
    );
    assert_eq!(metric(&agent, "promtail_config_reload_success_total"), 1.0);
    // Without server.enable_runtime_reload there is no /reload, as in Promtail.
    let page = http::post(&format!("{}/reload", agent.http_url()), &[], b"").unwrap();
    assert_eq!(page.status, 404, "{}", page.text());
    assert!(agent.terminate(WAIT).unwrap().success());
}

#[test]
fn a_changed_client_restarts_on_its_buffer_and_the_stream_moves_on_without_loss_or_duplicates() {
    let dir = TestDir::new();
    let first = LokiReceiver::start();
    let second = LokiReceiver::start();
    let root = dir.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let server = "  enable_runtime_reload: true\n";
    let jobs = [file_job(root, "a", "")];
    let path = dir.write_config(&config(&dir, server, &client("main", &first.url()), &jobs));
    let mut agent = start_agent(&path);

    let n = 6000;
    let writer = write_slowly(
        dir.join("logs/a.log"),
        lines_range("a", 0, n),
        Duration::from_secs(3),
    );
    assert!(first.wait_until(|r| r.entries.len() >= n / 4, WAIT));
    // Same client name (so the same buffer), another URL.
    std::fs::write(
        &path,
        config(&dir, server, &client("main", &second.url()), &jobs),
    )
    .unwrap();
    let page = http::post(&format!("{}/reload", agent.http_url()), &[], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("restarted main"), "{}", page.text());
    assert!(page.text().contains("unchanged a"), "{}", page.text());
    writer.join().unwrap();

    assert!(wait_for_all(&[&first, &second], "a", n));
    let mut got = lines_of(&first.entries(), "a");
    let moved = lines_of(&second.entries(), "a");
    assert!(!moved.is_empty(), "the new URL got the rest");
    got.extend(moved);
    assert_eq!(
        count_loss(&lines_range("a", 0, n), &got),
        Counts::default(),
        "each line once, across both receivers"
    );
    // /config shows the new URL.
    let shown = http::get(&format!("{}/config", agent.http_url()))
        .unwrap()
        .text();
    assert!(shown.contains(&second.url()), "{shown}");
    assert!(agent.terminate(WAIT).unwrap().success());
}

#[test]
fn an_invalid_config_is_refused_with_its_errors_and_the_running_one_goes_on() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let root = dir.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let server = "  enable_runtime_reload: true\n";
    let sink = client("main", &loki.url());
    let good = config(&dir, server, &sink, &[file_job(root, "a", "")]);
    let path = dir.write_config(&good);
    let mut agent = start_agent(&path);
    append_lines(dir.join("logs/a.log"), &lines_range("a", 0, 10));
    assert!(loki.wait_until(|r| r.entries.len() >= 10, WAIT));

    // A relabel rule with a regex that does not compile.
    let rule =
        "    relabel_configs:\n      - source_labels: [job]\n        regex: '(unclosed'\n        \
                target_label: x\n";
    let bad = config(&dir, server, &sink, &[file_job(root, "a", "") + rule]);
    std::fs::write(&path, &bad).unwrap();
    let page = http::post(&format!("{}/reload", agent.http_url()), &[], b"").unwrap();
    assert_eq!(page.status, 500, "{}", page.text());
    let text = page.text();
    let file = path.display().to_string();
    assert!(text.contains(&file), "names the file: {text}");
    assert!(text.contains("relabel_configs"), "names the field: {text}");
    let line = bad.lines().position(|l| l.contains("regex:")).unwrap() + 1;
    assert!(
        text.contains(&format!(":{line}:")),
        "names the line {line}: {text}"
    );
    // SIGHUP refuses it too (logged once: the same error again within a minute is held back).
    agent.reload();
    assert!(
        http::wait_for_metric(
            &agent.http_url(),
            "promtail_config_reload_fail_total",
            WAIT,
            |v| v >= 2.0
        ),
        "{}",
        agent.logs()
    );

    // The running config goes on.
    append_lines(dir.join("logs/a.log"), &lines_range("a", 10, 20));
    assert!(loki.wait_until(|r| r.entries.len() >= 20, WAIT));
    let shown = http::get(&format!("{}/config", agent.http_url()))
        .unwrap()
        .text();
    assert!(!shown.contains("unclosed"), "{shown}");

    // The good config again: unchanged, nothing to do (Promtail counts that as a failed reload).
    std::fs::write(&path, &good).unwrap();
    let page = http::post(&format!("{}/reload", agent.http_url()), &[], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("unchanged"), "{}", page.text());
    assert_eq!(metric(&agent, "promtail_config_reload_fail_total"), 3.0);
    assert_eq!(metric(&agent, "promtail_config_reload_success_total"), 0.0);
    assert_eq!(
        count_loss(&lines_range("a", 0, 20), &lines_of(&loki.entries(), "a")),
        Counts::default()
    );
    assert!(agent.terminate(WAIT).unwrap().success());
}

/// Configs that used to kill the agent (a `__path__` of 500 000 characters panicked compiling its
/// glob) or hold it for a minute (YAML nested 100 000 levels deep) are refused like any other: the
/// answer says why and where, and the running config goes on. `/reload` takes POST only.
#[test]
fn a_reload_with_a_huge_glob_or_deep_nesting_is_refused_and_the_agent_goes_on() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let root = dir.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let server = "  enable_runtime_reload: true\n";
    let sink = client("main", &loki.url());
    let good = config(&dir, server, &sink, &[file_job(root, "a", "")]);
    let path = dir.write_config(&good);
    let mut agent = start_agent(&path);
    append_lines(dir.join("logs/a.log"), &lines_range("a", 0, 10));
    assert!(loki.wait_until(|r| r.entries.len() >= 10, WAIT));
    let reload_url = format!("{}/reload", agent.http_url());

    let huge_glob = good.replace(
        "/logs/a.log",
        &format!("/logs/{}.log", "a*".repeat(250_000)),
    );
    let levels = 100_000;
    let deep = format!("{good}deep: {}{}\n", "[".repeat(levels), "]".repeat(levels));
    let file = path.display().to_string();
    let glob_line = good.lines().position(|l| l.contains("__path__")).unwrap() + 1;
    let deep_line = deep.lines().count();
    for (name, text, want) in [
        ("huge __path__", &huge_glob, format!("{file}:{glob_line}:")),
        ("deep nesting", &deep, format!("{file}:{deep_line}:")),
    ] {
        std::fs::write(&path, text).unwrap();
        let page = http::post(&reload_url, &[], b"")
            .unwrap_or_else(|e| panic!("{name}: no answer ({e}); logs:\n{}", agent.logs()));
        assert_eq!(page.status, 500, "{name}: {}", page.text());
        let answer = page.text();
        assert!(
            answer.contains(&want),
            "{name}: wanted {want} in {answer:.2000}"
        );
        assert!(
            answer.len() < 2000,
            "{name}: the answer repeats the config: {answer:.2000}"
        );
        assert!(
            agent.is_running(),
            "{name}: the agent stopped; logs:\n{}",
            agent.logs()
        );
    }

    // Only POST reloads.
    for method in ["GET", "PUT", "DELETE"] {
        let page = http::request(method, &reload_url, &[], &[]).unwrap();
        assert_eq!(page.status, 405, "{method}: {}", page.text());
    }

    // The running config goes on.
    append_lines(dir.join("logs/a.log"), &lines_range("a", 10, 20));
    assert!(loki.wait_until(|r| r.entries.len() >= 20, WAIT));
    assert_eq!(metric(&agent, "promtail_config_reload_fail_total"), 2.0);
    std::fs::write(&path, &good).unwrap();
    let page = http::post(&reload_url, &[], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(agent.terminate(WAIT).unwrap().success());
}

/// A reload that changes a client whose buffer is full while its Loki is down: the old instance gives
/// up at the grace timeout, and the batches it had not written yet are dropped unacknowledged. The
/// file must not stay held back by them: every line reaches Loki once it is up again, and the
/// position reaches the end of the file, without an agent restart.
#[test]
fn a_client_that_gives_up_at_a_reload_does_not_hold_its_files_back() {
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    loki.stop();
    let root = dir.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let write = |labels: &str| {
        dir.write_config(&format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n  \
             graceful_shutdown_timeout: 1s\n\
             positions:\n  filename: {root}/positions.yaml\n  sync_period: 200ms\n\
             clients:\n  - name: main\n    url: {url}\n    batchwait: 100ms\n    batchsize: 2KB\n    \
             backoff_config: {{min_period: 50ms, max_period: 200ms}}\n    \
             buffer: {{max_size: 16KB, segment_size: 4KB}}\n{labels}\
             target_config:\n  sync_period: 500ms\n\
             scrape_configs:\n{job}",
            root = root.display(),
            url = loki.url(),
            job = file_job(root, "a", ""),
        ))
    };
    let path = write("");
    let agent = start_agent(&path);
    // Incompressible lines, so the buffer fills by their size.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut pad = || {
        (0..5)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                format!("{seed:016x}")
            })
            .collect::<String>()
    };
    let lines: Vec<String> = (0..1000).map(|i| format!("a{i:05} {}", pad())).collect();
    append_lines(dir.join("logs/a.log"), &lines);
    assert!(
        http::wait_for_metric(&agent.http_url(), "logferry_buffer_full", WAIT, |v| v
            >= 1.0),
        "{}",
        agent.logs()
    );
    // Let the sink's queues fill behind the full buffer.
    thread::sleep(Duration::from_millis(500));
    write("    external_labels: {reloaded: 'yes'}\n");
    agent.reload();
    assert!(
        agent.wait_for_log("config reloaded", WAIT),
        "{}",
        agent.logs()
    );
    assert!(
        agent.wait_for_log("did not finish its push in time", WAIT),
        "{}",
        agent.logs()
    );
    loki.start_again();
    append_lines(dir.join("logs/a.log"), &["the end".to_string()]);
    let mut expected = lines.clone();
    expected.push("the end".into());
    assert!(
        loki.wait_for_all_lines(&expected, Duration::from_secs(60)),
        "{} of {} distinct lines lost; logs:\n{}",
        count_loss(&expected, &loki.lines()).lost,
        expected.len(),
        agent.logs()
    );
    let size = std::fs::metadata(dir.join("logs/a.log")).unwrap().len();
    let positions = || std::fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default();
    let deadline = std::time::Instant::now() + WAIT;
    while !positions().contains(&format!("\"{size}\""))
        && !positions().contains(&format!(": {size}"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "position stuck: {}",
            positions()
        );
        thread::sleep(Duration::from_millis(100));
    }
}
