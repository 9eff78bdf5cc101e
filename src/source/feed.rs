//! The one piece every source feeds: what it read goes through here, as `(entries, origins)`, and
//! comes out as batches handed to the [`Router`] with what they settle.
//!
//! A source only reads (a file, a container's log stream, the journal, a socket). The feed does the
//! rest, the same way for all of them:
//! - runs the job's pipeline on the source's task, and flushes what a stage releases on its deadline
//!   (`multiline`'s `max_wait_time`, `limit`'s next release);
//! - paces: while a `limit` stage without `drop` holds entries back, the source reads nothing
//!   ([`Feed::next`] takes no item, [`Feed::paced_until`] tells a source with its own loop how long
//!   to wait);
//! - asks the source's [`Ledger`] what the batch settles: never a checkpoint past a line a stage still
//!   holds, since a crash would lose that line;
//! - sends a batch when it has entries or moves the checkpoint (the router commits an empty batch's
//!   checkpoint in order, after the batches of the same source still in the sinks);
//! - stops: once a send failed (the router closed, or the agent stopped while the sinks were full)
//!   the feed is closed and sends nothing more, so no later checkpoint can pass the lost batch.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::delivery::{Notify, Router, Settle};
use crate::entry::Entry;
use prometheus_client::metrics::counter::Counter;

use super::LineLimit;
use crate::metrics::{Escaped, JobReasonLabel, Metrics};
use crate::positions::Checkpoint;
use crate::stage::Pipeline;

/// A source's side of the feed: how far what was sent lets its position (or its waiting clients)
/// settle.
pub trait Ledger: Send {
    /// What a batch sent now settles once every sink holds it, given the oldest origin a stage
    /// still holds (`held`, in the source's own numbering of its entries).
    fn settle(&mut self, held: Option<u64>) -> Option<Settle>;

    /// Entries out of the stages, before they are sent: a source may drop some (Docker drops entries
    /// left without labels, with its own metric).
    fn after_stages(&mut self, _entries: &mut Vec<Entry>) {}
}

/// A source without positions (stdin, syslog, gelf): its batches settle nothing.
pub struct NoLedger;

impl Ledger for NoLedger {
    fn settle(&mut self, _held: Option<u64>) -> Option<Settle> {
        None
    }
}

/// The ledger of a source read in chunks that each end at a cursor (the journal): a batch settles the
/// furthest cursor whose chunk has wholly left the stages.
pub struct Cursors {
    key: String,
    /// The origin the next entry gets: entries are numbered in reading order.
    next_origin: u64,
    /// (origin after a chunk's last entry, that chunk's cursor), oldest first: how far a checkpoint
    /// may go while the stages hold entries back.
    read_through: VecDeque<(u64, String)>,
}

impl Cursors {
    /// Cursors committed under positions key `key`.
    pub fn new(key: String) -> Self {
        Cursors {
            key,
            next_origin: 0,
            read_through: VecDeque::new(),
        }
    }

    /// A chunk of `entries` entries was read, up to `cursor`. Returns their origins, to feed with
    /// them (none when there are no stages that could hold one).
    pub fn read(&mut self, entries: usize, cursor: Option<String>, numbered: bool) -> Vec<u64> {
        let first = self.next_origin;
        self.next_origin += entries as u64;
        if let Some(c) = cursor {
            self.read_through.push_back((self.next_origin, c));
        }
        if numbered {
            (first..self.next_origin).collect()
        } else {
            Vec::new()
        }
    }
}

impl Ledger for Cursors {
    fn settle(&mut self, held: Option<u64>) -> Option<Settle> {
        let value = releasable(&mut self.read_through, held)?;
        Some(Settle::Position(Checkpoint::Cursor {
            key: self.key.clone(),
            value,
        }))
    }
}

/// The furthest cursor whose entries have all left the pipeline, given the oldest origin a stage still
/// holds; the cursors up to it are taken off `read_through`.
fn releasable(read_through: &mut VecDeque<(u64, String)>, held: Option<u64>) -> Option<String> {
    let limit = held.unwrap_or(u64::MAX);
    let mut cursor = None;
    while let Some((through, _)) = read_through.front() {
        if *through > limit {
            break;
        }
        cursor = read_through.pop_front().map(|(_, c)| c);
    }
    cursor
}

