//! A sink's disk buffer: the piece of the delivery contract (DESIGN.md) that lets a receiver outage,
//! a crash or a power cut lose nothing.
//!
//! ```text
//!  batcher ──Outgoing──▶ writer thread ──append──▶ segments (log.rs) ──read──▶ reader task ──▶ sender
//!  (one request)          │ fsync per policy, then finish the sources' shares  ▲ acks from the sender
//!                         └─ recent requests also kept in memory (cache) ──────┘ (receiver accepted)
//! ```
//!
//! * The **writer** ([`writer`]) runs on its own thread (appends and fsyncs block). It appends every
//!   request as one record ([`codec`]: the body exactly as it is sent, compressed) and finishes the
//!   shares of the source batches it holds once the record is durable (`fsync: always`, or the next
//!   `fsync_interval`): that moves their positions. When the buffer holds `max_size` it waits for
//!   room (`when_full: block`: the batcher, then the router wait, the sources pause) or drops the
//!   request and counts its entries (`drop_newest`). A full disk (ENOSPC) is retried until there is space (`logferry_ready`
//!   is 0 meanwhile) or the agent gives up at shutdown; a segment being written that was all accepted
//!   is then replaced by a new one, so the reader can delete it (see `log::LogWriter::recycle`).
//! * The **reader** ([`reader`]) hands records to the sender in order, from the cache of recent
//!   requests when it has them and from disk otherwise (after a restart or a long outage); either
//!   way the stored bytes are sent as they are. The sink acks a record once the receiver accepted
//!   it; the reader then moves the ledger past every record accepted so far, in order, and deletes
//!   segments that are wholly accepted.
//!
//! Memory stays bounded whatever the backlog: the sink holds at most a few batches, the cache at most
//! [`CACHE_BYTES`], and the rest is on disk.

pub mod codec;
pub mod deadletter;
pub mod log;
mod reader;
pub mod segment;
mod writer;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};

use crate::config::{FsyncPolicy, WhenFull};
use crate::delivery::{Outgoing, Payload};
use crate::metrics::{Escaped, Metrics, SinkLabel, SinkReasonLabel};
use log::Position;

/// Bytes of recent requests kept in memory for the reader (compressed for Loki: about 20 MiB of
/// lines; more only lets the sources run further ahead of the receiver, not faster).
pub const CACHE_BYTES: u64 = 4 << 20;

/// A disk buffer's settings, from `clients[].buffer`.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    /// Names the buffer in metrics and logs.
    pub name: String,
    pub dir: PathBuf,
    pub max_size: u64,
    pub segment_size: u64,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub when_full: WhenFull,
}

/// A record appended by the writer and still in memory.
struct Cached {
    start: Position,
    end: Position,
    payload: Payload,
    appended_ms: u64,
}

/// What the writer and the reader share.
struct Shared {
    /// Bytes and records on disk not yet accepted by the receiver.
    bytes: AtomicU64,
    records: AtomicU64,
    /// The writer has appended its last record (the router is gone).
    closed: AtomicBool,
    /// The agent gave up waiting for the receiver (shutdown timeout): stop waiting for room.
    aborted: AtomicBool,
    /// The writer appended something (wakes the reader).
    appended: Notify,
    /// The reader freed room (wakes a writer waiting with `when_full: block`).
    room: (Mutex<()>, Condvar),
    cache: Mutex<VecDeque<Cached>>,
    cache_bytes: AtomicU64,
    metrics: Arc<Metrics>,
    label: SinkLabel,
}

impl Shared {
    fn reason(&self, reason: &str) -> SinkReasonLabel {
        SinkReasonLabel {
            sink: self.label.sink.clone(),
            reason: reason.to_owned(),
        }
    }

    fn publish_gauges(&self) {
        let b = &self.metrics.buffer;
        b.bytes
            .get_or_create(&self.label)
            .set(self.bytes.load(Ordering::Relaxed) as i64);
        b.records
            .get_or_create(&self.label)
            .set(self.records.load(Ordering::Relaxed) as i64);
    }

