//! File target discovery: what a job's `static_configs` become (Promtail's file target manager). Each
//! target (one per `targets` address, `localhost` when none) gets its labels plus `__address__`, goes
//! through the job's relabel rules, is kept only on the host its `__host__` names (when it names one),
//! and is read from the glob in `__path__` less `__path_exclude__`. The `__*` labels are dropped after.

use crate::config::StaticConfig;
use crate::entry::Labels;
use crate::relabel::Relabeler;

use super::glob::{GlobError, PathGlob};
use super::FileTarget;

/// A target that cannot be read: where in the scrape config (a key path below it) and why.
#[derive(Debug)]
pub struct TargetError {
    pub at: String,
    pub message: String,
}

/// The file targets of `static_configs`, relabeled by `relabeler`.
pub fn static_targets(
    job: &str,
    static_configs: &[StaticConfig],
    relabeler: &Relabeler,
) -> Result<Vec<FileTarget>, TargetError> {
    let mut targets = Vec::new();
    let host = hostname();
    for (i, stat) in static_configs.iter().enumerate() {
        let labels: Labels = stat.labels.clone().into_iter().collect();
        for address in addresses(&stat.targets) {
            let target = target_of(job, address, &labels, relabeler, &host).map_err(|e| {
                // At the label when it is written there (rather than made by a relabel rule).
                let label = if e.exclude {
                    "__path_exclude__"
                } else {
                    "__path__"
                };
                let at = if stat.labels.contains_key(label) {
                    format!("static_configs[{i}].labels.{label}")
                } else {
                    format!("static_configs[{i}]")
                };
                TargetError {
                    at,
                    message: e.message,
                }
            })?;
            targets.extend(target);
        }
    }
    Ok(targets)
}

/// A group's addresses: `localhost` when it names none.
pub fn addresses(targets: &[String]) -> Vec<String> {
    if targets.is_empty() {
        vec!["localhost".into()]
    } else {
        targets.to_vec()
    }
}

/// One target of a group: the group's labels and `__address__`, relabeled; `None` when a rule drops
/// it, it is for another host, or it has no `__path__`.
pub fn target_of(
    job: &str,
    address: String,
    group_labels: &Labels,
    relabeler: &Relabeler,
    host: &str,
) -> Result<Option<FileTarget>, GlobError> {
    let mut labels = group_labels.clone();
    labels.insert("__address__".into(), address);
    if !relabeler.process(&mut labels) {
        return Ok(None);
    }
    if labels.get("__host__").is_some_and(|h| h != host) {
        return Ok(None);
    }
    let Some(path) = labels.get("__path__").cloned() else {
        tracing::warn!(job, "target has no __path__ label; skipped");
        return Ok(None);
    };
    let exclude = labels.get("__path_exclude__").cloned();
    let glob = PathGlob::new(&path, exclude.as_deref())?;
    labels.retain(|k, _| !k.starts_with("__"));
    Ok(Some(FileTarget { glob, labels }))
}

/// This host's name, as Promtail's `__host__` rule and the stdin source's default label take it:
/// `$HOSTNAME`, else the kernel's.
pub fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.is_empty() {
            return h;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
