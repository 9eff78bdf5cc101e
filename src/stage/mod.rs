//! Pipeline stages (`pipeline_stages`), run on the source's task, in order, as Promtail runs them.
//!
//! A [`PipelineSpec`] is built once per scrape config; every target (file, container, journal) gets its
//! own [`Pipeline`] from it, because stages such as `multiline` and `cri` keep state per stream. State
//! that Promtail shares across a job's targets (the `limit` buckets, `metrics` series) lives in the
//! stage's [`StageFactory`] and is shared by the instances it makes.
//!
//! An entry travels through the stages as an [`Item`]: the line, timestamp and structured metadata, its
//! stream labels (shared until a stage changes them, see [`ItemLabels`]) and the `extracted` map that
//! Promtail's stages read and write. At pipeline start every label is copied into `extracted`, as in
//! Promtail. A stage takes one item and pushes zero, one or more items to its output: pushing nothing
//! drops the item (filtering stages) or holds it back (`multiline` blocks, `cri` partial lines) until a
//! later item, a timeout ([`Stage::flush_expired`]) or the end ([`Stage::flush_all`]).
//!
//! Held items matter to the delivery contract: a source must not commit a position past a line a stage
//! still holds. Every item carries its `origin` (for files, the byte offset where its line starts), and
//! [`Pipeline::held_origin`] tells the source the oldest origin still held.
//!
//! Stage bodies are decoded leniently, as Promtail's mapstructure does: unknown keys are ignored, with a
//! warning that names them ([`decode`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::config::StageConfig;
use crate::entry::{Entry, ExtractedFields, LabelSet, Labels};

pub use extracted::Extracted;

/// Stream labels while an entry is in the pipeline: the source's shared set until a stage changes
/// them, then an owned map (turned back into a shared set, interned, when the entry leaves).
#[derive(Debug, Clone)]
pub enum ItemLabels {
    Shared(Arc<LabelSet>),
    Owned(Labels),
}

impl ItemLabels {
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            ItemLabels::Shared(s) => s.get(name),
            ItemLabels::Owned(m) => m.get(name).map(String::as_str),
        }
    }

    pub fn map(&self) -> &Labels {
        match self {
            ItemLabels::Shared(s) => s.labels(),
            ItemLabels::Owned(m) => m,
        }
    }

    /// The labels to change; copies the shared set the first time.
    pub fn to_mut(&mut self) -> &mut Labels {
        if let ItemLabels::Shared(s) = self {
            *self = ItemLabels::Owned(s.labels().clone());
        }
        match self {
            ItemLabels::Owned(m) => m,
            ItemLabels::Shared(_) => unreachable!("made owned above"),
        }
    }
}

/// An entry inside the pipeline.
#[derive(Debug, Clone)]
pub struct Item {
    /// Unix nanoseconds.
    pub timestamp: i64,
    pub line: String,
    pub labels: ItemLabels,
    pub metadata: Vec<(String, String)>,
    pub extracted: Extracted,
    /// Where the entry starts in its source (file byte offset); see the module doc.
    pub origin: u64,
}

impl Item {
    pub fn new(entry: Entry, origin: u64) -> Self {
        Self::with_extracted(entry, origin, Extracted::new())
    }

    /// An item whose `extracted` map is `extracted` (a recycled one: see [`Extracted::recycle`])
    /// with the entry's labels set in it.
    pub fn with_extracted(entry: Entry, origin: u64, mut extracted: Extracted) -> Self {
        for (k, v) in entry.labels.labels() {
            extracted.seed_str(k, v);
        }
        Item {
            timestamp: entry.timestamp,
            line: entry.line,
            labels: ItemLabels::Shared(entry.labels),
            metadata: entry.metadata,
            extracted,
            origin,
        }
    }
}

/// One pipeline stage instance.
pub trait Stage: Send {
    fn name(&self) -> &'static str;
    /// Take one item; push what goes on to `out` (nothing: dropped or held back).
    fn process(&mut self, item: Item, out: &mut Vec<Item>);
    /// Push held items whose time is up at `now`.
    fn flush_expired(&mut self, _now: Instant, _out: &mut Vec<Item>) {}
    /// Push every held item (shutdown, end of a rotated file).
    fn flush_all(&mut self, _out: &mut Vec<Item>) {}
    /// The oldest origin among held items, if any are held.
    fn held_origin(&self) -> Option<u64> {
        None
    }
    /// When `flush_expired` should be called next, if something is held with a timeout.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// Whether the stage is pacing entries (`limit` without `drop`) and wants no new input until
    /// those it holds are out: the source then reads nothing, sleeps until
    /// [`Stage::next_deadline`], flushes, and asks again, so the backlog waits in the file (or the
    /// journal, or the container's log) instead of in memory, as Promtail's blocking stage does.
    fn holds_back(&self) -> bool {
        false
    }
}

