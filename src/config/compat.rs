//! Blocks Promtail accepts that logferry only carries: `options` (empty since 3.0), `tracing` (Jaeger,
//! configured through `JAEGER_*` variables) and the undocumented `wal` (compat reference §2.7 to §2.9).
//! They parse strictly, so a typo is still an error, and print back with `-print-config-stderr`.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::duration::GoDuration;
use super::yaml::{self, yes};

/// `options`: empty in Promtail 3.x. Promtail 2.x's `stream_lag_labels` is accepted and ignored (with a
/// warning at load) so that 2.x configs keep loading.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsConfig {
    /// Deprecated in 2.x, removed in 3.0; ignored.
    #[serde(default, skip_serializing)]
    pub stream_lag_labels: Option<Value>,
}

/// `tracing`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Promtail's flag default is true (its docs say false); it only matters with `JAEGER_*` set.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub enabled: bool,
}

impl Default for TracingConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

/// `wal` (camelCase keys, as in Promtail).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    #[serde(default, deserialize_with = "yaml::bool")]
    pub enabled: bool,
    #[serde(default)]
    pub dir: String,
    #[serde(rename = "cleanSegmentsOlderThan", default = "one_hour")]
    pub clean_segments_older_than: GoDuration,
    #[serde(rename = "watchConfig", default)]
    pub watch_config: WalWatchConfig,
}

impl Default for WalConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

/// `wal.watchConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WalWatchConfig {
    #[serde(rename = "minReadFrequency", default = "quarter_second")]
    pub min_read_frequency: GoDuration,
    #[serde(rename = "maxReadFrequency", default = "one_second")]
    pub max_read_frequency: GoDuration,
}

impl Default for WalWatchConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn one_hour() -> GoDuration {
    GoDuration::from_secs(3600)
}
fn quarter_second() -> GoDuration {
    GoDuration::from_millis(250)
}
fn one_second() -> GoDuration {
    GoDuration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_promtail() {
        assert!(TracingConfig::default().enabled);
        let w = WalConfig::default();
        assert!(!w.enabled && w.dir.is_empty());
        assert_eq!(w.clean_segments_older_than.0, Duration::from_secs(3600));
        assert_eq!(
            w.watch_config.min_read_frequency.0,
            Duration::from_millis(250)
        );
        assert_eq!(w.watch_config.max_read_frequency.0, Duration::from_secs(1));
        assert_eq!(OptionsConfig::default().stream_lag_labels, None);
    }

    #[test]
    fn wal_keys_are_camel_case() {
        let w: WalConfig = serde_yaml_ng::from_str(
            "enabled: true\ndir: /wal\ncleanSegmentsOlderThan: 2h\nwatchConfig: {minReadFrequency: 1s, maxReadFrequency: 2s}",
        )
        .unwrap();
        assert_eq!(w.watch_config.max_read_frequency.0, Duration::from_secs(2));
        assert!(serde_yaml_ng::from_str::<WalConfig>("clean_segments_older_than: 2h").is_err());
        assert!(serde_yaml_ng::from_str::<OptionsConfig>("foo: 1").is_err());
        assert!(serde_yaml_ng::from_str::<OptionsConfig>("stream_lag_labels: [a]").is_ok());
    }
}
