//! Promtail's YAML config, read exactly as Promtail v3.6 reads it, with errors that say where and why.
//!
//! The spec is `shared/reference/promtail-compat.md` (§1 loading, §2 top-level blocks, §3 scrape configs,
//! §9 traps, §10 the key checklist). Loading ([`parse_str`]) is a short pipeline:
//!
//! 1. [`envsubst`], only with `-config.expand-env=true`: drone/envsubst's `${VAR}` expansion over the raw
//!    text, comments included, quirks and all.
//! 2. A nesting cap ([`nesting`]), checked on the text before any parser sees it: both YAML parsers
//!    take minutes on very deep nesting.
//! 3. A syntax pass over the whole document, so a YAML error anywhere wins over typed errors before it
//!    (yaml.v2 also parses everything first).
//! 4. `locate`: a second, marked parse with yaml-rust2 that records where every key path starts, and
//!    every duplicate key: yaml.v2's strict mode rejects them, serde's maps would merge them silently.
//! 5. serde_yaml_ng, wrapped in serde_path_to_error, into [`Config`]. Every block is
//!    `#[serde(deny_unknown_fields)]` like yaml.v2's `UnmarshalStrict`, and each field carries its
//!    Promtail default in `#[serde(default = ...)]` beside its doc comment, so option, default and
//!    documentation live in one place. Scalars with Promtail-specific syntax ([`GoDuration`],
//!    [`ModelDuration`], [`ByteSize`], YAML 1.1 booleans) parse in their own visitors. Merge keys
//!    (`<<: *anchor`) are resolved first when the document has any.
//! 6. `validate`: what Promtail checks while unmarshalling (unique non-empty job names, HTTP auth
//!    exclusivity, relabel rules, Docker `host`) plus a few checks that keep the runtime from misbehaving;
//!    each failure names a key path, which step 4's map turns into line:column.
//! 7. Deprecations: the single `client:` block joins `clients`, `options.stream_lag_labels` is dropped,
//!    each with a warning.
//!
//! Every failure is a [`ConfigError`], printed `<file>:<line>:<col>: <key.path>: <what is wrong, and what
//! would be valid>`. Pipeline stage bodies stay raw YAML: Promtail decodes them leniently later, and so
//! does logferry's stage builder; here only their shape and names are checked ([`StageConfig`]). Later
//! checks can still point into the file with [`Config::locate`] and [`Config::error_at`]. Positions refer
//! to the text after env expansion, which is the text that was parsed.

mod buffer;
mod byte_size;
mod client;
mod compat;
mod discovery;
mod duration;
mod elasticsearch;
pub mod envsubst;
mod error;
mod flags;
mod http;
mod index_template;
mod limits;
mod locate;
mod nesting;
mod otlp;
mod redact;
mod scrape;
mod server;
mod stages;
mod syslog;
mod tailing;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use buffer::{BufferConfig, BufferType, FsyncPolicy, WhenFull};
pub use byte_size::ByteSize;
pub use client::{BackoffConfig, ClientConfig};
pub use compat::{OptionsConfig, TracingConfig, WalConfig, WalWatchConfig};
pub use discovery::{DockerFilter, DockerSdConfig, FileSdConfig, StaticConfig};
pub use duration::{GoDuration, ModelDuration};
pub use elasticsearch::{
    keep_extracted, Compression, ElasticsearchConfig, ExtractedFields, OpType,
};
pub use envsubst::EnvsubstError;
pub use error::{ConfigError, ErrorKind};
pub use flags::FlagOverrides;
pub use http::{header, Authorization, BasicAuth, OAuth2, TlsConfig, TLS_VERSIONS};
pub use index_template::{IndexNamer, IndexTemplate};
pub use limits::LimitsConfig;
pub use otlp::{OtlpListener, OtlpSinkConfig, OtlpSourceConfig};
pub use redact::{is_secret_name, redact_header, redact_url};
pub use scrape::{DecompressionConfig, JournalConfig, LokiPushApiConfig, ScrapeConfig, SourceKind};
pub use server::{LogFormat, LogLevel, ServerConfig, ServerTlsConfig};
pub use stages::{StageConfig, STAGE_NAMES};
pub use syslog::{GelfConfig, SyslogConfig};
pub use tailing::{FileWatchConfig, GlobalConfig, PositionsConfig, TargetConfig};
pub use yaml::LabelSet;

