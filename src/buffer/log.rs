//! A sink's buffer directory as one log, split in two ends that run on different threads: the
//! [`LogWriter`] appends records at the head, the [`LogReader`] reads them in order from the tail and
//! acknowledges them once the receiver accepted them.
//!
//! The ledger file remembers the first unacknowledged record (segment and offset), so after a restart
//! reading resumes exactly there; segments wholly before it are deleted. The ledger is replaced
//! atomically (write, rename) on every acknowledgement, without fsync: a process crash keeps it (the
//! page cache survives), and a power cut can only make it older, which means records sent again
//! (duplicates), never records skipped.
//!
//! Durability of appended records is the writer's call: [`LogWriter::sync`] makes everything appended
//! so far durable (the `fsync: always|interval` policy lives in `buffer::writer`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::segment::{
    self, list_files, list_segments, open_sum, read_sum, repair_tail, segment_path, sum_path,
    write_sum, Frame, SegmentWriter, Tally,
};

/// Where a record starts (or where the one before it ends): its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// What opening a log found, and repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last record cut off. With a summary they were written after the last fsync,
    /// so they were never acknowledged: their lines are read again from their source.
    pub torn_bytes: u64,
    /// The newest segment has no summary (written by an older release): whether a torn record was
    /// acknowledged is unknown.
    pub unsummarized: bool,
    /// What the newest segment lost below what had been made durable (a file cut short): lines whose
    /// positions were committed, so no source sends them again.
    pub lost: Tally,
    /// `lost.records` and `lost.lines` are an upper bound: part of what was cut had been accepted.
    pub lost_at_most: bool,
    /// The ledger was unreadable or pointed nowhere: reading starts at the oldest segment.
    pub ledger_reset: bool,
    /// Records waiting to be sent, and their bytes on disk.
    pub records: u64,
    pub bytes: u64,
}

/// A position one end of the log publishes for the other: the writer its head (every byte before it
/// is a whole record), the reader what the receiver accepted.
#[derive(Default)]
pub struct Mark(Mutex<Position>);

impl Mark {
    pub fn get(&self) -> Position {
        *self.0.lock().unwrap()
    }
    fn set(&self, p: Position) {
        *self.0.lock().unwrap() = p;
    }
}

const LEDGER: &str = "ledger";

/// The lines of a record's payload (`appended_ms u64`, then a batch: see `buffer::writer`).
fn record_lines(payload: &[u8]) -> u64 {
    payload
        .get(8..)
        .and_then(super::codec::entry_count)
        .unwrap_or(0)
}

