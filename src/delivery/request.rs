//! A request as a sink sends it, and what is done once it is safe.
//!
//! A sink's batcher encodes a full batch once into the exact bytes its receiver takes (a snappy
//! protobuf push for Loki, an NDJSON `_bulk` body for Elasticsearch): a [`Request`]. It travels as an
//! [`Outgoing`] through the disk buffer (stored as it is, read back without decoding) to the sender,
//! which sends those bytes. The [`Done`] it carries is finished when the request is safe at the next
//! step: the sources' shares ([`Done::Parts`]) when it is durable in the disk buffer (or, with a
//! memory buffer, accepted by the receiver), the buffer's record ([`Done::Record`]) when the receiver
//! accepted it.

use std::sync::Arc;

use bytes::Bytes;

use super::{AckToken, PartAck};
use crate::entry::Batch;

/// One request body, exactly as it is sent, and what sending and counting it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub body: Bytes,
    /// Where it goes besides the URL: the Loki tenant (`X-Scope-OrgID`), empty for none.
    pub dest: Arc<str>,
    /// Entries (documents) it holds.
    pub entries: u32,
    /// Their size as the sink counts it (`promtail_sent_bytes_total`): lines and metadata for Loki,
    /// NDJSON bytes for Elasticsearch.
    pub bytes: u64,
}

/// What travels from the batcher to the sender.
#[derive(Debug, Clone)]
pub enum Payload {
    Request(Request),
    /// Entries not encoded yet: a buffer record written by a release that stored entries, read
    /// after an upgrade. The sender encodes them as the batcher would.
    Entries(Arc<Batch>),
}

/// What to do once a payload is safe.
#[derive(Debug)]
pub enum Done {
    /// The shares of the source batches whose entries it holds.
    Parts(Vec<Arc<PartAck>>),
    /// The disk buffer record it was read from.
    Record(AckToken),
}

impl Done {
    pub fn finish(self) {
        match self {
            Done::Parts(parts) => parts.iter().for_each(|p| p.done()),
            Done::Record(token) => token.ack(),
        }
    }
}

/// A payload on its way, and what its arrival finishes.
#[derive(Debug)]
pub struct Outgoing {
    pub payload: Payload,
    pub done: Done,
}

impl Outgoing {
    /// The entries (documents) it holds.
    pub fn entries(&self) -> usize {
        match &self.payload {
            Payload::Request(r) => r.entries as usize,
            Payload::Entries(b) => b.entries.len(),
        }
    }
}
