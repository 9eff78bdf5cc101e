//! Step 2's "in order": a source's checkpoints are committed in the order its batches were sent.
//! Sinks finish batches out of order (tenants, routes, batches with nothing left to send), and a
//! position must never pass a batch that is not safe yet, so each file or cursor has a queue of its
//! batches in flight, and a batch's checkpoint reaches the positions store only once it and every
//! earlier batch of the same source are safe.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::positions::{Checkpoint, FileId, Positions};

/// The positions store and, in front of it, the batches in flight. Clones share both.
#[derive(Clone)]
pub struct Commits {
    positions: Positions,
    in_flight: Arc<Mutex<InFlightQueues>>,
}

#[derive(Debug, Default)]
struct InFlightQueues {
    /// Per file or cursor, its batches in the order they were sent.
    queues: HashMap<OrderKey, InFlight>,
    generations: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OrderKey {
    File(FileId),
    Cursor(String),
}

impl OrderKey {
    fn of(checkpoint: &Checkpoint) -> Self {
        match checkpoint {
            Checkpoint::File { id, .. } => OrderKey::File(*id),
            Checkpoint::Cursor { key, .. } => OrderKey::Cursor(key.clone()),
        }
    }
}

/// One source's batches on their way through the sinks: `slots[i]` is batch `first + i`.
#[derive(Debug, Default)]
struct InFlight {
    /// Tells this queue from a later one for the same key (a queue is removed once empty).
    generation: u64,
    first: u64,
    slots: VecDeque<(Checkpoint, bool)>,
}

/// The batches in flight at one moment, to wait for (see [`Commits::settle`]).
#[derive(Debug)]
pub struct InFlightMarks(Vec<(OrderKey, u64, u64)>);

/// A batch's place in its source's order, from [`Commits::begin`].
#[derive(Debug)]
pub struct Ticket {
    key: OrderKey,
    /// The queue it was taken from (see [`Commits::restart`]).
    generation: u64,
    seq: u64,
}

impl Commits {
    pub fn new(positions: Positions) -> Self {
        Commits {
            positions,
            in_flight: Arc::default(),
        }
    }

    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// A batch with `checkpoint` is on its way to the sinks. Its checkpoint is committed by
    /// [`Commits::complete`], but only once every earlier batch of the same file or cursor is
    /// complete too.
    pub fn begin(&self, checkpoint: Checkpoint) -> Ticket {
        let key = OrderKey::of(&checkpoint);
        let mut st = self.in_flight.lock().unwrap();
        st.generations += 1;
        let generation = st.generations;
        let queue = st.queues.entry(key.clone()).or_insert_with(|| InFlight {
            generation,
            ..InFlight::default()
        });
        let seq = queue.first + queue.slots.len() as u64;
        queue.slots.push_back((checkpoint, false));
        Ticket {
            key,
            generation: queue.generation,
            seq,
        }
    }

    /// A source starts reading cursor `key` again from its committed position (a job started anew
    /// by a reload): what an earlier reader of it left in flight no longer holds its commits back.
    /// Those batches are read again by the new reader, so nothing is skipped; without this, one the
    /// earlier reader dropped unsent (it was stopped while the router waited) would block every
    /// later commit of the key until the agent restarts.
    pub fn restart(&self, key: &str) {
        let mut st = self.in_flight.lock().unwrap();
        st.queues.remove(&OrderKey::Cursor(key.to_owned()));
    }

    /// As [`Commits::restart`], for a file a tailer starts reading again from its committed
    /// position.
    pub fn restart_file(&self, id: FileId) {
        let mut st = self.in_flight.lock().unwrap();
        st.queues.remove(&OrderKey::File(id));
    }

    /// The batch of `ticket` is safe in every sink: commit the newest checkpoint of its source whose
    /// batch and all earlier ones are.
    pub fn complete(&self, ticket: Ticket) {
        let mut st = self.in_flight.lock().unwrap();
        let Some(queue) = st
            .queues
            .get_mut(&ticket.key)
            .filter(|q| q.generation == ticket.generation)
        else {
            // The key was restarted since (see `restart`): its new reader commits it.
            return;
        };
        let Some(slot) = ticket
            .seq
            .checked_sub(queue.first)
            .and_then(|i| queue.slots.get_mut(i as usize))
        else {
            return;
        };
        slot.1 = true;
        let mut ready = None;
        while queue.slots.front().is_some_and(|s| s.1) {
            ready = queue.slots.pop_front().map(|s| s.0);
            queue.first += 1;
        }
        if queue.slots.is_empty() {
            st.queues.remove(&ticket.key);
        }
        // Committed under the queues' lock, so that two sinks completing batches of one source at
        // once commit them in order (the store takes the offset it is given, newest or not). The
        // store never takes this lock: no deadlock.
        if let Some(c) = ready {
            self.positions.commit(&c);
        }
    }

