//! One journal entry → one [`Entry`], as Promtail's journal target formats it (compat reference §3.4):
//!
//! * the line is `MESSAGE`, or with `json: true` every field of the entry as a JSON object (keys
//!   sorted, values strings, Go's escaping); an entry without `MESSAGE` is dropped (`no_message`);
//! * every field `F` is the meta label `__journal_<lowercase F>`, `PRIORITY` also gives
//!   `__journal_priority_keyword`; the static `labels` are added over them, `relabel_configs` run per
//!   entry, `__*` labels are stripped, and an entry left without labels is dropped (`empty_labels`);
//! * the timestamp is the entry's realtime timestamp.
//!
//! Relabeling every entry from scratch would dominate the cost of reading, so the resulting label set
//! is cached, keyed by the values of the fields that can change it ([`Relabeler::name_matters`]): with
//! the usual rules (copy `_SYSTEMD_UNIT`, drop a few units) a busy journal has a handful of distinct
//! keys, and entries of one stream share one `Arc<LabelSet>`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::entry::{Entry, LabelSet, Labels};
use crate::relabel::Relabeler;
use crate::stage::gojson;

/// Distinct label keys kept before the cache starts over (a label copied from a per-process field
/// such as `_PID` would otherwise grow it without bound).
const CACHE_MAX: usize = 4096;

/// What became of one journal entry.
#[derive(Debug)]
pub enum Formatted {
    Entry(Entry),
    /// No `MESSAGE` field (and `json` is off).
    NoMessage,
    /// Relabeling dropped it, or left no label that is not `__*`.
    EmptyLabels,
}

pub struct Formatter {
    json: bool,
    static_labels: Labels,
    relabeler: Relabeler,
    /// The label set of every entry when there are no relabel rules (`None`: empty, so all dropped).
    fixed: Option<Option<Arc<LabelSet>>>,
    /// Per field name: whether its value can change the labels.
    relevant: HashMap<Box<[u8]>, bool>,
    cache: HashMap<Box<[u8]>, Option<Arc<LabelSet>>>,
    /// The fields of the entry being formatted, copied out of the journal: `NAME=value` ranges in `buf`.
    buf: Vec<u8>,
    fields: Vec<(usize, usize)>,
    key: Vec<u8>,
}

