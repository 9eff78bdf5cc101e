//! Promtail's `getString`: how every stage turns an extracted value into a string.
//!
//! Extracted values keep their JSON types. A string is used as it is, a number is written as Go's
//! `strconv.FormatFloat(f, 'f', -1, 64)` writes a float64 (the shortest decimal that reads back to the
//! same value, never an exponent: `125`, `12.34`, `1000000000000000000000`), a bool as `true`/`false`.
//! `null`, arrays and objects cannot be converted; stages skip them.

use std::borrow::Cow;

use serde_json::Value;

/// The string form of an extracted value, or `None` for null, arrays and objects.
pub fn value_to_string(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Number(n) => Some(Cow::Owned(number_to_string(n))),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A JSON number as Promtail prints it: Go decodes JSON numbers to float64, so integers beyond 2^53
/// lose precision exactly as they do there.
pub fn number_to_string(n: &serde_json::Number) -> String {
    match n.as_i64() {
        // Exact in a float64: print as an integer without the float round trip.
        Some(i) if i.unsigned_abs() <= 1 << 53 => i.to_string(),
        _ => float_to_string(n.as_f64().unwrap_or(0.0)),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`. Rust's `Display` for f64 prints the same shortest
/// round-trip digits without an exponent; only the infinities are spelled differently.
pub fn float_to_string(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    f.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_like_promtail_get_string() {
        let cases: &[(Value, Option<&str>)] = &[
            (json!("text"), Some("text")),
            (json!(125), Some("125")),
            (json!(125.0), Some("125")),
            (json!(12.34), Some("12.34")),
            (json!(-0.5), Some("-0.5")),
            (json!(1e21), Some("1000000000000000000000")),
            (json!(1e-7), Some("0.0000001")),
            (json!(0.1), Some("0.1")),
            // Beyond 2^53 a float64 cannot hold every integer: Go prints the rounded value.
            (json!(12345678901234567890u64), Some("12345678901234567000")),
            (json!(9007199254740993i64), Some("9007199254740992")),
            (json!(true), Some("true")),
            (json!(false), Some("false")),
            (json!(null), None),
            (json!([1, 2]), None),
            (json!({"a": 1}), None),
        ];
        for (value, want) in cases {
            assert_eq!(value_to_string(value).as_deref(), *want, "{value}");
        }
        assert_eq!(float_to_string(f64::INFINITY), "+Inf");
    }

    #[test]
    fn get_string_formats_like_promtail() {
        let cases = [
            (json!("text"), Some("text")),
            (json!(125), Some("125")),
            (json!(125.0), Some("125")),
            (json!(12.34), Some("12.34")),
            (json!(-0.5), Some("-0.5")),
            (json!(1e21), Some("1000000000000000000000")),
            (json!(0.000001), Some("0.000001")),
            (json!(true), Some("true")),
            (json!(false), Some("false")),
            (json!(null), None),
            (json!([1]), None),
            (json!({"a": 1}), None),
        ];
        for (value, want) in cases {
            assert_eq!(value_to_string(&value).as_deref(), want, "{value}");
        }
        assert_eq!(float_to_string(f64::INFINITY), "+Inf");
        assert_eq!(float_to_string(f64::NAN), "NaN");
    }
}
