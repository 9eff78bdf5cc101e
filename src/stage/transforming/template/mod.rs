//! `template`: set an extracted value from a Go template (Promtail `stages/template.go`, docs
//! "template stage"), and the Go `text/template` engine that `template` and `replace` share.
//!
//! The template sees every extracted value that converts to a string under its key (`.level`), the
//! source value as `.Value` (only when the source exists), and the line as `.Entry`. Its output is
//! stored in `extracted[source]`; an empty output deletes the key. A key the template names but the
//! entry lacks prints `<no value>`, as in Go. An execution error (a function given a missing value, a
//! bad regex in `regexReplaceAll`...) leaves the entry unchanged.
//!
//! The engine is logferry's own (`lex`, `parse`, `exec`, functions in `funcs`, `sprig`,
//! `printf`). The `gtmpl` crate (last release 0.7.1, August 2021; the forks `gtmpl-ng` and
//! `go-template` share its design) was evaluated and not used: it needs a map of cloned values built
//! for every render, calls functions through plain `fn` pointers (so a regex in `regexReplaceAll`
//! would be compiled on every line), and reports a missing key as an error where Go prints
//! `<no value>`. Here a template is parsed once when the config loads; rendering
//! borrows the entry's values and writes into a buffer the stage reuses.

mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod sprig;
mod value;

/// Go's `strconv.Unquote` of a double-quoted string's body, for other Go-written text (Loki label sets).
pub use lex::unquote as go_unquote;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

pub use self::exec::{Data, Env, Template};
use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct TemplateConfig {
    source: Option<String>,
    template: Option<String>,
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: TemplateConfig = decode("template", body)?;
    let source = cfg
        .source
        .filter(|s| !s.is_empty())
        .ok_or("template source value is required")?;
    let template = Template::parse(cfg.template.as_deref().unwrap_or(""))?;
    Ok(Arc::new(Factory {
        source,
        template: Arc::new(template),
    }))
}

struct Factory {
    source: String,
    template: Arc<Template>,
}

impl StageFactory for Factory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(TemplateStage {
            source: self.source.clone(),
            template: self.template.clone(),
            env: Env::default(),
            buf: String::new(),
        })
    }
}

struct TemplateStage {
    source: String,
    template: Arc<Template>,
    env: Env,
    buf: String,
}

impl Stage for TemplateStage {
    fn name(&self) -> &'static str {
        "template"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        self.buf.clear();
        let data = Data {
            value: item.extracted.get(&self.source).and_then(value_to_string),
            extracted: &item.extracted,
            entry: Some(&item.line),
        };
        let result = self.template.render(&data, &mut self.env, &mut self.buf);
        match result {
            Err(e) => {
                tracing::debug!(source = %self.source, error = %e, "template stage: execution failed");
            }
            Ok(()) if self.buf.is_empty() => {
                item.extracted.remove(&self.source);
            }
            Ok(()) => match item.extracted.get_mut(&self.source) {
                // Reuse the previous string's allocation.
                Some(Value::String(s)) => {
                    s.clear();
                    s.push_str(&self.buf);
                }
                _ => {
                    item.extracted
                        .insert(self.source.clone(), Value::String(self.buf.clone()));
                }
            },
        }
        out.push(item);
    }
}
