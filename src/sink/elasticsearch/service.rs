//! The HTTP side of the sink: which node a request goes to, the `_bulk` request itself, how its answer
//! is classified, and the version check (`GET /`) at start.
//!
//! Endpoints are used in turn (round robin). One that fails at the transport level or answers 5xx is
//! rested for [`REST`], and requests go to the others meanwhile; when every endpoint is resting the one
//! that rested longest is tried. 429 is the cluster's own backpressure, not a sick node: it rests
//! nothing, and the sink backs off.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use serde::Deserialize;

use super::bulk::{describe_error, read_response, ItemOutcome};
use super::config::EsSettings;
use crate::sink::http::{self, transport_error, USER_AGENT_VALUE};

/// How long an endpoint that failed is left alone while others are available.
pub const REST: Duration = Duration::from_secs(10);

/// How one `_bulk` attempt went.
#[derive(Debug)]
pub enum Answer {
    /// 2xx: what became of each document.
    Items(Vec<ItemOutcome>),
    /// 413: the body is more than the server takes (`http.max_content_length`).
    TooLarge,
    /// Worth trying again (transport error: status -1, 429, 5xx, an unreadable 2xx answer).
    Retry { status: i32, error: String },
    /// Will never be accepted as it is (another 4xx).
    Rejected { status: i32, error: String },
}

/// One attempt: its answer, the endpoint's `host:port` and how long it took.
pub struct Attempt {
    pub answer: Answer,
    pub status: i32,
    pub host: String,
    pub took: Duration,
}

struct Endpoint {
    base: String,
    bulk_url: String,
    host: String,
    resting_until: Option<Instant>,
}

/// Elasticsearch or OpenSearch, and its version, from `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub flavour: &'static str,
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

pub struct Service {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    next: usize,
    headers: HeaderMap,
    settings: EsSettings,
}

impl Service {
    pub fn new(settings: EsSettings) -> Result<Self, String> {
        let client = http::client(&settings.http)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if settings.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &settings.http.headers {
            let reserved = [
                CONTENT_TYPE.as_str(),
                CONTENT_ENCODING.as_str(),
                USER_AGENT.as_str(),
            ];
            if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                tracing::warn!(header = %name, sink = %settings.name, "custom header key already exists, skipping");
                continue;
            }
            match http::header(name, value) {
                Ok((n, v)) => {
                    headers.insert(n, v);
                }
                Err(why) => return Err(format!("invalid header {name:?}: {why}")),
            }
        }
        let mut query = vec!["filter_path=errors,items.*.error,items.*.status,items.*._index"];
        let pipeline;
        if !settings.pipeline.is_empty() {
            pipeline = format!("pipeline={}", url_escape(&settings.pipeline));
            query.push(&pipeline);
        }
        let query = query.join("&");
        let endpoints = settings
            .endpoints
            .iter()
            .map(|base| Endpoint {
                base: base.clone(),
                bulk_url: format!("{base}/_bulk?{query}"),
                host: http::host_of(base),
                resting_until: None,
            })
            .collect();
        Ok(Service {
            client,
            endpoints,
            next: 0,
            headers,
            settings,
        })
    }

    pub fn settings(&self) -> &EsSettings {
        &self.settings
    }

    /// Whether an endpoint other than the one `host` names is not resting: a failed request can go
    /// there at once instead of waiting.
    pub fn other_endpoint_ready(&self, host: &str) -> bool {
        let now = Instant::now();
        self.endpoints
            .iter()
            .any(|e| e.host != host && e.resting_until.map_or(true, |t| t <= now))
    }

    /// The next endpoint in turn that is not resting; when all are, the one that rested longest.
    fn pick(&mut self) -> usize {
        let now = Instant::now();
        let n = self.endpoints.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.endpoints[i].resting_until.map_or(true, |t| t <= now) {
                self.next = (i + 1) % n;
                return i;
            }
        }
        let i = (0..n)
            .min_by_key(|&i| self.endpoints[i].resting_until)
            .unwrap_or(0);
        self.next = (i + 1) % n;
        i
    }

    /// Send one `_bulk` request of `count` documents (the body as stored: gzipped when configured).
    pub async fn bulk(&mut self, body: Bytes, count: usize) -> Attempt {
        let start = Instant::now();
        let i = self.pick();
        let (answer, status) = self.send(i, body, count).await;
        let endpoint = &mut self.endpoints[i];
        let sick = status == -1 || status >= 500;
        endpoint.resting_until = sick.then(|| Instant::now() + REST);
        Attempt {
            answer,
            status,
            host: endpoint.host.clone(),
            took: start.elapsed(),
        }
    }

    async fn send(&self, i: usize, body: Bytes, count: usize) -> (Answer, i32) {
        let mut req = self
            .client
            .post(&self.endpoints[i].bulk_url)
            .headers(self.headers.clone())
            .body(body);
        match http::auth_header(&self.settings.http.auth) {
            Ok(Some(v)) => req = req.header(AUTHORIZATION, v),
            Ok(None) => {}
            Err(error) => return (Answer::Retry { status: -1, error }, -1),
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let error = transport_error(&e);
                return (Answer::Retry { status: -1, error }, -1);
            }
        };
        let status = resp.status();
        let code = status.as_u16() as i32;
        let text = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let error = format!("reading the answer: {}", transport_error(&e));
                return (Answer::Retry { status: -1, error }, -1);
            }
        };
        if status.is_success() {
            return match read_response(&text, count) {
                Ok(items) => (Answer::Items(items), code),
                Err(error) => (
                    Answer::Retry {
                        status: code,
                        error,
                    },
                    code,
                ),
            };
        }
        if code == 413 {
            return (Answer::TooLarge, code);
        }
        let error = format!(
            "server returned HTTP status {status}: {}",
            error_text(&text)
        );
        if crate::sink::http::retriable_status(status.as_u16()) {
            (
                Answer::Retry {
                    status: code,
                    error,
                },
                code,
            )
        } else {
            (
                Answer::Rejected {
                    status: code,
                    error,
                },
                code,
            )
        }
    }

    /// `GET /` on each endpoint until one answers: the server's flavour and version.
    pub async fn probe(&self) -> Result<ServerInfo, String> {
        let mut errors = Vec::new();
        for e in &self.endpoints {
            match self.probe_one(e).await {
                Ok(info) => return Ok(info),
                Err(err) => errors.push(format!("{}: {err}", e.host)),
            }
        }
        Err(errors.join("; "))
    }

    async fn probe_one(&self, e: &Endpoint) -> Result<ServerInfo, String> {
        let mut req = self
            .client
            .get(format!("{}/", e.base))
            .timeout(self.settings.http.timeout.min(Duration::from_secs(10)));
        for (name, value) in &self.headers {
            if name != CONTENT_TYPE && name != CONTENT_ENCODING {
                req = req.header(name, value);
            }
        }
        if let Some(v) = http::auth_header(&self.settings.http.auth)? {
            req = req.header(AUTHORIZATION, v);
        }
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            return Err(format!("GET / answered {status}: {}", error_text(&body)));
        }
        server_info(&body)
    }
}

