//! What every HTTP sink shares: the client (timeout, TLS settings from `tls_config`), the
//! `Authorization` header built from credentials that may live in files, the transport error text, and
//! dskit's exponential backoff with jitter. The Loki and Elasticsearch sinks both use these, so a
//! `tls_config` or a `password_file` behaves the same in `clients` and in `elasticsearch`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::HeaderValue;

use crate::config::{Authorization, BasicAuth, TlsConfig};

pub const USER_AGENT_VALUE: &str = concat!("logferry/", env!("CARGO_PKG_VERSION"));

/// What every HTTP sink is configured with alike: the per-request timeout, the retry backoff, custom
/// headers, credentials and TLS. Secrets are kept as where-to-read-them, so credential files are
/// read again per request, as Promtail does.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Total send attempts before a request is given up on; `None` retries for as long as it takes
    /// (logferry's default: only Promtail's `max_retries` set explicitly gives up).
    pub max_retries: Option<u32>,
    pub headers: Vec<(String, String)>,
    pub auth: Auth,
    pub tls: TlsSettings,
    pub proxy: ProxySettings,
    /// Follow redirects (up to 10, as Go's client), or take a 3xx as the answer.
    pub follow_redirects: bool,
    /// Offer HTTP/2 to TLS servers (ALPN); plain `http://` is HTTP/1.1 either way, as in Go.
    pub enable_http2: bool,
}

/// Which proxy requests go through, as Prometheus' HTTP client settings say: `proxy_url` (with
/// `no_proxy` and `proxy_connect_header`), the `HTTP(S)_PROXY`/`NO_PROXY` environment with
/// `proxy_from_environment`, and no proxy otherwise (whatever the environment holds).
#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    pub url: Option<String>,
    /// Comma-separated hosts, domains and CIDR ranges reached directly.
    pub no_proxy: Option<String>,
    pub from_environment: bool,
    /// Headers sent to the proxy with each request (`CONNECT` for https).
    pub connect_headers: Vec<(String, String)>,
}

impl HttpSettings {
    /// From the keys `clients[]` and `elasticsearch[]` share; `auth` and `tls` are resolved by the
    /// caller (their keys differ).
    pub fn from_config(
        timeout: &crate::config::GoDuration,
        backoff: &crate::config::BackoffConfig,
        headers: &std::collections::BTreeMap<String, String>,
        auth: Auth,
        tls: TlsSettings,
    ) -> Self {
        HttpSettings {
            timeout: timeout.get(),
            min_backoff: backoff.min_period.get(),
            max_backoff: backoff.max_period.get(),
            max_retries: backoff.max_retries_explicit(),
            headers: headers.clone().into_iter().collect(),
            auth,
            tls,
            proxy: ProxySettings::default(),
            follow_redirects: true,
            enable_http2: false,
        }
    }
}

impl Default for HttpSettings {
    /// Promtail's client defaults: 10 s timeout, backoff from 500 ms to 5 min.
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            max_retries: None,
            headers: Vec::new(),
            auth: Auth::None,
            tls: TlsSettings::default(),
            proxy: ProxySettings::default(),
            follow_redirects: true,
            enable_http2: false,
        }
    }
}

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

/// A configured header as HTTP takes it (checked when the config is read, so it cannot fail here
/// for a validated config).
pub use crate::config::header;

