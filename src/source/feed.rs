//! TEMPORARY stand-in for main's `src/source/feed.rs` (the lead's), with the API the syslog source
//! uses, so this branch builds until main has it. Replaced by main's file at the merge.

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::delivery::Router;
use crate::entry::Entry;
use crate::stage::Pipeline;

pub trait Ledger: Send {}

/// A source without positions: commits nothing.
pub struct NoLedger;

impl Ledger for NoLedger {}

pub enum Next<T> {
    Item(T),
    Tick,
    Stop,
}

pub struct Feed<L> {
    pipeline: Pipeline,
    router: Router,
    _ledger: L,
    stop: Option<watch::Receiver<bool>>,
    closed: bool,
}

impl<L: Ledger> Feed<L> {
    pub fn new(pipeline: Pipeline, router: Router, ledger: L) -> Self {
        Feed {
            pipeline,
            router,
            _ledger: ledger,
            stop: None,
            closed: false,
        }
    }

    pub fn stop_on(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    pub async fn feed(&mut self, mut entries: Vec<Entry>, origins: &[u64]) -> bool {
        self.pipeline.run(&mut entries, origins);
        if self
            .pipeline
            .next_deadline()
            .is_some_and(|d| d <= Instant::now())
        {
            self.pipeline.flush(Instant::now(), false, &mut entries);
        }
        self.send(entries).await
    }

    pub async fn tick(&mut self) -> bool {
        let mut entries = Vec::new();
        self.pipeline.flush(Instant::now(), false, &mut entries);
        self.send(entries).await
    }

    pub async fn finish(&mut self) -> bool {
        let mut entries = Vec::new();
        self.pipeline.flush(Instant::now(), true, &mut entries);
        self.send(entries).await
    }

    /// Not an `async fn`: the future borrows only `rx` and `stop`, not the feed (whose pipeline is not
    /// `Sync`), so a source's task stays `Send`.
    pub fn next<'a, T: Send + 'a>(
        &self,
        rx: &'a mut mpsc::Receiver<T>,
        stop: &'a mut watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Next<T>> + Send + 'a {
        let paced = self.pipeline.holds_back();
        let deadline = self.pipeline.next_deadline();
        async move {
            if *stop.borrow() {
                return Next::Stop;
            }
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = rx.recv(), if !paced => item.map_or(Next::Stop, Next::Item),
                _ = timer => Next::Tick,
                _ = stop.wait_for(|s| *s) => Next::Stop,
            }
        }
    }

    async fn send(&mut self, entries: Vec<Entry>) -> bool {
        if self.closed {
            return false;
        }
        if entries.is_empty() {
            return true;
        }
        let sent = match &self.stop {
            None => self.router.send(entries, None).await.is_ok(),
            Some(stop) => {
                let mut stop = stop.clone();
                tokio::select! {
                    biased;
                    r = self.router.send(entries, None) => r.is_ok(),
                    _ = stop.wait_for(|s| *s) => false,
                }
            }
        };
        self.closed = !sent;
        sent
    }
}
