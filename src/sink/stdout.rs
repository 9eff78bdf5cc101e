//! The stdout sink of `dry-run` (and of the embedded default config when `LOKI_URL` is not set): one
//! JSON object per entry, `{"ts":"…","labels":{…},"line":"…"}`, flushed per batch.

use std::io::Write;

use tokio::sync::mpsc;

use crate::delivery::Delivery;

pub async fn run(mut input: mpsc::Receiver<Delivery>) {
    let mut out = Vec::with_capacity(64 * 1024);
    while let Some(delivery) = input.recv().await {
        let batch = &delivery.batch;
        out.clear();
        for e in &batch.entries {
            let labels: serde_json::Map<String, serde_json::Value> = e
                .labels
                .labels()
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let mut obj = serde_json::json!({
                "ts": format_rfc3339_nanos(e.timestamp),
                "labels": labels,
                "line": e.line,
            });
            if !e.metadata.is_empty() {
                obj["structured_metadata"] = e
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            let _ = serde_json::to_writer(&mut out, &obj);
            out.push(b'\n');
        }
        let written = {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out).and_then(|_| stdout.flush())
        };
        if written.is_err() {
            // stdout is gone (closed pipe): nothing more can be printed.
            return;
        }
        delivery.ack();
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2026-02-02T13:00:00.123456789Z`.
pub fn format_rfc3339_nanos(ts: i64) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let nanos = ts.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_timestamps() {
        assert_eq!(
            super::format_rfc3339_nanos(1_556_590_361_844_351_500),
            "2019-04-30T02:12:41.844351500Z"
        );
        assert_eq!(
            super::format_rfc3339_nanos(0),
            "1970-01-01T00:00:00.000000000Z"
        );
    }
}
