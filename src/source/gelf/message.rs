//! One GELF payload → the fields Promtail labels with and the line it ships, as grafana/go-gelf v2
//! (Promtail's reader) reads and re-encodes it:
//! * the payload is gzip (`1f 8b`), zlib (`78`, header checksum) or plain JSON;
//! * `version`, `host`, `short_message`, `full_message`, `facility` must be strings, `timestamp` and
//!   `level` numbers (else the message is refused); keys starting with `_` are the additional fields;
//!   any other key is dropped;
//! * the line is `{"version","host","short_message"[,"full_message"],"timestamp"[,"level"][,"facility"]`
//!   then the additional fields sorted by name, written as Go's encoding/json writes them (numbers as
//!   float64, `<>&` escaped); empty `full_message`/`facility` and level 0 are left out.

// Promtail names `__gelf_message_level` with syslog's severities, by level.
use crate::source::syslog::message::SEVERITIES;
use std::io::Read;

use flate2::read::{GzDecoder, ZlibDecoder};
use serde_json::{Map, Number, Value};

use crate::stage::gojson;

/// Decompressed payloads larger than this are refused (a compression bomb stops here).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

#[derive(Debug, Default, PartialEq)]
pub struct GelfMessage {
    pub version: String,
    pub host: String,
    pub short: String,
    pub full: String,
    /// Seconds since the epoch, with decimals.
    pub timestamp: f64,
    pub level: i32,
    pub facility: String,
    /// The `_` fields, as received.
    pub extra: Map<String, Value>,
}

impl GelfMessage {
    /// `__gelf_message_level`: the level's name, or empty outside 0-7 (as Promtail's map lookup).
    pub fn level_name(&self) -> &'static str {
        usize::try_from(self.level)
            .ok()
            .and_then(|l| SEVERITIES.get(l))
            .copied()
            .unwrap_or("")
    }

    /// The timestamp in Unix nanoseconds, if the message has one.
    pub fn timestamp_ns(&self) -> Option<i64> {
        (self.timestamp != 0.0 && self.timestamp.is_finite())
            .then_some((self.timestamp * 1e9) as i64)
    }

    /// The message re-encoded as go-gelf's `MarshalJSONBuf` writes it.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.short.len() + self.full.len());
        out.push_str("{\"version\":");
        gojson::write_str(&mut out, &self.version);
        out.push_str(",\"host\":");
        gojson::write_str(&mut out, &self.host);
        out.push_str(",\"short_message\":");
        gojson::write_str(&mut out, &self.short);
        if !self.full.is_empty() {
            out.push_str(",\"full_message\":");
            gojson::write_str(&mut out, &self.full);
        }
        out.push_str(",\"timestamp\":");
        match Number::from_f64(self.timestamp) {
            Some(n) => gojson::write_number(&mut out, &n),
            None => out.push('0'),
        }
        if self.level != 0 {
            out.push_str(",\"level\":");
            out.push_str(&self.level.to_string());
        }
        if !self.facility.is_empty() {
            out.push_str(",\"facility\":");
            gojson::write_str(&mut out, &self.facility);
        }
        let mut extra: Vec<(&String, &Value)> = self.extra.iter().collect();
        extra.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, v) in extra {
            out.push(',');
            gojson::write_str(&mut out, k);
            out.push(':');
            gojson::write_value(&mut out, v);
        }
        out.push('}');
        out
    }
}

/// Why a payload is not a GELF message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Gzip,
    Zlib,
    TooLarge,
    Json,
    NotAnObject,
    FieldType(&'static str),
}

impl DecodeError {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::Gzip => "invalid gzip payload",
            DecodeError::Zlib => "invalid zlib payload",
            DecodeError::TooLarge => "payload larger than 16 MiB once decompressed",
            DecodeError::Json => "payload is not JSON",
            DecodeError::NotAnObject => "payload is not a JSON object",
            DecodeError::FieldType(_) => "a GELF field of the wrong type",
        }
    }
}

