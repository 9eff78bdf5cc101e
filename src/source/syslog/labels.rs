//! A message's stream labels, as Promtail's syslog target builds them: the job's static `labels`, then
//! the connection's and the message's meta labels (`__syslog_connection_*`, `__syslog_message_*`), then
//! `relabel_configs`, then every `__*` label removed. A message left without labels is dropped
//! (Loki refuses an empty stream; Promtail would send it and have the push fail).
//!
//! Relabeling is per message, so its result is cached, keyed by the values of the labels that can change
//! it ([`Relabeler::name_matters`]): messages of one sender and app share one `Arc<LabelSet>`. The cache
//! belongs to one connection (or the UDP listener) and is small and bounded.

use std::borrow::Cow;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::message::Message;
use crate::entry::{LabelSet, Labels};
use crate::relabel::Relabeler;

/// Distinct keys kept per connection before the cache starts over.
const CACHE_MAX: usize = 256;

/// The labels that do not change over a connection.
#[derive(Clone)]
pub struct Connection {
    pub ip: String,
    pub hostname: String,
}

/// What the job's labels and rules make of each message.
#[derive(Clone)]
pub struct LabelRules {
    pub static_labels: Labels,
    pub relabeler: Relabeler,
    pub structured_data: bool,
}

/// Why a message has no stream labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlabeled {
    /// A relabel rule dropped it (`drop`, `keep`, …): what the rules are for; not counted.
    Dropped,
    /// Nothing but `__*` labels were left: Loki would refuse it; counted and logged.
    Empty,
}

type Labeled = Result<Arc<LabelSet>, Unlabeled>;

/// A meta label: its name (static, or made for a structured-data parameter) and its value, borrowed
/// from the connection or the message.
pub type Meta<'a> = (Cow<'static, str>, &'a str);

/// Labels messages of one connection (or listener), with a cache.
pub struct Labeler {
    rules: Arc<LabelRules>,
    conn: Connection,
    cache: FxHashMap<Vec<u8>, Labeled>,
    relevant: FxHashMap<Cow<'static, str>, bool>,
    key: Vec<u8>,
}

impl Labeler {
    pub fn new(rules: Arc<LabelRules>, conn: Connection) -> Self {
        Labeler {
            rules,
            conn,
            cache: FxHashMap::default(),
            relevant: FxHashMap::default(),
            key: Vec::with_capacity(128),
        }
    }

    /// The stream labels of `m`, or why it has none.
    pub fn labels(&mut self, m: &Message<'_>) -> Labeled {
        let mut meta: Vec<Meta<'_>> = Vec::with_capacity(16);
        meta_labels(&self.conn, m, self.rules.structured_data, &mut meta);
        self.key.clear();
        for (name, value) in &meta {
            let relevant = match self.relevant.get(name) {
                Some(r) => *r,
                None => {
                    let r = self.rules.relabeler.name_matters(name);
                    if self.relevant.len() < CACHE_MAX {
                        self.relevant.insert(name.clone(), r);
                    }
                    r
                }
            };
            if relevant {
                self.key.extend_from_slice(name.as_bytes());
                self.key.push(0);
                self.key.extend_from_slice(value.as_bytes());
                self.key.push(0);
            }
        }
        if let Some(hit) = self.cache.get(&self.key) {
            return hit.clone();
        }
        let labels = self.relabel(&meta);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(self.key.clone(), labels.clone());
        labels
    }

