//! Whole-file tests: a realistic Promtail config, every default, and the exact text (with line:column)
//! of each kind of error.

use std::time::Duration;

use super::*;

/// A production-like Promtail config touching every block, every stage name and a nested `match`
/// (the line:column assertions below refer to this file).
const FULL: &str = include_str!("testdata/promtail-full.yaml");

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, "promtail.yaml", false)
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn full_promtail_config_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(
        (
            c.server.http_listen_address.as_str(),
            c.server.http_listen_port
        ),
        ("0.0.0.0", 9080)
    );
    assert_eq!(
        (c.server.log_level, c.server.log_format),
        (LogLevel::Warn, LogFormat::Json)
    );
    assert!(c.server.enable_runtime_reload);
    assert_eq!(c.positions.filename, "/var/lib/promtail/positions.yaml");
    assert_eq!(c.positions.sync_period.get(), Duration::from_secs(5));
    assert!(c.positions.ignore_invalid_yaml, "YAML 1.1 `yes`");

    assert_eq!(c.clients.len(), 2);
    let a = &c.clients[0];
    assert_eq!(
        (a.url.as_str(), a.tenant_id.as_str()),
        ("https://loki.example.com/loki/api/v1/push", "team-a")
    );
    assert_eq!(
        (a.batchwait.get(), a.batchsize.get(), a.timeout.get()),
        (Duration::from_secs(2), 512 * 1024, Duration::from_secs(15))
    );
    assert_eq!(a.backoff_config.min_period.get(), Duration::from_secs(1));
    assert_eq!(a.backoff_config.max_period.get(), Duration::from_secs(120));
    assert_eq!(a.backoff_config.max_retries_explicit(), Some(20));
    assert_eq!(a.external_labels["cluster"], "prod-eu1");
    assert_eq!(a.headers["X-Source"], "promtail");
    let basic = a.basic_auth.as_ref().unwrap();
    assert_eq!(
        (basic.username.as_deref(), basic.password_file.as_deref()),
        (Some("promtail"), Some("/etc/promtail/loki-password"))
    );
    let tls = a.tls_config.as_ref().unwrap();
    assert_eq!(tls.ca_file.as_deref(), Some("/etc/ssl/loki-ca.pem"));
    assert_eq!(
        (tls.cert_file.as_deref(), tls.key_file.as_deref()),
        (
            Some("/etc/promtail/client.pem"),
            Some("/etc/promtail/client-key.pem")
        )
    );
    assert_eq!(
        (tls.server_name.as_deref(), tls.min_version.as_deref()),
        (Some("loki.internal"), Some("TLS12"))
    );
    let b = &c.clients[1];
    assert_eq!(b.name, "backup");
    assert!(b.drop_rate_limited_batches);
    let auth = b.effective_authorization().unwrap();
    assert_eq!(
        (auth.r#type.as_deref(), auth.credentials_file.as_deref()),
        (Some("Bearer"), Some("/run/secrets/loki-token"))
    );

    let watch = &c.global.file_watch_config;
    assert_eq!(
        (
            watch.min_poll_frequency.get(),
            watch.max_poll_frequency.get()
        ),
        (Duration::from_millis(250), Duration::from_secs(5))
    );
    assert_eq!(c.target_config.sync_period.get(), Duration::from_secs(30));
    let l = &c.limits_config;
    assert!(l.readline_rate_enabled && !l.readline_rate_drop && l.max_line_size_truncate);
    assert_eq!(
        (
            l.readline_rate,
            l.readline_burst,
            l.max_streams,
            l.max_line_size.get()
        ),
        (5000.0, 20000, 1000, 256 * 1024)
    );
    assert_eq!(
        c.options.stream_lag_labels, None,
        "accepted, warned about, dropped"
    );
    assert!(!c.tracing.enabled);
    assert_eq!(
        c.wal.watch_config.max_read_frequency.get(),
        Duration::from_secs(2)
    );

    let names: Vec<&str> = c
        .scrape_configs
        .iter()
        .map(|j| j.job_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["system", "nginx", "containers", "journal", "syslog"]
    );
    let kinds: Vec<Option<SourceKind>> = c
        .scrape_configs
        .iter()
        .map(ScrapeConfig::source_kind)
        .collect();
    use SourceKind::*;
    assert_eq!(
        kinds,
        [
            Some(File),
            Some(File),
            Some(Docker),
            Some(Journal),
            Some(Syslog)
        ]
    );

    let system = &c.scrape_configs[0];
    assert_eq!(
        system.static_configs[0].labels["__path__"],
        "/var/log/*.log"
    );
    assert_eq!(system.relabel_configs.len(), 2);
    assert_eq!(
        system.relabel_configs[0].target_label.as_deref(),
        Some("logfile")
    );
    let stage_names: Vec<&str> = system
        .pipeline_stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let mut expected: Vec<&str> = STAGE_NAMES.to_vec();
    expected.retain(|n| *n != "match" && *n != "drop" && *n != "eventlogmessage" && *n != "luhn");
    expected.extend(["match", "drop", "eventlogmessage", "luhn"]);
    assert_eq!(stage_names, expected, "every stage name, in file order");
    let regex = &system.pipeline_stages[2];
    assert_eq!(
        (regex.line, regex.column),
        (Some(92), Some(9)),
        "stage located at its name"
    );
    let matcher = system
        .pipeline_stages
        .iter()
        .find(|s| s.name == "match")
        .unwrap();
    let nested = matcher.nested_stages().unwrap().unwrap();
    assert_eq!(
        nested.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["regex", "match"]
    );
    assert_eq!(
        c.locate("scrape_configs[0].pipeline_stages[23].match.stages[1].match.stages[0]"),
        Some((151, 21))
    );

    let nginx = &c.scrape_configs[1];
    assert!(nginx.decompression.enabled);
    assert_eq!(
        (nginx.decompression.format.as_str(), nginx.encoding.as_str()),
        ("gz", "ISO-8859-1")
    );
    assert_eq!(
        nginx.file_sd_configs[0].refresh_interval.get(),
        Duration::from_secs(60)
    );
    let docker = &c.scrape_configs[2].docker_sd_configs[0];
    assert_eq!(
        (docker.host.as_str(), docker.refresh_interval.get()),
        ("unix:///var/run/docker.sock", Duration::from_secs(5))
    );
    assert_eq!(docker.filters[0].values, ["logging=promtail"]);
    let journal = c.scrape_configs[3].journal.as_ref().unwrap();
    assert_eq!(
        (journal.max_age.get(), journal.path.as_str()),
        (Duration::from_secs(12 * 3600), "/var/log/journal")
    );
    assert_eq!(journal.match_terms(), [("_SYSTEMD_UNIT", "nginx.service")]);
    assert!(c.scrape_configs[4].syslog.is_some());
}