/// Decompress (if needed) and decode one reassembled payload.
pub fn decode(payload: &[u8]) -> Result<GelfMessage, DecodeError> {
    let json = decompress(payload)?;
    let value: Value = serde_json::from_slice(&json).map_err(|_| DecodeError::Json)?;
    let Value::Object(map) = value else {
        return Err(DecodeError::NotAnObject);
    };
    let mut m = GelfMessage::default();
    for (k, v) in map {
        if k.starts_with('_') {
            m.extra.insert(k, v);
            continue;
        }
        let string = |v: Value, name: &'static str| match v {
            Value::String(s) => Ok(s),
            _ => Err(DecodeError::FieldType(name)),
        };
        let number = |v: &Value, name: &'static str| v.as_f64().ok_or(DecodeError::FieldType(name));
        match k.as_str() {
            "version" => m.version = string(v, "version")?,
            "host" => m.host = string(v, "host")?,
            "short_message" => m.short = string(v, "short_message")?,
            "full_message" => m.full = string(v, "full_message")?,
            "facility" => m.facility = string(v, "facility")?,
            "timestamp" => m.timestamp = number(&v, "timestamp")?,
            "level" => m.level = number(&v, "level")? as i32,
            _ => {}
        }
    }
    Ok(m)
}

fn decompress(payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let limited = |r: &mut dyn Read, err: DecodeError| {
        let mut out = Vec::new();
        r.take(MAX_PAYLOAD as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| err)?;
        if out.len() > MAX_PAYLOAD {
            return Err(DecodeError::TooLarge);
        }
        Ok(out)
    };
    match payload {
        [0x1f, 0x8b, ..] => limited(&mut GzDecoder::new(payload), DecodeError::Gzip),
        [0x78, b1, ..] if (0x78 * 256 + u32::from(*b1)) % 31 == 0 => {
            limited(&mut ZlibDecoder::new(payload), DecodeError::Zlib)
        }
        _ => Ok(payload.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    const DOCKER: &str = r#"{"version":"1.1","host":"web-1","short_message":"hello <world>","timestamp":1770037200.123,"level":6,"_container_name":"app","_command":"sh -c echo","_created":"2026-02-02T13:00:00Z","_n":12,"other":"dropped"}"#;

    #[test]
    fn plain_gzip_and_zlib_payloads_decode_alike() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(DOCKER.as_bytes()).unwrap();
        let mut zl = ZlibEncoder::new(Vec::new(), Compression::default());
        zl.write_all(DOCKER.as_bytes()).unwrap();
        let plain = decode(DOCKER.as_bytes()).unwrap();
        assert_eq!(decode(&gz.finish().unwrap()).unwrap(), plain);
        assert_eq!(decode(&zl.finish().unwrap()).unwrap(), plain);
        assert_eq!(
            (
                plain.level_name(),
                plain.host.as_str(),
                plain.version.as_str()
            ),
            ("informational", "web-1", "1.1")
        );
        // As Go computes it: int64(seconds * float64(time.Second)).
        assert_eq!(
            plain.timestamp_ns(),
            Some((1_770_037_200.123_f64 * 1e9) as i64)
        );
        assert_eq!(
            plain.to_json(),
            r#"{"version":"1.1","host":"web-1","short_message":"hello \u003cworld\u003e","timestamp":1770037200.123,"level":6,"_command":"sh -c echo","_container_name":"app","_created":"2026-02-02T13:00:00Z","_n":12}"#
        );
    }

    #[test]
    fn go_gelf_refusals_and_omissions() {
        assert_eq!(decode(b"not json").err(), Some(DecodeError::Json));
        assert_eq!(decode(b"[1]").err(), Some(DecodeError::NotAnObject));
        assert_eq!(
            decode(br#"{"host":1}"#).err(),
            Some(DecodeError::FieldType("host"))
        );
        assert_eq!(
            decode(br#"{"level":"6"}"#).err(),
            Some(DecodeError::FieldType("level"))
        );
        assert_eq!(decode(&[0x1f, 0x8b, 1, 2]).err(), Some(DecodeError::Gzip));
        let m =
            decode(br#"{"short_message":"x","full_message":"","level":0,"facility":""}"#).unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"version":"","host":"","short_message":"x","timestamp":0}"#
        );
        assert_eq!((m.level_name(), m.timestamp_ns()), ("emergency", None));
        assert_eq!(decode(br#"{"level":9}"#).unwrap().level_name(), "");
    }

    #[test]
    fn a_compression_bomb_is_refused() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&vec![b' '; MAX_PAYLOAD + 10]).unwrap();
        assert_eq!(
            decode(&gz.finish().unwrap()).err(),
            Some(DecodeError::TooLarge)
        );
    }
}
