//! JWT authentication: a key ring with one pinned algorithm per key, verification and issuing.
//!
//! A token is accepted only when it is signed by a ring key with that key's algorithm and
//! carries `sub`, `exp`, `iat`, `jti`, `iss` and `aud`, with `iss`/`aud` as configured and
//! `exp`/`nbf` within the leeway and `iat` no later than now plus the leeway. Its `kid`, when present, is looked up in the ring only.

mod keyring;
pub mod registry;

use crate::clock::unix_now;

use jsonwebtoken::errors::ErrorKind;
use serde::{Deserialize, Serialize};

pub use keyring::{KeyError, KeyRing, Keys};

/// Longest token accepted; a bigger header is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8192;

pub use crate::config::MAX_LEEWAY;

/// The refusal reason of a token whose `iat` is later than now plus the leeway.
pub const ISSUED_IN_FUTURE: &str = "token issued in the future";

/// The claims of a sigcast token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to; appears in logs instead of the token.
    pub sub: String,
    /// Expiry, Unix seconds; a live session is closed at this time.
    pub exp: u64,
    /// Issue time, Unix seconds.
    pub iat: u64,
    /// Token id, so one token can be told apart (and later revoked).
    pub jti: String,
    pub iss: String,
    pub aud: Audience,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Scope: the only symbols this token may receive signals for (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
    /// Scope: the only strategies this token may receive signals from (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<String>>,
    /// `publisher`: may publish signals into the hub (subscribers cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The role that may publish.
pub const PUBLISHER: &str = "publisher";

impl Claims {
    /// Whether this token may publish signals.
    pub fn is_publisher(&self) -> bool {
        self.role.as_deref() == Some(PUBLISHER)
    }
}

/// What a token may receive: optional allow-lists of symbols and strategies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub symbols: Option<Vec<String>>,
    pub strategies: Option<Vec<String>>,
    /// Issue a publisher token (`role: publisher`).
    pub publisher: bool,
}

impl Scope {
    /// The scope a token's claims carry.
    pub fn of(claims: &Claims) -> Scope {
        Scope {
            symbols: claims.symbols.clone(),
            strategies: claims.strategies.clone(),
            publisher: claims.is_publisher(),
        }
    }

    pub fn allows_symbol(&self, symbol: &str) -> bool {
        self.symbols
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == symbol))
    }

    pub fn allows_strategy(&self, strategy: &str) -> bool {
        self.strategies
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == strategy))
    }
}

/// `aud` may be one string or a list of them (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Why a client was refused; the message is short and safe to send back and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all: the client did not try.
    #[error("missing bearer token")]
    Missing,
    /// A token (or header) was given but is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

impl AuthError {
    fn invalid(reason: impl Into<String>) -> Self {
        AuthError::Invalid(reason.into())
    }
}

/// The refusal reason of an expired token.
pub const EXPIRED: &str = "token expired";
/// The refusal reason of a revoked token.
pub const REVOKED: &str = "token revoked";
/// Refusals that jsonwebtoken gives only after the signature checked out, so the token's
/// `sub` and `jti` can be trusted enough to name in a log line.
const SIGNED_BUT_REFUSED: [&str; 5] = [
    EXPIRED,
    ISSUED_IN_FUTURE,
    "token not yet valid",
    "wrong audience",
    "wrong issuer",
];

/// Who a refused token was issued to, when its signature is good.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub jti: String,
}

/// The WebSocket subprotocol a browser offers beside `bearer.<JWT>` to authenticate (a
/// browser cannot set `Authorization` on a WebSocket); the server answers with it.
pub const PROTOCOL: &str = "sigcast.v1";
/// Prefix of the offered subprotocol that carries the token: `bearer.<JWT>` (a JWT's
/// characters are all valid in a subprotocol name).
pub const PROTOCOL_BEARER: &str = "bearer.";
/// The other accepted form: `bearer` followed by the token as the next offered entry.
pub const PROTOCOL_BEARER_PAIR: &str = "bearer";

