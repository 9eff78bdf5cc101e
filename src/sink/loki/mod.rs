//! The Loki sink: `logproto.PushRequest` in protobuf, snappy block-compressed, POSTed to
//! `clients[].url` (Loki's `pkg/push/push.proto`, kept in `push.proto` beside this file).

pub mod batch;
pub mod config;
pub mod encode;
pub mod logproto;
pub mod service;
pub mod sink;
