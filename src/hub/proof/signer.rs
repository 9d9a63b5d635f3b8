//! The journal key: the Ed25519 key that signs every journaled signal, kept in the data
//! directory and named by a `kid`; retired keys' public halves stay beside it, so signals
//! signed before a rotation still verify.
//!
//! `<data.dir>/journal-keys/current.pem` is the signing key (PKCS#8 PEM, mode 0600; one made
//! with `openssl genpkey -algorithm ed25519` works too). A rotation moves its public half to
//! `<kid>.pub` (the raw key in base64) and makes a new one. A `kid` is the first 16 hex
//! digits of the SHA-256 of the raw public key, so it names the key and nothing else.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// Why a journal key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("journal key {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("journal key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The key that signs, and its name.
pub struct Signer {
    pair: Ed25519KeyPair,
    kid: String,
}

impl Signer {
    /// The key in a PKCS#8 PEM file.
    pub fn from_pem_file(path: &Path) -> Result<Signer, KeyError> {
        let read = |reason: String| KeyError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| read(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|e| read(format!("not an Ed25519 private key ({e})")))?;
        let kid = kid_of(pair.public_key().as_ref());
        Ok(Signer { pair, kid })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> impl AsRef<[u8]> {
        self.pair.sign(message)
    }

    /// The public half, to publish.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            alg: ALG.to_string(),
            public_key: STANDARD.encode(self.pair.public_key().as_ref()),
            current: true,
        }
    }
}

/// The one algorithm journal keys use.
const ALG: &str = "Ed25519";

/// A public key as `GET /v1/journal/key` and `sigcast journal key` give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    pub alg: String,
    /// The raw 32-byte Ed25519 public key, in standard base64.
    pub public_key: String,
    /// Whether it signs new signals (the others signed older ones).
    #[serde(default)]
    pub current: bool,
}

impl PublicKey {
    /// Whether `sig` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(raw) = STANDARD.decode(&self.public_key) else {
            return false;
        };
        self.alg == ALG
            && UnparsedPublicKey::new(&ED25519, raw)
                .verify(message, sig)
                .is_ok()
    }
}

/// The published keys: `{"keys":[...]}`, the current one first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

impl KeySet {
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// A key's name: the first 16 hex digits of its raw public key's SHA-256.
pub fn kid_of(raw: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, raw);
    super::hex(&digest.as_ref()[..8])
}

/// The journal keys in a data directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The keys of the data directory `data_dir`.
    pub fn of(data_dir: &Path) -> KeyDir {
        KeyDir {
            dir: data_dir.join("journal-keys"),
        }
    }

    /// The signing key's file.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join("current.pem")
    }

    /// The signing key, made first if there is none yet.
    pub fn load_or_create(&self) -> Result<Signer, KeyError> {
        let path = self.current_path();
        if !path.exists() {
            self.create()?;
        }
        Signer::from_pem_file(&path)
    }

    /// Retires the signing key (its public half stays) and makes a new one. Returns the old
    /// and the new `kid`.
    pub fn rotate(&self) -> Result<(String, String), KeyError> {
        let old = self.load_or_create()?;
        let retired = self.dir.join(format!("{}.pub", old.kid()));
        write(&retired, &format!("{}\n", old.public().public_key), false)?;
        self.create()?;
        let new = Signer::from_pem_file(&self.current_path())?;
        Ok((old.kid, new.kid))
    }

    /// Every key: the current one first, then the retired ones by `kid`.
    pub fn public_keys(&self) -> Result<KeySet, KeyError> {
        let mut keys = vec![Signer::from_pem_file(&self.current_path())?.public()];
        let mut retired: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| KeyError::Read {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        retired.sort();
        for path in retired {
            let read = |reason: String| KeyError::Read {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| read(e.to_string()))?;
            let raw = STANDARD
                .decode(text.trim())
                .ok()
                .filter(|raw| raw.len() == 32)
                .ok_or_else(|| read("expected a raw Ed25519 public key in base64".into()))?;
            keys.push(PublicKey {
                kid: kid_of(&raw),
                alg: ALG.to_string(),
                public_key: text.trim().to_string(),
                current: false,
            });
        }
        Ok(KeySet { keys })
    }

    fn create(&self) -> Result<(), KeyError> {
        let path = self.current_path();
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| KeyError::Read {
                path: path.clone(),
                reason: format!("cannot make a key: {e}"),
            })?;
        write(&path, &pair.serialize_pem(), true)
    }
}

/// Writes a key file (`secret`: readable by its owner only), making its directory.
fn write(path: &Path, text: &str, secret: bool) -> Result<(), KeyError> {
    use std::io::Write;
    let failed = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)
}
