//! The stdin source (Promtail's `-stdin` / `target_config.stdin`): lines from standard input go through
//! the first scrape config's pipeline with its static labels (or `{job="stdin", hostname="<host>"}`
//! when there is no scrape config); at the end of input the agent flushes and exits. With `dry-run`
//! this lets an operator try a pipeline on sample lines before deploying it:
//! `logferry dry-run -stdin -config.file=cfg.yaml < sample.log`. Positions are not used.

use std::io::BufRead;
use std::sync::Arc;

use super::feed::{Feed, NoLedger};
use crate::delivery::Router;
use crate::entry::{now_nanos, Entry, LabelSet, Labels};
use crate::stage::PipelineSpec;

/// Lines per batch handed to the pipeline.
const BATCH_LINES: usize = 1024;

pub struct StdinSource {
    pub labels: Labels,
    pub pipeline: PipelineSpec,
    pub router: Router,
}

impl StdinSource {
    /// Read stdin to its end; returns when every line was handed to the router.
    pub async fn run(self) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<String>>(4);
        let reader = std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_LINES);
            let stdin = std::io::stdin();
            let mut buf = Vec::new();
            let mut lock = stdin.lock();
            loop {
                buf.clear();
                match lock.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        batch.push(String::from_utf8_lossy(&buf).into_owned());
                        if batch.len() == BATCH_LINES
                            && tx.blocking_send(std::mem::take(&mut batch)).is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
        });
        let labels: Arc<LabelSet> = LabelSet::new(self.labels);
        let mut feed = Feed::new(self.pipeline.instantiate(), self.router, NoLedger);
        let mut last_ts = 0i64;
        while let Some(lines) = rx.recv().await {
            let now = now_nanos();
            let entries: Vec<Entry> = lines
                .into_iter()
                .map(|line| {
                    last_ts = now.max(last_ts + 1);
                    Entry {
                        timestamp: last_ts,
                        line,
                        labels: labels.clone(),
                        metadata: Vec::new(),
                        extracted: None,
                    }
                })
                .collect();
            if !feed.feed(entries, &[]).await {
                return;
            }
            // A stage pacing entries (`limit` without `drop`): release them at its pace before
            // taking more lines.
            while let Some(until) = feed.paced_until() {
                tokio::time::sleep_until(until.into()).await;
                if !feed.tick().await {
                    return;
                }
            }
        }
        feed.finish().await;
        let _ = reader.join();
    }
}
