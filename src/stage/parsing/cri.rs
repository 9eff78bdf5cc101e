//! `cri`: read a line of the CRI log format (containerd, CRI-O) and join partial lines (Promtail's
//! `NewCRI` in `extensions.go`, docs `stages/cri.md`, compat reference §5.1).
//!
//! A line `<time> <stdout|stderr> <flags> <content>` is what Promtail's fixed sequence gives:
//!
//! ```yaml
//! - regex: {expression: "^(?s)(?P<time>\\S+?) (?P<stream>stdout|stderr) (?P<flags>\\S+?) (?P<content>.*)$"}
//! - labels: {stream:}
//! - timestamp: {source: time, format: RFC3339Nano}   # action_on_failure: fudge
//! - output: {source: content}
//! - output: {source: tags}
//! ```
//!
//! `time`, `stream`, `flags` and `content` are set in `extracted` (the regex is matched by hand here,
//! with the same result). A line that does not match keeps its text and labels.
//!
//! Partial lines: an entry whose `flags` is `P` is **held**, per label set, and not emitted; its text
//! is appended to what that stream already holds. The next non-`P` entry of the stream is emitted with
//! the held text before its own (no separator), keeping its own timestamp and labels. With
//! `max_partial_line_size_truncate`, held and joined text is cut to `max_partial_line_size` bytes
//! (at a character boundary; Go may cut inside a UTF-8 sequence). When a `P` line arrives while
//! `max_partial_lines` streams are already held, all held entries are emitted as they are first.
//! There is no timeout (as in Promtail); held entries are emitted at shutdown ([`Stage::flush_all`])
//! where Promtail v3.6 loses them.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::container::{self, Timestamps};
use super::{invalid, set_string, weak};
use crate::entry::Labels;
use crate::stage::{decode, Item, Stage, StageFactory};

/// Promtail's default (and the value a 0 stands for).
const DEFAULT_MAX_PARTIAL_LINES: i64 = 100;

#[derive(Deserialize)]
struct Config {
    max_partial_lines: Option<serde_yaml_ng::Value>,
    max_partial_line_size: Option<serde_yaml_ng::Value>,
    max_partial_line_size_truncate: Option<serde_yaml_ng::Value>,
}

#[derive(Clone, Copy)]
struct Limits {
    max_partial_lines: i64,
    /// `Some(bytes)` when truncating.
    truncate_at: Option<usize>,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("cri", body).map_err(invalid)?;
    let max_partial_lines = match &cfg.max_partial_lines {
        Some(v) => weak::signed("max_partial_lines", v).map_err(invalid)?,
        None => 0,
    };
    let max_partial_line_size = match &cfg.max_partial_line_size {
        // Promtail takes a number; a size with a unit (`256KB`) is accepted here too.
        Some(serde_yaml_ng::Value::String(s)) if !s.is_empty() => crate::config::parse_byte_size(s)
            .map_err(|e| invalid(format_args!("`max_partial_line_size`: {e}")))?,
        Some(v) => weak::unsigned("max_partial_line_size", v).map_err(invalid)?,
        None => 0,
    };
    let truncate = match &cfg.max_partial_line_size_truncate {
        Some(v) => weak::boolean("max_partial_line_size_truncate", v).map_err(invalid)?,
        None => false,
    };
    let limits = Limits {
        max_partial_lines: if max_partial_lines == 0 {
            DEFAULT_MAX_PARTIAL_LINES
        } else {
            max_partial_lines
        },
        truncate_at: truncate.then(|| usize::try_from(max_partial_line_size).unwrap_or(usize::MAX)),
    };
    Ok(Arc::new(CriFactory { limits }))
}

struct CriFactory {
    limits: Limits,
}

impl StageFactory for CriFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Cri {
            limits: self.limits,
            timestamps: Timestamps::default(),
            partials: HashMap::new(),
            next_seq: 0,
        })
    }
}

struct Cri {
    limits: Limits,
    timestamps: Timestamps,
    /// Held partial entries by label set.
    partials: HashMap<Labels, Partial>,
    next_seq: u64,
}

