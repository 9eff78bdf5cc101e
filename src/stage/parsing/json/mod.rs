//! `json`: parse the line (or `extracted[source]`) as a JSON object and set one extracted value per
//! JMESPath expression (Promtail's `json.go`, docs `stages/json.md`, compat reference §5.1).
//!
//! * `expressions: {key: path}`; an empty path means the key itself. Every expression is compiled with
//!   the `jmespath` crate at build time, so syntax errors are config errors as in Promtail.
//! * Results keep Promtail's types: strings and booleans as is, numbers as float64, `null` (or a path
//!   that is not there) as a present key with a null value, arrays and objects re-serialized to compact
//!   JSON text ([`crate::stage::gojson`]).
//! * A line that is not a JSON object is malformed: dropped with `drop_malformed: true`, else passed on
//!   unchanged. The JSON text `null` is accepted, as Go decodes it to an empty map (every key is null).
//! * A `source` that is missing, or has no string form, leaves the entry unchanged.
//!
//! Speed: the usual expressions are plain field paths (`message`, `'"grpc.stream"'`, `a.b[1].c`). When
//! all are, the line is checked and split by [`scan`] without building any value, and only the
//! top-level values those paths start from are converted: a string without escapes is copied
//! straight into the `extracted` map's recycled buffer. Any other expression (functions,
//! projections, filters) switches the stage to full JMESPath evaluation over the whole document.

mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;

use jmespath::{Context, Expression, Rcvar, Variable, DEFAULT_RUNTIME};
use serde::Deserialize;
use serde_json::{Number, Value};

pub use self::scan::Malformed;
use super::{invalid, set_value, source_text};
use crate::stage::gojson;
use crate::stage::{decode, Extracted, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    expressions: BTreeMap<String, Option<String>>,
    source: Option<String>,
    #[serde(default)]
    drop_malformed: bool,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("json", body).map_err(invalid)?;
    if cfg.expressions.is_empty() {
        return Err(invalid(
            "JMES expression is required (`expressions` is empty)",
        ));
    }
    if cfg.source.as_deref() == Some("") {
        return Err(invalid("empty source"));
    }
    let expressions: Vec<(String, String)> = cfg
        .expressions
        .into_iter()
        .map(|(key, expr)| {
            let expr = expr
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| key.clone());
            (key, expr)
        })
        .collect();
    Ok(Arc::new(JsonFactory {
        extractor: Arc::new(Extractor::new(&expressions).map_err(invalid)?),
        source: cfg.source,
        drop_malformed: cfg.drop_malformed,
    }))
}

struct JsonFactory {
    extractor: Arc<Extractor>,
    source: Option<String>,
    drop_malformed: bool,
}

impl StageFactory for JsonFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(JsonStage {
            extractor: self.extractor.clone(),
            source: self.source.clone(),
            drop_malformed: self.drop_malformed,
            slots: Slots::default(),
        })
    }
}

struct JsonStage {
    extractor: Arc<Extractor>,
    source: Option<String>,
    drop_malformed: bool,
    slots: Slots,
}

impl Stage for JsonStage {
    fn name(&self) -> &'static str {
        "json"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let parsed = match &self.source {
            None => self
                .extractor
                .extract(&item.line, &mut self.slots, &mut item.extracted),
            Some(source) => match source_text(&item.extracted, source) {
                Some(text) => {
                    let text = text.into_owned();
                    self.extractor
                        .extract(&text, &mut self.slots, &mut item.extracted)
                }
                None => Ok(()),
            },
        };
        if parsed.is_ok() || !self.drop_malformed {
            out.push(item);
        }
    }
}

/// Scratch space of [`Extractor::extract`], kept by its caller between entries: where each top-level
/// value a field path starts from lies in the input.
#[derive(Default)]
pub struct Slots {
    spans: Vec<Option<Span>>,
}

/// A value's text in the input: start, end, and whether it is a string with escapes.
type Span = (usize, usize, bool);

/// A set of `key: JMESPath` expressions, ready to run on JSON text.
pub struct Extractor {
    exprs: Vec<Expr>,
    /// The top-level keys the field paths start from, when every expression is a field path.
    tops: Option<Vec<String>>,
}

