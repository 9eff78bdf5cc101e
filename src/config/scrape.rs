//! `scrape_configs[]`: one job each, with its source, relabeling and pipeline (compat reference §3, §10).
//!
//! The sources logferry runs (files via `static_configs`/`file_sd_configs`, `docker_sd_configs`,
//! `journal`, `syslog`, `gelf`) are typed and checked here. Every other Promtail source and service discovery is accepted as
//! raw YAML so that a Promtail config still loads, and [`ScrapeConfig::source`] tells the runtime which
//! source a job uses, so it can say which ones it does not support.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::discovery::{DockerSdConfig, FileSdConfig, StaticConfig};
use super::duration::GoDuration;
use super::error::Invalid;
use super::locate::join_key;
use super::otlp::OtlpSourceConfig;
use super::server::ServerConfig;
use super::stages::StageConfig;
use super::syslog::{GelfConfig, SyslogConfig};
use super::yaml::{self, LabelSet};
use crate::relabel::RelabelConfig;

/// One scrape job.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Unique name of the job; used in metrics and positions, never turned into a `job` label.
    #[serde(default)]
    pub job_name: String,
    #[serde(default)]
    pub pipeline_stages: Vec<StageConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// IANA charset of the files (file targets only); empty means UTF-8.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encoding: String,
    #[serde(default)]
    pub decompression: DecompressionConfig,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_sd_configs: Vec<DockerSdConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loki_push_api: Option<LokiPushApiConfig>,
    /// logferry extension: an OpenTelemetry logs receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpSourceConfig>,

    // Sources Promtail has and logferry does not run: accepted, kept as written, reported by the runtime.
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub windows_events: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub kafka: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gelf: Option<GelfConfig>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub gcplog: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_event_hubs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloudflare: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub heroku_drain: Option<Value>,

    // Prometheus service discoveries that feed file targets in Promtail; not run by logferry.
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub consul_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub consulagent_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub digitalocean_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub dockerswarm_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub serverset_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub nerve_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub marathon_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub gce_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub ec2_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub openstack_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub azure_sd_configs: Option<Value>,
    #[serde(
        default,
        serialize_with = "yaml::redacted_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub triton_sd_configs: Option<Value>,
}

/// The one source a job reads from, chosen in Promtail's order (`targets/manager.go`): a job with both
/// `static_configs` and `journal` is a file job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `static_configs`, `file_sd_configs` or another service discovery except Docker's.
    File,
    Journal,
    Syslog,
    Gcplog,
    LokiPushApi,
    WindowsEvents,
    Kafka,
    AzureEventHubs,
    Gelf,
    Cloudflare,
    Docker,
    HerokuDrain,
    Otlp,
}

