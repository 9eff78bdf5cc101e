//! The Docker source: Promtail's `docker_sd_configs` (compat reference §3.3). Every container of a
//! daemon that the SD lists is followed through the Docker API (`GET /containers/{id}/logs` with
//! `follow`, `timestamps`, stdout and stderr), with Prometheus' `__meta_docker_*` labels, so relabel
//! rules written for Promtail work unchanged.
//!
//! Split by concern: `client.rs` (connecting, errors, backoff), `targets.rs` (meta labels),
//! `frames.rs` (stamps, 16 KiB partial lines, TTY logs), `cursor.rs` (the exact resume point),
//! `follower.rs` (one container's log), this file (discovery: which containers to follow, when).
//!
//! Discovery listens to the daemon's event stream (`start`, `restart`, `unpause`, `rename` trigger a
//! re-list soon; `destroy` drops the container's position), and re-lists every `refresh_interval` as a
//! safety net, as Promtail's SD does. When the daemon is unreachable (socket missing, permission denied,
//! daemon restarting) the source retries with exponential backoff, logs each kind of failure once, and
//! on reconnection resumes every container from its cursor, so the lines written meanwhile arrive once.
//!
//! Differences from Promtail, all deliberate: the position is exact (see `cursor.rs`) instead of whole
//! seconds; a container that stops and starts again (same ID) is followed again at once from where it
//! was, not at the next refresh with a second's worth of repeats; a renamed container's labels follow
//! its new name; a stopped container that still has a saved position is read to its end once (the lines
//! it wrote while the agent was down); a line that a `drop` rule drops, or that has no labels left after
//! relabeling, is dropped at the source (the latter with a warning), where Promtail sends it with no
//! labels for Loki to refuse with a 400 that fails the batch.
//!
//! Bollard is the Docker client: the maintained async Rust client, on hyper and tokio like the rest of
//! the agent, speaking the unix socket and TCP without a Docker CLI.

mod client;
mod cursor;
mod follower;
mod frames;
mod targets;

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, EventMessage};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::DockerSdConfig;
use crate::entry::Labels;
use crate::targets::State;
use client::{Backoff, DaemonError};
use cursor::Cursor;
pub use follower::DockerJobContext;
use follower::{Container, Done, SessionEnd};
pub use frames::SOFT_LINE_LIMIT;
use targets::AddressRules;

/// One `docker_sd_configs` entry, as the source uses it.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub host: String,
    pub filters: HashMap<String, Vec<String>>,
    pub refresh_interval: Duration,
    pub rules: AddressRules,
    /// Once connected, drop the saved positions of containers the daemon no longer has. Only right when
    /// this is the agent's one Docker daemon: with two, a position may belong to the other.
    pub sweep_positions: bool,
}

impl Daemon {
    pub fn new(sd: &DockerSdConfig, sweep_positions: bool) -> Self {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        for f in &sd.filters {
            filters
                .entry(f.name.clone())
                .or_default()
                .extend(f.values.iter().cloned());
        }
        Daemon {
            host: sd.host.clone(),
            filters,
            refresh_interval: sd.refresh_interval.0,
            rules: AddressRules::of(sd),
            sweep_positions,
        }
    }
}

/// Reconnection backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Events arriving together (a compose project starting) cause one re-list.
const EVENT_DEBOUNCE: Duration = Duration::from_millis(50);
/// A container's sessions start at most this often (a log stream that ends at once is not a hot loop).
const SESSION_GAP: Duration = Duration::from_millis(500);

pub struct DockerSource {
    pub ctx: Arc<DockerJobContext>,
    pub daemon: Daemon,
}

type Events = Pin<Box<dyn Stream<Item = Result<EventMessage, bollard::errors::Error>> + Send>>;

