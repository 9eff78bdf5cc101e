//! The GELF source: Promtail's `gelf` scrape config (compat reference §3.8), a UDP listener for Graylog
//! Extended Log Format messages, as Docker's `gelf` log driver and Graylog's libraries send them.
//!
//! * [`chunks`]: chunked messages reassembled per message id, bounded in count, bytes and time (5 s);
//! * [`message`]: gzip, zlib or plain payloads decoded as go-gelf does; the line is the message
//!   re-encoded as JSON, as Promtail ships it.
//!
//! Labels: the job's `labels`, then `__gelf_message_level` (the level's name: `informational`, `error`
//! …), `__gelf_message_host`, `__gelf_message_version`, `__gelf_message_facility` (each left out when
//! empty), relabeled per message (cached by their values), then `__*` removed; a message left without
//! labels is dropped and counted. The timestamp is the arrival time, or with `use_incoming_timestamp`
//! the message's `timestamp`. The receive loop sends a batch per burst of datagrams on a bounded
//! channel to this task, which runs the pipeline ([`Feed`]); while it is busy, the socket's 1 MiB
//! receive buffer holds what arrives, then the kernel drops datagrams (UDP has no backpressure).

pub mod chunks;
pub mod message;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::config::GelfConfig;
use crate::entry::{now_nanos, Entry, LabelSet, Labels};
use crate::metrics::{Escaped, JobReasonLabel};
use crate::relabel::Relabeler;
use crate::source::feed::NoLedger;
use crate::source::syslog::labels::Unlabeled;
use crate::source::SourceContext;
use crate::targets::listener::ListenerRow;
use chunks::{Datagram, Reassembler};
use message::GelfMessage;

const QUEUE: usize = 16;
const DATAGRAMS_PER_BATCH: usize = 64;
const BIND_RETRY: Duration = Duration::from_secs(2);
/// Label sets cached before the cache starts over.
const CACHE_MAX: usize = 256;

pub struct GelfSource {
    pub ctx: SourceContext,
    pub config: GelfConfig,
    pub relabeler: Relabeler,
    /// Bound when the agent started; `None` after a reload (the source binds, retrying).
    pub socket: Option<std::net::UdpSocket>,
}

impl std::ops::Deref for GelfSource {
    type Target = SourceContext;

    fn deref(&self) -> &SourceContext {
        &self.ctx
    }
}