use error::{Anchor, Invalid};
use locate::{DuplicateKey, SourceMap};

/// A whole Promtail config. `Config::default()` is Promtail's behaviour with an empty file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Deprecated single client. Moved to the end of `clients` when the config is loaded, so it is
    /// always `None` on a loaded config.
    #[serde(default, skip_serializing)]
    pub client: Option<ClientConfig>,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// logferry extension: Elasticsearch/OpenSearch sinks, beside (or instead of) `clients`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elasticsearch: Vec<ElasticsearchConfig>,
    /// logferry extension: OTLP/HTTP sinks (an OpenTelemetry collector, Loki's `/otlp/v1/logs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub otlp: Vec<OtlpSinkConfig>,
    #[serde(default)]
    pub positions: PositionsConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default)]
    pub target_config: TargetConfig,
    #[serde(default)]
    pub limits_config: LimitsConfig,
    #[serde(default)]
    pub options: OptionsConfig,
    #[serde(default)]
    pub tracing: TracingConfig,
    #[serde(default)]
    pub wal: WalConfig,
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(skip)]
    origin: Origin,
}

/// Where a loaded config came from. Not part of equality: the same settings written differently (moved
/// lines, comments) are the same config, which is what a reload compares.
#[derive(Debug, Clone, Default)]
struct Origin {
    file: String,
    map: Option<Arc<SourceMap>>,
    /// Index in `clients` of the deprecated `client:` block (or `-client.url`), which client flags modify.
    deprecated_client: Option<usize>,
    /// The `client:` block when it has no URL: it becomes a client once `-client.url` gives it one.
    urlless_client: Option<Box<ClientConfig>>,
}

impl PartialEq for Origin {
    fn eq(&self, _: &Origin) -> bool {
        true
    }
}

/// Reads and parses the config file at `path`.
pub fn load(path: &Path, expand_env: bool) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            ErrorKind::Io,
            &file,
            "",
            format!("cannot read config file: {e}"),
        )
    })?;
    // `${VAR}` without -config.expand-env is taken literally, as in Promtail: say so, since it is
    // almost always a forgotten flag (a URL of `${LOKI_URL}` fails as an invalid URL).
    let literal_env = !expand_env && text.contains("${");
    const HINT: &str = "the config holds ${...} references, taken literally: add -config.expand-env=true to expand them from the environment";
    let config = parse_str(&text, &file, expand_env).map_err(|mut e| {
        if literal_env {
            e.message = format!("{} (hint: {HINT})", e.message);
        }
        e
    })?;
    if literal_env {
        tracing::warn!(file = %file, "{HINT}");
    }
    Ok(config)
}

/// Promtail's `-config.file` rule: a comma-separated list of paths, of which the first that exists is
/// loaded.
pub fn load_first_existing(paths_csv: &str, expand_env: bool) -> Result<Config, ConfigError> {
    match paths_csv
        .split(',')
        .map(str::trim)
        .find(|p| !p.is_empty() && Path::new(p).exists())
    {
        Some(path) => load(Path::new(path), expand_env),
        None => Err(ConfigError::new(
            ErrorKind::NotFound,
            "",
            "",
            format!("{paths_csv} does not exist, set config.file for custom config path"),
        )),
    }
}

/// Parses config text; `source_name` is the file name errors print.
pub fn parse_str(text: &str, source_name: &str, expand_env: bool) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    parse_text(
        text,
        source_name,
        expand_env.then_some(&env as EnvLookup<'_>),
    )
}

