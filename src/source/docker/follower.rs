//! One container's log: a [`Container`] keeps everything about reading it for the agent's lifetime
//! (its cursor, the lines being joined, the pipeline and what its stages hold), and
//! [`Container::read_log`] runs one logs request, a *session*, from the cursor on: Docker ends the
//! stream when the container stops, the daemon restarts, or the connection breaks, and discovery
//! starts the next session when the container runs again.
//!
//! The end of a followed stream is not taken as the end of the log: Docker's json-file follower can
//! close it when the container exits while the reader is behind, with lines still unread in the file
//! (`docker logs -f` loses them the same way). Once the container is seen stopped, its complete log
//! is read once more without follow, from the cursor to its end ([`run_session`]).
//!
//! Frames are taken as they come and sent in batches: after one frame, the frames that follow within
//! a few milliseconds are taken too (up to a batch's size) before the pipeline runs and the router is
//! awaited, so a quiet container costs one small batch per line and a chatty one large batches; while
//! the router waits (backpressure), or a stage paces entries (`limit` without `drop`), the stream is
//! not read and the daemon keeps the log on disk.
//!
//! Each batch carries the checkpoint it allows: the cursor after the last frame taken, except that it
//! never passes the first frame of a line still being joined or of a line a stage holds (`multiline`), so
//! that a crash re-reads those instead of losing them. [`Mark`] remembers, for each line, the cursor
//! before its first frame. The container's [`Feed`] runs the pipeline and sends; a batch the stages
//! left empty is still sent when it moves the cursor, and the router commits its checkpoint in order,
//! after the container's batches still in the sinks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::cursor::{Cursor, Window};
use super::frames::{split_tty, Assembler, Line, Pushed, SOFT_LINE_LIMIT};
use super::stopped;
use super::targets::LOG_STREAM;
use crate::delivery::Settle;
use crate::entry::{Entry, LabelSet, Labels};
use crate::metrics::Metrics;
use crate::positions::Checkpoint;
use crate::relabel::Relabeler;
use crate::source::feed::{sleep_until, Feed, Ledger};
use crate::source::SourceContext;
use crate::stage::parsing::rfc3339;
use crate::targets::ContainerProgress;

/// A batch is sent once it holds this many lines or bytes, or [`LINGER`] after its first line.
const BATCH_LINES: usize = 2048;
const BATCH_BYTES: usize = 1 << 20;
/// The daemon sends a busy log frame by frame; collecting frames this long makes one batch of a burst
/// instead of waking the sinks for every few lines (they batch for far longer anyway).
const LINGER: Duration = Duration::from_millis(10);

/// What every container of one scrape config shares: the job's, and its relabel rules.
pub struct DockerJobContext {
    pub source: SourceContext,
    /// `relabel_configs`, applied per stream of each container (Promtail applies them per line, over
    /// labels that differ only by the stream).
    pub relabeler: Relabeler,
}

impl DockerJobContext {
    /// A joined line longer than this is cut (Promtail: `max_line_size`, or 256 KiB when it is 0).
    pub fn joined_limit(&self) -> usize {
        match self.source.line_limit {
            l if l.configured => l.max,
            _ => SOFT_LINE_LIMIT,
        }
    }
}

impl std::ops::Deref for DockerJobContext {
    type Target = SourceContext;

    fn deref(&self) -> &SourceContext {
        &self.source
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Where a frame was in the container's log: its number among the frames this agent took from the
/// container, and the cursor just before it.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    seq: u64,
    before: Cursor,
    stream: Stream,
}

/// How a session reads the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Follow it as the container writes; Docker ends the stream when the container stops.
    Follow,
    /// Read what the log holds now, to its end.
    ToEnd,
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Docker closed the stream: the container stopped, or the daemon went away.
    Eof,
    /// The agent is stopping.
    Stopped,
    /// The logs request failed (container gone, daemon unreachable, a log driver that cannot be read).
    Failed(bollard::errors::Error),
    /// The sinks are gone (the agent is stopping).
    RouterClosed,
}

