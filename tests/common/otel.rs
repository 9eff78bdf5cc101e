//! OpenTelemetry's real parts for the OTLP tests:
//!
//! * [`OtelClient`]: `tests/fixtures/otel_client.py`, an application logging through the real
//!   OpenTelemetry Python SDK and its OTLP exporter (HTTP or gRPC), from the virtualenv that
//!   `tests/setup.sh` installs; reaped on drop.
//! * [`OtlpReceiver`]: an OTLP/HTTP logs endpoint (a collector's `/v1/logs`) that decodes the real
//!   protobuf messages and answers as the specification says, with partial successes and statuses
//!   on demand.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::runtime::Runtime;

/// The Python of the virtualenv `tests/setup.sh` made for the OpenTelemetry SDK.
pub fn otel_python() -> PathBuf {
    let cache = std::env::var_os("LOGFERRY_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/logferry-tests")
        });
    let python = cache.join("otel-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/setup.sh (it installs the OpenTelemetry SDK)",
        python.display()
    );
    python
}

/// An application logging through the OpenTelemetry SDK.
pub struct OtelClient {
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl OtelClient {
    /// Log `count` records `"<prefix> <i>"` to `endpoint` over `protocol` (`http`: the full
    /// `/v1/logs` URL; `grpc`: `host:port`), `delay` apart.
    pub fn spawn(protocol: &str, endpoint: &str, count: usize, prefix: &str, delay: f64) -> Self {
        Self::start(protocol, endpoint, count, prefix, delay, None)
    }

    /// As [`OtelClient::spawn`], over TLS, trusting the CA certificate in `ca`.
    pub fn spawn_tls(
        protocol: &str,
        endpoint: &str,
        count: usize,
        prefix: &str,
        ca: &std::path::Path,
    ) -> Self {
        Self::start(protocol, endpoint, count, prefix, 0.0, Some(ca))
    }

    fn start(
        protocol: &str,
        endpoint: &str,
        count: usize,
        prefix: &str,
        delay: f64,
        ca: Option<&std::path::Path>,
    ) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otel_client.py");
        let mut command = Command::new(otel_python());
        if let Some(ca) = ca {
            // requests lets these override the CA the exporter sets on its session.
            command
                .env("OTEL_TEST_CA", ca)
                .env_remove("REQUESTS_CA_BUNDLE")
                .env_remove("CURL_CA_BUNDLE");
        }
        let mut child = command
            .arg(script)
            .args([
                protocol,
                endpoint,
                &count.to_string(),
                prefix,
                &delay.to_string(),
            ])
            .env("OTEL_BSP_EXPORT_TIMEOUT", "120000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OpenTelemetry client");
        let stdout = child.stdout.take().expect("its stdout");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let (lines, changed) = &*shared;
                lines.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        OtelClient { child, lines }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// The records whose export the receiver answered with success.
    pub fn acked(&self) -> Vec<String> {
        let out = self.output();
        out.iter()
            .filter_map(|l| l.strip_prefix("acked "))
            .map(str::to_string)
            .collect()
    }

    /// The trace and span ids (hex) its records were logged under.
    pub fn trace(&self) -> Option<(String, String)> {
        let out = self.output();
        let line = out.iter().find_map(|l| l.strip_prefix("trace "))?;
        let (trace, span) = line.split_once(' ')?;
        Some((trace.to_string(), span.to_string()))
    }

    /// Waits until `found` holds on its output.
    pub fn wait_until(&self, timeout: Duration, found: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lines, changed) = &*self.lines;
        let mut guard = lines.lock().unwrap();
        while !found(&guard) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
        true
    }

    /// Waits until it printed `done` (every record flushed, acknowledged or given up).
    pub fn wait_done(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |lines| lines.iter().any(|l| l == "done"))
    }
}

