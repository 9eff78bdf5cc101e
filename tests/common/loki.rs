//! [`LokiReceiver`]: a real Loki push endpoint for end-to-end tests.
//!
//! It listens on `127.0.0.1:<OS-chosen port>`, serves `POST /loki/api/v1/push` with axum on a tokio
//! runtime of its own, so plain `#[test]` functions drive it synchronously, and decodes the exact
//! wire format (compat §7.1): `Content-Type: application/x-protobuf`, snappy block, protobuf
//! `logproto.PushRequest`. Every request is recorded with its headers and the status it was answered
//! with; every entry of an accepted request is recorded in arrival order.
//!
//! Faults: answer an error status for the next n requests or for all of them, delay every answer, or
//! go down (`stop`) and come back on the same port (`start_again`). While down the port stays bound
//! but not listening, so the agent gets "connection refused" and no other process can take the port.
//! Each up period is one tokio runtime; stopping shuts that runtime down, which closes the listener
//! and drops every open connection and in-flight request at once, like a crashed Loki.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpSocket;
use tokio::runtime::Runtime;

use super::logproto::{self, PushRequest};

/// The path Promtail pushes to.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// One log entry as Loki stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEntry {
    /// The stream's label string exactly as sent, e.g. `{filename="/tmp/a.log", job="varlogs"}`.
    pub labels: String,
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i128,
    pub line: String,
    /// Structured metadata, in the order sent.
    pub metadata: Vec<(String, String)>,
    /// The request's `X-Scope-OrgID`.
    pub tenant: Option<String>,
}

/// One HTTP request, whatever it was answered.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// The status the receiver answered.
    pub status: u16,
    /// Every header, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// `X-Scope-OrgID`.
    pub tenant: Option<String>,
    /// Size of the (compressed) body.
    pub body_bytes: usize,
    /// Streams and entries in the body; 0 when it was not decoded (fault injected) or not decodable.
    pub streams: usize,
    pub entries: usize,
}

impl ReceivedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Running totals, kept in every mode (the only record in count-only mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub accepted_requests: u64,
    pub rejected_requests: u64,
    /// Entries in accepted requests.
    pub entries: u64,
    /// Sum of line lengths of accepted entries.
    pub line_bytes: u64,
    /// Sum of compressed body sizes of accepted requests.
    pub body_bytes: u64,
}

/// What [`LokiReceiver::wait_until`] predicates look at, under the receiver's lock.
pub struct Received<'a> {
    pub entries: &'a [ReceivedEntry],
    pub requests: &'a [ReceivedRequest],
    pub stats: Stats,
}

#[derive(Default)]
struct Faults {
    /// Answer this status (and body) for the next `fail_next` requests.
    fail_next: u32,
    fail_next_status: u16,
    fail_next_body: Option<String>,
    /// Answer this status for every request until cleared.
    status: Option<u16>,
    /// Wait this long before answering each request.
    delay: Duration,
}

#[derive(Default)]
struct Record {
    entries: Vec<ReceivedEntry>,
    requests: Vec<ReceivedRequest>,
    stats: Stats,
    faults: Faults,
    count_only: bool,
    /// Loki's `max_line_size` (see [`LokiReceiver::set_max_entry_size`]).
    max_entry_size: Option<usize>,
}

#[derive(Default)]
struct Shared {
    record: Mutex<Record>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Record> {
        // A panicking test thread must not turn every later assertion into a poison error.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Server {
    Up(Runtime),
    /// Bound but not listening: connections are refused and the port stays ours.
    Down(TcpSocket),
}

/// A Loki push endpoint on `127.0.0.1`. Dropping it shuts the server down.
pub struct LokiReceiver {
    shared: Arc<Shared>,
    port: u16,
    server: Mutex<Option<Server>>,
}

impl LokiReceiver {
    /// Starts a receiver on an OS-chosen port.
    pub fn start() -> Self {
        let socket = bind(0).expect("bind the test Loki receiver");
        let port = socket.local_addr().expect("receiver address").port();
        let shared = Arc::new(Shared::default());
        let runtime = launch(socket, &shared).expect("start the test Loki receiver");
        LokiReceiver {
            shared,
            port,
            server: Mutex::new(Some(Server::Up(runtime))),
        }
    }

