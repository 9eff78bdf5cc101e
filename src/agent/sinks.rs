//! Sinks: what each `clients[]` (Loki) and `elasticsearch[]` block becomes (a codec and a protocol on
//! the sink core: batcher, disk or memory buffer, sender), and the running instance of a sink.
//!
//! A config reload retires a sink whose block changed or went away ([`RunningSink::retire`]): the
//! router stops sending to it, its batcher encodes the batches still on their way into the buffer, the
//! sender finishes the request it is sending, and what it had not sent stays in the buffer directory, which the sink's new
//! instance (same name, same directory) opens once the old one has closed it and sends first.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::buffer::{self, deadletter::DeadLetter, BufferSettings};
use crate::config::{
    redact_url, BufferConfig, BufferType, ClientConfig, Config, ElasticsearchConfig, LimitsConfig,
    OtlpSinkConfig,
};
use crate::delivery::{Outgoing, Route};
use crate::metrics::Metrics;
use crate::sink::core::{Batcher, Codec, Limits, Parts, Protocol, Sender};
use crate::sink::elasticsearch::{codec::EsCodec, config::EsSettings, protocol::EsProtocol};
use crate::sink::loki::config::{sink_name, LokiSettings};
use crate::sink::loki::{codec::LokiCodec, protocol::LokiProtocol};
use crate::sink::otlp::{codec::OtlpCodec, config::OtlpSettings, protocol::OtlpProtocol};
use crate::sink::stdout;
use crate::stage::filtering::selector::Selector;

/// Batches a sink may have queued before the router waits (each is one read chunk, ≤ 512 KiB).
const SINK_QUEUE: usize = 4;

/// Requests the buffer's reader may have handed the sender ahead of the one being sent: one, since
/// the sender sends one at a time and each holds up to `batchsize` (memory, not speed, is at stake).
const SENDER_QUEUE: usize = 1;

type SinkFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a reload compares to tell whether a sink must restart.
#[derive(Clone, PartialEq)]
pub(super) enum SinkSpec {
    Stdout,
    /// A Loki client, and the line limits it applies.
    Loki(Box<ClientConfig>, Box<LimitsConfig>),
    Elasticsearch(Box<ElasticsearchConfig>),
    Otlp(Box<OtlpSinkConfig>),
}

/// A sink built from its config (every setting checked), not started yet.
pub(super) struct SinkPlan {
    pub name: String,
    pub spec: SinkSpec,
    selector: Option<Arc<Selector>>,
    buffer: Option<BufferSettings>,
    runner: Runner,
    /// Where it sends, for the log (credentials removed).
    to: String,
}

impl SinkPlan {
    pub fn has_disk_buffer(&self) -> bool {
        self.buffer.is_some()
    }
}

enum Runner {
    Stdout(stdout::Format),
    /// An HTTP sink on the sink core.
    Http(Parts),
}

/// What an HTTP sink's plan needs besides its codec and protocol.
struct HttpSink<'a> {
    name: String,
    buffer: &'a BufferConfig,
    /// Where it sends, for the log.
    to: String,
    limits: Limits,
    spec: SinkSpec,
    selector: Option<Arc<Selector>>,
}

impl HttpSink<'_> {
    /// The plan: a batcher and a sender, `codec` twice (the sender's encodes buffer records of
    /// entries left by an earlier release), `protocol`, dead letters and the disk buffer in the sink's
    /// buffer directory.
    fn plan<C: Codec, P: Protocol>(
        self,
        codec: impl Fn() -> C,
        protocol: P,
        cfg: &Config,
        memory_only: bool,
        metrics: &Arc<Metrics>,
    ) -> SinkPlan {
        let HttpSink {
            name,
            buffer,
            to,
            limits,
            spec,
            selector,
        } = self;
        let dir = sink_buffer_dir(buffer, cfg, &name);
        let dead_letter = DeadLetter::new(&dir, buffer.dead_letter_max_size.get());
        let sender = Sender::new(protocol, Batcher::new(codec(), limits), metrics.clone())
            .with_dead_letter(dead_letter, &name);
        let parts = Parts::new(Batcher::new(codec(), limits), sender);
        SinkPlan {
            buffer: disk_buffer(buffer, memory_only, &name, dir),
            name,
            spec,
            selector,
            runner: Runner::Http(parts),
            to,
        }
    }
}

