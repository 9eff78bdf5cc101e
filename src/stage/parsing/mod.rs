//! Parsing stages: `docker`, `cri`, `regex`, `json`, `logfmt`, `multiline`, `decolorize`, `pack`
//! (Promtail's `clients/pkg/logentry/stages`, compat reference §5.1 and §5.2).
//!
//! Each stage lives in its own file, named for the stage; `docker` and `cri` share the steps Promtail
//! runs after parsing a container line ([`container`]). Two helpers reproduce Go details the stages
//! rely on: [`gojson`] writes JSON as Promtail's json-iterator does (re-serialized values, `pack`), and
//! [`weak`] reads the bodies Promtail decodes with mapstructure's `WeakDecode` (`cri`, `multiline`,
//! `pack`).
//!
//! `eventlogmessage` and `geoip` are not implemented: they fall through to the framework's
//! "not supported yet" error.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::{BuildContext, Extracted, StageFactory};
use crate::config::StageConfig;

mod container;
mod cri;
mod decolorize;
mod docker;
mod json;
mod logfmt;
mod multiline;
mod pack;
mod regex;
pub(crate) mod rfc3339;
mod weak;

#[cfg(test)]
mod tests;

/// Build `cfg` if it is one of this family's stages.
pub fn build(
    cfg: &StageConfig,
    _ctx: &BuildContext,
) -> Option<Result<Arc<dyn StageFactory>, String>> {
    let body = &cfg.body;
    let built = match cfg.name.as_str() {
        "docker" => Ok(docker::factory()),
        "cri" => cri::factory(body),
        "regex" => regex::factory(body),
        "json" => json::factory(body),
        "logfmt" => logfmt::factory(body),
        "multiline" => multiline::factory(body),
        "decolorize" => Ok(decolorize::factory()),
        "pack" => pack::factory(body),
        _ => return None,
    };
    Some(built)
}

/// A config error, worded to follow `stage "name"` in the framework's message.
fn invalid(reason: impl std::fmt::Display) -> String {
    format!("is invalid: {reason}")
}

pub(crate) use crate::stage::value::value_to_string as go_string;

/// The text a stage with a `source` reads: `extracted[source]` as a string, or `None` when the key is
/// missing or has no string form (Promtail then skips the entry silently).
fn source_text<'a>(extracted: &'a Extracted, source: &str) -> Option<Cow<'a, str>> {
    extracted.get(source).and_then(go_string)
}

/// Set `extracted[key]` to a string, reusing the key (and the old string's buffer) when it is there.
fn set_string(extracted: &mut Extracted, key: &str, value: &str) {
    extracted.set_str(key, value);
}

/// Set `extracted[key]` to `value`, reusing the key when it is there.
fn set_value(extracted: &mut Extracted, key: &str, value: Value) {
    extracted.set(key, value);
}
