//! Jobs: what each scrape config becomes (its targets or its journal or Docker daemons, its relabel rules
//! and its pipeline), and the running instance of a job, which a config reload stops and replaces
//! without losing or repeating a line (see [`RunningJob::start`]).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::Env;
use crate::config::{
    Config, DockerSdConfig, GelfConfig, GlobalConfig, JournalConfig, LimitsConfig,
    LokiPushApiConfig, OtlpSourceConfig, ScrapeConfig, SourceKind, SyslogConfig, TargetConfig,
};
use crate::entry::Labels;
use crate::metrics::Metrics;
use crate::relabel::Relabeler;
use crate::source::docker::{Daemon, DockerJobContext, DockerSource};
use crate::source::file::sd::FileSd;
use crate::source::file::tailer::FileJobContext;
use crate::source::file::targets::{hostname, static_targets};
use crate::source::file::{FileSource, FileTarget};
use crate::source::gelf::GelfSource;
use crate::source::journal::JournalSource;
use crate::source::loki_push::LokiPushSource;
use crate::source::otlp::{Listeners, OtlpSource};
use crate::source::syslog::SyslogSource;
use crate::source::{LineLimit, SourceContext};
use crate::stage::{BuildContext, KeepExtracted, PipelineSpec};

type SourceFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// While a restarted job waits for its previous instance to stop, it says so this often.
const WAITING_REPORT_EVERY: Duration = Duration::from_secs(10);

/// What a reload compares to tell whether a job must restart: its scrape config and the settings every
/// job reads.
#[derive(Clone, PartialEq)]
pub(super) struct JobSpec {
    scrape: ScrapeConfig,
    limits: LimitsConfig,
    target: TargetConfig,
    global: GlobalConfig,
    /// Whether every Docker job reads the same daemon (its positions can be swept).
    one_daemon: bool,
    /// The extracted values entries keep for the Elasticsearch sinks (`extracted_fields`).
    keep_extracted: KeepExtracted,
}

impl JobSpec {
    pub fn of(sc: &ScrapeConfig, cfg: &Config) -> Self {
        JobSpec {
            scrape: sc.clone(),
            limits: cfg.limits_config.clone(),
            target: cfg.target_config.clone(),
            global: cfg.global.clone(),
            one_daemon: !sc.docker_sd_configs.is_empty() && docker_hosts(cfg) == 1,
            keep_extracted: crate::config::keep_extracted(&cfg.elasticsearch),
        }
    }
}

