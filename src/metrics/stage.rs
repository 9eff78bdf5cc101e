//! The `metrics` pipeline stage's custom metrics (Promtail's `logentry/metric`): a store of series with
//! their last update time, encoded at scrape time by a collector that first removes the series idle for
//! longer than their metric's `max_idle_duration`. prometheus-client's `Family` cannot expire series and
//! its `Registry` cannot take metrics once shared, hence this store, registered once in
//! [`super::Metrics::new`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
    MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::write_escaped;

/// What a series of the `metrics` stage is.
#[derive(Debug, Clone, PartialEq)]
pub enum StageMetricKind {
    Counter,
    Gauge,
    /// Bucket upper bounds, strictly increasing, without the implicit `+Inf`.
    Histogram(Vec<f64>),
}

/// One change to a series: counters and gauges add or set, histograms observe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeriesUpdate {
    Add(f64),
    Set(f64),
    Observe(f64),
}

#[derive(Debug)]
struct Series {
    labels: Vec<(String, String)>,
    /// The counter's or gauge's value, the histogram's sum.
    value: f64,
    count: u64,
    /// Histogram observations per bucket (not cumulative), the last one `+Inf`.
    buckets: Vec<u64>,
    last_update: Instant,
}

/// One custom metric of one `metrics` stage, with a series per label set. The stage's factory keeps it
/// alive; once the factory is gone (config reload), the metric leaves `/metrics`, as in Promtail.
#[derive(Debug)]
pub struct StageMetricVec {
    name: String,
    help: String,
    kind: StageMetricKind,
    max_idle: Duration,
    /// Series by a hash of their labels; a collision shares the list.
    series: Mutex<HashMap<u64, Vec<Series>>>,
}

/// Whether a label of the entry becomes a label of its series: Promtail leaves out names that are not
/// valid metric label names and the reserved `__*` ones; an empty value is no label in Prometheus.
fn is_series_label(name: &str, value: &str) -> bool {
    let mut bytes = name.bytes();
    let valid_start = matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'));
    valid_start
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__")
        && !value.is_empty()
}

fn series_labels(labels: &crate::entry::Labels) -> impl Iterator<Item = (&String, &String)> {
    labels.iter().filter(|(k, v)| is_series_label(k, v))
}

impl StageMetricVec {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> &StageMetricKind {
        &self.kind
    }

    /// Apply `update` to the series of the entry labels `labels`, creating it if needed.
    pub fn update(&self, labels: &crate::entry::Labels, update: SeriesUpdate) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (k, v) in series_labels(labels) {
            k.hash(&mut hasher);
            v.hash(&mut hasher);
        }
        let now = Instant::now();
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(hasher.finish()).or_default();
        let found = list.iter().position(|s| {
            s.labels
                .iter()
                .map(|(k, v)| (k, v))
                .eq(series_labels(labels))
        });
        let series = match found {
            Some(i) => &mut list[i],
            None => {
                let buckets = match &self.kind {
                    StageMetricKind::Histogram(bounds) => vec![0; bounds.len() + 1],
                    _ => Vec::new(),
                };
                list.push(Series {
                    labels: series_labels(labels)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    value: 0.0,
                    count: 0,
                    buckets,
                    last_update: now,
                });
                list.last_mut().expect("just pushed")
            }
        };
        series.last_update = now;
        match update {
            SeriesUpdate::Add(v) => series.value += v,
            SeriesUpdate::Set(v) => series.value = v,
            SeriesUpdate::Observe(v) => {
                if let StageMetricKind::Histogram(bounds) = &self.kind {
                    // The first bucket whose bound is >= v; NaN and values above every bound go to +Inf,
                    // as Go's sort.SearchFloat64s puts them.
                    let i = if v.is_nan() {
                        bounds.len()
                    } else {
                        bounds.partition_point(|b| *b < v)
                    };
                    series.buckets[i] += 1;
                    series.count += 1;
                    series.value += v;
                }
            }
        }
    }

    /// Drop the series not updated for `max_idle` (Promtail prunes at scrape time too).
    fn expire(&self, now: Instant) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, list| {
            list.retain(|s| now.saturating_duration_since(s.last_update) < self.max_idle);
            !list.is_empty()
        });
    }
}

