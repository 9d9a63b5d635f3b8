//! Market prices from the leading producer to every other node, so that their track records
//! are marked as the leader's is (only the leader follows the market). Once a second the
//! leader sends each symbol's latest price and its market time on a core NATS subject (a lost
//! message is made up by the next one), and keeps its record's checkpoints in their own
//! stream, from which any node that starts rebuilds the leader's equity samples.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use async_nats::jetstream::stream;

use super::{Cluster, ClusterSettings};
use crate::hub::Hub;
use crate::ledger::Checkpoint;
use crate::market::Market;

/// How often the leader sends prices.
const EVERY: Duration = Duration::from_secs(1);
/// How long the stream may take to confirm a checkpoint.
const STORE_WAIT: Duration = Duration::from_secs(2);
/// Most symbols one message carries (about 40 bytes each), well under NATS' payload limit.
const MAX_SYMBOLS: usize = 10_000;

/// One symbol's latest price on one market, as sent:
/// `[symbol, "spot" or "futures", market time in Unix ms, price]`.
type Mark = (String, Market, i64, f64);

fn subject(cluster: &Cluster) -> String {
    format!("_SIGCAST.{}.marks", cluster.settings.stream)
}

/// The subject the leader's checkpoints are kept on.
fn checkpoint_subject(settings: &ClusterSettings) -> String {
    format!("_SIGCAST.{}.checkpoints", settings.stream)
}

/// The name of the stream of the leader's track-record checkpoints (`ledger::checkpoint`),
/// from which any node rebuilds the leader's equity samples.
pub fn checkpoint_stream_name(settings: &ClusterSettings) -> String {
    format!("{}_TRACK", settings.stream)
}

/// That stream, kept as long as the signals the checkpoints sit among.
pub(super) fn checkpoint_stream(
    settings: &ClusterSettings,
    max_age: Duration,
    max_messages: i64,
) -> stream::Config {
    stream::Config {
        name: checkpoint_stream_name(settings),
        description: Some("sigcast: the track record's checkpoints".into()),
        subjects: vec![checkpoint_subject(settings)],
        max_age,
        max_messages,
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Sends the hub's prices while this node leads, and marks its track record with the
/// leader's while it does not, until `stop`.
pub async fn run(cluster: Cluster, hub: Arc<Hub>, stop: CancellationToken) {
    let subject = subject(&cluster);
    let mut heard = match cluster.client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow the leader's prices; the track record here lists its symbols as untracked");
            return;
        }
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let relayed = hub.take_relayed();
                // Only the leader's prices and checkpoints are the record's.
                if !cluster.status.leader.load(Ordering::Relaxed) {
                    continue;
                }
                keep(&cluster, &relayed.checkpoints).await;
                let marks: Vec<Mark> = relayed
                    .marks()
                    .take(MAX_SYMBOLS)
                    .map(|(market, symbol, time_ms, price)| (symbol, market, time_ms, price))
                    .collect();
                if marks.is_empty() {
                    continue;
                }
                if let Ok(body) = serde_json::to_vec(&marks) {
                    let _ = cluster.client.publish(subject.clone(), body.into()).await;
                }
            }
            message = heard.next() => {
                let Some(message) = message else { return };
                // The leader marks its own record from the market itself.
                if cluster.status.leader.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(marks) = serde_json::from_slice::<Vec<Mark>>(&message.payload) else {
                    continue;
                };
                for (symbol, market, time_ms, price) in marks.into_iter().take(MAX_SYMBOLS) {
                    if price.is_finite() && price > 0.0 {
                        hub.mark_track(market, &symbol, time_ms, price);
                    }
                }
            }
        }
    }
}

/// Stores the leader's checkpoints in their stream, in order. One that cannot be stored is
/// dropped with a warning: the record then samples from signal prices around it after a
/// restart, as before checkpoints.
async fn keep(cluster: &Cluster, checkpoints: &[Checkpoint]) {
    let subject = checkpoint_subject(&cluster.settings);
    for checkpoint in checkpoints {
        let Ok(body) = serde_json::to_vec(checkpoint) else {
            continue;
        };
        let stored = async {
            let ack = cluster
                .js
                .publish(subject.clone(), body.into())
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(STORE_WAIT, ack)
                .await
                .map_err(|_| "no answer".to_string())?
                .map_err(|e| e.to_string())
        };
        if let Err(error) = stored.await {
            tracing::warn!(%error, "a track-record checkpoint was not stored; a restarted node's curve is coarser around it");
        }
    }
}
