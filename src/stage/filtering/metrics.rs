//! `metrics`: counters, gauges and histograms from extracted values, exported on `/metrics` (Promtail's
//! `stages/metrics.go` and `logentry/metric`, compat §5.3).
//!
//! The body maps a metric name to `{type, description, source, prefix, max_idle_duration, config}`:
//!
//! * `type` is `Counter`, `Gauge` or `Histogram`, in any case; the exported name is `prefix` (default
//!   `promtail_custom_`) + the metric name; `source` (default: the metric name) is the extracted key.
//! * counter `config`: `action: inc|add` (required), `value` (update only when the source, as a string,
//!   equals it), `match_all: true` (count every entry, source or not), `count_entry_bytes: true` (with
//!   `match_all` and `add`: add the line's length);
//! * gauge `config`: `action: set|inc|dec|add|sub` (required), `value`;
//! * histogram `config`: `buckets` (default Prometheus' `.005 … 10`), `value`.
//!
//! A metric is updated only when its source is in `extracted` (except `match_all` counters). Values
//! become floats from numbers, bools (1/0), numeric strings and Go durations (`"0.5ms"` → 0.0005 s);
//! others leave the metric unchanged. A series' labels are the entry's current labels, less names that
//! are not valid metric label names and the reserved `__*` ones. Series not updated for
//! `max_idle_duration` (default 5m, at least 1s) are removed at scrape time. The series live in the
//! stage's factory, shared by every target of the scrape config, and go with it on reload.
//!
//! Where Promtail fails later or worse, this stage refuses the config: an invalid metric name, buckets
//! that do not increase. A negative `add` to a counter, which panics Promtail, is ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::GoDuration;
use crate::metrics::{SeriesUpdate, StageMetricKind, StageMetricVec};
use crate::stage::value::value_to_string as get_string;
use crate::stage::weak::parse_go_float;
use crate::stage::{decode, BuildContext, Item, Stage, StageFactory};

/// Prometheus' default histogram buckets (`prometheus.DefBuckets`).
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Deserialize)]
struct MetricConfig {
    #[serde(rename = "type")]
    kind: Option<String>,
    description: Option<String>,
    source: Option<String>,
    prefix: Option<String>,
    max_idle_duration: Option<String>,
    config: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
struct CounterConfig {
    match_all: Option<bool>,
    count_entry_bytes: Option<bool>,
    value: Option<String>,
    action: Option<String>,
}

#[derive(Deserialize, Default)]
struct GaugeConfig {
    value: Option<String>,
    action: Option<String>,
}

#[derive(Deserialize, Default)]
struct HistogramConfig {
    value: Option<String>,
    buckets: Option<Vec<f64>>,
}

/// What a metric does with an entry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    /// Counter `inc`, gauge `inc`: add 1.
    Inc,
    /// Gauge `dec`: subtract 1.
    Dec,
    /// Counter or gauge `add` of the value.
    Add,
    /// Gauge `sub` of the value.
    Sub,
    /// Gauge `set` to the value.
    Set,
    /// Histogram observation of the value.
    Observe,
}

struct Metric {
    vec: Arc<StageMetricVec>,
    source: String,
    value_filter: Option<String>,
    action: Action,
    /// `match_all` counter: `Some(count_entry_bytes)`.
    match_all: Option<bool>,
}

