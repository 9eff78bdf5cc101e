//! How a push is sent to Loki and its answer read, and what each outcome counts in Promtail's client
//! metrics; the sink core does the rest.
//!
//! Loki answers 400 to a push when any of its entries is invalid (too long, too old) but stores the
//! valid ones. So a 400 is [`Answer::Split`]: the push is decoded, halved by entries, and each half
//! sent on its own until what is refused is single entries; only those go to the dead-letter file and
//! count as dropped, not their hundreds of neighbours. Resending what Loki stored does not duplicate it
//! (Loki drops an entry whose stream, timestamp and line it already has).

use std::sync::Arc;

use prost::Message;

use super::config::LokiSettings;
use super::logproto::{decode_push, PushRequest, StreamAdapter};
use super::service::{Outcome, Service};
use crate::delivery::Request;
use crate::metrics::{Escaped, HostLabel, HostTenantLabel, Metrics, RequestLabel};
use crate::sink::core::{Answer, DeadEntry, Protocol};
use crate::sink::http::HttpSettings;

pub struct LokiProtocol {
    service: Service,
    metrics: Arc<Metrics>,
    host: HostLabel,
}

impl LokiProtocol {
    pub fn new(settings: LokiSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        metrics.init_client(&settings.host, &settings.tenant_id);
        let host = HostLabel {
            host: settings.host.clone(),
        };
        Ok(LokiProtocol {
            service: Service::new(settings)?,
            metrics,
            host,
        })
    }

    fn count_drop(&self, request: &Request, reason: &str) {
        let label = Metrics::drop_label(&self.host.host, &request.dest, reason);
        self.metrics
            .dropped_entries
            .get_or_create(&label)
            .inc_by(u64::from(request.entries));
        self.metrics
            .dropped_bytes
            .get_or_create(&label)
            .inc_by(request.bytes);
    }
}

impl Protocol for LokiProtocol {
    const KIND: &'static str = "Loki";
    const NOUN: &'static str = "entries";
    const SENDING: &'static str = "batch";

    fn name(&self) -> &str {
        &self.host.host
    }

    fn http(&self) -> &HttpSettings {
        &self.service.settings().http
    }

    async fn send(&mut self, request: &Request) -> Answer {
        let (outcome, took) = self.service.push(request.body.clone(), &request.dest).await;
        let status = match &outcome {
            Outcome::Accepted => 204,
            Outcome::Retry { status, .. } | Outcome::Rejected { status, .. } => *status,
        };
        self.metrics
            .request_duration
            .get_or_create(&RequestLabel {
                status_code: status.to_string(),
                host: self.host.host.clone(),
            })
            .observe(took.as_secs_f64());
        match outcome {
            Outcome::Accepted => Answer::Accepted,
            Outcome::Retry { status, error } => {
                if status == 429 && self.service.settings().drop_rate_limited_batches {
                    tracing::warn!(host = %self.host.host, tenant = %request.dest,
                        "dropping batch due to rate limiting applied at ingester");
                    return Answer::Dropped("rate_limited");
                }
                Answer::Retry {
                    status,
                    error,
                    at_once: false,
                }
            }
            Outcome::Rejected { status, error } => {
                let error = format!("status {status}: {error}");
                if status == 400 {
                    Answer::Split { status, error }
                } else {
                    Answer::Rejected { status, error }
                }
            }
        }
    }

