//! Discovery's labels: the `__meta_docker_*` set of each container, exactly as Prometheus' moby SD
//! (`discovery/moby/docker.go`, `network.go`) builds it and Promtail's docker target group takes it: one
//! target per container, the first the SD lists for it: its first network by name, then the first TCP
//! port, else the fallback `port`/`host_networking_host` address. The SD lists more targets for the other
//! ports and networks; Promtail ignores them, since one container has one log. So `match_first_network`
//! changes nothing here: with it the SD keeps only the first network by name, without it Go's map order
//! picks one at random, which we make the first by name as well.

use std::collections::HashMap;

use bollard::models::{ContainerSummary, EndpointSettings, Network, PortSummaryTypeEnum};

use crate::config::DockerSdConfig;
use crate::entry::Labels;

const PREFIX: &str = "__meta_docker_";
pub const CONTAINER_ID: &str = "__meta_docker_container_id";
pub const LOG_STREAM: &str = "__meta_docker_container_log_stream";
pub const CONTAINER_NAME: &str = "__meta_docker_container_name";

/// What the SD needs from `docker_sd_configs` to make addresses.
#[derive(Debug, Clone)]
pub struct AddressRules {
    pub port: u16,
    pub host_networking_host: String,
}

impl AddressRules {
    pub fn of(sd: &DockerSdConfig) -> Self {
        AddressRules {
            port: sd.port,
            host_networking_host: sd.host_networking_host.clone(),
        }
    }
}

/// Per network ID, the `__meta_docker_network_*` labels.
pub fn network_labels(networks: &[Network]) -> HashMap<String, Labels> {
    let mut out = HashMap::with_capacity(networks.len());
    for n in networks {
        let id = n.id.clone().unwrap_or_default();
        let mut l = Labels::new();
        l.insert(format!("{PREFIX}network_id"), id.clone());
        l.insert(
            format!("{PREFIX}network_name"),
            n.name.clone().unwrap_or_default(),
        );
        l.insert(
            format!("{PREFIX}network_scope"),
            n.scope.clone().unwrap_or_default(),
        );
        l.insert(
            format!("{PREFIX}network_internal"),
            n.internal.unwrap_or(false).to_string(),
        );
        l.insert(
            format!("{PREFIX}network_ingress"),
            n.ingress.unwrap_or(false).to_string(),
        );
        for (k, v) in n.labels.iter().flatten() {
            l.insert(format!("{PREFIX}network_label_{}", sanitize(k)), v.clone());
        }
        out.insert(id, l);
    }
    out
}

/// The discovered labels of each listed container, in list order; containers without a name or a
/// network (Prometheus makes no target for them) are left out.
pub fn container_targets(
    containers: &[ContainerSummary],
    networks: &HashMap<String, Labels>,
    rules: &AddressRules,
) -> Vec<(String, Labels)> {
    let by_id: HashMap<&str, &ContainerSummary> = containers
        .iter()
        .filter_map(|c| Some((c.id.as_deref()?, c)))
        .collect();
    containers
        .iter()
        .filter_map(|c| Some((c.id.clone()?, target(c, &by_id, networks, rules)?)))
        .collect()
}

