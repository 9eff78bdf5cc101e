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
    let (y, m, d) = crate::entry::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
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
