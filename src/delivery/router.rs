//! The router: hands every batch to every sink (as one shared `Arc`, never a copy) and arms the batch's
//! acknowledgement with the number of sinks that must hold it before its position is committed.
//!
//! A sink with a routing selector (an extension: `elasticsearch[].selector`) gets only the entries its
//! selector matches: the shared batch when all of them match, a batch of copies when some do, nothing
//! when none does (and then it is not one of the batch's holders).
//!
//! The routes can be replaced while sources run (a config reload adds, removes or restarts sinks):
//! each batch is sent to one snapshot of them, so its holder count always matches the sinks it went to.

use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::order::Commits;
use crate::delivery::{AckToken, Delivery, Settle};
use crate::entry::{Batch, Entry};
use crate::positions::{Checkpoint, Positions};
use crate::stage::filtering::selector::Selector;
use crate::stage::ItemLabels;

/// One sink as the router sees it.
#[derive(Clone)]
pub struct Route {
    pub sink: mpsc::Sender<Delivery>,
    /// Only entries this selects go to the sink; `None`: all of them.
    pub selector: Option<Arc<Selector>>,
}

#[derive(Clone)]
pub struct Router {
    routes: Arc<RwLock<Routes>>,
    commits: Commits,
}

/// The sinks batches go to now.
#[derive(Clone)]
struct Routes {
    routes: Arc<[Route]>,
    selective: bool,
}

impl Routes {
    fn new(routes: Vec<Route>) -> Self {
        Routes {
            selective: routes.iter().any(|r| r.selector.is_some()),
            routes: routes.into(),
        }
    }
}

/// Every sink has stopped taking batches: the agent is shutting down.
#[derive(Debug)]
pub struct Closed;

impl Route {
    /// A sink that gets every entry.
    pub fn all(sink: mpsc::Sender<Delivery>) -> Self {
        Route {
            sink,
            selector: None,
        }
    }
}

impl Router {
    /// Every batch to every sink.
    pub fn new(sinks: Vec<mpsc::Sender<Delivery>>, positions: Positions) -> Self {
        Self::with_routes(sinks.into_iter().map(Route::all).collect(), positions)
    }

    /// Every batch to every sink, filtered by the sinks' selectors.
    pub fn with_routes(routes: Vec<Route>, positions: Positions) -> Self {
        Router {
            routes: Arc::new(RwLock::new(Routes::new(routes))),
            commits: Commits::new(positions),
        }
    }

    /// From the next batch on, send to `routes` instead. A batch being sent goes on to the sinks it
    /// started with; a sink's queue closes once no batch holds its sender any more.
    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.routes.write().unwrap() = Routes::new(routes);
    }

    /// Where batches' checkpoints are committed in order.
    pub fn commits(&self) -> &Commits {
        &self.commits
    }

    pub fn positions(&self) -> &Positions {
        self.commits.positions()
    }

    /// Send `entries` to every sink; once all of them hold the batch, `checkpoint` is committed. Waits
    /// while a sink's queue is full: this is the backpressure that pauses the sources.
    pub async fn send(
        &self,
        entries: Vec<Entry>,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), Closed> {
        self.deliver(entries, checkpoint.map(Settle::Position))
            .await
    }

    /// Send `entries` to every sink; once all of them hold the batch, `settle` is done: a position
    /// committed, or waiting pushers answered. Waits while a sink's queue is full.
    pub async fn deliver(&self, entries: Vec<Entry>, settle: Option<Settle>) -> Result<(), Closed> {
        let routes = self.routes.read().unwrap().clone();
        if routes.selective {
            return self.send_selected(&routes.routes, entries, settle).await;
        }
        let routes = routes.routes;
        if entries.is_empty() || routes.is_empty() {
            // Nothing to deliver (all filtered out): the position may move on at once.
            if let Some(s) = settle {
                s.now(&self.commits);
            }
            return Ok(());
        }
        let ack = settle.map(|s| AckToken::settle(&self.commits, s, routes.len()));
        let batch = Arc::new(Batch { entries });
        for route in routes.iter() {
            let delivery = Delivery {
                batch: batch.clone(),
                ack: ack.clone(),
            };
            route.sink.send(delivery).await.map_err(|_| Closed)?;
        }
        Ok(())
    }

    async fn send_selected(
        &self,
        routes: &[Route],
        entries: Vec<Entry>,
        settle: Option<Settle>,
    ) -> Result<(), Closed> {
        // For each route: None = the shared batch, Some(empty) = nothing, Some(copies) = its own.
        let own: Vec<Option<Vec<Entry>>> = routes
            .iter()
            .map(|r| r.selector.as_ref().and_then(|s| select(s, &entries)))
            .collect();
        let holders = own
            .iter()
            .filter(|o| o.as_ref().map_or(!entries.is_empty(), |v| !v.is_empty()))
            .count();
        if holders == 0 {
            if let Some(s) = settle {
                s.now(&self.commits);
            }
            return Ok(());
        }
        let ack = settle.map(|s| AckToken::settle(&self.commits, s, holders));
        let shared = Arc::new(Batch { entries });
        for (route, own) in routes.iter().zip(own) {
            let batch = match own {
                None if shared.entries.is_empty() => continue,
                None => shared.clone(),
                Some(v) if v.is_empty() => continue,
                Some(v) => Arc::new(Batch { entries: v }),
            };
            let delivery = Delivery {
                batch,
                ack: ack.clone(),
            };
            route.sink.send(delivery).await.map_err(|_| Closed)?;
        }
        Ok(())
    }
}