impl Drop for OtelClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record as the OTLP receiver got it.
#[derive(Clone, Debug)]
pub struct OtlpRecord {
    /// Resource attributes, string values.
    pub resource: Vec<(String, String)>,
    pub scope: String,
    pub time_unix_nano: u64,
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

#[derive(Default)]
struct OtlpState {
    records: Vec<OtlpRecord>,
    /// Statuses of every request, in order.
    statuses: Vec<u16>,
    /// Headers of the last request, names lower-cased.
    headers: Vec<(String, String)>,
    /// Answer the next requests with this status (and accept nothing).
    fail_next: Vec<u16>,
    /// Refuse with 413 a request of more than this many records.
    max_records: Option<usize>,
    /// Claim in a partial success that records whose body contains this were rejected (they are
    /// not kept).
    reject_bodies: Option<String>,
    /// Count records without keeping them (benchmarks).
    count_only: bool,
    counted: usize,
}

/// An OTLP/HTTP logs endpoint on `127.0.0.1`; dropping it shuts it down.
pub struct OtlpReceiver {
    state: Arc<Mutex<OtlpState>>,
    port: u16,
    runtime: Option<Runtime>,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let state = Arc::new(Mutex::new(OtlpState::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the OTLP receiver");
        let port = listener.local_addr().expect("its address").port();
        let app = Router::new()
            .route("/v1/logs", post(export))
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            state,
            port,
            runtime: Some(runtime),
        }
    }

    /// A receiver that decodes every request and counts its records, keeping nothing.
    pub fn start_count_only() -> Self {
        let receiver = Self::start();
        receiver.state.lock().unwrap().count_only = true;
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/logs", self.port)
    }

    /// Records received (kept or only counted).
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().counted
    }

    /// Waits until it received `n` records.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn records(&self) -> Vec<OtlpRecord> {
        self.state.lock().unwrap().records.clone()
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.state.lock().unwrap().statuses.clone()
    }

    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().headers.clone()
    }

    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().fail_next = statuses.to_vec();
    }

    pub fn set_max_records(&self, n: Option<usize>) {
        self.state.lock().unwrap().max_records = n;
    }

    pub fn reject_bodies_containing(&self, needle: &str) {
        self.state.lock().unwrap().reject_bodies = Some(needle.to_string());
    }

    /// Waits until it holds `n` records.
    pub fn wait_for_records(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.records().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn string_of(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

async fn export(
    State(state): State<Arc<Mutex<OtlpState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    state.headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    if !state.fail_next.is_empty() {
        let status = state.fail_next.remove(0);
        state.statuses.push(status);
        return (StatusCode::from_u16(status).unwrap(), "refused on purpose").into_response();
    }
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let raw = if gzip {
        let mut out = Vec::new();
        use std::io::Read;
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .is_err()
        {
            state.statuses.push(400);
            return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
        }
        out
    } else {
        body.to_vec()
    };
    let Ok(request) = ExportLogsServiceRequest::decode(&raw[..]) else {
        state.statuses.push(400);
        return (StatusCode::BAD_REQUEST, "bad protobuf").into_response();
    };
    let count: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if state.max_records.is_some_and(|max| count > max) {
        state.statuses.push(413);
        return (StatusCode::PAYLOAD_TOO_LARGE, "too many records").into_response();
    }
    state.counted += count;
    if state.count_only {
        return (
            StatusCode::OK,
            [("content-type", "application/x-protobuf")],
            Vec::new(),
        )
            .into_response();
    }
    let mut rejected = 0;
    for rl in request.resource_logs {
        let resource: Vec<(String, String)> = rl
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default()
            .iter()
            .map(|kv| (kv.key.clone(), string_of(kv.value.as_ref())))
            .collect();
        for sl in rl.scope_logs {
            let scope = sl.scope.map(|s| s.name).unwrap_or_default();
            for r in sl.log_records {
                let body = string_of(r.body.as_ref());
                if state
                    .reject_bodies
                    .as_deref()
                    .is_some_and(|needle| body.contains(needle))
                {
                    rejected += 1;
                    continue;
                }
                state.records.push(OtlpRecord {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    time_unix_nano: r.time_unix_nano,
                    body,
                    attributes: r
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), string_of(kv.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    state.statuses.push(200);
    let answer = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: format!("{rejected} records refused by the test receiver"),
        }),
    };
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        answer.encode_to_vec(),
    )
        .into_response()
}
