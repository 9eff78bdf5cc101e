//! `match`: keep and drop, nested pipelines (label copy, held entries, timeouts), Promtail's docs
//! example and config errors. Selector syntax is tested in `selector.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Action, MatchFactory};
use crate::stage::filtering::selector::Selector;
use crate::stage::filtering::test_support::{counter_value, run, setup};
use crate::stage::testing::entry;
use crate::stage::{Item, Stage, StageFactory};

#[test]
fn keep_runs_nested_stages_on_selected_entries_only() {
    let (mut p, _) = setup(
        r#"
- match:
    selector: '{app="pay"} |= "card"'
    stages:
      - luhn: {replacement: "****"}
"#,
    )
    .unwrap();
    let card = "card 4242424242424242";
    let out = run(
        &mut p,
        vec![
            entry(card, &[("app", "pay")]),
            entry(card, &[("app", "shop")]),
            entry("no c-word 4242424242424242", &[("app", "pay")]),
        ],
    );
    let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, ["card ****", card, "no c-word 4242424242424242"]);
}

#[test]
fn drop_counts_under_its_reason() {
    let (mut p, metrics) = setup(
        r#"
- match:
    selector: '{app="promtail"} |~ ".*noisy error.*"'
    action: drop
    drop_counter_reason: promtail_noisy_error
- match: {selector: '{app="x"}', action: drop, stages: []}
"#,
    )
    .unwrap();
    let out = run(
        &mut p,
        vec![
            entry("some noisy error", &[("app", "promtail")]),
            entry("fine", &[("app", "promtail")]),
            entry("some noisy error", &[("app", "loki")]),
            entry("x", &[("app", "x")]),
        ],
    );
    assert_eq!(out.len(), 2);
    let reason = |r: &str| {
        counter_value(
            &metrics,
            "logentry_dropped_lines_total",
            &format!("reason=\"{r}\""),
        )
    };
    assert_eq!(
        (reason("promtail_noisy_error"), reason("match_stage")),
        (1.0, 1.0)
    );
}

#[test]
fn nested_matches_and_drops() {
    let (mut p, _) = setup(
        r#"
- match:
    selector: '{env=~"prod|staging"}'
    stages:
      - match:
          selector: '{level="debug"}'
          action: drop
      - drop: {longer_than: 10}
"#,
    )
    .unwrap();
    let out = run(
        &mut p,
        vec![
            entry("a", &[("env", "prod"), ("level", "debug")]),
            entry("b", &[("env", "prod"), ("level", "info")]),
            entry("c is long enough", &[("env", "staging")]),
            entry("d", &[("env", "dev"), ("level", "debug")]),
        ],
    );
    let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, ["b", "d"]);
}

/// A stage that records the extracted map it sees.
struct Spy(Arc<Mutex<Vec<Value>>>);

impl Stage for Spy {
    fn name(&self) -> &'static str {
        "spy"
    }
    fn process(&mut self, item: Item, out: &mut Vec<Item>) {
        let map: serde_json::Map<String, Value> = item.extracted.clone().into_iter().collect();
        self.0.lock().unwrap().push(Value::Object(map));
        out.push(item);
    }
}

struct SpyFactory(Arc<Mutex<Vec<Value>>>);

impl StageFactory for SpyFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Spy(self.0.clone()))
    }
}

/// Holds every item until `flush_expired` at or after its deadline, like `multiline`.
struct Hold {
    held: Vec<Item>,
    deadline: Option<Instant>,
}

impl Stage for Hold {
    fn name(&self) -> &'static str {
        "hold"
    }
    fn process(&mut self, mut item: Item, _out: &mut Vec<Item>) {
        item.line.push_str(" (held)");
        self.held.push(item);
        self.deadline
            .get_or_insert(Instant::now() + Duration::from_secs(5));
    }
    fn flush_expired(&mut self, now: Instant, out: &mut Vec<Item>) {
        if self.deadline.is_some_and(|d| d <= now) {
            self.flush_all(out);
        }
    }
    fn flush_all(&mut self, out: &mut Vec<Item>) {
        out.append(&mut self.held);
        self.deadline = None;
    }
    fn held_origin(&self) -> Option<u64> {
        self.held.iter().map(|i| i.origin).min()
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

struct HoldFactory;

impl StageFactory for HoldFactory {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(Hold {
            held: Vec::new(),
            deadline: None,
        })
    }
}

fn keep(selector: &str, stages: Vec<Arc<dyn StageFactory>>) -> Box<dyn Stage> {
    MatchFactory {
        selector: Arc::new(Selector::parse(selector).unwrap()),
        action: Action::Keep(stages),
    }
    .instantiate()
}

#[test]
fn nested_pipeline_copies_current_labels_into_extracted() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stage = keep(r#"{app="pay"}"#, vec![Arc::new(SpyFactory(seen.clone()))]);
    let mut out = Vec::new();
    // `app` was relabelled after the pipeline start: extracted still has the old value, and a key that
    // is no label stays.
    let it = item(
        "x",
        &[("app", "pay"), ("env", "prod")],
        json!({"app": "old", "level": 3}),
        0,
    );
    stage.process(it, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        seen.lock().unwrap()[0],
        json!({"app": "pay", "env": "prod", "level": 3})
    );
    // The copy survives the match stage: later outer stages see it.
    assert_eq!(out[0].extracted["env"], json!("prod"));
}

