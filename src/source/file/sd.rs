//! `file_sd_configs`: file targets listed in JSON or YAML files, as Prometheus' file service discovery
//! reads them (Promtail uses it unchanged). Each file holds a list of target groups:
//!
//! ```yaml
//! - targets: [localhost]
//!   labels: {job: app, __path__: /var/log/app/*.log}
//! ```
//!
//! Every group gets `__meta_filepath` (the file it came from), each of its targets becomes one with
//! `__address__`, and the job's relabel rules run as for `static_configs` ([`target_of`]). The files
//! (paths whose last segment may hold `*`) are read again when their directory changes (inotify) and
//! every `refresh_interval`. A file that cannot be read or parsed keeps its last good groups and says
//! why, once per change of its error; a file that is gone takes its targets with it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::targets::{addresses, hostname, target_of};
use super::FileTarget;
use crate::config::FileSdConfig;
use crate::entry::Labels;
use crate::relabel::Relabeler;

/// How long a burst of changes to the target files is let settle before they are read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// One target group of a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: Labels,
}

/// A job's file discovery.
pub struct FileSd {
    pub job: Arc<str>,
    pub configs: Vec<FileSdConfig>,
    pub relabeler: Relabeler,
}

/// What was last read from each target file: its groups, or the error that kept the previous ones.
#[derive(Default)]
struct Read {
    groups: BTreeMap<PathBuf, Vec<Group>>,
    errors: HashMap<PathBuf, String>,
}

impl FileSd {
    /// Read the target files until `stop`, sending the targets on `out` whenever they change.
    pub async fn run(self, out: watch::Sender<Vec<FileTarget>>, mut stop: watch::Receiver<bool>) {
        let (events_tx, mut events) = mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok() {
                let _ = events_tx.try_send(());
            }
        });
        let mut watcher = watcher
            .map_err(|e| {
                tracing::warn!(job = %self.job, error = %e,
                "inotify unavailable; target files are read every refresh_interval only")
            })
            .ok();
        if let Some(w) = &mut watcher {
            for dir in self.directories() {
                if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(job = %self.job, dir = %dir.display(), error = %e,
                        "cannot watch the target files' directory; read every refresh_interval");
                }
            }
        }
        let refresh = self
            .configs
            .iter()
            .map(|c| c.refresh_interval.get())
            .min()
            .unwrap_or(Duration::from_secs(300))
            .max(Duration::from_secs(1));
        let mut read = Read::default();
        let mut last: Option<Vec<(String, Labels)>> = None;
        loop {
            self.read_files(&mut read);
            let targets = self.targets(&read);
            let shown: Vec<(String, Labels)> = targets
                .iter()
                .map(|t| (format!("{:?}", t.glob), t.labels.clone()))
                .collect();
            if last.as_ref() != Some(&shown) {
                tracing::info!(job = %self.job, targets = targets.len(), files = read.groups.len(),
                    "file_sd: targets discovered");
                last = Some(shown);
                if out.send(targets).is_err() {
                    return;
                }
            }
            let changed = tokio::select! {
                _ = events.recv() => true,
                _ = tokio::time::sleep(refresh) => false,
                _ = stop.wait_for(|s| *s) => return,
            };
            if changed {
                // Let a burst of writes (an editor's, a config manager's) settle.
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
            }
        }
    }

    /// The directories holding the target files (watched for changes).
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .configs
            .iter()
            .flat_map(|c| c.files.iter())
            .map(|f| split(f).0)
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Read every target file the configs name now.
    fn read_files(&self, read: &mut Read) {
        let mut seen = Vec::new();
        for pattern in self.configs.iter().flat_map(|c| c.files.iter()) {
            let (dir, name) = split(pattern);
            let Some(matcher) = name_matcher(&name) else {
                tracing::warn!(job = %self.job, pattern, "file_sd: not a valid file name pattern");
                continue;
            };
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if matcher.is_match(entry.file_name()) {
                    seen.push(entry.path());
                }
            }
        }
        seen.sort();
        seen.dedup();
        read.groups.retain(|path, _| seen.contains(path));
        read.errors.retain(|path, _| seen.contains(path));
        for path in seen {
            match parse(&path) {
                Ok(groups) => {
                    if read.errors.remove(&path).is_some() {
                        tracing::info!(job = %self.job, file = %path.display(),
                            "file_sd: target file readable again");
                    }
                    read.groups.insert(path, groups);
                }
                Err(why) => {
                    if read.errors.get(&path) != Some(&why) {
                        tracing::warn!(job = %self.job, file = %path.display(), error = %why,
                            "file_sd: cannot read target file; keeping its last good targets");
                        read.errors.insert(path, why);
                    }
                }
            }
        }
    }

    /// The targets of every group read, relabeled.
    fn targets(&self, read: &Read) -> Vec<FileTarget> {
        let host = hostname();
        let mut targets = Vec::new();
        for (path, groups) in &read.groups {
            for group in groups {
                let mut labels = group.labels.clone();
                labels.insert(
                    "__meta_filepath".into(),
                    path.to_string_lossy().into_owned(),
                );
                for address in addresses(&group.targets) {
                    match target_of(&self.job, address, &labels, &self.relabeler, &host) {
                        Ok(t) => targets.extend(t),
                        Err(e) => tracing::warn!(job = %self.job, file = %path.display(),
                            error = %e, "file_sd: target skipped"),
                    }
                }
            }
        }
        targets
    }
}

