//! The Loki sink: `logproto.PushRequest` in protobuf, snappy block-compressed, POSTed to
//! `clients[].url` (Loki's `pkg/push/push.proto`, kept in `push.proto` beside this file).

pub mod logproto;
pub mod batch;
pub mod encode;
pub mod config;
pub mod service;
pub mod sink;
