//! `pipeline_stages`: a list of single-key mappings, `- <stage name>: <body>`.
//!
//! Promtail reads this list as plain YAML values and decodes each stage body later, leniently (unknown
//! keys inside a body are ignored). The config layer therefore checks only the shape: every item is a
//! mapping with exactly one key, the key is a known stage name, and `match` stages nest a valid list under
//! `stages`. Bodies stay raw [`Value`]s for the stage builder, which knows each stage's settings.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml_ng::Value;

use super::error::Invalid;
use super::locate::{join_index, join_key, SourceMap};

/// Promtail's stage names (compat reference §5.0), plus logferry's `luhn` extension.
pub const STAGE_NAMES: &[&str] = &[
    "docker",
    "cri",
    "regex",
    "json",
    "logfmt",
    "replace",
    "multiline",
    "geoip",
    "template",
    "pack",
    "decolorize",
    "timestamp",
    "output",
    "labels",
    "labeldrop",
    "labelallow",
    "static_labels",
    "limit",
    "sampling",
    "metrics",
    "tenant",
    "structured_metadata",
    "non_indexed_labels",
    "match",
    "drop",
    "eventlogmessage",
    "luhn",
];

/// One pipeline stage: its name, its raw body, and where it starts in the file (the stage name's
/// line:column) when it came from a config file.
#[derive(Debug, Clone)]
pub struct StageConfig {
    pub name: String,
    pub body: Value,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

/// Two stages are equal when they do the same thing, wherever they are written.
impl PartialEq for StageConfig {
    fn eq(&self, other: &StageConfig) -> bool {
        self.name == other.name && self.body == other.body
    }
}

/// Why an item is not a valid stage; `key` is the offending key inside the item, if any.
struct ShapeError {
    key: Option<String>,
    message: String,
}

impl StageConfig {
    /// Checks one list item's shape and name and splits it into name and body.
    fn from_item(item: Value) -> Result<StageConfig, ShapeError> {
        let map = match item {
            Value::Mapping(map) => map,
            other => {
                return Err(ShapeError {
                    key: None,
                    message: not_a_mapping(&other),
                })
            }
        };
        let mut entries = map.into_iter();
        let Some((key, body)) = entries.next() else {
            return Err(ShapeError {
                key: None,
                message: "pipeline stage must contain only one key, the stage name; found an empty mapping".into(),
            });
        };
        let name = key_text(&key);
        if let Some((second, _)) = entries.next() {
            let second = key_text(&second);
            return Err(ShapeError {
                key: Some(second.clone()),
                message: format!(
                    "pipeline stage must contain only one key, found {name:?} and {second:?}: \
                     put each stage in its own list item (\"- {name}: ...\", \"- {second}: ...\")"
                ),
            });
        }
        if !STAGE_NAMES.contains(&name.as_str()) {
            return Err(ShapeError {
                key: Some(name.clone()),
                message: format!(
                    "unknown stage type: {name}, expected one of {}",
                    STAGE_NAMES.join(", ")
                ),
            });
        }
        Ok(StageConfig {
            name,
            body,
            line: None,
            column: None,
        })
    }

    /// For a `match` stage, its nested `stages` list (validated), or `None` for other stages or a `match`
    /// without `stages`. Nested stages carry no line:column; [`super::Config::locate`] finds them by path
    /// (`<stage path>.match.stages[<i>]`).
    pub fn nested_stages(&self) -> Option<Result<Vec<StageConfig>, String>> {
        if self.name != "match" {
            return None;
        }
        let stages = self.body.get("stages")?;
        Some(parse_list(stages, "").map_err(|invalid| invalid.message))
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

fn not_a_mapping(item: &Value) -> String {
    const SHAPE: &str = "pipeline stage must be a mapping with exactly one key, the stage name";
    match item {
        Value::String(s) if STAGE_NAMES.contains(&s.as_str()) => {
            format!("{SHAPE}; write \"- {s}:\" followed by its settings (the colon is missing)")
        }
        Value::String(s) => format!("{SHAPE}; found the string {s:?}"),
        Value::Null => format!("{SHAPE}; found an empty item"),
        Value::Sequence(_) => format!("{SHAPE}; found a list"),
        _ => format!("{SHAPE}; found a scalar"),
    }
}

impl<'de> Deserialize<'de> for StageConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let item = Value::deserialize(deserializer)?;
        StageConfig::from_item(item).map_err(|err| D::Error::custom(err.message))
    }
}

impl Serialize for StageConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serde_yaml_ng::Mapping::new();
        map.insert(Value::String(self.name.clone()), self.body.clone());
        map.serialize(serializer)
    }
}

