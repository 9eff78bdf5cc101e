//! The buffer's writer thread: append every request the sink's batcher hands over, make it durable per
//! the fsync policy, then finish the shares of the source batches it holds (that is what lets the
//! sources' positions move).
//!
//! A record's payload is `appended_ms u64 LE` (for the oldest-record-age metric) followed by the
//! request in [`super::codec`] form.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::log::{frame_bytes, LogWriter};
use super::{codec, segment, unix_ms, BufferSettings, Cached, Shared, CACHE_BYTES};
use crate::config::{FsyncPolicy, WhenFull};
use crate::delivery::{Done, Outgoing, Payload};

/// A buffer that fills up again and again is reported at most this often.
const FULL_REPORT_EVERY: Duration = Duration::from_secs(300);

/// How long a full cache is waited for before the buffer spills to disk.
const SPILL_AFTER: Duration = Duration::from_secs(1);

/// Longest pause between retries of a failed write (a full disk).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
enum Room {
    Fits,
    Drop,
    Aborted,
}

pub(super) struct Writer {
    log: LogWriter,
    settings: BufferSettings,
    shared: Arc<Shared>,
    /// What finishes with the records appended but not yet fsynced.
    unsynced: Vec<Done>,
    /// When the oldest unsynced record was appended.
    since: Option<Instant>,
    last_sync: Instant,
    payload: Vec<u8>,
    /// When a full buffer was last reported (see [`Writer::report_full`]).
    full_reported: Option<Instant>,
    /// The cache stopped draining: records go to disk only (see [`Writer::wait_for_cache`]).
    spilling: bool,
    error_logged: bool,
}

impl Writer {
    pub fn new(log: LogWriter, settings: BufferSettings, shared: Arc<Shared>) -> Self {
        Writer {
            log,
            settings,
            shared,
            unsynced: Vec::new(),
            since: None,
            last_sync: Instant::now(),
            payload: Vec::new(),
            full_reported: None,
            spilling: false,
            error_logged: false,
        }
    }

