//! The key ring: the primary key plus rotation keys by `kid`, each pinned to one algorithm.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{Audience, Claims, Scope};
use crate::clock::unix_now;
use crate::config::{AuthSettings, KeyAlg};

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;

/// Why the key ring could not be built or a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no JWT key configured: set auth.jwt_secret_file (HS256) or auth.jwt_public_key (EdDSA)"
    )]
    NoKey,
    #[error(
        "auth.jwt_secret_file and auth.jwt_public_key are both set: pick one primary key and list others under [[auth.keys]]"
    )]
    TwoPrimaries,
    #[error("cannot read {key} file {path}: {source}")]
    Read {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{key} file {path}: secret is {len} bytes, at least {MIN_SECRET_LEN} are required (try `openssl rand -hex 32`)"
    )]
    ShortSecret {
        key: String,
        path: PathBuf,
        len: usize,
    },
    #[error("{key} file {path}: not a usable Ed25519 key PEM: {reason}")]
    BadPem {
        key: String,
        path: PathBuf,
        reason: String,
    },
    #[error("auth.keys: kid {0:?} appears more than once")]
    DuplicateKid(String),
    #[error("cannot issue tokens: the primary key is EdDSA and auth.jwt_private_key is not set")]
    NoSigningKey,
    #[error("auth.jwt_private_key does not match the primary public key")]
    MismatchedPrivateKey,
    #[error("cannot sign token: {0}")]
    Sign(String),
}

/// One verification key, pinned to one algorithm.
pub struct Key {
    /// `None` for a primary key without a configured `kid`.
    kid: Option<String>,
    decoding: DecodingKey,
    /// Built once: algorithm pin, required claims, `iss`, `aud` and leeway.
    validation: Validation,
}

impl Key {
    pub fn algorithm(&self) -> Algorithm {
        self.validation.algorithms[0]
    }

    pub fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }
}

/// The key ring a running server checks tokens with, replaceable (SIGHUP) so keys can be
/// rotated without a restart. Live sessions keep going whatever their token's key.
#[derive(Debug)]
pub struct Keys(std::sync::RwLock<std::sync::Arc<KeyRing>>);

impl Keys {
    pub fn new(ring: KeyRing) -> Keys {
        Keys(std::sync::RwLock::new(std::sync::Arc::new(ring)))
    }

    /// The ring in force now (an `Arc` clone under a read lock).
    pub fn current(&self) -> std::sync::Arc<KeyRing> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, ring: KeyRing) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(ring);
    }
}

/// All keys the server accepts, and the one `token issue` signs with.
pub struct KeyRing {
    /// Checked for tokens without a `kid` (and for a `kid` equal to its own).
    primary: Key,
    /// Rotation keys; only reachable by `kid`.
    others: Vec<Key>,
    /// Signs issued tokens: the HS256 secret, or the Ed25519 private key when configured.
    signing: Option<EncodingKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("KeyRing")
            .field("primary_alg", &self.primary.algorithm())
            .field("keys", &(1 + self.others.len()))
            .finish()
    }
}

