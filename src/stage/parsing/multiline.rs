//! `multiline`: join the lines of a multi-line record (a stack trace) into one entry (Promtail's
//! `multiline.go`, docs `stages/multiline.md`, compat reference §5.1).
//!
//! * `firstline` (RE2, required, unanchored) marks the first line of a block; `max_wait_time` (Go
//!   duration, default `3s`); `max_lines` (default 128, 0 for no limit).
//! * Blocks are kept per stream (label set). Until a stream has seen a first line, its lines pass
//!   through untouched. After that every line joins the stream's block, with `"\n"` between lines.
//! * `max_bytes` (logferry's; a byte size such as `1MB`, default 1 MiB, 0 for no limit) bounds the
//!   text a block holds, which `max_lines` alone does not (128 lines of 4 MB are half a gigabyte per
//!   stream): a line that would take a non-empty block past it emits the block first, and a block
//!   that reaches it (a single line larger than the limit) is emitted at once. Loki refuses entries
//!   far shorter anyway (its `max_line_size` defaults to 256 KB). A block cut this way goes on as
//!   after `max_lines`: the next lines join a new block with the same first-line entry.
//! * A block is emitted when the next first line arrives, when it reaches `max_lines` or `max_bytes`,
//!   when the stream has been idle for `max_wait_time` ([`Stage::next_deadline`] /
//!   [`Stage::flush_expired`], so it is emitted even if the file stays idle), and at the end
//!   ([`Stage::flush_all`]).
//! * The emitted entry has the first line's timestamp, labels, extracted values and structured
//!   metadata. (Promtail drops the structured metadata of joined entries; logferry keeps the first
//!   line's.)
//! * Promtail's quirk is kept: after a block is emitted by timeout, `max_lines` or `max_bytes`, a following line
//!   that is not a first line starts a new block that reuses the previous first line's timestamp,
//!   labels and extracted values.
//! * Held blocks report where their first line starts ([`Stage::held_origin`]).
//!
//! The body is decoded like mapstructure's `WeakDecode` ([`super::weak`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use super::{invalid, weak};
use crate::entry::Labels;
use crate::stage::{decode, Item, Stage, StageFactory};

const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3);
const DEFAULT_MAX_LINES: u64 = 128;
const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

#[derive(Deserialize)]
struct Config {
    firstline: Option<serde_yaml_ng::Value>,
    max_wait_time: Option<serde_yaml_ng::Value>,
    max_lines: Option<serde_yaml_ng::Value>,
    max_bytes: Option<serde_yaml_ng::Value>,
}

struct Settings {
    firstline: Regex,
    max_wait: Duration,
    max_lines: u64,
    /// 0 for no limit.
    max_bytes: u64,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("multiline", body).map_err(invalid)?;
    let Some(firstline) = &cfg.firstline else {
        return Err(invalid(
            "multiline stage config must define `firstline` regular expression",
        ));
    };
    let firstline = weak::string("firstline", firstline).map_err(invalid)?;
    let firstline = super::regex::compile(&firstline).map_err(|e| {
        invalid(format_args!(
            "multiline stage first line regex compilation error: {e}"
        ))
    })?;
    let max_wait = match &cfg.max_wait_time {
        Some(v) => {
            let text = weak::string("max_wait_time", v).map_err(invalid)?;
            crate::config::parse_go_duration(&text).map_err(|e| {
                invalid(format_args!(
                    "multiline stage `max_wait_time` parse error: {e}"
                ))
            })?
        }
        None => DEFAULT_MAX_WAIT,
    };
    let max_lines = match &cfg.max_lines {
        Some(serde_yaml_ng::Value::Null) | None => DEFAULT_MAX_LINES,
        Some(v) => weak::unsigned("max_lines", v).map_err(invalid)?,
    };
    let max_bytes = match &cfg.max_bytes {
        Some(serde_yaml_ng::Value::Null) | None => DEFAULT_MAX_BYTES,
        Some(serde_yaml_ng::Value::Number(n)) => n.as_u64().ok_or_else(|| {
            invalid(format_args!(
                "multiline stage `max_bytes` must be a byte size, got {n}"
            ))
        })?,
        Some(v) => {
            let text = weak::string("max_bytes", v).map_err(invalid)?;
            crate::config::parse_byte_size(&text).map_err(|e| {
                invalid(format_args!("multiline stage `max_bytes` parse error: {e}"))
            })?
        }
    };
    Ok(Arc::new(MultilineFactory {
        settings: Arc::new(Settings {
            firstline,
            max_wait,
            max_lines,
            max_bytes,
        }),
    }))
}

