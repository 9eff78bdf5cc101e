//! `limits_config`: the global read-rate limit and the per-client stream and line-size limits
//! (compat reference §2.5).

use serde::{Deserialize, Serialize};

use super::byte_size::ByteSize;
use super::yaml::{self, yes};

/// The `limits_config` block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Turn on the global token bucket applied at the end of every pipeline.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub readline_rate_enabled: bool,
    /// Lines per second allowed through the bucket.
    #[serde(default = "ten_thousand_per_second")]
    pub readline_rate: f64,
    /// Bucket size: lines allowed in a burst.
    #[serde(default = "ten_thousand")]
    pub readline_burst: u64,
    /// When the bucket is empty: true drops lines (counted), false waits.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub readline_rate_drop: bool,
    /// Most streams per client and tenant in one batch; 0 means unlimited.
    #[serde(default)]
    pub max_streams: u64,
    /// Longest line a client sends (`256kb`, `2MB` or bytes); 0 means unlimited.
    #[serde(default)]
    pub max_line_size: ByteSize,
    /// Cut lines longer than `max_line_size` instead of dropping them.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub max_line_size_truncate: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn ten_thousand_per_second() -> f64 {
    10_000.0
}
fn ten_thousand() -> u64 {
    10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_promtail() {
        let l = LimitsConfig::default();
        assert!(!l.readline_rate_enabled);
        assert_eq!(l.readline_rate, 10_000.0);
        assert_eq!(l.readline_burst, 10_000);
        assert!(l.readline_rate_drop);
        assert_eq!(l.max_streams, 0);
        assert_eq!(l.max_line_size, ByteSize(0));
        assert!(!l.max_line_size_truncate);
    }

    #[test]
    fn max_line_size_takes_sizes_and_integers() {
        let l: LimitsConfig = serde_yaml_ng::from_str("max_line_size: 256kb").unwrap();
        assert_eq!(l.max_line_size, ByteSize(256 * 1024));
        let l: LimitsConfig =
            serde_yaml_ng::from_str("max_line_size: 4096\nreadline_rate: 50").unwrap();
        assert_eq!((l.max_line_size, l.readline_rate), (ByteSize(4096), 50.0));
    }
}
