//! Append-only segment files: the on-disk form of a sink's buffer.
//!
//! A segment is a file named `<sequence, 20 digits>.seg` holding records back to back, each framed as
//!
//! ```text
//! magic u32 LE = 0x4C46_5247 ("GRFL")  |  len u32 LE  |  crc32c(payload) u32 LE  |  payload[len]
//! ```
//!
//! The magic makes a damaged region skippable: a reader that meets a bad frame scans forward for the
//! next magic whose frame checks out, and counts what it skipped. A crash can leave the last frame of
//! the newest segment incomplete (a torn write); opening the log for writing truncates it away.
//!
//! Beside each segment, `<sequence>.sum` holds its [`Tally`] as of the last fsync: how many bytes,
//! records and lines of it were durable, hence acknowledged to their sources. One fixed-width line
//! rewritten in place (no new disk blocks, so it works on a full disk), never fsynced itself: a power
//! cut can only make it older. It is what tells a torn write (after the last fsync: never
//! acknowledged, read again from the source) from lost data (a file cut below what was durable, or
//! deleted), and how many lines were lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: u32 = 0x4C46_5247;
pub const HEADER: usize = 12;
/// Larger lengths are damage, not records (a batch is a few MiB at most).
pub const MAX_RECORD: usize = 256 * 1024 * 1024;

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// The sequences of the segments in `dir`, sorted; other files are ignored.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    Ok(list_files(dir)?.0)
}

/// The sequences of the segments and of the summaries in `dir`, each sorted, from one listing.
pub fn list_files(dir: &Path) -> io::Result<(Vec<u64>, Vec<u64>)> {
    let (mut segments, mut sums) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let Some((seq, ext)) = name.split_once('.') else {
            continue;
        };
        let list = match ext {
            "seg" => &mut segments,
            "sum" => &mut sums,
            _ => continue,
        };
        if let Ok(seq) = seq.parse() {
            list.push(seq);
        }
    }
    segments.sort_unstable();
    sums.sort_unstable();
    Ok((segments, sums))
}

/// About how many records `lost` (damaged bytes) held: the frame starts seen in it, at least one.
pub fn frame_starts(lost: &[u8]) -> u64 {
    let magic = MAGIC.to_le_bytes();
    lost.windows(4).filter(|w| *w == magic).count().max(1) as u64
}

/// Frame `payload` into `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + HEADER, 0);
    out.extend_from_slice(payload);
    seal(&mut out[start..]);
}

/// Fill in the header of `frame`: its first [`HEADER`] bytes were reserved, the payload follows.
/// Lets a record be encoded straight into its frame, without a copy.
pub fn seal(frame: &mut [u8]) {
    let (header, payload) = frame.split_at_mut(HEADER);
    header[..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
}

/// What reading a segment found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A good record: its payload, and the offset just past it.
    Record { payload: Vec<u8>, end: u64 },
    /// Damage skipped up to `resume` (the next good frame, or the end); `bytes` were lost.
    Damaged { resume: u64, bytes: u64 },
    /// The end of the data; `torn` bytes of an incomplete last frame follow it.
    End { torn: u64 },
}

/// Read the frame at `offset` of the segment whose whole content is `data`.
pub fn read_frame(data: &[u8], offset: u64) -> Frame {
    let at = offset as usize;
    if at >= data.len() {
        return Frame::End { torn: 0 };
    }
    match check_frame(data, at) {
        Ok(Some(len)) => Frame::Record {
            payload: data[at + HEADER..at + HEADER + len].to_vec(),
            end: (at + HEADER + len) as u64,
        },
        Ok(None) => Frame::End {
            torn: (data.len() - at) as u64,
        },
        Err(()) => {
            // Scan for the next frame that checks out.
            let mut i = at + 1;
            while i + HEADER <= data.len() {
                if data[i..i + 4] == MAGIC.to_le_bytes()
                    && matches!(check_frame(data, i), Ok(Some(_)))
                {
                    return Frame::Damaged {
                        resume: i as u64,
                        bytes: (i - at) as u64,
                    };
                }
                i += 1;
            }
            Frame::Damaged {
                resume: data.len() as u64,
                bytes: (data.len() - at) as u64,
            }
        }
    }
}

/// `Ok(Some(len))`: a valid frame; `Ok(None)`: a plausible frame cut short by the end of the data
/// (torn); `Err`: damage.
fn check_frame(data: &[u8], at: usize) -> Result<Option<usize>, ()> {
    let rest = &data[at..];
    if rest.len() < HEADER {
        // Too short for a header: torn if what is there is a prefix of the magic.
        let magic = MAGIC.to_le_bytes();
        return if magic[..rest.len().min(4)] == rest[..rest.len().min(4)] {
            Ok(None)
        } else {
            Err(())
        };
    }
    if rest[..4] != MAGIC.to_le_bytes() {
        return Err(());
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
    if len > MAX_RECORD {
        return Err(());
    }
    if rest.len() < HEADER + len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
    if crc32c::crc32c(&rest[HEADER..HEADER + len]) != crc {
        return Err(());
    }
    Ok(Some(len))
}

/// What a segment holds: bytes, records, and the lines (entries) of those records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub bytes: u64,
    pub records: u64,
    pub lines: u64,
}

impl Tally {
    pub fn add(&mut self, bytes: u64, lines: u64) {
        self.bytes += bytes;
        self.records += 1;
        self.lines += lines;
    }

    /// What `self` holds beyond `kept` (a part of it).
    pub fn beyond(&self, kept: &Tally) -> Tally {
        Tally {
            bytes: self.bytes.saturating_sub(kept.bytes),
            records: self.records.saturating_sub(kept.records),
            lines: self.lines.saturating_sub(kept.lines),
        }
    }
}