    fn freed(&self, bytes: u64, records: u64) {
        let sub = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
        };
        sub(&self.bytes, bytes);
        sub(&self.records, records);
        self.notify_room();
    }

    /// Wake a writer waiting for room (in the buffer or the cache), or told to stop waiting.
    fn notify_room(&self) {
        let (lock, cvar) = &self.room;
        let _guard = lock.lock().unwrap();
        cvar.notify_all();
    }

    /// Count a buffer I/O error (`no_space`, `io`, `read`).
    fn count_error(&self, reason: &str) {
        self.metrics
            .buffer
            .io_errors
            .get_or_create(&self.reason(reason))
            .inc();
    }
}

/// A running buffer: where the router sends, and what to wait for at shutdown (the reader, and the
/// writer's end: its last records synced and acked).
pub struct Buffer {
    pub reader: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub writer_done: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The queue a buffered sink's batcher sends its requests to: the writer takes them from `.1`. One
/// deep, because the writer takes requests as fast as it can append them, and each is up to
/// `batchsize`.
pub fn input() -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
    mpsc::channel(1)
}

/// Open the buffer in `settings.dir` and start its writer, which takes requests from `input` (see
/// [`input`]), and its reader, which feeds `sink` (the sender). `abort` turning true makes it stop handing out
/// records (they stay on disk for the next start); `retire` turning true too, but the sink first
/// finishes what it was handed (a config reload restarts the sink).
pub fn start(
    settings: BufferSettings,
    metrics: Arc<Metrics>,
    input: mpsc::Receiver<Outgoing>,
    sink: mpsc::Sender<Outgoing>,
    abort: watch::Receiver<bool>,
    retire: watch::Receiver<bool>,
) -> std::io::Result<Buffer> {
    open(settings, metrics)?.start(input, sink, abort, retire)
}

/// A buffer opened (its log recovered), not started yet.
pub struct Opened {
    settings: BufferSettings,
    log_writer: log::LogWriter,
    log_reader: log::LogReader,
    shared: Arc<Shared>,
}

/// Open the buffer in `settings.dir`: what [`start`] does first, the part that can fail for want of
/// the directory.
pub fn open(settings: BufferSettings, metrics: Arc<Metrics>) -> std::io::Result<Opened> {
    let (log_writer, log_reader, recovery) = log::open(&settings.dir, settings.segment_size)?;
    let label = SinkLabel {
        sink: Escaped(settings.name.clone()),
    };
    metrics.buffer.init_sink(&label);
    report_recovery(&settings, &metrics, &label, &recovery);
    if recovery.ledger_reset {
        tracing::warn!(sink = %settings.name, dir = %settings.dir.display(),
            "buffer: ledger unreadable; sending the whole buffer again (duplicates possible, no loss)");
    }
    if recovery.records > 0 {
        tracing::info!(sink = %settings.name, records = recovery.records, bytes = recovery.bytes,
            "buffer: sending what the last run left");
    }
    let shared = Arc::new(Shared {
        bytes: AtomicU64::new(recovery.bytes),
        records: AtomicU64::new(recovery.records),
        closed: AtomicBool::new(false),
        aborted: AtomicBool::new(false),
        appended: Notify::new(),
        room: (Mutex::new(()), Condvar::new()),
        cache: Mutex::new(VecDeque::new()),
        cache_bytes: AtomicU64::new(0),
        metrics,
        label,
    });
    shared.publish_gauges();
    Ok(Opened {
        settings,
        log_writer,
        log_reader,
        shared,
    })
}

/// Say (and count) what opening the buffer repaired, and what it found lost.
fn report_recovery(
    settings: &BufferSettings,
    metrics: &Metrics,
    label: &SinkLabel,
    recovery: &log::Recovery,
) {
    let (name, dir) = (&settings.name, settings.dir.display());
    let b = &metrics.buffer;
    if recovery.torn_bytes > 0 {
        b.torn_bytes
            .get_or_create(label)
            .inc_by(recovery.torn_bytes);
        if recovery.unsummarized {
            tracing::warn!(sink = %name, bytes = recovery.torn_bytes, dir = %dir,
                "buffer: cut off a torn last record (a segment without a summary, from an older release: whether its lines were acknowledged is unknown)");
        } else {
            tracing::warn!(sink = %name, bytes = recovery.torn_bytes, dir = %dir,
                "buffer: cut off a torn last record left by a crash (written after the last fsync, so never acknowledged: its lines are read again from their source)");
        }
    }
    let lost = &recovery.lost;
    if lost.bytes > 0 {
        b.count_lost(label, lost.records, lost.bytes, lost.lines);
        let at_most = if recovery.lost_at_most {
            "at most "
        } else {
            ""
        };
        tracing::error!(sink = %name, dir = %dir, records = lost.records, lines = lost.lines, bytes = lost.bytes,
            "buffer: the newest segment is shorter than what had been made durable (cut short?): {at_most}these records and lines are lost; their positions were committed, so no source sends them again (see logferry_buffer_dropped_entries_total{{reason=\"damaged\"}})");
    }
}

