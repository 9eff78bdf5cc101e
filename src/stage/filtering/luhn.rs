//! `luhn`: redact numbers that pass the Luhn check, such as card numbers. Promtail has no such stage;
//! this is Grafana Alloy's `stage.luhn` (`loki.process`), with its fields and behaviour:
//!
//! * `replacement` (default `**REDACTED**`) replaces each run of at least `min_length` (default 13; a
//!   value below 1 means 13) digits whose value passes the Luhn check and fits a signed 64-bit integer.
//! * `delimiters` (default none), e.g. `" -"`: characters allowed between the digits of a run, so that
//!   `4111-1111-1111-1111` and `4111 1111 1111 1111` are found. A delimiter right after a redacted run
//!   is kept (only the last one, if several follow, as Alloy writes it back).
//! * `skip_regex`: text that a (Go) regex matches is left alone, e.g. UUIDs whose digit groups happen to
//!   pass the check.
//! * `source`: read the extracted value (strings only) instead of the line; as in Alloy, the **line**
//!   is then set to that value, redacted. Without `source` the line itself is redacted.
//!
//! Digits are ASCII digits (Alloy's `unicode.IsDigit` also takes other scripts' digits into a run, which
//! then fails its integer parse and is left alone; here such digits end a run).

use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::goregex::compile as compile_go_regex;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct LuhnConfig {
    replacement: Option<String>,
    source: Option<String>,
    min_length: Option<i64>,
    delimiters: Option<String>,
    skip_regex: Option<String>,
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: LuhnConfig = decode("luhn", body)?;
    if cfg.source.as_deref() == Some("") {
        return Err("empty source".into());
    }
    let skip = cfg
        .skip_regex
        .filter(|s| !s.is_empty())
        .map(|s| {
            compile_go_regex(&s).map_err(|e| format!("could not compile regular expression: {e}"))
        })
        .transpose()?;
    Ok(Arc::new(LuhnStage(Arc::new(Luhn {
        replacement: cfg
            .replacement
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "**REDACTED**".into()),
        source: cfg.source,
        min_length: match cfg.min_length {
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => 13,
        },
        delimiters: cfg.delimiters.unwrap_or_default().chars().collect(),
        skip,
    }))))
}

struct Luhn {
    replacement: String,
    source: Option<String>,
    min_length: usize,
    delimiters: Vec<char>,
    skip: Option<Regex>,
}

/// A run of digits (and delimiters between them) being read.
struct Run {
    start: usize,
    end: usize,
    digits: usize,
    /// The digits' value; `None` once it overflows (Go's `strconv.Atoi` fails, no redaction).
    value: Option<i64>,
    /// The delimiter the run ends with, if it ends with one.
    trailing: Option<char>,
}

/// Luhn's check on a number: double every second digit from the right, sum the digits, a multiple of 10.
fn is_luhn(mut number: i64) -> bool {
    let mut sum = 0;
    let mut double = false;
    while number > 0 {
        let mut d = number % 10;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        number /= 10;
    }
    sum % 10 == 0
}

