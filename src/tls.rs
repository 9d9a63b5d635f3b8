//! TLS for the client listener: PEM loading with `rustls-pki-types` and a strict rustls config.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be used; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert is not set: pass --tls-cert or run `sigcast init`")]
    NoCert,
    #[error("tls.key is not set: pass --tls-key or run `sigcast init`")]
    NoKey,
    #[error("tls.cert: certificate file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("tls.key: private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("tls.cert, tls.key: certificate {cert} and key {key} do not work together: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

fn pem_reason(e: rustls_pki_types::pem::Error, what: &str) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => format!("no {what} found in PEM"),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Reads every certificate of a PEM chain file, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason| TlsError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(e, "certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(e, "certificate")))?;
    if certs.is_empty() {
        return Err(err("no certificate found in PEM".into()));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: pem_reason(e, "private key (PKCS#8, RSA or EC)"),
    })
}

/// Builds the server config: TLS 1.2 and 1.3 only, AEAD suites with forward secrecy (the ring
/// provider offers no others), the server's cipher order, and ALPN `http/1.1`.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = cert.ok_or(TlsError::NoCert)?;
    let key = key.ok_or(TlsError::NoKey)?;
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let pair_err = |reason: String| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| pair_err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| pair_err(e.to_string()))?;
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
