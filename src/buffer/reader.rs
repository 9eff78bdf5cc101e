//! The buffer's reader task: hand records to the sink in order and move the ledger past every record
//! the receiver accepted.
//!
//! Records come from the writer's cache of recent requests when it has the next one and from disk
//! otherwise (a request is read as the bytes to send: nothing is decoded). Each record handed over carries an [`AckToken`] numbered in reading order; the
//! sink acks it once the receiver accepted it (or rejected it for good). Acks may arrive out of order
//! (a record of entries from an earlier release can span several requests), so the ledger moves only
//! over the accepted prefix.
//!
//! At shutdown (the writer closed), the reader hands over what is left while the receiver takes it;
//! when the agent gives up waiting (`abort`), it stops, and what was not accepted stays on disk for
//! the next start. A sink restarted by a config reload is `retire`d: the reader hands out nothing more,
//! the sink finishes what it holds, and the rest stays on disk for the sink's new instance.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::watch;

use super::log::{frame_bytes, LogReader, Position, Read};
use super::segment::{self, Tally};
use super::{codec, unix_ms, BufferSettings, Shared};
use crate::delivery::{AckToken, Done, Outgoing, Payload};

/// A record handed to the sink (or skipped), in reading order.
struct InFlight {
    id: u64,
    end: Position,
    bytes: u64,
    records: u64,
    appended_ms: u64,
    done: bool,
}

pub(super) struct Reader {
    log: LogReader,
    settings: BufferSettings,
    shared: Arc<Shared>,
    sink: Option<mpsc::Sender<Outgoing>>,
    done_tx: Option<mpsc::UnboundedSender<u64>>,
    done_rx: mpsc::UnboundedReceiver<u64>,
    inflight: VecDeque<InFlight>,
    next_id: u64,
    /// Read, waiting for room in the sink's queue.
    pending: Option<Outgoing>,
    damage_logged: bool,
    error_logged: bool,
}

enum Event {
    Abort,
    /// `Some(true)`: retired; `None`: nobody can retire it any more.
    Retire(Option<bool>),
    Acked(Option<u64>),
    Room(OwnedPermit<Outgoing>),
    SinkGone,
    Appended,
    Tick,
}

impl Reader {
    pub fn new(
        log: LogReader,
        settings: BufferSettings,
        shared: Arc<Shared>,
        sink: mpsc::Sender<Outgoing>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Reader {
            log,
            settings,
            shared,
            sink: Some(sink),
            done_tx: Some(done_tx),
            done_rx,
            inflight: VecDeque::new(),
            next_id: 0,
            pending: None,
            damage_logged: false,
            error_logged: false,
        }
    }

    pub async fn run(
        mut self,
        mut abort: watch::Receiver<bool>,
        mut retire: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut aborted = false;
        let mut retired = false;
        let mut retire_watched = true;
        loop {
            if self.sink.is_some() && self.pending.is_none() {
                // Read `closed` first: once it is set, every record is on disk or in the cache.
                let closed = self.shared.closed.load(Ordering::Acquire);
                self.fetch();
                if self.pending.is_none() && closed {
                    self.stop_feeding();
                }
            }
            let sink = self.sink.clone();
            let event = tokio::select! {
                biased;
                _ = abort.wait_for(|a| *a), if !aborted => Event::Abort,
                r = retire.wait_for(|r| *r), if !retired && retire_watched => {
                    Event::Retire(r.ok().map(|_| true))
                }
                id = self.done_rx.recv() => Event::Acked(id),
                permit = async { sink.expect("checked").reserve_owned().await },
                    if self.pending.is_some() && self.sink.is_some() => match permit {
                    Ok(p) => Event::Room(p),
                    Err(_) => Event::SinkGone,
                },
                _ = self.shared.appended.notified(),
                    if self.pending.is_none() && self.sink.is_some() => Event::Appended,
                _ = tick.tick() => Event::Tick,
            };
            match event {
                Event::Abort => {
                    aborted = true;
                    self.shared.aborted.store(true, Ordering::Release);
                    self.shared.notify_room();
                    self.stop_feeding();
                }
                Event::Retire(Some(_)) => {
                    retired = true;
                    self.stop_feeding();
                }
                // Nobody can retire it any more: stop watching.
                Event::Retire(None) => retire_watched = false,
                Event::Acked(Some(id)) => self.acked(id),
                // Every token is gone and nothing more will be read: done.
                Event::Acked(None) => break,
                Event::Room(permit) => {
                    if let Some(d) = self.pending.take() {
                        permit.send(d);
                    }
                }
                Event::SinkGone => self.stop_feeding(),
                // The writer may have moved past a segment that was all accepted (a full disk).
                Event::Appended => self.tidy(),
                Event::Tick => {
                    self.tidy();
                    self.publish();
                }
            }
        }
        self.publish();
        if retired && !aborted {
            // The writer may still be taking the last batches and wait for room that nothing frees
            // any more (a full buffer): an abort must still reach it.
            while !self.shared.closed.load(Ordering::Acquire) {
                tokio::select! {
                    _ = abort.wait_for(|a| *a) => {
                        self.shared.aborted.store(true, Ordering::Release);
                        self.shared.notify_room();
                        break;
                    }
                    _ = tick.tick() => {}
                }
            }
        }
    }

