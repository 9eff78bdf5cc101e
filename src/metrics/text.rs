//! The two exposition formats `/metrics` speaks, chosen by the scraper's `Accept` header as Promtail's
//! client_golang chooses: OpenMetrics for those that ask for it (Prometheus does), the classic text
//! format 0.0.4 for everyone else (`curl`, `promtool check metrics`, other agents).
//!
//! prometheus-client writes OpenMetrics only, and the classic format is derived from it line by line
//! (the formats are specified at prometheus.io, "Exposition formats", and in the OpenMetrics spec).
//! They differ in what this rewrite covers:
//! * a counter family is named without `_total` in OpenMetrics' `# HELP`/`# TYPE`, while its samples
//!   carry it; in 0.0.4 the family has its samples' name, so `_total` is added there;
//! * an info family `x` has samples `x_info`: in 0.0.4 it is the gauge `x_info`;
//! * `unknown` is 0.0.4's `untyped`; `# UNIT` and `# EOF` do not exist in 0.0.4 and are left out.
//!
//! `# HELP` texts stay as they are: both formats escape `\\` and `\n` there, and the agent's help
//! texts are written so (the `metrics` stage escapes its descriptions).
//!
//! Exemplars and `_created` samples would need more; no metric of the agent has them.

use std::fmt::Write;

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text format.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a scraper's `Accept` header asks for OpenMetrics (Prometheus lists it first, with the
/// classic format as a fallback of lower quality).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// The classic text format 0.0.4 of an OpenMetrics exposition.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // prometheus-client writes a family's HELP line right before its TYPE line; the HELP line can only
    // be written once the type (and so the 0.0.4 name) is known.
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').map_or("", |(_, text)| text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(text) = help.take() {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::registry::{Registry, Unit};

    fn openmetrics(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn families_are_renamed_and_openmetrics_only_lines_left_out() {
        let mut registry = Registry::default();
        let lines = Counter::<u64>::default();
        lines.inc_by(3);
        registry.register("app_lines", "Lines read", lines);
        let bytes = Gauge::<i64>::default();
        bytes.set(7);
        registry.register(
            "app_read_bytes_total",
            "A gauge named as Promtail names it",
            bytes,
        );
        let took = Histogram::new([0.5]);
        took.observe(0.25);
        registry.register_with_unit("app_request", "Time per request", Unit::Seconds, took);
        registry.register("app_build", "Build", Info::new(vec![("version", "1.0")]));

        let text = to_text_format(&openmetrics(&registry));
        assert_eq!(
            text,
            "# HELP app_lines_total Lines read.\n# TYPE app_lines_total counter\napp_lines_total 3\n\
             # HELP app_read_bytes_total A gauge named as Promtail names it.\n\
             # TYPE app_read_bytes_total gauge\napp_read_bytes_total 7\n\
             # HELP app_request_seconds Time per request.\n# TYPE app_request_seconds histogram\n\
             app_request_seconds_sum 0.25\napp_request_seconds_count 1\n\
             app_request_seconds_bucket{le=\"0.5\"} 1\napp_request_seconds_bucket{le=\"+Inf\"} 1\n\
             # HELP app_build_info Build.\n# TYPE app_build_info gauge\napp_build_info{version=\"1.0\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_is_served_to_those_that_ask_for_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
    }
}
