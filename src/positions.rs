//! The positions store: how far every target has been read **and acknowledged**.
//!
//! Files are identified by device + inode plus a [`Fingerprint`] of their first bytes, so a renamed file
//! keeps its offset (it is not read again) and a new file created at an old path is read from its start;
//! the fingerprint tells apart an inode number the filesystem reused. Journal and Docker targets keep an
//! opaque cursor string under a `cursor-…` key, as Promtail does.
//!
//! On disk the file stays Promtail's YAML (`positions: {path: "offset", cursor-x: "…"}`) with one extra
//! list, `files`, holding the identities. A Promtail positions file (no `files` list) is taken over: each
//! of its path offsets is used once, by the first file found at that path, exactly as Promtail would.
//!
//! Only acknowledged checkpoints arrive here, in order ([`crate::delivery`]); writes are atomic (temp file, fsync,
//! rename, fsync of the directory) every `positions.sync_period` and at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// How many leading bytes of a file its fingerprint covers, at most.
pub const FINGERPRINT_MAX: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A hash of a file's first `len` bytes (FNV-1a, 64 bit: stable across builds, no dependency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf29ce484222325;
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
        Fingerprint {
            len: bytes.len() as u32,
            hash,
        }
    }

    fn to_text(self) -> String {
        format!("{}:{:016x}", self.len, self.hash)
    }

    fn from_text(s: &str) -> Option<Self> {
        let (len, hash) = s.split_once(':')?;
        Some(Fingerprint {
            len: len.parse().ok()?,
            hash: u64::from_str_radix(hash, 16).ok()?,
        })
    }
}

/// What a sink acknowledged: a file read up to `offset`, or a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// `epoch` counts the restarts (truncations) of the file, so that an acknowledgement of a batch
    /// read before a truncation cannot move the offset of the file's new content.
    File {
        id: FileId,
        epoch: u32,
        offset: u64,
    },
    Cursor {
        key: String,
        value: String,
    },
}

/// Where a newly opened file starts, and why (logged at debug level by the tailer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub offset: u64,
    /// It goes on from this file's own saved position (not a new file, a reused inode or a
    /// Promtail path offset).
    pub saved: bool,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
struct FileRecord {
    path: String,
    offset: u64,
    fingerprint: Fingerprint,
    epoch: u32,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<FileId, FileRecord>,
    /// Path offsets from a Promtail positions file, not yet claimed by a file.
    legacy: HashMap<String, u64>,
    cursors: BTreeMap<String, String>,
    /// Cursors of targets gone for good (removed containers): acknowledgements still in flight for them
    /// must not bring them back.
    retired: std::collections::HashSet<String>,
    dirty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    #[error("positions file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("invalid yaml positions file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Clone)]
pub struct Positions {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    file: Option<PathBuf>,
    read_only: bool,
    /// A checkpoint was committed (wakes the agent's saver, see [`Positions::committed`]).
    committed: tokio::sync::Notify,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    #[serde(default)]
    positions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<OnDiskFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDiskFile {
    path: String,
    dev: u64,
    ino: u64,
    offset: u64,
    fingerprint: String,
}

fn is_cursor_key(key: &str) -> bool {
    key.starts_with("cursor-") || key.starts_with("journal-")
}

impl Positions {
    /// A store that lives in memory only (tests, `-stdin`).
    pub fn in_memory() -> Self {
        Self::with_state(State::default(), None, false)
    }

