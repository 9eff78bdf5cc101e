//! [`EsReceiver`]: an Elasticsearch `_bulk` endpoint for end-to-end tests, answering as Elasticsearch 8
//! does.
//!
//! It listens on `127.0.0.1:<OS-chosen port>` with a small HTTP/1.1 server of its own (keep-alive,
//! `Content-Length` bodies) on a tokio runtime of its own, so it controls the connection itself: it can
//! reset one (SO_LINGER 0, then close) the way a crashed node or a proxy does. It serves:
//!
//! * `GET /`: the cluster info (`version.number` 8.13.4, or OpenSearch 2.11.1 with [`EsReceiver::set_opensearch`]);
//! * `POST /_bulk` (and `/<index>/_bulk`): the NDJSON is parsed pair by pair (gzip bodies decoded), each
//!   document recorded with its index and action, and the answer is Elasticsearch 8's: `errors`, and one
//!   item per document with its status and error object, filtered by `filter_path` as ES filters it.
//!   A malformed action line is a whole-request 400, a source that is not JSON an item 400.
//!
//! Faults: a status for the next n requests (429, 503, 400 ...), connection resets for the next n bulk
//! requests (before reading them: nothing is recorded), a delay before every answer, a body limit
//! answered with 413 (`http.max_content_length`), documents rejected for good by substring, and flaky
//! documents that fail their first attempts with 429/503 items. [`EsReceiver::stop`] and
//! [`EsReceiver::start_again`] take it down and back on the same port, as [`super::LokiReceiver`] does.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::runtime::Runtime;

use super::loki::{bind, bind_retrying, shut_down};

/// One document as the receiver indexed it.
#[derive(Clone, Debug)]
pub struct ReceivedDoc {
    pub index: String,
    /// `index` or `create`.
    pub op_type: String,
    pub source: Value,
    /// `source.message`, for counting.
    pub message: String,
}

/// One HTTP request, whatever it was answered.
#[derive(Clone, Debug)]
pub struct EsRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Size on the wire (compressed when gzip).
    pub body_bytes: usize,
    /// Documents in the body (0 when not read).
    pub documents: usize,
    /// Documents answered with an error item.
    pub failed_items: usize,
    /// The `message` of every document in the body, in order.
    pub messages: Vec<String>,
}

impl EsRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EsStats {
    pub requests: u64,
    pub bulk_requests: u64,
    /// Documents indexed (item status 201).
    pub documents: u64,
    /// Sum of `message` lengths of indexed documents.
    pub message_bytes: u64,
    /// Sum of bulk body sizes as received.
    pub body_bytes: u64,
    pub resets: u64,
}

/// What [`EsReceiver::wait_until`] predicates look at, under the receiver's lock.
pub struct EsView<'a> {
    pub docs: &'a [ReceivedDoc],
    pub requests: &'a [EsRequest],
    pub stats: EsStats,
}

#[derive(Default)]
struct Faults {
    fail_next: u32,
    fail_next_status: u16,
    reset_next: u32,
    delay: Duration,
    max_body: Option<usize>,
    /// Documents whose message contains the text are rejected for good with (status, error type).
    reject: Vec<(String, u16, String)>,
    /// (every, times, status): a document whose message hashes to 0 mod `every` fails its first
    /// `times` attempts with an item `status`.
    flaky: Option<(u64, u32, u16)>,
}

#[derive(Default)]
struct Record {
    docs: Vec<ReceivedDoc>,
    requests: Vec<EsRequest>,
    stats: EsStats,
    faults: Faults,
    /// Attempts seen per message, for flaky documents.
    attempts: HashMap<String, u32>,
    count_only: bool,
    opensearch: bool,
}

#[derive(Default)]
struct Shared {
    record: Mutex<Record>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Server {
    Up(Runtime),
    Down(TcpSocket),
}

/// An Elasticsearch 8 `_bulk` endpoint on `127.0.0.1`. Dropping it shuts the server down.
pub struct EsReceiver {
    shared: Arc<Shared>,
    port: u16,
    server: Mutex<Option<Server>>,
}

impl EsReceiver {
    pub fn start() -> Self {
        let socket = bind(0).expect("bind the test Elasticsearch receiver");
        let port = socket.local_addr().expect("receiver address").port();
        let shared = Arc::new(Shared::default());
        let runtime = launch(socket, &shared).expect("start the test Elasticsearch receiver");
        EsReceiver {
            shared,
            port,
            server: Mutex::new(Some(Server::Up(runtime))),
        }
    }