/// A client with the settings' timeout per request, TLS settings, proxy, redirect policy, and HTTP/2
/// offered to TLS servers only when `enable_http2`.
pub fn client(http: &HttpSettings) -> Result<reqwest::Client, String> {
    let tls = &http.tls;
    let mut builder = reqwest::Client::builder()
        .timeout(http.timeout)
        .user_agent(USER_AGENT_VALUE);
    if !http.enable_http2 {
        builder = builder.http1_only();
    }
    if !http.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    let proxy = &http.proxy;
    if let Some(url) = proxy.url.as_deref().filter(|u| !u.is_empty()) {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &proxy.connect_headers {
            let (n, v) = header(name, value)
                .map_err(|why| format!("proxy_connect_header {name:?}: {why}"))?;
            headers.append(n, v);
        }
        let p = reqwest::Proxy::all(url)
            .map_err(|e| format!("proxy_url: {e}"))?
            .no_proxy(
                proxy
                    .no_proxy
                    .as_deref()
                    .and_then(reqwest::NoProxy::from_string),
            )
            .headers(headers);
        builder = builder.proxy(p);
    } else if !proxy.from_environment {
        // reqwest reads HTTP_PROXY by default; Promtail uses it only when told to.
        builder = builder.no_proxy();
    }
    if let Some(ca) = &tls.ca_pem {
        let cert = reqwest::Certificate::from_pem(ca).map_err(|e| format!("tls ca: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    if let Some(identity) = &tls.identity_pem {
        let id = reqwest::Identity::from_pem(identity).map_err(|e| format!("tls cert/key: {e}"))?;
        builder = builder.identity(id);
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| e.to_string())
}

/// The Authorization header for `auth`. Credential files are read on every request, as Promtail does,
/// so a rotated token is picked up without a restart.
pub fn auth_header(auth: &Auth) -> Result<Option<HeaderValue>, String> {
    let value = match auth {
        Auth::None => return Ok(None),
        Auth::Basic { username, password } => {
            let user = username.read()?;
            let pass = password.read()?;
            let credentials = format!("{user}:{pass}");
            format!("Basic {}", STANDARD.encode(credentials.as_bytes()))
        }
        Auth::Authorization { kind, credentials } => {
            format!("{kind} {}", credentials.read()?)
        }
    };
    HeaderValue::from_str(&value)
        .map(Some)
        .map_err(|_| "credentials contain characters not allowed in a header".to_string())
}

/// The TLS settings of a `tls_config` block, its files read now (a missing file is an error at start).
/// A secret from its inline value or its file; the file wins, as in Prometheus.
pub fn secret(inline: &Option<String>, file: &Option<String>) -> Option<Secret> {
    match (inline, file) {
        (_, Some(f)) if !f.is_empty() => Some(Secret::File(f.into())),
        (Some(v), _) => Some(Secret::Inline(v.clone())),
        _ => None,
    }
}

/// The credentials of Prometheus' `basic_auth` or `authorization` (type defaulted to `Bearer`), if
/// either is set: what every HTTP sink's config shares.
pub fn http_auth(basic: &Option<BasicAuth>, authorization: Option<Authorization>) -> Option<Auth> {
    if let Some(b) = basic {
        let empty = || Secret::Inline(String::new());
        return Some(Auth::Basic {
            username: secret(&b.username, &b.username_file).unwrap_or_else(empty),
            password: secret(&b.password, &b.password_file).unwrap_or_else(empty),
        });
    }
    let a = authorization?;
    let credentials = secret(&a.credentials, &a.credentials_file)?;
    let kind = a
        .r#type
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Bearer".into());
    Some(Auth::Authorization { kind, credentials })
}

/// A sink's default name: `<kind>-<host, made file-name safe>-<short hash of what identifies it>`.
/// Stable across restarts, since it names the sink's buffer directory.
pub fn default_sink_name(kind: &str, host: &str, identity: &str) -> String {
    let host: String = host
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    let fp = crate::positions::Fingerprint::of(identity.as_bytes());
    format!("{kind}-{host}-{:08x}", fp.hash as u32)
}

pub fn tls_settings(tls: Option<&TlsConfig>) -> Result<TlsSettings, String> {
    let Some(t) = tls else {
        return Ok(TlsSettings::default());
    };
    let read = |inline: &Option<String>, file: &Option<String>, what: &str| {
        if let Some(f) = file.as_ref().filter(|f| !f.is_empty()) {
            return std::fs::read(f)
                .map(Some)
                .map_err(|e| format!("tls_config.{what}_file {f}: {e}"));
        }
        Ok(inline.as_ref().map(|s| s.as_bytes().to_vec()))
    };
    let ca_pem = read(&t.ca, &t.ca_file, "ca")?;
    let cert = read(&t.cert, &t.cert_file, "cert")?;
    let key = read(&t.key, &t.key_file, "key")?;
    let identity_pem = match (cert, key) {
        (Some(mut c), Some(k)) => {
            c.push(b'\n');
            c.extend_from_slice(&k);
            Some(c)
        }
        (None, None) => None,
        _ => return Err("tls_config needs both a client certificate and its key".into()),
    };
    if t.server_name.as_ref().is_some_and(|s| !s.is_empty()) {
        tracing::warn!("tls_config.server_name is not supported yet; the URL's host is verified");
    }
    Ok(TlsSettings {
        ca_pem,
        identity_pem,
        insecure_skip_verify: t.insecure_skip_verify,
    })
}

/// Whether a whole request answered `status` is worth sending again: 429 and 5xx (as Promtail), and
/// also 401 and 403. Promtail drops a batch its credentials were refused for; here it waits in the
/// buffer (sources pausing when it is full) until the credentials are fixed and the config reloaded,
/// as an expired token should not throw away everything shipped meanwhile.
pub fn retriable_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 429) || (500..600).contains(&status)
}