/// Builds a stage's instances; holds what the instances of one scrape config share.
pub trait StageFactory: Send + Sync {
    fn instantiate(&self) -> Box<dyn Stage>;
}

/// A stage that cannot be built; the caller places it in the file (`Config::error_at`).
#[derive(Debug, thiserror::Error)]
#[error("pipeline_stages[{index}]: stage {name:?} {reason}")]
pub struct StageError {
    pub index: usize,
    pub name: String,
    pub reason: String,
}

/// What stage builders may need besides their body.
#[derive(Clone)]
pub struct BuildContext {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub job: Arc<str>,
}

/// Decode a stage body leniently: unknown keys are ignored, as Promtail does, with a warning naming
/// them. `null` (a stage written as `- json:` with no body) decodes as an empty map.
pub fn decode<T: DeserializeOwned>(stage: &str, body: &serde_yaml_ng::Value) -> Result<T, String> {
    let body = match body {
        serde_yaml_ng::Value::Null => serde_yaml_ng::Value::Mapping(Default::default()),
        b => b.clone(),
    };
    let mut ignored = Vec::new();
    let value: T = serde_ignored::deserialize(body, |path| ignored.push(path.to_string()))
        .map_err(|e| e.to_string())?;
    for key in ignored {
        tracing::warn!(stage, key = %key, "unknown key in stage config ignored, as Promtail does");
    }
    Ok(value)
}

mod extracted;
pub mod filtering;
pub mod gojson;
pub mod inspect;
pub mod parsing;
pub mod transforming;
pub mod value;
pub mod weak;

/// What a family's builder answers: `None` if the stage is not one of its own.
pub type FamilyBuild =
    fn(&StageConfig, &BuildContext) -> Option<Result<Arc<dyn StageFactory>, String>>;

/// The stage families, as issue 4 and Promtail's docs group them, each asked in turn.
const FAMILIES: [FamilyBuild; 3] = [parsing::build, transforming::build, filtering::build];

/// Build one stage from its config.
pub fn build_stage(cfg: &StageConfig, ctx: &BuildContext) -> Result<Arc<dyn StageFactory>, String> {
    for family in FAMILIES {
        if let Some(built) = family(cfg, ctx) {
            return built.map(|f| inspect::wrap(&cfg.name, f));
        }
    }
    Err("is not supported yet by this version of logferry".into())
}

/// Which extracted values an entry keeps when it leaves the pipeline ([`Entry::extracted`]): what
/// the Elasticsearch sinks' `extracted_fields` ask for, together.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum KeepExtracted {
    /// None (no sink wants them): the map is recycled and entries carry nothing.
    #[default]
    Nothing,
    /// Every value a stage set (labels copied in at pipeline start left out).
    All,
    /// The values of these keys, whoever set them.
    Names(Arc<[String]>),
}

#[derive(Clone, Default)]
pub struct PipelineSpec {
    factories: Vec<Arc<dyn StageFactory>>,
    keep: KeepExtracted,
}

impl PipelineSpec {
    /// Entries leave pipelines of this spec with the extracted values `keep` says.
    pub fn keep_extracted(mut self, keep: KeepExtracted) -> Self {
        self.keep = keep;
        self
    }

    pub fn build(stages: &[StageConfig], ctx: &BuildContext) -> Result<Self, StageError> {
        let mut factories = Vec::with_capacity(stages.len());
        for (index, s) in stages.iter().enumerate() {
            let f = build_stage(s, ctx).map_err(|reason| StageError {
                index,
                name: s.name.clone(),
                reason,
            })?;
            factories.push(f);
        }
        Ok(PipelineSpec {
            factories,
            keep: KeepExtracted::Nothing,
        })
    }

