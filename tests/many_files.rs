//! A thousand files tailed at once: every line of every file arrives, an append to any one of them is
//! noticed through inotify, and the idle agent does not spin (no busy polling).

mod common;

use std::time::Duration;

use common::fixtures::{start_agent, TestConfig};
use common::{append_lines, count_loss, LokiReceiver, TestDir};

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
}

#[test]
fn a_thousand_files_at_once_then_idle() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let mut expected = Vec::new();
    for f in 0..1000 {
        let lines: Vec<String> = (0..3).map(|i| format!("file{f:04} line{i}")).collect();
        append_lines(dir.join(format!("logs/f{f:04}.log")), &lines);
        expected.extend(lines);
    }
    let agent = start_agent(&config);
    assert!(
        receiver.wait_for_lines(expected.len(), Duration::from_secs(60)),
        "got {} of {} lines; logs:\n{}",
        receiver.lines().len(),
        expected.len(),
        agent.logs()
    );
    let counts = count_loss(&expected, &receiver.lines());
    assert!(counts.is_exact(), "{counts:?}");
    let streams: std::collections::HashSet<String> =
        receiver.entries().into_iter().map(|e| e.labels).collect();
    assert_eq!(streams.len(), 1000, "one stream per file");

    // Idle: a thousand open files and nothing to read must not keep a core busy. Generous bound
    // (0.5 CPU-s over 5 s, i.e. 10%) so a loaded CI machine does not flake; busy polling of 1,000
    // files every 250 ms would exceed it.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_seconds(agent.pid());
    std::thread::sleep(Duration::from_secs(5));
    let idle = cpu_seconds(agent.pid()) - before;
    assert!(idle < 0.5, "idle agent used {idle:.2} CPU-s in 5 s");

    // An append to one of them is noticed (inotify, or the safety poll) and shipped.
    append_lines(dir.join("logs/f0500.log"), &["file0500 appended"]);
    assert!(receiver.wait_for_lines(expected.len() + 1, Duration::from_secs(15)));
    assert_eq!(
        receiver.line_counts().get("file0500 appended"),
        Some(&1),
        "the appended line arrives once"
    );
}
