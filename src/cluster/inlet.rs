//! The stream into this node's hub: every signal in `seq` order, from the one after the last
//! delivered, through NATS restarts and reconnects (each time from where it stopped).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Cluster, from_stored};
use crate::hub::Hub;

const FIRST_RETRY: Duration = Duration::from_millis(100);
/// A consumer that has delivered nothing for this long is checked against the stream: if the
/// stream holds more, the consumer is stuck (it can be, after a failover between NATS
/// servers) and is made again.
const STALL_CHECK: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Follows the stream into `hub` until `stop`.
pub async fn run(cluster: Cluster, hub: Arc<Hub>, stop: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let from = hub.last_seq() + 1;
        match follow(&cluster, &hub, from, &stop).await {
            Ok(()) => return,
            Err(e) => {
                cluster.status.caught_up.store(false, Ordering::Relaxed);
                failures += 1;
                if failures == 1 || failures % 20 == 0 {
                    tracing::warn!(error = %e, from, failures, "signal stream lost; following again");
                }
                let delay = FIRST_RETRY
                    .saturating_mul(1 << failures.min(8))
                    .min(MAX_RETRY);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One consumer's life: delivers from `from` until it fails (`Err`) or `stop` (`Ok`).
async fn follow(
    cluster: &Cluster,
    hub: &Hub,
    from: u64,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut stream = cluster.stream().await?;
    let last = super::state(&mut stream).await?.last_sequence;
    let mut messages = Cluster::messages_from(&stream, from).await?;
    let status = &cluster.status;
    status.caught_up.store(last < from, Ordering::Relaxed);
    tracing::info!(from, stream_last = last, "following the signal stream");
    let mut check = tokio::time::interval(STALL_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = messages.next() => m,
            _ = check.tick() => {
                if heard.elapsed() >= STALL_CHECK {
                    let held = tokio::time::timeout(STALL_CHECK, super::state(&mut stream))
                        .await
                        .map_err(|_| "the stream did not answer".to_string())??
                        .last_sequence;
                    if held > hub.last_seq() {
                        return Err(format!(
                            "nothing delivered for {STALL_CHECK:?} while the stream holds up to {held}"
                        ));
                    }
                    status.caught_up.store(true, Ordering::Relaxed);
                }
                continue;
            }
        };
        heard = tokio::time::Instant::now();
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the consumer ended".into()),
        };
        let (seq, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => return Err(format!("a message without its stream position: {e}")),
        };
        match from_stored(seq, &message.payload) {
            Ok((signal, frame)) => {
                hub.deliver(seq, &signal, frame);
            }
            // Not sigcast's (something else published on its subjects): clients never see it.
            Err(e) => tracing::warn!(seq, error = %e, "not a signal in the stream; skipped"),
        }
        status.delivered.store(seq, Ordering::Relaxed);
        status.caught_up.store(pending == 0, Ordering::Relaxed);
    }
}
