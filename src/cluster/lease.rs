//! Producers elect one leader through a key-value lease: the leader runs the upstream and
//! the strategies; the others stand by and take over once its lease lapses.
//!
//! The lease is a key in a bucket whose entries expire `cluster.lease` after they are
//! written. The leader renews it every third of that with a compare-and-set on its revision;
//! a standby tries to create it as often. So a standby takes over at most a lease and a third
//! after the leader stopped renewing (a crash, a partition), and at once after a clean stop
//! (the leader deletes it). A leader whose renewal fails stops leading at once: two leaders
//! overlap at most for the moments a stalled one needs to notice, and the signals both emit
//! carry the same id, which the stream stores once.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;

use super::{Cluster, ClusterError};

/// The key holding the leader's id.
const KEY: &str = "producer";

/// A producer's place in the election.
pub struct Lease {
    cluster: Cluster,
    store: kv::Store,
    /// This process, as the lease names it.
    id: String,
    ttl: Duration,
}

impl Lease {
    /// Opens (or creates) the lease bucket.
    pub async fn open(cluster: &Cluster) -> Result<Lease, ClusterError> {
        let settings = &cluster.settings;
        let bucket = settings.lease_bucket.clone();
        let store = super::bucket(
            cluster,
            &bucket,
            "the producer holding the leader lease",
            settings.lease,
        )
        .await?;
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        Ok(Lease {
            cluster: cluster.clone(),
            store,
            id: format!(
                "{host}/{}/{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            ttl: settings.lease,
        })
    }

    /// Leads whenever this producer holds the lease, until `stop`: `lead` is started with a
    /// token that is cancelled when the lease is lost (or at stop), and awaited before this
    /// producer stands by again.
    pub async fn run<F, Fut>(self, stop: CancellationToken, mut lead: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let every = self.ttl / 3;
        loop {
            let Some(mut revision) = self.acquire(every, &stop).await else {
                return;
            };
            let status = &self.cluster.status;
            status.leader.store(true, Ordering::Relaxed);
            tracing::info!(id = %self.id, "leader lease taken: running the upstream and the strategies");
            let term = stop.child_token();
            let mut led = tokio::spawn(lead(term.clone()));
            let stopping = loop {
                tokio::select! {
                    _ = stop.cancelled() => break true,
                    _ = &mut led => {
                        tracing::error!("the strategies stopped while leading; giving the lease up");
                        break true;
                    }
                    _ = tokio::time::sleep(every) => {}
                }
                match self
                    .store
                    .update(KEY, self.id.clone().into(), revision)
                    .await
                {
                    Ok(r) => revision = r,
                    Err(e) => {
                        tracing::warn!(error = %e, "leader lease lost: standing by");
                        break false;
                    }
                }
            };
            term.cancel();
            let _ = led.await;
            status.leader.store(false, Ordering::Relaxed);
            if stopping {
                // Handed over at once rather than at expiry.
                if let Err(e) = self.store.delete(KEY).await {
                    tracing::warn!(error = %e, "leader lease not released; it lapses on its own");
                }
                return;
            }
        }
    }

    /// Waits until this producer holds the lease; its revision, or `None` at stop.
    async fn acquire(&self, every: Duration, stop: &CancellationToken) -> Option<u64> {
        let mut announced = false;
        loop {
            match self.store.create(KEY, self.id.clone().into()).await {
                Ok(revision) => return Some(revision),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    // Still ours (a renewal failed while NATS was away): carry on with it.
                    if let Ok(Some(entry)) = self.store.entry(KEY).await
                        && entry.value == self.id.as_bytes()
                        && entry.operation == kv::Operation::Put
                    {
                        return Some(entry.revision);
                    }
                    if !announced {
                        announced = true;
                        tracing::info!("another producer leads; standing by");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reach the leader lease"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
