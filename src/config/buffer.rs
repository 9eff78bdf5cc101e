//! `clients[].buffer` (a logferry extension; Promtail has none): the sink's buffer. By default every
//! client gets a disk buffer under the positions file's directory, so a Loki outage, a crash or a
//! restart loses nothing; see `configs/buffer.yaml` for a commented example.

use serde::{Deserialize, Serialize};

use super::byte_size::ByteSize;
use super::duration::GoDuration;
use super::error::Invalid;
use super::locate::join_key;
use super::yaml;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `disk`: batches are durable on disk before their positions are committed. `memory`: no buffer;
    /// positions move once the receiver accepted the lines, so an outage pauses reading instead.
    #[serde(default)]
    pub r#type: BufferType,
    /// Directory of this client's segments; empty means `<positions dir>/buffer/<client>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Most bytes the buffer holds before `when_full` applies.
    #[serde(default = "one_gibibyte")]
    pub max_size: ByteSize,
    /// Size at which a new segment file is started (a segment is deleted once all of it was accepted).
    #[serde(default = "sixteen_mebibytes")]
    pub segment_size: ByteSize,
    /// `always`: fsync before every acknowledgement. `interval`: fsync at most every
    /// `fsync_interval` while batches keep coming, and within a tenth of it once they pause.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default = "half_second")]
    pub fsync_interval: GoDuration,
    /// `block`: pause the sources until there is room. `drop_newest`: drop new batches and count them.
    #[serde(default)]
    pub when_full: WhenFull,
    /// The dead-letter file (permanent rejections) is rotated at this size; one older file is kept.
    #[serde(default = "sixty_four_mebibytes")]
    pub dead_letter_max_size: ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    #[default]
    Disk,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    Always,
    #[default]
    Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Block,
    DropNewest,
}

impl Default for BufferConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

impl BufferConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        const MIN_SEGMENT: u64 = 4096;
        if self.segment_size.get() < MIN_SEGMENT {
            return Err(Invalid::value(
                join_key(base, "segment_size"),
                format!(
                    "segment_size {} is too small: expected at least 4KB",
                    self.segment_size
                ),
            ));
        }
        if self.max_size.get() < self.segment_size.get() {
            return Err(Invalid::value(
                join_key(base, "max_size"),
                format!(
                    "max_size {} is smaller than segment_size {}",
                    self.max_size, self.segment_size
                ),
            ));
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval.get().is_zero() {
            return Err(Invalid::value(
                join_key(base, "fsync_interval"),
                "fsync_interval must be above zero (or use fsync: always)".to_string(),
            ));
        }
        Ok(())
    }
}

fn one_gibibyte() -> ByteSize {
    ByteSize(1 << 30)
}
fn sixteen_mebibytes() -> ByteSize {
    ByteSize(16 << 20)
}
fn sixty_four_mebibytes() -> ByteSize {
    ByteSize(64 << 20)
}
fn half_second() -> GoDuration {
    GoDuration::from_millis(500)
}
