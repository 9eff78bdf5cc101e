//! The `loki_push_api` source (compat reference §3.6): a Loki push endpoint of the job's own, so that
//! agents, the Docker Loki driver or any Loki client can push to this agent, which relays to its sinks
//! (a relay tier).
//!
//! Endpoints, on the job's own `server` address:
//! - `POST /loki/api/v1/push`: protobuf+snappy or JSON, optionally gzip (`decode`). Each stream's
//!   labels, then the job's static `labels`, go through `relabel_configs`; `__*` labels are dropped
//!   after; structured metadata is kept. Timestamps are the time of receipt unless
//!   `use_incoming_timestamp`.
//! - `POST /loki/api/v1/raw` (and Promtail's `/promtail/api/v1/raw`): one entry per line, with the
//!   static labels only, stamped with the time of receipt.
//! - `GET /ready`.
//!
//! **At least once across the hop.** A push is answered 204 only once every sink holds its entries
//! durably (its disk buffer's fsync, or the receiver's acceptance without one): the job's [`Feed`]
//! settles each batch with an `Answers` ledger (`super::intake`), and the request waits for its answer. A client that
//! hears anything else pushes again, so a relay killed mid-stream loses nothing. The answers:
//! - 400 with the reason for a body that cannot be read (nothing of it is taken);
//! - 429 with `Retry-After` while the job's queue stays full (the sinks apply backpressure);
//! - 503 when the entries could not be made safe (the agent is stopping, a sink gave up).
//!
//! Differences from Promtail, on purpose: Promtail answers at once (entries still in memory are lost
//! in a crash), and when relabeling drops one stream it skips the rest of the request while still
//! answering 204; here every stream is processed. The gRPC push endpoint is not served: clients
//! (Promtail, Alloy, the Docker driver, logferry) push over HTTP, and `grpc_listen_port` is accepted
//! and ignored.

pub mod decode;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::sync::watch;

use super::intake::{self, Intake, Refused, Tally, RETRY_AFTER};
use super::SourceContext;
use crate::config::LokiPushApiConfig;
use crate::entry::{now_nanos, Entry, LabelSet, Labels};

use crate::relabel::Relabeler;
use crate::targets::listener::ListenerRow;
use decode::{decode, PushedStream};

pub struct LokiPushSource {
    pub ctx: SourceContext,
    pub config: LokiPushApiConfig,
    pub relabeler: Relabeler,
    /// Bound when the agent started (so a port in use fails the start); `None` after a reload, when
    /// the job's previous instance may still hold the port for a moment.
    pub listener: Option<std::net::TcpListener>,
    pub limits: crate::server::ConnectionLimits,
}

/// What the HTTP handlers share.
struct Handler {
    intake: Intake,
    static_labels: Labels,
    relabeler: Relabeler,
    use_incoming_timestamp: bool,
    max_size: usize,
    /// Its row on `/targets`: what it received.
    row: ListenerRow,
}

/// The address a push server listens on: `http_listen_address` (all interfaces when empty) and
/// `http_listen_port`.
pub fn address(config: &LokiPushApiConfig) -> String {
    let host = match config.server.http_listen_address.as_str() {
        "" => "0.0.0.0",
        h => h,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", config.server.http_listen_port)
    } else {
        format!("{host}:{}", config.server.http_listen_port)
    }
}

