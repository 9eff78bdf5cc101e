//! One push to Loki: the HTTP request, its headers and auth, and the classification of the answer into
//! success, retry (connection errors, timeouts, 429, 5xx) or permanent failure (other statuses), as
//! Promtail's client does (compat reference §7.3), except that 401 and 403 are retried too (see
//! [`http::retriable_status`]).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::config::LokiSettings;
use crate::sink::http::{Endpoint, Posted};

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
    endpoint: Endpoint,
    settings: LokiSettings,
}

impl Service {
    pub fn new(settings: LokiSettings) -> Result<Self, String> {
        let own = [("content-type", "application/x-protobuf")];
        let endpoint = Endpoint::new(&settings.url, &settings.http, &own, &["x-scope-orgid"])?;
        Ok(Service { endpoint, settings })
    }

    pub fn settings(&self) -> &LokiSettings {
        &self.settings
    }

    /// Send one compressed push for `tenant`; records `promtail_request_duration_seconds` via the caller.
    pub async fn push(&self, body: Bytes, tenant: &str) -> (Outcome, Duration) {
        let start = Instant::now();
        let tenant = [("x-scope-orgid", tenant)];
        let extra = if tenant[0].1.is_empty() {
            &[][..]
        } else {
            &tenant[..]
        };
        let outcome = match self.endpoint.post(body, extra).await {
            Posted::Accepted(_) => Outcome::Accepted,
            Posted::Retry { status, error } => Outcome::Retry { status, error },
            Posted::Rejected { status, error } => Outcome::Rejected { status, error },
        };
        (outcome, start.elapsed())
    }
}