    pub fn run(mut self, mut input: mpsc::Receiver<Outgoing>, runtime: Handle) {
        loop {
            let next = match self.since {
                Some(since) => {
                    // Busy (more batches waiting): sync every fsync_interval. Idle: sync soon, so
                    // positions move and a crash re-reads little; at most every tenth of the interval.
                    let interval = self.settings.fsync_interval;
                    let deadline = if input.is_empty() {
                        (self.last_sync + interval / 10).min(since + interval)
                    } else {
                        since + interval
                    };
                    // Made inside block_on: a timer needs the runtime's context.
                    let wait =
                        async { tokio::time::timeout_at(deadline.into(), input.recv()).await };
                    match runtime.block_on(wait) {
                        Ok(next) => next,
                        Err(_) => {
                            self.sync();
                            continue;
                        }
                    }
                }
                None => runtime.block_on(input.recv()),
            };
            match next {
                Some(delivery) => self.write(delivery),
                None => break,
            }
        }
        for _ in 0..3 {
            self.sync();
            if self.since.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.error_logged {
            // Gone, so no longer a buffer that cannot write (a reload may have retired it).
            self.shared.metrics.buffer_writable(true);
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.appended.notify_one();
    }

    fn write(&mut self, out: Outgoing) {
        let lines = out.entries() as u64;
        let Outgoing { payload, done } = out;
        // The frame is built in place (its header reserved), so a request is copied once.
        self.payload.clear();
        self.payload.resize(segment::HEADER, 0);
        let appended_ms = unix_ms();
        self.payload.extend_from_slice(&appended_ms.to_le_bytes());
        match &payload {
            Payload::Request(r) => codec::encode_request(r, &mut self.payload),
            Payload::Entries(b) => codec::encode(&b.entries, &mut self.payload),
        }
        let size = self.payload.len() as u64;
        let room = self.wait_for_room(size);
        if room == Room::Aborted {
            // Shutting down with a dead receiver: not stored, so the position stays where it was.
            return;
        }
        if room == Room::Drop {
            let b = &self.shared.metrics.buffer;
            b.dropped_entries
                .get_or_create(&self.shared.reason("buffer_full"))
                .inc_by(lines);
            // Dropped on purpose (drop_newest): the sources move on.
            done.finish();
            return;
        }
        let cached = self.wait_for_cache(size);
        let mut attempt = 0;
        let (start, end) = loop {
            match self.log.append_frame(&mut self.payload, lines) {
                Ok(at) => break at,
                Err(e) => {
                    attempt += 1;
                    if self.recycle() {
                        // Room comes back once the reader has deleted the segment: retry soon.
                        attempt = 0;
                    }
                    if !self.write_failed(&e, attempt) {
                        // The agent gave up (shutdown): not stored, so the position stays where
                        // it was and the lines are read again after the restart.
                        return;
                    }
                }
            }
        };
        crate::memory::release_if_large(&mut self.payload);
        if self.error_logged {
            self.error_logged = false;
            self.shared.metrics.buffer_writable(true);
            tracing::info!(sink = %self.settings.name, "buffer: writing works again; the sources resume");
        }
        let bytes = frame_bytes(start, end);
        self.shared.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.shared.records.fetch_add(1, Ordering::AcqRel);
        if cached {
            self.shared.cache_bytes.fetch_add(bytes, Ordering::AcqRel);
            self.shared.cache.lock().unwrap().push_back(Cached {
                start,
                end,
                payload,
                appended_ms,
            });
        }
        self.shared.appended.notify_one();
        self.shared.publish_gauges();
        self.unsynced.push(done);
        self.since.get_or_insert_with(Instant::now);
        if self.settings.fsync == FsyncPolicy::Always {
            self.sync();
        }
    }

    /// Whether the next record (`size` bytes) can also be kept in the cache. While the receiver keeps
    /// up, the sink drains the cache continuously: a full cache is waited for, so the sources go no
    /// faster than the sink, the backlog stays in the files, and the sink is fed from memory (the disk
    /// copy is only for a crash). When the cache does not drain for [`SPILL_AFTER`] (the receiver is
    /// down or stalled), the buffer spills: records go to disk only, the sources read ahead up to
    /// `max_size`, and the sink reads the backlog from disk later. Spilling stops once the cache is
    /// empty again.
    fn wait_for_cache(&mut self, size: u64) -> bool {
        // A request larger than the whole cache is let in when the cache is empty.
        let fits = move |s: &Shared| {
            let used = s.cache_bytes.load(Ordering::Acquire);
            used == 0 || used + size <= CACHE_BYTES
        };
        if self.spilling {
            if self.shared.cache_bytes.load(Ordering::Acquire) == 0 {
                self.spilling = false;
            }
            return fits(&self.shared) && !self.spilling;
        }
        if fits(&self.shared) {
            return true;
        }
        let deadline = Instant::now() + SPILL_AFTER;
        let (lock, cvar) = &self.shared.room;
        let mut guard = lock.lock().unwrap();
        while !fits(&self.shared) {
            let now = Instant::now();
            if now >= deadline || self.shared.aborted.load(Ordering::Acquire) {
                self.spilling = true;
                return false;
            }
            guard = cvar.wait_timeout(guard, deadline - now).unwrap().0;
        }
        true
    }

    /// Whether a full buffer is to be logged now: the first time, then at most every
    /// [`FULL_REPORT_EVERY`] (a receiver slower than the sources fills it again and again).
    fn report_full(&mut self) -> bool {
        let due = self
            .full_reported
            .map_or(true, |t| t.elapsed() >= FULL_REPORT_EVERY);
        if due {
            self.full_reported = Some(Instant::now());
        }
        due
    }

    /// Wait until `size` more bytes fit (`block`), or say they do not (`drop_newest`). A record larger
    /// than the whole buffer is let in when the buffer is empty, so it cannot block forever.
    fn wait_for_room(&mut self, size: u64) -> Room {
        let max = self.settings.max_size;
        let fits = move |s: &Shared| {
            let used = s.bytes.load(Ordering::Acquire);
            used == 0 || used + size <= max
        };
        if fits(&self.shared) {
            return Room::Fits;
        }
        if self.settings.when_full == WhenFull::DropNewest {
            if self.report_full() {
                tracing::warn!(sink = %self.settings.name, max_size = self.settings.max_size,
                    "buffer full: dropping new batches (when_full: drop_newest) until the receiver catches up");
            }
            return Room::Drop;
        }
        // Make what is appended durable first: its sources may move on while this one waits.
        self.sync();
        let report = self.report_full();
        if report {
            tracing::warn!(sink = %self.settings.name, max_size = self.settings.max_size,
                "buffer full: pausing the sources until the receiver catches up (when_full: block)");
        }
        let full = self
            .shared
            .metrics
            .buffer
            .full
            .get_or_create(&self.shared.label);
        full.set(1);
        let (lock, cvar) = &self.shared.room;
        let mut guard = lock.lock().unwrap();
        while !fits(&self.shared) {
            if self.shared.aborted.load(Ordering::Acquire) {
                return Room::Aborted;
            }
            guard = cvar.wait_timeout(guard, Duration::from_secs(1)).unwrap().0;
        }
        drop(guard);
        full.set(0);
        if report {
            tracing::info!(sink = %self.settings.name, "buffer has room again: sources resume");
        }
        Room::Fits
    }

    /// The segment being written was wholly accepted: start the next one so that the reader can
    /// delete it (on a disk smaller than a segment, nothing else frees room). Whether it did.
    fn recycle(&mut self) -> bool {
        match self.log.recycle() {
            Ok(true) => {
                tracing::info!(sink = %self.settings.name,
                    "buffer: the segment being written was all accepted; starting a new one so that it can be deleted");
                // The reader deletes it once it has let go of it.
                self.shared.appended.notify_one();
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::debug!(sink = %self.settings.name, error = %e, "buffer: cannot start a new segment");
                false
            }
        }
    }

    /// A failed append: log once, count, wait, and let the caller retry (`true`), unless the agent
    /// gave up meanwhile (`false`). The sources wait (the router cannot hand over more), so nothing
    /// is lost; what was appended before is synced so that its positions can still move, and the
    /// reader goes on sending what the buffer holds. The wait ends early when the reader frees room.
    fn write_failed(&mut self, e: &io::Error, attempt: u32) -> bool {
        let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
            "no_space"
        } else {
            "io"
        };
        self.shared.count_error(kind);
        if !self.error_logged {
            self.error_logged = true;
            self.shared.metrics.buffer_writable(false);
            tracing::error!(sink = %self.settings.name, dir = %self.settings.dir.display(), error = %e,
                "buffer: cannot write; the sources pause and the write is retried (free disk space?); logferry_ready is 0 until it works");
        }
        self.sync();
        let wait =
            (Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(6))).min(MAX_RETRY_WAIT);
        let (lock, cvar) = &self.shared.room;
        let guard = lock.lock().unwrap();
        if self.shared.aborted.load(Ordering::Acquire) {
            return false;
        }
        // One wait: room freed by the reader (or any other wake-up) retries at once, which is
        // harmless; otherwise the timer does.
        drop(cvar.wait_timeout(guard, wait).unwrap());
        !self.shared.aborted.load(Ordering::Acquire)
    }

    /// fsync, then ack every record appended so far. A failed fsync acks nothing (retried at the
    /// next interval): the records' positions stay where they were.
    fn sync(&mut self) {
        if self.since.is_none() {
            return;
        }
        match self.log.sync() {
            Ok(()) => {
                self.last_sync = Instant::now();
                for done in self.unsynced.drain(..) {
                    done.finish();
                }
                self.since = None;
            }
            Err(e) => {
                self.shared.count_error("io");
                if !self.error_logged {
                    self.error_logged = true;
                    tracing::error!(sink = %self.settings.name, error = %e,
                        "buffer: fsync failed; positions wait until it works");
                }
                self.since = Some(Instant::now());
            }
        }
    }
}
