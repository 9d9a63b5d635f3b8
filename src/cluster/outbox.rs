//! Signals published on this node, to the stream: in batches (everything queued, sent before
//! any confirmation is awaited), each signal confirmed, the unconfirmed retried with backoff
//! while NATS is away. A retry carries the same `Nats-Msg-Id`, so one that had landed after
//! all is not stored twice. Signals keep their order unless a retry is needed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Cluster, to_payload};
use crate::hub::Outgoing;

/// Signals that may wait for the stream; beyond, new ones are refused (and logged).
pub const CAPACITY: usize = 65_536;
/// Signals sent before their confirmations are awaited.
const BATCH: usize = 256;
/// After a stop, how long queued signals may take to reach the stream.
const DRAIN: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Starts the outbox; the hub publishes into the sender. The task ends after `stop`, once
/// what was queued is stored (or [`DRAIN`] has passed): wait for it before exiting.
pub fn spawn(
    cluster: Cluster,
    stop: CancellationToken,
) -> (mpsc::Sender<Outgoing>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (tx, tokio::spawn(run(cluster, rx, stop)))
}

async fn run(cluster: Cluster, mut queue: mpsc::Receiver<Outgoing>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            out = queue.recv() => match out {
                Some(out) => out,
                None => return,
            },
        };
        let batch = take_batch(first, &mut queue);
        if !deliver(&cluster, batch, &stop).await {
            break;
        }
    }
    // Stopping: what is queued still goes out, within a bound.
    queue.close();
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(first) = queue.recv().await {
            let batch = take_batch(first, &mut queue);
            if !deliver(&cluster, batch, &CancellationToken::new()).await {
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

/// `first` and whatever else is queued, up to [`BATCH`].
fn take_batch(first: Outgoing, queue: &mut mpsc::Receiver<Outgoing>) -> Vec<Outgoing> {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match queue.try_recv() {
            Ok(out) => batch.push(out),
            Err(_) => break,
        }
    }
    batch
}

/// Publishes a batch, every message before waiting for any confirmation (one round trip
/// for the batch, not one per signal), and retries the ones not confirmed until they are;
/// false if stopped first.
async fn deliver(cluster: &Cluster, mut batch: Vec<Outgoing>, stop: &CancellationToken) -> bool {
    let mut failures = 0u32;
    loop {
        let mut sent = Vec::with_capacity(batch.len());
        for out in batch.drain(..) {
            let ack = send(cluster, &out).await;
            sent.push((out, ack));
        }
        let mut failed = Vec::new();
        let mut error = String::new();
        for (out, ack) in sent {
            let confirmed = match ack {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match confirmed {
                Ok(ack) => confirm(cluster, out, &ack, failures),
                Err(e) => {
                    error = e;
                    failed.push(out);
                }
            }
        }
        if failed.is_empty() {
            return true;
        }
        failures += 1;
        if failures == 1 || failures % 20 == 0 {
            tracing::warn!(%error, failures, signals = failed.len(), "signals not stored yet; retrying");
        }
        let delay = FIRST_RETRY
            .saturating_mul(1 << failures.min(8))
            .min(MAX_RETRY);
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        batch = failed;
    }
}

fn confirm(cluster: &Cluster, out: Outgoing, ack: &PublishAck, failures: u32) {
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
}

/// Sends one signal; the future confirms it.
async fn send(cluster: &Cluster, out: &Outgoing) -> Result<PublishAckFuture, String> {
    let message = PublishMessage::build()
        .payload(to_payload(&out.signal))
        .message_id(&out.id);
    cluster
        .js
        .send_publish(cluster.subject(&out.signal), message)
        .await
        .map_err(|e| e.to_string())
}
