//! The Loki sink's settings, resolved from a Promtail `clients[]` entry (see `crate::config`); what
//! every HTTP sink is configured with alike is [`HttpSettings`].

use std::time::Duration;

use crate::entry::Labels;
use crate::sink::http::{host_of, HttpSettings};

#[derive(Clone, Debug)]
pub struct LokiSettings {
    pub url: String,
    /// `host:port` of the URL: the `host` label of Promtail's client metrics.
    pub host: String,
    pub tenant_id: String,
    pub batch_wait: Duration,
    pub batch_size: usize,
    pub http: HttpSettings,
    pub drop_rate_limited_batches: bool,
    pub external_labels: Labels,
    /// Lines longer than this (bytes) are dropped or, with `truncate_long_lines`, cut. 0 = no limit.
    pub max_line_size: usize,
    pub truncate_long_lines: bool,
}

impl LokiSettings {
    /// Settings with Promtail's defaults, for `url`.
    pub fn new(url: &str) -> Self {
        LokiSettings {
            url: url.to_owned(),
            host: host_of(url),
            tenant_id: String::new(),
            batch_wait: Duration::from_secs(1),
            batch_size: 1024 * 1024,
            http: HttpSettings::default(),
            drop_rate_limited_batches: false,
            external_labels: Labels::new(),
            max_line_size: 0,
            truncate_long_lines: false,
        }
    }
}
