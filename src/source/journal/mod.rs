//! The systemd journal source: Promtail's `journal` scrape config (compat reference §3.4).
//!
//! One [`JournalSource`] per `journal` job. Its reader thread ([`reader`]) owns the journal, reads it in
//! chunks, and formats each entry ([`format`]: `MESSAGE` or the JSON of all fields, `__journal_*` meta
//! labels relabeled per entry, the realtime timestamp). This task runs the pipeline on each chunk and
//! hands it to the router with a [`Checkpoint::Cursor`] under Promtail's key `cursor-<job_name>`, so
//! the cursor is committed only once every sink holds the chunk (the ack path), never on read.
//!
//! ## Why libsystemd, loaded at run time
//! The candidates were the pure-Rust `sdjournal` crate (0.1.15) and libsystemd's sd-journal (252).
//! sd-journal passes everything `tests/journal.rs` checks: fixture files with xz, lz4 and zstd fields in
//! compact and regular layout, a live journald's directory of machine-id subdirectories, rotation and
//! vacuuming while following, cursors. `sdjournal`, tried by hand on the same kinds of fixture (xz and
//! zstd, compact and regular) and on a live journald's directory, read them all too, resumed after a
//! journalctl cursor (lz4 and following were not tried; its source follows with inotify). libsystemd
//! was chosen because:
//! * the `sdjournal` releases checked (0.1.5, 0.1.15, 0.1.22) need Rust 1.92 to 1.96, above this
//!   crate's MSRV (1.80);
//! * `sdjournal` hands out cursors of its own (`SJ1:…`), so the positions file would no longer hold the
//!   cursors Promtail and `journalctl --after-cursor` understand (migrating back, debugging);
//! * sd-journal is the reader journalctl uses, maintained with the writer, so new file-format features
//!   (compact mode came in systemd 252) are read as soon as the host's journald writes them.
//!
//! The library is opened with `dlopen` ([`sys`]): the binary has no link-time dependency on it and
//! starts on hosts without it, where a `journal` job fails at startup with an error that says so.
//! `sd-journal` is not thread-safe, so each job reads on a thread of its own, which follows the journal
//! through its inotify fd: an idle journal costs no CPU.

pub mod format;
pub mod reader;
pub mod sys;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::config::JournalConfig;
use crate::delivery::Router;
use crate::entry::{Entry, Labels};
use crate::metrics::Metrics;
use crate::positions::{Checkpoint, Positions};
use crate::relabel::Relabeler;
use crate::stage::{Pipeline, PipelineSpec};
use crate::targets::Targets;
use format::Formatter;
use reader::{Chunk, Reader, Settings, Stop};

/// Chunks the reader may have ready before it waits for this task.
const CHUNK_QUEUE: usize = 2;

/// The positions key of a job's cursor, as Promtail names it.
pub fn cursor_key(job: &str) -> String {
    format!("cursor-{job}")
}

pub struct JournalSource {
    pub job: Arc<str>,
    pub config: JournalConfig,
    pub relabeler: Relabeler,
    pub pipeline: PipelineSpec,
    pub router: Router,
    pub positions: Positions,
    pub metrics: Arc<Metrics>,
    /// Fields longer than this are cut when read (the agent's hard line limit).
    pub field_limit: usize,
    /// Where the job's progress shows (`/targets`).
    pub targets: Arc<Targets>,
}

impl JournalSource {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let static_labels: Labels = self.config.labels.clone().into_iter().collect();
        self.targets.journal_started(
            &self.job,
            &self.config.path,
            static_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let lib = match sys::library() {
            Ok(lib) => lib,
            Err(e) => {
                tracing::error!(job = %self.job, error = %e, "journal job not started");
                self.targets.journal_failed(&self.job, e.to_string());
                return;
            }
        };
        let stop = match Stop::new() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(job = %self.job, error = %e, "journal job not started: no eventfd");
                return;
            }
        };
        let key = cursor_key(&self.job);
        let (tx, mut rx) = mpsc::channel::<Chunk>(CHUNK_QUEUE);
        let reader = Reader {
            lib,
            targets: self.targets.clone(),
            settings: Settings {
                job: self.job.clone(),
                path: (!self.config.path.is_empty()).then(|| PathBuf::from(&self.config.path)),
                match_groups: self
                    .config
                    .match_groups()
                    .into_iter()
                    .map(|g| g.into_iter().map(str::to_owned).collect())
                    .collect(),
                max_age: self.config.max_age.get(),
                saved_cursor: self.positions.cursor(&key),
                field_limit: self.field_limit,
            },
            formatter: Formatter::new(self.config.json, static_labels, self.relabeler.clone()),
            stop: stop.clone(),
            chunks: tx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("journal-{}", self.job))
            .spawn(move || reader.run());
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(job = %self.job, error = %e, "journal job not started: no thread");
                return;
            }
        };
        let mut run = Run {
            source: &self,
            key,
            pipeline: self.pipeline.instantiate(),
            next_origin: 0,
            read_through: VecDeque::new(),
        };
        loop {
            let deadline = run.pipeline.next_deadline();
            let stage_timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Decided first, acted on after: the shutdown arm's output may not be held across an await.
            // While a stage paces entries (`limit` without `drop`), nothing more is taken: the reader
            // thread blocks on the full channel and the journal keeps the backlog.
            let paced = run.pipeline.holds_back();
            let chunk = tokio::select! {
                chunk = rx.recv(), if !paced => match chunk {
                    Some(chunk) => Some(chunk),
                    None => break,
                },
                _ = stage_timer => None,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let open = match chunk {
                Some(chunk) => run.deliver(chunk).await,
                None => {
                    // A stage's timeout (multiline's max_wait_time) is up while the journal is idle.
                    let mut entries = Vec::new();
                    run.pipeline.flush(Instant::now(), false, &mut entries);
                    run.send(entries).await
                }
            };
            if !open {
                break;
            }
        }
        stop.stop();
        drop(rx);
        // What the stages still hold goes out with the last cursor, as the file source does on stop.
        if !run.pipeline.is_empty() {
            let mut entries = Vec::new();
            run.pipeline.flush(Instant::now(), true, &mut entries);
            run.send(entries).await;
        }
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        self.targets.journal_gone(&self.job);
    }
}