    /// A receiver that counts documents without keeping them (benchmarks).
    pub fn start_count_only() -> Self {
        let r = Self::start();
        r.shared.lock().count_only = true;
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    // ---- faults ----

    /// Answers `status` (with an Elasticsearch error body) to the next `n` requests, indexing nothing.
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut r = self.shared.lock();
        r.faults.fail_next = n;
        r.faults.fail_next_status = status;
    }

    /// Resets the connection of the next `n` bulk requests before reading their body.
    pub fn reset_next(&self, n: u32) {
        self.shared.lock().faults.reset_next = n;
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().faults.delay = delay;
    }

    /// Answers 413 to bulk bodies (decompressed) larger than `bytes`.
    pub fn set_max_body(&self, bytes: Option<usize>) {
        self.shared.lock().faults.max_body = bytes;
    }

    /// Rejects for good, with an item `status` and error `kind`, every document whose message contains
    /// `text`.
    pub fn reject_messages(&self, text: &str, status: u16, kind: &str) {
        let mut r = self.shared.lock();
        r.faults.reject.push((text.into(), status, kind.into()));
    }

    /// Documents whose message hashes to 0 mod `every` fail their first `times` attempts with an item
    /// `status` (429 or 503), then are indexed.
    pub fn set_flaky(&self, every: u64, times: u32, status: u16) {
        self.shared.lock().faults.flaky = Some((every, times, status));
    }

    /// Whether a message is one [`EsReceiver::set_flaky`] picks with `every`.
    pub fn is_flaky(message: &str, every: u64) -> bool {
        fnv(message) % every == 0
    }

    /// Answer `GET /` as OpenSearch 2.11.1.
    pub fn set_opensearch(&self, on: bool) {
        self.shared.lock().opensearch = on;
    }

    pub fn stop(&self) {
        let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Server::Up(runtime)) = server.take() {
            shut_down(runtime);
        }
        if server.is_none() {
            *server = Some(Server::Down(bind_retrying(self.port)));
        }
    }

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
        let runtime = launch(socket, &self.shared).expect("restart the test receiver");
        *server = Some(Server::Up(runtime));
    }

    // ---- what arrived ----

    pub fn docs(&self) -> Vec<ReceivedDoc> {
        self.shared.lock().docs.clone()
    }

    pub fn messages(&self) -> Vec<String> {
        let r = self.shared.lock();
        r.docs.iter().map(|d| d.message.clone()).collect()
    }

    pub fn requests(&self) -> Vec<EsRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn bulk_requests(&self) -> Vec<EsRequest> {
        let r = self.shared.lock();
        r.requests
            .iter()
            .filter(|q| q.path.ends_with("/_bulk"))
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> EsStats {
        self.shared.lock().stats
    }

    pub fn wait_for_docs(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|v| v.stats.documents >= n as u64, timeout)
    }

    pub fn wait_until(&self, mut pred: impl FnMut(&EsView<'_>) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut record = self.shared.lock();
        loop {
            let view = EsView {
                docs: &record.docs,
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

impl Drop for EsReceiver {
    fn drop(&mut self) {
        let server = self.server.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(Server::Up(runtime)) = server.take() {
            shut_down(runtime);
        }
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn launch(socket: TcpSocket, shared: &Arc<Shared>) -> std::io::Result<Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("es-receiver")
        .enable_all()
        .build()?;
    let listener = {
        let _context = runtime.enter();
        socket.listen(1024)?
    };
    let shared = Arc::clone(shared);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&shared)));
        }
    });
    Ok(runtime)
}

