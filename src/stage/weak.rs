//! Scalars decoded as mapstructure's `WeakDecode` decodes them, for every stage family: Promtail reads
//! the bodies of `drop`, `limit`, `sampling`, `multiline`, `pack` and `cri` this way, so `rate: "10"` is a number
//! and `value: 200` a string. Conversions, as mapstructure does them:
//!
//! * to a string: an integer in decimal, a float as Go's `FormatFloat(f, 'f', -1, 64)`, a bool as `1`/`0`;
//! * to an integer: a float truncated, a bool as 1/0, a string as Go's `ParseInt(s, 0, 64)` (`0x1f`,
//!   `0o17`, `017` octal, `0b1`), `""` as 0;
//! * to a float: an integer, a bool as 1/0, a string as Go's `ParseFloat`, `""` as 0;
//! * to a bool: a number as `!= 0`, a string as Go's `ParseBool` (`1`, `t`, `T`, `TRUE`, `true`, `True`
//!   and the false ones), `""` as false.
//!
//! A YAML null leaves the field unset, as mapstructure leaves it (wrap the type in `Option`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::stage::value::float_to_string as go_float_string;

/// A string field of a weakly decoded stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeakString(pub String);

/// A float field of a weakly decoded stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeakF64(pub f64);

/// An integer field of a weakly decoded stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeakInt(pub i64);

/// A bool field of a weakly decoded stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeakBool(pub bool);

