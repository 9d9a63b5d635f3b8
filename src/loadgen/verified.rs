//! The load generator's certificate check: a server's chain is verified once and the verdict
//! reused while the server presents the same certificates, as a client's own cache would, so
//! thousands of handshakes measure the server, not the generator's path validation. Each
//! handshake's signature (the proof that the server holds the key) is still checked.

use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug)]
pub struct VerifiedOnce {
    inner: Arc<WebPkiServerVerifier>,
    /// The certificates (end entity first) and the name last verified in full.
    verified: Mutex<Option<(Vec<Vec<u8>>, String)>>,
}

impl VerifiedOnce {
    pub fn new(inner: Arc<WebPkiServerVerifier>) -> Self {
        Self {
            inner,
            verified: Mutex::new(None),
        }
    }
}

fn chain(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
    std::iter::once(end_entity)
        .chain(intermediates)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

impl ServerCertVerifier for VerifiedOnce {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = server_name.to_str();
        let seen = |(certs, verified_name): &(Vec<Vec<u8>>, String)| {
            *verified_name == name
                && certs.len() == intermediates.len() + 1
                && std::iter::once(end_entity)
                    .chain(intermediates)
                    .zip(certs)
                    .all(|(c, v)| c.as_ref() == v.as_slice())
        };
        let cached = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(seen) {
            return Ok(ServerCertVerified::assertion());
        }
        drop(cached);
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        *self.verified.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((chain(end_entity, intermediates), name.into_owned()));
        Ok(verdict)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn reuses_the_verdict_only_for_the_same_certificate_and_name() {
        let (trusted, other) = (
            crate::devcert::generate().unwrap(),
            crate::devcert::generate().unwrap(),
        );
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&trusted.cert_pem)).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let verifier = VerifiedOnce::new(webpki);
        let name = ServerName::try_from("localhost").unwrap();
        let now = UnixTime::now();
        let check = |cert: &CertificateDer<'_>, name: &ServerName<'_>| {
            verifier.verify_server_cert(cert, &[], name, &[], now)
        };
        assert!(check(&der(&trusted.cert_pem), &name).is_ok());
        assert!(
            check(&der(&trusted.cert_pem), &name).is_ok(),
            "again, from the cache"
        );
        assert!(
            check(&der(&other.cert_pem), &name).is_err(),
            "another certificate is verified in full, and refused"
        );
        let elsewhere = ServerName::try_from("example.com").unwrap();
        assert!(
            check(&der(&trusted.cert_pem), &elsewhere).is_err(),
            "another name too"
        );
    }
}
