//! The coercions of mapstructure's `WeakDecode`, which Promtail uses for the `cri`, `multiline` and
//! `pack` bodies: a number may be written as a string (`max_lines: "64"`), a boolean as a number or a
//! string (`ingest_timestamp: "false"`, `1`), a string as a number, and a lone value where a list is
//! expected (`labels: pod`).
//!
//! Stages decode those fields as raw YAML values and convert them here with the shared weak types of
//! [`crate::stage::weak`], so an error names the field.

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::stage::weak::{WeakBool, WeakInt, WeakString};

/// Decode one field with the shared weak types ([`crate::stage::weak`]); null is the zero value, as
/// mapstructure leaves the field at its default.
fn weak<'a, T: Deserialize<'a> + Default>(field: &str, value: &'a Value) -> Result<T, String> {
    match value {
        Value::Null => Ok(T::default()),
        v => T::deserialize(v).map_err(|e| format!("`{field}`: {e}")),
    }
}

/// A YAML scalar as mapstructure's weak string: strings as is, numbers in decimal, booleans as `1`/`0`.
pub fn string(field: &str, value: &Value) -> Result<String, String> {
    weak::<WeakString>(field, value).map(|w| w.0)
}

/// A non-negative whole number; strings are parsed as Go's `ParseInt(s, 0, 64)` does (`0x` prefixes too).
pub fn unsigned(field: &str, value: &Value) -> Result<u64, String> {
    let n = weak::<WeakInt>(field, value)?.0;
    u64::try_from(n).map_err(|_| format!("`{field}` must be a non-negative whole number, not {n}"))
}

/// A whole number that may be negative.
pub fn signed(field: &str, value: &Value) -> Result<i64, String> {
    weak::<WeakInt>(field, value).map(|w| w.0)
}

/// A boolean; strings as Go's `strconv.ParseBool` reads them, numbers true when non-zero.
pub fn boolean(field: &str, value: &Value) -> Result<bool, String> {
    weak::<WeakBool>(field, value).map(|w| w.0)
}

/// A list of strings; a lone scalar is a list of one.
pub fn string_list(field: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Sequence(items) => items.iter().map(|v| string(field, v)).collect(),
        Value::Null => Ok(Vec::new()),
        scalar => Ok(vec![string(field, scalar)?]),
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
