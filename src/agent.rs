//! Wiring: builds the sources, the router, the sinks and the HTTP server from a [`Config`], runs them,
//! and shuts them down in the order the delivery contract needs (DESIGN.md):
//!
//! 1. SIGTERM/SIGINT: sources stop reading (nothing new enters);
//! 2. the router is dropped, so every sink sees the end of its input and flushes what it holds, with
//!    retries, until `server.graceful_shutdown_timeout`; past it, retrying stops and what was not
//!    accepted stays unacknowledged (read again after the restart: duplicates possible, loss not);
//! 3. the positions, which hold acknowledged offsets only, are written one last time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ack::Delivery;
use crate::buffer::{self, deadletter::DeadLetter, BufferSettings};
use crate::config::{
    BufferConfig, BufferType, ClientConfig, Config, DockerSdConfig, ElasticsearchConfig,
    JournalConfig, ScrapeConfig, SourceKind,
};
use crate::entry::Labels;
use crate::metrics::Metrics;
use crate::positions::{Positions, PositionsError};
use crate::relabel::Relabeler;
use crate::server::{self, ServerState};
use crate::sink::elasticsearch::{config::EsSettings, sink::EsSink};
use crate::sink::loki::config::{Auth, LokiSettings, TlsSettings};
use crate::sink::loki::sink::LokiSink;
use crate::sink::router::Route;
use crate::sink::{stdout, Router};
use crate::source::docker::{Daemon, DockerSource, JobContext as DockerContext, SOFT_LINE_LIMIT};
use crate::source::file::glob::PathGlob;
use crate::source::file::reader::{LineLimit, HARD_LINE_LIMIT};
use crate::source::file::tailer::JobContext;
use crate::source::file::{Claims, FileSource, FileTarget};
use crate::source::journal::{self, JournalSource};
use crate::source::stdin::StdinSource;
use crate::stage::filtering::selector::Selector;
use crate::stage::{BuildContext, PipelineSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// Entries go to stdout; positions are read, never written.
    DryRun,
}

pub struct Options {
    pub mode: Mode,
    /// Running the embedded default config (no -config.file).
    pub default_config: bool,
    pub print_config: bool,
    /// Read lines from stdin instead of the scrape configs (`-stdin`).
    pub stdin: bool,
}

/// Batches a sink may have queued before the router waits (each is one read chunk, ≤ 512 KiB).
const SINK_QUEUE: usize = 4;

/// Positions are written this soon after a batch became safe in every sink (and at least every
/// `positions.sync_period`), so a crash re-reads at most this much more than the batches in flight.
const SAVE_AFTER_COMMIT: Duration = Duration::from_millis(50);

/// `check-config`: everything a start would check, without starting anything.
pub fn check(paths: &str, expand_env: bool) -> anyhow::Result<()> {
    let cfg = crate::config::load_first_existing(paths, expand_env)?;
    check_limits(&cfg)?;
    let metrics = Metrics::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        build_job(i, sc, &cfg, &metrics)?;
    }
    for (i, c) in cfg.clients.iter().enumerate() {
        loki_settings(c, &cfg).with_context(|| format!("clients[{i}]"))?;
    }
    for (i, c) in cfg.elasticsearch.iter().enumerate() {
        EsSettings::from_config(c).map_err(|e| anyhow::anyhow!("elasticsearch[{i}]: {e}"))?;
    }
    Ok(())
}

/// Limits logferry does not enforce yet are refused rather than silently ignored.
fn check_limits(cfg: &Config) -> anyhow::Result<()> {
    let limits = &cfg.limits_config;
    let refuse = |path: &str, what: &str| {
        let msg = format!("{what} is not supported yet by this version of logferry");
        Err(cfg.error_at(path, msg).into())
    };
    if limits.readline_rate_enabled {
        return refuse(
            "limits_config.readline_rate_enabled",
            "the global readline rate limit",
        );
    }
    if limits.max_streams > 0 {
        return refuse("limits_config.max_streams", "max_streams");
    }
    Ok(())
}

