//! The hot loop of file tailing: read a chunk, split it into lines with memchr, turn each line into an
//! [`Entry`]. Blocking I/O; the tailer runs it on tokio's blocking pool, one chunk per call.
//!
//! Promtail's rules: lines end at `\n`, only that `\n` is removed (a `\r` stays); a last line without
//! `\n` is held back until it completes. On top of that: invalid UTF-8 becomes U+FFFD (counted), and a
//! line longer than the limit is cut or dropped (counted) without ever buffering more than the limit,
//! so a 10 MB line of binary garbage cannot stall a file or grow memory without bound.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::entry::{now_nanos, Entry, LabelSet};
use crate::positions::{Fingerprint, FINGERPRINT_MAX};

/// Bytes asked of the kernel per read.
pub const CHUNK: usize = 512 * 1024;

pub use crate::source::{LineLimit, HARD_LINE_LIMIT};

/// A chunk's entries, with where each one's line starts in the file (for [`crate::stage`]'s held
/// lines: a checkpoint never passes a line a stage still holds).
#[derive(Debug, Default)]
pub struct Output {
    pub entries: Vec<Entry>,
    pub origins: Vec<u64>,
}

/// What one chunk held besides its entries, for the metrics and the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChunkStats {
    /// The file's size when the chunk was read (for `promtail_file_bytes_total`).
    pub file_size: u64,
    pub bytes: u64,
    pub lines: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
    pub dropped: u64,
    /// The file's fingerprint grew with this chunk (it does up to `FINGERPRINT_MAX` bytes).
    pub fingerprint_grew: bool,
}

pub struct Reader {
    /// `None` while closed to give its descriptor to another file (see `open_files.rs`); everything
    /// else is kept, so that reopening the same file goes on where reading stopped.
    file: Option<File>,
    /// `buf[..filled]` holds the start of a line that has no `\n` yet (the carry).
    buf: Vec<u8>,
    filled: usize,
    /// Offset just past the last complete (or skipped) line: what a checkpoint commits.
    offset: u64,
    /// In the middle of an over-long line whose rest is being skipped.
    skipping: bool,
    last_ts: i64,
    pub fingerprint: Fingerprint,
}

