//! The systemd journal source: Promtail's `journal` scrape config (compat reference §3.4).
//!
//! One [`JournalSource`] per `journal` job. Its reader thread ([`reader`]) owns the journal, reads it in
//! chunks, and formats each entry ([`format`]: `MESSAGE` or the JSON of all fields, `__journal_*` meta
//! labels relabeled per entry, the realtime timestamp). This task feeds each chunk to the job's
//! [`Feed`] with its cursor ([`Cursors`], under Promtail's key `cursor-<job_name>`), so the cursor is
//! committed only once every sink holds the chunk (the ack path), never on read.
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

use std::path::PathBuf;

use tokio::sync::{mpsc, watch};

use super::feed::{Cursors, Feed, Next};
use super::{SourceContext, HARD_LINE_LIMIT};
use crate::config::JournalConfig;
use crate::entry::Labels;
use crate::relabel::Relabeler;
use format::Formatter;
use reader::{Chunk, Reader, Settings, Stop};

/// Chunks the reader may have ready before it waits for this task.
const CHUNK_QUEUE: usize = 2;

/// The positions key of a job's cursor, as Promtail names it.
pub fn cursor_key(job: &str) -> String {
    format!("cursor-{job}")
}

pub struct JournalSource {
    pub ctx: SourceContext,
    pub config: JournalConfig,
    pub relabeler: Relabeler,
}

impl std::ops::Deref for JournalSource {
    type Target = SourceContext;

    fn deref(&self) -> &SourceContext {
        &self.ctx
    }
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
                // Fields longer are cut when read: the agent's hard limit, whatever `max_line_size`.
                field_limit: HARD_LINE_LIMIT,
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
        // Reading starts from the committed cursor: what an earlier instance of the job left in
        // flight no longer holds its commits back (it is read again).
        self.ctx.router.commits().restart(&key);
        let mut feed = self.ctx.feed(Cursors::new(key));
        // While a stage paces entries (`limit` without `drop`), `next` takes no chunk: the reader
        // thread blocks on the full channel and the journal keeps the backlog.
        loop {
            let open = match feed.next(&mut rx, &mut shutdown).await {
                Next::Item(chunk) => self.deliver(&mut feed, chunk).await,
                Next::Tick => feed.tick().await,
                Next::Stop => break,
            };
            if !open {
                break;
            }
        }
        stop.stop();
        drop(rx);
        // What the stages still hold goes out with the last cursor, as the file source does on stop.
        feed.finish().await;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        self.targets.journal_gone(&self.job);
    }

    /// Count what the reader found and feed the chunk's entries, numbered in reading order.
    async fn deliver(&self, feed: &mut Feed<Cursors>, chunk: Chunk) -> bool {
        let Chunk {
            entries,
            cursor,
            no_message,
            empty_labels,
            unreadable,
        } = chunk;
        let m = &self.metrics;
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
        let numbered = feed.has_stages();
        let origins = feed.ledger().read(entries.len(), cursor, numbered);
        feed.feed(entries, &origins).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_key_is_promtails() {
        assert_eq!(cursor_key("journal"), "cursor-journal");
    }
}
