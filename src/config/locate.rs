//! Line and column for any key path, from a second, marked parse of the same text.
//!
//! serde_yaml_ng reports a position only for errors raised while it is looking at a node. Checks that run
//! after deserializing (duplicate `job_name`, conflicting auth settings, stage names inside `match`) and
//! duplicate keys inside maps (which serde's map visitors silently merge) need positions too, so the text
//! is parsed once more with yaml-rust2's event parser, which marks every event. [`SourceMap`] remembers,
//! for every node, where its key and its value start, under the same path syntax the errors print
//! (`scrape_configs[0].pipeline_stages[2].match`), and every duplicate key it met.
//!
//! yaml-rust2 is a different parser from libyaml (which serde_yaml_ng wraps). If it rejects a document
//! libyaml accepts, the map is simply unavailable and errors carry no line:column rather than a wrong one.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl From<Marker> for Location {
    fn from(m: Marker) -> Self {
        Location {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// A key written twice in the same mapping (gopkg.in/yaml.v2's strict mode rejects these everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Path of the mapping that holds the key.
    pub parent: String,
    pub key: String,
    /// The second occurrence.
    pub at: Location,
    pub first: Location,
}

#[derive(Debug, Clone, Copy)]
struct Marks {
    key: Option<Location>,
    value: Location,
}

/// Positions of every node of a YAML document, by key path.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    nodes: HashMap<String, Marks>,
    pub duplicates: Vec<DuplicateKey>,
    /// The document uses YAML merge keys (`<<: *anchor`).
    pub merge_keys: bool,
}

/// Appends a mapping key to a path: `a` + `b` = `a.b`, `` + `b` = `b`.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a sequence index to a path: `a` + 2 = `a[2]`.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    Map {
        path: String,
        seen: HashMap<String, Location>,
        /// The key whose value comes next; `None` while waiting for a key.
        pending: Option<(String, Location)>,
        has_key: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

