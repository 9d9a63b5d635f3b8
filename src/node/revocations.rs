//! The revocation watch of a single node: the token registry, read again every second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::registry::{Registry, RegistryError, Revoked};

/// How often the token registry is read for revocations.
const POLL: Duration = Duration::from_secs(1);

/// Revocations from the registry in the journal's database at `path`, re-read every
/// second (a change reaches live sessions within about a second) until every receiver is
/// gone. Outside a runtime the list stays empty.
pub fn watch(path: PathBuf) -> watch::Receiver<Arc<Revoked>> {
    let (tx, rx) = watch::channel(Arc::new(Revoked::default()));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return rx;
    };
    runtime.spawn(async move {
        let mut warned = false;
        // Opened once and kept between polls (it moves to the blocking pool and back).
        let mut registry: Option<Registry> = None;
        loop {
            let p = path.clone();
            let held = registry.take();
            let read = tokio::task::spawn_blocking(move || {
                let r = match held {
                    Some(r) => r,
                    None => Registry::open(&p)?,
                };
                let revoked = r.revoked()?;
                Ok::<_, RegistryError>((r, revoked))
            })
            .await;
            match read {
                Ok(Ok((kept, revoked))) => {
                    registry = Some(kept);
                    warned = false;
                    revoked.offer(&tx);
                }
                Ok(Err(e)) if !warned => {
                    warned = true;
                    tracing::warn!(error = %e, "cannot read revocations");
                }
                _ => {}
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    });
    rx
}
