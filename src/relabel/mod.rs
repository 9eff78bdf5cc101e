//! Prometheus `relabel_configs`, exactly as Promtail v3.6 applies them (compat reference §4; the
//! vendored `prometheus/model/relabel` package is the spec).
//!
//! A [`Relabeler`] compiles a list of [`RelabelConfig`] rules once, validating them the way Promtail does
//! at (re)load with the UTF-8 label-name scheme; [`Relabeler::process`] then applies them in order to a
//! label map. Three places need care to match Go rather than Rust defaults:
//!
//! * **Regex dialect.** Promtail compiles `^(?s:<regex>)$` with Go's RE2 syntax. The regex crate is close
//!   but not equal: its `\d`, `\w`, `\s` and `\b` are Unicode-aware (Go's are ASCII), and it rejects some
//!   patterns Go accepts (`\Q…\E`, a `{` that is not a repeat, `[` or `--` inside a class). The small
//!   translator in `crate::goregex` rewrites those constructs before compiling.
//! * **Replacement templates** follow Go's `Regexp.Expand`, which differs from `Captures::expand` on
//!   `$01`, `${a-b}` and names followed by non-ASCII letters; see `Template`.
//! * **`lowercase`/`uppercase`** use Go's per-rune simple case mapping (`strings.ToLower`), not Rust's
//!   full mapping (`"ß".to_uppercase()` is `"SS"` in Rust, `"ß"` in Go).
//!
//! Label semantics follow Prometheus' `labels.Builder`: a missing label reads as `""`, and setting a label
//! to `""` deletes it.
//!
//! Relabeling runs once per file target but per entry for Docker and the journal, so the hot path avoids
//! allocating: one set of scratch strings per [`Relabeler::process`] call is reused across rules, a rule with
//! the default regex `(.*)` never runs the regex engine, and templates are parsed when the rule is built.

use std::fmt::Write as _;
use std::sync::OnceLock;

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::entry::Labels;
use crate::goregex;

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// One rule of `relabel_configs`, as written in the YAML. Defaults apply when a rule is compiled by
/// [`Relabeler::new`]. As with Go's yaml.v2, a key written with a null value (`regex:`) means the empty
/// string, not the default: `regex:` is the empty pattern and `separator:` joins with nothing.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` into the value the rule works on. Missing
    /// labels contribute `""`.
    #[serde(
        default,
        deserialize_with = "null_as_no_labels",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub source_labels: Vec<String>,
    /// Default `;`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub separator: Option<String>,
    /// The label written by `replace`, `hashmod`, `lowercase` and `uppercase`, or compared by
    /// `keepequal`/`dropequal`. For `replace` it may reference capture groups (`${1}`).
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_label: Option<String>,
    /// Go RE2 syntax, matched fully anchored and with `.` matching newlines. Default `(.*)`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub regex: Option<String>,
    /// Required (non-zero) for `hashmod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    /// Go `Regexp.Expand` template. Default `$1`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub replacement: Option<String>,
    /// Case-insensitive. Default `replace`.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub action: Option<String>,
}

/// yaml.v2 sets a key written as null to the zero value; only an absent key keeps the default.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

fn null_as_no_labels<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A rule that Promtail would refuse to load, with its position in the `relabel_configs` list.
#[derive(Debug, Error)]
#[error("relabel_configs[{index}]: {kind}")]
pub struct RelabelError {
    pub index: usize,
    pub kind: RelabelErrorKind,
}

#[derive(Debug, Error, PartialEq)]
pub enum RelabelErrorKind {
    #[error(
        "unknown relabel action {action:?} in 'action' (expected one of replace, keep, drop, \
         keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
    )]
    UnknownAction { action: String },
    /// `regex` is the pattern as [`goregex::shown`] quotes it (abbreviated when long).
    #[error("invalid 'regex' {regex}: {reason}")]
    InvalidRegex { regex: String, reason: String },
    #[error("\"hashmod\" action requires a non-zero modulus")]
    ZeroModulus,
    #[error("\"{action}\" action requires a 'target_label'")]
    MissingTargetLabel { action: &'static str },
    #[error("'replacement' can not be set for \"{action}\" action")]
    ReplacementNotAllowed { action: &'static str },
    #[error("\"\" is invalid 'replacement' for \"labelmap\" action: it must name a label")]
    EmptyLabelMapReplacement,
    #[error(
        "\"{action}\" action allows only 'source_labels' and 'target_label', but '{field}' is set"
    )]
    OnlySourceAndTarget {
        action: &'static str,
        field: &'static str,
    },
    #[error("\"{action}\" action allows only 'regex', but '{field}' is set")]
    OnlyRegex {
        action: &'static str,
        field: &'static str,
    },
}

