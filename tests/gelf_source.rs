//! End to end, GELF over UDP to Loki through the real binary: the Docker engine's `gelf` log driver
//! with each compression type, a chunked message made here (gzip, chunks out of order and interleaved
//! with another message), an incomplete one given up after 5 s, malformed datagrams counted.

mod common;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use common::http::{metric_sum, wait_for_metric};
use common::{start_agent, Agent, LokiReceiver, ReceivedEntry, TestDir};

const WAIT: Duration = Duration::from_secs(30);

const RULES: &str = "    relabel_configs:
      - {source_labels: [__gelf_message_level], target_label: level}
      - {source_labels: [__gelf_message_host], target_label: host}
      - {source_labels: [__gelf_message_version], target_label: version}
      - {source_labels: [__gelf_message_facility], target_label: facility}
";

fn write_config(dir: &TestDir, url: &str, gelf_yaml: &str) -> PathBuf {
    let root = dir.path().display();
    dir.write_config(&format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n\
         positions:\n  filename: {root}/positions.yaml\n\
         clients:\n  - url: {url}\n    batchwait: 100ms\n\
         scrape_configs:\n  - job_name: gelf\n    gelf:\n      listen_address: 127.0.0.1:0\n      labels: {{job: gelf}}\n{gelf_yaml}{RULES}"
    ))
}

/// The address from the `gelf source receiving` log line.
fn listen_addr(agent: &Agent) -> SocketAddr {
    agent.logged_address(|l| l.contains("gelf source receiving"))
}

fn entry_containing(receiver: &LokiReceiver, needle: &str) -> ReceivedEntry {
    let ok = receiver.wait_until(|r| r.entries.iter().any(|e| e.line.contains(needle)), WAIT);
    assert!(ok, "no line with {needle:?}; got {:?}", receiver.entries());
    receiver
        .entries()
        .into_iter()
        .find(|e| e.line.contains(needle))
        .unwrap()
}

