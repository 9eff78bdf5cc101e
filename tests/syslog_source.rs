//! End to end, syslog senders to Loki through the real binary: util-linux `logger` over TCP and UDP, in
//! RFC 5424 and RFC 3164, newline and octet-counted framing, structured data as labels; relabeling on
//! the meta labels; empty, garbage and oversized messages counted and skipped while the connection
//! goes on; idle connections closed; TLS with client certificates (made with the openssl CLI); the
//! Docker engine's syslog log driver; a port in use; a reload and a stop with senders connected;
//! and the shipped example config.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{get, metric_sum, wait_for_metric};
use common::{make_certs, start_agent, Agent, LokiReceiver, ReceivedEntry, TestDir};

const WAIT: Duration = Duration::from_secs(30);

/// Relabel rules that show every meta label Promtail sets (and the structured data, by `labelmap`).
const SHOW_META: &str = "    relabel_configs:
      - {source_labels: [__syslog_message_severity], target_label: severity}
      - {source_labels: [__syslog_message_facility], target_label: facility}
      - {source_labels: [__syslog_message_hostname], target_label: host}
      - {source_labels: [__syslog_message_app_name], target_label: app}
      - {source_labels: [__syslog_message_proc_id], target_label: proc_id}
      - {source_labels: [__syslog_message_msg_id], target_label: msg_id}
      - {source_labels: [__syslog_connection_ip_address], target_label: ip}
      - {source_labels: [__syslog_connection_hostname], target_label: conn_host}
      - {action: labelmap, regex: __syslog_message_sd_(.+), replacement: sd_$1}
";

/// A config whose jobs are `jobs` (each a `- job_name: …` item, indented 2).
fn write_config(dir: &TestDir, url: &str, jobs: &str) -> PathBuf {
    let root = dir.path().display();
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n  - url: {url}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 500ms\n\
         scrape_configs:\n{jobs}"
    ))
}

/// A syslog job `name` on a port the OS picks; `syslog_yaml` under `syslog:` (6 spaces), `rest` under
/// the job (4 spaces).
fn job(name: &str, syslog_yaml: &str, rest: &str) -> String {
    format!(
        "  - job_name: {name}\n    syslog:\n      listen_address: 127.0.0.1:0\n      labels: {{job: {name}}}\n{syslog_yaml}{rest}"
    )
}

/// The address job `name` listens on, from its `syslog source receiving` log line.
fn listen_addr(agent: &Agent, name: &str) -> SocketAddr {
    agent.logged_address(|l| {
        l.contains("syslog source receiving")
            && (l.contains(&format!("job={name} ")) || l.contains(&format!("job=\"{name}\"")))
    })
}