/// Looks an environment variable up (`None` when unset).
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn parse_text(text: &str, file: &str, env: Option<EnvLookup<'_>>) -> Result<Config, ConfigError> {
    let expanded;
    let text = match env {
        Some(lookup) => {
            expanded = envsubst::expand(text, lookup).map_err(|e| envsubst_error(file, e))?;
            expanded.as_str()
        }
        None => text,
    };
    let hint = |err| expand_env_hint(err, text, env.is_none());
    // Before either YAML parser: both take minutes on deep enough nesting.
    if let Some(at) = nesting::too_deep(text, nesting::MAX_DEPTH) {
        let message = format!(
            "the config nests deeper than {} levels (mappings, lists and brackets inside each other)",
            nesting::MAX_DEPTH
        );
        return Err(ConfigError::new(ErrorKind::Syntax, file, "", message).at(Some(at)));
    }
    // Like yaml.v2, read the whole document before decoding anything, so that a syntax error anywhere is
    // reported as such rather than as whatever typed error precedes it.
    let syntax: Result<serde::de::IgnoredAny, _> =
        serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text));
    syntax.map_err(|err| hint(error::from_serde(err, file, None)))?;
    let map = SourceMap::parse(text);
    if let Some(dup) = map.as_ref().and_then(|m| m.duplicates.first()) {
        return Err(duplicate_error(file, dup));
    }
    let mut config = deserialize(text, map.as_ref())
        .map_err(|err| hint(error::from_serde(err, file, map.as_ref())))?;
    validate::validate(&mut config, map.as_ref())
        .map_err(|invalid| locate_invalid(file, map.as_ref(), invalid))?;
    config.origin = Origin {
        file: file.to_string(),
        map: map.map(Arc::new),
        deprecated_client: None,
        urlless_client: None,
    };
    config.apply_deprecations();
    Ok(config)
}

impl Config {
    /// Whether no sink is configured (no Loki client, Elasticsearch or OTLP sink).
    pub fn has_no_sink(&self) -> bool {
        self.clients.is_empty() && self.elasticsearch.is_empty() && self.otlp.is_empty()
    }

    /// Moves the deprecated `client:` block into `clients` and drops `options.stream_lag_labels`, warning
    /// about each as Promtail does.
    fn apply_deprecations(&mut self) {
        let file = &self.origin.file;
        if let Some(client) = self.client.take() {
            tracing::warn!(
                "{file}: the `client` block is deprecated, use `clients` (a list) instead"
            );
            // As Promtail's Setup: the block's external labels go to every client (a client's own
            // value wins), and the block is a client only once it has a URL (else `-client.url` may
            // give it one).
            for other in &mut self.clients {
                for (name, value) in &client.external_labels {
                    other
                        .external_labels
                        .entry(name.clone())
                        .or_insert_with(|| value.clone());
                }
            }
            if client.url.trim().is_empty() {
                self.origin.urlless_client = Some(Box::new(client));
            } else {
                self.origin.deprecated_client = Some(self.clients.len());
                self.clients.push(client);
            }
        }
        if self.options.stream_lag_labels.take().is_some() {
            tracing::warn!(
                "{file}: options.stream_lag_labels was removed in Promtail 3.0 and is ignored"
            );
        }
    }
}

/// Deserializes straight from the text, so errors carry serde_yaml_ng's own positions; a document with
/// merge keys (`<<: *defaults`, which yaml.v2 resolves and serde_yaml_ng's typed path does not) goes
/// through a merged `Value` instead, and its errors are located with the source map.
fn deserialize(
    text: &str,
    map: Option<&SourceMap>,
) -> Result<Config, serde_path_to_error::Error<serde_yaml_ng::Error>> {
    let uses_merge = map.map_or_else(|| text.contains("<<"), |m| m.merge_keys);
    if uses_merge {
        let merged = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
            .and_then(|mut value| value.apply_merge().map(|()| value));
        if let Ok(value) = merged {
            return serde_path_to_error::deserialize(value);
        }
    }
    serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
}

fn envsubst_error(file: &str, err: EnvsubstError) -> ConfigError {
    ConfigError {
        kind: ErrorKind::Envsubst,
        file: file.to_string(),
        line: Some(err.line),
        column: Some(err.column),
        path: String::new(),
        message: format!("-config.expand-env: {} in {:?}", err.message, err.snippet),
    }
}