/// The entries `selector` matches: `None` when all of them do (the shared batch will do).
fn select(selector: &Selector, entries: &[Entry]) -> Option<Vec<Entry>> {
    // Consecutive entries mostly share their label set: wrap it once.
    let mut last: Option<(usize, ItemLabels)> = None;
    let mut matches = |e: &Entry| {
        let key = Arc::as_ptr(&e.labels) as usize;
        if last.as_ref().map_or(true, |(k, _)| *k != key) {
            last = Some((key, ItemLabels::Shared(e.labels.clone())));
        }
        let labels = &last.as_ref().expect("set above").1;
        selector.matches(labels, &e.line)
    };
    let first_miss = entries.iter().position(|e| !matches(e))?;
    let mut picked: Vec<Entry> = entries[..first_miss].to_vec();
    picked.extend(
        entries[first_miss + 1..]
            .iter()
            .filter(|e| matches(e))
            .cloned(),
    );
    Some(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{LabelSet, Labels};

    fn entries(jobs: &[&str]) -> Vec<Entry> {
        jobs.iter()
            .map(|j| Entry {
                timestamp: 0,
                line: format!("line of {j}"),
                labels: LabelSet::new(Labels::from([("job".to_string(), j.to_string())])),
                metadata: Vec::new(),
                extracted: None,
            })
            .collect()
    }

    #[test]
    fn a_selector_picks_entries_and_shares_the_batch_when_all_match() {
        let sel = Selector::parse(r#"{job="a"}"#).unwrap();
        assert!(select(&sel, &entries(&["a", "a"])).is_none());
        let picked = select(&sel, &entries(&["b", "a", "c", "a"])).unwrap();
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|e| e.labels.get("job") == Some("a")));
        assert!(select(&sel, &entries(&["b"])).unwrap().is_empty());
        let line = Selector::parse(r#"{job=~".+"} |= "of b""#).unwrap();
        assert_eq!(select(&line, &entries(&["a", "b"])).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sinks_that_get_nothing_are_not_holders() {
        let dir = tempfile::tempdir().unwrap();
        let positions = Positions::open(&dir.path().join("p.yaml"), false).unwrap();
        let (all_tx, mut all_rx) = mpsc::channel(4);
        let (sel_tx, mut sel_rx) = mpsc::channel(4);
        let router = Router::with_routes(
            vec![
                Route {
                    sink: all_tx,
                    selector: None,
                },
                Route {
                    sink: sel_tx,
                    selector: Some(Arc::new(Selector::parse(r#"{job="a"}"#).unwrap())),
                },
            ],
            positions,
        );
        router.send(entries(&["b", "b"]), None).await.unwrap();
        router.send(entries(&["a", "b"]), None).await.unwrap();
        assert_eq!(all_rx.recv().await.unwrap().batch.entries.len(), 2);
        assert_eq!(all_rx.recv().await.unwrap().batch.entries.len(), 2);
        let only = sel_rx.recv().await.unwrap();
        assert_eq!(only.batch.entries.len(), 1);
        assert!(
            sel_rx.try_recv().is_err(),
            "the first batch had nothing for it"
        );
    }
}
