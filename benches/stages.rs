//! Entries per second through each pipeline stage, beside the same loop with no stage, in one run.
//! `cargo bench --bench stages` (release). Input: nginx JSON access lines (`data/nginx-access-json.log`).
//! Each case runs the real `Pipeline` on batches of 1,024 entries sharing one label set, as a file
//! tailer does.

use std::time::Instant;

use logferry::config::StageConfig;
use logferry::entry::{Entry, LabelSet, Labels};
use logferry::metrics::Metrics;
use logferry::stage::{BuildContext, PipelineSpec};

const LINES: &str = include_str!("data/nginx-access-json.log");

const CASES: &[(&str, &str)] = &[
    ("no stage (baseline)", "[]"),
    ("json (3 fields)", "[{json: {expressions: {status: status, method: request, rt: request_time}}}]"),
    ("regex", r#"[{regex: {expression: '"status": "(?P<status>\d+)"'}}]"#),
    ("logfmt", "[{logfmt: {mapping: {status: }}}]"),
    ("timestamp", "[{json: {expressions: {ts: time_local}}}, {timestamp: {source: ts, format: '02/Jan/2006:15:04:05 -0700'}}]"),
    ("template", "[{json: {expressions: {m: request}}}, {template: {source: m, template: '{{ ToUpper .Value }}'}}]"),
    ("match", r#"[{match: {selector: '{job="bench"} |= "POST"', action: drop}}]"#),
    (
        "5-stage nginx pipeline",
        "[{json: {expressions: {status: status, ts: time_local, rid: request_id}}}, {labels: {status: }}, \
         {timestamp: {source: ts, format: '02/Jan/2006:15:04:05 -0700'}}, {structured_metadata: {rid: }}, \
         {match: {selector: '{status=\"200\"}', stages: [{static_labels: {ok: 'yes'}}]}}]",
    ),
];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 400 } else { 2 };
    let templates: Vec<&str> = LINES.lines().filter(|l| !l.is_empty()).collect();
    let labels = LabelSet::new(Labels::from([
        ("job".to_string(), "bench".to_string()),
        (
            "filename".to_string(),
            "/var/log/nginx/access.log".to_string(),
        ),
    ]));
    let batch: Vec<Entry> = (0..1024)
        .map(|i| Entry {
            timestamp: i,
            line: templates[i as usize % templates.len()].to_string(),
            labels: labels.clone(),
            metadata: Vec::new(),
            extracted: None,
        })
        .collect();
    let ctx = BuildContext {
        metrics: Metrics::new(),
        job: "bench".into(),
    };
    println!("| pipeline                  | entries/s (one core) | vs baseline |");
    println!("|---------------------------|----------------------|-------------|");
    let mut baseline = 0.0;
    for (name, yaml) in CASES {
        let stages: Vec<StageConfig> = serde_yaml_ng::from_str(yaml).expect(name);
        let spec = PipelineSpec::build(&stages, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut pipeline = spec.instantiate();
        let mut n = 0u64;
        let start = Instant::now();
        for _ in 0..rounds {
            // The clone is the source's work (a reader builds these entries); it is in the baseline too.
            let mut entries = batch.clone();
            pipeline.run(&mut entries, &[]);
            n += batch.len() as u64;
            std::hint::black_box(&entries);
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        if baseline == 0.0 {
            baseline = rate;
        }
        println!("| {name:<25} | {rate:>20.0} | {:>10.2}x |", rate / baseline);
    }
}
