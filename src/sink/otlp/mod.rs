//! The OTLP sink: entries as an OTLP `ExportLogsServiceRequest` in protobuf, gzip-compressed by
//! default, POSTed to `otlp[].url` (an OpenTelemetry collector's `/v1/logs`, Loki's
//! `/otlp/v1/logs`).
//!
//! * `config.rs`: settings resolved from `otlp[]`;
//! * `codec.rs`: entries grouped by stream into resources (labels become resource attributes,
//!   structured metadata becomes record attributes), encoded once;
//! * `protocol.rs`: the POST, the reading of the answer (partial success counted and logged; a 413
//!   halves the request), the sink's metrics.
//!
//! Batching, the buffer, retries and dead letters are the sink core's (`crate::sink::core`).

pub mod codec;
pub mod config;
pub mod encode;
pub mod protocol;