/// Compiled `relabel_configs`: build once with [`Relabeler::new`], then [`process`](Relabeler::process)
/// label sets. Cheap to share between tasks (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Relabeler {
    rules: Vec<Rule>,
    /// Sorted, deduplicated names of the labels whose values some rule reads.
    read_names: Vec<String>,
    reads_all: bool,
}

impl Relabeler {
    /// Compile and validate `configs` in order; the first invalid rule is the error.
    pub fn new(configs: &[RelabelConfig]) -> Result<Relabeler, RelabelError> {
        let rules = configs
            .iter()
            .enumerate()
            .map(|(index, config)| {
                Rule::compile(config).map_err(|kind| RelabelError { index, kind })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reads_all = rules.iter().any(|rule| rule.action.reads_all_labels());
        let mut read_names: Vec<String> = rules
            .iter()
            .flat_map(Rule::read_names)
            .map(str::to_owned)
            .collect();
        read_names.sort_unstable();
        read_names.dedup();
        Ok(Relabeler {
            rules,
            read_names,
            reads_all,
        })
    }

    /// Apply the rules in order. Returns `false` when a rule drops the target or entry; processing stops at
    /// that rule and `labels` is left part-way relabeled, to be discarded.
    pub fn process(&self, labels: &mut Labels) -> bool {
        let mut scratch = Scratch::default();
        self.rules
            .iter()
            .all(|rule| rule.apply(labels, &mut scratch))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every label name whose value some rule reads: the `source_labels` of all rules and the
    /// `target_label` of `keepequal`/`dropequal`. If [`reads_all_labels`](Self::reads_all_labels) is false,
    /// what [`process`](Self::process) changes depends only on these labels' values, so callers may cache
    /// the outcome keyed by them.
    pub fn source_label_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.read_names.iter().map(String::as_str)
    }

    /// True when a `labelmap`, `labeldrop` or `labelkeep` rule looks at every label name.
    pub fn reads_all_labels(&self) -> bool {
        self.reads_all
    }

    /// Whether a label named `name` can change the labels left once [`process`](Self::process) has run
    /// and the `__*` labels are stripped: it is not a `__` label (it may pass through), some rule reads
    /// its value, or a `labelmap` rule copies it (`labeldrop`/`labelkeep` only remove labels). Sources
    /// that relabel per entry key their cache on the labels that matter only.
    pub fn name_matters(&self, name: &str) -> bool {
        !name.starts_with("__")
            || self
                .read_names
                .binary_search_by(|n| n.as_str().cmp(name))
                .is_ok()
            || self
                .rules
                .iter()
                .any(|r| r.action == Action::LabelMap && r.regex.is_match(name))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Case-insensitive the way Go's `strings.ToLower` is.
    fn parse(written: &str) -> Option<Action> {
        let mut lower = String::with_capacity(written.len());
        go_to_lower(written, &mut lower);
        Action::ALL
            .into_iter()
            .find(|action| action.name() == lower)
    }

    fn needs_target_label(self) -> bool {
        use Action::*;
        matches!(
            self,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        )
    }

    fn reads_all_labels(self) -> bool {
        matches!(
            self,
            Action::LabelMap | Action::LabelDrop | Action::LabelKeep
        )
    }
}

/// One compiled rule, defaults filled in.
#[derive(Debug, Clone)]
struct Rule {
    action: Action,
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    /// The pattern is `(.*)`: it matches every value, with groups 0 and 1 both the whole value.
    default_regex: bool,
    modulus: u64,
    target_label: String,
    target: Template,
    replacement: Template,
}

/// Buffers reused by every rule of one [`Relabeler::process`] call.
#[derive(Default)]
struct Scratch {
    /// The joined source values.
    val: String,
    /// An expanded target label name.
    name: String,
    /// A computed label value.
    value: String,
}

impl Rule {
    fn compile(config: &RelabelConfig) -> Result<Rule, RelabelErrorKind> {
        let written_action = config.action.as_deref().unwrap_or("replace");
        let action =
            Action::parse(written_action).ok_or_else(|| RelabelErrorKind::UnknownAction {
                action: written_action.to_owned(),
            })?;
        let pattern = config.regex.as_deref().unwrap_or(DEFAULT_REGEX);
        let regex = if pattern == DEFAULT_REGEX {
            static DEFAULT: OnceLock<Regex> = OnceLock::new();
            DEFAULT
                .get_or_init(|| goregex::compile_anchored(DEFAULT_REGEX).expect("valid"))
                .clone()
        } else {
            goregex::compile_anchored(pattern).map_err(|err| RelabelErrorKind::InvalidRegex {
                regex: goregex::shown(pattern),
                reason: regex_error_reason(&err),
            })?
        };
        validate(action, config)?;
        let target_label = config.target_label.clone().unwrap_or_default();
        let replacement = config.replacement.as_deref().unwrap_or(DEFAULT_REPLACEMENT);
        Ok(Rule {
            action,
            source_labels: config.source_labels.clone(),
            separator: config
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_owned()),
            target: Template::parse(&target_label, &regex),
            replacement: Template::parse(replacement, &regex),
            default_regex: pattern == DEFAULT_REGEX,
            regex,
            modulus: config.modulus.unwrap_or(0),
            target_label,
        })
    }

    fn read_names(&self) -> impl Iterator<Item = &str> {
        let sources: &[String] = if self.action.reads_all_labels() {
            &[]
        } else {
            &self.source_labels
        };
        let compared = matches!(self.action, Action::KeepEqual | Action::DropEqual)
            .then_some(self.target_label.as_str());
        sources.iter().map(String::as_str).chain(compared)
    }

    /// Returns false when the rule drops the label set.
    fn apply(&self, labels: &mut Labels, scratch: &mut Scratch) -> bool {
        let Scratch { val, name, value } = scratch;
        val.clear();
        for (i, source) in self.source_labels.iter().enumerate() {
            if i > 0 {
                val.push_str(&self.separator);
            }
            val.push_str(label_value(labels, source));
        }
        value.clear();
        match self.action {
            Action::Drop => return !self.regex.is_match(val),
            Action::Keep => return self.regex.is_match(val),
            Action::DropEqual => return label_value(labels, &self.target_label) != val.as_str(),
            Action::KeepEqual => return label_value(labels, &self.target_label) == val.as_str(),
            Action::Replace => self.replace(labels, val, name, value),
            Action::Lowercase => {
                go_to_lower(val, value);
                set_label(labels, &self.target_label, value);
            }
            Action::Uppercase => {
                go_to_upper(val, value);
                set_label(labels, &self.target_label, value);
            }
            Action::HashMod => {
                let digest = Md5::digest(val.as_bytes());
                let tail: [u8; 8] = digest[8..16]
                    .try_into()
                    .expect("an MD5 digest has 16 bytes");
                let _ = write!(value, "{}", u64::from_be_bytes(tail) % self.modulus);
                set_label(labels, &self.target_label, value);
            }
            Action::LabelMap => self.label_map(labels),
            Action::LabelDrop => labels.retain(|label, _| !self.regex.is_match(label)),
            Action::LabelKeep => labels.retain(|label, _| self.regex.is_match(label)),
        }
        true
    }

    fn replace(&self, labels: &mut Labels, val: &str, name: &mut String, value: &mut String) {
        // Prometheus' special case: with nothing to match or expand, write the replacement as it is (an
        // empty replacement deletes the target).
        if val.is_empty()
            && self.default_regex
            && !self.target.has_dollar
            && !self.replacement.has_dollar
        {
            set_label(labels, &self.target_label, &self.replacement.raw);
            return;
        }
        name.clear();
        if self.default_regex {
            // `(.*)` always matches and its groups 0 and 1 are the whole value: skip the regex engine.
            let group = |_| Some(val);
            self.target.expand(group, name);
            self.replacement.expand(group, value);
        } else {
            let Some(caps) = self.regex.captures(val) else {
                return;
            };
            let group = |i| caps.get(i).map(|m| m.as_str());
            self.target.expand(group, name);
            self.replacement.expand(group, value);
        }
        // Under the UTF-8 scheme any non-empty name is a valid label name; an empty one makes this a no-op.
        if !name.is_empty() {
            set_label(labels, name, value);
        }
    }

    /// For every label whose name matches: set `ReplaceAllString(name, replacement)` to its value. The
    /// names and values are taken before any is set, as Prometheus ranges over a snapshot.
    fn label_map(&self, labels: &mut Labels) {
        let mut mapped = Vec::new();
        for (label, value) in labels
            .iter()
            .filter(|(label, _)| self.regex.is_match(label))
        {
            let mut new_name = String::with_capacity(label.len());
            let mut last = 0;
            for caps in self.regex.captures_iter(label) {
                let whole = caps.get(0).expect("group 0 always participates");
                new_name.push_str(&label[last..whole.start()]);
                self.replacement
                    .expand(|i| caps.get(i).map(|m| m.as_str()), &mut new_name);
                last = whole.end();
            }
            new_name.push_str(&label[last..]);
            mapped.push((new_name, value.clone()));
        }
        for (name, value) in mapped {
            set_label(labels, &name, &value);
        }
    }
}

/// Promtail's semantic checks (§4.3), in the order Prometheus' `Config.Validate` makes them.
fn validate(action: Action, config: &RelabelConfig) -> Result<(), RelabelErrorKind> {
    use RelabelErrorKind as E;
    let name = action.name();
    let target_set = config
        .target_label
        .as_deref()
        .is_some_and(|t| !t.is_empty());
    let modulus_set = config.modulus.unwrap_or(0) != 0;
    let separator_set = config
        .separator
        .as_deref()
        .is_some_and(|s| s != DEFAULT_SEPARATOR);
    let replacement_set = config
        .replacement
        .as_deref()
        .is_some_and(|r| r != DEFAULT_REPLACEMENT);
    let first_set = |fields: &[(bool, &'static str)]| {
        fields.iter().find(|(set, _)| *set).map(|&(_, field)| field)
    };

    if action == Action::HashMod && !modulus_set {
        return Err(E::ZeroModulus);
    }
    if action.needs_target_label() && !target_set {
        return Err(E::MissingTargetLabel { action: name });
    }
    let compares_or_cases = matches!(
        action,
        Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
    );
    if compares_or_cases && replacement_set {
        return Err(E::ReplacementNotAllowed { action: name });
    }
    if action == Action::LabelMap && config.replacement.as_deref() == Some("") {
        return Err(E::EmptyLabelMapReplacement);
    }
    if matches!(action, Action::KeepEqual | Action::DropEqual) {
        // Prometheus compares the regex by identity: any regex written, even `(.*)`, is refused.
        if let Some(field) = first_set(&[
            (config.regex.is_some(), "regex"),
            (modulus_set, "modulus"),
            (separator_set, "separator"),
        ]) {
            return Err(E::OnlySourceAndTarget {
                action: name,
                field,
            });
        }
    }
    if matches!(action, Action::LabelDrop | Action::LabelKeep) {
        if let Some(field) = first_set(&[
            (!config.source_labels.is_empty(), "source_labels"),
            (target_set, "target_label"),
            (modulus_set, "modulus"),
            (separator_set, "separator"),
            (replacement_set, "replacement"),
        ]) {
            return Err(E::OnlyRegex {
                action: name,
                field,
            });
        }
    }
    Ok(())
}

/// The last line of a regex crate error ("unclosed group"), without the echo of the translated pattern.
fn regex_error_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

/// A label's value, `""` when it is missing.
fn label_value<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// `labels.Builder.Set`: an empty value deletes the label. Reuses the existing allocation when it can.
fn set_label(labels: &mut Labels, name: &str, value: &str) {
    if value.is_empty() {
        labels.remove(name);
    } else if let Some(current) = labels.get_mut(name) {
        if current != value {
            current.clear();
            current.push_str(value);
        }
    } else {
        labels.insert(name.to_owned(), value.to_owned());
    }
}

/// A replacement (or `target_label`) template parsed once, expanding like Go's `Regexp.Expand`:
/// `$$` is `$`; `$name` and `${name}` take the longest run of Unicode letters, digits and `_` as the
/// name; a name that is a decimal number without leading zeros is a group index, anything else a group
/// name (so `$1x` is the group named `1x`, and `$01` the group named `01`); an unknown or unmatched group
/// expands to nothing; a `$` not followed by a valid reference (`$`, `${`, `${}`, `${a-b}`) is literal.
#[derive(Debug, Clone)]
struct Template {
    raw: String,
    has_dollar: bool,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Group(usize),
}

impl Template {
    fn parse(raw: &str, regex: &Regex) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = raw;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = go_extract_name(rest) else {
                literal.push('$');
                continue;
            };
            rest = after;
            let index = match go_group_number(name) {
                Some(number) => (number < regex.captures_len()).then_some(number),
                None => regex.capture_names().position(|group| group == Some(name)),
            };
            if let Some(index) = index {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(index));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Template {
            raw: raw.to_owned(),
            has_dollar: raw.contains('$'),
            pieces,
        }
    }

    fn expand<'h>(&self, group: impl Fn(usize) -> Option<&'h str>, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Group(index) => out.push_str(group(*index).unwrap_or_default()),
            }
        }
    }
}

