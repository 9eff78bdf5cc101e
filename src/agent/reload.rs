//! What runs for the current config (its jobs and sinks), and a config reload.
//!
//! A reload (SIGHUP, or `/reload` with `server.enable_runtime_reload`) reads the config again with the
//! original command line, builds every job and sink of it first (a config with an error is refused and
//! the running one keeps running), then compares it with the running one, by job name and sink name:
//!
//! * an unchanged job or sink keeps running, untouched;
//! * a changed one is restarted: the old instance stops (a job's sources send what they hold; a sink
//!   finishes its push, leaving the rest in its buffer), and the new one starts where it left off: a
//!   job once the old one's batches are safe in the sinks (so it resumes from positions that cover
//!   them), a sink once its buffer directory is free. Nothing is lost or sent twice;
//! * a removed one stops the same way; an added one starts.
//!
//! `server` and `positions` are not re-applied (as in Promtail): a change there is logged and needs a
//! restart.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::jobs::{build_job, listen_located, Job, JobSource, JobSpec, RunningJob};
use super::sinks::{plan_sinks, warn_orphaned_buffers, RunningSink, SinkPlan};
use super::{check_limits, Env};
use crate::config::Config;
use crate::source::journal;

/// A config's jobs and sinks, built and checked, not started.
struct Plan {
    jobs: Vec<(Job, JobSpec)>,
    sinks: Vec<SinkPlan>,
}

impl Plan {
    fn build(cfg: &Config, env: &Env) -> anyhow::Result<Self> {
        check_limits(cfg)?;
        let mut jobs = Vec::new();
        if !env.stdin {
            for (i, sc) in cfg.scrape_configs.iter().enumerate() {
                let job = build_job(i, sc, cfg, &env.metrics)?;
                // A journal job needs libsystemd, loaded at run time: say so now rather than run
                // without it.
                if let JobSource::Journal { .. } = job.source {
                    journal::sys::library().map_err(|e| {
                        let path = format!("scrape_configs[{i}].journal");
                        cfg.error_at(&path, format!("{e} (job {:?})", job.name))
                    })?;
                }
                jobs.push((job, JobSpec::of(sc, cfg)));
            }
        }
        let stdout = env.to_stdout(cfg).then(|| env.stdout_format());
        let sinks = plan_sinks(cfg, stdout, env.stdin, &env.metrics)?;
        Ok(Plan { jobs, sinks })
    }
}

/// The jobs and sinks at work.
pub(super) struct Running {
    cfg: Config,
    sinks: Vec<RunningSink>,
    jobs: Vec<RunningJob>,
    /// Jobs a reload removed, stopping.
    stopping: Vec<RunningJob>,
    /// Sinks a reload removed or replaced, finishing.
    retiring: Vec<JoinHandle<()>>,
}

/// What a reload changed, by name.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(",")
            }
        };
        write!(
            f,
            "restarted {}; added {}; removed {}; unchanged {}",
            list(&self.restarted),
            list(&self.added),
            list(&self.removed),
            list(&self.kept)
        )
    }
}

/// What a reload did.
#[derive(Debug)]
pub(super) enum Reloaded {
    Unchanged,
    Applied { jobs: Changes, sinks: Changes },
}

