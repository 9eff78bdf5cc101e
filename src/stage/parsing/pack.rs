//! `pack`: move chosen labels and extracted values into the line, as a JSON object that Loki's
//! `| unpack` reverses (Promtail's `pack.go`, docs `stages/pack.md`, compat reference §5.2).
//!
//! * `labels: [names]` are looked up in `extracted` (which holds the labels too); each one found with
//!   a string form is packed, and removed from the stream labels if it is one.
//! * The line becomes `{"k1":"v1",...,"_entry":"<line>"}`, keys sorted, `_entry` last, written as
//!   Promtail's json-iterator writes strings ([`crate::stage::gojson`]).
//! * `ingest_timestamp` (default true) sets the timestamp to the time of packing.
//!
//! The body is decoded like mapstructure's `WeakDecode` ([`super::weak`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{go_string, invalid, weak};
use crate::stage::gojson;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct Config {
    labels: Option<serde_yaml_ng::Value>,
    ingest_timestamp: Option<serde_yaml_ng::Value>,
}

pub fn factory(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: Config = decode("pack", body).map_err(invalid)?;
    let labels = match &cfg.labels {
        Some(v) => weak::string_list("labels", v).map_err(invalid)?,
        None => Vec::new(),
    };
    let ingest_timestamp = match &cfg.ingest_timestamp {
        Some(serde_yaml_ng::Value::Null) | None => true,
        Some(v) => weak::boolean("ingest_timestamp", v).map_err(invalid)?,
    };
    // Sorted and without duplicates: the order of the packed keys.
    let labels: BTreeSet<String> = labels.into_iter().collect();
    Ok(Arc::new(PackFactory {
        labels: Arc::new(labels.into_iter().collect()),
        ingest_timestamp,
    }))
}

struct PackFactory {
    labels: Arc<Vec<String>>,
    ingest_timestamp: bool,
}

impl StageFactory for PackFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Pack {
            labels: self.labels.clone(),
            ingest_timestamp: self.ingest_timestamp,
        })
    }
}

struct Pack {
    labels: Arc<Vec<String>>,
    ingest_timestamp: bool,
}

impl Stage for Pack {
    fn name(&self) -> &'static str {
        "pack"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let mut packed = String::with_capacity(item.line.len() + 32);
        packed.push('{');
        let mut found: Vec<&str> = Vec::new();
        for name in self.labels.iter() {
            let Some(value) = item.extracted.get(name).and_then(go_string) else {
                continue;
            };
            gojson::write_str(&mut packed, name);
            packed.push(':');
            gojson::write_str(&mut packed, &value);
            packed.push(',');
            found.push(name);
        }
        packed.push_str("\"_entry\":");
        gojson::write_str(&mut packed, &item.line);
        packed.push('}');

        if found.iter().any(|name| item.labels.get(name).is_some()) {
            let labels = item.labels.to_mut();
            for name in found {
                labels.remove(name);
            }
        }
        item.line = packed;
        if self.ingest_timestamp {
            item.timestamp = now_nanos();
        }
        out.push(item);
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
