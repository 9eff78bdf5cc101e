//! `clients[]` (and the deprecated single `client:`): where and how entries are pushed to Loki
//! (compat reference §2.3). The HTTP client settings are Prometheus' `HTTPClientConfig`, inline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::buffer::BufferConfig;
use super::byte_size::ByteSize;
use super::duration::GoDuration;
use super::error::Invalid;
use super::http::{self, Authorization, BasicAuth, HttpSettings, OAuth2, TlsConfig};
use super::locate::join_key;
use super::yaml::{self, yes, LabelSet};

/// One Loki push client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Full push URL, e.g. `http://loki:3100/loki/api/v1/push`. Required in `clients`; the deprecated
    /// single `client:` block may leave it to `-client.url`, as Promtail's does.
    #[serde(default, serialize_with = "yaml::url")]
    pub url: String,
    /// Identifies the client in metrics and logs; Promtail defaults it to a hash of the config.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Sent as `X-Scope-OrgID` when not empty.
    #[serde(default)]
    pub tenant_id: String,
    /// Longest time a batch waits before it is sent.
    #[serde(default = "one_second")]
    pub batchwait: GoDuration,
    /// A batch is sent once it holds this many bytes of log lines.
    #[serde(default = "one_mebibyte")]
    pub batchsize: ByteSize,
    /// Per-request HTTP timeout.
    #[serde(default = "ten_seconds")]
    pub timeout: GoDuration,
    #[serde(default)]
    pub backoff_config: BackoffConfig,
    /// Drop batches rejected with 429 instead of retrying them.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub drop_rate_limited_batches: bool,
    /// Added to every stream; the entry's own labels win on conflict.
    #[serde(default)]
    pub external_labels: LabelSet,
    /// Extra request headers. `Content-Type`, `User-Agent` and `X-Scope-OrgID` cannot be overridden.
    #[serde(default, serialize_with = "yaml::headers")]
    pub headers: BTreeMap<String, String>,
    /// logferry extension: this client's buffer (disk by default).
    #[serde(default, skip_serializing_if = "BufferConfig::is_default")]
    pub buffer: BufferConfig,

    // Prometheus HTTPClientConfig, inline. Written out here and in discovery.rs rather than shared
    // through `#[serde(flatten)]`, because serde cannot deny unknown keys across a flatten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Same as `authorization: {type: Bearer, credentials: ...}`; see [`ClientConfig::effective_authorization`].
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
    /// Accepted for compatibility; Promtail always pushes over HTTP/1.1.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub enable_http2: bool,
    /// Prometheus `http_headers` (values, secrets, files per header), kept as written.
    #[serde(
        default,
        serialize_with = "yaml::http_headers",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_headers: Option<Value>,
}

/// `backoff_config`: retry pacing for failed pushes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// First retry delay.
    #[serde(default = "half_second")]
    pub min_period: GoDuration,
    /// Upper bound of the doubling retry delay.
    #[serde(default = "five_minutes")]
    pub max_period: GoDuration,
    /// Attempts before a batch is dropped; 0 retries forever. Unset here means Promtail's default of 10,
    /// which logferry does not apply (see [`BackoffConfig::max_retries_explicit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn one_second() -> GoDuration {
    GoDuration::from_secs(1)
}
fn ten_seconds() -> GoDuration {
    GoDuration::from_secs(10)
}
fn half_second() -> GoDuration {
    GoDuration::from_millis(500)
}
fn five_minutes() -> GoDuration {
    GoDuration::from_secs(300)
}
fn one_mebibyte() -> ByteSize {
    ByteSize(1 << 20)
}

impl BackoffConfig {
    /// Promtail's reading: the configured value, or 10 when unset (0 means retry forever).
    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(10)
    }

    /// The retry limit the user actually wrote: `None` when unset or 0, i.e. keep retrying. logferry
    /// delivers at least once, so it gives up on a batch only when told to explicitly.
    pub fn max_retries_explicit(&self) -> Option<u32> {
        self.max_retries.filter(|&n| n > 0)
    }
}

impl ClientConfig {
    /// A client with every default and the given URL (what `-client.url` adds).
    pub fn new(url: &str) -> ClientConfig {
        let mut map = serde_yaml_ng::Mapping::new();
        map.insert("url".into(), url.into());
        match serde_yaml_ng::from_value(Value::Mapping(map)) {
            Ok(client) => client,
            Err(err) => panic!("a client with only a url must deserialize: {err}"),
        }
    }

    /// The `Authorization` header to send, if any: `authorization` with its type defaulted to `Bearer`,
    /// or `bearer_token`/`bearer_token_file` turned into a Bearer authorization, as Prometheus does.
    pub fn effective_authorization(&self) -> Option<Authorization> {
        http::effective_authorization(
            &self.authorization,
            &self.bearer_token,
            &self.bearer_token_file,
        )
    }