/// Parses a YAML list of stages; errors carry the path below `base` of the offending node.
fn parse_list(list: &Value, base: &str) -> Result<Vec<StageConfig>, Invalid> {
    let Value::Sequence(items) = list else {
        return Err(Invalid::value(base, "expected a list of pipeline stages"));
    };
    let mut stages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = join_index(base, i);
        let stage = StageConfig::from_item(item.clone()).map_err(|err| match err.key {
            Some(key) => Invalid::key(join_key(&path, &key), err.message),
            None => Invalid::value(path.clone(), err.message),
        })?;
        check_nested(&stage, &path)?;
        stages.push(stage);
    }
    Ok(stages)
}

/// Validates the stages nested in `match` stages, recursively.
fn check_nested(stage: &StageConfig, path: &str) -> Result<(), Invalid> {
    if stage.name != "match" {
        return Ok(());
    }
    match stage.body.get("stages") {
        Some(nested) => parse_list(nested, &join_key(path, "match.stages")).map(|_| ()),
        None => Ok(()),
    }
}

/// Checks nested `match` pipelines and records where each top-level stage starts.
pub(crate) fn check_and_locate(
    stages: &mut [StageConfig],
    base: &str,
    map: Option<&SourceMap>,
) -> Result<(), Invalid> {
    for (i, stage) in stages.iter_mut().enumerate() {
        let path = join_index(base, i);
        check_nested(stage, &path)?;
        if let Some(at) = map.and_then(|m| m.value(&path)) {
            stage.line = Some(at.line);
            stage.column = Some(at.column);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<StageConfig>, String> {
        serde_yaml_ng::from_str::<Vec<StageConfig>>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_every_stage_name_and_keeps_bodies_raw() {
        let text: String = STAGE_NAMES
            .iter()
            .map(|name| format!("- {name}: {{unknown_key: kept}}\n"))
            .collect();
        let stages = parse(&text).unwrap();
        assert_eq!(
            stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            STAGE_NAMES
        );
        assert_eq!(stages[0].body["unknown_key"], Value::from("kept"));
        let stages = parse("- docker: {}\n- cri:\n- labeldrop: [a, b]\n").unwrap();
        assert_eq!(stages[1].body, Value::Null);
        assert!(stages[2].body.is_sequence());
    }

    #[test]
    fn rejects_bad_shapes() {
        let all = STAGE_NAMES.join(", ");
        let cases: &[(&str, String)] = &[
            ("- regexp: {}", format!("unknown stage type: regexp, expected one of {all}")),
            ("- regex: {}\n  json: {}", "pipeline stage must contain only one key, found \"regex\" and \"json\": put each stage in its own list item (\"- regex: ...\", \"- json: ...\")".into()),
            ("- {}", "pipeline stage must contain only one key, the stage name; found an empty mapping".into()),
            ("- regex", "pipeline stage must be a mapping with exactly one key, the stage name; write \"- regex:\" followed by its settings (the colon is missing)".into()),
            ("- whatever", "pipeline stage must be a mapping with exactly one key, the stage name; found the string \"whatever\"".into()),
            ("- [a]", "pipeline stage must be a mapping with exactly one key, the stage name; found a list".into()),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want.as_str()), "{text}: {err}");
        }
    }

    #[test]
    fn nested_match_stages_are_checked_with_paths() {
        let ok = parse("- match:\n    selector: '{a=\"b\"}'\n    stages:\n    - json: {}\n    - match:\n        stages: [{drop: {}}]\n").unwrap();
        assert_eq!(check_and_locate(&mut ok.clone(), "p", None), Ok(()));
        let nested = ok[0].nested_stages().unwrap().unwrap();
        assert_eq!(
            nested.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["json", "match"]
        );
        assert_eq!(ok[0].body.get("selector"), Some(&Value::from("{a=\"b\"}")));

        let mut bad = parse(
            "- match:\n    stages:\n    - json: {}\n    - match:\n        stages: [{jsn: {}}]\n",
        )
        .unwrap();
        let err =
            check_and_locate(&mut bad, "scrape_configs[0].pipeline_stages", None).unwrap_err();
        assert_eq!(
            err.path,
            "scrape_configs[0].pipeline_stages[0].match.stages[1].match.stages[0].jsn"
        );
        assert!(err
            .message
            .starts_with("unknown stage type: jsn, expected one of docker, cri"));

        let mut bad = parse("- match:\n    stages: {json: {}}\n").unwrap();
        let err = check_and_locate(&mut bad, "p", None).unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("p[0].match.stages", "expected a list of pipeline stages")
        );
    }

    #[test]
    fn serializes_back_to_a_single_key_mapping() {
        let stages = parse("- regex: {expression: '(?P<a>.*)'}\n").unwrap();
        assert_eq!(
            serde_yaml_ng::to_string(&stages).unwrap(),
            "- regex:\n    expression: (?P<a>.*)\n"
        );
    }
}
