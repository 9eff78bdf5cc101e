//! A cap on how deeply a config nests, checked on the raw text before any YAML parser sees it.
//!
//! Both parsers are slow on deep flow nesting: libyaml (under serde_yaml_ng) and yaml-rust2 keep one
//! possible simple key per open `[`/`{` and revisit all of them for every token, so 100 000 nested
//! brackets (200 KB) take close to a minute before serde_yaml_ng's own recursion limit (128 levels)
//! even gets to reject them. Neither parser stops early either: both read the whole flow collection
//! before they hand out its first event. So the depth is estimated here with a small lexical scan, linear
//! in the text, and a config nested deeper than [`MAX_DEPTH`] is refused at the bracket, dash or key
//! that goes too deep.
//!
//! The scan knows just enough YAML to count collections: block collections by the columns their lines
//! start at (a `- ` or a `key:` opens one, and `key:` followed by `- ` at the same column opens two),
//! flow collections by their brackets, skipping comments, quoted scalars and block scalars, and ignoring
//! brackets inside plain scalars (`regex: ^[a-z]+$`). It may count a little low on unusual layouts, never
//! high, so it cannot refuse a config that the parsers accept; serde_yaml_ng's limit stays behind it.

use super::locate::Location;

/// The deepest nesting a config may have: serde_yaml_ng's own recursion limit (a deeper document fails
/// to deserialize anyway). Real configs stay under 20.
pub const MAX_DEPTH: usize = 128;