impl DockerSource {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut d = Discovery {
            ctx: self.ctx,
            daemon: self.daemon,
            docker: None,
            tracked: HashMap::new(),
            sessions: 0,
            done_tx,
            stop_rx,
            reported: None,
            swept: false,
            started: HashSet::new(),
        };
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let mut retry_at = Some(Instant::now());
        let mut events: Option<Events> = None;
        let mut refresh_at: Option<Instant> = None;
        let mut tick = tokio::time::interval(d.daemon.refresh_interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut lost: Option<DaemonError> = None;
            tokio::select! {
                _ = stopped(&mut shutdown) => break,
                Some(done) = done_rx.recv() => {
                    if let Some(at) = d.on_done(*done) {
                        refresh_at = Some(refresh_at.map_or(at, |r| r.min(at)));
                    }
                }
                _ = until(retry_at) => {
                    retry_at = None;
                    match d.connect().await {
                        Ok(stream) => {
                            events = Some(stream);
                            backoff.reset();
                            refresh_at = Some(Instant::now());
                        }
                        Err(e) => lost = Some(e),
                    }
                }
                ev = next_event(&mut events) => match ev {
                    Some(Ok(ev)) => {
                        if d.on_event(&ev) {
                            refresh_at.get_or_insert(Instant::now() + EVENT_DEBOUNCE);
                        }
                    }
                    Some(Err(e)) => lost = Some(client::classify(&d.daemon.host, &e)),
                    None => lost = Some(DaemonError::Unreachable {
                        host: d.daemon.host.clone(),
                        reason: "the event stream ended".into(),
                    }),
                },
                _ = tick.tick(), if d.docker.is_some() => refresh_at = Some(Instant::now()),
                _ = until(refresh_at), if d.docker.is_some() => {
                    refresh_at = None;
                    match d.refresh().await {
                        Ok(next) => refresh_at = next,
                        Err(e) => lost = Some(e),
                    }
                }
            }
            if let Some(e) = lost {
                d.report(&e);
                d.docker = None;
                events = None;
                refresh_at = None;
                retry_at = Some(Instant::now() + backoff.next_wait());
            }
        }
        let _ = stop_tx.send(true);
        while d.sessions > 0 {
            match done_rx.recv().await {
                Some(done) => {
                    d.on_done(*done);
                }
                None => break,
            }
        }
        for id in d.tracked.keys() {
            d.ctx.targets.container_gone(id);
        }
    }
}

/// A container discovery knows of.
struct Tracked {
    labels: watch::Sender<Arc<Labels>>,
    /// `None` while a session runs: the session's task owns it.
    container: Option<Box<Container>>,
    /// Read to the end while stopped: nothing to read until it runs again.
    finished: bool,
    /// Destroyed while its session ran: forget it when the session ends.
    destroyed: bool,
    last_start: Option<Instant>,
    warned: bool,
}

struct Discovery {
    ctx: Arc<DockerJobContext>,
    daemon: Daemon,
    docker: Option<Docker>,
    tracked: HashMap<String, Tracked>,
    /// Sessions running.
    sessions: usize,
    done_tx: mpsc::UnboundedSender<Box<Done>>,
    stop_rx: watch::Receiver<bool>,
    /// The kind of daemon failure last logged, so each is logged once.
    reported: Option<&'static str>,
    swept: bool,
    /// Containers that started while the agent watched, not yet listed: a container that prints and
    /// exits before the listing still gets its log read.
    started: HashSet<String>,
}

impl Discovery {
    /// Connect and subscribe to container events (before listing, so nothing falls in between).
    async fn connect(&mut self) -> Result<Events, DaemonError> {
        let docker = client::connect(&self.daemon.host).await?;
        let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        let events = docker.events(Some(EventsOptions {
            since: None,
            until: None,
            filters: Some(filters),
        }));
        if self.reported.take().is_some() {
            tracing::info!(job = %self.ctx.job, host = %self.daemon.host, "Docker daemon reachable again; resuming containers");
        } else {
            tracing::info!(job = %self.ctx.job, host = %self.daemon.host, "connected to the Docker daemon");
        }
        self.docker = Some(docker);
        Ok(Box::pin(events))
    }

