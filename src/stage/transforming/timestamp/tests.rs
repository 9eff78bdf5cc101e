//! The `timestamp` stage: Go's example strings for every named format, Promtail's
//! `timestamp_test.go` cases, and failure handling.

use serde_json::json;

use crate::stage::transforming::{build_error, run};
use crate::stage::{testing, Item};

const SEC: i64 = 1_000_000_000;
/// The read time `testing::entry` gives.
const READ_TIME: i64 = 1_000_000_000;

/// The timestamp after a `timestamp` stage with `body` reads `value` from `ts`.
fn stamp(body: &str, value: serde_json::Value) -> i64 {
    let yaml = format!("- timestamp: {{source: ts, {body}}}");
    let out = run(&yaml, "line", &[], json!({ "ts": value }));
    out[0].timestamp
}

/// Year, month, day, hour, minute, second as UTC Unix seconds.
fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> i64 {
    jiff::civil::datetime(y, mo, d, h, mi, s, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second()
}

/// The year Promtail gives a timestamp without one, in `month`.
fn year_for(month: i8) -> i16 {
    let now = jiff::Zoned::now();
    now.year()
        + match (month, now.month()) {
            (12, 1) => -1,
            (1, 12) => 1,
            _ => 0,
        }
}

#[test]
fn named_formats_with_go_examples() {
    // (format, value, expected Unix nanoseconds). Without a location, Go reads a zone
    // abbreviation it does not know (MST) as UTC.
    let cases: &[(&str, &str, i64)] = &[
        ("ANSIC", "Mon Jan  2 15:04:05 2006", 1136214245 * SEC),
        ("UnixDate", "Mon Jan  2 15:04:05 MST 2006", 1136214245 * SEC),
        ("UnixDate", "Mon Jan  2 15:04:05 UTC 2006", 1136214245 * SEC),
        (
            "RubyDate",
            "Mon Jan 02 15:04:05 -0700 2006",
            1136239445 * SEC,
        ),
        ("RFC822", "02 Jan 06 15:04 MST", 1136214240 * SEC),
        ("RFC822Z", "02 Jan 06 15:04 -0700", 1136239440 * SEC),
        ("RFC850", "Monday, 02-Jan-06 15:04:05 MST", 1136214245 * SEC),
        ("RFC1123", "Mon, 02 Jan 2006 15:04:05 MST", 1136214245 * SEC),
        (
            "RFC1123",
            "Mon, 02 Jan 2006 15:04:05 GMT+5",
            1136214245 * SEC - 5 * 3600 * SEC,
        ),
        (
            "RFC1123Z",
            "Mon, 02 Jan 2006 15:04:05 -0700",
            1136239445 * SEC,
        ),
        ("RFC3339", "2006-01-02T15:04:05-07:00", 1136239445 * SEC),
        ("RFC3339", "2006-01-02T15:04:05Z", 1136214245 * SEC),
        // Go accepts a fraction after the seconds even when the layout has none.
        (
            "RFC3339",
            "2006-01-02T15:04:05.5Z",
            1136214245 * SEC + SEC / 2,
        ),
        (
            "RFC3339Nano",
            "2006-01-02T15:04:05.999999999-07:00",
            1136239445 * SEC + 999_999_999,
        ),
        ("RFC3339Nano", "2006-01-02T15:04:05Z", 1136214245 * SEC),
        ("Layout", "01/02 03:04:05PM '06 -0700", 1136239445 * SEC),
        ("Unix", "1562708916", 1562708916 * SEC),
        ("Unix", "1562708916.414123", 1562708916 * SEC + 414_123_000),
        ("Unix", "1562708916.000000123", 1562708916 * SEC + 123),
        ("Unix", "-1", -SEC),
        ("UnixMs", "1562708916414", 1562708916 * SEC + 414_000_000),
        ("UnixMs", "1562708916919", 1562708916 * SEC + 919_000_000),
        ("UnixUs", "1562708916414123", 1562708916 * SEC + 414_123_000),
        ("UnixNs", "1562708916000000123", 1562708916 * SEC + 123),
    ];
    for (format, value, want) in cases {
        assert_eq!(
            stamp(&format!("format: {format}"), json!(value)),
            *want,
            "{format} {value}"
        );
    }
}

#[test]
fn named_formats_without_year() {
    let y = year_for(1);
    let cases: &[(&str, &str, i64)] = &[
        ("Stamp", "Jan  2 15:04:05", utc(y, 1, 2, 15, 4, 5) * SEC),
        (
            "StampMilli",
            "Jan  2 15:04:05.000",
            utc(y, 1, 2, 15, 4, 5) * SEC,
        ),
        (
            "StampMicro",
            "Jan 12 15:04:05.000001",
            utc(y, 1, 12, 15, 4, 5) * SEC + 1_000,
        ),
        (
            "StampNano",
            "Jan  2 15:04:05.000000001",
            utc(y, 1, 2, 15, 4, 5) * SEC + 1,
        ),
        ("Kitchen", "3:04PM", utc(y, 1, 1, 15, 4, 0) * SEC),
    ];
    for (format, value, want) in cases {
        assert_eq!(
            stamp(&format!("format: {format}"), json!(value)),
            *want,
            "{format} {value}"
        );
    }
}

#[test]
fn custom_layouts() {
    // (stage fields, value, expected Unix seconds)
    let cases: &[(&str, &str, i64)] = &[
        ("format: '2006-01-02'", "2009-01-01", 1230768000),
        // timestamp_test.go "custom format with location": New York is on EDT in July.
        (
            "format: '2006-01-02 15:04:05', location: America/New_York",
            "2009-07-01 03:30:20",
            1246433420,
        ),
        (
            "format: '2006-01-02 15:04:05', location: America/New_York",
            "2019-07-22 20:29:32",
            1563841772,
        ),
        // The location does not apply to the named formats.
        ("format: RFC3339, location: America/New_York", "2006-01-02T15:04:05Z", 1136214245),
        // Abbreviations are read in the location: EST is -5h, EDT -4h, an unknown one UTC.
        (
            "format: '2006-01-02 15:04:05 MST', location: America/New_York",
            "2006-01-02 15:04:05 EST",
            1136232245,
        ),
        (
            "format: '2006-01-02 15:04:05 MST', location: America/New_York",
            "2006-01-02 15:04:05 EDT",
            1136228645,
        ),
        (
            "format: '2006-01-02 15:04:05 MST', location: America/New_York",
            "2006-01-02 15:04:05 XYZ",
            1136214245,
        ),
        // nginx access log time.
        ("format: '02/Jan/2006:15:04:05 -0700'", "25/Jan/2000:14:00:01 -0500", 948826801),
        // A comma before the fraction, and a case-insensitive month name.
        ("format: '2006-01-02 15:04:05,000'", "2021-03-04 05:06:07,000", 1614834367),
        ("format: '02 January 2006 15:04:05'", "04 MARCH 2021 05:06:07", 1614834367),
        // 12-hour clock.
        ("format: '2006-01-02 3:04PM'", "2021-03-04 12:15AM", utc(2021, 3, 4, 0, 15, 0)),
        ("format: '2006-01-02 3:04pm'", "2021-03-04 12:15pm", utc(2021, 3, 4, 12, 15, 0)),
        // Day of year.
        ("format: '2006-002'", "2021-063", utc(2021, 3, 4, 0, 0, 0)),
        // Fallback formats are tried in order (timestamp_test.go).
        (
            "format: UnixMs, fallback_formats: ['2006-01-02 03:04:05.000000000 +0000 UTC', RFC3339]",
            "2012-11-01T22:08:41-04:00",
            1351822121,
        ),
        ("format: RFC3339", "2106-01-02T23:04:05-04:00", 4291931045),
        ("format: '2006-01-02', location: UTC", "2009-01-01", 1230768000),
        ("format: '2006-01-02', location: ''", "2009-01-01", 1230768000),
    ];
    for (body, value, want) in cases {
        assert_eq!(stamp(body, json!(value)), want * SEC, "{body} {value}");
    }
}

#[test]
fn layout_without_year_takes_the_current_year() {
    let got = stamp("format: 'Jan 02 15:04:05'", json!("Jul 15 01:02:03"));
    assert_eq!(got, utc(year_for(7), 7, 15, 1, 2, 3) * SEC);
    let got = stamp("format: 'Jan _2 15:04:05'", json!("Dec  3 01:02:03"));
    assert_eq!(got, utc(year_for(12), 12, 3, 1, 2, 3) * SEC);
    // In a location.
    let got = stamp(
        "format: 'Jan 02 15:04:05', location: Asia/Tokyo",
        json!("Jul 15 09:00:00"),
    );
    assert_eq!(got, utc(year_for(7), 7, 15, 0, 0, 0) * SEC);
}

#[test]
fn new_year_rollover() {
    use super::year_without_year;
    assert_eq!(year_without_year(12, 2025, 1), 2024);
    assert_eq!(year_without_year(1, 2025, 12), 2026);
    assert_eq!(year_without_year(1, 2025, 1), 2025);
    assert_eq!(year_without_year(12, 2025, 12), 2025);
    assert_eq!(year_without_year(6, 2025, 1), 2025);
}

#[test]
fn numbers_from_json_are_converted() {
    assert_eq!(stamp("format: Unix", json!(1562708916)), 1562708916 * SEC);
    assert_eq!(
        stamp("format: Unix", json!(1562708916.5)),
        1562708916 * SEC + SEC / 2
    );
    assert_eq!(
        stamp("format: UnixMs", json!(1562708916414u64)),
        1562708916414 * 1_000_000
    );
}

#[test]
fn parse_failures_keep_the_read_time() {
    // With no earlier timestamp to fudge from, a failure keeps the read time.
    let cases: &[(&str, serde_json::Value)] = &[
        ("format: RFC3339", json!("not a time")),
        ("format: RFC3339", json!("2006-01-02T15:04:05")),
        ("format: RFC3339", json!(null)),
        ("format: '2006-01-02'", json!("2021-02-30")),
        ("format: '2006-01-02'", json!("2021-13-01")),
        ("format: '2006-01-02 15:04'", json!("2021-01-01 24:00")),
        ("format: '2006-01-02'", json!("2021-01-01 extra")),
        ("format: Unix", json!("1.2.3")),
        ("format: Unix", json!("12a")),
        ("format: UnixMs", json!("1.5")),
        ("format: '15:04:05 2006'", json!("25:00:00 2020")),
        ("format: 'Jan 02'", json!("Foo 02")),
        ("format: RFC3339, action_on_failure: skip", json!("bad")),
    ];
    for (body, value) in cases {
        assert_eq!(stamp(body, value.clone()), READ_TIME, "{body} {value}");
    }
    let out = run(
        "- timestamp: {source: missing, format: RFC3339}",
        "line",
        &[],
        json!({}),
    );
    assert_eq!(out[0].timestamp, READ_TIME);
}

/// Run the stage on entries (labels, extracted `time`), one pipeline, in order.
fn run_sequence(action: &str, entries: &[(&str, Option<&str>)]) -> Vec<i64> {
    let yaml =
        format!("- timestamp: {{source: time, format: RFC3339Nano, action_on_failure: {action}}}");
    let mut pipeline = testing::pipeline(&yaml).unwrap();
    entries
        .iter()
        .map(|(file, time)| {
            let mut item = Item::new(testing::entry("", &[("filename", file)]), 0);
            if let Some(t) = time {
                item.extracted.insert("time", json!(t));
            }
            pipeline.run_items(vec![item], 0)[0].timestamp
        })
        .collect()
}

#[test]
fn fudge_and_skip() {
    let t400 = 1569891723 * SEC + 400_000_000;
    let t800 = 1569891723 * SEC + 800_000_000;
    let at400 = Some("2019-10-01T01:02:03.400000000Z");
    let at500 = Some("2019-10-01T01:02:03.500000000Z");
    let at800 = Some("2019-10-01T01:02:03.800000000Z");
    // Successes are kept.
    assert_eq!(
        run_sequence("fudge", &[("/1.log", at400), ("/1.log", at500)]),
        vec![t400, t400 + 100_000_000]
    );
    // Failures get the last timestamp of the same labels plus 1ns, again and again.
    assert_eq!(
        run_sequence(
            "fudge",
            &[("/1.log", at400), ("/1.log", None), ("/1.log", None)]
        ),
        vec![t400, t400 + 1, t400 + 2]
    );
    // Per label set.
    assert_eq!(
        run_sequence(
            "fudge",
            &[
                ("/1.log", at400),
                ("/2.log", at800),
                ("/1.log", None),
                ("/2.log", None),
                ("/1.log", None),
            ]
        ),
        vec![t400, t800, t400 + 1, t800 + 1, t400 + 2]
    );
    // No earlier timestamp for these labels: the read time stays.
    assert_eq!(
        run_sequence("fudge", &[("/1.log", at400), ("/2.log", None)]),
        vec![t400, READ_TIME]
    );
    // skip keeps the read time.
    assert_eq!(
        run_sequence("skip", &[("/1.log", at400), ("/1.log", None)]),
        vec![t400, READ_TIME]
    );
}

#[test]
fn fudge_memory_is_bounded() {
    let mut lk = super::LastKnown::default();
    for key in 0..(super::FUDGE_CAPACITY as u64 + 1) {
        lk.put(key, key as i64);
    }
    assert!(lk.map.len() <= super::FUDGE_CAPACITY);
    // The most recent entries survive; the oldest went.
    assert_eq!(
        lk.get(super::FUDGE_CAPACITY as u64),
        Some(super::FUDGE_CAPACITY as i64)
    );
    assert_eq!(lk.get(0), None);
}

#[test]
fn config_errors() {
    let cases = [
        (
            "- timestamp: {format: RFC3339}",
            "timestamp source value is required",
        ),
        ("- timestamp:", "timestamp source value is required"),
        ("- timestamp: {source: ts}", "timestamp format is required"),
        (
            "- timestamp: {source: ts, format: '2006', location: America/Canada}",
            "invalid location specified",
        ),
        (
            "- timestamp: {source: ts, format: RFC3339, action_on_failure: foo}",
            "invalid action on failure",
        ),
    ];
    for (yaml, want) in cases {
        let err = build_error(yaml);
        assert!(err.contains(want), "{yaml}: {err}");
    }
}
