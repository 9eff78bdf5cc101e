//! The agent's HTTP server: `/metrics` (Prometheus text), `/ready` (Promtail's readiness rule),
//! `/config` (the effective config, secrets redacted, as Promtail serves it), `/targets` (what is read
//! and how far behind, as HTML or JSON), `POST /reload` (with `server.enable_runtime_reload`, as in
//! Promtail) and a redirect from `/` to `/metrics`. None of them asks for authentication, as in
//! Promtail: the agent warns when it serves them on every interface.
//!
//! The server must not be a way to use up the agent's descriptors (every one it holds is one a file or
//! a push cannot have): it serves at most [`ConnectionLimits::max`] connections at once, the others
//! waiting in the kernel's accept queue as with Go's `LimitListener`, and closes a connection that does
//! not send a complete request head in time, idle keep-alive and trickling clients alike. Hence hyper's
//! HTTP/1 connection is driven here rather than by `axum::serve`, which has neither.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;
use crate::descriptors::{self, is_exhaustion, next_retry, report_exhaustion, RETRY_MIN};
use crate::metrics::Metrics;
use crate::targets::Targets;

/// How the server bounds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once: `server.http_listen_conn_limit`, or when that is 0 (Promtail:
    /// unlimited) a share of the open files limit ([`descriptors::Limits::http_connections`]).
    pub max: usize,
    /// A connection that has not sent a complete request head this long after it opened or after its
    /// last response is closed. The shorter of `http_server_read_header_timeout` and
    /// `http_server_idle_timeout`, each falling back to `http_server_read_timeout` when 0, as in Go;
    /// `None` only when all are 0. (Go waits `idle_timeout` for the first byte of the next request,
    /// then `read_header_timeout` for the rest; hyper has one timer for both.)
    pub request_head_timeout: Option<Duration>,
}

impl ConnectionLimits {
    pub fn from_config(cfg: &ServerConfig, fd: &descriptors::Limits) -> Self {
        let max = match usize::try_from(cfg.http_listen_conn_limit) {
            Ok(n) if n > 0 => n,
            _ => fd.http_connections,
        };
        let set = |d: Duration| (!d.is_zero()).then_some(d);
        let read = set(cfg.http_server_read_timeout.get());
        let header = set(cfg.http_server_read_header_timeout.get()).or(read);
        let idle = set(cfg.http_server_idle_timeout.get()).or(read);
        let request_head_timeout = match (header, idle) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (h, i) => h.or(i),
        };
        ConnectionLimits {
            max,
            request_head_timeout,
        }
    }
}

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
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let own_metrics = state.metrics.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/config", get(config))
        .route("/targets", get(targets))
        .route("/reload", post(reload))
        .route("/", get(|| async { Redirect::to("/metrics") }))
        .with_state(state);
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let join = tokio::spawn(accept_loop(
        listener,
        app,
        limits,
        own_metrics,
        shutdown,
        None,
    ));
    Ok((bound, join))
}

/// Accept while a connection slot is free; at shutdown, stop accepting and let the open connections
/// finish their request in flight.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    metrics.http_connections_limit.set(limits.max as i64);
    let slots = Arc::new(Semaphore::new(limits.max));
    let mut connections = tokio::task::JoinSet::new();
    let mut wait = RETRY_MIN;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                if is_exhaustion(&e) {
                    report_exhaustion(&metrics, "accept", &e);
                } else {
                    tracing::debug!(error = %e, "accepting a connection failed");
                }
                // The connection stays in the accept queue until a descriptor is free.
                tokio::time::sleep(wait).await;
                wait = next_retry(wait);
                continue;
            }
        };
        wait = RETRY_MIN;
        while connections.try_join_next().is_some() {}
        let connection = Connection {
            app: app.clone(),
            limits,
            metrics: metrics.clone(),
            _slot: slot,
        };
        let shutdown = shutdown.clone();
        match &tls {
            None => connections.spawn(connection.serve(stream, shutdown)),
            Some(tls) => connections.spawn(connection.serve_tls(tls.clone(), stream, shutdown)),
        };
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One accepted connection, holding its slot until it is closed.
struct Connection {
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
}

/// How long a client has to finish its TLS handshake.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    async fn serve_tls(
        self,
        tls: tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        shutdown: watch::Receiver<bool>,
    ) {
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(stream, shutdown).await,
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    }

    async fn serve<S>(self, stream: S, mut shutdown: watch::Receiver<bool>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        self.metrics.http_connections.inc();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.limits.request_head_timeout);
        let service = TowerToHyperService::new(self.app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let stopping = async {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stopping => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
        }
        self.metrics.http_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_follow_the_server_config() {
        let fd = descriptors::Limits::from_nofile(1024);
        let cfg: ServerConfig = serde_yaml_ng::from_str("{}").unwrap();
        let l = ConnectionLimits::from_config(&cfg, &fd);
        assert_eq!(
            l.max, fd.http_connections,
            "0 means a share of the open files limit"
        );
        assert_eq!(l.request_head_timeout, Some(Duration::from_secs(30)));
        let cfg: ServerConfig = serde_yaml_ng::from_str(
            "{http_listen_conn_limit: 7, http_server_read_header_timeout: 2s, http_server_idle_timeout: 5s}",
        )
        .unwrap();
        let l = ConnectionLimits::from_config(&cfg, &fd);
        assert_eq!(l.max, 7);
        assert_eq!(l.request_head_timeout, Some(Duration::from_secs(2)));
        let cfg: ServerConfig =
            serde_yaml_ng::from_str("{http_server_read_timeout: 0s, http_server_idle_timeout: 0s}")
                .unwrap();
        let l = ConnectionLimits::from_config(&cfg, &fd);
        assert_eq!(l.request_head_timeout, None, "all 0: no timeout, as in Go");
    }
}