    fn report(&mut self, e: &DaemonError) {
        if self.reported == Some(e.kind()) {
            tracing::debug!(job = %self.ctx.job, error = %e, "Docker daemon still unavailable");
            return;
        }
        self.reported = Some(e.kind());
        tracing::error!(job = %self.ctx.job, error = %e, "cannot use the Docker daemon; retrying with backoff");
    }

    /// What an event changes; true if the containers should be listed again.
    fn on_event(&mut self, ev: &EventMessage) -> bool {
        let action = ev.action.as_deref().unwrap_or("");
        let Some(id) = ev.actor.as_ref().and_then(|a| a.id.as_deref()) else {
            return false;
        };
        match action {
            "start" | "restart" => {
                self.started.insert(id.to_owned());
                true
            }
            "unpause" | "rename" => true,
            "destroy" => {
                self.forget(id);
                false
            }
            _ => false,
        }
    }

    /// The container was removed: its position goes (Promtail keeps it forever).
    fn forget(&mut self, id: &str) {
        let key = Cursor::key(id);
        match self.tracked.get_mut(id) {
            Some(t) if t.container.is_none() => t.destroyed = true,
            Some(_) => {
                self.tracked.remove(id);
                self.ctx.positions.retire_cursor(&key);
                self.ctx.targets.container_gone(id);
            }
            None if self.ctx.positions.cursor(&key).is_some() => {
                self.ctx.positions.retire_cursor(&key);
            }
            None => {}
        }
    }

    /// A session ended. Returns when to list again, if the container may be running again.
    fn on_done(&mut self, done: Done) -> Option<Instant> {
        self.sessions -= 1;
        self.ctx.metrics.docker_containers.dec();
        let id = done.container.id.clone();
        let t = self.tracked.get_mut(&id)?;
        if done.gone || t.destroyed {
            self.tracked.remove(&id);
            self.ctx.positions.retire_cursor(&Cursor::key(&id));
            self.ctx.targets.container_gone(&id);
            return None;
        }
        t.container = Some(done.container);
        t.finished = done.finished;
        let targets = &self.ctx.targets;
        match &done.end {
            _ if done.finished => targets.container_ended(&id, State::Stopped, None),
            SessionEnd::Failed(e) => {
                targets.container_ended(&id, State::Error, Some(e.to_string()))
            }
            SessionEnd::Eof => targets.container_ended(&id, State::Waiting, None),
            SessionEnd::Stopped | SessionEnd::RouterClosed => {}
        }
        match done.end {
            SessionEnd::Eof if !done.finished => {
                // The stream ended but the container runs (it was restarted, or the daemon broke the
                // stream): follow it again.
                Some(t.last_start.map_or_else(Instant::now, |s| s + SESSION_GAP))
            }
            SessionEnd::Failed(e) => {
                let err = client::classify(&self.daemon.host, &e);
                if matches!(err, DaemonError::Other { .. }) && !t.warned {
                    t.warned = true;
                    tracing::warn!(job = %self.ctx.job, container = %id, error = %e,
                        "cannot read the container's log; will try again at the next refresh");
                } else {
                    tracing::debug!(container = %id, error = %e, "container log stream failed");
                }
                None
            }
            _ => None,
        }
    }