/// A failed request as it is logged and answered: [`error_chain`], with the secrets of the URL reqwest
/// quotes (`error sending request for url (...)`) redacted by [`crate::config::redact_url`].
pub fn transport_error(e: &reqwest::Error) -> String {
    let text = error_chain(e);
    match e.url().map(reqwest::Url::as_str) {
        Some(url) => text.replace(url, &crate::config::redact_url(url)),
        None => text,
    }
}

/// An error with its sources, `outer: inner: innermost`, as transport errors are logged.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The n-th wait (n from 1) of dskit's backoff: uniform in `[min·2^(n-1), min·2^n)`, capped at `max`.
pub fn backoff(n: u32, min: Duration, max: Duration) -> Duration {
    let low = min.saturating_mul(1u32 << (n.saturating_sub(1)).min(30));
    if low >= max {
        return max;
    }
    let high = low.saturating_mul(2).min(max);
    let span = high.saturating_sub(low).as_nanos() as u64;
    low + Duration::from_nanos(if span == 0 { 0 } else { fastrand::u64(0..span) })
}

/// One request's retrying, alike in every HTTP sink: attempts counted against Promtail's
/// `max_retries` (when set), and [`backoff`] between them, cut short when the agent aborts.
pub struct Retry {
    attempt: u32,
    min: Duration,
    max: Duration,
    max_retries: Option<u32>,
}

impl Retry {
    pub fn new(http: &HttpSettings) -> Self {
        Retry {
            attempt: 0,
            min: http.min_backoff,
            max: http.max_backoff,
            max_retries: http.max_retries,
        }
    }

    /// Counts the next attempt; its number (1 for the first).
    pub fn next_attempt(&mut self) -> u32 {
        self.attempt += 1;
        self.attempt
    }

    /// Whether the attempts made reach `max_retries`: the request is given up on.
    pub fn exhausted(&self) -> bool {
        self.max_retries.is_some_and(|m| self.attempt >= m)
    }