#[test]
fn nested_held_entries_are_reported_and_flushed() {
    let mut stage = keep(r#"{app="pay"}"#, vec![Arc::new(HoldFactory)]);
    let mut out = Vec::new();
    stage.process(item("a", &[("app", "pay")], json!({}), 10), &mut out);
    stage.process(item("b", &[("app", "shop")], json!({}), 20), &mut out);
    stage.process(item("c", &[("app", "pay")], json!({}), 30), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].line, "b");
    assert_eq!(stage.held_origin(), Some(10));
    let deadline = stage.next_deadline().expect("nested deadline");

    out.clear();
    stage.flush_expired(deadline - Duration::from_millis(1), &mut out);
    assert!(out.is_empty());
    stage.flush_expired(deadline, &mut out);
    let lines: Vec<_> = out.iter().map(|i| i.line.as_str()).collect();
    assert_eq!(lines, ["a (held)", "c (held)"]);
    assert_eq!((stage.held_origin(), stage.next_deadline()), (None, None));

    stage.process(item("d", &[("app", "pay")], json!({}), 40), &mut out);
    out.clear();
    stage.flush_all(&mut out);
    assert_eq!(out[0].line, "d (held)");
}

#[test]
fn items_flushed_from_a_nested_stage_go_through_the_stages_after_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stage = keep(
        r#"{app="pay"}"#,
        vec![Arc::new(HoldFactory), Arc::new(SpyFactory(seen.clone()))],
    );
    let mut out = Vec::new();
    stage.process(item("a", &[("app", "pay")], json!({}), 0), &mut out);
    assert!(seen.lock().unwrap().is_empty());
    stage.flush_all(&mut out);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(out.len(), 1);
}

/// Promtail's match documentation example; needs the json, labels and output stages.
#[test]
fn promtail_docs_example() {
    let (mut p, metrics) = setup(
        r#"
- json: {expressions: {app: }}
- labels: {app: }
- match:
    selector: '{app="loki"}'
    stages:
      - json: {expressions: {msg: message}}
- match:
    pipeline_name: app2
    selector: '{app="poki"}'
    stages:
      - json: {expressions: {msg: msg}}
- match:
    selector: '{app="promtail"} |~ ".*noisy error.*"'
    action: drop
    drop_counter_reason: promtail_noisy_error
- output: {source: msg}
"#,
    )
    .unwrap();
    let out = run(
        &mut p,
        vec![
            entry(
                r#"{"time":"2012-11-01T22:08:41+00:00","app":"loki","component":["parser","type"],"level":"WARN","message":"app1 log line"}"#,
                &[],
            ),
            entry(
                r#"{"time":"2012-11-01T22:08:41+00:00","app":"poki","component":["parser","type"],"level":"WARN","msg":"app2 log line"}"#,
                &[],
            ),
            entry(
                r#"{"time":"2012-11-01T22:08:41+00:00","app":"promtail","component":["parser","type"],"level":"WARN","msg":"this is a noisy error"}"#,
                &[],
            ),
        ],
    );
    let lines: Vec<_> = out.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, ["app1 log line", "app2 log line"]);
    assert_eq!(out[0].labels.get("app"), Some("loki"));
    let dropped = counter_value(
        &metrics,
        "logentry_dropped_lines_total",
        "reason=\"promtail_noisy_error\"",
    );
    assert_eq!(dropped, 1.0);
}

#[test]
fn rejects_bad_config() {
    let cases = [
        ("- match: {selector: '{a=\"b\"}', pipeline_name: '', stages: [{drop: {expression: x}}]}",
         "match stage pipeline name can be omitted but cannot be an empty string"),
        ("- match: {stages: [{drop: {expression: x}}]}", "selector statement required for match stage"),
        ("- match: {selector: '', stages: [{drop: {expression: x}}]}", "selector statement required for match stage"),
        ("- match:", "selector statement required for match stage"),
        ("- match: {selector: '{a=\"b\"}', action: nope, stages: [{drop: {expression: x}}]}",
         "match stage action should be 'keep' or 'drop'"),
        ("- match: {selector: '{a=\"b\"}', action: Keep, stages: [{drop: {expression: x}}]}",
         "match stage action should be 'keep' or 'drop'"),
        ("- match: {selector: '{a=\"b\"}'}", "match stage requires at least one additional stage to be defined in '- stages'"),
        ("- match: {selector: '{a=\"b\"}', stages: []}", "match stage requires at least one additional stage"),
        ("- match: {selector: '{a=\"b\"}', action: drop, stages: [{drop: {expression: x}}]}",
         "match stage configured to drop entries cannot contains stages"),
        ("- match: {selector: '{a=\"b}', stages: [{drop: {expression: x}}]}",
         "invalid selector syntax for match stage: parse error at line 1, col 4: literal not terminated"),
        ("- match: {selector: '{}', action: drop}", "invalid selector syntax for match stage"),
        ("- match: {selector: '{a=\"b\"} !~ \"[]\"', action: drop}", "invalid line filter regex"),
        ("- match: {selector: '{a=\"b\"}', stages: [{drop: {}}]}",
         "pipeline_stages[0]: stage \"match\" stages[0]: stage \"drop\" drop stage config must contain at least one of"),
        ("- match: {selector: '{a=\"b\"}', stages: [{match: {selector: 'x', action: drop}}]}",
         "stages[0]: stage \"match\" invalid selector syntax"),
        ("- match: {selector: 5, action: drop}", "invalid type"),
    ];
    for (yaml, want) in cases {
        let err = setup(yaml).err().unwrap_or_else(|| panic!("{yaml} built"));
        assert!(err.contains(want), "{yaml}: {err}");
    }
}

fn item(line: &str, labels: &[(&str, &str)], extracted: Value, origin: u64) -> Item {
    Item {
        origin,
        ..crate::stage::testing::item(line, labels, extracted)
    }
}
