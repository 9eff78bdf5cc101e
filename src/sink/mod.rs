//! Sinks: where entries go. The [`Router`](crate::delivery::Router) hands every batch to every sink
//! and arms the batch's acknowledgement with the number of sinks. An HTTP sink is a codec and a
//! protocol on the shared [`core`] (batcher, buffer, sender); one folder per sink holds them with its
//! settings.

pub mod core;
pub mod elasticsearch;
pub mod http;
pub mod loki;
pub mod otlp;
pub mod protobuf;
pub mod stdout;