    /// A spec from ready factories (nested `match` pipelines, tests).
    pub fn from_factories(factories: Vec<Arc<dyn StageFactory>>) -> Self {
        PipelineSpec {
            factories,
            keep: KeepExtracted::Nothing,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }

    pub fn instantiate(&self) -> Pipeline {
        Pipeline {
            stages: self.factories.iter().map(|f| f.instantiate()).collect(),
            interned: HashMap::new(),
            scratch: Vec::new(),
            current: Vec::new(),
            input: Vec::new(),
            spare: Vec::new(),
            keep: self.keep.clone(),
        }
    }
}

/// Batches of at least this many bytes of lines run with [`tokio::task::block_in_place`].
const ASIDE_BYTES: usize = 64 * 1024;

/// Runs `f`, the stages' work on `entries`, handing the worker's other tasks to another thread first
/// if the batch is large. A stage's CPU time grows with the bytes it is given (a regex over a 4 MB
/// line), and while it runs, the worker's queued tasks wait: the HTTP server (`/metrics`), the
/// watchdog's pings, the sinks, and above all the task in the worker's LIFO slot, which no other
/// worker may steal, so even an idle second worker does not help. `block_in_place` moves them to a
/// fresh worker for the time of the call. Its cost (a thread hand-over, some microseconds) is paid
/// only by batches large enough to dwarf it; small batches (a quiet container's line) run inline.
/// Outside a multi-thread runtime (unit tests, `-stdin`) `f` just runs.
fn aside_if_large<R>(entries: &mut Vec<Entry>, f: impl FnOnce(&mut Vec<Entry>) -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let mut bytes = 0;
    let large = entries.iter().any(|e| {
        bytes += e.line.len();
        bytes >= ASIDE_BYTES
    });
    let multi_thread = large
        && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| f(entries))
    } else {
        f(entries)
    }
}

/// How many distinct label sets a pipeline keeps interned before it starts over.
const INTERN_MAX: usize = 4096;
/// How many finished entries' `extracted` maps a pipeline keeps for the next entries. Entries go
/// through the stages one at a time, so one is usually enough; a stage that emits several items for
/// one (a `multiline` flush) needs a few more.
const SPARE_MAX: usize = 4;

pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    /// Label sets stages produced, shared so that entries of one stream share one `Arc` (the sinks
    /// group streams by it).
    interned: HashMap<Labels, Arc<LabelSet>>,
    /// What a stage emits while one entry goes through the stages, and what the next one takes.
    scratch: Vec<Item>,
    current: Vec<Item>,
    /// The source's entries while the stages' output is written back into its vector.
    input: Vec<Entry>,
    /// `extracted` maps of finished entries, recycled for the next ones.
    spare: Vec<Extracted>,
    keep: KeepExtracted,
}

impl Pipeline {
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Run items through every stage, from stage `from` on.
    pub fn run_items(&mut self, mut items: Vec<Item>, from: usize) -> Vec<Item> {
        for stage in &mut self.stages[from..] {
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            for item in items.drain(..) {
                stage.process(item, &mut out);
            }
            self.scratch = items;
            items = out;
        }
        items
    }

    /// Run a source's entries through the stages. `origins[i]` is where entry i starts in the source
    /// (pass an empty slice when the source has no use for [`Pipeline::held_origin`]).
    ///
    /// Each entry goes through every stage before the next one starts (stages see entries in the
    /// same order as stage by stage), so only one entry's `extracted` map is in use at a time and the
    /// map is recycled for the next entry instead of allocated.
    ///
    /// Stages run on their source's task. A batch large enough to keep a worker busy for a while
    /// (a chunk of lines, one huge line) runs aside: see [`aside_if_large`].
    pub fn run(&mut self, entries: &mut Vec<Entry>, origins: &[u64]) {
        if self.stages.is_empty() {
            return;
        }
        aside_if_large(entries, |entries| self.run_all(entries, origins));
    }

    fn run_all(&mut self, entries: &mut Vec<Entry>, origins: &[u64]) {
        let mut input = std::mem::replace(entries, std::mem::take(&mut self.input));
        entries.clear();
        entries.reserve(input.len());
        for (i, entry) in input.drain(..).enumerate() {
            let extracted = self.spare.pop().unwrap_or_default();
            let origin = origins.get(i).copied().unwrap_or(0);
            self.run_one(Item::with_extracted(entry, origin, extracted), entries);
        }
        self.input = input;
    }

