//! A sink's buffer directory as one log: append records at the head, read them in order from the
//! tail, and acknowledge them once the receiver accepted them. The ledger file remembers the first
//! unacknowledged record (segment and offset), so after a restart reading resumes exactly there;
//! segments wholly before it are deleted.
//!
//! Durability is the caller's choice per append: [`SegmentLog::sync`] makes everything appended so far
//! durable (the `fsync: always|interval` policy lives in the sink).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::segment::{self, list_segments, repair_tail, segment_path, Frame, SegmentWriter};

/// Where a record starts: its segment and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// What opening a log found wrong and repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last record cut off.
    pub torn_bytes: u64,
    /// The ledger was missing or unreadable: reading starts at the oldest segment.
    pub ledger_reset: bool,
}

pub struct SegmentLog {
    dir: PathBuf,
    segment_size: u64,
    writer: SegmentWriter,
    /// The first record not yet acknowledged.
    acked: Position,
    /// The next record to read.
    read: Position,
    /// The segment being read, loaded whole (segments are bounded by `segment_size`).
    read_data: Option<(u64, Vec<u8>)>,
    /// Bytes of damaged records skipped while reading, since open.
    pub damaged_bytes: u64,
    scratch: Vec<u8>,
}

const LEDGER: &str = "ledger";

impl SegmentLog {
    pub fn open(dir: &Path, segment_size: u64) -> io::Result<(Self, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut recovery = Recovery::default();
        let seqs = list_segments(dir)?;
        let head = seqs.last().copied().unwrap_or(0);
        if seqs.last().is_some() {
            recovery.torn_bytes = repair_tail(&segment_path(dir, head))?;
        }
        let oldest = Position {
            seq: seqs.first().copied().unwrap_or(0),
            offset: 0,
        };
        let acked = match read_ledger(dir) {
            Some(p) if seqs.contains(&p.seq) || (seqs.is_empty() && p.seq == head) => p,
            Some(p) if seqs.first().is_some_and(|first| p.seq < *first) => oldest,
            Some(p) if seqs.last().is_some_and(|last| p.seq > *last) => {
                recovery.ledger_reset = true;
                oldest
            }
            Some(_) => oldest,
            None => {
                recovery.ledger_reset = !seqs.is_empty() && dir.join(LEDGER).exists();
                oldest
            }
        };
        let writer = SegmentWriter::open(dir, head)?;
        let log = SegmentLog {
            dir: dir.to_owned(),
            segment_size,
            writer,
            acked,
            read: acked,
            read_data: None,
            damaged_bytes: 0,
            scratch: Vec::new(),
        };
        log.remove_before(acked.seq)?;
        Ok((log, recovery))
    }

