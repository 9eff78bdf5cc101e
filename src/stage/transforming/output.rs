//! `output`: replace the log line with an extracted value (Promtail `stages/output.go`).
//!
//! The line becomes the string form of `extracted[source]`. A missing source, or a value that does
//! not convert to a string (null, array, object), leaves the line unchanged.

use std::sync::Arc;

use serde::Deserialize;

use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct OutputConfig {
    source: Option<String>,
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: OutputConfig = decode("output", body)?;
    let source = cfg
        .source
        .filter(|s| !s.is_empty())
        .ok_or("output source value is required if output is specified")?;
    Ok(Arc::new(OutputStage { source }))
}

#[derive(Clone)]
struct OutputStage {
    source: String,
}

impl StageFactory for OutputStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for OutputStage {
    fn name(&self) -> &'static str {
        "output"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if let Some(value) = item.extracted.get(&self.source).and_then(value_to_string) {
            // Reuse the line's buffer.
            item.line.clear();
            item.line.push_str(&value);
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::stage::transforming::{build_error, run};

    #[test]
    fn output_examples() {
        // (extracted, line, expected line)
        let cases = [
            // Promtail docs: `json {user:, message:}` then `output {source: message}`.
            (
                json!({"user": "alexis", "message": "hello, world!"}),
                r#"{"user": "alexis", "message": "hello, world!"}"#,
                "hello, world!",
            ),
            // Numbers and bools are written as Promtail's getString writes them.
            (json!({"message": 12.5}), "x", "12.5"),
            (json!({"message": 125.0}), "x", "125"),
            (json!({"message": true}), "x", "true"),
            // Missing source: unchanged.
            (json!({}), "original", "original"),
            // null, arrays and objects do not convert: unchanged.
            (json!({"message": null}), "original", "original"),
            (json!({"message": {"a": 1}}), "original", "original"),
            (json!({"message": [1]}), "original", "original"),
            // The empty string is a value.
            (json!({"message": ""}), "original", ""),
        ];
        for (extracted, line, want) in cases {
            let out = run("- output: {source: message}", line, &[], extracted.clone());
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].line, want, "{extracted} on {line}");
        }
        // A label is copied into extracted at pipeline start, so it can be output.
        let out = run(
            "- output: {source: filename}",
            "line",
            &[("filename", "/var/log/a.log")],
            json!({}),
        );
        assert_eq!(out[0].line, "/var/log/a.log");
    }

    #[test]
    fn output_requires_source() {
        for yaml in ["- output: {}", "- output:", "- output: {source: ''}"] {
            assert!(
                build_error(yaml).contains("output source value is required"),
                "{yaml}"
            );
        }
    }
}