/// The `metrics` stage's custom metrics, encoded on `/metrics` by a collector registered in
/// [`super::Metrics::new`].
#[derive(Debug, Default)]
pub struct StageMetrics {
    vecs: Mutex<Vec<Weak<StageMetricVec>>>,
}

impl StageMetrics {
    /// Add a metric; it is exported while the returned handle lives. `description` is the help text.
    pub fn register(
        &self,
        name: String,
        description: &str,
        kind: StageMetricKind,
        max_idle: Duration,
    ) -> Arc<StageMetricVec> {
        let mut help = String::with_capacity(description.len());
        for c in description.chars() {
            match c {
                '\\' => help.push_str("\\\\"),
                '\n' => help.push_str("\\n"),
                c => help.push(c),
            }
        }
        let vec = Arc::new(StageMetricVec {
            name,
            help,
            kind,
            max_idle,
            series: Mutex::default(),
        });
        let mut vecs = self.vecs.lock().unwrap_or_else(|e| e.into_inner());
        vecs.retain(|w| w.strong_count() > 0);
        vecs.push(Arc::downgrade(&vec));
        vec
    }

    fn live(&self) -> Vec<Arc<StageMetricVec>> {
        let mut vecs = self.vecs.lock().unwrap_or_else(|e| e.into_inner());
        vecs.retain(|w| w.strong_count() > 0);
        vecs.iter().filter_map(Weak::upgrade).collect()
    }

    /// Encode every live metric. Stages of several scrape configs may define the same metric: their
    /// series are exported as one family (a label set already exported is skipped, and so is a metric
    /// whose type differs from the first one of its name, which Prometheus' Go client would refuse).
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let live = self.live();
        let mut families: BTreeMap<&str, Vec<&StageMetricVec>> = BTreeMap::new();
        for vec in &live {
            vec.expire(now);
            let family = families.entry(vec.name.as_str()).or_default();
            let same_type = match family.first() {
                Some(first) => {
                    std::mem::discriminant(&first.kind) == std::mem::discriminant(&vec.kind)
                }
                None => true,
            };
            if same_type {
                family.push(vec);
            }
        }
        for (name, vecs) in families {
            let guards: Vec<_> = vecs
                .iter()
                .map(|v| v.series.lock().unwrap_or_else(|e| e.into_inner()))
                .collect();
            let mut seen = HashSet::new();
            let mut series: Vec<(&Series, &StageMetricKind)> = Vec::new();
            for (vec, guard) in vecs.iter().zip(&guards) {
                for s in guard.values().flatten() {
                    if seen.insert(&s.labels) {
                        series.push((s, &vec.kind));
                    }
                }
            }
            if series.is_empty() {
                continue;
            }
            series.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
            let first = vecs[0];
            let (family_name, metric_type) = match first.kind {
                // The text encoder appends `_total` to counter samples.
                StageMetricKind::Counter => (
                    name.strip_suffix("_total").unwrap_or(name),
                    MetricType::Counter,
                ),
                StageMetricKind::Gauge => (name, MetricType::Gauge),
                StageMetricKind::Histogram(_) => (name, MetricType::Histogram),
            };
            let mut metric =
                encoder.encode_descriptor(family_name, &first.help, None, metric_type)?;
            for (s, kind) in series {
                if s.labels.is_empty() {
                    encode_series(&mut metric, s, kind)?;
                } else {
                    let labels = SeriesLabels(&s.labels);
                    encode_series(&mut metric.encode_family(&labels)?, s, kind)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_series(
    e: &mut MetricEncoder,
    s: &Series,
    kind: &StageMetricKind,
) -> Result<(), std::fmt::Error> {
    match kind {
        StageMetricKind::Counter => e.encode_counter::<NoLabelSet, _, f64>(&s.value, None),
        StageMetricKind::Gauge => e.encode_gauge(&s.value),
        StageMetricKind::Histogram(bounds) => {
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(s.buckets.iter().copied())
                .collect();
            e.encode_histogram::<NoLabelSet>(s.value, s.count, &buckets, None)
        }
    }
}

/// A series' labels, values escaped.
struct SeriesLabels<'a>(&'a [(String, String)]);

struct EscapedStr<'a>(&'a str);

impl EncodeLabelValue for EscapedStr<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, self.0)
    }
}