/// Where the text first nests deeper than `limit` collections, if it does.
pub fn too_deep(text: &str, limit: usize) -> Option<Location> {
    let mut scan = Scan {
        limit,
        block: Vec::new(),
        flow: 0,
        quote: None,
        block_scalar: None,
    };
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        if let Some(column) = scan.line(line) {
            return Some(Location {
                line: n + 1,
                column: column + 1,
            });
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
}

struct Scan {
    limit: usize,
    /// Open block collections: the column each starts at, innermost last.
    block: Vec<(usize, Kind)>,
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Inside a quoted scalar that goes on past the end of a line.
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`): lines indented more than this column (or blank) belong to it.
    block_scalar: Option<isize>,
}

fn is_blank(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t'))
}

impl Scan {
    /// Scans one line; the column where the limit is passed, if it is.
    fn line(&mut self, line: &[u8]) -> Option<usize> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        if let Some(parent) = self.block_scalar {
            if indent == line.len() || indent as isize > parent {
                return None;
            }
            self.block_scalar = None;
        }
        let mut pos = 0;
        // A line that starts inside a quoted scalar or a flow collection continues it.
        let mut pending_map = None;
        if self.quote.is_none() && self.flow == 0 {
            let rest = &line[indent..];
            if rest.is_empty() || rest[0] == b'#' {
                return None;
            }
            if indent == 0 && rest.starts_with(b"%") {
                return None;
            }
            if indent == 0
                && (rest.starts_with(b"---") || rest.starts_with(b"..."))
                && is_blank(rest.get(3))
            {
                self.block.clear();
                pos = 3;
            } else {
                while self.block.last().is_some_and(|&(col, _)| col > indent) {
                    self.block.pop();
                }
                pos = indent;
                // `- `, `? ` and `: ` (a complex key's value) each open a node at the next column;
                // `- - x` is two sequences.
                while matches!(line.get(pos), Some(b'-' | b'?' | b':'))
                    && is_blank(line.get(pos + 1))
                {
                    if line[pos] != b':' {
                        if let Some(col) = self.open_block(pos, Kind::Seq) {
                            return Some(col);
                        }
                    }
                    pos += 1;
                    while matches!(line.get(pos), Some(b' ' | b'\t')) {
                        pos += 1;
                    }
                }
                pending_map = Some(pos);
            }
        }
        self.inline(line, pos, pending_map)
    }

    /// Opens a block collection of `kind` at `col` unless the line continues the open one.
    fn open_block(&mut self, col: usize, kind: Kind) -> Option<usize> {
        match self.block.last() {
            Some(&(top, top_kind)) if top == col => {
                if top_kind == kind {
                    return None;
                }
                if kind == Kind::Map {
                    // A key after a sequence written at its parent key's column ends that sequence.
                    let below = self.block.len().checked_sub(2).map(|i| self.block[i]);
                    if below == Some((col, Kind::Map)) {
                        self.block.pop();
                        return None;
                    }
                }
                if kind == Kind::Seq && top_kind == Kind::Map {
                    // `key:` then `- item` at the same column: the sequence is the key's value.
                    self.block.push((col, kind));
                    return self.check(col);
                }
                None
            }
            _ => {
                self.block.push((col, kind));
                self.check(col)
            }
        }
    }

    fn check(&self, col: usize) -> Option<usize> {
        (self.block.len() + self.flow > self.limit).then_some(col)
    }

    /// Scans the rest of a line from `pos`. `pending_map` is the column of the node the line starts,
    /// which is a mapping if a `: ` follows.
    fn inline(
        &mut self,
        line: &[u8],
        mut pos: usize,
        mut pending_map: Option<usize>,
    ) -> Option<usize> {
        // Whether a node may start here: a quote, bracket or block scalar indicator is syntax only then.
        let mut at_start = true;
        while pos < line.len() {
            let c = line[pos];
            if let Some(q) = self.quote {
                match c {
                    b'\\' if q == b'"' => pos += 1,
                    b'\'' if q == b'\'' && line.get(pos + 1) == Some(&b'\'') => pos += 1,
                    _ if c == q => {
                        self.quote = None;
                        at_start = false;
                    }
                    _ => {}
                }
                pos += 1;
                continue;
            }
            match c {
                b' ' | b'\t' => {}
                b'#' if pos == 0 || is_blank(line.get(pos - 1)) => return None,
                b'"' | b'\'' if at_start => self.quote = Some(c),
                b'[' | b'{' if at_start || self.flow > 0 => {
                    self.flow += 1;
                    if let Some(col) = self.check(pos) {
                        return Some(col);
                    }
                    at_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    at_start = false;
                }
                b',' if self.flow > 0 => at_start = true,
                b':' if self.flow > 0 => at_start = true,
                b':' if is_blank(line.get(pos + 1)) => {
                    if let Some(col) = pending_map.take() {
                        if let Some(too_deep) = self.open_block(col, Kind::Map) {
                            return Some(too_deep);
                        }
                    }
                    at_start = true;
                }
                b'|' | b'>' if at_start && self.flow == 0 => {
                    let parent = self.block.last().map_or(-1, |&(col, _)| col as isize);
                    self.block_scalar = Some(parent);
                    return None;
                }
                // An anchor or a tag before a node: the node starts after it.
                b'&' | b'!' if at_start => {
                    while pos < line.len() && !is_blank(line.get(pos)) {
                        pos += 1;
                    }
                    continue;
                }
                _ => at_start = false,
            }
            pos += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        (0..=200)
            .find(|&limit| too_deep(text, limit).is_none())
            .unwrap()
    }

    #[test]
    fn counts_block_and_flow_collections() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("a: 1\n", 1),
            ("a:\n  b: 1\n", 2),
            ("a:\n  b:\n    c: [1, {d: e}]\n", 5),
            ("a:\n- b\n- c\n", 2),
            ("a:\n- b:\n  - c\n  d: e\nf: g\n", 4),
            ("- - - x\n", 3),
            ("- a: 1\n  b: 2\n- c\n", 2),
            ("a: [\n  [1,\n   2],\n]\n", 3),
            ("--- [[x]]\n", 2),
            ("a: &x [1]\nb: !!seq [2]\n", 2),
            // Brackets, quotes and indicators that are text.
            ("regex: ^[a-z]+{2}$\n", 1),
            ("a: it's [x]\nb: {c: d}\n", 2),
            ("a: '[[[' # [[[\nb: \"x\\\"[[\"\n", 1),
            ("a: |\n  [[[\n  - - x\n  k: v\nb: 1\n", 1),
            ("- >-\n  {{{{\n", 1),
            ("a: \"multi\n  line [[ \"\nb: [c]\n", 2),
            ("url: http://a:80/x?y=[1]\n", 1),
        ];
        for (text, want) in cases {
            assert_eq!(depth(text), *want, "{text:?}");
        }
    }

    #[test]
    fn points_at_the_collection_that_goes_too_deep() {
        let flow = format!("a: {}{}\n", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(
            too_deep(&flow, MAX_DEPTH),
            Some(Location {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
        let dashes = "- ".repeat(1000) + "x\n";
        assert_eq!(
            too_deep(&dashes, MAX_DEPTH),
            Some(Location {
                line: 1,
                column: 2 * MAX_DEPTH + 1
            })
        );
        let mut block = String::new();
        for level in 0..200 {
            block.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert_eq!(
            too_deep(&block, MAX_DEPTH),
            Some(Location {
                line: MAX_DEPTH + 1,
                column: MAX_DEPTH + 1
            })
        );
        assert_eq!(too_deep(&block, 200), None);
    }

    #[test]
    fn is_linear_in_deep_text() {
        let text = "[".repeat(1_000_000);
        let start = std::time::Instant::now();
        assert!(too_deep(&text, MAX_DEPTH).is_some());
        assert!(too_deep(&text, usize::MAX).is_none());
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