/// The ledger of a receiving source (`loki_push_api`): each client waits for its answer until every
/// entry it pushed is safe in every sink; `true` then, `false` if a batch holding some of them was
/// dropped (the client pushes again: a duplicate at worst, never a loss).
///
/// Answers are given in batch order: a sink may finish a batch before an earlier one (tenants are
/// batched apart), and a request's entries may span batches (a stage held some), so a request is
/// answered once every batch up to the one that settled it is finished, and only `true` if none of
/// the batches since its first entry could have left was dropped.
pub struct Answers {
    next_origin: u64,
    /// Requests with entries still in the stages: the origin after their last entry, the first batch
    /// their entries can be in, and their answer.
    waiting: VecDeque<(u64, u64, oneshot::Sender<bool>)>,
    next_batch: u64,
    order: Arc<Mutex<InOrder>>,
}

/// A request's answer once its batch is finished: the first batch its entries can be in, and where
/// to answer.
type Due = (u64, oneshot::Sender<bool>);

/// Batches finished out of order, held until the earlier ones are finished.
#[derive(Default)]
struct InOrder {
    /// The first batch not finished yet.
    next: u64,
    /// Finished batches from `next` on: whether safe, and the answers (first batch, answer) they settle.
    finished: BTreeMap<u64, (bool, Vec<Due>)>,
    /// The last batch, in order, that was dropped.
    last_dropped: Option<u64>,
}

impl InOrder {
    fn finish(&mut self, batch: u64, safe: bool, answers: Vec<Due>) {
        self.finished.insert(batch, (safe, answers));
        while let Some((safe, answers)) = self.finished.remove(&self.next) {
            if !safe {
                self.last_dropped = Some(self.next);
            }
            self.next += 1;
            for (first, answer) in answers {
                let all_safe = self.last_dropped.map_or(true, |d| d < first);
                // A client that went away no longer waits for its answer.
                let _ = answer.send(all_safe);
            }
        }
    }
}

impl Answers {
    pub fn new() -> Self {
        Answers {
            next_origin: 0,
            waiting: VecDeque::new(),
            next_batch: 0,
            order: Arc::default(),
        }
    }

    /// A request of `entries` entries arrived, to be answered on `answer`. Returns the entries'
    /// origins, to feed with them.
    pub fn pushed(&mut self, entries: usize, answer: oneshot::Sender<bool>) -> Vec<u64> {
        let first = self.next_origin;
        self.next_origin += entries as u64;
        self.waiting
            .push_back((self.next_origin, self.next_batch, answer));
        (first..self.next_origin).collect()
    }
}

impl Default for Answers {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger for Answers {
    fn settle(&mut self, held: Option<u64>) -> Option<Settle> {
        if self.waiting.is_empty() {
            // Then nothing is in the stages either: the batch has no entries.
            return None;
        }
        let limit = held.unwrap_or(u64::MAX);
        let mut due = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|(through, _, _)| *through <= limit)
        {
            let (_, first, answer) = self.waiting.pop_front().expect("checked");
            due.push((first, answer));
        }
        let batch = self.next_batch;
        self.next_batch += 1;
        let order = self.order.clone();
        Some(Settle::Notify(Notify::new(move |safe| {
            order.lock().unwrap().finish(batch, safe, due);
        })))
    }
}

impl Feed<NoLedger> {
    /// A receiving source's whole life on its task: feed the batches its listeners send on `rx`
    /// until `stop`, then those they had sent before they stopped, then what the stages hold.
    pub async fn pump(
        mut self,
        mut rx: mpsc::Receiver<Vec<Entry>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut open = true;
        while open {
            open = match self.next(&mut rx, &mut stop).await {
                Next::Item(entries) => self.feed(entries, &[]).await,
                Next::Tick => self.tick().await,
                Next::Stop => break,
            };
        }
        while open {
            match rx.recv().await {
                Some(entries) => open = self.feed(entries, &[]).await,
                None => break,
            }
        }
        drop(rx);
        self.finish().await;
    }
}

/// What [`Feed::next`] found to do.
pub enum Next<T> {
    /// The source read something.
    Item(T),
    /// A stage's deadline passed: call [`Feed::tick`].
    Tick,
    /// The agent stops, or the reader is gone.
    Stop,
}