impl SourceKind {
    /// The config key that selects this source (`static_configs` for files).
    pub fn key(self) -> &'static str {
        match self {
            SourceKind::File => "static_configs",
            SourceKind::Journal => "journal",
            SourceKind::Syslog => "syslog",
            SourceKind::Gcplog => "gcplog",
            SourceKind::LokiPushApi => "loki_push_api",
            SourceKind::WindowsEvents => "windows_events",
            SourceKind::Kafka => "kafka",
            SourceKind::AzureEventHubs => "azure_event_hubs",
            SourceKind::Gelf => "gelf",
            SourceKind::Cloudflare => "cloudflare",
            SourceKind::Docker => "docker_sd_configs",
            SourceKind::HerokuDrain => "heroku_drain",
            SourceKind::Otlp => "otlp",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Whether an untyped source or discovery block is written (a non-empty list or any other value).
fn present(v: &Option<Value>) -> bool {
    match v {
        Some(Value::Sequence(items)) => !items.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

impl ScrapeConfig {
    /// The service discoveries other than static, file and Docker ones (accepted, not run), by key.
    pub fn other_discoveries(&self) -> [&Option<Value>; 14] {
        [
            &self.kubernetes_sd_configs,
            &self.consul_sd_configs,
            &self.consulagent_sd_configs,
            &self.dns_sd_configs,
            &self.digitalocean_sd_configs,
            &self.dockerswarm_sd_configs,
            &self.serverset_sd_configs,
            &self.nerve_sd_configs,
            &self.marathon_sd_configs,
            &self.gce_sd_configs,
            &self.ec2_sd_configs,
            &self.openstack_sd_configs,
            &self.azure_sd_configs,
            &self.triton_sd_configs,
        ]
    }

    /// Whether a service discovery that logferry does not run yet is written.
    pub fn uses_other_discovery(&self) -> bool {
        self.other_discoveries().into_iter().any(present)
    }

    /// The source this job uses, or `None` when it names none (Promtail: "no valid target scrape config
    /// defined for `<job>`").
    pub fn source_kind(&self) -> Option<SourceKind> {
        let other_sd = self.other_discoveries();
        let order: [(bool, SourceKind); 13] = [
            (
                !self.static_configs.is_empty()
                    || !self.file_sd_configs.is_empty()
                    || other_sd.into_iter().any(present),
                SourceKind::File,
            ),
            (self.journal.is_some(), SourceKind::Journal),
            (self.syslog.is_some(), SourceKind::Syslog),
            (present(&self.gcplog), SourceKind::Gcplog),
            (self.loki_push_api.is_some(), SourceKind::LokiPushApi),
            (present(&self.windows_events), SourceKind::WindowsEvents),
            (present(&self.kafka), SourceKind::Kafka),
            (present(&self.azure_event_hubs), SourceKind::AzureEventHubs),
            (self.gelf.is_some(), SourceKind::Gelf),
            (present(&self.cloudflare), SourceKind::Cloudflare),
            (!self.docker_sd_configs.is_empty(), SourceKind::Docker),
            (present(&self.heroku_drain), SourceKind::HerokuDrain),
            (self.otlp.is_some(), SourceKind::Otlp),
        ];
        order
            .into_iter()
            .find(|(used, _)| *used)
            .map(|(_, kind)| kind)
    }

    /// Checks the typed sources of one job; `base` is its path (`scrape_configs[0]`).
    pub(crate) fn validate_sources(&self, base: &str) -> Result<(), Invalid> {
        self.decompression
            .validate(&join_key(base, "decompression"))?;
        for (i, sd) in self.file_sd_configs.iter().enumerate() {
            sd.validate(&format!("{base}.file_sd_configs[{i}]"))?;
        }
        for (i, sd) in self.docker_sd_configs.iter().enumerate() {
            sd.validate(&format!("{base}.docker_sd_configs[{i}]"))?;
        }
        if let Some(journal) = &self.journal {
            journal.validate(&join_key(base, "journal"))?;
        }
        if let Some(syslog) = &self.syslog {
            syslog.validate(&join_key(base, "syslog"))?;
        }
        if let Some(gelf) = &self.gelf {
            gelf.validate(&join_key(base, "gelf"))?;
        }
        if let Some(push) = &self.loki_push_api {
            push.validate(&join_key(base, "loki_push_api"))?;
        }
        if let Some(otlp) = &self.otlp {
            otlp.validate(&join_key(base, "otlp"))?;
        }
        Ok(())
    }
}

/// `decompression`: read compressed files (file targets only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecompressionConfig {
    #[serde(default, deserialize_with = "yaml::bool")]
    pub enabled: bool,
    /// Wait this long after a compressed file appears before reading it.
    #[serde(default)]
    pub initial_delay: GoDuration,
    /// `gz`, `z` or `bz2`.
    #[serde(default)]
    pub format: String,
}

impl Default for DecompressionConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

impl DecompressionConfig {
    pub const FORMATS: [&'static str; 3] = ["gz", "z", "bz2"];

    fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.enabled && !Self::FORMATS.contains(&self.format.as_str()) {
            return Err(Invalid::value(
                join_key(base, "format"),
                format!(
                    "invalid decompression format {:?}: expected one of gz, z, bz2",
                    self.format
                ),
            ));
        }
        Ok(())
    }
}

/// `loki_push_api`: a Loki push endpoint of the job's own, for agents and clients that push (a relay
/// tier). Its `server` block is the same as the agent's top-level one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LokiPushApiConfig {
    #[serde(default)]
    pub server: ServerConfig,
    /// Static labels set on every pushed stream before relabeling.
    #[serde(default)]
    pub labels: LabelSet,
    /// Keep the pushed entries' timestamps (else: the time they were received).
    #[serde(default, deserialize_with = "yaml::bool")]
    pub use_incoming_timestamp: bool,
    /// The largest request body taken, in bytes (Promtail's default: 100 MiB).
    #[serde(default = "hundred_mib")]
    pub max_send_msg_size: u64,
}

fn hundred_mib() -> u64 {
    100 << 20
}

impl LokiPushApiConfig {
    fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.max_send_msg_size == 0 {
            return Err(Invalid::value(
                join_key(base, "max_send_msg_size"),
                "max_send_msg_size must be above 0 bytes",
            ));
        }
        Ok(())
    }
}

/// `journal`: the systemd journal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Ship every field of an entry as a JSON object instead of just `MESSAGE`.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub json: bool,
    /// On first start (or a cursor older than this), start reading this far back.
    #[serde(default = "seven_hours")]
    pub max_age: GoDuration,
    /// Journal directory; empty means the system journals (`/var/log/journal`, `/run/log/journal`).
    #[serde(default)]
    pub path: String,
    /// Static labels added to every entry before relabeling.
    #[serde(default)]
    pub labels: LabelSet,
    /// Space-separated `FIELD=value` terms, as journalctl takes them: terms on the same field are ORed,
    /// on different fields ANDed, and `+` separates alternative groups (an extension: Promtail has no `+`).
    #[serde(default)]
    pub matches: String,
}