impl Opened {
    /// Start the writer, taking requests from `input`, and the reader, feeding `sink` (see [`start`]).
    pub fn start(
        self,
        input: mpsc::Receiver<Outgoing>,
        sink: mpsc::Sender<Outgoing>,
        abort: watch::Receiver<bool>,
        retire: watch::Receiver<bool>,
    ) -> std::io::Result<Buffer> {
        let Opened {
            settings,
            log_writer,
            log_reader,
            shared,
        } = self;
        let writer = writer::Writer::new(log_writer, settings.clone(), shared.clone());
        let runtime = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("buffer-{}", settings.name))
            .spawn(move || {
                writer.run(input, runtime);
                let _ = done_tx.send(());
            })?;
        let reader = reader::Reader::new(log_reader, settings, shared, sink);
        Ok(Buffer {
            reader: Box::pin(reader.run(abort, retire)),
            writer_done: Box::pin(async move {
                let _ = done_rx.await;
            }),
        })
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{AckToken, Done, PartAck, Request};
    use crate::positions::{Checkpoint, Positions};

    fn settings(dir: &std::path::Path) -> BufferSettings {
        BufferSettings {
            name: "t".into(),
            dir: dir.to_owned(),
            max_size: 1 << 20,
            segment_size: 4096,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_millis(20),
            when_full: WhenFull::Block,
        }
    }

    /// A request of one line, `line n`, whose durability commits cursor `n`.
    fn request(positions: &Positions, n: usize) -> Outgoing {
        let checkpoint = Checkpoint::Cursor {
            key: "cursor-t".into(),
            value: n.to_string(),
        };
        let token = AckToken::new(
            crate::delivery::Commits::new(positions.clone()),
            checkpoint,
            1,
        );
        let part = PartAck::new(token);
        let body = format!("line {n}");
        Outgoing {
            payload: Payload::Request(Request {
                bytes: body.len() as u64,
                body: body.into(),
                dest: "tenant".into(),
                entries: 1,
            }),
            done: Done::Parts(vec![part]),
        }
    }

    /// The line a request handed to the sink holds.
    fn line(out: &Outgoing) -> String {
        match &out.payload {
            Payload::Request(r) => {
                assert_eq!((&*r.dest, r.entries), ("tenant", 1));
                String::from_utf8(r.body.to_vec()).unwrap()
            }
            Payload::Entries(_) => panic!("a request was written"),
        }
    }

    /// A buffer in `dir` feeding `sink`: where to send it batches, and the buffer.
    fn started(
        dir: &std::path::Path,
        sink: mpsc::Sender<Outgoing>,
        abort: watch::Receiver<bool>,
        retire: watch::Receiver<bool>,
    ) -> (mpsc::Sender<Outgoing>, Buffer) {
        let (input_tx, input_rx) = input();
        let b = start(settings(dir), Metrics::new(), input_rx, sink, abort, retire).unwrap();
        (input_tx, b)
    }