impl Formatter {
    pub fn new(json: bool, static_labels: Labels, relabeler: Relabeler) -> Self {
        let fixed = relabeler.is_empty().then(|| {
            let labels: Labels = static_labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!labels.is_empty()).then(|| LabelSet::new(labels))
        });
        Formatter {
            json,
            static_labels,
            relabeler,
            fixed,
            relevant: HashMap::new(),
            cache: HashMap::new(),
            buf: Vec::with_capacity(4096),
            fields: Vec::with_capacity(32),
            key: Vec::with_capacity(256),
        }
    }

    /// Format the entry whose fields `for_each_field` yields (each `NAME=value`).
    pub fn format<E>(
        &mut self,
        realtime_usec: u64,
        for_each_field: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<(), E>,
    ) -> Result<Formatted, E> {
        self.buf.clear();
        self.fields.clear();
        let mut message: Option<(usize, usize)> = None;
        {
            let Formatter {
                json,
                fixed,
                relabeler,
                relevant,
                buf,
                fields,
                ..
            } = self;
            let keep_all = *json;
            let relabel = fixed.is_none();
            for_each_field(&mut |datum: &[u8]| {
                let Some(eq) = memchr::memchr(b'=', datum) else {
                    return;
                };
                let name = &datum[..eq];
                let is_message = name == b"MESSAGE";
                let keep = keep_all || (relabel && is_relevant(relevant, relabeler, name));
                if !keep && !is_message {
                    return;
                }
                let start = buf.len();
                buf.extend_from_slice(datum);
                let range = (start, buf.len());
                if is_message {
                    message = Some((start + eq + 1, buf.len()));
                }
                if keep {
                    fields.push(range);
                }
            })?;
        }
        let line = if self.json {
            self.json_line()
        } else {
            match message {
                Some((a, b)) => lossy(&self.buf[a..b]),
                None => return Ok(Formatted::NoMessage),
            }
        };
        let labels = match &self.fixed {
            Some(fixed) => fixed.clone(),
            None => self.relabeled(),
        };
        let Some(labels) = labels else {
            return Ok(Formatted::EmptyLabels);
        };
        Ok(Formatted::Entry(Entry {
            timestamp: (realtime_usec as i64).saturating_mul(1000),
            line,
            labels,
            metadata: Vec::new(),
            extracted: None,
        }))
    }

    /// The fields kept, sorted by name; of a field given twice the last value wins (a Go map's).
    fn sorted_fields(&mut self) {
        let buf = &self.buf;
        let name = |&(a, b): &(usize, usize)| {
            let d = &buf[a..b];
            &d[..memchr::memchr(b'=', d).unwrap_or(d.len())]
        };
        // Stable: equal names keep their order, so dedup can keep the last.
        self.fields.sort_by(|x, y| name(x).cmp(name(y)));
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            match out.last_mut() {
                Some(last) if name(last) == name(f) => *last = *f,
                _ => out.push(*f),
            }
        }
        self.fields = out;
    }

    fn json_line(&mut self) -> String {
        self.sorted_fields();
        let mut line = String::with_capacity(self.buf.len() + self.fields.len() * 6 + 2);
        line.push('{');
        for (i, &(a, b)) in self.fields.iter().enumerate() {
            let d = &self.buf[a..b];
            let eq = memchr::memchr(b'=', d).unwrap_or(d.len());
            if i > 0 {
                line.push(',');
            }
            gojson::write_str(&mut line, &lossy(&d[..eq]));
            line.push(':');
            gojson::write_str(&mut line, &lossy(d.get(eq + 1..).unwrap_or_default()));
        }
        line.push('}');
        line
    }

    /// The labels for the fields kept, from the cache or by relabeling.
    fn relabeled(&mut self) -> Option<Arc<LabelSet>> {
        if self.json {
            // json_line sorted every field; only the relevant ones are part of the key.
            let Formatter {
                relevant,
                relabeler,
                buf,
                fields,
                ..
            } = self;
            fields.retain(|&(a, b)| {
                let d = &buf[a..b];
                let eq = memchr::memchr(b'=', d).unwrap_or(d.len());
                is_relevant(relevant, relabeler, &d[..eq])
            });
        } else {
            self.sorted_fields();
        }
        self.key.clear();
        for &(a, b) in &self.fields {
            self.key.extend_from_slice(&((b - a) as u32).to_le_bytes());
            self.key.extend_from_slice(&self.buf[a..b]);
        }
        if let Some(hit) = self.cache.get(self.key.as_slice()) {
            return hit.clone();
        }
        let labels = self.relabel_fields();
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache
            .insert(self.key.clone().into_boxed_slice(), labels.clone());
        labels
    }

    fn relabel_fields(&self) -> Option<Arc<LabelSet>> {
        let mut labels = Labels::new();
        for &(a, b) in &self.fields {
            let d = &self.buf[a..b];
            let eq = memchr::memchr(b'=', d).unwrap_or(d.len());
            let name = lossy(&d[..eq]).to_ascii_lowercase();
            let value = lossy(d.get(eq + 1..).unwrap_or_default());
            if name == "priority" {
                labels.insert(
                    "__journal_priority_keyword".into(),
                    priority_keyword(&value).into(),
                );
            }
            labels.insert(format!("__journal_{name}"), value);
        }
        for (k, v) in &self.static_labels {
            labels.insert(k.clone(), v.clone());
        }
        if !self.relabeler.process(&mut labels) {
            return None;
        }
        labels.retain(|k, _| !k.starts_with("__"));
        (!labels.is_empty()).then(|| LabelSet::new(labels))
    }
}

