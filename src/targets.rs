//! What `/targets` shows: every target being read (files, journals, containers), with its labels, its
//! state, how much was read, where reading stands and how far behind it is.
//!
//! Sources report into one shared [`Targets`] as they read, per chunk or batch (up to megabytes of
//! lines), never per line, so the mutex costs nothing next to reading and the pipeline:
//! * a file's tailer after each chunk; the file leaves the list when it is no longer read;
//! * a journal job after each chunk of entries, and when its reader fails or cannot start;
//! * a container's follower after each batch, and when its log stream ends or fails; a container
//!   leaves the list when it is removed.
//!
//! Lag is what each kind can tell cheaply: a file's bytes written but not read yet (its size at the
//! last read minus the offset); for the journal and containers, the seconds between the newest entry
//! read and the moment it was read (how far behind the writer the reader was at its last read), or 0
//! for a journal read to its end. Neither asks the journal or the daemon for more than reading needs.
//! The server renders a snapshot as JSON, or as HTML for browsers ([`page`]).

pub mod listener;
pub mod page;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::entry::LabelSet;

/// The targets being read, by kind.
#[derive(Default)]
pub struct Targets {
    files: Mutex<BTreeMap<String, FileStatus>>,
    journals: Mutex<BTreeMap<Arc<str>, JournalStatus>>,
    containers: Mutex<BTreeMap<String, ContainerStatus>>,
    /// Syslog and GELF listeners, by job and bound address ([`listener`]).
    listeners: Mutex<BTreeMap<(Arc<str>, String), listener::ListenerStatus>>,
}

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Data is being read (a file or journal not read to its end, a container's log stream open).
    Reading,
    /// Read to the end; waiting for more (or, for a container, for its log stream to open again).
    Waiting,
    /// A container that stopped, its log read to the end.
    Stopped,
    /// Reading failed; see `error`. It is retried.
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Reading => "reading",
            State::Waiting => "waiting",
            State::Stopped => "stopped",
            State::Error => "error",
        }
    }
}

struct FileStatus {
    job: Arc<str>,
    labels: Arc<LabelSet>,
    read_bytes: u64,
    file_size: u64,
}

struct JournalStatus {
    /// The directory read, or "" for the machine's journals.
    path: String,
    labels: BTreeMap<String, String>,
    state: State,
    error: Option<String>,
    read_entries: u64,
    cursor: Option<String>,
    lag_seconds: f64,
}

struct ContainerStatus {
    job: Arc<str>,
    name: String,
    labels: Option<Arc<LabelSet>>,
    state: State,
    error: Option<String>,
    read_entries: u64,
    read_bytes: u64,
    /// Docker's stamp of the newest line read, Unix nanoseconds (0: none yet).
    last_ns: i64,
    lag_seconds: f64,
}

/// One target as `/targets` lists it. Fields that do not apply to a kind are left out of the JSON.
#[derive(Debug, Serialize, PartialEq)]
pub struct TargetView {
    /// `file`, `journal`, `container`, `syslog` or `gelf`.
    pub kind: &'static str,
    pub job: String,
    /// The file's path, the journal's directory (`local` for the machine's journals), the container's
    /// name, a listener's `<protocol>://<bound address>`.
    pub name: String,
    /// The stream labels after relabeling (what Loki sees, before pipeline stages add more). For the
    /// journal, whose labels are relabeled per entry, the job's `labels`.
    pub labels: BTreeMap<String, String>,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where reading continues: a file's offset, a journal cursor, the Docker timestamp of the newest
    /// line read (RFC 3339).
    pub position: String,
    /// Bytes read so far (files: the offset, as `promtail_read_bytes_total`; containers: line bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_bytes: Option<u64>,
    /// Entries read so far (journal, containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_entries: Option<u64>,
    /// Files: the path (as `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Files: the size when last read (as `promtail_file_bytes_total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Files: bytes written but not read yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Journal and containers: see the module doc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// A TCP listener's open connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

/// What a journal job read in one chunk.
pub struct JournalProgress<'a> {
    pub entries: u64,
    pub cursor: Option<&'a str>,
    /// Realtime timestamp of the newest entry of the chunk, Unix microseconds.
    pub newest_usec: Option<u64>,
    /// The chunk ended at the journal's end.
    pub at_end: bool,
}

