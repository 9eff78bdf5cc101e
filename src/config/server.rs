//! `server`: Promtail's own server keys plus every key of the dskit `server.Config` it embeds
//! (compat reference §2.2). Parsing is strict, so every dskit key must be accepted; the ones logferry acts
//! on are typed with Promtail's defaults, the gRPC and request-logging knobs (logferry has no gRPC server)
//! are accepted as raw YAML, kept for `-print-config-stderr`, and otherwise ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;

use super::duration::GoDuration;
use super::yaml::{self, yes};

/// The `server` block.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// No HTTP server at all; SIGHUP reload is disabled too and the agent just waits for SIGTERM.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub disable: bool,
    /// Adds `/debug/pprof` (accepted; logferry serves no profiler).
    #[serde(default, deserialize_with = "yaml::bool")]
    pub profiling_enabled: bool,
    /// Adds `POST /reload`, which re-reads the config like SIGHUP.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub enable_runtime_reload: bool,
    /// `/ready` also requires at least one target to be ready.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub health_check_target: bool,
    /// Base URL for links in the UI (undocumented; default `http://<hostname>:<port>/`).
    #[serde(default)]
    pub external_url: String,

    /// Network to listen on (`tcp`, `tcp4`).
    #[serde(default = "tcp")]
    pub http_listen_network: String,
    /// Address to bind; empty means all interfaces.
    #[serde(default)]
    pub http_listen_address: String,
    /// Port of `/metrics`, `/ready`, `/targets`. dskit's default is 80; most configs set 9080.
    #[serde(default = "http_port")]
    pub http_listen_port: u16,
    /// Maximum simultaneous HTTP connections; 0 or less disables the limit.
    #[serde(default)]
    pub http_listen_conn_limit: i64,
    /// How long shutdown waits for in-flight HTTP requests.
    #[serde(default = "thirty_seconds")]
    pub graceful_shutdown_timeout: GoDuration,
    #[serde(default = "thirty_seconds")]
    pub http_server_read_timeout: GoDuration,
    /// 0 means: use `http_server_read_timeout`.
    #[serde(default)]
    pub http_server_read_header_timeout: GoDuration,
    #[serde(default = "thirty_seconds")]
    pub http_server_write_timeout: GoDuration,
    #[serde(default = "two_minutes")]
    pub http_server_idle_timeout: GoDuration,
    /// Serve every route under this prefix (e.g. `/promtail`).
    #[serde(default)]
    pub http_path_prefix: String,
    /// Serve `/metrics`.
    #[serde(default = "yes", deserialize_with = "yaml::bool")]
    pub register_instrumentation: bool,
    /// TLS for the HTTP server; served only when both a certificate and a key are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tls_config: Option<ServerTlsConfig>,
    /// `debug`, `info`, `warn` or `error`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// `logfmt` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,

    // dskit keys Promtail accepts and logferry ignores (no gRPC server, no request logging middleware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cipher_suites: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_min_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_log_closed_connections_without_response_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_listen_network: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_listen_address: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_listen_port: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_listen_conn_limit: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_tls_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_collect_max_streams_by_conn: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_recv_msg_size: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_send_msg_size: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_concurrent_streams: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_connection_idle: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_connection_age: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_max_connection_age_grace: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_keepalive_time: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_keepalive_timeout: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_min_time_between_pings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_ping_without_stream_allowed: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_num_workers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_stats_tracking_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_recv_buffer_pools_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_read_buffer_size: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_server_write_buffer_size: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_grpc_codes_in_instrumentation_label_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source_ips_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source_ips_full: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source_ips_header: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_source_ips_regex: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_request_headers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_request_at_info_level_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_request_exclude_headers_list: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_request_headers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_request_exclude_headers_list: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_validation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_latency_cutoff: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_unit: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_new_traces: Option<Value>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

fn tcp() -> String {
    "tcp".to_string()
}
fn http_port() -> u16 {
    80
}
fn thirty_seconds() -> GoDuration {
    GoDuration::from_secs(30)
}
fn two_minutes() -> GoDuration {
    GoDuration::from_secs(120)
}

/// dskit's server TLS block (`http_tls_config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate, inline.
    #[serde(default)]
    pub cert: String,
    /// PEM key, inline.
    #[serde(default, serialize_with = "yaml::secret")]
    pub key: Option<String>,
    /// PEM CA for client certificates, inline.
    #[serde(default)]
    pub client_ca: String,
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    /// `RequestClientCert`, `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    #[serde(default)]
    pub client_auth_type: String,
    #[serde(default)]
    pub client_ca_file: String,
}

/// `server.log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub const VALUES: [&'static str; 4] = ["debug", "info", "warn", "error"];

    pub fn as_str(self) -> &'static str {
        Self::VALUES[self as usize]
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!(
                "invalid log level {s:?}: expected one of {}",
                Self::VALUES.join(", ")
            )),
        }
    }
}

