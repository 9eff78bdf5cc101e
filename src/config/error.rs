//! [`ConfigError`]: every way a config can be wrong, printed as
//! `<file>:<line>:<col>: <key.path>: <what is wrong, and what would be valid>`.
//!
//! Deserialization errors come from serde_yaml_ng (which knows line:column) wrapped in serde_path_to_error
//! (which knows the key path). serde's own wording (`unknown field `jobname`, expected one of ...`) is
//! rewritten here into the project's style; messages raised by logferry's own visitors pass through.

use std::sync::LazyLock;

use regex::Regex;
use serde_path_to_error::Segment;

use super::locate::{join_index, join_key, parent_path, Location, SourceMap};

/// What kind of failure a [`ConfigError`] is, for callers that react differently (exit codes, hints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// None of the `-config.file` paths exists.
    NotFound,
    /// `-config.expand-env` failed (e.g. `${VAR-default}`).
    Envsubst,
    /// The text is not valid YAML.
    Syntax,
    /// Valid YAML, but not a valid config: unknown key, wrong type, bad value, failed check.
    Invalid,
}

/// A config error with its position. `line`/`column` are 1-based and `None` when unknowable;
/// `path` is the key path (`clients[0].batchwait`), empty for whole-file problems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(kind: ErrorKind, file: &str, path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            file: file.to_string(),
            line: None,
            column: None,
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, location: Option<Location>) -> Self {
        if let Some(loc) = location {
            self.line = Some(loc.line);
            self.column = Some(loc.column);
        }
        self
    }

    /// Line and column, when both are known.
    pub fn location(&self) -> Option<(usize, usize)> {
        self.line.zip(self.column)
    }

    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Which end of a key/value pair a validation error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The key: for "this setting must not be here" (conflicts, unknown stage).
    Key,
    /// The value: for "this value is wrong" (duplicate job name, bad format).
    Value,
}

/// A problem found by a check after deserializing; the loader locates it in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub path: String,
    pub message: String,
    pub anchor: Anchor,
}

impl Invalid {
    pub fn key(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
            anchor: Anchor::Key,
        }
    }

    pub fn value(path: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            path: path.into(),
            message: message.into(),
            anchor: Anchor::Value,
        }
    }
}

/// Converts a deserialization failure into a [`ConfigError`] in the project's wording. The position is
/// the marked parse's for the error's exact path when it has one (serde_yaml_ng stamps errors raised
/// after a value was read with the position of an enclosing node), else serde_yaml_ng's.
pub(crate) fn from_serde(
    err: serde_path_to_error::Error<serde_yaml_ng::Error>,
    file: &str,
    map: Option<&SourceMap>,
) -> ConfigError {
    let path = segments_to_path(err.path());
    let inner = err.into_inner();
    let serde_location = inner.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    // libyaml's errors Debug-print as a struct (`Error { kind: SCANNER, problem: .. }`), serde messages
    // as `Error("..")`; serde_yaml_ng exposes nothing better to tell a syntax error from a type error.
    let syntax = format!("{inner:?}").starts_with("Error {");
    let raw = strip_positions(&inner.to_string());
    if syntax {
        return ConfigError::new(
            ErrorKind::Syntax,
            file,
            "",
            format!("YAML syntax error: {raw}"),
        )
        .at(serde_location);
    }
    let raw = strip_path_prefix(&raw, &path);
    let (shown_path, message) = rewrite(&path, raw);
    // An unknown key is reported on its holder's path but located at the key itself.
    let marked = map.and_then(|m| {
        if shown_path != path {
            m.exact_key(&path)
        } else {
            m.exact_value(&path)
        }
    });
    ConfigError::new(ErrorKind::Invalid, file, &shown_path, message).at(marked.or(serde_location))
}

fn segments_to_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => join_index(&out, *index),
            Segment::Map { key } => join_key(&out, key),
            Segment::Enum { variant } => join_key(&out, variant),
            Segment::Unknown => join_key(&out, "?"),
        };
    }
    out
}

static POSITION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" at (line \d+ column \d+|position \d+)").expect("valid regex"));

fn strip_positions(message: &str) -> String {
    POSITION.replace_all(message, "").into_owned()
}

/// serde_yaml_ng prefixes messages with its own idea of the path (`clients[0]: ...`), which is our path
/// or one of its ancestors; it is dropped because the error prints the path separately.
fn strip_path_prefix<'a>(message: &'a str, path: &str) -> &'a str {
    let mut candidate = path;
    loop {
        let prefix = if candidate.is_empty() { "." } else { candidate };
        if let Some(rest) = message
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(": "))
        {
            return rest;
        }
        if candidate.is_empty() {
            return message;
        }
        candidate = parent_path(candidate);
    }
}

static UNKNOWN_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^unknown (field|variant) `(.*?)`, (.*)$").expect("valid regex"));
static BACKTICKED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(missing|duplicate) field `(.*)`$").expect("valid regex"));