/// What a container's follower read in one batch.
pub struct ContainerProgress {
    pub entries: u64,
    pub bytes: u64,
    /// Docker's stamp of the newest line of the batch, Unix nanoseconds.
    pub newest_ns: i64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seconds_since_ns(ns: i64) -> f64 {
    let now = crate::entry::now_nanos();
    (now.saturating_sub(ns)).max(0) as f64 / 1e9
}

impl Targets {
    pub fn new() -> Arc<Targets> {
        Arc::new(Targets::default())
    }

    // ---- files ----

    /// A file's progress after a read.
    pub fn file_read(
        &self,
        path: &str,
        job: &Arc<str>,
        labels: &Arc<LabelSet>,
        read_bytes: u64,
        file_size: u64,
    ) {
        let mut files = lock(&self.files);
        match files.get_mut(path) {
            Some(f) => {
                f.read_bytes = read_bytes;
                f.file_size = file_size;
                if !Arc::ptr_eq(&f.labels, labels) {
                    f.labels = labels.clone();
                }
            }
            None => {
                files.insert(
                    path.to_string(),
                    FileStatus {
                        job: job.clone(),
                        labels: labels.clone(),
                        read_bytes,
                        file_size,
                    },
                );
            }
        }
    }

    /// A file is no longer read (it left its glob, or the agent stops).
    pub fn file_gone(&self, path: &str) {
        lock(&self.files).remove(path);
    }

    // ---- journal ----

    /// A journal job starts reading `path` ("" for the machine's journals); `labels` are its static
    /// labels.
    pub fn journal_started(&self, job: &Arc<str>, path: &str, labels: BTreeMap<String, String>) {
        lock(&self.journals).insert(
            job.clone(),
            JournalStatus {
                path: path.to_owned(),
                labels,
                state: State::Reading,
                error: None,
                read_entries: 0,
                cursor: None,
                lag_seconds: 0.0,
            },
        );
    }

    /// A journal job's progress after a chunk.
    pub fn journal_read(&self, job: &str, p: JournalProgress<'_>) {
        let mut journals = lock(&self.journals);
        let Some(j) = journals.get_mut(job) else {
            return;
        };
        j.read_entries += p.entries;
        if let Some(c) = p.cursor {
            j.cursor = Some(c.to_owned());
        }
        j.error = None;
        if p.at_end {
            j.state = State::Waiting;
            j.lag_seconds = 0.0;
        } else {
            j.state = State::Reading;
            if let Some(usec) = p.newest_usec {
                j.lag_seconds = seconds_since_ns((usec as i64).saturating_mul(1000));
            }
        }
    }

    /// A journal job cannot read (it retries, or did not start): `error` says why.
    pub fn journal_failed(&self, job: &str, error: String) {
        if let Some(j) = lock(&self.journals).get_mut(job) {
            j.state = State::Error;
            j.error = Some(error);
        }
    }

    /// A journal job stopped.
    pub fn journal_gone(&self, job: &str) {
        lock(&self.journals).remove(job);
    }

    // ---- containers ----

    /// A container's log stream opened (again).
    pub fn container_following(&self, id: &str, job: &Arc<str>, name: &str) {
        let mut containers = lock(&self.containers);
        let c = containers
            .entry(id.to_owned())
            .or_insert_with(|| ContainerStatus {
                job: job.clone(),
                name: String::new(),
                labels: None,
                state: State::Reading,
                error: None,
                read_entries: 0,
                read_bytes: 0,
                last_ns: 0,
                lag_seconds: 0.0,
            });
        name.clone_into(&mut c.name);
        c.state = State::Reading;
        c.error = None;
    }

