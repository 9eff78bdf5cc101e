//! The delivery contract (DESIGN.md, "Delivery contract (at least once)") and the pieces that carry a
//! batch's acknowledgement from the sinks back to the positions store. Each step of the contract, and
//! where the code keeps it:
//!
//! 1. **A source reads, stages run, the router appends the batch to every sink's buffer.** The sources
//!    (`source::file`, `source::docker`, `source::journal`) run the pipeline on their task
//!    ([`crate::stage::Pipeline`]) and hand each batch, with its [`Checkpoint`](crate::positions::Checkpoint),
//!    to [`Router::send`], which hands the one shared batch to every sink (its routing selector
//!    permitting) and arms the batch's [`AckToken`] with the number of sinks that must hold it.
//! 2. **When every buffer has the batch durably, the positions are acknowledged; the store persists
//!    acknowledged positions only.** A disk buffer's writer (`buffer::writer`) acks its [`Delivery`]
//!    once the record is fsynced per policy; a sink without one (`buffer: {type: memory}`, stdout) acks
//!    once the receiver accepted the entries, a batch spread over several requests through
//!    [`PartAck`]. The token's last ack commits the checkpoint, in the order the source sent its
//!    batches ([`Commits::begin`] / [`Commits::complete`]), to the positions store, which writes
//!    atomically ([`Positions::save`](crate::positions::Positions::save)).
//! 3. **A sink deletes buffered data only after the receiver accepted it.** The buffer's reader hands
//!    each record to the sink with a record token ([`AckToken::record`]); a segment is deleted once
//!    every record in it was acked (`buffer::log`).
//! 4. **Retriable failures back off and retry forever while the buffer has room; permanent ones go to
//!    the dead-letter file, counted and logged once per kind.** `sink::http::backoff`, the retry
//!    loops of `sink::loki::sink` and `sink::elasticsearch::sink`, and `buffer::deadletter`. A Loki
//!    push refused with 400 is resent in halves so only the refused entries are dead-lettered.
//! 5. **A full buffer applies backpressure unless the sink drops, which is counted.** The buffer's
//!    writer waits for room (`when_full: block`), so [`Router::send`] waits and the sources pause with
//!    their data still in files, journal or container logs; `drop_newest` counts what it drops.
//! 6. **After a crash every line arrives; duplicates only for the batch in flight.** Nothing commits a
//!    position before step 2, a token dropped without all its acks commits nothing (the lines are read
//!    again), and a buffer reopened after a crash sends what was durable and not yet accepted.

mod ack;
mod order;
mod part_ack;
mod router;

pub use ack::{AckToken, Delivery};
pub use order::{Commits, InFlightMarks, Ticket};
pub use part_ack::PartAck;
pub use router::{Route, Router};
