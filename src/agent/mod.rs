//! Wiring: builds the sources, the router, the sinks and the HTTP server from a [`Config`], runs them,
//! reloads them when the config changes (see `reload.rs`), and shuts them down in the order the
//! delivery contract needs (DESIGN.md):
//!
//! 1. SIGTERM/SIGINT: sources stop reading (nothing new enters);
//! 2. the router sends nowhere any more, so every sink sees the end of its input and flushes what it
//!    holds, with retries, until `server.graceful_shutdown_timeout`; past it, retrying stops and what
//!    was not accepted stays unacknowledged (read again after the restart: duplicates possible, loss
//!    not);
//! 3. the positions, which hold acknowledged offsets only, are written one last time.
//!
//! `jobs.rs` builds and runs what a scrape config becomes, `sinks.rs` what a client becomes,
//! `reload.rs` holds both for the running config and applies a new one.

mod jobs;
mod reload;
mod sinks;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, ServerConfig};
use crate::delivery::Router;
use crate::metrics::Metrics;
use crate::positions::{Positions, PositionsError};
use crate::server::{self, ReloadRequest, ServerState};
use crate::source::file::open_files::OpenFiles;
use crate::source::file::Claims;
use crate::source::stdin::StdinSource;
use crate::targets::Targets;
use jobs::{build_job, stdin_job};
use reload::{Reloaded, Running};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// Entries go to stdout; positions are read, never written.
    DryRun,
}

/// Reads the config again, as at start (same files, same command-line overrides), for a reload.
pub type Loader = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

pub struct Options {
    pub mode: Mode,
    /// Running the embedded default config (no -config.file).
    pub default_config: bool,
    pub print_config: bool,
    /// Read lines from stdin instead of the scrape configs (`-stdin`).
    pub stdin: bool,
    /// `-dry-run.format=json`: a dry run or `-stdin` prints JSON objects rather than Promtail's
    /// columns.
    pub json_entries: bool,
    /// How a reload reads the config.
    pub loader: Loader,
}

/// Positions are written this soon after a batch became safe in every sink (and at least every
/// `positions.sync_period`), so a crash re-reads at most this much more than the batches in flight.
const SAVE_AFTER_COMMIT: Duration = Duration::from_millis(50);

/// What jobs and sinks share, whichever config is running.
pub(crate) struct Env {
    metrics: Arc<Metrics>,
    positions: Positions,
    /// Every source sends through it; a reload changes where it sends.
    router: Router,
    /// Files some job tails (a file is tailed by one job only).
    claims: Claims,
    /// How many files the tailers of every job may hold open at once.
    open_files: Arc<OpenFiles>,
    targets: Arc<Targets>,
    /// Turns true when the agent gives up flushing at shutdown.
    abort: watch::Receiver<bool>,
    mode: Mode,
    stdin: bool,
    json_entries: bool,
    /// Where a retired sink that dropped batches says so (see `RunningSink::retire`).
    gave_up: mpsc::UnboundedSender<String>,
    /// The process's descriptor budget (receiving sources bound their connections by it).
    fd_limits: crate::descriptors::Limits,
}

impl Env {
    /// Entries go to stdout: in a dry run, or when no sink is configured.
    fn to_stdout(&self, cfg: &Config) -> bool {
        self.mode == Mode::DryRun || cfg.has_no_sink()
    }

    /// How entries are printed there: Promtail's columns in a dry run and with `-stdin` (unless
    /// `-dry-run.format=json`), JSON objects otherwise (the embedded default without `LOKI_URL`).
    fn stdout_format(&self) -> crate::sink::stdout::Format {
        use crate::sink::stdout::Format;
        if (self.mode == Mode::DryRun || self.stdin) && !self.json_entries {
            Format::Promtail
        } else {
            Format::Json
        }
    }
}

/// `check-config`: everything a start would check, without starting anything: the jobs and the
/// sinks are built as a start builds them (HTTP clients, headers, TLS files), then dropped.
pub fn check(paths: &str, expand_env: bool) -> anyhow::Result<()> {
    let cfg = crate::config::load_first_existing(paths, expand_env)?;
    check_limits(&cfg)?;
    let metrics = Arc::new(Metrics::new());
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        build_job(i, sc, &cfg, &metrics)?;
    }
    sinks::plan_sinks(&cfg, None, false, &metrics)?;
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

