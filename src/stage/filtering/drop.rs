//! `drop`: drop entries that meet every configured criterion (Promtail's `stages/drop.go`, compat §5.4).
//!
//! The criteria are ANDed, checked cheapest first, as Promtail checks them:
//!
//! * `longer_than` (`8kb`, `1024`): the line is longer than that many bytes;
//! * `older_than` (Go duration): the timestamp is before now minus it;
//! * `source` alone (a key or a list of keys): **every** key is in `extracted` (a null value counts;
//!   Promtail's docs say "any", its code says "all");
//! * `expression` alone: the unanchored regex matches the line;
//! * `source` with `expression`, or with `value` (an exact match): the values of the keys that are
//!   present, as strings, joined with `separator` (default `;`), match. A value that is not a string,
//!   number or bool (null, a list) means no drop.
//!
//! Dropped entries are counted in `logentry_dropped_lines_total{reason}` (`drop_counter_reason`, default
//! `drop_stage`). The body is decoded weakly, as Promtail does (`value: 200` is the string "200").

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use regex::Regex;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::config::{ByteSize, GoDuration};
use crate::goregex::compile as compile_go_regex;
use crate::stage::value::value_to_string as get_string;
use crate::stage::weak::WeakString;
use crate::stage::{decode, BuildContext, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct DropConfig {
    drop_counter_reason: Option<WeakString>,
    source: Option<Sources>,
    value: Option<WeakString>,
    separator: Option<WeakString>,
    expression: Option<WeakString>,
    older_than: Option<WeakString>,
    longer_than: Option<WeakString>,
}

/// `source`: a key or a list of keys.
struct Sources(Vec<String>);

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const INVALID: &str = "drop stage source invalid type should be string or list of strings";
        match serde_yaml_ng::Value::deserialize(deserializer)? {
            serde_yaml_ng::Value::String(s) => Ok(Sources(vec![s])),
            serde_yaml_ng::Value::Sequence(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_yaml_ng::Value::String(s) => Ok(s),
                    _ => Err(de::Error::custom(INVALID)),
                })
                .collect::<Result<_, _>>()
                .map(Sources),
            _ => Err(de::Error::custom(INVALID)),
        }
    }
}

/// How the values of `source` are tested, when they are.
enum ValueTest {
    Regex(Regex),
    /// `value`: Promtail compiles it as `^QuoteMeta(value)$`, an exact comparison.
    Exact(String),
}

struct DropRules {
    longer_than: Option<usize>,
    older_than_nanos: Option<i64>,
    sources: Option<Vec<String>>,
    test: Option<ValueTest>,
    separator: String,
    dropped: Counter,
}

pub fn build(
    body: &serde_yaml_ng::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: DropConfig = decode("drop", body)?;
    if cfg.source.is_none()
        && cfg.expression.is_none()
        && cfg.older_than.is_none()
        && cfg.longer_than.is_none()
    {
        return Err("drop stage config must contain at least one of `source`, `expression`, `older_than` or `longer_than`".into());
    }
    let reason = match cfg.drop_counter_reason {
        Some(WeakString(r)) if !r.is_empty() => r,
        _ => "drop_stage".into(),
    };
    let older_than_nanos = cfg
        .older_than
        .map(|WeakString(d)| {
            GoDuration::parse(&d)
                .map(|d| i64::try_from(d.get().as_nanos()).unwrap_or(i64::MAX))
                .map_err(|e| {
                    format!(
                        "drop stage invalid duration, {d} cannot be converted to a duration: {e}"
                    )
                })
        })
        .transpose()?;
    if cfg.value.is_some() && cfg.source.is_none() {
        return Err("drop stage config must contain `source` if `value` is specified".into());
    }
    if cfg.value.is_some() && cfg.expression.is_some() {
        return Err("drop stage config error, `value` and `expression` cannot both be defined at the same time.".into());
    }
    let test = match (cfg.expression, cfg.value) {
        (Some(WeakString(expr)), _) => {
            Some(ValueTest::Regex(compile_go_regex(&expr).map_err(|e| {
                format!("drop stage regex compilation error: {e}")
            })?))
        }
        (None, Some(WeakString(value))) => Some(ValueTest::Exact(value)),
        (None, None) => None,
    };
    let longer_than = cfg
        .longer_than
        .map(|WeakString(size)| {
            ByteSize::parse(&size)
                .map(|b| usize::try_from(b.get()).unwrap_or(usize::MAX))
                .map_err(|e| format!("drop stage failed to parse longer_than to bytes: {e}"))
        })
        .transpose()?;
    Ok(Arc::new(DropFactory(Arc::new(DropRules {
        longer_than,
        older_than_nanos,
        sources: cfg.source.map(|Sources(s)| s),
        test,
        separator: cfg.separator.map_or_else(|| ";".into(), |WeakString(s)| s),
        dropped: ctx.metrics.dropped_lines_counter(&reason),
    }))))
}

struct DropFactory(Arc<DropRules>);

impl StageFactory for DropFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(DropStage {
            rules: self.0.clone(),
            joined: String::new(),
        })
    }
}

struct DropStage {
    rules: Arc<DropRules>,
    /// Reused buffer for the joined source values.
    joined: String,
}

impl DropStage {
    fn should_drop(&mut self, item: &Item) -> bool {
        let rules = &*self.rules;
        if let Some(max) = rules.longer_than {
            if item.line.len() <= max {
                return false;
            }
        }
        if let Some(age) = rules.older_than_nanos {
            if item.timestamp >= crate::entry::now_nanos().saturating_sub(age) {
                return false;
            }
        }
        match (&rules.sources, &rules.test) {
            (Some(sources), None) => sources.iter().all(|s| item.extracted.contains_key(s)),
            (None, Some(ValueTest::Regex(re))) => re.is_match(&item.line),
            (Some(sources), Some(test)) => {
                self.joined.clear();
                let mut first = true;
                for value in sources.iter().filter_map(|s| item.extracted.get(s)) {
                    let Some(text) = get_string(value) else {
                        return false;
                    };
                    if !first {
                        self.joined.push_str(&rules.separator);
                    }
                    first = false;
                    self.joined.push_str(&text);
                }
                match test {
                    ValueTest::Regex(re) => re.is_match(&self.joined),
                    ValueTest::Exact(v) => self.joined == *v,
                }
            }
            // `value` without `source` is refused when the stage is built.
            (None, _) => true,
        }
    }
}

impl Stage for DropStage {
    fn name(&self) -> &'static str {
        "drop"
    }

    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        if self.should_drop(&item) {
            self.rules.dropped.inc();
        } else {
            out.push(item);
        }
    }
}

#[cfg(test)]
mod tests;
