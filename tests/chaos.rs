//! The disk buffer's promise, proven against the real binary: SIGKILL at random moments, a long
//! receiver outage, a full buffer, a damaged buffer and a full disk lose nothing that was
//! acknowledged, and the agent never stops running or needs a human.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::http::{metric_sum, wait_for_metric};
use common::process;
use common::{count_loss, start_agent, Agent, LokiReceiver, TestConfig, TestDir};

const WAIT: Duration = Duration::from_secs(60);

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        eprintln!("chaos seed {seed} (set CHAOS_SEED to replay)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Line `n` of `prefix`, padded with `pad` characters that do not compress: the buffer stores
/// requests compressed, and these tests fill buffers and disks by the lines' size.
fn line(prefix: &str, n: usize, pad: usize) -> String {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let pad: String = (0..pad)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            CHARS[(x % 64) as usize] as char
        })
        .collect();
    format!("{prefix}-{n:08} {pad}")
}

/// The sequence number of a line made by [`line`].
fn seq_of(line: &str) -> Option<(String, usize)> {
    let (prefix, rest) = line.split_once('-')?;
    Some((prefix.to_owned(), rest.get(..8)?.parse().ok()?))
}

/// Writes numbered lines to `logs/app.log` until stopped, rotating it (rename to `app.log.<k>`, a
/// name the glob still matches, so rotated lines are read even when the agent was down) every
/// `rotate_every` lines.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<usize>>,
}

impl Writer {
    fn start(logs: PathBuf, per_tick: usize, rotate_every: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut n, mut rotation) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                let batch: Vec<String> = (n..n + per_tick).map(|i| line("w", i, 40)).collect();
                common::append_lines(logs.join("app.log"), &batch);
                n += per_tick;
                if n % rotate_every < per_tick {
                    rotation += 1;
                    let to = logs.join(format!("app.log.{rotation}"));
                    fs::rename(logs.join("app.log"), to).unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops writing; returns how many lines were written.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// (a) SIGKILL at random moments while files are written and rotated, 50 times: every line arrives,
/// nothing unexpected, and duplicates stay within what was in flight at each kill.
#[test]
fn fifty_sigkills_while_writing_and_rotating_lose_nothing() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    let config = TestConfig::new(receiver.url())
        .glob("logs/app.log*")
        .write(&dir);
    let mut rng = Rng::from_time();
    let writer = Writer::start(dir.join("logs"), 5, 3000);
    let started = Instant::now();
    let kills = 50;
    for _ in 0..kills {
        let mut agent = start_agent(&config);
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        agent.kill();
    }
    let written = writer.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..written).map(|i| line("w", i, 40)).collect();
    let all = receiver.wait_for_all_lines(&expected, Duration::from_secs(120));
    let counts = count_loss(&expected, &receiver.lines());
    let rate = written as f64 / elapsed;
    eprintln!(
        "{kills} kills, {written} lines in {elapsed:.1}s ({rate:.0} lines/s): lost {}, duplicated {} ({:.0} per kill)",
        counts.lost,
        counts.duplicated,
        counts.duplicated as f64 / kills as f64
    );
    assert!(all, "lines lost after {kills} SIGKILLs: {counts:?}");
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    // In flight at a kill: batches appended to the buffer whose positions were not saved yet, i.e.
    // at most one fsync_interval (500 ms) plus the 50 ms save delay, and the pushes sent but not
    // yet recorded in the ledger. One second of writing per kill bounds all of that.
    let bound = (rate * 1.0) as usize * kills;
    assert!(
        counts.duplicated <= bound,
        "duplicates beyond the in-flight bound: {counts:?} > {bound}"
    );
    agent.terminate(WAIT);
}