    /// A container's progress after a batch; `labels` are its stream labels after relabeling.
    pub fn container_read(&self, id: &str, labels: Option<&Arc<LabelSet>>, p: ContainerProgress) {
        let mut containers = lock(&self.containers);
        let Some(c) = containers.get_mut(id) else {
            return;
        };
        c.read_entries += p.entries;
        c.read_bytes += p.bytes;
        if p.newest_ns > 0 {
            c.last_ns = c.last_ns.max(p.newest_ns);
            c.lag_seconds = seconds_since_ns(p.newest_ns);
        }
        if let Some(l) = labels {
            if !c.labels.as_ref().is_some_and(|old| Arc::ptr_eq(old, l)) {
                c.labels = Some(l.clone());
            }
        }
    }

    /// A container's log stream ended: `state` is `Stopped` (read to its end), `Waiting` (to be
    /// followed again) or `Error` with the reason.
    pub fn container_ended(&self, id: &str, state: State, error: Option<String>) {
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.state = state;
            c.error = error;
        }
    }

    /// A container was removed.
    pub fn container_gone(&self, id: &str) {
        lock(&self.containers).remove(id);
    }

    // ---- the view ----

    /// Every target: files by path, journals by job, containers by name.
    pub fn snapshot(&self) -> Vec<TargetView> {
        let mut views = Vec::new();
        for (path, f) in lock(&self.files).iter() {
            let lag = f.file_size.saturating_sub(f.read_bytes);
            views.push(TargetView {
                kind: "file",
                job: f.job.to_string(),
                name: path.clone(),
                labels: f.labels.labels().clone(),
                state: if lag > 0 {
                    State::Reading
                } else {
                    State::Waiting
                },
                error: None,
                position: f.read_bytes.to_string(),
                read_bytes: Some(f.read_bytes),
                read_entries: None,
                path: Some(path.clone()),
                file_size: Some(f.file_size),
                lag_bytes: Some(lag),
                lag_seconds: None,
                container_id: None,
                connections: None,
            });
        }
        for (job, j) in lock(&self.journals).iter() {
            views.push(TargetView {
                kind: "journal",
                job: job.to_string(),
                name: if j.path.is_empty() {
                    "local".to_owned()
                } else {
                    j.path.clone()
                },
                labels: j.labels.clone(),
                state: j.state,
                error: j.error.clone(),
                position: j.cursor.clone().unwrap_or_default(),
                read_bytes: None,
                read_entries: Some(j.read_entries),
                path: None,
                file_size: None,
                lag_bytes: None,
                lag_seconds: Some(j.lag_seconds),
                container_id: None,
                connections: None,
            });
        }
        let mut containers: Vec<TargetView> = lock(&self.containers)
            .iter()
            .map(|(id, c)| TargetView {
                kind: "container",
                job: c.job.to_string(),
                name: c.name.clone(),
                labels: c
                    .labels
                    .as_ref()
                    .map(|l| l.labels().clone())
                    .unwrap_or_default(),
                state: c.state,
                error: c.error.clone(),
                position: if c.last_ns > 0 {
                    jiff::Timestamp::from_nanosecond(c.last_ns as i128)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                },
                read_bytes: Some(c.read_bytes),
                read_entries: Some(c.read_entries),
                path: None,
                file_size: None,
                lag_bytes: None,
                lag_seconds: Some(c.lag_seconds),
                container_id: Some(id.clone()),
                connections: None,
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        views.extend(containers);
        self.listener_views(&mut views);
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Labels;

    fn labels(pairs: &[(&str, &str)]) -> Arc<LabelSet> {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.insert((*k).into(), (*v).into());
        }
        LabelSet::new(l)
    }

    #[test]
    fn a_file_is_listed_with_its_lag_until_it_is_gone() {
        let targets = Targets::new();
        let labels = labels(&[("job", "app")]);
        let job: Arc<str> = "app".into();
        targets.file_read("/l/b.log", &job, &labels, 10, 10);
        targets.file_read("/l/a.log", &job, &labels, 100, 250);
        targets.file_read("/l/a.log", &job, &labels, 200, 300);
        let views = targets.snapshot();
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].path.as_deref(), Some("/l/a.log"));
        assert_eq!(
            (views[0].read_bytes, views[0].file_size, views[0].lag_bytes),
            (Some(200), Some(300), Some(100))
        );
        assert_eq!(views[0].state, State::Reading);
        assert_eq!(views[0].position, "200");
        assert_eq!(views[0].labels.get("job").map(String::as_str), Some("app"));
        assert_eq!(views[1].lag_bytes, Some(0));
        assert_eq!(views[1].state, State::Waiting);
        targets.file_gone("/l/a.log");
        assert_eq!(targets.snapshot().len(), 1);
    }