    /// List the containers, update labels and start the sessions that should run. Returns when to list
    /// again for containers that could not be started yet.
    async fn refresh(&mut self) -> Result<Option<Instant>, DaemonError> {
        let Some(docker) = self.docker.clone() else {
            return Ok(None);
        };
        let host = self.daemon.host.clone();
        let fail = |e: bollard::errors::Error| client::classify(&host, &e);
        if self.daemon.sweep_positions && !self.swept {
            self.sweep(&docker).await.map_err(fail)?;
        }
        let listed = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                limit: None,
                size: false,
                filters: (!self.daemon.filters.is_empty()).then(|| self.daemon.filters.clone()),
            }))
            .await
            .map_err(fail)?;
        let networks = docker.list_networks(None).await.map_err(fail)?;
        let networks = targets::network_labels(&networks);
        let found = targets::container_targets(&listed, &networks, &self.daemon.rules);
        let running: HashMap<&str, bool> = listed
            .iter()
            .filter_map(|c| Some((c.id.as_deref()?, is_running(c))))
            .collect();
        // Docker lists only running containers unless asked for a status (Promtail's SD list).
        let by_status = self.daemon.filters.contains_key("status");
        let mut next: Option<Instant> = None;
        for (id, labels) in found {
            let run = running.get(id.as_str()).copied().unwrap_or(false);
            let in_sd = run || by_status;
            let saved = self.ctx.positions.cursor(&Cursor::key(&id)).is_some();
            let seen_running = self.started.contains(&id);
            if !in_sd && !saved && !seen_running && !self.tracked.contains_key(&id) {
                continue;
            }
            let labels = Arc::new(labels);
            let t = self.track(&id, labels);
            if run {
                t.finished = false;
            }
            if t.container.is_none() || t.finished {
                continue;
            }
            if let Some(at) = t.last_start.map(|s| s + SESSION_GAP) {
                if at > Instant::now() {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    continue;
                }
            }
            self.start(&docker, &id);
        }
        // Listed now, or left out by the filters.
        self.started.clear();
        Ok(next)
    }

    fn track(&mut self, id: &str, labels: Arc<Labels>) -> &mut Tracked {
        let ctx = &self.ctx;
        let stop = &self.stop_rx;
        let t = self
            .tracked
            .entry(id.to_owned())
            .or_insert_with(|| Tracked {
                labels: watch::channel(labels.clone()).0,
                container: Some(Box::new(Container::new(
                    id.to_owned(),
                    labels.clone(),
                    ctx,
                    stop.clone(),
                ))),
                finished: false,
                destroyed: false,
                last_start: None,
                warned: false,
            });
        t.labels.send_if_modified(|l| {
            let changed = *l != labels;
            if changed {
                *l = labels.clone();
            }
            changed
        });
        if let Some(c) = t.container.as_mut() {
            c.set_labels(labels);
        }
        t
    }

    fn start(&mut self, docker: &Docker, id: &str) {
        let Some(t) = self.tracked.get_mut(id) else {
            return;
        };
        let Some(container) = t.container.take() else {
            return;
        };
        if t.last_start.is_none() {
            tracing::info!(job = %self.ctx.job, container = %id, from = %container.cursor(), "following container log");
        }
        t.last_start = Some(Instant::now());
        self.ctx
            .targets
            .container_following(id, &self.ctx.job, container.name());
        self.sessions += 1;
        self.ctx.metrics.docker_containers.inc();
        let done = self.done_tx.clone();
        let task = follower::run_session(
            docker.clone(),
            self.ctx.clone(),
            container,
            t.labels.subscribe(),
            self.stop_rx.clone(),
        );
        tokio::spawn(async move {
            let d = task.await;
            let _ = done.send(Box::new(d));
        });
    }

    /// Drop the positions of containers removed while the agent was not running.
    async fn sweep(&mut self, docker: &Docker) -> Result<(), bollard::errors::Error> {
        let all = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await?;
        let ids: HashSet<&str> = all.iter().filter_map(|c| c.id.as_deref()).collect();
        for key in self.ctx.positions.cursor_keys() {
            let Some(id) = key.strip_prefix("cursor-") else {
                continue;
            };
            let container_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
            if container_id && !ids.contains(id) {
                tracing::info!(container = %id, "container removed while the agent was down; its position is dropped");
                self.ctx.positions.retire_cursor(&key);
            }
        }
        self.swept = true;
        Ok(())
    }
}

/// Resolves once the flag turns true (the agent is stopping).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_event(
    events: &mut Option<Events>,
) -> Option<Result<EventMessage, bollard::errors::Error>> {
    match events.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn is_running(c: &ContainerSummary) -> bool {
    matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::PAUSED)
    )
}
