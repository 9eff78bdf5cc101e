//! The sockets: a TCP accept loop with one task per connection (optionally TLS), or one UDP receive
//! loop. Each read (or datagram) is framed ([`framing`](super::framing)), parsed
//! ([`message`](super::message)), labeled ([`labels`](super::labels)) and sent as one batch on the
//! source's bounded channel: when the pipeline or the sinks are slow, reads wait, and TCP senders are
//! pushed back by their socket; nothing grows without bound.
//!
//! A connection that sends nothing for `idle_timeout` is closed (Promtail's read deadline), as is any
//! connection past [`MAX_CONNECTIONS`], at once and counted: a flood of idle or half-open connections
//! costs one task and one buffer each, up to that cap, and never stalls the accept loop.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::dns::ReverseDns;
use super::framing::{Frame, Framer};
use super::labels::{Connection, LabelRules, Labeler, Unlabeled};
use super::message::{parse_rfc3164, parse_rfc5424};
use crate::entry::{now_nanos, Entry};
use crate::metrics::{Escaped, JobReasonLabel, Metrics};
use crate::targets::listener::ListenerRow;

/// TCP connections served at once per listener; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 1024;
/// Bytes read from a connection at a time (each open connection holds one such buffer: 16 MiB at
/// the connection cap).
const READ_SIZE: usize = 16 * 1024;
/// Datagrams gathered into one batch when they arrive together.
const DATAGRAMS_PER_BATCH: usize = 64;
/// The UDP socket's receive buffer (Promtail's `SetReadBuffer(1 MiB)`).
const UDP_RECEIVE_BUFFER: libc::c_int = 1024 * 1024;
/// How often the connection cap is logged at most.
const CAP_LOG_EVERY: Duration = Duration::from_secs(60);

/// What every connection of one listener shares.
pub struct Shared {
    pub job: Arc<str>,
    pub max_message_length: usize,
    pub rfc3164: bool,
    pub use_incoming_timestamp: bool,
    pub use_rfc5424_message: bool,
    pub idle_timeout: Duration,
    pub rules: Arc<LabelRules>,
    pub metrics: Arc<Metrics>,
    pub row: ListenerRow,
    pub dns: ReverseDns,
    oversized: Counter,
    no_labels: Counter,
    logged: Mutex<HashSet<&'static str>>,
}

impl Shared {
    pub fn new(
        job: Arc<str>,
        config: &crate::config::SyslogConfig,
        rules: Arc<LabelRules>,
        metrics: Arc<Metrics>,
        row: ListenerRow,
    ) -> Self {
        let dropped = |reason: &str| {
            metrics
                .syslog
                .dropped
                .get_or_create(&JobReasonLabel {
                    job: Escaped(job.to_string()),
                    reason: reason.to_owned(),
                })
                .clone()
        };
        Shared {
            oversized: dropped("oversized"),
            no_labels: dropped("no_labels"),
            job: job.clone(),
            max_message_length: config.max_message_length,
            rfc3164: config.is_rfc3164(),
            use_incoming_timestamp: config.use_incoming_timestamp,
            use_rfc5424_message: config.use_rfc5424_message,
            idle_timeout: config.idle_timeout.get(),
            rules,
            metrics,
            row,
            dns: ReverseDns::default(),
            logged: Mutex::new(HashSet::new()),
        }
    }

    /// True the first time `kind` happens on this listener: problems are logged once per kind.
    fn first(&self, kind: &'static str) -> bool {
        self.logged.lock().unwrap().insert(kind)
    }