/// What a client offers in `Sec-WebSocket-Protocol`, as sigcast reads it.
#[derive(Debug, Default, PartialEq)]
pub struct Offer<'a> {
    /// The protocol to answer with: `sigcast.v1` whenever it is offered, or `bearer` for
    /// the `bearer, <JWT>` form.
    pub answer: Option<&'static str>,
    /// The token a browser offers: `sigcast.v1, bearer.<JWT>` or `bearer, <JWT>`.
    pub token: Option<Result<&'a str, AuthError>>,
}

/// Reads the values of the request's `Sec-WebSocket-Protocol` headers.
pub fn protocol_offer<'a, I>(values: I) -> Offer<'a>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let offered: Vec<&str> = values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let check = |token: &'a str| match token.len() {
        0 => Err(AuthError::invalid("empty bearer token")),
        n if n > MAX_TOKEN_LEN => Err(AuthError::invalid("token too long")),
        _ => Ok(token),
    };
    if offered.contains(&PROTOCOL) {
        let mut tokens = offered
            .iter()
            .filter_map(|p| p.strip_prefix(PROTOCOL_BEARER));
        let token = tokens.next().map(|token| match tokens.next() {
            Some(_) => Err(AuthError::invalid("more than one bearer subprotocol")),
            None => check(token),
        });
        return Offer {
            answer: Some(PROTOCOL),
            token,
        };
    }
    match offered.iter().position(|p| *p == PROTOCOL_BEARER_PAIR) {
        Some(at) => Offer {
            answer: Some(PROTOCOL_BEARER_PAIR),
            token: Some(check(offered.get(at + 1).copied().unwrap_or(""))),
        },
        None => Offer::default(),
    }
}

/// Extracts the bearer token from the values of the request's `Authorization` headers.
pub fn bearer_token<'a, I>(values: I) -> Result<&'a str, AuthError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::invalid("more than one Authorization header"));
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(AuthError::invalid("token too long"));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| AuthError::invalid("Authorization header is not text"))?
        .trim();
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::invalid("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::invalid("expected Authorization: Bearer <token>"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::invalid("empty bearer token"));
    }
    Ok(token)
}

impl KeyRing {
    /// For the refusal log: the `sub` and `jti` of a token refused for `error` after its
    /// signature verified (expired, not yet valid, wrong audience or issuer). `None` for a
    /// forged or malformed token, whose claims say nothing true.
    pub fn identify(&self, token: &str, error: &AuthError) -> Option<Identity> {
        let AuthError::Invalid(reason) = error else {
            return None;
        };
        if !SIGNED_BUT_REFUSED.contains(&reason.as_str()) {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.by_kid(kid)?,
            None => self.primary(),
        };
        // The signature again, now without the time, audience and issuer checks.
        let mut signature_only = key.validation().clone();
        signature_only.validate_exp = false;
        signature_only.validate_nbf = false;
        signature_only.validate_aud = false;
        signature_only.iss = None;
        signature_only.required_spec_claims.clear();
        jsonwebtoken::decode::<Identity>(token, key.decoding(), &signature_only)
            .ok()
            .map(|data| data.claims)
    }

    /// Verifies `token` and returns its claims, or a short reason it was refused.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| header_problem(e.kind()))?;
        let key = match header.kid.as_deref() {
            Some(kid) => self
                .by_kid(kid)
                .ok_or_else(|| AuthError::invalid("unknown key id"))?,
            None => self.primary(),
        };
        if header.alg != key.algorithm() {
            return Err(AuthError::invalid("algorithm not allowed for this key"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, key.decoding(), key.validation())
            .map_err(|e| describe(e.kind()))?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::invalid("empty sub claim"));
        }
        if claims.jti.is_empty() {
            return Err(AuthError::invalid("empty jti claim"));
        }
        // jsonwebtoken checks `exp` and `nbf` but not `iat`. A token issued "later" would
        // outlive a revocation of its subject, which covers tokens by their issue time.
        if claims.iat > unix_now().saturating_add(key.validation().leeway) {
            return Err(AuthError::invalid(ISSUED_IN_FUTURE));
        }
        Ok(claims)
    }
}