struct Expr {
    key: String,
    jmes: Expression<'static>,
    field: Option<FieldPath>,
}

/// A JMESPath made only of field names and indexes: `a."b.c"[1]`.
struct FieldPath {
    /// Index into [`Extractor::tops`].
    top: usize,
    rest: Vec<Step>,
}

enum Step {
    Field(String),
    Index(i64),
}

impl Extractor {
    /// Compile `(extracted key, expression)` pairs.
    pub fn new(expressions: &[(String, String)]) -> Result<Self, String> {
        let mut tops: Vec<String> = Vec::new();
        let mut exprs = Vec::with_capacity(expressions.len());
        let mut all_fields = true;
        for (key, text) in expressions {
            let jmes = jmespath::compile(text)
                .map_err(|e| format!("could not compile JMES expression {text:?}: {e}"))?;
            let field = parse_field_path(text).map(|(first, rest)| {
                let top = tops.iter().position(|t| *t == first).unwrap_or_else(|| {
                    tops.push(first);
                    tops.len() - 1
                });
                FieldPath { top, rest }
            });
            all_fields &= field.is_some();
            exprs.push(Expr {
                key: key.clone(),
                jmes,
                field,
            });
        }
        Ok(Extractor {
            exprs,
            tops: all_fields.then_some(tops),
        })
    }

    /// Run every expression on `input` and set the results in `extracted`.
    pub fn extract(
        &self,
        input: &str,
        slots: &mut Slots,
        extracted: &mut Extracted,
    ) -> Result<(), Malformed> {
        match &self.tops {
            Some(tops) => self.extract_fields(tops, input, &mut slots.spans, extracted),
            None => self.extract_jmespath(input, extracted),
        }
    }

    fn extract_fields(
        &self,
        tops: &[String],
        input: &str,
        spans: &mut Vec<Option<Span>>,
        extracted: &mut Extracted,
    ) -> Result<(), Malformed> {
        spans.clear();
        spans.resize(tops.len(), None);
        let base = input.as_ptr() as usize;
        scan::scan_object(input, |key, value, escaped| {
            let found = if key.escaped {
                let key = key.decode();
                tops.iter().position(|t| *t == key)
            } else {
                tops.iter().position(|t| t == key.raw)
            };
            if let Some(i) = found {
                // The last of duplicate keys wins, as in Go.
                let start = value.as_ptr() as usize - base;
                spans[i] = Some((start, start + value.len(), escaped));
            }
        })?;
        for expr in &self.exprs {
            let Some(path) = &expr.field else { continue };
            let Some((start, end, escaped)) = spans[path.top] else {
                set_value(extracted, &expr.key, Value::Null);
                continue;
            };
            let raw = &input[start..end];
            if path.rest.is_empty() {
                if let Some(s) = scan::as_string(raw, escaped) {
                    extracted.set_str(&expr.key, &s.decode());
                    continue;
                }
                set_value(extracted, &expr.key, raw_to_extracted(raw, escaped)?);
            } else {
                let value: Value = serde_json::from_str(raw).map_err(|_| Malformed)?;
                let found = walk(&value, &path.rest).map_or(Value::Null, to_extracted);
                set_value(extracted, &expr.key, found);
            }
        }
        Ok(())
    }

    fn extract_jmespath(&self, input: &str, extracted: &mut Extracted) -> Result<(), Malformed> {
        let data = Variable::from_json(input).map_err(|_| Malformed)?;
        if !data.is_object() && !data.is_null() {
            return Err(Malformed);
        }
        let data = Rcvar::new(data);
        for expr in &self.exprs {
            let mut ctx = Context::new(expr.jmes.as_str(), &DEFAULT_RUNTIME);
            // A search error (such as a function given the wrong type) skips the key, as in Promtail.
            if let Ok(found) = jmespath::interpret(&data, expr.jmes.as_ast(), &mut ctx) {
                set_value(
                    extracted,
                    &expr.key,
                    into_extracted(variable_to_value(&found)),
                );
            }
        }
        Ok(())
    }
}

