//! A low open files limit: more log files than descriptors, and HTTP clients that hold connections
//! open, must neither lose nor repeat a line. Running out of descriptors is "cannot open now", not
//! "the file is gone" (which forgot the position and read the file again from 0), and the HTTP
//! server closes idle and trickling connections and serves only so many at once.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::fixtures::TestConfig;
use common::http::{get, metric_sum};
use common::{append_lines, count_loss, Agent, LokiReceiver, TestDir};

/// The agent's limit in these tests: 300 files do not fit.
const NOFILE: u64 = 128;

fn start_limited(config: &std::path::Path) -> Agent {
    let agent = Agent::builder()
        .config_file(config)
        .max_open_files(NOFILE)
        .spawn();
    assert!(
        agent.wait_for_log("logferry started", Duration::from_secs(30)),
        "the agent did not start; logs:\n{}",
        agent.logs()
    );
    agent
}

/// Writes `files` files of `lines` lines each under `logs/`; returns every line.
fn write_files(dir: &TestDir, files: usize, lines: usize, tag: &str) -> Vec<String> {
    let mut expected = Vec::new();
    for f in 0..files {
        let text: Vec<String> = (0..lines).map(|i| format!("{tag} f{f:03} l{i}")).collect();
        append_lines(dir.join(format!("logs/f{f:03}.log")), &text);
        expected.extend(text);
    }
    expected
}

fn assert_exactly_once(receiver: &LokiReceiver, expected: &[String], agent: &Agent) {
    let all_arrived = receiver.wait_for_lines(expected.len(), Duration::from_secs(60));
    // Once nothing is left in the buffers, nothing can be sent again: what arrived is final.
    assert!(agent.wait_until_buffers_empty(Duration::from_secs(60)));
    let counts = count_loss(expected, &receiver.lines());
    assert!(
        all_arrived && counts.is_exact(),
        "{counts:?} ({} of {} lines); logs:\n{}",
        receiver.lines().len(),
        expected.len(),
        agent.logs()
    );
    assert_eq!(
        agent.log_count("rotated away"),
        0,
        "no file is taken as gone; logs:\n{}",
        agent.logs()
    );
}

/// An idle connection: connected, nothing sent.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// Whether the server closed `s` (EOF or reset), after reading any answer it sent.
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn more_files_than_descriptors_are_read_exactly_once() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let mut expected = write_files(&dir, 300, 10, "first");
    let agent = start_limited(&config);
    assert_exactly_once(&receiver, &expected, &agent);

    // Most files were closed to let the others in; each is opened again by identity when it grows
    // and goes on where it stopped.
    for f in 0..300 {
        let line = format!("second f{f:03}");
        append_lines(dir.join(format!("logs/f{f:03}.log")), &[&line]);
        expected.push(line);
    }
    assert_exactly_once(&receiver, &expected, &agent);

    let base = agent.http_url();
    let open = metric_sum(&base, "logferry_files_open");
    let limit = metric_sum(&base, "logferry_files_open_limit");
    assert!(limit > 0.0 && limit < NOFILE as f64, "budget {limit}");
    assert!(open <= limit, "{open} files open, budget {limit}");
    // The budget, not luck, kept them in: no open or listing ever ran out of descriptors.
    let exhausted = metric_sum(&base, "logferry_descriptors_exhausted_total");
    assert_eq!(exhausted, 0.0, "{}", agent.logs());
}

#[test]
fn idle_http_connections_use_up_no_descriptors() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .server_yaml("  http_server_read_header_timeout: 1s\n")
        .write(&dir);
    let agent = start_limited(&config);
    let addr = agent.http_addr();
    // Far more idle connections than the agent has descriptors to spare.
    let mut idle: Vec<TcpStream> = (0..64).map(|_| connect(addr)).collect();
    let expected = write_files(&dir, 200, 5, "busy");
    assert_exactly_once(&receiver, &expected, &agent);

    // Every idle connection is closed after the timeout, those queued behind the cap too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open: Vec<&mut TcpStream> = idle.iter_mut().collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed(s));
    }
    assert!(
        open.is_empty(),
        "{} idle connections still open",
        open.len()
    );
    let page = get(&format!("{}/metrics", agent.http_url()))
        .expect("the server still answers")
        .text();
    assert!(page.contains("logferry_http_connections_limit 8"), "{page}");
}

#[test]
fn idle_and_trickling_connections_are_closed_and_capped() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .server_yaml("  http_server_read_header_timeout: 1s\n  http_listen_conn_limit: 3\n")
        .write(&dir);
    let agent = common::start_agent(&config);
    let addr = agent.http_addr();

    // A keep-alive connection idle after its request is closed after the timeout.
    let mut keep_alive = connect(addr);
    keep_alive
        .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // A client sending its request head a byte at a time, never finishing it.
    let mut trickle = connect(addr);
    trickle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    // The third slot: an idle connection. A fourth connection waits until one is closed.
    let mut idle = connect(addr);
    let started = Instant::now();
    let waiting = std::thread::spawn(move || {
        let sent = Instant::now();
        let page = get(&format!("http://{addr}/metrics")).map(|r| r.text());
        (sent.elapsed(), page)
    });

    let mut trickle_alive = true;
    let (mut keep_alive_closed, mut idle_closed) = (false, false);
    while started.elapsed() < Duration::from_secs(10)
        && (trickle_alive || !keep_alive_closed || !idle_closed)
    {
        if trickle_alive {
            trickle_alive = trickle.write_all(b"X").is_ok() && !closed(&mut trickle);
        }
        keep_alive_closed = keep_alive_closed || closed(&mut keep_alive);
        idle_closed = idle_closed || closed(&mut idle);
    }
    let elapsed = started.elapsed();
    assert!(
        !trickle_alive && keep_alive_closed && idle_closed,
        "after {elapsed:?}: trickling open {trickle_alive}, keep-alive closed {keep_alive_closed}, \
         idle closed {idle_closed}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");

    let (waited, page) = waiting.join().unwrap();
    let page = page.expect("the queued request is served");
    assert!(
        waited >= Duration::from_millis(500),
        "served at once ({waited:?}) though the 3 slots were taken"
    );
    assert!(page.contains("logferry_http_connections_limit 3"), "{page}");
}
