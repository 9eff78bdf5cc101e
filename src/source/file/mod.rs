//! The file source: Promtail's `static_configs` and `file_sd_configs` file targets ([`targets`],
//! [`sd`]). One [`FileSource`] per scrape config finds the files its `__path__` globs match, starts a
//! [`tailer`] per file, and keeps the set current as files and discovered targets come and go.
//!
//! Split by concern as Fluent Bit's tail plugin is: `glob.rs` (matching), `reader.rs` (the hot loop),
//! `tailer.rs` (one file's life: rotation, truncation, draining), this file (discovery and watching).
//!
//! Files are found by re-globbing every `target_config.sync_period` and, between those, as soon as
//! inotify reports a change in a watched directory. The same inotify events wake the tailer of the file
//! they name, so an idle file costs nothing; where inotify is unavailable (watch limit reached, a
//! filesystem without it) tailers poll between `file_watch_config`'s min and max frequency.
//!
//! A file is taken as gone (and drained) only when a complete listing no longer shows it. A listing
//! that failed for now (out of descriptors, an I/O error) is retried soon and proves nothing: before,
//! an EMFILE here made every file look "rotated away", forgotten, and read again from 0.

pub mod glob;
pub mod open_files;
pub mod reader;
pub mod sd;
pub mod tailer;
pub mod targets;

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::descriptors::{is_exhaustion, next_retry, report_exhaustion, RETRY_MIN};
use crate::entry::{LabelSet, Labels};
use crate::positions::FileId;
use glob::PathGlob;
use tailer::{Command, FileJobContext, Tailer};

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
    /// Where the file was last seen; shared with its tailer, which reopens it from there.
    location: Arc<Mutex<PathBuf>>,
    /// The file's labels: its target's and `filename` (the path it was found at); a change of its
    /// target's labels (file discovery) reaches the tailer here.
    labels: watch::Sender<Arc<LabelSet>>,
    filename: String,
    wake: Arc<Notify>,
    commands: watch::Sender<Command>,
    join: JoinHandle<()>,
}

/// How long a burst of directory events is let settle before re-globbing.
const RESCAN_DEBOUNCE: Duration = Duration::from_millis(50);

pub struct FileSource {
    /// The `static_configs` targets.
    pub targets: Vec<FileTarget>,
    /// The `file_sd_configs` discovery, whose targets come and go beside the static ones.
    pub sd: Option<sd::FileSd>,
    pub sync_period: Duration,
    pub claims: Claims,
    /// Everything but `inotify`, which this source sets when its watches are in place.
    pub ctx: FileJobContext,
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
        let (sd_tx, mut sd_targets) = watch::channel(Vec::new());
        let mut discovering = match self.sd {
            Some(sd) => {
                tokio::spawn(sd.run(sd_tx, shutdown.clone()));
                true
            }
            None => false,
        };
        let statics = self.targets;
        let mut run = Discovery {
            targets: statics.clone(),
            claims: self.claims,
            ctx: Arc::new(ctx),
            tailers: HashMap::new(),
            by_path: HashMap::new(),
            warned: HashSet::new(),
            resumed: false,
            relabel: false,
        };
        run.watch_roots(&mut watcher, &mut watched);
        // After a listing that failed for now, the next comes this soon (backing off up to the sync
        // period); the regular ones come every sync period.
        let mut retry = RETRY_MIN;
        let mut rescan_at = run.rescan_or_retry(&mut retry, self.sync_period);
        let mut sync = tokio::time::interval(self.sync_period);
        sync.tick().await;
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
                    run.watch_roots(&mut watcher, &mut watched);
                    rescan_at = run.rescan_or_retry(&mut retry, self.sync_period);
                }
                _ = sync.tick() => {
                    run.watch_roots(&mut watcher, &mut watched);
                    rescan_at = run.rescan_or_retry(&mut retry, self.sync_period);
                }
                changed = sd_targets.changed(), if discovering => {
                    if changed.is_err() {
                        discovering = false;
                        continue;
                    }
                    let mut targets = statics.clone();
                    targets.extend(sd_targets.borrow_and_update().iter().cloned());
                    run.targets = targets;
                    run.relabel = true;
                    run.watch_roots(&mut watcher, &mut watched);
                    rescan_at = run.rescan_or_retry(&mut retry, self.sync_period);
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
    ctx: Arc<FileJobContext>,
    tailers: HashMap<FileId, Handle>,
    by_path: HashMap<PathBuf, FileId>,
    warned: HashSet<PathBuf>,
    /// Whether files rotated out of the globs while the agent was down were looked for.
    resumed: bool,
    /// The discovered targets changed since the last rescan: running tailers' labels are compared.
    relabel: bool,
}

impl Handle {
    /// Hand the tailer its file's labels for `target_labels`, if they changed.
    fn relabel(&self, target_labels: &Labels) {
        let mut labels = target_labels.clone();
        labels.insert("filename".into(), self.filename.clone());
        self.labels.send_if_modified(|current| {
            let changed = *current.labels() != labels;
            if changed {
                tracing::info!(path = %self.filename, "the file's target labels changed; new lines carry the new ones");
                *current = LabelSet::new(labels);
            }
            changed
        });
    }
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

