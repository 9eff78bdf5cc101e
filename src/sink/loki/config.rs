//! The Loki sink's settings, resolved from a Promtail `clients[]` entry (see `crate::config`): secrets
//! are kept as where-to-read-them, so credential files are re-read per request as Promtail does.

use std::time::Duration;

use crate::entry::Labels;

/// A secret given inline or by file (`password` / `password_file`, `bearer_token_file`, …).
#[derive(Clone, Debug)]
pub enum Secret {
    Inline(String),
    File(std::path::PathBuf),
}

impl Secret {
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("reading credentials file {}: {e}", p.display())),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic {
        username: Secret,
        password: Secret,
    },
    /// `Authorization: <kind> <credentials>`; `bearer_token[_file]` become kind `Bearer`.
    Authorization {
        kind: String,
        credentials: Secret,
    },
}

#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate followed by its key, PEM.
    pub identity_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Debug)]
pub struct LokiSettings {
    pub url: String,
    /// `host:port` of the URL: the `host` label of Promtail's client metrics.
    pub host: String,
    pub tenant_id: String,
    pub batch_wait: Duration,
    pub batch_size: usize,
    pub timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Total send attempts before a batch is dropped; `None` retries for as long as it takes (logferry's
    /// default: a batch is only given up on when Promtail's `max_retries` is set explicitly).
    pub max_retries: Option<u32>,
    pub drop_rate_limited_batches: bool,
    pub external_labels: Labels,
    pub headers: Vec<(String, String)>,
    pub auth: Auth,
    pub tls: TlsSettings,
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
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            max_retries: None,
            drop_rate_limited_batches: false,
            external_labels: Labels::new(),
            headers: Vec::new(),
            auth: Auth::None,
            tls: TlsSettings::default(),
            max_line_size: 0,
            truncate_long_lines: false,
        }
    }
}

/// `host:port` of a URL, for metric labels (never the credentials of a `user:pass@` URL).
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_label_hides_credentials() {
        assert_eq!(
            super::host_of("https://u:p@loki.example:3100/loki/api/v1/push"),
            "loki.example:3100"
        );
        assert_eq!(super::host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }
}