    pub(crate) fn http_settings(&self) -> HttpSettings<'_> {
        HttpSettings {
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
        }
    }

    /// Checks one client; `base` is its path (`clients[0]`).
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.url.trim().is_empty() {
            return Err(Invalid::key(base, "missing required key \"url\""));
        }
        http::check_sink_url(&self.url, "push URL", "http://loki:3100/loki/api/v1/push")
            .map_err(|why| Invalid::value(join_key(base, "url"), why))?;
        self.validate_settings(base)
    }

    /// Checks everything but the URL (for the `client:` block, whose URL may come from `-client.url`).
    pub(crate) fn validate_settings(&self, base: &str) -> Result<(), Invalid> {
        if self.backoff_config.max_period < self.backoff_config.min_period {
            return Err(Invalid::value(
                join_key(base, "backoff_config.max_period"),
                format!(
                    "max_period {} is shorter than min_period {}",
                    self.backoff_config.max_period, self.backoff_config.min_period
                ),
            ));
        }
        self.buffer.validate(&join_key(base, "buffer"))?;
        http::validate_headers(base, &self.headers)?;
        http::validate(base, &self.http_settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_promtail() {
        let c = ClientConfig::new("http://loki:3100/loki/api/v1/push");
        assert_eq!(c.url, "http://loki:3100/loki/api/v1/push");
        assert_eq!((c.name.as_str(), c.tenant_id.as_str()), ("", ""));
        assert_eq!(c.batchwait.0, Duration::from_secs(1));
        assert_eq!(c.batchsize.0, 1_048_576);
        assert_eq!(c.timeout.0, Duration::from_secs(10));
        assert_eq!(c.backoff_config.min_period.0, Duration::from_millis(500));
        assert_eq!(c.backoff_config.max_period.0, Duration::from_secs(300));
        assert_eq!(
            (
                c.backoff_config.max_retries(),
                c.backoff_config.max_retries_explicit()
            ),
            (10, None)
        );
        assert!(!c.drop_rate_limited_batches);
        assert!(c.external_labels.is_empty() && c.headers.is_empty());
        assert!(c.basic_auth.is_none() && c.authorization.is_none() && c.oauth2.is_none());
        assert_eq!(c.tls_config, None);
        assert!(c.follow_redirects && c.enable_http2 && !c.proxy_from_environment);
        assert_eq!(c.effective_authorization(), None);
        assert_eq!(c.validate("clients[0]"), Ok(()));
    }

    #[test]
    fn max_retries_explicit_only_when_written() {
        let c: ClientConfig =
            serde_yaml_ng::from_str("url: http://l/p\nbackoff_config: {max_retries: 3}").unwrap();
        assert_eq!(
            (
                c.backoff_config.max_retries(),
                c.backoff_config.max_retries_explicit()
            ),
            (3, Some(3))
        );
        let c: ClientConfig =
            serde_yaml_ng::from_str("url: http://l/p\nbackoff_config: {max_retries: 0}").unwrap();
        assert_eq!(
            (
                c.backoff_config.max_retries(),
                c.backoff_config.max_retries_explicit()
            ),
            (0, None)
        );
    }

    #[test]
    fn batchsize_accepts_int_and_size() {
        let c: ClientConfig =
            serde_yaml_ng::from_str("url: http://l/p\nbatchsize: 102400").unwrap();
        assert_eq!(c.batchsize.0, 102_400);
        let c: ClientConfig = serde_yaml_ng::from_str("url: http://l/p\nbatchsize: 2MB").unwrap();
        assert_eq!(c.batchsize.0, 2 << 20);
    }

    #[test]
    fn rejects_unusable_urls() {
        let err = ClientConfig::new("").validate("clients[1]").unwrap_err();
        assert_eq!(err.message, "missing required key \"url\"");
        for url in [
            "loki:3100",
            "http://",
            "ftp://loki/push",
            "http:///push",
            "http://loki:99999/loki/api/v1/push",
            "http://lo ki:3100/push",
        ] {
            let err = ClientConfig::new(url).validate("clients[1]").unwrap_err();
            assert_eq!(err.path, "clients[1].url", "{url}");
            assert!(
                err.message.starts_with("invalid push URL"),
                "{url}: {}",
                err.message
            );
        }
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let c: ClientConfig = serde_yaml_ng::from_str(
            "url: http://l/p\nbasic_auth: {username: u, password: hunter2}\nbearer_token: tok\ntls_config: {key: PEM}",
        )
        .unwrap();
        let printed = serde_yaml_ng::to_string(&c).unwrap();
        assert!(
            !printed.contains("hunter2") && !printed.contains("tok\n") && !printed.contains("PEM"),
            "{printed}"
        );
        assert_eq!(printed.matches("<secret>").count(), 3, "{printed}");
    }

    #[test]
    fn secret_headers_and_query_parameters_are_redacted_when_printed() {
        let c: ClientConfig = serde_yaml_ng::from_str(
            "url: http://l/p?api_key=k1&org=acme\n\
             headers: {Authorization: Bearer k2, x-api-key: k3, X-Source: promtail}\n\
             http_headers: {X-Auth-Token: {values: [k4]}, X-Team: {values: [ops], secrets: [k5]}}",
        )
        .unwrap();
        let printed = serde_yaml_ng::to_string(&c).unwrap();
        assert!(
            !printed.contains("k1") && !printed.contains("k2"),
            "{printed}"
        );
        for k in ["k3", "k4", "k5"] {
            assert!(!printed.contains(k), "{k}: {printed}");
        }
        for shown in [
            "url: http://l/p?api_key=<secret>&org=acme",
            "Authorization: <secret>",
            "x-api-key: <secret>",
            "X-Source: promtail",
            "- ops",
        ] {
            assert!(printed.contains(shown), "{shown}: {printed}");
        }
    }
}