/// Maps a jsonwebtoken failure to a short reason that reveals nothing of the token.
fn describe(kind: &ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::ExpiredSignature => EXPIRED.to_string(),
        ErrorKind::ImmatureSignature => "token not yet valid".to_string(),
        ErrorKind::InvalidAudience => "wrong audience".to_string(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
        ErrorKind::InvalidSignature => "bad signature".to_string(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "algorithm not allowed for this key".to_string()
        }
        ErrorKind::MissingAlgorithm => "algorithm missing".to_string(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        ErrorKind::InvalidClaimFormat(c) => format!("malformed claim {c}"),
        ErrorKind::Json(e) => claim_problem(&e.to_string()),
        _ => "malformed token".to_string(),
    };
    AuthError::Invalid(reason)
}

/// A header that does not parse: an algorithm sigcast does not know (`none` among them) or junk.
fn header_problem(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::Json(e) if e.to_string().starts_with("unknown variant") => {
            AuthError::invalid("algorithm not allowed for this key")
        }
        _ => AuthError::invalid("malformed token"),
    }
}

/// Turns a serde message about the claims into a reason naming only the claim.
fn claim_problem(serde_message: &str) -> String {
    if let Some(rest) = serde_message.strip_prefix("missing field `") {
        if let Some(field) = rest.split('`').next() {
            return format!("missing claim {field}");
        }
    }
    "malformed claims".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_extraction() {
        let none: Vec<&[u8]> = vec![];
        assert_eq!(bearer_token(none), Err(AuthError::Missing));
        assert_eq!(bearer_token([b"Bearer abc".as_slice()]), Ok("abc"));
        assert_eq!(bearer_token([b"bearer   abc ".as_slice()]), Ok("abc"));
        assert!(bearer_token([b"Basic abc".as_slice()]).is_err());
        assert!(bearer_token([b"Bearer ".as_slice()]).is_err());
        assert!(bearer_token([b"Bearer a".as_slice(), b"Bearer b".as_slice()]).is_err());
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            bearer_token([long.as_bytes()]),
            Err(AuthError::Invalid("token too long".into()))
        );
    }

    #[test]
    fn browser_protocol_token() {
        // (token, answer), None for no token offered in a form sigcast reads.
        let read = |o: Offer<'static>| o.token.map(|t| (t, o.answer.unwrap()));
        let offered = |v: &'static str| read(protocol_offer([v.as_bytes()]));
        assert_eq!(
            offered("sigcast.v1, bearer.abc.def.ghi"),
            Some((Ok("abc.def.ghi"), "sigcast.v1"))
        );
        assert_eq!(
            offered("bearer, abc.def.ghi"),
            Some((Ok("abc.def.ghi"), "bearer"))
        );
        assert_eq!(
            offered("bearer.abc"),
            None,
            "without sigcast.v1 it is not ours"
        );
        assert_eq!(offered("sigcast.v1"), None);
        assert_eq!(
            protocol_offer([b"sigcast.v1".as_slice()]).answer,
            Some("sigcast.v1")
        );
        assert_eq!(offered("chat, superchat"), None);
        assert!(matches!(
            offered("sigcast.v1, bearer.a, bearer.b"),
            Some((Err(_), _))
        ));
        assert!(matches!(offered("sigcast.v1, bearer."), Some((Err(_), _))));
        assert!(matches!(offered("bearer"), Some((Err(_), "bearer"))));
        let two_headers = read(protocol_offer([
            b"sigcast.v1".as_slice(),
            b"bearer.xyz".as_slice(),
        ]));
        assert_eq!(two_headers, Some((Ok("xyz"), "sigcast.v1")));
    }

    #[test]
    fn serde_messages_name_only_the_claim() {
        assert_eq!(
            claim_problem("missing field `jti` at line 1 column 20"),
            "missing claim jti"
        );
        assert_eq!(
            claim_problem("invalid type: string \"x\", expected u64"),
            "malformed claims"
        );
    }
}