#[test]
fn docker_gelf_driver_with_every_compression_type() {
    common::docker::require();
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let agent = start_agent(&write_config(&dir, &receiver.url(), ""));
    let addr = listen_addr(&agent);
    let containers = common::docker::Containers::new();
    let address = format!("gelf-address=udp://{addr}");
    for kind in ["none", "gzip", "zlib"] {
        let compression = format!("gelf-compression-type={kind}");
        let opts = [
            "--log-driver=gelf",
            "--log-opt",
            &address,
            "--log-opt",
            &compression,
        ];
        containers.run(
            kind,
            &opts,
            &format!("echo out-{kind}; echo err-{kind} >&2"),
        );
    }
    for kind in ["none", "gzip", "zlib"] {
        let out = entry_containing(&receiver, &format!("\"short_message\":\"out-{kind}\""));
        let host = out
            .labels
            .split("host=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(!host.is_empty());
        assert_eq!(
            out.labels,
            format!("{{host=\"{host}\", job=\"gelf\", level=\"informational\", version=\"1.1\"}}")
        );
        let json: serde_json::Value = serde_json::from_str(&out.line).unwrap();
        let name = containers.name(kind);
        assert_eq!(json["_container_name"], name.as_str(), "{}", out.line);
        assert!(
            out.line.starts_with("{\"version\":\"1.1\",\"host\":"),
            "{}",
            out.line
        );
        let err = entry_containing(&receiver, &format!("\"short_message\":\"err-{kind}\""));
        assert!(err.labels.contains("level=\"error\""), "{}", err.labels);
    }
    assert_eq!(
        metric_sum(&agent.http_url(), "promtail_gelf_target_entries_total"),
        6.0
    );
    assert_eq!(
        metric_sum(
            &agent.http_url(),
            "promtail_gelf_target_parsing_errors_total"
        ),
        0.0
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// GELF chunks (magic, 8-byte id, sequence, count) of `payload`, `size` bytes each.
fn chunks(id: u64, payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let parts: Vec<&[u8]> = payload.chunks(size).collect();
    parts
        .iter()
        .enumerate()
        .map(|(seq, part)| {
            let mut d = vec![0x1e, 0x0f];
            d.extend_from_slice(&id.to_be_bytes());
            d.extend_from_slice(&[seq as u8, parts.len() as u8]);
            d.extend_from_slice(part);
            d
        })
        .collect()
}

#[test]
fn chunked_compressed_and_malformed_datagrams() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let agent = start_agent(&write_config(
        &dir,
        &receiver.url(),
        "      use_incoming_timestamp: true\n",
    ));
    let addr = listen_addr(&agent);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |d: &[u8]| {
        sock.send_to(d, addr).unwrap();
    };

    // A message too big for one datagram: 40 kB of text (incompressible enough), gzip, 1 kB chunks,
    // sent last chunk first, interleaved with a small chunked one.
    let mut rng = 0x2545f4914f6cdd1d_u64;
    let text: String = (0..40_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            char::from(b'a' + (rng % 26) as u8)
        })
        .collect();
    let big = format!(
        r#"{{"version":"1.1","host":"sender","short_message":"big","full_message":"{text}","timestamp":1770037200.5,"level":4,"facility":"test","_n":3}}"#
    );
    let big_chunks = chunks(7, &gzip(big.as_bytes()), 1000);
    assert!(
        big_chunks.len() > 20 && big_chunks.len() <= 128,
        "{}",
        big_chunks.len()
    );
    let small = br#"{"version":"1.1","host":"sender","short_message":"small","level":6}"#;
    let small_chunks = chunks(8, small, 20);
    for (i, c) in big_chunks.iter().rev().enumerate() {
        send(c);
        if let Some(s) = small_chunks.get(i) {
            send(s);
        }
    }
    // Malformed: not JSON, a wrong type, a chunk count over 128.
    send(b"this is not gelf");
    send(br#"{"version":"1.1","host":5,"short_message":"bad"}"#);
    let mut bad = chunks(9, b"xx", 1)[0].clone();
    bad[11] = 200;
    send(&bad);
    // Half a chunked message: given up after 5 s.
    send(&chunks(10, small, 20)[0]);

    let e = entry_containing(&receiver, "\"short_message\":\"big\"");
    assert_eq!(
        e.labels,
        "{facility=\"test\", host=\"sender\", job=\"gelf\", level=\"warning\", version=\"1.1\"}"
    );
    assert_eq!(
        e.timestamp_ns, 1_770_037_200_500_000_000,
        "use_incoming_timestamp"
    );
    assert_eq!(
        e.line,
        format!(
            r#"{{"version":"1.1","host":"sender","short_message":"big","full_message":"{text}","timestamp":1770037200.5,"level":4,"facility":"test","_n":3}}"#
        )
    );
    let s = entry_containing(&receiver, "\"short_message\":\"small\"");
    assert_eq!(
        s.line,
        r#"{"version":"1.1","host":"sender","short_message":"small","timestamp":0,"level":6}"#
    );
    assert!(
        s.timestamp_ns > 1_770_037_200_500_000_000,
        "no timestamp: the arrival time"
    );
    let url = agent.http_url();
    assert!(wait_for_metric(
        &url,
        "promtail_gelf_target_parsing_errors_total",
        WAIT,
        |v| v == 3.0
    ));
    assert!(wait_for_metric(
        &url,
        "logferry_gelf_messages_dropped_total",
        Duration::from_secs(15),
        |v| v == 1.0
    ));
    assert_eq!(receiver.entries().len(), 2);
    assert_eq!(
        agent.log_count("error while reading GELF message"),
        3,
        "once per kind"
    );

    // /targets: the listener, with the whole messages it received (the four that were complete,
    // whether they decoded or not) and the bytes of every datagram.
    let targets = common::http::get(&format!("{url}/targets?format=json"))
        .unwrap()
        .text();
    let json: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let row = &json["targets"][0];
    let name = format!("udp://{addr}");
    assert_eq!(row["kind"], "gelf", "{targets}");
    assert_eq!(row["name"], name.as_str(), "{targets}");
    assert_eq!(row["read_entries"], 4, "{targets}");
    assert!(row["read_bytes"].as_u64().unwrap() > 20_000, "{targets}");
}

#[test]
fn the_example_config_is_valid_and_a_port_in_use_fails_the_start() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gelf.yaml");
    let out = Agent::builder()
        .env("LOKI_URL", "http://127.0.0.1:3100/loki/api/v1/push")
        .arg("check-config")
        .arg(&example)
        .arg("-config.expand-env=true")
        .run(WAIT);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("Valid config file!"));

    let dir = TestDir::new();
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = write_config(&dir, "http://127.0.0.1:9/loki/api/v1/push", "")
        .to_string_lossy()
        .into_owned();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "listen_address: 127.0.0.1:0",
        &format!("listen_address: {addr}"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let out = Agent::builder().config_file(&config).run(WAIT);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains(&format!("cannot listen on {addr} (udp)"))
            && out.stderr.contains("scrape_configs[0].gelf.listen_address"),
        "{}",
        out.stderr
    );
}
