//! `-inspect`: print to stderr what each stage changed, in Promtail's format (its `inspector.go`, a
//! go-cmp reporter over `stages.Entry`), so a pipeline can be debugged with `-dry-run -stdin` (the
//! `-:`/`+:` lines start with a tab):
//!
//! ```text
//! [inspect: regex stage]:
//! {stages.Entry}.Extracted["level"]:
//!     +: info
//! [inspect: labels stage]:
//! {stages.Entry}.Entry.Labels:
//!     -: {job="app"}
//!     +: {job="app", level="info"}
//! [inspect: output stage]: none
//! ```
//!
//! As in Promtail, only the stages its generic wrapper builds report ([`INSPECTED`]); `json`, `match`,
//! `multiline`, `drop` and the other stages with their own run loop print nothing. Extracted keys come
//! in sorted order, then the labels, the timestamp, the line and the structured metadata, each as
//! `-:` (before) and `+:` (after) lines with Go's `%v` formatting. Colours (bold name, green added,
//! yellow changed, red removed) are used when stderr is a terminal and `NO_COLOR` is not set.
//!
//! The switch is process-wide, like Promtail's flag: it is set once at start, before any pipeline is
//! built, and every pipeline built afterwards (each job's, nested `match` stages) is inspected.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::{Item, Stage, StageFactory};
use crate::entry::{braced, go_quote, Labels};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The stages Promtail builds through its inspecting wrapper.
pub const INSPECTED: [&str; 11] = [
    "regex",
    "logfmt",
    "replace",
    "template",
    "labels",
    "labeldrop",
    "labelallow",
    "static_labels",
    "timestamp",
    "output",
    "tenant",
];

/// Turn inspection on for every pipeline built from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// `factory` wrapped so that its stages report, if inspection is on and `name` is inspected.
pub fn wrap(name: &str, factory: Arc<dyn StageFactory>) -> Arc<dyn StageFactory> {
    if ENABLED.load(Ordering::Relaxed) && INSPECTED.contains(&name) {
        Arc::new(InspectFactory { inner: factory })
    } else {
        factory
    }
}

struct InspectFactory {
    inner: Arc<dyn StageFactory>,
}

impl StageFactory for InspectFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        let colors = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Box::new(Inspecting {
            inner: self.inner.instantiate(),
            colors,
        })
    }
}

struct Inspecting {
    inner: Box<dyn Stage>,
    colors: bool,
}

impl Stage for Inspecting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        let before = Snapshot::of(&item);
        let from = out.len();
        self.inner.process(item, out);
        let mut text = String::new();
        for after in &out[from..] {
            report(
                &mut text,
                self.inner.name(),
                &before,
                &Snapshot::of(after),
                self.colors,
            );
        }
        // One write per entry, so reports of concurrent pipelines do not interleave mid-line.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Item>) {
        self.inner.flush_expired(now, out);
    }

    fn flush_all(&mut self, out: &mut Vec<Item>) {
        self.inner.flush_all(out);
    }

    fn held_origin(&self) -> Option<u64> {
        self.inner.held_origin()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.inner.next_deadline()
    }

    fn holds_back(&self) -> bool {
        self.inner.holds_back()
    }
}

/// What the report compares of an item.
struct Snapshot {
    extracted: BTreeMap<String, Value>,
    labels: Labels,
    timestamp: i64,
    line: String,
    metadata: Vec<(String, String)>,
}

