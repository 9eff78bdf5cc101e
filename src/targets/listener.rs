//! The listening sources on `/targets` (kind `syslog` or `gelf`): one row per listener, with what it
//! received (messages, bytes, the time of the last one) and its open connections. Listeners report per
//! batch of messages (one read or datagram), never per message.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{lock, State, TargetView, Targets};

pub(super) struct ListenerStatus {
    kind: &'static str,
    /// `tcp://127.0.0.1:1514`, `udp://…`, `tls://…`.
    address: String,
    labels: BTreeMap<String, String>,
    messages: u64,
    bytes: u64,
    /// When the last message arrived, Unix nanoseconds (0: none yet).
    last_ns: i64,
    connections: u64,
}

/// A listener's handle on its `/targets` row; the row goes when the handle is dropped.
pub struct ListenerRow {
    targets: Arc<Targets>,
    key: (Arc<str>, String),
}

impl Targets {
    /// A listener of `kind` (`syslog`, `gelf`) of job `job` is bound to `address`; `labels` are the
    /// job's static labels.
    pub fn listener_started(
        self: &Arc<Self>,
        kind: &'static str,
        job: &Arc<str>,
        address: String,
        labels: BTreeMap<String, String>,
    ) -> ListenerRow {
        let key = (job.clone(), address.clone());
        lock(&self.listeners).insert(
            key.clone(),
            ListenerStatus {
                kind,
                address,
                labels,
                messages: 0,
                bytes: 0,
                last_ns: 0,
                connections: 0,
            },
        );
        ListenerRow {
            targets: self.clone(),
            key,
        }
    }

    pub(super) fn listener_views(&self, views: &mut Vec<TargetView>) {
        for ((job, _), l) in lock(&self.listeners).iter() {
            views.push(TargetView {
                kind: l.kind,
                job: job.to_string(),
                name: l.address.clone(),
                labels: l.labels.clone(),
                state: State::Waiting,
                error: None,
                position: if l.last_ns > 0 {
                    jiff::Timestamp::from_nanosecond(l.last_ns as i128)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                },
                read_bytes: Some(l.bytes),
                read_entries: Some(l.messages),
                path: None,
                file_size: None,
                lag_bytes: None,
                lag_seconds: None,
                container_id: None,
                connections: (l.kind == "syslog" && !l.address.starts_with("udp://"))
                    .then_some(l.connections),
            });
        }
    }
}

impl ListenerRow {
    /// `messages` messages of `bytes` bytes arrived.
    pub fn received(&self, messages: u64, bytes: u64) {
        if let Some(l) = lock(&self.targets.listeners).get_mut(&self.key) {
            l.messages += messages;
            l.bytes += bytes;
            l.last_ns = crate::entry::now_nanos();
        }
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connections(&self, change: i64) {
        if let Some(l) = lock(&self.targets.listeners).get_mut(&self.key) {
            l.connections = l.connections.saturating_add_signed(change);
        }
    }
}

impl Drop for ListenerRow {
    fn drop(&mut self) {
        lock(&self.targets.listeners).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_shows_what_it_received_until_it_stops() {
        let targets = Targets::new();
        let job: Arc<str> = "syslog".into();
        let labels = BTreeMap::from([("job".to_owned(), "syslog".to_owned())]);
        let row = targets.listener_started("syslog", &job, "tcp://127.0.0.1:1514".into(), labels);
        row.connections(1);
        row.received(3, 120);
        row.received(1, 10);
        let v = &targets.snapshot()[0];
        assert_eq!(
            (v.kind, v.name.as_str()),
            ("syslog", "tcp://127.0.0.1:1514")
        );
        assert_eq!(
            (v.read_entries, v.read_bytes, v.connections),
            (Some(4), Some(130), Some(1))
        );
        assert!(v.position.ends_with('Z'), "{}", v.position);
        drop(row);
        assert!(targets.snapshot().is_empty());
    }
}
