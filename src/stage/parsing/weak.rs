//! The coercions of mapstructure's `WeakDecode`, which Promtail uses for the `cri`, `multiline` and
//! `pack` bodies: a number may be written as a string (`max_lines: "64"`), a boolean as a number or a
//! string (`ingest_timestamp: "false"`, `1`), a string as a number, and a lone value where a list is
//! expected (`labels: pod`).
//!
//! Stages decode those fields as raw YAML values and convert them here, so an error names the field.

use serde_yaml_ng::Value;

/// A YAML scalar as mapstructure's weak string: strings as is, numbers in decimal, booleans as `1`/`0`.
pub fn string(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_owned()),
        Value::Null => Ok(String::new()),
        other => Err(format!("`{field}` must be a string, not {}", kind(other))),
    }
}

/// A non-negative whole number; strings are parsed as Go's `ParseUint(s, 0, 64)` does (`0x` prefixes too).
pub fn unsigned(field: &str, value: &Value) -> Result<u64, String> {
    let bad = || format!("`{field}` must be a non-negative whole number, not {value:?}");
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Ok(u),
            (None, Some(f)) if f >= 0.0 && f.is_finite() => Ok(f as u64),
            _ => Err(bad()),
        },
        Value::Bool(b) => Ok(u64::from(*b)),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => parse_go_uint(s).ok_or_else(bad),
        Value::Null => Ok(0),
        _ => Err(bad()),
    }
}

/// A whole number that may be negative.
pub fn signed(field: &str, value: &Value) -> Result<i64, String> {
    let bad = || format!("`{field}` must be a whole number, not {value:?}");
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.is_finite() => Ok(f as i64),
            _ => Err(bad()),
        },
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) if s.is_empty() => Ok(0),
        Value::String(s) => {
            let (neg, digits) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let magnitude = parse_go_uint(digits).ok_or_else(bad)?;
            let magnitude = i64::try_from(magnitude).map_err(|_| bad())?;
            Ok(if neg { -magnitude } else { magnitude })
        }
        Value::Null => Ok(0),
        _ => Err(bad()),
    }
}

/// A boolean; strings as Go's `strconv.ParseBool` reads them, numbers true when non-zero.
pub fn boolean(field: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.as_str() {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(format!("`{field}` must be true or false, not {s:?}")),
        },
        Value::Null => Ok(false),
        other => Err(format!(
            "`{field}` must be true or false, not {}",
            kind(other)
        )),
    }
}

/// A list of strings; a lone scalar is a list of one.
pub fn string_list(field: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Sequence(items) => items.iter().map(|v| string(field, v)).collect(),
        Value::Null => Ok(Vec::new()),
        scalar => Ok(vec![string(field, scalar)?]),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, or `0x`, `0o`, `0b` and leading-`0` octal, with `_`
/// allowed between digits only when a prefix is given.
fn parse_go_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_owned())
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_owned())
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_owned())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned())
    } else {
        return lower.parse().ok().filter(|_| !lower.starts_with('+'));
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn coercions_follow_mapstructure_weak_decode() {
        assert_eq!(unsigned("n", &yaml("64")), Ok(64));
        assert_eq!(unsigned("n", &yaml("'64'")), Ok(64));
        assert_eq!(unsigned("n", &yaml("'0x10'")), Ok(16));
        assert_eq!(unsigned("n", &yaml("true")), Ok(1));
        assert!(unsigned("n", &yaml("-1")).is_err());
        assert!(unsigned("n", &yaml("abc")).is_err());
        assert_eq!(signed("n", &yaml("'-3'")), Ok(-3));
        assert_eq!(boolean("b", &yaml("'false'")), Ok(false));
        assert_eq!(boolean("b", &yaml("'T'")), Ok(true));
        assert_eq!(boolean("b", &yaml("1")), Ok(true));
        assert!(boolean("b", &yaml("maybe")).is_err());
        assert_eq!(string("s", &yaml("3")), Ok("3".to_owned()));
        assert_eq!(string_list("l", &yaml("pod")), Ok(vec!["pod".to_owned()]));
        assert_eq!(
            string_list("l", &yaml("[a, b]")),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
    }
}
