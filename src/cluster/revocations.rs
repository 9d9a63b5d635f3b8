//! Revoked tokens in a key-value bucket (cluster mode). `sigcast token revoke` writes there;
//! every node watches the bucket and ends the sessions it covers as each revocation arrives.
//!
//! Keys: `jti.<hex>` for one token, `sub.<hex>` for every token of a subject issued up to
//! the time stored (hex, as token ids and subjects may hold characters keys may not).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterError};
use crate::auth::registry::Revoked;

const RETRY: Duration = Duration::from_secs(1);

/// Opens (or creates) the tokens bucket.
pub async fn bucket(cluster: &Cluster) -> Result<kv::Store, ClusterError> {
    super::bucket(
        cluster,
        &cluster.settings.tokens_bucket,
        "revoked tokens",
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

/// The revocations as they change, from the bucket, until `stop`.
pub fn watch(store: kv::Store, stop: CancellationToken) -> watch::Receiver<Arc<Revoked>> {
    let (tx, rx) = watch::channel(Arc::new(Revoked::default()));
    tokio::spawn(async move {
        let mut revoked = Revoked::default();
        loop {
            let mut entries = match store.watch_with_history(">").await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch revocations; trying again");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => continue,
                    }
                }
            };
            loop {
                let entry = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = entries.next() => e,
                };
                let Some(Ok(entry)) = entry else {
                    break;
                };
                apply(&mut revoked, &entry);
                tx.send_if_modified(|current| {
                    let changed = **current != revoked;
                    if changed {
                        tracing::info!(
                            tokens = revoked.jtis.len(),
                            subjects = revoked.subs.len(),
                            "revocations updated"
                        );
                        *current = Arc::new(revoked.clone());
                    }
                    changed
                });
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
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
