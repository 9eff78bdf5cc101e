//! `syslog` and `gelf`: the two listening sources (compat reference §3.5, §3.8). Each field's default is
//! Promtail's (`targets/syslog/syslogtarget.go`, `targets/gelf/gelftarget.go`); the source itself is
//! `src/source/syslog` and `src/source/gelf`.

use serde::{Deserialize, Serialize};

use super::duration::GoDuration;
use super::error::Invalid;
use super::http::TlsConfig;
use super::locate::join_key;
use super::yaml::{self, LabelSet};

/// `syslog`: receive RFC 5424 / RFC 3164 messages over TCP (optionally TLS) or UDP.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` to listen on (required); `:1514` listens on every address.
    #[serde(default)]
    pub listen_address: String,
    /// `tcp` or `udp` (undocumented in Promtail, in its code).
    #[serde(default = "tcp")]
    pub listen_protocol: String,
    /// A TCP connection that sends nothing for this long is closed.
    #[serde(default = "two_minutes")]
    pub idle_timeout: GoDuration,
    /// Turn each structured-data parameter into `__syslog_message_sd_<id>_<name>`.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub label_structured_data: bool,
    /// Static labels added to every message before relabeling.
    #[serde(default)]
    pub labels: LabelSet,
    /// Use the message's own timestamp instead of the time it was received.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub use_incoming_timestamp: bool,
    /// Ship the whole RFC 5424 message (re-serialized) as the line instead of its MSG part.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub use_rfc5424_message: bool,
    /// Messages longer than this many bytes are counted and skipped.
    #[serde(default = "eight_kib")]
    pub max_message_length: usize,
    /// `rfc5424` or `rfc3164`: how every message on this listener is parsed.
    #[serde(default = "rfc5424")]
    pub syslog_format: String,
    /// TCP over TLS when a certificate is given; with a CA, clients must present a certificate it signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

fn tcp() -> String {
    "tcp".into()
}

fn rfc5424() -> String {
    "rfc5424".into()
}

fn two_minutes() -> GoDuration {
    GoDuration::from_secs(120)
}

fn eight_kib() -> usize {
    8192
}

impl Default for SyslogConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

impl SyslogConfig {
    pub const PROTOCOLS: [&'static str; 2] = ["tcp", "udp"];
    pub const FORMATS: [&'static str; 2] = ["rfc5424", "rfc3164"];

    pub fn is_udp(&self) -> bool {
        self.listen_protocol == "udp"
    }

    pub fn is_rfc3164(&self) -> bool {
        self.syslog_format == "rfc3164"
    }

    /// Whether the TCP listener speaks TLS (Promtail: any of cert, key or CA set).
    pub fn tls_enabled(&self) -> bool {
        self.tls_config.as_ref().is_some_and(|t| {
            [
                &t.cert_file,
                &t.key_file,
                &t.ca_file,
                &t.cert,
                &t.key,
                &t.ca,
            ]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        })
    }

    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.listen_address.trim().is_empty() {
            return Err(Invalid::key(
                join_key(base, "listen_address"),
                "listen_address is required: the host:port to listen on, e.g. 0.0.0.0:1514",
            ));
        }
        if !Self::PROTOCOLS.contains(&self.listen_protocol.as_str()) {
            return Err(Invalid::value(
                join_key(base, "listen_protocol"),
                format!(
                    "invalid transport protocol {:?}: expected tcp or udp",
                    self.listen_protocol
                ),
            ));
        }
        if !Self::FORMATS.contains(&self.syslog_format.as_str()) {
            return Err(Invalid::value(
                join_key(base, "syslog_format"),
                format!(
                    "invalid syslog_format {:?}: expected rfc5424 or rfc3164",
                    self.syslog_format
                ),
            ));
        }
        if self.max_message_length == 0 {
            return Err(Invalid::value(
                join_key(base, "max_message_length"),
                "max_message_length must be at least 1 byte (Promtail's default is 8192)",
            ));
        }
        if self.tls_enabled() {
            let at = join_key(base, "tls_config");
            if self.is_udp() {
                return Err(Invalid::key(
                    at,
                    "tls_config needs listen_protocol tcp: syslog over TLS runs on TCP",
                ));
            }
            let t = self.tls_config.as_ref().expect("tls enabled");
            let set = |file: &Option<String>, inline: &Option<String>| {
                file.as_deref().is_some_and(|s| !s.is_empty())
                    || inline.as_deref().is_some_and(|s| !s.is_empty())
            };
            if !set(&t.cert_file, &t.cert) || !set(&t.key_file, &t.key) {
                return Err(Invalid::key(
                    at,
                    "a TLS listener needs both a certificate and its key (cert_file and key_file)",
                ));
            }
        }
        Ok(())
    }
}

/// `gelf`: receive GELF messages over UDP (chunked, gzip or zlib compressed, or plain).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GelfConfig {
    /// `host:port` to listen on (UDP).
    #[serde(default = "gelf_address")]
    pub listen_address: String,
    /// Static labels added to every message before relabeling.
    #[serde(default)]
    pub labels: LabelSet,
    /// Use the message's `timestamp` field instead of the time it was received.
    #[serde(default, deserialize_with = "yaml::bool")]
    pub use_incoming_timestamp: bool,
}

fn gelf_address() -> String {
    ":12201".into()
}

impl Default for GelfConfig {
    fn default() -> Self {
        yaml::defaults()
    }
}

impl GelfConfig {
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        if self.listen_address.trim().is_empty() {
            return Err(Invalid::value(
                join_key(base, "listen_address"),
                "listen_address must not be empty: the host:port to listen on (default :12201)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn syslog_defaults_are_promtails() {
        let c: SyslogConfig = serde_yaml_ng::from_str("listen_address: 0.0.0.0:1514").unwrap();
        assert_eq!(
            (
                c.listen_protocol.as_str(),
                c.idle_timeout.get(),
                c.max_message_length,
                c.syslog_format.as_str()
            ),
            ("tcp", Duration::from_secs(120), 8192, "rfc5424")
        );
        assert!(!c.label_structured_data && !c.use_incoming_timestamp && !c.use_rfc5424_message);
        assert!(!c.tls_enabled() && !c.is_udp() && !c.is_rfc3164());
        let g = GelfConfig::default();
        assert_eq!(g.listen_address, ":12201");
    }

    #[test]
    fn syslog_checks_name_the_key() {
        let err = |text: &str| {
            serde_yaml_ng::from_str::<SyslogConfig>(text)
                .unwrap()
                .validate("s")
                .err()
                .map(|e| e.path)
        };
        assert_eq!(err("listen_address: ':1514'"), None);
        assert_eq!(err("idle_timeout: 1s").as_deref(), Some("s.listen_address"));
        assert_eq!(
            err("listen_address: ':1'\nlisten_protocol: sctp").as_deref(),
            Some("s.listen_protocol")
        );
        assert_eq!(
            err("listen_address: ':1'\nsyslog_format: rfc3339").as_deref(),
            Some("s.syslog_format")
        );
        assert_eq!(
            err("listen_address: ':1'\ntls_config: {cert_file: /c.pem}").as_deref(),
            Some("s.tls_config")
        );
        assert_eq!(
            err("listen_address: ':1'\nlisten_protocol: udp\ntls_config: {cert_file: a, key_file: b}")
                .as_deref(),
            Some("s.tls_config")
        );
        assert_eq!(
            err("listen_address: ':1'\ntls_config: {cert_file: a, key_file: b, ca_file: c}"),
            None
        );
        assert!(serde_yaml_ng::from_str::<SyslogConfig>("listen_adress: ':1'").is_err());
    }
}