pub async fn run(cfg: Config, opts: Options) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("installing signal handlers")?;
    let fd_limits = crate::descriptors::Limits::from_nofile(crate::descriptors::raise_soft_limit());
    if opts.print_config {
        eprintln!("{}", cfg.to_redacted_yaml());
    }
    let stdin = opts.stdin || cfg.target_config.stdin;
    // Promtail refuses to run a config file without a client; only the embedded default (no
    // LOKI_URL), a dry run and stdin print entries instead.
    if opts.mode == Mode::Run && !opts.default_config && !stdin && cfg.has_no_sink() {
        anyhow::bail!(
            "{}: at least one client config must be provided (clients, elasticsearch or otlp); \
             use dry-run to print entries instead",
            cfg.source_name()
        );
    }
    let metrics = Metrics::new();
    let positions = open_positions(&cfg, opts.mode)?;
    let stdin_source = if stdin {
        Some(stdin_job(&cfg, &metrics)?)
    } else {
        None
    };
    let (abort_tx, abort_rx) = watch::channel(false);
    let (gave_up, mut gave_up_rx) = mpsc::unbounded_channel();
    let open_files = OpenFiles::new(fd_limits.files, metrics.clone());
    let env = Env {
        router: Router::new(Vec::new(), positions.clone()),
        metrics,
        positions,
        claims: Arc::new(Mutex::new(HashSet::new())),
        open_files,
        targets: Targets::new(),
        abort: abort_rx,
        mode: opts.mode,
        stdin,
        json_entries: opts.json_entries,
        gave_up,
        fd_limits,
    };
    if opts.mode == Mode::DryRun && env.stdout_format() == crate::sink::stdout::Format::Promtail {
        // Promtail's dry run lists the clients it would have used before the entries.
        crate::sink::stdout::print_clients(&cfg.clients);
    }
    if env.to_stdout(&cfg) && opts.mode == Mode::Run {
        if opts.default_config {
            tracing::info!(
                "no LOKI_URL set: printing entries to stdout (set LOKI_URL to ship them to Loki)"
            );
        } else {
            tracing::warn!("no clients configured: printing entries to stdout");
        }
    }
    // Promtail is ready when any target manager is; the journal's and Docker's always are.
    let needs_files = !stdin
        && !cfg.scrape_configs.is_empty()
        && cfg
            .scrape_configs
            .iter()
            .all(|sc| matches!(sc.source_kind(), Some(crate::config::SourceKind::File)));
    let server_cfg = cfg.server.clone();
    let positions_sync = cfg.positions.sync_period.get();
    let mut running = Running::start(cfg, &env)?;

    let (input_done_tx, mut input_done) = oneshot::channel::<()>();
    let stdin_task = stdin_source.map(|(labels, pipeline)| {
        let source = StdinSource {
            labels,
            pipeline,
            router: env.router.clone(),
        };
        tokio::spawn(async move {
            source.run().await;
            let _ = input_done_tx.send(());
        })
    });

    // Positions sync.
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync_positions = {
        let positions = env.positions.clone();
        let metrics = env.metrics.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(positions_sync);
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

    let trimmer = crate::memory::spawn_trimmer(stop_rx.clone());

    // HTTP server.
    let started = Arc::new(AtomicBool::new(false));
    let shown_config = Arc::new(RwLock::new(running.config().to_redacted_yaml().into()));
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(1);
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let server = if server_cfg.disable {
        None
    } else {
        let addr = listen_addr(&server_cfg)?;
        let state = ServerState {
            metrics: env.metrics.clone(),
            started: started.clone(),
            needs_files,
            health_check_target: server_cfg.health_check_target,
            config_yaml: shown_config.clone(),
            targets: env.targets.clone(),
            reload: server_cfg.enable_runtime_reload.then(|| reload_tx.clone()),
        };
        let limits = server::ConnectionLimits::from_config(&server_cfg, &fd_limits);
        let (bound, join) = server::serve(addr, state, limits, server_stop_rx)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(addr = %bound, "listening");
        if bound.ip().is_unspecified() {
            // Promtail's default (no `server` block: 0.0.0.0:80), kept for compatibility.
            tracing::warn!(addr = %bound,
                "/config and /reload are served on every interface, without authentication \
                 (/reload with server.enable_runtime_reload); set server.http_listen_address, \
                 e.g. to 127.0.0.1, to keep them local");
        }
        Some(join)
    };
    drop(reload_tx);
    started.store(true, Ordering::Release);
    env.metrics.set_started();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "logferry started");
    // systemd (Type=notify): ready now that the config loaded and sources and sinks run.
    let notifier = crate::sd_notify::Notifier::from_env().map(Arc::new);
    if let Some(n) = &notifier {
        n.notify("READY=1\nSTATUS=shipping");
        if let Some(every) = crate::sd_notify::watchdog_interval() {
            crate::sd_notify::spawn_watchdog(n.clone(), every);
        }
    }

    let mut input_open = stdin_task.is_some();
    loop {
        let reply = tokio::select! {
            signal = signals.next() => match signal {
                Signal::Shutdown => {
                    tracing::info!("shutting down: stopping sources");
                    break;
                }
                Signal::Reload => None,
            },
            done = &mut input_done, if input_open => {
                input_open = false;
                if done.is_ok() {
                    tracing::info!("end of standard input: flushing and stopping");
                    break;
                }
                continue;
            }
            Some(reply) = reload_rx.recv() => Some(reply),
            Some(sink) = gave_up_rx.recv() => {
                running.restart_reading_jobs(&sink, &env);
                continue;
            }
        };
        let answer = reload_config(&mut running, &env, &opts, notifier.as_deref());
        if answer.is_ok() {
            *shown_config.write().unwrap() = running.config().to_redacted_yaml().into();
        }
        if let Some(reply) = reply {
            let _ = reply.send(answer);
        }
    }
    if let Some(n) = &notifier {
        n.notify("STOPPING=1\nSTATUS=flushing to the sinks");
    }
    let _ = stop_tx.send(true);
    // One deadline for the whole shutdown. A source can be stuck handing over a batch (a full buffer
    // with the receiver down): past the deadline it is cancelled, and its unsent lines are read again
    // after the restart, as their positions were never committed.
    let grace = server_cfg.graceful_shutdown_timeout.get();
    let deadline = tokio::time::Instant::now() + grace;
    if let Some(task) = stdin_task {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
        }
    }
    running.shutdown(&env, deadline, &abort_tx).await;
    let _ = sync_positions.await;
    let _ = trimmer.await;
    save_positions(&env.positions, &env.metrics);
    let _ = server_stop_tx.send(true);
    if let Some(s) = server {
        let _ = tokio::time::timeout(Duration::from_secs(2), s).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Read the config again and apply it; the answer for `/reload`.
fn reload_config(
    running: &mut Running,
    env: &Env,
    opts: &Options,
    notifier: Option<&crate::sd_notify::Notifier>,
) -> Result<String, String> {
    let metrics = &env.metrics;
    if env.stdin {
        metrics.config_reload_fail.inc();
        tracing::warn!("reload requested, but reading standard input (-stdin) cannot be reloaded");
        return Err("reload is not supported with -stdin".into());
    }
    tracing::info!("reloading the config");
    if let Some(n) = notifier {
        n.notify(&format!(
            "RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC={}",
            crate::sd_notify::monotonic_usec()
        ));
    }
    let result = (opts.loader)().and_then(|cfg| running.reload(cfg, env));
    if let Some(n) = notifier {
        n.notify("READY=1\nSTATUS=shipping");
    }
    match result {
        Ok(Reloaded::Unchanged) => {
            // As in Promtail, counted as a failed reload.
            metrics.config_reload_fail.inc();
            tracing::info!("reload: the config is unchanged; nothing to do");
            Ok("config unchanged; nothing to do\n".into())
        }
        Ok(Reloaded::Applied { jobs, sinks }) => {
            metrics.config_reload_success.inc();
            tracing::info!(jobs = %jobs, sinks = %sinks, "config reloaded");
            Ok(format!("config reloaded\njobs: {jobs}\nsinks: {sinks}\n"))
        }
        Err(e) => {
            metrics.config_reload_fail.inc();
            let e = format!("{e:#}");
            tracing::error!(error = %e, "reload refused: the new config is invalid; the running one goes on");
            Err(e)
        }
    }
}

fn save_positions(positions: &Positions, metrics: &Metrics) {
    if let Err(e) = positions.save() {
        metrics.positions_save_errors.inc();
        tracing::error!(error = %e, "cannot write positions");
    }
}

fn listen_addr(server: &ServerConfig) -> anyhow::Result<SocketAddr> {
    let host = match server.http_listen_address.as_str() {
        "" => "0.0.0.0",
        h => h,
    };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", server.http_listen_port)
    } else {
        format!("{host}:{}", server.http_listen_port)
    };
    text.parse()
        .with_context(|| format!("server.http_listen_address {host:?} is not an IP address"))
}

/// SIGTERM, SIGINT and SIGHUP, caught from the start of `run`: a signal that arrives while the agent
/// is still starting is handled, not fatal (the default action of all three is to kill).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

enum Signal {
    /// SIGTERM or SIGINT.
    Shutdown,
    /// SIGHUP.
    Reload,
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

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Shutdown,
            _ = self.int.recv() => Signal::Shutdown,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
