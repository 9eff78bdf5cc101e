//! `regex`: match an RE2 expression against the line (or `extracted[source]`) and set every named group
//! in `extracted` (Promtail's `regex.go`, docs `stages/regex.md`, compat reference §5.1).
//!
//! * The expression is Go RE2 syntax ([`crate::goregex::translate`]) and is not anchored: like Go's
//!   `FindStringSubmatch`, it finds the leftmost match anywhere in the text.
//! * On a match every named group is set; a group that did not take part is set to `""`. Unnamed groups
//!   are ignored. No match, a missing `source`, or a source with no string form change nothing.

use std::sync::Arc;

use regex::{CaptureLocations, Regex};
use serde::Deserialize;

use super::{invalid, set_string, source_text};
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    expression: String,
    source: Option<String>,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("regex", body).map_err(invalid)?;
    if cfg.expression.is_empty() {
        return Err(invalid("expression is required"));
    }
    if cfg.source.as_deref() == Some("") {
        return Err(invalid("empty source"));
    }
    let regex = compile(&cfg.expression)
        .map_err(|e| invalid(format_args!("could not compile regular expression: {e}")))?;
    let groups = regex
        .capture_names()
        .enumerate()
        .filter_map(|(i, name)| name.map(|n| (i, n.to_owned())))
        .collect();
    Ok(Arc::new(RegexFactory {
        regex,
        groups: Arc::new(groups),
        source: cfg.source,
    }))
}

/// An unanchored regex from Go RE2 syntax.
pub use crate::goregex::compile;

struct RegexFactory {
    regex: Regex,
    /// Named groups: (group index, name).
    groups: Arc<Vec<(usize, String)>>,
    source: Option<String>,
}

impl StageFactory for RegexFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(RegexStage {
            matcher: Matcher {
                locations: self.regex.capture_locations(),
                regex: self.regex.clone(),
                groups: self.groups.clone(),
            },
            source: self.source.clone(),
        })
    }
}

struct RegexStage {
    matcher: Matcher,
    source: Option<String>,
}

struct Matcher {
    regex: Regex,
    groups: Arc<Vec<(usize, String)>>,
    locations: CaptureLocations,
}

impl Matcher {
    /// Match `input` and set the named groups in `extracted`.
    fn apply(&mut self, input: &str, extracted: &mut crate::stage::Extracted) {
        if self
            .regex
            .captures_read(&mut self.locations, input)
            .is_none()
        {
            return;
        }
        for (index, name) in self.groups.iter() {
            let text = self
                .locations
                .get(*index)
                .map_or("", |(start, end)| &input[start..end]);
            set_string(extracted, name, text);
        }
    }
}

impl Stage for RegexStage {
    fn name(&self) -> &'static str {
        "regex"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        match &self.source {
            None => self.matcher.apply(&item.line, &mut item.extracted),
            Some(source) => {
                if let Some(text) = source_text(&item.extracted, source) {
                    let text = text.into_owned();
                    self.matcher.apply(&text, &mut item.extracted);
                }
            }
        }
        out.push(item);
    }
}