    fn with_state(state: State, file: Option<PathBuf>, read_only: bool) -> Self {
        Positions {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                file,
                read_only,
                committed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Resolves after a checkpoint was committed since the last call. The agent saves soon after, so
    /// that a crash re-reads little that is already safe in the sinks' buffers.
    pub async fn committed(&self) {
        self.shared.committed.notified().await
    }

    /// Open the positions file. A missing or empty file means no positions. An invalid one is an error,
    /// which the caller turns into a reset (see [`Positions::reset_invalid`]) or a refusal to start.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, PositionsError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(PositionsError::Io {
                    path: path.display().to_string(),
                    source: e,
                })
            }
        };
        let state = parse(&text).map_err(|reason| PositionsError::Invalid {
            path: path.display().to_string(),
            reason,
        })?;
        if !read_only {
            remove_stale_temp_files(path);
        }
        Ok(Self::with_state(state, Some(path.to_owned()), read_only))
    }

    /// Start empty after an invalid positions file, keeping the bad file beside it as `<file>.invalid`
    /// so nothing an operator may need is destroyed. Returns where the bad file went.
    pub fn reset_invalid(path: &Path, read_only: bool) -> (Self, Option<PathBuf>) {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".invalid");
        let aside = PathBuf::from(aside);
        let moved = (!read_only && fs::rename(path, &aside).is_ok()).then_some(aside);
        (
            Self::with_state(State::default(), Some(path.to_owned()), read_only),
            moved,
        )
    }

    /// Decide where a file starts. `fingerprint_of(len)` must hash the file's first `len` bytes.
    pub fn resume_file(
        &self,
        path: &str,
        id: FileId,
        size: u64,
        mut fingerprint_of: impl FnMut(u32) -> io::Result<Fingerprint>,
    ) -> Resume {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(rec) = st.files.get(&id) {
            let same = fingerprint_of(rec.fingerprint.len)
                .map(|fp| fp == rec.fingerprint)
                .unwrap_or(false);
            if same && rec.offset <= size {
                return Resume {
                    offset: rec.offset,
                    saved: true,
                    reason: "saved position",
                };
            }
            st.files.remove(&id);
            st.dirty = true;
            return Resume {
                offset: 0,
                saved: false,
                reason: "inode reused by a different file",
            };
        }
        if let Some(offset) = st.legacy.remove(path) {
            st.dirty = true;
            if offset <= size {
                return Resume {
                    offset,
                    saved: false,
                    reason: "taken over from a Promtail positions file",
                };
            }
            return Resume {
                offset: 0,
                saved: false,
                reason: "Promtail position beyond end of file",
            };
        }
        Resume {
            offset: 0,
            saved: false,
            reason: "new file",
        }
    }

    /// Start tracking a file at its resume offset (so its entry survives until it is acknowledged further).
    pub fn track_file(&self, id: FileId, path: &str, offset: u64, fingerprint: Fingerprint) {
        let mut st = self.shared.state.lock().unwrap();
        st.files.insert(
            id,
            FileRecord {
                path: path.to_owned(),
                offset,
                fingerprint,
                epoch: 0,
            },
        );
        st.dirty = true;
    }

    /// The file grew past its fingerprinted prefix: remember a longer fingerprint.
    pub fn update_fingerprint(&self, id: FileId, fingerprint: Fingerprint) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(rec) = st.files.get_mut(&id) {
            if rec.fingerprint != fingerprint {
                rec.fingerprint = fingerprint;
                st.dirty = true;
            }
        }
    }

    pub fn rename_file(&self, id: FileId, new_path: &str) {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(rec) = st.files.get_mut(&id) {
            rec.path = new_path.to_owned();
            st.dirty = true;
        }
    }

    /// The file was read to its end and is gone (deleted, or left the glob): forget it, as Promtail does.
    pub fn forget_file(&self, id: FileId) {
        let mut st = self.shared.state.lock().unwrap();
        if st.files.remove(&id).is_some() {
            st.dirty = true;
        }
    }

    /// The file was truncated in place: it starts over at 0 with a new fingerprint. Returns the new
    /// epoch, to put in the checkpoints of what is read from now on.
    pub fn restart_file(&self, id: FileId, fingerprint: Fingerprint) -> u32 {
        let mut st = self.shared.state.lock().unwrap();
        let Some(rec) = st.files.get_mut(&id) else {
            return 0;
        };
        rec.offset = 0;
        rec.fingerprint = fingerprint;
        rec.epoch += 1;
        let epoch = rec.epoch;
        st.dirty = true;
        epoch
    }

    /// Store an acknowledged checkpoint. Callers commit a source's checkpoints in order
    /// ([`crate::delivery::Commits`]).
    pub fn commit(&self, checkpoint: &Checkpoint) {
        let mut st = self.shared.state.lock().unwrap();
        match checkpoint {
            Checkpoint::File { id, epoch, offset } => {
                if let Some(rec) = st.files.get_mut(id) {
                    if rec.epoch == *epoch {
                        rec.offset = *offset;
                        st.dirty = true;
                    }
                }
            }
            Checkpoint::Cursor { key, value } => {
                if !st.retired.contains(key) {
                    st.cursors.insert(key.clone(), value.clone());
                    st.dirty = true;
                }
            }
        }
        drop(st);
        self.shared.committed.notify_one();
    }

    pub fn cursor(&self, key: &str) -> Option<String> {
        self.shared.state.lock().unwrap().cursors.get(key).cloned()
    }

    pub fn remove_cursor(&self, key: &str) {
        let mut st = self.shared.state.lock().unwrap();
        if st.cursors.remove(key).is_some() {
            st.dirty = true;
        }
    }

    /// The target of a cursor is gone for good (a removed container): forget the cursor, and ignore the
    /// acknowledgements for it that are still in flight.
    pub fn retire_cursor(&self, key: &str) {
        let mut st = self.shared.state.lock().unwrap();
        st.retired.insert(key.to_owned());
        if st.cursors.remove(key).is_some() {
            st.dirty = true;
        }
    }

    /// Every cursor key (`cursor-…`, `journal-…`).
    pub fn cursor_keys(&self) -> Vec<String> {
        let st = self.shared.state.lock().unwrap();
        st.cursors.keys().cloned().collect()
    }

    /// The files with a saved position whose fingerprint covers some content (an empty file's tells
    /// nothing apart), with the path each was last seen at.
    pub fn fingerprinted_files(&self) -> Vec<(FileId, String)> {
        let st = self.shared.state.lock().unwrap();
        let files = st.files.iter().filter(|(_, r)| r.fingerprint.len > 0);
        files.map(|(id, r)| (*id, r.path.clone())).collect()
    }

    /// The acknowledged offset of a tracked file.
    pub fn file_offset(&self, id: FileId) -> Option<u64> {
        let st = self.shared.state.lock().unwrap();
        st.files.get(&id).map(|r| r.offset)
    }

    /// Persist if anything changed. Atomic: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self) -> Result<(), PositionsError> {
        let Some(path) = &self.shared.file else {
            return Ok(());
        };
        if self.shared.read_only {
            return Ok(());
        }
        let text = {
            let mut st = self.shared.state.lock().unwrap();
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            render(&st)
        };
        write_atomically(path, text.as_bytes()).map_err(|source| {
            self.shared.state.lock().unwrap().dirty = true;
            PositionsError::Io {
                path: path.display().to_string(),
                source,
            }
        })
    }
}

