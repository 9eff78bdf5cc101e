//! `limit`: a token-bucket rate limit on entries (Promtail's `stages/limit.go`, compat §5.3).
//!
//! `rate` tokens a second refill a bucket of `burst` tokens (both required, > 0); each entry takes one.
//! The bucket is shared by every target of the scrape config, as Promtail's one stage instance is.
//!
//! * `drop: true`: an entry that finds no token is dropped and counted in
//!   `logentry_dropped_lines_total{reason="ratelimit_drop_stage"}`.
//! * `by_label_name: L` (needs `drop: true`): one bucket per value of the label `L`, entries without
//!   it are not limited; drops are also counted in
//!   `logentry_dropped_lines_by_label_total{label_name, label_value}`. At most `max_distinct_labels`
//!   (at least 10000) recent values keep a bucket, in Promtail's two generations; when a generation
//!   rolls over, the by-label drop counters are reset, as Promtail resets them.
//! * `drop: false` (the default): Promtail blocks the pipeline until a token is free. A logferry stage
//!   runs on its source's task and must not sleep, so it **holds** the entry instead: each entry
//!   reserves the next token when it arrives (the bucket may go into debt, as Go's `rate.Limiter.Wait`
//!   does), waits in a queue, and is released in order by `flush_expired` once its token's time has
//!   come ([`Stage::next_deadline`] tells the source when). While the queue is not empty the stage
//!   [holds back](Stage::holds_back) its source: the source reads nothing more, sleeps until the next
//!   release and flushes, so the backlog stays in the file (at most one read chunk is queued here),
//!   and reading goes at `rate`. Held entries report their origin, so the source never commits a
//!   position past them; a flush at shutdown or rotation releases them all.
//!
//! The body is decoded weakly, as Promtail does (`rate: "10"` is a number).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use crate::metrics::Metrics;
use crate::stage::weak::{WeakBool, WeakF64, WeakInt, WeakString};
use crate::stage::{decode, BuildContext, Item, Stage, StageFactory};

/// Promtail raises `max_distinct_labels` to this when `by_label_name` is set.
const MIN_DISTINCT_LABELS: usize = 10_000;

#[derive(Deserialize)]
struct LimitConfig {
    rate: Option<WeakF64>,
    burst: Option<WeakInt>,
    drop: Option<WeakBool>,
    by_label_name: Option<WeakString>,
    max_distinct_labels: Option<WeakInt>,
}

pub fn build(
    body: &serde_yaml_ng::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: LimitConfig = decode("limit", body)?;
    let rate = cfg.rate.unwrap_or_default().0;
    let burst = cfg.burst.unwrap_or_default().0;
    if rate.is_nan() || rate <= 0.0 || burst <= 0 {
        return Err(format!(
            "limit stage failed to parse rate or burst: rate ({rate}) and burst ({burst}) must both be greater than 0"
        ));
    }
    let drop = cfg.drop.unwrap_or_default().0;
    let by_label = cfg.by_label_name.map(|l| l.0).filter(|l| !l.is_empty());
    if by_label.is_some() && !drop {
        return Err("When ratelimiting by label, drop must be true".into());
    }
    let mut max_distinct =
        usize::try_from(cfg.max_distinct_labels.unwrap_or_default().0).unwrap_or(0);
    if by_label.is_some() && max_distinct < MIN_DISTINCT_LABELS {
        if max_distinct != 0 {
            tracing::warn!(
                "limit stage: max_distinct_labels was adjusted up to the minimal reasonable value of {MIN_DISTINCT_LABELS}"
            );
        }
        max_distinct = MIN_DISTINCT_LABELS;
    }
    let bucket = TokenBucket::new(rate, burst as f64, Instant::now());
    Ok(Arc::new(LimitFactory(Arc::new(Limit {
        shared: Mutex::new(Buckets {
            bucket: bucket.clone(),
            by_label: Generations::new(max_distinct),
        }),
        template: bucket,
        drop,
        by_label,
        dropped: ctx.metrics.dropped_lines_counter("ratelimit_drop_stage"),
        metrics: ctx.metrics.clone(),
    }))))
}

