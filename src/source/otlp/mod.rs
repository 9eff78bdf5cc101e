//! The `otlp` source (a logferry extension): an OpenTelemetry logs receiver, so that applications'
//! OpenTelemetry SDKs and collectors can send logs to the agent, which relays them to its sinks.
//!
//! * OTLP/HTTP on `http.listen_address`: `POST /v1/logs`, `application/x-protobuf` or
//!   `application/json`, optionally `Content-Encoding: gzip`; answered in the request's encoding.
//! * OTLP/gRPC on `grpc.listen_address`: `opentelemetry.proto.collector.logs.v1.LogsService/Export`
//!   (tonic), gzip accepted.
//!
//! Records become entries as Loki's own OTLP endpoint makes them (`convert`). **A request succeeds
//! only once every sink holds its records durably** (`super::intake`). Otherwise, as the OTLP
//! specification asks so that exporters retry: HTTP 429 with `Retry-After` while the sinks are full,
//! 503 when the records could not be made safe; gRPC `UNAVAILABLE`. A body that cannot be read is
//! refused with 400 (gRPC `INVALID_ARGUMENT`) and a `google.rpc.Status` naming why; a request larger
//! than `max_recv_msg_size` with 413 (`RESOURCE_EXHAUSTED`). Records without a body are left out,
//! counted, and reported to the client as a partial success (`rejected_log_records`). Invalid UTF-8
//! in a string is replaced and counted (`utf8`), not refused, over HTTP and gRPC (`grpc`) alike.

pub mod convert;
mod grpc;
mod utf8;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use tokio::sync::watch;

use super::intake::{self, Intake, Refused, Tally, RETRY_AFTER};
use super::loki_push::decode::{gunzip, GunzipError};
use super::SourceContext;
use crate::config::{OtlpListener, OtlpSourceConfig};
use crate::entry::{now_nanos, Labels};
use crate::relabel::Relabeler;
use crate::targets::listener::ListenerRow;
use convert::Converter;

pub struct OtlpSource {
    pub ctx: SourceContext,
    pub config: OtlpSourceConfig,
    pub relabeler: Relabeler,
    /// Bound when the agent started (so a port in use fails the start); unbound after a reload,
    /// when the job's previous instance may still hold the ports for a moment.
    pub listeners: Listeners,
    pub limits: crate::server::ConnectionLimits,
}

/// The job's sockets, HTTP and gRPC.
#[derive(Default)]
pub struct Listeners {
    pub http: Option<std::net::TcpListener>,
    pub grpc: Option<std::net::TcpListener>,
}

/// The TLS settings of `listener`, if it has a certificate, offering `alpn` (`h2` for gRPC, whose
/// clients insist on it; `http/1.1` for the HTTP server); or what is wrong with its files.
pub fn tls(
    listener: &OtlpListener,
    alpn: &[u8],
) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    let Some(tls) = &listener.tls_config else {
        return Ok(None);
    };
    let mut config = (*super::syslog::tls::server_config(tls)?).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Some(Arc::new(config)))
}

/// What both servers share.
struct Handler {
    intake: Intake,
    static_labels: Labels,
    relabeler: Relabeler,
    max_size: usize,
}

/// Why a request was not taken.
enum Failure {
    Malformed(String),
    TooLarge(String),
    Refused(Refused),
}

