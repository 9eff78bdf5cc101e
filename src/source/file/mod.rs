//! The file source: Promtail's `static_configs` file targets. One [`FileSource`] per scrape config finds
//! the files its `__path__` globs match, starts a [`tailer`] per file, and keeps the set current.
//!
//! Split by concern as Fluent Bit's tail plugin is: `glob.rs` (matching), `reader.rs` (the hot loop),
//! `tailer.rs` (one file's life: rotation, truncation, draining), this file (discovery and watching).
//!
//! Files are found by re-globbing every `target_config.sync_period` and, between those, as soon as
//! inotify reports a change in a watched directory. The same inotify events wake the tailer of the file
//! they name, so an idle file costs nothing; where inotify is unavailable (watch limit reached, a
//! filesystem without it) tailers poll between `file_watch_config`'s min and max frequency.

pub mod glob;
pub mod reader;
pub mod tailer;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::entry::{LabelSet, Labels};
use crate::positions::{FileId, FINGERPRINT_MAX};
use glob::PathGlob;
use reader::{fingerprint_of, Reader};
use tailer::{Command, JobContext, Tailer};

/// One discovered target of a scrape config: its glob and the labels its files' entries carry.
#[derive(Debug, Clone)]
pub struct FileTarget {
    pub glob: PathGlob,
    /// Target labels after relabeling, `__*` removed; each file adds `filename`.
    pub labels: Labels,
}

/// Files already tailed by some scrape config: a file matched by two jobs is read by the first only,
/// since one position per file cannot serve two readers.
pub type Claims = Arc<Mutex<HashSet<FileId>>>;

struct Handle {
    path: PathBuf,
    wake: Arc<Notify>,
    commands: watch::Sender<Command>,
    join: JoinHandle<()>,
}

/// How long a burst of directory events is let settle before re-globbing.
const RESCAN_DEBOUNCE: Duration = Duration::from_millis(50);

pub struct FileSource {
    pub targets: Vec<FileTarget>,
    pub sync_period: Duration,
    pub claims: Claims,
    /// Everything but `inotify`, which this source sets when its watches are in place.
    pub ctx: JobContext,
}

impl FileSource {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (events_tx, mut events) = mpsc::channel::<notify::Event>(8192);
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                // A full queue only loses wake-ups, which the periodic checks make up for.
                let _ = events_tx.try_send(ev);
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(job = %self.ctx.job, error = %e,
                    "inotify unavailable; polling files instead");
                None
            }
        };
        let mut watched: HashSet<PathBuf> = HashSet::new();
        let mut ctx = self.ctx;
        ctx.inotify = watcher.is_some();
        let mut run = Discovery {
            targets: self.targets,
            claims: self.claims,
            ctx: Arc::new(ctx),
            tailers: HashMap::new(),
            by_path: HashMap::new(),
            warned: HashSet::new(),
        };
        run.watch_roots(&mut watcher, &mut watched);
        run.rescan();
        let mut sync = tokio::time::interval(self.sync_period);
        sync.tick().await;
        let mut rescan_at: Option<tokio::time::Instant> = None;
        loop {
            let debounce = async {
                match rescan_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { continue };
                    if run.route_event(&ev) && rescan_at.is_none() {
                        rescan_at = Some(tokio::time::Instant::now() + RESCAN_DEBOUNCE);
                    }
                }
                _ = debounce => {
                    rescan_at = None;
                    run.watch_roots(&mut watcher, &mut watched);
                    run.rescan();
                }
                _ = sync.tick() => {
                    run.watch_roots(&mut watcher, &mut watched);
                    run.rescan();
                }
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        run.stop_all().await;
    }
}

struct Discovery {
    targets: Vec<FileTarget>,
    claims: Claims,
    ctx: Arc<JobContext>,
    tailers: HashMap<FileId, Handle>,
    by_path: HashMap<PathBuf, FileId>,
    warned: HashSet<PathBuf>,
}

