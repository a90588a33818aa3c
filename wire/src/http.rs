//! The HTTPS client both the sensor (shipping batches) and the aggregator (delivering daily
//! files to partners) use: rustls with the web PKI roots plus, optionally, a PEM file of extra
//! CAs (a private CA in a lab or a partner's own).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// An agent with `timeout` per request, trusting the web PKI and the certificates in
/// `ca_file`. The error names the file and what is wrong with it.
pub fn http_agent(
    ca_file: Option<&Path>,
    timeout: Duration,
    user_agent: &str,
) -> Result<ureq::Agent, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                format!(
                    "CA file {} holds a malformed certificate: {e}",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!("CA file {} holds no certificate", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: certificate refused: {e}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS protocol versions: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(ureq::AgentBuilder::new()
        .timeout(timeout)
        .tls_config(Arc::new(tls))
        .user_agent(user_agent)
        .build())
}
