//! The dead-letter file: entries a receiver rejected for good (Loki 400 for a bad entry, an
//! Elasticsearch mapping error) are written here rather than dropped silently, one JSON object per
//! line:
//!
//! ```text
//! {"ts":"2026-11-22T06:41:18.123456789Z","labels":"{job=\"app\"}","line":"…","reason":"status 400: …"}
//! ```
//!
//! The file lives beside the sink's buffer (`<buffer dir>/dead-letter.ndjson`). When it reaches its
//! size limit it is renamed to `dead-letter.1.ndjson` (replacing the previous one) and a new file is
//! started, so at most twice the limit is kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::entry::format_rfc3339_nanos;

pub const FILE: &str = "dead-letter.ndjson";
const OLD: &str = "dead-letter.1.ndjson";

pub struct DeadLetter {
    dir: PathBuf,
    max_size: u64,
    file: Option<(File, u64)>,
}

impl DeadLetter {
    pub fn new(dir: &Path, max_size: u64) -> Self {
        DeadLetter {
            dir: dir.to_owned(),
            max_size,
            file: None,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Append `entries` (timestamp ns, rendered labels, line), all rejected for `reason`.
    pub fn write<'a>(
        &mut self,
        reason: &str,
        entries: impl IntoIterator<Item = (i64, &'a str, &'a str)>,
    ) -> io::Result<u64> {
        let mut out = Vec::new();
        let mut n = 0;
        for (ts, labels, line) in entries {
            let obj = serde_json::json!({
                "ts": format_rfc3339_nanos(ts),
                "labels": labels,
                "line": line,
                "reason": reason,
            });
            serde_json::to_writer(&mut out, &obj).map_err(io::Error::other)?;
            out.push(b'\n');
            n += 1;
        }
        let (file, size) = self.open()?;
        file.write_all(&out)?;
        *size += out.len() as u64;
        if *size >= self.max_size {
            self.file = None;
            fs::rename(self.dir.join(FILE), self.dir.join(OLD))?;
        }
        Ok(n)
    }

    /// Write `entries` rejected for good for `reason`, as [`DeadLetter::write`], and count them in
    /// `kept` (the sink's `logferry_dead_letter_entries_total`). The file's path if they were written;
    /// a write that fails is logged, and the entries are then only counted as dropped by the sink.
    pub fn keep<'a>(
        &mut self,
        reason: &str,
        entries: impl IntoIterator<Item = (i64, &'a str, &'a str)>,
        kept: &prometheus_client::metrics::counter::Counter,
    ) -> Option<String> {
        match self.write(reason, entries) {
            Ok(n) => {
                kept.inc_by(n);
                Some(self.path().display().to_string())
            }
            Err(e) => {
                tracing::error!(path = %self.path().display(), error = %e,
                    "cannot write the dead-letter file; the rejected entries are only counted");
                None
            }
        }
    }

    fn open(&mut self) -> io::Result<&mut (File, u64)> {
        if self.file.is_none() {
            fs::create_dir_all(&self.dir)?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(FILE))?;
            let len = f.metadata()?.len();
            self.file = Some((f, len));
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_json_lines_and_the_file_rotates_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut dl = DeadLetter::new(dir.path(), 200);
        let n = dl
            .write("status 400: bad", [(0, "{a=\"b\"}", "line \"one\"\n\u{1}")])
            .unwrap();
        assert_eq!(n, 1);
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["line"], "line \"one\"\n\u{1}");
        assert_eq!(v["labels"], "{a=\"b\"}");
        assert_eq!(v["reason"], "status 400: bad");
        assert_eq!(v["ts"], "1970-01-01T00:00:00.000000000Z");
        for _ in 0..3 {
            dl.write("r", [(0, "{}", "x".repeat(50).as_str())]).unwrap();
        }
        assert!(dir.path().join(OLD).exists(), "rotated");
        let total: u64 = [FILE, OLD]
            .iter()
            .map(|f| fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
            .sum();
        assert!(total < 600);
    }
}
