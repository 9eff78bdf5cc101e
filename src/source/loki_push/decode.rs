//! Loki push bodies as clients send them: `logproto.PushRequest` in protobuf (snappy block format), or
//! Loki's JSON (`{"streams": [{"stream": {...}, "values": [["<ns>", "<line>", {<metadata>}]]}]}`),
//! either optionally gzip-compressed on the wire (`Content-Encoding: gzip`); and the raw form, one line
//! per line.

use std::io::Read;

use serde::Deserialize;

use crate::entry::Labels;
use crate::sink::loki::logproto::decode_push;
use crate::stage::transforming::template::go_unquote;

/// One pushed stream: its labels as the client wrote them, and its entries in order.
#[derive(Debug, Default, PartialEq)]
pub struct PushedStream {
    pub labels: Labels,
    pub entries: Vec<PushedEntry>,
}

#[derive(Debug, PartialEq)]
pub struct PushedEntry {
    pub timestamp: i64,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

/// A body in the form its headers name. The error says why it cannot be read (answered with 400).
pub fn decode(
    content_type: &str,
    content_encoding: &str,
    body: &[u8],
    max: usize,
) -> Result<Vec<PushedStream>, String> {
    let inflated;
    let body = match content_encoding.trim() {
        "" | "identity" | "snappy" => body,
        e if e.eq_ignore_ascii_case("gzip") => {
            inflated = gunzip(body, max).map_err(|e| e.to_string())?;
            &inflated[..]
        }
        other => return Err(format!("unsupported Content-Encoding {other:?}")),
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => json(body),
        // Loki takes anything else as protobuf, as clients that set no type send it.
        _ => protobuf(body),
    }
}

/// Why a gzipped body was not inflated.
#[derive(Debug)]
pub enum GunzipError {
    Invalid(std::io::Error),
    /// Larger than the limit once inflated.
    TooLarge(usize),
}

impl std::fmt::Display for GunzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GunzipError::Invalid(e) => write!(f, "body is not valid gzip: {e}"),
            GunzipError::TooLarge(max) => {
                write!(f, "body is larger than {max} bytes once decompressed")
            }
        }
    }
}

/// `body` gunzipped, at most `max` bytes of it.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(max as u64 + 1);
    reader.read_to_end(&mut out).map_err(GunzipError::Invalid)?;
    if out.len() > max {
        return Err(GunzipError::TooLarge(max));
    }
    Ok(out)
}

fn protobuf(body: &[u8]) -> Result<Vec<PushedStream>, String> {
    let push = decode_push(body).map_err(|e| e.to_string())?;
    push.streams
        .into_iter()
        .map(|s| {
            let labels = parse_labels(&s.labels)?;
            let entries = s
                .entries
                .into_iter()
                .map(|e| PushedEntry {
                    timestamp: e
                        .timestamp
                        .map_or(0, |t| t.unix_nanos().clamp(0, i64::MAX.into()) as i64),
                    line: e.line,
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                })
                .collect();
            Ok(PushedStream { labels, entries })
        })
        .collect()
}

#[derive(Deserialize)]
struct JsonPush {
    #[serde(default)]
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: Labels,
    #[serde(default)]
    values: Vec<JsonValue>,
}

/// `["<unix ns as a string>", "<line>"]`, or with a third element: structured metadata.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonValue {
    Plain(String, String),
    WithMetadata(String, String, Labels),
}

fn json(body: &[u8]) -> Result<Vec<PushedStream>, String> {
    let push: JsonPush =
        serde_json::from_slice(body).map_err(|e| format!("body is not a Loki JSON push: {e}"))?;
    push.streams
        .into_iter()
        .map(|s| {
            let entries = s
                .values
                .into_iter()
                .map(|v| {
                    let (ts, line, metadata) = match v {
                        JsonValue::Plain(ts, line) => (ts, line, Labels::new()),
                        JsonValue::WithMetadata(ts, line, m) => (ts, line, m),
                    };
                    let timestamp = ts
                        .parse::<i64>()
                        .map_err(|_| format!("timestamp {ts:?} is not Unix nanoseconds"))?;
                    Ok(PushedEntry {
                        timestamp,
                        line,
                        metadata: metadata.into_iter().collect(),
                    })
                })
                .collect::<Result<_, String>>()?;
            Ok(PushedStream {
                labels: s.stream,
                entries,
            })
        })
        .collect()
}

