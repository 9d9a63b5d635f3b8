//! Development TLS material: a self-signed certificate for localhost, 127.0.0.1 and ::1.
//!
//! Used by `sigcast init`, `sigcast demo` and the tests. Never a production certificate.

use anyhow::Context;

/// A PEM certificate and its PKCS#8 private key.
pub struct DevCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The names every development certificate covers.
pub const DEV_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Makes a fresh self-signed certificate (ECDSA P-256) for [`DEV_NAMES`].
pub fn generate() -> anyhow::Result<DevCert> {
    let names: Vec<String> = DEV_NAMES.iter().map(|s| s.to_string()).collect();
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating development certificate")?;
    Ok(DevCert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    })
}

/// Makes an Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM), for EdDSA tokens.
pub fn ed25519_pair() -> anyhow::Result<(String, String)> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .context("generating Ed25519 key pair")?;
    Ok((pair.serialize_pem(), pair.public_key_pem()))
}
