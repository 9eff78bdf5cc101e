//! The syslog source: Promtail's `syslog` scrape config (compat reference §3.5), a TCP (optionally
//! TLS, RFC 5425) or UDP listener for RFC 5424 or RFC 3164 messages.
//!
//! * [`framing`]: octet counting or one message per line, from a connection's first byte (RFC 6587);
//!   over-long messages and garbage are skipped and counted, never buffered;
//! * [`message`]: the RFC 5424 / RFC 3164 parser, drawing the line between a message and a parse error
//!   where Promtail's go-syslog does;
//! * [`labels`]: `__syslog_*` meta labels, static `labels`, `relabel_configs` per message (cached);
//! * [`listener`]: the sockets, one task per TCP connection, idle timeout and connection cap;
//! * [`dns`]: `__syslog_connection_hostname` by cached reverse lookup; [`tls`]: the TLS listener.
//!
//! The listener tasks send batches (one per read or burst of datagrams) on a bounded channel to this
//! task, which runs the pipeline and hands them to the router ([`Feed`]). Syslog has no position to
//! resume from: what a sender sent while the agent was down is the sender's to keep (rsyslog's queues)
//! or lost, as with Promtail. Each message's line is its MSG part (or the whole re-serialized RFC 5424
//! message with `use_rfc5424_message`); its timestamp the time it arrived, or its own with
//! `use_incoming_timestamp`.
//!
//! ## Why a parser of our own
//! `syslog_loose` (0.23, MIT, the parser Vector uses) was considered: it is built to accept anything
//! (it guesses RFC 5424 or 3164 per message and keeps what it can), which is not Promtail's behaviour,
//! where go-syslog refuses a malformed message (and Promtail counts and drops it) and the format is the
//! listener's. Its RFC 3164 hostname/tag split and its year guessing also differ from go-syslog's, so
//! the labels would differ, and it would bring chrono and nom to a tree that has jiff. The two grammars
//! Promtail accepts fit in [`message`] with their tests.

pub mod dns;
pub mod framing;
pub mod labels;
pub mod listener;
pub mod message;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::config::SyslogConfig;
use crate::entry::Entry;
use crate::relabel::Relabeler;
use crate::source::feed::NoLedger;
use crate::source::SourceContext;
use labels::LabelRules;
use listener::Shared;

/// Batches the listeners may have ready before they wait for the pipeline.
const QUEUE: usize = 16;
/// After a failed bind (a reload while the previous listener still closes), retry this often.
const BIND_RETRY: Duration = Duration::from_secs(2);

pub struct SyslogSource {
    pub ctx: SourceContext,
    pub config: SyslogConfig,
    pub relabeler: Relabeler,
    /// Bound when the agent started; `None` after a reload (the source binds, retrying).
    pub socket: Option<StdSocket>,
}

impl std::ops::Deref for SyslogSource {
    type Target = SourceContext;

    fn deref(&self) -> &SourceContext {
        &self.ctx
    }
}

/// A socket bound before the runtime takes it (at the agent's start).
pub enum StdSocket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// Bind `address` for the protocol, blocking (the agent's start).
pub fn bind_std(address: &str, udp: bool) -> std::io::Result<StdSocket> {
    let address = go_listen_address(address);
    if udp {
        std::net::UdpSocket::bind(address.as_ref()).map(StdSocket::Udp)
    } else {
        std::net::TcpListener::bind(address.as_ref()).map(StdSocket::Tcp)
    }
}

impl StdSocket {
    fn into_tokio(self) -> std::io::Result<Bound> {
        match self {
            StdSocket::Tcp(l) => {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l).map(Bound::Tcp)
            }
            StdSocket::Udp(s) => {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s).map(Bound::Udp)
            }
        }
    }
}

/// A bound socket of the configured protocol.
pub enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Bound::Tcp(l) => l.local_addr(),
            Bound::Udp(s) => s.local_addr(),
        }
    }
}

/// Bind `address` (`host:port`, `:port` for every address, as Go reads it) for `protocol`.
pub async fn bind(address: &str, udp: bool) -> std::io::Result<Bound> {
    let address = go_listen_address(address);
    if udp {
        UdpSocket::bind(address.as_ref()).await.map(Bound::Udp)
    } else {
        TcpListener::bind(address.as_ref()).await.map(Bound::Tcp)
    }
}

/// Go's `net.Listen` takes `:1514` for every address; Rust wants a host.
pub fn go_listen_address(address: &str) -> std::borrow::Cow<'_, str> {
    if address.starts_with(':') {
        format!("0.0.0.0{address}").into()
    } else {
        address.into()
    }
}

impl SyslogSource {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let tls = match self
            .config
            .tls_config
            .as_ref()
            .filter(|_| self.config.tls_enabled())
        {
            Some(t) => match tls::server_config(t) {
                Ok(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
                Err(e) => {
                    tracing::error!(job = %self.job, error = %e, "syslog job not started: its tls_config cannot be used");
                    return;
                }
            },
            None => None,
        };
        let mut given = self.socket.take().map(StdSocket::into_tokio);
        let bound = loop {
            let bound = match given.take() {
                Some(Ok(b)) => Ok(b),
                _ => bind(&self.config.listen_address, self.config.is_udp()).await,
            };
            match bound {
                Ok(b) => break b,
                Err(e) => {
                    tracing::error!(job = %self.job, address = %self.config.listen_address, error = %e,
                        "cannot listen for syslog; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(BIND_RETRY) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        };
        let local = bound
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| self.config.listen_address.clone());
        let scheme = match (&bound, &tls) {
            (Bound::Udp(_), _) => "udp",
            (Bound::Tcp(_), Some(_)) => "tls",
            (Bound::Tcp(_), None) => "tcp",
        };
        tracing::info!(job = %self.job, address = %local, protocol = scheme,
            format = %self.config.syslog_format, "syslog source receiving");
        let row = self.targets.listener_started(
            "syslog",
            &self.job,
            format!("{scheme}://{local}"),
            self.config.labels.clone(),
        );
        let rules = Arc::new(LabelRules {
            static_labels: self.config.labels.clone().into_iter().collect(),
            relabeler: self.relabeler.clone(),
            structured_data: self.config.label_structured_data,
        });
        let shared = Arc::new(Shared::new(
            self.job.clone(),
            &self.config,
            rules,
            self.metrics.clone(),
            row,
        ));
        let (tx, rx) = mpsc::channel::<Vec<Entry>>(QUEUE);
        let server = match bound {
            Bound::Tcp(l) => tokio::spawn(listener::serve_tcp(
                l,
                tls,
                shared,
                tx,
                stop.clone(),
                listener::MAX_CONNECTIONS,
            )),
            Bound::Udp(s) => tokio::spawn(listener::serve_udp(s, shared, tx, stop.clone())),
        };
        // The listeners stop with `stop`: what they read before that still goes out.
        self.ctx
            .feed(NoLedger)
            .stop_on(stop.clone())
            .pump(rx, stop)
            .await;
        let _ = server.await;
    }
}
