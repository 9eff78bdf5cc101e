//! The service discoveries logferry runs: `static_configs`, `file_sd_configs` (both feed file targets)
//! and `docker_sd_configs` (Prometheus' moby SD plus Promtail's Docker reader), compat reference §3.2-3.3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::duration::ModelDuration;
use super::error::Invalid;
use super::http::{self, Authorization, BasicAuth, HttpSettings, OAuth2, TlsConfig};
use super::locate::join_key;
use super::yaml::{self, yes, LabelSet};

/// `static_configs[]`: fixed targets and their labels; `__path__` is the glob to tail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Each becomes `__address__`; only the count matters for files.
    #[serde(default = "localhost")]
    pub targets: Vec<String>,
    /// Must contain `__path__` for the target to be read; may set `__path_exclude__` and `__host__`.
    #[serde(default)]
    pub labels: LabelSet,
}

fn localhost() -> Vec<String> {
    vec!["localhost".to_string()]
}

/// `file_sd_configs[]`: targets read from JSON/YAML files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths ending in `.json`, `.yml` or `.yaml`; the last path segment may contain `*`.
    #[serde(default)]
    pub files: Vec<String>,
    /// Re-read interval, besides inotify.
    #[serde(default = "five_minutes")]
    pub refresh_interval: ModelDuration,
}

fn five_minutes() -> ModelDuration {
    ModelDuration::from_secs(300)
}

impl FileSdConfig {
    /// Prometheus' file SD checks: at least one file, each `^[^*]*(\*[^/]*)?\.(json|yml|yaml)$`.
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.files.is_empty() {
            return Err(Invalid::key(
                base,
                "file service discovery config must contain at least one path name",
            ));
        }
        for (i, file) in self.files.iter().enumerate() {
            let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
            let ext_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
                .iter()
                .any(|e| name.ends_with(e));
            if !ext_ok || dir.contains('*') || name.matches('*').count() > 1 {
                return Err(Invalid::value(
                    format!("{base}.files[{i}]"),
                    format!("path name {file:?} is not valid for file discovery: it must end in .json, .yml or .yaml and only its last segment may contain one *"),
                ));
            }
        }
        Ok(())
    }
}

/// `docker_sd_configs[]`: containers of a Docker daemon (Prometheus' moby SD plus Promtail's reader).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSdConfig {
    /// Daemon address, e.g. `unix:///var/run/docker.sock` or `tcp://host:2375`. Required.
    #[serde(default)]
    pub host: String,
    /// Port for `__address__` of containers without published ports.
    #[serde(default = "port_80")]
    pub port: u16,
    /// Host for `__address__` of containers in host networking mode.
    #[serde(default = "localhost_host")]
    pub host_networking_host: String,
    /// Use only the first network of a container with several.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub match_first_network: bool,
    /// Docker `ContainerList` filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<DockerFilter>,
    #[serde(default = "sixty_seconds")]
    pub refresh_interval: ModelDuration,

    // Prometheus HTTPClientConfig, inline (used for http:// and https:// hosts); see client.rs for why
    // it is written out rather than flattened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(
        default,
        serialize_with = "yaml::optional_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default, deserialize_with = "yaml::bool")]
    pub proxy_from_environment: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub follow_redirects: bool,
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub enable_http2: bool,
    #[serde(
        default,
        serialize_with = "yaml::http_headers",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_headers: Option<Value>,
}

/// One Docker `ContainerList` filter, e.g. `{name: label, values: [logging=promtail]}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerFilter {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

fn port_80() -> u16 {
    80
}
fn localhost_host() -> String {
    "localhost".to_string()
}
fn sixty_seconds() -> ModelDuration {
    ModelDuration::from_secs(60)
}

impl DockerSdConfig {
    /// The `Authorization` header to send to an http(s) daemon, as for clients.
    pub fn effective_authorization(&self) -> Option<Authorization> {
        http::effective_authorization(
            &self.authorization,
            &self.bearer_token,
            &self.bearer_token_file,
        )
    }

    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.host.is_empty() {
            return Err(Invalid::key(base, "host missing: set the Docker daemon address, e.g. host: unix:///var/run/docker.sock"));
        }
        let scheme_ok = ["unix://", "tcp://", "http://", "https://", "npipe://"]
            .iter()
            .any(|s| self.host.starts_with(s));
        if !scheme_ok {
            return Err(Invalid::value(
                join_key(base, "host"),
                format!("invalid Docker host {:?}: expected unix:///path/to/docker.sock, tcp://host:port or http(s)://host:port", self.host),
            ));
        }
        http::validate(
            base,
            &HttpSettings {
                basic_auth: &self.basic_auth,
                authorization: &self.authorization,
                bearer_token: &self.bearer_token,
                bearer_token_file: &self.bearer_token_file,
                oauth2: &self.oauth2,
                tls_config: &self.tls_config,
                proxy_url: &self.proxy_url,
                no_proxy: &self.no_proxy,
                proxy_from_environment: self.proxy_from_environment,
                proxy_connect_header: &self.proxy_connect_header,
            },
        )
    }
}
