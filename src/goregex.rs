//! Go RE2 syntax on top of the regex crate. The translation rewrites only what the two read differently;
//! everything else is passed through for the regex crate to accept or reject. It accepts a few patterns Go
//! rejects (such as `a**`), never the reverse for the constructs handled here.

use regex::{Regex, RegexBuilder};

/// Characters the regex crate may read as syntax; a backslash before any of them is a literal.
const META: &str = r"\.+*?()|[]{}^$#&-~";

/// Compile `pattern` the way Prometheus does: `^(?s:pattern)$` in Go's dialect.
pub fn compile_anchored(pattern: &str) -> Result<Regex, regex::Error> {
    let mut wrapped = String::with_capacity(pattern.len() + 8);
    wrapped.push_str("^(?s:");
    translate(pattern, &mut wrapped);
    wrapped.push_str(")$");
    // Go reads `\012` as octal; the regex crate only with this switch.
    RegexBuilder::new(&wrapped).octal(true).build()
}

/// Compile `pattern` unanchored, as Go's `regexp.Compile` reads it (the stages' expressions).
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    let mut translated = String::with_capacity(pattern.len() + 4);
    translate(pattern, &mut translated);
    RegexBuilder::new(&translated).octal(true).build()
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
}
