//! Signals published on this node, to the stream: in order, each confirmed before the next,
//! retried with backoff while NATS is away. A retry carries the same `Nats-Msg-Id`, so one
//! that had landed after all is not stored twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Cluster, to_payload};
use crate::hub::Outgoing;

/// Signals that may wait for the stream; beyond, new ones are refused (and logged).
pub const CAPACITY: usize = 65_536;
/// After a stop, how long queued signals may take to reach the stream.
const DRAIN: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Starts the outbox; the hub publishes into the sender.
pub fn spawn(cluster: Cluster, stop: CancellationToken) -> mpsc::Sender<Outgoing> {
    let (tx, rx) = mpsc::channel(CAPACITY);
    tokio::spawn(run(cluster, rx, stop));
    tx
}

async fn run(cluster: Cluster, mut queue: mpsc::Receiver<Outgoing>, stop: CancellationToken) {
    loop {
        let out = tokio::select! {
            _ = stop.cancelled() => break,
            out = queue.recv() => match out {
                Some(out) => out,
                None => return,
            },
        };
        if !deliver(&cluster, out, &stop).await {
            break;
        }
    }
    // Stopping: what is queued still goes out, within a bound.
    queue.close();
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(out) = queue.recv().await {
            if !deliver(&cluster, out, &CancellationToken::new()).await {
                return;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::error!(
            left = queue.len(),
            "signals not stored in the stream at stop"
        );
    }
}

/// Publishes one signal until the stream confirms it; false if stopped first.
async fn deliver(cluster: &Cluster, out: Outgoing, stop: &CancellationToken) -> bool {
    let mut failures = 0u32;
    loop {
        match publish(cluster, &out).await {
            Ok(ack) => {
                let status = &cluster.status;
                status.published.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    status.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                if failures > 0 {
                    tracing::info!(seq = ack.sequence, failures, "signal stored after retrying");
                }
                if let Some(confirm) = out.ack {
                    let _ = confirm.send(ack.sequence);
                }
                return true;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 20 == 0 {
                    tracing::warn!(error = %e, failures, id = %out.id, "signal not stored yet; retrying");
                }
                let delay = FIRST_RETRY
                    .saturating_mul(1 << failures.min(8))
                    .min(MAX_RETRY);
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn publish(cluster: &Cluster, out: &Outgoing) -> Result<PublishAck, String> {
    let message = PublishMessage::build()
        .payload(to_payload(&out.signal))
        .message_id(&out.id);
    let ack = cluster
        .js
        .send_publish(cluster.subject(&out.signal), message)
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map_err(|e| e.to_string())
}
