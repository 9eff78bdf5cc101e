//! logferry: a host-level log shipping agent, drop-in for Promtail.
//!
//! It reads files, Docker containers and the systemd journal, receives syslog, GELF, Loki pushes and
//! OpenTelemetry logs (OTLP), and ships to Loki, Elasticsearch/OpenSearch and OTLP receivers through
//! a disk buffer per sink.
//!
//! The architecture and the contracts are in the team's DESIGN.md; the modules mirror its picture:
//! sources ([`source`]) read or receive, and feed what they got to one shared piece
//! ([`source::feed`]) that runs [`relabel`]ed entries through the [`stage`] pipeline on the source's
//! task; the [`delivery::Router`] hands each [`entry::Batch`] to every sink, and a batch's position is
//! committed ([`delivery`], [`positions`]) only once every sink holds it (for a receiving source: the
//! client is answered only then).
//!
//! ## Why these crates
//! * **tokio**: the runtime every other piece here (reqwest, axum, notify's async use) is built on.
//! * **serde_yaml_ng**: the maintained continuation of serde_yaml (deprecated) on the same libyaml
//!   port, so errors carry line and column; with `serde_path_to_error` they also carry the key path.
//! * **reqwest + rustls**: HTTP/1.1 client with pooling, timeouts, client certificates, no OpenSSL to
//!   link (the container image is `FROM scratch`).
//! * **prost + snap**: the Loki wire format. The sink writes the protobuf by hand from the batch (no
//!   copy of any line into a message); prost's derived structs are the reference decoder in tests.
//! * **notify**: inotify with a portable API; polling stays ours, bounded by `file_watch_config`.
//! * **globset + walkdir**: doublestar-style globs (`**`, `{a,b}`) matched while walking from the
//!   glob's literal prefix.
//! * **memchr**: line splitting at memory bandwidth.
//! * **prometheus-client**: the official Rust client; typed label sets, text exposition.
//! * **axum**: `/metrics` and `/ready` with little code, on hyper.
//! * **hyper + hyper-util** (already there under axum, named so the server can use them): hyper's
//!   HTTP/1 connection with its header read timer, which `axum::serve` does not set, so that idle and
//!   trickling connections are closed (src/server.rs).
//! * **clap**: subcommands and `--help`; Promtail's single-dash Go flags are normalised before it.
//! * **rustls + tokio-rustls** (already in the tree under reqwest): the syslog listener's TLS (RFC 5425)
//!   with client certificates, the same TLS stack as the clients', no OpenSSL.
//! * **flate2**: gzip and zlib, for pushed bodies (`Content-Encoding: gzip`), GELF payloads and the
//!   Elasticsearch sink's compression.
//! * **opentelemetry-proto** (the OpenTelemetry Rust project's own crate, generated from the official
//!   protos): the OTLP logs messages for the `otlp` source and sink, with its serde mapping of
//!   OTLP/JSON (hex trace ids, 64-bit integers as strings, camelCase), which is easy to get subtly
//!   wrong by hand, and the generated gRPC `LogsService`. Version 0.30 is the last on prost 0.13 and
//!   tonic 0.13 (the prost this crate already uses, and tonic on the same axum 0.8 and hyper 1).
//! * **tonic** (server, gzip): OTLP/gRPC, the transport OpenTelemetry SDKs and collectors default to;
//!   HTTP/2 framing, trailers and status codes are not worth writing by hand.
//! * The syslog parser is our own (`source::syslog`): `syslog_loose` accepts anything and guesses the
//!   format per message, where Promtail drops what go-syslog refuses; its reasons are in that module.

pub mod agent;
pub mod buffer;
pub mod config;
pub mod delivery;
pub mod descriptors;
pub mod entry;
pub mod goregex;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod positions;
pub mod relabel;
pub mod sd_notify;
pub mod server;
pub mod sink;
pub mod source;
pub mod stage;
pub mod targets;