/// Runs util-linux `logger` against `addr` with `args`, then the message.
fn logger(addr: SocketAddr, args: &[&str], message: &str) {
    let out = Command::new("logger")
        .args(["--server", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(args)
        .arg(message)
        .output()
        .expect("run logger");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn entry_with(receiver: &LokiReceiver, line: &str) -> ReceivedEntry {
    assert!(
        receiver.wait_for_all_lines(&[line.to_owned()], WAIT),
        "{line:?} never arrived; got {:?}",
        receiver.entries()
    );
    receiver
        .entries()
        .into_iter()
        .find(|e| e.line == line)
        .unwrap()
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What the agent's reverse lookup of 127.0.0.1 gives (Go's form: with a trailing dot).
fn loopback_name() -> String {
    let out = Command::new("getent")
        .args(["hosts", "127.0.0.1"])
        .output()
        .expect("getent");
    let text = String::from_utf8_lossy(&out.stdout);
    let name = text
        .split_whitespace()
        .nth(1)
        .expect("127.0.0.1 has a name in /etc/hosts");
    format!("{name}.")
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

#[test]
fn logger_over_tcp_and_udp_in_both_formats_arrives_with_promtails_labels() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let jobs = [
        job("tcp5424", "      label_structured_data: true\n", SHOW_META),
        job(
            "udp5424",
            "      listen_protocol: udp\n      use_incoming_timestamp: true\n",
            SHOW_META,
        ),
        job("tcp3164", "      syslog_format: rfc3164\n", SHOW_META),
        job(
            "udp3164",
            "      syslog_format: rfc3164\n      listen_protocol: udp\n      use_rfc5424_message: true\n",
            SHOW_META,
        ),
        job(
            "full",
            "      use_rfc5424_message: true\n      label_structured_data: true\n",
            "",
        ),
    ];
    let agent = start_agent(&write_config(&dir, &receiver.url(), &jobs.concat()));
    let host = hostname();
    let conn_host = loopback_name();

    let tcp5424 = listen_addr(&agent, "tcp5424");
    logger(
        tcp5424,
        &["--tcp", "--rfc5424", "-t", "app1", "-p", "local0.info"],
        "newline framed",
    );
    let sd = ["--sd-id", "custom@99770", "--sd-param", "example=\"1\""];
    let mut args = vec![
        "--tcp",
        "--rfc5424",
        "--octet-count",
        "-t",
        "app2",
        "-p",
        "daemon.warning",
        "--msgid",
        "M1",
        "--id=4242",
    ];
    args.extend(sd);
    logger(tcp5424, &args, "octet counted");
    let before = now_ns();
    logger(
        listen_addr(&agent, "udp5424"),
        &["--udp", "--rfc5424", "-t", "app3", "-p", "user.err"],
        "over udp",
    );
    logger(
        listen_addr(&agent, "tcp3164"),
        &["--tcp", "--rfc3164", "-t", "app4", "-p", "mail.debug"],
        "bsd over tcp",
    );
    logger(
        listen_addr(&agent, "udp3164"),
        &[
            "--udp",
            "--rfc3164",
            "-t",
            "app5",
            "--id=42",
            "-p",
            "local7.crit",
        ],
        "bsd over udp",
    );
    let mut args = vec!["--tcp", "--rfc5424", "-t", "app6"];
    args.extend(sd);
    logger(listen_addr(&agent, "full"), &args, "whole message");

    let meta = |job: &str, sev: &str, fac: &str, app: &str, extra: &str| {
        format!(
            "{{app=\"{app}\", conn_host=\"{conn_host}\", facility=\"{fac}\", host=\"{host}\", ip=\"127.0.0.1\", job=\"{job}\"{extra}, severity=\"{sev}\"}}"
        )
    };
    let e = entry_with(&receiver, "newline framed");
    assert_eq!(
        e.labels,
        meta(
            "tcp5424",
            "informational",
            "local0",
            "app1",
            ", sd_timeQuality_isSynced=\"0\", sd_timeQuality_tzKnown=\"1\""
        )
    );
    let e = entry_with(&receiver, "octet counted");
    assert_eq!(
        e.labels,
        meta("tcp5424", "warning", "daemon", "app2", ", msg_id=\"M1\", proc_id=\"4242\", sd_custom_99770_example=\"1\", sd_timeQuality_isSynced=\"0\", sd_timeQuality_tzKnown=\"1\"")
    );
    // label_structured_data is off for this job; the timestamp is logger's own (microseconds).
    let e = entry_with(&receiver, "over udp");
    assert_eq!(e.labels, meta("udp5424", "error", "user", "app3", ""));
    assert!(
        e.timestamp_ns >= before - 1_000_000 && e.timestamp_ns <= now_ns(),
        "{e:?}"
    );
    assert_eq!(
        e.timestamp_ns % 1000,
        0,
        "logger's timestamp has microseconds: {e:?}"
    );
    let e = entry_with(&receiver, "bsd over tcp");
    assert_eq!(e.labels, meta("tcp3164", "debug", "mail", "app4", ""));
    // use_rfc5424_message does nothing to RFC 3164 messages (as in Promtail).
    let e = entry_with(&receiver, "bsd over udp");
    assert_eq!(
        e.labels,
        meta("udp3164", "critical", "local7", "app5", ", proc_id=\"42\"")
    );
    let e = entry_with_prefix(&receiver, "<13>1 ");
    assert_eq!(e.labels, "{job=\"full\"}");
    assert!(
        e.line.ends_with(&format!(" {host} app6 - - [custom@99770 example=\"1\"][timeQuality isSynced=\"0\" tzKnown=\"1\"] whole message")),
        "{e:?}"
    );
    assert_eq!(
        metric_sum(&agent.http_url(), "promtail_syslog_target_entries_total"),
        6.0
    );

    // /targets lists each listener with what it received.
    let targets = get(&format!("{}/targets?format=json", agent.http_url()))
        .unwrap()
        .text();
    let json: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let tcp = json["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("{targets}"))
        .iter()
        .find(|t| t["job"] == "tcp5424")
        .unwrap_or_else(|| panic!("{targets}"));
    assert_eq!(tcp["kind"], "syslog");
    assert_eq!(tcp["name"], format!("tcp://{tcp5424}"));
    assert_eq!(tcp["read_entries"], 2);
    assert!(tcp["read_bytes"].as_u64().unwrap() > 100, "{tcp}");
    assert!(tcp["position"].as_str().unwrap().ends_with('Z'), "{tcp}");
}

fn entry_with_prefix(receiver: &LokiReceiver, prefix: &str) -> ReceivedEntry {
    let ok = receiver.wait_until(
        |r| r.entries.iter().any(|e| e.line.starts_with(prefix)),
        WAIT,
    );
    assert!(
        ok,
        "no line starting {prefix:?}; got {:?}",
        receiver.entries()
    );
    receiver
        .entries()
        .into_iter()
        .find(|e| e.line.starts_with(prefix))
        .unwrap()
}

#[test]
fn relabeling_on_app_name_and_empty_or_unlabeled_messages_dropped_and_counted() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let rules = "    relabel_configs:
      - {source_labels: [__syslog_message_app_name], regex: noisy, action: drop}
      - {source_labels: [__syslog_message_app_name], regex: '(kept)', target_label: app}
      - {source_labels: [__syslog_message_app_name], regex: bare, target_label: job, replacement: ''}
";
    let jobs = job("syslog", "", rules);
    let agent = start_agent(&write_config(&dir, &receiver.url(), &jobs));
    let addr = listen_addr(&agent, "syslog");
    logger(
        addr,
        &["--tcp", "--rfc5424", "-t", "noisy"],
        "dropped by a rule",
    );
    logger(
        addr,
        &["--tcp", "--rfc5424", "-t", "bare"],
        "no labels left",
    );
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"<13>1 - host quiet - - -\n<13>1 - host quiet - - - \n<13>1 - host kept - - - after the empty ones\n")
        .unwrap();
    drop(conn);
    let e = entry_with(&receiver, "after the empty ones");
    assert_eq!(e.labels, "{app=\"kept\", job=\"syslog\"}");
    let url = agent.http_url();
    assert!(wait_for_metric(
        &url,
        "promtail_syslog_empty_messages_total",
        WAIT,
        |v| v == 2.0
    ));
    assert!(wait_for_metric(
        &url,
        "logferry_syslog_messages_dropped_total",
        WAIT,
        |v| v == 1.0
    ));
    assert_eq!(receiver.lines(), ["after the empty ones"]);
    assert_eq!(
        metric_sum(&url, "promtail_syslog_target_entries_total"),
        1.0
    );
    assert_eq!(agent.log_count("no labels after relabeling"), 1);
}

#[test]
fn garbage_and_oversized_messages_are_skipped_and_the_connection_goes_on() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let opts = "      max_message_length: 200\n      idle_timeout: 1s\n";
    let jobs = [
        job("tcp", opts, ""),
        job("udp", &format!("{opts}      listen_protocol: udp\n"), ""),
    ]
    .concat();
    let agent = start_agent(&write_config(&dir, &receiver.url(), &jobs));
    let (tcp, udp) = (listen_addr(&agent, "tcp"), listen_addr(&agent, "udp"));
    let big = "x".repeat(100_000);

    // Newline framing: garbage, a line 100 kB long, then a good message on the same connection.
    let mut conn = TcpStream::connect(tcp).unwrap();
    let stream = format!(
        "this is not syslog\n<13>1 - h a - - - {big}\n<13>1 - h a - - - good after a long line\n"
    );
    conn.write_all(stream.as_bytes()).unwrap();
    // Octet counting: an oversized frame (skipped by its length, newlines inside and all), garbage
    // where a length should be, then good frames.
    let mut conn2 = TcpStream::connect(tcp).unwrap();
    let inner = format!("<13>1 - h a - - - {}", "line\n".repeat(100));
    let good = "<13>1 - h a - - - good after a big frame";
    let good2 = "<13>1 - h a - - - good after garbage";
    let stream = format!(
        "{} {inner}{} {good}junk junk\n{} {good2}",
        inner.len(),
        good.len(),
        good2.len()
    );
    conn2.write_all(stream.as_bytes()).unwrap();
    // UDP: an oversized datagram, then a good one.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        format!("<13>1 - h a - - - {}", &big[..1000]).as_bytes(),
        udp,
    )
    .unwrap();
    sock.send_to(b"<13>1 - h a - - - good udp", udp).unwrap();

    let want: Vec<String> = [
        "good after a long line",
        "good after a big frame",
        "good after garbage",
        "good udp",
    ]
    .map(String::from)
    .into();
    assert!(
        receiver.wait_for_all_lines(&want, WAIT),
        "got {:?}\n{}",
        receiver.lines(),
        agent.logs()
    );
    let url = agent.http_url();
    assert_eq!(
        metric_sum(&url, "promtail_syslog_target_parsing_errors_total"),
        2.0
    );
    assert_eq!(
        metric_sum(&url, "logferry_syslog_messages_dropped_total"),
        3.0
    );
    assert_eq!(
        agent.log_count("longer than max_message_length"),
        2,
        "once per listener"
    );

    // A connection that sends nothing is closed after idle_timeout (1s here), and the listener still
    // serves others meanwhile.
    let mut idle = TcpStream::connect(tcp).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let read = read_until_closed(&mut idle);
    let waited = start.elapsed();
    assert!(matches!(read, Ok(0)), "the agent never writes: {read:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}\n{}",
        agent.logs()
    );
    drop((conn, conn2));
}