struct MultilineFactory {
    settings: Arc<Settings>,
}

impl StageFactory for MultilineFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Multiline {
            settings: self.settings.clone(),
            streams: HashMap::new(),
        })
    }
}

struct Multiline {
    settings: Arc<Settings>,
    streams: HashMap<Labels, Block>,
}

/// A stream's block. It outlives its flushes: `start` is reused by the quirk described above.
struct Block {
    /// The entry of the block's first line (its `line` is unused: the text is in `buffer`).
    start: Item,
    buffer: String,
    lines: u64,
    /// Where the first line in `buffer` starts.
    origin: u64,
    /// When the stream has been idle for `max_wait_time`.
    deadline: Instant,
}

impl Block {
    /// Take the buffered text and where it starts, if any. Like Promtail, an empty buffer is not
    /// emitted and leaves the line count as it is.
    fn take_text(&mut self) -> Option<(String, u64)> {
        if self.buffer.is_empty() {
            return None;
        }
        self.lines = 0;
        Some((std::mem::take(&mut self.buffer), self.origin))
    }

    /// Emit the buffered text as an entry copied from `start`, which stays for the quirk above.
    fn flush(&mut self, out: &mut Vec<Item>) {
        if let Some((line, origin)) = self.take_text() {
            out.push(Item {
                timestamp: self.start.timestamp,
                line,
                labels: self.start.labels.clone(),
                metadata: self.start.metadata.clone(),
                extracted: self.start.extracted.clone(),
                origin,
            });
        }
    }

    /// A new first line: emit the block (moving the old start entry, no copy) and start over.
    fn restart(&mut self, start: Item, out: &mut Vec<Item>) {
        let old = std::mem::replace(&mut self.start, start);
        if let Some((line, origin)) = self.take_text() {
            out.push(Item {
                line,
                origin,
                ..old
            });
        }
    }

    /// Add a line; the block is emitted when it reaches `max_lines` or `max_bytes`, and before the
    /// line if the line would take it past `max_bytes`.
    fn add(
        &mut self,
        line: &str,
        origin: u64,
        deadline: Instant,
        settings: &Settings,
        out: &mut Vec<Item>,
    ) {
        let max_bytes = usize::try_from(settings.max_bytes).unwrap_or(usize::MAX);
        if max_bytes > 0
            && !self.buffer.is_empty()
            && self.buffer.len() + 1 + line.len() > max_bytes
        {
            self.flush(out);
        }
        if self.buffer.is_empty() {
            self.origin = origin;
        } else {
            self.buffer.push('\n');
        }
        self.buffer.push_str(line);
        self.lines += 1;
        self.deadline = deadline;
        if self.lines == settings.max_lines || (max_bytes > 0 && self.buffer.len() >= max_bytes) {
            self.flush(out);
        }
    }
}

impl Stage for Multiline {
    fn name(&self) -> &'static str {
        "multiline"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let first = self.settings.firstline.is_match(&item.line);
        let deadline = Instant::now() + self.settings.max_wait;
        let line = std::mem::take(&mut item.line);
        let origin = item.origin;
        if let Some(block) = self.streams.get_mut(item.labels.map()) {
            if first {
                block.restart(item, out);
            }
            block.add(&line, origin, deadline, &self.settings, out);
            return;
        }
        if !first {
            // No block has started for this stream: pass the line through.
            item.line = line;
            out.push(item);
            return;
        }
        let labels = item.labels.map().clone();
        let mut block = Block {
            start: item,
            buffer: String::new(),
            lines: 0,
            origin,
            deadline,
        };
        block.add(&line, origin, deadline, &self.settings, out);
        self.streams.insert(labels, block);
    }

    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Item>) {
        let mut due: Vec<&mut Block> = self
            .streams
            .values_mut()
            .filter(|b| !b.buffer.is_empty() && b.deadline <= now)
            .collect();
        due.sort_unstable_by_key(|b| b.origin);
        for block in due {
            block.flush(out);
        }
    }

    fn flush_all(&mut self, out: &mut Vec<Item>) {
        let mut held: Vec<&mut Block> = self
            .streams
            .values_mut()
            .filter(|b| !b.buffer.is_empty())
            .collect();
        held.sort_unstable_by_key(|b| b.origin);
        for block in held {
            block.flush(out);
        }
    }

    fn held_origin(&self) -> Option<u64> {
        self.streams
            .values()
            .filter(|b| !b.buffer.is_empty())
            .map(|b| b.origin)
            .min()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter(|b| !b.buffer.is_empty())
            .map(|b| b.deadline)
            .min()
    }
}
