//! The sidecar image of `examples/container/`: built with the project's own script from the binary cargo
//! built for these tests, and run on this machine's Docker engine as an operator would run it (host
//! files, the journal and the Docker socket mounted, a state directory, the Loki URL from the
//! environment), with the test's Loki receiver on 127.0.0.1 (`--network host`).
//!
//! The mounted files are readable by a group only, as on a host (`adm` for /var/log, `systemd-journal`
//! for the journal, `docker` for the socket), so the test also shows that the groups given with
//! `--group-add` are what lets the non-root agent read.

mod common;

use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::docker::{self, awk_numbered, Containers, SOCKET};
use common::journald::fixture::{self, Compression};
use common::{count_loss, lines_range, LokiReceiver, TestDir};

const WAIT: Duration = Duration::from_secs(30);
/// The image's user (examples/container/build-image.sh).
const AGENT_UID: u32 = 10001;
/// Groups that own the test's log files and journal, like `adm` and `systemd-journal` on a host.
const LOG_GID: u32 = 4;
const JOURNAL_GID: u32 = 4242;

/// The image and the agent's container, removed when the test ends, pass or fail.
struct Sidecar {
    image: String,
    container: Option<String>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(id) = &self.container {
            if std::thread::panicking() {
                let logs = Command::new("docker").args(["logs", id]).output();
                if let Ok(out) = logs {
                    eprintln!(
                        "----- sidecar logs -----\n{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            let _ = Command::new("docker").args(["rm", "-f", "-v", id]).output();
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// Runs `examples/container/build-image.sh` on the test binary; returns how long it took.
fn build_image(tag: &str) -> Duration {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/container/build-image.sh");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .args(["--binary", env!("CARGO_BIN_EXE_logferry"), "--tag", tag])
        .output()
        .expect("run build-image.sh");
    assert!(
        out.status.success(),
        "build-image.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A journal file of `n` entries of the unit `app.service`, readable by [`JOURNAL_GID`] only; returns
/// the messages.
fn write_journal(dir: &Path, n: u64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let now = now_usec();
    let mut export = String::new();
    let mut messages = Vec::new();
    for i in 0..n {
        let message = format!("journal-{i:03} from a service");
        export.push_str(&fixture::export_entry(
            now - 60_000_000 + i,
            i + 1,
            &[("MESSAGE", &message), ("_SYSTEMD_UNIT", "app.service")],
        ));
        messages.push(message);
    }
    let file = dir.join("system.journal");
    fixture::write(&file, &export, Compression::Zstd, false);
    group_only(&file, JOURNAL_GID);
    group_only(dir, JOURNAL_GID);
    messages
}

/// root:`gid`, readable by the group only (files 0640, directories 0750).
fn group_only(path: &Path, gid: u32) {
    chown(path, Some(0), Some(gid)).unwrap();
    let mode = if path.is_dir() { 0o750 } else { 0o640 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `Uid:` and `Groups:` of a host process, from /proc.
fn uid_and_groups(pid: &str) -> (u32, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .map(|n| n.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    (field("Uid:")[0], field("Groups:"))
}

fn write_config(dir: &TestDir, run: &str) -> PathBuf {
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: /var/lib/logferry/positions.yaml\n  sync_period: 200ms\n\
         clients:\n  - url: ${{LOKI_URL}}\n    batchwait: 100ms\n\
         scrape_configs:\n\
         \x20 - job_name: files\n    static_configs:\n      - labels:\n          job: files\n          \
         __path__: /logs/*.log\n\
         \x20 - job_name: containers\n    docker_sd_configs:\n      - host: unix://{SOCKET}\n        \
         filters:\n          - name: label\n            values: [logferry-test={run}]\n    \
         relabel_configs:\n      - target_label: job\n        replacement: containers\n\
         \x20 - job_name: journal\n    journal:\n      path: /journal\n      max_age: 1h\n      \
         labels:\n        job: journal\n"
    );
    let path = dir.write_config(&config);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

#[test]
fn the_sidecar_image_ships_files_containers_and_the_journal_as_non_root_and_stops_cleanly() {
    docker::require();
    let containers = Containers::new();
    let dir = TestDir::new();
    let loki = LokiReceiver::start();
    let mut sidecar = Sidecar {
        image: format!("logferry-test-sidecar:{}", containers.run),
        container: None,
    };
    let built_in = build_image(&sidecar.image);
    eprintln!("image built in {built_in:?}");

    // What a host has: a log file of the adm group, a journal of systemd-journal, and a container.
    let file_lines = lines_range("file", 0, 200);
    let log = dir.append_lines("logs/app.log", &file_lines);
    group_only(&log, LOG_GID);
    group_only(&dir.join("logs"), LOG_GID);
    let journal_lines = write_journal(&dir.join("journal"), 20);
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    chown(&state, Some(AGENT_UID), Some(AGENT_UID)).unwrap();
    let config = write_config(&dir, &containers.run);

    let socket_gid = std::fs::metadata(SOCKET).unwrap().gid().to_string();
    let mount = |from: &Path, to: &str| format!("{}:{to}", from.display());
    let id = docker::docker(&[
        "run",
        "--detach",
        "--name",
        &containers.name("sidecar"),
        "--network",
        "host",
        "--group-add",
        &socket_gid,
        "--group-add",
        &LOG_GID.to_string(),
        "--group-add",
        &JOURNAL_GID.to_string(),
        "--env",
        &format!("LOKI_URL={}", loki.url()),
        "--volume",
        &format!("{SOCKET}:{SOCKET}:ro"),
        "--volume",
        &mount(&dir.join("logs"), "/logs:ro"),
        "--volume",
        &mount(&dir.join("journal"), "/journal:ro"),
        "--volume",
        &mount(&state, "/var/lib/logferry"),
        "--volume",
        &mount(&config, "/etc/logferry/config.yaml:ro"),
        &sidecar.image,
    ]);
    sidecar.container = Some(id.clone());

    // The files first; then a container, started once the agent follows the daemon's events (one
    // that ran and exited before the agent started would not be listed, as in Promtail).
    let host_lines = file_lines.len() + journal_lines.len();
    assert!(
        loki.wait_for_lines(host_lines, WAIT),
        "{} of {host_lines} lines from the file and the journal arrived",
        loki.lines().len()
    );
    let app = containers.run("app", &[], &awk_numbered("container", 0, 100));
    let total = host_lines + 100;
    assert!(
        loki.wait_for_lines(total, WAIT),
        "{} of {total} lines arrived",
        loki.lines().len()
    );
    let mut expected = file_lines.clone();
    expected.extend(journal_lines.iter().cloned());
    expected.extend(lines_range("container", 0, 100));
    let counts = count_loss(&expected, &loki.lines());
    assert!(counts.is_exact(), "{counts:?}");
    let entries = loki.entries();
    for job in ["files", "containers", "journal"] {
        assert!(
            entries
                .iter()
                .any(|e| e.labels.contains(&format!("job=\"{job}\""))),
            "no entry of job {job}"
        );
    }

    // Not root: the image's user, with the groups that were added and no others.
    let pid = docker::docker(&["inspect", "--format", "{{.State.Pid}}", &id]);
    let (uid, groups) = uid_and_groups(&pid);
    assert_eq!(uid, AGENT_UID);
    assert!(!groups.contains(&0), "{groups:?}");
    for gid in [socket_gid.parse().unwrap(), LOG_GID, JOURNAL_GID] {
        assert!(groups.contains(&gid), "group {gid} not in {groups:?}");
    }

    // `docker stop` (SIGTERM) ends it cleanly, with every position in the state volume.
    docker::docker(&["stop", "--time", "30", &id]);
    let exit = docker::docker(&["inspect", "--format", "{{.State.ExitCode}}", &id]);
    assert_eq!(exit, "0");
    let text = std::fs::read_to_string(state.join("positions.yaml")).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let positions = &yaml["positions"];
    let size = std::fs::metadata(&log).unwrap().len().to_string();
    assert_eq!(positions["/logs/app.log"].as_str(), Some(&*size), "{text}");
    assert!(positions["cursor-journal"].is_string(), "{text}");
    assert!(positions[&*format!("cursor-{app}")].is_string(), "{text}");
    let owner = std::fs::metadata(state.join("positions.yaml"))
        .unwrap()
        .uid();
    assert_eq!(owner, AGENT_UID, "positions written by the agent's user");
}

/// `docker-compose config` (offline) accepts the example compose file, fills in the environment, and
/// refuses to run without a Loki URL.
#[test]
fn the_example_compose_file_parses() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/container/docker-compose.yaml");
    let compose = |loki_url: Option<&str>| {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("--file").arg(&file).arg("config");
        cmd.env("HOSTNAME", "web-01").env("DOCKER_GID", "998");
        match loki_url {
            Some(url) => cmd.env("LOKI_URL", url),
            None => cmd.env_remove("LOKI_URL"),
        };
        cmd.output()
            .expect("run docker-compose (tests/setup.sh installs it)")
    };
    let out = compose(Some("http://loki.internal:3100/loki/api/v1/push"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let service = &yaml["services"]["logferry"];
    assert_eq!(
        service["environment"]["LOKI_URL"].as_str(),
        Some("http://loki.internal:3100/loki/api/v1/push")
    );
    assert_eq!(service["environment"]["HOSTNAME"].as_str(), Some("web-01"));
    let groups: Vec<&str> = service["group_add"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str())
        .collect();
    assert!(groups.contains(&"998"), "{groups:?}");
    let volumes: Vec<&str> = service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for mount in [
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "/var/log:/var/log:ro",
        "/var/lib/docker/containers:/var/lib/docker/containers:ro",
        "/var/log/journal:/var/log/journal:ro",
        "logferry-state:/var/lib/logferry:rw",
    ] {
        assert!(volumes.contains(&mount), "{mount} not in {volumes:?}");
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/container/config.yaml");
    let config_mount = format!("{}:/etc/logferry/config.yaml:ro", config.display());
    assert!(volumes.contains(&config_mount.as_str()), "{volumes:?}");

    let out = compose(None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOKI_URL"));
}
