//! TLS for the client listener: PEM loading with `rustls-pki-types` and a strict rustls config.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
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

/// The certificate chain and key the listener serves, read from their files again on
/// [`CertStore::reload`] (SIGHUP), so a renewed certificate takes effect without a restart.
/// Handshakes in progress keep the one they started with.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    /// Read once per handshake (an `Arc` clone under a read lock); written on reload.
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads and checks the pair: both parse, and the key belongs to the leaf certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<CertStore, TlsError> {
        Ok(CertStore {
            current: RwLock::new(Arc::new(certified(cert, key)?)),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Reads the files again; on any problem the running pair stays and the error says why.
    /// Blocking file reads: call it off the runtime.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(certified(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The leaf certificate served now (DER), e.g. to tell which one is live.
    pub fn leaf(&self) -> CertificateDer<'static> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.cert[0].clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// ring's suites (all AEAD with forward secrecy), the SHA-256 ones first: the server's
/// order decides, and SHA-384's key schedule and transcript hashing cost more per handshake
/// than anything but the key exchange (SHA-256 runs on the CPU's SHA extensions).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| !format!("{:?}", s.suite()).ends_with("_SHA256"));
    Arc::new(provider)
}

fn certified(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Builds the server config: TLS 1.2 and 1.3 only, AEAD suites with forward secrecy (the ring
/// provider offers no others), the server's cipher order, and ALPN `http/1.1`.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    reloadable_server_config(cert, key).map(|(config, _)| config)
}

/// As [`server_config`], with the store that [`CertStore::reload`]s its certificate.
pub fn reloadable_server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<(Arc<ServerConfig>, Arc<CertStore>), TlsError> {
    let cert = cert.ok_or(TlsError::NoCert)?;
    let key = key.ok_or(TlsError::NoKey)?;
    let store = Arc::new(CertStore::load(cert, key)?);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    config.ignore_client_order = true;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), store))
}
