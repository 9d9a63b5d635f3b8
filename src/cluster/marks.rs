//! Market prices from the leading producer to every other node, so that their track records
//! are marked as the leader's is (only the leader follows the market). Once a second the
//! leader sends each symbol's latest price and its market time on a core NATS subject; a lost
//! message is made up by the next one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::hub::Hub;

/// How often the leader sends prices.
const EVERY: Duration = Duration::from_secs(1);
/// Most symbols one message carries (about 40 bytes each), well under NATS' payload limit.
const MAX_SYMBOLS: usize = 10_000;

/// One symbol's latest price, as sent: `[symbol, market time in Unix ms, price]`.
type Mark = (String, i64, f64);

fn subject(cluster: &Cluster) -> String {
    format!("_SIGCAST.{}.marks", cluster.settings.stream)
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
                let marks = hub.take_relayed_marks();
                if marks.is_empty() || !cluster.status.leader.load(Ordering::Relaxed) {
                    continue;
                }
                let marks: Vec<Mark> = marks.into_iter().take(MAX_SYMBOLS).collect();
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
                for (symbol, time_ms, price) in marks.into_iter().take(MAX_SYMBOLS) {
                    if price.is_finite() && price > 0.0 {
                        hub.mark_track(&symbol, time_ms, price);
                    }
                }
            }
        }
    }
}