    /// Delete what was accepted and the writer has moved past; a writer waiting for disk space
    /// retries at once.
    fn tidy(&mut self) {
        match self.log.tidy() {
            Ok(true) => self.shared.notify_room(),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "buffer: cannot delete an accepted segment"),
        }
    }

    fn stop_feeding(&mut self) {
        self.sink = None;
        self.pending = None;
        self.done_tx = None;
    }

    /// Take the next record into `pending`, if there is one.
    fn fetch(&mut self) {
        if self.take_cached() {
            return;
        }
        loop {
            match self.log.read_next() {
                Ok(Read::Record { start, end }) => {
                    let bytes = frame_bytes(start, end);
                    let payload = self.log.payload();
                    let decoded = payload
                        .get(..8)
                        .map(|ms| u64::from_le_bytes(ms.try_into().unwrap()))
                        .ok_or_else(|| "record too short".to_string())
                        .and_then(|ms| codec::decode_record(&payload[8..]).map(|p| (ms, p)));
                    match decoded {
                        Ok((appended_ms, payload)) => {
                            self.hand_over(payload, end, bytes, appended_ms);
                            return;
                        }
                        Err(why) => {
                            self.damaged(bytes, 1, &why);
                            self.skip(end, bytes, 1);
                        }
                    }
                }
                Ok(Read::Damaged { bytes, records }) => {
                    self.damaged(bytes, records, "bad checksum or framing");
                    self.skip(self.log.position(), bytes, records);
                }
                Ok(Read::Missing { seq, lost }) => {
                    self.missing(seq, lost);
                    let lost = lost.unwrap_or_default();
                    self.skip(self.log.position(), lost.bytes, lost.records);
                }
                Ok(Read::End) => return,
                Err(e) => {
                    self.shared.count_error("read");
                    if !self.error_logged {
                        self.error_logged = true;
                        tracing::error!(sink = %self.settings.name, dir = %self.log.dir().display(), error = %e,
                            "buffer: cannot read a segment; skipping it");
                    }
                }
            }
        }
    }

    /// The next record from the writer's cache, when it is the one due.
    fn take_cached(&mut self) -> bool {
        let mut cache = self.shared.cache.lock().unwrap();
        let mut freed = false;
        while let Some(front) = cache.front() {
            let at = self.log.position();
            if front.start > at {
                break;
            }
            let c = cache.pop_front().expect("front exists");
            let bytes = frame_bytes(c.start, c.end);
            self.shared.cache_bytes.fetch_sub(bytes, Ordering::AcqRel);
            freed = true;
            if c.start == at {
                drop(cache);
                self.shared.notify_room();
                self.log.skip_to(c.end);
                self.hand_over(c.payload, c.end, bytes, c.appended_ms);
                return true;
            }
        }
        drop(cache);
        if freed {
            // Records already read from disk left the cache: the writer may be waiting for that room.
            self.shared.notify_room();
        }
        false
    }

    fn hand_over(&mut self, payload: Payload, end: Position, bytes: u64, appended_ms: u64) {
        let Some(done) = &self.done_tx else { return };
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.push_back(InFlight {
            id,
            end,
            bytes,
            records: 1,
            appended_ms,
            done: false,
        });
        self.pending = Some(Outgoing {
            payload,
            done: Done::Record(AckToken::record(id, done.clone())),
        });
    }

    /// Move past damage as if it had been accepted (it is counted as lost).
    fn skip(&mut self, end: Position, bytes: u64, records: u64) {
        self.shared.freed(bytes, records);
        let id = self.next_id;
        self.next_id += 1;
        self.inflight.push_back(InFlight {
            id,
            end,
            bytes: 0,
            records: 0,
            appended_ms: 0,
            done: false,
        });
        self.acked(id);
    }

    fn damaged(&mut self, bytes: u64, records: u64, why: &str) {
        let b = &self.shared.metrics.buffer;
        b.damaged_records
            .get_or_create(&self.shared.label)
            .inc_by(records);
        b.damaged_bytes
            .get_or_create(&self.shared.label)
            .inc_by(bytes);
        if !self.damage_logged {
            self.damage_logged = true;
            tracing::error!(sink = %self.settings.name, dir = %self.log.dir().display(), records, bytes, reason = why,
                "buffer: damaged records skipped; their lines are lost (see logferry_buffer_damaged_records_total)");
        } else {
            tracing::warn!(sink = %self.settings.name, records, bytes, reason = why, "buffer: damaged records skipped");
        }
    }

    /// A segment file was deleted before it was sent: count and say what it held, from its summary.
    fn missing(&mut self, seq: u64, lost: Option<Tally>) {
        let path = segment::segment_path(self.log.dir(), seq);
        let b = &self.shared.metrics.buffer;
        b.missing_segments.get_or_create(&self.shared.label).inc();
        let Some(lost) = lost else {
            tracing::error!(sink = %self.settings.name, segment = %path.display(),
                "buffer: a segment file is missing and so is its summary: its lines are lost and cannot be counted (see logferry_buffer_missing_segments_total)");
            return;
        };
        b.count_lost(&self.shared.label, lost.records, lost.bytes, lost.lines);
        tracing::error!(sink = %self.settings.name, segment = %path.display(), records = lost.records, lines = lost.lines, bytes = lost.bytes,
            "buffer: a segment file is missing (deleted?): its lines are lost; their positions were committed, so no source sends them again (see logferry_buffer_dropped_entries_total{{reason=\"damaged\"}})");
    }

    fn acked(&mut self, id: u64) {
        let Some(first) = self.inflight.front().map(|f| f.id) else {
            return;
        };
        let Some(rec) = id
            .checked_sub(first)
            .and_then(|i| self.inflight.get_mut(i as usize))
        else {
            return;
        };
        rec.done = true;
        let (mut upto, mut bytes, mut records) = (None, 0, 0);
        while self.inflight.front().is_some_and(|f| f.done) {
            let f = self.inflight.pop_front().expect("front exists");
            upto = Some(f.end);
            bytes += f.bytes;
            records += f.records;
        }
        let Some(upto) = upto else { return };
        if let Err(e) = self.log.ack(upto) {
            self.shared.count_error("io");
            if !self.error_logged {
                self.error_logged = true;
                tracing::error!(sink = %self.settings.name, error = %e,
                    "buffer: cannot write the ledger (accepted records may be sent again after a restart)");
            }
        }
        self.shared.freed(bytes, records);
        self.shared.publish_gauges();
    }

    fn publish(&self) {
        self.shared.publish_gauges();
        let age = self
            .inflight
            .iter()
            .find(|f| f.records > 0)
            .map_or(0, |f| unix_ms().saturating_sub(f.appended_ms) / 1000);
        self.shared
            .metrics
            .buffer
            .oldest_age_seconds
            .get_or_create(&self.shared.label)
            .set(age as i64);
    }
}
