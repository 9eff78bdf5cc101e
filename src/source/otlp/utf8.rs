//! OTLP protobuf whose strings are not all valid UTF-8, made readable. prost refuses a whole message
//! for one invalid string; an SDK bug or a byte-copying bridge should not cost the client its whole
//! request, so a request prost refused is walked once more over its wire format, following the
//! logs schema to every string field, with each invalid string replaced as `String::from_utf8_lossy`
//! does (U+FFFD); then it is decoded again, and what was replaced is counted.

use crate::sink::protobuf::put_varint;

/// The messages on the paths from an `ExportLogsServiceRequest` to its strings.
#[derive(Clone, Copy)]
enum Msg {
    Request,
    ResourceLogs,
    Resource,
    EntityRef,
    ScopeLogs,
    Scope,
    LogRecord,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a length-delimited field holds.
enum Field {
    Str,
    Sub(Msg),
    /// Bytes, or a field this walk does not know: copied as it is.
    Other,
}

fn field(msg: Msg, tag: u64) -> Field {
    use Field::{Other, Str, Sub};
    match (msg, tag) {
        (Msg::Request, 1) => Sub(Msg::ResourceLogs),
        (Msg::ResourceLogs, 1) => Sub(Msg::Resource),
        (Msg::ResourceLogs, 2) => Sub(Msg::ScopeLogs),
        (Msg::ResourceLogs | Msg::ScopeLogs, 3) => Str,
        (Msg::Resource, 1) => Sub(Msg::KeyValue),
        (Msg::Resource, 3) => Sub(Msg::EntityRef),
        (Msg::EntityRef, 1..=4) => Str,
        (Msg::ScopeLogs, 1) => Sub(Msg::Scope),
        (Msg::ScopeLogs, 2) => Sub(Msg::LogRecord),
        (Msg::Scope, 1 | 2) => Str,
        (Msg::Scope, 3) => Sub(Msg::KeyValue),
        (Msg::LogRecord, 3 | 12) => Str,
        (Msg::LogRecord, 5) => Sub(Msg::AnyValue),
        (Msg::LogRecord, 6) => Sub(Msg::KeyValue),
        (Msg::KeyValue, 1) => Str,
        (Msg::KeyValue, 2) => Sub(Msg::AnyValue),
        (Msg::AnyValue, 1) => Str,
        (Msg::AnyValue, 5) => Sub(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Sub(Msg::KeyValueList),
        (Msg::ArrayValue, 1) => Sub(Msg::AnyValue),
        (Msg::KeyValueList, 1) => Sub(Msg::KeyValue),
        _ => Other,
    }
}

/// `body` (an `ExportLogsServiceRequest`) with its invalid strings replaced, and how many were;
/// `None` when it is not well-formed protobuf.
pub fn repair(body: &[u8]) -> Option<(Vec<u8>, u64)> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut replaced = 0;
    walk(Msg::Request, body, &mut out, &mut replaced)?;
    Some((out, replaced))
}

fn walk(msg: Msg, mut input: &[u8], out: &mut Vec<u8>, replaced: &mut u64) -> Option<()> {
    while !input.is_empty() {
        let key = varint(&mut input)?;
        put_varint(out, key);
        match key & 7 {
            0 => put_varint(out, varint(&mut input)?),
            1 => copy(&mut input, out, 8)?,
            5 => copy(&mut input, out, 4)?,
            2 => {
                let len = usize::try_from(varint(&mut input)?).ok()?;
                let payload = input.get(..len)?;
                input = &input[len..];
                match field(msg, key >> 3) {
                    Field::Str => {
                        let text = String::from_utf8_lossy(payload);
                        if matches!(text, std::borrow::Cow::Owned(_)) {
                            *replaced += 1;
                        }
                        put_varint(out, text.len() as u64);
                        out.extend_from_slice(text.as_bytes());
                    }
                    Field::Sub(sub) => {
                        let mut inner = Vec::with_capacity(len);
                        walk(sub, payload, &mut inner, replaced)?;
                        put_varint(out, inner.len() as u64);
                        out.extend_from_slice(&inner);
                    }
                    Field::Other => {
                        put_varint(out, len as u64);
                        out.extend_from_slice(payload);
                    }
                }
            }
            _ => return None, // groups: not in OTLP
        }
    }
    Some(())
}

fn copy(input: &mut &[u8], out: &mut Vec<u8>, n: usize) -> Option<()> {
    out.extend_from_slice(input.get(..n)?);
    *input = &input[n..];
    Some(())
}

fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in input.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    #[test]
    fn invalid_strings_are_replaced_and_counted_and_the_rest_kept() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        time_unix_nano: 7,
                        body: Some(AnyValue {
                            value: Some(Value::StringValue("bad XX bytes".into())),
                        }),
                        attributes: vec![KeyValue {
                            key: "kXX".into(),
                            value: Some(AnyValue {
                                value: Some(Value::BytesValue(b"XX".to_vec())),
                            }),
                        }],
                        trace_id: vec![0xff; 16],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut body = request.encode_to_vec();
        // Make "XX" invalid UTF-8 in the two strings only (the bytes value stays as it is).
        let mut at = 0;
        let mut patched = 0;
        while let Some(i) = body[at..].windows(2).position(|w| w == b"XX") {
            let i = at + i;
            if patched < 2 && body[i - 1] != 2 {
                body[i] = 0xff;
                body[i + 1] = 0xfe;
                patched += 1;
            }
            at = i + 2;
        }
        assert!(ExportLogsServiceRequest::decode(&body[..]).is_err());
        let (fixed, replaced) = repair(&body).expect("well-formed");
        assert_eq!(replaced, 2);
        let decoded = ExportLogsServiceRequest::decode(&fixed[..]).expect("readable now");
        let record = &decoded.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.time_unix_nano, 7);
        assert_eq!(record.trace_id, vec![0xff; 16]);
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(Value::StringValue("bad \u{fffd}\u{fffd} bytes".into()))
        );
        assert_eq!(record.attributes[0].key, "k\u{fffd}\u{fffd}");
        assert_eq!(
            record.attributes[0].value.as_ref().unwrap().value,
            Some(Value::BytesValue(b"XX".to_vec()))
        );
        assert!(repair(b"\xff\xff\xff").is_none());
    }
}
