//! The Loki sink: `logproto.PushRequest` in protobuf, snappy block-compressed, POSTed to
//! `clients[].url` (Loki's `pkg/push/push.proto`, kept in `push.proto` beside this file).
//!
//! * `config.rs`: settings resolved from `clients[]`;
//! * `codec.rs`: entries grouped into streams per tenant, `max_line_size`, encoded once (`encode.rs`);
//! * `protocol.rs`: the push, the reading of Loki's answer (a 400 halves the push), the client metrics;
//! * `service.rs`: the HTTP request, its headers and auth;
//! * `logproto.rs`: the prost messages, to read a push back.
//!
//! Batching, the buffer, retries and dead letters are the sink core's (`crate::sink::core`).

pub mod codec;
pub mod config;
pub mod encode;
pub mod logproto;
pub mod protocol;
pub mod service;
