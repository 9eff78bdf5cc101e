//! Checks that need more than one value at a time, run after the YAML deserialized: unique and non-empty
//! job names, unique clients, conflicting HTTP settings, relabel rules, nested stage pipelines, source
//! settings and sane periods. Each failure names the key path; the loader turns it into line:column.

use std::collections::HashMap;

use super::client::ClientConfig;
use super::error::{Anchor, Invalid};
use super::locate::{join_key, SourceMap};
use super::scrape::ScrapeConfig;
use super::stages;
use super::Config;
use crate::relabel::{RelabelError, RelabelErrorKind, Relabeler};

/// Runs every check in file order of the blocks; the first failure wins. Also records each top-level
/// stage's line:column (from `map`), which is why it needs `&mut`.
pub(crate) fn validate(config: &mut Config, map: Option<&SourceMap>) -> Result<(), Invalid> {
    config.global.validate()?;
    validate_clients(config)?;
    validate_elasticsearch(config)?;
    validate_otlp(config)?;
    config.positions.validate()?;
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (i, job) in config.scrape_configs.iter().enumerate() {
        let base = format!("scrape_configs[{i}]");
        if job.job_name.is_empty() {
            return Err(Invalid::value(
                join_key(&base, "job_name"),
                "job_name is empty: every scrape config needs a unique job_name",
            ));
        }
        if let Some(first) = first_use.insert(job.job_name.as_str(), i) {
            return Err(Invalid::value(
                join_key(&base, "job_name"),
                format!(
                    "found multiple scrape configs with job name {:?} (first at scrape_configs[{first}]); job names must be unique",
                    job.job_name
                ),
            ));
        }
        validate_job(job, &base)?;
    }
    for (i, job) in config.scrape_configs.iter_mut().enumerate() {
        stages::check_and_locate(
            &mut job.pipeline_stages,
            &format!("scrape_configs[{i}].pipeline_stages"),
            map,
        )?;
    }
    config.target_config.validate()
}

fn validate_job(job: &ScrapeConfig, base: &str) -> Result<(), Invalid> {
    if let Err(err) = Relabeler::new(&job.relabel_configs) {
        return Err(relabel_invalid(base, &err));
    }
    job.validate_sources(base)
}

/// Points a relabel rule error at the field it is about.
fn relabel_invalid(base: &str, err: &RelabelError) -> Invalid {
    let rule = format!("{base}.relabel_configs[{}]", err.index);
    let (field, anchor) = match &err.kind {
        RelabelErrorKind::UnknownAction { .. } => (Some("action"), Anchor::Value),
        RelabelErrorKind::InvalidRegex { .. } => (Some("regex"), Anchor::Value),
        RelabelErrorKind::ZeroModulus => (Some("modulus"), Anchor::Value),
        RelabelErrorKind::ReplacementNotAllowed { .. }
        | RelabelErrorKind::EmptyLabelMapReplacement => (Some("replacement"), Anchor::Key),
        RelabelErrorKind::OnlySourceAndTarget { field, .. }
        | RelabelErrorKind::OnlyRegex { field, .. } => (Some(*field), Anchor::Key),
        _ => (None, Anchor::Value),
    };
    let path = field.map_or_else(|| rule.clone(), |f| join_key(&rule, f));
    Invalid {
        path,
        message: err.kind.to_string(),
        anchor,
    }
}

/// Each client on its own, then uniqueness: explicit names must differ, and (as Promtail names an
/// unnamed client by a hash of its config) two unnamed clients must not be identical.
fn validate_clients(config: &Config) -> Result<(), Invalid> {
    let mut all: Vec<(String, &ClientConfig)> = config
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("clients[{i}]"), c))
        .collect();
    if let Some(client) = &config.client {
        if client.url.trim().is_empty() {
            // Promtail's single client without a URL is no client (yet): only its settings are checked.
            client.validate_settings("client")?;
        } else {
            all.push(("client".to_string(), client));
        }
    }
    for (j, (path, client)) in all.iter().enumerate() {
        client.validate(path)?;
        for (first_path, first) in &all[..j] {
            if !client.name.is_empty() && client.name == first.name {
                return Err(Invalid::value(
                    join_key(path, "name"),
                    format!("duplicate client name {:?} (also used by {first_path}); client names must be unique", client.name),
                ));
            }
            if client.name.is_empty() && first.name.is_empty() && client == first {
                return Err(Invalid::key(
                    path.clone(),
                    format!("duplicate client configs are not allowed: this client is identical to {first_path}"),
                ));
            }
        }
    }
    Ok(())
}

/// Each Elasticsearch sink on its own, then names: a sink's name names its buffer directory, so it must
/// differ from every other sink's, Loki clients' included; two unnamed sinks must not be identical.
fn validate_elasticsearch(config: &Config) -> Result<(), Invalid> {
    for (i, sink) in config.elasticsearch.iter().enumerate() {
        let path = format!("elasticsearch[{i}]");
        sink.validate(&path)?;
        for (j, first) in config.elasticsearch[..i].iter().enumerate() {
            if !sink.name.is_empty() && sink.name == first.name {
                return Err(Invalid::value(
                    join_key(&path, "name"),
                    format!("duplicate sink name {:?} (also used by elasticsearch[{j}]); names must be unique", sink.name),
                ));
            }
            if sink.name.is_empty() && first.name.is_empty() && sink == first {
                return Err(Invalid::key(
                    path.clone(),
                    format!("duplicate elasticsearch configs are not allowed: this sink is identical to elasticsearch[{j}]"),
                ));
            }
        }
        if let Some(j) = config
            .clients
            .iter()
            .position(|c| !sink.name.is_empty() && c.name == sink.name)
        {
            return Err(Invalid::value(
                join_key(&path, "name"),
                format!(
                    "sink name {:?} is also the name of clients[{j}]; names must be unique",
                    sink.name
                ),
            ));
        }
    }
    Ok(())
}

/// Each OTLP sink on its own, then its name, which names its buffer directory: unique among every
/// sink's.
fn validate_otlp(config: &Config) -> Result<(), Invalid> {
    for (i, sink) in config.otlp.iter().enumerate() {
        let path = format!("otlp[{i}]");
        sink.validate(&path)?;
        if sink.name.is_empty() {
            if let Some(j) = config.otlp[..i].iter().position(|first| first == sink) {
                return Err(Invalid::key(
                    path,
                    format!("duplicate otlp configs are not allowed: this sink is identical to otlp[{j}]"),
                ));
            }
            continue;
        }
        let names = config.clients.iter().map(|c| ("clients", &c.name));
        let names = names.chain(
            config
                .elasticsearch
                .iter()
                .map(|c| ("elasticsearch", &c.name)),
        );
        let names = names.chain(config.otlp[..i].iter().map(|c| ("otlp", &c.name)));
        if let Some((list, _)) = names.into_iter().find(|(_, name)| **name == sink.name) {
            return Err(Invalid::value(
                join_key(&path, "name"),
                format!(
                    "duplicate sink name {:?} (also used in {list}); names must be unique",
                    sink.name
                ),
            ));
        }
    }
    Ok(())
}