fn duplicate_error(file: &str, dup: &DuplicateKey) -> ConfigError {
    let message = format!(
        "duplicate key {:?} (first defined at line {}, column {})",
        dup.key, dup.first.line, dup.first.column
    );
    ConfigError::new(ErrorKind::Invalid, file, &dup.parent, message).at(Some(dup.at))
}

fn locate_invalid(file: &str, map: Option<&SourceMap>, invalid: Invalid) -> ConfigError {
    let at = map.and_then(|m| match invalid.anchor {
        Anchor::Key => m.key(&invalid.path),
        Anchor::Value => m.value(&invalid.path),
    });
    ConfigError::new(ErrorKind::Invalid, file, &invalid.path, invalid.message).at(at)
}

/// Promtail adds this hint to load errors when expansion is off; logferry only when the offending line
/// actually holds a `${`.
fn expand_env_hint(mut err: ConfigError, text: &str, expansion_off: bool) -> ConfigError {
    let line = err.line.and_then(|n| text.lines().nth(n.saturating_sub(1)));
    if expansion_off && line.is_some_and(|l| l.contains("${")) {
        err.message.push_str(
            " (use `-config.expand-env=true` if you want to expand environment variables in your config file)",
        );
    }
    err
}

impl Config {
    /// The file this config was loaded from (`""` for a config built in code).
    pub fn source_name(&self) -> &str {
        &self.origin.file
    }

    /// Line and column (1-based) where the node at `path` starts in the loaded text, e.g.
    /// `scrape_configs[0].pipeline_stages[2].match.stages[0]`; the nearest enclosing node when the path
    /// itself is not in the text.
    pub fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let at = self.origin.map.as_ref()?.value(path)?;
        Some((at.line, at.column))
    }

    /// A [`ConfigError`] for a problem found after loading (e.g. by the stage builder), located by path.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let at = self.origin.map.as_ref().and_then(|m| m.value(path));
        ConfigError::new(ErrorKind::Invalid, &self.origin.file, path, message).at(at)
    }

    /// The effective config as YAML with credentials shown as `<secret>`, for `-print-config-stderr`.
    pub fn to_redacted_yaml(&self) -> String {
        serde_yaml_ng::to_string(self)
            .unwrap_or_else(|e| format!("# the config cannot be printed: {e}\n"))
    }
}

/// Parses a Go duration (`1m30s`, `500ms`) as a flag value, e.g. `-positions.sync-period`.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    GoDuration::parse(text).map(GoDuration::get)
}

/// Parses a Promtail byte size (`256kb`, `2MB`, `1048576`) as a flag value, e.g. `-max-line-size`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    ByteSize::parse(text).map(ByteSize::get)
}

/// logferry's built-in config, used when no config file is given: tail `/var/log/*.log` and push to
/// `$LOKI_URL` (see [`default_config`]).
pub const DEFAULT_CONFIG: &str = r#"# logferry's built-in config (used when no -config.file is given).
server:
  http_listen_address: 127.0.0.1
  http_listen_port: 9080
positions:
  filename: /tmp/logferry-positions.yaml
scrape_configs:
  - job_name: varlogs
    static_configs:
      - targets: [localhost]
        labels:
          job: varlogs
          __path__: "${LOG_PATH:-/var/log/*.log}"
clients:
  - url: "${LOKI_URL}"
"#;

/// [`DEFAULT_CONFIG`] with the environment expanded. With `LOKI_URL` unset or empty it has no clients
/// (the runtime then prints entries to stdout); an unusable `LOKI_URL` is an error.
pub fn default_config() -> Result<Config, ConfigError> {
    default_config_with(&|name| std::env::var(name).ok())
}

fn default_config_with(env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    const NAME: &str = "<built-in config>";
    let url = env("LOKI_URL").filter(|u| !u.is_empty());
    if url.is_some() {
        return parse_text(DEFAULT_CONFIG, NAME, Some(env));
    }
    // Drop the client rather than shipping to an empty URL.
    let without_clients = match DEFAULT_CONFIG.split_once("\nclients:") {
        Some((head, _)) => format!("{head}\n"),
        None => DEFAULT_CONFIG.to_string(),
    };
    parse_text(&without_clients, NAME, Some(env))
}
