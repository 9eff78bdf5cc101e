//! Promtail's command-line flags that override the YAML. Promtail layers flag defaults, then the file,
//! then the flags given explicitly; the caller passes only the explicit ones here.

use std::time::Duration;

use super::byte_size::ByteSize;
use super::client::ClientConfig;
use super::duration::GoDuration;
use super::error::{ConfigError, ErrorKind};
use super::Config;

/// Flags given explicitly on the command line; `None`/empty means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagOverrides {
    /// `-server.http-listen-port`
    pub http_listen_port: Option<u16>,
    /// `-server.http-listen-address`
    pub http_listen_address: Option<String>,
    /// `-log.level`
    pub log_level: Option<String>,
    /// `-log.format`
    pub log_format: Option<String>,
    /// `-positions.file`
    pub positions_file: Option<String>,
    /// `-positions.sync-period`
    pub positions_sync_period: Option<Duration>,
    /// `-client.url` (deprecated single client)
    pub client_url: Option<String>,
    /// `-client.tenant-id`
    pub client_tenant_id: Option<String>,
    /// `-client.external-labels` (`k=v,k2=v2`, already split)
    pub client_external_labels: Vec<(String, String)>,
    /// `-max-line-size` (bytes)
    pub max_line_size: Option<u64>,
    /// `-max-line-size-truncate`
    pub max_line_size_truncate: Option<bool>,
    /// `-target.sync-period`
    pub target_sync_period: Option<Duration>,
}

/// Where a flag error points, in place of a file name.
const COMMAND_LINE: &str = "command line";

impl Config {
    /// Applies explicit flags over the loaded YAML, the way Promtail layers them:
    /// * scalar flags replace the YAML value;
    /// * `-client.url` and `-client.tenant-id` set the deprecated single client: they modify a `client:`
    ///   block from the YAML if there was one, otherwise `-client.url` appends a new client;
    /// * `-client.external-labels` are merged into every client's `external_labels`, and the YAML value
    ///   wins when both set the same label.
    ///
    /// Fails only on an invalid `-log.level` or `-log.format`.
    pub fn apply_flag_overrides(&mut self, o: &FlagOverrides) -> Result<(), ConfigError> {
        if let Some(level) = &o.log_level {
            self.server.log_level = level.parse().map_err(|msg| {
                ConfigError::new(ErrorKind::Invalid, COMMAND_LINE, "-log.level", msg)
            })?;
        }
        if let Some(format) = &o.log_format {
            self.server.log_format = format.parse().map_err(|msg| {
                ConfigError::new(ErrorKind::Invalid, COMMAND_LINE, "-log.format", msg)
            })?;
        }
        if let Some(port) = o.http_listen_port {
            self.server.http_listen_port = port;
        }
        if let Some(address) = &o.http_listen_address {
            self.server.http_listen_address.clone_from(address);
        }
        if let Some(file) = &o.positions_file {
            self.positions.filename.clone_from(file);
        }
        if let Some(period) = o.positions_sync_period {
            self.positions.sync_period = GoDuration(period);
        }
        if let Some(period) = o.target_sync_period {
            self.target_config.sync_period = GoDuration(period);
        }
        if let Some(size) = o.max_line_size {
            self.limits_config.max_line_size = ByteSize(size);
        }
        if let Some(truncate) = o.max_line_size_truncate {
            self.limits_config.max_line_size_truncate = truncate;
        }
        self.apply_client_flags(o);
        Ok(())
    }

