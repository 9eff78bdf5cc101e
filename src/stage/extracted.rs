//! [`Extracted`]: the values stages extract from an entry, keyed by name, with Promtail's JSON types
//! (string, number, bool, null; arrays and objects only as a `json` source's parsed form).
//!
//! Promtail gives every entry a fresh Go map. Here a map is recycled: the pipeline hands each new
//! entry a map that the previous one left, with every value marked absent but its key and string
//! buffer kept. The usual pipeline then sets the same few keys on every entry (the labels copied in at
//! start, the fields a `json` or `regex` stage extracts) and none of that allocates: the key is found
//! in place and the string is written into the buffer the previous entry's value left.
//!
//! A map holds a handful of keys, so lookups scan them (comparing lengths first), starting after the
//! key found last: a pipeline reads and writes its keys in the same order for every entry, so the
//! first comparison usually hits. Past [`LINEAR_MAX`] keys a hash index is kept beside them. A recycled map that has grown past
//! [`KEEP_MAX_KEYS`] keys, or a value past [`KEEP_MAX_BYTES`], is let go instead of kept, so one odd
//! entry does not pin memory for the life of the pipeline.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

/// Up to this many keys, lookups scan; beyond it a hash index is kept.
const LINEAR_MAX: usize = 24;
/// A recycled map keeps its keys up to this many; a larger one starts empty.
const KEEP_MAX_KEYS: usize = 128;
/// A recycled string buffer is kept up to this size.
const KEEP_MAX_BYTES: usize = 4096;

#[derive(Clone, Default)]
pub struct Extracted {
    slots: Vec<Slot>,
    live: usize,
    /// Key → slot, once there are more than [`LINEAR_MAX`] slots.
    index: Option<HashMap<String, usize>>,
    /// Where the next scan starts: the slot after the one found last.
    hint: Cell<usize>,
}

#[derive(Clone)]
struct Slot {
    key: String,
    value: Value,
    /// False once the value was removed or the map recycled: the key and buffer stay for reuse.
    live: bool,
    /// The value is a label copied in at pipeline start ([`Extracted::seed_str`]) that no stage
    /// has set since: not one of the fields the stages extracted ([`Extracted::stage_fields`]).
    seeded: bool,
}

impl Extracted {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Extracted {
            slots: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, key: &str) -> Option<usize> {
        if let Some(index) = &self.index {
            return index.get(key).copied();
        }
        let start = self.hint.get().min(self.slots.len());
        let (after, before) = (&self.slots[start..], &self.slots[..start]);
        let found = match after.iter().position(|s| s.key == key) {
            Some(i) => start + i,
            None => before.iter().position(|s| s.key == key)?,
        };
        self.hint.set(found + 1);
        Some(found)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let slot = &self.slots[self.find(key)?];
        slot.live.then_some(&slot.value)
    }

    /// The value of `key` to change in place (it then counts as set by a stage).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = self.find(key)?;
        let slot = &mut self.slots[i];
        slot.seeded = false;
        slot.live.then_some(&mut slot.value)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The slot for `key`, made live; its old value (a dead slot's leftover) is still in it.
    fn slot(&mut self, key: &str) -> &mut Value {
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    key: key.to_owned(),
                    value: Value::Null,
                    live: false,
                    seeded: false,
                });
                let i = self.slots.len() - 1;
                if let Some(index) = &mut self.index {
                    index.insert(key.to_owned(), i);
                } else if self.slots.len() > LINEAR_MAX {
                    let index = self
                        .slots
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.key.clone(), i))
                        .collect();
                    self.index = Some(index);
                }
                i
            }
        };
        let slot = &mut self.slots[i];
        if !slot.live {
            slot.live = true;
            self.live += 1;
        }
        slot.seeded = false;
        &mut slot.value
    }

    /// Set `key` to `value`; the old value, if `key` had one.
    pub fn insert(&mut self, key: impl AsRef<str>, value: Value) -> Option<Value> {
        let key = key.as_ref();
        let had = self.contains_key(key);
        let old = std::mem::replace(self.slot(key), value);
        had.then_some(old)
    }

    /// Set `key` to `value` without returning the old value.
    pub fn set(&mut self, key: &str, value: Value) {
        *self.slot(key) = value;
    }

    /// Set `key` to the string `value`, writing it into the buffer the old value left when it was a
    /// string (live or not).
    pub fn set_str(&mut self, key: &str, value: &str) {
        match self.slot(key) {
            Value::String(s) => {
                s.clear();
                s.push_str(value);
            }
            other => *other = Value::String(value.to_owned()),
        }
    }

    /// Set `key` to a label's value at pipeline start, as Promtail copies every label into the
    /// map; unlike [`Extracted::set_str`], the value is not one the stages extracted.
    pub fn seed_str(&mut self, key: &str, value: &str) {
        self.set_str(key, value);
        if let Some(i) = self.find(key) {
            self.slots[i].seeded = true;
        }
    }

    /// The values stages set, leaving out labels copied in at pipeline start that no stage set
    /// again, in the order the keys were first set.
    pub fn stage_fields(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.slots
            .iter()
            .filter(|s| s.live && !s.seeded)
            .map(|s| (&s.key, &s.value))
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.find(key)?;
        let slot = &mut self.slots[i];
        if !slot.live {
            return None;
        }
        slot.live = false;
        self.live -= 1;
        Some(std::mem::replace(&mut slot.value, Value::Null))
    }

    /// Every value, in the order the keys were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.slots
            .iter()
            .filter(|s| s.live)
            .map(|s| (&s.key, &s.value))
    }

    /// Mark every value absent, keeping keys and string buffers for the next entry (see the module
    /// doc); a map that grew large is emptied instead.
    pub fn recycle(&mut self) {
        if self.slots.len() > KEEP_MAX_KEYS {
            *self = Extracted::default();
            return;
        }
        for slot in &mut self.slots {
            slot.live = false;
            match &slot.value {
                Value::String(s) if s.capacity() <= KEEP_MAX_BYTES => {}
                Value::Null => {}
                _ => slot.value = Value::Null,
            }
        }
        self.live = 0;
    }
}