/// (b) The receiver is down while 200 MB is written, then comes back: everything arrives, in order
/// within each stream, and the agent's memory stays bounded because the backlog waits on disk.
#[test]
fn a_long_outage_of_200_mb_waits_on_disk_with_bounded_memory() {
    /// Peak RSS allowed: the sink's batches and queue (a few MiB), the buffer's cache (8 MiB) and
    /// the allocator's slack, nowhere near the 200 MB backlog.
    const RSS_CEILING_MIB: u64 = 96;
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.set_count_only(false);
    receiver.stop();
    let config = TestConfig::new(receiver.url()).write(&dir);
    let mut agent = start_agent(&config);
    let (files, per_file, pad) = (4, 250_000, 200);
    let mut expected = Vec::with_capacity(files * per_file);
    let start = Instant::now();
    for chunk in 0..50 {
        for f in 0..files {
            let prefix = format!("f{f}");
            let lines: Vec<String> = (chunk * per_file / 50..(chunk + 1) * per_file / 50)
                .map(|i| line(&prefix, i, pad))
                .collect();
            common::append_lines(dir.join(format!("logs/f{f}.log")), &lines);
            expected.extend(lines);
        }
    }
    let bytes: u64 = (0..files)
        .map(|f| {
            fs::metadata(dir.join(format!("logs/f{f}.log")))
                .unwrap()
                .len()
        })
        .sum();
    assert!(bytes >= 200_000_000, "wrote {bytes} bytes");
    // Everything read and durable in the buffer while the receiver is still down.
    let base = agent.http_url();
    let long = Duration::from_secs(180);
    assert!(
        wait_for_metric(&base, "promtail_read_bytes_total", long, |v| v
            >= bytes as f64),
        "the agent did not read the backlog"
    );
    assert!(
        wait_for_metric(&base, "logferry_buffer_bytes", long, |v| v
            >= bytes as f64 * 0.95),
        "the backlog did not reach the buffer"
    );
    let buffered = metric_sum(&base, "logferry_buffer_bytes");
    eprintln!(
        "200 MB read into the buffer in {:.1}s; buffer holds {:.0} MiB",
        start.elapsed().as_secs_f64(),
        buffered / 1048576.0
    );
    receiver.start_again();
    assert!(
        receiver.wait_for_lines(expected.len(), Duration::from_secs(300)),
        "only {} of {} arrived",
        receiver.stats().entries,
        expected.len()
    );
    let peak = process::peak_rss_mib(agent.pid()) as u64;
    eprintln!("peak RSS {peak} MiB (ceiling {RSS_CEILING_MIB} MiB)");
    let received = receiver.lines();
    let counts = count_loss(&expected, &received);
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    // In order within each stream (first arrivals; a retried push may repeat a stretch).
    let mut last: HashMap<String, usize> = HashMap::new();
    for l in &received {
        let (prefix, n) = seq_of(l).expect("a numbered line");
        let prev = last.entry(prefix.clone()).or_insert(0);
        if n > *prev || (n == 0 && *prev == 0) {
            assert!(
                n == 0 || n == *prev + 1,
                "{prefix}: line {n} arrived after {prev}: out of order"
            );
            *prev = n;
        }
    }
    assert!(
        peak <= RSS_CEILING_MIB,
        "peak RSS {peak} MiB above {RSS_CEILING_MIB} MiB"
    );
    agent.terminate(WAIT);
}

/// (c) A full buffer with `when_full: block` holds the sources back (the file is not read past the
/// limit), says so once in the log and in /metrics, and everything flows once the receiver is back.
#[test]
fn a_full_buffer_blocks_the_sources_and_they_resume() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .client_yaml("    buffer: {max_size: 1MB, segment_size: 64KB}\n")
        .write(&dir);
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..300_000).map(|i| line("c", i, 60)).collect();
    for chunk in expected.chunks(30_000) {
        common::append_lines(dir.join("logs/app.log"), chunk);
    }
    let size = fs::metadata(dir.join("logs/app.log")).unwrap().len() as f64;
    assert!(agent.wait_for_log("buffer full: pausing the sources", WAIT));
    let base = agent.http_url();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(metric_sum(&base, "logferry_buffer_full"), 1.0);
    let read = metric_sum(&base, "promtail_read_bytes_total");
    assert!(
        read < size / 2.0,
        "read {read} of {size} bytes with a 1MB buffer"
    );
    // The limit is checked before a batch goes in, so it can be passed by at most one batch (one
    // read chunk of 512 KiB, a little more encoded).
    let held = metric_sum(&base, "logferry_buffer_bytes");
    assert!(held <= (1024.0 + 640.0) * 1024.0, "{held} bytes held");
    receiver.start_again();
    assert!(
        receiver.wait_for_lines(expected.len(), WAIT),
        "{} of {}",
        receiver.stats().entries,
        expected.len()
    );
    let counts = count_loss(&expected, &receiver.lines());
    assert!(counts.is_exact(), "{counts:?}");
    assert_eq!(metric_sum(&base, "logferry_buffer_full"), 0.0);
    assert!(agent.wait_for_log("buffer has room again", WAIT));
    assert_eq!(
        agent.log_count("buffer full: pausing the sources"),
        1,
        "logged once while full"
    );
    agent.terminate(WAIT);
}