#[test]
fn every_default_matches_promtail() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(parse("# only a comment\n").unwrap(), Config::default());
    assert_eq!(c.server.http_listen_port, 80);
    assert_eq!(c.server.http_listen_address, "");
    assert_eq!(
        c.server.graceful_shutdown_timeout.get(),
        Duration::from_secs(30)
    );
    assert_eq!(
        (c.server.log_level, c.server.log_format),
        (LogLevel::Info, LogFormat::Logfmt)
    );
    assert!(!c.server.disable && !c.server.enable_runtime_reload);
    assert!(c.server.health_check_target && c.server.register_instrumentation);
    assert_eq!(c.server.http_path_prefix, "");
    assert!(c.clients.is_empty() && c.client.is_none() && c.scrape_configs.is_empty());
    assert_eq!(c.positions.filename, "/var/log/positions.yaml");
    assert_eq!(c.positions.sync_period.get(), Duration::from_secs(10));
    assert!(!c.positions.ignore_invalid_yaml);
    assert_eq!(c.target_config.sync_period.get(), Duration::from_secs(10));
    assert!(!c.target_config.stdin);
    assert_eq!(
        c.global.file_watch_config.min_poll_frequency.get(),
        Duration::from_millis(250)
    );
    assert_eq!(
        c.global.file_watch_config.max_poll_frequency.get(),
        Duration::from_millis(250)
    );
    let l = &c.limits_config;
    assert!(!l.readline_rate_enabled && l.readline_rate_drop && !l.max_line_size_truncate);
    assert_eq!(
        (
            l.readline_rate,
            l.readline_burst,
            l.max_streams,
            l.max_line_size.get()
        ),
        (10_000.0, 10_000, 0, 0)
    );
    assert!(c.tracing.enabled);
    assert!(!c.wal.enabled);
    assert_eq!(
        c.wal.clean_segments_older_than.get(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        c.wal.watch_config.min_read_frequency.get(),
        Duration::from_millis(250)
    );
    assert_eq!(
        c.wal.watch_config.max_read_frequency.get(),
        Duration::from_secs(1)
    );
}