impl Luhn {
    /// `input` with its Luhn numbers replaced, or `None` if it has none.
    fn redact(&self, input: &str) -> Option<String> {
        // Byte ranges `skip_regex` matches; characters starting inside one are left alone.
        let skips: Vec<(usize, usize)> = match &self.skip {
            Some(re) => re.find_iter(input).map(|m| (m.start(), m.end())).collect(),
            None => Vec::new(),
        };
        let mut next_skip = 0;
        // Ranges to replace, with the delimiter to write after the replacement.
        let mut edits: Vec<(usize, usize, Option<char>)> = Vec::new();
        let mut run: Option<Run> = None;
        for (pos, c) in input.char_indices() {
            while skips.get(next_skip).is_some_and(|(_, end)| *end <= pos) {
                next_skip += 1;
            }
            if skips.get(next_skip).is_some_and(|(start, _)| *start <= pos) {
                self.finish(run.take(), &mut edits);
            } else if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
                let r = run.get_or_insert(Run {
                    start: pos,
                    end: pos,
                    digits: 0,
                    value: Some(0),
                    trailing: None,
                });
                r.digits += 1;
                r.value = r
                    .value
                    .and_then(|v| v.checked_mul(10)?.checked_add(i64::from(d)));
                r.end = pos + 1;
                r.trailing = None;
            } else if let (Some(r), true) = (run.as_mut(), self.delimiters.contains(&c)) {
                r.end = pos + c.len_utf8();
                r.trailing = Some(c);
            } else {
                self.finish(run.take(), &mut edits);
            }
        }
        self.finish(run, &mut edits);
        if edits.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(input.len());
        let mut copied = 0;
        for (start, end, trailing) in edits {
            out.push_str(&input[copied..start]);
            out.push_str(&self.replacement);
            if let Some(c) = trailing {
                out.push(c);
            }
            copied = end;
        }
        out.push_str(&input[copied..]);
        Some(out)
    }

    fn finish(&self, run: Option<Run>, edits: &mut Vec<(usize, usize, Option<char>)>) {
        let Some(run) = run else { return };
        if run.digits >= self.min_length && run.value.is_some_and(is_luhn) {
            edits.push((run.start, run.end, run.trailing));
        }
    }
}

struct LuhnStage(Arc<Luhn>);

impl StageFactory for LuhnStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(LuhnStage(self.0.clone()))
    }
}