pub struct Feed<L> {
    pipeline: Pipeline,
    /// `limits_config.max_line_size`, applied to what leaves the stages.
    long_lines: Option<LongLines>,
    router: Router,
    ledger: L,
    /// While the sinks are full the router waits; a stopping agent does not (what was not handed
    /// over is read again after the restart).
    stop: Option<watch::Receiver<bool>>,
    /// The last checkpoint sent: a batch with no entries is sent only to move it.
    last: Option<Checkpoint>,
    closed: bool,
}

impl<L: Ledger> Feed<L> {
    pub fn new(pipeline: Pipeline, router: Router, ledger: L) -> Self {
        Feed {
            pipeline,
            long_lines: None,
            router,
            ledger,
            stop: None,
            last: None,
            closed: false,
        }
    }

    /// Cut (or drop, without `truncate`) lines longer than a configured `max_line_size` once they
    /// leave the stages, counted in `logferry_lines_oversized`, as Promtail's client does for every
    /// source. (The file and Docker sources also cut while reading, to bound what they hold.)
    pub fn limit_lines(mut self, limit: LineLimit, job: &str, metrics: &Metrics) -> Self {
        if limit.configured {
            let counter = |reason: &str| {
                metrics
                    .lines_oversized
                    .get_or_create(&JobReasonLabel {
                        job: Escaped(job.to_string()),
                        reason: reason.into(),
                    })
                    .clone()
            };
            self.long_lines = Some(LongLines {
                max: limit.max,
                truncate: limit.truncate,
                truncated: counter("truncated"),
                dropped: counter("dropped"),
            });
        }
        self
    }

