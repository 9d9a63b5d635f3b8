//! Journal keys in cluster mode: each producer signs with the key in its own data directory
//! and announces the public halves in a bucket, which every node watches and serves at
//! `GET /v1/journal/key`, so a client verifies on any edge.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterError};
use crate::hub::proof::{KeyDir, KeySet, PublicKey, Signer};

/// Opens (or creates) the keys bucket.
pub async fn bucket(cluster: &Cluster) -> Result<kv::Store, ClusterError> {
    super::bucket(
        cluster,
        &cluster.settings.keys_bucket,
        "the producers' journal public keys",
        Duration::ZERO,
    )
    .await
}

/// A producer's journal key: the one that signs now, and where its files are.
pub struct JournalKey {
    /// Replaced by [`JournalKey::reload`] after `sigcast journal rotate`; the stream's writer
    /// takes it once per signal.
    current: RwLock<Arc<Signer>>,
    dir: KeyDir,
    store: kv::Store,
}

impl JournalKey {
    /// The key in `data_dir` (made when there is none), announced in the bucket.
    pub async fn open(cluster: &Cluster, data_dir: &Path) -> anyhow::Result<Arc<JournalKey>> {
        let dir = KeyDir::of(data_dir);
        let reading = dir.clone();
        let (signer, public) = tokio::task::spawn_blocking(move || {
            let signer = reading.load_or_create()?;
            Ok::<_, anyhow::Error>((signer, reading.public_keys()?))
        })
        .await??;
        let key = JournalKey {
            current: RwLock::new(Arc::new(signer)),
            dir,
            store: bucket(cluster).await?,
        };
        key.announce(&public).await?;
        Ok(Arc::new(key))
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<Signer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the key files again (blocking: call it off the runtime) and signs with the
    /// current one from now on; returns every public key, to announce.
    pub fn reload(&self) -> anyhow::Result<KeySet> {
        let signer = self.dir.load_or_create()?;
        let public = self.dir.public_keys()?;
        tracing::info!(kid = signer.kid(), "stream signing with key");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(signer);
        Ok(public)
    }

    /// Puts the public keys in the bucket, one entry per `kid`.
    pub async fn announce(&self, keys: &KeySet) -> anyhow::Result<()> {
        for key in &keys.keys {
            let value = serde_json::to_vec(key)?;
            self.store
                .put(&key.kid, value.into())
                .await
                .map_err(|e| anyhow::anyhow!("cannot announce journal key {}: {e}", key.kid))?;
        }
        Ok(())
    }
}

/// Every producer's public keys as the bucket holds them, kept current until `stop`.
pub fn watch(store: kv::Store, stop: CancellationToken) -> watch::Receiver<Arc<KeySet>> {
    let (tx, rx) = watch::channel(Arc::new(KeySet::default()));
    let mut keys: Vec<PublicKey> = Vec::new();
    super::watch_bucket(store, "the journal keys", stop, move |entry| {
        keys.retain(|k| k.kid != entry.key);
        if entry.operation == kv::Operation::Put
            && let Ok(key) = serde_json::from_slice::<PublicKey>(&entry.value)
            && key.kid == entry.key
        {
            keys.push(key);
        }
        let _ = tx.send(Arc::new(KeySet { keys: keys.clone() }));
    });
    rx
}
