//! The HTTP client settings Prometheus' `config.HTTPClientConfig` adds inline to `clients[]` and
//! `docker_sd_configs[]` (auth, TLS, proxy), and its `Validate()` rules for which of them may be combined.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Invalid;
use super::locate::join_key;
use super::yaml;

/// `basic_auth`: HTTP Basic credentials, inline or read from files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<String>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<String>,
    /// Read on every request, so a rotated password is picked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// `authorization`: an `Authorization: <type> <credentials>` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme; unset or empty means `Bearer`. `basic` is refused (use `basic_auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub credentials: Option<String>,
    /// Read on every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

/// `oauth2`: client-credentials flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default, deserialize_with = "yaml::bool")]
    pub proxy_from_environment: bool,
    #[serde(
        default,
        serialize_with = "secret_headers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
}

/// `tls_config`: how to verify the server and which client certificate to present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM client certificate, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM client key, inline.
    #[serde(
        default,
        serialize_with = "yaml::secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Expected server name (SNI and verification), when it differs from the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, deserialize_with = "yaml::bool")]
    pub insecure_skip_verify: bool,
    /// `TLS10`, `TLS11`, `TLS12` or `TLS13`; unset means the library default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
}

/// The TLS version names Prometheus accepts, in order.
pub const TLS_VERSIONS: [&str; 4] = ["TLS10", "TLS11", "TLS12", "TLS13"];

fn secret_headers<S: serde::Serializer>(
    headers: &BTreeMap<String, Vec<String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let redacted: BTreeMap<&String, Vec<&str>> = headers
        .iter()
        .map(|(k, v)| (k, v.iter().map(|_| "<secret>").collect()))
        .collect();
    redacted.serialize(serializer)
}

/// Borrowed view of the inline HTTP client settings of one block, for the shared checks.
pub(crate) struct HttpSettings<'a> {
    pub basic_auth: &'a Option<BasicAuth>,
    pub authorization: &'a Option<Authorization>,
    pub bearer_token: &'a Option<String>,
    pub bearer_token_file: &'a Option<String>,
    pub oauth2: &'a Option<OAuth2>,
    pub tls_config: &'a Option<TlsConfig>,
    pub proxy_url: &'a Option<String>,
    pub no_proxy: &'a Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: &'a BTreeMap<String, Vec<String>>,
}

/// Go treats an empty string as unset.
fn set(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

/// The effective `Authorization` header settings: `bearer_token[_file]` become a Bearer authorization
/// and an empty `type` means `Bearer`, as Prometheus' `Validate()` rewrites them.
pub(crate) fn effective_authorization(
    authorization: &Option<Authorization>,
    bearer_token: &Option<String>,
    bearer_token_file: &Option<String>,
) -> Option<Authorization> {
    let bearer = || Some("Bearer".to_string());
    match authorization {
        Some(auth) => {
            let kind = auth
                .r#type
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty());
            Some(Authorization {
                r#type: kind.map(str::to_string).or_else(bearer),
                ..auth.clone()
            })
        }
        None if set(bearer_token) => Some(Authorization {
            r#type: bearer(),
            credentials: bearer_token.clone(),
            credentials_file: None,
        }),
        None if set(bearer_token_file) => Some(Authorization {
            r#type: bearer(),
            credentials: None,
            credentials_file: bearer_token_file.clone(),
        }),
        None => None,
    }
}

/// Why an `http(s)://` URL cannot be used (a port above 65535, a space in the host, ...): what the
/// HTTP client would refuse at the first request is refused with the config's location instead.
/// `raw` as a sink's address: an absolute `http://` or `https://` URL with a host. The error names
/// it as `what` ("push URL", "endpoint") and shows `example`.
pub(crate) fn check_sink_url(raw: &str, what: &str, example: &str) -> Result<(), String> {
    let url = raw.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.map_or(true, |r| r.is_empty() || r.starts_with('/')) {
        return Err(format!(
            "invalid {what} {raw:?}: expected an absolute http:// or https:// URL, e.g. {example}"
        ));
    }
    check_url(url).map_err(|why| format!("invalid {what} {raw:?}: {why}"))
}