/// A label set in Loki's selector form, as clients write it: `{a="b", c="d\"e"}` (Go string escapes
/// in the values).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let bad = |why: &str| format!("labels {text:?}: {why}");
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("expected {name=\"value\", ...}"))?;
    let mut labels = Labels::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| bad("a label has no ="))?;
        let name = rest[..eq].trim();
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid {
            return Err(bad(&format!("invalid label name {name:?}")));
        }
        let after = rest[eq + 1..].trim_start();
        let body = after
            .strip_prefix('"')
            .ok_or_else(|| bad("a value is not quoted"))?;
        let (value, used) = unquote(body).map_err(|why| bad(&why))?;
        labels.insert(name.to_string(), value);
        rest = body[used..].trim_start();
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(bad("expected , between labels")),
        };
    }
    Ok(labels)
}

/// The value of a Go-quoted string whose opening quote is gone, and the bytes used through the
/// closing quote.
fn unquote(s: &str) -> Result<(String, usize), String> {
    let mut escaped = false;
    let end = s
        .bytes()
        .position(|b| {
            let closes = b == b'"' && !escaped;
            escaped = b == b'\\' && !escaped;
            closes
        })
        .ok_or("a value is not closed")?;
    Ok((go_unquote(&s[..end])?, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::loki::logproto::{
        EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
    };
    use prost::Message;

    #[test]
    fn labels_in_selector_form_with_go_escapes() {
        let l = parse_labels(r#"{job="app", msg="a \"quoted\"\nline", __path__="/x"}"#).unwrap();
        assert_eq!(l["job"], "app");
        assert_eq!(l["msg"], "a \"quoted\"\nline");
        assert_eq!(l["__path__"], "/x");
        assert!(parse_labels("{}").unwrap().is_empty());
        for bad in [
            "job=\"a\"",
            "{job=a}",
            "{1x=\"a\"}",
            "{a=\"b\" c=\"d\"}",
            "{a=\"b}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protobuf_json_and_gzip_bodies() {
        let push = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{job="a"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 2,
                        nanos: 5,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "trace_id".into(),
                        value: "t1".into(),
                    }],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: String::new(),
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&push.encode_to_vec())
            .unwrap();
        let want = vec![PushedStream {
            labels: Labels::from([("job".to_string(), "a".to_string())]),
            entries: vec![PushedEntry {
                timestamp: 2_000_000_005,
                line: "hello".into(),
                metadata: vec![("trace_id".into(), "t1".into())],
            }],
        }];
        assert_eq!(
            decode("application/x-protobuf", "", &body, 1 << 20).unwrap(),
            want
        );

        let json = br#"{"streams":[{"stream":{"job":"a"},"values":[["2000000005","hello",{"trace_id":"t1"}]]}]}"#;
        assert_eq!(
            decode("application/json; charset=utf-8", "", json, 1 << 20).unwrap(),
            want
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, json).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode("application/json", "gzip", &gz, 1 << 20).unwrap(),
            want
        );
        assert!(decode("application/json", "gzip", &gz, 10)
            .unwrap_err()
            .contains("larger"));

        assert!(decode("application/x-protobuf", "", b"garbage", 1 << 20).is_err());
        assert!(decode(
            "application/json",
            "",
            b"{\"streams\":[{\"values\":[[\"x\",\"l\"]]}]}",
            1 << 20
        )
        .unwrap_err()
        .contains("nanoseconds"));
        assert!(decode("application/json", "br", json, 1 << 20).is_err());
    }
}
