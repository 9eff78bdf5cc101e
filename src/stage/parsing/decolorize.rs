//! `decolorize`: remove ANSI color and cursor escape sequences from the line (Promtail's
//! `decolorize.go`, which runs LogQL's `decolorize` with the stripansi pattern; compat reference §5.2).
//! The stage takes no options.

use std::sync::{Arc, LazyLock};

use regex::Regex;

use crate::stage::{Item, Stage, StageFactory};

/// The stripansi pattern Loki uses, in Go syntax (`\d` is ASCII there).
const ANSI_PATTERN: &str = "[\u{1b}\u{9b}][[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?\u{7})|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))";

static ANSI: LazyLock<Regex> =
    LazyLock::new(|| super::regex::compile(ANSI_PATTERN).expect("the stripansi pattern compiles"));

pub fn factory() -> Arc<dyn StageFactory> {
    Arc::new(DecolorizeFactory)
}

struct DecolorizeFactory;

impl StageFactory for DecolorizeFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Decolorize)
    }
}

struct Decolorize;

impl Stage for Decolorize {
    fn name(&self) -> &'static str {
        "decolorize"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        // Every sequence starts with ESC or U+009B (UTF-8 C2 9B); most lines have neither.
        let bytes = item.line.as_bytes();
        if memchr::memchr2(0x1b, 0xc2, bytes).is_some() {
            if let std::borrow::Cow::Owned(clean) = ANSI.replace_all(&item.line, "") {
                item.line = clean;
            }
        }
        out.push(item);
    }
}