    fn apply_client_flags(&mut self, o: &FlagOverrides) {
        let deprecated = self
            .origin
            .deprecated_client
            .and_then(|i| self.clients.get_mut(i));
        match (deprecated, &o.client_url) {
            (Some(client), url) => {
                if let Some(url) = url {
                    client.url.clone_from(url);
                }
                if let Some(tenant) = &o.client_tenant_id {
                    client.tenant_id.clone_from(tenant);
                }
            }
            (None, Some(url)) => {
                // The `client:` block without a URL, if there was one, with its settings.
                let mut client = match self.origin.urlless_client.take() {
                    Some(block) => *block,
                    None => ClientConfig::new(url),
                };
                client.url.clone_from(url);
                if let Some(tenant) = &o.client_tenant_id {
                    client.tenant_id.clone_from(tenant);
                }
                self.origin.deprecated_client = Some(self.clients.len());
                self.clients.push(client);
            }
            // Without a URL the deprecated client does not exist, so a tenant flag alone does nothing.
            (None, None) => {}
        }
        for client in &mut self.clients {
            for (name, value) in &o.client_external_labels {
                client
                    .external_labels
                    .entry(name.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::config::server::{LogFormat, LogLevel};

    const YAML: &str = "\
server: {http_listen_port: 9080, log_level: warn}
positions: {filename: /tmp/p.yaml}
clients:
  - url: http://a/loki/api/v1/push
    external_labels: {env: yaml}
";

    #[test]
    fn explicit_flags_override_yaml() {
        let mut c = parse_str(YAML, "t.yaml", false).unwrap();
        let flags = FlagOverrides {
            http_listen_port: Some(3101),
            http_listen_address: Some("0.0.0.0".into()),
            log_level: Some("debug".into()),
            log_format: Some("json".into()),
            positions_file: Some("/var/lib/p.yaml".into()),
            positions_sync_period: Some(Duration::from_secs(5)),
            max_line_size: Some(1024),
            max_line_size_truncate: Some(true),
            target_sync_period: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        c.apply_flag_overrides(&flags).unwrap();
        assert_eq!(
            (
                c.server.http_listen_port,
                c.server.http_listen_address.as_str()
            ),
            (3101, "0.0.0.0")
        );
        assert_eq!(
            (c.server.log_level, c.server.log_format),
            (LogLevel::Debug, LogFormat::Json)
        );
        assert_eq!(
            (c.positions.filename.as_str(), c.positions.sync_period.0),
            ("/var/lib/p.yaml", Duration::from_secs(5))
        );
        assert_eq!(
            (
                c.limits_config.max_line_size.0,
                c.limits_config.max_line_size_truncate
            ),
            (1024, true)
        );
        assert_eq!(c.target_config.sync_period.0, Duration::from_secs(30));

        let mut c = parse_str(YAML, "t.yaml", false).unwrap();
        c.apply_flag_overrides(&FlagOverrides::default()).unwrap();
        assert_eq!(
            c,
            parse_str(YAML, "t.yaml", false).unwrap(),
            "no flags, no change"
        );
    }

    #[test]
    fn client_url_appends_and_external_labels_merge_with_yaml_winning() {
        let mut c = parse_str(YAML, "t.yaml", false).unwrap();
        let flags = FlagOverrides {
            client_url: Some("http://b/loki/api/v1/push".into()),
            client_tenant_id: Some("team-a".into()),
            client_external_labels: vec![
                ("env".into(), "flag".into()),
                ("dc".into(), "eu1".into()),
            ],
            ..Default::default()
        };
        c.apply_flag_overrides(&flags).unwrap();
        assert_eq!(c.clients.len(), 2);
        assert_eq!(
            (c.clients[1].url.as_str(), c.clients[1].tenant_id.as_str()),
            ("http://b/loki/api/v1/push", "team-a")
        );
        assert_eq!(c.clients[0].external_labels["env"], "yaml");
        assert_eq!(c.clients[0].external_labels["dc"], "eu1");
        assert_eq!(c.clients[1].external_labels["env"], "flag");
    }

    #[test]
    fn client_flags_modify_the_yaml_client_block() {
        let text = "client: {url: http://old/loki/api/v1/push, tenant_id: t0}\n";
        let mut c = parse_str(text, "t.yaml", false).unwrap();
        assert_eq!(c.clients.len(), 1);
        let flags = FlagOverrides {
            client_url: Some("http://new/loki/api/v1/push".into()),
            ..Default::default()
        };
        c.apply_flag_overrides(&flags).unwrap();
        assert_eq!(c.clients.len(), 1);
        assert_eq!(
            (c.clients[0].url.as_str(), c.clients[0].tenant_id.as_str()),
            ("http://new/loki/api/v1/push", "t0")
        );

        let mut c = parse_str("", "t.yaml", false).unwrap();
        c.apply_flag_overrides(&FlagOverrides {
            client_tenant_id: Some("x".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(
            c.clients.is_empty(),
            "a tenant flag without a URL adds no client"
        );
    }

    #[test]
    fn invalid_log_flags_are_errors() {
        let mut c = parse_str("", "t.yaml", false).unwrap();
        let err = c
            .apply_flag_overrides(&FlagOverrides {
                log_level: Some("trace".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "command line: -log.level: invalid log level \"trace\": expected one of debug, info, warn, error");
    }
}
