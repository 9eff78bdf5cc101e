//! `structured_metadata` (alias `non_indexed_labels`): attach Loki structured metadata
//! (Promtail `stages/structuredmetadata.go`).
//!
//! The body is a `name: source` map, as for `labels` (an empty source means the name). For each
//! entry the value is `extracted[source]` converted with Promtail's `getString`, or, if `extracted`
//! has no such key, the stream label `source`. The pair is appended to the entry's metadata, and a
//! stream label named `source` holding the same value is removed: labels are copied into `extracted`
//! at pipeline start, so `structured_metadata {pod_uid:}` moves a `pod_uid` label out of the stream
//! labels into metadata.

use std::sync::Arc;

use super::labels::decode_label_map;
use crate::stage::value::value_to_string;
use crate::stage::{Item, Stage, StageFactory};

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let map = decode_label_map("structured_metadata", body)?;
    Ok(Arc::new(StructuredMetadataStage { map: map.into() }))
}

#[derive(Clone)]
struct StructuredMetadataStage {
    /// (metadata name, extracted key or label name)
    map: Arc<[(String, String)]>,
}

impl StageFactory for StructuredMetadataStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for StructuredMetadataStage {
    fn name(&self) -> &'static str {
        "structured_metadata"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        for (name, source) in self.map.iter() {
            let value = match item.extracted.get(source) {
                Some(v) => match value_to_string(v) {
                    Some(s) => s.into_owned(),
                    None => continue,
                },
                None => match item.labels.get(source) {
                    Some(s) => s.to_string(),
                    None => continue,
                },
            };
            if item.labels.get(source) == Some(value.as_str()) {
                item.labels.to_mut().remove(source);
            }
            item.metadata.push((name.clone(), value));
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::stage::transforming::{build_error, run};

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn owned(p: Pairs) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn structured_metadata_examples() {
        // (stages, input labels, extracted, expected metadata, expected labels)
        let cases: &[(&str, Pairs, serde_json::Value, Pairs, Pairs)] = &[
            // structuredmetadata_test.go: from a parsed value.
            (
                "- structured_metadata: {app: ~}",
                &[],
                json!({"app": "loki", "component": "ingester"}),
                &[("app", "loki")],
                &[],
            ),
            // The deprecated name works the same.
            (
                "- non_indexed_labels: {app: ~}",
                &[],
                json!({"app": "loki"}),
                &[("app", "loki")],
                &[],
            ),
            // From a stream label (copied into extracted at pipeline start): the label moves.
            (
                "- structured_metadata: {pod_uid: ~}",
                &[("job", "k8s"), ("pod_uid", "1234")],
                json!({}),
                &[("pod_uid", "1234")],
                &[("job", "k8s")],
            ),
            // A different metadata name for the label.
            (
                "- structured_metadata: {pod_name: pod}",
                &[("component", "querier"), ("pod", "loki-querier-0")],
                json!({}),
                &[("pod_name", "loki-querier-0")],
                &[("component", "querier")],
            ),
            // The extracted value wins, and the label stays when it differs.
            (
                "- structured_metadata: {app: ~}",
                &[("app", "label-value")],
                json!({"app": "parsed"}),
                &[("app", "parsed")],
                &[("app", "label-value")],
            ),
            // Numbers convert; null and missing are skipped.
            (
                "- structured_metadata: {status: ~, gone: ~, nothing: ~}",
                &[],
                json!({"status": 200, "nothing": null}),
                &[("status", "200")],
                &[],
            ),
        ];
        for (stages, labels, extracted, want_meta, want_labels) in cases {
            let out = run(stages, "line", labels, extracted.clone());
            assert_eq!(out[0].metadata, owned(want_meta), "{stages}");
            let got: Vec<(String, String)> = out[0]
                .labels
                .map()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(got, owned(want_labels), "{stages}");
        }
    }

    #[test]
    fn structured_metadata_after_static_labels() {
        // A label set by a stage (not copied into extracted) still moves into metadata.
        let stages = "- structured_metadata: {pod: ~}";
        let mut pipeline = crate::stage::testing::pipeline(stages).unwrap();
        let mut item = crate::stage::Item::new(crate::stage::testing::entry("line", &[]), 0);
        item.labels
            .to_mut()
            .insert("pod".into(), "loki-querier-664f97db8d-qhnwg".into());
        let out = pipeline.run_items(vec![item], 0);
        assert_eq!(
            out[0].metadata,
            owned(&[("pod", "loki-querier-664f97db8d-qhnwg")])
        );
        assert!(out[0].labels.map().is_empty());
    }

    #[test]
    fn structured_metadata_config_errors() {
        assert!(build_error("- structured_metadata: {'a-b':}").contains("invalid label name"));
    }
}