/// A job's sources at work.
pub(super) struct RunningJob {
    pub name: Arc<str>,
    pub spec: JobSpec,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningJob {
    /// Start `job`'s sources. With `after` (the same job's previous instance, being stopped by a
    /// reload), they start once it has stopped and the batches it sent are safe in the sinks, so they
    /// resume exactly where it left off: nothing is read twice or skipped.
    pub fn start(
        job: Job,
        spec: JobSpec,
        cfg: &Config,
        env: &Env,
        after: Option<RunningJob>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let name = job.name.clone();
        let sources = sources_of(job, cfg, env, &stop_rx);
        let commits = env.router.commits().clone();
        let grace = cfg.server.graceful_shutdown_timeout.get();
        let job_name = name.clone();
        let task = tokio::spawn(async move {
            if let Some(previous) = after {
                wait_for(previous.task, &job_name).await;
                if !commits.settle(grace).await {
                    tracing::warn!(job = %job_name,
                        "the restarted job's last batches are not safe in the sinks yet; starting anyway \
                         (lines since its last committed position may be sent twice)");
                }
                if *stop_rx.borrow() {
                    return;
                }
                tracing::info!(job = %job_name, "job restarted with its new config");
            }
            // Dropping the set (the task cancelled at a shutdown deadline) cancels the sources too.
            let mut running = JoinSet::new();
            for s in sources {
                running.spawn(s);
            }
            while running.join_next().await.is_some() {}
        });
        RunningJob {
            name,
            spec,
            stop,
            task,
        }
    }

    /// Tell the sources to stop: they send what they hold and end.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait until the sources ended; false if `deadline` passed first (then they are cancelled).
    pub async fn join(self, deadline: tokio::time::Instant) -> bool {
        let abort = self.task.abort_handle();
        match tokio::time::timeout_at(deadline, self.task).await {
            Ok(_) => true,
            Err(_) => {
                abort.abort();
                false
            }
        }
    }
}

async fn wait_for(mut previous: JoinHandle<()>, job: &str) {
    loop {
        tokio::select! {
            _ = &mut previous => return,
            _ = tokio::time::sleep(WAITING_REPORT_EVERY) => tracing::warn!(job,
                "reload: the job's previous instance has not stopped yet (a sink not taking batches?); \
                 its new instance starts when it has"),
        }
    }
}

/// The futures that read `job`'s targets, each stopping when `stop` turns true.
fn sources_of(
    job: Job,
    cfg: &Config,
    env: &Env,
    stop: &watch::Receiver<bool>,
) -> Vec<SourceFuture> {
    let limits = &cfg.limits_config;
    let ctx = SourceContext {
        job: job.name,
        router: env.router.clone(),
        positions: env.positions.clone(),
        metrics: env.metrics.clone(),
        targets: env.targets.clone(),
        pipeline: job.pipeline,
        line_limit: LineLimit::new(
            limits.max_line_size.get() as usize,
            limits.max_line_size_truncate,
        ),
    };
    match job.source {
        JobSource::Files { targets, sd } => {
            let fw = &cfg.global.file_watch_config;
            let source = FileSource {
                targets,
                sd,
                sync_period: cfg.target_config.sync_period.get(),
                claims: env.claims.clone(),
                ctx: FileJobContext {
                    source: ctx,
                    min_poll: fw.min_poll_frequency.get(),
                    max_poll: fw.max_poll_frequency.get(),
                    inotify: false,
                    flush_partial_on_stop: cfg.target_config.flush_partial_lines_on_shutdown,
                    open_files: env.open_files.clone(),
                },
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
        JobSource::Journal { config, relabeler } => {
            let source = JournalSource {
                ctx,
                config,
                relabeler,
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
        JobSource::Syslog {
            config,
            relabeler,
            socket,
        } => {
            let source = SyslogSource {
                ctx,
                config: *config,
                relabeler,
                socket,
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
        JobSource::Gelf {
            config,
            relabeler,
            socket,
        } => {
            let source = GelfSource {
                ctx,
                config,
                relabeler,
                socket,
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
        JobSource::Docker(docker) => docker_sources(ctx, docker, docker_hosts(cfg) == 1, stop),
        JobSource::LokiPush {
            config,
            relabeler,
            listener,
        } => {
            let limits =
                crate::server::ConnectionLimits::from_config(&config.server, &env.fd_limits);
            let source = LokiPushSource {
                ctx,
                config: *config,
                relabeler,
                listener,
                limits,
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
        JobSource::Otlp {
            config,
            relabeler,
            listeners,
        } => {
            let limits = crate::server::ConnectionLimits::from_config(
                &crate::config::ServerConfig::default(),
                &env.fd_limits,
            );
            let source = OtlpSource {
                ctx,
                config: *config,
                relabeler,
                listeners,
                limits,
            };
            vec![Box::pin(source.run(stop.clone()))]
        }
    }
}

/// What one scrape config becomes: its targets and its pipeline.
pub(super) struct Job {
    pub name: Arc<str>,
    pub source: JobSource,
    pub pipeline: PipelineSpec,
}

pub(super) enum JobSource {
    Files {
        targets: Vec<FileTarget>,
        /// `file_sd_configs`: targets read from files while the job runs.
        sd: Option<FileSd>,
    },
    /// Relabeled per entry, by the source.
    Journal {
        config: JournalConfig,
        relabeler: Relabeler,
    },
    /// Relabeled per container and stream, by the source.
    Docker(DockerJob),
    /// Relabeled per message, by the source. (Boxed: the config is the largest of the variants.)
    Syslog {
        config: Box<SyslogConfig>,
        relabeler: Relabeler,
        /// Bound by [`listen_located`] when the agent starts.
        socket: Option<crate::source::syslog::StdSocket>,
    },
    /// Relabeled per message, by the source.
    Gelf {
        config: GelfConfig,
        relabeler: Relabeler,
        /// Bound by [`listen_located`] when the agent starts.
        socket: Option<std::net::UdpSocket>,
    },
    /// Relabeled per pushed stream, by the source.
    LokiPush {
        config: Box<LokiPushApiConfig>,
        relabeler: Relabeler,
        /// Bound by [`listen_located`] when the agent starts.
        listener: Option<std::net::TcpListener>,
    },
    /// Relabeled per distinct label set of a request, by the source.
    Otlp {
        config: Box<OtlpSourceConfig>,
        relabeler: Relabeler,
        /// Bound by [`listen_located`] when the agent starts.
        listeners: Listeners,
    },
}

/// An error in scrape config `sc` at key `path`, placed in the file and naming the job.
fn job_error(
    cfg: &Config,
    sc: &ScrapeConfig,
    path: &str,
    msg: String,
) -> crate::config::ConfigError {
    cfg.error_at(path, format!("{msg} (job {:?})", sc.job_name))
}

/// A job's relabel rules; an invalid one is placed in the file.
fn job_relabeler(index: usize, sc: &ScrapeConfig, cfg: &Config) -> anyhow::Result<Relabeler> {
    Relabeler::new(&sc.relabel_configs).map_err(|e| {
        let path = format!("scrape_configs[{index}].relabel_configs");
        job_error(cfg, sc, &path, e.to_string()).into()
    })
}

pub(super) fn build_job(
    index: usize,
    sc: &ScrapeConfig,
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Job> {
    let here = format!("scrape_configs[{index}]");
    let fail = |path: &str, msg: String| job_error(cfg, sc, path, msg);
    match sc.source_kind() {
        Some(SourceKind::File) if !sc.uses_other_discovery() => {}
        Some(SourceKind::Journal) => return journal_job(index, sc, cfg, metrics),
        Some(SourceKind::File) => {
            let msg = "only static_configs and file_sd_configs file targets are supported yet by \
                       this version of logferry (the other service discoveries are not)";
            return Err(fail(&here, msg.into()).into());
        }
        Some(SourceKind::Docker) => return build_docker_job(index, sc, cfg, metrics),
        Some(SourceKind::Syslog) => return syslog_job(index, sc, cfg, metrics),
        Some(SourceKind::Gelf) => {
            return Ok(Job {
                name: sc.job_name.as_str().into(),
                source: JobSource::Gelf {
                    config: sc.gelf.clone().unwrap_or_default(),
                    relabeler: job_relabeler(index, sc, cfg)?,
                    socket: None,
                },
                pipeline: build_pipeline(cfg, index, sc, metrics)?,
            })
        }
        Some(SourceKind::LokiPushApi) => {
            return Ok(Job {
                name: sc.job_name.as_str().into(),
                source: JobSource::LokiPush {
                    config: Box::new(sc.loki_push_api.clone().expect("its source kind says so")),
                    relabeler: job_relabeler(index, sc, cfg)?,
                    listener: None,
                },
                pipeline: build_pipeline(cfg, index, sc, metrics)?,
            })
        }
        Some(SourceKind::Otlp) => {
            let otlp = sc.otlp.as_ref().expect("its source kind says so");
            for (key, listener) in [("http", &otlp.http), ("grpc", &otlp.grpc)] {
                // Unreadable certificate files fail the start (and check-config).
                if let Some(listener) = listener {
                    crate::source::otlp::tls(listener, b"h2").map_err(|e| {
                        let path = format!("{here}.otlp.{key}.tls_config");
                        job_error(cfg, sc, &path, e)
                    })?;
                }
            }
            return Ok(Job {
                name: sc.job_name.as_str().into(),
                source: JobSource::Otlp {
                    config: Box::new(sc.otlp.clone().expect("its source kind says so")),
                    relabeler: job_relabeler(index, sc, cfg)?,
                    listeners: Listeners::default(),
                },
                pipeline: build_pipeline(cfg, index, sc, metrics)?,
            });
        }
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
    let targets = static_targets(&sc.job_name, &sc.static_configs, &relabeler)
        .map_err(|e| fail(&format!("{here}.{}", e.at), e.message))?;
    let sd = (!sc.file_sd_configs.is_empty()).then(|| FileSd {
        job: sc.job_name.as_str().into(),
        configs: sc.file_sd_configs.clone(),
        relabeler,
    });
    Ok(Job {
        name: sc.job_name.as_str().into(),
        source: JobSource::Files { targets, sd },
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
        name: sc.job_name.as_str().into(),
        source: JobSource::Journal {
            config: sc.journal.clone().unwrap_or_default(),
            relabeler,
        },
        pipeline: build_pipeline(cfg, index, sc, metrics)?,
    })
}

// ---- Listening jobs (src/source/syslog, src/source/gelf) --------------------------------------------------------------

fn syslog_job(
    index: usize,
    sc: &ScrapeConfig,
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Job> {
    let config = sc.syslog.clone().unwrap_or_default();
    if let Some(tls) = config.tls_config.as_ref().filter(|_| config.tls_enabled()) {
        // Unreadable certificate files fail the start (and check-config), as in Promtail.
        crate::source::syslog::tls::server_config(tls).map_err(|e| {
            let path = format!("scrape_configs[{index}].syslog.tls_config");
            job_error(cfg, sc, &path, e)
        })?;
    }
    Ok(Job {
        name: sc.job_name.as_str().into(),
        source: JobSource::Syslog {
            config: Box::new(config),
            relabeler: job_relabeler(index, sc, cfg)?,
            socket: None,
        },
        pipeline: build_pipeline(cfg, index, sc, metrics)?,
    })
}

/// At the agent's start, bind a syslog, GELF or `loki_push_api` job's socket and hand it to the source, so that an
/// address in use fails the start with the address named and placed in the file (as Promtail fails),
/// rather than a job that retries in the background. After a reload, the source binds itself and
/// retries until its previous instance let go.
pub(super) fn listen_located(job: &mut Job, index: usize, cfg: &Config) -> anyhow::Result<()> {
    let name = job.name.clone();
    let (key, address, udp, bound) = match &mut job.source {
        JobSource::Syslog { config, socket, .. } => {
            let bound = crate::source::syslog::bind_std(&config.listen_address, config.is_udp())
                .map(|s| *socket = Some(s));
            (
                "syslog",
                config.listen_address.clone(),
                config.is_udp(),
                bound,
            )
        }
        JobSource::Gelf { config, socket, .. } => {
            let at = crate::source::syslog::go_listen_address(&config.listen_address);
            let bound = std::net::UdpSocket::bind(at.as_ref()).map(|s| *socket = Some(s));
            ("gelf", config.listen_address.clone(), true, bound)
        }
        JobSource::LokiPush {
            config, listener, ..
        } => {
            let address = crate::source::loki_push::address(config);
            let bound = crate::source::intake::bind(&address).map(|l| *listener = Some(l));
            (
                "loki_push_api.server.http_listen_port",
                address,
                false,
                bound,
            )
        }
        JobSource::Otlp {
            config, listeners, ..
        } => {
            let wanted = [
                ("http", &config.http, &mut listeners.http),
                ("grpc", &config.grpc, &mut listeners.grpc),
            ];
            for (key, listener, slot) in wanted {
                let Some(listener) = listener else { continue };
                let address = &listener.listen_address;
                *slot = Some(crate::source::intake::bind(address).map_err(|e| {
                    let path = format!("scrape_configs[{index}].otlp.{key}.listen_address");
                    let msg = format!("cannot listen on {address} (tcp): {e} (job {name:?})");
                    cfg.error_at(&path, msg)
                })?);
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    bound.map_err(|e| {
        let path = match key {
            "syslog" | "gelf" => format!("scrape_configs[{index}].{key}.listen_address"),
            _ => format!("scrape_configs[{index}].{key}"),
        };
        let protocol = if udp { "udp" } else { "tcp" };
        let msg = format!("cannot listen on {address} ({protocol}): {e} (job {name:?})");
        cfg.error_at(&path, msg).into()
    })
}

// ---- Docker jobs (src/source/docker) -------------------------------------------------------------------

pub(super) struct DockerJob {
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
    let fail = |path: &str, msg: String| job_error(cfg, sc, path, msg);
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
        name: sc.job_name.as_str().into(),
        source: JobSource::Docker(DockerJob {
            daemons: sc.docker_sd_configs.clone(),
            relabeler,
        }),
        pipeline: build_pipeline(cfg, index, sc, metrics)?,
    })
}

/// A Docker job's sources, one per daemon. With `one_daemon`, every Docker job reads the same daemon
/// (its positions can be swept).
fn docker_sources(
    source: SourceContext,
    docker: DockerJob,
    one_daemon: bool,
    stop: &watch::Receiver<bool>,
) -> Vec<SourceFuture> {
    let ctx = Arc::new(DockerJobContext {
        source,
        relabeler: docker.relabeler,
    });
    let sources = docker.daemons.iter().map(|sd| {
        let source = DockerSource {
            ctx: ctx.clone(),
            daemon: Daemon::new(sd, one_daemon),
        };
        Box::pin(source.run(stop.clone())) as SourceFuture
    });
    sources.collect()
}

/// How many Docker daemons the jobs read.
fn docker_hosts(cfg: &Config) -> usize {
    let hosts: HashSet<&str> = cfg
        .scrape_configs
        .iter()
        .flat_map(|sc| sc.docker_sd_configs.iter().map(|sd| sd.host.as_str()))
        .collect();
    hosts.len()
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
            job_error(cfg, sc, &path, format!("stage {:?} {}", e.name, e.reason)).into()
        })
}

/// The stdin source's labels and pipeline: the first scrape config's (Promtail's rule), else
/// `{job="stdin", hostname="<host>"}`.
pub(super) fn stdin_job(
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(Labels, PipelineSpec)> {
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