/// A target file pattern's directory and last segment.
fn split(pattern: &str) -> (PathBuf, String) {
    let path = Path::new(pattern);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// The matcher of a target file pattern's last segment (`*` and the other glob wildcards, never
/// across a `/`).
fn name_matcher(pattern: &str) -> Option<GlobMatcher> {
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .ok()?;
    Some(glob.compile_matcher())
}

/// A target file's groups: JSON for `.json`, YAML otherwise (as Prometheus decides by extension).
fn parse(path: &Path) -> Result<Vec<Group>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let groups: Vec<Group> = if json {
        serde_json::from_str(&text).map_err(|e| format!("not a JSON list of target groups: {e}"))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("not a YAML list of target groups: {e}"))?
    };
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_the_last_segment() {
        let wildcard = |pattern: &str, name: &str| name_matcher(pattern).unwrap().is_match(name);
        assert!(wildcard("*.json", "a.json"));
        assert!(wildcard("targets-*.yaml", "targets-web.yaml"));
        assert!(wildcard("a*b*c", "a-x-b-y-c"));
        assert!(!wildcard("*.json", "a.yaml"));
        assert!(!wildcard("a*b*c", "a-x-c"));
        assert!(wildcard("exact.yml", "exact.yml"));
        assert_eq!(
            split("/etc/sd/*.json"),
            (PathBuf::from("/etc/sd"), "*.json".into())
        );
        assert_eq!(split("t.yaml"), (PathBuf::from("."), "t.yaml".into()));
    }

    #[test]
    fn groups_become_relabeled_targets_and_a_broken_file_keeps_its_last_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.json");
        std::fs::write(
            &file,
            r#"[{"targets": ["localhost"], "labels": {"job": "web", "__path__": "/var/log/web/*.log"}},
                {"labels": {"job": "other-host", "__path__": "/x.log", "__host__": "elsewhere"}}]"#,
        )
        .unwrap();
        let yaml = dir.path().join("db.yaml");
        std::fs::write(&yaml, "- labels: {job: db, __path__: /var/log/db.log}\n").unwrap();
        let rules: Vec<crate::relabel::RelabelConfig> = serde_yaml_ng::from_str(
            "[{source_labels: [__meta_filepath], regex: '.*/(.*)\\.(json|yaml)', target_label: sd_file}]",
        )
        .unwrap();
        let sd = FileSd {
            job: "j".into(),
            configs: vec![FileSdConfig {
                files: vec![
                    format!("{}/*.json", dir.path().display()),
                    format!("{}/*.yaml", dir.path().display()),
                ],
                refresh_interval: crate::config::ModelDuration(Duration::from_secs(60)),
            }],
            relabeler: Relabeler::new(&rules).unwrap(),
        };
        let mut read = Read::default();
        sd.read_files(&mut read);
        let labels = |read: &Read| -> Vec<Labels> {
            sd.targets(read).into_iter().map(|t| t.labels).collect()
        };
        let got = labels(&read);
        let want = |job: &str, file: &str| {
            Labels::from([
                ("job".to_string(), job.to_string()),
                ("sd_file".to_string(), file.to_string()),
            ])
        };
        assert_eq!(got, [want("db", "db"), want("web", "web")]);

        std::fs::write(&file, "[{ broken").unwrap();
        sd.read_files(&mut read);
        assert_eq!(
            labels(&read),
            [want("db", "db"), want("web", "web")],
            "last good kept"
        );
        assert!(read.errors[&file].contains("JSON"));

        std::fs::remove_file(&yaml).unwrap();
        sd.read_files(&mut read);
        assert_eq!(
            labels(&read),
            [want("web", "web")],
            "a removed file takes its targets"
        );
    }
}
