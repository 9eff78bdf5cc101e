//! The Loki sink's settings, resolved from a Promtail `clients[]` entry (see `crate::config`); what
//! every HTTP sink is configured with alike is [`HttpSettings`].

use std::time::Duration;

use crate::config::{ClientConfig, LimitsConfig};
use crate::entry::Labels;
use crate::sink::http::{self, host_of, Auth, HttpSettings, ProxySettings};

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

impl LokiSettings {
    /// Settings for a validated `clients[]` entry and the line limits of `limits_config`; reads the
    /// TLS files (credential files are read per request).
    pub fn from_config(c: &ClientConfig, limits: &LimitsConfig) -> Result<Self, String> {
        let mut s = LokiSettings::new(&c.url);
        s.tenant_id = c.tenant_id.clone();
        s.batch_wait = c.batchwait.get();
        s.batch_size = c.batchsize.get() as usize;
        s.http = HttpSettings::from_config(
            &c.timeout,
            &c.backoff_config,
            &c.headers,
            auth_of(c)?,
            http::tls_settings(c.tls_config.as_ref())?,
        );
        s.http.proxy = ProxySettings {
            url: c.proxy_url.clone(),
            no_proxy: c.no_proxy.clone(),
            from_environment: c.proxy_from_environment,
            connect_headers: c
                .proxy_connect_header
                .iter()
                .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
                .collect(),
        };
        s.http.follow_redirects = c.follow_redirects;
        s.http.enable_http2 = c.enable_http2;
        s.drop_rate_limited_batches = c.drop_rate_limited_batches;
        s.external_labels = c.external_labels.clone().into_iter().collect();
        s.max_line_size = limits.max_line_size.get() as usize;
        s.truncate_long_lines = limits.max_line_size_truncate;
        Ok(s)
    }
}

fn auth_of(c: &ClientConfig) -> Result<Auth, String> {
    if let Some(auth) = http::http_auth(&c.basic_auth, c.effective_authorization()) {
        return Ok(auth);
    }
    if c.oauth2.is_some() {
        return Err("oauth2 is not supported yet by this version of logferry".into());
    }
    Ok(Auth::None)
}

/// A client's name in metrics, logs and its buffer directory: `name` when set, else the URL's host
/// and port with a short hash of the URL and tenant (two clients to one Loki stay apart).
pub fn sink_name(c: &ClientConfig) -> String {
    if !c.name.is_empty() {
        return c.name.clone();
    }
    let host = host_of(&c.url);
    http::default_sink_name("loki", &host, &format!("{}\n{}", c.url, c.tenant_id))
}