/// serde's standard messages in the project's wording. Returns the (possibly adjusted) path and message.
fn rewrite(path: &str, message: &str) -> (String, String) {
    if let Some(c) = UNKNOWN_FIELD.captures(message) {
        let (what, name, rest) = (&c[1], &c[2], &c[3]);
        if what == "variant" {
            return (
                path.to_string(),
                format!("invalid value {name:?}, {}", rest.replace('`', "")),
            );
        }
        // The path ends at the unknown key itself; the error is about the block that holds it.
        let parent = parent_path(path).to_string();
        if rest == "there are no fields" {
            return (
                parent,
                format!("unknown field {name:?}: this block takes no keys"),
            );
        }
        let expected = rest.replace('`', "");
        let message = match suggest(name, &expected) {
            Some(close) => format!("unknown field {name:?}, {expected}; did you mean {close:?}?"),
            None => format!("unknown field {name:?}, {expected}"),
        };
        return (parent, message);
    }
    if let Some(c) = BACKTICKED.captures(message) {
        let what = if &c[1] == "missing" {
            "missing required key"
        } else {
            "duplicate key"
        };
        return (path.to_string(), format!("{what} {:?}", &c[2]));
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|m| m.rsplit_once(", expected "))
        {
            let (found, expected) = (describe_found(found), describe_expected(expected));
            return (
                path.to_string(),
                format!("expected {expected}, found {found}"),
            );
        }
    }
    if message.contains("more than one document") {
        return (
            path.to_string(),
            "the file must hold a single YAML document (found a second `---`)".into(),
        );
    }
    (path.to_string(), message.to_string())
}

/// The closest expected name when the typo is small (`jobname` -> `job_name`).
fn suggest(name: &str, expected: &str) -> Option<String> {
    let candidates = expected
        .trim_start_matches("expected one of ")
        .trim_start_matches("expected ");
    candidates
        .split([',', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != "or")
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 1.max(name.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// serde's `Unexpected` wording in plain words.
fn describe_found(found: &str) -> String {
    let code = |s: &str| s.trim_matches('`').to_string();
    match found {
        "unit value" => "an empty value".into(),
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        _ if found.starts_with("string ") => format!("the string {}", &found[7..]),
        _ if found.starts_with("integer ") => format!("the number {}", code(&found[8..])),
        _ if found.starts_with("floating point ") => format!("the number {}", code(&found[15..])),
        _ if found.starts_with("boolean ") => format!("the boolean {}", code(&found[8..])),
        _ => found.into(),
    }
}

/// serde's `expected` wording (often a Rust type name) in plain words.
fn describe_expected(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" | "u64" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping (key: value pairs)".into(),
        _ if expected.starts_with("struct ") => "a mapping (key: value pairs)".into(),
        _ => expected.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_path_message() {
        let mut err = ConfigError::new(
            ErrorKind::Invalid,
            "promtail.yaml",
            "clients[0].batchwait",
            "bad",
        );
        assert_eq!(err.to_string(), "promtail.yaml: clients[0].batchwait: bad");
        err = err.at(Some(Location {
            line: 12,
            column: 5,
        }));
        assert_eq!(
            err.to_string(),
            "promtail.yaml:12:5: clients[0].batchwait: bad"
        );
        err.path.clear();
        assert_eq!(err.to_string(), "promtail.yaml:12:5: bad");
    }

    #[test]
    fn rewrites_serde_messages() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "scrape_configs[0].jobname",
                "unknown field `jobname`, expected one of `job_name`, `pipeline_stages`",
                "scrape_configs[0]",
                "unknown field \"jobname\", expected one of job_name, pipeline_stages; did you mean \"job_name\"?",
            ),
            (
                "options.foo",
                "unknown field `foo`, there are no fields",
                "options",
                "unknown field \"foo\": this block takes no keys",
            ),
            (
                "wal.zzz",
                "unknown field `zzz`, expected `enabled` or `dir`",
                "wal",
                "unknown field \"zzz\", expected enabled or dir",
            ),
            ("clients[0]", "missing field `url`", "clients[0]", "missing required key \"url\""),
            (
                "server.http_listen_port",
                "invalid type: string \"abc\", expected u16",
                "server.http_listen_port",
                "expected an integer from 0 to 65535, found the string \"abc\"",
            ),
            (
                "server.http_listen_port",
                "invalid value: integer `99999`, expected u16",
                "server.http_listen_port",
                "expected an integer from 0 to 65535, found the number 99999",
            ),
            (
                "positions.ignore_invalid_yaml",
                "invalid type: unit value, expected a boolean",
                "positions.ignore_invalid_yaml",
                "expected true or false, found an empty value",
            ),
            ("x", "something custom", "x", "something custom"),
        ];
        for (path, raw, want_path, want) in cases {
            assert_eq!(
                rewrite(path, raw),
                (want_path.to_string(), want.to_string()),
                "{raw}"
            );
        }
    }

    #[test]
    fn strips_serde_yaml_path_prefixes_and_positions() {
        assert_eq!(
            strip_path_prefix("clients[0]: missing field `url`", "clients[0]"),
            "missing field `url`"
        );
        assert_eq!(
            strip_path_prefix("clients[0]: bad", "clients[0].batchwait"),
            "bad"
        );
        assert_eq!(
            strip_path_prefix("invalid type: x", "a.b"),
            "invalid type: x"
        );
        assert_eq!(
            strip_positions("bad thing at line 3 column 5, while parsing at line 2 column 1"),
            "bad thing, while parsing"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            suggest("jobname", "expected one of job_name, pipeline_stages"),
            Some("job_name".into())
        );
        assert_eq!(
            suggest("batch_wait", "expected one of url, batchwait, batchsize"),
            Some("batchwait".into())
        );
        assert_eq!(suggest("zzz", "expected one of url, batchwait"), None);
        assert_eq!(suggest("a", "expected one of wal, tracing"), None);
    }
}
