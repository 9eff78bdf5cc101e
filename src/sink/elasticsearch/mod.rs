//! The Elasticsearch sink: entries indexed into Elasticsearch (7.x, 8.x) or OpenSearch with the
//! `_bulk` API, NDJSON over HTTP (the spec: Elasticsearch's "Bulk API" reference,
//! `POST /_bulk`, and OpenSearch's, which is the same wire format).
//!
//! * `config.rs`: settings resolved from `elasticsearch[]` (`crate::config::ElasticsearchConfig`);
//! * `index.rs`: index names dated from each entry's timestamp, and the name rules;
//! * `document.rs`: the action and document lines;
//! * `codec.rs`: entries into one NDJSON body, gzip when configured;
//! * `bulk.rs`: the item-by-item reading of the answer;
//! * `protocol.rs`: what each answer means (retries of single items, 413 splits, dead letters);
//! * `service.rs`: endpoints (round robin, failover), the request, the version check.
//!
//! Batching, the buffer, retries and dead letters are the sink core's (`crate::sink::core`).
//!
//! gzip uses flate2 (its default pure-Rust miniz_oxide backend: no C toolchain, maintained by the
//! rust-lang org, the crate reqwest and hyper users already rely on).

pub mod bulk;
pub mod codec;
pub mod config;
pub mod document;
pub mod protocol;
pub mod service;