/// Open the log in `dir` (created if missing), repairing what a crash left: a torn last record is
/// cut off, a bad ledger makes reading start at the oldest segment (duplicates, no loss). What a
/// newest segment cut below its summary lost is counted in the [`Recovery`].
pub fn open(dir: &Path, segment_size: u64) -> io::Result<(LogWriter, LogReader, Recovery)> {
    fs::create_dir_all(dir)?;
    let mut recovery = Recovery::default();
    let seqs = list_segments(dir)?;
    let head_seq = seqs.last().copied().unwrap_or(0);
    let ledger = read_ledger(dir);
    let mut head_tally = Tally::default();
    if !seqs.is_empty() {
        let repaired = repair_tail(&segment_path(dir, head_seq), record_lines)?;
        head_tally = repaired.kept;
        // What of the newest segment the receiver accepted (the ledger may name a later one).
        let accepted = match ledger {
            Some(p) if p.seq == head_seq => p.offset,
            Some(p) if p.seq > head_seq => u64::MAX,
            _ => 0,
        };
        match read_sum(dir, head_seq) {
            Some(durable) if durable.bytes > repaired.kept.bytes && accepted < durable.bytes => {
                let mut lost = durable.beyond(&repaired.kept);
                // Damage inside what is left is reported when it is read.
                lost.records = lost.records.saturating_sub(repaired.damaged_records);
                if accepted > repaired.kept.bytes {
                    lost.bytes = durable.bytes - accepted;
                    recovery.lost_at_most = true;
                }
                recovery.lost = lost;
            }
            Some(_) => recovery.torn_bytes = repaired.torn,
            None => {
                recovery.torn_bytes = repaired.torn;
                recovery.unsummarized = repaired.torn > 0;
            }
        }
    }
    let oldest = Position {
        seq: seqs.first().copied().unwrap_or(0),
        offset: 0,
    };
    let ledger_exists = dir.join(LEDGER).exists();
    let acked = match ledger {
        // Acknowledged records whose segment is gone: start at what is left.
        Some(p) if seqs.first().is_some_and(|first| p.seq < *first) => oldest,
        Some(p) if seqs.contains(&p.seq) => {
            // A power cut can leave a segment shorter than what was acknowledged of it: what is
            // missing was never made durable, so its positions were never committed either.
            let len = fs::metadata(segment_path(dir, p.seq)).map_or(0, |m| m.len());
            Position {
                seq: p.seq,
                offset: p.offset.min(len),
            }
        }
        Some(p) if seqs.is_empty() => Position {
            seq: p.seq,
            offset: 0,
        },
        _ => {
            recovery.ledger_reset = ledger_exists && !seqs.is_empty();
            oldest
        }
    };
    // Appending continues in the newest segment, or the one the ledger names if it is newer.
    let writer = SegmentWriter::open(dir, head_seq.max(acked.seq))?;
    if writer.seq != head_seq {
        head_tally = Tally::default();
    }
    // What is left is durable from here on, and its summary says so (a loss is reported once).
    writer.sync()?;
    let sum = open_sum(dir, writer.seq).ok();
    if let Some(f) = &sum {
        let _ = write_sum(f, &head_tally);
    }
    let head = Arc::new(Mark::default());
    head.set(Position {
        seq: writer.seq,
        offset: writer.len,
    });
    let accepted = Arc::new(Mark::default());
    accepted.set(acked);
    let mut reader = LogReader {
        dir: dir.to_owned(),
        head: head.clone(),
        accepted: accepted.clone(),
        read: acked,
        acked,
        file: None,
        scratch: Vec::new(),
    };
    reader.remove_before(acked.seq, writer.seq)?;
    // Count what is waiting, then read it from the start to send it.
    (recovery.records, recovery.bytes) = reader.count_backlog()?;
    reader.read = acked;
    let log_writer = LogWriter {
        dir: dir.to_owned(),
        segment_size,
        writer,
        head,
        accepted,
        scratch: Vec::new(),
        tally: head_tally,
        sum,
    };
    Ok((log_writer, reader, recovery))
}

/// The bytes a record occupies on disk, from its start to its end (both in one segment).
pub fn frame_bytes(start: Position, end: Position) -> u64 {
    end.offset - start.offset
}

pub struct LogWriter {
    dir: PathBuf,
    segment_size: u64,
    writer: SegmentWriter,
    head: Arc<Mark>,
    /// What the receiver accepted (the reader's).
    accepted: Arc<Mark>,
    scratch: Vec<u8>,
    /// What the open segment holds; its summary says so after each sync.
    tally: Tally,
    /// The open segment's summary, when it could be created (not on a full disk).
    sum: Option<File>,
}

impl LogWriter {
    /// Append one record of `lines` lines; a new segment is started once the current one reached
    /// `segment_size`. Returns where the record starts and ends. On error nothing was appended (a
    /// partial write is cut off), so the append can be retried.
    pub fn append(&mut self, payload: &[u8], lines: u64) -> io::Result<(Position, Position)> {
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        segment::frame(payload, &mut frame);
        let r = self.append_frame(&mut frame, lines);
        self.scratch = frame;
        crate::memory::release_if_large(&mut self.scratch);
        r
    }

    /// Append one record built in place: `frame` holds [`segment::HEADER`] reserved bytes and then
    /// the payload; the header is filled in here.
    pub fn append_frame(
        &mut self,
        frame: &mut [u8],
        lines: u64,
    ) -> io::Result<(Position, Position)> {
        segment::seal(frame);
        if self.writer.len >= self.segment_size {
            // The finished segment is made durable before the next one starts, so a sync of the
            // newest segment covers everything appended.
            self.sync()?;
            self.roll_over()?;
        }
        let start = Position {
            seq: self.writer.seq,
            offset: self.writer.len,
        };
        self.writer.append(frame)?;
        let end = Position {
            seq: self.writer.seq,
            offset: self.writer.len,
        };
        self.tally.add(frame.len() as u64, lines);
        self.head.set(end);
        Ok((start, end))
    }

    /// Start the next segment.
    fn roll_over(&mut self) -> io::Result<()> {
        let next = SegmentWriter::open(&self.dir, self.writer.seq + 1)?;
        File::open(&self.dir)?.sync_all()?;
        self.writer = next;
        self.tally = Tally::default();
        // Not on a full disk; retried at the next sync.
        self.sum = open_sum(&self.dir, self.writer.seq).ok();
        // Published now, not with the first record: the finished segment can be deleted once
        // accepted even while appending to the new one fails (a full disk).
        self.head.set(Position {
            seq: self.writer.seq,
            offset: 0,
        });
        Ok(())
    }

