//! The TLS side of a syslog TCP listener (RFC 5425), as Promtail sets it up: the server certificate and
//! key from `tls_config` (files or inline PEM); with a CA, every client must present a certificate it
//! signed (Go's `RequireAndVerifyClientCert`). rustls with the ring provider, as reqwest already uses.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// The rustls server config for `tls`, or what is wrong with its files.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let certs = pem_certs(&tls.cert_file, &tls.cert, "server certificate")?;
    let key = match (&tls.key_file, &tls.key) {
        (Some(path), _) if !path.is_empty() => PrivateKeyDer::from_pem_file(path)
            .map_err(|e| format!("unable to load server key {path}: {e}"))?,
        (_, Some(pem)) => PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("unable to load server key: {e}"))?,
        _ => return Err("certificate and key files are required".into()),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let ca_set = tls.ca_file.as_deref().is_some_and(|s| !s.is_empty())
        || tls.ca.as_deref().is_some_and(|s| !s.is_empty());
    let builder = if ca_set {
        let mut roots = RootCertStore::empty();
        for cert in pem_certs(&tls.ca_file, &tls.ca, "client CA certificate")? {
            roots
                .add(cert)
                .map_err(|e| format!("unable to parse client CA certificate: {e}"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("unable to use the client CA certificate: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("unable to load server certificate or key: {e}"))?;
    Ok(Arc::new(config))
}

fn pem_certs(
    file: &Option<String>,
    inline: &Option<String>,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = match (file, inline) {
        (Some(path), _) if !path.is_empty() => CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("unable to load {what} {path}: {e}"))?
            .collect(),
        (_, Some(pem)) => CertificateDer::pem_slice_iter(pem.as_bytes()).collect(),
        _ => return Err(format!("no {what} given")),
    };
    let certs = certs.map_err(|e| format!("unable to parse {what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificate found in the {what}"));
    }
    Ok(certs)
}
