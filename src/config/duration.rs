//! The two kinds of duration Promtail configs use, each parsed exactly as Promtail parses it.
//!
//! * [`GoDuration`]: Go's `time.ParseDuration` (`1h30m`, `1.5s`, `500ms`, `250us`). A bare YAML integer is
//!   read as **nanoseconds**, as gopkg.in/yaml.v2 does for `time.Duration` fields (`batchwait: 5` is 5ns).
//! * [`ModelDuration`]: Prometheus `model.Duration` (`refresh_interval`), which also has `d`, `w` and `y`
//!   but no fractions, and wants its units largest first.
//!
//! Errors are raised inside the serde visitor so serde_yaml_ng stamps them with the value's own line:column.
//! Both serialize back to the text form Promtail prints (`-print-config-stderr`). Sizes are in
//! [`super::byte_size`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// The largest duration Go can hold (`math.MaxInt64` nanoseconds).
const GO_MAX_NANOS: u64 = i64::MAX as u64;

const GO_DURATION_HINT: &str =
    "expected a number followed by ns, us, µs, ms, s, m or h (e.g. 1s, 500ms)";
const MODEL_DURATION_HINT: &str =
    "expected a whole number followed by ms, s, m, h, d, w or y, largest unit first (e.g. 60s, 5m, 1h30m, 7d)";

/// A Go `time.Duration` as written in Promtail YAML (`batchwait: 1s`, `timeout: 1m30s`, `sync_period: 10s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        GoDuration(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        GoDuration(Duration::from_millis(millis))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses Go's `time.ParseDuration` syntax: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a lone `0`.
    /// Negative durations parse in Go but mean nothing in a config, so they are refused here.
    pub fn parse(text: &str) -> Result<Self, String> {
        match parse_go_nanos(text) {
            Ok(nanos) if nanos < 0 => {
                Err(format!("negative duration {text:?} is not allowed here"))
            }
            Ok(nanos) => Ok(GoDuration(Duration::from_nanos(nanos as u64))),
            Err(GoParseError::OutOfRange) => Err(format!(
                "duration {text:?} is out of range (at most 2562047h47m16.854775807s)"
            )),
            Err(GoParseError::Invalid) => {
                let days = text.trim_end().ends_with('d') || text.trim_end().ends_with('w');
                let extra = if days {
                    "; days and weeks are not supported here, write hours (24h)"
                } else {
                    ""
                };
                Err(format!(
                    "invalid duration {text:?}: {GO_DURATION_HINT}{extra}"
                ))
            }
        }
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Duration {
        d.0
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `1h0m0s`, `5m0s`, `1.5s`, `500ms`, `1µs`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000 {
            return write!(f, "{nanos}ns");
        }
        if nanos < 1_000_000 {
            return write!(f, "{}µs", fraction(nanos, 3));
        }
        if nanos < u128::from(NANOS_PER_SEC) {
            return write!(f, "{}ms", fraction(nanos, 6));
        }
        let secs = nanos / u128::from(NANOS_PER_SEC);
        let sub = nanos % u128::from(NANOS_PER_SEC);
        let seconds = fraction((secs % 60) * u128::from(NANOS_PER_SEC) + sub, 9);
        let (minutes, hours) = ((secs / 60) % 60, secs / 3600);
        match (hours, secs / 60) {
            (0, 0) => write!(f, "{seconds}s"),
            (0, _) => write!(f, "{minutes}m{seconds}s"),
            _ => write!(f, "{hours}h{minutes}m{seconds}s"),
        }
    }
}