impl EncodeLabelSet for SeriesLabels<'_> {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        for (k, v) in self.0 {
            (k.as_str(), EscapedStr(v)).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Encodes a [`StageMetrics`] on every scrape.
#[derive(Debug)]
pub(super) struct Collector(pub(super) Arc<StageMetrics>);

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn labels(pairs: &[(&str, &str)]) -> crate::entry::Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stage_metrics_expire_idle_series() {
        let m = Metrics::new();
        let vec = m.stage_metrics.register(
            "promtail_custom_lines_total".into(),
            "lines\nseen",
            StageMetricKind::Counter,
            Duration::from_secs(60),
        );
        vec.update(&labels(&[("job", "a")]), SeriesUpdate::Add(1.0));
        vec.update(&labels(&[("job", "b")]), SeriesUpdate::Add(2.0));
        let text = m.encode();
        assert!(
            text.contains("# HELP promtail_custom_lines lines\\nseen\n"),
            "{text}"
        );
        assert!(
            text.contains("promtail_custom_lines_total{job=\"a\"} 1.0\n"),
            "{text}"
        );
        assert!(
            text.contains("promtail_custom_lines_total{job=\"b\"} 2.0\n"),
            "{text}"
        );
        // Not updated for a minute: gone, and the family with it.
        vec.expire(Instant::now() + Duration::from_secs(61));
        assert!(!m.encode().contains("promtail_custom_lines"));
        vec.update(&labels(&[("job", "a")]), SeriesUpdate::Add(1.0));
        assert!(m
            .encode()
            .contains("promtail_custom_lines_total{job=\"a\"} 1.0\n"));
        drop(vec);
        assert!(!m.encode().contains("promtail_custom_lines"));
    }

    #[test]
    fn stage_metrics_of_one_name_share_a_family() {
        let m = Metrics::new();
        let kind = StageMetricKind::Histogram(vec![1.0, 5.0]);
        let idle = Duration::from_secs(60);
        let a = m
            .stage_metrics
            .register("h".into(), "one", kind.clone(), idle);
        let b = m.stage_metrics.register("h".into(), "two", kind, idle);
        let c = m
            .stage_metrics
            .register("h".into(), "gauge", StageMetricKind::Gauge, idle);
        a.update(&labels(&[("job", "a")]), SeriesUpdate::Observe(0.5));
        b.update(&labels(&[("job", "b")]), SeriesUpdate::Observe(7.0));
        b.update(&labels(&[("job", "a")]), SeriesUpdate::Observe(3.0));
        b.update(&labels(&[("job", "b")]), SeriesUpdate::Observe(f64::NAN));
        c.update(&labels(&[("job", "c")]), SeriesUpdate::Set(1.0));
        let text = m.encode();
        assert_eq!(text.matches("# TYPE h histogram").count(), 1, "{text}");
        assert!(
            text.contains("h_bucket{le=\"1.0\",job=\"a\"} 1\n"),
            "{text}"
        );
        // job="a" of `b` repeats a label set already exported: skipped.
        assert!(text.contains("h_count{job=\"a\"} 1\n"), "{text}");
        assert!(
            text.contains("h_bucket{le=\"5.0\",job=\"b\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("h_bucket{le=\"+Inf\",job=\"b\"} 2\n"),
            "{text}"
        );
        // A gauge of the name of a histogram is left out.
        assert!(!text.contains("job=\"c\""), "{text}");
    }
}