pub fn build(
    body: &serde_yaml_ng::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn StageFactory>, String> {
    let cfgs: BTreeMap<String, MetricConfig> = decode("metrics", body)?;
    let metrics = cfgs
        .into_iter()
        .map(|(name, cfg)| {
            build_metric(&name, cfg, ctx).map_err(|e| format!("metric {name:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(MetricsFactory(Arc::new(metrics))))
}

fn build_metric(name: &str, cfg: MetricConfig, ctx: &BuildContext) -> Result<Metric, String> {
    let kind = cfg.kind.unwrap_or_default().to_lowercase();
    let max_idle = match cfg.max_idle_duration {
        None => Duration::from_secs(300),
        Some(text) => {
            let d = GoDuration::parse(&text)
                .map_err(|e| {
                    format!("max_idle_duration could not be parsed as a time.Duration: '{e}'")
                })?
                .get();
            if d < Duration::from_secs(1) {
                return Err("max_idle_duration less than 1s not allowed".into());
            }
            // Promtail keeps whole seconds.
            Duration::from_secs(d.as_secs())
        }
    };
    let prefix = cfg.prefix.filter(|p| !p.is_empty());
    let full_name = format!("{}{name}", prefix.as_deref().unwrap_or("promtail_custom_"));
    if !is_metric_name(&full_name) {
        return Err(format!(
            "{full_name:?} is not a valid metric name (letters, digits, '_' and ':', not starting with a digit)"
        ));
    }
    let config = cfg.config.unwrap_or(serde_yaml_ng::Value::Null);
    let (stage_kind, action, value_filter, match_all) = match kind.as_str() {
        "counter" => counter(&config)?,
        "gauge" => gauge(&config)?,
        "histogram" => histogram(&config)?,
        other => {
            return Err(format!(
                "invalid metric type '{other}', metric type must be one of 'counter', 'gauge', or 'histogram'"
            ))
        }
    };
    let vec = ctx.metrics.stage_metrics.register(
        full_name,
        cfg.description.as_deref().unwrap_or(""),
        stage_kind,
        max_idle,
    );
    Ok(Metric {
        vec,
        source: cfg.source.unwrap_or_else(|| name.to_owned()),
        value_filter,
        action,
        match_all,
    })
}

type Parsed = (StageMetricKind, Action, Option<String>, Option<bool>);

fn counter(config: &serde_yaml_ng::Value) -> Result<Parsed, String> {
    let cfg: CounterConfig = decode("metrics", config)?;
    let action = match cfg.action.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("") => {
            return Err("counter action must be defined as either `inc` or `add`".into())
        }
        Some("inc") => Action::Inc,
        Some("add") => Action::Add,
        Some(other) => {
            return Err(format!(
                "action {other} is not valid, action must be either `inc` or `add`"
            ))
        }
    };
    let match_all = cfg.match_all.unwrap_or(false);
    let count_bytes = cfg.count_entry_bytes.unwrap_or(false);
    if match_all && cfg.value.is_some() {
        return Err("`match_all: true` cannot be combined with `value`, please remove `match_all` or `value`".into());
    }
    if count_bytes && !match_all {
        return Err("`count_entry_bytes: true` can only be set with `match_all: true`".into());
    }
    if count_bytes && action != Action::Add {
        return Err("`count_entry_bytes: true` can only be used with `action: add`".into());
    }
    Ok((
        StageMetricKind::Counter,
        action,
        cfg.value,
        match_all.then_some(count_bytes),
    ))
}

fn gauge(config: &serde_yaml_ng::Value) -> Result<Parsed, String> {
    let cfg: GaugeConfig = decode("metrics", config)?;
    let action = match cfg.action.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("") => {
            return Err(
                "gauge action must be defined as `set`, `inc`, `dec`, `add`, or `sub`".into(),
            )
        }
        Some("set") => Action::Set,
        Some("inc") => Action::Inc,
        Some("dec") => Action::Dec,
        Some("add") => Action::Add,
        Some("sub") => Action::Sub,
        Some(other) => {
            return Err(format!(
                "action {other} is not valid, action must be `set`, `inc`, `dec`, `add`, or `sub`"
            ))
        }
    };
    Ok((StageMetricKind::Gauge, action, cfg.value, None))
}

fn histogram(config: &serde_yaml_ng::Value) -> Result<Parsed, String> {
    let cfg: HistogramConfig = decode("metrics", config)?;
    let mut buckets = cfg.buckets.unwrap_or_default();
    if buckets.is_empty() {
        buckets = DEFAULT_BUCKETS.to_vec();
    }
    // Go drops a last `+Inf`, which every histogram has anyway.
    if buckets.last() == Some(&f64::INFINITY) {
        buckets.pop();
    }
    if buckets.iter().any(|b| b.is_nan()) || buckets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "histogram buckets must be in increasing order: {buckets:?}"
        ));
    }
    Ok((
        StageMetricKind::Histogram(buckets),
        Action::Observe,
        cfg.value,
        None,
    ))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Promtail's `getFloat`: numbers, bools as 1/0, numeric strings, Go duration strings as seconds.
fn get_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => parse_go_float(s).or_else(|| go_duration_seconds(s)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Go's `time.ParseDuration(s).Seconds()`, sign included.
fn go_duration_seconds(s: &str) -> Option<f64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.starts_with(['-', '+']) {
        return None;
    }
    GoDuration::parse(rest)
        .ok()
        .map(|d| sign * d.get().as_secs_f64())
}

struct MetricsFactory(Arc<Vec<Metric>>);

impl StageFactory for MetricsFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(MetricsStage(self.0.clone()))
    }
}

struct MetricsStage(Arc<Vec<Metric>>);

impl MetricsStage {
    fn record(metric: &Metric, item: &Item) {
        let labels = item.labels.map();
        if let Some(count_bytes) = metric.match_all {
            match (count_bytes, metric.action) {
                (true, _) => metric
                    .vec
                    .update(labels, SeriesUpdate::Add(item.line.len() as f64)),
                (false, Action::Inc) => metric.vec.update(labels, SeriesUpdate::Add(1.0)),
                // `add` with nothing to add: Promtail's getFloat(nil) fails.
                (false, _) => {}
            }
            return;
        }
        let Some(value) = item.extracted.get(&metric.source) else {
            return;
        };
        if let Some(want) = &metric.value_filter {
            if get_string(value).as_deref() != Some(want.as_str()) {
                return;
            }
        }
        let update = match metric.action {
            Action::Inc => SeriesUpdate::Add(1.0),
            Action::Dec => SeriesUpdate::Add(-1.0),
            action => {
                let Some(f) = get_float(value) else {
                    return;
                };
                match action {
                    Action::Add if metric.vec.kind() == &StageMetricKind::Counter && f < 0.0 => {
                        return
                    }
                    Action::Add => SeriesUpdate::Add(f),
                    Action::Sub => SeriesUpdate::Add(-f),
                    Action::Set => SeriesUpdate::Set(f),
                    _ => SeriesUpdate::Observe(f),
                }
            }
        };
        metric.vec.update(labels, update);
    }
}

impl Stage for MetricsStage {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        for metric in self.0.iter() {
            Self::record(metric, &item);
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests;
