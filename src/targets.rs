//! What `/targets` shows: every target being read, with its labels and how far behind it is.
//!
//! Sources report into one shared [`Targets`] as they read (a file's tailer after each chunk) and
//! remove their target when they stop reading it; the server renders a snapshot as JSON. Only file
//! targets report so far; the journal and Docker sources have their own metrics
//! (`logferry_docker_containers_followed`, the journal's cursor in the positions file).
//!
//! Updates take a mutex per chunk read (up to megabytes of lines), not per line, so the cost does not
//! show next to reading and the pipeline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::entry::LabelSet;

/// The targets being read, by kind.
#[derive(Default)]
pub struct Targets {
    files: Mutex<BTreeMap<String, FileStatus>>,
}

struct FileStatus {
    job: Arc<str>,
    labels: Arc<LabelSet>,
    read_bytes: u64,
    file_size: u64,
}

/// One file target as `/targets` lists it.
#[derive(Debug, Serialize, PartialEq)]
pub struct FileTargetView {
    pub kind: &'static str,
    pub job: String,
    pub path: String,
    /// The stream labels after relabeling (what Loki sees, before pipeline stages add more).
    pub labels: BTreeMap<String, String>,
    /// Bytes read so far: the offset reading continues from (as `promtail_read_bytes_total`).
    pub read_bytes: u64,
    /// The file's size when it was last read (as `promtail_file_bytes_total`).
    pub file_size: u64,
    /// Bytes written but not read yet.
    pub lag_bytes: u64,
}

impl Targets {
    pub fn new() -> Arc<Targets> {
        Arc::new(Targets::default())
    }

    /// A file's progress after a read.
    pub fn file_read(
        &self,
        path: &str,
        job: &Arc<str>,
        labels: &Arc<LabelSet>,
        read_bytes: u64,
        file_size: u64,
    ) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
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
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// Every target, ordered by path.
    pub fn snapshot(&self) -> Vec<FileTargetView> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .iter()
            .map(|(path, f)| FileTargetView {
                kind: "file",
                job: f.job.to_string(),
                path: path.clone(),
                labels: f.labels.labels().clone(),
                read_bytes: f.read_bytes,
                file_size: f.file_size,
                lag_bytes: f.file_size.saturating_sub(f.read_bytes),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Labels;

    #[test]
    fn a_file_is_listed_with_its_lag_until_it_is_gone() {
        let targets = Targets::new();
        let mut labels = Labels::new();
        labels.insert("job".into(), "app".into());
        let labels = LabelSet::new(labels);
        let job: Arc<str> = "app".into();
        targets.file_read("/l/b.log", &job, &labels, 10, 10);
        targets.file_read("/l/a.log", &job, &labels, 100, 250);
        targets.file_read("/l/a.log", &job, &labels, 200, 300);
        let views = targets.snapshot();
        assert_eq!(views.len(), 2);
        assert_eq!(views[0].path, "/l/a.log");
        assert_eq!(
            (views[0].read_bytes, views[0].file_size, views[0].lag_bytes),
            (200, 300, 100)
        );
        assert_eq!(views[0].labels.get("job").map(String::as_str), Some("app"));
        assert_eq!(views[1].lag_bytes, 0);
        targets.file_gone("/l/a.log");
        assert_eq!(targets.snapshot().len(), 1);
    }
}
