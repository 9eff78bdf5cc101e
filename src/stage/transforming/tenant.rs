//! `tenant`: choose the Loki tenant of an entry (Promtail `stages/tenant.go`).
//!
//! Exactly one of `source` (an extracted key), `label` (a stream label) or `value` (a literal) gives
//! the tenant, stored in the hidden label [`TENANT_LABEL`] that the Loki sink sends as `X-Scope-OrgID`
//! instead of the client's `tenant_id`. An empty or missing result leaves the entry as it is.

use std::sync::Arc;

use serde::Deserialize;

use super::labels::set_label;
use crate::entry::TENANT_LABEL;
use crate::stage::value::value_to_string;
use crate::stage::{decode, Item, Stage, StageFactory};

#[derive(Deserialize)]
struct TenantConfig {
    #[serde(default)]
    source: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    value: String,
}

#[derive(Clone)]
enum From {
    Source(String),
    Label(String),
    Value(String),
}

pub fn build(body: &serde_yaml_ng::Value) -> Result<Arc<dyn StageFactory>, String> {
    let cfg: TenantConfig = decode("tenant", body)?;
    let set = [&cfg.source, &cfg.label, &cfg.value]
        .iter()
        .filter(|s| !s.is_empty())
        .count();
    let from = match set {
        0 => return Err("label, source or value config are required".into()),
        1 if !cfg.source.is_empty() => From::Source(cfg.source),
        1 if !cfg.label.is_empty() => From::Label(cfg.label),
        1 => From::Value(cfg.value),
        _ => {
            return Err(
                "label, source and value are mutually exclusive: you should set \
                        source, value or label but not all"
                    .into(),
            )
        }
    };
    Ok(Arc::new(TenantStage { from }))
}

#[derive(Clone)]
struct TenantStage {
    from: From,
}

impl StageFactory for TenantStage {
    fn instantiate(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for TenantStage {
    fn name(&self) -> &'static str {
        "tenant"
    }

    fn process(&mut self, mut item: Item, out: &mut Vec<Item>) {
        let tenant = match &self.from {
            From::Source(key) => item.extracted.get(key).and_then(value_to_string),
            From::Label(name) => item.labels.get(name).map(|s| s.to_string().into()),
            From::Value(v) => Some(v.as_str().into()),
        };
        if let Some(tenant) = tenant.filter(|t| !t.is_empty()) {
            let tenant = tenant.into_owned();
            set_label(&mut item.labels, TENANT_LABEL, &tenant);
        }
        out.push(item);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::entry::TENANT_LABEL;
    use crate::stage::transforming::{build_error, run};

    #[test]
    fn tenant_examples() {
        // (stages, input labels, extracted, expected tenant)
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            serde_json::Value,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            // Promtail docs: `json {customer_id:}` then `tenant {source: customer_id}`.
            (
                "- tenant: {source: customer_id}",
                &[],
                json!({"customer_id": "1"}),
                Some("1"),
            ),
            ("- tenant: {source: id}", &[], json!({"id": 42}), Some("42")),
            ("- tenant: {value: team-a}", &[], json!({}), Some("team-a")),
            (
                "- tenant: {label: namespace}",
                &[("namespace", "payments")],
                json!({}),
                Some("payments"),
            ),
            // Missing, empty or unconvertible values do nothing.
            ("- tenant: {source: missing}", &[], json!({}), None),
            ("- tenant: {source: id}", &[], json!({"id": ""}), None),
            ("- tenant: {source: id}", &[], json!({"id": null}), None),
            ("- tenant: {label: missing}", &[], json!({}), None),
            // An existing tenant is overridden, or kept when nothing is found.
            (
                "- tenant: {value: new}",
                &[("__tenant_id__", "old")],
                json!({}),
                Some("new"),
            ),
            (
                "- tenant: {source: missing}",
                &[("__tenant_id__", "old")],
                json!({}),
                Some("old"),
            ),
        ];
        for (stages, labels, extracted, want) in cases {
            let out = run(stages, "line", labels, extracted.clone());
            assert_eq!(
                out[0].labels.get(TENANT_LABEL),
                *want,
                "{stages} {extracted}"
            );
        }
    }

    #[test]
    fn tenant_config_errors() {
        for yaml in ["- tenant: {}", "- tenant:", "- tenant: {source: ''}"] {
            assert!(build_error(yaml).contains("label, source or value config are required"));
        }
        for yaml in [
            "- tenant: {source: a, value: b}",
            "- tenant: {label: a, value: b}",
            "- tenant: {source: a, label: b}",
        ] {
            assert!(build_error(yaml).contains("mutually exclusive"), "{yaml}");
        }
    }
}