impl Running {
    /// Build and start everything `cfg` holds.
    pub fn start(cfg: Config, env: &Env) -> anyhow::Result<Self> {
        let plan = Plan::build(&cfg, env)?;
        let sinks = plan
            .sinks
            .into_iter()
            .map(|p| RunningSink::start(p, &env.metrics, None))
            .collect::<anyhow::Result<Vec<_>>>()?;
        env.router
            .set_routes(sinks.iter().map(|s| s.route.clone()).collect());
        if !env.to_stdout(&cfg) {
            warn_orphaned_buffers(&cfg);
        }
        let mut jobs = Vec::new();
        for (i, (mut job, spec)) in plan.jobs.into_iter().enumerate() {
            listen_located(&mut job, i, &cfg)?;
            jobs.push(RunningJob::start(job, spec, &cfg, env, None));
        }
        Ok(Running {
            cfg,
            sinks,
            jobs,
            stopping: Vec::new(),
            retiring: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Apply `new`: restart what changed, start what was added, stop what was removed. An invalid
    /// config changes nothing and is returned as the error.
    pub fn reload(&mut self, mut new: Config, env: &Env) -> anyhow::Result<Reloaded> {
        keep_what_needs_a_restart(&self.cfg, &mut new);
        if new == self.cfg {
            return Ok(Reloaded::Unchanged);
        }
        let plan = Plan::build(&new, env)?;
        let sinks = self.reload_sinks(plan.sinks, &new, env)?;
        let jobs = self.reload_jobs(plan.jobs, &new, env);
        if !env.to_stdout(&new) {
            warn_orphaned_buffers(&new);
        }
        self.cfg = new;
        Ok(Reloaded::Applied { jobs, sinks })
    }

    fn reload_sinks(
        &mut self,
        plans: Vec<SinkPlan>,
        new: &Config,
        env: &Env,
    ) -> anyhow::Result<Changes> {
        let grace = new.server.graceful_shutdown_timeout.get();
        let mut plans: Vec<Option<SinkPlan>> = plans.into_iter().map(Some).collect();
        // Added sinks first: opening a buffer can fail, and then nothing must have changed.
        let mut added: Vec<Option<RunningSink>> = plans.iter().map(|_| None).collect();
        for (plan, slot) in plans.iter_mut().zip(added.iter_mut()) {
            let name = &plan.as_ref().expect("all there").name;
            if self.sinks.iter().any(|s| &s.name == name) {
                continue;
            }
            match RunningSink::start(plan.take().expect("taken once"), &env.metrics, None) {
                Ok(s) => *slot = Some(s),
                Err(e) => {
                    for s in added.into_iter().flatten() {
                        self.retiring
                            .push(s.retire(grace, env.abort.clone(), env.gave_up.clone()));
                    }
                    return Err(e);
                }
            }
        }
        let mut old: HashMap<String, RunningSink> =
            self.sinks.drain(..).map(|s| (s.name.clone(), s)).collect();
        let mut changes = Changes::default();
        for (plan, added) in plans.into_iter().zip(added) {
            if let Some(s) = added {
                changes.added.push(s.name.clone());
                self.sinks.push(s);
                continue;
            }
            let plan = plan.expect("not added: still here");
            let running = old.remove(&plan.name).expect("not added: running");
            if running.spec == plan.spec {
                changes.kept.push(plan.name);
                self.sinks.push(running);
                continue;
            }
            changes.restarted.push(plan.name.clone());
            let disk = running.has_disk_buffer() && plan.has_disk_buffer();
            let finished = running.retire(grace, env.abort.clone(), env.gave_up.clone());
            let after = if disk {
                // The new instance opens the same buffer directory once the old one has closed it.
                Some(finished)
            } else {
                self.retiring.push(finished);
                None
            };
            let started = RunningSink::start(plan, &env.metrics, after);
            self.sinks
                .push(started.expect("a restarted sink opens its buffer later, or has none"));
        }
        for (name, s) in old {
            changes.removed.push(name);
            self.retiring
                .push(s.retire(grace, env.abort.clone(), env.gave_up.clone()));
        }
        env.router
            .set_routes(self.sinks.iter().map(|s| s.route.clone()).collect());
        self.retiring.retain(|h| !h.is_finished());
        Ok(changes)
    }

    fn reload_jobs(&mut self, plans: Vec<(Job, JobSpec)>, new: &Config, env: &Env) -> Changes {
        let mut old: HashMap<Arc<str>, RunningJob> =
            self.jobs.drain(..).map(|j| (j.name.clone(), j)).collect();
        let mut changes = Changes::default();
        let mut jobs = Vec::new();
        for (job, spec) in plans {
            let name = job.name.to_string();
            match old.remove(&job.name) {
                Some(running) if running.spec == spec => {
                    changes.kept.push(name);
                    jobs.push(running);
                }
                Some(running) => {
                    changes.restarted.push(name);
                    running.stop();
                    jobs.push(RunningJob::start(job, spec, new, env, Some(running)));
                }
                None => {
                    changes.added.push(name);
                    jobs.push(RunningJob::start(job, spec, new, env, None));
                }
            }
        }
        for (name, running) in old {
            changes.removed.push(name.to_string());
            running.stop();
            self.stopping.push(running);
        }
        self.jobs = jobs;
        self.stopping.retain(|j| !j.is_finished());
        changes
    }
}

impl Running {
    /// A retired sink gave up batches it had not stored (see [`RunningSink::retire`]): their
    /// positions can never be committed, and every later one of the same file or cursor waits behind
    /// them. Restart the jobs that read with positions (files, journal, containers) so that they
    /// read again from what is committed; the receivers' clients were answered "not safe" already.
    pub fn restart_reading_jobs(&mut self, sink: &str, env: &Env) {
        let plan = match Plan::build(&self.cfg, env) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(sink, error = %e, "cannot rebuild the jobs to read again what a sink gave up");
                return;
            }
        };
        let mut restarted = Vec::new();
        for (job, spec) in plan.jobs {
            let reads_positions = matches!(
                job.source,
                JobSource::Files { .. } | JobSource::Journal { .. } | JobSource::Docker(_)
            );
            let Some(i) = self.jobs.iter().position(|j| j.name == job.name) else {
                continue;
            };
            if !reads_positions {
                continue;
            }
            let running = self.jobs.remove(i);
            running.stop();
            restarted.push(job.name.to_string());
            self.jobs
                .push(RunningJob::start(job, spec, &self.cfg, env, Some(running)));
        }
        tracing::warn!(sink, jobs = ?restarted,
            "the sink's previous instance dropped batches it had not stored; restarting the jobs that \
             read them, from their committed positions (lines since are read again)");
    }

    /// Stop the sources, then let the sinks flush until shortly before `deadline`; then `abort` makes
    /// them give up (what they did not send stays unacknowledged, or in their buffers), and at
    /// `deadline` the agent stops without them whatever they are stuck on.
    pub async fn shutdown(
        self,
        env: &Env,
        deadline: tokio::time::Instant,
        abort: &watch::Sender<bool>,
    ) {
        // The sinks are told to give up a little before the deadline, so that they have stopped, and
        // the positions are saved, by the deadline itself.
        let grace = deadline.saturating_duration_since(tokio::time::Instant::now());
        let give_up = deadline - (grace / 5).min(GIVE_UP_BEFORE_DEADLINE);
        let jobs: Vec<RunningJob> = self.jobs.into_iter().chain(self.stopping).collect();
        for job in &jobs {
            job.stop();
        }
        let mut stopped = true;
        for job in jobs {
            stopped &= job.join(give_up).await;
        }
        if !stopped {
            tracing::warn!("sources did not stop in time (sinks full?); cancelled them");
        }
        // Nothing new enters: each sink sees the end of its input once no batch holds it.
        env.router.set_routes(Vec::new());
        let (aborts, mut tasks): (Vec<_>, Vec<_>) =
            self.sinks.into_iter().map(RunningSink::close).unzip();
        tasks.extend(self.retiring);
        let timeout = give_up.saturating_duration_since(tokio::time::Instant::now());
        tracing::info!(?timeout, "flushing sinks");
        let mut all = tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
        });
        if tokio::time::timeout_at(give_up, &mut all).await.is_ok() {
            return;
        }
        tracing::warn!(
            "sinks did not flush in time; unsent lines will be read again after restart"
        );
        for a in aborts {
            let _ = a.send(true);
        }
        let _ = abort.send(true);
        // Whatever a buffer is stuck on (a disk that cannot be written), the agent stops by the
        // deadline: a buffer's unsent records stay on disk, and unbuffered lines are read again.
        if tokio::time::timeout_at(deadline, &mut all).await.is_err() {
            all.abort();
            tracing::warn!("sinks did not stop by the shutdown deadline; stopping without them");
        }
    }
}

/// At most this much of the shutdown deadline is left to sinks that were told to give up.
const GIVE_UP_BEFORE_DEADLINE: Duration = Duration::from_secs(2);

/// `server` and `positions` take effect at start only (as in Promtail): keep the running ones, and say
/// that a change there needs a restart.
fn keep_what_needs_a_restart(running: &Config, new: &mut Config) {
    if new.server != running.server {
        tracing::warn!("reload: the server block changed; it takes effect at the next restart");
        new.server = running.server.clone();
    }
    if new.positions != running.positions {
        tracing::warn!("reload: the positions block changed; it takes effect at the next restart");
        new.positions = running.positions.clone();
    }
}
