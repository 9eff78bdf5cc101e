//! `sampling`: keep each entry with probability `rate` (Promtail's `stages/sampling.go`, compat §5.3).
//!
//! `rate` is a float from 0 to 1; **an omitted rate is 0 and drops everything**, as in Promtail. Dropped
//! entries are counted in `logentry_dropped_lines_total{reason}` (`drop_counter_reason`, default
//! `sampling_stage`). As Promtail (after Jaeger's probabilistic sampler) does, an entry is kept when a
//! random number in 1..2^63 is at most `rate × (2^63 − 1)`. The body is decoded weakly.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use crate::stage::weak::{WeakF64, WeakString};
use crate::stage::{decode, BuildContext, Item, Stage, StageFactory};

const MAX_RANDOM: u64 = (1 << 63) - 1;

#[derive(Deserialize)]
struct SamplingConfig {
    rate: Option<WeakF64>,
    drop_counter_reason: Option<WeakString>,
}

pub fn build(
    body: &serde_yaml_ng::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: SamplingConfig = decode("sampling", body)?;
    let rate = cfg.rate.unwrap_or_default().0;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!(
            "sampling stage failed to parse rate,Sampling Rate must be between 0.0 and 1.0, received {rate:.6}"
        ));
    }
    let reason = match cfg.drop_counter_reason {
        Some(WeakString(r)) if !r.is_empty() => r,
        _ => "sampling_stage".into(),
    };
    Ok(Arc::new(SamplingFactory {
        boundary: (MAX_RANDOM as f64 * rate) as u64,
        dropped: ctx.metrics.dropped_lines_counter(&reason),
    }))
}

struct SamplingFactory {
    boundary: u64,
    dropped: Counter,
}

impl StageFactory for SamplingFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(SamplingStage {
            boundary: self.boundary,
            dropped: self.dropped.clone(),
            rng: fastrand::Rng::new(),
        })
    }
}

struct SamplingStage {
    boundary: u64,
    dropped: Counter,
    rng: fastrand::Rng,
}

impl Stage for SamplingStage {
    fn name(&self) -> &'static str {
        "sampling"
    }

    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        if self.boundary >= self.rng.u64(1..=MAX_RANDOM) {
            out.push(item);
        } else {
            self.dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stage::filtering::test_support::{counter_value, run_lines, setup};

    #[test]
    fn keeps_about_rate_of_the_entries() {
        let cases: &[(&str, usize, usize)] = &[
            // (stage, least kept, most kept) of 10000 lines
            ("- sampling: {rate: 0.5}", 4500, 5500),
            ("- sampling: {rate: '0.1'}", 700, 1300),
            ("- sampling: {rate: 1}", 10000, 10000),
            ("- sampling: {rate: 0}", 0, 0),
            // Promtail's default: no rate, everything dropped.
            ("- sampling: {}", 0, 0),
            ("- sampling:", 0, 0),
        ];
        let lines: Vec<String> = (0..10000).map(|i| format!("line {i}")).collect();
        for (yaml, least, most) in cases {
            let (mut p, metrics) = setup(yaml).unwrap();
            let kept = run_lines(&mut p, &lines).len();
            assert!((*least..=*most).contains(&kept), "{yaml}: kept {kept}");
            let dropped = counter_value(
                &metrics,
                "logentry_dropped_lines_total",
                "reason=\"sampling_stage\"",
            );
            assert_eq!(dropped as usize, 10000 - kept, "{yaml}");
        }
    }

    #[test]
    fn counts_drops_under_its_reason() {
        let (mut p, metrics) =
            setup("- sampling: {rate: 0.0, drop_counter_reason: sampled_out}").unwrap();
        assert!(run_lines(&mut p, &["a".into(), "b".into()]).is_empty());
        let n = counter_value(
            &metrics,
            "logentry_dropped_lines_total",
            "reason=\"sampled_out\"",
        );
        assert_eq!(n, 2.0);
    }

    #[test]
    fn rejects_rates_outside_0_to_1() {
        for (yaml, want) in [
            (
                "- sampling: {rate: 1.5}",
                "Sampling Rate must be between 0.0 and 1.0, received 1.500000",
            ),
            ("- sampling: {rate: -0.1}", "received -0.100000"),
            (
                "- sampling: {rate: often}",
                "cannot parse \"often\" as a float",
            ),
        ] {
            let err = setup(yaml).err().unwrap();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
