//! `otlp` (logferry extensions, neither is Promtail's): the OpenTelemetry logs receiver, a scrape
//! config's source (`scrape_configs[].otlp`), and the OTLP sink, a top-level list beside `clients`
//! (`otlp:`). `configs/otlp.yaml` is the commented example; the code is `crate::source::otlp` and
//! `crate::sink::otlp`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::buffer::BufferConfig;
use super::byte_size::ByteSize;
use super::client::BackoffConfig;
use super::duration::GoDuration;
use super::elasticsearch::Compression;
use super::error::Invalid;
use super::http::{self, Authorization, BasicAuth, TlsConfig};
use super::locate::join_key;
use super::yaml::{self, LabelSet};

/// `scrape_configs[].otlp`: receive OTLP logs over HTTP (`/v1/logs`), gRPC (`LogsService/Export`)
/// or both.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSourceConfig {
    /// OTLP/HTTP: protobuf or JSON, optionally gzip. Conventionally on port 4318.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<OtlpListener>,
    /// OTLP/gRPC. Conventionally on port 4317.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<OtlpListener>,
    /// Static labels set on every record before relabeling.
    #[serde(default)]
    pub labels: LabelSet,
    /// The largest request taken, in bytes (uncompressed); a larger one is refused (HTTP 413, gRPC
    /// RESOURCE_EXHAUSTED).
    #[serde(default = "sixteen_mib")]
    pub max_recv_msg_size: ByteSize,
}

/// One OTLP listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpListener {
    /// `host:port`; `:4318` listens on every address.
    pub listen_address: String,
    /// TLS when a certificate and key are given (`cert_file`, `key_file`); with a CA (`ca_file`),
    /// clients must present a certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

fn sixteen_mib() -> ByteSize {
    ByteSize(16 << 20)
}

impl OtlpSourceConfig {
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.http.is_none() && self.grpc.is_none() {
            return Err(Invalid::key(
                base.to_string(),
                "otlp needs http, grpc or both, e.g. http: {listen_address: 0.0.0.0:4318}",
            ));
        }
        for (key, listener) in [("http", &self.http), ("grpc", &self.grpc)] {
            if listener
                .as_ref()
                .is_some_and(|l| l.listen_address.trim().is_empty())
            {
                return Err(Invalid::value(
                    join_key(&join_key(base, key), "listen_address"),
                    "listen_address must not be empty: the host:port to listen on",
                ));
            }
        }
        if self.max_recv_msg_size.get() == 0 {
            return Err(Invalid::value(
                join_key(base, "max_recv_msg_size"),
                "max_recv_msg_size must be above 0 bytes",
            ));
        }
        Ok(())
    }
}

/// `otlp[]`: a sink that sends entries as OTLP/HTTP protobuf to an OpenTelemetry collector or to
/// Loki's `/otlp/v1/logs`. Stream labels become resource attributes, structured metadata becomes
/// log record attributes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSinkConfig {
    /// Names the sink in metrics, logs and its buffer directory; unset means `otlp-<host>-<hash>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The full logs endpoint: `http://collector:4318/v1/logs`, `http://loki:3100/otlp/v1/logs`.
    /// Required.
    #[serde(serialize_with = "yaml::url")]
    pub url: String,
    /// Longest time a request waits for more entries before it is sent.
    #[serde(default = "one_second")]
    pub batchwait: GoDuration,
    /// A request is sent once its entries hold this many bytes of lines and metadata.
    #[serde(default = "one_mebibyte")]
    pub batchsize: ByteSize,
    /// `gzip` (the default) or `none`.
    #[serde(default = "gzip")]
    pub compression: Compression,
    /// Per-request HTTP timeout.
    #[serde(default = "ten_seconds")]
    pub timeout: GoDuration,
    /// Retry pacing; `max_retries` unset or 0 retries for as long as it takes.
    #[serde(default)]
    pub backoff_config: BackoffConfig,
    /// Extra request headers. `Content-Type`, `Content-Encoding` and `User-Agent` cannot be overridden.
    #[serde(
        default,
        serialize_with = "yaml::headers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, String>,
    /// This sink's buffer (disk by default), as for `clients[].buffer`.
    #[serde(default, skip_serializing_if = "BufferConfig::is_default")]
    pub buffer: BufferConfig,
    // Authentication: at most one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

fn one_second() -> GoDuration {
    GoDuration::from_secs(1)
}
fn ten_seconds() -> GoDuration {
    GoDuration::from_secs(10)
}
fn one_mebibyte() -> ByteSize {
    ByteSize(1 << 20)
}
fn gzip() -> Compression {
    Compression::Gzip
}

impl OtlpSinkConfig {
    /// The `Authorization` header settings for bearer tokens and `authorization`, as for clients.
    pub fn effective_authorization(&self) -> Option<Authorization> {
        http::effective_authorization(
            &self.authorization,
            &self.bearer_token,
            &self.bearer_token_file,
        )
    }

    /// Checks one sink; `base` is its path (`otlp[0]`).
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        http::validate_headers(base, &self.headers)?;
        http::check_sink_url(&self.url, "url", "http://collector:4318/v1/logs")
            .map_err(|why| Invalid::value(join_key(base, "url"), why))?;
        Ok(())
    }
}
