//! How many files the tailers hold open at once, shared by every file job of the agent.
//!
//! A tailer needs a slot to have its file open. When every slot is taken and another tailer waits for
//! one, a tailer that has read its file to the end closes it and gives its slot up; it keeps its
//! identity (device + inode), offset, unfinished line and fingerprint, watches its path with `stat`
//! (no descriptor), and reopens the file by identity once it changed ([`open_by_identity`]). Without
//! contention nothing is closed: an agent under its limit behaves as if there were no budget.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::positions::FileId;

pub struct OpenFiles {
    slots: Arc<Semaphore>,
    /// Tailers waiting for a slot.
    waiting: AtomicUsize,
    /// Asks one idle tailer to close its file (a tailer began to wait).
    release: Notify,
    metrics: Arc<Metrics>,
}

/// A tailer's right to hold its file open; dropping it gives the slot back.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.files_open.dec();
    }
}

impl OpenFiles {
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.files_open_limit.set(limit as i64);
        Arc::new(OpenFiles {
            slots: Arc::new(Semaphore::new(limit)),
            waiting: AtomicUsize::new(0),
            release: Notify::new(),
            metrics,
        })
    }

    /// A slot, once one is free (first come, first served).
    pub async fn acquire(&self) -> Slot {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _waiting = Waiting::enter(&self.waiting);
                self.release.notify_one();
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        self.metrics.files_open.inc();
        Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
        }
    }

    /// Whether some tailer waits for a slot: an idle one should give its up.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Resolves when a tailer began waiting for a slot.
    pub async fn release_requested(&self) {
        self.release.notified().await
    }
}

/// Counts a waiter for as long as it waits (also when its wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Open the file `id`: at `path`, or, if `path` now names another file or none (it was rotated while
/// closed), under another name in the same directory. `Ok(None)`: not there; the file was deleted or
/// moved elsewhere. An error is one of opening (out of descriptors, permissions), not of absence.
pub fn open_by_identity(path: &Path, id: FileId) -> io::Result<Option<File>> {
    if let Some(file) = open_if(path, id)? {
        return Ok(Some(file));
    }
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // The inode is in the directory entry: no stat for the thousands of other files.
        if entry.ino() != id.ino || entry.path() == path {
            continue;
        }
        if let Some(file) = open_if(&entry.path(), id)? {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// The file at `path` if it is `id`.
fn open_if(path: &Path, id: FileId) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => {
            let m = file.metadata()?;
            Ok((m.dev() == id.dev && m.ino() == id.ino).then_some(file))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(path: &Path) -> FileId {
        let m = std::fs::metadata(path).unwrap();
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    #[test]
    fn a_file_is_found_again_after_a_rename_in_its_directory() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.log");
        std::fs::write(&a, "x\n").unwrap();
        let id = id_of(&a);
        assert!(open_by_identity(&a, id).unwrap().is_some());
        std::fs::rename(&a, d.path().join("a.log.1")).unwrap();
        std::fs::write(&a, "new\n").unwrap();
        assert_ne!(id_of(&a), id);
        let f = open_by_identity(&a, id)
            .unwrap()
            .expect("found under its new name");
        assert_eq!(f.metadata().unwrap().ino(), id.ino);
        std::fs::remove_file(d.path().join("a.log.1")).unwrap();
        assert!(open_by_identity(&a, id).unwrap().is_none());
    }

    #[tokio::test]
    async fn waiting_for_a_slot_asks_an_idle_file_to_close() {
        let files = OpenFiles::new(1, Metrics::new());
        let first = files.acquire().await;
        assert!(!files.contended());
        let files2 = files.clone();
        let second = tokio::spawn(async move { files2.acquire().await });
        files.release_requested().await;
        assert!(files.contended());
        drop(first);
        let _second = second.await.unwrap();
        assert!(!files.contended());
        assert_eq!(files.metrics.files_open.get(), 1);
    }
}
