//! `elasticsearch[]` (a logferry extension beside Promtail's `clients`): sinks that index entries into
//! Elasticsearch or OpenSearch with the `_bulk` API. A Promtail config stays valid without it; a config
//! may have only these sinks, only Loki clients, or both. `configs/elasticsearch.yaml` is the commented
//! example; the sink itself is `crate::sink::elasticsearch`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::buffer::BufferConfig;
use super::byte_size::ByteSize;
use super::client::BackoffConfig;
use super::duration::GoDuration;
use super::error::Invalid;
use super::http::{self, Authorization, BasicAuth, HttpSettings, TlsConfig};
use super::index_template::{check_index_name, IndexTemplate};
use super::locate::{join_index, join_key};
use super::yaml;
use crate::stage::filtering::selector::Selector;
use crate::stage::KeepExtracted;

/// One Elasticsearch (or OpenSearch) sink.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Names the sink in metrics, logs and its buffer directory; unset means `es-<host>-<hash>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Base URLs of the cluster's nodes (`https://es1:9200`). Requests go to them in turn; one that
    /// fails is skipped until it answers again. Required.
    #[serde(serialize_with = "yaml::urls")]
    pub endpoints: Vec<String>,
    /// Index name, with `%Y %m %d %H` taken from the entry's own timestamp in UTC (`logs-%Y.%m.%d`).
    /// Exactly one of `index` and `data_stream` is required.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub index: String,
    /// A data stream to append to (`logs-myapp-default`); documents are sent with `op_type: create`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_stream: String,
    /// `index` or `create`. Unset: `index` for an index, `create` for a data stream (which needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_type: Option<OpType>,
    /// Ingest pipeline every document goes through (`_bulk?pipeline=...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pipeline: String,
    /// Routing selector: a LogQL stream selector, with optional line filters, choosing the entries this
    /// sink gets (`{job="nginx"} |= "error"`). Unset: every entry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Field the stream labels are nested under.
    #[serde(default = "labels_key")]
    pub labels_key: String,
    /// Field the structured metadata is nested under.
    #[serde(default = "metadata_key")]
    pub metadata_key: String,
    /// Also index the values the pipeline's stages extracted (`json`, `logfmt`, `regex`,
    /// `template`...): `true` for every one a stage set (the labels Promtail copies into the map at
    /// pipeline start are left out), or a list of names (each taken if present, whoever set it).
    /// Unset or `false`: none, and entries carry no extracted values at all.
    #[serde(default, skip_serializing_if = "ExtractedFields::is_none")]
    pub extracted_fields: ExtractedFields,
    /// Field the extracted values are nested under. Empty: at the top of the document, beside
    /// `message` (a value whose name is already a document field is then left out).
    #[serde(default = "extracted_key")]
    pub extracted_key: String,
    /// Longest time a request waits for more entries before it is sent.
    #[serde(default = "one_second")]
    pub batchwait: GoDuration,
    /// A request is sent once its NDJSON body holds this many bytes (before compression).
    #[serde(default = "five_mebibytes")]
    pub batchsize: ByteSize,
    /// ... or this many documents.
    #[serde(default = "ten_thousand")]
    pub batch_entries: u32,
    /// `none` or `gzip` (`Content-Encoding: gzip`).
    #[serde(default)]
    pub compression: Compression,
    /// Per-request HTTP timeout.
    #[serde(default = "thirty_seconds")]
    pub timeout: GoDuration,
    /// Retry pacing; `max_retries` unset or 0 retries for as long as it takes.
    #[serde(default)]
    pub backoff_config: BackoffConfig,
    /// Extra request headers. `Content-Type`, `Content-Encoding` and `User-Agent` cannot be overridden.
    #[serde(
        default,
        serialize_with = "yaml::headers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, String>,
    /// This sink's buffer (disk by default), as for `clients[].buffer`.
    #[serde(default, skip_serializing_if = "BufferConfig::is_default")]
    pub buffer: BufferConfig,

    // Authentication: at most one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Elasticsearch API key, the `encoded` value the create API key call returns (base64 of
    /// `id:api_key`); sent as `Authorization: ApiKey <api_key>`.
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<String>,
    /// The API key, read from this file on every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<String>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// As for Loki clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    Index,
    Create,
}