/// Go's `rate.Limiter`: `tokens` may go negative, a debt reservations repay as time passes.
#[derive(Debug, Clone)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// `Allow`: take a token if there is one.
    fn allow(&mut self, now: Instant) -> bool {
        self.advance(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// `Reserve`: take the next token, free now or later; when it is free.
    fn reserve(&mut self, now: Instant) -> Instant {
        self.advance(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Promtail's `GenerationalMap`: the values seen recently, at most `max` in the current generation;
/// when it fills, it becomes the old one and the one before is forgotten.
struct Generations {
    max: usize,
    current: HashMap<String, TokenBucket>,
    old: HashMap<String, TokenBucket>,
}

impl Generations {
    fn new(max: usize) -> Self {
        Generations {
            max,
            current: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// The bucket of `key` (made from `template` when new), and whether a generation rolled over.
    fn allow(&mut self, key: &str, template: &TokenBucket, now: Instant) -> (bool, bool) {
        if let Some(bucket) = self.current.get_mut(key) {
            return (bucket.allow(now), false);
        }
        let mut bucket = self.old.remove(key).unwrap_or_else(|| {
            let mut fresh = template.clone();
            fresh.last = now;
            fresh
        });
        let allowed = bucket.allow(now);
        self.current.insert(key.to_owned(), bucket);
        let rolled = self.current.len() >= self.max;
        if rolled {
            self.old = std::mem::take(&mut self.current);
        }
        (allowed, rolled)
    }
}

struct Buckets {
    bucket: TokenBucket,
    by_label: Generations,
}

/// The stage's settings and the buckets every instance of one scrape config shares.
struct Limit {
    shared: Mutex<Buckets>,
    template: TokenBucket,
    drop: bool,
    by_label: Option<String>,
    dropped: Counter,
    metrics: Arc<Metrics>,
}

struct LimitFactory(Arc<Limit>);

impl StageFactory for LimitFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(LimitStage {
            limit: self.0.clone(),
            waiting: VecDeque::new(),
        })
    }
}

struct LimitStage {
    limit: Arc<Limit>,
    /// Held entries (`drop: false`) with the time their token is free, in order.
    waiting: VecDeque<(Instant, Item)>,
}

impl LimitStage {
    fn buckets(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.limit.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&mut self, now: Instant, out: &mut Vec<Item>) {
        while self.waiting.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, item)) = self.waiting.pop_front() {
                out.push(item);
            }
        }
    }
}

impl Stage for LimitStage {
    fn name(&self) -> &'static str {
        "limit"
    }

    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        let now = Instant::now();
        if let Some(label) = &self.limit.by_label {
            let Some(value) = item.labels.get(label) else {
                out.push(item);
                return;
            };
            let (allowed, rolled) = self
                .buckets()
                .by_label
                .allow(value, &self.limit.template, now);
            if rolled {
                self.limit.metrics.dropped_lines_by_label.clear();
            }
            if allowed {
                out.push(item);
            } else {
                self.limit.dropped.inc();
                self.limit.metrics.count_dropped_by_label(label, value);
            }
            return;
        }
        if self.limit.drop {
            if self.buckets().bucket.allow(now) {
                out.push(item);
            } else {
                self.limit.dropped.inc();
            }
            return;
        }
        let ready = self.buckets().bucket.reserve(now);
        self.release(now, out);
        if ready <= now && self.waiting.is_empty() {
            out.push(item);
        } else {
            self.waiting.push_back((ready, item));
        }
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Item>) {
        self.release(now, out);
    }

    fn flush_all(&mut self, out: &mut Vec<Item>) {
        out.extend(self.waiting.drain(..).map(|(_, item)| item));
    }

    fn held_origin(&self) -> Option<u64> {
        self.waiting.iter().map(|(_, item)| item.origin).min()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.front().map(|(at, _)| *at)
    }

    fn holds_back(&self) -> bool {
        !self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests;