/// `value / 10^prec` with the fraction's trailing zeros (and a bare point) dropped, like Go's `fmtFrac`.
fn fraction(value: u128, prec: u32) -> String {
    let scale = 10u128.pow(prec);
    let (int, frac) = (value / scale, value % scale);
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

enum GoParseError {
    Invalid,
    OutOfRange,
}

/// A line-by-line port of Go's `time.ParseDuration`, returning signed nanoseconds.
fn parse_go_nanos(orig: &str) -> Result<i64, GoParseError> {
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(GoParseError::Invalid);
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(GoParseError::Invalid);
        }
        let int_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &s[..int_len] {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|&v| v <= GO_MAX_NANOS + 1)
                .ok_or(GoParseError::Invalid)?;
        }
        s = &s[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            frac_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..frac_len] {
                // Go keeps consuming digits after the accumulator would overflow, but ignores them.
                if overflow || frac > (GO_MAX_NANOS + 1) / 10 {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + u64::from(c - b'0');
                scale *= 10.0;
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(GoParseError::Invalid);
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(GoParseError::Invalid); // "missing unit"
        }
        let unit = match &s[..unit_len] {
            b"ns" => 1,
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000, // us, µs (micro sign), μs (Greek mu)
            b"ms" => 1_000_000,
            b"s" => NANOS_PER_SEC,
            b"m" => 60 * NANOS_PER_SEC,
            b"h" => 3_600 * NANOS_PER_SEC,
            _ => return Err(GoParseError::Invalid), // "unknown unit"
        };
        s = &s[unit_len..];
        if whole > (GO_MAX_NANOS + 1) / unit {
            return Err(GoParseError::OutOfRange);
        }
        let mut value = whole * unit;
        if frac > 0 {
            value += (frac as f64 * (unit as f64 / scale)) as u64;
            if value > GO_MAX_NANOS + 1 {
                return Err(GoParseError::OutOfRange);
            }
        }
        total = total
            .checked_add(value)
            .filter(|&t| t <= GO_MAX_NANOS + 1)
            .ok_or(GoParseError::OutOfRange)?;
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > GO_MAX_NANOS {
        return Err(GoParseError::OutOfRange);
    }
    Ok(total as i64)
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GoDurationVisitor;
        impl Visitor<'_> for GoDurationVisitor {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 1s or 500ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                GoDuration::parse(v).map_err(E::custom)
            }
            /// yaml.v2 stores a bare integer straight into the int64 behind `time.Duration`: nanoseconds.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                if v > GO_MAX_NANOS {
                    return Err(E::custom(format!(
                        "duration {v} (nanoseconds) is out of range"
                    )));
                }
                if v != 0 {
                    tracing::warn!(
                        "a duration written as the bare integer {v} means {v} nanoseconds (Promtail reads it \
                         the same way); write it with a unit, e.g. {v}s, if that is not what you meant"
                    );
                }
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "negative duration {v} is not allowed here"
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v}: {GO_DURATION_HINT}; a bare number means nanoseconds"
                )))
            }
        }
        deserializer.deserialize_any(GoDurationVisitor)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A Prometheus `model.Duration` (`refresh_interval: 5m`, also `1d`, `2w`, `1y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ModelDuration(pub Duration);

impl ModelDuration {
    pub const fn from_secs(secs: u64) -> Self {
        ModelDuration(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `model.ParseDuration`: `0`, or `[0-9]+` + unit groups in the order y, w, d, h, m, s, ms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid duration {text:?}: {MODEL_DURATION_HINT}");
        if text == "0" {
            return Ok(ModelDuration(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(invalid());
        }
        const MS: u64 = 1;
        const UNITS: [(&str, u64); 7] = [
            ("y", 365 * 24 * 3_600_000),
            ("w", 7 * 24 * 3_600_000),
            ("d", 24 * 3_600_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", MS),
        ];
        let mut rest = text;
        let mut millis: u64 = 0;
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|c| !c.is_ascii_digit()).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let pos = UNITS
                .iter()
                .position(|(name, _)| *name == unit)
                .ok_or_else(invalid)?;
            if pos < next_unit {
                return Err(invalid());
            }
            next_unit = pos + 1;
            let out_of_range = || format!("duration {text:?} is out of range");
            let add = value.checked_mul(UNITS[pos].1).ok_or_else(out_of_range)?;
            millis = millis.checked_add(add).ok_or_else(out_of_range)?;
            if millis > GO_MAX_NANOS / 1_000_000 {
                return Err(out_of_range());
            }
        }
        Ok(ModelDuration(Duration::from_millis(millis)))
    }
}

impl From<ModelDuration> for Duration {
    fn from(d: ModelDuration) -> Duration {
        d.0
    }
}

impl fmt::Display for ModelDuration {
    /// Prometheus' `model.Duration.String()`: `5m`, `1h30m`, `90d`, `1w`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        // Years and weeks only when exact: "90d" reads better than "12w6d".
        let units: [(&str, u64, bool); 7] = [
            ("y", 365 * 24 * 3_600_000, true),
            ("w", 7 * 24 * 3_600_000, true),
            ("d", 24 * 3_600_000, false),
            ("h", 3_600_000, false),
            ("m", 60_000, false),
            ("s", 1_000, false),
            ("ms", 1, false),
        ];
        for (name, mult, exact) in units {
            if exact && ms % mult != 0 {
                continue;
            }
            if ms / mult > 0 {
                write!(f, "{}{name}", ms / mult)?;
                ms %= mult;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ModelDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModelDurationVisitor;
        impl Visitor<'_> for ModelDurationVisitor {
            type Value = ModelDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 60s, 5m or 1d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelDuration, E> {
                ModelDuration::parse(v).map_err(E::custom)
            }
            /// `model.Duration` unmarshals through a string, so `60` is the text "60": only `0` is valid.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ModelDuration, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ModelDuration, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ModelDuration, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(ModelDurationVisitor)
    }
}

impl Serialize for ModelDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    #[test]
    fn go_duration_parses_like_time_parse_duration() {
        let cases: &[(&str, Duration)] = &[
            ("0", ns(0)),
            ("+0", ns(0)),
            ("0s", ns(0)),
            ("1ns", ns(1)),
            ("1us", ns(1_000)),
            ("1µs", ns(1_000)),
            ("1μs", ns(1_000)),
            ("500ms", Duration::from_millis(500)),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h30m10.5s", Duration::from_millis(5_410_500)),
            ("2h45m", Duration::from_secs(9900)),
            ("+5m", Duration::from_secs(300)),
            ("-0s", ns(0)),
            ("1.0000000001s", ns(1_000_000_000)),
            ("2562047h47m16.854775807s", ns(i64::MAX as u64)),
        ];
        for (text, want) in cases {
            assert_eq!(GoDuration::parse(text), Ok(GoDuration(*want)), "{text}");
        }
    }

    #[test]
    fn go_duration_rejects_with_clear_messages() {
        let hint = "expected a number followed by ns, us, µs, ms, s, m or h (e.g. 1s, 500ms)";
        let cases: &[(&str, String)] = &[
            ("", format!("invalid duration \"\": {hint}")),
            ("5", format!("invalid duration \"5\": {hint}")),
            ("5x", format!("invalid duration \"5x\": {hint}")),
            ("1d", format!("invalid duration \"1d\": {hint}; days and weeks are not supported here, write hours (24h)")),
            (".s", format!("invalid duration \".s\": {hint}")),
            ("s", format!("invalid duration \"s\": {hint}")),
            ("1 s", format!("invalid duration \"1 s\": {hint}")),
            ("-1s", "negative duration \"-1s\" is not allowed here".to_string()),
            ("2562048h", "duration \"2562048h\" is out of range (at most 2562047h47m16.854775807s)".to_string()),
        ];
        for (text, want) in cases {
            assert_eq!(GoDuration::parse(text).unwrap_err(), *want, "{text}");
        }
    }

    #[test]
    fn go_duration_prints_like_go() {
        let cases: &[(Duration, &str)] = &[
            (ns(0), "0s"),
            (ns(1), "1ns"),
            (ns(1_500), "1.5µs"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(7 * 3600), "7h0m0s"),
            (Duration::from_millis(5_410_500), "1h30m10.5s"),
        ];
        for (d, want) in cases {
            assert_eq!(GoDuration(*d).to_string(), *want);
            assert_eq!(GoDuration::parse(want).unwrap().0, *d, "round trip {want}");
        }
    }

    #[test]
    fn go_duration_yaml_integer_is_nanoseconds() {
        let d: GoDuration = serde_yaml_ng::from_str("5").unwrap();
        assert_eq!(d.0, ns(5));
        let d: GoDuration = serde_yaml_ng::from_str("\"5s\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(5));
        let err = serde_yaml_ng::from_str::<GoDuration>("1.5")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid duration 1.5: expected a number"),
            "{err}"
        );
        assert_eq!(
            serde_yaml_ng::to_string(&GoDuration::from_secs(90)).unwrap(),
            "1m30s\n"
        );
    }

    #[test]
    fn model_duration_parses_like_prometheus() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("0s", 0),
            ("60s", 60_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("2w", 14 * 86_400_000),
            ("1y", 365 * 86_400_000),
            ("1d12h", 129_600_000),
            ("150ms", 150),
            ("1s500ms", 1_500),
        ];
        for (text, millis) in cases {
            assert_eq!(
                ModelDuration::parse(text),
                Ok(ModelDuration(Duration::from_millis(*millis))),
                "{text}"
            );
        }
        let hint =
            "expected a whole number followed by ms, s, m, h, d, w or y, largest unit first \
                    (e.g. 60s, 5m, 1h30m, 7d)";
        for bad in ["", "60", "1.5s", "5x", "30m1h", "1h1h", "-5m", "m"] {
            assert_eq!(
                ModelDuration::parse(bad).unwrap_err(),
                format!("invalid duration {bad:?}: {hint}")
            );
        }
        let err = serde_yaml_ng::from_str::<ModelDuration>("60")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid duration \"60\""), "{err}");
        assert_eq!(
            serde_yaml_ng::from_str::<ModelDuration>("0").unwrap().0,
            Duration::ZERO
        );
    }

    #[test]
    fn model_duration_prints_like_prometheus() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (60_000, "1m"),
            (300_000, "5m"),
            (5_400_000, "1h30m"),
            (90 * 86_400_000, "90d"),
            (14 * 86_400_000, "2w"),
            (365 * 86_400_000, "1y"),
            (1_500, "1s500ms"),
        ];
        for (millis, want) in cases {
            assert_eq!(
                ModelDuration(Duration::from_millis(*millis)).to_string(),
                *want
            );
        }
    }
}