impl SourceMap {
    /// Parses the first document of `text`. `None` if yaml-rust2 cannot parse it.
    pub fn parse(text: &str) -> Option<SourceMap> {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        // Depth inside a complex (non-scalar) mapping key, whose contents have no path.
        let mut skipping = 0usize;
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, marker) = parser.next_token().ok()?;
            let at = Location::from(marker);
            if skipping > 0 {
                match event {
                    Event::MappingStart(..) | Event::SequenceStart(..) => skipping += 1,
                    Event::MappingEnd | Event::SequenceEnd => skipping -= 1,
                    _ => {}
                }
                if skipping == 0 {
                    map.set_pending_key(&mut stack, "?".to_string(), at);
                }
                continue;
            }
            match event {
                Event::StreamEnd | Event::DocumentEnd => return Some(map),
                Event::Scalar(ref text, ..) if map.expects_key(&stack) => {
                    map.set_pending_key(&mut stack, text.clone(), at)
                }
                Event::Alias(_) if map.expects_key(&stack) => {
                    map.set_pending_key(&mut stack, "*".into(), at)
                }
                Event::MappingStart(..) | Event::SequenceStart(..) if map.expects_key(&stack) => {
                    skipping = 1
                }
                Event::Scalar(..) | Event::Alias(_) => {
                    map.record_value(&mut stack, at);
                }
                Event::MappingStart(..) => {
                    let path = map.record_value(&mut stack, at);
                    stack.push(Frame::Map {
                        path,
                        seen: HashMap::new(),
                        pending: None,
                        has_key: false,
                    });
                }
                Event::SequenceStart(..) => {
                    let path = map.record_value(&mut stack, at);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Nothing | Event::StreamStart | Event::DocumentStart => {}
            }
        }
    }

    fn expects_key(&self, stack: &[Frame]) -> bool {
        matches!(stack.last(), Some(Frame::Map { pending: None, .. }))
    }

    fn set_pending_key(&mut self, stack: &mut [Frame], key: String, at: Location) {
        let Some(Frame::Map {
            path,
            seen,
            pending,
            has_key,
        }) = stack.last_mut()
        else {
            return;
        };
        if !*has_key {
            // A block mapping's start mark is unreliable; its first key is where the mapping visibly starts.
            *has_key = true;
            if let Some(marks) = self.nodes.get_mut(path.as_str()) {
                marks.value = at;
            }
        }
        self.merge_keys |= key == "<<";
        if let Some(first) = seen.get(&key) {
            self.duplicates.push(DuplicateKey {
                parent: path.clone(),
                key: key.clone(),
                at,
                first: *first,
            });
        } else {
            seen.insert(key.clone(), at);
        }
        *pending = Some((key, at));
    }

    /// Records a value node under the path its parent gives it, and returns that path.
    fn record_value(&mut self, stack: &mut [Frame], at: Location) -> String {
        let (path, key) = match stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                (join_index(path, *next - 1), None)
            }
            Some(Frame::Map { path, pending, .. }) => match pending.take() {
                Some((key, key_at)) => (join_key(path, &key), Some(key_at)),
                None => (join_key(path, "?"), None),
            },
        };
        // The first occurrence of a duplicated key keeps its entry; the duplicate is reported anyway.
        self.nodes
            .entry(path.clone())
            .or_insert(Marks { key, value: at });
        path
    }

    /// Where the node at `path` is introduced: its key for a mapping member, the item itself in a list.
    /// Falls back to the nearest ancestor that exists (e.g. when the path runs through an alias).
    pub fn key(&self, path: &str) -> Option<Location> {
        self.nearest(path).map(|m| m.key.unwrap_or(m.value))
    }

    /// Where the value of the node at `path` starts (for a mapping, its first key).
    pub fn value(&self, path: &str) -> Option<Location> {
        self.nearest(path).map(|m| m.value)
    }

    /// The key position of exactly `path` (no ancestor fallback).
    pub fn exact_key(&self, path: &str) -> Option<Location> {
        self.nodes.get(path).map(|m| m.key.unwrap_or(m.value))
    }

    /// The value position of exactly `path` (no ancestor fallback).
    pub fn exact_value(&self, path: &str) -> Option<Location> {
        self.nodes.get(path).map(|m| m.value)
    }

    fn nearest(&self, path: &str) -> Option<&Marks> {
        let mut path = path;
        loop {
            if let Some(marks) = self.nodes.get(path) {
                return Some(marks);
            }
            if path.is_empty() {
                return None;
            }
            path = parent_path(path);
        }
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``.
pub fn parent_path(path: &str) -> &str {
    let cut = if path.ends_with(']') {
        path.rfind('[')
    } else {
        path.rfind('.')
    };
    match cut {
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
server:
  http_listen_port: 9080
clients:
  - url: http://a
    tenant_id: t
  - url: http://b
scrape_configs:
- job_name: varlogs
  pipeline_stages:
    - regex:
        expression: '^(?P<x>.*)$'
    - match:
        selector: '{app=\"a\"}'
        stages:
        - labels: {x: }
  static_configs: [{targets: [localhost], labels: {job: v, __path__: /var/log/*.log}}]
? [complex, key]
: ignored
";

    fn loc(line: usize, column: usize) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn finds_keys_and_values_by_path() {
        let map = SourceMap::parse(DOC).unwrap();
        let cases: &[(&str, Option<Location>, Option<Location>)] = &[
            ("server", loc(1, 1), loc(2, 3)),
            ("server.http_listen_port", loc(2, 3), loc(2, 21)),
            ("clients", loc(3, 1), loc(4, 3)),
            ("clients[0]", loc(4, 5), loc(4, 5)),
            ("clients[1].url", loc(6, 5), loc(6, 10)),
            ("scrape_configs[0].job_name", loc(8, 3), loc(8, 13)),
            (
                "scrape_configs[0].pipeline_stages[0]",
                loc(10, 7),
                loc(10, 7),
            ),
            (
                "scrape_configs[0].pipeline_stages[1].match.stages[0]",
                loc(15, 11),
                loc(15, 11),
            ),
            // An empty value is marked where yaml-rust2 inferred it, right after the colon.
            (
                "scrape_configs[0].pipeline_stages[1].match.stages[0].labels.x",
                loc(15, 20),
                loc(15, 21),
            ),
            (
                "scrape_configs[0].static_configs[0].labels.__path__",
                loc(16, 60),
                loc(16, 70),
            ),
            // Missing leaves fall back to their nearest ancestor.
            ("clients[0].basic_auth.password", loc(4, 5), loc(4, 5)),
            ("", loc(1, 1), loc(1, 1)),
        ];
        for (path, key, value) in cases {
            assert_eq!(map.key(path), *key, "key of {path}");
            assert_eq!(map.value(path), *value, "value of {path}");
        }
        assert!(map.duplicates.is_empty());
    }

    #[test]
    fn reports_duplicate_keys_with_both_positions() {
        let map = SourceMap::parse("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 2\n").unwrap();
        let dup = |parent: &str, key: &str, at, first| DuplicateKey {
            parent: parent.into(),
            key: key.into(),
            at: Location {
                line: at,
                column: if parent.is_empty() { 1 } else { 3 },
            },
            first: Location {
                line: first,
                column: if parent.is_empty() { 1 } else { 3 },
            },
        };
        assert_eq!(
            map.duplicates,
            vec![dup("b", "x", 5, 3), dup("", "a", 6, 1)]
        );
        // The first occurrence keeps the path.
        assert_eq!(map.value("a"), loc(1, 4));
    }

    #[test]
    fn unparsable_text_gives_no_map() {
        assert!(SourceMap::parse("a: [\n").is_none());
        assert!(SourceMap::parse("").is_some());
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2].c"), "a.b[2]");
        assert_eq!(parent_path("a.b[2]"), "a.b");
        assert_eq!(parent_path("a"), "");
    }
}