impl std::ops::Index<&str> for Extracted {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        self.get(key).expect("no such key in extracted")
    }
}

impl PartialEq for Extracted {
    fn eq(&self, other: &Self) -> bool {
        self.live == other.live && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl fmt::Debug for Extracted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Extracted {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut map = Extracted::new();
        map.extend(iter);
        map
    }
}

impl<K: AsRef<str>> Extend<(K, Value)> for Extracted {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.set(k.as_ref(), v);
        }
    }
}

impl IntoIterator for Extracted {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        let pairs: Vec<(String, Value)> = self
            .slots
            .into_iter()
            .filter_map(|s| s.live.then_some((s.key, s.value)))
            .collect();
        pairs.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn behaves_as_a_map() {
        let mut m = Extracted::new();
        assert_eq!(m.insert("a", json!(1)), None);
        assert_eq!(m.insert("a", json!("x")), Some(json!(1)));
        m.set_str("b", "y");
        assert_eq!(
            (m.get("a"), m.get("b"), m.len()),
            (Some(&json!("x")), Some(&json!("y")), 2)
        );
        assert_eq!(m.remove("a"), Some(json!("x")));
        assert_eq!(m.get("a"), None);
        assert_eq!((m.remove("a"), m.len()), (None, 1));
        m.set("a", json!(null));
        assert!(m.contains_key("a"), "null is a present value");
        let pairs: Vec<(String, Value)> = m.clone().into_iter().collect();
        assert_eq!(
            pairs,
            vec![("a".into(), json!(null)), ("b".into(), json!("y"))]
        );
        assert_eq!(m, pairs.into_iter().collect());
    }

    #[test]
    fn recycling_keeps_keys_and_buffers_but_no_values() {
        let mut m = Extracted::new();
        m.set_str("msg", "a long enough message");
        m.set("n", json!(3));
        let buffer = match m.get("msg") {
            Some(Value::String(s)) => s.as_ptr(),
            _ => unreachable!(),
        };
        m.recycle();
        assert!(m.is_empty() && m.get("msg").is_none() && m.iter().next().is_none());
        m.set_str("msg", "short");
        match m.get("msg") {
            Some(Value::String(s)) => assert_eq!((s.as_str(), s.as_ptr()), ("short", buffer)),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.get("n"), None);
    }

    #[test]
    fn many_keys_use_an_index_and_a_huge_map_is_dropped_on_recycle() {
        let mut m = Extracted::new();
        for i in 0..(KEEP_MAX_KEYS + 1) {
            m.set_str(&format!("k{i}"), "v");
        }
        assert!(m.index.is_some());
        assert_eq!(m.get("k100"), Some(&json!("v")));
        assert_eq!(m.len(), KEEP_MAX_KEYS + 1);
        m.recycle();
        assert!(m.slots.is_empty() && m.index.is_none());
    }
}
