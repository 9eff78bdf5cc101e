//! The unit of data that flows through logferry: [`Entry`], grouped into [`Batch`]es.
//!
//! An entry's stream labels are an [`Arc<LabelSet>`]: every line of one file shares the same
//! allocation, so fanning a batch out to several sinks and grouping entries into Loki streams costs a
//! pointer compare, not a string compare. A `LabelSet` renders its Loki selector form (`{a="b", c="d"}`)
//! once, when it is built.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A mutable label map, as relabeling and stages see it. Sorted by name, as Loki wants them.
pub type Labels = BTreeMap<String, String>;

/// The hidden label the `tenant` stage sets; it picks the tenant and is never sent as a label.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// An immutable, shareable stream label set with its rendered Loki form.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LabelSet {
    labels: Labels,
    /// `{a="b", c="d"}` with Go `strconv.Quote` escaping, `__tenant_id__` excluded.
    rendered: String,
    /// [`labels_hash`] of `labels`, computed once.
    hash: u64,
}

impl LabelSet {
    pub fn new(labels: Labels) -> Arc<Self> {
        let rendered = render(&labels);
        let hash = labels_hash(&labels);
        Arc::new(LabelSet {
            labels,
            rendered,
            hash,
        })
    }

    /// A digest of the names and values (the same as [`labels_hash`] of [`LabelSet::labels`]), for
    /// per-stream state keyed by label content, such as the `timestamp` stage's last timestamps.
    pub fn content_hash(&self) -> u64 {
        self.hash
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }

    /// The Loki stream selector form, as Promtail sends it in `StreamAdapter.labels`.
    pub fn rendered(&self) -> &str {
        &self.rendered
    }

    pub fn tenant(&self) -> Option<&str> {
        self.get(TENANT_LABEL).filter(|t| !t.is_empty())
    }
}

/// A 64-bit digest of a label map's names and values (not a cryptographic one).
pub fn labels_hash(labels: &Labels) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for (name, value) in labels {
        name.hash(&mut h);
        value.hash(&mut h);
    }
    h.finish()
}

fn render(labels: &Labels) -> String {
    let shown = labels.iter().filter(|(name, _)| *name != TENANT_LABEL);
    braced(shown.map(|(n, v)| (n.as_str(), v.as_str())))
}

/// Name-value pairs as Prometheus writes a label set: `{name="value", …}`, values Go-quoted.
pub fn braced<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::with_capacity(64);
    out.push('{');
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        go_quote(&mut out, value);
    }
    out.push('}');
    out
}

/// Quote `s` the way Go's `strconv.Quote` does for printable text: `"`, `\` and control characters are
/// escaped; other characters, non-ASCII included, are written as they are.
pub fn go_quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One log line on its way to the sinks.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unix time in nanoseconds.
    pub timestamp: i64,
    pub line: String,
    pub labels: Arc<LabelSet>,
    /// Loki structured metadata (name, value), in the order the stages added it.
    pub metadata: Vec<(String, String)>,
    /// The values the pipeline's stages extracted, kept only when an Elasticsearch sink asks for
    /// them (`extracted_fields`); `None` otherwise, so other configs carry nothing.
    pub extracted: Option<Box<ExtractedFields>>,
}

/// Extracted values as an entry carries them to the sinks: (name, value) in the order the stages
/// first set them; values are JSON strings, numbers, booleans or null.
pub type ExtractedFields = Vec<(String, serde_json::Value)>;

impl Entry {
    /// Bytes Promtail counts toward a batch: the line plus structured metadata, labels excluded.
    pub fn size(&self) -> usize {
        self.line.len()
            + self
                .metadata
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}

/// Entries read together from one target. Shared (`Arc`) by every sink it goes to; the
/// acknowledgement travels beside it (`delivery::Delivery`).
#[derive(Debug, Default)]
pub struct Batch {
    pub entries: Vec<Entry>,
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-02-02T13:00:00.123456789Z`.
pub fn format_rfc3339_nanos(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix time now, in nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_timestamps() {
        assert_eq!(
            super::format_rfc3339_nanos(1_556_590_361_844_351_500),
            "2019-04-30T02:12:41.844351500Z"
        );
        assert_eq!(
            super::format_rfc3339_nanos(0),
            "1970-01-01T00:00:00.000000000Z"
        );
    }

    use super::*;

    #[test]
    fn renders_sorted_quoted_without_tenant() {
        let mut l = Labels::new();
        l.insert("job".into(), "varlogs".into());
        l.insert("filename".into(), "/var/log/a \"b\".log".into());
        l.insert(TENANT_LABEL.into(), "t1".into());
        let set = LabelSet::new(l);
        assert_eq!(
            set.rendered(),
            r#"{filename="/var/log/a \"b\".log", job="varlogs"}"#
        );
        assert_eq!(set.tenant(), Some("t1"));
    }

    #[test]
    fn quotes_control_characters_like_go() {
        let mut s = String::new();
        go_quote(&mut s, "a\u{1}b\nc\\é");
        assert_eq!(s, r#""a\x01b\nc\\é""#);
    }
}