    /// A batch that needs no sink (nothing left to send): commit in order with the others.
    pub fn commit_in_order(&self, checkpoint: Checkpoint) {
        let ticket = self.begin(checkpoint);
        self.complete(ticket);
    }

    /// The batches on their way now, to wait for with [`Commits::settle`].
    pub fn in_flight_marks(&self) -> InFlightMarks {
        let st = self.in_flight.lock().unwrap();
        let marks = st.queues.iter().map(|(key, q)| {
            let end = q.first + q.slots.len() as u64;
            (key.clone(), q.generation, end)
        });
        InFlightMarks(marks.collect())
    }

    /// Whether every batch of `marks` is complete (its checkpoint committed, or passed by a later one).
    pub fn settled(&self, marks: &InFlightMarks) -> bool {
        let st = self.in_flight.lock().unwrap();
        marks.0.iter().all(|(key, generation, end)| {
            st.queues
                .get(key)
                .map_or(true, |q| q.generation != *generation || q.first >= *end)
        })
    }

    /// Wait until the batches on their way now are safe in every sink, so that a source started next
    /// resumes after them (a job restarted by a reload neither skips nor repeats a line). False if
    /// `timeout` passed first.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let marks = self.in_flight_marks();
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.settled(&marks) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(key: &str, v: &str) -> Checkpoint {
        Checkpoint::Cursor {
            key: key.into(),
            value: v.into(),
        }
    }

    #[test]
    fn a_restarted_key_is_not_held_back_by_what_its_earlier_reader_dropped() {
        let positions = Positions::in_memory();
        let commits = Commits::new(positions.clone());
        let dropped = commits.begin(cursor("k", "1"));
        let later = commits.begin(cursor("k", "2"));
        commits.complete(later);
        assert_eq!(
            positions.cursor("k"),
            None,
            "held back by the batch never completed"
        );
        // A new reader starts from the committed cursor (none) and reads both batches again.
        commits.restart("k");
        let again = commits.begin(cursor("k", "2"));
        commits.complete(again);
        assert_eq!(positions.cursor("k").as_deref(), Some("2"));
        // The earlier reader's batch completing late changes nothing.
        commits.complete(dropped);
        assert_eq!(positions.cursor("k").as_deref(), Some("2"));
        let next = commits.begin(cursor("k", "3"));
        commits.complete(next);
        assert_eq!(positions.cursor("k").as_deref(), Some("3"));
    }

    #[test]
    fn checkpoints_commit_in_the_order_their_batches_were_sent() {
        let c = Commits::new(Positions::in_memory());
        let p = c.positions().clone();
        let t1 = c.begin(cursor("cursor-a", "1"));
        let t2 = c.begin(cursor("cursor-a", "2"));
        let other = c.begin(cursor("cursor-b", "9"));
        c.complete(t2);
        c.commit_in_order(cursor("cursor-a", "3"));
        assert_eq!(p.cursor("cursor-a"), None, "batch 1 is not safe yet");
        c.complete(other);
        assert_eq!(
            p.cursor("cursor-b").as_deref(),
            Some("9"),
            "sources are independent"
        );
        c.complete(t1);
        assert_eq!(p.cursor("cursor-a").as_deref(), Some("3"));
        assert!(c.in_flight.lock().unwrap().queues.is_empty());
    }

    #[test]
    fn settling_waits_for_the_batches_in_flight_then_not_for_later_ones() {
        let c = Commits::new(Positions::in_memory());
        let a1 = c.begin(cursor("cursor-a", "1"));
        let b1 = c.begin(cursor("cursor-b", "1"));
        let marks = c.in_flight_marks();
        let a2 = c.begin(cursor("cursor-a", "2"));
        c.complete(a1);
        assert!(!c.settled(&marks), "b1 is still on its way");
        c.complete(b1);
        assert!(c.settled(&marks), "a2 came later: not waited for");
        c.complete(a2);
        // A queue emptied and begun again for the same key is a later one.
        let b2 = c.begin(cursor("cursor-b", "2"));
        let marks = c.in_flight_marks();
        c.complete(b2);
        let _b3 = c.begin(cursor("cursor-b", "3"));
        assert!(c.settled(&marks));
    }
}