pub struct Container {
    pub id: String,
    /// After the last frame taken.
    cursor: Cursor,
    seq: u64,
    assemblers: [Assembler<Mark>; 2],
    /// The pipeline, and how far each batch lets the cursor go.
    feed: Feed<Starts>,
    /// Discovered labels (`__meta_docker_*`, `__address__`).
    discovered: Arc<Labels>,
    /// Per stream, the labels after relabeling (`None`: the rules drop the stream), built on first use.
    streams: [Option<Option<Arc<LabelSet>>>; 2],
}

/// A container's ledger: a batch settles the cursor before the first line not yet handed over.
struct Starts {
    key: String,
    id: String,
    metrics: Arc<Metrics>,
    /// After the last frame taken.
    cursor: Cursor,
    /// The first line still being joined (its frame number and the cursor before it).
    joining: Option<(u64, Cursor)>,
    /// Cursor before each line that went into a non-empty pipeline, by the line's first frame, until no
    /// stage can hold it any more.
    starts: BTreeMap<u64, Cursor>,
    warned_no_labels: bool,
}

impl Ledger for Starts {
    /// The cursor a crash may resume from: never past a line being joined or a line a stage holds.
    fn settle(&mut self, held: Option<u64>) -> Option<Settle> {
        let mut earliest = self.joining;
        match held {
            Some(held) => {
                self.starts = self.starts.split_off(&held);
                if let Some(before) = self.starts.get(&held) {
                    if earliest.map_or(true, |(seq, _)| seq > held) {
                        earliest = Some((held, *before));
                    }
                }
            }
            None => self.starts.clear(),
        }
        let cursor = earliest.map_or(self.cursor, |(_, c)| c);
        Some(Settle::Position(Checkpoint::Cursor {
            key: self.key.clone(),
            value: cursor.to_string(),
        }))
    }

    /// Loki refuses a stream without labels, and with it the whole push: such entries are dropped here,
    /// counted and reported once per container.
    fn after_stages(&mut self, entries: &mut Vec<Entry>) {
        let before = entries.len();
        entries.retain(|e| !e.labels.labels().is_empty());
        let dropped = before - entries.len();
        if dropped > 0 {
            self.metrics
                .docker_dropped("no_labels")
                .inc_by(dropped as u64);
        }
        if dropped > 0 && !self.warned_no_labels {
            self.warned_no_labels = true;
            tracing::warn!(container = %self.id, lines = dropped,
                "Docker log lines have no labels after relabeling and are dropped (Loki refuses them); \
                 add a relabel rule, e.g. source_labels: [__meta_docker_container_name], target_label: container");
        }
    }
}

