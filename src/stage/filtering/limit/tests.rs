//! The token bucket (Go's rate.Limiter), drop and by-label modes as Promtail's limit_test.go checks
//! them, the holding that stands in for Promtail's blocking, and config errors.

use std::time::{Duration, Instant};

use super::{Generations, TokenBucket};
use crate::stage::filtering::test_support::{counter_value, run, run_lines, setup};
use crate::stage::testing::entry;

#[test]
fn bucket_allows_burst_then_rate() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(10.0, 5.0, t0);
    let allowed = (0..8).filter(|_| b.allow(t0)).count();
    assert_eq!(allowed, 5);
    // 100ms at 10/s refill one token, never more than the burst.
    assert!(b.allow(t0 + Duration::from_millis(100)));
    assert!(!b.allow(t0 + Duration::from_millis(100)));
    let later = t0 + Duration::from_secs(60);
    assert_eq!((0..8).filter(|_| b.allow(later)).count(), 5);
}

#[test]
fn reservations_go_into_debt_in_order() {
    let t0 = Instant::now();
    let mut b = TokenBucket::new(2.0, 1.0, t0);
    assert_eq!(b.reserve(t0), t0);
    assert_eq!(b.reserve(t0), t0 + Duration::from_millis(500));
    assert_eq!(b.reserve(t0), t0 + Duration::from_millis(1000));
    // A second later one token is repaid: the next reservation waits for the debt's remainder.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(b.reserve(t1), t1 + Duration::from_millis(500));
}

#[test]
fn generations_forget_old_values_and_report_rollover() {
    let t0 = Instant::now();
    let template = TokenBucket::new(1.0, 1.0, t0);
    let mut g = Generations::new(2);
    assert_eq!(g.allow("a", &template, t0), (true, false));
    assert_eq!(g.allow("a", &template, t0), (false, false));
    // "b" fills the generation: it rolls over, "a" and "b" move to the old one and keep their state.
    assert_eq!(g.allow("b", &template, t0), (true, true));
    assert_eq!(g.allow("a", &template, t0), (false, false));
    assert_eq!(g.allow("c", &template, t0), (true, true));
    // "b" was only in the generation before last: forgotten, a fresh bucket.
    assert_eq!(g.allow("d", &template, t0), (true, false));
    assert_eq!(g.allow("e", &template, t0), (true, true));
    assert_eq!(g.allow("b", &template, t0), (true, false));
}

#[test]
fn drop_mode_drops_over_the_burst() {
    let (mut p, metrics) = setup("- limit: {rate: 1, burst: 5, drop: true}").unwrap();
    let lines: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    let kept = run_lines(&mut p, &lines);
    assert_eq!(kept, lines[..5].to_vec());
    let dropped = counter_value(
        &metrics,
        "logentry_dropped_lines_total",
        "reason=\"ratelimit_drop_stage\"",
    );
    assert_eq!(dropped, 15.0);
}

#[test]
fn buckets_are_shared_by_the_targets_of_a_scrape_config() {
    let stages: Vec<crate::config::StageConfig> =
        serde_yaml_ng::from_str("- limit: {rate: 1, burst: 3, drop: true}").unwrap();
    let ctx = crate::stage::BuildContext {
        metrics: crate::metrics::Metrics::new(),
        job: "test".into(),
    };
    let spec = crate::stage::PipelineSpec::build(&stages, &ctx).unwrap();
    let (mut a, mut b) = (spec.instantiate(), spec.instantiate());
    let lines: Vec<String> = (0..2).map(|i| i.to_string()).collect();
    assert_eq!(run_lines(&mut a, &lines).len(), 2);
    assert_eq!(run_lines(&mut b, &lines).len(), 1);
}