/// Every sink of `cfg`, built and checked: to stdout, printed so, when `to_stdout` is set; with memory buffers only when
/// `memory_only` (`-stdin`).
pub(super) fn plan_sinks(
    cfg: &Config,
    to_stdout: Option<stdout::Format>,
    memory_only: bool,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<SinkPlan>> {
    if let Some(format) = to_stdout {
        return Ok(vec![SinkPlan {
            name: "stdout".into(),
            spec: SinkSpec::Stdout,
            selector: None,
            buffer: None,
            runner: Runner::Stdout(format),
            to: "stdout".into(),
        }]);
    }
    let loki = cfg.clients.iter().enumerate().map(|(i, c)| {
        plan_loki(c, cfg, memory_only, metrics).with_context(|| format!("clients[{i}]"))
    });
    let es = cfg.elasticsearch.iter().enumerate().map(|(i, c)| {
        plan_elasticsearch(c, cfg, memory_only, metrics)
            .with_context(|| format!("elasticsearch[{i}]"))
    });
    let otlp = cfg.otlp.iter().enumerate().map(|(i, c)| {
        plan_otlp(c, cfg, memory_only, metrics).with_context(|| format!("otlp[{i}]"))
    });
    loki.chain(es).chain(otlp).collect()
}

/// An `otlp[]` block: buffered as Loki clients are.
fn plan_otlp(
    c: &OtlpSinkConfig,
    cfg: &Config,
    memory_only: bool,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<SinkPlan> {
    let settings = OtlpSettings::from_config(c).map_err(anyhow::Error::msg)?;
    let sink = HttpSink {
        name: settings.name.clone(),
        buffer: &c.buffer,
        to: format!("OTLP {}", redact_url(&settings.url)),
        limits: Limits {
            bytes: settings.batch_size,
            entries: usize::MAX,
            wait: settings.batch_wait,
        },
        spec: SinkSpec::Otlp(Box::new(c.clone())),
        selector: None,
    };
    let protocol =
        OtlpProtocol::new(settings.clone(), metrics.clone()).map_err(anyhow::Error::msg)?;
    let codec = || OtlpCodec::new(&settings);
    Ok(sink.plan(codec, protocol, cfg, memory_only, metrics))
}

fn plan_loki(
    c: &ClientConfig,
    cfg: &Config,
    memory_only: bool,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<SinkPlan> {
    let settings = LokiSettings::from_config(c, &cfg.limits_config).map_err(anyhow::Error::msg)?;
    let sink = HttpSink {
        name: sink_name(c),
        buffer: &c.buffer,
        to: format!("Loki {}", redact_url(&settings.url)),
        limits: Limits {
            bytes: settings.batch_size,
            entries: usize::MAX,
            wait: settings.batch_wait,
        },
        spec: SinkSpec::Loki(Box::new(c.clone()), Box::new(cfg.limits_config.clone())),
        selector: None,
    };
    let protocol =
        LokiProtocol::new(settings.clone(), metrics.clone()).map_err(anyhow::Error::msg)?;
    let codec = || LokiCodec::new(settings.clone(), metrics.clone());
    Ok(sink.plan(codec, protocol, cfg, memory_only, metrics))
}

/// An `elasticsearch[]` block: buffered as Loki clients are; its selector picks the entries it gets.
fn plan_elasticsearch(
    c: &ElasticsearchConfig,
    cfg: &Config,
    memory_only: bool,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<SinkPlan> {
    let settings = EsSettings::from_config(c).map_err(anyhow::Error::msg)?;
    let selector = if c.selector.is_empty() {
        None
    } else {
        let selector = Selector::parse(&c.selector).map_err(anyhow::Error::msg)?;
        Some(Arc::new(selector))
    };
    let endpoints: Vec<_> = settings.endpoints.iter().map(|e| redact_url(e)).collect();
    let sink = HttpSink {
        name: settings.name.clone(),
        buffer: &c.buffer,
        to: format!("Elasticsearch {}", endpoints.join(",")),
        limits: Limits {
            bytes: settings.batch_size,
            entries: settings.batch_entries,
            wait: settings.batch_wait,
        },
        spec: SinkSpec::Elasticsearch(Box::new(c.clone())),
        selector,
    };
    let codec = || EsCodec::new(&settings);
    let protocol =
        EsProtocol::new(settings.clone(), metrics.clone()).map_err(anyhow::Error::msg)?;
    Ok(sink.plan(codec, protocol, cfg, memory_only, metrics))
}

/// A sink at work.
pub(super) struct RunningSink {
    pub name: String,
    pub spec: SinkSpec,
    /// How the router reaches it.
    pub route: Route,
    disk: bool,
    abort: watch::Sender<bool>,
    retire: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningSink {
    /// Start `plan`'s sink and buffer. With `after` (the previous instance of a sink with a disk
    /// buffer, retiring), the buffer opens once that has ended: the directory is the same.
    pub fn start(
        plan: SinkPlan,
        metrics: &Arc<Metrics>,
        after: Option<JoinHandle<()>>,
    ) -> anyhow::Result<Self> {
        let (abort, abort_rx) = watch::channel(false);
        let (retire, retire_rx) = watch::channel(false);
        let (input, input_rx) = mpsc::channel(SINK_QUEUE);
        let buffer = match &plan.buffer {
            Some(b) => b.dir.display().to_string(),
            None => "memory".into(),
        };
        tracing::info!(sink = %plan.name, to = %plan.to, buffer = %buffer, "sink started");
        let running = |task, disk| RunningSink {
            name: plan.name,
            spec: plan.spec,
            route: Route {
                sink: input,
                selector: plan.selector,
            },
            disk,
            abort,
            retire,
            task,
        };
        let parts = match plan.runner {
            Runner::Stdout(format) => {
                return Ok(running(tokio::spawn(stdout::run(input_rx, format)), false))
            }
            Runner::Http(parts) => parts,
        };
        let (requests, requests_rx) = buffer::input();
        let batcher = (parts.batcher)(input_rx, requests);
        let Some(settings) = plan.buffer else {
            // A memory buffer: the batcher hands its requests straight to the sender.
            let sender = (parts.sender)(requests_rx, abort_rx);
            return Ok(running(
                tokio::spawn(join_all(vec![batcher, sender])),
                false,
            ));
        };
        let (to_send, to_send_rx) = mpsc::channel(SENDER_QUEUE);
        let sender = (parts.sender)(to_send_rx, abort_rx.clone());
        let metrics = metrics.clone();
        let task = match after {
            None => {
                let dir = settings.dir.display().to_string();
                let b = buffer::start(settings, metrics, requests_rx, to_send, abort_rx, retire_rx)
                    .with_context(|| format!("cannot open the buffer in {dir}"))?;
                tokio::spawn(join_all(vec![batcher, sender, b.reader, b.writer_done]))
            }
            Some(previous) => tokio::spawn(async move {
                let _ = previous.await;
                let dir = settings.dir.display().to_string();
                let name = settings.name.clone();
                let started = match buffer::open(settings, metrics) {
                    Ok(opened) => opened.start(requests_rx, to_send, abort_rx, retire_rx),
                    Err(e) => {
                        // Nothing is lost: requests go to the sender unbuffered, acked when accepted.
                        tracing::error!(sink = %name, dir, error = %e,
                            "cannot open the buffer again after a reload; sending without it");
                        let forward = Box::pin(forward(requests_rx, to_send));
                        join_all(vec![batcher, sender, forward]).await;
                        return;
                    }
                };
                match started {
                    Ok(b) => join_all(vec![batcher, sender, b.reader, b.writer_done]).await,
                    Err(e) => tracing::error!(sink = %name, dir, error = %e,
                        "cannot start the buffer's writer after a reload; the sink stops"),
                }
            }),
        };
        Ok(running(task, true))
    }

    pub fn has_disk_buffer(&self) -> bool {
        self.disk
    }

    /// Stop the sink (a reload removed or changed it; the router no longer sends to it). With a disk
    /// buffer it finishes the push it is sending within `grace`, and the rest stays on disk; with a
    /// memory buffer it sends everything it holds, until `shutdown` at the latest. The handle ends when
    /// the sink has. If it gave up at `grace`, the batches it had not stored yet were dropped
    /// unacknowledged: its name goes to `gave_up`, so that the jobs read them again.
    pub fn retire(
        self,
        grace: Duration,
        mut shutdown: watch::Receiver<bool>,
        gave_up: mpsc::UnboundedSender<String>,
    ) -> JoinHandle<()> {
        let RunningSink {
            name,
            route,
            disk,
            abort,
            retire,
            mut task,
            ..
        } = self;
        drop(route);
        let _ = retire.send(true);
        tokio::spawn(async move {
            let give_up = async {
                if disk {
                    tokio::time::sleep(grace).await
                } else {
                    std::future::pending().await
                }
            };
            let gave_up_at_grace = tokio::select! {
                _ = &mut task => return,
                _ = give_up => {
                    tracing::warn!(sink = %name,
                        "reload: the sink's previous instance did not finish its push in time; stopping it \
                         (what it did not send stays in its buffer for the new instance)");
                    true
                }
                _ = shutdown.wait_for(|s| *s) => false,
            };
            let _ = abort.send(true);
            let _ = task.await;
            if gave_up_at_grace {
                let _ = gave_up.send(name);
            }
        })
    }

    /// Close the sink's input (the agent is stopping): it flushes what it holds and ends. Returns
    /// what makes it give up (`true`) and its task.
    pub fn close(self) -> (watch::Sender<bool>, JoinHandle<()>) {
        (self.abort, self.task)
    }
}

/// Run `parts` on their own tasks (they work in parallel) until all have ended. Cancelled, it
/// cancels them.
async fn join_all(parts: Vec<SinkFuture>) {
    let mut set = JoinSet::new();
    for p in parts {
        set.spawn(p);
    }
    while set.join_next().await.is_some() {}
}

async fn forward(mut input: mpsc::Receiver<Outgoing>, sink: mpsc::Sender<Outgoing>) {
    while let Some(d) = input.recv().await {
        if sink.send(d).await.is_err() {
            return;
        }
    }
}

fn buffer_root(cfg: &Config) -> std::path::PathBuf {
    let positions = std::path::Path::new(&cfg.positions.filename);
    positions
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("buffer")
}

fn sink_buffer_dir(b: &BufferConfig, cfg: &Config, name: &str) -> std::path::PathBuf {
    if b.path.is_empty() {
        buffer_root(cfg).join(name)
    } else {
        b.path.clone().into()
    }
}

/// The disk buffer a sink's `buffer` block asks for; `None` for a memory buffer (or `-stdin`).
fn disk_buffer(
    b: &BufferConfig,
    memory_only: bool,
    name: &str,
    dir: std::path::PathBuf,
) -> Option<BufferSettings> {
    if b.r#type != BufferType::Disk || memory_only {
        return None;
    }
    Some(BufferSettings {
        name: name.to_owned(),
        dir,
        max_size: b.max_size.get(),
        segment_size: b.segment_size.get(),
        fsync: b.fsync,
        fsync_interval: b.fsync_interval.get(),
        when_full: b.when_full,
    })
}

/// Buffers under the default root that no configured client uses any more still hold unsent data
/// (a client renamed or its URL changed): say so once, rather than forget it silently.
pub(super) fn warn_orphaned_buffers(cfg: &Config) {
    let es = cfg.elasticsearch.iter().map(|c| {
        sink_buffer_dir(
            &c.buffer,
            cfg,
            &crate::sink::elasticsearch::config::sink_name(c),
        )
    });
    let otlp = cfg
        .otlp
        .iter()
        .map(|c| sink_buffer_dir(&c.buffer, cfg, &crate::sink::otlp::config::sink_name(c)));
    let used: HashSet<std::path::PathBuf> = cfg
        .clients
        .iter()
        .map(|c| sink_buffer_dir(&c.buffer, cfg, &sink_name(c)))
        .chain(es)
        .chain(otlp)
        .collect();
    let Ok(dirs) = std::fs::read_dir(buffer_root(cfg)) else {
        return;
    };
    for d in dirs.flatten() {
        let path = d.path();
        if used.contains(&path) || !path.is_dir() {
            continue;
        }
        let bytes: u64 = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "seg"))
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        if bytes > 0 {
            tracing::warn!(dir = %path.display(), bytes,
                "a buffer no configured client uses holds unsent data (client renamed or its URL changed?); \
                 set that client's buffer.path to it to send it, or delete the directory");
        }
    }
}