    fn relabel(&self, meta: &[Meta<'_>]) -> Labeled {
        let mut labels = self.rules.static_labels.clone();
        for (name, value) in meta {
            labels.insert(name.to_string(), (*value).to_owned());
        }
        if !self.rules.relabeler.process(&mut labels) {
            return Err(Unlabeled::Dropped);
        }
        labels.retain(|k, _| !k.starts_with("__"));
        if labels.is_empty() {
            return Err(Unlabeled::Empty);
        }
        Ok(LabelSet::new(labels))
    }
}

/// Promtail's meta labels of message `m` received on `conn`, in `out`.
///
/// A label whose value is empty is left out, as Prometheus' label builder deletes a label set to "" (a
/// sender without a reverse DNS name, an empty structured-data value).
pub fn meta_labels<'a>(
    conn: &'a Connection,
    m: &'a Message<'_>,
    sd: bool,
    out: &mut Vec<Meta<'a>>,
) {
    let mut set = |name: &'static str, value: &'a str| {
        if !value.is_empty() {
            out.push((Cow::Borrowed(name), value))
        }
    };
    set("__syslog_connection_ip_address", &conn.ip);
    set("__syslog_connection_hostname", &conn.hostname);
    set("__syslog_message_severity", m.severity());
    set("__syslog_message_facility", m.facility());
    let fields = [
        ("__syslog_message_hostname", &m.hostname),
        ("__syslog_message_app_name", &m.app_name),
        ("__syslog_message_proc_id", &m.proc_id),
        ("__syslog_message_msg_id", &m.msg_id),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            set(name, v);
        }
    }
    if sd {
        for (id, params) in &m.structured_data {
            let id = id.replace('@', "_");
            for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
                let label = format!("__syslog_message_sd_{id}_{name}");
                out.push((Cow::Owned(label), value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::RelabelConfig;

    fn rules(yaml: &str, statics: &[(&str, &str)], sd: bool) -> Arc<LabelRules> {
        let configs: Vec<RelabelConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        Arc::new(LabelRules {
            static_labels: statics
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            relabeler: Relabeler::new(&configs).unwrap(),
            structured_data: sd,
        })
    }

    fn conn() -> Connection {
        Connection {
            ip: "127.0.0.1".into(),
            hostname: "localhost.".into(),
        }
    }

    #[test]
    fn promtails_meta_labels_with_structured_data() {
        let m = super::super::message::parse_rfc5424(
            b"<134>1 - web nginx 12 REQ [custom@99770 example=\"1\" b=\"2\" empty=\"\"] hi",
        )
        .unwrap();
        let mut out = Vec::new();
        let unnamed = Connection {
            hostname: String::new(),
            ..conn()
        };
        meta_labels(&unnamed, &m, true, &mut out);
        let got: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "__syslog_connection_ip_address=127.0.0.1",
                "__syslog_message_severity=informational",
                "__syslog_message_facility=local0",
                "__syslog_message_hostname=web",
                "__syslog_message_app_name=nginx",
                "__syslog_message_proc_id=12",
                "__syslog_message_msg_id=REQ",
                "__syslog_message_sd_custom_99770_example=1",
                "__syslog_message_sd_custom_99770_b=2",
            ]
        );
    }

    #[test]
    fn relabeled_per_message_and_cached_by_what_the_rules_read() {
        let r = rules(
            "- source_labels: [__syslog_message_app_name]\n  target_label: app\n- source_labels: [__syslog_message_app_name]\n  regex: noisy\n  action: drop\n",
            &[("job", "syslog")],
            false,
        );
        let mut l = Labeler::new(r, conn());
        fn parse(s: &[u8]) -> Message<'_> {
            super::super::message::parse_rfc5424(s).unwrap()
        }
        let a1 = l.labels(&parse(b"<13>1 - h app1 1 - - x")).unwrap();
        let a2 = l.labels(&parse(b"<13>1 - h app1 2 - - y")).unwrap();
        assert!(Arc::ptr_eq(&a1, &a2), "proc_id is not read by any rule");
        assert_eq!(a1.rendered(), r#"{app="app1", job="syslog"}"#);
        assert_eq!(
            l.labels(&parse(b"<13>1 - h noisy 1 - - x")),
            Err(Unlabeled::Dropped)
        );
        // No static labels and nothing kept: dropped.
        let mut bare = Labeler::new(rules("[]", &[], false), conn());
        assert_eq!(
            bare.labels(&parse(b"<13>1 - h a 1 - - x")),
            Err(Unlabeled::Empty)
        );
    }
}
