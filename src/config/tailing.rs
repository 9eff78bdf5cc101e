//! The blocks that tune file tailing and its bookkeeping: `global.file_watch_config`, `positions` and
//! `target_config` (compat reference §2.1, §2.4, §2.6).

use serde::{Deserialize, Serialize};

use super::duration::GoDuration;
use super::error::Invalid;
use super::yaml;

/// The `global` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default)]
    pub file_watch_config: FileWatchConfig,
}

/// `global.file_watch_config`: polling of tailed files. The interval starts at the minimum, doubles after
/// each poll that saw no change, up to the maximum, and drops back to the minimum on a change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileWatchConfig {
    #[serde(default = "quarter_second")]
    pub min_poll_frequency: GoDuration,
    #[serde(default = "quarter_second")]
    pub max_poll_frequency: GoDuration,
}

impl Default for FileWatchConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn quarter_second() -> GoDuration {
    GoDuration::from_millis(250)
}

impl GlobalConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let watch = &self.file_watch_config;
        let path = |key: &str| format!("global.file_watch_config.{key}");
        for (key, value) in [
            ("min_poll_frequency", watch.min_poll_frequency),
            ("max_poll_frequency", watch.max_poll_frequency),
        ] {
            if value.0.is_zero() {
                return Err(Invalid::value(
                    path(key),
                    format!("{key} must be greater than 0"),
                ));
            }
        }
        if watch.max_poll_frequency < watch.min_poll_frequency {
            return Err(Invalid::value(
                path("max_poll_frequency"),
                format!(
                    "max_poll_frequency ({}) must be greater than or equal to min_poll_frequency ({})",
                    watch.max_poll_frequency, watch.min_poll_frequency
                ),
            ));
        }
        Ok(())
    }
}

/// `positions`: where read offsets are saved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PositionsConfig {
    #[serde(default = "positions_file")]
    pub filename: String,
    /// How often the file is rewritten.
    #[serde(default = "ten_seconds")]
    pub sync_period: GoDuration,
    /// Start empty instead of failing when the file is corrupt.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub ignore_invalid_yaml: bool,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn positions_file() -> String {
    "/var/log/positions.yaml".to_string()
}
fn ten_seconds() -> GoDuration {
    GoDuration::from_secs(10)
}

impl PositionsConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.filename.is_empty() {
            return Err(Invalid::value(
                "positions.filename",
                "filename must not be empty",
            ));
        }
        positive("positions.sync_period", self.sync_period)
    }
}

/// `target_config`: discovery of file targets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// How often globs are re-evaluated and directory watches re-synced.
    #[serde(default = "ten_seconds")]
    pub sync_period: GoDuration,
    /// Read lines from standard input instead of the scrape configs (same as `-stdin`).
    #[serde(default, deserialize_with = "yaml::bool")]
    pub stdin: bool,
    /// logferry extension. A file's last line is held back until its `\n` arrives; with this set, a
    /// graceful shutdown sends such an unfinished line as it is (the rest then arrives later as a line
    /// of its own). Off by default, as in Promtail, which never sends an unfinished line.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub flush_partial_lines_on_shutdown: bool,
}

impl Default for TargetConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

impl TargetConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        positive("target_config.sync_period", self.sync_period)
    }
}

/// A period that drives a ticker must not be zero (Go's `time.NewTicker` panics on it).
fn positive(path: &str, value: GoDuration) -> Result<(), Invalid> {
    if value.0.is_zero() {
        let key = path.rsplit('.').next().unwrap_or(path);
        return Err(Invalid::value(
            path,
            format!("{key} must be greater than 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_promtail() {
        let g = GlobalConfig::default();
        assert_eq!(
            g.file_watch_config.min_poll_frequency.0,
            Duration::from_millis(250)
        );
        assert_eq!(
            g.file_watch_config.max_poll_frequency.0,
            Duration::from_millis(250)
        );
        let p = PositionsConfig::default();
        assert_eq!(p.filename, "/var/log/positions.yaml");
        assert_eq!(p.sync_period.0, Duration::from_secs(10));
        assert!(!p.ignore_invalid_yaml);
        let t = TargetConfig::default();
        assert_eq!(t.sync_period.0, Duration::from_secs(10));
        assert!(!t.stdin);
        assert_eq!(
            (g.validate(), p.validate(), t.validate()),
            (Ok(()), Ok(()), Ok(()))
        );
    }

    #[test]
    fn poll_frequencies_must_be_ordered_and_positive() {
        let check = |text: &str| {
            serde_yaml_ng::from_str::<GlobalConfig>(text)
                .unwrap()
                .validate()
                .err()
                .map(|e| (e.path, e.message))
        };
        assert_eq!(
            check("file_watch_config: {min_poll_frequency: 1s, max_poll_frequency: 5s}"),
            None
        );
        assert_eq!(
            check("file_watch_config: {min_poll_frequency: 1s, max_poll_frequency: 500ms}"),
            Some(("global.file_watch_config.max_poll_frequency".into(), "max_poll_frequency (500ms) must be greater than or equal to min_poll_frequency (1s)".into()))
        );
        assert_eq!(
            check("file_watch_config: {min_poll_frequency: 0s}"),
            Some((
                "global.file_watch_config.min_poll_frequency".into(),
                "min_poll_frequency must be greater than 0".into()
            ))
        );
    }
}
