//! One tailed file: an async task that reads chunks on the blocking pool, feeds them with their offsets
//! (`source::feed`: the feed, the router, the checkpoint), and waits for the file to grow.
//!
//! A tailer follows an open file (device + inode), not a path: a file renamed by rotation keeps being
//! read through the same descriptor. The discovery loop in `mod.rs` decides when a file has left its
//! glob; it then sends [`Command::Drain`], and the tailer reads on until the file has been quiet for a
//! moment (a writer may still append before it reopens its log), sends the unfinished last line, forgets
//! the file's position and ends. Truncation in place (copytruncate, `> file`) is noticed here: the file
//! got shorter than what was read, or its first bytes changed; reading starts over at 0.
//!
//! The tailer opens its file itself, with a slot of the agent's open-files budget (`open_files.rs`),
//! and may close it while idle to give the slot to another file. Opening can fail for lack of
//! descriptors: that is "cannot open now", not "gone"; the tailer keeps everything and tries again.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::open_files::{open_by_identity, OpenFiles, Slot};
use super::reader::{fingerprint_of, ChunkStats, Output, Reader};
use crate::delivery::Settle;
use crate::descriptors::{is_exhaustion, next_retry, report_exhaustion, RETRY_MIN};
use crate::entry::LabelSet;
use crate::metrics::{Escaped, JobReasonLabel, PathLabel};
use crate::positions::{Checkpoint, FileId, FINGERPRINT_MAX};
use crate::source::feed::{sleep_until, Feed, Ledger};
use crate::source::SourceContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Run,
    /// The file left the glob (renamed away or deleted): read what is left, then end.
    Drain,
    /// The agent is stopping: end now; unacknowledged lines are read again after the restart.
    Stop,
}

/// What every tailer of one scrape config shares: the job's, and how files are watched.
pub struct FileJobContext {
    pub source: SourceContext,
    pub min_poll: Duration,
    pub max_poll: Duration,
    /// Whether inotify watches this job's directories; if not, tailers poll between min and max_poll.
    pub inotify: bool,
    /// Send a file's unfinished last line when the agent stops (`target_config`'s extension key).
    pub flush_partial_on_stop: bool,
    /// The agent's budget of open files, shared by every file job.
    pub open_files: Arc<OpenFiles>,
}

/// A file's ledger: a batch settles the offset read so far, but never past a line a stage holds (the
/// entries' origins are their lines' offsets in the file).
struct Offsets {
    id: FileId,
    /// The file's restarts (truncations): an offset of the file's old content never moves the new one.
    epoch: u32,
    read: u64,
}

impl Ledger for Offsets {
    fn settle(&mut self, held: Option<u64>) -> Option<Settle> {
        Some(Settle::Position(Checkpoint::File {
            id: self.id,
            epoch: self.epoch,
            offset: held.map_or(self.read, |held| held.min(self.read)),
        }))
    }
}

impl std::ops::Deref for FileJobContext {
    type Target = SourceContext;

    fn deref(&self) -> &SourceContext {
        &self.source
    }
}

/// With inotify, a tailer still looks at its file this often, in case an event was missed.
const SAFETY_POLL: Duration = Duration::from_secs(5);
/// A drained file is given up once it has not grown for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// Chunks read back to back before the tailer yields to the others (fairness across files).
const CHUNKS_PER_TURN: usize = 16;

pub struct Tailer {
    pub ctx: Arc<FileJobContext>,
    pub id: FileId,
    pub path: String,
    /// Where discovery last saw the file (it follows renames within the glob); a file closed while
    /// idle is opened again from here.
    pub location: Arc<Mutex<PathBuf>>,
    pub labels: Arc<LabelSet>,
    /// New labels for the file, when discovery changed its target's (`file_sd_configs`).
    pub relabeled: watch::Receiver<Arc<LabelSet>>,
    pub epoch: u32,
    /// `None` until the file is first opened, and while a chunk is being read on the blocking pool.
    pub reader: Option<Reader>,
    /// The open-files slot, held while the reader's file is open.
    pub slot: Option<Slot>,
    /// The location where the closed file was last looked for and not found: not looked for there
    /// again until discovery moves the location.
    pub gone_at: Option<PathBuf>,
    /// A file rotated out of the glob while the agent was down, found by the identity its saved
    /// position records: it is read on from that position only (never from 0), to its end.
    pub resume_only: bool,
    pub wake: Arc<Notify>,
    pub commands: watch::Receiver<Command>,
}

/// Resolves once the agent stops this tailer.
async fn stopped(commands: &mut watch::Receiver<Command>) {
    let _ = commands.wait_for(|c| *c == Command::Stop).await;
}

/// What opening the file came to.
enum Opened {
    File(File),
    /// Not at its location nor anywhere else in that directory.
    Gone,
    /// Not for lack of descriptors (that is retried): permissions, I/O.
    Failed(std::io::Error),
    /// The agent stops.
    Stopped,
}

