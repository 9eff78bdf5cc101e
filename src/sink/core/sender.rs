//! The sender: send each request until the receiver accepted it or it is given up for good (see the
//! module doc of `sink::core`). A request is sent by this task itself, one at a time, as Promtail's
//! client does: a receiver that is down stops the sink taking more, the buffer fills, and then the
//! sources pause with their lines still in their files.

use std::collections::HashSet;

use tokio::sync::{mpsc, watch};

use super::{Answer, Batcher, Codec, Protocol};
use crate::buffer::deadletter::DeadLetter;
use crate::delivery::{Outgoing, Payload, Request};
use crate::metrics::{Escaped, Metrics, SinkLabel};
use crate::sink::http::Retry;
use std::sync::Arc;

/// A kind of failure logged once (until sending works again, for `Retrying`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Logged {
    Retrying,
    Rejected(i32),
}

pub struct Sender<P: Protocol, C: Codec> {
    protocol: P,
    /// Encodes buffer records of entries (an older release's) into requests.
    legacy: Batcher<C>,
    metrics: Arc<Metrics>,
    /// Where rejected entries go, and the sink's name in metrics.
    dead_letter: Option<(DeadLetter, SinkLabel)>,
    logged: HashSet<Logged>,
}

impl<P: Protocol, C: Codec> Sender<P, C> {
    pub fn new(protocol: P, legacy: Batcher<C>, metrics: Arc<Metrics>) -> Self {
        Sender {
            protocol,
            legacy,
            metrics,
            dead_letter: None,
            logged: HashSet::new(),
        }
    }

    /// Write entries rejected for good to `dead_letter`, counted for `sink`.
    pub fn with_dead_letter(mut self, dead_letter: DeadLetter, sink: &str) -> Self {
        let label = SinkLabel {
            sink: Escaped(sink.to_owned()),
        };
        self.dead_letter = Some((dead_letter, label));
        self
    }

