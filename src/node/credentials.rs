//! Credential reload on SIGHUP: the TLS certificate and key files, the JWT key ring and the
//! journal key.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::cluster::keys::JournalKey;
use crate::config::Config;
use crate::server::Shared;

/// Reads the configuration again, as it was read at startup (file, env, flags).
pub type Reread = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// On SIGHUP, reads the TLS certificate and key files, the JWT key ring (`auth.*`, from
/// the configuration read again) and the journal key, for renewal and key rotation; whatever fails to load is
/// logged and the running one stays. The strategy set reloads on the same signal
/// (`node::reload`); other settings take a restart.
/// `key` is a cluster producer's journal key, which signs what it appends to the stream.
pub fn reload_on_sighup(
    reread: Reread,
    shared: Arc<Shared>,
    key: Option<Arc<JournalKey>>,
    stop: CancellationToken,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!(
                "cannot listen for SIGHUP; certificates and keys reload only on restart"
            );
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            let (reread, shared) = (reread.clone(), shared.clone());
            let reloaded = tokio::task::spawn_blocking(move || reload(&*reread, &shared)).await;
            if let Err(e) = reloaded {
                tracing::error!(error = %e, "credential reload failed");
            }
            if let Some(key) = &key {
                reload_cluster_key(key.clone()).await;
            }
        }
    });
}

/// Blocking file reads: runs on the blocking pool.
fn reload(reread: &(dyn Fn() -> anyhow::Result<Config> + Send + Sync), shared: &Shared) {
    match shared.certificates.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "TLS certificate not reloaded; serving the previous one")
        }
    }
    let ring = reread().and_then(|config| Ok(KeyRing::from_settings(&config.auth)?));
    match ring {
        Ok(ring) => {
            shared.keys.replace(ring);
            tracing::info!("JWT keys reloaded");
        }
        Err(e) => tracing::error!(error = %e, "JWT keys not reloaded; the previous ones stay"),
    }
    // After `sigcast journal rotate`: new signals are signed with the new key.
    if let Some(journal) = shared.hub.journal() {
        let signing = reread().and_then(|config| super::sign(journal, &config.data.dir));
        if let Err(e) = signing {
            tracing::error!(error = %e, "journal key not reloaded; the previous one signs");
        }
    }
}

/// A cluster producer's journal key, after `sigcast journal rotate`: the new key signs what
/// this producer appends from now on, and every node learns its public half.
async fn reload_cluster_key(key: Arc<JournalKey>) {
    let reading = key.clone();
    let reloaded = tokio::task::spawn_blocking(move || reading.reload()).await;
    let announced = match reloaded {
        Ok(Ok(public)) => key.announce(&public).await,
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = announced {
        tracing::error!(error = %format!("{e:#}"), "journal key not reloaded; the previous one signs");
    }
}
