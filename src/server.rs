//! The agent's HTTP server: `/metrics` (Prometheus text), `/ready` (Promtail's readiness rule),
//! `/config` (the effective config, secrets redacted, as Promtail serves it), `/targets` (what is read
//! and how far behind, as JSON), `/reload` (with `server.enable_runtime_reload`, as in Promtail) and a
//! redirect from `/` to `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
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

async fn metrics(State(s): State<ServerState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
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

/// `/targets`: every target with its labels, bytes read, size and lag, as JSON.
async fn targets(State(s): State<ServerState>) -> Response {
    let body = serde_json::json!({ "targets": s.targets.snapshot() }).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `/reload` (any method, as in Promtail): read the config again and apply it. 500 with the errors when
/// the new config is refused (the running one goes on).
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
        .route("/reload", any(reload))
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
