//! The Elasticsearch sink: entries indexed into Elasticsearch (7.x, 8.x) or OpenSearch with the
//! `_bulk` API, NDJSON over HTTP (the spec: Elasticsearch's "Bulk API" reference,
//! `POST /_bulk`, and OpenSearch's, which is the same wire format).
//!
//! * `config.rs`: settings resolved from `elasticsearch[]` (`crate::config::ElasticsearchConfig`);
//! * `index.rs`: index names dated from each entry's timestamp, and the name rules;
//! * `document.rs`: the action and document lines;
//! * `bulk.rs`: the pending request and the item-by-item reading of the answer;
//! * `service.rs`: endpoints (round robin, failover), the request, the version check;
//! * `sink.rs`: the run loop (batching, retries of single items, 413 splits, dead letters, acks).
//!
//! gzip uses flate2 (its default pure-Rust miniz_oxide backend: no C toolchain, maintained by the
//! rust-lang org, the crate reqwest and hyper users already rely on).

pub mod bulk;
pub mod config;
pub mod document;
pub mod service;
pub mod sink;
