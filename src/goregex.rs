//! Go RE2 syntax on top of the regex crate. The translation rewrites only what the two read differently;
//! everything else is passed through for the regex crate to accept or reject. It accepts a few patterns Go
//! rejects (such as `a**`), never the reverse for the constructs handled here.
//!
//! Patterns come from the config (relabel `regex`, stage `expression`s, `__path__` globs) and, in
//! templates, from log lines, so every regex the agent compiles goes through a builder with explicit
//! limits ([`SIZE_LIMIT`], [`MAX_PATTERN_LEN`]): a huge pattern is an error with a short message, not a
//! panic, seconds of compiling per reload, or a matcher so big that every line costs milliseconds.

use regex::{Regex, RegexBuilder};

/// The most heap a compiled regex may take (its NFA, which the other engines are built from): the regex
/// crate's default, written out because globset's is the same and every builder here must set one. A
/// pattern past it fails in well under a second (an alternation of 2 000 host names stays under it).
pub const SIZE_LIMIT: usize = 10 << 20;

/// The longest pattern compiled, in bytes; a longer one is refused before it is parsed. Nothing this
/// long fits in [`SIZE_LIMIT`] (a literal costs more than 20 bytes of NFA per byte), but parsing it
/// before finding that out takes about a second per compile.
pub const MAX_PATTERN_LEN: usize = 256 << 10;

/// `pattern` as error messages quote it: in full when short, else its start and its length, so that a
/// message about a pattern of 500 000 characters does not repeat it.
pub fn shown(pattern: &str) -> String {
    const SHOWN: usize = 80;
    if pattern.len() <= 2 * SHOWN {
        return format!("{pattern:?}");
    }
    let mut end = SHOWN;
    while !pattern.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &pattern[..end], pattern.len())
}

/// Compiles an already translated pattern with the limits above (and Go's octal escapes).
fn build(translated: &str) -> Result<Regex, regex::Error> {
    if translated.len() > MAX_PATTERN_LEN {
        return Err(regex::Error::Syntax(format!(
            "the pattern is {} bytes long; at most {MAX_PATTERN_LEN} are allowed",
            translated.len()
        )));
    }
    // Go reads `\012` as octal; the regex crate only with this switch.
    RegexBuilder::new(translated)
        .octal(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(text) if text.len() > 1000 => {
                // The regex crate's message repeats the pattern with a caret under the error.
                let last = text.lines().last().unwrap_or_default().to_owned();
                regex::Error::Syntax(last)
            }
            other => other,
        })
}

/// Characters the regex crate may read as syntax; a backslash before any of them is a literal.
const META: &str = r"\.+*?()|[]{}^$#&-~";

/// Compile `pattern` the way Prometheus does: `^(?s:pattern)$` in Go's dialect.
pub fn compile_anchored(pattern: &str) -> Result<Regex, regex::Error> {
    let mut wrapped = String::with_capacity(pattern.len() + 8);
    wrapped.push_str("^(?s:");
    translate(pattern, &mut wrapped);
    wrapped.push_str(")$");
    build(&wrapped)
}

/// Compile `pattern` unanchored, as Go's `regexp.Compile` reads it (the stages' expressions).
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let mut translated = String::with_capacity(pattern.len() + 4);
    translate(pattern, &mut translated);
    build(&translated)
}

/// Append the regex crate spelling of the Go pattern `go` to `out`.
pub fn translate(go: &str, out: &mut String) {
    let mut rest = go;
    while let Some(c) = rest.chars().next() {
        rest = match c {
            '\\' => escape(rest, out, false),
            '[' => class(rest, out),
            // Go reads a `{` that does not start a well-formed repeat as a literal.
            '{' => match repeat_len(rest) {
                Some(len) => {
                    out.push_str(&rest[..len]);
                    &rest[len..]
                }
                None => {
                    out.push_str(r"\{");
                    &rest[1..]
                }
            },
            _ => {
                out.push(c);
                &rest[c.len_utf8()..]
            }
        };
    }
}

fn literal(c: char, out: &mut String) {
    if META.contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// Translate the escape at the start of `rest` (which begins with `\`); return what follows it.
fn escape<'a>(rest: &'a str, out: &mut String, in_class: bool) -> &'a str {
    let body = &rest[1..];
    let Some(c) = body.chars().next() else {
        out.push('\\');
        return body;
    };
    let after = &body[c.len_utf8()..];
    match c {
        // Go's Perl classes and word boundaries are ASCII-only.
        'd' => out.push_str("[0-9]"),
        'D' => out.push_str("[^0-9]"),
        'w' => out.push_str("[0-9A-Za-z_]"),
        'W' => out.push_str("[^0-9A-Za-z_]"),
        's' => out.push_str(r"[\t\n\f\r ]"),
        'S' => out.push_str(r"[^\t\n\f\r ]"),
        'b' if !in_class => out.push_str(r"(?-u:\b)"),
        'B' if !in_class => out.push_str(r"(?-u:\B)"),
        'Q' if !in_class => {
            let (quoted, rest) = after.split_once(r"\E").unwrap_or((after, ""));
            quoted.chars().for_each(|q| literal(q, out));
            return rest;
        }
        'p' | 'P' => return unicode_class(c == 'P', after, out),
        'x' => {
            let len = if after.starts_with('{') {
                after.find('}').map_or(after.len(), |end| end + 1)
            } else {
                after.char_indices().nth(2).map_or(after.len(), |(i, _)| i)
            };
            out.push_str(r"\x");
            out.push_str(&after[..len]);
            return &after[len..];
        }
        '0'..='7' => {
            let len = after
                .bytes()
                .take(2)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            out.push('\\');
            out.push(c);
            out.push_str(&after[..len]);
            return &after[len..];
        }
        // Any escaped ASCII punctuation is that character in Go (`\<` is '<', not a word start).
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => literal(c, out),
        _ => {
            out.push('\\');
            out.push(c);
        }
    }
    after
}