/// SIGTERM while a full buffer holds a source back and the receiver is down: the agent still stops
/// within `graceful_shutdown_timeout`, and nothing is lost across the restart.
#[test]
fn shutdown_with_a_full_buffer_and_the_receiver_down_is_bounded() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .server_yaml("  graceful_shutdown_timeout: 2s\n")
        .client_yaml("    buffer: {max_size: 1MB, segment_size: 64KB}\n")
        .write(&dir);
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..100_000).map(|i| line("s", i, 60)).collect();
    common::append_lines(dir.join("logs/app.log"), &expected);
    assert!(agent.wait_for_log("buffer full: pausing the sources", WAIT));
    let t0 = Instant::now();
    let status = agent.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit after SIGTERM: {status:?}\n{}",
        agent.logs()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
    receiver.start_again();
    let mut agent = start_agent(&config);
    assert!(
        receiver.wait_for_lines(expected.len(), WAIT),
        "{} of {}",
        receiver.stats().entries,
        expected.len()
    );
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    agent.terminate(WAIT);
}

/// `when_full: drop_newest` drops what does not fit and counts it; nothing is dropped silently.
#[test]
fn drop_newest_drops_and_counts() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .client_yaml("    buffer: {max_size: 128KB, segment_size: 64KB, when_full: drop_newest}\n")
        .write(&dir);
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..20_000).map(|i| line("d", i, 60)).collect();
    common::append_lines(dir.join("logs/app.log"), &expected);
    let base = agent.http_url();
    assert!(
        wait_for_metric(&base, "logferry_buffer_dropped_entries_total", WAIT, |v| v
            > 0.0),
        "nothing counted as dropped"
    );
    assert!(agent.wait_for_log("dropping new batches", WAIT));
    let size = fs::metadata(dir.join("logs/app.log")).unwrap().len() as f64;
    assert!(
        wait_for_metric(&base, "promtail_read_bytes_total", WAIT, |v| v >= size),
        "the file was not read to its end"
    );
    let dropped = metric_sum(&base, "logferry_buffer_dropped_entries_total") as usize;
    receiver.start_again();
    let kept = expected.len() - dropped;
    assert!(receiver.wait_for_lines(kept, WAIT), "{dropped} dropped");
    assert!(agent.wait_until_buffers_empty(WAIT));
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!(
        (counts.lost, counts.duplicated, counts.unexpected),
        (dropped, 0, 0),
        "what did not arrive is exactly what was counted as dropped"
    );
    agent.terminate(WAIT);
}

/// Waits until the agent's buffer holds `records` or more and their positions are saved, then kills it.
fn fill_buffer_then_kill(agent: &mut Agent, dir: &TestDir, min_records: f64) {
    let base = agent.http_url();
    assert!(
        wait_for_metric(&base, "logferry_buffer_records", WAIT, |v| v >= min_records),
        "the buffer did not fill"
    );
    // Positions are saved ~50 ms after a batch is durable (fsync_interval 500 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let positions = fs::read_to_string(dir.join("positions.yaml")).unwrap_or_default();
    assert!(
        positions.contains("app.log"),
        "positions saved: {positions}"
    );
    agent.kill();
}

