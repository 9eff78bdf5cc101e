//! One push to Loki: the HTTP request, its headers and auth, and the classification of the answer into
//! success, retry (connection errors, timeouts, 429, 5xx) or permanent failure (other statuses), as
//! Promtail's client does (compat reference §7.3), except that 401 and 403 are retried too (see
//! [`http::retriable_status`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use super::config::LokiSettings;
use crate::sink::http::USER_AGENT_VALUE;
use crate::sink::http::{self, transport_error};

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
        let client = http::client(&settings.http)?;
        let mut static_headers = HeaderMap::new();
        static_headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        static_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in &settings.http.headers {
            let reserved = [CONTENT_TYPE.as_str(), USER_AGENT.as_str(), "x-scope-orgid"];
            if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                tracing::warn!(header = %name, "custom header key already exists, skipping");
                continue;
            }
            match http::header(name, value) {
                Ok((n, v)) => {
                    static_headers.insert(n, v);
                }
                Err(why) => return Err(format!("invalid header {name:?}: {why}")),
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
                error: transport_error(&e),
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
                    if http::retriable_status(status.as_u16()) {
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

    /// The Authorization header, credential files read on every request as Promtail does.
    fn auth_header(&self) -> Result<Option<HeaderValue>, String> {
        http::auth_header(&self.settings.http.auth)
    }
}