#[derive(Deserialize)]
struct Root {
    version: Version,
}

#[derive(Deserialize)]
struct Version {
    number: String,
    #[serde(default)]
    distribution: Option<String>,
}

/// Reads `GET /`: OpenSearch says `"distribution": "opensearch"`, Elasticsearch has none.
pub fn server_info(body: &[u8]) -> Result<ServerInfo, String> {
    let root: Root = serde_json::from_slice(body)
        .map_err(|e| format!("GET / is not an Elasticsearch answer: {e}"))?;
    let mut parts = root.version.number.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let flavour = match root.version.distribution.as_deref() {
        Some("opensearch") => "OpenSearch",
        _ => "Elasticsearch",
    };
    Ok(ServerInfo {
        flavour,
        version: root.version.number,
        major,
        minor,
    })
}

/// What an error answer says, in one line: Elasticsearch's `error` object when it is one.
fn error_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if !v["error"].is_null() {
            return describe_error(&v["error"]);
        }
    }
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(1024)
        .collect()
}

/// Percent-escapes a query value (an ingest pipeline's name).
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavour_and_version_from_get_root() {
        let es8 = br#"{"name":"n","cluster_name":"c","version":{"number":"8.13.4","build_flavor":"default","lucene_version":"9.10.0"},"tagline":"You Know, for Search"}"#;
        let info = server_info(es8).unwrap();
        assert_eq!(
            (info.flavour, info.major, info.minor),
            ("Elasticsearch", 8, 13)
        );
        let os = br#"{"name":"n","version":{"distribution":"opensearch","number":"2.11.1"},"tagline":"The OpenSearch Project: https://opensearch.org/"}"#;
        let info = server_info(os).unwrap();
        assert_eq!(
            (info.flavour, info.version.as_str()),
            ("OpenSearch", "2.11.1")
        );
        assert!(server_info(b"{}").is_err());
    }

    #[test]
    fn error_answers_read_as_one_line() {
        let body = br#"{"error":{"root_cause":[],"type":"security_exception","reason":"missing authentication credentials"},"status":401}"#;
        assert_eq!(
            error_text(body),
            "security_exception: missing authentication credentials"
        );
        assert_eq!(error_text(b"Bad Gateway\nmore"), "Bad Gateway");
        assert_eq!(url_escape("my pipe/1"), "my%20pipe%2F1");
    }
}