/// `server.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

impl LogFormat {
    pub const VALUES: [&'static str; 2] = ["logfmt", "json"];

    pub fn as_str(self) -> &'static str {
        Self::VALUES[self as usize]
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "invalid log format {s:?}: expected one of {}",
                Self::VALUES.join(", ")
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `log_format == "json"` reads naturally at call sites.
impl PartialEq<&str> for LogFormat {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<&str> for LogLevel {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        yaml::keyword(deserializer)
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        yaml::keyword(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_promtail() {
        let s = ServerConfig::default();
        assert!(!s.disable && !s.profiling_enabled && !s.enable_runtime_reload);
        assert!(s.health_check_target && s.register_instrumentation);
        assert_eq!(s.http_listen_network, "tcp");
        assert_eq!(s.http_listen_address, "");
        assert_eq!(s.http_listen_port, 80);
        assert_eq!(s.http_listen_conn_limit, 0);
        assert_eq!(s.graceful_shutdown_timeout.0, Duration::from_secs(30));
        assert_eq!(s.http_server_read_timeout.0, Duration::from_secs(30));
        assert_eq!(s.http_server_read_header_timeout.0, Duration::ZERO);
        assert_eq!(s.http_server_write_timeout.0, Duration::from_secs(30));
        assert_eq!(s.http_server_idle_timeout.0, Duration::from_secs(120));
        assert_eq!(s.http_path_prefix, "");
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.log_format, LogFormat::Logfmt);
        assert_eq!(s.http_tls_config, None);
        assert_eq!(s.grpc_listen_port, None);
    }

    #[test]
    fn accepts_every_dskit_key() {
        let text = "\
http_listen_network: tcp4
http_listen_address: 127.0.0.1
http_listen_port: 9080
http_listen_conn_limit: 10
grpc_listen_network: tcp
grpc_listen_address: 127.0.0.1
grpc_listen_port: 0
grpc_listen_conn_limit: 10
grpc_collect_max_streams_by_conn: true
proxy_protocol_enabled: false
tls_cipher_suites: ''
tls_min_version: VersionTLS12
http_tls_config: {cert: '', key: '', client_ca: '', cert_file: c, key_file: k, client_auth_type: '', client_ca_file: ''}
grpc_tls_config: {cert_file: c, key_file: k}
register_instrumentation: true
report_grpc_codes_in_instrumentation_label_enabled: false
graceful_shutdown_timeout: 5s
http_server_read_timeout: 30s
http_server_read_header_timeout: 0s
http_server_write_timeout: 30s
http_server_idle_timeout: 2m
http_log_closed_connections_without_response_enabled: false
grpc_server_max_recv_msg_size: 4194304
grpc_server_max_send_msg_size: 4194304
grpc_server_max_concurrent_streams: 100
grpc_server_max_connection_idle: 1h
grpc_server_max_connection_age: 1h
grpc_server_max_connection_age_grace: 1h
grpc_server_keepalive_time: 2h
grpc_server_keepalive_timeout: 20s
grpc_server_min_time_between_pings: 5m
grpc_server_ping_without_stream_allowed: false
grpc_server_num_workers: 0
grpc_server_stats_tracking_enabled: true
grpc_server_recv_buffer_pools_enabled: false
log_format: json
log_level: debug
log_source_ips_enabled: false
log_source_ips_full: false
log_source_ips_header: ''
log_source_ips_regex: ''
log_request_headers: false
log_request_at_info_level_enabled: false
log_request_exclude_headers_list: ''
trace_request_headers: false
trace_request_exclude_headers_list: ''
http_path_prefix: /promtail
cluster_validation: {label: x}
throughput_latency_cutoff: 0s
throughput_unit: samples_processed
disable: false
profiling_enabled: true
enable_runtime_reload: true
health_check_target: false
external_url: http://example/
";
        let s: ServerConfig = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(
            (s.http_listen_address.as_str(), s.http_listen_port),
            ("127.0.0.1", 9080)
        );
        assert_eq!(
            (s.log_level, s.log_format),
            (LogLevel::Debug, LogFormat::Json)
        );
        assert_eq!(s.graceful_shutdown_timeout.0, Duration::from_secs(5));
        assert!(s.enable_runtime_reload && !s.health_check_target);
        assert_eq!(s.http_tls_config.unwrap().cert_file, "c");
    }

    #[test]
    fn rejects_bad_log_settings() {
        let err = serde_yaml_ng::from_str::<ServerConfig>("log_level: verbose")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("log_level: invalid log level \"verbose\": expected one of debug, info, warn, error"), "{err}");
        let err = serde_yaml_ng::from_str::<ServerConfig>("log_format: text")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "log_format: invalid log format \"text\": expected one of logfmt, json"
            ),
            "{err}"
        );
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
        assert!(serde_yaml_ng::from_str::<ServerConfig>("grpc_bogus: 1").is_err());
    }
}
