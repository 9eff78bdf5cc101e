//! Sinks: where entries go. Each sink owns its batching and its HTTP client; the
//! [`Router`](crate::delivery::Router) hands every batch to every sink and arms the batch's
//! acknowledgement with the number of sinks.

pub mod elasticsearch;
pub mod http;
pub mod loki;
pub mod stdout;