/// Read one byte, until the peer closes (`Ok(0)`), answers, or the read times out. Other tests' children
/// end meanwhile: a signal interrupting the read is no answer, so the read is retried.
fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 1];
    loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A TLS client (rustls) for `addr`, trusting `dir/ca.crt`, presenting `dir/client.crt` if `with_cert`.
fn tls_send(addr: SocketAddr, dir: &Path, with_cert: bool, data: &[u8]) -> std::io::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_cert {
        let cert = CertificateDer::from_pem_file(dir.join("client.crt")).unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(vec![cert], key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr)?);
    tls.write_all(data)?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()?;
    // Wait for the server to close, so a refused handshake shows here.
    let mut rest = Vec::new();
    tls.sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    match tls.read_to_end(&mut rest) {
        // The agent closes without a close_notify of its own.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        other => other.map(drop),
    }
}

#[test]
fn tls_with_client_certificates() {
    let dir = TestDir::new();
    make_certs(dir.path());
    let receiver = LokiReceiver::start();
    let d = dir.path().display();
    let tls = format!("      tls_config:\n        cert_file: {d}/server.crt\n        key_file: {d}/server.key\n        ca_file: {d}/ca.crt\n");
    let agent = start_agent(&write_config(&dir, &receiver.url(), &job("tls", &tls, "")));
    let addr = listen_addr(&agent, "tls");
    assert!(
        agent.logs().contains("protocol=tls") || agent.logs().contains("protocol=\"tls\""),
        "{}",
        agent.logs()
    );

    let frames =
        ["<13>1 - h a - - - x", "<13>1 - h a - - - over tls"].map(|m| format!("{} {m}", m.len()));
    tls_send(addr, dir.path(), true, frames.concat().as_bytes()).unwrap();
    let e = entry_with(&receiver, "over tls");
    assert_eq!(e.labels, "{job=\"tls\"}");
    // Without a client certificate the handshake is refused and nothing arrives.
    let refused = tls_send(addr, dir.path(), false, b"<13>1 - h a - - - no cert\n");
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    // A plain TCP client is not served either.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"<13>1 - h a - - - plain\n").unwrap();
    drop(plain);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.lines(), ["x", "over tls"]);
}