#[test]
fn errors_name_file_line_column_path_and_fix() {
    let cases: &[(&str, &str)] = &[
        // unknown key, top level
        (
            "server:\n  http_listen_port: 9080\nscrape_config: []\n",
            "promtail.yaml:3:1: unknown field \"scrape_config\", expected one of server, client, clients, elasticsearch, otlp, positions, scrape_configs, target_config, limits_config, options, tracing, wal, global; did you mean \"scrape_configs\"?",
        ),
        // unknown key, nested in a list item
        (
            "clients:\n  - url: http://loki:3100/loki/api/v1/push\n    foo: 1\n",
            "promtail.yaml:3:5: clients[0]: unknown field \"foo\", expected one of url, name, tenant_id, batchwait, batchsize, timeout, backoff_config, drop_rate_limited_batches, external_labels, headers, buffer, basic_auth, authorization, bearer_token, bearer_token_file, oauth2, tls_config, proxy_url, no_proxy, proxy_from_environment, proxy_connect_header, follow_redirects, enable_http2, http_headers",
        ),
        (
            "scrape_configs:\n  - jobname: x\n",
            "promtail.yaml:2:5: scrape_configs[0]: unknown field \"jobname\", expected one of job_name, pipeline_stages, relabel_configs, encoding, decompression, static_configs, file_sd_configs, docker_sd_configs, journal, syslog, loki_push_api, otlp, windows_events, kafka, gelf, gcplog, azure_event_hubs, cloudflare, heroku_drain, kubernetes_sd_configs, consul_sd_configs, consulagent_sd_configs, dns_sd_configs, digitalocean_sd_configs, dockerswarm_sd_configs, serverset_sd_configs, nerve_sd_configs, marathon_sd_configs, gce_sd_configs, ec2_sd_configs, openstack_sd_configs, azure_sd_configs, triton_sd_configs; did you mean \"job_name\"?",
        ),
        ("options:\n  foo: 1\n", "promtail.yaml:2:3: options: unknown field \"foo\", expected stream_lag_labels"),
        // the buffer extension
        (
            "clients:\n  - url: http://loki/loki/api/v1/push\n    buffer: {type: tape}\n",
            "promtail.yaml:3:20: clients[0].buffer.type: invalid value \"tape\", expected disk or memory",
        ),
        (
            "clients:\n  - url: http://loki/loki/api/v1/push\n    buffer:\n      max_size: 1MB\n      segment_size: 4MB\n",
            "promtail.yaml:4:17: clients[0].buffer.max_size: max_size 1MB is smaller than segment_size 4MB",
        ),
        // invalid duration: points at the value
        (
            "clients:\n  - url: http://loki/loki/api/v1/push\n    batchwait: 5x\n",
            "promtail.yaml:3:16: clients[0].batchwait: invalid duration \"5x\": expected a number followed by ns, us, µs, ms, s, m or h (e.g. 1s, 500ms)",
        ),
        (
            "scrape_configs:\n- job_name: a\n  file_sd_configs:\n  - files: [a.json]\n    refresh_interval: 60\n",
            "promtail.yaml:5:23: scrape_configs[0].file_sd_configs[0].refresh_interval: invalid duration \"60\": expected a whole number followed by ms, s, m, h, d, w or y, largest unit first (e.g. 60s, 5m, 1h30m, 7d)",
        ),
        // invalid size
        (
            "limits_config:\n  max_line_size: 2XB\n",
            "promtail.yaml:2:18: limits_config.max_line_size: invalid size \"2XB\": expected a whole number of bytes, optionally followed by B, KB, MB, GB, TB, PB or EB (base 1024, case-insensitive; KiB, MiB, ... also accepted), e.g. 256KB or 2MB",
        ),
        // wrong types
        (
            "server:\n  http_listen_port: abc\n",
            "promtail.yaml:2:21: server.http_listen_port: expected an integer from 0 to 65535, found the string \"abc\"",
        ),
        (
            "server:\n  http_listen_port: 99999\n",
            "promtail.yaml:2:21: server.http_listen_port: expected an integer from 0 to 65535, found the number 99999",
        ),
        ("clients: {url: x}\n", "promtail.yaml:1:11: clients: expected a list, found a mapping"),
        (
            "positions:\n  ignore_invalid_yaml: maybe\n",
            "promtail.yaml:2:24: positions.ignore_invalid_yaml: expected true or false, found the string \"maybe\"",
        ),
        (
            "server:\n  log_level: verbose\n",
            "promtail.yaml:2:14: server.log_level: invalid log level \"verbose\": expected one of debug, info, warn, error",
        ),
        ("clients:\n  - tenant_id: a\n", "promtail.yaml:2:5: clients[0]: missing required key \"url\""),
        // duplicate keys: at the second occurrence
        (
            "clients:\n  - url: http://a/loki/api/v1/push\n    tenant_id: a\n    url: http://b/loki/api/v1/push\n",
            "promtail.yaml:4:5: clients[0]: duplicate key \"url\" (first defined at line 2, column 5)",
        ),
        (
            "server: {}\npositions: {}\nserver: {}\n",
            "promtail.yaml:3:1: duplicate key \"server\" (first defined at line 1, column 1)",
        ),
        (
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - labels:\n      job: a\n      job: b\n",
            "promtail.yaml:6:7: scrape_configs[0].static_configs[0].labels: duplicate key \"job\" (first defined at line 5, column 7)",
        ),
        // YAML syntax
        (
            "clients:\n  - url: http://a\n   tenant_id: x\n",
            "promtail.yaml:3:4: YAML syntax error: did not find expected '-' indicator, while parsing a block collection",
        ),
        (
            "server:\n\thttp_listen_port: 9080\n",
            "promtail.yaml:2:1: YAML syntax error: found character that cannot start any token, while scanning for the next token",
        ),
        // checks after deserializing
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n",
            "promtail.yaml:4:15: scrape_configs[2].job_name: found multiple scrape configs with job name \"a\" (first at scrape_configs[0]); job names must be unique",
        ),
        (
            "scrape_configs:\n  - job_name: ''\n",
            "promtail.yaml:2:15: scrape_configs[0].job_name: job_name is empty: every scrape config needs a unique job_name",
        ),
        (
            "scrape_configs:\n  - static_configs: [{labels: {__path__: /a}}]\n",
            "promtail.yaml:2:5: scrape_configs[0].job_name: job_name is empty: every scrape config needs a unique job_name",
        ),
        (
            "clients:\n  - url: http://a/loki/api/v1/push\n    basic_auth:\n      username: u\n      password: p\n    bearer_token: t\n",
            "promtail.yaml:6:5: clients[0].bearer_token: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        ),
        (
            "clients:\n  - url: http://a/loki/api/v1/push\n    basic_auth:\n      password: p\n      password_file: /f\n",
            "promtail.yaml:5:7: clients[0].basic_auth.password_file: at most one of basic_auth password & password_file must be configured",
        ),
        (
            "clients:\n  - url: loki:3100\n",
            "promtail.yaml:2:10: clients[0].url: invalid push URL \"loki:3100\": expected an absolute http:// or https:// URL, e.g. http://loki:3100/loki/api/v1/push",
        ),
        (
            "clients:\n  - url: http://a/p\n    name: x\n  - url: http://b/p\n    name: x\n",
            "promtail.yaml:5:11: clients[1].name: duplicate client name \"x\" (also used by clients[0]); client names must be unique",
        ),
        (
            "global:\n  file_watch_config:\n    min_poll_frequency: 1s\n    max_poll_frequency: 500ms\n",
            "promtail.yaml:4:25: global.file_watch_config.max_poll_frequency: max_poll_frequency (500ms) must be greater than or equal to min_poll_frequency (1s)",
        ),
        (
            "scrape_configs:\n- job_name: d\n  docker_sd_configs:\n  - port: 2375\n",
            "promtail.yaml:4:5: scrape_configs[0].docker_sd_configs[0]: host missing: set the Docker daemon address, e.g. host: unix:///var/run/docker.sock",
        ),
        (
            "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - action: keep\n    regex: '(a'\n",
            "promtail.yaml:5:12: scrape_configs[0].relabel_configs[0].regex: invalid 'regex' \"(a\": unclosed group",
        ),
        (
            "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [a]\n    action: upsert\n",
            "promtail.yaml:5:13: scrape_configs[0].relabel_configs[0].action: unknown relabel action \"upsert\" in 'action' (expected one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)",
        ),
        // pipeline stages
        (
            "scrape_configs:\n- job_name: a\n  pipeline_stages:\n  - json: {}\n  - regexp:\n      expression: x\n",
            "promtail.yaml:5:5: scrape_configs[0].pipeline_stages[1]: unknown stage type: regexp, expected one of docker, cri, regex, json, logfmt, replace, multiline, geoip, template, pack, decolorize, timestamp, output, labels, labeldrop, labelallow, static_labels, limit, sampling, metrics, tenant, structured_metadata, non_indexed_labels, match, drop, eventlogmessage, luhn",
        ),
        (
            "scrape_configs:\n- job_name: a\n  pipeline_stages:\n  - json: {}\n    regex: {}\n",
            "promtail.yaml:4:5: scrape_configs[0].pipeline_stages[0]: pipeline stage must contain only one key, found \"json\" and \"regex\": put each stage in its own list item (\"- json: ...\", \"- regex: ...\")",
        ),
        (
            "scrape_configs:\n- job_name: a\n  pipeline_stages:\n  - match:\n      selector: '{a=\"b\"}'\n      stages:\n      - json: {}\n      - tmplate: {}\n",
            "promtail.yaml:8:9: scrape_configs[0].pipeline_stages[0].match.stages[1].tmplate: unknown stage type: tmplate, expected one of docker, cri, regex, json, logfmt, replace, multiline, geoip, template, pack, decolorize, timestamp, output, labels, labeldrop, labelallow, static_labels, limit, sampling, metrics, tenant, structured_metadata, non_indexed_labels, match, drop, eventlogmessage, luhn",
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = error_of(text);
            (got != *want).then(|| {
                format!("--- config ---\n{text}--- want ---\n{want}\n--- got ---\n{got}\n")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn error_fields_are_exposed() {
    let err =
        parse("clients:\n  - url: http://loki/loki/api/v1/push\n    batchwait: 5x\n").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(
        (err.file.as_str(), err.line, err.column),
        ("promtail.yaml", Some(3), Some(16))
    );
    assert_eq!(err.path, "clients[0].batchwait");
    assert!(err.message.starts_with("invalid duration \"5x\""));
    let syntax = parse("a: [\n").unwrap_err();
    assert_eq!(syntax.kind, ErrorKind::Syntax, "{syntax}");
}

#[test]
fn env_expansion_runs_before_parsing() {
    let env = |name: &str| match name {
        "LOKI_HOST" => Some("loki.example".to_string()),
        "PORT" => Some("9080".to_string()),
        _ => None,
    };
    let text = "server:\n  http_listen_port: ${PORT}\nclients:\n  - url: http://${LOKI_HOST}:3100/loki/api/v1/push\n    tenant_id: ${TENANT:-default}\nscrape_configs:\n- job_name: a\n  relabel_configs:\n  - source_labels: [x]\n    regex: '(\\\\d+)'\n    target_label: y\n    replacement: $$1-$1\n";
    let c = parse_text(text, "p.yaml", Some(&env)).unwrap();
    assert_eq!(c.server.http_listen_port, 9080);
    assert_eq!(
        c.clients[0].url,
        "http://loki.example:3100/loki/api/v1/push"
    );
    assert_eq!(c.clients[0].tenant_id, "default");
    let rule = &c.scrape_configs[0].relabel_configs[0];
    assert_eq!(
        (rule.regex.as_deref(), rule.replacement.as_deref()),
        (Some("(\\d+)"), Some("$1-$1"))
    );

    let err = parse_text(
        "a: 1\nclients:\n  - url: ${LOKI_URL-http://x}\n",
        "p.yaml",
        Some(&env),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Envsubst);
    assert_eq!(
        err.to_string(),
        "p.yaml:3:10: -config.expand-env: missing closing brace in \"${LOKI_URL-http://x}\""
    );
}

#[test]
fn hint_about_expand_env_when_the_line_uses_a_variable() {
    let err = error_of("server:\n  http_listen_port: ${PORT}\n");
    assert_eq!(
        err,
        "promtail.yaml:2:21: server.http_listen_port: expected an integer from 0 to 65535, found the string \"${PORT}\" (use `-config.expand-env=true` if you want to expand environment variables in your config file)"
    );
}

#[test]
fn deprecated_client_block_is_appended_to_clients() {
    let c = parse("clients:\n  - url: http://a/p\nclient:\n  url: http://b/p\n  tenant_id: t\n")
        .unwrap();
    assert!(c.client.is_none());
    assert_eq!(
        c.clients.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(),
        ["http://a/p", "http://b/p"]
    );
    assert!(!c.to_redacted_yaml().contains("\nclient:"));
    let err = error_of("clients:\n  - url: http://a/p\nclient:\n  url: http://a/p\n");
    assert_eq!(err, "promtail.yaml:3:1: client: duplicate client configs are not allowed: this client is identical to clients[0]");
}

/// The Promtail Helm chart's shape: a `client:` block of settings and external labels without a URL,
/// beside `clients`. The block's external labels go to every client; it becomes a client only with a
/// URL (`-client.url`), keeping its settings.
#[test]
fn a_client_block_without_url_merges_its_external_labels_and_waits_for_client_url() {
    let yaml = "client:\n  backoff_config: {max_period: 5m, max_retries: 20, min_period: 500ms}\n  \
                batchsize: 1048576\n  batchwait: 3s\n  external_labels: {cluster: c1, env: prod}\n  \
                timeout: 10s\nclients:\n  - url: http://loki:3100/loki/api/v1/push\n    \
                external_labels: {env: dev}\n";
    let c = parse(yaml).unwrap();
    assert_eq!(c.clients.len(), 1, "no URL: not a client");
    let labels = &c.clients[0].external_labels;
    assert_eq!(
        (labels["cluster"].as_str(), labels["env"].as_str()),
        ("c1", "dev")
    );

    let mut c = parse(yaml).unwrap();
    let flags = crate::config::FlagOverrides {
        client_url: Some("http://other:3100/loki/api/v1/push".into()),
        ..Default::default()
    };
    c.apply_flag_overrides(&flags).unwrap();
    assert_eq!(c.clients.len(), 2);
    let block = &c.clients[1];
    assert_eq!(block.url, "http://other:3100/loki/api/v1/push");
    assert_eq!(block.batchwait.get(), std::time::Duration::from_secs(3));
    assert_eq!(block.external_labels["cluster"], "c1");

    // In `clients`, the URL stays required; in the block, the other settings are still checked.
    assert_eq!(
        error_of("clients:\n  - tenant_id: a\n"),
        "promtail.yaml:2:5: clients[0]: missing required key \"url\""
    );
    assert!(
        error_of("client:\n  backoff_config: {min_period: 1m, max_period: 1s}\n")
            .contains("client.backoff_config.max_period")
    );
}

#[test]
fn errors_found_later_can_be_located() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.source_name(), "promtail.yaml");
    assert_eq!(c.locate("clients[1].bearer_token_file"), Some((39, 24)));
    let err = c.error_at(
        "scrape_configs[0].pipeline_stages[5]",
        "replace needs an expression",
    );
    assert_eq!(
        err.to_string(),
        "promtail.yaml:98:9: scrape_configs[0].pipeline_stages[5]: replace needs an expression"
    );
    assert_eq!(Config::default().locate("server"), None);
}

#[test]
fn printed_config_redacts_secrets_and_reloads_to_the_same_settings() {
    let c = parse(FULL).unwrap();
    let printed = c.to_redacted_yaml();
    assert!(
        printed.contains("http_listen_port: 9080") && printed.contains("batchwait: 2s"),
        "{printed}"
    );
    assert!(
        printed.contains("max_line_size: 256KB") && printed.contains("refresh_interval: 1m"),
        "{printed}"
    );
    assert!(
        printed.contains("cleanSegmentsOlderThan: 30m0s"),
        "{printed}"
    );
    let reloaded = parse(&printed).unwrap();
    assert_eq!(reloaded, c);

    let secret =
        parse("clients:\n  - url: http://a/p\n    basic_auth: {username: u, password: hunter2}\n")
            .unwrap();
    let printed = secret.to_redacted_yaml();
    assert!(
        printed.contains("password: <secret>") && !printed.contains("hunter2"),
        "{printed}"
    );
}

#[test]
fn default_config_ships_to_loki_url_or_nowhere() {
    let c = default_config_with(&|name| {
        (name == "LOKI_URL").then(|| "http://loki:3100/loki/api/v1/push".into())
    })
    .unwrap();
    assert_eq!(c.clients.len(), 1);
    assert_eq!(c.clients[0].url, "http://loki:3100/loki/api/v1/push");
    assert_eq!(
        (
            c.server.http_listen_address.as_str(),
            c.server.http_listen_port
        ),
        ("127.0.0.1", 9080)
    );
    assert_eq!(c.positions.filename, "/tmp/logferry-positions.yaml");
    assert_eq!(c.scrape_configs[0].job_name, "varlogs");
    assert_eq!(
        c.scrape_configs[0].static_configs[0].labels["__path__"],
        "/var/log/*.log"
    );
    assert_eq!(
        c.scrape_configs[0].static_configs[0].labels["job"],
        "varlogs"
    );

    for unset in [None, Some(String::new())] {
        let c = default_config_with(&|_| unset.clone()).unwrap();
        assert!(c.clients.is_empty());
        assert_eq!(c.scrape_configs.len(), 1);
    }
    let err = default_config_with(&|_| Some("loki:3100".into())).unwrap_err();
    assert_eq!(err.path, "clients[0].url");
}

#[test]
fn load_reads_files_and_picks_the_first_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("promtail.yaml");
    std::fs::write(&good, "server:\n  http_listen_port: 3101\n").unwrap();
    let missing = dir.path().join("missing.yaml");
    let c = load(&good, false).unwrap();
    assert_eq!(c.server.http_listen_port, 3101);
    assert_eq!(c.source_name(), good.display().to_string());

    let csv = format!("{}, {}", missing.display(), good.display());
    assert_eq!(
        load_first_existing(&csv, false)
            .unwrap()
            .server
            .http_listen_port,
        3101
    );

    let csv = format!("{},/nonexistent/b.yaml", missing.display());
    let err = load_first_existing(&csv, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("{csv} does not exist, set config.file for custom config path")
    );

    let err = load(&missing, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read config file:", missing.display())));
}

#[test]
fn reload_comparison_ignores_layout() {
    let a = parse("server:\n  http_listen_port: 9080\n").unwrap();
    let b = parse("# moved down by a comment\nserver: {http_listen_port: 9080}\n").unwrap();
    assert_eq!(a, b);
}

#[test]
fn yaml_anchors_aliases_and_merge_keys_work_as_in_yaml_v2() {
    let text = "\
clients:
  - &base
    url: http://a/loki/api/v1/push
    tenant_id: shared
    batchwait: 3s
  - <<: *base
    url: http://b/loki/api/v1/push
scrape_configs:
  - job_name: a
    relabel_configs: &rules
      - source_labels: [__journal__systemd_unit]
        target_label: unit
  - job_name: b
    relabel_configs: *rules
";
    let c = parse(text).unwrap();
    assert_eq!(c.clients[1].url, "http://b/loki/api/v1/push");
    assert_eq!(
        (
            c.clients[1].tenant_id.as_str(),
            c.clients[1].batchwait.get()
        ),
        ("shared", Duration::from_secs(3))
    );
    assert_eq!(
        c.scrape_configs[1].relabel_configs,
        c.scrape_configs[0].relabel_configs
    );
    let err =
        error_of("clients:\n  - &base\n    url: http://a/p\n  - <<: *base\n    batchwait: 5x\n");
    assert_eq!(err, "promtail.yaml:5:16: clients[1].batchwait: invalid duration \"5x\": expected a number followed by ns, us, µs, ms, s, m or h (e.g. 1s, 500ms)");
}
