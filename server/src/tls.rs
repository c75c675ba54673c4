//! HTTPS in the one binary: a certificate from files, or a self-signed one for this machine,
//! made into the rustls configuration [`crate::serve::Server::with_tls`] serves with.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::IpAddr;
use std::sync::Arc;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate chain is not PEM, or holds no certificate.
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    /// The key is not a PEM private key.
    #[error("the key file holds no PEM private key: {0}")]
    Key(rustls::pki_types::pem::Error),
    /// rustls refused the pair (the key does not match the certificate, say).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS configuration for a certificate chain and its private key (both PEM): TLS 1.2 and
/// 1.3 with ring's ciphers, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem).collect::<Result<_, _>>().map_err(|_| TlsError::NoCertificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::Key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate (PEM) and its key (PEM) for `localhost`, this machine's host name,
/// the listening address and the machine's other addresses: enough to try the app from a phone
/// on the same network (after accepting the browser's warning).
pub fn self_signed(extra: &[IpAddr]) -> Result<(String, String), rcgen::Error> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    for ip in extra {
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    }
    names.sort();
    names.dedup();
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_makes_a_config() {
        let (cert, key) = self_signed(&[]).unwrap();
        let config = server_config(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn files_that_are_not_pem_are_refused() {
        let (cert, key) = self_signed(&[]).unwrap();
        assert!(matches!(server_config(b"not a certificate", key.as_bytes()), Err(TlsError::NoCertificate)));
        assert!(matches!(server_config(cert.as_bytes(), b"not a key"), Err(TlsError::Key(_))));
    }
}