struct Partial {
    /// The latest `P` entry, its line holding all the stream's held text.
    item: Item,
    /// Where the first held line starts.
    origin: u64,
    /// Arrival order, to emit held entries in order.
    seq: u64,
}

impl Stage for Cri {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if let Some(fields) = parse_line(&item.line) {
            for (key, value) in ["time", "stream", "flags", "content"]
                .into_iter()
                .zip(fields)
            {
                set_string(&mut item.extracted, key, value);
            }
        }
        container::label_stream(&mut item);
        self.timestamps.apply(&mut item, "time");
        container::output(&mut item, "content");
        // Promtail's sequence ends with `output: {source: tags}`, which acts only if something set
        // `tags` (such as a label of that name).
        container::output(&mut item, "tags");

        let partial = matches!(item.extracted.get("flags"), Some(Value::String(f)) if f == "P");
        if partial {
            self.hold(item, out);
        } else {
            if let Some(held) = self.partials.remove(item.labels.map()) {
                let mut line = held.item.line;
                line.push_str(&item.line);
                item.line = line;
                truncate(self.limits, &mut item.line);
                item.origin = held.origin;
            }
            out.push(item);
        }
    }

    fn flush_all(&mut self, out: &mut Vec<Item>) {
        self.emit_all(out);
    }

    fn held_origin(&self) -> Option<u64> {
        self.partials.values().map(|p| p.origin).min()
    }
}

impl Cri {
    fn hold(&mut self, mut item: Item, out: &mut Vec<Item>) {
        if self.partials.len() as i64 >= self.limits.max_partial_lines {
            tracing::warn!(
                threshold = self.limits.max_partial_lines,
                "cri stage: partial lines upperbound exceeded. merging it to single line"
            );
            self.emit_all(out);
        }
        self.next_seq += 1;
        match self.partials.get_mut(item.labels.map()) {
            Some(held) => {
                let mut line = std::mem::take(&mut held.item.line);
                line.push_str(&item.line);
                item.line = line;
                truncate(self.limits, &mut item.line);
                held.item = item;
            }
            None => {
                truncate(self.limits, &mut item.line);
                let origin = item.origin;
                let labels = item.labels.map().clone();
                let seq = self.next_seq;
                self.partials.insert(labels, Partial { item, origin, seq });
            }
        }
    }

    /// Emit every held entry as it is, oldest first.
    fn emit_all(&mut self, out: &mut Vec<Item>) {
        let mut held: Vec<Partial> = self.partials.drain().map(|(_, p)| p).collect();
        held.sort_unstable_by_key(|p| p.seq);
        out.extend(held.into_iter().map(|p| {
            let mut item = p.item;
            item.origin = p.origin;
            item
        }));
    }
}

/// Cut `line` to the size limit when truncation is on.
fn truncate(limits: Limits, line: &mut String) {
    let Some(max) = limits.truncate_at else {
        return;
    };
    if line.len() > max {
        let mut cut = max;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
}

/// Go's `\s` (ASCII): what `\S` excludes besides the space.
fn is_go_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// `^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`, by hand: the time
/// and the flags are the non-empty runs before the first and third spaces, with no other whitespace.
fn parse_line(line: &str) -> Option<[&str; 4]> {
    let token = |text: &str| -> Option<usize> {
        let end = text.find(' ')?;
        (end > 0 && !text.as_bytes()[..end].iter().any(|&b| is_go_space(b))).then_some(end)
    };
    let time_end = token(line)?;
    let rest = &line[time_end + 1..];
    let stream = ["stdout", "stderr"]
        .into_iter()
        .find(|s| rest.starts_with(s) && rest.as_bytes().get(s.len()) == Some(&b' '))?;
    let rest = &rest[stream.len() + 1..];
    let flags_end = token(rest)?;
    Some([
        &line[..time_end],
        stream,
        &rest[..flags_end],
        &rest[flags_end + 1..],
    ])
}