    /// A retire signal that never comes.
    fn never() -> watch::Receiver<bool> {
        watch::channel(false).1
    }

    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    fn ledger(dir: &std::path::Path) -> String {
        std::fs::read_to_string(dir.join("ledger")).unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positions_move_when_durable_and_the_ledger_only_over_the_accepted_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::in_memory();
        let (sink_tx, mut sink_rx) = mpsc::channel(16);
        let (abort_tx, abort_rx) = watch::channel(false);
        let (input_tx, b) = started(dir.path(), sink_tx, abort_rx, never());
        let reader = tokio::spawn(b.reader);
        let writer = tokio::spawn(b.writer_done);
        for n in 0..3 {
            input_tx.send(request(&positions, n)).await.unwrap();
        }
        // Durable in the buffer: the source's position moves, before any receiver accepted it.
        eventually("the position to be committed", || {
            positions.cursor("cursor-t").as_deref() == Some("2")
        })
        .await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(sink_rx.recv().await.unwrap());
        }
        let lines: Vec<String> = got.iter().map(line).collect();
        assert_eq!(lines, ["line 0", "line 1", "line 2"], "in order");
        let first = got.remove(0);
        for d in got {
            d.done.finish();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ledger(dir.path()), "", "record 0 is not accepted yet");
        first.done.finish();
        eventually("the ledger to move", || !ledger(dir.path()).is_empty()).await;
        drop(input_tx);
        writer.await.unwrap();
        let _ = abort_tx.send(true);
        reader.await.unwrap();
        let (_, _, recovery) = log::open(dir.path(), 4096).unwrap();
        assert_eq!(recovery.records, 0, "everything was accepted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_was_not_accepted_is_sent_again_after_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::in_memory();
        {
            let (sink_tx, mut sink_rx) = mpsc::channel(16);
            let (abort_tx, abort_rx) = watch::channel(false);
            let (input_tx, b) = started(dir.path(), sink_tx, abort_rx, never());
            let reader = tokio::spawn(b.reader);
            for n in 0..4 {
                input_tx.send(request(&positions, n)).await.unwrap();
            }
            let first = sink_rx.recv().await.unwrap();
            first.done.finish();
            eventually("the ledger to move", || !ledger(dir.path()).is_empty()).await;
            // The receiver is down for the rest: the agent gives up at shutdown.
            drop(input_tx);
            b.writer_done.await;
            let _ = abort_tx.send(true);
            // The sink stops too, dropping what it held.
            drop(sink_rx);
            reader.await.unwrap();
        }
        let (sink_tx, mut sink_rx) = mpsc::channel(16);
        let (_abort_tx, abort_rx) = watch::channel(false);
        let (_input_tx, b) = started(dir.path(), sink_tx, abort_rx, never());
        tokio::spawn(b.reader);
        let mut lines = Vec::new();
        for _ in 0..3 {
            let d = sink_rx.recv().await.unwrap();
            lines.push(line(&d));
            d.done.finish();
        }
        assert_eq!(lines, ["line 1", "line 2", "line 3"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retired_buffer_stops_feeding_and_its_successor_sends_the_rest_once() {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::in_memory();
        let mut accepted = Vec::new();
        {
            // A short sink queue: the reader cannot hand everything out at once.
            let (sink_tx, mut sink_rx) = mpsc::channel(2);
            let (_abort_tx, abort_rx) = watch::channel(false);
            let (retire, retire_rx) = watch::channel(false);
            let (input_tx, b) = started(dir.path(), sink_tx, abort_rx, retire_rx);
            let reader = tokio::spawn(b.reader);
            for n in 0..8 {
                input_tx.send(request(&positions, n)).await.unwrap();
            }
            drop(input_tx);
            b.writer_done.await;
            let first = sink_rx.recv().await.unwrap();
            accepted.push(line(&first));
            first.done.finish();
            let _ = retire.send(true);
            // The sink finishes what it was handed (the reader sends nothing more) and stops.
            while let Some(d) = sink_rx.recv().await {
                accepted.push(line(&d));
                d.done.finish();
            }
            reader.await.unwrap();
        }
        assert!(accepted.len() < 8, "retired before the end: {accepted:?}");
        let (sink_tx, mut sink_rx) = mpsc::channel(16);
        let (_abort_tx, abort_rx) = watch::channel(false);
        let (_input_tx, b) = started(dir.path(), sink_tx, abort_rx, never());
        tokio::spawn(b.reader);
        while accepted.len() < 8 {
            let d = sink_rx.recv().await.unwrap();
            accepted.push(line(&d));
            d.done.finish();
        }
        let all: Vec<String> = (0..8).map(|n| format!("line {n}")).collect();
        assert_eq!(accepted, all, "each record once, in order");
    }
}