/// `extracted_fields`: `false`, `true` or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExtractedFields {
    #[default]
    None,
    All,
    Names(Vec<String>),
}

impl ExtractedFields {
    pub fn is_none(&self) -> bool {
        *self == ExtractedFields::None
    }
}

impl Serialize for ExtractedFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExtractedFields::None => s.serialize_bool(false),
            ExtractedFields::All => s.serialize_bool(true),
            ExtractedFields::Names(names) => names.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ExtractedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ExtractedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a list of extracted field names")
            }
            fn visit_bool<E>(self, all: bool) -> Result<ExtractedFields, E> {
                Ok(if all {
                    ExtractedFields::All
                } else {
                    ExtractedFields::None
                })
            }
            fn visit_unit<E>(self) -> Result<ExtractedFields, E> {
                Ok(ExtractedFields::None)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ExtractedFields, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(ExtractedFields::Names(names))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the pipelines must keep for these sinks: every stage-set value if one sink wants them all,
/// else the names any sink lists, else nothing.
pub fn keep_extracted(sinks: &[ElasticsearchConfig]) -> KeepExtracted {
    let mut names: Vec<String> = Vec::new();
    for sink in sinks {
        match &sink.extracted_fields {
            ExtractedFields::None => {}
            ExtractedFields::All => return KeepExtracted::All,
            ExtractedFields::Names(n) => names.extend(n.iter().cloned()),
        }
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        KeepExtracted::Nothing
    } else {
        KeepExtracted::Names(names.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

fn labels_key() -> String {
    "labels".into()
}
fn metadata_key() -> String {
    "structured_metadata".into()
}
fn extracted_key() -> String {
    "extracted".into()
}
fn one_second() -> GoDuration {
    GoDuration::from_secs(1)
}
fn thirty_seconds() -> GoDuration {
    GoDuration::from_secs(30)
}
fn five_mebibytes() -> ByteSize {
    ByteSize(5 << 20)
}
fn ten_thousand() -> u32 {
    10_000
}

impl ElasticsearchConfig {
    /// `op_type` as it applies: explicit, else `create` for a data stream and `index` for an index.
    pub fn effective_op_type(&self) -> OpType {
        self.op_type.unwrap_or(if self.data_stream.is_empty() {
            OpType::Index
        } else {
            OpType::Create
        })
    }

    /// The `Authorization` header settings for bearer tokens and `authorization`, as for clients.
    pub fn effective_authorization(&self) -> Option<Authorization> {
        http::effective_authorization(
            &self.authorization,
            &self.bearer_token,
            &self.bearer_token_file,
        )
    }

    /// Checks one sink; `base` is its path (`elasticsearch[0]`).
    pub(crate) fn validate(&self, base: &str) -> Result<(), Invalid> {
        let at = |key: &str| join_key(base, key);
        http::validate_headers(base, &self.headers)?;
        if self.endpoints.is_empty() {
            return Err(Invalid::key(
                at("endpoints"),
                "at least one endpoint is required, e.g. [http://elasticsearch:9200]",
            ));
        }
        for (i, url) in self.endpoints.iter().enumerate() {
            super::http::check_sink_url(url, "endpoint", "http://elasticsearch:9200")
                .map_err(|why| Invalid::value(join_index(&at("endpoints"), i), why))?;
        }
        match (self.index.is_empty(), self.data_stream.is_empty()) {
            (true, true) => {
                return Err(Invalid::key(
                    base.to_string(),
                    "one of index or data_stream is required, e.g. index: logs-%Y.%m.%d",
                ))
            }
            (false, false) => return Err(Invalid::key(
                at("data_stream"),
                "index and data_stream are exclusive: a data stream names its own backing indices",
            )),
            (false, true) => {
                IndexTemplate::parse(&self.index).map_err(|e| Invalid::value(at("index"), e))?;
            }
            (true, false) => {
                check_index_name(&self.data_stream)
                    .map_err(|e| Invalid::value(at("data_stream"), e))?;
                if self.op_type == Some(OpType::Index) {
                    return Err(Invalid::value(
                        at("op_type"),
                        "a data stream only accepts op_type create",
                    ));
                }
            }
        }
        if !self.selector.is_empty() {
            Selector::parse(&self.selector).map_err(|e| Invalid::value(at("selector"), e))?;
        }
        for (key, value) in [
            ("labels_key", &self.labels_key),
            ("metadata_key", &self.metadata_key),
        ] {
            if value.is_empty() || value == "@timestamp" || value == "message" {
                return Err(Invalid::value(
                    at(key),
                    format!("{key} must be a field name other than @timestamp and message"),
                ));
            }
        }
        if self.labels_key == self.metadata_key {
            return Err(Invalid::value(
                at("metadata_key"),
                "metadata_key must differ from labels_key",
            ));
        }
        let key = &self.extracted_key;
        if key == "@timestamp"
            || key == "message"
            || key == &self.labels_key
            || key == &self.metadata_key
        {
            return Err(Invalid::value(
                at("extracted_key"),
                "extracted_key must be empty or a field name other than @timestamp, message, labels_key and metadata_key",
            ));
        }
        if let ExtractedFields::Names(names) = &self.extracted_fields {
            if let Some(i) = names.iter().position(String::is_empty) {
                return Err(Invalid::value(
                    join_index(&at("extracted_fields"), i),
                    "an extracted field name cannot be empty",
                ));
            }
        }
        if self.batchsize.get() == 0 {
            return Err(Invalid::value(at("batchsize"), "batchsize must be above 0"));
        }
        if self.batch_entries == 0 {
            return Err(Invalid::value(
                at("batch_entries"),
                "batch_entries must be above 0",
            ));
        }
        if self.backoff_config.max_period < self.backoff_config.min_period {
            return Err(Invalid::value(
                at("backoff_config.max_period"),
                format!(
                    "max_period {} is shorter than min_period {}",
                    self.backoff_config.max_period, self.backoff_config.min_period
                ),
            ));
        }
        let has_api_key = self.api_key.as_deref().is_some_and(|k| !k.is_empty())
            || self.api_key_file.as_deref().is_some_and(|k| !k.is_empty());
        if self.api_key.is_some() && self.api_key_file.is_some() {
            return Err(Invalid::key(
                at("api_key_file"),
                "at most one of api_key & api_key_file must be configured",
            ));
        }
        if has_api_key
            && (self.basic_auth.is_some()
                || self.authorization.is_some()
                || self.bearer_token.is_some()
                || self.bearer_token_file.is_some())
        {
            let key = if self.api_key.is_some() {
                "api_key"
            } else {
                "api_key_file"
            };
            return Err(Invalid::key(
                at(key),
                "at most one of basic_auth, api_key, authorization, bearer_token & bearer_token_file must be configured",
            ));
        }
        self.buffer.validate(&at("buffer"))?;
        static NO_PROXY: Option<String> = None;
        static NO_HEADERS: BTreeMap<String, Vec<String>> = BTreeMap::new();
        http::validate(
            base,
            &HttpSettings {
                basic_auth: &self.basic_auth,
                authorization: &self.authorization,
                bearer_token: &self.bearer_token,
                bearer_token_file: &self.bearer_token_file,
                oauth2: &None,
                tls_config: &self.tls_config,
                proxy_url: &NO_PROXY,
                no_proxy: &NO_PROXY,
                proxy_from_environment: false,
                proxy_connect_header: &NO_HEADERS,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ElasticsearchConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults() {
        let c = parse("endpoints: [http://es:9200]\nindex: logs-%Y.%m.%d");
        assert_eq!(c.labels_key, "labels");
        assert_eq!(c.metadata_key, "structured_metadata");
        assert_eq!(c.batchsize.get(), 5 << 20);
        assert_eq!(c.batch_entries, 10_000);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.effective_op_type(), OpType::Index);
        assert_eq!(c.backoff_config.max_retries_explicit(), None);
        assert_eq!(c.validate("elasticsearch[0]"), Ok(()));
        let ds = parse("endpoints: [http://es:9200]\ndata_stream: logs-app-default");
        assert_eq!(ds.effective_op_type(), OpType::Create);
        assert_eq!(ds.validate("e"), Ok(()));
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let cases = [
            (
                "endpoints: []\nindex: l",
                "e.endpoints",
                "at least one endpoint",
            ),
            (
                "endpoints: [es:9200]\nindex: l",
                "e.endpoints[0]",
                "invalid endpoint",
            ),
            ("endpoints: [http://es]", "e", "one of index or data_stream"),
            (
                "endpoints: [http://es]\nindex: a\ndata_stream: b",
                "e.data_stream",
                "exclusive",
            ),
            (
                "endpoints: [http://es]\nindex: Logs",
                "e.index",
                "lowercase",
            ),
            (
                "endpoints: [http://es]\ndata_stream: l-a-b\nop_type: index",
                "e.op_type",
                "only accepts op_type create",
            ),
            (
                "endpoints: [http://es]\nindex: l\nselector: '{job=}'",
                "e.selector",
                "parse error",
            ),
            (
                "endpoints: [http://es]\nindex: l\nlabels_key: message",
                "e.labels_key",
                "other than",
            ),
            (
                "endpoints: [http://es]\nindex: l\nextracted_key: labels",
                "e.extracted_key",
                "other than",
            ),
            (
                "endpoints: [http://es]\nindex: l\nextracted_fields: [a, '']",
                "e.extracted_fields[1]",
                "cannot be empty",
            ),
            (
                "endpoints: [http://es]\nindex: l\nbatch_entries: 0",
                "e.batch_entries",
                "above 0",
            ),
            (
                "endpoints: [http://es]\nindex: l\napi_key: k\nbearer_token: t",
                "e.api_key",
                "at most one of",
            ),
            (
                "endpoints: [http://es]\nindex: l\nbasic_auth: {password: a, password_file: b}",
                "e.basic_auth.password_file",
                "at most one of",
            ),
        ];
        for (yaml, path, message) in cases {
            let err = parse(yaml).validate("e").unwrap_err();
            assert_eq!(err.path, path, "{yaml}");
            assert!(err.message.contains(message), "{yaml}: {}", err.message);
        }
    }

    #[test]
    fn extracted_fields_are_off_all_or_named_and_kept_for_every_sink() {
        let base = "endpoints: [http://es]\nindex: l\n";
        let c = |extra: &str| parse(&format!("{base}{extra}"));
        assert_eq!(c("").extracted_fields, ExtractedFields::None);
        assert_eq!(c("").extracted_key, "extracted");
        assert_eq!(
            c("extracted_fields: false").extracted_fields,
            ExtractedFields::None
        );
        assert_eq!(
            c("extracted_fields: true").extracted_fields,
            ExtractedFields::All
        );
        let named = c("extracted_fields: [level, user]");
        assert_eq!(
            named.extracted_fields,
            ExtractedFields::Names(vec!["level".into(), "user".into()])
        );
        assert_eq!(c("extracted_key: ''").validate("e"), Ok(()));
        let err =
            serde_yaml_ng::from_str::<ElasticsearchConfig>(&format!("{base}extracted_fields: 3"))
                .unwrap_err();
        assert!(err.to_string().contains("true, false or a list"), "{err}");
        // What the pipelines keep: nothing, the union of the names, or everything.
        assert_eq!(keep_extracted(&[c("")]), KeepExtracted::Nothing);
        let other = c("extracted_fields: [user, trace]");
        assert_eq!(
            keep_extracted(&[named.clone(), other]),
            KeepExtracted::Names(vec!["level".into(), "trace".into(), "user".into()].into())
        );
        assert_eq!(
            keep_extracted(&[named, c("extracted_fields: true")]),
            KeepExtracted::All
        );
        let printed = serde_yaml_ng::to_string(&c("extracted_fields: [a]")).unwrap();
        assert!(printed.contains("extracted_fields:\n- a"), "{printed}");
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let c = parse("endpoints: [http://es]\nindex: l\napi_key: sekrit");
        let printed = serde_yaml_ng::to_string(&c).unwrap();
        assert!(!printed.contains("sekrit"), "{printed}");
    }
}