impl Reader {
    /// A reader positioned at `offset` (the start of a line).
    pub fn new(mut file: File, offset: u64, fingerprint: Fingerprint) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader {
            file: Some(file),
            buf: Vec::new(),
            filled: 0,
            offset,
            skipping: false,
            last_ts: 0,
            fingerprint,
        })
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Give the descriptor back; [`Reader::reopen`] goes on where reading stopped.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Go on reading from `file`, which must be the file this reader was reading (same device and
    /// inode); whether its content is still the same is [`Reader::was_truncated`]'s question.
    pub fn reopen(&mut self, mut file: File) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.read_pos()))?;
        self.file = Some(file);
        Ok(())
    }

    fn file(&self) -> io::Result<&File> {
        self.file.as_ref().ok_or_else(closed)
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the next byte to read (past the carry).
    pub fn read_pos(&self) -> u64 {
        self.offset + self.filled as u64
    }

    /// Read one chunk, appending its complete lines to `out`. Returns the bytes read (0 at end of file).
    pub fn read_chunk(
        &mut self,
        labels: &Arc<LabelSet>,
        limit: LineLimit,
        out: &mut Output,
        stats: &mut ChunkStats,
    ) -> io::Result<usize> {
        // Size the read by what the file holds: an idle file's wake-up allocates nothing, and a small
        // append does not grow a chunk-sized buffer (a thousand files each holding one would add up).
        stats.file_size = self.file()?.metadata()?.len();
        let available = stats.file_size.saturating_sub(self.read_pos());
        if available == 0 {
            return Ok(0);
        }
        let want = (available as usize).clamp(4096, CHUNK);
        if self.buf.len() > crate::memory::KEEP_BYTES && self.filled < CHUNK {
            // A huge line is done: give its buffer back rather than keep it for every later read.
            self.buf.truncate(self.filled);
            self.buf.shrink_to_fit();
            crate::memory::note_large();
        }
        if self.buf.len() < self.filled + want {
            self.buf.resize(self.filled + want, 0);
        }
        // The field, not `self.file()`: `self.buf` is borrowed mutably below.
        let mut file = self.file.as_ref().ok_or_else(closed)?;
        let n = loop {
            match file.read(&mut self.buf[self.filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(0);
        }
        stats.bytes += n as u64;
        let end = self.filled + n;
        let now = now_nanos();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &self.buf[self.filled..end]) {
            let nl = self.filled + nl;
            if self.skipping {
                self.skipping = false;
            } else {
                let line = &self.buf[start..nl];
                out.origins.push(self.offset + start as u64);
                self.last_ts = emit(line, labels, limit, now, self.last_ts, out, stats);
            }
            start = nl + 1;
        }
        let rest = end - start;
        self.offset += start as u64;
        if self.skipping {
            // Still inside an over-long line: its bytes so far are consumed and forgotten.
            self.offset += rest as u64;
            self.filled = 0;
        } else if rest > limit.max {
            // A line longer than the limit with no end yet: send its head (or drop it), skip its tail.
            let line = &self.buf[start..start + limit.max];
            out.origins.push(self.offset + start as u64);
            if limit.truncate {
                self.last_ts = emit_truncated(line, labels, now, self.last_ts, out, stats);
            } else {
                out.origins.pop();
                stats.dropped += 1;
            }
            self.offset += rest as u64;
            self.filled = 0;
            self.skipping = true;
        } else {
            self.buf.copy_within(start..end, 0);
            self.filled = rest;
        }
        stats.fingerprint_grew = self.grow_fingerprint();
        Ok(n)
    }

    /// The file reached its end for good (rotated away and drained): its unfinished last line, if any.
    pub fn take_partial(
        &mut self,
        labels: &Arc<LabelSet>,
        limit: LineLimit,
        out: &mut Output,
        stats: &mut ChunkStats,
    ) {
        if self.filled > 0 && !self.skipping {
            let line = &self.buf[..self.filled];
            out.origins.push(self.offset);
            self.last_ts = emit(line, labels, limit, now_nanos(), self.last_ts, out, stats);
            self.offset += self.filled as u64;
            self.filled = 0;
        }
    }

    /// Forget the carry and read from the start again (the file was truncated in place).
    pub fn restart(&mut self) -> io::Result<()> {
        let mut file = self.file()?;
        file.seek(SeekFrom::Start(0))?;
        self.fingerprint = fingerprint_of(file, FINGERPRINT_MAX)?;
        self.offset = 0;
        self.filled = 0;
        self.skipping = false;
        Ok(())
    }

    /// Give back the read buffer while idle (1,000 idle files must not hold 1,000 chunks).
    pub fn shrink(&mut self) {
        if self.buf.len() > crate::memory::KEEP_BYTES {
            crate::memory::note_large();
        }
        if self.filled == 0 {
            self.buf = Vec::new();
        } else {
            self.buf.truncate(self.filled);
            self.buf.shrink_to_fit();
        }
    }

    /// Whether the file was truncated or rewritten since it was read: smaller than what was read, or
    /// its first bytes changed.
    pub fn was_truncated(&self) -> io::Result<bool> {
        let file = self.file()?;
        let size = file.metadata()?.len();
        if size < self.read_pos() {
            return Ok(true);
        }
        if self.fingerprint.len == 0 {
            return Ok(false);
        }
        Ok(fingerprint_of(file, self.fingerprint.len)? != self.fingerprint)
    }

    /// Whether the fingerprint grew.
    fn grow_fingerprint(&mut self) -> bool {
        if self.fingerprint.len < FINGERPRINT_MAX
            && self.read_pos() > u64::from(self.fingerprint.len)
        {
            if let Some(fp) = self
                .file
                .as_ref()
                .and_then(|f| fingerprint_of(f, FINGERPRINT_MAX).ok())
            {
                let grew = fp != self.fingerprint;
                self.fingerprint = fp;
                return grew;
            }
        }
        false
    }
}

fn closed() -> io::Error {
    io::Error::other("file closed")
}

/// Hash of the first `len` bytes of `file` (fewer if the file is shorter).
pub fn fingerprint_of(file: &File, len: u32) -> io::Result<Fingerprint> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Fingerprint::of(&buf[..got]))
}

fn next_ts(now: i64, last: i64) -> i64 {
    // Read time, strictly increasing per file, so that Loki never sees two lines of one stream with the
    // same timestamp (it would drop an identical line as a duplicate).
    now.max(last + 1)
}