impl OtlpSource {
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        let job = self.ctx.job.clone();
        let tally = Tally::new("otlp", job.clone(), self.ctx.metrics.clone());
        let (intake, queue) = intake::intake(tally);
        let handler = Arc::new(Handler {
            intake,
            static_labels: self.config.labels.clone().into_iter().collect(),
            relabeler: self.relabeler.clone(),
            max_size: usize::try_from(self.config.max_recv_msg_size.get()).unwrap_or(usize::MAX),
        });
        let mut servers = Vec::new();
        // A listener that cannot start is logged and left out; the other one serves.
        'http: {
            let Some(http) = self.config.http.clone() else {
                break 'http;
            };
            let bound = self.listeners.http.take();
            let Some(listener) =
                intake::listen("otlp", &job, &http.listen_address, bound, &stop).await
            else {
                break 'http;
            };
            let tls = match tls(&http, b"http/1.1") {
                Ok(tls) => tls.map(tokio_rustls::TlsAcceptor::from),
                Err(e) => {
                    tracing::error!(job = %job, error = %e, "otlp: cannot set up TLS; not started");
                    break 'http;
                }
            };
            let (row, address) = self.row(if tls.is_some() { "https" } else { "http" }, &listener);
            let app = axum::Router::new()
                .route("/v1/logs", post(http_logs))
                .route("/ready", get(|| async { "ready\n" }))
                .layer(DefaultBodyLimit::max(handler.max_size))
                .with_state((handler.clone(), Arc::new(row)));
            tracing::info!(job = %job, address = %address, "otlp: listening for OTLP/HTTP logs");
            servers.push(tokio::spawn(crate::server::accept_loop(
                listener,
                app,
                self.limits,
                self.ctx.metrics.clone(),
                stop.clone(),
                tls,
            )));
        }
        'grpc: {
            let Some(grpc) = self.config.grpc.clone() else {
                break 'grpc;
            };
            let bound = self.listeners.grpc.take();
            let Some(listener) =
                intake::listen("otlp", &job, &grpc.listen_address, bound, &stop).await
            else {
                break 'grpc;
            };
            let tls = match tls(&grpc, b"h2") {
                Ok(tls) => tls.map(tokio_rustls::TlsAcceptor::from),
                Err(e) => {
                    tracing::error!(job = %job, error = %e, "otlp: cannot set up TLS; not started");
                    break 'grpc;
                }
            };
            let (row, address) = self.row(if tls.is_some() { "grpcs" } else { "grpc" }, &listener);
            let service = grpc::LogsServer::new(Grpc(handler.clone(), row), handler.max_size);
            let mut stopped = stop.clone();
            let job = job.clone();
            tracing::info!(job = %job, address = %address, "otlp: listening for OTLP/gRPC logs");
            servers.push(tokio::spawn(async move {
                let router = tonic::transport::Server::builder().add_service(service);
                let stopping = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                let served = match tls {
                    None => {
                        let incoming = tonic::transport::server::TcpIncoming::from(listener);
                        router
                            .serve_with_incoming_shutdown(incoming, stopping)
                            .await
                    }
                    Some(tls) => {
                        let incoming = tls_incoming(listener, tls);
                        router
                            .serve_with_incoming_shutdown(incoming, stopping)
                            .await
                    }
                };
                if let Err(e) = served {
                    tracing::error!(job = %job, error = %crate::sink::http::error_chain(&e),
                        "otlp: the gRPC server failed");
                }
            }));
        }
        if servers.is_empty() {
            tracing::error!(job = %job, "otlp: no listener could start; the job receives nothing");
            return;
        }
        drop(handler);
        intake::feed(self.ctx, queue, stop).await;
        for server in servers {
            let _ = server.await;
        }
        tracing::info!(job = %job, "otlp: stopped");
    }

    /// Its row on `/targets` for the listener of `protocol`, and the address it listens on.
    fn row(&self, protocol: &str, listener: &tokio::net::TcpListener) -> (ListenerRow, String) {
        let address = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let row = self.ctx.targets.listener_started(
            "otlp",
            &self.ctx.job,
            format!("{protocol}://{address}"),
            self.config.labels.clone(),
        );
        (row, address)
    }
}