fn parse(text: &str) -> Result<State, String> {
    if text.trim().is_empty() {
        return Ok(State::default());
    }
    let disk: OnDisk = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let mut st = State::default();
    for f in disk.files {
        let fingerprint = Fingerprint::from_text(&f.fingerprint)
            .ok_or_else(|| format!("bad fingerprint {:?} for {}", f.fingerprint, f.path))?;
        st.files.insert(
            FileId {
                dev: f.dev,
                ino: f.ino,
            },
            FileRecord {
                path: f.path,
                offset: f.offset,
                fingerprint,
                epoch: 0,
            },
        );
    }
    let known: std::collections::HashSet<&str> =
        st.files.values().map(|r| r.path.as_str()).collect();
    let mut legacy = HashMap::new();
    for (key, value) in disk.positions {
        if is_cursor_key(&key) {
            st.cursors.insert(key, value);
        } else if !known.contains(key.as_str()) {
            // Promtail writes offsets as strings; an unparsable one is skipped, as Promtail's reader does.
            if let Ok(offset) = value.trim().parse::<u64>() {
                legacy.insert(key, offset);
            }
        }
    }
    st.legacy = legacy;
    Ok(st)
}

fn render(st: &State) -> String {
    let mut disk = OnDisk::default();
    for (key, value) in &st.cursors {
        disk.positions.insert(key.clone(), value.clone());
    }
    for (path, offset) in &st.legacy {
        disk.positions.insert(path.clone(), offset.to_string());
    }
    let mut files: Vec<_> = st.files.iter().collect();
    files.sort_by(|a, b| a.1.path.cmp(&b.1.path).then(a.0.ino.cmp(&b.0.ino)));
    for (id, rec) in files {
        disk.positions
            .insert(rec.path.clone(), rec.offset.to_string());
        disk.files.push(OnDiskFile {
            path: rec.path.clone(),
            dev: id.dev,
            ino: id.ino,
            offset: rec.offset,
            fingerprint: rec.fingerprint.to_text(),
        });
    }
    serde_yaml_ng::to_string(&disk).unwrap_or_default()
}