/// A top-level value (checked by the scanner) as the json stage stores it.
fn raw_to_extracted(raw: &str, escaped: bool) -> Result<Value, Malformed> {
    Ok(match raw.as_bytes()[0] {
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Null,
        b'"' => Value::String(
            scan::as_string(raw, escaped)
                .ok_or(Malformed)?
                .decode()
                .into_owned(),
        ),
        // A float64, as Go decodes every JSON number; one too large for it fails the line, as in Go.
        b'-' | b'0'..=b'9' => {
            let f: f64 = raw.parse().map_err(|_| Malformed)?;
            Value::Number(Number::from_f64(f).ok_or(Malformed)?)
        }
        _ => into_extracted(serde_json::from_str(raw).map_err(|_| Malformed)?),
    })
}

/// Follow field names and indexes as JMESPath does: a field of a non-object or an index of a
/// non-array is null, negative indexes count from the end.
fn walk<'v>(mut value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Value::Object(map)) => map.get(name)?,
            (Step::Index(i), Value::Array(items)) => {
                let len = items.len() as i64;
                let at = if *i < 0 { len + i } else { *i };
                items.get(usize::try_from(at).ok()?)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// A JSON value as the json stage stores it: numbers as float64, arrays and objects as JSON text.
fn into_extracted(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::Number(as_float64(&n)),
        Value::Array(_) | Value::Object(_) => Value::String(gojson::to_string(&value)),
        scalar => scalar,
    }
}

fn to_extracted(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.clone()),
        Value::Number(n) => Value::Number(as_float64(n)),
        Value::Array(_) | Value::Object(_) => Value::String(gojson::to_string(value)),
        Value::Bool(b) => Value::Bool(*b),
        Value::Null => Value::Null,
    }
}

/// JSON numbers are float64 in Go: integers above 2^53 lose precision, as in Promtail.
fn as_float64(n: &Number) -> Number {
    n.as_f64()
        .and_then(Number::from_f64)
        .unwrap_or_else(|| n.clone())
}

fn variable_to_value(var: &Variable) -> Value {
    match var {
        Variable::Null | Variable::Expref(_) => Value::Null,
        Variable::String(s) => Value::String(s.clone()),
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => Value::Number(n.clone()),
        Variable::Array(items) => {
            Value::Array(items.iter().map(|v| variable_to_value(v)).collect())
        }
        Variable::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), variable_to_value(v)))
                .collect(),
        ),
    }
}

/// Split a JMESPath made only of identifiers, quoted identifiers and indexes (`a."b.c"[1][-1].d`)
/// into its first field and the steps after it; `None` for anything else.
fn parse_field_path(text: &str) -> Option<(String, Vec<Step>)> {
    let mut rest = text;
    let mut fields: Vec<Step> = Vec::new();
    let mut expect_field = true;
    while !rest.is_empty() {
        if expect_field {
            let (name, after) = identifier(rest)?;
            fields.push(Step::Field(name));
            rest = after;
            expect_field = false;
        } else if let Some(after) = rest.strip_prefix('.') {
            rest = after;
            expect_field = true;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let digits = &after[..end];
            let unsigned = digits.strip_prefix('-').unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            fields.push(Step::Index(digits.parse().ok()?));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    if expect_field {
        return None;
    }
    let mut steps = fields.into_iter();
    let Some(Step::Field(first)) = steps.next() else {
        return None;
    };
    Some((first, steps.collect()))
}

/// A JMESPath identifier at the start of `text`: `[A-Za-z_][A-Za-z0-9_]*`, or a quoted one with JSON
/// escapes.
fn identifier(text: &str) -> Option<(String, &str)> {
    if text.starts_with('"') {
        let bytes = text.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let name: String = serde_json::from_str(&text[..=i]).ok()?;
                    return Some((name, &text[i + 1..]));
                }
                _ => i += 1,
            }
        }
        return None;
    }
    let first = text.bytes().next()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let end = text
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(text.len());
    Some((text[..end].to_owned(), &text[end..]))
}
