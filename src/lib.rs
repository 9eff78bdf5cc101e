//! logferry: a host-level log shipping agent, drop-in for Promtail.
//!
//! The architecture and the contracts are in the team's DESIGN.md; the modules mirror its picture:
//! sources ([`source`]) read targets and run [`relabel`] and the [`stage`] pipeline on their own task,
//! the [`delivery::Router`] hands each [`entry::Batch`] to every sink, and a batch's position is
//! committed ([`delivery`], [`positions`]) only once every sink holds it.
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