fn segments(buffer: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(buffer)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// (d) Segments damaged while the agent was down (bytes flipped in one, the newest truncated
/// mid-record): the agent starts, ships everything else, and reports what was lost.
#[test]
fn a_damaged_buffer_is_repaired_and_the_loss_reported() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let buffer = dir.join("buffer-d");
    let config = TestConfig::new(receiver.url())
        .client_yaml(&format!(
            "    batchsize: 4096\n    buffer: {{path: {}, segment_size: 16KB}}\n",
            buffer.display()
        ))
        .write(&dir);
    let mut agent = start_agent(&config);
    // Small appends, each read before the next, and small requests (a record is one request): many
    // small records across many segments, however slow the machine.
    let mut expected = Vec::new();
    let base = agent.http_url();
    for k in 0..40 {
        let lines: Vec<String> = (k * 100..(k + 1) * 100).map(|i| line("g", i, 40)).collect();
        common::append_lines(dir.join("logs/app.log"), &lines);
        expected.extend(lines);
        let size = fs::metadata(dir.join("logs/app.log")).unwrap().len() as f64;
        assert!(wait_for_metric(
            &base,
            "promtail_read_bytes_total",
            WAIT,
            |v| v >= size
        ));
    }
    fill_buffer_then_kill(&mut agent, &dir, 10.0);
    let segs = segments(&buffer);
    assert!(segs.len() >= 3, "{} segments", segs.len());
    // Flip bytes in the middle of the second segment.
    let mut data = fs::read(&segs[1]).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 8] {
        *b ^= 0x5a;
    }
    fs::write(&segs[1], &data).unwrap();
    // Truncate the newest segment in the middle of its last record.
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    receiver.start_again();
    let mut agent = start_agent(&config);
    let base = agent.http_url();
    // Damage is met on the way, and the buffer is drained past it.
    let drained = wait_for_metric(&base, "logferry_buffer_damaged_records_total", WAIT, |v| {
        v > 0.0
    }) && wait_for_metric(&base, "logferry_buffer_records", WAIT, |v| v == 0.0);
    assert!(
        drained,
        "the buffer was not drained; logs:\n{}",
        agent.logs()
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    let counts = count_loss(&expected, &receiver.lines());
    let damaged = metric_sum(&base, "logferry_buffer_damaged_records_total");
    let torn = metric_sum(&base, "logferry_buffer_torn_bytes_total");
    eprintln!("damaged records {damaged}, torn bytes {torn}, {counts:?}");
    assert!(agent.wait_for_log("damaged records skipped", WAIT));
    // The newest segment was cut below what had been made durable: lost, not torn (its lines'
    // positions were committed, so they are not read again).
    assert!(
        agent.log_count("shorter than what had been made durable") == 1 && torn == 0.0,
        "the cut newest segment is reported as a loss"
    );
    assert!(metric_sum(&base, "logferry_buffer_dropped_entries_total") > 0.0);
    assert!(damaged >= 1.0);
    assert_eq!(counts.unexpected, 0);
    assert!(
        counts.lost > 0 && counts.lost < expected.len() / 4,
        "only the damaged records are lost: {counts:?}"
    );
    // And the agent goes on: new lines flow.
    let more: Vec<String> = (0..100).map(|i| line("h", i, 10)).collect();
    common::append_lines(dir.join("logs/app.log"), &more);
    assert!(receiver.wait_until(|r| r.entries.iter().any(|e| e.line == more[99]), WAIT));
    agent.terminate(WAIT);
}

/// A tmpfs of a fixed size, unmounted on drop. The tests on one use requests of 256 KiB
/// (`batchsize`): the buffer stores one request per record, and a record must fit on the disk.
struct TinyFs(PathBuf);

