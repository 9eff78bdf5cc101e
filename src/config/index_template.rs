//! Elasticsearch's index template (`elasticsearch[].index`), a config value the sink renders per
//! entry: the index a document goes to, `index: logs-%Y.%m.%d` with the date taken from the entry's
//! own timestamp (UTC), or a fixed data stream name.
//!
//! The template knows a strftime subset, `%Y` (4-digit year), `%m`, `%d`, `%H` (2 digits) and `%%`;
//! anything else after `%` is a config error rather than a surprise index name. Entries mostly come in
//! time order, so the rendered name is kept for the last hour seen and recomputed only when an entry
//! falls in another hour (an old line, or midnight passing).

use crate::entry::civil_from_days;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Year,
    Month,
    Day,
    Hour,
}

/// A parsed index name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTemplate {
    parts: Vec<Part>,
    /// No date in it: the name is the same for every entry.
    fixed: bool,
}

impl IndexTemplate {
    /// Parses `text`, checking that every name it can render is a valid Elasticsearch index name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('Y') => Part::Year,
                Some('m') => Part::Month,
                Some('d') => Part::Day,
                Some('H') => Part::Hour,
                Some(other) => {
                    let known = "expected %Y, %m, %d, %H or %%";
                    return Err(format!(
                        "unknown date field %{other} in index {text:?}: {known}"
                    ));
                }
                None => return Err(format!("index {text:?} ends with a lone %")),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        let fixed = parts.iter().all(|p| matches!(p, Part::Literal(_)));
        let template = IndexTemplate { parts, fixed };
        check_index_name(&template.render_hour(0)).map_err(|e| format!("index {text:?}: {e}"))?;
        Ok(template)
    }

    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// The index name for an entry at `ts` (Unix nanoseconds, UTC).
    pub fn render(&self, ts: i64) -> String {
        self.render_hour(ts.div_euclid(NANOS_PER_HOUR))
    }

    fn render_hour(&self, hour: i64) -> String {
        let (y, m, d) = civil_from_days(hour.div_euclid(24));
        let h = hour.rem_euclid(24);
        let mut out = String::with_capacity(32);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Year => out.push_str(&format!("{y:04}")),
                Part::Month => out.push_str(&format!("{m:02}")),
                Part::Day => out.push_str(&format!("{d:02}")),
                Part::Hour => out.push_str(&format!("{h:02}")),
            }
        }
        out
    }
}

/// Renders index names, remembering the last hour's.
#[derive(Debug)]
pub struct IndexNamer {
    template: IndexTemplate,
    last: Option<(i64, std::sync::Arc<str>)>,
}

impl IndexNamer {
    pub fn new(template: IndexTemplate) -> Self {
        IndexNamer {
            template,
            last: None,
        }
    }

    /// The index for an entry at `ts`, and whether it differs from the previous call's.
    pub fn name(&mut self, ts: i64) -> (std::sync::Arc<str>, bool) {
        let hour = if self.template.fixed {
            0
        } else {
            ts.div_euclid(NANOS_PER_HOUR)
        };
        match &self.last {
            Some((h, name)) if *h == hour => (name.clone(), false),
            _ => {
                let name: std::sync::Arc<str> = self.template.render_hour(hour).into();
                self.last = Some((hour, name.clone()));
                (name, true)
            }
        }
    }
}

/// Elasticsearch's rules for index and data stream names (`MetadataCreateIndexService`): lowercase,
/// not `.` or `..`, no leading `-`, `_` or `+`, none of `\ / * ? " < > | , #` or space, at most 255 bytes.
pub fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the index name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid index name"));
    }
    if name.starts_with(['-', '_', '+']) {
        return Err("an index name must not start with '-', '_' or '+'".into());
    }
    if let Some(c) = name.chars().find(|c| r#"\/*?"<>|, #:"#.contains(*c)) {
        return Err(format!(
            "an index name must not contain {c:?} (nor any of \\ / * ? \" < > | , # : or space)"
        ));
    }
    if name.chars().any(char::is_uppercase) {
        return Err("an index name must be lowercase".into());
    }
    if name.len() > 255 {
        return Err("an index name is at most 255 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-31T23:59:59.999999999Z
    const BEFORE_MIDNIGHT: i64 = 1_769_903_999_999_999_999;

    #[test]
    fn dates_come_from_the_entry_timestamp_in_utc() {
        let t = IndexTemplate::parse("logs-%Y.%m.%d").unwrap();
        assert_eq!(t.render(BEFORE_MIDNIGHT), "logs-2026.01.31");
        assert_eq!(t.render(BEFORE_MIDNIGHT + 1), "logs-2026.02.01");
        let t = IndexTemplate::parse("app-%Y%m%d%H-100%%").unwrap();
        assert_eq!(
            t.render(BEFORE_MIDNIGHT + 1 + 3_600_000_000_000),
            "app-2026020101-100%"
        );
        assert_eq!(IndexTemplate::parse("logs").unwrap().render(0), "logs");
        assert_eq!(IndexTemplate::parse("x-%Y").unwrap().render(-1), "x-1969");
    }

    #[test]
    fn the_namer_recomputes_only_when_the_hour_changes() {
        let mut n = IndexNamer::new(IndexTemplate::parse("l-%Y.%m.%d").unwrap());
        assert_eq!(n.name(BEFORE_MIDNIGHT), ("l-2026.01.31".into(), true));
        assert_eq!(n.name(BEFORE_MIDNIGHT - 5), ("l-2026.01.31".into(), false));
        assert_eq!(n.name(BEFORE_MIDNIGHT + 1), ("l-2026.02.01".into(), true));
        let mut fixed = IndexNamer::new(IndexTemplate::parse("logs").unwrap());
        assert!(fixed.name(0).1 && !fixed.name(BEFORE_MIDNIGHT).1);
    }

    #[test]
    fn bad_templates_and_names_are_refused() {
        for (text, want) in [
            ("logs-%y", "unknown date field %y"),
            ("logs-%", "ends with a lone %"),
            ("Logs-%Y", "must be lowercase"),
            ("_logs", "must not start with"),
            ("logs %Y", "must not contain ' '"),
            ("logs/x", "must not contain '/'"),
            ("", "empty"),
        ] {
            let err = IndexTemplate::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