/// Whether field `name` can change an entry's labels (memoized per name).
fn is_relevant(memo: &mut HashMap<Box<[u8]>, bool>, relabeler: &Relabeler, name: &[u8]) -> bool {
    if let Some(&known) = memo.get(name) {
        return known;
    }
    let label = format!("__journal_{}", lossy(name).to_ascii_lowercase());
    let matters = relabeler.name_matters(&label)
        || (name == b"PRIORITY" && relabeler.name_matters("__journal_priority_keyword"));
    memo.insert(name.into(), matters);
    matters
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Promtail's `makeJournalPriority`: syslog's names, other values as they are.
pub fn priority_keyword(priority: &str) -> &str {
    match priority {
        "0" => "emerg",
        "1" => "alert",
        "2" => "crit",
        "3" => "error",
        "4" => "warning",
        "5" => "notice",
        "6" => "info",
        "7" => "debug",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::RelabelConfig;

    fn formatter(json: bool, statics: &[(&str, &str)], rules: &str) -> Formatter {
        let rules: Vec<RelabelConfig> = serde_yaml_ng::from_str(rules).unwrap();
        let statics = statics
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Formatter::new(json, statics, Relabeler::new(&rules).unwrap())
    }

    fn run(f: &mut Formatter, fields: &[&str]) -> Formatted {
        f.format::<()>(1_700_000_000_123_456, |each| {
            for d in fields {
                each(d.as_bytes());
            }
            Ok(())
        })
        .unwrap()
    }

    fn entry(out: Formatted) -> Entry {
        match out {
            Formatted::Entry(e) => e,
            other => panic!("not an entry: {other:?}"),
        }
    }

    const UNIT_RULES: &str = "
- source_labels: [__journal__systemd_unit]
  target_label: unit
- source_labels: [__journal_priority_keyword]
  target_label: level
- source_labels: [__journal__systemd_unit]
  regex: noisy.service
  action: drop
";

    #[test]
    fn message_labels_and_timestamp_as_promtail() {
        let mut f = formatter(false, &[("job", "systemd-journal")], UNIT_RULES);
        let e = entry(run(
            &mut f,
            &[
                "_SYSTEMD_UNIT=nginx.service",
                "PRIORITY=3",
                "MESSAGE=hello",
                "_PID=42",
            ],
        ));
        assert_eq!(e.line, "hello");
        assert_eq!(e.timestamp, 1_700_000_000_123_456_000);
        assert_eq!(
            e.labels.rendered(),
            r#"{job="systemd-journal", level="error", unit="nginx.service"}"#
        );
        // Same unit and priority, another PID: the cached label set is shared.
        let again = entry(run(
            &mut f,
            &[
                "MESSAGE=again",
                "_PID=43",
                "PRIORITY=3",
                "_SYSTEMD_UNIT=nginx.service",
            ],
        ));
        assert!(Arc::ptr_eq(&e.labels, &again.labels));
        assert!(matches!(
            run(&mut f, &["MESSAGE=x", "_SYSTEMD_UNIT=noisy.service"]),
            Formatted::EmptyLabels
        ));
        assert!(matches!(
            run(&mut f, &["_SYSTEMD_UNIT=nginx.service"]),
            Formatted::NoMessage
        ));
    }

    #[test]
    fn no_rules_and_no_labels_drops_everything() {
        let mut f = formatter(false, &[], "[]");
        assert!(matches!(
            run(&mut f, &["MESSAGE=x"]),
            Formatted::EmptyLabels
        ));
        let mut f = formatter(false, &[("__hidden", "x")], "[]");
        assert!(matches!(
            run(&mut f, &["MESSAGE=x"]),
            Formatted::EmptyLabels
        ));
    }

    #[test]
    fn labelmap_copies_every_matching_field() {
        let rules = "- action: labelmap\n  regex: __journal__(.+)\n";
        let mut f = formatter(false, &[], rules);
        let e = entry(run(
            &mut f,
            &[
                "MESSAGE=m",
                "_COMM=sshd",
                "_HOSTNAME=h1",
                "SYSLOG_IDENTIFIER=x",
            ],
        ));
        assert_eq!(e.labels.rendered(), r#"{comm="sshd", hostname="h1"}"#);
        let e = entry(run(&mut f, &["MESSAGE=m", "_COMM=cron", "_HOSTNAME=h1"]));
        assert_eq!(e.labels.rendered(), r#"{comm="cron", hostname="h1"}"#);
    }

    #[test]
    fn priority_keyword_passes_unknown_values_through() {
        let rules = "- source_labels: [__journal_priority_keyword]\n  target_label: level\n";
        let mut f = formatter(false, &[], rules);
        for (p, want) in [("0", "emerg"), ("4", "warning"), ("7", "debug"), ("9", "9")] {
            let field = format!("PRIORITY={p}");
            let e = entry(run(&mut f, &["MESSAGE=m", &field]));
            assert_eq!(e.labels.get("level"), Some(want));
        }
    }

    #[test]
    fn json_line_has_every_field_sorted_with_go_escaping() {
        let mut f = formatter(true, &[("job", "j")], UNIT_RULES);
        let e = entry(run(
            &mut f,
            &[
                "_SYSTEMD_UNIT=a.service",
                "MESSAGE=<b> \"q\"",
                "CUSTOM=1",
                "CUSTOM=2",
                "BIN=\u{1}",
            ],
        ));
        assert_eq!(
            e.line,
            r#"{"BIN":"\u0001","CUSTOM":"2","MESSAGE":"\u003cb\u003e \"q\"","_SYSTEMD_UNIT":"a.service"}"#
        );
        assert_eq!(e.labels.rendered(), r#"{job="j", unit="a.service"}"#);
        // json: an entry without MESSAGE is still shipped.
        let e = entry(run(&mut f, &["_SYSTEMD_UNIT=b.service"]));
        assert_eq!(e.line, r#"{"_SYSTEMD_UNIT":"b.service"}"#);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut f = formatter(false, &[("job", "j")], "[]");
        let e = f
            .format::<()>(0, |each| {
                each(b"MESSAGE=a\xffb");
                Ok(())
            })
            .unwrap();
        assert_eq!(entry(e).line, "a\u{fffd}b");
    }
}