/// A request head and body.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One connection: requests one after the other (keep-alive) until the client closes it.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let Some(head_end) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("/").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target.clone(), String::new()),
        };
        if path.ends_with("/_bulk") && take_reset(&shared) {
            reset(stream);
            return;
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 64 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let request = Request {
            method,
            path,
            query,
            headers,
            body,
        };
        let delay = shared.lock().faults.delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let (status, answer) = handle(&shared, request);
        let reply = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-elastic-product: Elasticsearch\r\n\r\n",
            reason(status),
            answer.len()
        );
        let mut out = reply.into_bytes();
        out.extend_from_slice(answer.as_bytes());
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Closes with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN: a reset connection.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// Reads until a whole request head is in `buf`; its length without the blank line.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i);
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn take_reset(shared: &Shared) -> bool {
    let mut r = shared.lock();
    if r.faults.reset_next == 0 {
        return false;
    }
    r.faults.reset_next -= 1;
    r.stats.resets += 1;
    r.stats.requests += 1;
    drop(r);
    shared.changed.notify_all();
    true
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Decides and records the answer to one request.
fn handle(shared: &Shared, req: Request) -> (u16, String) {
    let mut record = EsRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        status: 0,
        headers: req.headers.clone(),
        body_bytes: req.body.len(),
        documents: 0,
        failed_items: 0,
        messages: Vec::new(),
    };
    let (status, answer, docs) = if req.method == "GET" && req.path == "/" {
        (200, cluster_info(shared.lock().opensearch), Vec::new())
    } else if req.method == "POST" && req.path.ends_with("/_bulk") {
        bulk(shared, &req, &mut record)
    } else {
        let e = error_body(404, "resource_not_found_exception", "no handler found");
        (404, e, Vec::new())
    };
    record.status = status;
    let mut r = shared.lock();
    r.stats.requests += 1;
    if record.path.ends_with("/_bulk") {
        r.stats.bulk_requests += 1;
        r.stats.body_bytes += record.body_bytes as u64;
    }
    r.stats.documents += docs.len() as u64;
    r.stats.message_bytes += docs.iter().map(|d| d.message.len() as u64).sum::<u64>();
    if !r.count_only {
        r.requests.push(record);
        r.docs.extend(docs);
    }
    drop(r);
    shared.changed.notify_all();
    (status, answer)
}

