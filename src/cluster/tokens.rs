//! The token registry and revocations in a key-value bucket (cluster mode), where every node
//! and every operator's `sigcast token` sees the same. Nodes watch the bucket and end the
//! sessions a revocation covers as it arrives.
//!
//! Keys (hex, as token ids and subjects may hold characters keys may not): `tok.<jti>` a
//! recorded token (JSON: subject, scope, issue and expiry times, never the token itself),
//! `jti.<jti>` a revoked token, `sub.<sub>` every token of a subject issued up to the time
//! stored.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterError};
use crate::auth::Claims;
use crate::auth::registry::{Revoked, TokenRecord};

/// Opens (or creates) the tokens bucket.
pub async fn bucket(cluster: &Cluster) -> Result<kv::Store, ClusterError> {
    super::bucket(
        cluster,
        &cluster.settings.tokens_bucket,
        "the token registry and revocations",
        Duration::ZERO,
    )
    .await
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A recorded token, as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Recorded {
    sub: String,
    symbols: Option<String>,
    strategies: Option<String>,
    issued_at: u64,
    expires_at: u64,
}

/// Records an issued token (its claims, never the token).
pub async fn record(store: &kv::Store, claims: &Claims) -> Result<(), String> {
    let recorded = Recorded {
        sub: claims.sub.clone(),
        symbols: claims.symbols.as_ref().map(|s| s.join(",")),
        strategies: claims.strategies.as_ref().map(|s| s.join(",")),
        issued_at: claims.iat,
        expires_at: claims.exp,
    };
    let value = serde_json::to_vec(&recorded).map_err(|e| e.to_string())?;
    store
        .put(format!("tok.{}", hex(&claims.jti)), value.into())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every recorded token, with its revocation, by issue time.
pub async fn list(store: &kv::Store) -> Result<Vec<TokenRecord>, String> {
    let mut revoked = Revoked::default();
    let mut recorded = Vec::new();
    for entry in entries(store).await? {
        match entry.key.split_once('.') {
            Some(("tok", jti)) => {
                if let (Some(jti), Ok(r)) =
                    (unhex(jti), serde_json::from_slice::<Recorded>(&entry.value))
                {
                    recorded.push((jti, r));
                }
            }
            _ => apply(&mut revoked, &entry),
        }
    }
    let mut records: Vec<TokenRecord> = recorded
        .into_iter()
        .map(|(jti, r)| {
            let revoked_at = revoked
                .jtis
                .contains(&jti)
                .then_some(r.issued_at)
                .or_else(|| {
                    revoked
                        .subs
                        .get(&r.sub)
                        .copied()
                        .filter(|at| r.issued_at <= *at)
                });
            TokenRecord {
                jti,
                sub: r.sub,
                symbols: r.symbols,
                strategies: r.strategies,
                issued_at: r.issued_at,
                expires_at: r.expires_at,
                revoked_at,
            }
        })
        .collect();
    records.sort_by(|a, b| (a.issued_at, &a.jti).cmp(&(b.issued_at, &b.jti)));
    Ok(records)
}

/// What the bucket revokes now.
pub async fn revoked(store: &kv::Store) -> Result<Revoked, String> {
    let mut revoked = Revoked::default();
    for entry in entries(store).await? {
        apply(&mut revoked, &entry);
    }
    Ok(revoked)
}

/// The bucket's current entries, by key.
async fn entries(store: &kv::Store) -> Result<Vec<kv::Entry>, String> {
    let mut keys: Vec<String> = store
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    keys.sort();
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        if let Ok(Some(entry)) = store.entry(key).await {
            if entry.operation == kv::Operation::Put {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// Revokes one token (by its `jti`) in every node.
pub async fn revoke_token(store: &kv::Store, jti: &str, at: u64) -> Result<(), String> {
    store
        .put(format!("jti.{}", hex(jti)), at.to_string().into())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Revokes every token of `sub` issued up to `at`, in every node.
pub async fn revoke_subject(store: &kv::Store, sub: &str, at: u64) -> Result<(), String> {
    store
        .put(format!("sub.{}", hex(sub)), at.to_string().into())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether the token `jti` was recorded here.
pub async fn known(store: &kv::Store, jti: &str) -> bool {
    matches!(store.get(format!("tok.{}", hex(jti))).await, Ok(Some(_)))
}

/// The revocations as they change, from the bucket, until `stop`.
pub fn watch(store: kv::Store, stop: CancellationToken) -> watch::Receiver<Arc<Revoked>> {
    let (tx, rx) = watch::channel(Arc::new(Revoked::default()));
    let mut revoked = Revoked::default();
    super::watch_bucket(store, "revocations", stop, move |entry| {
        apply(&mut revoked, entry);
        revoked.clone().offer(&tx);
    });
    rx
}

fn apply(revoked: &mut Revoked, entry: &kv::Entry) {
    let Some((kind, key)) = entry.key.split_once('.') else {
        return;
    };
    let Some(key) = unhex(key) else {
        return;
    };
    let at = std::str::from_utf8(&entry.value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    match (kind, entry.operation, at) {
        ("jti", kv::Operation::Put, _) => {
            revoked.jtis.insert(key);
        }
        ("sub", kv::Operation::Put, Some(at)) => {
            revoked.subs.insert(key, at);
        }
        ("jti", _, _) => {
            revoked.jtis.remove(&key);
        }
        ("sub", _, _) => {
            revoked.subs.remove(&key);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_hex() {
        for text in ["alice@example.com", "a b/c.d*>", "", "ünï"] {
            assert_eq!(unhex(&hex(text)).as_deref(), Some(text));
        }
        assert_eq!(unhex("zz"), None);
    }
}