impl Container {
    /// A container seen for the first time by this agent: it resumes from its saved cursor, or reads
    /// its whole log (Promtail starts at `since=0` too).
    pub fn new(
        id: String,
        discovered: Arc<Labels>,
        ctx: &DockerJobContext,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let key = Cursor::key(&id);
        let cursor = match ctx.positions.cursor(&key) {
            Some(v) => Cursor::parse(&v).unwrap_or_else(|| {
                tracing::warn!(container = %id, value = %v,
                    "unreadable saved Docker position; reading the container's whole log");
                Cursor::default()
            }),
            None => Cursor::default(),
        };
        // Read again from the committed cursor: batches an earlier job left in flight (a reload)
        // must not hold this one's commits back.
        ctx.router.commits().restart(&key);
        let starts = Starts {
            key,
            id: id.clone(),
            metrics: ctx.metrics.clone(),
            cursor,
            joining: None,
            starts: BTreeMap::new(),
            warned_no_labels: false,
        };
        // While the sinks are full the router waits; a stopping agent does not: what was not handed
        // over is read again after the restart.
        let feed = ctx.feed(starts).stop_on(stop);
        Container {
            id,
            cursor,
            seq: 0,
            assemblers: [
                Assembler::new(ctx.joined_limit()),
                Assembler::new(ctx.joined_limit()),
            ],
            feed,
            discovered,
            streams: [None, None],
        }
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    pub fn set_labels(&mut self, discovered: Arc<Labels>) {
        if discovered != self.discovered {
            self.discovered = discovered;
            self.streams = [None, None];
        }
    }

    /// One logs request from the cursor, until the stream ends or the agent stops.
    pub async fn read_log(
        &mut self,
        docker: &Docker,
        ctx: &DockerJobContext,
        read: Read,
        labels: &mut watch::Receiver<Arc<Labels>>,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let resume = self.cursor;
        let options = LogsOptions {
            follow: read == Read::Follow,
            stdout: true,
            stderr: true,
            // Bollard takes whole seconds as an i32; fine until 2038, when this becomes a string.
            since: i32::try_from(resume.since).unwrap_or(0),
            until: 0,
            timestamps: true,
            tail: "all".into(),
        };
        let stream = docker.logs(&self.id, Some(options));
        let mut stream = std::pin::pin!(stream);
        let mut session = Session {
            resume,
            window: Window::new(resume.since),
            index: 0,
        };
        let mut lines: Vec<Line<Mark>> = Vec::new();
        let mut labels_open = true;
        loop {
            let stage_timer = sleep_until(self.feed.deadline());
            tokio::select! {
                biased;
                _ = stopped(stop) => {
                    // As the file source does: what stages hold goes out, unfinished lines are re-read.
                    if self.feed.has_stages() {
                        self.feed.finish().await;
                    }
                    return SessionEnd::Stopped;
                }
                changed = labels.changed(), if labels_open => match changed {
                    Ok(()) => {
                        let l = labels.borrow_and_update().clone();
                        self.set_labels(l);
                    }
                    Err(_) => labels_open = false,
                },
                _ = stage_timer => {
                    if !self.feed.tick().await {
                        return SessionEnd::RouterClosed;
                    }
                }
                // While a stage paces entries (`limit` without `drop`), the stream is not read: the
                // container's log keeps the backlog, and the stage timer above lets entries out.
                item = stream.next(), if self.feed.paced_until().is_none() => {
                    let end = match item {
                        None => return SessionEnd::Eof,
                        Some(Err(e)) => return SessionEnd::Failed(e),
                        Some(Ok(out)) => {
                            self.take(out, &mut session, ctx, &mut lines);
                            self.take_burst(&mut stream, &mut session, ctx, &mut lines).await
                        }
                    };
                    if !self.deliver(ctx, &mut lines, false).await {
                        return SessionEnd::RouterClosed;
                    }
                    if let Some(end) = end {
                        return end;
                    }
                }
            }
        }
    }

    /// After a first frame, take those that follow within [`LINGER`] (up to a batch). Returns how the
    /// stream ended, if it did meanwhile.
    async fn take_burst<S>(
        &mut self,
        stream: &mut S,
        session: &mut Session,
        ctx: &DockerJobContext,
        lines: &mut Vec<Line<Mark>>,
    ) -> Option<SessionEnd>
    where
        S: futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    {
        let mut bytes = 0;
        let linger = tokio::time::Instant::now() + LINGER;
        while lines.len() < BATCH_LINES && bytes < BATCH_BYTES {
            // Keep polling while lingering: the HTTP client reads the next chunk of the stream only
            // once the last one was taken.
            let next = match stream.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(linger, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => return None,
                },
            };
            match next {
                Some(Ok(out)) => {
                    bytes += out.as_ref().len();
                    self.take(out, session, ctx, lines);
                }
                Some(Err(e)) => return Some(SessionEnd::Failed(e)),
                None => return Some(SessionEnd::Eof),
            }
        }
        None
    }

    /// The container stopped for good (or is gone): send the unfinished lines and what stages hold.
    pub async fn finish(&mut self, ctx: &DockerJobContext) {
        let mut lines = Vec::new();
        for a in &mut self.assemblers {
            a.flush(&mut lines);
        }
        lines.sort_by_key(|l| l.mark.seq);
        self.deliver(ctx, &mut lines, true).await;
    }

