//! GELF chunking over UDP ([Graylog's spec](https://go2docs.graylog.org/current/getting_in_log_data/gelf.html#GELFviaUDP)):
//! a message larger than one datagram is sent in up to 128 chunks, each `0x1e 0x0f`, an 8-byte message
//! id, the chunk's sequence number and the chunk count, then its part of the (usually compressed)
//! payload.
//!
//! Chunks of different messages may interleave (Promtail's reader refuses that; Graylog does not), so
//! they are reassembled per message id, with bounded memory: at most [`MAX_PENDING`] messages and
//! [`MAX_PENDING_BYTES`] in all are held, the oldest given up first when either would be passed, and a
//! message not complete [`TIMEOUT`] after its first chunk (Graylog's 5 s) is given up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const MAGIC: [u8; 2] = [0x1e, 0x0f];
const HEADER: usize = 12;
pub const MAX_CHUNKS: u8 = 128;
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_PENDING: usize = 1024;
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// What a datagram was.
#[derive(Debug, PartialEq, Eq)]
pub enum Datagram {
    /// A whole message (not chunked, or the last missing chunk of one).
    Complete(Vec<u8>),
    /// A chunk kept until its message is complete.
    Pending,
    /// A chunk header that breaks the rules (count 0 or over 128, sequence past the count, a count
    /// that differs from the message's other chunks); dropped.
    Invalid(&'static str),
}

struct Partial {
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
    first: Instant,
}

#[derive(Default)]
pub struct Reassembler {
    pending: HashMap<[u8; 8], Partial>,
    bytes: usize,
}

impl Reassembler {
    /// Messages waiting for chunks.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Take one datagram received at `now`. `gave_up` counts the messages given up to make room.
    pub fn push(&mut self, datagram: &[u8], now: Instant, gave_up: &mut u64) -> Datagram {
        if datagram.len() < 2 || datagram[..2] != MAGIC {
            return Datagram::Complete(datagram.to_vec());
        }
        if datagram.len() < HEADER {
            return Datagram::Invalid("a GELF chunk shorter than its header");
        }
        let id: [u8; 8] = datagram[2..10].try_into().expect("8 bytes");
        let (seq, count) = (datagram[10], datagram[11]);
        if count == 0 || count > MAX_CHUNKS {
            return Datagram::Invalid("a GELF chunk count of 0 or over 128");
        }
        if seq >= count {
            return Datagram::Invalid("a GELF chunk sequence number past the chunk count");
        }
        let data = &datagram[HEADER..];
        if count == 1 {
            return Datagram::Complete(data.to_vec());
        }
        while self.pending.len() >= MAX_PENDING || self.bytes + data.len() > MAX_PENDING_BYTES {
            if !self.evict_oldest() {
                break;
            }
            *gave_up += 1;
        }
        let partial = self.pending.entry(id).or_insert_with(|| Partial {
            chunks: vec![None; usize::from(count)],
            received: 0,
            bytes: 0,
            first: now,
        });
        if partial.chunks.len() != usize::from(count) {
            return Datagram::Invalid("GELF chunks of one message with different chunk counts");
        }
        let slot = &mut partial.chunks[usize::from(seq)];
        if slot.is_none() {
            *slot = Some(data.to_vec());
            partial.received += 1;
            partial.bytes += data.len();
            self.bytes += data.len();
        }
        if partial.received < partial.chunks.len() {
            return Datagram::Pending;
        }
        let partial = self.pending.remove(&id).expect("present");
        self.bytes -= partial.bytes;
        let mut whole = Vec::with_capacity(partial.bytes);
        for chunk in partial.chunks.into_iter().flatten() {
            whole.extend_from_slice(&chunk);
        }
        Datagram::Complete(whole)
    }

    /// Give up the messages still incomplete [`TIMEOUT`] after their first chunk; how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let before = self.pending.len();
        let bytes = &mut self.bytes;
        self.pending.retain(|_, p| {
            let keep = now.saturating_duration_since(p.first) < TIMEOUT;
            if !keep {
                *bytes -= p.bytes;
            }
            keep
        });
        (before - self.pending.len()) as u64
    }