    /// Send what comes from `input` until it closes. `abort` turning true stops at once: what is not
    /// accepted yet stays unacknowledged, to be sent again after a restart.
    pub async fn run(mut self, mut input: mpsc::Receiver<Outgoing>, abort: watch::Receiver<bool>) {
        let background = self.protocol.background().map(tokio::spawn);
        let mut stop = abort.clone();
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait_for(|a| *a) => None,
                next = input.recv() => next,
            };
            let Some(Outgoing { payload, done }) = next else {
                break;
            };
            let requests = match payload {
                Payload::Request(r) => vec![r],
                Payload::Entries(batch) => self.legacy.encode_all(&batch),
            };
            if !self.deliver(requests, &abort).await {
                // Aborted: `done` is dropped unfinished.
                break;
            }
            done.finish();
        }
        if let Some(b) = background {
            b.abort();
        }
    }

    /// Send `requests` until every entry in them is accepted, rejected for good or given up on.
    /// False if aborted first.
    async fn deliver(&mut self, requests: Vec<Request>, abort: &watch::Receiver<bool>) -> bool {
        for request in requests {
            let whole = request.entries;
            let mut parts = vec![request];
            while let Some(part) = parts.pop() {
                if !self.send(part, whole, &mut parts, abort).await {
                    return false;
                }
            }
        }
        true
    }

    /// Send one request until it is done; halves it must be sent in go to `parts`. False if aborted.
    async fn send(
        &mut self,
        mut request: Request,
        whole: u32,
        parts: &mut Vec<Request>,
        abort: &watch::Receiver<bool>,
    ) -> bool {
        let mut abort = abort.clone();
        let mut retry = Retry::new(self.protocol.http());
        loop {
            let attempt = retry.next_attempt();
            let answer = tokio::select! {
                a = self.protocol.send(&request) => a,
                _ = abort.wait_for(|a| *a) => return false,
            };
            let (status, error, at_once) = match answer {
                Answer::Accepted => {
                    self.protocol.sent(&request);
                    self.works_again();
                    return true;
                }
                Answer::Dropped(reason) => {
                    self.protocol.dropped(&request, reason);
                    return true;
                }
                Answer::Rejected { status, error } => {
                    self.reject(&request, status, &error);
                    return true;
                }
                Answer::Split { status, error } => {
                    match self.protocol.halves(&request) {
                        Some((first, second)) => {
                            if request.entries == whole {
                                tracing::info!(sink = %self.protocol.name(), status, entries = request.entries, %error,
                                    "{} refused some {} of a request; sending it again in halves to find them",
                                    P::KIND, P::NOUN);
                            }
                            self.protocol.split();
                            parts.push(second);
                            parts.push(first);
                        }
                        None => self.reject(&request, status, &error),
                    }
                    return true;
                }
                Answer::Partial {
                    retry: again,
                    rejected,
                } => {
                    for (status, error, r) in rejected {
                        self.reject(&r, status, &error);
                    }
                    let Some(again) = again else {
                        self.works_again();
                        return true;
                    };
                    request = again;
                    let error = format!("{} failed with a retriable status", P::NOUN);
                    (429, error, false)
                }
                Answer::Retry {
                    status,
                    error,
                    at_once,
                } => (status, error, at_once),
            };
            self.protocol.retried(&request, status);
            if retry.exhausted() {
                tracing::error!(sink = %self.protocol.name(), status, dest = %request.dest, %error, entries = request.entries,
                    "final error sending batch: dropped after backoff_config.max_retries attempts");
                let reason = if status == 429 {
                    "rate_limited"
                } else {
                    "ingester_error"
                };
                self.protocol.dropped(&request, reason);
                return true;
            }
            if self.logged.insert(Logged::Retrying) || attempt == 1 {
                tracing::warn!(sink = %self.protocol.name(), status, dest = %request.dest, %error, entries = request.entries,
                    "error sending {}, will retry", P::SENDING);
            }
            if at_once {
                continue;
            }
            if !retry.wait(&mut abort).await {
                return false;
            }
        }
    }

    fn works_again(&mut self) {
        if self.logged.remove(&Logged::Retrying) {
            tracing::info!(sink = %self.protocol.name(), "sending to {} works again", P::KIND);
        }
    }

    /// Entries refused for good: to the dead-letter file, counted, logged once per status.
    fn reject(&mut self, request: &Request, status: i32, error: &str) {
        self.protocol.rejected(request, status);
        let kept = self.dead_letter.as_mut().and_then(|(dl, label)| {
            let entries = self.protocol.dead_letters(request);
            let kept = self.metrics.buffer.dead_letter_entries.get_or_create(label);
            dl.keep(
                error,
                entries
                    .iter()
                    .map(|(ts, l, line)| (*ts, l.as_str(), line.as_str())),
                &kept,
            )
        });
        if self.logged.insert(Logged::Rejected(status)) {
            tracing::error!(sink = %self.protocol.name(), status, %error, dest = %request.dest,
                dead_letter = kept.as_deref().unwrap_or("none"),
                "{} rejected {} for good; they go to the dead-letter file (logged once per status)",
                P::KIND, P::NOUN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::DeadEntry;
    use super::*;
    use crate::delivery::{AckToken, Commits, Done, PartAck};
    use crate::entry::{Batch, Entry};
    use crate::positions::{Checkpoint, Positions};
    use crate::sink::http::HttpSettings;
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Requests of comma-joined words. The receiver refuses a request holding `bad` as a whole
    /// (`Split`), answers `Retry` to the first `fail_first` attempts, and item by item (`Partial`)
    /// when a request holds `flaky`: that one fails once, the rest is accepted.
    #[derive(Default)]
    struct Script {
        fail_first: u32,
        attempts: u32,
        flaky_failed: bool,
        sent: Vec<String>,
        dropped: Vec<(String, &'static str)>,
        rejected: Vec<String>,
        accepted: Vec<String>,
    }

    /// A receiver that answers `Retry` to the first `fail_first` attempts.
    fn script(fail_first: u32) -> Arc<Mutex<Script>> {
        Arc::new(Mutex::new(Script {
            fail_first,
            ..Script::default()
        }))
    }

    struct Words {
        http: HttpSettings,
        script: Arc<Mutex<Script>>,
    }

    fn words(r: &Request) -> Vec<String> {
        String::from_utf8(r.body.to_vec())
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    fn request(words: &[&str]) -> Request {
        Request {
            body: Bytes::from(words.join(",")),
            dest: "".into(),
            entries: words.len() as u32,
            bytes: 0,
        }
    }

    impl Protocol for Words {
        const KIND: &'static str = "Test";
        const NOUN: &'static str = "words";
        const SENDING: &'static str = "words";

        fn name(&self) -> &str {
            "test"
        }

        fn http(&self) -> &HttpSettings {
            &self.http
        }

        async fn send(&mut self, r: &Request) -> Answer {
            let mut s = self.script.lock().unwrap();
            s.attempts += 1;
            s.sent.push(words(r).join(","));
            if s.attempts <= s.fail_first {
                return Answer::Retry {
                    status: 503,
                    error: "down".into(),
                    at_once: false,
                };
            }
            let w = words(r);
            if w.iter().any(|w| w == "bad") {
                return Answer::Split {
                    status: 400,
                    error: "bad word".into(),
                };
            }
            if w.iter().any(|w| w == "flaky") && !s.flaky_failed {
                s.flaky_failed = true;
                let rest: Vec<String> = w.iter().filter(|w| *w != "flaky").cloned().collect();
                s.accepted.extend(rest);
                return Answer::Partial {
                    retry: Some(request(&["flaky"])),
                    rejected: Vec::new(),
                };
            }
            s.accepted.extend(w);
            Answer::Accepted
        }

        fn halves(&self, r: &Request) -> Option<(Request, Request)> {
            let w = words(r);
            if w.len() < 2 {
                return None;
            }
            let (a, b) = w.split_at(w.len() / 2);
            let refs = |v: &[String]| request(&v.iter().map(String::as_str).collect::<Vec<_>>());
            Some((refs(a), refs(b)))
        }

        fn dead_letters(&self, r: &Request) -> Vec<DeadEntry> {
            words(r).into_iter().map(|w| (0, "{}".into(), w)).collect()
        }

        fn sent(&self, _: &Request) {}

        fn dropped(&self, r: &Request, reason: &'static str) {
            self.script
                .lock()
                .unwrap()
                .dropped
                .push((words(r).join(","), reason));
        }

        fn rejected(&self, r: &Request, _: i32) {
            self.script
                .lock()
                .unwrap()
                .rejected
                .push(words(r).join(","));
        }
    }

    /// A codec for the legacy path, never used here.
    struct Never;

    impl Codec for Never {
        type Open = ();
        type Admitted = ();
        fn admit(&mut self, _: &Entry) -> Option<(Arc<str>, usize, ())> {
            None
        }
        fn add(&mut self, _: &mut (), _: u32, _: u32, _: &Entry, _: ()) {}
        fn seal(&mut self, _: &mut (), _: &[Arc<Batch>]) -> Bytes {
            Bytes::new()
        }
    }

    fn sender(script: &Arc<Mutex<Script>>, max_retries: Option<u32>) -> Sender<Words, Never> {
        let http = HttpSettings {
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_retries,
            ..HttpSettings::default()
        };
        let limits = super::super::Limits {
            bytes: 1,
            entries: 1,
            wait: Duration::from_secs(1),
        };
        let protocol = Words {
            http,
            script: script.clone(),
        };
        Sender::new(
            protocol,
            Batcher::new(Never, limits),
            crate::metrics::Metrics::new(),
        )
    }

    /// An outgoing request whose acceptance commits cursor `c` = `value`.
    fn outgoing(positions: &Positions, value: &str, w: &[&str]) -> Outgoing {
        let token = AckToken::new(
            Commits::new(positions.clone()),
            Checkpoint::Cursor {
                key: "c".into(),
                value: value.into(),
            },
            1,
        );
        Outgoing {
            payload: Payload::Request(request(w)),
            done: Done::Parts(vec![PartAck::new(token)]),
        }
    }

    async fn run(s: Sender<Words, Never>, out: Vec<Outgoing>) {
        let (tx, rx) = mpsc::channel(8);
        for o in out {
            tx.send(o).await.unwrap();
        }
        drop(tx);
        let (_abort, abort_rx) = watch::channel(false);
        s.run(rx, abort_rx).await;
    }

    #[tokio::test]
    async fn retries_until_accepted_then_commits_in_order() {
        let script = script(3);
        let positions = Positions::in_memory();
        let out = vec![
            outgoing(&positions, "1", &["a", "b"]),
            outgoing(&positions, "2", &["c"]),
        ];
        run(sender(&script, None), out).await;
        let s = script.lock().unwrap();
        assert_eq!(s.sent, ["a,b", "a,b", "a,b", "a,b", "c"]);
        assert_eq!(s.accepted, ["a", "b", "c"]);
        assert_eq!(positions.cursor("c").as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn max_retries_drops_and_moves_on() {
        let script = script(5);
        let positions = Positions::in_memory();
        run(
            sender(&script, Some(2)),
            vec![
                outgoing(&positions, "1", &["a"]),
                outgoing(&positions, "2", &["b"]),
                outgoing(&positions, "3", &["c"]),
            ],
        )
        .await;
        let s = script.lock().unwrap();
        assert_eq!(
            s.dropped,
            [
                ("a".to_string(), "ingester_error"),
                ("b".to_string(), "ingester_error")
            ]
        );
        assert_eq!(
            s.sent.len(),
            6,
            "two attempts each for a and b, then c: {:?}",
            s.sent
        );
        assert_eq!(s.accepted, ["c"]);
        // Given up on counts as done: the sources move on.
        assert_eq!(positions.cursor("c").as_deref(), Some("3"));
    }

    #[tokio::test]
    async fn a_split_isolates_the_refused_entry_and_a_partial_answer_resends_only_what_failed() {
        let script = script(0);
        let positions = Positions::in_memory();
        run(
            sender(&script, None),
            vec![outgoing(
                &positions,
                "1",
                &["w0", "w1", "bad", "w3", "flaky", "w5"],
            )],
        )
        .await;
        let s = script.lock().unwrap();
        assert_eq!(s.rejected, ["bad"], "only the refused entry is rejected");
        let mut accepted = s.accepted.clone();
        accepted.sort();
        assert_eq!(accepted, ["flaky", "w0", "w1", "w3", "w5"], "each once");
        assert!(s.sent.contains(&"flaky".to_string()), "{:?}", s.sent);
        assert_eq!(positions.cursor("c").as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn an_abort_stops_retrying_and_commits_nothing() {
        let script = script(u32::MAX);
        let positions = Positions::in_memory();
        let s = sender(&script, None);
        let (tx, rx) = mpsc::channel(8);
        tx.send(outgoing(&positions, "1", &["a"])).await.unwrap();
        let (abort, abort_rx) = watch::channel(false);
        let task = tokio::spawn(s.run(rx, abort_rx));
        tokio::time::sleep(Duration::from_millis(50)).await;
        abort.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sender stops at once")
            .unwrap();
        assert!(script.lock().unwrap().sent.len() > 1, "it was retrying");
        assert_eq!(positions.cursor("c"), None, "not accepted: not committed");
    }
}