    /// One item through every stage; what comes out is appended to `entries`.
    fn run_one(&mut self, item: Item, entries: &mut Vec<Entry>) {
        let mut current = std::mem::take(&mut self.current);
        let mut next = std::mem::take(&mut self.scratch);
        current.push(item);
        for stage in &mut self.stages {
            for item in current.drain(..) {
                stage.process(item, &mut next);
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                break;
            }
        }
        for item in current.drain(..) {
            self.finish_one(item, entries);
        }
        self.current = current;
        self.scratch = next;
    }

    /// Flush what stages hold whose time is up (or everything with `all`) through the later stages.
    pub fn flush(&mut self, now: Instant, all: bool, entries: &mut Vec<Entry>) {
        let mut items = Vec::new();
        for i in 0..self.stages.len() {
            let mut out = Vec::new();
            if all {
                self.stages[i].flush_all(&mut out);
            } else {
                self.stages[i].flush_expired(now, &mut out);
            }
            if !out.is_empty() {
                items.extend(self.run_items(out, i + 1));
            }
        }
        self.finish(items, entries);
    }

    /// The oldest source origin a stage still holds.
    pub fn held_origin(&self) -> Option<u64> {
        self.stages.iter().filter_map(|s| s.held_origin()).min()
    }

    /// The next time [`Pipeline::flush`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stages.iter().filter_map(|s| s.next_deadline()).min()
    }

    /// Whether a stage paces entries and the source should read nothing until the next deadline
    /// ([`Stage::holds_back`]).
    pub fn holds_back(&self) -> bool {
        self.stages.iter().any(|s| s.holds_back())
    }

    fn finish(&mut self, items: Vec<Item>, entries: &mut Vec<Entry>) {
        entries.reserve(items.len());
        for item in items {
            self.finish_one(item, entries);
        }
    }

    /// An item that left the last stage becomes an entry; its `extracted` map is kept for reuse.
    fn finish_one(&mut self, item: Item, entries: &mut Vec<Entry>) {
        let labels = match item.labels {
            ItemLabels::Shared(s) => s,
            ItemLabels::Owned(m) => self.intern(m),
        };
        let extracted = match &self.keep {
            KeepExtracted::Nothing => None,
            KeepExtracted::All => Some(
                item.extracted
                    .stage_fields()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<ExtractedFields>(),
            ),
            KeepExtracted::Names(names) => Some(
                names
                    .iter()
                    .filter_map(|k| Some((k.clone(), item.extracted.get(k)?.clone())))
                    .collect(),
            ),
        };
        entries.push(Entry {
            timestamp: item.timestamp,
            line: item.line,
            labels,
            metadata: item.metadata,
            extracted: extracted.filter(|f| !f.is_empty()).map(Box::new),
        });
        if self.spare.len() < SPARE_MAX {
            let mut extracted = item.extracted;
            extracted.recycle();
            self.spare.push(extracted);
        }
    }

    fn intern(&mut self, labels: Labels) -> Arc<LabelSet> {
        if let Some(s) = self.interned.get(&labels) {
            return s.clone();
        }
        if self.interned.len() >= INTERN_MAX {
            self.interned.clear();
        }
        let set = LabelSet::new(labels.clone());
        self.interned.insert(labels, set.clone());
        set
    }
}

#[cfg(test)]
pub mod testing {
    //! Helpers for stage tests: run a pipeline built from YAML on lines.
    use super::*;

    /// Build a pipeline from `pipeline_stages` YAML (a list).
    pub fn pipeline(yaml: &str) -> Result<Pipeline, String> {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        let ctx = BuildContext {
            metrics: crate::metrics::Metrics::new(),
            job: "test".into(),
        };
        PipelineSpec::build(&stages, &ctx)
            .map(|s| s.instantiate())
            .map_err(|e| e.to_string())
    }

