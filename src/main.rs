//! The `logferry` command line. Promtail's flags work as written in existing units (single or double
//! dash, `-flag=value` or `-flag value`), beside logferry's subcommands:
//!
//! ```text
//! logferry [run] [-config.file=FILE] [-config.expand-env=true] [-dry-run] [-check-syntax] ...
//! logferry check-config FILE [-config.expand-env=true]
//! logferry dry-run [-config.file=FILE] ...
//! ```
//! With no config file at all, the embedded default config runs (see `config::DEFAULT_CONFIG`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use logferry::agent::{self, Mode};
use logferry::config::{self, FlagOverrides};

#[derive(Parser, Debug)]
#[command(
    name = "logferry",
    version,
    about = "Ships logs from files, Docker, the journal, syslog, GELF, Loki pushes and OTLP to Loki, \
             Elasticsearch and OTLP with at-least-once delivery; a drop-in for Promtail.",
    long_about = "Ships logs from files, Docker containers, the systemd journal, syslog and GELF senders, \
        Loki pushes (a relay tier) and OpenTelemetry SDKs (OTLP) to Loki, Elasticsearch/OpenSearch and \
        OTLP receivers, through a disk buffer, with at-least-once delivery; a drop-in for Promtail.\n\n\
        Promtail's flags are accepted as written, with one dash or two (-config.file=/etc/promtail.yaml).\n\
        Without -config.file the embedded default config tails /var/log/*.log and ships to $LOKI_URL,\n\
        or prints the entries on stdout when LOKI_URL is not set."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Check a config file: parse it strictly, validate it, build its pipelines; exit 1 on any error.
    CheckConfig {
        /// The config file (or set -config.file).
        file: Option<String>,
    },
    /// Run with every client replaced by stdout: one JSON object per processed entry; positions are
    /// read but never written.
    DryRun,
}

#[derive(clap::Args, Debug)]
struct Flags {
    /// Config file; a comma-separated list loads the first that exists.
    #[arg(long = "config.file", global = true, value_name = "FILE")]
    config_file: Option<String>,
    /// Expand ${VAR} and ${VAR:-default} in the config file.
    #[arg(long = "config.expand-env", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    expand_env: Option<bool>,
    /// Print processed entries to stdout instead of sending them (same as the dry-run subcommand).
    #[arg(long = "dry-run", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    dry_run: Option<bool>,
    /// How -dry-run and -stdin print entries: `promtail` (Promtail's three tab-separated columns:
    /// timestamp, labels, line; the default) or `json` (one JSON object per entry).
    #[arg(long = "dry-run.format", global = true, value_name = "FORMAT",
          value_parser = ["promtail", "json"])]
    dry_run_format: Option<String>,
    /// Check the config's syntax and exit (Promtail's flag; logferry also validates it fully).
    #[arg(long = "check-syntax", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    check_syntax: Option<bool>,
    /// Print the effective config as YAML to stderr, then run.
    #[arg(long = "print-config-stderr", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    print_config_stderr: Option<bool>,
    /// Print to stderr what each stage changed in each entry, as Promtail does (use with -dry-run).
    #[arg(long = "inspect", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    inspect: Option<bool>,
    /// Read lines from standard input through the first scrape config's pipeline, then exit
    /// (`logferry dry-run -stdin -config.file=cfg.yaml < sample.log` tries a pipeline).
    #[arg(long = "stdin", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    stdin: Option<bool>,
    /// HTTP listen port (0 picks a free one); overrides server.http_listen_port.
    #[arg(long = "server.http-listen-port", global = true, value_name = "PORT")]
    http_listen_port: Option<u16>,
    /// HTTP listen address; overrides server.http_listen_address.
    #[arg(
        long = "server.http-listen-address",
        global = true,
        value_name = "ADDR"
    )]
    http_listen_address: Option<String>,
    /// Log level: debug, info, warn, error; overrides server.log_level.
    #[arg(long = "log.level", global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format: logfmt or json; overrides server.log_format.
    #[arg(long = "log.format", global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Positions file; overrides positions.filename.
    #[arg(long = "positions.file", global = true, value_name = "FILE")]
    positions_file: Option<String>,
    /// Positions sync period, e.g. 10s; overrides positions.sync_period.
    #[arg(long = "positions.sync-period", global = true, value_name = "DURATION")]
    positions_sync_period: Option<String>,
    /// Loki push URL of an extra client (Promtail's deprecated single-client flag).
    #[arg(long = "client.url", global = true, value_name = "URL")]
    client_url: Option<String>,
    /// Tenant of the -client.url client.
    #[arg(long = "client.tenant-id", global = true, value_name = "TENANT")]
    client_tenant_id: Option<String>,
    /// k=v,k2=v2 labels merged into every client's external_labels (the YAML wins on conflict).
    #[arg(long = "client.external-labels", global = true, value_name = "LABELS")]
    client_external_labels: Option<String>,
    /// Maximum line size in bytes (or 256kb, 1MiB); overrides limits_config.max_line_size.
    #[arg(long = "max-line-size", global = true, value_name = "SIZE")]
    max_line_size: Option<String>,
    /// Truncate lines over the maximum instead of dropping them.
    #[arg(long = "max-line-size-truncate", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL")]
    max_line_size_truncate: Option<bool>,
    /// How often file globs are re-evaluated, e.g. 10s; overrides target_config.sync_period.
    #[arg(long = "target.sync-period", global = true, value_name = "DURATION")]
    target_sync_period: Option<String>,
}