    /// One frame of a read: an entry in `out`, or counted and (once per kind) logged.
    fn on_frame(&self, labeler: &mut Labeler, frame: Frame<'_>, now: i64, out: &mut Batch) {
        let bytes = match frame {
            Frame::Message(bytes) => bytes,
            Frame::Oversized(n) => {
                self.oversized.inc();
                if self.first("oversized") {
                    tracing::warn!(job = %self.job, bytes = n, max_message_length = self.max_message_length,
                        "syslog message longer than max_message_length skipped (counted in \
                         logferry_syslog_messages_dropped_total{{reason=\"oversized\"}}; logged once)");
                }
                return;
            }
            Frame::Invalid(why) => {
                self.metrics.syslog.parsing_errors.inc();
                if self.first(why) {
                    tracing::warn!(job = %self.job, error = why,
                        "error parsing syslog stream; bytes skipped to the next line (logged once per kind)");
                }
                return;
            }
        };
        out.messages += 1;
        let parsed = if self.rfc3164 {
            parse_rfc3164(bytes, now)
        } else {
            parse_rfc5424(bytes)
        };
        let mut m = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.metrics.syslog.parsing_errors.inc();
                if self.first(e.as_str()) {
                    let format = if self.rfc3164 { "rfc3164" } else { "rfc5424" };
                    tracing::warn!(job = %self.job, error = e.as_str(), syslog_format = format,
                        message = %String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                        "error parsing syslog message; dropped (counted in \
                         promtail_syslog_target_parsing_errors_total; logged once per kind)");
                }
                return;
            }
        };
        if m.message.is_none() {
            self.metrics.syslog.empty_messages.inc();
            return;
        }
        let labels = match labeler.labels(&m) {
            Ok(labels) => labels,
            Err(Unlabeled::Dropped) => return,
            Err(Unlabeled::Empty) => {
                self.no_labels.inc();
                if self.first("no_labels") {
                    tracing::warn!(job = %self.job,
                    "syslog messages have no labels after relabeling and are dropped (Loki refuses \
                     them); add `labels` or a relabel rule, e.g. source_labels: \
                     [__syslog_message_hostname], target_label: host");
                }
                return;
            }
        };
        let line = if self.use_rfc5424_message && !self.rfc3164 {
            m.to_rfc5424()
        } else {
            m.message.take().unwrap_or_default().into_owned()
        };
        let timestamp = match m.timestamp {
            Some(t) if self.use_incoming_timestamp => t,
            _ => now,
        };
        out.entries.push(Entry {
            timestamp,
            line,
            labels,
            metadata: Vec::new(),
            extracted: None,
        });
    }

    /// Report a batch on `/targets` and the metrics, and send it; false once the source stopped.
    async fn send(&self, batch: Batch, bytes: usize, tx: &mpsc::Sender<Vec<Entry>>) -> bool {
        if batch.messages > 0 || bytes > 0 {
            self.row.received(batch.messages, bytes as u64);
        }
        if batch.entries.is_empty() {
            return true;
        }
        self.metrics
            .syslog
            .entries
            .inc_by(batch.entries.len() as u64);
        tx.send(batch.entries).await.is_ok()
    }
}

#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    messages: u64,
}

/// Accept connections until `stop`, then wait for them to end; at most `max_connections` at once
/// ([`MAX_CONNECTIONS`]).
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<Entry>>,
    mut stop: watch::Receiver<bool>,
    max_connections: usize,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    let mut cap_logged: Option<Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: retry.
                tracing::warn!(job = %shared.job, error = %e, "failed to accept syslog connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.metrics.syslog.connections_refused.inc();
            if cap_logged.map_or(true, |at| at.elapsed() >= CAP_LOG_EVERY) {
                cap_logged = Some(Instant::now());
                tracing::warn!(job = %shared.job, max = max_connections, peer = %peer,
                    "syslog listener has its maximum of connections open; new ones are closed at once \
                     until some end (idle ones end after idle_timeout; counted in \
                     logferry_syslog_connections_refused_total)");
            }
            drop(stream);
            continue;
        };
        let (shared, tx, stop, tls) = (shared.clone(), tx.clone(), stop.clone(), tls.clone());
        connections.spawn(async move {
            shared.metrics.syslog.connections.inc();
            shared.row.connections(1);
            accepted_connection(&shared, stream, peer, tls, tx, stop).await;
            shared.row.connections(-1);
            shared.metrics.syslog.connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn accepted_connection(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<Vec<Entry>>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => connection(shared, stream, peer, tx, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.idle_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => connection(shared, stream, peer, tx, stop).await,
                Ok(Err(e)) => {
                    let level_warn = shared.first("tls_handshake");
                    if level_warn {
                        tracing::warn!(job = %shared.job, peer = %peer, error = %e,
                            "syslog TLS handshake failed; connection closed (logged once)");
                    } else {
                        tracing::debug!(job = %shared.job, peer = %peer, error = %e, "syslog TLS handshake failed");
                    }
                }
                Err(_) => {
                    tracing::debug!(job = %shared.job, peer = %peer, "syslog TLS handshake timed out")
                }
            }
        }
    }
}

/// Read one connection until it ends, idles out, or the source stops.
async fn connection<S: AsyncRead + Unpin>(
    shared: &Shared,
    mut stream: S,
    peer: SocketAddr,
    tx: mpsc::Sender<Vec<Entry>>,
    mut stop: watch::Receiver<bool>,
) {
    let ip = peer.ip().to_canonical();
    let hostname = shared.dns.lookup(ip).await;
    let conn = Connection {
        ip: ip.to_string(),
        hostname: hostname.to_string(),
    };
    let mut labeler = Labeler::new(shared.rules.clone(), conn);
    let mut framer = Framer::new(shared.max_message_length);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(shared.idle_timeout, stream.read(&mut buf)) => r,
            _ = stop.wait_for(|s| *s) => Ok(Ok(0)),
        };
        let (n, eof) = match read {
            Ok(Ok(0)) => (0, true),
            Ok(Ok(n)) => (n, false),
            Ok(Err(e)) => {
                tracing::debug!(job = %shared.job, peer = %peer, error = %e, "syslog connection read failed");
                (0, true)
            }
            Err(_) => {
                tracing::debug!(job = %shared.job, peer = %peer, "syslog connection idle for idle_timeout; closed");
                (0, true)
            }
        };
        let now = now_nanos();
        let mut batch = Batch::default();
        framer.feed(&buf[..n], eof, &mut |frame| {
            shared.on_frame(&mut labeler, frame, now, &mut batch)
        });
        if !shared.send(batch, n, &tx).await || eof {
            break;
        }
    }
}