    /// Rescan; if the listing failed for now, when to try again.
    fn rescan_or_retry(
        &mut self,
        retry: &mut Duration,
        sync_period: Duration,
    ) -> Option<tokio::time::Instant> {
        if self.rescan() {
            *retry = RETRY_MIN;
            return None;
        }
        let at = tokio::time::Instant::now() + *retry;
        *retry = next_retry(*retry).min(sync_period.max(RETRY_MIN));
        Some(at)
    }

    /// Match the globs again: start tailers for new files, follow renames, drain files that left.
    /// False if the listing may be incomplete (then nothing is taken as gone).
    fn rescan(&mut self) -> bool {
        self.tailers.retain(|id, h| {
            let live = !h.join.is_finished();
            if !live {
                self.claims.lock().unwrap().remove(id);
            }
            live
        });
        let mut found: HashMap<FileId, (PathBuf, usize)> = HashMap::new();
        let mut unsure: Option<io::Error> = None;
        for (ti, t) in self.targets.iter().enumerate() {
            let (paths, error) = t.glob.expand();
            unsure = unsure.or(error);
            for path in paths {
                match std::fs::metadata(&path) {
                    Ok(meta) => {
                        let id = FileId {
                            dev: meta.dev(),
                            ino: meta.ino(),
                        };
                        found.entry(id).or_insert((path, ti));
                    }
                    // Gone since the listing: it is the listing that counts.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => unsure = unsure.or(Some(e)),
                }
            }
        }
        self.by_path.clear();
        for (id, (path, ti)) in &found {
            self.by_path.insert(path.clone(), *id);
            if let Some(h) = self.tailers.get_mut(id) {
                if self.relabel {
                    h.relabel(&self.targets[*ti].labels);
                }
                let mut location = h.location.lock().unwrap();
                if &*location != path {
                    tracing::info!(from = %location.display(), to = %path.display(), "file renamed; still reading it");
                    self.ctx.positions.rename_file(*id, &path.to_string_lossy());
                    *location = path.clone();
                    h.wake.notify_one();
                }
                continue;
            }
            self.start(*id, path, *ti, false);
        }
        if let Some(e) = &unsure {
            if is_exhaustion(e) {
                report_exhaustion(&self.ctx.metrics, "list_directory", e);
            } else {
                tracing::warn!(job = %self.ctx.job, error = %e,
                    "cannot list every file matching the globs for now; no file is taken as gone until it can");
            }
        } else {
            if !self.resumed {
                self.resumed = true;
                self.resume_rotated(&found);
            }
            for (id, h) in &self.tailers {
                if !found.contains_key(id) && *h.commands.borrow() == Command::Run {
                    tracing::debug!(path = %h.location.lock().unwrap().display(), "file left the glob; draining it");
                    let _ = h.commands.send(Command::Drain);
                }
            }
        }
        self.relabel = false;
        self.ctx
            .metrics
            .targets_active
            .set(self.tailers.len() as i64);
        unsure.is_none()
    }

    /// After a restart: files with a saved position under a path of this job's globs, which the
    /// globs no longer show, may have been rotated out of them while the agent was down. A tailer looks
    /// for each by identity in its directory, reads it on from its saved position to its end, and
    /// lets it go (or forgets the position if the file is gone).
    fn resume_rotated(&mut self, found: &HashMap<FileId, (PathBuf, usize)>) {
        for (id, path) in self.ctx.positions.fingerprinted_files() {
            if found.contains_key(&id) || self.tailers.contains_key(&id) {
                continue;
            }
            let path = PathBuf::from(path);
            if let Some(target) = self.targets.iter().position(|t| t.glob.matches(&path)) {
                self.start(id, &path, target, true);
            }
        }
    }

    /// Start a tailer for a file found at `path`; it opens the file itself, when the open-files
    /// budget has room. `resume_only`: see [`Discovery::resume_rotated`].
    fn start(&mut self, id: FileId, path: &Path, target: usize, resume_only: bool) {
        if !self.claims.lock().unwrap().insert(id) {
            if self.warned.insert(path.to_owned()) {
                tracing::warn!(job = %self.ctx.job, path = %path.display(),
                    "file already read by another scrape config; skipped here");
            }
            return;
        }
        let path_str = path.to_string_lossy().into_owned();
        let mut labels = self.targets[target].labels.clone();
        labels.insert("filename".into(), path_str.clone());
        let location = Arc::new(Mutex::new(path.to_owned()));
        let wake = Arc::new(Notify::new());
        let first = if resume_only {
            Command::Drain
        } else {
            Command::Run
        };
        let (commands, commands_rx) = watch::channel(first);
        let labels = LabelSet::new(labels);
        let (relabel, relabeled) = watch::channel(labels.clone());
        let tailer = Tailer {
            ctx: self.ctx.clone(),
            id,
            path: path_str.clone(),
            location: location.clone(),
            labels,
            relabeled,
            epoch: 0,
            reader: None,
            slot: None,
            gone_at: None,
            resume_only,
            wake: wake.clone(),
            commands: commands_rx,
        };
        let handle = Handle {
            location,
            labels: relabel,
            filename: path_str,
            wake,
            commands,
            join: tokio::spawn(tailer.run()),
        };
        self.tailers.insert(id, handle);
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
