//! Transforming stages: `template`, `replace`, `timestamp`, `output`, `labels`, `labelallow`,
//! `labeldrop`, `static_labels`, `structured_metadata` (`non_indexed_labels`), `tenant`.
//!
//! Each stage follows Promtail v3.6 (`clients/pkg/logentry/stages`); the reference for their fields,
//! defaults and edge cases is `shared/reference/promtail-compat.md` §5. Values read from `extracted`
//! are turned into strings by [`value::value_to_string`], Promtail's `getString`.

use std::sync::Arc;

use super::{BuildContext, StageFactory};
use crate::config::StageConfig;

pub mod labels;
pub mod output;
pub mod replace;
pub mod structured_metadata;
pub mod template;
pub mod tenant;
pub mod timestamp;

/// Build `cfg` if it is one of this family's stages.
pub fn build(
    cfg: &StageConfig,
    _ctx: &BuildContext,
) -> Option<Result<Arc<dyn StageFactory>, String>> {
    let body = &cfg.body;
    Some(match cfg.name.as_str() {
        "template" => template::build(body),
        "replace" => replace::build(body),
        "timestamp" => timestamp::build(body),
        "output" => output::build(body),
        "labels" => labels::build_labels(body),
        "labelallow" => labels::build_allow(body),
        "labeldrop" => labels::build_drop(body),
        "static_labels" => labels::build_static(body),
        "structured_metadata" | "non_indexed_labels" => structured_metadata::build(body),
        "tenant" => tenant::build(body),
        _ => return None,
    })
}

/// Run stages from YAML on one line whose `extracted` map also holds the keys of the JSON object
/// `extracted` (standing in for a parsing stage), and return the items that come out.
#[cfg(test)]
pub(crate) fn run(
    yaml: &str,
    line: &str,
    labels: &[(&str, &str)],
    extracted: serde_json::Value,
) -> Vec<super::Item> {
    let mut pipeline = super::testing::pipeline(yaml).expect("pipeline builds");
    let mut item = super::Item::new(super::testing::entry(line, labels), 0);
    if let serde_json::Value::Object(map) = extracted {
        item.extracted.extend(map);
    }
    pipeline.run_items(vec![item], 0)
}

/// The error building stages from YAML gives.
#[cfg(test)]
pub(crate) fn build_error(yaml: &str) -> String {
    match super::testing::pipeline(yaml) {
        Ok(_) => panic!("expected an error building {yaml}"),
        Err(e) => e,
    }
}