pub(crate) fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err("it has no host".into()),
        Err(e) => {
            let why = e.to_string();
            let hint = if why.contains("port") {
                " (expected a port from 1 to 65535)"
            } else {
                ""
            };
            Err(format!("{why}{hint}"))
        }
    }
}

/// A configured header as HTTP takes it, or why it cannot be sent.
pub fn header(
    name: &str,
    value: &str,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), &'static str> {
    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| "not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)")?;
    let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
        "the value holds a character a header cannot carry (a newline or control character)"
    })?;
    Ok((name, value))
}

/// A sink's `headers:`, each checked as HTTP takes it; `base` is the sink's path.
pub(crate) fn validate_headers(
    base: &str,
    headers: &BTreeMap<String, String>,
) -> Result<(), Invalid> {
    for (name, value) in headers {
        if let Err(why) = header(name, value) {
            let at = join_key(&join_key(base, "headers"), name);
            return Err(Invalid::value(
                at,
                format!("invalid header {name:?}: {why}"),
            ));
        }
    }
    Ok(())
}

/// Prometheus' `HTTPClientConfig.Validate()` (plus `TLSConfig` and proxy checks). `base` is the path of
/// the block; each error names the key that conflicts.
pub(crate) fn validate(base: &str, http: &HttpSettings<'_>) -> Result<(), Invalid> {
    let at = |key: &str| join_key(base, key);
    let has_bearer = set(http.bearer_token) || set(http.bearer_token_file);
    if set(http.bearer_token) && set(http.bearer_token_file) {
        return Err(Invalid::key(
            at("bearer_token_file"),
            "at most one of bearer_token & bearer_token_file must be configured",
        ));
    }
    if (http.basic_auth.is_some() || http.oauth2.is_some()) && has_bearer {
        let key = if set(http.bearer_token) {
            "bearer_token"
        } else {
            "bearer_token_file"
        };
        return Err(Invalid::key(at(key), "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"));
    }
    if let Some(basic) = http.basic_auth {
        if set(&basic.username) && set(&basic.username_file) {
            return Err(Invalid::key(
                at("basic_auth.username_file"),
                "at most one of basic_auth username & username_file must be configured",
            ));
        }
        if set(&basic.password) && set(&basic.password_file) {
            return Err(Invalid::key(
                at("basic_auth.password_file"),
                "at most one of basic_auth password & password_file must be configured",
            ));
        }
    }
    if let Some(auth) = http.authorization {
        if has_bearer {
            return Err(Invalid::key(
                at("authorization"),
                "authorization is not compatible with bearer_token & bearer_token_file",
            ));
        }
        if set(&auth.credentials) && set(&auth.credentials_file) {
            return Err(Invalid::key(
                at("authorization.credentials_file"),
                "at most one of authorization credentials & credentials_file must be configured",
            ));
        }
        if auth
            .r#type
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("basic"))
        {
            return Err(Invalid::value(
                at("authorization.type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
        if http.basic_auth.is_some() || http.oauth2.is_some() {
            return Err(Invalid::key(
                at("authorization"),
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ));
        }
    }
    if let Some(oauth2) = http.oauth2 {
        if http.basic_auth.is_some() {
            return Err(Invalid::key(
                at("oauth2"),
                "at most one of basic_auth, oauth2 & authorization must be configured",
            ));
        }
        if !set(&oauth2.client_id) {
            return Err(Invalid::key(
                at("oauth2"),
                "oauth2 client_id must be configured",
            ));
        }
        if !set(&oauth2.token_url) {
            return Err(Invalid::key(
                at("oauth2"),
                "oauth2 token_url must be configured",
            ));
        }
        if set(&oauth2.client_secret) && set(&oauth2.client_secret_file) {
            return Err(Invalid::key(
                at("oauth2.client_secret_file"),
                "at most one of oauth2 client_secret & client_secret_file must be configured",
            ));
        }
        if let Some(tls) = &oauth2.tls_config {
            validate_tls(&at("oauth2.tls_config"), tls)?;
        }
    }
    if let Some(tls) = http.tls_config {
        validate_tls(&at("tls_config"), tls)?;
    }
    validate_proxy(base, http)
}

fn validate_proxy(base: &str, http: &HttpSettings<'_>) -> Result<(), Invalid> {
    let at = |key: &str| join_key(base, key);
    if !http.proxy_connect_header.is_empty() && !http.proxy_from_environment && !set(http.proxy_url)
    {
        return Err(Invalid::key(at("proxy_connect_header"), "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"));
    }
    if http.proxy_from_environment && set(http.proxy_url) {
        return Err(Invalid::key(
            at("proxy_url"),
            "if proxy_from_environment is configured, proxy_url must not be configured",
        ));
    }
    if http.proxy_from_environment && set(http.no_proxy) {
        return Err(Invalid::key(
            at("no_proxy"),
            "if proxy_from_environment is configured, no_proxy must not be configured",
        ));
    }
    if !set(http.proxy_url) && set(http.no_proxy) {
        return Err(Invalid::key(
            at("no_proxy"),
            "if no_proxy is configured, proxy_url must also be configured",
        ));
    }
    Ok(())
}

/// Prometheus' `TLSConfig.Validate()` and TLS version names.
pub(crate) fn validate_tls(base: &str, tls: &TlsConfig) -> Result<(), Invalid> {
    let at = |key: &str| join_key(base, key);
    if set(&tls.ca) && set(&tls.ca_file) {
        return Err(Invalid::key(
            at("ca_file"),
            "at most one of ca & ca_file must be configured",
        ));
    }
    if set(&tls.cert) && set(&tls.cert_file) {
        return Err(Invalid::key(
            at("cert_file"),
            "at most one of cert & cert_file must be configured",
        ));
    }
    if set(&tls.key) && set(&tls.key_file) {
        return Err(Invalid::key(
            at("key_file"),
            "at most one of key & key_file must be configured",
        ));
    }
    let has_cert = set(&tls.cert) || set(&tls.cert_file);
    let has_key = set(&tls.key) || set(&tls.key_file);
    if has_cert && !has_key {
        let key = if set(&tls.cert) { "cert" } else { "cert_file" };
        return Err(Invalid::key(at(key), "exactly one of key or key_file must be configured when a client certificate is configured"));
    }
    if has_key && !has_cert {
        let key = if set(&tls.key_file) {
            "key_file"
        } else {
            "key"
        };
        return Err(Invalid::key(
            at(key),
            "exactly one of cert or cert_file must be configured when a client key is configured",
        ));
    }
    let version = |key: &str, value: &Option<String>| {
        let value = value.as_deref().unwrap_or_default();
        match TLS_VERSIONS.iter().position(|v| *v == value) {
            Some(i) => Ok(Some(i)),
            None if value.is_empty() => Ok(None),
            None => Err(Invalid::value(
                at(key),
                format!(
                    "unknown TLS version {value:?}: expected one of {}",
                    TLS_VERSIONS.join(", ")
                ),
            )),
        }
    };
    let (min, max) = (
        version("min_version", &tls.min_version)?,
        version("max_version", &tls.max_version)?,
    );
    if let (Some(min), Some(max)) = (min, max) {
        if max < min {
            return Err(Invalid::value(
                at("max_version"),
                format!(
                    "max_version {} is lower than min_version {}",
                    TLS_VERSIONS[max], TLS_VERSIONS[min]
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        basic: &'a Option<BasicAuth>,
        auth: &'a Option<Authorization>,
        token: &'a Option<String>,
        token_file: &'a Option<String>,
        oauth2: &'a Option<OAuth2>,
        tls: &'a Option<TlsConfig>,
    ) -> HttpSettings<'a> {
        static EMPTY: BTreeMap<String, Vec<String>> = BTreeMap::new();
        static NONE: Option<String> = None;
        HttpSettings {
            basic_auth: basic,
            authorization: auth,
            bearer_token: token,
            bearer_token_file: token_file,
            oauth2,
            tls_config: tls,
            proxy_url: &NONE,
            no_proxy: &NONE,
            proxy_from_environment: false,
            proxy_connect_header: &EMPTY,
        }
    }

    #[test]
    fn auth_methods_are_mutually_exclusive() {
        let basic = Some(BasicAuth {
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        });
        let auth = Some(Authorization {
            credentials: Some("c".into()),
            ..Default::default()
        });
        let token = Some("t".to_string());
        let file = Some("/f".to_string());
        let oauth = Some(OAuth2 {
            client_id: Some("id".into()),
            token_url: Some("http://t".into()),
            ..Default::default()
        });
        let tls = None;
        let (no_basic, no_auth, no_token) = (None, None, None);
        let cases: Vec<(HttpSettings<'_>, Option<(&str, &str)>)> = vec![
            (settings(&basic, &no_auth, &no_token, &no_token, &None, &tls), None),
            (settings(&no_basic, &no_auth, &token, &file, &None, &tls), Some(("c.bearer_token_file", "at most one of bearer_token & bearer_token_file must be configured"))),
            (settings(&basic, &no_auth, &token, &no_token, &None, &tls), Some(("c.bearer_token", "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"))),
            (settings(&no_basic, &auth, &token, &no_token, &None, &tls), Some(("c.authorization", "authorization is not compatible with bearer_token & bearer_token_file"))),
            (settings(&basic, &auth, &no_token, &no_token, &None, &tls), Some(("c.authorization", "at most one of basic_auth, oauth2 & authorization must be configured"))),
            (settings(&basic, &no_auth, &no_token, &no_token, &oauth, &tls), Some(("c.oauth2", "at most one of basic_auth, oauth2 & authorization must be configured"))),
        ];
        for (i, (http, want)) in cases.into_iter().enumerate() {
            let got = validate("c", &http).err().map(|e| (e.path, e.message));
            assert_eq!(
                got,
                want.map(|(p, m)| (p.to_string(), m.to_string())),
                "case {i}"
            );
        }
    }

    #[test]
    fn tls_rules() {
        let check = |tls: TlsConfig| validate_tls("t", &tls).err().map(|e| e.message);
        assert_eq!(check(TlsConfig::default()), None);
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            check(TlsConfig {
                ca: s("x"),
                ca_file: s("y"),
                ..Default::default()
            })
            .unwrap(),
            "at most one of ca & ca_file must be configured"
        );
        assert_eq!(
            check(TlsConfig {
                ca: s(""),
                ca_file: s("y"),
                ..Default::default()
            }),
            None,
            "empty means unset"
        );
        assert_eq!(check(TlsConfig { cert_file: s("c"), ..Default::default() }).unwrap(), "exactly one of key or key_file must be configured when a client certificate is configured");
        assert_eq!(
            check(TlsConfig {
                cert_file: s("c"),
                key_file: s("k"),
                ..Default::default()
            }),
            None
        );
        assert_eq!(
            check(TlsConfig {
                min_version: s("TLS1.2"),
                ..Default::default()
            })
            .unwrap(),
            "unknown TLS version \"TLS1.2\": expected one of TLS10, TLS11, TLS12, TLS13"
        );
        assert_eq!(
            check(TlsConfig {
                min_version: s("TLS13"),
                max_version: s("TLS12"),
                ..Default::default()
            })
            .unwrap(),
            "max_version TLS12 is lower than min_version TLS13"
        );
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        let auth = effective_authorization(&None, &Some("tok".into()), &None).unwrap();
        assert_eq!(
            (auth.r#type.as_deref(), auth.credentials.as_deref()),
            (Some("Bearer"), Some("tok"))
        );
        let auth = effective_authorization(&None, &None, &Some("/run/token".into())).unwrap();
        assert_eq!(auth.credentials_file.as_deref(), Some("/run/token"));
        let custom = Some(Authorization {
            r#type: Some(" ".into()),
            credentials: Some("c".into()),
            ..Default::default()
        });
        assert_eq!(
            effective_authorization(&custom, &None, &None)
                .unwrap()
                .r#type
                .as_deref(),
            Some("Bearer")
        );
        let custom = Some(Authorization {
            r#type: Some("Token".into()),
            ..Default::default()
        });
        assert_eq!(
            effective_authorization(&custom, &None, &None)
                .unwrap()
                .r#type
                .as_deref(),
            Some("Token")
        );
        assert_eq!(effective_authorization(&None, &None, &None), None);
    }
}
