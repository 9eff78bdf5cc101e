//! The agent's HTTP server: `/metrics` (Prometheus text), `/ready` (Promtail's readiness rule),
//! `/config` (the effective config, secrets redacted, as Promtail serves it), `/targets` (what is read
//! and how far behind, as HTML or JSON), `POST /reload` (with `server.enable_runtime_reload`, as in
//! Promtail) and a redirect from `/` to `/metrics`. None of them asks for authentication, as in
//! Promtail: the agent warns when it serves them on every interface.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::targets::Targets;

#[derive(Clone)]
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    /// Sources and sinks are started.
    pub started: Arc<AtomicBool>,
    /// Whether readiness needs an open file (some scrape config tails files), as Promtail's does.
    pub needs_files: bool,
    /// Promtail's `server.health_check_target`: false makes `/ready` always 200.
    pub health_check_target: bool,
    /// The effective config as YAML with passwords, tokens and keys redacted (`/config`); a reload
    /// replaces it.
    pub config_yaml: Arc<RwLock<Arc<str>>>,
    /// What is being read (`/targets`).
    pub targets: Arc<Targets>,
    /// Where `/reload` asks for a reload; `None` unless `server.enable_runtime_reload`.
    pub reload: Option<mpsc::Sender<ReloadRequest>>,
}

/// A reload asked for over HTTP, answered with what it did or why the new config was refused.
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

impl ServerState {
    fn is_ready(&self) -> bool {
        if !self.health_check_target {
            return true;
        }
        self.started.load(Ordering::Acquire)
            && (!self.needs_files || self.metrics.files_active.get() > 0)
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus), the classic text format otherwise.
async fn metrics(State(s): State<ServerState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = s.metrics.exposition(accept);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn ready(State(s): State<ServerState>) -> Response {
    if s.is_ready() {
        (StatusCode::OK, "Ready").into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not ready: Unable to find any logs to tail. Please verify permissions, volumes, scrape_config, etc.",
        )
            .into_response()
    }
}

async fn config(State(s): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        s.config_yaml.read().unwrap().to_string(),
    )
        .into_response()
}

/// `/targets`: every target with its labels, state, progress and lag; an HTML page for browsers (they
/// ask for `text/html`), JSON otherwise or with `?format=json`.
async fn targets(
    State(s): State<ServerState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let snapshot = s.targets.snapshot();
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser && query.get("format").map(String::as_str) != Some("json") {
        let page = crate::targets::page::render(&snapshot);
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    }
    let body = serde_json::json!({ "targets": snapshot }).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /reload`: read the config again and apply it. 500 with the errors when the new config is
/// refused (the running one goes on). Promtail takes any method; POST only means that a link, a
/// prefetch or a crawler following `/` cannot reload the agent (other methods answer 405).
async fn reload(State(s): State<ServerState>) -> Response {
    let Some(reload) = s.reload else {
        let msg =
            "reloading over HTTP is off: set server.enable_runtime_reload: true (or send SIGHUP)\n";
        return (StatusCode::NOT_FOUND, msg).into_response();
    };
    let (tx, rx) = oneshot::channel();
    if reload.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match rx.await {
        Ok(Ok(done)) => (StatusCode::OK, done).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

/// Bind and serve until `shutdown` turns true. Returns the bound address (port 0 picks a free port).
pub async fn serve(
    addr: SocketAddr,
    state: ServerState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/config", get(config))
        .route("/targets", get(targets))
        .route("/reload", post(reload))
        .route("/", get(|| async { Redirect::to("/metrics") }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let join = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok((bound, join))
}