    /// Give up a send the sinks keep waiting for once `stop` turns true.
    pub fn stop_on(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn ledger(&mut self) -> &mut L {
        &mut self.ledger
    }

    /// Whether a stage holds entries.
    #[cfg(test)]
    fn holds(&self) -> bool {
        self.pipeline.held_origin().is_some()
    }

    pub fn has_stages(&self) -> bool {
        !self.pipeline.is_empty()
    }

    #[cfg(test)]
    fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next time a stage has something to release: call [`Feed::tick`] then.
    pub fn deadline(&self) -> Option<Instant> {
        self.pipeline.next_deadline()
    }

    /// While a stage paces entries (`limit` without `drop`): when it releases the next ones. The
    /// source reads nothing until then.
    pub fn paced_until(&self) -> Option<Instant> {
        self.pipeline
            .holds_back()
            .then(|| self.pipeline.next_deadline())
            .flatten()
    }

    /// Run what the source read through the stages (`origins[i]`: where entry i starts, in the
    /// source's numbering; empty when its ledger has no use for it), with what a deadline released,
    /// and send it. False once the feed is closed.
    pub async fn feed(&mut self, mut entries: Vec<Entry>, origins: &[u64]) -> bool {
        self.pipeline.run(&mut entries, origins);
        if self.deadline().is_some_and(|d| d <= Instant::now()) {
            self.pipeline.flush(Instant::now(), false, &mut entries);
        }
        self.send(entries).await
    }

    /// A stage's deadline passed: send what it released. False once the feed is closed.
    pub async fn tick(&mut self) -> bool {
        let mut entries = Vec::new();
        self.pipeline.flush(Instant::now(), false, &mut entries);
        self.send(entries).await
    }

    /// Send everything the stages hold (the source stops, or its target ended). False once the feed
    /// is closed.
    pub async fn finish(&mut self) -> bool {
        let mut entries = Vec::new();
        self.pipeline.flush(Instant::now(), true, &mut entries);
        self.send(entries).await
    }

    /// Wait for what to do next: an item from `rx` (none is taken while a stage paces), a stage's
    /// deadline, or the stop.
    pub async fn next<T>(
        &mut self,
        rx: &mut mpsc::Receiver<T>,
        stop: &mut watch::Receiver<bool>,
    ) -> Next<T> {
        if *stop.borrow() {
            return Next::Stop;
        }
        let paced = self.pipeline.holds_back();
        let deadline = self.deadline();
        tokio::select! {
            item = rx.recv(), if !paced => item.map_or(Next::Stop, Next::Item),
            _ = sleep_until(deadline) => Next::Tick,
            _ = stop.wait_for(|s| *s) => Next::Stop,
        }
    }

    async fn send(&mut self, mut entries: Vec<Entry>) -> bool {
        if self.closed {
            return false;
        }
        if let Some(l) = &self.long_lines {
            l.apply(&mut entries);
        }
        self.ledger.after_stages(&mut entries);
        let settle = self.ledger.settle(self.pipeline.held_origin());
        let settle = match settle {
            Some(Settle::Position(c)) if self.last.as_ref() == Some(&c) => None,
            Some(Settle::Position(c)) => {
                self.last = Some(c.clone());
                Some(Settle::Position(c))
            }
            other => other,
        };
        if entries.is_empty() && settle.is_none() {
            return true;
        }
        let sent = match &mut self.stop {
            None => self.router.deliver(entries, settle).await.is_ok(),
            Some(stop) => {
                let stop = stop.clone();
                until_stopped(self.router.deliver(entries, settle), stop)
                    .await
                    .is_some_and(|r| r.is_ok())
            }
        };
        self.closed = !sent;
        sent
    }
}

/// Lines over `max_line_size`, and their counters.
struct LongLines {
    max: usize,
    truncate: bool,
    truncated: Counter,
    dropped: Counter,
}

impl LongLines {
    fn apply(&self, entries: &mut Vec<Entry>) {
        if entries.iter().all(|e| e.line.len() <= self.max) {
            return;
        }
        if !self.truncate {
            let before = entries.len();
            entries.retain(|e| e.line.len() <= self.max);
            self.dropped.inc_by((before - entries.len()) as u64);
            return;
        }
        for e in entries.iter_mut().filter(|e| e.line.len() > self.max) {
            let mut at = self.max;
            while !e.line.is_char_boundary(at) {
                at -= 1;
            }
            e.line.truncate(at);
            self.truncated.inc();
        }
    }
}

/// Sleep until `deadline`; forever without one.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// `work`'s result, or `None` if `stop` turns true first. `work` is polled first, so what can be
/// done at once is done even when stopping.
async fn until_stopped<T>(
    work: impl Future<Output = T>,
    mut stop: watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        biased;
        done = work => Some(done),
        _ = stop.wait_for(|s| *s) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::delivery::Delivery;
    use crate::positions::Positions;
    use crate::stage::testing::{entry, pipeline};

    /// A ledger of line numbers: settles the cursor of the last line read that no stage holds.
    struct Lines {
        read: u64,
    }

    impl Ledger for Lines {
        fn settle(&mut self, held: Option<u64>) -> Option<Settle> {
            let through = held.map_or(self.read, |h| h.min(self.read));
            Some(Settle::Position(Checkpoint::Cursor {
                key: "k".into(),
                value: through.to_string(),
            }))
        }
    }

    fn feed(stages: &str) -> (Feed<Lines>, mpsc::Receiver<Delivery>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::open(&dir.path().join("p.yaml"), false).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let router = Router::new(vec![tx], positions);
        let feed = Feed::new(pipeline(stages).unwrap(), router, Lines { read: 0 });
        (feed, rx, dir)
    }

    fn lines(n: std::ops::Range<u64>) -> (Vec<Entry>, Vec<u64>) {
        let entries = n
            .clone()
            .map(|i| entry(&format!("line {i}"), &[("job", "t")]));
        (entries.collect(), n.collect())
    }

    fn at(line: u64) -> Option<Checkpoint> {
        Some(Checkpoint::Cursor {
            key: "k".into(),
            value: line.to_string(),
        })
    }

    #[tokio::test]
    async fn a_checkpoint_never_passes_a_line_a_stage_holds() {
        let multiline = "- multiline: {firstline: '^line [05]', max_wait_time: 1h}";
        let (mut feed, mut rx, _dir) = feed(multiline);
        let (entries, origins) = lines(0..3);
        feed.ledger().read = 3;
        assert!(feed.feed(entries, &origins).await);
        // Lines 0-2 are one block, still held: nothing reaches the sink, the checkpoint stays at 0.
        assert!(rx.try_recv().is_err());
        assert_eq!(feed.last, at(0));
        let (entries, origins) = lines(3..7);
        feed.ledger().read = 7;
        assert!(feed.feed(entries, &origins).await);
        // Line 5 starts a block: 0-4 go out as one entry, lines 5 and 6 are held.
        let d = rx.recv().await.unwrap();
        assert_eq!(d.batch.entries.len(), 1);
        assert!(d.batch.entries[0].line.starts_with("line 0\nline 1"));
        assert_eq!(feed.last, at(5));
        assert!(feed.holds());
        assert!(feed.finish().await);
        let d = rx.recv().await.unwrap();
        assert_eq!(d.batch.entries[0].line, "line 5\nline 6");
        assert_eq!(feed.last, at(7));
        assert!(!feed.holds());
    }

    #[tokio::test]
    async fn lines_over_max_line_size_are_cut_or_dropped_once_out_of_the_stages() {
        let metrics = Metrics::new();
        for (truncate, want) in [
            (true, vec!["0123456789", "short", "ééééé"]),
            (false, vec!["short"]),
        ] {
            let (router, mut sinks, _dir) = router(1);
            let mut feed = Feed::new(pipeline("[]").unwrap(), router, NoLedger).limit_lines(
                LineLimit::new(10, truncate),
                "j",
                &metrics,
            );
            let entries = ["0123456789abc", "short", "éééééé"]
                .map(|l| entry(l, &[("job", "t")]))
                .into();
            assert!(feed.feed(entries, &[]).await);
            let got: Vec<String> = sinks[0]
                .recv()
                .await
                .unwrap()
                .batch
                .entries
                .iter()
                .map(|e| e.line.clone())
                .collect();
            assert_eq!(got, want, "truncate: {truncate}");
        }
        let count = |reason: &str| {
            metrics
                .lines_oversized
                .get_or_create(&JobReasonLabel {
                    job: Escaped("j".into()),
                    reason: reason.into(),
                })
                .get()
        };
        assert_eq!((count("truncated"), count("dropped")), (2, 2));
        // Without a configured max_line_size nothing is cut here (the hard limit is the readers').
        let (router, mut sinks, _dir) = router(1);
        let mut feed = Feed::new(pipeline("[]").unwrap(), router, NoLedger).limit_lines(
            LineLimit::new(0, false),
            "j",
            &metrics,
        );
        assert!(feed.feed(vec![entry(&"x".repeat(100), &[])], &[]).await);
        assert_eq!(
            sinks[0].recv().await.unwrap().batch.entries[0].line.len(),
            100
        );
    }

    #[test]
    fn a_cursor_never_passes_an_entry_a_stage_holds() {
        // Chunks of origins 0..10 (cursor a), 10..20 (b), 20..25 (c).
        let mut q: VecDeque<(u64, String)> = [(10, "a"), (20, "b"), (25, "c")]
            .map(|(o, c)| (o, c.to_owned()))
            .into();
        // Entry 12 is held (a multiline block): only chunk a is wholly out.
        assert_eq!(releasable(&mut q, Some(12)).as_deref(), Some("a"));
        assert_eq!(releasable(&mut q, Some(12)), None);
        // Entry 20 held: chunk b (origins < 20) is out.
        assert_eq!(releasable(&mut q, Some(20)).as_deref(), Some("b"));
        // Nothing held: the newest cursor.
        assert_eq!(releasable(&mut q, None).as_deref(), Some("c"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn an_empty_batch_is_sent_only_to_move_the_checkpoint() {
        let (mut feed, mut rx, _dir) = feed("- drop: {expression: '.*'}");
        let (entries, origins) = lines(0..2);
        feed.ledger().read = 2;
        assert!(feed.feed(entries, &origins).await);
        // All dropped, the position moved: the router settles it at once, nothing reaches the sink.
        assert!(rx.try_recv().is_err());
        assert_eq!(feed.last, at(2));
        // Nothing new read: no batch, no commit.
        let before = feed.last.clone();
        assert!(feed.tick().await);
        assert_eq!(feed.last, before);
    }

    #[tokio::test]
    async fn a_paced_source_takes_nothing_until_the_stage_releases() {
        let limit = "- limit: {rate: 1, burst: 1}";
        let (mut feed, mut rx, _dir) = feed(limit);
        let (entries, origins) = lines(0..3);
        feed.ledger().read = 3;
        assert!(feed.feed(entries, &origins).await);
        assert_eq!(rx.recv().await.unwrap().batch.entries.len(), 1);
        let until = feed.paced_until().expect("two lines wait for the limit");
        assert!(until > Instant::now());
        let (items, mut items_rx) = mpsc::channel(1);
        items.send(()).await.unwrap();
        let (_stop, mut stop) = watch::channel(false);
        // An item is waiting, but a paced feed ticks instead of taking it.
        let next =
            tokio::time::timeout(Duration::from_secs(5), feed.next(&mut items_rx, &mut stop));
        assert!(matches!(next.await.unwrap(), Next::Tick));
        assert!(feed.tick().await);
        assert_eq!(rx.recv().await.unwrap().batch.entries.len(), 1);
    }

    #[tokio::test]
    async fn once_a_send_is_given_up_the_feed_sends_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::open(&dir.path().join("p.yaml"), false).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let router = Router::new(vec![tx], positions);
        let (stop_tx, stop) = watch::channel(false);
        let mut feed = Feed::new(pipeline("[]").unwrap(), router, Lines { read: 0 }).stop_on(stop);
        let (entries, origins) = lines(0..1);
        assert!(
            feed.feed(entries, &origins).await,
            "the sink's queue had room"
        );
        let (entries, origins) = lines(1..2);
        let send = feed.feed(entries, &origins);
        stop_tx.send(true).unwrap();
        assert!(!send.await, "the sink is full and the agent stops");
        assert!(feed.is_closed());
        assert!(!feed.finish().await);
    }

    fn router(sinks: usize) -> (Router, Vec<mpsc::Receiver<Delivery>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::open(&dir.path().join("p.yaml"), false).unwrap();
        let (txs, rxs) = (0..sinks).map(|_| mpsc::channel(8)).unzip();
        (Router::new(txs, positions), rxs, dir)
    }

    #[tokio::test]
    async fn a_pusher_is_answered_once_every_sink_holds_its_entries() {
        let (router, mut sinks, _dir) = router(2);
        let mut feed = Feed::new(pipeline("[]").unwrap(), router, Answers::new());
        let (answer, mut answered) = oneshot::channel();
        let (entries, _) = lines(0..2);
        let origins = feed.ledger().pushed(entries.len(), answer);
        assert!(feed.feed(entries, &origins).await);
        sinks[0].recv().await.unwrap().ack();
        assert!(
            answered.try_recv().is_err(),
            "one sink does not hold it yet"
        );
        sinks[1].recv().await.unwrap().ack();
        assert_eq!(answered.try_recv(), Ok(true));
    }

    #[tokio::test]
    async fn answers_wait_for_earlier_batches_and_a_dropped_batch_answers_false() {
        let multiline = "- multiline: {firstline: '^line [03]', max_wait_time: 1h}";
        let (router, mut sinks, _dir) = router(1);
        let mut feed = Feed::new(pipeline(multiline).unwrap(), router, Answers::new());
        // Request a: lines 0-1, held as a block. Request b: lines 2-4; line 3 starts a block, so
        // a's block (0-2) goes out in batch 1, and b still has 3-4 held.
        let (a, mut a_answer) = oneshot::channel();
        let (b, mut b_answer) = oneshot::channel();
        let (entries, _) = lines(0..2);
        let origins = feed.ledger().pushed(2, a);
        assert!(feed.feed(entries, &origins).await);
        let (entries, _) = lines(2..5);
        let origins = feed.ledger().pushed(3, b);
        assert!(feed.feed(entries, &origins).await);
        let first = sinks[0].recv().await.unwrap();
        assert_eq!(first.batch.entries.len(), 1);
        assert!(feed.finish().await);
        let second = sinks[0].recv().await.unwrap();
        // The later batch is safe first: nobody is answered before the earlier one is finished.
        second.ack();
        assert!(a_answer.try_recv().is_err() && b_answer.try_recv().is_err());
        // The earlier batch is dropped (a sink gave up): a hears false; so does b, whose line 2 was in it.
        drop(first);
        assert_eq!(a_answer.try_recv(), Ok(false));
        assert_eq!(b_answer.try_recv(), Ok(false));
    }
}