    fn evict_oldest(&mut self) -> bool {
        let Some(id) = self
            .pending
            .iter()
            .min_by_key(|(_, p)| p.first)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(p) = self.pending.remove(&id) {
            self.bytes -= p.bytes;
        }
        true
    }
}

/// The chunks of `payload` as a GELF sender makes them (for tests): `size` payload bytes each.
pub fn chunk(id: [u8; 8], payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    let parts: Vec<&[u8]> = payload.chunks(size).collect();
    let count = parts.len() as u8;
    parts
        .iter()
        .enumerate()
        .map(|(seq, part)| {
            let mut d = MAGIC.to_vec();
            d.extend_from_slice(&id);
            d.push(seq as u8);
            d.push(count);
            d.extend_from_slice(part);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_and_reordered_chunks_are_reassembled() {
        let mut r = Reassembler::default();
        let now = Instant::now();
        let mut gave_up = 0;
        let a = chunk([1; 8], b"aaaaaaaaaa-first message", 4);
        let b = chunk([2; 8], b"bbbbbbbb-second", 3);
        let mut got = Vec::new();
        // b's chunks in reverse, interleaved with a's, one of a's twice.
        let mut order: Vec<&Vec<u8>> = Vec::new();
        for i in 0..a.len().max(b.len()) {
            if let Some(c) = a.get(i) {
                order.push(c);
            }
            if let Some(c) = b.get(b.len().saturating_sub(i + 1)).filter(|_| i < b.len()) {
                order.push(c);
            }
        }
        order.insert(1, &a[0]);
        for d in order {
            if let Datagram::Complete(m) = r.push(d, now, &mut gave_up) {
                got.push(String::from_utf8(m).unwrap());
            }
        }
        got.sort();
        assert_eq!(got, ["aaaaaaaaaa-first message", "bbbbbbbb-second"]);
        assert_eq!((r.pending(), r.bytes, gave_up), (0, 0, 0));
        // Not chunked, and a single chunk.
        assert_eq!(
            r.push(b"{}", now, &mut gave_up),
            Datagram::Complete(b"{}".to_vec())
        );
        let single = chunk([3; 8], b"{}", 10);
        assert_eq!(
            r.push(&single[0], now, &mut gave_up),
            Datagram::Complete(b"{}".to_vec())
        );
    }

    #[test]
    fn bad_headers_are_refused_and_incomplete_messages_expire_or_are_evicted() {
        let mut r = Reassembler::default();
        let now = Instant::now();
        let mut gave_up = 0;
        let mut bad = chunk([1; 8], b"abcdef", 2);
        bad[0][11] = 0;
        assert!(matches!(
            r.push(&bad[0], now, &mut gave_up),
            Datagram::Invalid(_)
        ));
        bad[1][11] = 129;
        assert!(matches!(
            r.push(&bad[1], now, &mut gave_up),
            Datagram::Invalid(_)
        ));
        bad[2][10] = 3;
        assert!(matches!(
            r.push(&bad[2], now, &mut gave_up),
            Datagram::Invalid(_)
        ));
        assert!(matches!(
            r.push(&[0x1e, 0x0f, 1], now, &mut gave_up),
            Datagram::Invalid(_)
        ));

        let parts = chunk([9; 8], b"0123456789", 5);
        assert_eq!(r.push(&parts[0], now, &mut gave_up), Datagram::Pending);
        assert_eq!(r.expire(now + Duration::from_secs(4)), 0);
        assert_eq!(r.expire(now + TIMEOUT), 1);
        assert_eq!((r.pending(), r.bytes), (0, 0));
        // The late chunk starts a new message that never completes.
        assert_eq!(r.push(&parts[1], now, &mut gave_up), Datagram::Pending);

        for i in 0..MAX_PENDING + 10 {
            let mut id = [0u8; 8];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let parts = chunk(id, b"xxxx", 2);
            r.push(
                &parts[0],
                now + Duration::from_millis(i as u64),
                &mut gave_up,
            );
        }
        assert_eq!(r.pending(), MAX_PENDING);
        assert_eq!(gave_up, 11);
    }
}