    /// An item with owned `labels` and exactly the `extracted` values given (a JSON object; labels are
    /// not copied into it), timestamp 0, origin 0.
    pub fn item(line: &str, labels: &[(&str, &str)], extracted: serde_json::Value) -> Item {
        let serde_json::Value::Object(map) = extracted else {
            panic!("extracted must be an object")
        };
        Item {
            timestamp: 0,
            line: line.into(),
            labels: ItemLabels::Owned(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            metadata: Vec::new(),
            extracted: map.into_iter().collect(),
            origin: 0,
        }
    }

    /// An entry with `labels` (name, value pairs) and a fixed timestamp.
    pub fn entry(line: &str, labels: &[(&str, &str)]) -> Entry {
        let map: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Entry {
            timestamp: 1_000_000_000,
            line: line.to_string(),
            labels: LabelSet::new(map),
            metadata: Vec::new(),
            extracted: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(keep: KeepExtracted, yaml: &str, line: &str) -> Option<Box<ExtractedFields>> {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        let ctx = BuildContext {
            metrics: crate::metrics::Metrics::new(),
            job: "test".into(),
        };
        let spec = PipelineSpec::build(&stages, &ctx).unwrap();
        let mut pipeline = spec.keep_extracted(keep).instantiate();
        let mut entries = vec![testing::entry(line, &[("job", "web"), ("level", "x")])];
        pipeline.run(&mut entries, &[]);
        entries.pop().unwrap().extracted
    }

    /// A stage that works until another task has run, or gives up after 5 s.
    struct UntilFlag(Arc<std::sync::atomic::AtomicBool>);

    impl Stage for UntilFlag {
        fn name(&self) -> &'static str {
            "until_flag"
        }

        fn process(&mut self, item: Item, out: &mut Vec<Item>) {
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while !self.0.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            out.push(item);
        }
    }

    struct UntilFlagFactory(Arc<std::sync::atomic::AtomicBool>);

    impl StageFactory for UntilFlagFactory {
        fn instantiate(&self) -> Box<dyn Stage> {
            Box::new(UntilFlag(self.0.clone()))
        }
    }

    /// While a stage works on a large batch, the other tasks of its worker run, even the one the
    /// source just woke, which sits in the worker's LIFO slot where no other worker may take it (as
    /// the router's or a sink's task does when a source hands over a batch and goes on).
    #[test]
    fn a_stage_at_work_on_a_large_batch_does_not_starve_its_workers_tasks() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let spec = PipelineSpec::from_factories(vec![Arc::new(UntilFlagFactory(ran.clone()))]);
        let (waiting, woken) = (ran.clone(), Arc::new(tokio::sync::Notify::new()));
        let worked_for = runtime.block_on(async move {
            let wake = woken.clone();
            tokio::spawn(async move {
                let other = tokio::spawn(async move {
                    woken.notified().await;
                    waiting.store(true, Ordering::SeqCst);
                });
                tokio::task::yield_now().await;
                let mut pipeline = spec.instantiate();
                let line = "x".repeat(ASIDE_BYTES);
                let mut entries = vec![testing::entry(&line, &[("job", "web")])];
                // Wake the other task (into this worker's LIFO slot), then work.
                wake.notify_one();
                let started = Instant::now();
                pipeline.run(&mut entries, &[]);
                let took = started.elapsed();
                other.await.unwrap();
                took
            })
            .await
            .unwrap()
        });
        assert!(ran.load(Ordering::SeqCst));
        assert!(
            worked_for < std::time::Duration::from_secs(4),
            "the woken task waited for the stage: {worked_for:?}"
        );
    }

    /// Entries keep the values stages set (not the labels copied in at start) only when asked.
    #[test]
    fn entries_keep_extracted_values_only_when_a_sink_asks() {
        let yaml = "- json: {expressions: {user: , n: }}\n- template: {source: job, template: '{{ .Value }}'}";
        let line = r#"{"user":"ann","n":2}"#;
        assert_eq!(run(KeepExtracted::Nothing, yaml, line), None);
        let all = run(KeepExtracted::All, yaml, line).unwrap();
        assert_eq!(
            *all,
            vec![
                // The template stage set `job` again: it counts as extracted.
                ("job".to_string(), json!("web")),
                ("n".to_string(), json!(2.0)),
                ("user".to_string(), json!("ann")),
            ]
        );
        let names = KeepExtracted::Names(vec!["level".to_string(), "user".to_string()].into());
        assert_eq!(
            *run(names, yaml, line).unwrap(),
            vec![
                ("level".to_string(), json!("x")),
                ("user".to_string(), json!("ann")),
            ]
        );
        let none = KeepExtracted::Names(vec!["absent".to_string()].into());
        assert_eq!(run(none, yaml, line), None);
    }
}