    /// Starts a receiver in count-only mode (see [`LokiReceiver::set_count_only`]).
    pub fn start_count_only() -> Self {
        let receiver = Self::start();
        receiver.set_count_only(true);
        receiver
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/loki/api/v1/push`
    pub fn url(&self) -> String {
        format!("{}{PUSH_PATH}", self.base_url())
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    // ---- faults ----

    /// Answers `status` (with a Loki-like message) to the next `n` requests, recording no entries.
    /// Replaces any earlier `fail_next`.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.fail_next_inner(n, status, None);
    }

    /// Like [`LokiReceiver::fail_next`] with a chosen response body.
    pub fn fail_next_with(&self, n: u32, status: u16, body: &str) {
        self.fail_next_inner(n, status, Some(body.to_owned()));
    }

    fn fail_next_inner(&self, n: u32, status: u16, body: Option<String>) {
        let mut record = self.shared.lock();
        record.faults.fail_next = n;
        record.faults.fail_next_status = status;
        record.faults.fail_next_body = body;
    }

    /// `Some(status)`: answer every request with it (entries not recorded) until `set_status(None)`.
    /// `fail_next` takes precedence while it lasts.
    pub fn set_status(&self, status: Option<u16>) {
        self.shared.lock().faults.status = status;
    }

    /// Delays every answer (before it is decided and recorded). `Duration::ZERO` to clear.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().faults.delay = delay;
    }

    /// Validates entries as Loki's distributor does with `limits_config.max_line_size: n`: a push
    /// holding longer lines stores its other entries and answers 400 naming the last refused one
    /// (Loki's message), and, as Loki's ingester, an entry whose stream, timestamp and line were
    /// already stored is not stored again. `None` (the default) accepts everything.
    pub fn set_max_entry_size(&self, n: Option<usize>) {
        self.shared.lock().max_entry_size = n;
    }

    /// Count-only mode, for benchmarks: requests are decoded and counted in [`Stats`], but neither
    /// entries nor requests are stored.
    pub fn set_count_only(&self, on: bool) {
        self.shared.lock().count_only = on;
    }

    /// Goes down: closes the listener and drops every connection and in-flight request. The port
    /// stays reserved (bound, not listening) for [`LokiReceiver::start_again`]. No-op when down.
    pub fn stop(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Server::Up(runtime)) = server.take() {
            shut_down(runtime);
        }
        if server.is_none() {
            *server = Some(Server::Down(bind_retrying(self.port)));
        }
    }

    /// Comes back up on the same port. No-op when up.
    pub fn start_again(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        let socket = match server.take() {
            Some(Server::Down(socket)) => socket,
            Some(up @ Server::Up(_)) => {
                *server = Some(up);
                return;
            }
            None => bind_retrying(self.port),
        };
        let runtime = launch(socket, &self.shared).expect("restart the test Loki receiver");
        *server = Some(Server::Up(runtime));
    }

    pub fn is_up(&self) -> bool {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*server, Some(Server::Up(_)))
    }

    // ---- what arrived ----

    /// Accepted entries, in arrival order.
    pub fn entries(&self) -> Vec<ReceivedEntry> {
        self.shared.lock().entries.clone()
    }

    /// The lines of [`LokiReceiver::entries`].
    pub fn lines(&self) -> Vec<String> {
        let record = self.shared.lock();
        record.entries.iter().map(|e| e.line.clone()).collect()
    }

    /// Every request, accepted or not, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    /// How many times each line arrived: the basis for lost/duplicated counts.
    pub fn line_counts(&self) -> HashMap<String, usize> {
        let record = self.shared.lock();
        let mut counts = HashMap::new();
        for entry in &record.entries {
            *counts.entry(entry.line.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Forgets what arrived (entries, requests, stats); faults and mode are kept.
    pub fn clear(&self) {
        let mut record = self.shared.lock();
        record.entries.clear();
        record.requests.clear();
        record.stats = Stats::default();
    }

    /// Waits until at least `n` entries were accepted (works in count-only mode too).
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|r| r.stats.entries >= n as u64, timeout)
    }

    /// Waits until at least `n` requests arrived, whatever they were answered.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|r| r.stats.requests >= n as u64, timeout)
    }

    /// Waits until every line of `lines` arrived at least once (order and extra copies ignored).
    /// Each request's entries are looked at once, so the wait costs the receiver nothing much even
    /// with tens of thousands of lines in small pushes (a predicate that rebuilds a set of everything
    /// received per request slows the receiver down until the test times out).
    pub fn wait_for_all_lines(&self, lines: &[String], timeout: Duration) -> bool {
        let mut missing: std::collections::HashSet<&str> =
            lines.iter().map(String::as_str).collect();
        let mut seen = 0;
        self.wait_until(
            |r| {
                for e in r.entries.get(seen..).unwrap_or_default() {
                    missing.remove(e.line.as_str());
                }
                seen = r.entries.len();
                missing.is_empty()
            },
            timeout,
        )
    }

    /// Waits until `pred` holds; it is evaluated under the lock after every request. `false` on
    /// timeout.
    pub fn wait_until(
        &self,
        mut pred: impl FnMut(&Received<'_>) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut record = self.shared.lock();
        loop {
            let view = Received {
                entries: &record.entries,
                requests: &record.requests,
                stats: record.stats,
            };
            if pred(&view) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            record = self
                .shared
                .changed
                .wait_timeout(record, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for LokiReceiver {
    fn drop(&mut self) {
        let server = self.server.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(Server::Up(runtime)) = server.take() {
            shut_down(runtime);
        }
    }
}

/// Protobuf-encodes and snappy-compresses a push request: the exact body Promtail sends.
pub fn encode_push(request: &PushRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// The message Loki puts in the body of an error answer with this status.
pub fn loki_error_body(status: u16) -> String {
    match status {
        400 => "entry for stream '{job=\"logferry-test\"}' has timestamp too old: \
                1970-01-01T00:00:00Z, oldest acceptable timestamp is: 2000-01-01T00:00:00Z\n"
            .to_owned(),
        429 => "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while \
                attempting to ingest '1' lines totaling '100' bytes, reduce log volume or contact \
                your Loki administrator to see if the limit can be increased\n"
            .to_owned(),
        500..=599 => "rpc error: code = Unavailable desc = at least 2 live replicas required, \
                      could only find 0\n"
            .to_owned(),
        other => format!(
            "{}\n",
            StatusCode::from_u16(other)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
        ),
    }
}

pub(super) fn bind(port: u16) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    // Lets `start_again` rebind while the old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    Ok(socket)
}

pub(super) fn bind_retrying(port: u16) -> TcpSocket {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match bind(port) {
            Ok(socket) => return socket,
            Err(e) if Instant::now() >= deadline => {
                panic!("cannot rebind the test receiver on port {port}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn launch(socket: TcpSocket, shared: &Arc<Shared>) -> std::io::Result<Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loki-receiver")
        .enable_all()
        .build()?;
    let listener = {
        let _context = runtime.enter();
        socket.listen(1024)?
    };
    let app = Router::new()
        .route(PUSH_PATH, post(push))
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::clone(shared));
    runtime.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(runtime)
}

/// Shuts a runtime down from a plain thread, so this works from inside async code too.
pub(super) fn shut_down(runtime: Runtime) {
    std::thread::spawn(move || runtime.shutdown_timeout(Duration::from_secs(5)))
        .join()
        .expect("shut the test receiver down");
}

async fn push(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (delay, count_only, max_entry_size) = {
        let record = shared.lock();
        (
            record.faults.delay,
            record.count_only,
            record.max_entry_size,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut request = describe(&method, &uri, &headers, &body);

    let (mut status, mut message, mut decoded) = match take_fault(&shared) {
        Some((status, message)) => (status, message, None),
        None => match decode(&headers, &body) {
            Ok(push) => (204, String::new(), Some(push)),
            Err(message) => (400, message, None),
        },
    };
    if let (Some(max), Some(push)) = (max_entry_size, decoded.as_mut()) {
        if let Some(refused) = validate_like_loki(&shared, push, max) {
            (status, message) = (400, refused);
        }
    }
    request.status = status;

    let mut entries = Vec::new();
    let mut line_bytes = 0;
    if let Some(push) = &decoded {
        request.streams = push.streams.len();
        for stream in &push.streams {
            request.entries += stream.entries.len();
            line_bytes += stream.entries.iter().map(|e| e.line.len()).sum::<usize>();
            if count_only {
                continue;
            }
            entries.extend(stream.entries.iter().map(|e| {
                ReceivedEntry {
                    labels: stream.labels.clone(),
                    timestamp_ns: e.timestamp.as_ref().map_or(0, |t| t.unix_nanos()),
                    line: e.line.clone(),
                    metadata: e
                        .structured_metadata
                        .iter()
                        .map(|p| (p.name.clone(), p.value.clone()))
                        .collect(),
                    tenant: request.tenant.clone(),
                }
            }));
        }
    }
    record(&shared, request, entries, line_bytes);

    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if message.is_empty() {
        status.into_response()
    } else {
        (status, message).into_response()
    }
}

async fn not_found(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = describe(&method, &uri, &headers, &body);
    request.status = 404;
    record(&shared, request, Vec::new(), 0);
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

fn describe(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> ReceivedRequest {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_owned(), value)
        })
        .collect();
    let tenant = headers
        .iter()
        .find(|(n, _)| n == "x-scope-orgid")
        .map(|(_, v)| v.clone());
    ReceivedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: 0,
        headers,
        tenant,
        body_bytes: body.len(),
        streams: 0,
        entries: 0,
    }
}

fn take_fault(shared: &Shared) -> Option<(u16, String)> {
    let mut record = shared.lock();
    let faults = &mut record.faults;
    if faults.fail_next > 0 {
        faults.fail_next -= 1;
        let status = faults.fail_next_status;
        let body = faults.fail_next_body.clone();
        return Some((status, body.unwrap_or_else(|| loki_error_body(status))));
    }
    faults
        .status
        .map(|status| (status, loki_error_body(status)))
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Result<PushRequest, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if content_type.as_deref() != Some("application/x-protobuf") {
        return Err(format!(
            "test receiver: Content-Type must be application/x-protobuf, got {content_type:?}\n"
        ));
    }
    logproto::decode_push(body).map_err(|e| format!("{e}\n"))
}

/// Books one answered request; `entries` is empty in count-only mode, the totals never are.
/// Loki's checks for [`LokiReceiver::set_max_entry_size`]: removes from `push` the lines longer than
/// `max` and the entries already stored; Loki's message for the last line refused, if any.
fn validate_like_loki(shared: &Shared, push: &mut PushRequest, max: usize) -> Option<String> {
    let record = shared.lock();
    let stored: std::collections::HashSet<(&str, i128, &str)> = record
        .entries
        .iter()
        .map(|e| (e.labels.as_str(), e.timestamp_ns, e.line.as_str()))
        .collect();
    let mut refused = None;
    for stream in &mut push.streams {
        stream.entries.retain(|e| {
            if e.line.len() > max {
                refused = Some(format!(
                    "Max entry size '{max}' bytes exceeded for stream '{}' while adding an entry \
                     with length '{}' bytes\n",
                    stream.labels,
                    e.line.len()
                ));
                return false;
            }
            let ts = e.timestamp.as_ref().map_or(0, |t| t.unix_nanos());
            !stored.contains(&(stream.labels.as_str(), ts, e.line.as_str()))
        });
    }
    refused
}

fn record(
    shared: &Shared,
    request: ReceivedRequest,
    entries: Vec<ReceivedEntry>,
    line_bytes: usize,
) {
    let mut record = shared.lock();
    let stats = &mut record.stats;
    stats.requests += 1;
    if request.accepted() {
        stats.accepted_requests += 1;
        stats.entries += request.entries as u64;
        stats.line_bytes += line_bytes as u64;
        stats.body_bytes += request.body_bytes as u64;
    } else {
        stats.rejected_requests += 1;
    }
    if !record.count_only {
        record.requests.push(request);
        record.entries.extend(entries);
    }
    drop(record);
    shared.changed.notify_all();
}
