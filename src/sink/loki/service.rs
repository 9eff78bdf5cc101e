//! One push to Loki: the HTTP request, its headers and auth, and the classification of the answer into
//! success, retry (connection errors, timeouts, 429, 5xx) or permanent failure (other statuses), as
//! Promtail's client does (compat reference §7.3).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};

use super::config::{Auth, LokiSettings};

pub const USER_AGENT_VALUE: &str = concat!("logferry/", env!("CARGO_PKG_VERSION"));

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    /// Worth trying again; `status` is -1 for transport errors, as in Promtail's metrics.
    Retry {
        status: i32,
        error: String,
    },
    /// Will never be accepted as it is.
    Rejected {
        status: i32,
        error: String,
    },
}

pub struct Service {
    client: reqwest::Client,
    settings: LokiSettings,
    static_headers: HeaderMap,
}

impl Service {
    pub fn new(settings: LokiSettings) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .http1_only()
            .user_agent(USER_AGENT_VALUE);
        if let Some(ca) = &settings.tls.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca).map_err(|e| format!("tls ca: {e}"))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some(identity) = &settings.tls.identity_pem {
            let id =
                reqwest::Identity::from_pem(identity).map_err(|e| format!("tls cert/key: {e}"))?;
            builder = builder.identity(id);
        }
        if settings.tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let mut static_headers = HeaderMap::new();
        static_headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        static_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in &settings.headers {
            let reserved = [CONTENT_TYPE.as_str(), USER_AGENT.as_str(), "x-scope-orgid"];
            if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                tracing::warn!(header = %name, "custom header key already exists, skipping");
                continue;
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(n), Ok(v)) => {
                    static_headers.insert(n, v);
                }
                _ => return Err(format!("invalid header {name:?}")),
            }
        }
        Ok(Service {
            client,
            settings,
            static_headers,
        })
    }

    pub fn settings(&self) -> &LokiSettings {
        &self.settings
    }

    /// Send one compressed push for `tenant`; records `promtail_request_duration_seconds` via the caller.
    pub async fn push(&self, body: Bytes, tenant: &str) -> (Outcome, Duration) {
        let start = Instant::now();
        let mut req = self
            .client
            .post(&self.settings.url)
            .headers(self.static_headers.clone())
            .body(body);
        if !tenant.is_empty() {
            req = req.header("X-Scope-OrgID", tenant);
        }
        req = match self.auth_header() {
            Ok(Some(v)) => req.header(AUTHORIZATION, v),
            Ok(None) => req,
            Err(e) => {
                return (
                    Outcome::Retry {
                        status: -1,
                        error: e,
                    },
                    start.elapsed(),
                )
            }
        };
        let outcome = match req.send().await {
            Err(e) => Outcome::Retry {
                status: -1,
                error: error_chain(&e),
            },
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Outcome::Accepted
                } else {
                    let code = status.as_u16() as i32;
                    let body = resp.text().await.unwrap_or_default();
                    let first = body.lines().next().unwrap_or("");
                    let first: String = first.chars().take(1024).collect();
                    let error = format!("server returned HTTP status {status} ({code}): {first}");
                    if code == 429 || status.is_server_error() {
                        Outcome::Retry {
                            status: code,
                            error,
                        }
                    } else {
                        Outcome::Rejected {
                            status: code,
                            error,
                        }
                    }
                }
            }
        };
        (outcome, start.elapsed())
    }

    /// The Authorization header. Credential files are read on every request, as Promtail does, so a
    /// rotated token is picked up without a restart.
    fn auth_header(&self) -> Result<Option<HeaderValue>, String> {
        let value = match &self.settings.auth {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => {
                let user = username.read()?;
                let pass = password.read()?;
                format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
            }
            Auth::Authorization { kind, credentials } => {
                format!("{kind} {}", credentials.read()?)
            }
        };
        HeaderValue::from_str(&value)
            .map(Some)
            .map_err(|_| "credentials contain characters not allowed in a header".to_string())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
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
}
