//! The steps Promtail's `docker` and `cri` stages run once the line is parsed into `extracted`:
//!
//! ```yaml
//! - labels: {stream:}
//! - timestamp: {source: <time key>, format: RFC3339Nano}   # action_on_failure: fudge
//! - output: {source: <content key>}
//! ```
//!
//! They read `extracted` exactly as those stages do, so an unparsed line keeps its text and labels, and
//! gets a fudged timestamp when its stream has had a good one (compat reference §5.1, §5.3).

use std::collections::HashMap;

use super::{go_string, rfc3339};
use crate::entry::Labels;
use crate::stage::Item;

/// How many label sets the fudge remembers (Promtail's LRU holds 10000).
const LAST_KNOWN_MAX: usize = 10_000;

/// `labels: {stream:}`: set the `stream` label from `extracted["stream"]` when it has a string form.
pub fn label_stream(item: &mut Item) {
    let Some(value) = item.extracted.get("stream").and_then(go_string) else {
        return;
    };
    if item.labels.get("stream") != Some(&*value) {
        let value = value.into_owned();
        item.labels.to_mut().insert("stream".to_owned(), value);
    }
}

/// `output: {source}`: replace the line with `extracted[source]` when it has a string form.
pub fn output(item: &mut Item, source: &str) {
    if let Some(text) = item.extracted.get(source).and_then(go_string) {
        let text = text.into_owned();
        item.line = text;
    }
}

/// `timestamp: {source, format: RFC3339Nano}` with `action_on_failure: fudge`: the last good timestamp
/// of each label set, so that an entry whose time cannot be parsed gets the previous one plus 1ns.
#[derive(Default)]
pub struct Timestamps {
    last_known: HashMap<Labels, i64>,
}

impl Timestamps {
    pub fn apply(&mut self, item: &mut Item, source: &str) {
        let parsed = item
            .extracted
            .get(source)
            .and_then(go_string)
            .and_then(|s| rfc3339::parse_nano(&s));
        let labels = item.labels.map();
        let ts = match parsed {
            Some(ts) => ts,
            None => match self.last_known.get(labels) {
                Some(last) => last.saturating_add(1),
                // Nothing to fudge from yet: the entry keeps its own time.
                None => return,
            },
        };
        item.timestamp = ts;
        match self.last_known.get_mut(labels) {
            Some(last) => *last = ts,
            None => {
                if self.last_known.len() >= LAST_KNOWN_MAX {
                    self.last_known.clear();
                }
                self.last_known.insert(labels.clone(), ts);
            }
        }
    }
}