    /// When the receiver accepted all of the segment being written, start the next one, so that the
    /// reader can delete this one: on a disk too small for a whole segment, that is the only way
    /// room comes back. Returns whether it did.
    pub fn recycle(&mut self) -> io::Result<bool> {
        let head = self.head.get();
        if self.writer.len == 0 || self.accepted.get() < head {
            return Ok(false);
        }
        // Nothing in it is waiting: no sync needed, and its summary goes with it.
        self.roll_over()?;
        Ok(true)
    }

    /// Make every appended record durable, and say so in the segment's summary.
    pub fn sync(&mut self) -> io::Result<()> {
        self.writer.sync()?;
        if self.sum.is_none() {
            self.sum = open_sum(&self.dir, self.writer.seq).ok();
        }
        if let Some(f) = &self.sum {
            // Best effort: without it a later loss is counted in bytes only.
            let _ = write_sum(f, &self.tally);
        }
        Ok(())
    }
}

/// What [`LogReader::read_next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// A good record; its payload is [`LogReader::payload`] until the next read.
    Record { start: Position, end: Position },
    /// Damage skipped: `bytes` lost, holding about `records` records (frame starts seen in them).
    Damaged { bytes: u64, records: u64 },
    /// Segment `seq` is missing (deleted); its summary says what it held, if it is still there.
    Missing { seq: u64, lost: Option<Tally> },
    /// Everything appended so far was read.
    End,
}

pub struct LogReader {
    dir: PathBuf,
    head: Arc<Mark>,
    /// Where the writer sees `acked`.
    accepted: Arc<Mark>,
    /// The next record to read.
    read: Position,
    /// The first record not yet acknowledged.
    acked: Position,
    file: Option<(u64, File)>,
    scratch: Vec<u8>,
}

impl LogReader {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next record to read.
    pub fn position(&self) -> Position {
        self.read
    }

    /// The payload of the record [`LogReader::read_next`] returned last.
    pub fn payload(&self) -> &[u8] {
        self.scratch.get(segment::HEADER..).unwrap_or_default()
    }

    /// Move past records taken from elsewhere (the in-memory cache of recent appends).
    pub fn skip_to(&mut self, p: Position) {
        if p > self.read {
            self.read = p;
        }
    }