#[test]
fn docker_syslog_log_driver_in_rfc5424() {
    common::docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let rules = "    relabel_configs:\n      - {source_labels: [__syslog_message_app_name], target_label: app}\n";
    let agent = start_agent(&write_config(
        &dir,
        &receiver.url(),
        &job("docker", "", rules),
    ));
    let addr = listen_addr(&agent, "docker");
    let containers = common::docker::Containers::new();
    let address = format!("syslog-address=tcp://{addr}");
    let opts = [
        "--log-driver=syslog",
        "--log-opt",
        &address,
        "--log-opt",
        "syslog-format=rfc5424",
        "--log-opt",
        "tag=lfdocker",
    ];
    containers.run(
        "syslog",
        &opts,
        "echo first from docker; echo second from docker",
    );
    let want = [
        "first from docker".to_owned(),
        "second from docker".to_owned(),
    ];
    assert!(
        receiver.wait_for_all_lines(&want, WAIT),
        "got {:?}\n{}",
        receiver.entries(),
        agent.logs()
    );
    let e = entry_with(&receiver, "first from docker");
    assert_eq!(e.labels, "{app=\"lfdocker\", job=\"docker\"}");
}

#[test]
fn a_port_in_use_fails_the_start_naming_the_address() {
    let dir = TestDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let jobs = format!("  - job_name: busy\n    syslog:\n      listen_address: {addr}\n      labels: {{job: busy}}\n");
    let config = write_config(&dir, "http://127.0.0.1:9/loki/api/v1/push", &jobs);
    let out = Agent::builder().config_file(&config).run(WAIT);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains(&format!("cannot listen on {addr} (tcp)"))
            && out
                .stderr
                .contains("scrape_configs[0].syslog.listen_address"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_syslog_settings_are_located_and_the_example_config_is_valid() {
    let dir = TestDir::new();
    for (syslog, want) in [
        ("      listen_protocol: sctp\n", ":7:24: scrape_configs[0].syslog.listen_protocol: invalid transport protocol \"sctp\": expected tcp or udp"),
        ("      syslog_format: rfc9999\n", ":7:22: scrape_configs[0].syslog.syslog_format: invalid syslog_format \"rfc9999\""),
        ("      listen_adress: x\n", "scrape_configs[0].syslog: unknown field \"listen_adress\""),
    ] {
        let config = dir.write_config(&format!(
            "clients:\n  - url: http://127.0.0.1:9/push\nscrape_configs:\n  - job_name: s\n    syslog:\n      listen_address: 127.0.0.1:0\n{syslog}"
        ));
        let out = Agent::builder().arg("check-config").arg(&config).run(WAIT);
        assert!(!out.status.success());
        assert!(out.stderr.contains(want), "want {want:?} in:\n{}", out.stderr);
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/syslog.yaml");
    let out = Agent::builder()
        .env("LOKI_URL", "http://127.0.0.1:3100/loki/api/v1/push")
        .arg("check-config")
        .arg(&example)
        .arg("-config.expand-env=true")
        .run(WAIT);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("Valid config file!"));
}

#[test]
fn a_reload_restarts_the_listener_on_its_port_and_a_stop_does_not_wait_for_senders() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = |job: &str| {
        format!("  - job_name: s\n    syslog:\n      listen_address: 127.0.0.1:{port}\n      labels: {{job: {job}}}\n")
    };
    let mut agent = start_agent(&write_config(&dir, &receiver.url(), &config("before")));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(listen_addr(&agent, "s"), addr);
    // A sender that stays connected over the reload.
    let mut held = TcpStream::connect(addr).unwrap();
    held.write_all(b"<13>1 - h a - - - held before\n").unwrap();
    logger(addr, &["--tcp", "--rfc5424"], "before reload");
    assert_eq!(
        entry_with(&receiver, "before reload").labels,
        "{job=\"before\"}"
    );
    assert_eq!(
        entry_with(&receiver, "held before").labels,
        "{job=\"before\"}"
    );

    write_config(&dir, &receiver.url(), &config("after"));
    agent.reload();
    assert!(
        agent.wait_for_log_count("syslog source receiving", 2, WAIT),
        "{}",
        agent.logs()
    );
    logger(addr, &["--tcp", "--rfc5424"], "after reload");
    assert_eq!(
        entry_with(&receiver, "after reload").labels,
        "{job=\"after\"}"
    );
    // The old listener closed its connections when it stopped: the sender sees it and reconnects.
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let read = read_until_closed(&mut held);
    // Closed (or reset, if it still had unread bytes); a read that times out means it stayed open.
    assert!(
        matches!(&read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the old listener left the connection open: {read:?}"
    );

    // An open connection, even one in the middle of a line, does not hold up a graceful stop; the
    // complete message before it still goes out.
    let mut open = TcpStream::connect(addr).unwrap();
    open.write_all(b"<13>1 - h a - - - last one\n<13>1 - h a - - - half")
        .unwrap();
    entry_with(&receiver, "last one");
    let started = Instant::now();
    let status = agent.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        agent.logs()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(open);
}

/// An rsyslogd of the test's own (no system daemon involved): it takes messages on a Unix socket in
/// the test dir and forwards them to `addr` over TCP, as a relay would, with `template` and `framing`.
struct Rsyslog {
    child: std::process::Child,
    socket: PathBuf,
}

impl Rsyslog {
    fn start(dir: &TestDir, addr: SocketAddr, template: &str, framing: &str) -> Rsyslog {
        let work = dir.join("rsyslog");
        std::fs::create_dir_all(&work).unwrap();
        let socket = work.join("log.sock");
        let config = work.join("rsyslog.conf");
        std::fs::write(
            &config,
            format!(
                "global(workDirectory=\"{work}\")\n\
                 module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{socket}\" CreatePath=\"on\")\n\
                 action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" \
                 template=\"{template}\" TCP_Framing=\"{framing}\")\n",
                work = work.display(),
                socket = socket.display(),
                port = addr.port(),
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&config)
            .arg("-i")
            .arg(work.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run rsyslogd (tests/setup.sh installs it)");
        let deadline = Instant::now() + WAIT;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "rsyslogd made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child, socket }
    }

    /// Log `message` as `tag` through the daemon's socket, with util-linux `logger`.
    fn log(&self, tag: &str, message: &str) {
        let out = Command::new("logger")
            .arg("--socket")
            .arg(&self.socket)
            .args(["--tag", tag, "--priority", "local3.warning", message])
            .output()
            .expect("run logger");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rsyslog_forwarding_in_rfc5424_with_octet_counting_and_in_rfc3164() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let rules = "    relabel_configs:\n      \
                 - {source_labels: [__syslog_message_app_name], target_label: app}\n      \
                 - {source_labels: [__syslog_message_severity], target_label: severity}\n      \
                 - {source_labels: [__syslog_message_facility], target_label: facility}\n";
    let jobs = format!(
        "{}{}",
        job("r5424", "", rules),
        job("r3164", "      syslog_format: rfc3164\n", rules)
    );
    let agent = start_agent(&write_config(&dir, &receiver.url(), &jobs));
    let (modern_dir, legacy_dir) = (TestDir::new(), TestDir::new());
    let modern = Rsyslog::start(
        &modern_dir,
        listen_addr(&agent, "r5424"),
        "RSYSLOG_SyslogProtocol23Format",
        "octet-counted",
    );
    let legacy = Rsyslog::start(
        &legacy_dir,
        listen_addr(&agent, "r3164"),
        "RSYSLOG_TraditionalForwardFormat",
        "traditional",
    );
    for i in 0..50 {
        modern.log("relayed", &format!("rfc5424 via rsyslog {i}"));
        legacy.log("legacy", &format!("rfc3164 via rsyslog {i}"));
    }
    // rsyslog's RFC 5424 template writes MSG with a leading space and a newline inside the counted
    // frame; the line keeps both, as Promtail ships MSG as it is.
    let mut want: Vec<String> = (0..50)
        .map(|i| format!(" rfc5424 via rsyslog {i}\n"))
        .collect();
    want.extend((0..50).map(|i| format!("rfc3164 via rsyslog {i}")));
    assert!(
        receiver.wait_for_all_lines(&want, WAIT),
        "got {:?}\n{}",
        receiver.lines(),
        agent.logs()
    );
    let e = entry_with(&receiver, " rfc5424 via rsyslog 7\n");
    assert_eq!(
        e.labels,
        "{app=\"relayed\", facility=\"local3\", job=\"r5424\", severity=\"warning\"}"
    );
    let e = entry_with(&receiver, "rfc3164 via rsyslog 7");
    assert_eq!(
        e.labels,
        "{app=\"legacy\", facility=\"local3\", job=\"r3164\", severity=\"warning\"}"
    );
    assert_eq!(receiver.lines().len(), 100, "each message once");
}