    /// Take one message of the logs stream: cut it into frames, skip those read before, join the rest.
    fn take(
        &mut self,
        out: LogOutput,
        session: &mut Session,
        ctx: &DockerJobContext,
        lines: &mut Vec<Line<Mark>>,
    ) {
        let (stream, tty, bytes) = match out {
            LogOutput::StdOut { message } | LogOutput::StdIn { message } => {
                (Stream::Stdout, false, message)
            }
            LogOutput::StdErr { message } => (Stream::Stderr, false, message),
            // No frame headers: a TTY container's log (all of it is stdout).
            LogOutput::Console { message } => (Stream::Stdout, true, message),
        };
        if tty {
            for frame in split_tty(&bytes) {
                self.take_frame(frame, stream, session, ctx, lines);
            }
        } else {
            self.take_frame(&bytes, stream, session, ctx, lines);
        }
    }

    fn take_frame(
        &mut self,
        frame: &[u8],
        stream: Stream,
        session: &mut Session,
        ctx: &DockerJobContext,
        lines: &mut Vec<Line<Mark>>,
    ) {
        let ts = super::frames::split_stamp(frame).map_or(self.cursor.last_ns, |(ts, _)| ts);
        let index = session.index;
        session.index += 1;
        let after = session.window.advance(ts);
        if session.resume.already_read(index, ts) {
            return;
        }
        let mark = Mark {
            seq: self.seq,
            before: self.cursor,
            stream,
        };
        self.seq += 1;
        self.cursor = after;
        match self.assemblers[stream as usize].push(frame, mark, lines) {
            Pushed::Ok => {}
            Pushed::Unparsable => {
                ctx.metrics.docker_parsing_errors.inc();
                tracing::error!(container = %self.id, "error reading docker log line, skipping line: no timestamp");
            }
            Pushed::Oversized => {
                ctx.metrics.docker_dropped("oversized").inc();
                tracing::warn!(container = %self.id, limit = ctx.joined_limit(),
                    "docker log line longer than the line size limit: sent cut, rest dropped");
            }
        }
    }

