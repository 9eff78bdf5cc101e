//! The Elasticsearch sink's settings, resolved from an `elasticsearch[]` block (see
//! `crate::config::ElasticsearchConfig`, where every option is documented with its default).

use std::time::Duration;

use crate::config::{Compression, ElasticsearchConfig, ExtractedFields, OpType};
use crate::sink::http;
use crate::sink::http::{host_of, Auth, HttpSettings};

use crate::config::IndexTemplate;

/// Where documents go.
#[derive(Clone, Debug)]
pub enum Destination {
    /// An index name, dated from each entry's timestamp.
    Index(IndexTemplate),
    DataStream(String),
}

#[derive(Clone, Debug)]
pub struct EsSettings {
    /// The sink's name in metrics, logs and its buffer directory.
    pub name: String,
    /// Base URLs, without a trailing `/`.
    pub endpoints: Vec<String>,
    pub target: Destination,
    pub op_type: OpType,
    pub pipeline: String,
    pub labels_key: String,
    pub metadata_key: String,
    /// Which extracted values go into documents, and under which field ("" = top level).
    pub extracted_fields: ExtractedFields,
    pub extracted_key: String,
    pub batch_wait: Duration,
    pub batch_size: usize,
    pub batch_entries: usize,
    pub gzip: bool,
    /// `max_retries`: total attempts before the documents still failing are dropped.
    pub http: HttpSettings,
}

impl EsSettings {
    /// Settings for a validated config block; reads the TLS files (credential files are read per
    /// request).
    pub fn from_config(c: &ElasticsearchConfig) -> Result<Self, String> {
        let target = if c.data_stream.is_empty() {
            Destination::Index(IndexTemplate::parse(&c.index)?)
        } else {
            Destination::DataStream(c.data_stream.clone())
        };
        Ok(EsSettings {
            name: sink_name(c),
            endpoints: c
                .endpoints
                .iter()
                .map(|e| e.trim().trim_end_matches('/').to_string())
                .collect(),
            target,
            op_type: c.effective_op_type(),
            pipeline: c.pipeline.clone(),
            labels_key: c.labels_key.clone(),
            metadata_key: c.metadata_key.clone(),
            extracted_fields: c.extracted_fields.clone(),
            extracted_key: c.extracted_key.clone(),
            batch_wait: c.batchwait.get(),
            batch_size: c.batchsize.get() as usize,
            batch_entries: c.batch_entries as usize,
            gzip: c.compression == Compression::Gzip,
            http: HttpSettings::from_config(
                &c.timeout,
                &c.backoff_config,
                &c.headers,
                auth_of(c)?,
                http::tls_settings(c.tls_config.as_ref())?,
            ),
        })
    }
}

/// `name` when set, else `es-<first endpoint's host>-<hash of the endpoints and target>`.
pub fn sink_name(c: &ElasticsearchConfig) -> String {
    if !c.name.is_empty() {
        return c.name.clone();
    }
    let host = c.endpoints.first().map(|e| host_of(e)).unwrap_or_default();
    let identity = format!("{}\n{}\n{}", c.endpoints.join(","), c.index, c.data_stream);
    http::default_sink_name("es", &host, &identity)
}

fn auth_of(c: &ElasticsearchConfig) -> Result<Auth, String> {
    if let Some(basic) = http::http_auth(&c.basic_auth, None) {
        return Ok(basic);
    }
    if let Some(key) = http::secret(&c.api_key, &c.api_key_file) {
        return Ok(Auth::Authorization {
            kind: "ApiKey".into(),
            credentials: key,
        });
    }
    Ok(http::http_auth(&None, c.effective_authorization()).unwrap_or(Auth::None))
}
