//! The delivery contract (DESIGN.md, "Delivery contract (at least once)") and the pieces that carry a
//! batch's acknowledgement from the sinks back to the positions store. Each step of the contract, and
//! where the code keeps it:
//!
//! 1. **A source reads, stages run, the router appends the batch to every sink's buffer.** The sources
//!    (`source::file`, `source::docker`, `source::journal`) run the pipeline on their task
//!    ([`crate::stage::Pipeline`]) and hand each batch, with its [`Checkpoint`](crate::positions::Checkpoint),
//!    to [`Router::send`], which hands the one shared batch to every sink (its routing selector
//!    permitting) and arms the batch's [`AckToken`] with the number of sinks that must hold it. A
//!    sink's batcher (`sink::core::Batcher`) encodes its entries into requests, once, each request
//!    holding a [`PartAck`] share of every batch it draws from, and appends each request to the
//!    buffer as an [`Outgoing`].
//! 2. **When every buffer has the batch durably, the positions are acknowledged; the store persists
//!    acknowledged positions only.** A disk buffer's writer (`buffer::writer`) finishes a request's
//!    [`Done::Parts`] once its record is fsynced per policy; with `buffer: {type: memory}` the sender
//!    finishes them once the receiver accepted the request; stdout acks each [`Delivery`] once
//!    printed. A batch's last share acks its token, whose last ack commits the checkpoint, in the
//!    order the source sent its batches ([`Commits::begin`] / [`Commits::complete`]), to the
//!    positions store, which writes atomically ([`Positions::save`](crate::positions::Positions::save)).
//! 3. **A sink deletes buffered data only after the receiver accepted it.** The buffer's reader hands
//!    each record to the sender with a record token ([`Done::Record`], [`AckToken::record`]); a
//!    segment is deleted once every record in it was acked (`buffer::log`).
//! 4. **Retriable failures back off and retry forever while the buffer has room; permanent ones go to
//!    the dead-letter file, counted and logged once per kind.** `sink::core::Sender` (with
//!    `sink::http::backoff`) and `buffer::deadletter`, for every HTTP sink; each sink's protocol says
//!    which answer is which. A Loki push refused with 400 is resent in halves so only the refused
//!    entries are dead-lettered; an Elasticsearch answer item by item resends only the failed items.
//! 5. **A full buffer applies backpressure unless the sink drops, which is counted.** The buffer's
//!    writer waits for room (`when_full: block`), so the batcher, then [`Router::send`] wait and the
//!    sources pause with their data still in files, journal or container logs; `drop_newest` counts
//!    what it drops.
//! 6. **After a crash every line arrives; duplicates only for the batch in flight.** Nothing commits a
//!    position before step 2, a token dropped without all its acks commits nothing (the lines are read
//!    again), and a buffer reopened after a crash sends what was durable and not yet accepted.

mod ack;
mod order;
mod part_ack;
mod request;
mod router;

pub use ack::{AckToken, Delivery, Notify, Settle};
pub use order::{Commits, InFlightMarks, Ticket};
pub use part_ack::PartAck;
pub use request::{Done, Outgoing, Payload, Request};
pub use router::{Route, Router};
