//! The stdout sink of `dry-run` and `-stdin` (and of the embedded default config when `LOKI_URL` is
//! not set), flushed per batch, in one of two forms:
//!
//! * [`Format::Promtail`], what Promtail's dry run prints (its `client/logger.go`, through Go's
//!   tabwriter with tab padding, which writes a tab between cells): the timestamp in Go's layout
//!   `2006-01-02T15:04:05.999999999-0700` in the local time zone, the label set as Prometheus writes
//!   one, and the line. Before the entries, the clients it would have used, as YAML.
//! * [`Format::Json`], one JSON object per entry, `{"ts":"…","labels":{…},"line":"…"}` (and
//!   `structured_metadata`), for scripts (`-dry-run.format=json`).

use std::io::Write;

use tokio::sync::mpsc;

use crate::config::ClientConfig;
use crate::delivery::Delivery;
use crate::entry::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Promtail,
    Json,
}

/// Promtail's list of the clients a dry run would have used (credentials redacted); nothing without
/// clients.
pub fn print_clients(clients: &[ClientConfig]) {
    if clients.is_empty() {
        return;
    }
    let mut out = String::from("Clients configured:\n");
    for c in clients {
        out.push_str("----------------------\n");
        out.push_str(&serde_yaml_ng::to_string(c).unwrap_or_default());
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
}

/// An entry as Promtail's dry run prints it.
fn promtail_line(out: &mut Vec<u8>, e: &Entry, tz: &jiff::tz::TimeZone) {
    let ts = jiff::Timestamp::from_nanosecond(i128::from(e.timestamp))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone());
    let _ = write!(out, "{}", ts.strftime("%Y-%m-%dT%H:%M:%S%.f%z"));
    out.push(b'\t');
    out.extend_from_slice(e.labels.rendered().as_bytes());
    out.push(b'\t');
    out.extend_from_slice(e.line.as_bytes());
    out.push(b'\n');
}

pub async fn run(mut input: mpsc::Receiver<Delivery>, format: Format) {
    let mut out = Vec::with_capacity(64 * 1024);
    let tz = jiff::tz::TimeZone::system();
    while let Some(delivery) = input.recv().await {
        let batch = &delivery.batch;
        out.clear();
        for e in &batch.entries {
            if format == Format::Promtail {
                promtail_line(&mut out, e, &tz);
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{LabelSet, Labels};

    #[test]
    fn entries_print_as_promtails_dry_run_prints_them() {
        let labels = LabelSet::new(Labels::from([
            ("job".to_string(), "app".to_string()),
            ("level".to_string(), "info".to_string()),
        ]));
        let entry = |timestamp| Entry {
            timestamp,
            line: "hello world".into(),
            labels: labels.clone(),
            metadata: vec![],
            extracted: None,
        };
        let mut out = Vec::new();
        let utc = jiff::tz::TimeZone::UTC;
        promtail_line(&mut out, &entry(1_770_037_200_123_456_789), &utc);
        promtail_line(&mut out, &entry(1_770_037_200_120_000_000), &utc);
        promtail_line(&mut out, &entry(1_770_037_200_000_000_000), &utc);
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        promtail_line(&mut out, &entry(1_770_037_200_000_000_000), &berlin);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-02-02T13:00:00.123456789+0000\t{job=\"app\", level=\"info\"}\thello world\n\
             2026-02-02T13:00:00.12+0000\t{job=\"app\", level=\"info\"}\thello world\n\
             2026-02-02T13:00:00+0000\t{job=\"app\", level=\"info\"}\thello world\n\
             2026-02-02T14:00:00+0100\t{job=\"app\", level=\"info\"}\thello world\n"
        );
    }
}