    #[test]
    fn a_journal_reads_then_waits_at_its_end_and_shows_errors() {
        let targets = Targets::new();
        let job: Arc<str> = "journal".into();
        let static_labels = BTreeMap::from([("job".to_owned(), "systemd".to_owned())]);
        targets.journal_started(&job, "", static_labels);
        let hour_ago = (crate::entry::now_nanos() / 1000) as u64 - 3_600_000_000;
        targets.journal_read(
            "journal",
            JournalProgress {
                entries: 1024,
                cursor: Some("s=1;i=400"),
                newest_usec: Some(hour_ago),
                at_end: false,
            },
        );
        let v = &targets.snapshot()[0];
        assert_eq!(
            (v.kind, v.name.as_str(), v.state),
            ("journal", "local", State::Reading)
        );
        assert!(v.lag_seconds.unwrap() >= 3599.0, "{v:?}");
        targets.journal_read(
            "journal",
            JournalProgress {
                entries: 10,
                cursor: Some("s=1;i=40a"),
                newest_usec: None,
                at_end: true,
            },
        );
        let v = &targets.snapshot()[0];
        assert_eq!(
            (v.state, v.read_entries, v.lag_seconds),
            (State::Waiting, Some(1034), Some(0.0))
        );
        assert_eq!(v.position, "s=1;i=40a");
        targets.journal_failed("journal", "cannot open".into());
        let v = &targets.snapshot()[0];
        assert_eq!(
            (v.state, v.error.as_deref()),
            (State::Error, Some("cannot open"))
        );
    }

    #[test]
    fn a_container_is_listed_by_name_until_it_is_removed() {
        let targets = Targets::new();
        let job: Arc<str> = "docker".into();
        targets.container_following("b1", &job, "web");
        targets.container_following("a1", &job, "worker");
        let web = labels(&[("container", "web")]);
        let stamp = 1_770_037_200_123_456_789;
        targets.container_read(
            "b1",
            Some(&web),
            ContainerProgress {
                entries: 2,
                bytes: 30,
                newest_ns: stamp,
            },
        );
        targets.container_ended("b1", State::Stopped, None);
        let views = targets.snapshot();
        assert_eq!(views[0].name, "web");
        assert_eq!(views[0].container_id.as_deref(), Some("b1"));
        assert_eq!(views[0].state, State::Stopped);
        assert_eq!(
            (views[0].read_entries, views[0].read_bytes),
            (Some(2), Some(30))
        );
        assert_eq!(views[0].position, "2026-02-02T13:00:00.123456789Z");
        assert_eq!(
            views[0].labels.get("container").map(String::as_str),
            Some("web")
        );
        assert_eq!(views[1].state, State::Reading);
        targets.container_gone("b1");
        assert_eq!(targets.snapshot().len(), 1);
    }
}
