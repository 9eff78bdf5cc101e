//! `logfmt`: decode the line (or `extracted[source]`) as logfmt and set the mapped keys in `extracted`
//! (Promtail's `logfmt.go` with go-logfmt v0.6's decoder, docs `stages/logfmt.md`, compat §5.1).
//!
//! * `mapping: {extracted key: logfmt key}`; an empty value means the same key. Only mapped keys are
//!   stored, and always as strings (Promtail's docs promise typed values; its code stores strings).
//!   A key without `=` (`flag`) or with an empty value (`k=`) stores `""`.
//! * When two mapping entries name the same logfmt key, Promtail keeps one at random; logferry keeps
//!   the one whose extracted key sorts last.
//! * Every line of a multi-line input is a record. A syntax error (a quote inside a key or an unquoted
//!   value, an unterminated or badly escaped quoted value, a key starting with `=`) stops decoding;
//!   keys stored before it are kept, as in Promtail. So does a record of 64 KiB or more, which Go's
//!   line scanner refuses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

use super::{invalid, set_string, source_text};
use crate::stage::{decode, Extracted, Item, Stage, StageFactory};

/// Go's `bufio.Scanner` limit: a record of this many bytes or more is an error.
const MAX_RECORD: usize = 64 * 1024;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    mapping: BTreeMap<String, Option<String>>,
    source: Option<String>,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("logfmt", body).map_err(invalid)?;
    if cfg.mapping.is_empty() {
        return Err(invalid("logfmt mapping is required (`mapping` is empty)"));
    }
    if cfg.source.as_deref() == Some("") {
        return Err(invalid("empty source"));
    }
    // logfmt key -> extracted key.
    let mut inverse = HashMap::new();
    for (key, logfmt_key) in cfg.mapping {
        let logfmt_key = logfmt_key
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| key.clone());
        inverse.insert(logfmt_key, key);
    }
    Ok(Arc::new(LogfmtFactory {
        inverse: Arc::new(inverse),
        source: cfg.source,
    }))
}

struct LogfmtFactory {
    inverse: Arc<HashMap<String, String>>,
    source: Option<String>,
}

impl StageFactory for LogfmtFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(LogfmtStage {
            inverse: self.inverse.clone(),
            source: self.source.clone(),
        })
    }
}

struct LogfmtStage {
    inverse: Arc<HashMap<String, String>>,
    source: Option<String>,
}

impl Stage for LogfmtStage {
    fn name(&self) -> &'static str {
        "logfmt"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let result = match &self.source {
            None => extract(&self.inverse, &item.line, &mut item.extracted),
            Some(source) => match source_text(&item.extracted, source) {
                Some(text) => {
                    let text = text.into_owned();
                    extract(&self.inverse, &text, &mut item.extracted)
                }
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::error!(stage = "logfmt", error = %e, "failed to decode logfmt");
        }
        out.push(item);
    }
}

/// Decode `input` and store the mapped keys; stops at the first syntax error.
fn extract(
    inverse: &HashMap<String, String>,
    input: &str,
    extracted: &mut Extracted,
) -> Result<(), String> {
    for (number, record) in records(input).enumerate() {
        if record.len() >= MAX_RECORD {
            return Err("bufio.Scanner: token too long".to_owned());
        }
        let mut decoder = Decoder {
            line: record,
            pos: 0,
        };
        while let Some((key, value)) = decoder.next_pair().map_err(|(pos, msg)| {
            format!(
                "logfmt syntax error at pos {} on line {}: {msg}",
                pos + 1,
                number + 1
            )
        })? {
            if let Some(target) = inverse.get(key) {
                set_string(extracted, target, &value);
            }
        }
    }
    Ok(())
}