fn target(
    c: &ContainerSummary,
    by_id: &HashMap<&str, &ContainerSummary>,
    networks: &HashMap<String, Labels>,
    rules: &AddressRules,
) -> Option<Labels> {
    let name = c.names.as_ref()?.first()?;
    let mode = network_mode(c);
    let mut labels = Labels::new();
    labels.insert(CONTAINER_ID.into(), c.id.clone()?);
    labels.insert(CONTAINER_NAME.into(), name.clone());
    labels.insert(format!("{PREFIX}container_network_mode"), mode.to_owned());
    for (k, v) in c.labels.iter().flatten() {
        labels.insert(
            format!("{PREFIX}container_label_{}", sanitize(k)),
            v.clone(),
        );
    }

    let net = first_network(c, by_id)?;
    let ip = net.ip_address.clone().unwrap_or_default();
    let tcp = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.typ == Some(PortSummaryTypeEnum::TCP));
    let address = match tcp {
        Some(p) => {
            labels.insert(format!("{PREFIX}port_private"), p.private_port.to_string());
            if let Some(public) = p.public_port.filter(|p| *p > 0) {
                labels.insert(format!("{PREFIX}port_public"), public.to_string());
                labels.insert(
                    format!("{PREFIX}port_public_ip"),
                    p.ip.clone().unwrap_or_default(),
                );
            }
            join_host_port(&ip, p.private_port)
        }
        None if mode == "host" => rules.host_networking_host.clone(),
        None => join_host_port(&ip, rules.port),
    };
    labels.insert(format!("{PREFIX}network_ip"), ip);
    if let Some(n) = net.network_id.as_deref().and_then(|id| networks.get(id)) {
        labels.extend(n.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    labels.insert("__address__".into(), address);
    Some(labels)
}

fn network_mode(c: &ContainerSummary) -> &str {
    c.host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .unwrap_or("")
}

/// The network whose target comes first: by name, after following `container:<id>` network modes to
/// the container that owns the network namespace.
fn first_network<'a>(
    c: &'a ContainerSummary,
    by_id: &HashMap<&str, &'a ContainerSummary>,
) -> Option<&'a EndpointSettings> {
    let mut owner = c;
    let mut hops = 0;
    loop {
        let nets = owner
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref());
        if let Some(nets) = nets.filter(|n| !n.is_empty()) {
            return nets.iter().min_by(|a, b| a.0.cmp(b.0)).map(|(_, v)| v);
        }
        let shared = network_mode(owner).strip_prefix("container:")?;
        owner = by_id.get(shared)?;
        hops += 1;
        if hops > 16 {
            return None;
        }
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> ContainerSummary {
        serde_json::from_value(json).unwrap()
    }

    fn rules() -> AddressRules {
        AddressRules {
            port: 80,
            host_networking_host: "localhost".into(),
        }
    }

    fn networks() -> HashMap<String, Labels> {
        let nets: Vec<Network> = serde_json::from_value(serde_json::json!([
            {"Id": "n1", "Name": "bridge", "Scope": "local", "Internal": false, "Ingress": false,
             "Labels": {"com.example.team": "infra"}},
            {"Id": "n2", "Name": "host", "Scope": "local"}
        ]))
        .unwrap();
        network_labels(&nets)
    }

    #[test]
    fn bridge_container_with_a_published_port_gets_promtails_meta_labels() {
        let c = container(serde_json::json!({
            "Id": "abc", "Names": ["/web"], "Labels": {"com.docker.compose.service": "web", "a-b.c": "x"},
            "HostConfig": {"NetworkMode": "bridge"},
            "Ports": [{"PrivatePort": 53, "Type": "udp"}, {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 80, "Type": "tcp"}],
            "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "n1", "IPAddress": "172.17.0.2"}}}
        }));
        let got = container_targets(&[c], &networks(), &rules());
        let want: Labels = [
            ("__address__", "172.17.0.2:8080"),
            ("__meta_docker_container_id", "abc"),
            ("__meta_docker_container_label_a_b_c", "x"),
            (
                "__meta_docker_container_label_com_docker_compose_service",
                "web",
            ),
            ("__meta_docker_container_name", "/web"),
            ("__meta_docker_container_network_mode", "bridge"),
            ("__meta_docker_network_id", "n1"),
            ("__meta_docker_network_ingress", "false"),
            ("__meta_docker_network_internal", "false"),
            ("__meta_docker_network_ip", "172.17.0.2"),
            ("__meta_docker_network_label_com_example_team", "infra"),
            ("__meta_docker_network_name", "bridge"),
            ("__meta_docker_network_scope", "local"),
            ("__meta_docker_port_private", "8080"),
            ("__meta_docker_port_public", "80"),
            ("__meta_docker_port_public_ip", "0.0.0.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, [("abc".to_string(), want)]);
    }

    #[test]
    fn fallback_addresses_host_mode_and_shared_namespaces() {
        let host = container(serde_json::json!({
            "Id": "h", "Names": ["/h"], "HostConfig": {"NetworkMode": "host"},
            "NetworkSettings": {"Networks": {"host": {"NetworkID": "n2", "IPAddress": ""}}}
        }));
        let plain = container(serde_json::json!({
            "Id": "p", "Names": ["/p"], "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {"zeta": {"NetworkID": "nz", "IPAddress": "10.0.0.9"},
                                             "alpha": {"NetworkID": "n1", "IPAddress": "10.0.0.3"}}}
        }));
        let sidecar = container(serde_json::json!({
            "Id": "s", "Names": ["/s"], "HostConfig": {"NetworkMode": "container:p"},
            "NetworkSettings": {"Networks": {}}
        }));
        let orphan = container(serde_json::json!({
            "Id": "o", "Names": ["/o"], "HostConfig": {"NetworkMode": "container:gone"},
            "NetworkSettings": {"Networks": {}}
        }));
        let unnamed = container(serde_json::json!({"Id": "u", "Names": []}));
        let got = container_targets(
            &[host, plain, sidecar, orphan, unnamed],
            &networks(),
            &rules(),
        );
        let addr: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|(id, l)| {
                (
                    id.as_str(),
                    l["__address__"].as_str(),
                    l["__meta_docker_network_ip"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            addr,
            [
                ("h", "localhost", ""),
                ("p", "10.0.0.3:80", "10.0.0.3"),
                ("s", "10.0.0.3:80", "10.0.0.3")
            ]
        );
        assert_eq!(
            got[2].1["__meta_docker_container_network_mode"],
            "container:p"
        );
    }

    #[test]
    fn label_names_are_sanitized_per_character() {
        assert_eq!(sanitize("com.docker/compé-x_1"), "com_docker_comp__x_1");
    }
}