fn emit(
    line: &[u8],
    labels: &Arc<LabelSet>,
    limit: LineLimit,
    now: i64,
    last_ts: i64,
    out: &mut Output,
    stats: &mut ChunkStats,
) -> i64 {
    if line.len() > limit.max {
        if !limit.truncate {
            stats.dropped += 1;
            out.origins.pop();
            return last_ts;
        }
        return emit_truncated(&line[..limit.max], labels, now, last_ts, out, stats);
    }
    let text = match std::str::from_utf8(line) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            stats.invalid_utf8 += 1;
            String::from_utf8_lossy(line).into_owned()
        }
    };
    push(text, labels, now, last_ts, out, stats)
}

fn emit_truncated(
    head: &[u8],
    labels: &Arc<LabelSet>,
    now: i64,
    last_ts: i64,
    out: &mut Output,
    stats: &mut ChunkStats,
) -> i64 {
    stats.truncated += 1;
    // Cutting may split a UTF-8 sequence: drop the partial character rather than emit U+FFFD for it.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => head.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => head.len(),
    };
    let text = match std::str::from_utf8(&head[..valid]) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            stats.invalid_utf8 += 1;
            String::from_utf8_lossy(&head[..valid]).into_owned()
        }
    };
    push(text, labels, now, last_ts, out, stats)
}

fn push(
    line: String,
    labels: &Arc<LabelSet>,
    now: i64,
    last_ts: i64,
    out: &mut Output,
    stats: &mut ChunkStats,
) -> i64 {
    let ts = next_ts(now, last_ts);
    stats.lines += 1;
    out.entries.push(Entry {
        timestamp: ts,
        line,
        labels: labels.clone(),
        metadata: Vec::new(),
        extracted: None,
    });
    ts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Labels;
    use std::io::Write;

    fn read_all(content: &[u8], limit: LineLimit) -> (Vec<String>, ChunkStats, u64) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        let mut r = Reader::new(f, 0, Fingerprint::default()).unwrap();
        let labels = LabelSet::new(Labels::new());
        let mut out = Output::default();
        let mut stats = ChunkStats::default();
        while r.read_chunk(&labels, limit, &mut out, &mut stats).unwrap() > 0 {}
        let ts: Vec<i64> = out.entries.iter().map(|e| e.timestamp).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "timestamps increase");
        assert_eq!(out.origins.len(), out.entries.len(), "one origin per entry");
        (
            out.entries.into_iter().map(|e| e.line).collect(),
            stats,
            r.offset(),
        )
    }

    const NO_LIMIT: LineLimit = LineLimit {
        max: HARD_LINE_LIMIT,
        truncate: true,
        configured: false,
    };

    #[test]
    fn splits_keeps_cr_and_holds_partial_line() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\r\nb\n\nc").unwrap();
        let mut r = Reader::new(f, 0, Fingerprint::default()).unwrap();
        let mut out = Output::default();
        let labels = LabelSet::new(Labels::new());
        r.read_chunk(&labels, NO_LIMIT, &mut out, &mut ChunkStats::default())
            .unwrap();
        assert_eq!(out.origins, [0, 3, 5], "where each line starts");
        let (lines, _, offset) = read_all(b"a\r\nb\n\nc", NO_LIMIT);
        assert_eq!(lines, ["a\r", "b", ""]);
        assert_eq!(offset, 6);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let (lines, stats, _) = read_all(b"ok\n\xff\xfebin\x00ary\nok2\n", NO_LIMIT);
        assert_eq!(lines, ["ok", "\u{fffd}\u{fffd}bin\u{0}ary", "ok2"]);
        assert_eq!(stats.invalid_utf8, 1);
    }

    #[test]
    fn long_lines_are_cut_or_dropped_across_chunks() {
        let big = "x".repeat(3 * CHUNK + 17);
        let content = format!("short\n{big}\nafter\n");
        let cut = LineLimit::new(1000, true);
        let (lines, stats, offset) = read_all(content.as_bytes(), cut);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].len(), 1000);
        assert_eq!(lines[2], "after");
        assert_eq!(stats.truncated, 1);
        assert_eq!(offset, content.len() as u64);

        let drop = LineLimit::new(1000, false);
        let (lines, stats, _) = read_all(content.as_bytes(), drop);
        assert_eq!(lines, ["short", "after"]);
        assert_eq!(stats.dropped, 1);
    }

    #[test]
    fn truncation_does_not_split_characters() {
        let (lines, stats, _) = read_all("ééé\n".as_bytes(), LineLimit::new(3, true));
        assert_eq!(lines, ["é"]);
        assert_eq!(stats.invalid_utf8, 0);
    }
}
