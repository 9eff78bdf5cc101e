//! What counts as a secret where the config is shown (`/config`, `-print-config-stderr`) or quoted in the
//! agent's log (the "sink started" line, transport errors): one rule, used by all of them.
//!
//! Credentials in fields of their own (`password`, `bearer_token`, `credentials`, ...) are always
//! `<secret>` (see the serializers in `yaml.rs`). Besides those, secrets hide in two free-form places:
//! request headers (`Authorization: Bearer ...`, `X-Api-Key: ...`) and URLs (`user:password@`,
//! `?api_key=...`). There the name decides: [`is_secret_name`].

use std::borrow::Cow;

/// Shown instead of a secret.
pub const SECRET: &str = "<secret>";

/// Whether a header or query parameter named `name` may carry a credential (case-insensitive): any name
/// containing `auth` (`Authorization`, `X-Auth-Token`), `key`, `token`, `secret`, `pass`, `signature`,
/// `credential`, `cookie` or `session`, and Azure's `sig`.
pub fn is_secret_name(name: &str) -> bool {
    const PARTS: [&str; 9] = [
        "auth",
        "key",
        "token",
        "secret",
        "pass",
        "signature",
        "credential",
        "cookie",
        "session",
    ];
    let name = name.to_ascii_lowercase();
    name == "sig" || PARTS.iter().any(|part| name.contains(part))
}

/// A header's value as it may be shown: `<secret>` when the header's name may carry a credential.
pub fn redact_header<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        SECRET
    } else {
        value
    }
}

/// A URL with the password of its `user:password@` part (as Promtail prints client URLs) and the value
/// of every query parameter whose name may carry a credential replaced by `<secret>`; a URL without
/// either is returned as is.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let mut out = String::new();
    let mut copied = 0;
    let rest = &url[scheme_end..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if let Some(at) = authority.rfind('@') {
        if let Some(colon) = authority[..at].find(':') {
            out.push_str(&url[..scheme_end + colon + 1]);
            out.push_str(SECRET);
            copied = scheme_end + at;
        }
    }
    if let Some(q) = url[scheme_end + authority_len..].find('?') {
        let query_start = scheme_end + authority_len + q + 1;
        let query_end = url[query_start..]
            .find('#')
            .map_or(url.len(), |i| query_start + i);
        let mut param_start = query_start;
        for param in url[query_start..query_end].split('&') {
            if let Some((name, value)) = param.split_once('=') {
                if !value.is_empty() && is_secret_name(&percent_decode(name)) {
                    let value_start = param_start + name.len() + 1;
                    out.push_str(&url[copied..value_start]);
                    out.push_str(SECRET);
                    copied = value_start + value.len();
                }
            }
            param_start += param.len() + 1;
        }
    }
    if copied == 0 {
        return url.into();
    }
    out.push_str(&url[copied..]);
    out.into()
}

/// `%XX` escapes decoded (and `+` as a space), so that `api%5Fkey` is recognised; invalid escapes are
/// kept as written.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return text.into();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "X-Api-Key",
            "apikey",
            "access_token",
            "X-Auth-Token",
            "client_secret",
            "password",
            "passwd",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "Cookie",
            "sig",
            "SIG",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "X-Scope-OrgID",
            "X-Source",
            "tenant",
            "pretty",
            "signal",
            "format",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
        assert_eq!(redact_header("X-Api-Key", "k"), "<secret>");
        assert_eq!(redact_header("X-Source", "promtail"), "promtail");
    }

    #[test]
    fn passwords_and_secret_query_values_are_redacted() {
        for (url, want) in [
            (
                "http://u:pw@loki:3100/push",
                "http://u:<secret>@loki:3100/push",
            ),
            ("https://u:p@ss@es:9200", "https://u:<secret>@es:9200"),
            ("http://u@loki/push", "http://u@loki/push"),
            ("http://loki/push?next=a@b:c", "http://loki/push?next=a@b:c"),
            ("loki:3100", "loki:3100"),
            (
                "http://loki/push?api_key=abc&tenant=t&Token=x#frag",
                "http://loki/push?api_key=<secret>&tenant=t&Token=<secret>#frag",
            ),
            (
                "https://u:p@es:9200/?X-Amz-Signature=s&api%5Fkey=k&flag&key=",
                "https://u:<secret>@es:9200/?X-Amz-Signature=<secret>&api%5Fkey=<secret>&flag&key=",
            ),
            ("http://h?sig=a%26b", "http://h?sig=<secret>"),
            ("http://h/?pretty=true", "http://h/?pretty=true"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert!(matches!(
            redact_url("http://loki:3100/push?x=1"),
            Cow::Borrowed(_)
        ));
    }
}