/// Go's flag package takes `-name`; clap takes `--name`. Turn every single-dash long flag into two.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.enumerate()
        .map(|(i, a)| {
            let single = a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            if i > 0 && single && a.as_bytes()[1].is_ascii_alphabetic() {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

fn main() -> ExitCode {
    logferry::memory::tune_allocator();
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logferry: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn overrides(f: &Flags) -> anyhow::Result<FlagOverrides> {
    let duration = |s: &Option<String>| -> anyhow::Result<Option<Duration>> {
        s.as_deref()
            .map(|v| config::parse_go_duration(v).map_err(|e| anyhow::anyhow!(e)))
            .transpose()
    };
    let mut labels = Vec::new();
    for kv in f.client_external_labels.iter().flat_map(|s| s.split(',')) {
        if kv.is_empty() {
            continue;
        }
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("-client.external-labels: {kv:?} is not name=value"))?;
        labels.push((k.to_string(), v.to_string()));
    }
    Ok(FlagOverrides {
        http_listen_port: f.http_listen_port,
        http_listen_address: f.http_listen_address.clone(),
        log_level: f.log_level.clone(),
        log_format: f.log_format.clone(),
        positions_file: f.positions_file.clone(),
        positions_sync_period: duration(&f.positions_sync_period)?,
        client_url: f.client_url.clone(),
        client_tenant_id: f.client_tenant_id.clone(),
        client_external_labels: labels,
        max_line_size: f
            .max_line_size
            .as_deref()
            .map(|v| config::parse_byte_size(v).map_err(|e| anyhow::anyhow!(e)))
            .transpose()?,
        max_line_size_truncate: f.max_line_size_truncate,
        target_sync_period: duration(&f.target_sync_period)?,
    })
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let f = &cli.flags;
    let expand_env = f.expand_env.unwrap_or(false);
    let check_only = f.check_syntax.unwrap_or(false);
    let config_file = match &cli.command {
        Some(Command::CheckConfig { file: Some(file) }) => Some(file.clone()),
        _ => f.config_file.clone(),
    };
    let check = check_only || matches!(cli.command, Some(Command::CheckConfig { .. }));
    if check {
        let Some(path) = config_file else {
            eprintln!("Invalid config file: no config file given (use -config.file=FILE)");
            return Ok(ExitCode::from(1));
        };
        // What a run would only warn about (unknown stage keys, deprecated blocks, `${` without
        // -config.expand-env) is printed too, on stderr; the exit code is for errors alone.
        let warnings = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::WARN)
            .without_time()
            .with_target(false)
            .with_ansi(false)
            .finish();
        let checked =
            tracing::subscriber::with_default(warnings, || agent::check(&path, expand_env));
        return Ok(match checked {
            Ok(()) => {
                println!("Valid config file! No syntax issues found");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Unable to parse config: {e:#}");
                ExitCode::from(1)
            }
        });
    }
    // A reload reads the config the same way: same files, same environment, same flags.
    let load = {
        let config_file = config_file.clone();
        let flags = overrides(f)?;
        move || -> anyhow::Result<config::Config> {
            let mut cfg = match &config_file {
                Some(paths) => config::load_first_existing(paths, expand_env)?,
                None => config::default_config()?,
            };
            cfg.apply_flag_overrides(&flags)?;
            Ok(cfg)
        }
    };
    let cfg = load()?;
    let mode = if f.dry_run.unwrap_or(false) || matches!(cli.command, Some(Command::DryRun)) {
        Mode::DryRun
    } else {
        Mode::Run
    };
    if f.inspect.unwrap_or(false) {
        logferry::stage::inspect::enable();
    }
    let opts = agent::Options {
        mode,
        default_config: config_file.is_none(),
        print_config: f.print_config_stderr.unwrap_or(false),
        stdin: f.stdin.unwrap_or(false),
        json_entries: f.dry_run_format.as_deref() == Some("json"),
        loader: Box::new(load),
    };
    logferry::logging::init(&cfg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("logferry")
        .build()?;
    let result = runtime.block_on(agent::run(cfg, opts));
    // A blocking task stuck on a disk (or the journal) must not keep the process alive: the agent
    // has saved its positions by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtail_single_dash_flags_are_accepted() {
        let args = normalize_args(
            [
                "logferry",
                "-config.file=/etc/promtail/config.yml",
                "-config.expand-env=true",
                "-dry-run",
                "-server.http-listen-port",
                "9080",
                "-log.level=debug",
                "-h",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        assert_eq!(args[1], "--config.file=/etc/promtail/config.yml");
        assert_eq!(args[5], "9080");
        assert_eq!(args[7], "-h");
        let cli = Cli::try_parse_from(&args[..7]).unwrap();
        assert_eq!(
            cli.flags.config_file.as_deref(),
            Some("/etc/promtail/config.yml")
        );
        assert_eq!(cli.flags.expand_env, Some(true));
        assert_eq!(cli.flags.dry_run, Some(true));
        assert_eq!(cli.flags.http_listen_port, Some(9080));
        assert_eq!(cli.flags.log_level.as_deref(), Some("debug"));
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from(["logferry", "check-config", "x.yaml"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::CheckConfig { file: Some(ref f) }) if f == "x.yaml")
        );
        let cli = Cli::try_parse_from(["logferry", "dry-run", "--config.file=a.yaml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::DryRun)));
    }
}