    /// Read the next record. A missing segment is skipped (its loss is the caller's to report, from
    /// `Missing`); an unreadable one returns the error and is skipped next time.
    pub fn read_next(&mut self) -> io::Result<Read> {
        loop {
            if self.read < self.acked {
                // All of it was accepted (read from the cache, then the writer moved to a new
                // segment on a full disk and the old one was deleted): nothing to read there.
                self.read = self.acked;
                self.file = None;
            }
            let head = self.head.get();
            if self.read >= head {
                // Caught up: a record of huge lines is not kept for the next read.
                crate::memory::release_if_large(&mut self.scratch);
                return Ok(Read::End);
            }
            let seq = self.read.seq;
            if self.file.as_ref().map_or(true, |(s, _)| *s != seq) {
                match File::open(segment_path(&self.dir, seq)) {
                    Ok(f) => self.file = Some((seq, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        // Reading resumes inside it only after a restart; then what the summary
                        // counts was partly accepted (its bytes are right, its records at most).
                        let from = self.read.offset;
                        self.next_segment();
                        let lost = read_sum(&self.dir, seq).map(|t| Tally {
                            bytes: t.bytes.saturating_sub(from),
                            ..t
                        });
                        return Ok(Read::Missing { seq, lost });
                    }
                    Err(e) => {
                        self.next_segment();
                        return Err(e);
                    }
                }
            }
            let file = &self.file.as_ref().expect("opened above").1;
            let limit = if seq == head.seq {
                head.offset
            } else {
                file.metadata()?.len()
            };
            if self.read.offset >= limit {
                self.next_segment();
                continue;
            }
            let at = self.read.offset;
            if let Some(len) = read_good_frame(file, at, limit, &mut self.scratch)? {
                let start = self.read;
                self.read.offset = at + (segment::HEADER + len) as u64;
                return Ok(Read::Record {
                    start,
                    end: self.read,
                });
            }
            // Damage: load the rest of the segment and find the next good frame.
            let mut rest = vec![0; (limit - at) as usize];
            file.read_exact_at(&mut rest, at)?;
            let skipped = match segment::read_frame(&rest, 0) {
                Frame::Damaged { resume, .. } => resume,
                // A torn tail in a finished segment: the rest of it is lost.
                Frame::End { .. } | Frame::Record { .. } => rest.len() as u64,
            };
            let records = segment::frame_starts(&rest[..skipped as usize]);
            self.read.offset = at + skipped;
            return Ok(Read::Damaged {
                bytes: skipped,
                records,
            });
        }
    }

    /// Records and bytes from here to the head, for the metrics at open. Sound frames of finished
    /// segments are stepped over by their headers (their checksums are checked when they are read to
    /// be sent), so counting a large backlog does not read it; anything else goes through
    /// [`LogReader::read_next`].
    fn count_backlog(&mut self) -> io::Result<(u64, u64)> {
        let (mut records, mut bytes) = (0, 0);
        loop {
            let head = self.head.get();
            if self.read.seq < head.seq {
                if let Ok(file) = File::open(segment_path(&self.dir, self.read.seq)) {
                    let limit = file.metadata()?.len();
                    let header = segment::HEADER as u64;
                    let mut buf = [0u8; segment::HEADER];
                    while self.read.offset + header <= limit {
                        let at = self.read.offset;
                        file.read_exact_at(&mut buf, at)?;
                        let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as u64;
                        if buf[..4] != segment::MAGIC.to_le_bytes()
                            || len as usize > segment::MAX_RECORD
                            || at + header + len > limit
                        {
                            break;
                        }
                        self.read.offset = at + header + len;
                        records += 1;
                        bytes += header + len;
                    }
                }
            }
            match self.read_next()? {
                Read::Record { start, end } => {
                    records += 1;
                    bytes += frame_bytes(start, end);
                }
                Read::Damaged { bytes: lost, .. } => bytes += lost,
                // Counted as waiting, so that skipping it frees as much.
                Read::Missing { lost, .. } => {
                    let lost = lost.unwrap_or_default();
                    records += lost.records;
                    bytes += lost.bytes;
                }
                Read::End => return Ok((records, bytes)),
            }
        }
    }

    fn next_segment(&mut self) {
        self.file = None;
        self.read = Position {
            seq: self.read.seq + 1,
            offset: 0,
        };
    }

    /// Everything before `upto` (an end [`LogReader::read_next`] returned) was accepted: record it in
    /// the ledger and delete the segments wholly before it.
    pub fn ack(&mut self, mut upto: Position) -> io::Result<()> {
        let head = self.head.get();
        // The end of a finished segment is the start of the next one: that lets the segment go.
        while upto.seq < head.seq {
            let len = fs::metadata(segment_path(&self.dir, upto.seq)).map_or(0, |m| m.len());
            if upto.offset < len {
                break;
            }
            upto = Position {
                seq: upto.seq + 1,
                offset: 0,
            };
        }
        if upto <= self.acked {
            return Ok(());
        }
        let from = self.acked.seq;
        self.acked = upto;
        self.accepted.set(upto);
        // Segments go first: on a full disk that is the room the ledger and the writer need. A crash
        // in between leaves a ledger naming a deleted segment, which `open` reads as "start at the
        // oldest segment left", the right place.
        if upto.seq > from {
            self.remove_before(upto.seq, head.seq)?;
        }
        write_ledger(&self.dir, upto)
    }

    /// Delete a wholly accepted segment the writer has since moved past (an ack can come before the
    /// segment is finished, and the writer starts a new one on a full disk to let it go). Called now
    /// and then; on a small disk that room is what lets writing go on. Whether it deleted one.
    pub fn tidy(&mut self) -> io::Result<bool> {
        let before = self.acked;
        self.ack(before)?;
        Ok(self.acked != before)
    }

    /// Delete the segments before `seq` (never the one being written), and their summaries. A
    /// summary goes first: one without its segment means the segment was deleted by someone else.
    fn remove_before(&self, seq: u64, head_seq: u64) -> io::Result<()> {
        let remove = |path: PathBuf| match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        let (segments, sums) = list_files(&self.dir)?;
        for s in sums {
            // Orphans too: a missing segment is reported before the ledger moves past it.
            if s < seq && s != head_seq {
                remove(sum_path(&self.dir, s))?;
            }
        }
        for s in segments {
            if s < seq && s != head_seq {
                remove(segment_path(&self.dir, s))?;
            }
        }
        Ok(())
    }
}

/// The frame at `at` if it is whole and its CRC checks out: its payload length, with the frame in
/// `buf`. `None` means damage.
fn read_good_frame(
    file: &File,
    at: u64,
    limit: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    let header = segment::HEADER as u64;
    if limit - at < header {
        return Ok(None);
    }
    buf.resize(segment::HEADER, 0);
    file.read_exact_at(buf, at)?;
    if buf[..4] != segment::MAGIC.to_le_bytes() {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
    if len > segment::MAX_RECORD || at + header + len as u64 > limit {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().unwrap());
    buf.resize(segment::HEADER + len, 0);
    file.read_exact_at(&mut buf[segment::HEADER..], at + header)?;
    if crc32c::crc32c(&buf[segment::HEADER..]) != crc {
        return Ok(None);
    }
    Ok(Some(len))
}

fn read_ledger(dir: &Path) -> Option<Position> {
    let text = fs::read_to_string(dir.join(LEDGER)).ok()?;
    let (seq, offset) = text.trim().split_once(' ')?;
    Some(Position {
        seq: seq.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// The ledger is one fixed-width line rewritten in place: a write of a few dozen bytes at offset 0
/// needs no new disk blocks (it works on a full disk) and is not torn by a crash.
fn write_ledger(dir: &Path, at: Position) -> io::Result<()> {
    let line = format!("{:020} {:020}\n", at.seq, at.offset);
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(LEDGER))?;
    file.write_all_at(line.as_bytes(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut LogReader) -> Vec<(String, Position)> {
        let mut out = Vec::new();
        loop {
            match r.read_next().unwrap() {
                Read::Record { end, .. } => {
                    out.push((String::from_utf8(r.payload().to_vec()).unwrap(), end))
                }
                Read::Damaged { .. } | Read::Missing { .. } => {}
                Read::End => return out,
            }
        }
    }

    #[test]
    fn replay_resumes_after_the_last_acknowledged_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, rec) = open(dir.path(), 64).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..10 {
            w.append(format!("record-{i}").as_bytes(), 1).unwrap();
        }
        w.sync().unwrap();
        let read = drain(&mut r);
        assert_eq!(read.len(), 10);
        assert!(list_segments(dir.path()).unwrap().len() > 1, "rolled over");
        r.ack(read[3].1).unwrap();
        drop((w, r));

        let (_w, mut r, rec) = open(dir.path(), 64).unwrap();
        assert_eq!(rec.records, 6);
        let again: Vec<String> = drain(&mut r).into_iter().map(|x| x.0).collect();
        assert_eq!(
            again,
            (4..10).map(|i| format!("record-{i}")).collect::<Vec<_>>()
        );
        assert!(
            !segment_path(dir.path(), 0).exists(),
            "a segment wholly acknowledged is deleted"
        );
    }

    #[test]
    fn appends_after_reading_to_the_end_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, _) = open(dir.path(), 1 << 20).unwrap();
        w.append(b"a", 1).unwrap();
        assert_eq!(drain(&mut r).len(), 1);
        w.append(b"b", 1).unwrap();
        assert_eq!(drain(&mut r)[0].0, "b");
    }

    #[test]
    fn a_torn_tail_and_a_lost_ledger_are_recovered_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _, _) = open(dir.path(), 1 << 20).unwrap();
        w.append(b"one", 1).unwrap();
        w.append(b"two", 1).unwrap();
        w.sync().unwrap();
        drop(w);
        let seg = segment_path(dir.path(), 0);
        let mut data = fs::read(&seg).unwrap();
        data.extend_from_slice(&segment::MAGIC.to_le_bytes());
        data.extend_from_slice(&[9, 0, 0]);
        fs::write(&seg, &data).unwrap();
        fs::write(dir.path().join(LEDGER), "garbage").unwrap();
        let (mut w, mut r, rec) = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.torn_bytes, 7);
        assert!(rec.ledger_reset);
        let got: Vec<String> = drain(&mut r).into_iter().map(|x| x.0).collect();
        assert_eq!(got, ["one", "two"]);
        w.append(b"three", 1).unwrap();
        assert_eq!(
            drain(&mut r)[0].0,
            "three",
            "appends continue after the repair"
        );
    }

    /// A record's payload as the buffer writes it: `appended_ms`, then a batch of `lines` entries.
    fn record(lines: usize) -> Vec<u8> {
        use crate::entry::{Entry, LabelSet, Labels};
        let labels = LabelSet::new(Labels::from([("job".into(), "t".into())]));
        let entries: Vec<Entry> = (0..lines)
            .map(|i| Entry {
                timestamp: i as i64,
                line: format!("line {i}"),
                labels: labels.clone(),
                metadata: Vec::new(),
                extracted: None,
            })
            .collect();
        let mut payload = 0u64.to_le_bytes().to_vec();
        super::super::codec::encode(&entries, &mut payload);
        payload
    }

    #[test]
    fn a_wholly_accepted_segment_being_written_is_recycled() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, mut r, _) = open(dir.path(), 1 << 20).unwrap();
        for i in 0..3 {
            w.append(format!("record-{i}").as_bytes(), 1).unwrap();
        }
        w.sync().unwrap();
        let read = drain(&mut r);
        r.ack(read[1].1).unwrap();
        assert!(!w.recycle().unwrap(), "not all of it was accepted");
        r.ack(read[2].1).unwrap();
        assert!(w.recycle().unwrap());
        assert!(
            segment_path(dir.path(), 0).exists(),
            "the reader deletes it"
        );
        assert!(r.tidy().unwrap());
        assert_eq!(list_segments(dir.path()).unwrap(), [1]);
        assert!(!sum_path(dir.path(), 0).exists());
        w.append(b"after", 1).unwrap();
        assert_eq!(drain(&mut r)[0].0, "after");
        assert!(!w.recycle().unwrap(), "not accepted yet");
    }

    #[test]
    fn a_segment_cut_below_its_summary_is_a_loss_and_a_torn_unsynced_tail_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment_path(dir.path(), 0);
        let (mut w, _, _) = open(dir.path(), 1 << 20).unwrap();
        let payload = record(10);
        for _ in 0..4 {
            w.append(&payload, 10).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let frame = (segment::HEADER + payload.len()) as u64;
        // Cut inside the third record: two and a half records were durable, hence acknowledged.
        let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(2 * frame + 5).unwrap();
        let (w, _, rec) = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            rec.lost,
            Tally {
                bytes: 2 * frame,
                records: 2,
                lines: 20
            }
        );
        assert_eq!(rec.torn_bytes, 0);
        drop(w);
        // Reported once: the summary now says what is left.
        let (mut w, _, rec) = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.lost, Tally::default());
        w.append(&payload, 10).unwrap();
        drop(w);
        // A record appended after the last sync and torn: never acknowledged.
        let len = fs::metadata(&seg).unwrap().len();
        assert_eq!(len, 3 * frame);
        fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (_, _, rec) = open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.lost, Tally::default());
        assert_eq!(rec.torn_bytes, frame - 3);
    }

    #[test]
    fn a_flipped_byte_loses_one_record_and_a_missing_segment_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _, _) = open(dir.path(), 64).unwrap();
        for i in 0..12 {
            w.append(format!("record-{i:02}-0123456789").as_bytes(), 1)
                .unwrap();
        }
        drop(w);
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.len() >= 4);
        // Flip a payload byte of the first record of segment 0; delete segment 1.
        let p0 = segment_path(dir.path(), segs[0]);
        let mut data = fs::read(&p0).unwrap();
        data[segment::HEADER + 3] ^= 0xff;
        fs::write(&p0, &data).unwrap();
        fs::remove_file(segment_path(dir.path(), segs[1])).unwrap();

        let (_w, mut r, _) = open(dir.path(), 64).unwrap();
        let (mut got, mut damaged, mut missing) = (Vec::new(), 0, Vec::new());
        loop {
            match r.read_next().unwrap() {
                Read::Record { .. } => got.push(String::from_utf8(r.payload().to_vec()).unwrap()),
                Read::Damaged { records, .. } => damaged += records,
                Read::Missing { seq, lost } => missing.push((seq, lost)),
                Read::End => break,
            }
        }
        assert_eq!(damaged, 1, "the flipped record is counted");
        // Two records of 20 bytes fill a 64-byte segment.
        let frame = (segment::HEADER + 20) as u64;
        let held = Tally {
            bytes: 2 * frame,
            records: 2,
            lines: 2,
        };
        assert_eq!(
            missing,
            [(segs[1], Some(held))],
            "the missing segment's summary says what it held"
        );
        assert!(!got.contains(&"record-00-0123456789".to_string()));
        assert!(got.contains(&"record-01-0123456789".to_string()));
        assert!(got.contains(&"record-11-0123456789".to_string()));
    }
}