    /// Waits the backoff due after the attempts made; false if `abort` turned true first.
    pub async fn wait(&self, abort: &mut tokio::sync::watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(backoff(self.attempt, self.min, self.max)) => true,
            _ = abort.wait_for(|a| *a) => false,
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
    use super::*;

    #[test]
    fn host_label_hides_credentials() {
        assert_eq!(
            host_of("https://u:p@loki.example:3100/loki/api/v1/push"),
            "loki.example:3100"
        );
        assert_eq!(host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(5));
        for _ in 0..50 {
            let w1 = backoff(1, min, max);
            assert!(w1 >= min && w1 < min * 2, "{w1:?}");
            let w3 = backoff(3, min, max);
            assert!(w3 >= min * 4 && w3 < min * 8, "{w3:?}");
            assert_eq!(backoff(10, min, max), max);
        }
    }

    /// A server on 127.0.0.1 answering every request with `answer`; its port.
    async fn answering(answer: String) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    // Read the head and the (small) body, then answer and close.
                    let mut buf = vec![0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn redirects_are_followed_unless_follow_redirects_is_off() {
        let target = answering("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".into()).await;
        let redirect = answering(format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target}/push\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let url = format!("http://127.0.0.1:{redirect}/push");
        let mut http = HttpSettings::default();
        let endpoint = Endpoint::new(&url, &http, &[], &[]).unwrap();
        let posted = endpoint.post(bytes::Bytes::from_static(b"x"), &[]).await;
        assert!(matches!(posted, Posted::Accepted(_)), "{posted:?}");
        http.follow_redirects = false;
        let endpoint = Endpoint::new(&url, &http, &[], &[]).unwrap();
        let posted = endpoint.post(bytes::Bytes::from_static(b"x"), &[]).await;
        assert!(
            matches!(posted, Posted::Rejected { status: 307, .. }),
            "{posted:?}"
        );
    }
}

/// `body` as sent: gzipped (fast level: the CPU is the agent's, and these bodies compress well even
/// so) or as it is.
pub fn compress(body: &[u8], gzip: bool) -> bytes::Bytes {
    use std::io::Write;
    if !gzip {
        return bytes::Bytes::copy_from_slice(body);
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(body)
        .expect("compressing into memory cannot fail");
    bytes::Bytes::from(gz.finish().expect("compressing into memory cannot fail"))
}

/// A body [`compress`] made, as it was before.
pub fn decompress(body: &[u8], gzip: bool) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

/// What one POST came to.
#[derive(Debug)]
pub enum Posted {
    /// A 2xx answer, with its body.
    Accepted(bytes::Bytes),
    /// Worth trying again: no answer (`status` -1, as in Promtail's metrics) or a
    /// [`retriable_status`].
    Retry { status: i32, error: String },
    /// Will never be accepted as it is.
    Rejected { status: i32, error: String },
}

/// A URL a sink POSTs its requests to, with the headers every request carries (the sink's own, then
/// the configured ones but those the sink reserves) and the credentials.
pub struct Endpoint {
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    auth: Auth,
}

impl Endpoint {
    /// `own`: the headers the sink sets (`Content-Type` ...); a configured header of the same name,
    /// or named in `reserved`, is skipped with a warning, as Promtail does.
    pub fn new(
        url: &str,
        http: &HttpSettings,
        own: &[(&'static str, &'static str)],
        reserved: &[&str],
    ) -> Result<Self, String> {
        use reqwest::header::{HeaderMap, HeaderName, USER_AGENT};
        let mut headers = HeaderMap::new();
        for (name, value) in own {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in &http.headers {
            let lower = name.to_ascii_lowercase();
            let taken = own.iter().any(|(n, _)| *n == lower) || lower == USER_AGENT.as_str();
            if taken || reserved.contains(&lower.as_str()) {
                tracing::warn!(header = %name, "custom header key already exists, skipping");
                continue;
            }
            match header(name, value) {
                Ok((n, v)) => {
                    headers.insert(n, v);
                }
                Err(why) => return Err(format!("invalid header {name:?}: {why}")),
            }
        }
        Ok(Endpoint {
            client: client(http)?,
            url: url.to_owned(),
            headers,
            auth: http.auth.clone(),
        })
    }

    /// POST `body`, with `extra` headers, and read the answer; the error of a refusal is the first
    /// line of its body (at most 1 KiB).
    pub async fn post(&self, body: bytes::Bytes, extra: &[(&'static str, &str)]) -> Posted {
        let mut req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body);
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        match auth_header(&self.auth) {
            Ok(Some(v)) => req = req.header(reqwest::header::AUTHORIZATION, v),
            Ok(None) => {}
            Err(error) => return Posted::Retry { status: -1, error },
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Posted::Retry {
                    status: -1,
                    error: transport_error(&e),
                }
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Posted::Accepted(resp.bytes().await.unwrap_or_default());
        }
        let code = i32::from(status.as_u16());
        let body = resp.text().await.unwrap_or_default();
        let first: String = body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(1024)
            .collect();
        let error = format!("server returned HTTP status {status} ({code}): {first}");
        if retriable_status(status.as_u16()) {
            Posted::Retry {
                status: code,
                error,
            }
        } else {
            Posted::Rejected {
                status: code,
                error,
            }
        }
    }
}