fn cluster_info(opensearch: bool) -> String {
    if opensearch {
        return json!({"name": "node-1", "cluster_name": "logferry-test", "cluster_uuid": "3B2aI8y9RkeTqLK3yuJt6A",
            "version": {"distribution": "opensearch", "number": "2.11.1", "build_type": "tar",
                "lucene_version": "9.7.0", "minimum_wire_compatibility_version": "7.10.0",
                "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "The OpenSearch Project: https://opensearch.org/"})
        .to_string();
    }
    json!({"name": "node-1", "cluster_name": "logferry-test", "cluster_uuid": "3B2aI8y9RkeTqLK3yuJt6A",
        "version": {"number": "8.13.4", "build_flavor": "default", "build_type": "docker",
            "lucene_version": "9.10.0", "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"},
        "tagline": "You Know, for Search"})
    .to_string()
}

fn error_body(status: u16, kind: &str, reason: &str) -> String {
    json!({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status})
    .to_string()
}

/// A `_bulk` request: faults first, then every action/source pair.
fn bulk(shared: &Shared, req: &Request, record: &mut EsRequest) -> (u16, String, Vec<ReceivedDoc>) {
    let gzip = req
        .headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && v == "gzip");
    let body = if gzip {
        let mut out = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(&req.body[..]).read_to_end(&mut out) {
            let e = error_body(400, "parse_exception", &format!("bad gzip body: {e}"));
            return (400, e, Vec::new());
        }
        out
    } else {
        req.body.clone()
    };
    if let Some(answer) = count_only_answer(shared, &body) {
        return answer;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    record.messages = lines
        .iter()
        .skip(1)
        .step_by(2)
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    record.documents = record.messages.len();

    let mut r = shared.lock();
    if r.faults.fail_next > 0 {
        r.faults.fail_next -= 1;
        let status = r.faults.fail_next_status;
        let kind = match status {
            429 => "es_rejected_execution_exception",
            503 => "unavailable_shards_exception",
            400 => "illegal_argument_exception",
            401 => "security_exception",
            _ => "exception",
        };
        return (
            status,
            error_body(status, kind, "injected by the test"),
            Vec::new(),
        );
    }
    if r.faults.max_body.is_some_and(|max| body.len() > max) {
        return (413, String::new(), Vec::new());
    }
    let count_only = r.count_only;
    let filtered = req.query.contains("filter_path=");
    let mut items = Vec::new();
    let mut docs = Vec::new();
    let mut errors = false;
    for (n, pair) in lines.chunks(2).enumerate() {
        let action: Value = match serde_json::from_str(pair[0]) {
            Ok(Value::Object(a)) if a.len() == 1 => Value::Object(a),
            _ => {
                let reason = format!(
                    "Malformed action/metadata line [{}], expected START_OBJECT",
                    n * 2 + 1
                );
                return (
                    400,
                    error_body(400, "illegal_argument_exception", &reason),
                    Vec::new(),
                );
            }
        };
        let (op, meta) = action.as_object().unwrap().iter().next().unwrap();
        let index = meta["_index"].as_str().unwrap_or("").to_string();
        let outcome: Result<ReceivedDoc, (u16, &str, String)> =
            match pair.get(1).map(|s| serde_json::from_str::<Value>(s)) {
                None => Err((
                    400,
                    "action_request_validation_exception",
                    "no source".into(),
                )),
                Some(Err(e)) => Err((
                    400,
                    "document_parsing_exception",
                    format!("[1:1] failed to parse: {e}"),
                )),
                Some(Ok(source)) => {
                    let message = source["message"].as_str().unwrap_or("").to_string();
                    let rejected = r
                        .faults
                        .reject
                        .iter()
                        .find(|(t, _, _)| message.contains(t.as_str()))
                        .cloned();
                    let flaky = r.faults.flaky;
                    let flaky_status = flaky.and_then(|(every, times, status)| {
                        if fnv(&message) % every != 0 {
                            return None;
                        }
                        let seen = r.attempts.entry(message.clone()).or_insert(0);
                        *seen += 1;
                        (*seen <= times).then_some(status)
                    });
                    if let Some((_, status, kind)) = rejected {
                        Err((
                            status,
                            if kind == "document_parsing_exception" {
                                "document_parsing_exception"
                            } else {
                                "mapper_exception"
                            },
                            format!(
                            "[1:42] failed to parse field [message] of type [{kind}] in document"
                        ),
                        ))
                    } else if let Some(status) = flaky_status {
                        Err((
                            status,
                            if status == 429 {
                                "es_rejected_execution_exception"
                            } else {
                                "unavailable_shards_exception"
                            },
                            "rejected execution of coordinating operation".into(),
                        ))
                    } else {
                        Ok(ReceivedDoc {
                            index: index.clone(),
                            op_type: op.clone(),
                            source,
                            message,
                        })
                    }
                }
            };
        let item = match outcome {
            Ok(doc) => {
                if !count_only {
                    docs.push(doc);
                } else {
                    docs.push(ReceivedDoc {
                        index: String::new(),
                        op_type: String::new(),
                        source: Value::Null,
                        message: doc.message,
                    });
                }
                if filtered {
                    json!({op: {"_index": index, "status": 201}})
                } else {
                    json!({op: {"_index": index, "_id": format!("id{n}"), "_version": 1, "result": "created",
                        "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": n, "_primary_term": 1, "status": 201}})
                }
            }
            Err((status, kind, reason)) => {
                errors = true;
                record.failed_items += 1;
                json!({op: {"_index": index, "status": status, "error": {"type": kind, "reason": reason}}})
            }
        };
        items.push(item);
    }
    drop(r);
    let answer = if filtered && !errors {
        json!({"errors": false, "items": items})
    } else {
        json!({"took": 3, "errors": errors, "items": items})
    };
    (200, answer.to_string(), docs)
}

/// In count-only mode without faults, a bulk body is counted, not parsed (benchmarks): one document
/// per two lines, its source line's length as message bytes. The answer is the real one.
fn count_only_answer(shared: &Shared, body: &[u8]) -> Option<(u16, String, Vec<ReceivedDoc>)> {
    {
        let r = shared.lock();
        let f = &r.faults;
        let faulty =
            f.fail_next > 0 || f.max_body.is_some() || !f.reject.is_empty() || f.flaky.is_some();
        if !r.count_only || faulty {
            return None;
        }
    }
    let mut docs = Vec::new();
    let mut items = String::with_capacity(body.len() / 8);
    for (n, line) in body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if n % 2 == 1 {
            docs.push(ReceivedDoc {
                index: String::new(),
                op_type: String::new(),
                source: Value::Null,
                message: " ".repeat(line.len()),
            });
            items.push_str(if items.is_empty() { "" } else { "," });
            items.push_str(r#"{"index":{"_index":"bench","status":201}}"#);
        }
    }
    Some((
        200,
        format!(r#"{{"errors":false,"items":[{items}]}}"#),
        docs,
    ))
}