impl Snapshot {
    fn of(item: &Item) -> Self {
        Snapshot {
            extracted: item
                .extracted
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            labels: item.labels.map().clone(),
            timestamp: item.timestamp,
            line: item.line.clone(),
            metadata: item.metadata.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Paint {
    Bold,
    Red,
    Yellow,
    Green,
}

fn paint(out: &mut String, colors: bool, paint: Paint, text: &str) {
    if !colors {
        out.push_str(text);
        return;
    }
    let code = match paint {
        Paint::Bold => "1",
        Paint::Red => "31",
        Paint::Yellow => "33",
        Paint::Green => "32",
    };
    let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
}

/// Append Promtail's report for one stage: `[inspect: NAME stage]: ` then the differences, one path
/// and its `-:`/`+:` lines each, or `none`.
fn report(out: &mut String, stage: &str, before: &Snapshot, after: &Snapshot, colors: bool) {
    let mut diffs = String::new();
    let mut change = |path: &str, old: Option<String>, new: Option<String>| {
        if old == new {
            return;
        }
        let title = match (&old, &new) {
            (Some(_), Some(_)) => Paint::Yellow,
            (Some(_), None) => Paint::Red,
            _ => Paint::Green,
        };
        diffs.push('\n');
        paint(&mut diffs, colors, title, &format!("{path}:"));
        if let Some(old) = old {
            diffs.push('\n');
            let removed = if new.is_some() {
                Paint::Yellow
            } else {
                Paint::Red
            };
            paint(&mut diffs, colors, removed, &format!("\t-: {old}"));
        }
        if let Some(new) = new {
            diffs.push('\n');
            paint(&mut diffs, colors, Paint::Green, &format!("\t+: {new}"));
        }
    };
    let keys: std::collections::BTreeSet<&String> = before
        .extracted
        .keys()
        .chain(after.extracted.keys())
        .collect();
    for key in keys {
        let mut path = String::from("{stages.Entry}.Extracted[");
        path.push_str(&go_quoted(key));
        path.push(']');
        change(
            &path,
            before.extracted.get(key).map(go_value),
            after.extracted.get(key).map(go_value),
        );
    }
    change(
        "{stages.Entry}.Entry.Labels",
        Some(braced(
            before.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )),
        Some(braced(
            after.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )),
    );
    change(
        "{stages.Entry}.Entry.Entry.Timestamp",
        Some(go_time(before.timestamp)),
        Some(go_time(after.timestamp)),
    );
    change(
        "{stages.Entry}.Entry.Entry.Line",
        Some(before.line.clone()),
        Some(after.line.clone()),
    );
    change(
        "{stages.Entry}.Entry.Entry.StructuredMetadata",
        Some(braced(
            before
                .metadata
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        )),
        Some(braced(
            after.metadata.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )),
    );
    out.push_str("[inspect: ");
    paint(out, colors, Paint::Bold, stage);
    out.push_str(" stage]: ");
    if diffs.is_empty() {
        paint(out, colors, Paint::Red, "none");
    } else {
        out.push_str(&diffs);
    }
    out.push('\n');
}

fn go_quoted(s: &str) -> String {
    let mut out = String::new();
    go_quote(&mut out, s);
    out
}

/// Go's `%v` of a decoded JSON value: a string as is, a float64 as `%g` with the shortest digits.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits, in exponent
/// form with at least two exponent digits when the exponent is below -4 or at least 6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.2345e8`, `5e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    f.to_string()
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`, trailing zeros of
/// the fraction dropped.
fn go_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = crate::entry::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(extracted: Value, labels: &[(&str, &str)], ts: i64, line: &str) -> Snapshot {
        let Value::Object(map) = extracted else {
            unreachable!()
        };
        Snapshot {
            extracted: map.into_iter().collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp: ts,
            line: line.into(),
            metadata: vec![],
        }
    }

    #[test]
    fn reports_like_promtail_inspector() {
        let before = snapshot(
            json!({"job": "app", "gone": "x"}),
            &[("job", "app")],
            1_500_000_000,
            "l",
        );
        let after = snapshot(
            json!({"job": "app", "level": "info", "n": 1.5e8}),
            &[("job", "app"), ("level", "info")],
            1_692_911_846_287_905_137,
            "l2",
        );
        let mut out = String::new();
        report(&mut out, "regex", &before, &after, false);
        assert_eq!(
            out,
            "[inspect: regex stage]: \n\
             {stages.Entry}.Extracted[\"gone\"]:\n\t-: x\n\
             {stages.Entry}.Extracted[\"level\"]:\n\t+: info\n\
             {stages.Entry}.Extracted[\"n\"]:\n\t+: 1.5e+08\n\
             {stages.Entry}.Entry.Labels:\n\t-: {job=\"app\"}\n\t+: {job=\"app\", level=\"info\"}\n\
             {stages.Entry}.Entry.Entry.Timestamp:\n\t-: 1970-01-01 00:00:01.5 +0000 UTC\n\
             \t+: 2023-08-24 21:17:26.287905137 +0000 UTC\n\
             {stages.Entry}.Entry.Entry.Line:\n\t-: l\n\t+: l2\n"
        );
        let mut none = String::new();
        report(&mut none, "output", &after, &after, false);
        assert_eq!(none, "[inspect: output stage]: none\n");
        let mut colored = String::new();
        report(&mut colored, "output", &after, &after, true);
        assert_eq!(
            colored,
            "[inspect: \x1b[1moutput\x1b[0m stage]: \x1b[31mnone\x1b[0m\n"
        );
    }

    #[test]
    fn floats_print_as_go_percent_v() {
        let cases = [
            (200.0, "200"),
            (0.25, "0.25"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e21, "1e+21"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }
}