impl Discovery {
    fn watch_roots(
        &self,
        watcher: &mut Option<notify::RecommendedWatcher>,
        watched: &mut HashSet<PathBuf>,
    ) {
        let Some(w) = watcher else { return };
        for t in &self.targets {
            let (root, recursive) = t.glob.watch_root();
            if watched.contains(root) || !root.is_dir() {
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match w.watch(root, mode) {
                Ok(()) => {
                    watched.insert(root.to_owned());
                }
                Err(e) => tracing::warn!(dir = %root.display(), error = %e,
                    "cannot watch directory; its files are polled"),
            }
        }
    }

    /// Wake the tailers an event names; true if the set of files may have changed.
    fn route_event(&self, ev: &notify::Event) -> bool {
        use notify::EventKind;
        let mut rescan = matches!(ev.kind, EventKind::Create(_) | EventKind::Remove(_))
            || matches!(
                ev.kind,
                EventKind::Modify(notify::event::ModifyKind::Name(_))
            );
        for p in &ev.paths {
            match self.by_path.get(p).and_then(|id| self.tailers.get(id)) {
                Some(h) => h.wake.notify_one(),
                None => rescan |= self.targets.iter().any(|t| t.glob.matches(p)),
            }
        }
        rescan
    }

    fn rescan(&mut self) {
        self.tailers.retain(|id, h| {
            let live = !h.join.is_finished();
            if !live {
                self.claims.lock().unwrap().remove(id);
            }
            live
        });
        let mut found: HashMap<FileId, (PathBuf, usize)> = HashMap::new();
        for (ti, t) in self.targets.iter().enumerate() {
            for path in t.glob.expand() {
                if let Ok(meta) = std::fs::metadata(&path) {
                    let id = FileId {
                        dev: meta.dev(),
                        ino: meta.ino(),
                    };
                    found.entry(id).or_insert((path, ti));
                }
            }
        }
        self.by_path.clear();
        for (id, (path, ti)) in &found {
            self.by_path.insert(path.clone(), *id);
            if let Some(h) = self.tailers.get_mut(id) {
                if &h.path != path {
                    tracing::info!(from = %h.path.display(), to = %path.display(), "file renamed; still reading it");
                    self.ctx.positions.rename_file(*id, &path.to_string_lossy());
                    h.path = path.clone();
                }
                continue;
            }
            self.start(*id, path, *ti);
        }
        for (id, h) in &self.tailers {
            if !found.contains_key(id) && *h.commands.borrow() == Command::Run {
                tracing::debug!(path = %h.path.display(), "file left the glob; draining it");
                let _ = h.commands.send(Command::Drain);
            }
        }
        self.ctx
            .metrics
            .targets_active
            .set(self.tailers.len() as i64);
    }

    fn start(&mut self, id: FileId, path: &Path, target: usize) {
        if !self.claims.lock().unwrap().insert(id) {
            if self.warned.insert(path.to_owned()) {
                tracing::warn!(job = %self.ctx.job, path = %path.display(),
                    "file already read by another scrape config; skipped here");
            }
            return;
        }
        match self.open(id, path, target) {
            Ok(handle) => {
                self.tailers.insert(id, handle);
            }
            Err(e) => {
                self.claims.lock().unwrap().remove(&id);
                if self.warned.insert(path.to_owned()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open file; will retry");
                }
            }
        }
    }

    fn open(&mut self, id: FileId, path: &Path, target: usize) -> std::io::Result<Handle> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.dev() != id.dev || meta.ino() != id.ino {
            return Err(std::io::Error::other("file replaced while opening"));
        }
        let path_str = path.to_string_lossy().into_owned();
        let resume = self
            .ctx
            .positions
            .resume_file(&path_str, id, meta.len(), |len| fingerprint_of(&file, len));
        let fingerprint = fingerprint_of(&file, FINGERPRINT_MAX)?;
        self.ctx
            .positions
            .track_file(id, &path_str, resume.offset, fingerprint);
        tracing::info!(path = %path_str, offset = resume.offset, reason = resume.reason, "tailing file");
        let reader = Reader::new(file, resume.offset, fingerprint)?;
        let mut labels = self.targets[target].labels.clone();
        labels.insert("filename".into(), path_str.clone());
        let wake = Arc::new(Notify::new());
        let (commands, commands_rx) = watch::channel(Command::Run);
        let tailer = Tailer {
            ctx: self.ctx.clone(),
            id,
            path: path_str,
            labels: LabelSet::new(labels),
            epoch: 0,
            reader: Some(reader),
            wake: wake.clone(),
            commands: commands_rx,
        };
        Ok(Handle {
            path: path.to_owned(),
            wake,
            commands,
            join: tokio::spawn(tailer.run()),
        })
    }

    async fn stop_all(&mut self) {
        for h in self.tailers.values() {
            let _ = h.commands.send(Command::Stop);
        }
        for (id, h) in self.tailers.drain() {
            let _ = h.join.await;
            self.claims.lock().unwrap().remove(&id);
        }
    }
}

#[cfg(test)]
mod tests;