/// Go's `extract`: the name of `name...` or `{name}...` after a `$`, and what follows it.
fn go_extract_name(s: &str) -> Option<(&str, &str)> {
    let (body, braced) = match s.strip_prefix('{') {
        Some(body) => (body, true),
        None => (s, false),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !is_go_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let (name, mut rest) = body.split_at(end);
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    Some((name, rest))
}

/// `unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_'` (general categories L and Nd).
fn is_go_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c == '_' || c.is_ascii_alphanumeric();
    }
    static LETTER_OR_DIGIT: OnceLock<Regex> = OnceLock::new();
    let re = LETTER_OR_DIGIT.get_or_init(|| Regex::new(r"^[\p{L}\p{Nd}]$").expect("valid"));
    re.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Go parses a name of at most 9 decimal digits without a leading zero as a group number.
fn go_group_number(name: &str) -> Option<usize> {
    let mut number = 0usize;
    for digit in name.bytes() {
        if !digit.is_ascii_digit() || number >= 100_000_000 {
            return None;
        }
        number = number * 10 + usize::from(digit - b'0');
    }
    (!(name.len() > 1 && name.starts_with('0'))).then_some(number)
}

/// Go's `strings.ToLower`: each rune mapped by its simple lowercase mapping.
fn go_to_lower(s: &str, out: &mut String) {
    out.extend(s.chars().map(|c| {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(single), None) => single,
            // Only U+0130 lowercases to two chars; its simple mapping is 'i'.
            _ if c == '\u{130}' => 'i',
            _ => c,
        }
    }));
}

/// Go's `strings.ToUpper`: each rune mapped by its simple uppercase mapping.
fn go_to_upper(s: &str, out: &mut String) {
    out.extend(s.chars().map(|c| {
        let mut upper = c.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(single), None) => single,
            // Where the full mapping has several chars, the simple one is the char itself, except for
            // the Greek letters with ypogegrammeni, which map to their prosgegrammeni forms.
            _ => match u32::from(c) {
                0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
                    char::from_u32(u32::from(c) + 8).unwrap_or(c)
                }
                0x1FB3 | 0x1FC3 | 0x1FF3 => char::from_u32(u32::from(c) + 9).unwrap_or(c),
                _ => c,
            },
        }
    }));
}

#[cfg(test)]
mod tests;