    fn halves(&self, request: &Request) -> Option<(Request, Request)> {
        if request.entries < 2 {
            return None;
        }
        let push = match decode_push(&request.body) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(host = %self.host.host, error = %e, "cannot read back a push to split it");
                return None;
            }
        };
        let total: usize = push.streams.iter().map(|s| s.entries.len()).sum();
        if total < 2 {
            return None;
        }
        let mut want = total / 2;
        let (mut first, mut second) = (PushRequest::default(), PushRequest::default());
        for mut stream in push.streams {
            let take = want.min(stream.entries.len());
            want -= take;
            let rest = stream.entries.split_off(take);
            if !rest.is_empty() {
                second.streams.push(StreamAdapter {
                    labels: stream.labels.clone(),
                    entries: rest,
                    hash: 0,
                });
            }
            if !stream.entries.is_empty() {
                first.streams.push(stream);
            }
        }
        let request_of = |push: PushRequest| {
            let entries = push.streams.iter().flat_map(|s| &s.entries);
            let bytes: usize = entries
                .clone()
                .map(|e| {
                    e.line.len()
                        + e.structured_metadata
                            .iter()
                            .map(|m| m.name.len() + m.value.len())
                            .sum::<usize>()
                })
                .sum();
            let count = entries.count();
            let body = snap::raw::Encoder::new()
                .compress_vec(&push.encode_to_vec())
                .expect("snappy compresses any input");
            Request {
                body: body.into(),
                dest: request.dest.clone(),
                entries: count as u32,
                bytes: bytes as u64,
            }
        };
        Some((request_of(first), request_of(second)))
    }

    fn dead_letters(&self, request: &Request) -> Vec<DeadEntry> {
        let Ok(push) = decode_push(&request.body) else {
            return Vec::new();
        };
        push.streams
            .into_iter()
            .flat_map(|s| {
                let labels = s.labels;
                s.entries.into_iter().map(move |e| {
                    let ts = e.timestamp.map_or(0, |t| t.unix_nanos() as i64);
                    (ts, labels.clone(), e.line)
                })
            })
            .collect()
    }

    fn sent(&self, request: &Request) {
        self.metrics
            .sent_entries
            .get_or_create(&self.host)
            .inc_by(u64::from(request.entries));
        self.metrics
            .sent_bytes
            .get_or_create(&self.host)
            .inc_by(request.bytes);
    }

    fn retried(&self, request: &Request, _status: i32) {
        self.metrics
            .batch_retries
            .get_or_create(&HostTenantLabel {
                host: self.host.host.clone(),
                tenant: Escaped(request.dest.to_string()),
            })
            .inc();
    }

    fn dropped(&self, request: &Request, reason: &'static str) {
        self.count_drop(request, reason);
    }

    fn rejected(&self, request: &Request, _status: i32) {
        self.count_drop(request, "ingester_error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::loki::logproto::{EntryAdapter, LabelPairAdapter, Timestamp};

    fn entry(ts: i64, line: &str) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: ts,
                nanos: 0,
            }),
            line: line.into(),
            structured_metadata: if line == "b1" {
                vec![LabelPairAdapter {
                    name: "k".into(),
                    value: "vv".into(),
                }]
            } else {
                vec![]
            },
            parsed: vec![],
        }
    }

    /// A push of two streams (3 and 2 entries).
    fn request() -> Request {
        let stream = |labels: &str, lines: &[&str]| StreamAdapter {
            labels: labels.into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| entry(i as i64, l))
                .collect(),
            hash: 0,
        };
        let push = PushRequest {
            streams: vec![
                stream("{s=\"a\"}", &["a0", "a1", "a2"]),
                stream("{s=\"b\"}", &["b0", "b1"]),
            ],
            format: String::new(),
        };
        Request {
            body: snap::raw::Encoder::new()
                .compress_vec(&push.encode_to_vec())
                .unwrap()
                .into(),
            dest: "t1".into(),
            entries: 5,
            bytes: 13,
        }
    }

    fn protocol() -> LokiProtocol {
        let settings = LokiSettings::new("http://127.0.0.1:9/loki/api/v1/push");
        LokiProtocol::new(settings, Metrics::new()).unwrap()
    }

    fn lines(p: &LokiProtocol, r: &Request) -> Vec<String> {
        p.dead_letters(r)
            .into_iter()
            .map(|(_, labels, line)| format!("{labels}:{line}"))
            .collect()
    }

    #[test]
    fn halves_split_a_stored_push_by_entries_down_to_single_entries() {
        let p = protocol();
        let whole = request();
        let (first, second) = p.halves(&whole).unwrap();
        // Stream order and entry order are kept; the second half takes the odd entry.
        assert_eq!(lines(&p, &first), ["{s=\"a\"}:a0", "{s=\"a\"}:a1"]);
        assert_eq!(
            lines(&p, &second),
            ["{s=\"a\"}:a2", "{s=\"b\"}:b0", "{s=\"b\"}:b1"]
        );
        assert_eq!((first.entries, first.bytes), (2, 4));
        // b1 carries 3 bytes of structured metadata.
        assert_eq!((second.entries, second.bytes), (3, 9));
        assert_eq!(&*second.dest, "t1");
        let (a, b) = p.halves(&second).unwrap();
        assert_eq!(lines(&p, &a), ["{s=\"a\"}:a2"]);
        assert_eq!(lines(&p, &b), ["{s=\"b\"}:b0", "{s=\"b\"}:b1"]);
        assert!(p.halves(&a).is_none(), "one entry has no halves");
    }

    #[test]
    fn dead_letters_keep_each_entry_with_its_timestamp_and_stream() {
        let p = protocol();
        let dead = p.dead_letters(&request());
        assert_eq!(dead.len(), 5);
        assert_eq!(dead[4], (1_000_000_000, "{s=\"b\"}".into(), "b1".into()));
    }
}