impl Tailer {
    pub async fn run(mut self) {
        let ctx = self.ctx.clone();
        let path_label = PathLabel {
            path: Escaped(self.path.clone()),
        };
        ctx.metrics.files_active.inc();
        if self.open_first().await {
            self.follow(&path_label).await;
        }
        ctx.metrics.files_active.dec();
        ctx.metrics.read_bytes.remove(&path_label);
        ctx.metrics.file_bytes.remove(&path_label);
        ctx.metrics.read_lines.remove(&path_label);
        ctx.targets.file_gone(&self.path);
    }

    /// Open the file and decide where reading starts (its saved position, Promtail's, or 0). False if
    /// it is no longer there (discovery starts a tailer for what is there now) or the agent stops.
    async fn open_first(&mut self) -> bool {
        let file = match self.open().await {
            Opened::File(file) => file,
            Opened::Gone => {
                tracing::debug!(path = %self.path, "file gone before it was opened");
                if self.resume_only {
                    // Deleted while the agent was down: its position serves nothing any more.
                    self.ctx.positions.forget_file(self.id);
                }
                return false;
            }
            Opened::Failed(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot open file; will retry");
                return false;
            }
            Opened::Stopped => return false,
        };
        let start = file.metadata().and_then(|meta| {
            let resume = self
                .ctx
                .positions
                .resume_file(&self.path, self.id, meta.len(), |len| {
                    fingerprint_of(&file, len)
                });
            let fingerprint = fingerprint_of(&file, FINGERPRINT_MAX)?;
            Ok((resume, fingerprint))
        });
        if self.resume_only && start.as_ref().is_ok_and(|(resume, _)| !resume.saved) {
            // The inode is another file's now (resume_file forgot the record): not ours to read.
            self.slot = None;
            return false;
        }
        let started = start.and_then(|(resume, fingerprint)| {
            if self.resume_only {
                tracing::info!(path = %self.path, offset = resume.offset,
                    "file rotated out of the glob while the agent was down; reading it to its end");
            }
            self.ctx
                .positions
                .track_file(self.id, &self.path, resume.offset, fingerprint);
            tracing::info!(path = %self.path, offset = resume.offset, reason = resume.reason, "tailing file");
            // Reading starts again from the committed position: batches an earlier tailer of this
            // file left in flight (a job restarted after a sink dropped some) are read again, and
            // no longer hold its commits back.
            self.ctx.router.commits().restart_file(self.id);
            Reader::new(file, resume.offset, fingerprint)
        });
        match started {
            Ok(reader) => {
                self.reader = Some(reader);
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot read file; will retry");
                self.slot = None;
                false
            }
        }
    }

