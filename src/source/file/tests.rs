//! In-process tests of discovery and tailing: a real directory, a [`FileSource`] and a router whose one
//! "sink" is this test, acknowledging what it receives.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::glob::PathGlob;
use super::open_files::OpenFiles;
use super::tailer::FileJobContext;
use super::{FileSource, FileTarget};
use crate::delivery::Router;
use crate::entry::Labels;
use crate::metrics::Metrics;
use crate::positions::Positions;
use crate::source::{LineLimit, SourceContext};
use crate::stage::PipelineSpec;

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

struct Harness {
    rx: mpsc::Receiver<crate::delivery::Delivery>,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
    positions: Positions,
}

fn start(dir: &Path, positions: Positions) -> Harness {
    start_with(dir, positions, 1000)
}

/// With room for `open_files` open files.
fn start_with(dir: &Path, positions: Positions, open_files: usize) -> Harness {
    let (tx, rx) = mpsc::channel(16);
    let metrics = Metrics::new();
    let router = Router::new(vec![tx], positions.clone());
    let mut labels = Labels::new();
    labels.insert("job".into(), "t".into());
    let source = FileSource {
        targets: vec![FileTarget {
            glob: PathGlob::new(&format!("{}/*.log", dir.display()), None).unwrap(),
            labels,
        }],
        sd: None,
        sync_period: Duration::from_millis(200),
        claims: Arc::new(Mutex::new(HashSet::new())),
        ctx: FileJobContext {
            source: SourceContext {
                job: "t".into(),
                router,
                positions: positions.clone(),
                metrics: metrics.clone(),
                targets: crate::targets::Targets::new(),
                pipeline: PipelineSpec::default(),
                line_limit: LineLimit::new(0, false),
            },
            min_poll: Duration::from_millis(50),
            max_poll: Duration::from_millis(250),
            inotify: false,
            flush_partial_on_stop: false,
            open_files: OpenFiles::new(open_files, metrics),
        },
    };
    let (stop, stop_rx) = watch::channel(false);
    let join = tokio::spawn(source.run(stop_rx));
    Harness {
        rx,
        stop,
        join,
        positions,
    }
}

impl Harness {
    /// Receive (and acknowledge) until `n` lines arrived; returns them as `filename|line`.
    async fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out with {out:?}"))
                .unwrap();
            for e in &batch.batch.entries {
                let file = e.labels.get("filename").unwrap();
                let name = Path::new(file).file_name().unwrap().to_string_lossy();
                out.push(format!("{name}|{}", e.line));
            }
            batch.ack();
        }
        out
    }

    async fn nothing_more(&mut self) {
        let r = tokio::time::timeout(Duration::from_millis(1500), self.rx.recv()).await;
        if let Ok(Some(b)) = r {
            let lines: Vec<_> = b.batch.entries.iter().map(|e| e.line.clone()).collect();
            panic!("unexpected lines {lines:?}");
        }
    }

    async fn stop(self) -> Positions {
        self.stop.send(true).unwrap();
        drop(self.rx);
        self.join.await.unwrap();
        self.positions
    }
}

#[tokio::test]
async fn reads_existing_then_appended_lines_with_labels() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.log");
    append(&a, "one\ntwo\nthr");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await, ["a.log|one", "a.log|two"]);
    append(&a, "ee\n");
    assert_eq!(h.take(1).await, ["a.log|three"]);
    append(&d.path().join("b.log"), "bee\n");
    assert_eq!(h.take(1).await, ["b.log|bee"]);
    h.stop().await;
}

#[tokio::test]
async fn rename_and_create_rotation_loses_and_repeats_nothing() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.log");
    append(&a, "1\n2\n");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await, ["a.log|1", "a.log|2"]);
    fs::rename(&a, d.path().join("a.log.1")).unwrap();
    // The writer appends to its old descriptor once more before reopening.
    append(&d.path().join("a.log.1"), "3\n");
    append(&a, "4\n");
    let mut got = h.take(2).await;
    got.sort();
    assert_eq!(got, ["a.log|3", "a.log|4"]);
    h.nothing_more().await;
    h.stop().await;
}

#[tokio::test]
async fn rename_within_the_glob_is_not_read_again() {
    let d = tempfile::tempdir().unwrap();
    append(&d.path().join("a.log"), "x\ny\n");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await, ["a.log|x", "a.log|y"]);
    fs::rename(d.path().join("a.log"), d.path().join("b.log")).unwrap();
    append(&d.path().join("b.log"), "z\n");
    assert_eq!(h.take(1).await, ["a.log|z"]);
    h.nothing_more().await;
    h.stop().await;
}

#[tokio::test]
async fn truncation_in_place_reads_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.log");
    append(&a, "old line 1\nold line 2\n");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await.len(), 2);
    fs::write(&a, "").unwrap();
    append(&a, "new\n");
    assert_eq!(h.take(1).await, ["a.log|new"]);
    h.stop().await;
}

#[tokio::test]
async fn restart_resumes_after_acknowledged_lines() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.log");
    append(&a, "a\nb\n");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await.len(), 2);
    let positions = h.stop().await;
    append(&a, "c\n");
    let mut h = start(d.path(), positions);
    assert_eq!(h.take(1).await, ["a.log|c"]);
    h.nothing_more().await;
    h.stop().await;
}

#[tokio::test]
async fn more_files_than_open_slots_are_read_once_and_followed() {
    let d = tempfile::tempdir().unwrap();
    let file = |i: usize| d.path().join(format!("f{i}.log"));
    let mut want = Vec::new();
    for i in 0..6 {
        append(&file(i), &format!("{i}a\n{i}b\n"));
        want.extend([format!("f{i}.log|{i}a"), format!("f{i}.log|{i}b")]);
    }
    let mut h = start_with(d.path(), Positions::in_memory(), 2);
    let mut got = h.take(12).await;
    got.sort();
    assert_eq!(got, want);

    // Files closed to let the others in are opened again when they grow, where they stopped.
    want.clear();
    for i in 0..6 {
        append(&file(i), &format!("{i}c\n"));
        want.push(format!("f{i}.log|{i}c"));
    }
    let mut got = h.take(6).await;
    got.sort();
    assert_eq!(got, want);

    // Rotated out of the glob (open or closed): its last lines are read, then the new file.
    fs::rename(file(0), d.path().join("f0.log.1")).unwrap();
    append(&d.path().join("f0.log.1"), "0d\n");
    append(&file(0), "new\n");
    let mut got = h.take(2).await;
    got.sort();
    assert_eq!(got, ["f0.log|0d", "f0.log|new"]);
    h.nothing_more().await;
    h.stop().await;
}

#[tokio::test]
async fn a_file_rotated_out_of_the_glob_while_stopped_is_read_on_from_its_position() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.log");
    append(&a, "a\nb\n");
    let mut h = start(d.path(), Positions::in_memory());
    assert_eq!(h.take(2).await.len(), 2);
    let positions = h.stop().await;
    // While the agent is down: more lines, then rotation to a name outside `*.log`.
    append(&a, "c\n");
    fs::rename(&a, d.path().join("a.log.1")).unwrap();
    append(&a, "new\n");
    let mut h = start(d.path(), positions);
    let mut got = h.take(2).await;
    got.sort();
    assert_eq!(got, ["a.log|c", "a.log|new"]);
    h.nothing_more().await;
    let positions = h.stop().await;
    assert_eq!(
        positions.fingerprinted_files().len(),
        1,
        "the rotated file is let go"
    );
}
