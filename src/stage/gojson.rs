//! JSON text as Promtail writes it (the `json`/`pack` stages and the template engine's `toJson`). Promtail's stages marshal with json-iterator's default config, so:
//!
//! * strings escape `"` and `\`, write `\n`, `\r`, `\t` short, every other control character and the
//!   HTML characters `<`, `>`, `&` as `\u00XX` (lowercase hex), and U+2028/U+2029 as `\u2028`/`\u2029`;
//! * numbers are float64: `125`, `12.34`, and exponent form (`1e+21`, `1e-7`) outside [1e-6, 1e21);
//! * objects are compact. json-iterator leaves map keys in Go's random map order; logferry sorts them
//!   (as Go's encoding/json does), so the same input always gives the same text.

use serde_json::{Number, Value};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    write_str_escaping(out, s, true);
}

/// Append `s` as a JSON string literal; `html` says whether `<`, `>` and `&` are escaped (Go's
/// `SetEscapeHTML`; sprig's `toRawJson` turns it off).
pub fn write_str_escaping(out: &mut String, s: &str, html: bool) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x00..=0x1f => Some(""),
            b'<' | b'>' | b'&' if html => Some(""),
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                Some("")
            }
            _ => None,
        };
        let Some(escape) = escape else { continue };
        out.push_str(&s[plain_from..i]);
        if escape.is_empty() {
            if b == 0xe2 {
                out.push_str(if bytes[i + 2] == 0xa8 {
                    "\\u2028"
                } else {
                    "\\u2029"
                });
                plain_from = i + 3;
                continue;
            }
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        plain_from = i + 1;
    }
    if plain_from < s.len() {
        out.push_str(&s[plain_from..]);
    }
    out.push('"');
}

/// Append a number the way Go marshals a float64.
pub fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() < 1 << 53) {
        out.push_str(&i.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` / `1.5e-7`; Go writes `1e+21` / `1.5e-07`, then trims the exponent's
        // leading zero, giving `1.5e-7`.
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                out.push_str(mantissa);
                out.push_str("e+");
                out.push_str(exp);
            }
            _ => out.push_str(&text),
        }
    } else {
        out.push_str(&f.to_string());
    }
}

/// Append `value` as compact JSON.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// `value` as compact JSON text.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_escape_like_json_iterator() {
        let cases = [
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("l1\nl2\r\t", r#""l1\nl2\r\t""#),
            ("<a href=x>&", r#""\u003ca href=x\u003e\u0026""#),
            ("\u{1}\u{8}\u{c}", r#""\u0001\u0008\u000c""#),
            ("x\u{2028}y\u{2029}", r#""x\u2028y\u2029""#),
            ("héllo ✓", "\"héllo ✓\""),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            write_str(&mut out, input);
            assert_eq!(out, want, "input {input:?}");
        }
    }

    #[test]
    fn values_marshal_like_go() {
        let cases = [
            (json!(["parser", "type"]), r#"["parser","type"]"#),
            (
                json!({"b": 1, "a": {"c": null}}),
                r#"{"a":{"c":null},"b":1}"#,
            ),
            (json!(12.34), "12.34"),
            (json!(125.0), "125"),
            (json!(1e21), "1e+21"),
            (json!(1.5e-7), "1.5e-7"),
            (json!(0.000001), "0.000001"),
            (json!(true), "true"),
        ];
        for (value, want) in cases {
            assert_eq!(to_string(&value), want, "value {value}");
        }
    }
}