    /// Append one record; a new segment is started once the current one reached `segment_size`.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<Position> {
        if self.writer.len >= self.segment_size {
            self.writer.sync()?;
            self.writer = SegmentWriter::open(&self.dir, self.writer.seq + 1)?;
        }
        let at = Position {
            seq: self.writer.seq,
            offset: self.writer.len,
        };
        self.scratch.clear();
        segment::frame(payload, &mut self.scratch);
        self.writer.append(&self.scratch)?;
        Ok(at)
    }

    /// Make every appended record durable.
    pub fn sync(&self) -> io::Result<()> {
        self.writer.sync()
    }

    /// The next unread record and the position after it, or `None` when everything was read.
    pub fn read_next(&mut self) -> io::Result<Option<(Vec<u8>, Position)>> {
        loop {
            let seq = self.read.seq;
            let stale = self.read_data.as_ref().map_or(true, |(s, d)| {
                *s != seq || (seq == self.writer.seq && (d.len() as u64) < self.writer.len)
            });
            if stale {
                let mut data = Vec::new();
                match fs::File::open(segment_path(&self.dir, seq)) {
                    Ok(mut f) => {
                        f.read_to_end(&mut data)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                self.read_data = Some((seq, data));
            }
            let data = &self.read_data.as_ref().expect("loaded above").1;
            match segment::read_frame(data, self.read.offset) {
                Frame::Record { payload, end } => {
                    self.read.offset = end;
                    return Ok(Some((payload, self.read)));
                }
                Frame::Damaged { resume, bytes } => {
                    self.damaged_bytes += bytes;
                    self.read.offset = resume;
                }
                Frame::End { .. } => {
                    if seq >= self.writer.seq {
                        return Ok(None);
                    }
                    self.read = Position {
                        seq: seq + 1,
                        offset: 0,
                    };
                }
            }
        }
    }

    /// Everything before `upto` (a position [`SegmentLog::read_next`] returned) was accepted: record
    /// it in the ledger and delete the segments wholly before it.
    pub fn ack(&mut self, mut upto: Position) -> io::Result<()> {
        // The end of a finished segment is the start of the next one: that lets the segment go.
        while upto.seq < self.writer.seq {
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
        self.acked = upto;
        write_ledger(&self.dir, upto)?;
        self.remove_before(upto.seq)
    }

    /// Read again from the first unacknowledged record (after a failed send, the batch is re-read).
    pub fn rewind(&mut self) {
        self.read = self.acked;
    }

    /// Bytes on disk in segments holding unacknowledged records.
    pub fn disk_bytes(&self) -> u64 {
        let mut total = 0;
        for seq in self.acked.seq..=self.writer.seq {
            if let Ok(m) = fs::metadata(segment_path(&self.dir, seq)) {
                total += m.len();
            }
        }
        total.saturating_sub(self.acked.offset)
    }

    fn remove_before(&self, seq: u64) -> io::Result<()> {
        for s in list_segments(&self.dir)? {
            if s < seq && s != self.writer.seq {
                match fs::remove_file(segment_path(&self.dir, s)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn read_ledger(dir: &Path) -> Option<Position> {
    let text = fs::read_to_string(dir.join(LEDGER)).ok()?;
    let (seq, offset) = text.trim().split_once(' ')?;
    Some(Position {
        seq: seq.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

fn write_ledger(dir: &Path, at: Position) -> io::Result<()> {
    let tmp = dir.join("ledger.tmp");
    fs::write(&tmp, format!("{} {}\n", at.seq, at.offset))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(LEDGER))?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(log: &mut SegmentLog) -> Vec<(String, Position)> {
        let mut out = Vec::new();
        while let Some((p, at)) = log.read_next().unwrap() {
            out.push((String::from_utf8(p).unwrap(), at));
        }
        out
    }

    #[test]
    fn replay_resumes_after_the_last_acknowledged_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, rec) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..10 {
            log.append(format!("record-{i}").as_bytes()).unwrap();
        }
        log.sync().unwrap();
        let read = drain(&mut log);
        assert_eq!(read.len(), 10);
        assert!(list_segments(dir.path()).unwrap().len() > 1, "rolled over");
        log.ack(read[3].1).unwrap();
        drop(log);

        let (mut log, _) = SegmentLog::open(dir.path(), 64).unwrap();
        let again: Vec<String> = drain(&mut log).into_iter().map(|r| r.0).collect();
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
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append(b"a").unwrap();
        assert_eq!(drain(&mut log).len(), 1);
        log.append(b"b").unwrap();
        assert_eq!(drain(&mut log)[0].0, "b");
        log.rewind();
        assert_eq!(
            drain(&mut log).len(),
            2,
            "rewind re-reads unacknowledged records"
        );
    }

    #[test]
    fn a_torn_tail_and_a_lost_ledger_are_recovered_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append(b"one").unwrap();
        log.append(b"two").unwrap();
        log.sync().unwrap();
        drop(log);
        let seg = segment_path(dir.path(), 0);
        let mut data = fs::read(&seg).unwrap();
        data.extend_from_slice(&segment::MAGIC.to_le_bytes());
        data.extend_from_slice(&[9, 0, 0]);
        fs::write(&seg, &data).unwrap();
        fs::write(dir.path().join(LEDGER), "garbage").unwrap();
        let (mut log, rec) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.torn_bytes, 7);
        let got: Vec<String> = drain(&mut log).into_iter().map(|r| r.0).collect();
        assert_eq!(got, ["one", "two"]);
        log.append(b"three").unwrap();
        assert_eq!(
            drain(&mut log)[0].0,
            "three",
            "appends continue after the repair"
        );
    }
}