impl KeyRing {
    /// Builds the ring from settings, reading every key file now so errors surface at startup.
    pub fn from_settings(auth: &AuthSettings) -> Result<KeyRing, KeyError> {
        let rules = Rules {
            issuer: &auth.issuer,
            audience: &auth.audience,
            leeway: auth.leeway,
        };
        let (primary, signing) = match (&auth.jwt_secret_file, &auth.jwt_public_key) {
            (Some(_), Some(_)) => return Err(KeyError::TwoPrimaries),
            (None, None) => return Err(KeyError::NoKey),
            (Some(path), None) => {
                let secret = read_secret("auth.jwt_secret_file", path)?;
                let key = rules.key(
                    auth.kid.clone(),
                    Algorithm::HS256,
                    DecodingKey::from_secret(&secret),
                );
                (key, Some(EncodingKey::from_secret(&secret)))
            }
            (None, Some(path)) => {
                let pem = read_file("auth.jwt_public_key", path)?;
                let decoding = DecodingKey::from_ed_pem(&pem)
                    .map_err(|e| bad_pem("auth.jwt_public_key", path, e))?;
                let signing = match &auth.jwt_private_key {
                    Some(p) => {
                        let pem = read_file("auth.jwt_private_key", p)?;
                        Some(
                            EncodingKey::from_ed_pem(&pem)
                                .map_err(|e| bad_pem("auth.jwt_private_key", p, e))?,
                        )
                    }
                    None => None,
                };
                (
                    rules.key(auth.kid.clone(), Algorithm::EdDSA, decoding),
                    signing,
                )
            }
        };
        let mut others = Vec::new();
        for ring_key in &auth.keys {
            let name = format!("auth.keys[{}]", ring_key.kid);
            if auth.kid.as_deref() == Some(ring_key.kid.as_str())
                || others
                    .iter()
                    .any(|k: &Key| k.kid.as_deref() == Some(ring_key.kid.as_str()))
            {
                return Err(KeyError::DuplicateKid(ring_key.kid.clone()));
            }
            let (alg, decoding) = match ring_key.alg {
                KeyAlg::HS256 => (
                    Algorithm::HS256,
                    DecodingKey::from_secret(&read_secret(&name, &ring_key.file)?),
                ),
                KeyAlg::EdDSA => (
                    Algorithm::EdDSA,
                    DecodingKey::from_ed_pem(&read_file(&name, &ring_key.file)?)
                        .map_err(|e| bad_pem(&name, &ring_key.file, e))?,
                ),
            };
            others.push(rules.key(Some(ring_key.kid.clone()), alg, decoding));
        }
        let ring = KeyRing {
            primary,
            others,
            signing,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
        };
        if ring.signing.is_some() && ring.primary.algorithm() == Algorithm::EdDSA {
            // A private key that does not match would mint tokens the server refuses.
            let probe = ring.issue("probe", Duration::from_secs(60), None)?;
            if ring.verify(&probe).is_err() {
                return Err(KeyError::MismatchedPrivateKey);
            }
        }
        Ok(ring)
    }

    pub fn primary(&self) -> &Key {
        &self.primary
    }

    /// The key with this `kid`, and no other: a `kid` never names a file or a URL.
    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        std::iter::once(&self.primary)
            .chain(&self.others)
            .find(|k| k.kid.as_deref() == Some(kid))
    }

    /// Signs a token for `sub`, valid for `ttl`, with the primary key.
    pub fn issue(&self, sub: &str, ttl: Duration, jti: Option<String>) -> Result<String, KeyError> {
        self.issue_scoped(sub, ttl, jti, &Scope::default())
    }

    /// As [`KeyRing::issue`], restricted to `scope`.
    pub fn issue_scoped(
        &self,
        sub: &str,
        ttl: Duration,
        jti: Option<String>,
        scope: &Scope,
    ) -> Result<String, KeyError> {
        let signing = self.signing.as_ref().ok_or(KeyError::NoSigningKey)?;
        let now = unix_now();
        let claims = Claims {
            sub: sub.to_string(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
            jti: jti.unwrap_or_else(random_jti),
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            nbf: None,
            symbols: scope.symbols.clone(),
            strategies: scope.strategies.clone(),
            role: scope.publisher.then(|| super::PUBLISHER.to_string()),
        };
        let mut header = Header::new(self.primary.algorithm());
        header.kid = self.primary.kid.clone();
        jsonwebtoken::encode(&header, &claims, signing).map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// The checks every key shares.
struct Rules<'a> {
    issuer: &'a str,
    audience: &'a str,
    leeway: Duration,
}

impl Rules<'_> {
    fn key(&self, kid: Option<String>, alg: Algorithm, decoding: DecodingKey) -> Key {
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[self.issuer]);
        validation.set_audience(&[self.audience]);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Key {
            kid,
            decoding,
            validation,
        }
    }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

/// The secret file's content, trimmed of surrounding whitespace, is the HMAC key as-is.
fn read_secret(key: &str, path: &Path) -> Result<Vec<u8>, KeyError> {
    let raw = read_file(key, path)?;
    let secret = raw.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::ShortSecret {
            key: key.to_string(),
            path: path.to_path_buf(),
            len: secret.len(),
        });
    }
    Ok(secret)
}

fn bad_pem(key: &str, path: &Path, e: jsonwebtoken::errors::Error) -> KeyError {
    KeyError::BadPem {
        key: key.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A random 128-bit token id in hex.
pub fn random_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}
