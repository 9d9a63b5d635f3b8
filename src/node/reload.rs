//! Hot reload of the strategy set: on SIGHUP, and when a file in `signals.dir` changes.
//!
//! A new set is loaded and checked off the runtime; a valid one goes to the pipeline (which
//! keeps unchanged instances warm and changes upstream subscriptions by the difference), an
//! invalid one is logged with its error and the running set stays.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::strategy::Instance;

/// How long changed files must stay unchanged before they are read.
const SETTLE: Duration = Duration::from_millis(300);

/// What the definition files looked like: name, size and modification time of each.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Fingerprint = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

/// Watches until `stop`; `load` builds a set from the configuration.
pub fn spawn(
    config: Config,
    load: fn(&Config) -> anyhow::Result<Vec<Instance>>,
    reload: mpsc::Sender<Vec<Instance>>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let dir = config.signals.dir.clone();
        let watch = config.signals.watch;
        let mut seen = blocking(dir.clone(), |d| fingerprint(&d)).await;
        let mut hangup = hangups();
        loop {
            let why = tokio::select! {
                _ = stop.cancelled() => return,
                Some(()) = hangup.recv() => "SIGHUP",
                _ = tokio::time::sleep(if watch.is_zero() { Duration::from_secs(3600) } else { watch }) => {
                    if watch.is_zero() {
                        continue;
                    }
                    let now = blocking(dir.clone(), |d| fingerprint(&d)).await;
                    if now == seen {
                        continue;
                    }
                    // An editor may still be writing: reload once the files hold still.
                    tokio::time::sleep(SETTLE).await;
                    if blocking(dir.clone(), |d| fingerprint(&d)).await != now {
                        continue;
                    }
                    seen = now;
                    "files changed"
                }
            };
            let config = config.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&config))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
            match loaded {
                Ok(set) => {
                    tracing::info!(why, dir = %dir.display(), instances = set.len(), "reloading strategies");
                    if reload.send(set).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(
                    why,
                    error = format!("{e:#}"),
                    "strategy reload rejected; the running set stays"
                ),
            }
        }
    });
}

async fn blocking<T: Send + 'static>(dir: PathBuf, f: fn(PathBuf) -> T) -> T {
    tokio::task::spawn_blocking(move || f(dir))
        .await
        .expect("fingerprint task")
}

/// SIGHUP notifications (none where there are no Unix signals).
fn hangups() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let _ = tx.try_send(());
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}