impl Default for JournalConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

/// sd-journal's rule for a match (`match_is_valid`): a field name of `A-Z`, `0-9` and `_`, not starting
/// with `__` (the trusted address fields), then `=`.
fn is_journal_match(term: &str) -> bool {
    let Some((field, _)) = term.split_once('=') else {
        return false;
    };
    !field.is_empty()
        && !field.starts_with("__")
        && field
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn seven_hours() -> GoDuration {
    GoDuration::from_secs(7 * 3600)
}

impl JournalConfig {
    /// The `matches` terms as (field, value) pairs, `+` left out.
    pub fn match_terms(&self) -> Vec<(&str, &str)> {
        self.matches
            .split_whitespace()
            .filter_map(|term| term.split_once('='))
            .collect()
    }

    /// The `matches` terms (`FIELD=value`) in their `+`-separated groups, empty groups left out.
    pub fn match_groups(&self) -> Vec<Vec<&str>> {
        let mut groups = vec![Vec::new()];
        for term in self.matches.split_whitespace() {
            match term {
                "+" => groups.push(Vec::new()),
                t => groups.last_mut().expect("never empty").push(t),
            }
        }
        groups.retain(|g| !g.is_empty());
        groups
    }

    fn validate(&self, base: &str) -> Result<(), Invalid> {
        for term in self.matches.split_whitespace() {
            if term != "+" && !is_journal_match(term) {
                return Err(Invalid::value(
                    join_key(base, "matches"),
                    format!("invalid journal match {term:?}: expected FIELD=value terms separated by spaces, with \"+\" between alternatives (e.g. _SYSTEMD_UNIT=a.service _SYSTEMD_UNIT=b.service + PRIORITY=3); a field name is A-Z, 0-9 and _, not starting with __"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(text: &str) -> ScrapeConfig {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn defaults_match_promtail() {
        let j = job("job_name: x\nstatic_configs: [{labels: {__path__: /a}}]\ndocker_sd_configs: [{host: unix:///d}]\njournal: {}\nfile_sd_configs: [{files: [a.json]}]");
        assert_eq!(j.static_configs[0].targets, ["localhost"]);
        let d = &j.docker_sd_configs[0];
        assert_eq!(
            (
                d.port,
                d.host_networking_host.as_str(),
                d.match_first_network
            ),
            (80, "localhost", true)
        );
        assert_eq!(d.refresh_interval.0, Duration::from_secs(60));
        assert!(d.follow_redirects && d.enable_http2 && d.filters.is_empty());
        let journal = j.journal.as_ref().unwrap();
        assert_eq!(
            (journal.json, journal.max_age.0, journal.path.as_str()),
            (false, Duration::from_secs(7 * 3600), "")
        );
        assert_eq!(
            j.file_sd_configs[0].refresh_interval.0,
            Duration::from_secs(300)
        );
        assert_eq!(
            j.decompression,
            DecompressionConfig {
                enabled: false,
                initial_delay: GoDuration::default(),
                format: String::new()
            }
        );
        assert!(
            j.pipeline_stages.is_empty() && j.relabel_configs.is_empty() && j.encoding.is_empty()
        );
    }

    #[test]
    fn source_follows_promtail_routing_order() {
        let cases: &[(&str, Option<SourceKind>)] = &[
            ("job_name: a", None),
            (
                "job_name: a\nstatic_configs: [{}]\njournal: {}",
                Some(SourceKind::File),
            ),
            (
                "job_name: a\njournal: {}\nsyslog: {listen_address: ':1514'}",
                Some(SourceKind::Journal),
            ),
            (
                "job_name: a\ndocker_sd_configs: [{host: unix:///d}]",
                Some(SourceKind::Docker),
            ),
            (
                "job_name: a\nkubernetes_sd_configs: [{role: pod}]",
                Some(SourceKind::File),
            ),
            ("job_name: a\nkubernetes_sd_configs: []", None),
            (
                "job_name: a\nloki_push_api: {server: {http_listen_port: 3500}}",
                Some(SourceKind::LokiPushApi),
            ),
            (
                "job_name: a\ngelf: {}\nheroku_drain: {}",
                Some(SourceKind::Gelf),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(job(text).source_kind(), *want, "{text}");
        }
    }

    #[test]
    fn source_checks() {
        let err = |text: &str| {
            job(text)
                .validate_sources("s")
                .err()
                .map(|e| (e.path, e.message))
        };
        assert_eq!(
            err("job_name: a\ndocker_sd_configs: [{host: unix:///var/run/docker.sock}]"),
            None
        );
        assert_eq!(
            err("job_name: a\ndocker_sd_configs: [{port: 1}]")
                .unwrap()
                .0,
            "s.docker_sd_configs[0]"
        );
        assert_eq!(
            err("job_name: a\ndocker_sd_configs: [{host: /var/run/docker.sock}]")
                .unwrap()
                .0,
            "s.docker_sd_configs[0].host"
        );
        assert_eq!(
            err("job_name: a\nfile_sd_configs: [{files: [targets/*.json]}]"),
            None
        );
        assert_eq!(
            err("job_name: a\nfile_sd_configs: [{files: [targets.txt]}]")
                .unwrap()
                .0,
            "s.file_sd_configs[0].files[0]"
        );
        assert_eq!(
            err("job_name: a\nfile_sd_configs: [{}]").unwrap().1,
            "file service discovery config must contain at least one path name"
        );
        assert_eq!(
            err("job_name: a\njournal: {matches: '_SYSTEMD_UNIT=a.service PRIORITY=3'}"),
            None
        );
        assert_eq!(
            err("job_name: a\njournal: {matches: 'A=1 A=2 + B=2 + C=x=y'}"),
            None
        );
        for bad in ["a=1", "A", "=1", "__CURSOR=x", "A-B=1"] {
            let text = format!("job_name: a\njournal: {{matches: '{bad}'}}");
            assert_eq!(err(&text).unwrap().0, "s.journal.matches", "{bad}");
        }
        assert_eq!(
            job("job_name: a\njournal: {matches: '+ A=1 A=2 + + B=2 +'}")
                .journal
                .unwrap()
                .match_groups(),
            [vec!["A=1", "A=2"], vec!["B=2"]]
        );
        assert_eq!(
            err("job_name: a\ndecompression: {enabled: true, format: zip}")
                .unwrap()
                .1,
            "invalid decompression format \"zip\": expected one of gz, z, bz2"
        );
        assert_eq!(
            job("job_name: a\njournal: {matches: 'A=1 B=2'}")
                .journal
                .unwrap()
                .match_terms(),
            [("A", "1"), ("B", "2")]
        );
    }
}