impl GelfSource {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let address = crate::source::syslog::go_listen_address(&self.config.listen_address);
        let mut given = self.socket.take().map(|s| {
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s)
        });
        let socket = loop {
            let bound = match given.take() {
                Some(Ok(s)) => Ok(s),
                _ => UdpSocket::bind(address.as_ref()).await,
            };
            match bound {
                Ok(s) => break s,
                Err(e) => {
                    tracing::error!(job = %self.job, address = %self.config.listen_address, error = %e,
                        "cannot listen for GELF; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(BIND_RETRY) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        };
        let local = socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| self.config.listen_address.clone());
        tracing::info!(job = %self.job, address = %local, "gelf source receiving");
        let row = self.targets.listener_started(
            "gelf",
            &self.job,
            format!("udp://{local}"),
            self.config.labels.clone(),
        );
        let receiver = Receiver::new(&self, row);
        let (tx, rx) = mpsc::channel::<Vec<Entry>>(QUEUE);
        let server = tokio::spawn(receiver.run(socket, tx, stop.clone()));
        // The listeners stop with `stop`: what they read before that still goes out.
        self.ctx
            .feed(NoLedger)
            .stop_on(stop.clone())
            .pump(rx, stop)
            .await;
        let _ = server.await;
    }
}

/// The receive loop's state: reassembly, labels, counters.
struct Receiver {
    job: Arc<str>,
    use_incoming_timestamp: bool,
    static_labels: Labels,
    relabeler: Relabeler,
    metrics: Arc<crate::metrics::Metrics>,
    row: ListenerRow,
    reassembler: Reassembler,
    cache: HashMap<[String; 4], Result<Arc<LabelSet>, Unlabeled>>,
    incomplete: Counter,
    no_labels: Counter,
    logged: Mutex<std::collections::HashSet<&'static str>>,
}

impl Receiver {
    fn new(source: &GelfSource, row: ListenerRow) -> Self {
        let dropped = |reason: &str| {
            source
                .metrics
                .gelf
                .dropped
                .get_or_create(&JobReasonLabel {
                    job: Escaped(source.job.to_string()),
                    reason: reason.to_owned(),
                })
                .clone()
        };
        Receiver {
            job: source.job.clone(),
            use_incoming_timestamp: source.config.use_incoming_timestamp,
            static_labels: source.config.labels.clone().into_iter().collect(),
            relabeler: source.relabeler.clone(),
            metrics: source.metrics.clone(),
            row,
            reassembler: Reassembler::default(),
            cache: HashMap::new(),
            incomplete: dropped("incomplete"),
            no_labels: dropped("no_labels"),
            logged: Mutex::default(),
        }
    }

    fn first(&self, kind: &'static str) -> bool {
        self.logged.lock().unwrap().insert(kind)
    }

    async fn run(
        mut self,
        socket: UdpSocket,
        tx: mpsc::Sender<Vec<Entry>>,
        mut stop: watch::Receiver<bool>,
    ) {
        crate::source::syslog::listener::set_receive_buffer(&socket);
        let mut buf = vec![0u8; 65536];
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        loop {
            let first = tokio::select! {
                r = socket.recv_from(&mut buf) => Some(r),
                _ = expiry.tick() => None,
                _ = stop.wait_for(|s| *s) => break,
            };
            let now = Instant::now();
            let expired = self.reassembler.expire(now);
            self.count_incomplete(expired);
            let Some(mut received) = first else {
                continue;
            };
            let (mut entries, mut messages, mut bytes) = (Vec::new(), 0u64, 0usize);
            for _ in 0..DATAGRAMS_PER_BATCH {
                match received {
                    Ok((n, _peer)) => {
                        bytes += n;
                        if let Some(entry) = self.datagram(&buf[..n], now, &mut messages) {
                            entries.push(entry);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(job = %self.job, error = %e, "failed to read GELF datagram")
                    }
                }
                received = match socket.try_recv_from(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    other => other,
                };
            }
            if messages > 0 || bytes > 0 {
                self.row.received(messages, bytes as u64);
            }
            if entries.is_empty() {
                continue;
            }
            self.metrics.gelf.entries.inc_by(entries.len() as u64);
            if tx.send(entries).await.is_err() {
                break;
            }
        }
    }

    fn count_incomplete(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.incomplete.inc_by(n);
        if self.first("incomplete") {
            tracing::warn!(job = %self.job,
                "chunked GELF messages given up incomplete (chunks missing after 5s, or too many pending); \
                 counted in logferry_gelf_messages_dropped_total{{reason=\"incomplete\"}} (logged once)");
        }
    }

    /// One datagram: an entry when it completes a message.
    fn datagram(&mut self, data: &[u8], now: Instant, messages: &mut u64) -> Option<Entry> {
        let mut gave_up = 0;
        let pushed = self.reassembler.push(data, now, &mut gave_up);
        self.count_incomplete(gave_up);
        let payload = match pushed {
            Datagram::Complete(p) => p,
            Datagram::Pending => return None,
            Datagram::Invalid(why) => {
                self.parse_error(why);
                return None;
            }
        };
        *messages += 1;
        let m = match message::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                self.parse_error(e.as_str());
                return None;
            }
        };
        let labels = match self.labels(&m) {
            Ok(l) => l,
            Err(Unlabeled::Dropped) => return None,
            Err(Unlabeled::Empty) => {
                self.no_labels.inc();
                if self.first("no_labels") {
                    tracing::warn!(job = %self.job,
                        "GELF messages have no labels after relabeling and are dropped (Loki refuses \
                         them); add `labels` or a relabel rule, e.g. source_labels: \
                         [__gelf_message_host], target_label: host");
                }
                return None;
            }
        };
        let timestamp = match m.timestamp_ns() {
            Some(t) if self.use_incoming_timestamp => t,
            _ => now_nanos(),
        };
        Some(Entry {
            timestamp,
            line: m.to_json(),
            labels,
            metadata: Vec::new(),
            extracted: None,
        })
    }

    fn parse_error(&self, why: &'static str) {
        self.metrics.gelf.parsing_errors.inc();
        if self.first(why) {
            tracing::warn!(job = %self.job, error = why,
                "error while reading GELF message; dropped (counted in \
                 promtail_gelf_target_parsing_errors_total; logged once per kind)");
        }
    }

    fn labels(&mut self, m: &GelfMessage) -> Result<Arc<LabelSet>, Unlabeled> {
        let key = [
            m.level_name().to_owned(),
            m.host.clone(),
            m.version.clone(),
            m.facility.clone(),
        ];
        if let Some(hit) = self.cache.get(&key) {
            return hit.clone();
        }
        let mut labels: BTreeMap<String, String> = self.static_labels.clone();
        let names = [
            "__gelf_message_level",
            "__gelf_message_host",
            "__gelf_message_version",
            "__gelf_message_facility",
        ];
        for (name, value) in names.iter().zip(&key) {
            // Prometheus' label builder deletes a label set to "".
            if value.is_empty() {
                labels.remove(*name);
            } else {
                labels.insert((*name).to_owned(), value.clone());
            }
        }
        let result = if !self.relabeler.process(&mut labels) {
            Err(Unlabeled::Dropped)
        } else {
            labels.retain(|k, _| !k.starts_with("__"));
            if labels.is_empty() {
                Err(Unlabeled::Empty)
            } else {
                Ok(LabelSet::new(labels))
            }
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, result.clone());
        result
    }
}