/// Receive datagrams until `stop`; each is one or more messages (framed as a stream, as Promtail does).
pub async fn serve_udp(
    socket: UdpSocket,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<Entry>>,
    mut stop: watch::Receiver<bool>,
) {
    set_receive_buffer(&socket);
    let mut buf = vec![0u8; 65536];
    let mut labelers: HashMap<IpAddr, Labeler> = HashMap::new();
    let mut framer = Framer::new(shared.max_message_length);
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let mut batch = Batch::default();
        let mut bytes = 0;
        let mut received = Some(first);
        let mut datagrams = 0;
        while let Some(r) = received.take() {
            match r {
                Ok((n, peer)) => {
                    bytes += n;
                    datagrams += 1;
                    let ip = peer.ip().to_canonical();
                    if !labelers.contains_key(&ip) {
                        if labelers.len() >= 256 {
                            labelers.clear();
                        }
                        let hostname = shared.dns.lookup(ip).await;
                        let conn = Connection {
                            ip: ip.to_string(),
                            hostname: hostname.to_string(),
                        };
                        labelers.insert(ip, Labeler::new(shared.rules.clone(), conn));
                    }
                    let labeler = labelers.get_mut(&ip).expect("inserted above");
                    let now = now_nanos();
                    if n > shared.max_message_length {
                        shared.on_frame(labeler, Frame::Oversized(n), now, &mut batch);
                    } else {
                        framer.reset();
                        framer.feed(&buf[..n], true, &mut |frame| {
                            shared.on_frame(labeler, frame, now, &mut batch)
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(job = %shared.job, error = %e, "failed to read syslog datagram");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            if datagrams < DATAGRAMS_PER_BATCH {
                match socket.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    other => received = Some(other),
                }
            }
        }
        if !shared.send(batch, bytes, &tx).await {
            break;
        }
    }
}

/// Promtail's `SetReadBuffer(1 MiB)` on a UDP socket (GELF's too).
pub fn set_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = UDP_RECEIVE_BUFFER;
    // SAFETY: a valid socket descriptor and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot set the UDP receive buffer size");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::config::SyslogConfig;
    use crate::relabel::Relabeler;
    use crate::targets::Targets;

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_at_once_and_idle_ones_time_out() {
        let metrics = Metrics::new();
        let targets = Targets::new();
        let job: Arc<str> = "s".into();
        let config: SyslogConfig =
            serde_yaml_ng::from_str("listen_address: 127.0.0.1:0\nidle_timeout: 500ms").unwrap();
        let row = targets.listener_started("syslog", &job, "tcp://x".into(), BTreeMap::new());
        let rules = Arc::new(LabelRules {
            static_labels: [("job".to_owned(), "s".to_owned())].into(),
            relabeler: Relabeler::new(&[]).unwrap(),
            structured_data: false,
        });
        let shared = Arc::new(Shared::new(job, &config, rules, metrics.clone(), row));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve_tcp(listener, None, shared, tx, stop, 2));

        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        while metrics.syslog.connections.get() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0, "closed at once");
        assert!(started.elapsed() < Duration::from_millis(400));
        assert_eq!(metrics.syslog.connections_refused.get(), 1);

        // The two served connections go on; one sends, the other idles out.
        a.write_all(b"<13>1 - h app - - - hi\n").await.unwrap();
        let entries = rx.recv().await.unwrap();
        assert_eq!(entries[0].line, "hi");
        assert_eq!(b.read(&mut buf).await.unwrap_or(0), 0);
        let idle_for = started.elapsed();
        assert!(idle_for >= Duration::from_millis(400), "{idle_for:?}");
        // A slot is free again.
        while metrics.syslog.connections.get() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut d = TcpStream::connect(addr).await.unwrap();
        d.write_all(b"<13>1 - h app - - - again\n").await.unwrap();
        assert_eq!(rx.recv().await.unwrap()[0].line, "again");
        stop_tx.send(true).unwrap();
        server.await.unwrap();
        assert_eq!(metrics.syslog.connections.get(), 0);
    }
}
