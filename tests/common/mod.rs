//! Harness shared by logferry's end-to-end tests (`mod common;` in each `tests/*.rs`):
//!
//! * [`loki`]: [`LokiReceiver`], a real Loki push endpoint with fault injection;
//! * [`elasticsearch`]: [`EsReceiver`], an Elasticsearch 8 `_bulk` endpoint with fault injection;
//! * [`agent`]: [`Agent`], the real `logferry` binary as a child process, reaped on drop;
//! * [`fixtures`]: [`TestDir`], numbered test lines and the lost/duplicated [`count_loss`];
//! * [`http`]: a tiny blocking HTTP/1.1 client for the agent's and the receiver's endpoints;
//! * [`journald`]: a real `systemd-journald` per test, and journal fixture files.
//! * [`docker`]: the real Docker engine: containers removed on drop, a Docker job config, a socket proxy.
//! * [`otel`]: the OpenTelemetry Python SDK as a client, and an OTLP/HTTP receiver for the OTLP sink;
//! * [`process`]: a process's CPU seconds and peak RSS, for benches and memory ceilings.
//!
//! Every test binary uses a different part of it, hence the `allow`s.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod docker;
pub mod elasticsearch;
pub mod fixtures;
pub mod http;
pub mod journald;
pub mod loki;
pub mod otel;
pub mod process;

pub use logferry::sink::loki::logproto;

pub use agent::{Agent, AgentBuilder, Finished};
pub use elasticsearch::{EsReceiver, EsRequest, EsStats, ReceivedDoc};
pub use fixtures::{
    append_lines, count_loss, lines_range, make_certs, numbered_line, start_agent, Counts,
    TestConfig, TestDir,
};
pub use loki::{encode_push, LokiReceiver, ReceivedEntry, ReceivedRequest, Stats};