impl TinyFs {
    fn mount(at: PathBuf, size: &str) -> Self {
        fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk and needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyFs(at)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// (e) The buffer's disk fills up (a 1 MiB tmpfs): the agent keeps running, says so, pauses, and
/// once space is freed everything arrives; nothing acknowledged is lost.
#[test]
fn a_full_disk_pauses_writing_and_nothing_is_lost() {
    let dir = TestDir::new();
    let tiny = TinyFs::mount(dir.join("tiny"), "1m");
    let buffer = tiny.0.join("buffer");
    // Leave about 300 KiB free.
    fs::write(tiny.0.join("ballast"), vec![0u8; 700 * 1024]).unwrap();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .client_yaml(&format!(
            "    batchsize: 262144\n    buffer: {{path: {}, segment_size: 64KB}}\n",
            buffer.display()
        ))
        .write(&dir);
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..30_000).map(|i| line("e", i, 60)).collect();
    for chunk in expected.chunks(3000) {
        common::append_lines(dir.join("logs/app.log"), chunk);
    }
    assert!(
        agent.wait_for_log("buffer: cannot write", WAIT),
        "no full-disk error logged:\n{}",
        agent.logs()
    );
    let base = agent.http_url();
    std::thread::sleep(Duration::from_secs(1));
    assert!(agent.is_running(), "the agent exited on a full disk");
    assert!(metric_sum(&base, "logferry_buffer_io_errors_total") >= 1.0);
    // Free space; the receiver comes back.
    fs::remove_file(tiny.0.join("ballast")).unwrap();
    receiver.start_again();
    let all = receiver.wait_for_lines(expected.len(), WAIT);
    let listing: Vec<String> = fs::read_dir(&buffer)
        .unwrap()
        .flatten()
        .map(|e| format!("{:?} {}", e.file_name(), e.metadata().unwrap().len()))
        .collect();
    assert!(
        all,
        "{} of {}; buffer: {listing:?}; metrics: {}",
        receiver.stats().entries,
        expected.len(),
        common::http::get(&format!("{base}/metrics"))
            .unwrap()
            .text()
            .lines()
            .filter(|l| l.starts_with("logferry_buffer"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(agent.wait_for_log("buffer: writing works again", WAIT));
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    agent.terminate(WAIT);
    drop(tiny);
}

/// A disk smaller than one segment (a 1 MiB tmpfs; segments are 16 MiB by default), as on a small
/// volume: filled while the receiver is down, the agent says so (`logferry_ready` 0), ships the whole
/// backlog once the receiver is back, and then writes again. The segment being written is all
/// accepted by then: it must be recycled, or every append fails for good. With the receiver up,
/// more than the disk holds goes through the same way.
#[test]
fn a_disk_smaller_than_a_segment_fills_and_shipping_goes_on() {
    let dir = TestDir::new();
    let tiny = TinyFs::mount(dir.join("tiny"), "1m");
    let buffer = tiny.0.join("buffer");
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .client_yaml(&format!(
            "    batchsize: 262144\n    buffer: {{path: {}}}\n",
            buffer.display()
        ))
        .write(&dir);
    let agent = start_agent(&config);
    let base = agent.http_url();
    assert!(wait_for_metric(&base, "logferry_ready", WAIT, |v| v == 1.0));
    let expected: Vec<String> = (0..30_000).map(|i| line("f", i, 60)).collect();
    for chunk in expected.chunks(3000) {
        common::append_lines(dir.join("logs/app.log"), chunk);
    }
    assert!(
        agent.wait_for_log("buffer: cannot write", WAIT),
        "the disk did not fill:\n{}",
        agent.logs()
    );
    assert!(
        wait_for_metric(&base, "logferry_ready", WAIT, |v| v == 0.0),
        "logferry_ready stays 1 while the buffer cannot write"
    );
    receiver.start_again();
    assert!(
        receiver.wait_for_lines(expected.len(), WAIT),
        "{} of {} after the receiver came back; buffer: {:?}",
        receiver.stats().entries,
        expected.len(),
        listing(&buffer)
    );
    assert!(agent.wait_for_log("buffer: writing works again", WAIT));
    assert!(wait_for_metric(&base, "logferry_ready", WAIT, |v| v == 1.0));
    // Three disks' worth more with the receiver up: the segment is recycled whenever it fills it.
    let more: Vec<String> = (30_000..75_000).map(|i| line("f", i, 60)).collect();
    for chunk in more.chunks(3000) {
        common::append_lines(dir.join("logs/app.log"), chunk);
    }
    let expected: Vec<String> = expected.into_iter().chain(more).collect();
    assert!(
        receiver.wait_for_lines(expected.len(), WAIT),
        "{} of {} with the receiver up; buffer: {:?}",
        receiver.stats().entries,
        expected.len(),
        listing(&buffer)
    );
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    drop(agent);
    drop(tiny);
}

/// SIGTERM while the disk is full and the receiver down: the agent exits within
/// `graceful_shutdown_timeout` (the buffer's writer stops retrying), and after a restart on the
/// still full disk everything arrives.
#[test]
fn sigterm_with_a_full_disk_exits_by_the_deadline_and_a_restart_ships_everything() {
    let dir = TestDir::new();
    let tiny = TinyFs::mount(dir.join("tiny"), "1m");
    let buffer = tiny.0.join("buffer");
    let receiver = LokiReceiver::start();
    receiver.stop();
    let config = TestConfig::new(receiver.url())
        .server_yaml("  graceful_shutdown_timeout: 2s\n")
        .client_yaml(&format!(
            "    batchsize: 262144\n    buffer: {{path: {}}}\n",
            buffer.display()
        ))
        .write(&dir);
    let mut agent = start_agent(&config);
    let expected: Vec<String> = (0..30_000).map(|i| line("t", i, 60)).collect();
    for chunk in expected.chunks(3000) {
        common::append_lines(dir.join("logs/app.log"), chunk);
    }
    assert!(
        agent.wait_for_log("buffer: cannot write", WAIT),
        "the disk did not fill:\n{}",
        agent.logs()
    );
    let t0 = Instant::now();
    let status = agent.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit after SIGTERM on a full disk: {status:?}\n{}",
        agent.logs()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t0.elapsed()
    );
    receiver.start_again();
    let agent = start_agent(&config);
    // Every line, not a count: what was buffered and is read again arrives twice.
    assert!(
        receiver.wait_for_all_lines(&expected, WAIT),
        "{} of {} after the restart; buffer: {:?}\n{}",
        receiver.stats().entries,
        expected.len(),
        listing(&buffer),
        agent.logs()
    );
    let counts = count_loss(&expected, &receiver.lines());
    assert_eq!((counts.lost, counts.unexpected), (0, 0), "{counts:?}");
    drop(agent);
    drop(tiny);
}

fn listing(buffer: &Path) -> Vec<String> {
    fs::read_dir(buffer)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    format!(
                        "{:?} {}",
                        e.file_name(),
                        e.metadata().map_or(0, |m| m.len())
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A middle segment deleted and the newest one cut in half while the agent was down, after their
/// positions were committed: their lines are lost, and exactly that many are counted
/// (`logferry_buffer_dropped_entries_total{reason="damaged"}`) and logged; nothing claims they are
/// read again.
#[test]
fn lines_lost_to_a_deleted_or_cut_segment_are_counted_exactly() {
    let dir = TestDir::new();
    let receiver = LokiReceiver::start();
    receiver.stop();
    let buffer = dir.join("buffer-l");
    let config = TestConfig::new(receiver.url())
        .client_yaml(&format!(
            "    batchsize: 4096\n    buffer: {{path: {}, segment_size: 16KB}}\n",
            buffer.display()
        ))
        .write(&dir);
    let mut agent = start_agent(&config);
    let base = agent.http_url();
    let mut expected = Vec::new();
    for k in 0..30 {
        let lines: Vec<String> = (k * 100..(k + 1) * 100).map(|i| line("l", i, 40)).collect();
        common::append_lines(dir.join("logs/app.log"), &lines);
        expected.extend(lines);
        let size = fs::metadata(dir.join("logs/app.log")).unwrap().len() as f64;
        assert!(wait_for_metric(
            &base,
            "promtail_read_bytes_total",
            WAIT,
            |v| v >= size
        ));
    }
    fill_buffer_then_kill(&mut agent, &dir, 10.0);
    let segs = segments(&buffer);
    assert!(segs.len() >= 4, "{} segments", segs.len());
    fs::remove_file(&segs[segs.len() / 2]).unwrap();
    let last = segs.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    receiver.start_again();
    let agent = start_agent(&config);
    let base = agent.http_url();
    assert!(
        wait_for_metric(&base, "logferry_buffer_records", WAIT, |v| v == 0.0),
        "the buffer was not drained; logs:\n{}",
        agent.logs()
    );
    assert!(agent.wait_until_buffers_empty(WAIT));
    let counts = count_loss(&expected, &receiver.lines());
    let counted = metric_sum(&base, "logferry_buffer_dropped_entries_total");
    assert!(counts.lost > 0, "{counts:?}");
    assert_eq!(
        counted as usize,
        counts.lost,
        "lines counted as lost vs lines that did not arrive ({counts:?})\n{}",
        agent.logs()
    );
    assert_eq!(
        metric_sum(&base, "logferry_buffer_missing_segments_total"),
        1.0
    );
    assert!(agent.logs().contains("a segment file is missing"));
    assert!(agent
        .logs()
        .contains("shorter than what had been made durable"));
    assert!(
        !agent.logs().contains("read again from their source"),
        "lost lines are said to be read again:\n{}",
        agent.logs()
    );
    drop(agent);
}