/// Go's `strconv.ParseFloat(s, 64)`, for the forms logs and configs use (no hex floats).
pub fn parse_go_float(s: &str) -> Option<f64> {
    // Rust also reads "infinity" and "nan" in any case, as Go does; Go has no other spelling Rust lacks
    // here, but Rust takes none Go refuses either, once a stray '_' is ruled out.
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)` (also the template engine's integer literals): an optional sign, then a base prefix or a leading 0 for octal.
pub fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    // Go allows `_` between digits when the base is inferred, as here.
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Visits any YAML scalar and hands it on as one of these.
enum Scalar<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
}

/// Implements a weak type's visitor from one conversion function.
macro_rules! weak_visitor {
    ($ty:ident, $expect:literal, $convert:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl V {
                    fn go<E: de::Error>(s: Scalar<'_>) -> Result<$ty, E> {
                        let convert: fn(Scalar<'_>) -> Result<$ty, String> = $convert;
                        convert(s).map_err(E::custom)
                    }
                }
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        V::go(Scalar::Str(v))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        V::go(Scalar::Int(v.into()))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        V::go(Scalar::Int(v.into()))
                    }
                    fn visit_i128<E: de::Error>(self, v: i128) -> Result<$ty, E> {
                        V::go(Scalar::Int(v))
                    }
                    fn visit_u128<E: de::Error>(self, v: u128) -> Result<$ty, E> {
                        let v = i128::try_from(v)
                            .map_err(|_| E::custom(format!("{v} is out of range")))?;
                        V::go(Scalar::Int(v))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$ty, E> {
                        V::go(Scalar::Float(v))
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<$ty, E> {
                        V::go(Scalar::Bool(v))
                    }
                }
                deserializer.deserialize_any(V)
            }
        }
    };
}

weak_visitor!(WeakString, "a string, number or bool", |s| Ok(WeakString(
    match s {
        Scalar::Str(v) => v.to_owned(),
        Scalar::Int(v) => v.to_string(),
        Scalar::Float(v) => go_float_string(v),
        Scalar::Bool(v) => if v { "1" } else { "0" }.to_owned(),
    }
)));

weak_visitor!(WeakF64, "a number", |s| match s {
    Scalar::Str("") => Ok(WeakF64(0.0)),
    Scalar::Str(v) => parse_go_float(v)
        .map(WeakF64)
        .ok_or_else(|| format!("cannot parse {v:?} as a float")),
    Scalar::Int(v) => Ok(WeakF64(v as f64)),
    Scalar::Float(v) => Ok(WeakF64(v)),
    Scalar::Bool(v) => Ok(WeakF64(if v { 1.0 } else { 0.0 })),
});

weak_visitor!(WeakInt, "an integer", |s| match s {
    Scalar::Str("") => Ok(WeakInt(0)),
    Scalar::Str(v) => parse_go_int(v)
        .map(WeakInt)
        .ok_or_else(|| format!("cannot parse {v:?} as an integer")),
    Scalar::Int(v) => i64::try_from(v)
        .map(WeakInt)
        .map_err(|_| format!("{v} is out of range")),
    // Go's int64(f): truncation toward zero (saturating here, where Go's result is undefined).
    Scalar::Float(v) => Ok(WeakInt(v as i64)),
    Scalar::Bool(v) => Ok(WeakInt(v.into())),
});

weak_visitor!(WeakBool, "a bool", |s| match s {
    Scalar::Str("") => Ok(WeakBool(false)),
    Scalar::Str(v) => parse_go_bool(v)
        .map(WeakBool)
        .ok_or_else(|| format!("cannot parse {v:?} as a bool")),
    Scalar::Int(v) => Ok(WeakBool(v != 0)),
    Scalar::Float(v) => Ok(WeakBool(v != 0.0)),
    Scalar::Bool(v) => Ok(WeakBool(v)),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        s: Option<WeakString>,
        f: Option<WeakF64>,
        i: Option<WeakInt>,
        b: Option<WeakBool>,
    }

    fn body(yaml: &str) -> Result<Body, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn converts_like_mapstructure_weak_decode() {
        let cases: &[(&str, &str, f64, i64, bool)] = &[
            ("{s: abc, f: 1.5, i: 10, b: true}", "abc", 1.5, 10, true),
            (
                "{s: 200, f: '2.5', i: '0x1f', b: 'T'}",
                "200",
                2.5,
                31,
                true,
            ),
            ("{s: 1.50, f: 3, i: 7.9, b: 1}", "1.5", 3.0, 7, true),
            ("{s: true, f: true, i: true, b: 0.0}", "1", 1.0, 1, false),
            ("{s: false, f: '', i: '', b: ''}", "0", 0.0, 0, false),
            (
                "{s: '', f: '1e3', i: '017', b: 'False'}",
                "",
                1000.0,
                15,
                false,
            ),
            (
                "{s: -3, f: '-0.25', i: '-0b101', b: -2}",
                "-3",
                -0.25,
                -5,
                true,
            ),
        ];
        for (yaml, s, f, i, b) in cases {
            let got = body(yaml).unwrap();
            assert_eq!(got.s.unwrap().0, *s, "{yaml}");
            assert_eq!(got.f.unwrap().0, *f, "{yaml}");
            assert_eq!(got.i.unwrap().0, *i, "{yaml}");
            assert_eq!(got.b.unwrap().0, *b, "{yaml}");
        }
        let unset = body("{s: null}").unwrap();
        assert!(unset.s.is_none() && unset.f.is_none());
    }

    #[test]
    fn rejects_what_go_cannot_parse() {
        for (yaml, want) in [
            ("{f: abc}", "cannot parse \"abc\" as a float"),
            ("{i: 1.5x}", "cannot parse \"1.5x\" as an integer"),
            ("{i: '1.5'}", "cannot parse \"1.5\" as an integer"),
            ("{b: yes}", "cannot parse \"yes\" as a bool"),
            ("{s: [a]}", "expected a string, number or bool"),
            ("{i: 99999999999999999999}", "out of range"),
        ] {
            let err = body(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn go_number_parsers() {
        assert_eq!(parse_go_int("+42"), Some(42));
        assert_eq!(parse_go_int("1_000"), Some(1000));
        assert_eq!(parse_go_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_go_int("9223372036854775808"), None);
        assert_eq!(parse_go_int("08"), None);
        assert_eq!(parse_go_int("--1"), None);
        assert_eq!(parse_go_float("0.804"), Some(0.804));
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("1_0"), None);
        assert_eq!(parse_go_float("10ms"), None);
        assert_eq!(parse_go_bool("TRUE"), Some(true));
        assert_eq!(parse_go_bool("tRUE"), None);
    }
}
