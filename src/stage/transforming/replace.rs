//! `replace`: rewrite the parts of the line (or of `extracted[source]`) that a regex captures
//! (Promtail `stages/replace.go`, docs "replace stage").
//!
//! For every match of `expression` (RE2 syntax), every capture group that took part, named or not, is
//! replaced by the `replace` template rendered with `.Value` = the captured text (plus every extracted
//! value, as for `template`); text outside the groups is kept. A group that starts inside one already
//! replaced (a nested group) is rendered but not written again. Each named group is then stored in
//! `extracted` with its replaced value (the value rendered for the text the group captured in the first
//! match). The result goes back to the line, or to `extracted[source]`.
//!
//! As in Promtail, a `replace` template that does not parse makes the stage do nothing (Promtail
//! parses it on every line and gives up silently); logferry warns once when the config loads.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::template::{Data, Env, Template};
use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct ReplaceConfig {
    expression: Option<String>,
    source: Option<String>,
    #[serde(default)]
    replace: String,
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: ReplaceConfig = decode("replace", body)?;
    let expression = cfg
        .expression
        .filter(|e| !e.is_empty())
        .ok_or("expression is required")?;
    if cfg.source.as_deref() == Some("") {
        return Err("empty source in replace stage".into());
    }
    let regex = crate::goregex::compile(&expression)
        .map_err(|e| format!("could not compile regular expression: {e}"))?;
    let template = match Template::parse(&cfg.replace) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::warn!(
                replace = %cfg.replace,
                error = %e,
                "replace stage: the replace template does not parse; like Promtail, the stage will \
                 leave every entry unchanged"
            );
            None
        }
    };
    Ok(Arc::new(Factory {
        regex,
        source: cfg.source,
        template,
    }))
}

struct Factory {
    regex: Regex,
    source: Option<String>,
    template: Option<Arc<Template>>,
}

impl StageFactory for Factory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(ReplaceStage {
            regex: self.regex.clone(),
            source: self.source.clone(),
            template: self.template.clone(),
            env: Env::default(),
            buf: String::new(),
        })
    }
}

struct ReplaceStage {
    regex: Regex,
    source: Option<String>,
    template: Option<Arc<Template>>,
    env: Env,
    buf: String,
}

/// What replacing produced: the new text, and the named groups' values.
struct Replaced {
    text: String,
    named: Vec<(String, String)>,
}

impl ReplaceStage {
    fn replace(&mut self, item: &Item, template: &Template) -> Option<Replaced> {
        let input: Cow<str> = match &self.source {
            Some(source) => value_to_string(item.extracted.get(source)?)?,
            None => Cow::Borrowed(&item.line),
        };
        let mut text = String::new();
        let mut end = 0;
        let mut first = None;
        // Captured text -> rendered: the last rendering of a text wins, as in Promtail's map. A map,
        // not a list searched per group, so a line of thousands of distinct matches stays linear;
        // SipHash, since the keys are the log line's own text.
        let mut rendered: HashMap<&str, String> = HashMap::new();
        for caps in self.regex.captures_iter(&input) {
            for group in caps.iter().skip(1).flatten() {
                let data = Data {
                    extracted: &item.extracted,
                    value: Some(Cow::Borrowed(group.as_str())),
                    entry: None,
                };
                self.buf.clear();
                if let Err(e) = template.render(&data, &mut self.env, &mut self.buf) {
                    tracing::debug!(error = %e, "replace stage: template execution failed");
                    return None;
                }
                if end <= group.start() {
                    text.push_str(&input[end..group.start()]);
                    text.push_str(&self.buf);
                    end = group.end();
                }
                match rendered.get_mut(group.as_str()) {
                    Some(slot) => slot.clone_from(&self.buf),
                    None => {
                        rendered.insert(group.as_str(), self.buf.clone());
                    }
                }
            }
            first.get_or_insert(caps);
        }
        let first = first?;
        text.push_str(&input[end..]);
        let named = self
            .regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, name)| {
                let name = name?;
                let captured = first.get(i).map_or("", |m| m.as_str());
                let value = rendered.get(captured)?;
                Some((name.to_string(), value.clone()))
            })
            .collect();
        Some(Replaced { text, named })
    }
}

impl Stage for ReplaceStage {
    fn name(&self) -> &'static str {
        "replace"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let Some(template) = self.template.clone() else {
            out.push(item);
            return;
        };
        if let Some(replaced) = self.replace(&item, &template) {
            match &self.source {
                Some(source) => {
                    item.extracted
                        .insert(source.clone(), Value::String(replaced.text));
                }
                None => item.line = replaced.text,
            }
            for (name, value) in replaced.named {
                item.extracted.insert(name, Value::String(value));
            }
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests;
