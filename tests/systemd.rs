//! The systemd deployment: the agent speaks sd_notify to a socket the test binds, as systemd would
//! for a `Type=notify` unit; the shipped unit passes `systemd-analyze verify`; `systemd/install.sh`
//! puts the binary, unit and config in place.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Agent, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(20);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Receives notifications until one contains `state` as a line; returns every message seen.
fn wait_for_state(socket: &UnixDatagram, state: &str, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(deadline - Instant::now()))
            .unwrap();
        let Ok(n) = socket.recv(&mut buf) else {
            return false;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let hit = msg.lines().any(|l| l == state);
        seen.push(msg);
        if hit {
            return true;
        }
    }
    false
}

/// Starts an agent with `NOTIFY_SOCKET=notify_socket` and a 400 ms watchdog, and checks the
/// sequence systemd relies on: READY=1 once started, WATCHDOG=1 pings, RELOADING=1 then READY=1 on
/// SIGHUP, STOPPING=1 on SIGTERM.
fn check_notifications(socket: &UnixDatagram, notify_socket: &str) {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let config = TestConfig::new(loki.url()).write(&dir);
    let mut agent = Agent::builder()
        .config_file(&config)
        .env("NOTIFY_SOCKET", notify_socket)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .spawn();
    let mut seen = Vec::new();

    assert!(
        wait_for_state(socket, "READY=1", &mut seen),
        "no READY=1; got {seen:?}; logs:\n{}",
        agent.logs()
    );
    assert!(
        agent.wait_for_log("logferry started", WAIT),
        "READY=1 but no start logged"
    );
    for _ in 0..2 {
        assert!(
            wait_for_state(socket, "WATCHDOG=1", &mut seen),
            "no WATCHDOG=1; got {seen:?}"
        );
    }

    // systemctl reload: RELOADING=1 (with the monotonic clock, as Type=notify-reload wants), then
    // READY=1 again.
    agent.reload();
    assert!(
        wait_for_state(socket, "RELOADING=1", &mut seen),
        "no RELOADING=1; got {seen:?}"
    );
    let reloading = seen.last().unwrap().clone();
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    assert!(
        wait_for_state(socket, "READY=1", &mut seen),
        "no READY=1 after the reload; got {seen:?}"
    );

    agent.signal(libc::SIGTERM);
    assert!(
        wait_for_state(socket, "STOPPING=1", &mut seen),
        "no STOPPING=1; got {seen:?}"
    );
    let status = agent.wait(WAIT).expect("the agent exits after SIGTERM");
    assert!(status.success(), "{status:?}; logs:\n{}", agent.logs());
}

#[test]
fn the_agent_notifies_ready_watchdog_and_stopping_on_a_path_socket() {
    let dir = TestDir::new();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    check_notifications(&socket, path.to_str().unwrap());
}

#[test]
fn the_agent_notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("logferry-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    check_notifications(&socket, &format!("@{name}"));
}

#[test]
fn without_notify_socket_the_agent_runs_as_before() {
    let loki = LokiReceiver::start();
    let dir = TestDir::new();
    let config = TestConfig::new(loki.url()).write(&dir);
    let mut agent = Agent::builder()
        .config_file(&config)
        .env_remove("NOTIFY_SOCKET")
        .env("WATCHDOG_USEC", "400000")
        .spawn();
    assert!(
        agent.wait_for_log("logferry started", WAIT),
        "{}",
        agent.logs()
    );
    let status = agent.terminate(WAIT).expect("exits after SIGTERM");
    assert!(status.success(), "{}", agent.logs());
}

/// The unit with ExecStart pointing at the binary under test (verify needs it to exist).
fn unit_for_test(dir: &TestDir) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("systemd/logferry.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/logferry "));
    let unit = unit.replace("/usr/local/bin/logferry", env!("CARGO_BIN_EXE_logferry"));
    dir.write_file("logferry.service", unit)
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is not installed: tests/setup.sh installs systemd"
    );
    let dir = TestDir::new();
    let unit = unit_for_test(&dir);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Unknown keys and bad values are only warnings, with the exit status 0: none may name the unit.
    assert!(!stderr.contains("logferry.service"), "{stderr}");
}

#[test]
fn the_unit_is_a_hardened_notify_service() {
    let unit = std::fs::read_to_string(repo().join("systemd/logferry.service")).unwrap();
    let keys: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for want in [
        "Type=notify",
        "WatchdogSec=60",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=logferry",
        "User=logferry",
        "SupplementaryGroups=systemd-journal adm",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(keys.contains(&want), "the unit lacks {want:?}");
    }
}

#[test]
fn install_sh_puts_binary_unit_and_config_in_place() {
    let root = TestDir::new();
    let run = || {
        Command::new("sh")
            .arg(repo().join("systemd/install.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_logferry")])
            .args(["--loki-url", "http://127.0.0.1:3100/loki/api/v1/push"])
            .env("DESTDIR", root.path())
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let binary = root.join("usr/local/bin/logferry");
    assert!(binary.is_file());
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/logferry.service")).unwrap();
    assert!(unit.contains("Type=notify"));
    let config = std::fs::read_to_string(root.join("etc/logferry/config.yaml")).unwrap();
    assert_eq!(
        config,
        std::fs::read_to_string(repo().join("examples/bare-metal.yaml")).unwrap()
    );
    let env = std::fs::read_to_string(root.join("etc/logferry/logferry.env")).unwrap();
    assert!(env.contains("LOKI_URL=http://127.0.0.1:3100/loki/api/v1/push"));

    // Again: an edited config is kept.
    std::fs::write(
        root.join("etc/logferry/config.yaml"),
        config + "\n# edited\n",
    )
    .unwrap();
    let out = run();
    assert!(out.status.success());
    let config = std::fs::read_to_string(root.join("etc/logferry/config.yaml")).unwrap();
    assert!(config.ends_with("# edited\n"));
}