impl LokiPushSource {
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let job = self.ctx.job.clone();
        let bound = self.listener.take();
        let at = address(&self.config);
        let Some(listener) = intake::listen("loki_push_api", &job, &at, bound, &stop).await else {
            return;
        };
        let bound = listener.local_addr().ok();
        let address = bound.map_or_else(|| address(&self.config), |a| a.to_string());
        let row = self.ctx.targets.listener_started(
            "loki_push_api",
            &job,
            format!("http://{address}"),
            self.config.labels.clone(),
        );
        let tally = Tally::new("loki_push_api", job.clone(), self.ctx.metrics.clone());
        let (intake, queue) = intake::intake(tally);
        let handler = Arc::new(Handler {
            intake,
            static_labels: self.config.labels.clone().into_iter().collect(),
            relabeler: self.relabeler.clone(),
            use_incoming_timestamp: self.config.use_incoming_timestamp,
            max_size: usize::try_from(self.config.max_send_msg_size).unwrap_or(usize::MAX),
            row,
        });
        let app = axum::Router::new()
            .route("/loki/api/v1/push", post(push))
            .route("/loki/api/v1/raw", post(raw))
            .route("/promtail/api/v1/raw", post(raw))
            .route("/ready", get(|| async { "ready\n" }))
            .layer(DefaultBodyLimit::max(handler.max_size))
            .with_state(handler);
        let server = tokio::spawn(crate::server::accept_loop(
            listener,
            app,
            self.limits,
            self.ctx.metrics.clone(),
            stop.clone(),
            None,
        ));
        tracing::info!(job = %job, address = %address, "loki_push_api: listening for pushes");
        intake::feed(self.ctx, queue, stop).await;
        let _ = server.await;
        tracing::info!(job = %job, "loki_push_api: stopped");
    }
}

impl Handler {
    /// Hand the entries to the feed and wait until every sink holds them.
    async fn deliver(&self, entries: Vec<Entry>, bytes: usize) -> Response {
        let count = entries.len() as u64;
        self.row.received(count, bytes as u64);
        match self.intake.deliver(entries).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(refused) => refusal(refused),
        }
    }

    /// The entries of pushed streams: each stream's labels with the static ones, relabeled, `__*`
    /// dropped; a stream the rules drop, or left without labels, is left out (and counted).
    fn entries(&self, streams: Vec<PushedStream>) -> Vec<Entry> {
        let now = now_nanos();
        let mut entries = Vec::new();
        for stream in streams {
            let mut labels = stream.labels;
            labels.extend(
                self.static_labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            let kept = self.relabeler.process(&mut labels);
            labels.retain(|k, _| !k.starts_with("__"));
            if !kept || labels.is_empty() {
                let reason = if kept { "no_labels" } else { "relabeled_away" };
                self.intake
                    .tally()
                    .entries(reason, stream.entries.len() as u64);
                continue;
            }
            let labels = LabelSet::new(labels);
            entries.extend(stream.entries.into_iter().map(|e| Entry {
                timestamp: if self.use_incoming_timestamp {
                    e.timestamp
                } else {
                    now
                },
                line: e.line,
                labels: labels.clone(),
                metadata: e.metadata,
                extracted: None,
            }));
        }
        entries
    }

    /// A body that cannot be read: 400 with the reason; logged once per job (then at debug level),
    /// counted always.
    fn malformed(&self, why: String) -> Response {
        self.intake.tally().refused("malformed", &why);
        (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
    }
}

/// The answer to a push whose entries were not made safe: 429 with `Retry-After` while the sinks are
/// full, else 503.
fn refusal(refused: Refused) -> Response {
    match refused {
        Refused::Full => {
            let retry = [(header::RETRY_AFTER, RETRY_AFTER)];
            (
                StatusCode::TOO_MANY_REQUESTS,
                retry,
                "sinks are full, retry\n",
            )
                .into_response()
        }
        Refused::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
        Refused::NotSafe => {
            let msg = "entries could not be made safe (the agent is stopping or a sink gave up); push again\n";
            (StatusCode::SERVICE_UNAVAILABLE, msg).into_response()
        }
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn push(State(h): State<Arc<Handler>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let streams = match decode(content_type, encoding, &body, h.max_size) {
        Ok(s) => s,
        Err(why) => return h.malformed(why),
    };
    let entries = h.entries(streams);
    h.deliver(entries, body.len()).await
}

async fn raw(State(h): State<Arc<Handler>>, body: Bytes) -> Response {
    let mut labels = h.static_labels.clone();
    labels.retain(|k, _| !k.starts_with("__"));
    if labels.is_empty() {
        return h.malformed(
            "the raw endpoint needs the job's static labels: set loki_push_api.labels".into(),
        );
    }
    let labels = LabelSet::new(labels);
    let now = now_nanos();
    let text = String::from_utf8_lossy(&body);
    let entries = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| Entry {
            timestamp: now,
            line: line.to_string(),
            labels: labels.clone(),
            metadata: Vec::new(),
            extracted: None,
        })
        .collect();
    h.deliver(entries, body.len()).await
}
