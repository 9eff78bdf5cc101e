//! The OTLP sink's settings, resolved from an `otlp[]` block (see `crate::config::OtlpSinkConfig`,
//! where every option is documented with its default).

use std::time::Duration;

use crate::config::{Compression, OtlpSinkConfig};
use crate::sink::http::{self, host_of, Auth, HttpSettings};

#[derive(Clone, Debug)]
pub struct OtlpSettings {
    /// The sink's name in metrics, logs and its buffer directory.
    pub name: String,
    pub url: String,
    pub batch_wait: Duration,
    pub batch_size: usize,
    pub gzip: bool,
    pub http: HttpSettings,
}

impl OtlpSettings {
    /// Settings for a validated config block; reads the TLS files (credential files are read per
    /// request).
    pub fn from_config(c: &OtlpSinkConfig) -> Result<Self, String> {
        let auth = match http::http_auth(&c.basic_auth, c.effective_authorization()) {
            Some(auth) => auth,
            None => Auth::None,
        };
        Ok(OtlpSettings {
            name: sink_name(c),
            url: c.url.trim().to_string(),
            batch_wait: c.batchwait.get(),
            batch_size: c.batchsize.get() as usize,
            gzip: c.compression == Compression::Gzip,
            http: HttpSettings::from_config(
                &c.timeout,
                &c.backoff_config,
                &c.headers,
                auth,
                http::tls_settings(c.tls_config.as_ref())?,
            ),
        })
    }
}

/// `name` when set, else `otlp-<host>-<hash of the URL>`.
pub fn sink_name(c: &OtlpSinkConfig) -> String {
    if !c.name.is_empty() {
        return c.name.clone();
    }
    http::default_sink_name("otlp", &host_of(&c.url), c.url.trim())
}