impl Stage for LuhnStage {
    fn name(&self) -> &'static str {
        "luhn"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let luhn = &*self.0;
        match &luhn.source {
            None => {
                if let Some(redacted) = luhn.redact(&item.line) {
                    item.line = redacted;
                }
            }
            Some(source) => {
                if let Some(Value::String(value)) = item.extracted.get(source) {
                    item.line = luhn.redact(value).unwrap_or_else(|| value.clone());
                }
            }
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::testing::{entry, pipeline};

    fn luhn(delimiters: &str, min_length: usize) -> Luhn {
        Luhn {
            replacement: "**REDACTED**".into(),
            source: None,
            min_length,
            delimiters: delimiters.chars().collect(),
            skip: None,
        }
    }

    #[test]
    fn luhn_check_matches_alloys_table() {
        for (number, want) in [
            (4242_4242_4242_4242, true),
            (1234_5678_1234_5670, true),
            (499_2739_8112_1717, false),
            (1234567812345678, false),
            (378_282_246_310_005, true),
            (123, false),
            (0, true),
        ] {
            assert_eq!(is_luhn(number), want, "{number}");
        }
    }

    /// Alloy's TestReplaceLuhnValidNumbers, plus overflow, minimum length and trailing delimiters.
    #[test]
    fn replaces_luhn_numbers_like_alloy() {
        let cases: &[(&str, &str, &str)] = &[
            ("My credit card number is 3530111333300000.", "", "My credit card number is **REDACTED**."),
            ("Cards 4532015112830366 and 6011111111111117 are valid.", "", "Cards **REDACTED** and **REDACTED** are valid."),
            ("No valid numbers here.", "", "No valid numbers here."),
            ("Valid: 4556737586899855, invalid: 1234.", "", "Valid: **REDACTED**, invalid: 1234."),
            ("Edge cases: 0, 00, 000, 1.", "", "Edge cases: 0, 00, 000, 1."),
            ("Cards 4532-0151-1283-0366 and 6011 1111 1111 1117 are valid and 3530:1113:3330:0000 has unexpected delimiters.", " -",
             "Cards **REDACTED** and **REDACTED** are valid and 3530:1113:3330:0000 has unexpected delimiters."),
            ("Card 4532-0151-1283-0367 is not valid.", " -", "Card 4532-0151-1283-0367 is not valid."),
            ("Card 4532-0151-128 is too short.", "-", "Card 4532-0151-128 is too short."),
            ("Card 4532-0151-128 is too short.", " -", "Card 4532-0151-128 is too short."),
            // Without delimiters the groups are separate, too short, numbers.
            ("Card 4532-0151-1283-0366.", "", "Card 4532-0151-1283-0366."),
            // The delimiter after a redacted run is written back, only the last of several.
            ("4532-0151-1283-0366- x", " -", "**REDACTED** x"),
            ("4532015112830366  x", " ", "**REDACTED** x"),
            // A leading delimiter is not part of the run.
            ("- 4532015112830366", " -", "- **REDACTED**"),
            // Beyond i64 Go's Atoi fails: left alone, even when the digits pass the check.
            ("id 42424242424242424242", "", "id 42424242424242424242"),
            ("at end 4242424242424242", "", "at end **REDACTED**"),
            ("4242424242424242", "", "**REDACTED**"),
            ("prix 4242424242424242€", "", "prix **REDACTED**€"),
        ];
        for (input, delimiters, want) in cases {
            let got = luhn(delimiters, 13).redact(input);
            assert_eq!(
                got.as_deref().unwrap_or(input),
                *want,
                "{input:?} / {delimiters:?}"
            );
        }
        assert_eq!(luhn("", 20).redact("4242424242424242"), None);
        assert_eq!(
            luhn("", 3).redact("n=059").as_deref(),
            Some("n=**REDACTED**")
        );
    }

    #[test]
    fn stage_redacts_the_line_or_a_source() {
        let uuid = "a3f1b2e4-c5d6-7e8f-4242-424242424242";
        let cases: &[(&str, String, &str)] = &[
            ("- luhn: {}", "card=4242424242424242 ok".into(), "card=**REDACTED** ok"),
            ("- luhn: {replacement: '****'}", "card=4242424242424242".into(), "card=****"),
            ("- luhn: {replacement: ''}", "4242424242424242".into(), "**REDACTED**"),
            ("- luhn: {min_length: 0}", "4242424242424242".into(), "**REDACTED**"),
            ("- luhn: {min_length: 17}", "4242424242424242".into(), "4242424242424242"),
            ("- luhn: {delimiters: '-'}", "4032-0325-1354-8443".into(), "**REDACTED**"),
            // Alloy's docs example.
            ("- luhn: {replacement: '**DELETED**'}",
             "time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message=\"credit card approved 4032032513548443\" extra=\"user=example_name\"".into(),
             "time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message=\"credit card approved **DELETED**\" extra=\"user=example_name\""),
            // skip_regex keeps a UUID whose last group passes the check at min_length 12.
            ("- luhn: {min_length: 12}", format!("session={uuid}"), "session=a3f1b2e4-c5d6-7e8f-4242-**REDACTED**"),
            ("- luhn: {min_length: 12, skip_regex: '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'}",
             format!("card=4242424242424242 session={uuid}"), "card=**REDACTED** session=a3f1b2e4-c5d6-7e8f-4242-424242424242"),
            // `source`: the line becomes the (redacted) value, a missing or non-string source changes nothing.
            ("- luhn: {source: filename}", "line 4242424242424242".into(), "/var/log/pay.log"),
            ("- luhn: {source: missing}", "line 4242424242424242".into(), "line 4242424242424242"),
        ];
        for (yaml, line, want) in cases {
            let mut p = pipeline(yaml).unwrap();
            let mut entries = vec![entry(line, &[("filename", "/var/log/pay.log")])];
            p.run(&mut entries, &[]);
            assert_eq!(entries[0].line, *want, "{yaml}");
        }
    }

    #[test]
    fn rejects_bad_config() {
        for (yaml, want) in [
            ("- luhn: {source: ''}", "empty source"),
            (
                "- luhn: {skip_regex: '('}",
                "could not compile regular expression",
            ),
            ("- luhn: {min_length: abc}", "invalid type"),
        ] {
            let err = pipeline(yaml).err().unwrap();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
