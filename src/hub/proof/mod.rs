//! Proofs on journaled signals: a SHA-256 chain over each frame's canonical bytes, signed
//! with Ed25519 by the server's journal key, so anyone can check that no signal was edited,
//! back-dated, reordered or removed afterwards (docs/verify.md).
//!
//! A sealed frame is the client contract's frame with one member added at its end:
//! `...,"seq":7,"proof":{"kid":"...","prev":"<hex>","sig":"<base64>"}}`. Its canonical bytes
//! are the frame's text without that member: everything before `,"proof":` and a closing
//! `}`, exactly as sent (UTF-8, no re-serialization). Then
//! `hash = SHA-256(prev || canonical)`, `prev` being the previous signal's hash (32 zero
//! bytes for the first signal of a chain), and `sig = Ed25519(hash)`.

pub mod signer;
pub mod verify;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{Context, SHA256};

pub use signer::{KeyDir, KeySet, PublicKey, Signer};

/// A chain hash.
pub type Hash = [u8; 32];

/// The `prev` of a chain's first signal.
pub const GENESIS: Hash = [0; 32];

/// Where a sealed frame's proof member starts.
const MEMBER: &str = ",\"proof\":";

/// The hash a frame with canonical bytes `canonical` has after `prev`.
pub fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut context = Context::new(&SHA256);
    context.update(prev);
    context.update(canonical);
    let mut hash = [0; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// The chain as its one writer extends it (the journal's writer thread; in cluster mode the
/// leading producer's outbox): the last hash and who signs.
pub struct Chain {
    pub prev: Hash,
    pub signer: std::sync::Arc<Signer>,
}

impl Chain {
    /// Seals `frame` (a contract frame ending in `}`, without a proof): returns the frame
    /// with its proof, and moves the chain on. A frame that is not a JSON object is left as
    /// it is (the hub never makes one).
    pub fn seal(&mut self, frame: &str) -> Option<String> {
        let body = frame.strip_suffix('}')?;
        let hash = chain_hash(&self.prev, frame.as_bytes());
        let sig = self.signer.sign(&hash);
        let mut sealed = String::with_capacity(frame.len() + 200);
        sealed.push_str(body);
        sealed.push_str(MEMBER);
        sealed.push_str("{\"kid\":\"");
        sealed.push_str(self.signer.kid());
        sealed.push_str("\",\"prev\":\"");
        push_hex(&mut sealed, &self.prev);
        sealed.push_str("\",\"sig\":\"");
        STANDARD.encode_string(sig, &mut sealed);
        sealed.push_str("\"}}");
        self.prev = hash;
        Some(sealed)
    }
}

/// A sealed frame taken apart: its canonical bytes and its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub canonical: String,
    pub kid: String,
    pub prev: Hash,
    pub sig: Vec<u8>,
}

/// Why a frame's proof cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("carries no proof")]
    Missing,
    #[error("its proof is malformed: {0}")]
    Malformed(&'static str),
}

/// Takes a sealed frame's text apart. The proof is the frame's last member, so it is found
/// from the end: nothing a signal's strings hold can be mistaken for it.
pub fn open(text: &str) -> Result<Sealed, ProofError> {
    let at = text.rfind(MEMBER).ok_or(ProofError::Missing)?;
    let proof = text[at + MEMBER.len()..]
        .strip_suffix('}')
        .ok_or(ProofError::Malformed(
            "the proof is not the frame's last member",
        ))?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Proof<'a> {
        kid: &'a str,
        prev: &'a str,
        sig: &'a str,
    }
    let proof: Proof =
        serde_json::from_str(proof).map_err(|_| ProofError::Malformed("not {kid, prev, sig}"))?;
    let prev = from_hex(proof.prev).ok_or(ProofError::Malformed("prev: not 64 hex digits"))?;
    let sig = STANDARD
        .decode(proof.sig)
        .map_err(|_| ProofError::Malformed("sig: not base64"))?;
    Ok(Sealed {
        canonical: format!("{}}}", &text[..at]),
        kid: proof.kid.to_string(),
        prev,
        sig,
    })
}

/// The hash a journaled frame leaves the chain at: its own if sealed; a frame from before
/// signing starts a new chain after it.
pub fn hash_after(frame: &str) -> Hash {
    match open(frame) {
        Ok(sealed) => chain_hash(&sealed.prev, sealed.canonical.as_bytes()),
        Err(_) => GENESIS,
    }
}

/// Lower-case hex, as hashes are written.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn from_hex(text: &str) -> Option<Hash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut hash = [0; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        hash[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests;