/// The state of one running job.
struct Run<'a> {
    source: &'a JournalSource,
    key: String,
    pipeline: Pipeline,
    /// The origin the next entry gets: entries are numbered in reading order.
    next_origin: u64,
    /// (origin after a chunk's last entry, that chunk's cursor), oldest first: how far a checkpoint
    /// may go while the stages hold entries back.
    read_through: VecDeque<(u64, String)>,
}

impl Run<'_> {
    async fn deliver(&mut self, chunk: Chunk) -> bool {
        let Chunk {
            mut entries,
            cursor,
            no_message,
            empty_labels,
            unreadable,
        } = chunk;
        let m = &self.source.metrics;
        m.journal_lines.inc_by(entries.len() as u64);
        let errors = [
            (no_message, "no_message"),
            (empty_labels, "empty_labels"),
            (unreadable, "unreadable"),
        ];
        for (n, error) in errors {
            if n > 0 {
                m.journal_errors(error).inc_by(n);
            }
        }
        let first = self.next_origin;
        self.next_origin += entries.len() as u64;
        if let Some(c) = cursor {
            self.read_through.push_back((self.next_origin, c));
        }
        if !self.pipeline.is_empty() {
            let origins: Vec<u64> = (first..self.next_origin).collect();
            self.pipeline.run(&mut entries, &origins);
        }
        self.send(entries).await
    }

    /// Send `entries` with the furthest cursor no held entry is behind. False once the router closed.
    async fn send(&mut self, entries: Vec<Entry>) -> bool {
        let cursor = releasable(&mut self.read_through, self.pipeline.held_origin());
        let checkpoint = cursor.map(|value| Checkpoint::Cursor {
            key: self.key.clone(),
            value,
        });
        if entries.is_empty() && checkpoint.is_none() {
            return true;
        }
        self.source.router.send(entries, checkpoint).await.is_ok()
    }
}

/// The furthest cursor whose entries have all left the pipeline, given the oldest origin a stage still
/// holds; the cursors up to it are taken off `read_through`.
fn releasable(read_through: &mut VecDeque<(u64, String)>, held: Option<u64>) -> Option<String> {
    let limit = held.unwrap_or(u64::MAX);
    let mut cursor = None;
    while let Some((through, _)) = read_through.front() {
        if *through > limit {
            break;
        }
        cursor = read_through.pop_front().map(|(_, c)| c);
    }
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_never_passes_an_entry_a_stage_holds() {
        // Chunks of origins 0..10 (cursor a), 10..20 (b), 20..25 (c).
        let mut q: VecDeque<(u64, String)> = [(10, "a"), (20, "b"), (25, "c")]
            .map(|(o, c)| (o, c.to_owned()))
            .into();
        // Entry 12 is held (a multiline block): only chunk a is wholly out.
        assert_eq!(releasable(&mut q, Some(12)).as_deref(), Some("a"));
        assert_eq!(releasable(&mut q, Some(12)), None);
        // Entry 20 held: chunk b (origins < 20) is out.
        assert_eq!(releasable(&mut q, Some(20)).as_deref(), Some("b"));
        // Nothing held: the newest cursor.
        assert_eq!(releasable(&mut q, None).as_deref(), Some("c"));
        assert!(q.is_empty());
    }

    #[test]
    fn cursor_key_is_promtails() {
        assert_eq!(cursor_key("journal"), "cursor-journal");
    }
}