/// Lines as Go's `bufio.ScanLines` gives them: split on `\n`, a trailing `\r` dropped, no empty last
/// record after a final newline.
fn records(input: &str) -> impl Iterator<Item = &str> {
    let trimmed = input.strip_suffix('\n').unwrap_or(input);
    let empty = input.is_empty();
    trimmed
        .split('\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// go-logfmt's key/value scanner over one record.
struct Decoder<'a> {
    line: &'a str,
    pos: usize,
}

type SyntaxError = (usize, String);

impl<'a> Decoder<'a> {
    /// The next key and value; `Ok(None)` at the end of the record.
    fn next_pair(&mut self) -> Result<Option<(&'a str, std::borrow::Cow<'a, str>)>, SyntaxError> {
        let b = self.line.as_bytes();
        // Skip "garbage": spaces and control characters.
        while self.pos < b.len() && b[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return Ok(None);
        }
        let start = self.pos;
        while self.pos < b.len() && b[self.pos] != b'=' && b[self.pos] > b' ' {
            if b[self.pos] == b'"' {
                return Err(self.unexpected(b'"'));
            }
            self.pos += 1;
        }
        let key = &self.line[start..self.pos];
        if key.contains('\u{FFFD}') {
            return Err((self.pos, "invalid key".to_owned()));
        }
        if b.get(self.pos) != Some(&b'=') {
            // A bare key: end of the record, or a space.
            return Ok(Some((key, "".into())));
        }
        if key.is_empty() {
            return Err(self.unexpected(b'='));
        }
        self.pos += 1;
        match b.get(self.pos) {
            None => Ok(Some((key, "".into()))),
            Some(&c) if c <= b' ' => Ok(Some((key, "".into()))),
            Some(b'"') => self.quoted(key),
            Some(_) => {
                let start = self.pos;
                while self.pos < b.len() {
                    match b[self.pos] {
                        c @ (b'=' | b'"') => return Err(self.unexpected(c)),
                        c if c <= b' ' => break,
                        _ => self.pos += 1,
                    }
                }
                Ok(Some((key, self.line[start..self.pos].into())))
            }
        }
    }

    /// A quoted value starting at `self.pos`.
    fn quoted(
        &mut self,
        key: &'a str,
    ) -> Result<Option<(&'a str, std::borrow::Cow<'a, str>)>, SyntaxError> {
        let b = self.line.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        let mut has_escape = false;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    has_escape = true;
                    i += 2;
                }
                b'"' => {
                    self.pos = i + 1;
                    let quoted = &self.line[start..=i];
                    if !has_escape {
                        return Ok(Some((key, quoted[1..quoted.len() - 1].into())));
                    }
                    return match unquote(quoted) {
                        Some(v) => Ok(Some((key, v.into()))),
                        None => Err((self.pos, "invalid quoted value".to_owned())),
                    };
                }
                _ => i += 1,
            }
        }
        self.pos = b.len();
        Err((self.pos, "unterminated quoted value".to_owned()))
    }

    fn unexpected(&self, c: u8) -> SyntaxError {
        (self.pos, format!("unexpected '{}'", c as char))
    }
}

/// Go's JSON string unquoting (encoding/json `unquoteBytes`): the escapes `\" \\ \/ \b \f \n \r \t
/// \uXXXX` (surrogate pairs joined, lone surrogates as U+FFFD); any other escape, a raw quote or a
/// control character is invalid.
fn unquote(quoted: &str) -> Option<String> {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '/' => out.push('/'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let first = hex4(&mut chars)?;
                    if (0xD800..0xDC00).contains(&first) {
                        let mut lookahead = chars.clone();
                        if lookahead.next() == Some('\\') && lookahead.next() == Some('u') {
                            if let Some(second) = hex4(&mut lookahead) {
                                if (0xDC00..0xE000).contains(&second) {
                                    let code =
                                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                                    chars = lookahead;
                                    continue;
                                }
                            }
                        }
                        out.push('\u{FFFD}');
                    } else {
                        out.push(char::from_u32(first).unwrap_or('\u{FFFD}'));
                    }
                }
                _ => return None,
            },
            '"' => return None,
            c if (c as u32) < 0x20 => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}
