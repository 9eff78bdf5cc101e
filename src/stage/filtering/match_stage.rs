//! `match`: run nested stages on the entries a LogQL selector picks, or drop them (Promtail's
//! `stages/match.go`, compat §5.4).
//!
//! The selector ([`super::selector`]) tests the entry's current labels and line. With `action: keep`
//! (the default) a selected entry goes through the nested `stages`, which start, as every Promtail
//! pipeline does, by copying the current labels into `extracted`; other entries pass unchanged. With
//! `action: drop` a selected entry is dropped and counted in
//! `logentry_dropped_lines_total{reason=<drop_counter_reason>}` (default `match_stage`).
//!
//! Nested stages may hold entries (`multiline`, `cri`): the stage passes their timeouts, held origins
//! and flushes through, so a nested `multiline` works as a top-level one does. `pipeline_name` is
//! accepted and checked, and otherwise unused, as in Promtail.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use serde_json::Value;

use super::selector::Selector;
use crate::config::StageConfig;
use crate::stage::{build_stage, decode, BuildContext, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct MatchConfig {
    selector: Option<String>,
    pipeline_name: Option<String>,
    action: Option<String>,
    drop_counter_reason: Option<String>,
    stages: Option<serde_yaml_ng::Value>,
}

pub fn build(
    body: &serde_yaml_ng::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: MatchConfig = decode("match", body)?;
    if cfg.pipeline_name.as_deref() == Some("") {
        return Err(
            "match stage pipeline name can be omitted but cannot be an empty string".into(),
        );
    }
    let selector = match cfg.selector.as_deref() {
        None | Some("") => return Err("selector statement required for match stage".into()),
        Some(s) => s,
    };
    let keep = match cfg.action.as_deref() {
        None | Some("") | Some("keep") => true,
        Some("drop") => false,
        Some(other) => {
            return Err(format!(
                "match stage action should be 'keep' or 'drop', not {other:?}"
            ))
        }
    };
    let nested: Vec<StageConfig> = match cfg.stages {
        None | Some(serde_yaml_ng::Value::Null) => Vec::new(),
        Some(v) => serde_yaml_ng::from_value(v).map_err(|e| format!("stages: {e}"))?,
    };
    if keep && nested.is_empty() {
        return Err(
            "match stage requires at least one additional stage to be defined in '- stages'".into(),
        );
    }
    if !keep && !nested.is_empty() {
        return Err("match stage configured to drop entries cannot contains stages".into());
    }
    let selector = Arc::new(
        Selector::parse(selector)
            .map_err(|e| format!("invalid selector syntax for match stage: {e}"))?,
    );
    let action = if keep {
        let factories = nested
            .iter()
            .enumerate()
            .map(|(i, s)| {
                build_stage(s, ctx).map_err(|e| format!("stages[{i}]: stage {:?} {e}", s.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Action::Keep(factories)
    } else {
        let reason = match cfg.drop_counter_reason.as_deref() {
            None | Some("") => "match_stage",
            Some(r) => r,
        };
        Action::Drop(ctx.metrics.dropped_lines_counter(reason))
    };
    Ok(Arc::new(MatchFactory { selector, action }))
}

enum Action {
    Keep(Vec<Arc<dyn StageFactory>>),
    Drop(Counter),
}

struct MatchFactory {
    selector: Arc<Selector>,
    action: Action,
}

impl StageFactory for MatchFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        let mode = match &self.action {
            Action::Keep(factories) => Mode::Keep(Nested {
                stages: factories.iter().map(|f| f.instantiate()).collect(),
                input: Vec::new(),
                scratch: Vec::new(),
            }),
            Action::Drop(counter) => Mode::Drop(counter.clone()),
        };
        Box::new(MatchStage {
            selector: self.selector.clone(),
            mode,
        })
    }
}

struct MatchStage {
    selector: Arc<Selector>,
    mode: Mode,
}

enum Mode {
    Keep(Nested),
    Drop(Counter),
}

/// The nested pipeline, run item by item so that `extracted` survives into the outer stages (the
/// framework's `Pipeline::flush` hands back finished entries).
struct Nested {
    stages: Vec<Box<dyn Stage>>,
    input: Vec<Item>,
    scratch: Vec<Item>,
}

impl Nested {
    /// Run the items in `self.input` through `stages[from..]` and append what comes out to `out`.
    fn run_from(&mut self, from: usize, out: &mut Vec<Item>) {
        for stage in &mut self.stages[from..] {
            self.scratch.clear();
            for item in self.input.drain(..) {
                stage.process(item, &mut self.scratch);
            }
            std::mem::swap(&mut self.input, &mut self.scratch);
        }
        out.append(&mut self.input);
    }

    /// Flush each stage (expired items, or all) through the stages after it.
    fn flush(&mut self, now: Option<Instant>, out: &mut Vec<Item>) {
        for i in 0..self.stages.len() {
            self.input.clear();
            match now {
                Some(now) => self.stages[i].flush_expired(now, &mut self.input),
                None => self.stages[i].flush_all(&mut self.input),
            }
            if !self.input.is_empty() {
                self.run_from(i + 1, out);
            }
        }
    }
}

/// Promtail's pipeline start: every current label is (re)written into `extracted`.
fn copy_labels(item: &mut Item) {
    for (name, value) in item.labels.map() {
        let same = matches!(item.extracted.get(name), Some(Value::String(s)) if s == value);
        if !same {
            item.extracted.seed_str(name, value);
        }
    }
}

impl Stage for MatchStage {
    fn name(&self) -> &'static str {
        "match"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if !self.selector.matches(&item.labels, &item.line) {
            out.push(item);
            return;
        }
        match &mut self.mode {
            Mode::Drop(counter) => {
                counter.inc();
            }
            Mode::Keep(nested) => {
                copy_labels(&mut item);
                nested.input.clear();
                nested.input.push(item);
                nested.run_from(0, out);
            }
        }
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Item>) {
        if let Mode::Keep(nested) = &mut self.mode {
            nested.flush(Some(now), out);
        }
    }

    fn flush_all(&mut self, out: &mut Vec<Item>) {
        if let Mode::Keep(nested) = &mut self.mode {
            nested.flush(None, out);
        }
    }

    fn held_origin(&self) -> Option<u64> {
        match &self.mode {
            Mode::Keep(nested) => nested.stages.iter().filter_map(|s| s.held_origin()).min(),
            Mode::Drop(_) => None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.mode {
            Mode::Keep(nested) => nested.stages.iter().filter_map(|s| s.next_deadline()).min(),
            Mode::Drop(_) => None,
        }
    }

    fn holds_back(&self) -> bool {
        match &self.mode {
            Mode::Keep(nested) => nested.stages.iter().any(|s| s.holds_back()),
            Mode::Drop(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;
