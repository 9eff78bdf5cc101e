//! The places where Promtail's YAML library (gopkg.in/yaml.v2, YAML 1.1) and serde disagree, and the serde
//! helpers the config blocks share because of it.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserializer, Serializer};

use super::redact::{is_secret_name, redact_header, redact_url, SECRET};

/// A Prometheus label set (`labels:`, `external_labels:`), sorted by name.
pub type LabelSet = BTreeMap<String, String>;

/// A block built from an empty mapping, so that each field's `#[serde(default = ...)]` attribute is the
/// one place its default lives (the `Default` impls of config blocks call this).
pub(crate) fn defaults<T: DeserializeOwned>() -> T {
    match serde_yaml_ng::from_str("{}") {
        Ok(value) => value,
        Err(err) => panic!("a config block has a field without a default: {err}"),
    }
}

pub(crate) fn yes() -> bool {
    true
}

/// YAML 1.1 booleans as yaml.v2 reads them: `true/false` and also `y/yes/on` and `n/no/off`
/// (lower, Title or UPPER case). serde_yaml_ng follows YAML 1.2 and would reject `enabled: yes`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true or false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        parse_bool(v)
            .ok_or_else(|| E::custom(format!("expected true or false, found the string {v:?}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Err(E::custom(format!(
            "expected true or false, found the number {v}"
        )))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Err(E::custom(format!(
            "expected true or false, found the number {v}"
        )))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Err(E::custom(format!(
            "expected true or false, found the number {v}"
        )))
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Err(E::custom("expected true or false, found an empty value"))
    }
}

/// `#[serde(deserialize_with = "yaml::bool")]` for every boolean setting.
pub(crate) fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    deserializer.deserialize_any(BoolVisitor)
}

/// Deserializes a word from a fixed set through its `FromStr`, inside the visitor so that an error
/// carries the value's line:column.
pub(crate) fn keyword<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    struct KeywordVisitor<T>(PhantomData<T>);
    impl<T: FromStr<Err = String>> Visitor<'_> for KeywordVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }
    deserializer.deserialize_str(KeywordVisitor(PhantomData))
}

/// Writes a credential as `<secret>` so `-print-config-stderr` never leaks it.
pub(crate) fn secret<S: Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) if !v.is_empty() => serializer.serialize_str(SECRET),
        Some(_) => serializer.serialize_str(""),
        None => serializer.serialize_none(),
    }
}

/// Serializes a URL through [`redact_url`].
pub(crate) fn url<S: Serializer>(value: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(value))
}

/// [`url`] for an optional URL (`proxy_url`).
pub(crate) fn optional_url<S: Serializer>(
    value: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => url(v, serializer),
        None => serializer.serialize_none(),
    }
}

/// [`url`] for a list of URLs (Elasticsearch `endpoints`).
pub(crate) fn urls<S: Serializer>(values: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(|v| redact_url(v)))
}

/// Request headers (`headers` of clients and Elasticsearch sinks), each value through [`redact_header`].
pub(crate) fn headers<S: Serializer>(
    headers: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(headers.iter().map(|(k, v)| (k, redact_header(k, v))))
}

/// Prometheus `http_headers` (`{Name: {values: [...], secrets: [...], files: [...]}}`): everything
/// under a header whose name may carry a credential is `<secret>`, `secrets` under any header too.
pub(crate) fn http_headers<S: Serializer>(
    value: &Option<serde_yaml_ng::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde_yaml_ng::Value;
    let Some(Value::Mapping(map)) = value else {
        return redacted_value(value, serializer);
    };
    let redacted: serde_yaml_ng::Mapping = map
        .iter()
        .map(|(name, spec)| {
            let secret = name.as_str().is_some_and(is_secret_name);
            (name.clone(), if secret { hide(spec) } else { redact(spec) })
        })
        .collect();
    serializer.serialize_some(&Value::Mapping(redacted))
}

/// Keys whose values are redacted inside free-form blocks (the sources logferry keeps as raw YAML, and
/// Prometheus `http_headers` with its `secrets` lists).
const SECRET_KEYS: &[&str] = &[
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
    "api_token",
    "connection_string",
    "key",
    "secrets",
];

/// Writes a free-form YAML block with every credential-looking value replaced by `<secret>`.
pub(crate) fn redacted_value<S: Serializer>(
    value: &Option<serde_yaml_ng::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_some(&redact(v)),
        None => serializer.serialize_none(),
    }
}

/// Every string in `value` becomes `<secret>`; the shape (lists, maps) is kept.
fn hide(value: &serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match value {
        Value::String(_) => Value::String(SECRET.into()),
        Value::Sequence(items) => Value::Sequence(items.iter().map(hide).collect()),
        Value::Mapping(map) => {
            Value::Mapping(map.iter().map(|(k, v)| (k.clone(), hide(v))).collect())
        }
        other => other.clone(),
    }
}

/// `value` with everything under a [`SECRET_KEYS`] key hidden.
fn redact(value: &serde_yaml_ng::Value) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| {
                    let secret = k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                    (k.clone(), if secret { hide(v) } else { redact(v) })
                })
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize)]
    struct Probe {
        #[serde(default, deserialize_with = "bool")]
        flag: bool,
        #[serde(default, serialize_with = "secret")]
        password: Option<String>,
        #[serde(default, serialize_with = "redacted_value")]
        raw: Option<serde_yaml_ng::Value>,
    }

    #[test]
    fn reads_yaml_1_1_booleans() {
        for (text, want) in [
            ("true", true),
            ("yes", true),
            ("On", true),
            ("Y", true),
            ("false", false),
            ("no", false),
            ("OFF", false),
        ] {
            let probe: Probe = serde_yaml_ng::from_str(&format!("flag: {text}")).unwrap();
            assert_eq!(probe.flag, want, "{text}");
        }
        let err = serde_yaml_ng::from_str::<Probe>("flag: maybe")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("expected true or false, found the string \"maybe\""),
            "{err}"
        );
    }

    #[test]
    fn redacts_secrets_when_printing() {
        let probe: Probe = serde_yaml_ng::from_str(
            "password: hunter2\nraw: {sasl_config: {user: u, password: p}, labels: {a: b}, X-Key: {secrets: [s1, s2]}}",
        )
        .unwrap();
        let printed = serde_yaml_ng::to_string(&probe).unwrap();
        assert!(
            !printed.contains("hunter2") && !printed.contains(" p\n") && !printed.contains("s1"),
            "{printed}"
        );
        assert!(
            printed.contains("password: <secret>") && printed.contains("user: u"),
            "{printed}"
        );
    }
}