/// The temp file [`write_atomically`] writes for `path` in process `pid`.
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{pid}"));
    PathBuf::from(name)
}

/// Delete the temp files a killed process left beside `path` (`<file>.tmp-<pid>`): its own pid's (a
/// container's agent is pid 1 every time) and those of processes that no longer exist. A live
/// process's is left alone.
fn remove_stale_temp_files(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = parent_dir(path);
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && process_exists(pid) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => tracing::info!(file = %entry.path().display(),
                "positions: removed a temp file left by a process that was killed while saving"),
            Err(e) => tracing::warn!(file = %entry.path().display(), error = %e,
                "positions: cannot remove a temp file left by a killed process"),
        }
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists (EPERM: it does, owned by another user).
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent_dir(path);
    fs::create_dir_all(dir)?;
    let tmp = temp_path(path, std::process::id());
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        // A full disk: leave no partial temp file behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> FileId {
        FileId { dev: 1, ino }
    }

    #[test]
    fn takes_over_promtail_positions_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("positions.yaml");
        fs::write(
            &p,
            "positions:\n  /var/log/a.log: \"120\"\n  cursor-journal: s=abc;i=1\n",
        )
        .unwrap();
        let pos = Positions::open(&p, false).unwrap();
        let fp = |_| Ok(Fingerprint::of(b"x"));
        assert_eq!(
            pos.resume_file("/var/log/a.log", id(5), 500, fp).offset,
            120
        );
        // Claimed once: a later file at the same path starts at 0.
        assert_eq!(pos.resume_file("/var/log/a.log", id(6), 500, fp).offset, 0);
        assert_eq!(pos.cursor("cursor-journal").as_deref(), Some("s=abc;i=1"));
    }

    #[test]
    fn temp_files_left_by_killed_processes_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.yaml");
        // A pid no process has (above the kernel's pid_max limit), ours (a container's pid 1 after
        // a restart), and a live process's (pid 1 here is init: not ours).
        let dead = temp_path(&path, 4_194_305);
        let own = temp_path(&path, std::process::id());
        let live = temp_path(&path, 1);
        for f in [&dead, &own, &live] {
            fs::write(f, "").unwrap();
        }
        let other = dir.path().join("other.yaml.tmp-4194305");
        fs::write(&other, "").unwrap();
        Positions::open(&path, false).unwrap();
        assert!(!dead.exists() && !own.exists(), "leftovers removed");
        assert!(live.exists(), "a live process's temp file is left alone");
        assert!(other.exists(), "another file's temp file is left alone");
        // A read-only open (dry-run) changes nothing on disk, leftovers included.
        fs::write(&dead, "").unwrap();
        Positions::open(&path, true).unwrap();
        assert!(dead.exists(), "a read-only open removed a file");
    }

    #[test]
    fn promtail_offset_past_end_restarts() {
        let pos = Positions::in_memory();
        pos.shared
            .state
            .lock()
            .unwrap()
            .legacy
            .insert("/a".into(), 900);
        let r = pos.resume_file("/a", id(1), 10, |_| Ok(Fingerprint::default()));
        assert_eq!(r.offset, 0);
    }

    #[test]
    fn identity_survives_rename_and_round_trips_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        let pos = Positions::open(&p, false).unwrap();
        let fp = Fingerprint::of(b"first line\n");
        pos.track_file(id(7), "/logs/app.log", 0, fp);
        pos.commit(&Checkpoint::File {
            id: id(7),
            epoch: 0,
            offset: 11,
        });
        pos.rename_file(id(7), "/logs/app.log.1");
        pos.save().unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("/logs/app.log.1: '11'") || text.contains("/logs/app.log.1: \"11\""));

        let again = Positions::open(&p, false).unwrap();
        let r = again.resume_file("/logs/app.log.1", id(7), 100, |_| Ok(fp));
        assert_eq!(r.offset, 11);
    }

    #[test]
    fn same_first_bytes_other_inode_is_a_new_file() {
        let pos = Positions::in_memory();
        let fp = Fingerprint::of(b"same header\n");
        pos.track_file(id(1), "/a.log", 0, fp);
        pos.commit(&Checkpoint::File {
            id: id(1),
            epoch: 0,
            offset: 50,
        });
        let r = pos.resume_file("/b.log", id(2), 100, |_| Ok(fp));
        assert_eq!(r.offset, 0);
    }

    #[test]
    fn reused_inode_with_other_content_starts_over() {
        let pos = Positions::in_memory();
        pos.track_file(id(3), "/a.log", 0, Fingerprint::of(b"old"));
        pos.commit(&Checkpoint::File {
            id: id(3),
            epoch: 0,
            offset: 3,
        });
        let r = pos.resume_file("/a.log", id(3), 10, |_| Ok(Fingerprint::of(b"new")));
        assert_eq!(r.offset, 0);
    }

    #[test]
    fn stale_ack_after_truncation_is_ignored() {
        let pos = Positions::in_memory();
        pos.track_file(id(4), "/t.log", 0, Fingerprint::of(b"a"));
        let epoch = pos.restart_file(id(4), Fingerprint::of(b"b"));
        assert_eq!(epoch, 1);
        pos.commit(&Checkpoint::File {
            id: id(4),
            epoch: 0,
            offset: 900,
        });
        assert_eq!(pos.file_offset(id(4)), Some(0));
        pos.commit(&Checkpoint::File {
            id: id(4),
            epoch: 1,
            offset: 10,
        });
        assert_eq!(pos.file_offset(id(4)), Some(10));
    }

    #[test]
    fn a_retired_cursor_stays_gone_despite_late_acks() {
        let pos = Positions::in_memory();
        let ack = |v: &str| Checkpoint::Cursor {
            key: "cursor-abc".into(),
            value: v.into(),
        };
        pos.commit(&ack("1"));
        assert_eq!(pos.cursor_keys(), ["cursor-abc"]);
        pos.retire_cursor("cursor-abc");
        pos.commit(&ack("2"));
        assert_eq!(pos.cursor("cursor-abc"), None);
        assert!(pos.cursor_keys().is_empty());
    }

    #[test]
    fn invalid_yaml_is_an_error_and_reset_keeps_it_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pos.yaml");
        fs::write(&p, "positions: [not, a, map\n").unwrap();
        assert!(matches!(
            Positions::open(&p, false),
            Err(PositionsError::Invalid { .. })
        ));
        let (_pos, aside) = Positions::reset_invalid(&p, false);
        assert!(aside.unwrap().exists());
        fs::write(&p, "").unwrap();
        assert!(Positions::open(&p, false).is_ok());
    }
}