    /// Open the file by its identity, with a slot of the budget. Out of descriptors, wait and try
    /// again: the file is not taken as gone, its position stays.
    async fn open(&mut self) -> Opened {
        let ctx = self.ctx.clone();
        let mut wait = RETRY_MIN;
        loop {
            if self.slot.is_none() {
                let slot = tokio::select! {
                    slot = ctx.open_files.acquire() => slot,
                    _ = stopped(&mut self.commands) => return Opened::Stopped,
                };
                self.slot = Some(slot);
            }
            let location = self.location.lock().unwrap().clone();
            let id = self.id;
            let found = tokio::task::spawn_blocking(move || open_by_identity(&location, id))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match found {
                Ok(Some(file)) => return Opened::File(file),
                Ok(None) => {
                    self.slot = None;
                    return Opened::Gone;
                }
                Err(e) if is_exhaustion(&e) => {
                    report_exhaustion(&ctx.metrics, "open_file", &e);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped(&mut self.commands) => return Opened::Stopped,
                    }
                    wait = next_retry(wait);
                }
                Err(e) => {
                    self.slot = None;
                    return Opened::Failed(e);
                }
            }
        }
    }

    fn is_open(&self) -> bool {
        self.reader.as_ref().is_some_and(Reader::is_open)
    }

    /// At the end of the file, with nothing to read: give the descriptor up if another file waits
    /// for one.
    fn close_if_contended(&mut self) {
        if !self.ctx.open_files.contended() {
            return;
        }
        if let Some(reader) = self.reader.as_mut().filter(|r| r.is_open()) {
            reader.close();
            self.slot = None;
        }
    }

    /// For a file closed while idle: whether to open it again. Its location is looked at with `stat`
    /// (no descriptor): another size there, or another file, means something to read or a move.
    fn changed_while_closed(&self) -> bool {
        let location = self.location.lock().unwrap().clone();
        if self.gone_at.as_ref() == Some(&location) {
            return false;
        }
        let Some(reader) = &self.reader else {
            return false;
        };
        match std::fs::metadata(&location) {
            Ok(m) => {
                m.dev() != self.id.dev || m.ino() != self.id.ino || m.len() != reader.read_pos()
            }
            Err(_) => true,
        }
    }

    /// Open a file closed while idle again, if it may have changed. False if the agent stops.
    async fn reopen_if_changed(&mut self) -> bool {
        if self.reader.is_none() || self.is_open() || !self.changed_while_closed() {
            return true;
        }
        match self.open().await {
            Opened::File(file) => {
                let reopened = self.reader.as_mut().map(|r| r.reopen(file));
                if let Some(Err(e)) = reopened {
                    tracing::warn!(path = %self.path, error = %e, "cannot reopen file; will retry");
                    self.slot = None;
                    return true;
                }
                self.gone_at = None;
                // Same device and inode; whether the content is still the one read is for the
                // fingerprint to say.
                self.check_truncation().await;
            }
            Opened::Gone => {
                self.gone_at = Some(self.location.lock().unwrap().clone());
                tracing::debug!(path = %self.path, "closed file not found again; waiting for discovery");
            }
            Opened::Failed(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot reopen file; will retry");
            }
            Opened::Stopped => return false,
        }
        true
    }

    /// Follow the open file until it is drained or the agent stops.
    async fn follow(&mut self, path_label: &PathLabel) {
        let ctx = self.ctx.clone();
        let offsets = Offsets {
            id: self.id,
            epoch: self.epoch,
            read: 0,
        };
        let feed = &mut ctx.feed(offsets);
        let mut poll = ctx.min_poll;
        let mut quiet_since: Option<Instant> = None;
        'outer: loop {
            if !self.reopen_if_changed().await {
                self.stop(path_label, feed).await;
                break;
            }
            // Read until the end of the file.
            let mut grew = false;
            for _ in 0..CHUNKS_PER_TURN {
                if !self.is_open() {
                    break;
                }
                if !self.wait_while_held_back(feed).await {
                    break 'outer;
                }
                if *self.commands.borrow() == Command::Stop {
                    self.stop(path_label, feed).await;
                    break 'outer;
                }
                let Some((output, stats)) = self.read_chunk(false).await else {
                    break 'outer;
                };
                if stats.bytes == 0 {
                    break;
                }
                grew = true;
                self.account(path_label, &stats);
                if !self.deliver(feed, output, false).await {
                    break 'outer;
                }
            }
            if grew {
                poll = ctx.min_poll;
                quiet_since = None;
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(r) = &mut self.reader {
                r.shrink();
            }
            let command = *self.commands.borrow();
            match command {
                Command::Stop => {
                    self.stop(path_label, feed).await;
                    break;
                }
                Command::Drain => {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= DRAIN_QUIET {
                        self.finish_drained(path_label, feed).await;
                        break;
                    }
                }
                Command::Run => self.close_if_contended(),
            }
            let wait = if command == Command::Drain {
                ctx.min_poll.min(DRAIN_QUIET / 4)
            } else if ctx.inotify {
                SAFETY_POLL
            } else {
                poll
            };
            let stage_timer = sleep_until(feed.deadline());
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {
                    poll = (poll * 2).min(ctx.max_poll);
                }
                _ = self.commands.changed() => {}
                _ = ctx.open_files.release_requested(), if self.is_open() && command == Command::Run => {}
                _ = stage_timer => {
                    // A stage's timeout (multiline's max_wait_time) is up, even though the file is idle.
                    self.settle_at(feed);
                    if !feed.tick().await {
                        break;
                    }
                }
            }
            self.check_truncation().await;
        }
    }

    /// Read one chunk on the blocking pool. None if the file can no longer be read.
    async fn read_chunk(&mut self, finish: bool) -> Option<(Output, ChunkStats)> {
        if self.relabeled.has_changed().unwrap_or(false) {
            self.labels = self.relabeled.borrow_and_update().clone();
        }
        let labels = self.labels.clone();
        let limit = self.ctx.line_limit;
        let reader = self.reader.take()?;
        let (reader, result) = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let mut out = Output::default();
            let mut stats = ChunkStats::default();
            // A closed file has nothing more to read before it is opened again, but its unfinished
            // last line can still be sent.
            let r = match reader.is_open() {
                true => reader.read_chunk(&labels, limit, &mut out, &mut stats),
                false => Ok(0),
            };
            if finish {
                reader.take_partial(&labels, limit, &mut out, &mut stats);
            }
            (reader, r.map(|_| (out, stats)))
        })
        .await
        .ok()?;
        self.reader = Some(reader);
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %self.path, error = %e, "cannot read file; will look again");
                None
            }
        }
    }

    fn account(&self, path_label: &PathLabel, stats: &ChunkStats) {
        let m = &self.ctx.metrics;
        m.read_lines.get_or_create(path_label).inc_by(stats.lines);
        if let Some(reader) = &self.reader {
            // The fingerprint grows with the file up to FINGERPRINT_MAX: save it, so that after a
            // restart it still tells this file from another that got its inode. (Only when it grew:
            // the store's lock is everyone's, and a chunk's read is not the place to take it for
            // nothing.)
            if stats.fingerprint_grew {
                self.ctx
                    .positions
                    .update_fingerprint(self.id, reader.fingerprint);
            }
            m.read_bytes
                .get_or_create(path_label)
                .set(reader.read_pos() as i64);
            m.file_bytes
                .get_or_create(path_label)
                .set(stats.file_size as i64);
            let ctx = &self.ctx;
            ctx.targets.file_read(
                &self.path,
                &ctx.job,
                &self.labels,
                reader.read_pos(),
                stats.file_size,
            );
        }
        let job = &self.ctx.job;
        if stats.invalid_utf8 > 0 {
            m.lines_invalid_utf8
                .get_or_create(&JobReasonLabel {
                    job: Escaped(job.to_string()),
                    reason: "replaced".into(),
                })
                .inc_by(stats.invalid_utf8);
        }
        for (n, reason) in [(stats.truncated, "truncated"), (stats.dropped, "dropped")] {
            if n > 0 {
                m.lines_oversized
                    .get_or_create(&JobReasonLabel {
                        job: Escaped(job.to_string()),
                        reason: reason.into(),
                    })
                    .inc_by(n);
                tracing::warn!(path = %self.path, lines = n, limit = self.ctx.line_limit.max, reason,
                    "lines over the line size limit");
            }
        }
    }

    async fn check_truncation(&mut self) {
        let Some(reader) = self.reader.as_mut().filter(|r| r.is_open()) else {
            return;
        };
        match reader.was_truncated() {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(path = %self.path, "file truncated; reading it from the start");
                if let Err(e) = reader.restart() {
                    tracing::warn!(path = %self.path, error = %e, "cannot restart truncated file");
                    return;
                }
                self.epoch = self.ctx.positions.restart_file(self.id, reader.fingerprint);
            }
            Err(e) => tracing::debug!(path = %self.path, error = %e, "cannot stat file"),
        }
    }

    /// While a stage paces entries (`limit` without `drop`), read nothing: sleep until its next
    /// release and send what it lets out, until it holds nothing back or the agent stops. The rest of
    /// the file waits on disk. False once the feed is closed.
    async fn wait_while_held_back(&mut self, feed: &mut Feed<Offsets>) -> bool {
        while let Some(until) = feed.paced_until() {
            if *self.commands.borrow() == Command::Stop {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = self.commands.changed() => continue,
            }
            self.settle_at(feed);
            if !feed.tick().await {
                return false;
            }
        }
        true
    }

    /// Feed a chunk (then everything the stages hold, with `flush_all`). False once the feed is closed.
    async fn deliver(&mut self, feed: &mut Feed<Offsets>, output: Output, flush_all: bool) -> bool {
        let Output { entries, origins } = output;
        self.settle_at(feed);
        feed.feed(entries, &origins).await && (!flush_all || feed.finish().await)
    }

    /// Tell the ledger how far the file was read, and in which epoch.
    fn settle_at(&self, feed: &mut Feed<Offsets>) {
        let ledger = feed.ledger();
        ledger.epoch = self.epoch;
        if let Some(reader) = &self.reader {
            ledger.read = reader.offset();
        }
    }

    /// Read what is left, the unfinished last line included, and send it with everything held.
    async fn send_rest(&mut self, path_label: &PathLabel, feed: &mut Feed<Offsets>) {
        if let Some((output, stats)) = self.read_chunk(true).await {
            self.account(path_label, &stats);
            self.deliver(feed, output, true).await;
        }
    }

    /// The agent is stopping: send what the stages hold (as Promtail flushes multiline blocks) and,
    /// if configured, the unfinished last line.
    async fn stop(&mut self, path_label: &PathLabel, feed: &mut Feed<Offsets>) {
        if self.ctx.flush_partial_on_stop {
            self.send_rest(path_label, feed).await;
        } else if feed.has_stages() {
            self.deliver(feed, Output::default(), true).await;
        }
    }

    /// The file is gone from the glob and quiet: send its unfinished last line and forget it.
    async fn finish_drained(&mut self, path_label: &PathLabel, feed: &mut Feed<Offsets>) {
        self.send_rest(path_label, feed).await;
        if self.gone_at.is_some() {
            // Closed while idle (descriptor budget) and gone before it was opened again: anything
            // written to it in between could not be read.
            tracing::info!(path = %self.path, "file rotated away or deleted while closed; stopped");
        } else {
            tracing::info!(path = %self.path, "file rotated away or deleted and read to its end; stopped");
        }
        self.ctx.positions.forget_file(self.id);
    }
}