impl Handler {
    /// Take a decoded request: its records as entries, to every sink; the answer once they are safe.
    async fn export(
        &self,
        request: ExportLogsServiceRequest,
        bytes: usize,
        row: &ListenerRow,
    ) -> Result<ExportLogsServiceResponse, Failure> {
        let converted = Converter {
            static_labels: &self.static_labels,
            relabeler: &self.relabeler,
            now: now_nanos(),
        }
        .convert(request);
        let count = converted.entries.len() as u64;
        row.received(count, bytes as u64);
        let tally = self.intake.tally();
        tally.entries("no_body", converted.no_body);
        tally.entries("relabeled_away", converted.relabeled_away);
        tally.entries("no_labels", converted.no_labels);
        self.intake
            .deliver(converted.entries)
            .await
            .map_err(Failure::Refused)?;
        let partial_success = (converted.no_body > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(converted.no_body).unwrap_or(i64::MAX),
            error_message: format!(
                "{} log records without a body were dropped",
                converted.no_body
            ),
        });
        Ok(ExportLogsServiceResponse { partial_success })
    }

    /// A request refused for what it is: counted always, logged once per job (then at debug level).
    fn refuse(&self, failure: &Failure) {
        let (reason, why) = match failure {
            Failure::Malformed(why) => ("malformed", why),
            Failure::TooLarge(why) => ("too_large", why),
            Failure::Refused(_) => return,
        };
        self.intake.tally().refused(reason, why);
    }

    /// An OTLP/HTTP body in the encoding its headers name.
    fn decode_http(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<ExportLogsServiceRequest, Failure> {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        let media = header(header::CONTENT_TYPE);
        let media = media.split(';').next().unwrap_or("").trim();
        let json = match media {
            "application/json" => true,
            "application/x-protobuf" => false,
            other => {
                return Err(Failure::Malformed(format!(
                    "unsupported Content-Type {other:?}: expected application/x-protobuf or application/json"
                )))
            }
        };
        let inflated;
        let body = match header(header::CONTENT_ENCODING).as_str() {
            "" | "identity" => body,
            "gzip" => {
                inflated = gunzip(body, self.max_size).map_err(|e| match e {
                    GunzipError::TooLarge(_) => Failure::TooLarge(e.to_string()),
                    GunzipError::Invalid(_) => Failure::Malformed(e.to_string()),
                })?;
                &inflated[..]
            }
            other => {
                return Err(Failure::Malformed(format!(
                    "unsupported Content-Encoding {other:?}: expected gzip or none"
                )))
            }
        };
        let request = if json {
            serde_json::from_slice(body)
                .or_else(|e| {
                    // Invalid UTF-8 in a JSON string: replaced, and counted, rather than refused.
                    let text = String::from_utf8_lossy(body);
                    if matches!(text, std::borrow::Cow::Borrowed(_)) {
                        return Err(e);
                    }
                    let request = serde_json::from_str(&text)?;
                    self.intake.tally().invalid_utf8(1);
                    Ok(request)
                })
                .map_err(|e| Failure::Malformed(format!("invalid OTLP JSON: {e}")))?
        } else {
            self.decode_protobuf(body)?
        };
        Ok(request)
    }

    /// A protobuf request (over HTTP or gRPC). Invalid UTF-8 in a string is replaced and counted
    /// rather than refused.
    fn decode_protobuf(&self, body: &[u8]) -> Result<ExportLogsServiceRequest, Failure> {
        ExportLogsServiceRequest::decode(body)
            .or_else(|e| {
                let (repaired, replaced) = utf8::repair(body).ok_or_else(|| e.clone())?;
                let request = ExportLogsServiceRequest::decode(&repaired[..]).map_err(|_| e)?;
                self.intake.tally().invalid_utf8(replaced);
                Ok(request)
            })
            .map_err(|e: prost::DecodeError| {
                Failure::Malformed(format!("invalid OTLP protobuf: {e}"))
            })
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// gRPC's codes, as `google.rpc.Status` carries them.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

/// A body in the request's encoding.
fn encoded<M: Message + serde::Serialize>(json: bool, message: &M) -> (&'static str, Vec<u8>) {
    if json {
        let body = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
        ("application/json", body)
    } else {
        ("application/x-protobuf", message.encode_to_vec())
    }
}

async fn http_logs(
    State((h, row)): State<(Arc<Handler>, Arc<ListenerRow>)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let result = match &body {
        // Over the body limit (`max_recv_msg_size`), or the connection failed mid-body.
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Failure::TooLarge(format!(
                "the request is larger than max_recv_msg_size ({} bytes)",
                h.max_size
            )))
        }
        Err(rejection) => Err(Failure::Malformed(rejection.body_text())),
        Ok(body) => match h.decode_http(&headers, body) {
            Ok(request) => h.export(request, body.len(), &row).await,
            Err(f) => Err(f),
        },
    };
    let failure = match result {
        Ok(answer) => {
            let (media, body) = encoded(json, &answer);
            return (StatusCode::OK, [(header::CONTENT_TYPE, media)], body).into_response();
        }
        Err(f) => f,
    };
    h.refuse(&failure);
    let (status, code, message) = match failure {
        Failure::Malformed(why) => (StatusCode::BAD_REQUEST, INVALID_ARGUMENT, why),
        Failure::TooLarge(why) => (StatusCode::PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED, why),
        Failure::Refused(Refused::Full) => (
            StatusCode::TOO_MANY_REQUESTS,
            UNAVAILABLE,
            "the sinks are full; retry".into(),
        ),
        Failure::Refused(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "the records could not be made safe (the agent is stopping or a sink gave up); retry"
                .into(),
        ),
    };
    let (media, body) = encoded(json, &RpcStatus { code, message });
    let mut response = (status, [(header::CONTENT_TYPE, media)], body).into_response();
    if code == UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER),
        );
    }
    response
}

/// What the gRPC endpoint (`grpc.rs`) serves with: the handlers' shared part and its `/targets` row.
struct Grpc(Arc<Handler>, ListenerRow);

/// TLS connections accepted on `listener`, for tonic: each handshake runs on its own task (a slow
/// client holds no one else up) and may take [`crate::server::TLS_HANDSHAKE_TIMEOUT`].
fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
) -> impl futures_util::Stream<Item = std::io::Result<TlsConnection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let (tls, tx) = (tls.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = tls.accept(stream);
                match tokio::time::timeout(crate::server::TLS_HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(TlsConnection(stream))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "otlp: TLS handshake failed"),
                    Err(_) => tracing::debug!("otlp: TLS handshake timed out"),
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        let next = rx.recv().await?;
        Some((next, rx))
    })
}

/// A TLS connection as tonic serves it.
struct TlsConnection(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for TlsConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