#[test]
fn by_label_limits_each_value_and_counts_by_label() {
    let (mut p, metrics) =
        setup("- limit: {rate: 1, burst: 2, drop: true, by_label_name: app}").unwrap();
    let mut entries = Vec::new();
    for _ in 0..5 {
        entries.push(entry("a", &[("app", "loki")]));
        entries.push(entry("b", &[("app", "promtail")]));
        entries.push(entry("c", &[("other", "x")]));
    }
    let out = run(&mut p, entries);
    let count = |line: &str| out.iter().filter(|e| e.line == line).count();
    assert_eq!((count("a"), count("b"), count("c")), (2, 2, 5));
    let by_label = |value: &str| {
        counter_value(
            &metrics,
            "logentry_dropped_lines_by_label_total",
            &format!("label_name=\"app\",label_value=\"{value}\""),
        )
    };
    assert_eq!((by_label("loki"), by_label("promtail")), (3.0, 3.0));
    let total = counter_value(
        &metrics,
        "logentry_dropped_lines_total",
        "reason=\"ratelimit_drop_stage\"",
    );
    assert_eq!(total, 6.0);
}

#[test]
fn without_drop_entries_are_held_until_their_token() {
    let (mut p, _) = setup("- limit: {rate: 2, burst: 2}").unwrap();
    let mut entries: Vec<_> = (0..5).map(|i| entry(&format!("l{i}"), &[])).collect();
    p.run(&mut entries, &[100, 200, 300, 400, 500]);
    // The burst passes, the rest waits for tokens at 500ms intervals, holding their origins.
    assert_eq!(
        entries.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
        ["l0", "l1"]
    );
    assert_eq!(p.held_origin(), Some(300));
    assert!(
        p.holds_back(),
        "the source must wait while entries are held"
    );
    let deadline = p.next_deadline().expect("held entries have a deadline");
    assert!(deadline > Instant::now());
    assert!(deadline <= Instant::now() + Duration::from_millis(500));

    let mut released = Vec::new();
    p.flush(deadline, false, &mut released);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].line, "l2");
    assert_eq!(p.held_origin(), Some(400));

    // Later entries queue behind the held ones, in order.
    let mut more = vec![entry("l5", &[])];
    p.run(&mut more, &[600]);
    assert!(more.is_empty());
    let mut rest = Vec::new();
    p.flush(Instant::now() + Duration::from_secs(10), false, &mut rest);
    assert_eq!(
        rest.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
        ["l3", "l4", "l5"]
    );
    assert_eq!(p.held_origin(), None);
    assert_eq!(p.next_deadline(), None);
    assert!(!p.holds_back());
}

#[test]
fn flush_all_releases_held_entries() {
    let (mut p, _) = setup("- limit: {rate: 0.001, burst: 1}").unwrap();
    let mut entries = vec![entry("a", &[]), entry("b", &[]), entry("c", &[])];
    p.run(&mut entries, &[]);
    assert_eq!(entries.len(), 1);
    let mut rest = Vec::new();
    p.flush(Instant::now(), true, &mut rest);
    assert_eq!(
        rest.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
}

#[test]
fn weak_decoding_and_config_errors() {
    assert!(setup("- limit: {rate: '10', burst: '0x10', drop: 'true'}").is_ok());
    let cases = [
        (
            "- limit: {burst: 5}",
            "limit stage failed to parse rate or burst",
        ),
        (
            "- limit: {rate: 5}",
            "limit stage failed to parse rate or burst",
        ),
        (
            "- limit: {rate: 0, burst: 5}",
            "limit stage failed to parse rate or burst",
        ),
        (
            "- limit: {rate: 5, burst: -1}",
            "limit stage failed to parse rate or burst",
        ),
        (
            "- limit: {rate: 5, burst: 5, by_label_name: app}",
            "When ratelimiting by label, drop must be true",
        ),
        (
            "- limit: {rate: fast, burst: 5}",
            "cannot parse \"fast\" as a float",
        ),
    ];
    for (yaml, want) in cases {
        let err = setup(yaml).err().unwrap_or_else(|| panic!("{yaml} built"));
        assert!(err.contains(want), "{yaml}: {err}");
    }
}