/// What [`repair_tail`] found in a segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Bytes of an incomplete last frame, cut off.
    pub torn: u64,
    /// The good records left (with `bytes` the segment's length after the repair, damage included).
    pub kept: Tally,
    /// Records (frame starts) in damaged regions.
    pub damaged_records: u64,
}

/// Truncate a torn last frame away from segment `path`, and tally what is left; `lines` counts the
/// lines of a record's payload.
pub fn repair_tail(path: &Path, lines: impl Fn(&[u8]) -> u64) -> io::Result<Repaired> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut offset = 0u64;
    let mut repaired = Repaired::default();
    loop {
        match read_frame(&data, offset) {
            Frame::Record { payload, end } => {
                repaired.kept.add(end - offset, lines(&payload));
                offset = end;
            }
            Frame::Damaged { resume, .. } => {
                repaired.damaged_records += frame_starts(&data[offset as usize..resume as usize]);
                offset = resume;
            }
            Frame::End { torn } => {
                if torn > 0 {
                    let f = OpenOptions::new().write(true).open(path)?;
                    f.set_len(offset)?;
                    f.sync_all()?;
                }
                repaired.torn = torn;
                repaired.kept.bytes = offset;
                return Ok(repaired);
            }
        }
    }
}

pub fn sum_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.sum"))
}

/// Segment `seq`'s summary, if it has a readable one.
pub fn read_sum(dir: &Path, seq: u64) -> Option<Tally> {
    let text = fs::read_to_string(sum_path(dir, seq)).ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(Tally {
        bytes: fields.next()??,
        records: fields.next()??,
        lines: fields.next()??,
    })
}

/// Open (or create) segment `seq`'s summary for [`write_sum`].
pub fn open_sum(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(sum_path(dir, seq))
}

/// Rewrite a summary in place (fixed width: no new disk blocks once the file has its first).
pub fn write_sum(file: &File, tally: &Tally) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let line = format!(
        "{:020} {:020} {:020}\n",
        tally.bytes, tally.records, tally.lines
    );
    file.write_all_at(line.as_bytes(), 0)
}

/// The open segment being appended to.
pub struct SegmentWriter {
    pub seq: u64,
    file: File,
    pub len: u64,
}

impl SegmentWriter {
    /// Open (or create) segment `seq` for appending at its end.
    pub fn open(dir: &Path, seq: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(segment_path(dir, seq))?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(SegmentWriter { seq, file, len })
    }

    /// Append framed bytes (one or more frames) with one write.
    pub fn append(&mut self, framed: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(framed) {
            // A partial write (ENOSPC) would leave a torn frame in the middle of the log: cut it off.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += framed.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            frame(p, &mut out);
        }
        out
    }

    fn records(data: &[u8]) -> (Vec<Vec<u8>>, u64, u64) {
        let (mut out, mut lost, mut offset) = (Vec::new(), 0, 0);
        loop {
            match read_frame(data, offset) {
                Frame::Record { payload, end } => {
                    out.push(payload);
                    offset = end;
                }
                Frame::Damaged { resume, bytes } => {
                    lost += bytes;
                    offset = resume;
                }
                Frame::End { torn } => return (out, lost, torn),
            }
        }
    }

    #[test]
    fn reads_back_what_was_framed() {
        let data = framed(&[b"one", b"", b"three"]);
        let (recs, lost, torn) = records(&data);
        assert_eq!(recs, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!((lost, torn), (0, 0));
    }

    #[test]
    fn a_flipped_byte_loses_one_record_and_reading_resumes() {
        let mut data = framed(&[b"first record", b"second record", b"third record"]);
        let second = HEADER + 12;
        data[second + HEADER + 3] ^= 0xff;
        let (recs, lost, torn) = records(&data);
        assert_eq!(recs, [b"first record".to_vec(), b"third record".to_vec()]);
        assert_eq!(lost, (HEADER + 13) as u64);
        assert_eq!(torn, 0);
    }

    #[test]
    fn a_torn_tail_is_reported_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = framed(&[b"kept", b"torn away"]);
        data.truncate(data.len() - 4);
        let path = segment_path(dir.path(), 7);
        fs::write(&path, &data).unwrap();
        assert_eq!(records(&data).2, (HEADER + 9 - 4) as u64);
        let repaired = repair_tail(&path, |p| p.len() as u64).unwrap();
        assert_eq!(repaired.torn, (HEADER + 5) as u64);
        assert_eq!(
            repaired.kept,
            Tally {
                bytes: (HEADER + 4) as u64,
                records: 1,
                lines: 4
            }
        );
        let repaired = fs::read(&path).unwrap();
        assert_eq!(records(&repaired), (vec![b"kept".to_vec()], 0, 0));
        // Even a tail shorter than a header is recognised as torn.
        let mut short = framed(&[b"x"]);
        short.extend_from_slice(&MAGIC.to_le_bytes()[..2]);
        assert_eq!(records(&short).2, 2);
    }

    #[test]
    fn writer_appends_and_segments_list_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [3, 1, 2] {
            let mut w = SegmentWriter::open(dir.path(), seq).unwrap();
            w.append(&framed(&[b"a"])).unwrap();
            w.sync().unwrap();
        }
        fs::write(dir.path().join("ledger"), "x").unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), [1, 2, 3]);
        let mut w = SegmentWriter::open(dir.path(), 3).unwrap();
        assert_eq!(w.len, (HEADER + 1) as u64);
        w.append(&framed(&[b"b"])).unwrap();
        let data = fs::read(segment_path(dir.path(), 3)).unwrap();
        assert_eq!(records(&data).0, [b"a".to_vec(), b"b".to_vec()]);
    }
}
