//! Loki's push messages (`logproto.PushRequest` and friends) as hand-written prost structs.
//!
//! The schema is `push.proto` beside this file, taken from Loki's `pkg/push/push.proto`; tags and
//! types here must match it field for field. There is no build script and no protoc: the messages
//! are few and frozen by Loki's compatibility promise, so deriving `prost::Message` by hand is
//! cheaper than a code generator.
//!
//! The sink encodes with its own fast path; these structs are the reference decoder, used by
//! [`decode_push`], the tests and the test receiver. Timestamps are protobuf's well-known
//! `google.protobuf.Timestamp`, declared here as [`Timestamp`] since `prost-types` is not a dependency.
//!
//! This module only depends on `prost`, `snap` and `thiserror`, so tests may also include it by path.

/// `logproto.PushRequest`: the whole body of `POST /loki/api/v1/push`, before snappy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
    /// `"loki"` or `"otlp"` on Loki's side; Promtail leaves it empty.
    #[prost(string, tag = "2")]
    pub format: String,
}

/// `logproto.StreamAdapter`: one stream (label set) and its entries, in send order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// Loki selector form, e.g. `{filename="/var/log/a.log", job="varlogs"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Loki-internal; clients send 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one log line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// Non-nullable in Loki's Go code; `None` decodes as the Unix epoch there.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    /// `structuredMetadata` in the proto.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// Query-path only; clients never set it.
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured-metadata (or parsed) label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`: seconds since the Unix epoch plus non-negative nanoseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// Nanoseconds since the Unix epoch (exact: i128 cannot overflow here).
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos)
    }
}

/// Why a push body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("push body is not snappy block-compressed: {0}")]
    Snappy(#[from] snap::Error),
    #[error("push body is not a logproto.PushRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Decodes a push request body as it arrives on the wire: snappy block format, then protobuf.
pub fn decode_push(body: &[u8]) -> Result<PushRequest, DecodeError> {
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(<PushRequest as prost::Message>::decode(raw.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> PushRequest {
        PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{a="b"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1,
                        nanos: 2,
                    }),
                    line: "x".into(),
                    structured_metadata: vec![],
                    parsed: vec![],
                }],
                hash: 7,
            }],
            format: String::new(),
        }
    }

    /// The bytes Loki's Go code produces for [`sample`], worked out by hand from push.proto, so a
    /// wrong tag or type here fails even though a prost round trip would not notice it.
    const SAMPLE_WIRE: &[u8] = &[
        0x0a, 0x16, // PushRequest.streams (1, LEN 22)
        0x0a, 0x07, b'{', b'a', b'=', b'"', b'b', b'"', b'}', // StreamAdapter.labels (1)
        0x12, 0x09, // StreamAdapter.entries (2, LEN 9)
        0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, // EntryAdapter.timestamp (1) {seconds 1, nanos 2}
        0x12, 0x01, b'x', // EntryAdapter.line (2)
        0x18, 0x07, // StreamAdapter.hash (3, varint 7)
    ];

    #[test]
    fn encoding_matches_loki_field_numbers() {
        assert_eq!(sample().encode_to_vec(), SAMPLE_WIRE);
        let with_metadata = EntryAdapter {
            timestamp: None,
            line: String::new(),
            structured_metadata: vec![LabelPairAdapter {
                name: "k".into(),
                value: "v".into(),
            }],
            parsed: vec![LabelPairAdapter {
                name: "p".into(),
                value: String::new(),
            }],
        };
        let wire = [
            0x1a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // structuredMetadata (3)
            0x22, 0x03, 0x0a, 0x01, b'p', // parsed (4)
        ];
        assert_eq!(with_metadata.encode_to_vec(), wire);
    }

    #[test]
    fn decode_push_reads_snappy_block_then_protobuf() {
        let body = snap::raw::Encoder::new()
            .compress_vec(SAMPLE_WIRE)
            .expect("compress");
        let request = decode_push(&body).expect("decode");
        assert_eq!(request, sample());
        let ts = request.streams[0].entries[0]
            .timestamp
            .as_ref()
            .expect("timestamp");
        assert_eq!(ts.unix_nanos(), 1_000_000_002);
    }

    #[test]
    fn decode_push_rejects_uncompressed_and_garbage() {
        // Uncompressed protobuf is not a valid snappy block (its varint length is wrong).
        assert!(matches!(
            decode_push(SAMPLE_WIRE),
            Err(DecodeError::Snappy(_))
        ));
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(&[0xff, 0xff, 0xff])
            .expect("compress");
        assert!(matches!(
            decode_push(&not_protobuf),
            Err(DecodeError::Protobuf(_))
        ));
    }
}