    /// Make entries of `lines` and feed them (then everything the stages hold, with `flush_all`). False
    /// once the feed is closed: the router closed, or the agent stopped while the router waited.
    async fn deliver(
        &mut self,
        ctx: &DockerJobContext,
        lines: &mut Vec<Line<Mark>>,
        flush_all: bool,
    ) -> bool {
        let mut entries = Vec::with_capacity(lines.len());
        let mut origins = Vec::with_capacity(lines.len());
        let keep_starts = self.feed.has_stages();
        ctx.metrics.docker_entries.inc_by(lines.len() as u64);
        self.report(ctx, lines);
        for line in lines.drain(..) {
            let Some(labels) = self.stream_labels(line.mark.stream, &ctx.relabeler) else {
                continue;
            };
            let text = match String::from_utf8(line.text) {
                Ok(t) => t,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            if keep_starts {
                self.feed
                    .ledger()
                    .starts
                    .insert(line.mark.seq, line.mark.before);
            }
            origins.push(line.mark.seq);
            entries.push(Entry {
                timestamp: line.ts_ns,
                line: text,
                labels,
                metadata: Vec::new(),
                extracted: None,
            });
        }
        let joining = self
            .assemblers
            .iter()
            .filter_map(|a| a.pending())
            .map(|m| (m.seq, m.before))
            .min_by_key(|(seq, _)| *seq);
        let ledger = self.feed.ledger();
        ledger.cursor = self.cursor;
        ledger.joining = joining;
        if !self.feed.feed(entries, &origins).await {
            return false;
        }
        !flush_all || self.feed.finish().await
    }

    /// A batch's progress for `/targets`, with the labels of the container's stdout (else stderr).
    fn report(&mut self, ctx: &DockerJobContext, lines: &[Line<Mark>]) {
        if lines.is_empty() {
            return;
        }
        let progress = ContainerProgress {
            entries: lines.len() as u64,
            bytes: lines.iter().map(|l| l.text.len() as u64).sum(),
            newest_ns: lines.iter().map(|l| l.ts_ns).max().unwrap_or(0),
        };
        let labels = self
            .stream_labels(Stream::Stdout, &ctx.relabeler)
            .or_else(|| self.stream_labels(Stream::Stderr, &ctx.relabeler));
        ctx.targets
            .container_read(&self.id, labels.as_ref(), progress);
    }

    /// The container's name, as Docker lists it, without its leading `/`.
    pub fn name(&self) -> &str {
        self.discovered
            .get(super::targets::CONTAINER_NAME)
            .map_or("", |n| n.trim_start_matches('/'))
    }

    /// Relabeled labels of a stream, `__*` removed; `None` if a rule drops it.
    fn stream_labels(&mut self, stream: Stream, relabeler: &Relabeler) -> Option<Arc<LabelSet>> {
        let slot = &mut self.streams[stream as usize];
        if slot.is_none() {
            let mut labels = (*self.discovered).clone();
            labels.insert(LOG_STREAM.into(), stream.name().into());
            let kept = relabeler.process(&mut labels);
            labels.retain(|k, _| !k.starts_with("__"));
            *slot = Some(kept.then(|| LabelSet::new(labels)));
        }
        slot.clone().flatten()
    }
}

/// One logs request's progress through the frames it returns.
struct Session {
    resume: Cursor,
    window: Window,
    index: u64,
}

/// What a finished session hands back to discovery.
pub struct Done {
    pub container: Box<Container>,
    pub end: SessionEnd,
    /// The container no longer exists.
    pub gone: bool,
    /// Its log was read to the end while it was stopped (nothing more comes until it runs again).
    pub finished: bool,
}

/// How long after the end of its log stream a container may still be reported running (the daemon
/// closes the log before it records the exit).
const EXIT_SETTLE: Duration = Duration::from_secs(3);

/// Run one session of `container` (on its own task), then hand the container back.
pub async fn run_session(
    docker: Docker,
    ctx: Arc<DockerJobContext>,
    mut container: Box<Container>,
    mut labels: watch::Receiver<Arc<Labels>>,
    mut stop: watch::Receiver<bool>,
) -> Done {
    let started = crate::entry::now_nanos();
    let mut end = container
        .read_log(&docker, &ctx, Read::Follow, &mut labels, &mut stop)
        .await;
    let mut gone = matches!(&end, SessionEnd::Failed(e) if super::client::is_not_found(e));
    let mut finished = false;
    if matches!(end, SessionEnd::Eof) {
        match settle(&docker, &container.id, started).await {
            Some(Exited::Stopped) => {
                // The end of a follow stream does not prove the end of the log: Docker's json-file
                // follower (20.10 at least) may close it when the container exits while the reader
                // is behind, lines still unread in the file (`docker logs -f` shows it too). The
                // container has stopped, so its log is complete: read it from the cursor to its end.
                end = container
                    .read_log(&docker, &ctx, Read::ToEnd, &mut labels, &mut stop)
                    .await;
                finished = matches!(end, SessionEnd::Eof);
                gone = matches!(&end, SessionEnd::Failed(e) if super::client::is_not_found(e));
            }
            Some(Exited::Removed) => {
                finished = true;
                gone = true;
            }
            None => {}
        }
        if finished {
            // The process ended: a last line without its newline is complete now.
            container.finish(&ctx).await;
        }
    }
    Done {
        container,
        end,
        gone,
        finished,
    }
}

enum Exited {
    Stopped,
    Removed,
}

/// After the log stream ended: did the container stop (or vanish)? `None` if it runs, because it was
/// started again since the session began (`docker restart`) or the stream broke for another reason
/// (the daemon, the connection).
async fn settle(docker: &Docker, id: &str, session_start_ns: i64) -> Option<Exited> {
    let deadline = tokio::time::Instant::now() + EXIT_SETTLE;
    loop {
        match docker.inspect_container(id, None).await {
            Ok(info) => {
                let state = info.state.as_ref();
                if state.and_then(|s| s.running) != Some(true) {
                    return Some(Exited::Stopped);
                }
                let started_ns = state
                    .and_then(|s| s.started_at.as_deref())
                    .and_then(rfc3339::parse_nano);
                if started_ns.is_some_and(|t| t > session_start_ns) {
                    return None;
                }
            }
            Err(e) if super::client::is_not_found(&e) => return Some(Exited::Removed),
            Err(_) => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests;
