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
                "ts": crate::entry::format_rfc3339_nanos(e.timestamp),
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
