//! Filtering and accounting stages: `match`, `drop`, `limit`, `sampling`, `metrics`, and Grafana Alloy's
//! `luhn` (card-number redaction).
//!
//! Each behaves as its namesake in Promtail's `clients/pkg/logentry/stages` (`luhn` as Alloy's
//! `loki.process` `stage.luhn`); the compat reference §5.3–5.4 lists their fields and edge cases. Lines
//! they drop are counted in `logentry_dropped_lines_total{reason}` ([`crate::metrics::Metrics`]).
//! `configs/redaction.yaml` shows how `replace` and `luhn` keep secrets out of Loki.

use std::sync::Arc;

use super::{BuildContext, StageFactory};
use crate::config::StageConfig;

mod drop;
mod limit;
mod luhn;
mod match_stage;
mod metrics;
mod sampling;
pub mod selector;

#[cfg(test)]
mod redaction;

/// Build `cfg` if it is one of this family's stages.
pub fn build(
    cfg: &StageConfig,
    ctx: &BuildContext,
) -> Option<Result<Arc<dyn StageFactory>, String>> {
    let built = match cfg.name.as_str() {
        "match" => match_stage::build(&cfg.body, ctx),
        "drop" => drop::build(&cfg.body, ctx),
        "limit" => limit::build(&cfg.body, ctx),
        "sampling" => sampling::build(&cfg.body, ctx),
        "metrics" => metrics::build(&cfg.body, ctx),
        "luhn" => luhn::build(&cfg.body),
        _ => return None,
    };
    Some(built)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Pipelines whose metrics the test can read.
    use std::sync::Arc;

    use crate::config::StageConfig;
    use crate::entry::Entry;
    use crate::metrics::Metrics;
    use crate::stage::testing::entry;
    use crate::stage::{BuildContext, Pipeline, PipelineSpec};

    /// A pipeline from `pipeline_stages` YAML, with the metrics it counts into.
    pub fn setup(yaml: &str) -> Result<(Pipeline, Arc<Metrics>), String> {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        let ctx = BuildContext {
            metrics: Metrics::new(),
            job: "test".into(),
        };
        let spec = PipelineSpec::build(&stages, &ctx).map_err(|e| e.to_string())?;
        Ok((spec.instantiate(), ctx.metrics))
    }

    /// Run `entries` through `p`; what comes out.
    pub fn run(p: &mut Pipeline, mut entries: Vec<Entry>) -> Vec<Entry> {
        p.run(&mut entries, &[]);
        entries
    }

    /// Run lines labelled `{job="test"}` through `p`; the lines that come out.
    pub fn run_lines(p: &mut Pipeline, lines: &[String]) -> Vec<String> {
        let entries = lines.iter().map(|l| entry(l, &[("job", "test")])).collect();
        run(p, entries).into_iter().map(|e| e.line).collect()
    }

    /// The value of the sample `name{...labels...}` whose labels contain `labels`, 0 if absent.
    pub fn counter_value(metrics: &Metrics, name: &str, labels: &str) -> f64 {
        sample(&metrics.encode(), name, labels).unwrap_or(0.0)
    }

    /// The value of the sample `name{...}` containing `labels` in an exposition, if there is one.
    pub fn sample(exposition: &str, name: &str, labels: &str) -> Option<f64> {
        exposition
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .find(|l| l.contains(labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}