/// What one scrape config becomes: its targets and its pipeline.
struct Job {
    index: usize,
    name: Arc<str>,
    source: JobSource,
    pipeline: PipelineSpec,
}

enum JobSource {
    Files(Vec<FileTarget>),
    /// Relabeled per entry, by the source.
    Journal {
        config: JournalConfig,
        relabeler: Relabeler,
    },
    /// Relabeled per container and stream, by the source.
    Docker(DockerJob),
}

/// A job's relabel rules; an invalid one is placed in the file.
fn job_relabeler(index: usize, sc: &ScrapeConfig, cfg: &Config) -> anyhow::Result<Relabeler> {
    Relabeler::new(&sc.relabel_configs).map_err(|e| {
        let path = format!("scrape_configs[{index}].relabel_configs");
        cfg.error_at(&path, format!("{e} (job {:?})", sc.job_name))
            .into()
    })
}

fn build_job(
    index: usize,
    sc: &ScrapeConfig,
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Job> {
    let here = format!("scrape_configs[{index}]");
    let fail =
        |path: &str, msg: String| cfg.error_at(path, format!("{msg} (job {:?})", sc.job_name));
    match sc.source_kind() {
        Some(SourceKind::File) if !sc.static_configs.is_empty() => {}
        Some(SourceKind::Journal) => return journal_job(index, sc, cfg, metrics),
        Some(SourceKind::File) => {
            let msg = "only static_configs file targets are supported yet by this version of \
                       logferry (file_sd_configs and the other service discoveries are not)";
            return Err(fail(&here, msg.into()).into());
        }
        Some(SourceKind::Docker) => return build_docker_job(index, sc, cfg, metrics),
        Some(kind) => {
            let msg = format!("the {kind} source is not supported yet by this version of logferry");
            return Err(fail(&format!("{here}.{}", kind.key()), msg).into());
        }
        None => return Err(fail(&here, "no valid target scrape config defined".into()).into()),
    }
    let not_yet = |path: &str, what: &str| {
        let msg = format!("{what} is not supported yet by this version of logferry");
        Err(fail(&format!("{here}.{path}"), msg).into())
    };
    if sc.decompression.enabled {
        return not_yet("decompression", "reading compressed files");
    }
    let encoding = sc.encoding.to_ascii_lowercase().replace('_', "-");
    if !encoding.is_empty() && encoding != "utf-8" && encoding != "utf8" {
        return not_yet("encoding", "a file encoding other than UTF-8");
    }
    let relabeler = job_relabeler(index, sc, cfg)?;
    let pipeline = build_pipeline(cfg, index, sc, metrics)?;
    let mut targets = Vec::new();
    for stat in &sc.static_configs {
        let addresses: Vec<String> = if stat.targets.is_empty() {
            vec!["localhost".into()]
        } else {
            stat.targets.clone()
        };
        for address in addresses {
            let mut labels: Labels = stat.labels.clone().into_iter().collect();
            labels.insert("__address__".into(), address);
            if !relabeler.process(&mut labels) {
                continue;
            }
            if let Some(host) = labels.get("__host__") {
                if *host != hostname() {
                    continue;
                }
            }
            let Some(path) = labels.get("__path__").cloned() else {
                tracing::warn!(job = %sc.job_name, "target has no __path__ label; skipped");
                continue;
            };
            let exclude = labels.get("__path_exclude__").cloned();
            let glob = PathGlob::new(&path, exclude.as_deref())
                .map_err(|e| fail(&format!("{here}.static_configs"), e))?;
            labels.retain(|k, _| !k.starts_with("__"));
            targets.push(FileTarget { glob, labels });
        }
    }
    Ok(Job {
        index,
        name: sc.job_name.as_str().into(),
        source: JobSource::Files(targets),
        pipeline,
    })
}

fn journal_job(
    index: usize,
    sc: &ScrapeConfig,
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Job> {
    let relabeler = job_relabeler(index, sc, cfg)?;
    Ok(Job {
        index,
        name: sc.job_name.as_str().into(),
        source: JobSource::Journal {
            config: sc.journal.clone().unwrap_or_default(),
            relabeler,
        },
        pipeline: build_pipeline(cfg, index, sc, metrics)?,
    })
}

// ---- Docker jobs (src/source/docker) -------------------------------------------------------------------

struct DockerJob {
    daemons: Vec<DockerSdConfig>,
    relabeler: Relabeler,
}

/// A `docker_sd_configs` job. Its relabel rules run per container and stream, not here; the HTTP client
/// settings Promtail has for http(s) daemons are refused until they are implemented.
fn build_docker_job(
    index: usize,
    sc: &ScrapeConfig,
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Job> {
    let here = format!("scrape_configs[{index}]");
    let fail =
        |path: &str, msg: String| cfg.error_at(path, format!("{msg} (job {:?})", sc.job_name));
    for (i, sd) in sc.docker_sd_configs.iter().enumerate() {
        let at = format!("{here}.docker_sd_configs[{i}]");
        let unsupported = [
            (
                sd.host.starts_with("https://"),
                "host",
                "an https:// Docker host",
            ),
            (
                sd.host.starts_with("npipe://"),
                "host",
                "a Windows named pipe",
            ),
            (sd.basic_auth.is_some(), "basic_auth", "basic_auth"),
            (
                sd.effective_authorization().is_some(),
                "authorization",
                "authorization",
            ),
            (sd.oauth2.is_some(), "oauth2", "oauth2"),
            (sd.tls_config.is_some(), "tls_config", "tls_config"),
            (sd.proxy_url.is_some(), "proxy_url", "proxy_url"),
            (sd.http_headers.is_some(), "http_headers", "http_headers"),
        ];
        if let Some((_, key, what)) = unsupported.iter().find(|(used, _, _)| *used) {
            let msg = format!(
                "{what} for docker_sd_configs is not supported yet by this version of logferry"
            );
            return Err(fail(&format!("{at}.{key}"), msg).into());
        }
    }
    let relabeler = job_relabeler(index, sc, cfg)?;
    Ok(Job {
        index,
        name: sc.job_name.as_str().into(),
        source: JobSource::Docker(DockerJob {
            daemons: sc.docker_sd_configs.clone(),
            relabeler,
        }),
        pipeline: build_pipeline(cfg, index, sc, metrics)?,
    })
}

/// Start a Docker job's sources, one per daemon.
fn spawn_docker_job(
    sources: &mut JoinSet<()>,
    name: Arc<str>,
    pipeline: PipelineSpec,
    docker: DockerJob,
    shared: &DockerShared,
    stop: &watch::Receiver<bool>,
) {
    let ctx = Arc::new(DockerContext {
        job: name,
        router: shared.router.clone(),
        positions: shared.positions.clone(),
        metrics: shared.metrics.clone(),
        pipeline,
        relabeler: docker.relabeler,
        line_limit: shared.line_limit,
    });
    for sd in &docker.daemons {
        let source = DockerSource {
            ctx: ctx.clone(),
            daemon: Daemon::new(sd, shared.one_daemon),
        };
        sources.spawn(source.run(stop.clone()));
    }
}

/// What every Docker job of the agent shares.
struct DockerShared {
    router: Router,
    positions: Positions,
    metrics: Arc<Metrics>,
    line_limit: usize,
    /// All Docker jobs read one daemon (its positions can be swept).
    one_daemon: bool,
}

impl DockerShared {
    fn new(cfg: &Config, router: &Router, positions: &Positions, metrics: &Arc<Metrics>) -> Self {
        let hosts: HashSet<&str> = cfg
            .scrape_configs
            .iter()
            .flat_map(|sc| sc.docker_sd_configs.iter().map(|sd| sd.host.as_str()))
            .collect();
        let max_line = cfg.limits_config.max_line_size.get() as usize;
        DockerShared {
            router: router.clone(),
            positions: positions.clone(),
            metrics: metrics.clone(),
            line_limit: if max_line == 0 {
                SOFT_LINE_LIMIT
            } else {
                max_line
            },
            one_daemon: hosts.len() == 1,
        }
    }
}

// ---- end of Docker jobs --------------------------------------------------------------------------------

/// Scrape config `index`'s pipeline; a stage that cannot be built is placed in the file.
fn build_pipeline(
    cfg: &Config,
    index: usize,
    sc: &ScrapeConfig,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<PipelineSpec> {
    let ctx = BuildContext {
        metrics: metrics.clone(),
        job: sc.job_name.as_str().into(),
    };
    PipelineSpec::build(&sc.pipeline_stages, &ctx)
        .map(|spec| spec.keep_extracted(crate::config::keep_extracted(&cfg.elasticsearch)))
        .map_err(|e| {
            let path = format!("scrape_configs[{index}].pipeline_stages[{}]", e.index);
            let msg = format!("stage {:?} {} (job {:?})", e.name, e.reason, sc.job_name);
            cfg.error_at(&path, msg).into()
        })
}

/// The stdin source's labels and pipeline: the first scrape config's (Promtail's rule), else
/// `{job="stdin", hostname="<host>"}`.
fn stdin_job(cfg: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<(Labels, PipelineSpec)> {
    let Some(sc) = cfg.scrape_configs.first() else {
        let labels = Labels::from([
            ("job".to_string(), "stdin".to_string()),
            ("hostname".to_string(), hostname()),
        ]);
        return Ok((labels, PipelineSpec::default()));
    };
    let pipeline = build_pipeline(cfg, 0, sc, metrics)?;
    let labels: Labels = sc
        .static_configs
        .first()
        .map(|s| {
            s.labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok((labels, pipeline))
}

fn hostname() -> String {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.is_empty() {
            return h;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn loki_settings(c: &ClientConfig, cfg: &Config) -> anyhow::Result<LokiSettings> {
    let mut s = LokiSettings::new(&c.url);
    s.tenant_id = c.tenant_id.clone();
    s.batch_wait = c.batchwait.get();
    s.batch_size = c.batchsize.get() as usize;
    s.timeout = c.timeout.get();
    s.min_backoff = c.backoff_config.min_period.get();
    s.max_backoff = c.backoff_config.max_period.get();
    s.max_retries = c.backoff_config.max_retries_explicit();
    s.drop_rate_limited_batches = c.drop_rate_limited_batches;
    s.external_labels = c.external_labels.clone().into_iter().collect();
    s.headers = c.headers.clone().into_iter().collect();
    s.auth = auth_of(c)?;
    s.tls = tls_of(c)?;
    s.max_line_size = cfg.limits_config.max_line_size.get() as usize;
    s.truncate_long_lines = cfg.limits_config.max_line_size_truncate;
    Ok(s)
}

fn auth_of(c: &ClientConfig) -> anyhow::Result<Auth> {
    if let Some(auth) = crate::sink::http::http_auth(&c.basic_auth, c.effective_authorization()) {
        return Ok(auth);
    }
    if c.oauth2.is_some() {
        anyhow::bail!("oauth2 is not supported yet by this version of logferry");
    }
    Ok(Auth::None)
}

fn tls_of(c: &ClientConfig) -> anyhow::Result<TlsSettings> {
    crate::sink::http::tls_settings(c.tls_config.as_ref()).map_err(anyhow::Error::msg)
}

fn open_positions(cfg: &Config, mode: Mode) -> anyhow::Result<Positions> {
    let path = std::path::Path::new(&cfg.positions.filename);
    let read_only = mode == Mode::DryRun;
    match Positions::open(path, read_only) {
        Ok(p) => Ok(p),
        Err(e @ PositionsError::Invalid { .. }) => {
            let (p, aside) = Positions::reset_invalid(path, read_only);
            let aside = aside.map(|a| a.display().to_string()).unwrap_or_default();
            if cfg.positions.ignore_invalid_yaml {
                tracing::warn!(error = %e, moved_to = %aside, "positions file invalid; starting without positions");
            } else {
                tracing::error!(error = %e, moved_to = %aside,
                    "positions file invalid; starting without positions (files are read from their start: \
                     duplicates, no loss). Set positions.ignore_invalid_yaml: true to make this a warning");
            }
            Ok(p)
        }
        Err(e) => Err(e.into()),
    }
}

/// Raise the soft open-files limit to the hard one: a thousand tailed files need a thousand fds.
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub async fn run(cfg: Config, opts: Options) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("installing signal handlers")?;
    raise_fd_limit();
    if opts.print_config {
        eprintln!("{}", cfg.to_redacted_yaml());
    }
    let metrics = Metrics::new();
    let positions = open_positions(&cfg, opts.mode)?;
    let stdin = opts.stdin || cfg.target_config.stdin;
    let stdin_source = if stdin {
        Some(stdin_job(&cfg, &metrics)?)
    } else {
        None
    };
    let jobs = if stdin {
        Vec::new()
    } else {
        cfg.scrape_configs
            .iter()
            .enumerate()
            .map(|(i, sc)| build_job(i, sc, &cfg, &metrics))
            .collect::<anyhow::Result<Vec<_>>>()?
    };

    check_limits(&cfg)?;
    // A journal job needs libsystemd, loaded at run time: say so now rather than run without it.
    for job in &jobs {
        if let JobSource::Journal { .. } = job.source {
            journal::sys::library().map_err(|e| {
                let path = format!("scrape_configs[{}].journal", job.index);
                cfg.error_at(&path, format!("{e} (job {:?})", job.name))
            })?;
        }
    }

    // Sinks.
    let (abort_tx, abort_rx) = watch::channel(false);
    let mut sinks = JoinSet::new();
    let mut senders = Vec::new();
    let mut es_routes = Vec::new();
    let to_stdout =
        opts.mode == Mode::DryRun || (cfg.clients.is_empty() && cfg.elasticsearch.is_empty());
    if to_stdout {
        if opts.default_config && opts.mode == Mode::Run {
            tracing::info!(
                "no LOKI_URL set: printing entries to stdout (set LOKI_URL to ship them to Loki)"
            );
        } else if opts.mode == Mode::Run {
            tracing::warn!("no clients configured: printing entries to stdout");
        }
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        senders.push(tx);
        sinks.spawn(stdout::run(rx));
    } else {
        for (i, c) in cfg.clients.iter().enumerate() {
            let settings = loki_settings(c, &cfg).with_context(|| format!("clients[{i}]"))?;
            let name = sink_name(c);
            let dir = buffer_dir(c, &cfg, &name);
            let disk = c.buffer.r#type == BufferType::Disk && !stdin;
            tracing::info!(url = %redact_url(&settings.url), sink = %name,
                buffer = %if disk { dir.display().to_string() } else { "memory".into() },
                "sending to Loki");
            let dead_letter = DeadLetter::new(&dir, c.buffer.dead_letter_max_size.get());
            let sink = LokiSink::new(settings, metrics.clone())
                .map_err(|e| anyhow::anyhow!("clients[{i}]: {e}"))?
                .with_dead_letter(dead_letter, &name);
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            sinks.spawn(sink.run(rx, abort_rx.clone()));
            let buffer = disk.then(|| buffer_settings(&c.buffer, name, dir));
            let input = put_buffer_in_front(buffer, tx, &metrics, &abort_rx, &mut sinks)
                .with_context(|| format!("clients[{i}].buffer"))?;
            senders.push(input);
        }
        for (i, c) in cfg.elasticsearch.iter().enumerate() {
            es_routes.push(
                elasticsearch_sink(c, &cfg, stdin, &metrics, &abort_rx, &mut sinks)
                    .with_context(|| format!("elasticsearch[{i}]"))?,
            );
        }
        warn_orphaned_buffers(&cfg);
    }
    let routes = senders.into_iter().map(Route::all).chain(es_routes);
    let router = Router::with_routes(routes.collect(), positions.clone());

    // Sources.
    let (stop_tx, stop_rx) = watch::channel(false);
    let claims: Claims = Arc::new(Mutex::new(HashSet::new()));
    let mut sources = JoinSet::new();
    let max_line = cfg.limits_config.max_line_size.get() as usize;
    let limit = LineLimit {
        max: if max_line == 0 {
            HARD_LINE_LIMIT
        } else {
            max_line
        },
        truncate: max_line == 0 || cfg.limits_config.max_line_size_truncate,
    };
    let fw = &cfg.global.file_watch_config;
    // Promtail is ready when any target manager is; the journal's and Docker's always are.
    let needs_files =
        !jobs.is_empty() && jobs.iter().all(|j| matches!(j.source, JobSource::Files(_)));
    let docker_shared = DockerShared::new(&cfg, &router, &positions, &metrics);
    let target_status = crate::targets::Targets::new();
    for job in jobs {
        let targets = match job.source {
            JobSource::Files(targets) => targets,
            JobSource::Journal { config, relabeler } => {
                let source = JournalSource {
                    job: job.name,
                    config,
                    relabeler,
                    pipeline: job.pipeline,
                    router: router.clone(),
                    positions: positions.clone(),
                    metrics: metrics.clone(),
                    field_limit: HARD_LINE_LIMIT,
                };
                sources.spawn(source.run(stop_rx.clone()));
                continue;
            }
            JobSource::Docker(docker) => {
                spawn_docker_job(
                    &mut sources,
                    job.name,
                    job.pipeline,
                    docker,
                    &docker_shared,
                    &stop_rx,
                );
                continue;
            }
        };
        let source = FileSource {
            targets,
            sync_period: cfg.target_config.sync_period.get(),
            claims: claims.clone(),
            ctx: JobContext {
                job: job.name,
                router: router.clone(),
                positions: positions.clone(),
                metrics: metrics.clone(),
                pipeline: job.pipeline,
                limit,
                min_poll: fw.min_poll_frequency.get(),
                max_poll: fw.max_poll_frequency.get(),
                inotify: false,
                flush_partial_on_stop: cfg.target_config.flush_partial_lines_on_shutdown,
                targets: target_status.clone(),
            },
        };
        sources.spawn(source.run(stop_rx.clone()));
    }
    let (input_done_tx, input_done) = tokio::sync::oneshot::channel::<()>();
    if let Some((labels, pipeline)) = stdin_source {
        let source = StdinSource {
            labels,
            pipeline,
            router: router.clone(),
        };
        sources.spawn(async move {
            source.run().await;
            let _ = input_done_tx.send(());
        });
    }
    drop(router);
    drop(docker_shared);

    // Positions sync.
    let sync_positions = {
        let positions = positions.clone();
        let metrics = metrics.clone();
        let period = cfg.positions.sync_period.get();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                let committed = tokio::select! {
                    _ = tick.tick() => false,
                    _ = positions.committed() => true,
                    _ = stop.wait_for(|s| *s) => return,
                };
                if committed {
                    // Commits come in bursts (one per batch): gather them into one write.
                    tokio::time::sleep(SAVE_AFTER_COMMIT).await;
                }
                save_positions(&positions, &metrics);
            }
        })
    };

    // HTTP server.
    let started = Arc::new(AtomicBool::new(false));
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let server = if cfg.server.disable {
        None
    } else {
        let addr = listen_addr(&cfg)?;
        let state = ServerState {
            metrics: metrics.clone(),
            started: started.clone(),
            needs_files,
            health_check_target: cfg.server.health_check_target,
            config_yaml: cfg.to_redacted_yaml().into(),
            targets: target_status,
        };
        let (bound, join) = server::serve(addr, state, server_stop_rx)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(addr = %bound, "listening");
        Some(join)
    };
    started.store(true, Ordering::Release);
    metrics.ready.set(1);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "logferry started");
    // systemd (Type=notify): ready now that the config loaded and sources and sinks run.
    let notifier = crate::sd_notify::Notifier::from_env().map(Arc::new);
    if let Some(n) = &notifier {
        n.notify("READY=1\nSTATUS=shipping");
        if let Some(every) = crate::sd_notify::watchdog_interval() {
            crate::sd_notify::spawn_watchdog(n.clone(), every);
        }
    }

    tokio::select! {
        _ = signals.shutdown() => tracing::info!("shutting down: stopping sources"),
        Ok(()) = input_done => tracing::info!("end of standard input: flushing and stopping"),
    }
    if let Some(n) = &notifier {
        n.notify("STOPPING=1\nSTATUS=flushing to the sinks");
    }
    let _ = stop_tx.send(true);
    // One deadline for the whole shutdown. A source can be stuck handing over a batch (a full buffer
    // with the receiver down): past the deadline it is cancelled, and its unsent lines are read again
    // after the restart, as their positions were never committed.
    let grace = cfg.server.graceful_shutdown_timeout.get();
    let deadline = tokio::time::Instant::now() + grace;
    let stopped = tokio::time::timeout_at(deadline, async {
        while sources.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("sources did not stop in time (sinks full?); cancelling them");
        sources.shutdown().await;
    }
    let _ = sync_positions.await;

    tracing::info!(timeout = ?grace, "flushing sinks");
    let flushed = tokio::time::timeout_at(deadline, async {
        while sinks.join_next().await.is_some() {}
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(
            "sinks did not flush in time; unsent lines will be read again after restart"
        );
        let _ = abort_tx.send(true);
        while sinks.join_next().await.is_some() {}
    }
    save_positions(&positions, &metrics);
    let _ = server_stop_tx.send(true);
    if let Some(s) = server {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A client's name in metrics, logs and its buffer directory: `name` when set, else the URL's host
/// and port with a short hash of the URL and tenant (two clients to one Loki stay apart).
fn sink_name(c: &ClientConfig) -> String {
    if !c.name.is_empty() {
        return c.name.clone();
    }
    let host = crate::sink::loki::config::host_of(&c.url);
    crate::sink::http::default_sink_name("loki", &host, &format!("{}\n{}", c.url, c.tenant_id))
}

fn buffer_root(cfg: &Config) -> std::path::PathBuf {
    let positions = std::path::Path::new(&cfg.positions.filename);
    positions
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("buffer")
}

fn buffer_dir(c: &ClientConfig, cfg: &Config, name: &str) -> std::path::PathBuf {
    sink_buffer_dir(&c.buffer, cfg, name)
}

fn sink_buffer_dir(b: &BufferConfig, cfg: &Config, name: &str) -> std::path::PathBuf {
    if b.path.is_empty() {
        buffer_root(cfg).join(name)
    } else {
        b.path.clone().into()
    }
}

// ---- Elasticsearch sinks (src/sink/elasticsearch) ------------------------------------------------------

/// Starts the sink of an `elasticsearch[]` block, with its disk buffer in front as for Loki clients;
/// returns the route the router sends it entries by (its selector, when it has one).
fn elasticsearch_sink(
    c: &ElasticsearchConfig,
    cfg: &Config,
    stdin: bool,
    metrics: &Arc<Metrics>,
    abort: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Route> {
    let settings = EsSettings::from_config(c).map_err(anyhow::Error::msg)?;
    let selector = if c.selector.is_empty() {
        None
    } else {
        Some(Arc::new(
            Selector::parse(&c.selector).map_err(anyhow::Error::msg)?,
        ))
    };
    let name = settings.name.clone();
    let dir = sink_buffer_dir(&c.buffer, cfg, &name);
    let disk = c.buffer.r#type == BufferType::Disk && !stdin;
    tracing::info!(endpoints = %settings.endpoints.iter().map(|e| redact_url(e)).collect::<Vec<_>>().join(","),
        sink = %name, buffer = %if disk { dir.display().to_string() } else { "memory".into() },
        "sending to Elasticsearch");
    let dead_letter = DeadLetter::new(&dir, c.buffer.dead_letter_max_size.get());
    let sink = EsSink::new(settings, metrics.clone())
        .map_err(anyhow::Error::msg)?
        .with_dead_letter(dead_letter);
    let (tx, rx) = mpsc::channel(SINK_QUEUE);
    tasks.spawn(sink.run(rx, abort.clone()));
    let buffer = disk.then(|| buffer_settings(&c.buffer, name, dir));
    let sink = put_buffer_in_front(buffer, tx, metrics, abort, tasks).context("buffer")?;
    Ok(Route { sink, selector })
}

// ---- end of Elasticsearch sinks ------------------------------------------------------------------------

fn buffer_settings(b: &BufferConfig, name: String, dir: std::path::PathBuf) -> BufferSettings {
    BufferSettings {
        name,
        dir,
        max_size: b.max_size.get(),
        segment_size: b.segment_size.get(),
        fsync: b.fsync,
        fsync_interval: b.fsync_interval.get(),
        when_full: b.when_full,
    }
}

/// Where the router sends a sink's batches: the sink's own queue `sink`, or with `buffer` a disk
/// buffer in front of it (its reader and writer join `tasks`, to be awaited at shutdown).
fn put_buffer_in_front(
    buffer: Option<BufferSettings>,
    sink: mpsc::Sender<Delivery>,
    metrics: &Arc<Metrics>,
    abort: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<mpsc::Sender<Delivery>> {
    let Some(settings) = buffer else {
        return Ok(sink);
    };
    let dir = settings.dir.display().to_string();
    let b = buffer::start(settings, metrics.clone(), sink, abort.clone())
        .with_context(|| format!("cannot open the buffer in {dir}"))?;
    tasks.spawn(b.reader);
    tasks.spawn(b.writer_done);
    Ok(b.input)
}

/// Buffers under the default root that no configured client uses any more still hold unsent data
/// (a client renamed or its URL changed): say so once, rather than forget it silently.
fn warn_orphaned_buffers(cfg: &Config) {
    let es = cfg.elasticsearch.iter().map(|c| {
        sink_buffer_dir(
            &c.buffer,
            cfg,
            &crate::sink::elasticsearch::config::sink_name(c),
        )
    });
    let used: HashSet<std::path::PathBuf> = cfg
        .clients
        .iter()
        .map(|c| buffer_dir(c, cfg, &sink_name(c)))
        .chain(es)
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

fn save_positions(positions: &Positions, metrics: &Metrics) {
    if let Err(e) = positions.save() {
        metrics.positions_save_errors.inc();
        tracing::error!(error = %e, "cannot write positions");
    }
}

fn listen_addr(cfg: &Config) -> anyhow::Result<SocketAddr> {
    let host = match cfg.server.http_listen_address.as_str() {
        "" => "0.0.0.0",
        h => h,
    };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", cfg.server.http_listen_port)
    } else {
        format!("{host}:{}", cfg.server.http_listen_port)
    };
    text.parse()
        .with_context(|| format!("server.http_listen_address {host:?} is not an IP address"))
}

/// The URL without `user:password@`, for logs.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host))
                if !rest.split('/').next().unwrap_or("").is_empty()
                    && rest.find('@') < rest.find('/') =>
            {
                format!("{scheme}://<redacted>@{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught from the start of `run`: a signal that arrives while the agent
/// is still starting is handled, not fatal (the default action of all three is to kill).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Wait for SIGTERM or SIGINT.
    async fn shutdown(&mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    tracing::warn!("SIGHUP received: config reload is not supported yet; restart to apply a new config");
                }
            }
        }
    }
}