/// `\p{Name}`, `\pL`, and Go's `\p{^Name}` negation (spelled `\P{Name}` for the regex crate).
fn unicode_class<'a>(negated: bool, after: &'a str, out: &mut String) -> &'a str {
    let (name, rest) = match after.strip_prefix('{') {
        Some(braced) => match braced.split_once('}') {
            Some(split) => split,
            None => {
                out.push_str(if negated { r"\P" } else { r"\p" });
                return after;
            }
        },
        None => after.split_at(after.chars().next().map_or(0, char::len_utf8)),
    };
    let (negated, name) = match name.strip_prefix('^') {
        Some(name) => (!negated, name),
        None => (negated, name),
    };
    out.push_str(if negated { r"\P{" } else { r"\p{" });
    out.push_str(name);
    out.push('}');
    rest
}

/// A bracketed class, read as Go's `parseClass` does: `]` first is literal, `[` only opens a
/// `[:name:]` class, and `-` makes a range only between two single characters.
fn class<'a>(rest: &'a str, out: &mut String) -> &'a str {
    let mut t = &rest[1..];
    out.push('[');
    if let Some(after) = t.strip_prefix('^') {
        out.push('^');
        t = after;
    }
    let mut first = true;
    while let Some(c) = t.chars().next() {
        if c == ']' && !first {
            out.push(']');
            return &t[1..];
        }
        first = false;
        if let Some(end) = t.strip_prefix("[:").and_then(|named| named.find(":]")) {
            out.push_str(&t[..end + 4]);
            t = &t[end + 4..];
            continue;
        }
        if c == '\\' && t[1..].starts_with(['d', 'D', 'w', 'W', 's', 'S', 'p', 'P']) {
            t = escape(t, out, true);
            continue;
        }
        t = class_char(t, out);
        if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
            out.push('-');
            t = class_char(&t[1..], out);
        }
    }
    // Unclosed: leave it unclosed for the regex crate to report.
    t
}

fn class_char<'a>(t: &'a str, out: &mut String) -> &'a str {
    if t.starts_with('\\') {
        return escape(t, out, true);
    }
    let c = t
        .chars()
        .next()
        .expect("the caller checked that t is not empty");
    literal(c, out);
    &t[c.len_utf8()..]
}

/// Length of a Go repeat `{n}`, `{n,}` or `{n,m}` at the start of `t` (numbers without leading zeros).
fn repeat_len(t: &str) -> Option<usize> {
    let bytes = t.as_bytes();
    let number_end = |from: usize| {
        let digits = bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (digits > 0 && !(digits > 1 && bytes[from] == b'0')).then_some(from + digits)
    };
    let mut end = number_end(1)?;
    if bytes.get(end) == Some(&b',') {
        end += 1;
        if bytes.get(end) != Some(&b'}') {
            end = number_end(end)?;
        }
    }
    (bytes.get(end) == Some(&b'}')).then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_regexes_are_unanchored() {
        let re = compile(r"err\d+").unwrap();
        assert!(re.is_match("an err42 here"));
        assert!(!re.is_match("error"));
        assert!(compile("(").is_err());
    }

    #[test]
    fn huge_patterns_are_short_errors() {
        let hosts: Vec<String> = (0..2000).map(|i| format!("host-{i}.example.com")).collect();
        assert!(compile_anchored(&hosts.join("|")).is_ok());
        let start = std::time::Instant::now();
        for pattern in [
            "a*".repeat(250_000),
            "(a".repeat(100_000),
            format!("[{}", "a".repeat(300_000)),
            r"\pL{1000}".to_owned(),
            "(.{100}){200}".to_owned(),
        ] {
            let err = compile_anchored(&pattern).unwrap_err().to_string();
            assert!(err.len() < 300, "{pattern:.20}: {err:.500}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(shown("ab"), "\"ab\"");
        let long = shown(&"x".repeat(1000));
        assert!(
            long.ends_with("... (1000 bytes)") && long.len() < 120,
            "{long}"
        );
    }
}
