//! The disk buffer of a sink (issue 3; being built): a directory of append-only [`segment`] files with
//! CRC32C-checked records and a ledger of what the receiver accepted. Not wired into the sinks yet.

pub mod codec;
pub mod log;
pub mod segment;
